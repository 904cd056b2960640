/* Hybrid logical clock arithmetic (see hlc.h). */
#include <stdio.h>
#include <string.h>

#include <gridsync/err.h>
#include <gridsync/hlc.h>

/* One past h: the counter, and the millisecond when the counter is full. */
static uint64_t bump(uint64_t h)
{
	if (GS_HLC_CTR(h) == 0xffffu)
		return gs__hlc_make(GS_HLC_MS(h) + 1, 0);
	return h + 1;
}

uint64_t gs__hlc_next(uint64_t last, int64_t wall_ms)
{
	uint64_t wall = gs__hlc_make(wall_ms, 0);

	return wall > last ? wall : bump(last);
}

uint64_t gs__hlc_recv(uint64_t last, uint64_t remote, int64_t wall_ms)
{
	uint64_t wall = gs__hlc_make(wall_ms, 0);
	uint64_t seen = last > remote ? last : remote;

	return wall > seen ? wall : seen;
}

void gs__hlc_format(char out[GS_HLC_TEXT_LEN], uint64_t h)
{
	static const char hex[] = "0123456789abcdef";

	for (int i = 15; i >= 0; i--) {
		out[i] = hex[h & 15];
		h >>= 4;
	}
	out[16] = '\0';
}

int gs__hlc_parse(uint64_t *out, const char *text)
{
	uint64_t v = 0;

	if (text == NULL || strlen(text) != 16)
		return GS_EINVAL;
	for (int i = 0; i < 16; i++) {
		char c = text[i];
		unsigned d;

		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else
			return GS_EINVAL;
		v = (v << 4) | d;
	}
	*out = v;
	return GS_OK;
}
