/*
 * gridsyncd serve: one libuv loop, one store connection, one writer.
 *
 * Per connection (happy path): Hello -> check the device is enrolled and
 * not revoked, that the certificate's CN is the device id (TLS), the
 * protocol versions meet and the schema is ours -> Welcome (server time,
 * scope, limits) -> any number of Push (merged by gs__store_push in one
 * durable transaction, then PushAck: the ack is sent only after COMMIT)
 * and Pull (gs__store_pull, Changes) -> the device closes.
 *
 * Failure modes: a device on an older schema gets Error SCHEMA_UPGRADE
 * and nothing it sent is applied or acknowledged; an unknown or revoked
 * device, or a certificate for another device, gets UNAUTHORIZED; a store
 * that cannot commit (disk full, I/O error) answers BUSY with a
 * retry-after and acknowledges nothing; malformed frames close the
 * connection. The journal is appended on a timer (group commit), from the
 * journal intents the store wrote with each merge, so a crash between the
 * store's commit and the git commit loses nothing.
 *
 * Revocation: the Hello is refused for a revoked device, and for a
 * certificate whose serial is not one of the device's current ones (an
 * enrolment retires the earlier certificates). Open sessions are checked
 * again every REVOKE_CHECK_MS whenever another process has written the
 * store (PRAGMA data_version), so `gridsyncd revoke` cuts them within a
 * second; Pings do not keep a revoked session alive.
 *
 * Threads: everything runs on the loop thread except the journal append,
 * which runs on libuv's work queue (git packing would otherwise stall
 * every merge) with a context and a store connection of its own; at most
 * one append is in flight, and none while the loop thread flushes at
 * start and at shutdown.
 */
#define GS_MODULE "server.serve"

#include "serve.h"

#include <signal.h>
#include <stdio.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gridsync/engine.h>
#include <gridsync/schema.h>
#include <gridsync/scope.h>

/* Per connection and per push (docs/SYNC.md, "Bounds"). */
#define PUSH_INFLATE_MAX (16u << 20) /* changeset bytes one Push inflates */
#define WRITE_QUEUE_MAX  (1u << 20)  /* queued reply bytes before pausing */
#define TICK_MS          500u        /* the per-connection watch */
#define TRIM_EVERY_MS    2000u       /* malloc_trim at most this often */
#define MMAP_THRESHOLD   (256u << 10)
#define LOG_ID_MAX       64
#define REVOKE_CHECK_MS  250u /* re-check open sessions */

struct server {
	struct gs_ctx *ctx;
	const struct serve_opts *o;
	uv_loop_t loop;
	struct gs_store *store;
	struct gs_journal *journal;
	struct gs_listener *listener;
	struct gs_tls *tls;
	uv_signal_t sigint;
	uv_signal_t sigterm;
	uv_timer_t journal_timer;
	uv_timer_t revoke_timer;
	sqlite3_stmt *data_version; /* PRAGMA data_version on the store */
	int64_t seen_version;
	/* The journal worker's own context and store connection: used only
	 * by the one job in flight (or by the loop when none is). */
	struct gs_ctx *jctx;
	sqlite3 *jdb;
	uv_work_t journal_job;
	bool journal_busy;
	int journal_rc;
	struct sconn *conns; /* open connections, for shutdown */
	unsigned n_conns;
	bool stopping;
	bool journal_dirty;
	bool crash_after_commit; /* GS_CRASH_AT=push-committed */
	bool trim_due;           /* connections closed since the last trim */
	uint64_t last_trim_ms;
	uint64_t pushes, pulls;
	/* One pair of zstd contexts for every connection (loop thread
	 * only): a context pair costs about 750 KiB, too much to keep per
	 * connection. */
	struct gs_zstd z;
};

struct sconn {
	struct sconn *next, *prev;
	struct server *srv;
	struct gs_conn *conn;
	struct gs_sess sess;
	struct gs_store_device dev;
	bool hello_ok;
	struct gs_buf out;
	/* Watches the Hello deadline, then a peer that stops reading. */
	uv_timer_t tick;
	uint64_t opened_ms;
	uint64_t stall_since_ms; /* 0: replies are leaving */
	size_t stall_queued;
	bool write_paused; /* reading stopped until the replies drain */
	bool closed;
};

