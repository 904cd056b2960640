/*
 * Shared by tests/sync/test_transport*.c and test_tls*.c: a real uv loop,
 * a listener on 127.0.0.1 and clients, with every wait bounded by a
 * deadline timer (no sleeps). A test "world" holds the loop, the ctx with
 * the counting allocator, optional TLS material made by gs__pki_init and
 * gs__pki_enroll in a temporary directory, and the per-connection
 * records the callbacks fill in.
 */
#ifndef GS_TEST_TRANSPORT_FIXTURE_H
#define GS_TEST_TRANSPORT_FIXTURE_H

#include <gridsync/transport.h>
#include <gridsync/wire.h>

#include "gs_test.h"

#define MAXP 256

struct tw;

struct tpeer {
	struct tw *w;
	struct gs_conn *c;
	bool server;
	/* what happened */
	int connect_calls;
	int connect_status;
	int close_calls;
	int close_status;
	bool close_nested; /* on_close ran inside another callback */
	bool in_cb;
	char detail[512];
	char peer_id[GS_WIRE_ID_MAX + 1];
	char addr[80];
	bool peer_id_at_first_frame;
	size_t frames;
	uint64_t bytes;
	size_t drains;
	uint64_t closed_at; /* uv_now */
	/* what to do */
	bool echo;             /* server: send every frame back */
	size_t close_after;    /* close after this many frames (0: no) */
	int close_status_req;  /* ... with this status */
	size_t pause_after;    /* pause after this many frames */
	bool close_in_connect; /* client: close inside on_connect */
	/* client: frames to send on connect and to expect back */
	const size_t *sizes;
	size_t n_sizes;
	size_t expect;
	bool mismatch;
	bool close_when_echoed;
	uint32_t tag;
};

struct tw {
	uv_loop_t loop;
	uv_timer_t deadline;
	bool expired;
	struct gs_test_alloc alloc;
	struct gs_ctx *ctx;
	long live0;
	char *dir;
	struct gs_bundle bundle;
	struct gs_tls *stls;
	struct gs_tls *ctls;
	struct gs_listener *l;
	int port;
	bool l_closed;
	bool srv_pause_on_accept;
	struct tpeer srv_tmpl; /* copied into each accepted peer */
	struct gs_conn_opts sopts;
	struct gs_conn_opts copts;
	struct tpeer srv[MAXP];
	int n_srv;
	struct tpeer cli[MAXP];
	int n_cli;
};

/* ---- loop control -------------------------------------------------------- */

static inline void tw_on_deadline(uv_timer_t *t)
{
	struct tw *w = t->data;

	w->expired = true;
}

static inline void tw_arm(struct tw *w, uint64_t ms)
{
	w->expired = false;
	uv_timer_start(&w->deadline, tw_on_deadline, ms, 0);
}

/* Run the loop until cond holds; fail the test after ms. */
#define RUN_UNTIL(w, cond, ms)                                           \
	do {                                                             \
		tw_arm((w), (ms));                                       \
		while (!(cond) && !(w)->expired)                         \
			uv_run(&(w)->loop, UV_RUN_ONCE);                 \
		uv_timer_stop(&(w)->deadline);                           \
		if (!(cond))                                             \
			fail_msg("timed out after %d ms waiting for %s", \
				 (int)(ms), #cond);                      \
	} while (0)

/* Run the loop for ms (to show that something does not happen). */
#define RUN_FOR(w, ms)                                   \
	do {                                             \
		tw_arm((w), (ms));                       \
		while (!(w)->expired)                    \
			uv_run(&(w)->loop, UV_RUN_ONCE); \
	} while (0)

/* ---- frame contents -------------------------------------------------------
 */

static inline void fill(uint8_t *p, size_t len, uint32_t tag)
{
	uint32_t x = tag * 2654435761u + (uint32_t)len;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)x;
	}
}

static inline bool check(const uint8_t *p, size_t len, uint32_t tag)
{
	uint8_t *want = malloc(len);
	bool ok;

	fill(want, len, tag);
	ok = memcmp(want, p, len) == 0;
	free(want);
	return ok;
}

