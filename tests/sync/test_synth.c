/*
 * The synthetic data generator: determinism, the demo profile's shape,
 * integrity, scope, identifiers, privacy of logs, allocation failure, and
 * the workload text helpers. The district profile is not run here (see
 * tests/bench/bench_synth.c).
 */
#include <gridsync/db.h>
#include <gridsync/schema.h>
#include <gridsync/synth.h>

#include "gs_test.h"

struct fx {
	struct gs_test_alloc alloc;
	struct gs_ctx *ctx;
	char *dir;
	unsigned n_db;
	long base; /* live allocations of the context itself */
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->ctx = gs_test_ctx_new(&f->alloc);
	f->dir = gs_test_tmpdir();
	assert_non_null(f->ctx);
	assert_non_null(f->dir);
	f->base = f->alloc.live;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	assert_int_equal(f->alloc.live, f->base);
	gs_ctx_free(f->ctx);
	gs_test_tmpdir_free(f->dir);
	free(f);
	return 0;
}

/* A fresh, migrated database file. */
static sqlite3 *new_db(struct fx *f)
{
	char name[32];
	sqlite3 *db = NULL;

	snprintf(name, sizeof(name), "s%u.db", f->n_db++);
	assert_gs_ok(gs__db_open(&db, f->ctx, gs_test_path(f->dir, name),
				 GS_DB_CREATE));
	assert_gs_ok(gs__db_migrate(f->ctx, db));
	return db;
}

static sqlite3 *demo_db(struct fx *f,
			uint64_t seed,
			const char *worker,
			struct gs_synth_stats *stats)
{
	struct gs_synth_opts o = GS_SYNTH_OPTS_INIT;
	sqlite3 *db = new_db(f);

	o.seed = seed;
	o.scope_worker_id = worker;
	assert_gs_ok(gs__synth_generate(f->ctx, db, &o, stats));
	return db;
}

static int64_t q_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int64_t v;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void hash_of(struct fx *f, sqlite3 *db, char out[65])
{
	assert_gs_ok(gs__db_content_hash(f->ctx, db, out));
}

/* ---- determinism ------------------------------------------------------ */

static void same_seed_same_rows(void **state)
{
	struct fx *f = *state;
	struct gs_synth_stats s1;
	struct gs_synth_stats s2;
	sqlite3 *a = demo_db(f, 42, NULL, &s1);
	sqlite3 *b = demo_db(f, 42, NULL, &s2);
	sqlite3 *c = demo_db(f, 43, NULL, NULL);
	char ha[65];
	char hb[65];
	char hc[65];

	hash_of(f, a, ha);
	hash_of(f, b, hb);
	hash_of(f, c, hc);
	assert_string_equal(ha, hb);
	assert_string_not_equal(ha, hc);
	assert_int_equal(s1.total, s2.total);
	assert_int_equal(s1.resident, s2.resident);
	/* Not just the hash: ids themselves repeat. */
	assert_int_equal(q_int(a, "SELECT count(*) FROM resident"),
			 (int64_t)s1.resident);
	gs__db_close(a);
	gs__db_close(b);
	gs__db_close(c);
}

/* ---- the demo profile's shape ---------------------------------------- */

