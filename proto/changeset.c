/*
 * Strict, bounded parser of SQLite session changesets and patchsets,
 * checked against the replicated table manifest.
 *
 * THE FORMAT (as SQLite's session extension writes it; described here in
 * our own words from ext/session/sqlite3session.c and sqlite3.h)
 *
 * A changeset is a sequence of groups, one per table. A group opens with a
 * table header and is followed by one or more changes to that table:
 *
 *   header  = kind, varint n_cols, n_cols key bytes, table name, 0x00
 *             kind is 'T' (0x54) in a changeset and 'P' (0x50) in a
 *             patchset; key byte i is 0 for a column outside the primary
 *             key, otherwise the column's 1-based position within the key
 *             (SQLite 3.40 writes 1, 2, 3 for PRIMARY KEY(a, b, c)).
 *   change  = op, indirect, vectors
 *             op is INSERT 0x12, UPDATE 0x17 or DELETE 0x09; indirect is 0
 *             or 1 (set when the change was made by a trigger or a session
 *             marked indirect).
 *   vector  = n_cols values, one per column in declaration order
 *   value   = 0x00 undefined (column not part of this change)
 *           | 0x01 then 8 bytes: big-endian two's-complement integer
 *           | 0x02 then 8 bytes: big-endian IEEE-754 double
 *           | 0x03 varint n, then n bytes of UTF-8 text, no terminator
 *           | 0x04 varint n, then n bytes of blob
 *           | 0x05 SQL NULL
 *   varint  = SQLite's record varint: big-endian groups of 7 bits, high bit
 *             set on every byte but the last (a 9th byte, never needed
 *             here, would carry 8 bits).
 *
 * Vectors per op. In a changeset: INSERT carries the new row, DELETE the
 * old row (both with every column defined), UPDATE an old vector (key
 * columns and the old value of every changed column; the rest undefined)
 * then a new vector (the changed columns; the rest, key included,
 * undefined). A primary-key change is written as DELETE plus INSERT. In a
 * patchset: INSERT as above; DELETE carries only the key columns' values,
 * with nothing at all for the other columns; UPDATE carries one vector with
 * the key values and the new values of the changed columns.
 *
 * WHAT WE ACCEPT (stricter than SQLite, which accepts any layout and
 * decides at apply time; 3.40.1 hangs or crashes on some of it)
 *
 * - Input at most max_bytes; every byte consumed; an empty input is an
 *   empty changeset. Each table is in the manifest, allowed by the caller,
 *   appears once, and declares exactly the manifest's column count and key
 *   positions; a header is followed by at least one change (SQLite never
 *   writes an empty group). Only the expected kind's headers appear.
 * - Varints are minimal and at most 5 bytes (SQLite writes minimal ones;
 *   every count and length we take fits in 31 bits).
 * - Per value: type byte 0..5; TEXT is valid UTF-8 without NUL bytes (so C
 *   string consumers are safe); REAL is not NaN (SQLite would store NULL,
 *   slipping past NOT NULL); TEXT/BLOB at most max_value bytes. Types must
 *   fit the declared column type: TEXT column: text; INTEGER: integer;
 *   REAL: real or integer; BLOB: blob; NULL anywhere the column allows it.
 *   This is stricter than SQLite's affinity (our tables are not STRICT),
 *   deliberately: the merge code and the handhelds' domain code rely on the
 *   declared types, and the app only ever binds matching types. A NULL in a
 *   key column is PK_NULL, in another NOT NULL column NOT_NULL, in any
 *   vector (a NULL old value in a NOT NULL column is a lie as well).
 * - Per row: INSERT (and changeset DELETE) define every column; key columns
 *   are defined and non-NULL in every row; an UPDATE leaves the key
 *   undefined in its new values, changes at least one non-key column, and
 *   in a changeset carries an old value exactly for the columns it changes
 *   (SQLite writes them in pairs, and so does its changegroup; pairs keep
 *   sqlite3changeset_invert's output acceptable too). At most max_rows
 *   rows.
 * Not checked here: the same key twice in one table (SQLite never writes
 * it; apply handles it as a conflict) and anything needing the database
 * (scope, authorisation, merge policy): those belong to sync/.
 *
 * HOW: one walker validates the whole input without allocating (values are
 * decoded into fixed per-row scratch vectors of GS_CS_MAX_COLS), counting
 * spans, rows and value slots. Only after that pass accepts everything
 * does a second, identical pass emit rows: to the caller's callback
 * (gs__cs_foreach) or into one block sized from the counts (gs__cs_parse).
 * So no allocation is proportional to a number the sender chose before the
 * bytes behind it were seen, and no callback runs for a rejected input.
 */
#define GS_MODULE "proto.changeset"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <gridsync/changeset.h>
#include <gridsync/platform.h>
#include <gridsync/schema.h>

