/*
 * The tamper-evident journal: every upload the server received (applied
 * or rejected) appended to a bare git repository with libgit2, committed
 * in groups, with fsync on (DESIGN.md traps 4 and 9). Stock `git log`
 * and `git fsck` work on it. Loop thread only; one writer per repository.
 *
 * The store records each upload and its journal intent (srv_received with
 * journaled = 0) in the same transaction as the merge; gs__journal_sync
 * appends what is not journaled yet and marks it, so a crash between the
 * store's commit and the git commit loses nothing: the next sync appends
 * it (with an identical tree).
 */
#ifndef GRIDSYNC_JOURNAL_H
#define GRIDSYNC_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <gridsync/db.h>

struct gs_journal;

/* The branch every journal commit goes on (HEAD points at it). */
#define GS_JOURNAL_REF "refs/heads/main"

/* Uploads per commit when the caller passes 0, and the most it may ask. */
#define GS_JOURNAL_DEFAULT_PER_COMMIT 256
#define GS_JOURNAL_MAX_PER_COMMIT     4096

/*
 * Open the bare repository at dir, creating it (and missing parents) if
 * there is none, with HEAD on GS_JOURNAL_REF. Initialises libgit2 (counted:
 * gs__journal_close releases it) and turns its fsync of the git directory
 * on (DESIGN.md trap 4). *out is closed with gs__journal_close; ctx is
 * borrowed for the journal's lifetime. GS_ENOMEM, GS_EIO, GS_ERROR.
 */
int gs__journal_open(struct gs_journal **out,
		     struct gs_ctx *ctx,
		     const char *dir);
/* Close a journal; NULL is a no-op. */
void gs__journal_close(struct gs_journal *j);

/*
 * Append every upload in the store's srv_received table (db is the
 * store's connection, gs__store_db) not journaled yet, in arrival order, at
 * most max_per_commit uploads per commit (0: 256), and mark them journaled
 * (each group in its own savepoint, after its commit is durable). An
 * upload already in the journal with the same content (a crash between the
 * git commit and the mark) is only marked. *n_out (may be NULL): uploads
 * newly committed, set on success. GS_EINVAL (max_per_commit above the
 * maximum), GS_ECORRUPT (a store row whose sha256 does not fit its bytes,
 * or an upload the journal already holds with other content: nothing of
 * that group is written), GS_EBUSY (another writer moved the branch),
 * GS_ENOMEM, GS_EIO, GS_EFULL, or a translated SQLite error. Groups
 * committed before a failure stay committed and marked.
 */
int gs__journal_sync(struct gs_journal *j,
		     sqlite3 *db,
		     size_t max_per_commit,
		     size_t *n_out);

struct gs_journal_report {
	uint64_t commits;
	uint64_t uploads;    /* in the journal */
	uint64_t matched;    /* equal to the store's record */
	uint64_t mismatched; /* different bytes or result */
	uint64_t missing;    /* journaled in the store, absent in git */
	uint64_t pending;    /* not journaled yet (not an error) */
};

/*
 * Replay the journal and compare every upload with the store. GS_OK only
 * if nothing is mismatched or missing and the history is intact;
 * GS_ECORRUPT otherwise, with what in the report and detail text.
 * Checked: the first-parent chain from GS_JOURNAL_REF (no merges, every
 * commit only adds to its parent's tree), the tree layout, each upload's
 * changeset against the sha256 in its metadata, and each upload against
 * the store's row (bytes, sha256, hlc, result, reject code, server_seq
 * range, receive time). mismatched also counts journal entries with no
 * store row and entries that break the layout. *out is filled on GS_OK and
 * GS_ECORRUPT; other errors (GS_ENOMEM, GS_EIO, ...) leave it unset.
 */
int gs__journal_verify(struct gs_journal *j,
		       sqlite3 *db,
		       struct gs_journal_report *out);

/*
 * Translate a libgit2 result (< 0) into a GS_E* code, copying
 * git_error_last() into ctx's detail text ("git: ..."). The one place
 * libgit2 errors are mapped.
 */
int gs__err_from_git(struct gs_ctx *ctx, int rc);

/* True once this process has told libgit2 to fsync the git directory
 * (GIT_OPT_ENABLE_FSYNC_GITDIR); libgit2 1.5 has no getter for it. */
bool gs__journal_fsync_enabled(void);

#endif
