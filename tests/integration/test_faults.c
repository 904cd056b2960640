/*
 * gs-test: timeout=240 labels=faults
 *
 * Network faults between handhelds and gridsyncd (tests/lib/faultproxy.h).
 * Several devices record visits, household edits and issue moves, and sync
 * through the fault proxy under each fault in turn: a cut at every frame
 * boundary -1/0/+1 in both directions, delay, trickle, black hole,
 * duplicated, reordered and replayed frames, bit flips. Then the faults
 * stop and every device must converge within 30 s: its content hash equal
 * to the server's hash of its scope, its outbox empty, every visit whose
 * save returned success on the server exactly once, and every entry the
 * device ever numbered judged by the server exactly once, none rejected.
 *
 * Seeded (GS_TEST_SEED replays a run); the temporary directory (databases,
 * server.log, faults.log: one line per faulted sync) is kept on failure.
 * Plain-TCP bit flips and frames replayed from another device's
 * connection are known to break convergence or lose entries (plain TCP
 * has no integrity or peer authentication; docs/TESTING.md); those run
 * only with GS_FAULT_KNOWN=1.
 */
#include <time.h>
#include <unistd.h>

#include "faultproxy.h"
#include "gs_itest.h"

#define NDEV       3
#define MAX_HH     16
#define MAX_VISITS 4096
#define CONVERGE_S 30

#define FAULT(m, d, k_, dl, ms)                                     \
	{                                                           \
		.mode = (m), .dir = (enum gs_fp_dir)(d), .k = (k_), \
		.delta = (dl), .delay_ms = (ms), .tag = 0           \
	}

struct fx {
	struct gs_ctx *ctx;
	char *dir;
	struct gs_itest_server srv;
	struct gs_itest_workers w;
	struct gs_fp *fp;
	uint64_t rng;
	FILE *log;
	struct gs_device *dev[NDEV];
	char name[NDEV][32];
	char hh[NDEV][MAX_HH][GS_ID_LEN];
	int n_hh[NDEV];
	char (*visits)[GS_ID_LEN];
	int n_visits;
	int syncs_ok, syncs_failed;
	char category[32];
	bool cross_device; /* replays may take another device's frames */
};

static unsigned rnd(struct fx *f, unsigned n)
{
	return (unsigned)(gs_test_rand(&f->rng) % n);
}

struct hh_list {
	struct fx *f;
	int i;
};

static int collect_household(const struct gs_row *row, void *payload)
{
	struct hh_list *l = payload;
	struct fx *f = l->f;

	if (f->n_hh[l->i] >= MAX_HH)
		return 1;
	snprintf(f->hh[l->i][f->n_hh[l->i]++], GS_ID_LEN, "%s",
		 gs_row_get(row, "id"));
	return 0;
}

static int first_category(const struct gs_row *row, void *payload)
{
	snprintf(payload, 32, "%s", gs_row_get(row, "code"));
	return 1;
}

static void setup(struct fx *f, bool tls, const char *test)
{
	const char *workers[NDEV];
	const char *scopes[NDEV];

	memset(f, 0, sizeof(*f));
	f->rng = gs_test_seed(test);
	f->ctx = gs_test_ctx_new(NULL);
	f->dir = gs_test_tmpdir();
	fprintf(stderr, "# artefacts in %s (kept if the test fails)\n", f->dir);
	f->log = fopen(gs_test_path(f->dir, "faults.log"), "w");
	assert_non_null(f->log);
	f->visits = calloc(MAX_VISITS, GS_ID_LEN);
	assert_non_null(f->visits);
	gs_itest_server_create(&f->srv, f->dir, tls);
	gs_itest_workers(&f->srv, &f->w);
	gs_itest_server_start(&f->srv, NULL);
	f->fp = gs_fp_start(f->srv.addr, tls, f->rng ^ 0x5eedull);
	assert_non_null(f->fp);
	gs_fp_log(f->fp, gs_test_path(f->dir, "frames.log"));
	workers[0] = f->w.gw_a;
	scopes[0] = f->w.grid_a;
	workers[1] = f->w.gw_b;
	scopes[1] = f->w.grid_a;
	workers[2] = f->w.gw_c;
	scopes[2] = f->w.grid_c;
	for (int i = 0; i < NDEV; i++) {
		struct hh_list l = { f, i };

		snprintf(f->name[i], sizeof(f->name[i]), "fault-%d", i);
		f->dev[i] = gs_itest_device(&f->srv, f->ctx, f->name[i],
					    workers[i], scopes[i]);
		gs_itest_sync(f->dev[i], NULL);
		assert_true(gs_household_list(f->dev[i], collect_household,
					      &l) >= 0);
		assert_true(f->n_hh[i] > 0);
	}
	assert_int_equal(
		gs_category_list(f->dev[0], first_category, f->category), 1);
}

