/*
 * The strict changeset parser on hand-built inputs: what it accepts and how
 * it presents rows, the exact reason, offset, table and detail text of each
 * kind of rejection, the callback and ownership contracts, the canonical
 * encoder, and an allocation-failure loop.
 */
#include <limits.h>

#include <gridsync/changeset.h>
#include <gridsync/schema.h>

#include "gs_test.h"

/* ---- a tiny changeset builder ------------------------------------------ */

struct bb {
	uint8_t d[8192];
	size_t n;
};

static void put(struct bb *b, const void *p, size_t n)
{
	assert_true(b->n + n <= sizeof(b->d));
	memcpy(b->d + b->n, p, n);
	b->n += n;
}

static void byte(struct bb *b, uint8_t x)
{
	put(b, &x, 1);
}

static void varint(struct bb *b, uint64_t v)
{
	uint8_t tmp[10];
	unsigned n = 0;

	do {
		tmp[n++] = (uint8_t)(v & 0x7f);
		v >>= 7;
	} while (v != 0);
	while (n-- > 0)
		byte(b, (uint8_t)(tmp[n] | (n > 0 ? 0x80 : 0)));
}

static void text(struct bb *b, const char *s)
{
	byte(b, GS_CS_TEXT);
	varint(b, strlen(s));
	put(b, s, strlen(s));
}

static void integer(struct bb *b, int64_t i)
{
	uint64_t u;

	memcpy(&u, &i, sizeof(u));
	byte(b, GS_CS_INT);
	for (int k = 7; k >= 0; k--)
		byte(b, (uint8_t)(u >> (8 * k)));
}

/* The header SQLite writes for manifest table t. */
static void header(struct bb *b, const struct gs_table *t, char kind)
{
	unsigned k = 0;

	byte(b, (uint8_t)kind);
	varint(b, t->n_cols);
	for (unsigned i = 0; i < t->n_cols; i++)
		byte(b, (t->cols[i].flags & GS_COL_PK) ? (uint8_t)++k : 0);
	put(b, t->name, strlen(t->name) + 1);
}

/* A valid value for column i of t; tag varies text values. */
static void sample(struct bb *b, const struct gs_table *t, unsigned i, int tag)
{
	char s[64];

	switch (t->cols[i].type) {
	case GS_COL_INTEGER:
		integer(b, tag);
		break;
	case GS_COL_REAL:
		byte(b, GS_CS_REAL);
		put(b, "\x3f\xf8\0\0\0\0\0\0", 8); /* 1.5 */
		break;
	case GS_COL_BLOB:
		byte(b, GS_CS_BLOB);
		byte(b, 2);
		put(b, "\x01\x02", 2);
		break;
	default:
		snprintf(s, sizeof(s), "%s-%d", t->cols[i].name, tag);
		text(b, s);
		break;
	}
}

static void full_row(struct bb *b, const struct gs_table *t, int tag)
{
	for (unsigned i = 0; i < t->n_cols; i++)
		sample(b, t, i, tag);
}

/* ---- fixture ------------------------------------------------------------ */

