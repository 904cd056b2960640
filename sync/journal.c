/*
 * The tamper-evident journal (DESIGN.md section 6 step 6): every
 * upload the server judged, appended from the store's srv_received table
 * to a bare git repository with libgit2.
 *
 * Repository layout (format version 1). One branch, GS_JOURNAL_REF, with a
 * linear history; each commit's tree is its parent's tree plus the
 * uploads of one group. An upload of device D with sequence S lives at
 *
 *   uploads/<hh>/<H>/<A>xxx/<B>xx/<C>x/<S>.changeset  the uploaded bytes
 *   uploads/<hh>/<H>/<A>xxx/<B>xx/<C>x/<S>.meta       canonical metadata
 *
 * where H is the lowercase hex SHA-256 of D's bytes, hh its first two
 * digits, S the device_seq as 20 zero-padded decimal digits (of its 64-bit
 * two's complement, so every value has one name), A its first 17 digits,
 * B the 18th and C the 19th ("00000000000000000xxx/4xx/2x/...0042.meta").
 * Every commit rewrites each tree on the paths it touches, so the size of
 * those trees is a cost per upload: with a fan-out of ten per level a leaf
 * holds at most ten uploads and no tree of a device grows past 20 entries
 * below the A level (one A folder per 1000 uploads).
 * Paths are built only from hashes and numbers: a device id such as
 * "../../x" or one with a newline never reaches a path (CVE-2024-24577
 * class). `echo -n DEVICE | sha256sum` finds a device's folder.
 *
 * The .meta blob is text, one "key value" per line, in this order:
 * "gridsync-journal-upload 1", device_id (quoted; bytes outside printable
 * ASCII, '"' and '\' written as \xNN), device_seq, sha256 (hex, of the
 * changeset), bytes, hlc, result, reject_code, server_seq_first,
 * server_seq_last ("null" when the upload produced none), received_at
 * (server ms). The same row always gives the same bytes.
 *
 * Commits: author and committer "gridsyncd <gridsyncd@localhost>" at the
 * latest received_at of the group (seconds, UTC), message naming the
 * uploads, devices, device_seq ranges and the server_seq range. Everything
 * is a function of the parent and the rows, so re-running a group after a
 * crash yields the identical tree and commit (T14).
 *
 * Durability (DESIGN.md traps 4 and 9): GIT_OPT_ENABLE_FSYNC_GITDIR is
 * set at every open. A commit with loose objects costs two fsyncs per
 * object (file and directory): four per upload. Instead, a group's objects
 * go to an in-memory mempack backend and are written as one pack (pack,
 * index, directory fsynced by libgit2's indexer), then the branch moves
 * (fsynced ref), then the store rows are marked, each group in its own
 * savepoint. Crash windows: before the pack, nothing is visible and the
 * rows are still pending; after the pack but before the ref, the objects
 * are unreferenced and the re-run recreates the same ids (no new pack);
 * after the ref but before the mark, the next sync finds the uploads in
 * the branch's tree with the same blob ids and only marks them. Packs are
 * folded as they accumulate (see pack_fold); packs of earlier runs stay
 * until someone runs stock `git repack -d` (safe while gridsyncd is not
 * writing).
 *
 * Single writer: the ref moves only from the parent this sync read
 * (compare-and-swap); a second writer gets GS_EBUSY, never a lost commit.
 */
#define GS_MODULE "sync.journal"

#include <errno.h>
#include <git2.h>
#include <git2/sys/mempack.h>
#include <git2/sys/odb_backend.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gridsync/journal.h>
#include <gridsync/wire.h>

#define SIG_NAME  "gridsyncd"
#define SIG_EMAIL "gridsyncd@localhost"

#define PATH_CAP   160         /* longest upload path is 134 bytes */
#define META_MAX   (1u << 20)  /* one .meta blob */
#define MSG_MAX    (4u << 20)  /* one commit message */
#define NAMES_MAX  (1u << 20)  /* escaped device ids shown per group */
#define NAME_SHOW  48          /* device id bytes shown in a message */
#define VERIFY_MAX (64u << 20) /* uploads verify can hold */
#define TREE_DEPTH 8           /* deeper trees are not ours */
#define HEX_LEN    ((size_t)2 * GS_SHA256_LEN)
#define A_DIGITS   17 /* device_seq / 1000 */
#define SEQ_DIGITS 20

/*
 * A pack this process wrote and may still fold into a bigger one: it holds
 * the new objects of the commits after base up to tip (a first-parent
 * chain; base zero: from the root).
 */
struct packrec {
	char name[GIT_OID_HEXSZ + 1];
	git_oid base;
	git_oid tip;
	unsigned level;
	uint64_t uploads;
};

/* Packs per fold, and the most uploads one fold may rewrite (it stalls
 * the loop: about 1.5 s for 4096 uploads here). */
#define FANOUT   16
#define FOLD_MAX 4096

struct gs_journal {
	struct gs_ctx *ctx;
	char *dir;
	git_repository *repo; /* NULL after a failed reopen */
	git_odb *odb;
	git_odb_backend *mempack; /* owned by odb once added */
	bool lib_init;            /* holds one git_libgit2_init reference */
	struct packrec packs[4 * FANOUT];
	size_t n_packs; /* a contiguous chain, oldest first */
};

static bool fsync_enabled;

/* Process-wide like the libgit2 option it mirrors; only ever set. */
bool gs__journal_fsync_enabled(void)
{
	return fsync_enabled;
}

/*
 * libgit2 keeps its message in a thread-local that the next call may
 * overwrite (DESIGN.md 3.5), so it is copied into ctx here and cleared.
 * Codes a caller acts on get a name; the rest follow the error class.
 */
int gs__err_from_git(struct gs_ctx *ctx, int rc)
{
	const git_error *e = git_error_last();
	const char *msg =
		e != NULL && e->message != NULL ? e->message : "unknown error";
	int klass = e != NULL ? e->klass : GIT_ERROR_NONE;
	int err;

	if (rc >= 0)
		return GS_OK;
	switch (rc) {
	case GIT_ENOTFOUND:
		err = GS_ENOTFOUND;
		break;
	case GIT_EEXISTS:
		err = GS_EEXISTS;
		break;
	case GIT_ELOCKED:
	case GIT_EMODIFIED:
		err = GS_EBUSY; /* another writer holds or moved the ref */
		break;
	case GIT_EMISMATCH:
		err = GS_ECORRUPT; /* an object's bytes do not fit its id */
		break;
	case GIT_EINVALIDSPEC:
	case GIT_EINVALID:
		err = GS_EINVAL;
		break;
	default:
		if (klass == GIT_ERROR_NOMEMORY)
			err = GS_ENOMEM;
		else if (klass == GIT_ERROR_OS)
			err = errno == ENOSPC || errno == EDQUOT ? GS_EFULL
								 : GS_EIO;
		else
			err = GS_ERROR;
	}
	err = gs__err(ctx, err, "git: %s", msg);
	git_error_clear();
	return err;
}

/* ---- opening ----------------------------------------------------------- */

static void repo_detach(struct gs_journal *j)
{
	git_odb_free(j->odb); /* frees the mempack with the odb */
	git_repository_free(j->repo);
	j->odb = NULL;
	j->repo = NULL;
	j->mempack = NULL;
}

/* Open (or create) the repository at j->dir, with the mempack on top. */
static int repo_attach(struct gs_journal *j)
{
	git_repository_init_options io;
	git_odb_backend *mp = NULL;
	int rc = git_repository_open_bare(&j->repo, j->dir);

	if (rc == GIT_ENOTFOUND) {
		git_error_clear();
		git_repository_init_options_init(
			&io, GIT_REPOSITORY_INIT_OPTIONS_VERSION);
		io.flags = GIT_REPOSITORY_INIT_BARE |
			   GIT_REPOSITORY_INIT_MKPATH |
			   GIT_REPOSITORY_INIT_NO_REINIT;
		io.initial_head = "main";
		rc = git_repository_init_ext(&j->repo, j->dir, &io);
	}
	if (rc == 0)
		rc = git_repository_odb(&j->odb, j->repo);
	if (rc == 0)
		rc = git_mempack_new(&mp);
	/* Above the loose and pack backends, so every write lands in it. */
	if (rc == 0)
		rc = git_odb_add_backend(j->odb, mp, 999);
	if (rc < 0) {
		if (mp != NULL)
			mp->free(mp);
		rc = gs__err_from_git(j->ctx, rc);
		repo_detach(j);
		return gs__err_wrap(j->ctx, rc, "journal: open");
	}
	j->mempack = mp;
	return GS_OK;
}

