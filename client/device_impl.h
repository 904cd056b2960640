/* Private to client/: the device object and row views. */
#ifndef GS_CLIENT_DEVICE_IMPL_H
#define GS_CLIENT_DEVICE_IMPL_H

#include <gridsync/capture.h>
#include <gridsync/db.h>
#include <gridsync/gridsync.h>
#include <gridsync/scope.h>

struct gs_device {
	struct gs_ctx *ctx;
	sqlite3 *db;
	struct gs_capture *cap;
	char *device_id;
	char *worker_id; /* may be NULL */
	unsigned role;   /* GS_ROLE_* bit */
	char *scope_codes;
	struct gs_scope scope;
	/* Statements of the save paths, prepared once (keyed by the SQL
	 * text's address: callers pass string constants). */
	struct {
		const char *sql;
		sqlite3_stmt *st;
	} stmts[16];
};

/*
 * A cached prepared statement for the constant sql. Use it, then
 * gs__stmt_done(st): it is reset and its bindings cleared, never
 * finalized by the caller.
 */
int gs__stmt(struct gs_device *dev, const char *sql, sqlite3_stmt **out);
void gs__stmt_done(sqlite3_stmt *st);

struct gs_row {
	sqlite3_stmt *st;
	const char *kind;
};

/* Run st (bound by the caller) and hand each row to cb as kind. */
int gs__rows_emit(struct gs_device *dev,
		  sqlite3_stmt *st,
		  const char *kind,
		  gs_row_cb cb,
		  void *payload);

/* Prepare sql, bind text parameters (NULL-terminated list), emit rows. */
int gs__rows_query(struct gs_device *dev,
		   const char *kind,
		   gs_row_cb cb,
		   void *payload,
		   const char *sql,
		   const char *const *params);

/* Read a gs_meta value into a fresh string (*out NULL if unset). */
int gs__meta_get(struct gs_device *dev, const char *key, char **out);
int gs__meta_set(struct gs_device *dev, const char *key, const char *value);

/* A new incarnation id for this database (gs_meta incarnation), in the
 * caller's transaction; out receives it. */
int gs__device_new_incarnation(struct gs_device *dev, char out[33]);

/* Re-read scope and role after reference data arrived (a sync). */
int gs__device_reload(struct gs_device *dev);

/* GS_EDENIED with a message unless grid_id is in the device's scope (an
 * unknown scope allows every grid: the server decides). */
int gs__check_scope(struct gs_device *dev, const char *grid_id);

/* Begin a captured transaction and format its stamp and the time. */
struct gs_txn {
	uint64_t hlc;
	char hlc_text[17];
	char now[GS_TIME_LEN];
};
int gs__txn_begin(struct gs_device *dev, struct gs_txn *txn);
/* Commit; on failure the transaction is rolled back. */
int gs__txn_commit(struct gs_device *dev);
void gs__txn_rollback(struct gs_device *dev);

/* A fresh UUIDv7 id. */
int gs__new_id(struct gs_device *dev, char id[GS_ID_LEN]);

/* Wrap a SQLite constraint failure into a message that says what to do. */
int gs__write_err(struct gs_device *dev, int rc, const char *what);

#endif