/* Row emitter of the second pass; NULL in the validating pass. */
struct walk;
typedef int (*emit_row_fn)(struct walk *w, const struct gs_cs_row *row);
typedef void (*emit_span_fn)(struct walk *w, const struct gs_cs_span *span);

struct walk {
	struct gs_ctx *ctx;
	const struct gs_cs_opts *o;
	const uint8_t *buf;
	size_t len;
	size_t pos;
	struct gs_cs_error *err;
	const struct gs_table *tables; /* the manifest in use */
	size_t n_tables;
	uint64_t seen; /* bit i: tables[i] already had a header */

	/* The current table header. */
	const struct gs_table *t;
	size_t hdr_off;
	size_t t_rows;
	const char *tname; /* for messages: t->name or the cleaned name */
	char name_buf[GS_CS_NAME_MAX + 1];

	/* Totals, for sizing the second pass. */
	size_t n_spans;
	size_t n_rows;
	size_t n_vals;

	/* Scratch for the change being read. */
	struct gs_cs_value old_v[GS_CS_MAX_COLS];
	struct gs_cs_value new_v[GS_CS_MAX_COLS];
	size_t old_off[GS_CS_MAX_COLS];
	size_t new_off[GS_CS_MAX_COLS];

	/* Second pass only. */
	emit_row_fn emit_row;
	emit_span_fn emit_span;
	gs_cs_row_cb cb;
	void *payload;
	struct gs_cs_span *spans;
	struct gs_cs_row *rows;
	struct gs_cs_value *vals;
	size_t vals_used;
};

static const char *const reason_names[] = {
#define GS_CS_REASON_NAME(name, text) #name,
	GS_CS_REASON_MAP(GS_CS_REASON_NAME)
#undef GS_CS_REASON_NAME
};

static const char *const reason_texts[] = {
#define GS_CS_REASON_TEXT(name, text) text,
	GS_CS_REASON_MAP(GS_CS_REASON_TEXT)
#undef GS_CS_REASON_TEXT
};

const char *gs__cs_reason_name(enum gs_cs_reason reason)
{
	if ((unsigned)reason >= GS_CS_REASON_COUNT)
		return "?";
	return reason_names[reason];
}

const char *gs__cs_reason_text(enum gs_cs_reason reason)
{
	if ((unsigned)reason >= GS_CS_REASON_COUNT)
		return "?";
	return reason_texts[reason];
}

enum gs_cs_reason gs__cs_reason_parse(const char *name)
{
	for (unsigned i = 0; name != NULL && i < GS_CS_REASON_COUNT; i++)
		if (strcmp(reason_names[i], name) == 0)
			return (enum gs_cs_reason)i;
	return GS_CS_REASON_COUNT;
}

const char *gs__cs_op_name(int op)
{
	switch (op) {
	case GS_CS_INSERT:
		return "INSERT";
	case GS_CS_UPDATE:
		return "UPDATE";
	case GS_CS_DELETE:
		return "DELETE";
	default:
		return "?";
	}
}

/*
 * Record a rejection: reason, offset, table and column in w->err, and one
 * line of detail text on the ctx. why says what was found, never a value.
 */
static int fail(struct walk *w,
		enum gs_cs_reason reason,
		size_t off,
		int col,
		const char *fmt,
		...) __attribute__((format(printf, 5, 6)));

static int fail(struct walk *w,
		enum gs_cs_reason reason,
		size_t off,
		int col,
		const char *fmt,
		...)
{
	char why[160];
	va_list ap;

	/* The second pass re-reads what the first accepted. */
	GS_ASSERT(w->emit_row == NULL);
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	w->err->reason = reason;
	w->err->offset = off;
	w->err->table = w->t;
	w->err->column = col;
	return gs__err(w->ctx, GS_EPROTO, "%s: %s at byte %zu%s%s (%s)",
		       w->o->kind == GS_CS_PATCHSET ? "patchset" : "changeset",
		       reason_names[reason], off,
		       w->tname != NULL ? " in table " : "",
		       w->tname != NULL ? w->tname : "", why);
}

/*
 * Read one SQLite varint of at most 5 bytes into *out. what names the item
 * for the detail text.
 */
static int read_varint(struct walk *w, uint64_t *out, int col, const char *what)
{
	size_t start = w->pos;
	uint64_t v = 0;

	for (unsigned k = 0; k < 5; k++) {
		uint8_t b;

		if (w->pos >= w->len)
			return fail(w, GS_CS_TRUNCATED, start, col,
				    "input ends inside the varint of %s", what);
		b = w->buf[w->pos++];
		v = (v << 7) | (b & 0x7fu);
		if ((b & 0x80u) == 0) {
			if (k > 0 && w->buf[start] == 0x80u)
				return fail(w, GS_CS_BAD_VARINT, start, col,
					    "non-minimal varint for %s", what);
			*out = v;
			return GS_OK;
		}
	}
	return fail(w, GS_CS_BAD_VARINT, start, col,
		    "varint for %s is longer than 5 bytes", what);
}

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t x = 0;

	for (unsigned k = 0; k < 8; k++)
		x = (x << 8) | p[k];
	return x;
}

