/*
 * The server's merge of pushed outbox entries (DESIGN.md section 6),
 * written only against struct gs_store_ops (store_ops.h) and the pure
 * decisions of policy.h.
 *
 * Happy path of one push: look up the device's last recorded seq, open one
 * transaction; for each entry check idempotency (seq and sha256), verify
 * the bytes' hash, validate them with the strict parser (uploaded bytes
 * never reach SQLite's changeset functions), then inside a savepoint merge
 * row by row: tables in manifest order so parents precede children, every
 * row authorised against its current server scope and every value it
 * claims (references, authors, governed columns, event actors: docs/
 * SYNC.md "Authorization"), merged by class (D
 * per column last writer wins, S the same for descriptive columns and the
 * state machine for the governed ones, A insert-if-new), every touched row
 * republished under a new server_seq so that devices pull the canonical
 * row; record the entry in srv_received and release. One commit at the
 * end; only then is durable_seq filled in.
 *
 * Failure modes: a rejected entry is rolled back to its savepoint, then
 * recorded as rejected (it consumes its seq, the device learns why); an
 * entry whose hash does not match or that skips a seq is refused without
 * being recorded (so a clean resend can still succeed). Any other failure
 * (I/O, disk full, memory) rolls the whole push back and returns the
 * error: nothing was made durable and nothing may be acknowledged.
 *
 * Clocks: a row's own hlc/origin columns are its insert stamp; a column
 * gets a clock row only when a later write touches it, and the insert
 * stamp is kept in the clock row "" once the row's hlc column (the newest
 * write to the row) moves on. An entry's HLC is clamped to the server's
 * now + 5 minutes before it stamps anything, and kept strictly after the
 * stamp of the device's previous entry (srv_device_stamp), so that a fast
 * device's own writes keep their order (gs__stamp_entry).
 */
#define GS_MODULE "sync.merge"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gridsync/claimed.h>
#include <gridsync/hlc.h>
#include <gridsync/policy.h>
#include <gridsync/store_ops.h>

/* Returned by the row rules when the entry is rejected (m->rej, m->why
 * say why); never leaves this file. */
#define REJECTED 1

/* PushAck strings: reasons and conflicts. Conflicts stop being copied into
 * the ack past CONFLICT_BYTES (they stay in srv_conflict). */
#define STRINGS_MAX    (4u << 20)
#define CONFLICT_BYTES (2u << 20)

#define ARENA_BLOCK 16384u

/* A block of the per-entry arena: copies of row values live here until
 * the entry ends, so no row costs an allocation of its own. */
struct blk {
	struct blk *next;
	size_t cap;
	size_t used;
	unsigned char data[];
};

/* A conflict waiting to go into the PushAck: offsets into out->strings,
 * turned into pointers once every string is appended. */
struct pend {
	uint64_t device_seq;
	uint64_t id;
	size_t table, pk, column;
	size_t dev[2];
	uint64_t hlc[2];
	enum gs_value_kind kind[2];
	size_t val[2];
	size_t val_len[2];
};

/* Claimed times of the current entry that were bounded (claimed.c), kept
 * until the entry is applied and then recorded; past CLAIMED_MAX only
 * counted. */
#define CLAIMED_MAX 32

/* An issue born in the current entry: it must go through an allowed
 * creation transition before the entry ends. */
struct born {
	const char *id;
	bool created;
};

/* Column positions and classes of one table, worked out once per push
 * so that no row looks a column up by name. */
struct tinfo {
	int hlc, origin, seq, del;
	uint64_t device; /* columns a device's value reaches (device_col) */
	uint64_t quiet;  /* bookkeeping columns (never a conflict) */
	uint64_t self;   /* worker columns: NULL or the device's worker */
	uint64_t fixed;  /* written at insert, the server's after it */
	uint64_t owned;  /* S: the state machine's and the server's */
	unsigned n_ref;
	struct {
		int col;
		const struct gs_table *target;
	} ref[4]; /* columns that name another row */
};

/* An issue event with its sort key (DESIGN.md's order). */
struct evkey {
	const struct gs_cs_row *r;
	const struct gs_cs_value *issue;
	const struct gs_cs_value *hlc;
	int64_t rev;
	int rank;
};

struct clk {
	bool set;
	uint64_t hlc;
	char dev[GS_STORE_DEVICE_MAX];
};

struct merge {
	const struct gs_store_ops *ops;
	void *impl;
	struct gs_ctx *ctx;
	const struct gs_store_device *dev;
	const struct gs_scope *scope;
	int64_t now_ms;
	struct gs_store_push_out *out;

	struct pend *pend;
	size_t n_pend;
	size_t cap_pend;
	size_t *reason_off; /* per result: offset + 1, 0 for none */

	struct blk *arena; /* first block; blocks are reused across entries */
	struct blk *blk;   /* the one being filled */

	/* the entry being merged */
	const struct gs_store_entry *e;
	const struct gs_cs *cs;
	struct gs_stamp s;
	char s_text[GS_HLC_TEXT_LEN];
	uint64_t seq_first;
	uint64_t seq_last;
	uint64_t push_first; /* the push's server_seq range */
	uint64_t push_last;
	uint64_t last_stamp; /* of the device's last merged entry */
	bool stamp_moved;
	enum gs_reject rej;
	char why[256];
	struct evkey *events;
	size_t cap_events;
	/* The issue the entry's events act on, as stored now: kept across
	 * its events (and from its insert) instead of read for each. */
	bool issue_cached;
	char issue_pk[GS_STORE_KEY_MAX + 1];
	struct gs_cs_value issue_row[GS_CS_MAX_COLS];
	struct born *born;
	size_t n_born;
	size_t cap_born;
	struct gs_claimed_rec claimed[CLAIMED_MAX];
	size_t n_claimed;

	const struct gs_table *tables; /* the manifest */
	struct tinfo ti[64];
	const struct gs_table *it, *et; /* issue, issue_event */
	struct {
		int id, state, rev, aw, ao, due, closed, reporter;
	} ic;
	struct {
		int issue, kind, from, to, base, role, actor, time, status,
			reason;
	} ec;

	/* scratch of the row being merged */
	struct gs_cs_value cur[GS_CS_MAX_COLS];
	struct gs_cs_value row[GS_CS_MAX_COLS];
	struct clk clk[GS_CS_MAX_COLS];
	struct clk base;
	const struct gs_table *clk_table;
	char pk[GS_STORE_PK_TEXT_MAX];
};

/* ---- small helpers ------------------------------------------------------ */

