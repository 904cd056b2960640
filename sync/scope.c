/* Scope resolution (see scope.h). */
#define GS_MODULE "sync.scope"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gridsync/schema.h>
#include <gridsync/scope.h>

static const char resolve_sql[] =
	"WITH RECURSIVE areas(id) AS ("
	" SELECT id FROM admin_area WHERE code = ?1"
	" UNION SELECT a.id FROM admin_area a JOIN areas"
	" ON a.parent_id = areas.id)"
	" SELECT id FROM grid WHERE substr(code, 1, length(?1)) = ?1"
	" UNION SELECT g.id FROM grid g JOIN areas"
	" ON g.community_id = areas.id";

int gs__scope_resolve(struct gs_ctx *ctx,
		      sqlite3 *db,
		      const char *codes,
		      gs_scope_cb cb,
		      void *payload)
{
	sqlite3_stmt *st = NULL;
	const char *p = codes;
	int rc;

	if (codes == NULL || *codes == '\0')
		return GS_OK;
	rc = gs__db_prepare(ctx, db, &st, resolve_sql);
	while (rc == GS_OK && *p != '\0') {
		const char *end = strchr(p, ',');
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
		int step;

		if (len > 0) {
			sqlite3_bind_text(st, 1, p, (int)len, SQLITE_STATIC);
			while ((step = sqlite3_step(st)) == SQLITE_ROW) {
				rc = cb((const char *)sqlite3_column_text(st,
									  0),
					payload);
				if (rc != GS_OK)
					break;
			}
			if (rc == GS_OK && step != SQLITE_DONE)
				rc = gs__err_from_sqlite(ctx, step, db);
			sqlite3_reset(st);
		}
		p += len;
		if (*p == ',')
			p++;
	}
	sqlite3_finalize(st);
	return rc;
}

static int add_id(const char *grid_id, void *payload)
{
	struct gs_scope *s = payload;

	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		char **ids = gs__realloc(s->ctx, s->ids, cap * sizeof(*ids));

		if (ids == NULL)
			return GS_ENOMEM;
		s->ids = ids;
		s->cap = cap;
	}
	s->ids[s->n] = gs__strdup(s->ctx, grid_id);
	if (s->ids[s->n] == NULL)
		return GS_ENOMEM;
	s->n++;
	return GS_OK;
}