/* The key byte SQLite writes for column i of t: its 1-based position in
 * the primary key, or 0. The manifest declares keys in column order. */
static unsigned pk_ordinal(const struct gs_table *t, unsigned i)
{
	unsigned k = 0;

	if (!(t->cols[i].flags & GS_COL_PK))
		return 0;
	for (unsigned j = 0; j <= i; j++)
		k += (t->cols[j].flags & GS_COL_PK) != 0;
	return k;
}

static bool is_pk(const struct gs_table *t, unsigned i)
{
	return (t->cols[i].flags & GS_COL_PK) != 0;
}

/* Does a non-NULL value of wire type `type` fit column c? */
static bool type_fits(const struct gs_column *c, unsigned type)
{
	switch (c->type) {
	case GS_COL_TEXT:
		return type == GS_CS_TEXT;
	case GS_COL_INTEGER:
		return type == GS_CS_INT;
	case GS_COL_REAL:
		return type == GS_CS_REAL || type == GS_CS_INT;
	case GS_COL_BLOB:
		return type == GS_CS_BLOB;
	default:
		return false;
	}
}

static const char *const type_names[] = { "undefined", "integer", "real",
					  "text",      "blob",    "NULL" };

static const char *col_type_name(const struct gs_column *c)
{
	switch (c->type) {
	case GS_COL_INTEGER:
		return "INTEGER";
	case GS_COL_REAL:
		return "REAL";
	case GS_COL_BLOB:
		return "BLOB";
	default:
		return "TEXT";
	}
}

/*
 * Read the value of column col into *v (its offset into *off) and check
 * everything that depends on the value alone: encoding, size, UTF-8, type
 * against the column, NULL against the key and NOT NULL.
 */
static int read_value(struct walk *w,
		      struct gs_cs_value *v,
		      size_t *off,
		      unsigned col,
		      const char *vec)
{
	const struct gs_column *c = &w->t->cols[col];
	size_t start = w->pos;
	uint64_t u;
	uint8_t type;
	int rc;

	*off = start;
	if (start >= w->len)
		return fail(w, GS_CS_TRUNCATED, start, (int)col,
			    "%s vector ends before column %u (%s)", vec, col,
			    c->name);
	type = w->buf[w->pos++];
	memset(v, 0, sizeof(*v));
	v->type = type;
	switch (type) {
	case GS_CS_UNDEFINED:
		return GS_OK; /* whether it may be undefined is a row rule */
	case GS_CS_NULL:
		if (is_pk(w->t, col))
			return fail(w, GS_CS_PK_NULL, start, (int)col,
				    "%s column %u (%s) is NULL", vec, col,
				    c->name);
		if (c->flags & GS_COL_NOTNULL)
			return fail(w, GS_CS_NOT_NULL, start, (int)col,
				    "%s column %u (%s) is NULL", vec, col,
				    c->name);
		return GS_OK;
	case GS_CS_INT:
	case GS_CS_REAL:
		if (w->len - w->pos < 8)
			return fail(w, GS_CS_TRUNCATED, start, (int)col,
				    "%s column %u (%s): %s cut short", vec, col,
				    c->name, type_names[type]);
		u = get_be64(w->buf + w->pos);
		w->pos += 8;
		if (type == GS_CS_INT) {
			memcpy(&v->i, &u, sizeof(v->i));
		} else {
			memcpy(&v->r, &u, sizeof(v->r));
			if (isnan(v->r))
				return fail(w, GS_CS_BAD_REAL, start, (int)col,
					    "%s column %u (%s) is NaN", vec,
					    col, c->name);
		}
		break;
	case GS_CS_TEXT:
	case GS_CS_BLOB:
		rc = read_varint(w, &u, (int)col, "a value length");
		if (rc != GS_OK)
			return rc;
		if (u > w->o->max_value)
			return fail(w, GS_CS_VALUE_TOO_BIG, start, (int)col,
				    "%s column %u (%s): %llu bytes, limit %zu",
				    vec, col, c->name, (unsigned long long)u,
				    w->o->max_value);
		if (u > w->len - w->pos)
			return fail(w, GS_CS_TRUNCATED, start, (int)col,
				    "%s column %u (%s): %llu bytes declared, "
				    "%zu left",
				    vec, col, c->name, (unsigned long long)u,
				    w->len - w->pos);
		v->p = w->buf + w->pos;
		v->len = (size_t)u;
		w->pos += (size_t)u;
		if (type == GS_CS_TEXT && (memchr(v->p, 0, v->len) != NULL ||
					   !gs__utf8_valid(v->p, v->len)))
			return fail(w, GS_CS_BAD_UTF8, start, (int)col,
				    "%s column %u (%s)", vec, col, c->name);
		break;
	default:
		return fail(w, GS_CS_BAD_TYPE, start, (int)col,
			    "%s column %u (%s): type byte 0x%02x", vec, col,
			    c->name, type);
	}
	if (!type_fits(c, type))
		return fail(w, GS_CS_TYPE_MISMATCH, start, (int)col,
			    "%s column %u (%s) is declared %s, value is %s",
			    vec, col, c->name, col_type_name(c),
			    type_names[type]);
	return GS_OK;
}

