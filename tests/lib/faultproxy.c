/*
 * The fault proxy (faultproxy.h). One libuv loop in one thread; the test
 * thread talks to it through a mutex and an async handle. Each direction
 * of a connection is a pipeline: bytes in, cut into units (whole frames
 * over plain TCP, read chunks over TLS), the fault applied to the units,
 * then an output queue that a timer drains (for delay and trickle).
 */
#include "faultproxy.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#define REPLAY_KEEP  64
#define HOLD_MS      300 /* reorder: longest wait for the second frame */
#define MAX_FRAME    (64u << 20)
#define READ_CHUNK   65536
#define FP_NS_PER_MS 1000000ull

struct item {
	struct item *next;
	uint8_t *data;
	size_t len, off;
	uint64_t due_ns;
	bool close;
};

struct conn;

struct dir {
	struct conn *c;
	int idx;
	uint64_t in_off; /* bytes received */
	uint64_t frames; /* complete frames received */
	uint8_t *f;      /* frame being assembled */
	size_t flen, fcap, need;
	bool raw; /* framing lost (a length out of range): chunks */
	struct item *head, *tail;
	uv_timer_t timer;
	uv_timer_t hold_timer;
	uint8_t *held; /* reorder: frame k waiting for k+1 */
	size_t held_len;
	bool dead; /* black-holed: discard */
};

struct replay_frame {
	uint64_t conn_id;
	unsigned tag;
	uint8_t *data;
	size_t len;
};

struct gs_fp {
	uv_loop_t loop;
	uv_tcp_t listener;
	uv_async_t async;
	pthread_t thread;
	pthread_mutex_t mu;
	char addr[64];
	struct sockaddr_in upstream;
	bool tls;
	uint64_t rng;
	FILE *log; /* loop thread only, once running */
	/* under mu */
	struct gs_fp_fault fault;
	struct gs_fp_stats stats;
	uint64_t last_frames[2];
	bool want_drop, want_stop;
	unsigned random_pct;
	/* loop thread only */
	struct conn *conns;
	uint64_t next_conn_id;
	struct replay_frame replay[2][REPLAY_KEEP];
	unsigned replay_n[2];
};

struct conn {
	struct gs_fp *fp;
	uint64_t id;
	uv_tcp_t cli, srv;
	uv_connect_t creq;
	bool connected;
	bool closing;
	int handles;
	struct gs_fp_fault f;
	struct dir d[2];
	struct conn *next, **pprev;
};

