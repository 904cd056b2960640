/*
 * SQLite connections for gridsync databases (handheld and server store):
 * open with the pragmas the design requires, asserted after open, migrate
 * the replicated schema, and translate SQLite errors into GS_E* codes.
 * Internal (gs__).
 */
#ifndef GRIDSYNC_DB_H
#define GRIDSYNC_DB_H

#include <sqlite3.h>

#include <gridsync/platform.h>

#define GS_DB_CREATE   0x1u /* create the file if missing */
#define GS_DB_READONLY 0x2u /* open read-only (inspection commands) */
#define GS_DB_NORMAL   0x4u /* synchronous=NORMAL instead of FULL (bench) */

/*
 * Open path in WAL mode with synchronous=FULL (NORMAL with GS_DB_NORMAL),
 * foreign keys on, trusted_schema off, defensive mode on and lowered
 * limits; each setting is read back and a mismatch fails the open.
 * Does not migrate. *out is closed with gs__db_close.
 */
int gs__db_open(sqlite3 **out,
		struct gs_ctx *ctx,
		const char *path,
		unsigned flags);
void gs__db_close(sqlite3 *db);

/*
 * Bring the replicated schema to GS_SCHEMA_VERSION, one transaction per
 * step. A database from a newer build fails with GS_ESCHEMA.
 */
int gs__db_migrate(struct gs_ctx *ctx, sqlite3 *db);

/* The database's replicated schema version (PRAGMA user_version). */
int gs__db_schema_version(struct gs_ctx *ctx, sqlite3 *db, int *out);

/* Translate a SQLite result code, copying sqlite3_errmsg into ctx. */
int gs__err_from_sqlite(struct gs_ctx *ctx, int rc, sqlite3 *db);

/* Run one or more statements; errors translated. */
int gs__db_exec(struct gs_ctx *ctx, sqlite3 *db, const char *sql);

/* Prepare one statement; errors translated. */
int gs__db_prepare(struct gs_ctx *ctx,
		   sqlite3 *db,
		   sqlite3_stmt **out,
		   const char *sql);

/* Step a statement that returns no rows, then reset it. */
int gs__db_step_done(struct gs_ctx *ctx, sqlite3 *db, sqlite3_stmt *st);

/* SHA-256 over a canonical dump of every row of the replicated tables,
 * ignoring server_seq, written as 64 hex digits plus NUL. */
int gs__db_content_hash(struct gs_ctx *ctx,
			sqlite3 *db,
			char out[2 * GS_SHA256_LEN + 1]);

struct gs_table;

/* A row filter for gs__db_content_hash_filtered: a SQL condition over the
 * columns of table t (which it may name as t->name), or NULL for every
 * row. The text is borrowed until the next call. */
typedef const char *(*gs_db_filter_cb)(const struct gs_table *t, void *payload);

/* gs__db_content_hash over only the rows filter accepts (filter NULL:
 * every row, the same digest as gs__db_content_hash). */
int gs__db_content_hash_filtered(struct gs_ctx *ctx,
				 sqlite3 *db,
				 gs_db_filter_cb filter,
				 void *payload,
				 char out[2 * GS_SHA256_LEN + 1]);

#endif
