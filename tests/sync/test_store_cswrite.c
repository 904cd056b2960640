/*
 * The download encoder (proto/cswrite.c) and the store's key text: what
 * the writer produces is byte for byte what SQLite's session extension
 * writes for the same INSERT, passes the strict parser, parses back to
 * the same values and applies with sqlite3changeset_apply; every row the
 * parser would refuse is refused before a byte is written; composite keys
 * are the text SQLite's json_array() makes, whatever the characters.
 */
#include <math.h>

#include <gridsync/changeset.h>
#include <gridsync/cswrite.h>
#include <gridsync/db.h>
#include <gridsync/store_ops.h>

#include "gs_test.h"

struct fx {
	struct gs_test_alloc alloc;
	struct gs_ctx *ctx;
	char *dir;
	sqlite3 *db;
	long live0; /* allocations alive after setup */
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	f->ctx = gs_test_ctx_new(&f->alloc);
	f->dir = gs_test_tmpdir();
	assert_gs_ok(gs__db_open(&f->db, f->ctx, gs_test_path(f->dir, "c.db"),
				 GS_DB_CREATE));
	assert_gs_ok(gs__db_migrate(f->ctx, f->db));
	assert_gs_ok(gs__db_exec(
		f->ctx, f->db,
		"INSERT INTO admin_area (id, code, level, name) VALUES"
		" ('a1', '510114001001', 'community', '玉林社区');"));
	f->live0 = f->alloc.live;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	assert_int_equal(f->alloc.live, f->live0);
	gs__db_close(f->db);
	gs_ctx_free(f->ctx);
	gs_test_tmpdir_free(f->dir);
	free(f);
	return 0;
}

static struct gs_cs_value vt(const char *s)
{
	struct gs_cs_value v;

	memset(&v, 0, sizeof(v));
	v.type = s != NULL ? GS_CS_TEXT : GS_CS_NULL;
	v.p = (const uint8_t *)s;
	v.len = s != NULL ? strlen(s) : 0;
	return v;
}

static struct gs_cs_value vi(int64_t i)
{
	struct gs_cs_value v;

	memset(&v, 0, sizeof(v));
	v.type = GS_CS_INT;
	v.i = i;
	return v;
}

static struct gs_cs_value vr(double r)
{
	struct gs_cs_value v;

	memset(&v, 0, sizeof(v));
	v.type = GS_CS_REAL;
	v.r = r;
	return v;
}

static struct gs_cs_value vb(const void *p, size_t len)
{
	struct gs_cs_value v;

	memset(&v, 0, sizeof(v));
	v.type = GS_CS_BLOB;
	v.p = p;
	v.len = len;
	return v;
}

/* A grid row using every value type. */
static void grid_row(struct gs_cs_value *v, const uint8_t *blob, size_t n)
{
	v[0] = vt("g1");
	v[1] = vt("51011400100101001");
	v[2] = vt("micro");
	v[3] = vt("a1");
	v[4] = vt(NULL);
	v[5] = vt("一号微网格");
	v[6] = vi(-61);
	v[7] = vr(30.6612345);
	v[8] = vr(104.07);
	v[9] = vb(blob, n);
	v[10] = vt("");
	v[11] = vt(NULL);
	v[12] = vi(1234567890123LL);
	v[13] = vi(0);
}

