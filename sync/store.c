/*
 * The district server's store on SQLite (contract in store.h): the
 * replicated tables are the server's truth, next to its own tables:
 *
 *   srv_meta      key/value: server_id (a UUIDv7 made at creation)
 *   srv_device    the device registry (enrolment, scope codes, revoked)
 *   srv_received  every entry judged, applied or rejected: the dedup key
 *                 (device, device_seq, sha256), the uploaded bytes and the
 *                 journal intent (journaled = 0 until gs__journal_sync)
 *   srv_change    the change log for downloads: one row per replicated row
 *                 holding the LATEST server_seq that touched it (the
 *                 rowid), the grid that scopes it (NULL: reference data
 *                 every device receives) and whether it must never leave
 *                 the server (restricted tags)
 *   srv_clock     per-column clocks (tbl, pk, col) -> (hlc, device), only
 *                 for columns written after the row's insert
 *   srv_conflict  every conflict, winner and loser; deliver_seq is the
 *                 server_seq the loser receives it with (a pull covering
 *                 it sends it), delivered_at when the loser's cursor
 *                 passed it (it had stored it)
 *   srv_device_stamp  per device, the stamp its last merged entry got
 *                 (a clamped entry stays after the device's earlier ones)
 *   srv_claimed_time  device-claimed times the merge bounded: what was
 *                 claimed and what was stored instead (sync/claimed.c)
 *   srv_cert      every device certificate issued since this table exists
 *                 (serial in hex, revoked when the device was revoked or
 *                 enrolled again): the handshake accepts only a serial
 *                 that is listed and not revoked (docs/SECURITY.md)
 *
 * The merge rules live in merge.c behind struct gs_store_ops; this file
 * implements those ops with cached prepared statements (one set per
 * table, prepared on first use) and the rest of the store API. One
 * writer: the server's loop thread.
 *
 * Grids in SQL: every place that needs "the grid that scopes this row"
 * (seeding, the merge's row_grid, cascades, the scope hash) builds it from
 * the manifest with sql_grid_expr(), so there is one definition. Device data
 * without a grid gets '' (in no scope), never NULL (everybody's).
 */
#define GS_MODULE "sync.store"

#include <stdio.h>
#include <string.h>

#include <gridsync/cswrite.h>
#include <gridsync/hlc.h>
#include <gridsync/scope.h>
#include <gridsync/store.h>
#include <gridsync/store_ops.h>

#define MAX_TABLES     32
#define SCOPE_NARROW   256 /* grids; wider scopes scan the log */
#define CACHE_KIB      65536
#define SEED_CACHE_KIB 262144
#define PULL_MAX_BYTES GS_CS_MAX_BYTES_DEFAULT
#define PULL_MAX_ROWS  GS_CS_MAX_ROWS_DEFAULT
#define SQL_MAX        (64u * 1024)

static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS srv_meta ("
	" key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS srv_device ("
	" id TEXT PRIMARY KEY, worker_id TEXT NOT NULL, role TEXT NOT NULL,"
	" scope TEXT NOT NULL, revoked INTEGER NOT NULL DEFAULT 0,"
	" enrolled_at INTEGER NOT NULL, last_seen_ms INTEGER NOT NULL"
	" DEFAULT 0);"
	/* Exactly the journal module's contract: do not change alone. */
	"CREATE TABLE IF NOT EXISTS srv_received ("
	" id INTEGER PRIMARY KEY,"
	" device_id TEXT NOT NULL,"
	" device_seq INTEGER NOT NULL,"
	" sha256 BLOB NOT NULL,"
	" hlc INTEGER NOT NULL,"
	" changeset BLOB NOT NULL,"
	" result INTEGER NOT NULL,"
	" reject_code INTEGER NOT NULL DEFAULT 0,"
	" reason TEXT,"
	" server_seq_first INTEGER,"
	" server_seq_last INTEGER,"
	" received_at INTEGER NOT NULL,"
	" journaled INTEGER NOT NULL DEFAULT 0,"
	" UNIQUE (device_id, device_seq));"
	"CREATE INDEX IF NOT EXISTS srv_received_unjournaled ON"
	" srv_received(id) WHERE journaled = 0;"
	/* Incarnations of each device (store.h): index k numbers its
	 * entries from k * GS_STORE_SEQ_SPAN in srv_received. */
	"CREATE TABLE IF NOT EXISTS srv_incarnation ("
	" device_id TEXT NOT NULL, incarnation TEXT NOT NULL,"
	" k INTEGER NOT NULL, first_seen INTEGER NOT NULL,"
	" PRIMARY KEY (device_id, incarnation)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS srv_change ("
	" server_seq INTEGER PRIMARY KEY, tbl TEXT NOT NULL, pk TEXT NOT NULL,"
	" grid_id TEXT, restricted INTEGER NOT NULL DEFAULT 0,"
	" UNIQUE (tbl, pk));"
	/* With the rowid appended, (grid_id, server_seq) order: a narrow
	 * scope's pull is a few index ranges. */
	"CREATE INDEX IF NOT EXISTS srv_change_grid ON srv_change(grid_id);"
	"CREATE TABLE IF NOT EXISTS srv_clock ("
	" tbl TEXT NOT NULL, pk TEXT NOT NULL, col TEXT NOT NULL,"
	" hlc INTEGER NOT NULL, device TEXT NOT NULL,"
	" PRIMARY KEY (tbl, pk, col)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS srv_conflict ("
	" id INTEGER PRIMARY KEY,"
	" device_id TEXT NOT NULL," /* the loser */
	" device_seq INTEGER,"      /* the loser's entry, when it is known */
	" tbl TEXT NOT NULL, pk TEXT NOT NULL, col TEXT NOT NULL,"
	" winner_device TEXT NOT NULL, winner_hlc INTEGER NOT NULL,"
	" winner_value,"
	" loser_device TEXT NOT NULL, loser_hlc INTEGER NOT NULL,"
	" loser_value,"
	" at INTEGER NOT NULL,"
	" entry_device TEXT NOT NULL, entry_seq INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS srv_conflict_device ON"
	" srv_conflict(device_id);"
	"CREATE INDEX IF NOT EXISTS srv_conflict_entry ON"
	" srv_conflict(entry_device, entry_seq);"
	"CREATE TABLE IF NOT EXISTS srv_device_stamp ("
	" device_id TEXT PRIMARY KEY, hlc INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS srv_cert ("
	" serial TEXT PRIMARY KEY, device_id TEXT NOT NULL,"
	" issued_at INTEGER NOT NULL, revoked INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX IF NOT EXISTS srv_cert_device ON srv_cert(device_id);"
	"CREATE TABLE IF NOT EXISTS srv_claimed_time ("
	" id INTEGER PRIMARY KEY, device_id TEXT NOT NULL,"
	" device_seq INTEGER NOT NULL, tbl TEXT NOT NULL, pk TEXT NOT NULL,"
	" col TEXT NOT NULL, claimed TEXT NOT NULL, stored TEXT NOT NULL,"
	" at INTEGER NOT NULL);"
	/* Server-only indexes for cascades (not part of the replicated
	 * schema; changesets do not see indexes). */
	"CREATE INDEX IF NOT EXISTS srv_ix_resident_tag ON"
	" resident_tag(resident_id);"
	"CREATE INDEX IF NOT EXISTS srv_ix_attachment_owner ON"
	" attachment(owner_id);"
	"CREATE INDEX IF NOT EXISTS srv_ix_mobres_household ON"
	" mobilization_result(household_id);"
	"CREATE INDEX IF NOT EXISTS srv_ix_household_dwelling ON"
	" household(dwelling_id);"
	/* Rows that left a grid (grid_id) or a worker's issues (worker_id)
	 * at server_seq: what tells a device to purge them (docs/SYNC.md,
	 * "Scope changes"). */
	"CREATE TABLE IF NOT EXISTS srv_leave ("
	" server_seq INTEGER NOT NULL, tbl TEXT NOT NULL, pk TEXT NOT NULL,"
	" grid_id TEXT, worker_id TEXT);"
	"CREATE INDEX IF NOT EXISTS srv_leave_seq ON srv_leave(server_seq);"
	/* A worker's issues, for the assignee-or-reporter part of a scope. */
	"CREATE INDEX IF NOT EXISTS srv_ix_issue_assignee ON"
	" issue(assignee_worker_id) WHERE assignee_worker_id IS NOT NULL;"
	"CREATE INDEX IF NOT EXISTS srv_ix_issue_reporter ON"
	" issue(reporter_worker_id) WHERE reporter_worker_id IS NOT NULL;";

/* Columns added after the first release: added when missing, so a store
 * created by an older gridsyncd keeps opening. */
static const struct {
	const char *table;
	const char *column;
	const char *decl;
} added_cols[] = {
	/* Server-owned scope: bumped on every change of srv_device.scope;
	 * the codes before it while the device has not applied it. */
	{ "srv_device", "scope_version", "INTEGER NOT NULL DEFAULT 1" },
	{ "srv_device", "scope_acked", "INTEGER NOT NULL DEFAULT 0" },
	{ "srv_device", "prev_scope", "TEXT" },
	/* An issue's [assignee, reporter] as last logged. */
	{ "srv_change", "reach", "TEXT" },
};

/* Per-table statements, prepared on first use. */
enum tkind { TS_GET, TS_INS, TS_GRID, TS_PULL, TS_N };

/* UPDATE statements per table, by the set of columns they write: a few
 * shapes recur (an issue's move, a household's edit), so a small cache
 * with round-robin eviction keeps them prepared. */
#define UPD_CACHE 8

struct upd {
	uint64_t cols;
	sqlite3_stmt *st;
};

/* Fixed statements, prepared at open. */
enum fx {
	FX_BEGIN,
	FX_COMMIT,
	FX_ROLLBACK,
	FX_SAVEPOINT,
	FX_RELEASE,
	FX_ROLLBACK_TO,
	FX_RCV_LAST,
	FX_RCV_GET,
	FX_RCV_PUT,
	FX_CLK_GET,
	FX_CLK_PUT,
	FX_CHG_PUT,
	FX_CHG_NEW,
	FX_CF_PUT,
	FX_STAMP_GET,
	FX_STAMP_PUT,
	FX_CF_LOAD,
	FX_CF_DUE,
	FX_CF_DONE,
	FX_DUP_HH,
	FX_DUP_RES,
	FX_MERGED,
	FX_TAG_RESTR,
	FX_PULL_NARROW,
	FX_PULL_WIDE,
	FX_CHG_OLD,
	FX_LEAVE_PUT,
	FX_LEAVES,
	FX_MINE,
	FX_ISSUE_REACH,
	FX_N
};

struct scope_cache {
	bool valid;
	char dev[GS_STORE_DEVICE_MAX];
	char codes[2 * GS_STORE_SCOPE_MAX];
	struct gs_scope scope;
	struct gs_buf json; /* ["grid",...] for the narrow pull */
};

struct gs_store {
	struct gs_ctx *ctx;
	sqlite3 *db;
	char server_id[GS_UUID_LEN];
	const struct gs_table *tables;
	size_t n_tables;
	sqlite3_stmt *ts[MAX_TABLES][TS_N];
	struct upd upd[MAX_TABLES][UPD_CACHE];
	unsigned upd_next[MAX_TABLES];
	sqlite3_stmt *fx[FX_N]; /* fixed statements, prepared at open */
	uint64_t seq;           /* last server_seq handed out */
	uint64_t seq_txn;       /* at begin */
	uint64_t seq_sp;        /* at savepoint */
	struct scope_cache sc;
	size_t narrow_max;  /* grids: wider scopes walk the whole log */
	struct gs_buf sql;  /* scratch for generated SQL */
	struct gs_buf filt; /* scratch for the scope hash's filters */
};

/* ---- small helpers ------------------------------------------------------ */

static size_t tindex(const struct gs_store *st, const struct gs_table *t)
{
	size_t i = (size_t)(t - st->tables);

	GS_ASSERT(i < st->n_tables);
	return i;
}

static int prep(struct gs_store *st, sqlite3_stmt **slot, const char *sql)
{
	if (*slot != NULL)
		return GS_OK;
	return gs__db_prepare(st->ctx, st->db, slot, sql);
}

/* Step a write; a constraint of the replicated schema is GS_EINVAL (the
 * entry is rejected), anything else is translated as usual. */
static int step_write(struct gs_store *st, sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	if (rc == SQLITE_DONE || rc == SQLITE_ROW)
		return GS_OK;
	if ((rc & 0xff) == SQLITE_CONSTRAINT)
		return gs__err(st->ctx, GS_EINVAL, "%s",
			       sqlite3_errmsg(st->db));
	return gs__err_from_sqlite(st->ctx, rc, st->db);
}

static void bind_value(sqlite3_stmt *s, int i, const struct gs_cs_value *v)
{
	switch (v->type) {
	case GS_CS_INT:
		sqlite3_bind_int64(s, i, v->i);
		break;
	case GS_CS_REAL:
		sqlite3_bind_double(s, i, v->r);
		break;
	case GS_CS_TEXT:
		sqlite3_bind_text(s, i, (const char *)v->p, (int)v->len,
				  SQLITE_STATIC);
		break;
	case GS_CS_BLOB:
		sqlite3_bind_blob(s, i, v->p, (int)v->len, SQLITE_STATIC);
		break;
	default:
		sqlite3_bind_null(s, i);
	}
}

/* Column i of a stepped statement as a value (borrowed until the
 * statement moves). */
static void column_value(sqlite3_stmt *s, int i, struct gs_cs_value *v)
{
	memset(v, 0, sizeof(*v));
	switch (sqlite3_column_type(s, i)) {
	case SQLITE_INTEGER:
		v->type = GS_CS_INT;
		v->i = sqlite3_column_int64(s, i);
		break;
	case SQLITE_FLOAT:
		v->type = GS_CS_REAL;
		v->r = sqlite3_column_double(s, i);
		break;
	case SQLITE_TEXT:
		v->type = GS_CS_TEXT;
		v->p = sqlite3_column_text(s, i);
		v->len = (size_t)sqlite3_column_bytes(s, i);
		break;
	case SQLITE_BLOB:
		v->type = GS_CS_BLOB;
		v->p = sqlite3_column_blob(s, i);
		v->len = (size_t)sqlite3_column_bytes(s, i);
		break;
	default:
		v->type = GS_CS_NULL;
	}
}

/* ---- SQL built from the manifest ----------------------------------------- */

static int sql_key_where(struct gs_buf *b, const struct gs_table *t)
{
	bool first = true;
	int rc = gs__buf_printf(b, " WHERE ");

	for (unsigned i = 0; i < t->n_cols && rc == GS_OK; i++) {
		if (!(t->cols[i].flags & GS_COL_PK))
			continue;
		rc = gs__buf_printf(b, "%s\"%s\" = ?%u", first ? "" : " AND ",
				    t->cols[i].name, i + 1);
		first = false;
	}
	return rc;
}

static int sql_cols(struct gs_buf *b, const struct gs_table *t)
{
	int rc = GS_OK;

	for (unsigned i = 0; i < t->n_cols && rc == GS_OK; i++)
		rc = gs__buf_printf(b, "%s\"%s\"", i ? "," : "",
				    t->cols[i].name);
	return rc;
}

/* The row's key as text (gs__merge_pk_text's form) in SQL. */
static int sql_pk_expr(struct gs_buf *b, const struct gs_table *t)
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

/* The grid that scopes a row of t (one definition: scope.c). */
static int
sql_grid_expr(struct gs_buf *b, const struct gs_table *t, bool *global)
{
	return gs__scope_grid_sql(b, t, global);
}

/* 1 for a restricted special-population tag, else 0, over t's columns. */
static int sql_restricted_expr(struct gs_buf *b, const struct gs_table *t)
{
	if (strcmp(t->name, "resident_tag") != 0)
		return gs__buf_printf(b, "0");
	return gs__buf_printf(b, "ifnull((SELECT d.sensitivity = 'restricted'"
				 " FROM tag_def d WHERE d.code ="
				 " \"resident_tag\".\"tag_code\"), 0)");
}

/* Prepare (once) statement k of table t. */
static int tstmt(struct gs_store *st,
		 const struct gs_table *t,
		 enum tkind k,
		 sqlite3_stmt **out)
{
	sqlite3_stmt **slot = &st->ts[tindex(st, t)][k];
	struct gs_buf *b = &st->sql;
	bool global;
	bool first = true;
	int rc = GS_OK;

	if (*slot != NULL) {
		*out = *slot;
		return GS_OK;
	}
	b->len = 0;
	switch (k) {
	case TS_GET:
		rc = gs__buf_printf(b, "SELECT ");
		if (rc == GS_OK)
			rc = sql_cols(b, t);
		if (rc == GS_OK)
			rc = gs__buf_printf(b, " FROM \"%s\"", t->name);
		if (rc == GS_OK)
			rc = sql_key_where(b, t);
		break;
	case TS_INS:
		rc = gs__buf_printf(b, "INSERT INTO \"%s\" (", t->name);
		if (rc == GS_OK)
			rc = sql_cols(b, t);
		if (rc == GS_OK)
			rc = gs__buf_printf(b, ") VALUES (");
		for (unsigned i = 0; i < t->n_cols && rc == GS_OK; i++)
			rc = gs__buf_printf(b, "%s?%u", i ? "," : "", i + 1);
		if (rc == GS_OK)
			rc = gs__buf_printf(b, ") ON CONFLICT (");
		for (unsigned i = 0; i < t->n_cols && rc == GS_OK; i++) {
			if (!(t->cols[i].flags & GS_COL_PK))
				continue;
			rc = gs__buf_printf(b, "%s\"%s\"", first ? "" : ",",
					    t->cols[i].name);
			first = false;
		}
		if (rc == GS_OK)
			rc = gs__buf_printf(b, ") DO NOTHING");
		break;
	case TS_GRID:
		GS_ASSERT(gs__table_n_pk(t) == 1);
		rc = gs__buf_printf(b, "SELECT ");
		if (rc == GS_OK)
			rc = sql_grid_expr(b, t, &global);
		if (rc == GS_OK && global)
			rc = gs__buf_printf(b, "NULL");
		if (rc == GS_OK)
			rc = gs__buf_printf(b, " FROM \"%s\" WHERE \"%s\" = ?1",
					    t->name, t->cols[0].name);
		break;
	default: /* TS_PULL: by the key's text, and whether it aged out */
		rc = gs__buf_printf(b, "SELECT ");
		if (rc == GS_OK)
			rc = sql_cols(b, t);
		if (rc == GS_OK)
			rc = gs__buf_printf(b, ", ");
		if (rc == GS_OK)
			rc = gs__scope_live_sql(b, t, "?2", "?3");
		if (rc == GS_OK)
			rc = gs__buf_printf(b, " FROM \"%s\" WHERE ", t->name);
		for (unsigned i = 0, k2 = 0; i < t->n_cols && rc == GS_OK;
		     i++) {
			if (!(t->cols[i].flags & GS_COL_PK))
				continue;
			if (gs__table_n_pk(t) == 1)
				rc = gs__buf_printf(b, "\"%s\" = ?1",
						    t->cols[i].name);
			else
				rc = gs__buf_printf(
					b,
					"%s\"%s\" = json_extract(?1, '$[%u]')",
					k2 ? " AND " : "", t->cols[i].name, k2);
			k2++;
		}
		break;
	}
	if (rc == GS_OK)
		rc = gs__buf_cstr(b);
	if (rc == GS_OK)
		rc = gs__db_prepare(st->ctx, st->db, slot,
				    (const char *)b->data);
	if (rc == GS_OK)
		*out = *slot;
	return rc;
}

/* ---- the ops of merge.c ------------------------------------------------ */

static int run(struct gs_store *st, sqlite3_stmt *s)
{
	return gs__db_step_done(st->ctx, st->db, s);
}

static int op_begin(void *impl)
{
	struct gs_store *st = impl;
	int rc = run(st, st->fx[FX_BEGIN]);

	if (rc == GS_OK)
		st->seq_txn = st->seq;
	return rc;
}

static int op_commit(void *impl)
{
	struct gs_store *st = impl;

	return run(st, st->fx[FX_COMMIT]);
}

static void op_rollback(void *impl)
{
	struct gs_store *st = impl;

	/* SQLite may already have rolled back (disk full, I/O error). */
	if (!sqlite3_get_autocommit(st->db))
		run(st, st->fx[FX_ROLLBACK]);
	st->seq = st->seq_txn;
}

static int op_savepoint(void *impl)
{
	struct gs_store *st = impl;
	int rc = run(st, st->fx[FX_SAVEPOINT]);

	if (rc == GS_OK)
		st->seq_sp = st->seq;
	return rc;
}

static int op_release(void *impl)
{
	struct gs_store *st = impl;

	return run(st, st->fx[FX_RELEASE]);
}

static int op_rollback_to(void *impl)
{
	struct gs_store *st = impl;
	int rc = run(st, st->fx[FX_ROLLBACK_TO]);

	if (rc == GS_OK)
		st->seq = st->seq_sp;
	return rc;
}

static int op_received_last(void *impl,
			    const char *device_id,
			    uint64_t base,
			    uint64_t *out)
{
	struct gs_store *st = impl;
	sqlite3_stmt *s = st->fx[FX_RCV_LAST];
	int rc;

	sqlite3_bind_text(s, 1, device_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)base);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)(base + GS_STORE_SEQ_SPAN));
	rc = sqlite3_step(s);
	*out = rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL
		       ? (uint64_t)sqlite3_column_int64(s, 0) - base
		       : 0;
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE
		       ? GS_OK
		       : gs__err_from_sqlite(st->ctx, rc, st->db);
}

