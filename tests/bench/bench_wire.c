/*
 * Wire bytes per change for PERFORMANCE.md's S1 rows (target: at most 350
 * uncompressed, at most 120 with zstd).
 *
 * Builds real changesets: a database migrated with gs__db_migrate, a
 * sqlite3session attached to visit and issue, one row inserted per
 * transaction and the session's changeset taken each time (as capture
 * does). Rows are generated from a seed: a visit carries about 300 bytes
 * of values with a 120-byte Chinese summary, an issue about 400 with a
 * 200-byte Chinese description. Then Push frames of 1, 100 and 1,000
 * entries are encoded with every entry plain, and with every entry through
 * gs__changeset_pack (zstd per entry when it is at least GS_COMPRESS_MIN
 * bytes and shrinks), and the frame bytes are divided by the entries.
 * For comparison only, it also prints what zstd makes of a whole frame
 * (not something the protocol does today), and the table behind
 * GS_COMPRESS_MIN: zstd's output for changesets of growing size.
 *
 *   build/tests/bench_wire [seed]
 *
 * Not a test: it prints figures and never fails on them.
 */
#include <zdict.h>
#include <zstd.h>

#include <gridsync/db.h>
#include <gridsync/wire.h>

#include "gs_test.h"

#define N_ROWS 1000

struct cs {
	uint8_t *data; /* sqlite3_malloc'd */
	int len;
	size_t values; /* bytes of column values in the row */
};

static uint64_t rng;

static void die(const char *what, struct gs_ctx *ctx, int rc)
{
	fprintf(stderr, "bench_wire: %s: %s (%s)\n", what, gs_errname(rc),
		gs_ctx_errmsg(ctx));
	exit(1);
}

static void sql_ok(struct gs_ctx *ctx, sqlite3 *db, const char *sql)
{
	int rc = gs__db_exec(ctx, db, sql);

	if (rc != GS_OK)
		die(sql, ctx, rc);
}

/* n bytes of Chinese text (3-byte characters) from a fixed pool. */
static void chinese(char *out, size_t n)
{
	static const char *const pool[] = {
		"住", "户", "在", "家", "检", "查", "燃", "气", "电", "线",
		"老", "人", "身", "体", "良", "好", "楼", "道", "堆", "物",
		"已", "清", "理", "消", "防", "通", "道", "畅", "通", "反",
		"映", "噪", "音", "问", "题", "需", "要", "协", "调", "处",
	};
	size_t k = 0;

	while (k + 3 <= n) {
		memcpy(out + k, pool[gs_test_rand(&rng) % 40], 3);
		k += 3;
	}
	out[k] = '\0';
}

static void uuid(char out[37])
{
	uint64_t a = gs_test_rand(&rng);
	uint64_t b = gs_test_rand(&rng);

	snprintf(out, 37, "0195f3a2-%04x-7%03x-%04x-%012llx",
		 (unsigned)(a & 0xffff), (unsigned)((a >> 16) & 0xfff),
		 (unsigned)(0x8000 | ((a >> 28) & 0x3fff)),
		 (unsigned long long)(b & 0xffffffffffffull));
}

static void stamp(char out[25], int64_t ms)
{
	gs__time_format(out, ms);
}

/* Run one statement in its own transaction under a fresh session and keep
 * the changeset, as capture does per user action. */
static struct cs
capture(struct gs_ctx *ctx, sqlite3 *db, sqlite3_stmt *ins, size_t values)
{
	sqlite3_session *s = NULL;
	struct cs out = { NULL, 0, values };

	/* NULL: every table, as the rows here touch one table each. */
	if (sqlite3session_create(db, "main", &s) != SQLITE_OK ||
	    sqlite3session_attach(s, NULL) != SQLITE_OK)
		die("session", ctx, GS_ERROR);
	sql_ok(ctx, db, "BEGIN");
	if (sqlite3_step(ins) != SQLITE_DONE)
		die(sqlite3_errmsg(db), ctx, GS_ERROR);
	sqlite3_reset(ins);
	if (sqlite3session_changeset(s, &out.len, (void **)&out.data) !=
	    SQLITE_OK)
		die("changeset", ctx, GS_ERROR);
	sql_ok(ctx, db, "COMMIT");
	sqlite3session_delete(s);
	return out;
}

