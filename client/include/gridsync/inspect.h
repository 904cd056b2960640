/*
 * gridsync: decoding sync bytes for a person (`gridsync inspect`).
 *
 * An engineer debugging a device holds bytes: an outbox changeset, one
 * frame, or a capture of a connection (frame after frame). gs_inspect
 * recognises which, checks every byte with gridsync's own bounded parsers
 * (never SQLite's changeset iterator, which hangs on some malformed input
 * in the SQLite that Debian 12 ships) and prints what they say: every row
 * with its table, operation, primary key and old and new values; every
 * frame with its message type and fields, the changesets inside Push and
 * Changes decoded the same way.
 *
 * Values are printed, personal ones included (it is the engineer's own
 * device), but never logged: the text goes only to the caller's callback.
 */
#ifndef GRIDSYNC_INSPECT_H
#define GRIDSYNC_INSPECT_H

#include <stddef.h>
#include <stdint.h>

#include <gridsync/ctx.h>
#include <gridsync/err.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Print one JSON document instead of text. */
#define GS_INSPECT_JSON 0x1u
/* The input is one changeset uploaded by a device: judge it as the server
 * does (a changeset, not a patchset, of device tables only, within the
 * default limits) instead of recognising the kind of input and accepting
 * anything a download could hold. */
#define GS_INSPECT_UPLOAD 0x2u

/* The largest input gs_inspect accepts (a capture of a whole sync). */
#define GS_INSPECT_MAX_INPUT (64u << 20)

/*
 * Receives the output in order, in chunks of any size (UTF-8, not
 * NUL-terminated; text borrowed for the call). Return 0 to go on; anything
 * else stops gs_inspect, which returns it unchanged.
 */
typedef int (*gs_inspect_cb)(const char *text, size_t len, void *payload);

/*
 * Decode len bytes at data and write a description to out.
 *
 * Unless GS_INSPECT_UPLOAD says what the bytes are, the first byte
 * decides: 'T' starts a changeset and 'P' a patchset (checked against the
 * replicated schema: any table, either kind); anything else is read as
 * frames, each a 4-byte big-endian length (at most 64 MiB) and one
 * Envelope, back to back until the input ends. Changesets inside Push
 * entries are checked as the server checks an upload; zstd entries are
 * inflated (at most 256 MiB over the whole input) and Push entries must
 * match their SHA-256.
 *
 * The whole input is checked before the first byte of output: for
 * invalid input out is never called. Text output escapes control characters;
 * blobs are shown by size only, as "(N bytes)" (JSON: {"bytes": N}).
 *
 * Returns GS_OK; GS_EPROTO for input that is not valid, with
 * gs_ctx_errmsg(ctx) naming the problem, its byte offset and, when known,
 * the frame, entry and table ("frame 2 at byte 120: push entry device_seq
 * 7: changeset: PK_NULL at byte 57 in table household (...)"), and for an
 * empty input; GS_ETOOBIG for more than GS_INSPECT_MAX_INPUT bytes (or
 * zstd entries inflating to more than 256 MiB in all); GS_EINVAL (ctx or
 * out NULL, data NULL with len > 0, unknown flags); GS_ENOMEM; or out's
 * non-zero return.
 */
GS_API int gs_inspect(struct gs_ctx *ctx,
		      const uint8_t *data,
		      size_t len,
		      unsigned flags,
		      gs_inspect_cb out,
		      void *payload);

#ifdef __cplusplus
}
#endif

#endif