static int op_received_get(void *impl,
			   const char *device_id,
			   uint64_t device_seq,
			   struct gs_received *out)
{
	struct gs_store *st = impl;
	sqlite3_stmt *s = st->fx[FX_RCV_GET];
	int rc;

	/* The previous answer's strings live in this statement. */
	sqlite3_reset(s);
	sqlite3_bind_text(s, 1, device_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)device_seq);
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE) {
		sqlite3_reset(s);
		return GS_ENOTFOUND;
	}
	if (rc != SQLITE_ROW) {
		sqlite3_reset(s);
		return gs__err_from_sqlite(st->ctx, rc, st->db);
	}
	memset(out, 0, sizeof(*out));
	out->device_id = device_id;
	out->device_seq = device_seq;
	if (sqlite3_column_bytes(s, 0) != GS_SHA256_LEN) {
		sqlite3_reset(s);
		return gs__err(st->ctx, GS_ECORRUPT,
			       "srv_received: bad sha256 for %s/%llu",
			       device_id, (unsigned long long)device_seq);
	}
	out->sha256 = sqlite3_column_blob(s, 0);
	out->result = (enum gs_entry_result)sqlite3_column_int(s, 1);
	out->reject_code = (enum gs_reject)sqlite3_column_int(s, 2);
	out->reason = (const char *)sqlite3_column_text(s, 3);
	return GS_OK;
}

static void bind_seq(sqlite3_stmt *s, int i, uint64_t v)
{
	if (v == 0)
		sqlite3_bind_null(s, i);
	else
		sqlite3_bind_int64(s, i, (sqlite3_int64)v);
}

static int op_received_put(void *impl, const struct gs_received *r)
{
	struct gs_store *st = impl;
	sqlite3_stmt *s = st->fx[FX_RCV_PUT];

	sqlite3_bind_text(s, 1, r->device_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)r->device_seq);
	sqlite3_bind_blob(s, 3, r->sha256, GS_SHA256_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, (sqlite3_int64)r->hlc);
	sqlite3_bind_blob(s, 5, r->len > 0 ? (const void *)r->changeset : "",
			  (int)r->len, SQLITE_STATIC);
	sqlite3_bind_int(s, 6, (int)r->result);
	sqlite3_bind_int(s, 7, (int)r->reject_code);
	sqlite3_bind_text(s, 8, r->reason, -1, SQLITE_STATIC);
	bind_seq(s, 9, r->seq_first);
	bind_seq(s, 10, r->seq_last);
	sqlite3_bind_int64(s, 11, r->received_at_ms);
	return run(st, s);
}

static int op_row_get(void *impl,
		      const struct gs_table *t,
		      const struct gs_cs_value *key,
		      struct gs_cs_value *row_out)
{
	struct gs_store *st = impl;
	sqlite3_stmt *s = NULL;
	int rc = tstmt(st, t, TS_GET, &s);

	if (rc != GS_OK)
		return rc;
	sqlite3_reset(s);
	for (unsigned i = 0; i < t->n_cols; i++)
		if (t->cols[i].flags & GS_COL_PK)
			bind_value(s, (int)i + 1, &key[i]);
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE) {
		sqlite3_reset(s);
		return GS_ENOTFOUND;
	}
	if (rc != SQLITE_ROW) {
		sqlite3_reset(s);
		return gs__err_from_sqlite(st->ctx, rc, st->db);
	}
	/* Left stepped: the values are borrowed until the next call. */
	for (unsigned i = 0; i < t->n_cols; i++)
		column_value(s, (int)i, &row_out[i]);
	return GS_OK;
}

static int op_row_insert(void *impl,
			 const struct gs_table *t,
			 const struct gs_cs_value *row)
{
	struct gs_store *st = impl;
	sqlite3_stmt *s = NULL;
	int rc = tstmt(st, t, TS_INS, &s);

	if (rc != GS_OK)
		return rc;
	for (unsigned i = 0; i < t->n_cols; i++)
		bind_value(s, (int)i + 1, &row[i]);
	rc = step_write(st, s);
	sqlite3_clear_bindings(s);
	/* ON CONFLICT (key) DO NOTHING: no change means the key exists. */
	if (rc == GS_OK && sqlite3_changes(st->db) == 0)
		rc = GS_EEXISTS;
	return rc;
}

static int reach_check(struct gs_store *st,
		       const struct gs_table *t,
		       const struct gs_cs_value *row);

/* The columns of an issue that say which workers it reaches. */
static uint64_t reach_cols(const struct gs_table *t)
{
	int a = gs__table_col(t, "assignee_worker_id");
	int r = gs__table_col(t, "reporter_worker_id");

	return (a >= 0 ? UINT64_C(1) << a : 0) |
	       (r >= 0 ? UINT64_C(1) << r : 0);
}

/* The UPDATE of t writing exactly the columns in cols (key excluded). */
static int upd_stmt(struct gs_store *st,
		    const struct gs_table *t,
		    uint64_t cols,
		    sqlite3_stmt **out)
{
	size_t ti = tindex(st, t);
	struct upd *slot;
	struct gs_buf *b = &st->sql;
	bool first = true;
	int rc;

	for (unsigned k = 0; k < UPD_CACHE; k++)
		if (st->upd[ti][k].st != NULL && st->upd[ti][k].cols == cols) {
			*out = st->upd[ti][k].st;
			return GS_OK;
		}
	slot = &st->upd[ti][st->upd_next[ti]++ % UPD_CACHE];
	sqlite3_finalize(slot->st);
	slot->st = NULL;
	b->len = 0;
	rc = gs__buf_printf(b, "UPDATE \"%s\" SET ", t->name);
	for (unsigned i = 0; i < t->n_cols && rc == GS_OK; i++) {
		if (!(cols & (UINT64_C(1) << i)))
			continue;
		rc = gs__buf_printf(b, "%s\"%s\" = ?%u", first ? "" : ",",
				    t->cols[i].name, i + 1);
		first = false;
	}
	if (rc == GS_OK)
		rc = sql_key_where(b, t);
	if (rc == GS_OK)
		rc = gs__buf_cstr(b);
	if (rc == GS_OK)
		rc = gs__db_prepare(st->ctx, st->db, &slot->st,
				    (const char *)b->data);
	if (rc != GS_OK)
		return rc;
	slot->cols = cols;
	*out = slot->st;
	return GS_OK;
}

static int op_row_update(void *impl,
			 const struct gs_table *t,
			 const struct gs_cs_value *row,
			 uint64_t cols)
{
	struct gs_store *st = impl;
	uint64_t key = 0;
	sqlite3_stmt *s = NULL;
	int rc;

	for (unsigned i = 0; i < t->n_cols; i++)
		if (t->cols[i].flags & GS_COL_PK)
			key |= UINT64_C(1) << i;
	cols &= ~key;
	if (t->n_cols < 64)
		cols &= (UINT64_C(1) << t->n_cols) - 1;
	if (cols == 0)
		return GS_OK; /* nothing to write */
	rc = upd_stmt(st, t, cols, &s);
	if (rc != GS_OK)
		return rc;
	for (unsigned i = 0; i < t->n_cols; i++)
		if ((cols | key) & (UINT64_C(1) << i))
			bind_value(s, (int)i + 1, &row[i]);
	rc = step_write(st, s);
	sqlite3_clear_bindings(s);
	if (rc == GS_OK && sqlite3_changes(st->db) == 0)
		rc = gs__err(st->ctx, GS_ECORRUPT, "%s: updated row vanished",
			     t->name);
	/* A new assignee or reporter changes who reaches the issue. */
	if (rc == GS_OK && strcmp(t->name, "issue") == 0 &&
	    (cols & reach_cols(t)) != 0)
		rc = reach_check(st, t, row);
	return rc;
}

static int op_row_grid(void *impl,
		       const struct gs_table *t,
		       const char *id,
		       char grid_out[GS_STORE_GRID_MAX],
		       bool *found)
{
	struct gs_store *st = impl;
	sqlite3_stmt *s = NULL;
	int rc = tstmt(st, t, TS_GRID, &s);

	if (rc != GS_OK)
		return rc;
	grid_out[0] = '\0';
	*found = false;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		const char *g = (const char *)sqlite3_column_text(s, 0);

		*found = true;
		if (g != NULL && strlen(g) < GS_STORE_GRID_MAX)
			memcpy(grid_out, g, strlen(g) + 1);
		rc = GS_OK;
	} else {
		rc = rc == SQLITE_DONE
			     ? GS_OK
			     : gs__err_from_sqlite(st->ctx, rc, st->db);
	}
	sqlite3_reset(s);
	return rc;
}

static int op_tag_restricted(void *impl, const char *code, bool *out)
{
	struct gs_store *st = impl;
	sqlite3_stmt *s = st->fx[FX_TAG_RESTR];
	int rc;

	sqlite3_bind_text(s, 1, code, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	*out = rc == SQLITE_ROW && sqlite3_column_int(s, 0) != 0;
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE
		       ? GS_OK
		       : gs__err_from_sqlite(st->ctx, rc, st->db);
}

static int op_clocks_get(void *impl,
			 const struct gs_table *t,
			 const char *pk,
			 gs_store_clock_cb cb,
			 void *payload)
{
	struct gs_store *st = impl;
	sqlite3_stmt *s = st->fx[FX_CLK_GET];
	int rc;

	sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, pk, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		int stop = cb((const char *)sqlite3_column_text(s, 0),
			      (uint64_t)sqlite3_column_int64(s, 1),
			      (const char *)sqlite3_column_text(s, 2), payload);

		if (stop != 0) {
			sqlite3_reset(s);
			return stop;
		}
	}
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? GS_OK
				 : gs__err_from_sqlite(st->ctx, rc, st->db);
}

static int op_clock_put(void *impl,
			const struct gs_table *t,
			const char *pk,
			const char *column,
			const struct gs_stamp *sp)
{
	struct gs_store *st = impl;
	sqlite3_stmt *s = st->fx[FX_CLK_PUT];

	sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, pk, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, column, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, (sqlite3_int64)sp->hlc);
	sqlite3_bind_text(s, 5, sp->device != NULL ? sp->device : "", -1,
			  SQLITE_STATIC);
	return run(st, s);
}

static int op_seq_next(void *impl, uint64_t *out)
{
	struct gs_store *st = impl;

	*out = ++st->seq;
	return GS_OK;
}

static int republish(struct gs_store *st,
		     const struct gs_table *t,
		     const char *id,
		     int depth);

/* Row (t, pk) left grid (or the worker's issues) at seq. */
static int leave_put(struct gs_store *st,
		     uint64_t seq,
		     const char *tbl,
		     const char *pk,
		     const char *grid,
		     const char *worker)
{
	sqlite3_stmt *s = st->fx[FX_LEAVE_PUT];

	sqlite3_bind_int64(s, 1, (sqlite3_int64)seq);
	sqlite3_bind_text(s, 2, tbl, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, pk, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, grid, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 5, worker, -1, SQLITE_STATIC);
	return run(st, s);
}

/* Give the household issue id names a new server_seq, so that devices
 * that now reach it through the issue download it. */
