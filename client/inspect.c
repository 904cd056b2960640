/*
 * gs_inspect: sync bytes decoded for a person (see gridsync/inspect.h).
 *
 * Nothing here trusts the input. A bare changeset goes through the strict
 * parser (proto/changeset.c), frames through the frame reader and the
 * message decoder (proto/frame.c, proto/wire.c), and the changesets inside
 * Push and Changes through the bounded unpacker and the parser again.
 * SQLite's own changeset functions are never called: on Debian 12 they spin
 * forever on some malformed input (DESIGN.md traps 1 and 7).
 *
 * The input is walked twice with one set of functions. The first pass
 * only checks (emit is false: the output helpers return at once); the
 * second, which can only fail for lack of memory or because the caller
 * stopped it, writes. So a bad frame at the end of a capture produces an
 * error and no output at all, and the caller never has to take back half
 * a JSON document.
 *
 * Output goes through a small buffer to the caller's callback in chunks;
 * long values bypass the buffer, so memory stays bounded whatever the
 * input holds. Nothing is logged: the values may be personal data.
 */
#define GS_MODULE "client.inspect"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gridsync/changeset.h>
#include <gridsync/inspect.h>
#include <gridsync/platform.h>
#include <gridsync/schema.h>
#include <gridsync/wire.h>

/* Output is handed over in chunks of about this size. */
#define CHUNK 4096
/* Inflated changeset bytes allowed over one input: a capture full of small
 * zstd frames that each claim the maximum must not take minutes. */
#define MAX_INFLATED (256u << 20)
/* Nesting of the JSON document (root, frame, entry, changeset, row, ...). */
#define MAX_DEPTH 12

struct insp {
	struct gs_ctx *ctx;
	bool json;
	bool upload; /* GS_INSPECT_UPLOAD */
	bool emit;   /* false in the checking pass */
	gs_inspect_cb cb;
	void *payload;
	int rc;                /* sticky: first output failure */
	struct gs_buf out;     /* pending output */
	struct gs_buf cs;      /* the current entry's uncompressed changeset */
	struct gs_zstd z;      /* kept across entries */
	uint64_t inflated;     /* zstd output so far, this pass */
	size_t n_frames;       /* counted by the checking pass */
	int depth;             /* JSON nesting */
	bool first[MAX_DEPTH]; /* no member written yet at this depth */
	int indent;            /* text indentation, in steps of two spaces */
};

/* ---- output ------------------------------------------------------------ */

/* Hand the buffered output to the callback. A failure (the callback's
 * non-zero return) is kept in in->rc and stops all later output. */
static void flush(struct insp *in)
{
	int r;

	if (in->rc == GS_OK && in->out.len > 0) {
		r = in->cb((const char *)in->out.data, in->out.len,
			   in->payload);
		if (r != 0)
			in->rc = r;
	}
	in->out.len = 0;
}

/* Append n bytes; long runs go straight to the callback. */
static void put(struct insp *in, const char *s, size_t n)
{
	int r;

	if (!in->emit || in->rc != GS_OK || n == 0)
		return;
	if (n >= CHUNK) {
		flush(in);
		if (in->rc == GS_OK) {
			r = in->cb(s, n, in->payload);
			if (r != 0)
				in->rc = r;
		}
		return;
	}
	r = gs__buf_append(&in->out, s, n);
	if (r != GS_OK)
		in->rc = r;
	else if (in->out.len >= CHUNK)
		flush(in);
}

/* A NUL-terminated piece. */
static void puts_(struct insp *in, const char *s)
{
	put(in, s, strlen(s));
}