/* Read one vector; with key_only, only the key columns are on the wire
 * (patchset DELETE) and the others are set undefined. */
static int read_vec(struct walk *w,
		    struct gs_cs_value *vals,
		    size_t *offs,
		    bool key_only,
		    const char *vec)
{
	for (unsigned i = 0; i < w->t->n_cols; i++) {
		int rc;

		if (key_only && !is_pk(w->t, i)) {
			memset(&vals[i], 0, sizeof(vals[i]));
			offs[i] = w->pos;
			continue;
		}
		rc = read_value(w, &vals[i], &offs[i], i, vec);
		if (rc != GS_OK)
			return rc;
	}
	return GS_OK;
}

/*
 * The per-row rules that look at whole vectors (module comment, "Per
 * row"). Value-level rules were checked while reading.
 */
static int check_row(struct walk *w, unsigned op, size_t rec_off)
{
	const struct gs_table *t = w->t;
	bool patch = w->o->kind == GS_CS_PATCHSET;
	unsigned changed = 0;

	for (unsigned i = 0; i < t->n_cols; i++) {
		const char *cn = t->cols[i].name;
		bool pk = is_pk(t, i);
		const struct gs_cs_value *o = &w->old_v[i];
		const struct gs_cs_value *n = &w->new_v[i];

		switch (op) {
		case GS_CS_INSERT:
			if (n->type == GS_CS_UNDEFINED)
				return fail(w,
					    pk ? GS_CS_PK_MISSING
					       : GS_CS_UNDEFINED_VALUE,
					    w->new_off[i], (int)i,
					    "INSERT column %u (%s) undefined",
					    i, cn);
			break;
		case GS_CS_DELETE:
			if (o->type == GS_CS_UNDEFINED && (pk || !patch))
				return fail(w,
					    pk ? GS_CS_PK_MISSING
					       : GS_CS_UNDEFINED_VALUE,
					    w->old_off[i], (int)i,
					    "DELETE column %u (%s) undefined",
					    i, cn);
			break;
		default: /* UPDATE */
			if (pk && o->type == GS_CS_UNDEFINED)
				return fail(
					w, GS_CS_PK_MISSING, w->old_off[i],
					(int)i,
					"UPDATE key column %u (%s) undefined",
					i, cn);
			if (pk && n->type != GS_CS_UNDEFINED)
				return fail(w, GS_CS_PK_CHANGED, w->new_off[i],
					    (int)i,
					    "UPDATE sets key column %u (%s)", i,
					    cn);
			if (pk)
				break;
			if (n->type == GS_CS_UNDEFINED) {
				if (!patch && o->type != GS_CS_UNDEFINED)
					return fail(w, GS_CS_NEW_MISSING,
						    w->new_off[i], (int)i,
						    "UPDATE column %u (%s) has "
						    "an old value but no new "
						    "one",
						    i, cn);
				break;
			}
			changed++;
			if (!patch && o->type == GS_CS_UNDEFINED)
				return fail(w, GS_CS_OLD_MISSING, w->old_off[i],
					    (int)i,
					    "UPDATE column %u (%s) has a new "
					    "value but no old one",
					    i, cn);
			break;
		}
	}
	if (op == GS_CS_UPDATE && changed == 0)
		return fail(w, GS_CS_EMPTY_UPDATE, rec_off, -1,
			    "UPDATE changes no column");
	return GS_OK;
}

