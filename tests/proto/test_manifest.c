/* The manifest must describe the migrated schema exactly: a changeset
 * addresses columns by position, so any drift breaks every upload. */
#include <gridsync/db.h>
#include <gridsync/schema.h>

#include "gs_test.h"

static void manifest_matches_migrated_schema(void **state)
{
	struct gs_ctx *ctx = gs_test_ctx_new(NULL);
	char *dir = gs_test_tmpdir();
	sqlite3 *db = NULL;
	const struct gs_table *t;
	size_t n;
	int version = 0;

	(void)state;
	assert_gs_ok(
		gs__db_open(&db, ctx, gs_test_path(dir, "m.db"), GS_DB_CREATE));
	assert_gs_ok(gs__db_migrate(ctx, db));
	assert_gs_ok(gs__db_schema_version(ctx, db, &version));
	assert_int_equal(version, GS_SCHEMA_VERSION);
	t = gs__manifest(&n);
	assert_int_equal(n, 21);
	for (size_t i = 0; i < n; i++) {
		char sql[128];
		sqlite3_stmt *st = NULL;
		unsigned c = 0;

		snprintf(sql, sizeof(sql), "PRAGMA table_info(\"%s\")",
			 t[i].name);
		assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL),
				 SQLITE_OK);
		while (sqlite3_step(st) == SQLITE_ROW) {
			const char *name =
				(const char *)sqlite3_column_text(st, 1);
			const char *type =
				(const char *)sqlite3_column_text(st, 2);
			int notnull = sqlite3_column_int(st, 3);
			int pk = sqlite3_column_int(st, 5);
			static const char *const types[] = { "", "TEXT",
							     "INTEGER", "REAL",
							     "BLOB" };

			assert_true(c < t[i].n_cols);
			if (strcmp(name, t[i].cols[c].name) != 0)
				fail_msg("%s column %u: schema %s, manifest %s",
					 t[i].name, c, name, t[i].cols[c].name);
			assert_string_equal(type, types[t[i].cols[c].type]);
			assert_int_equal(pk != 0,
					 (t[i].cols[c].flags & GS_COL_PK) != 0);
			if (notnull && !(t[i].cols[c].flags & GS_COL_NOTNULL))
				fail_msg("%s.%s is NOT NULL", t[i].name, name);
			c++;
		}
		sqlite3_finalize(st);
		assert_int_equal(c, t[i].n_cols);
		assert_ptr_equal(gs__manifest_find(t[i].name), &t[i]);
		if (t[i].scope == GS_SCOPE_PARENT)
			assert_non_null(gs__manifest_find(t[i].scope_parent));
		if (t[i].cls == GS_CLASS_R)
			for (c = 0; c < t[i].n_cols; c++)
				assert_false(t[i].cols[c].flags &
					     GS_COL_DEVICE);
	}
	assert_null(gs__manifest_find("sqlite_stat1"));
	assert_null(gs__manifest_find("gs_outbox"));
	/* Migrating again is a no-op. */
	assert_gs_ok(gs__db_migrate(ctx, db));
	gs__db_close(db);
	gs_ctx_free(ctx);
	gs_test_tmpdir_free(dir);
}

static void newer_schema_is_refused(void **state)
{
	struct gs_ctx *ctx = gs_test_ctx_new(NULL);
	char *dir = gs_test_tmpdir();
	sqlite3 *db = NULL;

	(void)state;
	assert_gs_ok(
		gs__db_open(&db, ctx, gs_test_path(dir, "n.db"), GS_DB_CREATE));
	assert_gs_ok(gs__db_exec(ctx, db, "PRAGMA user_version=99"));
	assert_gs_err(gs__db_migrate(ctx, db), GS_ESCHEMA);
	assert_non_null(strstr(gs_ctx_errmsg(ctx), "upgrade gridsync"));
	gs__db_close(db);
	gs_ctx_free(ctx);
	gs_test_tmpdir_free(dir);
}