static void demo_counts_in_range(void **state)
{
	struct fx *f = *state;
	struct gs_synth_stats s;
	sqlite3 *db = demo_db(f, 42, NULL, &s);
	int64_t hh = q_int(db, "SELECT count(*) FROM household");
	int64_t res = q_int(db, "SELECT count(*) FROM resident");
	size_t n_rules = 0;
	const struct gs_transition *tr = gs__transitions(&n_rules);
	int64_t want_rules = 0;

	for (size_t i = 0; i < n_rules; i++)
		for (unsigned b = tr[i].roles; b != 0; b &= b - 1)
			want_rules++;
	assert_true(hh >= 240 && hh <= 360);
	assert_int_equal(hh, (int64_t)s.household);
	assert_int_equal(res, (int64_t)s.resident);
	/* 2.49 persons per household, give or take a small sample. */
	assert_true(res * 100 >= hh * 225 && res * 100 <= hh * 275);
	assert_int_equal(q_int(db, "SELECT count(*) FROM admin_area"), 4);
	assert_int_equal(q_int(db, "SELECT count(*) FROM grid WHERE level ="
				   " 'community_total'"),
			 1);
	assert_int_equal(
		q_int(db, "SELECT count(*) FROM grid WHERE level = 'general'"),
		2);
	assert_int_equal(
		q_int(db, "SELECT count(*) FROM grid WHERE level = 'micro'"),
		5);
	/* Exactly one responsible per micro-grid, an assistant on each. */
	assert_int_equal(q_int(db, "SELECT count(*) FROM grid g WHERE level ="
				   " 'micro' AND (SELECT count(*) FROM"
				   " assignment a WHERE a.grid_id = g.id AND"
				   " a.duty = 'responsible') != 1"),
			 0);
	assert_int_equal(q_int(db, "SELECT count(*) FROM grid g WHERE level ="
				   " 'micro' AND (SELECT count(*) FROM"
				   " assignment a WHERE a.grid_id = g.id AND"
				   " a.duty = 'assistant') != 1"),
			 0);
	/* Every role the demo promises. */
	for (const char *const *r = (const char *const[]){ "GW", "CS", "SC",
							   "DC", "DH", NULL };
	     *r != NULL; r++) {
		char sql[96];

		snprintf(sql, sizeof(sql),
			 "SELECT count(*) FROM worker WHERE role = '%s'", *r);
		assert_true(q_int(db, sql) >= 1);
	}
	assert_int_equal(q_int(db, "SELECT count(*) FROM worker WHERE role ="
				   " 'GW'"),
			 5 + 2);
	/* Codes: community code + 2 + 3 digits, prefix-hierarchical. */
	assert_int_equal(q_int(db, "SELECT count(*) FROM grid g JOIN grid p"
				   " ON p.id = g.parent_grid_id WHERE"
				   " substr(g.code, 1, length(p.code)) !="
				   " p.code OR length(g.code) NOT IN (14, 17)"),
			 0);
	/* Both archetypes of the demo, and their managements. */
	assert_true(q_int(db, "SELECT count(*) FROM place WHERE kind ="
			      " 'compound' AND property_mgmt = '物业'") >= 1);
	assert_true(q_int(db, "SELECT count(*) FROM place WHERE kind ="
			      " 'compound' AND property_mgmt != '物业'") >= 1);
	/* Category tree: 7 tops, 3 levels, codes by level. */
	assert_int_equal(
		q_int(db, "SELECT count(*) FROM category WHERE level = 1"), 7);
	assert_int_equal(q_int(db, "SELECT count(*) FROM category WHERE"
				   " length(code) != 2 * level"),
			 0);
	assert_true(q_int(db, "SELECT count(*) FROM category WHERE level ="
			      " 3") >= 30);
	assert_true(q_int(db, "SELECT count(*) FROM tag_def WHERE sensitivity"
			      " = 'restricted' AND device_visible = 0") >= 1);
	assert_int_equal(q_int(db, "SELECT count(*) FROM transition_rule"),
			 want_rules);
	assert_int_equal(q_int(db, "SELECT count(*) FROM transition_rule"
				   " WHERE from_state = 'handled' AND to_state"
				   " = 'verified' AND role = 'GW' AND"
				   " offline_ok = 1"),
			 1);
	assert_true(q_int(db, "SELECT count(*) FROM sla_policy") >= 7);
	/* Seeded rows look like the server published nothing yet. */
	assert_int_equal(
		q_int(db, "SELECT count(*) FROM household WHERE"
			  " server_seq IS NOT NULL OR deleted != 0"
			  " OR origin != 'server' OR hlc != '" GS_SYNTH_SEED_HLC
			  "'"),
		0);
	assert_int_equal(q_int(db, "SELECT count(*) FROM resident WHERE"
				   " created_at != '2025-01-01T00:00:00.000Z'"),
			 0);
	gs__db_close(db);
}

