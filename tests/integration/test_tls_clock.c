/*
 * gs-test: timeout=120
 *
 * A handheld whose clock was reset ten years back, or jumped ten years
 * ahead, still syncs over TLS with a real gridsyncd: the `gridsync` CLI
 * runs under Debian's faketime (libfaketime), judges the server's
 * certificate at the last server time it knew and tells the worker that
 * its clock is wrong. Visits it records with the wrong clock, or with a
 * start time typed in the wrong year, reach the server with their claimed
 * times bounded and flagged.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gridsync/client_internal.h>

#include "gs_itest.h"

#define FAKETIME "/usr/bin/faketime"

struct fx {
	char *dir;
	struct gs_itest_server srv;
	struct gs_itest_workers w;
	struct gs_ctx *ctx;
	char db[4200];
	char out[4200];
	char err[4200];
};

static struct fx F;

static int setup(void **state)
{
	struct gs_device *dev;

	(void)state;
	if (access(FAKETIME, X_OK) != 0) {
		print_message("faketime is missing: run .ci/deps.sh\n");
		return -1;
	}
	F.dir = gs_test_tmpdir();
	F.ctx = gs_test_ctx_new(NULL);
	gs_itest_server_create(&F.srv, F.dir, true);
	gs_itest_workers(&F.srv, &F.w);
	gs_itest_server_start(&F.srv, NULL);
	/* Enrolled and synced once with a right clock: the device knows a
	 * server time. */
	dev = gs_itest_device(&F.srv, F.ctx, "dev-clk", F.w.gw_a, F.w.grid_a);
	gs_itest_sync(dev, NULL);
	gs_device_close(dev);
	snprintf(F.db, sizeof(F.db), "%s/dev-clk.db", F.dir);
	snprintf(F.out, sizeof(F.out), "%s/cli.out", F.dir);
	snprintf(F.err, sizeof(F.err), "%s/cli.err", F.dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	assert_int_equal(gs_itest_server_stop(&F.srv), 0);
	gs_ctx_free(F.ctx);
	gs_test_tmpdir_free(F.dir);
	return 0;
}

/* Run the gridsync CLI on the device database with its clock moved by
 * offset (a faketime offset such as "-3650d"; NULL: the real clock).
 * Output in F.out and F.err; returns the exit status. */
