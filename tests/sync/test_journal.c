/*
 * The libgit2 journal against a real bare repository and a real SQLite
 * store table: uploads appended in groups and verified; stock git (fsck,
 * log, ls-tree) agrees; both crash windows recover without a duplicate
 * and with the identical tree and commit; tampering with the store or
 * with the git history is caught; tree paths never carry device text;
 * libgit2 really fsyncs; every allocation failure is clean.
 *
 * gs-test: timeout=240
 */
#include <git2.h>
#include <limits.h>
#include <regex.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gridsync/db.h>
#include <gridsync/journal.h>

#include "gs_test.h"

extern char **environ;

/* Copied from the store's definition (the brief's srv_received.sql). */
static const char srv_received_sql[] =
	"CREATE TABLE IF NOT EXISTS srv_received ("
	"  id INTEGER PRIMARY KEY,"
	"  device_id TEXT NOT NULL,"
	"  device_seq INTEGER NOT NULL,"
	"  sha256 BLOB NOT NULL,"
	"  hlc INTEGER NOT NULL,"
	"  changeset BLOB NOT NULL,"
	"  result INTEGER NOT NULL,"
	"  reject_code INTEGER NOT NULL DEFAULT 0,"
	"  reason TEXT,"
	"  server_seq_first INTEGER,"
	"  server_seq_last INTEGER,"
	"  received_at INTEGER NOT NULL,"
	"  journaled INTEGER NOT NULL DEFAULT 0,"
	"  UNIQUE (device_id, device_seq));"
	"CREATE INDEX IF NOT EXISTS srv_received_unjournaled"
	"  ON srv_received(id) WHERE journaled = 0;";

/* ---- fsync probe ---------------------------------------------------------
 * libgit2 calls fsync() through the PLT, so this definition (exported from
 * the executable) sees every call; it counts those on files under
 * probe_dir and forwards to the kernel. */

static char probe_dir[2 * PATH_MAX];
static long probe_hits;

/* Default visibility: the build hides symbols, and a hidden definition
 * would not be the one libgit2 binds to. */
__attribute__((visibility("default"))) int fsync(int fd)
{
	if (probe_dir[0] != '\0') {
		char link[64];
		char path[PATH_MAX];
		ssize_t n;

		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		n = readlink(link, path, sizeof(path) - 1);
		if (n > 0) {
			path[n] = '\0';
			if (strncmp(path, probe_dir, strlen(probe_dir)) == 0)
				probe_hits++;
		}
	}
	return (int)syscall(SYS_fsync, fd);
}

/* ---- fixture ------------------------------------------------------------ */

struct fx {
	struct gs_test_alloc alloc;
	struct gs_ctx *ctx;
	char *dir;
	char repo[PATH_MAX + 32];
	sqlite3 *db;
	struct gs_journal *j;
};

static sqlite3 *store_new(struct gs_ctx *ctx, const char *path)
{
	sqlite3 *db = NULL;

	assert_gs_ok(gs__db_open(&db, ctx, path, GS_DB_CREATE));
	assert_gs_ok(gs__db_exec(ctx, db, srv_received_sql));
	return db;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char real[PATH_MAX];

	/* Stock git must not read the developer's configuration. */
	setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
	setenv("GIT_CONFIG_GLOBAL", "/dev/null", 1);
	git_libgit2_init();
	f->ctx = gs_test_ctx_new(&f->alloc);
	assert_non_null(f->ctx);
	f->dir = gs_test_tmpdir();
	assert_non_null(realpath(f->dir, real));
	snprintf(f->repo, sizeof(f->repo), "%s/journal.git", real);
	f->db = store_new(f->ctx, gs_test_path(f->dir, "store.db"));
	assert_gs_ok(gs__journal_open(&f->j, f->ctx, f->repo));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	gs__journal_close(f->j);
	gs__db_close(f->db);
	assert_int_equal(f->alloc.live, 1); /* the ctx itself */
	gs_ctx_free(f->ctx);
	gs_test_tmpdir_free(f->dir);
	git_libgit2_shutdown();
	free(f);
	return 0;
}

/* One judged upload as the store writes it. first < 0: no server_seq. */
static void add_upload_len(sqlite3 *db,
			   int64_t id,
			   const char *device,
			   size_t device_len,
			   int64_t seq,
			   const void *cs,
			   size_t cs_len,
			   int result,
			   int64_t first,
			   int64_t last,
			   int64_t received_at)
{
	uint8_t sha[GS_SHA256_LEN];
	sqlite3_stmt *st = NULL;

	gs__sha256(sha, cs, cs_len);
	assert_int_equal(
		sqlite3_prepare_v2(
			db,
			"INSERT INTO srv_received (id, device_id, device_seq,"
			" sha256, hlc, changeset, result, reject_code,"
			" server_seq_first, server_seq_last, received_at)"
			" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
			"?11)",
			-1, &st, NULL),
		SQLITE_OK);
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, device, (int)device_len, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 3, seq);
	sqlite3_bind_blob(st, 4, sha, sizeof(sha), SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 5, (received_at << 16) | seq);
	sqlite3_bind_blob(st, 6, cs, (int)cs_len, SQLITE_TRANSIENT);
	sqlite3_bind_int(st, 7, result);
	sqlite3_bind_int(st, 8, result == 3 ? 7 : 0);
	if (first >= 0) {
		sqlite3_bind_int64(st, 9, first);
		sqlite3_bind_int64(st, 10, last);
	}
	sqlite3_bind_int64(st, 11, received_at);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
}

