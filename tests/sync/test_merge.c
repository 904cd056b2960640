/*
 * The merge rules through the store, with real handhelds: append-only rows
 * (insert if new, identical repeat a no-op, other content a conflict the
 * first write wins, updates refused), field-merged rows (last writer wins
 * per column by (HLC, device), different columns both kept, delete versus
 * update, every conflict recorded with both sides and reported to the
 * device that pushed it, a device clock a year ahead clamped), and work
 * orders (a whole life from report to close by a grid worker's and a
 * community centre's devices, a stale move after close, a verify racing a
 * re-dispatch, forbidden moves).
 *
 * gs-test: timeout=300
 */
#include "store_fx.h"

#define T0 1740817800000LL /* 2025-03-01T08:30:00Z */

static int setup(void **state)
{
	struct fx *f = fx_new();

	f->now = T0;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx_free(*state);
	return 0;
}

/* A captured write made with raw SQL on a device (what a buggy or
 * hostile handheld could send). */
static void raw_write(struct fx *f, struct fx_dev *d, const char *sql)
{
	struct gs_capture *c = NULL;
	uint64_t hlc;
	char *err = NULL;

	assert_gs_ok(gs__capture_open(&c, f->ctx, gs__device_db(d->dev)));
	assert_gs_ok(gs__capture_begin(c, &hlc));
	if (sqlite3_exec(gs__device_db(d->dev), sql, NULL, NULL, &err) !=
	    SQLITE_OK)
		fail_msg("%s: %s", sql, err);
	assert_gs_ok(gs__capture_commit(c, NULL));
	gs__capture_close(c);
}

/* Make device a's database readable on d's connection as "a" (outside
 * any transaction: ATTACH is refused inside one). */
static void attach_a(struct fx *f, struct fx_dev *d)
{
	char sql[512];

	snprintf(sql, sizeof(sql), "ATTACH '%s' AS a",
		 gs_test_path(f->dir, "dev-a.db"));
	assert_int_equal(
		sqlite3_exec(gs__device_db(d->dev), sql, NULL, NULL, NULL),
		SQLITE_OK);
}

static void edit(struct fx_dev *d,
		 const char *table,
		 const char *id,
		 const char *col,
		 const char *value)
{
	struct gs_field fl = { col, value };

	if (strcmp(table, "household") == 0)
		assert_gs_ok(gs_household_edit(d->dev, id, &fl, 1));
	else
		assert_gs_ok(gs_resident_edit(d->dev, id, &fl, 1));
}

static const char *
store_text(struct fx *f, const char *sql, const char *p, char *buf, size_t cap)
{
	return fx_text(gs__store_db(f->st), sql, p, buf, cap);
}

static int64_t store_int(struct fx *f, const char *sql, const char *p)
{
	return fx_int(gs__store_db(f->st), sql, p);
}

/* Push and expect every entry applied; keeps the answer in out. */
static void
push_ok(struct fx *f, struct fx_dev *d, struct gs_store_push_out *out)
{
	fx_push(f, d, out);
	for (size_t i = 0; i < out->n_results; i++)
		if (out->results[i].result != GS_RESULT_APPLIED)
			fail_msg("entry %llu: result %d code %d: %s",
				 (unsigned long long)out->results[i].device_seq,
				 (int)out->results[i].result,
				 (int)out->results[i].reject_code,
				 out->results[i].reason);
}

/* Pull like a handheld until caught up; the conflicts the pulls carried
 * with d as the loser (of column col, NULL: any) are counted, their ids
 * checked to come once and (ids != NULL) kept. */
static size_t pulled_conflicts(struct fx *f,
			       struct fx_dev *d,
			       const char *col,
			       uint64_t *ids,
			       size_t cap)
{
	struct gs_store_pull_out po;
	size_t n = 0;
	int guard = 0;

	gs__store_pull_out_init(&po, f->ctx);
	do {
		assert_gs_ok(gs__store_pull(f->st, &d->sd, d->cursor, 1u << 20,
					    &po));
		fx_apply(gs__device_db(d->dev), &po.changeset);
		for (size_t i = 0; i < po.n_conflicts; i++) {
			const struct gs_conflict *c = &po.conflicts[i];

			assert_string_equal(c->loser.device_id, d->sd.id);
			assert_true(c->id != 0);
			if (col != NULL && strcmp(c->column, col) != 0)
				continue;
			if (ids != NULL) {
				for (size_t k = 0; k < n && k < cap; k++)
					assert_true(ids[k] != c->id);
				if (n < cap)
					ids[n] = c->id;
			}
			n++;
		}
		assert_true(po.next_cursor >= d->cursor);
		d->cursor = po.next_cursor;
		assert_true(++guard < 100000);
	} while (po.more);
	gs__store_pull_out_fini(&po);
	return n;
}

/* ---- class A ------------------------------------------------------------ */

static void append_only(void **state)
{
	struct fx *f = *state;
	struct fx_dev a;
	struct fx_dev b;
	struct gs_store_push_out out;
	char hh[GS_UUID_LEN];
	char v[GS_ID_LEN];
	char sql[1024];
	char buf[256];
	int64_t seq0;

	fx_dev_init(f, &a, "dev-a", f->gw, NULL, NULL);
	fx_dev_init(f, &b, "dev-b", f->gw, NULL, NULL);
	fx_household(&a, hh);
	fx_visit(&a, hh, v);
	push_ok(f, &a, &out);
	gs__store_push_out_fini(&out);
	seq0 = store_int(f, "SELECT server_seq FROM visit WHERE id = ?", v);

	/* The same row from another device: no conflict, the row stays,
	 * republished so that the sender pulls the server's copy. */
	attach_a(f, &b);
	snprintf(sql, sizeof(sql),
		 "INSERT INTO main.visit SELECT * FROM a.visit WHERE id = '%s'",
		 v);
	raw_write(f, &b, sql);
	push_ok(f, &b, &out);
	assert_int_equal(out.n_conflicts, 0);
	gs__store_push_out_fini(&out);
	assert_true(store_int(f, "SELECT server_seq FROM visit WHERE id = ?",
			      v) > seq0);
	assert_string_equal(store_text(f,
				       "SELECT origin FROM visit WHERE id = ?",
				       v, buf, sizeof(buf)),
			    "dev-a");

	/* Other content under the same id: the first write stays and the
	 * difference is a conflict the sender lost. */
	snprintf(sql, sizeof(sql), "DELETE FROM visit WHERE id = '%s'", v);
	assert_int_equal(
		sqlite3_exec(gs__device_db(b.dev), sql, NULL, NULL, NULL),
		SQLITE_OK); /* not captured */
	snprintf(sql, sizeof(sql),
		 "INSERT INTO main.visit SELECT * FROM a.visit WHERE id = '%s';"
		 " UPDATE visit SET outcome = 'not_home' WHERE id = '%s'",
		 v, v);
	raw_write(f, &b, sql);
	sqlite3_exec(gs__device_db(b.dev), "DETACH a", NULL, NULL, NULL);
	fx_push(f, &b, &out);
	assert_int_equal(out.results[0].result, GS_RESULT_APPLIED);
	assert_int_equal(out.n_conflicts, 1);
	assert_string_equal(out.conflicts[0].table, "visit");
	assert_string_equal(out.conflicts[0].pk, v);
	assert_string_equal(out.conflicts[0].column, "outcome");
	assert_string_equal(out.conflicts[0].winner.device_id, "dev-a");
	assert_string_equal(out.conflicts[0].loser.device_id, "dev-b");
	assert_int_equal(out.conflicts[0].winner.kind, GS_VALUE_TEXT);
	assert_memory_equal(out.conflicts[0].winner.value, "met", 3);
	assert_memory_equal(out.conflicts[0].loser.value, "not_home", 8);
	gs__store_push_out_fini(&out);
	assert_string_equal(store_text(f,
				       "SELECT outcome FROM visit WHERE id = ?",
				       v, buf, sizeof(buf)),
			    "met");
	assert_int_equal(store_int(f,
				   "SELECT count(*) FROM srv_conflict WHERE"
				   " tbl = 'visit' AND device_id = 'dev-b'"
				   " AND device_seq IS NOT NULL",
				   NULL),
			 1);

	/* Updating or deleting an append-only row is refused. */
	snprintf(sql, sizeof(sql),
		 "UPDATE visit SET summary = 'x' WHERE id = '%s'", v);
	raw_write(f, &a, sql);
	fx_push(f, &a, &out);
	assert_int_equal(out.results[0].result, GS_RESULT_REJECTED);
	assert_int_equal(out.results[0].reject_code, GS_REJECT_DENIED);
	gs__store_push_out_fini(&out);
	fx_dev_fini(&a);
	fx_dev_fini(&b);
}

/* ---- class D ------------------------------------------------------------ */

