/*
 * Changeset compression: round trips, the threshold, and frames built by
 * hand (RFC 8878) to lie about their size: a 32 KiB frame that claims
 * 1 GiB must be refused from its header alone, without inflating.
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

/* ---- hand-built zstd frames --------------------------------------- */

struct zb {
	uint8_t *p;
	size_t n;
};

static void zput(struct zb *z, const void *d, size_t n)
{
	z->p = realloc(z->p, z->n + n);
	assert_non_null(z->p);
	memcpy(z->p + z->n, d, n);
	z->n += n;
}

static void zbyte(struct zb *z, uint8_t b)
{
	zput(z, &b, 1);
}

/* Block header: 3 bytes little-endian, last flag, type, size. */
static void zblock(struct zb *z, unsigned type, uint32_t size, bool last)
{
	uint32_t h = size << 3 | type << 1 | (last ? 1u : 0u);

	zbyte(z, (uint8_t)h);
	zbyte(z, (uint8_t)(h >> 8));
	zbyte(z, (uint8_t)(h >> 16));
}

static void zmagic(struct zb *z)
{
	static const uint8_t m[4] = { 0x28, 0xb5, 0x2f, 0xfd };

	zput(z, m, 4);
}

/* Single segment, 4-byte content size, then RLE blocks of 128 KiB of
 * zeros adding up to `claim` bytes: a real, valid 1 GiB bomb in ~32 KiB. */
static void zbomb(struct zb *z, uint32_t claim)
{
	uint32_t left = claim;

	zmagic(z);
	zbyte(z, 0xa0);
	zbyte(z, (uint8_t)claim);
	zbyte(z, (uint8_t)(claim >> 8));
	zbyte(z, (uint8_t)(claim >> 16));
	zbyte(z, (uint8_t)(claim >> 24));
	while (left > 0) {
		uint32_t n = left > 131072 ? 131072 : left;

		left -= n;
		zblock(z, 1, n, left == 0);
		zbyte(z, 0);
	}
}

/* ---- tests ------------------------------------------------------------ */

static void fill(uint8_t *p, size_t n, uint64_t *rng, bool compressible)
{
	static const char words[] = "visit household 住户 燃气 检查 ok ";

	for (size_t i = 0; i < n; i++)
		p[i] = compressible ? (uint8_t)words[(i * 7 + (i / 13)) %
						     (sizeof(words) - 1)]
				    : (uint8_t)gs_test_rand(rng);
}

static void round_trips(void **state)
{
	struct fx *f = *state;
	static const size_t sizes[] = { 0,   1,   95,   96,    100,
					255, 256, 1000, 65536, 1000000 };
	uint64_t rng = 3;
	struct gs_zstd kept;

	gs__zstd_init(&kept, f->ctx);

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		for (int c = 0; c < 2; c++) {
			size_t n = sizes[i];
			uint8_t *src = malloc(n + 1);
			uint8_t sha[GS_SHA256_LEN];
			enum gs_compression comp = 99;
			struct gs_buf z;
			struct gs_buf out;
			const uint8_t *wire;
			size_t wire_len;
			struct gs_zstd *zs;

			fill(src, n, &rng, c == 1);
			gs__sha256(sha, src, n);
			gs__buf_init(&z, f->ctx, 2 * n + 64);
			gs__buf_init(&out, f->ctx, n + 1);
			/* Alternate kept and one-shot contexts. */
			zs = i % 2 ? &kept : NULL;
			assert_gs_ok(gs__changeset_pack(&z, &comp, zs, src, n));
			if (n < GS_COMPRESS_MIN || c == 0) {
				/* Small or random: plain is smaller. */
				assert_int_equal(comp, GS_COMP_NONE);
				assert_int_equal(z.len, 0);
			} else if (n >= 256) {
				assert_int_equal(comp, GS_COMP_ZSTD);
			}
			if (comp == GS_COMP_ZSTD) {
				/* Kept only when the wire really shrinks. */
				assert_true(z.len + 6 < n);
				wire = z.data;
				wire_len = z.len;
			} else {
				assert_int_equal(z.len, 0);
				wire = src;
				wire_len = n;
			}
			assert_gs_ok(gs__changeset_unpack(&out, zs, comp, wire,
							  wire_len, (uint32_t)n,
							  sha));
			assert_int_equal(out.len, n);
			if (n > 0)
				assert_memory_equal(out.data, src, n);
			gs__buf_fini(&z);
			gs__buf_fini(&out);
			free(src);
		}
	}
	gs__zstd_fini(&kept);
	gs__zstd_fini(&kept); /* idempotent */
}

