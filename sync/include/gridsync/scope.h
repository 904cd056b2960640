/*
 * Scope: which grids a device covers. A scope is a list of codes; a code
 * names a grid (and covers its sub-grids, whose codes extend it) or an
 * admin area (and covers every grid of its communities). Resolution reads
 * the grid and admin_area reference tables, so the handheld and the
 * server resolve a scope the same way. Internal.
 */
#ifndef GRIDSYNC_SCOPE_H
#define GRIDSYNC_SCOPE_H

#include <stdbool.h>

#include <gridsync/db.h>

/* Called once per grid id in scope (borrowed for the call). Non-zero
 * stops and is returned. */
typedef int (*gs_scope_cb)(const char *grid_id, void *payload);

/* Resolve comma-separated codes against db. Unknown codes resolve to no
 * grid (not an error: reference data may not have arrived yet). */
int gs__scope_resolve(struct gs_ctx *ctx,
		      sqlite3 *db,
		      const char *codes,
		      gs_scope_cb cb,
		      void *payload);

/* A resolved scope held in memory: a sorted array of grid ids. */
struct gs_scope {
	struct gs_ctx *ctx;
	char **ids;
	size_t n;
	size_t cap;
	bool known; /* false: no scope given or nothing resolved yet */
};

int gs__scope_load(struct gs_scope *s,
		   struct gs_ctx *ctx,
		   sqlite3 *db,
		   const char *codes);
void gs__scope_fini(struct gs_scope *s);
bool gs__scope_has(const struct gs_scope *s, const char *grid_id);

/* ---- the scope rule in SQL ------------------------------------------ */

/*
 * A device's scope, whole (docs/SYNC.md "Scope"): the rows of its grids,
 * plus the issues its worker is assignee or reporter of, with their events,
 * attachments and the household they name; visits started in the last
 * GS_SCOPE_VISIT_DAYS days only; issues closed (any terminal state) more
 * than GS_SCOPE_CLOSED_DAYS days ago are out, with their events and
 * attachments. The server (pulls, scope hash) and the handheld (purge)
 * evaluate the same SQL, generated here, over the same replicated tables.
 */
#define GS_SCOPE_VISIT_DAYS  365
#define GS_SCOPE_CLOSED_DAYS 30

struct gs_buf;
struct gs_table;

/* SQL expressions the rule is written with. */
struct gs_scope_sql {
	const char *grids;        /* a set for IN: "(SELECT id FROM ...)" */
	const char *worker;       /* the worker id (a literal or parameter) */
	const char *visits_since; /* ISO-8601 text: older visits are out */
	const char *closed_since; /* ISO-8601 text: closed before: out */
};

/* The grid that scopes a row of t, as SQL over t's columns (qualified by
 * t's name). Reference tables without one set *global and append
 * nothing; device rows without a grid give '' (in no scope). */
int gs__scope_grid_sql(struct gs_buf *b,
		       const struct gs_table *t,
		       bool *global);

/* "This row of t (qualified by t's name) is in scope". Tables every device
 * receives whole set *all and append nothing. */
int gs__scope_row_sql(struct gs_buf *b,
		      const struct gs_table *t,
		      const struct gs_scope_sql *p,
		      bool *all);

/* Only the ageing part: "this row of t has not aged out" ("1" for tables
 * that never age). */
int gs__scope_live_sql(struct gs_buf *b,
		       const struct gs_table *t,
		       const char *visits_since,
		       const char *closed_since);

#endif
