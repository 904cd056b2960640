#define _XOPEN_SOURCE 700 /* nftw */
#include "gs_test.h"

#include <ftw.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static bool should_fail(struct gs_test_alloc *a)
{
	long n = a->count++;

	if (a->fail_at < 0)
		return false;
	if (n == a->fail_at)
		return true;
	return a->fail_forever && n > a->fail_at;
}

static void *t_malloc(size_t size, void *payload)
{
	struct gs_test_alloc *a = payload;
	void *p;

	if (should_fail(a))
		return NULL;
	p = malloc(size);
	if (p != NULL)
		a->live++;
	return p;
}

static void *t_realloc(void *ptr, size_t size, void *payload)
{
	struct gs_test_alloc *a = payload;
	void *p;

	if (should_fail(a))
		return NULL;
	p = realloc(ptr, size);
	if (p != NULL && ptr == NULL)
		a->live++;
	return p;
}

static void t_free(void *ptr, void *payload)
{
	struct gs_test_alloc *a = payload;

	if (ptr != NULL)
		a->live--;
	free(ptr);
}

struct gs_ctx *gs_test_ctx_new(struct gs_test_alloc *alloc)
{
	struct gs_ctx_opts opts = GS_CTX_OPTS_INIT;
	struct gs_ctx *ctx = NULL;

	if (alloc != NULL) {
		alloc->fail_at = -1;
		alloc->fail_forever = false;
		alloc->count = 0;
		alloc->live = 0;
		opts.malloc_fn = t_malloc;
		opts.realloc_fn = t_realloc;
		opts.free_fn = t_free;
		opts.alloc_payload = alloc;
	}
	if (getenv("GS_TEST_LOG") != NULL) {
		opts.log_fn = gs_log_stderr;
		opts.log_level = GS_LOG_DEBUG;
	}
	if (gs_ctx_new(&ctx, &opts) != GS_OK)
		return NULL;
	return ctx;
}

void gs_test_fail_alloc_at(struct gs_test_alloc *alloc, long n)
{
	alloc->count = 0;
	alloc->fail_at = n;
}

char *gs_test_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char tmpl[4096];
	char *d;

	snprintf(tmpl, sizeof(tmpl), "%s/gridsync-test-XXXXXX",
		 base != NULL ? base : "/tmp");
	d = mkdtemp(tmpl);
	return d != NULL ? strdup(d) : NULL; /* checksrc: test code */
}

static int
rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void gs_test_tmpdir_free(char *dir)
{
	if (dir == NULL)
		return;
	if (getenv("GS_TEST_KEEP") == NULL)
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	else
		fprintf(stderr, "kept %s\n", dir);
	free(dir);
}

const char *gs_test_path(const char *dir, const char *name)
{
	static char ring[8][4096];
	static unsigned next;
	char *p = ring[next++ % 8];

	snprintf(p, sizeof(ring[0]), "%s/%s", dir, name);
	return p;
}

uint64_t gs_test_seed(const char *test_name)
{
	const char *env = getenv("GS_TEST_SEED");
	uint64_t seed;

	if (env != NULL)
		seed = strtoull(env, NULL, 0);
	else
		seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	fprintf(stderr, "# %s: GS_TEST_SEED=%llu\n", test_name,
		(unsigned long long)seed);
	return seed;
}

uint64_t gs_test_rand(uint64_t *s)
{
	/* splitmix64 */
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

const char *gs_test_srcdir(void)
{
	return GS_TEST_SRCDIR;
}
