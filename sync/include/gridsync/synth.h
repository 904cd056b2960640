/*
 * The synthetic data generator of DESIGN.md ("Synthetic data"): realistic,
 * deterministic, Chinese-language reference and household data for a
 * Chengdu-like district, written into a database that gs__db_migrate has
 * brought to the replicated schema, plus text helpers that benchmarks and
 * tests use to fill visit and issue rows. Internal (gs__), not installed.
 *
 * Determinism: everything is drawn from one seeded PRNG of our own
 * (xoshiro256**), never rand() or the clock. The same profile, seed, start
 * date and options give identical rows (gs__db_content_hash proves it), on
 * every run and on every machine of the same float ABI.
 *
 * What the rows look like:
 * - ids are UUIDv7-shaped: the 48-bit time is the start date plus a
 *   generation counter (counter >> 12 ms, the low 12 bits in rand_a), the
 *   rest is PRNG output, so ids are unique by construction and sort in
 *   generation order;
 * - times are ISO-8601 UTC with milliseconds (gs__time_format);
 * - grid codes are prefix-hierarchical so that a code covers its sub-grids
 *   (gs__scope_resolve): community total grid = the 12-digit community code,
 *   general grid = + 2 digits, micro-grid = + 2 + 3 digits;
 * - seeded D rows (household, resident, resident_tag) carry
 *   hlc = GS_SYNTH_SEED_HLC, origin = "server", server_seq NULL, deleted 0;
 *   R rows carry server_seq NULL and deleted 0 (the server numbers them
 *   when it publishes them);
 * - ID numbers are format-valid but not real: the district's region code,
 *   the resident's birth date, a sequence with the right gender parity and,
 *   unless valid_checksum is set, a WRONG ISO 7064 MOD 11-2 check digit;
 *   phones are 11 digits starting with "10" (not a mobile prefix);
 * - personal values are protected like production (see the crypto section
 *   below) with fixed, published demo keys: this data is not secret, the
 *   point is that its shape and cost match the real thing.
 */
#ifndef GRIDSYNC_SYNTH_H
#define GRIDSYNC_SYNTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <gridsync/db.h>

/* ---- PRNG ------------------------------------------------------------- */

/* xoshiro256** state. Plain data: copy it to fork a stream. */
struct gs_synth_rng {
	uint64_t s[4];
};

/* Seed from a 64-bit value (through splitmix64, so any seed is fine). */
void gs__synth_rng_seed(struct gs_synth_rng *r, uint64_t seed);
uint64_t gs__synth_rng_next(struct gs_synth_rng *r);
/* Uniform in [0, n); n must be > 0 (returns 0 for n == 0). */
uint32_t gs__synth_rng_below(struct gs_synth_rng *r, uint32_t n);
/* True with probability ppm / 1,000,000. */
bool gs__synth_rng_ppm(struct gs_synth_rng *r, uint32_t ppm);

/* ---- the generator ---------------------------------------------------- */

enum gs_synth_profile {
	/* One street, one community (~300 households): the hand-held demo,
	 * unit tests. Generates in well under a second. */
	GS_SYNTH_DEMO = 1,
	/* DESIGN.md defaults: 12 streets, 120 communities, ~1,000 general
	 * grids, 5,000 micro-grids, ~300k households, ~750k residents. */
	GS_SYNTH_DISTRICT,
};

/* The hlc of every seeded D row: HLC 0 in gs__hlc_format's text form, so
 * that any edit made on a device orders after the seed. */
#define GS_SYNTH_SEED_HLC "0000000000000000"

/* The district's region code (first six digits of every admin code and
 * of every generated ID number). */
#define GS_SYNTH_DISTRICT_CODE "510114"

