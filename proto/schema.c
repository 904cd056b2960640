/*
 * Replicated schema v1 (DESIGN.md), as migration steps keyed by
 * PRAGMA user_version. Changes from DESIGN.md, recorded in docs/SCHEMA.md:
 * every replicated table carries server_seq and deleted (transition_rule,
 * mobilization_result and issue_event lacked one or both), so that the
 * download path treats every table alike.
 */
#include <gridsync/schema.h>

static const char *const v1[] = {
	/* R: administrative and grid hierarchy */
	"CREATE TABLE admin_area ("
	" id TEXT PRIMARY KEY, code TEXT NOT NULL UNIQUE,"
	" level TEXT NOT NULL CHECK(level IN('city','district','street',"
	"'community')),"
	" parent_id TEXT REFERENCES admin_area(id), name TEXT NOT NULL,"
	" server_seq INTEGER, deleted INTEGER NOT NULL DEFAULT 0);",
	"CREATE TABLE grid ("
	" id TEXT PRIMARY KEY, code TEXT NOT NULL UNIQUE,"
	" level TEXT NOT NULL CHECK(level IN('community_total','general',"
	"'micro','exclusive')),"
	" community_id TEXT NOT NULL REFERENCES admin_area(id),"
	" parent_grid_id TEXT REFERENCES grid(id),"
	" name TEXT NOT NULL, target_households INTEGER, lat REAL, lng REAL,"
	" boundary BLOB, valid_from TEXT, valid_to TEXT, server_seq INTEGER,"
	" deleted INTEGER NOT NULL DEFAULT 0);",
	"CREATE TABLE place ("
	" id TEXT PRIMARY KEY, kind TEXT NOT NULL CHECK(kind IN('compound',"
	"'building','unit','shop','poi')),"
	" parent_id TEXT REFERENCES place(id), grid_id TEXT REFERENCES "
	"grid(id),"
	" name TEXT NOT NULL, addr_text TEXT, addr_code TEXT, floors INTEGER,"
	" has_lift INTEGER, property_mgmt TEXT, lat REAL, lng REAL,"
	" server_seq INTEGER, deleted INTEGER NOT NULL DEFAULT 0);",
	"CREATE TABLE dwelling ("
	" id TEXT PRIMARY KEY, place_id TEXT NOT NULL REFERENCES place(id),"
	" grid_id TEXT NOT NULL REFERENCES grid(id), room_no TEXT NOT NULL,"
	" floor INTEGER, usage TEXT, server_seq INTEGER,"
	" deleted INTEGER NOT NULL DEFAULT 0, UNIQUE(place_id, room_no));",
	/* R: people, orgs, assignments */
	"CREATE TABLE org (id TEXT PRIMARY KEY, kind TEXT NOT NULL,"
	" name TEXT NOT NULL, area_id TEXT REFERENCES admin_area(id),"
	" server_seq INTEGER, deleted INTEGER NOT NULL DEFAULT 0);",
	"CREATE TABLE worker (id TEXT PRIMARY KEY, name TEXT NOT NULL,"
	" phone_masked TEXT, org_id TEXT REFERENCES org(id),"
	" role TEXT NOT NULL, is_volunteer INTEGER NOT NULL DEFAULT 0,"
	" active INTEGER NOT NULL DEFAULT 1, server_seq INTEGER,"
	" deleted INTEGER NOT NULL DEFAULT 0);",
	"CREATE TABLE assignment ("
	" id TEXT PRIMARY KEY, worker_id TEXT NOT NULL REFERENCES worker(id),"
	" grid_id TEXT NOT NULL REFERENCES grid(id),"
	" duty TEXT NOT NULL CHECK(duty IN('responsible','assistant',"
	"'supervisor')),"
	" valid_from TEXT NOT NULL, valid_to TEXT, server_seq INTEGER,"
	" deleted INTEGER NOT NULL DEFAULT 0);",
	/* R: dictionaries and rules */
	"CREATE TABLE category ("
	" id TEXT PRIMARY KEY, code TEXT NOT NULL UNIQUE,"
	" parent_id TEXT REFERENCES category(id), level INTEGER NOT NULL,"
	" domain TEXT NOT NULL, name TEXT NOT NULL, default_grade TEXT,"
	" default_handler_org_id TEXT REFERENCES org(id),"
	" needs_photo INTEGER NOT NULL DEFAULT 1,"
	" active INTEGER NOT NULL DEFAULT 1, server_seq INTEGER,"
	" deleted INTEGER NOT NULL DEFAULT 0);",
	"CREATE TABLE tag_def (code TEXT PRIMARY KEY, name TEXT NOT NULL,"
	" grp TEXT NOT NULL, sensitivity TEXT NOT NULL CHECK(sensitivity IN("
	"'normal','sensitive','restricted')),"
	" device_visible INTEGER NOT NULL DEFAULT 1, visit_interval_days"
	" INTEGER, server_seq INTEGER, deleted INTEGER NOT NULL DEFAULT 0);",
	"CREATE TABLE sla_policy (id TEXT PRIMARY KEY,"
	" category_id TEXT REFERENCES category(id), grade TEXT,"
	" stage TEXT NOT NULL, limit_minutes INTEGER NOT NULL,"
	" calendar TEXT NOT NULL DEFAULT 'natural', server_seq INTEGER,"
	" deleted INTEGER NOT NULL DEFAULT 0);",
	"CREATE TABLE transition_rule ("
	" from_state TEXT NOT NULL, to_state TEXT NOT NULL, role TEXT NOT NULL,"
	" requires TEXT, offline_ok INTEGER NOT NULL, server_seq INTEGER,"
	" deleted INTEGER NOT NULL DEFAULT 0,"
	" PRIMARY KEY(from_state, to_state, role));",
	"CREATE TABLE mobilization_task ("
	" id TEXT PRIMARY KEY, title TEXT NOT NULL,"
	" grid_id TEXT NOT NULL REFERENCES grid(id), issued_at TEXT NOT NULL,"
	" deadline_at TEXT NOT NULL, instructions TEXT, server_seq INTEGER,"
	" deleted INTEGER NOT NULL DEFAULT 0);",
	/* D: households and residents */
	"CREATE TABLE household ("
	" id TEXT PRIMARY KEY, dwelling_id TEXT REFERENCES dwelling(id),"
	" grid_id TEXT NOT NULL REFERENCES grid(id), head_resident_id TEXT,"
	" size INTEGER, residence_type TEXT, tenure TEXT, phone_enc BLOB,"
	" status TEXT NOT NULL DEFAULT 'active', last_visit_at TEXT, note TEXT,"
	" hlc TEXT NOT NULL, origin TEXT NOT NULL, created_at TEXT NOT NULL,"
	" created_by TEXT, updated_at TEXT, updated_by TEXT,"
	" server_seq INTEGER, deleted INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX household_grid ON household(grid_id);",
	"CREATE TABLE resident ("
	" id TEXT PRIMARY KEY, household_id TEXT NOT NULL"
	" REFERENCES household(id),"
	" name TEXT NOT NULL, gender TEXT, birth_date TEXT, relation TEXT,"
	" id_no_enc BLOB, id_no_hmac TEXT, id_no_masked TEXT, ethnicity TEXT,"
	" education TEXT, marital TEXT, employment TEXT, phone_enc BLOB,"
	" health_note_enc BLOB, presence TEXT NOT NULL DEFAULT 'present',"
	" hlc TEXT NOT NULL, origin TEXT NOT NULL, created_at TEXT NOT NULL,"
	" created_by TEXT, updated_at TEXT, updated_by TEXT,"
	" server_seq INTEGER, deleted INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX resident_hmac ON resident(id_no_hmac);"
	"CREATE INDEX resident_household ON resident(household_id);",
	"CREATE TABLE resident_tag ("
	" id TEXT PRIMARY KEY, resident_id TEXT NOT NULL"
	" REFERENCES resident(id),"
	" tag_code TEXT NOT NULL REFERENCES tag_def(code), grade TEXT,"
	" source TEXT NOT NULL, valid_from TEXT, valid_to TEXT,"
	" verified_by TEXT, hlc TEXT NOT NULL, origin TEXT NOT NULL,"
	" server_seq INTEGER, deleted INTEGER NOT NULL DEFAULT 0);",
	/* A: visits */
	"CREATE TABLE visit ("
	" id TEXT PRIMARY KEY, household_id TEXT REFERENCES household(id),"
	" grid_id TEXT NOT NULL REFERENCES grid(id),"
	" worker_id TEXT NOT NULL REFERENCES worker(id), kind TEXT NOT NULL,"
	" task_id TEXT, started_at TEXT NOT NULL, ended_at TEXT, lat REAL,"
	" lng REAL, loc_accuracy_m REAL, loc_source TEXT,"
	" outcome TEXT NOT NULL, answers TEXT, summary TEXT,"
	" supersedes_id TEXT REFERENCES visit(id), hlc TEXT NOT NULL,"
	" origin TEXT NOT NULL, created_at TEXT NOT NULL, server_seq INTEGER,"
	" deleted INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX visit_household ON visit(household_id, started_at);",
	"CREATE TABLE mobilization_result ("
	" task_id TEXT NOT NULL REFERENCES mobilization_task(id),"
	" household_id TEXT NOT NULL REFERENCES household(id),"
	" status TEXT NOT NULL, at TEXT NOT NULL,"
	" visit_id TEXT REFERENCES visit(id), hlc TEXT NOT NULL,"
	" origin TEXT NOT NULL, server_seq INTEGER,"
	" deleted INTEGER NOT NULL DEFAULT 0,"
	" PRIMARY KEY(task_id, household_id));",
	/* S: work orders, A: their events */
	"CREATE TABLE issue ("
	" id TEXT PRIMARY KEY, code TEXT UNIQUE, local_code TEXT,"
	" source TEXT NOT NULL,"
	" category_id TEXT NOT NULL REFERENCES category(id), grade TEXT,"
	" title TEXT NOT NULL, description TEXT, addr_text TEXT,"
	" grid_id TEXT REFERENCES grid(id), place_id TEXT REFERENCES place(id),"
	" household_id TEXT REFERENCES household(id), lat REAL, lng REAL,"
	" occurred_at TEXT, reported_at TEXT,"
	" reporter_worker_id TEXT REFERENCES worker(id),"
	" complainant_enc BLOB, state TEXT NOT NULL,"
	" state_rev INTEGER NOT NULL DEFAULT 0,"
	" assignee_org_id TEXT REFERENCES org(id),"
	" assignee_worker_id TEXT REFERENCES worker(id), due_at TEXT,"
	" overdue_level INTEGER NOT NULL DEFAULT 0,"
	" parent_issue_id TEXT REFERENCES issue(id),"
	" merged_into_id TEXT REFERENCES issue(id), satisfaction TEXT,"
	" closed_at TEXT, hlc TEXT NOT NULL, origin TEXT NOT NULL,"
	" created_at TEXT NOT NULL, created_by TEXT, updated_at TEXT,"
	" updated_by TEXT, server_seq INTEGER,"
	" deleted INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX issue_scope ON issue(grid_id, state);",
	"CREATE TABLE issue_event ("
	" id TEXT PRIMARY KEY, issue_id TEXT NOT NULL REFERENCES issue(id),"
	" kind TEXT NOT NULL, from_state TEXT, to_state TEXT, base_rev INTEGER,"
	" actor_worker_id TEXT, actor_role TEXT NOT NULL, reason_code TEXT,"
	" note TEXT, device_time TEXT NOT NULL, hlc TEXT NOT NULL,"
	" origin TEXT NOT NULL, apply_status TEXT NOT NULL DEFAULT 'pending',"
	" reject_reason TEXT, server_seq INTEGER,"
	" deleted INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX issue_event_issue ON issue_event(issue_id, hlc);",
	/* A: attachments (blobs on disk) */
	"CREATE TABLE attachment ("
	" id TEXT PRIMARY KEY, owner_table TEXT NOT NULL,"
	" owner_id TEXT NOT NULL, kind TEXT NOT NULL, mime TEXT NOT NULL,"
	" bytes INTEGER NOT NULL, sm3 TEXT NOT NULL, taken_at TEXT, lat REAL,"
	" lng REAL, rel_path TEXT, key_id TEXT,"
	" upload_state TEXT NOT NULL DEFAULT 'pending', remote_key TEXT,"
	" hlc TEXT NOT NULL, origin TEXT NOT NULL, server_seq INTEGER,"
	" deleted INTEGER NOT NULL DEFAULT 0);",
	NULL,
};

/* v2: a dwelling's floor area, so that overcrowded rentals (群租) can be
 * spotted from households per square metre. A device on v1 cannot hold
 * v2 dwelling rows: the server tells it to upgrade (docs/SCHEMA.md). */
static const char *const v2[] = {
	"ALTER TABLE dwelling ADD COLUMN area_m2 REAL;",
	NULL,
};

/* v3: dedupe. A household registered twice for one dwelling, or a
 * resident twice under one ID number (its HMAC), is merged by the server
 * into the row it already held: merged_into redirects the duplicate's id
 * (of table tbl) to into_id. Only the server writes it; devices hide the
 * duplicates and the server re-points what refers to them. A table of its
 * own, so the rows of households and residents keep their layout. */
static const char *const v3[] = {
	"CREATE TABLE merged_into ("
	" id TEXT PRIMARY KEY, tbl TEXT NOT NULL, into_id TEXT NOT NULL,"
	" grid_id TEXT NOT NULL REFERENCES grid(id), at TEXT NOT NULL,"
	" server_seq INTEGER, deleted INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX merged_into_target ON merged_into(into_id);",
	NULL,
};

const char *const *const gs__schema_migrations[GS_SCHEMA_VERSION] = { v1, v2,
								      v3 };
