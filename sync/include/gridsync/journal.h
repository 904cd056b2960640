/*
 * The tamper-evident journal: every upload the server received (applied
 * or rejected) appended to a bare git repository with libgit2, committed
 * in groups, with fsync on (RELIABILITY.md traps 4 and 9). Stock `git log`
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

#include <stddef.h>
#include <stdint.h>

#include <gridsync/db.h>

struct gs_journal;

/* Open the bare repository at dir, creating it if missing. */
int gs__journal_open(struct gs_journal **out,
		     struct gs_ctx *ctx,
		     const char *dir);
void gs__journal_close(struct gs_journal *j);

/* Append every upload in the store's srv_received table (db is the
 * store's connection, gs__store_db) not journaled yet, at most
 * max_per_commit uploads per commit (0: 256), and mark them journaled.
 * *n_out (may be NULL): uploads appended. */
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

/* Replay the journal and compare every upload with the store. GS_OK only
 * if nothing is mismatched or missing and the history is intact;
 * GS_ECORRUPT otherwise, with what in the report and detail text. */
int gs__journal_verify(struct gs_journal *j,
		       sqlite3 *db,
		       struct gs_journal_report *out);

#endif
