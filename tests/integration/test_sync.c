/*
 * gs-test: timeout=300
 *
 * End to end over loopback with TLS 1.3: a real gridsyncd process, real
 * device databases and real certificates from `gridsyncd enroll`. Four
 * devices of the demo profile: A and B share micro-grid A (its
 * responsible worker and the full-time worker assisting it), C works
 * another micro-grid, S is a street centre. Each test checks convergence
 * by content hash: after a full sync, a device's replicated rows equal the
 * server's rows of its scope.
 */
#include <gridsync/capture.h>
#include <gridsync/client_internal.h>
#include <gridsync/hlc.h>
#include <gridsync/store.h>
#include <gridsync/synth.h>

#include "gs_itest.h"

struct fx {
	char *dir;
	struct gs_itest_server srv;
	struct gs_itest_workers w;
	struct gs_ctx *ctx;
	struct gs_device *a, *b, *c, *s;
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
	F.c = gs_itest_device(&F.srv, F.ctx, "dev-c", F.w.gw_c, F.w.grid_c);
	F.s = gs_itest_device(&F.srv, F.ctx, "dev-s", F.w.sc, F.w.street);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	gs_device_close(F.a);
	gs_device_close(F.b);
	gs_device_close(F.c);
	gs_device_close(F.s);
	assert_int_equal(gs_itest_server_stop(&F.srv), 0);
	{
		const char *verify[] = { "gridsyncd",   "journal", "verify",
					 "--db",        F.srv.db,  "--journal",
					 F.srv.journal, NULL };

		assert_int_equal(gs_itest_run(verify, "/dev/null", NULL), 0);
	}
	gs_ctx_free(F.ctx);
	gs_test_tmpdir_free(F.dir);
	return 0;
}

static void sync_all(void)
{
	gs_itest_sync(F.a, NULL);
	gs_itest_sync(F.b, NULL);
	gs_itest_sync(F.c, NULL);
	gs_itest_sync(F.s, NULL);
}

static void assert_converged(struct gs_device *dev, const char *id)
{
	char mine[65];
	char theirs[65];

	gs_itest_device_hash(dev, mine);
	gs_itest_scope_hash(&F.srv, id, theirs);
	if (strcmp(mine, theirs) != 0)
		fail_msg("%s did not converge: device %s, server %s", id, mine,
			 theirs);
}

