/*
 * `gridsync sync` on the handheld: one libuv loop per call.
 *
 * Happy path: connect (TLS with the device certificate from enrolment, or
 * plain TCP with --insecure) -> Hello (device id, schema version, cursor)
 * -> Welcome (server time moves our clock, limits) -> Push the outbox in
 * batches, each PushAck recorded in one transaction (acknowledged entries
 * leave the outbox; rejected ones are kept for undo and explained in
 * gs_conflict) -> Pull until caught up, each Changes entry applied under
 * the pending outbox (sync/apply.c) -> orderly close.
 *
 * Failure modes: a network error or a deadline ends the attempt; entries
 * not acknowledged stay in the outbox and are pushed again next time (the
 * server deduplicates by device and sequence number), and the cursor only
 * moves with the rows it covers, so a sync can stop at any byte and
 * resume. Retries back off exponentially with jitter. A protocol error, a
 * refused certificate or a schema the server does not accept is not
 * retried.
 */
#define GS_MODULE "client.sync"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gridsync/apply.h>
#include <gridsync/engine.h>
#include <gridsync/hlc.h>
#include <gridsync/outbox.h>
#include <gridsync/purge.h>
#include <gridsync/schema.h>
#include <gridsync/transport.h>
#include <gridsync/wire.h>

#include "device_impl.h"

#define APP_VERSION "gridsync/0.1"
#define PULL_BUDGET (1u << 20)

struct run {
	struct gs_device *dev;
	struct gs_ctx *ctx;
	uv_loop_t loop;
	uv_timer_t deadline;
	struct gs_conn *conn;
	struct gs_sess sess;
	struct gs_buf out;
	struct gs_zstd z;
	const struct gs_sync_opts *opts;
	struct gs_sync_summary *sum;
	uint64_t pushed_upto; /* highest seq sent this attempt */
	uint64_t cursor;
	int64_t hello_ms;  /* device wall clock when Hello left */
	char *incarnation; /* this database's, sent in Hello */
	bool have_held;    /* the server said what it holds of us */
	uint64_t held;     /* ... the last device_seq of this incarnation */
	uint64_t collided; /* entries refused: seq used with other content */
	bool reconnect;    /* renumbered under a new incarnation: again */
	/* Server-owned scope (Welcome): the version applied here, the one
	 * being applied, and the ageing cut-offs. */
	bool server_scope;
	bool rescoping;
	uint64_t scope_applied;
	uint64_t scope_target;
	int64_t visits_since_ms;
	int64_t closed_since_ms;
	int status; /* result of the attempt */
	bool retryable;
	bool finished;
	/* The server's Error, which the close that follows must not hide
	 * ("disk is full" says more than "connection closed"). */
	char why[GS_WIRE_TEXT_MAX + 16];
};

static void progress(struct run *r, const char *phase)
{
	if (r->opts->progress != NULL)
		r->opts->progress(phase, r->sum, r->opts->payload);
}

/* End the attempt with status (GS_OK when caught up). */
static void finish(struct run *r, int status, bool retryable)
{
	if (r->finished)
		return;
	r->finished = true;
	r->status = status;
	r->retryable = retryable;
	uv_timer_stop(&r->deadline);
	if (r->conn != NULL)
		gs__conn_close(r->conn, status == GS_OK ? GS_OK : status);
}

static int send_msg(struct run *r, const struct gs_msg *msg)
{
	int rc;

	r->out.len = 0;
	rc = gs__sess_send(&r->sess, &r->out, msg);
	if (rc == GS_OK)
		rc = gs__conn_send(r->conn, r->out.data + GS_FRAME_HDR_LEN,
				   r->out.len - GS_FRAME_HDR_LEN);
	if (rc == GS_OK)
		r->sum->bytes_up += r->out.len;
	return rc;
}

static int send_hello(struct run *r)
{
	struct gs_msg m;

	memset(&m, 0, sizeof(m));
	m.type = GS_MSG_HELLO;
	m.u.hello.proto_min = GS_PROTO_VERSION_MIN;
	m.u.hello.proto_max = GS_PROTO_VERSION_MAX;
	m.u.hello.device_id = r->dev->device_id;
	m.u.hello.schema_version = GS_SCHEMA_VERSION;
	m.u.hello.app_version = APP_VERSION;
	m.u.hello.cursor = r->cursor;
	m.u.hello.suite = GS_SUITE_V1;
	m.u.hello.incarnation = r->incarnation;
	m.u.hello.has_acked_seq = gs__seq_floor(r->ctx, r->dev->db,
						&m.u.hello.acked_seq) == GS_OK;
	r->hello_ms = gs__clock_wall_ms(r->ctx);
	return send_msg(r, &m);
}

static int send_pull(struct run *r)
{
	struct gs_msg m;

	memset(&m, 0, sizeof(m));
	m.type = GS_MSG_PULL;
	m.u.pull.after_seq = r->cursor;
	m.u.pull.byte_budget = PULL_BUDGET;
	m.u.pull.scope_version = r->scope_applied;
	progress(r, "pull");
	return send_msg(r, &m);
}

