/*
 * gs-test: timeout=300
 *
 * 50 devices sync at once: each recorded visits offline, then all 50 sync
 * concurrently (one process each) against one gridsyncd, then every device
 * pulls once more and must hold exactly the server's rows of its scope.
 */
#include <sys/wait.h>
#include <unistd.h>

#include <gridsync/client_internal.h>

#include "gs_itest.h"

#define N_DEVICES 50
#define VISITS    10

static int first_household(const struct gs_row *row, void *payload)
{
	snprintf(payload, GS_ID_LEN, "%s", gs_row_get(row, "id"));
	return 1;
}

static void fifty_devices_at_once_converge(void **state)
{
	struct gs_ctx *ctx = gs_test_ctx_new(NULL);
	char *dir = gs_test_tmpdir();
	struct gs_itest_server srv;
	struct gs_itest_workers w;
	pid_t pids[N_DEVICES];
	char path[N_DEVICES][4200];

	(void)state;
	gs_itest_server_create(&srv, dir, false);
	gs_itest_workers(&srv, &w);
	gs_itest_server_start(&srv, NULL);
	for (int i = 0; i < N_DEVICES; i++) {
		struct gs_visit_opts vo = GS_VISIT_OPTS_INIT;
		struct gs_device *dev;
		char name[32];
		char hh[GS_ID_LEN];
		char id[GS_ID_LEN];
		bool on_a = i % 2 == 0;

		snprintf(name, sizeof(name), "many-%02d", i);
		snprintf(path[i], sizeof(path[i]), "%s/%s.db", dir, name);
		dev = gs_itest_device(&srv, ctx, name, on_a ? w.gw_a : w.gw_c,
				      on_a ? w.grid_a : w.grid_c);
		gs_itest_sync(dev, NULL);
		assert_int_equal(gs_household_list(dev, first_household, hh),
				 1);
		vo.household_id = hh;
		vo.kind = "routine";
		vo.outcome = "met";
		for (int v = 0; v < VISITS; v++)
			assert_gs_ok(gs_visit_add(dev, id, &vo));
		gs_device_close(dev);
	}
	/* All at once. */
	for (int i = 0; i < N_DEVICES; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			struct gs_ctx *c = NULL;
			struct gs_device *dev = NULL;
			struct gs_sync_opts so = GS_SYNC_OPTS_INIT;

			so.timeout_ms = 60000;
			so.max_attempts = 3;
			if (gs_ctx_new(&c, NULL) != GS_OK ||
			    gs_device_open(&dev, c, path[i]) != GS_OK)
				_exit(2);
			_exit(gs_device_sync(dev, &so, NULL) == GS_OK ? 0 : 1);
		}
	}
	for (int i = 0; i < N_DEVICES; i++) {
		int st;

		assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			fail_msg("device %d: sync failed (status %d)", i, st);
	}
	/* One more pull each, then every device equals its scope. */
	for (int i = 0; i < N_DEVICES; i++) {
		struct gs_device *dev = NULL;
		struct gs_status st;
		char name[32];
		char theirs[65];

		snprintf(name, sizeof(name), "many-%02d", i);
		assert_gs_ok(gs_device_open(&dev, ctx, path[i]));
		gs_itest_sync(dev, NULL);
		assert_gs_ok(gs_device_status(dev, &st));
		assert_int_equal(st.outbox_depth, 0);
		assert_int_equal(st.visits, (N_DEVICES / 2) * VISITS);
		gs_itest_scope_hash(&srv, name, theirs);
		assert_string_equal(st.content_hash, theirs);
		gs_device_close(dev);
	}
	assert_int_equal(gs_itest_server_stop(&srv), 0);
	gs_ctx_free(ctx);
	gs_test_tmpdir_free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fifty_devices_at_once_converge),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
