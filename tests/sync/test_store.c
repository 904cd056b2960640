/*
 * The server store (store.h) against real files and real handhelds: the
 * push path's idempotency and rejections (duplicate, reused seq, gaps,
 * hashes, malformed bytes, reference tables, rows outside the device's
 * grids) leave the store exactly as it was; the scoped download holds only
 * what the device may see, never a restricted tag, and applied to a fresh
 * database gives the store's scope hash; devices, conflicts and stats are
 * listed; and a failed allocation anywhere in a push leaves nothing
 * behind and leaks nothing.
 *
 * gs-test: timeout=300
 */
#include "store_fx.h"

static int setup(void **state)
{
	*state = fx_new();
	return 0;
}

static int teardown(void **state)
{
	fx_free(*state);
	return 0;
}

static char *hash_all(struct fx *f, char out[65])
{
	assert_gs_ok(gs__store_scope_hash(f->st, NULL, out));
	return out;
}

static int64_t received(struct fx *f)
{
	return fx_int(gs__store_db(f->st), "SELECT count(*) FROM srv_received",
		      NULL);
}

/* ---- open, seed, enrol ------------------------------------------------ */

static void open_seed_enroll(void **state)
{
	struct fx *f = *state;
	struct gs_store_device d;
	struct gs_store *again = NULL;
	sqlite3 *db = gs__store_db(f->st);
	char id[GS_UUID_LEN];

	/* Every seeded row is published, once, in the change log. */
	assert_int_equal(fx_int(db,
				"SELECT count(*) FROM household"
				" WHERE server_seq IS NULL",
				NULL),
			 0);
	assert_true(fx_int(db, "SELECT count(*) FROM srv_change", NULL) > 1000);
	assert_int_equal(fx_int(db,
				"SELECT count(*) FROM resident r JOIN"
				" srv_change c ON c.tbl = 'resident' AND"
				" c.pk = r.id AND c.server_seq = r.server_seq",
				NULL),
			 fx_int(db, "SELECT count(*) FROM resident", NULL));
	/* Restricted tags are flagged in the log. */
	assert_int_equal(
		fx_int(db,
		       "SELECT count(*) FROM srv_change WHERE restricted = 1",
		       NULL),
		fx_int(db,
		       "SELECT count(*) FROM resident_tag t JOIN tag_def d"
		       " ON d.code = t.tag_code WHERE d.sensitivity ="
		       " 'restricted'",
		       NULL));
	assert_true(strlen(gs__store_server_id(f->st)) == GS_UUID_LEN - 1);
	memcpy(id, gs__store_server_id(f->st), GS_UUID_LEN);

	assert_gs_ok(
		gs__store_enroll(f->st, "dev-a", f->gw, "510114001001", &d));
	assert_string_equal(d.id, "dev-a");
	assert_int_equal(d.role, GS_ROLE_GW);
	assert_int_equal(d.last_seq, 0);
	assert_gs_err(
		gs__store_enroll(f->st, "dev-b", "no-such-worker", "x", &d),
		GS_ENOTFOUND);
	assert_gs_err(gs__store_device_get(f->st, "dev-b", &d), GS_ENOTFOUND);
	assert_gs_ok(gs__store_device_seen(f->st, "dev-a"));
	assert_gs_ok(gs__store_device_get(f->st, "dev-a", &d));
	assert_true(d.last_seen_ms > 0);

	/* Reopening keeps the server id; a file that is not a store is
	 * refused without GS_STORE_CREATE. */
	gs__store_close(f->st);
	f->st = NULL;
	assert_gs_ok(gs__store_open(&f->st, f->ctx,
				    gs_test_path(f->dir, "server.db"), 0));
	assert_string_equal(gs__store_server_id(f->st), id);
	assert_gs_err(gs__store_open(&again, f->ctx,
				     gs_test_path(f->dir, "nothing.db"), 0),
		      GS_ENOTFOUND);
	assert_null(again);
}

/* ---- push: the ordinary path ------------------------------------------- */

