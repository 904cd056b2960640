/*
 * Guarding the handheld's own outbox (see outbox.h).
 *
 * Happy path of gs__outbox_check: one pass over gs_outbox, each entry's
 * bytes through the strict parser (and its SHA-256 with
 * GS_OUTBOX_CHECK_HASH); nothing is written when every entry is sound.
 * A damaged entry: its row is copied into gs_quarantine and deleted from
 * the outbox, the pending entries are renumbered from the floor so the
 * server sees no gap, then the rows the damaged entry wrote that still
 * exist are re-captured from their current values as one new entry at the
 * end, and a gs_conflict row says what happened. The caller's transaction
 * makes all of it atomic.
 *
 * Failure modes: any SQLite error is returned and the caller rolls back;
 * a row that the changeset writer refuses (it would not pass our own
 * parser) is left out of the re-capture and the conflict row says how many
 * rows were recovered.
 */
#define GS_MODULE "sync.outbox"

#include <stdio.h>
#include <string.h>

#include <gridsync/apply.h>
#include <gridsync/changeset.h>
#include <gridsync/cswrite.h>
#include <gridsync/hlc.h>
#include <gridsync/outbox.h>

/* Moves entries out of the way while renumbering: above every real
 * device_seq, below 2^63. */
#define SEQ_PARK (INT64_C(1) << 50)

/* Bytes of one re-captured entry; rows beyond it are left out. */
#define RECAPTURE_MAX (16u << 20)

static int key_table(struct gs_ctx *ctx, sqlite3 *db)
{
	return gs__db_exec(ctx, db,
			   "CREATE TEMP TABLE IF NOT EXISTS gs_rekey ("
			   " tbl TEXT NOT NULL, k1 NOT NULL, k2 NOT NULL,"
			   " UNIQUE (tbl, k1, k2))");
}

/* Up to two key columns (every manifest table has one or two). */
static int pk_cols(const struct gs_table *t, int out[2])
{
	int n = 0;

	for (unsigned c = 0; c < t->n_cols; c++) {
		if (!(t->cols[c].flags & GS_COL_PK))
			continue;
		if (n == 2)
			return 0;
		out[n++] = (int)c;
	}
	return n;
}

static bool device_table(const struct gs_table *t)
{
	return t->cls != GS_CLASS_R;
}

static int has_col(const struct gs_table *t, const char *name)
{
	for (unsigned c = 0; c < t->n_cols; c++)
		if (strcmp(t->cols[c].name, name) == 0)
			return 1;
	return 0;
}

static void bind_cs(sqlite3_stmt *st, int idx, const struct gs_cs_value *v)
{
	switch (v->type) {
	case GS_CS_INT:
		sqlite3_bind_int64(st, idx, v->i);
		break;
	case GS_CS_REAL:
		sqlite3_bind_double(st, idx, v->r);
		break;
	case GS_CS_TEXT:
		sqlite3_bind_text(st, idx, (const char *)v->p, (int)v->len,
				  SQLITE_TRANSIENT);
		break;
	case GS_CS_BLOB:
		sqlite3_bind_blob(st, idx, v->p, (int)v->len, SQLITE_TRANSIENT);
		break;
	default:
		sqlite3_bind_text(st, idx, "", 0, SQLITE_STATIC);
	}
}

/* ---- keys ------------------------------------------------------------- */

