/*
 * Change capture (see capture.h).
 *
 * Happy path: BEGIN IMMEDIATE; read the last device_seq and HLC (the
 * newest outbox row, or the floors in gs_state once entries have been
 * acknowledged and pruned); stamp this transaction; create a session that
 * attaches lazily to every replicated table the caller touches; on commit
 * take the changeset, insert it into gs_outbox, COMMIT.
 *
 * Why the sequence and clock are re-read inside every transaction instead
 * of cached: `gridsync sync` may run in another process and prune the
 * outbox, or advance the clock from a download, between two saves. Reading
 * under the write lock costs one indexed lookup and keeps device_seq and
 * the HLC strictly increasing across processes, without writing a separate
 * state row on every save (the outbox row itself carries both).
 *
 * Failure modes: any error before COMMIT rolls back, so a record never
 * exists without its outbox entry; a COMMIT that fails (disk full, I/O
 * error) is rolled back by SQLite; a crash at any point leaves either both
 * or neither (one WAL commit).
 */
#define GS_MODULE "sync.capture"

#include <string.h>

#include <gridsync/capture.h>
#include <gridsync/hlc.h>
#include <gridsync/schema.h>

struct gs_capture {
	struct gs_ctx *ctx;
	sqlite3 *db;
	sqlite3_session *sess;
	sqlite3_stmt *st_begin;
	sqlite3_stmt *st_commit;
	sqlite3_stmt *st_last;
	sqlite3_stmt *st_insert;
	uint64_t seq;
	uint64_t hlc;
	bool active;
};

static const char bookkeeping_sql[] =
	"CREATE TABLE IF NOT EXISTS gs_outbox ("
	" seq INTEGER PRIMARY KEY,"          /* device_seq */
	" hlc INTEGER NOT NULL,"             /* stamp of the transaction */
	" sha256 BLOB NOT NULL,"             /* of changeset */
	" changeset BLOB NOT NULL,"          /* as captured, uncompressed */
	" created_at INTEGER NOT NULL,"      /* wall ms, for display only */
	" status INTEGER NOT NULL DEFAULT 0" /* GS_OUTBOX_* (apply.h) */
	");"
	"CREATE TABLE IF NOT EXISTS gs_state ("
	" id INTEGER PRIMARY KEY CHECK(id = 1),"
	" seq_floor INTEGER NOT NULL," /* highest device_seq pruned */
	" hlc_floor INTEGER NOT NULL"  /* highest HLC pruned or received */
	");"
	"INSERT OR IGNORE INTO gs_state VALUES (1, 0, 0);"
	"CREATE TABLE IF NOT EXISTS gs_meta ("
	" key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS gs_conflict ("
	" id INTEGER PRIMARY KEY, device_seq INTEGER, tbl TEXT NOT NULL,"
	" pk TEXT NOT NULL, col TEXT, reason TEXT NOT NULL,"
	" winner TEXT, winner_hlc INTEGER, loser_hlc INTEGER,"
	" at INTEGER NOT NULL);"
	/* Damaged outbox entries, bytes kept (sync/outbox.c). */
	"CREATE TABLE IF NOT EXISTS gs_quarantine ("
	" id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, hlc INTEGER NOT NULL,"
	" sha256 BLOB, changeset BLOB, status INTEGER NOT NULL DEFAULT 0,"
	" reason TEXT NOT NULL, recaptured_seq INTEGER,"
	" rows INTEGER NOT NULL DEFAULT 0, at INTEGER NOT NULL);"
	/* Keys of the rows each acknowledged entry wrote, so a server
	 * restored from an older backup can be sent them again. */
	"CREATE TABLE IF NOT EXISTS gs_sent ("
	" seq INTEGER NOT NULL, hlc INTEGER NOT NULL, tbl TEXT NOT NULL,"
	" k1 NOT NULL, k2 NOT NULL);"
	"CREATE INDEX IF NOT EXISTS gs_sent_seq ON gs_sent(seq);"
	/* Server conflict ids already kept in gs_conflict: a conflict can
	 * come in a PushAck and again in a pull, or twice after a crash. */
	"CREATE TABLE IF NOT EXISTS gs_conflict_seen ("
	" id INTEGER PRIMARY KEY);";