static void push_visits_and_issue(void **state)
{
	struct fx *f = *state;
	struct fx_dev a;
	struct gs_store_push_out out;
	char hh[GS_UUID_LEN];
	char v1[GS_ID_LEN];
	char v2[GS_ID_LEN];
	char is[GS_ID_LEN];
	char buf[64];
	sqlite3 *db = gs__store_db(f->st);
	int64_t rev;

	fx_dev_init(f, &a, "dev-a", f->gw, NULL, NULL);
	fx_household(&a, hh);
	fx_visit(&a, hh, v1);
	fx_visit(&a, hh, v2);
	fx_report(&a, hh, is);
	assert_int_equal(fx_push(f, &a, &out), 3);
	assert_int_equal(out.n_results, 3);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(out.results[i].device_seq, i + 1);
		assert_int_equal(out.results[i].result, GS_RESULT_APPLIED);
		assert_null(out.results[i].reason);
	}
	assert_int_equal(out.durable_seq, 3);
	assert_int_equal(out.n_conflicts, 0);
	assert_true(out.server_seq_first > 0);
	assert_true(out.server_seq_last >= out.server_seq_first + 4);
	gs__store_push_out_fini(&out);

	assert_int_equal(fx_int(db,
				"SELECT count(*) FROM visit WHERE"
				" household_id = ?",
				hh),
			 2);
	assert_string_equal(fx_text(db, "SELECT origin FROM visit WHERE id = ?",
				    v1, buf, sizeof(buf)),
			    "dev-a");
	fx_issue_state(f, is, buf, sizeof(buf), &rev);
	assert_string_equal(buf, "reported");
	assert_int_equal(rev, 1);
	/* Both creation events are applied and logged. */
	assert_int_equal(fx_int(db,
				"SELECT count(*) FROM issue_event WHERE"
				" issue_id = ? AND apply_status = 'applied'",
				is),
			 2);
	assert_int_equal(fx_int(db,
				"SELECT count(*) FROM srv_received WHERE"
				" device_id = 'dev-a' AND result = 1 AND"
				" journaled = 0",
				NULL),
			 3);
	assert_gs_ok(gs__store_device_get(f->st, "dev-a", &a.sd));
	assert_int_equal(a.sd.last_seq, 3);
	fx_dev_fini(&a);
}

/* ---- idempotency ------------------------------------------------------ */