static int bump_household(struct gs_store *st, const char *issue_id)
{
	const struct gs_table *ht = gs__manifest_find("household");
	sqlite3_stmt *s = NULL;
	char hh[GS_STORE_GRID_MAX] = "";
	char grid[GS_STORE_GRID_MAX] = "";
	uint64_t seq;
	int rc;

	rc = gs__db_prepare(st->ctx, st->db, &s,
			    "SELECT h.id, h.grid_id FROM issue i JOIN household"
			    " h ON h.id = i.household_id WHERE i.id = ?1");
	if (rc != GS_OK)
		return rc;
	sqlite3_bind_text(s, 1, issue_id, -1, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW) {
		snprintf(hh, sizeof(hh), "%s",
			 (const char *)sqlite3_column_text(s, 0));
		snprintf(grid, sizeof(grid), "%s",
			 sqlite3_column_type(s, 1) == SQLITE_NULL
				 ? ""
				 : (const char *)sqlite3_column_text(s, 1));
	}
	sqlite3_finalize(s);
	s = NULL;
	if (hh[0] == '\0' || ht == NULL)
		return GS_OK;
	seq = ++st->seq;
	rc = gs__db_prepare(st->ctx, st->db, &s,
			    "UPDATE household SET server_seq = ?1 WHERE id ="
			    " ?2");
	if (rc != GS_OK)
		return rc;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)seq);
	sqlite3_bind_text(s, 2, hh, -1, SQLITE_STATIC);
	rc = run(st, s);
	sqlite3_finalize(s);
	if (rc != GS_OK)
		return rc;
	s = st->fx[FX_CHG_PUT];
	sqlite3_bind_int64(s, 1, (sqlite3_int64)seq);
	sqlite3_bind_text(s, 2, "household", -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, hh, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, grid, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 5, 0);
	sqlite3_bind_null(s, 6);
	return run(st, s);
}

/*
 * An issue's assignee or reporter changed (old and now are its
 * [assignee, reporter] as JSON): the workers who lost it get a leave for
 * the issue, its events, their attachments and its household; when a
 * worker gained it, those rows get new server_seqs so that the worker's
 * next pull brings them whole, whatever its cursor.
 */
static int reach_moved(struct gs_store *st,
		       const struct gs_table *t,
		       const char *id,
		       const char *old,
		       const char *now,
		       uint64_t seq,
		       bool fresh)
{
	sqlite3_stmt *s = NULL;
	bool gained = false;
	int rc;

	rc = gs__db_prepare(
		st->ctx, st->db, &s,
		"WITH gone(w) AS (SELECT value FROM json_each(?2) WHERE value"
		" IS NOT NULL EXCEPT SELECT value FROM json_each(?3)),"
		" keys(tbl, pk) AS (SELECT 'issue', ?4"
		" UNION ALL SELECT 'household', household_id FROM issue"
		" WHERE id = ?4 AND household_id IS NOT NULL"
		" UNION ALL SELECT 'issue_event', id FROM issue_event WHERE"
		" issue_id = ?4"
		" UNION ALL SELECT 'attachment', id FROM attachment WHERE"
		" owner_table = 'issue' AND owner_id = ?4"
		" UNION ALL SELECT 'attachment', a.id FROM issue_event e JOIN"
		" attachment a ON a.owner_table = 'issue_event' AND"
		" a.owner_id = e.id WHERE e.issue_id = ?4)"
		" INSERT INTO srv_leave (server_seq, tbl, pk, grid_id,"
		" worker_id) SELECT ?1, keys.tbl, keys.pk, NULL, gone.w FROM"
		" gone, keys");
	if (rc != GS_OK)
		return rc;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)seq);
	sqlite3_bind_text(s, 2, old != NULL ? old : "[]", -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, now, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, id, -1, SQLITE_STATIC);
	rc = run(st, s);
	sqlite3_finalize(s);
	s = NULL;
	if (rc != GS_OK)
		return rc;
	/* Gained: a worker in now that was not in old. */
	rc = gs__db_prepare(st->ctx, st->db, &s,
			    "SELECT count(*) FROM json_each(?1) n WHERE"
			    " n.value IS NOT NULL AND n.value NOT IN (SELECT"
			    " value FROM json_each(?2) WHERE value IS NOT"
			    " NULL)");
	if (rc != GS_OK)
		return rc;
	sqlite3_bind_text(s, 1, now, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, old != NULL ? old : "[]", -1, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW)
		gained = sqlite3_column_int(s, 0) > 0;
	sqlite3_finalize(s);
	if (!gained || (fresh && strncmp(now, "[null,", 6) == 0))
		return GS_OK;
	/* A fresh issue has no events yet; its household matters only when
	 * it was made for somebody else (an assignee at creation). */
	if (!fresh)
		rc = republish(st, t, id, 0);
	if (rc == GS_OK)
		rc = bump_household(st, id);
	return rc;
}

/* After an update of an issue's assignee or reporter (row: its values,
 * server_seq included): compare with what the log says and move the
 * reach (reach_moved). */
static int reach_check(struct gs_store *st,
		       const struct gs_table *t,
		       const struct gs_cs_value *row)
{
	sqlite3_stmt *o = st->fx[FX_CHG_OLD];
	sqlite3_stmt *q = st->fx[FX_ISSUE_REACH];
	sqlite3_stmt *u = NULL;
	char pk[GS_STORE_GRID_MAX];
	char *old = NULL;
	char *now = NULL;
	int is = gs__table_col(t, "server_seq");
	bool logged = false;
	int rc = GS_OK;

	if (row[0].type != GS_CS_TEXT || row[0].len >= sizeof(pk) || is < 0 ||
	    row[is].type != GS_CS_INT)
		return GS_OK;
	memcpy(pk, row[0].p, row[0].len);
	pk[row[0].len] = '\0';
	sqlite3_bind_text(o, 1, t->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(o, 2, pk, -1, SQLITE_STATIC);
	if (sqlite3_step(o) == SQLITE_ROW) {
		const char *r = (const char *)sqlite3_column_text(o, 1);

		logged = true;
		if (r != NULL)
			old = gs__strdup(st->ctx, r);
	}
	sqlite3_reset(o);
	sqlite3_bind_text(q, 1, pk, -1, SQLITE_STATIC);
	if (sqlite3_step(q) == SQLITE_ROW)
		now = gs__strdup(st->ctx,
				 (const char *)sqlite3_column_text(q, 0));
	sqlite3_reset(q);
	if (logged && now != NULL && (old == NULL || strcmp(old, now) != 0)) {
		rc = gs__db_prepare(st->ctx, st->db, &u,
				    "UPDATE srv_change SET reach = ?2 WHERE"
				    " tbl = 'issue' AND pk = ?1");
		if (rc == GS_OK) {
			sqlite3_bind_text(u, 1, pk, -1, SQLITE_STATIC);
			sqlite3_bind_text(u, 2, now, -1, SQLITE_STATIC);
			rc = run(st, u);
		}
		sqlite3_finalize(u);
		if (rc == GS_OK)
			rc = reach_moved(st, t, pk, old, now,
					 (uint64_t)row[is].i, false);
	}
	gs__free(st->ctx, old);
	gs__free(st->ctx, now);
	return rc;
}

static int op_log_change(void *impl,
			 const struct gs_table *t,
			 const char *pk,
			 const char *grid,
			 bool restricted,
			 uint64_t seq,
			 bool fresh)
{
	struct gs_store *st = impl;
	/* A fresh row's plain insert needs no statement journal; replacing
	 * an entry is a multi-row write and does. */
	sqlite3_stmt *s = st->fx[fresh ? FX_CHG_NEW : FX_CHG_PUT];
	sqlite3_stmt *o = st->fx[FX_CHG_OLD];
	bool is_issue = strcmp(t->name, "issue") == 0;
	char old_grid[GS_STORE_GRID_MAX] = "";
	char *old_reach = NULL;
	char *now_reach = NULL;
	int rc = GS_OK;

	if (!fresh) {
		/* What the log said before: a grid the row leaves. */
		sqlite3_bind_text(o, 1, t->name, -1, SQLITE_STATIC);
		sqlite3_bind_text(o, 2, pk, -1, SQLITE_STATIC);
		if (sqlite3_step(o) == SQLITE_ROW) {
			const char *g = (const char *)sqlite3_column_text(o, 0);
			const char *r = (const char *)sqlite3_column_text(o, 1);

			if (g != NULL)
				snprintf(old_grid, sizeof(old_grid), "%s", g);
			if (r != NULL && is_issue)
				old_reach = gs__strdup(st->ctx, r);
		}
		sqlite3_reset(o);
		if (old_grid[0] != '\0' &&
		    (grid == NULL || strcmp(grid, old_grid) != 0))
			rc = leave_put(st, seq, t->name, pk, old_grid, NULL);
	}
	if (rc == GS_OK && is_issue) {
		sqlite3_stmt *q = st->fx[FX_ISSUE_REACH];

		sqlite3_bind_text(q, 1, pk, -1, SQLITE_STATIC);
		if (sqlite3_step(q) == SQLITE_ROW)
			now_reach = gs__strdup(
				st->ctx,
				(const char *)sqlite3_column_text(q, 0));
		sqlite3_reset(q);
	}
	if (rc == GS_OK) {
		sqlite3_bind_int64(s, 1, (sqlite3_int64)seq);
		sqlite3_bind_text(s, 2, t->name, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 3, pk, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 4, grid, -1, SQLITE_STATIC);
		sqlite3_bind_int(s, 5, restricted ? 1 : 0);
		sqlite3_bind_text(s, 6, now_reach, -1, SQLITE_STATIC);
		rc = run(st, s);
	}
	/* A fresh issue without an assignee reaches only its reporter, who
	 * made it: nothing to republish (the common case: a report). */
	if (rc == GS_OK && now_reach != NULL &&
	    !(fresh && strncmp(now_reach, "[null,", 6) == 0) &&
	    (old_reach == NULL ? strcmp(now_reach, "[null,null]") != 0
			       : strcmp(old_reach, now_reach) != 0))
		rc = reach_moved(st, t, pk, old_reach, now_reach, seq, fresh);
	gs__free(st->ctx, old_reach);
	gs__free(st->ctx, now_reach);
	return rc;
}

static int
op_conflict_put(void *impl, const struct gs_conflict_rec *c, uint64_t *id_out)
{
	struct gs_store *st = impl;
	sqlite3_stmt *s = st->fx[FX_CF_PUT];
	int rc;

	sqlite3_bind_text(s, 1, c->loser.device, -1, SQLITE_STATIC);
	bind_seq(s, 2, c->entry_lost ? c->entry_seq : 0);
	sqlite3_bind_text(s, 3, c->table, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, c->pk, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 5, c->column, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 6, c->winner.device, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 7, (sqlite3_int64)c->winner.hlc);
	if (c->winner_value != NULL)
		bind_value(s, 8, c->winner_value);
	else
		sqlite3_bind_null(s, 8);
	sqlite3_bind_text(s, 9, c->loser.device, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 10, (sqlite3_int64)c->loser.hlc);
	if (c->loser_value != NULL)
		bind_value(s, 11, c->loser_value);
	else
		sqlite3_bind_null(s, 11);
	sqlite3_bind_int64(s, 12, c->at_ms);
	sqlite3_bind_text(s, 13, c->entry_device, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 14, (sqlite3_int64)c->entry_seq);
	bind_seq(s, 15, c->deliver_seq);
	rc = run(st, s);
	*id_out = rc == GS_OK ? (uint64_t)sqlite3_last_insert_rowid(st->db) : 0;
	return rc;
}

static int
one_text(struct gs_store *st, sqlite3_stmt *s, char out[GS_STORE_KEY_MAX + 1])
{
	int rc = sqlite3_step(s);

	out[0] = '\0';
	if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) == SQLITE_TEXT)
		snprintf(out, GS_STORE_KEY_MAX + 1, "%s",
			 (const char *)sqlite3_column_text(s, 0));
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE
		       ? GS_OK
		       : gs__err_from_sqlite(st->ctx, rc, st->db);
}

static int op_dup_find(void *impl,
		       const struct gs_table *t,
		       const char *key,
		       const char *id,
		       const char *grid,
		       char out[GS_STORE_KEY_MAX + 1])
{
	struct gs_store *st = impl;
	sqlite3_stmt *s = strcmp(t->name, "household") == 0
				  ? st->fx[FX_DUP_HH]
				  : st->fx[FX_DUP_RES];

	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, grid, -1, SQLITE_STATIC);
	return one_text(st, s, out);
}

static int
op_merged_target(void *impl, const char *id, char out[GS_STORE_KEY_MAX + 1])
{
	struct gs_store *st = impl;
	sqlite3_stmt *s = st->fx[FX_MERGED];

	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	return one_text(st, s, out);
}

static int op_stamp_last(void *impl, const char *device_id, uint64_t *out)
{
	struct gs_store *st = impl;
	sqlite3_stmt *s = st->fx[FX_STAMP_GET];
	int rc;

	*out = 0;
	sqlite3_bind_text(s, 1, device_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*out = (uint64_t)sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE
		       ? GS_OK
		       : gs__err_from_sqlite(st->ctx, rc, st->db);
}

static int op_stamp_put(void *impl, const char *device_id, uint64_t hlc)
{
	struct gs_store *st = impl;
	sqlite3_stmt *s = st->fx[FX_STAMP_PUT];

	sqlite3_bind_text(s, 1, device_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)hlc);
	return run(st, s);
}

/*
 * Republish what is scoped through row id of t after it moved grid:
 * children (by the manifest's parent links) and attachments it owns, each
 * under a new seq with its current grid, recursively. Rare (a household
 * moves grid), so the statements are prepared per call.
 */
static int republish(struct gs_store *st,
		     const struct gs_table *t,
		     const char *id,
		     int depth)
{
	int rc = GS_OK;

	if (depth > 4)
		return GS_OK; /* the manifest nests three deep */
	for (size_t c = 0; c < st->n_tables && rc == GS_OK; c++) {
		const struct gs_table *ct = &st->tables[c];
		struct gs_buf *b = &st->sql;
		struct gs_buf ids;
		sqlite3_stmt *sel = NULL;
		sqlite3_stmt *upd = NULL;
		bool global;
		bool owned = ct->scope == GS_SCOPE_OWNER;

		if (!owned && !(ct->scope == GS_SCOPE_PARENT &&
				strcmp(ct->scope_parent, t->name) == 0))
			continue;
		b->len = 0;
		rc = gs__buf_printf(b, "SELECT rowid, ");
		if (rc == GS_OK)
			rc = sql_pk_expr(b, ct);
		if (rc == GS_OK)
			rc = gs__buf_printf(b, ", ");
		if (rc == GS_OK)
			rc = sql_grid_expr(b, ct, &global);
		if (rc == GS_OK)
			rc = gs__buf_printf(b, ", ");
		if (rc == GS_OK)
			rc = sql_restricted_expr(b, ct);
		if (rc == GS_OK && owned)
			rc = gs__buf_printf(b,
					    " FROM \"%s\" WHERE \"%s\" = ?1"
					    " AND \"%s\" = ?2",
					    ct->name,
					    ct->cols[ct->scope_col].name,
					    ct->cols[ct->scope_col - 1].name);
		else if (rc == GS_OK)
			rc = gs__buf_printf(b, " FROM \"%s\" WHERE \"%s\" = ?1",
					    ct->name,
					    ct->cols[ct->scope_col].name);
		if (rc == GS_OK)
			rc = gs__buf_cstr(b);
		if (rc == GS_OK)
			rc = gs__db_prepare(st->ctx, st->db, &sel,
					    (const char *)b->data);
		if (rc == GS_OK) {
			b->len = 0;
			rc = gs__buf_printf(b,
					    "UPDATE \"%s\" SET server_seq = ?1"
					    " WHERE rowid = ?2",
					    ct->name);
			if (rc == GS_OK)
				rc = gs__buf_cstr(b);
			if (rc == GS_OK)
				rc = gs__db_prepare(st->ctx, st->db, &upd,
						    (const char *)b->data);
		}
		/* Collect first (rowid, key, grid, restricted): the recursion
		 * and the updates must not run under this cursor. */
		gs__buf_init(&ids, st->ctx, 64u << 20);
		if (rc == GS_OK) {
			sqlite3_bind_text(sel, 1, id, -1, SQLITE_STATIC);
			if (owned)
				sqlite3_bind_text(sel, 2, t->name, -1,
						  SQLITE_STATIC);
			while (rc == GS_OK && sqlite3_step(sel) == SQLITE_ROW) {
				const char *pk =
					(const char *)sqlite3_column_text(sel,
									  1);
				const char *g =
					(const char *)sqlite3_column_text(sel,
									  2);

				rc = gs__buf_printf(
					&ids, "%lld%c%s%c%s%c%d%c",
					(long long)sqlite3_column_int64(sel, 0),
					0, pk != NULL ? pk : "", 0,
					g != NULL ? g : "", 0,
					sqlite3_column_int(sel, 3), 0);
			}
		}
		for (size_t off = 0; rc == GS_OK && off < ids.len;) {
			const char *rowid = (const char *)ids.data + off;
			const char *pk = rowid + strlen(rowid) + 1;
			const char *g = pk + strlen(pk) + 1;
			const char *restr = g + strlen(g) + 1;
			int64_t rid = 0;
			uint64_t seq = ++st->seq;

			off = (size_t)(restr + strlen(restr) + 1 -
				       (const char *)ids.data);
			gs__parse_i64(&rid, rowid);
			sqlite3_bind_int64(upd, 1, (sqlite3_int64)seq);
			sqlite3_bind_int64(upd, 2, rid);
			rc = run(st, upd);
			if (rc == GS_OK)
				rc = op_log_change(st, ct, pk,
						   global ? NULL : g,
						   restr[0] == '1', seq, false);
			if (rc == GS_OK && gs__table_n_pk(ct) == 1)
				rc = republish(st, ct, pk, depth + 1);
		}
		gs__buf_fini(&ids);
		sqlite3_finalize(sel);
		sqlite3_finalize(upd);
	}
	return rc;
}

