/*
 * Wire messages: struct gs_msg <-> gs.v1.Envelope bytes.
 *
 * Decoding runs in three steps, each refusing what the next must not see:
 *
 *   1. scan: one pass over the raw bytes, guided by protobuf-c's
 *      descriptors, that allocates nothing. It rejects truncated or
 *      overlong varints, lengths past the end, groups and reserved wire
 *      types, a known field with the wrong wire type, a singular field
 *      given twice, two members of one oneof, strings that are not UTF-8
 *      or hold a NUL (protobuf-c 1.4.1 checks neither, proto2 or proto3),
 *      more than UNKNOWN_MAX unknown fields per message and repeated
 *      fields longer than the limits. Without it protobuf-c would allocate
 *      a struct for each of a million empty entries before we could count
 *      them.
 *   2. unpack: protobuf-c builds its tree with our allocator.
 *   3. convert and check: every field the protocol needs must be present
 *      (proto2 has_ flags), then check_msg() applies the value rules.
 *
 * Encoding runs check_msg() on the caller's struct (so we never send what a
 * peer would refuse), builds a protobuf-c tree that borrows the caller's
 * pointers, and packs it straight into the output buffer behind a 4-byte
 * big-endian length.
 *
 * Ownership of a decoded message: one block holds struct gs_msg and its
 * arrays; strings and bytes point into protobuf-c's tree, which the block
 * keeps and gs__msg_free releases with it.
 */
#define GS_MODULE "proto.wire"

#include <stdalign.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <gridsync/wire.h>

#include "gridsync.pb-c.h"

/* Unknown fields are kept by protobuf-c (an allocation each), so a frame
 * of two-byte unknown fields would multiply memory; a newer peer adding a
 * handful of fields per message stays well below this. */
#define UNKNOWN_MAX 16
/* Our deepest path is Envelope.push_ack.conflicts.winner (4). */
#define DEPTH_MAX 8
/* Fields per message we can track; the schema's widest has 9. */
#define FIELDS_MAX 16

/* Our enums mirror the generated ones value for value (the casts in the
 * converters rely on it). */
#define SAME(a, b) _Static_assert((int)(a) == (int)(b), #a " != " #b)
SAME(GS_MSG_HELLO, GS__V1__ENVELOPE__MSG_HELLO);
SAME(GS_MSG_WELCOME, GS__V1__ENVELOPE__MSG_WELCOME);
SAME(GS_MSG_PUSH, GS__V1__ENVELOPE__MSG_PUSH);
SAME(GS_MSG_PUSH_ACK, GS__V1__ENVELOPE__MSG_PUSH_ACK);
SAME(GS_MSG_PULL, GS__V1__ENVELOPE__MSG_PULL);
SAME(GS_MSG_CHANGES, GS__V1__ENVELOPE__MSG_CHANGES);
SAME(GS_MSG_PING, GS__V1__ENVELOPE__MSG_PING);
SAME(GS_MSG_PONG, GS__V1__ENVELOPE__MSG_PONG);
SAME(GS_MSG_ERROR, GS__V1__ENVELOPE__MSG_ERROR);
SAME(GS_COMP_ZSTD, GS__V1__COMPRESSION__COMPRESSION_ZSTD);
SAME(GS_RESULT_APPLIED, GS__V1__ENTRY_RESULT__RESULT_APPLIED);
SAME(GS_RESULT_DUPLICATE, GS__V1__ENTRY_RESULT__RESULT_DUPLICATE);
SAME(GS_RESULT_REJECTED, GS__V1__ENTRY_RESULT__RESULT_REJECTED);
SAME(GS_REJECT_MALFORMED, GS__V1__REJECT_CODE__REJECT_MALFORMED);
SAME(GS_REJECT_LIMIT, GS__V1__REJECT_CODE__REJECT_LIMIT);
SAME(GS_REJECT_SEQ_GAP, GS__V1__REJECT_CODE__REJECT_SEQ_GAP);
SAME(GS_REJECT_RETRY, GS__V1__REJECT_CODE__REJECT_RETRY);
SAME(GS_WIRE_ERR_PROTOCOL, GS__V1__ERROR_CODE__ERROR_PROTOCOL);
SAME(GS_WIRE_ERR_INTERNAL, GS__V1__ERROR_CODE__ERROR_INTERNAL);
#undef SAME

/* Names match the Envelope oneof members, so logs and traces read like
 * the .proto. */
const char *gs__msg_type_name(enum gs_msg_type type)
{
	static const char *const names[] = {
		[GS_MSG_NONE] = "none",         [GS_MSG_HELLO] = "hello",
		[GS_MSG_WELCOME] = "welcome",   [GS_MSG_PUSH] = "push",
		[GS_MSG_PUSH_ACK] = "push_ack", [GS_MSG_PULL] = "pull",
		[GS_MSG_CHANGES] = "changes",   [GS_MSG_PING] = "ping",
		[GS_MSG_PONG] = "pong",         [GS_MSG_ERROR] = "error",
	};

	if ((unsigned)type >= sizeof(names) / sizeof(names[0]))
		return "?";
	return names[type];
}

/* ---- protobuf-c allocator ------------------------------------------- */

/* Routes protobuf-c through the context and remembers whether an
 * allocation failed: unpack returns NULL for both kinds of failure. */
struct pb_alloc {
	ProtobufCAllocator a;
	struct gs_ctx *ctx;
	bool failed;
};

/* protobuf-c asks for memory here; a NULL marks the decode as ENOMEM. */
static void *pb_malloc(void *data, size_t size)
{
	struct pb_alloc *pa = data;
	void *p = gs__malloc(pa->ctx, size);

	if (p == NULL)
		pa->failed = true;
	return p;
}

/* Also used by free_unpacked, long after the decode that allocated. */
static void pb_free(void *data, void *p)
{
	struct pb_alloc *pa = data;

	gs__free(pa->ctx, p);
}

/* pa must stay at its address while protobuf-c uses it: allocator_data
 * points back at it. */
static void pb_alloc_init(struct pb_alloc *pa, struct gs_ctx *ctx)
{
	pa->a.alloc = pb_malloc;
	pa->a.free = pb_free;
	pa->a.allocator_data = pa;
	pa->ctx = ctx;
	pa->failed = false;
}

/* ---- step 1: the strict scan ---------------------------------------- */

/* What one scan needs besides the bytes: where to report, which limits,
 * and the envelope's first byte so offsets in details are absolute. */
struct scan {
	struct gs_ctx *ctx;
	const struct gs_wire_limits *lim;
	const uint8_t *start; /* envelope start, for byte offsets */
};

/* get_varint's answers; a short varint and an overlong one get different
 * details because one means truncation and the other a hostile encoder. */
enum { VARINT_OK, VARINT_SHORT, VARINT_LONG };

/* Read a base-128 varint of at most 10 bytes that fits 64 bits. */
static int get_varint(const uint8_t **pp, const uint8_t *end, uint64_t *out)
{
	const uint8_t *p = *pp;
	uint64_t v = 0;

	for (unsigned i = 0; i < 10; i++) {
		if (p == end)
			return VARINT_SHORT;
		/* The tenth byte holds bit 63 only; anything more is a
		 * value above 64 bits or padding a parser might misread. */
		if (i == 9 && *p > 1)
			return VARINT_LONG;
		v |= (uint64_t)(*p & 0x7f) << (7 * i);
		if ((*p++ & 0x80) == 0) {
			*pp = p;
			*out = v;
			return VARINT_OK;
		}
	}
	return VARINT_LONG;
}

/*
 * The wire type a field of type t must arrive with. Packed repeated
 * scalars would arrive as 2, but v1 has no repeated scalars; if a later
 * version adds some, declare them [packed = false] or teach the scan.
 */
static unsigned wire_type_of(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_DOUBLE:
		return 1;
	case PROTOBUF_C_TYPE_FIXED32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_FLOAT:
		return 5;
	case PROTOBUF_C_TYPE_STRING:
	case PROTOBUF_C_TYPE_BYTES:
	case PROTOBUF_C_TYPE_MESSAGE:
		return 2;
	default:
		return 0;
	}
}

/* Push entries and their results follow the negotiated entry limit; every
 * other list the generic one. */
