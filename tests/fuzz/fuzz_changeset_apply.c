/*
 * libFuzzer target: whatever the strict parser ACCEPTS goes to the system
 * SQLite - the 3.40.1 the handhelds run, uninstrumented - to prove that
 * nothing we let through can hang or crash it (DESIGN.md traps 1, 7).
 * Run with -timeout: a hang is a finding.
 *
 * For each accepted input (kind from the first byte, every class allowed):
 *   1. SQLite's iterator must see exactly our rows, value for value (a
 *      differential check: a disagreement is a parser bug or a SQLite one);
 *   2. inside a savepoint on a scratch in-memory database migrated with the
 *      replicated schema (foreign keys on): apply twice (the second apply
 *      meets the first one's rows, so conflict paths run), apply inverted,
 *      roll back; every apply has a table filter, and the conflict handler
 *      replaces on DATA/CONFLICT and omits otherwise;
 *   3. sqlite3changeset_invert, and a changegroup fed the input twice plus
 *      its inversion (changesets only), then output; both results must be
 *      accepted by the parser as well (our rules are closed under what
 *      SQLite itself derives).
 * Rejected inputs return at once: they never reach SQLite.
 *
 * Byte mutations of a valid changeset are nearly always rejected, so a
 * structure-aware mutator (LLVMFuzzerCustomMutator below) spends two turns
 * in three editing accepted inputs as rows: new values of the column's type
 * (extremes, infinity, -0.0, NULLs, Chinese text, empty blobs), colliding
 * keys, duplicated and dropped rows, INSERT/DELETE swaps, UPDATE columns
 * toggled, the indirect flag flipped; the result is re-encoded with
 * gs__cs_encode. The third turn is libFuzzer's own byte mutation.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gridsync/changeset.h>
#include <gridsync/db.h>
#include <gridsync/platform.h>
#include <gridsync/schema.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);
size_t LLVMFuzzerCustomMutator(uint8_t *data,
			       size_t size,
			       size_t max_size,
			       unsigned int seed);

#define CHECK(cond)                                                        \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr,                                    \
				"fuzz_changeset_apply: %s failed at line " \
				"%d\n",                                    \
				#cond, __LINE__);                          \
			abort();                                           \
		}                                                          \
	} while (0)

static struct gs_ctx *ctx;
static sqlite3 *db;

static void init_once(void)
{
	if (db != NULL)
		return;
	if (gs_ctx_new(&ctx, NULL) != GS_OK)
		abort();
	CHECK(sqlite3_open_v2(":memory:", &db,
			      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
			      NULL) == SQLITE_OK);
	CHECK(gs__db_migrate(ctx, db) == GS_OK);
	CHECK(sqlite3_exec(db, "PRAGMA foreign_keys=ON", NULL, NULL, NULL) ==
	      SQLITE_OK);
}

/* Only replicated tables, never sqlite_stat1 or bookkeeping tables. */
static int filter(void *payload, const char *table)
{
	(void)payload;
	return gs__manifest_find(table) != NULL;
}

static int on_conflict(void *payload, int kind, sqlite3_changeset_iter *it)
{
	(void)payload;
	(void)it;
	if (kind == SQLITE_CHANGESET_DATA || kind == SQLITE_CHANGESET_CONFLICT)
		return SQLITE_CHANGESET_REPLACE;
	return SQLITE_CHANGESET_OMIT;
}

static void same_value(const struct gs_cs_value *ours, sqlite3_value *v)
{
	if (v == NULL) {
		CHECK(ours->type == GS_CS_UNDEFINED);
		return;
	}
	CHECK(sqlite3_value_type(v) == ours->type);
	switch (ours->type) {
	case GS_CS_INT:
		CHECK(sqlite3_value_int64(v) == ours->i);
		break;
	case GS_CS_REAL: {
		double d = sqlite3_value_double(v);

		CHECK(memcmp(&d, &ours->r, sizeof(d)) == 0);
		break;
	}
	case GS_CS_TEXT:
	case GS_CS_BLOB: {
		const void *p = ours->type == GS_CS_TEXT
					? (const void *)sqlite3_value_text(v)
					: sqlite3_value_blob(v);

		CHECK((size_t)sqlite3_value_bytes(v) == ours->len);
		CHECK(ours->len == 0 || memcmp(p, ours->p, ours->len) == 0);
		break;
	}
	default:
		break;
	}
}

