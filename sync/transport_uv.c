/*
 * Frames over TCP with libuv: the only file in gridsync that touches
 * sockets. Plain TCP or TLS 1.3 (tls.c, memory BIOs). Loop thread only.
 *
 * Happy path, client: connect (getaddrinfo first for a name) -> TCP up
 * -> TLS handshake -> the server's session ticket confirms it accepted
 * our certificate -> on_connect(GS_OK) -> frames both ways -> close:
 * queued writes flushed, close_notify, FIN, then wait (briefly) for the
 * peer's FIN so that nothing we wrote is destroyed by a reset -> on_close.
 * Server: accept -> accept callback (the application installs its
 * callbacks) -> TLS handshake -> frames; the peer id is known before the
 * first on_frame.
 *
 * Failure modes, each ending in exactly one on_close with a status and
 * one line of detail in the ctx (set again just before on_close, because
 * other connections share the ctx):
 *   - no TCP connection, reset, write error: GS_EIO;
 *   - handshake (TCP + TLS) not done within handshake_ms, nothing received
 *     for idle_ms, or an orderly close that cannot flush within
 *     handshake_ms: GS_ETIMEDOUT;
 *   - any TLS failure (no or bad certificate, other CA, name mismatch,
 *     not TLS at all): GS_EDENIED, after the alert has been sent;
 *   - a frame length of zero or above max_frame: GS_EPROTO, before any
 *     memory is set aside for the frame (gs__frame_reader); the peer is
 *     sent an Error{PROTOCOL} naming the fault before the orderly close;
 *   - out of memory: GS_ENOMEM.
 *
 * Lifetime (libuv's handle model): a connection owns three handles (TCP,
 * a timer for every deadline, an idle handle that resumes delivery after
 * gs__conn_pause) plus, while resolving, a getaddrinfo request. Closing
 * closes them; the connection is freed when the last of them reports
 * closed, always in a libuv close callback, so never while one of its own
 * callbacks is on the stack, and on_close runs exactly once on a later
 * loop turn. After any application callback the code re-checks the state,
 * since the callback may have closed or paused the connection.
 *
 * Reading: one receive buffer per connection (plus a plaintext buffer with
 * TLS). Frames that arrive whole are handed out in place; only frames
 * split across reads are assembled in the frame reader. While paused,
 * reading stops, so unread bytes stay in the kernel and the peer's sends
 * eventually block (backpressure); bytes already received wait in the
 * buffer and are delivered on a later turn after the pause is lifted.
 *
 * Writing: every frame is one uv_write (plain: header and body in one
 * buffer; TLS: the records it became). gs__conn_queued counts frame bytes
 * (header included, TLS overhead excluded) accepted by gs__conn_send and
 * not yet handed to the kernel; frames sent before the handshake is done
 * wait in a list and count too.
 */
#define GS_MODULE "sync.transport"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <gridsync/transport.h>
#include <gridsync/wire.h>

#include "tls.h"

#define RBUF_LEN             (32u << 10)
#define PLAIN_LEN            (16u << 10) /* one TLS record */
#define HOST_MAX             255u
#define ADDR_LEN             64u
#define DETAIL_LEN           256u
#define HANDSHAKE_MS_DEFAULT 10000u
#define IDLE_MS_DEFAULT      60000u
#define BACKLOG              511

enum conn_state {
	ST_RESOLVING,  /* getaddrinfo in flight */
	ST_CONNECTING, /* TCP connect in flight */
	ST_HANDSHAKE,  /* TLS handshake (or waiting for confirmation) */
	ST_OPEN,       /* frames flow */
	ST_CLOSING,    /* orderly close: flushing, then waiting for EOF */
	ST_CLOSED,     /* handles closing; on_close follows */
};

/* One uv_write and its bytes; also a frame waiting for the handshake. */
struct wreq {
	uv_write_t req;
	struct gs_conn *c;
	struct wreq *next; /* pending list only */
	size_t plain;      /* frame bytes this write completes */
	size_t len;
	uint8_t data[];
};

struct gs_conn {
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_idle_t resume;
	uv_connect_t connect_req;
	uv_shutdown_t shutdown_req;
	uv_getaddrinfo_t gai_req;
	struct gs_ctx *ctx;
	uv_loop_t *loop;
	struct gs_conn_cbs cbs;
	void *data;
	struct gs_tls_sess *tls;
	struct gs_frame_reader reader;
	enum conn_state state;
	int status; /* for on_close; the first cause wins */
	int refs;   /* handles not closed + getaddrinfo in flight */
	bool client;
	bool reading;
	bool paused;
	bool yielding; /* paused only until the next loop turn */
	bool eof;
	bool shut_done;
	bool was_open;
	bool connect_reported;
	size_t max_frame;
	uint64_t handshake_ms;
	uint64_t idle_ms;
	uint64_t last_rx; /* uv_now of the last received byte */
	size_t queued;
	struct wreq *pend_head;
	struct wreq **pend_tail;
	const uint8_t *in_ptr; /* received, not yet fed to the reader */
	size_t in_len;
	struct addrinfo *ai_list;
	struct addrinfo *ai_next;
	uint64_t rx_bytes;
	uint64_t tx_bytes;
	uint64_t rx_frames;
	char addr[ADDR_LEN];
	char detail[DETAIL_LEN];
	uint8_t rbuf[RBUF_LEN];
	uint8_t plainbuf[]; /* PLAIN_LEN bytes, TLS only */
};

struct gs_listener {
	uv_tcp_t tcp;
	uv_tcp_t reject; /* takes a connection we cannot afford, to close it */
	struct gs_ctx *ctx;
	uv_loop_t *loop;
	struct gs_conn_opts opts;
	gs_accept_cb cb;
	void *payload;
	void (*close_cb)(void *payload);
	void *close_payload;
	int refs;
	int port;
	bool reject_busy;
	bool stalled; /* libuv holds an accepted socket for us */
	bool closing;
};

static void close_with(struct gs_conn *c, int status, bool flush);
static void pump(struct gs_conn *c);
static void update_reading(struct gs_conn *c);

/* ---- small helpers ------------------------------------------------------- */

