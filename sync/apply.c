/*
 * Download apply and rebase (see apply.h).
 *
 * Happy path, one BEGIN IMMEDIATE ... COMMIT:
 *   1. read the outbox entries still held (pending and rejected);
 *   2. undo them newest first: invert each (our own bytes) and apply;
 *   3. check the download with our parser, then write its rows with our
 *      own cached statements: an INSERT of a whole row is an upsert (the
 *      server's row replaces ours in place, never delete + insert, so no
 *      foreign-key scan of child tables runs per row), UPDATE and DELETE
 *      records address the row by primary key;
 *   4. redo the pending entries oldest first (REPLACE on conflict: the
 *      local edit shows over the server's row until the server decides);
 *   5. drop rejected entries, store the cursor and the clock floor.
 * Failure modes: any error rolls everything back (the database is as it
 * was before the download); the cursor only moves with the rows.
 *
 * Foreign keys are off while a download applies: the server sends each
 * row's latest version in server_seq order, so a child may arrive one
 * download before its parent; the server's rows are authoritative and the
 * parent follows. They are switched back on before the function returns.
 */
#define GS_MODULE "sync.apply"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <gridsync/apply.h>
#include <gridsync/changeset.h>
#include <gridsync/hlc.h>
#include <gridsync/outbox.h>
#include <gridsync/schema.h>
#include <gridsync/wire.h>

struct held {
	uint64_t seq;
	int status;
	void *cs; /* sqlite3_malloc'd copy */
	int len;
};

/* Only replicated tables may be written by a changeset: never
 * sqlite_stat1 or the bookkeeping (DESIGN.md trap 8). */
static int filter(void *payload, const char *table)
{
	(void)payload;
	return gs__manifest_find(table) != NULL;
}

/* The server's rows win; a row that is gone stays gone; a foreign key to
 * a row outside this device's scope is tolerated. */
static int on_conflict(void *payload, int kind, sqlite3_changeset_iter *it)
{
	(void)payload;
	(void)it;
	switch (kind) {
	case SQLITE_CHANGESET_DATA:
	case SQLITE_CHANGESET_CONFLICT:
		return SQLITE_CHANGESET_REPLACE;
	case SQLITE_CHANGESET_NOTFOUND:
	case SQLITE_CHANGESET_FOREIGN_KEY:
		return SQLITE_CHANGESET_OMIT;
	default: /* CONSTRAINT: a unique key held by another row */
		return SQLITE_CHANGESET_ABORT;
	}
}

static int apply_cs(struct gs_ctx *ctx, sqlite3 *db, int len, void *cs)
{
	int rc = sqlite3changeset_apply(db, len, cs, filter, on_conflict, NULL);

	return rc == SQLITE_OK ? GS_OK : gs__err_from_sqlite(ctx, rc, db);
}

/* ---- writing downloaded rows ------------------------------------------- */

#define MAX_TABLES 64 /* the manifest has 20 */

struct writer {
	struct gs_ctx *ctx;
	sqlite3 *db;
	size_t rows;
	sqlite3_stmt *upsert[MAX_TABLES];
	struct gs_buf sql;
};

static int bind_value(sqlite3_stmt *st, int idx, const struct gs_cs_value *v)
{
	switch (v->type) {
	case GS_CS_INT:
		return sqlite3_bind_int64(st, idx, v->i);
	case GS_CS_REAL:
		return sqlite3_bind_double(st, idx, v->r);
	case GS_CS_TEXT:
		return sqlite3_bind_text(st, idx, (const char *)v->p,
					 (int)v->len, SQLITE_STATIC);
	case GS_CS_BLOB:
		return sqlite3_bind_blob(st, idx, v->p, (int)v->len,
					 SQLITE_STATIC);
	default:
		return sqlite3_bind_null(st, idx);
	}
}

/* INSERT INTO t (all columns) VALUES (...) ON CONFLICT (pk) DO UPDATE SET
 * every other column: the server's whole row, in place. */
