/*
 * Output for the gridsync CLI. Rows are collected per kind (household,
 * resident, ...), then printed: as one JSON document (an object whose
 * members are the kinds, each an array of row objects, plus any scalar
 * fields), as an aligned table (listings), or as "name: value" blocks
 * (show). Everything is built in memory: listings on a handheld are small.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

struct sbuf {
	char *data;
	size_t len;
	size_t cap;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->data, cap); /* checksrc: CLI, libc */
		if (p == NULL) {
			fputs("gridsync: out of memory\n", stderr);
			exit(CLI_FAIL);
		}
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void sb_str(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

static void sb_json(struct sbuf *b, const char *s)
{
	char esc[8];

	sb_add(b, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\') {
			esc[0] = '\\';
			esc[1] = (char)*p;
			sb_add(b, esc, 2);
		} else if (*p == '\n') {
			sb_add(b, "\\n", 2);
		} else if (*p < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", *p);
			sb_add(b, esc, 6);
		} else {
			sb_add(b, (const char *)p, 1);
		}
	}
	sb_add(b, "\"", 1);
}

#define MAX_KINDS 8
#define MAX_COLS  64

struct kind {
	char name[32];
	struct sbuf json; /* "{...},{...}" */
	int n_rows;
	/* Text: a table of cells. */
	int n_cols;
	char *cols[MAX_COLS];
	char **cells; /* n_rows * n_cols */
	size_t cells_cap;
};

struct printer {
	bool json;
	bool table;
	struct kind kinds[MAX_KINDS];
	int n_kinds;
	struct sbuf scalars_json;
	struct sbuf scalars_text;
};

struct printer *printer_new(bool json, bool table)
{
	struct printer *p = calloc(1, sizeof(*p)); /* checksrc: CLI */

	if (p == NULL) {
		fputs("gridsync: out of memory\n", stderr);
		exit(CLI_FAIL);
	}
	p->json = json;
	p->table = table;
	return p;
}

void printer_free(struct printer *p)
{
	if (p == NULL)
		return;
	for (int k = 0; k < p->n_kinds; k++) {
		struct kind *kd = &p->kinds[k];

		for (int c = 0; c < kd->n_cols; c++)
			free(kd->cols[c]);
		for (size_t i = 0; i < (size_t)kd->n_rows * (size_t)kd->n_cols;
		     i++)
			free(kd->cells[i]);
		free(kd->cells);
		free(kd->json.data);
	}
	free(p->scalars_json.data);
	free(p->scalars_text.data);
	free(p);
}

static struct kind *kind_get(struct printer *p, const char *name)
{
	for (int k = 0; k < p->n_kinds; k++)
		if (strcmp(p->kinds[k].name, name) == 0)
			return &p->kinds[k];
	if (p->n_kinds == MAX_KINDS)
		return NULL;
	snprintf(p->kinds[p->n_kinds].name, sizeof(p->kinds[0].name), "%s",
		 name);
	return &p->kinds[p->n_kinds++];
}

void printer_expect(struct printer *p, const char *kind)
{
	kind_get(p, kind);
}

/* The display text of value i (caller frees). */
static char *cell_text(const struct gs_row *row, int i)
{
	char tmp[64];
	const char *t;

	switch (gs_row_type(row, i)) {
	case 0:
		return strdup("-"); /* checksrc: CLI */
	case 4:
		snprintf(tmp, sizeof(tmp), "(encrypted, %d bytes)",
			 gs_row_bytes(row, i));
		return strdup(tmp); /* checksrc: CLI */
	default:
		t = gs_row_text(row, i);
		return strdup(t != NULL ? t : ""); /* checksrc: CLI */
	}
}

