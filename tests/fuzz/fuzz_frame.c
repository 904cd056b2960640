/*
 * libFuzzer target: frame reader, envelope decoder, encoder, zstd unpack.
 *
 * The input is a raw byte stream as a peer would send it (so the golden
 * vectors in tests/data/wire are valid seeds). Properties checked, each a
 * crash when broken:
 *   1. the reader yields the same frames and the same final error whether
 *      the stream arrives whole or in pseudo-random pieces (the split is
 *      derived from the input, so every run is reproducible);
 *   2. a frame that decodes re-encodes, the re-encoding decodes, and
 *      encoding that again gives identical bytes (our encoding is
 *      canonical and everything we accept we can also send);
 *   3. changesets inside Push and Changes unpack within a 1 MiB ceiling or
 *      fail cleanly.
 * Sanitizers catch the rest (overflows, leaks, UB).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gridsync/wire.h>

/* The entry point's name is libFuzzer's, not ours. */
/* NOLINTNEXTLINE(readability-identifier-naming) */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FRAME  (1u << 20)
#define MAX_FRAMES 16384

struct seen {
	size_t n;
	int final_rc;
	struct gs_frame f[MAX_FRAMES];
};

static struct seen whole;

#define CHECK(cond)                                                           \
	do {                                                                  \
		if (!(cond)) {                                                \
			fprintf(stderr, "fuzz_frame: %s failed at line %d\n", \
				#cond, __LINE__);                             \
			abort();                                              \
		}                                                             \
	} while (0)

static uint64_t mix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Run the reader over data in pieces of at most max_piece bytes (0: one
 * piece); record frames into out when out is not NULL, else compare with
 * `whole`. */
static void read_stream(struct gs_ctx *ctx,
			const uint8_t *data,
			size_t size,
			size_t max_piece,
			uint64_t seed,
			struct seen *out)
{
	struct gs_frame_reader r;
	size_t pos = 0;
	size_t k = 0;
	int rc = GS_EAGAIN;

	gs__frame_reader_init(&r, ctx, MAX_FRAME);
	while (pos < size) {
		size_t piece = max_piece == 0 ? size - pos
					      : 1 + mix(&seed) % max_piece;
		const uint8_t *p = data + pos;

		if (piece > size - pos)
			piece = size - pos;
		pos += piece;
		while (piece > 0) {
			struct gs_frame fr;
			size_t used = 0;

			rc = gs__frame_reader_feed(&fr, &used, &r, p, piece);
			CHECK(used <= piece);
			p += used;
			piece -= used;
			if (rc != GS_OK)
				break;
			if (out != NULL) {
				if (out->n < MAX_FRAMES)
					out->f[out->n++] = fr;
			} else if (k < whole.n) {
				CHECK(fr.len == whole.f[k].len);
				CHECK(fr.offset == whole.f[k].offset);
				CHECK(memcmp(fr.data, whole.f[k].data,
					     fr.len) == 0);
				k++;
			}
		}
		if (rc != GS_OK && rc != GS_EAGAIN)
			break;
	}
	if (out != NULL) {
		out->final_rc = rc;
	} else {
		CHECK(rc == whole.final_rc);
		CHECK(k == whole.n || whole.n == MAX_FRAMES);
	}
	gs__frame_reader_fini(&r);
}

static void unpack_all(struct gs_ctx *ctx, const struct gs_msg *m)
{
	struct gs_zstd zs;
	struct gs_buf out;
	size_t n = 0;

	gs__zstd_init(&zs, ctx);
	gs__buf_init(&out, ctx, MAX_FRAME);
	if (m->type == GS_MSG_PUSH)
		n = m->u.push.n_entries;
	else if (m->type == GS_MSG_CHANGES)
		n = m->u.changes.n_entries;
	for (size_t i = 0; i < n; i++) {
		size_t before = out.len;
		int rc;

		if (m->type == GS_MSG_PUSH) {
			const struct gs_push_entry *e = &m->u.push.entries[i];

			rc = gs__changeset_unpack(
				&out, &zs, e->compression, e->changeset,
				e->changeset_len, e->uncompressed_len,
				e->sha256);
			if (rc == GS_OK)
				CHECK(out.len - before == e->uncompressed_len);
		} else {
			const struct gs_change *e = &m->u.changes.entries[i];

			rc = gs__changeset_unpack(
				&out, &zs, e->compression, e->changeset,
				e->changeset_len, e->uncompressed_len, NULL);
			if (rc == GS_OK)
				CHECK(out.len - before == e->uncompressed_len);
		}
		if (rc != GS_OK)
			CHECK(out.len == before);
		out.len = 0;
	}
	gs__zstd_fini(&zs);
	gs__buf_fini(&out);
}

static void round_trip(struct gs_ctx *ctx, const struct gs_frame *fr)
{
	struct gs_wire_limits lim = GS_WIRE_LIMITS_INIT;
	struct gs_msg *m1 = NULL;
	struct gs_msg *m2 = NULL;
	struct gs_buf b1;
	struct gs_buf b2;
	int rc;

	lim.max_frame = MAX_FRAME;
	lim.max_changeset = MAX_FRAME;
	if (gs__msg_decode(&m1, ctx, fr->data, fr->len, &lim) != GS_OK)
		return;
	gs__buf_init(&b1, ctx, (size_t)2 * MAX_FRAME);
	gs__buf_init(&b2, ctx, (size_t)2 * MAX_FRAME);
	rc = gs__msg_encode(&b1, m1, &lim);
	if (rc != GS_OK)
		fprintf(stderr, "re-encode: %s\n", gs_ctx_errmsg(ctx));
	CHECK(rc == GS_OK);
	CHECK(b1.len >= GS_FRAME_HDR_LEN);
	rc = gs__msg_decode(&m2, ctx, b1.data + GS_FRAME_HDR_LEN,
			    b1.len - GS_FRAME_HDR_LEN, &lim);
	if (rc != GS_OK)
		fprintf(stderr, "re-decode: %s\n", gs_ctx_errmsg(ctx));
	CHECK(rc == GS_OK);
	CHECK(m2->type == m1->type);
	CHECK(gs__msg_encode(&b2, m2, &lim) == GS_OK);
	CHECK(b1.len == b2.len && memcmp(b1.data, b2.data, b1.len) == 0);
	unpack_all(ctx, m1);
	gs__msg_free(m2);
	gs__msg_free(m1);
	gs__buf_fini(&b1);
	gs__buf_fini(&b2);
}

/* NOLINTNEXTLINE(readability-identifier-naming) */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct gs_ctx *ctx;
	uint64_t seed = 0xcbf29ce484222325ull;

	if (ctx == NULL && gs_ctx_new(&ctx, NULL) != GS_OK)
		abort();
	for (size_t i = 0; i < size; i++)
		seed = (seed ^ data[i]) * 0x100000001b3ull;
	memset(&whole, 0, offsetof(struct seen, f));
	read_stream(ctx, data, size, 0, seed, &whole);
	read_stream(ctx, data, size, 1, seed, NULL);
	read_stream(ctx, data, size, 1 + seed % 257, seed, NULL);
	for (size_t i = 0; i < whole.n; i++)
		round_trip(ctx, &whole.f[i]);
	return 0;
}