struct gs_synth_opts {
	unsigned version; /* GS_SYNTH_OPTS_VERSION */
	enum gs_synth_profile profile;
	uint64_t seed; /* 42 by default */
	/* "2025-01-01" or "2025-01-01T00:00:00.000Z"; NULL: 2025-01-01. Seeds
	 * the ids' time part, created_at, valid_from and birth dates. */
	const char *start;
	/*
	 * NULL: the server's truth, everything. A worker id: what that
	 * worker's handheld loads (`gridsync init --demo --worker ID`):
	 * - admin_area: the worker's communities and their ancestors;
	 * - grid, place, dwelling: all of those communities;
	 * - org: those whose area is one of the written areas (community
	 *   station, street centre, district centre, departments); worker:
	 *   those of the written orgs; assignment: written worker and grid;
	 * - category, tag_def, sla_policy, transition_rule: all;
	 * - household, resident, resident_tag: only in grids the worker is
	 *   assigned to (and their sub-grids), never a restricted tag.
	 * The worker's communities are those of its assigned grids, or all
	 * under its org's area if it has none (DC, DH). Ids are the same as in
	 * the unscoped run. GS_ENOTFOUND if no such worker is generated.
	 */
	const char *scope_worker_id;
	/* Compute the correct check digit (for validators); default wrong. */
	bool valid_checksum;
};

#define GS_SYNTH_OPTS_VERSION 1
#define GS_SYNTH_OPTS_INIT                                                  \
	{                                                                   \
		GS_SYNTH_OPTS_VERSION, GS_SYNTH_DEMO, 42, NULL, NULL, false \
	}

/* Rows written per table (scope applied). */
struct gs_synth_stats {
	size_t admin_area;
	size_t grid;
	size_t place;
	size_t dwelling;
	size_t org;
	size_t worker;
	size_t assignment;
	size_t category;
	size_t tag_def;
	size_t sla_policy;
	size_t transition_rule;
	size_t household;
	size_t resident;
	size_t resident_tag;
	size_t total;
	uint64_t elapsed_ms; /* wall time of the run, for reports */
};

/*
 * Generate the profile into db, which must be migrated to
 * GS_SCHEMA_VERSION and hold no generated rows yet (ids would differ but
 * codes collide: GS_EEXISTS). All rows are written inside one SAVEPOINT:
 * in autocommit mode that is one transaction, committed on success and
 * rolled back on failure; inside the caller's transaction it nests and the
 * caller commits. The connection's pragmas are left alone: for the
 * district profile a large cache (PRAGMA cache_size) avoids spilling the
 * transaction to the WAL early (tests/bench/bench_synth.c shows one way).
 * stats_out may be NULL; it is written only on success.
 * Returns GS_OK, GS_EINVAL (opts), GS_ESCHEMA (db not migrated),
 * GS_ENOTFOUND (scope_worker_id unknown), GS_ENOMEM, or a translated
 * SQLite error. Logs counts and timings, never a generated value.
 */
int gs__synth_generate(struct gs_ctx *ctx,
		       sqlite3 *db,
		       const struct gs_synth_opts *opts,
		       struct gs_synth_stats *stats_out);

/* One generated worker, as the worker listing sees it. All strings are
 * borrowed for the duration of the callback. */
struct gs_synth_worker_info {
	const char *id;
	const char *role; /* GW, CS, SC, DC, DH */
	bool is_volunteer;
	const char *org_kind; /* community_station, street_center, ... */
	/* Comma-separated grid codes of its live assignments, sorted (ready
	 * for `gridsyncd enroll --scope`), "" if none; duties in the same
	 * order ("responsible,assistant,..."). */
	const char *grid_codes;
	const char *duties;
};

/* Called once per worker; non-zero stops the walk and is returned. */
typedef int (*gs_synth_worker_cb)(const struct gs_synth_worker_info *w,
				  void *payload);

/*
 * Walk the workers in db (generated or not) in id order, which for
 * generated data is generation order: per community its micro-grid GW,
 * full-time GW and CS; then SC, DC and DH. Allocates (capped buffers).
 */
int gs__synth_workers(struct gs_ctx *ctx,
		      sqlite3 *db,
		      gs_synth_worker_cb cb,
		      void *payload);

