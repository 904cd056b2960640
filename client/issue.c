/*
 * Issues (work orders) on the handheld: reporting and moving them through
 * DESIGN.md's state machine.
 *
 * A report writes the issue row and its creation events in one captured
 * transaction: creation as a draft (rule 1) and, unless kept as a draft,
 * draft -> reported (rule 2), so the server replays the same rules it
 * checks for every other move. state_rev counts accepted transitions:
 * 0 for a draft, 1 once reported.
 *
 * A move checks the rule for (state, target) and the device's role; a grid
 * worker may make only the moves marked offline-capable for GW, and those
 * marked for the assignee only when the issue is assigned to this worker.
 * Centre roles (CS, SC, DC, DH) may record their own moves too: their
 * devices sync at once, and the server decides every move by
 * compare-and-set on state_rev anyway. The local row shows the move at
 * once; the event carries the revision the device saw (base_rev).
 */
#define GS_MODULE "client.issue"

#include <string.h>

#include <gridsync/schema.h>

#include "device_impl.h"

static const char event_sql[] =
	"INSERT INTO issue_event (id, issue_id, kind, from_state, to_state,"
	" base_rev, actor_worker_id, actor_role, note, device_time, hlc,"
	" origin) VALUES (?, ?, 'transition', ?, ?, ?, ?, ?, ?, ?, ?, ?)";

static int add_event(struct gs_device *dev,
		     const struct gs_txn *txn,
		     const char *issue_id,
		     const char *from,
		     const char *to,
		     int64_t base_rev,
		     const char *note)
{
	char id[GS_ID_LEN];
	sqlite3_stmt *st = NULL;
	int rc = gs__new_id(dev, id);

	if (rc == GS_OK)
		rc = gs__db_prepare(dev->ctx, dev->db, &st, event_sql);
	if (rc != GS_OK)
		return rc;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, issue_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, from, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, to, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, base_rev);
	sqlite3_bind_text(st, 6, dev->worker_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, gs__role_name(dev->role), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, note, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 9, txn->now, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 10, txn->hlc_text, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 11, dev->device_id, -1, SQLITE_STATIC);
	rc = gs__db_step_done(dev->ctx, dev->db, st);
	sqlite3_finalize(st);
	return rc != GS_OK ? gs__write_err(dev, rc, "issue event") : GS_OK;
}

/* Look up a text value with one text parameter; *out NULL when no row. */
static int
lookup(struct gs_device *dev, const char *sql, const char *param, char **out)
{
	sqlite3_stmt *st = NULL;
	int rc;

	*out = NULL;
	rc = gs__db_prepare(dev->ctx, dev->db, &st, sql);
	if (rc != GS_OK)
		return rc;
	sqlite3_bind_text(st, 1, param, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
		*out = gs__strdup(dev->ctx,
				  (const char *)sqlite3_column_text(st, 0));
		rc = *out != NULL ? GS_OK : GS_ENOMEM;
	} else {
		rc = rc == SQLITE_ROW || rc == SQLITE_DONE
			     ? GS_OK
			     : gs__err_from_sqlite(dev->ctx, rc, dev->db);
	}
	sqlite3_finalize(st);
	return rc;
}

static bool valid_text(const char *s)
{
	return s == NULL || gs__utf8_valid((const uint8_t *)s, strlen(s));
}