struct wreq {
	uv_write_t req;
	uint8_t *data;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t fp_rand(struct gs_fp *fp)
{
	uint64_t z = (fp->rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void *xmemdup(const void *p, size_t n)
{
	uint8_t *q = malloc(n ? n : 1);

	if (q == NULL)
		abort();
	if (n)
		memcpy(q, p, n);
	return q;
}

const char *gs_fp_mode_name(enum gs_fp_mode mode)
{
	static const char *const names[] = {
		"none",      "cut",     "delay",  "trickle", "blackhole",
		"duplicate", "reorder", "replay", "flip"
	};

	return (unsigned)mode < sizeof(names) / sizeof(names[0]) ? names[mode]
								 : "?";
}

/* The message type of a frame: the envelope's first field number. */
static unsigned frame_type(const uint8_t *p, size_t n)
{
	return n > 4 ? p[4] >> 3 : 0;
}

static void note(struct dir *d, const char *what, const uint8_t *p, size_t n)
{
	FILE *log = d->c->fp->log;

	if (log == NULL)
		return;
	fprintf(log, "conn %llu %s frame %llu len %zu type %u%s%s\n",
		(unsigned long long)d->c->id, d->idx ? "s2c" : "c2s",
		(unsigned long long)(d->frames ? d->frames - 1 : 0), n,
		d->c->fp->tls ? 0 : frame_type(p, n), what[0] ? " " : "", what);
	fflush(log);
}

static void fired(struct conn *c)
{
	pthread_mutex_lock(&c->fp->mu);
	c->fp->stats.injected++;
	pthread_mutex_unlock(&c->fp->mu);
}

/* ---- closing ---------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h)
{
	struct conn *c = h->data;

	if (--c->handles > 0)
		return;
	for (int i = 0; i < 2; i++) {
		struct item *it = c->d[i].head;

		while (it != NULL) {
			struct item *next = it->next;

			free(it->data);
			free(it);
			it = next;
		}
		free(c->d[i].f);
		free(c->d[i].held);
	}
	free(c);
}

static void conn_close(struct conn *c)
{
	struct gs_fp *fp = c->fp;

	if (c->closing)
		return;
	c->closing = true;
	*c->pprev = c->next;
	if (c->next != NULL)
		c->next->pprev = c->pprev;
	pthread_mutex_lock(&fp->mu);
	for (int i = 0; i < 2; i++) {
		fp->last_frames[i] = c->d[i].frames;
		if (c->d[i].frames > fp->stats.max_frames)
			fp->stats.max_frames = c->d[i].frames;
	}
	pthread_mutex_unlock(&fp->mu);
	uv_close((uv_handle_t *)&c->cli, on_handle_closed);
	uv_close((uv_handle_t *)&c->srv, on_handle_closed);
	for (int i = 0; i < 2; i++) {
		/* Closed handles all report to the connection. */
		c->d[i].timer.data = c;
		c->d[i].hold_timer.data = c;
		uv_close((uv_handle_t *)&c->d[i].timer, on_handle_closed);
		uv_close((uv_handle_t *)&c->d[i].hold_timer, on_handle_closed);
	}
}

/* ---- output ----------------------------------------------------------- */

static uv_stream_t *dst_of(struct dir *d)
{
	return d->idx == GS_FP_C2S ? (uv_stream_t *)&d->c->srv
				   : (uv_stream_t *)&d->c->cli;
}

static void on_written(uv_write_t *req, int status)
{
	struct wreq *w = (struct wreq *)req;

	(void)status;
	free(w->data);
	free(w);
}

static void write_bytes(struct dir *d, const uint8_t *p, size_t n)
{
	struct wreq *w = malloc(sizeof(*w));
	uv_buf_t b;

	if (w == NULL)
		abort();
	w->data = xmemdup(p, n);
	b = uv_buf_init((char *)w->data, (unsigned)n);
	if (uv_write(&w->req, dst_of(d), &b, 1, on_written) != 0) {
		free(w->data);
		free(w);
		conn_close(d->c);
	}
}

static void pump(struct dir *d);

static void on_pump_timer(uv_timer_t *t)
{
	pump(t->data);
}

static bool trickling(const struct dir *d)
{
	return d->c->f.mode == GS_FP_TRICKLE && (int)d->c->f.dir == d->idx;
}

static void pump(struct dir *d)
{
	struct conn *c = d->c;

	if (c->closing)
		return;
	if (d->idx == GS_FP_C2S && !c->connected)
		return; /* on_connected pumps */
	while (d->head != NULL) {
		struct item *it = d->head;
		uint64_t now = now_ns();

		if (it->due_ns > now) {
			uv_timer_start(&d->timer, on_pump_timer,
				       (it->due_ns - now) / FP_NS_PER_MS + 1,
				       0);
			return;
		}
		if (it->close) {
			conn_close(c);
			return;
		}
		if (trickling(d) && it->len > 0) {
			write_bytes(d, it->data + it->off, 1);
			if (c->closing)
				return;
			if (++it->off == it->len) {
				d->head = it->next;
				if (d->head == NULL)
					d->tail = NULL;
				free(it->data);
				free(it);
			}
			if (d->head != NULL)
				uv_timer_start(
					&d->timer, on_pump_timer,
					c->f.delay_ms ? c->f.delay_ms : 1, 0);
			return;
		}
		d->head = it->next;
		if (d->head == NULL)
			d->tail = NULL;
		if (it->len > 0)
			write_bytes(d, it->data, it->len);
		free(it->data);
		free(it);
		if (c->closing)
			return;
	}
}

static void enqueue(struct dir *d, const uint8_t *p, size_t n, bool close)
{
	struct item *it = calloc(1, sizeof(*it));
	struct conn *c = d->c;

	if (it == NULL)
		abort();
	it->data = xmemdup(p, n);
	it->len = n;
	it->close = close;
	it->due_ns = now_ns();
	if (c->f.mode == GS_FP_DELAY && (int)c->f.dir == d->idx)
		it->due_ns += (uint64_t)c->f.delay_ms * FP_NS_PER_MS;
	if (d->tail != NULL)
		d->tail->next = it;
	else
		d->head = it;
	d->tail = it;
	pump(d);
}

static void emit(struct dir *d, const uint8_t *p, size_t n)
{
	if (!d->dead && n > 0)
		enqueue(d, p, n, false);
}

static void emit_close(struct dir *d)
{
	enqueue(d, NULL, 0, true);
}

/* ---- faults on units -------------------------------------------------- */

static void keep_for_replay(struct conn *c, int idx, const uint8_t *p, size_t n)
{
	struct gs_fp *fp = c->fp;
	struct replay_frame *r;

	if (fp->replay_n[idx] < REPLAY_KEEP) {
		r = &fp->replay[idx][fp->replay_n[idx]++];
	} else {
		r = &fp->replay[idx][fp_rand(fp) % REPLAY_KEEP];
		free(r->data);
	}
	r->conn_id = c->id;
	r->tag = c->f.tag;
	r->data = xmemdup(p, n);
	r->len = n;
}

static void replay_one(struct dir *d)
{
	struct gs_fp *fp = d->c->fp;
	unsigned n = fp->replay_n[d->idx];
	unsigned start;

	if (n == 0)
		return;
	start = (unsigned)(fp_rand(fp) % n);
	for (unsigned i = 0; i < n; i++) {
		struct replay_frame *r = &fp->replay[d->idx][(start + i) % n];

		if (r->conn_id != d->c->id && r->tag == d->c->f.tag) {
			emit(d, r->data, r->len);
			note(d, "replayed (an earlier connection's)", r->data,
			     r->len);
			fired(d->c);
			return;
		}
	}
}

static void on_hold_timer(uv_timer_t *t)
{
	struct dir *d = t->data;

	/* The second frame did not come: the first goes alone. */
	if (d->held != NULL) {
		emit(d, d->held, d->held_len);
		free(d->held);
		d->held = NULL;
	}
}

/* A unit: a whole frame (framed) or a chunk (raw), starting at byte
 * `start` of the direction, being frame number `fno` (framed only). */
static void
unit(struct dir *d, const uint8_t *p, size_t n, uint64_t start, uint64_t fno)
{
	struct conn *c = d->c;
	const struct gs_fp_fault *f = &c->f;
	bool framed = !c->fp->tls && !d->raw;

	if (f->mode == GS_FP_NONE || (int)f->dir != d->idx ||
	    f->mode == GS_FP_DELAY || f->mode == GS_FP_TRICKLE) {
		emit(d, p, n);
		return;
	}
	switch (f->mode) {
	case GS_FP_CUT: {
		uint64_t at; /* cut point, as a byte offset */
		bool here = false;

		if (framed) {
			if (fno == f->k && f->delta >= 0) {
				at = start + (uint64_t)f->delta;
				here = true;
			} else if (f->delta < 0 && f->k > 0 &&
				   fno + 1 == f->k) {
				at = start + n - 1;
				here = true;
			} else if (f->delta < 0 && f->k == 0 && fno == 0) {
				at = start;
				here = true;
			}
		} else {
			int64_t t = (int64_t)f->k + f->delta;

			at = t < 0 ? 0 : (uint64_t)t;
			here = at >= start && at < start + n;
		}
		if (!here) {
			emit(d, p, n);
			return;
		}
		if (at > start + n)
			at = start + n;
		emit(d, p, (size_t)(at - start));
		fired(c);
		note(d, "cut here", p, (size_t)(at - start));
		emit_close(d);
		d->dead = true;
		c->d[!d->idx].dead = true;
		return;
	}
	case GS_FP_BLACKHOLE: {
		uint64_t at = framed ? start : f->k;
		bool here =
			framed ? fno == f->k : (at >= start && at < start + n);

		if (!here) {
			emit(d, p, n);
			return;
		}
		emit(d, p, (size_t)(at - start));
		fired(c);
		note(d, "black hole from here", p, n);
		d->dead = true;
		c->d[!d->idx].dead = true;
		return;
	}
	case GS_FP_FLIP: {
		uint8_t *q;
		uint64_t pos;

		if (framed ? fno != f->k
			   : !(f->k >= start && f->k < start + n)) {
			emit(d, p, n);
			return;
		}
		q = xmemdup(p, n);
		pos = framed ? fp_rand(c->fp) % n : f->k - start;
		q[pos] ^= (uint8_t)(1u << (fp_rand(c->fp) % 8));
		emit(d, q, n);
		note(d, "bit flipped", q, n);
		free(q);
		fired(c);
		return;
	}
	case GS_FP_DUPLICATE:
		emit(d, p, n);
		if (framed && fno == f->k) {
			emit(d, p, n);
			note(d, "sent twice", p, n);
			fired(c);
		}
		return;
	case GS_FP_REORDER:
		if (framed && fno == f->k) {
			d->held = xmemdup(p, n);
			d->held_len = n;
			uv_timer_start(&d->hold_timer, on_hold_timer, HOLD_MS,
				       0);
			return;
		}
		emit(d, p, n);
		if (d->held != NULL) {
			uv_timer_stop(&d->hold_timer);
			emit(d, d->held, d->held_len);
			note(d, "sent before the held one", p, n);
			free(d->held);
			d->held = NULL;
			fired(c);
		}
		return;
	case GS_FP_REPLAY:
		emit(d, p, n);
		if (framed && fno == f->k)
			replay_one(d);
		return;
	default:
		emit(d, p, n);
		return;
	}
}

/* ---- input ------------------------------------------------------------ */

static void take(struct dir *d, const uint8_t *p, size_t n)
{
	struct conn *c = d->c;

	if (c->fp->tls || d->raw) {
		unit(d, p, n, d->in_off, 0);
		d->in_off += n;
		return;
	}
	while (n > 0 && !c->closing) {
		size_t want = d->flen < 4 ? 4 - d->flen : d->need - d->flen;
		size_t k = n < want ? n : want;

		if (d->flen + k > d->fcap) {
			size_t cap = d->fcap ? d->fcap : 4096;

			while (cap < d->flen + k)
				cap *= 2;
			d->f = realloc(d->f, cap);
			if (d->f == NULL)
				abort();
			d->fcap = cap;
		}
		memcpy(d->f + d->flen, p, k);
		d->flen += k;
		p += k;
		n -= k;
		if (d->flen == 4) {
			uint32_t len = (uint32_t)d->f[0] << 24 |
				       (uint32_t)d->f[1] << 16 |
				       (uint32_t)d->f[2] << 8 | d->f[3];

			if (len == 0 || len > MAX_FRAME) {
				/* Not our framing: pass bytes through. */
				d->raw = true;
				unit(d, d->f, 4, d->in_off, 0);
				d->in_off += 4;
				d->flen = 0;
				if (n > 0)
					take(d, p, n);
				return;
			}
			d->need = 4 + (size_t)len;
		}
		if (d->flen >= 4 && d->flen == d->need) {
			uint64_t fno = d->frames++;
			uint64_t start = d->in_off;

			pthread_mutex_lock(&c->fp->mu);
			c->fp->stats.frames[d->idx]++;
			pthread_mutex_unlock(&c->fp->mu);
			d->in_off += d->flen;
			d->flen = 0;
			keep_for_replay(c, d->idx, d->f, d->need);
			note(d, "", d->f, d->need);
			unit(d, d->f, d->need, start, fno);
		}
	}
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)h;
	(void)suggested;
	buf->base = malloc(READ_CHUNK);
	buf->len = buf->base != NULL ? READ_CHUNK : 0;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = s->data;
	struct dir *d = &c->d[s == (uv_stream_t *)&c->cli ? 0 : 1];