/* Keep the first cause of a failure; later ones are consequences. */
__attribute__((format(printf, 2, 3))) static void
set_detail(struct gs_conn *c, const char *fmt, ...)
{
	va_list ap;

	if (c->detail[0] != '\0')
		return;
	va_start(ap, fmt);
	vsnprintf(c->detail, sizeof(c->detail), fmt, ap);
	va_end(ap);
}

static void detail_from_ctx(struct gs_conn *c)
{
	set_detail(c, "%s", gs_ctx_errmsg(c->ctx));
}

/* Translate a libuv error, recording what failed. */
static int from_uv(struct gs_conn *c, int uverr, const char *what)
{
	set_detail(c, "%s %s: %s", what, c->addr, uv_strerror(uverr));
	switch (uverr) {
	case UV_ENOMEM:
		return GS_ENOMEM;
	case UV_ETIMEDOUT:
		return GS_ETIMEDOUT;
	default:
		return GS_EIO;
	}
}

/* "a.b.c.d:port" or "[v6]:port": addresses are what we log about a peer
 * (never names or ids from its messages). */
static void format_addr(char *out, size_t cap, const struct sockaddr *sa)
{
	char ip[64] = "?";
	int port = 0;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		uv_ip4_name(in, ip, sizeof(ip));
		port = ntohs(in->sin_port);
		snprintf(out, cap, "%s:%d", ip, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 =
			(const struct sockaddr_in6 *)sa;

		uv_ip6_name(in6, ip, sizeof(ip));
		port = ntohs(in6->sin6_port);
		snprintf(out, cap, "[%s]:%d", ip, port);
	}
}

/* Replace the dialled text with the address actually connected. */
static void take_peer_addr(struct gs_conn *c)
{
	struct sockaddr_storage ss;
	int len = (int)sizeof(ss);

	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0)
		format_addr(c->addr, sizeof(c->addr),
			    (const struct sockaddr *)&ss);
}

/*
 * Split "host:port" or "[v6]:port". host gets at most HOST_MAX bytes. A
 * bare IPv6 address without brackets is refused (its last colon is not a
 * port separator). Port 0 only where a listener may pick one.
 */
static int split_host_port(struct gs_ctx *ctx,
			   char host[HOST_MAX + 1],
			   int *port_out,
			   const char *in,
			   bool allow_zero)
{
	const char *h = in;
	const char *colon;
	size_t hlen;
	long port = 0;

	if (in[0] == '[') {
		const char *end = strchr(in, ']');

		if (end == NULL || end[1] != ':')
			return gs__err(ctx, GS_EINVAL,
				       "address %s: expected [v6]:port", in);
		h = in + 1;
		hlen = (size_t)(end - h);
		colon = end + 1;
	} else {
		colon = strrchr(in, ':');
		if (colon == NULL)
			return gs__err(ctx, GS_EINVAL,
				       "address %s: expected host:port", in);
		hlen = (size_t)(colon - in);
		if (memchr(in, ':', hlen) != NULL)
			return gs__err(ctx, GS_EINVAL,
				       "address %s: IPv6 needs [brackets]", in);
	}
	if (hlen == 0 || hlen > HOST_MAX)
		return gs__err(ctx, GS_EINVAL, "address %s: bad host", in);
	if (colon[1] == '\0' || strlen(colon + 1) > 5)
		return gs__err(ctx, GS_EINVAL, "address %s: bad port", in);
	for (const char *p = colon + 1; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return gs__err(ctx, GS_EINVAL, "address %s: bad port",
				       in);
		port = port * 10 + (*p - '0');
	}
	if (port > 65535 || (port == 0 && !allow_zero))
		return gs__err(ctx, GS_EINVAL, "address %s: bad port", in);
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	*port_out = (int)port;
	return GS_OK;
}

/* True if host is an IPv4 or IPv6 literal (then no resolver is needed). */
static bool
numeric_addr(struct sockaddr_storage *ss, const char *host, int port)
{
	memset(ss, 0, sizeof(*ss));
	return uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0 ||
	       uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0;
}

/*
 * libuv writes with write(2): when the peer has reset the connection the
 * kernel raises SIGPIPE, whose default action ends the process (the
 * server, or the handheld app). Ignore it, unless the application has
 * installed a disposition of its own; the write then fails with EPIPE and
 * only that connection closes (GS_EIO).
 */
static void ignore_sigpipe(void)
{
	struct sigaction sa;

	if (sigaction(SIGPIPE, NULL, &sa) != 0 || sa.sa_handler != SIG_DFL)
		return;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGPIPE, &sa, NULL);
}

/* ---- creation and teardown ----------------------------------------------- */

static int conn_new(struct gs_conn **out,
		    struct gs_ctx *ctx,
		    uv_loop_t *loop,
		    const struct gs_conn_opts *opts,
		    bool client,
		    const char *peer_name)
{
	struct gs_conn_opts none;
	struct gs_conn *c;
	size_t size;
	int rc;

	if (opts == NULL) {
		memset(&none, 0, sizeof(none));
		opts = &none;
	}
	size = sizeof(*c) + (opts->tls != NULL ? PLAIN_LEN : 0);
	c = gs__malloc(ctx, size);
	if (c == NULL)
		return gs__err(ctx, GS_ENOMEM,
			       "transport: no memory for a "
			       "connection");
	memset(c, 0, sizeof(*c));
	c->ctx = ctx;
	c->loop = loop;
	c->client = client;
	c->status = GS_OK;
	c->pend_tail = &c->pend_head;
	c->max_frame =
		opts->max_frame != 0 ? opts->max_frame : GS_FRAME_MAX_DEFAULT;
	if (c->max_frame > GS_FRAME_MAX_CEILING)
		c->max_frame = GS_FRAME_MAX_CEILING;
	c->handshake_ms = opts->handshake_ms != 0 ? opts->handshake_ms
						  : HANDSHAKE_MS_DEFAULT;
	c->idle_ms = opts->idle_ms != 0 ? opts->idle_ms : IDLE_MS_DEFAULT;
	gs__frame_reader_init(&c->reader, ctx, (uint32_t)c->max_frame);
	if (opts->tls != NULL) {
		rc = gs__tls_sess_new(&c->tls, opts->tls, peer_name);
		if (rc != GS_OK) {
			gs__free(ctx, c);
			return rc;
		}
	}
	*out = c;
	return GS_OK;
}