static int send_msg(struct sconn *sc, const struct gs_msg *msg)
{
	int rc;

	sc->out.len = 0;
	rc = gs__sess_send(&sc->sess, &sc->out, msg);
	if (rc == GS_OK)
		rc = gs__conn_send(sc->conn, sc->out.data + GS_FRAME_HDR_LEN,
				   sc->out.len - GS_FRAME_HDR_LEN);
	return rc;
}

/* Send an Error and close once it is written. */
static void refuse(struct sconn *sc,
		   enum gs_wire_err code,
		   uint32_t retry_ms,
		   const char *message)
{
	struct gs_msg m;

	memset(&m, 0, sizeof(m));
	m.type = GS_MSG_ERROR;
	m.u.error.code = code;
	m.u.error.message = message;
	m.u.error.retry_after_ms = retry_ms;
	GS_INFO(sc->srv->ctx, "refusing %s: %s",
		sc->dev.id[0] ? sc->dev.id : gs__conn_peer_addr(sc->conn),
		message);
	sc->closed = true;
	if (send_msg(sc, &m) != GS_OK)
		gs__conn_close(sc->conn, GS_EPROTO);
	else
		gs__conn_close(sc->conn, GS_OK);
}

/* A device id as it may appear in a log line: printable ASCII only (an
 * id with a newline must not forge lines), at most LOG_ID_MAX bytes. */
static const char *log_id(char out[LOG_ID_MAX + 1], const char *id)
{
	size_t n = 0;

	for (; id != NULL && id[n] != '\0' && n < LOG_ID_MAX; n++)
		out[n] = id[n] > ' ' && id[n] < 0x7f ? id[n] : '?';
	out[n] = '\0';
	return out;
}

/* A refused Hello is logged at the default level (WARN), with the device
 * id it claimed and the peer address: what an operator needs to see why a
 * device cannot sync, and no personal data. */
static void refuse_hello(struct sconn *sc,
			 const struct gs_msg_hello *h,
			 enum gs_wire_err code,
			 const char *message)
{
	char id[LOG_ID_MAX + 1];

	GS_WARN(sc->srv->ctx, "refused hello from device %s at %s: %s",
		log_id(id, h->device_id), gs__conn_peer_addr(sc->conn),
		message);
	refuse(sc, code, 0, message);
}

static size_t split_scope(const char *scope,
			  const char **codes,
			  size_t max,
			  char *copy,
			  size_t copy_len)
{
	size_t n = 0;
	char *p;

	snprintf(copy, copy_len, "%s", scope);
	for (p = copy; n < max && *p != '\0';) {
		char *end = strchr(p, ',');

		codes[n++] = p;
		if (end == NULL)
			break;
		*end = '\0';
		p = end + 1;
	}
	return n;
}