	if (nread > 0 && !c->closing)
		take(d, (const uint8_t *)buf->base, (size_t)nread);
	free(buf->base);
	if (nread < 0 && !c->closing) {
		/* The peer closed: what was queued still goes, then both
		 * sides close (the protocol has no half-close). */
		uv_read_stop(s);
		if (d->held != NULL) {
			uv_timer_stop(&d->hold_timer);
			emit(d, d->held, d->held_len);
			free(d->held);
			d->held = NULL;
		}
		emit_close(d);
	}
}

static void on_connected(uv_connect_t *req, int status)
{
	struct conn *c = req->data;

	if (c->closing)
		return;
	if (status != 0) {
		conn_close(c);
		return;
	}
	c->connected = true;
	uv_read_start((uv_stream_t *)&c->srv, on_alloc, on_read);
	pump(&c->d[GS_FP_C2S]);
}

static void random_fault(struct gs_fp *fp, struct gs_fp_fault *f)
{
	static const enum gs_fp_mode modes[] = {
		GS_FP_CUT,       GS_FP_CUT,       GS_FP_DELAY,   GS_FP_TRICKLE,
		GS_FP_BLACKHOLE, GS_FP_DUPLICATE, GS_FP_REORDER,
	};

	memset(f, 0, sizeof(*f));
	f->mode = modes[fp_rand(fp) % (sizeof(modes) / sizeof(modes[0]))];
	f->dir = (enum gs_fp_dir)(fp_rand(fp) % 2);
	f->k = fp_rand(fp) % 4;
	f->delta = (int)(fp_rand(fp) % 3) - 1;
	f->delay_ms = f->mode == GS_FP_TRICKLE
			      ? 1
			      : 50 + (unsigned)(fp_rand(fp) % 150);
	if (fp->tls && f->mode != GS_FP_DELAY && f->mode != GS_FP_TRICKLE) {
		/* Bytes only: a cut or black hole at an offset. */
		f->mode = f->mode == GS_FP_BLACKHOLE ? GS_FP_BLACKHOLE
						     : GS_FP_CUT;
		f->k = fp_rand(fp) % 4000;
	}
}

