/*
 * Change capture on the handheld. Every user action is one write
 * transaction; a sqlite3session on the replicated tables records it, and
 * before COMMIT its changeset becomes the next outbox entry (device_seq,
 * HLC, SHA-256, bytes) in the same transaction. The record and its outbox
 * entry commit together or not at all.
 *
 *   gs__capture_begin()    BEGIN IMMEDIATE, stamp, start a session
 *   ... the caller's INSERT/UPDATE/DELETE on replicated tables ...
 *   gs__capture_commit()   changeset -> gs_outbox row, COMMIT
 *   (or gs__capture_rollback())
 *
 * Bookkeeping tables (gs_*) are never captured. One gs_capture per
 * connection; loop thread only. Internal.
 */
#ifndef GRIDSYNC_CAPTURE_H
#define GRIDSYNC_CAPTURE_H

#include <stdbool.h>
#include <stdint.h>

#include <gridsync/db.h>

struct gs_capture;

/* Create the device bookkeeping tables if missing (gs_outbox, gs_state,
 * gs_meta, gs_conflict). Idempotent. */
int gs__bookkeeping_install(struct gs_ctx *ctx, sqlite3 *db);

/* Prepare capture on db (borrowed; must outlive the capture). */
int gs__capture_open(struct gs_capture **out, struct gs_ctx *ctx, sqlite3 *db);
void gs__capture_close(struct gs_capture *c);

/*
 * Start a captured write transaction. *hlc_out is the stamp of this
 * transaction: the caller writes it into the rows' hlc columns. Returns
 * GS_EBUSY if another writer holds the database past the busy timeout.
 */
int gs__capture_begin(struct gs_capture *c, uint64_t *hlc_out);

/*
 * Commit: store the transaction's changeset as the next outbox entry and
 * COMMIT. *seq_out (may be NULL) is the entry's device_seq, or 0 when the
 * transaction changed nothing replicated (no entry is written). On failure
 * the transaction is rolled back: nothing was saved.
 */
int gs__capture_commit(struct gs_capture *c, uint64_t *seq_out);

/* Abandon the transaction. Safe to call when none is open. */
void gs__capture_rollback(struct gs_capture *c);

/* True between begin and commit/rollback. */
bool gs__capture_active(const struct gs_capture *c);

/* The device's clock and sequence floors as stored (for status and sync):
 * the highest device_seq ever assigned and the highest HLC issued or
 * received. Runs its own read. */
int gs__capture_state(struct gs_capture *c,
		      uint64_t *seq_out,
		      uint64_t *hlc_out);

#endif