static size_t bind_text(sqlite3_stmt *st, int i, const char *s)
{
	sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
	return strlen(s);
}

static struct cs
make_visit(struct gs_ctx *ctx, sqlite3 *db, sqlite3_stmt *ins, int i)
{
	char id[37];
	char t1[25];
	char t2[25];
	char hlc[40];
	char summary[130];
	size_t v = 0;
	int64_t ms = 1767225600000ll + (int64_t)i * 60000;

	uuid(id);
	stamp(t1, ms);
	stamp(t2, ms + 900000);
	snprintf(hlc, sizeof(hlc), "%lld-%04d-dev-0001", (long long)ms, i % 7);
	chinese(summary, 120);
	v += bind_text(ins, 1, id);
	v += bind_text(ins, 2, "0195f3a2-c4e1-7000-8000-000000000001");
	v += bind_text(ins, 3, "510106001001");
	v += bind_text(ins, 4, "w-00042");
	v += bind_text(ins, 5, i % 5 ? "routine" : "special");
	v += bind_text(ins, 6, t1);
	v += bind_text(ins, 7, i % 10 < 7 ? "met" : "not_home");
	v += bind_text(ins, 8, summary);
	v += bind_text(ins, 9, hlc);
	v += bind_text(ins, 10, "dev-0001");
	v += bind_text(ins, 11, t2);
	sqlite3_bind_double(ins, 12, 30.66 + (double)i * 1e-5);
	sqlite3_bind_double(ins, 13, 104.06 + (double)i * 1e-5);
	v += 16 + 1;
	return capture(ctx, db, ins, v);
}

static struct cs
make_issue(struct gs_ctx *ctx, sqlite3 *db, sqlite3_stmt *ins, int i)
{
	char id[37];
	char t1[25];
	char hlc[40];
	char title[40];
	char desc[210];
	size_t v = 0;
	int64_t ms = 1767225600000ll + (int64_t)i * 300000;

	uuid(id);
	stamp(t1, ms);
	snprintf(hlc, sizeof(hlc), "%lld-%04d-dev-0001", (long long)ms, i % 7);
	chinese(title, 30);
	chinese(desc, 200);
	v += bind_text(ins, 1, id);
	v += bind_text(ins, 2, "grid");
	v += bind_text(ins, 3, "c-0101");
	v += bind_text(ins, 4, title);
	v += bind_text(ins, 5, desc);
	v += bind_text(ins, 6, "510106001001");
	v += bind_text(ins, 7, t1);
	v += bind_text(ins, 8, "w-00042");
	v += bind_text(ins, 9, "reported");
	v += bind_text(ins, 10, hlc);
	v += bind_text(ins, 11, "dev-0001");
	v += bind_text(ins, 12, t1);
	sqlite3_bind_double(ins, 13, 30.66 + (double)i * 1e-5);
	sqlite3_bind_double(ins, 14, 104.06 + (double)i * 1e-5);
	v += 16 + 3;
	return capture(ctx, db, ins, v);
}

