/*
 * The sans-IO session engine: the declared moves, both ends, in memory.
 * Every illegal message fails the session before any effect.
 */
#include <gridsync/engine.h>
#include <gridsync/schema.h>

#include "gs_test.h"

struct pair {
	struct gs_ctx *ctx;
	struct gs_sess cli;
	struct gs_sess srv;
	struct gs_buf buf;
};

static void pair_init(struct pair *p)
{
	p->ctx = gs_test_ctx_new(NULL);
	gs__sess_init(&p->cli, p->ctx, false);
	gs__sess_init(&p->srv, p->ctx, true);
	gs__buf_init(&p->buf, p->ctx, 1 << 24);
}

static void pair_fini(struct pair *p)
{
	gs__buf_fini(&p->buf);
	gs_ctx_free(p->ctx);
}

/* from sends m; to receives it. Returns to's recv status. */
static int deliver(struct pair *p,
		   struct gs_sess *from,
		   struct gs_sess *to,
		   const struct gs_msg *m,
		   enum gs_msg_type *got)
{
	struct gs_msg *in = NULL;
	int rc;

	p->buf.len = 0;
	assert_gs_ok(gs__sess_send(from, &p->buf, m));
	rc = gs__sess_recv(to, p->buf.data + 4, p->buf.len - 4, &in);
	if (rc == GS_OK) {
		*got = in->type;
		gs__msg_free(in);
	}
	return rc;
}

static struct gs_msg hello(void)
{
	struct gs_msg m;

	memset(&m, 0, sizeof(m));
	m.type = GS_MSG_HELLO;
	m.u.hello.proto_min = GS_PROTO_VERSION_MIN;
	m.u.hello.proto_max = GS_PROTO_VERSION_MAX;
	m.u.hello.device_id = "d1";
	m.u.hello.schema_version = GS_SCHEMA_VERSION;
	m.u.hello.app_version = "t";
	m.u.hello.suite = GS_SUITE_V1;
	return m;
}

static struct gs_msg welcome(uint32_t max_entries)
{
	struct gs_msg m;

	memset(&m, 0, sizeof(m));
	m.type = GS_MSG_WELCOME;
	m.u.welcome.proto_version = GS_PROTO_VERSION_MAX;
	m.u.welcome.server_id = "s1";
	m.u.welcome.server_time_ms = 1;
	m.u.welcome.limits.max_frame_bytes = GS_FRAME_MAX_DEFAULT;
	m.u.welcome.limits.max_push_entries = max_entries;
	m.u.welcome.limits.pull_byte_budget = 1 << 20;
	m.u.welcome.schema_version = GS_SCHEMA_VERSION;
	m.u.welcome.suite = GS_SUITE_V1;
	return m;
}

static void handshake_then_pull(void **state)
{
	struct pair p;
	struct gs_msg m = hello();
	enum gs_msg_type got = GS_MSG_NONE;

	(void)state;
	pair_init(&p);
	assert_gs_ok(deliver(&p, &p.cli, &p.srv, &m, &got));
	assert_int_equal(got, GS_MSG_HELLO);
	assert_int_equal(p.srv.state, GS_SESS_HELLO);
	assert_int_equal(p.cli.state, GS_SESS_HELLO);
	m = welcome(100);
	assert_gs_ok(deliver(&p, &p.srv, &p.cli, &m, &got));
	assert_int_equal(p.cli.state, GS_SESS_READY);
	assert_int_equal(p.srv.state, GS_SESS_READY);
	assert_int_equal(p.cli.lim.max_push_entries, 100); /* negotiated */
	memset(&m, 0, sizeof(m));
	m.type = GS_MSG_PULL;
	m.u.pull.after_seq = 7;
	m.u.pull.byte_budget = 1000;
	assert_gs_ok(deliver(&p, &p.cli, &p.srv, &m, &got));
	assert_int_equal(p.srv.state, GS_SESS_PULL);
	memset(&m, 0, sizeof(m));
	m.type = GS_MSG_CHANGES;
	m.u.changes.schema_version = GS_SCHEMA_VERSION;
	m.u.changes.next_cursor = 7;
	assert_gs_ok(deliver(&p, &p.srv, &p.cli, &m, &got));
	assert_int_equal(p.cli.state, GS_SESS_READY);
	assert_int_equal(p.srv.state, GS_SESS_READY);
	assert_true(p.cli.frames_out == 2 && p.cli.frames_in == 2);
	pair_fini(&p);
}