/* Short formatted pieces only (numbers, fixed names): at most 127 bytes. */
static void putf(struct insp *in, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void putf(struct insp *in, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	int n;

	if (!in->emit || in->rc != GS_OK)
		return;
	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	GS_ASSERT(n >= 0 && (size_t)n < sizeof(tmp));
	put(in, tmp, (size_t)n);
}

/*
 * Text as a terminal may show it: UTF-8 passes through, but C0 and C1
 * control characters and the backslash are escaped, so a value cannot
 * break the layout or send escape sequences to the terminal.
 */
static void put_text(struct insp *in, const uint8_t *p, size_t n)
{
	size_t run = 0;

	if (!in->emit)
		return;
	for (size_t i = 0; i < n; i++) {
		char esc[8];
		bool c1 = p[i] == 0xc2 && i + 1 < n && p[i + 1] >= 0x80 &&
			  p[i + 1] <= 0x9f;

		if (p[i] >= 0x20 && p[i] != 0x7f && p[i] != '\\' && !c1)
			continue;
		put(in, (const char *)p + run, i - run);
		if (p[i] == '\n')
			snprintf(esc, sizeof(esc), "\\n");
		else if (p[i] == '\t')
			snprintf(esc, sizeof(esc), "\\t");
		else if (p[i] == '\\')
			snprintf(esc, sizeof(esc), "\\\\");
		else if (c1)
			snprintf(esc, sizeof(esc), "\\u%04x", p[++i]);
		else
			snprintf(esc, sizeof(esc), "\\x%02x", p[i]);
		puts_(in, esc);
		run = i + 1;
	}
	put(in, (const char *)p + run, n - run);
}

/* A JSON string literal of n bytes of UTF-8 (already validated). */
static void put_jstr(struct insp *in, const uint8_t *p, size_t n)
{
	size_t run = 0;

	if (!in->emit)
		return;
	put(in, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		char esc[8];

		if (p[i] >= 0x20 && p[i] != '"' && p[i] != '\\')
			continue;
		put(in, (const char *)p + run, i - run);
		if (p[i] == '"' || p[i] == '\\')
			snprintf(esc, sizeof(esc), "\\%c", p[i]);
		else if (p[i] == '\n')
			snprintf(esc, sizeof(esc), "\\n");
		else if (p[i] == '\t')
			snprintf(esc, sizeof(esc), "\\t");
		else
			snprintf(esc, sizeof(esc), "\\u%04x", p[i]);
		puts_(in, esc);
		run = i + 1;
	}
	put(in, (const char *)p + run, n - run);
	put(in, "\"", 1);
}

/* Two spaces per level, capped: nesting is bounded by the message shapes
 * anyway (frame, entry, changeset, row, column). */
static void put_indent(struct insp *in)
{
	static const char spaces[] = "                                ";
	size_t n = (size_t)in->indent * 2;

	put(in, spaces, n < sizeof(spaces) - 1 ? n : sizeof(spaces) - 1);
}

/* ---- a document that is either JSON or indented text ------------------- */

/* JSON: the separator and "key": before a member (key NULL in arrays). */
static void jkey(struct insp *in, const char *key)
{
	if (!in->first[in->depth])
		put(in, ",", 1);
	in->first[in->depth] = false;
	if (key != NULL) {
		put_jstr(in, (const uint8_t *)key, strlen(key));
		put(in, ":", 1);
	}
}

/* Open a JSON object or array: its first member needs no comma. */
static void jpush(struct insp *in, const char *open)
{
	puts_(in, open);
	GS_ASSERT(in->depth + 1 < MAX_DEPTH);
	in->first[++in->depth] = true;
}

/* Close what jpush opened. */
static void jpop(struct insp *in, const char *close)
{
	puts_(in, close);
	GS_ASSERT(in->depth > 0);
	in->depth--;
}

/*
 * Open an object member (key set) or array element (key NULL). In text a
 * section is a title line with its members indented below it; title may
 * be NULL for "key:".
 */
static void sect_begin(struct insp *in, const char *key, const char *title)
{
	if (in->json) {
		jkey(in, key);
		jpush(in, "{");
		return;
	}
	put_indent(in);
	puts_(in, title != NULL ? title : key);
	puts_(in, title != NULL ? "\n" : ":\n");
	in->indent++;
}

/* Close what sect_begin opened. */
static void sect_end(struct insp *in)
{
	if (in->json)
		jpop(in, "}");
	else
		in->indent--;
}

/* An array member; in text its elements are sections with titles. */
static void list_begin(struct insp *in, const char *key)
{
	if (in->json) {
		jkey(in, key);
		jpush(in, "[");
	}
}

static void list_end(struct insp *in)
{
	if (in->json)
		jpop(in, "]");
}

/* Text: "  key: " before a scalar; JSON: the member's key. */
static void field_key(struct insp *in, const char *key)
{
	if (in->json) {
		jkey(in, key);
		return;
	}
	put_indent(in);
	puts_(in, key);
	puts_(in, ": ");
}

/* Text fields are one line each; JSON needs nothing after a value. */
static void field_end(struct insp *in)
{
	if (!in->json)
		put(in, "\n", 1);
}

/* Scalar fields: a JSON member, or a "key: value" line. Counters,
 * sequence numbers and lengths are unsigned on the wire. */
static void f_u64(struct insp *in, const char *key, uint64_t v)
{
	field_key(in, key);
	putf(in, "%llu", (unsigned long long)v);
	field_end(in);
}

static void f_bool(struct insp *in, const char *key, bool v)
{
	field_key(in, key);
	puts_(in, v ? "true" : "false");
	field_end(in);
}

/* A string field; NULL prints as null (JSON) or "-" (text). */
static void f_str(struct insp *in, const char *key, const char *s)
{
	field_key(in, key);
	if (s == NULL)
		puts_(in, in->json ? "null" : "-");
	else if (in->json)
		put_jstr(in, (const uint8_t *)s, strlen(s));
	else
		put_text(in, (const uint8_t *)s, strlen(s));
	field_end(in);
}

/* Hex of n bytes, as a string. */
static void f_hex(struct insp *in, const char *key, const uint8_t *p, size_t n)
{
	char hex[2 * GS_SHA256_LEN + 1];

	GS_ASSERT(n <= GS_SHA256_LEN);
	gs__hex(hex, p, n);
	f_str(in, key, hex);
}

/* A hybrid logical clock, as the outbox listing shows it. */
static void f_hlc(struct insp *in, const char *key, uint64_t hlc)
{
	char hex[17];

	snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)hlc);
	f_str(in, key, hex);
}

