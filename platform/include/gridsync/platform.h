/*
 * Internal platform seam (not installed): allocation, logging, error detail,
 * clocks, random bytes, ids, hashing and durable file helpers. Everything
 * here is gs__ (not API); the shipped headers are err.h and ctx.h.
 */
#ifndef GRIDSYNC_PLATFORM_H
#define GRIDSYNC_PLATFORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <gridsync/ctx.h>
#include <gridsync/err.h>

/* ---- assertions and argument checks ---------------------------------- */

/* Stays on in release builds: a broken invariant must not write data. */
#define GS_ASSERT(cond)                                             \
	do {                                                        \
		if (!(cond))                                        \
			gs__assert_fail(#cond, __FILE__, __LINE__); \
	} while (0)

/* Bad arguments to a public call return GS_EINVAL (the one macro that
 * hides control flow, as DESIGN.md allows). */
#define GS_CHECK_ARG(cond)                \
	do {                              \
		if (!(cond))              \
			return GS_EINVAL; \
	} while (0)

_Noreturn void gs__assert_fail(const char *expr, const char *file, int line);

/* ---- allocation ------------------------------------------------------- */

void *gs__malloc(struct gs_ctx *ctx, size_t size);
void *gs__calloc(struct gs_ctx *ctx, size_t n, size_t size);
void *gs__realloc(struct gs_ctx *ctx, void *ptr, size_t size);
void gs__free(struct gs_ctx *ctx, void *ptr);
char *gs__strdup(struct gs_ctx *ctx, const char *s);
char *gs__strndup(struct gs_ctx *ctx, const char *s, size_t len);

/* ---- error detail and logging ---------------------------------------- */

/*
 * Record detail text for err on ctx and return err, so that a failure site
 * reads `return gs__err(ctx, GS_EPROTO, "frame: length %u", n);`.
 */
int gs__err(struct gs_ctx *ctx, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefix the current detail text: "journal: " + old text. Returns err. */
int gs__err_wrap(struct gs_ctx *ctx, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

void gs__err_clear(struct gs_ctx *ctx);

void gs__log(struct gs_ctx *ctx,
	     enum gs_log_level lvl,
	     const char *module,
	     const char *fmt,
	     ...) __attribute__((format(printf, 4, 5)));

bool gs__log_enabled(const struct gs_ctx *ctx, enum gs_log_level lvl);

#define GS_ERRORLOG(ctx, ...) \
	gs__log((ctx), GS_LOG_ERROR, GS_MODULE, __VA_ARGS__)
#define GS_WARN(ctx, ...)  gs__log((ctx), GS_LOG_WARN, GS_MODULE, __VA_ARGS__)
#define GS_INFO(ctx, ...)  gs__log((ctx), GS_LOG_INFO, GS_MODULE, __VA_ARGS__)
#define GS_DEBUG(ctx, ...) gs__log((ctx), GS_LOG_DEBUG, GS_MODULE, __VA_ARGS__)

/* ---- clocks and randomness ------------------------------------------- */

/* Wall clock, ms since the epoch (the ctx override if one is set). */
int64_t gs__clock_wall_ms(struct gs_ctx *ctx);

/* Monotonic clock in nanoseconds; never goes backwards. */
uint64_t gs__clock_mono_ns(void);

/* Format ms since the epoch as ISO-8601 UTC with milliseconds into buf
 * (at least GS_TIME_LEN bytes): "2025-03-01T08:30:00.000Z". */
#define GS_TIME_LEN 25
void gs__time_format(char *buf, int64_t ms);

/* Parse what gs__time_format writes (also without ".mmm"). GS_EINVAL if
 * the text is not such a time. */
int gs__time_parse(int64_t *out, const char *text);

/* Fill buf with len cryptographically random bytes. */
int gs__random(struct gs_ctx *ctx, void *buf, size_t len);

/* A UUIDv7 (RFC 9562) as 36 lowercase characters plus NUL, time-ordered
 * by ms. */
#define GS_UUID_LEN 37
int gs__uuid7(struct gs_ctx *ctx, char out[GS_UUID_LEN]);

/* ---- hashing ---------------------------------------------------------- */

#define GS_SHA256_LEN 32
void gs__sha256(uint8_t out[GS_SHA256_LEN], const void *data, size_t len);

struct gs__sha256_state {
	void *md; /* EVP_MD_CTX */
};
int gs__sha256_init(struct gs__sha256_state *st);
void gs__sha256_update(struct gs__sha256_state *st,
		       const void *data,
		       size_t len);
void gs__sha256_final(struct gs__sha256_state *st, uint8_t out[GS_SHA256_LEN]);

/* Lowercase hex of len bytes into out (2*len+1 bytes). */
void gs__hex(char *out, const uint8_t *data, size_t len);

/* ---- growable, capped byte buffer ------------------------------------ */

struct gs_buf {
	struct gs_ctx *ctx;
	uint8_t *data;
	size_t len;
	size_t cap;
	size_t max; /* a hard ceiling: growth past it fails with GS_ETOOBIG */
};

void gs__buf_init(struct gs_buf *b, struct gs_ctx *ctx, size_t max);
void gs__buf_fini(struct gs_buf *b);
int gs__buf_reserve(struct gs_buf *b, size_t extra);
int gs__buf_append(struct gs_buf *b, const void *data, size_t len);
int gs__buf_printf(struct gs_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Append s as a JSON string literal (quotes included, UTF-8 kept). */
int gs__buf_json_str(struct gs_buf *b, const char *s);
/* Make data a NUL-terminated string (the NUL is not counted in len). */
int gs__buf_cstr(struct gs_buf *b);

/* ---- files ------------------------------------------------------------ */

/* Write data to path atomically: temp file, fsync, rename, fsync dir. */
int gs__fs_write_atomic(struct gs_ctx *ctx,
			const char *path,
			const void *data,
			size_t len);

/* Read a whole file, at most max bytes; *out is freed with gs__free. */
int gs__fs_read_all(struct gs_ctx *ctx,
		    uint8_t **out,
		    size_t *len_out,
		    const char *path,
		    size_t max);

/* A file that holds keys or personal data: created empty with mode 0600
 * (O_CREAT|O_EXCL|O_NOFOLLOW) when it is missing and create is set, made
 * 0600 when it exists with group or other bits (a warning if we cannot).
 * A missing file without create is GS_OK (nothing to protect); a symlink
 * at path is GS_EDENIED. */
int gs__fs_private_file(struct gs_ctx *ctx, const char *path, bool create);

/* The same for a directory: created 0700, or tightened to 0700. A symlink
 * or a non-directory at path is GS_EINVAL. */
int gs__fs_private_dir(struct gs_ctx *ctx, const char *path);

/* fsync the directory that holds path. */
int gs__fs_fsync_dir(struct gs_ctx *ctx, const char *path);

/* ---- text ------------------------------------------------------------- */

/* True if len bytes of s are well-formed UTF-8 (no overlongs, no
 * surrogates, nothing above U+10FFFF). */
bool gs__utf8_valid(const uint8_t *s, size_t len);

/* Parse a whole decimal integer; GS_EINVAL on junk or overflow. */
int gs__parse_i64(int64_t *out, const char *s);

#endif