static void duplicate_and_reused_seq(void **state)
{
	struct fx *f = *state;
	struct fx_dev a;
	struct fx_entries es;
	struct gs_store_push_out out;
	struct gs_store_entry e;
	char hh[GS_UUID_LEN];
	char v[GS_ID_LEN];
	char h0[65];
	char h1[65];
	uint8_t other[GS_SHA256_LEN];
	uint8_t *bytes;

	fx_dev_init(f, &a, "dev-a", f->gw, NULL, NULL);
	fx_household(&a, hh);
	fx_visit(&a, hh, v);
	fx_visit(&a, hh, v);
	fx_outbox(&a, 0, &es);
	assert_int_equal(es.n, 2);
	assert_gs_ok(gs__store_push(f->st, &a.sd, es.e, 2, &out));
	gs__store_push_out_fini(&out);
	hash_all(f, h0);

	/* The same entries again: DUPLICATE, nothing changes. */
	assert_gs_ok(gs__store_push(f->st, &a.sd, es.e, 2, &out));
	assert_int_equal(out.results[0].result, GS_RESULT_DUPLICATE);
	assert_int_equal(out.results[1].result, GS_RESULT_DUPLICATE);
	assert_int_equal(out.results[1].reject_code, GS_REJECT_NONE);
	assert_int_equal(out.durable_seq, 2);
	gs__store_push_out_fini(&out);
	assert_string_equal(hash_all(f, h1), h0);
	assert_int_equal(received(f), 2);

	/* Seq 2 with other bytes: SEQ_REUSED, nothing changes. */
	e = es.e[1];
	bytes = malloc(e.len);
	memcpy(bytes, e.changeset, e.len);
	bytes[e.len - 1] ^= 0x01; /* inside the last value */
	gs__sha256(other, bytes, e.len);
	e.changeset = bytes;
	e.sha256 = other;
	assert_gs_ok(gs__store_push(f->st, &a.sd, &e, 1, &out));
	assert_int_equal(out.results[0].result, GS_RESULT_REJECTED);
	assert_int_equal(out.results[0].reject_code, GS_REJECT_SEQ_REUSED);
	assert_non_null(out.results[0].reason);
	assert_int_equal(out.durable_seq, 2);
	gs__store_push_out_fini(&out);
	assert_string_equal(hash_all(f, h1), h0);
	assert_int_equal(received(f), 2);

	/* Seq 3 whose bytes do not match its hash: HASH, not recorded, so
	 * the clean resend is applied. */
	e.device_seq = 3;
	e.sha256 = es.e[1].sha256;
	assert_gs_ok(gs__store_push(f->st, &a.sd, &e, 1, &out));
	assert_int_equal(out.results[0].reject_code, GS_REJECT_HASH);
	assert_int_equal(out.durable_seq, 2);
	gs__store_push_out_fini(&out);
	assert_int_equal(received(f), 2);
	/* Seq 5 after 2: a gap, refused and not recorded. */
	e.device_seq = 5;
	e.sha256 = other;
	assert_gs_ok(gs__store_push(f->st, &a.sd, &e, 1, &out));
	assert_int_equal(out.results[0].result, GS_RESULT_REJECTED);
	assert_int_equal(out.results[0].reject_code, GS_REJECT_SEQ_REUSED);
	gs__store_push_out_fini(&out);
	assert_int_equal(received(f), 2);
	assert_string_equal(hash_all(f, h1), h0);
	free(bytes);
	fx_entries_free(&es);
	fx_dev_fini(&a);
}

/* ---- rejections -------------------------------------------------------- */

/* Push one raw entry as the device's next seq. */
static void push_raw(struct fx *f,
		     struct fx_dev *d,
		     const void *cs,
		     size_t len,
		     struct gs_store_push_out *out)
{
	struct gs_store_entry e;
	uint8_t sha[GS_SHA256_LEN];

	gs__sha256(sha, cs, len);
	e.device_seq = ++d->pushed;
	e.hlc = gs__hlc_make(1740817800000LL, 0);
	e.changeset = cs;
	e.len = len;
	e.sha256 = sha;
	assert_gs_ok(gs__store_push(f->st, &d->sd, &e, 1, out));
}

static void malformed_rejected_at_once(void **state)
{
	struct fx *f = *state;
	static const uint8_t trap[] = { 0x54, 0x04, 0x01, 0x00,
					0x00, 0x00, 0x54, 0x04 };
	struct fx_dev a;
	struct gs_store_push_out out;
	char h0[65];
	char h1[65];
	uint64_t t0;

	fx_dev_init(f, &a, "dev-a", f->gw, NULL, NULL);
	hash_all(f, h0);
	t0 = gs__clock_mono_ns();
	push_raw(f, &a, trap, sizeof(trap), &out);
	/* The trap that hangs SQLite 3.40.1 is answered in microseconds. */
	assert_true(gs__clock_mono_ns() - t0 < 1000000000ull);
	assert_int_equal(out.results[0].result, GS_RESULT_REJECTED);
	assert_true(out.results[0].reject_code == GS_REJECT_MALFORMED ||
		    out.results[0].reject_code == GS_REJECT_SCHEMA);
	assert_non_null(strstr(out.results[0].reason, "changeset"));
	/* Rejected entries consume their seq and are recorded. */
	assert_int_equal(out.durable_seq, 1);
	gs__store_push_out_fini(&out);
	assert_string_equal(hash_all(f, h1), h0);
	assert_int_equal(fx_int(gs__store_db(f->st),
				"SELECT count(*) FROM srv_received WHERE"
				" result = 3 AND reason IS NOT NULL",
				NULL),
			 1);
	/* The same bytes again: the first judgement stands. */
	a.pushed = 0;
	push_raw(f, &a, trap, sizeof(trap), &out);
	assert_int_equal(out.results[0].result, GS_RESULT_REJECTED);
	gs__store_push_out_fini(&out);
	fx_dev_fini(&a);
}

