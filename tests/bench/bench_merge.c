/*
 * The server merge against its floor (PERFORMANCE.md S1, S2, S3).
 *
 *   bench_merge [--visits N] [--issues N] [--devices N] [--keep]
 *   bench_merge --district
 *
 * S1: one handheld made with the client API (gs_device_init, demo
 * profile) records N visits (default 10,000) and N issues (2,000), each in
 * its own transaction; its outbox entries are pushed into a store seeded
 * with the same demo reference data, in batches of 1,000 (one durable
 * commit each). In the same run the same changesets, trusted and local,
 * are applied with sqlite3changeset_apply into a database holding the same
 * reference data, also 1,000 per commit: the floor. Both rates and their
 * ratio are printed, plus the CPU time of one push of 1,000 visits.
 *
 * S2: --devices (50) handhelds each hold 300 synced households of their
 * own, then make 1,000 changes (700 inserts, 250 updates of earlier rows,
 * 50 deletes), one transaction each; all are pushed. Expected: 47,500 live
 * device households. S3: the same with the devices paired and 50 rows per
 * pair updated by both (1,250 conflicting rows for 50 devices); every one
 * must end with the later write by (HLC, device) and every conflict must
 * be recorded with both sides. The floor of S2/S3 is the same changesets
 * applied one device after another with a last-writer-wins handler.
 *
 * --district instead seeds the district profile (1.6 M rows) into a store
 * and publishes it (timed), then bootstraps a fresh database of the first
 * micro-grid worker's scope from it (B1 without the network): downloads
 * of 1 MiB applied with sqlite3changeset_apply, and the device's content
 * hash compared with the store's scope hash.
 *
 * Figures are wall time on this machine; compare the ratio, not the
 * absolute rate (PERFORMANCE.md).
 */
#include <time.h>

#include <gridsync/capture.h>
#include <gridsync/client_internal.h>
#include <gridsync/db.h>
#include <gridsync/gridsync.h>
#include <gridsync/hlc.h>
#include <gridsync/policy.h>
#include <gridsync/store.h>
#include <gridsync/synth.h>

#include "gs_test.h"

#define BATCH 1000

struct entries {
	struct gs_store_entry *e;
	size_t n;
	size_t cap;
};

static double now_s(void)
{
	return (double)gs__clock_mono_ns() / 1e9;
}

static double cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(struct gs_ctx *ctx, const char *what, int rc)
{
	fprintf(stderr, "%s: %s: %s\n", what, gs_errname(rc),
		gs_ctx_errmsg(ctx));
	exit(1);
}

#define CHECK(ctx, what, expr)               \
	do {                                 \
		int rc_ = (expr);            \
		if (rc_ != GS_OK)            \
			die(ctx, what, rc_); \
	} while (0)

