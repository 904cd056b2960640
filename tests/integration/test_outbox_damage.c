/*
 * gs-test: timeout=240
 *
 * A damaged outbox never erases what a worker saved. Five visits are
 * recorded offline, then one outbox row is damaged the way storage damages
 * things (a flipped bit in the changeset, a flipped bit in its stored
 * SHA-256, the changeset cut in half) or replaced by bytes that make
 * SQLite's own changeset code spin (the trap corpus). `gridsync sync`, the
 * stock binary against a real gridsyncd over loopback, must end promptly,
 * say ok: false with the quarantined entry counted and exit non-zero;
 * the five visits stay on the device, reach the server (re-captured from
 * the rows), the damaged bytes are kept in quarantine and shown by
 * `gridsync status` and `gridsync conflicts`, and the next sync is clean.
 */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gridsync/client_internal.h>

#include "gs_itest.h"

enum damage { FLIP_CHANGESET, FLIP_HASH, TRUNCATE, TRAP_T, TRAP_HEADER };

static const char *const damage_name[] = {
	"flip-changeset",           "flip-hash", "truncate", "trap-1-byte-T",
	"trap-8-byte-table-header",
};

static int first_household(const struct gs_row *row, void *payload)
{
	snprintf(payload, GS_ID_LEN, "%s", gs_row_get(row, "id"));
	return 1;
}

/* Run the stock gridsync with a hard deadline: the child's alarm survives
 * exec, so a gridsync spinning in SQLite is killed, not left behind. */
static int run_cli(const char *const *argv, const char *out_path, int secs)
{
	pid_t pid = fork();
	int status = 0;

	assert_true(pid >= 0);
	if (pid == 0) {
		FILE *f = freopen(out_path, "w", stdout);

		if (f == NULL || freopen("/dev/null", "w", stderr) == NULL)
			_exit(126);
		alarm((unsigned)secs);
		execv(gs_itest_bin(argv[0]), (char *const *)argv);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status))
		return -WTERMSIG(status);
	return WEXITSTATUS(status);
}

static void slurp(const char *path, char *out, size_t cap)
{
	FILE *f = fopen(path, "r");
	size_t n;

	assert_non_null(f);
	n = fread(out, 1, cap - 1, f);
	out[n] = '\0';
	fclose(f);
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

static void read_file(const char *path, uint8_t **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	long n;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n > 0);
	rewind(f);
	*out = malloc((size_t)n);
	assert_non_null(*out);
	assert_int_equal(fread(*out, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
}

/* Damage outbox entry seq of the database at path (closed by the caller
 * beforehand, so nothing caches it). */
static void damage_entry(const char *path, uint64_t seq, enum damage how)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	uint8_t *cs = NULL;
	uint8_t sha[GS_SHA256_LEN];
	size_t len = 0;
	const char *col = "changeset";

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db,
					    "SELECT changeset, sha256 FROM"
					    " gs_outbox WHERE seq = ?",
					    -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)seq);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	len = (size_t)sqlite3_column_bytes(st, 0);
	cs = malloc(len);
	assert_non_null(cs);
	memcpy(cs, sqlite3_column_blob(st, 0), len);
	memcpy(sha, sqlite3_column_blob(st, 1), sizeof(sha));
	sqlite3_finalize(st);
	switch (how) {
	case FLIP_CHANGESET:
		cs[len / 2] ^= 0x04;
		break;
	case FLIP_HASH:
		sha[7] ^= 0x10;
		col = "sha256";
		break;
	case TRUNCATE:
		len /= 2;
		break;
	case TRAP_T:
	case TRAP_HEADER: {
		char p[4200];

		free(cs);
		snprintf(p, sizeof(p), "%s/tests/data/malformed/%s",
			 GS_TEST_SRCDIR,
			 how == TRAP_T ? "hang-1-byte-T.cs"
				       : "hang-8-byte-table-header.cs");
		read_file(p, &cs, &len);
		/* A matching hash: only the parser can catch these. */
		gs__sha256(sha, cs, len);
		break;
	}
	}
	assert_int_equal(sqlite3_prepare_v2(db,
					    "UPDATE gs_outbox SET changeset ="
					    " ?1, sha256 = ?2 WHERE seq = ?3",
					    -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_blob(st, 1, cs, (int)len, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, sha, sizeof(sha), SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)seq);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	sqlite3_close(db);
	free(cs);
	(void)col;
}