static void on_accept(uv_stream_t *l, int status)
{
	struct gs_fp *fp = l->data;
	struct conn *c;

	if (status != 0)
		return;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		abort();
	c->fp = fp;
	c->id = ++fp->next_conn_id;
	uv_tcp_init(&fp->loop, &c->cli);
	uv_tcp_init(&fp->loop, &c->srv);
	c->cli.data = c;
	c->srv.data = c;
	c->handles = 6;
	for (int i = 0; i < 2; i++) {
		c->d[i].c = c;
		c->d[i].idx = i;
		uv_timer_init(&fp->loop, &c->d[i].timer);
		uv_timer_init(&fp->loop, &c->d[i].hold_timer);
		c->d[i].timer.data = &c->d[i];
		c->d[i].hold_timer.data = &c->d[i];
	}
	c->next = fp->conns;
	if (c->next != NULL)
		c->next->pprev = &c->next;
	c->pprev = &fp->conns;
	fp->conns = c;
	pthread_mutex_lock(&fp->mu);
	c->f = fp->fault;
	fp->stats.connections++;
	if (fp->random_pct > 0 && fp_rand(fp) % 100 < fp->random_pct)
		random_fault(fp, &c->f);
	pthread_mutex_unlock(&fp->mu);
	if (uv_accept(l, (uv_stream_t *)&c->cli) != 0) {
		conn_close(c);
		return;
	}
	uv_tcp_nodelay(&c->cli, 1);
	uv_tcp_nodelay(&c->srv, 1);
	c->creq.data = c;
	if (uv_tcp_connect(&c->creq, &c->srv,
			   (const struct sockaddr *)&fp->upstream,
			   on_connected) != 0) {
		conn_close(c);
		return;
	}
	uv_read_start((uv_stream_t *)&c->cli, on_alloc, on_read);
}