/* Read one change (op byte at w->pos) and, in the second pass, emit it. */
static int read_change(struct walk *w)
{
	const struct gs_table *t = w->t;
	bool patch = w->o->kind == GS_CS_PATCHSET;
	size_t off = w->pos;
	uint8_t op = w->buf[w->pos++];
	uint8_t ind;
	int rc;

	if (op != GS_CS_INSERT && op != GS_CS_UPDATE && op != GS_CS_DELETE)
		return fail(w, GS_CS_BAD_OP, off, -1,
			    "byte 0x%02x where a change or a table header "
			    "was expected",
			    op);
	if (w->n_rows >= w->o->max_rows)
		return fail(w, GS_CS_TOO_MANY_ROWS, off, -1, "limit %zu rows",
			    w->o->max_rows);
	if (w->pos >= w->len)
		return fail(w, GS_CS_TRUNCATED, off, -1,
			    "%s ends before its indirect flag",
			    gs__cs_op_name(op));
	ind = w->buf[w->pos++];
	if (ind > 1)
		return fail(w, GS_CS_BAD_INDIRECT, w->pos - 1, -1,
			    "indirect flag 0x%02x", ind);

	switch (op) {
	case GS_CS_INSERT:
		rc = read_vec(w, w->new_v, w->new_off, false, "INSERT");
		break;
	case GS_CS_DELETE:
		rc = read_vec(w, w->old_v, w->old_off, patch, "DELETE");
		break;
	default:
		rc = GS_OK;
		if (!patch)
			rc = read_vec(w, w->old_v, w->old_off, false,
				      "UPDATE old");
		if (rc == GS_OK)
			rc = read_vec(w, w->new_v, w->new_off, false,
				      patch ? "UPDATE" : "UPDATE new");
		if (rc != GS_OK || !patch)
			break;
		/* Move the key from the single record into old_v, as
		 * SQLite's iterator does, so both kinds look alike. */
		for (unsigned i = 0; i < t->n_cols; i++) {
			memset(&w->old_v[i], 0, sizeof(w->old_v[i]));
			w->old_off[i] = w->new_off[i];
			if (!is_pk(t, i))
				continue;
			w->old_v[i] = w->new_v[i];
			memset(&w->new_v[i], 0, sizeof(w->new_v[i]));
		}
		break;
	}
	if (rc == GS_OK)
		rc = check_row(w, op, off);
	if (rc != GS_OK)
		return rc;

	w->n_rows++;
	w->t_rows++;
	w->n_vals += (op == GS_CS_UPDATE ? 2u : 1u) * t->n_cols;
	if (w->emit_row != NULL) {
		struct gs_cs_row row = {
			.table = t,
			.op = (enum gs_cs_op)op,
			.indirect = ind != 0,
			.old_vals = op == GS_CS_INSERT ? NULL : w->old_v,
			.new_vals = op == GS_CS_DELETE ? NULL : w->new_v,
			.offset = off,
			.len = w->pos - off,
		};
		return w->emit_row(w, &row);
	}
	return GS_OK;
}

/* Keep only [A-Za-z0-9_] of an unknown table's name for the detail text:
 * the name came from the sender. */
static void clean_name(char *out, const uint8_t *name, size_t len)
{
	size_t n = len < 40 ? len : 40;

	for (size_t i = 0; i < n; i++) {
		uint8_t ch = name[i];
		bool ok = (ch >= 'a' && ch <= 'z') ||
			  (ch >= 'A' && ch <= 'Z') ||
			  (ch >= '0' && ch <= '9') || ch == '_';

		out[i] = ok ? (char)ch : '?';
	}
	out[n] = '\0';
}

static bool table_allowed(const struct walk *w, const struct gs_table *t)
{
	unsigned bit;

	switch (t->cls) {
	case GS_CLASS_R:
		bit = GS_CS_ALLOW_R;
		break;
	case GS_CLASS_D:
		bit = GS_CS_ALLOW_D;
		break;
	case GS_CLASS_S:
		bit = GS_CS_ALLOW_S;
		break;
	case GS_CLASS_A:
		bit = GS_CS_ALLOW_A;
		break;
	default:
		return false;
	}
	if (!(w->o->allow & bit))
		return false;
	return w->o->allow_fn == NULL || w->o->allow_fn(t, w->o->allow_payload);
}