static inline int send_pattern(struct gs_conn *c, size_t len, uint32_t tag)
{
	uint8_t *p = malloc(len);
	int rc;

	fill(p, len, tag);
	rc = gs__conn_send(c, p, len);
	free(p);
	return rc;
}

/* ---- callbacks -------------------------------------------------------------
 */

static inline void t_on_connect(struct gs_conn *c, int status, void *payload)
{
	struct tpeer *tp = payload;

	tp->in_cb = true;
	tp->connect_calls++;
	tp->connect_status = status;
	if (status == GS_OK) {
		if (gs__conn_peer_id(c) != NULL)
			snprintf(tp->peer_id, sizeof(tp->peer_id), "%s",
				 gs__conn_peer_id(c));
		for (size_t i = 0; i < tp->n_sizes; i++) {
			int rc = send_pattern(c, tp->sizes[i],
					      tp->tag + (uint32_t)i);

			if (rc != GS_OK) {
				/* e.g. GS_ENOMEM in an allocation test */
				tp->mismatch = true;
				gs__conn_close(c, rc);
				break;
			}
		}
		if (tp->close_in_connect)
			gs__conn_close(c, GS_OK);
	}
	tp->in_cb = false;
}

static void
t_on_frame(struct gs_conn *c, const uint8_t *data, size_t len, void *payload)
{
	struct tpeer *tp = payload;

	tp->in_cb = true;
	tp->frames++;
	tp->bytes += len;
	if (tp->frames == 1 && gs__conn_peer_id(c) != NULL) {
		tp->peer_id_at_first_frame = true;
		snprintf(tp->peer_id, sizeof(tp->peer_id), "%s",
			 gs__conn_peer_id(c));
	}
	if (tp->server && tp->echo) {
		int rc = gs__conn_send(c, data, len);

		if (rc != GS_OK) {
			tp->mismatch = true;
			gs__conn_close(c, rc);
		}
	}
	if (!tp->server && tp->sizes != NULL) {
		if (tp->expect >= tp->n_sizes || len != tp->sizes[tp->expect] ||
		    !check(data, len, tp->tag + (uint32_t)tp->expect))
			tp->mismatch = true;
		tp->expect++;
		if (tp->expect == tp->n_sizes && tp->close_when_echoed)
			gs__conn_close(c, GS_OK);
	}
	if (tp->close_after != 0 && tp->frames == tp->close_after)
		gs__conn_close(c, tp->close_status_req);
	if (tp->pause_after != 0 && tp->frames == tp->pause_after)
		gs__conn_pause(c, true);
	tp->in_cb = false;
}

static inline void t_on_drain(struct gs_conn *c, void *payload)
{
	struct tpeer *tp = payload;

	(void)c;
	tp->drains++;
}

static inline void t_on_close(struct gs_conn *c, int status, void *payload)
{
	struct tpeer *tp = payload;

	(void)c;
	if (tp->in_cb)
		tp->close_nested = true;
	tp->close_calls++;
	tp->close_status = status;
	snprintf(tp->detail, sizeof(tp->detail), "%s",
		 gs_ctx_errmsg(tp->w->ctx));
	tp->closed_at = uv_now(&tp->w->loop);
	tp->c = NULL;
}

static inline struct gs_conn_cbs t_cbs(struct tpeer *tp)
{
	struct gs_conn_cbs cbs = { t_on_connect, t_on_frame, t_on_drain,
				   t_on_close, tp };
	return cbs;
}

static inline void
t_on_accept(struct gs_listener *l, struct gs_conn *c, void *payload)
{
	struct tw *w = payload;
	struct tpeer *tp;
	struct gs_conn_cbs cbs;

	(void)l;
	assert_true(w->n_srv < MAXP);
	tp = &w->srv[w->n_srv++];
	*tp = w->srv_tmpl;
	tp->w = w;
	tp->c = c;
	tp->server = true;
	snprintf(tp->addr, sizeof(tp->addr), "%s", gs__conn_peer_addr(c));
	cbs = t_cbs(tp);
	gs__conn_set_cbs(c, &cbs);
	if (w->srv_pause_on_accept)
		gs__conn_pause(c, true);
}

static inline void t_on_listener_closed(void *payload)
{
	struct tw *w = payload;

	w->l_closed = true;
}

/* ---- setup and teardown
 * ------------------------------------------------------ */