static void on_hello(struct sconn *sc, const struct gs_msg_hello *h)
{
	struct server *srv = sc->srv;
	const char *peer = gs__conn_peer_id(sc->conn);
	const char *codes[64];
	char copy[1024];
	struct gs_msg m;
	uint32_t version;
	bool allowed = false;
	int rc;

	if (gs__sess_pick_version(h, &version) != GS_OK) {
		refuse_hello(sc, h, GS_WIRE_ERR_VERSION,
			     "no common protocol version: upgrade gridsync");
		return;
	}
	if (h->schema_version != GS_SCHEMA_VERSION) {
		refuse_hello(sc, h, GS_WIRE_ERR_SCHEMA_UPGRADE,
			     h->schema_version < GS_SCHEMA_VERSION
				     ? "this device's schema is older than the "
				       "server's: upgrade gridsync before "
				       "syncing; nothing was applied"
				     : "this device's schema is newer than the "
				       "server's: upgrade gridsyncd");
		return;
	}
	if (!srv->o->insecure &&
	    (peer == NULL || strcmp(peer, h->device_id) != 0)) {
		refuse_hello(sc, h, GS_WIRE_ERR_UNAUTHORIZED,
			     "the certificate does not belong to this device "
			     "id");
		return;
	}
	rc = gs__store_device_get(srv->store, h->device_id, &sc->dev);
	if (rc == GS_OK && !sc->dev.revoked)
		rc = gs__store_device_allowed(srv->store, h->device_id,
					      gs__conn_peer_serial(sc->conn),
					      &allowed);
	if (rc != GS_OK || sc->dev.revoked || !allowed) {
		if (rc != GS_OK && rc != GS_ENOTFOUND)
			GS_ERRORLOG(srv->ctx, "device check for %s: %s",
				    h->device_id, gs_ctx_errmsg(srv->ctx));
		sc->dev.id[0] = '\0';
		refuse_hello(sc, h, GS_WIRE_ERR_UNAUTHORIZED,
			     rc != GS_OK ? "this device is not enrolled"
			     : sc->dev.revoked
				     ? "this device is revoked"
				     : "this certificate was replaced "
				       "or revoked: install the "
				       "device's latest bundle");
		return;
	}
	gs__store_device_seen(srv->store, sc->dev.id);
	sc->dev.cursor = h->cursor;
	memset(&m, 0, sizeof(m));
	/* Sequence numbers are per (device, incarnation); the device is told
	 * what the server holds of its incarnation, so that it can send again
	 * what a restored server lost, or renumber what collides. */
	if (h->incarnation != NULL) {
		uint64_t held = 0;

		rc = gs__store_incarnation(srv->store, sc->dev.id,
					   h->incarnation, &sc->dev.seq_base,
					   &held);
		if (rc != GS_OK) {
			GS_ERRORLOG(srv->ctx, "hello from %s: %s", sc->dev.id,
				    gs_ctx_errmsg(srv->ctx));
			refuse(sc, GS_WIRE_ERR_BUSY, 5000,
			       "the server could not read its sequence state;"
			       " retry later");
			return;
		}
		sc->dev.incarnation = true;
		m.u.welcome.has_held_seq = true;
		m.u.welcome.held_seq = held;
		if (h->has_acked_seq && h->acked_seq != held)
			GS_INFO(srv->ctx,
				"device %s: holds %llu of its entries, it saw"
				" %llu acknowledged",
				sc->dev.id, (unsigned long long)held,
				(unsigned long long)h->acked_seq);
	}
	m.type = GS_MSG_WELCOME;
	m.u.welcome.proto_version = version;
	m.u.welcome.server_id = gs__store_server_id(srv->store);
	m.u.welcome.server_time_ms = (uint64_t)gs__clock_wall_ms(srv->ctx);
	m.u.welcome.n_scope =
		split_scope(sc->dev.scope, codes, 64, copy, sizeof(copy));
	m.u.welcome.scope = codes;
	m.u.welcome.limits.max_frame_bytes = GS_FRAME_MAX_DEFAULT;
	m.u.welcome.limits.max_push_entries = GS_WIRE_PUSH_ENTRIES_DEFAULT;
	m.u.welcome.limits.pull_byte_budget = 1u << 20;
	m.u.welcome.schema_version = GS_SCHEMA_VERSION;
	m.u.welcome.suite = GS_SUITE_V1;
	/* The scope is the server's: its version tells the device when to
	 * rescope, the cut-offs what has aged out (docs/SYNC.md). */
	m.u.welcome.scope_version =
		sc->dev.scope_version > 0 ? sc->dev.scope_version : 1;
	{
		int64_t vs;
		int64_t cs;

		gs__store_scope_cutoffs((int64_t)m.u.welcome.server_time_ms,
					&vs, &cs);
		m.u.welcome.visits_since_ms = vs > 0 ? (uint64_t)vs : 1;
		m.u.welcome.closed_since_ms = cs > 0 ? (uint64_t)cs : 1;
	}
	sc->hello_ok = true;
	if (send_msg(sc, &m) != GS_OK)
		gs__conn_close(sc->conn, GS_EPROTO);
}