static int cmp_id(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int gs__scope_load(struct gs_scope *s,
		   struct gs_ctx *ctx,
		   sqlite3 *db,
		   const char *codes)
{
	int rc;

	memset(s, 0, sizeof(*s));
	s->ctx = ctx;
	rc = gs__scope_resolve(ctx, db, codes, add_id, s);
	if (rc != GS_OK) {
		gs__scope_fini(s);
		return rc;
	}
	if (s->n > 1)
		qsort(s->ids, s->n, sizeof(*s->ids), cmp_id);
	/* Two codes may cover the same grid: keep one copy. */
	size_t j = 0;
	for (size_t i = 0; i < s->n; i++) {
		if (j > 0 && strcmp(s->ids[i], s->ids[j - 1]) == 0)
			gs__free(ctx, s->ids[i]);
		else
			s->ids[j++] = s->ids[i];
	}
	s->n = j;
	s->known = s->n > 0;
	return GS_OK;
}

void gs__scope_fini(struct gs_scope *s)
{
	for (size_t i = 0; i < s->n; i++)
		gs__free(s->ctx, s->ids[i]);
	gs__free(s->ctx, s->ids);
	s->ids = NULL;
	s->n = 0;
	s->cap = 0;
	s->known = false;
}

bool gs__scope_has(const struct gs_scope *s, const char *grid_id)
{
	if (grid_id == NULL)
		return false;
	return s->n > 0 &&
	       bsearch(&grid_id, s->ids, s->n, sizeof(*s->ids), cmp_id) != NULL;
}

/* ---- scope rules in SQL ------------------------------------------------ */

/* The grid of the row of table name whose id is the SQL expression id. */
static int sql_grid_of_id(struct gs_buf *b, const char *name, const char *id)
{
	if (strcmp(name, "resident") == 0)
		return gs__buf_printf(b,
				      "(SELECT h.grid_id FROM resident r JOIN"
				      " household h ON h.id = r.household_id"
				      " WHERE r.id = %s)",
				      id);
	if (strcmp(name, "resident_tag") == 0)
		return gs__buf_printf(b,
				      "(SELECT h.grid_id FROM resident_tag g"
				      " JOIN resident r ON r.id = g.resident_id"
				      " JOIN household h ON h.id ="
				      " r.household_id WHERE g.id = %s)",
				      id);
	if (strcmp(name, "issue_event") == 0)
		return gs__buf_printf(
			b,
			"(SELECT i.grid_id FROM issue_event e JOIN"
			" issue i ON i.id = e.issue_id WHERE"
			" e.id = %s)",
			id);
	/* household, visit, issue: a grid column of their own. */
	return gs__buf_printf(b, "(SELECT grid_id FROM \"%s\" WHERE id = %s)",
			      name, id);
}

/* Tables that may own an attachment (one-column keys, device data). */
static const char *const owners[] = { "household", "resident", "resident_tag",
				      "visit",     "issue",    "issue_event" };

/*
 * The grid that scopes a row of t, as SQL over t's columns (named by t's
 * name), or "" appended and *global set for reference data every device
 * receives. Reference rows with a NULL grid are global too; device rows
 * with no grid get '' (in no scope).
 */
int gs__scope_grid_sql(struct gs_buf *b, const struct gs_table *t, bool *global)
{
	char id[160];
	int rc;

	*global = false;
	switch (t->scope) {
	case GS_SCOPE_GRID:
		if (t->cls == GS_CLASS_R)
			return gs__buf_printf(b, "\"%s\".\"%s\"", t->name,
					      t->cols[t->scope_col].name);
		return gs__buf_printf(b, "ifnull(\"%s\".\"%s\", '')", t->name,
				      t->cols[t->scope_col].name);
	case GS_SCOPE_PARENT:
		snprintf(id, sizeof(id), "\"%s\".\"%s\"", t->name,
			 t->cols[t->scope_col].name);
		rc = gs__buf_printf(b, "ifnull(");
		if (rc == GS_OK)
			rc = sql_grid_of_id(b, t->scope_parent, id);
		return rc == GS_OK ? gs__buf_printf(b, ", '')") : rc;
	case GS_SCOPE_OWNER:
		snprintf(id, sizeof(id), "\"%s\".\"%s\"", t->name,
			 t->cols[t->scope_col].name);
		rc = gs__buf_printf(b, "ifnull(CASE \"%s\".\"%s\"", t->name,
				    t->cols[t->scope_col - 1].name);
		for (size_t k = 0;
		     rc == GS_OK && k < sizeof(owners) / sizeof(*owners); k++) {
			rc = gs__buf_printf(b, " WHEN '%s' THEN ", owners[k]);
			if (rc == GS_OK)
				rc = sql_grid_of_id(b, owners[k], id);
		}
		return rc == GS_OK ? gs__buf_printf(b, " END, '')") : rc;
	default:
		*global = true;
		return GS_OK;
	}
}

/* Terminal issue states: "closed" for the 30-day rule. */
#define TERMINAL "('closed','evaluated','invalid','cancelled')"

/* Issue alias a is not aged out (closed before closed_since). */
static int issue_live(struct gs_buf *b, const char *a, const char *cs)
{
	return gs__buf_printf(b,
			      "NOT (%s.state IN " TERMINAL " AND coalesce("
			      "%s.closed_at, %s.updated_at, %s.created_at)"
			      " < %s)",
			      a, a, a, a, cs);
}

/* Issue alias a is assigned to or reported by the worker. */
static int issue_mine(struct gs_buf *b, const char *a, const char *w)
{
	return gs__buf_printf(b,
			      "(%s.assignee_worker_id = %s OR"
			      " %s.reporter_worker_id = %s)",
			      a, w, a, w);
}

/* Issue alias a is in scope: its grid or the worker's, and live. */
static int
issue_in(struct gs_buf *b, const char *a, const struct gs_scope_sql *p)
{
	int rc = gs__buf_printf(b, "((ifnull(%s.grid_id, '') IN %s OR ", a,
				p->grids);

	if (rc == GS_OK)
		rc = issue_mine(b, a, p->worker);
	if (rc == GS_OK)
		rc = gs__buf_printf(b, ") AND ");
	if (rc == GS_OK)
		rc = issue_live(b, a, p->closed_since);
	return rc == GS_OK ? gs__buf_printf(b, ")") : rc;
}

int gs__scope_live_sql(struct gs_buf *b,
		       const struct gs_table *t,
		       const char *visits_since,
		       const char *closed_since)
{
	int rc;

	if (strcmp(t->name, "visit") == 0)
		return gs__buf_printf(b, "(\"visit\".started_at >= %s)",
				      visits_since);
	if (strcmp(t->name, "issue") == 0) {
		rc = gs__buf_printf(b, "(");
		if (rc == GS_OK)
			rc = issue_live(b, "\"issue\"", closed_since);
		return rc == GS_OK ? gs__buf_printf(b, ")") : rc;
	}
	if (strcmp(t->name, "issue_event") == 0) {
		rc = gs__buf_printf(b, "NOT EXISTS (SELECT 1 FROM issue i WHERE"
				       " i.id = \"issue_event\".issue_id AND"
				       " NOT ");
		if (rc == GS_OK)
			rc = issue_live(b, "i", closed_since);
		return rc == GS_OK ? gs__buf_printf(b, ")") : rc;
	}
	if (strcmp(t->name, "attachment") == 0) {
		rc = gs__buf_printf(b,
				    "CASE \"attachment\".owner_table WHEN"
				    " 'visit' THEN NOT EXISTS (SELECT 1 FROM"
				    " visit v WHERE v.id ="
				    " \"attachment\".owner_id AND"
				    " v.started_at < %s) WHEN 'issue' THEN"
				    " NOT EXISTS (SELECT 1 FROM issue i WHERE"
				    " i.id = \"attachment\".owner_id AND NOT ",
				    visits_since);
		if (rc == GS_OK)
			rc = issue_live(b, "i", closed_since);
		if (rc == GS_OK)
			rc = gs__buf_printf(
				b, ") WHEN 'issue_event' THEN NOT"
				   " EXISTS (SELECT 1 FROM issue_event"
				   " e JOIN issue i ON i.id ="
				   " e.issue_id WHERE e.id ="
				   " \"attachment\".owner_id AND NOT ");
		if (rc == GS_OK)
			rc = issue_live(b, "i", closed_since);
		return rc == GS_OK ? gs__buf_printf(b, ") ELSE 1 END") : rc;
	}
	return gs__buf_printf(b, "1");
}

int gs__scope_row_sql(struct gs_buf *b,
		      const struct gs_table *t,
		      const struct gs_scope_sql *p,
		      bool *all)
{
	size_t mark = b->len;
	bool global = false;
	int rc;

	*all = false;
	if (strcmp(t->name, "issue") == 0)
		return issue_in(b, "\"issue\"", p);
	if (strcmp(t->name, "visit") == 0)
		return gs__buf_printf(b,
				      "(ifnull(\"visit\".grid_id, '') IN %s"
				      " AND \"visit\".started_at >= %s)",
				      p->grids, p->visits_since);
	if (strcmp(t->name, "issue_event") == 0) {
		rc = gs__buf_printf(b, "EXISTS (SELECT 1 FROM issue i WHERE"
				       " i.id = \"issue_event\".issue_id AND ");
		if (rc == GS_OK)
			rc = issue_in(b, "i", p);
		return rc == GS_OK ? gs__buf_printf(b, ")") : rc;
	}
	if (strcmp(t->name, "household") == 0) {
		rc = gs__buf_printf(b,
				    "(ifnull(\"household\".grid_id, '') IN %s"
				    " OR EXISTS (SELECT 1 FROM issue i WHERE"
				    " i.household_id = \"household\".id AND ",
				    p->grids);
		if (rc == GS_OK)
			rc = issue_mine(b, "i", p->worker);
		if (rc == GS_OK)
			rc = gs__buf_printf(b, " AND ");
		if (rc == GS_OK)
			rc = issue_live(b, "i", p->closed_since);
		return rc == GS_OK ? gs__buf_printf(b, "))") : rc;
	}
	if (strcmp(t->name, "attachment") == 0) {
		rc = gs__buf_printf(b, "(CASE \"attachment\".owner_table WHEN"
				       " 'issue' THEN EXISTS (SELECT 1 FROM"
				       " issue i WHERE i.id ="
				       " \"attachment\".owner_id AND ");
		if (rc == GS_OK)
			rc = issue_in(b, "i", p);
		if (rc == GS_OK)
			rc = gs__buf_printf(b,
					    ") WHEN 'issue_event' THEN EXISTS"
					    " (SELECT 1 FROM issue_event e JOIN"
					    " issue i ON i.id = e.issue_id"
					    " WHERE e.id ="
					    " \"attachment\".owner_id AND ");
		if (rc == GS_OK)
			rc = issue_in(b, "i", p);
		if (rc == GS_OK)
			rc = gs__buf_printf(b,
					    ") WHEN 'visit' THEN EXISTS (SELECT"
					    " 1 FROM visit v WHERE v.id ="
					    " \"attachment\".owner_id AND"
					    " ifnull(v.grid_id, '') IN %s AND"
					    " v.started_at >= %s) ELSE ",
					    p->grids, p->visits_since);
		if (rc == GS_OK)
			rc = gs__scope_grid_sql(b, t, &global);
		return rc == GS_OK ? gs__buf_printf(b, " IN %s END)", p->grids)
				   : rc;
	}
	/* Everything else by its grid; reference rows without one (and
	 * global tables) are everybody's. */
	rc = gs__buf_printf(b, "(");
	if (rc == GS_OK)
		rc = gs__scope_grid_sql(b, t, &global);
	if (rc != GS_OK)
		return rc;
	if (global) {
		b->len = mark;
		*all = true;
		return GS_OK;
	}
	{
		size_t expr_at = mark + 1;
		size_t expr_len = b->len - expr_at;
		char *copy = gs__malloc(b->ctx, expr_len + 1);

		if (copy == NULL)
			return GS_ENOMEM;
		memcpy(copy, b->data + expr_at, expr_len);
		copy[expr_len] = '\0';
		rc = gs__buf_printf(b, " IS NULL OR %s IN %s)", copy, p->grids);
		gs__free(b->ctx, copy);
	}
	return rc;
}