/* Rows as SQLite's iterator sees them, against the parse. */
static void iterate(const struct gs_cs *cs, const uint8_t *data, size_t size)
{
	sqlite3_changeset_iter *it = NULL;
	size_t r = 0;
	int rc;

	CHECK(sqlite3changeset_start(&it, (int)size, (void *)data) ==
	      SQLITE_OK);
	while ((rc = sqlite3changeset_next(it)) == SQLITE_ROW) {
		const struct gs_cs_row *row;
		const char *tab;
		int n_col;
		int op;
		int ind;

		CHECK(r < cs->n_rows);
		row = &cs->rows[r++];
		CHECK(sqlite3changeset_op(it, &tab, &n_col, &op, &ind) ==
		      SQLITE_OK);
		CHECK(strcmp(tab, row->table->name) == 0);
		CHECK(n_col == (int)row->table->n_cols && op == (int)row->op);
		CHECK((ind != 0) == row->indirect);
		for (int i = 0; i < n_col; i++) {
			sqlite3_value *v = NULL;

			if (op != SQLITE_INSERT) {
				CHECK(sqlite3changeset_old(it, i, &v) ==
				      SQLITE_OK);
				same_value(&row->old_vals[i], v);
			}
			if (op != SQLITE_DELETE) {
				CHECK(sqlite3changeset_new(it, i, &v) ==
				      SQLITE_OK);
				same_value(&row->new_vals[i], v);
			}
		}
	}
	CHECK(rc == SQLITE_DONE);
	CHECK(sqlite3changeset_finalize(it) == SQLITE_OK);
	CHECK(r == cs->n_rows);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gs_cs_opts opts = GS_CS_OPTS_INIT;
	struct gs_cs *cs = NULL;
	sqlite3_changegroup *g = NULL;
	bool patch = size > 0 && data[0] == 'P';
	void *inv = NULL;
	void *out = NULL;
	int n_inv = 0;
	int n_out = 0;
	int rc;

	init_once();
	opts.allow = GS_CS_ALLOW_ALL;
	opts.max_bytes = 1u << 20; /* room for the changegroup's output */
	opts.kind = patch ? GS_CS_PATCHSET : GS_CS_CHANGESET;
	if (gs__cs_parse(&cs, NULL, ctx, data, size, &opts) != GS_OK)
		return 0; /* never reaches SQLite */
	iterate(cs, data, size);

	CHECK(sqlite3_exec(db, "SAVEPOINT fz", NULL, NULL, NULL) == SQLITE_OK);
	for (int k = 0; k < 2; k++) {
		rc = sqlite3changeset_apply(db, (int)size, (void *)data, filter,
					    on_conflict, NULL);
		CHECK(rc == SQLITE_OK);
	}
	rc = sqlite3changeset_apply_v2(db, (int)size, (void *)data, filter,
				       on_conflict, NULL, NULL, NULL,
				       SQLITE_CHANGESETAPPLY_INVERT);
	CHECK(rc == SQLITE_OK || (patch && rc == SQLITE_CORRUPT));
	CHECK(sqlite3_exec(db, "ROLLBACK TO fz; RELEASE fz", NULL, NULL,
			   NULL) == SQLITE_OK);

	rc = sqlite3changeset_invert((int)size, data, &n_inv, &inv);
	CHECK(rc == SQLITE_OK || (patch && rc == SQLITE_CORRUPT));
	/* What SQLite derives from an accepted changeset is accepted too. */
	if (inv != NULL)
		CHECK(gs__cs_check(NULL, ctx, inv, (size_t)n_inv, &opts) ==
		      GS_OK);

	CHECK(sqlite3changegroup_new(&g) == SQLITE_OK);
	CHECK(sqlite3changegroup_add(g, (int)size, (void *)data) == SQLITE_OK);
	CHECK(sqlite3changegroup_add(g, (int)size, (void *)data) == SQLITE_OK);
	if (inv != NULL)
		CHECK(sqlite3changegroup_add(g, n_inv, inv) == SQLITE_OK);
	CHECK(sqlite3changegroup_output(g, &n_out, &out) == SQLITE_OK);
	CHECK(gs__cs_check(NULL, ctx, out, (size_t)n_out, &opts) == GS_OK);
	sqlite3changegroup_delete(g);
	sqlite3_free(out);
	sqlite3_free(inv);
	gs__cs_free(cs);
	return 0;
}

/* ---- structure-aware mutator --------------------------------------------- */

#define MUT_ROWS 512

/* A mutable copy of a parse: rows and their values, new payload bytes in
 * an arena. Static: libFuzzer calls the mutator from one thread. */
