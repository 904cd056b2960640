/*
 * End-to-end sync over loopback (PERFORMANCE.md S1, S2, S3 and B1): a real
 * gridsyncd process, real device databases, gs_device_sync.
 *
 *   bench_sync [s1|s2|s3|b1|all] [scale]
 *
 * "all" runs s1, s2, s3 and b1; scale divides every volume (bench_sync all
 * 10 runs a tenth) except the number of devices. Not a test: it prints
 * figures and the targets they are held against, and exits non-zero only
 * when a run breaks (a sync fails, a verification does not hold).
 *
 * How a figure is taken:
 * - every device is recorded in one child process and synced in another
 *   (forked from this lean parent, which never opens a database), so
 *   ru_maxrss of the syncing child (wait4) is the sync's peak; the peak of
 *   an idle forked child is printed next to it as the part every child
 *   inherits;
 * - the server's peak RSS is VmHWM of gridsyncd, reset (clear_refs 5) just
 *   before the measured syncs and read just before stopping it;
 * - wire bytes are gs_sync_summary's frame bytes (after zstd, TLS records
 *   not included);
 * - the floor replays the changesets the devices captured (read from
 *   gs_outbox before the sync and kept in a file) with
 *   sqlite3changeset_apply into a fresh database migrated with
 *   gs__db_migrate plus the demo profile's rows (the reference data and
 *   the households the visits point at: the same ids as the server's
 *   seed), foreign keys ON, WAL and synchronous=FULL as gs__db_open sets
 *   them; one commit per device and per 1,000 changesets, as the server
 *   commits one Push of up to 1,000 entries; conflicts go to a
 *   last-writer-wins-by-arrival handler. It is printed twice: each
 *   changeset applied on its own (what the server is handed), and each
 *   commit's changesets first combined with sqlite3changegroup, untimed
 *   (PERFORMANCE.md's anchor: one changeset per apply).
 *
 * Volumes at scale 1 take about four minutes on the 2-core VM, most of it
 * in setup and in seeding the district profile for B1.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gridsync/client_internal.h>
#include <gridsync/policy.h>
#include <gridsync/synth.h>

#include "gs_itest.h"

#define MAX_DEV    50
#define SHARED_MAX (MAX_DEV / 2 * 50)
#define BATCH      1000
#define MAX_HH     256 /* households a S1 device visits */
#define MIB        (1024.0 * 1024.0)

/* What one syncing child reports. */
struct devres {
	struct gs_sync_summary sum;
	double t_start;  /* after the barrier */
	double t_pushed; /* the last PushAck (the pull begins) */
	double t_end;
	long maxrss_kb; /* from wait4, filled by the parent */
	int rc;
};

/* One S3 row both devices of a pair edited: side 0 the first device. */
struct expect {
	char pk[GS_ID_LEN];
	char value[2][96];
	uint64_t hlc[2];
	char dev[2][32];
};

/* Results children hand to the parent: a MAP_SHARED page set up before
 * any fork, reset per scenario. */
struct shared {
	struct gs_itest_workers w;
	char b1_worker[64];
	char b1_scope[256];
	uint64_t n_changes; /* outbox entries of the measured phase */
	uint64_t cs_bytes;  /* their changeset bytes */
	int64_t cs_visits;  /* S1: changeset bytes of the visits alone */
	double t_record;
	long long expect_live;
	long long live;
	size_t n_expect;
	size_t n_second_later; /* setup check: the second write is later */
	long long later;
	long long recorded;
	long long distinct_pk;
	long long households; /* B1: rows on the device after the sync */
	long long residents;
	double floor_s;
	double floor_grouped_s;
	uint64_t floor_grouped_conflicts;
	uint64_t floor_changes;
	uint64_t floor_rows;
	uint64_t floor_conflicts;
	uint64_t floor_fk;
	struct devres dev[MAX_DEV];
	struct expect ex[SHARED_MAX];
};

static struct shared *SH;
static unsigned scale = 1;

static double now_s(void)
{
	return (double)gs__clock_mono_ns() / 1e9;
}

/* A broken run (not a slow one): say what and stop. */
static void die(const char *what)
{
	fprintf(stderr, "bench_sync: %s\n", what);
	exit(1);
}

/* Report a failed call with its code and detail text; returns rc so
 * that a child can end with it. The detail never holds field values. */
static int fail_rc(struct gs_ctx *ctx, const char *what, int rc)
{
	fprintf(stderr, "bench_sync: %s: %s: %s\n", what, gs_errname(rc),
		gs_ctx_errmsg(ctx));
	return rc;
}

/* ---- processes ---------------------------------------------------------- */

typedef int (*child_cb)(struct gs_ctx *ctx, void *arg);

/* Run fn in a forked child with its own context; the child exits 0 when
 * fn returns GS_OK. Output is flushed first so that nothing is printed
 * twice. */
static pid_t child_fork(child_cb fn, void *arg)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		die("fork failed");
	if (pid == 0) {
		struct gs_ctx *ctx = NULL;
		int rc = gs_ctx_new(&ctx, NULL);

		if (rc == GS_OK)
			rc = fn(ctx, arg);
		gs_ctx_free(ctx);
		fflush(NULL);
		_exit(rc == GS_OK ? 0 : 1);
	}
	return pid;
}

/* Wait for a child; its peak RSS in KiB goes to *maxrss_kb (may be NULL).
 * Returns its exit status, -1 if it was killed. */
static int child_wait(pid_t pid, long *maxrss_kb)
{
	struct rusage ru;
	int st;

	while (wait4(pid, &st, 0, &ru) < 0)
		if (errno != EINTR)
			return -1;
	if (maxrss_kb != NULL)
		*maxrss_kb = ru.ru_maxrss;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Fork, run and wait; any failure of a setup or verification step ends
 * the bench (its figures would mean nothing). */
static void run_child(const char *what, child_cb fn, void *arg, long *rss)
{
	if (child_wait(child_fork(fn, arg), rss) != 0) {
		fprintf(stderr, "bench_sync: %s failed\n", what);
		exit(1);
	}
}

static int idle(struct gs_ctx *ctx, void *arg)
{
	(void)ctx;
	(void)arg;
	return GS_OK;
}

/* The peak RSS every forked child starts with (the parent's pages). */
static long idle_rss_kb(void)
{
	long kb = 0;

	run_child("idle child", idle, NULL, &kb);
	return kb;
}

/* Printed after a server peak: "" when it covers the measured syncs
 * only, else a note that it covers the whole server run. */
static const char *hwm_scope = "";

/* Reset the server's VmHWM to its current RSS (Linux clear_refs 5). */
static void server_hwm_reset(const struct gs_itest_server *s)
{
	char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/clear_refs", (int)s->pid);
	f = fopen(path, "w");
	if (f == NULL || fputs("5", f) < 0 || fclose(f) != 0) {
		hwm_scope = " (whole server run: clear_refs refused)";
		return;
	}
	hwm_scope = "";
}

/* VmHWM of the server in KiB, -1 if unreadable. */
static long server_hwm_kb(const struct gs_itest_server *s)
{
	char path[64];
	char line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)s->pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* SIGTERM; a server that does not exit 0 lost or broke something, which
 * matters more than any figure. */
static void server_stop(struct gs_itest_server *s)
{
	if (gs_itest_server_stop(s) != 0)
		die("gridsyncd did not stop cleanly (see server.log)");
}

/* The demo profile's workers and grids, read in a child so that the
 * parent never holds a SQLite connection (its pages would be inherited by
 * every measured child). */
static int pick_workers(struct gs_ctx *ctx, void *arg)
{
	(void)ctx;
	gs_itest_workers(arg, &SH->w);
	return GS_OK;
}

/* ---- device helpers (children only) ------------------------------------ */

/* Where gs_itest_device put the database of device `name`. */
static void device_path(char *out,
			size_t cap,
			const struct gs_itest_server *s,
			const char *name)
{
	snprintf(out, cap, "%s/%s.db", s->dir, name);
}

/* One integer from a one-row query with at most one text parameter;
 * *out is left alone when there is no row. */
static int q_int(sqlite3 *db, const char *sql, const char *arg, int64_t *out)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

	if (rc == SQLITE_OK && arg != NULL)
		sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st) == SQLITE_ROW ? SQLITE_OK : SQLITE_ERROR;
	if (rc == SQLITE_OK)
		*out = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_OK ? GS_OK : GS_ERROR;
}