static void mismatches_are_protocol_errors(void **state)
{
	struct fx *f = *state;
	uint8_t src[1000];
	uint8_t sha[GS_SHA256_LEN];
	enum gs_compression comp;
	struct gs_buf z;
	struct gs_buf out;
	uint64_t rng = 5;

	fill(src, sizeof(src), &rng, true);
	gs__sha256(sha, src, sizeof(src));
	gs__buf_init(&z, f->ctx, 4096);
	gs__buf_init(&out, f->ctx, 1u << 20);
	assert_gs_ok(gs__changeset_pack(&z, &comp, NULL, src, sizeof(src)));
	assert_int_equal(comp, GS_COMP_ZSTD);

	assert_gs_err(
		gs__changeset_unpack(&out, NULL, comp, z.data, z.len, 999, sha),
		GS_EPROTO);
	assert_non_null(strstr(gs_ctx_errmsg(f->ctx), "uncompressed_len"));
	assert_gs_err(gs__changeset_unpack(&out, NULL, GS_COMP_NONE, src, 1000,
					   999, NULL),
		      GS_EPROTO);
	sha[0] ^= 1;
	assert_gs_err(gs__changeset_unpack(&out, NULL, comp, z.data, z.len,
					   1000, sha),
		      GS_EPROTO);
	assert_non_null(strstr(gs_ctx_errmsg(f->ctx), "sha256"));
	assert_gs_err(gs__changeset_unpack(&out, NULL, GS_COMP_NONE, src, 1000,
					   1000, sha),
		      GS_EPROTO);
	sha[0] ^= 1;
	assert_gs_err(gs__changeset_unpack(&out, NULL, 5, src, 1000, 1000, sha),
		      GS_EPROTO);
	/* Trailing bytes after the frame (a second frame would inflate past
	 * the declared size). */
	assert_gs_ok(gs__buf_append(&z, z.data, z.len));
	assert_gs_err(gs__changeset_unpack(&out, NULL, GS_COMP_ZSTD, z.data,
					   z.len, 1000, NULL),
		      GS_EPROTO);
	/* Damage inside the frame. */
	z.len /= 2;
	z.data[z.len - 3] ^= 0x55;
	assert_gs_err(gs__changeset_unpack(&out, NULL, GS_COMP_ZSTD, z.data,
					   z.len, 1000, NULL),
		      GS_EPROTO);
	/* Not zstd at all. */
	assert_gs_err(gs__changeset_unpack(&out, NULL, GS_COMP_ZSTD, src, 100,
					   1000, NULL),
		      GS_EPROTO);
	assert_int_equal(out.len, 0); /* nothing half-appended */
	gs__buf_fini(&z);
	gs__buf_fini(&out);
}

static void bomb_is_refused_without_inflating(void **state)
{
	struct fx *f = *state;
	struct zb z = { 0 };
	struct gs_buf out;
	uint64_t t0;
	uint64_t dt;

	zbomb(&z, 1u << 30);
	assert_true(z.n < 40000);
	gs__buf_init(&out, f->ctx, GS_FRAME_MAX_DEFAULT);

	gs_test_fail_alloc_at(&f->alloc, -1);
	t0 = gs__clock_mono_ns();
	assert_gs_err(gs__changeset_unpack(&out, NULL, GS_COMP_ZSTD, z.p, z.n,
					   1u << 30, NULL),
		      GS_ETOOBIG);
	dt = gs__clock_mono_ns() - t0;
	assert_int_equal(f->alloc.count, 0);
	assert_true(dt < 1000000000ull); /* a hang detector, not a timing */
	assert_non_null(strstr(gs_ctx_errmsg(f->ctx), "1073741824"));
	fprintf(stderr, "# 1 GiB bomb (%zu bytes) refused in %llu us\n", z.n,
		(unsigned long long)(dt / 1000));

	/* The sender's uncompressed_len cannot vouch for it either. */
	assert_gs_err(gs__changeset_unpack(&out, NULL, GS_COMP_ZSTD, z.p, z.n,
					   1000, NULL),
		      GS_EPROTO);
	assert_int_equal(f->alloc.count, 0);
	free(z.p);

	/* A smaller honest bomb inflates fine under a larger ceiling: the
	 * frame really is what it claims. */
	memset(&z, 0, sizeof(z));
	zbomb(&z, 1u << 20);
	assert_gs_ok(gs__changeset_unpack(&out, NULL, GS_COMP_ZSTD, z.p, z.n,
					  1u << 20, NULL));
	assert_int_equal(out.len, 1u << 20);
	assert_int_equal(out.data[12345], 0);
	free(z.p);
	gs__buf_fini(&out);
}

