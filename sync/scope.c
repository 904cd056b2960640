/* Scope resolution (see scope.h). */
#define GS_MODULE "sync.scope"

#include <stdlib.h>
#include <string.h>

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