/* One record of an outbox dump, the floor's input: the device (index) and
 * the phase; phase 0 is replayed untimed (S2's synced households), phase
 * 1 is timed. The changeset follows. */
struct rec_hdr {
	uint16_t dev;
	uint16_t phase;
	uint32_t len;
};

/*
 * Append the device's outbox entries after seq *last to f; *last becomes
 * the highest seq written, and the entry and byte counts grow.
 */
static int dump_outbox(struct gs_device *dev,
		       FILE *f,
		       size_t dev_index,
		       uint32_t phase,
		       uint64_t *last,
		       uint64_t *n,
		       uint64_t *bytes)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(gs__device_db(dev),
				    "SELECT seq, changeset FROM gs_outbox"
				    " WHERE seq > ? ORDER BY seq",
				    -1, &st, NULL);

	if (rc != SQLITE_OK)
		return GS_ERROR;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)*last);
	while (sqlite3_step(st) == SQLITE_ROW) {
		struct rec_hdr h;

		h.dev = (uint16_t)dev_index;
		h.phase = (uint16_t)phase;
		h.len = (uint32_t)sqlite3_column_bytes(st, 1);
		if (fwrite(&h, sizeof(h), 1, f) != 1 ||
		    fwrite(sqlite3_column_blob(st, 1), 1, h.len, f) != h.len) {
			rc = SQLITE_IOERR;
			break;
		}
		*last = (uint64_t)sqlite3_column_int64(st, 0);
		(*n)++;
		*bytes += h.len;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_OK ? GS_OK : GS_EIO;
}

/* The hlc of the device's latest save (its newest outbox entry). */
static uint64_t last_hlc(struct gs_device *dev)
{
	int64_t v = 0;

	q_int(gs__device_db(dev),
	      "SELECT hlc FROM gs_outbox ORDER BY seq DESC LIMIT 1", NULL, &v);
	return (uint64_t)v;
}

/* ---- the floor ----------------------------------------------------------- */

/* A dump record in memory (the changeset malloc'd). */
struct rec {
	struct rec_hdr h;
	uint8_t *cs;
};

struct recs {
	struct rec *r;
	size_t n;
};

static void recs_free(struct recs *rs)
{
	for (size_t i = 0; i < rs->n; i++)
		free(rs->r[i].cs);
	free(rs->r);
	rs->r = NULL;
	rs->n = 0;
}

/* Read a whole dump; the floor then times applies only, not file I/O.
 * On failure rs holds what was read so far (recs_free frees it). */
static int recs_load(struct recs *rs, const char *path)
{
	FILE *f = fopen(path, "rb");
	size_t cap = 0;
	struct rec_hdr h;
	int rc = f != NULL ? GS_OK : GS_EIO;

	while (rc == GS_OK && fread(&h, sizeof(h), 1, f) == 1) {
		struct rec *r;

		if (rs->n == cap) {
			struct rec *p;

			cap = cap ? cap * 2 : 4096;
			p = realloc(rs->r, cap * sizeof(*p));
			if (p == NULL) {
				rc = GS_ENOMEM;
				break;
			}
			rs->r = p;
		}
		r = &rs->r[rs->n];
		r->h = h;
		r->cs = malloc(h.len ? h.len : 1);
		if (r->cs == NULL) {
			rc = GS_ENOMEM;
			break;
		}
		rs->n++;
		if (fread(r->cs, 1, h.len, f) != h.len)
			rc = GS_EIO;
	}
	if (f != NULL)
		fclose(f);
	return rc;
}

struct floor_counts {
	uint64_t conflicts;
	uint64_t fk;
};

/* Last writer wins by arrival, as the floor anchor of PERFORMANCE.md. A
 * foreign-key conflict is counted (OMIT then keeps the changes). */
static int floor_handler(void *p, int kind, sqlite3_changeset_iter *it)
{
	struct floor_counts *c = p;

	(void)it;
	if (kind == SQLITE_CHANGESET_FOREIGN_KEY) {
		c->fk++;
		return SQLITE_CHANGESET_OMIT;
	}
	c->conflicts++;
	if (kind == SQLITE_CHANGESET_DATA || kind == SQLITE_CHANGESET_CONFLICT)
		return SQLITE_CHANGESET_REPLACE;
	return SQLITE_CHANGESET_OMIT;
}

/* Input of a floor child: the dump, and one database path per variant. */
struct floor_arg {
	const char *dump;
	const char *db;
	const char *db_grouped;
};

/* Migrated, plus the demo profile's rows (deterministic: the same ids
 * as the server's seed). */
static int floor_open(struct gs_ctx *ctx, const char *path, sqlite3 **out)
{
	struct gs_synth_opts so = GS_SYNTH_OPTS_INIT;
	sqlite3 *db = NULL;
	int rc = gs__db_open(&db, ctx, path, GS_DB_CREATE);

	if (rc == GS_OK)
		rc = gs__db_migrate(ctx, db);
	if (rc == GS_OK)
		rc = gs__synth_generate(ctx, db, &so, NULL);
	if (rc != GS_OK) {
		gs__db_close(db);
		return fail_rc(ctx, "floor database", rc);
	}
	*out = db;
	return GS_OK;
}

/* Apply rs->r[from..to) in one transaction: each changeset on its own,
 * or (grouped) first combined into one with sqlite3changegroup, which is
 * not timed. Returns the seconds spent applying and committing. */