/* Encode one Push of n entries; returns the frame's bytes. */
static size_t push_bytes(struct gs_ctx *ctx,
			 const struct cs *rows,
			 size_t n,
			 bool zstd,
			 size_t *n_compressed)
{
	struct gs_push_entry *e = calloc(n, sizeof(*e));
	struct gs_buf packed[N_ROWS];
	struct gs_buf frame;
	struct gs_zstd zs;
	struct gs_msg m;
	size_t len;
	int rc;

	gs__zstd_init(&zs, ctx);
	*n_compressed = 0;
	for (size_t i = 0; i < n; i++) {
		enum gs_compression comp = GS_COMP_NONE;

		gs__buf_init(&packed[i], ctx, 1u << 20);
		if (zstd) {
			rc = gs__changeset_pack(&packed[i], &comp, &zs,
						rows[i].data,
						(size_t)rows[i].len);
			if (rc != GS_OK)
				die("pack", ctx, rc);
		}
		e[i].device_seq = i + 1;
		e[i].hlc = ((uint64_t)1767225600000ull + i) << 16;
		gs__sha256(e[i].sha256, rows[i].data, (size_t)rows[i].len);
		e[i].uncompressed_len = (uint32_t)rows[i].len;
		e[i].compression = comp;
		if (comp == GS_COMP_ZSTD) {
			e[i].changeset = packed[i].data;
			e[i].changeset_len = packed[i].len;
			(*n_compressed)++;
		} else {
			e[i].changeset = rows[i].data;
			e[i].changeset_len = (size_t)rows[i].len;
		}
	}
	m.type = GS_MSG_PUSH;
	m.u.push.schema_version = 1;
	m.u.push.entries = e;
	m.u.push.n_entries = n;
	gs__buf_init(&frame, ctx, GS_FRAME_MAX_DEFAULT + 4);
	rc = gs__msg_encode(&frame, &m, NULL);
	if (rc != GS_OK)
		die("encode", ctx, rc);
	len = frame.len;
	gs__buf_fini(&frame);
	for (size_t i = 0; i < n; i++)
		gs__buf_fini(&packed[i]);
	gs__zstd_fini(&zs);
	free(e);
	return len;
}

/* zstd level 3 over a whole plain Push frame: a reference point only. */
static size_t
whole_frame_zstd(struct gs_ctx *ctx, const struct cs *rows, size_t n)
{
	struct gs_push_entry *e = calloc(n, sizeof(*e));
	struct gs_buf frame;
	struct gs_msg m;
	size_t cap;
	void *dst;
	size_t z;

	for (size_t i = 0; i < n; i++) {
		e[i].device_seq = i + 1;
		e[i].hlc = ((uint64_t)1767225600000ull + i) << 16;
		gs__sha256(e[i].sha256, rows[i].data, (size_t)rows[i].len);
		e[i].uncompressed_len = (uint32_t)rows[i].len;
		e[i].changeset = rows[i].data;
		e[i].changeset_len = (size_t)rows[i].len;
	}
	m.type = GS_MSG_PUSH;
	m.u.push.schema_version = 1;
	m.u.push.entries = e;
	m.u.push.n_entries = n;
	gs__buf_init(&frame, ctx, GS_FRAME_MAX_DEFAULT + 4);
	if (gs__msg_encode(&frame, &m, NULL) != GS_OK)
		die("encode", ctx, GS_ERROR);
	cap = ZSTD_compressBound(frame.len);
	dst = malloc(cap);
	z = ZSTD_compress(dst, cap, frame.data, frame.len, 3);
	free(dst);
	gs__buf_fini(&frame);
	free(e);
	return ZSTD_isError(z) ? 0 : z + 4;
}

/*
 * What a trained dictionary would do (not in the protocol today): train a
 * 16 KiB zstd dictionary on the second half of rows, compress each entry
 * of the first half alone with it, and estimate the plain frame's bytes
 * per change with those sizes plus the two extra fields.
 */
static double dict_estimate(const struct cs *rows, double plain_per_change)
{
	size_t half = N_ROWS / 2;
	size_t *sizes = calloc(half, sizeof(size_t));
	size_t total = 0;
	uint8_t *samples;
	uint8_t dict[16384];
	size_t dict_len;
	double cs_sum = 0;
	double z_sum = 0;
	ZSTD_CCtx *cc = ZSTD_createCCtx();

	for (size_t i = 0; i < half; i++) {
		sizes[i] = (size_t)rows[half + i].len;
		total += sizes[i];
	}
	samples = malloc(total);
	total = 0;
	for (size_t i = 0; i < half; i++) {
		memcpy(samples + total, rows[half + i].data, sizes[i]);
		total += sizes[i];
	}
	dict_len = ZDICT_trainFromBuffer(dict, sizeof(dict), samples, sizes,
					 (unsigned)half);
	for (size_t i = 0; i < half && !ZDICT_isError(dict_len); i++) {
		uint8_t dst[2048];
		size_t z = ZSTD_compress_usingDict(
			cc, dst, sizeof(dst), rows[i].data, (size_t)rows[i].len,
			dict, dict_len, 3);

		cs_sum += rows[i].len;
		z_sum += (double)z + 5;
	}
	ZSTD_freeCCtx(cc);
	free(samples);
	free(sizes);
	if (ZDICT_isError(dict_len))
		return 0;
	return plain_per_change - (cs_sum - z_sum) / (double)half;
}