static void on_push(struct sconn *sc, const struct gs_msg_push *p)
{
	struct server *srv = sc->srv;
	struct gs_store_entry *e = NULL;
	struct gs_store_push_out out;
	struct gs_buf *bufs = NULL;
	struct gs_msg m;
	uint64_t inflated = 0;
	char why[160];
	int rc = GS_OK;

	memset(&out, 0, sizeof(out));
	if (p->schema_version != GS_SCHEMA_VERSION) {
		refuse(sc, GS_WIRE_ERR_SCHEMA_UPGRADE, 0,
		       "push in another schema version: upgrade gridsync; "
		       "nothing was applied");
		return;
	}
	/* The budget is judged on the sizes the entries declare (which
	 * inflation then holds them to), before a byte is inflated. The
	 * client's batches stay far below it. */
	for (size_t i = 0; i < p->n_entries; i++) {
		const struct gs_push_entry *pe = &p->entries[i];

		inflated += pe->compression == GS_COMP_ZSTD
				    ? pe->uncompressed_len
				    : pe->changeset_len;
	}
	if (inflated > PUSH_INFLATE_MAX) {
		char id[LOG_ID_MAX + 1];

		snprintf(why, sizeof(why),
			 "push declares %llu changeset bytes, above the "
			 "server's budget of %u per push; nothing was applied",
			 (unsigned long long)inflated, PUSH_INFLATE_MAX);
		GS_WARN(srv->ctx, "device %s: %s", log_id(id, sc->dev.id), why);
		refuse(sc, GS_WIRE_ERR_LIMIT, 0, why);
		return;
	}
	e = gs__calloc(srv->ctx, p->n_entries + 1, sizeof(*e));
	bufs = gs__calloc(srv->ctx, p->n_entries + 1, sizeof(*bufs));
	if (e == NULL || bufs == NULL)
		rc = GS_ENOMEM;
	for (size_t i = 0; rc == GS_OK && i < p->n_entries; i++) {
		const struct gs_push_entry *pe = &p->entries[i];

		gs__buf_init(&bufs[i], srv->ctx, GS_FRAME_MAX_CEILING);
		rc = gs__changeset_unpack(&bufs[i], &srv->z, pe->compression,
					  pe->changeset, pe->changeset_len,
					  pe->uncompressed_len, NULL);
		e[i].device_seq = pe->device_seq;
		e[i].hlc = pe->hlc;
		e[i].changeset = bufs[i].data;
		e[i].len = bufs[i].len;
		e[i].sha256 = pe->sha256;
	}
	if (rc == GS_OK)
		rc = gs__store_push(srv->store, &sc->dev, e, p->n_entries,
				    &out);
	for (size_t i = 0; bufs != NULL && i < p->n_entries; i++)
		gs__buf_fini(&bufs[i]);
	gs__free(srv->ctx, bufs);
	gs__free(srv->ctx, e);
	if (rc == GS_EPROTO) {
		refuse(sc, GS_WIRE_ERR_PROTOCOL, 0, gs_ctx_errmsg(srv->ctx));
		gs__store_push_out_fini(&out);
		return;
	}
	if (rc != GS_OK) {
		/* Nothing was made durable: acknowledge nothing, and ask the
		 * device to come back (disk full, I/O error, busy). */
		GS_ERRORLOG(srv->ctx, "push from %s not stored: %s%s%s",
			    sc->dev.id,
			    rc == GS_EFULL ? "disk full: free space on the "
					     "disk of "
					   : "",
			    rc == GS_EFULL ? srv->o->db_path : "",
			    rc == GS_EFULL ? "" : gs_ctx_errmsg(srv->ctx));
		refuse(sc, GS_WIRE_ERR_BUSY, 5000,
		       rc == GS_EFULL ? "the server's disk is full: nothing "
					"was stored; retry later"
				      : "the server could not store the "
					"upload; retry later");
		gs__store_push_out_fini(&out);
		return;
	}
	/* Crash point for fault tests (SQLite-style CRASH_AT): the push is
	 * durable, the ack not yet sent. */
	if (srv->crash_after_commit)
		_exit(99);
	srv->pushes++;
	srv->journal_dirty = true;
	memset(&m, 0, sizeof(m));
	m.type = GS_MSG_PUSH_ACK;
	m.u.push_ack.durable_seq = out.durable_seq;
	m.u.push_ack.results = out.results;
	m.u.push_ack.n_results = out.n_results;
	m.u.push_ack.conflicts = out.conflicts;
	m.u.push_ack.n_conflicts = out.n_conflicts;
	if (send_msg(sc, &m) != GS_OK)
		gs__conn_close(sc->conn, GS_EPROTO);
	gs__store_push_out_fini(&out);
}