static uint32_t rep_limit(const struct scan *s,
			  const ProtobufCMessageDescriptor *d,
			  const ProtobufCFieldDescriptor *f)
{
	if (d == &gs__v1__push__descriptor ||
	    (d == &gs__v1__push_ack__descriptor && f->id == 2))
		return s->lim->max_push_entries;
	return s->lim->max_items;
}

static int bad(const struct scan *s,
	       const ProtobufCMessageDescriptor *d,
	       const uint8_t *at,
	       const char *fmt,
	       ...) __attribute__((format(printf, 4, 5)));

/* Detail: "wire: PushEntry at byte 17: <what>". */
static int bad(const struct scan *s,
	       const ProtobufCMessageDescriptor *d,
	       const uint8_t *at,
	       const char *fmt,
	       ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return gs__err(s->ctx, GS_EPROTO, "wire: %s at byte %td: %s",
		       d->short_name, at - s->start, what);
}

/* Singular-field bookkeeping: a second occurrence, or a second member of
 * the same oneof, is refused (protobuf-c would silently keep the last). */
static int check_singular(const struct scan *s,
			  const ProtobufCMessageDescriptor *d,
			  const uint32_t *seen,
			  unsigned idx,
			  const uint8_t *at)
{
	const ProtobufCFieldDescriptor *f = &d->fields[idx];

	if (seen[idx] != 0)
		return bad(s, d, at, "field %s given twice", f->name);
	if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) == 0)
		return GS_OK;
	for (unsigned j = 0; j < d->n_fields; j++) {
		const ProtobufCFieldDescriptor *o = &d->fields[j];

		if (j != idx && seen[j] != 0 &&
		    (o->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0 &&
		    o->quantifier_offset == f->quantifier_offset)
			return bad(s, d, at, "oneof members %s and %s both set",
				   o->name, f->name);
	}
	return GS_OK;
}

/*
 * Walk the fields of one message of type d in [p, end) and recurse into
 * known submessages. Allocates nothing and reads each byte once, so its
 * cost is linear in the frame and bounded by the limits it enforces. Only
 * the wire format and the counts are judged here; values are check_msg's.
 */
static int scan_msg(const struct scan *s,
		    const ProtobufCMessageDescriptor *d,
		    const uint8_t *p,
		    const uint8_t *end,
		    unsigned depth)
{
	uint32_t seen[FIELDS_MAX] = { 0 };
	unsigned unknown = 0;

	if (depth > DEPTH_MAX)
		return bad(s, d, p, "nested too deeply");
	GS_ASSERT(d->n_fields <= FIELDS_MAX);
	while (p < end) {
		const uint8_t *at = p;
		const ProtobufCFieldDescriptor *f;
		const uint8_t *val = p;
		uint64_t tag;
		uint64_t v;
		unsigned wt;
		unsigned idx;
		int rc;

		rc = get_varint(&p, end, &tag);
		if (rc != VARINT_OK)
			return bad(s, d, at, "%s tag",
				   rc == VARINT_SHORT ? "truncated"
						      : "overlong");
		/* Field numbers run from 1 to 2^29-1 in every protobuf. */
		wt = (unsigned)(tag & 7);
		if (tag >> 3 == 0 || tag >> 3 > 536870911u)
			return bad(s, d, at, "field number %llu",
				   (unsigned long long)(tag >> 3));
		switch (wt) {
		case 0:
			rc = get_varint(&p, end, &v);
			if (rc != VARINT_OK)
				return bad(s, d, at, "%s varint",
					   rc == VARINT_SHORT ? "truncated"
							      : "overlong");
			break;
		case 1:
		case 5:
			if ((size_t)(end - p) < (wt == 1 ? 8u : 4u))
				return bad(s, d, at, "truncated fixed field");
			p += wt == 1 ? 8 : 4;
			break;
		case 2:
			rc = get_varint(&p, end, &v);
			if (rc != VARINT_OK)
				return bad(s, d, at, "%s length",
					   rc == VARINT_SHORT ? "truncated"
							      : "overlong");
			if (v > (uint64_t)(end - p))
				return bad(s, d, at,
					   "length %llu runs past the end",
					   (unsigned long long)v);
			val = p;
			p += v;
			break;
		default:
			return bad(s, d, at, "wire type %u is not used", wt);
		}
		f = protobuf_c_message_descriptor_get_field(
			d, (unsigned)(tag >> 3));
		if (f == NULL) {
			/* A newer peer's field: skipped (its contents are
			 * never recursed into), but bounded, because
			 * protobuf-c keeps a copy of each. */
			if (++unknown > UNKNOWN_MAX)
				return bad(s, d, at,
					   "more than %d unknown "
					   "fields",
					   UNKNOWN_MAX);
			continue;
		}
		idx = (unsigned)(f - d->fields);
		if (wt != wire_type_of(f->type))
			return bad(s, d, at, "field %s has wire type %u",
				   f->name, wt);
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			if (++seen[idx] > rep_limit(s, d, f))
				return bad(s, d, at,
					   "field %s has more than %lu "
					   "elements",
					   f->name,
					   (unsigned long)rep_limit(s, d, f));
		} else {
			rc = check_singular(s, d, seen, idx, at);
			if (rc != GS_OK)
				return rc;
			seen[idx] = 1;
		}
		/* Strings are judged here, on the raw bytes: protobuf-c's
		 * NUL-terminated copy would silently cut at an embedded NUL. */
		if (f->type == PROTOBUF_C_TYPE_STRING &&
		    (memchr(val, 0, (size_t)(p - val)) != NULL ||
		     !gs__utf8_valid(val, (size_t)(p - val))))
			return bad(s, d, at, "field %s is not UTF-8 text",
				   f->name);
		if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
			rc = scan_msg(s, f->descriptor, val, p, depth + 1);
			if (rc != GS_OK)
				return rc;
		}
	}
	return GS_OK;
}

/* ---- value rules, shared by encode and decode ----------------------- */

/*
 * Sticky rule checker: the first failed rule sets the detail text and the
 * code (GS_EINVAL when encoding our own struct, GS_EPROTO when decoding a
 * peer's bytes); later rules are skipped.
 */
struct rules {
	struct gs_ctx *ctx;
	int code;
	int rc;
};

