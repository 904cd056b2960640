/*
 * The wire contract between handheld and district server (internal, gs__).
 *
 * A connection carries frames: a 4-byte big-endian length, then that many
 * bytes of one protobuf Envelope (proto/gridsync.proto, docs/PROTOCOL.md).
 * This header offers three small tools, all pure (bytes in, structs out):
 *
 *   - plain C message structs (struct gs_msg) with an encoder that appends
 *     one frame to a gs_buf and a decoder that turns Envelope bytes back into
 *     a gs_msg after strict checks (wire.c);
 *   - an incremental frame reader that accepts bytes in any split and yields
 *     whole frames, checking each length before allocating (frame.c);
 *   - changeset compression with zstd, bounded on the way in (compress.c).
 *
 * The protobuf-c types stay private to proto/: nothing here names them.
 */
#ifndef GRIDSYNC_WIRE_H
#define GRIDSYNC_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <gridsync/platform.h>

/* ---- versions and limits --------------------------------------------- */

/* Protocol versions this build speaks (Hello.proto_min/max). */
#define GS_PROTO_VERSION_MIN 1
#define GS_PROTO_VERSION_MAX 1

/* Algorithm suite 1: TLS 1.3 transport, SHA-256 content hashes, zstd. */
#define GS_SUITE_V1 1

#define GS_FRAME_HDR_LEN     4
#define GS_FRAME_MAX_DEFAULT (8u << 20)  /* 8 MiB of envelope bytes */
#define GS_FRAME_MAX_CEILING (64u << 20) /* no negotiation goes above */
#define GS_FRAME_MAX_FLOOR   (4u << 10)  /* nor below */

#define GS_WIRE_PUSH_ENTRIES_DEFAULT 1000u  /* entries in one Push */
#define GS_WIRE_ITEMS_DEFAULT        16384u /* any other repeated field */
#define GS_WIRE_ID_MAX               64u /* device/server ids, grid codes, names */
#define GS_WIRE_PK_MAX               256u  /* Conflict.pk */
#define GS_WIRE_TEXT_MAX             1024u /* reasons and error messages */

/*
 * What a decoder accepts and an encoder may produce. Start from
 * GS_WIRE_LIMITS_INIT and lower (never raise) the values with what Welcome
 * negotiated. Every count is checked before protobuf-c allocates anything
 * for it.
 */
struct gs_wire_limits {
	uint32_t max_frame;        /* envelope bytes */
	uint32_t max_push_entries; /* Push.entries and PushAck.results */
	uint32_t max_items;        /* every other repeated field */
	uint32_t max_changeset;    /* uncompressed_len of one changeset */
};

#define GS_WIRE_LIMITS_INIT                                         \
	{                                                           \
		GS_FRAME_MAX_DEFAULT, GS_WIRE_PUSH_ENTRIES_DEFAULT, \
			GS_WIRE_ITEMS_DEFAULT, GS_FRAME_MAX_DEFAULT \
	}

/* ---- messages ---------------------------------------------------------- */

/* Values equal the Envelope oneof field numbers. */
enum gs_msg_type {
	GS_MSG_NONE = 0,
	GS_MSG_HELLO = 1,
	GS_MSG_WELCOME = 2,
	GS_MSG_PUSH = 3,
	GS_MSG_PUSH_ACK = 4,
	GS_MSG_PULL = 5,
	GS_MSG_CHANGES = 6,
	GS_MSG_PING = 7,
	GS_MSG_PONG = 8,
	GS_MSG_ERROR = 9,
};

enum gs_compression { GS_COMP_NONE = 0, GS_COMP_ZSTD = 1 };

enum gs_entry_result {
	GS_RESULT_APPLIED = 1,
	GS_RESULT_DUPLICATE = 2,
	GS_RESULT_REJECTED = 3,
};

enum gs_reject {
	GS_REJECT_NONE = 0,
	GS_REJECT_MALFORMED = 1,
	GS_REJECT_HASH = 2,
	GS_REJECT_SEQ_REUSED = 3,
	GS_REJECT_SCHEMA = 4,
	GS_REJECT_DENIED = 5,
	GS_REJECT_STATE = 6,
	GS_REJECT_LIMIT = 7,
	GS_REJECT_SEQ_GAP = 8, /* not recorded: the missing entries may come */
	GS_REJECT_RETRY = 9,   /* not recorded: send it again later */
};