static int note(struct run *r, const char *reason)
{
	sqlite3_stmt *st = NULL;
	int rc = gs__db_prepare(r->ctx, r->dev->db, &st,
				"INSERT INTO gs_conflict (device_seq, tbl, pk,"
				" col, reason, at) VALUES (NULL, '', '', NULL,"
				" ?, ?)");

	if (rc == GS_OK) {
		sqlite3_bind_text(st, 1, reason, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, gs__clock_wall_ms(r->ctx));
		rc = gs__db_step_done(r->ctx, r->dev->db, st);
	}
	sqlite3_finalize(st);
	return rc;
}

/* Run fn in one write transaction. */
static int in_txn(struct run *r, int (*fn)(struct run *r, void *), void *p)
{
	int rc = gs__db_exec(r->ctx, r->dev->db, "BEGIN IMMEDIATE");

	if (rc == GS_OK)
		rc = fn(r, p);
	if (rc == GS_OK)
		rc = gs__db_exec(r->ctx, r->dev->db, "COMMIT");
	if (rc != GS_OK)
		sqlite3_exec(r->dev->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

/* A new incarnation: a new id, the pending entries numbered from 1. */
static int restart(struct run *r, void *p)
{
	char id[2 * 16 + 1];
	char why[400];
	int rc;

	(void)p;
	rc = gs__device_new_incarnation(r->dev, id);
	if (rc == GS_OK)
		rc = gs__outbox_restart(r->ctx, r->dev->db);
	snprintf(why, sizeof(why),
		 "sequence numbers: the server holds %llu entries of this "
		 "database and %llu of ours were used with other content "
		 "(restored from an older copy, or re-initialised): pending "
		 "entries renumbered under a new incarnation, nothing lost",
		 (unsigned long long)r->held, (unsigned long long)r->collided);
	if (rc == GS_OK)
		rc = note(r, why);
	if (rc == GS_OK) {
		gs__free(r->ctx, r->incarnation);
		r->incarnation = gs__strdup(r->ctx, id);
		rc = r->incarnation != NULL ? GS_OK : GS_ENOMEM;
	}
	return rc;
}

/*
 * After the last push of an attempt: if the server holds entries of this
 * incarnation that this database never had (it was restored from an older
 * copy) or refused ours because their numbers were used with other
 * content, numbering starts again under a new incarnation and the attempt
 * ends with reconnect set, so the entries go out again at once.
 */
static int numbering_check(struct run *r)
{
	uint64_t floor = 0;
	int rc;

	if (!r->have_held)
		return GS_OK;
	rc = gs__seq_floor(r->ctx, r->dev->db, &floor);
	if (rc != GS_OK || (r->collided == 0 && r->held <= floor))
		return rc;
	GS_WARN(r->ctx,
		"the server holds %llu entries of this database, it knows "
		"%llu: starting a new incarnation",
		(unsigned long long)r->held, (unsigned long long)floor);
	rc = in_txn(r, restart, NULL);
	if (rc == GS_OK)
		r->reconnect = true;
	return rc;
}

struct lost {
	uint64_t floor;
};

/* The server lost entries it had acknowledged: send their rows again. */
static int resend(struct run *r, void *p)
{
	struct lost *l = p;
	struct gs_outbox_report rep = { 0, 0, 0 };
	uint64_t unknown = 0;
	char why[400];
	int rc = gs__outbox_resend_lost(r->ctx, r->dev->db, r->held, l->floor,
					&rep, &unknown);

	snprintf(why, sizeof(why),
		 "the server holds entries of this database up to %llu, "
		 "it had acknowledged up to %llu (restored from a backup?): "
		 "%zu row(s) sent again from the tables as %zu entries%s",
		 (unsigned long long)r->held, (unsigned long long)l->floor,
		 rep.recaptured, rep.entries,
		 unknown > 0 ? "; some older entries' rows are not known "
			       "here (gridsync outbox recover TABLE ID)"
			     : "");
	if (rc == GS_OK)
		rc = note(r, why);
	if (rc == GS_OK)
		r->sum->recaptured += rep.recaptured;
	return rc;
}

/* The next batch of pending entries after pushed_upto: as many as the
 * negotiated limits allow. Sends a Pull instead when none is left. */
static int send_push(struct run *r)
{
	struct gs_push_entry *e = NULL;
	struct gs_buf packed;
	sqlite3_stmt *st = NULL;
	size_t max = r->sess.lim.max_push_entries;
	size_t budget = r->sess.lim.max_frame / 2;
	size_t n = 0;
	size_t bytes = 0;
	size_t *offs = NULL;
	struct gs_msg m;
	int rc;

	e = gs__calloc(r->ctx, max, sizeof(*e));
	offs = gs__calloc(r->ctx, max, sizeof(*offs));
	gs__buf_init(&packed, r->ctx, r->sess.lim.max_frame);
	if (e == NULL || offs == NULL) {
		rc = GS_ENOMEM;
		goto out;
	}
	rc = gs__db_prepare(r->ctx, r->dev->db, &st,
			    "SELECT seq, hlc, sha256, changeset FROM gs_outbox"
			    " WHERE status = 0 AND seq > ? ORDER BY seq");
	if (rc != GS_OK)
		goto out;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)r->pushed_upto);
	while (n < max && sqlite3_step(st) == SQLITE_ROW) {
		const uint8_t *cs = sqlite3_column_blob(st, 3);
		size_t len = (size_t)sqlite3_column_bytes(st, 3);
		size_t before = packed.len;
		enum gs_compression comp = GS_COMP_NONE;

		if (n > 0 && bytes + len > budget)
			break;
		rc = gs__changeset_pack(&packed, &comp, &r->z, cs, len);
		if (rc == GS_OK && comp == GS_COMP_NONE)
			rc = gs__buf_append(&packed, cs, len);
		if (rc != GS_OK)
			goto out;
		e[n].device_seq = (uint64_t)sqlite3_column_int64(st, 0);
		e[n].hlc = (uint64_t)sqlite3_column_int64(st, 1);
		memcpy(e[n].sha256, sqlite3_column_blob(st, 2), GS_SHA256_LEN);
		e[n].compression = comp;
		e[n].uncompressed_len = (uint32_t)len;
		e[n].changeset_len = packed.len - before;
		offs[n] = before;
		bytes += e[n].changeset_len;
		n++;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (n == 0) {
		rc = numbering_check(r);
		if (rc == GS_OK && r->reconnect)
			finish(r, GS_OK, false);
		else if (rc == GS_OK)
			rc = send_pull(r);
		goto out;
	}
	/* packed.data may have moved while growing: point at it now. */
	for (size_t i = 0; i < n; i++)
		e[i].changeset = packed.data + offs[i];
	memset(&m, 0, sizeof(m));
	m.type = GS_MSG_PUSH;
	m.u.push.schema_version = GS_SCHEMA_VERSION;
	m.u.push.entries = e;
	m.u.push.n_entries = n;
	rc = send_msg(r, &m);
	if (rc == GS_OK) {
		r->pushed_upto = e[n - 1].device_seq;
		r->sum->pushed += n;
		progress(r, "push");
	}
out:
	sqlite3_finalize(st);
	gs__buf_fini(&packed);
	gs__free(r->ctx, offs);
	gs__free(r->ctx, e);
	return rc;
}

/*
 * The device's clock against the server's: the server's time in Welcome
 * against the middle of Hello's round trip on our clock (off by at most
 * half the round trip). Kept in gs_meta for `gridsync status`, and in the
 * summary, which warns past GS_CLOCK_SKEW_WARN_MS on every sync.
 */
static int clock_offset(struct run *r, const struct gs_msg_welcome *w)
{
	int64_t now = gs__clock_wall_ms(r->ctx);
	int64_t mid = r->hello_ms + (now - r->hello_ms) / 2;
	int64_t off;
	char num[32];

	if (w->server_time_ms == 0 || w->server_time_ms > INT64_MAX / 2)
		return GS_OK;
	off = (int64_t)w->server_time_ms - mid;
	r->sum->clock_known = 1;
	r->sum->clock_offset_ms = off;
	r->sum->clock_skewed =
		off > GS_CLOCK_SKEW_WARN_MS || off < -GS_CLOCK_SKEW_WARN_MS;
	if (r->sum->clock_skewed)
		GS_WARN(r->ctx,
			"the device clock is %lld s %s the server's: set the "
			"date and time",
			(long long)(off < 0 ? -off : off) / 1000,
			off < 0 ? "ahead of" : "behind");
	snprintf(num, sizeof(num), "%lld", (long long)off);
	return gs__meta_set(r->dev, "clock_offset_ms", num);
}

/* ---- the device clock (docs/SECURITY.md) ---------------------------- */

/* Within this of the server's time a clock counts as right; more than
 * CLOCK_AHEAD_MAX past the last server time seen (a year offline) it
 * counts as wrong. */
#define CLOCK_SLACK_MS  (5 * 60 * 1000LL)
#define CLOCK_AHEAD_MAX (366 * 24 * 3600 * 1000LL)

static int64_t meta_i64(struct gs_device *dev, const char *key)
{
	char *v = NULL;
	int64_t n = 0;

	if (gs__meta_get(dev, key, &v) == GS_OK && v != NULL &&
	    gs__parse_i64(&n, v) != GS_OK)
		n = 0;
	gs__free(dev->ctx, v);
	return n;
}

static uint64_t meta_u64(struct gs_device *dev, const char *key, int *rc)
{
	char *v = NULL;
	uint64_t n = 0;

	*rc = gs__meta_get(dev, key, &v);
	if (*rc == GS_OK && v != NULL)
		n = strtoull(v, NULL, 10);
	gs__free(dev->ctx, v);
	return n;
}

/* The last server time this device knew: the Welcome it last saw, or for
 * a database from before that was recorded, its HLC floor. 0: none. */
static int64_t last_server_ms(struct gs_device *dev)
{
	sqlite3_stmt *st = NULL;
	int64_t ms = meta_i64(dev, "server_time_ms");

	if (ms > 0 ||
	    gs__db_prepare(dev->ctx, dev->db, &st,
			   "SELECT hlc_floor FROM gs_state WHERE id = 1") !=
		    GS_OK)
		return ms;
	if (sqlite3_step(st) == SQLITE_ROW)
		ms = GS_HLC_MS((uint64_t)sqlite3_column_int64(st, 0));
	sqlite3_finalize(st);
	return ms;
}

/*
 * Before connecting: a wall clock before the last server time we knew, or
 * more than a year past it, is wrong (reset to a factory date, or jumped
 * ahead). Certificates would then be judged at a time they were never
 * meant for; judge the server's at the last server time we knew instead,
 * and tell the worker. The server judges ours by its own clock.
 */
static void clock_check(struct gs_device *dev, struct gs_tls *tls)
{
	int64_t known = last_server_ms(dev);
	int64_t now = gs__clock_wall_ms(dev->ctx);

	if (known <= 0 ||
	    (now >= known - CLOCK_SLACK_MS && now <= known + CLOCK_AHEAD_MAX))
		return;
	if (tls != NULL)
		gs__tls_set_verify_time(tls, known / 1000);
	GS_WARN(dev->ctx,
		"this device's clock is wrong (it is %s the last server time "
		"this device saw by %lld days): set the date and time; "
		"certificates are checked against the last server time",
		now < known ? "behind" : "ahead of",
		(long long)((now < known ? known - now : now - known) /
			    86400000LL));
}

/* After the Welcome: the last server time this device knew, for
 * clock_check the next time. */
static int clock_note_server(struct gs_device *dev, int64_t server_ms)
{
	char num[32];

	if (server_ms <= 0 || server_ms > GS_HLC_MAX_MS)
		return GS_OK;
	snprintf(num, sizeof(num), "%lld", (long long)server_ms);
	return gs__meta_set(dev, "server_time_ms", num);
}

/*
 * The scope is the server's. When its version or codes differ from what
 * this device applied, a rescope starts: the codes are adopted now (the
 * API's scope checks follow), the cursor goes back to 0 so that every row
 * of the new scope comes down whole, and the end of the pull sweeps what
 * left (purge.h). The outbox is pushed first, as always. A rescope cut
 * short resumes from its cursor; a newer version restarts it.
 */
static int adopt_scope(struct run *r, const struct gs_msg_welcome *w)
{
	struct gs_device *dev = r->dev;
	struct gs_buf codes;
	char *held = NULL;
	char num[32];
	uint64_t target;
	int rc;

	r->server_scope = true;
	r->scope_target = w->scope_version;
	r->visits_since_ms = (int64_t)w->visits_since_ms;
	r->closed_since_ms = (int64_t)w->closed_since_ms;
	r->scope_applied = meta_u64(dev, "scope_version", &rc);
	if (rc != GS_OK)
		return rc;
	target = meta_u64(dev, "rescope", &rc);
	if (rc != GS_OK)
		return rc;
	gs__buf_init(&codes, r->ctx, 64 * 1024);
	for (size_t i = 0; rc == GS_OK && i < w->n_scope; i++)
		rc = gs__buf_printf(&codes, "%s%s", i ? "," : "", w->scope[i]);
	if (rc == GS_OK)
		rc = gs__buf_cstr(&codes);
	if (rc == GS_OK)
		rc = gs__meta_get(dev, "scope", &held);
	if (rc == GS_OK &&
	    (r->scope_applied != w->scope_version || held == NULL ||
	     strcmp(held, (const char *)codes.data) != 0)) {
		r->rescoping = true;
		if (target != w->scope_version) {
			snprintf(num, sizeof(num), "%llu",
				 (unsigned long long)w->scope_version);
			rc = gs__purge_rescope_begin(
				r->ctx, dev->db, (const char *)codes.data, num);
			r->cursor = 0;
			GS_INFO(r->ctx, "scope version %llu: rescoping",
				(unsigned long long)w->scope_version);
		}
	}
	gs__free(r->ctx, held);
	gs__buf_fini(&codes);
	return rc;
}

/* The end of a pull: purge what left the scope (and what aged out), and
 * when a rescope is done, record the version applied. */
static int settle_scope(struct run *r)
{
	struct gs_purge_opts po;
	char *codes = NULL;
	char *worker = NULL;
	char cur[32];
	char ver[32];
	size_t purged = 0;
	int rc;

	if (!r->server_scope)
		return GS_OK;
	memset(&po, 0, sizeof(po));
	rc = gs__meta_get(r->dev, "scope", &codes);
	if (rc == GS_OK)
		rc = gs__meta_get(r->dev, "worker_id", &worker);
	if (rc != GS_OK)
		goto out;
	snprintf(cur, sizeof(cur), "%llu", (unsigned long long)r->cursor);
	snprintf(ver, sizeof(ver), "%llu", (unsigned long long)r->scope_target);
	po.sweep = true;
	po.rescoped = r->rescoping;
	po.codes = codes != NULL ? codes : "";
	po.worker_id = worker;
	po.visits_since_ms = r->visits_since_ms;
	po.closed_since_ms = r->closed_since_ms;
	po.meta_key[0] = "cursor";
	po.meta_value[0] = cur;
	if (r->rescoping) {
		po.meta_key[1] = "scope_version";
		po.meta_value[1] = ver;
		po.meta_key[2] = "rescope";
		po.meta_value[2] = NULL;
	}
	rc = gs__purge_run(r->ctx, r->dev->db, &po, &purged);
	if (rc == GS_OK) {
		r->sum->purged += purged;
		if (r->rescoping) {
			r->scope_applied = r->scope_target;
			r->rescoping = false;
		}
	}
out:
	gs__free(r->ctx, codes);
	gs__free(r->ctx, worker);
	return rc;
}

static int on_welcome(struct run *r, const struct gs_msg_welcome *w)
{
	sqlite3_stmt *st = NULL;
	uint64_t remote = gs__hlc_make((int64_t)w->server_time_ms, 0);
	int rc;

	if (w->schema_version != GS_SCHEMA_VERSION)
		return gs__err(r->ctx, GS_ESCHEMA,
			       "the server speaks schema version %u, this "
			       "device %u: upgrade gridsync",
			       (unsigned)w->schema_version, GS_SCHEMA_VERSION);
	rc = clock_note_server(r->dev, (int64_t)w->server_time_ms);
	if (rc != GS_OK)
		return rc;
	/* The server's time moves our clock forward (never back), so a
	 * device whose wall clock is behind still orders its next edits
	 * after what the server has seen. */
	rc = gs__db_prepare(r->ctx, r->dev->db, &st,
			    "UPDATE gs_state SET hlc_floor = max(hlc_floor, ?)"
			    " WHERE id = 1");
	if (rc == GS_OK) {
		sqlite3_bind_int64(st, 1, (sqlite3_int64)remote);
		rc = gs__db_step_done(r->ctx, r->dev->db, st);
	}
	sqlite3_finalize(st);
	if (rc == GS_OK)
		rc = clock_offset(r, w);
	if (rc == GS_OK && w->has_held_seq) {
		struct lost l = { 0 };

		r->have_held = true;
		r->held = w->held_seq;
		rc = gs__seq_floor(r->ctx, r->dev->db, &l.floor);
		if (rc == GS_OK && r->held < l.floor) {
			GS_WARN(r->ctx,
				"the server holds %llu entries of this "
				"database, it acknowledged %llu: sending "
				"them again",
				(unsigned long long)r->held,
				(unsigned long long)l.floor);
			rc = in_txn(r, resend, &l);
		}
	}
	if (rc == GS_OK && w->scope_version != 0)
		rc = adopt_scope(r, w);
	return rc == GS_OK ? send_push(r) : rc;
}

/* Whether a refusal may heal: the server did not record it, so the entry
 * stays pending and is sent again. A server that says nothing about it
 * (older than the final flag) records every refusal but these. */
static bool refusal_may_heal(const struct gs_push_result *res)
{
	if (res->result != GS_RESULT_REJECTED)
		return false;
	if (res->has_final)
		return !res->final;
	return res->reject_code == GS_REJECT_HASH ||
	       res->reject_code == GS_REJECT_SEQ_REUSED ||
	       res->reject_code == GS_REJECT_SEQ_GAP ||
	       res->reject_code == GS_REJECT_RETRY;
}

static int on_push_ack(struct run *r, const struct gs_msg_push_ack *a)
{
	struct gs_ack_item *items = NULL;
	int rc;

	items = gs__calloc(r->ctx, a->n_results + 1, sizeof(*items));
	if (items == NULL)
		return GS_ENOMEM;
	for (size_t i = 0; i < a->n_results; i++) {
		const struct gs_push_result *res = &a->results[i];

		items[i].seq = res->device_seq;
		items[i].result = (int)res->result;
		items[i].reject_code = (int)res->reject_code;
		items[i].reason = res->reason;
		items[i].may_heal = refusal_may_heal(res);
		if (items[i].may_heal &&
		    res->reject_code == GS_REJECT_SEQ_REUSED)
			r->collided++;
		if (items[i].may_heal)
			r->sum->deferred++;
		else if (res->result == GS_RESULT_REJECTED)
			r->sum->rejected++;
		else
			r->sum->acknowledged++;
	}
	/* Verdicts and the conflicts lost, in one transaction: a crash
	 * between them would lose the record of what was lost. */
	rc = gs__apply_push_ack(r->ctx, r->dev->db, items, a->n_results,
				a->conflicts, a->n_conflicts,
				r->dev->device_id);
	gs__free(r->ctx, items);
	if (rc == GS_OK)
		r->sum->conflicts += a->n_conflicts;
	return rc == GS_OK ? send_push(r) : rc;
}

static int on_changes(struct run *r, const struct gs_msg_changes *c)
{
	struct gs_buf cs;
	int rc = GS_OK;

	/* Conflicts first, in one transaction: the cursor moves past them
	 * only once they are kept (the server then marks them delivered). */
	if (c->n_conflicts > 0) {
		size_t added = 0;

		rc = gs__apply_conflicts(r->ctx, r->dev->db, c->conflicts,
					 c->n_conflicts, r->dev->device_id,
					 &added);
		if (rc != GS_OK)
			return rc;
		r->sum->conflicts += added;
	}
	/* Rows that left are noted before the rows of the same window move
	 * the cursor past them. */
	if (c->n_left > 0)
		rc = gs__purge_note(r->ctx, r->dev->db, c->left, c->n_left);
	gs__buf_init(&cs, r->ctx, GS_FRAME_MAX_CEILING);
	for (size_t i = 0; rc == GS_OK && i < c->n_entries; i++) {
		const struct gs_change *ch = &c->entries[i];
		struct gs_apply_stats st;

		cs.len = 0;
		rc = gs__changeset_unpack(&cs, &r->z, ch->compression,
					  ch->changeset, ch->changeset_len,
					  ch->uncompressed_len, NULL);
		/* A rescope keeps what its pulls bring (purge.h). */
		if (rc == GS_OK && r->rescoping)
			rc = gs__purge_confirm(r->ctx, r->dev->db, cs.data,
					       cs.len);
		if (rc == GS_OK)
			rc = gs__apply_download(r->ctx, r->dev->db, cs.data,
						cs.len, ch->server_seq, ch->hlc,
						&st);
		if (rc == GS_OK) {
			r->cursor = ch->server_seq;
			r->sum->quarantined += st.quarantined;
			r->sum->pulled_rows += st.rows;
			r->sum->pulled_changes++;
		}
	}
	gs__buf_fini(&cs);
	if (rc != GS_OK)
		return rc;
	/* Rejected entries are undone even when nothing new came down. */
	if (c->n_entries == 0) {
		struct gs_apply_stats st;

		rc = gs__apply_download(r->ctx, r->dev->db, NULL, 0, r->cursor,
					0, &st);
		if (rc != GS_OK)
			return rc;
		r->sum->quarantined += st.quarantined;
	}
	if (c->next_cursor > r->cursor)
		r->cursor = c->next_cursor;
	r->sum->cursor = r->cursor;
	if (c->more)
		return send_pull(r);
	rc = settle_scope(r);
	if (rc != GS_OK)
		return rc;
	finish(r, GS_OK, false);
	return GS_OK;
}

static int error_status(const struct gs_msg_error *e, bool *retryable)
{
	*retryable = false;
	switch (e->code) {
	case GS_WIRE_ERR_SCHEMA_UPGRADE:
	case GS_WIRE_ERR_VERSION:
		return GS_ESCHEMA;
	case GS_WIRE_ERR_UNAUTHORIZED:
		return GS_EDENIED;
	case GS_WIRE_ERR_BUSY:
		*retryable = true;
		return GS_EBUSY;
	case GS_WIRE_ERR_INTERNAL:
		*retryable = true;
		return GS_EIO;
	default:
		return GS_EPROTO;
	}
}

static void
on_frame(struct gs_conn *c, const uint8_t *data, size_t len, void *payload)
{
	struct run *r = payload;
	struct gs_msg *msg = NULL;
	bool retry = false;
	int rc;

	(void)c;
	if (r->finished)
		return;
	r->sum->bytes_down += len + GS_FRAME_HDR_LEN;
	rc = gs__sess_recv(&r->sess, data, len, &msg);
	if (rc != GS_OK) {
		finish(r, rc, false);
		return;
	}
	switch (msg->type) {
	case GS_MSG_WELCOME:
		rc = on_welcome(r, &msg->u.welcome);
		break;
	case GS_MSG_PUSH_ACK:
		rc = on_push_ack(r, &msg->u.push_ack);
		break;
	case GS_MSG_CHANGES:
		rc = on_changes(r, &msg->u.changes);
		break;
	case GS_MSG_ERROR:
		rc = error_status(&msg->u.error, &retry);
		snprintf(r->why, sizeof(r->why), "server: %s",
			 msg->u.error.message != NULL ? msg->u.error.message
						      : "error");
		gs__err(r->ctx, rc, "%s", r->why);
		break;
	default: /* Ping and Pong: nothing to do. */
		break;
	}
	gs__msg_free(msg);
	if (rc != GS_OK)
		finish(r, rc, retry || rc == GS_EBUSY);
}

static void on_connect(struct gs_conn *c, int status, void *payload)
{
	struct run *r = payload;
	int rc = status;

	(void)c;
	if (rc == GS_OK) {
		progress(r, "connect");
		rc = send_hello(r);
	}
	if (rc != GS_OK)
		finish(r, rc, rc != GS_EDENIED);
}

static void on_close(struct gs_conn *c, int status, void *payload)
{
	struct run *r = payload;

	(void)c;
	r->conn = NULL;
	if (!r->finished) {
		/* The server or the network ended it before we were done. */
		r->finished = true;
		r->status = status != GS_OK ? status : GS_EIO;
		r->retryable = status != GS_EDENIED && status != GS_EPROTO;
		if (gs_ctx_errmsg(r->ctx)[0] == '\0')
			gs__err(r->ctx, r->status,
				"the connection to the server was lost");
		uv_timer_stop(&r->deadline);
	}
}

static void on_deadline(uv_timer_t *t)
{
	struct run *r = t->data;

	gs__err(r->ctx, GS_ETIMEDOUT, "the sync took longer than its deadline");
	finish(r, GS_ETIMEDOUT, true);
}

/* TLS identity stored at enrolment (gs_meta tls_*), or NULL when the
 * device was initialised with --insecure. */
static int load_tls(struct gs_device *dev, struct gs_tls **out)
{
	char *ca = NULL;
	char *cert = NULL;
	char *key = NULL;
	int rc;

	*out = NULL;
	rc = gs__meta_get(dev, "tls_ca", &ca);
	if (rc == GS_OK)
		rc = gs__meta_get(dev, "tls_cert", &cert);
	if (rc == GS_OK)
		rc = gs__meta_get(dev, "tls_key", &key);
	if (rc == GS_OK && ca != NULL && cert != NULL && key != NULL)
		rc = gs__tls_client_new(out, dev->ctx, ca, cert, key);
	gs__free(dev->ctx, ca);
	gs__free(dev->ctx, cert);
	if (key != NULL)
		memset(key, 0, strlen(key));
	gs__free(dev->ctx, key);
	return rc;
}

static int attempt(struct gs_device *dev,
		   const char *server,
		   struct gs_tls *tls,
		   const struct gs_sync_opts *opts,
		   struct gs_sync_summary *sum,
		   bool *retryable,
		   bool *reconnect)
{
	struct gs_conn_opts copts = { 0 };
	struct gs_conn_cbs cbs = { on_connect, on_frame, NULL, on_close, NULL };
	struct run r;
	char *cursor = NULL;
	int rc;

	memset(&r, 0, sizeof(r));
	r.dev = dev;
	r.ctx = dev->ctx;
	r.opts = opts;
	r.sum = sum;
	r.status = GS_EIO;
	gs__sess_init(&r.sess, dev->ctx, false);
	gs__buf_init(&r.out, dev->ctx, GS_FRAME_MAX_CEILING);
	gs__zstd_init(&r.z, dev->ctx);
	rc = gs__meta_get(dev, "cursor", &cursor);
	if (rc != GS_OK)
		goto out_nolop;
	r.cursor = cursor != NULL ? strtoull(cursor, NULL, 10) : 0;
	gs__free(dev->ctx, cursor);
	rc = gs__meta_get(dev, "incarnation", &r.incarnation);
	if (rc != GS_OK)
		goto out_nolop;
	if (uv_loop_init(&r.loop) != 0) {
		rc = gs__err(dev->ctx, GS_ENOMEM, "uv_loop_init failed");
		goto out_nolop;
	}
	uv_timer_init(&r.loop, &r.deadline);
	r.deadline.data = &r;
	uv_timer_start(&r.deadline, on_deadline,
		       opts->timeout_ms ? opts->timeout_ms : 120000, 0);
	copts.tls = tls;
	copts.idle_ms = 30000;
	cbs.payload = &r;
	sum->attempts++;
	rc = gs__conn_connect(&r.conn, dev->ctx, &r.loop, server, &copts, &cbs);
	if (rc != GS_OK) {
		r.finished = true;
		r.retryable = true;
		uv_timer_stop(&r.deadline);
	} else {
		uv_run(&r.loop, UV_RUN_DEFAULT);
		rc = r.status;
		if (rc != GS_OK && r.why[0] != '\0')
			gs__err(dev->ctx, rc, "%s", r.why);
	}
	uv_close((uv_handle_t *)&r.deadline, NULL);
	uv_run(&r.loop, UV_RUN_DEFAULT);
	uv_loop_close(&r.loop);
	*retryable = r.retryable;
	*reconnect = rc == GS_OK && r.reconnect;
	if (rc == GS_OK && !r.reconnect) {
		char now[GS_TIME_LEN];

		gs__time_format(now, gs__clock_wall_ms(dev->ctx));
		rc = gs__meta_set(dev, "last_sync", now);
	}
out_nolop:
	gs__free(dev->ctx, r.incarnation);
	gs__zstd_fini(&r.z);
	gs__buf_fini(&r.out);
	return rc;
}

static int check_outbox(struct gs_device *dev, struct gs_sync_summary *sum)
{
	struct gs_outbox_report rep = { 0, 0, 0 };
	int rc = gs__db_exec(dev->ctx, dev->db, "BEGIN IMMEDIATE");

	if (rc == GS_OK)
		rc = gs__outbox_check(dev->ctx, dev->db, GS_OUTBOX_CHECK_HASH,
				      &rep);
	if (rc == GS_OK)
		rc = gs__db_exec(dev->ctx, dev->db, "COMMIT");
	if (rc != GS_OK) {
		sqlite3_exec(dev->db, "ROLLBACK", NULL, NULL, NULL);
		return rc;
	}
	sum->quarantined += rep.quarantined;
	sum->recaptured += rep.recaptured;
	return GS_OK;
}

int gs_device_sync(struct gs_device *dev,
		   const struct gs_sync_opts *opts,
		   struct gs_sync_summary *out)
{
	struct gs_sync_summary sum;
	struct gs_tls *tls = NULL;
	char *server = NULL;
	char *insecure = NULL;
	uint64_t t0 = gs__clock_mono_ns();
	unsigned max;
	int rc;

	GS_CHECK_ARG(dev != NULL && opts != NULL);
	if (opts->version != GS_SYNC_OPTS_VERSION)
		return gs__err(dev->ctx, GS_EINVAL, "unknown options version");
	memset(&sum, 0, sizeof(sum));
	max = opts->once ? 1 : (opts->max_attempts ? opts->max_attempts : 6);
	rc = gs__meta_get(dev, "server", &server);
	if (rc == GS_OK && opts->server != NULL) {
		gs__free(dev->ctx, server);
		server = gs__strdup(dev->ctx, opts->server);
		rc = server != NULL ? GS_OK : GS_ENOMEM;
	}
	if (rc == GS_OK && server == NULL)
		rc = gs__err(dev->ctx, GS_EINVAL,
			     "no server: give --server HOST:PORT");
	if (rc == GS_OK)
		rc = load_tls(dev, &tls);
	if (rc == GS_OK)
		clock_check(dev, tls);
	if (rc == GS_OK && tls == NULL) {
		rc = gs__meta_get(dev, "insecure", &insecure);
		if (rc == GS_OK && (insecure == NULL || strcmp(insecure, "1")))
			rc = gs__err(dev->ctx, GS_EDENIED,
				     "this device has no certificate: "
				     "initialise it with --bundle (or "
				     "--insecure for loopback tests)");
	}
	/* Nothing of the outbox is sent before it passed the parser and
	 * its hash: a damaged entry is set aside here, its rows re-captured. */
	if (rc == GS_OK)
		rc = check_outbox(dev, &sum);
	for (unsigned i = 0, again = 0; rc == GS_OK && i < max; i++) {
		bool retryable = false;
		bool reconnect = false;

		gs__err_clear(dev->ctx);
		rc = attempt(dev, server, tls, opts, &sum, &retryable,
			     &reconnect);
		/* Renumbered under a new incarnation: push again at once
		 * (twice at most; a second one would mean the server keeps
		 * refusing the new numbers). */
		if (rc == GS_OK && reconnect && again++ < 2) {
			i--;
			continue;
		}
		if (rc == GS_OK || !retryable || i + 1 == max)
			break;
		/* Exponential backoff with full jitter: 0.5 s, 1 s, 2 s ...
		 * up to 30 s, each scaled by a random factor in [0.5, 1). */
		{
			uint64_t base = 500ull << (i < 6 ? i : 6);
			uint16_t j = 0;
			struct timespec ts;

			if (base > 30000)
				base = 30000;
			gs__random(dev->ctx, &j, sizeof(j));
			base = base / 2 + (base / 2) * j / 65536;
			ts.tv_sec = (time_t)(base / 1000);
			ts.tv_nsec = (long)(base % 1000) * 1000000L;
			GS_INFO(dev->ctx,
				"sync attempt %u failed (%s), retry "
				"in %llu ms",
				i + 1, gs_errname(rc),
				(unsigned long long)base);
			nanosleep(&ts, NULL);
			rc = GS_OK;
		}
	}
	if (rc == GS_OK)
		rc = gs__device_reload(dev);
	gs__tls_free(tls);
	gs__free(dev->ctx, server);
	gs__free(dev->ctx, insecure);
	sum.seconds = (double)(gs__clock_mono_ns() - t0) / 1e9;
	if (rc == GS_OK && opts->progress != NULL)
		opts->progress("done", &sum, opts->payload);
	if (out != NULL)
		*out = sum;
	return rc;
}

int gs_conflict_list(struct gs_device *dev, gs_row_cb cb, void *payload)
{
	GS_CHECK_ARG(dev != NULL && cb != NULL);
	return gs__rows_query(
		dev, "conflict", cb, payload,
		"SELECT strftime('%Y-%m-%dT%H:%M:%fZ', at / 1000.0,"
		" 'unixepoch') AS at, device_seq, tbl AS \"table\", pk,"
		" col AS \"column\", reason, value, winner,"
		" printf('%016x', winner_hlc) AS winner_hlc"
		" FROM gs_conflict ORDER BY id DESC",
		NULL);
}