static void open_sets_and_checks_pragmas(void **state)
{
	struct gs_ctx *ctx = gs_test_ctx_new(NULL);
	char *dir = gs_test_tmpdir();
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;

	(void)state;
	assert_gs_err(gs__db_open(&db, ctx, gs_test_path(dir, "none.db"), 0),
		      GS_ENOTFOUND);
	assert_gs_ok(
		gs__db_open(&db, ctx, gs_test_path(dir, "p.db"), GS_DB_CREATE));
	assert_int_equal(
		sqlite3_prepare_v2(db, "PRAGMA synchronous", -1, &st, NULL),
		SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 2);
	sqlite3_finalize(st);
	/* Defensive mode: writing the schema table directly is refused. */
	assert_int_not_equal(sqlite3_exec(db,
					  "PRAGMA writable_schema=ON;"
					  "UPDATE sqlite_schema SET sql=''",
					  NULL, NULL, NULL),
			     SQLITE_OK);
	gs__db_close(db);
	gs_ctx_free(ctx);
	gs_test_tmpdir_free(dir);
}

/* A database made by the previous release moves to this schema on open,
 * keeping its rows. */
static void older_database_migrates_in_place(void **state)
{
	struct gs_ctx *ctx = gs_test_ctx_new(NULL);
	char *dir = gs_test_tmpdir();
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int version = 0;

	(void)state;
	assert_gs_ok(gs__db_open(&db, ctx, gs_test_path(dir, "old.db"),
				 GS_DB_CREATE));
	for (const char *const *sql = gs__schema_migrations[0]; *sql; sql++)
		assert_gs_ok(gs__db_exec(ctx, db, *sql));
	assert_gs_ok(gs__db_exec(
		ctx, db,
		"PRAGMA user_version=1;"
		"INSERT INTO admin_area (id, code, level, name) VALUES"
		" ('a', '510114001001', 'community', 'c');"
		"INSERT INTO grid (id, code, level, community_id, name) VALUES"
		" ('g', '51011400100101', 'general', 'a', 'g');"
		"INSERT INTO place (id, kind, grid_id, name) VALUES"
		" ('p', 'building', 'g', 'p');"
		"INSERT INTO dwelling (id, place_id, grid_id, room_no) VALUES"
		" ('d', 'p', 'g', '101');"));
	assert_gs_ok(gs__db_migrate(ctx, db));
	assert_gs_ok(gs__db_schema_version(ctx, db, &version));
	assert_int_equal(version, GS_SCHEMA_VERSION);
	assert_int_equal(sqlite3_prepare_v2(db,
					    "SELECT room_no, area_m2 FROM"
					    " dwelling WHERE id = 'd'",
					    -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal(sqlite3_column_text(st, 0), "101");
	assert_int_equal(sqlite3_column_type(st, 1), SQLITE_NULL);
	sqlite3_finalize(st);
	gs__db_close(db);
	gs_ctx_free(ctx);
	gs_test_tmpdir_free(dir);
}

static void states_and_rules(void **state)
{
	const struct gs_transition *t;

	(void)state;
	t = gs__transition_find("handled", "verified");
	assert_non_null(t);
	assert_true(t->offline_roles & GS_ROLE_GW);
	t = gs__transition_find("reported", "accepted");
	assert_non_null(t);
	assert_false(t->offline_roles & GS_ROLE_GW);
	assert_null(gs__transition_find("closed", "reported"));
	assert_true(gs__state_terminal("closed"));
	assert_false(gs__state_terminal("handled"));
	assert_int_equal(gs__state_rank("verified"), 60);
	assert_int_equal(gs__role_parse("SC"), GS_ROLE_SC);
	assert_int_equal(gs__role_parse("XX"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(manifest_matches_migrated_schema),
		cmocka_unit_test(newer_schema_is_refused),
		cmocka_unit_test(open_sets_and_checks_pragmas),
		cmocka_unit_test(older_database_migrates_in_place),
		cmocka_unit_test(states_and_rules),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