int gs__outbox_keys_by_hlc(struct gs_ctx *ctx, sqlite3 *db, uint64_t hlc)
{
	size_t n_tables = 0;
	const struct gs_table *tables = gs__manifest(&n_tables);
	char text[GS_HLC_TEXT_LEN];
	struct gs_buf sql;
	int rc = key_table(ctx, db);

	gs__hlc_format(text, hlc);
	gs__buf_init(&sql, ctx, 64 * 1024);
	for (size_t i = 0; rc == GS_OK && i < n_tables; i++) {
		const struct gs_table *t = &tables[i];
		sqlite3_stmt *st = NULL;
		int pk[2];
		int n = pk_cols(t, pk);

		if (!device_table(t) || n == 0 || !has_col(t, "hlc"))
			continue;
		sql.len = 0;
		rc = gs__buf_printf(&sql,
				    "INSERT OR IGNORE INTO temp.gs_rekey"
				    " SELECT '%s', \"%s\", %s%s%s FROM \"%s\""
				    " WHERE hlc = ?1",
				    t->name, t->cols[pk[0]].name,
				    n == 2 ? "\"" : "''",
				    n == 2 ? t->cols[pk[1]].name : "",
				    n == 2 ? "\"" : "", t->name);
		if (rc == GS_OK)
			rc = gs__buf_cstr(&sql);
		if (rc == GS_OK)
			rc = gs__db_prepare(ctx, db, &st, (char *)sql.data);
		if (rc == GS_OK) {
			sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
			rc = gs__db_step_done(ctx, db, st);
		}
		sqlite3_finalize(st);
	}
	gs__buf_fini(&sql);
	return rc;
}

int gs__outbox_key_add(struct gs_ctx *ctx,
		       sqlite3 *db,
		       const char *table,
		       const char *id)
{
	sqlite3_stmt *st = NULL;
	int rc = key_table(ctx, db);

	if (rc == GS_OK)
		rc = gs__db_prepare(ctx, db, &st,
				    "INSERT OR IGNORE INTO temp.gs_rekey"
				    " VALUES (?, ?, '')");
	if (rc == GS_OK) {
		sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
		rc = gs__db_step_done(ctx, db, st);
	}
	sqlite3_finalize(st);
	return rc;
}

int gs__outbox_keys_by_sent(struct gs_ctx *ctx,
			    sqlite3 *db,
			    uint64_t after,
			    uint64_t upto)
{
	sqlite3_stmt *st = NULL;
	int rc = key_table(ctx, db);

	if (rc == GS_OK)
		rc = gs__db_prepare(ctx, db, &st,
				    "INSERT OR IGNORE INTO temp.gs_rekey"
				    " SELECT tbl, k1, k2 FROM gs_sent"
				    " WHERE seq > ?1 AND seq <= ?2");
	if (rc == GS_OK) {
		sqlite3_bind_int64(st, 1, (sqlite3_int64)after);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)upto);
		rc = gs__db_step_done(ctx, db, st);
	}
	sqlite3_finalize(st);
	return rc;
}

struct keys_walk {
	struct gs_ctx *ctx;
	sqlite3 *db;
	sqlite3_stmt *st;
	uint64_t seq, hlc; /* for gs_sent */
};

/* One row's key into the statement (?1 table, ?2 k1, ?3 k2, then the
 * walk's own parameters). */
static int key_row(const struct gs_cs_row *row, void *payload)
{
	struct keys_walk *w = payload;
	const struct gs_cs_value *v =
		row->op == GS_CS_INSERT ? row->new_vals : row->old_vals;
	int pk[2];
	int n = pk_cols(row->table, pk);

	if (n == 0 || !device_table(row->table))
		return GS_OK;
	sqlite3_bind_text(w->st, 1, row->table->name, -1, SQLITE_STATIC);
	bind_cs(w->st, 2, &v[pk[0]]);
	if (n == 2)
		bind_cs(w->st, 3, &v[pk[1]]);
	else
		sqlite3_bind_text(w->st, 3, "", 0, SQLITE_STATIC);
	if (sqlite3_bind_parameter_count(w->st) >= 5) {
		sqlite3_bind_int64(w->st, 4, (sqlite3_int64)w->seq);
		sqlite3_bind_int64(w->st, 5, (sqlite3_int64)w->hlc);
	}
	return gs__db_step_done(w->ctx, w->db, w->st);
}

