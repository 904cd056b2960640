/*
 * gs-test: timeout=300
 *
 * The loser of a conflict is told whatever the arrival order, against a
 * real gridsyncd over loopback with TLS. Two devices of micro-grid A edit
 * the same column (the earlier write arriving first, then second), and an
 * edit meets a delete (the delete arriving first, then second). In every
 * case the losing device's `gridsync conflicts` lists the conflict exactly
 * once, also after more syncs, and both devices converge.
 */
#include <gridsync/client_internal.h>

#include "gs_itest.h"

struct fx {
	char *dir;
	struct gs_itest_server srv;
	struct gs_itest_workers w;
	struct gs_ctx *ctx;
	struct gs_device *a, *b;
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
	gs_itest_sync(F.a, NULL);
	gs_itest_sync(F.b, NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	gs_device_close(F.a);
	gs_device_close(F.b);
	assert_int_equal(gs_itest_server_stop(&F.srv), 0);
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

/* The n-th household (by id) of grid A on device a: each test takes its
 * own. */
struct nth {
	int want;
	int seen;
	char id[GS_ID_LEN];
};

static int nth_household(const struct gs_row *row, void *payload)
{
	struct nth *n = payload;

	if (n->seen++ < n->want)
		return 0;
	snprintf(n->id, sizeof(n->id), "%s", gs_row_get(row, "id"));
	return 1;
}

static void household(int n, char id[GS_ID_LEN])
{
	struct nth x = { n, 0, "" };

	assert_int_equal(gs_household_list(F.a, nth_household, &x), 1);
	snprintf(id, GS_ID_LEN, "%s", x.id);
}

static void note(struct gs_device *dev, const char *hh, const char *v)
{
	struct gs_field f = { "note", v };

	assert_gs_ok(gs_household_edit(dev, hh, &f, 1));
}

/* Rows of `gridsync conflicts` on dev for household hh, column col, with
 * the given winner, through the public listing. */
struct count {
	const char *pk;
	const char *col;
	const char *winner;
	const char *reason;
	int n;
};

static int count_row(const struct gs_row *row, void *payload)
{
	struct count *c = payload;
	const char *pk = gs_row_get(row, "pk");
	const char *col = gs_row_get(row, "column");
	const char *winner = gs_row_get(row, "winner");
	const char *reason = gs_row_get(row, "reason");

	if (pk != NULL && strcmp(pk, c->pk) == 0 && col != NULL &&
	    strcmp(col, c->col) == 0 && winner != NULL &&
	    strcmp(winner, c->winner) == 0 && reason != NULL &&
	    strncmp(reason, c->reason, strlen(c->reason)) == 0)
		c->n++;
	return 0;
}

static int told(struct gs_device *dev,
		const char *hh,
		const char *col,
		const char *winner,
		const char *reason)
{
	struct count c = { hh, col, winner, reason, 0 };

	assert_gs_ok(gs_conflict_list(dev, count_row, &c));
	return c.n;
}

static void settle(void)
{
	gs_itest_sync(F.a, NULL);
	gs_itest_sync(F.b, NULL);
	gs_itest_sync(F.a, NULL);
	assert_converged(F.a, "dev-a");
	assert_converged(F.b, "dev-b");
}

/* A writes first and arrives first; B's later concurrent write wins.
 * A learns it in its next sync (its ack had nothing to say). */
static void earlier_arrives_first(void **state)
{
	char hh[GS_ID_LEN];

	(void)state;
	household(0, hh);
	note(F.a, hh, "A, earlier");
	note(F.b, hh, "B, later");
	gs_itest_sync(F.a, NULL);
	gs_itest_sync(F.b, NULL);
	assert_int_equal(told(F.b, hh, "note", "dev-b", "won"), 1);
	gs_itest_sync(F.a, NULL);
	assert_int_equal(told(F.a, hh, "note", "dev-b", "lost"), 1);
	settle();
	assert_int_equal(told(F.a, hh, "note", "dev-b", "lost"), 1);
	assert_int_equal(
		q(F.a, "SELECT note = 'B, later' FROM household WHERE id = ?",
		  hh),
		1);
}

/* B's later write arrives first, A's earlier one second: A is told in
 * its ack, and the pull that follows does not tell it twice. */
static void later_arrives_first(void **state)
{
	char hh[GS_ID_LEN];

	(void)state;
	household(1, hh);
	note(F.a, hh, "A, earlier");
	note(F.b, hh, "B, later");
	gs_itest_sync(F.b, NULL);
	gs_itest_sync(F.a, NULL);
	assert_int_equal(told(F.a, hh, "note", "dev-b", "lost"), 1);
	settle();
	assert_int_equal(told(F.a, hh, "note", "dev-b", "lost"), 1);
	assert_int_equal(
		q(F.a, "SELECT note = 'B, later' FROM household WHERE id = ?",
		  hh),
		1);
}

/* A deletes, B edits: whichever arrives first, B is told once that its
 * edit met a deleted row, and the row stays deleted everywhere. */
static void edit_meets_delete(bool delete_first, int n)
{
	char hh[GS_ID_LEN];

	household(n, hh);
	assert_gs_ok(gs_household_delete(F.a, hh));
	note(F.b, hh, "B edits a row A deleted");
	if (delete_first) {
		gs_itest_sync(F.a, NULL);
		gs_itest_sync(F.b, NULL);
	} else {
		gs_itest_sync(F.b, NULL);
		gs_itest_sync(F.a, NULL);
		gs_itest_sync(F.b, NULL);
	}
	assert_int_equal(told(F.b, hh, "deleted", "dev-a", "lost"), 1);
	settle();
	assert_int_equal(told(F.b, hh, "deleted", "dev-a", "lost"), 1);
	assert_int_equal(
		q(F.b, "SELECT deleted FROM household WHERE id = ?", hh), 1);
	assert_int_equal(
		q(F.a, "SELECT deleted FROM household WHERE id = ?", hh), 1);
}

static void delete_arrives_first(void **state)
{
	(void)state;
	edit_meets_delete(true, 2);
}

static void edit_arrives_first(void **state)
{
	(void)state;
	edit_meets_delete(false, 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(earlier_arrives_first),
		cmocka_unit_test(later_arrives_first),
		cmocka_unit_test(delete_arrives_first),
		cmocka_unit_test(edit_arrives_first),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