/* Codes a decoder accepts: later versions add refusal reasons, and a
 * device handles an unknown one by the result's final flag. */
#define GS_REJECT_CODE_MAX 63

enum gs_wire_err {
	GS_WIRE_ERR_PROTOCOL = 1,
	GS_WIRE_ERR_VERSION = 2,
	GS_WIRE_ERR_SCHEMA_UPGRADE = 3,
	GS_WIRE_ERR_UNAUTHORIZED = 4,
	GS_WIRE_ERR_BUSY = 5,
	GS_WIRE_ERR_LIMIT = 6,
	GS_WIRE_ERR_INTERNAL = 7,
};

/*
 * Strings are NUL-terminated UTF-8 without embedded NULs. In a message
 * built for encoding every pointer is borrowed from the caller for the
 * duration of the call; in a decoded message it lives until gs__msg_free.
 */
struct gs_msg_hello {
	uint32_t proto_min;
	uint32_t proto_max;
	const char *device_id;
	uint32_t schema_version;
	const char *app_version;
	uint64_t cursor; /* last server_seq the device holds */
	uint32_t suite;
	const char *incarnation; /* NULL: absent (an older device) */
	bool has_acked_seq;
	uint64_t acked_seq; /* highest device_seq it saw recorded */
};

struct gs_limits {
	uint32_t max_frame_bytes;
	uint32_t max_push_entries;
	uint64_t pull_byte_budget;
};

struct gs_msg_welcome {
	uint32_t proto_version;
	const char *server_id;
	uint64_t server_time_ms;
	const char *const *scope; /* grid codes */
	size_t n_scope;
	struct gs_limits limits;
	uint32_t schema_version;
	uint32_t suite;
	bool has_held_seq; /* only for a Hello with an incarnation */
	uint64_t held_seq; /* last device_seq held for (device, incarnation) */
	/* Server-owned scope (0: absent, an older server). */
	uint64_t scope_version;
	uint64_t visits_since_ms; /* visits started before are out of scope */
	uint64_t closed_since_ms; /* issues closed before are out of scope */
};

/*
 * One outbox entry. For GS_COMP_NONE uncompressed_len equals
 * changeset_len (the decoder fills it in); for GS_COMP_ZSTD it is the
 * inflated size, which gs__changeset_unpack enforces.
 */
struct gs_push_entry {
	uint64_t device_seq;
	uint64_t hlc;
	const uint8_t *changeset;
	size_t changeset_len;
	uint8_t sha256[GS_SHA256_LEN]; /* of the uncompressed changeset */
	enum gs_compression compression;
	uint32_t uncompressed_len;
};

struct gs_msg_push {
	uint32_t schema_version;
	const struct gs_push_entry *entries; /* ascending device_seq */
	size_t n_entries;
};

struct gs_push_result {
	uint64_t device_seq;
	enum gs_entry_result result;
	enum gs_reject reject_code; /* NONE unless REJECTED */
	const char *reason;         /* may be NULL */
	bool has_final;             /* absent from older servers */
	bool final;                 /* the verdict is recorded for good */
	bool has_held_seq;
	uint64_t held_seq; /* with SEQ_GAP: last device_seq the server holds */
};

enum gs_value_kind { GS_VALUE_NULL = 0, GS_VALUE_TEXT, GS_VALUE_BLOB };

struct gs_conflict_side {
	const char *device_id;
	uint64_t hlc;
	enum gs_value_kind kind;
	const uint8_t *value; /* TEXT: UTF-8 (NUL-terminated when decoded) */
	size_t value_len;
};

struct gs_conflict {
	uint64_t device_seq; /* the pushed entry that lost; in Changes 0
			      * when not known */
	const char *table;
	const char *pk;
	const char *column;
	struct gs_conflict_side winner;
	struct gs_conflict_side loser;
	uint64_t id; /* the server's conflict id; 0: not given */
};

struct gs_msg_push_ack {
	uint64_t durable_seq;
	const struct gs_push_result *results;
	size_t n_results;
	const struct gs_conflict *conflicts;
	size_t n_conflicts;
};

