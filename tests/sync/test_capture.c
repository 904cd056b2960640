/*
 * Change capture: every captured transaction stores exactly one outbox
 * entry with its changeset, in the same transaction; bookkeeping tables are
 * never captured; sequence and clock stay strictly increasing across
 * connections, pruning and a wall clock set back; and a failed allocation
 * anywhere (ours or SQLite's) leaves record and entry both or neither.
 */
#include <gridsync/capture.h>
#include <gridsync/hlc.h>

#include "gs_test.h"

/* ---- SQLite allocation failures --------------------------------------- */

static sqlite3_mem_methods real_mem;
static long sq_countdown = -1; /* fail when it reaches 0; -1: never */

static int sq_should_fail(void)
{
	if (sq_countdown < 0)
		return 0;
	return sq_countdown-- == 0;
}

static void *sq_malloc(int n)
{
	return sq_should_fail() ? NULL : real_mem.xMalloc(n);
}

static void *sq_realloc(void *p, int n)
{
	return sq_should_fail() ? NULL : real_mem.xRealloc(p, n);
}

static void install_failing_sqlite_malloc(void)
{
	sqlite3_mem_methods m;

	sqlite3_config(SQLITE_CONFIG_GETMALLOC, &real_mem);
	m = real_mem;
	m.xMalloc = sq_malloc;
	m.xRealloc = sq_realloc;
	if (sqlite3_config(SQLITE_CONFIG_MALLOC, &m) != SQLITE_OK)
		abort();
}

/* ---- fixture ---------------------------------------------------------- */

struct fx {
	struct gs_test_alloc alloc;
	struct gs_ctx *ctx;
	char *dir;
	sqlite3 *db;
	struct gs_capture *cap;
	int64_t now;
};

static int64_t fx_clock(void *payload)
{
	return ((struct fx *)payload)->now;
}

static int setup(void **state)
{
	struct gs_ctx_opts opts = GS_CTX_OPTS_INIT;
	struct fx *f = calloc(1, sizeof(*f));

	f->now = 1740817800000LL;
	opts.clock_fn = fx_clock;
	opts.clock_payload = f;
	assert_gs_ok(gs_ctx_new(&f->ctx, &opts));
	f->dir = gs_test_tmpdir();
	assert_gs_ok(gs__db_open(&f->db, f->ctx, gs_test_path(f->dir, "d.db"),
				 GS_DB_CREATE));
	assert_gs_ok(gs__db_migrate(f->ctx, f->db));
	assert_gs_ok(gs__bookkeeping_install(f->ctx, f->db));
	assert_gs_ok(gs__db_exec(
		f->ctx, f->db,
		"INSERT INTO admin_area (id, code, level, name) VALUES"
		" ('a1', '510114001001', 'community', 'c');"
		"INSERT INTO grid (id, code, level, community_id, name) VALUES"
		" ('g1', '51011400100101001', 'micro', 'a1', 'g');"));
	assert_gs_ok(gs__capture_open(&f->cap, f->ctx, f->db));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	gs__capture_close(f->cap);
	gs__db_close(f->db);
	gs_ctx_free(f->ctx);
	gs_test_tmpdir_free(f->dir);
	free(f);
	return 0;
}