static int upsert_sql(struct gs_buf *b, const struct gs_table *t)
{
	int rc = gs__buf_printf(b, "INSERT INTO \"%s\" (", t->name);
	bool first = true;

	for (unsigned c = 0; rc == GS_OK && c < t->n_cols; c++)
		rc = gs__buf_printf(b, "%s\"%s\"", c ? "," : "",
				    t->cols[c].name);
	if (rc == GS_OK)
		rc = gs__buf_printf(b, ") VALUES (");
	for (unsigned c = 0; rc == GS_OK && c < t->n_cols; c++)
		rc = gs__buf_printf(b, "%s?", c ? "," : "");
	if (rc == GS_OK)
		rc = gs__buf_printf(b, ") ON CONFLICT (");
	for (unsigned c = 0; rc == GS_OK && c < t->n_cols; c++) {
		if (!(t->cols[c].flags & GS_COL_PK))
			continue;
		rc = gs__buf_printf(b, "%s\"%s\"", first ? "" : ",",
				    t->cols[c].name);
		first = false;
	}
	if (rc == GS_OK)
		rc = gs__buf_printf(b, ") DO UPDATE SET ");
	first = true;
	for (unsigned c = 0; rc == GS_OK && c < t->n_cols; c++) {
		if (t->cols[c].flags & GS_COL_PK)
			continue;
		rc = gs__buf_printf(b, "%s\"%s\"=excluded.\"%s\"",
				    first ? "" : ",", t->cols[c].name,
				    t->cols[c].name);
		first = false;
	}
	return rc;
}

/* UPDATE t SET (defined new columns) WHERE pk, or DELETE FROM t WHERE pk:
 * built per row (downloads from our server carry whole-row INSERTs; these
 * are for completeness). */
static int keyed_sql(struct gs_buf *b, const struct gs_cs_row *row)
{
	const struct gs_table *t = row->table;
	bool first = true;
	int rc;

	if (row->op == GS_CS_DELETE) {
		rc = gs__buf_printf(b, "DELETE FROM \"%s\" WHERE ", t->name);
	} else {
		rc = gs__buf_printf(b, "UPDATE \"%s\" SET ", t->name);
		for (unsigned c = 0; rc == GS_OK && c < t->n_cols; c++) {
			if (row->new_vals[c].type == GS_CS_UNDEFINED)
				continue;
			rc = gs__buf_printf(b, "%s\"%s\"=?", first ? "" : ",",
					    t->cols[c].name);
			first = false;
		}
		if (rc == GS_OK)
			rc = gs__buf_printf(b, " WHERE ");
	}
	first = true;
	for (unsigned c = 0; rc == GS_OK && c < t->n_cols; c++) {
		if (!(t->cols[c].flags & GS_COL_PK))
			continue;
		rc = gs__buf_printf(b, "%s\"%s\"=?", first ? "" : " AND ",
				    t->cols[c].name);
		first = false;
	}
	return rc == GS_OK ? gs__buf_cstr(b) : rc;
}

static int write_row(const struct gs_cs_row *row, void *payload)
{
	struct writer *w = payload;
	const struct gs_table *t = row->table;
	size_t n_tables = 0;
	size_t ti = (size_t)(t - gs__manifest(&n_tables));
	sqlite3_stmt *st = NULL;
	int idx = 1;
	int rc;

	/* The parser hands out pointers into the manifest. */
	GS_ASSERT(ti < n_tables && ti < MAX_TABLES);
	w->rows++;
	if (row->op == GS_CS_INSERT) {
		if (w->upsert[ti] == NULL) {
			w->sql.len = 0;
			rc = upsert_sql(&w->sql, t);
			if (rc == GS_OK)
				rc = gs__buf_cstr(&w->sql);
			if (rc == GS_OK)
				rc = gs__db_prepare(w->ctx, w->db,
						    &w->upsert[ti],
						    (char *)w->sql.data);
			if (rc != GS_OK)
				return rc;
		}
		st = w->upsert[ti];
		for (unsigned c = 0; c < t->n_cols; c++)
			bind_value(st, idx++, &row->new_vals[c]);
		rc = gs__db_step_done(w->ctx, w->db, st);
		sqlite3_clear_bindings(st);
		return rc;
	}
	w->sql.len = 0;
	rc = keyed_sql(&w->sql, row);
	if (rc == GS_OK)
		rc = gs__db_prepare(w->ctx, w->db, &st, (char *)w->sql.data);
	if (rc != GS_OK)
		return rc;
	for (unsigned c = 0; row->op == GS_CS_UPDATE && c < t->n_cols; c++)
		if (row->new_vals[c].type != GS_CS_UNDEFINED)
			bind_value(st, idx++, &row->new_vals[c]);
	for (unsigned c = 0; c < t->n_cols; c++)
		if (t->cols[c].flags & GS_COL_PK)
			bind_value(st, idx++, &row->old_vals[c]);
	rc = gs__db_step_done(w->ctx, w->db, st);
	sqlite3_finalize(st);
	return rc;
}

