/*
 * Wire messages: golden vectors for every message type, round trips,
 * semantic validation in both directions, allocation-failure loops.
 *
 * Golden vectors live in tests/data/wire/<type>.bin as whole frames
 * (length prefix included). Each test rebuilds the message, compares the
 * encoding byte for byte with the committed file, then decodes the file
 * through the frame reader and compares every field. GS_REGEN_GOLDEN=1
 * rewrites the files instead of comparing (review the diff before
 * committing: a changed vector means old peers see different bytes).
 */
#include <gridsync/wire.h>

#include "gs_test.h"

/* ---- sample messages (fixed content, so the bytes are stable) -------- */

/* Stand-in changeset bytes; the wire layer never parses them. */
static const uint8_t cs_a[] = { 'T', 0x03, 0x01, 'v',  'i',  's',  'i',
				't', 0x00, 0x12, 0x00, 0x03, 0x24, 'v',
				'1', 0x05, 0x00, 0x00, 0x00, 0x2a };

/* Text inside the hand-built zstd frame below. */
static const char zstd_text[] = "visit summary: 住户在家，检查燃气与电线。";

/*
 * A zstd frame holding zstd_text in one raw (stored) block, built by hand
 * from RFC 8878 so the golden bytes do not depend on the zstd version's
 * compressor: magic, descriptor 0x20 (single segment, 1-byte content
 * size), the size, a last raw block header, the bytes.
 */
static size_t zstd_stored(uint8_t *out, const char *text, size_t n)
{
	uint32_t bh = (uint32_t)n << 3 | 1u; /* Raw, last */
	size_t k = 0;

	out[k++] = 0x28;
	out[k++] = 0xb5;
	out[k++] = 0x2f;
	out[k++] = 0xfd;
	out[k++] = 0x20;
	out[k++] = (uint8_t)n;
	out[k++] = (uint8_t)bh;
	out[k++] = (uint8_t)(bh >> 8);
	out[k++] = (uint8_t)(bh >> 16);
	memcpy(out + k, text, n);
	return k + n;
}

struct samples {
	uint8_t zbuf[128];
	size_t zlen;
	struct gs_push_entry push[2];
	struct gs_push_result results[3];
	struct gs_conflict conflicts[2];
	struct gs_change changes[2];
	const char *scope[2];
};

static struct samples S;

static void samples_init(void)
{
	size_t tn = strlen(zstd_text);
	static const uint8_t blob[] = { 0x00, 0xff, 0x10, 0x80 };

	assert_true(tn < 256);
	S.zlen = zstd_stored(S.zbuf, zstd_text, tn);

	S.push[0].device_seq = 7;
	S.push[0].hlc = 0x0195f3a2c4e10003ull;
	S.push[0].changeset = cs_a;
	S.push[0].changeset_len = sizeof(cs_a);
	gs__sha256(S.push[0].sha256, cs_a, sizeof(cs_a));
	S.push[0].compression = GS_COMP_NONE;
	S.push[0].uncompressed_len = sizeof(cs_a);
	S.push[1].device_seq = 8;
	S.push[1].hlc = 0x0195f3a2c4e20000ull;
	S.push[1].changeset = S.zbuf;
	S.push[1].changeset_len = S.zlen;
	gs__sha256(S.push[1].sha256, zstd_text, tn);
	S.push[1].compression = GS_COMP_ZSTD;
	S.push[1].uncompressed_len = (uint32_t)tn;

	S.results[0] = (struct gs_push_result){
		7, GS_RESULT_APPLIED, GS_REJECT_NONE, NULL, false, false, false,
		0
	};
	S.results[1] = (struct gs_push_result){
		8, GS_RESULT_DUPLICATE, GS_REJECT_NONE, "", false, false, false,
		0
	};
	S.results[2] = (struct gs_push_result){ 9,
						GS_RESULT_REJECTED,
						GS_REJECT_DENIED,
						"table worker is reference "
						"data",
						false,
						false,
						false,
						0 };
	S.conflicts[0] = (struct gs_conflict){
		7,
		"household",
		"0195f3a2-c4e1-7000-8000-000000000001",
		"status",
		{ "srv-510106", 0x0195f3a2c4f00000ull, GS_VALUE_TEXT,
		  (const uint8_t *)"已搬离", strlen("已搬离") },
		{ "dev-0001", 0x0195f3a2c4e10003ull, GS_VALUE_TEXT,
		  (const uint8_t *)"active", 6 },
		0,
	};
	S.conflicts[1] = (struct gs_conflict){
		7,
		"household",
		"0195f3a2-c4e1-7000-8000-000000000001",
		"phone_enc",
		{ "srv-510106", 0x0195f3a2c4f00000ull, GS_VALUE_NULL, NULL, 0 },
		{ "dev-0001", 0x0195f3a2c4e10003ull, GS_VALUE_BLOB, blob,
		  sizeof(blob) },
		0,
	};
	S.changes[0] = (struct gs_change){ 1001,         0x0195f3a2c4f00000ull,
					   "srv-510106", cs_a,
					   sizeof(cs_a), GS_COMP_NONE,
					   sizeof(cs_a) };
	S.changes[1] = (struct gs_change){ 1004,        0x0195f3a2c4f10000ull,
					   "dev-0002",  S.zbuf,
					   S.zlen,      GS_COMP_ZSTD,
					   (uint32_t)tn };
	S.scope[0] = "510106001001";
	S.scope[1] = "510106001002";
}

