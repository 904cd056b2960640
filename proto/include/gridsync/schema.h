/*
 * The replicated schema, its migrations, the table manifest and the issue
 * state machine: the part of the contract both ends must agree on byte for
 * byte (a changeset only applies to the table layout it was captured from).
 * Pure data and lookups; no I/O. Internal (gs__), not installed.
 */
#ifndef GRIDSYNC_SCHEMA_H
#define GRIDSYNC_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>

/* The replicated schema version this build speaks (PRAGMA user_version). */
#define GS_SCHEMA_VERSION 3

/*
 * migrations[i] takes a database from user_version i to i + 1: a
 * NULL-terminated list of SQL batches, run in one transaction together with
 * the user_version bump. Never edit a shipped entry: append a new one.
 */
extern const char *const *const gs__schema_migrations[GS_SCHEMA_VERSION];

/* Merge class of a table (DESIGN.md section 3). */
enum gs_class {
	GS_CLASS_R = 'R', /* reference: server only */
	GS_CLASS_D = 'D', /* field-merged, per column last writer wins */
	GS_CLASS_S = 'S', /* state-governed (issue) */
	GS_CLASS_A = 'A', /* append-only */
};

/* Declared column type (SQLite affinity as declared in the schema). */
enum gs_col_type {
	GS_COL_TEXT = 1,
	GS_COL_INTEGER,
	GS_COL_REAL,
	GS_COL_BLOB,
};

/* Column flags. */
#define GS_COL_PK       0x01u /* part of the primary key */
#define GS_COL_NOTNULL  0x02u /* declared NOT NULL (or PK) */
#define GS_COL_DEVICE   0x04u /* a device may write it */
#define GS_COL_GOVERNED 0x08u /* S: changes only through issue_event */
#define GS_COL_SERVER   0x10u /* assigned by the server (server_seq, code) */
#define GS_COL_PERSONAL 0x20u /* personal data: never logged or printed */

struct gs_column {
	const char *name;
	enum gs_col_type type;
	unsigned flags;
};

/* How a row finds the grid that scopes it. */
enum gs_scope_kind {
	GS_SCOPE_GLOBAL = 1, /* reference data every device may hold */
	GS_SCOPE_GRID,       /* scope_col holds a grid id */
	GS_SCOPE_SELF,       /* the row is a grid; its id is the scope */
	GS_SCOPE_PARENT,     /* scope_col holds the id of a scope_parent row */
	GS_SCOPE_OWNER,      /* attachment: (owner_table, owner_id) */
};

struct gs_table {
	const char *name;
	enum gs_class cls;
	unsigned n_cols;
	const struct gs_column *cols;
	enum gs_scope_kind scope;
	int scope_col;            /* column index, or -1 */
	const char *scope_parent; /* GS_SCOPE_PARENT: the parent table */
};

/* All replicated tables, in dependency order (parents first). */
const struct gs_table *gs__manifest(size_t *n_out);

/* The table called name, or NULL if it is not replicated. */
const struct gs_table *gs__manifest_find(const char *name);

/* Index of column name in t, or -1. */
int gs__table_col(const struct gs_table *t, const char *name);

/* Number of primary-key columns of t. */
unsigned gs__table_n_pk(const struct gs_table *t);

/* ---- issue (work order) state machine, DESIGN.md -------------------- */

enum gs_role {
	GS_ROLE_GW = 1 << 0,  /* grid / micro-grid worker */
	GS_ROLE_CS = 1 << 1,  /* community */
	GS_ROLE_SC = 1 << 2,  /* street centre */
	GS_ROLE_DC = 1 << 3,  /* district centre */
	GS_ROLE_DH = 1 << 4,  /* handling department */
	GS_ROLE_SYS = 1 << 5, /* server timers and ingest */
};

/* Parse "GW", "CS", ... into a role bit; 0 if unknown. */
unsigned gs__role_parse(const char *name);
const char *gs__role_name(unsigned role);

struct gs_transition {
	const char *from; /* "" = creation */
	const char *to;
	unsigned roles;         /* GS_ROLE_* bits that may make it */
	unsigned offline_roles; /* of those, who may make it on a device
				 * without the server (queued) */
	bool assignee_only;     /* GW only when the issue is assigned to it */
	const char *requires;   /* "note", "assignee,due", ... or NULL */
};

/* The rule for from -> to, or NULL if there is none. */
const struct gs_transition *gs__transition_find(const char *from,
						const char *to);

/* All rules, for seeding transition_rule. */
const struct gs_transition *gs__transitions(size_t *n_out);

/* True for a known state name. */
bool gs__state_valid(const char *state);

/* True for closed, evaluated, invalid, cancelled. */
bool gs__state_terminal(const char *state);

/* Rank used only to detect "already past this point" (DESIGN.md). */
int gs__state_rank(const char *state);

#endif
