/*
 * The libuv transport over real TCP on 127.0.0.1: exact frames of every
 * size in plain text and TLS, frames split across reads and coalesced in
 * one, bad length prefixes, closing from inside callbacks, deadlines,
 * backpressure, 200 concurrent connections and allocation failures.
 * gs-test: timeout=300 labels=net
 */
#include "test_transport_fixture.h"

static const size_t k_sizes[] = {
	1,     2,     3,     4,     100,   4095,  4096,   4097,     16379,
	16380, 16381, 16384, 65535, 65536, 65537, 200000, 1u << 20, 1,
};
#define N_SIZES (sizeof(k_sizes) / sizeof(k_sizes[0]))

/* Client sends every size at once (pipelined); the server echoes; the
 * client checks contents and order, then closes orderly. */
static void echo_all_sizes(bool tls)
{
	struct tw *w = tw_new(tls);
	struct tpeer *cp = tw_peer(w);

	tw_listen(w);
	cp->sizes = k_sizes;
	cp->n_sizes = N_SIZES;
	cp->tag = 77;
	cp->close_when_echoed = true;
	tw_dial_host(w, cp, NULL);
	RUN_UNTIL(w, cp->close_calls == 1, 30000);
	assert_int_equal(cp->connect_status, GS_OK);
	assert_false(cp->mismatch);
	assert_int_equal(cp->expect, N_SIZES);
	assert_int_equal(cp->close_status, GS_OK);
	RUN_UNTIL(w, w->n_srv == 1 && w->srv[0].close_calls == 1, 10000);
	assert_int_equal(w->srv[0].close_status, GS_OK);
	assert_int_equal(w->srv[0].frames, N_SIZES);
	assert_false(w->srv[0].mismatch);
	if (tls) {
		assert_string_equal(cp->peer_id, "gridsyncd");
		assert_true(w->srv[0].peer_id_at_first_frame);
		assert_string_equal(w->srv[0].peer_id, "dev-001");
	}
	tw_free(w);
}

static void echo_sizes_plain(void **state)
{
	(void)state;
	echo_all_sizes(false);
}

static void echo_sizes_tls(void **state)
{
	(void)state;
	echo_all_sizes(true);
}

/* Wait until the server connection has read more than before, so that
 * the next chunk is certainly a separate read. */
static void wait_rx(struct tw *w, uint64_t before)
{
	uint64_t rx = 0;

	RUN_UNTIL(w, (gs__conn_counters(w->srv[0].c, &rx, NULL), rx > before),
		  10000);
}

/* Frames cut at every awkward place (inside the length prefix, right
 * after it, inside the body) and many frames in one read. */
static void split_and_coalesced(void **state)
{
	struct tw *w = tw_new(false);
	struct raw r;
	uint8_t buf[8192];
	size_t cuts[] = { 1, 1, 1, 1, 2, 3, 4090, 1 }; /* a 4100-byte body */
	size_t off = 0;
	uint64_t rx = 0;
	size_t n = 0;

	(void)state;
	tw_listen(w);
	raw_connect(w, &r);
	RUN_UNTIL(w, w->n_srv == 1, 10000);
	/* One frame of 4100 bytes in 8 separate reads. */
	put_be32(buf, 4100);
	fill(buf + 4, 4100, 9);
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		gs__conn_counters(w->srv[0].c, &rx, NULL);
		raw_write(&r, buf + off, cuts[i]);
		off += cuts[i];
		wait_rx(w, rx);
		assert_int_equal(w->srv[0].frames, 0);
	}
	gs__conn_counters(w->srv[0].c, &rx, NULL);
	raw_write(&r, buf + off, 4104 - off);
	RUN_UNTIL(w, w->srv[0].frames == 1, 10000);
	assert_int_equal(w->srv[0].bytes, 4100);
	/* 300 small frames in one write, echoed back in order. */
	off = 0;
	for (n = 0; n < 300; n++) {
		size_t len = 1 + n % 20;

		put_be32(buf + off, (uint32_t)len);
		fill(buf + off + 4, len, (uint32_t)n);
		off += 4 + len;
	}
	raw_write(&r, buf, off);
	RUN_UNTIL(w, w->srv[0].frames == 301 && r.rx_len >= 4104 + off, 10000);
	assert_int_equal(r.rx_len, 4104 + off);
	assert_memory_equal(r.rx + 4104, buf, off);
	put_be32(buf, 4100);
	fill(buf + 4, 4100, 9);
	assert_memory_equal(r.rx, buf, 4104); /* the split frame came back */
	raw_close(&r);
	RUN_UNTIL(w, w->srv[0].close_calls == 1, 10000);
	assert_int_equal(w->srv[0].close_status, GS_OK);
	tw_free(w);
}

