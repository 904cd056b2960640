/*
 * The session state machine (see engine.h). Legal moves are declared in
 * two tables, one per direction, so that every transition is visible in
 * one place and an illegal one is refused before any effect.
 */
#define GS_MODULE "sync.engine"

#include <gridsync/engine.h>

#define BIT(t) (1u << (t))

/* Per state: which message types may arrive / leave, and where each one
 * takes the session. Index [server][state]. */
struct move {
	enum gs_msg_type type;
	enum gs_sess_state to;
};

#define MAX_MOVES 6

struct moves {
	struct move m[MAX_MOVES];
};

#define MV(t, s)               \
	{                      \
		t, GS_SESS_##s \
	}

/* Messages a session may receive. */
static const struct moves recv_moves[2][GS_SESS_NR] = {
	/* client */
	{
		[GS_SESS_HELLO] = { { MV(GS_MSG_WELCOME, READY),
				      MV(GS_MSG_ERROR, FAILED) } },
		[GS_SESS_READY] = { { MV(GS_MSG_PONG, READY),
				      MV(GS_MSG_PING, READY),
				      MV(GS_MSG_ERROR, FAILED) } },
		[GS_SESS_PUSH] = { { MV(GS_MSG_PUSH_ACK, READY),
				     MV(GS_MSG_PONG, PUSH),
				     MV(GS_MSG_PING, PUSH),
				     MV(GS_MSG_ERROR, FAILED) } },
		[GS_SESS_PULL] = { { MV(GS_MSG_CHANGES, READY),
				     MV(GS_MSG_PONG, PULL),
				     MV(GS_MSG_PING, PULL),
				     MV(GS_MSG_ERROR, FAILED) } },
	},
	/* server */
	{
		[GS_SESS_IDLE] = { { MV(GS_MSG_HELLO, HELLO) } },
		[GS_SESS_READY] = { { MV(GS_MSG_PUSH, PUSH),
				      MV(GS_MSG_PULL, PULL),
				      MV(GS_MSG_PING, READY),
				      MV(GS_MSG_PONG, READY),
				      MV(GS_MSG_ERROR, FAILED) } },
	},
};

/* Messages a session may send. */
static const struct moves send_moves[2][GS_SESS_NR] = {
	/* client */
	{
		[GS_SESS_IDLE] = { { MV(GS_MSG_HELLO, HELLO) } },
		[GS_SESS_READY] = { { MV(GS_MSG_PUSH, PUSH),
				      MV(GS_MSG_PULL, PULL),
				      MV(GS_MSG_PING, READY),
				      MV(GS_MSG_PONG, READY),
				      MV(GS_MSG_ERROR, FAILED) } },
		[GS_SESS_PUSH] = { { MV(GS_MSG_PONG, PUSH),
				     MV(GS_MSG_ERROR, FAILED) } },
		[GS_SESS_PULL] = { { MV(GS_MSG_PONG, PULL),
				     MV(GS_MSG_ERROR, FAILED) } },
	},
	/* server */
	{
		[GS_SESS_IDLE] = { { MV(GS_MSG_ERROR, FAILED) } },
		[GS_SESS_HELLO] = { { MV(GS_MSG_WELCOME, READY),
				      MV(GS_MSG_ERROR, FAILED) } },
		[GS_SESS_READY] = { { MV(GS_MSG_PONG, READY),
				      MV(GS_MSG_PING, READY),
				      MV(GS_MSG_ERROR, FAILED) } },
		[GS_SESS_PUSH] = { { MV(GS_MSG_PUSH_ACK, READY),
				     MV(GS_MSG_ERROR, FAILED) } },
		[GS_SESS_PULL] = { { MV(GS_MSG_CHANGES, READY),
				     MV(GS_MSG_ERROR, FAILED) } },
	},
};

static const char *const state_names[GS_SESS_NR] = {
	"idle", "hello", "ready", "push", "pull", "done", "failed",
};

const char *gs__sess_state_name(enum gs_sess_state st)
{
	return (unsigned)st < GS_SESS_NR ? state_names[st] : "?";
}

void gs__sess_init(struct gs_sess *s, struct gs_ctx *ctx, bool server)
{
	const struct gs_wire_limits lim = GS_WIRE_LIMITS_INIT;

	s->ctx = ctx;
	s->server = server;
	s->state = GS_SESS_IDLE;
	s->lim = lim;
	s->proto_version = GS_PROTO_VERSION_MAX;
	s->frames_in = s->frames_out = s->bytes_in = s->bytes_out = 0;
}