static int
op_republish_children(void *impl, const struct gs_table *t, const char *id)
{
	if (gs__table_n_pk(t) != 1)
		return GS_OK;
	return republish(impl, t, id, 0);
}

static int op_claimed_put(void *impl, const struct gs_claimed_rec *c)
{
	struct gs_store *st = impl;
	sqlite3_stmt *s = NULL;
	int rc;

	rc = gs__db_prepare(st->ctx, st->db, &s,
			    "INSERT INTO srv_claimed_time (device_id,"
			    " device_seq, tbl, pk, col, claimed, stored, at)"
			    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
	if (rc != GS_OK)
		return rc;
	sqlite3_bind_text(s, 1, c->device_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)c->device_seq);
	sqlite3_bind_text(s, 3, c->table, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, c->pk, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 5, c->column, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 6, c->claimed, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 7, c->stored, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 8, c->at_ms);
	rc = run(st, s);
	sqlite3_finalize(s);
	return rc;
}

static const struct gs_store_ops sqlite_ops = {
	op_begin,
	op_commit,
	op_rollback,
	op_savepoint,
	op_release,
	op_rollback_to,
	op_received_last,
	op_received_get,
	op_received_put,
	op_row_get,
	op_row_insert,
	op_row_update,
	op_row_grid,
	op_tag_restricted,
	op_clocks_get,
	op_clock_put,
	op_seq_next,
	op_log_change,
	op_republish_children,
	op_conflict_put,
	op_dup_find,
	op_merged_target,
	op_stamp_last,
	op_stamp_put,
	op_claimed_put,
};

/* ---- open and close -------------------------------------------------- */

static int meta_server_id(struct gs_store *st, bool create)
{
	sqlite3_stmt *s = NULL;
	char id[GS_UUID_LEN];
	int rc;

	rc = gs__db_prepare(st->ctx, st->db, &s,
			    "SELECT value FROM srv_meta WHERE key = "
			    "'server_id'");
	if (rc != GS_OK)
		return rc;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW && sqlite3_column_bytes(s, 0) < GS_UUID_LEN) {
		memcpy(st->server_id, sqlite3_column_text(s, 0),
		       (size_t)sqlite3_column_bytes(s, 0) + 1);
		sqlite3_finalize(s);
		return GS_OK;
	}
	sqlite3_finalize(s);
	if (!create)
		return gs__err(st->ctx, GS_ENOTFOUND,
			       "not a gridsync server store (no server id): "
			       "create it with gridsyncd init");
	rc = gs__uuid7(st->ctx, id);
	if (rc != GS_OK)
		return rc;
	rc = gs__db_prepare(st->ctx, st->db, &s,
			    "INSERT INTO srv_meta (key, value) VALUES"
			    " ('server_id', ?)");
	if (rc != GS_OK)
		return rc;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	rc = run(st, s);
	sqlite3_finalize(s);
	if (rc == GS_OK)
		memcpy(st->server_id, id, sizeof(id));
	return rc;
}

/* The highest server_seq ever handed out: the change log holds every
 * row's latest, so its maximum is the latest of all. */
/* srv_conflict gains the delivery columns, also in a store made before
 * conflicts were delivered in pulls (its old conflicts get no
 * deliver_seq: they were reported in their PushAck only). */
static int upgrade_conflicts(struct gs_store *st)
{
	sqlite3_stmt *s = NULL;
	bool has = false;
	int rc;

	rc = gs__db_prepare(st->ctx, st->db, &s,
			    "SELECT count(*) FROM pragma_table_info("
			    "'srv_conflict') WHERE name = 'deliver_seq'");
	if (rc != GS_OK)
		return rc;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		has = sqlite3_column_int(s, 0) > 0;
	rc = rc == SQLITE_ROW ? GS_OK
			      : gs__err_from_sqlite(st->ctx, rc, st->db);
	sqlite3_finalize(s);
	if (rc == GS_OK && !has)
		rc = gs__db_exec(st->ctx, st->db,
				 "ALTER TABLE srv_conflict ADD COLUMN"
				 " deliver_seq INTEGER;"
				 "ALTER TABLE srv_conflict ADD COLUMN"
				 " delivered_at INTEGER;");
	if (rc == GS_OK)
		rc = gs__db_exec(st->ctx, st->db,
				 "CREATE INDEX IF NOT EXISTS"
				 " srv_conflict_deliver ON srv_conflict("
				 "device_id, deliver_seq) WHERE deliver_seq"
				 " IS NOT NULL;");
	return rc;
}

static int load_seq(struct gs_store *st)
{
	sqlite3_stmt *s = NULL;
	int rc = gs__db_prepare(
		st->ctx, st->db, &s,
		"SELECT max(ifnull((SELECT max(server_seq) FROM srv_change), "
		"0),"
		" ifnull((SELECT max(server_seq_last) FROM srv_received), 0))");

	if (rc != GS_OK)
		return rc;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		st->seq = (uint64_t)sqlite3_column_int64(s, 0);
		rc = GS_OK;
	} else {
		rc = gs__err_from_sqlite(st->ctx, rc, st->db);
	}
	sqlite3_finalize(s);
	return rc;
}

/* Add the columns of added_cols a store lacks (one made by an older
 * gridsyncd); an issue's reach is filled in when its column is new. */
static int add_columns(struct gs_store *st)
{
	int rc = GS_OK;

	for (size_t i = 0;
	     rc == GS_OK && i < sizeof(added_cols) / sizeof(*added_cols); i++) {
		sqlite3_stmt *s = NULL;
		bool have = false;
		char sql[256];

		rc = gs__db_prepare(st->ctx, st->db, &s,
				    "SELECT 1 FROM pragma_table_info(?1) WHERE"
				    " name = ?2");
		if (rc != GS_OK)
			break;
		sqlite3_bind_text(s, 1, added_cols[i].table, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, added_cols[i].column, -1,
				  SQLITE_STATIC);
		have = sqlite3_step(s) == SQLITE_ROW;
		sqlite3_finalize(s);
		if (have)
			continue;
		snprintf(sql, sizeof(sql), "ALTER TABLE %s ADD COLUMN %s %s",
			 added_cols[i].table, added_cols[i].column,
			 added_cols[i].decl);
		rc = gs__db_exec(st->ctx, st->db, sql);
		if (rc == GS_OK && strcmp(added_cols[i].column, "reach") == 0)
			rc = gs__db_exec(
				st->ctx, st->db,
				"UPDATE srv_change SET reach = (SELECT"
				" json_array(assignee_worker_id,"
				" reporter_worker_id) FROM issue WHERE issue.id"
				" = srv_change.pk) WHERE tbl = 'issue'");
	}
	return rc;
}

static int set_cache(struct gs_store *st, int kib)
{
	char pragma[64];

	snprintf(pragma, sizeof(pragma), "PRAGMA cache_size=-%d", kib);
	return gs__db_exec(st->ctx, st->db, pragma);
}

static int prepare_fixed(struct gs_store *st)
{
	static const char *const fixed[FX_N] = {
#define S(field, sql) [FX_##field] = sql
		S(BEGIN, "BEGIN IMMEDIATE"),
		S(COMMIT, "COMMIT"),
		S(ROLLBACK, "ROLLBACK"),
		S(SAVEPOINT, "SAVEPOINT gs_entry"),
		S(RELEASE, "RELEASE gs_entry"),
		S(ROLLBACK_TO, "ROLLBACK TO gs_entry"),
		S(RCV_LAST, "SELECT max(device_seq) FROM srv_received"
			    " WHERE device_id = ?1 AND device_seq >= ?2"
			    " AND device_seq < ?3"),
		S(RCV_GET, "SELECT sha256, result, reject_code, reason"
			   " FROM srv_received WHERE device_id = ?1"
			   " AND device_seq = ?2"),
		S(RCV_PUT, "INSERT INTO srv_received (device_id, device_seq,"
			   " sha256, hlc, changeset, result, reject_code,"
			   " reason, server_seq_first, server_seq_last,"
			   " received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7,"
			   " ?8, ?9, ?10, ?11)"),
		S(CLK_GET, "SELECT col, hlc, device FROM srv_clock"
			   " WHERE tbl = ?1 AND pk = ?2"),
		S(CLK_PUT, "INSERT INTO srv_clock (tbl, pk, col, hlc, device)"
			   " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (tbl,"
			   " pk, col) DO UPDATE SET hlc = excluded.hlc,"
			   " device = excluded.device"),
		S(CHG_PUT, "INSERT OR REPLACE INTO srv_change (server_seq,"
			   " tbl, pk, grid_id, restricted, reach) VALUES (?1,"
			   " ?2, ?3, ?4, ?5, ?6)"),
		S(CHG_NEW, "INSERT INTO srv_change (server_seq, tbl, pk,"
			   " grid_id, restricted, reach) VALUES (?1, ?2, ?3,"
			   " ?4, ?5, ?6)"),
		S(CF_PUT, "INSERT INTO srv_conflict (device_id, device_seq,"
			  " tbl, pk, col, winner_device, winner_hlc,"
			  " winner_value, loser_device, loser_hlc,"
			  " loser_value, at, entry_device, entry_seq,"
			  " deliver_seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7,"
			  " ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"),
		/* A device's conflicts a pull after ?2 may deliver. */
		S(CF_LOAD, "SELECT id, deliver_seq, device_seq, tbl, pk, col,"
			   " winner_device, winner_hlc, winner_value,"
			   " loser_device, loser_hlc, loser_value FROM"
			   " srv_conflict WHERE device_id = ?1 AND"
			   " deliver_seq > ?2 ORDER BY deliver_seq, id"
			   " LIMIT ?3"),
		S(CF_DUE, "SELECT EXISTS (SELECT 1 FROM srv_conflict WHERE"
			  " device_id = ?1 AND deliver_seq <= ?2 AND"
			  " delivered_at IS NULL)"),
		S(CF_DONE, "UPDATE srv_conflict SET delivered_at = ?3 WHERE"
			   " device_id = ?1 AND deliver_seq <= ?2 AND"
			   " delivered_at IS NULL"),
		S(STAMP_GET, "SELECT hlc FROM srv_device_stamp"
			     " WHERE device_id = ?1"),
		S(STAMP_PUT, "INSERT INTO srv_device_stamp (device_id, hlc)"
			     " VALUES (?1, ?2) ON CONFLICT (device_id) DO"
			     " UPDATE SET hlc = excluded.hlc"),
		/* The first registration stands: the oldest live row. */
		S(DUP_HH, "SELECT id FROM household WHERE dwelling_id = ?1"
			  " AND id <> ?2 AND grid_id = ?3 AND deleted = 0"
			  " AND id NOT IN (SELECT id FROM merged_into)"
			  " ORDER BY created_at, id LIMIT 1"),
		S(DUP_RES, "SELECT r.id FROM resident r JOIN household h ON"
			   " h.id = r.household_id WHERE r.id_no_hmac = ?1"
			   " AND r.id <> ?2 AND h.grid_id = ?3 AND"
			   " r.deleted = 0 AND r.id NOT IN (SELECT id FROM"
			   " merged_into) ORDER BY r.created_at, r.id"
			   " LIMIT 1"),
		S(MERGED, "SELECT into_id FROM merged_into WHERE id = ?1 AND"
			  " deleted = 0"),
		S(TAG_RESTR, "SELECT sensitivity = 'restricted' FROM tag_def"
			     " WHERE code = ?1"),
		/* A narrow scope: the reference rows and each grid's rows
		 * are index ranges of srv_change_grid. */
		S(PULL_NARROW, "SELECT server_seq, tbl, pk FROM srv_change"
			       " WHERE server_seq > ?1 AND restricted = 0"
			       " AND (grid_id IS NULL OR grid_id IN"
			       " (SELECT value FROM json_each(?2)))"
			       " ORDER BY server_seq"),
		/* A wide one (a street, the district): walk the log in
		 * order and filter in memory. */
		S(PULL_WIDE, "SELECT server_seq, tbl, pk, grid_id"
			     " FROM srv_change WHERE server_seq > ?1"
			     " AND restricted = 0 ORDER BY server_seq"),
		S(CHG_OLD, "SELECT grid_id, reach FROM srv_change WHERE"
			   " tbl = ?1 AND pk = ?2"),
		S(LEAVE_PUT, "INSERT INTO srv_leave (server_seq, tbl, pk,"
			     " grid_id, worker_id) VALUES (?1, ?2, ?3, ?4,"
			     " ?5)"),
		S(LEAVES, "SELECT server_seq, tbl, pk, grid_id, worker_id"
			  " FROM srv_leave WHERE server_seq > ?1 AND"
			  " server_seq <= ?2 ORDER BY server_seq"),
		S(ISSUE_REACH, "SELECT json_array(assignee_worker_id,"
			       " reporter_worker_id) FROM issue WHERE id ="
			       " ?1"),
#undef S
	};
	int rc = GS_OK;

	for (size_t i = 0; i < FX_N && rc == GS_OK; i++)
		if (i != FX_MINE)
			rc = prep(st, &st->fx[i], fixed[i]);
	/* The worker's own issues (assignee or reporter, not aged out: ?3)
	 * and what comes with them, changed after ?1: the part of a scope
	 * that is not a grid. A handful of rows per worker, by index. */
	st->sql.len = 0;
	if (rc == GS_OK)
		rc = gs__buf_printf(
			&st->sql,
			"WITH mine(id, hh) AS (SELECT id, household_id FROM"
			" issue WHERE assignee_worker_id = ?2 AND ");
	if (rc == GS_OK)
		rc = gs__scope_live_sql(&st->sql, gs__manifest_find("issue"),
					"?3", "?3");
	if (rc == GS_OK)
		rc = gs__buf_printf(&st->sql,
				    " UNION SELECT id, household_id FROM issue"
				    " WHERE reporter_worker_id = ?2 AND ");
	if (rc == GS_OK)
		rc = gs__scope_live_sql(&st->sql, gs__manifest_find("issue"),
					"?3", "?3");
	if (rc == GS_OK)
		rc = gs__buf_printf(
			&st->sql,
			"), keys(tbl, pk) AS (SELECT 'issue', id FROM mine"
			" UNION ALL SELECT 'household', hh FROM mine WHERE hh"
			" IS NOT NULL"
			" UNION ALL SELECT 'issue_event', e.id FROM mine JOIN"
			" issue_event e ON e.issue_id = mine.id"
			" UNION ALL SELECT 'attachment', a.id FROM mine JOIN"
			" attachment a ON a.owner_id = mine.id AND"
			" a.owner_table = 'issue'"
			" UNION ALL SELECT 'attachment', a.id FROM mine JOIN"
			" issue_event e ON e.issue_id = mine.id JOIN"
			" attachment a ON a.owner_id = e.id AND"
			" a.owner_table = 'issue_event')"
			" SELECT DISTINCT c.server_seq, c.tbl, c.pk FROM keys"
			" JOIN srv_change c ON c.tbl = keys.tbl AND c.pk ="
			" keys.pk WHERE c.server_seq > ?1 AND c.restricted ="
			" 0 ORDER BY c.server_seq");
	if (rc == GS_OK)
		rc = gs__buf_cstr(&st->sql);
	if (rc == GS_OK)
		rc = prep(st, &st->fx[FX_MINE], (const char *)st->sql.data);
	return rc;
}