static void on_handle_closed(uv_handle_t *h);

/* Past this point the connection lives until its handles close. These
 * inits cannot fail on a valid loop (no socket is created yet). */
static void conn_init_handles(struct gs_conn *c)
{
	GS_ASSERT(uv_tcp_init(c->loop, &c->tcp) == 0);
	GS_ASSERT(uv_timer_init(c->loop, &c->timer) == 0);
	GS_ASSERT(uv_idle_init(c->loop, &c->resume) == 0);
	c->tcp.data = c;
	c->timer.data = c;
	c->resume.data = c;
	c->connect_req.data = c;
	c->shutdown_req.data = c;
	c->gai_req.data = c;
	c->refs = 3;
}

/* Frames waiting for the handshake are dropped when it never comes. */
static void drop_pending(struct gs_conn *c)
{
	struct wreq *w;

	while ((w = c->pend_head) != NULL) {
		c->pend_head = w->next;
		c->queued -= w->plain;
		gs__free(c->ctx, w);
	}
	c->pend_tail = &c->pend_head;
}

/* The last handle is closed: report and free. */
static void finish(struct gs_conn *c)
{
	struct gs_ctx *ctx = c->ctx;
	int status = c->status;

	if (!c->was_open && status == GS_OK)
		status = GS_ECANCELED; /* closed before it was ever up */
	if (status != GS_OK && c->detail[0] == '\0')
		set_detail(c, "connection %s closed: %s", c->addr,
			   gs_strerror(status));
	GS_DEBUG(ctx,
		 "closed %s: %s, %llu bytes in (%llu frames), %llu bytes out",
		 c->addr, gs_errname(status), (unsigned long long)c->rx_bytes,
		 (unsigned long long)c->rx_frames,
		 (unsigned long long)c->tx_bytes);
	if (c->client && !c->connect_reported) {
		c->connect_reported = true;
		if (status != GS_OK)
			gs__err(ctx, status, "%s", c->detail);
		if (c->cbs.on_connect != NULL)
			c->cbs.on_connect(c, status, c->cbs.payload);
	}
	if (status != GS_OK)
		gs__err(ctx, status, "%s", c->detail);
	if (c->cbs.on_close != NULL)
		c->cbs.on_close(c, status, c->cbs.payload);
	drop_pending(c);
	if (c->ai_list != NULL)
		uv_freeaddrinfo(c->ai_list);
	gs__tls_sess_free(c->tls);
	gs__frame_reader_fini(&c->reader);
	gs__free(ctx, c);
}

/* Free once nothing of libuv refers to c any more. */
static void maybe_finish(struct gs_conn *c)
{
	if (c->refs == 0)
		finish(c);
}

/* One handle fewer; the last one frees the connection. */
static void on_handle_closed(uv_handle_t *h)
{
	struct gs_conn *c = h->data;

	c->refs--;
	maybe_finish(c);
}

/* uv_close once per handle (a retry may already be closing the TCP). */
static void close_handle(uv_handle_t *h)
{
	if (!uv_is_closing(h))
		uv_close(h, on_handle_closed);
}

/* Close at once: pending writes are cancelled (their callbacks free
 * them), no more callbacks but on_connect/on_close from finish(). */
static void close_now(struct gs_conn *c)
{
	c->state = ST_CLOSED;
	if (c->reading)
		uv_read_stop((uv_stream_t *)&c->tcp);
	c->reading = false;
	uv_timer_stop(&c->timer);
	uv_idle_stop(&c->resume);
	if (c->refs > 3)
		(void)uv_cancel((uv_req_t *)&c->gai_req); /* best effort */
	close_handle((uv_handle_t *)&c->tcp);
	close_handle((uv_handle_t *)&c->timer);
	close_handle((uv_handle_t *)&c->resume);
}

/* ---- writing ---------------------------------------------------------------
 */

static struct wreq *wreq_new(struct gs_conn *c, size_t len)
{
	struct wreq *w = gs__malloc(c->ctx, sizeof(*w) + len);

	if (w == NULL) {
		set_detail(c, "transport: no memory for %zu bytes to send",
			   len);
		return NULL;
	}
	w->c = c;
	w->next = NULL;
	w->plain = 0;
	w->len = 0;
	return w;
}

/* Bytes left for the kernel (or were cancelled by a close). Frees the
 * request first, then reports: a failure closes the connection, the last
 * queued frame byte fires on_drain. */
static void on_write(uv_write_t *req, int status)
{
	struct wreq *w = (struct wreq *)req;
	struct gs_conn *c = w->c;
	size_t plain = w->plain;
	int rc;

	c->queued -= plain;
	gs__free(c->ctx, w);
	if (c->state == ST_CLOSED)
		return;
	if (status < 0) {
		rc = from_uv(c, status, "write to");
		close_with(c, rc, false);
		return;
	}
	if (c->state == ST_OPEN && plain > 0 && c->queued == 0 &&
	    c->cbs.on_drain != NULL)
		c->cbs.on_drain(c, c->cbs.payload);
}

/* Hand w to libuv; w->plain must already be counted in queued. On
 * failure w is freed and uncounted. */
static int submit(struct gs_conn *c, struct wreq *w)
{
	uv_buf_t b = uv_buf_init((char *)w->data, (unsigned int)w->len);
	int rc;

	rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
	if (rc < 0) {
		c->queued -= w->plain;
		gs__free(c->ctx, w);
		return from_uv(c, rc, "write to");
	}
	c->tx_bytes += w->len;
	return GS_OK;
}

/* Send whatever ciphertext OpenSSL produced (handshake messages, alerts,
 * records), completing plain frame bytes. */
static int flush_tls(struct gs_conn *c, size_t plain)
{
	size_t n = gs__tls_sess_pending(c->tls);
	struct wreq *w;

	if (n == 0) {
		c->queued -= plain; /* nothing was produced: nothing waits */
		return GS_OK;
	}
	w = wreq_new(c, n);
	if (w == NULL) {
		c->queued -= plain;
		return GS_ENOMEM;
	}
	w->len = gs__tls_sess_take(c->tls, w->data, n);
	w->plain = plain;
	return submit(c, w);
}