static int64_t count(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int64_t n = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

static int add_household(struct fx *f,
			 sqlite3 *db,
			 struct gs_capture *c,
			 const char *id,
			 uint64_t *seq)
{
	char sql[512];
	char hlc_text[GS_HLC_TEXT_LEN];
	uint64_t hlc;
	int rc = gs__capture_begin(c, &hlc);

	if (rc != GS_OK)
		return rc;
	gs__hlc_format(hlc_text, hlc);
	snprintf(sql, sizeof(sql),
		 "INSERT INTO household (id, grid_id, hlc, origin, created_at)"
		 " VALUES ('%s', 'g1', '%s', 'dev1', 'now')",
		 id, hlc_text);
	rc = gs__db_exec(f->ctx, db, sql);
	if (rc != GS_OK) {
		gs__capture_rollback(c);
		return rc;
	}
	return gs__capture_commit(c, seq);
}

/* ---- tests ------------------------------------------------------------ */

static void one_entry_per_transaction(void **state)
{
	struct fx *f = *state;
	sqlite3_changeset_iter *it = NULL;
	sqlite3_stmt *st = NULL;
	uint8_t digest[GS_SHA256_LEN];
	const char *tab;
	int ncol, op, ind;
	uint64_t seq = 0;

	assert_gs_ok(add_household(f, f->db, f->cap, "h1", &seq));
	assert_int_equal(seq, 1);
	assert_gs_ok(add_household(f, f->db, f->cap, "h2", &seq));
	assert_int_equal(seq, 2);
	assert_int_equal(count(f->db, "SELECT count(*) FROM gs_outbox"), 2);
	assert_int_equal(sqlite3_prepare_v2(f->db,
					    "SELECT changeset, sha256 FROM"
					    " gs_outbox WHERE seq = 2",
					    -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	gs__sha256(digest, sqlite3_column_blob(st, 0),
		   (size_t)sqlite3_column_bytes(st, 0));
	assert_int_equal(sqlite3_column_bytes(st, 1), GS_SHA256_LEN);
	assert_memory_equal(digest, sqlite3_column_blob(st, 1), GS_SHA256_LEN);
	/* Our own freshly captured bytes: SQLite's iterator may read them. */
	assert_int_equal(
		sqlite3changeset_start(&it, sqlite3_column_bytes(st, 0),
				       (void *)sqlite3_column_blob(st, 0)),
		SQLITE_OK);
	assert_int_equal(sqlite3changeset_next(it), SQLITE_ROW);
	sqlite3changeset_op(it, &tab, &ncol, &op, &ind);
	assert_string_equal(tab, "household");
	assert_int_equal(op, SQLITE_INSERT);
	assert_int_equal(sqlite3changeset_next(it), SQLITE_DONE);
	sqlite3changeset_finalize(it);
	sqlite3_finalize(st);
}

static void bookkeeping_is_never_captured(void **state)
{
	struct fx *f = *state;
	uint64_t hlc;
	uint64_t seq = 99;

	assert_gs_ok(gs__capture_begin(f->cap, &hlc));
	assert_gs_ok(gs__db_exec(f->ctx, f->db,
				 "INSERT INTO gs_meta VALUES ('k', 'v');"
				 "UPDATE gs_state SET hlc_floor = 5;"));
	assert_gs_ok(gs__capture_commit(f->cap, &seq));
	assert_int_equal(seq, 0); /* nothing replicated: no entry */
	assert_int_equal(count(f->db, "SELECT count(*) FROM gs_outbox"), 0);
	assert_int_equal(count(f->db, "SELECT count(*) FROM gs_meta"), 1);
}

static void rollback_leaves_nothing(void **state)
{
	struct fx *f = *state;
	uint64_t hlc;
	uint64_t seq = 0;

	assert_gs_ok(gs__capture_begin(f->cap, &hlc));
	assert_gs_ok(gs__db_exec(f->ctx, f->db,
				 "INSERT INTO household (id, grid_id, hlc,"
				 " origin, created_at) VALUES ('hx', 'g1', 'x',"
				 " 'd', 'now')"));
	gs__capture_rollback(f->cap);
	assert_false(gs__capture_active(f->cap));
	assert_int_equal(count(f->db, "SELECT count(*) FROM household"), 0);
	assert_int_equal(count(f->db, "SELECT count(*) FROM gs_outbox"), 0);
	/* A failing statement inside the transaction: same. */
	assert_gs_err(add_household(f, f->db, f->cap, "h'bad", &seq), GS_ERROR);
	assert_int_equal(count(f->db, "SELECT count(*) FROM household"), 0);
	assert_gs_ok(add_household(f, f->db, f->cap, "h1", &seq));
	assert_int_equal(seq, 1); /* no sequence number was burnt */
}

static void clock_and_seq_survive_pruning_and_clock_jumps(void **state)
{
	struct fx *f = *state;
	uint64_t seq = 0;
	uint64_t last_seq = 0;
	uint64_t last_hlc = 0;

	assert_gs_ok(add_household(f, f->db, f->cap, "h1", &seq));
	assert_gs_ok(add_household(f, f->db, f->cap, "h2", &seq));
	/* The sync engine prunes acknowledged entries and keeps floors. */
	assert_gs_ok(gs__db_exec(f->ctx, f->db,
				 "UPDATE gs_state SET seq_floor = (SELECT"
				 " max(seq) FROM gs_outbox), hlc_floor ="
				 " (SELECT max(hlc) FROM gs_outbox);"
				 "DELETE FROM gs_outbox;"));
	f->now -= 86400000; /* the wall clock is set back a day */
	assert_gs_ok(add_household(f, f->db, f->cap, "h3", &seq));
	assert_int_equal(seq, 3);
	f->now += 3 * 86400000;
	assert_gs_ok(add_household(f, f->db, f->cap, "h4", &seq));
	assert_gs_ok(gs__capture_state(f->cap, &last_seq, &last_hlc));
	assert_int_equal(last_seq, 4);
	assert_int_equal(GS_HLC_MS(last_hlc), f->now);
	assert_int_equal(count(f->db,
			       "SELECT count(*) FROM gs_outbox a JOIN gs_outbox"
			       " b ON b.seq = a.seq + 1 WHERE b.hlc <= a.hlc"),
			 0);
	assert_true(count(f->db, "SELECT min(hlc) FROM gs_outbox") >
		    count(f->db, "SELECT hlc_floor FROM gs_state"));
}

static void two_connections_never_share_a_seq(void **state)
{
	struct fx *f = *state;
	sqlite3 *db2 = NULL;
	struct gs_capture *c2 = NULL;
	uint64_t seq = 0;
	char id[32];

	assert_gs_ok(
		gs__db_open(&db2, f->ctx, gs_test_path(f->dir, "d.db"), 0));
	assert_gs_ok(gs__capture_open(&c2, f->ctx, db2));
	for (int i = 0; i < 20; i++) {
		snprintf(id, sizeof(id), "h%d", i);
		assert_gs_ok(add_household(f, i % 2 ? db2 : f->db,
					   i % 2 ? c2 : f->cap, id, &seq));
		assert_int_equal(seq, (uint64_t)i + 1);
	}
	assert_int_equal(count(f->db, "SELECT count(DISTINCT hlc) FROM"
				      " gs_outbox"),
			 20);
	gs__capture_close(c2);
	gs__db_close(db2);
}

static void busy_writer_is_reported(void **state)
{
	struct fx *f = *state;
	sqlite3 *db2 = NULL;
	struct gs_capture *c2 = NULL;
	uint64_t hlc;

	assert_gs_ok(
		gs__db_open(&db2, f->ctx, gs_test_path(f->dir, "d.db"), 0));
	sqlite3_busy_timeout(db2, 10);
	assert_gs_ok(gs__capture_open(&c2, f->ctx, db2));
	assert_gs_ok(gs__capture_begin(f->cap, &hlc));
	assert_gs_err(gs__capture_begin(c2, &hlc), GS_EBUSY);
	assert_false(gs__capture_active(c2));
	gs__capture_rollback(f->cap);
	gs__capture_close(c2);
	gs__db_close(db2);
}

/* Fail the n-th SQLite allocation inside a captured save, for every n
 * until a save succeeds: each attempt either saves record and entry or
 * neither, and the connection stays usable. */
static void sqlite_allocation_failures_never_split_a_save(void **state)
{
	struct fx *f = *state;
	int failures = 0;
	long n;

	for (n = 0;; n++) {
		char id[32];
		uint64_t seq = 0;
		int rc;

		snprintf(id, sizeof(id), "h%ld", n);
		sq_countdown = n;
		rc = add_household(f, f->db, f->cap, id, &seq);
		sq_countdown = -1;
		gs__capture_rollback(f->cap); /* no-op unless still open */
		assert_int_equal(
			count(f->db, "SELECT count(*) FROM household"),
			count(f->db, "SELECT count(*) FROM gs_outbox"));
		if (rc == GS_OK)
			break;
		failures++;
		assert_true(rc == GS_ENOMEM || rc == GS_ERROR || rc == GS_EIO);
	}
	fprintf(stderr, "# save survived %d SQLite allocation failures\n",
		failures);
	assert_true(failures > 3);
	{
		sqlite3_stmt *st = NULL;

		assert_int_equal(sqlite3_prepare_v2(f->db,
						    "PRAGMA integrity_check",
						    -1, &st, NULL),
				 SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_string_equal(sqlite3_column_text(st, 0), "ok");
		sqlite3_finalize(st);
	}
}

static void our_allocation_failures_are_clean(void **state)
{
	struct gs_test_alloc a;
	struct gs_ctx *ctx = gs_test_ctx_new(&a);
	struct fx *f = *state;
	struct gs_capture *c = NULL;
	long n;

	(void)f;
	for (n = 0;; n++) {
		gs_test_fail_alloc_at(&a, n);
		if (gs__capture_open(&c, ctx, f->db) == GS_OK)
			break;
		assert_null(c);
		assert_int_equal(a.live, 1);
	}
	gs_test_fail_alloc_at(&a, -1);
	gs__capture_close(c);
	assert_int_equal(a.live, 1);
	gs_ctx_free(ctx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(one_entry_per_transaction,
						setup, teardown),
		cmocka_unit_test_setup_teardown(bookkeeping_is_never_captured,
						setup, teardown),
		cmocka_unit_test_setup_teardown(rollback_leaves_nothing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			clock_and_seq_survive_pruning_and_clock_jumps, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			two_connections_never_share_a_seq, setup, teardown),
		cmocka_unit_test_setup_teardown(busy_writer_is_reported, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			sqlite_allocation_failures_never_split_a_save, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			our_allocation_failures_are_clean, setup, teardown),
	};

	install_failing_sqlite_malloc();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