/* Make a CA in dir and enrol device_id; the bundle goes to *b. */
static inline void tw_pki(struct gs_ctx *ctx,
			  const char *dir,
			  const char *device_id,
			  struct gs_bundle *b)
{
	char path[4096];

	assert_gs_ok(gs__pki_init(ctx, dir, NULL));
	snprintf(path, sizeof(path), "%s/%s.bundle", dir, device_id);
	assert_gs_ok(gs__pki_enroll(ctx, dir, device_id, "w-7", "G1",
				    "127.0.0.1:7443", path));
	assert_gs_ok(gs__bundle_read(b, ctx, path));
}

static inline struct tw *tw_new(bool tls)
{
	struct tw *w = calloc(1, sizeof(*w));

	assert_non_null(w);
	assert_int_equal(uv_loop_init(&w->loop), 0);
	uv_timer_init(&w->loop, &w->deadline);
	w->deadline.data = w;
	w->ctx = gs_test_ctx_new(&w->alloc);
	assert_non_null(w->ctx);
	w->srv_tmpl.echo = true;
	if (tls) {
		w->dir = gs_test_tmpdir();
		assert_non_null(w->dir);
		tw_pki(w->ctx, w->dir, "dev-001", &w->bundle);
		/* Server from files, client from the bundle's PEM text. */
		assert_gs_ok(gs__tls_server_new(
			&w->stls, w->ctx, gs_test_path(w->dir, "ca.pem"),
			gs_test_path(w->dir, "server.pem"),
			gs_test_path(w->dir, "server.key")));
		assert_gs_ok(gs__tls_client_new(
			&w->ctls, w->ctx, w->bundle.ca_pem, w->bundle.cert_pem,
			w->bundle.key_pem));
		w->sopts.tls = w->stls;
		w->copts.tls = w->ctls;
	}
	w->live0 = w->alloc.live;
	return w;
}

static inline void tw_listen_at(struct tw *w, const char *addr)
{
	assert_gs_ok(gs__listen(&w->l, w->ctx, &w->loop, addr, &w->sopts,
				t_on_accept, w));
	w->port = gs__listener_port(w->l);
	assert_true(w->port > 0);
}

static inline void tw_listen(struct tw *w)
{
	tw_listen_at(w, "127.0.0.1:0");
}

static inline struct tpeer *tw_peer(struct tw *w)
{
	struct tpeer *tp;

	assert_true(w->n_cli < MAXP);
	tp = &w->cli[w->n_cli++];
	memset(tp, 0, sizeof(*tp));
	tp->w = w;
	return tp;
}

/* Dial host:port (host NULL: 127.0.0.1, port: the listener's). */
static inline struct tpeer *
tw_dial_host(struct tw *w, struct tpeer *tp, const char *host)
{
	char hp[300];
	struct gs_conn_cbs cbs = t_cbs(tp);

	snprintf(hp, sizeof(hp), "%s:%d", host != NULL ? host : "127.0.0.1",
		 w->port);
	assert_gs_ok(gs__conn_connect(&tp->c, w->ctx, &w->loop, hp, &w->copts,
				      &cbs));
	return tp;
}

static inline struct tpeer *tw_dial(struct tw *w)
{
	return tw_dial_host(w, tw_peer(w), NULL);
}

static inline bool tw_all_closed(struct tw *w)
{
	for (int i = 0; i < w->n_srv; i++)
		if (w->srv[i].close_calls == 0)
			return false;
	for (int i = 0; i < w->n_cli; i++)
		if (w->cli[i].c != NULL ||
		    (w->cli[i].close_calls == 0 && w->cli[i].connect_calls > 0))
			return false;
	return w->l == NULL || w->l_closed;
}

/* Close what is left, check that every connection reported exactly once,
 * that the loop has no handle left and nothing allocated leaked. */
