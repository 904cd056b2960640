/*
 * Property: for any workload a device can run through the public API,
 * every outbox entry it captures is accepted by our strict parser as a
 * device upload (a changeset of device tables, default limits), and the
 * parser reports exactly the rows SQLite's own iterator reports on those
 * bytes: same tables, operations, indirect flags, key layout, and the same
 * old and new values, value by value (type, integer, the real's bits,
 * text and blob bytes, undefined where SQLite has no value). Encoding the
 * parse gives the bytes back.
 *
 * The workload is seeded: households and residents added and edited with
 * random fields (Chinese text, quotes, newlines, emoji, empty strings,
 * "-" and "NULL" as text, SQL NULLs, extreme integers), visits with and
 * without a location, issues reported and moved along the paths a grid
 * worker may take offline. The seed is printed; GS_TEST_SEED=N replays it.
 * SQLite's iterator only ever sees bytes this device captured itself, and
 * only after our parser accepted them (DESIGN.md traps 1 and 7).
 *
 * gs-test: timeout=60
 */
#include <gridsync/changeset.h>
#include <gridsync/client_internal.h>
#include <gridsync/gridsync.h>

#include "gs_test.h"

#define N_OPS    400
#define MAX_IDS  512
#define TEXT_CAP 4096

struct issue_ref {
	char id[GS_ID_LEN];
	char state[32];
};

struct world {
	struct gs_ctx *ctx;
	char *dir;
	struct gs_device *dev;
	uint64_t rng;
	char households[MAX_IDS][GS_ID_LEN];
	char grids[MAX_IDS][GS_ID_LEN]; /* of households[i] */
	size_t n_households;
	char residents[MAX_IDS][GS_ID_LEN];
	size_t n_residents;
	struct issue_ref issues[MAX_IDS];
	size_t n_issues;
	char categories[64][64];
	size_t n_categories;
	size_t saves; /* calls that returned GS_OK */
	/* What the captured rows covered. */
	size_t n_rows;
	size_t n_ops[3];   /* insert, update, delete */
	size_t n_types[6]; /* undefined, int, real, text, blob, null */
};

static uint64_t rnd(struct world *w, uint64_t n)
{
	return gs_test_rand(&w->rng) % n;
}

static bool chance(struct world *w, unsigned percent)
{
	return rnd(w, 100) < percent;
}

/* Random UTF-8 text of up to about max_pieces pieces (never NULL). */
static const char *rand_text(struct world *w, char *buf, size_t max_pieces)
{
	static const char *const pieces[] = {
		"a",    "Z",    "0",  "9",    " ",        "-",      "'",
		"\"",   "\\",   "\n", "\t",   "独",       "居",     "老人",
		"社区", "网格", "，", "。",   "🙂",     "é",      "ß",
		"%s",   "NULL", "--", "户籍", "流动人口", "成华区", "x'00'",
		";",    "\r\n", "龘", "ア",
	};
	size_t n = rnd(w, max_pieces + 1);
	size_t len = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		const char *p =
			pieces[rnd(w, sizeof(pieces) / sizeof(*pieces))];
		size_t k = strlen(p);

		if (len + k + 1 > TEXT_CAP)
			break;
		memcpy(buf + len, p, k + 1);
		len += k;
	}
	return buf;
}

/* A text value, sometimes one of the awkward fixed ones, for a column
 * that may be NULL when nullable. */
static const char *rand_value(struct world *w, char *buf, bool nullable)
{
	static const char *const fixed[] = { "", "-", "NULL", "0", " " };

	if (nullable && chance(w, 20))
		return NULL;
	if (chance(w, 10))
		return fixed[rnd(w, sizeof(fixed) / sizeof(*fixed))];
	/* Now and then long enough for a multi-byte length varint. */
	return rand_text(w, buf, chance(w, 10) ? 120 : 12);
}

static const char *rand_int(struct world *w, char *buf, bool nullable)
{
	static const long long fixed[] = { 0,
					   1,
					   -1,
					   127,
					   128,
					   -129,
					   2147483648LL,
					   9223372036854775807LL,
					   -9223372036854775807LL - 1 };

	if (nullable && chance(w, 20))
		return NULL;
	if (chance(w, 30))
		snprintf(buf, 32, "%lld",
			 fixed[rnd(w, sizeof(fixed) / sizeof(*fixed))]);
	else
		snprintf(buf, 32, "%lld",
			 (long long)(int64_t)gs_test_rand(&w->rng) >>
				 rnd(w, 63));
	return buf;
}

