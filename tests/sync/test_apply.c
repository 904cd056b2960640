/*
 * Applying downloads under the pending outbox: the server's rows replace
 * ours, pending local edits stay visible and pending, rejected entries are
 * undone, bad bytes change nothing. Two demo devices with the same seed
 * hold the same rows; what one captures stands in for the server's
 * download to the other.
 */
#include <gridsync/apply.h>
#include <gridsync/client_internal.h>
#include <gridsync/gridsync.h>
#include <gridsync/wire.h>

#include "gs_test.h"

struct fx {
	struct gs_ctx *ctx;
	char *dir;
	struct gs_device *a;
	struct gs_device *b;
	char hh[GS_ID_LEN];
};

static int first_household(const struct gs_row *row, void *payload)
{
	snprintf(payload, GS_ID_LEN, "%s", gs_row_get(row, "id"));
	return 1;
}

static struct gs_device *demo(struct fx *f, const char *name)
{
	struct gs_device_init_opts io = GS_DEVICE_INIT_OPTS_INIT;
	struct gs_device *d = NULL;

	io.device_id = name;
	io.insecure = 1;
	io.demo = 1;
	assert_gs_ok(
		gs_device_init(&d, f->ctx, gs_test_path(f->dir, name), &io));
	return d;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	f->ctx = gs_test_ctx_new(NULL);
	f->dir = gs_test_tmpdir();
	f->a = demo(f, "a.db");
	f->b = demo(f, "b.db");
	assert_int_equal(gs_household_list(f->a, first_household, f->hh), 1);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	gs_device_close(f->a);
	gs_device_close(f->b);
	gs_ctx_free(f->ctx);
	gs_test_tmpdir_free(f->dir);
	free(f);
	return 0;
}

static void col(struct gs_device *d,
		const char *sql,
		const char *arg,
		char *out,
		size_t cap)
{
	sqlite3_stmt *st = NULL;

	out[0] = '\0';
	assert_int_equal(
		sqlite3_prepare_v2(gs__device_db(d), sql, -1, &st, NULL),
		SQLITE_OK);
	sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		snprintf(out, cap, "%s", sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
}

static uint64_t depth(struct gs_device *d)
{
	struct gs_status st;

	assert_gs_ok(gs_device_status(d, &st));
	return st.outbox_depth;
}

/* B's last outbox entry, as if the server sent it. */
static void download_from_b(struct fx *f, uint8_t **cs, size_t *len)
{
	struct gs_status st;

	assert_gs_ok(gs_device_status(f->b, &st));
	assert_gs_ok(gs_outbox_get(f->b, st.last_seq, cs, len));
}

static void pending_edits_survive_a_download(void **state)
{
	struct fx *f = *state;
	struct gs_field mine[] = { { "note", "本机未同步" }, { "size", "4" } };
	struct gs_field theirs[] = { { "note", "服务器" },
				     { "tenure", "租住" } };
	struct gs_apply_stats stats;
	uint8_t *cs = NULL;
	size_t len = 0;
	char v[64];

	assert_gs_ok(gs_household_edit(f->a, f->hh, mine, 2));
	assert_gs_ok(gs_household_edit(f->b, f->hh, theirs, 2));
	download_from_b(f, &cs, &len);
	assert_gs_ok(gs__apply_download(f->ctx, gs__device_db(f->a), cs, len,
					42, 0, &stats));
	assert_int_equal(stats.undone, 1);
	assert_int_equal(stats.redone, 1);
	/* The server's column arrived; the pending ones still show. */
	col(f->a, "SELECT tenure FROM household WHERE id = ?", f->hh, v,
	    sizeof(v));
	assert_string_equal(v, "租住");
	col(f->a, "SELECT note FROM household WHERE id = ?", f->hh, v,
	    sizeof(v));
	assert_string_equal(v, "本机未同步");
	col(f->a, "SELECT size FROM household WHERE id = ?", f->hh, v,
	    sizeof(v));
	assert_string_equal(v, "4");
	assert_int_equal(depth(f->a), 1);
	col(f->a, "SELECT value FROM gs_meta WHERE key = ?", "cursor", v,
	    sizeof(v));
	assert_string_equal(v, "42");
	gs_free(f->ctx, cs);
}

static void
acknowledged_entries_leave_and_rejected_ones_are_undone(void **state)
{
	struct fx *f = *state;
	struct gs_visit_opts vo = GS_VISIT_OPTS_INIT;
	struct gs_ack_item items[2];
	struct gs_apply_stats stats;
	struct gs_status st;
	char v1[GS_ID_LEN];
	char v2[GS_ID_LEN];
	char v[64];

	vo.household_id = f->hh;
	vo.kind = "routine";
	vo.outcome = "met";
	assert_gs_ok(gs_visit_add(f->a, v1, &vo));
	assert_gs_ok(gs_visit_add(f->a, v2, &vo));
	memset(items, 0, sizeof(items));
	items[0].seq = 1;
	items[0].result = GS_RESULT_APPLIED;
	items[1].seq = 2;
	items[1].result = GS_RESULT_REJECTED;
	items[1].reject_code = GS_REJECT_DENIED;
	items[1].reason = "outside the scope";
	assert_gs_ok(gs__apply_acks(f->ctx, gs__device_db(f->a), items, 2));
	assert_int_equal(depth(f->a), 1); /* the rejected one, held */
	assert_gs_ok(gs__apply_download(f->ctx, gs__device_db(f->a), NULL, 0, 0,
					0, &stats));
	assert_int_equal(stats.dropped, 1);
	assert_int_equal(depth(f->a), 0);
	col(f->a, "SELECT count(*) FROM visit WHERE id = ?", v1, v, sizeof(v));
	assert_string_equal(v, "1");
	col(f->a, "SELECT count(*) FROM visit WHERE id = ?", v2, v, sizeof(v));
	assert_string_equal(v, "0");
	col(f->a,
	    "SELECT reason FROM gs_conflict WHERE device_seq = 2 AND"
	    " ? IS NOT NULL",
	    "x", v, sizeof(v));
	assert_non_null(strstr(v, "outside the scope"));
	/* The sequence never falls back once the outbox is empty. */
	assert_gs_ok(gs_visit_add(f->a, v1, &vo));
	assert_gs_ok(gs_device_status(f->a, &st));
	assert_int_equal(st.last_seq, 3);
}

static void malformed_download_changes_nothing(void **state)
{
	struct fx *f = *state;
	static const uint8_t hang[] = { 0x54, 0x04, 0x01, 0x00,
					0x00, 0x00, 0x54, 0x04 };
	struct gs_status before;
	struct gs_status after;
	uint64_t t0 = gs__clock_mono_ns();

	assert_gs_ok(gs_device_status(f->a, &before));
	assert_gs_err(gs__apply_download(f->ctx, gs__device_db(f->a), hang,
					 sizeof(hang), 99, 0, NULL),
		      GS_EPROTO);
	assert_true(gs__clock_mono_ns() - t0 < 2000000000ull); /* no hang */
	assert_gs_ok(gs_device_status(f->a, &after));
	assert_string_equal(before.content_hash, after.content_hash);
	assert_int_equal(after.cursor, before.cursor);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(pending_edits_survive_a_download),
		T(acknowledged_entries_leave_and_rejected_ones_are_undone),
		T(malformed_download_changes_nothing),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