struct fx {
	struct gs_test_alloc alloc;
	struct gs_ctx *ctx;
	const struct gs_table *hh; /* household */
	int note;                  /* column index of household.note */
	int size;                  /* household.size */
	int grid;                  /* household.grid_id */
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->ctx = gs_test_ctx_new(&f->alloc);
	assert_non_null(f->ctx);
	f->hh = gs__manifest_find("household");
	assert_non_null(f->hh);
	f->note = gs__table_col(f->hh, "note");
	f->size = gs__table_col(f->hh, "size");
	f->grid = gs__table_col(f->hh, "grid_id");
	assert_true(f->note > 0 && f->size > 0 && f->grid > 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	assert_int_equal(f->alloc.live, 1); /* only the ctx itself */
	gs_ctx_free(f->ctx);
	free(f);
	return 0;
}

/* An UPDATE of household row `tag` changing note from "a" to "b". */
static void hh_update_note(struct bb *b, struct fx *f, int tag)
{
	byte(b, GS_CS_UPDATE);
	byte(b, 0);
	for (unsigned i = 0; i < f->hh->n_cols; i++)
		if (i == 0)
			sample(b, f->hh, i, tag);
		else if ((int)i == f->note)
			text(b, "a");
		else
			byte(b, GS_CS_UNDEFINED);
	for (unsigned i = 0; i < f->hh->n_cols; i++)
		if ((int)i == f->note)
			text(b, "b");
		else
			byte(b, GS_CS_UNDEFINED);
}

/* Expect a rejection with this reason at this offset. */
static void expect_reject(struct fx *f,
			  const struct bb *b,
			  const struct gs_cs_opts *opts,
			  enum gs_cs_reason reason,
			  size_t offset)
{
	struct gs_cs_error err;
	struct gs_cs *cs = (struct gs_cs *)(uintptr_t)1;
	int rc;

	rc = gs__cs_parse(&cs, &err, f->ctx, b->d, b->n, opts);
	if (rc != GS_EPROTO || err.reason != reason || err.offset != offset)
		fail_msg("got %s %s at %zu, want %s at %zu (%s)",
			 gs_errname(rc), gs__cs_reason_name(err.reason),
			 err.offset, gs__cs_reason_name(reason), offset,
			 gs_ctx_errmsg(f->ctx));
	assert_null(cs);
	/* The validating entry point agrees. */
	assert_gs_err(gs__cs_check(&err, f->ctx, b->d, b->n, opts), GS_EPROTO);
	assert_int_equal(err.reason, reason);
}

/* ---- accepted inputs ------------------------------------------------------
 */

static void accepts_insert_update_delete(void **state)
{
	struct fx *f = *state;
	struct bb b = { .n = 0 };
	struct gs_cs_error err;
	struct gs_cs *cs = NULL;
	struct gs_buf out;
	const struct gs_cs_row *r;
	size_t upd_off;

	header(&b, f->hh, 'T');
	byte(&b, GS_CS_INSERT);
	byte(&b, 1);
	full_row(&b, f->hh, 1);
	upd_off = b.n;
	hh_update_note(&b, f, 2);
	byte(&b, GS_CS_DELETE);
	byte(&b, 0);
	full_row(&b, f->hh, 3);

	assert_gs_ok(gs__cs_parse(&cs, &err, f->ctx, b.d, b.n, NULL));
	assert_int_equal(err.reason, GS_CS_NONE);
	assert_int_equal(cs->kind, GS_CS_CHANGESET);
	assert_int_equal(cs->n_spans, 1);
	assert_ptr_equal(cs->spans[0].table, f->hh);
	assert_int_equal(cs->spans[0].offset, 0);
	assert_int_equal(cs->spans[0].first_row, 0);
	assert_int_equal(cs->spans[0].n_rows, 3);
	assert_int_equal(cs->n_rows, 3);

	r = &cs->rows[0];
	assert_int_equal(r->op, GS_CS_INSERT);
	assert_true(r->indirect);
	assert_null(r->old_vals);
	assert_int_equal(r->new_vals[0].type, GS_CS_TEXT);
	assert_int_equal(r->new_vals[0].len, strlen("id-1"));
	assert_memory_equal(r->new_vals[0].p, "id-1", 4);
	/* Text points into the input, not into a copy. */
	assert_true(r->new_vals[0].p > b.d && r->new_vals[0].p < b.d + b.n);
	assert_int_equal(r->new_vals[f->size].type, GS_CS_INT);
	assert_int_equal(r->new_vals[f->size].i, 1);

	r = &cs->rows[1];
	assert_int_equal(r->op, GS_CS_UPDATE);
	assert_false(r->indirect);
	assert_int_equal(r->offset, upd_off);
	assert_int_equal(r->old_vals[0].type, GS_CS_TEXT);
	assert_int_equal(r->new_vals[0].type, GS_CS_UNDEFINED);
	assert_int_equal(r->old_vals[f->note].len, 1);
	assert_memory_equal(r->new_vals[f->note].p, "b", 1);
	assert_int_equal(r->old_vals[f->size].type, GS_CS_UNDEFINED);

	r = &cs->rows[2];
	assert_int_equal(r->op, GS_CS_DELETE);
	assert_null(r->new_vals);
	assert_int_equal(r->offset + r->len, b.n);

	/* Encoding the parse gives the input back, byte for byte. */
	gs__buf_init(&out, f->ctx, 1 << 20);
	assert_gs_ok(gs__cs_encode(&out, cs));
	assert_int_equal(out.len, b.n);
	assert_memory_equal(out.data, b.d, b.n);
	gs__buf_fini(&out);
	gs__cs_free(cs);
}

static void accepts_patchset_and_normalises_it(void **state)
{
	struct fx *f = *state;
	struct bb b = { .n = 0 };
	struct gs_cs_opts opts = GS_CS_OPTS_INIT;
	struct gs_cs *cs = NULL;
	struct gs_buf out;
	const struct gs_cs_row *r;

	opts.kind = GS_CS_PATCHSET;
	header(&b, f->hh, 'P');
	/* UPDATE: one vector, key plus the changed column. */
	byte(&b, GS_CS_UPDATE);
	byte(&b, 0);
	for (unsigned i = 0; i < f->hh->n_cols; i++)
		if (i == 0)
			text(&b, "k1");
		else if ((int)i == f->note)
			text(&b, "new");
		else
			byte(&b, GS_CS_UNDEFINED);
	/* DELETE: the key alone, nothing for the other columns. */
	byte(&b, GS_CS_DELETE);
	byte(&b, 0);
	text(&b, "k2");

	assert_gs_ok(gs__cs_parse(&cs, NULL, f->ctx, b.d, b.n, &opts));
	assert_int_equal(cs->kind, GS_CS_PATCHSET);
	assert_int_equal(cs->n_rows, 2);
	r = &cs->rows[0];
	assert_int_equal(r->old_vals[0].type, GS_CS_TEXT);
	assert_memory_equal(r->old_vals[0].p, "k1", 2);
	assert_int_equal(r->new_vals[0].type, GS_CS_UNDEFINED);
	assert_int_equal(r->old_vals[f->note].type, GS_CS_UNDEFINED);
	assert_memory_equal(r->new_vals[f->note].p, "new", 3);
	r = &cs->rows[1];
	assert_int_equal(r->op, GS_CS_DELETE);
	assert_memory_equal(r->old_vals[0].p, "k2", 2);
	for (unsigned i = 1; i < f->hh->n_cols; i++)
		assert_int_equal(r->old_vals[i].type, GS_CS_UNDEFINED);

	gs__buf_init(&out, f->ctx, 1 << 20);
	assert_gs_ok(gs__cs_encode(&out, cs));
	assert_int_equal(out.len, b.n);
	assert_memory_equal(out.data, b.d, b.n);
	gs__buf_fini(&out);
	gs__cs_free(cs);

	/* The same bytes are not a changeset. */
	expect_reject(f, &b, NULL, GS_CS_PATCHSET_NOT_EXPECTED, 0);
}

static void accepts_empty_input(void **state)
{
	struct fx *f = *state;
	struct gs_cs *cs = NULL;

	assert_gs_ok(gs__cs_parse(&cs, NULL, f->ctx, NULL, 0, NULL));
	assert_int_equal(cs->n_rows, 0);
	assert_int_equal(cs->n_spans, 0);
	gs__cs_free(cs);
	assert_gs_ok(gs__cs_check(NULL, f->ctx, "", 0, NULL));
}

static void accepts_every_value_type(void **state)
{
	struct fx *f = *state;
	const struct gs_table *v = gs__manifest_find("visit");
	int lat = gs__table_col(v, "lat");
	int lng = gs__table_col(v, "lng");
	int summary = gs__table_col(v, "summary");
	int seq = gs__table_col(v, "server_seq");
	struct bb b = { .n = 0 };
	struct gs_cs *cs = NULL;
	const struct gs_cs_value *nv;

	header(&b, v, 'T');
	byte(&b, GS_CS_INSERT);
	byte(&b, 0);
	for (int i = 0; i < (int)v->n_cols; i++) {
		if (i == lat) {
			integer(&b, -7); /* an integer fits a REAL column */
		} else if (i == lng) {
			byte(&b, GS_CS_REAL);
			put(&b, "\xff\xf0\0\0\0\0\0\0", 8); /* -inf is fine */
		} else if (i == summary) {
			text(&b, "入户走访，老人身体良好");
		} else if (i == seq) {
			byte(&b, GS_CS_NULL);
		} else if (v->cols[i].type == GS_COL_TEXT &&
			   !(v->cols[i].flags & GS_COL_NOTNULL)) {
			text(&b, ""); /* empty text is not NULL */
		} else {
			sample(&b, v, (unsigned)i, 9);
		}
	}
	assert_gs_ok(gs__cs_parse(&cs, NULL, f->ctx, b.d, b.n, NULL));
	nv = cs->rows[0].new_vals;
	assert_int_equal(nv[lat].type, GS_CS_INT);
	assert_int_equal(nv[lat].i, -7);
	assert_int_equal(nv[lng].type, GS_CS_REAL);
	assert_true(nv[lng].r < -1e308);
	assert_int_equal(nv[summary].len, strlen("入户走访，老人身体良好"));
	assert_int_equal(nv[seq].type, GS_CS_NULL);
	gs__cs_free(cs);
}

/* ---- rejections: reason, offset, detail text ----------------------------- */

static void rejects_the_debian_hangs(void **state)
{
	struct fx *f = *state;
	static const uint8_t eight[] = { 0x54, 0x04, 0x01, 0x00,
					 0x00, 0x00, 0x54, 0x04 };
	struct gs_cs_error err;

	assert_gs_err(gs__cs_check(&err, f->ctx, "T", 1, NULL), GS_EPROTO);
	assert_int_equal(err.reason, GS_CS_TRUNCATED);
	assert_int_equal(err.offset, 0);
	assert_string_equal(gs_ctx_errmsg(f->ctx),
			    "changeset: TRUNCATED at byte 0 (table header "
			    "ends before its column count)");

	assert_gs_err(gs__cs_check(&err, f->ctx, eight, sizeof(eight), NULL),
		      GS_EPROTO);
	assert_int_equal(err.reason, GS_CS_NAME_NOT_TERMINATED);
	assert_int_equal(err.offset, 6);
	assert_null(err.table);
	assert_string_equal(gs_ctx_errmsg(f->ctx),
			    "changeset: NAME_NOT_TERMINATED at byte 6 (table "
			    "header ends before its name is terminated)");
}

static void detail_names_table_and_column_never_values(void **state)
{
	struct fx *f = *state;
	struct bb b = { .n = 0 };
	struct gs_cs_error err;
	size_t grid_off = 0;
	char want[160];

	header(&b, f->hh, 'T');
	byte(&b, GS_CS_INSERT);
	byte(&b, 0);
	for (unsigned i = 0; i < f->hh->n_cols; i++) {
		if ((int)i == f->grid) {
			grid_off = b.n;
			byte(&b, GS_CS_NULL);
		} else {
			sample(&b, f->hh, i, 5);
		}
	}
	assert_gs_err(gs__cs_check(&err, f->ctx, b.d, b.n, NULL), GS_EPROTO);
	assert_int_equal(err.reason, GS_CS_NOT_NULL);
	assert_int_equal(err.offset, grid_off);
	assert_ptr_equal(err.table, f->hh);
	assert_int_equal(err.column, f->grid);
	snprintf(want, sizeof(want),
		 "changeset: NOT_NULL at byte %zu in table household (INSERT "
		 "column %d (grid_id) is NULL)",
		 grid_off, f->grid);
	assert_string_equal(gs_ctx_errmsg(f->ctx), want);
	/* No sample value ("id-5", "note-5") is echoed. */
	assert_null(strstr(gs_ctx_errmsg(f->ctx), "-5"));
}

static void unknown_table_name_is_cleaned(void **state)
{
	struct fx *f = *state;
	static const uint8_t in[] = { 'T', 1, 1,    'x', '%', 0xe4,
				      'y', 0, 0x12, 0,   5 };
	struct gs_cs_error err;

	assert_gs_err(gs__cs_check(&err, f->ctx, in, sizeof(in), NULL),
		      GS_EPROTO);
	assert_int_equal(err.reason, GS_CS_UNKNOWN_TABLE);
	assert_int_equal(err.offset, 3);
	assert_null(err.table);
	assert_string_equal(gs_ctx_errmsg(f->ctx),
			    "changeset: UNKNOWN_TABLE at byte 3 in table x??y "
			    "(4-byte name not in the manifest)");
}

static void rejects_structure(void **state)
{
	struct fx *f = *state;
	struct bb b = { .n = 0 };
	struct bb g = { .n = 0 };
	size_t n;

	/* A valid base: household header plus one INSERT. */
	header(&g, f->hh, 'T');
	byte(&g, GS_CS_INSERT);
	byte(&g, 0);
	full_row(&g, f->hh, 1);

	/* nCol 0 and 65537: the count is rejected before anything else. */
	put(&b, "T\x00household", 11);
	expect_reject(f, &b, NULL, GS_CS_COLUMN_COUNT, 1);
	b.n = 0;
	byte(&b, 'T');
	varint(&b, 65537);
	expect_reject(f, &b, NULL, GS_CS_COLUMN_COUNT, 1);

	/* Varints: cut, non-minimal, over-long. */
	b.n = 0;
	put(&b, "T\x81", 2);
	expect_reject(f, &b, NULL, GS_CS_TRUNCATED, 1);
	b.n = 0;
	put(&b, "T\x80\x13", 3);
	expect_reject(f, &b, NULL, GS_CS_BAD_VARINT, 1);
	b.n = 0;
	put(&b, "T\x81\x80\x80\x80\x80\x01", 7);
	expect_reject(f, &b, NULL, GS_CS_BAD_VARINT, 1);

	/* Every proper prefix of a valid changeset is rejected. */
	for (n = 1; n < g.n; n++) {
		struct gs_cs_error err;

		assert_gs_err(gs__cs_check(&err, f->ctx, g.d, n, NULL),
			      GS_EPROTO);
		assert_true(err.offset <= n);
	}
	assert_gs_ok(gs__cs_check(NULL, f->ctx, g.d, g.n, NULL));

	/* Trailing garbage: every byte must be consumed. */
	b = g;
	byte(&b, 0);
	expect_reject(f, &b, NULL, GS_CS_BAD_OP, g.n);
	/* The table again. */
	b = g;
	header(&b, f->hh, 'T');
	expect_reject(f, &b, NULL, GS_CS_TABLE_REPEATED, g.n);
	/* A header with nothing after it. */
	b.n = 0;
	header(&b, f->hh, 'T');
	expect_reject(f, &b, NULL, GS_CS_EMPTY_TABLE, 0);
	/* An indirect flag SQLite never writes. */
	b.n = 0;
	header(&b, f->hh, 'T');
	n = b.n;
	byte(&b, GS_CS_INSERT);
	byte(&b, 2);
	full_row(&b, f->hh, 1);
	expect_reject(f, &b, NULL, GS_CS_BAD_INDIRECT, n + 1);
}

static void rejects_by_allowlist_and_limits(void **state)
{
	struct fx *f = *state;
	const struct gs_table *org = gs__manifest_find("org");
	struct gs_cs_opts opts = GS_CS_OPTS_INIT;
	struct bb b = { .n = 0 };
	size_t second;

	header(&b, org, 'T');
	byte(&b, GS_CS_INSERT);
	byte(&b, 0);
	full_row(&b, org, 1);
	/* A device may not upload reference tables; a download may. */
	expect_reject(f, &b, NULL, GS_CS_TABLE_NOT_ALLOWED, 0);
	opts.allow = GS_CS_ALLOW_ALL;
	assert_gs_ok(gs__cs_check(NULL, f->ctx, b.d, b.n, &opts));

	b.n = 0;
	header(&b, f->hh, 'T');
	byte(&b, GS_CS_INSERT);
	byte(&b, 0);
	full_row(&b, f->hh, 1);
	second = b.n;
	byte(&b, GS_CS_INSERT);
	byte(&b, 0);
	full_row(&b, f->hh, 2);
	opts = (struct gs_cs_opts)GS_CS_OPTS_INIT;
	opts.max_rows = 2;
	assert_gs_ok(gs__cs_check(NULL, f->ctx, b.d, b.n, &opts));
	opts.max_rows = 1;
	expect_reject(f, &b, &opts, GS_CS_TOO_MANY_ROWS, second);
	opts = (struct gs_cs_opts)GS_CS_OPTS_INIT;
	opts.max_bytes = b.n;
	assert_gs_ok(gs__cs_check(NULL, f->ctx, b.d, b.n, &opts));
	opts.max_bytes = b.n - 1;
	expect_reject(f, &b, &opts, GS_CS_TOO_BIG, 0);
	opts = (struct gs_cs_opts)GS_CS_OPTS_INIT;
	/* "id-1" fits, "dwelling_id-1" does not; it starts after the header
	 * ('T', count, key flags, name, NUL), op, flag and "id-1" (6). */
	opts.max_value = 4;
	expect_reject(f, &b, &opts, GS_CS_VALUE_TOO_BIG,
		      2 + f->hh->n_cols + strlen("household") + 1 + 2 + 6);
}

static bool only_visits(const struct gs_table *t, void *payload)
{
	(*(int *)payload)++;
	return strcmp(t->name, "visit") == 0;
}

/* Says yes the first time only: a caller's callback may be stateful. */
static bool first_time_only(const struct gs_table *t, void *payload)
{
	(void)t;
	return ++*(int *)payload == 1;
}

static void allow_callback_narrows_the_classes(void **state)
{
	struct fx *f = *state;
	struct gs_cs_opts opts = GS_CS_OPTS_INIT;
	struct bb b = { .n = 0 };
	struct gs_cs *cs = NULL;
	int calls = 0;

	header(&b, f->hh, 'T');
	byte(&b, GS_CS_INSERT);
	byte(&b, 0);
	full_row(&b, f->hh, 1);
	opts.allow_fn = only_visits;
	opts.allow_payload = &calls;
	expect_reject(f, &b, &opts, GS_CS_TABLE_NOT_ALLOWED, 0);
	assert_true(calls > 0);

	/* Asked once per header, during validation only. */
	calls = 0;
	opts.allow_fn = first_time_only;
	assert_gs_ok(gs__cs_parse(&cs, NULL, f->ctx, b.d, b.n, &opts));
	assert_int_equal(calls, 1);
	gs__cs_free(cs);
}

static void rejects_bad_rows(void **state)
{
	struct fx *f = *state;
	struct bb b = { .n = 0 };
	size_t row;
	size_t off;

	header(&b, f->hh, 'T');
	row = b.n;

	/* An UPDATE that changes nothing. */
	b.n = row;
	byte(&b, GS_CS_UPDATE);
	byte(&b, 0);
	text(&b, "k");
	for (unsigned i = 1; i < 2 * f->hh->n_cols; i++)
		byte(&b, GS_CS_UNDEFINED);
	expect_reject(f, &b, NULL, GS_CS_EMPTY_UPDATE, row);

	/* An UPDATE whose new vector sets the key. */
	b.n = row;
	byte(&b, GS_CS_UPDATE);
	byte(&b, 0);
	for (unsigned i = 0; i < f->hh->n_cols; i++)
		if (i == 0)
			text(&b, "k");
		else if ((int)i == f->note)
			text(&b, "a");
		else
			byte(&b, GS_CS_UNDEFINED);
	off = b.n;
	for (unsigned i = 0; i < f->hh->n_cols; i++)
		if (i == 0)
			text(&b, "k2");
		else if ((int)i == f->note)
			text(&b, "b");
		else
			byte(&b, GS_CS_UNDEFINED);
	expect_reject(f, &b, NULL, GS_CS_PK_CHANGED, off);

	/* Undefined (0x00) and NULL keys in an INSERT. */
	b.n = row;
	byte(&b, GS_CS_INSERT);
	byte(&b, 0);
	byte(&b, GS_CS_UNDEFINED);
	for (unsigned i = 1; i < f->hh->n_cols; i++)
		sample(&b, f->hh, i, 1);
	expect_reject(f, &b, NULL, GS_CS_PK_MISSING, row + 2);
	b.d[row + 2] = GS_CS_NULL;
	expect_reject(f, &b, NULL, GS_CS_PK_NULL, row + 2);
	b.d[row + 2] = 6;
	expect_reject(f, &b, NULL, GS_CS_BAD_TYPE, row + 2);

	/* A type that does not fit the column. */
	b.n = row;
	byte(&b, GS_CS_INSERT);
	byte(&b, 0);
	for (unsigned i = 0; i < f->hh->n_cols; i++) {
		if ((int)i == f->size) {
			off = b.n;
			text(&b, "4");
		} else {
			sample(&b, f->hh, i, 1);
		}
	}
	expect_reject(f, &b, NULL, GS_CS_TYPE_MISMATCH, off);
}

/* ---- callbacks ------------------------------------------------------------
 */

struct counter {
	int calls;
	int stop_at;
	size_t last_offset;
};

static int count_rows(const struct gs_cs_row *row, void *payload)
{
	struct counter *c = payload;

	c->calls++;
	c->last_offset = row->offset;
	return c->calls == c->stop_at ? 42 : 0;
}

static void foreach_calls_back_only_after_full_validation(void **state)
{
	struct fx *f = *state;
	struct bb b = { .n = 0 };
	struct counter c = { 0, 0, 0 };
	long live = f->alloc.live;

	header(&b, f->hh, 'T');
	for (int k = 0; k < 3; k++) {
		byte(&b, GS_CS_INSERT);
		byte(&b, 0);
		full_row(&b, f->hh, k);
	}
	assert_gs_ok(
		gs__cs_foreach(NULL, f->ctx, b.d, b.n, NULL, count_rows, &c));
	assert_int_equal(c.calls, 3);
	assert_int_equal(f->alloc.live, live); /* foreach never allocates */

	/* A non-zero return stops the walk and comes back unchanged. */
	c = (struct counter){ 0, 2, 0 };
	assert_int_equal(
		gs__cs_foreach(NULL, f->ctx, b.d, b.n, NULL, count_rows, &c),
		42);
	assert_int_equal(c.calls, 2);

	/* A bad last byte means no row is ever seen. */
	byte(&b, 0x77);
	c = (struct counter){ 0, 0, 0 };
	assert_gs_err(
		gs__cs_foreach(NULL, f->ctx, b.d, b.n, NULL, count_rows, &c),
		GS_EPROTO);
	assert_int_equal(c.calls, 0);
}

/* ---- arguments, names, manifest -------------------------------------------
 */

static void bad_arguments_are_einval(void **state)
{
	struct fx *f = *state;
	struct gs_cs_opts opts = GS_CS_OPTS_INIT;
	struct gs_cs *cs = NULL;

	assert_gs_err(gs__cs_check(NULL, f->ctx, NULL, 3, NULL), GS_EINVAL);
	assert_gs_err(gs__cs_parse(NULL, NULL, f->ctx, "", 0, NULL), GS_EINVAL);
	opts.kind = (enum gs_cs_kind)'X';
	assert_gs_err(gs__cs_parse(&cs, NULL, f->ctx, "", 0, &opts), GS_EINVAL);
	assert_null(cs);
	opts = (struct gs_cs_opts)GS_CS_OPTS_INIT;
	opts.max_bytes = (size_t)INT_MAX + 1;
	assert_gs_err(gs__cs_check(NULL, f->ctx, "", 0, &opts), GS_EINVAL);
	opts = (struct gs_cs_opts)GS_CS_OPTS_INIT;
	opts.max_rows = SIZE_MAX;
	assert_gs_err(gs__cs_check(NULL, f->ctx, "", 0, &opts), GS_EINVAL);
	gs__cs_free(NULL);
}

static void reason_names_round_trip(void **state)
{
	(void)state;
	for (unsigned i = 0; i < GS_CS_REASON_COUNT; i++) {
		const char *n = gs__cs_reason_name((enum gs_cs_reason)i);

		assert_int_equal(gs__cs_reason_parse(n), i);
		assert_true(strlen(gs__cs_reason_text((enum gs_cs_reason)i)) >
			    0);
	}
	assert_string_equal(gs__cs_reason_name(GS_CS_NONE), "NONE");
	assert_string_equal(gs__cs_reason_name(GS_CS_REASON_COUNT), "?");
	assert_int_equal(gs__cs_reason_parse("NOPE"), GS_CS_REASON_COUNT);
	assert_string_equal(gs__cs_op_name(GS_CS_UPDATE), "UPDATE");
	assert_string_equal(gs__cs_op_name(1), "?");
}

static void manifest_fits_the_parser(void **state)
{
	size_t n;
	const struct gs_table *t = gs__manifest(&n);

	(void)state;
	assert_true(n <= 64);
	for (size_t i = 0; i < n; i++) {
		unsigned seen_pk = 0;

		assert_true(t[i].n_cols > 0 && t[i].n_cols <= GS_CS_MAX_COLS);
		assert_true(strlen(t[i].name) <= GS_CS_NAME_MAX);
		for (unsigned c = 0; c < t[i].n_cols; c++)
			seen_pk += (t[i].cols[c].flags & GS_COL_PK) != 0;
		assert_true(seen_pk > 0);
	}
}

/* ---- memory ---------------------------------------------------------------
 */

static void parse_survives_every_allocation_failure(void **state)
{
	struct fx *f = *state;
	struct bb b = { .n = 0 };
	struct gs_cs *cs = NULL;
	long base = f->alloc.live;
	long n;
	int rc;

	header(&b, f->hh, 'T');
	byte(&b, GS_CS_INSERT);
	byte(&b, 0);
	full_row(&b, f->hh, 1);
	hh_update_note(&b, f, 2);
	for (n = 0;; n++) {
		gs_test_fail_alloc_at(&f->alloc, n);
		rc = gs__cs_parse(&cs, NULL, f->ctx, b.d, b.n, NULL);
		if (rc == GS_OK)
			break;
		assert_gs_err(rc, GS_ENOMEM);
		assert_null(cs);
		assert_int_equal(f->alloc.live, base);
		assert_true(n < 10);
	}
	gs_test_fail_alloc_at(&f->alloc, -1);
	assert_int_equal(cs->n_rows, 2);
	gs__cs_free(cs);
	assert_int_equal(f->alloc.live, base);
	/* The encoder's buffer, too. */
	assert_gs_ok(gs__cs_parse(&cs, NULL, f->ctx, b.d, b.n, NULL));
	for (n = 0;; n++) {
		struct gs_buf out;

		gs__buf_init(&out, f->ctx, 1 << 20);
		gs_test_fail_alloc_at(&f->alloc, n);
		rc = gs__cs_encode(&out, cs);
		gs_test_fail_alloc_at(&f->alloc, -1);
		if (rc == GS_OK) {
			assert_memory_equal(out.data, b.d, b.n);
			gs__buf_fini(&out);
			break;
		}
		assert_gs_err(rc, GS_ENOMEM);
		gs__buf_fini(&out);
		assert_true(n < 20);
	}
	gs__cs_free(cs);
	assert_int_equal(f->alloc.live, base);
}

/* The largest input a device may send, parsed in bounded time and memory:
 * 8 MiB of INSERTs whose notes are long Chinese texts. */
static void max_size_input_is_fast(void **state)
{
	struct fx *f = *state;
	size_t cap = GS_CS_MAX_BYTES_DEFAULT;
	uint8_t *buf = malloc(cap);
	struct gs_cs_opts opts = GS_CS_OPTS_INIT;
	struct bb row = { .n = 0 };
	struct bb note = { .n = 0 };
	struct gs_cs *cs = NULL;
	size_t len = 0;
	size_t rows = 0;
	uint64_t t0;
	uint64_t ns;

	assert_non_null(buf);
	while (note.n + 3 <= 3000)
		put(&note, "网", 3);
	header(&row, f->hh, 'T');
	memcpy(buf, row.d, row.n);
	len = row.n;
	for (;;) {
		char id[32];

		row.n = 0;
		byte(&row, GS_CS_INSERT);
		byte(&row, 0);
		for (unsigned i = 0; i < f->hh->n_cols; i++) {
			if (i == 0) {
				snprintf(id, sizeof(id), "%zu", rows);
				text(&row, id);
			} else if ((int)i == f->note) {
				byte(&row, GS_CS_TEXT);
				varint(&row, note.n);
				put(&row, note.d, note.n);
			} else {
				sample(&row, f->hh, i, 1);
			}
		}
		if (len + row.n > cap)
			break;
		memcpy(buf + len, row.d, row.n);
		len += row.n;
		rows++;
	}
	opts.max_rows = rows;
	t0 = gs__clock_mono_ns();
	assert_gs_ok(gs__cs_parse(&cs, NULL, f->ctx, buf, len, &opts));
	ns = gs__clock_mono_ns() - t0;
	assert_int_equal(cs->n_rows, rows);
	fprintf(stderr, "# %zu bytes, %zu rows parsed in %.1f ms (%.0f MB/s)\n",
		len, rows, ns / 1e6, len / (ns / 1e9) / 1e6);
	assert_true(ns < 2000000000ull); /* generous: ASan, valgrind */
	gs__cs_free(cs);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(accepts_insert_update_delete,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			accepts_patchset_and_normalises_it, setup, teardown),
		cmocka_unit_test_setup_teardown(accepts_empty_input, setup,
						teardown),
		cmocka_unit_test_setup_teardown(accepts_every_value_type, setup,
						teardown),
		cmocka_unit_test_setup_teardown(rejects_the_debian_hangs, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			detail_names_table_and_column_never_values, setup,
			teardown),
		cmocka_unit_test_setup_teardown(unknown_table_name_is_cleaned,
						setup, teardown),
		cmocka_unit_test_setup_teardown(rejects_structure, setup,
						teardown),
		cmocka_unit_test_setup_teardown(rejects_by_allowlist_and_limits,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			allow_callback_narrows_the_classes, setup, teardown),
		cmocka_unit_test_setup_teardown(rejects_bad_rows, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			foreach_calls_back_only_after_full_validation, setup,
			teardown),
		cmocka_unit_test_setup_teardown(bad_arguments_are_einval, setup,
						teardown),
		cmocka_unit_test(reason_names_round_trip),
		cmocka_unit_test(manifest_fits_the_parser),
		cmocka_unit_test_setup_teardown(
			parse_survives_every_allocation_failure, setup,
			teardown),
		cmocka_unit_test_setup_teardown(max_size_input_is_fast, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