/* A length above max_frame, or zero, closes with GS_EPROTO before the
 * frame reader sets anything aside for the frame; the peer is told why in
 * an Error{PROTOCOL} frame (the only allocations are for that frame). */
static void bad_length_prefix(uint32_t len, size_t max_frame)
{
	struct tw *w = tw_new(false);
	struct raw r;
	uint8_t hdr[4];
	long count;

	w->sopts.max_frame = max_frame;
	tw_listen(w);
	raw_connect(w, &r);
	RUN_UNTIL(w, w->n_srv == 1, 10000);
	count = w->alloc.count;
	put_be32(hdr, len);
	raw_write(&r, hdr, 4);
	/* The Error, then our FIN; the server closes once it sees ours. */
	RUN_UNTIL(w, r.eof, 10000);
	{
		struct gs_msg *m = NULL;
		size_t flen;

		assert_true(r.rx_len > 4);
		flen = (size_t)r.rx[0] << 24 | (size_t)r.rx[1] << 16 |
		       (size_t)r.rx[2] << 8 | r.rx[3];
		assert_int_equal(r.rx_len, 4 + flen);
		assert_gs_ok(gs__msg_decode(&m, w->ctx, r.rx + 4, flen, NULL));
		assert_int_equal(m->type, GS_MSG_ERROR);
		assert_int_equal(m->u.error.code, GS_WIRE_ERR_PROTOCOL);
		assert_non_null(
			strstr(m->u.error.message,
			       len == 0 ? "zero length" : "above the maximum"));
		gs__msg_free(m);
	}
	raw_close(&r);
	RUN_UNTIL(w, w->srv[0].close_calls == 1, 10000);
	assert_int_equal(w->srv[0].close_status, GS_EPROTO);
	assert_in_range(w->alloc.count - count, 0, 8);
	assert_non_null(strstr(w->srv[0].detail,
			       len == 0 ? "zero length" : "above the maximum"));
	tw_free(w);
}

static void oversized_length_closes(void **state)
{
	(void)state;
	bad_length_prefix((8u << 20) + 1, 0);
	bad_length_prefix(0xffffffffu, 0);
	bad_length_prefix(4097, 4096);
}

static void zero_length_closes(void **state)
{
	(void)state;
	bad_length_prefix(0, 0);
}

