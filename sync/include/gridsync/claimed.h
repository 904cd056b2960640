/*
 * Bounding the times a device claims in its rows against the entry's
 * HLC (sync/claimed.c). Internal; used by the merge.
 */
#ifndef GRIDSYNC_CLAIMED_H
#define GRIDSYNC_CLAIMED_H

#include <stdint.h>

#include <gridsync/changeset.h>
#include <gridsync/platform.h>

/* The window around the entry's HLC that a claimed time must fall in: a
 * visit may be entered some weeks after it started, never a day ahead. */
#define GS_CLAIMED_PAST_MS   (90LL * 24 * 3600 * 1000)
#define GS_CLAIMED_FUTURE_MS (24LL * 3600 * 1000)

/* One claimed time that was out of bounds and replaced. Strings borrowed
 * for the callback. */
struct gs_claimed_fix {
	const struct gs_cs_row *row;
	unsigned col;
	const char *claimed; /* as the device sent it */
	int64_t claimed_ms;
	const char *stored; /* what the merge will store */
	int64_t stored_ms;
};

/* Copy len bytes somewhere that lives as long as cs; NULL: no memory. */
typedef const void *(*gs_claimed_copy_fn)(void *payload,
					  const void *p,
					  size_t len);
/* Non-zero stops the walk and is returned. */
typedef int (*gs_claimed_cb)(const struct gs_claimed_fix *f, void *payload);

/*
 * Walk every inserted or updated value of cs: a device-claimed time
 * (columns named *_at or device_time, except due_at and deadline_at)
 * outside [ref_ms - GS_CLAIMED_PAST_MS, ref_ms + GS_CLAIMED_FUTURE_MS] is
 * replaced in cs by ref_ms as text (stored through copy) and reported to
 * cb. GS_OK, GS_ENOMEM, or cb's non-zero result.
 */
int gs__claimed_times_bound(struct gs_cs *cs,
			    int64_t ref_ms,
			    gs_claimed_copy_fn copy,
			    gs_claimed_cb cb,
			    void *payload);

#endif
