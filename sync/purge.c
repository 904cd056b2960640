/*
 * Purging rows that left the scope (see purge.h).
 *
 * One BEGIN IMMEDIATE ... COMMIT with foreign keys off (a parent may go
 * while a child an outbox entry holds stays, until that entry is judged):
 *   1. temp.gs_held := the keys every held outbox entry touches;
 *   2. each gs_purge key: kept while held; dropped when the row is gone or
 *      came back after it left (its server_seq is newer); else the row is
 *      deleted with its key;
 *   3. after a rescope, the rows its pulls did not confirm (gs_rescope);
 *      with a sweep: temp.gs_scope_grid := the device's grids, then every
 *      scoped table, children first, loses the rows the scope rule
 *      (scope.h) does not hold and no held entry touches;
 *   4. the caller's gs_meta changes (the scope version now applied).
 * A rescope marks every scoped row unconfirmed at its start and confirms
 * each row its pulls bring: what stays unconfirmed left the scope, or aged
 * out while the device was away (the server does not send those).
 * Any error rolls everything back.
 */
#define GS_MODULE "sync.purge"

#include <stdio.h>
#include <string.h>

#include <gridsync/changeset.h>
#include <gridsync/purge.h>
#include <gridsync/schema.h>
#include <gridsync/scope.h>

static const char purge_table_sql[] =
	"CREATE TABLE IF NOT EXISTS gs_purge ("
	" tbl TEXT NOT NULL, pk TEXT NOT NULL, server_seq INTEGER NOT NULL,"
	" PRIMARY KEY (tbl, pk)) WITHOUT ROWID";

int gs__purge_note(struct gs_ctx *ctx,
		   sqlite3 *db,
		   const struct gs_row_key *keys,
		   size_t n)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (n == 0)
		return GS_OK;
	rc = gs__db_exec(ctx, db, "BEGIN IMMEDIATE");
	if (rc != GS_OK)
		return rc;
	rc = gs__db_exec(ctx, db, purge_table_sql);
	if (rc == GS_OK)
		rc = gs__db_prepare(ctx, db, &st,
				    "INSERT INTO gs_purge (tbl, pk, server_seq)"
				    " VALUES (?1, ?2, ?3) ON CONFLICT (tbl, pk)"
				    " DO UPDATE SET server_seq ="
				    " max(server_seq, excluded.server_seq)");
	for (size_t i = 0; rc == GS_OK && i < n; i++) {
		if (gs__manifest_find(keys[i].table) == NULL)
			continue; /* a table of a newer schema */
		sqlite3_bind_text(st, 1, keys[i].table, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, keys[i].pk, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)keys[i].server_seq);
		rc = gs__db_step_done(ctx, db, st);
	}
	sqlite3_finalize(st);
	if (rc == GS_OK)
		rc = gs__db_exec(ctx, db, "COMMIT");
	if (rc != GS_OK)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

static const char rescope_table_sql[] =
	"CREATE TABLE IF NOT EXISTS gs_rescope ("
	" tbl TEXT NOT NULL, pk TEXT NOT NULL, PRIMARY KEY (tbl, pk))"
	" WITHOUT ROWID";

static int pk_expr(struct gs_buf *b, const struct gs_table *t);
static int not_held(struct gs_buf *b, const struct gs_table *t);

static int
meta_put(struct gs_ctx *ctx, sqlite3 *db, const char *key, const char *value)
{
	sqlite3_stmt *st = NULL;
	int rc = gs__db_prepare(ctx, db, &st,
				"INSERT INTO gs_meta (key, value) VALUES (?1,"
				" ?2) ON CONFLICT (key) DO UPDATE SET value ="
				" excluded.value");

	if (rc != GS_OK)
		return rc;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
	rc = gs__db_step_done(ctx, db, st);
	sqlite3_finalize(st);
	return rc;
}