struct gs_msg_pull {
	uint64_t after_seq;
	uint64_t byte_budget;
	uint64_t scope_version; /* applied by the device; 0: absent */
};

/* A row that left the device's scope. */
struct gs_row_key {
	const char *table;
	const char *pk;
	uint64_t server_seq;
};

struct gs_change {
	uint64_t server_seq;
	uint64_t hlc;
	const char *origin;
	const uint8_t *changeset;
	size_t changeset_len;
	enum gs_compression compression;
	uint32_t uncompressed_len; /* as in gs_push_entry */
};

struct gs_msg_changes {
	uint32_t schema_version;
	const struct gs_change *entries; /* ascending server_seq */
	size_t n_entries;
	uint64_t next_cursor;
	bool more; /* false: caught up */
	/* Conflicts the device lost, recorded up to next_cursor. */
	const struct gs_conflict *conflicts;
	size_t n_conflicts;
	const struct gs_row_key *left; /* rows that left the scope */
	size_t n_left;
};

/* Ping and Pong share a shape. */
struct gs_msg_ping {
	uint64_t nonce;
	uint64_t time_ms;
};

struct gs_msg_error {
	enum gs_wire_err code;
	const char *message;
	uint32_t retry_after_ms; /* 0: none */
};

struct gs_msg {
	enum gs_msg_type type;
	union {
		struct gs_msg_hello hello;
		struct gs_msg_welcome welcome;
		struct gs_msg_push push;
		struct gs_msg_push_ack push_ack;
		struct gs_msg_pull pull;
		struct gs_msg_changes changes;
		struct gs_msg_ping ping; /* also GS_MSG_PONG */
		struct gs_msg_error error;
	} u;
};

/* "hello", "push_ack", ...; "?" for an unknown type. Static storage. */
const char *gs__msg_type_name(enum gs_msg_type type);

/*
 * Check msg against the protocol's rules and append it to out as one frame
 * (length prefix included). lim may be NULL for GS_WIRE_LIMITS_INIT.
 * Allocates temporaries through out->ctx. On failure out->len is unchanged.
 * Returns GS_OK; GS_EINVAL if msg breaks a rule (detail names the field);
 * GS_ETOOBIG if the frame exceeds lim->max_frame or out's ceiling;
 * GS_ENOMEM.
 */
int gs__msg_encode(struct gs_buf *out,
		   const struct gs_msg *msg,
		   const struct gs_wire_limits *lim);

/*
 * Decode one frame body (the Envelope bytes, without the length prefix).
 * Before anything is allocated the bytes are walked once: truncated or
 * overlong varints, groups, wrong wire types, repeated singular fields, two
 * members of one oneof, strings that are not UTF-8 or contain NUL, too many
 * unknown fields and counts above lim are all refused. Then every field the
 * protocol needs must be present and every value must be in range.
 * data is borrowed for the call only. On success *out is one owned message
 * (every pointer inside it stays valid until gs__msg_free). Returns GS_OK,
 * GS_EPROTO (detail says what and where), GS_ENOMEM or GS_EINVAL.
 */
int gs__msg_decode(struct gs_msg **out,
		   struct gs_ctx *ctx,
		   const uint8_t *data,
		   size_t len,
		   const struct gs_wire_limits *lim);

/* Free a message from gs__msg_decode (and only such). NULL is a no-op. */
void gs__msg_free(struct gs_msg *msg);

/* ---- frames ------------------------------------------------------------ */

/* A complete frame body. data is borrowed (see gs__frame_reader_feed). */
struct gs_frame {
	const uint8_t *data;
	size_t len;
	uint64_t offset; /* stream offset of the frame's length prefix */
};

/* Incremental reader; the fields are private. */
struct gs_frame_reader {
	struct gs_ctx *ctx;
	uint32_t max; /* largest body accepted */
	int err;      /* sticky first failure, or GS_OK */
	uint8_t hdr[GS_FRAME_HDR_LEN];
	uint8_t hdr_len;   /* header bytes gathered */
	uint32_t body_len; /* valid once hdr_len == GS_FRAME_HDR_LEN */
	uint32_t have;     /* body bytes gathered in buf */
	uint8_t *buf;      /* body storage for frames split across feeds */
	size_t cap;
	uint64_t offset;    /* stream offset of the next byte */
	uint64_t frame_off; /* stream offset of the current length prefix */
};