/* One thing a worker does on device i; what returned success is kept. */
static void work(struct fx *f, int i)
{
	struct gs_device *dev = f->dev[i];
	const char *hh = f->hh[i][rnd(f, (unsigned)f->n_hh[i])];
	unsigned what = rnd(f, 4);

	if (what <= 1) {
		struct gs_visit_opts vo = GS_VISIT_OPTS_INIT;

		assert_true(f->n_visits < MAX_VISITS);
		vo.household_id = hh;
		vo.kind = "routine";
		vo.outcome = what == 0 ? "met" : "not_home";
		assert_gs_ok(gs_visit_add(dev, f->visits[f->n_visits], &vo));
		f->n_visits++;
	} else if (what == 2) {
		char size[8];
		struct gs_field fl[] = { { "size", size } };

		snprintf(size, sizeof(size), "%u", 1 + rnd(f, 9));
		assert_gs_ok(gs_household_edit(dev, hh, fl, 1));
	} else {
		struct gs_issue_report_opts ro = GS_ISSUE_REPORT_OPTS_INIT;
		struct gs_issue_move_opts mo = GS_ISSUE_MOVE_OPTS_INIT;
		char id[GS_ID_LEN];

		ro.category = f->category;
		ro.title = "fault suite";
		ro.household_id = hh;
		if (gs_issue_report(dev, id, &ro) != GS_OK)
			fail_msg("issue report: %s", gs_ctx_errmsg(f->ctx));
		mo.to = "self_resolved";
		mo.note = "fixed on the spot";
		assert_gs_ok(gs_issue_move(dev, id, &mo));
	}
}

/* One sync of device i through the proxy; failures are expected. */
static int sync_via(struct fx *f, int i, uint64_t timeout_ms)
{
	struct gs_sync_opts so = GS_SYNC_OPTS_INIT;
	struct gs_sync_summary sum;
	int rc;

	so.server = gs_fp_addr(f->fp);
	so.once = 1;
	so.timeout_ms = timeout_ms;
	rc = gs_device_sync(f->dev[i], &so, &sum);
	if (rc == GS_OK)
		f->syncs_ok++;
	else
		f->syncs_failed++;
	return rc;
}

/* Faults off: sync every device until all hold their scope's hash, with
 * a 30 s deadline (a stall fails). */
static void converge(struct fx *f)
{
	uint64_t start = gs__clock_mono_ns();
	uint64_t deadline = start + CONVERGE_S * 1000000000ull;
	int rounds = 0;

	gs_fp_set(f->fp, NULL);
	for (;;) {
		bool all = true;

		for (int i = 0; i < NDEV; i++)
			sync_via(f, i, 10000);
		for (int i = 0; i < NDEV && all; i++) {
			struct gs_status st;
			char theirs[65];

			assert_gs_ok(gs_device_status(f->dev[i], &st));
			gs_itest_scope_hash(&f->srv, f->name[i], theirs);
			all = st.outbox_depth == 0 &&
			      strcmp(st.content_hash, theirs) == 0;
		}
		rounds++;
		if (all)
			break;
		if (gs__clock_mono_ns() > deadline || rounds > 100)
			fail_msg("devices did not converge within %d s (%d"
				 " rounds)",
				 CONVERGE_S, rounds);
	}
	fprintf(stderr, "# converged in %d round(s), %.2f s\n", rounds,
		(double)(gs__clock_mono_ns() - start) / 1e9);
}

/* Nothing acknowledged lost, nothing applied twice, nothing refused. */
static void check_invariants(struct fx *f)
{
	for (int v = 0; v < f->n_visits; v++)
		if (gs_itest_server_int(&f->srv,
					"SELECT count(*) FROM visit WHERE"
					" id = ?",
					f->visits[v]) != 1)
			fail_msg("saved visit #%d is not on the server", v);
	for (int i = 0; i < NDEV; i++) {
		struct gs_status st;
		int64_t judged, distinct, refused;

		assert_gs_ok(gs_device_status(f->dev[i], &st));
		/* The device's numbers restart under a new incarnation
		 * (bits 40 and up of the server's device_seq): count the
		 * current one. */
		judged = gs_itest_server_int(&f->srv,
					     "SELECT count(*) FROM srv_received"
					     " WHERE device_id = ?1 AND"
					     " device_seq >> 40 = (SELECT"
					     " max(device_seq) >> 40 FROM"
					     " srv_received WHERE device_id"
					     " = ?1)",
					     f->name[i]);
		distinct = gs_itest_server_int(&f->srv,
					       "SELECT count(DISTINCT"
					       " device_seq) FROM srv_received"
					       " WHERE device_id = ?1 AND"
					       " device_seq >> 40 = (SELECT"
					       " max(device_seq) >> 40 FROM"
					       " srv_received WHERE"
					       " device_id = ?1)",
					       f->name[i]);
		refused = gs_itest_server_int(&f->srv,
					      "SELECT count(*) FROM"
					      " srv_received WHERE device_id"
					      " = ? AND reject_code != 0",
					      f->name[i]);
		if (judged != (int64_t)st.last_seq || distinct != judged)
			fail_msg("%s: %llu entries numbered, server judged"
				 " %lld (%lld distinct)",
				 f->name[i], (unsigned long long)st.last_seq,
				 (long long)judged, (long long)distinct);
		if (refused != 0)
			fail_msg("%s: %lld entries refused", f->name[i],
				 (long long)refused);
	}
}