int gs__store_open(struct gs_store **out,
		   struct gs_ctx *ctx,
		   const char *path,
		   unsigned flags)
{
	struct gs_store *st = NULL;
	bool create = (flags & GS_STORE_CREATE) != 0;
	int rc;

	GS_CHECK_ARG(out != NULL && ctx != NULL && path != NULL);
	*out = NULL;
	st = gs__calloc(ctx, 1, sizeof(*st));
	if (st == NULL)
		return GS_ENOMEM;
	st->ctx = ctx;
	st->tables = gs__manifest(&st->n_tables);
	st->narrow_max = SCOPE_NARROW;
	GS_ASSERT(st->n_tables <= MAX_TABLES);
	gs__buf_init(&st->sql, ctx, SQL_MAX);
	gs__buf_init(&st->filt, ctx, SQL_MAX);
	gs__buf_init(&st->sc.json, ctx, 1u << 20);
	rc = gs__db_open(&st->db, ctx, path, create ? GS_DB_CREATE : 0);
	if (rc == GS_OK)
		rc = gs__db_migrate(ctx, st->db);
	if (rc == GS_OK)
		rc = set_cache(st, CACHE_KIB);
	/* Each entry's savepoint journal stays in memory: spilled to a temp
	 * file past 64 KiB it cost an issue's merge 40% (bench_merge). */
	if (rc == GS_OK)
		rc = gs__db_exec(ctx, st->db, "PRAGMA temp_store=MEMORY");
	if (rc == GS_OK)
		rc = gs__db_exec(ctx, st->db, "BEGIN IMMEDIATE");
	if (rc == GS_OK) {
		rc = gs__db_exec(ctx, st->db, schema_sql);
		if (rc == GS_OK)
			rc = upgrade_conflicts(st);
		if (rc == GS_OK)
			rc = add_columns(st);
		if (rc == GS_OK)
			rc = meta_server_id(st, create);
		if (rc == GS_OK)
			rc = gs__db_exec(ctx, st->db, "COMMIT");
		else
			sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	}
	if (rc == GS_OK)
		rc = load_seq(st);
	if (rc == GS_OK)
		rc = prepare_fixed(st);
	if (rc != GS_OK) {
		gs__store_close(st);
		return rc;
	}
	*out = st;
	return GS_OK;
}

void gs__store_close(struct gs_store *st)
{
	sqlite3_stmt **fixed;

	if (st == NULL)
		return;
	for (size_t t = 0; t < MAX_TABLES; t++) {
		for (int k = 0; k < TS_N; k++)
			sqlite3_finalize(st->ts[t][k]);
		for (int k = 0; k < UPD_CACHE; k++)
			sqlite3_finalize(st->upd[t][k].st);
	}
	fixed = &st->fx[FX_BEGIN];
	for (sqlite3_stmt **s = fixed; s < &st->fx[FX_N]; s++)
		sqlite3_finalize(*s);
	gs__scope_fini(&st->sc.scope);
	gs__buf_fini(&st->sc.json);
	gs__buf_fini(&st->sql);
	gs__buf_fini(&st->filt);
	gs__db_close(st->db);
	gs__free(st->ctx, st);
}

const char *gs__store_server_id(const struct gs_store *st)
{
	return st->server_id;
}

sqlite3 *gs__store_db(struct gs_store *st)
{
	return st->db;
}

/* ---- scope cache ----------------------------------------------------- */

static int scope_codes(struct gs_store *st,
		       const char *dev_id,
		       const char *codes,
		       const struct gs_scope **out);

/* The grids dev's pulls and scope hash cover. */
static int scope_for(struct gs_store *st,
		     const struct gs_store_device *dev,
		     const struct gs_scope **out)
{
	return scope_codes(st, dev->id, dev->scope, out);
}

/* The grids dev's pushes are judged against: its scope, and while it has
 * not applied its last scope change, the scope before it too (an edit
 * saved under the old scope must not be refused for the change). */
static int push_scope_for(struct gs_store *st,
			  const struct gs_store_device *dev,
			  const struct gs_scope **out)
{
	char both[2 * GS_STORE_SCOPE_MAX];

	if (dev->scope_acked >= dev->scope_version ||
	    dev->prev_scope[0] == '\0')
		return scope_for(st, dev, out);
	snprintf(both, sizeof(both), "%s,%s", dev->prev_scope, dev->scope);
	return scope_codes(st, dev->id, both, out);
}

static int scope_codes(struct gs_store *st,
		       const char *dev_id,
		       const char *codes,
		       const struct gs_scope **out)
{
	struct scope_cache *c = &st->sc;
	int rc;

	if (c->valid && strcmp(c->dev, dev_id) == 0 &&
	    strcmp(c->codes, codes) == 0) {
		*out = &c->scope;
		return GS_OK;
	}
	c->valid = false;
	gs__scope_fini(&c->scope);
	c->json.len = 0;
	rc = gs__scope_load(&c->scope, st->ctx, st->db, codes);
	if (rc == GS_OK)
		rc = gs__buf_printf(&c->json, "[");
	for (size_t i = 0; rc == GS_OK && i < c->scope.n; i++) {
		rc = gs__buf_printf(&c->json, "%s", i ? "," : "");
		if (rc == GS_OK)
			rc = gs__buf_json_str(&c->json, c->scope.ids[i]);
	}
	if (rc == GS_OK)
		rc = gs__buf_printf(&c->json, "]");
	if (rc == GS_OK)
		rc = gs__buf_cstr(&c->json);
	if (rc != GS_OK) {
		gs__scope_fini(&c->scope);
		return rc;
	}
	snprintf(c->dev, sizeof(c->dev), "%s", dev_id);
	snprintf(c->codes, sizeof(c->codes), "%s", codes);
	c->valid = true;
	*out = &c->scope;
	return GS_OK;
}

/* ---- seeding ------------------------------------------------------------ */

/* Give every unpublished row of t a server_seq (base + rowid, so in
 * insertion order) and its change-log entry. */
static int publish_table(struct gs_store *st, const struct gs_table *t)
{
	struct gs_buf *b = &st->sql;
	sqlite3_stmt *s = NULL;
	bool global;
	uint64_t base = st->seq;
	int64_t max_rowid = 0;
	int rc;

	b->len = 0;
	rc = gs__buf_printf(b, "SELECT ifnull(max(rowid), 0) FROM \"%s\"",
			    t->name);
	if (rc == GS_OK)
		rc = gs__buf_cstr(b);
	if (rc == GS_OK)
		rc = gs__db_prepare(st->ctx, st->db, &s, (const char *)b->data);
	if (rc == GS_OK && sqlite3_step(s) == SQLITE_ROW)
		max_rowid = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	s = NULL;
	if (rc != GS_OK || max_rowid == 0)
		return rc;
	b->len = 0;
	rc = gs__buf_printf(b,
			    "UPDATE \"%s\" SET server_seq = %llu + rowid"
			    " WHERE server_seq IS NULL",
			    t->name, (unsigned long long)base);
	if (rc == GS_OK)
		rc = gs__buf_cstr(b);
	if (rc == GS_OK)
		rc = gs__db_exec(st->ctx, st->db, (const char *)b->data);
	b->len = 0;
	if (rc == GS_OK)
		rc = gs__buf_printf(
			b,
			"INSERT OR REPLACE INTO srv_change"
			" (server_seq, tbl, pk, grid_id, restricted, reach)"
			" SELECT server_seq, '%s', ",
			t->name);
	if (rc == GS_OK)
		rc = sql_pk_expr(b, t);
	if (rc == GS_OK)
		rc = gs__buf_printf(b, ", ");
	if (rc == GS_OK)
		rc = sql_grid_expr(b, t, &global);
	if (rc == GS_OK && global)
		rc = gs__buf_printf(b, "NULL");
	if (rc == GS_OK)
		rc = gs__buf_printf(b, ", ");
	if (rc == GS_OK)
		rc = sql_restricted_expr(b, t);
	if (rc == GS_OK)
		rc = gs__buf_printf(b, ", %s",
				    strcmp(t->name, "issue") == 0
					    ? "json_array(assignee_worker_id,"
					      " reporter_worker_id)"
					    : "NULL");
	if (rc == GS_OK)
		rc = gs__buf_printf(b,
				    " FROM \"%s\" WHERE server_seq > %llu"
				    " ORDER BY server_seq",
				    t->name, (unsigned long long)base);
	if (rc == GS_OK)
		rc = gs__buf_cstr(b);
	if (rc == GS_OK)
		rc = gs__db_exec(st->ctx, st->db, (const char *)b->data);
	if (rc == GS_OK)
		st->seq = base + (uint64_t)max_rowid;
	return rc;
}

int gs__store_seed(struct gs_store *st, const struct gs_synth_opts *opts)
{
	struct gs_synth_stats stats;
	uint64_t seq0 = st->seq;
	uint64_t t0 = gs__clock_mono_ns();
	int rc;

	GS_CHECK_ARG(st != NULL && opts != NULL);
	st->sc.valid = false; /* grids change */
	rc = set_cache(st, SEED_CACHE_KIB);
	if (rc == GS_OK)
		rc = gs__db_exec(st->ctx, st->db, "BEGIN IMMEDIATE");
	if (rc != GS_OK)
		return rc;
	rc = gs__synth_generate(st->ctx, st->db, opts, &stats);
	for (size_t i = 0; rc == GS_OK && i < st->n_tables; i++)
		rc = publish_table(st, &st->tables[i]);
	if (rc == GS_OK)
		rc = gs__db_exec(st->ctx, st->db, "COMMIT");
	if (rc != GS_OK) {
		if (!sqlite3_get_autocommit(st->db))
			sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		st->seq = seq0;
	}
	set_cache(st, CACHE_KIB);
	if (rc == GS_OK)
		GS_INFO(st->ctx,
			"seeded %zu rows, server_seq %llu..%llu, in %llu ms",
			stats.total, (unsigned long long)seq0 + 1,
			(unsigned long long)st->seq,
			(unsigned long long)((gs__clock_mono_ns() - t0) /
					     1000000u));
	return rc;
}

/*
 * Reset every statement still stepping (row lookups are left on their row
 * while a merge borrows the values). Between two requests this connection
 * must hold no read snapshot: another connection (the journal worker)
 * writes to the same database, and a write transaction begun on a stale
 * snapshot fails at once with SQLITE_BUSY instead of waiting.
 */
static void release_snapshot(struct gs_store *st)
{
	sqlite3_stmt *s = NULL;

	while ((s = sqlite3_next_stmt(st->db, s)) != NULL)
		if (sqlite3_stmt_busy(s))
			sqlite3_reset(s);
}

/* ---- devices -------------------------------------------------------- */

static int
device_read(struct gs_store *st, sqlite3_stmt *s, struct gs_store_device *out)
{
	const char *w = (const char *)sqlite3_column_text(s, 1);
	const char *role = (const char *)sqlite3_column_text(s, 2);
	const char *scope = (const char *)sqlite3_column_text(s, 3);

	memset(out, 0, sizeof(*out));
	snprintf(out->id, sizeof(out->id), "%s",
		 (const char *)sqlite3_column_text(s, 0));
	snprintf(out->worker_id, sizeof(out->worker_id), "%s",
		 w != NULL ? w : "");
	out->role = gs__role_parse(role);
	snprintf(out->scope, sizeof(out->scope), "%s",
		 scope != NULL ? scope : "");
	out->revoked = sqlite3_column_int(s, 4) != 0;
	out->last_seen_ms = sqlite3_column_int64(s, 5);
	out->last_seq = (uint64_t)sqlite3_column_int64(s, 6);
	out->scope_version = (uint64_t)sqlite3_column_int64(s, 7);
	out->scope_acked = (uint64_t)sqlite3_column_int64(s, 8);
	snprintf(out->prev_scope, sizeof(out->prev_scope), "%s",
		 sqlite3_column_type(s, 9) == SQLITE_NULL
			 ? ""
			 : (const char *)sqlite3_column_text(s, 9));
	(void)st;
	return GS_OK;
}

int gs__store_device_get(struct gs_store *st,
			 const char *device_id,
			 struct gs_store_device *out)
{
	sqlite3_stmt *s = NULL;
	int rc;

	GS_CHECK_ARG(st != NULL && device_id != NULL && out != NULL);
	release_snapshot(st); /* see enrolments made since */
	rc = gs__db_prepare(st->ctx, st->db, &s,
			    "SELECT id, worker_id, role, scope, revoked,"
			    " last_seen_ms, ifnull((SELECT max(device_seq)"
			    " FROM srv_received WHERE device_id = d.id), 0)"
			    " % 1099511627776,"
			    " scope_version, scope_acked, prev_scope"
			    " FROM srv_device d WHERE id = ?1");
	if (rc != GS_OK)
		return rc;
	sqlite3_bind_text(s, 1, device_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		rc = device_read(st, s, out);
	else if (rc == SQLITE_DONE)
		rc = gs__err(st->ctx, GS_ENOTFOUND,
			     "device %.64s is not enrolled", device_id);
	else
		rc = gs__err_from_sqlite(st->ctx, rc, st->db);
	sqlite3_finalize(s);
	return rc;
}

bool gs__store_id_valid(const char *id)
{
	size_t len = id != NULL ? strlen(id) : 0;

	if (len == 0 || len > GS_WIRE_ID_MAX)
		return false;
	if (!((id[0] >= 'a' && id[0] <= 'z') ||
	      (id[0] >= 'A' && id[0] <= 'Z') || (id[0] >= '0' && id[0] <= '9')))
		return false;
	for (size_t i = 1; i < len; i++) {
		char ch = id[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
		      ch == ':' || ch == '@' || ch == '-'))
			return false;
	}
	return true;
}

/* The checks of an enrolment, without writing anything: the ids, the
 * scope, the worker (its role goes to *role) and a revocation that only
 * GS_ENROLL_REINSTATE may lift. */
