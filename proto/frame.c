/*
 * Frame reader: turns a byte stream cut at arbitrary points into whole
 * frames.
 *
 * Wire format of one frame:
 *
 *   +----------------------+---------------------------------+
 *   | length: u32 big-end. | length bytes: one gs.v1.Envelope |
 *   +----------------------+---------------------------------+
 *
 * The length counts the envelope only. It must be at least 1 and at most
 * the negotiated maximum; both are checked as soon as the fourth length
 * byte arrives, before any memory is set aside for the body. Storage then
 * grows with the bytes actually received (doubling, capped at the declared
 * length), so a peer that announces 8 MiB and sends one byte costs a few
 * KiB, not 8 MiB. A frame that arrives whole inside one feed is handed out
 * in place, without a copy.
 */
#define GS_MODULE "proto.frame"

#include <string.h>

#include <gridsync/wire.h>

/* A body buffer larger than this is released once its frame is consumed,
 * so one big frame does not pin memory for the connection's lifetime. */
#define KEEP_CAP (64u << 10)
#define MIN_CAP  4096u

void gs__frame_reader_init(struct gs_frame_reader *r,
			   struct gs_ctx *ctx,
			   uint32_t max_frame)
{
	memset(r, 0, sizeof(*r));
	r->ctx = ctx;
	if (max_frame == 0)
		max_frame = GS_FRAME_MAX_DEFAULT;
	if (max_frame > GS_FRAME_MAX_CEILING)
		max_frame = GS_FRAME_MAX_CEILING;
	r->max = max_frame;
	r->err = GS_OK;
}

void gs__frame_reader_fini(struct gs_frame_reader *r)
{
	if (r == NULL)
		return;
	gs__free(r->ctx, r->buf);
	r->buf = NULL;
	r->cap = 0;
}

/* Make room for at least want body bytes, growing geometrically but never
 * past the declared body length. */
static int grow(struct gs_frame_reader *r, size_t want)
{
	size_t cap = r->cap != 0 ? r->cap : MIN_CAP;
	uint8_t *p;

	if (want <= r->cap)
		return GS_OK;
	while (cap < want)
		cap *= 2;
	if (cap > r->body_len)
		cap = r->body_len;
	p = gs__realloc(r->ctx, r->buf, cap);
	if (p == NULL)
		return gs__err(r->ctx, GS_ENOMEM,
			       "frame: no memory for %zu body bytes at stream "
			       "offset %llu",
			       cap, (unsigned long long)r->frame_off);
	r->buf = p;
	r->cap = cap;
	return GS_OK;
}

/* Validate the length prefix just completed. */
static int check_len(struct gs_frame_reader *r)
{
	const uint8_t *h = r->hdr;

	r->body_len = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 |
		      (uint32_t)h[2] << 8 | (uint32_t)h[3];
	if (r->body_len == 0)
		return gs__err(r->ctx, GS_EPROTO,
			       "frame: zero length at stream offset %llu",
			       (unsigned long long)r->frame_off);
	if (r->body_len > r->max)
		return gs__err(r->ctx, GS_EPROTO,
			       "frame: length %lu at stream offset %llu is "
			       "above the maximum %lu",
			       (unsigned long)r->body_len,
			       (unsigned long long)r->frame_off,
			       (unsigned long)r->max);
	return GS_OK;
}

/* The frame is handed out: get ready for the next length prefix. */
static void next_frame(struct gs_frame_reader *r)
{
	r->hdr_len = 0;
	r->body_len = 0;
	r->have = 0;
}

int gs__frame_reader_feed(struct gs_frame *frame_out,
			  size_t *used_out,
			  struct gs_frame_reader *r,
			  const uint8_t *data,
			  size_t len)
{
	size_t used = 0;
	size_t take;
	int rc;

	GS_CHECK_ARG(frame_out != NULL && used_out != NULL && r != NULL);
	GS_CHECK_ARG(data != NULL || len == 0);
	*used_out = 0;
	if (r->err != GS_OK)
		return r->err;
	/* The previous frame may live in buf; it is no longer borrowed. */
	if (r->hdr_len == 0 && r->cap > KEEP_CAP) {
		gs__free(r->ctx, r->buf);
		r->buf = NULL;
		r->cap = 0;
	}
	if (len == 0)
		return GS_EAGAIN; /* data may be NULL: touch nothing */
	if (r->hdr_len < GS_FRAME_HDR_LEN) {
		if (r->hdr_len == 0)
			r->frame_off = r->offset;
		take = GS_FRAME_HDR_LEN - r->hdr_len;
		if (take > len)
			take = len;
		memcpy(r->hdr + r->hdr_len, data, take);
		r->hdr_len += (uint8_t)take;
		used += take;
		r->offset += take;
		if (r->hdr_len < GS_FRAME_HDR_LEN) {
			*used_out = used;
			return GS_EAGAIN;
		}
		rc = check_len(r);
		if (rc != GS_OK)
			goto fail;
	}
	/* Fast path: the whole body is here and nothing is buffered. */
	if (r->have == 0 && len - used >= r->body_len) {
		frame_out->data = data + used;
		frame_out->len = r->body_len;
		frame_out->offset = r->frame_off;
		used += r->body_len;
		r->offset += r->body_len;
		next_frame(r);
		*used_out = used;
		return GS_OK;
	}
	take = r->body_len - r->have;
	if (take > len - used)
		take = len - used;
	if (take > 0) {
		rc = grow(r, (size_t)r->have + take);
		if (rc != GS_OK)
			goto fail;
		memcpy(r->buf + r->have, data + used, take);
		r->have += (uint32_t)take;
		used += take;
		r->offset += take;
	}
	*used_out = used;
	if (r->have < r->body_len)
		return GS_EAGAIN;
	frame_out->data = r->buf;
	frame_out->len = r->body_len;
	frame_out->offset = r->frame_off;
	next_frame(r);
	return GS_OK;
fail:
	r->err = rc;
	*used_out = used;
	return rc;
}
