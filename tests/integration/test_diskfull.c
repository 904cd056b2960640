/*
 * gs-test: timeout=240
 *
 * Disk full on small filesystems the test creates (size-limited tmpfs
 * mounts; needs root, else every case is skipped with a message): the
 * server's store and journal on one full disk, the journal alone on a full
 * disk, and the handheld's database on a full disk and then on a read-only
 * one. Each time: a clear error that names the missing space, nothing
 * acknowledged that is not durable, and full recovery without a restart
 * once space returns (`gridsyncd journal verify` passes). On failure the
 * mounts and the server's directory are left in place for inspection.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gridsync/client_internal.h>

#include "gs_itest.h"

static uint64_t now_ms(void)
{
	return gs__clock_mono_ns() / 1000000u;
}

static void pause_ms(int ms)
{
	struct pollfd none = { -1, 0, 0 };

	poll(&none, 0, ms); /* poll interval between condition checks */
}

static bool root_or_skip(void)
{
	if (geteuid() == 0)
		return true;
	printf("# skipped: mounting a small tmpfs needs root\n");
	skip();
	return false;
}

/* A tmpfs of kib KiB at dir (created). */
static void mount_small(const char *dir, unsigned kib)
{
	char opts[64];

	mkdir(dir, 0700);
	snprintf(opts, sizeof(opts), "size=%uk,mode=0700", kib);
	if (mount("gs-diskfull", dir, "tmpfs", 0, opts) != 0)
		fail_msg("mount tmpfs at %s: %s", dir, strerror(errno));
}

static void unmount_small(const char *dir)
{
	assert_int_equal(umount2(dir, MNT_DETACH), 0);
	rmdir(dir);
}

/* Fill the filesystem of dir with one file until ENOSPC. */
static void fill(const char *path)
{
	static char chunk[64 * 1024];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	size_t total = 0;

	assert_true(fd >= 0);
	for (int i = 0; i < 1 << 16; i++) {
		ssize_t w = write(fd, chunk, sizeof(chunk));

		if (w < 0 && errno == ENOSPC)
			break;
		assert_true(w > 0);
		total += (size_t)w;
	}
	/* The last partial chunks: down to single bytes. */
	for (size_t n = sizeof(chunk) / 2; n > 0; n /= 2)
		while (write(fd, chunk, n) > 0)
			total += n;
	fsync(fd);
	close(fd);
	printf("# filled %s with %zu bytes\n", path, total);
}