/* ---- operations ---------------------------------------------------------- */

struct col_gen {
	const char *name;
	int kind; /* 0 text, 1 integer, 2 an existing resident id */
	bool nullable;
};

static const struct col_gen household_cols[] = {
	{ "size", 1, true },
	{ "residence_type", 0, true },
	{ "tenure", 0, true },
	{ "note", 0, true },
	{ "last_visit_at", 0, true },
	{ "status", 0, false },
	{ "head_resident_id", 2, true },
};

static const struct col_gen resident_cols[] = {
	{ "gender", 0, true },       { "birth_date", 0, true },
	{ "relation", 0, true },     { "id_no_hmac", 0, true },
	{ "id_no_masked", 0, true }, { "ethnicity", 0, true },
	{ "education", 0, true },    { "marital", 0, true },
	{ "employment", 0, true },   { "presence", 0, false },
	{ "name", 0, false },
};

/* Pick up to max distinct columns of gen into f (values in bufs). */
static size_t rand_fields(struct world *w,
			  const struct col_gen *gen,
			  size_t n_gen,
			  struct gs_field *f,
			  size_t max,
			  char (*bufs)[TEXT_CAP])
{
	bool used[16] = { false };
	size_t n = 1 + rnd(w, max);
	size_t k = 0;

	for (size_t tries = 0; k < n && tries < 4 * n_gen; tries++) {
		size_t c = rnd(w, n_gen);

		if (used[c])
			continue;
		used[c] = true;
		f[k].name = gen[c].name;
		if (gen[c].kind == 1)
			f[k].value = rand_int(w, bufs[k], gen[c].nullable);
		else if (gen[c].kind == 2 && w->n_residents > 0 &&
			 !chance(w, 30))
			f[k].value = w->residents[rnd(w, w->n_residents)];
		else
			f[k].value = rand_value(w, bufs[k], gen[c].nullable);
		k++;
	}
	return k;
}

static void saved(struct world *w, int rc, const char *what)
{
	if (rc != GS_OK)
		fail_msg("%s: %s (%s)", what, gs_errname(rc),
			 gs_ctx_errmsg(w->ctx));
	w->saves++;
}

static void op_household(struct world *w)
{
	static char bufs[8][TEXT_CAP];
	struct gs_field f[8];
	size_t n = rand_fields(w, household_cols,
			       sizeof(household_cols) / sizeof(*household_cols),
			       f, 4, bufs);
	size_t h = rnd(w, w->n_households);

	if (chance(w, 30) && w->n_households < MAX_IDS) {
		char id[GS_ID_LEN];

		f[n].name = "grid_id";
		f[n].value = w->grids[h];
		saved(w, gs_household_add(w->dev, id, f, n + 1),
		      "household add");
		memcpy(w->households[w->n_households], id, GS_ID_LEN);
		memcpy(w->grids[w->n_households], w->grids[h], GS_ID_LEN);
		w->n_households++;
		return;
	}
	saved(w, gs_household_edit(w->dev, w->households[h], f, n),
	      "household edit");
}

static void op_resident(struct world *w)
{
	static char bufs[12][TEXT_CAP];
	static char name[TEXT_CAP];
	struct gs_field f[12];
	size_t n;

	if (w->n_residents == 0 ||
	    (chance(w, 40) && w->n_residents < MAX_IDS)) {
		char id[GS_ID_LEN];

		n = rand_fields(w, resident_cols,
				sizeof(resident_cols) / sizeof(*resident_cols) -
					1, /* name is given below */
				f, 5, bufs);
		f[n].name = "household_id";
		f[n++].value = w->households[rnd(w, w->n_households)];
		f[n].name = "name";
		f[n++].value = rand_value(w, name, false);
		saved(w, gs_resident_add(w->dev, id, f, n), "resident add");
		memcpy(w->residents[w->n_residents++], id, GS_ID_LEN);
		return;
	}
	n = rand_fields(w, resident_cols,
			sizeof(resident_cols) / sizeof(*resident_cols), f, 4,
			bufs);
	saved(w,
	      gs_resident_edit(w->dev, w->residents[rnd(w, w->n_residents)], f,
			       n),
	      "resident edit");
}

