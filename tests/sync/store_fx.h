/*
 * Shared fixture of the store tests (test_store*.c, test_merge*.c): a real
 * server store seeded with the demo profile, and real device databases
 * made with the client API (gs_device_init with demo = 1), whose outbox
 * entries are pushed as they are and whose downloads are applied with
 * sqlite3changeset_apply, as a handheld would. Static inline so that each
 * test file uses what it needs.
 */
#ifndef GS_STORE_FX_H
#define GS_STORE_FX_H

#include <time.h>

#include <gridsync/capture.h>
#include <gridsync/changeset.h>
#include <gridsync/client_internal.h>
#include <gridsync/db.h>
#include <gridsync/gridsync.h>
#include <gridsync/hlc.h>
#include <gridsync/schema.h>
#include <gridsync/scope.h>
#include <gridsync/store.h>
#include <gridsync/synth.h>

#include "gs_test.h"

struct fx {
	struct gs_test_alloc alloc;
	struct gs_ctx *ctx;
	char *dir;
	struct gs_store *st;
	char gw[GS_UUID_LEN]; /* the demo's first responsible grid worker */
	char cs[GS_UUID_LEN]; /* a community worker */
	int64_t now;          /* the ctx clock; 0: the system clock */
};

/* One handheld: its database and its enrolment on the store. */
struct fx_dev {
	struct gs_device *dev;
	struct gs_store_device sd;
	uint64_t pushed; /* outbox entries pushed so far */
	uint64_t cursor; /* server_seq pulled so far */
};