static void lww_same_column(void **state)
{
	struct fx *f = *state;
	struct fx_dev a;
	struct fx_dev b;
	struct gs_store_push_out out;
	char hh[GS_UUID_LEN];
	char buf[256];
	uint64_t a_hlc;
	uint64_t b_hlc;

	fx_dev_init(f, &a, "dev-a", f->gw, NULL, NULL);
	fx_dev_init(f, &b, "dev-b", f->gw, NULL, NULL);
	fx_household(&a, hh);
	f->now = T0 + 1000;
	edit(&a, "household", hh, "note", "A 的备注");
	f->now = T0 + 2000;
	edit(&b, "household", hh, "note", "B 的备注");

	/* The later write arrives first; the earlier one loses on arrival
	 * and its device is told, with both sides. */
	push_ok(f, &b, &out);
	assert_int_equal(out.n_conflicts, 0);
	gs__store_push_out_fini(&out);
	push_ok(f, &a, &out);
	assert_int_equal(out.n_conflicts, 1);
	assert_string_equal(out.conflicts[0].column, "note");
	assert_string_equal(out.conflicts[0].winner.device_id, "dev-b");
	assert_string_equal(out.conflicts[0].loser.device_id, "dev-a");
	b_hlc = out.conflicts[0].winner.hlc;
	a_hlc = out.conflicts[0].loser.hlc;
	assert_true(b_hlc > a_hlc);
	assert_int_equal(GS_HLC_MS(a_hlc), T0 + 1000);
	assert_int_equal(out.conflicts[0].loser.value_len, strlen("A 的备注"));
	assert_memory_equal(out.conflicts[0].winner.value, "B 的备注",
			    strlen("B 的备注"));
	assert_int_equal(out.conflicts[0].device_seq,
			 out.results[0].device_seq);
	gs__store_push_out_fini(&out);
	assert_string_equal(
		store_text(f, "SELECT note FROM household WHERE id = ?", hh,
			   buf, sizeof(buf)),
		"B 的备注");
	/* Recorded with both sides in the store. */
	assert_int_equal(store_int(f,
				   "SELECT count(*) FROM srv_conflict WHERE"
				   " tbl = 'household' AND col = 'note' AND"
				   " winner_device = 'dev-b' AND"
				   " winner_value = 'B 的备注' AND"
				   " loser_device = 'dev-a' AND"
				   " loser_value = 'A 的备注' AND"
				   " winner_hlc > loser_hlc",
				   NULL),
			 1);

	/* Both devices pull and hold the same row. */
	fx_pull(f, &a);
	fx_pull(f, &b);
	assert_string_equal(fx_text(gs__device_db(a.dev),
				    "SELECT note || hlc FROM household"
				    " WHERE id = ?",
				    hh, buf, sizeof(buf)),
			    store_text(f,
				       "SELECT note || hlc FROM household"
				       " WHERE id = ?",
				       hh, buf + 128, 128));
	fx_dev_fini(&a);
	fx_dev_fini(&b);
}

static void lww_earlier_arrives_first(void **state)
{
	struct fx *f = *state;
	struct fx_dev a;
	struct fx_dev b;
	struct gs_store_push_out out;
	char hh[GS_UUID_LEN];
	char buf[256];

	fx_dev_init(f, &a, "dev-a", f->gw, NULL, NULL);
	fx_dev_init(f, &b, "dev-b", f->gw, NULL, NULL);
	fx_household(&a, hh);
	f->now = T0 + 1000;
	edit(&a, "household", hh, "note", "early");
	f->now = T0 + 2000;
	edit(&b, "household", hh, "note", "late");
	push_ok(f, &a, &out);
	gs__store_push_out_fini(&out);
	/* The later write wins and is told it won a conflict. */
	push_ok(f, &b, &out);
	assert_int_equal(out.n_conflicts, 1);
	assert_string_equal(out.conflicts[0].winner.device_id, "dev-b");
	assert_string_equal(out.conflicts[0].loser.device_id, "dev-a");
	gs__store_push_out_fini(&out);
	assert_string_equal(
		store_text(f, "SELECT note FROM household WHERE id = ?", hh,
			   buf, sizeof(buf)),
		"late");
	/* The loser's device_seq is not known to the store then. */
	assert_int_equal(
		store_int(f,
			  "SELECT count(*) FROM srv_conflict WHERE"
			  " device_id = 'dev-a' AND device_seq IS NULL",
			  NULL),
		1);
	/* The loser is told in its next pull, once: the pull after it
	 * marks it delivered. */
	assert_int_equal(pulled_conflicts(f, &a, "note", NULL, 0), 1);
	assert_int_equal(store_int(f,
				   "SELECT count(*) FROM srv_conflict WHERE"
				   " delivered_at IS NOT NULL",
				   NULL),
			 0);
	assert_int_equal(pulled_conflicts(f, &a, NULL, NULL, 0), 0);
	assert_int_equal(store_int(f,
				   "SELECT count(*) FROM srv_conflict WHERE"
				   " device_id = 'dev-a' AND delivered_at IS"
				   " NOT NULL",
				   NULL),
			 1);
	/* The winner's pulls carry nothing: it was told in its ack. */
	assert_int_equal(pulled_conflicts(f, &b, NULL, NULL, 0), 0);
	fx_dev_fini(&a);
	fx_dev_fini(&b);
}

/*
 * The handheld's delete is an UPDATE of "deleted" without the other
 * columns' old values: whether it saw the row's last edit is told by the
 * cursor of its Hello. An edit it had not pulled lost to the delete and
 * its device is told; an edit it had pulled is no conflict.
 */
static void soft_delete_after_unseen_edit(void **state)
{
	struct fx *f = *state;
	struct fx_dev a;
	struct fx_dev b;
	struct gs_store_push_out out;
	char hh[2][64];

	fx_dev_init(f, &a, "dev-a", f->gw, NULL, NULL);
	fx_dev_init(f, &b, "dev-b", f->gw, NULL, NULL);
	fx_pull(f, &a);
	fx_pull(f, &b);
	for (int k = 0; k < 2; k++)
		fx_text(gs__device_db(a.dev),
			k == 0 ? "SELECT id FROM household WHERE deleted = 0"
				 " ORDER BY id LIMIT 1"
			       : "SELECT id FROM household WHERE deleted = 0"
				 " ORDER BY id LIMIT 1 OFFSET 1",
			NULL, hh[k], sizeof(hh[k]));
	f->now = T0 + 1000;
	edit(&b, "household", hh[0], "note", "b, not seen by a");
	edit(&b, "household", hh[1], "note", "b, seen by a");
	push_ok(f, &b, &out);
	gs__store_push_out_fini(&out);
	/* a deletes hh[0] without having pulled b's edit. */
	f->now = T0 + 2000;
	assert_gs_ok(gs_household_delete(a.dev, hh[0]));
	a.sd.cursor = a.cursor;
	push_ok(f, &a, &out);
	assert_int_equal(out.n_conflicts, 1);
	assert_string_equal(out.conflicts[0].column, "deleted");
	assert_string_equal(out.conflicts[0].winner.device_id, "dev-a");
	assert_string_equal(out.conflicts[0].loser.device_id, "dev-b");
	gs__store_push_out_fini(&out);
	/* a pulls b's edit of hh[1], then deletes it: no conflict. */
	fx_pull(f, &a);
	assert_gs_ok(gs_household_delete(a.dev, hh[1]));
	a.sd.cursor = a.cursor;
	push_ok(f, &a, &out);
	assert_int_equal(out.n_conflicts, 0);
	gs__store_push_out_fini(&out);
	assert_int_equal(pulled_conflicts(f, &b, "deleted", NULL, 0), 1);
	fx_dev_fini(&a);
	fx_dev_fini(&b);
}

/* More conflicts than one Changes carries: the pulls split them (rows
 * stop before the first one left out) and every one arrives once. */
static void many_conflicts_reach_the_loser(void **state)
{
	struct fx *f = *state;
	struct fx_dev a;
	struct fx_dev b;
	struct gs_store_push_out out;
	static uint64_t ids[4096];
	int64_t lost;

	fx_dev_init(f, &a, "dev-a", f->gw, NULL, NULL);
	fx_dev_init(f, &b, "dev-b", f->gw, NULL, NULL);
	f->now = T0 + 1000;
	raw_write(f, &a,
		  "UPDATE household SET note = 'a', tenure = 'a', size = 91"
		  " WHERE deleted = 0; UPDATE resident SET employment = 'a'"
		  " WHERE deleted = 0");
	f->now = T0 + 2000;
	raw_write(f, &b,
		  "UPDATE household SET note = 'b', tenure = 'b', size = 92"
		  " WHERE deleted = 0; UPDATE resident SET employment = 'b'"
		  " WHERE deleted = 0");
	push_ok(f, &a, &out);
	gs__store_push_out_fini(&out);
	push_ok(f, &b, &out);
	gs__store_push_out_fini(&out);
	lost = store_int(f,
			 "SELECT count(*) FROM srv_conflict WHERE device_id ="
			 " 'dev-a'",
			 NULL);
	if (lost <= 128 || lost >= 4096)
		fail_msg("%lld conflicts: the fixture needs 129..4095",
			 (long long)lost);
	assert_int_equal(pulled_conflicts(f, &a, NULL, ids, 4096),
			 (size_t)lost);
	assert_int_equal(pulled_conflicts(f, &a, NULL, NULL, 0), 0);
	fx_dev_fini(&a);
	fx_dev_fini(&b);
}

static void lww_different_columns(void **state)
{
	struct fx *f = *state;
	struct fx_dev a;
	struct fx_dev b;
	struct gs_store_push_out out;
	char hh[GS_UUID_LEN];
	char buf[256];

	fx_dev_init(f, &a, "dev-a", f->gw, NULL, NULL);
	fx_dev_init(f, &b, "dev-b", f->gw, NULL, NULL);
	fx_household(&a, hh);
	f->now = T0 + 2000;
	edit(&a, "household", hh, "note", "A");
	f->now = T0 + 1000;
	edit(&b, "household", hh, "size", "7");
	push_ok(f, &a, &out);
	gs__store_push_out_fini(&out);
	push_ok(f, &b, &out);
	/* updated_at/updated_by differ too, but bookkeeping never counts as
	 * a conflict. */
	assert_int_equal(out.n_conflicts, 0);
	gs__store_push_out_fini(&out);
	assert_string_equal(store_text(f,
				       "SELECT note || '/' || size FROM"
				       " household WHERE id = ?",
				       hh, buf, sizeof(buf)),
			    "A/7");
	/* The row's hlc is its newest write (A's), and B's column has a
	 * clock of its own. */
	assert_int_equal(store_int(f,
				   "SELECT count(*) FROM srv_clock WHERE"
				   " tbl = 'household' AND pk = ? AND"
				   " col = 'size' AND device = 'dev-b'",
				   hh),
			 1);
	assert_int_equal(
		store_int(f, "SELECT count(*) FROM srv_conflict", NULL), 0);
	fx_dev_fini(&a);
	fx_dev_fini(&b);
}