/* Milliseconds since the epoch, also as ISO-8601 when plausible. */
static void
f_time(struct insp *in, const char *key, const char *iso_key, uint64_t ms)
{
	char iso[GS_TIME_LEN];

	f_u64(in, key, ms);
	if (ms < 253402300800000ull) { /* before the year 10000 */
		gs__time_format(iso, (int64_t)ms);
		f_str(in, iso_key, iso);
	}
}

/* ---- changeset values and rows ------------------------------------------ */

/* The shortest %g form that reads back to d, with ".0" if it looks like an
 * integer (so a REAL stays recognisable). */
static void put_real(struct insp *in, double d)
{
	char tmp[40];

	if (!isfinite(d)) {
		/* Not JSON numbers; the parser only refuses NaN. */
		if (in->json)
			puts_(in, d > 0 ? "\"Infinity\"" : "\"-Infinity\"");
		else
			puts_(in, d > 0 ? "inf" : "-inf");
		return;
	}
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
		if (strtod(tmp, NULL) == d)
			break;
	}
	puts_(in, tmp);
	if (strpbrk(tmp, ".e") == NULL)
		puts_(in, ".0");
}

/*
 * One column value: integers and reals as numbers, text as is (escaped
 * for the output), blobs by size only, NULL as null/NULL. Personal values
 * are printed like any other: the engineer asked to see them, and this
 * output never reaches a log.
 */
static void put_value(struct insp *in, const struct gs_cs_value *v)
{
	switch (v->type) {
	case GS_CS_INT:
		putf(in, "%lld", (long long)v->i);
		break;
	case GS_CS_REAL:
		put_real(in, v->r);
		break;
	case GS_CS_TEXT:
		if (in->json)
			put_jstr(in, v->p, v->len);
		else
			put_text(in, v->p, v->len);
		break;
	case GS_CS_BLOB:
		/* Blobs are encrypted fields: their size is what helps. */
		putf(in, in->json ? "{\"bytes\":%zu}" : "(%zu bytes)", v->len);
		break;
	case GS_CS_NULL:
		puts_(in, in->json ? "null" : "NULL");
		break;
	default:
		puts_(in, in->json ? "null" : "?"); /* undefined */
		break;
	}
}

/* True if column i has a value in vals (NULL: the op has no vector). */
static bool defined(const struct gs_cs_value *vals, unsigned i)
{
	return vals != NULL && vals[i].type != GS_CS_UNDEFINED;
}

/* Payload of the row callbacks: the printer and a running row number. */
struct row_ctx {
	struct insp *in;
	size_t n; /* rows so far */
};

/* gs__cs_foreach callback of the counting walk. */
static int count_row(const struct gs_cs_row *row, void *payload)
{
	(void)row;
	((struct row_ctx *)payload)->n++;
	return 0;
}

/* "id=..." or "task_id=..., household_id=..." from the key columns. */
static void put_pk(struct insp *in, const struct gs_cs_row *row)
{
	const struct gs_table *t = row->table;
	const struct gs_cs_value *key =
		row->op == GS_CS_INSERT ? row->new_vals : row->old_vals;
	bool first = true;

	for (unsigned i = 0; i < t->n_cols; i++) {
		if (!(t->cols[i].flags & GS_COL_PK) || !defined(key, i))
			continue;
		if (in->json) {
			jkey(in, t->cols[i].name);
		} else {
			puts_(in, first ? "" : ", ");
			puts_(in, t->cols[i].name);
			put(in, "=", 1);
		}
		put_value(in, &key[i]);
		first = false;
	}
}