static void op_visit(struct world *w)
{
	static const char *const kinds[] = { "routine", "care", "follow_up",
					     "mobilization",
					     "info_collection" };
	static const char *const outcomes[] = { "met", "not_home", "refused",
						"moved", "vacant" };
	static char summary[TEXT_CAP];
	static char answers[TEXT_CAP];
	static char at[40];
	struct gs_visit_opts vo = GS_VISIT_OPTS_INIT;
	char id[GS_ID_LEN];

	vo.household_id = w->households[rnd(w, w->n_households)];
	vo.kind = kinds[rnd(w, 5)];
	vo.outcome = outcomes[rnd(w, 5)];
	vo.summary = chance(w, 70) ? rand_text(w, summary, 20) : NULL;
	if (chance(w, 30)) {
		snprintf(answers, sizeof(answers),
			 "{\"q1\":%llu,\"note\":\"%s\"}",
			 (unsigned long long)rnd(w, 1000),
			 chance(w, 50) ? "无异常" : "");
		vo.answers = answers;
	}
	if (chance(w, 30)) {
		snprintf(at, sizeof(at),
			 "20%02u-%02u-%02uT%02u:%02u:%02u.%03uZ",
			 (unsigned)(20 + rnd(w, 10)),
			 (unsigned)(1 + rnd(w, 12)), (unsigned)(1 + rnd(w, 28)),
			 (unsigned)rnd(w, 24), (unsigned)rnd(w, 60),
			 (unsigned)rnd(w, 60), (unsigned)rnd(w, 1000));
		vo.started_at = at;
	}
	if (chance(w, 60)) {
		vo.has_location = 1;
		/* Whole degrees now and then: a REAL column holding an
		 * integral value. */
		vo.lat = chance(w, 20) ? (double)(int)rnd(w, 90)
				       : 30.0 + (double)rnd(w, 1u << 30) / 1e9;
		vo.lng = chance(w, 20) ? -(double)(int)rnd(w, 180)
				       : 104.0 + (double)rnd(w, 1u << 30) / 3e9;
	}
	saved(w, gs_visit_add(w->dev, id, &vo), "visit add");
}

static void op_issue_report(struct world *w)
{
	static const char *const grades[] = { "red", "yellow", "blue", NULL };
	static char title[TEXT_CAP];
	static char desc[TEXT_CAP];
	struct gs_issue_report_opts ro = GS_ISSUE_REPORT_OPTS_INIT;
	struct issue_ref *r;

	if (w->n_issues == MAX_IDS)
		return;
	r = &w->issues[w->n_issues];
	ro.category = w->categories[rnd(w, w->n_categories)];
	do
		ro.title = rand_text(w, title, 10);
	while (ro.title[0] == '\0');
	ro.description = chance(w, 60) ? rand_text(w, desc, 30) : NULL;
	ro.household_id =
		chance(w, 60) ? w->households[rnd(w, w->n_households)] : NULL;
	ro.grade = grades[rnd(w, 4)];
	ro.draft = chance(w, 40);
	saved(w, gs_issue_report(w->dev, r->id, &ro), "issue report");
	snprintf(r->state, sizeof(r->state), "%s",
		 ro.draft ? "draft" : "reported");
	w->n_issues++;
}

/* A move a grid worker may make offline, from the issue's state. */
static bool op_issue_move(struct world *w)
{
	static const struct {
		const char *from;
		const char *to;
		bool note;
	} moves[] = {
		{ "draft", "reported", false },
		{ "draft", "self_resolved", true },
		{ "reported", "self_resolved", true },
		{ "reported", "cancelled", false },
	};
	static char note_buf[TEXT_CAP];
	struct gs_issue_move_opts mo = GS_ISSUE_MOVE_OPTS_INIT;
	struct issue_ref *r;
	size_t pick[4];
	size_t n = 0;

	if (w->n_issues == 0)
		return false;
	r = &w->issues[rnd(w, w->n_issues)];
	for (size_t i = 0; i < 4; i++)
		if (strcmp(moves[i].from, r->state) == 0)
			pick[n++] = i;
	if (n == 0)
		return false;
	n = pick[rnd(w, n)];
	mo.to = moves[n].to;
	if (moves[n].note || chance(w, 30)) {
		do
			mo.note = rand_text(w, note_buf, 10);
		while (mo.note[0] == '\0');
	}
	saved(w, gs_issue_move(w->dev, r->id, &mo), "issue move");
	snprintf(r->state, sizeof(r->state), "%s", mo.to);
	return true;
}

/* ---- collecting what the device has ------------------------------------- */