/* A resident nobody's tag points at (so a device may delete it). */
static void untagged_resident(struct fx_dev *d, char *id, size_t cap)
{
	fx_text(gs__device_db(d->dev),
		"SELECT id FROM resident WHERE id NOT IN (SELECT resident_id"
		" FROM resident_tag) ORDER BY id LIMIT 1",
		NULL, id, cap);
	assert_true(id[0] != '\0');
}

static void delete_vs_update(void **state)
{
	struct fx *f = *state;
	struct fx_dev a;
	struct fx_dev b;
	struct gs_store_push_out out;
	char r[64];
	char sql[256];
	char buf[256];
	const struct gs_conflict *c;
	uint64_t ids[4];
	uint64_t ack_id;

	fx_dev_init(f, &a, "dev-a", f->gw, NULL, NULL);
	fx_dev_init(f, &b, "dev-b", f->gw, NULL, NULL);
	untagged_resident(&a, r, sizeof(r));
	f->now = T0 + 1000;
	edit(&b, "resident", r, "employment", "测试职业");
	f->now = T0 + 2000;
	snprintf(sql, sizeof(sql), "DELETE FROM resident WHERE id = '%s'", r);
	raw_write(f, &a, sql);

	/* The update arrives first, then the delete that did not see it:
	 * the tombstone wins (nobody else wrote "deleted"), the edit stays
	 * on the tombstone, and the conflict names both writes. */
	push_ok(f, &b, &out);
	gs__store_push_out_fini(&out);
	push_ok(f, &a, &out);
	assert_int_equal(out.n_conflicts, 1);
	c = &out.conflicts[0];
	assert_string_equal(c->table, "resident");
	assert_string_equal(c->column, "deleted");
	assert_string_equal(c->winner.device_id, "dev-a");
	assert_memory_equal(c->winner.value, "1", 1);
	assert_string_equal(c->loser.device_id, "dev-b");
	assert_int_equal(GS_HLC_MS(c->loser.hlc), T0 + 1000);
	gs__store_push_out_fini(&out);
	assert_string_equal(store_text(f,
				       "SELECT deleted || employment FROM"
				       " resident WHERE id = ?",
				       r, buf, sizeof(buf)),
			    "1测试职业");

	/* A later edit of the deleted row is kept on the tombstone and its
	 * device learns that the row is gone. */
	f->now = T0 + 3000;
	edit(&b, "resident", r, "education", "大学");
	push_ok(f, &b, &out);
	assert_int_equal(out.n_conflicts, 1);
	assert_string_equal(out.conflicts[0].column, "deleted");
	assert_string_equal(out.conflicts[0].winner.device_id, "dev-a");
	assert_string_equal(out.conflicts[0].loser.device_id, "dev-b");
	ack_id = out.conflicts[0].id;
	gs__store_push_out_fini(&out);
	assert_int_equal(
		store_int(f, "SELECT deleted FROM resident WHERE id = ?", r),
		1);
	/* Devices receive the tombstone. The editor's pull tells it of both
	 * edits that met the tombstone: the one whose delete arrived later
	 * (its ack could not say) and, again, the one its ack told (the
	 * device keeps each id once). */
	assert_int_equal(pulled_conflicts(f, &b, "deleted", ids, 4), 2);
	assert_true(ids[0] == ack_id || ids[1] == ack_id);
	assert_int_equal(fx_int(gs__device_db(b.dev),
				"SELECT deleted FROM resident WHERE id = ?", r),
			 1);
	fx_dev_fini(&a);
	fx_dev_fini(&b);
}

/* A device whose clock runs a year ahead cannot win every later write. */
static void future_clock_clamped(void **state)
{
	struct fx *f = *state;
	struct fx_dev a;
	struct fx_dev b;
	struct gs_store_push_out out;
	char hh[GS_UUID_LEN];
	char buf[256];

	fx_dev_init(f, &a, "dev-a", f->gw, NULL, NULL);
	fx_dev_init(f, &b, "dev-b", f->gw, NULL, NULL);
	fx_household(&a, hh);
	f->now = T0 + 365LL * 86400000;
	edit(&a, "household", hh, "note", "from the future");
	f->now = T0;
	push_ok(f, &a, &out);
	gs__store_push_out_fini(&out);
	/* Stamped at most 5 minutes ahead of the server. */
	assert_true(store_int(f,
			      "SELECT hlc FROM srv_clock WHERE tbl ="
			      " 'household' AND col = 'note' AND pk = ?",
			      hh) <= (int64_t)gs__hlc_make(T0 + 300000, 0));
	f->now = T0 + 600000;
	edit(&b, "household", hh, "note", "ten minutes later");
	push_ok(f, &b, &out);
	gs__store_push_out_fini(&out);
	assert_string_equal(
		store_text(f, "SELECT note FROM household WHERE id = ?", hh,
			   buf, sizeof(buf)),
		"ten minutes later");
	fx_dev_fini(&a);
	fx_dev_fini(&b);
}

/*
 * A device 10 minutes fast edits the same column twice (two entries, one
 * push: both are clamped to the server's now + 5 minutes), then again in
 * two pushes at the same server time, then once more after the server's
 * clock stepped back (the clamp falls below the stamps given). Each time
 * its last edit must stand: a clamped entry stays after the device's own
 * earlier entries.
 */
static void fast_clock_keeps_own_order(void **state)
{
	struct fx *f = *state;
	struct fx_dev a;
	struct fx_dev b;
	struct gs_store_push_out out;
	char hh[GS_UUID_LEN];
	char buf[256];
	int64_t h1;
	int64_t h2;

	fx_dev_init(f, &a, "dev-a", f->gw, NULL, NULL);
	fx_dev_init(f, &b, "dev-b", f->gw, NULL, NULL);
	fx_household(&a, hh);
	push_ok(f, &a, &out);
	gs__store_push_out_fini(&out);
	/* One push, two entries. */
	f->now = T0 + 600000;
	edit(&a, "household", hh, "note", "first");
	f->now += 1000;
	edit(&a, "household", hh, "note", "second");
	f->now = T0;
	push_ok(f, &a, &out);
	assert_int_equal(out.n_conflicts, 0);
	gs__store_push_out_fini(&out);
	assert_string_equal(
		store_text(f, "SELECT note FROM household WHERE id = ?", hh,
			   buf, sizeof(buf)),
		"second");
	/* Two pushes within the same server millisecond. */
	f->now = T0 + 602000;
	edit(&a, "household", hh, "note", "third");
	f->now = T0;
	push_ok(f, &a, &out);
	gs__store_push_out_fini(&out);
	h1 = store_int(f,
		       "SELECT hlc FROM srv_clock WHERE tbl = 'household'"
		       " AND col = 'note' AND pk = ?",
		       hh);
	f->now = T0 + 603000;
	edit(&a, "household", hh, "note", "fourth");
	f->now = T0;
	push_ok(f, &a, &out);
	assert_int_equal(out.n_conflicts, 0);
	gs__store_push_out_fini(&out);
	assert_string_equal(
		store_text(f, "SELECT note FROM household WHERE id = ?", hh,
			   buf, sizeof(buf)),
		"fourth");
	h2 = store_int(f,
		       "SELECT hlc FROM srv_clock WHERE tbl = 'household'"
		       " AND col = 'note' AND pk = ?",
		       hh);
	assert_true(h2 > h1);
	/* Still clamped: at most a few counter steps past now + 5 min. */
	assert_true(h2 < (int64_t)gs__hlc_make(T0 + 300000 + 1, 0));
	/* The server's clock is stepped back a minute: the clamp now lies
	 * below the stamps already given, and the next edit still wins. */
	f->now = T0 + 604000;
	edit(&a, "household", hh, "note", "fifth");
	f->now = T0 - 60000;
	push_ok(f, &a, &out);
	assert_int_equal(out.n_conflicts, 0);
	gs__store_push_out_fini(&out);
	assert_string_equal(
		store_text(f, "SELECT note FROM household WHERE id = ?", hh,
			   buf, sizeof(buf)),
		"fifth");
	/* Another device's concurrent edit with an honest clock still
	 * loses to the clamped stamps (they are 5 minutes ahead): the
	 * device's own order is all that changed. */
	f->now = T0 + 2000;
	edit(&b, "household", hh, "note", "other device");
	push_ok(f, &b, &out);
	assert_int_equal(out.n_conflicts, 1);
	gs__store_push_out_fini(&out);
	assert_string_equal(
		store_text(f, "SELECT note FROM household WHERE id = ?", hh,
			   buf, sizeof(buf)),
		"fifth");
	fx_dev_fini(&a);
	fx_dev_fini(&b);
}

/* Only device-sourced tags are a device's to change; restricted ones are
 * never written by a device. */
static void tag_rules(void **state)
{
	struct fx *f = *state;
	struct fx_dev a;
	struct gs_store_push_out out;
	char tag[64];
	char r[64];
	char sql[512];

	fx_dev_init(f, &a, "dev-a", f->gw, NULL, NULL);
	fx_text(gs__device_db(a.dev),
		"SELECT id FROM resident_tag WHERE source <> 'device' LIMIT 1",
		NULL, tag, sizeof(tag));
	assert_true(tag[0] != '\0');
	snprintf(sql, sizeof(sql),
		 "UPDATE resident_tag SET grade = 'x' WHERE id = '%s'", tag);
	raw_write(f, &a, sql);
	untagged_resident(&a, r, sizeof(r));
	snprintf(sql, sizeof(sql),
		 "INSERT INTO resident_tag (id, resident_id, tag_code, source,"
		 " hlc, origin) SELECT '0190bbbb-0000-7000-8000-000000000001',"
		 " '%s', code, 'device', '0000000000000001', 'dev-a' FROM"
		 " tag_def WHERE sensitivity = 'restricted' LIMIT 1",
		 r);
	raw_write(f, &a, sql);
	fx_push(f, &a, &out);
	assert_int_equal(out.n_results, 2);
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(out.results[i].result, GS_RESULT_REJECTED);
		assert_int_equal(out.results[i].reject_code, GS_REJECT_DENIED);
	}
	assert_non_null(strstr(out.results[1].reason, "restricted"));
	gs__store_push_out_fini(&out);
	fx_dev_fini(&a);
}

