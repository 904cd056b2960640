/*
 * The context object: allocator hooks, log sink, clock and the detail text
 * of the last error. Create one per thread (or per event loop) and pass it
 * to every constructor. A context is not thread-safe.
 */
#ifndef GRIDSYNC_CTX_H
#define GRIDSYNC_CTX_H

#include <stddef.h>
#include <stdint.h>

#include <gridsync/err.h>

struct gs_ctx;

enum gs_log_level { GS_LOG_ERROR, GS_LOG_WARN, GS_LOG_INFO, GS_LOG_DEBUG };

/* Log sink. msg is one line without a newline, borrowed for the call. */
typedef void (*gs_log_cb)(enum gs_log_level lvl,
			  const char *module,
			  const char *msg,
			  void *payload);

/* Allocator hooks. realloc(NULL, n) must behave as malloc(n). */
typedef void *(*gs_malloc_cb)(size_t size, void *payload);
typedef void *(*gs_realloc_cb)(void *ptr, size_t size, void *payload);
typedef void (*gs_free_cb)(void *ptr, void *payload);

/* Wall clock override in milliseconds since the Unix epoch (tests). */
typedef int64_t (*gs_clock_cb)(void *payload);

struct gs_ctx_opts {
	unsigned version; /* GS_CTX_OPTS_VERSION */
	gs_malloc_cb malloc_fn;
	gs_realloc_cb realloc_fn;
	gs_free_cb free_fn;
	void *alloc_payload;
	gs_log_cb log_fn;
	void *log_payload;
	enum gs_log_level log_level;
	gs_clock_cb clock_fn;
	void *clock_payload;
};

#define GS_CTX_OPTS_VERSION 1
#define GS_CTX_OPTS_INIT                                                 \
	{                                                                \
		GS_CTX_OPTS_VERSION, NULL, NULL, NULL, NULL, NULL, NULL, \
			GS_LOG_WARN, NULL, NULL                          \
	}

/*
 * Create a context. opts may be NULL for the defaults (libc allocator, no
 * log output, the system clock). On success *out is the caller's, freed with
 * gs_ctx_free. Returns GS_OK, GS_EINVAL or GS_ENOMEM.
 */
GS_API int gs_ctx_new(struct gs_ctx **out, const struct gs_ctx_opts *opts);

/* Free a context. NULL is a no-op. */
GS_API void gs_ctx_free(struct gs_ctx *ctx);

/*
 * The detail text of the last failure reported through ctx, or "" if none.
 * Borrowed until the next call that fails on ctx.
 */
GS_API const char *gs_ctx_errmsg(const struct gs_ctx *ctx);

/* Change the log sink and level. */
GS_API void gs_ctx_set_log(struct gs_ctx *ctx,
			   gs_log_cb fn,
			   enum gs_log_level level,
			   void *payload);

/* A ready-made sink writing "gridsync[module] level: msg" to stderr. */
GS_API void gs_log_stderr(enum gs_log_level lvl,
			  const char *module,
			  const char *msg,
			  void *payload);

#endif