static void on_pull(struct sconn *sc, const struct gs_msg_pull *p)
{
	struct server *srv = sc->srv;
	struct gs_store_pull_out out;
	struct gs_buf packed;
	struct gs_change ch;
	struct gs_msg m;
	enum gs_compression comp = GS_COMP_NONE;
	size_t budget = p->byte_budget;
	int rc;

	if (budget == 0 || budget > (4u << 20))
		budget = 1u << 20;
	gs__store_pull_out_init(&out, srv->ctx);
	gs__buf_init(&packed, srv->ctx, GS_FRAME_MAX_CEILING);
	/* The device applied its scope: edits under the old one are in. */
	rc = gs__store_scope_applied(srv->store, &sc->dev, p->scope_version);
	if (rc == GS_OK)
		rc = gs__store_pull(srv->store, &sc->dev, p->after_seq, budget,
				    &out);
	if (rc == GS_OK && out.changeset.len > 0)
		rc = gs__changeset_pack(&packed, &comp, &srv->z,
					out.changeset.data, out.changeset.len);
	if (rc != GS_OK) {
		GS_ERRORLOG(srv->ctx, "pull for %s failed: %s", sc->dev.id,
			    gs_ctx_errmsg(srv->ctx));
		refuse(sc, GS_WIRE_ERR_BUSY, 2000, "pull failed; retry later");
		goto out;
	}
	srv->pulls++;
	memset(&m, 0, sizeof(m));
	memset(&ch, 0, sizeof(ch));
	m.type = GS_MSG_CHANGES;
	m.u.changes.schema_version = GS_SCHEMA_VERSION;
	m.u.changes.next_cursor =
		out.next_cursor > p->after_seq ? out.next_cursor : p->after_seq;
	m.u.changes.more = out.more;
	m.u.changes.conflicts = out.conflicts;
	m.u.changes.n_conflicts = out.n_conflicts;
	m.u.changes.left = out.left;
	m.u.changes.n_left = out.n_left;
	if (out.n_rows > 0) {
		ch.server_seq = out.next_cursor;
		ch.hlc = out.hlc;
		ch.origin = gs__store_server_id(srv->store);
		ch.compression = comp;
		ch.uncompressed_len = (uint32_t)out.changeset.len;
		ch.changeset =
			comp == GS_COMP_ZSTD ? packed.data : out.changeset.data;
		ch.changeset_len =
			comp == GS_COMP_ZSTD ? packed.len : out.changeset.len;
		m.u.changes.entries = &ch;
		m.u.changes.n_entries = 1;
	}
	if (send_msg(sc, &m) != GS_OK)
		gs__conn_close(sc->conn, GS_EPROTO);
out:
	gs__buf_fini(&packed);
	gs__store_pull_out_fini(&out);
}

/*
 * One request per connection per loop turn: after each, the connection
 * is paused and resumed on a later turn (gs__conn_pause delivers from an
 * idle handle), so a peer that pipelines thousands of requests takes its
 * turn with every other connection instead of holding the loop. While
 * its replies pile up unread (more than WRITE_QUEUE_MAX queued), it stays
 * paused until they drain; the tick closes it if they stop moving.
 */
static void after_request(struct sconn *sc)
{
	if (sc->closed)
		return;
	if (gs__conn_queued(sc->conn) > WRITE_QUEUE_MAX) {
		sc->write_paused = true;
		gs__conn_pause(sc->conn, true);
		return;
	}
	gs__conn_yield(sc->conn);
}

static void on_drain(struct gs_conn *c, void *payload)
{
	struct sconn *sc = payload;

	if (!sc->write_paused)
		return;
	sc->write_paused = false;
	sc->stall_since_ms = 0;
	gs__conn_pause(c, false);
}

/* The connection's watch: no Hello within the handshake deadline (a
 * trickled Hello too), or replies that stopped leaving for stall_ms. */
static void on_tick(uv_timer_t *t)
{
	struct sconn *sc = t->data;
	struct server *srv = sc->srv;
	uint64_t now = uv_now(&srv->loop);
	size_t queued = gs__conn_queued(sc->conn);

	if (sc->closed)
		return;
	if (!sc->hello_ok && now - sc->opened_ms >= srv->o->handshake_ms) {
		GS_WARN(srv->ctx,
			"closing %s: no Hello within %llu ms of connecting",
			gs__conn_peer_addr(sc->conn),
			(unsigned long long)srv->o->handshake_ms);
		refuse(sc, GS_WIRE_ERR_PROTOCOL, 0,
		       "no Hello within the handshake deadline");
		return;
	}
	if (queued == 0 || !sc->write_paused) {
		sc->stall_since_ms = 0;
		return;
	}
	if (sc->stall_since_ms == 0 || queued < sc->stall_queued) {
		sc->stall_since_ms = now; /* first seen, or moving again */
		sc->stall_queued = queued;
		return;
	}
	if (now - sc->stall_since_ms >= srv->o->stall_ms) {
		char id[LOG_ID_MAX + 1];

		GS_WARN(srv->ctx,
			"closing device %s at %s: %zu reply bytes unread for "
			"%llu ms",
			log_id(id, sc->dev.id), gs__conn_peer_addr(sc->conn),
			queued, (unsigned long long)srv->o->stall_ms);
		sc->closed = true;
		gs__conn_close(sc->conn, GS_ETIMEDOUT);
	}
}

