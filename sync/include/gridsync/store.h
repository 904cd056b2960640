/*
 * The district server's store: the replicated tables (the server's truth),
 * the device registry, the merge of pushed changesets and the scoped
 * download. One writer (the gridsyncd loop thread). Internal.
 *
 * The merge rules (DESIGN.md section 6, DESIGN.md state machine) are
 * written against struct gs_store_ops, the narrow storage interface below,
 * so that a PostgreSQL store can implement the same ops without touching
 * the rules. gs__store_open gives the embedded SQLite implementation (WAL,
 * synchronous=FULL).
 *
 * Durability: gs__store_push returns only after its transaction committed
 * (fsync'd): an ack sent after it is a promise (DESIGN.md I2).
 */
#ifndef GRIDSYNC_STORE_H
#define GRIDSYNC_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include <gridsync/db.h>
#include <gridsync/synth.h>
#include <gridsync/wire.h>

struct gs_store;

#define GS_STORE_CREATE 0x1u

/* Open (or with GS_STORE_CREATE create) the store at path: replicated
 * schema plus the server's own tables (srv_*). */
int gs__store_open(struct gs_store **out,
		   struct gs_ctx *ctx,
		   const char *path,
		   unsigned flags);
void gs__store_close(struct gs_store *st);

/* The server's id (made at creation, kept in srv_meta). */
const char *gs__store_server_id(const struct gs_store *st);

/* The store's connection (for tests, journal verify and stats). */
sqlite3 *gs__store_db(struct gs_store *st);

/* ---- seeding -------------------------------------------------------- */

/* Generate a synthetic profile into the store and publish every row
 * (each gets a server_seq and a change-log entry). */
int gs__store_seed(struct gs_store *st, const struct gs_synth_opts *opts);

/* ---- devices -------------------------------------------------------- */

#define GS_STORE_SCOPE_MAX 1024 /* bytes of scope codes, NUL included */

struct gs_store_device {
	char id[GS_WIRE_ID_MAX + 1];
	char worker_id[GS_WIRE_ID_MAX + 1];
	unsigned role;                  /* GS_ROLE_* of the worker */
	char scope[GS_STORE_SCOPE_MAX]; /* grid or area codes, comma-separated
					 */
	/* Server-owned scope: the version moves with every change of scope;
	 * until the device says it applied it (Pull.scope_version), its
	 * pushes are judged against prev_scope and scope together, so that
	 * edits made under the old scope are not refused. */
	uint64_t scope_version;
	uint64_t scope_acked;
	char prev_scope[GS_STORE_SCOPE_MAX];
	bool revoked;
	uint64_t last_seq;    /* highest device_seq accepted (applied or
			       * rejected) */
	int64_t last_seen_ms; /* last Hello */
	/* Not stored: the cursor the device's Hello named on this
	 * connection (the rows it holds), 0 if unknown. The merge uses it to
	 * tell whether a delete saw the row's latest writes. */
	uint64_t cursor;
	/* Set from the connection's Hello (gs__store_incarnation): where the
	 * incarnation's device_seq numbers start in srv_received, and whether
	 * the device knows the refusal codes added with incarnations. */
	uint64_t seq_base;
	bool incarnation;
};

/* Each incarnation of a device (a database: a new one at init, restore or
 * re-initialisation) numbers its entries from 1. srv_received keeps them
 * apart by storing device_seq + seq_base, with seq_base the incarnation's
 * index times GS_STORE_SEQ_SPAN; the first incarnation a device announces
 * takes index 0, which is where entries of devices older than
 * incarnations already are. */
#define GS_STORE_SEQ_SPAN (UINT64_C(1) << 40)

/* Look up (or register) incarnation of device_id: *base_out its
 * seq_base, *held_out the last device_seq held for it (0: none). */
int gs__store_incarnation(struct gs_store *st,
			  const char *device_id,
			  const char *incarnation,
			  uint64_t *base_out,
			  uint64_t *held_out);

/* Enrol (insert or update) a device. The worker must exist in the
 * reference data; the role is the worker's. GS_ENOTFOUND otherwise. */
int gs__store_enroll(struct gs_store *st,
		     const char *device_id,
		     const char *worker_id,
		     const char *scope,
		     struct gs_store_device *out);

/* The enrolment id rule (device and worker ids): 1 to GS_WIRE_ID_MAX
 * characters of [A-Za-z0-9._:@-], the first a letter or a digit. Nothing
 * that needs escaping in a listing, a log line or a path. */
bool gs__store_id_valid(const char *id);

