/*
 * Journal throughput (DESIGN.md trap 9): uploads per second that
 * gs__journal_sync appends, fsync on, with groups of 1, 16 and 256
 * uploads per commit; and, in the same run, the plain libgit2 way (loose
 * objects, one commit per group through git_commit_create with the ref)
 * on the same data, as the reference the pack-per-group design is
 * measured against. 334-byte changesets (PERFORMANCE.md S1), 50 devices.
 * Not a test: it never fails on a timing.
 *
 *   build/tests/bench_journal [uploads-per-size (default 1024)]
 *   (GS_BENCH_NO_PLAIN=1 skips the reference, e.g. under perf)
 */
#include <git2.h>

#include <gridsync/db.h>
#include <gridsync/journal.h>

#include "gs_test.h"

#define CS_LEN 334

static const char table_sql[] =
	"CREATE TABLE srv_received (id INTEGER PRIMARY KEY,"
	" device_id TEXT NOT NULL, device_seq INTEGER NOT NULL,"
	" sha256 BLOB NOT NULL, hlc INTEGER NOT NULL, changeset BLOB NOT NULL,"
	" result INTEGER NOT NULL, reject_code INTEGER NOT NULL DEFAULT 0,"
	" reason TEXT, server_seq_first INTEGER, server_seq_last INTEGER,"
	" received_at INTEGER NOT NULL, journaled INTEGER NOT NULL DEFAULT 0,"
	" UNIQUE (device_id, device_seq));"
	"CREATE INDEX srv_received_unjournaled ON srv_received(id)"
	" WHERE journaled = 0;";

static void die(const char *what, struct gs_ctx *ctx)
{
	fprintf(stderr, "%s: %s\n", what, gs_ctx_errmsg(ctx));
	exit(1);
}

static void cs_of(uint8_t *cs, long i, uint64_t *rnd)
{
	for (size_t k = 0; k < CS_LEN; k++)
		cs[k] = (uint8_t)gs_test_rand(rnd);
	memcpy(cs, &i, sizeof(i)); /* every changeset distinct */
}

static sqlite3 *store(struct gs_ctx *ctx, const char *path, long n)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	uint64_t rnd = 42;
	uint8_t cs[CS_LEN];
	uint8_t sha[GS_SHA256_LEN];
	char dev[32];

	if (gs__db_open(&db, ctx, path, GS_DB_CREATE) != GS_OK ||
	    gs__db_exec(ctx, db, table_sql) != GS_OK ||
	    gs__db_exec(ctx, db, "BEGIN") != GS_OK)
		die("store", ctx);
	sqlite3_prepare_v2(db,
			   "INSERT INTO srv_received (id, device_id,"
			   " device_seq, sha256, hlc, changeset, result,"
			   " server_seq_first, server_seq_last, received_at)"
			   " VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?7, ?8)",
			   -1, &st, NULL);
	for (long i = 1; i <= n; i++) {
		cs_of(cs, i, &rnd);
		gs__sha256(sha, cs, sizeof(cs));
		snprintf(dev, sizeof(dev), "device-%02ld", i % 50);
		sqlite3_bind_int64(st, 1, i);
		sqlite3_bind_text(st, 2, dev, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 3, i / 50 + 1);
		sqlite3_bind_blob(st, 4, sha, sizeof(sha), SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 5, i << 16);
		sqlite3_bind_blob(st, 6, cs, sizeof(cs), SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 7, i);
		sqlite3_bind_int64(st, 8, 1740817800000LL + i);
		if (sqlite3_step(st) != SQLITE_DONE)
			die("insert", ctx);
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	if (gs__db_exec(ctx, db, "COMMIT") != GS_OK)
		die("commit", ctx);
	return db;
}

static double now_s(void)
{
	return (double)gs__clock_mono_ns() / 1e9;
}

