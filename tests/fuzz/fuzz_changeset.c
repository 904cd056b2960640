/*
 * libFuzzer target: the strict changeset/patchset parser on arbitrary
 * bytes (the kind is taken from the first byte, every table class allowed,
 * so the deepest rules are reachable). Properties, each a crash when
 * broken:
 *   1. check, foreach and parse agree on the verdict, reason and offset;
 *      a rejection is GS_EPROTO with a named reason, an offset inside the
 *      input and detail text that starts with the kind;
 *   2. an accepted input's rows are sane: tables from the manifest, value
 *      types 0..5, TEXT/BLOB pointing inside the input, TEXT valid UTF-8
 *      without NUL, keys defined and not NULL, foreach and parse yield the
 *      same rows;
 *   3. encoding the parse gives the input back byte for byte (so what we
 *      accept is exactly SQLite's canonical form, nothing more);
 *   4. the other kind rejects a non-empty accepted input, and a device
 *      allowlist rejects it exactly when it touches a reference table.
 * Sanitizers catch the rest (overflows, leaks, UB); -timeout catches loops.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gridsync/changeset.h>
#include <gridsync/platform.h>
#include <gridsync/schema.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                       \
	do {                                                              \
		if (!(cond)) {                                            \
			fprintf(stderr,                                   \
				"fuzz_changeset: %s failed at line %d\n", \
				#cond, __LINE__);                         \
			abort();                                          \
		}                                                         \
	} while (0)

struct walk_state {
	const struct gs_cs *cs;
	size_t next;
	const uint8_t *data;
	size_t size;
};

static void check_value(const struct gs_cs_value *v,
			const struct gs_column *c,
			const uint8_t *data,
			size_t size)
{
	CHECK(v->type <= GS_CS_NULL);
	if (v->type == GS_CS_TEXT || v->type == GS_CS_BLOB) {
		CHECK(v->p >= data && v->len <= size &&
		      v->p + v->len <= data + size);
		if (v->type == GS_CS_TEXT) {
			CHECK(gs__utf8_valid(v->p, v->len));
			CHECK(memchr(v->p, 0, v->len) == NULL);
		}
	}
	if (c->flags & GS_COL_PK)
		CHECK(v->type != GS_CS_NULL);
	if (v->type == GS_CS_NULL)
		CHECK(!(c->flags & GS_COL_NOTNULL));
}

/* Field by field: struct padding is not part of a value. */
static bool same_value(const struct gs_cs_value *a, const struct gs_cs_value *b)
{
	if (a->type != b->type)
		return false;
	switch (a->type) {
	case GS_CS_INT:
		return a->i == b->i;
	case GS_CS_REAL:
		return memcmp(&a->r, &b->r, sizeof(a->r)) == 0;
	case GS_CS_TEXT:
	case GS_CS_BLOB:
		return a->p == b->p && a->len == b->len;
	default:
		return true;
	}
}

/* foreach's rows must be the parse's rows, value for value. */
static int same_row(const struct gs_cs_row *row, void *payload)
{
	struct walk_state *w = payload;
	const struct gs_cs_row *r;
	const struct gs_table *t = row->table;

	CHECK(w->next < w->cs->n_rows);
	r = &w->cs->rows[w->next++];
	CHECK(r->table == t && r->op == row->op &&
	      r->indirect == row->indirect && r->offset == row->offset &&
	      r->len == row->len);
	CHECK(gs__manifest_find(t->name) == t);
	CHECK((row->old_vals == NULL) == (row->op == GS_CS_INSERT));
	CHECK((row->new_vals == NULL) == (row->op == GS_CS_DELETE));
	for (unsigned i = 0; i < t->n_cols; i++) {
		const struct gs_column *c = &t->cols[i];

		if (row->old_vals != NULL) {
			check_value(&row->old_vals[i], c, w->data, w->size);
			CHECK(same_value(&row->old_vals[i], &r->old_vals[i]));
			if (c->flags & GS_COL_PK)
				CHECK(row->old_vals[i].type != GS_CS_UNDEFINED);
		}
		if (row->new_vals != NULL) {
			check_value(&row->new_vals[i], c, w->data, w->size);
			CHECK(same_value(&row->new_vals[i], &r->new_vals[i]));
			if (row->op == GS_CS_INSERT)
				CHECK(row->new_vals[i].type != GS_CS_UNDEFINED);
			else if (c->flags & GS_COL_PK)
				CHECK(row->new_vals[i].type == GS_CS_UNDEFINED);
		}
	}
	return 0;
}

static struct gs_ctx *ctx;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gs_cs_opts opts = GS_CS_OPTS_INIT;
	struct gs_cs_error e1;
	struct gs_cs_error e2;
	struct gs_cs *cs = NULL;
	struct walk_state w = { NULL, 0, data, size };
	struct gs_buf out;
	bool has_r = false;
	int rc1;
	int rc2;

	if (ctx == NULL && gs_ctx_new(&ctx, NULL) != GS_OK)
		abort();
	opts.allow = GS_CS_ALLOW_ALL;
	opts.kind =
		size > 0 && data[0] == 'P' ? GS_CS_PATCHSET : GS_CS_CHANGESET;

	rc1 = gs__cs_check(&e1, ctx, data, size, &opts);
	rc2 = gs__cs_parse(&cs, &e2, ctx, data, size, &opts);
	CHECK(rc1 == rc2);
	CHECK(e1.reason == e2.reason && e1.offset == e2.offset &&
	      e1.table == e2.table && e1.column == e2.column);
	if (rc1 != GS_OK) {
		const char *msg = gs_ctx_errmsg(ctx);

		CHECK(rc1 == GS_EPROTO && cs == NULL);
		CHECK(e1.reason != GS_CS_NONE &&
		      e1.reason < GS_CS_REASON_COUNT);
		CHECK(e1.offset <= size);
		CHECK(strncmp(msg,
			      opts.kind == GS_CS_PATCHSET ? "patchset: "
							  : "changeset: ",
			      10) == 0);
		CHECK(strstr(msg, gs__cs_reason_name(e1.reason)) != NULL);
		return 0;
	}
	CHECK(e1.reason == GS_CS_NONE && cs != NULL);

	w.cs = cs;
	CHECK(gs__cs_foreach(NULL, ctx, data, size, &opts, same_row, &w) ==
	      GS_OK);
	CHECK(w.next == cs->n_rows);
	for (size_t s = 0; s < cs->n_spans; s++)
		has_r |= cs->spans[s].table->cls == GS_CLASS_R;

	gs__buf_init(&out, ctx, size + 1);
	CHECK(gs__cs_encode(&out, cs) == GS_OK);
	CHECK(out.len == size &&
	      (size == 0 || memcmp(out.data, data, size) == 0));
	gs__buf_fini(&out);

	if (size > 0) {
		opts.kind = opts.kind == GS_CS_PATCHSET ? GS_CS_CHANGESET
							: GS_CS_PATCHSET;
		CHECK(gs__cs_check(&e1, ctx, data, size, &opts) == GS_EPROTO);
		CHECK(e1.offset == 0);
		opts.kind = opts.kind == GS_CS_PATCHSET ? GS_CS_CHANGESET
							: GS_CS_PATCHSET;
	}
	opts.allow = GS_CS_ALLOW_DEVICE;
	rc1 = gs__cs_check(&e1, ctx, data, size, &opts);
	CHECK(has_r ? e1.reason == GS_CS_TABLE_NOT_ALLOWED : rc1 == GS_OK);
	gs__cs_free(cs);
	return 0;
}
