/*
 * The server's merge decisions as pure functions (DESIGN.md section
 * 6, DESIGN.md "Issue (work order) state machine"): which write wins a
 * column, when two writes conflict, and what an uploaded issue transition
 * does. No I/O, no allocation: sync/merge.c asks, the store does. Each rule
 * has a table-driven test in tests/sync/test_policy.c. Internal (gs__).
 */
#ifndef GRIDSYNC_POLICY_H
#define GRIDSYNC_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include <gridsync/changeset.h>
#include <gridsync/schema.h>
#include <gridsync/wire.h>

/* How far ahead of the server's wall clock an entry's HLC may be before
 * it is clamped: a device whose clock runs a year ahead must not win every
 * later conflict. */
#define GS_POLICY_CLAMP_AHEAD_MS (5 * 60 * 1000)

/* ---- last writer wins -------------------------------------------------- */

/*
 * Order two writes: by HLC, then by device id (bytewise), so that every
 * server reaches the same winner from the same input. Returns > 0 when a
 * is the later write, < 0 when b is, 0 only for the same stamp of the same
 * device. NULL device ids order before every other.
 */
int gs__stamp_cmp(uint64_t a_hlc,
		  const char *a_dev,
		  uint64_t b_hlc,
		  const char *b_dev);

/* hlc, or the server's now + GS_POLICY_CLAMP_AHEAD_MS (counter 0) if hlc
 * is later than that. */
uint64_t gs__hlc_clamp(uint64_t hlc, int64_t now_ms);

/*
 * The stamp a device's entry is merged under: its HLC clamped
 * (gs__hlc_clamp), and strictly after last, the stamp of the same device's
 * previous entry (0: none). Clamping gives every entry of a fast device's
 * push the same stamp, and a server clock stepped back gives a lower one;
 * either way the device's own later write must not lose to its earlier
 * one. A device gains at most one counter step per entry from this.
 */
uint64_t gs__stamp_entry(uint64_t hlc, int64_t now_ms, uint64_t last);

/* What is known about one column of an incoming write. */
struct gs_col_input {
	bool wins;    /* the write's stamp is later than the column's */
	bool same;    /* its value equals the server's current value */
	bool has_old; /* it carries the value the device saw (UPDATE, DELETE) */
	bool old_is_cur; /* ... and that equals the current value */
	bool quiet;      /* bookkeeping column (updated_at, ...): merged,
			  * never reported as a conflict */
};

struct gs_col_decision {
	bool write;    /* store the incoming value */
	bool clock;    /* the column's clock becomes the write's stamp */
	bool conflict; /* record it with both sides */
};

/*
 * Per-column last writer wins. The value is written when the write is
 * later and differs. A conflict is a write the device made without seeing
 * the current value (its old value differs from it, or it has none: an
 * INSERT of an existing row), or any write that loses: the losing device
 * must learn about it. Equal values never conflict.
 */
struct gs_col_decision gs__col_decide(const struct gs_col_input *in);

/* ---- issue transitions -------------------------------------------------- */

/* issue_event.apply_status. */
enum gs_apply_status {
	GS_APPLY_PENDING = 0,
	GS_APPLY_APPLIED,
	GS_APPLY_NOOP,
	GS_APPLY_REJECTED_STALE,
	GS_APPLY_NEEDS_REVIEW,
};

/* "pending", "applied", "noop", "rejected_stale", "needs_review". */
const char *gs__apply_status_name(enum gs_apply_status s);

/* One uploaded transition event against the issue as the server holds it.
 * Strings are NUL-terminated; NULL where the row holds NULL. */
struct gs_transition_input {
	const char *state;              /* the current state */
	int64_t state_rev;              /* and revision */
	bool created;                   /* born in this entry, not yet
					 * through a creation event */
	const char *assignee_worker_id; /* the issue's */
	const char *reporter_worker_id; /* the issue's */
	const char *from;               /* the event's; "" = creation */
	const char *to;
	bool has_base_rev;
	int64_t base_rev;             /* state_rev the actor saw */
	const char *actor_role;       /* as the event claims */
	const char *actor_worker_id;  /* as the event claims */
	unsigned device_role;         /* GS_ROLE_* of the pushing device */
	const char *device_worker_id; /* its worker */
};

struct gs_transition_decision {
	enum gs_apply_status status;
	/* Why, for issue_event.reject_reason: NULL when applied, else
	 * "forbidden", "terminal", "superseded" or "concurrent". Static. */
	const char *reason;
	const struct gs_transition *rule; /* NULL if there is none */
	bool bump_rev;                    /* applied: state_rev + 1 */
};

/*
 * DESIGN.md's server apply algorithm:
 * 1. no rule (from, to), or the actor is not the device (role, worker), or
 *    the rule is not for that role, or an assignee-only move by a grid
 *    worker who is not the assignee, or a cancel by a grid worker who is
 *    not the reporter -> rejected_stale, "forbidden";
 * 2. a creation (from "") of an issue born in this entry -> applied, the
 *    revision unchanged;
 * 3. the issue is terminal -> rejected_stale, "terminal";
 * 4. base_rev == state_rev and from == state -> applied, revision + 1;
 * 5. the issue is already at `to`, or past it on the main path (reported,
 *    accepted, dispatched, in_progress, handled, verified) -> noop,
 *    "superseded";
 * 6. otherwise -> needs_review, "concurrent".
 */
void gs__transition_decide(const struct gs_transition_input *in,
			   struct gs_transition_decision *out);

/* ---- authorization of issue events and assignment ---------------------- */

/*
 * Does rule r set the assignee and the deadline? Only a dispatch does
 * (DESIGN.md rules 10 and 14: accepted or returned -> dispatched, by a
 * community, street or district centre). handled -> dispatched (rule 20,
 * rework) returns the order to the assignee it has. False for NULL.
 */
bool gs__transition_assigns(const struct gs_transition *r);

/* An uploaded issue_event of any kind, before its verdict. Strings are
 * NUL-terminated, NULL where the row holds NULL. */
struct gs_event_input {
	const char *kind;             /* "transition", "comment", ... */
	const char *from;             /* from_state */
	const char *to;               /* to_state */
	const char *state;            /* the current state */
	const char *actor_worker_id;  /* as the event claims */
	const char *actor_role;       /* as the event claims */
	unsigned device_role;         /* GS_ROLE_* of the pushing device */
	const char *device_worker_id; /* its worker */
};

/*
 * The authorization rule an uploaded event breaks, or NULL if none
 * (docs/SYNC.md, "Authorization"). Every kind names the device's own
 * worker as actor with the device's role ("actor"). The kinds are
 * "transition" (then decided by gs__transition_decide) and the ones that
 * only attach content to a work order: "comment", "evidence", "urge",
 * "extend_req"; those carry no state change: from_state and to_state are
 * each NULL, empty or the current state ("event"). Any other kind
 * is "event" too. Static strings.
 */
const char *gs__event_check(const struct gs_event_input *in);

/* ---- rejections ------------------------------------------------------ */

/* The PushAck code for a changeset the strict parser refused: a table or
 * layout the server does not know is SCHEMA, a table the device may not
 * write is DENIED, a size limit is LIMIT, anything else MALFORMED. */
enum gs_reject gs__reject_for_cs(enum gs_cs_reason reason);

#endif