static int
walk_keys(struct keys_walk *w, const char *sql, const uint8_t *cs, size_t len)
{
	struct gs_cs_opts opts = GS_CS_OPTS_INIT;
	int rc;

	opts.allow = GS_CS_ALLOW_ALL;
	opts.max_bytes = RECAPTURE_MAX;
	opts.max_rows = (size_t)1 << 20;
	rc = gs__db_prepare(w->ctx, w->db, &w->st, sql);
	if (rc == GS_OK)
		rc = gs__cs_foreach(NULL, NULL, cs, len, &opts, key_row, w);
	sqlite3_finalize(w->st);
	w->st = NULL;
	/* Bytes that do not parse name no keys: the HLC still finds them. */
	return rc == GS_EPROTO ? GS_OK : rc;
}

static int
keys_by_bytes(struct gs_ctx *ctx, sqlite3 *db, const uint8_t *cs, size_t len)
{
	struct keys_walk w = { ctx, db, NULL, 0, 0 };
	int rc = key_table(ctx, db);

	if (rc == GS_OK)
		rc = walk_keys(
			&w,
			"INSERT OR IGNORE INTO temp.gs_rekey (tbl, k1, k2)"
			" VALUES (?1, ?2, ?3)",
			cs, len);
	return rc;
}

int gs__outbox_sent_log(struct gs_ctx *ctx,
			sqlite3 *db,
			uint64_t seq,
			uint64_t hlc,
			const uint8_t *cs,
			size_t len)
{
	struct keys_walk w = { ctx, db, NULL, seq, hlc };

	return walk_keys(&w,
			 "INSERT INTO gs_sent (tbl, k1, k2, seq, hlc)"
			 " VALUES (?1, ?2, ?3, ?4, ?5)",
			 cs, len);
}

/* ---- re-capture ------------------------------------------------------- */

static int next_seq(struct gs_ctx *ctx, sqlite3 *db, uint64_t *out)
{
	sqlite3_stmt *st = NULL;
	int rc = gs__db_prepare(ctx, db, &st,
				"SELECT max((SELECT seq_floor FROM gs_state"
				" WHERE id = 1), ifnull((SELECT max(seq)"
				" FROM gs_outbox), 0)) + 1");

	if (rc != GS_OK)
		return rc;
	if (sqlite3_step(st) == SQLITE_ROW) {
		*out = (uint64_t)sqlite3_column_int64(st, 0);
		rc = GS_OK;
	} else {
		rc = gs__err_from_sqlite(ctx, sqlite3_errcode(db), db);
	}
	sqlite3_finalize(st);
	return rc;
}

static void column_value(sqlite3_stmt *st, int i, struct gs_cs_value *v)
{
	memset(v, 0, sizeof(*v));
	switch (sqlite3_column_type(st, i)) {
	case SQLITE_INTEGER:
		v->type = GS_CS_INT;
		v->i = sqlite3_column_int64(st, i);
		break;
	case SQLITE_FLOAT:
		v->type = GS_CS_REAL;
		v->r = sqlite3_column_double(st, i);
		break;
	case SQLITE_TEXT:
		v->type = GS_CS_TEXT;
		v->p = sqlite3_column_text(st, i);
		v->len = (size_t)sqlite3_column_bytes(st, i);
		break;
	case SQLITE_BLOB:
		v->type = GS_CS_BLOB;
		v->p = sqlite3_column_blob(st, i);
		v->len = (size_t)sqlite3_column_bytes(st, i);
		if (v->p == NULL)
			v->p = (const uint8_t *)"";
		break;
	default:
		v->type = GS_CS_NULL;
	}
}

