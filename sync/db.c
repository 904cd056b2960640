/*
 * Opening gridsync databases. Every setting that matters for durability or
 * safety is set explicitly and then read back: Debian's build defaults are
 * not ours to rely on (DESIGN.md trap 3), and a silently ignored
 * pragma must fail the open rather than weaken a guarantee.
 */
#define GS_MODULE "sync.db"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <gridsync/db.h>
#include <gridsync/schema.h>

/* The directory of a database file, for messages that send someone to
 * free space or fix permissions there. */
static const char *db_dir(sqlite3 *db, char *out, size_t cap)
{
	const char *file = db != NULL ? sqlite3_db_filename(db, "main") : NULL;
	const char *slash;

	if (file == NULL || file[0] == '\0')
		return "the database's disk";
	slash = strrchr(file, '/');
	if (slash == NULL)
		return ".";
	snprintf(out, cap, "%.*s", (int)(slash == file ? 1 : slash - file),
		 file);
	return out;
}

int gs__err_from_sqlite(struct gs_ctx *ctx, int rc, sqlite3 *db)
{
	const char *msg = db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
	char dir[512];
	int err;

	/* A full disk is reported as such wherever SQLite met it (the
	 * database, its WAL or a temporary file), with where to free space;
	 * nothing of the failed write is kept. */
	if ((rc & 0xff) == SQLITE_FULL ||
	    ((rc & 0xff) == SQLITE_IOERR && db != NULL &&
	     sqlite3_system_errno(db) == ENOSPC))
		return gs__err(ctx, GS_EFULL,
			       "disk full: free space on %s and retry "
			       "(sqlite: %s)",
			       db_dir(db, dir, sizeof(dir)), msg);
	if ((rc & 0xff) == SQLITE_READONLY)
		return gs__err(ctx, GS_EIO,
			       "read-only: the database in %s cannot be "
			       "written (read-only file, directory or disk) "
			       "(sqlite: %s)",
			       db_dir(db, dir, sizeof(dir)), msg);

	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return GS_OK;
	case SQLITE_NOMEM:
		err = GS_ENOMEM;
		break;
	case SQLITE_FULL:
		err = GS_EFULL;
		break;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		err = GS_EBUSY;
		break;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		err = GS_ECORRUPT;
		break;
	case SQLITE_CONSTRAINT:
		err = (rc == SQLITE_CONSTRAINT_PRIMARYKEY ||
		       rc == SQLITE_CONSTRAINT_UNIQUE)
			      ? GS_EEXISTS
			      : GS_EINVAL;
		break;
	case SQLITE_CANTOPEN:
		err = GS_ENOTFOUND;
		break;
	case SQLITE_IOERR:
	case SQLITE_READONLY:
		err = GS_EIO;
		break;
	case SQLITE_AUTH:
	case SQLITE_PERM:
		err = GS_EDENIED;
		break;
	default:
		err = GS_ERROR;
	}
	return gs__err(ctx, err, "sqlite: %s", msg);
}

int gs__db_exec(struct gs_ctx *ctx, sqlite3 *db, const char *sql)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? GS_OK : gs__err_from_sqlite(ctx, rc, db);
}

int gs__db_prepare(struct gs_ctx *ctx,
		   sqlite3 *db,
		   sqlite3_stmt **out,
		   const char *sql)
{
	int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, out,
				    NULL);

	return rc == SQLITE_OK ? GS_OK : gs__err_from_sqlite(ctx, rc, db);
}

int gs__db_step_done(struct gs_ctx *ctx, sqlite3 *db, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	if (rc == SQLITE_DONE || rc == SQLITE_ROW)
		return GS_OK;
	return gs__err_from_sqlite(ctx, rc, db);
}

static int
pragma_int(struct gs_ctx *ctx, sqlite3 *db, const char *sql, int *out)
{
	sqlite3_stmt *st = NULL;
	int rc = gs__db_prepare(ctx, db, &st, sql);

	if (rc != GS_OK)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*out = sqlite3_column_int(st, 0);
		rc = GS_OK;
	} else {
		rc = gs__err_from_sqlite(ctx, rc, db);
		if (rc == GS_OK)
			rc = gs__err(ctx, GS_ERROR, "%s returned no row", sql);
	}
	sqlite3_finalize(st);
	return rc;
}

