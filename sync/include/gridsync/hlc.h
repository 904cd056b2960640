/*
 * Hybrid logical clock: 48 bits of milliseconds since the epoch and a
 * 16-bit counter in one uint64_t, so stamps compare as integers. A stamp
 * never goes backwards, also when the wall clock does; receiving a remote
 * stamp moves the clock past it. Pure functions: the caller persists.
 */
#ifndef GRIDSYNC_HLC_H
#define GRIDSYNC_HLC_H

#include <stdint.h>

#define GS_HLC_MS(h)  ((int64_t)((h) >> 16))
#define GS_HLC_CTR(h) ((unsigned)((h)&0xffffu))
#define GS_HLC_MAX_MS ((INT64_C(1) << 48) - 1)

/* Text form stored in the rows' hlc column: 16 lowercase hex digits,
 * so that text order equals numeric order. */
#define GS_HLC_TEXT_LEN 17

static inline uint64_t gs__hlc_make(int64_t ms, unsigned ctr)
{
	if (ms < 0)
		ms = 0;
	if (ms > GS_HLC_MAX_MS)
		ms = GS_HLC_MAX_MS;
	return ((uint64_t)ms << 16) | (ctr & 0xffffu);
}

/* The next local stamp after last, given the wall clock. */
uint64_t gs__hlc_next(uint64_t last, int64_t wall_ms);

/* The clock after seeing remote: max(last, remote, wall), never behind
 * either input. Used for downloads and the server's time in Welcome. */
uint64_t gs__hlc_recv(uint64_t last, uint64_t remote, int64_t wall_ms);

void gs__hlc_format(char out[GS_HLC_TEXT_LEN], uint64_t h);

/* Parse the text form; GS_EINVAL unless exactly 16 hex digits. */
int gs__hlc_parse(uint64_t *out, const char *text);

#endif