/* Validate the whole download (gs__cs_foreach checks every byte before
 * its first callback, so bad bytes write nothing), then write its rows;
 * *rows_out counts them. */
static int write_download(struct gs_ctx *ctx,
			  sqlite3 *db,
			  const uint8_t *cs,
			  size_t len,
			  const struct gs_cs_opts *opts,
			  size_t *rows_out)
{
	struct writer w;
	struct gs_cs_error cerr;
	int rc;

	memset(&w, 0, sizeof(w));
	w.ctx = ctx;
	w.db = db;
	gs__buf_init(&w.sql, ctx, 64 * 1024);
	rc = gs__cs_foreach(&cerr, ctx, cs, len, opts, write_row, &w);
	*rows_out = w.rows;
	if (rc == GS_EPROTO)
		gs__err_wrap(ctx, rc, "download");
	for (size_t i = 0; i < MAX_TABLES; i++)
		sqlite3_finalize(w.upsert[i]);
	gs__buf_fini(&w.sql);
	return rc;
}

static void held_free(struct held *h, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sqlite3_free(h[i].cs);
}

static int
load_held(struct gs_ctx *ctx, sqlite3 *db, struct held **out, size_t *n_out)
{
	sqlite3_stmt *st = NULL;
	struct held *h = NULL;
	size_t n = 0;
	size_t cap = 0;
	int rc;

	*out = NULL;
	*n_out = 0;
	rc = gs__db_prepare(ctx, db, &st,
			    "SELECT seq, status, changeset FROM gs_outbox"
			    " ORDER BY seq");
	while (rc == GS_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		int len = sqlite3_column_bytes(st, 2);

		rc = GS_OK;
		if (n == cap) {
			size_t c = cap ? cap * 2 : 16;
			struct held *p = gs__realloc(ctx, h, c * sizeof(*p));

			if (p == NULL) {
				rc = GS_ENOMEM;
				break;
			}
			h = p;
			cap = c;
		}
		h[n].seq = (uint64_t)sqlite3_column_int64(st, 0);
		h[n].status = sqlite3_column_int(st, 1);
		h[n].len = len;
		h[n].cs = sqlite3_malloc(len > 0 ? len : 1);
		if (h[n].cs == NULL) {
			rc = GS_ENOMEM;
			break;
		}
		memcpy(h[n].cs, sqlite3_column_blob(st, 2), (size_t)len);
		n++;
	}
	if (rc == SQLITE_DONE)
		rc = GS_OK;
	else if (rc != GS_OK && rc != GS_ENOMEM)
		rc = gs__err_from_sqlite(ctx, rc, db);
	sqlite3_finalize(st);
	if (rc != GS_OK) {
		held_free(h, n);
		gs__free(ctx, h);
		return rc;
	}
	*out = h;
	*n_out = n;
	return GS_OK;
}

static int undo(struct gs_ctx *ctx, sqlite3 *db, struct held *h)
{
	void *inv = NULL;
	int n = 0;
	int rc = sqlite3changeset_invert(h->len, h->cs, &n, &inv);

	if (rc != SQLITE_OK)
		return gs__err_from_sqlite(ctx, rc, db);
	rc = apply_cs(ctx, db, n, inv);
	sqlite3_free(inv);
	return rc;
}

static int
set_meta(struct gs_ctx *ctx, sqlite3 *db, const char *key, const char *value)
{
	sqlite3_stmt *st = NULL;
	int rc = gs__db_prepare(ctx, db, &st,
				"INSERT INTO gs_meta (key, value) VALUES (?, ?)"
				" ON CONFLICT(key) DO UPDATE SET value ="
				" excluded.value");

	if (rc != GS_OK)
		return rc;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
	rc = gs__db_step_done(ctx, db, st);
	sqlite3_finalize(st);
	return rc;
}

