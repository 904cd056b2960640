/*
 * gs_inspect and `gridsync inspect`: real outbox changesets decoded row by
 * row (table, operation, key, old and new values, Chinese text, NULLs,
 * reals, blobs by size), single frames and captures of every message type
 * built with the wire encoder (zstd entries inflated), JSON output that
 * parses, and invalid input (the malformed corpus, the 8-byte SQLite hang,
 * damaged frames) refused in under 10 ms with the validator's offset and
 * no output at all. Also `gridsync outbox` on a database whose outbox
 * holds the 8-byte hang: it must list it as invalid, not spin.
 */
#include <dirent.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gridsync/changeset.h>
#include <gridsync/client_internal.h>
#include <gridsync/gridsync.h>
#include <gridsync/inspect.h>
#include <gridsync/wire.h>

#include "gs_test.h"

/* SQLite 3.40.1 spins forever on this (DESIGN.md trap 1). */
static const uint8_t trap8[] = {
	0x54, 0x04, 0x01, 0x00, 0x00, 0x00, 0x54, 0x04
};

static const char note[] = "独居老人，行动不便\n需协助代购药品";

struct fx {
	struct gs_ctx *ctx;
	char *dir;
	struct gs_device *dev;
	char household[GS_ID_LEN];
	char resident[GS_ID_LEN];
	char visit[GS_ID_LEN];
	/* Outbox entries 1..3: household edit, resident add, visit add. */
	uint8_t *cs[3];
	size_t cs_len[3];
};

/* ---- output capture and a small JSON checker -------------------------- */

struct text {
	char *p;
	size_t len;
	size_t cap;
	int calls;
};

static int collect(const char *s, size_t n, void *payload)
{
	struct text *t = payload;

	if (t->len + n + 1 > t->cap) {
		t->cap = (t->len + n + 1) * 2;
		t->p = realloc(t->p, t->cap);
		assert_non_null(t->p);
	}
	memcpy(t->p + t->len, s, n);
	t->len += n;
	t->p[t->len] = '\0';
	t->calls++;
	return 0;
}

static void text_free(struct text *t)
{
	free(t->p);
	memset(t, 0, sizeof(*t));
}

static int inspect(struct fx *f,
		   struct text *t,
		   const uint8_t *data,
		   size_t len,
		   unsigned flags)
{
	text_free(t);
	return gs_inspect(f->ctx, data, len, flags, collect, t);
}

/* A strict recursive-descent JSON checker: true if s[*i..] is one value. */
static bool j_value(const char *s, size_t *i, int depth);

static void j_ws(const char *s, size_t *i)
{
	while (s[*i] == ' ' || s[*i] == '\n' || s[*i] == '\t' || s[*i] == '\r')
		(*i)++;
}

static bool j_string(const char *s, size_t *i)
{
	if (s[*i] != '"')
		return false;
	for ((*i)++; s[*i] != '"'; (*i)++) {
		if ((unsigned char)s[*i] < 0x20)
			return false;
		if (s[*i] == '\\') {
			(*i)++;
			if (s[*i] == 'u') {
				for (int k = 1; k <= 4; k++)
					if (strchr("0123456789abcdefABCDEF",
						   s[*i + k]) == NULL ||
					    s[*i + k] == '\0')
						return false;
				*i += 4;
			} else if (strchr("\"\\/bfnrt", s[*i]) == NULL ||
				   s[*i] == '\0') {
				return false;
			}
		}
	}
	(*i)++;
	return true;
}

static bool j_number(const char *s, size_t *i)
{
	size_t start = *i;

	if (s[*i] == '-')
		(*i)++;
	if (s[*i] < '0' || s[*i] > '9')
		return false;
	while (strchr("0123456789.eE+-", s[*i]) != NULL && s[*i] != '\0')
		(*i)++;
	return strtod(s + start, NULL) == strtod(s + start, NULL); /* !NaN */
}

static bool j_value(const char *s, size_t *i, int depth)
{
	if (depth > 64)
		return false;
	j_ws(s, i);
	if (s[*i] == '{' || s[*i] == '[') {
		char close = s[*i] == '{' ? '}' : ']';
		bool obj = close == '}';

		(*i)++;
		j_ws(s, i);
		if (s[*i] == close) {
			(*i)++;
			return true;
		}
		for (;;) {
			if (obj) {
				j_ws(s, i);
				if (!j_string(s, i))
					return false;
				j_ws(s, i);
				if (s[(*i)++] != ':')
					return false;
			}
			if (!j_value(s, i, depth + 1))
				return false;
			j_ws(s, i);
			if (s[*i] == ',') {
				(*i)++;
				continue;
			}
			if (s[*i] != close)
				return false;
			(*i)++;
			return true;
		}
	}
	if (s[*i] == '"')
		return j_string(s, i);
	if (strncmp(s + *i, "true", 4) == 0 ||
	    strncmp(s + *i, "null", 4) == 0) {
		*i += 4;
		return true;
	}
	if (strncmp(s + *i, "false", 5) == 0) {
		*i += 5;
		return true;
	}
	return j_number(s, i);
}

/* One JSON document and nothing else but a final newline. */
static void assert_json(const char *s)
{
	size_t i = 0;

	assert_non_null(s);
	if (!j_value(s, &i, 0))
		fail_msg("not JSON at byte %zu: %.80s", i, s + i);
	assert_string_equal(s + i, "\n");
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = strstr(hay, needle); p != NULL;
	     p = strstr(p + 1, needle))
		n++;
	return n;
}

