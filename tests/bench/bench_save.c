/*
 * Save-path benchmark (PERFORMANCE.md): saving one visit through the API
 * (one transaction with capture and the outbox entry) against a plain
 * INSERT of the same row in its own transaction, same schema, same
 * durability mode, in the same run; batches alternate so that machine
 * noise hits both alike. Prints rates, the ratio, and database bytes per
 * 10k visits. Not a test: it never fails on a timing.
 *
 *   build/tests/bench_save [visits-per-batch-at-NORMAL [rounds]]
 */
#include <sys/stat.h>

#include <gridsync/client_internal.h>
#include <gridsync/gridsync.h>
#include <gridsync/hlc.h>
#include <gridsync/synth.h>

#include "gs_test.h"

struct side {
	struct gs_device *dev;
	sqlite3 *db;
	sqlite3_stmt *ins;
	sqlite3_stmt *begin;
	sqlite3_stmt *commit;
	char household[GS_ID_LEN];
	char grid[64];
	char worker[128];
	double seconds;
	long saves;
};

static int first_household(const struct gs_row *row, void *payload)
{
	struct side *s = payload;

	snprintf(s->household, sizeof(s->household), "%s",
		 gs_row_get(row, "id"));
	return 1;
}

static void
open_side(struct side *s, struct gs_ctx *ctx, const char *path, int normal)
{
	struct gs_device_init_opts io = GS_DEVICE_INIT_OPTS_INIT;
	struct gs_status st;
	sqlite3_stmt *q = NULL;

	memset(s, 0, sizeof(*s));
	io.device_id = "bench";
	io.insecure = 1;
	io.demo = 1;
	if (gs_device_init(&s->dev, ctx, path, &io) != GS_OK) {
		fprintf(stderr, "init: %s\n", gs_ctx_errmsg(ctx));
		exit(1);
	}
	gs__device_set_normal(s->dev, normal);
	s->db = gs__device_db(s->dev);
	gs_household_list(s->dev, first_household, s);
	gs_device_status(s->dev, &st);
	snprintf(s->worker, sizeof(s->worker), "%s", st.worker_id);
	sqlite3_prepare_v2(s->db, "SELECT grid_id FROM household WHERE id = ?",
			   -1, &q, NULL);
	sqlite3_bind_text(q, 1, s->household, -1, SQLITE_STATIC);
	sqlite3_step(q);
	snprintf(s->grid, sizeof(s->grid), "%s", sqlite3_column_text(q, 0));
	sqlite3_finalize(q);
	sqlite3_prepare_v2(s->db,
			   "INSERT INTO visit (id, household_id, grid_id,"
			   " worker_id, kind, started_at, outcome, answers,"
			   " summary, hlc, origin, created_at) VALUES"
			   " (?, ?, ?, ?, 'routine', ?, 'met', ?, ?, ?, ?, ?)",
			   -1, &s->ins, NULL);
	sqlite3_prepare_v2(s->db, "BEGIN IMMEDIATE", -1, &s->begin, NULL);
	sqlite3_prepare_v2(s->db, "COMMIT", -1, &s->commit, NULL);
}

static void close_side(struct side *s)
{
	sqlite3_finalize(s->ins);
	sqlite3_finalize(s->begin);
	sqlite3_finalize(s->commit);
	gs_device_close(s->dev);
}

static double now_s(void)
{
	return (double)gs__clock_mono_ns() / 1e9;
}

struct row {
	char summary[GS_SYNTH_TEXT_MAX];
	char answers[GS_SYNTH_TEXT_MAX];
};