/* Enrolling a revoked device lifts the revocation only with this flag. */
#define GS_ENROLL_REINSTATE 0x1u

/* Every check gs__store_enroll_ex makes, writing nothing: ids and scope
 * (GS_EINVAL), the worker (GS_ENOTFOUND), a revoked device without
 * GS_ENROLL_REINSTATE (GS_EDENIED). */
int gs__store_enroll_check(struct gs_store *st,
			   const char *device_id,
			   const char *worker_id,
			   const char *scope,
			   unsigned flags);

/* Enrol in one transaction, after every check above. serial (hex, may be
 * NULL) is the new certificate's: it is recorded and every earlier
 * certificate of the device is revoked. gs__store_enroll is this with no
 * serial and no flags. */
int gs__store_enroll_ex(struct gs_store *st,
			const char *device_id,
			const char *worker_id,
			const char *scope,
			const char *serial,
			unsigned flags,
			struct gs_store_device *out);

/* Revoke a device and every certificate issued to it (GS_ENOTFOUND if it
 * is not enrolled). Open sessions are cut by gridsyncd within a second. */
int gs__store_revoke(struct gs_store *st, const char *device_id);

/* *ok: the device is enrolled, not revoked, and serial (the presented
 * certificate's, hex; NULL without TLS) is one of its certificates that
 * is not revoked (or the device predates certificate records). */
int gs__store_device_allowed(struct gs_store *st,
			     const char *device_id,
			     const char *serial,
			     bool *ok);

/* GS_ENOTFOUND if the device is not enrolled. */
int gs__store_device_get(struct gs_store *st,
			 const char *device_id,
			 struct gs_store_device *out);

/* Record a Hello (last_seen). */
int gs__store_device_seen(struct gs_store *st, const char *device_id);

/* Give a device a new scope (comma-separated codes). A different scope
 * moves scope_version on and keeps the codes before it as prev_scope until
 * the device applies the new one; the same scope changes nothing. out (may
 * be NULL) receives the device as stored. GS_ENOTFOUND if not enrolled. */
int gs__store_scope_set(struct gs_store *st,
			const char *device_id,
			const char *scope,
			struct gs_store_device *out);

/* The device says it applied scope version v (Pull.scope_version): from
 * now on its pushes are judged against its current scope only. */
int gs__store_scope_applied(struct gs_store *st,
			    struct gs_store_device *dev,
			    uint64_t v);

/* The ageing cut-offs of the scope rule at wall-clock time now_ms, as
 * milliseconds since the epoch (see scope.h). */
void gs__store_scope_cutoffs(int64_t now_ms,
			     int64_t *visits_since_ms,
			     int64_t *closed_since_ms);

/* ---- push (merge) ----------------------------------------------------- */

/* One pushed outbox entry, changeset uncompressed; borrowed. */
struct gs_store_entry {
	uint64_t device_seq;
	uint64_t hlc;
	const uint8_t *changeset;
	size_t len;
	const uint8_t *sha256; /* 32 bytes, as the device computed it */
};

/* What the merge decided, ready to go into a PushAck. Owns its strings;
 * free with gs__store_push_out_fini. */
struct gs_store_push_out {
	uint64_t durable_seq;           /* highest device_seq now durable */
	struct gs_push_result *results; /* one per entry, in order */
	size_t n_results;
	struct gs_conflict *conflicts; /* that this device lost or won */
	size_t n_conflicts;
	uint64_t server_seq_first; /* server_seq range this push made, */
	uint64_t server_seq_last;  /* 0/0 if none */
	/* private: storage for strings */
	struct gs_buf strings;
};

void gs__store_push_out_fini(struct gs_store_push_out *out);

/*
 * Merge a batch of entries from dev in one durable transaction (validate
 * with the strict parser, authorize every row against its current server
 * scope, merge by class, log effective changes and conflicts, record the
 * (device, seq, sha256) dedup key and its journal intent, COMMIT). Entries
 * must be in ascending device_seq. An entry already received with the same
 * sha256 is DUPLICATE if it was applied; if it was rejected, the same
 * rejection (code and reason) is answered again: the first result stands.
 * With another sha256 it is REJECTED with GS_REJECT_SEQ_REUSED. Each entry
 * is judged on its own (a savepoint each where it has more than one row):
 * a rejected entry changes nothing but still consumes its seq, and later
 * entries go on. Two refusals do not consume the seq, so that a clean
 * resend can still be applied: bytes that do not match their sha256
 * (GS_REJECT_HASH) and a gap (seq > last + 1: GS_REJECT_SEQ_REUSED, the
 * entries in between never arrived). durable_seq is the device's highest
 * recorded seq after the commit. out->conflicts lists the conflicts this
 * push's entries met, won or lost (the ack carries at most 16384 and about
 * 2 MiB of them; srv_conflict keeps all). Returns GS_OK with per-entry
 * results, or an error (GS_EIO, GS_EFULL, GS_EBUSY, GS_ENOMEM; GS_EDENIED
 * for a revoked device) when nothing was made durable and nothing must be
 * acknowledged; out is then zeroed.
 */
