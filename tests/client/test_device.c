/*
 * The handheld API on a demo device: records round-trip byte for byte,
 * every save is one outbox entry, scope and state-machine rules refuse
 * what a device may not do, and a refused call changes nothing.
 */
#include <gridsync/client_internal.h>
#include <gridsync/gridsync.h>
#include <gridsync/schema.h>
#include <gridsync/synth.h>

#include "gs_test.h"

struct fx {
	struct gs_ctx *ctx;
	char *dir;
	struct gs_device *dev;
	char household[GS_ID_LEN];
	char worker[128];
};

static int first_household(const struct gs_row *row, void *payload)
{
	snprintf(payload, GS_ID_LEN, "%s", gs_row_get(row, "id"));
	return 1; /* stop */
}

static int setup(void **state)
{
	struct gs_device_init_opts io = GS_DEVICE_INIT_OPTS_INIT;
	struct gs_status st;
	struct fx *f = calloc(1, sizeof(*f));

	f->ctx = gs_test_ctx_new(NULL);
	f->dir = gs_test_tmpdir();
	io.device_id = "dev-test-1";
	io.insecure = 1;
	io.demo = 1;
	assert_gs_ok(gs_device_init(&f->dev, f->ctx,
				    gs_test_path(f->dir, "d.db"), &io));
	assert_int_equal(
		gs_household_list(f->dev, first_household, f->household), 1);
	assert_gs_ok(gs_device_status(f->dev, &st));
	snprintf(f->worker, sizeof(f->worker), "%s", st.worker_id);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	gs_device_close(f->dev);
	gs_ctx_free(f->ctx);
	gs_test_tmpdir_free(f->dir);
	free(f);
	return 0;
}

static uint64_t outbox_depth(struct fx *f)
{
	struct gs_status st;

	assert_gs_ok(gs_device_status(f->dev, &st));
	return st.outbox_depth;
}

static void content_hash(struct fx *f, char out[65])
{
	struct gs_status st;

	assert_gs_ok(gs_device_status(f->dev, &st));
	memcpy(out, st.content_hash, 65);
}

static void demo_device_is_scoped_to_its_worker(void **state)
{
	struct fx *f = *state;
	struct gs_status st;

	assert_gs_ok(gs_device_status(f->dev, &st));
	assert_string_equal(st.role, "GW");
	assert_true(st.scope[0] != '\0');
	assert_true(st.households >= 30 && st.households <= 100);
	assert_int_equal(st.outbox_depth, 0); /* seeding is not captured */
	assert_int_equal(st.schema_version, GS_SCHEMA_VERSION);
	assert_int_equal(strlen(st.content_hash), 64);
}

static int get_field(const struct gs_row *row, void *payload)
{
	const char **want = payload;

	if (strcmp(gs_row_kind(row), "household") == 0 &&
	    gs_row_get(row, want[0]) != NULL)
		snprintf((char *)want[1], 256, "%s", gs_row_get(row, want[0]));
	return 0;
}

static void chinese_text_round_trips(void **state)
{
	struct fx *f = *state;
	static const char note[] = "独居老人，行动不便，需协助代购药品；楼道堆"
				   "放纸箱杂物 🙂";
	struct gs_field fields[] = { { "note", note }, { "size", "3" } };
	char got[256] = "";
	const char *want[2] = { "note", got };

	assert_gs_ok(gs_household_edit(f->dev, f->household, fields, 2));
	assert_gs_ok(gs_household_show(f->dev, f->household, get_field, want));
	assert_int_equal(strlen(got), strlen(note));
	assert_memory_equal(got, note, sizeof(note));
	assert_int_equal(outbox_depth(f), 1);
}

static void every_save_is_one_outbox_entry(void **state)
{
	struct fx *f = *state;
	struct gs_visit_opts vo = GS_VISIT_OPTS_INIT;
	struct gs_issue_report_opts ro = GS_ISSUE_REPORT_OPTS_INIT;
	struct gs_field hf[2];
	char id[GS_ID_LEN];
	char hh[GS_ID_LEN];
	char grid[128] = "";
	const char *want[2] = { "grid_id", grid };
	struct gs_synth_rng rng;
	struct gs_synth_issue is;

	gs__synth_rng_seed(&rng, 7);
	assert_gs_ok(gs_household_show(f->dev, f->household, get_field, want));
	hf[0].name = "grid_id";
	hf[0].value = grid;
	hf[1].name = "residence_type";
	hf[1].value = "流动";
	assert_gs_ok(gs_household_add(f->dev, hh, hf, 2));
	assert_int_equal(outbox_depth(f), 1);
	vo.household_id = hh;
	vo.kind = "routine";
	vo.outcome = "met";
	vo.summary = "燃气管道老化，已提醒住户联系物业更换";
	assert_gs_ok(gs_visit_add(f->dev, id, &vo));
	assert_int_equal(outbox_depth(f), 2);
	assert_gs_ok(gs__synth_issue(&is, &rng, NULL));
	ro.category = is.category_code;
	ro.title = is.title;
	ro.description = is.description;
	ro.household_id = hh;
	assert_gs_ok(gs_issue_report(f->dev, id, &ro));
	assert_int_equal(outbox_depth(f), 3);
}

