/*
 * gs-test: timeout=300 labels=crash
 *
 * Crash test: a child process records visits and issues in a loop and is
 * killed with SIGKILL at a random moment, GS_CRASH_KILLS times (200 by
 * default). After every kill: PRAGMA integrity_check is ok, every record
 * whose save had returned is there, and records and outbox entries match
 * one to one (every device-made visit and issue is inserted by exactly one
 * outbox entry, and every entry's rows exist). The random delay before each
 * kill is the point of the test (the kill moment), not a wait for a
 * condition: readiness is signalled through a pipe.
 */
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gridsync/client_internal.h>
#include <gridsync/db.h>
#include <gridsync/gridsync.h>
#include <gridsync/synth.h>

#include "gs_test.h"

#define MAX_IDS 200000

struct idset {
	char (*ids)[GS_ID_LEN];
	size_t n;
};

static void
child(const char *path, const char *household, int fd, uint64_t seed)
{
	struct gs_ctx *ctx = NULL;
	struct gs_device *dev = NULL;
	struct gs_synth_rng rng;
	char summary[GS_SYNTH_TEXT_MAX];
	char line[GS_ID_LEN + 2];

	gs__synth_rng_seed(&rng, seed);
	if (gs_ctx_new(&ctx, NULL) != GS_OK ||
	    gs_device_open(&dev, ctx, path) != GS_OK)
		_exit(3);
	if (write(fd, "R", 1) != 1)
		_exit(4);
	for (unsigned i = 0;; i++) {
		char id[GS_ID_LEN];
		int rc;

		if (i % 5 == 4) {
			struct gs_issue_report_opts ro =
				GS_ISSUE_REPORT_OPTS_INIT;
			struct gs_synth_issue is;

			gs__synth_issue(&is, &rng, NULL);
			ro.category = is.category_code;
			ro.title = is.title;
			ro.description = is.description;
			ro.household_id = household;
			rc = gs_issue_report(dev, id, &ro);
		} else {
			struct gs_visit_opts vo = GS_VISIT_OPTS_INIT;

			gs__synth_visit_summary(summary, sizeof(summary), &rng);
			vo.household_id = household;
			vo.kind = "routine";
			vo.outcome = "met";
			vo.summary = summary;
			rc = gs_visit_add(dev, id, &vo);
		}
		if (rc != GS_OK)
			_exit(5);
		/* The save has returned: from here on it must survive. */
		snprintf(line, sizeof(line), "%s\n", id);
		if (write(fd, line, strlen(line)) != (ssize_t)strlen(line))
			_exit(6);
	}
}

static int first_household(const struct gs_row *row, void *payload)
{
	snprintf(payload, GS_ID_LEN, "%s", gs_row_get(row, "id"));
	return 1;
}

/* Read whatever the child wrote; ids are whole lines (writes below
 * PIPE_BUF are atomic). */
static void drain(int fd, struct idset *acked, char *partial, size_t *plen)
{
	char buf[4096];
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == '\n') {
				partial[*plen] = '\0';
				if (*plen == GS_ID_LEN - 1) {
					assert_true(acked->n < MAX_IDS);
					memcpy(acked->ids[acked->n++], partial,
					       GS_ID_LEN);
				}
				*plen = 0;
			} else if (buf[i] != 'R' || *plen > 0) {
				if (*plen < GS_ID_LEN)
					partial[(*plen)++] = buf[i];
			}
		}
	}
}

static int64_t scalar(sqlite3 *db, const char *sql, const char *arg)
{
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

/*
 * Outbox <-> records, one to one, using SQLite's iterator on the
 * changesets this device captured itself (trusted bytes). What earlier
 * kills already saw is kept in an attached scratch database, so each round
 * reads only the entries added since.
 */
static void check_bijection(sqlite3 *db, const char *seen_path)
{
	sqlite3_stmt *st = NULL;
	sqlite3_stmt *ins = NULL;
	char sql[4200];

	snprintf(sql, sizeof(sql), "ATTACH '%s' AS t", seen_path);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
				      "CREATE TABLE IF NOT EXISTS t.seen"
				      " (tbl TEXT, id TEXT, seq INTEGER,"
				      " PRIMARY KEY (tbl, id, seq));",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db,
					    "SELECT seq, changeset FROM"
					    " gs_outbox WHERE seq > (SELECT"
					    " ifnull(max(seq), 0) FROM t.seen)",
					    -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db,
					    "INSERT INTO t.seen VALUES (?, ?,"
					    " ?)",
					    -1, &ins, NULL),
			 SQLITE_OK);
	sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
	while (sqlite3_step(st) == SQLITE_ROW) {
		sqlite3_changeset_iter *it = NULL;
		int64_t seq = sqlite3_column_int64(st, 0);

		assert_int_equal(sqlite3changeset_start(
					 &it, sqlite3_column_bytes(st, 1),
					 (void *)sqlite3_column_blob(st, 1)),
				 SQLITE_OK);
		while (sqlite3changeset_next(it) == SQLITE_ROW) {
			const char *tab;
			sqlite3_value *v = NULL;
			int ncol, op, ind;

			sqlite3changeset_op(it, &tab, &ncol, &op, &ind);
			assert_int_equal(op, SQLITE_INSERT);
			sqlite3changeset_new(it, 0, &v);
			sqlite3_bind_text(ins, 1, tab, -1, SQLITE_TRANSIENT);
			sqlite3_bind_value(ins, 2, v);
			sqlite3_bind_int64(ins, 3, seq);
			/* A duplicate (tbl, id) under another seq is caught
			 * below; the same triple twice would fail here. */
			assert_int_equal(sqlite3_step(ins), SQLITE_DONE);
			sqlite3_reset(ins);
		}
		sqlite3changeset_finalize(it);
	}
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	sqlite3_finalize(ins);
	sqlite3_finalize(st);
	/* No id inserted by two entries. */
	assert_int_equal(scalar(db,
				"SELECT count(*) FROM (SELECT 1 FROM t.seen"
				" GROUP BY tbl, id HAVING count(*) > 1)",
				NULL),
			 0);
	/* Every device-made record has its entry, and every entry's rows
	 * exist: the counts match and no seen id is missing. */
	assert_int_equal(scalar(db,
				"SELECT (SELECT count(*) FROM visit WHERE"
				" origin <> 'server') - (SELECT count(*) FROM"
				" t.seen WHERE tbl = 'visit')",
				NULL),
			 0);
	assert_int_equal(scalar(db,
				"SELECT (SELECT count(*) FROM issue) - (SELECT"
				" count(*) FROM t.seen WHERE tbl = 'issue')",
				NULL),
			 0);
	assert_int_equal(scalar(db,
				"SELECT (SELECT count(*) FROM issue_event) -"
				" (SELECT count(*) FROM t.seen WHERE tbl ="
				" 'issue_event')",
				NULL),
			 0);
	assert_int_equal(scalar(db,
				"SELECT count(*) FROM t.seen s WHERE NOT EXISTS"
				" (SELECT 1 FROM visit WHERE s.tbl = 'visit'"
				" AND id = s.id UNION ALL SELECT 1 FROM issue"
				" WHERE s.tbl = 'issue' AND id = s.id UNION ALL"
				" SELECT 1 FROM issue_event WHERE s.tbl ="
				" 'issue_event' AND id = s.id)",
				NULL),
			 0);
	assert_int_equal(sqlite3_exec(db, "DETACH t", NULL, NULL, NULL),
			 SQLITE_OK);
}