static int enroll_check(struct gs_store *st,
			const char *device_id,
			const char *worker_id,
			const char *scope,
			unsigned flags,
			char role[16])
{
	sqlite3_stmt *s = NULL;
	int rc;

	if (!gs__store_id_valid(device_id) || !gs__store_id_valid(worker_id))
		return gs__err(st->ctx, GS_EINVAL,
			       "device and worker ids are 1 to %u "
			       "characters of A-Z a-z 0-9 . _ : @ - and begin "
			       "with a letter or a digit",
			       GS_WIRE_ID_MAX);
	if (strlen(scope) >= sizeof(((struct gs_store_device *)0)->scope))
		return gs__err(st->ctx, GS_EINVAL,
			       "the scope is at most 1023 bytes");
	for (const char *p = scope; *p; p++)
		if (*p < 0x21 || *p > 0x7e)
			return gs__err(st->ctx, GS_EINVAL,
				       "the scope is codes separated "
				       "by commas, without spaces");
	rc = gs__db_prepare(st->ctx, st->db, &s,
			    "SELECT role FROM worker WHERE id = ?1 AND"
			    " deleted = 0");
	if (rc != GS_OK)
		return rc;
	sqlite3_bind_text(s, 1, worker_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	role[0] = '\0';
	if (rc == SQLITE_ROW)
		snprintf(role, 16, "%s",
			 (const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	s = NULL;
	if (rc != SQLITE_ROW || gs__role_parse(role) == 0)
		return gs__err(st->ctx, GS_ENOTFOUND,
			       "no active worker %.64s with a known "
			       "role (seed or sync the reference data first)",
			       worker_id);
	if (flags & GS_ENROLL_REINSTATE)
		return GS_OK;
	rc = gs__db_prepare(st->ctx, st->db, &s,
			    "SELECT revoked FROM srv_device WHERE id = ?1");
	if (rc != GS_OK)
		return rc;
	sqlite3_bind_text(s, 1, device_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW && sqlite3_column_int(s, 0) != 0)
		rc = gs__err(st->ctx, GS_EDENIED,
			     "device %s is revoked; enrolling it again "
			     "lifts the revocation only with --reinstate",
			     device_id);
	else if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		rc = GS_OK;
	else
		rc = gs__err_from_sqlite(st->ctx, rc, st->db);
	sqlite3_finalize(s);
	return rc;
}

int gs__store_enroll_check(struct gs_store *st,
			   const char *device_id,
			   const char *worker_id,
			   const char *scope,
			   unsigned flags)
{
	char role[16];

	GS_CHECK_ARG(st != NULL && device_id != NULL && worker_id != NULL &&
		     scope != NULL);
	return enroll_check(st, device_id, worker_id, scope, flags, role);
}

/* Run one statement: text ?1 and ?2 (if b), integer ?3 (if used). */
static int exec2(struct gs_store *st,
		 const char *sql,
		 const char *a,
		 const char *b,
		 int64_t n)
{
	sqlite3_stmt *s = NULL;
	int rc = gs__db_prepare(st->ctx, st->db, &s, sql);

	if (rc != GS_OK)
		return rc;
	sqlite3_bind_text(s, 1, a, -1, SQLITE_STATIC);
	if (b != NULL)
		sqlite3_bind_text(s, 2, b, -1, SQLITE_STATIC);
	if (sqlite3_bind_parameter_count(s) >= 3)
		sqlite3_bind_int64(s, 3, n);
	rc = run(st, s);
	sqlite3_finalize(s);
	return rc;
}

int gs__store_enroll_ex(struct gs_store *st,
			const char *device_id,
			const char *worker_id,
			const char *scope,
			const char *serial,
			unsigned flags,
			struct gs_store_device *out)
{
	sqlite3_stmt *s = NULL;
	char role[16] = "";
	int64_t now;
	int rc;

	GS_CHECK_ARG(st != NULL && device_id != NULL && worker_id != NULL &&
		     scope != NULL);
	rc = enroll_check(st, device_id, worker_id, scope, flags, role);
	if (rc != GS_OK)
		return rc;
	now = gs__clock_wall_ms(st->ctx);
	rc = gs__db_exec(st->ctx, st->db, "BEGIN IMMEDIATE");
	if (rc != GS_OK)
		return rc;
	rc = gs__db_prepare(st->ctx, st->db, &s,
			    "INSERT INTO srv_device (id, worker_id, role,"
			    " scope, revoked, enrolled_at) VALUES (?1, ?2, ?3,"
			    " ?4, 0, ?5) ON CONFLICT (id) DO UPDATE SET"
			    " worker_id = excluded.worker_id, role ="
			    " excluded.role, revoked = 0");
	/* Re-enrolment keeps the scope here: a new one goes through
	 * gs__store_scope_set below, which moves the scope version on. */
	if (rc == GS_OK) {
		sqlite3_bind_text(s, 1, device_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, worker_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 3, role, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 4, scope, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 5, now);
		rc = run(st, s);
		sqlite3_finalize(s);
	}
	/* A new certificate retires every earlier one of the device. */
	if (rc == GS_OK && serial != NULL)
		rc = exec2(st,
			   "UPDATE srv_cert SET revoked = 1 WHERE device_id ="
			   " ?1 AND serial <> ?2",
			   device_id, serial, 0);
	if (rc == GS_OK && serial != NULL)
		rc = exec2(st,
			   "INSERT INTO srv_cert (device_id, serial, issued_at)"
			   " VALUES (?1, ?2, ?3)",
			   device_id, serial, now);
	if (rc == GS_OK)
		rc = gs__db_exec(st->ctx, st->db, "COMMIT");
	if (rc != GS_OK) {
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		return rc;
	}
	return gs__store_scope_set(st, device_id, scope, out);
}

int gs__store_enroll(struct gs_store *st,
		     const char *device_id,
		     const char *worker_id,
		     const char *scope,
		     struct gs_store_device *out)
{
	return gs__store_enroll_ex(st, device_id, worker_id, scope, NULL, 0,
				   out);
}

int gs__store_revoke(struct gs_store *st, const char *device_id)
{
	int rc;

	GS_CHECK_ARG(st != NULL && device_id != NULL);
	rc = gs__db_exec(st->ctx, st->db, "BEGIN IMMEDIATE");
	if (rc != GS_OK)
		return rc;
	rc = exec2(st, "UPDATE srv_device SET revoked = 1 WHERE id = ?1",
		   device_id, NULL, 0);
	if (rc == GS_OK && sqlite3_changes(st->db) == 0)
		rc = gs__err(st->ctx, GS_ENOTFOUND,
			     "device %.64s is not enrolled", device_id);
	if (rc == GS_OK)
		rc = exec2(st,
			   "UPDATE srv_cert SET revoked = 1 WHERE"
			   " device_id = ?1",
			   device_id, NULL, 0);
	if (rc == GS_OK)
		rc = gs__db_exec(st->ctx, st->db, "COMMIT");
	if (rc != GS_OK)
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

int gs__store_device_allowed(struct gs_store *st,
			     const char *device_id,
			     const char *serial,
			     bool *ok)
{
	sqlite3_stmt *s = NULL;
	int rc;

	GS_CHECK_ARG(st != NULL && device_id != NULL && ok != NULL);
	*ok = false;
	release_snapshot(st);
	/* Devices enrolled before certificates were recorded have no
	 * srv_cert row: their certificate is judged by the CA alone until
	 * they are enrolled again. */
	rc = gs__db_prepare(
		st->ctx, st->db, &s,
		"SELECT d.revoked = 0 AND (?2 IS NULL OR NOT EXISTS"
		" (SELECT 1 FROM srv_cert c WHERE c.device_id ="
		" d.id) OR EXISTS (SELECT 1 FROM srv_cert c WHERE"
		" c.device_id = d.id AND c.serial = ?2 AND"
		" c.revoked = 0)) FROM srv_device d WHERE d.id = ?1");
	if (rc != GS_OK)
		return rc;
	sqlite3_bind_text(s, 1, device_id, -1, SQLITE_STATIC);
	if (serial != NULL)
		sqlite3_bind_text(s, 2, serial, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*ok = sqlite3_column_int(s, 0) != 0;
		rc = GS_OK;
	} else if (rc == SQLITE_DONE) {
		rc = GS_OK;
	} else {
		rc = gs__err_from_sqlite(st->ctx, rc, st->db);
	}
	sqlite3_finalize(s);
	return rc;
}

int gs__store_incarnation(struct gs_store *st,
			  const char *device_id,
			  const char *incarnation,
			  uint64_t *base_out,
			  uint64_t *held_out)
{
	sqlite3_stmt *s = NULL;
	int64_t k = -1;
	int rc;

	GS_CHECK_ARG(st != NULL && device_id != NULL && incarnation != NULL);
	rc = gs__db_prepare(st->ctx, st->db, &s,
			    "SELECT k FROM srv_incarnation WHERE device_id = ?1"
			    " AND incarnation = ?2");
	if (rc != GS_OK)
		return rc;
	sqlite3_bind_text(s, 1, device_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, incarnation, -1, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW)
		k = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	if (k < 0) {
		/* The first one takes index 0: entries of an older device are
		 * already numbered there. */
		rc = gs__db_prepare(
			st->ctx, st->db, &s,
			"INSERT INTO srv_incarnation (device_id, incarnation,"
			" k, first_seen) SELECT ?1, ?2, ifnull(max(k) + 1, 0),"
			" ?3 FROM srv_incarnation WHERE device_id = ?1"
			" RETURNING k");
		if (rc != GS_OK)
			return rc;
		sqlite3_bind_text(s, 1, device_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, incarnation, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 3, gs__clock_wall_ms(st->ctx));
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW)
			k = sqlite3_column_int64(s, 0);
		rc = rc == SQLITE_ROW
			     ? GS_OK
			     : gs__err_from_sqlite(st->ctx, rc, st->db);
		sqlite3_finalize(s);
		if (rc == GS_OK)
			GS_INFO(st->ctx, "device %.64s: new incarnation %lld",
				device_id, (long long)k);
	}
	if (rc == GS_OK && (k < 0 || k >= (INT64_C(1) << 22)))
		rc = gs__err(st->ctx, GS_ECORRUPT,
			     "srv_incarnation: index %lld out of range",
			     (long long)k);
	if (rc != GS_OK)
		return rc;
	*base_out = (uint64_t)k * GS_STORE_SEQ_SPAN;
	return op_received_last(st, device_id, *base_out, held_out);
}

int gs__store_scope_set(struct gs_store *st,
			const char *device_id,
			const char *scope,
			struct gs_store_device *out)
{
	sqlite3_stmt *s = NULL;
	int rc;

	GS_CHECK_ARG(st != NULL && device_id != NULL && scope != NULL);
	if (strlen(scope) >= GS_STORE_SCOPE_MAX)
		return gs__err(st->ctx, GS_EINVAL,
			       "scope: at most %d bytes of codes",
			       GS_STORE_SCOPE_MAX - 1);
	/* prev_scope: what the device may still hold unsent edits for.
	 * While it has not applied the last change either, both count. */
	rc = gs__db_prepare(
		st->ctx, st->db, &s,
		"UPDATE srv_device SET prev_scope = CASE WHEN scope_acked >="
		" scope_version OR prev_scope IS NULL OR prev_scope = '' OR"
		" length(prev_scope) + length(scope) >= ?3 THEN scope ELSE"
		" prev_scope || ',' || scope END, scope = ?2, scope_version ="
		" scope_version + 1 WHERE id = ?1 AND scope <> ?2");
	if (rc != GS_OK)
		return rc;
	sqlite3_bind_text(s, 1, device_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, scope, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 3, GS_STORE_SCOPE_MAX - 1);
	rc = run(st, s);
	sqlite3_finalize(s);
	st->sc.valid = false;
	if (rc == GS_OK && sqlite3_changes(st->db) > 0)
		GS_INFO(st->ctx, "device %.64s: new scope", device_id);
	if (rc == GS_OK && out != NULL)
		rc = gs__store_device_get(st, device_id, out);
	else if (rc == GS_OK) {
		struct gs_store_device d;

		rc = gs__store_device_get(st, device_id, &d);
	}
	return rc;
}

int gs__store_scope_applied(struct gs_store *st,
			    struct gs_store_device *dev,
			    uint64_t v)
{
	sqlite3_stmt *s = NULL;
	int rc;

	GS_CHECK_ARG(st != NULL && dev != NULL);
	if (v == 0 || v != dev->scope_version || dev->scope_acked >= v)
		return GS_OK;
	rc = gs__db_prepare(st->ctx, st->db, &s,
			    "UPDATE srv_device SET scope_acked = ?2 WHERE id ="
			    " ?1 AND scope_version = ?2");
	if (rc != GS_OK)
		return rc;
	sqlite3_bind_text(s, 1, dev->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)v);
	rc = run(st, s);
	sqlite3_finalize(s);
	if (rc == GS_OK)
		dev->scope_acked = v;
	return rc;
}

void gs__store_scope_cutoffs(int64_t now_ms,
			     int64_t *visits_since_ms,
			     int64_t *closed_since_ms)
{
	const int64_t day = INT64_C(86400000);

	*visits_since_ms = now_ms - GS_SCOPE_VISIT_DAYS * day;
	*closed_since_ms = now_ms - GS_SCOPE_CLOSED_DAYS * day;
}

int gs__store_device_seen(struct gs_store *st, const char *device_id)
{
	sqlite3_stmt *s = NULL;
	int rc;

	GS_CHECK_ARG(st != NULL && device_id != NULL);
	rc = gs__db_prepare(st->ctx, st->db, &s,
			    "UPDATE srv_device SET last_seen_ms = ?2"
			    " WHERE id = ?1");
	if (rc != GS_OK)
		return rc;
	sqlite3_bind_text(s, 1, device_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, gs__clock_wall_ms(st->ctx));
	rc = run(st, s);
	if (rc == GS_OK && sqlite3_changes(st->db) == 0)
		rc = gs__err(st->ctx, GS_ENOTFOUND,
			     "device %.64s is not enrolled", device_id);
	sqlite3_finalize(s);
	return rc;
}

/* ---- push --------------------------------------------------------- */

void gs__store_push_out_fini(struct gs_store_push_out *out)
{
	struct gs_ctx *ctx;

	if (out == NULL)
		return;
	ctx = out->strings.ctx;
	if (ctx != NULL) {
		gs__free(ctx, out->results);
		gs__free(ctx, out->conflicts);
		gs__buf_fini(&out->strings);
	}
	out->results = NULL;
	out->conflicts = NULL;
	out->n_results = 0;
	out->n_conflicts = 0;
}

int gs__store_push(struct gs_store *st,
		   const struct gs_store_device *dev,
		   const struct gs_store_entry *entries,
		   size_t n,
		   struct gs_store_push_out *out)
{
	const struct gs_scope *scope = NULL;
	int rc;

	GS_CHECK_ARG(st != NULL && dev != NULL && out != NULL &&
		     (entries != NULL || n == 0));
	memset(out, 0, sizeof(*out));
	rc = push_scope_for(st, dev, &scope);
	if (rc == GS_OK)
		rc = gs__merge_push(&sqlite_ops, st, st->ctx, dev, scope,
				    entries, n, out);
	release_snapshot(st);
	return rc;
}

/* ---- pull ----------------------------------------------------------- */

void gs__store_pull_out_init(struct gs_store_pull_out *out, struct gs_ctx *ctx)
{
	memset(out, 0, sizeof(*out));
	gs__buf_init(&out->changeset, ctx, GS_FRAME_MAX_CEILING);
	gs__buf_init(&out->cstrings, ctx, GS_FRAME_MAX_CEILING);
	gs__buf_init(&out->keys, ctx, GS_FRAME_MAX_CEILING);
}

void gs__store_pull_out_fini(struct gs_store_pull_out *out)
{
	if (out == NULL)
		return;
	if (out->keys.ctx != NULL)
		gs__free(out->keys.ctx, out->left);
	out->left = NULL;
	out->n_left = out->cap_left = 0;
	gs__buf_fini(&out->keys);
	gs__buf_fini(&out->changeset);
	if (out->cstrings.ctx != NULL)
		gs__free(out->cstrings.ctx, out->conflicts);
	out->conflicts = NULL;
	out->n_conflicts = 0;
	gs__buf_fini(&out->cstrings);
}

/*
 * Conflicts in a pull. Each conflict has the server_seq of the push that
 * recorded it (deliver_seq); a pull whose range (after, next_cursor]
 * covers it sends it to its loser, and the device stores it before it
 * moves its cursor. The device's next cursor past it is the proof it was
 * stored: delivered_at is set then. A device keeps each by id once, so a
 * resend after a crash, or of a conflict its PushAck already carried, is
 * harmless.
 *
 * About PULL_CONFLICTS and PULL_CONFLICT_BYTES of values go in one
 * Changes; the rest wait for the next pull, and the rows of this one stop
 * before the first conflict left out. The conflicts of one server_seq go
 * out together (one row's write records at most one per column, 64), so a
 * pull always makes progress. Few per Changes on purpose: a device built
 * before Changes carried conflicts skips them as unknown fields, and its
 * decoder allows only 16 of those per message.
 */
#define PULL_CONFLICTS      12
#define PULL_CONFLICTS_CAP  128
#define PULL_CONFLICT_BYTES (1u << 20)

struct cf_off {
	uint64_t pos; /* deliver_seq */
	size_t table, pk, column, dev[2], val[2];
};

static int cf_str(struct gs_buf *b, const void *p, size_t len, size_t *off)
{
	int rc = gs__buf_reserve(b, len + 1);

	if (rc != GS_OK)
		return rc;
	*off = b->len;
	if (len > 0)
		memcpy(b->data + b->len, p, len);
	b->data[b->len + len] = '\0';
	b->len += len + 1;
	return GS_OK;
}

/* Column i as a conflict side's value (INTEGER and REAL as their SQL
 * literal, like a PushAck's); false if it cannot travel. */
static bool cf_value(sqlite3_stmt *s,
		     int i,
		     struct gs_buf *b,
		     struct gs_conflict_side *side,
		     size_t *off)
{
	char num[40];
	const void *p = NULL;
	size_t len = 0;

	side->kind = GS_VALUE_TEXT;
	switch (sqlite3_column_type(s, i)) {
	case SQLITE_NULL:
		side->kind = GS_VALUE_NULL;
		side->value_len = 0;
		*off = 0;
		return true;
	case SQLITE_INTEGER:
		snprintf(num, sizeof(num), "%lld",
			 (long long)sqlite3_column_int64(s, i));
		p = num;
		len = strlen(num);
		break;
	case SQLITE_FLOAT:
		snprintf(num, sizeof(num), "%.17g",
			 sqlite3_column_double(s, i));
		p = num;
		len = strlen(num);
		break;
	case SQLITE_BLOB:
		side->kind = GS_VALUE_BLOB;
		p = sqlite3_column_blob(s, i);
		len = (size_t)sqlite3_column_bytes(s, i);
		break;
	default:
		p = sqlite3_column_text(s, i);
		len = (size_t)sqlite3_column_bytes(s, i);
		if (len > 0 &&
		    (memchr(p, 0, len) != NULL || !gs__utf8_valid(p, len)))
			return false;
	}
	side->value_len = len;
	return cf_str(b, p, len, off) == GS_OK;
}

/* Mark what the device's cursor passed as delivered; load what a pull
 * after `after` may send into out (pointers fixed by cf_finish). *limit:
 * rows above it wait for the next pull (UINT64_MAX: no limit). */
static int cf_load(struct gs_store *st,
		   const char *device_id,
		   uint64_t after,
		   struct gs_store_pull_out *out,
		   struct cf_off *offs,
		   uint64_t *limit)
{
	sqlite3_stmt *s = st->fx[FX_CF_DUE];
	size_t bytes = 0;
	size_t stepped = 0;
	uint64_t first = 0;
	uint64_t last = 0;
	int rc;

	*limit = UINT64_MAX;
	out->n_conflicts = 0;
	out->cstrings.len = 0;
	sqlite3_bind_text(s, 1, device_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)after);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW && sqlite3_column_int(s, 0) != 0) {
		sqlite3_reset(s);
		s = st->fx[FX_CF_DONE];
		sqlite3_bind_text(s, 1, device_id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, (sqlite3_int64)after);
		sqlite3_bind_int64(s, 3, gs__clock_wall_ms(st->ctx));
		rc = run(st, s);
	} else {
		sqlite3_reset(s);
		rc = rc == SQLITE_ROW || rc == SQLITE_DONE
			     ? GS_OK
			     : gs__err_from_sqlite(st->ctx, rc, st->db);
	}
	if (rc != GS_OK)
		return rc;
	if (out->conflicts == NULL) {
		out->conflicts = gs__calloc(st->ctx, PULL_CONFLICTS_CAP,
					    sizeof(*out->conflicts));
		if (out->conflicts == NULL)
			return GS_ENOMEM;
	}
	s = st->fx[FX_CF_LOAD];
	sqlite3_bind_text(s, 1, device_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)after);
	sqlite3_bind_int(s, 3, PULL_CONFLICTS_CAP * 2);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct gs_conflict *c = &out->conflicts[out->n_conflicts];
		struct cf_off *o = &offs[out->n_conflicts];
		uint64_t pos = (uint64_t)sqlite3_column_int64(s, 1);
		const char *text[6];
		size_t *dst[4] = { &o->table, &o->pk, &o->column, NULL };
		size_t mark = out->cstrings.len;
		bool ok = true;

		if (stepped++ == 0)
			first = pos;
		last = pos;
		if (out->n_conflicts == PULL_CONFLICTS_CAP ||
		    ((out->n_conflicts >= PULL_CONFLICTS ||
		      bytes > PULL_CONFLICT_BYTES) &&
		     pos > first)) {
			*limit = pos > first ? pos - 1 : pos;
			break;
		}
		for (int k = 0; k < 6; k++)
			text[k] = (const char *)sqlite3_column_text(
				s, k < 3    ? 3 + k
				   : k == 3 ? 6
					    : 9);
		/* The wire's limits; what does not fit stays on the
		 * server's list of conflicts. */
		for (int k = 0; k < 6; k++)
			ok = ok && text[k] != NULL;
		if (!ok || strlen(text[0]) > GS_WIRE_ID_MAX ||
		    strlen(text[1]) > GS_WIRE_PK_MAX ||
		    strlen(text[2]) > GS_WIRE_ID_MAX ||
		    strlen(text[3]) > GS_WIRE_ID_MAX ||
		    strlen(text[4]) > GS_WIRE_ID_MAX)
			continue;
		memset(c, 0, sizeof(*c));
		o->pos = pos;
		c->id = (uint64_t)sqlite3_column_int64(s, 0);
		c->device_seq = (uint64_t)sqlite3_column_int64(s, 2);
		c->winner.hlc = (uint64_t)sqlite3_column_int64(s, 7);
		c->loser.hlc = (uint64_t)sqlite3_column_int64(s, 10);
		for (int k = 0; ok && dst[k] != NULL; k++)
			ok = cf_str(&out->cstrings, text[k], strlen(text[k]),
				    dst[k]) == GS_OK;
		ok = ok &&
		     cf_str(&out->cstrings, text[3], strlen(text[3]),
			    &o->dev[0]) == GS_OK &&
		     cf_str(&out->cstrings, text[4], strlen(text[4]),
			    &o->dev[1]) == GS_OK &&
		     cf_value(s, 8, &out->cstrings, &c->winner, &o->val[0]) &&
		     cf_value(s, 11, &out->cstrings, &c->loser, &o->val[1]);
		if (!ok) {
			out->cstrings.len = mark;
			continue;
		}
		bytes += out->cstrings.len - mark;
		out->n_conflicts++;
	}
	if (rc == SQLITE_DONE && stepped == PULL_CONFLICTS_CAP * 2)
		*limit = last > first ? last - 1 : last; /* more may follow */
	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		rc = GS_OK;
	else
		rc = gs__err_from_sqlite(st->ctx, rc, st->db);
	sqlite3_reset(s);
	/* Conflicts above the limit wait with the rows. */
	while (out->n_conflicts > 0 && offs[out->n_conflicts - 1].pos > *limit)
		out->n_conflicts--;
	return rc;
}

