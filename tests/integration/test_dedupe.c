/*
 * gs-test: timeout=300
 *
 * Dedupe against a real gridsyncd over loopback with TLS. Two devices of
 * micro-grid A, offline, each register a household for the same dwelling
 * and in it a resident with the same ID number (the same id_no_hmac); the
 * second device also records a visit to its household. After the syncs the
 * server has merged the second household and resident into the first ones
 * (merged_into redirects), every device lists each once, the visit (and one
 * recorded for the duplicate after the merge) points at the surviving
 * household on every device with every foreign key intact, and both
 * devices equal the server.
 */
#include <gridsync/client_internal.h>

#include "gs_itest.h"

#define HMAC "hmac-dedupe-test-0001"

struct fx {
	char *dir;
	struct gs_itest_server srv;
	struct gs_itest_workers w;
	struct gs_ctx *ctx;
	struct gs_device *a, *b;
};

static struct fx F;

static int setup(void **state)
{
	(void)state;
	F.dir = gs_test_tmpdir();
	F.ctx = gs_test_ctx_new(NULL);
	gs_itest_server_create(&F.srv, F.dir, true);
	gs_itest_workers(&F.srv, &F.w);
	gs_itest_server_start(&F.srv, NULL);
	F.a = gs_itest_device(&F.srv, F.ctx, "dev-a", F.w.gw_a, F.w.grid_a);
	F.b = gs_itest_device(&F.srv, F.ctx, "dev-b", F.w.gw_b, F.w.grid_a);
	gs_itest_sync(F.a, NULL);
	gs_itest_sync(F.b, NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	gs_device_close(F.a);
	gs_device_close(F.b);
	assert_int_equal(gs_itest_server_stop(&F.srv), 0);
	gs_ctx_free(F.ctx);
	gs_test_tmpdir_free(F.dir);
	return 0;
}

static int64_t q(struct gs_device *dev, const char *sql, const char *arg)
{
	sqlite3 *db = gs__device_db(dev);
	sqlite3_stmt *st = NULL;
	int64_t v = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	if (arg != NULL)
		sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void text(struct gs_device *dev,
		 const char *sql,
		 const char *arg,
		 char *out,
		 size_t cap)
{
	sqlite3 *db = gs__device_db(dev);
	sqlite3_stmt *st = NULL;

	out[0] = '\0';
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	if (arg != NULL)
		sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		snprintf(out, cap, "%s", sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
}

static void assert_converged(struct gs_device *dev, const char *id)
{
	char mine[65];
	char theirs[65];

	gs_itest_device_hash(dev, mine);
	gs_itest_scope_hash(&F.srv, id, theirs);
	if (strcmp(mine, theirs) != 0)
		fail_msg("%s did not converge: device %s, server %s", id, mine,
			 theirs);
}

/* Households `household list` shows with the given id. */
struct find {
	const char *id;
	int n;
};

static int find_row(const struct gs_row *row, void *payload)
{
	struct find *f = payload;
	const char *id = gs_row_get(row, "id");

	if (id != NULL && strcmp(id, f->id) == 0)
		f->n++;
	return 0;
}

static int listed(struct gs_device *dev, const char *hh)
{
	struct find f = { hh, 0 };

	assert_gs_ok(gs_household_list(dev, find_row, &f));
	return f.n;
}

static void add_household(struct gs_device *dev,
			  const char *dwelling,
			  const char *grid,
			  char id[GS_ID_LEN])
{
	struct gs_field f[] = { { "dwelling_id", dwelling },
				{ "grid_id", grid },
				{ "size", "2" } };

	if (gs_household_add(dev, id, f, 3) != GS_OK)
		fail_msg("household add: %s", gs_ctx_errmsg(F.ctx));
}

static void add_resident(struct gs_device *dev,
			 const char *hh,
			 const char *name,
			 char id[GS_ID_LEN])
{
	struct gs_field f[] = { { "household_id", hh },
				{ "name", name },
				{ "id_no_hmac", HMAC } };

	if (gs_resident_add(dev, id, f, 3) != GS_OK)
		fail_msg("resident add: %s", gs_ctx_errmsg(F.ctx));
}

static void add_visit(struct gs_device *dev, const char *hh, char id[GS_ID_LEN])
{
	struct gs_visit_opts v = GS_VISIT_OPTS_INIT;

	v.household_id = hh;
	v.kind = "routine";
	v.outcome = "met";
	if (gs_visit_add(dev, id, &v) != GS_OK)
		fail_msg("visit add: %s", gs_ctx_errmsg(F.ctx));
}

/* Every row naming a household or resident finds it. */
static void assert_fk_intact(struct gs_device *dev)
{
	assert_int_equal(q(dev,
			   "SELECT (SELECT count(*) FROM visit v WHERE"
			   " v.household_id IS NOT NULL AND NOT EXISTS (SELECT"
			   " 1 FROM household h WHERE h.id = v.household_id))"
			   " + (SELECT count(*) FROM resident r WHERE NOT"
			   " EXISTS (SELECT 1 FROM household h WHERE h.id ="
			   " r.household_id)) + (SELECT count(*) FROM"
			   " merged_into m WHERE NOT EXISTS (SELECT 1 FROM"
			   " household h WHERE h.id = m.into_id) AND NOT EXISTS"
			   " (SELECT 1 FROM resident r WHERE r.id ="
			   " m.into_id))",
			   NULL),
			 0);
}

static void duplicates_merge_and_references_follow(void **state)
{
	char grid[64];
	char dwelling[64];
	char ha[GS_ID_LEN], hb[GS_ID_LEN];
	char ra[GS_ID_LEN], rb[GS_ID_LEN];
	char va[GS_ID_LEN], vb[GS_ID_LEN], vlate[GS_ID_LEN];
	char buf[64];
	struct gs_device *devs[2];

	(void)state;
	devs[0] = F.a;
	devs[1] = F.b;
	text(F.a, "SELECT id FROM grid WHERE code = ?", F.w.grid_a, grid,
	     sizeof(grid));
	assert_true(grid[0] != '\0');
	/* A dwelling of the grid nobody lives in yet. */
	text(F.a,
	     "SELECT d.id FROM dwelling d WHERE d.grid_id = ? AND NOT EXISTS"
	     " (SELECT 1 FROM household h WHERE h.dwelling_id = d.id)"
	     " ORDER BY d.id LIMIT 1",
	     grid, dwelling, sizeof(dwelling));
	assert_true(dwelling[0] != '\0');
	/* Both devices, offline, register the same household and person;
	 * each records a visit to its own household. */
	add_household(F.a, dwelling, grid, ha);
	add_resident(F.a, ha, "张三", ra);
	add_visit(F.a, ha, va);
	add_household(F.b, dwelling, grid, hb);
	add_resident(F.b, hb, "张三", rb);
	add_visit(F.b, hb, vb);
	gs_itest_sync(F.a, NULL);
	gs_itest_sync(F.b, NULL);
	gs_itest_sync(F.a, NULL);
	/* The server kept the first registration and redirects the second. */
	assert_int_equal(gs_itest_server_int(&F.srv,
					     "SELECT count(*) FROM merged_into"
					     " WHERE id = ?1 AND tbl ="
					     " 'household'",
					     hb),
			 1);
	assert_int_equal(gs_itest_server_int(&F.srv,
					     "SELECT count(*) FROM merged_into"
					     " WHERE id = ?1 AND tbl ="
					     " 'resident'",
					     rb),
			 1);
	for (int k = 0; k < 2; k++) {
		struct gs_device *d = devs[k];

		/* Each listed once: the duplicate is hidden. */
		assert_int_equal(listed(d, ha), 1);
		assert_int_equal(listed(d, hb), 0);
		text(d, "SELECT into_id FROM merged_into WHERE id = ?", hb, buf,
		     sizeof(buf));
		assert_string_equal(buf, ha);
		text(d, "SELECT into_id FROM merged_into WHERE id = ?", rb, buf,
		     sizeof(buf));
		assert_string_equal(buf, ra);
		/* B's visit and resident now name A's household. */
		text(d, "SELECT household_id FROM visit WHERE id = ?", vb, buf,
		     sizeof(buf));
		assert_string_equal(buf, ha);
		text(d, "SELECT household_id FROM resident WHERE id = ?", rb,
		     buf, sizeof(buf));
		assert_string_equal(buf, ha);
		text(d, "SELECT household_id FROM visit WHERE id = ?", va, buf,
		     sizeof(buf));
		assert_string_equal(buf, ha);
		assert_fk_intact(d);
	}
	/* B still holds its household (nothing it saved is erased) and
	 * records one more visit to it: the server re-points it too. */
	assert_int_equal(
		q(F.b, "SELECT count(*) FROM household WHERE id = ?", hb), 1);
	add_visit(F.b, hb, vlate);
	gs_itest_sync(F.b, NULL);
	gs_itest_sync(F.a, NULL);
	for (int k = 0; k < 2; k++) {
		text(devs[k], "SELECT household_id FROM visit WHERE id = ?",
		     vlate, buf, sizeof(buf));
		assert_string_equal(buf, ha);
		assert_fk_intact(devs[k]);
	}
	assert_converged(F.a, "dev-a");
	assert_converged(F.b, "dev-b");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(duplicates_merge_and_references_follow),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
