/*
 * The pure merge decisions of policy.h, table by table: stamp order and
 * its tie-break, the clamp of future clocks, the per-column verdict (who
 * writes, whose clock, what is a conflict), DESIGN.md's transition
 * algorithm for every step, and the PushAck code for each parser reason.
 */
#include <gridsync/hlc.h>
#include <gridsync/policy.h>

#include "gs_test.h"

static void stamp_order(void **state)
{
	static const struct {
		uint64_t ah;
		const char *ad;
		uint64_t bh;
		const char *bd;
		int want;
	} cases[] = {
		{ 2, "a", 1, "z", 1 },         /* the HLC decides first */
		{ 1, "z", 2, "a", -1 },        /*   ... either way */
		{ 5, "dev-b", 5, "dev-a", 1 }, /* a tie: the device id */
		{ 5, "dev-a", 5, "dev-b", -1 },
		{ 5, "dev-a", 5, "dev-a", 0 }, /* the same write */
		{ 5, NULL, 5, "", 0 },         /* NULL orders as "" */
		{ 5, NULL, 5, "a", -1 },
		{ UINT64_MAX, "a", 0, "b", 1 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++)
		assert_int_equal(gs__stamp_cmp(cases[i].ah, cases[i].ad,
					       cases[i].bh, cases[i].bd),
				 cases[i].want);
}

static void clamp(void **state)
{
	const int64_t now = 1740817800000LL;
	const uint64_t max = gs__hlc_make(now + GS_POLICY_CLAMP_AHEAD_MS, 0);
	static const int64_t ahead[] = { -86400000, 0, 299999,
					 365LL * 86400000 };

	(void)state;
	for (size_t i = 0; i < sizeof(ahead) / sizeof(*ahead); i++) {
		uint64_t h = gs__hlc_make(now + ahead[i], 7);
		uint64_t c = gs__hlc_clamp(h, now);

		if (ahead[i] < GS_POLICY_CLAMP_AHEAD_MS)
			assert_int_equal(c, h); /* untouched */
		else
			assert_int_equal(c, max);
	}
	/* Just past the limit (same ms, higher counter) is clamped too. */
	assert_int_equal(gs__hlc_clamp(max + 1, now), max);
}

static void column_decision(void **state)
{
	/* wins same has_old old_is_cur quiet -> write clock conflict */
	static const struct {
		bool in[5];
		bool out[3];
		const char *why;
	} cases[] = {
		{ { 1, 0, 1, 1, 0 }, { 1, 1, 0 }, "plain later update" },
		{ { 1, 0, 1, 0, 0 }, { 1, 1, 1 }, "later, but did not see" },
		{ { 0, 0, 1, 0, 0 }, { 0, 0, 1 }, "earlier, did not see" },
		{ { 0, 0, 1, 1, 0 }, { 0, 0, 1 }, "earlier: a loss is told" },
		{ { 1, 1, 1, 0, 0 }, { 0, 1, 0 }, "same value: no conflict" },
		{ { 0, 1, 1, 0, 0 }, { 0, 0, 0 }, "same value, earlier" },
		{ { 1, 0, 0, 0, 0 }, { 1, 1, 1 }, "INSERT of an existing row" },
		{ { 1, 1, 0, 0, 0 }, { 0, 0, 0 }, "INSERT repeating a value" },
		{ { 0, 0, 0, 0, 0 }, { 0, 0, 1 }, "INSERT, older" },
		{ { 1, 0, 1, 0, 1 }, { 1, 1, 0 }, "bookkeeping is quiet" },
		{ { 0, 0, 1, 0, 1 }, { 0, 0, 0 }, "bookkeeping loses quietly" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct gs_col_input in = { cases[i].in[0], cases[i].in[1],
					   cases[i].in[2], cases[i].in[3],
					   cases[i].in[4] };
		struct gs_col_decision d = gs__col_decide(&in);

		if (d.write != cases[i].out[0] || d.clock != cases[i].out[1] ||
		    d.conflict != cases[i].out[2])
			fail_msg("case %zu (%s): write %d clock %d conflict %d",
				 i, cases[i].why, d.write, d.clock, d.conflict);
	}
}

struct tcase {
	const char *state;
	int64_t rev;
	bool created;
	const char *assignee;
	const char *reporter;
	const char *from;
	const char *to;
	int64_t base; /* -1: no base_rev */
	const char *actor_role;
	const char *actor;
	unsigned role;
	enum gs_apply_status want;
	const char *reason;
	bool bump;
};

#define GW GS_ROLE_GW
#define CS GS_ROLE_CS
#define SC GS_ROLE_SC
#define DC GS_ROLE_DC
#define DH GS_ROLE_DH
#define AP GS_APPLY_APPLIED
#define NO GS_APPLY_NOOP
#define RS GS_APPLY_REJECTED_STALE
#define NR GS_APPLY_NEEDS_REVIEW

static void transitions(void **state)
{
	static const struct tcase cases[] = {
		/* creation of an issue born in the entry */
		{ "draft", 0, true, NULL, "w1", "", "draft", 0, "GW", "w1", GW,
		  AP, NULL, false },
		{ "draft", 0, false, NULL, "w1", "draft", "reported", 0, "GW",
		  "w1", GW, AP, NULL, true },
		/* a creation a community device may not make (rule 1) */
		{ "draft", 0, true, NULL, "w1", "", "draft", 0, "CS", "c1", CS,
		  RS, "forbidden", false },
		/* step 3: compare-and-set */
		{ "reported", 1, false, NULL, "w1", "reported", "accepted", 1,
		  "CS", "c1", CS, AP, NULL, true },
		{ "accepted", 2, false, NULL, "w1", "accepted", "dispatched", 2,
		  "SC", "s1", SC, AP, NULL, true },
		/* step 1: no such rule, wrong role, lying role or worker */
		{ "reported", 1, false, NULL, "w1", "reported", "closed", 1,
		  "CS", "c1", CS, RS, "forbidden", false },
		{ "reported", 1, false, NULL, "w1", "reported", "accepted", 1,
		  "GW", "w1", GW, RS, "forbidden", false },
		{ "reported", 1, false, NULL, "w1", "reported", "accepted", 1,
		  "CS", "w1", GW, RS, "forbidden", false },
		{ "reported", 1, false, NULL, "w1", "reported", "accepted", 1,
		  "CS", "c2", CS, RS, "forbidden", false },
		{ "reported", 1, false, NULL, "w1", "reported", "accepted", 1,
		  "XX", "c1", CS, RS, "forbidden", false },
		/* assignee-only moves (rules 12, 18) */
		{ "dispatched", 3, false, "w1", "w9", "dispatched",
		  "in_progress", 3, "GW", "w1", GW, AP, NULL, true },
		{ "dispatched", 3, false, "w2", "w9", "dispatched",
		  "in_progress", 3, "GW", "w1", GW, RS, "forbidden", false },
		{ "dispatched", 3, false, NULL, "w9", "dispatched",
		  "in_progress", 3, "GW", "w1", GW, RS, "forbidden", false },
		{ "dispatched", 3, false, "w2", "w9", "dispatched",
		  "in_progress", 3, "DH", "d1", DH, AP, NULL, true },
		/* rule 5: only the reporter cancels */
		{ "reported", 1, false, NULL, "w1", "reported", "cancelled", 1,
		  "GW", "w1", GW, AP, NULL, true },
		{ "reported", 1, false, NULL, "w2", "reported", "cancelled", 1,
		  "GW", "w1", GW, RS, "forbidden", false },
		/* step 2: terminal */
		{ "closed", 7, false, "w1", "w1", "handled", "verified", 5,
		  "GW", "w1", GW, RS, "terminal", false },
		{ "cancelled", 2, false, NULL, "w1", "reported", "cancelled", 1,
		  "GW", "w1", GW, RS, "terminal", false },
		/* step 4: already there or past it on the main line */
		{ "in_progress", 4, false, "w1", "w1", "dispatched",
		  "in_progress", 3, "GW", "w1", GW, NO, "superseded", false },
		{ "handled", 5, false, "w1", "w1", "dispatched", "in_progress",
		  3, "GW", "w1", GW, NO, "superseded", false },
		{ "verified", 6, false, "w1", "w1", "handled", "dispatched", 5,
		  "SC", "s1", SC, NO, "superseded", false },
		/* step 5: needs review (verify vs re-dispatch) */
		{ "dispatched", 6, false, "w1", "w1", "handled", "verified", 5,
		  "GW", "w1", GW, NR, "concurrent", false },
		/* a side state is not "past" anything */
		{ "returned", 4, false, "w1", "w1", "dispatched", "in_progress",
		  3, "GW", "w1", GW, NR, "concurrent", false },
		/* right state, stale revision; missing revision */
		{ "handled", 9, false, "w1", "w1", "handled", "verified", 5,
		  "GW", "w1", GW, NR, "concurrent", false },
		{ "handled", 5, false, "w1", "w1", "handled", "verified", -1,
		  "GW", "w1", GW, NR, "concurrent", false },
		/* a creation replayed on an issue that exists */
		{ "reported", 1, false, NULL, "w1", "", "draft", 0, "GW", "w1",
		  GW, NO, "superseded", false },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		const struct tcase *c = &cases[i];
		struct gs_transition_input in = {
			c->state,
			c->rev,
			c->created,
			c->assignee,
			c->reporter,
			c->from,
			c->to,
			c->base >= 0,
			c->base,
			c->actor_role,
			c->actor,
			c->role,
			c->actor == NULL ? NULL
					 : (c->role == GW   ? "w1"
					    : c->role == CS ? "c1"
					    : c->role == SC ? "s1"
							    : "d1"),
		};
		struct gs_transition_decision d;

		gs__transition_decide(&in, &d);
		if (d.status != c->want || d.bump_rev != c->bump ||
		    (c->reason == NULL) != (d.reason == NULL) ||
		    (c->reason != NULL && strcmp(c->reason, d.reason) != 0))
			fail_msg("case %zu (%s -> %s as %s in %s): %s/%s", i,
				 c->from, c->to, c->actor_role, c->state,
				 gs__apply_status_name(d.status),
				 d.reason != NULL ? d.reason : "-");
	}
	assert_string_equal(gs__apply_status_name(GS_APPLY_PENDING), "pending");
	assert_string_equal(gs__apply_status_name(NR), "needs_review");
}

/* Only a dispatch sets the assignee and the deadline (rules 10, 14). */
static void assigning_rules(void **state)
{
	size_t n;
	const struct gs_transition *all = gs__transitions(&n);
	size_t assigning = 0;

	(void)state;
	for (size_t i = 0; i < n; i++) {
		bool want = strcmp(all[i].to, "dispatched") == 0 &&
			    (strcmp(all[i].from, "accepted") == 0 ||
			     strcmp(all[i].from, "returned") == 0);

		assert_int_equal(gs__transition_assigns(&all[i]), want);
		/* ... and only roles that may assign make it. */
		if (want)
			assert_int_equal(
				all[i].roles & (GS_ROLE_GW | GS_ROLE_DH), 0);
		assigning += want;
	}
	assert_int_equal(assigning, 2);
	assert_false(gs__transition_assigns(
		gs__transition_find("handled", "dispatched")));
	assert_false(gs__transition_assigns(NULL));
}

/* Every event names the device as actor; only a transition changes the
 * state. */
static void event_rules(void **state)
{
	static const struct {
		const char *kind, *from, *to, *actor, *role;
		unsigned dev_role;
		const char *dev_worker;
		const char *want;
	} cases[] = {
		{ "comment", NULL, NULL, "w1", "GW", GS_ROLE_GW, "w1", NULL },
		{ "evidence", "", "", "w1", "GW", GS_ROLE_GW, "w1", NULL },
		{ "urge", "reported", "reported", "c1", "CS", GS_ROLE_CS, "c1",
		  NULL },
		{ "extend_req", NULL, "reported", "d1", "DH", GS_ROLE_DH, "d1",
		  NULL },
		{ "transition", "reported", "cancelled", "w1", "GW", GS_ROLE_GW,
		  "w1", NULL },
		/* a state change smuggled into a comment */
		{ "comment", "reported", "closed", "w1", "GW", GS_ROLE_GW, "w1",
		  "event" },
		{ "urge", NULL, "cancelled", "w1", "GW", GS_ROLE_GW, "w1",
		  "event" },
		{ "evidence", "closed", "closed", "w1", "GW", GS_ROLE_GW, "w1",
		  "event" },
		/* unknown kinds, a missing kind */
		{ "approve", NULL, NULL, "w1", "GW", GS_ROLE_GW, "w1",
		  "event" },
		{ NULL, NULL, NULL, "w1", "GW", GS_ROLE_GW, "w1", "event" },
		/* somebody else, another role, nobody, an unknown role */
		{ "comment", NULL, NULL, "w2", "GW", GS_ROLE_GW, "w1",
		  "actor" },
		{ "comment", NULL, NULL, "w1", "DC", GS_ROLE_GW, "w1",
		  "actor" },
		{ "comment", NULL, NULL, NULL, "GW", GS_ROLE_GW, "w1",
		  "actor" },
		{ "comment", NULL, NULL, "w1", "XX", GS_ROLE_GW, "w1",
		  "actor" },
		{ "transition", "reported", "cancelled", "w2", "GW", GS_ROLE_GW,
		  "w1", "actor" },
		{ "transition", "reported", "accepted", "w1", "SC", GS_ROLE_GW,
		  "w1", "actor" },
		/* a device without a worker names nobody */
		{ "comment", NULL, NULL, "w1", "GW", GS_ROLE_GW, NULL,
		  "actor" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct gs_event_input in = {
			cases[i].kind,     cases[i].from,       cases[i].to,
			"reported",        cases[i].actor,      cases[i].role,
			cases[i].dev_role, cases[i].dev_worker,
		};
		const char *got = gs__event_check(&in);

		if ((got == NULL) != (cases[i].want == NULL) ||
		    (got != NULL && strcmp(got, cases[i].want) != 0))
			fail_msg("case %zu (%s): got %s, want %s", i,
				 cases[i].kind ? cases[i].kind : "-",
				 got ? got : "ok",
				 cases[i].want ? cases[i].want : "ok");
	}
}

static void reject_codes(void **state)
{
	(void)state;
	for (int r = 0; r < GS_CS_REASON_COUNT; r++) {
		enum gs_reject want = GS_REJECT_MALFORMED;

		if (r == GS_CS_UNKNOWN_TABLE || r == GS_CS_COLUMN_COUNT ||
		    r == GS_CS_PK_LAYOUT)
			want = GS_REJECT_SCHEMA;
		else if (r == GS_CS_TABLE_NOT_ALLOWED)
			want = GS_REJECT_DENIED;
		else if (r == GS_CS_TOO_BIG || r == GS_CS_TOO_MANY_ROWS ||
			 r == GS_CS_VALUE_TOO_BIG)
			want = GS_REJECT_LIMIT;
		assert_int_equal(gs__reject_for_cs((enum gs_cs_reason)r), want);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(stamp_order),
		cmocka_unit_test(clamp),
		cmocka_unit_test(column_decision),
		cmocka_unit_test(transitions),
		cmocka_unit_test(assigning_rules),
		cmocka_unit_test(event_rules),
		cmocka_unit_test(reject_codes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