#define assert_has(hay, needle)                                              \
	do {                                                                 \
		if (strstr((hay), (needle)) == NULL)                         \
			fail_msg("missing \"%s\" in:\n%s", (needle), (hay)); \
	} while (0)

/* ---- fixture: a demo device with three outbox entries ---------------- */

static int first_household(const struct gs_row *row, void *payload)
{
	snprintf(payload, GS_ID_LEN, "%s", gs_row_get(row, "id"));
	return 1;
}

static int setup(void **state)
{
	struct gs_device_init_opts io = GS_DEVICE_INIT_OPTS_INIT;
	struct gs_visit_opts vo = GS_VISIT_OPTS_INIT;
	struct fx *f = calloc(1, sizeof(*f));
	struct gs_field hf[3] = { { "size", "3" },
				  { "note", note },
				  { "tenure", NULL } };
	struct gs_field rf[3];

	assert_non_null(f);
	f->ctx = gs_test_ctx_new(NULL);
	f->dir = gs_test_tmpdir();
	io.device_id = "dev-inspect-1";
	io.insecure = 1;
	io.demo = 1;
	assert_gs_ok(gs_device_init(&f->dev, f->ctx,
				    gs_test_path(f->dir, "d.db"), &io));
	assert_int_equal(
		gs_household_list(f->dev, first_household, f->household), 1);
	assert_gs_ok(gs_household_edit(f->dev, f->household, hf, 3));
	rf[0] = (struct gs_field){ "household_id", f->household };
	rf[1] = (struct gs_field){ "name", "王秀英" };
	rf[2] = (struct gs_field){ "birth_date", NULL };
	assert_gs_ok(gs_resident_add(f->dev, f->resident, rf, 3));
	vo.household_id = f->household;
	vo.kind = "routine";
	vo.outcome = "met";
	vo.summary = "入户走访，情况稳定";
	vo.lat = 30.5;
	vo.lng = 104.0625;
	vo.has_location = 1;
	assert_gs_ok(gs_visit_add(f->dev, f->visit, &vo));
	for (int i = 0; i < 3; i++)
		assert_gs_ok(gs_outbox_get(f->dev, (uint64_t)i + 1, &f->cs[i],
					   &f->cs_len[i]));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	for (int i = 0; i < 3; i++)
		gs_free(f->ctx, f->cs[i]);
	gs_device_close(f->dev);
	gs_ctx_free(f->ctx);
	gs_test_tmpdir_free(f->dir);
	free(f);
	return 0;
}

/* The line of t that starts with prefix (after indentation), or NULL. */
static const char *line_of(const char *t, const char *prefix, char *buf)
{
	for (const char *p = t; p != NULL && *p != '\0';) {
		const char *end = strchr(p, '\n');
		const char *q = p;

		while (*q == ' ')
			q++;
		if (strncmp(q, prefix, strlen(prefix)) == 0) {
			size_t n = end != NULL ? (size_t)(end - q) : strlen(q);

			memcpy(buf, q, n);
			buf[n] = '\0';
			return buf;
		}
		p = end != NULL ? end + 1 : NULL;
	}
	return NULL;
}

/* ---- changesets -------------------------------------------------------- */

static void outbox_changesets_decode_as_text(void **state)
{
	struct fx *f = *state;
	struct text t = { 0 };
	char want[256];
	char line[1024];
	size_t n;

	/* The household edit: an UPDATE with old -> new per changed column. */
	assert_gs_ok(inspect(f, &t, f->cs[0], f->cs_len[0], 0));
	snprintf(want, sizeof(want), "changeset: %zu bytes, 1 row\n",
		 f->cs_len[0]);
	assert_true(strncmp(t.p, want, strlen(want)) == 0);
	snprintf(want, sizeof(want), "  #1 household UPDATE id=%s (byte ",
		 f->household);
	assert_has(t.p, want);
	assert_non_null(line_of(t.p, "size: ", line));
	n = strlen(line);
	assert_true(n > 4 && strcmp(line + n - 4, "-> 3") == 0);
	/* Personal text is shown (never logged), newline escaped. */
	assert_non_null(line_of(t.p, "note: ", line));
	assert_has(line, "-> 独居老人，行动不便\\n需协助代购药品");
	/* Set to NULL: shown as such (absent if it was NULL already). */
	if (line_of(t.p, "tenure: ", line) != NULL)
		assert_string_equal(line + strlen(line) - 7, "-> NULL");
	/* The key is on the title line, not repeated as a change. */
	assert_null(line_of(t.p, "id: ", line));

	/* The resident: an INSERT, every column "name: value". */
	assert_gs_ok(inspect(f, &t, f->cs[1], f->cs_len[1], 0));
	snprintf(want, sizeof(want), "#1 resident INSERT id=%s (byte ",
		 f->resident);
	assert_has(t.p, want);
	snprintf(want, sizeof(want), "\n    id: %s\n", f->resident);
	assert_has(t.p, want);
	assert_has(t.p, "\n    name: 王秀英\n");
	assert_has(t.p, "\n    birth_date: NULL\n");
	assert_has(t.p, "\n    deleted: 0\n");

	/* The visit: reals keep a decimal point. */
	assert_gs_ok(inspect(f, &t, f->cs[2], f->cs_len[2], 0));
	assert_has(t.p, "visit INSERT id=");
	assert_has(t.p, "\n    lat: 30.5\n");
	assert_has(t.p, "\n    lng: 104.0625\n");
	assert_has(t.p, "\n    summary: 入户走访，情况稳定\n");
	assert_has(t.p, "\n    kind: routine\n");
	text_free(&t);
}

