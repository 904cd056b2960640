/* Hybrid logical clock: monotone under wall-clock jumps, merges remote
 * stamps, text form orders like the numbers. Property checks are seeded. */
#include <gridsync/hlc.h>

#include "gs_test.h"

static void next_follows_wall_clock(void **state)
{
	uint64_t h;

	(void)state;
	h = gs__hlc_next(0, 1000);
	assert_int_equal(GS_HLC_MS(h), 1000);
	assert_int_equal(GS_HLC_CTR(h), 0);
	h = gs__hlc_next(h, 1000); /* same ms: counter */
	assert_int_equal(GS_HLC_MS(h), 1000);
	assert_int_equal(GS_HLC_CTR(h), 1);
	h = gs__hlc_next(h, 2000);
	assert_int_equal(GS_HLC_MS(h), 2000);
	assert_int_equal(GS_HLC_CTR(h), 0);
}

static void never_goes_back_when_wall_clock_does(void **state)
{
	uint64_t h = gs__hlc_next(0, 5000000);
	uint64_t back = gs__hlc_next(h, 1000); /* clock set back 1.4 h */

	(void)state;
	assert_true(back > h);
	assert_int_equal(GS_HLC_MS(back), 5000000);
	/* Counter overflow carries into the milliseconds. */
	h = gs__hlc_make(7, 0xffff);
	back = gs__hlc_next(h, 0);
	assert_int_equal(GS_HLC_MS(back), 8);
	assert_int_equal(GS_HLC_CTR(back), 0);
}

static void recv_moves_past_remote(void **state)
{
	uint64_t local = gs__hlc_make(1000, 3);
	uint64_t remote = gs__hlc_make(9000, 7);
	uint64_t h = gs__hlc_recv(local, remote, 2000);

	(void)state;
	assert_true(h >= remote);
	assert_true(gs__hlc_next(h, 2000) > remote);
	/* A remote stamp from the past changes nothing but the wall. */
	h = gs__hlc_recv(gs__hlc_make(5000, 0), gs__hlc_make(10, 0), 6000);
	assert_int_equal(GS_HLC_MS(h), 6000);
}

static void random_walk_is_strictly_monotone(void **state)
{
	uint64_t seed = gs_test_seed("hlc random walk");
	uint64_t h = 0;
	int64_t wall = 1700000000000LL;

	(void)state;
	for (int i = 0; i < 100000; i++) {
		uint64_t r = gs_test_rand(&seed);
		uint64_t prev = h;

		/* The wall clock wanders: forward, back a day, frozen. */
		switch (r % 4) {
		case 0:
			wall += (int64_t)(r >> 8) % 1000;
			break;
		case 1:
			wall -= (int64_t)(r >> 8) % 86400000;
			break;
		default:
			break;
		}
		if (r % 7 == 0)
			h = gs__hlc_recv(h, gs__hlc_make(wall + 3000, 1), wall);
		else
			h = gs__hlc_next(h, wall);
		assert_true(h > prev || (r % 7 == 0 && h >= prev));
	}
}

static void text_form_round_trips_and_orders(void **state)
{
	char a[GS_HLC_TEXT_LEN];
	char b[GS_HLC_TEXT_LEN];
	uint64_t x = 0;

	(void)state;
	gs__hlc_format(a, gs__hlc_make(1740817800123LL, 5));
	gs__hlc_format(b, gs__hlc_make(1740817800123LL, 6));
	assert_int_equal(strlen(a), 16);
	assert_true(strcmp(a, b) < 0);
	assert_gs_ok(gs__hlc_parse(&x, a));
	assert_true(x == gs__hlc_make(1740817800123LL, 5));
	assert_gs_err(gs__hlc_parse(&x, "123"), GS_EINVAL);
	assert_gs_err(gs__hlc_parse(&x, "0000000000000G00"), GS_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(next_follows_wall_clock),
		cmocka_unit_test(never_goes_back_when_wall_clock_does),
		cmocka_unit_test(recv_moves_past_remote),
		cmocka_unit_test(random_walk_is_strictly_monotone),
		cmocka_unit_test(text_form_round_trips_and_orders),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