static const struct move *
find(const struct moves *table, const struct gs_sess *s, enum gs_msg_type type)
{
	const struct moves *mv = &table[s->state];

	for (int i = 0; i < MAX_MOVES && mv->m[i].type != GS_MSG_NONE; i++)
		if (mv->m[i].type == type)
			return &mv->m[i];
	return NULL;
}

static int illegal(struct gs_sess *s, const char *dir, enum gs_msg_type t)
{
	int rc = gs__err(s->ctx, GS_EPROTO, "%s %s is not allowed in state %s",
			 dir, gs__msg_type_name(t),
			 gs__sess_state_name(s->state));

	s->state = GS_SESS_FAILED;
	return rc;
}

int gs__sess_pick_version(const struct gs_msg_hello *h, uint32_t *out)
{
	uint32_t lo = h->proto_min > GS_PROTO_VERSION_MIN
			      ? h->proto_min
			      : GS_PROTO_VERSION_MIN;
	uint32_t hi = h->proto_max < GS_PROTO_VERSION_MAX
			      ? h->proto_max
			      : GS_PROTO_VERSION_MAX;

	if (lo > hi)
		return GS_EPROTO;
	*out = hi;
	return GS_OK;
}

/* A Welcome fixes what both ends may send from now on: never more than
 * our own ceilings, never less than the floors. */
static void adopt_limits(struct gs_sess *s, const struct gs_msg_welcome *w)
{
	const struct gs_limits *l = &w->limits;

	if (l->max_frame_bytes >= GS_FRAME_MAX_FLOOR &&
	    l->max_frame_bytes <= GS_FRAME_MAX_CEILING)
		s->lim.max_frame = l->max_frame_bytes;
	if (l->max_push_entries > 0 &&
	    l->max_push_entries <= GS_WIRE_PUSH_ENTRIES_DEFAULT)
		s->lim.max_push_entries = l->max_push_entries;
	s->proto_version = w->proto_version;
}

int gs__sess_recv(struct gs_sess *s,
		  const uint8_t *data,
		  size_t len,
		  struct gs_msg **msg_out)
{
	struct gs_msg *msg = NULL;
	const struct move *mv;
	int rc;

	*msg_out = NULL;
	if (s->state == GS_SESS_DONE || s->state == GS_SESS_FAILED)
		return gs__err(s->ctx, GS_EPROTO, "session is %s",
			       gs__sess_state_name(s->state));
	rc = gs__msg_decode(&msg, s->ctx, data, len, &s->lim);
	if (rc != GS_OK) {
		s->state = GS_SESS_FAILED;
		return rc;
	}
	mv = find(recv_moves[s->server], s, msg->type);
	if (mv == NULL) {
		rc = illegal(s, "receiving", msg->type);
		gs__msg_free(msg);
		return rc;
	}
	if (msg->type == GS_MSG_WELCOME) {
		if (msg->u.welcome.proto_version < GS_PROTO_VERSION_MIN ||
		    msg->u.welcome.proto_version > GS_PROTO_VERSION_MAX) {
			gs__msg_free(msg);
			s->state = GS_SESS_FAILED;
			return gs__err(s->ctx, GS_EPROTO,
				       "server chose protocol version %u, this "
				       "build speaks %u..%u: upgrade gridsync",
				       (unsigned)msg->u.welcome.proto_version,
				       GS_PROTO_VERSION_MIN,
				       GS_PROTO_VERSION_MAX);
		}
		adopt_limits(s, &msg->u.welcome);
	}
	s->state = mv->to;
	s->frames_in++;
	s->bytes_in += len + GS_FRAME_HDR_LEN;
	*msg_out = msg;
	return GS_OK;
}

static const struct move failed_error = MV(GS_MSG_ERROR, FAILED);

int gs__sess_send(struct gs_sess *s,
		  struct gs_buf *out,
		  const struct gs_msg *msg)
{
	const struct move *mv;
	size_t before = out->len;
	int rc;

	mv = find(send_moves[s->server], s, msg->type);
	/* An Error may always be sent, also after a malformed frame failed
	 * the session: the peer learns why before the connection closes. */
	if (mv == NULL && msg->type == GS_MSG_ERROR &&
	    s->state == GS_SESS_FAILED)
		mv = &failed_error;
	if (mv == NULL)
		return illegal(s, "sending", msg->type);
	rc = gs__msg_encode(out, msg, &s->lim);
	if (rc != GS_OK)
		return rc;
	if (msg->type == GS_MSG_WELCOME)
		adopt_limits(s, &msg->u.welcome);
	s->state = mv->to;
	s->frames_out++;
	s->bytes_out += out->len - before;
	return GS_OK;
}