static void outbox_changesets_decode_as_json(void **state)
{
	struct fx *f = *state;
	struct text t = { 0 };
	struct gs_cs *cs = NULL;
	char want[256];

	assert_gs_ok(inspect(f, &t, f->cs[0], f->cs_len[0], GS_INSPECT_JSON));
	assert_json(t.p);
	snprintf(want, sizeof(want), "{\"kind\":\"changeset\",\"bytes\":%zu,",
		 f->cs_len[0]);
	assert_true(strncmp(t.p, want, strlen(want)) == 0);
	assert_has(t.p, "\"n_rows\":1,\"rows\":[{\"table\":\"household\","
			"\"op\":\"UPDATE\",\"indirect\":false,\"offset\":");
	snprintf(want, sizeof(want), "\"pk\":{\"id\":\"%s\"}", f->household);
	assert_has(t.p, want);
	assert_has(t.p, "\"new\":3}");
	assert_has(t.p, "{\"name\":\"note\",\"old\":");
	assert_has(t.p, "\"new\":\"独居老人，行动不便\\n需协助代购药品\","
			"\"personal\":true}");
	assert_has(t.p, "\"new\":null}");

	/* As many row objects as the parser finds rows, for every entry. */
	for (int i = 0; i < 3; i++) {
		assert_gs_ok(inspect(f, &t, f->cs[i], f->cs_len[i],
				     GS_INSPECT_JSON));
		assert_json(t.p);
		assert_gs_ok(gs__cs_parse(&cs, NULL, f->ctx, f->cs[i],
					  f->cs_len[i], NULL));
		assert_int_equal(count(t.p, "{\"table\":"), cs->n_rows);
		snprintf(want, sizeof(want), "\"n_rows\":%zu,", cs->n_rows);
		assert_has(t.p, want);
		gs__cs_free(cs);
		cs = NULL;
	}
	assert_has(t.p, "{\"name\":\"lat\",\"new\":30.5,\"personal\":true}");
	text_free(&t);
}

/* ---- frames ------------------------------------------------------------ */

struct frames {
	struct gs_buf b;
	size_t off[16]; /* offset of each frame */
	size_t n;
	struct gs_buf z; /* the compressed visit changeset */
};

static void add(struct frames *fr, const struct gs_msg *m)
{
	fr->off[fr->n++] = fr->b.len;
	assert_gs_ok(gs__msg_encode(&fr->b, m, NULL));
}

/* Every message type once: hello, welcome, push (a plain and a zstd
 * entry), push_ack, pull, changes, ping, pong, error. */
