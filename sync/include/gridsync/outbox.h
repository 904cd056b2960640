/*
 * Guarding the handheld's own outbox (internal, gs__).
 *
 * The outbox bytes sit on the handheld's storage for hours or days before
 * they are sent, and storage damages things. Nothing in gs_outbox is used
 * (pushed, undone, redone, shown) before the strict parser of
 * proto/changeset.c has accepted it: Debian 12's SQLite spins for ever or
 * crashes on some malformed changesets, and its invert is the first thing a
 * download does with the outbox.
 *
 * A damaged entry is quarantined: its bytes move to gs_quarantine (kept,
 * never used again), a gs_conflict row tells the worker, and the rows it
 * wrote that are still in the tables are re-captured from their current
 * values as a new entry at the end of the outbox, stamped with the damaged
 * entry's HLC. The rows are found by that HLC (every device-written row
 * carries the stamp of its last write) and, when the bytes still parse, by
 * their keys. The pending entries are renumbered so that no sequence gap
 * is left behind. All of it in the caller's transaction.
 */
#ifndef GRIDSYNC_OUTBOX_H
#define GRIDSYNC_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include <gridsync/db.h>

struct gs_outbox_report {
	size_t quarantined; /* entries moved to gs_quarantine */
	size_t recaptured;  /* rows re-captured into new entries */
	size_t entries;     /* new entries written */
};

/* The highest device_seq the server recorded (gs_state.seq_floor). */
int gs__seq_floor(struct gs_ctx *ctx, sqlite3 *db, uint64_t *out);

/* Check each entry's SHA-256 too (a full check; without it only the
 * parser runs, which is what keeps SQLite safe). */
#define GS_OUTBOX_CHECK_HASH 1u

/* Validate every gs_outbox row; quarantine and re-capture the damaged
 * ones (see above). The caller holds a write transaction. rep may be
 * NULL; its counts are added to. */
int gs__outbox_check(struct gs_ctx *ctx,
		     sqlite3 *db,
		     unsigned flags,
		     struct gs_outbox_report *rep);

/* Renumber the pending entries start, start + 1, ... in their order;
 * settled (rejected) entries at or above start move below every pending
 * one, order kept. Caller holds a write transaction. */
int gs__outbox_renumber(struct gs_ctx *ctx, sqlite3 *db, uint64_t start);

/* Keys of the rows to re-capture: a temporary table, filled by the
 * helpers below and emptied by gs__outbox_recapture. */
int gs__outbox_keys_by_hlc(struct gs_ctx *ctx, sqlite3 *db, uint64_t hlc);
int gs__outbox_key_add(struct gs_ctx *ctx,
		       sqlite3 *db,
		       const char *table,
		       const char *id);
int gs__outbox_keys_by_sent(struct gs_ctx *ctx,
			    sqlite3 *db,
			    uint64_t after,
			    uint64_t upto);

/* Write the current values of the keyed rows that still exist as one new
 * pending entry (next seq, stamped hlc); *rows_out counts them (0: no entry
 * was written). Empties the key table. */
int gs__outbox_recapture(struct gs_ctx *ctx,
			 sqlite3 *db,
			 uint64_t hlc,
			 size_t *rows_out);

/* Remember the keys an acknowledged entry wrote (gs_sent), so that a
 * server restored from an older backup can be sent them again. */
int gs__outbox_sent_log(struct gs_ctx *ctx,
			sqlite3 *db,
			uint64_t seq,
			uint64_t hlc,
			const uint8_t *cs,
			size_t len);

/*
 * The server holds the device's entries only up to held, though it had
 * acknowledged up to floor (it was restored from an older backup): the
 * rows each lost entry wrote (gs_sent) are re-captured from their current
 * values as entries held + 1, ..., in their order and with their stamps,
 * the pending entries follow, and the floor drops to held. *unknown_out
 * counts lost entries whose rows are not known (older than gs_sent).
 */
int gs__outbox_resend_lost(struct gs_ctx *ctx,
			   sqlite3 *db,
			   uint64_t held,
			   uint64_t floor,
			   struct gs_outbox_report *rep,
			   uint64_t *unknown_out);

/* A new incarnation: the pending entries are renumbered from 1, the floor
 * and the sent log start again. */
int gs__outbox_restart(struct gs_ctx *ctx, sqlite3 *db);

#endif