/* The reference: loose objects with fsync, ref moved by the commit. */
static double plain_libgit2(const char *dir, long n, long group)
{
	git_repository *r = NULL;
	git_signature *sig = NULL;
	git_tree *base = NULL;
	git_commit *parent = NULL;
	git_tree_update *ups = calloc((size_t)(2 * group), sizeof(*ups));
	char(*paths)[128] = calloc((size_t)(2 * group), sizeof(*paths));
	uint64_t rnd = 42;
	uint8_t cs[CS_LEN];
	double t0;

	git_libgit2_opts(GIT_OPT_ENABLE_FSYNC_GITDIR, 1);
	if (git_repository_init(&r, dir, 1) != 0 ||
	    git_signature_new(&sig, "bench", "bench@localhost", 1, 0) != 0)
		exit(1);
	t0 = now_s();
	for (long i = 1; i <= n;) {
		long k = 0;
		git_oid tid;
		git_oid cid;
		git_tree *t = NULL;
		const git_commit *parents[1] = { parent };

		for (; k < group && i <= n; k++, i++) {
			char meta[64];

			cs_of(cs, i, &rnd);
			snprintf(meta, sizeof(meta), "upload %ld\n", i);
			snprintf(paths[2 * k], sizeof(paths[0]),
				 "u/%02ld/%020ld.changeset", i % 50, i);
			snprintf(paths[2 * k + 1], sizeof(paths[0]),
				 "u/%02ld/%020ld.meta", i % 50, i);
			ups[2 * k].action = GIT_TREE_UPDATE_UPSERT;
			ups[2 * k].filemode = GIT_FILEMODE_BLOB;
			ups[2 * k].path = paths[2 * k];
			ups[2 * k + 1] = ups[2 * k];
			ups[2 * k + 1].path = paths[2 * k + 1];
			if (git_blob_create_from_buffer(&ups[2 * k].id, r, cs,
							sizeof(cs)) != 0 ||
			    git_blob_create_from_buffer(&ups[2 * k + 1].id, r,
							meta,
							strlen(meta)) != 0)
				exit(1);
		}
		if (git_tree_create_updated(&tid, r, base, (size_t)(2 * k),
					    ups) != 0 ||
		    git_tree_lookup(&t, r, &tid) != 0 ||
		    git_commit_create(&cid, r, "HEAD", sig, sig, NULL,
				      "bench\n", t, parent != NULL ? 1 : 0,
				      parents) != 0)
			exit(1);
		git_tree_free(base);
		base = t;
		git_commit_free(parent);
		if (git_commit_lookup(&parent, r, &cid) != 0)
			exit(1);
	}
	t0 = now_s() - t0;
	git_commit_free(parent);
	git_tree_free(base);
	git_signature_free(sig);
	git_repository_free(r);
	free(ups);
	free(paths);
	return t0;
}

int main(int argc, char **argv)
{
	static const long groups[] = { 1, 16, 256 };
	long n = argc > 1 ? strtol(argv[1], NULL, 10) : 1024;
	struct gs_ctx *ctx = gs_test_ctx_new(NULL);

	if (n <= 0) {
		fprintf(stderr, "usage: bench_journal [uploads-per-size]\n");
		return 2;
	}
	git_libgit2_init();
	printf("journal sync, fsync on, %d-byte changesets, %ld uploads per "
	       "size\n",
	       CS_LEN, n);
	printf("%8s %14s %12s %16s %10s\n", "group", "uploads/s", "ms/commit",
	       "plain uploads/s", "ratio");
	for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
		char *dir = gs_test_tmpdir();
		struct gs_journal *j = NULL;
		sqlite3 *db = store(ctx, gs_test_path(dir, "s.db"), n);
		size_t done = 0;
		long commits = (n + groups[g] - 1) / groups[g];
		double t;
		double plain;

		if (gs__journal_open(&j, ctx, gs_test_path(dir, "j.git")) !=
		    GS_OK)
			die("open", ctx);
		t = now_s();
		if (gs__journal_sync(j, db, (size_t)groups[g], &done) != GS_OK)
			die("sync", ctx);
		t = now_s() - t;
		if (done != (size_t)n)
			die("count", ctx);
		gs__journal_close(j);
		gs__db_close(db);
		plain = getenv("GS_BENCH_NO_PLAIN") != NULL
				? t
				: plain_libgit2(gs_test_path(dir, "plain.git"),
						n, groups[g]);
		printf("%8ld %14.0f %12.2f %16.0f %9.1fx\n", groups[g],
		       (double)n / t, 1e3 * t / (double)commits,
		       (double)n / plain, plain / t);
		gs_test_tmpdir_free(dir);
	}
	git_libgit2_shutdown();
	gs_ctx_free(ctx);
	return 0;
}