static void illegal_moves_fail_the_session(void **state)
{
	struct pair p;
	struct gs_msg m;
	struct gs_msg *in = NULL;
	enum gs_msg_type got;

	(void)state;
	pair_init(&p);
	/* A client may not push before the handshake. */
	memset(&m, 0, sizeof(m));
	m.type = GS_MSG_PULL;
	assert_gs_err(gs__sess_send(&p.cli, &p.buf, &m), GS_EPROTO);
	assert_int_equal(p.cli.state, GS_SESS_FAILED);
	assert_int_equal(p.buf.len, 0); /* nothing encoded */
	assert_non_null(strstr(gs_ctx_errmsg(p.ctx), "not allowed"));
	/* A server must hear Hello first. */
	gs__sess_init(&p.cli, p.ctx, false);
	m = hello();
	assert_gs_ok(deliver(&p, &p.cli, &p.srv, &m, &got));
	m = welcome(10);
	assert_gs_ok(deliver(&p, &p.srv, &p.cli, &m, &got));
	/* A second Hello after the handshake is illegal. */
	{
		struct gs_sess tmp;
		struct gs_msg h = hello();

		gs__sess_init(&tmp, p.ctx, false);
		p.buf.len = 0;
		assert_gs_ok(gs__sess_send(&tmp, &p.buf, &h));
		assert_gs_err(gs__sess_recv(&p.srv, p.buf.data + 4,
					    p.buf.len - 4, &in),
			      GS_EPROTO);
		assert_null(in);
		assert_int_equal(p.srv.state, GS_SESS_FAILED);
	}
	/* Garbage bytes fail a session too. */
	gs__sess_init(&p.srv, p.ctx, true);
	assert_gs_err(
		gs__sess_recv(&p.srv, (const uint8_t *)"\xff\xff", 2, &in),
		GS_EPROTO);
	assert_int_equal(p.srv.state, GS_SESS_FAILED);
	/* And a failed session takes nothing more. */
	m = hello();
	assert_gs_err(gs__sess_recv(&p.srv, p.buf.data + 4, p.buf.len - 4, &in),
		      GS_EPROTO);
	pair_fini(&p);
}

static void error_ends_the_session(void **state)
{
	struct pair p;
	struct gs_msg m = hello();
	enum gs_msg_type got;

	(void)state;
	pair_init(&p);
	assert_gs_ok(deliver(&p, &p.cli, &p.srv, &m, &got));
	memset(&m, 0, sizeof(m));
	m.type = GS_MSG_ERROR;
	m.u.error.code = GS_WIRE_ERR_SCHEMA_UPGRADE;
	m.u.error.message = "upgrade";
	assert_gs_ok(deliver(&p, &p.srv, &p.cli, &m, &got));
	assert_int_equal(got, GS_MSG_ERROR);
	assert_int_equal(p.cli.state, GS_SESS_FAILED);
	assert_int_equal(p.srv.state, GS_SESS_FAILED);
	pair_fini(&p);
}

static void version_ranges(void **state)
{
	struct gs_msg_hello h;
	uint32_t v = 0;

	(void)state;
	memset(&h, 0, sizeof(h));
	h.proto_min = 1;
	h.proto_max = 9;
	assert_gs_ok(gs__sess_pick_version(&h, &v));
	assert_int_equal(v, GS_PROTO_VERSION_MAX);
	h.proto_min = GS_PROTO_VERSION_MAX + 1;
	h.proto_max = GS_PROTO_VERSION_MAX + 5;
	assert_gs_err(gs__sess_pick_version(&h, &v), GS_EPROTO);
	assert_string_equal(gs__sess_state_name(GS_SESS_PULL), "pull");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(handshake_then_pull),
		cmocka_unit_test(illegal_moves_fail_the_session),
		cmocka_unit_test(error_ends_the_session),
		cmocka_unit_test(version_ranges),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