/* A captured write on the device's own database, outside the API's
 * checks, as a hostile or buggy handheld would send it. */
static void raw_write(struct fx *f, struct fx_dev *d, const char *sql)
{
	struct gs_capture *c = NULL;
	uint64_t hlc;
	char *err = NULL;

	assert_gs_ok(gs__capture_open(&c, f->ctx, gs__device_db(d->dev)));
	assert_gs_ok(gs__capture_begin(c, &hlc));
	if (sqlite3_exec(gs__device_db(d->dev), sql, NULL, NULL, &err) !=
	    SQLITE_OK)
		fail_msg("%s: %s", sql, err);
	assert_gs_ok(gs__capture_commit(c, NULL));
	gs__capture_close(c);
}

static void reference_and_scope_rejected(void **state)
{
	struct fx *f = *state;
	struct fx_dev a;
	struct gs_store_push_out out;
	char h0[65];
	char h1[65];
	char other_grid[64];
	char other_hh[64];
	char own_hh[GS_UUID_LEN];
	char sql[512];
	sqlite3 *db = gs__store_db(f->st);

	fx_dev_init(f, &a, "dev-a", f->gw, NULL, NULL);
	fx_household(&a, own_hh);
	fx_text(db,
		"SELECT id FROM grid WHERE level = 'micro' AND id NOT IN"
		" (SELECT grid_id FROM assignment WHERE worker_id = ?)"
		" ORDER BY code LIMIT 1",
		f->gw, other_grid, sizeof(other_grid));
	fx_text(db, "SELECT id FROM household WHERE grid_id = ? LIMIT 1",
		other_grid, other_hh, sizeof(other_hh));
	assert_true(other_hh[0] != '\0');
	hash_all(f, h0);

	/* A reference table. */
	raw_write(f, &a, "UPDATE grid SET name = 'x' WHERE level = 'micro'");
	/* A household in another grid (the device has no such row: insert
	 * one with that grid). */
	snprintf(sql, sizeof(sql),
		 "INSERT INTO household (id, grid_id, hlc, origin, created_at)"
		 " VALUES ('0190aaaa-0000-7000-8000-000000000001', '%s',"
		 " '0000000000000001', 'dev-a', '2025-01-01T00:00:00.000Z')",
		 other_grid);
	raw_write(f, &a, sql);
	/* Moving an own household into another grid. */
	snprintf(sql, sizeof(sql),
		 "UPDATE household SET grid_id = '%s' WHERE id = '%s'",
		 other_grid, own_hh);
	raw_write(f, &a, sql);
	/* An in-scope visit together with an out-of-scope one: the whole
	 * entry goes. */
	snprintf(sql, sizeof(sql),
		 "INSERT INTO visit (id, household_id, grid_id, worker_id,"
		 " kind, started_at, outcome, hlc, origin, created_at)"
		 " SELECT '0190aaaa-0000-7000-8000-00000000000' || n, NULL, g,"
		 " '%s', 'routine', '2025-01-01T00:00:00.000Z', 'met',"
		 " '0000000000000001', 'dev-a', '2025-01-01T00:00:00.000Z'"
		 " FROM (SELECT 2 AS n, (SELECT grid_id FROM household"
		 " WHERE id = '%s') AS g UNION ALL SELECT 3, '%s')",
		 f->gw, own_hh, other_grid);
	raw_write(f, &a, sql);
	assert_int_equal(fx_push(f, &a, &out), 4);
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(out.results[i].result, GS_RESULT_REJECTED);
		assert_int_equal(out.results[i].reject_code, GS_REJECT_DENIED);
		assert_non_null(strstr(out.results[i].reason,
				       i == 0 ? "TABLE_NOT_ALLOWED"
					      : "outside the device's scope"));
	}
	assert_int_equal(out.durable_seq, 4);
	gs__store_push_out_fini(&out);
	assert_string_equal(hash_all(f, h1), h0);
	/* Nothing was logged for download either. */
	assert_int_equal(fx_int(db,
				"SELECT count(*) FROM srv_change WHERE tbl IN"
				" ('visit', 'household') AND pk LIKE"
				" '0190aaaa%'",
				NULL),
			 0);
	fx_dev_fini(&a);
}