/* The keyed rows of table t, appended to out as INSERT records. */
static int recapture_table(struct gs_ctx *ctx,
			   sqlite3 *db,
			   const struct gs_table *t,
			   struct gs_buf *sql,
			   struct gs_buf *out,
			   size_t *rows)
{
	struct gs_cs_value vals[GS_CS_MAX_COLS];
	sqlite3_stmt *st = NULL;
	bool header = false;
	int pk[2];
	int n = pk_cols(t, pk);
	int rc;

	if (!device_table(t) || n == 0 || t->n_cols > GS_CS_MAX_COLS)
		return GS_OK;
	sql->len = 0;
	rc = gs__buf_printf(sql, "SELECT ");
	for (unsigned c = 0; rc == GS_OK && c < t->n_cols; c++)
		rc = gs__buf_printf(sql, "%st.\"%s\"", c ? "," : "",
				    t->cols[c].name);
	if (rc == GS_OK)
		rc = gs__buf_printf(sql,
				    " FROM \"%s\" t JOIN temp.gs_rekey r ON"
				    " r.tbl = '%s' AND t.\"%s\" = r.k1",
				    t->name, t->name, t->cols[pk[0]].name);
	if (rc == GS_OK && n == 2)
		rc = gs__buf_printf(sql, " AND t.\"%s\" = r.k2",
				    t->cols[pk[1]].name);
	if (rc == GS_OK)
		rc = gs__buf_cstr(sql);
	if (rc == GS_OK)
		rc = gs__db_prepare(ctx, db, &st, (char *)sql->data);
	while (rc == GS_OK && sqlite3_step(st) == SQLITE_ROW) {
		size_t need;

		for (unsigned c = 0; c < t->n_cols; c++)
			column_value(st, (int)c, &vals[c]);
		need = gs__cs_insert_size(t, vals);
		if (need == 0 || out->len + need + 256 > RECAPTURE_MAX)
			continue; /* not writable, or too much: left out */
		if (!header)
			rc = gs__cs_write_header(out, t);
		header = true;
		if (rc == GS_OK)
			rc = gs__cs_write_insert(out, t, vals);
		if (rc == GS_OK)
			(*rows)++;
	}
	sqlite3_finalize(st);
	return rc;
}

/* The keyed rows as one entry at seq (0: the next one). */
static int recapture_at(struct gs_ctx *ctx,
			sqlite3 *db,
			uint64_t seq,
			uint64_t hlc,
			size_t *rows_out)
{
	size_t n_tables = 0;
	const struct gs_table *tables = gs__manifest(&n_tables);
	struct gs_buf sql;
	struct gs_buf cs;
	sqlite3_stmt *st = NULL;
	uint8_t digest[GS_SHA256_LEN];
	size_t rows = 0;
	int rc = key_table(ctx, db);

	*rows_out = 0;
	gs__buf_init(&sql, ctx, 64 * 1024);
	gs__buf_init(&cs, ctx, RECAPTURE_MAX);
	for (size_t i = 0; rc == GS_OK && i < n_tables; i++)
		rc = recapture_table(ctx, db, &tables[i], &sql, &cs, &rows);
	if (rc == GS_OK && rows > 0 && seq == 0)
		rc = next_seq(ctx, db, &seq);
	if (rc == GS_OK && rows > 0)
		rc = gs__db_prepare(ctx, db, &st,
				    "INSERT INTO gs_outbox (seq, hlc, sha256,"
				    " changeset, created_at) VALUES (?, ?, ?,"
				    " ?, ?)");
	if (rc == GS_OK && rows > 0) {
		gs__sha256(digest, cs.data, cs.len);
		sqlite3_bind_int64(st, 1, (sqlite3_int64)seq);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)hlc);
		sqlite3_bind_blob(st, 3, digest, sizeof(digest), SQLITE_STATIC);
		sqlite3_bind_blob(st, 4, cs.data, (int)cs.len, SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, gs__clock_wall_ms(ctx));
		rc = gs__db_step_done(ctx, db, st);
	}
	sqlite3_finalize(st);
	if (rc == GS_OK)
		rc = gs__db_exec(ctx, db, "DELETE FROM temp.gs_rekey");
	gs__buf_fini(&sql);
	gs__buf_fini(&cs);
	if (rc == GS_OK)
		*rows_out = rows;
	return rc;
}

