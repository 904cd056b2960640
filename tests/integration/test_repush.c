/*
 * gs-test: timeout=120
 *
 * The connection dies after the server made a push durable and before the
 * device heard the ack (gridsyncd crashes at that point: GS_CRASH_AT). The
 * device still holds the entries and pushes them again to the restarted
 * server: every entry is acknowledged as a duplicate and applied exactly
 * once.
 */
#include <gridsync/client_internal.h>

#include "gs_itest.h"

static int first_household(const struct gs_row *row, void *payload)
{
	snprintf(payload, GS_ID_LEN, "%s", gs_row_get(row, "id"));
	return 1;
}

static void repush_after_lost_ack_applies_once(void **state)
{
	struct gs_ctx *ctx = gs_test_ctx_new(NULL);
	char *dir = gs_test_tmpdir();
	struct gs_itest_server srv;
	struct gs_itest_workers w;
	struct gs_sync_opts so = GS_SYNC_OPTS_INIT;
	struct gs_sync_summary sum;
	struct gs_visit_opts vo = GS_VISIT_OPTS_INIT;
	struct gs_device *dev;
	char hh[GS_ID_LEN];
	char id[GS_ID_LEN];
	struct gs_status st;

	(void)state;
	gs_itest_server_create(&srv, dir, false);
	gs_itest_workers(&srv, &w);
	gs_itest_server_start(&srv, NULL);
	dev = gs_itest_device(&srv, ctx, "dev-r", w.gw_a, w.grid_a);
	gs_itest_sync(dev, NULL);
	assert_int_equal(gs_household_list(dev, first_household, hh), 1);
	vo.household_id = hh;
	vo.kind = "routine";
	vo.outcome = "met";
	for (int i = 0; i < 5; i++)
		assert_gs_ok(gs_visit_add(dev, id, &vo));
	assert_int_equal(gs_itest_server_stop(&srv), 0);

	/* The server commits the push, then dies before acknowledging. */
	gs_itest_server_start(&srv, "GS_CRASH_AT=push-committed");
	so.once = 1;
	so.timeout_ms = 20000;
	assert_int_not_equal(gs_device_sync(dev, &so, &sum), GS_OK);
	assert_int_equal(gs_itest_server_wait(&srv), 99);
	assert_gs_ok(gs_device_status(dev, &st));
	assert_int_equal(st.outbox_depth, 5); /* no ack: all still held */
	assert_int_equal(gs_itest_server_int(&srv,
					     "SELECT count(*) FROM visit WHERE"
					     " origin = 'dev-r'",
					     NULL),
			 5);

	/* Restarted: the same entries again, acknowledged, not re-applied. */
	gs_itest_server_start(&srv, NULL);
	gs_itest_sync(dev, &sum);
	assert_int_equal(sum.pushed, 5);
	assert_int_equal(sum.acknowledged, 5);
	assert_int_equal(sum.rejected, 0);
	assert_gs_ok(gs_device_status(dev, &st));
	assert_int_equal(st.outbox_depth, 0);
	assert_int_equal(gs_itest_server_int(&srv,
					     "SELECT count(*) FROM visit WHERE"
					     " origin = 'dev-r'",
					     NULL),
			 5);
	assert_int_equal(gs_itest_server_int(&srv,
					     "SELECT count(*) FROM srv_received"
					     " WHERE device_id = 'dev-r'",
					     NULL),
			 5);
	{
		char mine[65];
		char theirs[65];

		gs_itest_device_hash(dev, mine);
		gs_itest_scope_hash(&srv, "dev-r", theirs);
		assert_string_equal(mine, theirs);
	}
	gs_device_close(dev);
	assert_int_equal(gs_itest_server_stop(&srv), 0);
	gs_ctx_free(ctx);
	gs_test_tmpdir_free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(repush_after_lost_ack_applies_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