static void send_checks_arguments(void **state)
{
	struct tw *w = tw_new(false);
	struct tpeer *cp = tw_peer(w);
	uint8_t big[64];
	struct gs_conn *c = NULL;
	struct gs_conn_cbs cbs = t_cbs(cp);

	(void)state;
	w->copts.max_frame = 32;
	tw_listen(w);
	tw_dial_host(w, cp, NULL);
	memset(big, 1, sizeof(big));
	assert_gs_err(gs__conn_send(cp->c, big, 33), GS_ETOOBIG);
	assert_gs_err(gs__conn_send(cp->c, big, 0), GS_EINVAL);
	assert_gs_ok(gs__conn_send(cp->c, big, 32));
	RUN_UNTIL(w, w->n_srv == 1 && w->srv[0].frames == 1, 10000);
	gs__conn_close(cp->c, GS_OK);
	assert_gs_err(gs__conn_send(cp->c, big, 1), GS_ECANCELED);
	/* Malformed addresses fail at once and never call back. */
	assert_gs_err(gs__conn_connect(&c, w->ctx, &w->loop, "::1:80",
				       &w->copts, &cbs),
		      GS_EINVAL);
	assert_gs_err(gs__conn_connect(&c, w->ctx, &w->loop, "127.0.0.1",
				       &w->copts, &cbs),
		      GS_EINVAL);
	assert_gs_err(
		gs__conn_connect(&c, w->ctx, &w->loop, "h:0", &w->copts, &cbs),
		GS_EINVAL);
	assert_gs_err(gs__conn_connect(&c, w->ctx, &w->loop, "h:65536",
				       &w->copts, &cbs),
		      GS_EINVAL);
	assert_gs_err(gs__conn_connect(&c, w->ctx, &w->loop, "[::1]80",
				       &w->copts, &cbs),
		      GS_EINVAL);
	assert_null(c);
	RUN_UNTIL(w, cp->close_calls == 1, 10000);
	assert_int_equal(cp->close_status, GS_OK);
	tw_free(w);
}

/* Refused connection: on_connect then on_close, both later, never inside
 * gs__conn_connect. */
static void connect_refused(void **state)
{
	struct tw *w = tw_new(false);
	struct tpeer *cp;

	(void)state;
	tw_listen(w);
	gs__listener_close(w->l, t_on_listener_closed, w);
	RUN_UNTIL(w, w->l_closed, 10000);
	cp = tw_dial(w);
	assert_int_equal(cp->connect_calls, 0);
	assert_int_equal(cp->close_calls, 0);
	RUN_UNTIL(w, cp->close_calls == 1, 10000);
	assert_int_equal(cp->connect_calls, 1);
	assert_int_equal(cp->connect_status, GS_EIO);
	assert_int_equal(cp->close_status, GS_EIO);
	assert_non_null(strstr(cp->detail, "connect to"));
	tw_free(w);
}

/* "localhost" goes through getaddrinfo; it may resolve to ::1 first,
 * which is refused, and then 127.0.0.1 is tried. */
static void connect_by_name(void **state)
{
	struct tw *w = tw_new(false);
	struct tpeer *cp = tw_peer(w);
	static const size_t one[] = { 10 };

	(void)state;
	tw_listen(w);
	cp->sizes = one;
	cp->n_sizes = 1;
	cp->close_when_echoed = true;
	tw_dial_host(w, cp, "localhost");
	RUN_UNTIL(w, cp->close_calls == 1, 10000);
	assert_int_equal(cp->connect_status, GS_OK);
	assert_int_equal(cp->close_status, GS_OK);
	assert_false(cp->mismatch);
	tw_free(w);
}

static void ipv6_loopback(void **state)
{
	struct tw *w = tw_new(false);
	struct tpeer *cp = tw_peer(w);
	static const size_t one[] = { 1000 };
	int rc;

	(void)state;
	rc = gs__listen(&w->l, w->ctx, &w->loop, "[::1]:0", &w->sopts,
			t_on_accept, w);
	if (rc != GS_OK) {
		/* No IPv6 on this host: nothing to test. */
		w->l = NULL;
		tw_free(w);
		skip();
	}
	w->port = gs__listener_port(w->l);
	cp->sizes = one;
	cp->n_sizes = 1;
	cp->close_when_echoed = true;
	tw_dial_host(w, cp, "[::1]");
	RUN_UNTIL(w, cp->close_calls == 1, 10000);
	assert_int_equal(cp->close_status, GS_OK);
	assert_false(cp->mismatch);
	assert_int_equal(strncmp(w->srv[0].addr, "[::1]:", 6), 0);
	tw_free(w);
}

/* Closing inside on_frame: no more frames, on_close later (not nested),
 * the peer sees an orderly end. */
