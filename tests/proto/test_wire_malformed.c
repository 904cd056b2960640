/*
 * DESIGN.md T5, the protobuf part: hand-built envelopes that break
 * the wire format or the protocol's rules. Each must be refused with
 * GS_EPROTO and a detail naming the problem, in well under 10 ms, and the
 * oversized ones before a single allocation. A few must be accepted:
 * unknown fields are how newer peers extend messages.
 */
#include <gridsync/wire.h>

#include "gs_test.h"

/* ---- a tiny protobuf writer (test side, independent of protobuf-c) --- */

struct pb {
	uint8_t *p;
	size_t n;
	size_t cap;
};

static void put_raw(struct pb *b, const void *d, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	if (n > 0)
		memcpy(b->p + b->n, d, n);
	b->n += n;
}

static void put_varint(struct pb *b, uint64_t v)
{
	uint8_t c;

	do {
		c = (uint8_t)(v & 0x7f);
		v >>= 7;
		if (v != 0)
			c |= 0x80;
		put_raw(b, &c, 1);
	} while (v != 0);
}

static void put_tag(struct pb *b, unsigned field, unsigned wt)
{
	put_varint(b, (uint64_t)field << 3 | wt);
}

static void put_u(struct pb *b, unsigned field, uint64_t v)
{
	put_tag(b, field, 0);
	put_varint(b, v);
}

static void put_bytes(struct pb *b, unsigned field, const void *d, size_t n)
{
	put_tag(b, field, 2);
	put_varint(b, n);
	put_raw(b, d, n);
}

static void put_str(struct pb *b, unsigned field, const char *s)
{
	put_bytes(b, field, s, strlen(s));
}

static void put_msg(struct pb *b, unsigned field, struct pb *child)
{
	put_bytes(b, field, child->p, child->n);
	free(child->p);
	memset(child, 0, sizeof(*child));
}

static void pb_free(struct pb *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* A valid Hello body, field by field (gridsync.proto numbering). */
static void hello_fields(struct pb *h, const char *device_id)
{
	put_u(h, 1, 1);
	put_u(h, 2, 1);
	put_str(h, 3, device_id);
	put_u(h, 4, 1);
	put_str(h, 5, "gridsync/0.1.0");
	put_u(h, 6, 42);
	put_u(h, 7, 1);
}

static void envelope_hello(struct pb *env, const char *device_id)
{
	struct pb h = { 0 };

	hello_fields(&h, device_id);
	put_msg(env, 1, &h);
}

/* One Push entry with every field the protocol needs. */
static void push_entry(struct pb *e, uint64_t seq, size_t sha_len)
{
	static const uint8_t cs[] = { 'T', 1, 1, 'x', 0 };
	uint8_t sha[40] = { 0 };

	put_u(e, 1, seq);
	put_u(e, 2, 77);
	put_bytes(e, 3, cs, sizeof(cs));
	put_bytes(e, 4, sha, sha_len);
}

/* ---- fixture and the checking helper -------------------------------- */

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
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	assert_int_equal(f->alloc.live, 1);
	gs_ctx_free(f->ctx);
	free(f);
	return 0;
}

#define FAST_NS \
	(1000ull * 1000 * 1000) /* a hang detector: 1 s, whatever the load */

/* Slowest refusal seen, printed at the end for the record. */
static uint64_t slowest_ns;

/*
 * Decode env and expect GS_EPROTO whose detail contains want. If
 * no_alloc, not one allocation may happen first. Returns nothing; fails
 * the test on any difference.
 */
static void expect_reject(struct fx *f,
			  const struct pb *env,
			  const char *want,
			  bool no_alloc)
{
	struct gs_msg *m = NULL;
	uint64_t t0;
	uint64_t dt;
	int rc;

	gs_test_fail_alloc_at(&f->alloc, -1); /* resets the count */
	t0 = gs__clock_mono_ns();
	rc = gs__msg_decode(&m, f->ctx, env->p, env->n, NULL);
	dt = gs__clock_mono_ns() - t0;
	if (dt > slowest_ns)
		slowest_ns = dt;
	if (rc != GS_EPROTO)
		fail_msg("want GS_EPROTO (%s), got %s", want, gs_errname(rc));
	assert_null(m);
	if (strstr(gs_ctx_errmsg(f->ctx), want) == NULL)
		fail_msg("detail \"%s\" lacks \"%s\"", gs_ctx_errmsg(f->ctx),
			 want);
	if (dt >= FAST_NS)
		fail_msg("took %llu ns (%s)", (unsigned long long)dt, want);
	if (no_alloc && f->alloc.count != 0)
		fail_msg("%ld allocations before refusing (%s)", f->alloc.count,
			 want);
	assert_int_equal(f->alloc.live, 1);
}