static void build_stream(struct fx *f, struct frames *fr)
{
	static const char *const scope[] = { "510106001001", "510106001002" };
	static const uint8_t blob[] = { 1, 2, 3, 4, 5 };
	enum gs_compression comp;
	struct gs_push_entry pe[2];
	struct gs_push_result res[2];
	struct gs_conflict con[1];
	struct gs_change ch[2];
	struct gs_msg m;

	memset(fr, 0, sizeof(*fr));
	gs__buf_init(&fr->b, f->ctx, 1u << 24);
	gs__buf_init(&fr->z, f->ctx, 1u << 20);
	assert_gs_ok(gs__changeset_pack(&fr->z, &comp, NULL, f->cs[2],
					f->cs_len[2]));
	assert_int_equal(comp, GS_COMP_ZSTD);

	memset(&m, 0, sizeof(m));
	m.type = GS_MSG_HELLO;
	m.u.hello = (struct gs_msg_hello){
		1,           1,    "dev-inspect-1", 1, "gridsync/0.1.0", 41,
		GS_SUITE_V1, NULL, false,           0
	};
	add(fr, &m);
	m.type = GS_MSG_WELCOME;
	m.u.welcome = (struct gs_msg_welcome){
		1,
		"srv-510106",
		1767225600000ull,
		scope,
		2,
		{ GS_FRAME_MAX_DEFAULT, 1000, 1u << 20 },
		1,
		GS_SUITE_V1,
		false,
		0,
		0,
		0,
		0,
	};
	add(fr, &m);

	memset(pe, 0, sizeof(pe));
	pe[0].device_seq = 1;
	pe[0].hlc = 0x01a2202e99240000ull;
	pe[0].changeset = f->cs[0];
	pe[0].changeset_len = f->cs_len[0];
	gs__sha256(pe[0].sha256, f->cs[0], f->cs_len[0]);
	pe[0].compression = GS_COMP_NONE;
	pe[0].uncompressed_len = (uint32_t)f->cs_len[0];
	pe[1].device_seq = 3;
	pe[1].hlc = 0x01a2202e993a0000ull;
	pe[1].changeset = fr->z.data;
	pe[1].changeset_len = fr->z.len;
	gs__sha256(pe[1].sha256, f->cs[2], f->cs_len[2]);
	pe[1].compression = GS_COMP_ZSTD;
	pe[1].uncompressed_len = (uint32_t)f->cs_len[2];
	memset(&m, 0, sizeof(m));
	m.type = GS_MSG_PUSH;
	m.u.push = (struct gs_msg_push){ 1, pe, 2 };
	add(fr, &m);

	res[0] = (struct gs_push_result){
		1, GS_RESULT_APPLIED, GS_REJECT_NONE, NULL, false, false, false,
		0
	};
	res[1] = (struct gs_push_result){ 3,
					  GS_RESULT_REJECTED,
					  GS_REJECT_DENIED,
					  "outside scope",
					  false,
					  false,
					  false,
					  0 };
	con[0] = (struct gs_conflict){
		1,
		"household",
		f->household,
		"phone_enc",
		{ "srv-510106", 0x01a2202e99250000ull, GS_VALUE_BLOB, blob,
		  sizeof(blob) },
		{ "dev-inspect-1", 0x01a2202e99240000ull, GS_VALUE_TEXT,
		  (const uint8_t *)"已搬离", strlen("已搬离") },
		0,
	};
	memset(&m, 0, sizeof(m));
	m.type = GS_MSG_PUSH_ACK;
	m.u.push_ack = (struct gs_msg_push_ack){ 3, res, 2, con, 1 };
	add(fr, &m);

	memset(&m, 0, sizeof(m));
	m.type = GS_MSG_PULL;
	m.u.pull = (struct gs_msg_pull){ 1000, 1u << 20, 0 };
	add(fr, &m);

	ch[0] = (struct gs_change){ 1001,
				    0x01a2202e99300000ull,
				    "dev-other",
				    f->cs[1],
				    f->cs_len[1],
				    GS_COMP_NONE,
				    (uint32_t)f->cs_len[1] };
	ch[1] = (struct gs_change){ 1002,
				    0x01a2202e99310000ull,
				    "srv-510106",
				    fr->z.data,
				    fr->z.len,
				    GS_COMP_ZSTD,
				    (uint32_t)f->cs_len[2] };
	memset(&m, 0, sizeof(m));
	m.type = GS_MSG_CHANGES;
	m.u.changes = (struct gs_msg_changes){ 1,    ch, 2,    1002, false,
					       NULL, 0,  NULL, 0 };
	add(fr, &m);

	memset(&m, 0, sizeof(m));
	m.type = GS_MSG_PING;
	m.u.ping =
		(struct gs_msg_ping){ 0x0123456789abcdefull, 1767225600123ull };
	add(fr, &m);
	m.type = GS_MSG_PONG;
	add(fr, &m);
	memset(&m, 0, sizeof(m));
	m.type = GS_MSG_ERROR;
	m.u.error =
		(struct gs_msg_error){ GS_WIRE_ERR_BUSY, "server busy", 5000 };
	add(fr, &m);
}

static void frames_free(struct frames *fr)
{
	gs__buf_fini(&fr->b);
	gs__buf_fini(&fr->z);
}

static void single_frame_decodes(void **state)
{
	struct fx *f = *state;
	struct frames fr;
	struct text t = { 0 };
	size_t len;

	build_stream(f, &fr);
	len = fr.off[1];
	assert_gs_ok(inspect(f, &t, fr.b.data, len, 0));
	assert_true(strncmp(t.p, "frame: ", 7) == 0);
	assert_has(t.p, ", 1 frame\n");
	assert_has(t.p, "frame 1 at byte 0 (");
	assert_has(t.p, "): hello\n");
	assert_has(t.p, "\n  device_id: dev-inspect-1\n");
	assert_has(t.p, "\n  cursor: 41\n");

	assert_gs_ok(inspect(f, &t, fr.b.data, len, GS_INSPECT_JSON));
	assert_json(t.p);
	assert_has(t.p, "{\"kind\":\"frame\",");
	assert_has(t.p, "\"n_frames\":1,\"frames\":[{\"index\":1,"
			"\"offset\":0,");
	assert_has(t.p, "\"type\":\"hello\",\"proto_min\":1,\"proto_max\":1,"
			"\"device_id\":\"dev-inspect-1\"");

	/* A Push alone: its entries' changesets decoded, zstd inflated. */
	assert_gs_ok(inspect(f, &t, fr.b.data + fr.off[2],
			     fr.off[3] - fr.off[2], 0));
	assert_has(t.p, "): push\n");
	assert_has(t.p, "  entry 1:\n    device_seq: 1\n");
	assert_has(t.p, "    compression: zstd\n");
	assert_has(t.p, "household UPDATE id=");
	assert_has(t.p, "visit INSERT id=");
	assert_has(t.p, "        lat: 30.5\n");
	text_free(&t);
	frames_free(&fr);
}

