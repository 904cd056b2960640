/*
 * gs-test: timeout=120
 *
 * Revocation and enrolment against a real gridsyncd over TLS on loopback:
 * `gridsyncd revoke` cuts a device's open session within a second even
 * while it keeps sending Pings; enrolling a device again retires the
 * certificate of its earlier bundle; a revoked device is enrolled again
 * only with --reinstate; ids outside the documented set are refused
 * before anything is written (no row, no bundle, no forged listing line).
 */
#include <sys/stat.h>
#include <unistd.h>

#include <gridsync/client_internal.h>
#include <gridsync/engine.h>
#include <gridsync/schema.h>
#include <gridsync/transport.h>
#include <gridsync/wire.h>

#include "gs_itest.h"

struct fx {
	char *dir;
	struct gs_itest_server srv;
	struct gs_itest_workers w;
	struct gs_ctx *ctx;
};

static struct fx F;

static int setup(void **state)
{
	(void)state;
	F.dir = gs_test_tmpdir();
	F.ctx = gs_test_ctx_new(NULL);
	gs_itest_server_create(&F.srv, F.dir, true);
	gs_itest_workers(&F.srv, &F.w);
	gs_itest_server_start(&F.srv, NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	assert_int_equal(gs_itest_server_stop(&F.srv), 0);
	gs_ctx_free(F.ctx);
	gs_test_tmpdir_free(F.dir);
	return 0;
}

/* `gridsyncd enroll` into out; extra may be "--reinstate" or NULL. */
static int enroll(const char *id, const char *out, const char *extra)
{
	const char *argv[] = { "gridsyncd", "enroll",   "--db",     F.srv.db,
			       "--device",  id,         "--worker", F.w.gw_a,
			       "--scope",   F.w.grid_a, "--out",    out,
			       "--server",  F.srv.addr, extra,      NULL };

	return gs_itest_run(argv, "/dev/null", "/dev/null");
}

static int revoke_dev(const char *id)
{
	const char *argv[] = { "gridsyncd", "revoke", "--db", F.srv.db,
			       "--device",  id,       NULL };

	return gs_itest_run(argv, "/dev/null", NULL);
}

static int sync_once(struct gs_device *dev)
{
	struct gs_sync_opts so = GS_SYNC_OPTS_INIT;
	struct gs_sync_summary sum;

	int rc;

	so.once = 1;
	so.timeout_ms = 20000;
	rc = gs_device_sync(dev, &so, &sum);
	if (rc != GS_OK)
		print_message("sync refused as expected? %s: %s\n",
			      gs_errname(rc), gs_ctx_errmsg(F.ctx));
	return rc;
}

static struct gs_device *device_from(const char *bundle, const char *db)
{
	struct gs_device_init_opts io = GS_DEVICE_INIT_OPTS_INIT;
	struct gs_device *dev = NULL;

	io.bundle = bundle;
	if (gs_device_init(&dev, F.ctx, db, &io) != GS_OK)
		fail_msg("device from %s: %s", bundle, gs_ctx_errmsg(F.ctx));
	return dev;
}

static bool file_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* ---- ids --------------------------------------------------------------- */

static void bad_ids_write_nothing(void **state)
{
	static const char *const bad[] = { "../x", "a b",    "a\nb",
					   ".hid", "-flag",  "x/y",
					   "",     "a\tb\n", NULL };
	int64_t devices = gs_itest_server_int(
		&F.srv, "SELECT count(*) FROM srv_device", NULL);
	char out[4200];
	char list[4200];

	(void)state;
	snprintf(out, sizeof(out), "%s/bad.bundle", F.dir);
	for (int i = 0; bad[i] != NULL; i++) {
		assert_int_not_equal(enroll(bad[i], out, NULL), 0);
		assert_false(file_exists(out));
		assert_int_equal(gs_itest_server_int(&F.srv,
						     "SELECT count(*) FROM"
						     " srv_device",
						     NULL),
				 devices);
	}
	/* The listing has one "device:" line per enrolled device. */
	snprintf(list, sizeof(list), "%s/devices.txt", F.dir);
	{
		const char *argv[] = { "gridsyncd", "devices", "--db", F.srv.db,
				       NULL };
		FILE *f;
		char line[512];
		int64_t n = 0;

		assert_int_equal(gs_itest_run(argv, list, NULL), 0);
		f = fopen(list, "r");
		assert_non_null(f);
		while (fgets(line, sizeof(line), f) != NULL)
			n += strncmp(line, "device: ", 8) == 0;
		fclose(f);
		assert_int_equal(n, devices);
	}
}

/* ---- certificates ------------------------------------------------------ */

static void reenrolment_retires_old_certificate(void **state)
{
	struct gs_device *old_dev;
	struct gs_device *new_dev;
	char b2[4200];
	char db2[4200];

	(void)state;
	old_dev =
		gs_itest_device(&F.srv, F.ctx, "dev-re", F.w.gw_a, F.w.grid_a);
	assert_gs_ok(sync_once(old_dev));
	snprintf(b2, sizeof(b2), "%s/dev-re-2.bundle", F.dir);
	snprintf(db2, sizeof(db2), "%s/dev-re-2.db", F.dir);
	assert_int_equal(enroll("dev-re", b2, NULL), 0);
	/* The first bundle's certificate is still signed by the CA, but it
	 * is no longer the device's. */
	assert_int_equal(sync_once(old_dev), GS_EDENIED);
	new_dev = device_from(b2, db2);
	assert_gs_ok(sync_once(new_dev));
	gs_device_close(new_dev);
	gs_device_close(old_dev);
	assert_int_equal(gs_itest_server_int(&F.srv,
					     "SELECT count(*) FROM srv_cert"
					     " WHERE device_id = 'dev-re' AND"
					     " revoked = 0",
					     NULL),
			 1);
}

static void revoked_stays_revoked_without_reinstate(void **state)
{
	struct gs_device *dev;
	char b2[4200];
	char db2[4200];

	(void)state;
	dev = gs_itest_device(&F.srv, F.ctx, "dev-rv", F.w.gw_a, F.w.grid_a);
	assert_gs_ok(sync_once(dev));
	assert_int_equal(revoke_dev("dev-rv"), 0);
	assert_int_equal(sync_once(dev), GS_EDENIED);
	snprintf(b2, sizeof(b2), "%s/dev-rv-2.bundle", F.dir);
	snprintf(db2, sizeof(db2), "%s/dev-rv-2.db", F.dir);
	/* Enrolling again does not silently lift the revocation. */
	assert_int_equal(enroll("dev-rv", b2, NULL), 1);
	assert_false(file_exists(b2));
	assert_int_equal(gs_itest_server_int(&F.srv,
					     "SELECT revoked FROM srv_device"
					     " WHERE id = 'dev-rv'",
					     NULL),
			 1);
	assert_int_equal(enroll("dev-rv", b2, "--reinstate"), 0);
	/* The old certificate stays refused; the new bundle works. */
	assert_int_equal(sync_once(dev), GS_EDENIED);
	gs_device_close(dev);
	dev = device_from(b2, db2);
	assert_gs_ok(sync_once(dev));
	gs_device_close(dev);
	/* An unknown device cannot be revoked. */
	assert_int_equal(revoke_dev("no-such-device"), 1);
}

/* ---- an open session --------------------------------------------------- */

struct live {
	uv_loop_t loop;
	uv_timer_t tick;
	struct gs_conn *conn;
	struct gs_sess sess;
	struct gs_buf out;
	const char *id;
	bool welcomed;
	bool revoked;
	bool closed;
	int close_status;
	int error_code;
	unsigned pings, pongs;
	uint64_t t_revoked, t_closed, t_start;
};

static void live_send(struct live *l, const struct gs_msg *m)
{
	l->out.len = 0;
	assert_gs_ok(gs__sess_send(&l->sess, &l->out, m));
	assert_gs_ok(gs__conn_send(l->conn, l->out.data + GS_FRAME_HDR_LEN,
				   l->out.len - GS_FRAME_HDR_LEN));
}

static void live_connect(struct gs_conn *c, int status, void *payload)
{
	struct live *l = payload;
	struct gs_msg m;

	(void)c;
	if (status != GS_OK)
		return;
	memset(&m, 0, sizeof(m));
	m.type = GS_MSG_HELLO;
	m.u.hello.proto_min = GS_PROTO_VERSION_MIN;
	m.u.hello.proto_max = GS_PROTO_VERSION_MAX;
	m.u.hello.device_id = l->id;
	m.u.hello.schema_version = GS_SCHEMA_VERSION;
	m.u.hello.app_version = "test";
	m.u.hello.suite = GS_SUITE_V1;
	live_send(l, &m);
}

static void
live_frame(struct gs_conn *c, const uint8_t *data, size_t len, void *payload)
{
	struct live *l = payload;
	struct gs_msg *msg = NULL;

	(void)c;
	if (gs__sess_recv(&l->sess, data, len, &msg) != GS_OK)
		return;
	if (msg->type == GS_MSG_WELCOME)
		l->welcomed = true;
	else if (msg->type == GS_MSG_PONG)
		l->pongs++;
	else if (msg->type == GS_MSG_ERROR)
		l->error_code = (int)msg->u.error.code;
	gs__msg_free(msg);
}

static void live_close(struct gs_conn *c, int status, void *payload)
{
	struct live *l = payload;

	(void)c;
	l->conn = NULL;
	l->closed = true;
	l->close_status = status;
	l->t_closed = gs__clock_mono_ns();
	uv_timer_stop(&l->tick);
}

/* Every 100 ms: a Ping (the session is busy, never idle); once welcomed
 * and answering Pings, revoke the device; give up after 15 s. */
static void live_tick(uv_timer_t *t)
{
	struct live *l = t->data;
	struct gs_msg m;

	if (gs__clock_mono_ns() - l->t_start > 15ull * 1000000000ull) {
		uv_timer_stop(&l->tick);
		if (l->conn != NULL)
			gs__conn_close(l->conn, GS_ECANCELED);
		return;
	}
	/* After the server's Error the session takes no more requests;
	 * the close follows. */
	if (!l->welcomed || l->conn == NULL || l->error_code != 0)
		return;
	memset(&m, 0, sizeof(m));
	m.type = GS_MSG_PING;
	m.u.ping.nonce = ++l->pings;
	live_send(l, &m);
	if (!l->revoked && l->pongs >= 2) {
		assert_int_equal(revoke_dev(l->id), 0);
		l->revoked = true;
		l->t_revoked = gs__clock_mono_ns();
	}
}

static void revocation_cuts_open_session(void **state)
{
	struct gs_conn_opts copts = { 0 };
	struct gs_conn_cbs cbs = { live_connect, live_frame, NULL, live_close,
				   NULL };
	struct gs_device *dev;
	struct gs_bundle b;
	struct gs_tls *tls = NULL;
	struct live l;
	char bundle[4200];
	uint64_t ms;

	(void)state;
	dev = gs_itest_device(&F.srv, F.ctx, "dev-live", F.w.gw_a, F.w.grid_a);
	gs_device_close(dev);
	snprintf(bundle, sizeof(bundle), "%s/dev-live.bundle", F.dir);
	memset(&b, 0, sizeof(b));
	assert_gs_ok(gs__bundle_read(&b, F.ctx, bundle));
	assert_gs_ok(gs__tls_client_new(&tls, F.ctx, b.ca_pem, b.cert_pem,
					b.key_pem));
	memset(&l, 0, sizeof(l));
	l.id = "dev-live";
	l.t_start = gs__clock_mono_ns();
	gs__sess_init(&l.sess, F.ctx, false);
	gs__buf_init(&l.out, F.ctx, GS_FRAME_MAX_CEILING);
	assert_int_equal(uv_loop_init(&l.loop), 0);
	uv_timer_init(&l.loop, &l.tick);
	l.tick.data = &l;
	uv_timer_start(&l.tick, live_tick, 100, 100);
	copts.tls = tls;
	copts.idle_ms = 30000;
	cbs.payload = &l;
	assert_gs_ok(gs__conn_connect(&l.conn, F.ctx, &l.loop, F.srv.addr,
				      &copts, &cbs));
	uv_run(&l.loop, UV_RUN_DEFAULT);
	uv_close((uv_handle_t *)&l.tick, NULL);
	uv_run(&l.loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&l.loop), 0);
	gs__buf_fini(&l.out);
	gs__tls_free(tls);
	gs__bundle_fini(F.ctx, &b);

	assert_true(l.welcomed);
	assert_true(l.revoked);
	assert_true(l.closed);
	ms = (l.t_closed - l.t_revoked) / 1000000u;
	if (l.t_closed < l.t_revoked || ms >= 1000)
		fail_msg("the revoked session stayed open %llu ms after "
			 "`gridsyncd revoke` returned (close status %s)",
			 (unsigned long long)ms, gs_errname(l.close_status));
	assert_int_equal(l.error_code, GS_WIRE_ERR_UNAUTHORIZED);
	print_message("revoked session closed %llu ms after the revoke "
		      "command returned (%u pings sent)\n",
		      (unsigned long long)ms, l.pings);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(bad_ids_write_nothing),
		cmocka_unit_test(reenrolment_retires_old_certificate),
		cmocka_unit_test(revoked_stays_revoked_without_reinstate),
		cmocka_unit_test(revocation_cuts_open_session),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