int gs__purge_rescope_begin(struct gs_ctx *ctx,
			    sqlite3 *db,
			    const char *codes,
			    const char *version)
{
	struct gs_buf b;
	size_t n = 0;
	const struct gs_table *all = gs__manifest(&n);
	int rc;

	rc = gs__db_exec(ctx, db, "BEGIN IMMEDIATE");
	if (rc != GS_OK)
		return rc;
	gs__buf_init(&b, ctx, 64 * 1024);
	rc = gs__db_exec(ctx, db, rescope_table_sql);
	if (rc == GS_OK)
		rc = gs__db_exec(ctx, db, "DELETE FROM gs_rescope");
	for (size_t i = 0; rc == GS_OK && i < n; i++) {
		const struct gs_table *t = &all[i];

		if (t->scope == GS_SCOPE_GLOBAL || t->scope == GS_SCOPE_SELF)
			continue;
		b.len = 0;
		rc = gs__buf_printf(&b,
				    "INSERT OR IGNORE INTO gs_rescope (tbl, pk)"
				    " SELECT '%s', ",
				    t->name);
		if (rc == GS_OK)
			rc = pk_expr(&b, t);
		if (rc == GS_OK)
			rc = gs__buf_printf(&b, " FROM \"%s\"", t->name);
		if (rc == GS_OK)
			rc = gs__buf_cstr(&b);
		if (rc == GS_OK)
			rc = gs__db_exec(ctx, db, (const char *)b.data);
	}
	if (rc == GS_OK)
		rc = meta_put(ctx, db, "cursor", "0");
	if (rc == GS_OK)
		rc = meta_put(ctx, db, "scope", codes);
	if (rc == GS_OK)
		rc = meta_put(ctx, db, "rescope", version);
	if (rc == GS_OK)
		rc = gs__db_exec(ctx, db, "COMMIT");
	if (rc != GS_OK)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	gs__buf_fini(&b);
	return rc;
}

struct confirm {
	struct gs_ctx *ctx;
	sqlite3 *db;
	sqlite3_stmt *one;
	sqlite3_stmt *two;
};

static void bind_cs(sqlite3_stmt *st, int i, const struct gs_cs_value *v)
{
	switch (v->type) {
	case GS_CS_INT:
		sqlite3_bind_int64(st, i, v->i);
		break;
	case GS_CS_REAL:
		sqlite3_bind_double(st, i, v->r);
		break;
	case GS_CS_TEXT:
		sqlite3_bind_text(st, i, (const char *)v->p, (int)v->len,
				  SQLITE_STATIC);
		break;
	case GS_CS_BLOB:
		sqlite3_bind_blob(st, i, v->p, (int)v->len, SQLITE_STATIC);
		break;
	default:
		sqlite3_bind_null(st, i);
	}
}

static int confirm_row(const struct gs_cs_row *row, void *payload)
{
	struct confirm *c = payload;
	const struct gs_table *t = row->table;
	const struct gs_cs_value *v =
		row->op == GS_CS_DELETE ? row->old_vals : row->new_vals;
	sqlite3_stmt *st = gs__table_n_pk(t) > 1 ? c->two : c->one;
	int k = 2;

	if (t->scope == GS_SCOPE_GLOBAL || t->scope == GS_SCOPE_SELF ||
	    gs__table_n_pk(t) > 2)
		return GS_OK;
	sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
	for (unsigned i = 0; i < t->n_cols; i++)
		if (t->cols[i].flags & GS_COL_PK)
			bind_cs(st, k++, &v[i]);
	return gs__db_step_done(c->ctx, c->db, st);
}