/*
 * One row. JSON: {"table", "op", "indirect", "offset", "pk": {...},
 * "columns": [{"name", "old"?, "new"?, "personal"?}]} with every defined
 * column. Text: a title line, then "name: value" (INSERT, DELETE) or
 * "name: old -> new" (UPDATE; the key is in the title, an old value a
 * patchset does not carry shows as "?").
 */
static int print_row(const struct gs_cs_row *row, void *payload)
{
	struct row_ctx *rc = payload;
	struct insp *in = rc->in;
	const struct gs_table *t = row->table;
	bool update = row->op == GS_CS_UPDATE;

	rc->n++;
	if (in->json) {
		jkey(in, NULL);
		jpush(in, "{");
		f_str(in, "table", t->name);
		f_str(in, "op", gs__cs_op_name(row->op));
		f_bool(in, "indirect", row->indirect);
		f_u64(in, "offset", row->offset);
		jkey(in, "pk");
		jpush(in, "{");
		put_pk(in, row);
		jpop(in, "}");
		list_begin(in, "columns");
		for (unsigned i = 0; i < t->n_cols; i++) {
			if (!defined(row->old_vals, i) &&
			    !defined(row->new_vals, i))
				continue;
			jkey(in, NULL);
			jpush(in, "{");
			f_str(in, "name", t->cols[i].name);
			if (defined(row->old_vals, i)) {
				jkey(in, "old");
				put_value(in, &row->old_vals[i]);
			}
			if (defined(row->new_vals, i)) {
				jkey(in, "new");
				put_value(in, &row->new_vals[i]);
			}
			if (t->cols[i].flags & GS_COL_PERSONAL)
				f_bool(in, "personal", true);
			jpop(in, "}");
		}
		list_end(in);
		jpop(in, "}");
		return in->rc;
	}
	put_indent(in);
	putf(in, "#%zu %s %s ", rc->n, t->name, gs__cs_op_name(row->op));
	put_pk(in, row);
	putf(in, " (byte %zu%s)\n", row->offset,
	     row->indirect ? ", indirect" : "");
	in->indent++;
	for (unsigned i = 0; i < t->n_cols; i++) {
		bool has_old = defined(row->old_vals, i);
		bool has_new = defined(row->new_vals, i);

		if ((!has_old && !has_new) || (update && !has_new))
			continue;
		field_key(in, t->cols[i].name);
		if (update) {
			if (has_old)
				put_value(in, &row->old_vals[i]);
			else
				put(in, "?", 1);
			puts_(in, " -> ");
		}
		put_value(in, has_new ? &row->new_vals[i] : &row->old_vals[i]);
		field_end(in);
	}
	in->indent--;
	return in->rc;
}

/*
 * Check a changeset (first pass) or print it as a section under key
 * (second pass): {"kind", "bytes", "n_rows", "rows": [...]}.
 */
static int do_changeset(struct insp *in,
			const char *key,
			const uint8_t *data,
			size_t len,
			const struct gs_cs_opts *opts)
{
	struct row_ctx rc = { in, 0 };
	const char *kind =
		opts->kind == GS_CS_PATCHSET ? "patchset" : "changeset";
	char title[96];
	int r;

	if (!in->emit)
		return gs__cs_check(NULL, in->ctx, data, len, opts);
	/* Count first, so the title can say how many rows follow. */
	r = gs__cs_foreach(NULL, in->ctx, data, len, opts, count_row, &rc);
	if (r != GS_OK)
		return r;
	if (key != NULL && !in->json) {
		snprintf(title, sizeof(title), "%s: %s, %zu bytes, %zu row%s",
			 key, kind, len, rc.n, rc.n == 1 ? "" : "s");
		sect_begin(in, key, title);
	} else if (key != NULL) {
		sect_begin(in, key, NULL);
	} else if (!in->json) {
		put_indent(in);
		putf(in, "%s: %zu bytes, %zu row%s\n", kind, len, rc.n,
		     rc.n == 1 ? "" : "s");
		in->indent++;
	}
	if (in->json) {
		f_str(in, "kind", kind);
		f_u64(in, "bytes", len);
		f_u64(in, "n_rows", rc.n);
		list_begin(in, "rows");
	}
	rc.n = 0;
	r = gs__cs_foreach(NULL, in->ctx, data, len, opts, print_row, &rc);
	if (in->json)
		list_end(in);
	if (key != NULL)
		sect_end(in);
	else if (!in->json)
		in->indent--;
	return r != GS_OK ? r : in->rc;
}

/* ---- messages ------------------------------------------------------------ */

/*
 * Names of the wire enums, as gridsync.proto spells them in lower case.
 * The decoder refuses values outside the enums, so "?" only guards
 * against a future enum member this printer does not know yet.
 */