/* A refused call must leave the database exactly as it was. */
#define ASSERT_REFUSED(f, call, err)                             \
	do {                                                     \
		char before_[65];                                \
		char after_[65];                                 \
		uint64_t depth_ = outbox_depth(f);               \
		content_hash(f, before_);                        \
		assert_gs_err(call, err);                        \
		assert_true(gs_ctx_errmsg((f)->ctx)[0] != '\0'); \
		content_hash(f, after_);                         \
		assert_string_equal(before_, after_);            \
		assert_int_equal(outbox_depth(f), depth_);       \
	} while (0)

static void bad_input_is_refused_and_changes_nothing(void **state)
{
	struct fx *f = *state;
	struct gs_visit_opts vo = GS_VISIT_OPTS_INIT;
	struct gs_issue_report_opts ro = GS_ISSUE_REPORT_OPTS_INIT;
	struct gs_field bad_field[] = { { "nosuch", "1" } };
	struct gs_field engine_field[] = { { "hlc", "1" } };
	struct gs_field bad_int[] = { { "size", "three" } };
	struct gs_field bad_utf8[] = { { "note", "\xc3\x28" } };
	struct gs_field blob[] = { { "phone_enc", "13800000000" } };
	char id[GS_ID_LEN];

	vo.household_id = "no-such-household";
	vo.kind = "routine";
	vo.outcome = "met";
	ASSERT_REFUSED(f, gs_visit_add(f->dev, id, &vo), GS_ENOTFOUND);
	vo.household_id = f->household;
	vo.kind = "party";
	ASSERT_REFUSED(f, gs_visit_add(f->dev, id, &vo), GS_EINVAL);
	vo.kind = "routine";
	vo.summary = "\xff\xfe";
	ASSERT_REFUSED(f, gs_visit_add(f->dev, id, &vo), GS_EINVAL);
	vo.summary = NULL;
	vo.started_at = "yesterday";
	ASSERT_REFUSED(f, gs_visit_add(f->dev, id, &vo), GS_EINVAL);
	ASSERT_REFUSED(f, gs_household_edit(f->dev, f->household, bad_field, 1),
		       GS_EINVAL);
	ASSERT_REFUSED(f,
		       gs_household_edit(f->dev, f->household, engine_field, 1),
		       GS_EINVAL);
	ASSERT_REFUSED(f, gs_household_edit(f->dev, f->household, bad_int, 1),
		       GS_EINVAL);
	ASSERT_REFUSED(f, gs_household_edit(f->dev, f->household, bad_utf8, 1),
		       GS_EINVAL);
	ASSERT_REFUSED(f, gs_household_edit(f->dev, f->household, blob, 1),
		       GS_EINVAL);
	ASSERT_REFUSED(f, gs_household_edit(f->dev, "nope", bad_int, 0),
		       GS_EINVAL);
	ASSERT_REFUSED(f, gs_household_add(f->dev, id, NULL, 0), GS_EINVAL);
	ro.category = "no-such-category";
	ro.title = "t";
	ro.household_id = f->household;
	ASSERT_REFUSED(f, gs_issue_report(f->dev, id, &ro), GS_ENOTFOUND);
	ro.title = NULL;
	ASSERT_REFUSED(f, gs_issue_report(f->dev, id, &ro), GS_EINVAL);
	/* The message names the field, never the value. */
	assert_gs_err(gs_household_edit(f->dev, f->household, bad_int, 1),
		      GS_EINVAL);
	assert_null(strstr(gs_ctx_errmsg(f->ctx), "three"));
}