static int reject(struct merge *m, enum gs_reject code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int reject(struct merge *m, enum gs_reject code, const char *fmt, ...)
{
	va_list ap;

	m->rej = code;
	va_start(ap, fmt);
	vsnprintf(m->why, sizeof(m->why), fmt, ap);
	va_end(ap);
	return REJECTED;
}

/* Copy len bytes into the entry's arena, NUL-terminated. */
static void *arena_copy(struct merge *m, const void *p, size_t len)
{
	struct blk *b = m->blk;
	unsigned char *dst;

	while (b != NULL && b->cap - b->used < len + 1)
		b = b->next;
	if (b == NULL) {
		size_t cap = len + 1 > ARENA_BLOCK ? len + 1 : ARENA_BLOCK;

		b = gs__malloc(m->ctx, sizeof(*b) + cap);
		if (b == NULL)
			return NULL;
		b->cap = cap;
		b->used = 0;
		b->next = NULL;
		if (m->arena == NULL) {
			m->arena = b;
		} else {
			struct blk *last = m->arena;

			while (last->next != NULL)
				last = last->next;
			last->next = b;
		}
	}
	m->blk = b;
	dst = b->data + b->used;
	if (len > 0)
		memcpy(dst, p, len);
	dst[len] = '\0';
	b->used += len + 1;
	return dst;
}

static void arena_reset(struct merge *m)
{
	for (struct blk *b = m->arena; b != NULL; b = b->next)
		b->used = 0;
	m->blk = m->arena;
}

static void arena_free(struct merge *m)
{
	struct blk *b = m->arena;

	while (b != NULL) {
		struct blk *next = b->next;

		gs__free(m->ctx, b);
		b = next;
	}
	m->arena = NULL;
	m->blk = NULL;
}

/* Make a stable copy of a borrowed row (TEXT/BLOB into the arena). */
static int copy_row(struct merge *m,
		    const struct gs_table *t,
		    struct gs_cs_value *dst,
		    const struct gs_cs_value *src)
{
	for (unsigned i = 0; i < t->n_cols; i++) {
		dst[i] = src[i];
		if (src[i].type == GS_CS_TEXT || src[i].type == GS_CS_BLOB) {
			dst[i].p = arena_copy(m, src[i].p, src[i].len);
			if (dst[i].p == NULL)
				return GS_ENOMEM;
		}
	}
	return GS_OK;
}

/* A TEXT value as a NUL-terminated string in the arena; NULL for SQL
 * NULL, undefined or another type. *rc set on allocation failure. */
static const char *vstr(struct merge *m, const struct gs_cs_value *v, int *rc)
{
	const char *s;

	if (v->type != GS_CS_TEXT)
		return NULL;
	/* Texts from the parser hold no NUL; the arena adds one. */
	s = arena_copy(m, v->p, v->len);
	if (s == NULL)
		*rc = GS_ENOMEM;
	return s;
}

static bool v_eq(const struct gs_cs_value *a, const struct gs_cs_value *b)
{
	if (a->type == GS_CS_INT && b->type == GS_CS_REAL)
		return (double)a->i == b->r;
	if (a->type == GS_CS_REAL && b->type == GS_CS_INT)
		return a->r == (double)b->i;
	if (a->type != b->type)
		return false;
	switch (a->type) {
	case GS_CS_INT:
		return a->i == b->i;
	case GS_CS_REAL:
		return a->r == b->r;
	case GS_CS_TEXT:
	case GS_CS_BLOB:
		return a->len == b->len &&
		       (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
	default:
		return true; /* NULL, undefined */
	}
}

static bool v_text_is(const struct gs_cs_value *v, const char *s)
{
	size_t n = strlen(s);

	return v->type == GS_CS_TEXT && v->len == n && memcmp(v->p, s, n) == 0;
}

static struct gs_cs_value v_text(const char *s)
{
	struct gs_cs_value v;

	memset(&v, 0, sizeof(v));
	if (s == NULL) {
		v.type = GS_CS_NULL;
		return v;
	}
	v.type = GS_CS_TEXT;
	v.p = (const uint8_t *)s;
	v.len = strlen(s);
	return v;
}

static struct gs_cs_value v_int(int64_t i)
{
	struct gs_cs_value v;

	memset(&v, 0, sizeof(v));
	v.type = GS_CS_INT;
	v.i = i;
	return v;
}

static int col(const struct gs_table *t, const char *name)
{
	return gs__table_col(t, name);
}

static const struct tinfo *ti(const struct merge *m, const struct gs_table *t)
{
	return &m->ti[t - m->tables];
}

/* Bookkeeping columns: merged like any, never reported as conflicts. */
static bool
quiet_col(const struct merge *m, const struct gs_table *t, unsigned i)
{
	return (ti(m, t)->quiet >> i) & 1u;
}

/* Columns a device's value reaches: not the key (fixed), not the
 * server's (and for S the governed ones), not hlc and origin (stamped by
 * the server from the entry). */
static bool
device_col(const struct merge *m, const struct gs_table *t, unsigned i)
{
	return (ti(m, t)->device >> i) & 1u;
}

/* Columns that name another row a device may only point at inside its
 * scope (docs/SYNC.md, "Authorization"). Keys that scope a row (a
 * resident's household, an event's issue) are authorised as its scope. */
static const struct {
	const char *table, *column, *target;
} ref_cols[] = {
	{ "household", "dwelling_id", "dwelling" },
	{ "household", "head_resident_id", "resident" },
	{ "visit", "household_id", "household" },
	{ "visit", "task_id", "mobilization_task" },
	{ "visit", "supersedes_id", "visit" },
	{ "mobilization_result", "task_id", "mobilization_task" },
	{ "mobilization_result", "visit_id", "visit" },
	{ "issue", "place_id", "place" },
	{ "issue", "household_id", "household" },
	{ "issue", "parent_issue_id", "issue" },
};

/* Worker columns of device tables; the first two are fixed at insert. */
static const char *const self_cols[] = { "created_by", "reporter_worker_id",
					 "updated_by", "worker_id",
					 "verified_by" };

static void tinfo_init(struct tinfo *x, const struct gs_table *t)
{
	static const char *const quiet[] = { "updated_at", "updated_by",
					     "created_at", "created_by" };

	memset(x, 0, sizeof(*x));
	for (size_t k = 0; k < sizeof(ref_cols) / sizeof(*ref_cols); k++) {
		if (strcmp(ref_cols[k].table, t->name) != 0)
			continue;
		GS_ASSERT(x->n_ref < sizeof(x->ref) / sizeof(*x->ref));
		x->ref[x->n_ref].col = col(t, ref_cols[k].column);
		x->ref[x->n_ref].target = gs__manifest_find(ref_cols[k].target);
		GS_ASSERT(x->ref[x->n_ref].col >= 0 &&
			  x->ref[x->n_ref].target != NULL);
		x->n_ref++;
	}
	x->hlc = col(t, "hlc");
	x->origin = col(t, "origin");
	x->seq = col(t, "server_seq");
	x->del = col(t, "deleted");
	for (unsigned i = 0; i < t->n_cols; i++) {
		unsigned f = t->cols[i].flags;
		bool dev = !(f & (GS_COL_PK | GS_COL_SERVER)) &&
			   !(t->cls == GS_CLASS_S && (f & GS_COL_GOVERNED)) &&
			   (int)i != x->hlc && (int)i != x->origin;

		if (dev)
			x->device |= UINT64_C(1) << i;
		for (size_t k = 0; k < sizeof(quiet) / sizeof(*quiet); k++)
			if (strcmp(t->cols[i].name, quiet[k]) == 0)
				x->quiet |= UINT64_C(1) << i;
		for (size_t k = 0; t->cls != GS_CLASS_R &&
				   k < sizeof(self_cols) / sizeof(*self_cols);
		     k++) {
			if (strcmp(t->cols[i].name, self_cols[k]) != 0)
				continue;
			x->self |= UINT64_C(1) << i;
			if (k < 2)
				x->fixed |= UINT64_C(1) << i;
		}
		if (t->cls == GS_CLASS_S &&
		    (f & (GS_COL_GOVERNED | GS_COL_SERVER)) &&
		    strcmp(t->cols[i].name, "server_seq") != 0)
			x->owned |= UINT64_C(1) << i;
	}
}

/* Column positions of everything the rules name. */
static void columns_init(struct merge *m)
{
	size_t n;

	m->tables = gs__manifest(&n);
	GS_ASSERT(n <= sizeof(m->ti) / sizeof(m->ti[0]));
	for (size_t i = 0; i < n; i++)
		tinfo_init(&m->ti[i], &m->tables[i]);
	m->it = gs__manifest_find("issue");
	m->et = gs__manifest_find("issue_event");
	m->ic.id = col(m->it, "id");
	m->ic.state = col(m->it, "state");
	m->ic.rev = col(m->it, "state_rev");
	m->ic.aw = col(m->it, "assignee_worker_id");
	m->ic.ao = col(m->it, "assignee_org_id");
	m->ic.due = col(m->it, "due_at");
	m->ic.closed = col(m->it, "closed_at");
	m->ic.reporter = col(m->it, "reporter_worker_id");
	m->ec.issue = col(m->et, "issue_id");
	m->ec.kind = col(m->et, "kind");
	m->ec.from = col(m->et, "from_state");
	m->ec.to = col(m->et, "to_state");
	m->ec.base = col(m->et, "base_rev");
	m->ec.role = col(m->et, "actor_role");
	m->ec.actor = col(m->et, "actor_worker_id");
	m->ec.time = col(m->et, "device_time");
	m->ec.status = col(m->et, "apply_status");
	m->ec.reason = col(m->et, "reject_reason");
}

/* ---- keys ------------------------------------------------------------- */

/* Append s as json_array() writes a text element. */
static int
json_str(char *out, size_t cap, size_t *pos, const uint8_t *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t p = *pos;

#define PUT(c)                             \
	do {                               \
		if (p + 1 >= cap)          \
			return GS_ETOOBIG; \
		out[p++] = (char)(c);      \
	} while (0)
	PUT('"');
	for (size_t i = 0; i < len; i++) {
		unsigned char c = s[i];

		if (c == '"' || c == '\\') {
			PUT('\\');
			PUT(c);
		} else if (c == '\b' || c == '\t' || c == '\n' || c == '\f' ||
			   c == '\r') {
			PUT('\\');
			PUT(c == '\b'   ? 'b'
			    : c == '\t' ? 't'
			    : c == '\n' ? 'n'
			    : c == '\f' ? 'f'
					: 'r');
		} else if (c < 0x20) {
			PUT('\\');
			PUT('u');
			PUT('0');
			PUT('0');
			PUT(hex[c >> 4]);
			PUT(hex[c & 0xf]);
		} else {
			PUT(c);
		}
	}
	PUT('"');
#undef PUT
	*pos = p;
	return GS_OK;
}

int gs__merge_pk_text(char *out,
		      size_t cap,
		      const struct gs_table *t,
		      const struct gs_cs_value *row)
{
	unsigned n_pk = gs__table_n_pk(t);
	size_t pos = 0;
	bool first = true;
	int rc;

	if (cap == 0)
		return GS_ETOOBIG;
	for (unsigned i = 0; i < t->n_cols; i++)
		if ((t->cols[i].flags & GS_COL_PK) && row[i].type != GS_CS_TEXT)
			return GS_EINVAL;
	if (n_pk == 1) {
		for (unsigned i = 0; i < t->n_cols; i++)
			if (t->cols[i].flags & GS_COL_PK) {
				if (row[i].len + 1 > cap)
					return GS_ETOOBIG;
				memcpy(out, row[i].p, row[i].len);
				out[row[i].len] = '\0';
				return GS_OK;
			}
	}
	if (cap < 3)
		return GS_ETOOBIG;
	out[pos++] = '[';
	for (unsigned i = 0; i < t->n_cols; i++) {
		if (!(t->cols[i].flags & GS_COL_PK))
			continue;
		if (!first) {
			if (pos + 1 >= cap)
				return GS_ETOOBIG;
			out[pos++] = ',';
		}
		first = false;
		rc = json_str(out, cap, &pos, row[i].p, row[i].len);
		if (rc != GS_OK)
			return rc;
	}
	if (pos + 2 > cap)
		return GS_ETOOBIG;
	out[pos++] = ']';
	out[pos] = '\0';
	return GS_OK;
}

/* Key checks common to every row: text keys of a sane length. Fills
 * m->pk. */
static int row_key(struct merge *m,
		   const struct gs_table *t,
		   const struct gs_cs_value *row)
{
	for (unsigned i = 0; i < t->n_cols; i++)
		if ((t->cols[i].flags & GS_COL_PK) &&
		    row[i].len > GS_STORE_KEY_MAX)
			return reject(m, GS_REJECT_LIMIT,
				      "%s: key column %s longer than %d bytes",
				      t->name, t->cols[i].name,
				      GS_STORE_KEY_MAX);
	if (gs__merge_pk_text(m->pk, sizeof(m->pk), t, row) != GS_OK)
		return reject(m, GS_REJECT_MALFORMED, "%s: key not usable",
			      t->name);
	return GS_OK;
}

/* ---- the PushAck's strings ---------------------------------------------- */

/* Append len bytes and a NUL; *off_out is where they start. */
static int str_add(struct merge *m, const void *p, size_t len, size_t *off_out)
{
	struct gs_buf *b = &m->out->strings;
	size_t off = b->len;
	int rc = gs__buf_reserve(b, len + 1);

	if (rc != GS_OK)
		return rc;
	if (len > 0)
		memcpy(b->data + b->len, p, len);
	b->data[b->len + len] = '\0';
	b->len += len + 1;
	*off_out = off;
	return GS_OK;
}

static int str_value(struct merge *m,
		     const struct gs_cs_value *v,
		     enum gs_value_kind *kind,
		     size_t *off,
		     size_t *len)
{
	char num[40];

	*off = 0;
	*len = 0;
	switch (v != NULL ? v->type : GS_CS_NULL) {
	case GS_CS_INT:
		snprintf(num, sizeof(num), "%lld", (long long)v->i);
		*kind = GS_VALUE_TEXT;
		*len = strlen(num);
		return str_add(m, num, *len, off);
	case GS_CS_REAL:
		snprintf(num, sizeof(num), "%.17g", v->r);
		*kind = GS_VALUE_TEXT;
		*len = strlen(num);
		return str_add(m, num, *len, off);
	case GS_CS_TEXT:
		*kind = GS_VALUE_TEXT;
		*len = v->len;
		return str_add(m, v->p, v->len, off);
	case GS_CS_BLOB:
		*kind = GS_VALUE_BLOB;
		*len = v->len;
		return str_add(m, v->p, v->len, off);
	default:
		*kind = GS_VALUE_NULL;
		return GS_OK;
	}
}

/* Keep a copy of a recorded conflict for the PushAck, within the wire's
 * limits; what does not fit stays in srv_conflict only. */
static int
pend_add(struct merge *m, const struct gs_conflict_rec *c, uint64_t id)
{
	struct gs_buf *b = &m->out->strings;
	size_t mark = b->len;
	struct pend p;
	int rc;

	if (m->n_pend >= GS_WIRE_ITEMS_DEFAULT || b->len > CONFLICT_BYTES ||
	    strlen(c->pk) > GS_WIRE_PK_MAX ||
	    strlen(c->winner.device) > GS_WIRE_ID_MAX ||
	    strlen(c->loser.device) > GS_WIRE_ID_MAX)
		return GS_OK;
	if (m->n_pend == m->cap_pend) {
		size_t cap = m->cap_pend ? m->cap_pend * 2 : 16;
		struct pend *np =
			gs__realloc(m->ctx, m->pend, cap * sizeof(*np));

		if (np == NULL)
			return GS_ENOMEM;
		m->pend = np;
		m->cap_pend = cap;
	}
	memset(&p, 0, sizeof(p));
	p.device_seq = m->e->device_seq;
	p.id = id;
	p.hlc[0] = c->winner.hlc;
	p.hlc[1] = c->loser.hlc;
	rc = str_add(m, c->table, strlen(c->table), &p.table);
	if (rc == GS_OK)
		rc = str_add(m, c->pk, strlen(c->pk), &p.pk);
	if (rc == GS_OK)
		rc = str_add(m, c->column, strlen(c->column), &p.column);
	if (rc == GS_OK)
		rc = str_add(m, c->winner.device, strlen(c->winner.device),
			     &p.dev[0]);
	if (rc == GS_OK)
		rc = str_add(m, c->loser.device, strlen(c->loser.device),
			     &p.dev[1]);
	if (rc == GS_OK)
		rc = str_value(m, c->winner_value, &p.kind[0], &p.val[0],
			       &p.val_len[0]);
	if (rc == GS_OK)
		rc = str_value(m, c->loser_value, &p.kind[1], &p.val[1],
			       &p.val_len[1]);
	if (rc == GS_ETOOBIG) {
		b->len = mark; /* no room in the ack: srv_conflict has it */
		return GS_OK;
	}
	if (rc != GS_OK) {
		b->len = mark;
		return rc;
	}
	m->pend[m->n_pend++] = p;
	return GS_OK;
}

/* Record a conflict in the store and for the ack. */
static int conflict(struct merge *m,
		    const struct gs_table *t,
		    const char *column,
		    const struct gs_stamp *win,
		    const struct gs_cs_value *win_v,
		    const struct gs_stamp *lose,
		    const struct gs_cs_value *lose_v,
		    bool entry_lost)
{
	struct gs_conflict_rec c;
	uint64_t id = 0;
	int rc;

	c.table = t->name;
	c.pk = m->pk;
	c.column = column;
	c.entry_device = m->dev->id;
	c.entry_seq = m->e->device_seq;
	c.entry_lost = entry_lost;
	c.winner = *win;
	c.loser = *lose;
	c.winner_value = win_v;
	c.loser_value = lose_v;
	c.at_ms = m->now_ms;
	/* The row was written under a seq of this push before any of its
	 * conflicts: the loser's next pull covers it. */
	c.deliver_seq = m->seq_last;
	rc = m->ops->conflict_put(m->impl, &c, &id);
	if (rc == GS_OK)
		rc = pend_add(m, &c, id);
	return rc;
}

/* ---- scope and authorisation ------------------------------------------ */

static bool in_scope(struct merge *m, const char *grid)
{
	return grid != NULL && grid[0] != '\0' && gs__scope_has(m->scope, grid);
}

/* Copy a TEXT value into a fixed buffer; false if it does not fit. */
static bool text_to(char *dst, size_t cap, const struct gs_cs_value *v)
{
	if (v->type != GS_CS_TEXT || v->len + 1 > cap) {
		dst[0] = '\0';
		return v->type != GS_CS_TEXT;
	}
	memcpy(dst, v->p, v->len);
	dst[v->len] = '\0';
	return true;
}

/*
 * The grid that scopes row values vals of t as the server sees it now:
 * the row's own grid column, its parent's current grid, or its owner's.
 * grid is "" when there is none (which is in no scope). REJECTED when the
 * parent or owner is not a row the server holds.
 */
static int row_grid(struct merge *m,
		    const struct gs_table *t,
		    const struct gs_cs_value *vals,
		    char grid[GS_STORE_GRID_MAX])
{
	const struct gs_table *pt = NULL;
	char id[GS_STORE_KEY_MAX + 1];
	bool found = false;
	int rc;

	grid[0] = '\0';
	switch (t->scope) {
	case GS_SCOPE_GRID:
		text_to(grid, GS_STORE_GRID_MAX, &vals[t->scope_col]);
		return GS_OK;
	case GS_SCOPE_PARENT:
		pt = gs__manifest_find(t->scope_parent);
		break;
	case GS_SCOPE_OWNER: {
		char name[GS_CS_NAME_MAX + 1];

		if (text_to(name, sizeof(name), &vals[t->scope_col - 1]))
			pt = gs__manifest_find(name);
		if (pt == NULL || pt->cls == GS_CLASS_R ||
		    gs__table_n_pk(pt) != 1)
			return reject(m, GS_REJECT_DENIED,
				      "%s %s: owner table not allowed", t->name,
				      m->pk);
		break;
	}
	default:
		return GS_OK; /* reference data: no device writes it */
	}
	GS_ASSERT(pt != NULL);
	if (vals[t->scope_col].type != GS_CS_TEXT ||
	    !text_to(id, sizeof(id), &vals[t->scope_col]))
		return reject(m, GS_REJECT_STATE, "%s %s: no %s", t->name,
			      m->pk, pt->name);
	rc = m->ops->row_grid(m->impl, pt, id, grid, &found);
	if (rc != GS_OK)
		return rc;
	if (!found)
		return reject(m, GS_REJECT_STATE,
			      "%s %s: %s %s is not on the server", t->name,
			      m->pk, pt->name, id);
	return GS_OK;
}

/* The device's worker is the assignee or the reporter of issue row v:
 * such an issue is in the device's scope whatever its grid (DOMAIN's
 * scope rule, docs/SYNC.md "Scope"). */
static bool issue_reaches_me(const struct merge *m, const struct gs_cs_value *v)
{
	const char *me = m->dev->worker_id;
	size_t n = strlen(me);
	const int cols[] = { m->ic.aw, m->ic.reporter };

	if (n == 0 || v == NULL)
		return false;
	for (size_t k = 0; k < sizeof(cols) / sizeof(*cols); k++) {
		const struct gs_cs_value *c = &v[cols[k]];

		if (cols[k] >= 0 && c->type == GS_CS_TEXT && c->len == n &&
		    memcmp(c->p, me, n) == 0)
			return true;
	}
	return false;
}

static int deny(struct merge *m, const struct gs_table *t, const char *grid)
{
	return reject(m, GS_REJECT_DENIED,
		      "%s %s: grid %s is outside the device's scope", t->name,
		      m->pk, grid[0] != '\0' ? grid : "(none)");
}

/* Authorise a row by its grid; fills grid. */
static int authorise(struct merge *m,
		     const struct gs_table *t,
		     const struct gs_cs_value *vals,
		     char grid[GS_STORE_GRID_MAX])
{
	int rc = row_grid(m, t, vals, grid);

	if (rc != GS_OK)
		return rc;
	return in_scope(m, grid) ? GS_OK : deny(m, t, grid);
}

/* Does vals change what scopes the row (its grid, parent or owner)? */
static bool moves_scope(const struct gs_table *t, const struct gs_cs_value *v)
{
	if (t->scope_col < 0)
		return false;
	if (v[t->scope_col].type != GS_CS_UNDEFINED)
		return true;
	return t->scope == GS_SCOPE_OWNER &&
	       v[t->scope_col - 1].type != GS_CS_UNDEFINED;
}

/* Role rules on resident_tag (DESIGN.md: device-sourced tags only;
 * restricted tags never leave the server, so no device may write one). */
static int tag_rules(struct merge *m,
		     const struct gs_table *t,
		     const struct gs_cs_value *cur,
		     const struct gs_cs_value *nv)
{
	int i_src = col(t, "source");
	int i_code = col(t, "tag_code");
	bool restricted = false;
	char code[GS_STORE_KEY_MAX + 1];
	int rc;

	if (strcmp(t->name, "resident_tag") != 0)
		return GS_OK;
	if (cur != NULL && !v_text_is(&cur[i_src], "device"))
		return reject(m, GS_REJECT_DENIED,
			      "resident_tag %s: only device-sourced tags may "
			      "be changed on a device",
			      m->pk);
	if (nv != NULL && nv[i_src].type != GS_CS_UNDEFINED &&
	    !v_text_is(&nv[i_src], "device"))
		return reject(m, GS_REJECT_DENIED,
			      "resident_tag %s: a device writes source "
			      "'device' only",
			      m->pk);
	if (nv == NULL || nv[i_code].type != GS_CS_TEXT)
		return GS_OK;
	if (!text_to(code, sizeof(code), &nv[i_code]))
		return reject(m, GS_REJECT_LIMIT, "resident_tag %s: tag code",
			      m->pk);
	rc = m->ops->tag_restricted(m->impl, code, &restricted);
	if (rc == GS_OK && restricted)
		return reject(m, GS_REJECT_DENIED,
			      "resident_tag %s: tag %s is restricted", m->pk,
			      code);
	return rc;
}

/* ---- what a row claims: references, authors, governed columns ----------- */

/*
 * The rules below refuse the whole entry (GS_REJECT_DENIED) with a reason
 * that ends in "(rule: NAME)", the names docs/SYNC.md's authorization
 * table uses. They judge only values the entry writes: a value equal to
 * the stored one claims nothing new.
 */

/* Does the entry insert row id of t (a one-column key)? */
static bool
entry_inserts(const struct merge *m, const struct gs_table *t, const char *id)
{
	for (size_t s = 0; s < m->cs->n_spans; s++) {
		const struct gs_cs_span *sp = &m->cs->spans[s];

		if (sp->table != t)
			continue;
		for (size_t k = 0; k < sp->n_rows; k++) {
			const struct gs_cs_row *r =
				&m->cs->rows[sp->first_row + k];

			if (r->op == GS_CS_INSERT &&
			    v_text_is(&r->new_vals[0], id))
				return true;
		}
	}
	return false;
}

/* Is v a value the row writes: defined, and new unless cur holds it? */
static bool writes(const struct gs_cs_value *v, const struct gs_cs_value *cur)
{
	return v->type != GS_CS_UNDEFINED && (cur == NULL || !v_eq(v, cur));
}

static int issue_load(struct merge *m, const char *id, bool *found);

/* A reference of t's column i to row v of target: the row must be on the
 * server (or inserted by this entry) and lie in the device's scope;
 * reference data without a grid (a place outside every grid) is
 * everybody's. */
static int ref_check(struct merge *m,
		     const struct gs_table *t,
		     int i,
		     const struct gs_table *target,
		     const struct gs_cs_value *v)
{
	char id[GS_STORE_KEY_MAX + 1];
	char grid[GS_STORE_GRID_MAX];
	bool found = false;
	int rc;

	if (v->type == GS_CS_NULL)
		return GS_OK;
	if (v->type != GS_CS_TEXT || !text_to(id, sizeof(id), v))
		return reject(m, GS_REJECT_DENIED,
			      "%s %s: %s is not a usable key (rule: reference)",
			      t->name, m->pk, t->cols[i].name);
	rc = m->ops->row_grid(m->impl, target, id, grid, &found);
	if (rc != GS_OK)
		return rc;
	if (!found)
		return entry_inserts(m, target, id)
			       ? GS_OK
			       : reject(m, GS_REJECT_DENIED,
					"%s %s: %s names %s %s, which is not "
					"on "
					"the server (rule: reference)",
					t->name, m->pk, t->cols[i].name,
					target->name, id);
	if (grid[0] == '\0' && target->cls == GS_CLASS_R)
		return GS_OK;
	if (in_scope(m, grid))
		return GS_OK;
	/* An event of an issue the worker is assignee or reporter of (the
	 * event path holds that issue in m->cur anyway). */
	if (t == m->et && target == m->it) {
		bool have = false;

		rc = issue_load(m, id, &have);
		if (rc != GS_OK)
			return rc;
		if (have && issue_reaches_me(m, m->cur))
			return GS_OK;
	}
	return reject(m, GS_REJECT_DENIED,
		      "%s %s: %s names %s %s of grid %s, outside the device's "
		      "scope (rule: reference)",
		      t->name, m->pk, t->cols[i].name, target->name, id,
		      grid[0] != '\0' ? grid : "(none)");
}

/*
 * The values nv a device writes into a row of t (cur: the row as stored,
 * NULL for a new row): columns fixed at insert keep their value, worker
 * columns name the device's own worker (or nobody), references stay in
 * the device's scope.
 */
static int values_check(struct merge *m,
			const struct gs_table *t,
			const struct gs_cs_value *cur,
			const struct gs_cs_value *nv)
{
	const struct tinfo *x = ti(m, t);
	const char *me = m->dev->worker_id;
	int rc;

	for (unsigned i = 0; i < t->n_cols; i++) {
		uint64_t bit = UINT64_C(1) << i;

		if (!((x->fixed | x->self) & bit) ||
		    !writes(&nv[i], cur != NULL ? &cur[i] : NULL))
			continue;
		if (cur != NULL && (x->fixed & bit))
			return reject(m, GS_REJECT_DENIED,
				      "%s %s: %s is set when the row is "
				      "created and kept by the server (rule: "
				      "fixed)",
				      t->name, m->pk, t->cols[i].name);
		if (nv[i].type != GS_CS_NULL &&
		    (me[0] == '\0' || !v_text_is(&nv[i], me)))
			return reject(m, GS_REJECT_DENIED,
				      "%s %s: %s must name the device's own "
				      "worker (rule: author)",
				      t->name, m->pk, t->cols[i].name);
	}
	for (unsigned k = 0; k < x->n_ref; k++) {
		int i = x->ref[k].col;

		if (!writes(&nv[i], cur != NULL ? &cur[i] : NULL))
			continue;
		rc = ref_check(m, t, i, x->ref[k].target, &nv[i]);
		if (rc != GS_OK)
			return rc;
	}
	return GS_OK;
}

/* What the entry's transition events of issue id may change on it. */
struct moves {
	bool any;    /* a transition: state and state_rev */
	bool closes; /* one to closed: closed_at */
	bool assign; /* a dispatch the device's role may make: assignee, due */
};

static void entry_moves(struct merge *m, const char *id, struct moves *mv)
{
	char from[32];
	char to[32];

	memset(mv, 0, sizeof(*mv));
	for (size_t s = 0; s < m->cs->n_spans; s++) {
		const struct gs_cs_span *sp = &m->cs->spans[s];

		if (sp->table != m->et)
			continue;
		for (size_t k = 0; k < sp->n_rows; k++) {
			const struct gs_cs_value *ev =
				m->cs->rows[sp->first_row + k].new_vals;
			const struct gs_transition *rule;

			if (m->cs->rows[sp->first_row + k].op != GS_CS_INSERT ||
			    !v_text_is(&ev[m->ec.issue], id) ||
			    !v_text_is(&ev[m->ec.kind], "transition"))
				continue;
			text_to(from, sizeof(from), &ev[m->ec.from]);
			text_to(to, sizeof(to), &ev[m->ec.to]);
			rule = gs__transition_find(from, to);
			mv->any = true;
			mv->closes = mv->closes || strcmp(to, "closed") == 0;
			mv->assign =
				mv->assign || (gs__transition_assigns(rule) &&
					       (rule->roles & m->dev->role));
		}
	}
}

/*
 * The columns of an issue the state machine and the server own (docs/
 * SYNC.md): a new issue starts without an assignee, a deadline, a close
 * or any server column; a later write changes state and state_rev only
 * with a transition of the same entry, closed_at only with one to closed,
 * the assignee and the deadline only with a dispatch the device's role may
 * make (so never through rework, handled -> dispatched), and the server's
 * own columns never. The server then derives the values from the events
 * it accepts; an issue that arrives again as an INSERT claims nothing
 * (its governed values are ignored, as before).
 */
static int issue_rules(struct merge *m,
		       const struct gs_cs_row *r,
		       const struct gs_cs_value *cur)
{
	const struct gs_table *it = m->it;
	const struct gs_cs_value *nv = r->new_vals;
	uint64_t owned = ti(m, it)->owned;
	struct moves mv;
	bool loaded = false;

	if (r->op == GS_CS_DELETE || (r->op == GS_CS_INSERT && cur != NULL))
		return GS_OK;
	for (unsigned i = 0; i < it->n_cols; i++) {
		bool ok;

		if (!((owned >> i) & 1u))
			continue;
		if (cur == NULL) {
			/* A new issue: the state is replayed from its
			 * events, everything else starts empty. */
			ok = (int)i == m->ic.state || (int)i == m->ic.rev ||
			     nv[i].type == GS_CS_NULL ||
			     (nv[i].type == GS_CS_INT && nv[i].i == 0);
		} else if (!writes(&nv[i], &cur[i])) {
			continue;
		} else {
			if (!loaded)
				entry_moves(m, m->pk, &mv);
			loaded = true;
			if ((int)i == m->ic.state || (int)i == m->ic.rev)
				ok = mv.any;
			else if ((int)i == m->ic.closed)
				ok = mv.closes;
			else if ((int)i == m->ic.aw || (int)i == m->ic.ao ||
				 (int)i == m->ic.due)
				ok = mv.assign;
			else
				ok = false;
		}
		if (!ok)
			return reject(
				m, GS_REJECT_DENIED,
				"issue %s: %s is the server's: %s (rule: "
				"governed)",
				m->pk, it->cols[i].name,
				(int)i == m->ic.aw || (int)i == m->ic.ao ||
						(int)i == m->ic.due
					? "assignee and deadline change only "
					  "by a dispatch from accepted or "
					  "returned; rework (handled -> "
					  "dispatched) keeps them"
					: "it changes only through the "
					  "events the server accepts");
	}
	return GS_OK;
}

/* An uploaded issue_event against the issue in m->cur: the actor is the
 * device, and only a transition changes state. */
static int event_rules(struct merge *m, const struct gs_cs_value *ev)
{
	struct gs_event_input in;
	const char *rule;
	int rc = GS_OK;

	memset(&in, 0, sizeof(in));
	in.kind = vstr(m, &ev[m->ec.kind], &rc);
	in.from = vstr(m, &ev[m->ec.from], &rc);
	in.to = vstr(m, &ev[m->ec.to], &rc);
	in.state = vstr(m, &m->cur[m->ic.state], &rc);
	in.actor_worker_id = vstr(m, &ev[m->ec.actor], &rc);
	in.actor_role = vstr(m, &ev[m->ec.role], &rc);
	in.device_role = m->dev->role;
	in.device_worker_id =
		m->dev->worker_id[0] != '\0' ? m->dev->worker_id : NULL;
	if (rc != GS_OK)
		return rc;
	rule = gs__event_check(&in);
	if (rule == NULL)
		return GS_OK;
	if (strcmp(rule, "actor") == 0)
		return reject(m, GS_REJECT_DENIED,
			      "issue_event %s: the actor must be the device's "
			      "own worker in its role %s (rule: actor)",
			      m->pk, gs__role_name(m->dev->role));
	return reject(m, GS_REJECT_DENIED,
		      "issue_event %s: the kinds are transition, comment, "
		      "evidence, urge and extend_req, and only a transition "
		      "changes the state (rule: event)",
		      m->pk);
}

/* ---- the change log ----------------------------------------------------- */

/*
 * The server_seq for a row touched by this entry: a new one, or the one it
 * already got earlier in the same entry (an issue merged, then moved).
 */
static int row_seq(struct merge *m,
		   const struct gs_cs_value *seq_v,
		   uint64_t *out,
		   bool *reused)
{
	int rc;

	if (reused != NULL)
		*reused = false;
	if (m->seq_first != 0 && seq_v != NULL && seq_v->type == GS_CS_INT &&
	    (uint64_t)seq_v->i >= m->seq_first) {
		*out = (uint64_t)seq_v->i;
		if (reused != NULL)
			*reused = true;
		return GS_OK;
	}
	rc = m->ops->seq_next(m->impl, out);
	if (rc != GS_OK)
		return rc;
	if (m->seq_first == 0)
		m->seq_first = *out;
	m->seq_last = *out;
	return GS_OK;
}

/* Bit mask of the columns where row differs from cur. */
static uint64_t changed_cols(const struct gs_table *t,
			     const struct gs_cs_value *row,
			     const struct gs_cs_value *cur)
{
	uint64_t mask = 0;

	for (unsigned i = 0; i < t->n_cols; i++)
		if (row[i].type != cur[i].type || !v_eq(&row[i], &cur[i]))
			mask |= UINT64_C(1) << i;
	return mask;
}

/* Map a write's constraint failure to the entry's rejection. */
static int write_result(struct merge *m, const struct gs_table *t, int rc)
{
	if (rc == GS_EINVAL)
		return reject(m, GS_REJECT_MALFORMED, "%s %s: constraint: %s",
			      t->name, m->pk, gs_ctx_errmsg(m->ctx));
	return rc;
}

/* fresh: the row was inserted just now (it has no log entry yet). */
static int log_row(struct merge *m,
		   const struct gs_table *t,
		   const char *grid,
		   uint64_t seq,
		   bool fresh)
{
	return m->ops->log_change(m->impl, t, m->pk, grid, false, seq, fresh);
}

/* ---- clocks -------------------------------------------------------------- */

static int
clock_cb(const char *column, uint64_t hlc, const char *device, void *payload)
{
	struct merge *m = payload;
	struct clk *c = NULL;
	int i;

	if (column[0] == '\0') {
		c = &m->base;
	} else {
		i = gs__table_col(m->clk_table, column);
		if (i < 0)
			return GS_OK; /* a column of an older schema */
		c = &m->clk[i];
	}
	c->set = true;
	c->hlc = hlc;
	snprintf(c->dev, sizeof(c->dev), "%s", device);
	return GS_OK;
}

static int clocks_load(struct merge *m, const struct gs_table *t)
{
	for (unsigned i = 0; i < t->n_cols; i++)
		m->clk[i].set = false;
	m->base.set = false;
	m->clk_table = t;
	return m->ops->clocks_get(m->impl, t, m->pk, clock_cb, m);
}

/* The row's insert stamp from its own hlc/origin columns. */
static void row_stamp(const struct merge *m,
		      const struct gs_table *t,
		      const struct gs_cs_value *cur,
		      struct clk *out)
{
	int ih = ti(m, t)->hlc;
	int io = ti(m, t)->origin;
	char text[GS_HLC_TEXT_LEN];

	out->set = true;
	out->hlc = 0;
	out->dev[0] = '\0';
	if (ih >= 0 && text_to(text, sizeof(text), &cur[ih]) &&
	    gs__hlc_parse(&out->hlc, text) != GS_OK)
		out->hlc = 0;
	if (io >= 0)
		text_to(out->dev, sizeof(out->dev), &cur[io]);
}

static struct gs_stamp clock_of(struct merge *m,
				const struct gs_table *t,
				const struct gs_cs_value *cur,
				unsigned i)
{
	struct gs_stamp s;

	if (!m->clk[i].set) {
		if (m->base.set)
			m->clk[i] = m->base;
		else
			row_stamp(m, t, cur, &m->clk[i]);
	}
	s.hlc = m->clk[i].hlc;
	s.device = m->clk[i].dev;
	return s;
}

/* ---- class D and S: field merge ---------------------------------------- */

/* Values an issue starts with before its events replay. */
static void issue_initial(const struct merge *m,
			  const struct gs_table *t,
			  struct gs_cs_value *row)
{
	for (unsigned i = 0; i < t->n_cols; i++)
		if (t->cols[i].flags & GS_COL_GOVERNED)
			row[i] = v_text(NULL);
	row[m->ic.state] = v_text("draft");
	row[m->ic.rev] = v_int(0);
}

/* Build the row a device INSERT becomes: its values for the columns it
 * may write, the server's for the rest. */
static void build_insert(struct merge *m,
			 const struct gs_table *t,
			 const struct gs_cs_value *nv,
			 uint64_t seq,
			 struct gs_cs_value *row)
{
	const struct tinfo *x = ti(m, t);

	for (unsigned i = 0; i < t->n_cols; i++) {
		const struct gs_column *c = &t->cols[i];

		if (c->flags & GS_COL_SERVER)
			row[i] = (c->flags & GS_COL_NOTNULL) ? v_int(0)
							     : v_text(NULL);
		else
			row[i] = nv[i];
	}
	row[x->seq] = v_int((int64_t)seq);
	row[x->hlc] = v_text(m->s_text);
	row[x->origin] = v_text(m->dev->id);
	if (t->cls == GS_CLASS_S)
		issue_initial(m, t, row);
}

/* ---- dedupe ------------------------------------------------------------ */

/* Columns that name a household or resident a duplicate may stand for
 * (not mobilization_result.household_id: it is part of that row's key). */
static const struct {
	const char *table, *column;
} merge_refs[] = {
	{ "household", "head_resident_id" }, { "resident", "household_id" },
	{ "resident_tag", "resident_id" },   { "visit", "household_id" },
	{ "issue", "household_id" },
};

/*
 * A new row that names a merged household or resident names the row it
 * was merged into instead (a visit recorded offline for the duplicate, the
 * duplicate's residents inserted with it): the server's row is what every
 * device pulls, so the reference keeps working everywhere. Both rows are
 * in one grid (dedupe never crosses grids), so the row's scope holds.
 */
static int
repoint(struct merge *m, const struct gs_table *t, struct gs_cs_value *row)
{
	char into[GS_STORE_KEY_MAX + 1];
	char id[GS_STORE_KEY_MAX + 1];
	int rc = GS_OK;

	for (size_t k = 0;
	     rc == GS_OK && k < sizeof(merge_refs) / sizeof(*merge_refs); k++) {
		int c;

		if (strcmp(t->name, merge_refs[k].table) != 0)
			continue;
		c = col(t, merge_refs[k].column);
		if (c < 0 || row[c].type != GS_CS_TEXT ||
		    !text_to(id, sizeof(id), &row[c]))
			continue;
		rc = m->ops->merged_target(m->impl, id, into);
		if (rc == GS_OK && into[0] != '\0') {
			const char *copy = arena_copy(m, into, strlen(into));

			if (copy == NULL)
				return GS_ENOMEM;
			row[c] = v_text(copy);
		}
	}
	return rc;
}

/*
 * A household inserted for a dwelling that already has one, or a resident
 * under an ID number (its HMAC) already registered in the grid, is a
 * duplicate of the row the server held first: a merged_into row redirects
 * it there (devices hide it and follow the redirect; later rows naming it
 * are re-pointed by repoint). The duplicate itself stays, with what it
 * holds, so nothing a worker saved is erased.
 */
static int dedupe(struct merge *m,
		  const struct gs_table *t,
		  const struct gs_cs_value *row,
		  const char *grid)
{
	const struct gs_table *mt = gs__manifest_find("merged_into");
	const char *key_col = strcmp(t->name, "household") == 0  ? "dwelling_id"
			      : strcmp(t->name, "resident") == 0 ? "id_no_hmac"
								 : NULL;
	struct gs_cs_value mrow[GS_CS_MAX_COLS];
	char key[GS_STORE_KEY_MAX + 1];
	char into[GS_STORE_KEY_MAX + 1];
	char at[GS_TIME_LEN];
	const char *id;
	const char *copy;
	uint64_t seq;
	int kc;
	int rc;

	if (key_col == NULL || mt == NULL)
		return GS_OK;
	kc = col(t, key_col);
	if (kc < 0 || row[kc].type != GS_CS_TEXT || row[kc].len == 0 ||
	    !text_to(key, sizeof(key), &row[kc]))
		return GS_OK;
	rc = m->ops->dup_find(m->impl, t, key, m->pk, grid, into);
	if (rc != GS_OK || into[0] == '\0')
		return rc;
	id = arena_copy(m, m->pk, strlen(m->pk));
	copy = arena_copy(m, into, strlen(into));
	if (id == NULL || copy == NULL)
		return GS_ENOMEM;
	rc = row_seq(m, NULL, &seq, NULL);
	if (rc != GS_OK)
		return rc;
	gs__time_format(at, m->now_ms);
	memset(mrow, 0, sizeof(mrow));
	mrow[col(mt, "id")] = v_text(id);
	mrow[col(mt, "tbl")] = v_text(t->name);
	mrow[col(mt, "into_id")] = v_text(copy);
	mrow[col(mt, "grid_id")] = v_text(grid);
	mrow[col(mt, "at")] = v_text(at);
	mrow[col(mt, "server_seq")] = v_int((int64_t)seq);
	mrow[col(mt, "deleted")] = v_int(0);
	rc = m->ops->row_insert(m->impl, mt, mrow);
	if (rc == GS_EEXISTS || rc == GS_EINVAL) {
		/* Redirected already, or the redirect breaks a constraint:
		 * the row stays as it came (never the entry's refusal). */
		gs__err_clear(m->ctx);
		return GS_OK;
	}
	if (rc != GS_OK)
		return rc;
	GS_DEBUG(m->ctx, "%s %s merged into %s", t->name, id, copy);
	return m->ops->log_change(m->impl, mt, id, grid, false, seq, true);
}

static int born_add(struct merge *m, const char *id)
{
	if (m->n_born == m->cap_born) {
		size_t cap = m->cap_born ? m->cap_born * 2 : 8;
		struct born *nb =
			gs__realloc(m->ctx, m->born, cap * sizeof(*nb));

		if (nb == NULL)
			return GS_ENOMEM;
		m->born = nb;
		m->cap_born = cap;
	}
	m->born[m->n_born].id = id;
	m->born[m->n_born].created = false;
	m->n_born++;
	return GS_OK;
}

static struct born *born_find(struct merge *m, const char *id)
{
	for (size_t i = 0; i < m->n_born; i++)
		if (strcmp(m->born[i].id, id) == 0)
			return &m->born[i];
	return NULL;
}

/* Remember row as issue id's stored values (stable for the entry). */
static void
issue_keep(struct merge *m, const char *id, const struct gs_cs_value *row)
{
	snprintf(m->issue_pk, sizeof(m->issue_pk), "%s", id);
	memcpy(m->issue_row, row, m->it->n_cols * sizeof(*row));
	m->issue_cached = true;
}

/* Is the row in cur a tombstone? */
static bool tombstoned(const struct merge *m,
		       const struct gs_table *t,
		       const struct gs_cs_value *cur)
{
	int i = ti(m, t)->del;

	return i >= 0 && cur[i].type == GS_CS_INT && cur[i].i != 0;
}

/*
 * A tombstone written as an UPDATE (deleted 0 -> 1, what the handheld's
 * delete does) carries no old values of the other columns, so whether the
 * device saw the row's latest writes is told by the cursor of its Hello:
 * a row changed after it (and not by this push) was written by someone
 * the delete did not see. The newest such write of another device lost to
 * the delete; its device is told, as it is when the delete arrives first
 * and the edit lands on the tombstone. Fills *out and returns true if so.
 */
static bool unseen_write(struct merge *m,
			 const struct gs_table *t,
			 const struct gs_cs_value *cur,
			 struct gs_stamp *out)
{
	int i_seq = ti(m, t)->seq;
	int i_del = ti(m, t)->del;
	bool found = false;

	if (m->dev->cursor == 0 || i_seq < 0 || cur[i_seq].type != GS_CS_INT ||
	    (uint64_t)cur[i_seq].i <= m->dev->cursor ||
	    (m->push_first != 0 && (uint64_t)cur[i_seq].i >= m->push_first) ||
	    (m->seq_first != 0 && (uint64_t)cur[i_seq].i >= m->seq_first))
		return false;
	for (unsigned i = 0; i < t->n_cols; i++) {
		struct gs_stamp c;

		if (!device_col(m, t, i) || quiet_col(m, t, i) ||
		    (int)i == i_del)
			continue;
		c = clock_of(m, t, cur, i);
		if (c.device == NULL || strcmp(c.device, m->dev->id) == 0)
			continue;
		if (!found ||
		    gs__stamp_cmp(c.hlc, c.device, out->hlc, out->device) > 0)
			*out = c;
		found = true;
	}
	return found;
}

/*
 * Merge an UPDATE, a DELETE (tombstone) or an INSERT of a row the server
 * already holds (cur, a stable copy) column by column. The values written
 * are the row's new values (for a DELETE only "deleted" = 1); what the
 * device saw is its old values (none for an INSERT).
 *
 * Everything is decided first and the row written before any clock or
 * conflict: a write the schema refuses (GS_EINVAL) then leaves nothing
 * behind, so an entry of one row needs no savepoint.
 */
static int merge_columns(struct merge *m,
			 const struct gs_table *t,
			 const struct gs_cs_row *r,
			 const struct gs_cs_value *cur,
			 char grid[GS_STORE_GRID_MAX])
{
	const struct gs_cs_value *nv =
		r->op == GS_CS_DELETE ? NULL : r->new_vals;
	const struct gs_cs_value *ov =
		r->op == GS_CS_INSERT ? NULL : r->old_vals;
	static const struct gs_cs_value one = { GS_CS_INT, { .i = 1 } };
	static const struct gs_cs_value zero = { GS_CS_INT, { .i = 0 } };
	struct gs_col_decision dec[GS_CS_MAX_COLS];
	struct gs_stamp other[GS_CS_MAX_COLS];
	const struct gs_cs_value *val[GS_CS_MAX_COLS];
	bool wins[GS_CS_MAX_COLS];
	int i_del = ti(m, t)->del;
	int i_hlc = ti(m, t)->hlc;
	int i_seq = ti(m, t)->seq;
	bool row_same = true; /* DELETE: the device saw the current row */
	struct gs_stamp newest = { 0, NULL };
	struct gs_stamp unseen = { 0, NULL };
	bool tombstoning = false;
	struct clk stamp;
	bool any_clock = false;
	bool moved = false;
	bool save_base = false;
	bool reused;
	char new_grid[GS_STORE_GRID_MAX];
	uint64_t seq;
	int rc;

	rc = clocks_load(m, t);
	if (rc != GS_OK)
		return rc;
	memcpy(m->row, cur, t->n_cols * sizeof(*cur));
	if (r->op == GS_CS_DELETE) {
		for (unsigned i = 0; i < t->n_cols; i++) {
			struct gs_stamp c;

			if (!device_col(m, t, i) || quiet_col(m, t, i) ||
			    (int)i == i_del || v_eq(&ov[i], &cur[i]))
				continue;
			row_same = false;
			c = clock_of(m, t, cur, i);
			if (newest.device == NULL ||
			    gs__stamp_cmp(c.hlc, c.device, newest.hlc,
					  newest.device) > 0)
				newest = c;
		}
	}
	/* Decide every column. */
	for (unsigned i = 0; i < t->n_cols; i++) {
		struct gs_col_input in;

		memset(&dec[i], 0, sizeof(dec[i]));
		val[i] = NULL;
		if (!device_col(m, t, i))
			continue;
		if (r->op == GS_CS_DELETE) {
			if ((int)i != i_del)
				continue;
			val[i] = &one;
		} else {
			if (nv[i].type == GS_CS_UNDEFINED)
				continue;
			val[i] = &nv[i];
		}
		other[i] = clock_of(m, t, cur, i);
		in.wins = gs__stamp_cmp(m->s.hlc, m->s.device, other[i].hlc,
					other[i].device) > 0;
		in.same = v_eq(val[i], &cur[i]);
		in.has_old = ov != NULL;
		in.old_is_cur = r->op == GS_CS_DELETE ? row_same
				: ov != NULL          ? v_eq(&ov[i], &cur[i])
						      : false;
		in.quiet = quiet_col(m, t, i);
		dec[i] = gs__col_decide(&in);
		wins[i] = in.wins;
		/* A delete that did not see a later write: the other side
		 * of its conflict is that write. */
		if (r->op == GS_CS_DELETE && newest.device != NULL)
			other[i] = newest;
		if (dec[i].write) {
			m->row[i] = *val[i];
			if ((int)i == t->scope_col ||
			    (t->scope == GS_SCOPE_OWNER &&
			     (int)i == t->scope_col - 1))
				moved = true;
		}
		any_clock = any_clock || dec[i].clock;
	}
	if (r->op == GS_CS_UPDATE && i_del >= 0 && dec[i_del].write &&
	    val[i_del] != NULL && val[i_del]->type == GS_CS_INT &&
	    val[i_del]->i != 0 && !tombstoned(m, t, cur))
		tombstoning = unseen_write(m, t, cur, &unseen);
	/* The row's hlc is its newest write; before it first moves, keep the
	 * insert stamp for the columns that have no clock of their own. */
	row_stamp(m, t, cur, &stamp);
	if (any_clock && i_hlc >= 0 && m->s.hlc > stamp.hlc) {
		save_base = !m->base.set;
		m->row[i_hlc] = v_text(m->s_text);
	}
	if (moved) {
		rc = authorise(m, t, m->row, new_grid);
		if (rc != GS_OK)
			return rc;
		moved = strcmp(new_grid, grid) != 0;
		memcpy(grid, new_grid, GS_STORE_GRID_MAX);
	}
	rc = row_seq(m, &cur[i_seq], &seq, &reused);
	if (rc != GS_OK)
		return rc;
	m->row[i_seq] = v_int((int64_t)seq);
	rc = m->ops->row_update(m->impl, t, m->row,
				changed_cols(t, m->row, cur));
	if (rc != GS_OK)
		return write_result(m, t, rc);
	/* The row is written: now its clocks, conflicts and log entry. */
	if (save_base) {
		struct gs_stamp b = { stamp.hlc, stamp.dev };

		rc = m->ops->clock_put(m->impl, t, m->pk, "", &b);
	}
	for (unsigned i = 0; rc == GS_OK && i < t->n_cols; i++) {
		if (dec[i].clock)
			rc = m->ops->clock_put(m->impl, t, m->pk,
					       t->cols[i].name, &m->s);
		if (rc != GS_OK || !dec[i].conflict)
			continue;
		rc = wins[i] ? conflict(m, t, t->cols[i].name, &m->s, val[i],
					&other[i], &cur[i], false)
			     : conflict(m, t, t->cols[i].name, &other[i],
					&cur[i], &m->s, val[i], true);
	}
	if (rc == GS_OK && tombstoning)
		rc = conflict(m, t, "deleted", &m->s, &one, &unseen, &zero,
			      false);
	/* An edit of a row another write deleted: the edit is kept on the
	 * tombstone, and the device learns the row is gone. */
	if (rc == GS_OK && r->op == GS_CS_UPDATE && i_del >= 0 &&
	    tombstoned(m, t, cur) && nv[i_del].type == GS_CS_UNDEFINED) {
		struct gs_stamp c = clock_of(m, t, cur, (unsigned)i_del);

		rc = conflict(m, t, "deleted", &c, &cur[i_del], &m->s, &zero,
			      true);
	}
	/* Logged already under this seq earlier in the entry, unless the
	 * row moved since. */
	if (rc == GS_OK && (!reused || moved))
		rc = log_row(m, t, grid, seq, false);
	if (rc == GS_OK && moved)
		rc = m->ops->republish_children(m->impl, t, m->pk);
	return rc;
}

/* Class D (household, resident, resident_tag) and S (issue): descriptive
 * columns by last writer wins; an issue's governed columns only through
 * its events (merge_events). */
static int merge_field(struct merge *m, const struct gs_cs_row *r)
{
	const struct gs_table *t = r->table;
	const struct gs_cs_value *key =
		r->op == GS_CS_INSERT ? r->new_vals : r->old_vals;
	char grid[GS_STORE_GRID_MAX];
	uint64_t seq = 0;
	int rc;

	rc = row_key(m, t, key);
	if (rc != GS_OK)
		return rc;
	if (t == m->it)
		m->issue_cached = false; /* it changes below */
	if (t->cls == GS_CLASS_S && r->op == GS_CS_DELETE)
		return reject(m, GS_REJECT_DENIED,
			      "%s %s: work orders are closed or cancelled "
			      "through transitions, never deleted",
			      t->name, m->pk);
	if (r->op == GS_CS_INSERT) {
		rc = authorise(m, t, r->new_vals, grid);
		if (rc == GS_OK)
			rc = tag_rules(m, t, NULL, r->new_vals);
		if (rc == GS_OK)
			rc = values_check(m, t, NULL, r->new_vals);
		if (rc == GS_OK && t == m->it)
			rc = issue_rules(m, r, NULL);
		if (rc == GS_OK)
			rc = row_seq(m, NULL, &seq, NULL);
		if (rc != GS_OK)
			return rc;
		build_insert(m, t, r->new_vals, seq, m->row);
		rc = repoint(m, t, m->row);
		if (rc == GS_OK)
			rc = m->ops->row_insert(m->impl, t, m->row);
		if (rc == GS_OK) {
			rc = log_row(m, t, grid, seq, true);
			if (rc == GS_OK)
				rc = dedupe(m, t, m->row, grid);
			if (rc == GS_OK && t == m->it) {
				const char *id =
					arena_copy(m, m->pk, strlen(m->pk));

				rc = id != NULL ? born_add(m, id) : GS_ENOMEM;
				/* Its events need not read it back. */
				issue_keep(m, m->pk, m->row);
			}
			return rc;
		}
		if (rc != GS_EEXISTS)
			return write_result(m, t, rc);
		/* The row exists: merge column by column below. */
	}
	rc = m->ops->row_get(m->impl, t, key, m->row);
	if (rc == GS_ENOTFOUND) {
		if (r->op == GS_CS_DELETE)
			return GS_OK; /* nothing to delete: nothing changes */
		return reject(m, GS_REJECT_STATE,
			      "%s %s: %s of a row the server does not hold",
			      t->name, m->pk, gs__cs_op_name(r->op));
	}
	if (rc == GS_OK)
		rc = copy_row(m, t, m->cur, m->row);
	if (rc != GS_OK)
		return rc;
	if (t == m->it && issue_reaches_me(m, m->cur)) {
		/* The worker's own issue, whatever its grid. */
		rc = row_grid(m, t, m->cur, grid);
	} else {
		rc = authorise(m, t, m->cur, grid);
	}
	if (rc == GS_OK)
		rc = tag_rules(m, t, m->cur,
			       r->op == GS_CS_DELETE ? NULL : r->new_vals);
	if (rc == GS_OK && r->op != GS_CS_DELETE)
		rc = values_check(m, t, m->cur, r->new_vals);
	if (rc == GS_OK && t == m->it)
		rc = issue_rules(m, r, m->cur);
	if (rc != GS_OK)
		return rc;
	if (r->op == GS_CS_UPDATE && moves_scope(t, r->new_vals)) {
		/* Moving a row out of the device's grids is as bad as
		 * writing there: the new place must be in scope too. */
		struct gs_cs_value moved[GS_CS_MAX_COLS];
		char new_grid[GS_STORE_GRID_MAX];

		for (unsigned i = 0; i < t->n_cols; i++)
			moved[i] = r->new_vals[i].type != GS_CS_UNDEFINED
					   ? r->new_vals[i]
					   : m->cur[i];
		rc = authorise(m, t, moved, new_grid);
		if (rc != GS_OK)
			return rc;
	}
	return merge_columns(m, t, r, m->cur, grid);
}

/* ---- class A: append-only --------------------------------------------- */

/*
 * Insert an append-only row if new. The same id again with the same
 * content is a no-op; with other content every differing column is a
 * conflict the first write wins. Either way the row is republished, so
 * the device pulls the server's row. status/reason: issue_event's
 * apply_status and reject_reason (ignored for other tables). *inserted
 * (may be NULL): the row was new.
 */
static int merge_append(struct merge *m,
			const struct gs_cs_row *r,
			const char *grid,
			enum gs_apply_status status,
			const char *reason,
			bool *inserted)
{
	const struct gs_table *t = r->table;
	int i_seq = ti(m, t)->seq;
	struct clk first;
	struct gs_stamp first_stamp;
	uint64_t seq;
	int rc;

	if (inserted != NULL)
		*inserted = false;
	rc = row_seq(m, NULL, &seq, NULL);
	if (rc != GS_OK)
		return rc;
	build_insert(m, t, r->new_vals, seq, m->row);
	if (t == m->et) {
		m->row[m->ec.status] = v_text(gs__apply_status_name(status));
		m->row[m->ec.reason] = v_text(reason);
	}
	rc = repoint(m, t, m->row);
	if (rc == GS_OK)
		rc = m->ops->row_insert(m->impl, t, m->row);
	if (rc == GS_OK) {
		if (inserted != NULL)
			*inserted = true;
		return log_row(m, t, grid, seq, true);
	}
	if (rc != GS_EEXISTS)
		return write_result(m, t, rc);
	rc = m->ops->row_get(m->impl, t, r->new_vals, m->row);
	if (rc == GS_OK)
		rc = copy_row(m, t, m->cur, m->row);
	if (rc != GS_OK)
		return rc == GS_ENOTFOUND ? GS_ECORRUPT : rc;
	/* Republish the first write (written before any conflict, see
	 * merge_columns), then tell of every column that differs. */
	memcpy(m->row, m->cur, t->n_cols * sizeof(*m->cur));
	m->row[i_seq] = v_int((int64_t)seq);
	rc = m->ops->row_update(m->impl, t, m->row, UINT64_C(1) << i_seq);
	if (rc != GS_OK)
		return write_result(m, t, rc);
	row_stamp(m, t, m->cur, &first);
	first_stamp.hlc = first.hlc;
	first_stamp.device = first.dev;
	for (unsigned i = 0; rc == GS_OK && i < t->n_cols; i++)
		if (device_col(m, t, i) && !v_eq(&r->new_vals[i], &m->cur[i]))
			rc = conflict(m, t, t->cols[i].name, &first_stamp,
				      &m->cur[i], &m->s, &r->new_vals[i], true);
	return rc == GS_OK ? log_row(m, t, grid, seq, false) : rc;
}

static int merge_plain_append(struct merge *m, const struct gs_cs_row *r)
{
	char grid[GS_STORE_GRID_MAX];
	int rc;

	rc = row_key(m, r->table,
		     r->op == GS_CS_INSERT ? r->new_vals : r->old_vals);
	if (rc != GS_OK)
		return rc;
	if (r->op != GS_CS_INSERT)
		return reject(m, GS_REJECT_DENIED,
			      "%s %s: append-only, %s not allowed",
			      r->table->name, m->pk, gs__cs_op_name(r->op));
	rc = authorise(m, r->table, r->new_vals, grid);
	if (rc == GS_OK)
		rc = values_check(m, r->table, NULL, r->new_vals);
	if (rc != GS_OK)
		return rc;
	return merge_append(m, r, grid, GS_APPLY_PENDING, NULL, NULL);
}

/* ---- issue events and the state machine ------------------------------- */

static int from_rank(const struct gs_cs_value *v)
{
	char s[32];

	if (v->type != GS_CS_TEXT || v->len == 0)
		return -1; /* creation first */
	if (!text_to(s, sizeof(s), v))
		return 1000;
	return gs__state_rank(s) >= 0 ? gs__state_rank(s) : 1000;
}

static int cmp_bytes(const struct gs_cs_value *a, const struct gs_cs_value *b)
{
	size_t n = a->len < b->len ? a->len : b->len;
	int c = n > 0 ? memcmp(a->p, b->p, n) : 0;

	if (c != 0)
		return c;
	return a->len < b->len ? -1 : a->len > b->len ? 1 : 0;
}

/* Events of one entry in the order DESIGN.md applies them: per issue, by
 * (hlc, base_rev), creation before the moves it enables, then id. */
static int cmp_event(const void *pa, const void *pb)
{
	const struct evkey *a = pa;
	const struct evkey *b = pb;
	int c;

	if (a->issue == NULL || b->issue == NULL) /* not INSERTs: refused */
		return a->issue == NULL ? (b->issue == NULL ? 0 : -1) : 1;
	c = cmp_bytes(a->issue, b->issue);
	if (c == 0)
		c = cmp_bytes(a->hlc, b->hlc);
	if (c == 0)
		c = a->rev < b->rev ? -1 : a->rev > b->rev ? 1 : 0;
	if (c == 0)
		c = a->rank - b->rank;
	if (c == 0)
		c = cmp_bytes(&a->r->new_vals[0], &b->r->new_vals[0]);
	return c;
}

/* The entry's own change of issue id (its INSERT or UPDATE), or NULL: a
 * dispatch takes the assignee and deadline from it, a close its time. */
static const struct gs_cs_value *entry_issue_values(struct merge *m,
						    const char *id)
{
	for (size_t s = 0; s < m->cs->n_spans; s++) {
		const struct gs_cs_span *sp = &m->cs->spans[s];

		if (sp->table != m->it)
			continue;
		for (size_t k = 0; k < sp->n_rows; k++) {
			const struct gs_cs_row *r =
				&m->cs->rows[sp->first_row + k];
			const struct gs_cs_value *key = r->op == GS_CS_INSERT
								? r->new_vals
								: r->old_vals;

			if (r->op != GS_CS_DELETE &&
			    v_text_is(&key[m->ic.id], id))
				return r->new_vals;
		}
	}
	return NULL;
}

/* Issue id as stored now, into m->cur; *found false if there is none. */
static int issue_load(struct merge *m, const char *id, bool *found)
{
	struct gs_cs_value key[GS_CS_MAX_COLS];
	int rc;

	*found = true;
	if (m->issue_cached && strcmp(m->issue_pk, id) == 0) {
		memcpy(m->cur, m->issue_row, m->it->n_cols * sizeof(*m->cur));
		return GS_OK;
	}
	memset(key, 0, sizeof(key));
	key[m->ic.id] = v_text(id);
	rc = m->ops->row_get(m->impl, m->it, key, m->row);
	if (rc == GS_ENOTFOUND) {
		*found = false;
		return GS_OK;
	}
	if (rc == GS_OK)
		rc = copy_row(m, m->it, m->cur, m->row);
	if (rc == GS_OK)
		issue_keep(m, id, m->cur);
	return rc;
}

/* Apply an accepted transition (event ev, by rule) to the issue row in
 * m->cur, whose key text is in m->pk. Only a dispatch (a rule that
 * assigns) takes the assignee and the deadline from the entry's own
 * change of the issue; rework keeps the ones the issue has. */
static int apply_transition(struct merge *m,
			    const struct gs_cs_value *ev,
			    const struct gs_transition *rule,
			    bool bump,
			    const char *grid)
{
	const struct gs_table *it = m->it;
	const struct gs_cs_value *own;
	const char *to;
	int i_hlc = ti(m, it)->hlc;
	int i_seq = ti(m, it)->seq;
	struct clk stamp;
	uint64_t seq;
	uint64_t mask;
	bool reused;
	int rc = GS_OK;

	to = vstr(m, &ev[m->ec.to], &rc);
	if (rc != GS_OK)
		return rc;
	own = entry_issue_values(m, m->pk);
	memcpy(m->row, m->cur, it->n_cols * sizeof(*m->cur));
	m->row[m->ic.state] = v_text(to);
	if (bump)
		m->row[m->ic.rev] = v_int(m->cur[m->ic.rev].i + 1);
	if (gs__transition_assigns(rule) && own != NULL) {
		const int take[] = { m->ic.aw, m->ic.ao, m->ic.due };

		for (size_t k = 0; k < sizeof(take) / sizeof(*take); k++)
			if (own[take[k]].type != GS_CS_UNDEFINED)
				m->row[take[k]] = own[take[k]];
	}
	if (strcmp(to, "closed") == 0)
		m->row[m->ic.closed] =
			own != NULL && own[m->ic.closed].type != GS_CS_UNDEFINED
				? own[m->ic.closed]
				: ev[m->ec.time];
	row_stamp(m, it, m->cur, &stamp);
	if (m->s.hlc > stamp.hlc) {
		rc = clocks_load(m, it);
		if (rc == GS_OK && !m->base.set) {
			struct gs_stamp b = { stamp.hlc, stamp.dev };

			rc = m->ops->clock_put(m->impl, it, m->pk, "", &b);
		}
		if (rc != GS_OK)
			return rc;
		m->row[i_hlc] = v_text(m->s_text);
	}
	rc = row_seq(m, &m->cur[i_seq], &seq, &reused);
	if (rc != GS_OK)
		return rc;
	m->row[i_seq] = v_int((int64_t)seq);
	mask = changed_cols(it, m->row, m->cur);
	/* A creation into the state the issue was inserted in changes
	 * nothing. */
	if (mask == 0)
		return GS_OK;
	rc = m->ops->row_update(m->impl, it, m->row, mask);
	if (rc != GS_OK)
		return write_result(m, it, rc);
	issue_keep(m, m->pk, m->row);
	return reused ? GS_OK : log_row(m, it, grid, seq, false);
}

/*
 * One uploaded issue_event: authorised by its issue's current grid, a
 * transition decided by the state machine against the issue as stored,
 * the event stored with its verdict and, only if it is new and applied,
 * the issue moved (a repeat of a stored event is judged as content, never
 * decided twice).
 */
static int merge_event(struct merge *m, const struct gs_cs_row *r)
{
	const struct gs_table *it = m->it;
	const struct gs_cs_value *ev = r->new_vals;
	struct gs_transition_input in;
	struct gs_transition_decision d;
	char grid[GS_STORE_GRID_MAX];
	char issue_id[GS_STORE_KEY_MAX + 1];
	char event_pk[GS_STORE_PK_TEXT_MAX];
	const char *from = NULL;
	bool transition;
	bool found;
	bool inserted;
	struct born *b;
	int rc;

	rc = row_key(m, r->table, r->op == GS_CS_INSERT ? ev : r->old_vals);
	if (rc != GS_OK)
		return rc;
	if (r->op != GS_CS_INSERT)
		return reject(m, GS_REJECT_DENIED,
			      "issue_event %s: append-only, %s not allowed",
			      m->pk, gs__cs_op_name(r->op));
	if (!text_to(issue_id, sizeof(issue_id), &ev[m->ec.issue]))
		return reject(m, GS_REJECT_LIMIT, "issue_event %s: issue key",
			      m->pk);
	rc = issue_load(m, issue_id, &found);
	if (rc != GS_OK)
		return rc;
	if (!found)
		return reject(m, GS_REJECT_STATE,
			      "issue_event %s: issue %s is not on the server",
			      m->pk, issue_id);
	text_to(grid, sizeof(grid), &m->cur[it->scope_col]);
	if (!in_scope(m, grid) && !issue_reaches_me(m, m->cur))
		return deny(m, r->table, grid);
	rc = event_rules(m, ev);
	if (rc != GS_OK)
		return rc;
	memset(&d, 0, sizeof(d));
	d.status = GS_APPLY_APPLIED; /* comments, evidence, urges: attached */
	transition = v_text_is(&ev[m->ec.kind], "transition");
	b = born_find(m, issue_id);
	if (transition) {
		memset(&in, 0, sizeof(in));
		in.state = vstr(m, &m->cur[m->ic.state], &rc);
		in.state_rev = m->cur[m->ic.rev].i;
		in.created = b != NULL && !b->created;
		in.assignee_worker_id = vstr(m, &m->cur[m->ic.aw], &rc);
		in.reporter_worker_id = vstr(m, &m->cur[m->ic.reporter], &rc);
		from = vstr(m, &ev[m->ec.from], &rc);
		in.from = from != NULL ? from : "";
		in.to = vstr(m, &ev[m->ec.to], &rc);
		in.has_base_rev = ev[m->ec.base].type == GS_CS_INT;
		in.base_rev = in.has_base_rev ? ev[m->ec.base].i : 0;
		in.actor_role = vstr(m, &ev[m->ec.role], &rc);
		in.actor_worker_id = vstr(m, &ev[m->ec.actor], &rc);
		in.device_role = m->dev->role;
		in.device_worker_id =
			m->dev->worker_id[0] != '\0' ? m->dev->worker_id : NULL;
		if (rc != GS_OK)
			return rc;
		gs__transition_decide(&in, &d);
	}
	rc = merge_append(m, r, grid, d.status, d.reason, &inserted);
	if (rc != GS_OK || !inserted || !transition ||
	    d.status != GS_APPLY_APPLIED)
		return rc;
	/* The issue's key text names its clocks and log entry. */
	snprintf(event_pk, sizeof(event_pk), "%s", m->pk);
	snprintf(m->pk, sizeof(m->pk), "%s", issue_id);
	rc = issue_load(m, issue_id, &found);
	if (rc == GS_OK)
		rc = apply_transition(m, ev, d.rule, d.bump_rev, grid);
	snprintf(m->pk, sizeof(m->pk), "%s", event_pk);
	if (rc == GS_OK && b != NULL && in.from[0] == '\0')
		b->created = true;
	return rc;
}

static int merge_events(struct merge *m, const struct gs_cs_span *sp)
{
	int i_hlc = ti(m, sp->table)->hlc;
	int rc = GS_OK;

	if (sp->n_rows > m->cap_events) {
		struct evkey *ne = gs__realloc(m->ctx, m->events,
					       sp->n_rows * sizeof(*ne));

		if (ne == NULL)
			return GS_ENOMEM;
		m->events = ne;
		m->cap_events = sp->n_rows;
	}
	for (size_t k = 0; k < sp->n_rows; k++) {
		struct evkey *e = &m->events[k];
		const struct gs_cs_value *v;

		e->r = &m->cs->rows[sp->first_row + k];
		v = e->r->new_vals;
		e->issue = v != NULL ? &v[m->ec.issue] : NULL;
		e->hlc = v != NULL ? &v[i_hlc] : NULL;
		e->rev = v != NULL && v[m->ec.base].type == GS_CS_INT
				 ? v[m->ec.base].i
				 : -1;
		e->rank = v != NULL ? from_rank(&v[m->ec.from]) : 0;
	}
	qsort(m->events, sp->n_rows, sizeof(*m->events), cmp_event);
	for (size_t k = 0; k < sp->n_rows && rc == GS_OK; k++)
		rc = merge_event(m, m->events[k].r);
	return rc;
}

/* ---- one entry ------------------------------------------------------------
 */

static size_t table_index(const struct gs_table *t)
{
	size_t n;
	const struct gs_table *all = gs__manifest(&n);

	return (size_t)(t - all);
}

/* Merge every row of the parsed entry, tables in manifest order. */
static int merge_rows(struct merge *m)
{
	size_t n_tables;
	int rc = GS_OK;

	gs__manifest(&n_tables);
	for (size_t ti = 0; ti < n_tables && rc == GS_OK; ti++) {
		for (size_t s = 0; s < m->cs->n_spans && rc == GS_OK; s++) {
			const struct gs_cs_span *sp = &m->cs->spans[s];

			if (table_index(sp->table) != ti)
				continue;
			if (strcmp(sp->table->name, "issue_event") == 0) {
				rc = merge_events(m, sp);
				continue;
			}
			for (size_t k = 0; k < sp->n_rows && rc == GS_OK; k++) {
				const struct gs_cs_row *r =
					&m->cs->rows[sp->first_row + k];

				switch (sp->table->cls) {
				case GS_CLASS_D:
				case GS_CLASS_S:
					rc = merge_field(m, r);
					break;
				case GS_CLASS_A:
					rc = merge_plain_append(m, r);
					break;
				default:
					rc = reject(m, GS_REJECT_DENIED,
						    "%s: reference data is the "
						    "server's",
						    sp->table->name);
				}
			}
		}
	}
	for (size_t i = 0; rc == GS_OK && i < m->n_born; i++)
		if (!m->born[i].created)
			rc = reject(
				m, GS_REJECT_STATE,
				"issue %s: not created through a transition "
				"this device may make",
				m->born[i].id);
	return rc;
}

/*
 * Does the entry need a savepoint? Only if something it wrote could have
 * to be undone: an entry of one row is rejected before its only write or
 * by that write itself (which the store undoes), except an issue (its
 * creation events are checked after it is inserted) and an issue event
 * (it moves the issue before it is stored). A savepoint costs a copy of
 * every page the entry touches, a third of a one-row entry's merge.
 */
static bool needs_savepoint(const struct gs_cs *cs)
{
	const struct gs_cs_row *r;

	if (cs->n_rows != 1)
		return cs->n_rows > 1;
	r = &cs->rows[0];
	if (r->table->cls == GS_CLASS_S)
		return r->op == GS_CS_INSERT;
	return strcmp(r->table->name, "issue_event") == 0;
}

/* ---- device-claimed times ------------------------------------------------ */

static const void *claimed_copy(void *payload, const void *p, size_t len)
{
	return arena_copy(payload, p, len);
}

/* Note one bounded time for claimed_record (strings into the arena). */
static int claimed_note(const struct gs_claimed_fix *f, void *payload)
{
	struct merge *m = payload;
	const struct gs_cs_row *r = f->row;
	const struct gs_table *t = r->table;
	struct gs_claimed_rec *c;
	char pk[GS_STORE_PK_TEXT_MAX];

	if (m->n_claimed++ >= CLAIMED_MAX)
		return GS_OK;
	c = &m->claimed[m->n_claimed - 1];
	if (gs__merge_pk_text(pk, sizeof(pk), t,
			      r->op == GS_CS_INSERT ? r->new_vals
						    : r->old_vals) != GS_OK)
		snprintf(pk, sizeof(pk), "?");
	c->table = t->name;
	c->column = t->cols[f->col].name;
	c->pk = arena_copy(m, pk, strlen(pk));
	c->claimed = arena_copy(m, f->claimed, strlen(f->claimed));
	c->stored = arena_copy(m, f->stored, strlen(f->stored));
	c->device_id = m->dev->id;
	c->device_seq = m->e->device_seq;
	c->at_ms = m->now_ms;
	return c->pk != NULL && c->claimed != NULL && c->stored != NULL
		       ? GS_OK
		       : GS_ENOMEM;
}

/* Record the entry's bounded times once it is applied. */
static int claimed_record(struct merge *m)
{
	size_t n = m->n_claimed < CLAIMED_MAX ? m->n_claimed : CLAIMED_MAX;
	int rc = GS_OK;

	if (m->n_claimed > 0)
		GS_INFO(m->ctx,
			"entry %llu of %s: %zu claimed times out of bounds, "
			"stored as the entry's time",
			(unsigned long long)m->e->device_seq, m->dev->id,
			m->n_claimed);
	for (size_t i = 0; i < n && rc == GS_OK && m->ops->claimed_put; i++)
		rc = m->ops->claimed_put(m->impl, &m->claimed[i]);
	return rc;
}

/* Judge one new entry (inside a savepoint when needed) and record it. */
static int merge_entry(struct merge *m,
		       const struct gs_store_entry *e,
		       struct gs_push_result *res,
		       size_t idx)
{
	struct gs_cs_opts opts = GS_CS_OPTS_INIT;
	struct gs_cs_error err;
	struct gs_cs *cs = NULL;
	struct gs_received rec;
	size_t pend_mark = m->n_pend;
	size_t str_mark = m->out->strings.len;
	bool sp_open = false;
	int sp;
	int rc;

	m->e = e;
	m->rej = GS_REJECT_NONE;
	m->why[0] = '\0';
	m->seq_first = 0;
	m->seq_last = 0;
	m->n_born = 0;
	m->issue_cached = false;
	m->s.hlc = gs__stamp_entry(e->hlc, m->now_ms, m->last_stamp);
	m->s.device = m->dev->id;
	gs__hlc_format(m->s_text, m->s.hlc);
	arena_reset(m);
	m->pk[0] = '\0';

	rc = gs__cs_parse(&cs, &err, m->ctx, e->changeset, e->len, &opts);
	if (rc == GS_EPROTO)
		rc = reject(m, gs__reject_for_cs(err.reason), "%s",
			    gs_ctx_errmsg(m->ctx));
	if (rc < 0)
		return rc;
	m->cs = cs;
	if (rc == GS_OK && needs_savepoint(cs)) {
		sp = m->ops->savepoint(m->impl);
		if (sp != GS_OK) {
			rc = sp;
			goto out;
		}
		sp_open = true;
	}
	m->n_claimed = 0;
	if (rc == GS_OK)
		rc = gs__claimed_times_bound((struct gs_cs *)cs,
					     GS_HLC_MS(m->s.hlc), claimed_copy,
					     claimed_note, m);
	if (rc == GS_OK)
		rc = merge_rows(m);
	if (rc == GS_OK)
		rc = claimed_record(m);
	if (rc == REJECTED) {
		int rb = sp_open ? m->ops->rollback_to(m->impl) : GS_OK;

		m->n_pend = pend_mark;
		m->out->strings.len = str_mark;
		m->seq_first = 0;
		m->seq_last = 0;
		if (rb != GS_OK)
			rc = rb;
	}
	if (rc >= 0) {
		memset(&rec, 0, sizeof(rec));
		rec.device_id = m->dev->id;
		rec.device_seq = m->dev->seq_base + e->device_seq;
		rec.sha256 = e->sha256;
		rec.hlc = e->hlc;
		/* A refused entry is kept by its hash, never by its bytes:
		 * they may be megabytes a small compressed frame inflated
		 * to, and the store would grow with every refusal. */
		rec.changeset = rc == REJECTED ? NULL : e->changeset;
		rec.len = rc == REJECTED ? 0 : e->len;
		rec.result =
			rc == REJECTED ? GS_RESULT_REJECTED : GS_RESULT_APPLIED;
		rec.reject_code = rc == REJECTED ? m->rej : GS_REJECT_NONE;
		rec.reason = rc == REJECTED ? m->why : NULL;
		rec.seq_first = m->seq_first;
		rec.seq_last = m->seq_last;
		rec.received_at_ms = m->now_ms;
		res->result = rec.result;
		res->reject_code = rec.reject_code;
		res->has_final = true; /* recorded below: it stands */
		res->final = true;
		if (rc == REJECTED) {
			size_t off;
			int sr = str_add(m, m->why, strlen(m->why), &off);

			if (sr != GS_OK) {
				rc = sr;
				goto out;
			}
			m->reason_off[idx] = off + 1;
			GS_DEBUG(m->ctx, "entry %llu rejected (%d)",
				 (unsigned long long)e->device_seq,
				 (int)m->rej);
		}
		rc = m->ops->received_put(m->impl, &rec);
		if (rc == GS_OK && sp_open)
			rc = m->ops->release(m->impl);
		if (rc == GS_OK && rec.result == GS_RESULT_APPLIED) {
			m->last_stamp = m->s.hlc;
			m->stamp_moved = true;
		}
		if (rc == GS_OK && rec.seq_first != 0) {
			if (m->push_first == 0)
				m->push_first = rec.seq_first;
			m->push_last = rec.seq_last;
		}
	}
out:
	gs__cs_free(cs);
	m->cs = NULL;
	return rc;
}

/* An entry answered without a savepoint (duplicate, refused). final: the
 * verdict is recorded and stands; a refusal that is not final may heal
 * (the device keeps the entry and sends it again). */
static int answer(struct merge *m,
		  size_t idx,
		  enum gs_entry_result result,
		  enum gs_reject code,
		  const char *reason,
		  bool final)
{
	struct gs_push_result *res = &m->out->results[idx];
	size_t off;
	int rc;

	res->result = result;
	res->reject_code = code;
	res->has_final = true;
	res->final = final;
	if (reason == NULL)
		return GS_OK;
	rc = str_add(m, reason, strnlen(reason, GS_WIRE_TEXT_MAX), &off);
	if (rc == GS_OK)
		m->reason_off[idx] = off + 1;
	return rc;
}

/* ---- the push --------------------------------------------------------- */

/* Turn offsets into pointers once out->strings no longer moves. */
static int finish_out(struct merge *m)
{
	struct gs_store_push_out *out = m->out;
	const char *base = (const char *)out->strings.data;

	for (size_t i = 0; i < out->n_results; i++)
		out->results[i].reason =
			m->reason_off[i] ? base + m->reason_off[i] - 1 : NULL;
	if (m->n_pend == 0)
		return GS_OK;
	out->conflicts = gs__calloc(m->ctx, m->n_pend, sizeof(*out->conflicts));
	if (out->conflicts == NULL)
		return GS_ENOMEM;
	for (size_t i = 0; i < m->n_pend; i++) {
		const struct pend *p = &m->pend[i];
		struct gs_conflict *c = &out->conflicts[i];
		struct gs_conflict_side *sides[2] = { &c->winner, &c->loser };

		c->device_seq = p->device_seq;
		c->id = p->id;
		c->table = base + p->table;
		c->pk = base + p->pk;
		c->column = base + p->column;
		for (int k = 0; k < 2; k++) {
			sides[k]->device_id = base + p->dev[k];
			sides[k]->hlc = p->hlc[k];
			sides[k]->kind = p->kind[k];
			sides[k]->value =
				p->kind[k] == GS_VALUE_NULL
					? NULL
					: (const uint8_t *)base + p->val[k];
			sides[k]->value_len = p->val_len[k];
		}
	}
	out->n_conflicts = m->n_pend;
	return GS_OK;
}

/* An entry at or below the device's last recorded seq. */
static int
judge_seen(struct merge *m, size_t idx, const struct gs_store_entry *e)
{
	struct gs_received rec;
	char why[128];
	int rc;

	rc = m->ops->received_get(m->impl, m->dev->id,
				  m->dev->seq_base + e->device_seq, &rec);
	if (rc == GS_ENOTFOUND) {
		snprintf(why, sizeof(why),
			 "device_seq %llu is below the last received and "
			 "was never recorded",
			 (unsigned long long)e->device_seq);
		return answer(m, idx, GS_RESULT_REJECTED, GS_REJECT_SEQ_REUSED,
			      why, false);
	}
	if (rc != GS_OK)
		return rc;
	if (memcmp(rec.sha256, e->sha256, GS_SHA256_LEN) != 0) {
		snprintf(why, sizeof(why),
			 "device_seq %llu was already received with other "
			 "content",
			 (unsigned long long)e->device_seq);
		return answer(m, idx, GS_RESULT_REJECTED, GS_REJECT_SEQ_REUSED,
			      why, false);
	}
	/* The first judgement stands. */
	if (rec.result == GS_RESULT_REJECTED)
		return answer(m, idx, GS_RESULT_REJECTED, rec.reject_code,
			      rec.reason != NULL ? rec.reason : "rejected",
			      true);
	return answer(m, idx, GS_RESULT_DUPLICATE, GS_REJECT_NONE, NULL, true);
}

static void merge_free(struct merge *m)
{
	if (m == NULL)
		return;
	arena_free(m);
	gs__free(m->ctx, m->pend);
	gs__free(m->ctx, m->reason_off);
	gs__free(m->ctx, m->events);
	gs__free(m->ctx, m->born);
	gs__free(m->ctx, m);
}

int gs__merge_push(const struct gs_store_ops *ops,
		   void *impl,
		   struct gs_ctx *ctx,
		   const struct gs_store_device *dev,
		   const struct gs_scope *scope,
		   const struct gs_store_entry *entries,
		   size_t n,
		   struct gs_store_push_out *out)
{
	struct merge *m = NULL;
	uint64_t last = 0;
	bool in_txn = false;
	int rc;

	GS_CHECK_ARG(ops != NULL && dev != NULL && scope != NULL &&
		     out != NULL && (entries != NULL || n == 0));
	memset(out, 0, sizeof(*out));
	gs__buf_init(&out->strings, ctx, STRINGS_MAX);
	if (dev->revoked)
		return gs__err(ctx, GS_EDENIED, "device %s is revoked",
			       dev->id);
	m = gs__calloc(ctx, 1, sizeof(*m));
	if (m == NULL)
		return GS_ENOMEM;
	m->ops = ops;
	m->impl = impl;
	m->ctx = ctx;
	m->dev = dev;
	m->scope = scope;
	m->out = out;
	m->now_ms = gs__clock_wall_ms(ctx);
	columns_init(m);
	rc = GS_OK;
	if (n > 0) {
		out->results = gs__calloc(ctx, n, sizeof(*out->results));
		m->reason_off = gs__calloc(ctx, n, sizeof(*m->reason_off));
		if (out->results == NULL || m->reason_off == NULL)
			rc = GS_ENOMEM;
	}
	out->n_results = n;
	if (rc == GS_OK)
		rc = ops->received_last(impl, dev->id, dev->seq_base, &last);
	if (rc == GS_OK)
		rc = ops->stamp_last(impl, dev->id, &m->last_stamp);
	if (rc == GS_OK)
		rc = ops->begin(impl);
	in_txn = rc == GS_OK;
	for (size_t i = 0; i < n && rc == GS_OK; i++) {
		const struct gs_store_entry *e = &entries[i];
		uint8_t digest[GS_SHA256_LEN];
		char why[160];

		out->results[i].device_seq = e->device_seq;
		if (e->device_seq >= GS_STORE_SEQ_SPAN) {
			rc = answer(m, i, GS_RESULT_REJECTED,
				    GS_REJECT_MALFORMED,
				    "device_seq is out of range", false);
			continue;
		}
		if (e->device_seq <= last) {
			rc = judge_seen(m, i, e);
			continue;
		}
		if (e->device_seq != last + 1) {
			/* Not recorded: the missing entries may still come. */
			snprintf(why, sizeof(why),
				 "device_seq %llu skips %llu: entries after "
				 "%llu never arrived",
				 (unsigned long long)e->device_seq,
				 (unsigned long long)(last + 1),
				 (unsigned long long)last);
			rc = answer(m, i, GS_RESULT_REJECTED,
				    dev->incarnation ? GS_REJECT_SEQ_GAP
						     : GS_REJECT_SEQ_REUSED,
				    why, false);
			out->results[i].has_held_seq = dev->incarnation;
			out->results[i].held_seq = last;
			continue;
		}
		gs__sha256(digest, e->changeset, e->len);
		if (e->sha256 == NULL ||
		    memcmp(digest, e->sha256, sizeof(digest)) != 0) {
			/* Not recorded either: a clean resend is welcome. */
			rc = answer(m, i, GS_RESULT_REJECTED, GS_REJECT_HASH,
				    "sha256 does not match the changeset",
				    false);
			continue;
		}
		rc = merge_entry(m, e, &out->results[i], i);
		if (rc == GS_OK)
			last = e->device_seq;
	}
	if (rc == GS_OK && m->stamp_moved)
		rc = ops->stamp_put(impl, dev->id, m->last_stamp);
	if (rc == GS_OK)
		rc = finish_out(m);
	if (rc == GS_OK) {
		rc = ops->commit(impl);
		in_txn = rc != GS_OK;
	}
	if (rc != GS_OK) {
		if (in_txn)
			ops->rollback(impl);
		gs__store_push_out_fini(out);
		memset(out, 0, sizeof(*out));
		merge_free(m);
		return rc;
	}
	out->durable_seq = last;
	out->server_seq_first = m->push_first;
	out->server_seq_last = m->push_last;
	merge_free(m);
	return GS_OK;
}