/* Encrypt one frame. The header rides in the first record with the start
 * of the body, so a small frame costs one record, not two. */
static int tls_write_frame(struct gs_conn *c,
			   const uint8_t hdr[GS_FRAME_HDR_LEN],
			   const uint8_t *data,
			   size_t len)
{
	uint8_t first[PLAIN_LEN];
	size_t head = len < PLAIN_LEN - GS_FRAME_HDR_LEN
			      ? len
			      : PLAIN_LEN - GS_FRAME_HDR_LEN;
	int rc;

	memcpy(first, hdr, GS_FRAME_HDR_LEN);
	memcpy(first + GS_FRAME_HDR_LEN, data, head);
	rc = gs__tls_sess_write(c->tls, first, GS_FRAME_HDR_LEN + head);
	if (rc == GS_OK)
		rc = gs__tls_sess_write(c->tls, data + head, len - head);
	if (rc != GS_OK)
		detail_from_ctx(c);
	return rc;
}

/* The handshake is done: frames queued before it go out in order. */
static int flush_pending(struct gs_conn *c)
{
	struct wreq *w;
	int rc = GS_OK;

	while (rc == GS_OK && (w = c->pend_head) != NULL) {
		c->pend_head = w->next;
		if (c->pend_head == NULL)
			c->pend_tail = &c->pend_head;
		w->next = NULL;
		if (c->tls == NULL) {
			rc = submit(c, w);
			continue;
		}
		rc = gs__tls_sess_write(c->tls, w->data, w->len);
		if (rc != GS_OK)
			detail_from_ctx(c);
		if (rc == GS_OK)
			rc = flush_tls(c, w->plain);
		else
			c->queued -= w->plain;
		gs__free(c->ctx, w);
	}
	return rc;
}

/*
 * Three ways out for a frame: into the pending list (handshake not done),
 * straight into one uv_write (plain), or through OpenSSL into one
 * uv_write of ciphertext (TLS). Allocation comes first in each, so that
 * GS_ENOMEM leaves the connection exactly as it was.
 */
int gs__conn_send(struct gs_conn *c, const uint8_t *data, size_t len)
{
	uint8_t hdr[GS_FRAME_HDR_LEN];
	size_t total = len + GS_FRAME_HDR_LEN;
	size_t cap;
	struct wreq *w;
	int rc;

	GS_CHECK_ARG(c != NULL && (data != NULL || len == 0));
	if (c->state >= ST_CLOSING)
		return GS_ECANCELED;
	if (len == 0)
		return gs__err(c->ctx, GS_EINVAL, "transport: empty frame");
	if (len > c->max_frame)
		return gs__err(c->ctx, GS_ETOOBIG,
			       "transport: frame of %zu bytes above the "
			       "maximum %zu",
			       len, c->max_frame);
	hdr[0] = (uint8_t)(len >> 24);
	hdr[1] = (uint8_t)(len >> 16);
	hdr[2] = (uint8_t)(len >> 8);
	hdr[3] = (uint8_t)len;
	if (c->state != ST_OPEN || c->tls == NULL) {
		w = wreq_new(c, total);
		if (w == NULL)
			return gs__err(c->ctx, GS_ENOMEM, "%s", c->detail);
		memcpy(w->data, hdr, GS_FRAME_HDR_LEN);
		memcpy(w->data + GS_FRAME_HDR_LEN, data, len);
		w->len = total;
		w->plain = total;
		c->queued += total;
		if (c->state != ST_OPEN) {
			*c->pend_tail = w;
			c->pend_tail = &w->next;
			return GS_OK;
		}
		rc = submit(c, w);
		goto out;
	}
	/* TLS: set the ciphertext room aside first, so that a failed
	 * allocation leaves the session untouched. */
	cap = gs__tls_sess_pending(c->tls) + gs__tls_sess_overhead(total);
	w = wreq_new(c, cap);
	if (w == NULL)
		return gs__err(c->ctx, GS_ENOMEM, "%s", c->detail);
	rc = tls_write_frame(c, hdr, data, len);
	if (rc != GS_OK) {
		gs__free(c->ctx, w);
		goto out;
	}
	w->len = gs__tls_sess_take(c->tls, w->data, cap);
	w->plain = total;
	c->queued += total;
	rc = submit(c, w);
	if (rc == GS_OK && gs__tls_sess_pending(c->tls) > 0)
		rc = flush_tls(c, 0); /* only if the bound was wrong */
out:
	if (rc != GS_OK) {
		close_with(c, rc, false);
		return gs__err(c->ctx, rc, "%s", c->detail);
	}
	return GS_OK;
}

size_t gs__conn_queued(const struct gs_conn *c)
{
	return c != NULL ? c->queued : 0;
}

void gs__conn_counters(const struct gs_conn *c,
		       uint64_t *rx_bytes,
		       uint64_t *tx_bytes)
{
	if (rx_bytes != NULL)
		*rx_bytes = c != NULL ? c->rx_bytes : 0;
	if (tx_bytes != NULL)
		*tx_bytes = c != NULL ? c->tx_bytes : 0;
}

/* ---- closing ----------------------------------------------------------------
 */

static void on_timer(uv_timer_t *t);

/* The connection's one timer, for whichever deadline applies now. */
static void arm(struct gs_conn *c, uint64_t ms)
{
	if (ms == UINT64_MAX)
		uv_timer_stop(&c->timer);
	else
		uv_timer_start(&c->timer, on_timer, ms, 0);
}

/* Everything queued has left and our FIN is sent. Close once the peer's
 * FIN has been seen too (or the shutdown failed); else keep lingering. */
static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct gs_conn *c = req->data;

	if (c->state == ST_CLOSED)
		return;
	c->shut_done = true;
	if (status < 0)
		GS_DEBUG(c->ctx, "shutdown %s: %s", c->addr,
			 uv_strerror(status));
	if (c->eof || status < 0)
		close_now(c);
}

/*
 * Close with status. flush: deliver what is queued first (and a TLS alert
 * or close_notify), send FIN, then wait for the peer's FIN or the close
 * deadline. Without flush, or before a TCP connection exists, close at
 * once. A second call can only make a flushing close immediate.
 */
