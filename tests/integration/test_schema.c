/*
 * gs-test: timeout=120
 *
 * A device on an older schema version (a raw client speaking the previous
 * release's schema, sending its Push right behind its Hello; its dwelling
 * rows would lack a column) is told to upgrade, and nothing
 * it sent is applied or acknowledged. A device with an unknown id is
 * refused the same way, without a hint of what exists.
 */
#include <gridsync/engine.h>
#include <gridsync/schema.h>
#include <gridsync/transport.h>

#include "gs_itest.h"

struct raw {
	struct gs_ctx *ctx;
	const char *device_id;
	uint32_t schema;
	int got_type;
	int got_code;
	char message[256];
	int acks;
};

static void raw_connect(struct gs_conn *c, int status, void *payload)
{
	struct raw *r = payload;
	struct gs_wire_limits lim = GS_WIRE_LIMITS_INIT;
	struct gs_push_entry e;
	struct gs_buf b;
	struct gs_msg m;
	static const uint8_t cs[] = { 'T', 1, 1, 'x', 0 };

	assert_int_equal(status, GS_OK);
	gs__buf_init(&b, r->ctx, 1 << 20);
	memset(&m, 0, sizeof(m));
	m.type = GS_MSG_HELLO;
	m.u.hello.proto_min = GS_PROTO_VERSION_MIN;
	m.u.hello.proto_max = GS_PROTO_VERSION_MAX;
	m.u.hello.device_id = r->device_id;
	m.u.hello.schema_version = r->schema;
	m.u.hello.app_version = "old/0.0";
	m.u.hello.suite = GS_SUITE_V1;
	assert_gs_ok(gs__msg_encode(&b, &m, &lim));
	assert_gs_ok(gs__conn_send(c, b.data + 4, b.len - 4));
	/* An old device pushes without waiting for the answer. */
	b.len = 0;
	memset(&e, 0, sizeof(e));
	e.device_seq = 1;
	e.hlc = 1;
	e.changeset = cs;
	e.changeset_len = sizeof(cs);
	e.uncompressed_len = sizeof(cs);
	gs__sha256(e.sha256, cs, sizeof(cs));
	memset(&m, 0, sizeof(m));
	m.type = GS_MSG_PUSH;
	m.u.push.schema_version = r->schema;
	m.u.push.entries = &e;
	m.u.push.n_entries = 1;
	assert_gs_ok(gs__msg_encode(&b, &m, &lim));
	assert_gs_ok(gs__conn_send(c, b.data + 4, b.len - 4));
	gs__buf_fini(&b);
}

static void
raw_frame(struct gs_conn *c, const uint8_t *data, size_t len, void *payload)
{
	struct raw *r = payload;
	struct gs_wire_limits lim = GS_WIRE_LIMITS_INIT;
	struct gs_msg *m = NULL;

	(void)c;
	assert_gs_ok(gs__msg_decode(&m, r->ctx, data, len, &lim));
	r->got_type = (int)m->type;
	if (m->type == GS_MSG_ERROR) {
		r->got_code = (int)m->u.error.code;
		snprintf(r->message, sizeof(r->message), "%s",
			 m->u.error.message);
	}
	if (m->type == GS_MSG_PUSH_ACK)
		r->acks++;
	gs__msg_free(m);
}

static void raw_close(struct gs_conn *c, int status, void *payload)
{
	(void)c;
	(void)status;
	(void)payload;
}

static void run_raw(struct gs_itest_server *s, struct raw *r)
{
	struct gs_conn_opts copts = { 0 };
	struct gs_conn_cbs cbs = { raw_connect, raw_frame, NULL, raw_close, r };
	struct gs_conn *conn = NULL;
	uv_loop_t loop;

	uv_loop_init(&loop);
	copts.idle_ms = 10000;
	assert_gs_ok(
		gs__conn_connect(&conn, r->ctx, &loop, s->addr, &copts, &cbs));
	uv_run(&loop, UV_RUN_DEFAULT); /* ends when the server closes */
	uv_loop_close(&loop);
}

static int64_t received(struct gs_itest_server *s, const char *device)
{
	return gs_itest_server_int(s,
				   "SELECT count(*) FROM srv_received WHERE"
				   " device_id = ?",
				   device);
}

static void old_schema_is_told_to_upgrade(void **state)
{
	struct gs_ctx *ctx = gs_test_ctx_new(NULL);
	char *dir = gs_test_tmpdir();
	struct gs_itest_server srv;
	struct gs_itest_workers w;
	struct gs_device *dev;
	struct raw r;

	(void)state;
	gs_itest_server_create(&srv, dir, false);
	gs_itest_workers(&srv, &w);
	gs_itest_server_start(&srv, NULL);
	dev = gs_itest_device(&srv, ctx, "dev-old", w.gw_a, w.grid_a);
	gs_device_close(dev);

	memset(&r, 0, sizeof(r));
	r.ctx = ctx;
	r.device_id = "dev-old";
	r.schema = GS_SCHEMA_VERSION - 1;
	run_raw(&srv, &r);
	assert_int_equal(r.got_type, GS_MSG_ERROR);
	assert_int_equal(r.got_code, GS_WIRE_ERR_SCHEMA_UPGRADE);
	assert_non_null(strstr(r.message, "upgrade"));
	assert_int_equal(r.acks, 0);
	assert_int_equal(received(&srv, "dev-old"), 0);

	/* Unknown device: refused, nothing stored. */
	memset(&r, 0, sizeof(r));
	r.ctx = ctx;
	r.device_id = "nobody";
	r.schema = GS_SCHEMA_VERSION;
	run_raw(&srv, &r);
	assert_int_equal(r.got_code, GS_WIRE_ERR_UNAUTHORIZED);
	assert_int_equal(received(&srv, "nobody"), 0);

	assert_int_equal(gs_itest_server_stop(&srv), 0);
	gs_ctx_free(ctx);
	gs_test_tmpdir_free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(old_schema_is_told_to_upgrade),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