static struct gs_msg *expect_accept(struct fx *f, const struct pb *env)
{
	struct gs_msg *m = NULL;
	int rc = gs__msg_decode(&m, f->ctx, env->p, env->n, NULL);

	if (rc != GS_OK)
		fail_msg("refused: %s (%s)", gs_errname(rc),
			 gs_ctx_errmsg(f->ctx));
	return m;
}

/* ---- cases ------------------------------------------------------------ */

static void truncated_and_overlong(void **state)
{
	struct fx *f = *state;
	struct pb env = { 0 };
	static const uint8_t trunc_inner[] = { 0x0a, 0x02, 0x08, 0x81 };
	static const uint8_t trunc_tag[] = { 0x0a, 0x01, 0x88 };
	static const uint8_t past_end[] = { 0x0a, 0x64, 0x08, 0x01 };
	static const uint8_t long_varint[] = { 0x0a, 0x0c, 0x08, 0xff, 0xff,
					       0xff, 0xff, 0xff, 0xff, 0xff,
					       0xff, 0xff, 0xff, 0x01 };
	static const uint8_t big10[] = { 0x0a, 0x0b, 0x08, 0xff, 0xff,
					 0xff, 0xff, 0xff, 0xff, 0xff,
					 0xff, 0xff, 0x02 };
	static const uint8_t trunc_fixed[] = { 0x0a, 0x03, 0x0d, 0x01, 0x02 };

	put_raw(&env, trunc_inner, sizeof(trunc_inner));
	expect_reject(f, &env, "truncated varint", true);
	pb_free(&env);
	put_raw(&env, trunc_tag, sizeof(trunc_tag));
	expect_reject(f, &env, "truncated tag", true);
	pb_free(&env);
	put_raw(&env, past_end, sizeof(past_end));
	expect_reject(f, &env, "runs past the end", true);
	pb_free(&env);
	put_raw(&env, long_varint, sizeof(long_varint));
	expect_reject(f, &env, "overlong varint", true);
	pb_free(&env);
	put_raw(&env, big10, sizeof(big10));
	expect_reject(f, &env, "overlong varint", true);
	pb_free(&env);
	/* A fixed32 value cut after two of its four bytes. */
	put_raw(&env, trunc_fixed, sizeof(trunc_fixed));
	expect_reject(f, &env, "truncated fixed", true);
	pb_free(&env);
	/* The envelope itself cut short. */
	envelope_hello(&env, "dev-1");
	env.n -= 3;
	expect_reject(f, &env, "runs past the end", true);
	pb_free(&env);
}

static void unknown_fields_are_skipped(void **state)
{
	struct fx *f = *state;
	struct pb env = { 0 };
	struct pb h = { 0 };
	struct gs_msg *m;
	uint8_t fixed[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };

	put_u(&h, 100, 5);
	hello_fields(&h, "dev-1");
	put_bytes(&h, 101, "future", 6);
	put_tag(&h, 102, 1);
	put_raw(&h, fixed, 8);
	put_tag(&h, 103, 5);
	put_raw(&h, fixed, 4);
	put_u(&h, 536870911, 1); /* the largest field number */
	put_msg(&env, 1, &h);
	put_u(&env, 200, 9); /* in the envelope too */
	m = expect_accept(f, &env);
	assert_int_equal(m->type, GS_MSG_HELLO);
	assert_string_equal(m->u.hello.device_id, "dev-1");
	assert_int_equal(m->u.hello.cursor, 42);
	gs__msg_free(m);
	pb_free(&env);

	/* Bounded: a flood of unknown fields is refused before unpack. */
	hello_fields(&h, "dev-1");
	for (unsigned i = 0; i < 17; i++)
		put_u(&h, 300 + i, i);
	put_msg(&env, 1, &h);
	expect_reject(f, &env, "unknown fields", true);
	pb_free(&env);

	/* A message type from a newer version: nothing this one knows. */
	put_bytes(&env, 10, "", 0);
	expect_reject(f, &env, "no message this version knows", false);
	pb_free(&env);
	put_u(&env, 0, 1); /* field number 0 */
	expect_reject(f, &env, "field number 0", true);
	pb_free(&env);
}