/* Columns added to bookkeeping tables after their first release: added
 * when missing, so a database made by an older build keeps working. */
static const struct {
	const char *table, *column, *sql;
} added_columns[] = {
	{ "gs_conflict", "value",
	  "ALTER TABLE gs_conflict ADD COLUMN value TEXT" },
};

static int column_missing(struct gs_ctx *ctx,
			  sqlite3 *db,
			  const char *table,
			  const char *column,
			  bool *out)
{
	sqlite3_stmt *st = NULL;
	int rc = gs__db_prepare(ctx, db, &st,
				"SELECT count(*) FROM pragma_table_info(?1)"
				" WHERE name = ?2");

	if (rc != GS_OK)
		return rc;
	sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, column, -1, SQLITE_STATIC);
	rc = sqlite3_step(st) == SQLITE_ROW
		     ? GS_OK
		     : gs__err_from_sqlite(ctx, sqlite3_errcode(db), db);
	*out = rc == GS_OK && sqlite3_column_int(st, 0) == 0;
	sqlite3_finalize(st);
	return rc;
}

int gs__bookkeeping_install(struct gs_ctx *ctx, sqlite3 *db)
{
	int rc = gs__db_exec(ctx, db, bookkeeping_sql);

	for (size_t i = 0; rc == GS_OK &&
			   i < sizeof(added_columns) / sizeof(added_columns[0]);
	     i++) {
		bool missing = false;

		rc = column_missing(ctx, db, added_columns[i].table,
				    added_columns[i].column, &missing);
		if (rc == GS_OK && missing)
			rc = gs__db_exec(ctx, db, added_columns[i].sql);
	}
	return rc;
}

/* Only replicated tables are captured; gs_* and sqlite_* never are. */
static int table_filter(void *payload, const char *table)
{
	(void)payload;
	return gs__manifest_find(table) != NULL;
}

int gs__capture_open(struct gs_capture **out, struct gs_ctx *ctx, sqlite3 *db)
{
	struct gs_capture *c = NULL;
	int rc;

	GS_CHECK_ARG(out != NULL && db != NULL);
	*out = NULL;
	c = gs__calloc(ctx, 1, sizeof(*c));
	if (c == NULL)
		return GS_ENOMEM;
	c->ctx = ctx;
	c->db = db;
	rc = gs__db_prepare(
		ctx, db, &c->st_last,
		"SELECT max(s.seq_floor, ifnull(o.seq, 0)),"
		" max(s.hlc_floor, ifnull(o.hlc, 0))"
		" FROM gs_state s LEFT JOIN"
		" (SELECT seq, hlc FROM gs_outbox ORDER BY seq DESC LIMIT 1) o"
		" WHERE s.id = 1");
	/* BEGIN and COMMIT are prepared once: parsing them on every save
	 * costs more than the insert of a small row. */
	if (rc == GS_OK)
		rc = gs__db_prepare(ctx, db, &c->st_begin, "BEGIN IMMEDIATE");
	if (rc == GS_OK)
		rc = gs__db_prepare(ctx, db, &c->st_commit, "COMMIT");
	if (rc == GS_OK)
		rc = gs__db_prepare(ctx, db, &c->st_insert,
				    "INSERT INTO gs_outbox (seq, hlc, sha256,"
				    " changeset, created_at)"
				    " VALUES (?, ?, ?, ?, ?)");
	if (rc != GS_OK) {
		gs__capture_close(c);
		return rc;
	}
	*out = c;
	return GS_OK;
}

void gs__capture_close(struct gs_capture *c)
{
	if (c == NULL)
		return;
	gs__capture_rollback(c);
	sqlite3_finalize(c->st_begin);
	sqlite3_finalize(c->st_commit);
	sqlite3_finalize(c->st_last);
	sqlite3_finalize(c->st_insert);
	gs__free(c->ctx, c);
}

bool gs__capture_active(const struct gs_capture *c)
{
	return c != NULL && c->active;
}

