/*
 * How long the synthetic data generator takes, and what it makes.
 *
 *   bench_synth [district|demo] [--seed N] [--cache-mib N] [--scoped]
 *               [--keep]
 *
 * Generates the profile (district by default) into a fresh file database
 * in a temporary directory (kept with --keep), with the connection as
 * gs__db_open leaves it (WAL, synchronous=FULL) plus a page cache of
 * --cache-mib MiB (default 256; 0 keeps SQLite's default), checkpoints
 * the WAL, and prints seconds, rows per table, bytes and the shape of the
 * population. --scoped also generates the handheld database of the first
 * micro-grid's responsible worker (what B1 bootstraps to).
 */
#include <sys/stat.h>

#include <gridsync/db.h>
#include <gridsync/synth.h>

#include "gs_test.h"

static int64_t q_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int64_t v = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static double secs(uint64_t t0)
{
	return (double)(gs__clock_mono_ns() - t0) / 1e9;
}

static long long file_size(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
}

/* Generate into path; returns the open database or NULL. */
static sqlite3 *run(struct gs_ctx *ctx,
		    const char *path,
		    const struct gs_synth_opts *o,
		    int cache_mib,
		    struct gs_synth_stats *s)
{
	sqlite3 *db = NULL;
	uint64_t t0;
	int rc;

	if (gs__db_open(&db, ctx, path, GS_DB_CREATE) != GS_OK ||
	    gs__db_migrate(ctx, db) != GS_OK) {
		fprintf(stderr, "open: %s\n", gs_ctx_errmsg(ctx));
		gs__db_close(db);
		return NULL;
	}
	if (cache_mib > 0) {
		char pragma[64];

		snprintf(pragma, sizeof(pragma), "PRAGMA cache_size=-%d",
			 cache_mib * 1024);
		gs__db_exec(ctx, db, pragma);
	}
	t0 = gs__clock_mono_ns();
	rc = gs__synth_generate(ctx, db, o, s);
	if (rc != GS_OK) {
		fprintf(stderr, "generate: %s: %s\n", gs_errname(rc),
			gs_ctx_errmsg(ctx));
		gs__db_close(db);
		return NULL;
	}
	printf("generate            %8.2f s  (%zu rows, %.0f rows/s)\n",
	       secs(t0), s->total, (double)s->total / secs(t0));
	t0 = gs__clock_mono_ns();
	gs__db_exec(ctx, db, "PRAGMA wal_checkpoint(TRUNCATE)");
	printf("checkpoint          %8.2f s\n", secs(t0));
	printf("file                %8.1f MiB (%lld bytes)\n",
	       (double)file_size(path) / 1048576.0, file_size(path));
	return db;
}