/* ---- class S: work orders ---------------------------------------------- */

struct flow {
	struct fx_dev gw;
	struct fx_dev cs;
	char hh[GS_UUID_LEN];
	char is[GS_ID_LEN];
};

/* A grid worker reports; the community centre accepts and dispatches it
 * to that worker, who pulls it; returns with the issue dispatched. */
static void flow_to_dispatched(struct fx *f, struct flow *w)
{
	struct gs_store_push_out out;
	char state[32];
	int64_t rev;

	fx_dev_init(f, &w->gw, "dev-gw", f->gw, NULL, NULL);
	fx_dev_init(f, &w->cs, "dev-cs", f->cs, "CS", "510114001001");
	assert_int_equal(w->cs.sd.role, GS_ROLE_CS);
	fx_household(&w->gw, w->hh);
	fx_report(&w->gw, w->hh, w->is);
	push_ok(f, &w->gw, &out);
	gs__store_push_out_fini(&out);
	fx_pull(f, &w->cs);
	fx_move(&w->cs, w->is, "accepted", NULL, GS_OK);
	fx_move(&w->cs, w->is, "dispatched", f->gw, GS_OK);
	push_ok(f, &w->cs, &out);
	gs__store_push_out_fini(&out);
	fx_issue_state(f, w->is, state, sizeof(state), &rev);
	assert_string_equal(state, "dispatched");
	assert_int_equal(rev, 3);
	{
		char who[64];

		assert_string_equal(store_text(f,
					       "SELECT assignee_worker_id FROM"
					       " issue WHERE id = ?",
					       w->is, who, sizeof(who)),
				    f->gw);
	}
	fx_pull(f, &w->gw);
}

static void flow_fini(struct flow *w)
{
	fx_dev_fini(&w->gw);
	fx_dev_fini(&w->cs);
}

static void issue_lifecycle(void **state)
{
	struct fx *f = *state;
	struct flow w;
	struct gs_store_push_out out;
	char st[32];
	char buf[64];
	char got[65];
	int64_t rev;

	flow_to_dispatched(f, &w);
	/* Offline on the grid worker's device: sign, handle, verify. */
	fx_move(&w.gw, w.is, "in_progress", NULL, GS_OK);
	fx_move(&w.gw, w.is, "handled", NULL, GS_OK);
	fx_move(&w.gw, w.is, "verified", NULL, GS_OK);
	push_ok(f, &w.gw, &out);
	gs__store_push_out_fini(&out);
	fx_issue_state(f, w.is, st, sizeof(st), &rev);
	assert_string_equal(st, "verified");
	assert_int_equal(rev, 6);
	fx_pull(f, &w.cs);
	fx_move(&w.cs, w.is, "closed", NULL, GS_OK);
	push_ok(f, &w.cs, &out);
	gs__store_push_out_fini(&out);
	fx_issue_state(f, w.is, st, sizeof(st), &rev);
	assert_string_equal(st, "closed");
	assert_int_equal(rev, 7);
	assert_true(
		strlen(store_text(f, "SELECT closed_at FROM issue WHERE id = ?",
				  w.is, buf, sizeof(buf))) > 0);
	/* Every event applied, in the order the issue went. */
	assert_int_equal(store_int(f,
				   "SELECT count(*) FROM issue_event WHERE"
				   " issue_id = ? AND apply_status = 'applied'",
				   w.is),
			 8);
	/* Both devices converge on the canonical issue and events. */
	fx_pull(f, &w.gw);
	fx_pull(f, &w.cs);
	assert_string_equal(
		fx_text(gs__device_db(w.gw.dev),
			"SELECT state || state_rev || closed_at FROM issue"
			" WHERE id = ?",
			w.is, buf, sizeof(buf)),
		store_text(f,
			   "SELECT state || state_rev || closed_at FROM issue"
			   " WHERE id = ?",
			   w.is, got, sizeof(got)));
	assert_int_equal(fx_int(gs__device_db(w.cs.dev),
				"SELECT count(*) FROM issue_event WHERE"
				" apply_status = 'applied'",
				NULL),
			 8);
	flow_fini(&w);
}

static void stale_move_after_close(void **state)
{
	struct fx *f = *state;
	struct flow w;
	struct fx_dev g2;
	struct gs_store_push_out out;
	char st[32];
	char buf[64];
	int64_t rev;

	flow_to_dispatched(f, &w);
	fx_move(&w.gw, w.is, "in_progress", NULL, GS_OK);
	fx_move(&w.gw, w.is, "handled", NULL, GS_OK);
	push_ok(f, &w.gw, &out);
	gs__store_push_out_fini(&out);
	/* A second device of the same worker saw it handled... */
	fx_dev_init(f, &g2, "dev-gw2", f->gw, NULL, NULL);
	fx_pull(f, &g2);
	/* ...the first verifies, the centre closes... */
	fx_move(&w.gw, w.is, "verified", NULL, GS_OK);
	push_ok(f, &w.gw, &out);
	gs__store_push_out_fini(&out);
	fx_pull(f, &w.cs);
	fx_move(&w.cs, w.is, "closed", NULL, GS_OK);
	push_ok(f, &w.cs, &out);
	gs__store_push_out_fini(&out);
	/* ...and the second, offline all along, sends the work back. */
	fx_move(&g2, w.is, "dispatched", NULL, GS_OK);
	push_ok(f, &g2, &out); /* applied as an entry ... */
	gs__store_push_out_fini(&out);
	/* ... but the move is stale: the issue stays closed. */
	fx_issue_state(f, w.is, st, sizeof(st), &rev);
	assert_string_equal(st, "closed");
	assert_int_equal(rev, 7);
	assert_string_equal(store_text(f,
				       "SELECT apply_status || '/' ||"
				       " reject_reason FROM issue_event WHERE"
				       " issue_id = ? AND origin = 'dev-gw2'",
				       w.is, buf, sizeof(buf)),
			    "rejected_stale/terminal");
	/* The stale device pulls the canonical issue and its verdict. */
	fx_pull(f, &g2);
	assert_string_equal(fx_text(gs__device_db(g2.dev),
				    "SELECT state FROM issue WHERE id = ?",
				    w.is, buf, sizeof(buf)),
			    "closed");
	assert_string_equal(fx_text(gs__device_db(g2.dev),
				    "SELECT apply_status FROM issue_event"
				    " WHERE issue_id = ? AND origin ="
				    " 'dev-gw2'",
				    w.is, buf, sizeof(buf)),
			    "rejected_stale");
	fx_dev_fini(&g2);
	flow_fini(&w);
}

static void verify_vs_redispatch(void **state)
{
	struct fx *f = *state;
	struct flow w;
	struct fx_dev sc;
	struct gs_store_push_out out;
	char sc_worker[GS_UUID_LEN];
	char st[32];
	char buf[64];
	int64_t rev;

	flow_to_dispatched(f, &w);
	fx_move(&w.gw, w.is, "in_progress", NULL, GS_OK);
	fx_move(&w.gw, w.is, "handled", NULL, GS_OK);
	push_ok(f, &w.gw, &out);
	gs__store_push_out_fini(&out);
	/* The street centre re-dispatches (rule 20) while the worker, who
	 * saw "handled", verifies offline. */
	assert_gs_ok(gs__synth_pick_worker(f->ctx, gs__store_db(f->st), "SC",
					   NULL, sc_worker));
	fx_dev_init(f, &sc, "dev-sc", sc_worker, "SC", "510114001001");
	fx_pull(f, &sc);
	fx_move(&sc, w.is, "dispatched", NULL, GS_OK);
	fx_move(&w.gw, w.is, "verified", NULL, GS_OK);
	push_ok(f, &sc, &out);
	gs__store_push_out_fini(&out);
	push_ok(f, &w.gw, &out);
	gs__store_push_out_fini(&out);
	fx_issue_state(f, w.is, st, sizeof(st), &rev);
	assert_string_equal(st, "dispatched");
	assert_int_equal(rev, 6);
	assert_string_equal(store_text(f,
				       "SELECT apply_status || '/' ||"
				       " reject_reason FROM issue_event WHERE"
				       " issue_id = ? AND to_state ="
				       " 'verified'",
				       w.is, buf, sizeof(buf)),
			    "needs_review/concurrent");
	fx_dev_fini(&sc);
	flow_fini(&w);
}

/* Moves the rule table forbids are recorded as such; an event that lies
 * about its actor's role is refused whole. The issue does not move. */
static void forbidden_moves(void **state)
{
	struct fx *f = *state;
	struct fx_dev a;
	struct gs_store_push_out out;
	char hh[GS_UUID_LEN];
	char is[GS_ID_LEN];
	char sql[1024];
	char st[32];
	int64_t rev;
	static const char *const bad[][2] = {
		{ "accepted", "GW" },  /* a grid worker cannot accept */
		{ "cancelled", "CS" }, /* the event lies about the role */
	};

	fx_dev_init(f, &a, "dev-a", f->gw, NULL, NULL);
	fx_household(&a, hh);
	fx_report(&a, hh, is);
	push_ok(f, &a, &out);
	gs__store_push_out_fini(&out);
	for (size_t i = 0; i < 2; i++) {
		snprintf(sql, sizeof(sql),
			 "INSERT INTO issue_event (id, issue_id, kind,"
			 " from_state, to_state, base_rev, actor_worker_id,"
			 " actor_role, device_time, hlc, origin) VALUES"
			 " ('0190cccc-0000-7000-8000-00000000000%zu', '%s',"
			 " 'transition', 'reported', '%s', 1, '%s', '%s',"
			 " '2025-03-01T08:30:00.000Z', '0000000000000001',"
			 " 'dev-a')",
			 i, is, bad[i][0], f->gw, bad[i][1]);
		raw_write(f, &a, sql);
	}
	fx_push(f, &a, &out);
	assert_int_equal(out.n_results, 2);
	assert_int_equal(out.results[0].result, GS_RESULT_APPLIED);
	assert_int_equal(out.results[1].result, GS_RESULT_REJECTED);
	assert_int_equal(out.results[1].reject_code, GS_REJECT_DENIED);
	assert_non_null(strstr(out.results[1].reason, "(rule: actor)"));
	gs__store_push_out_fini(&out);
	fx_issue_state(f, is, st, sizeof(st), &rev);
	assert_string_equal(st, "reported");
	assert_int_equal(rev, 1);
	assert_int_equal(store_int(f,
				   "SELECT count(*) FROM issue_event WHERE"
				   " issue_id = ? AND apply_status ="
				   " 'rejected_stale' AND reject_reason ="
				   " 'forbidden'",
				   is),
			 1);
	fx_dev_fini(&a);
}