static void rule(struct rules *r, bool ok, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void rule(struct rules *r, bool ok, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	if (ok || r->rc != GS_OK)
		return;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	gs__err(r->ctx, r->code, "wire: %s", what);
	r->rc = r->code; /* never GS_OK: code is a GS_E* */
}

/* A string field: present, min..max bytes, UTF-8 without NUL. */
/* A string field: present, min..max bytes, UTF-8 without NUL. i is the
 * element index printed in the detail (0 for singular fields). */
static void text(struct rules *r,
		 const char *s,
		 size_t min,
		 size_t max,
		 const char *what,
		 size_t i)
{
	size_t n;

	if (r->rc != GS_OK)
		return;
	if (s == NULL) {
		rule(r, false, "%s[%zu] is missing", what, i);
		return;
	}
	n = strnlen(s, max + 1);
	rule(r, n >= min && n <= max, "%s[%zu] must be %zu..%zu bytes", what, i,
	     min, max);
	rule(r, gs__utf8_valid((const uint8_t *)s, n), "%s[%zu] is not UTF-8",
	     what, i);
}

/* A changeset with its compression, as Push and Changes carry it. */
/*
 * A changeset with its compression, as Push and Changes carry it. Only
 * the bookkeeping is checked here; whether the zstd frame really inflates
 * to uncompressed_len is gs__changeset_unpack's job, when it is used.
 */
static void payload(struct rules *r,
		    const struct gs_wire_limits *lim,
		    const uint8_t *data,
		    size_t len,
		    enum gs_compression comp,
		    uint32_t ulen,
		    const char *what,
		    size_t i)
{
	rule(r, data != NULL && len > 0, "%s[%zu].changeset is empty", what, i);
	rule(r, len <= lim->max_frame, "%s[%zu].changeset is too long", what,
	     i);
	if (comp == GS_COMP_NONE) {
		rule(r, ulen == len,
		     "%s[%zu].uncompressed_len differs from the changeset "
		     "length",
		     what, i);
	} else {
		rule(r, comp == GS_COMP_ZSTD, "%s[%zu].compression %d unknown",
		     what, i, (int)comp);
		rule(r, ulen > 0 && ulen <= lim->max_changeset,
		     "%s[%zu].uncompressed_len %lu outside 1..%lu", what, i,
		     (unsigned long)ulen, (unsigned long)lim->max_changeset);
	}
}

/* One side of a conflict: who wrote, when, and a value of a known kind. */
static void side(struct rules *r,
		 const struct gs_conflict_side *cs,
		 const char *what,
		 size_t i)
{
	text(r, cs->device_id, 1, GS_WIRE_ID_MAX, what, i);
	switch (cs->kind) {
	case GS_VALUE_NULL:
		break;
	case GS_VALUE_TEXT:
		rule(r,
		     (cs->value != NULL || cs->value_len == 0) &&
			     (cs->value_len == 0 ||
			      (memchr(cs->value, 0, cs->value_len) == NULL &&
			       gs__utf8_valid(cs->value, cs->value_len))),
		     "%s[%zu] text value is not UTF-8", what, i);
		break;
	case GS_VALUE_BLOB:
		rule(r, cs->value != NULL || cs->value_len == 0,
		     "%s[%zu] blob value is missing", what, i);
		break;
	default:
		rule(r, false, "%s[%zu] value kind %d unknown", what, i,
		     (int)cs->kind);
	}
}

/* Hello: a real version range and the identity fields. The version and
 * schema themselves are judged by the session, not the codec. */
static void check_hello(struct rules *r, const struct gs_msg_hello *h)
{
	rule(r, h->proto_min >= 1 && h->proto_min <= h->proto_max,
	     "Hello.proto_min..max %lu..%lu is not a range",
	     (unsigned long)h->proto_min, (unsigned long)h->proto_max);
	text(r, h->device_id, 1, GS_WIRE_ID_MAX, "Hello.device_id", 0);
	if (h->incarnation != NULL)
		text(r, h->incarnation, 1, GS_WIRE_ID_MAX, "Hello.incarnation",
		     0);
	rule(r, h->schema_version >= 1, "Hello.schema_version is 0");
	text(r, h->app_version, 0, GS_WIRE_ID_MAX, "Hello.app_version", 0);
	rule(r, h->suite >= 1, "Hello.suite is 0");
}

/* Welcome: limits must stay within the floor and ceiling so a server
 * cannot talk a device into 4 GiB frames or into frames too small to
 * carry one changeset. */
static void check_welcome(struct rules *r,
			  const struct gs_wire_limits *lim,
			  const struct gs_msg_welcome *w)
{
	const struct gs_limits *l = &w->limits;

	rule(r, w->proto_version >= 1, "Welcome.proto_version is 0");
	text(r, w->server_id, 1, GS_WIRE_ID_MAX, "Welcome.server_id", 0);
	rule(r, w->n_scope <= lim->max_items, "Welcome.scope is too long");
	for (size_t i = 0; r->rc == GS_OK && w->scope != NULL && i < w->n_scope;
	     i++)
		text(r, w->scope[i], 1, GS_WIRE_ID_MAX, "Welcome.scope", i);
	rule(r, w->scope != NULL || w->n_scope == 0, "Welcome.scope missing");
	rule(r,
	     l->max_frame_bytes >= GS_FRAME_MAX_FLOOR &&
		     l->max_frame_bytes <= GS_FRAME_MAX_CEILING,
	     "Welcome.limits.max_frame_bytes %lu outside %u..%u",
	     (unsigned long)l->max_frame_bytes, GS_FRAME_MAX_FLOOR,
	     GS_FRAME_MAX_CEILING);
	rule(r, l->max_push_entries >= 1, "Welcome.limits.max_push_entries 0");
	rule(r, l->pull_byte_budget >= 1, "Welcome.limits.pull_byte_budget 0");
	rule(r, w->schema_version >= 1, "Welcome.schema_version is 0");
	rule(r, w->suite >= 1, "Welcome.suite is 0");
}

/* Push: at least one entry, within the negotiated count, with strictly
 * ascending sequence numbers (the server's dedup relies on the order). */
static void check_push(struct rules *r,
		       const struct gs_wire_limits *lim,
		       const struct gs_msg_push *p)
{
	rule(r, p->schema_version >= 1, "Push.schema_version is 0");
	rule(r, p->n_entries <= lim->max_push_entries,
	     "Push has %zu entries, the limit is %lu", p->n_entries,
	     (unsigned long)lim->max_push_entries);
	if (p->n_entries == 0 || p->entries == NULL) {
		rule(r, false, "Push has no entries");
		return;
	}
	for (size_t i = 0; r->rc == GS_OK && i < p->n_entries; i++) {
		const struct gs_push_entry *e = &p->entries[i];

		rule(r, e->device_seq >= 1, "Push.entries[%zu].device_seq 0",
		     i);
		rule(r, i == 0 || e->device_seq > p->entries[i - 1].device_seq,
		     "Push.entries[%zu].device_seq not ascending", i);
		payload(r, lim, e->changeset, e->changeset_len, e->compression,
			e->uncompressed_len, "Push.entries", i);
	}
}

/* A conflict of a PushAck or Changes (only PushAck's name an entry). */
static void
check_conflict(struct rules *r, const struct gs_conflict *c, size_t i)
{
	text(r, c->table, 1, GS_WIRE_ID_MAX, "conflicts.table", i);
	text(r, c->pk, 1, GS_WIRE_PK_MAX, "conflicts.pk", i);
	text(r, c->column, 1, GS_WIRE_ID_MAX, "conflicts.column", i);
	side(r, &c->winner, "conflicts.winner", i);
	side(r, &c->loser, "conflicts.loser", i);
}

/* PushAck: every result a known outcome, and a reject code exactly when
 * the entry was rejected, so a device never guesses why. */
static void check_push_ack(struct rules *r,
			   const struct gs_wire_limits *lim,
			   const struct gs_msg_push_ack *a)
{
	rule(r, a->n_results <= lim->max_push_entries,
	     "PushAck has %zu results, the limit is %lu", a->n_results,
	     (unsigned long)lim->max_push_entries);
	rule(r, a->n_conflicts <= lim->max_items,
	     "PushAck has %zu conflicts, the limit is %lu", a->n_conflicts,
	     (unsigned long)lim->max_items);
	if ((a->results == NULL && a->n_results > 0) ||
	    (a->conflicts == NULL && a->n_conflicts > 0)) {
		rule(r, false, "PushAck results or conflicts missing");
		return;
	}
	for (size_t i = 0; r->rc == GS_OK && i < a->n_results; i++) {
		const struct gs_push_result *x = &a->results[i];

		rule(r, x->device_seq >= 1, "PushAck.results[%zu].device_seq 0",
		     i);
		rule(r,
		     x->result == GS_RESULT_APPLIED ||
			     x->result == GS_RESULT_DUPLICATE ||
			     x->result == GS_RESULT_REJECTED,
		     "PushAck.results[%zu].result %d unknown", i,
		     (int)x->result);
		rule(r,
		     (unsigned)x->reject_code <= GS_REJECT_CODE_MAX &&
			     (x->result == GS_RESULT_REJECTED) ==
				     (x->reject_code != GS_REJECT_NONE),
		     "PushAck.results[%zu].reject_code %d does not fit the "
		     "result",
		     i, (int)x->reject_code);
		if (x->reason != NULL)
			text(r, x->reason, 0, GS_WIRE_TEXT_MAX,
			     "PushAck.results.reason", i);
	}
	for (size_t i = 0; r->rc == GS_OK && i < a->n_conflicts; i++) {
		rule(r, a->conflicts[i].device_seq >= 1,
		     "PushAck.conflicts[%zu].device_seq 0", i);
		check_conflict(r, &a->conflicts[i], i);
	}
}

/* Changes: ascending server_seq and a cursor that never moves backwards,
 * otherwise a device could pull the same changes forever. */
static void check_changes(struct rules *r,
			  const struct gs_wire_limits *lim,
			  const struct gs_msg_changes *c)
{
	rule(r, c->schema_version >= 1, "Changes.schema_version is 0");
	rule(r, c->n_entries <= lim->max_items,
	     "Changes has %zu entries, the limit is %lu", c->n_entries,
	     (unsigned long)lim->max_items);
	rule(r, c->n_conflicts <= lim->max_items,
	     "Changes has %zu conflicts, the limit is %lu", c->n_conflicts,
	     (unsigned long)lim->max_items);
	rule(r, c->conflicts != NULL || c->n_conflicts == 0,
	     "Changes.conflicts missing");
	for (size_t i = 0; r->rc == GS_OK && i < c->n_conflicts; i++)
		check_conflict(r, &c->conflicts[i], i);
	rule(r, c->n_left <= lim->max_items,
	     "Changes has %zu left rows, the limit is %lu", c->n_left,
	     (unsigned long)lim->max_items);
	rule(r, c->left != NULL || c->n_left == 0, "Changes.left missing");
	for (size_t i = 0; r->rc == GS_OK && i < c->n_left; i++) {
		text(r, c->left[i].table, 1, GS_WIRE_ID_MAX,
		     "Changes.left.table", i);
		text(r, c->left[i].pk, 1, GS_WIRE_PK_MAX, "Changes.left.pk", i);
		rule(r, c->left[i].server_seq >= 1,
		     "Changes.left[%zu].server_seq 0", i);
	}
	if (c->n_entries == 0)
		return;
	if (c->entries == NULL) {
		rule(r, false, "Changes.entries missing");
		return;
	}
	for (size_t i = 0; r->rc == GS_OK && i < c->n_entries; i++) {
		const struct gs_change *e = &c->entries[i];

		rule(r, e->server_seq >= 1, "Changes.entries[%zu].server_seq 0",
		     i);
		rule(r, i == 0 || e->server_seq > c->entries[i - 1].server_seq,
		     "Changes.entries[%zu].server_seq not ascending", i);
		text(r, e->origin, 1, GS_WIRE_ID_MAX, "Changes.entries.origin",
		     i);
		payload(r, lim, e->changeset, e->changeset_len, e->compression,
			e->uncompressed_len, "Changes.entries", i);
	}
	rule(r, c->next_cursor >= c->entries[c->n_entries - 1].server_seq,
	     "Changes.next_cursor is behind its last entry");
}

/*
 * Apply the value rules of m's type. code is what a broken rule returns:
 * GS_EINVAL for our own struct on the way out, GS_EPROTO for a peer's on
 * the way in. Returns GS_OK or code, with the detail naming the field.
 */
static int check_msg(struct gs_ctx *ctx,
		     int code,
		     const struct gs_msg *m,
		     const struct gs_wire_limits *lim)
{
	struct rules r = { ctx, code, GS_OK };

	switch (m->type) {
	case GS_MSG_HELLO:
		check_hello(&r, &m->u.hello);
		break;
	case GS_MSG_WELCOME:
		check_welcome(&r, lim, &m->u.welcome);
		break;
	case GS_MSG_PUSH:
		check_push(&r, lim, &m->u.push);
		break;
	case GS_MSG_PUSH_ACK:
		check_push_ack(&r, lim, &m->u.push_ack);
		break;
	case GS_MSG_PULL:
		rule(&r, m->u.pull.byte_budget >= 1, "Pull.byte_budget is 0");
		break;
	case GS_MSG_CHANGES:
		check_changes(&r, lim, &m->u.changes);
		break;
	case GS_MSG_PING:
	case GS_MSG_PONG:
		break;
	case GS_MSG_ERROR:
		rule(&r,
		     m->u.error.code >= GS_WIRE_ERR_PROTOCOL &&
			     m->u.error.code <= GS_WIRE_ERR_INTERNAL,
		     "Error.code %d unknown", (int)m->u.error.code);
		text(&r, m->u.error.message, 0, GS_WIRE_TEXT_MAX,
		     "Error.message", 0);
		break;
	default:
		rule(&r, false, "message type %d unknown", (int)m->type);
	}
	return r.rc;
}

/* ---- step 3: protobuf-c tree -> struct gs_msg ----------------------- */

/* A decoded message: the public struct first, so gs__msg_free can find
 * the rest; the arrays follow in the same allocation. */
struct decoded {
	struct gs_msg msg;
	struct gs_ctx *ctx;
	Gs__V1__Envelope *env;
};

/* Arrays carved from one block start at max_align_t boundaries. */
static size_t round_up(size_t n)
{
	const size_t a = alignof(max_align_t);

	return (n + a - 1) / a * a;
}

/* Sticky presence check for proto2 optional fields. */
static void need(struct rules *r, bool present, const char *what, size_t i)
{
	rule(r, present, "%s[%zu] is missing", what, i);
}

/*
 * The conv_* functions copy scalars and borrow pointers from protobuf-c's
 * tree into our structs, after checking that every field the protocol
 * needs is present. Values are judged afterwards by check_msg.
 */
static void
conv_hello(struct rules *r, struct gs_msg_hello *o, const Gs__V1__Hello *h)
{
	need(r, h->has_proto_min && h->has_proto_max, "Hello.proto_min/max", 0);
	need(r, h->device_id != NULL, "Hello.device_id", 0);
	need(r, h->has_schema_version, "Hello.schema_version", 0);
	need(r, h->app_version != NULL, "Hello.app_version", 0);
	need(r, h->has_cursor, "Hello.cursor", 0);
	need(r, h->has_suite, "Hello.suite", 0);
	o->proto_min = h->proto_min;
	o->proto_max = h->proto_max;
	o->device_id = h->device_id;
	o->schema_version = h->schema_version;
	o->app_version = h->app_version;
	o->cursor = h->cursor;
	o->suite = h->suite;
	o->incarnation = h->incarnation;
	o->has_acked_seq = h->has_acked_seq;
	o->acked_seq = h->acked_seq;
}

/* Welcome's scope strings are borrowed as the array protobuf-c built. */
static void conv_welcome(struct rules *r,
			 struct gs_msg_welcome *o,
			 const Gs__V1__Welcome *w)
{
	const Gs__V1__Limits *l = w->limits;

	need(r, w->has_proto_version, "Welcome.proto_version", 0);
	need(r, w->server_id != NULL, "Welcome.server_id", 0);
	need(r, w->has_server_time_ms, "Welcome.server_time_ms", 0);
	need(r, w->has_schema_version, "Welcome.schema_version", 0);
	need(r, w->has_suite, "Welcome.suite", 0);
	if (l == NULL) {
		need(r, false, "Welcome.limits", 0);
		return;
	}
	need(r,
	     l->has_max_frame_bytes && l->has_max_push_entries &&
		     l->has_pull_byte_budget,
	     "Welcome.limits fields", 0);
	o->proto_version = w->proto_version;
	o->server_id = w->server_id;
	o->server_time_ms = w->server_time_ms;
	o->scope = (const char *const *)w->scope;
	o->n_scope = w->n_scope;
	o->limits.max_frame_bytes = l->max_frame_bytes;
	o->limits.max_push_entries = l->max_push_entries;
	o->limits.pull_byte_budget = l->pull_byte_budget;
	o->schema_version = w->schema_version;
	o->suite = w->suite;
	o->has_held_seq = w->has_held_seq;
	o->held_seq = w->held_seq;
	o->scope_version = w->has_scope_version ? w->scope_version : 0;
	o->visits_since_ms = w->has_visits_since_ms ? w->visits_since_ms : 0;
	o->closed_since_ms = w->has_closed_since_ms ? w->closed_since_ms : 0;
}

/* Compression and uncompressed_len as both changeset carriers use them. */
/* Compression and uncompressed_len as both changeset carriers use them:
 * absent compression is NONE, and a plain changeset's length is implied. */
static void conv_payload(struct rules *r,
			 enum gs_compression *comp,
			 uint32_t *ulen,
			 bool has_comp,
			 int pb_comp,
			 bool has_ulen,
			 uint32_t pb_ulen,
			 size_t len,
			 const char *what,
			 size_t i)
{
	*comp = has_comp ? (enum gs_compression)pb_comp : GS_COMP_NONE;
	if (*comp == GS_COMP_NONE) {
		/* Optional for plain changesets; payload() checks a value. */
		*ulen = has_ulen ? pb_ulen : (uint32_t)len;
		rule(r, len <= UINT32_MAX, "%s[%zu] too long", what, i);
	} else {
		need(r, has_ulen, what, i);
		*ulen = pb_ulen;
	}
}

/* Push entries go into arr (sized by array_bytes); sha256 is copied into
 * the fixed array so callers never see a short hash. */
static void conv_push(struct rules *r,
		      struct gs_msg_push *o,
		      struct gs_push_entry *arr,
		      const Gs__V1__Push *p)
{
	need(r, p->has_schema_version, "Push.schema_version", 0);
	o->schema_version = p->schema_version;
	o->entries = arr;
	o->n_entries = p->n_entries;
	for (size_t i = 0; r->rc == GS_OK && i < p->n_entries; i++) {
		const Gs__V1__PushEntry *e = p->entries[i];
		struct gs_push_entry *x = &arr[i];

		need(r, e->has_device_seq, "Push.entries.device_seq", i);
		need(r, e->has_hlc, "Push.entries.hlc", i);
		need(r, e->has_changeset, "Push.entries.changeset", i);
		need(r, e->has_sha256, "Push.entries.sha256", i);
		rule(r, e->sha256.len == GS_SHA256_LEN,
		     "Push.entries[%zu].sha256 is %zu bytes, not 32", i,
		     e->sha256.len);
		if (r->rc != GS_OK)
			return;
		x->device_seq = e->device_seq;
		x->hlc = e->hlc;
		x->changeset = e->changeset.data;
		x->changeset_len = e->changeset.len;
		memcpy(x->sha256, e->sha256.data, GS_SHA256_LEN);
		conv_payload(r, &x->compression, &x->uncompressed_len,
			     e->has_compression, (int)e->compression,
			     e->has_uncompressed_len, e->uncompressed_len,
			     e->changeset.len, "Push.entries.uncompressed_len",
			     i);
	}
}

/* A conflict side; the value oneof becomes kind + bytes (NULL: neither). */
static void conv_side(struct rules *r,
		      struct gs_conflict_side *o,
		      const Gs__V1__ConflictSide *s,
		      const char *what,
		      size_t i)
{
	if (s == NULL) {
		need(r, false, what, i);
		return;
	}
	need(r, s->device_id != NULL && s->has_hlc, what, i);
	o->device_id = s->device_id;
	o->hlc = s->hlc;
	o->kind = GS_VALUE_NULL;
	o->value = NULL;
	o->value_len = 0;
	if (s->value_case == GS__V1__CONFLICT_SIDE__VALUE_TEXT) {
		o->kind = GS_VALUE_TEXT;
		o->value = (const uint8_t *)s->text;
		o->value_len = strlen(s->text);
	} else if (s->value_case == GS__V1__CONFLICT_SIDE__VALUE_BLOB) {
		o->kind = GS_VALUE_BLOB;
		o->value = s->blob.data;
		o->value_len = s->blob.len;
	}
}

/* One conflict of a PushAck or Changes. */
static void conv_conflict(struct rules *r,
			  struct gs_conflict *o,
			  const Gs__V1__Conflict *c,
			  size_t i)
{
	need(r, c->table != NULL && c->pk != NULL && c->column != NULL,
	     "conflicts.table/pk/column", i);
	o->device_seq = c->has_device_seq ? c->device_seq : 0;
	o->table = c->table;
	o->pk = c->pk;
	o->column = c->column;
	o->id = c->has_id ? c->id : 0;
	conv_side(r, &o->winner, c->winner, "conflicts.winner", i);
	conv_side(r, &o->loser, c->loser, "conflicts.loser", i);
}

/* Results into res, conflicts into con; both arrays were sized from the
 * counts protobuf-c saw, which the scan had already bounded. */
static void conv_push_ack(struct rules *r,
			  struct gs_msg_push_ack *o,
			  struct gs_push_result *res,
			  struct gs_conflict *con,
			  const Gs__V1__PushAck *a)
{
	need(r, a->has_durable_seq, "PushAck.durable_seq", 0);
	o->durable_seq = a->durable_seq;
	o->results = res;
	o->n_results = a->n_results;
	o->conflicts = con;
	o->n_conflicts = a->n_conflicts;
	for (size_t i = 0; r->rc == GS_OK && i < a->n_results; i++) {
		const Gs__V1__PushResult *x = a->results[i];

		need(r, x->has_device_seq && x->has_result,
		     "PushAck.results.device_seq/result", i);
		res[i].device_seq = x->device_seq;
		res[i].result = (enum gs_entry_result)x->result;
		res[i].reject_code = x->has_reject_code
					     ? (enum gs_reject)x->reject_code
					     : GS_REJECT_NONE;
		res[i].reason = x->reason;
		res[i].has_final = x->has_final;
		res[i].final = x->has_final && x->final;
		res[i].has_held_seq = x->has_held_seq;
		res[i].held_seq = x->held_seq;
	}
	for (size_t i = 0; r->rc == GS_OK && i < a->n_conflicts; i++) {
		need(r, a->conflicts[i]->has_device_seq,
		     "PushAck.conflicts.device_seq", i);
		conv_conflict(r, &con[i], a->conflicts[i], i);
	}
}

/* Changes entries into arr, with the same payload rules as Push;
 * conflicts into con. */
static void conv_changes(struct rules *r,
			 struct gs_msg_changes *o,
			 struct gs_change *arr,
			 struct gs_conflict *con,
			 struct gs_row_key *left,
			 const Gs__V1__Changes *c)
{
	o->left = left;
	o->n_left = c->n_left;
	for (size_t i = 0; r->rc == GS_OK && i < c->n_left; i++) {
		const Gs__V1__RowKey *k = c->left[i];

		need(r, k->table != NULL && k->pk != NULL && k->has_server_seq,
		     "Changes.left.table/pk/server_seq", i);
		left[i].table = k->table;
		left[i].pk = k->pk;
		left[i].server_seq = k->server_seq;
	}
	need(r, c->has_schema_version, "Changes.schema_version", 0);
	need(r, c->has_next_cursor, "Changes.next_cursor", 0);
	need(r, c->has_more, "Changes.more", 0);
	o->schema_version = c->schema_version;
	o->entries = arr;
	o->n_entries = c->n_entries;
	o->next_cursor = c->next_cursor;
	o->more = c->more != 0;
	for (size_t i = 0; r->rc == GS_OK && i < c->n_entries; i++) {
		const Gs__V1__Change *e = c->entries[i];
		struct gs_change *x = &arr[i];

		need(r, e->has_server_seq && e->has_hlc,
		     "Changes.entries.server_seq/hlc", i);
		need(r, e->origin != NULL, "Changes.entries.origin", i);
		need(r, e->has_changeset, "Changes.entries.changeset", i);
		x->server_seq = e->server_seq;
		x->hlc = e->hlc;
		x->origin = e->origin;
		x->changeset = e->changeset.data;
		x->changeset_len = e->changeset.len;
		conv_payload(r, &x->compression, &x->uncompressed_len,
			     e->has_compression, (int)e->compression,
			     e->has_uncompressed_len, e->uncompressed_len,
			     e->changeset.len,
			     "Changes.entries.uncompressed_len", i);
	}
	o->conflicts = con;
	o->n_conflicts = c->n_conflicts;
	for (size_t i = 0; r->rc == GS_OK && i < c->n_conflicts; i++)
		conv_conflict(r, &con[i], c->conflicts[i], i);
}

/* Ping and Pong share the shape, so they share the converter. */
static void conv_ping(struct rules *r,
		      struct gs_msg_ping *o,
		      bool has_nonce,
		      uint64_t nonce,
		      bool has_time,
		      uint64_t time_ms)
{
	need(r, has_nonce && has_time, "Ping/Pong.nonce/time_ms", 0);
	o->nonce = nonce;
	o->time_ms = time_ms;
}

/*
 * Bytes of array storage the decoded message needs after the header: one
 * array for Push entries, two for PushAck (results, then conflicts) and
 * Changes (entries, then left rows), none for the rest. Welcome's scope
 * reuses protobuf-c's array.
 */
static int array_bytes(size_t *out, const Gs__V1__Envelope *env)
{
	size_t n1 = 0;
	size_t s1 = 0;
	size_t n2 = 0;
	size_t s2 = 0;
	size_t n3 = 0;
	size_t s3 = 0;

	switch (env->msg_case) {
	case GS__V1__ENVELOPE__MSG_PUSH:
		n1 = env->push->n_entries;
		s1 = sizeof(struct gs_push_entry);
		break;
	case GS__V1__ENVELOPE__MSG_PUSH_ACK:
		n1 = env->push_ack->n_results;
		s1 = sizeof(struct gs_push_result);
		n2 = env->push_ack->n_conflicts;
		s2 = sizeof(struct gs_conflict);
		break;
	case GS__V1__ENVELOPE__MSG_CHANGES:
		n1 = env->changes->n_entries;
		s1 = sizeof(struct gs_change);
		n2 = env->changes->n_conflicts;
		s2 = sizeof(struct gs_conflict);
		n3 = env->changes->n_left;
		s3 = sizeof(struct gs_row_key);
		break;
	default:
		break;
	}
	/* The scan bounded every count, so this only guards odd limits. */
	if ((s1 != 0 && n1 > SIZE_MAX / 4 / s1) ||
	    (s2 != 0 && n2 > SIZE_MAX / 4 / s2) ||
	    (s3 != 0 && n3 > SIZE_MAX / 4 / s3))
		return GS_ENOMEM;
	*out = round_up(n1 * s1) + round_up(n2 * s2) + n3 * s3;
	return GS_OK;
}

/*
 * Fill d->msg from d->env. arrays is the storage after the header,
 * laid out as array_bytes computed it. Returns GS_OK or GS_EPROTO with
 * the missing field in the detail.
 */
static int convert(struct rules *r, struct decoded *d, void *arrays)
{
	const Gs__V1__Envelope *env = d->env;
	struct gs_msg *m = &d->msg;
	void *second;

	/* The oneof case numbers are our type numbers (SAME above). */
	m->type = (enum gs_msg_type)env->msg_case;
	switch (env->msg_case) {
	case GS__V1__ENVELOPE__MSG_HELLO:
		conv_hello(r, &m->u.hello, env->hello);
		break;
	case GS__V1__ENVELOPE__MSG_WELCOME:
		conv_welcome(r, &m->u.welcome, env->welcome);
		break;
	case GS__V1__ENVELOPE__MSG_PUSH:
		conv_push(r, &m->u.push, arrays, env->push);
		break;
	case GS__V1__ENVELOPE__MSG_PUSH_ACK:
		/* Conflicts follow the results, aligned (array_bytes). */
		second = (uint8_t *)arrays +
			 round_up(env->push_ack->n_results *
				  sizeof(struct gs_push_result));
		conv_push_ack(r, &m->u.push_ack, arrays, second, env->push_ack);
		break;
	case GS__V1__ENVELOPE__MSG_PULL:
		need(r, env->pull->has_after_seq && env->pull->has_byte_budget,
		     "Pull.after_seq/byte_budget", 0);
		m->u.pull.after_seq = env->pull->after_seq;
		m->u.pull.byte_budget = env->pull->byte_budget;
		m->u.pull.scope_version = env->pull->has_scope_version
						  ? env->pull->scope_version
						  : 0;
		break;
	case GS__V1__ENVELOPE__MSG_CHANGES:
		/* Conflicts follow the entries, then the left rows, each
		 * aligned (array_bytes). */
		second = (uint8_t *)arrays + round_up(env->changes->n_entries *
						      sizeof(struct gs_change));
		conv_changes(
			r, &m->u.changes, arrays, second,
			(struct gs_row_key
				 *)(void *)((uint8_t *)second +
					    round_up(env->changes->n_conflicts *
						     sizeof(struct
							    gs_conflict))),
			env->changes);
		break;
	case GS__V1__ENVELOPE__MSG_PING:
		conv_ping(r, &m->u.ping, env->ping->has_nonce, env->ping->nonce,
			  env->ping->has_time_ms, env->ping->time_ms);
		break;
	case GS__V1__ENVELOPE__MSG_PONG:
		conv_ping(r, &m->u.ping, env->pong->has_nonce, env->pong->nonce,
			  env->pong->has_time_ms, env->pong->time_ms);
		break;
	case GS__V1__ENVELOPE__MSG_ERROR:
		need(r, env->error->has_code && env->error->message != NULL,
		     "Error.code/message", 0);
		m->u.error.code = (enum gs_wire_err)env->error->code;
		m->u.error.message = env->error->message;
		m->u.error.retry_after_ms = env->error->has_retry_after_ms
						    ? env->error->retry_after_ms
						    : 0;
		break;
	default:
		rule(r, false, "envelope holds no message this version knows");
	}
	return r->rc;
}

int gs__msg_decode(struct gs_msg **out,
		   struct gs_ctx *ctx,
		   const uint8_t *data,
		   size_t len,
		   const struct gs_wire_limits *lim)
{
	static const struct gs_wire_limits defaults = GS_WIRE_LIMITS_INIT;
	struct scan s = { ctx, lim != NULL ? lim : &defaults, data };
	struct rules r = { ctx, GS_EPROTO, GS_OK };
	struct pb_alloc pa;
	Gs__V1__Envelope *env = NULL;
	struct decoded *d = NULL;
	size_t head = round_up(sizeof(*d));
	size_t extra = 0;
	int rc;

	GS_CHECK_ARG(out != NULL && ctx != NULL);
	GS_CHECK_ARG(data != NULL || len == 0);
	*out = NULL;
	if (len == 0 || len > s.lim->max_frame)
		return gs__err(ctx, GS_EPROTO,
			       "wire: envelope of %zu bytes (limit %lu)", len,
			       (unsigned long)s.lim->max_frame);
	/* Step 1: judge the bytes while nothing is allocated yet. */
	rc = scan_msg(&s, &gs__v1__envelope__descriptor, data, data + len, 0);
	if (rc != GS_OK)
		return rc;
	/* Step 2: protobuf-c builds its tree through our allocator. After a
	 * clean scan a NULL almost always means no memory; the flag tells. */
	pb_alloc_init(&pa, ctx);
	env = gs__v1__envelope__unpack(&pa.a, len, data);
	if (env == NULL) {
		if (pa.failed)
			return GS_ENOMEM;
		return gs__err(ctx, GS_EPROTO,
			       "wire: protobuf-c refused the "
			       "envelope");
	}
	/* Step 3: one block for our struct and its arrays, then presence
	 * and value rules. */
	rc = array_bytes(&extra, env);
	if (rc != GS_OK)
		goto out;
	d = gs__malloc(ctx, head + extra);
	if (d == NULL) {
		rc = GS_ENOMEM;
		goto out;
	}
	memset(d, 0, head + extra);
	d->ctx = ctx;
	d->env = env;
	env = NULL; /* owned by d from here on */
	rc = convert(&r, d, (uint8_t *)d + head);
	if (rc == GS_OK)
		rc = check_msg(ctx, GS_EPROTO, &d->msg, s.lim);
	if (rc != GS_OK)
		goto out;
	*out = &d->msg;
	d = NULL;
out:
	/* On failure exactly one of env and d owns the tree. */
	if (env != NULL)
		gs__v1__envelope__free_unpacked(env, &pa.a);
	gs__msg_free(d != NULL ? &d->msg : NULL);
	return rc;
}

/* msg is the first member of struct decoded, so the cast recovers the
 * block; a gs_msg built by a caller must never come here. */
void gs__msg_free(struct gs_msg *msg)
{
	struct decoded *d = (struct decoded *)msg;
	struct pb_alloc pa;

	if (d == NULL)
		return;
	pb_alloc_init(&pa, d->ctx);
	if (d->env != NULL)
		gs__v1__envelope__free_unpacked(d->env, &pa.a);
	gs__free(d->ctx, d);
}

/* ---- encode: struct gs_msg -> protobuf-c tree -> frame -------------- */

/* Bump allocator over one temporary block for the tree's arrays. */
struct arena {
	uint8_t *p;
	size_t used;
	size_t cap;
};

/* Hand out the next aligned piece. arena_bytes sized the block for
 * exactly these calls, so running out is a bug, not an input problem. */
static void *take(struct arena *a, size_t size)
{
	void *p;

	if (size == 0)
		return NULL; /* an empty list: protobuf-c never looks */
	p = a->p + a->used;
	size = round_up(size);
	GS_ASSERT(size <= a->cap - a->used);
	a->used += size;
	return p;
}

/* Temporary bytes enc_conflicts takes for n conflicts. */
static size_t conflicts_bytes(const struct gs_conflict *c, size_t n)
{
	size_t b = round_up(n * sizeof(void *)) +
		   n * (round_up(sizeof(Gs__V1__Conflict)) +
			2 * round_up(sizeof(Gs__V1__ConflictSide)));

	for (size_t i = 0; i < n; i++) {
		/* Text values get a NUL-terminated copy. */
		if (c[i].winner.kind == GS_VALUE_TEXT)
			b += round_up(c[i].winner.value_len + 1);
		if (c[i].loser.kind == GS_VALUE_TEXT)
			b += round_up(c[i].loser.value_len + 1);
	}
	return b;
}

/* Temporary bytes enc_* will take for m (each take rounded up). */
static size_t arena_bytes(const struct gs_msg *m)
{
	size_t n = 0;

	switch (m->type) {
	case GS_MSG_PUSH:
		n = round_up(m->u.push.n_entries * sizeof(void *)) +
		    m->u.push.n_entries * round_up(sizeof(Gs__V1__PushEntry));
		break;
	case GS_MSG_PUSH_ACK:
		n = round_up(m->u.push_ack.n_results * sizeof(void *)) +
		    m->u.push_ack.n_results *
			    round_up(sizeof(Gs__V1__PushResult)) +
		    conflicts_bytes(m->u.push_ack.conflicts,
				    m->u.push_ack.n_conflicts);
		break;
	case GS_MSG_CHANGES:
		n = round_up(m->u.changes.n_entries * sizeof(void *)) +
		    m->u.changes.n_entries * round_up(sizeof(Gs__V1__Change)) +
		    conflicts_bytes(m->u.changes.conflicts,
				    m->u.changes.n_conflicts) +
		    round_up(m->u.changes.n_left * sizeof(void *)) +
		    m->u.changes.n_left * round_up(sizeof(Gs__V1__RowKey));
		break;
	default:
		break;
	}
	return n;
}

/* The changeset bytes are borrowed, never copied: encoding a 1,000-entry
 * push costs one pass over them, in pack. */
static void enc_payload(ProtobufCBinaryData *cs,
			protobuf_c_boolean *has_comp,
			Gs__V1__Compression *comp,
			protobuf_c_boolean *has_ulen,
			uint32_t *ulen,
			const uint8_t *data,
			size_t len,
			enum gs_compression c,
			uint32_t u)
{
	cs->data = (uint8_t *)data;
	cs->len = len;
	/* Plain is the default: leave both fields out to save bytes. */
	if (c == GS_COMP_ZSTD) {
		*has_comp = 1;
		*comp = GS__V1__COMPRESSION__COMPRESSION_ZSTD;
		*has_ulen = 1;
		*ulen = u;
	}
}

/* protobuf-c packs strings with strlen, so a TEXT value (given as bytes
 * plus length) gets a NUL-terminated copy in the arena. */
static Gs__V1__ConflictSide *enc_side(struct arena *a,
				      const struct gs_conflict_side *s)
{
	Gs__V1__ConflictSide *o = take(a, sizeof(*o));
	char *t;

	gs__v1__conflict_side__init(o);
	o->device_id = (char *)s->device_id;
	o->has_hlc = 1;
	o->hlc = s->hlc;
	if (s->kind == GS_VALUE_TEXT) {
		t = take(a, s->value_len + 1);
		if (s->value_len > 0)
			memcpy(t, s->value, s->value_len);
		t[s->value_len] = '\0';
		o->value_case = GS__V1__CONFLICT_SIDE__VALUE_TEXT;
		o->text = t;
	} else if (s->kind == GS_VALUE_BLOB) {
		o->value_case = GS__V1__CONFLICT_SIDE__VALUE_BLOB;
		o->blob.data = (uint8_t *)s->value;
		o->blob.len = s->value_len;
	}
	return o;
}

/* All top-level messages, so that the envelope can point at one. */
struct tree {
	Gs__V1__Envelope env;
	union {
		Gs__V1__Hello hello;
		Gs__V1__Welcome welcome;
		Gs__V1__Push push;
		Gs__V1__PushAck push_ack;
		Gs__V1__Pull pull;
		Gs__V1__Changes changes;
		Gs__V1__Ping ping;
		Gs__V1__Pong pong;
		Gs__V1__Error error;
	} u;
	Gs__V1__Limits limits;
};

/*
 * The enc_* functions build protobuf-c's view of m on the stack or in the
 * arena. Every field we model is always written (has_ = 1), except the
 * defaults enc_payload, enc_push_ack and enc_small leave out, which keeps
 * the encoding canonical: decode then encode gives the same bytes.
 */
static void enc_hello(struct tree *t, const struct gs_msg_hello *m)
{
	Gs__V1__Hello *o = &t->u.hello;

	gs__v1__hello__init(o);
	o->has_proto_min = o->has_proto_max = 1;
	o->proto_min = m->proto_min;
	o->proto_max = m->proto_max;
	o->device_id = (char *)m->device_id;
	o->has_schema_version = 1;
	o->schema_version = m->schema_version;
	o->app_version = (char *)m->app_version;
	o->has_cursor = 1;
	o->cursor = m->cursor;
	o->has_suite = 1;
	o->suite = m->suite;
	o->incarnation = (char *)m->incarnation;
	o->has_acked_seq = m->has_acked_seq;
	o->acked_seq = m->acked_seq;
	t->env.hello = o;
}

/* Limits live in the tree next to the message, so no allocation. */
static void enc_welcome(struct tree *t, const struct gs_msg_welcome *m)
{
	Gs__V1__Welcome *o = &t->u.welcome;

	gs__v1__welcome__init(o);
	gs__v1__limits__init(&t->limits);
	o->has_proto_version = 1;
	o->proto_version = m->proto_version;
	o->server_id = (char *)m->server_id;
	o->has_server_time_ms = 1;
	o->server_time_ms = m->server_time_ms;
	o->n_scope = m->n_scope;
	o->scope = (char **)m->scope;
	t->limits.has_max_frame_bytes = 1;
	t->limits.max_frame_bytes = m->limits.max_frame_bytes;
	t->limits.has_max_push_entries = 1;
	t->limits.max_push_entries = m->limits.max_push_entries;
	t->limits.has_pull_byte_budget = 1;
	t->limits.pull_byte_budget = m->limits.pull_byte_budget;
	o->limits = &t->limits;
	o->has_schema_version = 1;
	o->schema_version = m->schema_version;
	o->has_suite = 1;
	o->suite = m->suite;
	o->has_held_seq = m->has_held_seq;
	o->held_seq = m->held_seq;
	/* Absent when 0, so an older server's Welcome keeps its bytes. */
	o->has_scope_version = m->scope_version != 0;
	o->scope_version = m->scope_version;
	o->has_visits_since_ms = m->visits_since_ms != 0;
	o->visits_since_ms = m->visits_since_ms;
	o->has_closed_since_ms = m->closed_since_ms != 0;
	o->closed_since_ms = m->closed_since_ms;
	t->env.welcome = o;
}

/* One arena piece per entry plus the pointer array protobuf-c wants. */
static void
enc_push(struct tree *t, struct arena *a, const struct gs_msg_push *m)
{
	Gs__V1__Push *o = &t->u.push;

	gs__v1__push__init(o);
	o->has_schema_version = 1;
	o->schema_version = m->schema_version;
	o->n_entries = m->n_entries;
	o->entries = take(a, m->n_entries * sizeof(void *));
	for (size_t i = 0; i < m->n_entries; i++) {
		const struct gs_push_entry *e = &m->entries[i];
		Gs__V1__PushEntry *x = take(a, sizeof(*x));

		gs__v1__push_entry__init(x);
		x->has_device_seq = x->has_hlc = 1;
		x->device_seq = e->device_seq;
		x->hlc = e->hlc;
		x->has_changeset = x->has_sha256 = 1;
		x->sha256.data = (uint8_t *)e->sha256;
		x->sha256.len = GS_SHA256_LEN;
		enc_payload(&x->changeset, &x->has_compression, &x->compression,
			    &x->has_uncompressed_len, &x->uncompressed_len,
			    e->changeset, e->changeset_len, e->compression,
			    e->uncompressed_len);
		o->entries[i] = x;
	}
	t->env.push = o;
}

/* Conflicts of a PushAck (with_seq: device_seq always written) or of
 * Changes (device_seq only when known); an id only when given. */
static Gs__V1__Conflict **enc_conflicts(struct arena *a,
					const struct gs_conflict *cs,
					size_t n,
					bool with_seq)
{
	Gs__V1__Conflict **v = take(a, n * sizeof(void *));

	for (size_t i = 0; i < n; i++) {
		const struct gs_conflict *c = &cs[i];
		Gs__V1__Conflict *x = take(a, sizeof(*x));

		gs__v1__conflict__init(x);
		x->has_device_seq = with_seq || c->device_seq != 0;
		x->device_seq = c->device_seq;
		x->table = (char *)c->table;
		x->pk = (char *)c->pk;
		x->column = (char *)c->column;
		x->winner = enc_side(a, &c->winner);
		x->loser = enc_side(a, &c->loser);
		x->has_id = c->id != 0;
		x->id = c->id;
		v[i] = x;
	}
	return v;
}

/* Results and conflicts; a NULL reason is left out, "" is sent. */
static void
enc_push_ack(struct tree *t, struct arena *a, const struct gs_msg_push_ack *m)
{
	Gs__V1__PushAck *o = &t->u.push_ack;

	gs__v1__push_ack__init(o);
	o->has_durable_seq = 1;
	o->durable_seq = m->durable_seq;
	o->n_results = m->n_results;
	o->results = take(a, m->n_results * sizeof(void *));
	for (size_t i = 0; i < m->n_results; i++) {
		const struct gs_push_result *r = &m->results[i];
		Gs__V1__PushResult *x = take(a, sizeof(*x));

		gs__v1__push_result__init(x);
		x->has_device_seq = x->has_result = 1;
		x->device_seq = r->device_seq;
		x->result = (Gs__V1__EntryResult)r->result;
		if (r->reject_code != GS_REJECT_NONE) {
			x->has_reject_code = 1;
			x->reject_code = (Gs__V1__RejectCode)r->reject_code;
		}
		x->reason = (char *)r->reason;
		x->has_final = r->has_final;
		x->final = r->final;
		x->has_held_seq = r->has_held_seq;
		x->held_seq = r->held_seq;
		o->results[i] = x;
	}
	o->n_conflicts = m->n_conflicts;
	o->conflicts = enc_conflicts(a, m->conflicts, m->n_conflicts, true);
	t->env.push_ack = o;
}

/* Mirrors enc_push for the server's side of the stream. */
static void
enc_changes(struct tree *t, struct arena *a, const struct gs_msg_changes *m)
{
	Gs__V1__Changes *o = &t->u.changes;

	gs__v1__changes__init(o);
	o->has_schema_version = 1;
	o->schema_version = m->schema_version;
	o->n_entries = m->n_entries;
	o->entries = take(a, m->n_entries * sizeof(void *));
	for (size_t i = 0; i < m->n_entries; i++) {
		const struct gs_change *e = &m->entries[i];
		Gs__V1__Change *x = take(a, sizeof(*x));

		gs__v1__change__init(x);
		x->has_server_seq = x->has_hlc = 1;
		x->server_seq = e->server_seq;
		x->hlc = e->hlc;
		x->origin = (char *)e->origin;
		x->has_changeset = 1;
		enc_payload(&x->changeset, &x->has_compression, &x->compression,
			    &x->has_uncompressed_len, &x->uncompressed_len,
			    e->changeset, e->changeset_len, e->compression,
			    e->uncompressed_len);
		o->entries[i] = x;
	}
	o->has_next_cursor = o->has_more = 1;
	o->next_cursor = m->next_cursor;
	o->more = m->more;
	o->n_conflicts = m->n_conflicts;
	o->conflicts = enc_conflicts(a, m->conflicts, m->n_conflicts, false);
	o->n_left = m->n_left;
	o->left = take(a, m->n_left * sizeof(void *));
	for (size_t i = 0; i < m->n_left; i++) {
		Gs__V1__RowKey *x = take(a, sizeof(*x));

		gs__v1__row_key__init(x);
		x->table = (char *)m->left[i].table;
		x->pk = (char *)m->left[i].pk;
		x->has_server_seq = 1;
		x->server_seq = m->left[i].server_seq;
		o->left[i] = x;
	}
	t->env.changes = o;
}

/* The messages without lists: Pull, Ping, Pong, Error. */
static void enc_small(struct tree *t, const struct gs_msg *m)
{
	switch (m->type) {
	case GS_MSG_PULL:
		gs__v1__pull__init(&t->u.pull);
		t->u.pull.has_after_seq = t->u.pull.has_byte_budget = 1;
		t->u.pull.after_seq = m->u.pull.after_seq;
		t->u.pull.byte_budget = m->u.pull.byte_budget;
		t->u.pull.has_scope_version = m->u.pull.scope_version != 0;
		t->u.pull.scope_version = m->u.pull.scope_version;
		t->env.pull = &t->u.pull;
		break;
	case GS_MSG_PING:
		gs__v1__ping__init(&t->u.ping);
		t->u.ping.has_nonce = t->u.ping.has_time_ms = 1;
		t->u.ping.nonce = m->u.ping.nonce;
		t->u.ping.time_ms = m->u.ping.time_ms;
		t->env.ping = &t->u.ping;
		break;
	case GS_MSG_PONG:
		gs__v1__pong__init(&t->u.pong);
		t->u.pong.has_nonce = t->u.pong.has_time_ms = 1;
		t->u.pong.nonce = m->u.ping.nonce;
		t->u.pong.time_ms = m->u.ping.time_ms;
		t->env.pong = &t->u.pong;
		break;
	default: /* GS_MSG_ERROR; check_msg admitted nothing else */
		gs__v1__error__init(&t->u.error);
		t->u.error.has_code = 1;
		t->u.error.code = (Gs__V1__ErrorCode)m->u.error.code;
		t->u.error.message = (char *)m->u.error.message;
		if (m->u.error.retry_after_ms != 0) {
			t->u.error.has_retry_after_ms = 1;
			t->u.error.retry_after_ms = m->u.error.retry_after_ms;
		}
		t->env.error = &t->u.error;
	}
}

int gs__msg_encode(struct gs_buf *out,
		   const struct gs_msg *msg,
		   const struct gs_wire_limits *lim)
{
	static const struct gs_wire_limits defaults = GS_WIRE_LIMITS_INIT;
	struct arena a = { NULL, 0, 0 };
	struct tree t;
	struct gs_ctx *ctx;
	uint8_t *dst;
	size_t size;
	size_t packed;
	int rc;

	GS_CHECK_ARG(out != NULL && msg != NULL);
	ctx = out->ctx;
	if (lim == NULL)
		lim = &defaults;
	/* Refuse what a peer would refuse, before spending anything. */
	rc = check_msg(ctx, GS_EINVAL, msg, lim);
	if (rc != GS_OK)
		return rc;
	/* The tree's arrays come from one block, sized up front. */
	a.cap = arena_bytes(msg);
	if (a.cap > 0) {
		a.p = gs__malloc(ctx, a.cap);
		if (a.p == NULL)
			return GS_ENOMEM;
	}
	gs__v1__envelope__init(&t.env);
	t.env.msg_case = (Gs__V1__Envelope__MsgCase)msg->type;
	switch (msg->type) {
	case GS_MSG_HELLO:
		enc_hello(&t, &msg->u.hello);
		break;
	case GS_MSG_WELCOME:
		enc_welcome(&t, &msg->u.welcome);
		break;
	case GS_MSG_PUSH:
		enc_push(&t, &a, &msg->u.push);
		break;
	case GS_MSG_PUSH_ACK:
		enc_push_ack(&t, &a, &msg->u.push_ack);
		break;
	case GS_MSG_CHANGES:
		enc_changes(&t, &a, &msg->u.changes);
		break;
	default:
		enc_small(&t, msg);
	}
	/* Size first, so the frame is packed in place behind its prefix and
	 * a message that would not fit the peer's limit is never built. */
	size = gs__v1__envelope__get_packed_size(&t.env);
	if (size > lim->max_frame) {
		rc = gs__err(ctx, GS_ETOOBIG,
			     "wire: %s frame of %zu bytes above the limit %lu",
			     gs__msg_type_name(msg->type), size,
			     (unsigned long)lim->max_frame);
		goto out;
	}
	rc = gs__buf_reserve(out, GS_FRAME_HDR_LEN + size);
	if (rc != GS_OK)
		goto out;
	dst = out->data + out->len;
	dst[0] = (uint8_t)(size >> 24);
	dst[1] = (uint8_t)(size >> 16);
	dst[2] = (uint8_t)(size >> 8);
	dst[3] = (uint8_t)size;
	packed = gs__v1__envelope__pack(&t.env, dst + GS_FRAME_HDR_LEN);
	GS_ASSERT(packed == size); /* protobuf-c's two passes must agree */
	out->len += GS_FRAME_HDR_LEN + size;
	rc = GS_OK;
out:
	gs__free(ctx, a.p);
	return rc;
}