static const char *comp_name(enum gs_compression c)
{
	return c == GS_COMP_NONE ? "none" : c == GS_COMP_ZSTD ? "zstd" : "?";
}

static const char *result_name(enum gs_entry_result r)
{
	static const char *const names[] = { "?", "applied", "duplicate",
					     "rejected" };

	return (unsigned)r < 4 ? names[r] : "?";
}

static const char *reject_name(enum gs_reject r)
{
	static const char *const names[] = { "none",   "malformed",
					     "hash",   "seq_reused",
					     "schema", "denied",
					     "state",  "limit" };

	return (unsigned)r < 8 ? names[r] : "?";
}

static const char *wire_err_name(enum gs_wire_err e)
{
	static const char *const names[] = {
		"?",    "protocol", "version", "schema_upgrade", "unauthorized",
		"busy", "limit",    "internal"
	};

	return (unsigned)e < 8 ? names[e] : "?";
}

/* Where an error was found, for wrapping the detail text. */
struct where {
	size_t frame;    /* 1-based */
	uint64_t offset; /* of the frame's length prefix */
};

/*
 * Unpack one entry's changeset into in->cs (checking its hash when sha256
 * is not NULL), then check or print it. what names the entry in errors.
 */
static int do_entry_changeset(struct insp *in,
			      const struct where *w,
			      const char *what,
			      uint64_t seq,
			      const uint8_t *data,
			      size_t len,
			      enum gs_compression comp,
			      uint32_t ulen,
			      const uint8_t *sha256,
			      bool upload)
{
	struct gs_cs_opts opts = GS_CS_OPTS_INIT;
	int rc;

	if (comp == GS_COMP_ZSTD) {
		if (in->inflated + ulen > MAX_INFLATED)
			return gs__err(in->ctx, GS_ETOOBIG,
				       "frame %zu at byte %llu: %s %llu: more "
				       "than %u MiB of compressed changesets "
				       "in one input; split the capture",
				       w->frame, (unsigned long long)w->offset,
				       what, (unsigned long long)seq,
				       MAX_INFLATED >> 20);
		in->inflated += ulen;
	}
	in->cs.len = 0;
	rc = gs__changeset_unpack(&in->cs, &in->z, comp, data, len, ulen,
				  sha256);
	if (rc == GS_OK) {
		/* Uploads are judged as the server judges them; downloads may
		 * carry any table, as either kind. */
		if (!upload) {
			opts.allow = GS_CS_ALLOW_ALL;
			if (in->cs.len > 0 && in->cs.data[0] == GS_CS_PATCHSET)
				opts.kind = GS_CS_PATCHSET;
		}
		rc = do_changeset(in, "changeset", in->cs.data, in->cs.len,
				  &opts);
	}
	if (rc < 0 && rc != GS_ENOMEM)
		rc = gs__err_wrap(in->ctx, rc,
				  "frame %zu at byte %llu: %s %llu", w->frame,
				  (unsigned long long)w->offset, what,
				  (unsigned long long)seq);
	return rc;
}

/* Text title of entry i (counted from 1 for people). */
static void entry_title(char *buf, size_t cap, size_t i)
{
	snprintf(buf, cap, "entry %zu:", i + 1);
}

/* Push: every entry with its metadata, then its changeset decoded. The
 * first entry that fails stops the walk (and the whole inspection). */
static int
do_push(struct insp *in, const struct where *w, const struct gs_msg_push *p)
{
	char title[32];
	int rc = GS_OK;

	f_u64(in, "schema_version", p->schema_version);
	list_begin(in, "entries");
	for (size_t i = 0; rc == GS_OK && i < p->n_entries; i++) {
		const struct gs_push_entry *e = &p->entries[i];

		entry_title(title, sizeof(title), i);
		sect_begin(in, NULL, title);
		f_u64(in, "device_seq", e->device_seq);
		f_hlc(in, "hlc", e->hlc);
		f_str(in, "compression", comp_name(e->compression));
		f_u64(in, "bytes", e->changeset_len);
		f_u64(in, "uncompressed_len", e->uncompressed_len);
		f_hex(in, "sha256", e->sha256, GS_SHA256_LEN);
		rc = do_entry_changeset(in, w, "push entry device_seq",
					e->device_seq, e->changeset,
					e->changeset_len, e->compression,
					e->uncompressed_len, e->sha256, true);
		sect_end(in);
	}
	list_end(in);
	return rc;
}

