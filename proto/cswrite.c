/*
 * Changeset writer (see cswrite.h; the byte format is described atop
 * changeset.c). It writes exactly what SQLite's session extension writes
 * for an INSERT: op 0x12, indirect 0, then one value per column: integers
 * and reals as 8 big-endian bytes, text and blobs as a minimal varint
 * length and the bytes, NULL as its type byte alone.
 *
 * Every row is checked against the rules the strict parser enforces before
 * a byte is appended, so a download the server builds can never be one
 * the device's own validator refuses.
 */
#define GS_MODULE "proto.cswrite"

#include <math.h>
#include <string.h>

#include <gridsync/cswrite.h>

/* Bytes of SQLite's varint for v (at most 5 for anything we write). */
static size_t varint_len(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80u) {
		v >>= 7;
		n++;
	}
	return n;
}

/* Write v as a big-endian base-128 varint, high bit on all bytes but the
 * last; returns the bytes written (buffer has at least 10). */
static size_t put_varint(uint8_t *p, uint64_t v)
{
	size_t n = varint_len(v);

	for (size_t i = n; i-- > 0;) {
		p[i] = (uint8_t)((v & 0x7fu) | (i + 1 < n ? 0x80u : 0));
		v >>= 7;
	}
	return n;
}

static void put_be64(uint8_t *p, uint64_t x)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)x;
		x >>= 8;
	}
}

/* The parser's per-value rules for an INSERT's column c. */
static bool value_ok(const struct gs_column *c, const struct gs_cs_value *v)
{
	switch (v->type) {
	case GS_CS_NULL:
		return !(c->flags & (GS_COL_PK | GS_COL_NOTNULL));
	case GS_CS_INT:
		return c->type == GS_COL_INTEGER || c->type == GS_COL_REAL;
	case GS_CS_REAL:
		return c->type == GS_COL_REAL && !isnan(v->r);
	case GS_CS_TEXT:
		return c->type == GS_COL_TEXT &&
		       (v->len == 0 || v->p != NULL) && v->len <= INT32_MAX &&
		       (v->len == 0 || (memchr(v->p, 0, v->len) == NULL &&
					gs__utf8_valid(v->p, v->len)));
	case GS_CS_BLOB:
		return c->type == GS_COL_BLOB &&
		       (v->len == 0 || v->p != NULL) && v->len <= INT32_MAX;
	default:
		return false; /* undefined: an INSERT defines every column */
	}
}

size_t gs__cs_insert_size(const struct gs_table *t,
			  const struct gs_cs_value *vals)
{
	size_t n = 2; /* op, indirect */

	for (unsigned i = 0; i < t->n_cols; i++) {
		const struct gs_cs_value *v = &vals[i];

		if (!value_ok(&t->cols[i], v))
			return 0;
		if (v->type == GS_CS_INT || v->type == GS_CS_REAL)
			n += 9;
		else if (v->type == GS_CS_NULL)
			n += 1;
		else
			n += 1 + varint_len(v->len) + v->len;
	}
	return n;
}

int gs__cs_write_header(struct gs_buf *out, const struct gs_table *t)
{
	uint8_t head[1 + 10 + GS_CS_MAX_COLS];
	size_t n = 0;
	unsigned k = 0;
	int rc;

	if (t == NULL || t->n_cols == 0 || t->n_cols > GS_CS_MAX_COLS)
		return GS_EINVAL;
	head[n++] = (uint8_t)GS_CS_CHANGESET;
	n += put_varint(head + n, t->n_cols);
	/* Key byte: the column's 1-based position in the key, which the
	 * manifest declares in column order. */
	for (unsigned i = 0; i < t->n_cols; i++)
		head[n++] = (t->cols[i].flags & GS_COL_PK) ? (uint8_t)++k : 0;
	rc = gs__buf_reserve(out, n + strlen(t->name) + 1);
	if (rc != GS_OK)
		return rc;
	memcpy(out->data + out->len, head, n);
	out->len += n;
	memcpy(out->data + out->len, t->name, strlen(t->name) + 1);
	out->len += strlen(t->name) + 1;
	return GS_OK;
}

int gs__cs_write_insert(struct gs_buf *out,
			const struct gs_table *t,
			const struct gs_cs_value *vals)
{
	size_t need;
	uint8_t *p;
	int rc;

	if (t == NULL || vals == NULL)
		return GS_EINVAL;
	need = gs__cs_insert_size(t, vals);
	if (need == 0)
		return GS_EINVAL;
	rc = gs__buf_reserve(out, need);
	if (rc != GS_OK)
		return rc;
	p = out->data + out->len;
	*p++ = (uint8_t)GS_CS_INSERT;
	*p++ = 0;
	for (unsigned i = 0; i < t->n_cols; i++) {
		const struct gs_cs_value *v = &vals[i];
		uint64_t u;

		*p++ = v->type;
		switch (v->type) {
		case GS_CS_INT:
			memcpy(&u, &v->i, sizeof(u));
			put_be64(p, u);
			p += 8;
			break;
		case GS_CS_REAL:
			memcpy(&u, &v->r, sizeof(u));
			put_be64(p, u);
			p += 8;
			break;
		case GS_CS_TEXT:
		case GS_CS_BLOB:
			p += put_varint(p, v->len);
			if (v->len > 0)
				memcpy(p, v->p, v->len);
			p += v->len;
			break;
		default: /* NULL: the type byte alone */
			break;
		}
	}
	GS_ASSERT((size_t)(p - (out->data + out->len)) == need);
	out->len += need;
	return GS_OK;
}
