/*
 * Frame reader: any split of the byte stream yields the same frames;
 * bad lengths are refused before allocation, with the stream offset in
 * the detail, and the reader stays failed afterwards.
 */
#include <gridsync/wire.h>

#include "gs_test.h"

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

/* A stream of frames with pseudo-random bodies; lengths and offsets are
 * remembered so the reader's output can be checked exactly. */
struct stream {
	uint8_t *bytes;
	size_t len;
	size_t n_frames;
	size_t off[64];
	size_t blen[64];
};

static void put_frame(struct stream *s, const uint8_t *body, size_t n)
{
	uint8_t *p;

	s->bytes = realloc(s->bytes, s->len + 4 + n);
	assert_non_null(s->bytes);
	p = s->bytes + s->len;
	p[0] = (uint8_t)(n >> 24);
	p[1] = (uint8_t)(n >> 16);
	p[2] = (uint8_t)(n >> 8);
	p[3] = (uint8_t)n;
	memcpy(p + 4, body, n);
	assert_true(s->n_frames < 64);
	s->off[s->n_frames] = s->len;
	s->blen[s->n_frames] = n;
	s->n_frames++;
	s->len += 4 + n;
}

static void make_stream(struct stream *s, uint64_t *rng)
{
	/* Sizes around every interesting boundary: 1 byte, the reader's
	 * first buffer (4096), its keep limit (64 KiB), and a large one. */
	static const size_t sizes[] = { 1,     2,     3,      4,     5, 100,
					4095,  4096,  4097,   20000, 1, 65535,
					65536, 65537, 300000, 7,     1 };
	uint8_t *body = malloc(300000);

	assert_non_null(body);
	memset(s, 0, sizeof(*s));
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		for (size_t k = 0; k < sizes[i]; k++)
			body[k] = (uint8_t)gs_test_rand(rng);
		put_frame(s, body, sizes[i]);
	}
	free(body);
}

/*
 * Feed s->bytes in chunks of 1..max_chunk bytes and check every frame
 * (content and stream offset) comes out in order, and nothing else.
 */
static void
feed_all(struct fx *f, const struct stream *s, uint64_t *rng, size_t max_chunk)
{
	struct gs_frame_reader r;
	size_t pos = 0;
	size_t got = 0;

	gs__frame_reader_init(&r, f->ctx, 0);
	while (pos < s->len) {
		size_t chunk =
			max_chunk == 1 ? 1 : 1 + gs_test_rand(rng) % max_chunk;
		const uint8_t *p = s->bytes + pos;

		if (chunk > s->len - pos)
			chunk = s->len - pos;
		pos += chunk;
		while (chunk > 0) {
			struct gs_frame fr;
			size_t used = 0;
			int rc =
				gs__frame_reader_feed(&fr, &used, &r, p, chunk);

			assert_true(used <= chunk);
			p += used;
			chunk -= used;
			if (rc == GS_EAGAIN) {
				assert_int_equal(chunk, 0);
				break;
			}
			assert_gs_ok(rc);
			assert_true(got < s->n_frames);
			assert_int_equal(fr.len, s->blen[got]);
			assert_int_equal(fr.offset, s->off[got]);
			assert_memory_equal(fr.data, s->bytes + s->off[got] + 4,
					    fr.len);
			got++;
		}
	}
	assert_int_equal(got, s->n_frames);
	gs__frame_reader_fini(&r);
	gs__frame_reader_fini(&r); /* idempotent */
}

static void byte_by_byte(void **state)
{
	struct fx *f = *state;
	uint64_t rng = 1;
	struct stream s;

	make_stream(&s, &rng);
	feed_all(f, &s, &rng, 1);
	free(s.bytes);
}

static void random_splits(void **state)
{
	struct fx *f = *state;
	uint64_t rng = gs_test_seed("frame.random_splits");
	struct stream s;

	make_stream(&s, &rng);
	for (int round = 0; round < 40; round++)
		feed_all(f, &s, &rng, round < 20 ? 7 : 100000);
	feed_all(f, &s, &rng, s.len); /* usually in one piece */
	free(s.bytes);
}