static void wrong_wire_types(void **state)
{
	struct fx *f = *state;
	struct pb env = { 0 };
	struct pb h = { 0 };

	/* Hello.proto_min (varint) sent length-delimited. */
	put_bytes(&h, 1, "\x01", 1);
	put_msg(&env, 1, &h);
	expect_reject(f, &env, "field proto_min has wire type 2", true);
	pb_free(&env);
	/* Envelope.hello (message) sent as a varint. */
	put_u(&env, 1, 5);
	expect_reject(f, &env, "field hello has wire type 0", true);
	pb_free(&env);
	/* Hello.cursor as fixed64. */
	put_tag(&h, 6, 1);
	put_raw(&h, "\0\0\0\0\0\0\0\0", 8);
	put_msg(&env, 1, &h);
	expect_reject(f, &env, "field cursor has wire type 1", true);
	pb_free(&env);
	/* Groups and the reserved wire types are never used. */
	put_tag(&env, 1, 3);
	put_tag(&env, 1, 4);
	expect_reject(f, &env, "wire type 3", true);
	pb_free(&env);
	put_tag(&env, 5, 7);
	expect_reject(f, &env, "wire type 7", true);
	pb_free(&env);
}

static void duplicates_are_refused(void **state)
{
	struct fx *f = *state;
	struct pb env = { 0 };
	struct pb h = { 0 };
	struct pb p = { 0 };

	/* Two members of the Envelope oneof. */
	envelope_hello(&env, "dev-1");
	put_u(&p, 1, 1);
	put_u(&p, 2, 2);
	put_msg(&env, 7, &p);
	expect_reject(f, &env, "oneof members hello and ping", true);
	pb_free(&env);
	/* The same member twice (protobuf would merge them). */
	envelope_hello(&env, "dev-1");
	envelope_hello(&env, "dev-2");
	expect_reject(f, &env, "field hello given twice", true);
	pb_free(&env);
	/* A singular scalar twice (protobuf would keep the last). */
	hello_fields(&h, "dev-1");
	put_str(&h, 3, "dev-2");
	put_msg(&env, 1, &h);
	expect_reject(f, &env, "field device_id given twice", true);
	pb_free(&env);
}

static void invalid_utf8(void **state)
{
	struct fx *f = *state;
	static const char *const bad[] = {
		"\xff\xfe",         /* never valid */
		"\xc0\x80",         /* overlong NUL */
		"a\0b",             /* embedded NUL (length 3 below) */
		"\xed\xa0\x80",     /* UTF-16 surrogate */
		"\xf4\x90\x80\x80", /* above U+10FFFF */
		"\xe4\xbd",         /* truncated sequence */
	};
	static const size_t len[] = { 2, 2, 3, 3, 4, 2 };
	struct pb env = { 0 };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct pb h = { 0 };

		put_u(&h, 1, 1);
		put_u(&h, 2, 1);
		put_bytes(&h, 3, bad[i], len[i]);
		put_msg(&env, 1, &h);
		expect_reject(f, &env, "field device_id is not UTF-8", true);
		pb_free(&env);
	}
	/* Deep inside: Welcome.scope. */
	{
		struct pb w = { 0 };

		put_str(&w, 4, "510106001001");
		put_bytes(&w, 4, "\xff", 1);
		put_msg(&env, 2, &w);
		expect_reject(f, &env, "field scope is not UTF-8", true);
		pb_free(&env);
	}
	/* Valid multi-byte text passes the scan. */
	envelope_hello(&env, "网格员-01");
	gs__msg_free(expect_accept(f, &env));
	pb_free(&env);
}

/* 10^6 elements fit the 8 MiB frame but not our limits: refused before
 * protobuf-c would allocate a struct for each. */
static void million_elements(void **state)
{
	struct fx *f = *state;
	struct pb env = { 0 };
	struct pb p = { 0 };

	put_u(&p, 1, 1);
	for (unsigned i = 0; i < 1000000; i++)
		put_bytes(&p, 2, "", 0);
	put_msg(&env, 3, &p);
	assert_true(env.n <= GS_FRAME_MAX_DEFAULT);
	expect_reject(f, &env, "field entries has more than 1000 elements",
		      true);
	pb_free(&env);

	for (unsigned i = 0; i < 1000000; i++)
		put_str(&p, 4, "g");
	put_msg(&env, 2, &p);
	assert_true(env.n <= GS_FRAME_MAX_DEFAULT);
	expect_reject(f, &env, "field scope has more than 16384 elements",
		      true);
	pb_free(&env);

	for (unsigned i = 0; i < 1000000; i++)
		put_bytes(&p, 3, "", 0);
	put_msg(&env, 4, &p);
	expect_reject(f, &env, "field conflicts has more than 16384", true);
	pb_free(&env);
}

