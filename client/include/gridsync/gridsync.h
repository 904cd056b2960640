/*
 * gridsync: the handheld API.
 *
 * A device database records households, residents, visits and issues with
 * no network. Every call that changes data is one SQLite transaction whose
 * changeset is captured into the outbox in that same transaction, so a
 * saved record and its outbox entry exist together or not at all.
 *
 * Threading: a struct gs_device and its gs_ctx belong to one thread.
 * Errors: every int-returning call returns GS_OK or a negative GS_E* code;
 * gs_ctx_errmsg(ctx) then says what went wrong and what to do. Messages
 * never contain field values (they may be personal data).
 */
#ifndef GRIDSYNC_GRIDSYNC_H
#define GRIDSYNC_GRIDSYNC_H

#include <stddef.h>
#include <stdint.h>

#include <gridsync/ctx.h>
#include <gridsync/err.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Ids are UUIDv7 text: 36 characters plus NUL. */
#define GS_ID_LEN 37

struct gs_device;

/* ---- opening ---------------------------------------------------------- */

struct gs_device_init_opts {
	unsigned version;      /* GS_DEVICE_INIT_OPTS_VERSION */
	const char *device_id; /* required: the enrolled device id */
	const char *worker_id; /* the worker using the device, or NULL */
	const char *role;      /* "GW", "CS", "SC", "DC", "DH"; NULL: the
				* worker's role from reference data, else GW */
	const char *server;    /* "host:port", or NULL */
	const char *scope;     /* comma-separated grid codes, or NULL */
	int insecure;          /* plain TCP to the server (loopback tests) */
	int demo;              /* load the demo profile's reference data and
				* the worker's households locally */
	uint64_t demo_seed;    /* 0: the default seed (42) */
	const char *bundle;    /* enrolment bundle from gridsyncd enroll:
				* device id, worker, scope, server and the
				* TLS identity; fields given above win */
};

#define GS_DEVICE_INIT_OPTS_VERSION 1
#define GS_DEVICE_INIT_OPTS_INIT                                              \
	{                                                                     \
		GS_DEVICE_INIT_OPTS_VERSION, NULL, NULL, NULL, NULL, NULL, 0, \
			0, 0, NULL                                            \
	}

/*
 * Create a device database at path (which must not exist yet) and open it.
 * With opts->demo and no worker_id, the demo profile's first micro-grid
 * worker is used. *out is closed with gs_device_close.
 * Errors: GS_EEXISTS (path exists), GS_EINVAL, GS_ENOTFOUND (unknown demo
 * worker), GS_EIO, GS_ENOMEM.
 */
GS_API int gs_device_init(struct gs_device **out,
			  struct gs_ctx *ctx,
			  const char *path,
			  const struct gs_device_init_opts *opts);

/*
 * Open an existing device database, migrating its schema if this build is
 * newer. Errors: GS_ENOTFOUND (no such file, or not initialised),
 * GS_ESCHEMA (made by a newer gridsync), GS_ECORRUPT, GS_EIO.
 */
GS_API int
gs_device_open(struct gs_device **out, struct gs_ctx *ctx, const char *path);

/* Close the database. NULL is a no-op. */
GS_API void gs_device_close(struct gs_device *dev);

/* ---- rows handed to callbacks ----------------------------------------- */

/*
 * A row being listed: borrowed for the duration of the callback only.
 * Values are read as text (NULL for SQL NULL); blobs are reported by size.
 */
struct gs_row;

GS_API int gs_row_count(const struct gs_row *row);
GS_API const char *gs_row_name(const struct gs_row *row, int i);
/* 0 null, 1 integer, 2 real, 3 text, 4 blob. */
GS_API int gs_row_type(const struct gs_row *row, int i);
GS_API const char *gs_row_text(const struct gs_row *row, int i);
GS_API int64_t gs_row_int(const struct gs_row *row, int i);
/* Size in bytes of a text or blob value. */
GS_API int gs_row_bytes(const struct gs_row *row, int i);
/* The value of the column called name as text, or NULL. */
GS_API const char *gs_row_get(const struct gs_row *row, const char *name);
/* Which list the row belongs to ("household", "resident", ...). */
GS_API const char *gs_row_kind(const struct gs_row *row);

