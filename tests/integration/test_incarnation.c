/*
 * gs-test: timeout=240
 *
 * Device identity survives restore and reinstall: a real gridsyncd over
 * loopback, real device databases, copies taken and put back the way an
 * operator or a worker would. In every case each visit a worker saved ends
 * on the server and stays on the device:
 *   - the server is restored from a backup of its store and journal (it
 *     holds fewer of the device's entries than it had acknowledged);
 *   - the device is restored from an older copy of its database (its next
 *     entries reuse numbers the server holds with other content: still
 *     detected and reported, then renumbered under a new incarnation);
 *   - a fresh database is initialised under the same device id.
 */
#include <signal.h>
#include <stdlib.h>

#include <gridsync/client_internal.h>

#include "gs_itest.h"

struct fx {
	struct gs_ctx *ctx;
	char *dir;
	struct gs_itest_server srv;
	struct gs_itest_workers w;
	char hh[GS_ID_LEN];
};

static int first_household(const struct gs_row *row, void *payload)
{
	snprintf(payload, GS_ID_LEN, "%s", gs_row_get(row, "id"));
	return 1;
}

static void sh(const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (system(cmd) != 0)
		fail_msg("command failed: %s", cmd);
}

static int64_t local_int(struct gs_device *dev, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int64_t v = -1;

	assert_int_equal(
		sqlite3_prepare_v2(gs__device_db(dev), sql, -1, &st, NULL),
		SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static int64_t server_visits(struct fx *f, const char *devid)
{
	return gs_itest_server_int(
		&f->srv, "SELECT count(*) FROM visit WHERE origin = ?", devid);
}

static int64_t my_visits(struct gs_device *dev)
{
	return local_int(dev, "SELECT count(*) FROM visit WHERE origin IN"
			      " (SELECT value FROM gs_meta WHERE key ="
			      " 'device_id')");
}

static void visits(struct fx *f, struct gs_device *dev, int n)
{
	struct gs_visit_opts vo = GS_VISIT_OPTS_INIT;
	char id[GS_ID_LEN];

	vo.household_id = f->hh;
	vo.kind = "routine";
	vo.outcome = "met";
	for (int i = 0; i < n; i++)
		assert_gs_ok(gs_visit_add(dev, id, &vo));
}

static void sync_once(struct gs_device *dev, struct gs_sync_summary *sum)
{
	print_message("sync\n");
	gs_itest_sync(dev, sum);
	print_message("  pushed %llu acknowledged %llu rejected %llu deferred"
		      " %llu recaptured %llu attempts %u\n",
		      (unsigned long long)sum->pushed,
		      (unsigned long long)sum->acknowledged,
		      (unsigned long long)sum->rejected,
		      (unsigned long long)sum->deferred,
		      (unsigned long long)sum->recaptured, sum->attempts);
}

static struct gs_device *setup(struct fx *f, const char *devid)
{
	struct gs_device *dev;

	f->ctx = gs_test_ctx_new(NULL);
	f->dir = gs_test_tmpdir();
	gs_itest_server_create(&f->srv, f->dir, false);
	gs_itest_workers(&f->srv, &f->w);
	gs_itest_server_start(&f->srv, NULL);
	dev = gs_itest_device(&f->srv, f->ctx, devid, f->w.gw_a, f->w.grid_a);
	gs_itest_sync(dev, NULL);
	assert_int_equal(gs_household_list(dev, first_household, f->hh), 1);
	return dev;
}

static void teardown(struct fx *f)
{
	assert_int_equal(gs_itest_server_stop(&f->srv), 0);
	gs_ctx_free(f->ctx);
	gs_test_tmpdir_free(f->dir);
}

static int64_t conflicts_like(struct gs_device *dev, const char *pattern)
{
	char sql[256];

	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM gs_conflict WHERE reason LIKE '%s'",
		 pattern);
	return local_int(dev, sql);
}

static void server_restored_from_backup(void **state)
{
	struct fx f;
	struct gs_sync_summary sum;
	struct gs_device *dev;

	(void)state;
	dev = setup(&f, "dev-srvbak");
	visits(&f, dev, 3);
	sync_once(dev, &sum);
	assert_int_equal(gs_itest_server_stop(&f.srv), 0);
	/* The operator's backup: store and journal, server stopped. */
	sh("mkdir '%s/backup' && cp -a '%s' '%s' '%s/backup/'", f.dir, f.srv.db,
	   f.srv.journal, f.dir);
	sh("for x in -wal -shm; do [ ! -e '%s'$x ] || cp -a '%s'$x "
	   "'%s/backup/'; done",
	   f.srv.db, f.srv.db, f.dir);
	gs_itest_server_start(&f.srv, NULL);
	visits(&f, dev, 3);
	sync_once(dev, &sum);
	assert_int_equal(server_visits(&f, "dev-srvbak"), 6);
	assert_int_equal(gs_itest_server_stop(&f.srv), 0);

	/* The server's disk is replaced by the backup. */
	sh("rm -rf '%s' '%s' '%s-wal' '%s-shm' && cp -a '%s/backup/.' '%s/'",
	   f.srv.db, f.srv.journal, f.srv.db, f.srv.db, f.dir, f.dir);
	gs_itest_server_start(&f.srv, NULL);
	assert_int_equal(server_visits(&f, "dev-srvbak"), 3);

	/* The worker carries on: nothing she saved is erased, and what the
	 * server lost is sent again. */
	visits(&f, dev, 2);
	sync_once(dev, &sum);
	assert_int_equal(sum.rejected, 0);
	assert_int_equal(my_visits(dev), 8);
	assert_int_equal(server_visits(&f, "dev-srvbak"), 8);
	assert_true(conflicts_like(dev, "%restored from a backup%") >= 1);
	visits(&f, dev, 1);
	sync_once(dev, &sum);
	assert_int_equal(sum.rejected + sum.deferred, 0);
	assert_int_equal(my_visits(dev), 9);
	assert_int_equal(server_visits(&f, "dev-srvbak"), 9);
	assert_int_equal(local_int(dev, "SELECT count(*) FROM gs_outbox"), 0);
	gs_device_close(dev);
	teardown(&f);
}

static void device_restored_from_older_copy(void **state)
{
	struct fx f;
	struct gs_sync_summary sum;
	struct gs_device *dev;
	char path[4200];

	(void)state;
	dev = setup(&f, "dev-devbak");
	snprintf(path, sizeof(path), "%s/dev-devbak.db", f.dir);
	visits(&f, dev, 2);
	sync_once(dev, &sum);
	gs_device_close(dev);
	sh("cp -a '%s' '%s.bak'", path, path);
	assert_gs_ok(gs_device_open(&dev, f.ctx, path));
	visits(&f, dev, 3);
	sync_once(dev, &sum);
	assert_int_equal(server_visits(&f, "dev-devbak"), 5);
	gs_device_close(dev);

	/* The handheld is restored from the older copy. */
	sh("rm -f '%s' '%s-wal' '%s-shm' && cp -a '%s.bak' '%s'", path, path,
	   path, path, path);
	assert_gs_ok(gs_device_open(&dev, f.ctx, path));
	assert_int_equal(my_visits(dev), 2);
	visits(&f, dev, 2);
	sync_once(dev, &sum);
	/* Their numbers were used with other content: detected and said. */
	assert_true(sum.deferred >= 1);
	assert_true(conflicts_like(dev, "%other content%") >= 1);
	/* Renumbered, both new visits reached the server, and the device
	 * holds all seven. */
	assert_int_equal(server_visits(&f, "dev-devbak"), 7);
	assert_int_equal(my_visits(dev), 7);
	assert_int_equal(local_int(dev, "SELECT count(*) FROM gs_outbox"), 0);
	visits(&f, dev, 1);
	sync_once(dev, &sum);
	assert_int_equal(sum.rejected + sum.deferred, 0);
	assert_int_equal(server_visits(&f, "dev-devbak"), 8);
	gs_device_close(dev);
	teardown(&f);
}

static void reinitialised_under_same_id(void **state)
{
	struct fx f;
	struct gs_sync_summary sum;
	struct gs_device *dev;
	char path[4200];

	(void)state;
	dev = setup(&f, "dev-reinit");
	snprintf(path, sizeof(path), "%s/dev-reinit.db", f.dir);
	visits(&f, dev, 3);
	sync_once(dev, &sum);
	gs_device_close(dev);

	/* A reinstall: a fresh database under the same device id, enrolled
	 * again (a new bundle). */
	sh("rm -f '%s' '%s-wal' '%s-shm' '%s/dev-reinit.bundle'", path, path,
	   path, f.dir);
	dev = gs_itest_device(&f.srv, f.ctx, "dev-reinit", f.w.gw_a,
			      f.w.grid_a);
	sync_once(dev, &sum);
	assert_int_equal(my_visits(dev), 3); /* pulled back down */
	visits(&f, dev, 2);
	sync_once(dev, &sum);
	assert_int_equal(sum.acknowledged, 2);
	assert_int_equal(sum.rejected + sum.deferred, 0);
	assert_int_equal(server_visits(&f, "dev-reinit"), 5);
	assert_int_equal(my_visits(dev), 5);
	gs_device_close(dev);
	teardown(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(server_restored_from_backup),
		cmocka_unit_test(device_restored_from_older_copy),
		cmocka_unit_test(reinitialised_under_same_id),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