/* ---- pull ---------------------------------------------------------------- */

static void pull_scoped_and_hash(void **state)
{
	struct fx *f = *state;
	struct fx_dev a;
	struct gs_store_push_out out;
	char hh[GS_UUID_LEN];
	char v[GS_ID_LEN];
	char is[GS_ID_LEN];
	char want[65];
	char got[65];
	sqlite3 *fresh = NULL;
	sqlite3 *db = gs__store_db(f->st);
	uint64_t cursor = 0;
	size_t rows;

	fx_dev_init(f, &a, "dev-a", f->gw, NULL, NULL);
	fx_household(&a, hh);
	fx_visit(&a, hh, v);
	fx_report(&a, hh, is);
	fx_push(f, &a, &out);
	gs__store_push_out_fini(&out);

	/* A fresh database, small downloads (many chunks, children before
	 * parents across chunks now and then). */
	assert_gs_ok(gs__db_open(&fresh, f->ctx, gs_test_path(f->dir, "f.db"),
				 GS_DB_CREATE));
	assert_gs_ok(gs__db_migrate(f->ctx, fresh));
	rows = fx_pull_into(f, &a.sd, &cursor, 4096, fresh);
	assert_true(rows > 100);
	assert_gs_ok(gs__store_scope_hash(f->st, &a.sd, want));
	assert_gs_ok(gs__db_content_hash(f->ctx, fresh, got));
	assert_string_equal(got, want);
	/* Only the device's grid: households of its grid, none of others;
	 * the visit and the issue it made; every grid (reference). */
	assert_int_equal(
		fx_int(fresh, "SELECT count(*) FROM household", NULL),
		fx_int(db,
		       "SELECT count(*) FROM household WHERE grid_id IN"
		       " (SELECT grid_id FROM assignment WHERE worker_id = ?)",
		       f->gw));
	assert_int_equal(fx_int(fresh, "SELECT count(*) FROM grid", NULL),
			 fx_int(db, "SELECT count(*) FROM grid", NULL));
	assert_int_equal(fx_int(fresh, "SELECT count(*) FROM visit", NULL), 1);
	assert_int_equal(fx_int(fresh,
				"SELECT count(*) FROM issue_event WHERE"
				" apply_status = 'applied'",
				NULL),
			 2);
	/* Never a restricted tag, though the store holds some. */
	assert_true(fx_int(db,
			   "SELECT count(*) FROM resident_tag t JOIN tag_def d"
			   " ON d.code = t.tag_code WHERE d.sensitivity ="
			   " 'restricted'",
			   NULL) > 0);
	assert_int_equal(fx_int(fresh,
				"SELECT count(*) FROM resident_tag t JOIN"
				" tag_def d ON d.code = t.tag_code WHERE"
				" d.sensitivity = 'restricted'",
				NULL),
			 0);
	/* Caught up: the next pull is empty; a new change comes alone. */
	{
		struct gs_store_pull_out po;

		gs__store_pull_out_init(&po, f->ctx);
		assert_gs_ok(
			gs__store_pull(f->st, &a.sd, cursor, 1 << 20, &po));
		assert_int_equal(po.n_rows, 0);
		assert_false(po.more);
		assert_int_equal(po.next_cursor, cursor);
		fx_visit(&a, hh, v);
		fx_push(f, &a, &out);
		gs__store_push_out_fini(&out);
		assert_gs_ok(
			gs__store_pull(f->st, &a.sd, cursor, 1 << 20, &po));
		assert_int_equal(po.n_rows, 1);
		assert_true(po.hlc > 0);
		gs__store_pull_out_fini(&po);
	}
	gs__db_close(fresh);
	fx_dev_fini(&a);
}