/* Keep the conflicts the pull's cursor covers, as pointers. */
static void cf_finish(struct gs_store_pull_out *out, const struct cf_off *offs)
{
	const char *base = (const char *)out->cstrings.data;
	size_t n = 0;

	while (n < out->n_conflicts && offs[n].pos <= out->next_cursor)
		n++;
	out->n_conflicts = n;
	for (size_t i = 0; i < n; i++) {
		struct gs_conflict *c = &out->conflicts[i];
		struct gs_conflict_side *side[2] = { &c->winner, &c->loser };

		c->table = base + offs[i].table;
		c->pk = base + offs[i].pk;
		c->column = base + offs[i].column;
		for (int k = 0; k < 2; k++) {
			side[k]->device_id = base + offs[i].dev[k];
			side[k]->value = side[k]->kind == GS_VALUE_NULL
						 ? NULL
						 : (const uint8_t *)base +
							   offs[i].val[k];
		}
	}
}

void gs__store_set_scope_narrow(struct gs_store *st, size_t max_grids)
{
	st->narrow_max = max_grids;
}

static size_t header_len(const struct gs_table *t)
{
	return 1 + (t->n_cols >= 128 ? 2 : 1) + t->n_cols + strlen(t->name) + 1;
}

/* temp.gs_scope_grid := the grids of scope, for the SQL scope rule. */
static int scope_temp(struct gs_store *st, const struct gs_scope *scope)
{
	sqlite3_stmt *s = NULL;
	int rc = gs__db_exec(st->ctx, st->db,
			     "CREATE TEMP TABLE IF NOT EXISTS gs_scope_grid"
			     " (id TEXT PRIMARY KEY);"
			     "DELETE FROM temp.gs_scope_grid;");

	if (rc == GS_OK)
		rc = gs__db_prepare(st->ctx, st->db, &s,
				    "INSERT OR IGNORE INTO temp.gs_scope_grid"
				    " VALUES (?1)");
	for (size_t i = 0; rc == GS_OK && i < scope->n; i++) {
		sqlite3_bind_text(s, 1, scope->ids[i], -1, SQLITE_STATIC);
		rc = run(st, s);
	}
	sqlite3_finalize(s);
	return rc;
}

/* Cut-offs of the ageing rule now, as the rows' ISO-8601 text. */
static void cut_texts(struct gs_store *st,
		      char visits[GS_TIME_LEN],
		      char closed[GS_TIME_LEN])
{
	int64_t v;
	int64_t c;

	gs__store_scope_cutoffs(gs__clock_wall_ms(st->ctx), &v, &c);
	gs__time_format(visits, v);
	gs__time_format(closed, c);
}

/* Is row (t, pk) in dev's scope now (temp.gs_scope_grid filled)? A row
 * that does not exist is not. Rare: only for rows that left a grid or a
 * worker, so the statement is prepared per call. */
