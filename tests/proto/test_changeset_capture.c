/*
 * Property: every changeset and patchset that SQLite's own session
 * extension captures from the real migrated schema is accepted by the
 * parser, and the parser's rows equal, value by value, what SQLite's
 * iterator reports for those (trusted) bytes. Random seeded workloads of
 * INSERT/UPDATE/DELETE over every replicated table, with Chinese and emoji
 * text, NULLs, empty and binary blobs, extreme integers, reals and infinity,
 * key changes (DELETE + INSERT) and indirect sessions. Each capture must
 * also round-trip through gs__cs_encode byte for byte, and a device
 * allowlist must reject exactly the captures that touch reference tables.
 *
 * GS_TEST_SEED replays a run; GS_CS_DUMP_DIR=dir writes every capture there
 * as valid-*.cs (how tests/data/fuzz/changeset/ was seeded).
 *
 * gs-test: timeout=120
 */
#include <math.h>

#include <gridsync/changeset.h>
#include <gridsync/db.h>
#include <gridsync/schema.h>

#include "gs_test.h"

#define ROUNDS  300
#define MAX_OPS 40

struct world {
	struct gs_ctx *ctx;
	sqlite3 *db;
	uint64_t rng;
	const struct gs_table *tables;
	size_t n_tables;
	bool notnull[32][64]; /* from PRAGMA table_info: the schema's truth */
	const char *dump_dir;
	unsigned dumped;
	size_t stats_rows;
	size_t stats_bytes;
	size_t stats_ops[2][3]; /* [patchset][INSERT, UPDATE, DELETE] */
};

static uint64_t rnd(struct world *w, uint64_t n)
{
	return gs_test_rand(&w->rng) % n;
}

static const char *const chinese[] = {
	"张伟",
	"王芳",
	"李娜",
	"北京市朝阳区望京街道",
	"网格员走访",
	"独居老人",
	"社区卫生服务中心",
	"已核实，情况属实",
	"😀👍",
	"ünïcødé",
	"",
	"楼道堆物，存在消防隐患",
};

/* Fill buf with random valid UTF-8 text; returns its length. */
static size_t random_text(struct world *w, char *buf, size_t cap)
{
	size_t n = 0;
	uint64_t kind = rnd(w, 4);
	size_t want = kind == 3 ? 500 + rnd(w, 2500) : rnd(w, 40);

	while (n < want) {
		const char *piece;
		size_t l;
		char c[2];

		if (rnd(w, 3) == 0) {
			piece = chinese[rnd(w, sizeof(chinese) /
						       sizeof(chinese[0]))];
		} else {
			c[0] = (char)("abcdefghijklmnopqrstuvwxyz0123456789 -:"
					      [rnd(w, 39)]);
			c[1] = '\0';
			piece = c;
		}
		l = strlen(piece);
		if (n + l >= cap)
			break;
		memcpy(buf + n, piece, l);
		n += l;
	}
	return n;
}

static const int64_t ints[] = { 0, 1, -1, INT64_MAX, INT64_MIN, 42, 1 << 20 };
static const double reals[] = { 0.0,   1.5,     -2.25,   2.0,
				1e300, -1e-300, 39.9042, 116.4074 };

/* Bind a random value that fits column c (NULL only where allowed). */
static void bind_random(struct world *w,
			sqlite3_stmt *st,
			int idx,
			const struct gs_column *c,
			bool notnull)
{
	char buf[4096];
	uint8_t bytes[256];
	size_t n;

	if (!notnull && rnd(w, 6) == 0) {
		sqlite3_bind_null(st, idx);
		return;
	}
	switch (c->type) {
	case GS_COL_INTEGER:
		if (rnd(w, 2) == 0)
			sqlite3_bind_int64(
				st, idx,
				ints[rnd(w, sizeof(ints) / sizeof(ints[0]))]);
		else
			sqlite3_bind_int64(st, idx,
					   (int64_t)gs_test_rand(&w->rng));
		break;
	case GS_COL_REAL:
		if (rnd(w, 10) == 0)
			sqlite3_bind_double(st, idx,
					    rnd(w, 2) ? INFINITY : -INFINITY);
		else if (rnd(w, 2) == 0)
			sqlite3_bind_double(
				st, idx,
				reals[rnd(w,
					  sizeof(reals) / sizeof(reals[0]))]);
		else
			sqlite3_bind_double(
				st, idx,
				(double)(int64_t)gs_test_rand(&w->rng) / 1e9);
		break;
	case GS_COL_BLOB:
		n = rnd(w, 5) == 0 ? 0 : rnd(w, sizeof(bytes));
		for (size_t i = 0; i < n; i++)
			bytes[i] = (uint8_t)rnd(w, 256);
		/* A non-NULL pointer: a zero-length blob, not a NULL. */
		sqlite3_bind_blob(st, idx, bytes, (int)n, SQLITE_TRANSIENT);
		break;
	default:
		n = random_text(w, buf, sizeof(buf));
		sqlite3_bind_text(st, idx, buf, (int)n, SQLITE_TRANSIENT);
		break;
	}
}