int gs__apply_download(struct gs_ctx *ctx,
		       sqlite3 *db,
		       const uint8_t *cs,
		       size_t len,
		       uint64_t cursor,
		       uint64_t remote_hlc,
		       struct gs_apply_stats *stats)
{
	struct gs_cs_opts opts = GS_CS_OPTS_INIT;
	struct gs_apply_stats s = { 0, 0, 0, 0, 0 };
	struct held *h = NULL;
	size_t n = 0;
	char num[32];
	int rc;

	GS_CHECK_ARG(db != NULL && (cs != NULL || len == 0));
	opts.allow = GS_CS_ALLOW_ALL;
	opts.max_rows = (size_t)1 << 24;
	opts.max_bytes = GS_FRAME_MAX_CEILING;
	rc = gs__db_exec(ctx, db, "PRAGMA foreign_keys=OFF; BEGIN IMMEDIATE");
	if (rc != GS_OK) {
		gs__db_exec(ctx, db, "PRAGMA foreign_keys=ON");
		return rc;
	}
	/* Our own bytes, but from storage that may have damaged them: the
	 * parser sees every entry before SQLite's invert does. */
	{
		struct gs_outbox_report rep = { 0, 0, 0 };

		rc = gs__outbox_check(ctx, db, 0, &rep);
		s.quarantined = rep.quarantined;
	}
	if (rc == GS_OK)
		rc = load_held(ctx, db, &h, &n);
	for (size_t i = n; rc == GS_OK && i > 0; i--) {
		rc = undo(ctx, db, &h[i - 1]);
		s.undone++;
	}
	if (rc == GS_OK && len > 0)
		rc = write_download(ctx, db, cs, len, &opts, &s.rows);
	for (size_t i = 0; rc == GS_OK && i < n; i++) {
		if (h[i].status != GS_OUTBOX_PENDING) {
			s.dropped++;
			continue;
		}
		rc = apply_cs(ctx, db, h[i].len, h[i].cs);
		s.redone++;
	}
	if (rc == GS_OK && s.dropped > 0)
		rc = gs__db_exec(ctx, db,
				 "DELETE FROM gs_outbox WHERE status <> 0");
	if (rc == GS_OK && len > 0) {
		snprintf(num, sizeof(num), "%llu", (unsigned long long)cursor);
		rc = set_meta(ctx, db, "cursor", num);
	}
	if (rc == GS_OK && remote_hlc > 0) {
		sqlite3_stmt *st = NULL;

		rc = gs__db_prepare(ctx, db, &st,
				    "UPDATE gs_state SET hlc_floor ="
				    " max(hlc_floor, ?) WHERE id = 1");
		if (rc == GS_OK) {
			sqlite3_bind_int64(st, 1, (sqlite3_int64)remote_hlc);
			rc = gs__db_step_done(ctx, db, st);
		}
		sqlite3_finalize(st);
	}
	if (rc == GS_OK)
		rc = gs__db_exec(ctx, db, "COMMIT");
	if (rc != GS_OK)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	if (sqlite3_exec(db, "PRAGMA foreign_keys=ON", NULL, NULL, NULL) !=
		    SQLITE_OK &&
	    rc == GS_OK)
		rc = gs__err(ctx, GS_EIO,
			     "foreign keys could not be re-enabled");
	held_free(h, n);
	gs__free(ctx, h);
	if (rc == GS_OK && stats != NULL)
		*stats = s;
	return rc;
}

/* "col=value, ..." of one refused row, for gs_conflict.value: what the
 * worker entered and the undo takes away (shown by `gridsync conflicts`,
 * never logged). */