static struct {
	struct gs_cs_span spans[64];
	struct gs_cs_row rows[MUT_ROWS];
	struct gs_cs_value vals[MUT_ROWS * 2 * GS_CS_MAX_COLS];
	uint8_t arena[16384];
	size_t arena_used;
	size_t n_vals;
	uint64_t rng;
} m;

static uint64_t mrand(uint64_t n)
{
	/* xorshift64*; n > 0 */
	m.rng ^= m.rng >> 12;
	m.rng ^= m.rng << 25;
	m.rng ^= m.rng >> 27;
	return (m.rng * 2685821657736338717ull) % n;
}

static const char *const texts[] = {
	"",   "a", "张伟", "北京市朝阳区望京街道",         "😀", "closed",
	"k1", "0", "x",    "网格员走访记录：老人身体良好",
};

/* A fresh value that fits column c (key columns never NULL). */
static void new_value(struct gs_cs_value *v, const struct gs_column *c)
{
	static const int64_t ints[] = { 0, 1, -1, INT64_MAX, INT64_MIN, 7 };
	static const double reals[] = { 0.0, -0.0, 1.5, 1e308, -1e-308 };
	bool may_null = !(c->flags & (GS_COL_PK | GS_COL_NOTNULL));

	memset(v, 0, sizeof(*v));
	if (may_null && mrand(5) == 0) {
		v->type = GS_CS_NULL;
		return;
	}
	switch (c->type) {
	case GS_COL_INTEGER:
		v->type = GS_CS_INT;
		v->i = mrand(2) ? ints[mrand(6)] : (int64_t)mrand(1000);
		break;
	case GS_COL_REAL:
		if (mrand(4) == 0) {
			v->type = GS_CS_INT;
			v->i = (int64_t)mrand(100);
		} else {
			v->type = GS_CS_REAL;
			v->r = mrand(6) == 0 ? (mrand(2) ? INFINITY : -INFINITY)
					     : reals[mrand(5)];
		}
		break;
	case GS_COL_BLOB: {
		size_t n = mrand(4) == 0 ? 0 : mrand(32);

		v->type = GS_CS_BLOB;
		if (m.arena_used + n > sizeof(m.arena))
			n = 0;
		for (size_t k = 0; k < n; k++)
			m.arena[m.arena_used + k] = (uint8_t)mrand(256);
		v->p = m.arena + m.arena_used;
		v->len = n;
		m.arena_used += n;
		break;
	}
	default:
		v->type = GS_CS_TEXT;
		v->p = (const uint8_t *)
			texts[mrand(sizeof(texts) / sizeof(texts[0]))];
		v->len = strlen((const char *)v->p);
		break;
	}
}

/* Copy the parse into m; false if it does not fit. */
static bool load(const struct gs_cs *cs)
{
	if (cs->n_spans > 64 || cs->n_rows > MUT_ROWS / 2)
		return false;
	memcpy(m.spans, cs->spans, cs->n_spans * sizeof(*cs->spans));
	m.n_vals = 0;
	m.arena_used = 0;
	for (size_t r = 0; r < cs->n_rows; r++) {
		struct gs_cs_row *row = &m.rows[r];
		unsigned n = cs->rows[r].table->n_cols;

		*row = cs->rows[r];
		/* Every row gets both vectors, so ops can change. */
		memcpy(&m.vals[m.n_vals],
		       row->old_vals ? row->old_vals : row->new_vals,
		       n * sizeof(m.vals[0]));
		row->old_vals = &m.vals[m.n_vals];
		m.n_vals += n;
		memcpy(&m.vals[m.n_vals],
		       row->new_vals ? row->new_vals : cs->rows[r].old_vals,
		       n * sizeof(m.vals[0]));
		row->new_vals = &m.vals[m.n_vals];
		m.n_vals += n;
	}
	return true;
}

static struct gs_cs_value *val(struct gs_cs_row *row, bool old, unsigned i)
{
	return (struct gs_cs_value *)(old ? row->old_vals : row->new_vals) + i;
}

/* One edit of row r of span s, keeping it valid under the parser's rules
 * (the edit may still be rejected, e.g. a patchset DELETE turned INSERT
 * has only its key: then the caller falls back to byte mutation). */