int gs__outbox_recapture(struct gs_ctx *ctx,
			 sqlite3 *db,
			 uint64_t hlc,
			 size_t *rows_out)
{
	return recapture_at(ctx, db, 0, hlc, rows_out);
}

/* ---- renumbering ------------------------------------------------------ */

int gs__outbox_renumber(struct gs_ctx *ctx, sqlite3 *db, uint64_t start)
{
	sqlite3_stmt *sel = NULL;
	sqlite3_stmt *upd = NULL;
	int64_t *seqs = NULL;
	size_t n = 0;
	size_t cap = 0;
	char sql[192];
	int rc;

	snprintf(sql, sizeof(sql),
		 "UPDATE gs_outbox SET seq = seq - %lld WHERE status <> 0"
		 " AND seq >= %lld",
		 (long long)SEQ_PARK, (long long)start);
	rc = gs__db_exec(ctx, db, sql);
	if (rc == GS_OK) {
		snprintf(sql, sizeof(sql),
			 "UPDATE gs_outbox SET seq = seq + %lld WHERE"
			 " status = 0",
			 (long long)SEQ_PARK);
		rc = gs__db_exec(ctx, db, sql);
	}
	if (rc == GS_OK)
		rc = gs__db_prepare(ctx, db, &sel,
				    "SELECT seq FROM gs_outbox WHERE status = 0"
				    " ORDER BY seq");
	while (rc == GS_OK && sqlite3_step(sel) == SQLITE_ROW) {
		if (n == cap) {
			size_t c = cap ? cap * 2 : 64;
			int64_t *p = gs__realloc(ctx, seqs, c * sizeof(*p));

			if (p == NULL) {
				rc = GS_ENOMEM;
				break;
			}
			seqs = p;
			cap = c;
		}
		seqs[n++] = sqlite3_column_int64(sel, 0);
	}
	sqlite3_finalize(sel);
	if (rc == GS_OK)
		rc = gs__db_prepare(
			ctx, db, &upd,
			"UPDATE gs_outbox SET seq = ? WHERE seq = ?");
	for (size_t i = 0; rc == GS_OK && i < n; i++) {
		sqlite3_bind_int64(upd, 1, (sqlite3_int64)(start + i));
		sqlite3_bind_int64(upd, 2, seqs[i]);
		rc = gs__db_step_done(ctx, db, upd);
	}
	sqlite3_finalize(upd);
	gs__free(ctx, seqs);
	/* The next capture reads the newest entry's HLC: keep the floor at
	 * or above every HLC the outbox holds, whatever order it is in. */
	if (rc == GS_OK)
		rc = gs__db_exec(
			ctx, db,
			"UPDATE gs_state SET hlc_floor = max(hlc_floor,"
			" ifnull((SELECT max(hlc) FROM gs_outbox), 0))"
			" WHERE id = 1");
	return rc;
}

/* ---- the check -------------------------------------------------------- */

struct bad {
	int64_t seq;
	uint64_t hlc;
	int status;
	char why[160];
};

static int verdict(const uint8_t *cs,
		   size_t len,
		   const void *sha,
		   size_t sha_len,
		   unsigned flags,
		   char *why,
		   size_t why_len)
{
	struct gs_cs_opts opts = GS_CS_OPTS_INIT;
	struct gs_cs_error err;
	uint8_t digest[GS_SHA256_LEN];
	int rc;

	opts.allow = GS_CS_ALLOW_ALL;
	opts.max_bytes = RECAPTURE_MAX;
	opts.max_rows = (size_t)1 << 20;
	if (len == 0) {
		snprintf(why, why_len, "the changeset is empty");
		return 1;
	}
	rc = gs__cs_check(&err, NULL, cs, len, &opts);
	if (rc != GS_OK) {
		snprintf(why, why_len,
			 "the changeset does not parse (%s at"
			 " byte %zu)",
			 gs__cs_reason_name(err.reason), err.offset);
		return 1;
	}
	if (flags & GS_OUTBOX_CHECK_HASH) {
		gs__sha256(digest, cs, len);
		if (sha_len != GS_SHA256_LEN ||
		    memcmp(digest, sha, GS_SHA256_LEN) != 0) {
			snprintf(why, why_len,
				 "its SHA-256 does not match the changeset");
			return 1;
		}
	}
	return 0;
}