/* Read a table header (kind byte at w->pos) and make it current. */
static int read_header(struct walk *w)
{
	size_t off = w->pos;
	uint8_t kind = w->buf[w->pos++];
	const struct gs_table *t = NULL;
	const uint8_t *pk;
	const uint8_t *name;
	const uint8_t *nul;
	size_t name_len;
	size_t idx;
	uint64_t n_cols;
	int rc;

	if (w->t != NULL && w->t_rows == 0)
		return fail(w, GS_CS_EMPTY_TABLE, w->hdr_off, -1,
			    "header followed by another header");
	/* From here on, messages are about the new header. */
	w->t = NULL;
	w->tname = NULL;
	if (kind != (uint8_t)w->o->kind)
		return fail(w,
			    kind == GS_CS_PATCHSET
				    ? GS_CS_PATCHSET_NOT_EXPECTED
				    : GS_CS_CHANGESET_NOT_EXPECTED,
			    off, -1, "table header '%c'", kind);
	if (w->pos >= w->len)
		return fail(w, GS_CS_TRUNCATED, off, -1,
			    "table header ends before its column count");
	rc = read_varint(w, &n_cols, -1, "the column count");
	if (rc != GS_OK)
		return rc;
	if (n_cols == 0 || n_cols > GS_CS_MAX_COLS)
		return fail(w, GS_CS_COLUMN_COUNT, off + 1, -1,
			    "%llu columns declared, at most %d",
			    (unsigned long long)n_cols, GS_CS_MAX_COLS);
	if (n_cols > w->len - w->pos)
		return fail(w, GS_CS_TRUNCATED, w->pos, -1,
			    "table header ends inside its key flags");
	pk = w->buf + w->pos;
	w->pos += (size_t)n_cols;
	name = w->buf + w->pos;
	nul = memchr(name, 0, w->len - w->pos);
	if (nul == NULL)
		return fail(w, GS_CS_NAME_NOT_TERMINATED, w->pos, -1,
			    "table header ends before its name is terminated");
	name_len = (size_t)(nul - name);
	clean_name(w->name_buf, name, name_len);
	w->tname = w->name_buf;
	for (idx = 0; name_len <= GS_CS_NAME_MAX && idx < w->n_tables; idx++)
		if (strlen(w->tables[idx].name) == name_len &&
		    memcmp(w->tables[idx].name, name, name_len) == 0) {
			t = &w->tables[idx];
			break;
		}
	if (t == NULL)
		return fail(w, GS_CS_UNKNOWN_TABLE, w->pos, -1,
			    "%zu-byte name not in the manifest", name_len);
	/* A manifest wider than the scratch vectors is a build error. */
	GS_ASSERT(t->n_cols > 0 && t->n_cols <= GS_CS_MAX_COLS);
	w->t = t;
	w->tname = t->name;
	/* Asked once, while validating: a second answer could differ. */
	if (w->emit_row == NULL && !table_allowed(w, t))
		return fail(w, GS_CS_TABLE_NOT_ALLOWED, off, -1,
			    "class %c not allowed here", (char)t->cls);
	if (w->seen & (UINT64_C(1) << idx))
		return fail(w, GS_CS_TABLE_REPEATED, off, -1,
			    "second header for this table");
	if (n_cols != t->n_cols)
		return fail(w, GS_CS_COLUMN_COUNT, off + 1, -1,
			    "%llu columns declared, manifest has %u",
			    (unsigned long long)n_cols, t->n_cols);
	for (unsigned i = 0; i < t->n_cols; i++)
		if (pk[i] != pk_ordinal(t, i))
			return fail(w, GS_CS_PK_LAYOUT,
				    (size_t)(pk - w->buf) + i, (int)i,
				    "key byte %u of column %u (%s), "
				    "manifest says %u",
				    pk[i], i, t->cols[i].name,
				    pk_ordinal(t, i));
	w->pos += name_len + 1;
	w->seen |= UINT64_C(1) << idx;
	w->hdr_off = off;
	w->t_rows = 0;
	w->n_spans++;
	if (w->emit_span != NULL) {
		struct gs_cs_span span = { t, off, w->n_rows, 0 };

		w->emit_span(w, &span);
	}
	return GS_OK;
}

/* The whole input: headers and changes until every byte is consumed. */
static int walk_all(struct walk *w)
{
	int rc = GS_OK;

	if (w->len > w->o->max_bytes)
		return fail(w, GS_CS_TOO_BIG, 0, -1, "%zu bytes, limit %zu",
			    w->len, w->o->max_bytes);
	while (rc == GS_OK && w->pos < w->len) {
		uint8_t b = w->buf[w->pos];

		if (b == GS_CS_CHANGESET || b == GS_CS_PATCHSET)
			rc = read_header(w);
		else if (w->t == NULL)
			rc = fail(w, GS_CS_NO_TABLE, w->pos, -1,
				  "byte 0x%02x where a table header was "
				  "expected",
				  b);
		else
			rc = read_change(w);
	}
	if (rc == GS_OK && w->t != NULL && w->t_rows == 0)
		rc = fail(w, GS_CS_EMPTY_TABLE, w->hdr_off, -1,
			  "header at the end of the input");
	return rc;
}

/* Set up a walker; bad arguments return GS_EINVAL. */
static int walk_init(struct walk *w,
		     struct gs_cs_error *err,
		     struct gs_ctx *ctx,
		     const void *data,
		     size_t len,
		     const struct gs_cs_opts *opts)
{
	static const struct gs_cs_opts defaults = GS_CS_OPTS_INIT;

	if (opts == NULL)
		opts = &defaults;
	GS_CHECK_ARG(data != NULL || len == 0);
	GS_CHECK_ARG(opts->kind == GS_CS_CHANGESET ||
		     opts->kind == GS_CS_PATCHSET);
	GS_CHECK_ARG(opts->max_bytes <= INT_MAX);
	GS_CHECK_ARG(opts->tables == NULL || opts->n_tables <= 64);
	/* So that value-slot counts cannot overflow, even with 32-bit size_t.
	 */
	GS_CHECK_ARG(opts->max_rows <= SIZE_MAX / (2 * GS_CS_MAX_COLS));
	memset(w, 0, sizeof(*w));
	w->ctx = ctx;
	w->o = opts;
	w->buf = data;
	w->len = len;
	w->err = err;
	if (opts->tables != NULL) {
		w->tables = opts->tables;
		w->n_tables = opts->n_tables;
	} else {
		w->tables = gs__manifest(&w->n_tables);
	}
	GS_ASSERT(w->n_tables <= 64);
	err->reason = GS_CS_NONE;
	err->offset = 0;
	err->table = NULL;
	err->column = -1;
	return GS_OK;
}