/* An issue must be born through a creation its device may make. */
static void issue_without_creation_rejected(void **state)
{
	struct fx *f = *state;
	struct fx_dev a;
	struct gs_store_push_out out;
	char hh[GS_UUID_LEN];
	char is[GS_ID_LEN];
	char sql[256];
	char h0[65];
	char h1[65];

	fx_dev_init(f, &a, "dev-a", f->gw, NULL, NULL);
	fx_household(&a, hh);
	fx_report(&a, hh, is);
	/* Keep only the issue row of the report's entry. */
	snprintf(sql, sizeof(sql),
		 "DELETE FROM issue_event WHERE issue_id = '%s'", is);
	raw_write(f, &a, sql);
	assert_gs_ok(gs__store_scope_hash(f->st, NULL, h0));
	{
		struct fx_entries es;
		struct gs_store_entry e;
		sqlite3_changegroup *g = NULL;
		int n = 0;
		void *bytes = NULL;
		uint8_t sha[GS_SHA256_LEN];

		/* Combine both local entries (trusted, our own) into one: the
		 * issue without its events. */
		fx_outbox(&a, 0, &es);
		assert_int_equal(sqlite3changegroup_new(&g), SQLITE_OK);
		for (size_t i = 0; i < es.n; i++)
			assert_int_equal(sqlite3changegroup_add(
						 g, (int)es.e[i].len,
						 (void *)es.e[i].changeset),
					 SQLITE_OK);
		assert_int_equal(sqlite3changegroup_output(g, &n, &bytes),
				 SQLITE_OK);
		sqlite3changegroup_delete(g);
		gs__sha256(sha, bytes, (size_t)n);
		e.device_seq = 1;
		e.hlc = es.e[0].hlc;
		e.changeset = bytes;
		e.len = (size_t)n;
		e.sha256 = sha;
		assert_gs_ok(gs__store_push(f->st, &a.sd, &e, 1, &out));
		sqlite3_free(bytes);
		fx_entries_free(&es);
	}
	assert_int_equal(out.results[0].result, GS_RESULT_REJECTED);
	assert_int_equal(out.results[0].reject_code, GS_REJECT_STATE);
	gs__store_push_out_fini(&out);
	assert_gs_ok(gs__store_scope_hash(f->st, NULL, h1));
	assert_string_equal(h1, h0);
	fx_dev_fini(&a);
}

/* ---- scope moves, composite keys, owners, constraints ------------------ */

/* A household moved to another grid takes its residents and tags along:
 * they are republished under the new grid, so a device of that grid
 * pulls them and its content equals the store's view of its scope. */
static void household_move_republishes(void **state)
{
	struct fx *f = *state;
	struct fx_dev c;
	struct gs_store_push_out out;
	struct gs_store_device g2;
	char hh[GS_UUID_LEN];
	char from[64];
	char to[64];
	char to_code[64];
	char want[65];
	char got[65];
	sqlite3 *db = gs__store_db(f->st);
	sqlite3 *fresh = NULL;
	uint64_t cursor = 0;
	int64_t before;

	fx_dev_init(f, &c, "dev-cs", f->cs, NULL, "510114001001");
	fx_text(db,
		"SELECT household_id FROM resident r JOIN resident_tag t ON"
		" t.resident_id = r.id GROUP BY household_id ORDER BY"
		" household_id LIMIT 1",
		NULL, hh, sizeof(hh));
	assert_true(strlen(hh) == GS_UUID_LEN - 1);
	fx_text(db, "SELECT grid_id FROM household WHERE id = ?", hh, from,
		sizeof(from));
	fx_text(db,
		"SELECT id FROM grid WHERE level = 'micro' AND id <> ? ORDER"
		" BY code LIMIT 1",
		from, to, sizeof(to));
	fx_text(db, "SELECT code FROM grid WHERE id = ?", to, to_code,
		sizeof(to_code));
	before = fx_int(db,
			"SELECT max(server_seq) FROM resident WHERE"
			" household_id = ?",
			hh);
	edit(&c, "household", hh, "grid_id", to);
	push_ok(f, &c, &out);
	gs__store_push_out_fini(&out);
	/* Every resident and tag of the household: a new seq, the new
	 * grid. */
	assert_int_equal(fx_int(db,
				"SELECT count(*) FROM resident r JOIN"
				" srv_change x ON x.tbl = 'resident' AND"
				" x.pk = r.id WHERE r.household_id = ?1 AND"
				" (x.grid_id <> (SELECT grid_id FROM household"
				" WHERE id = ?1) OR r.server_seq <= ?2 OR"
				" x.server_seq <> r.server_seq)",
				hh),
			 0);
	assert_true(fx_int(db,
			   "SELECT min(server_seq) FROM resident WHERE"
			   " household_id = ?",
			   hh) > before);
	assert_int_equal(fx_int(db,
				"SELECT count(*) FROM resident_tag t JOIN"
				" resident r ON r.id = t.resident_id JOIN"
				" srv_change x ON x.tbl = 'resident_tag' AND"
				" x.pk = t.id WHERE r.household_id = ? AND"
				" x.grid_id = (SELECT grid_id FROM household"
				" WHERE id = r.household_id)",
				hh),
			 fx_int(db,
				"SELECT count(*) FROM resident_tag t JOIN"
				" resident r ON r.id = t.resident_id WHERE"
				" r.household_id = ?",
				hh));
	/* A device of the new grid pulls exactly its scope. */
	assert_gs_ok(gs__store_enroll(f->st, "dev-g2", f->gw, to_code, &g2));
	assert_gs_ok(gs__db_open(&fresh, f->ctx, gs_test_path(f->dir, "g2.db"),
				 GS_DB_CREATE));
	assert_gs_ok(gs__db_migrate(f->ctx, fresh));
	fx_pull_into(f, &g2, &cursor, 1u << 15, fresh);
	assert_gs_ok(gs__store_scope_hash(f->st, &g2, want));
	assert_gs_ok(gs__db_content_hash(f->ctx, fresh, got));
	assert_string_equal(got, want);
	assert_true(fx_int(fresh,
			   "SELECT count(*) FROM resident WHERE"
			   " household_id = ?",
			   hh) > 0);
	gs__db_close(fresh);
	fx_dev_fini(&c);
}

/* A row with a two-column key (mobilization_result), scoped through its
 * household; a row naming a task the server does not hold is refused as
 * a reference, and one breaking a constraint of the schema by the
 * schema itself. */
static void composite_key_and_constraint(void **state)
{
	struct fx *f = *state;
	struct fx_dev a;
	struct gs_store_push_out out;
	char hh[GS_UUID_LEN];
	char sql[1024];
	char pk[256];
	char want[256];
	sqlite3 *db = gs__store_db(f->st);

	fx_dev_init(f, &a, "dev-a", f->gw, NULL, NULL);
	fx_household(&a, hh);
	/* A task the server issued (reference data, written directly). */
	snprintf(sql, sizeof(sql),
		 "INSERT INTO mobilization_task (id, title, grid_id,"
		 " issued_at, deadline_at) SELECT 'task-1', '3小时入户',"
		 " grid_id, '2025-03-01T08:00:00.000Z',"
		 " '2025-03-01T11:00:00.000Z' FROM household WHERE id = '%s'",
		 hh);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_exec(gs__device_db(a.dev),
				      "PRAGMA foreign_keys=OFF", NULL, NULL,
				      NULL),
			 SQLITE_OK);
	for (int i = 0; i < 2; i++) {
		snprintf(sql, sizeof(sql),
			 "INSERT INTO mobilization_result (task_id,"
			 " household_id, status, at, hlc, origin) VALUES"
			 " ('%s', '%s', 'done', '2025-03-01T09:35:00.000Z',"
			 " '0000000000000001', 'dev-a')",
			 i == 0 ? "task-1" : "task-missing", hh);
		raw_write(f, &a, sql);
	}
	/* A tag the district does not define. */
	snprintf(sql, sizeof(sql),
		 "INSERT INTO resident_tag (id, resident_id, tag_code, source,"
		 " hlc, origin) SELECT 'tag-x', id, 'no-such-tag', 'device',"
		 " '0000000000000001', 'dev-a' FROM resident ORDER BY id"
		 " LIMIT 1");
	raw_write(f, &a, sql);
	fx_push(f, &a, &out);
	assert_int_equal(out.n_results, 3);
	assert_int_equal(out.results[0].result, GS_RESULT_APPLIED);
	assert_int_equal(out.results[1].result, GS_RESULT_REJECTED);
	assert_int_equal(out.results[1].reject_code, GS_REJECT_DENIED);
	assert_non_null(strstr(out.results[1].reason, "(rule: reference)"));
	assert_int_equal(out.results[2].result, GS_RESULT_REJECTED);
	assert_int_equal(out.results[2].reject_code, GS_REJECT_MALFORMED);
	assert_non_null(strstr(out.results[2].reason, "constraint"));
	gs__store_push_out_fini(&out);
	fx_text(db, "SELECT json_array('task-1', ?)", hh, want, sizeof(want));
	assert_string_equal(fx_text(db,
				    "SELECT pk FROM srv_change WHERE tbl ="
				    " 'mobilization_result'",
				    NULL, pk, sizeof(pk)),
			    want);
	assert_int_equal(fx_int(db,
				"SELECT count(*) FROM srv_change WHERE tbl ="
				" 'mobilization_result' AND grid_id = (SELECT"
				" grid_id FROM household WHERE id = ?)",
				hh),
			 1);
	fx_dev_fini(&a);
}