static void close_inside_on_frame(bool tls)
{
	struct tw *w = tw_new(tls);
	struct tpeer *cp = tw_peer(w);
	static const size_t three[] = { 10, 20, 30 };

	w->srv_tmpl.echo = false;
	w->srv_tmpl.close_after = 1;
	w->srv_tmpl.close_status_req = GS_OK;
	tw_listen(w);
	cp->sizes = three;
	cp->n_sizes = 3;
	tw_dial_host(w, cp, NULL);
	RUN_UNTIL(w, cp->close_calls == 1, 10000);
	RUN_UNTIL(w, w->srv[0].close_calls == 1, 10000);
	assert_int_equal(w->srv[0].frames, 1);
	assert_int_equal(w->srv[0].close_status, GS_OK);
	assert_false(w->srv[0].close_nested);
	assert_int_equal(cp->close_status, GS_OK);
	tw_free(w);
}

static void close_in_on_frame_plain(void **state)
{
	(void)state;
	close_inside_on_frame(false);
}

static void close_in_on_frame_tls(void **state)
{
	(void)state;
	close_inside_on_frame(true);
}

/* An error close from on_frame is immediate and reports that error. */
static void error_close_in_on_frame(void **state)
{
	struct tw *w = tw_new(true);
	struct tpeer *cp = tw_peer(w);
	static const size_t two[] = { 10, 20 };

	(void)state;
	w->srv_tmpl.close_after = 1;
	w->srv_tmpl.close_status_req = GS_EPROTO;
	tw_listen(w);
	cp->sizes = two;
	cp->n_sizes = 2;
	tw_dial_host(w, cp, NULL);
	RUN_UNTIL(w, w->n_srv == 1 && w->srv[0].close_calls == 1, 10000);
	assert_int_equal(w->srv[0].close_status, GS_EPROTO);
	assert_int_equal(w->srv[0].frames, 1);
	RUN_UNTIL(w, cp->close_calls == 1, 10000);
	assert_true(cp->close_status == GS_OK || cp->close_status == GS_EIO);
	tw_free(w);
}

/* The server resets the connection while the client still writes many
 * MiB: the client ends with GS_EIO and the process survives (no SIGPIPE
 * death; the transport ignores the signal). */
static void peer_reset_while_writing(void **state)
{
	struct tw *w = tw_new(false);
	struct tpeer *cp;

	(void)state;
	w->srv_tmpl.echo = false;
	w->srv_tmpl.close_after = 1;
	w->srv_tmpl.close_status_req = GS_ECANCELED; /* hard close */
	tw_listen(w);
	cp = tw_dial(w);
	RUN_UNTIL(w, cp->connect_calls == 1, 10000);
	for (int i = 0; i < 64; i++)
		assert_gs_ok(send_pattern(cp->c, 1u << 20, (uint32_t)i));
	RUN_UNTIL(w, cp->close_calls == 1, 20000);
	assert_int_equal(cp->close_status, GS_EIO);
	assert_int_equal(w->srv[0].close_status, GS_ECANCELED);
	tw_free(w);
}

/* A peer that accepts and closes at once: its FIN arrives first, then
 * every byte we write draws a reset. Writing into that connection raises
 * SIGPIPE on Linux; the transport must turn it into GS_EIO instead of
 * dying with the signal. */
struct closer {
	uv_tcp_t server;
	uv_tcp_t peer;
	int closed;
};

static void closer_closed(uv_handle_t *h)
{
	struct closer *k = h->data;

	k->closed++;
}

static void closer_accept(uv_stream_t *server, int status)
{
	struct closer *k = server->data;

	assert_int_equal(status, 0);
	uv_tcp_init(server->loop, &k->peer);
	k->peer.data = k;
	assert_int_equal(uv_accept(server, (uv_stream_t *)&k->peer), 0);
	uv_close((uv_handle_t *)&k->peer, closer_closed);
}