/* Changes: like Push, for the server's entries, then the cursor. */
static int do_changes(struct insp *in,
		      const struct where *w,
		      const struct gs_msg_changes *c)
{
	char title[32];
	int rc = GS_OK;

	f_u64(in, "schema_version", c->schema_version);
	list_begin(in, "entries");
	for (size_t i = 0; rc == GS_OK && i < c->n_entries; i++) {
		const struct gs_change *e = &c->entries[i];

		entry_title(title, sizeof(title), i);
		sect_begin(in, NULL, title);
		f_u64(in, "server_seq", e->server_seq);
		f_hlc(in, "hlc", e->hlc);
		f_str(in, "origin", e->origin);
		f_str(in, "compression", comp_name(e->compression));
		f_u64(in, "bytes", e->changeset_len);
		f_u64(in, "uncompressed_len", e->uncompressed_len);
		rc = do_entry_changeset(in, w, "changes entry server_seq",
					e->server_seq, e->changeset,
					e->changeset_len, e->compression,
					e->uncompressed_len, NULL, false);
		sect_end(in);
	}
	list_end(in);
	f_u64(in, "next_cursor", c->next_cursor);
	f_bool(in, "more", c->more);
	return rc;
}

/* One side of a lost field conflict; values are shown like row values. */
static void
do_side(struct insp *in, const char *key, const struct gs_conflict_side *s)
{
	struct gs_cs_value v;

	sect_begin(in, key, NULL);
	f_str(in, "device_id", s->device_id);
	f_hlc(in, "hlc", s->hlc);
	memset(&v, 0, sizeof(v));
	v.type = s->kind == GS_VALUE_TEXT   ? GS_CS_TEXT
		 : s->kind == GS_VALUE_BLOB ? GS_CS_BLOB
					    : GS_CS_NULL;
	v.p = s->value;
	v.len = s->value_len;
	field_key(in, "value");
	put_value(in, &v);
	field_end(in);
	sect_end(in);
}

/* PushAck: the per-entry results, then the field conflicts the device
 * lost, with both sides' values. */
static void do_push_ack(struct insp *in, const struct gs_msg_push_ack *a)
{
	char title[48];

	f_u64(in, "durable_seq", a->durable_seq);
	list_begin(in, "results");
	for (size_t i = 0; i < a->n_results; i++) {
		const struct gs_push_result *r = &a->results[i];

		snprintf(title, sizeof(title), "result %zu:", i + 1);
		sect_begin(in, NULL, title);
		f_u64(in, "device_seq", r->device_seq);
		f_str(in, "result", result_name(r->result));
		f_str(in, "reject_code", reject_name(r->reject_code));
		f_str(in, "reason", r->reason);
		sect_end(in);
	}
	list_end(in);
	list_begin(in, "conflicts");
	for (size_t i = 0; i < a->n_conflicts; i++) {
		const struct gs_conflict *c = &a->conflicts[i];

		snprintf(title, sizeof(title), "conflict %zu:", i + 1);
		sect_begin(in, NULL, title);
		f_u64(in, "device_seq", c->device_seq);
		f_str(in, "table", c->table);
		f_str(in, "pk", c->pk);
		f_str(in, "column", c->column);
		do_side(in, "winner", &c->winner);
		do_side(in, "loser", &c->loser);
		sect_end(in);
	}
	list_end(in);
}

/* Welcome: the scope is a list in JSON and one comma-separated line in
 * text, as `gridsync status` shows it. */
static void do_welcome(struct insp *in, const struct gs_msg_welcome *m)
{
	f_u64(in, "proto_version", m->proto_version);
	f_str(in, "server_id", m->server_id);
	f_time(in, "server_time_ms", "server_time", m->server_time_ms);
	if (in->json) {
		list_begin(in, "scope");
		for (size_t i = 0; i < m->n_scope; i++) {
			jkey(in, NULL);
			put_jstr(in, (const uint8_t *)m->scope[i],
				 strlen(m->scope[i]));
		}
		list_end(in);
	} else {
		field_key(in, "scope");
		for (size_t i = 0; i < m->n_scope; i++) {
			puts_(in, i > 0 ? ", " : "");
			put_text(in, (const uint8_t *)m->scope[i],
				 strlen(m->scope[i]));
		}
		field_end(in);
	}
	sect_begin(in, "limits", NULL);
	f_u64(in, "max_frame_bytes", m->limits.max_frame_bytes);
	f_u64(in, "max_push_entries", m->limits.max_push_entries);
	f_u64(in, "pull_byte_budget", m->limits.pull_byte_budget);
	sect_end(in);
	f_u64(in, "schema_version", m->schema_version);
	f_u64(in, "suite", m->suite);
}