/* ---- control ---------------------------------------------------------- */

static void on_async(uv_async_t *a)
{
	struct gs_fp *fp = a->data;
	bool drop, stop;

	pthread_mutex_lock(&fp->mu);
	drop = fp->want_drop || fp->want_stop;
	stop = fp->want_stop;
	fp->want_drop = false;
	pthread_mutex_unlock(&fp->mu);
	if (drop)
		while (fp->conns != NULL)
			conn_close(fp->conns);
	if (stop) {
		uv_close((uv_handle_t *)&fp->listener, NULL);
		uv_close((uv_handle_t *)&fp->async, NULL);
	}
}

static void *run(void *arg)
{
	struct gs_fp *fp = arg;

	uv_run(&fp->loop, UV_RUN_DEFAULT);
	return NULL;
}

struct gs_fp *gs_fp_start(const char *upstream, bool tls, uint64_t seed)
{
	struct gs_fp *fp = calloc(1, sizeof(*fp));
	struct sockaddr_in sa;
	struct sockaddr_storage bound;
	int len = sizeof(bound);
	const char *colon = strrchr(upstream, ':');

	if (fp == NULL || colon == NULL)
		goto fail;
	fp->tls = tls;
	fp->rng = seed;
	pthread_mutex_init(&fp->mu, NULL);
	if (uv_ip4_addr("127.0.0.1", atoi(colon + 1), &fp->upstream) != 0 ||
	    uv_loop_init(&fp->loop) != 0)
		goto fail;
	uv_tcp_init(&fp->loop, &fp->listener);
	fp->listener.data = fp;
	uv_ip4_addr("127.0.0.1", 0, &sa);
	if (uv_tcp_bind(&fp->listener, (const struct sockaddr *)&sa, 0) != 0 ||
	    uv_listen((uv_stream_t *)&fp->listener, 128, on_accept) != 0 ||
	    uv_tcp_getsockname(&fp->listener, (struct sockaddr *)&bound,
			       &len) != 0)
		goto fail;
	snprintf(fp->addr, sizeof(fp->addr), "127.0.0.1:%d",
		 ntohs(((struct sockaddr_in *)&bound)->sin_port));
	uv_async_init(&fp->loop, &fp->async, on_async);
	fp->async.data = fp;
	if (pthread_create(&fp->thread, NULL, run, fp) != 0)
		goto fail;
	return fp;
fail:
	fprintf(stderr, "faultproxy: cannot start towards %s\n", upstream);
	free(fp);
	return NULL;
}