static void peer_gone_while_writing(void **state)
{
	struct tw *w = tw_new(false);
	struct closer k;
	struct sockaddr_in sa;
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	struct tpeer *cp;

	(void)state;
	memset(&k, 0, sizeof(k));
	uv_tcp_init(&w->loop, &k.server);
	k.server.data = &k;
	uv_ip4_addr("127.0.0.1", 0, &sa);
	assert_int_equal(uv_tcp_bind(&k.server, (struct sockaddr *)&sa, 0), 0);
	assert_int_equal(uv_listen((uv_stream_t *)&k.server, 8, closer_accept),
			 0);
	uv_tcp_getsockname(&k.server, (struct sockaddr *)&ss, &len);
	w->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	cp = tw_dial(w);
	RUN_UNTIL(w, cp->connect_calls == 1 && k.closed == 1, 10000);
	for (int i = 0; i < 32; i++)
		if (cp->c != NULL)
			(void)send_pattern(cp->c, 1u << 20, (uint32_t)i);
	RUN_UNTIL(w, cp->close_calls == 1, 20000);
	assert_int_equal(cp->close_status, GS_EIO);
	uv_close((uv_handle_t *)&k.server, closer_closed);
	RUN_UNTIL(w, k.closed == 2, 10000);
	tw_free(w);
}

/* Closing inside on_connect: frames sent there are dropped or flushed,
 * and on_close still comes exactly once. */
static void close_inside_on_connect(void **state)
{
	struct tw *w = tw_new(true);
	struct tpeer *cp = tw_peer(w);
	static const size_t one[] = { 5 };

	(void)state;
	tw_listen(w);
	cp->sizes = one;
	cp->n_sizes = 1;
	cp->close_in_connect = true;
	tw_dial_host(w, cp, NULL);
	RUN_UNTIL(w, cp->close_calls == 1, 10000);
	assert_int_equal(cp->connect_status, GS_OK);
	assert_int_equal(cp->close_status, GS_OK);
	assert_false(cp->close_nested);
	RUN_UNTIL(w, w->n_srv == 1 && w->srv[0].close_calls == 1, 10000);
	assert_int_equal(w->srv[0].close_status, GS_OK);
	assert_true(w->srv[0].frames <= 1);
	tw_free(w);
}

/* Closing before the connection is up: on_connect(GS_ECANCELED) and
 * on_close(GS_ECANCELED), later. */
static void close_before_connected(void **state)
{
	struct tw *w = tw_new(true);
	struct tpeer *cp;

	(void)state;
	tw_listen(w);
	cp = tw_dial(w);
	assert_gs_ok(send_pattern(cp->c, 100, 1)); /* waits for TLS */
	assert_int_equal(gs__conn_queued(cp->c), 104);
	gs__conn_close(cp->c, GS_OK);
	assert_int_equal(cp->close_calls, 0);
	RUN_UNTIL(w, cp->close_calls == 1, 10000);
	assert_int_equal(cp->connect_calls, 1);
	assert_int_equal(cp->connect_status, GS_ECANCELED);
	assert_int_equal(cp->close_status, GS_ECANCELED);
	tw_free(w);
}

/* A TLS server and a raw client that never speaks: GS_ETIMEDOUT after
 * the handshake deadline; and a TLS client against a silent server. */
static void handshake_timeout(void **state)
{
	struct tw *w = tw_new(true);
	struct raw r;
	uint64_t t0;

	(void)state;
	w->sopts.handshake_ms = 150;
	tw_listen(w);
	t0 = uv_now(&w->loop);
	raw_connect(w, &r);
	RUN_UNTIL(w, w->n_srv == 1 && w->srv[0].close_calls == 1, 10000);
	assert_int_equal(w->srv[0].close_status, GS_ETIMEDOUT);
	assert_true(w->srv[0].closed_at - t0 >= 150);
	assert_non_null(strstr(w->srv[0].detail, "handshake"));
	RUN_UNTIL(w, r.eof, 10000);
	raw_close(&r);
	tw_free(w);
}

struct silent {
	uv_tcp_t server;
	uv_tcp_t peer;
	int closed;
};

static void silent_closed(uv_handle_t *h)
{
	struct silent *s = h->data;

	s->closed++;
}