static int in_scope_now(struct gs_store *st,
			const struct gs_store_device *dev,
			const struct gs_table *t,
			const char *pk,
			const char *vcut,
			const char *ccut,
			bool *in)
{
	struct gs_scope_sql p = { "(SELECT id FROM temp.gs_scope_grid)", "?2",
				  "?3", "?4" };
	struct gs_buf *b = &st->filt;
	sqlite3_stmt *s = NULL;
	bool all = false;
	int rc;

	*in = false;
	b->len = 0;
	rc = gs__buf_printf(b, "SELECT ");
	if (rc == GS_OK)
		rc = gs__scope_row_sql(b, t, &p, &all);
	if (rc == GS_OK && all)
		rc = gs__buf_printf(b, "1");
	if (rc == GS_OK)
		rc = gs__buf_printf(b, ", ?2, ?3, ?4 FROM \"%s\" WHERE ",
				    t->name);
	if (rc == GS_OK)
		rc = sql_pk_expr(b, t);
	if (rc == GS_OK)
		rc = gs__buf_printf(b, " = ?1");
	if (rc == GS_OK)
		rc = gs__buf_cstr(b);
	if (rc == GS_OK)
		rc = gs__db_prepare(st->ctx, st->db, &s, (const char *)b->data);
	if (rc != GS_OK)
		return rc;
	sqlite3_bind_text(s, 1, pk, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, dev->worker_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, vcut, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, ccut, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*in = sqlite3_column_int(s, 0) != 0;
	rc = rc == SQLITE_ROW || rc == SQLITE_DONE
		     ? GS_OK
		     : gs__err_from_sqlite(st->ctx, rc, st->db);
	sqlite3_finalize(s);
	return rc;
}

#define LEFT_MAX 8192 /* left rows in one Changes (the wire allows 16384) */

static int left_add(struct gs_store_pull_out *out,
		    struct gs_ctx *ctx,
		    const char *tbl,
		    const char *pk,
		    uint64_t seq)
{
	size_t at = out->keys.len;
	int rc;

	if (out->n_left == out->cap_left) {
		size_t cap = out->cap_left ? out->cap_left * 2 : 16;
		struct gs_row_key *l =
			gs__realloc(ctx, out->left, cap * sizeof(*l));

		if (l == NULL)
			return GS_ENOMEM;
		out->left = l;
		out->cap_left = cap;
	}
	rc = gs__buf_append(&out->keys, tbl, strlen(tbl) + 1);
	if (rc == GS_OK)
		rc = gs__buf_append(&out->keys, pk, strlen(pk) + 1);
	if (rc != GS_OK)
		return rc;
	/* Offsets for now: the buffer may still move. */
	out->left[out->n_left].table = (const char *)(uintptr_t)at;
	out->left[out->n_left].pk =
		(const char *)(uintptr_t)(at + strlen(tbl) + 1);
	out->left[out->n_left].server_seq = seq;
	out->n_left++;
	return GS_OK;
}

/* The rows of dev's scope that left it in (after, upto]. */
static int pull_left(struct gs_store *st,
		     const struct gs_store_device *dev,
		     const struct gs_scope *scope,
		     uint64_t after,
		     uint64_t *upto,
		     bool *more,
		     const char *vcut,
		     const char *ccut,
		     struct gs_store_pull_out *out)
{
	sqlite3_stmt *q = st->fx[FX_LEAVES];
	bool temp_ready = false;
	int step = SQLITE_DONE;
	int rc = GS_OK;

	/* From 0 a device holds nothing it has not swept (a rescope). */
	if (after == 0)
		goto fix;
	sqlite3_bind_int64(q, 1, (sqlite3_int64)after);
	sqlite3_bind_int64(q, 2, (sqlite3_int64)*upto);
	while (rc == GS_OK && (step = sqlite3_step(q)) == SQLITE_ROW) {
		uint64_t seq = (uint64_t)sqlite3_column_int64(q, 0);
		const char *tbl = (const char *)sqlite3_column_text(q, 1);
		const char *pk = (const char *)sqlite3_column_text(q, 2);
		const char *grid = (const char *)sqlite3_column_text(q, 3);
		const char *w = (const char *)sqlite3_column_text(q, 4);
		const struct gs_table *t = tbl ? gs__manifest_find(tbl) : NULL;
		bool in = false;

		if (t == NULL || pk == NULL)
			continue;
		if (!(grid != NULL && gs__scope_has(scope, grid)) &&
		    !(w != NULL && strcmp(w, dev->worker_id) == 0))
			continue;
		if (out->n_left >= LEFT_MAX) {
			/* The rest in the next answer: the window ends
			 * before this one (rows after it come again). */
			*upto = seq - 1;
			*more = true;
			break;
		}
		if (!temp_ready) {
			rc = scope_temp(st, scope);
			temp_ready = true;
		}
		if (rc == GS_OK)
			rc = in_scope_now(st, dev, t, pk, vcut, ccut, &in);
		if (rc == GS_OK && !in)
			rc = left_add(out, st->ctx, t->name, pk, seq);
	}
	if (rc == GS_OK && step != SQLITE_ROW && step != SQLITE_DONE)
		rc = gs__err_from_sqlite(st->ctx, step, st->db);
	sqlite3_reset(q);
fix:
	for (size_t i = 0; rc == GS_OK && i < out->n_left; i++) {
		out->left[i].table = (const char *)out->keys.data +
				     (uintptr_t)out->left[i].table;
		out->left[i].pk = (const char *)out->keys.data +
				  (uintptr_t)out->left[i].pk;
	}
	return rc;
}

/* The worker's own rows changed after `after` (FX_MINE), in order. */
struct mine {
	struct gs_buf strs; /* tbl\0pk\0 ... */
	uint64_t *seq;
	size_t *off;
	size_t n;
	size_t cap;
	size_t next;
};

static int mine_load(struct gs_store *st,
		     const struct gs_store_device *dev,
		     uint64_t after,
		     const char *ccut,
		     struct mine *m)
{
	sqlite3_stmt *q = st->fx[FX_MINE];
	int step;
	int rc = GS_OK;

	if (dev->worker_id[0] == '\0')
		return GS_OK;
	sqlite3_bind_int64(q, 1, (sqlite3_int64)after);
	sqlite3_bind_text(q, 2, dev->worker_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 3, ccut, -1, SQLITE_STATIC);
	while (rc == GS_OK && (step = sqlite3_step(q)) == SQLITE_ROW) {
		const char *tbl = (const char *)sqlite3_column_text(q, 1);
		const char *pk = (const char *)sqlite3_column_text(q, 2);

		if (m->n == m->cap) {
			size_t cap = m->cap ? m->cap * 2 : 64;
			uint64_t *sq =
				gs__realloc(st->ctx, m->seq, cap * sizeof(*sq));
			size_t *of;

			if (sq == NULL) {
				rc = GS_ENOMEM;
				break;
			}
			m->seq = sq;
			of = gs__realloc(st->ctx, m->off, cap * sizeof(*of));
			if (of == NULL) {
				rc = GS_ENOMEM;
				break;
			}
			m->off = of;
			m->cap = cap;
		}
		m->seq[m->n] = (uint64_t)sqlite3_column_int64(q, 0);
		m->off[m->n] = m->strs.len;
		rc = gs__buf_append(&m->strs, tbl ? tbl : "",
				    strlen(tbl ? tbl : "") + 1);
		if (rc == GS_OK)
			rc = gs__buf_append(&m->strs, pk ? pk : "",
					    strlen(pk ? pk : "") + 1);
		m->n++;
	}
	if (rc == GS_OK && step != SQLITE_DONE)
		rc = gs__err_from_sqlite(st->ctx, step, st->db);
	sqlite3_reset(q);
	return rc;
}

static void mine_fini(struct gs_store *st, struct mine *m)
{
	gs__free(st->ctx, m->seq);
	gs__free(st->ctx, m->off);
	gs__buf_fini(&m->strs);
}

int gs__store_pull(struct gs_store *st,
		   const struct gs_store_device *dev,
		   uint64_t after,
		   size_t byte_budget,
		   struct gs_store_pull_out *out)
{
	struct gs_buf recs[MAX_TABLES];
	struct gs_cs_value vals[GS_CS_MAX_COLS];
	struct cf_off offs[PULL_CONFLICTS_CAP];
	uint64_t limit = UINT64_MAX;
	bool limited = false;
	const struct gs_scope *scope = NULL;
	sqlite3_stmt *q = NULL;
	struct mine mine;
	char vcut[GS_TIME_LEN];
	char ccut[GS_TIME_LEN];
	size_t total = 0;
	size_t n_rows = 0;
	uint64_t cursor = after;
	uint64_t max_hlc = 0;
	bool wide;
	bool more = false;
	bool q_have = false;
	bool q_done = false;
	int step = SQLITE_DONE;
	int rc;

	GS_CHECK_ARG(st != NULL && dev != NULL && out != NULL);
	memset(&mine, 0, sizeof(mine));
	gs__buf_init(&mine.strs, st->ctx, GS_FRAME_MAX_CEILING);
	for (size_t i = 0; i < MAX_TABLES; i++)
		gs__buf_init(&recs[i], st->ctx, GS_FRAME_MAX_CEILING);
	if (byte_budget == 0)
		byte_budget = 1;
	if (byte_budget > PULL_MAX_BYTES)
		byte_budget = PULL_MAX_BYTES;
	out->n_left = 0;
	out->keys.len = 0;
	cut_texts(st, vcut, ccut);
	rc = scope_for(st, dev, &scope);
	if (rc == GS_OK)
		rc = cf_load(st, dev->id, after, out, offs, &limit);
	if (rc == GS_OK)
		rc = mine_load(st, dev, after, ccut, &mine);
	if (rc != GS_OK)
		goto done;
	/* Cursors are unsigned: server_seq never passes 2^63-1 (SQLite's
	 * rowid), so a cursor above it holds everything there is. Bound as
	 * a signed value it would read as negative and send it all again. */
	if (after > (uint64_t)INT64_MAX) {
		out->changeset.len = 0;
		out->next_cursor = after;
		out->hlc = 0;
		out->n_rows = 0;
		out->more = false;
		goto done;
	}
	wide = scope->n > st->narrow_max;
	q = wide ? st->fx[FX_PULL_WIDE] : st->fx[FX_PULL_NARROW];
	sqlite3_bind_int64(q, 1, (sqlite3_int64)after);
	if (!wide)
		sqlite3_bind_text(q, 2, (const char *)st->sc.json.data, -1,
				  SQLITE_STATIC);
	/* Two streams in server_seq order, merged: the grids' rows (q) and
	 * the worker's own issues (mine); a row in both is taken once. */
	for (;;) {
		uint64_t seq;
		const char *name;
		const char *pk;
		const struct gs_table *t;
		sqlite3_stmt *g = NULL;
		size_t size;
		size_t hdr;
		int ih;
		int live;

		if (rc != GS_OK)
			break;
		if (!q_have && !q_done) {
			step = sqlite3_step(q);
			if (step == SQLITE_ROW)
				q_have = true;
			else
				q_done = true;
		}
		if (!q_have && mine.next >= mine.n)
			break;
		if (q_have && (mine.next >= mine.n ||
			       (uint64_t)sqlite3_column_int64(q, 0) <
				       mine.seq[mine.next])) {
			seq = (uint64_t)sqlite3_column_int64(q, 0);
			name = (const char *)sqlite3_column_text(q, 1);
			pk = (const char *)sqlite3_column_text(q, 2);
			q_have = false;
			if (wide && sqlite3_column_type(q, 3) != SQLITE_NULL &&
			    !gs__scope_has(
				    scope,
				    (const char *)sqlite3_column_text(q, 3)))
				continue;
		} else {
			seq = mine.seq[mine.next];
			name = (const char *)mine.strs.data +
			       mine.off[mine.next];
			pk = name + strlen(name) + 1;
			mine.next++;
			if (q_have &&
			    (uint64_t)sqlite3_column_int64(q, 0) == seq)
				q_have = false; /* the same row */
		}
		t = gs__manifest_find(name);
		if (t == NULL || pk == NULL)
			continue; /* a table of a newer schema */
		if (seq > limit) {
			more = limited = true; /* conflicts wait: rows too */
			break;
		}
		rc = tstmt(st, t, TS_PULL, &g);
		if (rc != GS_OK)
			break;
		sqlite3_bind_text(g, 1, pk, -1, SQLITE_STATIC);
		sqlite3_bind_text(g, 2, vcut, -1, SQLITE_STATIC);
		sqlite3_bind_text(g, 3, ccut, -1, SQLITE_STATIC);
		if (sqlite3_step(g) != SQLITE_ROW) {
			/* Rows are tombstoned, never removed. */
			sqlite3_reset(g);
			rc = gs__err(st->ctx, GS_ECORRUPT,
				     "pull: %s row of server_seq %llu is "
				     "missing",
				     t->name, (unsigned long long)seq);
			break;
		}
		live = sqlite3_column_int(g, (int)t->n_cols);
		if (!live) {
			sqlite3_reset(g);
			/* Aged out of every scope (scope.h): never sent; a
			 * device with a cursor may hold an older version of
			 * it, and is told to purge it. A device starting
			 * from 0 holds none it has not swept (rescope). */
			if (after > 0) {
				rc = left_add(out, st->ctx, t->name, pk, seq);
				cursor = seq;
				if (rc == GS_OK &&
				    out->n_left >= LEFT_MAX / 2) {
					more = true;
					break;
				}
			}
			continue;
		}
		for (unsigned i = 0; i < t->n_cols; i++)
			column_value(g, (int)i, &vals[i]);
		size = gs__cs_insert_size(t, vals);
		hdr = recs[tindex(st, t)].len == 0 ? header_len(t) : 0;
		if (size == 0) {
			sqlite3_reset(g);
			rc = gs__err(st->ctx, GS_ECORRUPT,
				     "pull: %s row of server_seq %llu does not "
				     "fit the schema",
				     t->name, (unsigned long long)seq);
			break;
		}
		if (n_rows > 0 && (total + hdr + size > byte_budget ||
				   n_rows >= PULL_MAX_ROWS)) {
			sqlite3_reset(g);
			more = true;
			break;
		}
		rc = gs__cs_write_insert(&recs[tindex(st, t)], t, vals);
		ih = gs__table_col(t, "hlc");
		if (rc == GS_OK && ih >= 0 && vals[ih].type == GS_CS_TEXT) {
			char text[GS_HLC_TEXT_LEN];
			uint64_t h = 0;

			if (vals[ih].len == GS_HLC_TEXT_LEN - 1) {
				memcpy(text, vals[ih].p, vals[ih].len);
				text[vals[ih].len] = '\0';
				if (gs__hlc_parse(&h, text) == GS_OK &&
				    h > max_hlc)
					max_hlc = h;
			}
		}
		sqlite3_reset(g);
		total += hdr + size;
		n_rows++;
		cursor = seq;
	}
	if (rc == GS_OK && !more && q_done && step != SQLITE_DONE)
		rc = gs__err_from_sqlite(st->ctx, step, st->db);
	sqlite3_reset(q);
	if (rc == GS_OK) {
		/* Every row of the scope up to the limit (or all of them)
		 * went out: the cursor may move past the conflicts too. */
		if (limited && limit > cursor)
			cursor = limit;
		else if (!more && out->n_conflicts > 0 &&
			 offs[out->n_conflicts - 1].pos > cursor)
			cursor = offs[out->n_conflicts - 1].pos;
		/* Caught up: everything logged so far has been looked at,
		 * so the next pull (and the window of rows that left)
		 * starts at the end. */
		if (!more && st->seq > cursor)
			cursor = st->seq;
		rc = pull_left(st, dev, scope, after, &cursor, &more, vcut,
			       ccut, out);
	}
	out->changeset.len = 0;
	for (size_t i = 0; rc == GS_OK && i < st->n_tables; i++) {
		if (recs[i].len == 0)
			continue;
		rc = gs__cs_write_header(&out->changeset, &st->tables[i]);
		if (rc == GS_OK)
			rc = gs__buf_append(&out->changeset, recs[i].data,
					    recs[i].len);
	}
	if (rc == GS_OK) {
		out->next_cursor = cursor;
		out->hlc = max_hlc;
		out->n_rows = n_rows;
		out->more = more;
		cf_finish(out, offs);
	} else {
		out->changeset.len = 0;
		out->n_conflicts = 0;
		out->n_left = 0;
	}
done:
	if (rc != GS_OK) {
		out->n_conflicts = 0;
		out->n_left = 0;
	}
	mine_fini(st, &mine);
	for (size_t i = 0; i < MAX_TABLES; i++)
		gs__buf_fini(&recs[i]);
	release_snapshot(st);
	return rc;
}

/* ---- inspection ---------------------------------------------------- */

/* The scope hash's row filter: the scope rule of scope.h over
 * temp.gs_scope_grid and the literals in hf, never a restricted tag. */
struct hash_filter {
	struct gs_store *st;
	struct gs_scope_sql p;
};

static const char *scope_filter(const struct gs_table *t, void *payload)
{
	struct hash_filter *hf = payload;
	struct gs_buf *b = &hf->st->filt;
	bool all = false;
	int rc;

	b->len = 0;
	rc = gs__scope_row_sql(b, t, &hf->p, &all);
	if (rc == GS_OK && all)
		return NULL;
	if (rc == GS_OK && strcmp(t->name, "resident_tag") == 0) {
		rc = gs__buf_printf(b, " AND NOT (");
		if (rc == GS_OK)
			rc = sql_restricted_expr(b, t);
		if (rc == GS_OK)
			rc = gs__buf_printf(b, ")");
	}
	if (rc == GS_OK)
		rc = gs__buf_cstr(b);
	/* A filter that cannot be built must not widen the hash: match
	 * nothing, and the hash will differ. */
	return rc == GS_OK ? (const char *)b->data : "0";
}

int gs__store_scope_hash(struct gs_store *st,
			 const struct gs_store_device *dev,
			 char out[2 * GS_SHA256_LEN + 1])
{
	const struct gs_scope *scope = NULL;
	struct hash_filter hf;
	char vcut[GS_TIME_LEN];
	char ccut[GS_TIME_LEN];
	char *worker = NULL;
	char *vq = NULL;
	char *cq = NULL;
	int rc;

	GS_CHECK_ARG(st != NULL && out != NULL);
	if (dev == NULL)
		return gs__db_content_hash(st->ctx, st->db, out);
	cut_texts(st, vcut, ccut);
	worker = sqlite3_mprintf("%Q", dev->worker_id);
	vq = sqlite3_mprintf("%Q", vcut);
	cq = sqlite3_mprintf("%Q", ccut);
	rc = worker && vq && cq ? GS_OK : GS_ENOMEM;
	if (rc == GS_OK)
		rc = scope_for(st, dev, &scope);
	if (rc == GS_OK)
		rc = scope_temp(st, scope);
	hf.st = st;
	hf.p.grids = "(SELECT id FROM temp.gs_scope_grid)";
	hf.p.worker = worker;
	hf.p.visits_since = vq;
	hf.p.closed_since = cq;
	if (rc == GS_OK)
		rc = gs__db_content_hash_filtered(st->ctx, st->db, scope_filter,
						  &hf, out);
	sqlite3_free(worker);
	sqlite3_free(vq);
	sqlite3_free(cq);
	return rc;
}

/* Hand each row of s to cb as text. */
static int
emit_rows(struct gs_store *st, sqlite3_stmt *s, gs_store_row_cb cb, void *p)
{
	const char *names[32];
	const char *values[32];
	int n = sqlite3_column_count(s);
	int rc;

	GS_ASSERT(n <= 32);
	for (int i = 0; i < n; i++)
		names[i] = sqlite3_column_name(s, i);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		int stop;

		for (int i = 0; i < n; i++)
			values[i] = (const char *)sqlite3_column_text(s, i);
		stop = cb(n, names, values, p);
		if (stop != 0)
			return stop;
	}
	return rc == SQLITE_DONE ? GS_OK
				 : gs__err_from_sqlite(st->ctx, rc, st->db);
}

static int list(struct gs_store *st,
		const char *sql,
		const char *param,
		gs_store_row_cb cb,
		void *p)
{
	sqlite3_stmt *s = NULL;
	int rc;

	GS_CHECK_ARG(st != NULL && cb != NULL);
	rc = gs__db_prepare(st->ctx, st->db, &s, sql);
	if (rc != GS_OK)
		return rc;
	if (param != NULL)
		sqlite3_bind_text(s, 1, param, -1, SQLITE_STATIC);
	rc = emit_rows(st, s, cb, p);
	sqlite3_finalize(s);
	return rc;
}

#define ISO_MS(x) \
	"strftime('%Y-%m-%dT%H:%M:%fZ', (" x ") / 1000.0, 'unixepoch')"

int gs__store_list_devices(struct gs_store *st, gs_store_row_cb cb, void *p)
{
	return list(
		st,
		"SELECT d.id AS device, d.worker_id AS worker, d.role,"
		" d.scope, d.scope_version, d.revoked,"
		" ifnull((SELECT max(device_seq) FROM srv_received r"
		" WHERE r.device_id = d.id), 0) % 1099511627776 AS last_seq,"
		" CASE WHEN d.last_seen_ms > 0 THEN " ISO_MS(
			"d.last_seen_ms") " END AS last_seen,"
					  " (SELECT count(*) FROM srv_received "
					  "r WHERE"
					  " r.device_id = d.id AND r.result = "
					  "3) AS rejected,"
					  " (SELECT count(*) FROM srv_conflict "
					  "c WHERE"
					  " c.device_id = d.id) AS "
					  "conflicts_lost"
					  " FROM srv_device d ORDER BY d.id",
		NULL, cb, p);
}

/* The conflicts listing after its list of personal columns (below). */
static const char conflicts_tail[] =
	") AS personal FROM srv_conflict WHERE ?1 IS NULL OR"
	" device_id = ?1 OR entry_device = ?1)"
	" SELECT id, " ISO_MS(
		"at") " AS at, tbl AS \"table\", pk,"
		      " col AS \"column\", device_id AS loser, device_seq AS "
		      "loser_seq,"
		      " printf('%016x', winner_hlc) AS winner_hlc, "
		      "winner_device AS winner,"
		      " CASE WHEN personal THEN '(personal, ' ||"
		      " length(CAST(winner_value AS BLOB)) || ' bytes)'"
		      " WHEN typeof(winner_value) = 'blob' THEN"
		      " 'x''' || hex(winner_value) || '''' ELSE winner_value "
		      "END"
		      " AS winner_value, printf('%016x', loser_hlc) AS "
		      "loser_hlc,"
		      " CASE WHEN personal THEN '(personal, ' ||"
		      " length(CAST(loser_value AS BLOB)) || ' bytes)'"
		      " WHEN typeof(loser_value) = 'blob' THEN"
		      " 'x''' || hex(loser_value) || '''' ELSE loser_value END"
		      " AS loser_value, entry_device, entry_seq FROM c ORDER "
		      "BY id DESC";

int gs__store_list_conflicts(struct gs_store *st,
			     const char *device_id,
			     gs_store_row_cb cb,
			     void *p)
{
	struct gs_buf b;
	size_t n;
	const struct gs_table *all = gs__manifest(&n);
	int rc = GS_OK;

	GS_CHECK_ARG(st != NULL && cb != NULL);
	/* Personal columns show their size, not their value: the listing
	 * is for a console, and the devices already hold the data. */
	gs__buf_init(&b, st->ctx, SQL_MAX);
	rc = gs__buf_printf(&b,
			    "WITH c AS (SELECT *, (tbl || '.' || col) IN (");
	for (size_t t = 0, k = 0; rc == GS_OK && t < n; t++)
		for (unsigned i = 0; rc == GS_OK && i < all[t].n_cols; i++)
			if (all[t].cols[i].flags & GS_COL_PERSONAL)
				rc = gs__buf_printf(&b, "%s'%s.%s'",
						    k++ ? "," : "", all[t].name,
						    all[t].cols[i].name);
	if (rc == GS_OK)
		rc = gs__buf_append(&b, conflicts_tail, strlen(conflicts_tail));
	if (rc == GS_OK)
		rc = gs__buf_cstr(&b);
	if (rc == GS_OK)
		rc = list(st, (const char *)b.data, device_id, cb, p);
	gs__buf_fini(&b);
	return rc;
}

int gs__store_stats(struct gs_store *st, gs_store_row_cb cb, void *p)
{
	struct gs_buf b;
	size_t n;
	const struct gs_table *all = gs__manifest(&n);
	static const char cls[] = { 'R', 'D', 'S', 'A' };
	int rc = GS_OK;

	GS_CHECK_ARG(st != NULL && cb != NULL);
	gs__buf_init(&b, st->ctx, SQL_MAX);
	rc = gs__buf_printf(&b, "SELECT (SELECT count(*) FROM srv_device) AS"
				" devices");
	for (size_t c = 0; rc == GS_OK && c < sizeof(cls); c++) {
		rc = gs__buf_printf(&b, ", (0");
		for (size_t t = 0; rc == GS_OK && t < n; t++) {
			if ((char)all[t].cls != cls[c])
				continue;
			rc = gs__buf_printf(&b,
					    " + (SELECT count(*) FROM \"%s\")",
					    all[t].name);
		}
		if (rc == GS_OK)
			rc = gs__buf_printf(&b, ") AS rows_%c", cls[c] + 32);
	}
	if (rc == GS_OK)
		rc = gs__buf_printf(
			&b,
			", (SELECT ifnull(max(server_seq), 0) FROM srv_change)"
			" AS server_seq,"
			" (SELECT count(*) FROM srv_received) AS pushes,"
			" (SELECT count(*) FROM srv_received WHERE result = 3)"
			" AS rejected,"
			" (SELECT count(*) FROM srv_conflict) AS conflicts,"
			" (SELECT count(*) FROM srv_received WHERE"
			" journaled = 0) AS unjournaled,"
			" (SELECT page_count * page_size FROM"
			" pragma_page_count(), pragma_page_size()) AS"
			" store_bytes");
	if (rc == GS_OK)
		rc = gs__buf_cstr(&b);
	if (rc == GS_OK)
		rc = list(st, (const char *)b.data, NULL, cb, p);
	gs__buf_fini(&b);
	return rc;
}
