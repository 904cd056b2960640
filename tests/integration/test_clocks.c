/*
 * gs-test: timeout=300
 *
 * Device clocks against a real gridsyncd over loopback with TLS: a device
 * whose clock runs 10 minutes fast (its ctx clock) keeps its last edit of
 * a column however its edits are batched, every device learns its clock
 * offset from the server's Welcome, and a device far off the server's
 * clock is warned on every sync (summary, status, and the CLI's text,
 * --json and stderr, the CLI run under faketime).
 */
#include <stdlib.h>
#include <sys/time.h>

#include <gridsync/client_internal.h>

#include "gs_itest.h"

#define FAST_MS (10 * 60 * 1000LL)
#define SLOW_MS (-2 * 3600 * 1000LL)

struct fx {
	char *dir;
	struct gs_itest_server srv;
	struct gs_itest_workers w;
	struct gs_ctx *ctx;      /* honest clock */
	struct gs_ctx *ctx_fast; /* 10 minutes fast */
	struct gs_ctx *ctx_slow; /* 2 hours slow */
	int64_t fast;
	int64_t slow;
	struct gs_device *a, *fast_dev, *slow_dev;
};

static struct fx F;

static int64_t wall_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static int64_t skewed_clock(void *payload)
{
	return wall_ms() + *(const int64_t *)payload;
}

static struct gs_ctx *ctx_with_clock(int64_t *offset)
{
	struct gs_ctx_opts opts = GS_CTX_OPTS_INIT;
	struct gs_ctx *ctx = NULL;

	opts.clock_fn = skewed_clock;
	opts.clock_payload = offset;
	assert_gs_ok(gs_ctx_new(&ctx, &opts));
	return ctx;
}

static int setup(void **state)
{
	(void)state;
	F.dir = gs_test_tmpdir();
	F.ctx = gs_test_ctx_new(NULL);
	F.fast = FAST_MS;
	F.slow = SLOW_MS;
	F.ctx_fast = ctx_with_clock(&F.fast);
	F.ctx_slow = ctx_with_clock(&F.slow);
	gs_itest_server_create(&F.srv, F.dir, true);
	gs_itest_workers(&F.srv, &F.w);
	gs_itest_server_start(&F.srv, NULL);
	F.a = gs_itest_device(&F.srv, F.ctx, "dev-a", F.w.gw_b, F.w.grid_a);
	F.fast_dev = gs_itest_device(&F.srv, F.ctx_fast, "dev-fast", F.w.gw_a,
				     F.w.grid_a);
	F.slow_dev = gs_itest_device(&F.srv, F.ctx_slow, "dev-slow", F.w.gw_a,
				     F.w.grid_a);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	gs_device_close(F.a);
	gs_device_close(F.fast_dev);
	gs_device_close(F.slow_dev);
	assert_int_equal(gs_itest_server_stop(&F.srv), 0);
	gs_ctx_free(F.ctx);
	gs_ctx_free(F.ctx_fast);
	gs_ctx_free(F.ctx_slow);
	gs_test_tmpdir_free(F.dir);
	return 0;
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

static int first_household(const struct gs_row *row, void *payload)
{
	snprintf(payload, GS_ID_LEN, "%s", gs_row_get(row, "id"));
	return 1;
}

static void note(struct gs_device *dev, const char *hh, const char *v)
{
	struct gs_field f = { "note", v };

	assert_gs_ok(gs_household_edit(dev, hh, &f, 1));
}

static void assert_note(struct gs_device *dev, const char *hh, const char *v)
{
	char buf[128];

	text(dev, "SELECT note FROM household WHERE id = ?", hh, buf,
	     sizeof(buf));
	assert_string_equal(buf, v);
}

/* The offset measured is the skew, within a loopback round trip. */
static void assert_offset(const struct gs_sync_summary *s, int64_t skew)
{
	assert_true(s->clock_known);
	if (llabs(s->clock_offset_ms + skew) > 5000)
		fail_msg("clock offset %lld ms, expected about %lld",
			 (long long)s->clock_offset_ms, (long long)-skew);
}

/* ---- tests -------------------------------------------------------------- */

static void fast_device_keeps_its_last_edit(void **state)
{
	struct gs_sync_summary sum;
	char hh[GS_ID_LEN];

	(void)state;
	gs_itest_sync(F.fast_dev, NULL);
	gs_itest_sync(F.a, NULL);
	assert_int_equal(gs_household_list(F.fast_dev, first_household, hh), 1);
	/* Two edits offline, one sync: one push of two entries, both
	 * clamped to the server's now + 5 minutes. */
	note(F.fast_dev, hh, "fast: first");
	note(F.fast_dev, hh, "fast: second");
	gs_itest_sync(F.fast_dev, &sum);
	assert_int_equal(sum.acknowledged, 2);
	assert_offset(&sum, FAST_MS);
	/* Ten minutes is ordinary skew: no warning. */
	assert_false(sum.clock_skewed);
	assert_note(F.fast_dev, hh, "fast: second");
	gs_itest_sync(F.a, NULL);
	assert_note(F.a, hh, "fast: second");
	assert_int_equal(q(F.fast_dev,
			   "SELECT count(*) FROM gs_conflict WHERE pk = ?", hh),
			 0);
	/* The same column in two pushes. */
	note(F.fast_dev, hh, "fast: third");
	gs_itest_sync(F.fast_dev, NULL);
	note(F.fast_dev, hh, "fast: fourth");
	gs_itest_sync(F.fast_dev, NULL);
	gs_itest_sync(F.a, NULL);
	assert_note(F.a, hh, "fast: fourth");
	assert_note(F.fast_dev, hh, "fast: fourth");
	assert_int_equal(q(F.fast_dev,
			   "SELECT count(*) FROM gs_conflict WHERE pk = ?", hh),
			 0);
}

static void far_clock_is_told_on_every_sync(void **state)
{
	struct gs_sync_summary sum;
	struct gs_status st;

	(void)state;
	/* An honest device: in step, no warning. */
	gs_itest_sync(F.a, &sum);
	assert_offset(&sum, 0);
	assert_false(sum.clock_skewed);
	assert_gs_ok(gs_device_status(F.a, &st));
	assert_true(st.clock_known);
	assert_false(st.clock_skewed);
	/* Two hours slow: warned on the first sync and the next. */
	assert_gs_ok(gs_device_status(F.slow_dev, &st));
	assert_false(st.clock_known);
	for (int i = 0; i < 2; i++) {
		memset(&sum, 0, sizeof(sum));
		gs_itest_sync(F.slow_dev, &sum);
		assert_offset(&sum, SLOW_MS);
		assert_true(sum.clock_skewed);
	}
	assert_gs_ok(gs_device_status(F.slow_dev, &st));
	assert_true(st.clock_known);
	assert_true(st.clock_skewed);
	assert_true(llabs(st.clock_offset_ms + SLOW_MS) < 5000);
}

/* Does file path hold needle? */
static bool file_has(const char *path, const char *needle)
{
	static char buf[1 << 16];
	FILE *f = fopen(path, "rb");
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, needle) != NULL;
}