static void close_with(struct gs_conn *c, int status, bool flush)
{
	bool was_open = c->state == ST_OPEN;
	int rc;

	if (c->state == ST_CLOSED)
		return;
	if (c->state == ST_CLOSING) {
		if (flush)
			return;
		if (c->status == GS_OK)
			c->status = status;
		close_now(c);
		return;
	}
	c->status = status;
	if (!flush || c->state < ST_HANDSHAKE) {
		close_now(c);
		return;
	}
	c->state = ST_CLOSING;
	uv_idle_stop(&c->resume);
	drop_pending(c);
	if (c->tls != NULL) {
		if (was_open)
			gs__tls_sess_shutdown(c->tls);
		rc = flush_tls(c, 0);
		if (rc != GS_OK) {
			c->status = c->status == GS_OK ? rc : c->status;
			close_now(c);
			return;
		}
	}
	rc = uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown);
	if (rc < 0) {
		close_now(c);
		return;
	}
	arm(c, c->handshake_ms);
	update_reading(c);
}

/* GS_OK asks for an orderly close, an error for an immediate one. */
void gs__conn_close(struct gs_conn *c, int status)
{
	if (c == NULL)
		return;
	GS_ASSERT(status <= 0);
	close_with(c, status, status == GS_OK);
}

/* ---- reading
 * ------------------------------------------------------------------ */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct gs_conn *c = h->data;

	(void)hint;
	/* One read at a time per stream, and none while rbuf holds unread
	 * bytes (reading is stopped then), so one buffer suffices. */
	*buf = uv_buf_init((char *)c->rbuf, RBUF_LEN);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* Read while there is somewhere to put the bytes and a reason to. */
static void update_reading(struct gs_conn *c)
{
	bool want;
	int rc;

	switch (c->state) {
	case ST_HANDSHAKE:
		want = true;
		break;
	case ST_OPEN:
		want = !c->paused && c->in_len == 0;
		break;
	case ST_CLOSING:
		want = !c->eof;
		break;
	default:
		want = false;
		break;
	}
	if (want == c->reading)
		return;
	if (!want) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = false;
		return;
	}
	rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
	if (rc < 0) {
		close_with(c, from_uv(c, rc, "read from"), false);
		return;
	}
	c->reading = true;
}

/* A frame the reader refused (zero or oversized length) ends the stream:
 * there is no resynchronising inside it. The peer still hears why, in an
 * Error{PROTOCOL} frame, before the orderly close. */
static int send_proto_error(struct gs_conn *c)
{
	struct gs_buf b;
	struct gs_msg m;
	int rc;

	memset(&m, 0, sizeof(m));
	m.type = GS_MSG_ERROR;
	m.u.error.code = GS_WIRE_ERR_PROTOCOL;
	m.u.error.message = c->detail;
	gs__buf_init(&b, c->ctx, GS_FRAME_MAX_FLOOR);
	rc = gs__msg_encode(&b, &m, NULL);
	if (rc == GS_OK)
		rc = gs__conn_send(c, b.data + GS_FRAME_HDR_LEN,
				   b.len - GS_FRAME_HDR_LEN);
	gs__buf_fini(&b);
	return rc;
}

/* Deliver frames from what was received, as long as the connection is
 * open and not paused. */
static void pump(struct gs_conn *c)
{
	struct gs_frame f;
	size_t used;
	size_t n;
	int rc;

	while (c->state == ST_OPEN && !c->paused) {
		if (c->in_len > 0) {
			rc = gs__frame_reader_feed(&f, &used, &c->reader,
						   c->in_ptr, c->in_len);
			c->in_ptr += used;
			c->in_len -= used;
			if (rc == GS_OK) {
				c->rx_frames++;
				if (c->cbs.on_frame != NULL)
					c->cbs.on_frame(c, f.data, f.len,
							c->cbs.payload);
			} else if (rc != GS_EAGAIN) {
				detail_from_ctx(c);
				GS_INFO(c->ctx, "%s: %s", c->addr, c->detail);
				c->in_len = 0;
				if (rc == GS_EPROTO &&
				    send_proto_error(c) == GS_OK)
					close_with(c, rc, true);
				else
					close_with(c, rc, false);
				return;
			}
			continue;
		}
		if (c->tls == NULL)
			break;
		rc = gs__tls_sess_read(c->tls, c->plainbuf, PLAIN_LEN, &n);
		if (rc == GS_EAGAIN)
			break;
		if (rc != GS_OK) {
			detail_from_ctx(c);
			GS_WARN(c->ctx, "%s: %s", c->addr, c->detail);
			close_with(c, rc, rc == GS_EDENIED);
			return;
		}
		if (n == 0) { /* close_notify */
			close_with(c, GS_OK, true);
			return;
		}
		c->in_ptr = c->plainbuf;
		c->in_len = n;
	}
	if (c->tls != NULL && c->state == ST_OPEN &&
	    gs__tls_sess_pending(c->tls) > 0) {
		rc = flush_tls(c, 0); /* e.g. a KeyUpdate answer */
		if (rc != GS_OK) {
			close_with(c, rc, false);
			return;
		}
	}
	update_reading(c);
}

/* Arm the idle deadline counted from the last received byte, so that
 * reads only stamp a time and never touch the timer heap. */
static void arm_idle(struct gs_conn *c)
{
	uint64_t elapsed = uv_now(c->loop) - c->last_rx;

	if (c->idle_ms == UINT64_MAX)
		uv_timer_stop(&c->timer);
	else
		uv_timer_start(&c->timer, on_timer,
			       elapsed >= c->idle_ms ? 0 : c->idle_ms - elapsed,
			       0);
}

/* TCP (and TLS) are up: report, send what waited, deliver what came. */
static void conn_open(struct gs_conn *c)
{
	int rc;

	c->state = ST_OPEN;
	c->was_open = true;
	c->last_rx = uv_now(c->loop);
	arm_idle(c);
	GS_DEBUG(c->ctx, "up %s%s", c->addr, c->tls != NULL ? " (tls)" : "");
	if (c->client) {
		c->connect_reported = true;
		if (c->cbs.on_connect != NULL)
			c->cbs.on_connect(c, GS_OK, c->cbs.payload);
		if (c->state != ST_OPEN)
			return;
	}
	rc = flush_pending(c);
	if (rc != GS_OK) {
		close_with(c, rc, false);
		return;
	}
	pump(c);
}

