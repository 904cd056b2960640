/*
 * The strict changeset and patchset parser (internal, gs__, not installed).
 *
 * Debian 12's SQLite 3.40.1 spins forever or crashes on malformed
 * changesets, and on well-formed ones that disagree with the schema
 * (DESIGN.md traps 1 and 7). So no byte that came from another machine
 * may reach any sqlite3changeset_* or sqlite3changegroup_* call before this
 * parser has accepted it against the table manifest. The parser is bounded:
 * every read is checked against the end of the input, varints are at most 5
 * bytes, lengths are checked against the limits and the remaining input
 * before use, there is no recursion, and memory is allocated only after a
 * full validating pass has proven the bytes are there.
 *
 * The wire format and the exact acceptance rules are described at the top
 * of proto/changeset.c.
 *
 * Three entry points share one validator:
 *   gs__cs_check    validate only, no allocation;
 *   gs__cs_foreach  validate all, then call back once per row (no allocation;
 *                   the row is borrowed for the call) - the server merge loop;
 *   gs__cs_parse    validate all, then materialise every row into one block
 *                   freed with gs__cs_free - random access for inspect.
 * A rejection is reported as GS_EPROTO with a reason (enum gs_cs_reason),
 * the byte offset and the table, in the gs_cs_error out-parameter and in the
 * ctx detail text, e.g. "changeset: PK_NULL at byte 57 in table household
 * (INSERT column 0 (id) is NULL)". Values are never printed.
 */
#ifndef GRIDSYNC_CHANGESET_H
#define GRIDSYNC_CHANGESET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <gridsync/platform.h>
#include <gridsync/schema.h>

/* What the caller expects; the byte that starts every table header. */
enum gs_cs_kind {
	GS_CS_CHANGESET = 'T',
	GS_CS_PATCHSET = 'P',
};

/* Operation codes: the bytes on the wire, equal to SQLITE_INSERT etc. */
enum gs_cs_op {
	GS_CS_DELETE = 9,
	GS_CS_INSERT = 18,
	GS_CS_UPDATE = 23,
};

/* Value types: the bytes on the wire, equal to SQLITE_INTEGER etc. */
enum gs_cs_type {
	GS_CS_UNDEFINED = 0, /* column not part of this change */
	GS_CS_INT = 1,
	GS_CS_REAL = 2,
	GS_CS_TEXT = 3,
	GS_CS_BLOB = 4,
	GS_CS_NULL = 5,
};

/*
 * One column value. For TEXT and BLOB, p points into the caller's input
 * buffer (never copied, not NUL-terminated; TEXT is valid UTF-8 without NUL
 * bytes) and stays valid as long as that buffer does.
 */
struct gs_cs_value {
	uint8_t type; /* enum gs_cs_type */
	union {
		int64_t i; /* GS_CS_INT */
		double r;  /* GS_CS_REAL, never NaN */
		struct {
			const uint8_t *p; /* GS_CS_TEXT, GS_CS_BLOB */
			size_t len;
		};
	};
};

/*
 * One change. old_vals and new_vals hold table->n_cols values each, in
 * column order, or are NULL when the op has no such vector (INSERT has no
 * old, DELETE no new). Patchset rows are normalised the way SQLite's own
 * iterator reports them: an UPDATE's primary key is in old_vals (the rest of
 * old_vals undefined) and its changed columns in new_vals; a DELETE's
 * old_vals hold only the key, the other columns undefined.
 */
struct gs_cs_row {
	const struct gs_table *table; /* points into the manifest */
	enum gs_cs_op op;
	bool indirect;
	const struct gs_cs_value *old_vals;
	const struct gs_cs_value *new_vals;
	size_t offset; /* of the op byte in the input */
	size_t len;    /* bytes of the change, op byte included */
};

/* The rows under one table header, in input order. */
struct gs_cs_span {
	const struct gs_table *table;
	size_t offset; /* of the table header */
	size_t first_row;
	size_t n_rows;
};

/*
 * A parsed changeset: one allocation holding the spans, rows and values.
 * Everything is read-only for the caller; TEXT/BLOB values point into the
 * input buffer, so the input must outlive it. Free with gs__cs_free.
 */
struct gs_cs {
	enum gs_cs_kind kind;
	size_t n_spans;
	const struct gs_cs_span *spans;
	size_t n_rows;
	const struct gs_cs_row *rows;
	struct gs_ctx *ctx; /* private: the allocator it came from */
};

