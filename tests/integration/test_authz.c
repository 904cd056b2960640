/*
 * gs-test: timeout=300
 *
 * The server trusts no device field it can check, end to end over
 * loopback with TLS 1.3 (a real gridsyncd, real device databases):
 *
 * - a grid worker who is not the assignee runs the stock CLI's rework
 *   with an assignee and a deadline of its own: the handheld refuses at
 *   once, nothing is queued, and the order stays with its assignee;
 * - a modified client (rows written straight into its database with
 *   capture on, as a patched app would) sends the same takeover, a visit
 *   of its grid naming another grid's household, a visit under another
 *   worker's id, an issue naming another grid's household, a rewritten
 *   reporter followed by a withdrawal, and forged audit events: each
 *   entry is refused with a reason that names the rule, the server's
 *   replicated rows stay byte for byte the same (content hash), and the
 *   device undoes the entry and lists it in `gridsync conflicts`.
 */
#include <gridsync/capture.h>
#include <gridsync/client_internal.h>
#include <gridsync/store.h>

#include "gs_itest.h"

struct fx {
	char *dir;
	struct gs_itest_server srv;
	struct gs_itest_workers w;
	struct gs_ctx *ctx;
	struct gs_device *a, *b, *s;
};

static struct fx F;

static int setup(void **state)
{
	(void)state;
	F.dir = gs_test_tmpdir();
	F.ctx = gs_test_ctx_new(NULL);
	gs_itest_server_create(&F.srv, F.dir, true);
	gs_itest_workers(&F.srv, &F.w);
	gs_itest_server_start(&F.srv, NULL);
	F.a = gs_itest_device(&F.srv, F.ctx, "dev-a", F.w.gw_a, F.w.grid_a);
	F.b = gs_itest_device(&F.srv, F.ctx, "dev-b", F.w.gw_b, F.w.grid_a);
	F.s = gs_itest_device(&F.srv, F.ctx, "dev-s", F.w.sc, F.w.street);
	gs_itest_sync(F.a, NULL);
	gs_itest_sync(F.b, NULL);
	gs_itest_sync(F.s, NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	gs_device_close(F.a);
	gs_device_close(F.b);
	gs_device_close(F.s);
	assert_int_equal(gs_itest_server_stop(&F.srv), 0);
	gs_ctx_free(F.ctx);
	gs_test_tmpdir_free(F.dir);
	return 0;
}

/* ---- helpers ------------------------------------------------------------ */

/* One text value from the server's database (read-only while it runs). */
static void server_text(const char *sql, const char *arg, char *out, size_t cap)
{
	struct gs_ctx *ctx = gs_test_ctx_new(NULL);
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;

	out[0] = '\0';
	assert_gs_ok(gs__db_open(&db, ctx, F.srv.db, GS_DB_READONLY));
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (arg != NULL)
		sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		snprintf(out, cap, "%s", sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	gs__db_close(db);
	gs_ctx_free(ctx);
}

/* The content hash of every replicated row the server holds. */
static void server_hash(char out[65])
{
	struct gs_ctx *ctx = gs_test_ctx_new(NULL);
	struct gs_store *st = NULL;

	assert_gs_ok(gs__store_open(&st, ctx, F.srv.db, 0));
	assert_gs_ok(gs__store_scope_hash(st, NULL, out));
	gs__store_close(st);
	gs_ctx_free(ctx);
}

static void dev_text(struct gs_device *dev,
		     const char *sql,
		     const char *arg,
		     char *out,
		     size_t cap)
{
	sqlite3_stmt *st = NULL;

	out[0] = '\0';
	assert_int_equal(
		sqlite3_prepare_v2(gs__device_db(dev), sql, -1, &st, NULL),
		SQLITE_OK);
	if (arg != NULL)
		sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		snprintf(out, cap, "%s", sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
}

/* What a modified client does: write rows with SQL, capture on, foreign
 * keys off (it may name rows it does not hold). */
static void crafted(struct gs_device *dev, const char *sql)
{
	sqlite3 *db = gs__device_db(dev);
	struct gs_capture *c = NULL;
	uint64_t hlc;
	char *err = NULL;

	assert_int_equal(
		sqlite3_exec(db, "PRAGMA foreign_keys = OFF", NULL, NULL, NULL),
		SQLITE_OK);
	assert_gs_ok(gs__capture_open(&c, F.ctx, db));
	assert_gs_ok(gs__capture_begin(c, &hlc));
	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("%s: %s", sql, err);
	assert_gs_ok(gs__capture_commit(c, NULL));
	gs__capture_close(c);
	assert_int_equal(
		sqlite3_exec(db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL),
		SQLITE_OK);
}

struct reasons {
	size_t n;
	char last[512];
};

static int conflict_row(const struct gs_row *row, void *payload)
{
	struct reasons *r = payload;
	const char *why = gs_row_get(row, "reason");

	if (r->n++ == 0 && why != NULL) /* newest first */
		snprintf(r->last, sizeof(r->last), "%s", why);
	return 0;
}

/*
 * Sync dev with one crafted entry pending and check the whole refusal:
 * rejected, the server's rows unchanged, the device back on the server's
 * rows, and a new line in its conflict list naming rule.
 */
static void
expect_refused(struct gs_device *dev, const char *dev_id, const char *rule)
{
	struct gs_sync_summary sum;
	struct reasons r0 = { 0, "" };
	struct reasons r1 = { 0, "" };
	struct gs_status st;
	char h0[65];
	char h1[65];
	char mine[65];
	char theirs[65];
	char want[64];

	assert_gs_ok(gs_conflict_list(dev, conflict_row, &r0));
	server_hash(h0);
	gs_itest_sync(dev, &sum);
	if (sum.rejected != 1)
		fail_msg("rule %s: %llu entries refused, want 1", rule,
			 (unsigned long long)sum.rejected);
	server_hash(h1);
	assert_string_equal(h1, h0);
	gs_itest_device_hash(dev, mine);
	gs_itest_scope_hash(&F.srv, dev_id, theirs);
	if (strcmp(mine, theirs) != 0)
		fail_msg("rule %s: the refused entry was not undone", rule);
	assert_gs_ok(gs_device_status(dev, &st));
	assert_int_equal(st.outbox_depth, 0);
	assert_gs_ok(gs_conflict_list(dev, conflict_row, &r1));
	assert_int_equal(r1.n, r0.n + 1);
	snprintf(want, sizeof(want), "(rule: %s)", rule);
	if (strstr(r1.last, want) == NULL)
		fail_msg("conflict '%s' does not name %s", r1.last, want);
}

static void move(struct gs_device *dev,
		 const char *id,
		 const char *to,
		 const char *assignee)
{
	struct gs_issue_move_opts mo = GS_ISSUE_MOVE_OPTS_INIT;

	mo.to = to;
	mo.assignee = assignee;
	mo.due = assignee != NULL ? "2030-01-01T00:00:00Z" : NULL;
	if (gs_issue_move(dev, id, &mo) != GS_OK)
		fail_msg("move to %s: %s", to, gs_ctx_errmsg(F.ctx));
}

static int first_household(const struct gs_row *row, void *payload)
{
	snprintf(payload, GS_ID_LEN, "%s", gs_row_get(row, "id"));
	return 1;
}

/* A reports an issue; the street centre accepts it and dispatches it to
 * A, who signs and handles it; B (the same grid) holds it handled. */
static void handled_order(char id[GS_ID_LEN], bool handle)
{
	struct gs_issue_report_opts ro = GS_ISSUE_REPORT_OPTS_INIT;
	char hh[GS_ID_LEN];
	char cat[64];

	assert_int_equal(gs_household_list(F.a, first_household, hh), 1);
	dev_text(F.a,
		 "SELECT code FROM category WHERE level = 3 AND active = 1"
		 " ORDER BY code LIMIT 1",
		 NULL, cat, sizeof(cat));
	ro.category = cat;
	ro.title = "楼道堆放杂物";
	ro.household_id = hh;
	assert_gs_ok(gs_issue_report(F.a, id, &ro));
	gs_itest_sync(F.a, NULL);
	if (handle) {
		gs_itest_sync(F.s, NULL);
		move(F.s, id, "accepted", NULL);
		move(F.s, id, "dispatched", F.w.gw_a);
		gs_itest_sync(F.s, NULL);
		gs_itest_sync(F.a, NULL);
		move(F.a, id, "in_progress", NULL);
		move(F.a, id, "handled", NULL);
		gs_itest_sync(F.a, NULL);
	}
	gs_itest_sync(F.b, NULL);
}

/* Does the server's issue id have assignee who, state and due? */
static void assert_order(const char *id,
			 const char *who,
			 const char *state,
			 const char *due)
{
	char buf[128];

	server_text("SELECT assignee_worker_id || '/' || state || '/' ||"
		    " due_at FROM issue WHERE id = ?",
		    id, buf, sizeof(buf));
	{
		char want[160];

		snprintf(want, sizeof(want), "%s/%s/%s", who, state, due);
		assert_string_equal(buf, want);
	}
}

/* ---- tests -------------------------------------------------------------- */

/* The stock CLI's takeover: refused on the handheld, nothing queued, the
 * order stays with its assignee. */
static void stock_cli_rework_cannot_take_over(void **state)
{
	char id[GS_ID_LEN];
	char due[64];
	char path[4200];
	char err_path[4200];
	char err[1024] = "";
	struct gs_status st;
	FILE *fp;
	int rc;

	(void)state;
	handled_order(id, true);
	server_text("SELECT due_at FROM issue WHERE id = ?", id, due,
		    sizeof(due));
	assert_order(id, F.w.gw_a, "handled", due);

	/* B's own database, through the stock command line. */
	gs_device_close(F.b);
	F.b = NULL;
	snprintf(path, sizeof(path), "%s/dev-b.db", F.srv.dir);
	snprintf(err_path, sizeof(err_path), "%s/cli.err", F.dir);
	{
		const char *argv[] = {
			"gridsync",   "--db",   path,    "issue",
			"move",       id,       "--to",  "dispatched",
			"--assignee", F.w.gw_b, "--due", "2099-01-01T00:00:00Z",
			NULL
		};

		rc = gs_itest_run(argv, "/dev/null", err_path);
	}
	assert_gs_ok(gs_device_open(&F.b, F.ctx, path));
	assert_gs_ok(gs_device_status(F.b, &st));
	gs_itest_sync(F.b, NULL);
	/* Whatever reached the server, the order is still A's. */
	assert_order(id, F.w.gw_a, "handled", due);
	/* And the worker was told at once, with nothing queued. */
	fp = fopen(err_path, "r");
	assert_non_null(fp);
	if (fgets(err, sizeof(err), fp) == NULL)
		err[0] = '\0';
	fclose(fp);
	if (rc == 0 || st.outbox_depth != 0)
		fail_msg("the CLI queued the takeover");
	assert_non_null(strstr(err, "--assignee"));

	/* The rework itself is B's to make: back to A, same deadline. */
	move(F.b, id, "dispatched", NULL);
	gs_itest_sync(F.b, NULL);
	assert_order(id, F.w.gw_a, "dispatched", due);
}

/* A modified client's entries: each refused whole, named, undone. */
static void modified_client_is_refused(void **state)
{
	char id[GS_ID_LEN];
	char id2[GS_ID_LEN];
	char due[64];
	char other_hh[64];
	char visit[64];
	char sql[2048];
	char buf[64];
	int64_t rev;

	(void)state;
	handled_order(id, true);
	server_text("SELECT due_at FROM issue WHERE id = ?", id, due,
		    sizeof(due));
	rev = gs_itest_server_int(
		&F.srv, "SELECT state_rev FROM issue WHERE id = ?", id);
	server_text("SELECT h.id FROM household h JOIN grid g ON"
		    " g.id = h.grid_id WHERE g.code = ? ORDER BY h.id LIMIT 1",
		    F.w.grid_c, other_hh, sizeof(other_hh));
	assert_true(other_hh[0] != '\0');

	/* 1. The takeover, written straight into the database. */
	snprintf(sql, sizeof(sql),
		 "UPDATE issue SET state = 'dispatched', state_rev = %lld,"
		 " assignee_worker_id = '%s',"
		 " due_at = '2099-01-01T00:00:00.000Z' WHERE id = '%s';"
		 "INSERT INTO issue_event (id, issue_id, kind, from_state,"
		 " to_state, base_rev, actor_worker_id, actor_role,"
		 " device_time, hlc, origin) VALUES"
		 " ('0190aaaa-0000-7000-8000-000000000001', '%s',"
		 " 'transition', 'handled', 'dispatched', %lld, '%s', 'GW',"
		 " '2025-03-01T08:30:00.000Z', '0000000000000001', 'dev-b')",
		 (long long)rev + 1, F.w.gw_b, id, id, (long long)rev,
		 F.w.gw_b);
	crafted(F.b, sql);
	expect_refused(F.b, "dev-b", "governed");
	assert_order(id, F.w.gw_a, "handled", due);
	dev_text(F.b, "SELECT assignee_worker_id FROM issue WHERE id = ?", id,
		 buf, sizeof(buf));
	assert_string_equal(buf, F.w.gw_a);

	/* 2. A visit of its own grid naming another grid's household. */
	snprintf(sql, sizeof(sql),
		 "INSERT INTO visit (id, household_id, grid_id, worker_id,"
		 " kind, started_at, outcome, hlc, origin, created_at)"
		 " SELECT '0190aaaa-0000-7000-8000-000000000002', '%s',"
		 " g.id, '%s', 'routine', '2025-03-01T08:30:00.000Z', 'met',"
		 " '0000000000000001', 'dev-b', '2025-03-01T08:30:00.000Z'"
		 " FROM grid g WHERE g.code = '%s'",
		 other_hh, F.w.gw_b, F.w.grid_a);
	crafted(F.b, sql);
	expect_refused(F.b, "dev-b", "reference");

	/* 3. A visit under another worker's id (B's own grid and
	 * household). */
	{
		struct gs_visit_opts vo = GS_VISIT_OPTS_INIT;
		char hh[GS_ID_LEN];
		char vid[GS_ID_LEN];

		assert_int_equal(gs_household_list(F.b, first_household, hh),
				 1);
		vo.household_id = hh;
		vo.kind = "routine";
		vo.outcome = "met";
		assert_gs_ok(gs_visit_add(F.b, vid, &vo));
		gs_itest_sync(F.b, NULL);
		snprintf(visit, sizeof(visit), "%s", vid);
	}
	snprintf(sql, sizeof(sql),
		 "INSERT INTO visit (id, household_id, grid_id, worker_id,"
		 " kind, started_at, outcome, hlc, origin, created_at)"
		 " SELECT '0190aaaa-0000-7000-8000-000000000003',"
		 " household_id, grid_id, '%s', kind, started_at, outcome,"
		 " hlc, origin, created_at FROM visit WHERE id = '%s'",
		 F.w.gw_a, visit);
	crafted(F.b, sql);
	expect_refused(F.b, "dev-b", "author");

	/* 4. An issue naming another grid's household. */
	snprintf(sql, sizeof(sql),
		 "UPDATE issue SET household_id = '%s' WHERE id = '%s'",
		 other_hh, id);
	crafted(F.b, sql);
	expect_refused(F.b, "dev-b", "reference");

	/* 5. B makes itself the reporter of A's new issue, then withdraws
	 * it: the first is refused, the second is not B's to make. */
	handled_order(id2, false);
	snprintf(sql, sizeof(sql),
		 "UPDATE issue SET reporter_worker_id = '%s' WHERE id = '%s'",
		 F.w.gw_b, id2);
	crafted(F.b, sql);
	expect_refused(F.b, "dev-b", "fixed");
	snprintf(sql, sizeof(sql),
		 "UPDATE issue SET state = 'cancelled', state_rev = 2 WHERE"
		 " id = '%s';"
		 "INSERT INTO issue_event (id, issue_id, kind, from_state,"
		 " to_state, base_rev, actor_worker_id, actor_role,"
		 " device_time, hlc, origin) VALUES"
		 " ('0190aaaa-0000-7000-8000-000000000005', '%s',"
		 " 'transition', 'reported', 'cancelled', 1, '%s', 'GW',"
		 " '2025-03-01T08:30:00.000Z', '0000000000000001', 'dev-b')",
		 id2, id2, F.w.gw_b);
	crafted(F.b, sql);
	gs_itest_sync(F.b, NULL);
	server_text("SELECT state || '/' || reporter_worker_id FROM issue"
		    " WHERE id = ?",
		    id2, buf, sizeof(buf));
	{
		char want[96];

		snprintf(want, sizeof(want), "reported/%s", F.w.gw_a);
		assert_string_equal(buf, want);
	}
	dev_text(F.b, "SELECT state FROM issue WHERE id = ?", id2, buf,
		 sizeof(buf));
	assert_string_equal(buf, "reported");

	/* 6. Forged audit trail: a comment in A's name as a district
	 * centre, and one that closes the order. */
	snprintf(sql, sizeof(sql),
		 "INSERT INTO issue_event (id, issue_id, kind, from_state,"
		 " to_state, base_rev, actor_worker_id, actor_role, note,"
		 " device_time, hlc, origin) VALUES"
		 " ('0190aaaa-0000-7000-8000-000000000006', '%s', 'comment',"
		 " NULL, NULL, NULL, '%s', 'DC', '已核实',"
		 " '2025-03-01T08:30:00.000Z', '0000000000000001', 'dev-b')",
		 id2, F.w.gw_a);
	crafted(F.b, sql);
	expect_refused(F.b, "dev-b", "actor");
	snprintf(sql, sizeof(sql),
		 "INSERT INTO issue_event (id, issue_id, kind, from_state,"
		 " to_state, base_rev, actor_worker_id, actor_role, note,"
		 " device_time, hlc, origin) VALUES"
		 " ('0190aaaa-0000-7000-8000-000000000007', '%s', 'comment',"
		 " 'reported', 'closed', 1, '%s', 'GW', '已结案',"
		 " '2025-03-01T08:30:00.000Z', '0000000000000001', 'dev-b')",
		 id2, F.w.gw_b);
	crafted(F.b, sql);
	expect_refused(F.b, "dev-b", "event");
	assert_int_equal(gs_itest_server_int(&F.srv,
					     "SELECT count(*) FROM issue_event"
					     " WHERE id LIKE '0190aaaa-%'"
					     " AND kind <> 'transition'",
					     NULL),
			 0);

	/* Every other device still equals the server. */
	gs_itest_sync(F.a, NULL);
	{
		char mine[65];
		char theirs[65];

		gs_itest_device_hash(F.a, mine);
		gs_itest_scope_hash(&F.srv, "dev-a", theirs);
		assert_string_equal(mine, theirs);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			stock_cli_rework_cannot_take_over, setup, teardown),
		cmocka_unit_test_setup_teardown(modified_client_is_refused,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