void gs_fp_log(struct gs_fp *fp, const char *path)
{
	pthread_mutex_lock(&fp->mu);
	fp->log = fopen(path, "w");
	pthread_mutex_unlock(&fp->mu);
}

const char *gs_fp_addr(const struct gs_fp *fp)
{
	return fp->addr;
}

void gs_fp_set(struct gs_fp *fp, const struct gs_fp_fault *fault)
{
	pthread_mutex_lock(&fp->mu);
	if (fault != NULL)
		fp->fault = *fault;
	else
		memset(&fp->fault, 0, sizeof(fp->fault));
	pthread_mutex_unlock(&fp->mu);
}

void gs_fp_set_random(struct gs_fp *fp, unsigned percent)
{
	pthread_mutex_lock(&fp->mu);
	fp->random_pct = percent > 100 ? 100 : percent;
	pthread_mutex_unlock(&fp->mu);
}

void gs_fp_drop_all(struct gs_fp *fp)
{
	pthread_mutex_lock(&fp->mu);
	fp->want_drop = true;
	pthread_mutex_unlock(&fp->mu);
	uv_async_send(&fp->async);
}

void gs_fp_stats(struct gs_fp *fp, struct gs_fp_stats *out)
{
	pthread_mutex_lock(&fp->mu);
	*out = fp->stats;
	pthread_mutex_unlock(&fp->mu);
}

uint64_t gs_fp_last_frames(struct gs_fp *fp, enum gs_fp_dir dir)
{
	uint64_t n;

	pthread_mutex_lock(&fp->mu);
	n = fp->last_frames[dir];
	pthread_mutex_unlock(&fp->mu);
	return n;
}

void gs_fp_stop(struct gs_fp *fp)
{
	if (fp == NULL)
		return;
	pthread_mutex_lock(&fp->mu);
	fp->want_stop = true;
	pthread_mutex_unlock(&fp->mu);
	uv_async_send(&fp->async);
	pthread_join(fp->thread, NULL);
	uv_loop_close(&fp->loop);
	if (fp->log != NULL)
		fclose(fp->log);
	for (int i = 0; i < 2; i++)
		for (unsigned j = 0; j < fp->replay_n[i]; j++)
			free(fp->replay[i][j].data);
	pthread_mutex_destroy(&fp->mu);
	free(fp);
}