int gs__purge_confirm(struct gs_ctx *ctx,
		      sqlite3 *db,
		      const uint8_t *cs,
		      size_t len)
{
	struct gs_cs_opts opts = GS_CS_OPTS_INIT;
	struct gs_cs_error cerr;
	struct confirm c = { ctx, db, NULL, NULL };
	int rc;

	if (len == 0)
		return GS_OK;
	opts.allow = GS_CS_ALLOW_ALL;
	opts.max_rows = (size_t)1 << 24;
	opts.max_bytes = GS_FRAME_MAX_CEILING;
	rc = gs__db_exec(ctx, db, "BEGIN IMMEDIATE");
	if (rc != GS_OK)
		return rc;
	rc = gs__db_exec(ctx, db, rescope_table_sql);
	if (rc == GS_OK)
		rc = gs__db_prepare(ctx, db, &c.one,
				    "DELETE FROM gs_rescope WHERE tbl = ?1 AND"
				    " pk = ?2");
	if (rc == GS_OK)
		rc = gs__db_prepare(ctx, db, &c.two,
				    "DELETE FROM gs_rescope WHERE tbl = ?1 AND"
				    " pk = json_array(?2, ?3)");
	if (rc == GS_OK)
		rc = gs__cs_foreach(&cerr, ctx, cs, len, &opts, confirm_row,
				    &c);
	sqlite3_finalize(c.one);
	sqlite3_finalize(c.two);
	if (rc == GS_OK)
		rc = gs__db_exec(ctx, db, "COMMIT");
	if (rc != GS_OK)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

/* Step 3a: what a finished rescope did not confirm, unless held. */
static int purge_unconfirmed(struct gs_ctx *ctx, sqlite3 *db, size_t *purged)
{
	struct gs_buf b;
	size_t n = 0;
	const struct gs_table *all = gs__manifest(&n);
	int rc;

	gs__buf_init(&b, ctx, 64 * 1024);
	rc = gs__db_exec(ctx, db, rescope_table_sql);
	for (size_t i = n; rc == GS_OK && i > 0; i--) {
		const struct gs_table *t = &all[i - 1];

		if (t->scope == GS_SCOPE_GLOBAL || t->scope == GS_SCOPE_SELF)
			continue;
		b.len = 0;
		rc = gs__buf_printf(&b,
				    "DELETE FROM \"%s\" WHERE EXISTS (SELECT 1"
				    " FROM gs_rescope r WHERE r.tbl = '%s' AND"
				    " r.pk = ",
				    t->name, t->name);
		if (rc == GS_OK)
			rc = pk_expr(&b, t);
		if (rc == GS_OK)
			rc = gs__buf_printf(&b, ")");
		if (rc == GS_OK)
			rc = not_held(&b, t);
		if (rc == GS_OK)
			rc = gs__buf_cstr(&b);
		if (rc == GS_OK)
			rc = gs__db_exec(ctx, db, (const char *)b.data);
		if (rc == GS_OK)
			*purged += (size_t)sqlite3_changes(db);
	}
	/* A held row stays; the sweep of a later sync judges it again. */
	if (rc == GS_OK)
		rc = gs__db_exec(ctx, db, "DELETE FROM gs_rescope");
	gs__buf_fini(&b);
	return rc;
}

int gs__purge_pending(struct gs_ctx *ctx, sqlite3 *db, uint64_t *out)
{
	sqlite3_stmt *st = NULL;
	int rc;

	*out = 0;
	rc = gs__db_prepare(ctx, db, &st,
			    "SELECT 1 FROM sqlite_master WHERE type = 'table'"
			    " AND name = 'gs_purge'");
	if (rc != GS_OK)
		return rc;
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	st = NULL;
	if (rc != SQLITE_ROW)
		return rc == SQLITE_DONE ? GS_OK
					 : gs__err_from_sqlite(ctx, rc, db);
	rc = gs__db_prepare(ctx, db, &st, "SELECT count(*) FROM gs_purge");
	if (rc == GS_OK && sqlite3_step(st) == SQLITE_ROW)
		*out = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc;
}

/* The row's key as text, as the server writes it (Conflict.pk). */
static int pk_expr(struct gs_buf *b, const struct gs_table *t)
{
	bool composite = gs__table_n_pk(t) > 1;
	bool first = true;
	int rc = composite ? gs__buf_printf(b, "json_array(") : GS_OK;

	for (unsigned i = 0; i < t->n_cols && rc == GS_OK; i++) {
		if (!(t->cols[i].flags & GS_COL_PK))
			continue;
		rc = gs__buf_printf(b, "%s\"%s\".\"%s\"", first ? "" : ",",
				    t->name, t->cols[i].name);
		first = false;
	}
	if (rc == GS_OK && composite)
		rc = gs__buf_printf(b, ")");
	return rc;
}

struct held {
	struct gs_ctx *ctx;
	sqlite3 *db;
	sqlite3_stmt *one;
	sqlite3_stmt *two;
};

static void bind_cs(sqlite3_stmt *st, int i, const struct gs_cs_value *v);

static int held_row(const struct gs_cs_row *row, void *payload)
{
	struct held *h = payload;
	const struct gs_table *t = row->table;
	const struct gs_cs_value *v =
		row->op == GS_CS_INSERT ? row->new_vals : row->old_vals;
	sqlite3_stmt *st = gs__table_n_pk(t) > 1 ? h->two : h->one;
	int k = 2;

	if (gs__table_n_pk(t) > 2)
		return GS_OK;
	sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
	for (unsigned i = 0; i < t->n_cols; i++)
		if (t->cols[i].flags & GS_COL_PK)
			bind_cs(st, k++, &v[i]);
	return gs__db_step_done(h->ctx, h->db, st);
}

/* temp.gs_held := (table, key) of every row a held entry touches. The
 * entries go through our own parser (never SQLite's, which may spin on
 * damaged bytes); one that does not parse is the outbox check's to
 * quarantine, and protects nothing here. */
static int load_held(struct gs_ctx *ctx, sqlite3 *db)
{
	struct gs_cs_opts opts = GS_CS_OPTS_INIT;
	struct held h = { ctx, db, NULL, NULL };
	sqlite3_stmt *st = NULL;
	int rc;

	opts.allow = GS_CS_ALLOW_ALL;
	opts.max_rows = (size_t)1 << 24;
	opts.max_bytes = GS_FRAME_MAX_CEILING;
	rc = gs__db_exec(ctx, db,
			 "CREATE TEMP TABLE IF NOT EXISTS gs_held (tbl TEXT,"
			 " pk TEXT, PRIMARY KEY (tbl, pk)) WITHOUT ROWID;"
			 "DELETE FROM temp.gs_held;");
	if (rc == GS_OK)
		rc = gs__db_prepare(ctx, db, &h.one,
				    "INSERT OR IGNORE INTO temp.gs_held VALUES"
				    " (?1, ?2)");
	if (rc == GS_OK)
		rc = gs__db_prepare(ctx, db, &h.two,
				    "INSERT OR IGNORE INTO temp.gs_held VALUES"
				    " (?1, json_array(?2, ?3))");
	if (rc == GS_OK)
		rc = gs__db_prepare(ctx, db, &st,
				    "SELECT changeset FROM gs_outbox");
	while (rc == GS_OK && sqlite3_step(st) == SQLITE_ROW) {
		struct gs_cs_error cerr;
		int len = sqlite3_column_bytes(st, 0);
		const void *cs = sqlite3_column_blob(st, 0);

		if (len <= 0)
			continue;
		rc = gs__cs_foreach(&cerr, ctx, cs, (size_t)len, &opts,
				    held_row, &h);
		if (rc == GS_EPROTO) {
			gs__err_clear(ctx);
			rc = GS_OK;
		}
	}
	sqlite3_finalize(st);
	sqlite3_finalize(h.one);
	sqlite3_finalize(h.two);
	return rc;
}

/* SQL appended to a WHERE over t: no held entry touches the row. */
static int not_held(struct gs_buf *b, const struct gs_table *t)
{
	int rc = gs__buf_printf(b,
				" AND NOT EXISTS (SELECT 1 FROM temp.gs_held h"
				" WHERE h.tbl = '%s' AND h.pk = ",
				t->name);

	if (rc == GS_OK)
		rc = pk_expr(b, t);
	return rc == GS_OK ? gs__buf_printf(b, ")") : rc;
}

/* Step 2: the keys the server named. */
static int purge_keys(struct gs_ctx *ctx, sqlite3 *db, size_t *purged)
{
	sqlite3_stmt *keys = NULL;
	sqlite3_stmt *drop = NULL;
	struct gs_buf b;
	int rc;

	gs__buf_init(&b, ctx, 64 * 1024);
	rc = gs__db_prepare(ctx, db, &keys,
			    "SELECT tbl, pk, server_seq FROM gs_purge WHERE NOT"
			    " EXISTS (SELECT 1 FROM temp.gs_held h WHERE"
			    " h.tbl = gs_purge.tbl AND h.pk = gs_purge.pk)");
	if (rc == GS_OK)
		rc = gs__db_prepare(ctx, db, &drop,
				    "DELETE FROM gs_purge WHERE tbl = ?1 AND pk"
				    " = ?2");
	while (rc == GS_OK && sqlite3_step(keys) == SQLITE_ROW) {
		const char *tbl = (const char *)sqlite3_column_text(keys, 0);
		const char *pk = (const char *)sqlite3_column_text(keys, 1);
		const struct gs_table *t = gs__manifest_find(tbl);
		sqlite3_stmt *del = NULL;

		if (t != NULL && t->scope != GS_SCOPE_GLOBAL) {
			/* Not when it came back after it left. */
			b.len = 0;
			rc = gs__buf_printf(&b, "DELETE FROM \"%s\" WHERE ",
					    t->name);
			if (rc == GS_OK)
				rc = pk_expr(&b, t);
			if (rc == GS_OK)
				rc = gs__buf_printf(
					&b, " = ?1 AND ifnull(server_seq,"
					    " 0) <= ?2");
			if (rc == GS_OK)
				rc = gs__buf_cstr(&b);
			if (rc == GS_OK)
				rc = gs__db_prepare(ctx, db, &del,
						    (const char *)b.data);
			if (rc == GS_OK) {
				sqlite3_bind_text(del, 1, pk, -1,
						  SQLITE_STATIC);
				sqlite3_bind_int64(
					del, 2, sqlite3_column_int64(keys, 2));
				rc = gs__db_step_done(ctx, db, del);
				*purged += (size_t)sqlite3_changes(db);
			}
			sqlite3_finalize(del);
		}
		if (rc == GS_OK) {
			sqlite3_bind_text(drop, 1, tbl, -1, SQLITE_STATIC);
			sqlite3_bind_text(drop, 2, pk, -1, SQLITE_STATIC);
			rc = gs__db_step_done(ctx, db, drop);
		}
	}
	sqlite3_finalize(keys);
	sqlite3_finalize(drop);
	gs__buf_fini(&b);
	return rc;
}

static int add_grid(const char *grid_id, void *payload)
{
	sqlite3_stmt *st = payload;

	sqlite3_bind_text(st, 1, grid_id, -1, SQLITE_TRANSIENT);
	return sqlite3_step(st) == SQLITE_DONE && sqlite3_reset(st) == SQLITE_OK
		       ? GS_OK
		       : GS_EIO;
}

/* Step 3: every row the scope rule does not hold. */
static int sweep(struct gs_ctx *ctx,
		 sqlite3 *db,
		 const struct gs_purge_opts *o,
		 size_t *purged)
{
	char vcut[GS_TIME_LEN] = "";
	char ccut[GS_TIME_LEN] = "";
	char *w = NULL;
	char *vq = NULL;
	char *cq = NULL;
	sqlite3_stmt *ins = NULL;
	struct gs_buf b;
	size_t n = 0;
	const struct gs_table *all = gs__manifest(&n);
	int rc;

	gs__buf_init(&b, ctx, 256 * 1024);
	if (o->visits_since_ms > 0)
		gs__time_format(vcut, o->visits_since_ms);
	if (o->closed_since_ms > 0)
		gs__time_format(ccut, o->closed_since_ms);
	w = sqlite3_mprintf("%Q", o->worker_id);
	vq = sqlite3_mprintf("%Q", vcut);
	cq = sqlite3_mprintf("%Q", ccut);
	rc = w && vq && cq ? GS_OK : GS_ENOMEM;
	if (rc == GS_OK)
		rc = gs__db_exec(ctx, db,
				 "CREATE TEMP TABLE IF NOT EXISTS gs_scope_grid"
				 " (id TEXT PRIMARY KEY);"
				 "DELETE FROM temp.gs_scope_grid;");
	if (rc == GS_OK)
		rc = gs__db_prepare(ctx, db, &ins,
				    "INSERT OR IGNORE INTO temp.gs_scope_grid"
				    " VALUES (?1)");
	if (rc == GS_OK)
		rc = gs__scope_resolve(ctx, db, o->codes, add_grid, ins);
	if (rc == GS_EIO)
		rc = gs__err_from_sqlite(ctx, sqlite3_errcode(db), db);
	sqlite3_finalize(ins);
	/* Children first, so that a parent's rule still sees them. */
	for (size_t i = n; rc == GS_OK && i > 0; i--) {
		const struct gs_table *t = &all[i - 1];
		struct gs_scope_sql p = { "(SELECT id FROM temp.gs_scope_grid)",
					  w, vq, cq };
		bool everyone = false;

		if (t->scope == GS_SCOPE_GLOBAL || t->scope == GS_SCOPE_SELF)
			continue;
		b.len = 0;
		rc = gs__buf_printf(
			&b, "DELETE FROM \"%s\" WHERE NOT coalesce((", t->name);
		if (rc == GS_OK)
			rc = gs__scope_row_sql(&b, t, &p, &everyone);
		if (rc != GS_OK || everyone)
			continue;
		rc = gs__buf_printf(&b, "), 0)");
		if (rc == GS_OK)
			rc = not_held(&b, t);
		if (rc == GS_OK)
			rc = gs__buf_cstr(&b);
		if (rc == GS_OK)
			rc = gs__db_exec(ctx, db, (const char *)b.data);
		if (rc == GS_OK)
			*purged += (size_t)sqlite3_changes(db);
	}
	sqlite3_free(w);
	sqlite3_free(vq);
	sqlite3_free(cq);
	gs__buf_fini(&b);
	return rc;
}

static int
meta_apply(struct gs_ctx *ctx, sqlite3 *db, const struct gs_purge_opts *o)
{
	sqlite3_stmt *set = NULL;
	sqlite3_stmt *del = NULL;
	int rc;

	rc = gs__db_prepare(ctx, db, &set,
			    "INSERT INTO gs_meta (key, value) VALUES (?1, ?2)"
			    " ON CONFLICT (key) DO UPDATE SET value ="
			    " excluded.value");
	if (rc == GS_OK)
		rc = gs__db_prepare(ctx, db, &del,
				    "DELETE FROM gs_meta WHERE key = ?1");
	for (size_t i = 0; rc == GS_OK && i < 4 && o->meta_key[i] != NULL;
	     i++) {
		sqlite3_stmt *s = o->meta_value[i] != NULL ? set : del;

		sqlite3_bind_text(s, 1, o->meta_key[i], -1, SQLITE_STATIC);
		if (o->meta_value[i] != NULL)
			sqlite3_bind_text(s, 2, o->meta_value[i], -1,
					  SQLITE_STATIC);
		rc = gs__db_step_done(ctx, db, s);
	}
	sqlite3_finalize(set);
	sqlite3_finalize(del);
	return rc;
}

int gs__purge_run(struct gs_ctx *ctx,
		  sqlite3 *db,
		  const struct gs_purge_opts *o,
		  size_t *purged)
{
	size_t n = 0;
	int rc;

	GS_CHECK_ARG(ctx != NULL && db != NULL && o != NULL);
	rc = gs__db_exec(ctx, db, "PRAGMA foreign_keys=OFF; BEGIN IMMEDIATE");
	if (rc != GS_OK) {
		gs__db_exec(ctx, db, "PRAGMA foreign_keys=ON");
		return rc;
	}
	rc = gs__db_exec(ctx, db, purge_table_sql);
	if (rc == GS_OK)
		rc = load_held(ctx, db);
	if (rc == GS_OK)
		rc = purge_keys(ctx, db, &n);
	if (rc == GS_OK && o->rescoped)
		rc = purge_unconfirmed(ctx, db, &n);
	if (rc == GS_OK && o->sweep)
		rc = sweep(ctx, db, o, &n);
	if (rc == GS_OK)
		rc = meta_apply(ctx, db, o);
	if (rc == GS_OK)
		rc = gs__db_exec(ctx, db, "COMMIT");
	if (rc != GS_OK)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	if (sqlite3_exec(db, "PRAGMA foreign_keys=ON", NULL, NULL, NULL) !=
		    SQLITE_OK &&
	    rc == GS_OK)
		rc = gs__err(ctx, GS_EIO,
			     "foreign keys could not be re-enabled");
	if (rc == GS_OK && purged != NULL)
		*purged = n;
	return rc;
}