/* The stock CLI under faketime two hours ahead: the summary (text and
 * --json) names the offset and the warning, stderr carries it too, and
 * `status` shows the offset afterwards. */
static void cli_warns_under_faketime(void **state)
{
	const char *db = gs_test_path(F.dir, "dev-a.db");
	const char *out = gs_test_path(F.dir, "cli.out");
	const char *err = gs_test_path(F.dir, "cli.err");
	char sync_cmd[8192];
	char status_cmd[8192];

	(void)state;
	/* libfaketime is preloaded: a sanitizer runtime must not insist on
	 * coming first. */
	setenv("ASAN_OPTIONS", "verify_asan_link_order=0", 1);
	setenv("FAKETIME_DONT_FAKE_MONOTONIC", "1", 1);
	snprintf(sync_cmd, sizeof(sync_cmd),
		 "faketime -f '+2h' '%s' --db '%s' --json sync --once >'%s' "
		 "2>'%s'",
		 gs_itest_bin("gridsync"), db, out, err);
	assert_int_equal(system(sync_cmd), 0);
	assert_true(file_has(out, "\"clock_warning\":"));
	assert_true(file_has(out, "ahead of the server by"));
	assert_true(file_has(err, "warning"));
	assert_true(file_has(err, "ahead of the server"));
	snprintf(sync_cmd, sizeof(sync_cmd),
		 "faketime -f '+2h' '%s' --db '%s' sync --once >'%s' 2>'%s'",
		 gs_itest_bin("gridsync"), db, out, err);
	assert_int_equal(system(sync_cmd), 0);
	assert_true(file_has(out, "clock_warning: "));
	assert_true(file_has(err, "warning"));
	snprintf(status_cmd, sizeof(status_cmd),
		 "'%s' --db '%s' --json status >'%s' 2>'%s'",
		 gs_itest_bin("gridsync"), db, out, err);
	assert_int_equal(system(status_cmd), 0);
	assert_true(file_has(out, "\"clock_skewed\":true"));
	assert_true(file_has(out, "\"clock_offset_ms\":-7"));
	/* In step again (the real clock): the warning is gone. */
	snprintf(sync_cmd, sizeof(sync_cmd),
		 "'%s' --db '%s' --json sync --once >'%s' 2>'%s'",
		 gs_itest_bin("gridsync"), db, out, err);
	assert_int_equal(system(sync_cmd), 0);
	assert_false(file_has(out, "clock_warning"));
	assert_false(file_has(err, "warning"));
	assert_true(file_has(out, "\"clock_offset_ms\":"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fast_device_keeps_its_last_edit),
		cmocka_unit_test(far_clock_is_told_on_every_sync),
		cmocka_unit_test(cli_warns_under_faketime),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