static int check_settings(struct gs_ctx *ctx, sqlite3 *db, unsigned flags)
{
	sqlite3_stmt *st = NULL;
	int v = -1;
	int rc;

	if (!(flags & GS_DB_READONLY)) {
		rc = gs__db_prepare(ctx, db, &st, "PRAGMA journal_mode");
		if (rc != GS_OK)
			return rc;
		rc = sqlite3_step(st) == SQLITE_ROW &&
				     strcmp((const char *)sqlite3_column_text(
						    st, 0),
					    "wal") == 0
			     ? GS_OK
			     : gs__err(ctx, GS_EIO,
				       "journal_mode is not WAL (is the "
				       "database on a filesystem without "
				       "shared memory?)");
		sqlite3_finalize(st);
		if (rc != GS_OK)
			return rc;
	}
	rc = pragma_int(ctx, db, "PRAGMA synchronous", &v);
	if (rc == GS_OK && v != ((flags & GS_DB_NORMAL) ? 1 : 2))
		rc = gs__err(ctx, GS_EIO, "synchronous is %d, not as set", v);
	if (rc == GS_OK)
		rc = pragma_int(ctx, db, "PRAGMA foreign_keys", &v);
	if (rc == GS_OK && v != 1)
		rc = gs__err(ctx, GS_EIO, "foreign_keys did not turn on");
	if (rc == GS_OK)
		rc = pragma_int(ctx, db, "PRAGMA trusted_schema", &v);
	if (rc == GS_OK && v != 0)
		rc = gs__err(ctx, GS_EIO, "trusted_schema did not turn off");
	if (rc == GS_OK && (sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, -1,
					      &v) != SQLITE_OK ||
			    v != 1))
		rc = gs__err(ctx, GS_EIO, "defensive mode did not turn on");
	return rc;
}

/* A file that exists but cannot be written (or lives on a read-only
 * disk, where even root cannot write): SQLite reports it as "unable to
 * open", which reads as "does not exist". */
static bool read_only_file(const char *path)
{
	struct statvfs vfs;

	if (access(path, F_OK) != 0)
		return false;
	if (statvfs(path, &vfs) == 0 && (vfs.f_flag & ST_RDONLY))
		return true;
	return access(path, W_OK) != 0;
}

/* The database and its -wal and -shm files hold personal data (and on a
 * handheld its private key): 0600. SQLite gives the -wal and -shm files
 * the database file's mode when it creates them, so creating the database
 * file 0600 ourselves (exclusively, never through a symlink) settles all
 * three; files left looser by an older version are tightened. */
static int db_private(struct gs_ctx *ctx, const char *path, unsigned flags)
{
	static const char *const sfx[] = { "-wal", "-shm" };
	char side[4200];
	int rc;

	if ((flags & GS_DB_READONLY) || path[0] == '\0' || path[0] == ':' ||
	    strncmp(path, "file:", 5) == 0)
		return GS_OK;
	rc = gs__fs_private_file(ctx, path, (flags & GS_DB_CREATE) != 0);
	for (size_t i = 0; rc == GS_OK && i < 2; i++) {
		if (snprintf(side, sizeof(side), "%s%s", path, sfx[i]) >=
		    (int)sizeof(side))
			return gs__err(ctx, GS_EINVAL, "path too long");
		rc = gs__fs_private_file(ctx, side, false);
	}
	return rc;
}