static void
on_frame(struct gs_conn *c, const uint8_t *data, size_t len, void *payload)
{
	struct sconn *sc = payload;
	struct gs_msg *msg = NULL;
	struct gs_msg pong;

	(void)c;
	if (gs__sess_recv(&sc->sess, data, len, &msg) != GS_OK) {
		GS_INFO(sc->srv->ctx, "closing %s: %s",
			gs__conn_peer_addr(sc->conn),
			gs_ctx_errmsg(sc->srv->ctx));
		refuse(sc, GS_WIRE_ERR_PROTOCOL, 0,
		       gs_ctx_errmsg(sc->srv->ctx));
		return;
	}
	switch (msg->type) {
	case GS_MSG_HELLO:
		on_hello(sc, &msg->u.hello);
		break;
	case GS_MSG_PUSH:
		on_push(sc, &msg->u.push);
		break;
	case GS_MSG_PULL:
		on_pull(sc, &msg->u.pull);
		break;
	case GS_MSG_PING:
		memset(&pong, 0, sizeof(pong));
		pong.type = GS_MSG_PONG;
		pong.u.ping = msg->u.ping;
		pong.u.ping.time_ms = (uint64_t)gs__clock_wall_ms(sc->srv->ctx);
		send_msg(sc, &pong);
		break;
	case GS_MSG_ERROR:
		gs__conn_close(sc->conn, GS_OK);
		break;
	default:
		break;
	}
	gs__msg_free(msg);
	after_request(sc);
}

static void on_tick_closed(uv_handle_t *h)
{
	struct sconn *sc = h->data;

	gs__free(sc->srv->ctx, sc);
}

static void on_conn_close(struct gs_conn *c, int status, void *payload)
{
	struct sconn *sc = payload;
	struct server *srv = sc->srv;

	(void)c;
	GS_DEBUG(srv->ctx, "connection closed (%s)", gs_errname(status));
	if (sc->prev != NULL)
		sc->prev->next = sc->next;
	else
		srv->conns = sc->next;
	if (sc->next != NULL)
		sc->next->prev = sc->prev;
	gs__buf_fini(&sc->out);
	sc->closed = true;
	sc->conn = NULL;
	srv->n_conns--;
	srv->trim_due = true;
	uv_close((uv_handle_t *)&sc->tick, on_tick_closed);
}

static void on_accept(struct gs_listener *l, struct gs_conn *c, void *payload)
{
	struct server *srv = payload;
	struct gs_conn_cbs cbs = { NULL, on_frame, on_drain, on_conn_close,
				   NULL };
	struct sconn *sc = gs__calloc(srv->ctx, 1, sizeof(*sc));

	(void)l;
	if (sc == NULL) {
		gs__conn_close(c, GS_ENOMEM);
		return;
	}
	sc->srv = srv;
	sc->conn = c;
	gs__sess_init(&sc->sess, srv->ctx, true);
	gs__buf_init(&sc->out, srv->ctx, GS_FRAME_MAX_CEILING);
	sc->opened_ms = uv_now(&srv->loop);
	GS_ASSERT(uv_timer_init(&srv->loop, &sc->tick) == 0);
	sc->tick.data = sc;
	uv_timer_start(&sc->tick, on_tick, TICK_MS, TICK_MS);
	cbs.payload = sc;
	gs__conn_set_cbs(c, &cbs);
	sc->next = srv->conns;
	if (srv->conns != NULL)
		srv->conns->prev = sc;
	srv->conns = sc;
	srv->n_conns++;
}

/* Append pending journal intents now, on the calling thread. */
static int journal_append(struct server *srv)
{
	size_t n = 0;

	return gs__journal_sync(srv->journal, srv->jdb, 0, &n);
}

static void journal_work(uv_work_t *req)
{
	struct server *srv = req->data;

	srv->journal_rc = journal_append(srv);
}

static void journal_after(uv_work_t *req, int status)
{
	struct server *srv = req->data;

	srv->journal_busy = false;
	if (status != 0 || srv->journal_rc != GS_OK) {
		/* The intents stay in the store; the next tick retries. */
		srv->journal_dirty = true;
		GS_ERRORLOG(srv->ctx, "journal: %s",
			    status != 0 ? "canceled"
					: gs_ctx_errmsg(srv->jctx));
	}
}

/* Start an append on the work queue if there is something to append and
 * none is running. */
