/*
 * The narrow storage interface the merge rules (sync/merge.c) are written
 * against. sync/store.c implements it on SQLite; a PostgreSQL store can
 * implement the same operations and reuse merge.c unchanged. Everything
 * the rules decide (who wins, what conflicts, which transition applies,
 * what is authorised) lives in merge.c and policy.c; everything here only
 * reads or writes what it is told. Internal (gs__).
 *
 * Calling pattern of one push (gs__merge_push):
 *
 *   begin
 *     for each new entry: savepoint, row and log operations,
 *       [rollback_to if the entry is rejected], received_put, release
 *   commit        (durable when it returns GS_OK)
 *   or rollback   (after any failure: nothing of the push remains)
 *
 * Conventions: every operation returns GS_OK or a negative GS_E* code with
 * detail text on the ctx. A write that breaks a constraint of the
 * replicated schema (a foreign key to a row the server does not hold, a
 * CHECK, NOT NULL, a UNIQUE index other than the key) returns GS_EINVAL and
 * leaves the store as it was before the call; the merge rejects the entry.
 * Any other failure is fatal to the push. Row values are arrays of
 * t->n_cols struct gs_cs_value in manifest column order.
 */
#ifndef GRIDSYNC_STORE_OPS_H
#define GRIDSYNC_STORE_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <gridsync/changeset.h>
#include <gridsync/schema.h>
#include <gridsync/scope.h>
#include <gridsync/store.h>

/* Longest key value (one primary-key column) a device may write: ids are
 * UUIDv7 text (36 bytes). Longer keys reject the entry (LIMIT). */
#define GS_STORE_KEY_MAX 128
/* Room for a row's key as text (GS_STORE_KEY_MAX per column, escaped). */
#define GS_STORE_PK_TEXT_MAX 1600
/* Room for a grid id; a longer one is in no scope. */
#define GS_STORE_GRID_MAX 128
/* Room for a device id (the wire allows 64 bytes). */
#define GS_STORE_DEVICE_MAX 128

/* A write's stamp: HLC, then device id (policy.h orders them). */
struct gs_stamp {
	uint64_t hlc;
	const char *device;
};

/* One row of srv_received: an entry the server judged. */
struct gs_received {
	const char *device_id;
	uint64_t device_seq;
	const uint8_t *sha256; /* GS_SHA256_LEN bytes */
	uint64_t hlc;          /* the entry's HLC as sent */
	const uint8_t *changeset;
	size_t len;
	enum gs_entry_result result; /* APPLIED or REJECTED */
	enum gs_reject reject_code;
	const char *reason; /* NULL when applied */
	uint64_t seq_first; /* server_seq range it produced, */
	uint64_t seq_last;  /* 0/0 if none */
	int64_t received_at_ms;
};

/* One conflict to record (srv_conflict): a column two writes disagreed
 * on, with both sides whoever won. */
struct gs_conflict_rec {
	const char *table;
	const char *pk;           /* gs__merge_pk_text */
	const char *column;       /* "deleted" for a tombstone */
	const char *entry_device; /* the pushed entry that met it */
	uint64_t entry_seq;
	bool entry_lost; /* the pushing device is the loser */
	struct gs_stamp winner;
	struct gs_stamp loser;
	const struct gs_cs_value *winner_value; /* as stored now */
	const struct gs_cs_value *loser_value;
	int64_t at_ms; /* server wall clock */
	/* The server_seq the loser receives it with (a seq of the push that
	 * recorded it): a pull whose range covers it sends it to the loser
	 * (gs__store_pull). 0: never sent in a pull. */
	uint64_t deliver_seq;
};

/* A device-claimed time the merge bounded (sync/claimed.c), for
 * srv_claimed_time. */
struct gs_claimed_rec {
	const char *device_id;
	uint64_t device_seq;
	const char *table;
	const char *pk; /* gs__merge_pk_text */
	const char *column;
	const char *claimed; /* as the device sent it */
	const char *stored;  /* what was stored instead */
	int64_t at_ms;       /* server wall clock */
};

/* Called once per stored column clock of a row; column "" is the row's
 * insert stamp, kept once its hlc column has moved on. Strings borrowed
 * for the call. Non-zero stops and is returned. */
typedef int (*gs_store_clock_cb)(const char *column,
				 uint64_t hlc,
				 const char *device,
				 void *payload);

struct gs_store_ops {
	/* ---- transactions ---- */
	int (*begin)(void *impl);     /* one write transaction per push */
	int (*commit)(void *impl);    /* GS_OK only once durable */
	void (*rollback)(void *impl); /* undo everything since begin */
	int (*savepoint)(void *impl); /* one per entry */
	int (*release)(void *impl);
	/* Undo the entry's writes; the savepoint stays open (release next). */
	int (*rollback_to)(void *impl);

	/* ---- the received log (idempotency, journal intent) ---- */
	/* Highest device_seq recorded for device_id in the incarnation whose
	 * numbers start at base (gs_store_device.seq_base), relative to
	 * base; 0 if none. */
	int (*received_last)(void *impl,
			     const char *device_id,
			     uint64_t base,
			     uint64_t *out);
	/* The record of (device_id, device_seq); GS_ENOTFOUND if absent.
	 * Pointers in *out are borrowed until the next call on impl. */
	int (*received_get)(void *impl,
			    const char *device_id,
			    uint64_t device_seq,
			    struct gs_received *out);
	/* Record an entry (journaled = 0). */
	int (*received_put)(void *impl, const struct gs_received *r);