int printer_row(const struct gs_row *row, void *payload)
{
	struct printer *p = payload;
	struct kind *kd = kind_get(p, gs_row_kind(row));
	int n = gs_row_count(row);

	if (kd == NULL)
		return 0;
	if (n > MAX_COLS)
		n = MAX_COLS;
	/* JSON object. */
	if (kd->n_rows > 0)
		sb_add(&kd->json, ",", 1);
	sb_add(&kd->json, "{", 1);
	for (int i = 0; i < n; i++) {
		char *v;

		if (i > 0)
			sb_add(&kd->json, ",", 1);
		sb_json(&kd->json, gs_row_name(row, i));
		sb_add(&kd->json, ":", 1);
		switch (gs_row_type(row, i)) {
		case 0:
			sb_str(&kd->json, "null");
			break;
		case 1:
		case 2:
			sb_str(&kd->json, gs_row_text(row, i));
			break;
		default:
			v = cell_text(row, i);
			sb_json(&kd->json, v);
			free(v);
		}
	}
	sb_add(&kd->json, "}", 1);
	/* Text cells. */
	if (kd->n_rows == 0) {
		kd->n_cols = n;
		for (int i = 0; i < n; i++)
			kd->cols[i] = strdup(gs_row_name(row, i)); /* CLI */
	}
	if ((size_t)(kd->n_rows + 1) * (size_t)kd->n_cols > kd->cells_cap) {
		size_t cap = kd->cells_cap ? kd->cells_cap * 2 : 64;
		char **cells;

		while (cap < (size_t)(kd->n_rows + 1) * (size_t)kd->n_cols)
			cap *= 2;
		cells = realloc(kd->cells, cap * sizeof(*cells)); /* CLI */
		if (cells == NULL) {
			fputs("gridsync: out of memory\n", stderr);
			exit(CLI_FAIL);
		}
		kd->cells = cells;
		kd->cells_cap = cap;
	}
	for (int i = 0; i < kd->n_cols; i++)
		kd->cells[(size_t)kd->n_rows * (size_t)kd->n_cols + (size_t)i] =
			i < n ? cell_text(row, i)
			      : strdup(""); /* checksrc: CLI */
	kd->n_rows++;
	return 0;
}

void printer_field(struct printer *p,
		   const char *name,
		   const char *value,
		   bool quoted)
{
	if (p->scalars_json.len > 0)
		sb_add(&p->scalars_json, ",", 1);
	sb_json(&p->scalars_json, name);
	sb_add(&p->scalars_json, ":", 1);
	if (value == NULL)
		sb_str(&p->scalars_json, "null");
	else if (quoted)
		sb_json(&p->scalars_json, value);
	else
		sb_str(&p->scalars_json, value);
	sb_str(&p->scalars_text, name);
	sb_str(&p->scalars_text, ": ");
	sb_str(&p->scalars_text, value != NULL ? value : "-");
	sb_str(&p->scalars_text, "\n");
}

/* Display width: CJK characters take two columns in a terminal. */
static size_t width(const char *s)
{
	size_t w = 0;

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p & 0xc0) == 0x80)
			continue;
		w += *p >= 0xe0 ? 2 : 1;
	}
	return w;
}

static void print_table(struct kind *kd, FILE *out)
{
	size_t w[MAX_COLS];

	for (int c = 0; c < kd->n_cols; c++) {
		w[c] = width(kd->cols[c]);
		for (int r = 0; r < kd->n_rows; r++) {
			size_t x =
				width(kd->cells[(size_t)r * (size_t)kd->n_cols +
						(size_t)c]);
			if (x > w[c])
				w[c] = x > 40 ? 40 : x;
		}
	}
	for (int r = -1; r < kd->n_rows; r++) {
		for (int c = 0; c < kd->n_cols; c++) {
			const char *s =
				r < 0 ? kd->cols[c]
				      : kd->cells[(size_t)r *
							  (size_t)kd->n_cols +
						  (size_t)c];
			size_t sw = width(s);

			size_t pad = sw < w[c] ? w[c] - sw + 2 : 2;

			fputs(s, out);
			if (c + 1 < kd->n_cols)
				for (size_t k = 0; k < pad; k++)
					fputc(' ', out);
		}
		fputc('\n', out);
	}
}

static void print_blocks(struct kind *kd, FILE *out)
{
	for (int r = 0; r < kd->n_rows; r++) {
		fprintf(out, "[%s]\n", kd->name);
		for (int c = 0; c < kd->n_cols; c++)
			fprintf(out, "  %s: %s\n", kd->cols[c],
				kd->cells[(size_t)r * (size_t)kd->n_cols +
					  (size_t)c]);
	}
}

void printer_flush(struct printer *p, FILE *out)
{
	if (p->json) {
		bool first = true;

		fputc('{', out);
		if (p->scalars_json.len > 0) {
			fputs(p->scalars_json.data, out);
			first = false;
		}
		for (int k = 0; k < p->n_kinds; k++) {
			fprintf(out, "%s\"%s\":[%s]", first ? "" : ",",
				p->kinds[k].name,
				p->kinds[k].json.data ? p->kinds[k].json.data
						      : "");
			first = false;
		}
		fputs("}\n", out);
		return;
	}
	if (p->scalars_text.len > 0)
		fputs(p->scalars_text.data, out);
	for (int k = 0; k < p->n_kinds; k++) {
		if (p->table)
			print_table(&p->kinds[k], out);
		else
			print_blocks(&p->kinds[k], out);
	}
}