static void journal_kick(struct server *srv)
{
	if (srv->journal == NULL || !srv->journal_dirty || srv->journal_busy)
		return;
	srv->journal_dirty = false;
	srv->journal_busy = true;
	srv->journal_job.data = srv;
	if (uv_queue_work(&srv->loop, &srv->journal_job, journal_work,
			  journal_after) != 0) {
		srv->journal_busy = false;
		srv->journal_dirty = true;
	}
}

/* Append synchronously (start and shutdown, with no job in flight). */
static void journal_flush(struct server *srv)
{
	if (srv->journal == NULL || srv->journal_busy)
		return;
	srv->journal_dirty = false;
	if (journal_append(srv) != GS_OK) {
		srv->journal_dirty = true;
		GS_ERRORLOG(srv->ctx, "journal: %s", gs_ctx_errmsg(srv->jctx));
	}
}

/* Give freed memory back to the system once connections have come and
 * gone (a storm of devices leaves the heap at its peak otherwise). */
static void trim_memory(struct server *srv)
{
	uint64_t now = uv_now(&srv->loop);

	if (!srv->trim_due || now - srv->last_trim_ms < TRIM_EVERY_MS)
		return;
	srv->trim_due = false;
	srv->last_trim_ms = now;
#ifdef __GLIBC__
	malloc_trim(0);
#endif
}

static void on_journal_tick(uv_timer_t *t)
{
	journal_kick(t->data);
	trim_memory(t->data);
}

/* Has another connection (gridsyncd revoke, enroll) committed to the
 * store since the last look? Errors count as yes: check anyway. */
static bool store_changed(struct server *srv)
{
	int64_t v = -1;

	if (srv->data_version == NULL &&
	    gs__db_prepare(srv->ctx, gs__store_db(srv->store),
			   &srv->data_version, "PRAGMA data_version") != GS_OK)
		return true;
	if (sqlite3_step(srv->data_version) == SQLITE_ROW)
		v = sqlite3_column_int64(srv->data_version, 0);
	sqlite3_reset(srv->data_version); /* hold no read snapshot */
	if (v >= 0 && v == srv->seen_version)
		return false;
	srv->seen_version = v;
	return true;
}

/* Cut every open session whose device or certificate is no longer
 * allowed. */
static void on_revoke_tick(uv_timer_t *t)
{
	struct server *srv = t->data;
	struct sconn *next;

	if (!store_changed(srv))
		return;
	for (struct sconn *sc = srv->conns; sc != NULL; sc = next) {
		bool ok = false;

		next = sc->next;
		if (!sc->hello_ok || sc->closed)
			continue;
		if (gs__store_device_allowed(srv->store, sc->dev.id,
					     gs__conn_peer_serial(sc->conn),
					     &ok) != GS_OK) {
			srv->seen_version = -1; /* look again next tick */
			continue;
		}
		if (!ok) {
			GS_INFO(srv->ctx,
				"device %s revoked: closing its "
				"session",
				sc->dev.id);
			refuse(sc, GS_WIRE_ERR_UNAUTHORIZED, 0,
			       "this device was revoked");
		}
	}
}

static void on_listener_closed(void *payload)
{
	(void)payload;
}

static void on_signal(uv_signal_t *s, int signum)
{
	struct server *srv = s->data;

	(void)signum;
	if (srv->stopping)
		return;
	srv->stopping = true;
	GS_INFO(srv->ctx, "stopping");
	gs__listener_close(srv->listener, on_listener_closed, NULL);
	srv->listener = NULL;
	uv_timer_stop(&srv->journal_timer);
	uv_close((uv_handle_t *)&srv->journal_timer, NULL);
	uv_timer_stop(&srv->revoke_timer);
	uv_close((uv_handle_t *)&srv->revoke_timer, NULL);
	uv_close((uv_handle_t *)&srv->sigint, NULL);
	uv_close((uv_handle_t *)&srv->sigterm, NULL);
	/* The loop ends once every connection's close callback has run. */
	for (struct sconn *sc = srv->conns; sc != NULL; sc = sc->next)
		gs__conn_close(sc->conn, GS_ECANCELED);
}

static int write_ready(struct gs_ctx *ctx, const char *path, int port)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%d\n", port);

	return gs__fs_write_atomic(ctx, path, buf, (size_t)n);
}