/* A TLS failure: log it (address and reason only) and close after the
 * alert has gone out. */
static void tls_refused(struct gs_conn *c, int rc)
{
	detail_from_ctx(c);
	GS_WARN(c->ctx, "%s: %s", c->addr, c->detail);
	close_with(c, rc, rc == GS_EDENIED);
}

/* Drive the handshake with what has arrived; see gs__tls_sess_confirmed
 * for why a client waits for one more record. */
static void tls_progress(struct gs_conn *c)
{
	size_t n = 0;
	int rc;
	int frc;

	rc = gs__tls_sess_handshake(c->tls);
	frc = flush_tls(c, 0);
	if (frc != GS_OK) {
		close_with(c, frc, false);
		return;
	}
	if (rc == GS_EAGAIN)
		return;
	if (rc != GS_OK) {
		tls_refused(c, rc);
		return;
	}
	if (!gs__tls_sess_confirmed(c->tls)) {
		rc = gs__tls_sess_read(c->tls, c->plainbuf, PLAIN_LEN, &n);
		frc = flush_tls(c, 0);
		if (frc != GS_OK) {
			close_with(c, frc, false);
			return;
		}
		if (rc == GS_OK && n == 0) {
			set_detail(c,
				   "tls: %s closed the connection during "
				   "the handshake",
				   c->addr);
			close_with(c, GS_EIO, true);
			return;
		}
		if (rc != GS_OK && rc != GS_EAGAIN) {
			tls_refused(c, rc);
			return;
		}
		if (rc == GS_OK) {
			c->in_ptr = c->plainbuf;
			c->in_len = n;
		}
		if (!gs__tls_sess_confirmed(c->tls))
			return;
	}
	conn_open(c);
}

/* The peer ended or broke the stream. A clean end between frames is an
 * orderly close; inside a frame or a handshake it is an error. */
static void peer_gone(struct gs_conn *c, int err)
{
	if (err != UV_EOF) {
		close_with(c, from_uv(c, err, "read from"), false);
		return;
	}
	c->eof = true;
	if (c->state == ST_HANDSHAKE) {
		set_detail(c, "%s closed the connection during the handshake",
			   c->addr);
		close_with(c, GS_EIO, false);
	} else if (c->reader.hdr_len != 0) {
		set_detail(c, "%s closed the connection inside a frame",
			   c->addr);
		close_with(c, GS_EIO, false);
	} else {
		close_with(c, GS_OK, true);
	}
}

/* Every received byte stamps last_rx (the idle deadline); plain bytes go
 * to the frame reader, TLS bytes through OpenSSL first. */
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct gs_conn *c = s->data;
	int rc;

	(void)buf;
	if (nread == 0)
		return;
	if (c->state == ST_CLOSING) {
		/* Lingering after our FIN: discard until the peer's. */
		if (nread < 0) {
			c->eof = true;
			update_reading(c);
			if (c->shut_done)
				close_now(c);
		}
		return;
	}
	if (c->state != ST_OPEN && c->state != ST_HANDSHAKE)
		return;
	if (nread < 0) {
		peer_gone(c, (int)nread);
		return;
	}
	c->rx_bytes += (uint64_t)nread;
	c->last_rx = uv_now(c->loop);
	if (c->tls == NULL) {
		c->in_ptr = c->rbuf;
		c->in_len = (size_t)nread;
		pump(c);
		return;
	}
	rc = gs__tls_sess_feed(c->tls, c->rbuf, (size_t)nread);
	if (rc != GS_OK) {
		detail_from_ctx(c);
		close_with(c, rc, false);
		return;
	}
	if (c->state == ST_HANDSHAKE)
		tls_progress(c);
	else
		pump(c);
}

/* The turn after gs__conn_pause(c, false): deliver what waited, then
 * (in pump) start reading again. */
static void on_resume(uv_idle_t *h)
{
	struct gs_conn *c = h->data;

	uv_idle_stop(h);
	if (c->yielding) {
		c->yielding = false;
		c->paused = false;
	}
	if (c->state == ST_OPEN)
		pump(c);
}

void gs__conn_yield(struct gs_conn *c)
{
	if (c == NULL || c->state != ST_OPEN || c->paused)
		return;
	c->paused = true;
	c->yielding = true;
	uv_idle_start(&c->resume, on_resume);
}

void gs__conn_pause(struct gs_conn *c, bool paused)
{
	if (c == NULL || c->state >= ST_CLOSING)
		return;
	c->yielding = false;
	if (c->paused == paused)
		return;
	c->paused = paused;
	if (!paused && c->state == ST_OPEN) {
		/* Bytes may be waiting; deliver them on a later turn, never
		 * from inside this call. */
		uv_idle_start(&c->resume, on_resume);
		return;
	}
	update_reading(c);
}

/* ---- deadlines --------------------------------------------------------------
 */

static void on_timer(uv_timer_t *t)
{
	struct gs_conn *c = t->data;

	switch (c->state) {
	case ST_RESOLVING:
	case ST_CONNECTING:
	case ST_HANDSHAKE:
		set_detail(c, "handshake with %s not done within %llu ms",
			   c->addr, (unsigned long long)c->handshake_ms);
		GS_INFO(c->ctx, "%s", c->detail);
		close_with(c, GS_ETIMEDOUT, false);
		break;
	case ST_OPEN:
		if (uv_now(c->loop) - c->last_rx < c->idle_ms) {
			arm_idle(c); /* bytes came since: not idle yet */
			break;
		}
		set_detail(c, "nothing received from %s for %llu ms", c->addr,
			   (unsigned long long)c->idle_ms);
		GS_INFO(c->ctx, "%s", c->detail);
		close_with(c, GS_ETIMEDOUT, false);
		break;
	case ST_CLOSING:
		/* Queued bytes never left: the close was not orderly. Once
		 * they did, only the wait for the peer's FIN is cut short. */
		if (!c->shut_done) {
			set_detail(c,
				   "could not flush %zu bytes to %s within "
				   "%llu ms",
				   c->queued, c->addr,
				   (unsigned long long)c->handshake_ms);
			if (c->status == GS_OK)
				c->status = GS_ETIMEDOUT;
		}
		close_now(c);
		break;
	default:
		break;
	}
}