/* Upload id of device: a changeset of 40-300 bytes derived from id. */
static void add_upload(sqlite3 *db, int64_t id, const char *device, int64_t seq)
{
	uint8_t cs[300];
	size_t len = 40 + (size_t)(id * 37 % 260);

	for (size_t i = 0; i < len; i++)
		cs[i] = (uint8_t)(id * 131 + i * 7);
	if (id % 4 == 3)
		add_upload_len(db, id, device, strlen(device), seq, cs, len, 3,
			       -1, -1, 1740817800000LL + id * 1500);
	else
		add_upload_len(db, id, device, strlen(device), seq, cs, len, 1,
			       id * 10, id * 10 + 4,
			       1740817800000LL + id * 1500);
}

static void exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
}

static long count_rows(sqlite3 *db, const char *where)
{
	char sql[256];
	sqlite3_stmt *st = NULL;
	long n;

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM srv_received WHERE %s",
		 where);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	n = (long)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

static size_t sync_ok(struct fx *f, size_t max)
{
	size_t n = 12345;

	assert_gs_ok(gs__journal_sync(f->j, f->db, max, &n));
	return n;
}

static struct gs_journal_report verify_ok(struct fx *f)
{
	struct gs_journal_report r;
	int rc = gs__journal_verify(f->j, f->db, &r);

	if (rc != GS_OK)
		fail_msg("verify: %s: %s", gs_errname(rc),
			 gs_ctx_errmsg(f->ctx));
	return r;
}

static struct gs_journal_report verify_corrupt(struct fx *f)
{
	struct gs_journal_report r;

	assert_gs_err(gs__journal_verify(f->j, f->db, &r), GS_ECORRUPT);
	print_message("detected: %s\n", gs_ctx_errmsg(f->ctx));
	return r;
}

/* ---- libgit2 and stock git helpers --------------------------------------- */

static git_repository *repo_open(struct fx *f)
{
	git_repository *r = NULL;

	assert_int_equal(git_repository_open_bare(&r, f->repo), 0);
	return r;
}

static bool head_id(struct fx *f, git_oid *out)
{
	git_repository *r = repo_open(f);
	int rc = git_reference_name_to_id(out, r, GS_JOURNAL_REF);

	git_repository_free(r);
	return rc == 0;
}

static void head_tree_id(struct fx *f, git_oid *out)
{
	git_repository *r = repo_open(f);
	git_commit *c = NULL;
	git_oid id;

	assert_int_equal(git_reference_name_to_id(&id, r, GS_JOURNAL_REF), 0);
	assert_int_equal(git_commit_lookup(&c, r, &id), 0);
	git_oid_cpy(out, git_commit_tree_id(c));
	git_commit_free(c);
	git_repository_free(r);
}

/* Run git with args (NULL-terminated) on the journal; stdout and stderr
 * into out (NUL-terminated). Returns the exit status. */
