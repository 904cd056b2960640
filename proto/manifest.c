/*
 * The table manifest: for every replicated table, its merge class, its
 * columns in declaration order (a changeset addresses columns by position),
 * which columns a device may write, and how a row finds its grid.
 * tests/proto/test_manifest.c proves this matches the migrated schema.
 */
#include <string.h>

#include <gridsync/schema.h>

#define T  GS_COL_TEXT
#define I  GS_COL_INTEGER
#define RL GS_COL_REAL
#define B  GS_COL_BLOB

/* Reference tables: nothing is device-writable. */
#define RPK (GS_COL_PK | GS_COL_NOTNULL)
#define RNN GS_COL_NOTNULL
#define R0  0u
/* Device tables. */
#define DPK (GS_COL_PK | GS_COL_NOTNULL | GS_COL_DEVICE)
#define DNN (GS_COL_NOTNULL | GS_COL_DEVICE)
#define D0  GS_COL_DEVICE
#define DPN (GS_COL_DEVICE | GS_COL_PERSONAL)
#define DNP (GS_COL_NOTNULL | GS_COL_DEVICE | GS_COL_PERSONAL)
#define GOV GS_COL_GOVERNED
#define GNN (GS_COL_GOVERNED | GS_COL_NOTNULL)
#define SRV GS_COL_SERVER
#define SNN (GS_COL_SERVER | GS_COL_NOTNULL)
#define RPN GS_COL_PERSONAL
#define RNP (GS_COL_NOTNULL | GS_COL_PERSONAL)

#define SEQ_DEL(del)              \
	{ "server_seq", I, SRV }, \
	{                         \
		"deleted", I, del \
	}
#define COLS(a) (unsigned)(sizeof(a) / sizeof((a)[0])), a

