/*
 * Changeset compression with zstd (Debian's libzstd).
 *
 * A compressed changeset is exactly one zstd frame whose header declares
 * the content size; the sender also states that size in uncompressed_len.
 * The receiver refuses, before inflating anything, a frame without a
 * declared size, a declared size that differs from uncompressed_len, one
 * above the output buffer's ceiling, and trailing bytes after the frame
 * (a second frame would inflate past the declared size). Inflation then
 * writes into a buffer of exactly the declared size, so a lying block
 * stream fails inside zstd instead of growing memory.
 *
 * zstd's own allocations go through the context allocator (the advanced
 * create functions with a ZSTD_customMem), so allocation-failure tests
 * reach them too. Contexts are either kept in a caller's struct gs_zstd or
 * made for one call.
 */
#define GS_MODULE                "proto.compress"
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_customMem, *_advanced */

#include <string.h>
#include <zstd.h>
#include <zstd_errors.h>

#include <gridsync/wire.h>

/* Level 3 is zstd's default; on 250-900 byte changesets it runs in a few
 * microseconds with a kept context (bench_wire.c). */
#define LEVEL 3

/* What choosing zstd adds to the entry on the wire: the compression field
 * (2 bytes) and uncompressed_len (up to 4 for the sizes we see). Smaller
 * savings are not savings. */
#define FIELDS_COST 6

/* zstd's allocator hooks; opaque is the gs_ctx. */
static void *zalloc(void *opaque, size_t size)
{
	return gs__malloc(opaque, size);
}

static void zfree(void *opaque, void *p)
{
	gs__free(opaque, p);
}

void gs__zstd_init(struct gs_zstd *z, struct gs_ctx *ctx)
{
	z->ctx = ctx;
	z->cctx = NULL;
	z->dctx = NULL;
}

void gs__zstd_fini(struct gs_zstd *z)
{
	if (z == NULL)
		return;
	ZSTD_freeCCtx(z->cctx); /* both accept NULL */
	ZSTD_freeDCtx(z->dctx);
	z->cctx = NULL;
	z->dctx = NULL;
}

/* The compression context: z's (created once), or a fresh one the caller
 * frees when z is NULL. */
static ZSTD_CCtx *get_cctx(struct gs_zstd *z, struct gs_ctx *ctx)
{
	ZSTD_customMem mem = { zalloc, zfree, ctx };

	if (z == NULL)
		return ZSTD_createCCtx_advanced(mem);
	if (z->cctx == NULL) {
		mem.opaque = z->ctx;
		z->cctx = ZSTD_createCCtx_advanced(mem);
	}
	return z->cctx;
}

/* The same for decompression. */
static ZSTD_DCtx *get_dctx(struct gs_zstd *z, struct gs_ctx *ctx)
{
	ZSTD_customMem mem = { zalloc, zfree, ctx };

	if (z == NULL)
		return ZSTD_createDCtx_advanced(mem);
	if (z->dctx == NULL) {
		mem.opaque = z->ctx;
		z->dctx = ZSTD_createDCtx_advanced(mem);
	}
	return z->dctx;
}

int gs__changeset_pack(struct gs_buf *out,
		       enum gs_compression *comp_out,
		       struct gs_zstd *z,
		       const uint8_t *src,
		       size_t len)
{
	ZSTD_CCtx *cctx = NULL;
	size_t bound;
	size_t n;
	int rc;

	GS_CHECK_ARG(out != NULL && comp_out != NULL);
	GS_CHECK_ARG(src != NULL || len == 0);
	*comp_out = GS_COMP_NONE;
	if (len < GS_COMPRESS_MIN)
		return GS_OK;
	bound = ZSTD_compressBound(len);
	/* Only a clearly smaller result is kept: never reserve more. */
	rc = gs__buf_reserve(out, bound < len ? bound : len);
	if (rc != GS_OK)
		return rc;
	cctx = get_cctx(z, out->ctx);
	if (cctx == NULL)
		return GS_ENOMEM;
	n = ZSTD_compressCCtx(cctx, out->data + out->len, len, src, len, LEVEL);
	if (ZSTD_isError(n)) {
		if (ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall)
			rc = GS_OK; /* it would not shrink: send it plain */
		else if (ZSTD_getErrorCode(n) == ZSTD_error_memory_allocation)
			rc = GS_ENOMEM;
		else
			rc = gs__err(out->ctx, GS_ERROR, "zstd: %s",
				     ZSTD_getErrorName(n));
		goto out;
	}
	if (n + FIELDS_COST < len) {
		out->len += n;
		*comp_out = GS_COMP_ZSTD;
	}
	rc = GS_OK;
out:
	if (z == NULL)
		ZSTD_freeCCtx(cctx);
	return rc;
}

