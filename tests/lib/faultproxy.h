/*
 * A fault-injecting TCP proxy for tests, on libuv, in its own thread.
 *
 * It listens on 127.0.0.1 (port 0), connects every accepted connection to
 * one upstream address on 127.0.0.1 and forwards bytes both ways. Over
 * plain TCP (`--insecure`) it understands the protocol's framing (a 4-byte
 * big-endian length, then the envelope) and can act on whole frames; over
 * TLS it sees only ciphertext and can act on bytes only.
 *
 * Which modes apply where:
 *   mode          plain TCP (framed)      TLS (bytes only)
 *   CUT           frame boundary + delta  byte offset
 *   DELAY         yes                     yes
 *   TRICKLE       yes                     yes
 *   BLACKHOLE     after frame k           after byte offset
 *   DUPLICATE     frame k twice           no (refused)
 *   REORDER       frames k and k+1        no (refused)
 *   REPLAY        an earlier connection's no (refused)
 *                 frame after frame k
 *   FLIP          one bit inside frame k  one bit at a byte offset
 *
 * A fault applies to every connection accepted while it is set; the test
 * changes it between syncs (gs_fp_set). Randomness (which bit, which
 * earlier frame) comes from the seed given at start.
 */
#ifndef GS_FAULTPROXY_H
#define GS_FAULTPROXY_H

#include <stdbool.h>
#include <stdint.h>

enum gs_fp_mode {
	GS_FP_NONE = 0,
	GS_FP_CUT,
	GS_FP_DELAY,
	GS_FP_TRICKLE,
	GS_FP_BLACKHOLE,
	GS_FP_DUPLICATE,
	GS_FP_REORDER,
	GS_FP_REPLAY,
	GS_FP_FLIP,
};

/* Direction of the fault: device to server, server to device. */
enum gs_fp_dir { GS_FP_C2S = 0, GS_FP_S2C = 1 };

struct gs_fp_fault {
	enum gs_fp_mode mode;
	enum gs_fp_dir dir;
	/* Framed: the frame index (0 is the direction's first frame). The
	 * cut point is the start of frame k plus delta (delta may be -1, 0
	 * or 1; the start of frame 0 is byte 0). TLS: k is a byte offset. */
	uint64_t k;
	int delta;
	unsigned delay_ms; /* DELAY: every chunk; TRICKLE: per byte */
	/* The connection's peer as the test knows it (e.g. device number
	 * + 1): REPLAY takes frames only from earlier connections with the
	 * same tag. Over plain TCP a frame of another device's connection
	 * is an impersonation only TLS can stop, not a replay. */
	unsigned tag;
};

struct gs_fp;

struct gs_fp_stats {
	uint64_t connections;
	uint64_t frames[2];  /* complete frames seen per direction */
	uint64_t injected;   /* faults that actually fired */
	uint64_t max_frames; /* most frames in one direction of one conn */
};

/* Start a proxy to upstream "127.0.0.1:PORT". tls: bytes only. Returns
 * NULL on failure. The listening address is gs_fp_addr(). */
struct gs_fp *gs_fp_start(const char *upstream, bool tls, uint64_t seed);
const char *gs_fp_addr(const struct gs_fp *fp);

/* Log every frame (connection, direction, number, length, message type,
 * and what the proxy did to it) to path; call before any connection. */
void gs_fp_log(struct gs_fp *fp, const char *path);

/* Set the fault for connections accepted from now on (NULL: none). */
void gs_fp_set(struct gs_fp *fp, const struct gs_fp_fault *fault);

/* From now on, each accepted connection gets, with probability
 * percent/100, a fault drawn from the seed: cut (frame k 0-3, delta -1 to
 * 1), delay, trickle, black hole, duplicate or reorder, in a random
 * direction (replays and bit flips are left to targeted tests: over plain
 * TCP they are not faults a real network makes). 0 turns it off. */
void gs_fp_set_random(struct gs_fp *fp, unsigned percent);

/* Close every open connection (both sides) now. */
void gs_fp_drop_all(struct gs_fp *fp);

void gs_fp_stats(struct gs_fp *fp, struct gs_fp_stats *out);

/* Frames in direction dir of the last connection that closed. */
uint64_t gs_fp_last_frames(struct gs_fp *fp, enum gs_fp_dir dir);

const char *gs_fp_mode_name(enum gs_fp_mode mode);

/* Stop the thread and free everything. */
void gs_fp_stop(struct gs_fp *fp);

#endif