static void semantic_rules(void **state)
{
	struct fx *f = *state;
	struct pb env = { 0 };
	struct pb m = { 0 };
	struct pb e = { 0 };

	/* An envelope with nothing in it. */
	expect_reject(f, &env, "envelope of 0 bytes", true);
	put_bytes(&env, 5, "", 0); /* Pull with no fields */
	expect_reject(f, &env, "Pull.after_seq/byte_budget[0] is missing",
		      false);
	pb_free(&env);

	/* Hello without device_id. */
	put_u(&m, 1, 1);
	put_u(&m, 2, 1);
	put_u(&m, 4, 1);
	put_str(&m, 5, "x");
	put_u(&m, 6, 0);
	put_u(&m, 7, 1);
	put_msg(&env, 1, &m);
	expect_reject(f, &env, "Hello.device_id[0] is missing", false);
	pb_free(&env);

	/* sha256 must be exactly 32 bytes. */
	put_u(&m, 1, 1);
	push_entry(&e, 1, 31);
	put_msg(&m, 2, &e);
	put_msg(&env, 3, &m);
	expect_reject(f, &env, "sha256 is 31 bytes, not 32", false);
	pb_free(&env);
	put_u(&m, 1, 1);
	push_entry(&e, 1, 33);
	put_msg(&m, 2, &e);
	put_msg(&env, 3, &m);
	expect_reject(f, &env, "sha256 is 33 bytes", false);
	pb_free(&env);

	/* Unknown compression, and ZSTD without its length. */
	put_u(&m, 1, 1);
	push_entry(&e, 1, 32);
	put_u(&e, 5, 7);
	put_u(&e, 6, 100);
	put_msg(&m, 2, &e);
	put_msg(&env, 3, &m);
	expect_reject(f, &env, "compression 7 unknown", false);
	pb_free(&env);
	put_u(&m, 1, 1);
	push_entry(&e, 1, 32);
	put_u(&e, 5, 1);
	put_msg(&m, 2, &e);
	put_msg(&env, 3, &m);
	expect_reject(f, &env, "uncompressed_len[0] is missing", false);
	pb_free(&env);

	/* device_seq must ascend. */
	put_u(&m, 1, 1);
	push_entry(&e, 5, 32);
	put_msg(&m, 2, &e);
	push_entry(&e, 5, 32);
	put_msg(&m, 2, &e);
	put_msg(&env, 3, &m);
	expect_reject(f, &env, "device_seq not ascending", false);
	pb_free(&env);

	/* Unknown enum values. */
	put_u(&m, 1, 99);
	put_str(&m, 2, "x");
	put_msg(&env, 9, &m);
	expect_reject(f, &env, "Error.code 99 unknown", false);
	pb_free(&env);
	put_u(&m, 1, 1);
	put_u(&e, 1, 1);
	put_u(&e, 2, 0);
	put_msg(&m, 2, &e);
	put_msg(&env, 4, &m);
	expect_reject(f, &env, "result 0 unknown", false);
	pb_free(&env);

	/* Changes: the cursor cannot lag its entries. */
	{
		static const uint8_t cs[] = { 'T' };

		put_u(&m, 1, 1);
		put_u(&e, 1, 10);
		put_u(&e, 2, 1);
		put_str(&e, 3, "srv");
		put_bytes(&e, 4, cs, 1);
		put_msg(&m, 2, &e);
		put_u(&m, 3, 9);
		put_u(&m, 4, 0);
		put_msg(&env, 6, &m);
		expect_reject(f, &env, "next_cursor is behind", false);
		pb_free(&env);
	}

	/* Welcome limits outside what any negotiation may set. */
	{
		struct pb l = { 0 };

		put_u(&m, 1, 1);
		put_str(&m, 2, "srv");
		put_u(&m, 3, 1);
		put_u(&l, 1, 0xffffffffu);
		put_u(&l, 2, 10);
		put_u(&l, 3, 10);
		put_msg(&m, 5, &l);
		put_u(&m, 6, 1);
		put_u(&m, 7, 1);
		put_msg(&env, 2, &m);
		expect_reject(f, &env, "max_frame_bytes 4294967295", false);
		pb_free(&env);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(truncated_and_overlong, setup,
						teardown),
		cmocka_unit_test_setup_teardown(unknown_fields_are_skipped,
						setup, teardown),
		cmocka_unit_test_setup_teardown(wrong_wire_types, setup,
						teardown),
		cmocka_unit_test_setup_teardown(duplicates_are_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(invalid_utf8, setup, teardown),
		cmocka_unit_test_setup_teardown(million_elements, setup,
						teardown),
		cmocka_unit_test_setup_teardown(semantic_rules, setup,
						teardown),
	};

	int failed = cmocka_run_group_tests(tests, NULL, NULL);

	fprintf(stderr, "# slowest refusal: %llu us\n",
		(unsigned long long)(slowest_ns / 1000));
	return failed;
}