static inline int64_t fx_clock(void *payload)
{
	struct fx *f = payload;
	struct timespec ts;

	if (f->now != 0)
		return f->now;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The counting, failing allocator of gs_test.h, with our clock. */
static inline bool fx_fail(struct gs_test_alloc *a)
{
	long n = a->count++;

	if (a->fail_at < 0)
		return false;
	return n == a->fail_at || (a->fail_forever && n > a->fail_at);
}

static inline void *fx_malloc(size_t size, void *payload)
{
	struct gs_test_alloc *a = payload;
	void *p = fx_fail(a) ? NULL : malloc(size);

	if (p != NULL)
		a->live++;
	return p;
}

static inline void *fx_realloc(void *ptr, size_t size, void *payload)
{
	struct gs_test_alloc *a = payload;
	void *p = fx_fail(a) ? NULL : realloc(ptr, size);

	if (p != NULL && ptr == NULL)
		a->live++;
	return p;
}

static inline void fx_freefn(void *ptr, void *payload)
{
	struct gs_test_alloc *a = payload;

	if (ptr != NULL)
		a->live--;
	free(ptr);
}

/* Store at dir/server.db seeded with the demo profile. */
static inline struct fx *fx_new(void)
{
	struct gs_ctx_opts opts = GS_CTX_OPTS_INIT;
	struct gs_synth_opts so = GS_SYNTH_OPTS_INIT;
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->alloc.fail_at = -1;
	opts.malloc_fn = fx_malloc;
	opts.realloc_fn = fx_realloc;
	opts.free_fn = fx_freefn;
	opts.alloc_payload = &f->alloc;
	opts.clock_fn = fx_clock;
	opts.clock_payload = f;
	if (getenv("GS_TEST_LOG") != NULL) {
		opts.log_fn = gs_log_stderr;
		opts.log_level = GS_LOG_DEBUG;
	}
	assert_gs_ok(gs_ctx_new(&f->ctx, &opts));
	f->dir = gs_test_tmpdir();
	assert_gs_ok(gs__store_open(&f->st, f->ctx,
				    gs_test_path(f->dir, "server.db"),
				    GS_STORE_CREATE));
	so.profile = GS_SYNTH_DEMO;
	assert_gs_ok(gs__store_seed(f->st, &so));
	assert_gs_ok(gs__synth_pick_worker(f->ctx, gs__store_db(f->st), "GW",
					   "responsible", f->gw));
	assert_gs_ok(gs__synth_pick_worker(f->ctx, gs__store_db(f->st), "CS",
					   NULL, f->cs));
	return f;
}

static inline void fx_free(struct fx *f)
{
	gs__store_close(f->st);
	gs_ctx_free(f->ctx);
	gs_test_tmpdir_free(f->dir);
	free(f);
}

/*
 * A demo device named name for worker (its role from the reference data
 * unless role is given), enrolled on the store with scope (NULL: the
 * worker's own grids, as gs_device_init computes them).
 */
static inline void fx_dev_init(struct fx *f,
			       struct fx_dev *d,
			       const char *name,
			       const char *worker,
			       const char *role,
			       const char *scope)
{
	struct gs_device_init_opts o = GS_DEVICE_INIT_OPTS_INIT;
	struct gs_status status;
	char file[128];

	memset(d, 0, sizeof(*d));
	snprintf(file, sizeof(file), "%s.db", name);
	o.device_id = name;
	o.worker_id = worker;
	o.role = role;
	o.scope = scope;
	o.demo = 1;
	assert_gs_ok(gs_device_init(&d->dev, f->ctx, gs_test_path(f->dir, file),
				    &o));
	assert_gs_ok(gs__device_set_normal(d->dev, 1));
	assert_gs_ok(gs_device_status(d->dev, &status));
	assert_gs_ok(
		gs__store_enroll(f->st, name, worker, status.scope, &d->sd));
}

static inline void fx_dev_fini(struct fx_dev *d)
{
	gs_device_close(d->dev);
	d->dev = NULL;
}

/* A device's outbox entries after seq `after`, as the sync engine would
 * send them. Free with fx_entries_free. */
struct fx_entries {
	struct gs_store_entry *e;
	size_t n;
};

static inline void fx_entries_free(struct fx_entries *es)
{
	for (size_t i = 0; i < es->n; i++) {
		free((void *)es->e[i].changeset);
		free((void *)es->e[i].sha256);
	}
	free(es->e);
	es->e = NULL;
	es->n = 0;
}

static inline void
fx_outbox(struct fx_dev *d, uint64_t after, struct fx_entries *es)
{
	sqlite3 *db = gs__device_db(d->dev);
	sqlite3_stmt *s = NULL;
	size_t cap = 0;

	es->e = NULL;
	es->n = 0;
	assert_int_equal(sqlite3_prepare_v2(db,
					    "SELECT seq, hlc, sha256, changeset"
					    " FROM gs_outbox WHERE seq > ?"
					    " ORDER BY seq",
					    -1, &s, NULL),
			 SQLITE_OK);
	sqlite3_bind_int64(s, 1, (sqlite3_int64)after);
	while (sqlite3_step(s) == SQLITE_ROW) {
		struct gs_store_entry *e;
		size_t len = (size_t)sqlite3_column_bytes(s, 3);
		uint8_t *cs = malloc(len ? len : 1);
		uint8_t *sha = malloc(GS_SHA256_LEN);

		if (es->n == cap) {
			cap = cap ? cap * 2 : 64;
			es->e = realloc(es->e, cap * sizeof(*es->e));
		}
		e = &es->e[es->n++];
		memcpy(cs, sqlite3_column_blob(s, 3), len);
		memcpy(sha, sqlite3_column_blob(s, 2), GS_SHA256_LEN);
		e->device_seq = (uint64_t)sqlite3_column_int64(s, 0);
		e->hlc = (uint64_t)sqlite3_column_int64(s, 1);
		e->changeset = cs;
		e->len = len;
		e->sha256 = sha;
	}
	sqlite3_finalize(s);
}

/* Push every entry not pushed yet (in batches of at most 1000); out
 * holds the answer to the last batch (caller finis it). Returns the
 * number of entries pushed. */
static inline size_t
fx_push(struct fx *f, struct fx_dev *d, struct gs_store_push_out *out)
{
	struct fx_entries es;
	size_t done = 0;

	fx_outbox(d, d->pushed, &es);
	memset(out, 0, sizeof(*out));
	while (done < es.n || done == 0) {
		size_t n = es.n - done > 1000 ? 1000 : es.n - done;

		gs__store_push_out_fini(out);
		assert_gs_ok(
			gs__store_push(f->st, &d->sd, es.e + done, n, out));
		if (n == 0)
			break;
		done += n;
	}
	if (es.n > 0)
		d->pushed = es.e[es.n - 1].device_seq;
	fx_entries_free(&es);
	return done;
}

/* Download conflicts: the server's rows replace the device's; a child
 * whose parent comes in a later download is kept (OMIT on a foreign-key
 * conflict commits the rest). */
static inline int
fx_conflict(void *payload, int kind, sqlite3_changeset_iter *it)
{
	(void)payload;
	(void)it;
	if (kind == SQLITE_CHANGESET_DATA || kind == SQLITE_CHANGESET_CONFLICT)
		return SQLITE_CHANGESET_REPLACE;
	return SQLITE_CHANGESET_OMIT;
}

/* Apply one download to db with foreign keys deferred, as a handheld. */
static inline void fx_apply(sqlite3 *db, const struct gs_buf *cs)
{
	if (cs->len == 0)
		return;
	assert_int_equal(sqlite3changeset_apply(db, (int)cs->len, cs->data,
						NULL, fx_conflict, NULL),
			 SQLITE_OK);
}

/* Pull everything after cursor in chunks of budget bytes into db (NULL:
 * the device's own database, outside capture). Returns rows received. */
static inline size_t fx_pull_into(struct fx *f,
				  const struct gs_store_device *sd,
				  uint64_t *cursor,
				  size_t budget,
				  sqlite3 *db)
{
	struct gs_store_pull_out po;
	size_t rows = 0;
	int guard = 0;

	gs__store_pull_out_init(&po, f->ctx);
	do {
		assert_gs_ok(gs__store_pull(f->st, sd, *cursor, budget, &po));
		if (po.changeset.len > 0) {
			/* What a handheld's validator accepts: every table. */
			struct gs_cs_opts o = GS_CS_OPTS_INIT;

			o.allow = GS_CS_ALLOW_ALL;
			assert_gs_ok(gs__cs_check(NULL, f->ctx,
						  po.changeset.data,
						  po.changeset.len, &o));
		}
		fx_apply(db, &po.changeset);
		rows += po.n_rows;
		assert_true(po.next_cursor >= *cursor);
		*cursor = po.next_cursor;
		assert_true(++guard < 100000);
	} while (po.more);
	gs__store_pull_out_fini(&po);
	return rows;
}

static inline size_t fx_pull(struct fx *f, struct fx_dev *d)
{
	return fx_pull_into(f, &d->sd, &d->cursor, 1u << 20,
			    gs__device_db(d->dev));
}

/* One integer from the store (or any db). */
static inline int64_t fx_int(sqlite3 *db, const char *sql, const char *param)
{
	sqlite3_stmt *s = NULL;
	int64_t v = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
		fail_msg("prepare %s: %s", sql, sqlite3_errmsg(db));
	if (param != NULL)
		sqlite3_bind_text(s, 1, param, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

/* One text value (copied into buf, "" if NULL or no row). */
static inline const char *
fx_text(sqlite3 *db, const char *sql, const char *param, char *buf, size_t cap)
{
	sqlite3_stmt *s = NULL;

	buf[0] = '\0';
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
		fail_msg("prepare %s: %s", sql, sqlite3_errmsg(db));
	if (param != NULL)
		sqlite3_bind_text(s, 1, param, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0) != NULL)
		snprintf(buf, cap, "%s",
			 (const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	return buf;
}

/* The first household of the device's scope (by id). */
static inline void fx_household(struct fx_dev *d, char id[GS_UUID_LEN])
{
	char buf[128];

	fx_text(gs__device_db(d->dev),
		"SELECT id FROM household WHERE deleted = 0 ORDER BY id LIMIT "
		"1",
		NULL, buf, sizeof(buf));
	assert_true(strlen(buf) == GS_UUID_LEN - 1);
	memcpy(id, buf, GS_UUID_LEN);
}

static inline void
fx_visit(struct fx_dev *d, const char *household, char id[GS_ID_LEN])
{
	struct gs_visit_opts v = GS_VISIT_OPTS_INIT;

	v.household_id = household;
	v.kind = "routine";
	v.outcome = "met";
	v.summary = "燃气管道检查正常";
	assert_gs_ok(gs_visit_add(d->dev, id, &v));
}

/* A level-3 category code of the demo. */
static inline void fx_category(struct fx_dev *d, char *code, size_t cap)
{
	fx_text(gs__device_db(d->dev),
		"SELECT code FROM category WHERE level = 3 AND active = 1"
		" ORDER BY code LIMIT 1",
		NULL, code, cap);
	assert_true(code[0] != '\0');
}

static inline void
fx_report(struct fx_dev *d, const char *household, char id[GS_ID_LEN])
{
	struct gs_issue_report_opts o = GS_ISSUE_REPORT_OPTS_INIT;
	char cat[64];

	fx_category(d, cat, sizeof(cat));
	o.category = cat;
	o.title = "楼道堆放杂物";
	o.description = "三单元楼道堆放纸箱，堵塞疏散通道";
	o.household_id = household;
	assert_gs_ok(gs_issue_report(d->dev, id, &o));
}

static inline void fx_move(struct fx_dev *d,
			   const char *issue,
			   const char *to,
			   const char *assignee,
			   int want)
{
	struct gs_issue_move_opts o = GS_ISSUE_MOVE_OPTS_INIT;

	o.to = to;
	o.note = "处理说明";
	o.assignee = assignee;
	o.due = assignee != NULL ? "2030-01-01T00:00:00.000Z" : NULL;
	assert_gs_err(gs_issue_move(d->dev, issue, &o), want);
}

/* The store's issue state and revision. */
static inline void fx_issue_state(
	struct fx *f, const char *id, char *state, size_t cap, int64_t *rev)
{
	sqlite3 *db = gs__store_db(f->st);

	fx_text(db, "SELECT state FROM issue WHERE id = ?", id, state, cap);
	*rev = fx_int(db, "SELECT state_rev FROM issue WHERE id = ?", id);
}

#endif
