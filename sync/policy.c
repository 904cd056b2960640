/*
 * Pure merge decisions (see policy.h). Nothing here touches a database:
 * the rules can be read, tested and reused by another store as they are.
 */
#define GS_MODULE "sync.policy"

#include <string.h>

#include <gridsync/hlc.h>
#include <gridsync/policy.h>

int gs__stamp_cmp(uint64_t a_hlc,
		  const char *a_dev,
		  uint64_t b_hlc,
		  const char *b_dev)
{
	int c;

	if (a_hlc != b_hlc)
		return a_hlc > b_hlc ? 1 : -1;
	c = strcmp(a_dev != NULL ? a_dev : "", b_dev != NULL ? b_dev : "");
	return c > 0 ? 1 : c < 0 ? -1 : 0;
}

uint64_t gs__hlc_clamp(uint64_t hlc, int64_t now_ms)
{
	uint64_t max = gs__hlc_make(now_ms + GS_POLICY_CLAMP_AHEAD_MS, 0);

	return hlc > max ? max : hlc;
}

uint64_t gs__stamp_entry(uint64_t hlc, int64_t now_ms, uint64_t last)
{
	uint64_t s = gs__hlc_clamp(hlc, now_ms);

	return s > last || last == UINT64_MAX ? s : last + 1;
}

struct gs_col_decision gs__col_decide(const struct gs_col_input *in)
{
	struct gs_col_decision d;

	d.write = in->wins && !in->same;
	/* An INSERT that repeats the current value says nothing about when
	 * the column was written; an UPDATE or DELETE always does. */
	d.clock = in->wins && (in->has_old || !in->same);
	d.conflict = !in->quiet && !in->same &&
		     (!in->wins || !in->has_old || !in->old_is_cur);
	return d;
}

const char *gs__apply_status_name(enum gs_apply_status s)
{
	switch (s) {
	case GS_APPLY_APPLIED:
		return "applied";
	case GS_APPLY_NOOP:
		return "noop";
	case GS_APPLY_REJECTED_STALE:
		return "rejected_stale";
	case GS_APPLY_NEEDS_REVIEW:
		return "needs_review";
	default:
		return "pending";
	}
}

static bool str_eq(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcmp(a, b) == 0;
}

/* States on the main line of a work order, where a higher rank really
 * means "already past": side states (self_resolved, returned, suspended)
 * and terminal ones are not ordered against it. */
static bool main_path(const char *s)
{
	static const char *const main_states[] = {
		"draft",       "reported", "accepted", "dispatched",
		"in_progress", "handled",  "verified",
	};

	for (size_t i = 0; i < sizeof(main_states) / sizeof(*main_states); i++)
		if (str_eq(s, main_states[i]))
			return true;
	return false;
}

static bool reached(const char *state, const char *to)
{
	if (str_eq(state, to))
		return true;
	return main_path(state) && main_path(to) &&
	       gs__state_rank(state) > gs__state_rank(to);
}

/* Step 1 of the algorithm: may this device make this move at all? */
static bool allowed(const struct gs_transition_input *in,
		    const struct gs_transition *rule)
{
	unsigned role = gs__role_parse(in->actor_role);

	if (rule == NULL || role == 0 || role != in->device_role ||
	    !(rule->roles & role))
		return false;
	/* The event must name the device's own worker: a device cannot act
	 * for somebody else. */
	if (in->device_worker_id != NULL &&
	    !str_eq(in->actor_worker_id, in->device_worker_id))
		return false;
	if (rule->assignee_only && role == GS_ROLE_GW &&
	    !str_eq(in->assignee_worker_id, in->device_worker_id))
		return false;
	/* Rule 5: a grid worker withdraws only what it reported itself. */
	if (role == GS_ROLE_GW && str_eq(rule->to, "cancelled") &&
	    !str_eq(in->reporter_worker_id, in->device_worker_id))
		return false;
	return true;
}

void gs__transition_decide(const struct gs_transition_input *in,
			   struct gs_transition_decision *out)
{
	const struct gs_transition *rule =
		gs__transition_find(in->from, in->to);

	memset(out, 0, sizeof(*out));
	out->rule = rule;
	if (!allowed(in, rule)) {
		out->status = GS_APPLY_REJECTED_STALE;
		out->reason = "forbidden";
		return;
	}
	if (in->from[0] == '\0' && in->created) {
		out->status = GS_APPLY_APPLIED;
		return;
	}
	if (gs__state_terminal(in->state)) {
		out->status = GS_APPLY_REJECTED_STALE;
		out->reason = "terminal";
		return;
	}
	if (in->has_base_rev && in->base_rev == in->state_rev &&
	    str_eq(in->from, in->state)) {
		out->status = GS_APPLY_APPLIED;
		out->bump_rev = true;
		return;
	}
	if (reached(in->state, in->to)) {
		out->status = GS_APPLY_NOOP;
		out->reason = "superseded";
		return;
	}
	out->status = GS_APPLY_NEEDS_REVIEW;
	out->reason = "concurrent";
}

bool gs__transition_assigns(const struct gs_transition *r)
{
	return r != NULL && r->requires != NULL &&
	       strstr(r->requires, "assignee") != NULL;
}

/* A state field of an event that is not a transition: absent, or the
 * state the issue is in (the state the note was written about). */
static bool no_change(const char *s, const char *state)
{
	return s == NULL || s[0] == '\0' || str_eq(s, state);
}

const char *gs__event_check(const struct gs_event_input *in)
{
	static const char *const attach[] = { "comment", "evidence", "urge",
					      "extend_req" };
	unsigned role = gs__role_parse(in->actor_role);
	bool known = false;

	if (role == 0 || role != in->device_role ||
	    in->device_worker_id == NULL ||
	    !str_eq(in->actor_worker_id, in->device_worker_id))
		return "actor";
	if (str_eq(in->kind, "transition"))
		return NULL;
	for (size_t i = 0; i < sizeof(attach) / sizeof(*attach); i++)
		known = known || str_eq(in->kind, attach[i]);
	if (!known || !no_change(in->from, in->state) ||
	    !no_change(in->to, in->state))
		return "event";
	return NULL;
}

enum gs_reject gs__reject_for_cs(enum gs_cs_reason reason)
{
	switch (reason) {
	case GS_CS_UNKNOWN_TABLE:
	case GS_CS_COLUMN_COUNT:
	case GS_CS_PK_LAYOUT:
		return GS_REJECT_SCHEMA;
	case GS_CS_TABLE_NOT_ALLOWED:
		return GS_REJECT_DENIED;
	case GS_CS_TOO_BIG:
	case GS_CS_TOO_MANY_ROWS:
	case GS_CS_VALUE_TOO_BIG:
		return GS_REJECT_LIMIT;
	default:
		return GS_REJECT_MALFORMED;
	}
}