/*
 * libgit2 is initialised per journal (its init is counted), and the fsync
 * option set every time: nothing else may have turned it off in between.
 */
int gs__journal_open(struct gs_journal **out,
		     struct gs_ctx *ctx,
		     const char *dir)
{
	struct gs_journal *j = NULL;
	int rc;

	GS_CHECK_ARG(out != NULL && dir != NULL);
	*out = NULL;
	j = gs__calloc(ctx, 1, sizeof(*j));
	if (j != NULL) {
		j->ctx = ctx;
		j->dir = gs__strdup(ctx, dir);
	}
	if (j == NULL || j->dir == NULL) {
		rc = gs__err(ctx, GS_ENOMEM, "journal: out of memory");
		goto out;
	}
	rc = git_libgit2_init();
	if (rc >= 0) {
		j->lib_init = true;
		/* Before any repository is opened: libgit2 reads it then. */
		rc = git_libgit2_opts(GIT_OPT_ENABLE_FSYNC_GITDIR, 1);
	}
	if (rc < 0) {
		rc = gs__err_from_git(ctx, rc);
		goto out;
	}
	fsync_enabled = true;
	rc = repo_attach(j);
	/* Every upload's bytes are in here: owner only (the directory
	 * guards the files libgit2 makes with its own modes). */
	if (rc == GS_OK)
		rc = gs__fs_private_dir(ctx, dir);
	if (rc != GS_OK)
		goto out;
	GS_DEBUG(ctx, "journal open");
	*out = j;
	j = NULL;
out:
	gs__journal_close(j);
	return rc;
}

/* The odb goes before the repository; libgit2 is released last. */
void gs__journal_close(struct gs_journal *j)
{
	if (j == NULL)
		return;
	repo_detach(j);
	if (j->lib_init)
		git_libgit2_shutdown();
	gs__free(j->ctx, j->dir);
	gs__free(j->ctx, j);
}

/* A fold that failed to reopen left no repository: try again. */
static int repo_ready(struct gs_journal *j)
{
	return j->repo != NULL ? GS_OK : repo_attach(j);
}

/* ---- store rows and their canonical forms ------------------------------ */

#define REC_COLS                                                        \
	"id, device_id, device_seq, sha256, hlc, changeset, result,"    \
	" reject_code, server_seq_first, server_seq_last, received_at," \
	" journaled"

/* One srv_received row; pointers borrowed from the statement until it
 * steps or resets. */
struct rec {
	int64_t id;
	const uint8_t *device;
	size_t device_len;
	int64_t seq;
	const uint8_t *sha;
	size_t sha_len;
	int64_t hlc;
	const void *cs;
	size_t cs_len;
	int64_t result;
	int64_t reject;
	bool has_first;
	int64_t first;
	bool has_last;
	int64_t last;
	int64_t received_at;
	int64_t journaled;
};

/*
 * Fill r from the current row of a statement selecting REC_COLS. Empty
 * blobs and texts read as NULL pointers, which become a static empty
 * buffer so that hashing and comparing need no special case.
 */
static void rec_read(struct rec *r, sqlite3_stmt *st)
{
	static const uint8_t empty[1];

	/* Pointer first, then length: SQLite's documented order. */
	r->id = sqlite3_column_int64(st, 0);
	r->device = sqlite3_column_text(st, 1);
	r->device_len = (size_t)sqlite3_column_bytes(st, 1);
	r->seq = sqlite3_column_int64(st, 2);
	r->sha = sqlite3_column_blob(st, 3);
	r->sha_len = (size_t)sqlite3_column_bytes(st, 3);
	r->hlc = sqlite3_column_int64(st, 4);
	r->cs = sqlite3_column_blob(st, 5);
	r->cs_len = (size_t)sqlite3_column_bytes(st, 5);
	r->result = sqlite3_column_int64(st, 6);
	r->reject = sqlite3_column_int64(st, 7);
	r->has_first = sqlite3_column_type(st, 8) != SQLITE_NULL;
	r->first = sqlite3_column_int64(st, 8);
	r->has_last = sqlite3_column_type(st, 9) != SQLITE_NULL;
	r->last = sqlite3_column_int64(st, 9);
	r->received_at = sqlite3_column_int64(st, 10);
	r->journaled = sqlite3_column_int64(st, 11);
	if (r->device == NULL)
		r->device = empty;
	if (r->sha == NULL)
		r->sha = empty;
	if (r->cs == NULL)
		r->cs = empty; /* a zero-length blob reads as NULL */
}

/* Quote len bytes of s; at most show bytes (0: all), then "...". */
static int
put_quoted(struct gs_buf *b, const uint8_t *s, size_t len, size_t show)
{
	int rc = gs__buf_append(b, "\"", 1);

	for (size_t i = 0; rc == GS_OK && i < len; i++) {
		if (show != 0 && i == show) {
			rc = gs__buf_append(b, "...", 3);
			break;
		}
		if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"' && s[i] != '\\')
			rc = gs__buf_append(b, &s[i], 1);
		else
			rc = gs__buf_printf(b, "\\x%02x", s[i]);
	}
	if (rc == GS_OK)
		rc = gs__buf_append(b, "\"", 1);
	return rc;
}

/* "key value\n", or "key null\n" for a NULL column. */
static int put_opt(struct gs_buf *b, const char *key, bool has, int64_t v)
{
	if (!has)
		return gs__buf_printf(b, "%s null\n", key);
	return gs__buf_printf(b, "%s %" PRId64 "\n", key, v);
}

/* The canonical .meta bytes of r into b (cleared first). */
static int meta_build(struct gs_buf *b, const struct rec *r)
{
	char hex[HEX_LEN + 1];
	int rc;

	GS_ASSERT(r->sha_len == GS_SHA256_LEN);
	gs__hex(hex, r->sha, GS_SHA256_LEN);
	b->len = 0;
	rc = gs__buf_printf(b, "gridsync-journal-upload 1\ndevice_id ");
	if (rc == GS_OK)
		rc = put_quoted(b, r->device, r->device_len, 0);
	if (rc == GS_OK)
		rc = gs__buf_printf(
			b,
			"\ndevice_seq %" PRId64 "\nsha256 %s\n"
			"bytes %zu\nhlc %" PRId64 "\nresult %" PRId64
			"\nreject_code %" PRId64 "\n",
			r->seq, hex, r->cs_len, r->hlc, r->result, r->reject);
	if (rc == GS_OK)
		rc = put_opt(b, "server_seq_first", r->has_first, r->first);
	if (rc == GS_OK)
		rc = put_opt(b, "server_seq_last", r->has_last, r->last);
	if (rc == GS_OK)
		rc = gs__buf_printf(b, "received_at %" PRId64 "\n",
				    r->received_at);
	return rc;
}

/* Where an upload lives: dir, and the two blob paths under it. */
struct upath {
	char dir[PATH_CAP];
	char cs[PATH_CAP];
	char meta[PATH_CAP];
};

static void
upload_paths(struct upath *p, const uint8_t dev[GS_SHA256_LEN], int64_t seq)
{
	char hex[HEX_LEN + 1];
	char num[SEQ_DIGITS + 1];

	gs__hex(hex, dev, GS_SHA256_LEN);
	snprintf(num, sizeof(num), "%020" PRIu64, (uint64_t)seq);
	snprintf(p->dir, sizeof(p->dir), "uploads/%.2s/%s/%.17sxxx/%cxx/%cx",
		 hex, hex, num, num[17], num[18]);
	snprintf(p->cs, sizeof(p->cs),
		 "uploads/%.2s/%s/%.17sxxx/%cxx/%cx/%s.changeset", hex, hex,
		 num, num[17], num[18], num);
	snprintf(p->meta, sizeof(p->meta),
		 "uploads/%.2s/%s/%.17sxxx/%cxx/%cx/%s.meta", hex, hex, num,
		 num[17], num[18], num);
}

/* The store's row must be self-consistent before it is journaled or
 * trusted: a 32-byte sha256 that is the changeset's. */