static void zero_length_is_refused(void **state)
{
	struct fx *f = *state;
	struct gs_frame_reader r;
	struct gs_frame fr;
	/* one good 1-byte frame, then a zero length at offset 5 */
	static const uint8_t in[] = { 0, 0, 0, 1, 0x42, 0, 0,
				      0, 0, 0, 0, 0,    1, 0x42 };
	size_t used = 0;

	gs__frame_reader_init(&r, f->ctx, 0);
	assert_gs_ok(gs__frame_reader_feed(&fr, &used, &r, in, sizeof(in)));
	assert_int_equal(used, 5);
	assert_gs_err(
		gs__frame_reader_feed(&fr, &used, &r, in + 5, sizeof(in) - 5),
		GS_EPROTO);
	assert_non_null(strstr(gs_ctx_errmsg(f->ctx), "zero length"));
	assert_non_null(strstr(gs_ctx_errmsg(f->ctx), "offset 5"));
	/* Sticky: even a perfect frame is refused now. */
	assert_gs_err(gs__frame_reader_feed(&fr, &used, &r, in, 5), GS_EPROTO);
	assert_int_equal(used, 0);
	gs__frame_reader_fini(&r);
}

static void oversized_lengths_are_refused_before_allocating(void **state)
{
	struct fx *f = *state;
	static const uint32_t lens[] = { 0xffffffffu, 0x80000000u,
					 GS_FRAME_MAX_DEFAULT + 1,
					 GS_FRAME_MAX_CEILING };

	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		struct gs_frame_reader r;
		struct gs_frame fr;
		uint8_t in[8] = { (uint8_t)(lens[i] >> 24),
				  (uint8_t)(lens[i] >> 16),
				  (uint8_t)(lens[i] >> 8),
				  (uint8_t)lens[i],
				  1,
				  2,
				  3,
				  4 };
		size_t used = 0;
		uint64_t t0;
		char want[64];

		gs__frame_reader_init(&r, f->ctx, 0);
		gs_test_fail_alloc_at(&f->alloc, -1);
		/* The length arrives in two pieces; no body yet. */
		assert_gs_err(gs__frame_reader_feed(&fr, &used, &r, in, 2),
			      GS_EAGAIN);
		t0 = gs__clock_mono_ns();
		assert_gs_err(gs__frame_reader_feed(&fr, &used, &r, in + 2, 6),
			      GS_EPROTO);
		assert_true(gs__clock_mono_ns() - t0 <
			    1000000000ull); /* no hang */
		assert_int_equal(f->alloc.count, 0);
		snprintf(want, sizeof(want), "length %lu at stream offset 0",
			 (unsigned long)lens[i]);
		if (strstr(gs_ctx_errmsg(f->ctx), want) == NULL)
			fail_msg("detail: %s", gs_ctx_errmsg(f->ctx));
		assert_int_equal(used, 2); /* stopped right after the length */
		gs__frame_reader_fini(&r);
	}
}

/* The negotiated maximum is inclusive, and clamps to the ceiling. */
static void maximum_is_exact(void **state)
{
	struct fx *f = *state;
	struct gs_frame_reader r;
	struct gs_frame fr;
	uint8_t in[4 + 100];
	size_t used = 0;

	memset(in, 0x5a, sizeof(in));
	in[0] = in[1] = in[2] = 0;
	in[3] = 100;
	gs__frame_reader_init(&r, f->ctx, 100);
	assert_gs_ok(gs__frame_reader_feed(&fr, &used, &r, in, sizeof(in)));
	assert_int_equal(fr.len, 100);
	gs__frame_reader_fini(&r);
	gs__frame_reader_init(&r, f->ctx, 99);
	assert_gs_err(gs__frame_reader_feed(&fr, &used, &r, in, sizeof(in)),
		      GS_EPROTO);
	assert_non_null(strstr(gs_ctx_errmsg(f->ctx), "maximum 99"));
	gs__frame_reader_fini(&r);
	gs__frame_reader_init(&r, f->ctx, 0xffffffffu);
	assert_int_equal(r.max, GS_FRAME_MAX_CEILING);
	gs__frame_reader_fini(&r);
	gs__frame_reader_init(&r, f->ctx, 0);
	assert_int_equal(r.max, GS_FRAME_MAX_DEFAULT);
	/* Empty input is simply "need more". */
	assert_gs_err(gs__frame_reader_feed(&fr, &used, &r, NULL, 0),
		      GS_EAGAIN);
	assert_int_equal(used, 0);
	gs__frame_reader_fini(&r);
}