	/* ---- replicated rows ---- */
	/* The current row of t with the key columns of key (other slots
	 * ignored) into row_out. GS_ENOTFOUND if there is none. TEXT/BLOB
	 * pointers are borrowed until the next operation on impl. */
	int (*row_get)(void *impl,
		       const struct gs_table *t,
		       const struct gs_cs_value *key,
		       struct gs_cs_value *row_out);
	/* Insert a whole row; GS_EEXISTS (nothing written) if its key is
	 * taken; GS_EINVAL on another constraint. */
	int (*row_insert)(void *impl,
			  const struct gs_table *t,
			  const struct gs_cs_value *row);
	/* Write the columns of row whose bit (1 << column index) is set in
	 * cols into the stored row with row's key; the others keep their
	 * stored values. Naming only what changed spares the checks of the
	 * foreign keys and indexes that did not. */
	int (*row_update)(void *impl,
			  const struct gs_table *t,
			  const struct gs_cs_value *row,
			  uint64_t cols);
	/* The grid that scopes row id of t (a one-column-key table), through
	 * its parents or owner as the manifest says: *found false if no such
	 * row, grid_out "" if the row has none. */
	int (*row_grid)(void *impl,
			const struct gs_table *t,
			const char *id,
			char grid_out[GS_STORE_GRID_MAX],
			bool *found);
	/* Is tag code restricted (tag_def.sensitivity)? false if unknown. */
	int (*tag_restricted)(void *impl, const char *code, bool *out);

	/* ---- per-column clocks ---- */
	int (*clocks_get)(void *impl,
			  const struct gs_table *t,
			  const char *pk,
			  gs_store_clock_cb cb,
			  void *payload);
	int (*clock_put)(void *impl,
			 const struct gs_table *t,
			 const char *pk,
			 const char *column,
			 const struct gs_stamp *s);

	/* ---- change log ---- */
	/* The next server_seq (monotone; undone by rollback_to/rollback). */
	int (*seq_next)(void *impl, uint64_t *out);
	/* Row pk of t changed under seq: (t, pk) now points at seq, with the
	 * row's grid (NULL: reference data every device receives) and
	 * whether it must never leave the server. fresh: the row was just
	 * inserted, so it has no entry yet (a plain insert suffices). */
	int (*log_change)(void *impl,
			  const struct gs_table *t,
			  const char *pk,
			  const char *grid,
			  bool restricted,
			  uint64_t seq,
			  bool fresh);
	/* Row id of t moved to another grid: give every row scoped through
	 * it (children, attachments, recursively) a new seq and its new
	 * grid, so that devices of the new grid receive them. */
	int (*republish_children)(void *impl,
				  const struct gs_table *t,
				  const char *id);
	/* Record a conflict; *id_out its id (srv_conflict.id). */
	int (*conflict_put)(void *impl,
			    const struct gs_conflict_rec *c,
			    uint64_t *id_out);

	/* ---- dedupe (merged_into) ---- */
	/* The row a new row id of t (household or resident) duplicates: a
	 * live row of the same grid, not merged itself, with the same key
	 * (dwelling_id, id_no_hmac). out "" if none. */
	int (*dup_find)(void *impl,
			const struct gs_table *t,
			const char *key,
			const char *id,
			const char *grid,
			char out[GS_STORE_KEY_MAX + 1]);
	/* The row id (household or resident) was merged into, "" if none. */
	int (*merged_target)(void *impl,
			     const char *id,
			     char out[GS_STORE_KEY_MAX + 1]);

	/* ---- per-device stamps ---- */
	/* The stamp of device_id's last merged entry, 0 if none. */
	int (*stamp_last)(void *impl, const char *device_id, uint64_t *out);
	int (*stamp_put)(void *impl, const char *device_id, uint64_t hlc);

	/* ---- device-claimed times ---- */
	/* Record a bounded claimed time (may be NULL: not recorded). */
	int (*claimed_put)(void *impl, const struct gs_claimed_rec *c);
};

/*
 * The push algorithm of gs__store_push (store.h) over any ops: dedup by
 * (device, seq, sha256), validation with the strict parser, row-level
 * authorisation against scope (the device's resolved grids), the merge by
 * class, the issue state machine, the change log, the received record and
 * one durable commit. out is written only on GS_OK (zeroed otherwise).
 */
int gs__merge_push(const struct gs_store_ops *ops,
		   void *impl,
		   struct gs_ctx *ctx,
		   const struct gs_store_device *dev,
		   const struct gs_scope *scope,
		   const struct gs_store_entry *entries,
		   size_t n,
		   struct gs_store_push_out *out);

/*
 * A row's key as text, the form srv_change, srv_clock and srv_conflict
 * use: a one-column key as its value; a longer key as a JSON array of its
 * values, byte for byte what SQLite's json_array() writes for the same
 * text values (so SQL can build and decode it). Only TEXT keys exist in
 * the manifest. GS_ETOOBIG if it does not fit cap, GS_EINVAL for a key
 * that is not text.
 */
int gs__merge_pk_text(char *out,
		      size_t cap,
		      const struct gs_table *t,
		      const struct gs_cs_value *row);

#endif