static int rec_check(struct gs_ctx *ctx, const struct rec *r)
{
	uint8_t sha[GS_SHA256_LEN];

	if (r->sha_len != GS_SHA256_LEN)
		return gs__err(ctx, GS_ECORRUPT,
			       "journal: store row %" PRId64
			       ": sha256 has %zu bytes",
			       r->id, r->sha_len);
	/* A refused upload is kept by its hash alone (its bytes were never
	 * stored: a refused changeset may be a decompression bomb). */
	if (r->cs_len == 0 && r->result == GS_RESULT_REJECTED)
		return GS_OK;
	gs__sha256(sha, r->cs, r->cs_len);
	if (memcmp(sha, r->sha, GS_SHA256_LEN) != 0)
		return gs__err(ctx, GS_ECORRUPT,
			       "journal: store row %" PRId64
			       ": sha256 does not match its changeset",
			       r->id);
	return GS_OK;
}

/* ---- sync --------------------------------------------------------------- */

/* One upload of the group being appended. */
struct grow {
	int64_t id;
	int64_t seq;
	bool has_first;
	int64_t first;
	bool has_last;
	int64_t last;
	uint8_t dev[GS_SHA256_LEN];
	size_t name_off; /* quoted device id in group.names */
	size_t name_len;
	bool is_new; /* false: already in the branch, only mark it */
	git_oid cs_oid;
	git_oid meta_oid;
	struct upath path;
};

/* One group being appended; the buffers are reused from group to group,
 * so a sync allocates a fixed handful of times whatever its size. */
struct group {
	struct grow *rows; /* max_per_commit of them */
	size_t n_rows;
	size_t n_new;         /* rows not in the branch yet */
	int64_t time_ms;      /* latest received_at of the new rows */
	git_tree_update *ups; /* two per new row */
	struct gs_buf meta;   /* the .meta of the row being added */
	struct gs_buf names;  /* quoted device ids, for the message */
	struct gs_buf msg;
};

/* The branch tip as this sync found it; born false on a fresh journal. */
struct head {
	bool born;
	git_oid oid;
	git_commit *commit;
	git_tree *tree;
};

/* Release what head_load took; safe on a zeroed head. */
static void head_fini(struct head *h)
{
	git_tree_free(h->tree);
	git_commit_free(h->commit);
	memset(h, 0, sizeof(*h));
}

/*
 * Read the tip of GS_JOURNAL_REF with its commit and tree. No branch yet
 * is a fresh journal (born false); a branch naming an object the
 * repository lacks is GS_ECORRUPT.
 */
static int head_load(struct gs_journal *j, struct head *h)
{
	int rc;

	memset(h, 0, sizeof(*h));
	rc = git_reference_name_to_id(&h->oid, j->repo, GS_JOURNAL_REF);
	if (rc == GIT_ENOTFOUND) {
		git_error_clear();
		return GS_OK;
	}
	if (rc == 0)
		rc = git_commit_lookup(&h->commit, j->repo, &h->oid);
	if (rc == 0)
		rc = git_commit_tree(&h->tree, h->commit);
	if (rc < 0) {
		bool lost = rc == GIT_ENOTFOUND;

		head_fini(h);
		rc = gs__err_from_git(j->ctx, rc);
		/* The branch names a commit or tree the repository lacks. */
		return lost ? gs__err_wrap(j->ctx, GS_ECORRUPT,
					   "journal: %s is broken",
					   GS_JOURNAL_REF)
			    : rc;
	}
	h->born = true;
	return GS_OK;
}

/* *found and *oid of the blob at path in tree (NULL: an empty tree). */
static int tree_find(struct gs_journal *j,
		     git_tree *tree,
		     const char *path,
		     bool *found,
		     git_oid *oid)
{
	git_tree_entry *e = NULL;
	int rc;

	*found = false;
	if (tree == NULL)
		return GS_OK;
	rc = git_tree_entry_bypath(&e, tree, path);
	if (rc == GIT_ENOTFOUND) {
		git_error_clear();
		return GS_OK;
	}
	if (rc < 0)
		return gs__err_from_git(j->ctx, rc);
	git_oid_cpy(oid, git_tree_entry_id(e));
	*found = true;
	git_tree_entry_free(e);
	return GS_OK;
}

static int
blob_put(struct gs_journal *j, const git_oid *want, const void *p, size_t len)
{
	git_oid got;
	int rc = git_blob_create_from_buffer(&got, j->repo, p, len);

	if (rc < 0)
		return gs__err_from_git(j->ctx, rc);
	GS_ASSERT(git_oid_equal(&got, want));
	return GS_OK;
}

/* Take one pending row into the group: check it, find whether the branch
 * already holds it, and if not write its two blobs (to the mempack). */
static int group_add(struct gs_journal *j,
		     struct group *g,
		     const struct head *h,
		     const struct rec *r)
{
	struct grow *w = &g->rows[g->n_rows];
	bool has_cs;
	bool has_meta;
	git_oid cs;
	git_oid meta;
	int rc;

	memset(w, 0, sizeof(*w));
	rc = rec_check(j->ctx, r);
	if (rc != GS_OK)
		return rc;
	w->id = r->id;
	w->seq = r->seq;
	w->has_first = r->has_first;
	w->first = r->first;
	w->has_last = r->has_last;
	w->last = r->last;
	gs__sha256(w->dev, r->device, r->device_len);
	upload_paths(&w->path, w->dev, r->seq);
	rc = meta_build(&g->meta, r);
	if (rc == GS_OK) {
		w->name_off = g->names.len;
		rc = put_quoted(&g->names, r->device, r->device_len, NAME_SHOW);
		w->name_len = g->names.len - w->name_off;
	}
	if (rc != GS_OK)
		return gs__err(j->ctx, rc, "journal: metadata of row %" PRId64,
			       r->id);
	rc = git_odb_hash(&w->cs_oid, r->cs, r->cs_len, GIT_OBJECT_BLOB);
	if (rc == 0)
		rc = git_odb_hash(&w->meta_oid, g->meta.data, g->meta.len,
				  GIT_OBJECT_BLOB);
	if (rc < 0)
		return gs__err_from_git(j->ctx, rc);
	rc = tree_find(j, h->tree, w->path.cs, &has_cs, &cs);
	if (rc == GS_OK)
		rc = tree_find(j, h->tree, w->path.meta, &has_meta, &meta);
	if (rc != GS_OK)
		return rc;
	if (has_cs && has_meta && git_oid_equal(&cs, &w->cs_oid) &&
	    git_oid_equal(&meta, &w->meta_oid)) {
		g->n_rows++; /* committed before a crash: mark only */
		return GS_OK;
	}
	if (has_cs || has_meta)
		return gs__err(j->ctx, GS_ECORRUPT,
			       "journal: store row %" PRId64
			       " (device %.16s, device_seq %" PRId64
			       ") is already journaled with other content",
			       r->id, w->path.dir + 11, r->seq);
	rc = blob_put(j, &w->cs_oid, r->cs, r->cs_len);
	if (rc == GS_OK)
		rc = blob_put(j, &w->meta_oid, g->meta.data, g->meta.len);
	if (rc != GS_OK)
		return rc;
	w->is_new = true;
	if (g->n_new == 0 || r->received_at > g->time_ms)
		g->time_ms = r->received_at;
	g->n_new++;
	g->n_rows++;
	return GS_OK;
}

/* Read up to max pending rows, in arrival order, into g. */
static int group_collect(struct gs_journal *j,
			 sqlite3 *db,
			 sqlite3_stmt *sel,
			 struct group *g,
			 size_t max,
			 const struct head *h)
{
	struct rec r;
	int rc = GS_OK;
	int src = SQLITE_DONE;

	g->n_rows = 0;
	g->n_new = 0;
	g->time_ms = 0;
	g->names.len = 0;
	sqlite3_reset(sel);
	sqlite3_bind_int64(sel, 1, (sqlite3_int64)max);
	while (rc == GS_OK && (src = sqlite3_step(sel)) == SQLITE_ROW) {
		rec_read(&r, sel);
		rc = group_add(j, g, h, &r);
	}
	if (rc == GS_OK && src != SQLITE_DONE)
		rc = gs__err_from_sqlite(j->ctx, src, db);
	sqlite3_reset(sel);
	return rc;
}