static inline void tw_free(struct tw *w)
{
	if (w->l != NULL && !w->l_closed)
		gs__listener_close(w->l, t_on_listener_closed, w);
	for (int i = 0; i < w->n_srv; i++)
		if (w->srv[i].c != NULL)
			gs__conn_close(w->srv[i].c, GS_ECANCELED);
	for (int i = 0; i < w->n_cli; i++)
		if (w->cli[i].c != NULL)
			gs__conn_close(w->cli[i].c, GS_ECANCELED);
	RUN_UNTIL(w, tw_all_closed(w), 30000);
	for (int i = 0; i < w->n_srv; i++) {
		assert_int_equal(w->srv[i].close_calls, 1);
		assert_false(w->srv[i].close_nested);
	}
	for (int i = 0; i < w->n_cli; i++) {
		assert_true(w->cli[i].close_calls <= 1);
		assert_true(w->cli[i].connect_calls <= 1);
		assert_false(w->cli[i].close_nested);
	}
	assert_int_equal(w->alloc.live, w->live0);
	uv_close((uv_handle_t *)&w->deadline, NULL);
	uv_run(&w->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&w->loop), 0);
	gs__tls_free(w->stls);
	gs__tls_free(w->ctls);
	gs__bundle_fini(w->ctx, &w->bundle);
	gs_ctx_free(w->ctx);
	gs_test_tmpdir_free(w->dir);
	free(w);
}

/* ---- a raw TCP peer (for bytes gridsync would never send) ------------------
 */

struct raw {
	uv_tcp_t tcp;
	uv_connect_t creq;
	struct tw *w;
	bool connected;
	int connect_status;
	bool eof;
	int read_err;
	bool closed;
	uint8_t *rx;
	size_t rx_len;
	size_t rx_cap;
	int writes;
};

static inline void raw_on_closed(uv_handle_t *h)
{
	struct raw *r = h->data;

	r->closed = true;
}

static inline void raw_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct raw *r = h->data;

	(void)hint;
	if (r->rx_cap - r->rx_len < 65536) {
		r->rx_cap = r->rx_cap * 2 + 65536;
		r->rx = realloc(r->rx, r->rx_cap);
	}
	*buf = uv_buf_init((char *)r->rx + r->rx_len,
			   (unsigned int)(r->rx_cap - r->rx_len));
}

static inline void raw_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct raw *r = s->data;

	(void)buf;
	if (n > 0) {
		r->rx_len += (size_t)n;
	} else if (n < 0) {
		r->eof = true;
		r->read_err = (int)n;
		uv_read_stop(s);
	}
}

static inline void raw_on_connect(uv_connect_t *req, int status)
{
	struct raw *r = req->data;

	r->connected = status == 0;
	r->connect_status = status;
	if (status == 0)
		uv_read_start((uv_stream_t *)&r->tcp, raw_alloc, raw_on_read);
}

static inline void raw_connect(struct tw *w, struct raw *r)
{
	struct sockaddr_in sa;

	memset(r, 0, sizeof(*r));
	r->w = w;
	uv_tcp_init(&w->loop, &r->tcp);
	r->tcp.data = r;
	r->creq.data = r;
	uv_ip4_addr("127.0.0.1", w->port, &sa);
	assert_int_equal(uv_tcp_connect(&r->creq, &r->tcp,
					(const struct sockaddr *)&sa,
					raw_on_connect),
			 0);
	RUN_UNTIL(w, r->connected || r->connect_status < 0, 10000);
	assert_true(r->connected);
}

struct raw_wreq {
	uv_write_t req;
	struct raw *r;
	uint8_t data[];
};

static inline void raw_on_write(uv_write_t *req, int status)
{
	struct raw_wreq *q = (struct raw_wreq *)req;

	(void)status;
	q->r->writes--;
	free(q);
}

static inline void raw_write(struct raw *r, const void *data, size_t len)
{
	struct raw_wreq *q = malloc(sizeof(*q) + len);
	uv_buf_t b;

	q->r = r;
	memcpy(q->data, data, len);
	b = uv_buf_init((char *)q->data, (unsigned int)len);
	r->writes++;
	assert_int_equal(
		uv_write(&q->req, (uv_stream_t *)&r->tcp, &b, 1, raw_on_write),
		0);
}

static inline void raw_close(struct raw *r)
{
	if (!uv_is_closing((uv_handle_t *)&r->tcp))
		uv_close((uv_handle_t *)&r->tcp, raw_on_closed);
	RUN_UNTIL(r->w, r->closed, 10000);
	free(r->rx);
	r->rx = NULL;
}

static inline void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

#endif
