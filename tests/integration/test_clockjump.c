/*
 * gs-test: timeout=120 labels=faults
 *
 * A handheld whose wall clock jumps a day back and a day forward between
 * saves (Debian's faketime on real `gridsync` CLI processes, plain TCP on
 * loopback: certificate validity under a wrong clock is a TLS matter
 * tested elsewhere). Every entry the device numbers must carry a larger
 * hybrid logical clock than the one before, on the device and as the
 * server received it, and the device must converge with nothing lost.
 * Skipped, with a message, when faketime is not installed.
 */
#include <sys/wait.h>
#include <unistd.h>

#include <gridsync/client_internal.h>

#include "gs_itest.h"

static bool have_faketime(void)
{
	return system("faketime -f +0 true >/dev/null 2>&1") == 0;
}

/* Run `gridsync ARGS` with the wall clock moved by offset ("-1d", "+0",
 * ...); the monotonic clock stays real (libuv timers). */
static int run_at(const char *offset, const char *const *args, const char *out)
{
	const char *argv[32];
	int n = 0;
	pid_t pid;
	int st;

	argv[n++] = "faketime";
	argv[n++] = "-f";
	argv[n++] = offset;
	argv[n++] = gs_itest_bin("gridsync");
	for (int i = 0; args[i] != NULL && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		FILE *o = freopen(out, "w", stdout);

		(void)o;
		setenv("FAKETIME_DONT_FAKE_MONOTONIC", "1", 1);
		/* A sanitizer build must accept the preloaded library. */
		setenv("ASAN_OPTIONS", "verify_asan_link_order=0", 0);
		if (strstr(getenv("ASAN_OPTIONS"), "link_order") == NULL) {
			char opts[1024];

			snprintf(opts, sizeof(opts),
				 "%s:verify_asan_link_order=0",
				 getenv("ASAN_OPTIONS"));
			setenv("ASAN_OPTIONS", opts, 1);
		}
		execvp("faketime", (char *const *)argv);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int first_household(const struct gs_row *row, void *payload)
{
	snprintf(payload, GS_ID_LEN, "%s", gs_row_get(row, "id"));
	return 1;
}

/* Pending entries not yet seen must have strictly growing clocks. */
static void check_new_entries(struct gs_ctx *ctx,
			      const char *path,
			      int64_t *last_seq,
			      uint64_t *last_hlc,
			      const char *when)
{
	struct gs_device *dev = NULL;
	sqlite3_stmt *st = NULL;

	assert_gs_ok(gs_device_open(&dev, ctx, path));
	assert_int_equal(sqlite3_prepare_v2(gs__device_db(dev),
					    "SELECT seq, hlc FROM gs_outbox"
					    " WHERE seq > ? ORDER BY seq",
					    -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_int64(st, 1, *last_seq);
	while (sqlite3_step(st) == SQLITE_ROW) {
		int64_t seq = sqlite3_column_int64(st, 0);
		uint64_t hlc = (uint64_t)sqlite3_column_int64(st, 1);

		if (hlc <= *last_hlc)
			fail_msg("%s: entry %lld has clock %016llx, not after"
				 " %016llx",
				 when, (long long)seq, (unsigned long long)hlc,
				 (unsigned long long)*last_hlc);
		*last_seq = seq;
		*last_hlc = hlc;
	}
	sqlite3_finalize(st);
	gs_device_close(dev);
}

static void clock_jumps_keep_hlc_monotone_and_converge(void **state)
{
	static const char *const offsets[] = { "+0",  "-1d", "+1d", "-1d",
					       "+1d", "-1d", "+0" };
	struct gs_ctx *ctx;
	char *dir;
	struct gs_itest_server srv;
	struct gs_itest_workers w;
	struct gs_device *dev;
	char path[4200];
	char hh[GS_ID_LEN];
	char mine[65], theirs[65];
	int64_t last_seq = 0;
	uint64_t last_hlc = 0;
	int saves = 0;
	uint64_t visits0;

	(void)state;
	if (!have_faketime()) {
		fprintf(stderr,
			"# skipped: faketime is not installed"
			" (apt-get install faketime, or .ci/deps.sh)\n");
		skip();
	}
	ctx = gs_test_ctx_new(NULL);
	dir = gs_test_tmpdir();
	fprintf(stderr, "# artefacts in %s (kept if the test fails)\n", dir);
	gs_itest_server_create(&srv, dir, false);
	gs_itest_workers(&srv, &w);
	gs_itest_server_start(&srv, NULL);
	dev = gs_itest_device(&srv, ctx, "clock-dev", w.gw_a, w.grid_a);
	gs_itest_sync(dev, NULL);
	assert_int_equal(gs_household_list(dev, first_household, hh), 1);
	{
		struct gs_status s;

		assert_gs_ok(gs_device_status(dev, &s));
		visits0 = s.visits;
	}
	gs_device_close(dev);
	snprintf(path, sizeof(path), "%s/clock-dev.db", dir);
	for (size_t i = 0; i < sizeof(offsets) / sizeof(*offsets); i++) {
		const char *visit[] = { "--db",   path,          "visit",
					"add",    "--household", hh,
					"--kind", "routine",     "--outcome",
					"met",    NULL };
		const char *edit[] = {
			"--db", path,     "household",       "edit",
			hh,     "--size", i % 2 ? "2" : "3", NULL
		};
		const char *sync[] = { "--db",     path,     "sync", "--once",
				       "--server", srv.addr, NULL };
		const char *out = gs_test_path(dir, "cli.out");

		for (int k = 0; k < 2; k++) {
			if (run_at(offsets[i], visit, out) != 0)
				fail_msg("visit add at %s failed", offsets[i]);
			saves++;
		}
		if (run_at(offsets[i], edit, out) != 0)
			fail_msg("household edit at %s failed", offsets[i]);
		check_new_entries(ctx, path, &last_seq, &last_hlc, offsets[i]);
		/* Sync at every other step, under the jumped clock too. */
		if (i % 2 == 1 && run_at(offsets[i], sync, out) != 0)
			fail_msg("sync at %s failed", offsets[i]);
	}
	assert_gs_ok(gs_device_open(&dev, ctx, path));
	gs_itest_sync(dev, NULL);
	gs_itest_sync(dev, NULL);
	{
		struct gs_status s;

		assert_gs_ok(gs_device_status(dev, &s));
		assert_int_equal(s.outbox_depth, 0);
		assert_int_equal(s.visits, visits0 + (uint64_t)saves);
		assert_int_equal(s.last_seq, (uint64_t)last_seq);
	}
	gs_itest_device_hash(dev, mine);
	gs_itest_scope_hash(&srv, "clock-dev", theirs);
	assert_string_equal(mine, theirs);
	/* As received: every entry once, clocks growing with the number. */
	assert_int_equal(gs_itest_server_int(&srv,
					     "SELECT count(*) FROM srv_received"
					     " WHERE device_id = ? AND"
					     " reject_code = 0",
					     "clock-dev"),
			 last_seq);
	assert_int_equal(gs_itest_server_int(&srv,
					     "SELECT count(*) FROM srv_received"
					     " a JOIN srv_received b ON"
					     " b.device_id = a.device_id AND"
					     " b.device_seq = a.device_seq + 1"
					     " WHERE a.device_id = ? AND"
					     " b.hlc <= a.hlc",
					     "clock-dev"),
			 0);
	gs_device_close(dev);
	assert_int_equal(gs_itest_server_stop(&srv), 0);
	gs_ctx_free(ctx);
	gs_test_tmpdir_free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(clock_jumps_keep_hlc_monotone_and_converge),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