static void edit_row(struct gs_cs *cs, size_t s, size_t r)
{
	struct gs_cs_row *row = &m.rows[r];
	const struct gs_table *t = row->table;
	unsigned i = (unsigned)mrand(t->n_cols);
	bool pk = (t->cols[i].flags & GS_COL_PK) != 0;
	bool patch = cs->kind == GS_CS_PATCHSET;

	switch (mrand(6)) {
	case 0: /* a new value in a defined slot */
		if (row->op != GS_CS_DELETE && !pk &&
		    (row->op == GS_CS_INSERT ||
		     val(row, false, i)->type != GS_CS_UNDEFINED))
			new_value(val(row, false, i), &t->cols[i]);
		else if (row->op != GS_CS_INSERT && !patch &&
			 val(row, true, i)->type != GS_CS_UNDEFINED)
			new_value(val(row, true, i), &t->cols[i]);
		break;
	case 1: /* a key that collides with, or differs from, others */
		if (!pk)
			break;
		new_value(val(row, row->op == GS_CS_INSERT ? false : true, i),
			  &t->cols[i]);
		break;
	case 2: /* INSERT <-> DELETE */
		if (row->op == GS_CS_INSERT && !patch) {
			row->op = GS_CS_DELETE;
			memcpy(val(row, true, 0), val(row, false, 0),
			       t->n_cols * sizeof(m.vals[0]));
		} else if (row->op == GS_CS_DELETE && !patch) {
			row->op = GS_CS_INSERT;
			memcpy(val(row, false, 0), val(row, true, 0),
			       t->n_cols * sizeof(m.vals[0]));
		}
		break;
	case 3: /* UPDATE: change one more column, or one fewer */
		if (row->op != GS_CS_UPDATE || pk)
			break;
		if (val(row, false, i)->type == GS_CS_UNDEFINED) {
			new_value(val(row, false, i), &t->cols[i]);
			if (!patch)
				new_value(val(row, true, i), &t->cols[i]);
		} else {
			memset(val(row, false, i), 0, sizeof(m.vals[0]));
			memset(val(row, true, i), 0, sizeof(m.vals[0]));
		}
		break;
	case 4: /* duplicate the row (same key twice) */
		if (cs->n_rows < MUT_ROWS / 2) {
			memmove(&m.rows[r + 1], &m.rows[r],
				(cs->n_rows - r) * sizeof(m.rows[0]));
			cs->n_rows++;
			m.spans[s].n_rows++;
			for (size_t k = s + 1; k < cs->n_spans; k++)
				m.spans[k].first_row++;
		}
		break;
	default:
		row->indirect = !row->indirect;
		break;
	}
}

size_t LLVMFuzzerCustomMutator(uint8_t *data,
			       size_t size,
			       size_t max_size,
			       unsigned int seed)
{
	struct gs_cs_opts opts = GS_CS_OPTS_INIT;
	struct gs_cs *cs = NULL;
	struct gs_cs view;
	struct gs_buf out;
	size_t n;

	init_once();
	m.rng = seed | 1u;
	if (mrand(3) == 0)
		return LLVMFuzzerMutate(data, size, max_size);
	opts.allow = GS_CS_ALLOW_ALL;
	opts.kind =
		size > 0 && data[0] == 'P' ? GS_CS_PATCHSET : GS_CS_CHANGESET;
	if (gs__cs_parse(&cs, NULL, ctx, data, size, &opts) != GS_OK)
		return LLVMFuzzerMutate(data, size, max_size);
	if (cs->n_rows == 0 || !load(cs)) {
		gs__cs_free(cs);
		return LLVMFuzzerMutate(data, size, max_size);
	}
	view = *cs;
	view.spans = m.spans;
	view.rows = m.rows;
	for (unsigned k = 1 + (unsigned)mrand(3); k > 0; k--) {
		size_t s = mrand(view.n_spans);
		size_t r = m.spans[s].first_row + mrand(m.spans[s].n_rows);

		edit_row(&view, s, r);
	}
	/* Rows back to the shapes their ops have. */
	for (size_t r = 0; r < view.n_rows; r++) {
		if (m.rows[r].op == GS_CS_INSERT)
			m.rows[r].old_vals = NULL;
		if (m.rows[r].op == GS_CS_DELETE)
			m.rows[r].new_vals = NULL;
	}
	gs__buf_init(&out, ctx, max_size);
	n = size;
	if (gs__cs_encode(&out, &view) == GS_OK) {
		memcpy(data, out.data, out.len);
		n = out.len;
	}
	gs__buf_fini(&out);
	gs__cs_free(cs);
	/* The payload bytes live in the input or the arena; data is now
	 * overwritten, so nothing may point into it past this call. */
	return n;
}