static void households_live_in_micro_grids(void **state)
{
	struct fx *f = *state;
	sqlite3 *db = demo_db(f, 7, NULL, NULL);

	assert_int_equal(q_int(db, "SELECT count(*) FROM household h LEFT JOIN"
				   " grid g ON g.id = h.grid_id WHERE g.level"
				   " IS NOT 'micro'"),
			 0);
	assert_int_equal(q_int(db, "SELECT count(*) FROM household h JOIN"
				   " dwelling d ON d.id = h.dwelling_id WHERE"
				   " d.grid_id != h.grid_id"),
			 0);
	assert_int_equal(q_int(db, "SELECT count(*) FROM household h WHERE"
				   " size != (SELECT count(*) FROM resident r"
				   " WHERE r.household_id = h.id) OR"
				   " head_resident_id NOT IN (SELECT id FROM"
				   " resident r WHERE r.household_id = h.id"
				   " AND r.relation = '户主')"),
			 0);
	/* Vacant dwellings hold nobody; roughly 5 % of them. */
	assert_int_equal(q_int(db, "SELECT count(*) FROM household h JOIN"
				   " dwelling d ON d.id = h.dwelling_id WHERE"
				   " d.usage IN ('空置', '商用')"),
			 0);
	gs__db_close(db);
}