static void stream_of_frames_decodes(void **state)
{
	static const char *const types[] = { "hello",    "welcome", "push",
					     "push_ack", "pull",    "changes",
					     "ping",     "pong",    "error" };
	struct fx *f = *state;
	struct frames fr;
	struct text t = { 0 };
	char want[128];

	build_stream(f, &fr);
	assert_int_equal(fr.n, 9);
	assert_gs_ok(inspect(f, &t, fr.b.data, fr.b.len, 0));
	snprintf(want, sizeof(want), "stream: %zu bytes, 9 frames\n", fr.b.len);
	assert_true(strncmp(t.p, want, strlen(want)) == 0);
	for (size_t i = 0; i < fr.n; i++) {
		snprintf(want, sizeof(want),
			 "frame %zu at byte %zu (%zu bytes): %s\n", i + 1,
			 fr.off[i],
			 (i + 1 < fr.n ? fr.off[i + 1] : fr.b.len) - fr.off[i] -
				 4,
			 types[i]);
		assert_has(t.p, want);
	}
	assert_has(t.p, "  scope: 510106001001, 510106001002\n");
	assert_has(t.p, "  server_time: 2026-01-01T00:00:00.000Z\n");
	assert_has(t.p, "    result: rejected\n    reject_code: denied\n"
			"    reason: outside scope\n");
	assert_has(t.p, "    winner:\n      device_id: srv-510106\n");
	assert_has(t.p, "      value: (5 bytes)\n");
	assert_has(t.p, "      value: 已搬离\n");
	assert_has(t.p, "    origin: dev-other\n");
	assert_has(t.p, "  next_cursor: 1002\n  more: false\n");
	assert_has(t.p, "  nonce: 0123456789abcdef\n");
	assert_has(t.p, "  code: busy\n  message: server busy\n"
			"  retry_after_ms: 5000\n");
	/* Push (2 entries) and Changes (2 entries) each decoded. */
	assert_int_equal(count(t.p, "visit INSERT id="), 2);
	assert_int_equal(count(t.p, "household UPDATE id="), 1);
	assert_int_equal(count(t.p, "resident INSERT id="), 1);

	assert_gs_ok(inspect(f, &t, fr.b.data, fr.b.len, GS_INSPECT_JSON));
	assert_json(t.p);
	snprintf(want, sizeof(want),
		 "{\"kind\":\"stream\",\"bytes\":%zu,\"n_frames\":9,"
		 "\"frames\":[",
		 fr.b.len);
	assert_true(strncmp(t.p, want, strlen(want)) == 0);
	for (size_t i = 0; i < fr.n; i++) {
		snprintf(want, sizeof(want), "\"type\":\"%s\"", types[i]);
		assert_int_equal(count(t.p, want), 1);
	}
	assert_has(t.p, "\"scope\":[\"510106001001\",\"510106001002\"]");
	assert_has(t.p, "\"value\":{\"bytes\":5}");
	assert_has(t.p, "\"compression\":\"zstd\"");
	assert_int_equal(count(t.p, "\"kind\":\"changeset\""), 4);
	assert_int_equal(count(t.p, "{\"table\":\"visit\""), 2);
	text_free(&t);
	frames_free(&fr);
}

/* No output at all, an offset in the message, and quickly. */
static void assert_refused(struct fx *f,
			   const uint8_t *data,
			   size_t len,
			   unsigned flags,
			   const char *want)
{
	struct text t = { 0 };
	struct timespec a;
	struct timespec b;
	double ms;
	int rc;

	clock_gettime(CLOCK_MONOTONIC, &a);
	rc = gs_inspect(f->ctx, data, len, flags, collect, &t);
	clock_gettime(CLOCK_MONOTONIC, &b);
	ms = (double)(b.tv_sec - a.tv_sec) * 1e3 +
	     (double)(b.tv_nsec - a.tv_nsec) / 1e6;
	if (rc != GS_EPROTO)
		fail_msg("%s: %s, want GS_EPROTO (%s)", want, gs_errname(rc),
			 gs_ctx_errmsg(f->ctx));
	assert_int_equal(t.calls, 0);
	if (strstr(gs_ctx_errmsg(f->ctx), want) == NULL)
		fail_msg("message \"%s\" lacks \"%s\"", gs_ctx_errmsg(f->ctx),
			 want);
	if (ms >= 1000.0) /* a hang detector, not a timing */
		fail_msg("%s took %.2f ms", want, ms);
	text_free(&t);
}

static void bad_frames_are_refused_with_their_offset(void **state)
{
	struct fx *f = *state;
	struct frames fr;
	struct gs_push_entry pe;
	struct gs_msg m;
	struct gs_buf b;
	char want[160];
	static const uint8_t zero[4] = { 0, 0, 0, 0 };
	static const uint8_t text[] = "SQLite format 3";

	build_stream(f, &fr);
	/* A capture cut inside its last frame. */
	snprintf(want, sizeof(want),
		 "frame 9 at byte %zu: the input ends inside it", fr.off[8]);
	assert_refused(f, fr.b.data, fr.b.len - 3, 0, want);
	snprintf(want, sizeof(want),
		 "frame 9 at byte %zu: the input ends inside its 4-byte "
		 "length",
		 fr.off[8]);
	assert_refused(f, fr.b.data, fr.off[8] + 2, 0, want);
	/* A damaged envelope in frame 5 (its body rewritten). */
	fr.b.data[fr.off[4] + 4] = 0xff;
	snprintf(want, sizeof(want), "frame 5 at byte %zu: wire:", fr.off[4]);
	assert_refused(f, fr.b.data, fr.b.len, 0, want);
	assert_refused(f, zero, sizeof(zero), 0,
		       "frame 1 at byte 0: frame: zero length");
	assert_refused(f, text, sizeof(text) - 1, 0,
		       "not a changeset (first byte 'T'), patchset ('P') or "
		       "frame capture: frame 1 at byte 0");
	assert_refused(f, (const uint8_t *)"", 0, 0, "empty input");

	/* Push entries: the 8-byte hang inside, then a wrong hash. */
	gs__buf_init(&b, f->ctx, 1u << 20);
	memset(&pe, 0, sizeof(pe));
	pe.device_seq = 7;
	pe.changeset = trap8;
	pe.changeset_len = sizeof(trap8);
	gs__sha256(pe.sha256, trap8, sizeof(trap8));
	pe.uncompressed_len = sizeof(trap8);
	memset(&m, 0, sizeof(m));
	m.type = GS_MSG_PUSH;
	m.u.push = (struct gs_msg_push){ 1, &pe, 1 };
	assert_gs_ok(gs__msg_encode(&b, &m, NULL));
	assert_refused(f, b.data, b.len, 0,
		       "frame 1 at byte 0: push entry device_seq 7: changeset: "
		       "NAME_NOT_TERMINATED at byte 6");
	b.len = 0;
	pe.changeset = f->cs[0];
	pe.changeset_len = f->cs_len[0];
	pe.uncompressed_len = (uint32_t)f->cs_len[0];
	assert_gs_ok(gs__msg_encode(&b, &m, NULL));
	assert_refused(f, b.data, b.len, 0,
		       "frame 1 at byte 0: push entry device_seq 7: changeset: "
		       "sha256 mismatch");
	gs__buf_fini(&b);
	frames_free(&fr);
}

