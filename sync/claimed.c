/*
 * Times a device claims (created_at, started_at, device_time, ...) are
 * written by the handheld from its own clock, which may be years off (a
 * factory reset, a dead battery, a hand-set date). The server keeps them
 * within reach of the entry's HLC, the one clock of the entry the server
 * has already bounded (clamped to its own now + 5 minutes):
 *
 *   ref - GS_CLAIMED_PAST_MS  <=  claimed  <=  ref + GS_CLAIMED_FUTURE_MS
 *
 * A claimed time outside that window is replaced by ref (the time the
 * device saved the change, as far as the server can tell) and reported,
 * so the merge stores the bounded value and records what was claimed. The
 * entry is never refused for it: the worker's record is kept, with a time
 * that cannot sort it ten years away. Deadlines (due_at, deadline_at) are
 * meant to lie in the future and are left alone; values that are not
 * times are left to the merge's validation.
 */
#define GS_MODULE "sync.claimed"

#include <string.h>

#include <gridsync/claimed.h>

/* A column whose value is a time the device claims. */
static bool claimed_col(const char *name)
{
	size_t n = strlen(name);

	if (strcmp(name, "due_at") == 0 || strcmp(name, "deadline_at") == 0)
		return false;
	return strcmp(name, "device_time") == 0 ||
	       (n > 3 && strcmp(name + n - 3, "_at") == 0);
}

int gs__claimed_times_bound(struct gs_cs *cs,
			    int64_t ref_ms,
			    gs_claimed_copy_fn copy,
			    gs_claimed_cb cb,
			    void *payload)
{
	char text[GS_TIME_LEN];
	char claimed[GS_TIME_LEN + 8];
	int rc = GS_OK;

	gs__time_format(text, ref_ms);
	for (size_t i = 0; i < cs->n_rows && rc == GS_OK; i++) {
		const struct gs_cs_row *r = &cs->rows[i];
		const struct gs_table *t = r->table;
		/* The parsed changeset is ours to adjust: its values live in
		 * one allocation the merge owns for the entry. */
		struct gs_cs_value *v = (struct gs_cs_value *)r->new_vals;

		if (v == NULL)
			continue; /* a delete claims nothing */
		for (unsigned c = 0; c < t->n_cols && rc == GS_OK; c++) {
			struct gs_claimed_fix f;
			int64_t ms = 0;
			const void *p;

			if (v[c].type != GS_CS_TEXT ||
			    !claimed_col(t->cols[c].name) ||
			    v[c].len >= sizeof(claimed))
				continue;
			memcpy(claimed, v[c].p, v[c].len);
			claimed[v[c].len] = '\0';
			if (gs__time_parse(&ms, claimed) != GS_OK)
				continue;
			if (ms >= ref_ms - GS_CLAIMED_PAST_MS &&
			    ms <= ref_ms + GS_CLAIMED_FUTURE_MS)
				continue;
			p = copy(payload, text, strlen(text));
			if (p == NULL)
				return GS_ENOMEM;
			f.row = r;
			f.col = c;
			f.claimed = claimed;
			f.claimed_ms = ms;
			f.stored = text;
			f.stored_ms = ref_ms;
			v[c].p = p;
			v[c].len = strlen(text);
			rc = cb(&f, payload);
		}
	}
	return rc;
}