static void teardown(struct fx *f)
{
	struct gs_fp_stats ps;

	gs_fp_stats(f->fp, &ps);
	fprintf(stderr,
		"# %d syncs ok, %d failed; proxy: %llu connections, %llu"
		" faults fired, %d visits\n",
		f->syncs_ok, f->syncs_failed,
		(unsigned long long)ps.connections,
		(unsigned long long)ps.injected, f->n_visits);
	for (int i = 0; i < NDEV; i++)
		gs_device_close(f->dev[i]);
	gs_fp_stop(f->fp);
	assert_int_equal(gs_itest_server_stop(&f->srv), 0);
	fclose(f->log);
	free(f->visits);
	gs_ctx_free(f->ctx);
	gs_test_tmpdir_free(f->dir);
}

static int first_seq(const struct gs_row *row, void *payload)
{
	*(int64_t *)payload = strtoll(gs_row_get(row, "seq"), NULL, 10);
	return 1;
}

/* Every entry the device no longer holds as pending was acknowledged, so
 * the server must have judged it: checked after every faulted sync. */
static void check_acked(struct fx *f, int i, const char *what)
{
	struct gs_status st;
	int64_t pending = -1;
	int64_t acked, judged;

	assert_gs_ok(gs_device_status(f->dev[i], &st));
	assert_true(gs_outbox_list(f->dev[i], first_seq, &pending) >= 0);
	acked = pending > 0 ? pending - 1 : (int64_t)st.last_seq;
	judged = gs_itest_server_int(&f->srv,
				     "SELECT count(*) FROM srv_received"
				     " WHERE device_id = ? AND reject_code = 0",
				     f->name[i]);
	if (judged < acked)
		fail_msg("after %s: %s dropped entries up to %lld from its"
			 " outbox, the server holds %lld",
			 what, f->name[i], (long long)acked, (long long)judged);
}

/* One faulted sync: device i works, then syncs under fault. */
static void
trial(struct fx *f, const struct gs_fp_fault *in, uint64_t timeout_ms)
{
	int i = (int)rnd(f, NDEV);
	struct gs_fp_fault tagged = *in;
	const struct gs_fp_fault *fault = &tagged;
	int rc;

	/* Replays stay within a device unless asked otherwise. */
	tagged.tag = f->cross_device ? 0 : (unsigned)i + 1;

	work(f, i);
	if (rnd(f, 2) == 0)
		work(f, i);
	gs_fp_set(f->fp, fault);
	rc = sync_via(f, i, timeout_ms);
	fprintf(f->log, "%s dir=%s k=%llu delta=%d delay=%u dev=%d -> %s\n",
		gs_fp_mode_name(fault->mode),
		fault->dir == GS_FP_C2S ? "c2s" : "s2c",
		(unsigned long long)fault->k, fault->delta, fault->delay_ms, i,
		gs_errname(rc));
	fflush(f->log);
	gs_fp_set(f->fp, NULL);
	check_acked(f, i, gs_fp_mode_name(fault->mode));
}

/* The most frames one sync sends each way, from a few clean syncs. */
static uint64_t survey(struct fx *f)
{
	struct gs_fp_stats ps;

	for (int i = 0; i < NDEV; i++) {
		work(f, i);
		work(f, i);
		assert_int_equal(sync_via(f, i, 10000), GS_OK);
	}
	gs_fp_stats(f->fp, &ps);
	fprintf(stderr, "# a clean sync: up to %llu frames each way\n",
		(unsigned long long)ps.max_frames);
	return ps.max_frames;
}