void gs__conn_set_idle(struct gs_conn *c, uint64_t idle_ms)
{
	if (c == NULL)
		return;
	c->idle_ms = idle_ms != 0 ? idle_ms : IDLE_MS_DEFAULT;
	if (c->state == ST_OPEN)
		arm_idle(c);
}

/* ---- connecting
 * --------------------------------------------------------------- */

static void connect_next(struct gs_conn *c);
static void on_retry_closed(uv_handle_t *h);

/* TCP is up (or failed: then the next resolved address, if any). */
static void on_connected(uv_connect_t *req, int status)
{
	struct gs_conn *c = req->data;

	if (c->state == ST_CLOSED)
		return; /* cancelled by close */
	if (status < 0) {
		if (c->ai_next != NULL) {
			GS_DEBUG(c->ctx,
				 "connect %s: %s, trying the next "
				 "address",
				 c->addr, uv_strerror(status));
			/* A socket whose connect failed is not reused:
			 * close it and connect_next from the close cb. */
			uv_close((uv_handle_t *)&c->tcp, on_retry_closed);
			return;
		}
		close_with(c, from_uv(c, status, "connect to"), false);
		return;
	}
	take_peer_addr(c);
	uv_tcp_nodelay(&c->tcp, 1);
	if (c->tls == NULL) {
		conn_open(c);
		return;
	}
	c->state = ST_HANDSHAKE;
	update_reading(c);
	if (c->state == ST_HANDSHAKE)
		tls_progress(c); /* ClientHello */
}

/* The socket of a failed attempt is closed: a new one for the next
 * address, unless the connection was closed meanwhile. */
static void on_retry_closed(uv_handle_t *h)
{
	struct gs_conn *c = h->data;

	if (c->state == ST_CLOSED) {
		c->refs--;
		maybe_finish(c);
		return;
	}
	GS_ASSERT(uv_tcp_init(c->loop, &c->tcp) == 0);
	c->tcp.data = c;
	connect_next(c);
}

/* Try the next TCP or TCP6 address from getaddrinfo. */
static void connect_next(struct gs_conn *c)
{
	struct addrinfo *ai = c->ai_next;
	int rc;

	while (ai != NULL && ai->ai_family != AF_INET &&
	       ai->ai_family != AF_INET6)
		ai = ai->ai_next;
	if (ai == NULL) {
		set_detail(c, "connect to %s: no usable address", c->addr);
		close_with(c, GS_EIO, false);
		return;
	}
	c->ai_next = ai->ai_next;
	rc = uv_tcp_connect(&c->connect_req, &c->tcp, ai->ai_addr,
			    on_connected);
	if (rc < 0)
		close_with(c, from_uv(c, rc, "connect to"), false);
}

/* getaddrinfo ran on the threadpool; it holds a reference on c. */
static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct gs_conn *c = req->data;

	c->refs--;
	if (c->state == ST_CLOSED) {
		if (res != NULL)
			uv_freeaddrinfo(res);
		maybe_finish(c);
		return;
	}
	if (status < 0) {
		close_with(c, from_uv(c, status, "resolve"), false);
		return;
	}
	c->ai_list = res;
	c->ai_next = res;
	c->state = ST_CONNECTING;
	connect_next(c);
}

int gs__conn_connect(struct gs_conn **out,
		     struct gs_ctx *ctx,
		     uv_loop_t *loop,
		     const char *host_port,
		     const struct gs_conn_opts *opts,
		     const struct gs_conn_cbs *cbs)
{
	struct sockaddr_storage ss;
	struct addrinfo hints;
	char host[HOST_MAX + 1];
	char port_text[8];
	struct gs_conn *c = NULL;
	const char *peer_name;
	bool numeric;
	int port;
	int rc;

	GS_CHECK_ARG(out != NULL && ctx != NULL && loop != NULL);
	GS_CHECK_ARG(host_port != NULL && cbs != NULL);
	*out = NULL;
	rc = split_host_port(ctx, host, &port, host_port, false);
	if (rc != GS_OK)
		return rc;
	ignore_sigpipe();
	numeric = numeric_addr(&ss, host, port);
	peer_name = opts != NULL && opts->server_name != NULL
			    ? opts->server_name
			    : host;
	rc = conn_new(&c, ctx, loop, opts, true, peer_name);
	if (rc != GS_OK)
		return rc;
	c->cbs = *cbs;
	snprintf(c->addr, sizeof(c->addr), "%s", host_port);
	conn_init_handles(c);
	/* One deadline covers resolving, connecting and the handshake. */
	arm(c, c->handshake_ms);
	/* From here on failures arrive through on_connect and on_close. */
	if (numeric) {
		c->state = ST_CONNECTING;
		rc = uv_tcp_connect(&c->connect_req, &c->tcp,
				    (const struct sockaddr *)&ss, on_connected);
		if (rc < 0)
			close_with(c, from_uv(c, rc, "connect to"), false);
	} else {
		c->state = ST_RESOLVING;
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		snprintf(port_text, sizeof(port_text), "%d", port);
		rc = uv_getaddrinfo(loop, &c->gai_req, on_resolved, host,
				    port_text, &hints);
		if (rc < 0)
			close_with(c, from_uv(c, rc, "resolve"), false);
		else
			c->refs++;
	}
	*out = c;
	return GS_OK;
}

/* ---- accessors --------------------------------------------------------------
 */

const char *gs__conn_peer_id(const struct gs_conn *c)
{
	return c != NULL && c->tls != NULL ? gs__tls_sess_peer_id(c->tls)
					   : NULL;
}

const char *gs__conn_peer_serial(const struct gs_conn *c)
{
	return c != NULL && c->tls != NULL ? gs__tls_sess_peer_serial(c->tls)
					   : NULL;
}

const char *gs__conn_peer_addr(const struct gs_conn *c)
{
	return c != NULL ? c->addr : "";
}