/* Attachments are scoped by their owner; an owner that is reference
 * data is refused. */
static void attachment_by_owner(void **state)
{
	struct fx *f = *state;
	struct fx_dev a;
	struct gs_store_push_out out;
	char hh[GS_UUID_LEN];
	char v[GS_ID_LEN];
	char sql[1024];
	sqlite3 *db = gs__store_db(f->st);

	fx_dev_init(f, &a, "dev-a", f->gw, NULL, NULL);
	fx_household(&a, hh);
	fx_visit(&a, hh, v);
	for (int i = 0; i < 2; i++) {
		snprintf(sql, sizeof(sql),
			 "INSERT INTO attachment (id, owner_table, owner_id,"
			 " kind, mime, bytes, sm3, hlc, origin) VALUES"
			 " ('0190dddd-0000-7000-8000-00000000000%d', '%s',"
			 " %s, 'photo_before', 'image/jpeg', 1234, 'ab12',"
			 " '0000000000000001', 'dev-a')",
			 i, i == 0 ? "visit" : "grid",
			 i == 0 ? "(SELECT id FROM visit LIMIT 1)"
				: "(SELECT id FROM grid LIMIT 1)");
		raw_write(f, &a, sql);
	}
	fx_push(f, &a, &out);
	assert_int_equal(out.results[0].result, GS_RESULT_APPLIED);
	assert_int_equal(out.results[1].result, GS_RESULT_APPLIED);
	assert_int_equal(out.results[2].result, GS_RESULT_REJECTED);
	assert_int_equal(out.results[2].reject_code, GS_REJECT_DENIED);
	gs__store_push_out_fini(&out);
	assert_int_equal(fx_int(db,
				"SELECT count(*) FROM srv_change x JOIN visit v"
				" ON v.id = ? WHERE x.tbl = 'attachment' AND"
				" x.grid_id = v.grid_id",
				v),
			 1);
	fx_dev_fini(&a);
}

/* ---- authorization of every field a device writes ------------------------ */

/* raw_write with the device's foreign keys off: a modified client can
 * name rows its database does not hold. */
static void raw_write_nofk(struct fx *f, struct fx_dev *d, const char *sql)
{
	sqlite3 *db = gs__device_db(d->dev);

	assert_int_equal(
		sqlite3_exec(db, "PRAGMA foreign_keys = OFF", NULL, NULL, NULL),
		SQLITE_OK);
	raw_write(f, d, sql);
	assert_int_equal(
		sqlite3_exec(db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL),
		SQLITE_OK);
}

/* Push d's pending entries (one) and expect it refused under rule, the
 * server's replicated rows unchanged. */
static void push_refused(struct fx *f, struct fx_dev *d, const char *rule)
{
	struct gs_store_push_out out;
	char h0[65];
	char h1[65];
	char want[64];

	assert_gs_ok(gs__store_scope_hash(f->st, NULL, h0));
	fx_push(f, d, &out);
	assert_int_equal(out.n_results, 1);
	if (out.results[0].result != GS_RESULT_REJECTED)
		fail_msg("entry %llu was not refused (want rule %s)",
			 (unsigned long long)out.results[0].device_seq, rule);
	assert_int_equal(out.results[0].reject_code, GS_REJECT_DENIED);
	snprintf(want, sizeof(want), "(rule: %s)", rule);
	if (strstr(out.results[0].reason, want) == NULL)
		fail_msg("reason '%s' does not name %s", out.results[0].reason,
			 want);
	gs__store_push_out_fini(&out);
	assert_gs_ok(gs__store_scope_hash(f->st, NULL, h1));
	assert_string_equal(h1, h0);
}

/* A row id of table outside worker's assignments (by SQL on the store). */
static void foreign_row(struct fx *f,
			const char *table,
			const char *worker,
			char *out,
			size_t cap)
{
	char sql[512];

	snprintf(sql, sizeof(sql),
		 "SELECT id FROM %s WHERE grid_id IS NOT NULL AND grid_id NOT"
		 " IN (SELECT grid_id FROM assignment WHERE worker_id = ?)"
		 " ORDER BY id LIMIT 1",
		 table);
	store_text(f, sql, worker, out, cap);
	assert_true(out[0] != '\0');
}

/* Another grid worker sharing a grid with f->gw. */
static void second_gw(struct fx *f, char *out, size_t cap)
{
	store_text(
		f,
		"SELECT a2.worker_id FROM assignment a1 JOIN assignment a2"
		" ON a2.grid_id = a1.grid_id AND a2.worker_id <> a1.worker_id"
		" JOIN worker w ON w.id = a2.worker_id AND w.role = 'GW'"
		" WHERE a1.worker_id = ? ORDER BY a2.worker_id LIMIT 1",
		f->gw, out, cap);
	assert_true(out[0] != '\0');
}

/* Every reference a row carries must lie in the device's scope: a visit
 * of its own grid naming another grid's household, an issue naming a
 * household or place of another grid, a household moved onto a dwelling
 * of another grid. */
static void authz_references(void **state)
{
	struct fx *f = *state;
	struct fx_dev a;
	struct gs_store_push_out out;
	char hh[GS_UUID_LEN];
	char v[GS_ID_LEN];
	char is[GS_ID_LEN];
	char other[128];
	char sql[1024];
	char buf[128];

	fx_dev_init(f, &a, "dev-a", f->gw, NULL, NULL);
	fx_household(&a, hh);
	fx_visit(&a, hh, v);
	fx_report(&a, hh, is);
	push_ok(f, &a, &out);
	gs__store_push_out_fini(&out);

	foreign_row(f, "household", f->gw, other, sizeof(other));
	snprintf(sql, sizeof(sql),
		 "INSERT INTO visit (id, household_id, grid_id, worker_id,"
		 " kind, started_at, outcome, hlc, origin, created_at)"
		 " SELECT '0190dddd-0000-7000-8000-000000000001', '%s',"
		 " grid_id, worker_id, kind, started_at, outcome, hlc, origin,"
		 " created_at FROM visit WHERE id = '%s'",
		 other, v);
	raw_write_nofk(f, &a, sql);
	push_refused(f, &a, "reference");
	assert_int_equal(store_int(f,
				   "SELECT count(*) FROM visit WHERE id ="
				   " '0190dddd-0000-7000-8000-000000000001'",
				   NULL),
			 0);

	snprintf(sql, sizeof(sql),
		 "UPDATE issue SET household_id = '%s' WHERE id = '%s'", other,
		 is);
	raw_write_nofk(f, &a, sql);
	push_refused(f, &a, "reference");

	foreign_row(f, "place", f->gw, other, sizeof(other));
	snprintf(sql, sizeof(sql),
		 "UPDATE issue SET place_id = '%s' WHERE id = '%s'", other, is);
	raw_write_nofk(f, &a, sql);
	push_refused(f, &a, "reference");
	assert_string_equal(store_text(f,
				       "SELECT ifnull(place_id, '-') FROM issue"
				       " WHERE id = ?",
				       is, buf, sizeof(buf)),
			    "-");

	foreign_row(f, "dwelling", f->gw, other, sizeof(other));
	snprintf(sql, sizeof(sql),
		 "UPDATE household SET dwelling_id = '%s' WHERE id = '%s'",
		 other, hh);
	raw_write_nofk(f, &a, sql);
	push_refused(f, &a, "reference");

	/* A reference inside the scope is fine. */
	snprintf(sql, sizeof(sql),
		 "INSERT INTO visit (id, household_id, grid_id, worker_id,"
		 " kind, started_at, outcome, hlc, origin, created_at)"
		 " SELECT '0190dddd-0000-7000-8000-000000000002', household_id,"
		 " grid_id, worker_id, kind, started_at, outcome, hlc, origin,"
		 " created_at FROM visit WHERE id = '%s'",
		 v);
	raw_write(f, &a, sql);
	push_ok(f, &a, &out);
	gs__store_push_out_fini(&out);
	fx_dev_fini(&a);
}

/* Worker and author columns name the device's own worker; the author of
 * an insert is fixed after it. */