int gs__db_open(sqlite3 **out,
		struct gs_ctx *ctx,
		const char *path,
		unsigned flags)
{
	sqlite3 *db = NULL;
	int oflags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
	int rc;

	GS_CHECK_ARG(out != NULL && path != NULL);
	*out = NULL;
	if (flags & GS_DB_READONLY)
		oflags |= SQLITE_OPEN_READONLY;
	else
		oflags |= SQLITE_OPEN_READWRITE |
			  ((flags & GS_DB_CREATE) ? SQLITE_OPEN_CREATE : 0);
	rc = db_private(ctx, path, flags);
	if (rc != GS_OK)
		return gs__err_wrap(ctx, rc, "open %s", path);
	rc = sqlite3_open_v2(path, &db, oflags, NULL);
	if (rc != SQLITE_OK) {
		rc = gs__err_from_sqlite(ctx, rc, db);
		goto failed;
	}
	sqlite3_extended_result_codes(db, 1);
	sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 1, NULL);
	sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_VIEW, 1, NULL);
	sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
	/* Lowered limits: no row of ours comes near them, and a hostile or
	 * corrupt input hits them long before memory runs out. */
	sqlite3_limit(db, SQLITE_LIMIT_LENGTH, 16 * 1024 * 1024);
	sqlite3_limit(db, SQLITE_LIMIT_SQL_LENGTH, 1024 * 1024);
	sqlite3_limit(db, SQLITE_LIMIT_COLUMN, 200);
	sqlite3_limit(db, SQLITE_LIMIT_ATTACHED, 2);
	sqlite3_busy_timeout(db, 5000);
	rc = gs__db_exec(ctx, db,
			 (flags & GS_DB_READONLY) ? "PRAGMA foreign_keys=ON;"
						    "PRAGMA trusted_schema=OFF;"
			 : (flags & GS_DB_NORMAL)
				 ? "PRAGMA journal_mode=WAL;"
				   "PRAGMA synchronous=NORMAL;"
				   "PRAGMA foreign_keys=ON;"
				   "PRAGMA trusted_schema=OFF;"
				 : "PRAGMA journal_mode=WAL;"
				   "PRAGMA synchronous=FULL;"
				   "PRAGMA foreign_keys=ON;"
				   "PRAGMA trusted_schema=OFF;");
	if (rc == GS_OK && (flags & GS_DB_READONLY))
		rc = gs__db_exec(ctx, db, "PRAGMA synchronous=FULL");
	if (rc == GS_OK)
		rc = check_settings(ctx, db, flags);
failed:
	if (rc == GS_ENOTFOUND && !(flags & GS_DB_READONLY) &&
	    read_only_file(path)) {
		rc = gs__err(ctx, GS_EIO,
			     "read-only: %s exists but cannot be opened for "
			     "writing (read-only file, directory or disk): "
			     "make it writable and retry",
			     path);
		goto out;
	}
	if (rc != GS_OK) {
		gs__err_wrap(ctx, rc, "open %s", path);
		goto out;
	}
	*out = db;
	db = NULL;
out:
	sqlite3_close_v2(db);
	return rc;
}

void gs__db_close(sqlite3 *db)
{
	sqlite3_close_v2(db);
}

int gs__db_schema_version(struct gs_ctx *ctx, sqlite3 *db, int *out)
{
	return pragma_int(ctx, db, "PRAGMA user_version", out);
}

int gs__db_migrate(struct gs_ctx *ctx, sqlite3 *db)
{
	char bump[64];
	int v = 0;
	int rc;

	rc = gs__db_schema_version(ctx, db, &v);
	if (rc != GS_OK)
		return rc;
	if (v > GS_SCHEMA_VERSION)
		return gs__err(ctx, GS_ESCHEMA,
			       "database has schema version %d, this build "
			       "knows up to %d: upgrade gridsync",
			       v, GS_SCHEMA_VERSION);
	for (; v < GS_SCHEMA_VERSION; v++) {
		rc = gs__db_exec(ctx, db, "BEGIN IMMEDIATE");
		if (rc != GS_OK)
			return rc;
		snprintf(bump, sizeof(bump), "PRAGMA user_version=%d", v + 1);
		for (const char *const *sql = gs__schema_migrations[v];
		     rc == GS_OK && *sql != NULL; sql++)
			rc = gs__db_exec(ctx, db, *sql);
		if (rc == GS_OK)
			rc = gs__db_exec(ctx, db, bump);
		if (rc == GS_OK)
			rc = gs__db_exec(ctx, db, "COMMIT");
		if (rc != GS_OK) {
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			return gs__err_wrap(ctx, rc, "migrate to version %d",
					    v + 1);
		}
	}
	return GS_OK;
}