/* Return 0 to go on; anything else stops the listing and is returned. */
typedef int (*gs_row_cb)(const struct gs_row *row, void *payload);

/* ---- households and residents (field-merged records) ------------------ */

/* A column name and its value as text; value NULL sets SQL NULL. */
struct gs_field {
	const char *name;
	const char *value;
};

/*
 * Add a household. fields must include grid_id, which must be one of the
 * device's grids when a scope is known. id_out receives the new id.
 * Errors: GS_EINVAL (unknown or read-only field, bad value, missing
 * required field), GS_EDENIED (grid outside the device's scope).
 */
GS_API int gs_household_add(struct gs_device *dev,
			    char id_out[GS_ID_LEN],
			    const struct gs_field *fields,
			    size_t n_fields);

/* Change some fields of a household. Errors as add, plus GS_ENOTFOUND. */
GS_API int gs_household_edit(struct gs_device *dev,
			     const char *id,
			     const struct gs_field *fields,
			     size_t n_fields);

/* Delete a household: a tombstone (deleted = 1), merged on the server
 * like any other field. GS_ENOTFOUND if unknown or already deleted. */
GS_API int gs_household_delete(struct gs_device *dev, const char *id);

/* List live households (kind "household"), ordered by id. */
GS_API int
gs_household_list(struct gs_device *dev, gs_row_cb cb, void *payload);

/* One household (kind "household"), then its residents (kind "resident")
 * and its last visits (kind "visit"). GS_ENOTFOUND if unknown. */
GS_API int gs_household_show(struct gs_device *dev,
			     const char *id,
			     gs_row_cb cb,
			     void *payload);

/* Add a resident to a household; fields must include household_id and
 * name. */
GS_API int gs_resident_add(struct gs_device *dev,
			   char id_out[GS_ID_LEN],
			   const struct gs_field *fields,
			   size_t n_fields);

GS_API int gs_resident_edit(struct gs_device *dev,
			    const char *id,
			    const struct gs_field *fields,
			    size_t n_fields);

/* ---- visits (append-only) --------------------------------------------- */

struct gs_visit_opts {
	unsigned version;         /* GS_VISIT_OPTS_VERSION */
	const char *household_id; /* required */
	const char *kind;         /* routine, care, follow_up, mobilization,
				   * info_collection */
	const char *outcome;      /* met, not_home, refused, moved, vacant */
	const char *summary;      /* free text, or NULL */
	const char *answers;      /* checklist JSON, or NULL */
	const char *started_at;   /* ISO-8601 UTC; NULL: now */
	double lat, lng;          /* used when has_location */
	int has_location;
};

#define GS_VISIT_OPTS_VERSION 1
#define GS_VISIT_OPTS_INIT                                                    \
	{                                                                     \
		GS_VISIT_OPTS_VERSION, NULL, NULL, NULL, NULL, NULL, NULL, 0, \
			0, 0                                                  \
	}

/* Record a visit. Errors: GS_EINVAL (kind, outcome, text, time),
 * GS_ENOTFOUND (household), GS_EDENIED (outside the scope). */
GS_API int gs_visit_add(struct gs_device *dev,
			char id_out[GS_ID_LEN],
			const struct gs_visit_opts *opts);

/* ---- issues (work orders) --------------------------------------------- */

struct gs_issue_report_opts {
	unsigned version;         /* GS_ISSUE_REPORT_OPTS_VERSION */
	const char *category;     /* category code, required */
	const char *title;        /* required */
	const char *description;  /* or NULL */
	const char *household_id; /* or NULL */
	const char *grid_id;      /* NULL: the household's grid, else the
				   * device's first grid */
	const char *grade;        /* red, yellow, blue, or NULL */
	int draft;                /* keep as a draft instead of reporting */
};

#define GS_ISSUE_REPORT_OPTS_VERSION 1
#define GS_ISSUE_REPORT_OPTS_INIT                                           \
	{                                                                   \
		GS_ISSUE_REPORT_OPTS_VERSION, NULL, NULL, NULL, NULL, NULL, \
			NULL, 0                                             \
	}