static int run_git(struct fx *f, char *out, size_t cap, ...)
{
	char gitdir[2 * PATH_MAX];
	char *argv[16];
	int argc = 0;
	posix_spawn_file_actions_t fa;
	int pfd[2];
	pid_t pid;
	size_t len = 0;
	ssize_t n;
	int status = -1;
	va_list ap;

	snprintf(gitdir, sizeof(gitdir), "--git-dir=%s", f->repo);
	argv[argc++] = "git";
	argv[argc++] = gitdir;
	va_start(ap, cap);
	while (argc < 15 && (argv[argc] = va_arg(ap, char *)) != NULL)
		argc++;
	va_end(ap);
	argv[argc] = NULL;
	assert_int_equal(pipe(pfd), 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
	posix_spawn_file_actions_addclose(&fa, pfd[0]);
	assert_int_equal(posix_spawnp(&pid, "git", &fa, NULL, argv, environ),
			 0);
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	while ((n = read(pfd[0], out + len, cap - 1 - len)) > 0)
		len += (size_t)n;
	out[len] = '\0';
	close(pfd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static size_t count_lines(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		n += *s == '\n';
	return n;
}

static void git_fsck_clean(struct fx *f)
{
	static char out[1 << 16];
	int st = run_git(f, out, sizeof(out), "fsck", "--full", "--strict",
			 "--no-progress", "--no-dangling", (char *)NULL);

	if (st != 0 || out[0] != '\0')
		fail_msg("git fsck exit %d:\n%s", st, out);
}

static size_t count_packs(struct fx *f)
{
	static char out[1 << 16];
	const char *p;
	char *end = NULL;
	unsigned long n;

	assert_int_equal(run_git(f, out, sizeof(out), "count-objects", "-v",
				 (char *)NULL),
			 0);
	p = strstr(out, "packs: ");
	assert_non_null(p);
	n = strtoul(p + 7, &end, 10);
	assert_true(end != p + 7 && *end == '\n');
	return (size_t)n;
}

/* Set the branch to its parent (a crash before the ref update). */
static void ref_to_parent(struct fx *f)
{
	git_repository *r = repo_open(f);
	git_reference *ref = NULL;
	git_commit *c = NULL;
	git_oid id;

	assert_int_equal(git_reference_name_to_id(&id, r, GS_JOURNAL_REF), 0);
	assert_int_equal(git_commit_lookup(&c, r, &id), 0);
	assert_int_equal(git_reference_create(&ref, r, GS_JOURNAL_REF,
					      git_commit_parent_id(c, 0), 1,
					      NULL),
			 0);
	git_reference_free(ref);
	git_commit_free(c);
	git_repository_free(r);
}

/* The journal's path of an upload, computed here from the documented
 * layout, independently of journal.c. */
static void upload_path(char *out,
			size_t cap,
			const char *device,
			uint64_t seq,
			const char *kind)
{
	uint8_t h[GS_SHA256_LEN];
	char hex[2 * GS_SHA256_LEN + 1];

	gs__sha256(h, device, strlen(device));
	gs__hex(hex, h, sizeof(h));
	snprintf(out, cap,
		 "uploads/%.2s/%s/%017lluxxx/%01lluxx/%01llux/%020llu.%s", hex,
		 hex, (unsigned long long)(seq / 1000),
		 (unsigned long long)(seq / 100 % 10),
		 (unsigned long long)(seq / 10 % 10), (unsigned long long)seq,
		 kind);
}

/*
 * Replace the tip with a commit whose tree is the tip's (or, with
 * rewrite_parent, also its parent's) with upd applied, same author,
 * message and parent: what someone rewriting the history would do.
 */
static void
rewrite_tip(struct fx *f, const git_tree_update *upd, size_t n, bool keep_tip)
{
	git_repository *r = repo_open(f);
	git_reference *ref = NULL;
	git_commit *c = NULL;
	git_commit *p = NULL;
	git_tree *t = NULL;
	git_tree *nt = NULL;
	git_oid id;
	git_oid tid;
	git_oid nid;
	const git_commit *parents[1];

	assert_int_equal(git_reference_name_to_id(&id, r, GS_JOURNAL_REF), 0);
	assert_int_equal(git_commit_lookup(&c, r, &id), 0);
	assert_int_equal(git_commit_tree(&t, c), 0);
	assert_int_equal(git_tree_create_updated(&tid, r, t, n, upd), 0);
	assert_int_equal(git_tree_lookup(&nt, r, &tid), 0);
	if (keep_tip) {
		parents[0] = c; /* a new commit on top */
	} else {
		assert_int_equal(git_commit_parent(&p, c, 0), 0);
		parents[0] = p; /* an amended tip */
	}
	assert_int_equal(git_commit_create(&nid, r, NULL, git_commit_author(c),
					   git_commit_committer(c), NULL,
					   git_commit_message(c), nt, 1,
					   parents),
			 0);
	assert_int_equal(
		git_reference_create(&ref, r, GS_JOURNAL_REF, &nid, 1, NULL),
		0);
	git_reference_free(ref);
	git_tree_free(nt);
	git_tree_free(t);
	git_commit_free(p);
	git_commit_free(c);
	git_repository_free(r);
}

/* ---- tests ----------------------------------------------------------------
 */

static void append_and_verify(void **state)
{
	struct fx *f = *state;
	struct gs_journal_report r;
	char path[256];
	git_repository *repo;
	git_commit *c = NULL;
	git_tree *t = NULL;
	git_tree_entry *e = NULL;
	git_blob *b = NULL;
	git_oid id;

	/* An empty journal verifies, with nothing in it. */
	r = verify_ok(f);
	assert_int_equal(r.commits, 0);
	assert_int_equal(r.uploads, 0);
	assert_int_equal(sync_ok(f, 0), 0);
	assert_false(head_id(f, &id));

	add_upload(f->db, 1, "dev-a", 1);
	add_upload(f->db, 2, "dev-b", 7);
	add_upload(f->db, 3, "dev-a", 2);
	r = verify_ok(f);
	assert_int_equal(r.pending, 3);
	assert_int_equal(r.uploads, 0);

	assert_int_equal(sync_ok(f, 0), 3);
	assert_int_equal(count_rows(f->db, "journaled = 0"), 0);
	r = verify_ok(f);
	assert_int_equal(r.commits, 1);
	assert_int_equal(r.uploads, 3);
	assert_int_equal(r.matched, 3);
	assert_int_equal(r.mismatched, 0);
	assert_int_equal(r.missing, 0);
	assert_int_equal(r.pending, 0);

	/* Nothing pending: no new commit. */
	assert_true(head_id(f, &id));
	assert_int_equal(sync_ok(f, 0), 0);
	{
		git_oid again;

		assert_true(head_id(f, &again));
		assert_true(git_oid_equal(&id, &again));
	}

	/* The blob at the documented path holds the stored bytes, and the
	 * metadata its documented form; the commit is gridsyncd's. */
	repo = repo_open(f);
	assert_int_equal(git_commit_lookup(&c, repo, &id), 0);
	assert_string_equal(git_commit_committer(c)->name, "gridsyncd");
	assert_int_equal(git_commit_committer(c)->when.time,
			 (1740817800000LL + 3LL * 1500) / 1000);
	assert_int_equal(git_commit_tree(&t, c), 0);
	upload_path(path, sizeof(path), "dev-b", 7, "changeset");
	assert_int_equal(git_tree_entry_bypath(&e, t, path), 0);
	assert_int_equal(git_blob_lookup(&b, repo, git_tree_entry_id(e)), 0);
	{
		uint8_t cs[300];
		size_t len = 40 + (size_t)(2 * 37 % 260);

		for (size_t i = 0; i < len; i++)
			cs[i] = (uint8_t)(262 + i * 7);
		assert_int_equal(git_blob_rawsize(b), len);
		assert_memory_equal(git_blob_rawcontent(b), cs, len);
	}
	git_blob_free(b);
	git_tree_entry_free(e);
	upload_path(path, sizeof(path), "dev-a", 1, "meta");
	assert_int_equal(git_tree_entry_bypath(&e, t, path), 0);
	assert_int_equal(git_blob_lookup(&b, repo, git_tree_entry_id(e)), 0);
	{
		uint8_t cs[300];
		uint8_t sha[GS_SHA256_LEN];
		char hex[2 * GS_SHA256_LEN + 1];
		char want[1024];
		size_t len = 40 + (size_t)(1 * 37 % 260);

		for (size_t i = 0; i < len; i++)
			cs[i] = (uint8_t)(131 + i * 7);
		gs__sha256(sha, cs, len);
		gs__hex(hex, sha, sizeof(sha));
		snprintf(want, sizeof(want),
			 "gridsync-journal-upload 1\ndevice_id \"dev-a\"\n"
			 "device_seq 1\nsha256 %s\nbytes %zu\nhlc %lld\n"
			 "result 1\nreject_code 0\nserver_seq_first 10\n"
			 "server_seq_last 14\nreceived_at %lld\n",
			 hex, len, ((1740817800000LL + 1500) << 16) | 1,
			 1740817800000LL + 1500);
		assert_int_equal(git_blob_rawsize(b), strlen(want));
		assert_memory_equal(git_blob_rawcontent(b), want, strlen(want));
	}
	git_blob_free(b);
	git_tree_entry_free(e);
	git_tree_free(t);
	git_commit_free(c);
	git_repository_free(repo);
	git_fsck_clean(f);
}

static void groups_and_stock_git(void **state)
{
	struct fx *f = *state;
	struct gs_journal_report r;
	static char out[1 << 16];

	for (int i = 1; i <= 5; i++)
		add_upload(f->db, i, i <= 3 ? "dev-a" : "dev-b", 100 + i);
	assert_int_equal(sync_ok(f, 2), 5);
	r = verify_ok(f);
	assert_int_equal(r.commits, 3);
	assert_int_equal(r.uploads, 5);
	assert_int_equal(r.matched, 5);
	assert_int_equal(count_packs(f), 3); /* one pack per commit */
	git_fsck_clean(f);

	assert_int_equal(
		run_git(f, out, sizeof(out), "log", "--oneline", (char *)NULL),
		0);
	print_message("git log --oneline:\n%s", out);
	assert_int_equal(count_lines(out), 3);
	assert_int_equal(run_git(f, out, sizeof(out), "log", "--format=%s",
				 (char *)NULL),
			 0);
	/* Newest first: row 5 alone; rows 3 and 4 (two devices); 1 and 2.
	 * Row 3 was rejected (no server_seq). */
	assert_string_equal(out,
			    "journal: 1 upload from 1 device, server_seq "
			    "50..54\n"
			    "journal: 2 uploads from 2 devices, server_seq "
			    "40..44\n"
			    "journal: 2 uploads from 1 device, server_seq "
			    "10..24\n");
	assert_int_equal(run_git(f, out, sizeof(out), "log", "-1", "--skip=1",
				 "--format=%b", (char *)NULL),
			 0);
	print_message("body:\n%s", out);
	assert_non_null(strstr(out, "device \"dev-a\" ("));
	assert_non_null(strstr(out, ") device_seq 103..103, 1 upload\n"));
	assert_non_null(strstr(out, "device \"dev-b\" ("));
	assert_non_null(strstr(out, ") device_seq 104..104, 1 upload\n"));
	assert_int_equal(run_git(f, out, sizeof(out), "log", "-1",
				 "--format=%an <%ae> %cn", (char *)NULL),
			 0);
	assert_string_equal(out, "gridsyncd <gridsyncd@localhost> gridsyncd\n");
	/* HEAD is the journal's branch (git log with no ref works). */
	assert_int_equal(run_git(f, out, sizeof(out), "symbolic-ref", "HEAD",
				 (char *)NULL),
			 0);
	assert_string_equal(out, GS_JOURNAL_REF "\n");
	/* A second sync later appends on top. */
	add_upload(f->db, 6, "dev-b", 200);
	assert_int_equal(sync_ok(f, 2), 1);
	assert_int_equal(verify_ok(f).commits, 4);
	git_fsck_clean(f);
}

/* One pack per commit would grow without bound: each 16 packs of a level
 * are folded into one, and the journal stays whole. */
static void packs_are_folded(void **state)
{
	struct fx *f = *state;
	struct gs_journal_report r;

	for (int i = 1; i <= 40; i++)
		add_upload(f->db, i, i % 3 ? "dev-a" : "dev-b", i);
	assert_int_equal(sync_ok(f, 1), 40);
	r = verify_ok(f);
	assert_int_equal(r.commits, 40);
	assert_int_equal(r.matched, 40);
	/* 32 commits in two folded packs, 8 more one pack each. */
	assert_int_equal(count_packs(f), 2 + 8);
	git_fsck_clean(f);
	/* The journal goes on after the folds (the repository was reopened). */
	add_upload(f->db, 41, "dev-c", 1);
	assert_int_equal(sync_ok(f, 1), 1);
	assert_int_equal(verify_ok(f).commits, 41);
	git_fsck_clean(f);
}

/* Crash after the git commit, before the rows were marked: the next sync
 * finds them in the branch and only marks them. */
static void crash_before_mark(void **state)
{
	struct fx *f = *state;
	git_oid before;
	git_oid after;
	struct gs_journal_report r;

	for (int i = 1; i <= 4; i++)
		add_upload(f->db, i, "dev-a", i);
	assert_int_equal(sync_ok(f, 0), 4);
	assert_true(head_id(f, &before));
	exec(f->db, "UPDATE srv_received SET journaled = 0");
	r = verify_ok(f); /* in git, not yet marked: pending, not an error */
	assert_int_equal(r.pending, 4);
	assert_int_equal(r.mismatched, 0);
	assert_int_equal(sync_ok(f, 0), 0);
	assert_true(head_id(f, &after));
	assert_true(git_oid_equal(&before, &after));
	assert_int_equal(count_rows(f->db, "journaled = 1"), 4);
	assert_int_equal(verify_ok(f).commits, 1);

	/* Partly in git (rows 1-2 of an earlier group, then unmarked), partly
	 * new (row 5): only row 5 is appended. */
	exec(f->db, "UPDATE srv_received SET journaled = 0 WHERE id <= 2");
	add_upload(f->db, 5, "dev-a", 5);
	assert_int_equal(sync_ok(f, 8), 1);
	r = verify_ok(f);
	assert_int_equal(r.commits, 2);
	assert_int_equal(r.matched, 5);
	git_fsck_clean(f);
}

/*
 * Crash after the pack was written, before the branch moved (the last
 * ref update lost): the re-run of the same group makes the identical tree
 * and commit, and writes no second pack.
 */
static void crash_before_ref_identical_tree(void **state)
{
	struct fx *f = *state;
	git_oid head1;
	git_oid tree1;
	git_oid head2;
	git_oid tree2;
	size_t packs;

	for (int i = 1; i <= 4; i++)
		add_upload(f->db, i, i % 2 ? "dev-a" : "dev-b", i);
	assert_int_equal(sync_ok(f, 2), 4);
	assert_true(head_id(f, &head1));
	head_tree_id(f, &tree1);
	packs = count_packs(f);

	ref_to_parent(f);
	exec(f->db, "UPDATE srv_received SET journaled = 0 WHERE id > 2");
	assert_int_equal(sync_ok(f, 2), 2);
	assert_true(head_id(f, &head2));
	head_tree_id(f, &tree2);
	assert_true(git_oid_equal(&tree1, &tree2));
	assert_true(git_oid_equal(&head1, &head2));
	assert_int_equal(count_packs(f), packs);
	assert_int_equal(verify_ok(f).commits, 2);
	git_fsck_clean(f);

	/* The same rows into a new journal: the same history, bit for bit. */
	{
		struct gs_journal *j2 = NULL;
		git_repository *r2 = NULL;
		char dir2[2 * PATH_MAX];
		git_oid h;

		snprintf(dir2, sizeof(dir2), "%s2", f->repo);
		exec(f->db, "UPDATE srv_received SET journaled = 0");
		assert_gs_ok(gs__journal_open(&j2, f->ctx, dir2));
		assert_gs_ok(gs__journal_sync(j2, f->db, 2, NULL));
		gs__journal_close(j2);
		assert_int_equal(git_repository_open_bare(&r2, dir2), 0);
		assert_int_equal(
			git_reference_name_to_id(&h, r2, GS_JOURNAL_REF), 0);
		assert_true(git_oid_equal(&h, &head1));
		git_repository_free(r2);
	}
}

/* A pending row whose (device, seq) the journal holds with other bytes is
 * refused, and so is a store row whose sha256 is not its changeset's. */
static void sync_refuses_inconsistent(void **state)
{
	struct fx *f = *state;
	uint8_t other[64];
	uint8_t sha[GS_SHA256_LEN];
	sqlite3_stmt *st = NULL;
	git_oid before;
	git_oid after;

	add_upload(f->db, 1, "dev-a", 1);
	add_upload(f->db, 2, "dev-a", 2);
	assert_int_equal(sync_ok(f, 0), 2);
	assert_true(head_id(f, &before));

	memset(other, 0x5a, sizeof(other));
	gs__sha256(sha, other, sizeof(other));
	assert_int_equal(sqlite3_prepare_v2(f->db,
					    "UPDATE srv_received SET changeset"
					    " = ?1, sha256 = ?2, journaled = 0"
					    " WHERE id = 1",
					    -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_blob(st, 1, other, sizeof(other), SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, sha, sizeof(sha), SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	add_upload(f->db, 3, "dev-a", 3);
	assert_gs_err(gs__journal_sync(f->j, f->db, 0, NULL), GS_ECORRUPT);
	print_message("refused: %s\n", gs_ctx_errmsg(f->ctx));
	assert_non_null(strstr(gs_ctx_errmsg(f->ctx), "other content"));
	assert_true(head_id(f, &after));
	assert_true(git_oid_equal(&before, &after));
	assert_int_equal(count_rows(f->db, "journaled = 0"), 2);

	exec(f->db, "DELETE FROM srv_received WHERE id = 1");
	exec(f->db, "UPDATE srv_received SET sha256 = zeroblob(32)"
		    " WHERE id = 3");
	assert_gs_err(gs__journal_sync(f->j, f->db, 0, NULL), GS_ECORRUPT);
	assert_non_null(strstr(gs_ctx_errmsg(f->ctx), "row 3"));
	exec(f->db, "UPDATE srv_received SET sha256 = x'00' WHERE id = 3");
	assert_gs_err(gs__journal_sync(f->j, f->db, 0, NULL), GS_ECORRUPT);
	assert_true(head_id(f, &after));
	assert_true(git_oid_equal(&before, &after));
	git_fsck_clean(f);
}

static void synced_five(struct fx *f)
{
	for (int i = 1; i <= 5; i++)
		add_upload(f->db, i, i <= 2 ? "dev-a" : "dev-b", i);
	assert_int_equal(sync_ok(f, 2), 5);
	(void)verify_ok(f);
}

static void tamper_store_row(void **state)
{
	struct fx *f = *state;
	struct gs_journal_report r;

	synced_five(f);
	exec(f->db, "UPDATE srv_received SET changeset = x'deadbeef'"
		    " WHERE id = 2");
	r = verify_corrupt(f);
	assert_int_equal(r.mismatched, 1);
	assert_int_equal(r.matched, 4);
	assert_int_equal(r.missing, 0);
	assert_int_equal(r.uploads, 5);
	assert_non_null(strstr(gs_ctx_errmsg(f->ctx), "store row 2"));

	/* Bytes and sha256 changed together: still caught. */
	{
		uint8_t sha[GS_SHA256_LEN];
		uint8_t cs[4] = { 0xde, 0xad, 0xbe, 0xef };
		sqlite3_stmt *st = NULL;

		gs__sha256(sha, cs, sizeof(cs));
		assert_int_equal(
			sqlite3_prepare_v2(f->db,
					   "UPDATE srv_received SET sha256 = ?1"
					   " WHERE id = 2",
					   -1, &st, NULL),
			SQLITE_OK);
		sqlite3_bind_blob(st, 1, sha, sizeof(sha), SQLITE_STATIC);
		assert_int_equal(sqlite3_step(st), SQLITE_DONE);
		sqlite3_finalize(st);
	}
	r = verify_corrupt(f);
	assert_int_equal(r.mismatched, 1);

	/* The verdict alone. */
	exec(f->db, "DELETE FROM srv_received WHERE id = 2");
	add_upload(f->db, 2, "dev-a", 2);
	exec(f->db, "UPDATE srv_received SET journaled = 1");
	(void)verify_ok(f);
	exec(f->db, "UPDATE srv_received SET result = 3 WHERE id = 4");
	r = verify_corrupt(f);
	assert_int_equal(r.mismatched, 1);
	exec(f->db, "UPDATE srv_received SET result = 1 WHERE id = 4");
	exec(f->db, "UPDATE srv_received SET server_seq_last = 99"
		    " WHERE id = 5");
	r = verify_corrupt(f);
	assert_int_equal(r.mismatched, 1);
	assert_non_null(strstr(gs_ctx_errmsg(f->ctx), "metadata differs"));
	exec(f->db, "UPDATE srv_received SET server_seq_last = 54"
		    " WHERE id = 5");
	(void)verify_ok(f);

	/* A row deleted from the store: the journal still has it. */
	exec(f->db, "DELETE FROM srv_received WHERE id = 1");
	r = verify_corrupt(f);
	assert_int_equal(r.mismatched, 1);
	assert_non_null(strstr(gs_ctx_errmsg(f->ctx), "no store row"));
}

static void tamper_marked_but_absent(void **state)
{
	struct fx *f = *state;
	struct gs_journal_report r;

	synced_five(f);
	add_upload(f->db, 6, "dev-c", 1);
	exec(f->db, "UPDATE srv_received SET journaled = 1 WHERE id = 6");
	r = verify_corrupt(f);
	assert_int_equal(r.missing, 1);
	assert_int_equal(r.matched, 5);
	assert_non_null(strstr(gs_ctx_errmsg(f->ctx), "store row 6"));
}

static void tamper_git_history(void **state)
{
	struct fx *f = *state;
	struct gs_journal_report r;
	git_tree_update up;
	char path[256];
	git_repository *repo;

	synced_five(f);

	/* The tip amended with other bytes for upload 5 (metadata kept). */
	repo = repo_open(f);
	memset(&up, 0, sizeof(up));
	up.action = GIT_TREE_UPDATE_UPSERT;
	up.filemode = GIT_FILEMODE_BLOB;
	assert_int_equal(git_blob_create_from_buffer(&up.id, repo, "evil", 4),
			 0);
	git_repository_free(repo);
	upload_path(path, sizeof(path), "dev-b", 5, "changeset");
	up.path = path;
	rewrite_tip(f, &up, 1, false);
	r = verify_corrupt(f);
	assert_int_equal(r.commits, 3);
	assert_int_equal(r.mismatched, 1);
	assert_non_null(strstr(gs_ctx_errmsg(f->ctx), "history intact"));
	assert_non_null(strstr(gs_ctx_errmsg(f->ctx), "sha256"));

	/* An upload of an earlier commit deleted by a later one. */
	up.action = GIT_TREE_UPDATE_REMOVE;
	upload_path(path, sizeof(path), "dev-a", 1, "changeset");
	up.path = path;
	ref_to_parent(f);
	rewrite_tip(f, &up, 1, true);
	r = verify_corrupt(f);
	assert_int_equal(r.commits, 3);
	assert_non_null(strstr(gs_ctx_errmsg(f->ctx), "history broken"));

	/* The tip amended to drop upload 5 entirely: history looks linear
	 * and additive, but the store says it was journaled. */
	{
		git_tree_update two[2];
		char meta[256];

		ref_to_parent(f);
		exec(f->db, "UPDATE srv_received SET journaled = 0"
			    " WHERE id = 5");
		assert_int_equal(sync_ok(f, 2), 1); /* the real tip again */
		(void)verify_ok(f);
		memset(two, 0, sizeof(two));
		upload_path(path, sizeof(path), "dev-b", 5, "changeset");
		upload_path(meta, sizeof(meta), "dev-b", 5, "meta");
		two[0].action = two[1].action = GIT_TREE_UPDATE_REMOVE;
		two[0].path = path;
		two[1].path = meta;
		rewrite_tip(f, two, 2, false);
		r = verify_corrupt(f);
		assert_int_equal(r.missing, 1);
		assert_int_equal(r.uploads, 4);
		assert_non_null(
			strstr(gs_ctx_errmsg(f->ctx), "history intact"));
	}

	/* The branch set to a commit the repository does not have. */
	{
		char ref[2 * PATH_MAX];
		FILE *fp;
		struct gs_journal_report r2;

		snprintf(ref, sizeof(ref), "%s/refs/heads/main", f->repo);
		fp = fopen(ref, "w");
		assert_non_null(fp);
		fputs("0123456789abcdef0123456789abcdef01234567\n", fp);
		fclose(fp);
		assert_gs_err(gs__journal_verify(f->j, f->db, &r2),
			      GS_ECORRUPT);
		print_message("detected: %s\n", gs_ctx_errmsg(f->ctx));
		assert_int_equal(r2.missing, 5);
		assert_int_equal(r2.commits, 0);
		assert_gs_err(gs__journal_sync(f->j, f->db, 0, NULL),
			      GS_ECORRUPT);
	}
}

/* Device ids are the device's text: none of it may reach a tree path. */
static void paths_carry_no_device_text(void **state)
{
	struct fx *f = *state;
	static const char *const devs[] = { "../../x", "x\ny",    "/etc/passwd",
					    "..",      ".git",    "a/b\\c\"d",
					    "",        "\x7f\x01" };
	static char out[1 << 16];
	regex_t re;
	char *line;
	char *save = NULL;
	size_t n = sizeof(devs) / sizeof(devs[0]);
	struct stat sb;
	char escaped[2 * PATH_MAX];

	for (size_t i = 0; i < n; i++)
		add_upload(f->db, (int64_t)i + 1, devs[i], 1);
	add_upload_len(f->db, 99, "nul\0in", 6, 1, "x", 1, 1, 1, 1, 1);
	/* Large and negative sequence numbers have one place each too. */
	add_upload(f->db, 100, "dev-a", 1234567891234LL);
	add_upload(f->db, 101, "dev-a", -1);
	add_upload(f->db, 102, "dev-a", 99);
	add_upload(f->db, 103, "dev-a", 100);
	assert_int_equal(sync_ok(f, 0), n + 5);
	(void)verify_ok(f);
	git_fsck_clean(f);
	assert_int_equal(run_git(f, out, sizeof(out), "ls-tree", "-r", "-t",
				 "--name-only", "HEAD", (char *)NULL),
			 0);
	assert_int_equal(
		regcomp(&re,
			"^uploads(/[0-9a-f]{2}(/[0-9a-f]{64}(/[0-9]{17}xxx"
			"(/[0-9]xx(/[0-9]x(/"
			"[0-9]{20}\\.(changeset|meta))?)?)?)?)?)?$",
			REG_EXTENDED | REG_NOSUB),
		0);
	for (line = strtok_r(out, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save))
		if (regexec(&re, line, 0, NULL, 0) != 0)
			fail_msg("path not in the layout: %s", line);
	regfree(&re);
	/* Nothing escaped the repository. */
	snprintf(escaped, sizeof(escaped), "%s/../../x", f->repo);
	assert_int_not_equal(stat(escaped, &sb), 0);
	/* The message shows ids escaped, on one line each. */
	assert_int_equal(run_git(f, out, sizeof(out), "log", "-1",
				 "--format=%B", (char *)NULL),
			 0);
	print_message("%s", out);
	assert_non_null(strstr(out, "device \"x\\x0ay\" ("));
	assert_non_null(strstr(out, "device \"nul\\x00in\" ("));
	assert_null(strstr(out, "x\ny"));
	/* Subject, blank line, one line per device; git adds a newline. */
	assert_int_equal(count_lines(out), 2 + n + 2 + 1);
	{
		char p[256];

		upload_path(p, sizeof(p), "dev-a", 1234567891234ULL, "meta");
		assert_non_null(strstr(p, "/00000001234567891xxx/2xx/3x/"
					  "00000001234567891234.meta"));
		assert_int_equal(run_git(f, out, sizeof(out), "cat-file", "-e",
					 "HEAD:", (char *)NULL),
				 0);
		snprintf(escaped, sizeof(escaped), "HEAD:%s", p);
		assert_int_equal(run_git(f, out, sizeof(out), "cat-file", "-e",
					 escaped, (char *)NULL),
				 0);
		upload_path(p, sizeof(p), "dev-a", UINT64_MAX, "changeset");
		snprintf(escaped, sizeof(escaped), "HEAD:%s", p);
		assert_int_equal(run_git(f, out, sizeof(out), "cat-file", "-e",
					 escaped, (char *)NULL),
				 0);
	}
}

/* libgit2 really fsyncs the journal's files: the probe counts calls on
 * them, and sees none when the option is switched off behind our back. */
static void fsync_is_on(void **state)
{
	struct fx *f = *state;

	assert_true(gs__journal_fsync_enabled());
	snprintf(probe_dir, sizeof(probe_dir), "%s/", f->repo);
	probe_hits = 0;
	add_upload(f->db, 1, "dev-a", 1);
	assert_int_equal(sync_ok(f, 0), 1);
	print_message("fsync calls in the journal for one commit: %ld\n",
		      probe_hits);
	assert_true(probe_hits >= 3); /* pack, index, ref at least */

	/* The probe can fail: with the option off, libgit2 syncs nothing. */
	git_libgit2_opts(GIT_OPT_ENABLE_FSYNC_GITDIR, 0);
	gs__journal_close(f->j);
	f->j = NULL;
	git_libgit2_opts(GIT_OPT_ENABLE_FSYNC_GITDIR, 0);
	{
		git_repository *r = repo_open(f);
		git_oid id;

		probe_hits = 0;
		assert_int_equal(
			git_blob_create_from_buffer(&id, r, "no sync", 7), 0);
		assert_int_equal(probe_hits, 0);
		git_repository_free(r);
	}
	/* Reopening turns it back on. */
	assert_gs_ok(gs__journal_open(&f->j, f->ctx, f->repo));
	probe_hits = 0;
	add_upload(f->db, 2, "dev-a", 2);
	assert_int_equal(sync_ok(f, 0), 1);
	assert_true(probe_hits >= 3);
	probe_dir[0] = '\0';
}

static void bad_arguments(void **state)
{
	struct fx *f = *state;
	struct gs_journal_report r;
	struct gs_journal *j = NULL;

	assert_gs_err(gs__journal_sync(f->j, f->db,
				       GS_JOURNAL_MAX_PER_COMMIT + 1, NULL),
		      GS_EINVAL);
	assert_gs_err(gs__journal_sync(NULL, f->db, 0, NULL), GS_EINVAL);
	assert_gs_err(gs__journal_sync(f->j, NULL, 0, NULL), GS_EINVAL);
	assert_gs_err(gs__journal_verify(f->j, f->db, NULL), GS_EINVAL);
	assert_gs_err(gs__journal_verify(NULL, f->db, &r), GS_EINVAL);
	assert_gs_err(gs__journal_open(NULL, f->ctx, f->repo), GS_EINVAL);
	assert_gs_err(gs__journal_open(&j, f->ctx, NULL), GS_EINVAL);
	/* A file where the repository should be. */
	assert_true(gs__journal_open(&j, f->ctx,
				     gs_test_path(f->dir, "store.db")) < 0);
	assert_null(j);
	print_message("open on a file: %s\n", gs_ctx_errmsg(f->ctx));
	gs__journal_close(NULL);
	/* Without the store's table: a translated SQLite error. */
	{
		sqlite3 *db = NULL;

		assert_gs_ok(gs__db_open(&db, f->ctx,
					 gs_test_path(f->dir, "empty.db"),
					 GS_DB_CREATE));
		assert_true(gs__journal_sync(f->j, db, 0, NULL) < 0);
		assert_true(gs__journal_verify(f->j, db, &r) < 0);
		gs__db_close(db);
	}
}

/*
 * Fail our n-th allocation in open + sync (5 uploads, groups of 2), for
 * every n until it succeeds. Each failure is GS_ENOMEM with nothing
 * leaked, and a retry without failures completes the journal with exactly
 * three commits that verify: no group lost, none appended twice.
 */
static void sync_survives_allocation_failures(void **state)
{
	struct fx *f = *state;
	struct gs_test_alloc a;
	struct gs_ctx *ctx = gs_test_ctx_new(&a);
	long base = a.live;
	int done = 0;

	for (long n = 0; !done; n++) {
		char repo[2 * PATH_MAX];
		char name[64];
		struct gs_journal *j = NULL;
		struct gs_journal_report r;
		sqlite3 *db;
		size_t cnt = 0;
		int rc;

		snprintf(name, sizeof(name), "s%ld.db", n);
		db = store_new(f->ctx, gs_test_path(f->dir, name));
		for (int i = 1; i <= 5; i++)
			add_upload(db, i, i % 2 ? "dev-a" : "dev-b", i);
		snprintf(repo, sizeof(repo), "%s-%ld", f->repo, n);
		gs_test_fail_alloc_at(&a, n);
		rc = gs__journal_open(&j, ctx, repo);
		if (rc == GS_OK)
			rc = gs__journal_sync(j, db, 2, &cnt);
		gs_test_fail_alloc_at(&a, -1);
		if (rc == GS_OK) {
			done = 1;
			assert_int_equal(cnt, 5);
			print_message("open+sync: %ld allocations\n", n);
		} else {
			assert_int_equal(rc, GS_ENOMEM);
			if (j == NULL)
				assert_gs_ok(gs__journal_open(&j, ctx, repo));
			assert_gs_ok(gs__journal_sync(j, db, 2, NULL));
		}
		assert_gs_ok(gs__journal_verify(j, db, &r));
		assert_int_equal(r.commits, 3);
		assert_int_equal(r.matched, 5);
		gs__journal_close(j);
		gs__db_close(db);
		assert_int_equal(a.live, base);
	}

	/* verify, on the last journal of the loop's shape. */
	add_upload(f->db, 1, "dev-a", 1);
	add_upload(f->db, 2, "dev-b", 1);
	add_upload(f->db, 3, "dev-b", 2);
	assert_int_equal(sync_ok(f, 2), 3);
	{
		struct gs_journal *j = NULL;

		assert_gs_ok(gs__journal_open(&j, ctx, f->repo));
		for (long n = 0;; n++) {
			struct gs_journal_report r;
			int rc;

			gs_test_fail_alloc_at(&a, n);
			rc = gs__journal_verify(j, f->db, &r);
			gs_test_fail_alloc_at(&a, -1);
			if (rc == GS_OK) {
				assert_int_equal(r.matched, 3);
				break;
			}
			assert_int_equal(rc, GS_ENOMEM);
		}
		gs__journal_close(j);
	}
	assert_int_equal(a.live, base);
	gs_ctx_free(ctx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(append_and_verify, setup,
						teardown),
		cmocka_unit_test_setup_teardown(groups_and_stock_git, setup,
						teardown),
		cmocka_unit_test_setup_teardown(packs_are_folded, setup,
						teardown),
		cmocka_unit_test_setup_teardown(crash_before_mark, setup,
						teardown),
		cmocka_unit_test_setup_teardown(crash_before_ref_identical_tree,
						setup, teardown),
		cmocka_unit_test_setup_teardown(sync_refuses_inconsistent,
						setup, teardown),
		cmocka_unit_test_setup_teardown(tamper_store_row, setup,
						teardown),
		cmocka_unit_test_setup_teardown(tamper_marked_but_absent, setup,
						teardown),
		cmocka_unit_test_setup_teardown(tamper_git_history, setup,
						teardown),
		cmocka_unit_test_setup_teardown(paths_carry_no_device_text,
						setup, teardown),
		cmocka_unit_test_setup_teardown(fsync_is_on, setup, teardown),
		cmocka_unit_test_setup_teardown(bad_arguments, setup, teardown),
		cmocka_unit_test_setup_teardown(
			sync_survives_allocation_failures, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