/*
 * The first worker (in id order) with role and, if duty is not NULL, at
 * least one live assignment of that duty. For the demo profile
 * ("GW", "responsible") is the responsible of the first micro-grid.
 * GS_ENOTFOUND if there is none.
 */
int gs__synth_pick_worker(struct gs_ctx *ctx,
			  sqlite3 *db,
			  const char *role,
			  const char *duty,
			  char out[GS_UUID_LEN]);

/* ---- crypto of personal values ---------------------------------------- */
/*
 * Encrypted columns (resident.id_no_enc, resident.phone_enc,
 * resident.health_note_enc, household.phone_enc) hold
 *     suite (1 byte, GS_SYNTH_SUITE_DEMO) | nonce (12) | ciphertext | tag (16)
 * AES-256-GCM under the fixed demo data key, the nonce drawn from the PRNG
 * (so that output stays deterministic), and "table.column" as associated
 * data so that a value moved to another column fails to open.
 * id_no_hmac is lowercase hex of HMAC-SHA256(demo index key, id number).
 * Production swaps the suite byte and the keys (SM4/SM3 per GB/T 39786),
 * not the layout. Both keys are SHA-256 of a fixed label: public, demo only.
 */
#define GS_SYNTH_SUITE_DEMO   0x01u
#define GS_SYNTH_ENC_OVERHEAD (1 + 12 + 16)
#define GS_SYNTH_HMAC_HEX_LEN 65

/*
 * Open a blob sealed by the generator. aad is "table.column". On success
 * out holds the plaintext plus a NUL and *len_out its length. GS_ECORRUPT
 * if the blob does not authenticate, GS_ETOOBIG if cap is too small.
 */
int gs__synth_open(struct gs_ctx *ctx,
		   char *out,
		   size_t cap,
		   size_t *len_out,
		   const void *blob,
		   size_t blob_len,
		   const char *aad);

/* id_no_hmac of a clear ID number, as the generator stores it. */
int gs__synth_id_hmac(struct gs_ctx *ctx,
		      char out[GS_SYNTH_HMAC_HEX_LEN],
		      const char *id_no);

/* The ISO 7064 MOD 11-2 check character ('0'-'9' or 'X') of the first 17
 * digits of id_no (GB 11643). */
char gs__synth_id_check(const char *id_no);

/* ---- workload text (benchmarks, tests) -------------------------------- */
/*
 * All helpers draw from a PRNG the caller owns, so a workload is as
 * deterministic as its seed. They write NUL-terminated UTF-8 into out and
 * return GS_OK, or GS_ETOOBIG (out then holds "") if cap is too small;
 * GS_SYNTH_TEXT_MAX is always enough.
 */
#define GS_SYNTH_TEXT_MAX 512

/* About 120 bytes of Chinese: what a worker notes after a visit. */
int gs__synth_visit_summary(char *out, size_t cap, struct gs_synth_rng *r);

/* Visit answers JSON: the checklist (gas, wiring, clutter, fire_lane:
 * "ok" / "hazard" / "na") and recorded needs (养老/就业/托育/助残). */
int gs__synth_visit_answers(char *out, size_t cap, struct gs_synth_rng *r);

/* A level-3 category code by DESIGN.md's mix (环境卫生 28 %, 安全隐患
 * 18 %, ...); static storage. It names a row of the generated category. */
const char *gs__synth_issue_category(struct gs_synth_rng *r);

/* "red" 3 %, "yellow" 27 %, "blue" 70 %; static storage. */
const char *gs__synth_issue_grade(struct gs_synth_rng *r);

/* An issue of the given level-3 category code (NULL: one is drawn): a
 * title and a ~200-byte description from DESIGN.md's slot templates. */
struct gs_synth_issue {
	const char *category_code; /* static storage */
	const char *grade;         /* static storage */
	char title[128];
	char description[GS_SYNTH_TEXT_MAX];
};
int gs__synth_issue(struct gs_synth_issue *out,
		    struct gs_synth_rng *r,
		    const char *category_code);

#endif