int gs__store_push(struct gs_store *st,
		   const struct gs_store_device *dev,
		   const struct gs_store_entry *entries,
		   size_t n,
		   struct gs_store_push_out *out);

/* ---- pull (scoped download) ------------------------------------------ */

struct gs_store_pull_out {
	struct gs_buf changeset; /* a changeset (INSERTs of whole current
				  * rows), validated by gs__cs_check */
	struct gs_row_key *left; /* rows that left the scope (strings in
				  * keys) */
	size_t n_left;
	size_t cap_left;
	struct gs_buf keys;   /* storage for left's strings */
	uint64_t next_cursor; /* highest server_seq included */
	uint64_t hlc;         /* highest row hlc included */
	size_t n_rows;
	bool more; /* false: caught up */
	/* Conflicts the device lost, recorded up to next_cursor and not
	 * sent before (deliver_seq after the pull's cursor); also those of
	 * other devices' pushes, where a later write beat an earlier one
	 * that arrived first. */
	struct gs_conflict *conflicts;
	size_t n_conflicts;
	/* private: their strings */
	struct gs_buf cstrings;
};

void gs__store_pull_out_init(struct gs_store_pull_out *out, struct gs_ctx *ctx);
void gs__store_pull_out_fini(struct gs_store_pull_out *out);

/*
 * The rows in dev's scope changed after server_seq `after`, oldest first,
 * up to about byte_budget bytes of changeset (at least one row if any is
 * pending; at most 8 MiB and 10,000 rows), as their current values:
 * reference data every device needs (admin_area, org, worker, category,
 * tag_def, sla_policy, transition_rule, grid, and place/dwelling rows
 * without a grid) plus rows whose grid is in the device's scope, plus
 * the issues its worker is assignee or reporter of with their events,
 * attachments and household; never a restricted tag, a visit or an issue
 * that aged out (scope.h). Tombstones come as rows with deleted = 1.
 * out->left lists the rows that left the device's scope in the same
 * window (moved to another grid, another assignee): the device purges
 * them. When caught up (more false) next_cursor is the server's latest
 * server_seq, whatever the scope holds. Parents come
 * before children within one changeset (manifest order); across
 * changesets a child can come before its parent (the log keeps each row's
 * latest change only, so a parent changed later moves behind its child):
 * the device applies with foreign keys deferred and keeps such a child
 * (OMIT on SQLITE_CHANGESET_FOREIGN_KEY commits the rest), and a later
 * download brings the parent. Rows the device pushed itself come back too
 * (the server's canonical version). out->changeset is replaced.
 */
int gs__store_pull(struct gs_store *st,
		   const struct gs_store_device *dev,
		   uint64_t after,
		   size_t byte_budget,
		   struct gs_store_pull_out *out);

/* Scopes of more than max_grids grids are served by walking the whole
 * change log in order instead of per-grid index ranges (default 256).
 * For tests and tuning. */
void gs__store_set_scope_narrow(struct gs_store *st, size_t max_grids);

/* ---- inspection --------------------------------------------------------- */

/* Content hash of the replicated rows in dev's scope (what the device
 * should hold after a full pull), as gs__db_content_hash computes it on a
 * device. dev NULL: every row. */
int gs__store_scope_hash(struct gs_store *st,
			 const struct gs_store_device *dev,
			 char out[2 * GS_SHA256_LEN + 1]);

/* Row callback for listings: n columns, names and text values (NULL for
 * SQL NULL), borrowed for the call. Non-zero stops and is returned. */
typedef int (*gs_store_row_cb)(int n,
			       const char *const *names,
			       const char *const *values,
			       void *payload);

int gs__store_list_devices(struct gs_store *st, gs_store_row_cb cb, void *p);
/* Conflicts, newest first; device_id NULL: all. */
int gs__store_list_conflicts(struct gs_store *st,
			     const char *device_id,
			     gs_store_row_cb cb,
			     void *p);
/* One row of counters: devices, rows per class, server_seq, pushes,
 * conflicts, rejected entries, store bytes. */
int gs__store_stats(struct gs_store *st, gs_store_row_cb cb, void *p);

#endif
