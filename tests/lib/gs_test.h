/*
 * Shared test helpers. Standard headers first, then cmocka (it needs them).
 */
#ifndef GS_TEST_H
#define GS_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gridsync/platform.h>

#include <cmocka.h>

#define assert_gs_ok(expr)                                                   \
	do {                                                                 \
		int gs_rc_ = (expr);                                         \
		if (gs_rc_ != GS_OK)                                         \
			fail_msg("%s -> %s (%s)", #expr, gs_errname(gs_rc_), \
				 gs_strerror(gs_rc_));                       \
	} while (0)

#define assert_gs_err(expr, want)                                       \
	do {                                                            \
		int gs_rc_ = (expr);                                    \
		if (gs_rc_ != (want))                                   \
			fail_msg("%s -> %s, want %s", #expr,            \
				 gs_errname(gs_rc_), gs_errname(want)); \
	} while (0)

/* A context whose allocator can be told to fail, and which counts what is
 * still allocated (a leak check per test). */
struct gs_test_alloc {
	long fail_at;      /* the n-th allocation from now fails; -1: never */
	bool fail_forever; /* after the first failure, keep failing */
	long count;        /* allocations so far */
	long live;         /* allocations not yet freed */
};

struct gs_ctx *gs_test_ctx_new(struct gs_test_alloc *alloc);
void gs_test_fail_alloc_at(struct gs_test_alloc *alloc, long n);

/* A fresh temporary directory (removed by gs_test_tmpdir_free). The
 * returned path is owned by the caller. */
char *gs_test_tmpdir(void);
void gs_test_tmpdir_free(char *dir);

/* path = dir + "/" + name, in a static ring of buffers. */
const char *gs_test_path(const char *dir, const char *name);

/* Seed from GS_TEST_SEED or the time; printed so that a failure can be
 * replayed. */
uint64_t gs_test_seed(const char *test_name);
uint64_t gs_test_rand(uint64_t *state);

/* The source tree's root (for tests/data). */
const char *gs_test_srcdir(void);

#endif
