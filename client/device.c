/*
 * The device database: creating and opening it, identity and scope, row
 * views for listings, the outbox and status.
 *
 * A device database is the replicated schema (proto/) plus the engine's
 * bookkeeping tables (gs_outbox, gs_state, gs_meta, gs_conflict; never
 * captured). Identity lives in gs_meta: device_id, worker_id, role,
 * server, scope (grid codes), insecure, cursor, last_sync.
 */
#define GS_MODULE "client.device"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <gridsync/changeset.h>
#include <gridsync/client_internal.h>
#include <gridsync/hlc.h>
#include <gridsync/outbox.h>
#include <gridsync/purge.h>
#include <gridsync/schema.h>
#include <gridsync/synth.h>
#include <gridsync/transport.h>

#include "device_impl.h"

int gs__meta_get(struct gs_device *dev, const char *key, char **out)
{
	sqlite3_stmt *st = NULL;
	int rc;

	*out = NULL;
	rc = gs__db_prepare(dev->ctx, dev->db, &st,
			    "SELECT value FROM gs_meta WHERE key = ?");
	if (rc != GS_OK)
		return rc;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const char *v = (const char *)sqlite3_column_text(st, 0);

		rc = GS_OK;
		if (v != NULL) {
			*out = gs__strdup(dev->ctx, v);
			if (*out == NULL)
				rc = GS_ENOMEM;
		}
	} else {
		rc = rc == SQLITE_DONE
			     ? GS_OK
			     : gs__err_from_sqlite(dev->ctx, rc, dev->db);
	}
	sqlite3_finalize(st);
	return rc;
}

int gs__meta_set(struct gs_device *dev, const char *key, const char *value)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = gs__db_prepare(dev->ctx, dev->db, &st,
			    "INSERT INTO gs_meta (key, value) VALUES (?, ?)"
			    " ON CONFLICT(key) DO UPDATE SET value ="
			    " excluded.value");
	if (rc != GS_OK)
		return rc;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
	rc = gs__db_step_done(dev->ctx, dev->db, st);
	sqlite3_finalize(st);
	return rc;
}

int gs__stmt(struct gs_device *dev, const char *sql, sqlite3_stmt **out)
{
	size_t n = sizeof(dev->stmts) / sizeof(dev->stmts[0]);
	sqlite3_stmt *st = NULL;
	size_t i;
	int rc;

	for (i = 0; i < n && dev->stmts[i].sql != NULL; i++)
		if (dev->stmts[i].sql == sql) {
			*out = dev->stmts[i].st;
			return GS_OK;
		}
	GS_ASSERT(i < n); /* the cache holds every save-path statement */
	rc = gs__db_prepare(dev->ctx, dev->db, &st, sql);
	if (rc != GS_OK)
		return rc;
	dev->stmts[i].sql = sql;
	dev->stmts[i].st = st;
	*out = st;
	return GS_OK;
}