/*
 * Report an issue: the issue row in state "reported" (or "draft") and its
 * events, in one transaction. Errors: GS_EINVAL, GS_ENOTFOUND (category or
 * household), GS_EDENIED (grid outside the scope).
 */
GS_API int gs_issue_report(struct gs_device *dev,
			   char id_out[GS_ID_LEN],
			   const struct gs_issue_report_opts *opts);

struct gs_issue_move_opts {
	unsigned version;     /* GS_ISSUE_MOVE_OPTS_VERSION */
	const char *to;       /* the target state */
	const char *note;     /* reason or result; required by some moves */
	const char *assignee; /* worker id, for dispatch */
	const char *due;      /* ISO-8601 UTC deadline, for dispatch */
};

#define GS_ISSUE_MOVE_OPTS_VERSION 1
#define GS_ISSUE_MOVE_OPTS_INIT                                    \
	{                                                          \
		GS_ISSUE_MOVE_OPTS_VERSION, NULL, NULL, NULL, NULL \
	}

/*
 * Move an issue to another state, as the device's role may (DESIGN.md's
 * state machine). The move is recorded as an issue_event with the state
 * revision the device saw; the server decides it on the next sync.
 * Errors: GS_ENOTFOUND, GS_ESTATE (no such transition, or not for this
 * role or not while offline: the message names the states and the role),
 * GS_EINVAL (a required note, assignee or deadline is missing).
 */
GS_API int gs_issue_move(struct gs_device *dev,
			 const char *id,
			 const struct gs_issue_move_opts *opts);

/* List issues (kind "issue"), optionally only those in state. */
GS_API int gs_issue_list(struct gs_device *dev,
			 const char *state,
			 gs_row_cb cb,
			 void *payload);

/* One issue (kind "issue") then its events in order (kind "issue_event").
 */
GS_API int gs_issue_show(struct gs_device *dev,
			 const char *id,
			 gs_row_cb cb,
			 void *payload);

/* Active issue categories a report may use (kind "category": code, name,
 * level, domain, needs_photo), level 3 (the reportable leaves) first. */
GS_API int gs_category_list(struct gs_device *dev, gs_row_cb cb, void *payload);

/* ---- outbox and status ------------------------------------------------ */

/*
 * Pending outbox entries (kind "outbox": seq, hlc, bytes, sha256,
 * created_at, tables), oldest first.
 */
GS_API int gs_outbox_list(struct gs_device *dev, gs_row_cb cb, void *payload);

/*
 * Send a row again as it is now: its current values become a new outbox
 * entry (*seq_out, may be NULL). For rows a damaged, quarantined entry
 * wrote that could not be found automatically (see gridsync conflicts).
 * GS_ENOTFOUND if the row does not exist, GS_EINVAL for a table that is
 * not device data.
 */
GS_API int gs_outbox_recover(struct gs_device *dev,
			     const char *table,
			     const char *id,
			     uint64_t *seq_out);

/* The changeset of outbox entry seq; *data_out is freed with gs_free. */
GS_API int gs_outbox_get(struct gs_device *dev,
			 uint64_t seq,
			 uint8_t **data_out,
			 size_t *len_out);

/* Free memory that gridsync handed to the caller. */
GS_API void gs_free(struct gs_ctx *ctx, void *ptr);

struct gs_status {
	char device_id[128];
	char worker_id[128];
	char role[8];
	char server[256];
	char scope[1024];      /* grid codes, comma-separated */
	uint64_t outbox_depth; /* pending entries */
	uint64_t outbox_bytes;
	uint64_t last_seq;     /* highest device_seq assigned */
	uint64_t hlc;          /* the device's clock */
	uint64_t cursor;       /* last server_seq received */
	char last_sync[32];    /* ISO-8601, or "" if never */
	char content_hash[65]; /* SHA-256 of the replicated rows */
	int schema_version;
	uint64_t households;
	uint64_t visits;
	uint64_t issues;
	/* The device's wall clock against the server's, as measured at the
	 * last sync's Welcome: server minus device, so a device whose clock
	 * runs fast has a negative offset. */
	int clock_known;         /* 0: never measured */
	int64_t clock_offset_ms; /* server - device */
	int clock_skewed;        /* |offset| > GS_CLOCK_SKEW_WARN_MS */
	uint64_t quarantined;    /* damaged outbox entries kept aside */
	uint64_t scope_version;  /* the server's scope this device applied */
	int rescope;             /* 1: a scope change is being applied */
	uint64_t purge_pending;  /* left rows kept for unsent work */
};