/* Rewind a walker that accepted its input for the emitting pass. */
static void walk_rewind(struct walk *w)
{
	w->pos = 0;
	w->seen = 0;
	w->t = NULL;
	w->tname = NULL;
	w->t_rows = 0;
	w->n_spans = 0;
	w->n_rows = 0;
	w->n_vals = 0;
}

int gs__cs_check(struct gs_cs_error *err_out,
		 struct gs_ctx *ctx,
		 const void *data,
		 size_t len,
		 const struct gs_cs_opts *opts)
{
	return gs__cs_foreach(err_out, ctx, data, len, opts, NULL, NULL);
}

static int emit_to_cb(struct walk *w, const struct gs_cs_row *row)
{
	return w->cb(row, w->payload);
}

int gs__cs_foreach(struct gs_cs_error *err_out,
		   struct gs_ctx *ctx,
		   const void *data,
		   size_t len,
		   const struct gs_cs_opts *opts,
		   gs_cs_row_cb cb,
		   void *payload)
{
	struct gs_cs_error scratch_err;
	struct walk w;
	int rc;

	rc = walk_init(&w, err_out != NULL ? err_out : &scratch_err, ctx, data,
		       len, opts);
	if (rc != GS_OK)
		return rc;
	rc = walk_all(&w);
	if (rc != GS_OK || cb == NULL)
		return rc;
	walk_rewind(&w);
	w.emit_row = emit_to_cb;
	w.cb = cb;
	w.payload = payload;
	return walk_all(&w);
}

static void emit_span_copy(struct walk *w, const struct gs_cs_span *span)
{
	w->spans[w->n_spans - 1] = *span;
}

/* Copy the row and its vectors into the block sized by the first pass. */
static int emit_row_copy(struct walk *w, const struct gs_cs_row *row)
{
	struct gs_cs_row *r = &w->rows[w->n_rows - 1];
	unsigned n = row->table->n_cols;

	*r = *row;
	if (row->old_vals != NULL) {
		memcpy(&w->vals[w->vals_used], row->old_vals,
		       n * sizeof(*w->vals));
		r->old_vals = &w->vals[w->vals_used];
		w->vals_used += n;
	}
	if (row->new_vals != NULL) {
		memcpy(&w->vals[w->vals_used], row->new_vals,
		       n * sizeof(*w->vals));
		r->new_vals = &w->vals[w->vals_used];
		w->vals_used += n;
	}
	w->spans[w->n_spans - 1].n_rows++;
	return GS_OK;
}

/* *acc += n * size, rounded up to 16 bytes; false on overflow. */
static bool add_array(size_t *acc, size_t n, size_t size)
{
	size_t bytes;

	if (size != 0 && n > SIZE_MAX / size)
		return false;
	bytes = n * size;
	if (bytes > SIZE_MAX - 15 || *acc > SIZE_MAX - 15 - bytes)
		return false;
	*acc += (bytes + 15) & ~(size_t)15;
	return true;
}

int gs__cs_parse(struct gs_cs **out,
		 struct gs_cs_error *err_out,
		 struct gs_ctx *ctx,
		 const void *data,
		 size_t len,
		 const struct gs_cs_opts *opts)
{
	struct gs_cs_error scratch_err;
	struct gs_cs *cs = NULL;
	size_t off_spans = 0;
	size_t off_rows;
	size_t off_vals;
	size_t total;
	struct walk w;
	uint8_t *block;
	int rc;

	GS_CHECK_ARG(out != NULL);
	*out = NULL;
	rc = walk_init(&w, err_out != NULL ? err_out : &scratch_err, ctx, data,
		       len, opts);
	if (rc != GS_OK)
		return rc;
	rc = walk_all(&w);
	if (rc != GS_OK)
		return rc;

	/* One block: header, spans, rows, values, each 16-byte aligned. */
	if (!add_array(&off_spans, 1, sizeof(*cs)))
		return GS_ENOMEM;
	off_rows = off_spans;
	if (!add_array(&off_rows, w.n_spans, sizeof(struct gs_cs_span)))
		return GS_ENOMEM;
	off_vals = off_rows;
	if (!add_array(&off_vals, w.n_rows, sizeof(struct gs_cs_row)))
		return GS_ENOMEM;
	total = off_vals;
	if (!add_array(&total, w.n_vals, sizeof(struct gs_cs_value)))
		return GS_ENOMEM;
	block = gs__malloc(ctx, total);
	if (block == NULL)
		return gs__err(ctx, GS_ENOMEM,
			       "changeset: %zu bytes for %zu rows", total,
			       w.n_rows);
	cs = (struct gs_cs *)(void *)block;
	memset(cs, 0, sizeof(*cs));
	cs->kind = w.o->kind;
	cs->ctx = ctx;
	w.spans = (struct gs_cs_span *)(void *)(block + off_spans);
	w.rows = (struct gs_cs_row *)(void *)(block + off_rows);
	w.vals = (struct gs_cs_value *)(void *)(block + off_vals);
	cs->n_spans = w.n_spans;
	cs->n_rows = w.n_rows;
	cs->spans = w.spans;
	cs->rows = w.rows;

	walk_rewind(&w);
	w.emit_row = emit_row_copy;
	w.emit_span = emit_span_copy;
	rc = walk_all(&w);
	GS_ASSERT(rc == GS_OK && w.n_rows == cs->n_rows);
	*out = cs;
	return GS_OK;
}