/* A peer that announces a large frame and trickles bytes costs memory in
 * proportion to what it sent, not to what it announced. */
static void memory_follows_received_bytes(void **state)
{
	struct fx *f = *state;
	struct gs_frame_reader r;
	struct gs_frame fr;
	static const uint8_t hdr[4] = { 0x00, 0x80, 0x00, 0x00 }; /* 8 MiB */
	uint8_t chunk[1000];
	size_t used = 0;

	memset(chunk, 1, sizeof(chunk));
	gs__frame_reader_init(&r, f->ctx, 0);
	assert_gs_err(gs__frame_reader_feed(&fr, &used, &r, hdr, 4), GS_EAGAIN);
	assert_int_equal(r.cap, 0);
	assert_gs_err(gs__frame_reader_feed(&fr, &used, &r, chunk, 1000),
		      GS_EAGAIN);
	assert_true(r.cap <= 4096);
	for (int i = 0; i < 10; i++)
		assert_gs_err(
			gs__frame_reader_feed(&fr, &used, &r, chunk, 1000),
			GS_EAGAIN);
	assert_true(r.cap <= 16384);
	gs__frame_reader_fini(&r);
}

/* Every allocation in the buffered path may fail: a clean, sticky
 * GS_ENOMEM and nothing leaked after fini. */
static void allocation_failures(void **state)
{
	struct fx *f = *state;
	uint64_t rng = 7;
	struct stream s;
	unsigned n;

	make_stream(&s, &rng);
	for (n = 0;; n++) {
		struct gs_frame_reader r;
		size_t pos = 0;
		size_t frames = 0;
		int rc = GS_OK;

		gs__frame_reader_init(&r, f->ctx, 0);
		gs_test_fail_alloc_at(&f->alloc, n);
		while (pos < s.len) {
			struct gs_frame fr;
			size_t chunk = s.len - pos < 3000 ? s.len - pos : 3000;
			size_t used = 0;

			rc = gs__frame_reader_feed(&fr, &used, &r,
						   s.bytes + pos, chunk);
			pos += used;
			if (rc == GS_OK)
				frames++;
			else if (rc != GS_EAGAIN)
				break;
		}
		gs_test_fail_alloc_at(&f->alloc, -1);
		if (pos == s.len && (rc == GS_OK || rc == GS_EAGAIN)) {
			assert_int_equal(frames, s.n_frames);
			gs__frame_reader_fini(&r);
			break;
		}
		assert_gs_err(rc, GS_ENOMEM);
		{
			struct gs_frame fr;
			size_t used = 0;

			assert_gs_err(gs__frame_reader_feed(&fr, &used, &r,
							    s.bytes, 10),
				      GS_ENOMEM);
		}
		gs__frame_reader_fini(&r);
		assert_int_equal(f->alloc.live, 1);
	}
	assert_true(n > 0);
	free(s.bytes);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(byte_by_byte, setup, teardown),
		cmocka_unit_test_setup_teardown(random_splits, setup, teardown),
		cmocka_unit_test_setup_teardown(zero_length_is_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			oversized_lengths_are_refused_before_allocating, setup,
			teardown),
		cmocka_unit_test_setup_teardown(maximum_is_exact, setup,
						teardown),
		cmocka_unit_test_setup_teardown(memory_follows_received_bytes,
						setup, teardown),
		cmocka_unit_test_setup_teardown(allocation_failures, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