static void foreign_key_check(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;

	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA foreign_key_check", -1,
					    &st, NULL),
			 SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		fail_msg("foreign key broken in %s",
			 (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
}

static void foreign_keys_hold(void **state)
{
	struct fx *f = *state;
	sqlite3 *db = demo_db(f, 42, NULL, NULL);

	foreign_key_check(db);
	assert_int_equal(q_int(db, "PRAGMA foreign_keys"), 1);
	gs__db_close(db);
}

/* ---- scope ------------------------------------------------------------ */

struct scope_case {
	const char *role;
	const char *duty;
};

/* The households of the worker's grids (and sub-grids), by id. */
static const char scope_hh_sql[] =
	"SELECT count(*), coalesce(sum(length(h.id) + h.size), 0) FROM"
	" household h JOIN grid g ON g.id = h.grid_id WHERE EXISTS("
	" SELECT 1 FROM assignment a JOIN grid ag ON ag.id = a.grid_id"
	" WHERE a.worker_id = ?1 AND substr(g.code, 1, length(ag.code)) ="
	" ag.code)";

static void
scope_households(sqlite3 *db, const char *worker, int64_t *n, int64_t *sum)
{
	sqlite3_stmt *st = NULL;

	assert_int_equal(sqlite3_prepare_v2(db, scope_hh_sql, -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_text(st, 1, worker, -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	*n = sqlite3_column_int64(st, 0);
	*sum = sqlite3_column_int64(st, 1);
	sqlite3_finalize(st);
}

static void scoped_run_holds_only_the_workers_grids(void **state)
{
	static const struct scope_case cases[] = {
		{ "GW", "responsible" },
		{ "GW", "assistant" },
		{ "CS", "responsible" },
		{ "DH", NULL },
	};
	struct fx *f = *state;
	sqlite3 *full = demo_db(f, 42, NULL, NULL);

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char worker[GS_UUID_LEN];
		struct gs_synth_stats s;
		sqlite3 *db;
		int64_t n_full;
		int64_t sum_full;
		int64_t n;
		int64_t sum;

		assert_gs_ok(gs__synth_pick_worker(f->ctx, full, cases[i].role,
						   cases[i].duty, worker));
		db = demo_db(f, 42, worker, &s);
		foreign_key_check(db);
		scope_households(full, worker, &n_full, &sum_full);
		scope_households(db, worker, &n, &sum);
		/* Exactly the worker's households, with the full run's ids. */
		assert_int_equal(n, n_full);
		assert_int_equal(sum, sum_full);
		assert_int_equal(q_int(db, "SELECT count(*) FROM household"),
				 n);
		assert_int_equal((int64_t)s.household, n);
		assert_int_equal(
			q_int(db, "SELECT count(*) FROM resident r LEFT JOIN"
				  " household h ON h.id = r.household_id WHERE"
				  " h.id IS NULL"),
			0);
		/* No restricted tag, whoever the worker is. */
		assert_int_equal(q_int(db, "SELECT count(*) FROM resident_tag t"
					   " JOIN tag_def d ON d.code ="
					   " t.tag_code WHERE d.sensitivity ="
					   " 'restricted'"),
				 0);
		/* Dictionaries in full, the community's places in full. */
		assert_int_equal(q_int(db, "SELECT count(*) FROM tag_def"),
				 q_int(full, "SELECT count(*) FROM tag_def"));
		assert_int_equal(
			q_int(db, "SELECT count(*) FROM transition_rule"),
			q_int(full, "SELECT count(*) FROM transition_rule"));
		assert_int_equal(q_int(db, "SELECT count(*) FROM dwelling"),
				 q_int(full, "SELECT count(*) FROM dwelling"));
		assert_int_equal(q_int(db, "SELECT count(*) FROM worker"),
				 q_int(full, "SELECT count(*) FROM worker"));
		if (strcmp(cases[i].role, "GW") == 0) {
			assert_true(n > 0);
			assert_true(n < q_int(full, "SELECT count(*) FROM"
						    " household"));
		}
		if (strcmp(cases[i].role, "CS") == 0)
			assert_int_equal(n, q_int(full, "SELECT count(*) FROM"
							" household"));
		if (strcmp(cases[i].role, "DH") == 0)
			assert_int_equal(n, 0);
		gs__db_close(db);
	}
	/* The full run does hold restricted tags (else the above proves
	 * nothing): 0.3 % of ~750 residents, so look across seeds. */
	gs__db_close(full);
}

static void restricted_tags_exist_in_the_truth(void **state)
{
	struct fx *f = *state;
	int64_t total = 0;

	for (uint64_t seed = 1; seed <= 4 && total == 0; seed++) {
		sqlite3 *db = demo_db(f, seed, NULL, NULL);

		total += q_int(db, "SELECT count(*) FROM resident_tag t JOIN"
				   " tag_def d ON d.code = t.tag_code WHERE"
				   " d.sensitivity = 'restricted'");
		gs__db_close(db);
	}
	assert_true(total > 0);
}

static void unknown_scope_worker_is_refused(void **state)
{
	struct fx *f = *state;
	struct gs_synth_opts o = GS_SYNTH_OPTS_INIT;
	sqlite3 *db = new_db(f);

	o.scope_worker_id = "00000000-0000-7000-8000-000000000000";
	assert_gs_err(gs__synth_generate(f->ctx, db, &o, NULL), GS_ENOTFOUND);
	assert_int_equal(q_int(db, "SELECT count(*) FROM admin_area"), 0);
	gs__db_close(db);
}

static void bad_inputs_are_refused(void **state)
{
	struct fx *f = *state;
	struct gs_synth_opts o = GS_SYNTH_OPTS_INIT;
	sqlite3 *db = NULL;

	assert_gs_ok(gs__db_open(&db, f->ctx, gs_test_path(f->dir, "raw.db"),
				 GS_DB_CREATE));
	assert_gs_err(gs__synth_generate(f->ctx, db, &o, NULL), GS_ESCHEMA);
	assert_gs_ok(gs__db_migrate(f->ctx, db));
	o.version = 99;
	assert_gs_err(gs__synth_generate(f->ctx, db, &o, NULL), GS_EINVAL);
	o.version = GS_SYNTH_OPTS_VERSION;
	o.start = "yesterday";
	assert_gs_err(gs__synth_generate(f->ctx, db, &o, NULL), GS_EINVAL);
	o.start = "2024-06-01";
	assert_gs_ok(gs__synth_generate(f->ctx, db, &o, NULL));
	assert_int_equal(q_int(db, "SELECT count(*) FROM household WHERE"
				   " created_at != '2024-06-01T00:00:00.000Z'"),
			 0);
	/* Ids carry the start date in their time part. */
	assert_int_equal(q_int(db, "SELECT count(*) FROM resident WHERE"
				   " substr(id, 1, 8) != '018fd118'"),
			 0);
	assert_gs_err(gs__synth_generate(f->ctx, db, &o, NULL), GS_EEXISTS);
	gs__db_close(db);
}

/* ---- identifiers ------------------------------------------------------ */

static void check_ids(struct fx *f, sqlite3 *db, bool valid)
{
	sqlite3_stmt *st = NULL;
	int n = 0;

	assert_int_equal(
		sqlite3_prepare_v2(db,
				   "SELECT id_no_enc, id_no_hmac, id_no_masked,"
				   " birth_date, gender, phone_enc FROM"
				   " resident",
				   -1, &st, NULL),
		SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		char id_no[64];
		char phone[64];
		char hmac[GS_SYNTH_HMAC_HEX_LEN];
		const char *birth = (const char *)sqlite3_column_text(st, 3);
		const char *masked = (const char *)sqlite3_column_text(st, 2);
		bool male = strcmp((const char *)sqlite3_column_text(st, 4),
				   "男") == 0;
		size_t len = 0;

		assert_gs_ok(gs__synth_open(f->ctx, id_no, sizeof(id_no), &len,
					    sqlite3_column_blob(st, 0),
					    (size_t)sqlite3_column_bytes(st, 0),
					    "resident.id_no_enc"));
		assert_int_equal(len, 18);
		assert_memory_equal(id_no, GS_SYNTH_DISTRICT_CODE, 6);
		/* Birth date and gender parity agree with the row. */
		assert_memory_equal(id_no + 6, birth, 4);
		assert_memory_equal(id_no + 10, birth + 5, 2);
		assert_memory_equal(id_no + 12, birth + 8, 2);
		assert_int_equal((id_no[16] - '0') % 2, male ? 1 : 0);
		for (int i = 0; i < 17; i++)
			assert_true(id_no[i] >= '0' && id_no[i] <= '9');
		if (valid)
			assert_int_equal(id_no[17], gs__synth_id_check(id_no));
		else
			assert_int_not_equal(id_no[17],
					     gs__synth_id_check(id_no));
		assert_gs_ok(gs__synth_id_hmac(f->ctx, hmac, id_no));
		assert_string_equal(hmac,
				    (const char *)sqlite3_column_text(st, 1));
		assert_int_equal(strlen(masked), 18);
		assert_memory_equal(masked, id_no, 4);
		assert_memory_equal(masked + 4, "**********", 10);
		assert_memory_equal(masked + 14, id_no + 14, 4);
		/* A sealed value does not open under another column. */
		assert_gs_err(
			gs__synth_open(f->ctx, id_no, sizeof(id_no), NULL,
				       sqlite3_column_blob(st, 0),
				       (size_t)sqlite3_column_bytes(st, 0),
				       "resident.phone_enc"),
			GS_ECORRUPT);
		if (sqlite3_column_type(st, 5) == SQLITE_BLOB) {
			assert_gs_ok(gs__synth_open(
				f->ctx, phone, sizeof(phone), &len,
				sqlite3_column_blob(st, 5),
				(size_t)sqlite3_column_bytes(st, 5),
				"resident.phone_enc"));
			assert_int_equal(len, 11);
			assert_memory_equal(phone, "10", 2);
		}
		n++;
	}
	sqlite3_finalize(st);
	assert_true(n > 500);
	/* No two residents share an ID number. */
	assert_int_equal(
		q_int(db, "SELECT count(DISTINCT id_no_hmac) FROM resident"),
		n);
}

static void id_numbers_have_a_wrong_check_digit(void **state)
{
	struct fx *f = *state;
	sqlite3 *db = demo_db(f, 42, NULL, NULL);

	check_ids(f, db, false);
	gs__db_close(db);
}

static void valid_checksum_option(void **state)
{
	struct fx *f = *state;
	struct gs_synth_opts o = GS_SYNTH_OPTS_INIT;
	sqlite3 *db = new_db(f);

	o.valid_checksum = true;
	assert_gs_ok(gs__synth_generate(f->ctx, db, &o, NULL));
	check_ids(f, db, true);
	gs__db_close(db);
}

static void id_check_known_vector(void **state)
{
	(void)state;
	/* GB 11643's published example. */
	assert_int_equal(gs__synth_id_check("11010519491231002X"), 'X');
	assert_int_equal(gs__synth_id_check("440524188001010014"), '4');
}

/* ---- people ----------------------------------------------------------- */

static void population_looks_like_chengdu(void **state)
{
	struct fx *f = *state;
	sqlite3 *db = demo_db(f, 42, NULL, NULL);
	int64_t n = q_int(db, "SELECT count(*) FROM resident");
	int64_t kids = q_int(db, "SELECT count(*) FROM resident WHERE"
				 " birth_date > '2010-01-01'");
	int64_t old = q_int(db, "SELECT count(*) FROM resident WHERE"
				" birth_date <= '1965-01-01'");
	int64_t top5 = q_int(db, "SELECT count(*) FROM resident WHERE"
				 " substr(name, 1, 1) IN ('王', '李', '张',"
				 " '刘', '陈')");
	int64_t two = q_int(db, "SELECT count(*) FROM resident WHERE"
				" length(name) = 3");

	/* 0-14: 13 %, 60+: 18 %, top five surnames 30.8 %, 60 % two-character
	 * given names; wide bands for a sample of ~750. */
	assert_true(kids * 100 >= n * 7 && kids * 100 <= n * 20);
	assert_true(old * 100 >= n * 12 && old * 100 <= n * 26);
	assert_true(top5 * 100 >= n * 22 && top5 * 100 <= n * 40);
	assert_true(two * 100 >= n * 50 && two * 100 <= n * 70);
	gs__db_close(db);
}

/* ---- logs never hold names -------------------------------------------- */

struct logcap {
	char text[64 * 1024];
	size_t len;
	unsigned lines;
};

static void capture(enum gs_log_level lvl,
		    const char *module,
		    const char *msg,
		    void *payload)
{
	struct logcap *c = payload;
	int n;

	(void)lvl;
	n = snprintf(c->text + c->len, sizeof(c->text) - c->len, "%s %s\n",
		     module, msg);
	if (n > 0 && c->len + (size_t)n < sizeof(c->text))
		c->len += (size_t)n;
	c->lines++;
}

static void names_never_logged(void **state)
{
	struct fx *f = *state;
	struct logcap *cap = calloc(1, sizeof(*cap));
	sqlite3_stmt *st = NULL;
	sqlite3 *db = new_db(f);
	struct gs_synth_opts o = GS_SYNTH_OPTS_INIT;
	char worker[GS_UUID_LEN];
	int checked = 0;

	assert_non_null(cap);
	gs_ctx_set_log(f->ctx, capture, GS_LOG_DEBUG, cap);
	assert_gs_ok(gs__synth_generate(f->ctx, db, &o, NULL));
	assert_gs_ok(
		gs__synth_pick_worker(f->ctx, db, "GW", "responsible", worker));
	o.scope_worker_id = worker;
	{
		sqlite3 *db2 = new_db(f);

		assert_gs_ok(gs__synth_generate(f->ctx, db2, &o, NULL));
		gs__db_close(db2);
	}
	gs_ctx_set_log(f->ctx, NULL, GS_LOG_WARN, NULL);
	assert_true(cap->lines >= 2); /* the test can see a log at all */
	assert_int_equal(
		sqlite3_prepare_v2(db,
				   "SELECT name FROM resident UNION SELECT name"
				   " FROM worker UNION SELECT id_no_masked FROM"
				   " resident UNION SELECT addr_text FROM place"
				   " WHERE addr_text IS NOT NULL",
				   -1, &st, NULL),
		SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *v = (const char *)sqlite3_column_text(st, 0);

		if (strstr(cap->text, v) != NULL)
			fail_msg("personal value logged: %s", cap->text);
		checked++;
	}
	sqlite3_finalize(st);
	assert_true(checked > 500);
	gs__db_close(db);
	free(cap);
}

/* ---- worker listing --------------------------------------------------- */

struct wl {
	int n;
	int micro_responsible;
	char first_micro[GS_UUID_LEN];
	int stop_after;
};

static int on_worker(const struct gs_synth_worker_info *w, void *payload)
{
	struct wl *l = payload;

	l->n++;
	assert_non_null(w->id);
	assert_int_equal(strlen(w->id), 36);
	if (strcmp(w->role, "GW") == 0 &&
	    strcmp(w->duties, "responsible") == 0) {
		assert_int_equal(strlen(w->grid_codes), 17);
		if (l->micro_responsible++ == 0)
			memcpy(l->first_micro, w->id, GS_UUID_LEN);
	}
	if (strcmp(w->role, "DC") == 0)
		assert_string_equal(w->grid_codes, "");
	if (strcmp(w->role, "SC") == 0)
		assert_int_equal(strlen(w->grid_codes), 12);
	return l->stop_after > 0 && l->n == l->stop_after ? 77 : 0;
}

/* ---- allocation failure ---------------------------------------------- */

static void survives_every_allocation_failure(void **state)
{
	struct fx *f = *state;
	struct gs_synth_opts o = GS_SYNTH_OPTS_INIT;
	sqlite3 *db = new_db(f);
	char worker[GS_UUID_LEN];
	long base = f->alloc.live;
	int rc;

	for (long n = 0;; n++) {
		gs_test_fail_alloc_at(&f->alloc, n);
		rc = gs__synth_generate(f->ctx, db, &o, NULL);
		if (rc == GS_OK)
			break;
		assert_int_equal(rc, GS_ENOMEM);
		assert_int_equal(f->alloc.live, base);
		/* Nothing half-written. */
		assert_int_equal(q_int(db, "SELECT count(*) FROM admin_area"),
				 0);
		assert_true(n < 1000);
	}
	gs_test_fail_alloc_at(&f->alloc, -1);
	assert_int_equal(f->alloc.live, base);
	/* The worker listing allocates too. */
	for (long n = 0;; n++) {
		struct wl l = { 0 };

		gs_test_fail_alloc_at(&f->alloc, n);
		rc = gs__synth_workers(f->ctx, db, on_worker, &l);
		if (rc == GS_OK)
			break;
		assert_int_equal(rc, GS_ENOMEM);
		assert_int_equal(f->alloc.live, base);
		assert_true(n < 100);
	}
	assert_gs_ok(gs__synth_pick_worker(f->ctx, db, "CS", NULL, worker));
	gs_test_fail_alloc_at(&f->alloc, -1);
	assert_int_equal(f->alloc.live, base);
	gs__db_close(db);
}

static void lists_workers(void **state)
{
	struct fx *f = *state;
	sqlite3 *db = demo_db(f, 42, NULL, NULL);
	struct wl l = { 0 };
	char pick[GS_UUID_LEN];

	assert_gs_ok(gs__synth_workers(f->ctx, db, on_worker, &l));
	assert_int_equal(l.n, q_int(db, "SELECT count(*) FROM worker"));
	assert_int_equal(l.micro_responsible, 5);
	assert_gs_ok(
		gs__synth_pick_worker(f->ctx, db, "GW", "responsible", pick));
	assert_string_equal(pick, l.first_micro);
	assert_gs_err(
		gs__synth_pick_worker(f->ctx, db, "DC", "responsible", pick),
		GS_ENOTFOUND);
	/* A callback's non-zero return stops the walk and comes back. */
	memset(&l, 0, sizeof(l));
	l.stop_after = 3;
	assert_int_equal(gs__synth_workers(f->ctx, db, on_worker, &l), 77);
	assert_int_equal(l.n, 3);
	gs__db_close(db);
}

/* ---- workload text ---------------------------------------------------- */

static void workload_text(void **state)
{
	struct fx *f = *state;
	sqlite3 *db = demo_db(f, 42, NULL, NULL);
	struct gs_synth_rng r1;
	struct gs_synth_rng r2;
	char a[GS_SYNTH_TEXT_MAX];
	char b[GS_SYNTH_TEXT_MAX];
	struct gs_synth_issue is;
	struct gs_synth_issue is2;
	size_t sum_summary = 0;
	size_t sum_desc = 0;
	int grades[3] = { 0 };
	int env = 0;
	const int n = 4000;
	sqlite3_stmt *st = NULL;

	gs__synth_rng_seed(&r1, 9);
	gs__synth_rng_seed(&r2, 9);
	assert_int_equal(sqlite3_prepare_v2(db,
					    "SELECT count(*) FROM category"
					    " WHERE code = ?1 AND level = 3",
					    -1, &st, NULL),
			 SQLITE_OK);
	for (int i = 0; i < n; i++) {
		assert_gs_ok(gs__synth_visit_summary(a, sizeof(a), &r1));
		assert_gs_ok(gs__synth_visit_summary(b, sizeof(b), &r2));
		assert_string_equal(a, b);
		assert_true(gs__utf8_valid((const uint8_t *)a, strlen(a)));
		sum_summary += strlen(a);
		assert_gs_ok(gs__synth_visit_answers(a, sizeof(a), &r1));
		assert_gs_ok(gs__synth_visit_answers(b, sizeof(b), &r2));
		assert_string_equal(a, b);
		assert_non_null(strstr(a, "\"gas\":"));
		assert_non_null(strstr(a, "\"fire_lane\":"));
		assert_non_null(strstr(a, "\"needs\":["));
		assert_gs_ok(gs__synth_issue(&is, &r1, NULL));
		assert_gs_ok(gs__synth_issue(&is2, &r2, NULL));
		assert_string_equal(is.title, is2.title);
		assert_string_equal(is.description, is2.description);
		assert_true(strchr(is.description, '$') == NULL);
		assert_true(gs__utf8_valid((const uint8_t *)is.description,
					   strlen(is.description)));
		assert_true(strlen(is.title) > 6);
		sum_desc += strlen(is.description);
		/* The code names a leaf of the generated tree. */
		sqlite3_bind_text(st, 1, is.category_code, -1, SQLITE_STATIC);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_int_equal(sqlite3_column_int(st, 0), 1);
		sqlite3_reset(st);
		env += strncmp(is.category_code, "01", 2) == 0;
		grades[strcmp(is.grade, "red") == 0      ? 0
		       : strcmp(is.grade, "yellow") == 0 ? 1
							 : 2]++;
	}
	sqlite3_finalize(st);
	/* ~120-byte summaries, ~200-byte descriptions. */
	assert_true(sum_summary / n >= 100 && sum_summary / n <= 140);
	assert_true(sum_desc / n >= 180 && sum_desc / n <= 240);
	/* Mix: red 3 %, yellow 27 %, blue 70 %; 环境卫生 28 %. */
	assert_true(grades[0] > n * 2 / 100 && grades[0] < n * 4 / 100);
	assert_true(grades[1] > n * 24 / 100 && grades[1] < n * 30 / 100);
	assert_true(env > n * 25 / 100 && env < n * 31 / 100);
	/* Too small a buffer is an error, not a truncation. */
	assert_gs_err(gs__synth_visit_summary(a, 16, &r1), GS_ETOOBIG);
	assert_string_equal(a, "");
	assert_gs_err(gs__synth_issue(&is, &r1, "99"), GS_EINVAL);
	assert_gs_ok(gs__synth_issue(&is, &r1, "050101"));
	assert_string_equal(is.category_code, "050101");
	gs__db_close(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(same_seed_same_rows, setup,
						teardown),
		cmocka_unit_test_setup_teardown(demo_counts_in_range, setup,
						teardown),
		cmocka_unit_test_setup_teardown(households_live_in_micro_grids,
						setup, teardown),
		cmocka_unit_test_setup_teardown(foreign_keys_hold, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			scoped_run_holds_only_the_workers_grids, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			restricted_tags_exist_in_the_truth, setup, teardown),
		cmocka_unit_test_setup_teardown(unknown_scope_worker_is_refused,
						setup, teardown),
		cmocka_unit_test_setup_teardown(bad_inputs_are_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			id_numbers_have_a_wrong_check_digit, setup, teardown),
		cmocka_unit_test_setup_teardown(valid_checksum_option, setup,
						teardown),
		cmocka_unit_test(id_check_known_vector),
		cmocka_unit_test_setup_teardown(population_looks_like_chengdu,
						setup, teardown),
		cmocka_unit_test_setup_teardown(names_never_logged, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			survives_every_allocation_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(lists_workers, setup, teardown),
		cmocka_unit_test_setup_teardown(workload_text, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