void gs__conn_set_data(struct gs_conn *c, void *data)
{
	if (c != NULL)
		c->data = data;
}

void *gs__conn_data(const struct gs_conn *c)
{
	return c != NULL ? c->data : NULL;
}

void gs__conn_set_cbs(struct gs_conn *c, const struct gs_conn_cbs *cbs)
{
	if (c != NULL && cbs != NULL)
		c->cbs = *cbs;
}

/* ---- listener ------------------------------------------------------------ */

static void on_connection(uv_stream_t *server, int status);

static void on_listener_closed(uv_handle_t *h)
{
	struct gs_listener *l = h->data;

	if (h == (uv_handle_t *)&l->reject)
		l->reject_busy = false;
	if (--l->refs > 0) {
		/* The reject handle is free again: take the connection libuv
		 * has been holding since it was busy. */
		if (!l->closing && l->stalled) {
			l->stalled = false;
			on_connection((uv_stream_t *)&l->tcp, 0);
		}
		return;
	}
	if (l->close_cb != NULL)
		l->close_cb(l->close_payload);
	gs__free(l->ctx, l);
}

/*
 * No memory for a connection: accept it into the spare handle and close
 * it, so that the peer sees a closed connection rather than a hang. If the
 * spare is still closing, leave the socket with libuv, which stops
 * accepting until we take it (from on_listener_closed).
 */
static void reject(struct gs_listener *l)
{
	if (l->reject_busy) {
		l->stalled = true;
		return;
	}
	GS_ASSERT(uv_tcp_init(l->loop, &l->reject) == 0);
	l->reject.data = l;
	l->refs++;
	l->reject_busy = true;
	if (uv_accept((uv_stream_t *)&l->tcp, (uv_stream_t *)&l->reject) == 0)
		GS_WARN(l->ctx, "refused a connection: %s",
			gs_ctx_errmsg(l->ctx));
	uv_close((uv_handle_t *)&l->reject, on_listener_closed);
}

/* A connection is waiting: set it up, start its handshake deadline and
 * hand it to the application before any of its bytes are read. */
static void on_connection(uv_stream_t *server, int status)
{
	struct gs_listener *l = server->data;
	struct gs_conn *c = NULL;
	int rc;

	if (status < 0) {
		GS_WARN(l->ctx, "accept on port %d: %s", l->port,
			uv_strerror(status));
		return;
	}
	if (l->closing)
		return;
	rc = conn_new(&c, l->ctx, l->loop, &l->opts, false, NULL);
	if (rc != GS_OK) {
		reject(l);
		return;
	}
	conn_init_handles(c);
	rc = uv_accept(server, (uv_stream_t *)&c->tcp);
	if (rc < 0) {
		/* No callbacks are installed: this close is silent. */
		GS_WARN(l->ctx, "accept on port %d: %s", l->port,
			uv_strerror(rc));
		close_with(c, GS_EIO, false);
		return;
	}
	take_peer_addr(c);
	uv_tcp_nodelay(&c->tcp, 1);
	GS_DEBUG(l->ctx, "accepted %s", c->addr);
	if (c->tls != NULL) {
		c->state = ST_HANDSHAKE;
		arm(c, c->handshake_ms);
		update_reading(c);
	} else {
		conn_open(c); /* no application callbacks run here */
	}
	l->cb(l, c, l->payload);
}

/* Map the failures an operator can act on to codes of their own. */
static int listen_err(struct gs_ctx *ctx, int uverr, const char *addr_port)
{
	int code = GS_EIO;

	if (uverr == UV_EADDRINUSE)
		code = GS_EBUSY;
	else if (uverr == UV_EACCES)
		code = GS_EDENIED;
	return gs__err(ctx, code, "listen on %s: %s", addr_port,
		       uv_strerror(uverr));
}

int gs__listen(struct gs_listener **out,
	       struct gs_ctx *ctx,
	       uv_loop_t *loop,
	       const char *addr_port,
	       const struct gs_conn_opts *opts,
	       gs_accept_cb cb,
	       void *payload)
{
	struct sockaddr_storage ss;
	char host[HOST_MAX + 1];
	struct gs_listener *l;
	int len = (int)sizeof(ss);
	int port;
	int rc;

	GS_CHECK_ARG(out != NULL && ctx != NULL && loop != NULL);
	GS_CHECK_ARG(addr_port != NULL && cb != NULL);
	*out = NULL;
	rc = split_host_port(ctx, host, &port, addr_port, true);
	if (rc != GS_OK)
		return rc;
	ignore_sigpipe();
	if (!numeric_addr(&ss, host, port))
		return gs__err(ctx, GS_EINVAL,
			       "listen on %s: the address must be numeric",
			       addr_port);
	l = gs__calloc(ctx, 1, sizeof(*l));
	if (l == NULL)
		return gs__err(ctx, GS_ENOMEM, "listen: no memory");
	l->ctx = ctx;
	l->loop = loop;
	if (opts != NULL)
		l->opts = *opts;
	l->opts.server_name = NULL; /* a client option */
	l->cb = cb;
	l->payload = payload;
	GS_ASSERT(uv_tcp_init(loop, &l->tcp) == 0);
	l->tcp.data = l;
	l->refs = 1;
	rc = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&ss, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&l->tcp, BACKLOG, on_connection);
	if (rc == 0)
		rc = uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&ss, &len);
	if (rc < 0) {
		/* The handle is registered with the loop: it is released
		 * there, with no callback to the caller. */
		l->closing = true;
		uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
		return listen_err(ctx, rc, addr_port);
	}
	l->port = ss.ss_family == AF_INET6
			  ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
			  : ntohs(((struct sockaddr_in *)&ss)->sin_port);
	GS_INFO(ctx, "listening on %s (port %d)%s", addr_port, l->port,
		l->opts.tls != NULL ? " with tls" : "");
	*out = l;
	return GS_OK;
}

int gs__listener_port(const struct gs_listener *l)
{
	return l != NULL ? l->port : 0;
}

void gs__listener_close(struct gs_listener *l,
			void (*cb)(void *payload),
			void *payload)
{
	if (l == NULL || l->closing)
		return;
	l->closing = true;
	l->close_cb = cb;
	l->close_payload = payload;
	uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
}