/* ---- the malformed corpus ----------------------------------------------- */

struct expected {
	char name[128];
	char reason[64];   /* of a line without options, or "" */
	bool options_only; /* every line narrows the options */
};

static size_t read_expected(struct expected *ex, size_t cap)
{
	char path[4096];
	char line[512];
	size_t n = 0;
	FILE *fp;

	snprintf(path, sizeof(path), "%s/tests/data/malformed/EXPECTED",
		 gs_test_srcdir());
	fp = fopen(path, "r");
	assert_non_null(fp);
	while (fgets(line, sizeof(line), fp) != NULL) {
		char *save = NULL;
		char *name = strtok_r(line, " \n", &save);
		char *reason = strtok_r(NULL, " \n", &save);
		bool opt = strtok_r(NULL, " \n", &save) != NULL;
		size_t i;

		if (name == NULL || name[0] == '#' || reason == NULL)
			continue;
		for (i = 0; i < n && strcmp(ex[i].name, name) != 0; i++)
			;
		if (i == n) {
			assert_true(n < cap);
			memset(&ex[n], 0, sizeof(ex[n]));
			snprintf(ex[n].name, sizeof(ex[n].name), "%s", name);
			ex[n].options_only = true;
			n++;
		}
		if (!opt) {
			snprintf(ex[i].reason, sizeof(ex[i].reason), "%s",
				 reason);
			ex[i].options_only = false;
		}
	}
	fclose(fp);
	return n;
}

static size_t slurp(const char *path, uint8_t *buf, size_t cap)
{
	FILE *fp = fopen(path, "rb");
	size_t n;

	if (fp == NULL)
		fail_msg("cannot open %s", path);
	n = fread(buf, 1, cap, fp);
	fclose(fp);
	return n;
}

/*
 * Every corpus file, in both modes. As an upload (GS_INSPECT_UPLOAD, the
 * corpus' default options) each file with an option-free EXPECTED line is
 * refused with that reason and the validator's offset; only the files
 * that are malformed solely under narrowed options (a lower row or size
 * limit, a smaller allowlist, patchset expected) are accepted. In the
 * default mode (any table, either kind) a file is refused with exactly
 * the offset the validator reports under those options, or accepted
 * exactly when the validator accepts it.
 */
static void malformed_corpus_is_refused_quickly(void **state)
{
	static struct expected ex[256];
	static uint8_t buf[1u << 20];
	struct fx *f = *state;
	char dir[4096];
	char want[256];
	size_t n_ex = read_expected(ex, 256);
	size_t n_files = 0;
	size_t n_refused = 0;
	struct dirent *de;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/tests/data/malformed", gs_test_srcdir());
	d = opendir(dir);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		struct gs_cs_opts o = GS_CS_OPTS_INIT;
		struct gs_cs_error err;
		struct expected *e = NULL;
		struct text t = { 0 };
		size_t len;
		int rc;

		if (strlen(de->d_name) < 4 ||
		    strcmp(de->d_name + strlen(de->d_name) - 3, ".cs") != 0)
			continue;
		for (size_t i = 0; i < n_ex; i++)
			if (strcmp(ex[i].name, de->d_name) == 0)
				e = &ex[i];
		if (e == NULL)
			fail_msg("%s is not in EXPECTED", de->d_name);
		len = slurp(gs_test_path(dir, de->d_name), buf, sizeof(buf));
		n_files++;

		/* As an upload: the corpus' default options. */
		rc = gs__cs_check(&err, NULL, buf, len, &o);
		if (!e->options_only)
			assert_string_equal(gs__cs_reason_name(err.reason),
					    e->reason);
		if (rc == GS_OK) {
			assert_true(e->options_only);
			rc = gs_inspect(f->ctx, buf, len, GS_INSPECT_UPLOAD,
					collect, &t);
			if (rc != GS_OK)
				fail_msg("%s: %s", de->d_name,
					 gs_ctx_errmsg(f->ctx));
			text_free(&t);
		} else {
			snprintf(want, sizeof(want), "%s at byte %zu%s%s",
				 gs__cs_reason_name(err.reason), err.offset,
				 err.table != NULL ? " in table " : "",
				 err.table != NULL ? err.table->name : "");
			assert_refused(f, buf, len, GS_INSPECT_UPLOAD, want);
			n_refused++;
		}

		/* As anything. */
		if (len > 0 && (buf[0] == 'T' || buf[0] == 'P')) {
			o.kind = buf[0];
			o.allow = GS_CS_ALLOW_ALL;
			o.max_bytes = o.max_rows = o.max_value =
				GS_INSPECT_MAX_INPUT;
			rc = gs__cs_check(&err, NULL, buf, len, &o);
			if (rc == GS_OK) {
				assert_gs_ok(gs_inspect(f->ctx, buf, len, 0,
							collect, &t));
				assert_true(t.calls > 0);
				text_free(&t);
				continue;
			}
			snprintf(want, sizeof(want), "%s at byte %zu%s%s",
				 gs__cs_reason_name(err.reason), err.offset,
				 err.table != NULL ? " in table " : "",
				 err.table != NULL ? err.table->name : "");
			assert_refused(f, buf, len, 0, want);
		} else {
			/* Not a changeset: read as frames, refused at 0. */
			assert_refused(f, buf, len, 0, "frame 1 at byte 0");
		}
	}
	closedir(d);
	assert_int_equal(n_files, n_ex);
	assert_true(n_refused >= 80);
}