static void silent_accept(uv_stream_t *server, int status)
{
	struct silent *s = server->data;

	assert_int_equal(status, 0);
	uv_tcp_init(server->loop, &s->peer);
	s->peer.data = s;
	assert_int_equal(uv_accept(server, (uv_stream_t *)&s->peer), 0);
}

static void handshake_timeout_client(void **state)
{
	struct tw *w = tw_new(true);
	struct silent s;
	struct sockaddr_in sa;
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	struct tpeer *cp;

	(void)state;
	memset(&s, 0, sizeof(s));
	uv_tcp_init(&w->loop, &s.server);
	s.server.data = &s;
	uv_ip4_addr("127.0.0.1", 0, &sa);
	assert_int_equal(uv_tcp_bind(&s.server, (struct sockaddr *)&sa, 0), 0);
	assert_int_equal(uv_listen((uv_stream_t *)&s.server, 8, silent_accept),
			 0);
	uv_tcp_getsockname(&s.server, (struct sockaddr *)&ss, &len);
	w->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	w->copts.handshake_ms = 150;
	cp = tw_dial(w);
	RUN_UNTIL(w, cp->close_calls == 1, 10000);
	assert_int_equal(cp->connect_status, GS_ETIMEDOUT);
	assert_int_equal(cp->close_status, GS_ETIMEDOUT);
	uv_close((uv_handle_t *)&s.server, silent_closed);
	uv_close((uv_handle_t *)&s.peer, silent_closed);
	RUN_UNTIL(w, s.closed == 2, 10000);
	tw_free(w);
}

/* Idle: received bytes keep a connection alive; silence closes it with
 * GS_ETIMEDOUT no earlier than idle_ms after the last byte. */
struct ticker {
	uv_timer_t t;
	struct tpeer *cp;
	int left;
	uint64_t last;
	bool closed;
};

static void tick(uv_timer_t *t)
{
	struct ticker *k = t->data;

	if (k->left-- <= 0 || k->cp->c == NULL) {
		uv_timer_stop(t);
		return;
	}
	assert_gs_ok(send_pattern(k->cp->c, 8, 1));
	k->last = uv_now(t->loop);
}

static void ticker_closed(uv_handle_t *h)
{
	struct ticker *k = h->data;

	k->closed = true;
}

static void idle_timeout(void **state)
{
	struct tw *w = tw_new(false);
	struct ticker k;
	struct tpeer *cp;

	(void)state;
	w->srv_tmpl.echo = false;
	w->sopts.idle_ms = 200;
	w->copts.idle_ms = UINT64_MAX;
	tw_listen(w);
	cp = tw_dial(w);
	RUN_UNTIL(w, cp->connect_calls == 1, 10000);
	/* 6 frames 60 ms apart: 360 ms of traffic, never 200 ms silent. */
	memset(&k, 0, sizeof(k));
	k.cp = cp;
	k.left = 6;
	uv_timer_init(&w->loop, &k.t);
	k.t.data = &k;
	uv_timer_start(&k.t, tick, 0, 60);
	RUN_UNTIL(w, w->n_srv == 1 && w->srv[0].close_calls == 1, 10000);
	assert_int_equal(w->srv[0].close_status, GS_ETIMEDOUT);
	assert_int_equal(w->srv[0].frames, 6);
	assert_true(w->srv[0].closed_at - k.last >= 200);
	assert_non_null(strstr(w->srv[0].detail, "nothing received"));
	RUN_UNTIL(w, cp->close_calls == 1, 10000);
	assert_int_equal(cp->close_status, GS_OK); /* it saw a clean end */
	uv_close((uv_handle_t *)&k.t, ticker_closed);
	RUN_UNTIL(w, k.closed, 1000);
	tw_free(w);
}

/* Backpressure: the server pauses; the client queues 32 MiB and sees
 * gs__conn_queued stay up; after the resume everything arrives and
 * on_drain fires. Pausing inside on_frame holds back the next frames
 * until the resume, which delivers them on a later turn. */