int serve_run(struct gs_ctx *ctx, const struct serve_opts *o)
{
	struct server srv;
	struct gs_conn_opts copts = { 0 };
	char ca[4096], cert[4096], key[4096];
	int rc;

	memset(&srv, 0, sizeof(srv));
	srv.ctx = ctx;
	srv.o = o;
	gs__zstd_init(&srv.z, ctx);
#ifdef __GLIBC__
	/* Buffers of a push or pull (up to megabytes) get pages of their own
	 * that go back to the system when freed, instead of raising glibc's
	 * adaptive threshold and staying in the heap. */
	mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD);
#endif
	srv.crash_after_commit =
		getenv("GS_CRASH_AT") != NULL &&
		strcmp(getenv("GS_CRASH_AT"), "push-committed") == 0;
	if (uv_loop_init(&srv.loop) != 0)
		return gs__err(ctx, GS_ENOMEM, "uv_loop_init failed");
	rc = gs__store_open(&srv.store, ctx, o->db_path, 0);
	if (rc == GS_OK && o->journal_dir != NULL) {
		struct gs_ctx_opts jo = GS_CTX_OPTS_INIT;

		jo.log_fn = gs_log_stderr;
		rc = gs_ctx_new(&srv.jctx, &jo);
		if (rc == GS_OK)
			rc = gs__db_open(&srv.jdb, srv.jctx, o->db_path, 0);
		if (rc == GS_OK)
			rc = gs__journal_open(&srv.journal, srv.jctx,
					      o->journal_dir);
		if (rc != GS_OK && srv.jctx != NULL)
			gs__err(ctx, rc, "journal: %s",
				gs_ctx_errmsg(srv.jctx));
	}
	/* Intents left by a crash or a restart are appended by the worker
	 * while the server already serves (a large backlog takes seconds). */
	if (rc == GS_OK && srv.journal != NULL)
		srv.journal_dirty = true;
	if (rc == GS_OK && !o->insecure) {
		snprintf(ca, sizeof(ca), "%s/ca.pem", o->pki_dir);
		snprintf(cert, sizeof(cert), "%s/server.pem", o->pki_dir);
		snprintf(key, sizeof(key), "%s/server.key", o->pki_dir);
		rc = gs__tls_server_new(&srv.tls, ctx, ca, cert, key);
	}
	copts.tls = srv.tls;
	copts.idle_ms = o->idle_ms;
	copts.handshake_ms = o->handshake_ms;
	if (rc == GS_OK)
		rc = gs__listen(&srv.listener, ctx, &srv.loop, o->listen,
				&copts, on_accept, &srv);
	if (rc == GS_OK && o->ready_file != NULL)
		rc = write_ready(ctx, o->ready_file,
				 gs__listener_port(srv.listener));
	if (rc == GS_OK) {
		uv_signal_init(&srv.loop, &srv.sigint);
		uv_signal_init(&srv.loop, &srv.sigterm);
		srv.sigint.data = srv.sigterm.data = &srv;
		uv_signal_start(&srv.sigint, on_signal, SIGINT);
		uv_signal_start(&srv.sigterm, on_signal, SIGTERM);
		uv_timer_init(&srv.loop, &srv.journal_timer);
		srv.journal_timer.data = &srv;
		uv_timer_start(&srv.journal_timer, on_journal_tick,
			       o->journal_every_ms, o->journal_every_ms);
		journal_kick(&srv);
		uv_timer_init(&srv.loop, &srv.revoke_timer);
		srv.revoke_timer.data = &srv;
		srv.seen_version = -1;
		uv_timer_start(&srv.revoke_timer, on_revoke_tick,
			       REVOKE_CHECK_MS, REVOKE_CHECK_MS);
		fprintf(stderr, "gridsyncd: serving %s on port %d (%s)\n",
			o->db_path, gs__listener_port(srv.listener),
			o->insecure ? "plain TCP, --insecure" : "TLS 1.3");
		uv_run(&srv.loop, UV_RUN_DEFAULT);
		journal_flush(&srv);
	}
	if (srv.listener != NULL) {
		gs__listener_close(srv.listener, on_listener_closed, NULL);
		uv_run(&srv.loop, UV_RUN_DEFAULT);
	}
	uv_loop_close(&srv.loop);
	sqlite3_finalize(srv.data_version);
	gs__tls_free(srv.tls);
	gs__journal_close(srv.journal);
	gs__db_close(srv.jdb);
	gs_ctx_free(srv.jctx);
	gs__store_close(srv.store);
	gs__zstd_fini(&srv.z);
	return rc;
}