void gs__stmt_done(sqlite3_stmt *st)
{
	if (st == NULL)
		return;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

static void device_free(struct gs_device *dev)
{
	if (dev == NULL)
		return;
	for (size_t i = 0; i < sizeof(dev->stmts) / sizeof(dev->stmts[0]); i++)
		sqlite3_finalize(dev->stmts[i].st);
	gs__capture_close(dev->cap);
	gs__scope_fini(&dev->scope);
	gs__db_close(dev->db);
	gs__free(dev->ctx, dev->device_id);
	gs__free(dev->ctx, dev->worker_id);
	gs__free(dev->ctx, dev->scope_codes);
	gs__free(dev->ctx, dev);
}

void gs_device_close(struct gs_device *dev)
{
	device_free(dev);
}

/* The role of worker_id in the reference data, or 0. */
static unsigned worker_role(struct gs_device *dev, const char *worker_id)
{
	sqlite3_stmt *st = NULL;
	unsigned role = 0;

	if (worker_id == NULL ||
	    gs__db_prepare(dev->ctx, dev->db, &st,
			   "SELECT role FROM worker WHERE id = ?") != GS_OK)
		return 0;
	sqlite3_bind_text(st, 1, worker_id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		role = gs__role_parse((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return role;
}

/* gs_in_scope(grid_id): the scope check inside SQL statements. */
static void in_scope_fn(sqlite3_context *fctx, int argc, sqlite3_value **argv)
{
	struct gs_device *dev = sqlite3_user_data(fctx);
	const char *grid = (const char *)sqlite3_value_text(argv[0]);

	(void)argc;
	sqlite3_result_int(fctx, !dev->scope.known ||
					 gs__scope_has(&dev->scope, grid));
}

int gs__device_new_incarnation(struct gs_device *dev, char out[33])
{
	uint8_t raw[16];
	int rc = gs__random(dev->ctx, raw, sizeof(raw));

	if (rc != GS_OK)
		return rc;
	gs__hex(out, raw, sizeof(raw));
	return gs__meta_set(dev, "incarnation", out);
}

/* Read identity and scope from gs_meta and prepare capture. */
static int device_load(struct gs_device *dev)
{
	char *role = NULL;
	int rc;

	rc = gs__meta_get(dev, "device_id", &dev->device_id);
	if (rc == GS_OK && dev->device_id == NULL)
		rc = gs__err(dev->ctx, GS_ENOTFOUND,
			     "not a gridsync device database (no device id): "
			     "create one with gridsync init");
	if (rc == GS_OK)
		rc = gs__meta_get(dev, "worker_id", &dev->worker_id);
	if (rc == GS_OK)
		rc = gs__meta_get(dev, "role", &role);
	if (rc == GS_OK)
		rc = gs__meta_get(dev, "scope", &dev->scope_codes);
	/* A database made before incarnations gets its id now. */
	if (rc == GS_OK) {
		char *inc = NULL;
		char id[33];

		rc = gs__meta_get(dev, "incarnation", &inc);
		if (rc == GS_OK && inc == NULL)
			rc = gs__device_new_incarnation(dev, id);
		gs__free(dev->ctx, inc);
	}
	if (rc == GS_OK) {
		dev->role = gs__role_parse(role);
		if (dev->role == 0)
			dev->role = worker_role(dev, dev->worker_id);
		if (dev->role == 0)
			dev->role = GS_ROLE_GW;
		rc = gs__scope_load(&dev->scope, dev->ctx, dev->db,
				    dev->scope_codes);
	}
	if (rc == GS_OK)
		rc = gs__capture_open(&dev->cap, dev->ctx, dev->db);
	if (rc == GS_OK &&
	    sqlite3_create_function(dev->db, "gs_in_scope", 1, SQLITE_UTF8, dev,
				    in_scope_fn, NULL, NULL) != SQLITE_OK)
		rc = gs__err_from_sqlite(dev->ctx, SQLITE_ERROR, dev->db);
	gs__free(dev->ctx, role);
	return rc;
}

int gs_device_open(struct gs_device **out, struct gs_ctx *ctx, const char *path)
{
	struct gs_device *dev = NULL;
	int rc;

	GS_CHECK_ARG(out != NULL && ctx != NULL && path != NULL);
	*out = NULL;
	dev = gs__calloc(ctx, 1, sizeof(*dev));
	if (dev == NULL)
		return GS_ENOMEM;
	dev->ctx = ctx;
	rc = gs__db_open(&dev->db, ctx, path, 0);
	if (rc == GS_ENOTFOUND)
		gs__err(ctx, rc,
			"no device database at %s: create it with gridsync "
			"init",
			path);
	if (rc == GS_OK)
		rc = gs__db_migrate(ctx, dev->db);
	if (rc == GS_OK)
		rc = gs__bookkeeping_install(ctx, dev->db);
	if (rc == GS_OK)
		rc = device_load(dev);
	if (rc != GS_OK) {
		device_free(dev);
		return rc;
	}
	*out = dev;
	return GS_OK;
}

/* Grid codes of the worker's active assignments, comma-separated. */
static int
worker_scope(struct gs_device *dev, const char *worker_id, char **out)
{
	sqlite3_stmt *st = NULL;
	struct gs_buf b;
	int rc;

	*out = NULL;
	gs__buf_init(&b, dev->ctx, 64 * 1024);
	rc = gs__db_prepare(dev->ctx, dev->db, &st,
			    "SELECT g.code FROM assignment a JOIN grid g"
			    " ON g.id = a.grid_id WHERE a.worker_id = ?"
			    " AND a.deleted = 0 ORDER BY g.code");
	if (rc == GS_OK) {
		sqlite3_bind_text(st, 1, worker_id, -1, SQLITE_STATIC);
		while (rc == GS_OK && sqlite3_step(st) == SQLITE_ROW)
			rc = gs__buf_printf(
				&b, "%s%s", b.len ? "," : "",
				(const char *)sqlite3_column_text(st, 0));
	}
	sqlite3_finalize(st);
	if (rc == GS_OK && b.len > 0) {
		rc = gs__buf_cstr(&b);
		if (rc == GS_OK) {
			*out = (char *)b.data;
			return GS_OK;
		}
	}
	gs__buf_fini(&b);
	return rc;
}

/* The demo profile's first micro-grid worker: generate the profile into a
 * scratch in-memory database and ask it (well under a second). */
static int demo_default_worker(struct gs_device *dev,
			       const struct gs_synth_opts *so,
			       char **out)
{
	char id[GS_UUID_LEN];
	sqlite3 *mem = NULL;
	int rc;

	*out = NULL;
	if (sqlite3_open(":memory:", &mem) != SQLITE_OK) {
		sqlite3_close(mem);
		return gs__err(dev->ctx, GS_ENOMEM, "open scratch database");
	}
	rc = gs__db_migrate(dev->ctx, mem);
	if (rc == GS_OK)
		rc = gs__synth_generate(dev->ctx, mem, so, NULL);
	if (rc == GS_OK)
		rc = gs__synth_pick_worker(dev->ctx, mem, "GW", "responsible",
					   id);
	sqlite3_close(mem);
	if (rc != GS_OK)
		return rc;
	*out = gs__strdup(dev->ctx, id);
	return *out != NULL ? GS_OK : GS_ENOMEM;
}

static int load_demo(struct gs_device *dev,
		     const struct gs_device_init_opts *opts,
		     char **worker_out)
{
	struct gs_synth_opts so = GS_SYNTH_OPTS_INIT;
	int rc;

	*worker_out = NULL;
	so.profile = GS_SYNTH_DEMO;
	if (opts->demo_seed != 0)
		so.seed = opts->demo_seed;
	if (opts->worker_id != NULL) {
		*worker_out = gs__strdup(dev->ctx, opts->worker_id);
		if (*worker_out == NULL)
			return GS_ENOMEM;
	} else {
		rc = demo_default_worker(dev, &so, worker_out);
		if (rc != GS_OK)
			return gs__err_wrap(dev->ctx, rc, "demo worker");
	}
	so.scope_worker_id = *worker_out;
	rc = gs__synth_generate(dev->ctx, dev->db, &so, NULL);
	if (rc == GS_ENOTFOUND)
		return gs__err(dev->ctx, rc,
			       "worker %.64s is not in the demo profile (omit "
			       "--worker to use the first grid worker)",
			       *worker_out);
	if (rc != GS_OK)
		return gs__err_wrap(dev->ctx, rc, "load demo data");
	return GS_OK;
}

static int device_create(struct gs_device **out,
			 struct gs_ctx *ctx,
			 const char *path,
			 const struct gs_device_init_opts *opts,
			 const struct gs_bundle *bundle);

/* Plain TCP only to this machine: an IPv4 address in 127/8, [::1] or
 * localhost, with a port. Anything else would carry a worker's data in
 * clear over a network (a name such as 127.0.0.1.example.org too). */
static bool loopback_server(const char *server)
{
	const char *colon = strrchr(server, ':');
	struct in_addr a4;
	char host[64];
	size_t n;

	if (colon == NULL || colon[1] == '\0')
		return false;
	n = (size_t)(colon - server);
	if (n == 0 || n >= sizeof(host))
		return false;
	memcpy(host, server, n);
	host[n] = '\0';
	if (strcmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0)
		return true;
	return inet_pton(AF_INET, host, &a4) == 1 &&
	       (ntohl(a4.s_addr) >> 24) == 127;
}

int gs_device_init(struct gs_device **out,
		   struct gs_ctx *ctx,
		   const char *path,
		   const struct gs_device_init_opts *opts)
{
	struct gs_device_init_opts merged;
	struct gs_bundle bundle;
	int rc;

	GS_CHECK_ARG(out != NULL && ctx != NULL && path != NULL &&
		     opts != NULL);
	*out = NULL;
	if (opts->version != GS_DEVICE_INIT_OPTS_VERSION)
		return gs__err(ctx, GS_EINVAL, "unknown options version");
	if (opts->insecure && opts->server != NULL &&
	    !loopback_server(opts->server))
		return gs__err(ctx, GS_EINVAL,
			       "--insecure only reaches a server on this "
			       "machine (127.x.x.x, [::1] or localhost): "
			       "enrol with a bundle to reach another one");
	if (opts->bundle == NULL)
		return device_create(out, ctx, path, opts, NULL);
	/* An enrolment bundle supplies what the options leave out. */
	memset(&bundle, 0, sizeof(bundle));
	rc = gs__bundle_read(&bundle, ctx, opts->bundle);
	if (rc != GS_OK)
		return gs__err_wrap(ctx, rc, "bundle %s", opts->bundle);
	merged = *opts;
	if (merged.device_id == NULL)
		merged.device_id = bundle.device_id;
	if (merged.worker_id == NULL)
		merged.worker_id = bundle.worker_id;
	if (merged.scope == NULL)
		merged.scope = bundle.scope;
	if (merged.server == NULL)
		merged.server = bundle.server;
	if (strcmp(merged.device_id, bundle.device_id) != 0)
		rc = gs__err(ctx, GS_EINVAL,
			     "the bundle is for device %s, not %s",
			     bundle.device_id, merged.device_id);
	else
		rc = device_create(out, ctx, path, &merged, &bundle);
	gs__bundle_fini(ctx, &bundle);
	return rc;
}

/* Create the database (the body of gs_device_init). */
static int device_create(struct gs_device **out,
			 struct gs_ctx *ctx,
			 const char *path,
			 const struct gs_device_init_opts *opts,
			 const struct gs_bundle *bundle)
{
	struct gs_device *dev = NULL;
	char *worker = NULL;
	char *scope = NULL;
	struct stat sb;
	unsigned role;
	int rc;

	if (opts->device_id == NULL || opts->device_id[0] == '\0')
		return gs__err(ctx, GS_EINVAL, "a device id is required");
	if (strlen(opts->device_id) > 100)
		return gs__err(ctx, GS_EINVAL, "device id too long (max 100)");
	if (opts->role != NULL && gs__role_parse(opts->role) == 0)
		return gs__err(ctx, GS_EINVAL,
			       "unknown role: use GW, CS, SC, DC or DH");
	if (stat(path, &sb) == 0)
		return gs__err(ctx, GS_EEXISTS,
			       "%s already exists: choose another path or "
			       "remove it",
			       path);
	dev = gs__calloc(ctx, 1, sizeof(*dev));
	if (dev == NULL)
		return GS_ENOMEM;
	dev->ctx = ctx;
	rc = gs__db_open(&dev->db, ctx, path, GS_DB_CREATE);
	if (rc == GS_OK)
		rc = gs__db_migrate(ctx, dev->db);
	if (rc == GS_OK)
		rc = gs__bookkeeping_install(ctx, dev->db);
	if (rc == GS_OK)
		rc = gs__db_exec(ctx, dev->db, "BEGIN IMMEDIATE");
	if (rc == GS_OK && opts->demo)
		rc = load_demo(dev, opts, &worker);
	else if (rc == GS_OK && opts->worker_id != NULL) {
		worker = gs__strdup(ctx, opts->worker_id);
		if (worker == NULL)
			rc = GS_ENOMEM;
	}
	if (rc == GS_OK) {
		role = opts->role != NULL ? gs__role_parse(opts->role)
					  : worker_role(dev, worker);
		rc = gs__meta_set(dev, "device_id", opts->device_id);
	}
	if (rc == GS_OK && worker != NULL)
		rc = gs__meta_set(dev, "worker_id", worker);
	/* Without a role given or known yet, the worker's role is read from
	 * the reference data once it has arrived (device_load). */
	if (rc == GS_OK && role != 0)
		rc = gs__meta_set(dev, "role", gs__role_name(role));
	if (rc == GS_OK && opts->server != NULL)
		rc = gs__meta_set(dev, "server", opts->server);
	if (rc == GS_OK && opts->scope == NULL && worker != NULL)
		rc = worker_scope(dev, worker, &scope);
	if (rc == GS_OK && (opts->scope != NULL || scope != NULL))
		rc = gs__meta_set(dev, "scope",
				  opts->scope != NULL ? opts->scope : scope);
	if (rc == GS_OK)
		rc = gs__meta_set(dev, "insecure", opts->insecure ? "1" : "0");
	/* Every new database is a new incarnation of its device id: the
	 * server numbers its entries apart from any earlier database's. */
	if (rc == GS_OK) {
		char inc[33];

		rc = gs__device_new_incarnation(dev, inc);
	}
	/* The TLS identity from enrolment. The key lives in the device
	 * database, which is the handheld's protected store. */
	if (rc == GS_OK && bundle != NULL)
		rc = gs__meta_set(dev, "tls_ca", bundle->ca_pem);
	if (rc == GS_OK && bundle != NULL)
		rc = gs__meta_set(dev, "tls_cert", bundle->cert_pem);
	if (rc == GS_OK && bundle != NULL)
		rc = gs__meta_set(dev, "tls_key", bundle->key_pem);
	if (rc == GS_OK)
		rc = gs__db_exec(ctx, dev->db, "COMMIT");
	if (rc == GS_OK)
		rc = device_load(dev);
	gs__free(ctx, worker);
	gs__free(ctx, scope);
	if (rc != GS_OK) {
		if (dev->db != NULL)
			sqlite3_exec(dev->db, "ROLLBACK", NULL, NULL, NULL);
		device_free(dev);
		/* A half-made database must not look like a device. */
		remove(path);
		return rc;
	}
	*out = dev;
	return GS_OK;
}

/* ---- rows ------------------------------------------------------------- */

int gs_row_count(const struct gs_row *row)
{
	return sqlite3_column_count(row->st);
}

const char *gs_row_name(const struct gs_row *row, int i)
{
	return sqlite3_column_name(row->st, i);
}

int gs_row_type(const struct gs_row *row, int i)
{
	switch (sqlite3_column_type(row->st, i)) {
	case SQLITE_INTEGER:
		return 1;
	case SQLITE_FLOAT:
		return 2;
	case SQLITE_TEXT:
		return 3;
	case SQLITE_BLOB:
		return 4;
	default:
		return 0;
	}
}

const char *gs_row_text(const struct gs_row *row, int i)
{
	return (const char *)sqlite3_column_text(row->st, i);
}

int64_t gs_row_int(const struct gs_row *row, int i)
{
	return sqlite3_column_int64(row->st, i);
}

int gs_row_bytes(const struct gs_row *row, int i)
{
	return sqlite3_column_bytes(row->st, i);
}

const char *gs_row_get(const struct gs_row *row, const char *name)
{
	for (int i = 0; i < sqlite3_column_count(row->st); i++)
		if (strcmp(sqlite3_column_name(row->st, i), name) == 0)
			return gs_row_text(row, i);
	return NULL;
}

const char *gs_row_kind(const struct gs_row *row)
{
	return row->kind;
}

int gs__rows_emit(struct gs_device *dev,
		  sqlite3_stmt *st,
		  const char *kind,
		  gs_row_cb cb,
		  void *payload)
{
	struct gs_row row = { st, kind };
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int stop = cb(&row, payload);

		if (stop != 0) {
			sqlite3_reset(st);
			return stop;
		}
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? GS_OK
				 : gs__err_from_sqlite(dev->ctx, rc, dev->db);
}

int gs__rows_query(struct gs_device *dev,
		   const char *kind,
		   gs_row_cb cb,
		   void *payload,
		   const char *sql,
		   const char *const *params)
{
	sqlite3_stmt *st = NULL;
	int rc = gs__db_prepare(dev->ctx, dev->db, &st, sql);

	for (int i = 0; rc == GS_OK && params != NULL && params[i] != NULL; i++)
		sqlite3_bind_text(st, i + 1, params[i], -1, SQLITE_STATIC);
	if (rc == GS_OK)
		rc = gs__rows_emit(dev, st, kind, cb, payload);
	sqlite3_finalize(st);
	return rc;
}

/* ---- transactions ----------------------------------------------------- */

int gs__txn_begin(struct gs_device *dev, struct gs_txn *txn)
{
	int rc = gs__capture_begin(dev->cap, &txn->hlc);

	if (rc != GS_OK)
		return rc;
	gs__hlc_format(txn->hlc_text, txn->hlc);
	gs__time_format(txn->now, gs__clock_wall_ms(dev->ctx));
	return GS_OK;
}

int gs__txn_commit(struct gs_device *dev)
{
	return gs__capture_commit(dev->cap, NULL);
}

void gs__txn_rollback(struct gs_device *dev)
{
	gs__capture_rollback(dev->cap);
}

int gs__new_id(struct gs_device *dev, char id[GS_ID_LEN])
{
	return gs__uuid7(dev->ctx, id);
}

int gs__check_scope(struct gs_device *dev, const char *grid_id)
{
	if (!dev->scope.known || gs__scope_has(&dev->scope, grid_id))
		return GS_OK;
	return gs__err(dev->ctx, GS_EDENIED,
		       "grid %s is outside this device's scope (%s)",
		       grid_id != NULL ? grid_id : "(none)",
		       dev->scope_codes != NULL ? dev->scope_codes : "");
}

int gs__write_err(struct gs_device *dev, int rc, const char *what)
{
	const char *msg = gs_ctx_errmsg(dev->ctx);

	if (strstr(msg, "FOREIGN KEY") != NULL)
		return gs__err(dev->ctx, GS_ENOTFOUND,
			       "%s: it refers to a record this device does not "
			       "have (run gridsync sync to fetch reference "
			       "data)",
			       what);
	if (strstr(msg, "NOT NULL") != NULL)
		return gs__err_wrap(dev->ctx, GS_EINVAL,
				    "%s: a required field is missing", what);
	if (strstr(msg, "CHECK") != NULL)
		return gs__err_wrap(dev->ctx, GS_EINVAL,
				    "%s: a field has a value outside its "
				    "allowed set",
				    what);
	return gs__err_wrap(dev->ctx, rc, "%s", what);
}

/* ---- outbox and status ------------------------------------------------ */

/*
 * gs_cs_summary(changeset): "visit+1 issue+1 issue_event~2" (+ insert,
 * ~ update, - delete) for listings. The bytes are read with our own
 * bounded parser, judged as the server judges an upload, never with
 * SQLite's iterator: a damaged device database must not be able to hang
 * `gridsync outbox` (DESIGN.md traps 1 and 7). An entry the parser
 * refuses is listed as "invalid: REASON at byte N" instead of failing the
 * whole listing, so the worker can still see the others.
 */
struct cs_summary_acc {
	char out[512];
	size_t used;
	const struct gs_table *t; /* the table being counted */
	unsigned long counts[3];  /* insert, update, delete */
};

/* Append the counts of the table just finished. */
static void cs_summary_table(struct cs_summary_acc *a)
{
	static const char sym[3] = { '+', '~', '-' };

	for (int k = 0; a->t != NULL && k < 3; k++) {
		int n;

		if (a->counts[k] == 0 || a->used >= sizeof(a->out))
			continue;
		n = snprintf(a->out + a->used, sizeof(a->out) - a->used,
			     "%s%s%c%lu", a->used ? " " : "", a->t->name,
			     sym[k], a->counts[k]);
		a->used += n > 0 ? (size_t)n : 0;
	}
	memset(a->counts, 0, sizeof(a->counts));
}

/* Rows arrive grouped by table: the parser refuses a repeated table. */
static int cs_summary_row(const struct gs_cs_row *row, void *payload)
{
	struct cs_summary_acc *a = payload;

	if (row->table != a->t) {
		cs_summary_table(a);
		a->t = row->table;
	}
	a->counts[row->op == GS_CS_INSERT   ? 0
		  : row->op == GS_CS_UPDATE ? 1
					    : 2]++;
	return 0;
}

static void cs_summary(sqlite3_context *fctx, int argc, sqlite3_value **argv)
{
	struct cs_summary_acc acc;
	struct gs_cs_error err;
	const struct gs_cs_opts opts = GS_CS_OPTS_INIT;
	int rc;

	(void)argc;
	memset(&acc, 0, sizeof(acc));
	/* No ctx: the function has no device; the parser allocates nothing
	 * and its detail text is not needed (err says it all). */
	rc = gs__cs_foreach(&err, NULL, sqlite3_value_blob(argv[0]),
			    (size_t)sqlite3_value_bytes(argv[0]), &opts,
			    cs_summary_row, &acc);
	if (rc == GS_OK) {
		cs_summary_table(&acc);
	} else if (rc == GS_EPROTO) {
		snprintf(acc.out, sizeof(acc.out), "invalid: %s at byte %zu",
			 gs__cs_reason_name(err.reason), err.offset);
	} else {
		sqlite3_result_error(fctx, "cannot read the changeset", -1);
		return;
	}
	sqlite3_result_text(fctx, acc.out, -1, SQLITE_TRANSIENT);
}

int gs_outbox_list(struct gs_device *dev, gs_row_cb cb, void *payload)
{
	GS_CHECK_ARG(dev != NULL && cb != NULL);
	if (sqlite3_create_function(dev->db, "gs_cs_summary", 1,
				    SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL,
				    cs_summary, NULL, NULL) != SQLITE_OK)
		return gs__err_from_sqlite(dev->ctx, SQLITE_ERROR, dev->db);
	return gs__rows_query(
		dev, "outbox", cb, payload,
		"SELECT seq, printf('%016x', hlc) AS hlc,"
		" length(changeset) AS bytes, lower(hex(sha256)) AS sha256,"
		" strftime('%Y-%m-%dT%H:%M:%fZ', created_at / 1000.0,"
		" 'unixepoch') AS created_at,"
		" gs_cs_summary(changeset) AS changes"
		" FROM gs_outbox ORDER BY seq",
		NULL);
}

int gs_outbox_recover(struct gs_device *dev,
		      const char *table,
		      const char *id,
		      uint64_t *seq_out)
{
	const struct gs_table *t;
	uint64_t seq = 0;
	uint64_t hlc = 0;
	size_t rows = 0;
	int rc;

	GS_CHECK_ARG(dev != NULL && table != NULL && id != NULL);
	t = gs__manifest_find(table);
	if (t == NULL || t->cls == GS_CLASS_R)
		return gs__err(dev->ctx, GS_EINVAL,
			       "%.64s is not a table of device data", table);
	rc = gs__db_exec(dev->ctx, dev->db, "BEGIN IMMEDIATE");
	if (rc != GS_OK)
		return rc;
	rc = gs__capture_state(dev->cap, &seq, &hlc);
	if (rc == GS_OK)
		rc = gs__outbox_key_add(dev->ctx, dev->db, t->name, id);
	if (rc == GS_OK)
		rc = gs__outbox_recapture(
			dev->ctx, dev->db,
			gs__hlc_next(hlc, gs__clock_wall_ms(dev->ctx)), &rows);
	if (rc == GS_OK && rows == 0)
		rc = gs__err(dev->ctx, GS_ENOTFOUND,
			     "no %s row with id %.64s: nothing to send",
			     t->name, id);
	if (rc == GS_OK)
		rc = gs__capture_state(dev->cap, &seq, &hlc);
	if (rc == GS_OK)
		rc = gs__db_exec(dev->ctx, dev->db, "COMMIT");
	if (rc != GS_OK) {
		sqlite3_exec(dev->db, "ROLLBACK", NULL, NULL, NULL);
		sqlite3_exec(dev->db, "DELETE FROM temp.gs_rekey", NULL, NULL,
			     NULL);
		return rc;
	}
	if (seq_out != NULL)
		*seq_out = seq;
	return GS_OK;
}

int gs_outbox_get(struct gs_device *dev,
		  uint64_t seq,
		  uint8_t **data_out,
		  size_t *len_out)
{
	sqlite3_stmt *st = NULL;
	int rc;

	GS_CHECK_ARG(dev != NULL && data_out != NULL && len_out != NULL);
	*data_out = NULL;
	*len_out = 0;
	rc = gs__db_prepare(dev->ctx, dev->db, &st,
			    "SELECT changeset FROM gs_outbox WHERE seq = ?");
	if (rc != GS_OK)
		return rc;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)seq);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		size_t n = (size_t)sqlite3_column_bytes(st, 0);
		uint8_t *p = gs__malloc(dev->ctx, n);

		rc = GS_ENOMEM;
		if (p != NULL) {
			memcpy(p, sqlite3_column_blob(st, 0), n);
			*data_out = p;
			*len_out = n;
			rc = GS_OK;
		}
	} else if (rc == SQLITE_DONE) {
		rc = gs__err(dev->ctx, GS_ENOTFOUND,
			     "no pending outbox entry %llu",
			     (unsigned long long)seq);
	} else {
		rc = gs__err_from_sqlite(dev->ctx, rc, dev->db);
	}
	sqlite3_finalize(st);
	return rc;
}

void gs_free(struct gs_ctx *ctx, void *ptr)
{
	gs__free(ctx, ptr);
}

static void
copy_meta(struct gs_device *dev, const char *key, char *dst, size_t size)
{
	char *v = NULL;

	dst[0] = '\0';
	if (gs__meta_get(dev, key, &v) == GS_OK && v != NULL)
		snprintf(dst, size, "%s", v);
	gs__free(dev->ctx, v);
}

int gs_device_status(struct gs_device *dev, struct gs_status *out)
{
	sqlite3_stmt *st = NULL;
	char cursor[32];
	int rc;

	GS_CHECK_ARG(dev != NULL && out != NULL);
	memset(out, 0, sizeof(*out));
	snprintf(out->device_id, sizeof(out->device_id), "%s", dev->device_id);
	copy_meta(dev, "worker_id", out->worker_id, sizeof(out->worker_id));
	snprintf(out->role, sizeof(out->role), "%s", gs__role_name(dev->role));
	copy_meta(dev, "server", out->server, sizeof(out->server));
	copy_meta(dev, "scope", out->scope, sizeof(out->scope));
	copy_meta(dev, "last_sync", out->last_sync, sizeof(out->last_sync));
	copy_meta(dev, "cursor", cursor, sizeof(cursor));
	out->cursor = strtoull(cursor, NULL, 10);
	copy_meta(dev, "clock_offset_ms", cursor, sizeof(cursor));
	if (cursor[0] != '\0') {
		out->clock_known = 1;
		out->clock_offset_ms = strtoll(cursor, NULL, 10);
		out->clock_skewed =
			out->clock_offset_ms > GS_CLOCK_SKEW_WARN_MS ||
			out->clock_offset_ms < -GS_CLOCK_SKEW_WARN_MS;
	}
	rc = gs__capture_state(dev->cap, &out->last_seq, &out->hlc);
	if (rc == GS_OK)
		rc = gs__db_schema_version(dev->ctx, dev->db,
					   &out->schema_version);
	if (rc == GS_OK)
		rc = gs__db_prepare(
			dev->ctx, dev->db, &st,
			"SELECT (SELECT count(*) FROM gs_outbox),"
			" (SELECT ifnull(sum(length(changeset)), 0)"
			" FROM gs_outbox),"
			" (SELECT count(*) FROM household WHERE deleted = 0"
			" AND id NOT IN (SELECT id FROM merged_into)),"
			" (SELECT count(*) FROM visit WHERE deleted = 0),"
			" (SELECT count(*) FROM issue WHERE deleted = 0),"
			" (SELECT count(*) FROM gs_quarantine)");
	if (rc == GS_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			out->outbox_depth =
				(uint64_t)sqlite3_column_int64(st, 0);
			out->outbox_bytes =
				(uint64_t)sqlite3_column_int64(st, 1);
			out->households = (uint64_t)sqlite3_column_int64(st, 2);
			out->visits = (uint64_t)sqlite3_column_int64(st, 3);
			out->issues = (uint64_t)sqlite3_column_int64(st, 4);
			out->quarantined =
				(uint64_t)sqlite3_column_int64(st, 5);
			rc = GS_OK;
		} else {
			rc = gs__err_from_sqlite(dev->ctx, rc, dev->db);
		}
		sqlite3_finalize(st);
	}
	if (rc == GS_OK)
		rc = gs__db_content_hash(dev->ctx, dev->db, out->content_hash);
	if (rc == GS_OK) {
		char num[32] = "";

		copy_meta(dev, "scope_version", num, sizeof(num));
		out->scope_version = strtoull(num, NULL, 10);
		num[0] = '\0';
		copy_meta(dev, "rescope", num, sizeof(num));
		out->rescope = num[0] != '\0';
		rc = gs__purge_pending(dev->ctx, dev->db, &out->purge_pending);
	}
	return rc;
}

sqlite3 *gs__device_db(struct gs_device *dev)
{
	return dev->db;
}

int gs__device_set_normal(struct gs_device *dev, int normal)
{
	return gs__db_exec(dev->ctx, dev->db,
			   normal ? "PRAGMA synchronous=NORMAL"
				  : "PRAGMA synchronous=FULL");
}

int gs__device_reload(struct gs_device *dev)
{
	char *role = NULL;
	int rc;

	gs__scope_fini(&dev->scope);
	rc = gs__scope_load(&dev->scope, dev->ctx, dev->db, dev->scope_codes);
	if (rc == GS_OK)
		rc = gs__meta_get(dev, "role", &role);
	if (rc == GS_OK && role == NULL) {
		unsigned r = worker_role(dev, dev->worker_id);

		if (r != 0)
			dev->role = r;
	}
	gs__free(dev->ctx, role);
	return rc;
}
