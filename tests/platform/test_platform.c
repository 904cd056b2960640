/* platform/: errors, context, allocation, clocks, ids, hashing, files. */
#include <sys/stat.h>

#include "gs_test.h"

static void errors_have_names_and_text(void **state)
{
	(void)state;
	assert_string_equal(gs_errname(GS_EPROTO), "GS_EPROTO");
	assert_string_equal(gs_strerror(GS_ENOMEM), "out of memory");
	assert_string_equal(gs_strerror(12345), "unknown error");
	assert_string_equal(gs_strerror(GS_OK), "success");
}

static void err_detail_wraps(void **state)
{
	struct gs_ctx *ctx = gs_test_ctx_new(NULL);

	(void)state;
	assert_int_equal(gs__err(ctx, GS_EIO, "write %d", 7), GS_EIO);
	assert_int_equal(gs__err_wrap(ctx, GS_EIO, "journal"), GS_EIO);
	assert_string_equal(gs_ctx_errmsg(ctx), "journal: write 7");
	gs_ctx_free(ctx);
}

static void buf_respects_its_ceiling(void **state)
{
	struct gs_test_alloc a;
	struct gs_ctx *ctx = gs_test_ctx_new(&a);
	struct gs_buf b;

	(void)state;
	gs__buf_init(&b, ctx, 10);
	assert_gs_ok(gs__buf_append(&b, "0123456789", 10));
	assert_gs_err(gs__buf_append(&b, "x", 1), GS_ETOOBIG);
	assert_int_equal(b.len, 10);
	gs__buf_fini(&b);
	gs__buf_init(&b, ctx, 1024);
	assert_gs_ok(gs__buf_json_str(&b, "a\"b\\\n\x01网格"));
	assert_gs_ok(gs__buf_cstr(&b));
	assert_string_equal((char *)b.data, "\"a\\\"b\\\\\\n\\u0001网格\"");
	gs__buf_fini(&b);
	assert_int_equal(a.live, 1); /* only the ctx itself */
	gs_ctx_free(ctx);
}

static void alloc_failure_is_reported(void **state)
{
	struct gs_test_alloc a;
	struct gs_ctx *ctx = gs_test_ctx_new(&a);
	struct gs_buf b;

	(void)state;
	gs__buf_init(&b, ctx, 1 << 20);
	gs_test_fail_alloc_at(&a, 0);
	assert_gs_err(gs__buf_append(&b, "abc", 3), GS_ENOMEM);
	assert_int_equal(b.len, 0);
	gs_test_fail_alloc_at(&a, -1);
	assert_gs_ok(gs__buf_append(&b, "abc", 3));
	gs__buf_fini(&b);
	gs_ctx_free(ctx);
}

static void time_round_trips(void **state)
{
	char buf[GS_TIME_LEN];
	int64_t ms = 0;

	(void)state;
	gs__time_format(buf, 1740817800123LL);
	assert_string_equal(buf, "2025-03-01T08:30:00.123Z");
	assert_gs_ok(gs__time_parse(&ms, buf));
	assert_int_equal(ms, 1740817800123LL);
	gs__time_format(buf, 0);
	assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
	assert_gs_ok(gs__time_parse(&ms, "2024-02-29T23:59:59Z"));
	assert_int_equal(ms, 1709251199000LL);
	assert_gs_err(gs__time_parse(&ms, "2024-13-01T00:00:00Z"), GS_EINVAL);
	assert_gs_err(gs__time_parse(&ms, "yesterday"), GS_EINVAL);
}

static int64_t fixed_clock(void *payload)
{
	return *(int64_t *)payload;
}

static void uuid7_is_versioned_and_ordered(void **state)
{
	struct gs_ctx_opts opts = GS_CTX_OPTS_INIT;
	struct gs_ctx *ctx = NULL;
	int64_t now = 1740817800123LL;
	char a[GS_UUID_LEN];
	char b[GS_UUID_LEN];

	(void)state;
	opts.clock_fn = fixed_clock;
	opts.clock_payload = &now;
	assert_gs_ok(gs_ctx_new(&ctx, &opts));
	assert_gs_ok(gs__uuid7(ctx, a));
	now += 1;
	assert_gs_ok(gs__uuid7(ctx, b));
	assert_int_equal(strlen(a), 36);
	assert_int_equal(a[14], '7');
	assert_true(strchr("89ab", a[19]) != NULL);
	assert_true(strcmp(a, b) < 0);
	assert_memory_equal(a, "019550d3", 8); /* 48-bit ms prefix */
	gs_ctx_free(ctx);
}

static void sha256_known_answer(void **state)
{
	uint8_t d[GS_SHA256_LEN];
	char hex[2 * GS_SHA256_LEN + 1];

	(void)state;
	gs__sha256(d, "abc", 3);
	gs__hex(hex, d, sizeof(d));
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223"
				 "b00361a396177a9cb410ff61f20015ad");
}

static void utf8_validation(void **state)
{
	(void)state;
	assert_true(gs__utf8_valid((const uint8_t *)"网格员", 9));
	assert_true(gs__utf8_valid((const uint8_t *)"", 0));
	assert_false(gs__utf8_valid((const uint8_t *)"\xc0\xaf", 2));
	assert_false(gs__utf8_valid((const uint8_t *)"\xed\xa0\x80", 3));
	assert_false(gs__utf8_valid((const uint8_t *)"\xe7\xbd", 2));
	assert_false(gs__utf8_valid((const uint8_t *)"\xff", 1));
	assert_false(gs__utf8_valid((const uint8_t *)"\xf4\x90\x80\x80", 4));
}

static void atomic_write_replaces_whole_file(void **state)
{
	char *dir = gs_test_tmpdir();
	struct gs_ctx *ctx = gs_test_ctx_new(NULL);
	const char *path = gs_test_path(dir, "f");
	uint8_t *data = NULL;
	size_t len = 0;
	struct stat sb;

	(void)state;
	assert_gs_ok(gs__fs_write_atomic(ctx, path, "first", 5));
	assert_gs_ok(gs__fs_write_atomic(ctx, path, "second!", 7));
	assert_gs_ok(gs__fs_read_all(ctx, &data, &len, path, 100));
	assert_int_equal(len, 7);
	assert_memory_equal(data, "second!", 7);
	gs__free(ctx, data);
	assert_int_equal(stat(gs_test_path(dir, "f.tmp"), &sb), -1);
	assert_gs_err(gs__fs_read_all(ctx, &data, &len, path, 3), GS_ETOOBIG);
	assert_gs_err(gs__fs_read_all(ctx, &data, &len,
				      gs_test_path(dir, "missing"), 3),
		      GS_ENOTFOUND);
	gs_ctx_free(ctx);
	gs_test_tmpdir_free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(errors_have_names_and_text),
		cmocka_unit_test(err_detail_wraps),
		cmocka_unit_test(buf_respects_its_ceiling),
		cmocka_unit_test(alloc_failure_is_reported),
		cmocka_unit_test(time_round_trips),
		cmocka_unit_test(uuid7_is_versioned_and_ordered),
		cmocka_unit_test(sha256_known_answer),
		cmocka_unit_test(utf8_validation),
		cmocka_unit_test(atomic_write_replaces_whole_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