static void sqlite_hang_input_is_refused(void **state)
{
	struct fx *f = *state;

	assert_refused(f, trap8, sizeof(trap8), 0,
		       "changeset: NAME_NOT_TERMINATED at byte 6");
	assert_refused(f, trap8, sizeof(trap8), GS_INSPECT_UPLOAD,
		       "changeset: NAME_NOT_TERMINATED at byte 6");
	assert_refused(f, trap8, 1, 0, "changeset: TRUNCATED at byte 0");
	/* A patchset given as an upload. */
	assert_refused(f, (const uint8_t *)"P", 1, GS_INSPECT_UPLOAD,
		       "PATCHSET_NOT_EXPECTED at byte 0");
}

/* ---- API edges ------------------------------------------------------------
 */

static int stop_at_first(const char *s, size_t n, void *payload)
{
	(void)s;
	(void)n;
	(*(int *)payload)++;
	return 42;
}

static void callback_stops_and_arguments_are_checked(void **state)
{
	struct fx *f = *state;
	struct text t = { 0 };
	int calls = 0;

	assert_int_equal(gs_inspect(f->ctx, f->cs[1], f->cs_len[1], 0,
				    stop_at_first, &calls),
			 42);
	assert_int_equal(calls, 1);
	assert_gs_err(gs_inspect(NULL, f->cs[0], f->cs_len[0], 0, collect, &t),
		      GS_EINVAL);
	assert_gs_err(gs_inspect(f->ctx, f->cs[0], f->cs_len[0], 0, NULL, &t),
		      GS_EINVAL);
	assert_gs_err(gs_inspect(f->ctx, NULL, 3, 0, collect, &t), GS_EINVAL);
	assert_gs_err(
		gs_inspect(f->ctx, f->cs[0], f->cs_len[0], 0x80, collect, &t),
		GS_EINVAL);
	/* The size is refused before a byte is read. */
	assert_gs_err(gs_inspect(f->ctx, f->cs[0],
				 (size_t)GS_INSPECT_MAX_INPUT + 1, 0, collect,
				 &t),
		      GS_ETOOBIG);
	assert_int_equal(t.calls, 0);
}

static void allocation_failures_are_clean(void **state)
{
	struct fx *f = *state;
	struct gs_test_alloc alloc;
	struct gs_ctx *ctx = gs_test_ctx_new(&alloc);
	struct frames fr;
	struct text t = { 0 };
	long base;
	int rc;

	build_stream(f, &fr);
	base = alloc.live;
	for (long n = 0;; n++) {
		text_free(&t);
		gs_test_fail_alloc_at(&alloc, n);
		rc = gs_inspect(ctx, fr.b.data, fr.b.len, GS_INSPECT_JSON,
				collect, &t);
		assert_int_equal(alloc.live, base);
		if (rc == GS_OK)
			break;
		assert_gs_err(rc, GS_ENOMEM);
		assert_true(n < 10000);
	}
	gs_test_fail_alloc_at(&alloc, -1);
	assert_json(t.p);
	text_free(&t);
	frames_free(&fr);
	gs_ctx_free(ctx);
}

/* ---- the outbox listing on a damaged database ------------------------ */

static int find_changes(const struct gs_row *row, void *payload)
{
	const char *seq = gs_row_get(row, "seq");

	if (seq != NULL && strcmp(seq, "2") == 0)
		snprintf(payload, 128, "%s", gs_row_get(row, "changes"));
	return 0;
}

