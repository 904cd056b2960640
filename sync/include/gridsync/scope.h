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

#endif