void gs__cs_free(struct gs_cs *cs)
{
	if (cs != NULL)
		gs__free(cs->ctx, cs);
}

/* ---- encoder ----------------------------------------------------------- */

/* Sticky-rc helpers: after the first failure every call is a no-op. */
static void put(struct gs_buf *b, const void *p, size_t n, int *rc)
{
	if (*rc == GS_OK)
		*rc = gs__buf_append(b, p, n);
}

static void put_byte(struct gs_buf *b, uint8_t x, int *rc)
{
	put(b, &x, 1, rc);
}

/* Minimal SQLite varint; v < 2^35 here, so the 9-byte form never arises. */
static void put_varint(struct gs_buf *b, uint64_t v, int *rc)
{
	uint8_t tmp[5];
	unsigned n = 0;

	GS_ASSERT(v < (UINT64_C(1) << 35));
	do {
		tmp[n++] = (uint8_t)(v & 0x7fu);
		v >>= 7;
	} while (v != 0);
	for (unsigned k = n; k-- > 0;)
		put_byte(b, (uint8_t)(tmp[k] | (k > 0 ? 0x80u : 0)), rc);
}

static void put_value(struct gs_buf *b, const struct gs_cs_value *v, int *rc)
{
	uint8_t be[8];
	uint64_t u = 0;

	put_byte(b, v->type, rc);
	switch (v->type) {
	case GS_CS_INT:
	case GS_CS_REAL:
		if (v->type == GS_CS_INT)
			memcpy(&u, &v->i, sizeof(u));
		else
			memcpy(&u, &v->r, sizeof(u));
		for (unsigned k = 0; k < 8; k++)
			be[k] = (uint8_t)(u >> (56 - 8 * k));
		put(b, be, sizeof(be), rc);
		break;
	case GS_CS_TEXT:
	case GS_CS_BLOB:
		put_varint(b, v->len, rc);
		put(b, v->p, v->len, rc);
		break;
	default:
		break;
	}
}

int gs__cs_encode(struct gs_buf *out, const struct gs_cs *cs)
{
	int rc = GS_OK;

	GS_CHECK_ARG(out != NULL && cs != NULL);
	for (size_t s = 0; s < cs->n_spans; s++) {
		const struct gs_cs_span *sp = &cs->spans[s];
		const struct gs_table *t = sp->table;
		bool patch = cs->kind == GS_CS_PATCHSET;

		put_byte(out, (uint8_t)cs->kind, &rc);
		put_varint(out, t->n_cols, &rc);
		for (unsigned i = 0; i < t->n_cols; i++)
			put_byte(out, (uint8_t)pk_ordinal(t, i), &rc);
		put(out, t->name, strlen(t->name) + 1, &rc);
		for (size_t r = sp->first_row; r < sp->first_row + sp->n_rows;
		     r++) {
			const struct gs_cs_row *row = &cs->rows[r];

			put_byte(out, (uint8_t)row->op, &rc);
			put_byte(out, row->indirect ? 1 : 0, &rc);
			for (unsigned i = 0;
			     row->old_vals != NULL && !patch && i < t->n_cols;
			     i++)
				put_value(out, &row->old_vals[i], &rc);
			/* Patchset DELETE: the key alone; UPDATE: key and
			 * changed columns in one vector. */
			for (unsigned i = 0;
			     patch && row->op != GS_CS_INSERT && i < t->n_cols;
			     i++) {
				if (is_pk(t, i))
					put_value(out, &row->old_vals[i], &rc);
				else if (row->op == GS_CS_UPDATE)
					put_value(out, &row->new_vals[i], &rc);
			}
			for (unsigned i = 0;
			     row->new_vals != NULL &&
			     (!patch || row->op == GS_CS_INSERT) &&
			     i < t->n_cols;
			     i++)
				put_value(out, &row->new_vals[i], &rc);
		}
	}
	return rc;
}