/* Append the device's outbox entries after seq `after` to es. */
static void outbox(struct gs_device *dev, uint64_t after, struct entries *es)
{
	sqlite3 *db = gs__device_db(dev);
	sqlite3_stmt *s = NULL;

	sqlite3_prepare_v2(db,
			   "SELECT seq, hlc, sha256, changeset FROM gs_outbox"
			   " WHERE seq > ? ORDER BY seq",
			   -1, &s, NULL);
	sqlite3_bind_int64(s, 1, (sqlite3_int64)after);
	while (sqlite3_step(s) == SQLITE_ROW) {
		struct gs_store_entry *e;
		size_t len = (size_t)sqlite3_column_bytes(s, 3);
		uint8_t *cs = malloc(len);
		uint8_t *sha = malloc(GS_SHA256_LEN);

		if (es->n == es->cap) {
			es->cap = es->cap ? es->cap * 2 : 1024;
			es->e = realloc(es->e, es->cap * sizeof(*es->e));
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

static void entries_free(struct entries *es)
{
	for (size_t i = 0; i < es->n; i++) {
		free((void *)es->e[i].changeset);
		free((void *)es->e[i].sha256);
	}
	free(es->e);
	memset(es, 0, sizeof(*es));
}

/* Push es[from..to) in batches; returns wall seconds; counts results. */
static double push_all(struct gs_ctx *ctx,
		       struct gs_store *st,
		       const struct gs_store_device *sd,
		       const struct entries *es,
		       size_t from,
		       size_t to,
		       size_t *applied,
		       size_t *conflicts)
{
	double t0 = now_s();

	for (size_t i = from; i < to; i += BATCH) {
		struct gs_store_push_out out;
		size_t n = to - i < BATCH ? to - i : BATCH;

		CHECK(ctx, "push", gs__store_push(st, sd, es->e + i, n, &out));
		for (size_t k = 0; k < out.n_results; k++) {
			if (out.results[k].result == GS_RESULT_APPLIED)
				(*applied)++;
			else
				fprintf(stderr, "entry %llu: %d %d %s\n",
					(unsigned long long)out.results[k]
						.device_seq,
					(int)out.results[k].result,
					(int)out.results[k].reject_code,
					out.results[k].reason);
		}
		*conflicts += out.n_conflicts;
		gs__store_push_out_fini(&out);
	}
	return now_s() - t0;
}

static int omit_all(void *p, int kind, sqlite3_changeset_iter *it)
{
	(void)p;
	(void)kind;
	(void)it;
	return SQLITE_CHANGESET_OMIT;
}

/* Last writer wins on the floor: a conflicting row is replaced by the
 * incoming one when its hlc column is not older. */
static int lww(void *p, int kind, sqlite3_changeset_iter *it)
{
	(void)p;
	(void)it;
	if (kind == SQLITE_CHANGESET_DATA || kind == SQLITE_CHANGESET_CONFLICT)
		return SQLITE_CHANGESET_REPLACE;
	return SQLITE_CHANGESET_OMIT;
}

/* Apply es[from..to) into db, BATCH per transaction; wall seconds. */
static double apply_all(sqlite3 *db,
			const struct entries *es,
			size_t from,
			size_t to,
			int (*handler)(void *, int, sqlite3_changeset_iter *))
{
	double t0 = now_s();

	for (size_t i = from; i < to; i += BATCH) {
		size_t end = to - i < BATCH ? to : i + BATCH;

		sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
		for (size_t k = i; k < end; k++)
			if (sqlite3changeset_apply(db, (int)es->e[k].len,
						   (void *)es->e[k].changeset,
						   NULL, handler,
						   NULL) != SQLITE_OK) {
				fprintf(stderr, "apply: %s\n",
					sqlite3_errmsg(db));
				exit(1);
			}
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	}
	return now_s() - t0;
}

/* The floor's best case: each batch of BATCH entries combined first
 * (sqlite3changegroup, not timed) and applied as one changeset, as
 * PERFORMANCE.md's anchor does; wall seconds of the applies. */
static double
apply_grouped(sqlite3 *db,
	      const struct entries *es,
	      size_t from,
	      size_t to,
	      int (*handler)(void *, int, sqlite3_changeset_iter *))
{
	double t = 0;

	for (size_t i = from; i < to; i += BATCH) {
		size_t end = to - i < BATCH ? to : i + BATCH;
		sqlite3_changegroup *g = NULL;
		void *cs = NULL;
		int n = 0;
		double t0;

		sqlite3changegroup_new(&g);
		for (size_t k = i; k < end; k++)
			sqlite3changegroup_add(g, (int)es->e[k].len,
					       (void *)es->e[k].changeset);
		sqlite3changegroup_output(g, &n, &cs);
		sqlite3changegroup_delete(g);
		t0 = now_s();
		sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
		if (sqlite3changeset_apply(db, n, cs, NULL, handler, NULL) !=
		    SQLITE_OK) {
			fprintf(stderr, "apply: %s\n", sqlite3_errmsg(db));
			exit(1);
		}
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
		t += now_s() - t0;
		sqlite3_free(cs);
	}
	return t;
}

/* A database with the demo reference data, as gs__db_open leaves it. */
static sqlite3 *floor_db(struct gs_ctx *ctx, const char *path)
{
	struct gs_synth_opts so = GS_SYNTH_OPTS_INIT;
	sqlite3 *db = NULL;

	CHECK(ctx, "floor open", gs__db_open(&db, ctx, path, GS_DB_CREATE));
	CHECK(ctx, "floor migrate", gs__db_migrate(ctx, db));
	so.profile = GS_SYNTH_DEMO;
	CHECK(ctx, "floor seed", gs__synth_generate(ctx, db, &so, NULL));
	return db;
}

static struct gs_store *store_new(struct gs_ctx *ctx, const char *path)
{
	struct gs_synth_opts so = GS_SYNTH_OPTS_INIT;
	struct gs_store *st = NULL;

	CHECK(ctx, "store open",
	      gs__store_open(&st, ctx, path, GS_STORE_CREATE));
	so.profile = GS_SYNTH_DEMO;
	CHECK(ctx, "store seed", gs__store_seed(st, &so));
	return st;
}

static struct gs_device *device_new(struct gs_ctx *ctx,
				    const char *dir,
				    const char *name,
				    const char *worker)
{
	struct gs_device_init_opts o = GS_DEVICE_INIT_OPTS_INIT;
	struct gs_device *dev = NULL;
	char file[128];

	snprintf(file, sizeof(file), "%s.db", name);
	o.device_id = name;
	o.worker_id = worker;
	o.demo = 1;
	CHECK(ctx, "device init",
	      gs_device_init(&dev, ctx, gs_test_path(dir, file), &o));
	CHECK(ctx, "device normal", gs__device_set_normal(dev, 1));
	return dev;
}

static void enroll(struct gs_ctx *ctx,
		   struct gs_store *st,
		   struct gs_device *dev,
		   const char *name,
		   const char *worker,
		   struct gs_store_device *sd)
{
	struct gs_status s;

	CHECK(ctx, "status", gs_device_status(dev, &s));
	CHECK(ctx, "enroll", gs__store_enroll(st, name, worker, s.scope, sd));
}

/* Ids of the device's households (its scope), up to cap. */
static size_t
households(struct gs_device *dev, char (*ids)[GS_ID_LEN], size_t cap)
{
	sqlite3_stmt *s = NULL;
	size_t n = 0;

	sqlite3_prepare_v2(gs__device_db(dev),
			   "SELECT id FROM household ORDER BY id", -1, &s,
			   NULL);
	while (n < cap && sqlite3_step(s) == SQLITE_ROW)
		snprintf(ids[n++], GS_ID_LEN, "%s", sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	return n;
}

/* ---- S1 ------------------------------------------------------------------ */

static void
s1(struct gs_ctx *ctx, const char *dir, size_t n_visits, size_t n_issues)
{
	struct gs_synth_rng rng;
	struct gs_device *dev;
	struct gs_store *st;
	struct gs_store_device sd;
	struct entries es = { 0 };
	char worker[GS_UUID_LEN];
	char(*hh)[GS_ID_LEN] = calloc(256, GS_ID_LEN);
	size_t n_hh;
	size_t applied = 0;
	size_t conflicts = 0;
	size_t rows = 0;
	size_t bytes = 0;
	double t0;
	double t_rec;
	double t_push;
	double t_vis;
	double t_iss;
	size_t first;
	double t_floor;
	double t_group;
	double c0;
	double c_push1;
	sqlite3 *fl;

	gs__synth_rng_seed(&rng, 42);
	st = store_new(ctx, gs_test_path(dir, "s1-server.db"));
	CHECK(ctx, "pick",
	      gs__synth_pick_worker(ctx, gs__store_db(st), "GW", "responsible",
				    worker));
	dev = device_new(ctx, dir, "s1-dev", worker);
	enroll(ctx, st, dev, "s1-dev", worker, &sd);
	n_hh = households(dev, hh, 256);
	t0 = now_s();
	for (size_t i = 0; i < n_visits; i++) {
		struct gs_visit_opts v = GS_VISIT_OPTS_INIT;
		char summary[GS_SYNTH_TEXT_MAX];
		char answers[GS_SYNTH_TEXT_MAX];
		char id[GS_ID_LEN];

		gs__synth_visit_summary(summary, sizeof(summary), &rng);
		gs__synth_visit_answers(answers, sizeof(answers), &rng);
		v.household_id = hh[i % n_hh];
		v.kind = "routine";
		v.outcome = "met";
		v.summary = summary;
		v.answers = answers;
		v.lat = 30.66 + (double)(i % 100) * 1e-5;
		v.lng = 104.07;
		v.has_location = 1;
		CHECK(ctx, "visit", gs_visit_add(dev, id, &v));
	}
	for (size_t i = 0; i < n_issues; i++) {
		struct gs_issue_report_opts o = GS_ISSUE_REPORT_OPTS_INIT;
		struct gs_synth_issue is;
		char id[GS_ID_LEN];

		gs__synth_issue(&is, &rng, NULL);
		o.category = is.category_code;
		o.grade = is.grade;
		o.title = is.title;
		o.description = is.description;
		o.household_id = hh[i % n_hh];
		CHECK(ctx, "issue", gs_issue_report(dev, id, &o));
	}
	t_rec = now_s() - t0;
	outbox(dev, 0, &es);
	for (size_t i = 0; i < es.n; i++)
		bytes += es.e[i].len;
	rows = n_visits + 3 * n_issues;

	/* One push of 1,000 visits alone, for its CPU time; then the other
	 * visits, then the issues (timed apart: an issue entry is three rows
	 * and the state machine). */
	first = BATCH < n_visits ? BATCH : n_visits;
	c0 = cpu_s();
	t_vis = push_all(ctx, st, &sd, &es, 0, first, &applied, &conflicts);
	c_push1 = cpu_s() - c0;
	t_vis += push_all(ctx, st, &sd, &es, first, n_visits, &applied,
			  &conflicts);
	t_iss = push_all(ctx, st, &sd, &es, n_visits, es.n, &applied,
			 &conflicts);
	t_push = t_vis + t_iss;

	fl = floor_db(ctx, gs_test_path(dir, "s1-floor.db"));
	t_floor = apply_all(fl, &es, 0, es.n, omit_all);
	gs__db_close(fl);
	fl = floor_db(ctx, gs_test_path(dir, "s1-floor2.db"));
	t_group = apply_grouped(fl, &es, 0, es.n, omit_all);

	printf("S1  %zu visits + %zu issues recorded in %.2f s; %zu entries,"
	       " %zu rows, %.0f changeset bytes per row\n",
	       n_visits, n_issues, t_rec, es.n, rows,
	       (double)bytes / (double)rows);
	printf("S1  merge (gs__store_push, %d per commit):  %.3f s  %8.0f "
	       "entries/s  %8.0f rows/s  (%zu applied, %zu conflicts)\n",
	       BATCH, t_push, (double)es.n / t_push, (double)rows / t_push,
	       applied, conflicts);
	printf("S1    visits %.1f us/entry, issues %.1f us/entry (with"
	       " their commits)\n",
	       t_vis * 1e6 / (double)n_visits,
	       n_issues ? t_iss * 1e6 / (double)n_issues : 0.0);
	printf("S1  floor (sqlite3changeset_apply, same):  %.3f s  %8.0f "
	       "entries/s  %8.0f rows/s\n",
	       t_floor, (double)es.n / t_floor, (double)rows / t_floor);
	printf("S1  floor (one grouped changeset per %d):  %.3f s  %8.0f "
	       "entries/s  %8.0f rows/s\n",
	       BATCH, t_group, (double)es.n / t_group, (double)rows / t_group);
	printf("S1  merge rate / floor rate: %.2f per entry, %.2f grouped;"
	       " one push of %d visits: %.1f ms CPU\n",
	       t_floor / t_push, t_group / t_push, BATCH, c_push1 * 1e3);
	if (applied != es.n)
		printf("S1  ERROR: %zu of %zu entries applied\n", applied,
		       es.n);
	gs__db_close(fl);
	entries_free(&es);
	gs_device_close(dev);
	gs__store_close(st);
	free(hh);
}

/* ---- S2 and S3 -------------------------------------------------------- */

struct bdev {
	struct gs_device *dev;
	struct gs_capture *cap;
	struct gs_store_device sd;
	char name[32];
	struct entries es;
	size_t first_phase; /* entries of the 300 synced rows */
	size_t n_upd;       /* updates made in phase 2 */
	char (*own)[GS_ID_LEN];
	size_t n_own;
};

/* One captured transaction of raw SQL; returns its HLC. */
static uint64_t dwrite(struct gs_ctx *ctx, struct bdev *d, const char *sql)
{
	uint64_t hlc = 0;
	char *err = NULL;

	CHECK(ctx, "begin", gs__capture_begin(d->cap, &hlc));
	if (sqlite3_exec(gs__device_db(d->dev), sql, NULL, NULL, &err) !=
	    SQLITE_OK) {
		fprintf(stderr, "%s: %s\n", sql, err);
		exit(1);
	}
	CHECK(ctx, "commit", gs__capture_commit(d->cap, NULL));
	return hlc;
}

static void new_household(struct gs_ctx *ctx, struct bdev *d, const char *grid)
{
	char sql[512];
	char hlc_text[GS_HLC_TEXT_LEN];
	char id[GS_ID_LEN];

	gs__uuid7(ctx, id);
	gs__hlc_format(hlc_text, 0);
	snprintf(sql, sizeof(sql),
		 "INSERT INTO household (id, grid_id, size, residence_type,"
		 " tenure, status, note, hlc, origin, created_at, created_by)"
		 " VALUES ('%s', '%s', %zu, '户籍', '自有', 'active',"
		 " '新登记住户，家中两位老人需定期走访', '%s', '%s',"
		 " '2025-03-01T08:30:00.000Z', '%s')",
		 id, grid, d->n_own % 6 + 1, hlc_text, d->name,
		 d->sd.worker_id);
	dwrite(ctx, d, sql);
	memcpy(d->own[d->n_own++], id, GS_ID_LEN);
}

static long long live_households(struct gs_store *st, const char *tag)
{
	sqlite3_stmt *s = NULL;
	long long v = -1;
	char sql[160];

	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM household WHERE deleted = 0 AND"
		 " origin LIKE '%s-%%'",
		 tag);
	sqlite3_prepare_v2(gs__store_db(st), sql, -1, &s, NULL);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

struct expect {
	char pk[GS_ID_LEN];
	char value[2][64];
	uint64_t hlc[2];
	const char *dev[2];
};

static void
s23(struct gs_ctx *ctx, const char *dir, size_t n_dev, bool conflicts_on)
{
	struct bdev *d = calloc(n_dev, sizeof(*d));
	struct expect *ex = NULL;
	size_t n_ex = 0;
	struct gs_store *st;
	char worker[GS_UUID_LEN];
	char grid[GS_UUID_LEN];
	char tag[8];
	size_t applied = 0;
	size_t n_conf = 0;
	size_t changes = 0;
	double t_push = 0;
	double t_floor = 0;
	double t_group = 0;
	sqlite3 *fl;
	sqlite3 *fl2;

	snprintf(tag, sizeof(tag), "%s", conflicts_on ? "S3" : "S2");
	{
		char name[64];

		snprintf(name, sizeof(name), "%s-server.db", tag);
		st = store_new(ctx, gs_test_path(dir, name));
		snprintf(name, sizeof(name), "%s-floor.db", tag);
		fl = floor_db(ctx, gs_test_path(dir, name));
		snprintf(name, sizeof(name), "%s-floor2.db", tag);
		fl2 = floor_db(ctx, gs_test_path(dir, name));
	}
	CHECK(ctx, "pick",
	      gs__synth_pick_worker(ctx, gs__store_db(st), "GW", "responsible",
				    worker));
	{
		char sql[256];
		sqlite3_stmt *s = NULL;

		snprintf(sql, sizeof(sql),
			 "SELECT grid_id FROM assignment WHERE worker_id ="
			 " '%s' LIMIT 1",
			 worker);
		sqlite3_prepare_v2(gs__store_db(st), sql, -1, &s, NULL);
		sqlite3_step(s);
		snprintf(grid, sizeof(grid), "%s", sqlite3_column_text(s, 0));
		sqlite3_finalize(s);
	}
	if (conflicts_on)
		ex = calloc(n_dev / 2 * 50, sizeof(*ex));
	/* Phase 1: 300 synced households per device. */
	for (size_t i = 0; i < n_dev; i++) {
		snprintf(d[i].name, sizeof(d[i].name), "%s-dev%02zu", tag, i);
		d[i].dev = device_new(ctx, dir, d[i].name, worker);
		CHECK(ctx, "capture",
		      gs__capture_open(&d[i].cap, ctx,
				       gs__device_db(d[i].dev)));
		enroll(ctx, st, d[i].dev, d[i].name, worker, &d[i].sd);
		d[i].own = calloc(1100, GS_ID_LEN);
		for (int k = 0; k < 300; k++)
			new_household(ctx, &d[i], grid);
		outbox(d[i].dev, 0, &d[i].es);
		d[i].first_phase = d[i].es.n;
		push_all(ctx, st, &d[i].sd, &d[i].es, 0, d[i].es.n, &applied,
			 &n_conf);
		apply_all(fl, &d[i].es, 0, d[i].es.n, lww);
		apply_all(fl2, &d[i].es, 0, d[i].es.n, lww);
	}
	/* S3: the second device of each pair holds the first's first 50
	 * rows too (as if pulled). */
	for (size_t i = 0; conflicts_on && i + 1 < n_dev; i += 2) {
		char sql[4096];

		char ids[50 * (GS_ID_LEN + 3)] = "";

		for (size_t r = 0; r < 50; r++)
			snprintf(ids + strlen(ids), sizeof(ids) - strlen(ids),
				 "%s'%s'", r ? "," : "", d[i].own[r]);
		snprintf(sql, sizeof(sql),
			 "ATTACH '%s/%s.db' AS p; INSERT INTO household SELECT"
			 " * FROM p.household WHERE id IN (%s); DETACH p;",
			 dir, d[i].name, ids);
		if (sqlite3_exec(gs__device_db(d[i + 1].dev), sql, NULL, NULL,
				 NULL) != SQLITE_OK) {
			fprintf(stderr, "copy: %s\n",
				sqlite3_errmsg(gs__device_db(d[i + 1].dev)));
			exit(1);
		}
	}
	/* Phase 2: 1,000 changes per device, interleaved across devices so
	 * that the clocks mix. */
	for (int k = 0; k < 1000; k++) {
		for (size_t j = 0; j < n_dev; j++) {
			/* Every other round backwards, so that either side of
			 * a pair writes last. */
			size_t i = k % 2 ? n_dev - 1 - j : j;
			struct bdev *b = &d[i];
			char sql[512];

			if (k % 10 < 7) {
				new_household(ctx, b, grid);
			} else if (k % 20 == 19) {
				/* 50 deletes, of rows nobody else holds */
				snprintf(
					sql, sizeof(sql),
					"DELETE FROM household WHERE id = '%s'",
					b->own[100 + (size_t)k / 20]);
				dwrite(ctx, b, sql);
			} else {
				/* 250 updates; in S3 every fifth on one of the
				 * pair's 50 shared rows */
				size_t u = b->n_upd++;
				bool shared = conflicts_on && u % 5 == 0;

				if (shared) {
					size_t owner = i & ~(size_t)1;
					size_t r = u / 5;
					struct expect *e =
						&ex[owner / 2 * 50 + r];
					int side = (int)(i & 1);

					snprintf(e->value[side],
						 sizeof(e->value[side]),
						 "%s-%zu", b->name, r);
					snprintf(sql, sizeof(sql),
						 "UPDATE household SET note ="
						 " '%s' WHERE id = '%s'",
						 e->value[side],
						 d[owner].own[r]);
					memcpy(e->pk, d[owner].own[r],
					       GS_ID_LEN);
					e->hlc[side] = dwrite(ctx, b, sql);
					e->dev[side] = b->name;
				} else {
					snprintf(sql, sizeof(sql),
						 "UPDATE household SET size ="
						 " size + 1, note = 'u%zu'"
						 " WHERE id = '%s'",
						 u, b->own[200 + u % 100]);
					dwrite(ctx, b, sql);
				}
			}
		}
	}
	n_ex = conflicts_on ? n_dev / 2 * 50 : 0;
	for (size_t i = 0; i < n_dev; i++)
		outbox(d[i].dev, d[i].es.e[d[i].es.n - 1].device_seq, &d[i].es);
	/* The floor: the same second-phase changesets, device after device,
	 * last writer wins by arrival. */
	for (size_t i = 0; i < n_dev; i++) {
		t_floor += apply_all(fl, &d[i].es, d[i].first_phase, d[i].es.n,
				     lww);
		t_group += apply_grouped(fl2, &d[i].es, d[i].first_phase,
					 d[i].es.n, lww);
		changes += d[i].es.n - d[i].first_phase;
	}
	applied = 0;
	n_conf = 0;
	/* Pairs arrive in either order: the later write comes first in
	 * every other pair. */
	for (size_t j = 0; j < n_dev; j++) {
		size_t i = (j / 2) % 2 ? j ^ 1 : j;

		t_push +=
			push_all(ctx, st, &d[i].sd, &d[i].es, d[i].first_phase,
				 d[i].es.n, &applied, &n_conf);
	}
	printf("%s  %zu devices, %zu changes: merge %.3f s %8.0f changes/s;"
	       " floor %.3f s %8.0f/s per entry, %.3f s %8.0f/s one changeset"
	       " per device; ratios %.2f, %.2f\n",
	       tag, n_dev, changes, t_push, (double)changes / t_push, t_floor,
	       (double)changes / t_floor, t_group, (double)changes / t_group,
	       t_floor / t_push, t_group / t_push);
	printf("%s  applied %zu of %zu; conflicts reported in acks %zu;"
	       " live device households %lld (expected %zu)\n",
	       tag, applied, changes, n_conf, live_households(st, tag),
	       n_dev * 950);
	if (conflicts_on) {
		size_t later = 0;
		size_t recorded = 0;
		sqlite3_stmt *val = NULL;
		sqlite3_stmt *rec = NULL;

		sqlite3_prepare_v2(gs__store_db(st),
				   "SELECT note FROM household WHERE id = ?",
				   -1, &val, NULL);
		sqlite3_prepare_v2(
			gs__store_db(st),
			"SELECT count(*) FROM srv_conflict WHERE tbl ="
			" 'household' AND pk = ?1 AND col = 'note' AND"
			" winner_device = ?2 AND winner_hlc = ?3 AND"
			" winner_value = ?4 AND loser_device = ?5 AND"
			" loser_hlc = ?6 AND loser_value = ?7",
			-1, &rec, NULL);
		for (size_t k = 0; k < n_ex; k++) {
			const struct expect *e = &ex[k];
			int w = gs__stamp_cmp(e->hlc[0], e->dev[0], e->hlc[1],
					      e->dev[1]) > 0
					? 0
					: 1;

			sqlite3_bind_text(val, 1, e->pk, -1, SQLITE_STATIC);
			if (sqlite3_step(val) == SQLITE_ROW &&
			    strcmp((const char *)sqlite3_column_text(val, 0),
				   e->value[w]) == 0)
				later++;
			sqlite3_reset(val);
			sqlite3_bind_text(rec, 1, e->pk, -1, SQLITE_STATIC);
			sqlite3_bind_text(rec, 2, e->dev[w], -1, SQLITE_STATIC);
			sqlite3_bind_int64(rec, 3, (sqlite3_int64)e->hlc[w]);
			sqlite3_bind_text(rec, 4, e->value[w], -1,
					  SQLITE_STATIC);
			sqlite3_bind_text(rec, 5, e->dev[!w], -1,
					  SQLITE_STATIC);
			sqlite3_bind_int64(rec, 6, (sqlite3_int64)e->hlc[!w]);
			sqlite3_bind_text(rec, 7, e->value[!w], -1,
					  SQLITE_STATIC);
			if (sqlite3_step(rec) == SQLITE_ROW &&
			    sqlite3_column_int(rec, 0) >= 1)
				recorded++;
			sqlite3_reset(rec);
		}
		sqlite3_finalize(val);
		sqlite3_finalize(rec);
		printf("S3  conflicting rows %zu: later write kept %zu "
		       "(%.1f%%),"
		       " recorded with both sides %zu (%.1f%%)\n",
		       n_ex, later, 100.0 * (double)later / (double)n_ex,
		       recorded, 100.0 * (double)recorded / (double)n_ex);
	}
	for (size_t i = 0; i < n_dev; i++) {
		entries_free(&d[i].es);
		gs__capture_close(d[i].cap);
		gs_device_close(d[i].dev);
		free(d[i].own);
	}
	free(d);
	free(ex);
	gs__db_close(fl);
	gs__db_close(fl2);
	gs__store_close(st);
}

/* ---- district seed and B1 -------------------------------------------- */

static int replace_fk(void *p, int kind, sqlite3_changeset_iter *it)
{
	(void)p;
	(void)it;
	if (kind == SQLITE_CHANGESET_DATA || kind == SQLITE_CHANGESET_CONFLICT)
		return SQLITE_CHANGESET_REPLACE;
	return SQLITE_CHANGESET_OMIT;
}

/* Seed the district profile (timed), then bootstrap a fresh micro-grid
 * device from it (B1, server side: pull and apply, no network). */
static void district(struct gs_ctx *ctx, const char *dir)
{
	struct gs_synth_opts so = GS_SYNTH_OPTS_INIT;
	struct gs_store *st = NULL;
	struct gs_store_device sd;
	struct gs_store_pull_out po;
	char worker[GS_UUID_LEN];
	char scope[1024] = "";
	char want[65];
	char got[65];
	sqlite3 *dev = NULL;
	sqlite3_stmt *s = NULL;
	uint64_t cursor = 0;
	size_t rows = 0;
	size_t bytes = 0;
	size_t chunks = 0;
	double t0;
	double t_pull = 0;
	double t_apply = 0;

	CHECK(ctx, "store open",
	      gs__store_open(&st, ctx, gs_test_path(dir, "district.db"),
			     GS_STORE_CREATE));
	so.profile = GS_SYNTH_DISTRICT;
	t0 = now_s();
	CHECK(ctx, "seed", gs__store_seed(st, &so));
	printf("SEED district profile seeded and published in %.1f s\n",
	       now_s() - t0);
	CHECK(ctx, "pick",
	      gs__synth_pick_worker(ctx, gs__store_db(st), "GW", "responsible",
				    worker));
	sqlite3_prepare_v2(gs__store_db(st),
			   "SELECT group_concat(g.code) FROM assignment a JOIN"
			   " grid g ON g.id = a.grid_id WHERE a.worker_id = ?",
			   -1, &s, NULL);
	sqlite3_bind_text(s, 1, worker, -1, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW)
		snprintf(scope, sizeof(scope), "%s", sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	CHECK(ctx, "enroll",
	      gs__store_enroll(st, "b1-dev", worker, scope, &sd));
	CHECK(ctx, "device db",
	      gs__db_open(&dev, ctx, gs_test_path(dir, "b1.db"), GS_DB_CREATE));
	CHECK(ctx, "device migrate", gs__db_migrate(ctx, dev));
	gs__store_pull_out_init(&po, ctx);
	do {
		t0 = now_s();
		CHECK(ctx, "pull",
		      gs__store_pull(st, &sd, cursor, 1u << 20, &po));
		t_pull += now_s() - t0;
		t0 = now_s();
		sqlite3_exec(dev, "BEGIN", NULL, NULL, NULL);
		if (po.changeset.len > 0 &&
		    sqlite3changeset_apply(dev, (int)po.changeset.len,
					   po.changeset.data, NULL, replace_fk,
					   NULL) != SQLITE_OK)
			fprintf(stderr, "apply: %s\n", sqlite3_errmsg(dev));
		sqlite3_exec(dev, "COMMIT", NULL, NULL, NULL);
		t_apply += now_s() - t0;
		rows += po.n_rows;
		bytes += po.changeset.len;
		chunks++;
		cursor = po.next_cursor;
	} while (po.more);
	gs__store_pull_out_fini(&po);
	CHECK(ctx, "scope hash", gs__store_scope_hash(st, &sd, want));
	CHECK(ctx, "device hash", gs__db_content_hash(ctx, dev, got));
	printf("B1  scope %s: %zu rows, %zu bytes in %zu downloads of 1 MiB;"
	       " pull %.3f s, apply %.3f s; content %s\n",
	       scope, rows, bytes, chunks, t_pull, t_apply,
	       strcmp(want, got) == 0 ? "equal" : "DIFFERENT");
	gs__db_close(dev);
	gs__store_close(st);
}

int main(int argc, char **argv)
{
	struct gs_ctx *ctx = gs_test_ctx_new(NULL);
	size_t n_visits = 10000;
	size_t n_issues = 2000;
	size_t n_dev = 50;
	bool keep = false;
	bool dist = false;
	char *dir;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--visits") == 0 && i + 1 < argc)
			n_visits = (size_t)atol(argv[++i]);
		else if (strcmp(argv[i], "--issues") == 0 && i + 1 < argc)
			n_issues = (size_t)atol(argv[++i]);
		else if (strcmp(argv[i], "--devices") == 0 && i + 1 < argc)
			n_dev = (size_t)atol(argv[++i]) & ~(size_t)1;
		else if (strcmp(argv[i], "--keep") == 0)
			keep = true;
		else if (strcmp(argv[i], "--district") == 0)
			dist = true;
		else {
			fprintf(stderr,
				"usage: bench_merge [--visits N] [--issues N]"
				" [--devices N] [--district] [--keep]\n");
			return 2;
		}
	}
	dir = gs_test_tmpdir();
	if (dist) {
		district(ctx, dir);
		if (!keep)
			gs_test_tmpdir_free(dir);
		gs_ctx_free(ctx);
		return 0;
	}
	s1(ctx, dir, n_visits, n_issues);
	if (n_dev >= 2) {
		s23(ctx, dir, n_dev, false);
		s23(ctx, dir, n_dev, true);
	}
	if (keep)
		printf("kept %s\n", dir);
	else
		gs_test_tmpdir_free(dir);
	gs_ctx_free(ctx);
	return 0;
}