/* Why an input was rejected. X(name, what it means). */
#define GS_CS_REASON_MAP(X)                                                    \
	X(NONE, "accepted")                                                    \
	X(TOO_BIG, "input larger than the size limit")                         \
	X(TRUNCATED, "input ends inside a header, change or value")            \
	X(BAD_VARINT, "over-long or non-minimal varint")                       \
	X(NO_TABLE, "input does not start with a table header")                \
	X(PATCHSET_NOT_EXPECTED, "patchset header in a changeset")             \
	X(CHANGESET_NOT_EXPECTED, "changeset header in a patchset")            \
	X(COLUMN_COUNT, "column count differs from the manifest")              \
	X(NAME_NOT_TERMINATED, "table name runs to the end of the input")      \
	X(UNKNOWN_TABLE, "table is not replicated")                            \
	X(TABLE_NOT_ALLOWED, "table not in the caller's allowlist")            \
	X(TABLE_REPEATED, "a second header for the same table")                \
	X(PK_LAYOUT, "primary-key flags differ from the manifest")             \
	X(EMPTY_TABLE, "table header without any change")                      \
	X(BAD_OP, "unknown operation code")                                    \
	X(BAD_INDIRECT, "indirect flag is neither 0 nor 1")                    \
	X(TOO_MANY_ROWS, "more changes than the row limit")                    \
	X(BAD_TYPE, "value type byte is not 0..5")                             \
	X(VALUE_TOO_BIG, "text or blob longer than the value limit")           \
	X(BAD_UTF8, "text is not valid UTF-8 or contains NUL")                 \
	X(BAD_REAL, "real value is NaN")                                       \
	X(TYPE_MISMATCH, "value type does not fit the column's type")          \
	X(PK_NULL, "primary-key value is NULL")                                \
	X(PK_MISSING, "primary-key value is undefined")                        \
	X(PK_CHANGED, "UPDATE defines a new primary-key value")                \
	X(NOT_NULL, "NULL in a NOT NULL column")                               \
	X(UNDEFINED_VALUE, "undefined value where the row needs every column") \
	X(OLD_MISSING, "UPDATE changes a column without its old value")        \
	X(NEW_MISSING, "UPDATE has an old value for a column it keeps")        \
	X(EMPTY_UPDATE, "UPDATE changes no column")

enum gs_cs_reason {
#define GS_CS_REASON_ENUM(name, text) GS_CS_##name,
	GS_CS_REASON_MAP(GS_CS_REASON_ENUM)
#undef GS_CS_REASON_ENUM
		GS_CS_REASON_COUNT
};

/* Where and why an input was rejected. */
struct gs_cs_error {
	enum gs_cs_reason reason;     /* GS_CS_NONE when accepted */
	size_t offset;                /* first byte of the offending item */
	const struct gs_table *table; /* NULL when not (yet) known */
	int column;                   /* column index, or -1 */
};

/* Table classes a caller accepts (an allowlist by class). */
#define GS_CS_ALLOW_R      (1u << 0)
#define GS_CS_ALLOW_D      (1u << 1)
#define GS_CS_ALLOW_S      (1u << 2)
#define GS_CS_ALLOW_A      (1u << 3)
#define GS_CS_ALLOW_DEVICE (GS_CS_ALLOW_D | GS_CS_ALLOW_S | GS_CS_ALLOW_A)
#define GS_CS_ALLOW_ALL    (GS_CS_ALLOW_R | GS_CS_ALLOW_DEVICE)

/* Optional finer allowlist: return true to accept table t. Called once per
 * table header while validating, after the class mask allowed it. */
typedef bool (*gs_cs_allow_cb)(const struct gs_table *t, void *payload);

/* The widest table a header may declare (every manifest table fits). */
#define GS_CS_MAX_COLS 64
/* The longest table name looked up. */
#define GS_CS_NAME_MAX 64

#define GS_CS_MAX_BYTES_DEFAULT (8u << 20) /* the default frame maximum */
#define GS_CS_MAX_ROWS_DEFAULT  10000u
#define GS_CS_MAX_VALUE_DEFAULT (1u << 20)