/* Device hash, then device_seq as the unsigned number its path shows. */
static int grow_cmp(const void *a, const void *b)
{
	const struct grow *x = a;
	const struct grow *y = b;
	int c = memcmp(x->dev, y->dev, GS_SHA256_LEN);

	if (c != 0)
		return c;
	if ((uint64_t)x->seq != (uint64_t)y->seq)
		return (uint64_t)x->seq < (uint64_t)y->seq ? -1 : 1;
	return 0;
}

/*
 * The commit message: a summary line, then one line per device (in hash
 * order, so the same group always reads the same) with its quoted id, the
 * start of its hash (its folder), its device_seq range and count. Sorts
 * g->rows.
 */
static int message_build(struct group *g)
{
	struct gs_buf *b = &g->msg;
	bool any = false;
	int64_t lo = 0;
	int64_t hi = 0;
	size_t devices = 0;
	int rc;

	if (g->n_rows > 0)
		qsort(g->rows, g->n_rows, sizeof(*g->rows), grow_cmp);
	for (size_t i = 0; i < g->n_rows; i++) {
		const struct grow *w = &g->rows[i];

		if (!w->is_new)
			continue;
		if (i == 0 ||
		    memcmp(w->dev, g->rows[i - 1].dev, GS_SHA256_LEN) != 0)
			devices++;
		if (w->has_first && (!any || w->first < lo))
			lo = w->first;
		if (w->has_last && (!any || w->last > hi))
			hi = w->last;
		any = any || w->has_first || w->has_last;
	}
	b->len = 0;
	rc = gs__buf_printf(b, "journal: %zu upload%s from %zu device%s, ",
			    g->n_new, g->n_new == 1 ? "" : "s", devices,
			    devices == 1 ? "" : "s");
	if (rc == GS_OK && any)
		rc = gs__buf_printf(
			b, "server_seq %" PRId64 "..%" PRId64 "\n\n", lo, hi);
	else if (rc == GS_OK)
		rc = gs__buf_printf(b, "no server_seq\n\n");
	for (size_t i = 0; rc == GS_OK && i < g->n_rows;) {
		const struct grow *w = &g->rows[i];
		size_t k = i;
		size_t n = 0;
		int64_t last = w->seq;

		/* The run of rows of this device; new ones only. */
		while (k < g->n_rows &&
		       memcmp(g->rows[k].dev, w->dev, GS_SHA256_LEN) == 0) {
			if (g->rows[k].is_new) {
				if (n == 0)
					w = &g->rows[k];
				last = g->rows[k].seq;
				n++;
			}
			k++;
		}
		i = k;
		if (n == 0)
			continue;
		rc = gs__buf_append(b, "device ", 7);
		if (rc == GS_OK)
			rc = gs__buf_append(b, g->names.data + w->name_off,
					    w->name_len);
		if (rc == GS_OK)
			rc = gs__buf_printf(b,
					    " (%.16s) device_seq %" PRId64
					    "..%" PRId64 ", %zu upload%s\n",
					    w->path.dir + 11, w->seq, last, n,
					    n == 1 ? "" : "s");
	}
	if (rc == GS_OK)
		rc = gs__buf_cstr(b);
	return rc;
}

/* Add oid to the pack if it is new (in the mempack, not yet on disk). */
static int
pack_add(struct gs_journal *j, git_packbuilder *pb, const git_oid *oid)
{
	GS_ASSERT(j->mempack != NULL);
	if (!j->mempack->exists(j->mempack, oid))
		return 0;
	return git_packbuilder_insert(pb, oid, NULL);
}

/* Add the trees on the way to dir ("uploads/hh/H/Axxx/Bxx/Cx") in tree. */
static int pack_add_dirs(struct gs_journal *j,
			 git_packbuilder *pb,
			 git_tree *tree,
			 const char *dir)
{
	char part[PATH_CAP];
	git_tree_entry *e = NULL;
	int rc = 0;

	for (size_t i = 0; rc == 0 && dir[i] != '\0'; i++) {
		if (dir[i + 1] != '/' && dir[i + 1] != '\0')
			continue;
		memcpy(part, dir, i + 1);
		part[i + 1] = '\0';
		rc = git_tree_entry_bypath(&e, tree, part);
		if (rc == 0)
			rc = pack_add(j, pb, git_tree_entry_id(e));
		git_tree_entry_free(e);
		e = NULL;
	}
	return rc;
}

/* Write the group's new objects (all in the mempack) as one pack; name
 * is its name, or "" if there was nothing new to write. */
static int pack_write(struct gs_journal *j,
		      const struct group *g,
		      git_tree *tree,
		      const git_oid *commit,
		      char name[GIT_OID_HEXSZ + 1])
{
	git_packbuilder *pb = NULL;
	int rc = git_packbuilder_new(&pb, j->repo);

	if (rc == 0)
		git_packbuilder_set_threads(pb, 1);
	for (size_t i = 0; rc == 0 && i < g->n_rows; i++) {
		const struct grow *w = &g->rows[i];

		if (!w->is_new)
			continue;
		rc = pack_add(j, pb, &w->cs_oid);
		if (rc == 0)
			rc = pack_add(j, pb, &w->meta_oid);
		if (rc == 0)
			rc = pack_add_dirs(j, pb, tree, w->path.dir);
	}
	if (rc == 0)
		rc = pack_add(j, pb, git_tree_id(tree));
	if (rc == 0)
		rc = pack_add(j, pb, commit);
	/* Nothing new: a re-run after a crash between pack and ref. */
	name[0] = '\0';
	if (rc == 0 && git_packbuilder_object_count(pb) > 0) {
		rc = git_packbuilder_write(pb, NULL, 0, NULL, NULL);
		if (rc == 0)
			snprintf(name, GIT_OID_HEXSZ + 1, "%s",
				 git_packbuilder_name(pb));
	}
	if (rc == 0)
		rc = git_odb_refresh(j->odb);
	git_packbuilder_free(pb);
	return rc < 0 ? gs__err_from_git(j->ctx, rc) : GS_OK;
}

/*
 * Pack folding. One pack per commit would leave a pack per group for ever,
 * and libgit2 searches every pack on each lookup that misses (measured:
 * 5 ms per commit with 64 packs, 16 ms with 1024). So the packs this
 * process writes are tracked as a chain, and each FANOUT packs of one
 * level are folded into one pack of the next level: written (fsynced)
 * first, the old ones removed after, the repository reopened so libgit2
 * forgets them. A fold that would rewrite more than FOLD_MAX uploads is
 * not done, and its packs are no longer tracked: so at most FANOUT - 1
 * packs per level stay small, and every other pack holds at least
 * FOLD_MAX / FANOUT uploads. A crash mid-fold leaves duplicates, never a
 * missing object; packs of earlier runs are left as they are (stock
 * `git repack -ad` while gridsyncd is stopped joins them all).
 */
static void pack_push(struct gs_journal *j,
		      const char *name,
		      const git_oid *base,
		      const git_oid *tip,
		      unsigned level,
		      uint64_t uploads)
{
	size_t cap = sizeof(j->packs) / sizeof(j->packs[0]);
	struct packrec *p;
	/* Only a chain can be folded by walking it (another writer or a
	 * reset moved the branch): forget what came before. */
	if (j->n_packs > 0 &&
	    !git_oid_equal(&j->packs[j->n_packs - 1].tip, base))
		j->n_packs = 0;
	if (j->n_packs == cap) {
		memmove(j->packs, j->packs + 1, (cap - 1) * sizeof(*j->packs));
		j->n_packs--;
	}
	p = &j->packs[j->n_packs++];
	snprintf(p->name, sizeof(p->name), "%s", name);
	git_oid_cpy(&p->base, base);
	git_oid_cpy(&p->tip, tip);
	p->level = level;
	p->uploads = uploads;
}

