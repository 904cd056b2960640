/*
 * gs-test: timeout=240
 *
 * One enrolled device misbehaving against a real gridsyncd over loopback
 * (plain TCP, --insecure), speaking the wire protocol by hand: a push of
 * compression bombs, 4,000 pipelined Pulls while another device keeps
 * syncing, a client that never reads its replies, a Hello trickled a byte
 * at a time, a storm of 500 connections, malformed frames and a cursor of
 * 2^64-1. The server's memory (VmHWM and VmRSS from /proc) and the other
 * device's round trip are measured and bounded: 256 MB and 1 s, the
 * bounds docs/SYNC.md gives. Every wait has a deadline. On failure the
 * server's directory (store, journal, server.log) is left in place.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gridsync/changeset.h>
#include <gridsync/schema.h>
#include <gridsync/wire.h>

#include "gs_itest.h"

#define RSS_MAX_KIB (256L * 1024) /* the bound, 256 MB */
#define RX_CAP      (10u << 20)

struct raw {
	int fd;
	uint8_t *rx;
	size_t len;
};

static uint64_t now_ms(void)
{
	return gs__clock_mono_ns() / 1000000u;
}

static void raw_open(struct raw *r, int port)
{
	struct sockaddr_in sa;
	int one = 1;

	memset(r, 0, sizeof(*r));
	r->fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(r->fd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(r->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setsockopt(r->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	r->rx = malloc(RX_CAP);
	assert_non_null(r->rx);
}

static void raw_close(struct raw *r)
{
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	free(r->rx);
	r->rx = NULL;
}

/* Write everything (blocking). false: the peer is gone. */
static bool write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

static void encode(struct gs_buf *b, const struct gs_msg *m)
{
	assert_gs_ok(gs__msg_encode(b, m, NULL));
}

static void raw_send(struct raw *r, const struct gs_msg *m)
{
	struct gs_ctx *ctx = gs_test_ctx_new(NULL);
	struct gs_buf b;

	gs__buf_init(&b, ctx, GS_FRAME_MAX_CEILING);
	encode(&b, m);
	assert_true(write_all(r->fd, b.data, b.len));
	gs__buf_fini(&b);
	gs_ctx_free(ctx);
}

/*
 * The next frame, decoded: 1 with *out set, 0 on EOF or reset, -1 when
 * nothing whole came within timeout_ms.
 */
static int
raw_recv(struct raw *r, struct gs_ctx *ctx, struct gs_msg **out, int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;

	*out = NULL;
	for (;;) {
		struct pollfd pfd = { r->fd, POLLIN, 0 };
		uint64_t t = now_ms();
		ssize_t n;

		if (r->len >= 4) {
			size_t flen = (size_t)r->rx[0] << 24 |
				      (size_t)r->rx[1] << 16 |
				      (size_t)r->rx[2] << 8 | r->rx[3];

			assert_true(flen + 4 <= RX_CAP);
			if (r->len >= flen + 4) {
				assert_gs_ok(gs__msg_decode(out, ctx, r->rx + 4,
							    flen, NULL));
				memmove(r->rx, r->rx + 4 + flen,
					r->len - 4 - flen);
				r->len -= 4 + flen;
				return 1;
			}
		}
		if (t >= deadline)
			return -1;
		if (poll(&pfd, 1, (int)(deadline - t)) <= 0)
			continue;
		n = recv(r->fd, r->rx + r->len, RX_CAP - r->len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0;
		r->len += (size_t)n;
	}
}

static void hello_msg(struct gs_msg *m, const char *device_id)
{
	memset(m, 0, sizeof(*m));
	m->type = GS_MSG_HELLO;
	m->u.hello.proto_min = GS_PROTO_VERSION_MIN;
	m->u.hello.proto_max = GS_PROTO_VERSION_MAX;
	m->u.hello.device_id = device_id;
	m->u.hello.schema_version = GS_SCHEMA_VERSION;
	m->u.hello.app_version = "abuse-test";
	m->u.hello.suite = GS_SUITE_V1;
}

/* Connect, Hello, expect Welcome. */
static void
raw_session(struct raw *r, struct gs_ctx *ctx, int port, const char *device_id)
{
	struct gs_msg hello;
	struct gs_msg *m = NULL;

	raw_open(r, port);
	hello_msg(&hello, device_id);
	raw_send(r, &hello);
	assert_int_equal(raw_recv(r, ctx, &m, 10000), 1);
	if (m->type != GS_MSG_WELCOME)
		fail_msg("expected Welcome, got %s (%s)",
			 gs__msg_type_name(m->type),
			 m->type == GS_MSG_ERROR ? m->u.error.message : "");
	gs__msg_free(m);
}

static void pull_msg(struct gs_msg *m, uint64_t after, uint64_t budget)
{
	memset(m, 0, sizeof(*m));
	m->type = GS_MSG_PULL;
	m->u.pull.after_seq = after;
	m->u.pull.byte_budget = budget;
}

/* Everything but the devices: one server with a journal, enrolled ids. */
struct fx {
	struct gs_ctx *ctx;
	char *dir;
	struct gs_itest_server srv;
	struct gs_itest_workers w;
};

static void fx_start(struct fx *f, const char *const *serve_args)
{
	memset(f, 0, sizeof(*f));
	f->ctx = gs_test_ctx_new(NULL);
	f->dir = gs_test_tmpdir();
	gs_itest_server_create(&f->srv, f->dir, false);
	gs_itest_workers(&f->srv, &f->w);
	for (size_t i = 0; serve_args != NULL && serve_args[i] != NULL; i++)
		f->srv.serve_args[i] = serve_args[i];
	gs_itest_server_start(&f->srv, NULL);
}

/* Enrol device_id (the database it gets is closed at once). */
static void fx_enrol(struct fx *f, const char *device_id)
{
	gs_device_close(gs_itest_device(&f->srv, f->ctx, device_id, f->w.gw_a,
					f->w.grid_a));
}

static void fx_stop(struct fx *f)
{
	assert_int_equal(gs_itest_server_stop(&f->srv), 0);
	gs_test_tmpdir_free(f->dir);
	gs_ctx_free(f->ctx);
}

static void check_rss(struct fx *f, const char *what)
{
	long hwm, rss;

	gs_itest_rss(f->srv.pid, &hwm, &rss);
	printf("# %s: server VmHWM %ld KiB, VmRSS %ld KiB\n", what, hwm, rss);
#if defined(__SANITIZE_ADDRESS__)
	/* ASan keeps freed memory in quarantine and pads every block: the
	 * figures say nothing about the server's own bound. Reported only. */
	printf("# %s: memory bound not checked in a sanitizer build\n", what);
#else
	if (hwm > RSS_MAX_KIB)
		fail_msg("%s: server peak RSS %ld KiB is above %ld KiB", what,
			 hwm, RSS_MAX_KIB);
#endif
}

/* ---- compression bombs ------------------------------------------------- */

/* n entries from seq 1, each an 8 MiB run of zeros as one zstd frame of
 * a few hundred bytes. */
static void bomb_push(struct gs_msg *m,
		      struct gs_push_entry *e,
		      size_t n,
		      const struct gs_buf *packed,
		      const uint8_t sha[GS_SHA256_LEN],
		      uint32_t inflated)
{
	for (size_t i = 0; i < n; i++) {
		memset(&e[i], 0, sizeof(e[i]));
		e[i].device_seq = i + 1;
		e[i].hlc = 1;
		e[i].changeset = packed->data;
		e[i].changeset_len = packed->len;
		memcpy(e[i].sha256, sha, GS_SHA256_LEN);
		e[i].compression = GS_COMP_ZSTD;
		e[i].uncompressed_len = inflated;
	}
	memset(m, 0, sizeof(*m));
	m->type = GS_MSG_PUSH;
	m->u.push.schema_version = GS_SCHEMA_VERSION;
	m->u.push.entries = e;
	m->u.push.n_entries = n;
}

static void compression_bomb_is_bounded(void **state)
{
	const uint32_t inflated = GS_CS_MAX_BYTES_DEFAULT;
	struct gs_push_entry e[128];
	struct gs_buf packed;
	enum gs_compression comp;
	uint8_t sha[GS_SHA256_LEN];
	uint8_t *zeros;
	struct gs_msg push;
	struct gs_msg *m = NULL;
	struct raw r;
	struct fx f;
	struct stat sb;
	char path[4200];

	(void)state;
	fx_start(&f, NULL);
	fx_enrol(&f, "dev-bomb");
	zeros = calloc(1, inflated);
	assert_non_null(zeros);
	gs__buf_init(&packed, f.ctx, GS_FRAME_MAX_CEILING);
	assert_gs_ok(gs__changeset_pack(&packed, &comp, NULL, zeros, inflated));
	assert_int_equal(comp, GS_COMP_ZSTD);
	gs__sha256(sha, zeros, inflated);
	free(zeros);
	printf("# bomb: %zu compressed bytes inflate to %u\n", packed.len,
	       inflated);

	/* 128 bombs (1 GiB inflated) in one small Push: refused whole,
	 * before anything is inflated. */
	raw_session(&r, f.ctx, f.srv.port, "dev-bomb");
	bomb_push(&push, e, 128, &packed, sha, inflated);
	raw_send(&r, &push);
	assert_int_equal(raw_recv(&r, f.ctx, &m, 30000), 1);
	assert_int_equal(m->type, GS_MSG_ERROR);
	assert_int_equal(m->u.error.code, GS_WIRE_ERR_LIMIT);
	printf("# refused: %s\n", m->u.error.message);
	gs__msg_free(m);
	raw_close(&r);
	check_rss(&f, "128 bombs");

	/* Two bombs fit the per-push budget: inflated one after the other,
	 * refused by the changeset parser, and kept by hash only. */
	raw_session(&r, f.ctx, f.srv.port, "dev-bomb");
	bomb_push(&push, e, 2, &packed, sha, inflated);
	raw_send(&r, &push);
	assert_int_equal(raw_recv(&r, f.ctx, &m, 30000), 1);
	assert_int_equal(m->type, GS_MSG_PUSH_ACK);
	assert_int_equal(m->u.push_ack.n_results, 2);
	for (size_t i = 0; i < 2; i++)
		assert_int_equal(m->u.push_ack.results[i].result,
				 GS_RESULT_REJECTED);
	gs__msg_free(m);
	raw_close(&r);
	check_rss(&f, "2 bombs");
	assert_int_equal(gs_itest_server_int(&f.srv,
					     "SELECT count(*) FROM srv_received"
					     " WHERE device_id = ?1",
					     "dev-bomb"),
			 2);
	assert_int_equal(gs_itest_server_int(&f.srv,
					     "SELECT ifnull(sum(length("
					     "changeset)), 0) FROM srv_received"
					     " WHERE device_id = ?1",
					     "dev-bomb"),
			 0);
	snprintf(path, sizeof(path), "%s-wal", f.srv.db);
	if (stat(path, &sb) == 0) {
		printf("# store WAL after the bombs: %lld bytes\n",
		       (long long)sb.st_size);
		assert_true(sb.st_size < 8 * 1024 * 1024);
	}
	assert_int_equal(stat(f.srv.db, &sb), 0);
	assert_true(sb.st_size < 64 * 1024 * 1024);
	gs__buf_fini(&packed);
	assert_int_equal(gs_itest_server_stop(&f.srv), 0);
	{
		const char *verify[] = { "gridsyncd",   "journal", "verify",
					 "--db",        f.srv.db,  "--journal",
					 f.srv.journal, NULL };

		assert_int_equal(gs_itest_run(verify, NULL, NULL), 0);
	}
	gs_test_tmpdir_free(f.dir);
	gs_ctx_free(f.ctx);
}

/* ---- protocol errors and cursors ----------------------------------------- */

static void expect_error_then_close(struct raw *r, struct gs_ctx *ctx)
{
	struct gs_msg *m = NULL;

	if (raw_recv(r, ctx, &m, 10000) != 1)
		fail_msg("the server closed without an Error frame");
	assert_int_equal(m->type, GS_MSG_ERROR);
	assert_int_equal(m->u.error.code, GS_WIRE_ERR_PROTOCOL);
	printf("# Error{PROTOCOL}: %s\n", m->u.error.message);
	gs__msg_free(m);
	assert_int_equal(raw_recv(r, ctx, &m, 10000), 0);
}

static void protocol_errors_send_error_frames(void **state)
{
	static const uint8_t garbage[] = { 0, 0, 0, 3, 0xff, 0xff, 0xff };
	static const uint8_t zero[] = { 0, 0, 0, 0 };
	static const uint8_t huge[] = { 0x7f, 0xff, 0xff, 0xff };
	struct raw r;
	struct fx f;

	(void)state;
	fx_start(&f, NULL);
	fx_enrol(&f, "dev-proto");
	/* An envelope that does not decode, before and after Hello. */
	raw_open(&r, f.srv.port);
	assert_true(write_all(r.fd, garbage, sizeof(garbage)));
	expect_error_then_close(&r, f.ctx);
	raw_close(&r);
	raw_session(&r, f.ctx, f.srv.port, "dev-proto");
	assert_true(write_all(r.fd, garbage, sizeof(garbage)));
	expect_error_then_close(&r, f.ctx);
	raw_close(&r);
	/* Frame lengths the reader refuses. */
	raw_session(&r, f.ctx, f.srv.port, "dev-proto");
	assert_true(write_all(r.fd, zero, sizeof(zero)));
	expect_error_then_close(&r, f.ctx);
	raw_close(&r);
	raw_open(&r, f.srv.port);
	assert_true(write_all(r.fd, huge, sizeof(huge)));
	expect_error_then_close(&r, f.ctx);
	raw_close(&r);
	fx_stop(&f);
}

static void cursor_is_unsigned(void **state)
{
	struct gs_msg pull;
	struct gs_msg *m = NULL;
	struct raw r;
	struct fx f;

	(void)state;
	fx_start(&f, NULL);
	fx_enrol(&f, "dev-cursor");
	raw_session(&r, f.ctx, f.srv.port, "dev-cursor");
	/* The seeded store has changes for this scope: a cursor read as
	 * signed (-1) would send them all. */
	pull_msg(&pull, 0, 1u << 20);
	raw_send(&r, &pull);
	assert_int_equal(raw_recv(&r, f.ctx, &m, 10000), 1);
	assert_int_equal(m->type, GS_MSG_CHANGES);
	assert_true(m->u.changes.n_entries > 0);
	gs__msg_free(m);
	pull_msg(&pull, UINT64_MAX, 1u << 20);
	raw_send(&r, &pull);
	assert_int_equal(raw_recv(&r, f.ctx, &m, 10000), 1);
	assert_int_equal(m->type, GS_MSG_CHANGES);
	assert_int_equal(m->u.changes.n_entries, 0);
	assert_false(m->u.changes.more);
	assert_true(m->u.changes.next_cursor == UINT64_MAX);
	gs__msg_free(m);
	raw_close(&r);
	fx_stop(&f);
}

/* ---- refused Hellos are logged ------------------------------------------- */

static bool file_has(const char *path, const char *text)
{
	static char buf[1 << 16];
	FILE *fp = fopen(path, "r");
	size_t n;

	if (fp == NULL)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	return strstr(buf, text) != NULL;
}

static void refused_hello_is_logged(void **state)
{
	struct gs_msg hello;
	struct gs_msg *m = NULL;
	struct raw r;
	struct fx f;
	char log[4200];
	uint64_t deadline;

	(void)state;
	fx_start(&f, NULL);
	raw_open(&r, f.srv.port);
	hello_msg(&hello, "dev-unknown-7");
	raw_send(&r, &hello);
	assert_int_equal(raw_recv(&r, f.ctx, &m, 10000), 1);
	assert_int_equal(m->type, GS_MSG_ERROR);
	assert_int_equal(m->u.error.code, GS_WIRE_ERR_UNAUTHORIZED);
	gs__msg_free(m);
	raw_close(&r);
	snprintf(log, sizeof(log), "%s/server.log", f.dir);
	deadline = now_ms() + 10000;
	while (!file_has(log, "dev-unknown-7") && now_ms() < deadline) {
		struct pollfd none = { -1, 0, 0 };

		poll(&none, 0, 20); /* poll interval while the log is written */
	}
	if (!file_has(log, "dev-unknown-7"))
		fail_msg("the refused Hello is not in %s", log);
	assert_true(file_has(log, "not enrolled"));
	fx_stop(&f);
}

/* ---- a Hello trickled one byte at a time ----------------------------------
 */

static void trickled_hello_is_cut(void **state)
{
	const char *args[] = { "--handshake-ms", "2000", NULL };
	struct gs_ctx *ctx;
	struct gs_buf b;
	struct gs_msg hello;
	struct gs_msg *m = NULL;
	struct raw r;
	struct fx f;
	uint64_t start;
	size_t sent = 0;
	int got = -1;

	(void)state;
	fx_start(&f, args);
	fx_enrol(&f, "dev-slow");
	ctx = f.ctx;
	gs__buf_init(&b, ctx, 4096);
	hello_msg(&hello, "dev-slow");
	encode(&b, &hello);
	raw_open(&r, f.srv.port);
	start = now_ms();
	/* One byte every 250 ms: the whole Hello would take seconds more
	 * than the 2 s deadline. */
	while (sent < b.len && got == -1) {
		if (!write_all(r.fd, b.data + sent, 1)) {
			got = 0;
			break;
		}
		sent++;
		got = raw_recv(&r, ctx, &m, 250);
	}
	if (got == -1)
		got = raw_recv(&r, ctx, &m, 5000);
	printf("# trickle: %zu of %zu Hello bytes sent in %llu ms\n", sent,
	       b.len, (unsigned long long)(now_ms() - start));
	if (got == 1 && m->type == GS_MSG_WELCOME)
		fail_msg("a Hello trickled over %llu ms was accepted",
			 (unsigned long long)(now_ms() - start));
	if (got == 1) {
		assert_int_equal(m->type, GS_MSG_ERROR);
		gs__msg_free(m);
	}
	assert_true(sent < b.len);
	gs__buf_fini(&b);
	raw_close(&r);
	fx_stop(&f);
}

/* ---- 4,000 pipelined Pulls while another device syncs ---------------------
 */

struct drain {
	struct raw *r;
	struct gs_ctx *ctx;
	size_t frames;
};

static void *drain_main(void *arg)
{
	struct drain *d = arg;
	struct gs_msg *m = NULL;

	while (d->frames < 4000 && raw_recv(d->r, d->ctx, &m, 60000) == 1) {
		gs__msg_free(m);
		d->frames++;
	}
	return NULL;
}

static void pull_flood_does_not_block_others(void **state)
{
	struct gs_ctx *tctx = gs_test_ctx_new(NULL);
	struct gs_buf b;
	struct gs_msg pull, ping;
	struct gs_msg *m = NULL;
	struct raw flood, other;
	struct drain d;
	pthread_t th;
	struct fx f;
	uint64_t worst = 0;
	uint64_t t0;

	(void)state;
	fx_start(&f, NULL);
	fx_enrol(&f, "dev-flood");
	fx_enrol(&f, "dev-other");
	raw_session(&flood, f.ctx, f.srv.port, "dev-flood");
	raw_session(&other, f.ctx, f.srv.port, "dev-other");
	/* 4,000 Pulls of the scope from the start in one write; with
	 * GS_SOAK=1 each asks for 64 KiB, else for 4 KiB. */
	gs__buf_init(&b, f.ctx, GS_FRAME_MAX_CEILING);
	pull_msg(&pull, 0, getenv("GS_SOAK") != NULL ? 64u << 10 : 4u << 10);
	for (int i = 0; i < 4000; i++)
		encode(&b, &pull);
	d.r = &flood;
	d.ctx = tctx;
	d.frames = 0;
	assert_int_equal(pthread_create(&th, NULL, drain_main, &d), 0);
	t0 = now_ms();
	assert_true(write_all(flood.fd, b.data, b.len));
	/* The other device's round trips while the flood is served. */
	memset(&ping, 0, sizeof(ping));
	ping.type = GS_MSG_PING;
	for (int i = 0; i < 40 && d.frames < 4000; i++) {
		uint64_t t = now_ms();
		uint64_t rtt;

		ping.u.ping.nonce = (uint64_t)i + 1;
		ping.u.ping.time_ms = t;
		raw_send(&other, &ping);
		assert_int_equal(raw_recv(&other, f.ctx, &m, 30000), 1);
		assert_int_equal(m->type, GS_MSG_PONG);
		gs__msg_free(m);
		rtt = now_ms() - t;
		if (rtt > worst)
			worst = rtt;
		pull_msg(&pull, UINT64_MAX - 1, 1);
		t = now_ms();
		raw_send(&other, &pull);
		assert_int_equal(raw_recv(&other, f.ctx, &m, 30000), 1);
		assert_int_equal(m->type, GS_MSG_CHANGES);
		gs__msg_free(m);
		rtt = now_ms() - t;
		if (rtt > worst)
			worst = rtt;
	}
	pthread_join(th, NULL);
	printf("# flood: %zu replies in %llu ms; other device's worst round "
	       "trip %llu ms\n",
	       d.frames, (unsigned long long)(now_ms() - t0),
	       (unsigned long long)worst);
	assert_int_equal(d.frames, 4000);
	if (worst >= 1000)
		fail_msg("another device waited %llu ms behind the flood",
			 (unsigned long long)worst);
	check_rss(&f, "pull flood");
	gs__buf_fini(&b);
	raw_close(&flood);
	raw_close(&other);
	gs_ctx_free(tctx);
	fx_stop(&f);
}

/* ---- a client that never reads --------------------------------------------
 */

static void non_reader_is_disconnected(void **state)
{
	const char *args[] = { "--stall-ms", "2000", NULL };
	struct gs_buf b;
	struct gs_msg pull;
	struct raw r;
	struct fx f;
	uint64_t start;
	uint64_t deadline;
	size_t sent = 0;
	bool gone = false;

	(void)state;
	fx_start(&f, args);
	fx_enrol(&f, "dev-deaf");
	raw_session(&r, f.ctx, f.srv.port, "dev-deaf");
	gs__buf_init(&b, f.ctx, 4096);
	pull_msg(&pull, 0, 1u << 20);
	encode(&b, &pull);
	start = now_ms();
	deadline = start + 30000;
	/* Keep asking for the whole scope, never read an answer. */
	while (!gone && now_ms() < deadline) {
		ssize_t w =
			send(r.fd, b.data, b.len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w > 0) {
			sent++;
			continue;
		}
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd pfd = { r.fd, POLLOUT, 0 };

			poll(&pfd, 1, 50);
			if (pfd.revents & (POLLERR | POLLHUP))
				gone = true;
			continue;
		}
		gone = true; /* EPIPE or ECONNRESET: the server closed */
	}
	printf("# non-reader: %zu Pulls sent, disconnected after %llu ms\n",
	       sent, (unsigned long long)(now_ms() - start));
	if (!gone)
		fail_msg("a client that never reads was not disconnected "
			 "within 30 s");
	check_rss(&f, "non-reader");
	gs__buf_fini(&b);
	raw_close(&r);
	fx_stop(&f);
}

/* ---- a storm of 500 connections --------------------------------------------
 */

#define STORM 500

static void storm_memory_returns(void **state)
{
	static struct raw conns[STORM];
	struct gs_device *dev;
	struct gs_msg hello, pull;
	struct gs_msg *m = NULL;
	struct fx f;
	long hwm, base, peak_rss = 0, after = 0;
	uint64_t deadline;

	(void)state;
	fx_start(&f, NULL);
	dev = gs_itest_device(&f.srv, f.ctx, "dev-storm", f.w.gw_a, f.w.grid_a);
	gs_itest_sync(dev, NULL); /* one ordinary sync: the baseline */
	gs_device_close(dev);
	gs_itest_rss(f.srv.pid, &hwm, &base);
	hello_msg(&hello, "dev-storm");
	pull_msg(&pull, 0, 1u << 20);
	for (int i = 0; i < STORM; i++) {
		raw_open(&conns[i], f.srv.port);
		raw_send(&conns[i], &hello);
		raw_send(&conns[i], &pull);
	}
	for (int i = 0; i < STORM; i++) {
		for (int k = 0; k < 2; k++) {
			assert_int_equal(raw_recv(&conns[i], f.ctx, &m, 60000),
					 1);
			gs__msg_free(m);
		}
		if (i == STORM / 2) {
			long rss;

			gs_itest_rss(f.srv.pid, &hwm, &rss);
			peak_rss = rss;
		}
	}
	for (int i = 0; i < STORM; i++)
		raw_close(&conns[i]);
	/* Memory goes back once they are gone (checked every 100 ms). */
	deadline = now_ms() + 15000;
	do {
		struct pollfd none = { -1, 0, 0 };

		poll(&none, 0, 100);
		gs_itest_rss(f.srv.pid, &hwm, &after);
	} while (after > base + 64 * 1024 && now_ms() < deadline);
	printf("# storm: baseline VmRSS %ld KiB, mid-storm %ld KiB, peak "
	       "VmHWM %ld KiB, after %ld KiB\n",
	       base, peak_rss, hwm, after);
	check_rss(&f, "storm");
#if !defined(__SANITIZE_ADDRESS__)
	if (after > base + 64 * 1024)
		fail_msg("after the storm the server holds %ld KiB, baseline "
			 "%ld KiB",
			 after, base);
#endif
	fx_stop(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(protocol_errors_send_error_frames),
		cmocka_unit_test(cursor_is_unsigned),
		cmocka_unit_test(refused_hello_is_logged),
		cmocka_unit_test(compression_bomb_is_bounded),
		cmocka_unit_test(trickled_hello_is_cut),
		cmocka_unit_test(pull_flood_does_not_block_others),
		cmocka_unit_test(non_reader_is_disconnected),
		cmocka_unit_test(storm_memory_returns),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