static void killed_at_random_moments_loses_nothing(void **state)
{
	struct gs_ctx *ctx = gs_test_ctx_new(NULL);
	char *dir = gs_test_tmpdir();
	char path[4096];
	char seen_path[4096];
	struct gs_device_init_opts io = GS_DEVICE_INIT_OPTS_INIT;
	struct gs_device *dev = NULL;
	struct idset acked = { calloc(MAX_IDS, GS_ID_LEN), 0 };
	char household[GS_ID_LEN];
	const char *env = getenv("GS_CRASH_KILLS");
	int kills = env != NULL ? atoi(env) : 200; /* checksrc: test */
	uint64_t seed = gs_test_seed("crash");
	size_t checked = 0;

	(void)state;
	snprintf(path, sizeof(path), "%s", gs_test_path(dir, "crash.db"));
	snprintf(seen_path, sizeof(seen_path), "%s",
		 gs_test_path(dir, "seen.db"));
	io.device_id = "crash-dev";
	io.insecure = 1;
	io.demo = 1;
	assert_gs_ok(gs_device_init(&dev, ctx, path, &io));
	assert_int_equal(gs_household_list(dev, first_household, household), 1);
	gs_device_close(dev);
	{
		/* The scratch database check_bijection attaches. */
		sqlite3 *seen = NULL;

		assert_int_equal(sqlite3_open(seen_path, &seen), SQLITE_OK);
		sqlite3_close(seen);
	}

	for (int k = 0; k < kills; k++) {
		int fds[2];
		char partial[GS_ID_LEN + 1];
		size_t plen = 0;
		char ready = 0;
		struct timespec ts;
		sqlite3 *db = NULL;
		sqlite3_stmt *st = NULL;
		pid_t pid;
		int status;

		assert_int_equal(pipe(fds), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(fds[0]);
			child(path, household, fds[1], seed + (uint64_t)k);
		}
		close(fds[1]);
		assert_int_equal(read(fds[0], &ready, 1), 1);
		assert_int_equal(ready, 'R');
		ts.tv_sec = 0;
		ts.tv_nsec = (long)(gs_test_rand(&seed) % 25000000u);
		nanosleep(&ts, NULL);
		kill(pid, SIGKILL);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status));
		drain(fds[0], &acked, partial, &plen);
		close(fds[0]);

		assert_gs_ok(gs__db_open(&db, ctx, path, 0));
		assert_int_equal(sqlite3_prepare_v2(db,
						    "PRAGMA integrity_check",
						    -1, &st, NULL),
				 SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_string_equal(sqlite3_column_text(st, 0), "ok");
		sqlite3_finalize(st);
		/* Saves acknowledged before this kill; earlier ones were
		 * checked after their own kill and are re-checked at the
		 * end. */
		for (size_t i = checked; i < acked.n; i++)
			if (scalar(db,
				   "SELECT (SELECT count(*) FROM visit WHERE"
				   " id = ?1) + (SELECT count(*) FROM issue"
				   " WHERE id = ?1)",
				   acked.ids[i]) != 1)
				fail_msg("kill %d: saved record %s is lost", k,
					 acked.ids[i]);
		checked = acked.n;
		check_bijection(db, seen_path);
		if (k == kills - 1)
			for (size_t i = 0; i < acked.n; i++)
				assert_int_equal(
					scalar(db,
					       "SELECT (SELECT count(*) FROM"
					       " visit WHERE id = ?1) + (SELECT"
					       " count(*) FROM issue WHERE id ="
					       " ?1)",
					       acked.ids[i]),
					1);
		gs__db_close(db);
	}
	fprintf(stderr, "# %d kills, %zu saves acknowledged and kept\n", kills,
		acked.n);
	assert_true(acked.n > 0);
	free(acked.ids);
	gs_ctx_free(ctx);
	gs_test_tmpdir_free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(killed_at_random_moments_loses_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
