/*
 * Purging rows that left a handheld's scope (docs/SYNC.md, "Scope
 * changes"), locally, without reinstall and without losing unsent work.
 *
 * Two sources: rows the server names (Changes.left: a household moved to
 * another grid, an issue given to another worker), noted in gs_purge
 * before the download that carries them moves the cursor; and the scope
 * rule itself (scope.h), swept over every scoped table after a scope
 * change and after each completed pull (rows age out by time, with no
 * change record). A row that an outbox entry still held touches (pending,
 * or rejected and not yet undone) is never purged: its key waits in
 * gs_purge, and the sweep finds it again, once that entry was judged.
 * Internal.
 */
#ifndef GRIDSYNC_PURGE_H
#define GRIDSYNC_PURGE_H

#include <stdbool.h>
#include <stdint.h>

#include <gridsync/db.h>
#include <gridsync/wire.h>

/* Note rows that left the scope (one transaction). */
int gs__purge_note(struct gs_ctx *ctx,
		   sqlite3 *db,
		   const struct gs_row_key *keys,
		   size_t n);

/*
 * Start applying a new scope (version text, codes), in one transaction:
 * every scoped row held now is marked unconfirmed (gs_rescope), the codes
 * and the rescope marker are stored and the cursor goes back to 0, so that
 * the pulls that follow bring the whole new scope.
 */
int gs__purge_rescope_begin(struct gs_ctx *ctx,
			    sqlite3 *db,
			    const char *codes,
			    const char *version);

/* Rows of a download (uncompressed changeset) are in the new scope:
 * confirm them. Run before the download is applied, so that a crash in
 * between only confirms rows that will come again. */
int gs__purge_confirm(struct gs_ctx *ctx,
		      sqlite3 *db,
		      const uint8_t *cs,
		      size_t len);

struct gs_purge_opts {
	bool rescoped;           /* a rescope's pulls are done: purge the
				  * rows it did not confirm */
	bool sweep;              /* evaluate the scope rule over every row */
	const char *codes;       /* the device's scope codes (sweep) */
	const char *worker_id;   /* the device's worker (sweep) */
	int64_t visits_since_ms; /* ageing cut-offs (sweep); 0: none */
	int64_t closed_since_ms;
	/* gs_meta changes committed with the purge (NULL value: delete);
	 * up to 4 pairs, NULL key ends. */
	const char *meta_key[4];
	const char *meta_value[4];
};

/* Purge what gs_purge names and, with o->sweep, every row outside the
 * scope, in one transaction; *purged (may be NULL) counts deleted rows. */
int gs__purge_run(struct gs_ctx *ctx,
		  sqlite3 *db,
		  const struct gs_purge_opts *o,
		  size_t *purged);

/* Rows waiting in gs_purge (0 when the table does not exist yet). */
int gs__purge_pending(struct gs_ctx *ctx, sqlite3 *db, uint64_t *out);

#endif