/* Insert ct and everything under it that pt (NULL: none) lacks. */
static int fold_tree(struct gs_journal *j,
		     git_packbuilder *pb,
		     git_tree *pt,
		     git_tree *ct,
		     size_t depth)
{
	int rc = git_packbuilder_insert(pb, git_tree_id(ct), NULL);

	for (size_t i = 0; rc == 0 && i < git_tree_entrycount(ct); i++) {
		const git_tree_entry *e = git_tree_entry_byindex(ct, i);
		const git_tree_entry *pe =
			pt != NULL ? git_tree_entry_byname(
					     pt, git_tree_entry_name(e))
				   : NULL;
		git_tree *sub = NULL;
		git_tree *psub = NULL;

		if (pe != NULL &&
		    git_oid_equal(git_tree_entry_id(pe), git_tree_entry_id(e)))
			continue;
		if (git_tree_entry_type(e) != GIT_OBJECT_TREE) {
			rc = git_packbuilder_insert(pb, git_tree_entry_id(e),
						    NULL);
			continue;
		}
		if (depth >= TREE_DEPTH) { /* not our layout: take it all */
			rc = git_packbuilder_insert_tree(pb,
							 git_tree_entry_id(e));
			continue;
		}
		rc = git_tree_lookup(&sub, j->repo, git_tree_entry_id(e));
		if (rc == 0 && pe != NULL &&
		    git_tree_entry_type(pe) == GIT_OBJECT_TREE)
			rc = git_tree_lookup(&psub, j->repo,
					     git_tree_entry_id(pe));
		if (rc == 0)
			rc = fold_tree(j, pb, psub, sub, depth + 1);
		git_tree_free(psub);
		git_tree_free(sub);
	}
	return rc;
}

/* Write one pack with the new objects of the chain r[0..n). */
static int fold_write(struct gs_journal *j,
		      const struct packrec *r,
		      size_t n,
		      char name[GIT_OID_HEXSZ + 1])
{
	git_packbuilder *pb = NULL;
	git_oid cur = r[n - 1].tip;
	bool stop = false;
	int rc = git_packbuilder_new(&pb, j->repo);

	if (rc == 0)
		git_packbuilder_set_threads(pb, 1);
	while (rc == 0 && !stop) {
		git_commit *c = NULL;
		git_commit *p = NULL;
		git_tree *ct = NULL;
		git_tree *pt = NULL;

		rc = git_commit_lookup(&c, j->repo, &cur);
		if (rc == 0)
			rc = git_packbuilder_insert(pb, &cur, NULL);
		if (rc == 0)
			rc = git_commit_tree(&ct, c);
		stop = rc != 0 || git_commit_parentcount(c) == 0;
		if (!stop) {
			rc = git_commit_parent(&p, c, 0);
			if (rc == 0)
				rc = git_commit_tree(&pt, p);
		}
		if (rc == 0)
			rc = fold_tree(j, pb, pt, ct, 0);
		if (!stop) {
			cur = *git_commit_parent_id(c, 0);
			stop = git_oid_equal(&cur, &r[0].base);
		}
		git_tree_free(pt);
		git_tree_free(ct);
		git_commit_free(p);
		git_commit_free(c);
	}
	if (rc == 0)
		rc = git_packbuilder_write(pb, NULL, 0, NULL, NULL);
	if (rc == 0)
		snprintf(name, GIT_OID_HEXSZ + 1, "%s",
			 git_packbuilder_name(pb));
	git_packbuilder_free(pb);
	return rc < 0 ? gs__err_from_git(j->ctx, rc) : GS_OK;
}

/* Remove a pack this process wrote, index first (git ignores a pack
 * without one, not an index without its pack). */
static void pack_remove(struct gs_journal *j, const char *name)
{
	static const char *const ext[] = { "idx", "pack" };
	char path[4096];

	for (size_t i = 0; i < 2; i++) {
		int n = snprintf(path, sizeof(path),
				 "%s/objects/pack/pack-%s.%s", j->dir, name,
				 ext[i]);

		if (n < 0 || (size_t)n >= sizeof(path) || remove(path) != 0)
			GS_WARN(j->ctx, "journal: could not remove pack %.12s",
				name);
	}
}

/* Fold while the newest FANOUT tracked packs share a level. A failed fold
 * is only logged (the packs stay); a failed reopen is returned. */
static int pack_fold(struct gs_journal *j)
{
	while (j->n_packs >= FANOUT) {
		size_t first = j->n_packs - FANOUT;
		unsigned level = j->packs[first].level;
		struct packrec old[FANOUT];
		char name[GIT_OID_HEXSZ + 1];
		uint64_t uploads = 0;
		int rc;

		for (size_t k = first; k < j->n_packs; k++) {
			if (j->packs[k].level != level)
				return GS_OK;
			uploads += j->packs[k].uploads;
		}
		memcpy(old, &j->packs[first], sizeof(old));
		j->n_packs = first;
		if (uploads > FOLD_MAX)
			return GS_OK; /* big enough: leave them, untracked */
		rc = fold_write(j, old, FANOUT, name);
		if (rc != GS_OK) {
			GS_WARN(j->ctx, "journal: folding packs: %s",
				gs_ctx_errmsg(j->ctx));
			return GS_OK;
		}
		repo_detach(j);
		for (size_t k = 0; k < FANOUT; k++)
			if (strcmp(old[k].name, name) != 0)
				pack_remove(j, old[k].name);
		rc = repo_attach(j);
		pack_push(j, name, &old[0].base, &old[FANOUT - 1].tip,
			  level + 1, uploads);
		GS_DEBUG(j->ctx, "journal: folded %d packs into %.12s", FANOUT,
			 name);
		if (rc != GS_OK)
			return rc;
	}
	return GS_OK;
}

/* Build the tree and commit of the group's new uploads, make them durable
 * as one pack, then move the branch from h (compare-and-swap). */
static int
group_commit(struct gs_journal *j, struct group *g, const struct head *h)
{
	const git_commit *parents[1];
	char pack[GIT_OID_HEXSZ + 1];
	git_signature *sig = NULL;
	git_reference *ref = NULL;
	git_tree *tree = NULL;
	git_oid tree_oid;
	git_oid commit;
	int64_t secs = g->time_ms > 0 ? g->time_ms / 1000 : 0;
	size_t n = 0;
	int rc;

	for (size_t i = 0; i < g->n_rows; i++) {
		const struct grow *w = &g->rows[i];

		if (!w->is_new)
			continue;
		g->ups[n].action = GIT_TREE_UPDATE_UPSERT;
		g->ups[n].id = w->cs_oid;
		g->ups[n].filemode = GIT_FILEMODE_BLOB;
		g->ups[n].path = w->path.cs;
		n++;
		g->ups[n].action = GIT_TREE_UPDATE_UPSERT;
		g->ups[n].id = w->meta_oid;
		g->ups[n].filemode = GIT_FILEMODE_BLOB;
		g->ups[n].path = w->path.meta;
		n++;
	}
	rc = git_tree_create_updated(&tree_oid, j->repo, h->tree, n, g->ups);
	if (rc == 0)
		rc = git_tree_lookup(&tree, j->repo, &tree_oid);
	if (rc == 0)
		rc = git_signature_new(&sig, SIG_NAME, SIG_EMAIL,
				       (git_time_t)secs, 0);
	if (rc < 0) {
		rc = gs__err_from_git(j->ctx, rc);
		goto out;
	}
	rc = message_build(g); /* sorts g->rows; the updates are built */
	if (rc != GS_OK) {
		rc = gs__err(j->ctx, rc, "journal: commit message");
		goto out;
	}
	parents[0] = h->commit;
	rc = git_commit_create(&commit, j->repo, NULL, sig, sig, NULL,
			       (const char *)g->msg.data, tree, h->born ? 1 : 0,
			       parents);
	if (rc < 0) {
		rc = gs__err_from_git(j->ctx, rc);
		goto out;
	}
	rc = pack_write(j, g, tree, &commit, pack);
	if (rc != GS_OK)
		goto out;
	git_mempack_reset(j->mempack); /* all of it is in the pack now */
	if (h->born)
		rc = git_reference_create_matching(&ref, j->repo,
						   GS_JOURNAL_REF, &commit, 1,
						   &h->oid, "journal");
	else
		rc = git_reference_create(&ref, j->repo, GS_JOURNAL_REF,
					  &commit, 0, "journal");
	if (rc < 0) {
		rc = gs__err_from_git(j->ctx, rc);
		gs__err_wrap(j->ctx, rc, "journal: moving %s", GS_JOURNAL_REF);
		goto out;
	}
	if (pack[0] != '\0')
		pack_push(j, pack, &h->oid, &commit, 0, g->n_new);
	rc = GS_OK;
out:
	git_reference_free(ref);
	git_signature_free(sig);
	git_tree_free(tree);
	return rc;
}