static void authz_authors(void **state)
{
	struct fx *f = *state;
	struct fx_dev a;
	struct gs_store_push_out out;
	char hh[GS_UUID_LEN];
	char v[GS_ID_LEN];
	char is[GS_ID_LEN];
	char gw2[64];
	char sql[1024];
	char buf[128];

	second_gw(f, gw2, sizeof(gw2));
	fx_dev_init(f, &a, "dev-a", f->gw, NULL, NULL);
	fx_household(&a, hh);
	fx_visit(&a, hh, v);
	fx_report(&a, hh, is);
	push_ok(f, &a, &out);
	gs__store_push_out_fini(&out);

	/* A visit recorded under another worker's id. */
	snprintf(sql, sizeof(sql),
		 "INSERT INTO visit (id, household_id, grid_id, worker_id,"
		 " kind, started_at, outcome, hlc, origin, created_at)"
		 " SELECT '0190dddd-0000-7000-8000-000000000003', household_id,"
		 " grid_id, '%s', kind, started_at, outcome, hlc, origin,"
		 " created_at FROM visit WHERE id = '%s'",
		 gw2, v);
	raw_write(f, &a, sql);
	push_refused(f, &a, "author");
	/* An edit signed by another worker. */
	snprintf(sql, sizeof(sql),
		 "UPDATE household SET note = 'x', updated_by = '%s' WHERE"
		 " id = '%s'",
		 gw2, hh);
	raw_write(f, &a, sql);
	push_refused(f, &a, "author");
	/* The author of an issue rewritten after its insert. */
	snprintf(sql, sizeof(sql),
		 "UPDATE issue SET created_by = '%s' WHERE id = '%s'", gw2, is);
	raw_write(f, &a, sql);
	push_refused(f, &a, "fixed");
	assert_string_equal(store_text(f,
				       "SELECT created_by FROM issue WHERE"
				       " id = ?",
				       is, buf, sizeof(buf)),
			    f->gw);
	/* A new issue reported in another worker's name. */
	snprintf(
		sql, sizeof(sql),
		"INSERT INTO issue (id, source, category_id, title, grid_id,"
		" reporter_worker_id, state, state_rev, hlc, origin,"
		" created_at, created_by) SELECT"
		" '0190dddd-0000-7000-8000-000000000004', source, category_id,"
		" title, grid_id, '%s', 'draft', 0, hlc, origin, created_at,"
		" created_by FROM issue WHERE id = '%s';"
		"INSERT INTO issue_event (id, issue_id, kind, from_state,"
		" to_state, base_rev, actor_worker_id, actor_role, device_time,"
		" hlc, origin) VALUES ('0190dddd-0000-7000-8000-000000000005',"
		" '0190dddd-0000-7000-8000-000000000004', 'transition', '',"
		" 'draft', 0, '%s', 'GW', '2025-03-01T08:30:00.000Z',"
		" '0000000000000001', 'dev-a')",
		gw2, is, f->gw);
	raw_write(f, &a, sql);
	push_refused(f, &a, "author");
	fx_dev_fini(&a);
}

/* reporter_worker_id is the server's after the insert: a worker cannot
 * make itself the reporter of another's issue and then withdraw it. */
static void authz_reporter_then_cancel(void **state)
{
	struct fx *f = *state;
	struct fx_dev a;
	struct fx_dev b;
	struct gs_store_push_out out;
	char hh[GS_UUID_LEN];
	char is[GS_ID_LEN];
	char gw2[64];
	char sql[1024];
	char buf[128];
	char st[32];
	int64_t rev;

	second_gw(f, gw2, sizeof(gw2));
	fx_dev_init(f, &a, "dev-a", f->gw, NULL, NULL);
	fx_dev_init(f, &b, "dev-b", gw2, NULL, NULL);
	fx_household(&a, hh);
	fx_report(&a, hh, is);
	push_ok(f, &a, &out);
	gs__store_push_out_fini(&out);
	fx_pull(f, &b);

	snprintf(sql, sizeof(sql),
		 "UPDATE issue SET reporter_worker_id = '%s' WHERE id = '%s'",
		 gw2, is);
	raw_write(f, &b, sql);
	push_refused(f, &b, "fixed");
	snprintf(
		sql, sizeof(sql),
		"UPDATE issue SET state = 'cancelled', state_rev = 2 WHERE"
		" id = '%s';"
		"INSERT INTO issue_event (id, issue_id, kind, from_state,"
		" to_state, base_rev, actor_worker_id, actor_role, device_time,"
		" hlc, origin) VALUES ('0190dddd-0000-7000-8000-000000000006',"
		" '%s', 'transition', 'reported', 'cancelled', 1, '%s', 'GW',"
		" '2025-03-01T08:30:00.000Z', '0000000000000001', 'dev-b')",
		is, is, gw2);
	raw_write(f, &b, sql);
	fx_push(f, &b, &out);
	gs__store_push_out_fini(&out);
	fx_issue_state(f, is, st, sizeof(st), &rev);
	assert_string_equal(st, "reported");
	assert_int_equal(rev, 1);
	assert_string_equal(store_text(f,
				       "SELECT reporter_worker_id FROM issue"
				       " WHERE id = ?",
				       is, buf, sizeof(buf)),
			    f->gw);
	fx_dev_fini(&a);
	fx_dev_fini(&b);
}

/* Events that are not transitions carry no state change and name the
 * device's worker and role; unknown kinds are refused. */
static void authz_event_kinds(void **state)
{
	struct fx *f = *state;
	struct fx_dev a;
	struct gs_store_push_out out;
	char hh[GS_UUID_LEN];
	char is[GS_ID_LEN];
	char gw2[64];
	char sql[1024];
	char buf[128];
	char st[32];
	int64_t rev;
	const struct {
		const char *kind, *from, *to, *actor, *role, *rule;
	} bad[] = {
		{ "comment", "'reported'", "'closed'", f->gw, "GW", "event" },
		{ "urge", "NULL", "'cancelled'", f->gw, "GW", "event" },
		{ "evidence", "'closed'", "'closed'", f->gw, "GW", "event" },
		{ "comment", "NULL", "NULL", gw2, "GW", "actor" },
		{ "extend_req", "NULL", "NULL", f->gw, "DC", "actor" },
		{ "comment", "NULL", "NULL", NULL, "GW", "actor" },
		{ "approve", "NULL", "NULL", f->gw, "GW", "event" },
		{ "transition", "'reported'", "'cancelled'", gw2, "GW",
		  "actor" },
	};

	second_gw(f, gw2, sizeof(gw2));
	fx_dev_init(f, &a, "dev-a", f->gw, NULL, NULL);
	fx_household(&a, hh);
	fx_report(&a, hh, is);
	push_ok(f, &a, &out);
	gs__store_push_out_fini(&out);
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		char actor[80];

		snprintf(actor, sizeof(actor), "%s%s%s",
			 bad[i].actor ? "'" : "",
			 bad[i].actor ? bad[i].actor : "NULL",
			 bad[i].actor ? "'" : "");
		snprintf(sql, sizeof(sql),
			 "INSERT INTO issue_event (id, issue_id, kind,"
			 " from_state, to_state, base_rev, actor_worker_id,"
			 " actor_role, note, device_time, hlc, origin) VALUES"
			 " ('0190eeee-0000-7000-8000-00000000000%zu', '%s',"
			 " '%s', %s, %s, 1, %s, '%s', '催办',"
			 " '2025-03-01T08:30:00.000Z', '0000000000000001',"
			 " 'dev-a')",
			 i, is, bad[i].kind, bad[i].from, bad[i].to, actor,
			 bad[i].role);
		raw_write(f, &a, sql);
		push_refused(f, &a, bad[i].rule);
	}
	/* A plain comment, and one that names the state it was made in. */
	snprintf(sql, sizeof(sql),
		 "INSERT INTO issue_event (id, issue_id, kind, from_state,"
		 " to_state, actor_worker_id, actor_role, note, device_time,"
		 " hlc, origin) VALUES ('0190eeee-0000-7000-8000-0000000000aa',"
		 " '%s', 'comment', NULL, NULL, '%s', 'GW', '已电话联系',"
		 " '2025-03-01T08:30:00.000Z', '0000000000000001', 'dev-a'),"
		 " ('0190eeee-0000-7000-8000-0000000000ab', '%s', 'urge',"
		 " 'reported', 'reported', '%s', 'GW', NULL,"
		 " '2025-03-01T08:30:00.000Z', '0000000000000001', 'dev-a')",
		 is, f->gw, is, f->gw);
	raw_write(f, &a, sql);
	push_ok(f, &a, &out);
	gs__store_push_out_fini(&out);
	assert_string_equal(store_text(f,
				       "SELECT group_concat(apply_status) FROM"
				       " (SELECT apply_status FROM issue_event"
				       " WHERE id LIKE '0190eeee-%' ORDER BY"
				       " id)",
				       NULL, buf, sizeof(buf)),
			    "applied,applied");
	fx_issue_state(f, is, st, sizeof(st), &rev);
	assert_string_equal(st, "reported");
	assert_int_equal(rev, 1);
	fx_dev_fini(&a);
}

/* handled -> dispatched (rework) sends the order back to its current
 * assignee: another grid worker of the grid cannot take it over with the
 * entry's assignee and deadline, and a legitimate rework keeps them. */
