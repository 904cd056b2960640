/*
 * The sync protocol as a sans-IO engine: frames in, messages out, and the
 * session states declared once, for both ends (DESIGN.md 3.8). It does no
 * I/O and keeps no timers: the transport feeds it whole frames and sends
 * what it encodes; the driver (client/sync.c on a handheld, the gridsyncd
 * connection handler on the server) decides what to say next.
 *
 * Client:  idle -Hello-> hello -Welcome-> ready -Push-> push -PushAck-> ready
 *                                          ready -Pull-> pull -Changes-> ready
 * Server:  idle -Hello-> hello -Welcome-> ready -Push-> push -PushAck-> ready
 *                                          ready -Pull-> pull -Changes-> ready
 * Ping/Pong are allowed whenever the session is past the handshake; an
 * Error from either side ends the session (failed). A message that is not
 * legal in the current state is GS_EPROTO and fails the session.
 */
#ifndef GRIDSYNC_ENGINE_H
#define GRIDSYNC_ENGINE_H

#include <stdbool.h>

#include <gridsync/wire.h>

enum gs_sess_state {
	GS_SESS_IDLE,
	GS_SESS_HELLO, /* Hello sent (client) or received (server) */
	GS_SESS_READY,
	GS_SESS_PUSH, /* Push outstanding */
	GS_SESS_PULL, /* Pull outstanding */
	GS_SESS_DONE,
	GS_SESS_FAILED,
	GS_SESS_NR
};

struct gs_sess {
	struct gs_ctx *ctx;
	bool server;
	enum gs_sess_state state;
	struct gs_wire_limits lim; /* negotiated once Welcome is through */
	uint32_t proto_version;
	uint64_t frames_in, frames_out, bytes_in, bytes_out;
};

void gs__sess_init(struct gs_sess *s, struct gs_ctx *ctx, bool server);

const char *gs__sess_state_name(enum gs_sess_state st);

/*
 * Decode one frame (envelope bytes, no length prefix) and check that the
 * message is legal now; on success the state moves and *msg_out is the
 * caller's (gs__msg_free). A Welcome fixes the negotiated limits and
 * protocol version on the client. GS_EPROTO (bad bytes or an illegal
 * message) fails the session; detail text says which.
 */
int gs__sess_recv(struct gs_sess *s,
		  const uint8_t *data,
		  size_t len,
		  struct gs_msg **msg_out);

/*
 * Check that msg may be sent now, encode it as one frame (length prefix
 * included) appended to out, and move the state. GS_EPROTO if illegal.
 */
int gs__sess_send(struct gs_sess *s,
		  struct gs_buf *out,
		  const struct gs_msg *msg);

/* The server's answer to a Hello: GS_OK and the protocol version to
 * speak, or GS_EPROTO with detail text when the ranges do not meet. */
int gs__sess_pick_version(const struct gs_msg_hello *hello, uint32_t *out);

#endif