static void describe_row(const struct gs_cs_row *row, char *out, size_t size)
{
	const struct gs_table *t = row->table;
	const struct gs_cs_value *v =
		row->op == GS_CS_DELETE ? NULL : row->new_vals;
	size_t used = 0;

	out[0] = '\0';
	if (v == NULL) {
		snprintf(out, size, "(deleted)");
		return;
	}
	for (unsigned c = 0; c < t->n_cols && used + 1 < size; c++) {
		const struct gs_cs_value *x = &v[c];
		const char *sep = used ? ", " : "";
		int n;

		if (x->type == GS_CS_UNDEFINED)
			continue;
		switch (x->type) {
		case GS_CS_INT:
			n = snprintf(out + used, size - used, "%s%s=%lld", sep,
				     t->cols[c].name, (long long)x->i);
			break;
		case GS_CS_REAL:
			n = snprintf(out + used, size - used, "%s%s=%g", sep,
				     t->cols[c].name, x->r);
			break;
		case GS_CS_TEXT:
			n = snprintf(out + used, size - used, "%s%s=%.*s", sep,
				     t->cols[c].name,
				     (int)(x->len > 200 ? 200 : x->len),
				     (const char *)x->p);
			break;
		case GS_CS_BLOB:
			n = snprintf(out + used, size - used,
				     "%s%s=(%zu bytes)", sep, t->cols[c].name,
				     x->len);
			break;
		default:
			n = snprintf(out + used, size - used, "%s%s=NULL", sep,
				     t->cols[c].name);
		}
		if (n < 0)
			break;
		used += (size_t)n;
		if (used >= size)
			used = size - 1;
	}
}

struct refused {
	size_t rows;
	size_t used;
	char tbl[64];
	char pk[256];
	char value[2048];
};

/* The first row names the conflict (table, key); every row adds
 * "table key: col=value, ..." to the value text, as far as it fits. */
static int refused_row(const struct gs_cs_row *row, void *payload)
{
	struct refused *r = payload;
	const struct gs_table *t = row->table;
	const struct gs_cs_value *key =
		row->op == GS_CS_INSERT ? row->new_vals : row->old_vals;
	char pk[256];
	char vals[1024];
	size_t used = 0;
	int n;

	pk[0] = '\0';
	for (unsigned c = 0; c < t->n_cols && used + 1 < sizeof(pk); c++) {
		if (!(t->cols[c].flags & GS_COL_PK))
			continue;
		if (key[c].type == GS_CS_TEXT)
			n = snprintf(pk + used, sizeof(pk) - used, "%s%.*s",
				     used ? "|" : "", (int)key[c].len,
				     (const char *)key[c].p);
		else
			n = snprintf(pk + used, sizeof(pk) - used, "%s%lld",
				     used ? "|" : "", (long long)key[c].i);
		if (n < 0)
			break;
		used += (size_t)n;
		if (used >= sizeof(pk))
			used = sizeof(pk) - 1;
	}
	if (r->rows++ == 0) {
		snprintf(r->tbl, sizeof(r->tbl), "%s", t->name);
		snprintf(r->pk, sizeof(r->pk), "%s", pk);
	}
	describe_row(row, vals, sizeof(vals));
	if (r->used + 1 >= sizeof(r->value))
		return GS_OK;
	n = snprintf(r->value + r->used, sizeof(r->value) - r->used,
		     "%s%s %s: %s", r->used ? "; " : "", t->name, pk, vals);
	if (n > 0)
		r->used += (size_t)n;
	if (r->used >= sizeof(r->value))
		r->used = sizeof(r->value) - 1;
	return GS_OK;
}

/* One gs_conflict row for the refused entry seq, holding the values the
 * undo removes (what the worker entered), or none when the bytes cannot
 * be read (the next check quarantines them). */