static void backpressure(bool tls)
{
	struct tw *w = tw_new(tls);
	struct tpeer *cp;
	const size_t frame = 1u << 20;
	const size_t n = 32;
	size_t q;

	w->srv_tmpl.echo = false;
	w->srv_pause_on_accept = true;
	tw_listen(w);
	cp = tw_dial(w);
	RUN_UNTIL(w, cp->connect_calls == 1 && w->n_srv == 1, 10000);
	assert_int_equal(cp->connect_status, GS_OK);
	for (size_t i = 0; i < n; i++)
		assert_gs_ok(send_pattern(cp->c, frame, (uint32_t)i));
	q = gs__conn_queued(cp->c);
	assert_int_equal(q, n * (frame + 4));
	RUN_FOR(w, 300);
	assert_int_equal(w->srv[0].frames, 0);
	assert_true(gs__conn_queued(cp->c) > 0);
	assert_int_equal(cp->drains, 0);
	/* Resume: one frame gets through, then on_frame pauses again. */
	w->srv[0].pause_after = 1;
	gs__conn_pause(w->srv[0].c, false);
	assert_int_equal(w->srv[0].frames, 0); /* not inside the call */
	RUN_UNTIL(w, w->srv[0].frames == 1, 10000);
	RUN_FOR(w, 100);
	assert_int_equal(w->srv[0].frames, 1);
	w->srv[0].pause_after = 0;
	gs__conn_pause(w->srv[0].c, false);
	RUN_UNTIL(w, w->srv[0].frames == n && cp->drains > 0, 30000);
	assert_int_equal(gs__conn_queued(cp->c), 0);
	assert_int_equal(w->srv[0].bytes, n * frame);
	/* Many small frames arrive in one read: a pause inside on_frame
	 * must hold back the rest of that read too. */
	w->srv[0].pause_after = n + 1;
	for (size_t i = 0; i < 200; i++)
		assert_gs_ok(send_pattern(cp->c, 10, (uint32_t)i));
	RUN_UNTIL(w, w->srv[0].frames == n + 1, 10000);
	RUN_FOR(w, 100);
	assert_int_equal(w->srv[0].frames, n + 1);
	w->srv[0].pause_after = 0;
	gs__conn_pause(w->srv[0].c, false);
	RUN_UNTIL(w, w->srv[0].frames == n + 200, 10000);
	gs__conn_close(cp->c, GS_OK);
	RUN_UNTIL(w, cp->close_calls == 1 && w->srv[0].close_calls == 1, 10000);
	assert_int_equal(cp->close_status, GS_OK);
	assert_int_equal(w->srv[0].close_status, GS_OK);
	tw_free(w);
}

static void backpressure_plain(void **state)
{
	(void)state;
	backpressure(false);
}

static void backpressure_tls(void **state)
{
	(void)state;
	backpressure(true);
}

static int count_closed(struct tw *w)
{
	int n = 0;

	for (int i = 0; i < w->n_cli; i++)
		n += w->cli[i].close_calls;
	return n;
}

/* 200 connections at once to one listener, each echoing one frame. */
static void many_connections(bool tls)
{
	struct tw *w = tw_new(tls);
	static size_t sizes[200][1];
	uint64_t seed = gs_test_seed("transport many");

	/* 200 handshakes queue up on one loop; under valgrind that takes
	 * longer than the default 10 s deadline. */
	w->sopts.handshake_ms = 60000;
	w->copts.handshake_ms = 60000;
	tw_listen(w);
	for (int i = 0; i < 200; i++) {
		struct tpeer *cp = tw_peer(w);

		sizes[i][0] = 1 + gs_test_rand(&seed) % 8192;
		cp->sizes = sizes[i];
		cp->n_sizes = 1;
		cp->tag = (uint32_t)i * 7919u;
		cp->close_when_echoed = true;
		tw_dial_host(w, cp, NULL);
	}
	RUN_UNTIL(w, count_closed(w) == 200, 120000);
	for (int i = 0; i < 200; i++) {
		assert_int_equal(w->cli[i].connect_status, GS_OK);
		assert_int_equal(w->cli[i].close_status, GS_OK);
		assert_false(w->cli[i].mismatch);
		assert_int_equal(w->cli[i].expect, 1);
	}
	RUN_UNTIL(w, w->n_srv == 200, 10000);
	tw_free(w);
}

