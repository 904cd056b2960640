/* Allocation through the context's hooks, and the capped byte buffer. */
#define GS_MODULE "platform.alloc"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <gridsync/platform.h>

#include "ctx_impl.h"

void *gs__malloc(struct gs_ctx *ctx, size_t size)
{
	GS_ASSERT(ctx != NULL);
	return ctx->malloc_fn(size == 0 ? 1 : size, ctx->alloc_payload);
}

void *gs__calloc(struct gs_ctx *ctx, size_t n, size_t size)
{
	void *p;

	if (size != 0 && n > SIZE_MAX / size)
		return NULL;
	p = gs__malloc(ctx, n * size);
	if (p != NULL)
		memset(p, 0, n * size);
	return p;
}

void *gs__realloc(struct gs_ctx *ctx, void *ptr, size_t size)
{
	GS_ASSERT(ctx != NULL);
	return ctx->realloc_fn(ptr, size == 0 ? 1 : size, ctx->alloc_payload);
}

void gs__free(struct gs_ctx *ctx, void *ptr)
{
	if (ptr == NULL)
		return;
	GS_ASSERT(ctx != NULL);
	ctx->free_fn(ptr, ctx->alloc_payload);
}

char *gs__strndup(struct gs_ctx *ctx, const char *s, size_t len)
{
	char *p;

	if (s == NULL)
		return NULL;
	p = gs__malloc(ctx, len + 1);
	if (p == NULL)
		return NULL;
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

char *gs__strdup(struct gs_ctx *ctx, const char *s)
{
	return s == NULL ? NULL : gs__strndup(ctx, s, strlen(s));
}

void gs__buf_init(struct gs_buf *b, struct gs_ctx *ctx, size_t max)
{
	b->ctx = ctx;
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

void gs__buf_fini(struct gs_buf *b)
{
	gs__free(b->ctx, b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

int gs__buf_reserve(struct gs_buf *b, size_t extra)
{
	size_t want;
	size_t cap;
	uint8_t *p;

	if (extra > b->max || b->len > b->max - extra)
		return GS_ETOOBIG;
	want = b->len + extra;
	if (want <= b->cap)
		return GS_OK;
	cap = b->cap != 0 ? b->cap : 64;
	while (cap < want)
		cap = cap > SIZE_MAX / 2 ? want : cap * 2;
	if (cap > b->max)
		cap = b->max;
	p = gs__realloc(b->ctx, b->data, cap);
	if (p == NULL)
		return GS_ENOMEM;
	b->data = p;
	b->cap = cap;
	return GS_OK;
}

int gs__buf_append(struct gs_buf *b, const void *data, size_t len)
{
	int rc;

	if (len == 0)
		return GS_OK;
	rc = gs__buf_reserve(b, len);
	if (rc != GS_OK)
		return rc;
	memcpy(b->data + b->len, data, len);
	b->len += len;
	return GS_OK;
}

int gs__buf_printf(struct gs_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;
	int rc;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return GS_EINVAL;
	rc = gs__buf_reserve(b, (size_t)n + 1);
	if (rc != GS_OK)
		return rc;
	va_start(ap, fmt);
	vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return GS_OK;
}

int gs__buf_cstr(struct gs_buf *b)
{
	int rc = gs__buf_reserve(b, 1);

	if (rc != GS_OK)
		return rc;
	b->data[b->len] = '\0';
	return GS_OK;
}

int gs__buf_json_str(struct gs_buf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	int rc = gs__buf_append(b, "\"", 1);

	for (; rc == GS_OK && p != NULL && *p != '\0'; p++) {
		switch (*p) {
		case '"':
			rc = gs__buf_append(b, "\\\"", 2);
			break;
		case '\\':
			rc = gs__buf_append(b, "\\\\", 2);
			break;
		case '\n':
			rc = gs__buf_append(b, "\\n", 2);
			break;
		case '\r':
			rc = gs__buf_append(b, "\\r", 2);
			break;
		case '\t':
			rc = gs__buf_append(b, "\\t", 2);
			break;
		default:
			if (*p < 0x20)
				rc = gs__buf_printf(b, "\\u%04x", *p);
			else
				rc = gs__buf_append(b, p, 1);
		}
	}
	if (rc == GS_OK)
		rc = gs__buf_append(b, "\"", 1);
	return rc;
}