/* Mark the group's rows journaled, all or none. */
static int group_mark(struct gs_journal *j,
		      sqlite3 *db,
		      sqlite3_stmt *mark,
		      const struct group *g)
{
	int rc = gs__db_exec(j->ctx, db, "SAVEPOINT gs_journal_mark");

	for (size_t i = 0; rc == GS_OK && i < g->n_rows; i++) {
		sqlite3_bind_int64(mark, 1, g->rows[i].id);
		rc = gs__db_step_done(j->ctx, db, mark);
	}
	if (rc == GS_OK)
		rc = gs__db_exec(j->ctx, db, "RELEASE gs_journal_mark");
	if (rc == GS_OK)
		return rc;
	sqlite3_exec(db, "ROLLBACK TO gs_journal_mark", NULL, NULL, NULL);
	sqlite3_exec(db, "RELEASE gs_journal_mark", NULL, NULL, NULL);
	/* A RELEASE that could not commit (disk full) leaves the
	 * transaction open, and with it the write lock every push needs:
	 * end it, so the rows are marked again on the next turn. */
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

/* Free what gs__journal_sync allocated for its groups. */
static void group_fini(struct gs_ctx *ctx, struct group *g)
{
	gs__free(ctx, g->rows);
	gs__free(ctx, g->ups);
	gs__buf_fini(&g->meta);
	gs__buf_fini(&g->names);
	gs__buf_fini(&g->msg);
}

/*
 * One group per turn: read up to max pending rows, commit what the branch
 * lacks, mark them all, fold packs. A row is read again only if its group
 * failed, so a persistent failure (GS_ECORRUPT) stops the journal at that
 * row instead of skipping it: gaps would be worse than a stall.
 */
int gs__journal_sync(struct gs_journal *j,
		     sqlite3 *db,
		     size_t max_per_commit,
		     size_t *n_out)
{
	static const char sel_sql[] =
		"SELECT " REC_COLS " FROM srv_received WHERE journaled = 0"
		" ORDER BY id LIMIT ?1";
	static const char mark_sql[] =
		"UPDATE srv_received SET journaled = 1 WHERE id = ?1";
	struct group g = { 0 };
	struct head h = { 0 };
	sqlite3_stmt *sel = NULL;
	sqlite3_stmt *mark = NULL;
	size_t max = max_per_commit;
	size_t appended = 0;
	size_t commits = 0;
	int rc;

	GS_CHECK_ARG(j != NULL && db != NULL);
	rc = repo_ready(j);
	if (rc != GS_OK)
		return rc;
	if (max == 0)
		max = GS_JOURNAL_DEFAULT_PER_COMMIT;
	if (max > GS_JOURNAL_MAX_PER_COMMIT)
		return gs__err(j->ctx, GS_EINVAL,
			       "journal: %zu uploads per commit, at most %d",
			       max, GS_JOURNAL_MAX_PER_COMMIT);
	gs__buf_init(&g.meta, j->ctx, META_MAX);
	gs__buf_init(&g.names, j->ctx, NAMES_MAX);
	gs__buf_init(&g.msg, j->ctx, MSG_MAX);
	g.rows = gs__calloc(j->ctx, max, sizeof(*g.rows));
	g.ups = gs__calloc(j->ctx, 2 * max, sizeof(*g.ups));
	if (g.rows == NULL || g.ups == NULL) {
		rc = gs__err(j->ctx, GS_ENOMEM, "journal: out of memory");
		goto out;
	}
	rc = gs__db_prepare(j->ctx, db, &sel, sel_sql);
	if (rc == GS_OK)
		rc = gs__db_prepare(j->ctx, db, &mark, mark_sql);
	while (rc == GS_OK) {
		rc = head_load(j, &h);
		if (rc == GS_OK)
			rc = group_collect(j, db, sel, &g, max, &h);
		if (rc == GS_OK && g.n_new > 0)
			rc = group_commit(j, &g, &h);
		if (rc != GS_OK) {
			git_mempack_reset(j->mempack); /* drop the group */
			break;
		}
		if (g.n_rows == 0)
			break;
		rc = group_mark(j, db, mark, &g);
		head_fini(&h); /* before a fold reopens the repository */
		if (rc == GS_OK)
			rc = pack_fold(j);
		if (rc != GS_OK)
			break;
		appended += g.n_new;
		commits += g.n_new > 0;
		if (g.n_rows < max)
			break;
	}
	if (rc == GS_OK) {
		GS_DEBUG(j->ctx, "journal: %zu uploads in %zu commits",
			 appended, commits);
		if (n_out != NULL)
			*n_out = appended;
	}
out:
	head_fini(&h);
	sqlite3_finalize(sel);
	sqlite3_finalize(mark);
	group_fini(j->ctx, &g);
	return rc;
}

/* ---- verify ------------------------------------------------------------- */

/* One upload found in the branch's tree. */
struct upl {
	uint8_t dev[GS_SHA256_LEN];
	uint64_t seq;
	git_oid cs;
	git_oid meta;
	bool has_cs;
	bool has_meta;
	bool seen; /* a store row names it */
	bool bad;  /* its changeset does not fit the sha256 of its .meta */
};

/* State of one verify: the report being filled and the uploads of the
 * tip's tree (sorted once the walk is done). */
struct verify {
	struct gs_journal *j;
	struct gs_journal_report rep;
	struct upl *u;
	size_t n;
	size_t cap;
	uint64_t layout;  /* tree entries that are not ours */
	bool history_bad; /* a merge, or a commit that changes or deletes */
	int err;          /* a failure inside a libgit2 callback */
	char first[200];  /* the first problem, for the detail text */
	struct gs_buf meta;
};

/* Keep the first problem found for the detail text (one line). */
static void note(struct verify *v, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void note(struct verify *v, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (v->first[0] == '\0')
		vsnprintf(v->first, sizeof(v->first), fmt, ap);
	va_end(ap);
}

/* Lowercase hex only: the layout never uses capitals. */
static bool all_hex(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* Exactly len decimal digits, no sign, no overflow (not strtoull: it
 * accepts signs and spaces). */
static bool parse_digits(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned d = (unsigned)(s[i] - '0');

		if (s[i] < '0' || s[i] > '9' || v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

/* n bytes from 2n hex digits already checked with all_hex. */
static void unhex(uint8_t *out, const char *hex, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char a = hex[2 * i];
		char b = hex[2 * i + 1];

		out[i] = (uint8_t)(((a <= '9' ? a - '0' : a - 'a' + 10) << 4) |
				   (b <= '9' ? b - '0' : b - 'a' + 10));
	}
}

/* Append an upload found in the tree; the array doubles up to VERIFY_MAX
 * entries (88 bytes each). */
static int upl_push(struct verify *v, const uint8_t *dev, uint64_t seq)
{
	struct upl *u;

	if (v->n == v->cap) {
		size_t cap = v->cap != 0 ? 2 * v->cap : 1024;

		if (cap > VERIFY_MAX)
			return gs__err(v->j->ctx, GS_ETOOBIG,
				       "journal: more than %u uploads",
				       VERIFY_MAX);
		u = gs__realloc(v->j->ctx, v->u, cap * sizeof(*u));
		if (u == NULL)
			return gs__err(v->j->ctx, GS_ENOMEM,
				       "journal: out of memory");
		v->u = u;
		v->cap = cap;
	}
	u = &v->u[v->n++];
	memset(u, 0, sizeof(*u));
	memcpy(u->dev, dev, GS_SHA256_LEN);
	u->seq = seq;
	return GS_OK;
}

/*
 * The upload a blob at root + name stands for, if the path fits the
 * layout. root is "uploads/hh/H/Axxx/Bxx/Cx/" (checked level by level).
 */
static bool blob_name(const char *root,
		      const char *name,
		      uint8_t *dev,
		      uint64_t *seq,
		      bool *is_meta)
{
	size_t len = strlen(name);

	if (len < SEQ_DIGITS || !parse_digits(name, SEQ_DIGITS, seq))
		return false;
	if (strcmp(name + SEQ_DIGITS, ".changeset") == 0)
		*is_meta = false;
	else if (strcmp(name + SEQ_DIGITS, ".meta") == 0)
		*is_meta = true;
	else
		return false;
	/* The folders must be the ones this sequence number belongs in. */
	if (memcmp(root + 76, name, A_DIGITS) != 0 || root[97] != name[17] ||
	    root[101] != name[18])
		return false;
	unhex(dev, root + 11, GS_SHA256_LEN);
	return true;
}

/* Is name a valid entry of a tree at depth (0 = root) under root? */
static bool tree_name(const char *root, size_t depth, const char *name)
{
	size_t len = strlen(name);
	size_t n;

	switch (depth) {
	case 0:
		return strcmp(name, "uploads") == 0;
	case 1:
		return len == 2 && all_hex(name, 2);
	case 2:
		return len == HEX_LEN && all_hex(name, len) &&
		       memcmp(name, root + 8, 2) == 0;
	case 3:
	case 4:
	case 5:
		/* A, B, C: digits then 'x' to 20, 3 and 2 characters. */
		n = depth == 3 ? A_DIGITS : 1;
		return len == (depth == 3 ? SEQ_DIGITS : 7 - depth) &&
		       strspn(name, "0123456789") == n &&
		       strspn(name + n, "x") == len - n;
	default:
		return false;
	}
}

/* git_tree_walk callback: collect uploads, count what is not ours. */
static int walk_cb(const char *root, const git_tree_entry *e, void *payload)
{
	struct verify *v = payload;
	const char *name = git_tree_entry_name(e);
	size_t depth = 0;
	uint8_t dev[GS_SHA256_LEN];
	uint64_t seq;
	bool is_meta;
	struct upl *last;

	for (const char *p = root; *p != '\0'; p++)
		depth += *p == '/';
	if (git_tree_entry_type(e) == GIT_OBJECT_TREE) {
		if (tree_name(root, depth, name))
			return 0;
		v->layout++;
		note(v, "a tree entry at depth %zu is not part of the layout",
		     depth);
		return 1; /* skip it */
	}
	if (depth != 6 || git_tree_entry_filemode(e) != GIT_FILEMODE_BLOB ||
	    !blob_name(root, name, dev, &seq, &is_meta)) {
		v->layout++;
		note(v, "an entry at depth %zu is not part of the layout",
		     depth);
		return 0;
	}
	/* Tree order puts S.changeset right before S.meta. */
	last = v->n > 0 ? &v->u[v->n - 1] : NULL;
	if (last == NULL || last->seq != seq ||
	    memcmp(last->dev, dev, GS_SHA256_LEN) != 0) {
		v->err = upl_push(v, dev, seq);
		if (v->err != GS_OK)
			return -1;
		last = &v->u[v->n - 1];
	}
	if (is_meta) {
		last->has_meta = true;
		git_oid_cpy(&last->meta, git_tree_entry_id(e));
	} else {
		last->has_cs = true;
		git_oid_cpy(&last->cs, git_tree_entry_id(e));
	}
	return 0;
}

/* Does every entry of a (the parent's tree) stay, unchanged or grown, in b? */
static int only_adds(struct verify *v, git_tree *a, git_tree *b, size_t depth)
{
	git_tree *sa = NULL;
	git_tree *sb = NULL;
	int rc = 0;

	if (depth > TREE_DEPTH)
		return 1;
	for (size_t i = 0; rc == 0 && i < git_tree_entrycount(a); i++) {
		const git_tree_entry *ea = git_tree_entry_byindex(a, i);
		const git_tree_entry *eb =
			git_tree_entry_byname(b, git_tree_entry_name(ea));

		if (eb == NULL)
			return 1;
		if (git_oid_equal(git_tree_entry_id(ea), git_tree_entry_id(eb)))
			continue;
		if (git_tree_entry_type(ea) != GIT_OBJECT_TREE ||
		    git_tree_entry_type(eb) != GIT_OBJECT_TREE)
			return 1;
		rc = git_tree_lookup(&sa, v->j->repo, git_tree_entry_id(ea));
		if (rc == 0)
			rc = git_tree_lookup(&sb, v->j->repo,
					     git_tree_entry_id(eb));
		if (rc == 0)
			rc = only_adds(v, sa, sb, depth + 1);
		git_tree_free(sa);
		git_tree_free(sb);
		sa = NULL;
		sb = NULL;
	}
	return rc;
}

/*
 * Walk the first-parent chain from the tip to the root: count commits, and
 * check that none is a merge and each one's tree only adds to its
 * parent's (the first problem is noted, the walk goes on). A parent or
 * tree that cannot be found is a broken history, not an I/O error.
 */
static int check_history(struct verify *v, const struct head *h)
{
	git_commit *c = NULL;
	git_commit *p = NULL;
	git_tree *ct = NULL;
	git_tree *pt = NULL;
	char id[GIT_OID_HEXSZ + 1];
	int rc = 0;

	if (!h->born)
		return GS_OK;
	rc = git_commit_dup(&c, h->commit);
	while (rc == 0 && c != NULL) {
		unsigned np = git_commit_parentcount(c);

		v->rep.commits++;
		git_oid_tostr(id, sizeof(id), git_commit_id(c));
		if (np > 1) {
			v->history_bad = true;
			note(v, "commit %.12s is a merge", id);
		}
		if (np == 0)
			break;
		rc = git_commit_parent(&p, c, 0);
		if (rc == 0)
			rc = git_commit_tree(&ct, c);
		if (rc == 0)
			rc = git_commit_tree(&pt, p);
		if (rc == 0)
			rc = only_adds(v, pt, ct, 0);
		if (rc == GIT_ENOTFOUND) {
			git_error_clear();
			v->history_bad = true;
			note(v, "commit %.12s: parent or tree is missing", id);
			rc = 0;
			break;
		}
		if (rc == 1) {
			v->history_bad = true;
			note(v,
			     "commit %.12s changes or deletes what its parent "
			     "holds",
			     id);
			rc = 0; /* keep walking: count every commit */
		}
		git_tree_free(ct);
		git_tree_free(pt);
		ct = NULL;
		pt = NULL;
		git_commit_free(c);
		c = p;
		p = NULL;
	}
	git_tree_free(ct);
	git_tree_free(pt);
	git_commit_free(p);
	git_commit_free(c);
	return rc < 0 ? gs__err_from_git(v->j->ctx, rc) : GS_OK;
}

/* The sha256 line of a .meta blob, if it has a well-formed one. */
static bool meta_sha(const char *m, size_t len, uint8_t out[GS_SHA256_LEN])
{
	static const char key[] = "\nsha256 ";
	size_t k = sizeof(key) - 1;

	for (size_t i = 0; i + k + HEX_LEN < len; i++) {
		if (memcmp(m + i, key, k) != 0)
			continue;
		if (!all_hex(m + i + k, HEX_LEN) || m[i + k + HEX_LEN] != '\n')
			return false;
		unhex(out, m + i + k, GS_SHA256_LEN);
		return true;
	}
	return false;
}

/* A refused upload kept by its hash alone: an empty changeset blob whose
 * metadata says 0 bytes and result REJECTED. Escaping keeps a newline out
 * of the quoted device id, so these keys are whole lines. */
static bool has_text(const char *m, size_t len, const char *key)
{
	size_t k = strlen(key);

	for (size_t i = 0; i + k <= len; i++)
		if (memcmp(m + i, key, k) == 0)
			return true;
	return false;
}

static bool meta_hash_only(const char *m, size_t len)
{
	return has_text(m, len, "\nbytes 0\n") &&
	       has_text(m, len, "\nresult 3\n");
}

/* Each upload in the tree: both blobs present, and its changeset's
 * sha256 the one its metadata states (catches an amended blob). */
static int check_uploads(struct verify *v)
{
	git_blob *cs = NULL;
	git_blob *meta = NULL;
	uint8_t want[GS_SHA256_LEN];
	uint8_t got[GS_SHA256_LEN];
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < v->n; i++) {
		struct upl *u = &v->u[i];
		char hex[HEX_LEN + 1];

		gs__hex(hex, u->dev, GS_SHA256_LEN);
		if (!u->has_cs || !u->has_meta) {
			u->bad = true;
			note(v, "upload %.16s/%" PRIu64 " lacks its %s", hex,
			     u->seq, u->has_cs ? "metadata" : "changeset");
			continue;
		}
		rc = git_blob_lookup(&cs, v->j->repo, &u->cs);
		if (rc == 0)
			rc = git_blob_lookup(&meta, v->j->repo, &u->meta);
		if (rc == 0) {
			gs__sha256(got, git_blob_rawcontent(cs),
				   (size_t)git_blob_rawsize(cs));
			bool hash_only =
				git_blob_rawsize(cs) == 0 &&
				meta_hash_only(git_blob_rawcontent(meta),
					       (size_t)git_blob_rawsize(meta));

			if (!meta_sha(git_blob_rawcontent(meta),
				      (size_t)git_blob_rawsize(meta), want) ||
			    (!hash_only &&
			     memcmp(want, got, GS_SHA256_LEN) != 0)) {
				u->bad = true;
				note(v,
				     "upload %.16s/%" PRIu64
				     ": changeset does not match the sha256 "
				     "of its metadata",
				     hex, u->seq);
			}
		}
		if (rc == GIT_ENOTFOUND || rc == GIT_EMISMATCH) {
			git_error_clear();
			u->bad = true;
			note(v,
			     "upload %.16s/%" PRIu64 ": a blob is missing or "
			     "damaged",
			     hex, u->seq);
			rc = 0;
		}
		git_blob_free(cs);
		git_blob_free(meta);
		cs = NULL;
		meta = NULL;
	}
	return rc < 0 ? gs__err_from_git(v->j->ctx, rc) : GS_OK;
}

/* The order bsearch uses to find a store row's upload. */
static int upl_cmp(const void *a, const void *b)
{
	const struct upl *x = a;
	const struct upl *y = b;
	int c = memcmp(x->dev, y->dev, GS_SHA256_LEN);

	if (c != 0)
		return c;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Is the journal's copy u exactly the store's row r? */
static int same(struct verify *v,
		const struct upl *u,
		const struct rec *r,
		bool *eq,
		const char **why)
{
	git_oid oid;
	int rc;

	*eq = false;
	if (u->bad) {
		*why = "the journal's copy is inconsistent";
		return GS_OK;
	}
	if (rec_check(v->j->ctx, r) != GS_OK) {
		*why = "the store row's sha256 does not match its changeset";
		return GS_OK;
	}
	rc = git_odb_hash(&oid, r->cs, r->cs_len, GIT_OBJECT_BLOB);
	if (rc < 0)
		return gs__err_from_git(v->j->ctx, rc);
	if (!git_oid_equal(&oid, &u->cs)) {
		*why = "changeset bytes differ";
		return GS_OK;
	}
	rc = meta_build(&v->meta, r);
	if (rc != GS_OK)
		return gs__err(v->j->ctx, rc,
			       "journal: metadata of row %" PRId64, r->id);
	rc = git_odb_hash(&oid, v->meta.data, v->meta.len, GIT_OBJECT_BLOB);
	if (rc < 0)
		return gs__err_from_git(v->j->ctx, rc);
	if (!git_oid_equal(&oid, &u->meta)) {
		*why = "metadata differs (sha256, hlc, result, server_seq or "
		       "time)";
		return GS_OK;
	}
	*eq = true;
	return GS_OK;
}

/*
 * Compare every store row with the journal, in arrival order. A pending
 * row may already be in the tree (a crash before its mark): it must then
 * be equal too, but counts as pending, not matched. A row that is bad on
 * its own (sha256 not its changeset's) is a mismatch even if git agrees.
 */
static int check_store(struct verify *v, sqlite3 *db, sqlite3_stmt *st)
{
	struct rec r;
	struct upl key = { 0 };
	int rc = GS_OK;
	int src = SQLITE_DONE;

	while (rc == GS_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
		struct upl *u;
		const char *why = NULL;
		bool eq = false;
		char hex[HEX_LEN + 1];

		rec_read(&r, st);
		gs__sha256(key.dev, r.device, r.device_len);
		key.seq = (uint64_t)r.seq;
		gs__hex(hex, key.dev, GS_SHA256_LEN);
		u = v->n > 0 ? bsearch(&key, v->u, v->n, sizeof(*v->u), upl_cmp)
			     : NULL;
		if (u == NULL) {
			if (r.journaled == 0) {
				v->rep.pending++;
				continue;
			}
			v->rep.missing++;
			note(v,
			     "store row %" PRId64
			     " (device %.16s, device_seq %" PRId64
			     ") is marked journaled but absent",
			     r.id, hex, r.seq);
			continue;
		}
		u->seen = true;
		rc = same(v, u, &r, &eq, &why);
		if (rc != GS_OK)
			break;
		if (r.journaled == 0)
			v->rep.pending++;
		else if (eq)
			v->rep.matched++;
		if (!eq) {
			v->rep.mismatched++;
			note(v,
			     "store row %" PRId64
			     " (device %.16s, device_seq %" PRId64 "): %s",
			     r.id, hex, r.seq, why);
		}
	}
	if (rc == GS_OK && src != SQLITE_DONE)
		rc = gs__err_from_sqlite(v->j->ctx, src, db);
	return rc;
}

/*
 * Order: history, then the tree's uploads against their own metadata,
 * then the store row by row, then what the tree has that the store lacks.
 * Problems are counted, not returned early, so the report is complete.
 */
int gs__journal_verify(struct gs_journal *j,
		       sqlite3 *db,
		       struct gs_journal_report *out)
{
	static const char all_sql[] =
		"SELECT " REC_COLS " FROM srv_received ORDER BY id";
	struct verify v;
	struct head h = { 0 };
	sqlite3_stmt *st = NULL;
	bool in_txn = false;
	int rc;

	GS_CHECK_ARG(j != NULL && db != NULL && out != NULL);
	rc = repo_ready(j);
	if (rc != GS_OK)
		return rc;
	memset(&v, 0, sizeof(v));
	v.j = j;
	gs__buf_init(&v.meta, j->ctx, META_MAX);
	/* The store's snapshot first, then the branch: a row marked in the
	 * snapshot was committed to git before, so it is in the tip read
	 * after (verify may run beside a writing gridsyncd). */
	rc = gs__db_exec(j->ctx, db, "SAVEPOINT gs_journal_verify");
	if (rc != GS_OK)
		goto out;
	in_txn = true;
	rc = gs__db_prepare(j->ctx, db, &st, all_sql);
	if (rc == GS_OK)
		rc = gs__db_exec(j->ctx, db,
				 "SELECT count(*) FROM srv_received");
	if (rc == GS_OK)
		rc = head_load(j, &h);
	if (rc == GS_ECORRUPT) {
		/* Report it, and every marked row as missing. */
		v.history_bad = true;
		note(&v, "%s", gs_ctx_errmsg(j->ctx));
		rc = GS_OK;
	}
	if (rc == GS_OK)
		rc = check_history(&v, &h);
	if (rc == GS_OK && h.born) {
		int grc = git_tree_walk(h.tree, GIT_TREEWALK_PRE, walk_cb, &v);

		if (grc < 0)
			rc = v.err != GS_OK ? v.err
					    : gs__err_from_git(j->ctx, grc);
	}
	if (rc == GS_OK)
		rc = check_uploads(&v);
	if (rc == GS_OK) {
		if (v.n > 0)
			qsort(v.u, v.n, sizeof(*v.u), upl_cmp);
		rc = check_store(&v, db, st);
	}
	if (rc != GS_OK)
		goto out;
	v.rep.uploads = v.n;
	for (size_t i = 0; i < v.n; i++) {
		char hex[HEX_LEN + 1];

		if (v.u[i].seen)
			continue;
		gs__hex(hex, v.u[i].dev, GS_SHA256_LEN);
		v.rep.mismatched++;
		note(&v, "upload %.16s/%" PRIu64 " has no store row", hex,
		     v.u[i].seq);
	}
	v.rep.mismatched += v.layout;
	*out = v.rep;
	if (v.rep.mismatched > 0 || v.rep.missing > 0 || v.history_bad)
		rc = gs__err(j->ctx, GS_ECORRUPT,
			     "journal: %" PRIu64 " mismatched, %" PRIu64
			     " missing, history %s; first: %s",
			     v.rep.mismatched, v.rep.missing,
			     v.history_bad ? "broken" : "intact", v.first);
	else
		GS_DEBUG(j->ctx,
			 "journal: %" PRIu64 " commits, %" PRIu64
			 " uploads verified, %" PRIu64 " pending",
			 v.rep.commits, v.rep.uploads, v.rep.pending);
out:
	sqlite3_finalize(st);
	if (in_txn)
		sqlite3_exec(db, "RELEASE gs_journal_verify", NULL, NULL, NULL);
	head_fini(&h);
	gs__free(j->ctx, v.u);
	gs__buf_fini(&v.meta);
	return rc;
}