static void bind_key(struct world *w, sqlite3_stmt *st, int idx)
{
	char key[48];

	snprintf(key, sizeof(key), "k-%016llx",
		 (unsigned long long)gs_test_rand(&w->rng));
	sqlite3_bind_text(st, idx, key, -1, SQLITE_TRANSIENT);
}

static void exec(struct world *w, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(w->db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
}

static void random_insert(struct world *w, size_t ti)
{
	const struct gs_table *t = &w->tables[ti];
	char sql[2048];
	size_t n;
	sqlite3_stmt *st = NULL;

	n = (size_t)snprintf(sql, sizeof(sql), "INSERT INTO %s VALUES (",
			     t->name);
	for (unsigned i = 0; i < t->n_cols; i++)
		n += (size_t)snprintf(sql + n, sizeof(sql) - n, "%s?",
				      i ? "," : "");
	snprintf(sql + n, sizeof(sql) - n, ")");
	assert_int_equal(sqlite3_prepare_v2(w->db, sql, -1, &st, NULL),
			 SQLITE_OK);
	for (unsigned i = 0; i < t->n_cols; i++)
		if (t->cols[i].flags & GS_COL_PK)
			bind_key(w, st, (int)i + 1);
		else
			bind_random(w, st, (int)i + 1, &t->cols[i],
				    w->notnull[ti][i]);
	/* A UNIQUE collision is possible in principle: then no change. */
	(void)sqlite3_step(st);
	sqlite3_finalize(st);
}

/* UPDATE (1-3 random columns, sometimes the key) or DELETE a random
 * existing row of table ti. */
static void random_change(struct world *w, size_t ti, bool del)
{
	const struct gs_table *t = &w->tables[ti];
	char sql[2048];
	sqlite3_stmt *st = NULL;
	sqlite3_int64 rowid;
	int count;
	unsigned cols[3];
	unsigned n_cols = 1 + (unsigned)rnd(w, 3);
	size_t n;

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", t->name);
	assert_int_equal(sqlite3_prepare_v2(w->db, sql, -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	count = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (count == 0) {
		random_insert(w, ti);
		return;
	}
	snprintf(sql, sizeof(sql), "SELECT rowid FROM %s LIMIT 1 OFFSET %d",
		 t->name, (int)rnd(w, (uint64_t)count));
	assert_int_equal(sqlite3_prepare_v2(w->db, sql, -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	rowid = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);

	if (del) {
		snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE rowid=%lld",
			 t->name, (long long)rowid);
		exec(w, sql);
		return;
	}
	n = (size_t)snprintf(sql, sizeof(sql), "UPDATE %s SET ", t->name);
	for (unsigned k = 0; k < n_cols; k++) {
		/* One change in ten may hit a key column: SQLite records
		 * that as DELETE + INSERT. */
		do
			cols[k] = (unsigned)rnd(w, t->n_cols);
		while ((t->cols[cols[k]].flags & GS_COL_PK) && rnd(w, 10));
		n += (size_t)snprintf(sql + n, sizeof(sql) - n, "%s%s=?%u",
				      k ? "," : "", t->cols[cols[k]].name,
				      k + 1);
	}
	snprintf(sql + n, sizeof(sql) - n, " WHERE rowid=%lld",
		 (long long)rowid);
	assert_int_equal(sqlite3_prepare_v2(w->db, sql, -1, &st, NULL),
			 SQLITE_OK);
	for (unsigned k = 0; k < n_cols; k++)
		if (t->cols[cols[k]].flags & GS_COL_PK)
			bind_key(w, st, (int)k + 1);
		else
			bind_random(w, st, (int)k + 1, &t->cols[cols[k]],
				    w->notnull[ti][cols[k]]);
	(void)sqlite3_step(st);
	sqlite3_finalize(st);
}

/* ---- comparing with SQLite's iterator ------------------------------------ */

static void same_value(const struct gs_cs_value *ours,
		       sqlite3_value *theirs,
		       const char *where,
		       unsigned col)
{
	if (theirs == NULL) {
		if (ours->type != GS_CS_UNDEFINED)
			fail_msg("%s col %u: SQLite undefined, we %d", where,
				 col, ours->type);
		return;
	}
	if (sqlite3_value_type(theirs) != ours->type)
		fail_msg("%s col %u: SQLite type %d, we %d", where, col,
			 sqlite3_value_type(theirs), ours->type);
	switch (ours->type) {
	case GS_CS_INT:
		assert_true(sqlite3_value_int64(theirs) == ours->i);
		break;
	case GS_CS_REAL: {
		double d = sqlite3_value_double(theirs);

		assert_memory_equal(&d, &ours->r, sizeof(d));
		break;
	}
	case GS_CS_TEXT:
	case GS_CS_BLOB: {
		const void *p =
			ours->type == GS_CS_TEXT
				? (const void *)sqlite3_value_text(theirs)
				: sqlite3_value_blob(theirs);

		assert_int_equal((size_t)sqlite3_value_bytes(theirs),
				 ours->len);
		if (ours->len > 0)
			assert_memory_equal(p, ours->p, ours->len);
		break;
	}
	default:
		break;
	}
}

static void same_as_sqlite(struct world *w,
			   const uint8_t *data,
			   int len,
			   enum gs_cs_kind kind)
{
	struct gs_cs_opts opts = GS_CS_OPTS_INIT;
	struct gs_cs_error err;
	struct gs_cs *cs = NULL;
	sqlite3_changeset_iter *it = NULL;
	struct gs_buf out;
	bool has_r = false;
	size_t r = 0;
	int rc;

	opts.kind = kind;
	opts.allow = GS_CS_ALLOW_ALL;
	rc = gs__cs_parse(&cs, &err, w->ctx, data, (size_t)len, &opts);
	if (rc != GS_OK)
		fail_msg("SQLite's own %s rejected: %s",
			 kind == GS_CS_PATCHSET ? "patchset" : "changeset",
			 gs_ctx_errmsg(w->ctx));

	assert_int_equal(sqlite3changeset_start(&it, len, (void *)data),
			 SQLITE_OK);
	while ((rc = sqlite3changeset_next(it)) == SQLITE_ROW) {
		const struct gs_cs_row *row;
		const char *tab;
		unsigned char *pk;
		int n_col;
		int op;
		int ind;

		assert_true(r < cs->n_rows);
		row = &cs->rows[r];
		assert_int_equal(
			sqlite3changeset_op(it, &tab, &n_col, &op, &ind),
			SQLITE_OK);
		assert_string_equal(tab, row->table->name);
		assert_int_equal(n_col, row->table->n_cols);
		assert_int_equal(op, row->op);
		assert_int_equal(ind != 0, row->indirect);
		assert_int_equal(sqlite3changeset_pk(it, &pk, &n_col),
				 SQLITE_OK);
		for (int i = 0; i < n_col; i++) {
			sqlite3_value *v;

			assert_int_equal(
				pk[i] != 0,
				(row->table->cols[i].flags & GS_COL_PK) != 0);
			if (op != SQLITE_INSERT) {
				assert_int_equal(
					sqlite3changeset_old(it, i, &v),
					SQLITE_OK);
				same_value(&row->old_vals[i], v, "old",
					   (unsigned)i);
			}
			if (op != SQLITE_DELETE) {
				assert_int_equal(
					sqlite3changeset_new(it, i, &v),
					SQLITE_OK);
				same_value(&row->new_vals[i], v, "new",
					   (unsigned)i);
			}
		}
		has_r |= row->table->cls == GS_CLASS_R;
		w->stats_ops[kind == GS_CS_PATCHSET][op == SQLITE_INSERT ? 0
						     : op == SQLITE_UPDATE
							     ? 1
							     : 2]++;
		r++;
	}
	assert_int_equal(rc, SQLITE_DONE);
	assert_int_equal(sqlite3changeset_finalize(it), SQLITE_OK);
	assert_int_equal(r, cs->n_rows);

	/* The canonical encoder reproduces SQLite's bytes exactly. */
	gs__buf_init(&out, w->ctx, (size_t)len + 1);
	assert_gs_ok(gs__cs_encode(&out, cs));
	assert_int_equal(out.len, (size_t)len);
	assert_memory_equal(out.data, data, (size_t)len);
	gs__buf_fini(&out);

	/* As a device upload: accepted iff no reference table is touched. */
	opts.allow = GS_CS_ALLOW_DEVICE;
	rc = gs__cs_check(&err, w->ctx, data, (size_t)len, &opts);
	if (has_r) {
		assert_gs_err(rc, GS_EPROTO);
		assert_int_equal(err.reason, GS_CS_TABLE_NOT_ALLOWED);
	} else {
		assert_gs_ok(rc);
	}
	w->stats_rows += cs->n_rows;
	w->stats_bytes += (size_t)len;
	gs__cs_free(cs);
}

static void dump(struct world *w, const void *data, int len, const char *kind)
{
	char name[64];
	FILE *fp;

	/* Small seeds fuzz best; a few dozen cover every table and op. */
	if (w->dump_dir == NULL || len == 0 || len > 4096 || w->dumped >= 64)
		return;
	snprintf(name, sizeof(name), "valid-%03u-%s.cs", w->dumped++, kind);
	fp = fopen(gs_test_path(w->dump_dir, name), "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, (size_t)len, fp), (size_t)len);
	fclose(fp);
}

static void read_notnull(struct world *w)
{
	for (size_t ti = 0; ti < w->n_tables; ti++) {
		char sql[128];
		sqlite3_stmt *st = NULL;
		unsigned c = 0;

		snprintf(sql, sizeof(sql), "PRAGMA table_info(\"%s\")",
			 w->tables[ti].name);
		assert_int_equal(sqlite3_prepare_v2(w->db, sql, -1, &st, NULL),
				 SQLITE_OK);
		while (sqlite3_step(st) == SQLITE_ROW) {
			assert_true(c < 64);
			w->notnull[ti][c++] = sqlite3_column_int(st, 3) != 0;
		}
		sqlite3_finalize(st);
		assert_int_equal(c, w->tables[ti].n_cols);
	}
}

static void captures_parse_like_sqlite_iterates(void **state)
{
	struct world w = { 0 };
	char *dir = gs_test_tmpdir();

	(void)state;
	w.rng = gs_test_seed("changeset_capture");
	w.ctx = gs_test_ctx_new(NULL);
	w.dump_dir = getenv("GS_CS_DUMP_DIR");
	w.tables = gs__manifest(&w.n_tables);
	assert_true(w.n_tables <= 32);
	assert_gs_ok(gs__db_open(&w.db, w.ctx, gs_test_path(dir, "p.db"),
				 GS_DB_CREATE | GS_DB_NORMAL));
	assert_gs_ok(gs__db_migrate(w.ctx, w.db));
	/* Random rows ignore foreign keys and CHECK lists: the parser only
	 * sees column types and NULLs, which the generator honours. */
	exec(&w, "PRAGMA foreign_keys=OFF; PRAGMA ignore_check_constraints=ON");
	read_notnull(&w);

	for (unsigned round = 0; round < ROUNDS; round++) {
		sqlite3_session *s = NULL;
		/* One round in three is small (and makes a good seed). */
		unsigned n_ops = 1 + (unsigned)rnd(&w, round % 3 ? MAX_OPS : 3);
		void *cs = NULL;
		void *ps = NULL;
		int cs_len = 0;
		int ps_len = 0;

		assert_int_equal(sqlite3session_create(w.db, "main", &s),
				 SQLITE_OK);
		for (size_t ti = 0; ti < w.n_tables; ti++)
			assert_int_equal(
				sqlite3session_attach(s, w.tables[ti].name),
				SQLITE_OK);
		sqlite3session_indirect(s, round % 7 == 3);
		exec(&w, "BEGIN");
		for (unsigned k = 0; k < n_ops; k++) {
			/* Odd rounds stay on device tables only. */
			size_t ti = rnd(&w, w.n_tables);
			uint64_t what = rnd(&w, 10);

			while (round % 2 && w.tables[ti].cls == GS_CLASS_R)
				ti = rnd(&w, w.n_tables);
			if (what < 5)
				random_insert(&w, ti);
			else
				random_change(&w, ti, what >= 8);
		}
		exec(&w, "COMMIT");
		assert_int_equal(sqlite3session_changeset(s, &cs_len, &cs),
				 SQLITE_OK);
		assert_int_equal(sqlite3session_patchset(s, &ps_len, &ps),
				 SQLITE_OK);
		sqlite3session_delete(s);
		same_as_sqlite(&w, cs, cs_len, GS_CS_CHANGESET);
		same_as_sqlite(&w, ps, ps_len, GS_CS_PATCHSET);
		dump(&w, cs, cs_len, "changeset");
		dump(&w, ps, ps_len, "patchset");
		sqlite3_free(cs);
		sqlite3_free(ps);
	}
	fprintf(stderr,
		"# %d rounds: %zu rows, %zu bytes captured and compared; "
		"changeset I/U/D %zu/%zu/%zu, patchset %zu/%zu/%zu\n",
		ROUNDS, w.stats_rows, w.stats_bytes, w.stats_ops[0][0],
		w.stats_ops[0][1], w.stats_ops[0][2], w.stats_ops[1][0],
		w.stats_ops[1][1], w.stats_ops[1][2]);
	for (int k = 0; k < 2; k++)
		for (int op = 0; op < 3; op++)
			assert_true(w.stats_ops[k][op] > 10);
	gs__db_close(w.db);
	gs_ctx_free(w.ctx);
	gs_test_tmpdir_free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(captures_parse_like_sqlite_iterates),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