static int find_bad(struct gs_ctx *ctx,
		    sqlite3 *db,
		    unsigned flags,
		    struct bad **out,
		    size_t *n_out)
{
	sqlite3_stmt *st = NULL;
	struct bad *b = NULL;
	size_t n = 0;
	size_t cap = 0;
	int rc;

	rc = gs__db_prepare(ctx, db, &st,
			    "SELECT seq, hlc, status, changeset, sha256"
			    " FROM gs_outbox ORDER BY seq");
	while (rc == GS_OK && sqlite3_step(st) == SQLITE_ROW) {
		struct bad x;

		memset(&x, 0, sizeof(x));
		if (!verdict(sqlite3_column_blob(st, 3),
			     (size_t)sqlite3_column_bytes(st, 3),
			     sqlite3_column_blob(st, 4),
			     (size_t)sqlite3_column_bytes(st, 4), flags, x.why,
			     sizeof(x.why)))
			continue;
		x.seq = sqlite3_column_int64(st, 0);
		x.hlc = (uint64_t)sqlite3_column_int64(st, 1);
		x.status = sqlite3_column_int(st, 2);
		if (n == cap) {
			size_t c = cap ? cap * 2 : 4;
			struct bad *p = gs__realloc(ctx, b, c * sizeof(*p));

			if (p == NULL) {
				rc = GS_ENOMEM;
				break;
			}
			b = p;
			cap = c;
		}
		b[n++] = x;
	}
	if (rc == GS_OK && sqlite3_errcode(db) != SQLITE_OK &&
	    sqlite3_errcode(db) != SQLITE_DONE &&
	    sqlite3_errcode(db) != SQLITE_ROW)
		rc = gs__err_from_sqlite(ctx, sqlite3_errcode(db), db);
	sqlite3_finalize(st);
	if (rc != GS_OK) {
		gs__free(ctx, b);
		return rc;
	}
	*out = b;
	*n_out = n;
	return GS_OK;
}

/* Move one entry into gs_quarantine; *qid_out is its row there. */
static int quarantine(struct gs_ctx *ctx,
		      sqlite3 *db,
		      const struct bad *b,
		      int64_t *qid_out)
{
	sqlite3_stmt *st = NULL;
	int rc = gs__db_prepare(
		ctx, db, &st,
		"INSERT INTO gs_quarantine (seq, hlc, sha256, changeset,"
		" status, reason, at) SELECT seq, hlc, sha256, changeset,"
		" status, ?2, ?3 FROM gs_outbox WHERE seq = ?1");

	if (rc == GS_OK) {
		sqlite3_bind_int64(st, 1, b->seq);
		sqlite3_bind_text(st, 2, b->why, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, gs__clock_wall_ms(ctx));
		rc = gs__db_step_done(ctx, db, st);
	}
	sqlite3_finalize(st);
	*qid_out = sqlite3_last_insert_rowid(db);
	if (rc == GS_OK)
		rc = gs__db_prepare(ctx, db, &st,
				    "DELETE FROM gs_outbox WHERE seq = ?");
	if (rc == GS_OK) {
		sqlite3_bind_int64(st, 1, b->seq);
		rc = gs__db_step_done(ctx, db, st);
	}
	sqlite3_finalize(st);
	return rc;
}

/* Re-capture what quarantined entry qid wrote, and tell the worker. */
static int recover(struct gs_ctx *ctx,
		   sqlite3 *db,
		   const struct bad *b,
		   int64_t qid,
		   struct gs_outbox_report *rep)
{
	sqlite3_stmt *st = NULL;
	char reason[400];
	size_t rows = 0;
	uint64_t seq = 0;
	int rc = GS_OK;