/* A centre device covering the whole community sees every grid's rows;
 * a wide scope walks the whole log and still hashes alike. */
static void pull_wide_scope(void **state)
{
	struct fx *f = *state;
	struct fx_dev c;
	char want[65];
	char got[65];
	sqlite3 *fresh = NULL;
	uint64_t cursor = 0;

	fx_dev_init(f, &c, "dev-cs", f->cs, NULL, "510114001001");
	gs__store_set_scope_narrow(f->st, 2); /* force the wide path */
	assert_gs_ok(gs__db_open(&fresh, f->ctx, gs_test_path(f->dir, "w.db"),
				 GS_DB_CREATE));
	assert_gs_ok(gs__db_migrate(f->ctx, fresh));
	fx_pull_into(f, &c.sd, &cursor, 1u << 16, fresh);
	assert_gs_ok(gs__store_scope_hash(f->st, &c.sd, want));
	assert_gs_ok(gs__db_content_hash(f->ctx, fresh, got));
	assert_string_equal(got, want);
	assert_int_equal(fx_int(fresh, "SELECT count(*) FROM household", NULL),
			 fx_int(gs__store_db(f->st),
				"SELECT count(*) FROM household", NULL));
	gs__db_close(fresh);
	fx_dev_fini(&c);
}

/* ---- listings ------------------------------------------------------------ */

struct rows {
	int n;
	char first[256];
};

static int
count_row(int n, const char *const *names, const char *const *values, void *p)
{
	struct rows *r = p;

	if (r->n++ == 0)
		for (int i = 0; i < n; i++)
			if (strcmp(names[i], "device") == 0 ||
			    strcmp(names[i], "devices") == 0)
				snprintf(r->first, sizeof(r->first), "%s",
					 values[i] != NULL ? values[i] : "");
	return 0;
}

static void listings(void **state)
{
	struct fx *f = *state;
	struct rows r;

	assert_gs_ok(
		gs__store_enroll(f->st, "dev-a", f->gw, "510114001001", NULL));
	memset(&r, 0, sizeof(r));
	assert_gs_ok(gs__store_list_devices(f->st, count_row, &r));
	assert_int_equal(r.n, 1);
	assert_string_equal(r.first, "dev-a");
	memset(&r, 0, sizeof(r));
	assert_gs_ok(gs__store_stats(f->st, count_row, &r));
	assert_int_equal(r.n, 1);
	assert_string_equal(r.first, "1");
	memset(&r, 0, sizeof(r));
	assert_gs_ok(gs__store_list_conflicts(f->st, NULL, count_row, &r));
	assert_int_equal(r.n, 0);
}

/* ---- allocation failures ------------------------------------------------ */