static void size_must_be_declared_and_true(void **state)
{
	struct fx *f = *state;
	struct zb z = { 0 };
	struct gs_buf out;
	uint8_t text[20];

	memset(text, 'x', sizeof(text));
	gs__buf_init(&out, f->ctx, 1u << 20);
	/* No content size: descriptor 0, window descriptor 0 (1 KiB). */
	zmagic(&z);
	zbyte(&z, 0x00);
	zbyte(&z, 0x00);
	zblock(&z, 0, 20, true);
	zput(&z, text, 20);
	assert_gs_err(gs__changeset_unpack(&out, NULL, GS_COMP_ZSTD, z.p, z.n,
					   20, NULL),
		      GS_EPROTO);
	assert_non_null(strstr(gs_ctx_errmsg(f->ctx), "content size"));
	free(z.p);

	/* Declares 10 bytes, carries 20. */
	memset(&z, 0, sizeof(z));
	zmagic(&z);
	zbyte(&z, 0x20);
	zbyte(&z, 10);
	zblock(&z, 0, 20, true);
	zput(&z, text, 20);
	assert_gs_err(gs__changeset_unpack(&out, NULL, GS_COMP_ZSTD, z.p, z.n,
					   10, NULL),
		      GS_EPROTO);
	free(z.p);

	/* Declares 30 bytes, carries 20. */
	memset(&z, 0, sizeof(z));
	zmagic(&z);
	zbyte(&z, 0x20);
	zbyte(&z, 30);
	zblock(&z, 0, 20, true);
	zput(&z, text, 20);
	assert_gs_err(gs__changeset_unpack(&out, NULL, GS_COMP_ZSTD, z.p, z.n,
					   30, NULL),
		      GS_EPROTO);
	free(z.p);

	/* And the honest one passes. */
	memset(&z, 0, sizeof(z));
	zmagic(&z);
	zbyte(&z, 0x20);
	zbyte(&z, 20);
	zblock(&z, 0, 20, true);
	zput(&z, text, 20);
	assert_gs_ok(gs__changeset_unpack(&out, NULL, GS_COMP_ZSTD, z.p, z.n,
					  20, NULL));
	assert_memory_equal(out.data, text, 20);
	free(z.p);
	gs__buf_fini(&out);
}

/* Fail each allocation in turn, with one-shot contexts and with a kept
 * context (whose lazy creation is then part of the loop). */
static void allocation_failures(void **state)
{
	struct fx *f = *state;
	uint8_t src[5000];
	uint64_t rng = 9;
	unsigned n;
	int rc;

	fill(src, sizeof(src), &rng, true);
	for (int mode = 0; mode < 2; mode++) {
		struct gs_zstd kept;
		struct gs_zstd *zs = mode ? &kept : NULL;
		struct gs_buf z;

		gs__zstd_init(&kept, f->ctx);
		gs__buf_init(&z, f->ctx, 1u << 20);
		for (n = 0;; n++) {
			enum gs_compression comp = GS_COMP_ZSTD;

			gs_test_fail_alloc_at(&f->alloc, n);
			rc = gs__changeset_pack(&z, &comp, zs, src,
						sizeof(src));
			gs_test_fail_alloc_at(&f->alloc, -1);
			if (rc == GS_OK) {
				assert_int_equal(comp, GS_COMP_ZSTD);
				break;
			}
			assert_gs_err(rc, GS_ENOMEM);
			assert_int_equal(comp, GS_COMP_NONE);
			assert_int_equal(z.len, 0);
		}
		assert_true(n > 1); /* the buffer and zstd's own context */
		for (n = 0;; n++) {
			struct gs_buf out;

			gs__buf_init(&out, f->ctx, 1u << 20);
			gs_test_fail_alloc_at(&f->alloc, n);
			rc = gs__changeset_unpack(&out, zs, GS_COMP_ZSTD,
						  z.data, z.len, sizeof(src),
						  NULL);
			gs_test_fail_alloc_at(&f->alloc, -1);
			if (rc == GS_OK) {
				assert_memory_equal(out.data, src, sizeof(src));
				gs__buf_fini(&out);
				break;
			}
			assert_gs_err(rc, GS_ENOMEM);
			assert_int_equal(out.len, 0);
			gs__buf_fini(&out);
		}
		assert_true(n > 1);
		gs__buf_fini(&z);
		gs__zstd_fini(&kept);
		assert_int_equal(f->alloc.live, 1);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(round_trips, setup, teardown),
		cmocka_unit_test_setup_teardown(mismatches_are_protocol_errors,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			bomb_is_refused_without_inflating, setup, teardown),
		cmocka_unit_test_setup_teardown(size_must_be_declared_and_true,
						setup, teardown),
		cmocka_unit_test_setup_teardown(allocation_failures, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