/* Every check that can be made from the frame header alone. */
static int check_zstd_header(struct gs_buf *out,
			     const uint8_t *src,
			     size_t len,
			     uint32_t uncompressed_len)
{
	unsigned long long size = ZSTD_getFrameContentSize(src, len);
	size_t frame_len;

	if (size == ZSTD_CONTENTSIZE_ERROR)
		return gs__err(out->ctx, GS_EPROTO,
			       "zstd: not a zstd frame (%zu bytes)", len);
	if (size == ZSTD_CONTENTSIZE_UNKNOWN)
		return gs__err(out->ctx, GS_EPROTO,
			       "zstd: frame does not declare its content size");
	if (size != uncompressed_len)
		return gs__err(out->ctx, GS_EPROTO,
			       "zstd: frame declares %llu bytes, "
			       "uncompressed_len says %lu",
			       size, (unsigned long)uncompressed_len);
	if (size > out->max - out->len)
		return gs__err(out->ctx, GS_ETOOBIG,
			       "zstd: frame declares %llu bytes, the limit is "
			       "%zu",
			       size, out->max - out->len);
	frame_len = ZSTD_findFrameCompressedSize(src, len);
	if (ZSTD_isError(frame_len))
		return gs__err(out->ctx, GS_EPROTO, "zstd: damaged frame: %s",
			       ZSTD_getErrorName(frame_len));
	if (frame_len != len)
		return gs__err(out->ctx, GS_EPROTO,
			       "zstd: %zu bytes after the frame",
			       len - frame_len);
	return GS_OK;
}

/*
 * Inflate one zstd frame onto out. The header checks come first; only then
 * is room reserved (exactly uncompressed_len bytes) and zstd run with that
 * as its output capacity, so no input can make it write or allocate more.
 */
static int inflate(struct gs_buf *out,
		   struct gs_zstd *z,
		   const uint8_t *src,
		   size_t len,
		   uint32_t uncompressed_len)
{
	ZSTD_DCtx *dctx = NULL;
	size_t n;
	int rc;

	rc = check_zstd_header(out, src, len, uncompressed_len);
	if (rc != GS_OK)
		return rc;
	rc = gs__buf_reserve(out, uncompressed_len);
	if (rc != GS_OK)
		return rc;
	dctx = get_dctx(z, out->ctx);
	if (dctx == NULL)
		return GS_ENOMEM;
	n = ZSTD_decompressDCtx(dctx, out->data + out->len, uncompressed_len,
				src, len);
	if (ZSTD_isError(n)) {
		if (ZSTD_getErrorCode(n) == ZSTD_error_memory_allocation)
			rc = GS_ENOMEM;
		else
			rc = gs__err(out->ctx, GS_EPROTO, "zstd: %s",
				     ZSTD_getErrorName(n));
		goto out;
	}
	/* A frame can end early with a valid block stream; that is a lie
	 * about its size as much as an overlong one. */
	if (n != uncompressed_len) {
		rc = gs__err(out->ctx, GS_EPROTO,
			     "zstd: inflated %zu bytes, expected %lu", n,
			     (unsigned long)uncompressed_len);
		goto out;
	}
	out->len += n;
	rc = GS_OK;
out:
	if (z == NULL)
		ZSTD_freeDCtx(dctx);
	return rc;
}

int gs__changeset_unpack(struct gs_buf *out,
			 struct gs_zstd *z,
			 enum gs_compression comp,
			 const uint8_t *src,
			 size_t len,
			 uint32_t uncompressed_len,
			 const uint8_t *sha256)
{
	size_t start;
	int rc;

	GS_CHECK_ARG(out != NULL && (src != NULL || len == 0));
	start = out->len;
	switch (comp) {
	case GS_COMP_NONE:
		if (len != uncompressed_len)
			return gs__err(out->ctx, GS_EPROTO,
				       "changeset: %zu bytes, uncompressed_len "
				       "says %lu",
				       len, (unsigned long)uncompressed_len);
		rc = gs__buf_append(out, src, len);
		break;
	case GS_COMP_ZSTD:
		rc = inflate(out, z, src, len, uncompressed_len);
		break;
	default:
		return gs__err(out->ctx, GS_EPROTO,
			       "changeset: unknown compression %d", (int)comp);
	}
	if (rc != GS_OK)
		return rc;
	/* The hash covers the uncompressed bytes, so it also proves the
	 * inflation; a mismatch takes the bytes back out of out. */
	if (sha256 != NULL) {
		uint8_t digest[GS_SHA256_LEN];

		/* An empty changeset may have left out->data NULL. */
		gs__sha256(digest,
			   out->len > start ? out->data + start : digest,
			   out->len - start);
		if (memcmp(digest, sha256, GS_SHA256_LEN) != 0) {
			out->len = start;
			return gs__err(out->ctx, GS_EPROTO,
				       "changeset: sha256 mismatch");
		}
	}
	return GS_OK;
}