static const struct gs_column admin_area[] = {
	{ "id", T, RPK },       { "code", T, RNN }, { "level", T, RNN },
	{ "parent_id", T, R0 }, { "name", T, RNN }, SEQ_DEL(RNN),
};
static const struct gs_column grid[] = {
	{ "id", T, RPK },
	{ "code", T, RNN },
	{ "level", T, RNN },
	{ "community_id", T, RNN },
	{ "parent_grid_id", T, R0 },
	{ "name", T, RNN },
	{ "target_households", I, R0 },
	{ "lat", RL, R0 },
	{ "lng", RL, R0 },
	{ "boundary", B, R0 },
	{ "valid_from", T, R0 },
	{ "valid_to", T, R0 },
	SEQ_DEL(RNN),
};
static const struct gs_column place[] = {
	{ "id", T, RPK },       { "kind", T, RNN },
	{ "parent_id", T, R0 }, { "grid_id", T, R0 },
	{ "name", T, RNN },     { "addr_text", T, RPN },
	{ "addr_code", T, R0 }, { "floors", I, R0 },
	{ "has_lift", I, R0 },  { "property_mgmt", T, R0 },
	{ "lat", RL, RPN },     { "lng", RL, RPN },
	SEQ_DEL(RNN),
};
static const struct gs_column dwelling[] = {
	{ "id", T, RPK },      { "place_id", T, RNN }, { "grid_id", T, RNN },
	{ "room_no", T, RNP }, { "floor", I, R0 },     { "usage", T, R0 },
	SEQ_DEL(RNN),          { "area_m2", RL, R0 }, /* v2 */
};
static const struct gs_column org[] = {
	{ "id", T, RPK },     { "kind", T, RNN }, { "name", T, RNN },
	{ "area_id", T, R0 }, SEQ_DEL(RNN),
};
static const struct gs_column worker[] = {
	{ "id", T, RPK },     { "name", T, RNP }, { "phone_masked", T, RPN },
	{ "org_id", T, R0 },  { "role", T, RNN }, { "is_volunteer", I, RNN },
	{ "active", I, RNN }, SEQ_DEL(RNN),
};
static const struct gs_column assignment[] = {
	{ "id", T, RPK },   { "worker_id", T, RNN },  { "grid_id", T, RNN },
	{ "duty", T, RNN }, { "valid_from", T, RNN }, { "valid_to", T, R0 },
	SEQ_DEL(RNN),
};
static const struct gs_column category[] = {
	{ "id", T, RPK },
	{ "code", T, RNN },
	{ "parent_id", T, R0 },
	{ "level", I, RNN },
	{ "domain", T, RNN },
	{ "name", T, RNN },
	{ "default_grade", T, R0 },
	{ "default_handler_org_id", T, R0 },
	{ "needs_photo", I, RNN },
	{ "active", I, RNN },
	SEQ_DEL(RNN),
};
static const struct gs_column tag_def[] = {
	{ "code", T, RPK },
	{ "name", T, RNN },
	{ "grp", T, RNN },
	{ "sensitivity", T, RNN },
	{ "device_visible", I, RNN },
	{ "visit_interval_days", I, R0 },
	SEQ_DEL(RNN),
};
static const struct gs_column sla_policy[] = {
	{ "id", T, RPK },
	{ "category_id", T, R0 },
	{ "grade", T, R0 },
	{ "stage", T, RNN },
	{ "limit_minutes", I, RNN },
	{ "calendar", T, RNN },
	SEQ_DEL(RNN),
};
static const struct gs_column transition_rule[] = {
	{ "from_state", T, RPK }, { "to_state", T, RPK },   { "role", T, RPK },
	{ "requires", T, R0 },    { "offline_ok", I, RNN }, SEQ_DEL(RNN),
};
static const struct gs_column mobilization_task[] = {
	{ "id", T, RPK },
	{ "title", T, RNN },
	{ "grid_id", T, RNN },
	{ "issued_at", T, RNN },
	{ "deadline_at", T, RNN },
	{ "instructions", T, RPN },
	SEQ_DEL(RNN),
};
static const struct gs_column merged_into[] = {
	{ "id", T, RPK },      { "tbl", T, RNN }, { "into_id", T, RNN },
	{ "grid_id", T, RNN }, { "at", T, RNN },  SEQ_DEL(RNN),
};
static const struct gs_column household[] = {
	{ "id", T, DPK },        { "dwelling_id", T, D0 },
	{ "grid_id", T, DNN },   { "head_resident_id", T, D0 },
	{ "size", I, D0 },       { "residence_type", T, D0 },
	{ "tenure", T, D0 },     { "phone_enc", B, DPN },
	{ "status", T, DNN },    { "last_visit_at", T, D0 },
	{ "note", T, DPN },      { "hlc", T, DNN },
	{ "origin", T, DNN },    { "created_at", T, DNN },
	{ "created_by", T, D0 }, { "updated_at", T, D0 },
	{ "updated_by", T, D0 }, SEQ_DEL(DNN),
};
static const struct gs_column resident[] = {
	{ "id", T, DPK },
	{ "household_id", T, DNN },
	{ "name", T, DNP },
	{ "gender", T, D0 },
	{ "birth_date", T, DPN },
	{ "relation", T, D0 },
	{ "id_no_enc", B, DPN },
	{ "id_no_hmac", T, DPN },
	{ "id_no_masked", T, DPN },
	{ "ethnicity", T, D0 },
	{ "education", T, D0 },
	{ "marital", T, D0 },
	{ "employment", T, D0 },
	{ "phone_enc", B, DPN },
	{ "health_note_enc", B, DPN },
	{ "presence", T, DNN },
	{ "hlc", T, DNN },
	{ "origin", T, DNN },
	{ "created_at", T, DNN },
	{ "created_by", T, D0 },
	{ "updated_at", T, D0 },
	{ "updated_by", T, D0 },
	SEQ_DEL(DNN),
};
static const struct gs_column resident_tag[] = {
	{ "id", T, DPK },       { "resident_id", T, DNN },
	{ "tag_code", T, DNN }, { "grade", T, D0 },
	{ "source", T, DNN },   { "valid_from", T, D0 },
	{ "valid_to", T, D0 },  { "verified_by", T, D0 },
	{ "hlc", T, DNN },      { "origin", T, DNN },
	SEQ_DEL(DNN),
};
static const struct gs_column visit[] = {
	{ "id", T, DPK },
	{ "household_id", T, D0 },
	{ "grid_id", T, DNN },
	{ "worker_id", T, DNN },
	{ "kind", T, DNN },
	{ "task_id", T, D0 },
	{ "started_at", T, DNN },
	{ "ended_at", T, D0 },
	{ "lat", RL, DPN },
	{ "lng", RL, DPN },
	{ "loc_accuracy_m", RL, D0 },
	{ "loc_source", T, D0 },
	{ "outcome", T, DNN },
	{ "answers", T, DPN },
	{ "summary", T, DPN },
	{ "supersedes_id", T, D0 },
	{ "hlc", T, DNN },
	{ "origin", T, DNN },
	{ "created_at", T, DNN },
	SEQ_DEL(DNN),
};
static const struct gs_column mobilization_result[] = {
	{ "task_id", T, DPK }, { "household_id", T, DPK },
	{ "status", T, DNN },  { "at", T, DNN },
	{ "visit_id", T, D0 }, { "hlc", T, DNN },
	{ "origin", T, DNN },  SEQ_DEL(DNN),
};
static const struct gs_column issue[] = {
	{ "id", T, DPK },
	{ "code", T, SRV },
	{ "local_code", T, D0 },
	{ "source", T, DNN },
	{ "category_id", T, DNN },
	{ "grade", T, D0 },
	{ "title", T, DNP },
	{ "description", T, DPN },
	{ "addr_text", T, DPN },
	{ "grid_id", T, D0 },
	{ "place_id", T, D0 },
	{ "household_id", T, D0 },
	{ "lat", RL, DPN },
	{ "lng", RL, DPN },
	{ "occurred_at", T, D0 },
	{ "reported_at", T, D0 },
	{ "reporter_worker_id", T, D0 },
	{ "complainant_enc", B, DPN },
	{ "state", T, GNN },
	{ "state_rev", I, GNN },
	{ "assignee_org_id", T, GOV },
	{ "assignee_worker_id", T, GOV },
	{ "due_at", T, GOV },
	{ "overdue_level", I, SNN },
	{ "parent_issue_id", T, D0 },
	{ "merged_into_id", T, SRV },
	{ "satisfaction", T, SRV },
	{ "closed_at", T, GOV },
	{ "hlc", T, DNN },
	{ "origin", T, DNN },
	{ "created_at", T, DNN },
	{ "created_by", T, D0 },
	{ "updated_at", T, D0 },
	{ "updated_by", T, D0 },
	SEQ_DEL(DNN),
};
static const struct gs_column issue_event[] = {
	{ "id", T, DPK },
	{ "issue_id", T, DNN },
	{ "kind", T, DNN },
	{ "from_state", T, D0 },
	{ "to_state", T, D0 },
	{ "base_rev", I, D0 },
	{ "actor_worker_id", T, D0 },
	{ "actor_role", T, DNN },
	{ "reason_code", T, D0 },
	{ "note", T, DPN },
	{ "device_time", T, DNN },
	{ "hlc", T, DNN },
	{ "origin", T, DNN },
	{ "apply_status", T, SNN },
	{ "reject_reason", T, SRV },
	SEQ_DEL(DNN),
};
static const struct gs_column attachment[] = {
	{ "id", T, DPK },
	{ "owner_table", T, DNN },
	{ "owner_id", T, DNN },
	{ "kind", T, DNN },
	{ "mime", T, DNN },
	{ "bytes", I, DNN },
	{ "sm3", T, DNN },
	{ "taken_at", T, D0 },
	{ "lat", RL, DPN },
	{ "lng", RL, DPN },
	{ "rel_path", T, D0 },
	{ "key_id", T, D0 },
	{ "upload_state", T, DNN },
	{ "remote_key", T, D0 },
	{ "hlc", T, DNN },
	{ "origin", T, DNN },
	SEQ_DEL(DNN),
};

