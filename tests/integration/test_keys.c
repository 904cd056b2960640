/*
 * gs-test: timeout=120
 *
 * Files that hold keys or personal data are private whatever the umask:
 * the server store and its -wal/-shm, the journal directory, the PKI
 * directory and its keys, an enrolment bundle, a device database and its
 * -wal/-shm are owner-only (checked with stat while a real gridsyncd
 * serves and a device syncs over TLS). `enroll` does not write through a
 * symlink planted at <out>.tmp, and files an older version left readable
 * by others are tightened when they are opened again.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gridsync/client_internal.h>

#include "gs_itest.h"

static void assert_private(const char *path, bool dir)
{
	struct stat st;

	if (lstat(path, &st) != 0)
		fail_msg("%s: missing", path);
	if (dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))
		fail_msg("%s: not a %s", path, dir ? "directory" : "file");
	if ((st.st_mode & 077) != 0)
		fail_msg("%s: mode %04o, open to group or others", path,
			 (unsigned)(st.st_mode & 07777));
}

static void path2(char *out, size_t cap, const char *a, const char *b)
{
	snprintf(out, cap, "%s%s", a, b);
}

static void files_are_private(void **state)
{
	struct gs_ctx *ctx = gs_test_ctx_new(NULL);
	char *dir = gs_test_tmpdir();
	struct gs_itest_server srv;
	struct gs_itest_workers w;
	struct gs_device *dev;
	char p[4300];
	mode_t old = umask(022); /* the usual umask: files 0644 by default */

	(void)state;
	gs_itest_server_create(&srv, dir, true);
	gs_itest_workers(&srv, &w);
	gs_itest_server_start(&srv, NULL);
	dev = gs_itest_device(&srv, ctx, "dev-k", w.gw_a, w.grid_a);
	gs_itest_sync(dev, NULL);
	/* While both sides have their databases open: -wal and -shm exist. */
	assert_private(srv.db, false);
	path2(p, sizeof(p), srv.db, "-wal");
	assert_private(p, false);
	path2(p, sizeof(p), srv.db, "-shm");
	assert_private(p, false);
	assert_private(srv.journal, true);
	path2(p, sizeof(p), srv.db, ".pki");
	assert_private(p, true);
	path2(p, sizeof(p), srv.db, ".pki/ca.key");
	assert_private(p, false);
	path2(p, sizeof(p), srv.db, ".pki/server.key");
	assert_private(p, false);
	snprintf(p, sizeof(p), "%s/dev-k.bundle", dir);
	assert_private(p, false);
	snprintf(p, sizeof(p), "%s/dev-k.db", dir);
	assert_private(p, false);
	snprintf(p, sizeof(p), "%s/dev-k.db-wal", dir);
	assert_private(p, false);
	snprintf(p, sizeof(p), "%s/dev-k.db-shm", dir);
	assert_private(p, false);
	gs_device_close(dev);
	assert_int_equal(gs_itest_server_stop(&srv), 0);

	/* A store and a device database an older version left 0644 keep
	 * working and are made private on their next open. */
	assert_int_equal(chmod(srv.db, 0644), 0);
	snprintf(p, sizeof(p), "%s/dev-k.db", dir);
	assert_int_equal(chmod(p, 0644), 0);
	gs_itest_server_start(&srv, NULL);
	assert_gs_ok(gs_device_open(&dev, ctx, p));
	gs_itest_sync(dev, NULL);
	assert_private(srv.db, false);
	assert_private(p, false);
	gs_device_close(dev);
	assert_int_equal(gs_itest_server_stop(&srv), 0);
	umask(old);
	gs_ctx_free(ctx);
	gs_test_tmpdir_free(dir);
}

static void enroll_does_not_follow_tmp_symlink(void **state)
{
	struct gs_ctx *ctx = gs_test_ctx_new(NULL);
	char *dir = gs_test_tmpdir();
	struct gs_itest_server srv;
	struct gs_itest_workers w;
	char out[4200], tmp[4300], victim[4200], buf[64];
	struct stat st;
	FILE *f;

	(void)state;
	gs_itest_server_create(&srv, dir, true);
	gs_itest_workers(&srv, &w);
	snprintf(out, sizeof(out), "%s/planted.bundle", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", out);
	snprintf(victim, sizeof(victim), "%s/victim", dir);
	/* Somebody else's file, readable by all, and a link to it where
	 * enroll writes its temporary bundle. */
	f = fopen(victim, "w");
	assert_non_null(f);
	fputs("not yours\n", f);
	fclose(f);
	assert_int_equal(chmod(victim, 0644), 0);
	assert_int_equal(symlink(victim, tmp), 0);
	{
		const char *argv[] = { "gridsyncd", "enroll",      "--db",
				       srv.db,      "--device",    "dev-s",
				       "--worker",  w.gw_a,        "--scope",
				       w.grid_a,    "--out",       out,
				       "--server",  "127.0.0.1:1", NULL };

		assert_int_equal(gs_itest_run(argv, "/dev/null", NULL), 0);
	}
	/* The victim is untouched, the bundle is a private regular file,
	 * and the planted link is gone. */
	f = fopen(victim, "r");
	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof(buf), f));
	assert_null(
		fgets(buf + strlen(buf), (int)(sizeof(buf) - strlen(buf)), f));
	fclose(f);
	assert_string_equal(buf, "not yours\n");
	assert_int_equal(lstat(victim, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	assert_private(out, false);
	assert_int_not_equal(lstat(tmp, &st), 0);
	gs_ctx_free(ctx);
	gs_test_tmpdir_free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(files_are_private),
		cmocka_unit_test(enroll_does_not_follow_tmp_symlink),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