static void same_bytes_as_sqlite(void **state)
{
	struct fx *f = *state;
	const struct gs_table *t = gs__manifest_find("grid");
	uint8_t blob[300];
	struct gs_cs_value v[14];
	struct gs_buf out;
	sqlite3_session *s = NULL;
	sqlite3_stmt *ins = NULL;
	void *cs = NULL;
	int n = 0;

	for (size_t i = 0; i < sizeof(blob); i++)
		blob[i] = (uint8_t)(i * 7); /* a 2-byte varint length */
	grid_row(v, blob, sizeof(blob));
	assert_int_equal(t->n_cols, 14);
	gs__buf_init(&out, f->ctx, 1 << 20);
	assert_gs_ok(gs__cs_write_header(&out, t));
	assert_int_equal(gs__cs_insert_size(t, v) + out.len,
			 out.len + gs__cs_insert_size(t, v));
	assert_gs_ok(gs__cs_write_insert(&out, t, v));

	/* SQLite's own capture of the same row. */
	assert_int_equal(sqlite3session_create(f->db, "main", &s), SQLITE_OK);
	assert_int_equal(sqlite3session_attach(s, "grid"), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(
				 f->db,
				 "INSERT INTO grid VALUES (?1, ?2, ?3, ?4, ?5,"
				 " ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
				 -1, &ins, NULL),
			 SQLITE_OK);
	sqlite3_bind_text(ins, 1, "g1", -1, SQLITE_STATIC);
	sqlite3_bind_text(ins, 2, "51011400100101001", -1, SQLITE_STATIC);
	sqlite3_bind_text(ins, 3, "micro", -1, SQLITE_STATIC);
	sqlite3_bind_text(ins, 4, "a1", -1, SQLITE_STATIC);
	sqlite3_bind_null(ins, 5);
	sqlite3_bind_text(ins, 6, "一号微网格", -1, SQLITE_STATIC);
	sqlite3_bind_int64(ins, 7, -61);
	sqlite3_bind_double(ins, 8, 30.6612345);
	sqlite3_bind_double(ins, 9, 104.07);
	sqlite3_bind_blob(ins, 10, blob, sizeof(blob), SQLITE_STATIC);
	sqlite3_bind_text(ins, 11, "", 0, SQLITE_STATIC);
	sqlite3_bind_null(ins, 12);
	sqlite3_bind_int64(ins, 13, 1234567890123LL);
	sqlite3_bind_int64(ins, 14, 0);
	assert_int_equal(sqlite3_step(ins), SQLITE_DONE);
	sqlite3_finalize(ins);
	assert_int_equal(sqlite3session_changeset(s, &n, &cs), SQLITE_OK);
	sqlite3session_delete(s);
	assert_int_equal((size_t)n, out.len);
	assert_memory_equal(cs, out.data, out.len);
	sqlite3_free(cs);
	gs__buf_fini(&out);
}

static int replace_all(void *p, int kind, sqlite3_changeset_iter *it)
{
	(void)p;
	(void)it;
	return kind == SQLITE_CHANGESET_CONFLICT ? SQLITE_CHANGESET_REPLACE
						 : SQLITE_CHANGESET_OMIT;
}

static void parses_and_applies(void **state)
{
	struct fx *f = *state;
	const struct gs_table *grid = gs__manifest_find("grid");
	const struct gs_table *area = gs__manifest_find("admin_area");
	struct gs_cs_value v[14];
	struct gs_cs_value a[7];
	struct gs_cs_opts o = GS_CS_OPTS_INIT;
	struct gs_cs *cs = NULL;
	struct gs_buf out;
	uint8_t blob[3] = { 0, 1, 2 };
	sqlite3_stmt *q = NULL;

	o.allow = GS_CS_ALLOW_ALL;
	gs__buf_init(&out, f->ctx, 1 << 20);
	a[0] = vt("a2");
	a[1] = vt("510114001002");
	a[2] = vt("community");
	a[3] = vt(NULL);
	a[4] = vt("二号社区");
	a[5] = vi(7);
	a[6] = vi(0);
	assert_gs_ok(gs__cs_write_header(&out, area));
	assert_gs_ok(gs__cs_write_insert(&out, area, a));
	a[0] = vt("a1"); /* replaces the existing row */
	a[1] = vt("510114001001");
	a[4] = vt("改名社区");
	assert_gs_ok(gs__cs_write_insert(&out, area, a));
	grid_row(v, blob, sizeof(blob));
	assert_gs_ok(gs__cs_write_header(&out, grid));
	assert_gs_ok(gs__cs_write_insert(&out, grid, v));
	assert_gs_ok(gs__cs_check(NULL, f->ctx, out.data, out.len, &o));
	assert_gs_ok(gs__cs_parse(&cs, NULL, f->ctx, out.data, out.len, &o));
	assert_int_equal(cs->n_rows, 3);
	assert_int_equal(cs->rows[2].new_vals[7].type, GS_CS_REAL);
	assert_true(cs->rows[2].new_vals[7].r == 30.6612345);
	assert_int_equal(cs->rows[2].new_vals[9].len, 3);
	gs__cs_free(cs);
	assert_int_equal(sqlite3changeset_apply(f->db, (int)out.len, out.data,
						NULL, replace_all, NULL),
			 SQLITE_OK);
	assert_int_equal(
		sqlite3_prepare_v2(f->db,
				   "SELECT (SELECT name FROM admin_area"
				   " WHERE id = 'a1'), lat,"
				   " length(boundary), server_seq"
				   " FROM grid WHERE id = 'g1'",
				   -1, &q, NULL),
		SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(q, 0),
			    "改名社区");
	assert_true(sqlite3_column_double(q, 1) == 30.6612345);
	assert_int_equal(sqlite3_column_int(q, 2), 3);
	assert_int_equal(sqlite3_column_int64(q, 3), 1234567890123LL);
	sqlite3_finalize(q);
	gs__buf_fini(&out);
}