#define GLOBAL(name, cls)                                         \
	{                                                         \
#name, cls, COLS(name), GS_SCOPE_GLOBAL, -1, NULL \
	}
#define BYGRID(name, cls, col)                                   \
	{                                                        \
#name, cls, COLS(name), GS_SCOPE_GRID, col, NULL \
	}
#define BYPARENT(name, cls, col, parent)                             \
	{                                                            \
#name, cls, COLS(name), GS_SCOPE_PARENT, col, parent \
	}

/* Parents before children, so that a download applied in this order never
 * meets a missing foreign key. */
static const struct gs_table tables[] = {
	GLOBAL(admin_area, GS_CLASS_R),
	{ "grid", GS_CLASS_R, COLS(grid), GS_SCOPE_SELF, 0, NULL },
	BYGRID(place, GS_CLASS_R, 3),
	BYGRID(dwelling, GS_CLASS_R, 2),
	GLOBAL(org, GS_CLASS_R),
	GLOBAL(worker, GS_CLASS_R),
	BYGRID(assignment, GS_CLASS_R, 2),
	GLOBAL(category, GS_CLASS_R),
	GLOBAL(tag_def, GS_CLASS_R),
	GLOBAL(sla_policy, GS_CLASS_R),
	GLOBAL(transition_rule, GS_CLASS_R),
	BYGRID(mobilization_task, GS_CLASS_R, 2),
	BYGRID(household, GS_CLASS_D, 2),
	BYPARENT(resident, GS_CLASS_D, 1, "household"),
	BYPARENT(resident_tag, GS_CLASS_D, 1, "resident"),
	BYGRID(visit, GS_CLASS_A, 2),
	BYPARENT(mobilization_result, GS_CLASS_A, 1, "household"),
	BYGRID(issue, GS_CLASS_S, 9),
	BYPARENT(issue_event, GS_CLASS_A, 1, "issue"),
	{ "attachment", GS_CLASS_A, COLS(attachment), GS_SCOPE_OWNER, 2, NULL },
	BYGRID(merged_into, GS_CLASS_R, 3), /* v3 */
};

const struct gs_table *gs__manifest(size_t *n_out)
{
	*n_out = sizeof(tables) / sizeof(tables[0]);
	return tables;
}

const struct gs_table *gs__manifest_find(const char *name)
{
	if (name == NULL)
		return NULL;
	for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++)
		if (strcmp(tables[i].name, name) == 0)
			return &tables[i];
	return NULL;
}

int gs__table_col(const struct gs_table *t, const char *name)
{
	for (unsigned i = 0; i < t->n_cols; i++)
		if (strcmp(t->cols[i].name, name) == 0)
			return (int)i;
	return -1;
}

unsigned gs__table_n_pk(const struct gs_table *t)
{
	unsigned n = 0;

	for (unsigned i = 0; i < t->n_cols; i++)
		n += (t->cols[i].flags & GS_COL_PK) != 0;
	return n;
}