static int64_t q(struct gs_device *dev, const char *sql, const char *arg)
{
	sqlite3 *db = gs__device_db(dev);
	sqlite3_stmt *st = NULL;
	int64_t v = -1;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (arg != NULL)
		sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void text(struct gs_device *dev,
		 const char *sql,
		 const char *arg,
		 char *out,
		 size_t cap)
{
	sqlite3 *db = gs__device_db(dev);
	sqlite3_stmt *st = NULL;

	out[0] = '\0';
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (arg != NULL)
		sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		snprintf(out, cap, "%s", sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
}

static int first_household(const struct gs_row *row, void *payload)
{
	snprintf(payload, GS_ID_LEN, "%s", gs_row_get(row, "id"));
	return 1;
}

/* ---- tests -------------------------------------------------------------- */

static void bootstrap_converges_and_stays_in_scope(void **state)
{
	struct gs_sync_summary sum;
	char grid_like[40];

	(void)state;
	gs_itest_sync(F.a, &sum);
	assert_true(sum.pulled_rows > 100);
	gs_itest_sync(F.b, NULL);
	gs_itest_sync(F.c, NULL);
	gs_itest_sync(F.s, NULL);
	assert_converged(F.a, "dev-a");
	assert_converged(F.b, "dev-b");
	assert_converged(F.c, "dev-c");
	assert_converged(F.s, "dev-s");
	/* No foreign row: every household of A and C is in its grid. */
	snprintf(grid_like, sizeof(grid_like), "%s%%", F.w.grid_a);
	assert_true(q(F.a, "SELECT count(*) FROM household", NULL) > 0);
	assert_int_equal(q(F.a,
			   "SELECT count(*) FROM household h JOIN grid g ON"
			   " g.id = h.grid_id WHERE g.code NOT LIKE ?",
			   grid_like),
			 0);
	assert_int_equal(q(F.c,
			   "SELECT count(*) FROM household h JOIN grid g ON"
			   " g.id = h.grid_id WHERE g.code LIKE ?",
			   grid_like),
			 0);
	/* Restricted tags never leave the server. */
	assert_int_equal(q(F.s,
			   "SELECT count(*) FROM resident_tag t JOIN tag_def d"
			   " ON d.code = t.tag_code WHERE d.sensitivity ="
			   " 'restricted'",
			   NULL),
			 0);
	/* The street centre sees both grids. */
	assert_true(q(F.s, "SELECT count(*) FROM household", NULL) >
		    q(F.a, "SELECT count(*) FROM household", NULL));
}

static void same_and_different_columns_on_two_devices(void **state)
{
	struct gs_field fa[] = { { "note", "A 先改" }, { "size", "3" } };
	struct gs_field fb[] = { { "note", "B 后改" }, { "tenure", "租住" } };
	struct gs_sync_summary sum;
	char hh[GS_ID_LEN];
	char note[64];
	char sql[256];

	(void)state;
	sync_all();
	assert_int_equal(gs_household_list(F.a, first_household, hh), 1);
	/* A edits first (older HLC), B later; B syncs first, so A's push
	 * arrives second and loses the note, keeping its size. */
	assert_gs_ok(gs_household_edit(F.a, hh, fa, 2));
	assert_gs_ok(gs_household_edit(F.b, hh, fb, 2));
	gs_itest_sync(F.b, NULL);
	gs_itest_sync(F.a, &sum);
	assert_true(sum.conflicts >= 1);
	gs_itest_sync(F.b, NULL);
	text(F.a, "SELECT note FROM household WHERE id = ?", hh, note,
	     sizeof(note));
	assert_string_equal(note, "B 后改");
	text(F.b, "SELECT note FROM household WHERE id = ?", hh, note,
	     sizeof(note));
	assert_string_equal(note, "B 后改");
	assert_int_equal(q(F.b, "SELECT size FROM household WHERE id = ?", hh),
			 3);
	text(F.a, "SELECT tenure FROM household WHERE id = ?", hh, note,
	     sizeof(note));
	assert_string_equal(note, "租住");
	/* A's lost write is listed on A, with the winner. */
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM gs_conflict WHERE tbl = 'household'"
		 " AND col = 'note' AND winner = 'dev-b' AND pk = ?");
	assert_int_equal(q(F.a, sql, hh), 1);
	assert_converged(F.a, "dev-a");
	assert_converged(F.b, "dev-b");
}

static void delete_against_update(void **state)
{
	struct gs_field fb[] = { { "size", "5" } };
	char hh[GS_ID_LEN];

	(void)state;
	sync_all();
	assert_int_equal(gs_household_list(F.a, first_household, hh), 1);
	assert_gs_ok(gs_household_delete(F.a, hh));
	assert_gs_ok(gs_household_edit(F.b, hh, fb, 1));
	gs_itest_sync(F.a, NULL);
	gs_itest_sync(F.b, NULL);
	gs_itest_sync(F.a, NULL);
	/* Different columns: both survive; the row stays a tombstone. */
	assert_int_equal(
		q(F.b, "SELECT deleted FROM household WHERE id = ?", hh), 1);
	assert_int_equal(q(F.a, "SELECT size FROM household WHERE id = ?", hh),
			 5);
	assert_converged(F.a, "dev-a");
	assert_converged(F.b, "dev-b");
}

static char *issue_state(struct gs_device *dev, const char *id)
{
	static char buf[4][32];
	static unsigned n;
	char *p = buf[n++ % 4];

	text(dev, "SELECT state FROM issue WHERE id = ?", id, p, 32);
	return p;
}

static void move(struct gs_device *dev,
		 const char *id,
		 const char *to,
		 const char *note,
		 const char *assignee)
{
	struct gs_issue_move_opts mo = GS_ISSUE_MOVE_OPTS_INIT;
	int rc;

	mo.to = to;
	mo.note = note;
	mo.assignee = assignee;
	mo.due = assignee != NULL ? "2030-01-01T00:00:00Z" : NULL;
	rc = gs_issue_move(dev, id, &mo);
	if (rc != GS_OK)
		fail_msg("move to %s: %s", to, gs_ctx_errmsg(F.ctx));
}

static void work_order_from_report_to_closure(void **state)
{
	struct gs_issue_report_opts ro = GS_ISSUE_REPORT_OPTS_INIT;
	struct gs_synth_rng rng;
	struct gs_synth_issue is;
	char hh[GS_ID_LEN];
	char id[GS_ID_LEN];
	char status[32];

	(void)state;
	sync_all();
	gs__synth_rng_seed(&rng, 11);
	assert_gs_ok(gs__synth_issue(&is, &rng, NULL));
	assert_int_equal(gs_household_list(F.a, first_household, hh), 1);
	ro.category = is.category_code;
	ro.title = is.title;
	ro.description = is.description;
	ro.household_id = hh;
	assert_gs_ok(gs_issue_report(F.a, id, &ro));
	gs_itest_sync(F.a, NULL);
	/* The street centre accepts it and dispatches it to A. */
	gs_itest_sync(F.s, NULL);
	assert_string_equal(issue_state(F.s, id), "reported");
	move(F.s, id, "accepted", NULL, NULL);
	move(F.s, id, "dispatched", NULL, F.w.gw_a);
	gs_itest_sync(F.s, NULL);
	assert_string_equal(issue_state(F.s, id), "dispatched");
	/* A receives the order, signs, handles it. */
	gs_itest_sync(F.a, NULL);
	assert_string_equal(issue_state(F.a, id), "dispatched");
	move(F.a, id, "in_progress", NULL, NULL);
	move(F.a, id, "handled", NULL, NULL);
	gs_itest_sync(F.a, NULL);
	/* B verifies on site, the centre closes. */
	gs_itest_sync(F.b, NULL);
	assert_string_equal(issue_state(F.b, id), "handled");
	/* Meanwhile A, offline, thinks the fix failed (a stale move). */
	move(F.a, id, "dispatched", "返工", NULL);
	move(F.b, id, "verified", NULL, NULL);
	gs_itest_sync(F.b, NULL);
	gs_itest_sync(F.s, NULL);
	move(F.s, id, "closed", NULL, NULL);
	gs_itest_sync(F.s, NULL);
	/* A's stale move arrives after the closure: rejected_stale. */
	gs_itest_sync(F.a, NULL);
	sync_all();
	assert_string_equal(issue_state(F.a, id), "closed");
	assert_string_equal(issue_state(F.b, id), "closed");
	assert_string_equal(issue_state(F.s, id), "closed");
	text(F.a,
	     "SELECT apply_status FROM issue_event WHERE issue_id = ? AND"
	     " from_state = 'handled' AND to_state = 'dispatched'",
	     id, status, sizeof(status));
	assert_string_equal(status, "rejected_stale");
	/* Every device holds the same history. */
	assert_int_equal(q(F.a,
			   "SELECT count(*) FROM issue_event WHERE"
			   " issue_id = ?",
			   id),
			 q(F.s,
			   "SELECT count(*) FROM issue_event WHERE"
			   " issue_id = ?",
			   id));
	assert_true(q(F.b,
		      "SELECT count(*) FROM issue_event WHERE issue_id"
		      " = ? AND apply_status = 'applied'",
		      id) >= 8);
	assert_converged(F.a, "dev-a");
	assert_converged(F.b, "dev-b");
	assert_converged(F.s, "dev-s");
}

static void write_outside_scope_is_rejected(void **state)
{
	struct gs_ctx *ctx = gs_test_ctx_new(NULL);
	struct gs_capture *cap = NULL;
	struct gs_sync_summary sum;
	char grid_a_id[64];
	char before[65];
	char after[65];
	char sql[512];
	char hlc_text[GS_HLC_TEXT_LEN];
	uint64_t hlc;
	struct gs_ctx *sctx = gs_test_ctx_new(NULL);
	struct gs_store *st = NULL;

	(void)state;
	sync_all();
	assert_gs_ok(gs__store_open(&st, sctx, F.srv.db, 0));
	assert_gs_ok(gs__store_scope_hash(st, NULL, before));
	/* C forges a household in A's grid, past its own API's check. */
	text(F.c, "SELECT id FROM grid WHERE code = ?", F.w.grid_a, grid_a_id,
	     sizeof(grid_a_id));
	assert_true(grid_a_id[0] != '\0');
	assert_gs_ok(gs__capture_open(&cap, ctx, gs__device_db(F.c)));
	assert_gs_ok(gs__capture_begin(cap, &hlc));
	gs__hlc_format(hlc_text, hlc);
	/* Grid rows are district-wide reference data: C holds A's grid. */
	snprintf(sql, sizeof(sql),
		 "INSERT INTO household (id, grid_id, hlc, origin, created_at)"
		 " VALUES ('forged-hh', '%s', '%s', 'dev-c', 'now')",
		 grid_a_id, hlc_text);
	assert_int_equal(
		sqlite3_exec(gs__device_db(F.c), sql, NULL, NULL, NULL),
		SQLITE_OK);
	assert_gs_ok(gs__capture_commit(cap, NULL));
	gs__capture_close(cap);
	gs_itest_sync(F.c, &sum);
	assert_int_equal(sum.rejected, 1);
	assert_gs_ok(gs__store_scope_hash(st, NULL, after));
	assert_string_equal(before, after);
	/* C undid its forged row and still converges. */
	assert_int_equal(q(F.c,
			   "SELECT count(*) FROM household WHERE id ="
			   " 'forged-hh'",
			   NULL),
			 0);
	assert_true(q(F.c,
		      "SELECT count(*) FROM gs_conflict WHERE reason LIKE"
		      " 'rejected%'",
		      NULL) >= 1);
	/* What was undone stays visible: the row and the values it held. */
	assert_int_equal(q(F.c,
			   "SELECT count(*) FROM gs_conflict WHERE tbl ="
			   " 'household' AND pk = 'forged-hh' AND value LIKE"
			   " '%grid_id=%'",
			   NULL),
			 1);
	gs__store_close(st);
	gs_ctx_free(sctx);
	gs_ctx_free(ctx);
}

struct during {
	const char *path;
	const char *household;
	int edits;
};

/* Runs inside the sync, between its push and its pull: a worker saves a
 * record through another connection, as another process would. */
static void edit_during_sync(const char *phase,
			     const struct gs_sync_summary *sum,
			     void *payload)
{
	struct during *d = payload;
	struct gs_ctx *ctx;
	struct gs_device *dev = NULL;
	struct gs_field f[] = { { "note", "同步中修改" } };

	(void)sum;
	if (strcmp(phase, "pull") != 0 || d->edits > 0)
		return;
	ctx = gs_test_ctx_new(NULL);
	assert_gs_ok(gs_device_open(&dev, ctx, d->path));
	assert_gs_ok(gs_household_edit(dev, d->household, f, 1));
	gs_device_close(dev);
	gs_ctx_free(ctx);
	d->edits++;
}

static void local_edit_during_sync_is_kept(void **state)
{
	struct gs_sync_opts so = GS_SYNC_OPTS_INIT;
	struct gs_field fb[] = { { "note", "来自B" } };
	struct during d;
	char path[4200];
	char hh[GS_ID_LEN];
	char note[64];

	(void)state;
	sync_all();
	assert_int_equal(gs_household_list(F.a, first_household, hh), 1);
	/* Something for A to pull on the same row. */
	assert_gs_ok(gs_household_edit(F.b, hh, fb, 1));
	gs_itest_sync(F.b, NULL);
	snprintf(path, sizeof(path), "%s/dev-a.db", F.srv.dir);
	d.path = path;
	d.household = hh;
	d.edits = 0;
	so.once = 1;
	so.progress = edit_during_sync;
	so.payload = &d;
	assert_gs_ok(gs_device_sync(F.a, &so, NULL));
	assert_int_equal(d.edits, 1);
	/* Not reverted by the download, still pending... */
	text(F.a, "SELECT note FROM household WHERE id = ?", hh, note,
	     sizeof(note));
	assert_string_equal(note, "同步中修改");
	assert_int_equal(q(F.a, "SELECT count(*) FROM gs_outbox", NULL), 1);
	/* ...and not lost: the next sync carries it to everyone. */
	gs_itest_sync(F.a, NULL);
	gs_itest_sync(F.b, NULL);
	text(F.b, "SELECT note FROM household WHERE id = ?", hh, note,
	     sizeof(note));
	assert_string_equal(note, "同步中修改");
	assert_converged(F.a, "dev-a");
	assert_converged(F.b, "dev-b");
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(bootstrap_converges_and_stays_in_scope),
		T(same_and_different_columns_on_two_devices),
		T(delete_against_update),
		T(work_order_from_report_to_closure),
		T(write_outside_scope_is_rejected),
		T(local_edit_during_sync_is_kept),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