static double floor_batch(struct gs_ctx *ctx,
			  sqlite3 *db,
			  const struct recs *rs,
			  size_t from,
			  size_t to,
			  bool grouped,
			  struct floor_counts *fc,
			  int *rc)
{
	sqlite3_changegroup *g = NULL;
	void *cs = NULL;
	int n = 0;
	double t0;
	double t = 0;

	if (grouped) {
		if (sqlite3changegroup_new(&g) != SQLITE_OK)
			*rc = GS_ENOMEM;
		for (size_t i = from; *rc == GS_OK && i < to; i++)
			if (sqlite3changegroup_add(g, (int)rs->r[i].h.len,
						   rs->r[i].cs) != SQLITE_OK)
				*rc = GS_ECORRUPT;
		if (*rc == GS_OK &&
		    sqlite3changegroup_output(g, &n, &cs) != SQLITE_OK)
			*rc = GS_ENOMEM;
		sqlite3changegroup_delete(g);
	}
	t0 = now_s();
	if (*rc == GS_OK &&
	    sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		*rc = gs__err_from_sqlite(ctx, SQLITE_ERROR, db);
	if (*rc == GS_OK && grouped &&
	    sqlite3changeset_apply(db, n, cs, NULL, floor_handler, fc) !=
		    SQLITE_OK)
		*rc = gs__err_from_sqlite(ctx, SQLITE_ERROR, db);
	for (size_t i = from; *rc == GS_OK && !grouped && i < to; i++)
		if (sqlite3changeset_apply(db, (int)rs->r[i].h.len, rs->r[i].cs,
					   NULL, floor_handler,
					   fc) != SQLITE_OK)
			*rc = gs__err_from_sqlite(ctx, SQLITE_ERROR, db);
	if (*rc == GS_OK &&
	    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		*rc = gs__err_from_sqlite(ctx, SQLITE_ERROR, db);
	t = now_s() - t0;
	sqlite3_free(cs);
	return t;
}

/* Replay every record: batches end at BATCH entries, at a device change
 * (a device's push is its own commit on the server) and at a phase
 * change; only phase 1 counts. Seconds of phase 1. */
static double floor_replay(struct gs_ctx *ctx,
			   sqlite3 *db,
			   const struct recs *rs,
			   bool grouped,
			   struct floor_counts *fc,
			   int *rc)
{
	double t = 0;
	size_t i = 0;

	while (*rc == GS_OK && i < rs->n) {
		size_t j = i + 1;
		double s;

		while (j < rs->n && j - i < BATCH &&
		       rs->r[j].h.dev == rs->r[i].h.dev &&
		       rs->r[j].h.phase == rs->r[i].h.phase)
			j++;
		s = floor_batch(ctx, db, rs, i, j, grouped, fc, rc);
		if (rs->r[i].h.phase == 1)
			t += s;
		i = j;
	}
	return t;
}

/* The floor, per changeset and grouped, each into its own database. */
static int floor_run(struct gs_ctx *ctx, void *arg)
{
	const struct floor_arg *a = arg;
	struct floor_counts fc = { 0, 0 };
	struct floor_counts fg = { 0, 0 };
	struct recs rs = { NULL, 0 };
	sqlite3 *db = NULL;
	int rc = recs_load(&rs, a->dump);

	for (size_t i = 0; rc == GS_OK && i < rs.n; i++) {
		sqlite3_changeset_iter *it = NULL;

		if (rs.r[i].h.phase != 1)
			continue;
		SH->floor_changes++;
		if (sqlite3changeset_start(&it, (int)rs.r[i].h.len,
					   rs.r[i].cs) != SQLITE_OK) {
			rc = GS_ECORRUPT;
			break;
		}
		while (sqlite3changeset_next(it) == SQLITE_ROW)
			SH->floor_rows++;
		sqlite3changeset_finalize(it);
	}
	if (rc == GS_OK)
		rc = floor_open(ctx, a->db, &db);
	if (rc == GS_OK)
		SH->floor_s = floor_replay(ctx, db, &rs, false, &fc, &rc);
	gs__db_close(db);
	db = NULL;
	if (rc == GS_OK)
		rc = floor_open(ctx, a->db_grouped, &db);
	if (rc == GS_OK)
		SH->floor_grouped_s =
			floor_replay(ctx, db, &rs, true, &fg, &rc);
	gs__db_close(db);
	SH->floor_conflicts = fc.conflicts;
	SH->floor_fk = fc.fk;
	SH->floor_grouped_conflicts = fg.conflicts;
	recs_free(&rs);
	return rc == GS_OK ? GS_OK : fail_rc(ctx, "floor", rc);
}

/* ---- the measured sync --------------------------------------------------- */

/* Input of a syncing child. The barrier fds are -1 when one device syncs
 * alone (S1, B1). */
struct sync_arg {
	char path[4200];
	struct devres *res;
	int ready_fd; /* write one byte when open, -1: no barrier */
	int go_fd;    /* read until EOF before syncing */
	int go_wfd;   /* the barrier's write end: closed at once */
};

/* The pull starts when no outbox entry is left to push: the first "pull"
 * marks the end of the push phase. */
static void
on_progress(const char *phase, const struct gs_sync_summary *sum, void *payload)
{
	struct devres *r = payload;

	(void)sum;
	if (strcmp(phase, "pull") == 0 && r->t_pushed == 0)
		r->t_pushed = now_s();
}

/* Open the device, wait at the barrier (if any), sync once to the end.
 * The summary lands in shared memory. */
static int sync_child(struct gs_ctx *ctx, void *arg)
{
	struct sync_arg *a = arg;
	struct gs_sync_opts so = GS_SYNC_OPTS_INIT;
	struct gs_device *dev = NULL;
	int rc;

	if (a->go_wfd >= 0)
		close(a->go_wfd);
	rc = gs_device_open(&dev, ctx, a->path);
	if (rc != GS_OK)
		return fail_rc(ctx, "open device", rc);
	if (a->ready_fd >= 0) {
		char c = 1;
		ssize_t w = write(a->ready_fd, &c, 1);

		(void)w; /* the parent then waits for EOF on go instead */
		close(a->ready_fd);
	}
	if (a->go_fd >= 0) {
		char c;

		while (read(a->go_fd, &c, 1) < 0 && errno == EINTR)
			;
		close(a->go_fd);
	}
	so.timeout_ms = 600000;
	so.max_attempts = 3;
	so.progress = on_progress;
	so.payload = a->res;
	a->res->t_start = now_s();
	rc = gs_device_sync(dev, &so, &a->res->sum);
	a->res->t_end = now_s();
	a->res->rc = rc;
	if (rc != GS_OK)
		fail_rc(ctx, "sync", rc);
	gs_device_close(dev);
	return rc;
}

/* ---- S1 ------------------------------------------------------------------ */

/* Household ids a S1 device spreads its visits and issues over. */
struct hh_list {
	char id[MAX_HH][GS_ID_LEN];
	size_t n;
};

static int collect_household(const struct gs_row *row, void *payload)
{
	struct hh_list *l = payload;

	snprintf(l->id[l->n++], GS_ID_LEN, "%s", gs_row_get(row, "id"));
	return l->n == MAX_HH ? 1 : 0;
}

struct s1_arg {
	struct gs_itest_server *srv;
	const char *name;
	const char *dump;
	size_t n_visits;
	size_t n_issues;
};

/* Enrol, bootstrap, record the visits and issues offline (one
 * transaction each, at NORMAL so that setup is quick), dump the outbox. */
static int s1_record(struct gs_ctx *ctx, void *arg)
{
	const struct s1_arg *a = arg;
	struct gs_synth_rng rng;
	struct hh_list *hh = calloc(1, sizeof(*hh));
	struct gs_device *dev;
	uint64_t last = 0;
	FILE *f = NULL;
	double t0;
	int rc;

	if (hh == NULL)
		return GS_ENOMEM;
	dev = gs_itest_device(a->srv, ctx, a->name, SH->w.gw_a, SH->w.grid_a);
	gs_itest_sync(dev, NULL);
	gs_household_list(dev, collect_household, hh);
	if (hh->n == 0) {
		rc = gs__err(ctx, GS_ENOTFOUND, "no household after bootstrap");
		goto out;
	}
	rc = gs__device_set_normal(dev, 1);
	gs__synth_rng_seed(&rng, 42);
	t0 = now_s();
	for (size_t i = 0; rc == GS_OK && i < a->n_visits; i++) {
		struct gs_visit_opts v = GS_VISIT_OPTS_INIT;
		char summary[GS_SYNTH_TEXT_MAX];
		char answers[GS_SYNTH_TEXT_MAX];
		char id[GS_ID_LEN];

		gs__synth_visit_summary(summary, sizeof(summary), &rng);
		gs__synth_visit_answers(answers, sizeof(answers), &rng);
		v.household_id = hh->id[i % hh->n];
		v.kind = "routine";
		v.outcome = "met";
		v.summary = summary;
		v.answers = answers;
		v.lat = 30.66 + (double)(i % 100) * 1e-5;
		v.lng = 104.07;
		v.has_location = 1;
		rc = gs_visit_add(dev, id, &v);
	}
	if (rc == GS_OK)
		rc = q_int(gs__device_db(dev),
			   "SELECT total(length(changeset)) FROM gs_outbox",
			   NULL, &SH->cs_visits);
	for (size_t i = 0; rc == GS_OK && i < a->n_issues; i++) {
		struct gs_issue_report_opts o = GS_ISSUE_REPORT_OPTS_INIT;
		struct gs_synth_issue is;
		char id[GS_ID_LEN];

		gs__synth_issue(&is, &rng, NULL);
		o.category = is.category_code;
		o.grade = is.grade;
		o.title = is.title;
		o.description = is.description;
		o.household_id = hh->id[i % hh->n];
		rc = gs_issue_report(dev, id, &o);
	}
	SH->t_record = now_s() - t0;
	if (rc == GS_OK)
		rc = gs__device_set_normal(dev, 0);
	f = fopen(a->dump, "wb");
	if (rc == GS_OK && f == NULL)
		rc = GS_EIO;
	if (rc == GS_OK)
		rc = dump_outbox(dev, f, 0, 1, &last, &SH->n_changes,
				 &SH->cs_bytes);
out:
	if (f != NULL && fclose(f) != 0 && rc == GS_OK)
		rc = GS_EIO;
	gs_device_close(dev);
	free(hh);
	return rc == GS_OK ? GS_OK : fail_rc(ctx, "S1 recording", rc);
}

/* A target verdict as printed. */
static const char *met(bool ok)
{
	return ok ? "met" : "NOT MET";
}

/* The floor of this run and the end-to-end rate against it (changes
 * over seconds, the same changes the floor applied). */
static void print_floor(const char *tag, double seconds, uint64_t changes)
{
	double rate = (double)changes / seconds;
	double per = (double)SH->floor_changes / SH->floor_s;
	double grp = (double)SH->floor_changes / SH->floor_grouped_s;

	printf("%s  floor, sqlite3changeset_apply of the same %llu changesets"
	       " (%llu rows), a commit per device and %d, WAL FULL, FK on:"
	       " one by one %.3f s = %.0f changes/s; grouped per commit"
	       " %.3f s = %.0f changes/s (LWW handler calls %llu / %llu, FK"
	       " %llu)\n",
	       tag, (unsigned long long)SH->floor_changes,
	       (unsigned long long)SH->floor_rows, BATCH, SH->floor_s, per,
	       SH->floor_grouped_s, grp,
	       (unsigned long long)SH->floor_conflicts,
	       (unsigned long long)SH->floor_grouped_conflicts,
	       (unsigned long long)SH->floor_fk);
	printf("%s  ratio end-to-end / floor: %.3f one by one (floor %.1fx"
	       " faster), %.3f grouped (%.1fx)\n",
	       tag, rate / per, per / rate, rate / grp, grp / rate);
}

/*
 * S1 over plain TCP or TLS: a fresh server, one device that bootstraps,
 * records offline and syncs once. Returns non-zero if the sync did not
 * acknowledge every change.
 */
static int s1(bool tls, long idle_kb)
{
	const char *tag = tls ? "S1/tls" : "S1/tcp";
	char *dir = gs_test_tmpdir();
	struct gs_itest_server srv;
	struct s1_arg ra;
	struct sync_arg sa;
	struct floor_arg fa;
	struct devres *r = &SH->dev[0];
	long server_kb;
	double up;
	double rate;
	double rss;
	int bad = 0;

	memset(SH, 0, sizeof(*SH));
	gs_itest_server_create(&srv, dir, tls);
	run_child("workers", pick_workers, &srv, NULL);
	gs_itest_server_start(&srv, NULL);
	ra.srv = &srv;
	ra.name = "s1-dev";
	ra.dump = gs_test_path(dir, "s1.dump");
	ra.n_visits = 10000 / scale;
	ra.n_issues = 2000 / scale;
	run_child("S1 recording", s1_record, &ra, NULL);
	memset(&sa, 0, sizeof(sa));
	device_path(sa.path, sizeof(sa.path), &srv, ra.name);
	sa.res = r;
	sa.ready_fd = sa.go_fd = sa.go_wfd = -1;
	server_hwm_reset(&srv);
	if (child_wait(child_fork(sync_child, &sa), &r->maxrss_kb) != 0)
		die("S1 sync failed");
	server_kb = server_hwm_kb(&srv);
	server_stop(&srv);
	fa.dump = ra.dump;
	fa.db = gs_test_path(dir, "floor.db");
	fa.db_grouped = gs_test_path(dir, "floor-grouped.db");
	run_child("S1 floor", floor_run, &fa, NULL);

	up = (double)r->sum.bytes_up;
	rate = (double)SH->n_changes / r->sum.seconds;
	rss = (double)r->maxrss_kb / 1024.0;
	printf("%s  recorded %zu visits + %zu issues offline in %.2f s:"
	       " %llu changes, %.0f changeset bytes per change (a visit %.0f,"
	       " an issue with its event %.0f)\n",
	       tag, ra.n_visits, ra.n_issues, SH->t_record,
	       (unsigned long long)SH->n_changes,
	       (double)SH->cs_bytes / (double)SH->n_changes,
	       (double)SH->cs_visits / (double)ra.n_visits,
	       (double)((int64_t)SH->cs_bytes - SH->cs_visits) /
		       (double)ra.n_issues);
	printf("%s  sync %.3f s (push %.3f s, pull %.3f s): %.0f changes/s"
	       " [target >= 40000: %s]\n",
	       tag, r->sum.seconds, r->t_pushed - r->t_start,
	       r->t_end - r->t_pushed, rate, met(rate >= 40000));
	printf("%s  wire up %.2f MiB = %.0f B/change [target <= 350: %s],"
	       " down %.2f MiB = %.0f B/change; pushed %llu, acked %llu,"
	       " rejected %llu, pulled %llu rows, attempts %u\n",
	       tag, up / MIB, up / (double)SH->n_changes,
	       met(up / (double)SH->n_changes <= 350),
	       (double)r->sum.bytes_down / MIB,
	       (double)r->sum.bytes_down / (double)SH->n_changes,
	       (unsigned long long)r->sum.pushed,
	       (unsigned long long)r->sum.acknowledged,
	       (unsigned long long)r->sum.rejected,
	       (unsigned long long)r->sum.pulled_rows, r->sum.attempts);
	printf("%s  client peak RSS %.1f MiB [target <= 16: %s] (an idle"
	       " forked child: %.1f MiB); server peak RSS %.1f MiB%s\n",
	       tag, rss, met(rss <= 16), (double)idle_kb / 1024.0,
	       (double)server_kb / 1024.0, hwm_scope);
	print_floor(tag, r->sum.seconds, SH->n_changes);
	if (r->sum.acknowledged != SH->n_changes || r->sum.rejected != 0) {
		printf("%s  ERROR: %llu of %llu changes acknowledged\n", tag,
		       (unsigned long long)r->sum.acknowledged,
		       (unsigned long long)SH->n_changes);
		bad = 1;
	}
	gs_test_tmpdir_free(dir);
	return bad;
}

/* ---- S2 and S3 ---------------------------------------------------------- */

/* What the S2/S3 setup and verification children share. */
struct s23_arg {
	struct gs_itest_server *srv;
	const char *dump;
	bool conflicts;
	size_t n_dev;
};

/* Device ids carry the scenario, so that `origin LIKE 's2-d%'` counts
 * exactly the households the devices created. */
static void dev_name(char *out, size_t cap, bool conflicts, size_t i)
{
	snprintf(out, cap, "%s-d%02zu", conflicts ? "s3" : "s2", i);
}

/* Pairs (2k, 2k+1) share a grid; pairs alternate between the two
 * workers' grids, so each grid holds half of the devices. */
static bool on_grid_a(size_t i)
{
	return (i / 2) % 2 == 0;
}

static const char NOTE[] = "新登记住户，家中两位老人需定期走访";

/* A household as a worker registers it: about 150 bytes of values. */
static int add_household(struct gs_device *dev,
			 const char *grid_id,
			 size_t k,
			 char out[GS_ID_LEN])
{
	char size[16];
	struct gs_field f[] = {
		{ "grid_id", grid_id },
		{ "size", size },
		{ "residence_type", "户籍" },
		{ "tenure", "自有" },
		{ "note", NOTE },
	};

	snprintf(size, sizeof(size), "%zu", k % 6 + 1);
	return gs_household_add(dev, out, f, sizeof(f) / sizeof(f[0]));
}

/* Per-device phase sizes at this scale. */
struct plan {
	size_t n1;     /* households created and synced first */
	size_t n;      /* changes of the measured phase */
	size_t n_ins;  /* of which inserts */
	size_t n_del;  /* deletes (tombstones) */
	size_t n_edit; /* edits */
	size_t n_sh;   /* S3: rows of a pair both edit */
};

/* PERFORMANCE.md's S2 per device (300; 1,000 = 700 + 250 + 50; 50 shared
 * rows per pair in S3), divided by the scale; at least one shared row. */
static struct plan plan_of(void)
{
	struct plan p;

	p.n1 = 300 / scale;
	p.n = 1000 / scale;
	p.n_ins = p.n * 7 / 10;
	p.n_del = p.n / 20;
	p.n_edit = p.n - p.n_ins - p.n_del;
	p.n_sh = 50 / scale;
	if (p.n_sh == 0)
		p.n_sh = 1;
	if (p.n_sh > p.n_edit)
		p.n_sh = p.n_edit;
	return p;
}

/*
 * Phase 2 of one device: p.n changes, the kinds spread evenly (each step
 * takes the kind furthest behind its share, so the totals are exact).
 * Edits: in S3 the first n_sh are the pair's shared rows (the note column
 * only); the others go to the device's own rows that are neither shared
 * nor deleted. Deletes: the device's last households of phase 1.
 */
static int changes(struct gs_device *dev,
		   size_t i,
		   const struct s23_arg *a,
		   const struct plan *p,
		   const char *grid_id,
		   char (*own)[GS_ID_LEN],
		   char (*partner)[GS_ID_LEN])
{
	size_t ins = 0;
	size_t del = 0;
	size_t edit = 0;
	size_t own_edit = 0;
	size_t first = a->conflicts ? p->n_sh : 0;
	size_t editable =
		p->n1 > p->n_del + first + 1 ? p->n1 - p->n_del - first : 1;
	char name[32];
	char id[GS_ID_LEN];
	int rc = GS_OK;

	dev_name(name, sizeof(name), a->conflicts, i);
	for (size_t k = 0; rc == GS_OK && k < p->n; k++) {
		/* How far each kind is behind its share, times p->n. */
		long long d_del = (long long)((k + 1) * p->n_del) -
				  (long long)(del * p->n);
		long long d_edit = (long long)((k + 1) * p->n_edit) -
				   (long long)(edit * p->n);
		long long d_ins = (long long)((k + 1) * p->n_ins) -
				  (long long)(ins * p->n);

		if (d_del >= d_edit && d_del >= d_ins) {
			rc = gs_household_delete(dev, own[p->n1 - 1 - del]);
			del++;
		} else if (d_edit >= d_ins) {
			bool shared = a->conflicts && edit < p->n_sh;

			if (shared) {
				/* Side 1 edits after side 0: its whole
				 * phase runs later. */
				size_t side = i % 2;
				struct expect *e =
					&SH->ex[i / 2 * p->n_sh + edit];
				const char *pk =
					side ? partner[edit] : own[edit];
				struct gs_field f[1];

				snprintf(e->value[side], sizeof(e->value[0]),
					 "%s 第%zu次回访记录", name, edit);
				snprintf(e->dev[side], sizeof(e->dev[0]), "%s",
					 name);
				memcpy(e->pk, pk, GS_ID_LEN);
				f[0].name = "note";
				f[0].value = e->value[side];
				rc = gs_household_edit(dev, pk, f, 1);
				/* The stamp the server will compare: the
				 * outbox entry's hlc, with the device id. */
				e->hlc[side] = last_hlc(dev);
			} else {
				char note[64];
				char size[16];
				struct gs_field f[] = { { "note", note },
							{ "size", size } };

				snprintf(note, sizeof(note), "回访 %zu", edit);
				snprintf(size, sizeof(size), "%zu",
					 edit % 7 + 1);
				rc = gs_household_edit(
					dev, own[first + own_edit++ % editable],
					f, 2);
			}
			edit++;
		} else {
			rc = add_household(dev, grid_id, p->n1 + ins, id);
			ins++;
		}
	}
	return rc;
}

/*
 * Make the devices: enrol, bootstrap, n1 households, sync (one device
 * after the other, so the second of a pair holds the first's rows); then
 * each device's measured changes, device after device (so that the second
 * of a pair edits the shared rows after the first). Both phases are
 * dumped for the floor.
 */
static int s23_setup(struct gs_ctx *ctx, void *arg)
{
	const struct s23_arg *a = arg;
	struct plan p = plan_of();
	char(*own)[GS_ID_LEN] = calloc(MAX_DEV * p.n1 + 1, GS_ID_LEN);
	char(*grid)[64] = calloc(MAX_DEV, 64);
	uint64_t n0 = 0;
	uint64_t b0 = 0;
	FILE *f = fopen(a->dump, "wb");
	int rc = own != NULL && grid != NULL && f != NULL ? GS_OK : GS_EIO;

	for (size_t i = 0; rc == GS_OK && i < a->n_dev; i++) {
		struct gs_device *dev;
		char name[32];
		uint64_t seq0 = 0;
		int64_t dummy;

		dev_name(name, sizeof(name), a->conflicts, i);
		dev = gs_itest_device(a->srv, ctx, name,
				      on_grid_a(i) ? SH->w.gw_a : SH->w.gw_c,
				      on_grid_a(i) ? SH->w.grid_a
						   : SH->w.grid_c);
		gs_itest_sync(dev, NULL);
		{
			sqlite3_stmt *st = NULL;

			sqlite3_prepare_v2(gs__device_db(dev),
					   "SELECT id FROM grid WHERE code = ?",
					   -1, &st, NULL);
			sqlite3_bind_text(st, 1,
					  on_grid_a(i) ? SH->w.grid_a
						       : SH->w.grid_c,
					  -1, SQLITE_STATIC);
			if (sqlite3_step(st) == SQLITE_ROW)
				snprintf(grid[i], 64, "%s",
					 sqlite3_column_text(st, 0));
			sqlite3_finalize(st);
		}
		/* Setup writes at NORMAL (fast); the device is back at FULL
		 * before any sync, as a handheld always runs. */
		rc = grid[i][0] != '\0' ? gs__device_set_normal(dev, 1)
					: GS_ENOTFOUND;
		for (size_t k = 0; rc == GS_OK && k < p.n1; k++)
			rc = add_household(dev, grid[i], k, own[i * p.n1 + k]);
		if (rc == GS_OK)
			rc = dump_outbox(dev, f, i, 0, &seq0, &n0, &b0);
		if (rc == GS_OK)
			rc = gs__device_set_normal(dev, 0);
		if (rc == GS_OK)
			gs_itest_sync(dev, NULL);
		/* The pair's second device must hold the shared rows. */
		if (rc == GS_OK && a->conflicts && i % 2 == 1 &&
		    q_int(gs__device_db(dev),
			  "SELECT count(*) FROM household WHERE id = ?",
			  own[(i - 1) * p.n1], &dummy) == GS_OK &&
		    dummy != 1)
			rc = gs__err(ctx, GS_ENOTFOUND,
				     "device %zu lacks its pair's rows", i);
		gs_device_close(dev);
	}
	for (size_t i = 0; rc == GS_OK && i < a->n_dev; i++) {
		struct gs_device *dev = NULL;
		char path[4200];
		char name[32];
		uint64_t seq = 0;

		dev_name(name, sizeof(name), a->conflicts, i);
		device_path(path, sizeof(path), a->srv, name);
		rc = gs_device_open(&dev, ctx, path);
		if (rc == GS_OK)
			rc = gs__device_set_normal(dev, 1);
		if (rc == GS_OK)
			rc = changes(dev, i, a, &p, grid[i], own + i * p.n1,
				     own + (i & ~(size_t)1) * p.n1);
		if (rc == GS_OK)
			rc = gs__device_set_normal(dev, 0);
		if (rc == GS_OK)
			rc = dump_outbox(dev, f, i, 1, &seq, &SH->n_changes,
					 &SH->cs_bytes);
		SH->expect_live += (long long)(p.n1 + p.n_ins - p.n_del);
		gs_device_close(dev);
	}
	if (a->conflicts) {
		SH->n_expect = a->n_dev / 2 * p.n_sh;
		for (size_t k = 0; k < SH->n_expect; k++)
			if (gs__stamp_cmp(SH->ex[k].hlc[1], SH->ex[k].dev[1],
					  SH->ex[k].hlc[0],
					  SH->ex[k].dev[0]) > 0)
				SH->n_second_later++;
	}
	if (f != NULL && fclose(f) != 0 && rc == GS_OK)
		rc = GS_EIO;
	free(own);
	free(grid);
	return rc == GS_OK ? GS_OK : fail_rc(ctx, "S2/S3 setup", rc);
}

/* Count what the server holds, read-only, while it runs. */
static int s23_verify(struct gs_ctx *ctx, void *arg)
{
	const struct s23_arg *a = arg;
	sqlite3 *db = NULL;
	sqlite3_stmt *val = NULL;
	sqlite3_stmt *rec = NULL;
	int64_t v = 0;
	int rc = gs__db_open(&db, ctx, a->srv->db, GS_DB_READONLY);

	if (rc == GS_OK)
		rc = q_int(db,
			   "SELECT count(*) FROM household WHERE deleted = 0"
			   " AND origin LIKE ?",
			   a->conflicts ? "s3-d%" : "s2-d%", &v);
	SH->live = v;
	if (rc == GS_OK && a->conflicts)
		rc = q_int(db,
			   "SELECT count(DISTINCT pk) FROM srv_conflict WHERE"
			   " tbl = 'household' AND col = 'note'",
			   NULL, &v);
	SH->distinct_pk = a->conflicts ? v : 0;
	if (rc == GS_OK && a->conflicts &&
	    (sqlite3_prepare_v2(db, "SELECT note FROM household WHERE id = ?",
				-1, &val, NULL) != SQLITE_OK ||
	     sqlite3_prepare_v2(db,
				"SELECT count(*) FROM srv_conflict WHERE tbl ="
				" 'household' AND pk = ?1 AND col = 'note' AND"
				" winner_device = ?2 AND winner_hlc = ?3 AND"
				" winner_value = ?4 AND loser_device = ?5 AND"
				" loser_hlc = ?6 AND loser_value = ?7",
				-1, &rec, NULL) != SQLITE_OK))
		rc = gs__err_from_sqlite(ctx, SQLITE_ERROR, db);
	for (size_t k = 0; rc == GS_OK && a->conflicts && k < SH->n_expect;
	     k++) {
		const struct expect *e = &SH->ex[k];
		int w = gs__stamp_cmp(e->hlc[0], e->dev[0], e->hlc[1],
				      e->dev[1]) > 0
				? 0
				: 1;

		sqlite3_bind_text(val, 1, e->pk, -1, SQLITE_STATIC);
		if (sqlite3_step(val) == SQLITE_ROW &&
		    sqlite3_column_text(val, 0) != NULL &&
		    strcmp((const char *)sqlite3_column_text(val, 0),
			   e->value[w]) == 0)
			SH->later++;
		sqlite3_reset(val);
		sqlite3_bind_text(rec, 1, e->pk, -1, SQLITE_STATIC);
		sqlite3_bind_text(rec, 2, e->dev[w], -1, SQLITE_STATIC);
		sqlite3_bind_int64(rec, 3, (sqlite3_int64)e->hlc[w]);
		sqlite3_bind_text(rec, 4, e->value[w], -1, SQLITE_STATIC);
		sqlite3_bind_text(rec, 5, e->dev[!w], -1, SQLITE_STATIC);
		sqlite3_bind_int64(rec, 6, (sqlite3_int64)e->hlc[!w]);
		sqlite3_bind_text(rec, 7, e->value[!w], -1, SQLITE_STATIC);
		if (sqlite3_step(rec) == SQLITE_ROW &&
		    sqlite3_column_int(rec, 0) >= 1)
			SH->recorded++;
		sqlite3_reset(rec);
	}
	sqlite3_finalize(val);
	sqlite3_finalize(rec);
	gs__db_close(db);
	return rc == GS_OK ? GS_OK : fail_rc(ctx, "verify", rc);
}

/* All devices sync at once: each child opens its device and says so;
 * when all are ready the barrier opens (EOF on the go pipe). */
static void
sync_all_at_once(struct gs_itest_server *srv, bool conflicts, size_t n_dev)
{
	static struct sync_arg sa[MAX_DEV];
	pid_t pids[MAX_DEV];
	int ready[2];
	int go[2];
	char c;

	if (pipe(ready) != 0 || pipe(go) != 0)
		die("pipe failed");
	for (size_t i = 0; i < n_dev; i++) {
		char name[32];

		dev_name(name, sizeof(name), conflicts, i);
		device_path(sa[i].path, sizeof(sa[i].path), srv, name);
		sa[i].res = &SH->dev[i];
		sa[i].ready_fd = ready[1];
		sa[i].go_fd = go[0];
		sa[i].go_wfd = go[1];
		pids[i] = child_fork(sync_child, &sa[i]);
	}
	close(ready[1]);
	close(go[0]);
	for (size_t i = 0; i < n_dev; i++)
		if (read(ready[0], &c, 1) != 1)
			break; /* a child died before its open: seen below */
	close(ready[0]);
	/* The server's peak from here on is the concurrent syncs' alone. */
	server_hwm_reset(srv);
	close(go[1]); /* go */
	for (size_t i = 0; i < n_dev; i++)
		if (child_wait(pids[i], &SH->dev[i].maxrss_kb) != 0)
			fprintf(stderr, "bench_sync: device %zu: sync failed\n",
				i);
}

/*
 * S2 (conflicts false) or S3: a fresh plain-TCP server, the setup, the
 * 50 syncs at once, the server's counts, the floor. Returns non-zero if a
 * sync failed or a verification does not hold.
 */
static int s23(bool conflicts, long idle_kb)
{
	const char *tag = conflicts ? "S3" : "S2";
	char *dir = gs_test_tmpdir();
	struct gs_itest_server srv;
	struct s23_arg a;
	struct floor_arg fa;
	struct plan p = plan_of();
	double first = 1e300;
	double last = 0;
	double last_push = 0;
	uint64_t up = 0;
	uint64_t down = 0;
	uint64_t pulled = 0;
	uint64_t acked = 0;
	uint64_t rejected = 0;
	uint64_t conf = 0;
	unsigned attempts = 0;
	long rss_max = 0;
	long server_kb;
	int failed = 0;
	int bad = 0;
	double wall;
	double rate;

	memset(SH, 0, sizeof(*SH));
	gs_itest_server_create(&srv, dir, false);
	run_child("workers", pick_workers, &srv, NULL);
	gs_itest_server_start(&srv, NULL);
	a.srv = &srv;
	a.dump = gs_test_path(dir, "s23.dump");
	a.conflicts = conflicts;
	a.n_dev = MAX_DEV;
	run_child("S2/S3 setup", s23_setup, &a, NULL);
	sync_all_at_once(&srv, conflicts, a.n_dev);
	server_kb = server_hwm_kb(&srv);
	run_child("verify", s23_verify, &a, NULL);
	server_stop(&srv);
	fa.dump = a.dump;
	fa.db = gs_test_path(dir, "floor.db");
	fa.db_grouped = gs_test_path(dir, "floor-grouped.db");
	run_child("floor", floor_run, &fa, NULL);

	for (size_t i = 0; i < a.n_dev; i++) {
		const struct devres *r = &SH->dev[i];

		if (r->rc != GS_OK || r->t_end == 0) {
			failed++;
			continue;
		}
		first = r->t_start < first ? r->t_start : first;
		last = r->t_end > last ? r->t_end : last;
		last_push = r->t_pushed > last_push ? r->t_pushed : last_push;
		up += r->sum.bytes_up;
		down += r->sum.bytes_down;
		pulled += r->sum.pulled_rows;
		acked += r->sum.acknowledged;
		rejected += r->sum.rejected;
		conf += r->sum.conflicts;
		attempts += r->sum.attempts;
		rss_max = r->maxrss_kb > rss_max ? r->maxrss_kb : rss_max;
	}
	/* First start to last finish, all children on one monotonic clock. */
	wall = last - first;
	rate = (double)SH->n_changes / wall;
	printf("%s  %zu devices x (%zu synced households, then %zu changes:"
	       " %zu inserts, %zu edits, %zu deletes%s)\n",
	       tag, a.n_dev, p.n1, p.n, p.n_ins, p.n_edit, p.n_del,
	       conflicts ? "; pairs both edit the note of the first's first"
			   " rows"
			 : "");
	printf("%s  all at once: %.3f s from first start to last finish,"
	       " %.0f changes/s [target >= 25000: %s]; pushes done after"
	       " %.3f s (%.0f changes/s)\n",
	       tag, wall, rate, met(rate >= 25000), last_push - first,
	       (double)SH->n_changes / (last_push - first));
	printf("%s  changes %llu, acked %llu, rejected %llu, conflicts in acks"
	       " %llu, attempts %u, failed syncs %d; wire up %.0f B/change,"
	       " down %.1f MiB (%llu rows pulled)\n",
	       tag, (unsigned long long)SH->n_changes,
	       (unsigned long long)acked, (unsigned long long)rejected,
	       (unsigned long long)conf, attempts, failed,
	       (double)up / (double)SH->n_changes, (double)down / MIB,
	       (unsigned long long)pulled);
	printf("%s  client peak RSS (largest of %zu) %.1f MiB (an idle forked"
	       " child: %.1f MiB); server peak RSS %.1f MiB%s\n",
	       tag, a.n_dev, (double)rss_max / 1024.0, (double)idle_kb / 1024.0,
	       (double)server_kb / 1024.0, hwm_scope);
	printf("%s  live device households on the server %lld (expected"
	       " %lld): %s\n",
	       tag, SH->live, SH->expect_live,
	       SH->live == SH->expect_live ? "ok" : "WRONG");
	if (conflicts) {
		double n = (double)SH->n_expect;

		printf("S3  conflicting rows %zu (second write later in %zu):"
		       " later write kept %lld (%.1f%%), conflict recorded"
		       " with both sides %lld (%.1f%%), distinct pk in"
		       " srv_conflict %lld (%.1f%%)\n",
		       SH->n_expect, SH->n_second_later, SH->later,
		       100.0 * (double)SH->later / n, SH->recorded,
		       100.0 * (double)SH->recorded / n, SH->distinct_pk,
		       100.0 * (double)SH->distinct_pk / n);
		bad |= SH->later != (long long)SH->n_expect ||
		       SH->recorded != (long long)SH->n_expect ||
		       SH->distinct_pk != (long long)SH->n_expect;
	}
	print_floor(tag, wall, SH->n_changes);
	bad |= failed != 0 || SH->live != SH->expect_live;
	gs_test_tmpdir_free(dir);
	return bad;
}

/* ---- B1 ------------------------------------------------------------------ */

/* The first micro-grid's responsible worker of the district. */
static int b1_pick(const struct gs_synth_worker_info *info, void *payload)
{
	(void)payload;
	if (strcmp(info->role, "GW") != 0 ||
	    strcmp(info->duties, "responsible") != 0)
		return 0;
	snprintf(SH->b1_worker, sizeof(SH->b1_worker), "%s", info->id);
	snprintf(SH->b1_scope, sizeof(SH->b1_scope), "%s", info->grid_codes);
	return 1;
}

/* Read the district server's workers (read-only, in a child). */
static int b1_worker(struct gs_ctx *ctx, void *arg)
{
	const struct gs_itest_server *s = arg;
	sqlite3 *db = NULL;
	int rc = gs__db_open(&db, ctx, s->db, GS_DB_READONLY);

	if (rc == GS_OK)
		rc = gs__synth_workers(ctx, db, b1_pick, NULL);
	gs__db_close(db);
	return rc == 1 ? GS_OK : fail_rc(ctx, "B1 worker", GS_ENOTFOUND);
}

/* Which server and which device id to enrol. */
struct b1_arg {
	struct gs_itest_server *srv;
	const char *name;
};

/* Enrol and create the device database, empty: the measured sync is its
 * bootstrap. */
static int b1_enrol(struct gs_ctx *ctx, void *arg)
{
	const struct b1_arg *a = arg;

	gs_device_close(gs_itest_device(a->srv, ctx, a->name, SH->b1_worker,
					SH->b1_scope));
	return GS_OK;
}

/* After the measured sync, in its own process: what the device holds. */
static int b1_count(struct gs_ctx *ctx, void *arg)
{
	struct gs_device *dev = NULL;
	int64_t v = 0;
	int rc = gs_device_open(&dev, ctx, arg);

	if (rc == GS_OK)
		rc = q_int(gs__device_db(dev), "SELECT count(*) FROM household",
			   NULL, &v);
	SH->households = v;
	if (rc == GS_OK)
		rc = q_int(gs__device_db(dev), "SELECT count(*) FROM resident",
			   NULL, &v);
	SH->residents = v;
	gs_device_close(dev);
	return rc;
}

/*
 * B1: one district-profile server (seeded once, about 15-20 s), then a
 * fresh device's first sync over plain TCP and over TLS, each with the
 * server restarted in that mode.
 */
static int b1(long idle_kb)
{
	char *dir = gs_test_tmpdir();
	struct gs_itest_server srv;
	double t0;
	int bad = 0;

	memset(SH, 0, sizeof(*SH));
	memset(&srv, 0, sizeof(srv));
	snprintf(srv.dir, sizeof(srv.dir), "%s", dir);
	snprintf(srv.db, sizeof(srv.db), "%s/server.db", dir);
	snprintf(srv.journal, sizeof(srv.journal), "%s/journal.git", dir);
	snprintf(srv.ready, sizeof(srv.ready), "%s/ready", dir);
	{
		const char *init[] = { "gridsyncd", "init",      "--db", srv.db,
				       "--journal", srv.journal, NULL };
		const char *seed[] = { "gridsyncd", "seed",     "--db", srv.db,
				       "--profile", "district", NULL };

		t0 = now_s();
		if (gs_itest_run(init, "/dev/null", NULL) != 0 ||
		    gs_itest_run(seed, "/dev/null", NULL) != 0)
			die("district server setup failed");
		printf("B1  district server seeded in %.1f s\n", now_s() - t0);
	}
	run_child("B1 worker", b1_worker, &srv, NULL);
	for (int tls = 0; tls < 2; tls++) {
		const char *tag = tls ? "B1/tls" : "B1/tcp";
		struct devres *r = &SH->dev[0];
		struct b1_arg ba;
		struct sync_arg sa;
		long server_kb;
		double rss;

		memset(r, 0, sizeof(*r));
		srv.tls = tls;
		gs_itest_server_start(&srv, NULL);
		ba.srv = &srv;
		ba.name = tls ? "b1-tls" : "b1-tcp";
		run_child("B1 enrol", b1_enrol, &ba, NULL);
		memset(&sa, 0, sizeof(sa));
		device_path(sa.path, sizeof(sa.path), &srv, ba.name);
		sa.res = r;
		sa.ready_fd = sa.go_fd = sa.go_wfd = -1;
		server_hwm_reset(&srv);
		if (child_wait(child_fork(sync_child, &sa), &r->maxrss_kb) != 0)
			die("B1 sync failed");
		server_kb = server_hwm_kb(&srv);
		server_stop(&srv);
		run_child("B1 count", b1_count, sa.path, NULL);
		rss = (double)r->maxrss_kb / 1024.0;
		printf("%s  fresh device of grid %s: %.3f s [target < 2 s: %s];"
		       " %llu rows in %llu changesets, down %.2f MiB, up %llu"
		       " B; %lld households, %lld residents\n",
		       tag, SH->b1_scope, r->sum.seconds,
		       met(r->sum.seconds < 2.0),
		       (unsigned long long)r->sum.pulled_rows,
		       (unsigned long long)r->sum.pulled_changes,
		       (double)r->sum.bytes_down / MIB,
		       (unsigned long long)r->sum.bytes_up, SH->households,
		       SH->residents);
		printf("%s  client peak RSS %.1f MiB [target <= 16: %s] (an "
		       "idle"
		       " forked child: %.1f MiB); server peak RSS %.1f MiB%s\n",
		       tag, rss, met(rss <= 16), (double)idle_kb / 1024.0,
		       (double)server_kb / 1024.0, hwm_scope);
		bad |= SH->households == 0;
	}
	gs_test_tmpdir_free(dir);
	return bad;
}

/* ---- main ---------------------------------------------------------------- */

/* Parse the scenario and the scale, print the command, set up the shared
 * results page, run. Exit 1 if a run broke, 2 on bad usage. */
int main(int argc, char **argv)
{
	const char *what = argc > 1 ? argv[1] : "all";
	bool all = strcmp(what, "all") == 0;
	long idle_kb;
	int bad = 0;

	if (argc > 2)
		scale = (unsigned)strtoul(argv[2], NULL, 10);
	if (argc > 3 || scale == 0 ||
	    (!all && strcmp(what, "s1") && strcmp(what, "s2") &&
	     strcmp(what, "s3") && strcmp(what, "b1"))) {
		fprintf(stderr,
			"usage: bench_sync [s1|s2|s3|b1|all] [scale]\n");
		return 2;
	}
	printf("$");
	for (int i = 0; i < argc; i++)
		printf(" %s", argv[i]);
	printf("\n");
	SH = mmap(NULL, sizeof(*SH), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (SH == MAP_FAILED)
		die("mmap failed");
	/* Measured once: what every child inherits from this parent. */
	/* A server that dies must not take the bench with it silently. */
	signal(SIGPIPE, SIG_IGN);
	idle_kb = idle_rss_kb();
	if (all || strcmp(what, "s1") == 0) {
		bad |= s1(false, idle_kb);
		bad |= s1(true, idle_kb);
	}
	if (all || strcmp(what, "s2") == 0)
		bad |= s23(false, idle_kb);
	if (all || strcmp(what, "s3") == 0)
		bad |= s23(true, idle_kb);
	if (all || strcmp(what, "b1") == 0)
		bad |= b1(idle_kb);
	munmap(SH, sizeof(*SH));
	return bad ? 1 : 0;
}
