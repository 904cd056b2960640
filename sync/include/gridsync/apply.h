/*
 * Applying what the server sends to a handheld database (DESIGN.md
 * section 7). Server changes are authoritative, and local edits not yet
 * acknowledged stay visible: in one transaction, with capture off, the
 * pending outbox entries are undone (newest first), the download is
 * applied, and the pending entries are redone (oldest first). Entries the
 * server rejected are undone and not redone, so the device converges on
 * the server's rows plus its own pending work. Internal.
 *
 * Only changesets that the authenticated server produced reach this code,
 * and even those are checked by our own parser first (Debian 12's SQLite
 * hangs on malformed bytes); the apply filter admits replicated tables
 * only. Outbox entries are this device's own captures.
 */
#ifndef GRIDSYNC_APPLY_H
#define GRIDSYNC_APPLY_H

#include <stdbool.h>
#include <stdint.h>

#include <gridsync/db.h>

/* Outbox entry states (gs_outbox.status). */
#define GS_OUTBOX_PENDING  0 /* not yet acknowledged */
#define GS_OUTBOX_REJECTED 1 /* rejected by the server: undo, then drop */

struct gs_apply_stats {
	size_t quarantined; /* damaged outbox entries set aside */
	size_t rows;        /* rows in the download */
	size_t undone;      /* outbox entries undone */
	size_t redone;      /* pending entries redone */
	size_t dropped;     /* rejected entries dropped */
};

/*
 * Apply one download changeset (uncompressed) and move the cursor to
 * cursor and the device clock past remote_hlc, atomically. cs may be NULL
 * (len 0) to only settle rejected entries. GS_EPROTO if the bytes do not
 * validate (nothing applied), GS_EBUSY if a local save holds the database.
 */
int gs__apply_download(struct gs_ctx *ctx,
		       sqlite3 *db,
		       const uint8_t *cs,
		       size_t len,
		       uint64_t cursor,
		       uint64_t remote_hlc,
		       struct gs_apply_stats *stats);

/*
 * Record the server's verdict on pushed entries, in one transaction: an
 * applied (or duplicate) entry leaves the outbox, raises the floors in
 * gs_state and leaves the keys it wrote in gs_sent; a refusal the server
 * recorded for good is marked GS_OUTBOX_REJECTED (undone at the next
 * apply) and gs_conflict rows say why and hold the values that will be
 * undone; a refusal that may heal (may_heal) changes nothing: the entry
 * stays pending and is sent again. reason may be NULL.
 */
struct gs_ack_item {
	uint64_t seq;
	int result;      /* enum gs_entry_result */
	int reject_code; /* enum gs_reject */
	const char *reason;
	bool may_heal; /* refused, not recorded: keep it pending */
};

int gs__apply_acks(struct gs_ctx *ctx,
		   sqlite3 *db,
		   const struct gs_ack_item *items,
		   size_t n);

/* The same, and in the same transaction the column conflicts of the
 * PushAck (self: this device's id, to tell lost from won). */
struct gs_conflict;
int gs__apply_push_ack(struct gs_ctx *ctx,
		       sqlite3 *db,
		       const struct gs_ack_item *items,
		       size_t n,
		       const struct gs_conflict *conflicts,
		       size_t n_conflicts,
		       const char *self);

/* Conflicts a pull carried (Changes.conflicts), in one transaction, each
 * server id once; *added counts the new ones. Called before the pull's
 * rows move the cursor past them. */
int gs__apply_conflicts(struct gs_ctx *ctx,
			sqlite3 *db,
			const struct gs_conflict *conflicts,
			size_t n,
			const char *self,
			size_t *added);

#endif