static void outbox_lists_a_damaged_entry_as_invalid(void **state)
{
	struct fx *f = *state;
	char changes[128] = "";
	sqlite3 *db = gs__device_db(f->dev);

	assert_gs_ok(gs_outbox_list(f->dev, find_changes, changes));
	assert_string_equal(changes, "resident+1");
	/* The 8-byte input that spins SQLite 3.40.1's iterator. */
	assert_int_equal(sqlite3_exec(db,
				      "UPDATE gs_outbox SET changeset ="
				      " x'5404010000005404' WHERE seq = 2",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	assert_gs_ok(gs_outbox_list(f->dev, find_changes, changes));
	assert_string_equal(changes, "invalid: NAME_NOT_TERMINATED at byte 6");
}

/* ---- the CLI --------------------------------------------------------------
 */

struct run {
	int status; /* exit code, or -1 if killed */
	char out[1 << 16];
	char err[4096];
};

/* Run gridsync with args (NULL-terminated), stdin from in_path or
 * /dev/null. */
static void run_cli(struct fx *f,
		    struct run *r,
		    const char *in_path,
		    const char *const *args)
{
	const char *argv[16];
	char bin[4096];
	char out_path[4200];
	char err_path[4200];
	const char *bindir = getenv("GS_BINDIR");
	int n = 0;
	pid_t pid;
	int st;
	FILE *fp;
	size_t k;

	snprintf(bin, sizeof(bin), "%s/bin/gridsync",
		 bindir != NULL ? bindir : GS_TEST_BINDIR);
	argv[n++] = bin;
	for (int i = 0; args[i] != NULL; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	snprintf(out_path, sizeof(out_path), "%s/out", f->dir);
	snprintf(err_path, sizeof(err_path), "%s/err", f->dir);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fi =
			open(in_path != NULL ? in_path : "/dev/null", O_RDONLY);
		int fo = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int fe = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		dup2(fi, 0);
		dup2(fo, 1);
		dup2(fe, 2);
		alarm(10); /* a hang fails the test instead of blocking it */
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	fp = fopen(out_path, "rb");
	assert_non_null(fp);
	k = fread(r->out, 1, sizeof(r->out) - 1, fp);
	r->out[k] = '\0';
	fclose(fp);
	fp = fopen(err_path, "rb");
	assert_non_null(fp);
	k = fread(r->err, 1, sizeof(r->err) - 1, fp);
	r->err[k] = '\0';
	fclose(fp);
}

#define CLI(f, r, in, ...)                                   \
	do {                                                 \
		const char *args_[] = { __VA_ARGS__, NULL }; \
		run_cli((f), (r), (in), args_);              \
	} while (0)

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *fp = fopen(path, "wb");

	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

static void cli_inspects_files_and_stdin(void **state)
{
	static struct run r;
	struct fx *f = *state;
	struct frames fr;
	char cs_path[4200];
	char st_path[4200];
	char bad_path[4200];
	char want[128];
	struct text t = { 0 };

	snprintf(cs_path, sizeof(cs_path), "%s/entry1.cs", f->dir);
	snprintf(st_path, sizeof(st_path), "%s/capture.bin", f->dir);
	snprintf(bad_path, sizeof(bad_path), "%s/bad.cs", f->dir);
	write_file(cs_path, f->cs[0], f->cs_len[0]);
	build_stream(f, &fr);
	write_file(st_path, fr.b.data, fr.b.len);
	write_file(bad_path, trap8, sizeof(trap8));

	/* The CLI prints exactly what the library does. */
	assert_gs_ok(inspect(f, &t, f->cs[0], f->cs_len[0], 0));
	CLI(f, &r, NULL, "inspect", cs_path);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, t.p);
	assert_string_equal(r.err, "");
	snprintf(want, sizeof(want), "household UPDATE id=%s", f->household);
	assert_has(r.out, want);

	CLI(f, &r, cs_path, "inspect", "-");
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, t.p);

	CLI(f, &r, NULL, "--json", "inspect", st_path);
	assert_int_equal(r.status, 0);
	assert_json(r.out);
	assert_has(r.out, "\"kind\":\"stream\"");
	CLI(f, &r, st_path, "inspect", "-", "--json");
	assert_int_equal(r.status, 0);
	assert_json(r.out);
	assert_has(r.out, "\"n_frames\":9");

	/* Invalid: one line on stderr with the offset, nothing on stdout. */
	CLI(f, &r, NULL, "inspect", bad_path);
	assert_int_equal(r.status, 1);
	assert_string_equal(r.out, "");
	assert_has(r.err, "gridsync: inspect: changeset: NAME_NOT_TERMINATED "
			  "at byte 6");
	assert_int_equal(count(r.err, "\n"), 1);
	CLI(f, &r, bad_path, "--json", "inspect", "-");
	assert_int_equal(r.status, 1);
	assert_string_equal(r.out, "");
	assert_has(r.err, "NAME_NOT_TERMINATED at byte 6");

	/* Usage and I/O errors. */
	CLI(f, &r, NULL, "inspect");
	assert_int_equal(r.status, 2);
	CLI(f, &r, NULL, "inspect", cs_path, "--frobnicate");
	assert_int_equal(r.status, 2);
	CLI(f, &r, NULL, "inspect", "/nonexistent/x.cs");
	assert_int_equal(r.status, 1);
	assert_has(r.err, "cannot open /nonexistent/x.cs");
	CLI(f, &r, NULL, "inspect", "-");
	assert_int_equal(r.status, 1);
	assert_has(r.err, "empty input");
	text_free(&t);
	frames_free(&fr);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
		T(outbox_changesets_decode_as_text),
		T(outbox_changesets_decode_as_json),
		T(single_frame_decodes),
		T(stream_of_frames_decodes),
		T(bad_frames_are_refused_with_their_offset),
		T(malformed_corpus_is_refused_quickly),
		T(sqlite_hang_input_is_refused),
		T(callback_stops_and_arguments_are_checked),
		T(allocation_failures_are_clean),
		T(outbox_lists_a_damaged_entry_as_invalid),
		T(cli_inspects_files_and_stdin),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
