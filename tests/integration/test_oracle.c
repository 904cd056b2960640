/*
 * gs-test: timeout=600
 *
 * The randomised convergence oracle. Per seed: a real gridsyncd (TLS, demo
 * profile) and six real device databases with overlapping scopes (three
 * micro-grid workers, a worker assisting three micro-grids, a community
 * station and a street centre), each on its own skewed clock. A seeded
 * random walk makes every kind of offline write the handheld API offers
 * (household and resident adds and edits, deletes, visits, issue reports
 * and every move each role may make), crafted entries from a modified
 * client, and syncs in random order; then every device syncs until all is
 * quiet, and the checks run.
 *
 * The oracle never asks the server what the answer is. It reads each
 * write from the device's outbox as it is captured (the changeset, its HLC
 * and sequence number, decoded with SQLite's own changeset iterator) and
 * builds its own model of the server in arrival order: per-column last
 * writer wins on (HLC, device id) for households, residents and the
 * descriptive columns of issues; union by id for visits and issue events;
 * its own replay of the work-order state machine for issue events; its own
 * scope rule for which entries must be refused. The checks:
 *   1. every device equals the server's rows of its scope, row by row, and
 *      its content hash equals the server's hash of its scope;
 *   2. every column of every row the model knows equals the model;
 *   3. every saved row exists on the server exactly once, and no row the
 *      test did not write appears under a test device's origin;
 *   4. every issue's state, revision, assignee, deadline and closing time
 *      equal the model's replay, and every event's verdict the model's;
 *   5. every write that lost was told to its device (gs_conflict);
 *   6. every crafted entry was refused, no honest one was, and a refused
 *      entry left the server unchanged (whole-store hash).
 *
 * It prints each seed and keeps the seed's databases when a check fails.
 * GS_SEEDS=N runs seeds 1..N (default 20), GS_SEEDS=a,b,c those seeds;
 * GS_ORACLE_OPS sets the operations per seed (default 80).
 * GS_ORACLE_PENDING=clocks,... turns on operation families whose fixes
 * have not landed yet (see docs/TESTING.md).
 */
#include <inttypes.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gridsync/capture.h>
#include <gridsync/client_internal.h>
#include <gridsync/hlc.h>
#include <gridsync/store.h>
#include <gridsync/synth.h>

#include "gs_itest.h"

#define MAXDEV    6
#define MAXCOL    40
#define HASH_SIZE 8192
/* The server stamps no entry later than its now plus this. */
#define CLAMP_MS 300000

/* ---- the tables the model knows ----------------------------------------- */

enum { T_HH, T_RES, T_VISIT, T_ISSUE, T_EVENT, N_T };

/* In the server's order of merging (parents first). */
static const char *const tname[N_T] = { "household", "resident", "visit",
					"issue", "issue_event" };

enum {
	C_PK = 1,     /* the key */
	C_STAMP = 2,  /* hlc, origin: stamped by the server */
	C_SERVER = 4, /* the server's own */
	C_GOV = 8,    /* an issue's state columns: events only */
	C_QUIET = 16, /* bookkeeping: merged, never a conflict */
};

struct tab {
	int n;
	char *col[MAXCOL];
	unsigned cls[MAXCOL];
	int i_hlc, i_origin, i_del, i_seq;
};

static int tab_of(const char *name)
{
	for (int t = 0; t < N_T; t++)
		if (strcmp(tname[t], name) == 0)
			return t;
	return -1;
}

/* ---- encoded values ------------------------------------------------------ */

/* A value as text with its type: "N", "I:12", "R:1.5", "T:abc", "B:hex".
 * NULL (the pointer) is a column an UPDATE left alone. */
static char *enc_value(sqlite3_value *v)
{
	char *out;
	int n;

	if (v == NULL)
		return NULL;
	switch (sqlite3_value_type(v)) {
	case SQLITE_INTEGER:
		out = malloc(32);
		snprintf(out, 32, "I:%lld", (long long)sqlite3_value_int64(v));
		return out;
	case SQLITE_FLOAT:
		out = malloc(40);
		snprintf(out, 40, "R:%.17g", sqlite3_value_double(v));
		return out;
	case SQLITE_TEXT:
		n = sqlite3_value_bytes(v);
		out = malloc((size_t)n + 3);
		memcpy(out, "T:", 2);
		memcpy(out + 2, sqlite3_value_text(v), (size_t)n);
		out[n + 2] = '\0';
		return out;
	case SQLITE_BLOB: {
		const unsigned char *p = sqlite3_value_blob(v);

		n = sqlite3_value_bytes(v);
		out = malloc((size_t)n * 2 + 3);
		memcpy(out, "B:", 2);
		for (int i = 0; i < n; i++)
			snprintf(out + 2 + 2 * i, 3, "%02x", p[i]);
		out[2 + 2 * n] = '\0';
		return out;
	}
	default:
		return strdup("N");
	}
}

static char *enc_text(const char *s)
{
	char *out;

	if (s == NULL)
		return strdup("N");
	out = malloc(strlen(s) + 3);
	snprintf(out, strlen(s) + 3, "T:%s", s);
	return out;
}

static char *enc_int(int64_t i)
{
	char *out = malloc(32);

	snprintf(out, 32, "I:%" PRId64, i);
	return out;
}

/* The text of an encoded TEXT value, or NULL. */
static const char *txt(const char *v)
{
	return v != NULL && v[0] == 'T' ? v + 2 : NULL;
}

static int64_t num(const char *v)
{
	return v != NULL && v[0] == 'I' ? strtoll(v + 2, NULL, 10) : -1;
}

static bool same(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static void set_val(char **slot, const char *v)
{
	free(*slot);
	*slot = v != NULL ? strdup(v) : NULL;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);

	return s != NULL ? s : "";
}

/* ---- the model ------------------------------------------------------------
 */

/*
 * The stamp the server gives a write: the entry's HLC, or, for a device
 * more than 5 minutes fast, the server's now + 5 minutes, kept strictly
 * after the device's previous entry. The test knows the server's now only
 * as the interval its sync ran in, so a clamped stamp is (push, k): the
 * k-th clamped entry of the push-th sync, whose milliseconds lie in
 * [lo_ms, hi_ms]. Syncs never overlap and each starts in a later
 * millisecond than the last ended, so later pushes stamp later.
 */
struct stamp {
	uint64_t hlc; /* exact, or make(lo_ms, k) */
	char dev[64];
	unsigned push; /* 0: exact */
	int64_t lo_ms, hi_ms;
	unsigned k;
};

static bool AMBIGUOUS;

/* Order of two stamps by their HLC alone (0 when equal). */
static int stamp_order(const struct stamp *a, const struct stamp *b)
{
	if (a->push != 0 && b->push != 0) {
		if (a->push != b->push)
			return a->push > b->push ? 1 : -1;
		return a->k > b->k ? 1 : a->k < b->k ? -1 : 0;
	}
	if (a->push != 0 || b->push != 0) {
		const struct stamp *c = a->push != 0 ? a : b;
		const struct stamp *x = a->push != 0 ? b : a;
		int sign = a->push != 0 ? 1 : -1;

		if (x->hlc < gs__hlc_make(c->lo_ms, 0))
			return sign;
		if (x->hlc > gs__hlc_make(c->hi_ms, c->k))
			return -sign;
		AMBIGUOUS = true;
		return sign;
	}
	if (a->hlc != b->hlc)
		return a->hlc > b->hlc ? 1 : -1;
	return 0;
}

/* Last writer wins: HLC, then device id. */
static int stamp_cmp(const struct stamp *a, const struct stamp *b)
{
	int c = stamp_order(a, b);

	return c != 0 ? c : strcmp(a->dev, b->dev);
}

/* A stamp as the model stores it in an hlc column: the hex text, or
 * "C:lo:hi:k" for a clamped one (checked against the server's value). */
static char *stamp_enc(const struct stamp *s)
{
	char buf[96];

	if (s->push == 0) {
		char hex[GS_HLC_TEXT_LEN];

		gs__hlc_format(hex, s->hlc);
		snprintf(buf, sizeof(buf), "T:%s", hex);
	} else {
		snprintf(buf, sizeof(buf), "C:%lld:%lld:%u",
			 (long long)s->lo_ms, (long long)s->hi_ms, s->k);
	}
	return strdup(buf);
}

/* Does the server's hlc text v match the model's stamp text m? */
static bool stamp_match(const char *m, const char *v)
{
	long long lo;
	long long hi;
	unsigned k;
	uint64_t h;

	if (m == NULL || m[0] != 'C')
		return same(m, v);
	if (sscanf(m, "C:%lld:%lld:%u", &lo, &hi, &k) != 3 || txt(v) == NULL ||
	    gs__hlc_parse(&h, txt(v)) != GS_OK)
		return false;
	return GS_HLC_MS(h) >= lo && GS_HLC_MS(h) <= hi && GS_HLC_CTR(h) == k;
}

struct mrow {
	int t;
	char *pk;
	char *val[MAXCOL];
	struct stamp clk[MAXCOL];
	struct stamp rs; /* the row's hlc: its newest write */
	int by;          /* inserting device, -1 for seeded rows */
	bool born;       /* an issue inserted by the entry being applied */
	struct mrow *next;
};

/* A write the server must have told its device about. */
struct told {
	int dev;
	int t;
	char *pk;
	char col[48];
	uint64_t seq; /* 0: any entry */
	int kind;     /* 0 lost on arrival, 1 edit of a tombstone */
};

/* A captured outbox entry. */
struct entry {
	int dev;
	uint64_t seq;
	uint64_t hlc;
	unsigned char *cs;
	size_t len;
	int crafted; /* 0 honest, else the kind of forgery */
	char sha[65];
	int state; /* 0 pending, 1 applied, 2 refused */
};

/* One row of an entry, decoded. */
struct crow {
	int t; /* -1: a table the model does not take from devices */
	char tname[48];
	int op;
	char *oldv[MAXCOL];
	char *newv[MAXCOL];
	char *pk;
};

struct dev {
	char id[32];
	char worker[64];
	char role[4];
	char scope[256];
	int64_t skew_ms;
	struct gs_ctx *ctx;
	struct gs_device *d;
	char *grids[16];
	int n_grids;
	char *xgrids[16];     /* also allowed: the old or new scope while */
	int n_xgrids;         /* a scope change is under way */
	char next_scope[256]; /* set on the server, not yet synced */
	bool has_backup;
	int old_grids_syncs;   /* syncs the old grids still count for */
	int64_t conflict_mark; /* gs_conflict ids seen */
	struct stamp last;     /* of its last entry the server took */
	uint64_t seen_seq;     /* outbox entries captured up to */
};

struct stats {
	unsigned ops[16];
	unsigned syncs, entries, refused, lost_arrival, tombstone_edits;
	unsigned overwrites, ev_applied, ev_noop, ev_review, ev_stale;
	unsigned rows_checked, cols_checked, clamped, scope_sets, moves;
	unsigned honest_refused, backups, restores, reinits;
	unsigned crafted[16];
};

static const char *const op_name[] = {
	"household.edit", "household.add", "household.delete", "resident.add",
	"resident.edit",  "visit.add",     "issue.report",     "issue.move",
	"crafted",        "sync",          "household.move",   "scope.set",
	"device.restore",
};
enum {
	OP_HH_EDIT,
	OP_HH_ADD,
	OP_HH_DEL,
	OP_RES_ADD,
	OP_RES_EDIT,
	OP_VISIT,
	OP_REPORT,
	OP_MOVE,
	OP_CRAFT,
	OP_SYNC,
	OP_HH_MOVE,
	OP_SCOPE,
	OP_RESTORE,
	N_OPS
};

struct orc {
	uint64_t seed;
	uint64_t rng;
	char *dir;
	struct gs_itest_server srv;
	sqlite3 *sdb; /* the server's database, read-only */
	struct tab tab[N_T];
	struct dev dev[MAXDEV];
	int n_dev;
	struct mrow *hash[HASH_SIZE];
	struct entry *ent;
	size_t n_ent, cap_ent;
	struct told *told;
	size_t n_told, cap_told;
	struct stats st;
	unsigned n_push;
	bool pend_losers;
	bool fam_scope;   /* moves between grids, scope changes, reach */
	bool scope_rule;  /* the whole scope rule (landed): the worker's own
			   * issues are in its scope whatever their grid */
	bool fam_restore; /* backups, restores, re-inits of devices */
	char fail[512];
};

static struct stats TOTAL;
static bool DEBUG;

static uint64_t rnd(struct orc *o, uint64_t n)
{
	return n == 0 ? 0 : gs_test_rand(&o->rng) % n;
}