static void authz_rework_keeps_assignee(void **state)
{
	struct fx *f = *state;
	struct flow w;
	struct fx_dev b;
	struct gs_store_push_out out;
	char gw2[64];
	char sql[1536];
	char buf[128];
	char due[64];
	char st[32];
	int64_t rev;

	flow_to_dispatched(f, &w);
	fx_move(&w.gw, w.is, "in_progress", NULL, GS_OK);
	fx_move(&w.gw, w.is, "handled", NULL, GS_OK);
	push_ok(f, &w.gw, &out);
	gs__store_push_out_fini(&out);
	store_text(f, "SELECT due_at FROM issue WHERE id = ?", w.is, due,
		   sizeof(due));
	second_gw(f, gw2, sizeof(gw2));
	fx_dev_init(f, &b, "dev-b", gw2, NULL, NULL);
	fx_pull(f, &b);

	/* The takeover, as the stock client wrote it before. */
	snprintf(
		sql, sizeof(sql),
		"UPDATE issue SET state = 'dispatched', state_rev = 6,"
		" assignee_worker_id = '%s',"
		" due_at = '2099-01-01T00:00:00.000Z' WHERE id = '%s';"
		"INSERT INTO issue_event (id, issue_id, kind, from_state,"
		" to_state, base_rev, actor_worker_id, actor_role, device_time,"
		" hlc, origin) VALUES ('0190ffff-0000-7000-8000-000000000001',"
		" '%s', 'transition', 'handled', 'dispatched', 5, '%s', 'GW',"
		" '2025-03-01T08:30:00.000Z', '0000000000000001', 'dev-b')",
		gw2, w.is, w.is, gw2);
	raw_write(f, &b, sql);
	push_refused(f, &b, "governed");
	/* A new deadline alone is no better (the device still shows its
	 * refused move: nothing here pulls and undoes it). */
	snprintf(
		sql, sizeof(sql),
		"UPDATE issue SET due_at = '2098-01-01T00:00:00.000Z' WHERE"
		" id = '%s';"
		"INSERT INTO issue_event (id, issue_id, kind, from_state,"
		" to_state, base_rev, actor_worker_id, actor_role, device_time,"
		" hlc, origin) VALUES ('0190ffff-0000-7000-8000-000000000002',"
		" '%s', 'transition', 'handled', 'dispatched', 5, '%s', 'GW',"
		" '2025-03-01T08:30:00.000Z', '0000000000000001', 'dev-b')",
		w.is, w.is, gw2);
	raw_write(f, &b, sql);
	push_refused(f, &b, "governed");
	/* Nor an assignee changed without any move. */
	snprintf(sql, sizeof(sql),
		 "UPDATE issue SET assignee_worker_id = '%s' WHERE id = '%s'",
		 f->cs, w.is);
	raw_write(f, &b, sql);
	push_refused(f, &b, "governed");
	fx_issue_state(f, w.is, st, sizeof(st), &rev);
	assert_string_equal(st, "handled");
	assert_int_equal(rev, 5);

	/* The real rework (on the server's row again): back to the
	 * assignee, same deadline. */
	snprintf(sql, sizeof(sql),
		 "UPDATE issue SET state = 'handled', state_rev = 5,"
		 " assignee_worker_id = '%s', due_at = '%s' WHERE id = '%s'",
		 f->gw, due, w.is);
	assert_int_equal(
		sqlite3_exec(gs__device_db(b.dev), sql, NULL, NULL, NULL),
		SQLITE_OK); /* not captured */
	fx_move(&b, w.is, "dispatched", NULL, GS_OK);
	push_ok(f, &b, &out);
	gs__store_push_out_fini(&out);
	fx_issue_state(f, w.is, st, sizeof(st), &rev);
	assert_string_equal(st, "dispatched");
	assert_int_equal(rev, 6);
	assert_string_equal(store_text(f,
				       "SELECT assignee_worker_id FROM issue"
				       " WHERE id = ?",
				       w.is, buf, sizeof(buf)),
			    f->gw);
	assert_string_equal(store_text(f,
				       "SELECT due_at FROM issue WHERE id = ?",
				       w.is, buf, sizeof(buf)),
			    due);
	fx_dev_fini(&b);
	flow_fini(&w);
}

/* The columns the state machine and the server own move only with the
 * events that own them; a new issue starts with none of them set. */
static void authz_governed_columns(void **state)
{
	struct fx *f = *state;
	struct fx_dev a;
	struct gs_store_push_out out;
	char hh[GS_UUID_LEN];
	char is[GS_ID_LEN];
	char sql[1536];
	char st[32];
	int64_t rev;
	static const char *const bad[] = {
		"state = 'closed', state_rev = 9",
		"closed_at = '2025-03-01T08:30:00.000Z'",
		"code = 'GD-0001'",
		"merged_into_id = id",
		"overdue_level = 2",
		"satisfaction = 'satisfied'",
		"assignee_org_id = (SELECT id FROM org LIMIT 1)",
	};

	fx_dev_init(f, &a, "dev-a", f->gw, NULL, NULL);
	fx_household(&a, hh);
	fx_report(&a, hh, is);
	push_ok(f, &a, &out);
	gs__store_push_out_fini(&out);
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		snprintf(sql, sizeof(sql),
			 "UPDATE issue SET %s WHERE id = '%s'", bad[i], is);
		raw_write(f, &a, sql);
		push_refused(f, &a, "governed");
		/* Back to the server's row, uncaptured. */
		snprintf(
			sql, sizeof(sql),
			"UPDATE issue SET state = 'reported', state_rev = 1,"
			" closed_at = NULL, code = NULL, merged_into_id = NULL,"
			" overdue_level = 0, satisfaction = NULL,"
			" assignee_org_id = NULL WHERE id = '%s'",
			is);
		assert_int_equal(sqlite3_exec(gs__device_db(a.dev), sql, NULL,
					      NULL, NULL),
				 SQLITE_OK);
	}
	/* A new issue that arrives already assigned. */
	snprintf(
		sql, sizeof(sql),
		"INSERT INTO issue (id, source, category_id, title, grid_id,"
		" reporter_worker_id, state, state_rev, assignee_worker_id,"
		" due_at, hlc, origin, created_at, created_by) SELECT"
		" '0190dddd-0000-7000-8000-000000000010', source, category_id,"
		" title, grid_id, reporter_worker_id, 'draft', 0,"
		" reporter_worker_id, '2099-01-01T00:00:00.000Z', hlc, origin,"
		" created_at, created_by FROM issue WHERE id = '%s';"
		"INSERT INTO issue_event (id, issue_id, kind, from_state,"
		" to_state, base_rev, actor_worker_id, actor_role, device_time,"
		" hlc, origin) VALUES ('0190dddd-0000-7000-8000-000000000011',"
		" '0190dddd-0000-7000-8000-000000000010', 'transition', '',"
		" 'draft', 0, '%s', 'GW', '2025-03-01T08:30:00.000Z',"
		" '0000000000000001', 'dev-a')",
		is, f->gw);
	raw_write(f, &a, sql);
	push_refused(f, &a, "governed");
	/* A parent work order of another grid is a reference like any. */
	{
		char other[128];

		snprintf(
			sql, sizeof(sql),
			"INSERT INTO issue (id, source, category_id, title,"
			" grid_id, state, created_at, hlc, origin) SELECT"
			" 'foreign-issue', 'hotline', category_id, title, g.id,"
			" 'reported', created_at, hlc, 'srv' FROM issue, grid g"
			" WHERE issue.id = '%s' AND g.id NOT IN (SELECT grid_id"
			" FROM assignment WHERE worker_id = '%s') LIMIT 1",
			is, f->gw);
		assert_int_equal(sqlite3_exec(gs__store_db(f->st), sql, NULL,
					      NULL, NULL),
				 SQLITE_OK);
		snprintf(other, sizeof(other), "foreign-issue");
		snprintf(sql, sizeof(sql),
			 "UPDATE issue SET parent_issue_id = '%s' WHERE"
			 " id = '%s'",
			 other, is);
		raw_write_nofk(f, &a, sql);
		push_refused(f, &a, "reference");
	}
	fx_issue_state(f, is, st, sizeof(st), &rev);
	assert_string_equal(st, "reported");
	assert_int_equal(rev, 1);
	fx_dev_fini(&a);
}

/* The handheld refuses at once what the server would: a rework that names
 * an assignee or a deadline, a withdrawal by somebody else. */
static void authz_client_refuses_offline(void **state)
{
	struct fx *f = *state;
	struct flow w;
	struct fx_dev b;
	struct gs_store_push_out out;
	struct gs_status s0;
	struct gs_status s1;
	char gw2[64];
	char hh[GS_UUID_LEN];
	char is[GS_ID_LEN];

	flow_to_dispatched(f, &w);
	fx_move(&w.gw, w.is, "in_progress", NULL, GS_OK);
	fx_move(&w.gw, w.is, "handled", NULL, GS_OK);
	fx_household(&w.gw, hh);
	fx_report(&w.gw, hh, is);
	push_ok(f, &w.gw, &out);
	gs__store_push_out_fini(&out);
	second_gw(f, gw2, sizeof(gw2));
	fx_dev_init(f, &b, "dev-b", gw2, NULL, NULL);
	fx_pull(f, &b);
	assert_gs_ok(gs_device_status(b.dev, &s0));
	fx_move(&b, w.is, "dispatched", gw2, GS_EINVAL);
	fx_move(&b, is, "cancelled", NULL, GS_ESTATE);
	assert_gs_ok(gs_device_status(b.dev, &s1));
	assert_int_equal(s1.outbox_depth, s0.outbox_depth);
	fx_dev_fini(&b);
	flow_fini(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(append_only, setup, teardown),
		cmocka_unit_test_setup_teardown(lww_same_column, setup,
						teardown),
		cmocka_unit_test_setup_teardown(lww_earlier_arrives_first,
						setup, teardown),
		cmocka_unit_test_setup_teardown(many_conflicts_reach_the_loser,
						setup, teardown),
		cmocka_unit_test_setup_teardown(soft_delete_after_unseen_edit,
						setup, teardown),
		cmocka_unit_test_setup_teardown(lww_different_columns, setup,
						teardown),
		cmocka_unit_test_setup_teardown(delete_vs_update, setup,
						teardown),
		cmocka_unit_test_setup_teardown(future_clock_clamped, setup,
						teardown),
		cmocka_unit_test_setup_teardown(fast_clock_keeps_own_order,
						setup, teardown),
		cmocka_unit_test_setup_teardown(tag_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(issue_lifecycle, setup,
						teardown),
		cmocka_unit_test_setup_teardown(stale_move_after_close, setup,
						teardown),
		cmocka_unit_test_setup_teardown(verify_vs_redispatch, setup,
						teardown),
		cmocka_unit_test_setup_teardown(forbidden_moves, setup,
						teardown),
		cmocka_unit_test_setup_teardown(issue_without_creation_rejected,
						setup, teardown),
		cmocka_unit_test_setup_teardown(household_move_republishes,
						setup, teardown),
		cmocka_unit_test_setup_teardown(composite_key_and_constraint,
						setup, teardown),
		cmocka_unit_test_setup_teardown(attachment_by_owner, setup,
						teardown),
		cmocka_unit_test_setup_teardown(authz_references, setup,
						teardown),
		cmocka_unit_test_setup_teardown(authz_authors, setup, teardown),
		cmocka_unit_test_setup_teardown(authz_reporter_then_cancel,
						setup, teardown),
		cmocka_unit_test_setup_teardown(authz_event_kinds, setup,
						teardown),
		cmocka_unit_test_setup_teardown(authz_rework_keeps_assignee,
						setup, teardown),
		cmocka_unit_test_setup_teardown(authz_governed_columns, setup,
						teardown),
		cmocka_unit_test_setup_teardown(authz_client_refuses_offline,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