/* How far a device's clock may be off the server's before every sync
 * warns: handhelds drift by up to ten minutes in ordinary use, which is
 * silent; beyond fifteen the worker is told to set the clock. */
#define GS_CLOCK_SKEW_WARN_MS (15 * 60 * 1000)

/* Fill *out. */
GS_API int gs_device_status(struct gs_device *dev, struct gs_status *out);

/* ---- sync ------------------------------------------------------------- */

struct gs_sync_summary {
	uint64_t pushed;         /* outbox entries sent */
	uint64_t acknowledged;   /* applied or already applied (duplicates) */
	uint64_t rejected;       /* refused for good and undone (conflicts) */
	uint64_t conflicts;      /* column conflicts this device took part in */
	uint64_t pulled_rows;    /* rows received */
	uint64_t pulled_changes; /* Changes entries received */
	uint64_t bytes_up;       /* frame bytes sent */
	uint64_t bytes_down;     /* frame bytes received */
	uint64_t cursor;         /* server_seq held after the sync */
	unsigned attempts;       /* connections tried */
	double seconds;
	int clock_known;         /* the server's time was seen */
	int64_t clock_offset_ms; /* server - device wall clock, at Welcome */
	int clock_skewed;        /* |offset| > GS_CLOCK_SKEW_WARN_MS */
	/* Not ok, although the sync ran to its end, when any of these is
	 * not 0 (see gridsync conflicts): */
	uint64_t quarantined; /* damaged outbox entries set aside */
	uint64_t deferred;    /* refused for now, kept pending */
	uint64_t recaptured;  /* rows re-captured from the tables */
	uint64_t purged;      /* rows removed because they left the scope */
};

/* Progress: phase is "connect", "push", "pull" or "done". */
typedef void (*gs_sync_progress_cb)(const char *phase,
				    const struct gs_sync_summary *sum,
				    void *payload);

struct gs_sync_opts {
	unsigned version;      /* GS_SYNC_OPTS_VERSION */
	const char *server;    /* host:port; NULL: the one stored at init */
	int once;              /* one attempt: no retry on network errors */
	unsigned max_attempts; /* 0: 6 */
	uint64_t timeout_ms;   /* per attempt, 0: 120 s */
	gs_sync_progress_cb progress;
	void *payload;
};

#define GS_SYNC_OPTS_VERSION 1
#define GS_SYNC_OPTS_INIT                                       \
	{                                                       \
		GS_SYNC_OPTS_VERSION, NULL, 0, 0, 0, NULL, NULL \
	}

/*
 * Sync with the district server: handshake, push the whole outbox, pull
 * until caught up, applying each download under the pending outbox (local
 * edits are never lost or reverted). Network failures are retried with
 * exponential backoff and jitter unless opts->once. *out (may be NULL) is
 * filled also on failure. Errors: GS_EIO, GS_ETIMEDOUT (the server could
 * not be reached), GS_EDENIED (not enrolled, or the certificate was
 * refused), GS_ESCHEMA (the server requires a newer gridsync), GS_EPROTO.
 */
GS_API int gs_device_sync(struct gs_device *dev,
			  const struct gs_sync_opts *opts,
			  struct gs_sync_summary *out);

/* What this device lost or had refused, newest first (kind "conflict":
 * at, device_seq, table, pk, column, reason, winner, winner_hlc). */
GS_API int gs_conflict_list(struct gs_device *dev, gs_row_cb cb, void *payload);

#ifdef __cplusplus
}
#endif

#endif