/*
 * The content hash: for each replicated table in manifest order, every row
 * ordered by primary key, every column but server_seq, each value written
 * as type tag, length and bytes. Two databases holding the same replicated
 * rows hash alike whatever order the rows arrived in.
 */
int gs__db_content_hash(struct gs_ctx *ctx,
			sqlite3 *db,
			char out[2 * GS_SHA256_LEN + 1])
{
	return gs__db_content_hash_filtered(ctx, db, NULL, NULL, out);
}

/* The same dump, restricted to the rows each table's filter accepts (the
 * server uses it to hash exactly what a device's scope holds). */
int gs__db_content_hash_filtered(struct gs_ctx *ctx,
				 sqlite3 *db,
				 gs_db_filter_cb filter,
				 void *payload,
				 char out[2 * GS_SHA256_LEN + 1])
{
	struct gs__sha256_state sh;
	uint8_t digest[GS_SHA256_LEN];
	const struct gs_table *tables;
	size_t n_tables;
	struct gs_buf sql;
	int rc;

	rc = gs__sha256_init(&sh);
	if (rc != GS_OK)
		return rc;
	gs__buf_init(&sql, ctx, 64 * 1024);
	tables = gs__manifest(&n_tables);
	for (size_t t = 0; t < n_tables && rc == GS_OK; t++) {
		const struct gs_table *tb = &tables[t];
		sqlite3_stmt *st = NULL;
		bool first = true;
		const char *where = filter != NULL ? filter(tb, payload) : NULL;

		sql.len = 0;
		rc = gs__buf_printf(
			&sql, "SELECT * FROM \"%s\"%s%s%s ORDER BY ", tb->name,
			where != NULL ? " WHERE (" : "",
			where != NULL ? where : "", where != NULL ? ")" : "");
		for (unsigned c = 0; c < tb->n_cols && rc == GS_OK; c++) {
			if (!(tb->cols[c].flags & GS_COL_PK))
				continue;
			rc = gs__buf_printf(&sql, "%s\"%s\"", first ? "" : ",",
					    tb->cols[c].name);
			first = false;
		}
		if (rc == GS_OK)
			rc = gs__buf_cstr(&sql);
		if (rc == GS_OK)
			rc = gs__db_prepare(ctx, db, &st, (char *)sql.data);
		gs__sha256_update(&sh, tb->name, strlen(tb->name) + 1);
		while (rc == GS_OK && sqlite3_step(st) == SQLITE_ROW) {
			for (unsigned c = 0; c < tb->n_cols; c++) {
				int type = sqlite3_column_type(st, (int)c);
				uint8_t tag = (uint8_t)type;
				uint32_t len;

				if (strcmp(tb->cols[c].name, "server_seq") == 0)
					continue;
				gs__sha256_update(&sh, &tag, 1);
				if (type == SQLITE_INTEGER) {
					int64_t iv = sqlite3_column_int64(
						st, (int)c);
					gs__sha256_update(&sh, &iv, sizeof(iv));
				} else if (type == SQLITE_FLOAT) {
					double dv = sqlite3_column_double(
						st, (int)c);
					gs__sha256_update(&sh, &dv, sizeof(dv));
				} else if (type != SQLITE_NULL) {
					const void *p =
						type == SQLITE_TEXT
							? (const void *)
								  sqlite3_column_text(
									  st,
									  (int)c)
							: sqlite3_column_blob(
								  st, (int)c);
					len = (uint32_t)sqlite3_column_bytes(
						st, (int)c);
					gs__sha256_update(&sh, &len,
							  sizeof(len));
					gs__sha256_update(&sh, p, len);
				}
			}
		}
		if (rc == GS_OK && sqlite3_errcode(db) != SQLITE_OK &&
		    sqlite3_errcode(db) != SQLITE_DONE &&
		    sqlite3_errcode(db) != SQLITE_ROW)
			rc = gs__err_from_sqlite(ctx, sqlite3_errcode(db), db);
		sqlite3_finalize(st);
	}
	gs__buf_fini(&sql);
	gs__sha256_final(&sh, digest);
	if (rc == GS_OK)
		gs__hex(out, digest, sizeof(digest));
	return rc;
}