static unsigned hash_pk(int t, const char *pk)
{
	uint32_t h = 2166136261u ^ (uint32_t)t;

	for (const char *p = pk; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return h % HASH_SIZE;
}

static struct mrow *row_find(struct orc *o, int t, const char *pk)
{
	for (struct mrow *r = o->hash[hash_pk(t, pk)]; r != NULL; r = r->next)
		if (r->t == t && strcmp(r->pk, pk) == 0)
			return r;
	return NULL;
}

static struct mrow *row_new(struct orc *o, int t, const char *pk)
{
	struct mrow *r = calloc(1, sizeof(*r));
	unsigned h = hash_pk(t, pk);

	r->t = t;
	r->pk = strdup(pk);
	r->by = -1;
	r->next = o->hash[h];
	o->hash[h] = r;
	return r;
}

static void row_free_all(struct orc *o)
{
	for (int h = 0; h < HASH_SIZE; h++) {
		struct mrow *r = o->hash[h];

		while (r != NULL) {
			struct mrow *next = r->next;

			for (int i = 0; i < MAXCOL; i++)
				free(r->val[i]);
			free(r->pk);
			free(r);
			r = next;
		}
		o->hash[h] = NULL;
	}
}

static int col_of(const struct tab *tb, const char *name)
{
	for (int i = 0; i < tb->n; i++)
		if (strcmp(tb->col[i], name) == 0)
			return i;
	return -1;
}

static const char *rv(struct orc *o, const struct mrow *r, const char *col)
{
	int i = col_of(&o->tab[r->t], col);

	return i >= 0 ? r->val[i] : NULL;
}

/* The column layout, read from the server's schema, and its classes. */
static void tables_load(struct orc *o)
{
	static const char *const quiet[] = { "created_at", "created_by",
					     "updated_at", "updated_by" };
	static const char *const srv_issue[] = { "code", "overdue_level",
						 "merged_into_id",
						 "satisfaction" };
	static const char *const gov_issue[] = {
		"state",  "state_rev", "assignee_org_id", "assignee_worker_id",
		"due_at", "closed_at"
	};

	for (int t = 0; t < N_T; t++) {
		struct tab *tb = &o->tab[t];
		sqlite3_stmt *st = NULL;
		char sql[128];

		memset(tb, 0, sizeof(*tb));
		snprintf(sql, sizeof(sql), "PRAGMA table_info(%s)", tname[t]);
		assert_int_equal(sqlite3_prepare_v2(o->sdb, sql, -1, &st, NULL),
				 SQLITE_OK);
		while (sqlite3_step(st) == SQLITE_ROW && tb->n < MAXCOL) {
			const char *c =
				(const char *)sqlite3_column_text(st, 1);
			unsigned k = 0;

			if (sqlite3_column_int(st, 5) > 0)
				k |= C_PK;
			if (strcmp(c, "hlc") == 0 || strcmp(c, "origin") == 0)
				k |= C_STAMP;
			if (strcmp(c, "server_seq") == 0)
				k |= C_SERVER;
			for (size_t q = 0; q < 4; q++)
				if (strcmp(c, quiet[q]) == 0)
					k |= C_QUIET;
			if (t == T_ISSUE) {
				for (size_t q = 0; q < 4; q++)
					if (strcmp(c, srv_issue[q]) == 0)
						k |= C_SERVER;
				for (size_t q = 0; q < 6; q++)
					if (strcmp(c, gov_issue[q]) == 0)
						k |= C_GOV;
			}
			if (t == T_EVENT && (strcmp(c, "apply_status") == 0 ||
					     strcmp(c, "reject_reason") == 0))
				k |= C_SERVER;
			tb->cls[tb->n] = k;
			tb->col[tb->n++] = strdup(c);
		}
		sqlite3_finalize(st);
		tb->i_hlc = col_of(tb, "hlc");
		tb->i_origin = col_of(tb, "origin");
		tb->i_del = col_of(tb, "deleted");
		tb->i_seq = col_of(tb, "server_seq");
		assert_true(tb->i_hlc >= 0 && tb->i_origin >= 0 &&
			    tb->i_del >= 0 && tb->i_seq >= 0);
	}
}

static bool device_col(const struct tab *tb, int i)
{
	return !(tb->cls[i] & (C_PK | C_STAMP | C_SERVER | C_GOV));
}

/* The stamp of a seeded row, from its hlc and origin values. */
static struct stamp seeded_stamp(const struct orc *o, const struct mrow *r)
{
	const struct tab *tb = &o->tab[r->t];
	struct stamp s;

	memset(&s, 0, sizeof(s));
	if (txt(r->val[tb->i_hlc]) != NULL)
		gs__hlc_parse(&s.hlc, txt(r->val[tb->i_hlc]));
	if (txt(r->val[tb->i_origin]) != NULL)
		snprintf(s.dev, sizeof(s.dev), "%s", txt(r->val[tb->i_origin]));
	return s;
}

/* The row's hlc column moves to s. */
static void set_rowstamp(struct orc *o, struct mrow *m, const struct stamp *s)
{
	const struct tab *tb = &o->tab[m->t];

	m->rs = *s;
	free(m->val[tb->i_hlc]);
	m->val[tb->i_hlc] = stamp_enc(s);
}

/* What the seed put on the server: the rows devices may then edit, with
 * their insert stamps as every column's clock. */
static void seed_load(struct orc *o)
{
	for (int t = 0; t < N_T; t++) {
		const struct tab *tb = &o->tab[t];
		sqlite3_stmt *st = NULL;
		char sql[128];

		snprintf(sql, sizeof(sql), "SELECT * FROM %s", tname[t]);
		assert_int_equal(sqlite3_prepare_v2(o->sdb, sql, -1, &st, NULL),
				 SQLITE_OK);
		while (sqlite3_step(st) == SQLITE_ROW) {
			struct mrow *r = row_new(
				o, t, (const char *)sqlite3_column_text(st, 0));
			struct stamp s;

			for (int i = 0; i < tb->n; i++)
				r->val[i] =
					enc_value(sqlite3_column_value(st, i));
			s = seeded_stamp(o, r);
			r->rs = s;
			for (int i = 0; i < tb->n; i++)
				r->clk[i] = s;
		}
		sqlite3_finalize(st);
	}
}

/* ---- scope ----------------------------------------------------------------
 */

static const char scope_sql[] =
	"WITH RECURSIVE areas(id) AS ("
	" SELECT id FROM admin_area WHERE code = ?1"
	" UNION SELECT a.id FROM admin_area a JOIN areas"
	" ON a.parent_id = areas.id)"
	" SELECT id FROM grid WHERE substr(code, 1, length(?1)) = ?1"
	" UNION SELECT g.id FROM grid g JOIN areas"
	" ON g.community_id = areas.id";

/* Grids of a device: its codes, each a grid code prefix or an admin area
 * with everything below it. */
static void
codes_resolve(struct orc *o, const char *scope, char **grids, int *n_grids)
{
	char codes[256];
	char *save = NULL;

	for (int i = 0; i < *n_grids; i++)
		free(grids[i]);
	*n_grids = 0;
	snprintf(codes, sizeof(codes), "%s", scope);
	for (char *c = strtok_r(codes, ",", &save); c != NULL;
	     c = strtok_r(NULL, ",", &save)) {
		sqlite3_stmt *st = NULL;

		assert_int_equal(
			sqlite3_prepare_v2(o->sdb, scope_sql, -1, &st, NULL),
			SQLITE_OK);
		sqlite3_bind_text(st, 1, c, -1, SQLITE_STATIC);
		while (sqlite3_step(st) == SQLITE_ROW && *n_grids < 16) {
			const char *g =
				(const char *)sqlite3_column_text(st, 0);
			bool dup = false;

			for (int i = 0; i < *n_grids; i++)
				dup = dup || strcmp(grids[i], g) == 0;
			if (!dup)
				grids[(*n_grids)++] = strdup(g);
		}
		sqlite3_finalize(st);
	}
}

static void scope_resolve(struct orc *o, struct dev *d)
{
	codes_resolve(o, d->scope, d->grids, &d->n_grids);
}

static bool in_scope(const struct dev *d, const char *grid)
{
	for (int i = 0; grid != NULL && i < d->n_grids; i++)
		if (strcmp(d->grids[i], grid) == 0)
			return true;
	for (int i = 0; grid != NULL && i < d->n_xgrids; i++)
		if (strcmp(d->xgrids[i], grid) == 0)
			return true;
	return false;
}

/* ---- failing ---------------------------------------------------------------
 */

static void oracle_fail(struct orc *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Record the first failure of the seed (the checks go on to count). */
static void oracle_fail(struct orc *o, const char *fmt, ...)
{
	va_list ap;

	if (o->fail[0] != '\0')
		return;
	va_start(ap, fmt);
	vsnprintf(o->fail, sizeof(o->fail), fmt, ap);
	va_end(ap);
	fprintf(stderr, "oracle seed %" PRIu64 ": %s\n", o->seed, o->fail);
}

/* ---- the state machine (DESIGN.md's table, restated) --------------------
 */

static const struct rule {
	const char *from, *to, *roles;
	bool assignee_only;
} RULES[] = {
	{ "", "draft", "GW", false },
	{ "draft", "reported", "GW", false },
	{ "", "reported", "SYS,DC", false },
	{ "draft", "self_resolved", "GW", false },
	{ "reported", "self_resolved", "GW", false },
	{ "reported", "cancelled", "GW", false },
	{ "reported", "accepted", "CS,SC", false },
	{ "reported", "invalid", "CS,SC", false },
	{ "self_resolved", "closed", "CS", false },
	{ "self_resolved", "accepted", "CS", false },
	{ "accepted", "dispatched", "CS,SC,DC", false },
	{ "accepted", "in_progress", "CS", false },
	{ "dispatched", "in_progress", "DH,GW", true },
	{ "dispatched", "returned", "DH", false },
	{ "in_progress", "returned", "DH", false },
	{ "returned", "dispatched", "SC,DC", false },
	{ "returned", "invalid", "SC,DC", false },
	{ "in_progress", "suspended", "SC,DC", false },
	{ "suspended", "in_progress", "SC,DC", false },
	{ "in_progress", "handled", "DH,GW", true },
	{ "handled", "verified", "GW", false },
	{ "handled", "dispatched", "GW,SC,DC", false },
	{ "verified", "closed", "CS,SC,DC", false },
	{ "closed", "evaluated", "DC,SC,SYS", false },
};
#define N_RULES (sizeof(RULES) / sizeof(RULES[0]))

static bool role_in(const char *roles, const char *role)
{
	size_t n = strlen(role);

	for (const char *p = roles; p != NULL && *p;) {
		if (strncmp(p, role, n) == 0 && (p[n] == ',' || p[n] == '\0'))
			return true;
		p = strchr(p, ',');
		if (p != NULL)
			p++;
	}
	return false;
}

static const struct rule *rule_find(const char *from, const char *to)
{
	for (size_t i = 0; i < N_RULES; i++)
		if (strcmp(RULES[i].from, from) == 0 &&
		    strcmp(RULES[i].to, to) == 0)
			return &RULES[i];
	return NULL;
}

static int rank(const char *s)
{
	static const struct {
		const char *s;
		int r;
	} R[] = { { "draft", 0 },          { "reported", 10 },
		  { "self_resolved", 15 }, { "accepted", 20 },
		  { "returned", 25 },      { "dispatched", 30 },
		  { "in_progress", 40 },   { "suspended", 45 },
		  { "handled", 50 },       { "verified", 60 },
		  { "closed", 90 },        { "evaluated", 95 },
		  { "invalid", 95 },       { "cancelled", 95 } };

	for (size_t i = 0; s != NULL && i < sizeof(R) / sizeof(*R); i++)
		if (strcmp(R[i].s, s) == 0)
			return R[i].r;
	return -1;
}

static bool terminal(const char *s)
{
	return s != NULL &&
	       (strcmp(s, "closed") == 0 || strcmp(s, "evaluated") == 0 ||
		strcmp(s, "invalid") == 0 || strcmp(s, "cancelled") == 0);
}

/* The main line, where a higher rank means "already past". */
static bool main_line(const char *s)
{
	static const char *const m[] = { "draft",       "reported",
					 "accepted",    "dispatched",
					 "in_progress", "handled",
					 "verified" };

	for (size_t i = 0; s != NULL && i < sizeof(m) / sizeof(*m); i++)
		if (strcmp(m[i], s) == 0)
			return true;
	return false;
}

/* May the device make this move at all (step 1)? */
static bool move_allowed(const struct dev *d,
			 const struct rule *ru,
			 const char *actor_role,
			 const char *actor,
			 const struct mrow *issue,
			 struct orc *o)
{
	if (ru == NULL || actor_role == NULL ||
	    strcmp(actor_role, d->role) != 0 || !role_in(ru->roles, d->role))
		return false;
	if (!same(actor, d->worker))
		return false;
	if (ru->assignee_only && strcmp(d->role, "GW") == 0 &&
	    !same(txt(rv(o, issue, "assignee_worker_id")), d->worker))
		return false;
	if (strcmp(d->role, "GW") == 0 && strcmp(ru->to, "cancelled") == 0 &&
	    !same(txt(rv(o, issue, "reporter_worker_id")), d->worker))
		return false;
	return true;
}

/* ---- applying an entry to the model --------------------------------------
 */

static void crow_free(struct crow *rows, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		for (int i = 0; i < MAXCOL; i++) {
			free(rows[k].oldv[i]);
			free(rows[k].newv[i]);
		}
	}
	free(rows);
}

/* Decode an entry with SQLite's changeset iterator. */
static struct crow *decode(struct orc *o, const struct entry *e, size_t *n)
{
	sqlite3_changeset_iter *it = NULL;
	struct crow *rows = NULL;
	size_t cap = 0;

	*n = 0;
	assert_int_equal(sqlite3changeset_start(&it, (int)e->len, e->cs),
			 SQLITE_OK);
	while (sqlite3changeset_next(it) == SQLITE_ROW) {
		const char *name;
		int ncol;
		int op;
		int ind;
		struct crow *r;

		assert_int_equal(
			sqlite3changeset_op(it, &name, &ncol, &op, &ind),
			SQLITE_OK);
		if (*n == cap) {
			cap = cap ? cap * 2 : 8;
			rows = realloc(rows, cap * sizeof(*rows));
		}
		r = &rows[(*n)++];
		memset(r, 0, sizeof(*r));
		snprintf(r->tname, sizeof(r->tname), "%s", name);
		r->t = tab_of(name);
		r->op = op;
		for (int i = 0; i < ncol && i < MAXCOL; i++) {
			sqlite3_value *v = NULL;

			if (op != SQLITE_INSERT &&
			    sqlite3changeset_old(it, i, &v) == SQLITE_OK)
				r->oldv[i] = enc_value(v);
			v = NULL;
			if (op != SQLITE_DELETE &&
			    sqlite3changeset_new(it, i, &v) == SQLITE_OK)
				r->newv[i] = enc_value(v);
		}
		r->pk = (char *)txt(op == SQLITE_INSERT ? r->newv[0]
							: r->oldv[0]);
	}
	sqlite3changeset_finalize(it);
	(void)o;
	return rows;
}

/* Pending rows of the entry (inserted by its earlier rows). */
struct pend_ins {
	int t;
	const char *pk;
	const char *grid; /* household and issue: their grid */
};

/* The grid that scopes a row of t with values v (new or current), or
 * NULL with *missing when its parent is unknown. */
static const char *row_grid(struct orc *o,
			    int t,
			    char *const *v,
			    const struct pend_ins *pend,
			    size_t n_pend,
			    bool *missing)
{
	const struct tab *tb = &o->tab[t];
	const char *parent = NULL;
	int pt = -1;

	*missing = false;
	if (t == T_HH || t == T_VISIT || t == T_ISSUE)
		return txt(v[col_of(tb, "grid_id")]);
	if (t == T_RES) {
		parent = txt(v[col_of(tb, "household_id")]);
		pt = T_HH;
	} else {
		parent = txt(v[col_of(tb, "issue_id")]);
		pt = T_ISSUE;
	}
	for (size_t k = 0; parent != NULL && k < n_pend; k++)
		if (pend[k].t == pt && strcmp(pend[k].pk, parent) == 0)
			return pend[k].grid;
	if (parent != NULL) {
		struct mrow *p = row_find(o, pt, parent);

		if (p != NULL)
			return txt(rv(o, p, "grid_id"));
	}
	*missing = true;
	return NULL;
}

/* Does an entry's value nv claim anything against the current cur (NULL
 * for an insert)? A value equal to the one the server holds does not. */
static bool writes(const char *nv, const char *cur)
{
	return nv != NULL && (cur == NULL || !same(nv, cur));
}

/* Does the entry carry a transition of issue id that closes it, or
 * dispatches it by a rule the device's role may make (10 or 14)? */
static void entry_moves(struct orc *o,
			const struct dev *d,
			struct crow *rows,
			size_t n,
			const char *id,
			bool *any,
			bool *closes,
			bool *assigns)
{
	const struct tab *et = &o->tab[T_EVENT];

	*any = *closes = *assigns = false;
	for (size_t k = 0; k < n; k++) {
		const char *from;
		const char *to;
		const struct rule *ru;

		if (rows[k].t != T_EVENT || rows[k].op != SQLITE_INSERT ||
		    !same(txt(rows[k].newv[col_of(et, "issue_id")]), id) ||
		    !same(txt(rows[k].newv[col_of(et, "kind")]), "transition"))
			continue;
		from = txt(rows[k].newv[col_of(et, "from_state")]);
		to = txt(rows[k].newv[col_of(et, "to_state")]);
		ru = rule_find(from != NULL ? from : "", to != NULL ? to : "");
		*any = true;
		*closes = *closes || same(to, "closed");
		*assigns =
			*assigns || (ru != NULL && same(ru->to, "dispatched") &&
				     (same(ru->from, "accepted") ||
				      same(ru->from, "returned")) &&
				     role_in(ru->roles, d->role));
	}
}

/*
 * What a device may claim (the authorization rules of docs/SYNC.md, as
 * this test states them): its own worker in author columns, references to
 * rows in its scope, an issue's state columns only with the moves that
 * change them, events acted by its own worker in its own role and, but
 * for transitions, without a change of state. NULL when the row passes.
 */
static const char *claims(struct orc *o,
			  const struct dev *d,
			  struct crow *rows,
			  size_t n,
			  struct crow *r,
			  struct mrow *cur,
			  const struct pend_ins *pend,
			  size_t n_pend)
{
	static const char *const author[] = { "created_by", "updated_by",
					      "worker_id",
					      "reporter_worker_id" };
	static const char *const owned[] = { "state",
					     "state_rev",
					     "closed_at",
					     "assignee_org_id",
					     "assignee_worker_id",
					     "due_at",
					     "code",
					     "overdue_level",
					     "merged_into_id",
					     "satisfaction" };
	const struct tab *tb = &o->tab[r->t];
	int i;

	for (size_t a = 0; a < 4; a++) {
		const char *nv;

		i = col_of(tb, author[a]);
		if (i < 0)
			continue;
		nv = r->newv[i];
		if (!writes(nv, cur != NULL ? cur->val[i] : NULL))
			continue;
		if (txt(nv) != NULL && strcmp(txt(nv), d->worker) != 0)
			return "another worker's id (author)";
		if (cur != NULL &&
		    (strcmp(author[a], "created_by") == 0 ||
		     strcmp(author[a], "reporter_worker_id") == 0))
			return "a fixed column changed (fixed)";
	}
	i = col_of(tb, "household_id");
	if ((r->t == T_VISIT || r->t == T_ISSUE) && i >= 0 &&
	    writes(r->newv[i], cur != NULL ? cur->val[i] : NULL) &&
	    txt(r->newv[i]) != NULL) {
		const char *hh = txt(r->newv[i]);
		const char *g = NULL;
		bool found = false;

		for (size_t k = 0; k < n_pend; k++)
			if (pend[k].t == T_HH && strcmp(pend[k].pk, hh) == 0) {
				g = pend[k].grid;
				found = true;
			}
		if (!found && row_find(o, T_HH, hh) != NULL) {
			g = txt(rv(o, row_find(o, T_HH, hh), "grid_id"));
			found = true;
		}
		if (!found || !in_scope(d, g))
			return "a household outside the scope (reference)";
	}
	if (r->t == T_ISSUE) {
		bool any, closes, assigns;

		entry_moves(o, d, rows, n, r->pk, &any, &closes, &assigns);
		for (size_t q = 0; q < sizeof(owned) / sizeof(*owned); q++) {
			const char *nv;
			bool ok;

			i = col_of(tb, owned[q]);
			nv = r->newv[i];
			if (cur == NULL) {
				ok = q < 2 || nv == NULL || same(nv, "N") ||
				     same(nv, "I:0");
			} else if (!writes(nv, cur->val[i])) {
				continue;
			} else {
				ok = q < 2   ? any
				     : q < 3 ? closes
				     : q < 6 ? assigns
					     : false;
			}
			if (!ok)
				return "a state column without its move"
				       " (governed)";
		}
	}
	if (r->t == T_EVENT) {
		const char *kind = txt(r->newv[col_of(tb, "kind")]);
		const char *from = txt(r->newv[col_of(tb, "from_state")]);
		const char *to = txt(r->newv[col_of(tb, "to_state")]);
		const char *issue = txt(r->newv[col_of(tb, "issue_id")]);
		struct mrow *is =
			issue != NULL ? row_find(o, T_ISSUE, issue) : NULL;
		const char *state = is != NULL ? txt(rv(o, is, "state")) : NULL;

		if (!same(txt(r->newv[col_of(tb, "actor_worker_id")]),
			  d->worker) ||
		    !same(txt(r->newv[col_of(tb, "actor_role")]), d->role))
			return "an event acted by somebody else (actor)";
		if (same(kind, "transition"))
			return NULL;
		if (!same(kind, "comment") && !same(kind, "evidence") &&
		    !same(kind, "urge") && !same(kind, "extend_req"))
			return "an unknown event kind (event)";
		if ((from != NULL && from[0] != '\0' && !same(from, state)) ||
		    (to != NULL && to[0] != '\0' && !same(to, state)))
			return "a state change in a non-transition (event)";
	}
	return NULL;
}

/* An issue (or an event of one) whose assignee or reporter is the
 * device's worker is in its scope whatever its grid. */
static bool reaches(struct orc *o, const struct dev *d, int t, char *const *v)
{
	struct mrow *is = NULL;

	if (!o->scope_rule || (t != T_ISSUE && t != T_EVENT))
		return false;
	if (t == T_EVENT) {
		const char *id = txt(v[col_of(&o->tab[T_EVENT], "issue_id")]);

		is = id != NULL ? row_find(o, T_ISSUE, id) : NULL;
		if (is == NULL)
			return false;
		v = is->val;
	}
	return same(txt(v[col_of(&o->tab[T_ISSUE], "assignee_worker_id")]),
		    d->worker) ||
	       same(txt(v[col_of(&o->tab[T_ISSUE], "reporter_worker_id")]),
		    d->worker);
}

/* Would the server refuse the whole entry (the scope, shape and
 * authorization rules)? */
static const char *
judge(struct orc *o, const struct dev *d, struct crow *rows, size_t n)
{
	static char why[160];
	struct pend_ins pend[64];
	size_t n_pend = 0;

	for (int t = 0; t < N_T; t++) {
		for (size_t k = 0; k < n; k++) {
			struct crow *r = &rows[k];
			const struct tab *tb = &o->tab[t];
			char *merged[MAXCOL];
			struct mrow *cur = NULL;
			const char *grid;
			bool missing;

			if (r->t != t)
				continue;
			if (r->op == SQLITE_DELETE)
				return "a delete of a device row";
			if (r->op == SQLITE_UPDATE &&
			    (t == T_VISIT || t == T_EVENT))
				return "an update of an append-only row";
			if (r->op == SQLITE_UPDATE) {
				cur = row_find(o, t, r->pk);
				if (cur == NULL)
					return "an update of an unknown row";
				if (!in_scope(d, row_grid(o, t, cur->val, pend,
							  n_pend, &missing)) &&
				    !reaches(o, d, t, cur->val))
					return "an update outside the scope";
				for (int i = 0; i < tb->n; i++)
					merged[i] = r->newv[i] != NULL
							    ? r->newv[i]
							    : cur->val[i];
			} else {
				if (row_find(o, t, r->pk) != NULL)
					return "an insert of an existing row";
				for (int i = 0; i < tb->n; i++)
					merged[i] = r->newv[i];
			}
			grid = row_grid(o, t, merged, pend, n_pend, &missing);
			if (missing)
				return "a row whose parent is unknown";
			if (!in_scope(d, grid) && !reaches(o, d, t, merged)) {
				snprintf(why, sizeof(why),
					 "a %s outside the scope", tname[t]);
				return why;
			}
			{
				const char *c = claims(o, d, rows, n, r, cur,
						       pend, n_pend);

				if (c != NULL)
					return c;
			}
			if (r->op == SQLITE_INSERT && n_pend < 64 &&
			    (t == T_HH || t == T_ISSUE)) {
				pend[n_pend].t = t;
				pend[n_pend].pk = r->pk;
				pend[n_pend].grid = grid;
				n_pend++;
			}
		}
	}
	for (size_t k = 0; k < n; k++)
		if (rows[k].t < 0)
			return "a table a device may not write";
	/* A new issue must be created through a move its device may make. */
	for (size_t k = 0; k < n; k++) {
		bool created = false;

		if (rows[k].t != T_ISSUE || rows[k].op != SQLITE_INSERT)
			continue;
		for (size_t j = 0; j < n; j++) {
			const struct tab *et = &o->tab[T_EVENT];
			struct crow *ev = &rows[j];
			const struct rule *ru;
			struct mrow tmp;

			if (ev->t != T_EVENT ||
			    !same(txt(ev->newv[col_of(et, "issue_id")]),
				  rows[k].pk) ||
			    !same(txt(ev->newv[col_of(et, "kind")]),
				  "transition"))
				continue;
			ru = rule_find(
				txt(ev->newv[col_of(et, "from_state")]) != NULL
					? txt(ev->newv[col_of(et,
							      "from_state")])
					: "",
				txt(ev->newv[col_of(et, "to_state")]) != NULL
					? txt(ev->newv[col_of(et, "to_state")])
					: "");
			memset(&tmp, 0, sizeof(tmp));
			tmp.t = T_ISSUE;
			memcpy(tmp.val, rows[k].newv, sizeof(tmp.val));
			if (ru != NULL && ru->from[0] == '\0' &&
			    move_allowed(
				    d, ru,
				    txt(ev->newv[col_of(et, "actor_role")]),
				    txt(ev->newv[col_of(et,
							"actor_worker_id")]),
				    &tmp, o))
				created = true;
		}
		if (!created)
			return "an issue not created through an allowed move";
	}
	return NULL;
}

static void told_add(struct orc *o,
		     int dev,
		     int t,
		     const char *pk,
		     const char *col,
		     uint64_t seq,
		     int kind)
{
	struct told *x;

	if (o->n_told == o->cap_told) {
		o->cap_told = o->cap_told ? o->cap_told * 2 : 64;
		o->told = realloc(o->told, o->cap_told * sizeof(*o->told));
	}
	x = &o->told[o->n_told++];
	x->dev = dev;
	x->t = t;
	x->pk = strdup(pk);
	snprintf(x->col, sizeof(x->col), "%s", col);
	x->seq = seq;
	x->kind = kind;
}

static int dev_index(struct orc *o, const char *id)
{
	for (int i = 0; i < o->n_dev; i++)
		if (strcmp(o->dev[i].id, id) == 0)
			return i;
	return -1;
}

/* Column-wise last writer wins of one INSERT or UPDATE (D and S). */
static void merge_field(struct orc *o,
			const struct entry *e,
			const struct stamp *s,
			struct crow *r,
			bool *touched)
{
	const struct tab *tb = &o->tab[r->t];
	struct mrow *m = row_find(o, r->t, r->pk);
	bool any = false;
	bool was_deleted;

	if (r->op == SQLITE_INSERT) {
		m = row_new(o, r->t, r->pk);
		m->by = e->dev;
		for (int i = 0; i < tb->n; i++) {
			if (device_col(tb, i))
				m->val[i] = r->newv[i] != NULL
						    ? strdup(r->newv[i])
						    : strdup("N");
			else if (tb->cls[i] & C_SERVER)
				m->val[i] = strdup(
					strcmp(tb->col[i], "overdue_level") == 0
						? "I:0"
						: "N");
			else if (tb->cls[i] & C_PK)
				m->val[i] = strdup(r->newv[i]);
			m->clk[i] = *s;
		}
		set_rowstamp(o, m, s);
		set_val(&m->val[tb->i_origin], NULL);
		m->val[tb->i_origin] = enc_text(o->dev[e->dev].id);
		if (r->t == T_ISSUE) {
			for (int i = 0; i < tb->n; i++)
				if (tb->cls[i] & C_GOV)
					set_val(&m->val[i], "N");
			set_val(&m->val[col_of(tb, "state")], "T:draft");
			set_val(&m->val[col_of(tb, "state_rev")], "I:0");
			m->born = true;
		}
		*touched = true;
		return;
	}
	was_deleted = num(m->val[tb->i_del]) == 1;
	for (int i = 0; i < tb->n; i++) {
		const char *nv = r->newv[i];
		int c;

		if (nv == NULL || !device_col(tb, i))
			continue;
		c = stamp_cmp(s, &m->clk[i]);
		if (DEBUG)
			fprintf(stderr,
				"oracle: %s %s %s %s: %016llx vs %s %016llx:"
				" %s\n",
				o->dev[e->dev].id, tname[r->t], r->pk,
				tb->col[i], (unsigned long long)s->hlc,
				m->clk[i].dev,
				(unsigned long long)m->clk[i].hlc,
				c > 0 ? "wins" : "loses");
		if (c > 0) {
			/* Wins: did it see the value it replaces? */
			if (!(tb->cls[i] & C_QUIET) && !same(nv, m->val[i]) &&
			    !same(r->oldv[i], m->val[i])) {
				o->st.overwrites++;
				if (o->pend_losers) {
					int loser = dev_index(o, m->clk[i].dev);

					if (loser >= 0)
						told_add(o, loser, r->t, r->pk,
							 tb->col[i], 0, 0);
				}
			}
			set_val(&m->val[i], nv);
			m->clk[i] = *s;
			any = true;
		} else if (!same(nv, m->val[i]) && !(tb->cls[i] & C_QUIET)) {
			/* Loses on arrival: its device must hear of it. */
			o->st.lost_arrival++;
			told_add(o, e->dev, r->t, r->pk, tb->col[i], e->seq, 0);
		}
	}
	if (was_deleted && r->newv[tb->i_del] == NULL) {
		o->st.tombstone_edits++;
		told_add(o, e->dev, r->t, r->pk, "deleted", e->seq, 1);
	}
	if (any) {
		if (stamp_order(s, &m->rs) > 0)
			set_rowstamp(o, m, s);
		*touched = true;
	}
}

static const char *ev_get(struct orc *o, const struct crow *r, const char *c)
{
	return r->newv[col_of(&o->tab[T_EVENT], c)];
}

/* DESIGN.md's order of one entry's events: per issue, by (hlc,
 * base_rev), creation first, then id. */
static struct orc *SORT_O;
static int ev_cmp(const void *pa, const void *pb)
{
	const struct crow *a = *(struct crow *const *)pa;
	const struct crow *b = *(struct crow *const *)pb;
	struct orc *o = SORT_O;
	const char *fa = txt(ev_get(o, a, "from_state"));
	const char *fb = txt(ev_get(o, b, "from_state"));
	int64_t ra = num(ev_get(o, a, "base_rev"));
	int64_t rb = num(ev_get(o, b, "base_rev"));
	int ka = fa == NULL || fa[0] == '\0' ? -1 : rank(fa);
	int kb = fb == NULL || fb[0] == '\0' ? -1 : rank(fb);
	int c = strcmp(txt(ev_get(o, a, "issue_id")),
		       txt(ev_get(o, b, "issue_id")));

	if (c == 0)
		c = strcmp(ev_get(o, a, "hlc"), ev_get(o, b, "hlc"));
	if (c == 0)
		c = ra < rb ? -1 : ra > rb ? 1 : 0;
	if (c == 0)
		c = ka - kb;
	if (c == 0)
		c = strcmp(a->pk, b->pk);
	return c;
}

/* Decide and apply one new transition event against the model's issue. */
static void merge_event(struct orc *o,
			const struct entry *e,
			const struct stamp *s,
			struct crow *r,
			struct crow *rows,
			size_t n)
{
	const struct tab *et = &o->tab[T_EVENT];
	const struct tab *it = &o->tab[T_ISSUE];
	struct dev *d = &o->dev[e->dev];
	struct mrow *ev = row_new(o, T_EVENT, r->pk);
	struct mrow *is = row_find(o, T_ISSUE, txt(ev_get(o, r, "issue_id")));
	const char *from = txt(ev_get(o, r, "from_state"));
	const char *to = txt(ev_get(o, r, "to_state"));
	const char *state = txt(rv(o, is, "state"));
	int64_t rev = num(rv(o, is, "state_rev"));
	const char *base = ev_get(o, r, "base_rev");
	const char *status = "applied";
	const char *reason = NULL;
	bool bump = false;

	if (from == NULL)
		from = "";
	ev->by = e->dev;
	for (int i = 0; i < et->n; i++) {
		if (device_col(et, i) || (et->cls[i] & C_PK))
			ev->val[i] =
				strdup(r->newv[i] != NULL ? r->newv[i] : "N");
		else
			ev->val[i] = strdup("N");
	}
	set_rowstamp(o, ev, s);
	set_val(&ev->val[et->i_origin], NULL);
	ev->val[et->i_origin] = enc_text(d->id);
	if (same(txt(ev_get(o, r, "kind")), "transition")) {
		const struct rule *ru = rule_find(from, to != NULL ? to : "");

		if (!move_allowed(d, ru, txt(ev_get(o, r, "actor_role")),
				  txt(ev_get(o, r, "actor_worker_id")), is,
				  o)) {
			status = "rejected_stale";
			reason = "forbidden";
		} else if (from[0] == '\0' && is->born) {
			status = "applied";
		} else if (terminal(state)) {
			status = "rejected_stale";
			reason = "terminal";
		} else if (base != NULL && base[0] == 'I' && num(base) == rev &&
			   same(from, state)) {
			bump = true;
		} else if (same(state, to) ||
			   (main_line(state) && main_line(to) &&
			    rank(state) > rank(to))) {
			status = "noop";
			reason = "superseded";
		} else {
			status = "needs_review";
			reason = "concurrent";
		}
	}
	set_val(&ev->val[col_of(et, "apply_status")], NULL);
	ev->val[col_of(et, "apply_status")] = enc_text(status);
	set_val(&ev->val[col_of(et, "reject_reason")], NULL);
	ev->val[col_of(et, "reject_reason")] = enc_text(reason);
	if (strcmp(status, "applied") == 0)
		o->st.ev_applied++;
	else if (strcmp(status, "noop") == 0)
		o->st.ev_noop++;
	else if (strcmp(status, "needs_review") == 0)
		o->st.ev_review++;
	else
		o->st.ev_stale++;
	if (strcmp(status, "applied") != 0 ||
	    !same(txt(ev_get(o, r, "kind")), "transition"))
		return;
	if (from[0] == '\0')
		is->born = false; /* created */
	set_val(&is->val[col_of(it, "state")], NULL);
	is->val[col_of(it, "state")] = enc_text(to);
	if (bump) {
		set_val(&is->val[col_of(it, "state_rev")], NULL);
		is->val[col_of(it, "state_rev")] = enc_int(rev + 1);
	}
	/* A dispatch takes assignee and deadline from the entry's own
	 * change of the issue; a closing its time. */
	for (size_t k = 0; k < n; k++) {
		static const char *const take[] = { "assignee_worker_id",
						    "assignee_org_id",
						    "due_at" };

		if (rows[k].t != T_ISSUE || rows[k].op == SQLITE_DELETE ||
		    strcmp(rows[k].pk, is->pk) != 0)
			continue;
		/* Rework (handled -> dispatched) keeps them. */
		if (strcmp(to, "dispatched") == 0 &&
		    (strcmp(from, "accepted") == 0 ||
		     strcmp(from, "returned") == 0))
			for (int q = 0; q < 3; q++) {
				int i = col_of(it, take[q]);

				if (rows[k].newv[i] != NULL)
					set_val(&is->val[i], rows[k].newv[i]);
			}
		if (strcmp(to, "closed") == 0 &&
		    rows[k].newv[col_of(it, "closed_at")] != NULL) {
			set_val(&is->val[col_of(it, "closed_at")],
				rows[k].newv[col_of(it, "closed_at")]);
			to = NULL;
		}
	}
	if (to != NULL && strcmp(to, "closed") == 0)
		set_val(&is->val[col_of(it, "closed_at")],
			ev_get(o, r, "device_time"));
	if (stamp_order(s, &is->rs) > 0)
		set_rowstamp(o, is, s);
}

/* An entry the server took, stamped s: merge it into the model as the
 * server must. */
static void
model_apply(struct orc *o, struct entry *e, const struct stamp *stamp)
{
	size_t n;
	struct crow *rows = decode(o, e, &n);
	struct crow *evs[256];
	size_t n_ev = 0;
	struct stamp s = *stamp;
	bool touched = false;

	for (int t = 0; t < N_T; t++)
		for (size_t k = 0; k < n; k++) {
			if (rows[k].t != t)
				continue;
			if (t == T_EVENT) {
				if (n_ev < 256)
					evs[n_ev++] = &rows[k];
			} else if (t == T_VISIT) {
				const struct tab *tb = &o->tab[t];
				struct mrow *m = row_new(o, t, rows[k].pk);

				m->by = e->dev;
				for (int i = 0; i < tb->n; i++)
					m->val[i] = strdup(
						device_col(tb, i) ||
								(tb->cls[i] &
								 C_PK)
							? rows[k].newv[i]
							: "N");
				set_rowstamp(o, m, &s);
				set_val(&m->val[tb->i_origin], NULL);
				m->val[tb->i_origin] = enc_text(s.dev);
			} else {
				merge_field(o, e, &s, &rows[k], &touched);
			}
		}
	SORT_O = o;
	qsort(evs, n_ev, sizeof(*evs), ev_cmp);
	for (size_t k = 0; k < n_ev; k++)
		merge_event(o, e, &s, evs[k], rows, n);
	/* Issues born here are created now (or the entry was refused). */
	for (size_t k = 0; k < n; k++)
		if (rows[k].t == T_ISSUE && rows[k].op == SQLITE_INSERT) {
			struct mrow *m = row_find(o, T_ISSUE, rows[k].pk);

			if (m != NULL)
				m->born = false;
		}
	crow_free(rows, n);
}

/* ---- capturing writes ------------------------------------------------------
 */

struct cap {
	struct orc *o;
	int dev;
	int crafted;
};

static int capture_cb(const struct gs_row *row, void *payload)
{
	struct cap *c = payload;
	struct orc *o = c->o;
	struct dev *d = &o->dev[c->dev];
	uint64_t seq = (uint64_t)strtoull(gs_row_get(row, "seq"), NULL, 10);
	const char *sha = gs_row_get(row, "sha256");
	struct entry *e;

	/* An entry is known by its content: a restored or renumbering
	 * device holds entries the record already has. */
	for (size_t k = 0; k < o->n_ent; k++)
		if (o->ent[k].dev == c->dev &&
		    strcmp(o->ent[k].sha, sha) == 0) {
			o->ent[k].seq = seq;
			return 0;
		}
	if (o->n_ent == o->cap_ent) {
		o->cap_ent = o->cap_ent ? o->cap_ent * 2 : 256;
		o->ent = realloc(o->ent, o->cap_ent * sizeof(*o->ent));
	}
	e = &o->ent[o->n_ent++];
	memset(e, 0, sizeof(*e));
	e->dev = c->dev;
	e->seq = seq;
	e->crafted = c->crafted;
	snprintf(e->sha, sizeof(e->sha), "%s", sha);
	assert_gs_ok(gs__hlc_parse(&e->hlc, gs_row_get(row, "hlc")));
	{
		uint8_t *cs = NULL;

		assert_gs_ok(gs_outbox_get(d->d, seq, &cs, &e->len));
		e->cs = malloc(e->len + 1);
		memcpy(e->cs, cs, e->len);
		gs_free(d->ctx, cs);
	}
	o->st.entries++;
	return 0;
}

/* Take every new outbox entry of device i into the record. */
static void capture(struct orc *o, int i, int crafted)
{
	struct cap c = { o, i, crafted };

	assert_gs_ok(gs_outbox_list(o->dev[i].d, capture_cb, &c));
}

/* ---- device access ---------------------------------------------------------
 */

static int64_t real_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t skewed_clock(void *payload)
{
	return real_ms() + *(const int64_t *)payload;
}

/* Up to max ids from the device, one random one into out; false if none. */
static bool pick(struct orc *o, int i, const char *sql, char *out, size_t cap)
{
	sqlite3 *db = gs__device_db(o->dev[i].d);
	sqlite3_stmt *st = NULL;
	static char ids[1024][40];
	int n = 0;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	while (sqlite3_step(st) == SQLITE_ROW && n < 1024)
		snprintf(ids[n++], sizeof(ids[0]), "%s",
			 (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	if (n == 0)
		return false;
	/* Half the time one of the first few: devices whose scopes overlap
	 * then write the same rows, and their writes conflict. */
	snprintf(out, cap, "%s",
		 ids[rnd(o, 3) ? rnd(o, (uint64_t)(n < 2 ? n : 2))
			       : rnd(o, (uint64_t)n)]);
	return true;
}

/* A call of the handheld API: it must succeed, except that with the scope
 * family a device holds rows outside its grids (the household one of its
 * orders names) and refuses to write them itself. */
static void api(struct orc *o, int i, int rc, const char *what)
{
	if (rc == GS_OK || (rc == GS_EDENIED && o->fam_scope))
		return;
	fail_msg("%s on %s: %s", what, o->dev[i].id,
		 gs_ctx_errmsg(o->dev[i].ctx));
}

static const char *const OUTCOMES[] = { "met", "not_home", "refused", "moved",
					"vacant" };
static const char *const KINDS[] = { "routine", "care", "follow_up" };
static const char *const TENURES[] = { "自有", "租住", "借住", "其他" };

/* Pick random households in a random order of the device's rows. */
static const char hh_sql[] = "SELECT id FROM household WHERE deleted = 0"
			     " ORDER BY id";

static void op_household_edit(struct orc *o, int i)
{
	char hh[64];
	char note[64];
	char size[16];
	struct gs_field f[3];
	size_t n = 0;

	if (!pick(o, i, hh_sql, hh, sizeof(hh)))
		return;
	snprintf(note, sizeof(note), "备注 %" PRIu64 "-%u", o->seed,
		 (unsigned)rnd(o, 1000000));
	snprintf(size, sizeof(size), "%u", 1 + (unsigned)rnd(o, 6));
	if (rnd(o, 3) != 0)
		f[n++] = (struct gs_field){ "note", note };
	if (rnd(o, 2) == 0)
		f[n++] = (struct gs_field){ "size", size };
	if (n == 0 || rnd(o, 3) == 0)
		f[n++] = (struct gs_field){ "tenure", TENURES[rnd(o, 4)] };
	api(o, i, gs_household_edit(o->dev[i].d, hh, f, n), "household edit");
}

static void op_household_add(struct orc *o, int i)
{
	struct dev *d = &o->dev[i];
	char id[GS_ID_LEN];
	char note[64];
	struct gs_field f[3];

	snprintf(note, sizeof(note), "新户 %u", (unsigned)rnd(o, 100000));
	f[0] = (struct gs_field){ "grid_id",
				  d->grids[rnd(o, (uint64_t)d->n_grids)] };
	f[1] = (struct gs_field){ "note", note };
	f[2] = (struct gs_field){ "size", "2" };
	api(o, i, gs_household_add(d->d, id, f, 3), "household add");
}

static void op_household_delete(struct orc *o, int i)
{
	char hh[64];

	if (pick(o, i, hh_sql, hh, sizeof(hh)))
		api(o, i, gs_household_delete(o->dev[i].d, hh),
		    "household delete");
}

static void op_resident_add(struct orc *o, int i)
{
	char hh[64];
	char id[GS_ID_LEN];
	char name[32];
	struct gs_field f[3];

	if (!pick(o, i, hh_sql, hh, sizeof(hh)))
		return;
	snprintf(name, sizeof(name), "居民%u", (unsigned)rnd(o, 100000));
	f[0] = (struct gs_field){ "household_id", hh };
	f[1] = (struct gs_field){ "name", name };
	f[2] = (struct gs_field){ "relation", rnd(o, 2) ? "户主" : "子女" };
	api(o, i, gs_resident_add(o->dev[i].d, id, f, 3), "resident add");
}

static void op_resident_edit(struct orc *o, int i)
{
	static const char *const emp[] = { "在职", "退休", "待业", "学生" };
	char r[64];
	char name[32];
	struct gs_field f[2];
	size_t n = 0;

	if (!pick(o, i,
		  "SELECT r.id FROM resident r JOIN household h ON h.id ="
		  " r.household_id WHERE r.deleted = 0 AND h.deleted = 0"
		  " ORDER BY r.id",
		  r, sizeof(r)))
		return;
	snprintf(name, sizeof(name), "改名%u", (unsigned)rnd(o, 100000));
	if (rnd(o, 2) == 0)
		f[n++] = (struct gs_field){ "name", name };
	f[n++] = (struct gs_field){ "employment", emp[rnd(o, 4)] };
	api(o, i, gs_resident_edit(o->dev[i].d, r, f, n), "resident edit");
}

static void op_visit(struct orc *o, int i)
{
	struct gs_visit_opts vo = GS_VISIT_OPTS_INIT;
	char hh[64];
	char id[GS_ID_LEN];

	if (!pick(o, i, hh_sql, hh, sizeof(hh)))
		return;
	vo.household_id = hh;
	vo.kind = KINDS[rnd(o, 3)];
	vo.outcome = OUTCOMES[rnd(o, 5)];
	vo.summary = rnd(o, 2) ? "燃气检查正常" : NULL;
	api(o, i, gs_visit_add(o->dev[i].d, id, &vo), "visit");
}

static void op_report(struct orc *o, int i)
{
	struct gs_issue_report_opts ro = GS_ISSUE_REPORT_OPTS_INIT;
	struct gs_synth_rng rng;
	struct gs_synth_issue is;
	char hh[64];
	char id[GS_ID_LEN];

	if (strcmp(o->dev[i].role, "GW") != 0 ||
	    !pick(o, i, hh_sql, hh, sizeof(hh)))
		return;
	gs__synth_rng_seed(&rng, rnd(o, 1u << 30));
	assert_gs_ok(gs__synth_issue(&is, &rng, NULL));
	ro.category = is.category_code;
	ro.title = is.title;
	ro.description = is.description;
	ro.household_id = hh;
	ro.draft = rnd(o, 8) == 0;
	api(o, i, gs_issue_report(o->dev[i].d, id, &ro), "report");
}

/* A random move the device's role may make from the issue's state as the
 * device sees it; the device's own checks may still refuse it. */
static void op_move(struct orc *o, int i)
{
	struct dev *d = &o->dev[i];
	struct gs_issue_move_opts mo = GS_ISSUE_MOVE_OPTS_INIT;
	const struct rule *cand[8];
	int n = 0;
	char id[64];
	char state[32] = "";
	char due[32];
	char sql[160];
	sqlite3_stmt *st = NULL;
	int rc;

	if (!pick(o, i,
		  "SELECT id FROM issue WHERE deleted = 0 AND state NOT IN"
		  " ('closed', 'evaluated', 'invalid', 'cancelled')"
		  " ORDER BY id",
		  id, sizeof(id)))
		return;
	snprintf(sql, sizeof(sql), "SELECT state FROM issue WHERE id = '%s'",
		 id);
	assert_int_equal(
		sqlite3_prepare_v2(gs__device_db(d->d), sql, -1, &st, NULL),
		SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		snprintf(state, sizeof(state), "%s",
			 (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	for (size_t k = 0; k < N_RULES && n < 8; k++)
		if (strcmp(RULES[k].from, state) == 0 &&
		    role_in(RULES[k].roles, d->role))
			cand[n++] = &RULES[k];
	if (n == 0)
		return;
	mo.to = cand[rnd(o, (uint64_t)n)]->to;
	mo.note = "现场核实";
	if (strcmp(mo.to, "dispatched") == 0) {
		/* To a grid worker with a device, mostly. */
		int w = (int)rnd(o, (uint64_t)o->n_dev);

		mo.assignee = strcmp(o->dev[w].role, "GW") == 0
				      ? o->dev[w].worker
				      : o->dev[0].worker;
		snprintf(due, sizeof(due), "2030-01-%02uT08:00:00Z",
			 1 + (unsigned)rnd(o, 28));
		mo.due = due;
	}
	rc = gs_issue_move(d->d, id, &mo);
	if (rc != GS_OK && rc != GS_ESTATE)
		fail_msg("move %s -> %s on %s: %s", state, mo.to, d->id,
			 gs_ctx_errmsg(d->ctx));
}

/* A household moves to another of the device's grids. */
static void op_household_move(struct orc *o, int i)
{
	struct dev *d = &o->dev[i];
	char hh[64];
	char grid[64] = "";
	char sql[160];
	sqlite3_stmt *st = NULL;
	const char *to;
	struct gs_field f[1];
	int rc;

	if (d->n_grids < 2 || !pick(o, i, hh_sql, hh, sizeof(hh)))
		return;
	snprintf(sql, sizeof(sql),
		 "SELECT grid_id FROM household WHERE id = '%s'", hh);
	assert_int_equal(
		sqlite3_prepare_v2(gs__device_db(d->d), sql, -1, &st, NULL),
		SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		snprintf(grid, sizeof(grid), "%s", col_text(st, 0));
	sqlite3_finalize(st);
	to = d->grids[rnd(o, (uint64_t)d->n_grids)];
	if (strcmp(to, grid) == 0)
		return;
	f[0] = (struct gs_field){ "grid_id", to };
	rc = gs_household_edit(d->d, hh, f, 1);
	/* A household it holds through one of its issues is not its to
	 * move: the device says so itself. */
	if (rc != GS_OK && rc != GS_EDENIED)
		fail_msg("move of a household on %s: %s", d->id,
			 gs_ctx_errmsg(d->ctx));
	o->st.moves += rc == GS_OK;
}

/* The operator gives a grid worker's device other grids. */
static void op_scope_set(struct orc *o, int i)
{
	struct dev *d = &o->dev[i];
	char codes[128] = "";
	sqlite3_stmt *st = NULL;
	int want = 1 + (int)rnd(o, 2);
	int n = 0;

	if (strcmp(d->role, "GW") != 0)
		return;
	assert_int_equal(sqlite3_prepare_v2(o->sdb,
					    "SELECT code FROM grid WHERE level"
					    " = 'micro' ORDER BY code",
					    -1, &st, NULL),
			 SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW && n < want)
		if (rnd(o, 3) == 0) {
			size_t len = strlen(codes);

			snprintf(codes + len, sizeof(codes) - len, "%s%s",
				 n ? "," : "", col_text(st, 0));
			n++;
		}
	sqlite3_finalize(st);
	if (n == 0)
		return;
	{
		const char *argv[] = { "gridsyncd", "scope",   "set",
				       "--db",      o->srv.db, "--device",
				       d->id,       "--scope", codes,
				       NULL };

		assert_int_equal(gs_itest_run(argv, "/dev/null", NULL), 0);
	}
	snprintf(d->next_scope, sizeof(d->next_scope), "%s", codes);
	o->st.scope_sets++;
}

static void sync_dev(struct orc *o, int i);
static int64_t max_conflict_id(struct orc *o, int i);
static void check_told_of(struct orc *o, int only, bool drop);

/*
 * Field life of a handheld: a backup copy of the device's database taken
 * now, the device restored from that older copy later (its outbox and
 * sequence numbers fall back; what it pushed since is on the server), or
 * the device re-initialised under its own id from its enrolment bundle.
 * Either way no edit saved afterwards may be refused or lost.
 */
static void op_restore(struct orc *o, int i)
{
	struct dev *d = &o->dev[i];
	char path[4200];
	char backup[4200];
	char sql[4400];
	int what = (int)rnd(o, 3);

	snprintf(path, sizeof(path), "%s/%s.db", o->dir, d->id);
	snprintf(backup, sizeof(backup), "%s/%s.backup.db", o->dir, d->id);
	if (what == 0 || (what == 1 && !d->has_backup)) {
		unlink(backup);
		snprintf(sql, sizeof(sql), "VACUUM INTO '%s'", backup);
		assert_int_equal(sqlite3_exec(gs__device_db(d->d), sql, NULL,
					      NULL, NULL),
				 SQLITE_OK);
		d->has_backup = true;
		o->st.backups++;
		return;
	}
	/* What it was told until now is checked before its database goes. */
	if (what == 2)
		sync_dev(o, i); /* a reinstall loses only what was sent */
	capture(o, i, 0);
	check_told_of(o, i, true);
	gs_device_close(d->d);
	d->d = NULL;
	{
		char old[4300];

		snprintf(old, sizeof(old), "%s.%u.gone", path, o->st.restores);
		assert_int_equal(rename(path, old), 0);
		snprintf(old, sizeof(old), "%s-wal", path);
		unlink(old);
		snprintf(old, sizeof(old), "%s-shm", path);
		unlink(old);
	}
	if (what == 1) {
		char cmd[8800];

		snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", backup, path);
		assert_int_equal(system(cmd), 0);
		assert_gs_ok(gs_device_open(&d->d, d->ctx, path));
		o->st.restores++;
	} else {
		struct gs_device_init_opts io = GS_DEVICE_INIT_OPTS_INIT;
		char bundle[4200];

		snprintf(bundle, sizeof(bundle), "%s/%s.bundle", o->dir, d->id);
		io.bundle = bundle;
		io.server = o->srv.addr;
		if (gs_device_init(&d->d, d->ctx, path, &io) != GS_OK)
			fail_msg("re-init of %s: %s", d->id,
				 gs_ctx_errmsg(d->ctx));
		d->has_backup = false;
		o->st.reinits++;
	}
	assert_gs_ok(gs__device_set_normal(d->d, 1));
	d->conflict_mark = max_conflict_id(o, i);
	if (what == 2)
		sync_dev(o, i); /* a fresh database bootstraps first */
}

/* ---- crafted entries (a modified client) ----------------------------------
 */

/* Write sql as one captured transaction on device i, past its API. */
static void craft_exec(struct orc *o, int i, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void craft_exec(struct orc *o, int i, const char *fmt, ...)
{
	struct dev *d = &o->dev[i];
	struct gs_capture *cap = NULL;
	char hlc_text[GS_HLC_TEXT_LEN];
	char sql[2048];
	char *sql2;
	uint64_t hlc;
	uint64_t seq = 0;
	va_list ap;

	assert_gs_ok(gs__capture_open(&cap, d->ctx, gs__device_db(d->d)));
	assert_gs_ok(gs__capture_begin(cap, &hlc));
	gs__hlc_format(hlc_text, hlc);
	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	/* "@HLC@" stands for the transaction's stamp. */
	sql2 = strdup(sql);
	for (char *p = strstr(sql2, "@HLC@"); p != NULL;
	     p = strstr(sql2, "@HLC@")) {
		size_t len = strlen(sql2) + GS_HLC_TEXT_LEN;
		char *nw = malloc(len);

		*p = '\0';
		snprintf(nw, len, "%s%s%s", sql2, hlc_text, p + 5);
		free(sql2);
		sql2 = nw;
	}
	if (sqlite3_exec(gs__device_db(d->d), sql2, NULL, NULL, NULL) !=
	    SQLITE_OK)
		fail_msg("crafted write on %s: %s", d->id,
			 sqlite3_errmsg(gs__device_db(d->d)));
	free(sql2);
	assert_gs_ok(gs__capture_commit(cap, &seq));
	gs__capture_close(cap);
	assert_true(seq > 0);
}

/* A grid this device may not write, or NULL. */
static const char *foreign_grid(struct orc *o, int i)
{
	static char g[64];
	sqlite3_stmt *st = NULL;

	assert_int_equal(sqlite3_prepare_v2(o->sdb,
					    "SELECT id FROM grid WHERE level"
					    " = 'micro' ORDER BY code",
					    -1, &st, NULL),
			 SQLITE_OK);
	g[0] = '\0';
	while (sqlite3_step(st) == SQLITE_ROW)
		if (!in_scope(&o->dev[i],
			      (const char *)sqlite3_column_text(st, 0)))
			snprintf(g, sizeof(g), "%s",
				 sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return g[0] != '\0' ? g : NULL;
}

static int64_t server_hash_and(struct orc *o, char out[65])
{
	struct gs_ctx *ctx = gs_test_ctx_new(NULL);
	struct gs_store *st = NULL;

	assert_gs_ok(gs__store_open(&st, ctx, o->srv.db, 0));
	assert_gs_ok(gs__store_scope_hash(st, NULL, out));
	gs__store_close(st);
	gs_ctx_free(ctx);
	return 0;
}

/* A household of a grid outside device i's scope, from the server. */
static bool foreign_household(struct orc *o, int i, char *out, size_t cap)
{
	sqlite3_stmt *st = NULL;
	bool found = false;

	assert_int_equal(sqlite3_prepare_v2(o->sdb,
					    "SELECT id, grid_id FROM household"
					    " ORDER BY id",
					    -1, &st, NULL),
			 SQLITE_OK);
	while (!found && sqlite3_step(st) == SQLITE_ROW)
		if (!in_scope(&o->dev[i], col_text(st, 1))) {
			snprintf(out, cap, "%s", col_text(st, 0));
			found = true;
		}
	sqlite3_finalize(st);
	return found;
}

#define N_CRAFT 10

/*
 * Forge one entry past the API, as a modified client would, and push it
 * alone: it must be refused and leave the server exactly as it was.
 * Kinds: 1 a household in a foreign grid, 2 a change of reference data, 3
 * an update of an append-only visit, 4 a visit naming a foreign
 * household, 5 a visit under another worker's id, 6 an issue's reporter
 * rewritten, 7 a comment that changes the state, 8 a move acted by
 * another worker, 9 an edit signed by another worker, 10 an assignee set
 * without a dispatch.
 */
static void op_craft(struct orc *o, int i)
{
	struct dev *d = &o->dev[i];
	char other[64] = "";
	sqlite3 *db = gs__device_db(d->d);
	const char *g = foreign_grid(o, i);
	char id[64];
	char is[64];
	char before[65];
	char after[65];
	int kind = 1 + (int)rnd(o, N_CRAFT);
	unsigned tag = (unsigned)rnd(o, 1000000000);
	bool have_hh = pick(o, i, hh_sql, id, sizeof(id));
	bool have_is =
		pick(o, i, "SELECT id FROM issue ORDER BY id", is, sizeof(is));

	{
		/* A worker with no device here: never the last editor. */
		sqlite3_stmt *st = NULL;

		assert_int_equal(sqlite3_prepare_v2(o->sdb,
						    "SELECT id FROM worker"
						    " WHERE role = 'DH' ORDER"
						    " BY id LIMIT 1",
						    -1, &st, NULL),
				 SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		snprintf(other, sizeof(other), "%s", col_text(st, 0));
		sqlite3_finalize(st);
	}
	sync_dev(o, i); /* the forged entry travels alone */
	switch (kind) {
	case 1:
		if (g == NULL)
			return;
		craft_exec(o, i,
			   "INSERT INTO household (id, grid_id, hlc, origin,"
			   " created_at) VALUES ('forged-%u', '%s', '@HLC@',"
			   " '%s', '2025-01-01T00:00:00Z')",
			   tag, g, d->id);
		break;
	case 2:
		craft_exec(o, i,
			   "UPDATE grid SET name = name || '*' WHERE id ="
			   " '%s'",
			   d->grids[0]);
		break;
	case 3:
		if (!pick(o, i, "SELECT id FROM visit ORDER BY id", id,
			  sizeof(id)))
			return;
		craft_exec(o, i,
			   "UPDATE visit SET summary = 'rewritten', hlc ="
			   " '@HLC@' WHERE id = '%s'",
			   id);
		break;
	case 4:
	case 5: {
		char hh[64];

		if (kind == 4 && !foreign_household(o, i, hh, sizeof(hh)))
			return;
		if (kind == 5) {
			if (!have_hh)
				return;
			snprintf(hh, sizeof(hh), "%s", id);
		}
		/* The foreign household is not on the device. */
		assert_int_equal(sqlite3_exec(db, "PRAGMA foreign_keys = OFF",
					      NULL, NULL, NULL),
				 SQLITE_OK);
		craft_exec(o, i,
			   "INSERT INTO visit (id, household_id, grid_id,"
			   " worker_id, kind, started_at, outcome, hlc,"
			   " origin, created_at) VALUES ('forged-%u', '%s',"
			   " '%s', '%s', 'routine', '2025-01-01T00:00:00Z',"
			   " 'met', '@HLC@', '%s', '2025-01-01T00:00:00Z')",
			   tag, hh, d->grids[0], kind == 4 ? d->worker : other,
			   d->id);
		assert_int_equal(sqlite3_exec(db, "PRAGMA foreign_keys = ON",
					      NULL, NULL, NULL),
				 SQLITE_OK);
		break;
	}
	case 6:
		if (!have_is)
			return;
		craft_exec(o, i,
			   "UPDATE issue SET reporter_worker_id = CASE WHEN"
			   " reporter_worker_id = '%s' THEN '%s' ELSE '%s'"
			   " END, hlc = '@HLC@' WHERE id = '%s'",
			   d->worker, other, d->worker, is);
		break;
	case 7:
	case 8:
		if (!have_is)
			return;
		craft_exec(o, i,
			   "INSERT INTO issue_event (id, issue_id, kind,"
			   " from_state, to_state, base_rev,"
			   " actor_worker_id, actor_role, device_time, hlc,"
			   " origin) SELECT 'forged-%u', id, '%s', state,"
			   " 'closed', state_rev, '%s', '%s',"
			   " '2025-01-01T00:00:00Z', '@HLC@', '%s' FROM issue"
			   " WHERE id = '%s'",
			   tag, kind == 7 ? "comment" : "transition",
			   kind == 7 ? d->worker : other, d->role, d->id, is);
		break;
	case 9:
		if (!have_hh)
			return;
		craft_exec(o, i,
			   "UPDATE household SET note = 'forged %u',"
			   " updated_by = '%s', hlc = '@HLC@' WHERE id = '%s'",
			   tag, other, id);
		break;
	default:
		if (!have_is)
			return;
		craft_exec(o, i,
			   "UPDATE issue SET assignee_worker_id = '%s', due_at"
			   " = '2031-01-01T00:00:00Z', hlc = '@HLC@' WHERE id"
			   " = '%s'",
			   d->worker, is);
	}
	capture(o, i, kind);
	o->st.crafted[kind]++;
	server_hash_and(o, before);
	sync_dev(o, i);
	server_hash_and(o, after);
	if (strcmp(before, after) != 0)
		oracle_fail(o,
			    "crafted entry (kind %d) of %s changed the"
			    " server",
			    kind, d->id);
}

/* ---- syncing ---------------------------------------------------------------
 */

static bool seq_refused(struct orc *o, int i, uint64_t seq)
{
	sqlite3 *db = gs__device_db(o->dev[i].d);
	sqlite3_stmt *st = NULL;
	bool r;

	assert_int_equal(sqlite3_prepare_v2(db,
					    "SELECT count(*) FROM gs_conflict"
					    " WHERE device_seq = ? AND id > ?"
					    " AND reason LIKE 'rejected%'",
					    -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)seq);
	sqlite3_bind_int64(st, 2, o->dev[i].conflict_mark);
	r = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) > 0;
	sqlite3_finalize(st);
	return r;
}

static int64_t max_conflict_id(struct orc *o, int i)
{
	sqlite3 *db = gs__device_db(o->dev[i].d);
	sqlite3_stmt *st = NULL;
	int64_t v = 0;

	assert_int_equal(sqlite3_prepare_v2(db,
					    "SELECT ifnull(max(id), 0) FROM"
					    " gs_conflict",
					    -1, &st, NULL),
			 SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/*
 * The server's now for a push that clamped entries is read once from a
 * row the push stamped (checked against the interval the sync ran in and
 * the entry's place k); from then on the push's stamps are exact. Only
 * the millisecond is taken from the server: which write won is still the
 * model's own decision, and later pushes compare against exact stamps.
 */
static void stamp_resolve(struct orc *o, unsigned push)
{
	int64_t ms = -1;

	for (int h = 0; h < HASH_SIZE && ms < 0; h++)
		for (struct mrow *m = o->hash[h]; m != NULL && ms < 0;
		     m = m->next) {
			char sql[128];
			sqlite3_stmt *st = NULL;
			uint64_t v;

			if (m->rs.push != push)
				continue;
			snprintf(sql, sizeof(sql),
				 "SELECT hlc FROM %s WHERE id = ?",
				 tname[m->t]);
			assert_int_equal(
				sqlite3_prepare_v2(o->sdb, sql, -1, &st, NULL),
				SQLITE_OK);
			sqlite3_bind_text(st, 1, m->pk, -1, SQLITE_STATIC);
			if (sqlite3_step(st) == SQLITE_ROW &&
			    gs__hlc_parse(&v, col_text(st, 0)) == GS_OK &&
			    GS_HLC_MS(v) >= m->rs.lo_ms &&
			    GS_HLC_MS(v) <= m->rs.hi_ms &&
			    GS_HLC_CTR(v) == m->rs.k)
				ms = GS_HLC_MS(v);
			else
				oracle_fail(o,
					    "%s %s: the clamped stamp is not in"
					    " the sync's interval or not in"
					    " the entries' order",
					    tname[m->t], m->pk);
			sqlite3_finalize(st);
		}
	if (ms < 0)
		return;
	for (int h = 0; h < HASH_SIZE; h++)
		for (struct mrow *m = o->hash[h]; m != NULL; m = m->next) {
			for (int i = 0; i < MAXCOL; i++)
				if (m->clk[i].push == push) {
					m->clk[i].hlc =
						gs__hlc_make(ms, m->clk[i].k);
					m->clk[i].push = 0;
				}
			if (m->rs.push == push) {
				struct stamp s = m->rs;

				s.hlc = gs__hlc_make(ms, s.k);
				s.push = 0;
				set_rowstamp(o, m, &s);
			}
		}
	for (int i = 0; i < o->n_dev; i++)
		if (o->dev[i].last.push == push) {
			o->dev[i].last.hlc = gs__hlc_make(ms, o->dev[i].last.k);
			o->dev[i].last.push = 0;
		}
}

/* Sync device i, then take its verdicts into the model in the order the
 * server merged them. */
static void sync_dev(struct orc *o, int i)
{
	struct dev *d = &o->dev[i];
	struct gs_sync_summary sum;
	int64_t t0;
	int64_t t1;
	unsigned k_clamped = 0;

	capture(o, i, 0);
	/* A scope change set on the server: this sync's entries are judged
	 * against the old and the new grids, then the new ones hold. */
	if (d->next_scope[0] != '\0')
		codes_resolve(o, d->next_scope, d->xgrids, &d->n_xgrids);
	o->n_push++;
	t0 = real_ms();
	{
		struct gs_sync_opts so = GS_SYNC_OPTS_INIT;
		int rc;

		/* The seed's server listens where the template's did not. */
		so.server = o->srv.addr;
		so.once = 1;
		so.timeout_ms = 30000;
		rc = gs_device_sync(d->d, &so, &sum);
		if (rc != GS_OK)
			fail_msg("oracle seed %" PRIu64 ": sync of %s: %s",
				 o->seed, d->id, gs_ctx_errmsg(d->ctx));
	}
	t1 = real_ms();
	o->st.syncs++;
	for (size_t k = 0; k < o->n_ent; k++) {
		struct entry *e = &o->ent[k];
		bool refused;
		const char *why;
		struct crow *rows;
		size_t n;

		if (e->dev != i || e->state != 0)
			continue;
		refused = seq_refused(o, i, e->seq);
		rows = decode(o, e, &n);
		why = judge(o, d, rows, n);
		crow_free(rows, n);
		if (refused) {
			e->state = 2;
			o->st.refused++;
			if (why == NULL)
				oracle_fail(o,
					    "%s entry %" PRIu64 " (%s) was"
					    " refused, the model accepts it",
					    d->id, e->seq,
					    e->crafted ? "crafted" : "honest");
			else if (!e->crafted)
				/* A rule the worker could not know offline
				 * (a household that left the scope): the
				 * device undoes it and lists it. */
				o->st.honest_refused++;
			continue;
		}
		e->state = 1;
		if (why != NULL) {
			oracle_fail(o,
				    "%s entry %" PRIu64 " was accepted, the"
				    " model refuses it: %s",
				    d->id, e->seq, why);
			continue;
		}
		if (e->crafted)
			oracle_fail(o,
				    "%s crafted entry %" PRIu64 " (kind %d)"
				    " accepted",
				    d->id, e->seq, e->crafted);
		{
			/* The stamp the server gave it (see struct stamp). */
			struct stamp s;

			memset(&s, 0, sizeof(s));
			snprintf(s.dev, sizeof(s.dev), "%s", d->id);
			s.hlc = e->hlc;
			if (e->hlc > gs__hlc_make(t0 + CLAMP_MS, 0)) {
				if (e->hlc <=
				    gs__hlc_make(t1 + CLAMP_MS, 0xffff))
					oracle_fail(o,
						    "%s entry %" PRIu64
						    ": cannot tell whether the"
						    " server clamped it",
						    d->id, e->seq);
				s.push = o->n_push;
				s.lo_ms = t0 + CLAMP_MS;
				s.hi_ms = t1 + CLAMP_MS;
				s.k = k_clamped++;
				o->st.clamped++;
				s.hlc = gs__hlc_make(s.lo_ms, s.k);
			} else if (d->last.push == 0 && e->hlc <= d->last.hlc) {
				s.hlc = d->last.hlc + 1;
			} else if (d->last.push != 0 &&
				   e->hlc <= gs__hlc_make(d->last.hi_ms,
							  d->last.k)) {
				oracle_fail(o,
					    "%s entry %" PRIu64 ": cannot tell"
					    " its stamp from the clamped one"
					    " before it",
					    d->id, e->seq);
			}
			d->last = s;
			model_apply(o, e, &s);
		}
	}
	if (k_clamped > 0)
		stamp_resolve(o, o->n_push);
	/* The server learns that the device applied a new scope from the
	 * pull of its next sync: until then the old grids still count. */
	if (d->next_scope[0] != '\0') {
		char *tmp[16];
		int n_tmp = d->n_grids;

		memcpy(tmp, d->grids, sizeof(tmp));
		memcpy(d->grids, d->xgrids, sizeof(tmp));
		d->n_grids = d->n_xgrids;
		memcpy(d->xgrids, tmp, sizeof(tmp));
		d->n_xgrids = n_tmp;
		memcpy(d->scope, d->next_scope, sizeof(d->scope));
		d->next_scope[0] = '\0';
		d->old_grids_syncs = 1;
	} else if (d->old_grids_syncs > 0 && --d->old_grids_syncs == 0) {
		for (int g = 0; g < d->n_xgrids; g++)
			free(d->xgrids[g]);
		d->n_xgrids = 0;
	}
	d->conflict_mark = max_conflict_id(o, i);
	/* Sequential syncs get distinct server milliseconds. */
	{
		int64_t now = real_ms();

		for (int spin = 0; spin < 1000000 && real_ms() == now; spin++)
			;
	}
}

static void quiesce(struct orc *o)
{
	for (int round = 0; round < 6; round++) {
		bool pushed = false;

		for (int i = 0; i < o->n_dev; i++) {
			struct gs_status st;

			assert_gs_ok(gs_device_status(o->dev[i].d, &st));
			pushed = pushed || st.outbox_depth > 0;
			sync_dev(o, i);
		}
		if (!pushed)
			return;
	}
	oracle_fail(o, "not quiet after 6 rounds of syncs");
}

/* ---- the checks -----------------------------------------------------------
 */

/* SQL selecting the server rows of table t in device d's scope. */
static void
scope_query(struct orc *o, const struct dev *d, int t, char *sql, size_t cap)
{
	char list[2048];
	char issues[2400];
	size_t p = 0;

	list[p++] = '(';
	for (int i = 0; i < d->n_grids; i++)
		p += (size_t)snprintf(list + p, sizeof(list) - p, "%s'%s'",
				      i ? "," : "", d->grids[i]);
	snprintf(list + p, sizeof(list) - p, ")");
	/* The issues of the scope: by grid, and with the scope family the
	 * worker's own (assignee or reporter) with the household they name. */
	if (o->scope_rule)
		snprintf(issues, sizeof(issues),
			 "(SELECT id FROM issue WHERE grid_id IN %s OR"
			 " assignee_worker_id = '%s' OR reporter_worker_id ="
			 " '%s')",
			 list, d->worker, d->worker);
	else
		snprintf(issues, sizeof(issues),
			 "(SELECT id FROM issue WHERE grid_id IN %s)", list);
	switch (t) {
	case T_HH:
		if (o->scope_rule) {
			snprintf(sql, cap,
				 "SELECT * FROM household WHERE grid_id IN %s"
				 " OR id IN (SELECT household_id FROM issue"
				 " WHERE assignee_worker_id = '%s' OR"
				 " reporter_worker_id = '%s') ORDER BY id",
				 list, d->worker, d->worker);
			break;
		}
		/* fall through */
	case T_VISIT:
		snprintf(sql, cap,
			 "SELECT * FROM %s WHERE grid_id IN %s ORDER BY id",
			 tname[t], list);
		break;
	case T_ISSUE:
		snprintf(sql, cap,
			 "SELECT * FROM issue WHERE id IN %s ORDER BY id",
			 issues);
		break;
	case T_RES:
		snprintf(sql, cap,
			 "SELECT * FROM resident WHERE household_id IN"
			 " (SELECT id FROM household WHERE grid_id IN %s)"
			 " ORDER BY id",
			 list);
		break;
	default:
		snprintf(sql, cap,
			 "SELECT * FROM issue_event WHERE issue_id IN %s"
			 " ORDER BY id",
			 issues);
	}
}

/* Check 1: the device holds exactly the server's rows of its scope. */
static void check_device(struct orc *o, int i)
{
	struct dev *d = &o->dev[i];
	char mine[65];
	char theirs[65];

	for (int t = 0; t < N_T; t++) {
		char sql[4096];
		char dsql[128];
		sqlite3_stmt *a = NULL;
		sqlite3_stmt *b = NULL;
		int ra;
		int rb;

		scope_query(o, d, t, sql, sizeof(sql));
		snprintf(dsql, sizeof(dsql), "SELECT * FROM %s ORDER BY id",
			 tname[t]);
		assert_int_equal(sqlite3_prepare_v2(o->sdb, sql, -1, &a, NULL),
				 SQLITE_OK);
		assert_int_equal(sqlite3_prepare_v2(gs__device_db(d->d), dsql,
						    -1, &b, NULL),
				 SQLITE_OK);
		for (int guard = 0; guard < 1000000; guard++) {
			ra = sqlite3_step(a);
			rb = sqlite3_step(b);
			if (ra != SQLITE_ROW || rb != SQLITE_ROW)
				break;
			if (strcmp(col_text(a, 0), col_text(b, 0)) != 0) {
				oracle_fail(o,
					    "%s: %s rows differ from the"
					    " server's: server has %s, device"
					    " %s",
					    d->id, tname[t], col_text(a, 0),
					    col_text(b, 0));
				break;
			}
			for (int c = 0; c < o->tab[t].n; c++) {
				char *x = enc_value(sqlite3_column_value(a, c));
				char *y = enc_value(sqlite3_column_value(b, c));

				if (!same(x, y))
					oracle_fail(o,
						    "%s: %s %s column %s"
						    " differs from the server",
						    d->id, tname[t],
						    col_text(a, 0),
						    o->tab[t].col[c]);
				free(x);
				free(y);
			}
			o->st.rows_checked++;
		}
		if (ra != rb)
			oracle_fail(o, "%s: %s has %s rows than the server",
				    d->id, tname[t],
				    ra == SQLITE_ROW ? "fewer" : "more");
		sqlite3_finalize(a);
		sqlite3_finalize(b);
	}
	gs_itest_device_hash(d->d, mine);
	gs_itest_scope_hash(&o->srv, d->id, theirs);
	if (strcmp(mine, theirs) != 0)
		oracle_fail(o, "%s: content hash differs from its scope's",
			    d->id);
}

/* Checks 2-4: every row of the model equals the server's, column by
 * column, and the server holds no row of ours the model does not. */
static void check_model(struct orc *o)
{
	unsigned per_table[N_T] = { 0 };

	for (int h = 0; h < HASH_SIZE; h++)
		for (struct mrow *m = o->hash[h]; m != NULL; m = m->next) {
			const struct tab *tb = &o->tab[m->t];
			char sql[128];
			sqlite3_stmt *st = NULL;

			if (m->by >= 0)
				per_table[m->t]++;
			snprintf(sql, sizeof(sql),
				 "SELECT * FROM %s WHERE id = ?", tname[m->t]);
			assert_int_equal(
				sqlite3_prepare_v2(o->sdb, sql, -1, &st, NULL),
				SQLITE_OK);
			sqlite3_bind_text(st, 1, m->pk, -1, SQLITE_STATIC);
			if (sqlite3_step(st) != SQLITE_ROW) {
				oracle_fail(o,
					    "%s %s saved but not on the"
					    " server",
					    tname[m->t], m->pk);
				sqlite3_finalize(st);
				continue;
			}
			for (int i = 0; i < tb->n; i++) {
				char *v;

				if (i == tb->i_seq ||
				    (tb->cls[i] & C_SERVER &&
				     !(m->t == T_EVENT &&
				       strcmp(tb->col[i], "apply_status") ==
					       0)))
					continue;
				v = enc_value(sqlite3_column_value(st, i));
				o->st.cols_checked++;
				if (i == tb->i_hlc ? !stamp_match(m->val[i], v)
						   : !same(v, m->val[i]))
					oracle_fail(o,
						    "%s %s column %s: the"
						    " server differs from the"
						    " model (%s)",
						    tname[m->t], m->pk,
						    tb->col[i],
						    m->by >= 0 ? "written"
							       : "seeded");
				free(v);
			}
			sqlite3_finalize(st);
		}
	for (int t = 0; t < N_T; t++) {
		char sql[1024];
		size_t p;
		sqlite3_stmt *st = NULL;

		p = (size_t)snprintf(
			sql, sizeof(sql),
			"SELECT count(*) FROM %s WHERE origin IN (", tname[t]);
		for (int i = 0; i < o->n_dev; i++)
			p += (size_t)snprintf(sql + p, sizeof(sql) - p,
					      "%s'%s'", i ? "," : "",
					      o->dev[i].id);
		snprintf(sql + p, sizeof(sql) - p, ")");
		assert_int_equal(sqlite3_prepare_v2(o->sdb, sql, -1, &st, NULL),
				 SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		if ((unsigned)sqlite3_column_int(st, 0) != per_table[t])
			oracle_fail(o,
				    "%s: the server holds %d rows of the test's"
				    " devices, the model %u",
				    tname[t], sqlite3_column_int(st, 0),
				    per_table[t]);
		sqlite3_finalize(st);
	}
}

/* Check 5: every loser was told. */
/* Check what device only (or every device when only is -1) was told; with
 * drop, forget those expectations (its database is about to go). */
static void check_told_of(struct orc *o, int only, bool drop)
{
	size_t keep = 0;

	for (size_t k = 0; k < o->n_told; k++) {
		const struct told *x = &o->told[k];

		if (only >= 0 && x->dev != only) {
			o->told[keep++] = o->told[k];
			continue;
		}
		sqlite3 *db = gs__device_db(o->dev[x->dev].d);
		sqlite3_stmt *st = NULL;
		bool ok;

		assert_int_equal(
			sqlite3_prepare_v2(db,
					   "SELECT count(*) FROM gs_conflict"
					   " WHERE tbl = ? AND pk = ? AND"
					   " col = ? AND (?4 = 0 OR"
					   " device_seq = ?4)",
					   -1, &st, NULL),
			SQLITE_OK);
		sqlite3_bind_text(st, 1, tname[x->t], -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, x->pk, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, x->col, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)x->seq);
		ok = sqlite3_step(st) == SQLITE_ROW &&
		     sqlite3_column_int(st, 0) > 0;
		sqlite3_finalize(st);
		if (!ok)
			oracle_fail(o,
				    "%s was not told that its write of %s %s"
				    " column %s lost (%s)",
				    o->dev[x->dev].id, tname[x->t], x->pk,
				    x->col,
				    x->kind == 1 ? "edit of a deleted row"
				    : x->seq     ? "lost on arrival"
						 : "overwritten later");
		if (drop)
			free(o->told[k].pk);
		else
			o->told[keep++] = o->told[k];
	}
	o->n_told = keep;
}

static void check_told(struct orc *o)
{
	check_told_of(o, -1, false);
}

/* ---- one seed
 * ----------------------------------------------------------------
 */

struct pickw {
	char a[64], ga[32];  /* micro-grid worker */
	char b[64], gb[128]; /* its assistant, several micro-grids */
	char c[64], gc[32];  /* micro-grid worker inside b's grids */
	char e[64], ge[32];  /* micro-grid worker outside b's grids */
	char cs[64], gcs[32];
	char sc[64];
};

static int pick_cb(const struct gs_synth_worker_info *w, void *payload)
{
	struct pickw *p = payload;

	if (strcmp(w->role, "GW") == 0 &&
	    strcmp(w->duties, "responsible") == 0 && p->a[0] == '\0') {
		snprintf(p->a, sizeof(p->a), "%s", w->id);
		snprintf(p->ga, sizeof(p->ga), "%s", w->grid_codes);
	} else if (strcmp(w->role, "GW") == 0 && p->a[0] != '\0' &&
		   p->b[0] == '\0' && strstr(w->duties, "assistant") &&
		   strstr(w->grid_codes, p->ga) != NULL &&
		   strchr(w->grid_codes, ',') != NULL) {
		snprintf(p->b, sizeof(p->b), "%s", w->id);
		snprintf(p->gb, sizeof(p->gb), "%s", w->grid_codes);
	} else if (strcmp(w->role, "CS") == 0 && p->cs[0] == '\0' &&
		   strcmp(w->duties, "responsible") == 0) {
		snprintf(p->cs, sizeof(p->cs), "%s", w->id);
		snprintf(p->gcs, sizeof(p->gcs), "%s", w->grid_codes);
	} else if (strcmp(w->role, "SC") == 0 && p->sc[0] == '\0') {
		snprintf(p->sc, sizeof(p->sc), "%s", w->id);
	}
	return 0;
}

static int pick_cb2(const struct gs_synth_worker_info *w, void *payload)
{
	struct pickw *p = payload;

	if (strcmp(w->role, "GW") != 0 || strcmp(w->duties, "responsible") ||
	    strcmp(w->grid_codes, p->ga) == 0)
		return 0;
	if (strstr(p->gb, w->grid_codes) != NULL && p->c[0] == '\0') {
		snprintf(p->c, sizeof(p->c), "%s", w->id);
		snprintf(p->gc, sizeof(p->gc), "%s", w->grid_codes);
	} else if (strstr(p->gb, w->grid_codes) == NULL && p->e[0] == '\0') {
		snprintf(p->e, sizeof(p->e), "%s", w->id);
		snprintf(p->ge, sizeof(p->ge), "%s", w->grid_codes);
	}
	return 0;
}

/* Open device name of the seed's copy, on a clock of its own. */
static void add_dev(struct orc *o,
		    const char *name,
		    const char *worker,
		    const char *role,
		    const char *scope)
{
	static const int64_t mild[] = { 0,      2000,   -2000,  45000,
					-45000, 180000, -180000 };
	static const int64_t wild[] = { 600000, -600000, 86400000, -86400000 };
	struct dev *d = &o->dev[o->n_dev++];
	struct gs_ctx_opts co = GS_CTX_OPTS_INIT;
	char path[4200];

	memset(d, 0, sizeof(*d));
	snprintf(d->id, sizeof(d->id), "%s", name);
	snprintf(d->worker, sizeof(d->worker), "%s", worker);
	snprintf(d->role, sizeof(d->role), "%s", role);
	snprintf(d->scope, sizeof(d->scope), "%s", scope);
	if (rnd(o, 3) == 0)
		d->skew_ms = wild[rnd(o, 4)];
	else
		d->skew_ms = mild[rnd(o, 7)];
	co.clock_fn = skewed_clock;
	co.clock_payload = &d->skew_ms;
	assert_gs_ok(gs_ctx_new(&d->ctx, &co));
	snprintf(path, sizeof(path), "%s/%s.db", o->dir, name);
	assert_gs_ok(gs_device_open(&d->d, d->ctx, path));
	/* Durability is not what this test checks: spare the fsyncs. */
	assert_gs_ok(gs__device_set_normal(d->d, 1));
	scope_resolve(o, d);
	assert_true(d->n_grids > 0);
}

/* ---- the template every seed starts from -------------------------------- */

/* The seeded server and the six devices, enrolled and bootstrapped once;
 * each seed runs on a copy (the server then listens on a new port, which
 * every sync names). */
static struct {
	char *dir;
	struct pickw w;
	char street[32];
	const char *name[MAXDEV];
	const char *worker[MAXDEV];
	const char *role[MAXDEV];
	const char *scope[MAXDEV];
} TPL;

static void template_make(void)
{
	struct gs_ctx *ctx = gs_test_ctx_new(NULL);
	struct gs_itest_server srv;
	struct pickw *w = &TPL.w;
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;

	TPL.dir = gs_test_tmpdir();
	gs_itest_server_create(&srv, TPL.dir, true);
	assert_gs_ok(gs__db_open(&db, ctx, srv.db, GS_DB_READONLY));
	memset(w, 0, sizeof(*w));
	assert_gs_ok(gs__synth_workers(ctx, db, pick_cb, w));
	assert_gs_ok(gs__synth_workers(ctx, db, pick_cb2, w));
	assert_true(w->a[0] && w->b[0] && w->c[0] && w->e[0] && w->cs[0] &&
		    w->sc[0]);
	assert_int_equal(sqlite3_prepare_v2(db,
					    "SELECT code FROM admin_area WHERE"
					    " level = 'street' ORDER BY code"
					    " LIMIT 1",
					    -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	snprintf(TPL.street, sizeof(TPL.street), "%s", col_text(st, 0));
	sqlite3_finalize(st);
	gs__db_close(db);
	{
		const char *n[] = { "orc-a", "orc-b",  "orc-c",
				    "orc-e", "orc-cs", "orc-sc" };
		const char *wk[] = { w->a, w->b, w->c, w->e, w->cs, w->sc };
		const char *r[] = { "GW", "GW", "GW", "GW", "CS", "SC" };
		const char *sc[] = { w->ga, w->gb,  w->gc,
				     w->ge, w->gcs, TPL.street };

		memcpy(TPL.name, n, sizeof(n));
		memcpy(TPL.worker, wk, sizeof(wk));
		memcpy(TPL.role, r, sizeof(r));
		memcpy(TPL.scope, sc, sizeof(sc));
	}
	gs_itest_server_start(&srv, NULL);
	for (int i = 0; i < MAXDEV; i++) {
		struct gs_device *dev = gs_itest_device(
			&srv, ctx, TPL.name[i], TPL.worker[i], TPL.scope[i]);

		gs_itest_sync(dev, NULL);
		gs_device_close(dev);
	}
	assert_int_equal(gs_itest_server_stop(&srv), 0);
	gs_ctx_free(ctx);
}

static bool pending(const char *family)
{
	const char *p = getenv("GS_ORACLE_PENDING");

	return p != NULL &&
	       (strstr(p, family) != NULL || strcmp(p, "all") == 0);
}

/* GS_ORACLE_DEBUG=1: each column decision and the time of each phase. */
#define TM(x)                                                              \
	do {                                                               \
		if (DEBUG)                                                 \
			fprintf(stderr, "oracle: %s done at %lld ms\n", x, \
				(long long)(real_ms() - T0));              \
	} while (0)
static bool run_seed(uint64_t seed, unsigned n_ops)
{
	int64_t T0 = real_ms();
	struct orc *o = calloc(1, sizeof(*o));
	struct gs_ctx *ctx = gs_test_ctx_new(NULL);
	bool ok;

	o->seed = seed;
	{
		/* Streams of neighbouring seeds must not overlap. */
		uint64_t s0 = seed;

		o->rng = gs_test_rand(&s0) ^ (seed << 17);
	}
	/* Landed: every loser is told (GS_ORACLE_OFF=losers to drop). */
	o->pend_losers = getenv("GS_ORACLE_OFF") == NULL ||
			 strstr(getenv("GS_ORACLE_OFF"), "losers") == NULL;
	o->fam_scope = pending("scope");
	o->scope_rule = true;
	o->fam_restore = pending("restore");
	AMBIGUOUS = false;
	o->dir = gs_test_tmpdir();
	{
		char cmd[8400];

		snprintf(cmd, sizeof(cmd), "cp -a '%s/.' '%s/'", TPL.dir,
			 o->dir);
		assert_int_equal(system(cmd), 0);
	}
	o->srv.tls = true;
	snprintf(o->srv.dir, sizeof(o->srv.dir), "%s", o->dir);
	snprintf(o->srv.db, sizeof(o->srv.db), "%s/server.db", o->dir);
	snprintf(o->srv.journal, sizeof(o->srv.journal), "%s/journal.git",
		 o->dir);
	snprintf(o->srv.ready, sizeof(o->srv.ready), "%s/ready", o->dir);
	assert_gs_ok(gs__db_open(&o->sdb, ctx, o->srv.db, GS_DB_READONLY));
	tables_load(o);
	seed_load(o);
	gs_itest_server_start(&o->srv, NULL);
	TM("server");
	for (int i = 0; i < MAXDEV; i++)
		add_dev(o, TPL.name[i], TPL.worker[i], TPL.role[i],
			TPL.scope[i]);
	TM("devices");
	for (unsigned k = 0; k < n_ops; k++) {
		int i = (int)rnd(o, (uint64_t)o->n_dev);
		unsigned r = (unsigned)rnd(o, 100);
		int op = r < 18                     ? OP_HH_EDIT
			 : r < 22                   ? OP_HH_ADD
			 : r < 25                   ? OP_HH_DEL
			 : r < 31                   ? OP_RES_ADD
			 : r < 37                   ? OP_RES_EDIT
			 : r < 47                   ? OP_VISIT
			 : r < 57                   ? OP_REPORT
			 : r < 75                   ? OP_MOVE
			 : r < 78                   ? OP_CRAFT
			 : r < 81 && o->fam_scope   ? OP_HH_MOVE
			 : r < 82 && o->fam_scope   ? OP_SCOPE
			 : r < 84 && o->fam_restore ? OP_RESTORE
						    : OP_SYNC;

		o->st.ops[op]++;
		switch (op) {
		case OP_HH_EDIT:
			op_household_edit(o, i);
			break;
		case OP_HH_ADD:
			op_household_add(o, i);
			break;
		case OP_HH_DEL:
			op_household_delete(o, i);
			break;
		case OP_RES_ADD:
			op_resident_add(o, i);
			break;
		case OP_RES_EDIT:
			op_resident_edit(o, i);
			break;
		case OP_VISIT:
			op_visit(o, i);
			break;
		case OP_REPORT:
			op_report(o, i);
			break;
		case OP_MOVE:
			op_move(o, i);
			break;
		case OP_CRAFT:
			op_craft(o, i);
			break;
		case OP_HH_MOVE:
			op_household_move(o, i);
			break;
		case OP_SCOPE:
			op_scope_set(o, i);
			break;
		case OP_RESTORE:
			op_restore(o, i);
			break;
		default:
			sync_dev(o, i);
		}
		capture(o, i, 0);
	}
	TM("ops");
	quiesce(o);
	if (AMBIGUOUS)
		oracle_fail(o,
			    "two stamps the test cannot order were compared");
	TM("quiesce");
	for (int i = 0; i < o->n_dev; i++)
		check_device(o, i);
	check_model(o);
	check_told(o);
	TM("checks");

	ok = o->fail[0] == '\0';
	printf("oracle seed %" PRIu64 ": %s; %u entries (%u refused), %u"
	       " syncs, %u rows and %u columns checked; conflicts: %u lost on"
	       " arrival, %u overwrites, %u tombstone edits; events: %u"
	       " applied, %u noop, %u needs_review, %u rejected_stale\n",
	       seed, ok ? "ok" : "FAILED", o->st.entries, o->st.refused,
	       o->st.syncs, o->st.rows_checked, o->st.cols_checked,
	       o->st.lost_arrival, o->st.overwrites, o->st.tombstone_edits,
	       o->st.ev_applied, o->st.ev_noop, o->st.ev_review,
	       o->st.ev_stale);
	for (int k = 0; k < N_OPS; k++)
		TOTAL.ops[k] += o->st.ops[k];
	TOTAL.syncs += o->st.syncs;
	TOTAL.entries += o->st.entries;
	TOTAL.refused += o->st.refused;
	TOTAL.lost_arrival += o->st.lost_arrival;
	TOTAL.overwrites += o->st.overwrites;
	TOTAL.tombstone_edits += o->st.tombstone_edits;
	TOTAL.ev_applied += o->st.ev_applied;
	TOTAL.ev_noop += o->st.ev_noop;
	TOTAL.ev_review += o->st.ev_review;
	TOTAL.ev_stale += o->st.ev_stale;
	TOTAL.rows_checked += o->st.rows_checked;
	TOTAL.clamped += o->st.clamped;
	TOTAL.scope_sets += o->st.scope_sets;
	TOTAL.moves += o->st.moves;
	TOTAL.honest_refused += o->st.honest_refused;
	TOTAL.backups += o->st.backups;
	TOTAL.restores += o->st.restores;
	TOTAL.reinits += o->st.reinits;
	for (int k = 0; k < 16; k++)
		TOTAL.crafted[k] += o->st.crafted[k];
	TOTAL.cols_checked += o->st.cols_checked;

	for (int i = 0; i < o->n_dev; i++) {
		gs_device_close(o->dev[i].d);
		gs_ctx_free(o->dev[i].ctx);
		for (int g = 0; g < o->dev[i].n_grids; g++)
			free(o->dev[i].grids[g]);
	}
	gs__db_close(o->sdb);
	assert_int_equal(gs_itest_server_stop(&o->srv), 0);
	if (ok)
		gs_test_tmpdir_free(o->dir);
	else
		printf("oracle seed %" PRIu64 ": databases kept in %s\n", seed,
		       o->dir);
	if (!ok)
		free(o->dir);
	for (size_t k = 0; k < o->n_ent; k++)
		free(o->ent[k].cs);
	free(o->ent);
	for (size_t k = 0; k < o->n_told; k++)
		free(o->told[k].pk);
	free(o->told);
	row_free_all(o);
	for (int t = 0; t < N_T; t++)
		for (int i = 0; i < o->tab[t].n; i++)
			free(o->tab[t].col[i]);
	free(o);
	gs_ctx_free(ctx);
	return ok;
}

static void oracle_seeds(void **state)
{
	const char *env = getenv("GS_SEEDS");
	const char *ops_env = getenv("GS_ORACLE_OPS");
	unsigned n_ops = ops_env != NULL ? (unsigned)atoi(ops_env) : 80;
	uint64_t seeds[4096];
	size_t n = 0;
	unsigned failed = 0;

	(void)state;
	DEBUG = getenv("GS_ORACLE_DEBUG") != NULL;
	if (env != NULL && strchr(env, ',') != NULL) {
		char buf[8192];
		char *save = NULL;

		snprintf(buf, sizeof(buf), "%s", env);
		for (char *s = strtok_r(buf, ",", &save); s != NULL && n < 4096;
		     s = strtok_r(NULL, ",", &save))
			seeds[n++] = strtoull(s, NULL, 10);
	} else {
		unsigned count = env != NULL ? (unsigned)atoi(env) : 20;

		for (unsigned k = 1; k <= count && n < 4096; k++)
			seeds[n++] = k;
	}
	template_make();
	printf("oracle: %zu seeds, %u operations each%s\n", n, n_ops,
	       getenv("GS_ORACLE_PENDING") != NULL ? " (pending families on)"
						   : "");
	for (size_t k = 0; k < n; k++)
		if (!run_seed(seeds[k], n_ops))
			failed++;
	printf("oracle total: %zu seeds, %u failed; operations:", n, failed);
	for (int k = 0; k < N_OPS; k++)
		printf(" %s %u", op_name[k], TOTAL.ops[k]);
	printf("; %u entries (%u refused), %u syncs; conflicts: %u lost on"
	       " arrival, %u overwrites, %u tombstone edits; events: %u"
	       " applied, %u noop, %u needs_review, %u rejected_stale; %u"
	       " device rows and %u model columns checked\n",
	       TOTAL.entries, TOTAL.refused, TOTAL.syncs, TOTAL.lost_arrival,
	       TOTAL.overwrites, TOTAL.tombstone_edits, TOTAL.ev_applied,
	       TOTAL.ev_noop, TOTAL.ev_review, TOTAL.ev_stale,
	       TOTAL.rows_checked, TOTAL.cols_checked);
	printf("oracle total: %u entries stamped by a clamped clock; %u"
	       " households moved between grids, %u scope changes, %u honest"
	       " entries refused by a rule the model shares; %u device"
	       " backups, %u restores, %u re-inits; crafted entries by kind:",
	       TOTAL.clamped, TOTAL.moves, TOTAL.scope_sets,
	       TOTAL.honest_refused, TOTAL.backups, TOTAL.restores,
	       TOTAL.reinits);
	for (int k = 1; k <= N_CRAFT; k++)
		printf(" %d:%u", k, TOTAL.crafted[k]);
	printf("\n");
	gs_test_tmpdir_free(TPL.dir);
	if (failed > 0)
		fail_msg("%u of %zu oracle seeds failed (see above)", failed,
			 n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(oracle_seeds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