static int collect_household(const struct gs_row *row, void *payload)
{
	struct world *w = payload;

	if (w->n_households < MAX_IDS)
		snprintf(w->households[w->n_households++], GS_ID_LEN, "%s",
			 gs_row_get(row, "id"));
	return 0;
}

/* The listing shows the grid's code; the record has its id. */
static int collect_grid(const struct gs_row *row, void *payload)
{
	if (strcmp(gs_row_kind(row), "household") == 0)
		snprintf(payload, GS_ID_LEN, "%s", gs_row_get(row, "grid_id"));
	return 0;
}

static int collect_category(const struct gs_row *row, void *payload)
{
	struct world *w = payload;
	const char *level = gs_row_get(row, "level");

	if (level != NULL && strcmp(level, "3") == 0 && w->n_categories < 64)
		snprintf(w->categories[w->n_categories++], 64, "%s",
			 gs_row_get(row, "code"));
	return 0;
}

struct seqs {
	uint64_t seq[N_OPS + 8];
	size_t n;
};

static int collect_seq(const struct gs_row *row, void *payload)
{
	struct seqs *s = payload;

	assert_true(s->n < N_OPS + 8);
	s->seq[s->n++] = (uint64_t)gs_row_int(row, 0);
	return 0;
}

/* ---- the comparison --------------------------------------------------------
 */

/* Our value against SQLite's (NULL pointer: undefined). */
static void same_value(struct world *w,
		       const struct gs_cs_value *ours,
		       sqlite3_value *theirs,
		       const char *table,
		       unsigned col,
		       uint64_t seq)
{
	w->n_types[ours->type]++;
	if (theirs == NULL) {
		if (ours->type != GS_CS_UNDEFINED)
			fail_msg("entry %llu %s col %u: SQLite has no value, "
				 "we have type %d",
				 (unsigned long long)seq, table, col,
				 ours->type);
		return;
	}
	if (sqlite3_value_type(theirs) != ours->type)
		fail_msg("entry %llu %s col %u: type %d, SQLite %d",
			 (unsigned long long)seq, table, col, ours->type,
			 sqlite3_value_type(theirs));
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
		assert_int_equal((size_t)sqlite3_value_bytes(theirs),
				 ours->len);
		if (ours->len > 0)
			assert_memory_equal(sqlite3_value_text(theirs), ours->p,
					    ours->len);
		break;
	case GS_CS_BLOB:
		assert_int_equal((size_t)sqlite3_value_bytes(theirs),
				 ours->len);
		if (ours->len > 0)
			assert_memory_equal(sqlite3_value_blob(theirs), ours->p,
					    ours->len);
		break;
	default:
		break; /* NULL: the type says it all */
	}
}

/* Entry seq: our parse, SQLite's iteration, and the re-encoding agree. */
static void check_entry(struct world *w, uint64_t seq)
{
	struct gs_cs_error err;
	struct gs_cs *cs = NULL;
	sqlite3_changeset_iter *it = NULL;
	struct gs_buf again;
	uint8_t *data = NULL;
	size_t len = 0;
	size_t r = 0;

	assert_gs_ok(gs_outbox_get(w->dev, seq, &data, &len));
	if (gs__cs_parse(&cs, &err, w->ctx, data, len, NULL) != GS_OK)
		fail_msg("entry %llu refused: %s", (unsigned long long)seq,
			 gs_ctx_errmsg(w->ctx));
	assert_true(cs->n_rows > 0);
	assert_int_equal(sqlite3changeset_start(&it, (int)len, data),
			 SQLITE_OK);
	while (sqlite3changeset_next(it) == SQLITE_ROW) {
		const struct gs_cs_row *row;
		const char *tab = NULL;
		unsigned char *pk = NULL;
		int ncol = 0;
		int op = 0;
		int ind = 0;

		assert_true(r < cs->n_rows);
		row = &cs->rows[r++];
		assert_int_equal(
			sqlite3changeset_op(it, &tab, &ncol, &op, &ind),
			SQLITE_OK);
		assert_string_equal(tab, row->table->name);
		assert_int_equal(ncol, row->table->n_cols);
		assert_int_equal(op, row->op);
		assert_int_equal(ind != 0, row->indirect);
		assert_int_equal(sqlite3changeset_pk(it, &pk, &ncol),
				 SQLITE_OK);
		for (int i = 0; i < ncol; i++)
			assert_int_equal(
				pk[i] != 0,
				(row->table->cols[i].flags & GS_COL_PK) != 0);
		w->n_rows++;
		w->n_ops[op == SQLITE_INSERT   ? 0
			 : op == SQLITE_UPDATE ? 1
					       : 2]++;
		for (int i = 0; i < ncol; i++) {
			sqlite3_value *v = NULL;

			if (op != SQLITE_INSERT) {
				assert_int_equal(
					sqlite3changeset_old(it, i, &v),
					SQLITE_OK);
				same_value(w, &row->old_vals[i], v, tab,
					   (unsigned)i, seq);
			} else {
				assert_null(row->old_vals);
			}
			v = NULL;
			if (op != SQLITE_DELETE) {
				assert_int_equal(
					sqlite3changeset_new(it, i, &v),
					SQLITE_OK);
				same_value(w, &row->new_vals[i], v, tab,
					   (unsigned)i, seq);
			} else {
				assert_null(row->new_vals);
			}
		}
	}
	assert_int_equal(sqlite3changeset_finalize(it), SQLITE_OK);
	assert_int_equal(r, cs->n_rows);
	/* And the canonical encoding is the captured bytes. */
	gs__buf_init(&again, w->ctx, len + 1);
	assert_gs_ok(gs__cs_encode(&again, cs));
	assert_int_equal(again.len, len);
	assert_memory_equal(again.data, data, len);
	gs__buf_fini(&again);
	gs__cs_free(cs);
	gs_free(w->ctx, data);
}