static void sample(struct gs_msg *m, enum gs_msg_type type)
{
	memset(m, 0, sizeof(*m));
	m->type = type;
	switch (type) {
	case GS_MSG_HELLO:
		m->u.hello = (struct gs_msg_hello){
			1,  1,           "dev-0001", 1,     "gridsync/0.1.0",
			42, GS_SUITE_V1, NULL,       false, 0
		};
		break;
	case GS_MSG_WELCOME:
		m->u.welcome = (struct gs_msg_welcome){
			1,
			"srv-510106",
			1767225600000ull,
			S.scope,
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
		break;
	case GS_MSG_PUSH:
		m->u.push = (struct gs_msg_push){ 1, S.push, 2 };
		break;
	case GS_MSG_PUSH_ACK:
		m->u.push_ack = (struct gs_msg_push_ack){ 8, S.results, 3,
							  S.conflicts, 2 };
		break;
	case GS_MSG_PULL:
		m->u.pull = (struct gs_msg_pull){ 1000, 1u << 20, 0 };
		break;
	case GS_MSG_CHANGES:
		m->u.changes = (struct gs_msg_changes){ 1,    S.changes, 2,
							1004, true,      NULL,
							0,    NULL,      0 };
		break;
	case GS_MSG_PING:
	case GS_MSG_PONG:
		m->u.ping = (struct gs_msg_ping){ 0x0123456789abcdefull,
						  1767225600123ull };
		break;
	case GS_MSG_ERROR:
		m->u.error = (struct gs_msg_error){ GS_WIRE_ERR_BUSY,
						    "server busy", 5000 };
		break;
	default:
		fail_msg("no sample for %d", (int)type);
	}
}

/* ---- field-by-field comparison ------------------------------------- */

static void eq_str(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		assert_true(a == b || (a == NULL && b[0] == '\0') ||
			    (b == NULL && a[0] == '\0'));
	else
		assert_string_equal(a, b);
}

static void eq_bytes(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
	assert_int_equal(an, bn);
	if (an > 0)
		assert_memory_equal(a, b, an);
}

static void eq_side(const struct gs_conflict_side *a,
		    const struct gs_conflict_side *b)
{
	eq_str(a->device_id, b->device_id);
	assert_int_equal(a->hlc, b->hlc);
	assert_int_equal(a->kind, b->kind);
	eq_bytes(a->value, a->value_len, b->value, b->value_len);
}

static void eq_conflicts(const struct gs_conflict *x,
			 size_t nx,
			 const struct gs_conflict *y,
			 size_t ny)
{
	assert_int_equal(nx, ny);
	for (size_t i = 0; i < nx; i++) {
		assert_int_equal(x[i].device_seq, y[i].device_seq);
		eq_str(x[i].table, y[i].table);
		eq_str(x[i].pk, y[i].pk);
		eq_str(x[i].column, y[i].column);
		eq_side(&x[i].winner, &y[i].winner);
		eq_side(&x[i].loser, &y[i].loser);
		assert_int_equal(x[i].id, y[i].id);
	}
}

static void assert_msg_equal(const struct gs_msg *a, const struct gs_msg *b)
{
	if (a == NULL || b == NULL) {
		fail_msg("no message to compare");
		return;
	}
	assert_int_equal(a->type, b->type);
	switch (a->type) {
	case GS_MSG_HELLO:
		assert_int_equal(a->u.hello.proto_min, b->u.hello.proto_min);
		assert_int_equal(a->u.hello.proto_max, b->u.hello.proto_max);
		eq_str(a->u.hello.device_id, b->u.hello.device_id);
		assert_int_equal(a->u.hello.schema_version,
				 b->u.hello.schema_version);
		eq_str(a->u.hello.app_version, b->u.hello.app_version);
		assert_int_equal(a->u.hello.cursor, b->u.hello.cursor);
		assert_int_equal(a->u.hello.suite, b->u.hello.suite);
		break;
	case GS_MSG_WELCOME: {
		const struct gs_msg_welcome *x = &a->u.welcome;
		const struct gs_msg_welcome *y = &b->u.welcome;

		assert_int_equal(x->proto_version, y->proto_version);
		eq_str(x->server_id, y->server_id);
		assert_int_equal(x->server_time_ms, y->server_time_ms);
		assert_int_equal(x->n_scope, y->n_scope);
		for (size_t i = 0; i < x->n_scope; i++)
			eq_str(x->scope[i], y->scope[i]);
		assert_int_equal(x->limits.max_frame_bytes,
				 y->limits.max_frame_bytes);
		assert_int_equal(x->limits.max_push_entries,
				 y->limits.max_push_entries);
		assert_int_equal(x->limits.pull_byte_budget,
				 y->limits.pull_byte_budget);
		assert_int_equal(x->schema_version, y->schema_version);
		assert_int_equal(x->suite, y->suite);
		break;
	}
	case GS_MSG_PUSH:
		assert_int_equal(a->u.push.schema_version,
				 b->u.push.schema_version);
		assert_int_equal(a->u.push.n_entries, b->u.push.n_entries);
		for (size_t i = 0; i < a->u.push.n_entries; i++) {
			const struct gs_push_entry *x = &a->u.push.entries[i];
			const struct gs_push_entry *y = &b->u.push.entries[i];

			assert_int_equal(x->device_seq, y->device_seq);
			assert_int_equal(x->hlc, y->hlc);
			eq_bytes(x->changeset, x->changeset_len, y->changeset,
				 y->changeset_len);
			assert_memory_equal(x->sha256, y->sha256,
					    GS_SHA256_LEN);
			assert_int_equal(x->compression, y->compression);
			assert_int_equal(x->uncompressed_len,
					 y->uncompressed_len);
		}
		break;
	case GS_MSG_PUSH_ACK: {
		const struct gs_msg_push_ack *x = &a->u.push_ack;
		const struct gs_msg_push_ack *y = &b->u.push_ack;

		assert_int_equal(x->durable_seq, y->durable_seq);
		assert_int_equal(x->n_results, y->n_results);
		for (size_t i = 0; i < x->n_results; i++) {
			assert_int_equal(x->results[i].device_seq,
					 y->results[i].device_seq);
			assert_int_equal(x->results[i].result,
					 y->results[i].result);
			assert_int_equal(x->results[i].reject_code,
					 y->results[i].reject_code);
			eq_str(x->results[i].reason, y->results[i].reason);
		}
		eq_conflicts(x->conflicts, x->n_conflicts, y->conflicts,
			     y->n_conflicts);
		break;
	}
	case GS_MSG_PULL:
		assert_int_equal(a->u.pull.after_seq, b->u.pull.after_seq);
		assert_int_equal(a->u.pull.byte_budget, b->u.pull.byte_budget);
		break;
	case GS_MSG_CHANGES: {
		const struct gs_msg_changes *x = &a->u.changes;
		const struct gs_msg_changes *y = &b->u.changes;

		assert_int_equal(x->schema_version, y->schema_version);
		assert_int_equal(x->n_entries, y->n_entries);
		for (size_t i = 0; i < x->n_entries; i++) {
			const struct gs_change *c = &x->entries[i];
			const struct gs_change *d = &y->entries[i];

			assert_int_equal(c->server_seq, d->server_seq);
			assert_int_equal(c->hlc, d->hlc);
			eq_str(c->origin, d->origin);
			eq_bytes(c->changeset, c->changeset_len, d->changeset,
				 d->changeset_len);
			assert_int_equal(c->compression, d->compression);
			assert_int_equal(c->uncompressed_len,
					 d->uncompressed_len);
		}
		assert_int_equal(x->next_cursor, y->next_cursor);
		assert_int_equal(x->more, y->more);
		eq_conflicts(x->conflicts, x->n_conflicts, y->conflicts,
			     y->n_conflicts);
		break;
	}
	case GS_MSG_PING:
	case GS_MSG_PONG:
		assert_int_equal(a->u.ping.nonce, b->u.ping.nonce);
		assert_int_equal(a->u.ping.time_ms, b->u.ping.time_ms);
		break;
	case GS_MSG_ERROR:
		assert_int_equal(a->u.error.code, b->u.error.code);
		eq_str(a->u.error.message, b->u.error.message);
		assert_int_equal(a->u.error.retry_after_ms,
				 b->u.error.retry_after_ms);
		break;
	default:
		fail_msg("type %d", (int)a->type);
	}
}

/* ---- fixture ---------------------------------------------------------- */

struct fx {
	struct gs_test_alloc alloc;
	struct gs_ctx *ctx;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->ctx = gs_test_ctx_new(&f->alloc);
	assert_non_null(f->ctx);
	samples_init();
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

static const enum gs_msg_type all_types[] = {
	GS_MSG_HELLO,    GS_MSG_WELCOME, GS_MSG_PUSH,
	GS_MSG_PUSH_ACK, GS_MSG_PULL,    GS_MSG_CHANGES,
	GS_MSG_PING,     GS_MSG_PONG,    GS_MSG_ERROR,
};
#define N_TYPES (sizeof(all_types) / sizeof(all_types[0]))

/* Decode one whole frame (prefix included) through the frame reader. */
static int decode_frame(struct gs_msg **out,
			struct gs_ctx *ctx,
			const uint8_t *p,
			size_t n)
{
	struct gs_frame_reader r;
	struct gs_frame fr;
	size_t used = 0;
	int rc;

	gs__frame_reader_init(&r, ctx, 0);
	rc = gs__frame_reader_feed(&fr, &used, &r, p, n);
	if (rc == GS_OK) {
		assert_int_equal(used, n);
		rc = gs__msg_decode(out, ctx, fr.data, fr.len, NULL);
	}
	gs__frame_reader_fini(&r);
	return rc;
}

static void golden_vectors(void **state)
{
	struct fx *f = *state;
	const char *env = getenv("GS_REGEN_GOLDEN");
	bool regen = env != NULL && strcmp(env, "1") == 0;
	char path[1024];

	for (size_t i = 0; i < N_TYPES; i++) {
		struct gs_msg m;
		struct gs_msg *got = NULL;
		struct gs_buf b;
		uint8_t *want = NULL;
		size_t want_len = 0;

		sample(&m, all_types[i]);
		gs__buf_init(&b, f->ctx, GS_FRAME_MAX_DEFAULT + 4);
		assert_gs_ok(gs__msg_encode(&b, &m, NULL));
		snprintf(path, sizeof(path), "%s/tests/data/wire/%s.bin",
			 gs_test_srcdir(), gs__msg_type_name(all_types[i]));
		if (regen) {
			assert_gs_ok(gs__fs_write_atomic(f->ctx, path, b.data,
							 b.len));
			fprintf(stderr, "# rewrote %s (%zu bytes)\n", path,
				b.len);
		}
		if (gs__fs_read_all(f->ctx, &want, &want_len, path, 1u << 20) !=
		    GS_OK)
			fail_msg("%s missing: run with GS_REGEN_GOLDEN=1",
				 path);
		if (want_len != b.len || memcmp(want, b.data, b.len) != 0)
			fail_msg("%s differs from the encoding (%zu vs %zu "
				 "bytes)",
				 path, want_len, b.len);
		assert_gs_ok(decode_frame(&got, f->ctx, want, want_len));
		assert_msg_equal(&m, got);
		gs__msg_free(got);
		gs__free(f->ctx, want);
		gs__buf_fini(&b);
	}
}

/* decode(encode(m)) == m and encode(decode(bytes)) == bytes. */
static void round_trip_is_stable(void **state)
{
	struct fx *f = *state;

	for (size_t i = 0; i < N_TYPES; i++) {
		struct gs_msg m;
		struct gs_msg *got = NULL;
		struct gs_buf b1;
		struct gs_buf b2;

		sample(&m, all_types[i]);
		gs__buf_init(&b1, f->ctx, 1u << 20);
		gs__buf_init(&b2, f->ctx, 1u << 20);
		assert_gs_ok(gs__msg_encode(&b1, &m, NULL));
		assert_gs_ok(gs__msg_decode(&got, f->ctx, b1.data + 4,
					    b1.len - 4, NULL));
		assert_string_equal(gs__msg_type_name(got->type),
				    gs__msg_type_name(all_types[i]));
		assert_gs_ok(gs__msg_encode(&b2, got, NULL));
		eq_bytes(b1.data, b1.len, b2.data, b2.len);
		gs__msg_free(got);
		gs__buf_fini(&b1);
		gs__buf_fini(&b2);
	}
}

/* Encoding appends: two frames in one buffer, prefix big-endian. */
static void encode_appends_frames(void **state)
{
	struct fx *f = *state;
	struct gs_msg m;
	struct gs_buf b;
	size_t first;
	uint32_t n;

	sample(&m, GS_MSG_PING);
	gs__buf_init(&b, f->ctx, 4096);
	assert_gs_ok(gs__msg_encode(&b, &m, NULL));
	first = b.len;
	assert_gs_ok(gs__msg_encode(&b, &m, NULL));
	assert_int_equal(b.len, 2 * first);
	n = (uint32_t)b.data[0] << 24 | (uint32_t)b.data[1] << 16 |
	    (uint32_t)b.data[2] << 8 | b.data[3];
	assert_int_equal(n + 4, first);
	assert_memory_equal(b.data, b.data + first, first);
	gs__buf_fini(&b);
}

/* Rules the encoder enforces: nothing a peer would refuse leaves us. */
static void encode_rejects_bad_messages(void **state)
{
	struct fx *f = *state;
	struct gs_wire_limits lim = GS_WIRE_LIMITS_INIT;
	struct gs_push_entry e[2];
	struct gs_msg m;
	struct gs_buf b;

	gs__buf_init(&b, f->ctx, 1u << 20);

	sample(&m, GS_MSG_HELLO);
	m.u.hello.device_id = NULL;
	assert_gs_err(gs__msg_encode(&b, &m, NULL), GS_EINVAL);
	assert_non_null(strstr(gs_ctx_errmsg(f->ctx), "device_id"));
	sample(&m, GS_MSG_HELLO);
	m.u.hello.proto_min = 3;
	m.u.hello.proto_max = 2;
	assert_gs_err(gs__msg_encode(&b, &m, NULL), GS_EINVAL);
	sample(&m, GS_MSG_HELLO);
	m.u.hello.device_id = "bad\xff";
	assert_gs_err(gs__msg_encode(&b, &m, NULL), GS_EINVAL);
	sample(&m, GS_MSG_HELLO);
	m.u.hello.device_id = "0123456789012345678901234567890123456789"
			      "0123456789012345678901234";
	assert_gs_err(gs__msg_encode(&b, &m, NULL), GS_EINVAL);

	/* Push: order, emptiness, compression bookkeeping, limits. */
	sample(&m, GS_MSG_PUSH);
	memcpy(e, S.push, sizeof(e));
	m.u.push.entries = e;
	e[1].device_seq = e[0].device_seq;
	assert_gs_err(gs__msg_encode(&b, &m, NULL), GS_EINVAL);
	memcpy(e, S.push, sizeof(e));
	e[0].uncompressed_len++;
	assert_gs_err(gs__msg_encode(&b, &m, NULL), GS_EINVAL);
	memcpy(e, S.push, sizeof(e));
	e[1].compression = 9;
	assert_gs_err(gs__msg_encode(&b, &m, NULL), GS_EINVAL);
	memcpy(e, S.push, sizeof(e));
	e[1].uncompressed_len = lim.max_changeset + 1;
	assert_gs_err(gs__msg_encode(&b, &m, NULL), GS_EINVAL);
	memcpy(e, S.push, sizeof(e));
	e[0].changeset_len = 0;
	assert_gs_err(gs__msg_encode(&b, &m, NULL), GS_EINVAL);
	memcpy(e, S.push, sizeof(e));
	lim.max_push_entries = 1;
	assert_gs_err(gs__msg_encode(&b, &m, &lim), GS_EINVAL);
	m.u.push.n_entries = 0;
	assert_gs_err(gs__msg_encode(&b, &m, NULL), GS_EINVAL);

	/* A frame above the limit is too big, not invalid. */
	lim = (struct gs_wire_limits)GS_WIRE_LIMITS_INIT;
	lim.max_frame = 64;
	sample(&m, GS_MSG_PUSH);
	assert_gs_err(gs__msg_encode(&b, &m, &lim), GS_ETOOBIG);

	/* PushAck: result and reject code must agree. */
	{
		struct gs_push_result r[1] = { S.results[2] };

		sample(&m, GS_MSG_PUSH_ACK);
		m.u.push_ack.results = r;
		m.u.push_ack.n_results = 1;
		r[0].reject_code = GS_REJECT_NONE;
		assert_gs_err(gs__msg_encode(&b, &m, NULL), GS_EINVAL);
		r[0] = S.results[0];
		r[0].reject_code = GS_REJECT_HASH;
		assert_gs_err(gs__msg_encode(&b, &m, NULL), GS_EINVAL);
		r[0] = S.results[0];
		r[0].result = 0;
		assert_gs_err(gs__msg_encode(&b, &m, NULL), GS_EINVAL);
	}
	sample(&m, GS_MSG_ERROR);
	m.u.error.code = 0;
	assert_gs_err(gs__msg_encode(&b, &m, NULL), GS_EINVAL);
	sample(&m, GS_MSG_WELCOME);
	m.u.welcome.limits.max_frame_bytes = GS_FRAME_MAX_CEILING + 1;
	assert_gs_err(gs__msg_encode(&b, &m, NULL), GS_EINVAL);
	m.type = GS_MSG_NONE;
	assert_gs_err(gs__msg_encode(&b, &m, NULL), GS_EINVAL);
	m.type = 42;
	assert_gs_err(gs__msg_encode(&b, &m, NULL), GS_EINVAL);

	assert_int_equal(b.len, 0); /* nothing half-written */
	gs__buf_fini(&b);
}

/* A decoder with a lower limit than the encoder refuses early. */
static void decode_honours_negotiated_limits(void **state)
{
	struct fx *f = *state;
	struct gs_wire_limits lim = GS_WIRE_LIMITS_INIT;
	struct gs_msg m;
	struct gs_msg *got = NULL;
	struct gs_buf b;

	gs__buf_init(&b, f->ctx, 1u << 20);
	sample(&m, GS_MSG_PUSH);
	assert_gs_ok(gs__msg_encode(&b, &m, NULL));
	lim.max_push_entries = 1;
	assert_gs_err(gs__msg_decode(&got, f->ctx, b.data + 4, b.len - 4, &lim),
		      GS_EPROTO);
	assert_null(got);
	assert_non_null(strstr(gs_ctx_errmsg(f->ctx), "entries"));
	lim = (struct gs_wire_limits)GS_WIRE_LIMITS_INIT;
	lim.max_frame = (uint32_t)(b.len - 5);
	assert_gs_err(gs__msg_decode(&got, f->ctx, b.data + 4, b.len - 4, &lim),
		      GS_EPROTO);
	lim = (struct gs_wire_limits)GS_WIRE_LIMITS_INIT;
	lim.max_changeset = 10;
	assert_gs_err(gs__msg_decode(&got, f->ctx, b.data + 4, b.len - 4, &lim),
		      GS_EPROTO);
	assert_null(got);
	gs__buf_fini(&b);
}

/* Every allocation of decode and encode may fail: clean error, no leak. */
static void allocation_failures(void **state)
{
	struct fx *f = *state;
	long base = f->alloc.live;

	for (size_t i = 0; i < N_TYPES; i++) {
		struct gs_msg m;
		struct gs_buf b;
		struct gs_buf b2;
		unsigned n;
		int rc;

		sample(&m, all_types[i]);
		gs__buf_init(&b, f->ctx, 1u << 20);
		assert_gs_ok(gs__msg_encode(&b, &m, NULL));
		for (n = 0;; n++) {
			struct gs_msg *got = NULL;

			gs_test_fail_alloc_at(&f->alloc, n);
			rc = gs__msg_decode(&got, f->ctx, b.data + 4, b.len - 4,
					    NULL);
			gs_test_fail_alloc_at(&f->alloc, -1);
			if (rc == GS_OK) {
				assert_non_null(got);
				gs__msg_free(got);
				assert_int_equal(f->alloc.live, base + 1);
				break;
			}
			assert_int_equal(f->alloc.live, base + 1);
			assert_gs_err(rc, GS_ENOMEM);
			assert_null(got);
		}
		assert_true(n > 0);
		for (n = 0;; n++) {
			gs__buf_init(&b2, f->ctx, 1u << 20);
			gs_test_fail_alloc_at(&f->alloc, n);
			rc = gs__msg_encode(&b2, &m, NULL);
			gs_test_fail_alloc_at(&f->alloc, -1);
			if (rc == GS_OK) {
				eq_bytes(b.data, b.len, b2.data, b2.len);
				gs__buf_fini(&b2);
				break;
			}
			assert_gs_err(rc, GS_ENOMEM);
			assert_int_equal(b2.len, 0);
			gs__buf_fini(&b2);
			assert_int_equal(f->alloc.live, base + 1);
		}
		gs__buf_fini(&b);
		assert_int_equal(f->alloc.live, base);
	}
}

/* Changes may carry the conflicts a device lost after its push: with the
 * server's id, without the entry (device_seq 0 is left out). */
static void changes_carry_conflicts(void **state)
{
	struct fx *f = *state;
	struct gs_conflict con[2];
	struct gs_msg m;
	struct gs_msg *got = NULL;
	struct gs_buf b;

	memcpy(con, S.conflicts, sizeof(con));
	con[0].device_seq = 0;
	con[0].id = 17;
	con[1].id = 18;
	sample(&m, GS_MSG_CHANGES);
	m.u.changes.conflicts = con;
	m.u.changes.n_conflicts = 2;
	gs__buf_init(&b, f->ctx, GS_FRAME_MAX_DEFAULT + 4);
	assert_gs_ok(gs__msg_encode(&b, &m, NULL));
	assert_gs_ok(decode_frame(&got, f->ctx, b.data, b.len));
	assert_msg_equal(&m, got);
	assert_int_equal(got->u.changes.conflicts[0].device_seq, 0);
	assert_int_equal(got->u.changes.conflicts[1].id, 18);
	gs__msg_free(got);
	/* A conflict without its table is refused on the way out. */
	con[1].table = "";
	b.len = 0;
	assert_int_equal(gs__msg_encode(&b, &m, NULL), GS_EINVAL);
	gs__buf_fini(&b);
}

/* The scope fields: Welcome's version and cut-offs, Pull's applied
 * version, and rows that left next to conflicts in one Changes. */
static void scope_fields_round_trip(void **state)
{
	struct fx *f = *state;
	struct gs_row_key left[2] = { { "household", "hh-1", 1003 },
				      { "resident", "r-1", 1004 } };
	struct gs_conflict con[1];
	struct gs_msg m;
	struct gs_msg *got = NULL;
	struct gs_buf b;

	gs__buf_init(&b, f->ctx, GS_FRAME_MAX_DEFAULT + 4);
	sample(&m, GS_MSG_WELCOME);
	m.u.welcome.scope_version = 3;
	m.u.welcome.visits_since_ms = 1735689600000ull;
	m.u.welcome.closed_since_ms = 1764633600000ull;
	assert_gs_ok(gs__msg_encode(&b, &m, NULL));
	assert_gs_ok(decode_frame(&got, f->ctx, b.data, b.len));
	assert_int_equal(got->u.welcome.scope_version, 3);
	assert_int_equal(got->u.welcome.visits_since_ms, 1735689600000ull);
	assert_int_equal(got->u.welcome.closed_since_ms, 1764633600000ull);
	gs__msg_free(got);
	b.len = 0;
	sample(&m, GS_MSG_PULL);
	m.u.pull.scope_version = 3;
	assert_gs_ok(gs__msg_encode(&b, &m, NULL));
	assert_gs_ok(decode_frame(&got, f->ctx, b.data, b.len));
	assert_int_equal(got->u.pull.scope_version, 3);
	gs__msg_free(got);
	b.len = 0;
	memcpy(con, S.conflicts, sizeof(con));
	con[0].id = 9;
	sample(&m, GS_MSG_CHANGES);
	m.u.changes.conflicts = con;
	m.u.changes.n_conflicts = 1;
	m.u.changes.left = left;
	m.u.changes.n_left = 2;
	assert_gs_ok(gs__msg_encode(&b, &m, NULL));
	assert_gs_ok(decode_frame(&got, f->ctx, b.data, b.len));
	assert_msg_equal(&m, got);
	assert_int_equal(got->u.changes.n_left, 2);
	assert_string_equal(got->u.changes.left[1].table, "resident");
	assert_string_equal(got->u.changes.left[1].pk, "r-1");
	assert_int_equal(got->u.changes.left[1].server_seq, 1004);
	assert_int_equal(got->u.changes.conflicts[0].id, 9);
	gs__msg_free(got);
	/* A left row without its key is refused on the way out. */
	left[0].pk = "";
	b.len = 0;
	assert_int_equal(gs__msg_encode(&b, &m, NULL), GS_EINVAL);
	gs__buf_fini(&b);
}

static void type_names(void **state)
{
	(void)state;
	assert_string_equal(gs__msg_type_name(GS_MSG_PUSH_ACK), "push_ack");
	assert_string_equal(gs__msg_type_name(GS_MSG_ERROR), "error");
	assert_string_equal(gs__msg_type_name(99), "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(golden_vectors, setup,
						teardown),
		cmocka_unit_test_setup_teardown(round_trip_is_stable, setup,
						teardown),
		cmocka_unit_test_setup_teardown(encode_appends_frames, setup,
						teardown),
		cmocka_unit_test_setup_teardown(encode_rejects_bad_messages,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			decode_honours_negotiated_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(allocation_failures, setup,
						teardown),
		cmocka_unit_test_setup_teardown(changes_carry_conflicts, setup,
						teardown),
		cmocka_unit_test_setup_teardown(scope_fields_round_trip, setup,
						teardown),
		cmocka_unit_test(type_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