static void refuses_what_the_parser_refuses(void **state)
{
	struct fx *f = *state;
	const struct gs_table *t = gs__manifest_find("grid");
	struct gs_cs_value v[14];
	struct gs_buf out;
	uint8_t blob[1] = { 9 };
	static const char bad_utf8[] = "\xc3\x28";
	static const char with_nul[] = { 'a', 0, 'b' };

	gs__buf_init(&out, f->ctx, 1 << 20);
	for (int k = 0; k < 9; k++) {
		grid_row(v, blob, 1);
		switch (k) {
		case 0:
			v[5].type = GS_CS_UNDEFINED;
			break;
		case 1:
			v[0] = vt(NULL); /* key */
			break;
		case 2:
			v[5] = vt(NULL); /* name NOT NULL */
			break;
		case 3:
			v[6] = vt("61"); /* text in an INTEGER column */
			break;
		case 4:
			v[7] = vr(NAN);
			break;
		case 5:
			v[5] = vt(bad_utf8);
			break;
		case 6:
			v[5] = vb(with_nul, sizeof(with_nul));
			v[5].type = GS_CS_TEXT;
			break;
		case 7:
			v[9] = vt("not a blob");
			break;
		default:
			v[6] = vr(1.5); /* real in an INTEGER column */
			break;
		}
		assert_int_equal(gs__cs_insert_size(t, v), 0);
		assert_gs_err(gs__cs_write_insert(&out, t, v), GS_EINVAL);
		assert_int_equal(out.len, 0);
	}
	/* An integer in a REAL column is what SQLite writes too. */
	grid_row(v, blob, 1);
	v[7] = vi(30);
	assert_gs_ok(gs__cs_write_insert(&out, t, v));
	/* A full buffer is GS_ETOOBIG and leaves it as it was. */
	gs__buf_fini(&out);
	gs__buf_init(&out, f->ctx, 16);
	assert_gs_err(gs__cs_write_insert(&out, t, v), GS_ETOOBIG);
	assert_int_equal(out.len, 0);
	gs__buf_fini(&out);
}

static void key_text_matches_json_array(void **state)
{
	struct fx *f = *state;
	const struct gs_table *mr = gs__manifest_find("mobilization_result");
	const struct gs_table *hh = gs__manifest_find("household");
	struct gs_cs_value v[GS_CS_MAX_COLS];
	static const char *const keys[][2] = {
		{ "0190aaaa-0000-7000-8000-000000000001", "h1" },
		{ "quote\"back\\slash", "tab\tnl\ncr\rbs\bff\f" },
		{ "ctl\x01\x1f end", "中文/é" },
		{ "", "" },
	};
	char text[GS_STORE_PK_TEXT_MAX];
	char want[GS_STORE_PK_TEXT_MAX];
	sqlite3_stmt *q = NULL;

	assert_int_equal(sqlite3_prepare_v2(f->db, "SELECT json_array(?, ?)",
					    -1, &q, NULL),
			 SQLITE_OK);
	memset(v, 0, sizeof(v));
	for (size_t i = 0; i < sizeof(keys) / sizeof(*keys); i++) {
		v[0] = vt(keys[i][0]);
		v[1] = vt(keys[i][1]);
		assert_gs_ok(gs__merge_pk_text(text, sizeof(text), mr, v));
		sqlite3_bind_text(q, 1, keys[i][0], -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 2, keys[i][1], -1, SQLITE_STATIC);
		assert_int_equal(sqlite3_step(q), SQLITE_ROW);
		snprintf(want, sizeof(want), "%s", sqlite3_column_text(q, 0));
		sqlite3_reset(q);
		assert_string_equal(text, want);
	}
	sqlite3_finalize(q);
	/* A one-column key is its value; too small a buffer is refused. */
	v[0] = vt("h1");
	assert_gs_ok(gs__merge_pk_text(text, sizeof(text), hh, v));
	assert_string_equal(text, "h1");
	assert_gs_err(gs__merge_pk_text(text, 2, hh, v), GS_ETOOBIG);
	v[0] = vi(1);
	assert_gs_err(gs__merge_pk_text(text, sizeof(text), hh, v), GS_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(same_bytes_as_sqlite, setup,
						teardown),
		cmocka_unit_test_setup_teardown(parses_and_applies, setup,
						teardown),
		cmocka_unit_test_setup_teardown(refuses_what_the_parser_refuses,
						setup, teardown),
		cmocka_unit_test_setup_teardown(key_text_matches_json_array,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
