/* The error table, context object, detail text and log forwarding. */
#define GS_MODULE "platform.err"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gridsync/platform.h>

#include "ctx_impl.h"

const char *gs_strerror(int err)
{
	switch (err) {
	case GS_OK:
		return "success";
	case GS_ERROR:
		return "error";
#define GS_ERR_TEXT(name, code, text) \
	case GS_E##name:              \
		return text;
		GS_ERR_MAP(GS_ERR_TEXT)
#undef GS_ERR_TEXT
	default:
		return "unknown error";
	}
}

const char *gs_errname(int err)
{
	switch (err) {
	case GS_OK:
		return "GS_OK";
	case GS_ERROR:
		return "GS_ERROR";
#define GS_ERR_NAME(name, code, text) \
	case GS_E##name:              \
		return "GS_E" #name;
		GS_ERR_MAP(GS_ERR_NAME)
#undef GS_ERR_NAME
	default:
		return "GS_E?";
	}
}

void gs__assert_fail(const char *expr, const char *file, int line)
{
	fprintf(stderr, "gridsync: assertion failed: %s (%s:%d)\n", expr, file,
		line);
	abort();
}

static void *libc_malloc(size_t size, void *payload)
{
	(void)payload;
	return malloc(size);
}

static void *libc_realloc(void *ptr, size_t size, void *payload)
{
	(void)payload;
	return realloc(ptr, size);
}

static void libc_free(void *ptr, void *payload)
{
	(void)payload;
	free(ptr);
}

int gs_ctx_new(struct gs_ctx **out, const struct gs_ctx_opts *opts)
{
	struct gs_ctx tmp = { 0 };
	struct gs_ctx *ctx;

	GS_CHECK_ARG(out != NULL);
	*out = NULL;
	if (opts != NULL && opts->version != GS_CTX_OPTS_VERSION)
		return GS_EINVAL;
	tmp.malloc_fn = libc_malloc;
	tmp.realloc_fn = libc_realloc;
	tmp.free_fn = libc_free;
	tmp.log_level = GS_LOG_WARN;
	if (opts != NULL) {
		/* All three hooks or none: mixing allocators corrupts. */
		if ((opts->malloc_fn == NULL) != (opts->free_fn == NULL) ||
		    (opts->malloc_fn == NULL) != (opts->realloc_fn == NULL))
			return GS_EINVAL;
		if (opts->malloc_fn != NULL) {
			tmp.malloc_fn = opts->malloc_fn;
			tmp.realloc_fn = opts->realloc_fn;
			tmp.free_fn = opts->free_fn;
			tmp.alloc_payload = opts->alloc_payload;
		}
		tmp.log_fn = opts->log_fn;
		tmp.log_payload = opts->log_payload;
		tmp.log_level = opts->log_level;
		tmp.clock_fn = opts->clock_fn;
		tmp.clock_payload = opts->clock_payload;
	}
	ctx = tmp.malloc_fn(sizeof(*ctx), tmp.alloc_payload);
	if (ctx == NULL)
		return GS_ENOMEM;
	*ctx = tmp;
	*out = ctx;
	return GS_OK;
}

void gs_ctx_free(struct gs_ctx *ctx)
{
	if (ctx == NULL)
		return;
	ctx->free_fn(ctx, ctx->alloc_payload);
}

const char *gs_ctx_errmsg(const struct gs_ctx *ctx)
{
	return ctx != NULL ? ctx->errmsg : "";
}

void gs_ctx_set_log(struct gs_ctx *ctx,
		    gs_log_cb fn,
		    enum gs_log_level level,
		    void *payload)
{
	if (ctx == NULL)
		return;
	ctx->log_fn = fn;
	ctx->log_level = level;
	ctx->log_payload = payload;
}

void gs_log_stderr(enum gs_log_level lvl,
		   const char *module,
		   const char *msg,
		   void *payload)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };

	(void)payload;
	fprintf(stderr, "gridsync[%s] %s: %s\n", module,
		names[(unsigned)lvl < 4 ? lvl : 3], msg);
}

int gs__err(struct gs_ctx *ctx, int err, const char *fmt, ...)
{
	va_list ap;

	if (ctx == NULL)
		return err;
	va_start(ap, fmt);
	vsnprintf(ctx->errmsg, sizeof(ctx->errmsg), fmt, ap);
	va_end(ap);
	return err;
}

int gs__err_wrap(struct gs_ctx *ctx, int err, const char *fmt, ...)
{
	char prefix[GS_ERRMSG_MAX];
	char old[GS_ERRMSG_MAX];
	va_list ap;

	if (ctx == NULL)
		return err;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, ctx->errmsg, sizeof(old));
	if (old[0] == '\0')
		snprintf(old, sizeof(old), "%s", gs_strerror(err));
	snprintf(ctx->errmsg, sizeof(ctx->errmsg), "%.200s: %.300s", prefix,
		 old);
	return err;
}

void gs__err_clear(struct gs_ctx *ctx)
{
	if (ctx != NULL)
		ctx->errmsg[0] = '\0';
}

bool gs__log_enabled(const struct gs_ctx *ctx, enum gs_log_level lvl)
{
	return ctx != NULL && ctx->log_fn != NULL && lvl <= ctx->log_level;
}

void gs__log(struct gs_ctx *ctx,
	     enum gs_log_level lvl,
	     const char *module,
	     const char *fmt,
	     ...)
{
	char msg[1024];
	va_list ap;

	if (!gs__log_enabled(ctx, lvl))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ctx->log_fn(lvl, module, msg, ctx->log_payload);
}