int gs_issue_report(struct gs_device *dev,
		    char id_out[GS_ID_LEN],
		    const struct gs_issue_report_opts *o)
{
	char id[GS_ID_LEN];
	char *category = NULL;
	char *grid = NULL;
	struct gs_txn txn;
	sqlite3_stmt *st = NULL;
	const char *state;
	int rc;

	GS_CHECK_ARG(dev != NULL && id_out != NULL && o != NULL);
	if (o->version != GS_ISSUE_REPORT_OPTS_VERSION)
		return gs__err(dev->ctx, GS_EINVAL, "unknown options version");
	if (o->category == NULL || o->title == NULL || o->title[0] == '\0')
		return gs__err(dev->ctx, GS_EINVAL,
			       "issue: a category and a title are required");
	if (!valid_text(o->title) || !valid_text(o->description))
		return gs__err(dev->ctx, GS_EINVAL,
			       "issue: text is not valid UTF-8");
	if (o->grade != NULL && strcmp(o->grade, "red") != 0 &&
	    strcmp(o->grade, "yellow") != 0 && strcmp(o->grade, "blue") != 0)
		return gs__err(dev->ctx, GS_EINVAL,
			       "issue: grade must be red, yellow or blue");
	if (dev->worker_id == NULL)
		return gs__err(dev->ctx, GS_EINVAL,
			       "this device has no worker: initialise it with "
			       "--worker");
	if (!(dev->role & GS_ROLE_GW))
		return gs__err(dev->ctx, GS_ESTATE,
			       "issue: role %s cannot report from a device; "
			       "grid workers (GW) report issues",
			       gs__role_name(dev->role));
	rc = gs__new_id(dev, id);
	if (rc == GS_OK)
		rc = gs__txn_begin(dev, &txn);
	if (rc != GS_OK)
		return rc;
	rc = lookup(dev,
		    "SELECT id FROM category WHERE code = ? AND active = 1"
		    " AND deleted = 0",
		    o->category, &category);
	if (rc == GS_OK && category == NULL)
		rc = gs__err(dev->ctx, GS_ENOTFOUND,
			     "issue: no active category %.32s (see the "
			     "category table, or sync reference data)",
			     o->category);
	if (rc == GS_OK && o->grid_id != NULL) {
		grid = gs__strdup(dev->ctx, o->grid_id);
		rc = grid != NULL ? GS_OK : GS_ENOMEM;
	} else if (rc == GS_OK && o->household_id != NULL) {
		rc = lookup(dev,
			    "SELECT grid_id FROM household WHERE id = ?"
			    " AND deleted = 0",
			    o->household_id, &grid);
		if (rc == GS_OK && grid == NULL)
			rc = gs__err(dev->ctx, GS_ENOTFOUND,
				     "issue: no household %.64s",
				     o->household_id);
	} else if (rc == GS_OK && dev->scope.n > 0) {
		grid = gs__strdup(dev->ctx, dev->scope.ids[0]);
		rc = grid != NULL ? GS_OK : GS_ENOMEM;
	}
	if (rc == GS_OK && grid == NULL)
		rc = gs__err(dev->ctx, GS_EINVAL,
			     "issue: say where: give a household or a grid");
	if (rc == GS_OK)
		rc = gs__check_scope(dev, grid);
	state = o->draft ? "draft" : "reported";
	if (rc == GS_OK)
		rc = gs__db_prepare(
			dev->ctx, dev->db, &st,
			"INSERT INTO issue (id, local_code, source,"
			" category_id, grade, title, description, grid_id,"
			" household_id, occurred_at, reported_at,"
			" reporter_worker_id, state, state_rev, hlc, origin,"
			" created_at, created_by) VALUES (?1, ?2,"
			" 'grid_worker', ?3, ?4, ?5, ?6, ?7, ?8, ?9,"
			" CASE WHEN ?10 = 'reported' THEN ?9 END, ?11, ?10,"
			" ?12, ?13, ?14, ?9, ?11)");
	if (rc == GS_OK) {
		char local_code[16];

		/* A short code a worker can read out on the phone; the
		 * server assigns the official 工单号 (code) later. */
		memcpy(local_code, id + 24, 12);
		local_code[12] = '\0';
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, local_code, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 3, category, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, o->grade, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, o->title, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 6, o->description, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 7, grid, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 8, o->household_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 9, txn.now, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 10, state, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 11, dev->worker_id, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 12, o->draft ? 0 : 1);
		sqlite3_bind_text(st, 13, txn.hlc_text, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 14, dev->device_id, -1, SQLITE_STATIC);
		rc = gs__db_step_done(dev->ctx, dev->db, st);
		if (rc != GS_OK)
			rc = gs__write_err(dev, rc, "issue");
	}
	sqlite3_finalize(st);
	if (rc == GS_OK)
		rc = add_event(dev, &txn, id, "", "draft", 0, NULL);
	if (rc == GS_OK && !o->draft)
		rc = add_event(dev, &txn, id, "draft", "reported", 0, NULL);
	gs__free(dev->ctx, category);
	gs__free(dev->ctx, grid);
	if (rc == GS_OK)
		rc = gs__txn_commit(dev);
	else
		gs__txn_rollback(dev);
	if (rc == GS_OK)
		memcpy(id_out, id, GS_ID_LEN);
	return rc;
}