/* The fields of one decoded message, inside its frame's section. */
static int
do_msg(struct insp *in, const struct where *w, const struct gs_msg *m)
{
	switch (m->type) {
	case GS_MSG_HELLO:
		f_u64(in, "proto_min", m->u.hello.proto_min);
		f_u64(in, "proto_max", m->u.hello.proto_max);
		f_str(in, "device_id", m->u.hello.device_id);
		f_u64(in, "schema_version", m->u.hello.schema_version);
		f_str(in, "app_version", m->u.hello.app_version);
		f_u64(in, "cursor", m->u.hello.cursor);
		f_u64(in, "suite", m->u.hello.suite);
		return GS_OK;
	case GS_MSG_WELCOME:
		do_welcome(in, &m->u.welcome);
		return GS_OK;
	case GS_MSG_PUSH:
		return do_push(in, w, &m->u.push);
	case GS_MSG_PUSH_ACK:
		do_push_ack(in, &m->u.push_ack);
		return GS_OK;
	case GS_MSG_PULL:
		f_u64(in, "after_seq", m->u.pull.after_seq);
		f_u64(in, "byte_budget", m->u.pull.byte_budget);
		return GS_OK;
	case GS_MSG_CHANGES:
		return do_changes(in, w, &m->u.changes);
	case GS_MSG_PING:
	case GS_MSG_PONG:
		f_hlc(in, "nonce", m->u.ping.nonce);
		f_time(in, "time_ms", "time", m->u.ping.time_ms);
		return GS_OK;
	case GS_MSG_ERROR:
		f_str(in, "code", wire_err_name(m->u.error.code));
		f_str(in, "message", m->u.error.message);
		f_u64(in, "retry_after_ms", m->u.error.retry_after_ms);
		return GS_OK;
	default:
		/* The decoder accepts no other type. */
		return gs__err(in->ctx, GS_EPROTO,
			       "frame %zu at byte %llu: unknown message type "
			       "%d",
			       w->frame, (unsigned long long)w->offset,
			       (int)m->type);
	}
}

/* Decode one frame body and check or print it. */
static int
do_frame(struct insp *in, const struct where *w, const struct gs_frame *f)
{
	struct gs_wire_limits lim = GS_WIRE_LIMITS_INIT;
	struct gs_msg *m = NULL;
	char title[96];
	int rc;

	/* A capture may come from a connection that negotiated more than the
	 * default; nothing goes above the ceiling. */
	lim.max_frame = GS_FRAME_MAX_CEILING;
	lim.max_changeset = GS_FRAME_MAX_CEILING;
	rc = gs__msg_decode(&m, in->ctx, f->data, f->len, &lim);
	if (rc != GS_OK) {
		if (rc != GS_ENOMEM)
			rc = gs__err_wrap(in->ctx, rc, "frame %zu at byte %llu",
					  w->frame,
					  (unsigned long long)w->offset);
		return rc;
	}
	snprintf(title, sizeof(title), "frame %zu at byte %llu (%zu bytes): %s",
		 w->frame, (unsigned long long)w->offset, f->len,
		 gs__msg_type_name(m->type));
	sect_begin(in, NULL, title);
	if (in->json) {
		f_u64(in, "index", w->frame);
		f_u64(in, "offset", w->offset);
		f_u64(in, "length", f->len);
		f_str(in, "type", gs__msg_type_name(m->type));
	}
	rc = do_msg(in, w, m);
	sect_end(in);
	gs__msg_free(m);
	return rc;
}