/*
 * Prepare r. max_frame is the negotiated limit on body bytes (0: the
 * default 8 MiB); values above GS_FRAME_MAX_CEILING are lowered to it.
 * Cannot fail; pair with gs__frame_reader_fini.
 */
void gs__frame_reader_init(struct gs_frame_reader *r,
			   struct gs_ctx *ctx,
			   uint32_t max_frame);

/* Release r's buffer. Idempotent. */
void gs__frame_reader_fini(struct gs_frame_reader *r);

/*
 * Consume bytes from data until one frame is complete or data runs out;
 * *used_out says how many were consumed (call again with the rest).
 * Returns GS_OK with *frame_out set when a frame is complete; its data may
 * point into data (when the frame arrived in one piece) or into r, and is
 * valid until the next feed or fini and as long as data is. Returns
 * GS_EAGAIN when all of data was consumed without completing a frame.
 * A zero length or a length above the maximum returns GS_EPROTO (checked
 * before anything is allocated; detail gives the stream offset); an
 * allocation failure returns GS_ENOMEM. Failures are sticky: every later
 * call returns the same code.
 */
int gs__frame_reader_feed(struct gs_frame *frame_out,
			  size_t *used_out,
			  struct gs_frame_reader *r,
			  const uint8_t *data,
			  size_t len);

/* ---- changeset compression --------------------------------------------- */

/*
 * Changesets shorter than this travel uncompressed. Measured on schema v1
 * (tests/bench/bench_wire.c): the narrowest real changesets (58-66 bytes)
 * gain 0-2% from zstd, while a 126-byte visit tombstone already shrinks by
 * 45% and whole visit or issue rows by 17-39%.
 */
#define GS_COMPRESS_MIN 96u

/*
 * Optional reusable zstd contexts. A context costs ~100 KiB and about
 * 8 us to set up, more than compressing a whole changeset with it, so a
 * connection that handles many entries keeps one. Created lazily through
 * ctx's allocator; a struct gs_zstd is used by one thread at a time.
 */
struct gs_zstd {
	struct gs_ctx *ctx;
	void *cctx; /* ZSTD_CCtx */
	void *dctx; /* ZSTD_DCtx */
};

/* Prepare z (allocates nothing). Pair with gs__zstd_fini. */
void gs__zstd_init(struct gs_zstd *z, struct gs_ctx *ctx);

/* Release z's contexts. Idempotent; NULL is a no-op. */
void gs__zstd_fini(struct gs_zstd *z);

/*
 * Compress a changeset if that is worth it. When src is at least
 * GS_COMPRESS_MIN bytes and zstd saves more than the two extra fields it
 * costs on the wire, one zstd frame (with its content size) is appended to
 * out and *comp_out is GS_COMP_ZSTD; otherwise out is untouched,
 * *comp_out is GS_COMP_NONE and src should be sent as is. z may be NULL
 * (a context for this call only). Returns GS_OK, GS_ENOMEM or GS_ETOOBIG
 * (out's ceiling).
 */
int gs__changeset_pack(struct gs_buf *out,
		       enum gs_compression *comp_out,
		       struct gs_zstd *z,
		       const uint8_t *src,
		       size_t len);

/*
 * Append the uncompressed changeset to out: a copy for GS_COMP_NONE, the
 * inflated zstd frame for GS_COMP_ZSTD. The result must be exactly
 * uncompressed_len bytes, and if sha256 is not NULL it must hash to it.
 * For zstd the frame must declare its content size, equal to
 * uncompressed_len, and that size must fit below out's ceiling; all of this
 * is checked before inflating, so a small frame claiming gigabytes costs
 * nothing. z may be NULL. Returns GS_OK; GS_EPROTO on any mismatch or a
 * damaged frame; GS_ETOOBIG if the declared size exceeds out's ceiling;
 * GS_ENOMEM. On failure out->len is unchanged.
 */
int gs__changeset_unpack(struct gs_buf *out,
			 struct gs_zstd *z,
			 enum gs_compression comp,
			 const uint8_t *src,
			 size_t len,
			 uint32_t uncompressed_len,
			 const uint8_t *sha256);

#endif