/* Does the rule's "requires" list name item? */
static bool requires(const struct gs_transition *r, const char *item)
{
	return r != NULL && r->requires != NULL &&
	       strstr(r->requires, item) != NULL;
}

/* Check a move for this device; fills a message that names the states and
 * the role, never the issue's content. */
static int check_move(struct gs_device *dev,
		      const char *from,
		      const struct gs_issue_move_opts *o,
		      const char *assignee,
		      const char *reporter)
{
	const struct gs_transition *r = gs__transition_find(from, o->to);
	const char *role = gs__role_name(dev->role);
	int64_t t;

	if (!gs__state_valid(o->to))
		return gs__err(dev->ctx, GS_EINVAL, "unknown state %.32s",
			       o->to);
	if (strcmp(from, o->to) == 0)
		return gs__err(dev->ctx, GS_ESTATE, "the issue is already %s",
			       from);
	if (r == NULL)
		return gs__err(dev->ctx, GS_ESTATE,
			       "no transition from %s to %s", from, o->to);
	if (!(r->roles & dev->role))
		return gs__err(dev->ctx, GS_ESTATE,
			       "role %s may not move an issue from %s to %s",
			       role, from, o->to);
	if (dev->role == GS_ROLE_GW && !(r->offline_roles & GS_ROLE_GW))
		return gs__err(dev->ctx, GS_ESTATE,
			       "moving from %s to %s is not allowed offline "
			       "for role GW",
			       from, o->to);
	if (r->assignee_only && dev->role == GS_ROLE_GW &&
	    (assignee == NULL || dev->worker_id == NULL ||
	     strcmp(assignee, dev->worker_id) != 0))
		return gs__err(dev->ctx, GS_ESTATE,
			       "only the assigned worker may move this issue "
			       "from %s to %s",
			       from, o->to);
	/* The server's rules (docs/SYNC.md, "Authorization"), refused here
	 * at once rather than after the next sync. */
	if (dev->role == GS_ROLE_GW && strcmp(o->to, "cancelled") == 0 &&
	    (reporter == NULL || dev->worker_id == NULL ||
	     strcmp(reporter, dev->worker_id) != 0))
		return gs__err(dev->ctx, GS_ESTATE,
			       "only the worker who reported an issue may "
			       "withdraw it");
	if (!requires(r, "assignee") &&
	    ((o->assignee != NULL && o->assignee[0] != '\0') ||
	     (o->due != NULL && o->due[0] != '\0')))
		return gs__err(dev->ctx, GS_EINVAL,
			       "moving from %s to %s keeps the assignee and "
			       "the deadline the issue has; --assignee and "
			       "--due belong to a dispatch from accepted or "
			       "returned",
			       from, o->to);
	if (requires(r, "note") && (o->note == NULL || o->note[0] == '\0'))
		return gs__err(dev->ctx, GS_EINVAL,
			       "moving from %s to %s needs a note (--note)",
			       from, o->to);
	if (requires(r, "assignee") &&
	    (o->assignee == NULL || o->assignee[0] == '\0'))
		return gs__err(dev->ctx, GS_EINVAL,
			       "moving from %s to %s needs an assignee "
			       "(--assignee WORKER_ID)",
			       from, o->to);
	if (requires(r, "due") &&
	    (o->due == NULL || gs__time_parse(&t, o->due) != GS_OK))
		return gs__err(dev->ctx, GS_EINVAL,
			       "moving from %s to %s needs a deadline (--due "
			       "2025-03-01T18:00:00Z)",
			       from, o->to);
	if (!valid_text(o->note))
		return gs__err(dev->ctx, GS_EINVAL,
			       "the note is not valid UTF-8");
	return GS_OK;
}