	/* A refusal the server recorded is not sent again: its rows stay
	 * as they are until the server's version arrives. */
	if (b->status == GS_OUTBOX_PENDING) {
		rc = gs__outbox_keys_by_hlc(ctx, db, b->hlc);
		if (rc == GS_OK)
			rc = gs__db_prepare(
				ctx, db, &st,
				"SELECT changeset FROM gs_quarantine"
				" WHERE id = ?");
		if (rc == GS_OK) {
			sqlite3_bind_int64(st, 1, qid);
			if (sqlite3_step(st) == SQLITE_ROW)
				rc = keys_by_bytes(
					ctx, db, sqlite3_column_blob(st, 0),
					(size_t)sqlite3_column_bytes(st, 0));
		}
		sqlite3_finalize(st);
		st = NULL;
		if (rc == GS_OK)
			rc = gs__outbox_recapture(ctx, db, b->hlc, &rows);
		if (rc == GS_OK && rows > 0)
			rc = next_seq(ctx, db, &seq);
		seq = seq > 0 ? seq - 1 : 0;
	}
	if (rc != GS_OK)
		return rc;
	if (rows > 0)
		snprintf(reason, sizeof(reason),
			 "quarantined: outbox entry %lld is damaged (%s); its"
			 " bytes are kept, %zu row(s) it wrote were"
			 " re-captured from the table as entry %llu",
			 (long long)b->seq, b->why, rows,
			 (unsigned long long)seq);
	else
		snprintf(reason, sizeof(reason),
			 "quarantined: outbox entry %lld is damaged (%s); its"
			 " bytes are kept, no row it wrote could be found to"
			 " send again (gridsync outbox recover TABLE ID sends"
			 " a row's current values)",
			 (long long)b->seq, b->why);
	rc = gs__db_prepare(ctx, db, &st,
			    "INSERT INTO gs_conflict (device_seq, tbl, pk,"
			    " col, reason, at) VALUES (?, '', '', NULL, ?, ?)");
	if (rc == GS_OK) {
		sqlite3_bind_int64(st, 1, b->seq);
		sqlite3_bind_text(st, 2, reason, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, gs__clock_wall_ms(ctx));
		rc = gs__db_step_done(ctx, db, st);
	}
	sqlite3_finalize(st);
	if (rc == GS_OK)
		rc = gs__db_prepare(ctx, db, &st,
				    "UPDATE gs_quarantine SET recaptured_seq ="
				    " ?2, rows = ?3 WHERE id = ?1");
	if (rc == GS_OK) {
		sqlite3_bind_int64(st, 1, qid);
		if (rows > 0)
			sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)rows);
		rc = gs__db_step_done(ctx, db, st);
	}
	sqlite3_finalize(st);
	if (rc == GS_OK && rep != NULL) {
		rep->recaptured += rows;
		rep->entries += rows > 0;
	}
	return rc;
}

int gs__seq_floor(struct gs_ctx *ctx, sqlite3 *db, uint64_t *out)
{
	sqlite3_stmt *st = NULL;
	int rc = gs__db_prepare(ctx, db, &st,
				"SELECT seq_floor FROM gs_state WHERE id = 1");

	*out = 0;
	if (rc == GS_OK && sqlite3_step(st) == SQLITE_ROW)
		*out = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc;
}

int gs__outbox_check(struct gs_ctx *ctx,
		     sqlite3 *db,
		     unsigned flags,
		     struct gs_outbox_report *rep)
{
	struct bad *b = NULL;
	int64_t *qid = NULL;
	uint64_t floor = 0;
	size_t n = 0;
	int rc;