struct gs_cs_opts {
	enum gs_cs_kind kind; /* the other kind is rejected */
	unsigned allow;       /* GS_CS_ALLOW_* classes */
	size_t max_bytes;     /* whole input; at most INT_MAX (SQLite's int) */
	size_t max_rows;      /* changes in the whole input; <= SIZE_MAX/128 */
	size_t max_value;     /* bytes of one TEXT or BLOB value */
	gs_cs_allow_cb allow_fn; /* NULL: the class mask alone decides */
	void *allow_payload;
	/* Tables to validate against; NULL: the replicated manifest
	 * (gs__manifest). At most 64 tables. Tests use their own. */
	const struct gs_table *tables;
	size_t n_tables;
};

/* Upload from a device: a changeset touching only D, S and A tables. */
#define GS_CS_OPTS_INIT                                                        \
	{                                                                      \
		GS_CS_CHANGESET, GS_CS_ALLOW_DEVICE, GS_CS_MAX_BYTES_DEFAULT,  \
			GS_CS_MAX_ROWS_DEFAULT, GS_CS_MAX_VALUE_DEFAULT, NULL, \
			NULL, NULL, 0                                          \
	}

/* Called once per row by gs__cs_foreach; a non-zero return stops the walk
 * and is returned unchanged. row and its values are borrowed for the call
 * (TEXT/BLOB bytes for as long as the input buffer lives). */
typedef int (*gs_cs_row_cb)(const struct gs_cs_row *row, void *payload);

/*
 * Validate len bytes at data against opts (NULL: GS_CS_OPTS_INIT). Allocates
 * nothing. err_out, if not NULL, is written whenever the input is examined
 * (reason GS_CS_NONE on success), i.e. on every return but GS_EINVAL.
 * Returns GS_OK, GS_EPROTO (rejected; detail text set on ctx) or GS_EINVAL
 * (bad arguments: data NULL with len > 0, an unknown kind, max_bytes above
 * INT_MAX, max_rows above SIZE_MAX / 128, more than 64 tables).
 */
int gs__cs_check(struct gs_cs_error *err_out,
		 struct gs_ctx *ctx,
		 const void *data,
		 size_t len,
		 const struct gs_cs_opts *opts);

/*
 * Validate the whole input as gs__cs_check does, and only if it is accepted,
 * call cb for every row in input order. No callback runs for a rejected
 * input. Returns as gs__cs_check, or cb's non-zero return.
 */
int gs__cs_foreach(struct gs_cs_error *err_out,
		   struct gs_ctx *ctx,
		   const void *data,
		   size_t len,
		   const struct gs_cs_opts *opts,
		   gs_cs_row_cb cb,
		   void *payload);

/*
 * Validate, then materialise all rows. On success *out is the caller's,
 * freed with gs__cs_free, and borrows data (which must outlive it). Memory
 * is one block of 48 B per row plus 24 B per value slot (n_cols for INSERT
 * and DELETE, 2 * n_cols for UPDATE) on 64-bit, so max_rows bounds it: at
 * most 10000 * (48 + 2 * 36 * 24) B, about 18 MB, with the defaults and the
 * widest table (issue). Returns as gs__cs_check, or GS_ENOMEM.
 */
int gs__cs_parse(struct gs_cs **out,
		 struct gs_cs_error *err_out,
		 struct gs_ctx *ctx,
		 const void *data,
		 size_t len,
		 const struct gs_cs_opts *opts);

/* Free a parsed changeset. NULL is a no-op. */
void gs__cs_free(struct gs_cs *cs);

/*
 * Append the canonical encoding of cs to out (the bytes SQLite itself would
 * write for these rows). For any accepted input, encoding its parse gives
 * the input back byte for byte (the fuzzers check this). Returns GS_OK,
 * GS_ENOMEM or GS_ETOOBIG (out's ceiling).
 */
int gs__cs_encode(struct gs_buf *out, const struct gs_cs *cs);

/* "TRUNCATED", ...; "?" for a value outside the enum. Static storage. */
const char *gs__cs_reason_name(enum gs_cs_reason reason);

/* The one-line meaning of reason. Static storage. */
const char *gs__cs_reason_text(enum gs_cs_reason reason);

/* The reason called name, or GS_CS_REASON_COUNT if there is none. */
enum gs_cs_reason gs__cs_reason_parse(const char *name);

/* "INSERT", "UPDATE", "DELETE", or "?". */
const char *gs__cs_op_name(int op);

#endif