/* Walk the frames of data; counts them into in->n_frames. */
static int do_frames(struct insp *in, const uint8_t *data, size_t len)
{
	struct gs_frame_reader r;
	size_t pos = 0;
	size_t n = 0;
	int rc = GS_OK;

	gs__frame_reader_init(&r, in->ctx, GS_FRAME_MAX_CEILING);
	if (in->emit && in->json) {
		f_str(in, "kind", in->n_frames == 1 ? "frame" : "stream");
		f_u64(in, "bytes", len);
		f_u64(in, "n_frames", in->n_frames);
	} else if (in->emit) {
		putf(in, "%s: %zu bytes, %zu frame%s\n",
		     in->n_frames == 1 ? "frame" : "stream", len, in->n_frames,
		     in->n_frames == 1 ? "" : "s");
	}
	list_begin(in, "frames");
	while (rc == GS_OK && pos < len) {
		struct gs_frame f;
		struct where w = { n + 1, pos };
		size_t used = 0;

		rc = gs__frame_reader_feed(&f, &used, &r, data + pos,
					   len - pos);
		if (rc == GS_EAGAIN) {
			/* All of the rest was taken and no frame completed. */
			size_t left = len - pos;

			rc = left < GS_FRAME_HDR_LEN
				     ? gs__err(in->ctx, GS_EPROTO,
					       "frame %zu at byte %zu: the "
					       "input ends inside its 4-byte "
					       "length (%zu bytes left)",
					       w.frame, pos, left)
				     : gs__err(in->ctx, GS_EPROTO,
					       "frame %zu at byte %zu: the "
					       "input ends inside it (%zu of "
					       "%lu bytes)",
					       w.frame, pos,
					       left - GS_FRAME_HDR_LEN,
					       (unsigned long)r.body_len);
			break;
		}
		if (rc != GS_OK) {
			/* A bad length prefix: on the first frame, most
			 * likely not sync bytes at all. */
			if (rc != GS_ENOMEM)
				rc = gs__err_wrap(
					in->ctx, rc, "%sframe %zu at byte %zu",
					n == 0 ? "not a changeset (first byte "
						 "'T'), patchset ('P') or "
						 "frame capture: "
					       : "",
					w.frame, pos);
			break;
		}
		pos += used;
		n++;
		rc = do_frame(in, &w, &f);
	}
	list_end(in);
	gs__frame_reader_fini(&r);
	in->n_frames = n;
	return rc;
}

/* ---- entry point ----------------------------------------------------------
 */

/* One pass over the whole input: checking (in->emit false) or printing.
 * Returns the first failure; in the printing pass that can only be
 * GS_ENOMEM or the callback's code. */
static int walk(struct insp *in, const uint8_t *data, size_t len)
{
	int rc;

	in->inflated = 0;
	in->depth = 0;
	in->first[0] = true;
	in->indent = 0;
	if (in->emit && in->json)
		jpush(in, "{");
	if (in->upload || data[0] == GS_CS_CHANGESET ||
	    data[0] == GS_CS_PATCHSET) {
		/* Unless told it is an upload: any replicated table, either
		 * kind, as a download may hold; limits as large as the input.
		 */
		struct gs_cs_opts opts = GS_CS_OPTS_INIT;

		if (!in->upload) {
			opts.kind = data[0];
			opts.allow = GS_CS_ALLOW_ALL;
			opts.max_bytes = GS_INSPECT_MAX_INPUT;
			opts.max_rows = GS_INSPECT_MAX_INPUT;
			opts.max_value = GS_INSPECT_MAX_INPUT;
		}
		rc = do_changeset(in, NULL, data, len, &opts);
	} else {
		rc = do_frames(in, data, len);
	}
	if (rc == GS_OK && in->emit && in->json) {
		jpop(in, "}");
		put(in, "\n", 1);
	}
	if (rc == GS_OK)
		flush(in);
	return rc == GS_OK ? in->rc : rc;
}

int gs_inspect(struct gs_ctx *ctx,
	       const uint8_t *data,
	       size_t len,
	       unsigned flags,
	       gs_inspect_cb out,
	       void *payload)
{
	struct insp in;
	int rc;

	GS_CHECK_ARG(ctx != NULL && out != NULL && (data != NULL || len == 0));
	GS_CHECK_ARG((flags & ~(GS_INSPECT_JSON | GS_INSPECT_UPLOAD)) == 0);
	if (len == 0)
		return gs__err(ctx, GS_EPROTO,
			       "empty input: nothing to inspect");
	if (len > GS_INSPECT_MAX_INPUT)
		return gs__err(ctx, GS_ETOOBIG,
			       "input of %zu bytes is above the %u MiB limit",
			       len, GS_INSPECT_MAX_INPUT >> 20);
	memset(&in, 0, sizeof(in));
	in.ctx = ctx;
	in.json = (flags & GS_INSPECT_JSON) != 0;
	in.upload = (flags & GS_INSPECT_UPLOAD) != 0;
	in.cb = out;
	in.payload = payload;
	in.rc = GS_OK;
	/* put() never lets the buffer pass 2 * CHUNK; the ceiling is a guard.
	 * Entries inflate into one reused buffer, bounded by the frame
	 * ceiling (and the decoder's max_changeset). */
	gs__buf_init(&in.out, ctx, 4 * CHUNK);
	gs__buf_init(&in.cs, ctx, GS_FRAME_MAX_CEILING);
	gs__zstd_init(&in.z, ctx);
	rc = walk(&in, data, len);
	if (rc == GS_OK) {
		in.emit = true;
		rc = walk(&in, data, len);
	}
	gs__zstd_fini(&in.z);
	gs__buf_fini(&in.cs);
	gs__buf_fini(&in.out);
	return rc;
}