static void print_shape(sqlite3 *db)
{
	static const char *const tables[] = {
		"admin_area", "grid",         "place",           "dwelling",
		"org",        "worker",       "assignment",      "category",
		"tag_def",    "sla_policy",   "transition_rule", "household",
		"resident",   "resident_tag",
	};
	char sql[256];
	int64_t n;
	sqlite3_stmt *st = NULL;

	for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s",
			 tables[i]);
		printf("  %-16s %9lld\n", tables[i], (long long)q_int(db, sql));
	}
	n = q_int(db, "SELECT count(*) FROM resident");
	if (n <= 0)
		return;
	printf("residents per household   %.3f\n",
	       (double)n / (double)q_int(db, "SELECT count(*) FROM household"));
	printf("micro-grids / general     %lld / %lld, households per micro "
	       "%.1f\n",
	       (long long)q_int(db, "SELECT count(*) FROM grid WHERE level ="
				    " 'micro'"),
	       (long long)q_int(db, "SELECT count(*) FROM grid WHERE level ="
				    " 'general'"),
	       (double)q_int(db, "SELECT count(*) FROM household") /
		       (double)q_int(db, "SELECT count(*) FROM grid WHERE"
					 " level = 'micro'"));
	/* Ages at the start date (2025-01-01 by default). */
	printf("ages 0-14 %.1f%%  15-59 %.1f%%  60+ %.1f%%  65+ %.1f%%  "
	       "80+ %.1f%%\n",
	       100.0 *
		       (double)q_int(db, "SELECT count(*) FROM resident WHERE"
					 " birth_date > '2010-01-01'") /
		       (double)n,
	       100.0 *
		       (double)q_int(db, "SELECT count(*) FROM resident WHERE"
					 " birth_date <= '2010-01-01' AND"
					 " birth_date > '1965-01-01'") /
		       (double)n,
	       100.0 *
		       (double)q_int(db, "SELECT count(*) FROM resident WHERE"
					 " birth_date <= '1965-01-01'") /
		       (double)n,
	       100.0 *
		       (double)q_int(db, "SELECT count(*) FROM resident WHERE"
					 " birth_date <= '1960-01-01'") /
		       (double)n,
	       100.0 *
		       (double)q_int(db, "SELECT count(*) FROM resident WHERE"
					 " birth_date <= '1945-01-01'") /
		       (double)n);
	printf("top-5 surnames %.1f%%, compound %.2f%%, 2-char given %.1f%%\n",
	       100.0 *
		       (double)q_int(db, "SELECT count(*) FROM resident WHERE"
					 " substr(name, 1, 1) IN ('王', '李',"
					 " '张', '刘', '陈')") /
		       (double)n,
	       100.0 *
		       (double)q_int(db,
				     "SELECT count(*) FROM resident WHERE"
				     " substr(name, 1, 2) IN ('欧阳', '上官',"
				     " '司马', '诸葛', '司徒', '东方',"
				     " '皇甫', '令狐', '慕容')") /
		       (double)n,
	       100.0 *
		       (double)q_int(db, "SELECT count(*) FROM resident WHERE"
					 " length(name) = 3 OR (length(name) ="
					 " 4 AND substr(name, 1, 2) IN ('欧阳',"
					 " '上官', '司马', '诸葛', '司徒',"
					 " '东方', '皇甫', '令狐', '慕容'))") /
		       (double)n);
	if (sqlite3_prepare_v2(db,
			       "SELECT tag_code, count(*) FROM resident_tag"
			       " GROUP BY 1 ORDER BY 2 DESC",
			       -1, &st, NULL) == SQLITE_OK) {
		printf("tags per 1000 residents:");
		while (sqlite3_step(st) == SQLITE_ROW)
			printf(" %s %.1f",
			       (const char *)sqlite3_column_text(st, 0),
			       1000.0 * (double)sqlite3_column_int64(st, 1) /
				       (double)n);
		printf("\n");
	}
	sqlite3_finalize(st);
	printf("workers by role:");
	if (sqlite3_prepare_v2(db,
			       "SELECT role, count(*) FROM worker GROUP BY 1",
			       -1, &st, NULL) == SQLITE_OK)
		while (sqlite3_step(st) == SQLITE_ROW)
			printf(" %s %lld",
			       (const char *)sqlite3_column_text(st, 0),
			       (long long)sqlite3_column_int64(st, 1));
	sqlite3_finalize(st);
	printf("\n");
}

int main(int argc, char **argv)
{
	struct gs_synth_opts o = GS_SYNTH_OPTS_INIT;
	struct gs_synth_stats s;
	struct gs_ctx *ctx = NULL;
	char worker[GS_UUID_LEN];
	char hash[65];
	bool keep = false;
	bool scoped = false;
	int cache_mib = 256;
	sqlite3 *db;
	char *dir;

	o.profile = GS_SYNTH_DISTRICT;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "demo") == 0)
			o.profile = GS_SYNTH_DEMO;
		else if (strcmp(argv[i], "district") == 0)
			o.profile = GS_SYNTH_DISTRICT;
		else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
			o.seed = strtoull(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--cache-mib") == 0 && i + 1 < argc)
			cache_mib = (int)strtol(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--scoped") == 0)
			scoped = true;
		else if (strcmp(argv[i], "--keep") == 0)
			keep = true;
		else {
			fprintf(stderr,
				"usage: %s [district|demo] [--seed N] "
				"[--cache-mib N] [--scoped] [--keep]\n",
				argv[0]);
			return 2;
		}
	}
	if (keep)
		setenv("GS_TEST_KEEP", "1", 1);
	if (gs_ctx_new(&ctx, NULL) != GS_OK)
		return 1;
	gs_ctx_set_log(ctx, gs_log_stderr, GS_LOG_INFO, NULL);
	dir = gs_test_tmpdir();
	printf("profile %s, seed %llu, cache %d MiB, %s\n",
	       o.profile == GS_SYNTH_DEMO ? "demo" : "district",
	       (unsigned long long)o.seed, cache_mib, dir);
	db = run(ctx, gs_test_path(dir, "server.sqlite"), &o, cache_mib, &s);
	if (db == NULL)
		return 1;
	print_shape(db);
	if (gs__db_content_hash(ctx, db, hash) == GS_OK)
		printf("content hash %s\n", hash);
	if (scoped && gs__synth_pick_worker(ctx, db, "GW", "responsible",
					    worker) == GS_OK) {
		sqlite3 *dev;

		gs__db_close(db);
		printf("\nhandheld of worker %s\n", worker);
		o.scope_worker_id = worker;
		dev = run(ctx, gs_test_path(dir, "device.sqlite"), &o,
			  cache_mib, &s);
		if (dev == NULL)
			return 1;
		print_shape(dev);
		gs__db_close(dev);
	} else {
		gs__db_close(db);
	}
	gs_test_tmpdir_free(dir);
	gs_ctx_free(ctx);
	return 0;
}