static int cli(const char *offset, const char *const *args)
{
	const char *argv[32];
	int n = 0;
	pid_t pid;
	int st;

	if (offset != NULL) {
		argv[n++] = FAKETIME;
		argv[n++] = "-f";
		argv[n++] = offset;
	}
	argv[n++] = gs_itest_bin("gridsync");
	argv[n++] = "--db";
	argv[n++] = F.db;
	argv[n++] = "--json";
	for (int i = 0; args[i] != NULL && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int o = open(F.out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int e = open(F.err, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		dup2(o, 1);
		dup2(e, 2);
		/* Only the wall clock moves; libuv's timers keep working. */
		setenv("FAKETIME_DONT_FAKE_MONOTONIC", "1", 1);
		/* A sanitizer build must accept the preloaded library. */
		if (getenv("ASAN_OPTIONS") == NULL) {
			setenv("ASAN_OPTIONS", "verify_asan_link_order=0", 1);
		} else if (strstr(getenv("ASAN_OPTIONS"), "link_order") ==
			   NULL) {
			char opts[1024];

			snprintf(opts, sizeof(opts),
				 "%s:verify_asan_link_order=0",
				 getenv("ASAN_OPTIONS"));
			setenv("ASAN_OPTIONS", opts, 1);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0)
		;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The whole of a (small) output file. */
static void slurp(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "r");
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, cap - 1, f);
	buf[n] = '\0';
	fclose(f);
}

static void sync_with_clock(const char *offset, bool wrong)
{
	static const char *const sync[] = { "sync", "--once", NULL };
	char out[4096];
	char err[4096];
	int rc = cli(offset, sync);

	slurp(F.out, out, sizeof(out));
	slurp(F.err, err, sizeof(err));
	if (rc != 0 || strstr(out, "\"ok\":true") == NULL)
		fail_msg("sync with the clock at %s failed (exit %d): %s %s",
			 offset != NULL ? offset : "now", rc, out, err);
	if (wrong) {
		assert_non_null(strstr(out, "\"clock_warning\""));
		assert_non_null(strstr(err, "set its date and time"));
	} else {
		assert_non_null(strstr(out, "\"clock_offset_ms\""));
		assert_null(strstr(out, "\"clock_warning\""));
	}
}

static void ten_years_back_syncs(void **state)
{
	(void)state;
	sync_with_clock("-3650d", true);
	sync_with_clock(NULL, false);
}

static void ten_years_ahead_syncs(void **state)
{
	(void)state;
	sync_with_clock("+3650d", true);
	sync_with_clock(NULL, false);
}

static int first_household(const struct gs_row *row, void *payload)
{
	snprintf(payload, GS_ID_LEN, "%s", gs_row_get(row, "id"));
	return 1;
}

/* Visits recorded with the clock ten years back and ten years ahead reach
 * the server with their times bounded to the entry's time, and what the
 * device claimed is recorded. */
static void claimed_times_bounded(void **state)
{
	static const char *const offsets[] = { "-3650d", "+3650d" };
	struct gs_device *dev = NULL;
	char hh[GS_ID_LEN];
	char lo[GS_TIME_LEN];
	char hi[GS_TIME_LEN];
	int64_t now = gs__clock_wall_ms(F.ctx);

	(void)state;
	assert_gs_ok(gs_device_open(&dev, F.ctx, F.db));
	assert_int_equal(gs_household_list(dev, first_household, hh), 1);
	gs_device_close(dev);
	/* With a right clock, a visit claimed to start in 2016 and one in
	 * 2036 (a hand-typed year). */
	for (int i = 0; i < 2; i++) {
		const char *add[] = {
			"visit",
			"add",
			"--household",
			hh,
			"--kind",
			"routine",
			"--outcome",
			"met",
			"--at",
			i == 0 ? "2016-06-01T08:00:00.000Z" : "2036-06-01T08:00:00.000Z",
			NULL
		};

		assert_int_equal(cli(NULL, add), 0);
	}
	sync_with_clock(NULL, false);
	/* With the whole clock ten years off: every time it writes. */
	for (int i = 0; i < 2; i++) {
		const char *add[] = { "visit",     "add",    "--household",
				      hh,          "--kind", "routine",
				      "--outcome", "met",    NULL };

		assert_int_equal(cli(offsets[i], add), 0);
		sync_with_clock(offsets[i], true);
	}
	/* Two days either side of now: nothing ten years off. */
	gs__time_format(lo, now - 2 * 86400000LL);
	gs__time_format(hi, now + 2 * 86400000LL);
	{
		char sql[512];

		snprintf(sql, sizeof(sql),
			 "SELECT count(*) FROM visit WHERE origin = ?1 AND"
			 " (started_at < '%s' OR started_at > '%s' OR"
			 " created_at < '%s' OR created_at > '%s')",
			 lo, hi, lo, hi);
		assert_int_equal(gs_itest_server_int(&F.srv, sql, "dev-clk"),
				 0);
	}
	assert_int_equal(gs_itest_server_int(&F.srv,
					     "SELECT count(*) FROM visit WHERE"
					     " origin = ?1",
					     "dev-clk"),
			 4);
	assert_true(
		gs_itest_server_int(&F.srv,
				    "SELECT count(*) FROM srv_claimed_time"
				    " WHERE device_id = ?1 AND tbl = 'visit'"
				    " AND col = 'started_at' AND claimed"
				    " LIKE '2016-%'",
				    "dev-clk") == 2);
	assert_true(
		gs_itest_server_int(&F.srv,
				    "SELECT count(*) FROM srv_claimed_time"
				    " WHERE device_id = ?1 AND tbl = 'visit'"
				    " AND col = 'started_at' AND claimed"
				    " LIKE '2036-%'",
				    "dev-clk") == 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ten_years_back_syncs),
		cmocka_unit_test(ten_years_ahead_syncs),
		cmocka_unit_test(claimed_times_bounded),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