int gs_issue_move(struct gs_device *dev,
		  const char *id,
		  const struct gs_issue_move_opts *o)
{
	struct gs_txn txn;
	sqlite3_stmt *st = NULL;
	char *from = NULL;
	char *assignee = NULL;
	char *reporter = NULL;
	char *grid = NULL;
	int64_t rev = 0;
	int rc;

	GS_CHECK_ARG(dev != NULL && id != NULL && o != NULL);
	if (o->version != GS_ISSUE_MOVE_OPTS_VERSION)
		return gs__err(dev->ctx, GS_EINVAL, "unknown options version");
	if (o->to == NULL)
		return gs__err(dev->ctx, GS_EINVAL, "a target state is needed");
	rc = gs__txn_begin(dev, &txn);
	if (rc != GS_OK)
		return rc;
	rc = gs__db_prepare(dev->ctx, dev->db, &st,
			    "SELECT state, state_rev, assignee_worker_id,"
			    " grid_id, reporter_worker_id FROM issue"
			    " WHERE id = ? AND deleted = 0");
	if (rc == GS_OK) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			from = gs__strdup(
				dev->ctx,
				(const char *)sqlite3_column_text(st, 0));
			rev = sqlite3_column_int64(st, 1);
			if (sqlite3_column_type(st, 2) != SQLITE_NULL)
				assignee = gs__strdup(
					dev->ctx,
					(const char *)sqlite3_column_text(st,
									  2));
			if (sqlite3_column_type(st, 3) != SQLITE_NULL)
				grid = gs__strdup(
					dev->ctx,
					(const char *)sqlite3_column_text(st,
									  3));
			if (sqlite3_column_type(st, 4) != SQLITE_NULL)
				reporter = gs__strdup(
					dev->ctx,
					(const char *)sqlite3_column_text(st,
									  4));
			rc = from != NULL ? GS_OK : GS_ENOMEM;
		} else if (rc == SQLITE_DONE) {
			rc = gs__err(dev->ctx, GS_ENOTFOUND, "no issue %.64s",
				     id);
		} else {
			rc = gs__err_from_sqlite(dev->ctx, rc, dev->db);
		}
		sqlite3_finalize(st);
		st = NULL;
	}
	/* The worker's own order (assignee or reporter) is in its scope
	 * whatever its grid. */
	if (rc == GS_OK && grid != NULL &&
	    !(dev->worker_id != NULL &&
	      ((assignee != NULL && strcmp(assignee, dev->worker_id) == 0) ||
	       (reporter != NULL && strcmp(reporter, dev->worker_id) == 0))))
		rc = gs__check_scope(dev, grid);
	if (rc == GS_OK)
		rc = check_move(dev, from, o, assignee, reporter);
	if (rc == GS_OK)
		rc = gs__db_prepare(
			dev->ctx, dev->db, &st,
			"UPDATE issue SET state = ?1, state_rev = state_rev + "
			"1,"
			" assignee_worker_id = ifnull(?2, assignee_worker_id),"
			" due_at = ifnull(?3, due_at),"
			" closed_at = CASE WHEN ?1 = 'closed' THEN ?4"
			" ELSE closed_at END,"
			" reported_at = CASE WHEN ?1 = 'reported' THEN"
			" ifnull(reported_at, ?4) ELSE reported_at END,"
			" hlc = ?5, updated_at = ?4, updated_by = ?6"
			" WHERE id = ?7");
	if (rc == GS_OK) {
		bool dispatch =
			requires(gs__transition_find(from, o->to), "assignee");

		sqlite3_bind_text(st, 1, o->to, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, dispatch ? o->assignee : NULL, -1,
				  SQLITE_STATIC);
		sqlite3_bind_text(st, 3, dispatch ? o->due : NULL, -1,
				  SQLITE_STATIC);
		sqlite3_bind_text(st, 4, txn.now, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, txn.hlc_text, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 6, dev->worker_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 7, id, -1, SQLITE_STATIC);
		rc = gs__db_step_done(dev->ctx, dev->db, st);
		if (rc != GS_OK)
			rc = gs__write_err(dev, rc, "issue");
	}
	sqlite3_finalize(st);
	if (rc == GS_OK)
		rc = add_event(dev, &txn, id, from, o->to, rev, o->note);
	gs__free(dev->ctx, from);
	gs__free(dev->ctx, assignee);
	gs__free(dev->ctx, reporter);
	gs__free(dev->ctx, grid);
	if (rc == GS_OK)
		return gs__txn_commit(dev);
	gs__txn_rollback(dev);
	return rc;
}