static void report(struct gs_ctx *ctx, const char *what, struct cs *rows)
{
	static const size_t ns[] = { 1, 100, 1000 };
	double cs_total = 0;
	double val_total = 0;

	for (size_t i = 0; i < N_ROWS; i++) {
		cs_total += rows[i].len;
		val_total += (double)rows[i].values;
	}
	printf("\n%s: values %.0f B/row, changeset %.0f B/row (mean of %d)\n",
	       what, val_total / N_ROWS, cs_total / N_ROWS, N_ROWS);
	printf("  %-8s %12s %12s %10s %14s %8s\n", "entries", "plain B/chg",
	       "zstd B/chg", "zstd used", "whole-frame*", "dict*");
	for (size_t k = 0; k < sizeof(ns) / sizeof(ns[0]); k++) {
		size_t nc = 0;
		size_t nz = 0;
		size_t plain = push_bytes(ctx, rows, ns[k], false, &nc);
		size_t z = push_bytes(ctx, rows, ns[k], true, &nz);
		size_t w = whole_frame_zstd(ctx, rows, ns[k]);

		printf("  %-8zu %12.1f %12.1f %6zu/%-4zu %14.1f %8.1f\n", ns[k],
		       (double)plain / (double)ns[k], (double)z / (double)ns[k],
		       nz, ns[k], (double)w / (double)ns[k],
		       dict_estimate(rows, (double)plain / (double)ns[k]));
	}
}

/* Compress one changeset alone with zstd level 3 and print a row. */
static void threshold_row(const char *what, int n, const struct cs *c)
{
	uint8_t dst[2048];
	uint8_t back[2048];
	size_t z = 0;
	uint64_t t0 = gs__clock_mono_ns();
	uint64_t t1;
	uint64_t t2;

	/* One-shot calls, as compress.c makes them (a context per call). */
	for (int i = 0; i < 200; i++)
		z = ZSTD_compress(dst, sizeof(dst), c->data, (size_t)c->len, 3);
	t1 = gs__clock_mono_ns();
	for (int i = 0; i < 200; i++)
		ZSTD_decompress(back, sizeof(back), dst, z);
	t2 = gs__clock_mono_ns();
	{
		/* The same with contexts kept across calls. */
		ZSTD_CCtx *cc = ZSTD_createCCtx();
		ZSTD_DCtx *dc = ZSTD_createDCtx();
		uint64_t t3;
		uint64_t t4;

		for (int i = 0; i < 200; i++)
			ZSTD_compressCCtx(cc, dst, sizeof(dst), c->data,
					  (size_t)c->len, 3);
		t3 = gs__clock_mono_ns();
		for (int i = 0; i < 200; i++)
			ZSTD_decompressDCtx(dc, back, sizeof(back), dst, z);
		t4 = gs__clock_mono_ns();
		ZSTD_freeCCtx(cc);
		ZSTD_freeDCtx(dc);
		printf("  %-7s %5d %10d %10zu %7.0f%% %7.1f %6.1f %7.1f "
		       "%6.1f\n",
		       what, n, c->len, z,
		       100.0 * (1.0 - (double)z / (double)c->len),
		       (double)(t1 - t0) / 200e3, (double)(t2 - t1) / 200e3,
		       (double)(t3 - t2) / 200e3, (double)(t4 - t3) / 200e3);
	}
}

/* The table behind GS_COMPRESS_MIN: real changesets of growing size (an
 * UPDATE of one visit's summary, then INSERTs of whole visits) and what
 * zstd level 3 makes of each on its own. */