static void many_connections_plain(void **state)
{
	(void)state;
	many_connections(false);
}

static void many_connections_tls(void **state)
{
	(void)state;
	many_connections(true);
}

/*
 * Connection setup with the n-th allocation through the ctx failing, for
 * n = 0, 1, ... until a run has no failure: gs__conn_connect returns
 * GS_ENOMEM and calls nothing back, or the connection ends with one
 * on_close; the listener refuses what it cannot allocate; nothing leaks
 * and the loop ends with no handle left (tw_free checks both).
 */
static void setup_survives_allocation_failures(bool tls)
{
	static const size_t one[] = { 300 };
	char hp[64];

	for (long n = 0;; n++) {
		struct tw *w = tw_new(tls);
		struct tpeer *cp;
		struct gs_conn_cbs cbs;
		bool injected;
		int rc;

		tw_listen(w);
		snprintf(hp, sizeof(hp), "127.0.0.1:%d", w->port);
		cp = tw_peer(w);
		cp->sizes = one;
		cp->n_sizes = 1;
		cp->close_when_echoed = true;
		cbs = t_cbs(cp);
		gs_test_fail_alloc_at(&w->alloc, n);
		rc = gs__conn_connect(&cp->c, w->ctx, &w->loop, hp, &w->copts,
				      &cbs);
		if (rc != GS_OK) {
			assert_int_equal(rc, GS_ENOMEM);
			assert_null(cp->c);
		} else {
			RUN_UNTIL(w, cp->close_calls == 1, 20000);
			assert_int_equal(cp->connect_calls, 1);
		}
		injected = w->alloc.count > n;
		gs_test_fail_alloc_at(&w->alloc, -1);
		if (!injected) {
			assert_int_equal(cp->close_status, GS_OK);
			assert_int_equal(cp->expect, 1);
			assert_false(cp->mismatch);
		} else if (rc == GS_OK) {
			assert_true(cp->close_status == GS_OK ||
				    cp->close_status == GS_ENOMEM ||
				    cp->close_status == GS_EIO);
		}
		tw_free(w); /* no leak, no handle left */
		if (!injected) {
			print_message("%s: %ld allocations failed in turn\n",
				      tls ? "tls" : "plain", n);
			break;
		}
		assert_true(n < 200);
	}
}

static void setup_alloc_failures_plain(void **state)
{
	(void)state;
	setup_survives_allocation_failures(false);
}

static void setup_alloc_failures_tls(void **state)
{
	(void)state;
	setup_survives_allocation_failures(true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(echo_sizes_plain),
		cmocka_unit_test(echo_sizes_tls),
		cmocka_unit_test(split_and_coalesced),
		cmocka_unit_test(oversized_length_closes),
		cmocka_unit_test(zero_length_closes),
		cmocka_unit_test(send_checks_arguments),
		cmocka_unit_test(connect_refused),
		cmocka_unit_test(connect_by_name),
		cmocka_unit_test(ipv6_loopback),
		cmocka_unit_test(close_in_on_frame_plain),
		cmocka_unit_test(close_in_on_frame_tls),
		cmocka_unit_test(error_close_in_on_frame),
		cmocka_unit_test(peer_reset_while_writing),
		cmocka_unit_test(peer_gone_while_writing),
		cmocka_unit_test(close_inside_on_connect),
		cmocka_unit_test(close_before_connected),
		cmocka_unit_test(handshake_timeout),
		cmocka_unit_test(handshake_timeout_client),
		cmocka_unit_test(idle_timeout),
		cmocka_unit_test(backpressure_plain),
		cmocka_unit_test(backpressure_tls),
		cmocka_unit_test(many_connections_plain),
		cmocka_unit_test(many_connections_tls),
		cmocka_unit_test(setup_alloc_failures_plain),
		cmocka_unit_test(setup_alloc_failures_tls),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