static void writes_outside_the_scope_are_refused(void **state)
{
	struct fx *f = *state;
	sqlite3 *db = gs__device_db(f->dev);
	struct gs_visit_opts vo = GS_VISIT_OPTS_INIT;
	struct gs_field move[] = { { "grid_id", NULL } };
	char other[128] = "";
	char id[GS_ID_LEN];
	sqlite3_stmt *st = NULL;

	/* A grid of the same community that this worker is not assigned to,
	 * and a household there that arrived by other means. */
	assert_int_equal(sqlite3_prepare_v2(db,
					    "SELECT g.id FROM grid g WHERE"
					    " g.level = 'micro' AND g.id NOT IN"
					    " (SELECT grid_id FROM household)"
					    " LIMIT 1",
					    -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	snprintf(other, sizeof(other), "%s", sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	assert_int_equal(sqlite3_exec(db,
				      "INSERT INTO household (id, grid_id,"
				      " hlc, origin, created_at) SELECT"
				      " 'foreign-hh', id, '0', 'server', 'now'"
				      " FROM grid WHERE id = (SELECT g.id FROM"
				      " grid g WHERE g.level = 'micro' AND"
				      " g.id NOT IN (SELECT grid_id FROM"
				      " household) LIMIT 1)",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	vo.household_id = "foreign-hh";
	vo.kind = "routine";
	vo.outcome = "met";
	ASSERT_REFUSED(f, gs_visit_add(f->dev, id, &vo), GS_EDENIED);
	move[0].value = other;
	ASSERT_REFUSED(f, gs_household_edit(f->dev, f->household, move, 1),
		       GS_EDENIED);
}

static int issue_state(const struct gs_row *row, void *payload)
{
	if (strcmp(gs_row_kind(row), "issue") == 0)
		snprintf(payload, 32, "%s", gs_row_get(row, "state"));
	return 0;
}

static void offline_transitions_follow_the_state_machine(void **state)
{
	struct fx *f = *state;
	struct gs_issue_report_opts ro = GS_ISSUE_REPORT_OPTS_INIT;
	struct gs_issue_move_opts mo = GS_ISSUE_MOVE_OPTS_INIT;
	sqlite3 *db = gs__device_db(f->dev);
	struct gs_synth_rng rng;
	struct gs_synth_issue is;
	char id[GS_ID_LEN];
	char sql[512];
	char st[32];

	gs__synth_rng_seed(&rng, 3);
	assert_gs_ok(gs__synth_issue(&is, &rng, NULL));
	ro.category = is.category_code;
	ro.title = is.title;
	ro.household_id = f->household;
	assert_gs_ok(gs_issue_report(f->dev, id, &ro));
	assert_gs_ok(gs_issue_show(f->dev, id, issue_state, st));
	assert_string_equal(st, "reported");
	/* Accepting is the community's decision, not a grid worker's. */
	mo.to = "accepted";
	ASSERT_REFUSED(f, gs_issue_move(f->dev, id, &mo), GS_ESTATE);
	assert_non_null(strstr(gs_ctx_errmsg(f->ctx), "reported"));
	mo.to = "closed";
	ASSERT_REFUSED(f, gs_issue_move(f->dev, id, &mo), GS_ESTATE);
	mo.to = "nonsense";
	ASSERT_REFUSED(f, gs_issue_move(f->dev, id, &mo), GS_EINVAL);
	/* Self-resolving needs a note. */
	mo.to = "self_resolved";
	ASSERT_REFUSED(f, gs_issue_move(f->dev, id, &mo), GS_EINVAL);
	/* The centre dispatched it to someone else (as a download would). */
	snprintf(sql, sizeof(sql),
		 "UPDATE issue SET state = 'dispatched', state_rev = 3,"
		 " assignee_worker_id = (SELECT id FROM worker WHERE id <> '%s'"
		 " LIMIT 1) WHERE id = '%s'",
		 f->worker, id);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	mo.to = "in_progress";
	ASSERT_REFUSED(f, gs_issue_move(f->dev, id, &mo), GS_ESTATE);
	/* Dispatched to this worker: sign, handle; verify is for another
	 * visit but allowed offline. */
	snprintf(sql, sizeof(sql),
		 "UPDATE issue SET assignee_worker_id = '%s' WHERE id = '%s'",
		 f->worker, id);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	assert_gs_ok(gs_issue_move(f->dev, id, &mo));
	mo.to = "handled";
	assert_gs_ok(gs_issue_move(f->dev, id, &mo));
	mo.to = "verified";
	assert_gs_ok(gs_issue_move(f->dev, id, &mo));
	assert_gs_ok(gs_issue_show(f->dev, id, issue_state, st));
	assert_string_equal(st, "verified");
	mo.to = "closed";
	ASSERT_REFUSED(f, gs_issue_move(f->dev, id, &mo), GS_ESTATE);
}

static int count_events(const struct gs_row *row, void *payload)
{
	if (strcmp(gs_row_kind(row), "issue_event") == 0)
		(*(int *)payload)++;
	return 0;
}

static void report_records_creation_events(void **state)
{
	struct fx *f = *state;
	struct gs_issue_report_opts ro = GS_ISSUE_REPORT_OPTS_INIT;
	struct gs_issue_move_opts mo = GS_ISSUE_MOVE_OPTS_INIT;
	struct gs_synth_rng rng;
	struct gs_synth_issue is;
	char id[GS_ID_LEN];
	int n = 0;

	gs__synth_rng_seed(&rng, 5);
	assert_gs_ok(gs__synth_issue(&is, &rng, NULL));
	ro.category = is.category_code;
	ro.title = is.title;
	ro.household_id = f->household;
	assert_gs_ok(gs_issue_report(f->dev, id, &ro));
	assert_gs_ok(gs_issue_show(f->dev, id, count_events, &n));
	assert_int_equal(n, 2); /* created as draft, reported */
	mo.to = "cancelled";
	assert_gs_ok(gs_issue_move(f->dev, id, &mo));
	n = 0;
	assert_gs_ok(gs_issue_show(f->dev, id, count_events, &n));
	assert_int_equal(n, 3);
	mo.to = "reported";
	ASSERT_REFUSED(f, gs_issue_move(f->dev, id, &mo), GS_ESTATE);
}

static void reopening_refuses_other_paths(void **state)
{
	struct gs_ctx *ctx = gs_test_ctx_new(NULL);
	char *dir = gs_test_tmpdir();
	struct gs_device_init_opts io = GS_DEVICE_INIT_OPTS_INIT;
	struct gs_device *dev = NULL;
	const char *path = gs_test_path(dir, "x.db");

	(void)state;
	io.device_id = "d";
	io.insecure = 1;
	assert_gs_ok(gs_device_init(&dev, ctx, path, &io));
	gs_device_close(dev);
	assert_gs_err(gs_device_init(&dev, ctx, path, &io), GS_EEXISTS);
	assert_gs_ok(gs_device_open(&dev, ctx, path));
	gs_device_close(dev);
	assert_gs_err(gs_device_open(&dev, ctx, gs_test_path(dir, "none.db")),
		      GS_ENOTFOUND);
	assert_non_null(strstr(gs_ctx_errmsg(ctx), "gridsync init"));
	io.device_id = "";
	assert_gs_err(gs_device_init(&dev, ctx, gs_test_path(dir, "y.db"), &io),
		      GS_EINVAL);
	io.device_id = "d";
	io.demo = 1;
	io.worker_id = "no-such-worker";
	assert_gs_err(gs_device_init(&dev, ctx, gs_test_path(dir, "z.db"), &io),
		      GS_ENOTFOUND);
	/* A failed init leaves no half-made database behind. */
	assert_gs_err(gs_device_open(&dev, ctx, gs_test_path(dir, "z.db")),
		      GS_ENOTFOUND);
	gs_ctx_free(ctx);
	gs_test_tmpdir_free(dir);
}

/* Fail each of our allocations in turn on the save path: each attempt
 * either saves (record and entry) or refuses cleanly with nothing saved. */
static void save_survives_allocation_failures(void **state)
{
	struct fx *f = *state;
	struct gs_test_alloc a;
	struct gs_ctx *ctx = gs_test_ctx_new(&a);
	struct gs_device *dev = NULL;
	struct gs_visit_opts vo = GS_VISIT_OPTS_INIT;
	char id[GS_ID_LEN];
	long live;
	long n;

	assert_gs_ok(gs_device_open(&dev, ctx, gs_test_path(f->dir, "d.db")));
	live = a.live;
	vo.household_id = f->household;
	vo.kind = "care";
	vo.outcome = "not_home";
	for (n = 0;; n++) {
		uint64_t before = outbox_depth(f);
		int rc;

		gs_test_fail_alloc_at(&a, n);
		rc = gs_visit_add(dev, id, &vo);
		gs_test_fail_alloc_at(&a, -1);
		assert_int_equal(a.live, live);
		if (rc == GS_OK) {
			assert_int_equal(outbox_depth(f), before + 1);
			break;
		}
		assert_int_equal(rc, GS_ENOMEM);
		assert_int_equal(outbox_depth(f), before);
	}
	gs_device_close(dev);
	assert_int_equal(a.live, 1);
	gs_ctx_free(ctx);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(demo_device_is_scoped_to_its_worker),
		T(chinese_text_round_trips),
		T(every_save_is_one_outbox_entry),
		T(bad_input_is_refused_and_changes_nothing),
		T(writes_outside_the_scope_are_refused),
		T(offline_transitions_follow_the_state_machine),
		T(report_records_creation_events),
		cmocka_unit_test(reopening_refuses_other_paths),
		T(save_survives_allocation_failures),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
