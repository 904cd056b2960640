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
	" household(dwelling_id);";

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
	FX_N
};

struct scope_cache {
	bool valid;
	char dev[GS_STORE_DEVICE_MAX];
	char codes[1024];
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
static int
sql_grid_expr(struct gs_buf *b, const struct gs_table *t, bool *global)
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
	default: /* TS_PULL: by the key's text */
		rc = gs__buf_printf(b, "SELECT ");
		if (rc == GS_OK)
			rc = sql_cols(b, t);
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

	sqlite3_bind_int64(s, 1, (sqlite3_int64)seq);
	sqlite3_bind_text(s, 2, t->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, pk, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, grid, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 5, restricted ? 1 : 0);
	return run(st, s);
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
			   " tbl, pk, grid_id, restricted) VALUES (?1, ?2,"
			   " ?3, ?4, ?5)"),
		S(CHG_NEW, "INSERT INTO srv_change (server_seq, tbl, pk,"
			   " grid_id, restricted) VALUES (?1, ?2, ?3, ?4, ?5)"),
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
#undef S
	};
	int rc = GS_OK;

	for (size_t i = 0; i < FX_N && rc == GS_OK; i++)
		rc = prep(st, &st->fx[i], fixed[i]);
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
	for (sqlite3_stmt **s = fixed; s <= &st->fx[FX_PULL_WIDE]; s++)
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

static int scope_for(struct gs_store *st,
		     const struct gs_store_device *dev,
		     const struct gs_scope **out)
{
	struct scope_cache *c = &st->sc;
	int rc;

	if (c->valid && strcmp(c->dev, dev->id) == 0 &&
	    strcmp(c->codes, dev->scope) == 0) {
		*out = &c->scope;
		return GS_OK;
	}
	c->valid = false;
	gs__scope_fini(&c->scope);
	c->json.len = 0;
	rc = gs__scope_load(&c->scope, st->ctx, st->db, dev->scope);
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
	snprintf(c->dev, sizeof(c->dev), "%s", dev->id);
	snprintf(c->codes, sizeof(c->codes), "%s", dev->scope);
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
			" (server_seq, tbl, pk, grid_id, restricted)"
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
			    " % 1099511627776"
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
			    " excluded.role, scope = excluded.scope,"
			    " revoked = 0");
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
	if (out != NULL)
		rc = gs__store_device_get(st, device_id, out);
	return rc;
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
	rc = scope_for(st, dev, &scope);
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
}

void gs__store_pull_out_fini(struct gs_store_pull_out *out)
{
	if (out == NULL)
		return;
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
	size_t total = 0;
	size_t n_rows = 0;
	uint64_t cursor = after;
	uint64_t max_hlc = 0;
	bool wide;
	bool more = false;
	int step = SQLITE_DONE;
	int rc;

	GS_CHECK_ARG(st != NULL && dev != NULL && out != NULL);
	for (size_t i = 0; i < MAX_TABLES; i++)
		gs__buf_init(&recs[i], st->ctx, GS_FRAME_MAX_CEILING);
	if (byte_budget == 0)
		byte_budget = 1;
	if (byte_budget > PULL_MAX_BYTES)
		byte_budget = PULL_MAX_BYTES;
	rc = scope_for(st, dev, &scope);
	if (rc == GS_OK)
		rc = cf_load(st, dev->id, after, out, offs, &limit);
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
	while (rc == GS_OK && (step = sqlite3_step(q)) == SQLITE_ROW) {
		uint64_t seq = (uint64_t)sqlite3_column_int64(q, 0);
		const char *name = (const char *)sqlite3_column_text(q, 1);
		const char *pk = (const char *)sqlite3_column_text(q, 2);
		const struct gs_table *t = gs__manifest_find(name);
		sqlite3_stmt *g = NULL;
		size_t size;
		size_t hdr;
		int ih;

		if (wide && sqlite3_column_type(q, 3) != SQLITE_NULL &&
		    !gs__scope_has(scope,
				   (const char *)sqlite3_column_text(q, 3)))
			continue;
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
		if (sqlite3_step(g) != SQLITE_ROW) {
			/* Rows are tombstoned, never removed. */
			sqlite3_reset(g);
			rc = gs__err(st->ctx, GS_ECORRUPT,
				     "pull: %s row of server_seq %llu is "
				     "missing",
				     t->name, (unsigned long long)seq);
			break;
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
	if (rc == GS_OK && !more && step != SQLITE_DONE)
		rc = gs__err_from_sqlite(st->ctx, step, st->db);
	sqlite3_reset(q);
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
		/* Every row of the scope up to the limit (or all of them)
		 * went out: the cursor may move past the conflicts too. */
		if (limited && limit > cursor)
			cursor = limit;
		else if (!more && out->n_conflicts > 0 &&
			 offs[out->n_conflicts - 1].pos > cursor)
			cursor = offs[out->n_conflicts - 1].pos;
		out->next_cursor = cursor;
		out->hlc = max_hlc;
		out->n_rows = n_rows;
		out->more = more;
		cf_finish(out, offs);
	} else {
		out->changeset.len = 0;
		out->n_conflicts = 0;
	}
done:
	if (rc != GS_OK)
		out->n_conflicts = 0;
	for (size_t i = 0; i < MAX_TABLES; i++)
		gs__buf_fini(&recs[i]);
	release_snapshot(st);
	return rc;
}

/* ---- inspection ---------------------------------------------------- */

/* The scope hash's row filter: rows of reference tables all, others when
 * their grid is global or one of temp.gs_scope_grid, never a restricted
 * tag. */
static const char *scope_filter(const struct gs_table *t, void *payload)
{
	struct gs_store *st = payload;
	struct gs_buf *g = &st->sql;
	struct gs_buf *b = &st->filt;
	bool global;
	int rc;

	g->len = 0;
	b->len = 0;
	rc = sql_grid_expr(g, t, &global);
	if (rc == GS_OK && global)
		return NULL;
	if (rc == GS_OK)
		rc = gs__buf_cstr(g);
	if (rc == GS_OK)
		rc = gs__buf_printf(b,
				    "((%s) IS NULL OR (%s) IN (SELECT id FROM"
				    " temp.gs_scope_grid))",
				    (const char *)g->data,
				    (const char *)g->data);
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
	sqlite3_stmt *s = NULL;
	int rc;

	GS_CHECK_ARG(st != NULL && out != NULL);
	if (dev == NULL)
		return gs__db_content_hash(st->ctx, st->db, out);
	rc = scope_for(st, dev, &scope);
	if (rc == GS_OK)
		rc = gs__db_exec(st->ctx, st->db,
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
	if (rc == GS_OK)
		rc = gs__db_content_hash_filtered(st->ctx, st->db, scope_filter,
						  st, out);
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
		" d.scope, d.revoked,"
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