static int record_refusal(struct gs_ctx *ctx,
			  sqlite3 *db,
			  sqlite3_stmt *why,
			  uint64_t seq,
			  const char *reason)
{
	struct gs_cs_opts opts = GS_CS_OPTS_INIT;
	struct refused r;
	sqlite3_stmt *get = NULL;
	int rc;

	memset(&r, 0, sizeof(r));
	opts.allow = GS_CS_ALLOW_ALL;
	opts.max_bytes = 16u << 20;
	opts.max_rows = (size_t)1 << 20;
	rc = gs__db_prepare(ctx, db, &get,
			    "SELECT changeset FROM gs_outbox WHERE seq = ?");
	if (rc != GS_OK)
		return rc;
	sqlite3_bind_int64(get, 1, (sqlite3_int64)seq);
	if (sqlite3_step(get) == SQLITE_ROW)
		rc = gs__cs_foreach(NULL, NULL, sqlite3_column_blob(get, 0),
				    (size_t)sqlite3_column_bytes(get, 0), &opts,
				    refused_row, &r);
	if (rc == GS_EPROTO)
		rc = GS_OK;
	if (rc == GS_OK) {
		sqlite3_bind_int64(why, 1, (sqlite3_int64)seq);
		sqlite3_bind_text(why, 2, r.tbl, -1, SQLITE_STATIC);
		sqlite3_bind_text(why, 3, r.pk, -1, SQLITE_STATIC);
		sqlite3_bind_text(why, 4, reason, -1, SQLITE_STATIC);
		if (r.rows > 0)
			sqlite3_bind_text(why, 5, r.value, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(why, 5);
		sqlite3_bind_int64(why, 6, gs__clock_wall_ms(ctx));
		rc = gs__db_step_done(ctx, db, why);
	}
	sqlite3_finalize(get);
	return rc;
}

/* The keys an acknowledged entry wrote, for a server that loses them. */
static int log_sent(struct gs_ctx *ctx, sqlite3 *db, uint64_t seq)
{
	sqlite3_stmt *get = NULL;
	int rc = gs__db_prepare(ctx, db, &get,
				"SELECT hlc, changeset FROM gs_outbox"
				" WHERE seq = ?");

	if (rc != GS_OK)
		return rc;
	sqlite3_bind_int64(get, 1, (sqlite3_int64)seq);
	if (sqlite3_step(get) == SQLITE_ROW)
		rc = gs__outbox_sent_log(ctx, db, seq,
					 (uint64_t)sqlite3_column_int64(get, 0),
					 sqlite3_column_blob(get, 1),
					 (size_t)sqlite3_column_bytes(get, 1));
	sqlite3_finalize(get);
	return rc;
}

/*
 * Conflicts this device took part in, for `gridsync conflicts`: from a
 * PushAck (won or lost) or a pull (lost after another device's later
 * write, or a delete, arrived). Each server id is kept once
 * (gs_conflict_seen): the same conflict can come in both. *added (may be
 * NULL) counts the new ones.
 */
static int record_conflicts(struct gs_ctx *ctx,
			    sqlite3 *db,
			    const struct gs_conflict *cf,
			    size_t n,
			    const char *self,
			    size_t *added)
{
	sqlite3_stmt *st = NULL;
	sqlite3_stmt *seen = NULL;
	int rc;

	if (added != NULL)
		*added = 0;
	if (n == 0)
		return GS_OK;
	rc = gs__db_prepare(ctx, db, &st,
			    "INSERT INTO gs_conflict (device_seq, tbl, pk, col,"
			    " reason, winner, winner_hlc, loser_hlc, at)"
			    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
	if (rc == GS_OK)
		rc = gs__db_prepare(ctx, db, &seen,
				    "INSERT OR IGNORE INTO gs_conflict_seen"
				    " (id) VALUES (?)");
	for (size_t i = 0; rc == GS_OK && i < n; i++) {
		const struct gs_conflict *c = &cf[i];
		bool lost = self != NULL && c->loser.device_id != NULL &&
			    strcmp(c->loser.device_id, self) == 0;
		bool gone = lost && strcmp(c->column, "deleted") == 0;

		if (c->id != 0) {
			sqlite3_bind_int64(seen, 1, (sqlite3_int64)c->id);
			rc = gs__db_step_done(ctx, db, seen);
			if (rc != GS_OK)
				break;
			if (sqlite3_changes(db) == 0)
				continue; /* kept already */
		}
		if (added != NULL)
			(*added)++;
		if (c->device_seq != 0)
			sqlite3_bind_int64(st, 1, (sqlite3_int64)c->device_seq);
		else
			sqlite3_bind_null(st, 1);
		sqlite3_bind_text(st, 2, c->table, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, c->pk, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, c->column, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5,
				  gone   ? "lost: the row was deleted"
				  : lost ? "lost: a later write won"
					 : "won over a concurrent write",
				  -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 6, c->winner.device_id, -1,
				  SQLITE_STATIC);
		sqlite3_bind_int64(st, 7, (sqlite3_int64)c->winner.hlc);
		sqlite3_bind_int64(st, 8, (sqlite3_int64)c->loser.hlc);
		sqlite3_bind_int64(st, 9, gs__clock_wall_ms(ctx));
		rc = gs__db_step_done(ctx, db, st);
	}
	sqlite3_finalize(st);
	sqlite3_finalize(seen);
	return rc;
}

int gs__apply_conflicts(struct gs_ctx *ctx,
			sqlite3 *db,
			const struct gs_conflict *conflicts,
			size_t n,
			const char *self,
			size_t *added)
{
	int rc = gs__db_exec(ctx, db, "BEGIN IMMEDIATE");

	if (rc != GS_OK)
		return rc;
	rc = record_conflicts(ctx, db, conflicts, n, self, added);
	if (rc == GS_OK)
		rc = gs__db_exec(ctx, db, "COMMIT");
	if (rc != GS_OK)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

int gs__apply_push_ack(struct gs_ctx *ctx,
		       sqlite3 *db,
		       const struct gs_ack_item *items,
		       size_t n,
		       const struct gs_conflict *conflicts,
		       size_t n_conflicts,
		       const char *self)
{
	sqlite3_stmt *floor = NULL;
	sqlite3_stmt *del = NULL;
	sqlite3_stmt *rej = NULL;
	sqlite3_stmt *why = NULL;
	int rc;

	rc = gs__db_exec(ctx, db, "BEGIN IMMEDIATE");
	if (rc != GS_OK)
		return rc;
	/* Raise the floors before the rows go, so the sequence and the
	 * clock never fall back when the outbox empties. */
	rc = gs__db_prepare(
		ctx, db, &floor,
		"UPDATE gs_state SET"
		" seq_floor = max(seq_floor, ?1),"
		" hlc_floor = max(hlc_floor, ifnull((SELECT hlc"
		" FROM gs_outbox WHERE seq = ?1), 0)) WHERE id = 1;");
	if (rc == GS_OK)
		rc = gs__db_prepare(ctx, db, &del,
				    "DELETE FROM gs_outbox WHERE seq = ?");
	if (rc == GS_OK)
		rc = gs__db_prepare(ctx, db, &rej,
				    "UPDATE gs_outbox SET status = 1 WHERE"
				    " seq = ?");
	if (rc == GS_OK)
		rc = gs__db_prepare(ctx, db, &why,
				    "INSERT INTO gs_conflict (device_seq, tbl,"
				    " pk, col, reason, value, at) VALUES (?, ?,"
				    " ?, NULL, ?, ?, ?)");
	for (size_t i = 0; rc == GS_OK && i < n; i++) {
		const struct gs_ack_item *it = &items[i];

		/* Not recorded by the server: nothing changes here. */
		if (it->result == GS_RESULT_REJECTED && it->may_heal)
			continue;
		sqlite3_bind_int64(floor, 1, (sqlite3_int64)it->seq);
		rc = gs__db_step_done(ctx, db, floor);
		if (rc != GS_OK)
			break;
		if (it->result == GS_RESULT_REJECTED) {
			char reason[300];

			snprintf(reason, sizeof(reason),
				 "rejected (code %d), undone: %s",
				 it->reject_code,
				 it->reason != NULL ? it->reason : "");
			rc = record_refusal(ctx, db, why, it->seq, reason);
			if (rc == GS_OK) {
				sqlite3_bind_int64(rej, 1,
						   (sqlite3_int64)it->seq);
				rc = gs__db_step_done(ctx, db, rej);
			}
		} else {
			rc = log_sent(ctx, db, it->seq);
			if (rc == GS_OK) {
				sqlite3_bind_int64(del, 1,
						   (sqlite3_int64)it->seq);
				rc = gs__db_step_done(ctx, db, del);
			}
		}
	}
	sqlite3_finalize(floor);
	sqlite3_finalize(del);
	sqlite3_finalize(rej);
	sqlite3_finalize(why);
	if (rc == GS_OK)
		rc = record_conflicts(ctx, db, conflicts, n_conflicts, self,
				      NULL);
	if (rc == GS_OK)
		rc = gs__db_exec(ctx, db, "COMMIT");
	if (rc != GS_OK)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

int gs__apply_acks(struct gs_ctx *ctx,
		   sqlite3 *db,
		   const struct gs_ack_item *items,
		   size_t n)
{
	return gs__apply_push_ack(ctx, db, items, n, NULL, 0, NULL);
}
