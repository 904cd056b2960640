/* Private to platform/: the layout of struct gs_ctx. */
#ifndef GS_PLATFORM_CTX_IMPL_H
#define GS_PLATFORM_CTX_IMPL_H

#include <stdint.h>

#include <gridsync/ctx.h>

#define GS_ERRMSG_MAX 512

struct gs_ctx {
	gs_malloc_cb malloc_fn;
	gs_realloc_cb realloc_fn;
	gs_free_cb free_fn;
	void *alloc_payload;
	gs_log_cb log_fn;
	void *log_payload;
	enum gs_log_level log_level;
	gs_clock_cb clock_fn;
	void *clock_payload;
	char errmsg[GS_ERRMSG_MAX];
	/* A small pool of random bytes: one getrandom() per 16 ids instead
	 * of one per id. Refilled after fork (pid check) so that a parent
	 * and its child never hand out the same bytes. */
	uint8_t rnd[160];
	size_t rnd_left;
	long rnd_pid;
};

#endif
