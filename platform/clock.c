/* Wall and monotonic clocks, ISO-8601 formatting, random bytes, UUIDv7. */
#define GS_MODULE "platform.clock"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <gridsync/platform.h>

#include "ctx_impl.h"

int64_t gs__clock_wall_ms(struct gs_ctx *ctx)
{
	struct timespec ts;

	if (ctx != NULL && ctx->clock_fn != NULL)
		return ctx->clock_fn(ctx->clock_payload);
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t gs__clock_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Days since 1970-01-01 to civil date (Howard Hinnant's algorithm). */
static void civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
	int64_t era;
	unsigned doe;
	unsigned yoe;
	unsigned doy;
	unsigned mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = (unsigned)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int)(yoe + era * 400 + (*m <= 2));
}

static int64_t days_from_civil(int y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe;
	unsigned doy;
	unsigned doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static char *put(char *p, unsigned v, int width)
{
	for (int i = width - 1; i >= 0; i--) {
		p[i] = (char)('0' + v % 10);
		v /= 10;
	}
	return p + width;
}

/* Hand-rolled: it runs on every save, and snprintf costs more than the
 * rest of the stamp. */
void gs__time_format(char *buf, int64_t ms)
{
	int64_t secs = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
	int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
	unsigned rem = (unsigned)(secs - days * 86400);
	char *p = buf;
	int y;
	unsigned m;
	unsigned d;

	civil_from_days(days, &y, &m, &d);
	p = put(p, (unsigned)(y < 0 ? 0 : y % 10000), 4);
	*p++ = '-';
	p = put(p, m, 2);
	*p++ = '-';
	p = put(p, d, 2);
	*p++ = 'T';
	p = put(p, rem / 3600, 2);
	*p++ = ':';
	p = put(p, rem / 60 % 60, 2);
	*p++ = ':';
	p = put(p, rem % 60, 2);
	*p++ = '.';
	p = put(p, (unsigned)(ms - secs * 1000), 3);
	*p++ = 'Z';
	*p = '\0';
}

static int digits(const char *s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return GS_EINVAL;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return GS_OK;
}

int gs__time_parse(int64_t *out, const char *t)
{
	int y, mo, d, h, mi, s, ms = 0;
	size_t len = t != NULL ? strlen(t) : 0;

	if (len != 20 && len != 24)
		return GS_EINVAL;
	if (t[4] != '-' || t[7] != '-' || t[10] != 'T' || t[13] != ':' ||
	    t[16] != ':' || t[len - 1] != 'Z')
		return GS_EINVAL;
	if (digits(t, 4, &y) || digits(t + 5, 2, &mo) || digits(t + 8, 2, &d) ||
	    digits(t + 11, 2, &h) || digits(t + 14, 2, &mi) ||
	    digits(t + 17, 2, &s))
		return GS_EINVAL;
	if (len == 24 && (t[19] != '.' || digits(t + 20, 3, &ms)))
		return GS_EINVAL;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 59)
		return GS_EINVAL;
	*out = (days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 +
		h * 3600 + mi * 60 + s) *
		       1000 +
	       ms;
	return GS_OK;
}

static int fill(struct gs_ctx *ctx, uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return gs__err(ctx, GS_EIO, "getrandom: %s",
				       strerror(errno));
		}
		p += n;
		len -= (size_t)n;
	}
	return GS_OK;
}

int gs__random(struct gs_ctx *ctx, void *buf, size_t len)
{
	long pid = (long)getpid();
	int rc;

	if (ctx == NULL || len > sizeof(ctx->rnd) / 4)
		return fill(ctx, buf, len);
	if (ctx->rnd_pid != pid || ctx->rnd_left < len) {
		rc = fill(ctx, ctx->rnd, sizeof(ctx->rnd));
		if (rc != GS_OK)
			return rc;
		ctx->rnd_left = sizeof(ctx->rnd);
		ctx->rnd_pid = pid;
	}
	memcpy(buf, ctx->rnd + sizeof(ctx->rnd) - ctx->rnd_left, len);
	/* Never hand the same bytes out twice. */
	memset(ctx->rnd + sizeof(ctx->rnd) - ctx->rnd_left, 0, len);
	ctx->rnd_left -= len;
	return GS_OK;
}

int gs__uuid7(struct gs_ctx *ctx, char out[GS_UUID_LEN])
{
	uint64_t ms = (uint64_t)gs__clock_wall_ms(ctx);
	uint8_t b[16];
	int rc;

	rc = gs__random(ctx, b + 6, sizeof(b) - 6);
	if (rc != GS_OK)
		return rc;
	for (int i = 0; i < 6; i++)
		b[i] = (uint8_t)(ms >> (40 - 8 * i));
	b[6] = (uint8_t)(0x70 | (b[6] & 0x0f)); /* version 7 */
	b[8] = (uint8_t)(0x80 | (b[8] & 0x3f)); /* RFC 9562 variant */
	snprintf(out, GS_UUID_LEN,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
		 "%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
		 b[10], b[11], b[12], b[13], b[14], b[15]);
	return GS_OK;
}