int gs_issue_list(struct gs_device *dev,
		  const char *state,
		  gs_row_cb cb,
		  void *payload)
{
	const char *params[] = { state, NULL };

	GS_CHECK_ARG(dev != NULL && cb != NULL);
	if (state != NULL && !gs__state_valid(state))
		return gs__err(dev->ctx, GS_EINVAL, "unknown state %.32s",
			       state);
	return gs__rows_query(
		dev, "issue", cb, payload,
		"SELECT i.id, ifnull(i.code, i.local_code) AS code, i.state,"
		" i.state_rev, i.grade, c.code AS category, i.title,"
		" g.code AS grid, i.assignee_worker_id AS assignee, i.due_at,"
		" i.reported_at, i.hlc IN (SELECT printf('%016x', hlc)"
		" FROM gs_outbox) AS pending"
		" FROM issue i LEFT JOIN category c ON c.id = i.category_id"
		" LEFT JOIN grid g ON g.id = i.grid_id"
		" WHERE i.deleted = 0 AND (?1 IS NULL OR i.state = ?1)"
		" ORDER BY i.created_at, i.id",
		state != NULL ? params : NULL);
}

int gs_issue_show(struct gs_device *dev,
		  const char *id,
		  gs_row_cb cb,
		  void *payload)
{
	const char *params[] = { id, NULL };
	char *found = NULL;
	int rc;

	GS_CHECK_ARG(dev != NULL && id != NULL && cb != NULL);
	rc = lookup(dev, "SELECT id FROM issue WHERE id = ?", id, &found);
	if (rc == GS_OK && found == NULL)
		rc = gs__err(dev->ctx, GS_ENOTFOUND, "no issue %.64s", id);
	gs__free(dev->ctx, found);
	if (rc == GS_OK)
		rc = gs__rows_query(dev, "issue", cb, payload,
				    "SELECT * FROM issue WHERE id = ?", params);
	if (rc == GS_OK)
		rc = gs__rows_query(
			dev, "issue_event", cb, payload,
			"SELECT id, kind, from_state, to_state, base_rev,"
			" actor_worker_id, actor_role, note, device_time,"
			" apply_status, reject_reason FROM issue_event"
			" WHERE issue_id = ? ORDER BY hlc, base_rev,"
			" from_state <> '', id",
			params);
	return rc;
}

int gs_category_list(struct gs_device *dev, gs_row_cb cb, void *payload)
{
	GS_CHECK_ARG(dev != NULL && cb != NULL);
	return gs__rows_query(dev, "category", cb, payload,
			      "SELECT code, name, level, domain, needs_photo"
			      " FROM category WHERE active = 1 AND deleted = 0"
			      " ORDER BY level DESC, code",
			      NULL);
}