static void damaged_entry_is_quarantined(enum damage how)
{
	struct gs_ctx *ctx = gs_test_ctx_new(NULL);
	char *dir = gs_test_tmpdir();
	struct gs_itest_server srv;
	struct gs_itest_workers w;
	struct gs_visit_opts vo = GS_VISIT_OPTS_INIT;
	struct gs_device *dev;
	char hh[GS_ID_LEN];
	char id[GS_ID_LEN];
	char devid[64];
	char path[4200];
	char out_path[4200];
	char q[256];
	static char out[65536];
	struct gs_status st;
	uint64_t first = 0;
	int rc;

	print_message("damage: %s\n", damage_name[how]);
	snprintf(devid, sizeof(devid), "dev-dmg-%d", (int)how);
	gs_itest_server_create(&srv, dir, false);
	gs_itest_workers(&srv, &w);
	gs_itest_server_start(&srv, NULL);
	dev = gs_itest_device(&srv, ctx, devid, w.gw_a, w.grid_a);
	gs_itest_sync(dev, NULL);
	assert_int_equal(gs_household_list(dev, first_household, hh), 1);
	vo.household_id = hh;
	vo.kind = "routine";
	vo.outcome = "met";
	for (int i = 0; i < 5; i++)
		assert_gs_ok(gs_visit_add(dev, id, &vo));
	assert_gs_ok(gs_device_status(dev, &st));
	assert_int_equal(st.outbox_depth, 5);
	first = st.last_seq - 4;
	gs_device_close(dev);
	snprintf(path, sizeof(path), "%s/%s.db", dir, devid);
	snprintf(out_path, sizeof(out_path), "%s/cli.out", dir);
	/* The second of five entries is damaged. */
	damage_entry(path, first + 1, how);

	{
		const char *argv[] = { "gridsync", "--db",   path, "--json",
				       "sync",     "--once", NULL };

		rc = run_cli(argv, out_path, 20);
		slurp(out_path, out, sizeof(out));
		print_message("sync: exit %d: %s", rc, out);
		assert_int_equal(rc, 1); /* ended, and said it was not ok */
		assert_non_null(strstr(out, "\"ok\":false"));
		assert_non_null(strstr(out, "\"quarantined\":1"));
	}
	assert_gs_ok(gs_device_open(&dev, ctx, path));
	/* Nothing the worker saved was erased on the device ... */
	assert_int_equal(local_int(dev, "SELECT count(*) FROM visit WHERE"
					" origin IN (SELECT value FROM gs_meta"
					" WHERE key = 'device_id')"),
			 5);
	/* ... the bytes are kept ... */
	assert_int_equal(local_int(dev, "SELECT count(*) FROM gs_quarantine"),
			 1);
	/* ... and every visit reached the server, the damaged one
	 * re-captured from its row. */
	snprintf(q, sizeof(q), "SELECT count(*) FROM visit WHERE origin = ?");
	assert_int_equal(gs_itest_server_int(&srv, q, devid), 5);
	gs_device_close(dev);

	{
		const char *argv[] = { "gridsync", "--db",   path,
				       "--json",   "status", NULL };

		assert_int_equal(run_cli(argv, out_path, 30), 0);
		slurp(out_path, out, sizeof(out));
		assert_non_null(strstr(out, "\"quarantined\":1"));
	}
	{
		const char *argv[] = { "gridsync", "--db",      path,
				       "--json",   "conflicts", NULL };

		assert_int_equal(run_cli(argv, out_path, 30), 0);
		slurp(out_path, out, sizeof(out));
		assert_non_null(strstr(out, "quarantined"));
	}
	/* The next visit and the next sync are clean. */
	assert_gs_ok(gs_device_open(&dev, ctx, path));
	assert_gs_ok(gs_visit_add(dev, id, &vo));
	gs_device_close(dev);
	{
		const char *argv[] = { "gridsync", "--db",   path, "--json",
				       "sync",     "--once", NULL };

		rc = run_cli(argv, out_path, 20);
		slurp(out_path, out, sizeof(out));
		print_message("second sync: exit %d: %s", rc, out);
		assert_int_equal(rc, 0);
		assert_non_null(strstr(out, "\"ok\":true"));
		assert_non_null(strstr(out, "\"quarantined\":0"));
	}
	assert_int_equal(gs_itest_server_int(&srv, q, devid), 6);
	assert_gs_ok(gs_device_open(&dev, ctx, path));
	assert_int_equal(local_int(dev, "SELECT count(*) FROM visit WHERE"
					" origin IN (SELECT value FROM gs_meta"
					" WHERE key = 'device_id')"),
			 6);
	assert_int_equal(local_int(dev, "SELECT count(*) FROM gs_outbox"), 0);
	gs_device_close(dev);
	assert_int_equal(gs_itest_server_stop(&srv), 0);
	gs_ctx_free(ctx);
	gs_test_tmpdir_free(dir);
}

static void flipped_bit_in_changeset(void **state)
{
	(void)state;
	damaged_entry_is_quarantined(FLIP_CHANGESET);
}

static void flipped_bit_in_hash(void **state)
{
	(void)state;
	damaged_entry_is_quarantined(FLIP_HASH);
}

static void truncated_changeset(void **state)
{
	(void)state;
	damaged_entry_is_quarantined(TRUNCATE);
}

static void trap_bytes_one_byte(void **state)
{
	(void)state;
	damaged_entry_is_quarantined(TRAP_T);
}

static void trap_bytes_table_header(void **state)
{
	(void)state;
	damaged_entry_is_quarantined(TRAP_HEADER);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(flipped_bit_in_changeset),
		cmocka_unit_test(flipped_bit_in_hash),
		cmocka_unit_test(truncated_changeset),
		cmocka_unit_test(trap_bytes_one_byte),
		cmocka_unit_test(trap_bytes_table_header),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