static void framed_faults(void **state, bool known)
{
	struct fx f;
	uint64_t frames;

	(void)state;
	setup(&f, false, known ? "faults.flip_plain" : "faults.framed");
	frames = survey(&f);
	assert_true(frames >= 2);
	if (frames > 12)
		frames = 12;
	for (int dir = 0; dir < 2 && !known; dir++) {
		/* Cut at every frame boundary -1, 0, +1. */
		for (uint64_t k = 0; k <= frames; k++)
			for (int delta = -1; delta <= 1; delta++) {
				struct gs_fp_fault fl =
					FAULT(GS_FP_CUT, dir, k, delta, 0);

				if (k == 0 && delta < 0)
					continue;
				trial(&f, &fl, 5000);
			}
		for (uint64_t k = 0; k < frames; k++) {
			struct gs_fp_fault dup =
				FAULT(GS_FP_DUPLICATE, dir, k, 0, 0);
			struct gs_fp_fault re =
				FAULT(GS_FP_REORDER, dir, k, 0, 0);
			struct gs_fp_fault rp =
				FAULT(GS_FP_REPLAY, dir, k, 0, 0);

			trial(&f, &dup, 5000);
			trial(&f, &re, 5000);
			trial(&f, &rp, 5000);
		}
		{
			struct gs_fp_fault dl =
				FAULT(GS_FP_DELAY, dir, 0, 0, 150);
			struct gs_fp_fault tr =
				FAULT(GS_FP_TRICKLE, dir, 0, 0, 1);
			struct gs_fp_fault bh0 =
				FAULT(GS_FP_BLACKHOLE, dir, 0, 0, 0);
			struct gs_fp_fault bh1 =
				FAULT(GS_FP_BLACKHOLE, dir, 1, 0, 0);

			trial(&f, &dl, 10000);
			trial(&f, &tr, 10000);
			trial(&f, &bh0, 1500);
			trial(&f, &bh1, 1500);
		}
	}
	if (known) {
		/* Another device's frames replayed: over plain TCP the
		 * server takes the device id from Hello, so this is an
		 * impersonation only TLS prevents. */
		f.cross_device = true;
		for (uint64_t k = 0; k < frames; k++)
			for (int dir = 0; dir < 2; dir++) {
				struct gs_fp_fault rp =
					FAULT(GS_FP_REPLAY, dir, k, 0, 0);

				trial(&f, &rp, 3000);
			}
		/* Bit flips anywhere in any frame, both directions. */
		for (int r = 0; r < 3; r++)
			for (uint64_t k = 0; k < frames; k++)
				for (int dir = 0; dir < 2; dir++) {
					struct gs_fp_fault fl =
						FAULT(GS_FP_FLIP, dir, k, 0, 0);

					trial(&f, &fl, 3000);
				}
	}
	converge(&f);
	check_invariants(&f);
	teardown(&f);
}

static void framed_faults_converge(void **state)
{
	framed_faults(state, false);
}

static void plain_bit_flips_converge(void **state)
{
	if (getenv("GS_FAULT_KNOWN") == NULL) {
		fprintf(stderr,
			"# skipped: plain-TCP bit flips and cross-device"
			" replays are a known failure"
			" (GS_FAULT_KNOWN=1 runs them)\n");
		skip();
	}
	framed_faults(state, true);
}

/* Over TLS the proxy sees ciphertext: cuts at byte offsets around the
 * handshake and after it, delay, trickle, black hole and bit flips (which
 * TLS must refuse, never pass on). */
static void tls_faults_converge(void **state)
{
	struct fx f;
	uint64_t bytes[] = { 0, 1, 5, 6, 200, 600, 1200, 2000, 3000, 5000 };

	(void)state;
	setup(&f, true, "faults.tls");
	for (int dir = 0; dir < 2; dir++) {
		for (size_t b = 0; b < sizeof(bytes) / sizeof(bytes[0]); b++) {
			struct gs_fp_fault cut =
				FAULT(GS_FP_CUT, dir, bytes[b], 0, 0);
			struct gs_fp_fault flip =
				FAULT(GS_FP_FLIP, dir, bytes[b], 0, 0);

			trial(&f, &cut, 5000);
			trial(&f, &flip, 5000);
		}
		{
			struct gs_fp_fault rnd_flip = FAULT(
				GS_FP_FLIP, dir, 200 + rnd(&f, 4000), 0, 0);
			struct gs_fp_fault dl =
				FAULT(GS_FP_DELAY, dir, 0, 0, 150);
			struct gs_fp_fault tr =
				FAULT(GS_FP_TRICKLE, dir, 0, 0, 1);
			struct gs_fp_fault bh =
				FAULT(GS_FP_BLACKHOLE, dir, 300 + rnd(&f, 2000),
				      0, 0);

			trial(&f, &rnd_flip, 5000);
			trial(&f, &dl, 10000);
			trial(&f, &tr, 10000);
			trial(&f, &bh, 1500);
		}
	}
	converge(&f);
	check_invariants(&f);
	teardown(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(framed_faults_converge),
		cmocka_unit_test(tls_faults_converge),
		cmocka_unit_test(plain_bit_flips_converge),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