static void run_sh(const char *cmd)
{
	const char *argv[] = { "sh", "-c", cmd, NULL };
	pid_t pid = fork();
	int st = -1;

	assert_true(pid >= 0);
	if (pid == 0) {
		execv("/bin/sh", (char *const *)argv);
		_exit(127);
	}
	waitpid(pid, &st, 0);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static bool file_has(const char *path, const char *text)
{
	static char buf[1 << 18];
	FILE *fp = fopen(path, "r");
	size_t n;

	if (fp == NULL)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	return strstr(buf, text) != NULL;
}

static int first_household(const struct gs_row *row, void *payload)
{
	snprintf(payload, GS_ID_LEN, "%s", gs_row_get(row, "id"));
	return 1;
}

static void add_visits(struct gs_device *dev, int n)
{
	struct gs_visit_opts vo = GS_VISIT_OPTS_INIT;
	char hh[GS_ID_LEN];
	char id[GS_ID_LEN];

	assert_int_equal(gs_household_list(dev, first_household, hh), 1);
	vo.household_id = hh;
	vo.kind = "routine";
	vo.outcome = "met";
	for (int i = 0; i < n; i++)
		assert_gs_ok(gs_visit_add(dev, id, &vo));
}

/* Sync until it succeeds, bounded; returns how many attempts failed. */
static int sync_until_ok(struct gs_device *dev, struct gs_ctx *ctx, int ms)
{
	struct gs_sync_opts so = GS_SYNC_OPTS_INIT;
	struct gs_sync_summary sum;
	uint64_t deadline = now_ms() + (uint64_t)ms;
	int failed = 0;

	so.once = 1;
	so.timeout_ms = 20000;
	while (gs_device_sync(dev, &so, &sum) != GS_OK) {
		failed++;
		if (now_ms() > deadline)
			fail_msg("no successful sync within %d ms: %s", ms,
				 gs_ctx_errmsg(ctx));
		pause_ms(250);
	}
	return failed;
}

static void wait_journaled(struct gs_itest_server *s)
{
	uint64_t deadline = now_ms() + 30000;

	while (gs_itest_server_int(s,
				   "SELECT count(*) FROM srv_received"
				   " WHERE journaled = 0",
				   NULL) != 0) {
		if (now_ms() > deadline)
			fail_msg("the journal did not catch up within 30 s");
		pause_ms(100);
	}
}

static void verify_journal(struct gs_itest_server *s)
{
	const char *verify[] = { "gridsyncd", "journal",   "verify",   "--db",
				 s->db,       "--journal", s->journal, NULL };

	assert_int_equal(gs_itest_run(verify, NULL, NULL), 0);
}

enum on_small { ALL, JOURNAL_ONLY, STORE_ONLY };

/* Move what `create` made into dir/small (a tmpfs of kib KiB): all of it,
 * only the journal, or only the store. */
static void server_on_small(struct gs_itest_server *s,
			    const char small[2048],
			    unsigned kib,
			    enum on_small what)
{
	char cmd[16384];

	mount_small(small, kib);
	if (what == JOURNAL_ONLY)
		snprintf(cmd, sizeof(cmd), "mv '%s' '%s'/", s->journal, small);
	else if (what == STORE_ONLY)
		snprintf(cmd, sizeof(cmd), "mv '%s' '%s.pki' '%s'/", s->db,
			 s->db, small);
	else
		snprintf(cmd, sizeof(cmd), "mv '%s' '%s.pki' '%s' '%s'/", s->db,
			 s->db, s->journal, small);
	run_sh(cmd);
	if (what != JOURNAL_ONLY)
		snprintf(s->db, sizeof(s->db), "%s/server.db", small);
	if (what != STORE_ONLY)
		snprintf(s->journal, sizeof(s->journal), "%s/journal.git",
			 small);
}

static void server_disk_full_recovers(void **state)
{
	struct gs_ctx *ctx = gs_test_ctx_new(NULL);
	char *dir = gs_test_tmpdir();
	struct gs_sync_opts so = GS_SYNC_OPTS_INIT;
	struct gs_sync_summary sum;
	struct gs_itest_server srv;
	struct gs_itest_workers w;
	struct gs_device *dev;
	struct gs_status st;
	char small[2048], filler[4300], log[4200];
	int rc;

	(void)state;
	if (!root_or_skip())
		return;
	gs_itest_server_create(&srv, dir, false);
	gs_itest_workers(&srv, &w);
	snprintf(small, sizeof(small), "%s/small", dir);
	server_on_small(&srv, small, 16 * 1024, ALL);
	gs_itest_server_start(&srv, NULL);
	dev = gs_itest_device(&srv, ctx, "dev-full", w.gw_a, w.grid_a);
	gs_itest_sync(dev, NULL);
	wait_journaled(&srv);

	/* The disk is full: a push is not acknowledged, and says why. */
	snprintf(filler, sizeof(filler), "%s/filler", small);
	fill(filler);
	add_visits(dev, 40);
	so.once = 1;
	so.timeout_ms = 20000;
	rc = gs_device_sync(dev, &so, &sum);
	printf("# sync on a full server disk: %s: %s\n", gs_errname(rc),
	       gs_ctx_errmsg(ctx));
	assert_int_not_equal(rc, GS_OK);
	assert_non_null(strstr(gs_ctx_errmsg(ctx), "disk is full"));
	assert_gs_ok(gs_device_status(dev, &st));
	assert_int_equal(st.outbox_depth, 40);
	snprintf(log, sizeof(log), "%s/server.log", dir);
	assert_true(file_has(log, "disk full"));

	/* Space returns: the same server takes the push, the journal
	 * catches up and verifies. */
	assert_int_equal(unlink(filler), 0);
	printf("# failed syncs after space returned: %d\n",
	       sync_until_ok(dev, ctx, 30000));
	assert_gs_ok(gs_device_status(dev, &st));
	assert_int_equal(st.outbox_depth, 0);
	assert_int_equal(gs_itest_server_int(&srv,
					     "SELECT count(*) FROM visit WHERE"
					     " origin = 'dev-full'",
					     NULL),
			 40);
	wait_journaled(&srv);
	/* And keeps taking pushes. */
	add_visits(dev, 3);
	gs_itest_sync(dev, NULL);
	wait_journaled(&srv);
	gs_device_close(dev);
	assert_int_equal(gs_itest_server_stop(&srv), 0);
	verify_journal(&srv);
	unmount_small(small);
	gs_test_tmpdir_free(dir);
	gs_ctx_free(ctx);
}

static void journal_disk_full_recovers(void **state)
{
	struct gs_ctx *ctx = gs_test_ctx_new(NULL);
	char *dir = gs_test_tmpdir();
	struct gs_itest_server srv;
	struct gs_itest_workers w;
	struct gs_device *dev;
	struct gs_status st;
	char small[2048], filler[4300], log[4200];
	uint64_t deadline;

	(void)state;
	if (!root_or_skip())
		return;
	gs_itest_server_create(&srv, dir, false);
	gs_itest_workers(&srv, &w);
	snprintf(small, sizeof(small), "%s/jsmall", dir);
	server_on_small(&srv, small, 4 * 1024, JOURNAL_ONLY);
	gs_itest_server_start(&srv, NULL);
	dev = gs_itest_device(&srv, ctx, "dev-jfull", w.gw_a, w.grid_a);
	gs_itest_sync(dev, NULL);
	wait_journaled(&srv);

	/* Only the journal's disk is full: pushes are durable in the store
	 * and acknowledged; the journal lags and says why. */
	snprintf(filler, sizeof(filler), "%s/filler", small);
	fill(filler);
	snprintf(log, sizeof(log), "%s/server.log", dir);
	for (int round = 0; round < 3; round++) {
		uint64_t t = now_ms();

		add_visits(dev, 20);
		gs_itest_sync(dev, NULL);
		printf("# push %d with the journal's disk full: %llu ms\n",
		       round, (unsigned long long)(now_ms() - t));
		assert_gs_ok(gs_device_status(dev, &st));
		assert_int_equal(st.outbox_depth, 0);
	}
	deadline = now_ms() + 10000;
	while (!file_has(log, "journal") && now_ms() < deadline)
		pause_ms(100);
	assert_true(file_has(log, "journal"));
	assert_true(gs_itest_server_int(&srv,
					"SELECT count(*) FROM srv_received"
					" WHERE journaled = 0",
					NULL) > 0);

	/* Space returns: the journal catches up without a restart. */
	assert_int_equal(unlink(filler), 0);
	wait_journaled(&srv);
	add_visits(dev, 2);
	gs_itest_sync(dev, NULL);
	wait_journaled(&srv);
	gs_device_close(dev);
	assert_int_equal(gs_itest_server_stop(&srv), 0);
	verify_journal(&srv);
	unmount_small(small);
	gs_test_tmpdir_free(dir);
	gs_ctx_free(ctx);
}

/*
 * Pushes made durable just before a crash are journaled at the next start;
 * the store's disk is full then, so marking them journaled fails. That
 * must not leave the journal's transaction (and the store's write lock)
 * open: once space returns, pushes go through without a restart.
 */
static void journal_catch_up_on_full_store_disk(void **state)
{
	struct gs_ctx *ctx = gs_test_ctx_new(NULL);
	char *dir = gs_test_tmpdir();
	struct gs_sync_opts so = GS_SYNC_OPTS_INIT;
	struct gs_sync_summary sum;
	struct gs_itest_server srv;
	struct gs_itest_workers w;
	struct gs_device *dev;
	struct gs_status st;
	char small[2048], filler[4300];

	(void)state;
	if (!root_or_skip())
		return;
	gs_itest_server_create(&srv, dir, false);
	gs_itest_workers(&srv, &w);
	snprintf(small, sizeof(small), "%s/ssmall", dir);
	server_on_small(&srv, small, 16 * 1024, STORE_ONLY);
	gs_itest_server_start(&srv, NULL);
	dev = gs_itest_device(&srv, ctx, "dev-crash", w.gw_a, w.grid_a);
	gs_itest_sync(dev, NULL);
	wait_journaled(&srv);
	assert_int_equal(gs_itest_server_stop(&srv), 0);

	/* Durable in the store, never journaled: the server dies first. */
	gs_itest_server_start(&srv, "GS_CRASH_AT=push-committed");
	add_visits(dev, 200);
	so.once = 1;
	so.timeout_ms = 20000;
	assert_int_not_equal(gs_device_sync(dev, &so, &sum), GS_OK);
	assert_int_equal(gs_itest_server_wait(&srv), 99);
	assert_true(gs_itest_server_int(&srv,
					"SELECT count(*) FROM srv_received"
					" WHERE journaled = 0",
					NULL) > 0);

	/* It restarts on a full disk: it listens at once, and its journal
	 * catch-up fails for now. */
	snprintf(filler, sizeof(filler), "%s/filler", small);
	fill(filler);
	gs_itest_server_start(&srv, NULL);
	add_visits(dev, 5);
	assert_int_not_equal(gs_device_sync(dev, &so, &sum), GS_OK);
	printf("# sync on the full store disk after the restart: %s\n",
	       gs_ctx_errmsg(ctx));

	/* Space returns: everything goes through, no restart. */
	assert_int_equal(unlink(filler), 0);
	printf("# failed syncs after space returned: %d\n",
	       sync_until_ok(dev, ctx, 30000));
	assert_gs_ok(gs_device_status(dev, &st));
	assert_int_equal(st.outbox_depth, 0);
	wait_journaled(&srv);
	gs_device_close(dev);
	assert_int_equal(gs_itest_server_stop(&srv), 0);
	verify_journal(&srv);
	unmount_small(small);
	gs_test_tmpdir_free(dir);
	gs_ctx_free(ctx);
}

static void handheld_disk_full_and_read_only(void **state)
{
	struct gs_ctx *ctx = gs_test_ctx_new(NULL);
	char *dir = gs_test_tmpdir();
	struct gs_visit_opts vo = GS_VISIT_OPTS_INIT;
	struct gs_itest_server srv;
	struct gs_itest_workers w;
	struct gs_device *dev;
	struct gs_status st;
	char small[2048], filler[4300], path[4300], cmd[16384];
	char hh[GS_ID_LEN];
	char id[GS_ID_LEN];
	uint64_t before;
	int rc = GS_OK;
	int added = 0;

	(void)state;
	if (!root_or_skip())
		return;
	gs_itest_server_create(&srv, dir, false);
	gs_itest_workers(&srv, &w);
	gs_itest_server_start(&srv, NULL);
	dev = gs_itest_device(&srv, ctx, "dev-hh", w.gw_a, w.grid_a);
	gs_itest_sync(dev, NULL);
	gs_device_close(dev);
	assert_int_equal(gs_itest_server_stop(&srv), 0);

	/* The device database moves to a small disk of its own. */
	snprintf(small, sizeof(small), "%s/hh", dir);
	mount_small(small, 32 * 1024);
	snprintf(cmd, sizeof(cmd), "cp '%s/dev-hh.db' '%s'/", dir, small);
	run_sh(cmd);
	snprintf(path, sizeof(path), "%s/dev-hh.db", small);
	assert_gs_ok(gs_device_open(&dev, ctx, path));
	assert_gs_ok(gs_device_status(dev, &st));
	before = st.outbox_depth;
	assert_int_equal(gs_household_list(dev, first_household, hh), 1);
	vo.household_id = hh;
	vo.kind = "routine";
	vo.outcome = "met";
	snprintf(filler, sizeof(filler), "%s/filler", small);
	fill(filler);
	/* Saving fails once the free pages and WAL room are used up. */
	for (int i = 0; i < 5000; i++) {
		rc = gs_visit_add(dev, id, &vo);
		if (rc != GS_OK)
			break;
		added++;
	}
	printf("# handheld: %d visits saved on the full disk, then %s: %s\n",
	       added, gs_errname(rc), gs_ctx_errmsg(ctx));
	assert_int_equal(rc, GS_EFULL);
	assert_non_null(strstr(gs_ctx_errmsg(ctx), "disk full: free space on"));
	assert_non_null(strstr(gs_ctx_errmsg(ctx), small));
	assert_gs_ok(gs_device_status(dev, &st));
	assert_int_equal(st.outbox_depth, before + (uint64_t)added);
	/* Space returns: saving works again, nothing half-saved. */
	assert_int_equal(unlink(filler), 0);
	assert_gs_ok(gs_visit_add(dev, id, &vo));
	assert_gs_ok(gs_device_status(dev, &st));
	assert_int_equal(st.outbox_depth, before + (uint64_t)added + 1);
	gs_device_close(dev);

	/* A read-only disk: the database exists, and the error says it is
	 * read-only. */
	assert_int_equal(mount(NULL, small, NULL, MS_REMOUNT | MS_RDONLY, NULL),
			 0);
	rc = gs_device_open(&dev, ctx, path);
	printf("# handheld on a read-only disk: %s: %s\n", gs_errname(rc),
	       gs_ctx_errmsg(ctx));
	assert_int_not_equal(rc, GS_OK);
	assert_non_null(strstr(gs_ctx_errmsg(ctx), "read-only"));
	assert_null(strstr(gs_ctx_errmsg(ctx), "no device database"));
	unmount_small(small);
	gs_test_tmpdir_free(dir);
	gs_ctx_free(ctx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(server_disk_full_recovers),
		cmocka_unit_test(journal_disk_full_recovers),
		cmocka_unit_test(journal_catch_up_on_full_store_disk),
		cmocka_unit_test(handheld_disk_full_and_read_only),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