static int read_last(struct gs_capture *c, uint64_t *seq, uint64_t *hlc)
{
	int rc = sqlite3_step(c->st_last);

	if (rc == SQLITE_ROW) {
		*seq = (uint64_t)sqlite3_column_int64(c->st_last, 0);
		*hlc = (uint64_t)sqlite3_column_int64(c->st_last, 1);
		rc = GS_OK;
	} else if (rc == SQLITE_DONE) {
		rc = gs__err(c->ctx, GS_ECORRUPT, "gs_state row is missing");
	} else {
		rc = gs__err_from_sqlite(c->ctx, rc, c->db);
	}
	sqlite3_reset(c->st_last);
	return rc;
}

int gs__capture_state(struct gs_capture *c,
		      uint64_t *seq_out,
		      uint64_t *hlc_out)
{
	GS_CHECK_ARG(c != NULL && seq_out != NULL && hlc_out != NULL);
	return read_last(c, seq_out, hlc_out);
}

int gs__capture_begin(struct gs_capture *c, uint64_t *hlc_out)
{
	uint64_t seq = 0;
	uint64_t hlc = 0;
	int rc;

	GS_CHECK_ARG(c != NULL && hlc_out != NULL);
	GS_ASSERT(!c->active);
	rc = gs__db_step_done(c->ctx, c->db, c->st_begin);
	if (rc != GS_OK)
		return rc;
	c->active = true;
	rc = read_last(c, &seq, &hlc);
	if (rc != GS_OK)
		goto fail;
	rc = sqlite3session_create(c->db, "main", &c->sess);
	if (rc != SQLITE_OK) {
		rc = gs__err_from_sqlite(c->ctx, rc, c->db);
		goto fail;
	}
	sqlite3session_table_filter(c->sess, table_filter, NULL);
	rc = sqlite3session_attach(c->sess, NULL);
	if (rc != SQLITE_OK) {
		rc = gs__err_from_sqlite(c->ctx, rc, c->db);
		goto fail;
	}
	c->seq = seq + 1;
	c->hlc = gs__hlc_next(hlc, gs__clock_wall_ms(c->ctx));
	*hlc_out = c->hlc;
	return GS_OK;
fail:
	gs__capture_rollback(c);
	return rc;
}

static int store_entry(struct gs_capture *c, const void *cs, int n)
{
	uint8_t digest[GS_SHA256_LEN];
	sqlite3_stmt *st = c->st_insert;

	gs__sha256(digest, cs, (size_t)n);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)c->seq);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)c->hlc);
	sqlite3_bind_blob(st, 3, digest, sizeof(digest), SQLITE_STATIC);
	sqlite3_bind_blob(st, 4, cs, n, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, gs__clock_wall_ms(c->ctx));
	return gs__db_step_done(c->ctx, c->db, st);
}

int gs__capture_commit(struct gs_capture *c, uint64_t *seq_out)
{
	void *cs = NULL;
	int n = 0;
	int rc;

	GS_CHECK_ARG(c != NULL);
	GS_ASSERT(c->active);
	rc = sqlite3session_changeset(c->sess, &n, &cs);
	if (rc != SQLITE_OK) {
		rc = gs__err_from_sqlite(c->ctx, rc, c->db);
		goto fail;
	}
	sqlite3session_delete(c->sess);
	c->sess = NULL;
	if (n > 0) {
		rc = store_entry(c, cs, n);
		sqlite3_clear_bindings(c->st_insert);
		if (rc != GS_OK)
			goto fail;
	}
	rc = gs__db_step_done(c->ctx, c->db, c->st_commit);
	if (rc != GS_OK)
		goto fail;
	c->active = false;
	if (seq_out != NULL)
		*seq_out = n > 0 ? c->seq : 0;
	sqlite3_free(cs);
	return GS_OK;
fail:
	sqlite3_free(cs);
	gs__capture_rollback(c);
	return rc;
}

void gs__capture_rollback(struct gs_capture *c)
{
	if (c == NULL)
		return;
	if (c->sess != NULL) {
		sqlite3session_delete(c->sess);
		c->sess = NULL;
	}
	if (c->active) {
		/* Fails only if no transaction is open (SQLite already rolled
		 * back after an I/O error): nothing left to undo then. */
		sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
		c->active = false;
	}
}
