/*
 * gs-test: timeout=400
 *
 * Scope changes end to end over loopback with TLS 1.3, a real gridsyncd
 * and real device databases. The scope is the server's: a household moved
 * to another grid leaves the old grid's devices and reaches the new
 * grid's whole; `gridsyncd scope set` widens (every row of the new grid
 * arrives, not only those changed after the cursor) and moves a device
 * (what left is purged, unsent edits are pushed first); an issue
 * dispatched to a worker outside its grids reaches that worker; visits
 * older than 12 months and issues closed more than 30 days ago leave
 * every scope. Each check compares content hashes: a device equals the
 * server's rows of its scope, and a fresh device of the same worker and
 * scope ends with exactly the same content as the one that lived through
 * the change.
 */
#include <time.h>

#include <gridsync/client_internal.h>
#include <gridsync/scope.h>
#include <gridsync/synth.h>

#include "gs_itest.h"

struct fx {
	char *dir;
	struct gs_itest_server srv;
	struct gs_itest_workers w;
	struct gs_ctx *ctx;
	char grid_a_id[64];
	char grid_c_id[64];
};

static struct fx F;

static void grid_id(const char *code, char *out, size_t cap)
{
	struct gs_ctx *ctx = gs_test_ctx_new(NULL);
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;

	assert_gs_ok(gs__db_open(&db, ctx, F.srv.db, GS_DB_READONLY));
	assert_int_equal(
		sqlite3_prepare_v2(db, "SELECT id FROM grid WHERE code = ?", -1,
				   &st, NULL),
		SQLITE_OK);
	sqlite3_bind_text(st, 1, code, -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	snprintf(out, cap, "%s", sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	gs__db_close(db);
	gs_ctx_free(ctx);
}

static int setup(void **state)
{
	(void)state;
	F.dir = gs_test_tmpdir();
	F.ctx = gs_test_ctx_new(NULL);
	gs_itest_server_create(&F.srv, F.dir, true);
	gs_itest_workers(&F.srv, &F.w);
	grid_id(F.w.grid_a, F.grid_a_id, sizeof(F.grid_a_id));
	grid_id(F.w.grid_c, F.grid_c_id, sizeof(F.grid_c_id));
	gs_itest_server_start(&F.srv, NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
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

/* A fresh device of worker and scope, synced once, holds exactly what
 * dev holds. */
static void assert_fresh_equal(struct gs_device *dev,
			       const char *fresh_id,
			       const char *worker,
			       const char *scope)
{
	struct gs_device *fresh =
		gs_itest_device(&F.srv, F.ctx, fresh_id, worker, scope);
	char a[65];
	char b[65];

	gs_itest_sync(fresh, NULL);
	gs_itest_device_hash(dev, a);
	gs_itest_device_hash(fresh, b);
	if (strcmp(a, b) != 0)
		fail_msg("fresh device %s differs from the one that lived "
			 "through the change: %s vs %s",
			 fresh_id, b, a);
	assert_converged(fresh, fresh_id);
	gs_device_close(fresh);
}

static void scope_set(const char *device, const char *scope)
{
	const char *argv[] = { "gridsyncd", "scope",    "set",  "--db",
			       F.srv.db,    "--device", device, "--scope",
			       scope,       NULL };

	assert_int_equal(gs_itest_run(argv, "/dev/null", NULL), 0);
}

static int64_t srv_households(const char *grid)
{
	return gs_itest_server_int(&F.srv,
				   "SELECT count(*) FROM household WHERE"
				   " grid_id = ?",
				   grid);
}

static int64_t dev_households(struct gs_device *dev, const char *grid)
{
	return q(dev, "SELECT count(*) FROM household WHERE grid_id = ?", grid);
}

/* A household of grid A with residents, as dev holds it. */
static void household_with_residents(struct gs_device *dev, char out[GS_ID_LEN])
{
	text(dev,
	     "SELECT h.id FROM household h WHERE h.grid_id = ? AND EXISTS"
	     " (SELECT 1 FROM resident r WHERE r.household_id = h.id)"
	     " ORDER BY h.id LIMIT 1",
	     F.grid_a_id, out, GS_ID_LEN);
	assert_true(out[0] != '\0');
}

/* ---- tests -------------------------------------------------------------- */

static void household_moved_leaves_the_old_grid(void **state)
{
	struct gs_device *m;
	struct gs_device *a;
	struct gs_device *c;
	struct gs_field f[] = { { "grid_id", F.grid_c_id } };
	char scope_ac[80];
	char hh[GS_ID_LEN];
	char grid[64];
	int64_t residents;

	(void)state;
	/* M covers both grids; A only grid A, C only grid C. */
	snprintf(scope_ac, sizeof(scope_ac), "%s,%s", F.w.grid_a, F.w.grid_c);
	m = gs_itest_device(&F.srv, F.ctx, "dev-m", F.w.gw_a, scope_ac);
	a = gs_itest_device(&F.srv, F.ctx, "dev-a", F.w.gw_b, F.w.grid_a);
	c = gs_itest_device(&F.srv, F.ctx, "dev-c", F.w.gw_c, F.w.grid_c);
	gs_itest_sync(m, NULL);
	gs_itest_sync(a, NULL);
	gs_itest_sync(c, NULL);
	household_with_residents(a, hh);
	residents = q(a, "SELECT count(*) FROM resident WHERE household_id = ?",
		      hh);
	assert_true(residents > 0);
	assert_int_equal(
		q(c, "SELECT count(*) FROM household WHERE id = ?", hh), 0);
	/* M moves it from A to C. */
	assert_gs_ok(gs_household_edit(m, hh, f, 1));
	gs_itest_sync(m, NULL);
	gs_itest_sync(a, NULL);
	gs_itest_sync(c, NULL);
	/* A no longer holds it nor its residents... */
	assert_int_equal(
		q(a, "SELECT count(*) FROM household WHERE id = ?", hh), 0);
	assert_int_equal(q(a,
			   "SELECT count(*) FROM resident WHERE"
			   " household_id = ?",
			   hh),
			 0);
	/* ...C holds it with every resident... */
	text(c, "SELECT grid_id FROM household WHERE id = ?", hh, grid,
	     sizeof(grid));
	assert_string_equal(grid, F.grid_c_id);
	assert_int_equal(q(c,
			   "SELECT count(*) FROM resident WHERE"
			   " household_id = ?",
			   hh),
			 residents);
	/* ...and each equals the server and a fresh device of its grid. */
	assert_converged(a, "dev-a");
	assert_converged(c, "dev-c");
	assert_converged(m, "dev-m");
	assert_fresh_equal(a, "dev-a2", F.w.gw_b, F.w.grid_a);
	assert_fresh_equal(c, "dev-c2", F.w.gw_c, F.w.grid_c);
	gs_device_close(m);
	gs_device_close(a);
	gs_device_close(c);
}

struct during {
	const char *path;
	const char *household;
	int edits;
};

/* Runs inside A's sync, after its push and before its pull: the worker
 * saves an edit of the household that is leaving, through another
 * connection, as another process would. */
static void edit_during_pull(const char *phase,
			     const struct gs_sync_summary *sum,
			     void *payload)
{
	struct during *d = payload;
	struct gs_field f[] = { { "note", "搬走时正在修改" } };
	struct gs_device *dev = NULL;
	struct gs_ctx *ctx;

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

static void unsent_edit_is_not_purged_before_it_is_judged(void **state)
{
	struct gs_sync_opts so = GS_SYNC_OPTS_INIT;
	struct gs_field f[] = { { "grid_id", F.grid_c_id } };
	struct gs_sync_summary sum;
	struct gs_device *m;
	struct gs_device *a;
	struct gs_status st;
	struct during d;
	char scope_ac[80];
	char path[4200];
	char hh[GS_ID_LEN];

	(void)state;
	snprintf(scope_ac, sizeof(scope_ac), "%s,%s", F.w.grid_a, F.w.grid_c);
	m = gs_itest_device(&F.srv, F.ctx, "dev-m", F.w.gw_a, scope_ac);
	a = gs_itest_device(&F.srv, F.ctx, "dev-a", F.w.gw_b, F.w.grid_a);
	gs_itest_sync(m, NULL);
	gs_itest_sync(a, NULL);
	household_with_residents(a, hh);
	assert_gs_ok(gs_household_edit(m, hh, f, 1));
	gs_itest_sync(m, NULL);
	/* A learns that the household left while it edits it. */
	snprintf(path, sizeof(path), "%s/dev-a.db", F.srv.dir);
	d.path = path;
	d.household = hh;
	d.edits = 0;
	so.once = 1;
	so.timeout_ms = 30000;
	so.progress = edit_during_pull;
	so.payload = &d;
	assert_gs_ok(gs_device_sync(a, &so, &sum));
	assert_int_equal(d.edits, 1);
	/* The edited row stays, with the edit, until the server judged it;
	 * its residents (not edited) are gone. */
	assert_int_equal(q(a,
			   "SELECT count(*) FROM household WHERE id = ? AND"
			   " note = '搬走时正在修改'",
			   hh),
			 1);
	assert_int_equal(q(a,
			   "SELECT count(*) FROM resident WHERE"
			   " household_id = ?",
			   hh),
			 0);
	assert_gs_ok(gs_device_status(a, &st));
	assert_int_equal(st.outbox_depth, 1);
	assert_true(st.purge_pending >= 1);
	/* Next sync: pushed, refused (no longer A's grid) and said so, then
	 * purged. */
	memset(&sum, 0, sizeof(sum));
	so.progress = NULL;
	gs_device_sync(a, &so, &sum);
	assert_int_equal(sum.rejected, 1);
	assert_true(q(a,
		      "SELECT count(*) FROM gs_conflict WHERE device_seq IS"
		      " NOT NULL AND tbl = 'household'",
		      NULL) >= 1);
	assert_int_equal(
		q(a, "SELECT count(*) FROM household WHERE id = ?", hh), 0);
	assert_gs_ok(gs_device_status(a, &st));
	assert_int_equal(st.outbox_depth, 0);
	assert_int_equal(st.purge_pending, 0);
	gs_itest_sync(a, NULL);
	assert_converged(a, "dev-a");
	assert_fresh_equal(a, "dev-a2", F.w.gw_b, F.w.grid_a);
	gs_device_close(m);
	gs_device_close(a);
}

static void scope_set_widening_brings_the_whole_grid(void **state)
{
	struct gs_device *a;
	struct gs_status st;
	char scope_ac[80];
	int64_t in_c = srv_households(F.grid_c_id);

	(void)state;
	assert_true(in_c > 10);
	a = gs_itest_device(&F.srv, F.ctx, "dev-a", F.w.gw_b, F.w.grid_a);
	gs_itest_sync(a, NULL);
	assert_int_equal(dev_households(a, F.grid_c_id), 0);
	snprintf(scope_ac, sizeof(scope_ac), "%s,%s", F.w.grid_a, F.w.grid_c);
	scope_set("dev-a", scope_ac);
	gs_itest_sync(a, NULL);
	/* Every household of C, not only those changed after the cursor. */
	assert_int_equal(dev_households(a, F.grid_c_id), in_c);
	assert_int_equal(dev_households(a, F.grid_a_id),
			 srv_households(F.grid_a_id));
	assert_gs_ok(gs_device_status(a, &st));
	assert_string_equal(st.scope, scope_ac);
	assert_int_equal(st.scope_version, 2);
	assert_int_equal(st.rescope, 0);
	assert_converged(a, "dev-a");
	assert_fresh_equal(a, "dev-a2", F.w.gw_b, scope_ac);
	gs_device_close(a);
}

static void scope_set_move_keeps_unsent_edits(void **state)
{
	struct gs_field f[] = { { "note", "调走前未同步的修改" } };
	struct gs_sync_summary sum;
	struct gs_device *a;
	struct gs_status st;
	char hh[GS_ID_LEN];

	(void)state;
	a = gs_itest_device(&F.srv, F.ctx, "dev-a", F.w.gw_b, F.w.grid_a);
	gs_itest_sync(a, NULL);
	household_with_residents(a, hh);
	/* An edit saved offline, then the worker is moved to grid C. */
	assert_gs_ok(gs_household_edit(a, hh, f, 1));
	scope_set("dev-a", F.w.grid_c);
	gs_itest_sync(a, &sum);
	/* The edit was pushed first and applied, not refused... */
	assert_int_equal(sum.rejected, 0);
	assert_int_equal(gs_itest_server_int(&F.srv,
					     "SELECT count(*) FROM household"
					     " WHERE id = ?1 AND note ="
					     " '调走前未同步的修改'",
					     hh),
			 1);
	/* ...then grid A left the device, rows below it included. */
	assert_true(sum.purged > 0);
	assert_int_equal(dev_households(a, F.grid_a_id), 0);
	assert_int_equal(q(a,
			   "SELECT count(*) FROM resident r JOIN household h"
			   " ON h.id = r.household_id WHERE h.grid_id = ?",
			   F.grid_a_id),
			 0);
	assert_int_equal(q(a,
			   "SELECT count(*) FROM resident WHERE"
			   " household_id = ?",
			   hh),
			 0);
	assert_int_equal(q(a, "SELECT count(*) FROM visit WHERE grid_id = ?",
			   F.grid_a_id),
			 0);
	assert_int_equal(dev_households(a, F.grid_c_id),
			 srv_households(F.grid_c_id));
	assert_gs_ok(gs_device_status(a, &st));
	assert_string_equal(st.scope, F.w.grid_c);
	assert_int_equal(st.outbox_depth, 0);
	assert_int_equal(st.rescope, 0);
	assert_converged(a, "dev-a");
	assert_fresh_equal(a, "dev-a2", F.w.gw_b, F.w.grid_c);
	/* It syncs on: nothing more to purge, nothing refused. */
	gs_itest_sync(a, &sum);
	assert_int_equal(sum.purged, 0);
	assert_int_equal(sum.rejected, 0);
	assert_converged(a, "dev-a");
	gs_device_close(a);
}

static void move(struct gs_device *dev,
		 const char *id,
		 const char *to,
		 const char *assignee)
{
	struct gs_issue_move_opts mo = GS_ISSUE_MOVE_OPTS_INIT;
	int rc;

	mo.to = to;
	mo.assignee = assignee;
	mo.due = assignee != NULL ? "2030-01-01T00:00:00Z" : NULL;
	rc = gs_issue_move(dev, id, &mo);
	if (rc != GS_OK)
		fail_msg("move to %s: %s", to, gs_ctx_errmsg(F.ctx));
}

static void report(struct gs_device *dev, const char *hh, char id[GS_ID_LEN])
{
	struct gs_issue_report_opts ro = GS_ISSUE_REPORT_OPTS_INIT;
	struct gs_synth_rng rng;
	struct gs_synth_issue is;

	gs__synth_rng_seed(&rng, 7);
	assert_gs_ok(gs__synth_issue(&is, &rng, NULL));
	ro.category = is.category_code;
	ro.title = is.title;
	ro.description = is.description;
	ro.household_id = hh;
	assert_gs_ok(gs_issue_report(dev, id, &ro));
}

static void issue_dispatched_outside_the_grids_reaches_the_worker(void **state)
{
	struct gs_sync_summary sum;
	struct gs_device *a;
	struct gs_device *s;
	struct gs_device *c;
	char hh[GS_ID_LEN];
	char id[GS_ID_LEN];

	(void)state;
	a = gs_itest_device(&F.srv, F.ctx, "dev-a", F.w.gw_a, F.w.grid_a);
	s = gs_itest_device(&F.srv, F.ctx, "dev-s", F.w.sc, F.w.street);
	c = gs_itest_device(&F.srv, F.ctx, "dev-c", F.w.gw_c, F.w.grid_c);
	gs_itest_sync(a, NULL);
	gs_itest_sync(c, NULL);
	household_with_residents(a, hh);
	report(a, hh, id);
	gs_itest_sync(a, NULL);
	/* The street centre dispatches A's order to C's worker. */
	gs_itest_sync(s, NULL);
	move(s, id, "accepted", NULL);
	move(s, id, "dispatched", F.w.gw_c);
	gs_itest_sync(s, NULL);
	gs_itest_sync(c, NULL);
	/* C holds the order, its whole history and the household it names
	 * (not the household's residents: those stay with grid A). */
	assert_int_equal(q(c,
			   "SELECT count(*) FROM issue WHERE id = ? AND"
			   " state = 'dispatched'",
			   id),
			 1);
	assert_int_equal(q(c,
			   "SELECT count(*) FROM issue_event WHERE"
			   " issue_id = ?",
			   id),
			 gs_itest_server_int(&F.srv,
					     "SELECT count(*) FROM issue_event"
					     " WHERE issue_id = ?",
					     id));
	assert_true(q(c, "SELECT count(*) FROM issue_event WHERE issue_id = ?",
		      id) >= 3);
	assert_int_equal(
		q(c, "SELECT count(*) FROM household WHERE id = ?", hh), 1);
	assert_int_equal(q(c,
			   "SELECT count(*) FROM resident WHERE"
			   " household_id = ?",
			   hh),
			 0);
	assert_converged(c, "dev-c");
	/* C's worker signs and handles it: its own order, not refused. */
	move(c, id, "in_progress", NULL);
	move(c, id, "handled", NULL);
	gs_itest_sync(c, &sum);
	assert_int_equal(sum.rejected, 0);
	assert_int_equal(gs_itest_server_int(&F.srv,
					     "SELECT count(*) FROM issue WHERE"
					     " id = ? AND state = 'handled'",
					     id),
			 1);
	assert_converged(c, "dev-c");
	gs_itest_sync(a, NULL);
	assert_converged(a, "dev-a");
	assert_fresh_equal(c, "dev-c2", F.w.gw_c, F.w.grid_c);
	gs_device_close(a);
	gs_device_close(s);
	gs_device_close(c);
}

/* A wall clock behind by lag_ms: a street centre that closes an order on
 * a device whose clock says it is 40 days earlier stands for an order
 * closed 40 days ago. */
static int64_t lag_ms;

static int64_t lagging_clock(void *payload)
{
	struct timespec ts;

	(void)payload;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 - lag_ms;
}

static int pick_dh(const struct gs_synth_worker_info *info, void *payload)
{
	char *out = payload;

	if (out[0] == '\0' && strcmp(info->role, "DH") == 0)
		snprintf(out, 64, "%s", info->id);
	return 0;
}

/* A department handler enrolled with no grid at all (a scope code that
 * names none: enrolment wants one) receives exactly the orders dispatched
 * to it, with their history and household, not the grids they come
 * from. */
static void handler_without_grids_reaches_its_orders(void **state)
{
	struct gs_ctx *ctx = gs_test_ctx_new(NULL);
	struct gs_device *a;
	struct gs_device *s;
	struct gs_device *h;
	sqlite3 *db = NULL;
	char dh[64] = "";
	char hh[GS_ID_LEN];
	char id[GS_ID_LEN];

	(void)state;
	assert_gs_ok(gs__db_open(&db, ctx, F.srv.db, GS_DB_READONLY));
	assert_gs_ok(gs__synth_workers(ctx, db, pick_dh, dh));
	gs__db_close(db);
	gs_ctx_free(ctx);
	assert_true(dh[0] != '\0');
	a = gs_itest_device(&F.srv, F.ctx, "dev-a", F.w.gw_a, F.w.grid_a);
	s = gs_itest_device(&F.srv, F.ctx, "dev-s", F.w.sc, F.w.street);
	h = gs_itest_device(&F.srv, F.ctx, "dev-h", dh, "DH");
	gs_itest_sync(a, NULL);
	gs_itest_sync(h, NULL);
	assert_int_equal(q(h, "SELECT count(*) FROM household", NULL), 0);
	household_with_residents(a, hh);
	report(a, hh, id);
	gs_itest_sync(a, NULL);
	gs_itest_sync(s, NULL);
	move(s, id, "accepted", NULL);
	move(s, id, "dispatched", dh);
	gs_itest_sync(s, NULL);
	gs_itest_sync(h, NULL);
	assert_int_equal(q(h, "SELECT count(*) FROM issue", NULL), 1);
	assert_int_equal(q(h,
			   "SELECT count(*) FROM issue_event WHERE"
			   " issue_id = ?",
			   id),
			 gs_itest_server_int(&F.srv,
					     "SELECT count(*) FROM issue_event"
					     " WHERE issue_id = ?",
					     id));
	assert_int_equal(q(h, "SELECT count(*) FROM household", NULL), 1);
	assert_int_equal(q(h, "SELECT count(*) FROM resident", NULL), 0);
	assert_int_equal(q(h, "SELECT count(*) FROM visit", NULL), 0);
	assert_converged(h, "dev-h");
	assert_fresh_equal(h, "dev-h2", dh, "DH");
	gs_device_close(a);
	gs_device_close(s);
	gs_device_close(h);
}

static void aged_rows_leave_every_scope(void **state)
{
	struct gs_ctx_opts co = GS_CTX_OPTS_INIT;
	struct gs_visit_opts vo = GS_VISIT_OPTS_INIT;
	struct gs_ctx *sctx = NULL;
	struct gs_device *a;
	struct gs_device *b;
	struct gs_device *s;
	char hh[GS_ID_LEN];
	char new_id[GS_ID_LEN];
	char issue[GS_ID_LEN];
	char new_at[GS_TIME_LEN];
	char vcut[GS_TIME_LEN];
	int64_t now = gs__clock_wall_ms(F.ctx);
	const int64_t day = INT64_C(86400000);

	(void)state;
	gs__time_format(new_at, now - 10 * day);
	gs__time_format(vcut, now - GS_SCOPE_VISIT_DAYS * day);
	co.clock_fn = lagging_clock;
	assert_gs_ok(gs_ctx_new(&sctx, &co));
	a = gs_itest_device(&F.srv, F.ctx, "dev-a", F.w.gw_a, F.w.grid_a);
	b = gs_itest_device(&F.srv, F.ctx, "dev-b", F.w.gw_b, F.w.grid_a);
	s = gs_itest_device(&F.srv, sctx, "dev-s", F.w.sc, F.w.street);
	gs_itest_sync(a, NULL);
	household_with_residents(a, hh);
	/* A visit entered late, 10 days ago: in scope. (One of more than
	 * 12 months cannot be entered: the server bounds claimed times to
	 * 90 days, so visits only age by time passing, the sweep's case.) */
	vo.household_id = hh;
	vo.kind = "routine";
	vo.outcome = "met";
	vo.started_at = new_at;
	assert_gs_ok(gs_visit_add(a, new_id, &vo));
	/* A work order from report to closure; the closure 40 days ago. */
	report(a, hh, issue);
	gs_itest_sync(a, NULL);
	gs_itest_sync(s, NULL);
	move(s, issue, "accepted", NULL);
	move(s, issue, "dispatched", F.w.gw_a);
	gs_itest_sync(s, NULL);
	gs_itest_sync(a, NULL);
	move(a, issue, "in_progress", NULL);
	move(a, issue, "handled", NULL);
	gs_itest_sync(a, NULL);
	gs_itest_sync(b, NULL);
	move(b, issue, "verified", NULL);
	gs_itest_sync(b, NULL);
	gs_itest_sync(s, NULL);
	assert_int_equal(q(a, "SELECT count(*) FROM issue WHERE id = ?", issue),
			 1);
	lag_ms = 40 * day;
	move(s, issue, "closed", NULL);
	gs_itest_sync(s, NULL);
	lag_ms = 0;
	gs_itest_sync(a, NULL);
	/* The server keeps everything... */
	assert_int_equal(gs_itest_server_int(&F.srv,
					     "SELECT count(*) FROM issue WHERE"
					     " id = ? AND state = 'closed'",
					     issue),
			 1);
	/* ...the device only the recent visit, and not the order closed
	 * 40 days ago nor its history. */
	assert_int_equal(
		q(a, "SELECT count(*) FROM visit WHERE id = ?", new_id), 1);
	assert_int_equal(
		q(a, "SELECT count(*) FROM visit WHERE started_at < ?", vcut),
		0);
	assert_int_equal(q(a, "SELECT count(*) FROM issue WHERE id = ?", issue),
			 0);
	assert_int_equal(q(a,
			   "SELECT count(*) FROM issue_event WHERE"
			   " issue_id = ?",
			   issue),
			 0);
	assert_converged(a, "dev-a");
	gs_itest_sync(b, NULL);
	assert_converged(b, "dev-b");
	assert_int_equal(q(b, "SELECT count(*) FROM issue WHERE id = ?", issue),
			 0);
	assert_fresh_equal(a, "dev-a2", F.w.gw_a, F.w.grid_a);
	gs_device_close(a);
	gs_device_close(b);
	gs_device_close(s);
	gs_ctx_free(sctx);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(household_moved_leaves_the_old_grid),
		T(unsent_edit_is_not_purged_before_it_is_judged),
		T(scope_set_widening_brings_the_whole_grid),
		T(scope_set_move_keeps_unsent_edits),
		T(issue_dispatched_outside_the_grids_reaches_the_worker),
		T(handler_without_grids_reaches_its_orders),
		T(aged_rows_leave_every_scope),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