	rc = find_bad(ctx, db, flags, &b, &n);
	if (rc != GS_OK || n == 0)
		return rc;
	qid = gs__calloc(ctx, n, sizeof(*qid));
	if (qid == NULL)
		rc = GS_ENOMEM;
	for (size_t i = 0; rc == GS_OK && i < n; i++) {
		GS_WARN(ctx, "outbox entry %lld quarantined: %s",
			(long long)b[i].seq, b[i].why);
		rc = quarantine(ctx, db, &b[i], &qid[i]);
	}
	if (rc == GS_OK)
		rc = gs__seq_floor(ctx, db, &floor);
	if (rc == GS_OK)
		rc = gs__outbox_renumber(ctx, db, floor + 1);
	for (size_t i = 0; rc == GS_OK && i < n; i++)
		rc = recover(ctx, db, &b[i], qid[i], rep);
	if (rc == GS_OK && rep != NULL)
		rep->quarantined += n;
	gs__free(ctx, qid);
	gs__free(ctx, b);
	return rc;
}

/* ---- a server that lost entries, a new incarnation ------------------- */

int gs__outbox_resend_lost(struct gs_ctx *ctx,
			   sqlite3 *db,
			   uint64_t held,
			   uint64_t floor,
			   struct gs_outbox_report *rep,
			   uint64_t *unknown_out)
{
	sqlite3_stmt *st = NULL;
	uint64_t next = held + 1;
	uint64_t known = 0;
	char sql[192];
	int rc;

	*unknown_out = 0;
	/* Pending entries out of the way (above), settled ones at or past
	 * the first number to reuse out of the way (below). */
	snprintf(sql, sizeof(sql),
		 "UPDATE gs_outbox SET seq = seq - %lld WHERE status <> 0"
		 " AND seq > %lld",
		 (long long)SEQ_PARK, (long long)held);
	rc = gs__db_exec(ctx, db, sql);
	if (rc == GS_OK) {
		snprintf(sql, sizeof(sql),
			 "UPDATE gs_outbox SET seq = seq + %lld WHERE"
			 " status = 0",
			 (long long)SEQ_PARK);
		rc = gs__db_exec(ctx, db, sql);
	}
	if (rc == GS_OK)
		rc = gs__db_prepare(ctx, db, &st,
				    "SELECT seq, max(hlc) FROM gs_sent WHERE"
				    " seq > ?1 AND seq <= ?2 GROUP BY seq"
				    " ORDER BY seq");
	if (rc == GS_OK) {
		sqlite3_bind_int64(st, 1, (sqlite3_int64)held);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)floor);
	}
	/* One entry per lost one, in their order, with their stamps. */
	while (rc == GS_OK && sqlite3_step(st) == SQLITE_ROW) {
		uint64_t seq = (uint64_t)sqlite3_column_int64(st, 0);
		uint64_t hlc = (uint64_t)sqlite3_column_int64(st, 1);
		size_t rows = 0;

		known++;
		rc = gs__outbox_keys_by_sent(ctx, db, seq - 1, seq);
		if (rc == GS_OK)
			rc = recapture_at(ctx, db, next, hlc, &rows);
		if (rc == GS_OK && rows > 0) {
			next++;
			if (rep != NULL) {
				rep->recaptured += rows;
				rep->entries++;
			}
		}
	}
	sqlite3_finalize(st);
	if (rc == GS_OK)
		rc = gs__outbox_renumber(ctx, db, held + 1);
	if (rc == GS_OK) {
		snprintf(sql, sizeof(sql),
			 "UPDATE gs_state SET seq_floor = %lld WHERE id = 1;"
			 " DELETE FROM gs_sent WHERE seq > %lld",
			 (long long)held, (long long)held);
		rc = gs__db_exec(ctx, db, sql);
	}
	if (rc == GS_OK)
		*unknown_out = floor - held - known;
	return rc;
}

int gs__outbox_restart(struct gs_ctx *ctx, sqlite3 *db)
{
	int rc = gs__db_exec(ctx, db,
			     "UPDATE gs_state SET seq_floor = 0 WHERE id = 1;"
			     " DELETE FROM gs_sent");

	if (rc == GS_OK)
		rc = gs__outbox_renumber(ctx, db, 1);
	return rc;
}