static void push_survives_allocation_failures(void **state)
{
	struct fx *f = *state;
	struct fx_dev a;
	struct fx_entries es;
	struct gs_store_push_out out;
	char hh[GS_UUID_LEN];
	char v[GS_ID_LEN];
	char is[GS_ID_LEN];
	char h0[65];
	char h1[65];
	long base;
	int rc = GS_ENOMEM;

	fx_dev_init(f, &a, "dev-a", f->gw, NULL, NULL);
	fx_household(&a, hh);
	fx_visit(&a, hh, v);
	fx_report(&a, hh, is);
	{
		struct gs_field fl = { "note", "门口有台阶" };

		assert_gs_ok(gs_household_edit(a.dev, hh, &fl, 1));
	}
	fx_outbox(&a, 0, &es);
	hash_all(f, h0);
	/* The store caches the device's resolved scope: warm it first. */
	assert_gs_ok(gs__store_push(f->st, &a.sd, NULL, 0, &out));
	gs__store_push_out_fini(&out);
	base = f->alloc.live;
	for (long n = 0; rc == GS_ENOMEM; n++) {
		f->alloc.count = 0;
		f->alloc.fail_at = n;
		rc = gs__store_push(f->st, &a.sd, es.e, es.n, &out);
		f->alloc.fail_at = -1;
		if (rc == GS_OK)
			break;
		assert_int_equal(rc, GS_ENOMEM);
		assert_null(out.results);
		assert_int_equal(f->alloc.live, base);
		assert_string_equal(hash_all(f, h1), h0);
		assert_int_equal(received(f), 0);
		assert_true(n < 100000);
	}
	assert_gs_ok(rc);
	for (size_t i = 0; i < es.n; i++)
		assert_int_equal(out.results[i].result, GS_RESULT_APPLIED);
	gs__store_push_out_fini(&out);
	assert_int_equal(f->alloc.live, base);
	assert_int_equal(received(f), (int64_t)es.n);
	fx_entries_free(&es);
	fx_dev_fini(&a);
}

static void pull_and_open_survive_allocation_failures(void **state)
{
	struct fx *f = *state;
	struct gs_store_device d;
	struct gs_store_pull_out po;
	struct gs_store *st2 = NULL;
	long base;
	int rc = GS_ENOMEM;

	assert_gs_ok(
		gs__store_enroll(f->st, "dev-a", f->gw, "510114001001", &d));
	gs__store_pull_out_init(&po, f->ctx);
	base = f->alloc.live;
	for (long n = 0; rc == GS_ENOMEM; n++) {
		f->alloc.count = 0;
		f->alloc.fail_at = n;
		/* A new scope each time: its resolution is in the loop. */
		snprintf(d.scope, sizeof(d.scope), "510114001001,x%ld", n);
		rc = gs__store_pull(f->st, &d, 0, 1 << 16, &po);
		f->alloc.fail_at = -1;
		if (rc == GS_OK)
			break;
		assert_int_equal(rc, GS_ENOMEM);
		assert_int_equal(po.changeset.len, 0);
		assert_true(n < 100000);
	}
	assert_gs_ok(rc);
	assert_true(po.n_rows > 0);
	gs__store_pull_out_fini(&po);
	/* The scope cache and the statements stay: count them in. */
	assert_true(f->alloc.live >= base);

	base = f->alloc.live;
	rc = GS_ENOMEM;
	for (long n = 0; rc != GS_OK; n++) {
		f->alloc.count = 0;
		f->alloc.fail_at = n;
		rc = gs__store_open(&st2, f->ctx,
				    gs_test_path(f->dir, "server.db"), 0);
		f->alloc.fail_at = -1;
		if (rc == GS_OK)
			break;
		assert_int_equal(rc, GS_ENOMEM);
		assert_null(st2);
		assert_int_equal(f->alloc.live, base);
		assert_true(n < 100000);
	}
	gs__store_close(st2);
	assert_int_equal(f->alloc.live, base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(open_seed_enroll, setup,
						teardown),
		cmocka_unit_test_setup_teardown(push_visits_and_issue, setup,
						teardown),
		cmocka_unit_test_setup_teardown(duplicate_and_reused_seq, setup,
						teardown),
		cmocka_unit_test_setup_teardown(malformed_rejected_at_once,
						setup, teardown),
		cmocka_unit_test_setup_teardown(reference_and_scope_rejected,
						setup, teardown),
		cmocka_unit_test_setup_teardown(pull_scoped_and_hash, setup,
						teardown),
		cmocka_unit_test_setup_teardown(pull_wide_scope, setup,
						teardown),
		cmocka_unit_test_setup_teardown(listings, setup, teardown),
		cmocka_unit_test_setup_teardown(
			push_survives_allocation_failures, setup, teardown),
		cmocka_unit_test_setup_teardown(
			pull_and_open_survive_allocation_failures, setup,
			teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