/* The plain INSERT: the same row, its own transaction, no capture. */
static void
plain_batch(struct side *s, struct gs_ctx *ctx, struct row *rows, int n)
{
	double t0 = now_s();

	for (int i = 0; i < n; i++) {
		char id[GS_UUID_LEN];
		char now[GS_TIME_LEN];
		char hlc[GS_HLC_TEXT_LEN];
		int64_t ms = gs__clock_wall_ms(ctx);

		gs__uuid7(ctx, id);
		gs__time_format(now, ms);
		gs__hlc_format(hlc, gs__hlc_make(ms, 0));
		sqlite3_step(s->begin);
		sqlite3_reset(s->begin);
		sqlite3_bind_text(s->ins, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_text(s->ins, 2, s->household, -1, SQLITE_STATIC);
		sqlite3_bind_text(s->ins, 3, s->grid, -1, SQLITE_STATIC);
		sqlite3_bind_text(s->ins, 4, s->worker, -1, SQLITE_STATIC);
		sqlite3_bind_text(s->ins, 5, now, -1, SQLITE_STATIC);
		sqlite3_bind_text(s->ins, 6, rows[i].answers, -1,
				  SQLITE_STATIC);
		sqlite3_bind_text(s->ins, 7, rows[i].summary, -1,
				  SQLITE_STATIC);
		sqlite3_bind_text(s->ins, 8, hlc, -1, SQLITE_STATIC);
		sqlite3_bind_text(s->ins, 9, "bench", -1, SQLITE_STATIC);
		sqlite3_bind_text(s->ins, 10, now, -1, SQLITE_STATIC);
		if (sqlite3_step(s->ins) != SQLITE_DONE) {
			fprintf(stderr, "insert: %s\n", sqlite3_errmsg(s->db));
			exit(1);
		}
		sqlite3_reset(s->ins);
		if (sqlite3_step(s->commit) != SQLITE_DONE)
			exit(1);
		sqlite3_reset(s->commit);
	}
	s->seconds += now_s() - t0;
	s->saves += n;
}

static void
api_batch(struct side *s, struct gs_ctx *ctx, struct row *rows, int n)
{
	double t0 = now_s();

	for (int i = 0; i < n; i++) {
		struct gs_visit_opts vo = GS_VISIT_OPTS_INIT;
		char id[GS_ID_LEN];

		vo.household_id = s->household;
		vo.kind = "routine";
		vo.outcome = "met";
		vo.summary = rows[i].summary;
		vo.answers = rows[i].answers;
		if (gs_visit_add(s->dev, id, &vo) != GS_OK) {
			fprintf(stderr, "visit: %s\n", gs_ctx_errmsg(ctx));
			exit(1);
		}
	}
	s->seconds += now_s() - t0;
	s->saves += n;
}

static long file_size(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0 ? (long)sb.st_size : 0;
}

static void run_mode(struct gs_ctx *ctx,
		     const char *dir,
		     int normal,
		     int batch,
		     int rounds,
		     struct row *rows)
{
	struct side plain;
	struct side api;
	char p1[512];
	char p2[512];

	snprintf(p1, sizeof(p1), "%s/plain-%d.db", dir, normal);
	snprintf(p2, sizeof(p2), "%s/api-%d.db", dir, normal);
	open_side(&plain, ctx, p1, normal);
	open_side(&api, ctx, p2, normal);
	/* Warm both (page cache, statement cache). */
	plain_batch(&plain, ctx, rows, 50);
	api_batch(&api, ctx, rows, 50);
	plain.seconds = api.seconds = 0;
	plain.saves = api.saves = 0;
	for (int r = 0; r < rounds; r++) {
		plain_batch(&plain, ctx, rows, batch);
		api_batch(&api, ctx, rows, batch);
	}
	printf("synchronous=%-6s plain INSERT %8.0f saves/s   API save %8.0f "
	       "saves/s   ratio %.2f  (%ld saves each, %d rounds)\n",
	       normal ? "NORMAL" : "FULL", plain.saves / plain.seconds,
	       api.saves / api.seconds,
	       (api.seconds / api.saves) / (plain.seconds / plain.saves),
	       plain.saves, rounds);
	close_side(&plain);
	close_side(&api);
}

/* Bytes the database grows by per 10k visits saved through the API. */
static void bytes_per_10k(struct gs_ctx *ctx, const char *dir, struct row *rows)
{
	struct side s;
	char path[512];
	long before;
	long after;
	sqlite3_stmt *q = NULL;
	long outbox = 0;

	snprintf(path, sizeof(path), "%s/size.db", dir);
	open_side(&s, ctx, path, 1);
	sqlite3_exec(s.db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
	before = file_size(path);
	for (int r = 0; r < 10; r++)
		api_batch(&s, ctx, rows, 1000);
	sqlite3_exec(s.db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
	after = file_size(path);
	sqlite3_prepare_v2(s.db, "SELECT sum(length(changeset)) FROM gs_outbox",
			   -1, &q, NULL);
	if (sqlite3_step(q) == SQLITE_ROW)
		outbox = (long)sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	printf("database growth per 10k visits: %ld bytes (%.0f per visit; "
	       "outbox changesets %ld bytes, %.0f per visit)\n",
	       after - before, (after - before) / 1e4, outbox, outbox / 1e4);
	close_side(&s);
}

int main(int argc, char **argv)
{
	struct gs_ctx *ctx = gs_test_ctx_new(NULL);
	char *dir = gs_test_tmpdir();
	int batch = argc > 1 ? atoi(argv[1]) : 2000; /* checksrc: bench */
	int rounds = argc > 2 ? atoi(argv[2]) : 4;   /* checksrc: bench */
	struct row *rows =
		calloc((size_t)(batch > 1000 ? batch : 1000), sizeof(*rows));
	struct gs_synth_rng rng;
	int n = batch > 1000 ? batch : 1000;

	gs__synth_rng_seed(&rng, 42);
	for (int i = 0; i < n; i++) {
		gs__synth_visit_summary(rows[i].summary,
					sizeof(rows[i].summary), &rng);
		gs__synth_visit_answers(rows[i].answers,
					sizeof(rows[i].answers), &rng);
	}
	printf("save path: one visit per transaction, plain INSERT vs API "
	       "(capture + outbox), same run\n");
	run_mode(ctx, dir, 1, batch, rounds, rows);
	run_mode(ctx, dir, 0, batch / 8 > 0 ? batch / 8 : 1, rounds, rows);
	bytes_per_10k(ctx, dir, rows);
	free(rows);
	gs_ctx_free(ctx);
	gs_test_tmpdir_free(dir);
	return 0;
}