static void threshold_table(struct gs_ctx *ctx, sqlite3 *db)
{
	static const int text_bytes[] = {
		0, 15, 30, 45, 60, 90, 120, 240, 480
	};
	const char *vid = "0195f3a2-0000-7000-8000-00000000ffff";
	sqlite3_stmt *ins = NULL;
	sqlite3_stmt *upd = NULL;
	int rc;

	rc = gs__db_prepare(ctx, db, &ins,
			    "INSERT INTO visit (id, household_id, grid_id,"
			    " worker_id, kind, started_at, outcome, summary,"
			    " hlc, origin, created_at) VALUES"
			    " (?,?,?,?,?,?,?,?,?,?,?)");
	if (rc == GS_OK)
		rc = gs__db_prepare(ctx, db, &upd,
				    "UPDATE visit SET summary = ?, hlc = ?"
				    " WHERE id = ?");
	if (rc != GS_OK)
		die("prepare", ctx, rc);
	printf("\nzstd-3 on one changeset alone (the GS_COMPRESS_MIN=%u "
	       "choice):\n",
	       GS_COMPRESS_MIN);
	printf("  %-7s %5s %10s %10s %8s %7s %6s %7s %6s\n", "kind", "text",
	       "changeset", "zstd", "saved", "comp", "dec", "comp/r", "dec/r");
	printf("  (microseconds per call; /r: contexts reused across calls)\n");
	for (size_t k = 0; k < sizeof(text_bytes) / sizeof(int); k++) {
		char id[37];
		char text[500];
		struct cs c;

		if (k == 0)
			snprintf(id, sizeof(id), "%s", vid);
		else
			uuid(id);
		chinese(text, (size_t)text_bytes[k]);
		sqlite3_bind_text(ins, 1, id, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(ins, 2,
				  "0195f3a2-c4e1-7000-8000-000000000001", -1,
				  SQLITE_STATIC);
		sqlite3_bind_text(ins, 3, "510106001001", -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 4, "w-00042", -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 5, "routine", -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 6, "2026-01-01T08:00:00.000Z", -1,
				  SQLITE_STATIC);
		sqlite3_bind_text(ins, 7, "met", -1, SQLITE_STATIC);
		if (text_bytes[k] > 0)
			sqlite3_bind_text(ins, 8, text, -1, SQLITE_TRANSIENT);
		else
			sqlite3_bind_null(ins, 8);
		sqlite3_bind_text(ins, 9, "1767254400000-0000-dev-0001", -1,
				  SQLITE_STATIC);
		sqlite3_bind_text(ins, 10, "dev-0001", -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 11, "2026-01-01T08:15:00.000Z", -1,
				  SQLITE_STATIC);
		c = capture(ctx, db, ins, 0);
		threshold_row("insert", text_bytes[k], &c);
		sqlite3_free(c.data);
	}
	/* Small changesets: one column of one visit changes. */
	for (size_t k = 0; k < sizeof(text_bytes) / sizeof(int); k++) {
		char text[500];
		struct cs c;

		chinese(text, (size_t)text_bytes[k]);
		sqlite3_bind_text(upd, 1, text, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(upd, 2,
				  k % 2 ? "1767254400001-0001-dev-0001"
					: "1767254400002-0000-dev-0001",
				  -1, SQLITE_STATIC);
		sqlite3_bind_text(upd, 3, vid, -1, SQLITE_STATIC);
		c = capture(ctx, db, upd, 0);
		threshold_row("update", text_bytes[k], &c);
		sqlite3_free(c.data);
	}
	/* Narrow tables give the smallest changesets there are. */
	for (int k = 0; k < 2; k++) {
		struct cs c;
		char sql[200];
		sqlite3_stmt *st = NULL;

		snprintf(sql, sizeof(sql),
			 "INSERT INTO tag_def(code, name, grp, sensitivity)"
			 " VALUES ('t%d', '%s', 'g', 'normal')",
			 k, k ? "低保户" : "x");
		if (gs__db_prepare(ctx, db, &st, sql) != GS_OK)
			die("prepare", ctx, GS_ERROR);
		c = capture(ctx, db, st, 0);
		threshold_row("tag_def", k ? 9 : 1, &c);
		sqlite3_free(c.data);
		sqlite3_finalize(st);
	}
	/* The smallest visit changesets: a tombstone flag flips. */
	for (int k = 0; k < 2; k++) {
		struct cs c;
		char sql[160];
		sqlite3_stmt *st = NULL;

		snprintf(sql, sizeof(sql),
			 "UPDATE visit SET deleted = %d WHERE id = '%s'", 1 - k,
			 vid);
		if (gs__db_prepare(ctx, db, &st, sql) != GS_OK)
			die("prepare", ctx, GS_ERROR);
		c = capture(ctx, db, st, 0);
		threshold_row("tomb", 0, &c);
		sqlite3_free(c.data);
		sqlite3_finalize(st);
	}
	sqlite3_finalize(ins);
	sqlite3_finalize(upd);
}

int main(int argc, char **argv)
{
	struct gs_ctx *ctx = gs_test_ctx_new(NULL);
	char *dir = gs_test_tmpdir();
	static struct cs visits[N_ROWS];
	static struct cs issues[N_ROWS];
	static struct cs mixed[N_ROWS];
	sqlite3 *db = NULL;
	sqlite3_stmt *vins = NULL;
	sqlite3_stmt *iins = NULL;
	int rc;

	rng = argc > 1 ? strtoull(argv[1], NULL, 0) : 20260101;
	printf("bench_wire: seed %llu, zstd %s, GS_COMPRESS_MIN %u\n",
	       (unsigned long long)rng, ZSTD_versionString(), GS_COMPRESS_MIN);
	rc = gs__db_open(&db, ctx, gs_test_path(dir, "w.db"),
			 GS_DB_CREATE | GS_DB_NORMAL);
	if (rc == GS_OK)
		rc = gs__db_migrate(ctx, db);
	if (rc != GS_OK)
		die("open", ctx, rc);
	/* The parents the rows point at (foreign keys are on). */
	sql_ok(ctx, db,
	       "INSERT INTO admin_area(id, code, level, name) VALUES"
	       " ('a-510106001', '510106001', 'community', 'c');"
	       "INSERT INTO grid(id, code, level, community_id, name) VALUES"
	       " ('510106001001', '510106001001', 'micro', 'a-510106001',"
	       " 'g');"
	       "INSERT INTO worker(id, name, role) VALUES ('w-00042', 'w',"
	       " 'GW');"
	       "INSERT INTO category(id, code, level, domain, name) VALUES"
	       " ('c-0101', '0101', 1, 'env', 'c');"
	       "INSERT INTO household(id, grid_id, hlc, origin, created_at)"
	       " VALUES ('0195f3a2-c4e1-7000-8000-000000000001',"
	       " '510106001001', '0-0-x', 'srv', '2026-01-01T00:00:00Z');");
	rc = gs__db_prepare(ctx, db, &vins,
			    "INSERT INTO visit (id, household_id, grid_id,"
			    " worker_id, kind, started_at, outcome, summary,"
			    " hlc, origin, created_at, lat, lng) VALUES"
			    " (?,?,?,?,?,?,?,?,?,?,?,?,?)");
	if (rc == GS_OK)
		rc = gs__db_prepare(
			ctx, db, &iins,
			"INSERT INTO issue (id, source, category_id, title,"
			" description, grid_id, occurred_at,"
			" reporter_worker_id, state, hlc, origin, created_at,"
			" lat, lng) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
	if (rc != GS_OK)
		die("prepare", ctx, rc);
	for (int i = 0; i < N_ROWS; i++) {
		visits[i] = make_visit(ctx, db, vins, i);
		issues[i] = make_issue(ctx, db, iins, i);
	}
	/* S1's mix: 10,000 visits and 2,000 issues, so five to one. */
	for (int i = 0; i < N_ROWS; i++)
		mixed[i] = i % 6 == 5 ? issues[i] : visits[i];
	report(ctx, "visit", visits);
	report(ctx, "issue", issues);
	report(ctx, "S1 mix (5 visits : 1 issue)", mixed);
	printf("  * for comparison, not in the protocol: whole-frame = zstd-3 "
	       "over the entire plain frame;\n    dict = each entry alone "
	       "with a 16 KiB dictionary trained on other rows.\n");
	threshold_table(ctx, db);
	for (int i = 0; i < N_ROWS; i++) {
		sqlite3_free(visits[i].data);
		sqlite3_free(issues[i].data);
	}
	sqlite3_finalize(vins);
	sqlite3_finalize(iins);
	gs__db_close(db);
	gs_test_tmpdir_free(dir);
	gs_ctx_free(ctx);
	return 0;
}