static void captured_changesets_parse_as_sqlite_reads_them(void **state)
{
	static struct world w;
	static struct seqs s;
	struct gs_device_init_opts io = GS_DEVICE_INIT_OPTS_INIT;
	size_t moves = 0;

	(void)state;
	memset(&w, 0, sizeof(w));
	memset(&s, 0, sizeof(s));
	w.rng = gs_test_seed("client.capture_property");
	w.ctx = gs_test_ctx_new(NULL);
	w.dir = gs_test_tmpdir();
	io.device_id = "dev-property-1";
	io.insecure = 1;
	io.demo = 1;
	assert_gs_ok(gs_device_init(&w.dev, w.ctx, gs_test_path(w.dir, "d.db"),
				    &io));
	assert_gs_ok(gs_household_list(w.dev, collect_household, &w));
	for (size_t i = 0; i < w.n_households; i++) {
		assert_gs_ok(gs_household_show(w.dev, w.households[i],
					       collect_grid, w.grids[i]));
		assert_int_equal(strlen(w.grids[i]), GS_ID_LEN - 1);
	}
	assert_gs_ok(gs_category_list(w.dev, collect_category, &w));
	assert_true(w.n_households > 0);
	assert_true(w.n_categories > 0);

	for (size_t i = 0; i < N_OPS; i++) {
		uint64_t dice = rnd(&w, 100);

		if (dice < 30)
			op_household(&w);
		else if (dice < 55)
			op_resident(&w);
		else if (dice < 70)
			op_visit(&w);
		else if (dice < 82)
			op_issue_report(&w);
		else if (op_issue_move(&w))
			moves++;
		else
			op_visit(&w);
	}

	/* One outbox entry per save, each as SQLite reads it. */
	assert_gs_ok(gs_outbox_list(w.dev, collect_seq, &s));
	assert_int_equal(s.n, w.saves);
	for (size_t i = 0; i < s.n; i++)
		check_entry(&w, s.seq[i]);
	fprintf(stderr,
		"# %zu saves (%zu moves), %zu rows: %zu inserts, %zu updates; "
		"values: %zu int, %zu real, %zu text, %zu null, %zu "
		"undefined\n",
		w.saves, moves, w.n_rows, w.n_ops[0], w.n_ops[1],
		w.n_types[GS_CS_INT], w.n_types[GS_CS_REAL],
		w.n_types[GS_CS_TEXT], w.n_types[GS_CS_NULL],
		w.n_types[GS_CS_UNDEFINED]);
	/* The workload did cover what it claims to. */
	assert_true(w.n_ops[0] > 0 && w.n_ops[1] > 0);
	assert_true(w.n_types[GS_CS_INT] > 0 && w.n_types[GS_CS_REAL] > 0 &&
		    w.n_types[GS_CS_TEXT] > 0 && w.n_types[GS_CS_NULL] > 0 &&
		    w.n_types[GS_CS_UNDEFINED] > 0);

	gs_device_close(w.dev);
	gs_ctx_free(w.ctx);
	gs_test_tmpdir_free(w.dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			captured_changesets_parse_as_sqlite_reads_them),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
