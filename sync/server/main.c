/*
 * gridsyncd: the district server.
 *
 *   gridsyncd init --db FILE [--journal DIR] [--pki DIR] [--name HOST]
 *   gridsyncd seed --db FILE --profile demo|district [--seed N]
 *   gridsyncd workers --db FILE [--role GW|CS|SC|DC|DH]
 *   gridsyncd enroll --db FILE --device ID --worker ID --scope CODES
 *             --out BUNDLE [--server HOST:PORT] [--pki DIR] [--reinstate]
 *   gridsyncd revoke --db FILE --device ID
 *   gridsyncd serve --db FILE --listen ADDR:PORT [--journal DIR]
 *             [--insecure] [--pki DIR] [--ready-file FILE]
 *   gridsyncd scope set --db FILE --device ID --scope CODES
 *   gridsyncd devices|conflicts|stats --db FILE
 *   gridsyncd journal verify --db FILE --journal DIR
 *
 * Every listing takes --json. Errors: one line on stderr saying what to
 * do, exit 1 (2 for bad usage). Logs (GS_LOG=info|debug) carry ids,
 * counts and codes, never personal data.
 */
#define GS_MODULE "server.main"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gridsync/schema.h>

#include "serve.h"

static const char usage_text[] =
	"usage: gridsyncd COMMAND --db FILE [OPTIONS] [--json]\n"
	"  init [--journal DIR] [--pki DIR] [--name HOST]\n"
	"  seed --profile demo|district [--seed N]\n"
	"  workers [--role GW|CS|SC|DC|DH]\n"
	"  enroll --device ID --worker ID --scope CODE[,CODE...] --out BUNDLE"
	" [--server HOST:PORT] [--reinstate]\n"
	"  revoke --device ID\n"
	"  serve --listen ADDR:PORT [--journal DIR] [--insecure]"
	" [--ready-file FILE]\n"
	"        [--handshake-ms N] (TLS and Hello, default 10000)"
	" [--stall-ms N] (unread replies, default 30000)\n"
	"  scope set --device ID --scope CODE[,CODE...]\n"
	"  devices | conflicts | stats\n"
	"  journal verify --journal DIR\n"
	"The PKI directory defaults to FILE.pki next to the database.\n"
	"Ids are 1-64 characters of A-Z a-z 0-9 . _ : @ - beginning with a\n"
	"letter or digit. Enrolling a device again revokes its earlier\n"
	"certificates; a revoked device is enrolled again only with\n"
	"--reinstate. revoke cuts the device's open sessions within a "
	"second.\n";

struct opts {
	const char *name[32];
	const char *value[32];
	int n;
	bool json;
};

static int usage(const char *msg)
{
	if (msg != NULL)
		fprintf(stderr, "gridsyncd: %s\n", msg);
	fputs(usage_text, stderr);
	return 2;
}

static int fail(struct gs_ctx *ctx, int rc, const char *what)
{
	const char *msg = gs_ctx_errmsg(ctx);

	fprintf(stderr, "gridsyncd: %s: %s\n", what,
		msg[0] ? msg : gs_strerror(rc));
	return 1;
}

static const char *opt(const struct opts *o, const char *name)
{
	for (int i = 0; i < o->n; i++)
		if (strcmp(o->name[i], name) == 0)
			return o->value[i];
	return NULL;
}

static int parse(int argc, char **argv, int i, struct opts *o)
{
	memset(o, 0, sizeof(*o));
	for (; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			o->json = true;
		} else if ((strcmp(argv[i], "--insecure") == 0 ||
			    strcmp(argv[i], "--reinstate") == 0) &&
			   o->n < 32) {
			o->name[o->n] = argv[i] + 2;
			o->value[o->n++] = "1";
		} else if (strncmp(argv[i], "--", 2) == 0 && i + 1 < argc &&
			   o->n < 32) {
			o->name[o->n] = argv[i] + 2;
			o->value[o->n++] = argv[++i];
		} else {
			fprintf(stderr, "gridsyncd: unexpected argument %s\n",
				argv[i]);
			return 2;
		}
	}
	return 0;
}

/* ---- output ------------------------------------------------------------ */

struct out {
	bool json;
	const char *kind;
	int rows;
};

static void json_str(const char *s)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", stdout);
		else if (*p < 0x20)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

static int print_row(int n,
		     const char *const *names,
		     const char *const *values,
		     void *payload)
{
	struct out *o = payload;

	if (o->json) {
		fputs(o->rows ? ",{" : "{", stdout);
		for (int i = 0; i < n; i++) {
			if (i)
				putchar(',');
			json_str(names[i]);
			putchar(':');
			if (values[i] == NULL)
				fputs("null", stdout);
			else
				json_str(values[i]);
		}
		putchar('}');
	} else {
		if (o->rows)
			putchar('\n');
		for (int i = 0; i < n; i++)
			printf("%s: %s\n", names[i],
			       values[i] != NULL ? values[i] : "-");
	}
	o->rows++;
	return 0;
}

static void out_begin(struct out *o)
{
	if (o->json)
		printf("{\"%s\":[", o->kind);
}

static void out_end(struct out *o)
{
	if (o->json)
		puts("]}");
	else if (o->rows == 0)
		printf("no %s\n", o->kind);
}

/* ---- commands ---------------------------------------------------------- */

static const char *pki_dir(const struct opts *o, char *buf, size_t len)
{
	if (opt(o, "pki") != NULL)
		return opt(o, "pki");
	snprintf(buf, len, "%s.pki", opt(o, "db"));
	return buf;
}

static int cmd_init(struct gs_ctx *ctx, const struct opts *o)
{
	struct gs_store *st = NULL;
	struct gs_journal *j = NULL;
	const char *names[] = { opt(o, "name"), NULL };
	char pki[4096];
	int rc;

	rc = gs__store_open(&st, ctx, opt(o, "db"), GS_STORE_CREATE);
	if (rc != GS_OK)
		return fail(ctx, rc, "init");
	if (opt(o, "journal") != NULL)
		rc = gs__journal_open(&j, ctx, opt(o, "journal"));
	if (rc == GS_OK)
		rc = gs__pki_init(ctx, pki_dir(o, pki, sizeof(pki)),
				  names[0] != NULL ? names : NULL);
	if (rc == GS_OK)
		printf("server %s initialised: %s (certificates in %s)\n",
		       gs__store_server_id(st), opt(o, "db"), pki);
	gs__journal_close(j);
	gs__store_close(st);
	return rc == GS_OK ? 0 : fail(ctx, rc, "init");
}

static int cmd_seed(struct gs_ctx *ctx, const struct opts *o)
{
	struct gs_synth_opts so = GS_SYNTH_OPTS_INIT;
	struct gs_store *st = NULL;
	const char *profile = opt(o, "profile");
	int rc;

	if (profile == NULL)
		return usage("seed needs --profile demo|district");
	if (strcmp(profile, "demo") == 0)
		so.profile = GS_SYNTH_DEMO;
	else if (strcmp(profile, "district") == 0)
		so.profile = GS_SYNTH_DISTRICT;
	else
		return usage("--profile is demo or district");
	if (opt(o, "seed") != NULL) {
		int64_t v = 0;

		if (gs__parse_i64(&v, opt(o, "seed")) != GS_OK || v <= 0)
			return usage("--seed takes a positive whole number");
		so.seed = (uint64_t)v;
	}
	rc = gs__store_open(&st, ctx, opt(o, "db"), 0);
	if (rc == GS_OK)
		rc = gs__store_seed(st, &so);
	gs__store_close(st);
	if (rc != GS_OK)
		return fail(ctx, rc, "seed");
	printf("seeded profile %s (seed %llu)\n", profile,
	       (unsigned long long)so.seed);
	return 0;
}

struct workers_out {
	struct out out;
	const char *role;
};

static int worker_row(const struct gs_synth_worker_info *w, void *payload)
{
	struct workers_out *wo = payload;
	const char *names[] = { "id", "role", "org_kind", "grid_codes",
				"duties" };
	const char *values[] = { w->id, w->role, w->org_kind, w->grid_codes,
				 w->duties };

	if (wo->role != NULL && strcmp(wo->role, w->role) != 0)
		return 0;
	return print_row(5, names, values, &wo->out);
}

static int cmd_workers(struct gs_ctx *ctx, const struct opts *o)
{
	struct workers_out wo = { { o->json, "worker", 0 }, opt(o, "role") };
	struct gs_store *st = NULL;
	int rc = gs__store_open(&st, ctx, opt(o, "db"), 0);

	if (rc == GS_OK) {
		out_begin(&wo.out);
		rc = gs__synth_workers(ctx, gs__store_db(st), worker_row, &wo);
		out_end(&wo.out);
	}
	gs__store_close(st);
	return rc == GS_OK ? 0 : fail(ctx, rc, "workers");
}

/*
 * All or nothing: every input is checked before anything is written; the
 * bundle is written next (it must not exist yet), then the device and its
 * certificate's serial in one store transaction. If that fails the new
 * bundle is removed, so a failed enrolment leaves neither a row nor a key.
 */
static int cmd_enroll(struct gs_ctx *ctx, const struct opts *o)
{
	struct gs_store_device dev;
	struct gs_store *st = NULL;
	unsigned flags = opt(o, "reinstate") != NULL ? GS_ENROLL_REINSTATE : 0;
	char serial[GS_CERT_SERIAL_HEX];
	char pki[4096];
	bool wrote = false;
	int rc;

	if (opt(o, "device") == NULL || opt(o, "worker") == NULL ||
	    opt(o, "scope") == NULL || opt(o, "out") == NULL)
		return usage("enroll needs --device, --worker, --scope and "
			     "--out");
	if (!gs__store_id_valid(opt(o, "device")) ||
	    !gs__store_id_valid(opt(o, "worker")))
		return usage("--device and --worker take 1-64 characters of "
			     "A-Z a-z 0-9 . _ : @ - beginning with a letter "
			     "or digit");
	rc = gs__store_open(&st, ctx, opt(o, "db"), 0);
	if (rc == GS_OK)
		rc = gs__store_enroll_check(st, opt(o, "device"),
					    opt(o, "worker"), opt(o, "scope"),
					    flags);
	if (rc == GS_OK) {
		rc = gs__pki_enroll_serial(
			ctx, pki_dir(o, pki, sizeof(pki)), opt(o, "device"),
			opt(o, "worker"), opt(o, "scope"), opt(o, "server"),
			opt(o, "out"), serial, sizeof(serial));
		wrote = rc == GS_OK;
	}
	if (rc == GS_OK)
		rc = gs__store_enroll_ex(st, opt(o, "device"), opt(o, "worker"),
					 opt(o, "scope"), serial, flags, &dev);
	if (rc != GS_OK && wrote && unlink(opt(o, "out")) != 0)
		fprintf(stderr, "gridsyncd: remove the unused bundle %s\n",
			opt(o, "out"));
	gs__store_close(st);
	if (rc != GS_OK)
		return fail(ctx, rc, "enroll");
	printf("enrolled %s (worker %s, role %s, scope %s): bundle %s\n",
	       dev.id, dev.worker_id, gs__role_name(dev.role), dev.scope,
	       opt(o, "out"));
	return 0;
}

static int cmd_revoke(struct gs_ctx *ctx, const struct opts *o)
{
	struct gs_store *st = NULL;
	int rc;

	if (opt(o, "device") == NULL)
		return usage("revoke needs --device ID");
	rc = gs__store_open(&st, ctx, opt(o, "db"), 0);
	if (rc == GS_OK)
		rc = gs__store_revoke(st, opt(o, "device"));
	gs__store_close(st);
	if (rc != GS_OK)
		return fail(ctx, rc, "revoke");
	printf("revoked %s: its certificates are refused and a running "
	       "gridsyncd closes its sessions within a second\n",
	       opt(o, "device"));
	return 0;
}

/* A device's new scope takes effect at its next sync: it pushes what it
 * holds, downloads what entered its scope and purges what left. */
static int cmd_scope(struct gs_ctx *ctx, const struct opts *o)
{
	struct gs_store_device dev;
	struct gs_store *st = NULL;
	int rc;

	if (opt(o, "device") == NULL || opt(o, "scope") == NULL)
		return usage("scope set needs --device ID and --scope "
			     "CODE[,CODE...]");
	rc = gs__store_open(&st, ctx, opt(o, "db"), 0);
	if (rc == GS_OK)
		rc = gs__store_scope_set(st, opt(o, "device"), opt(o, "scope"),
					 &dev);
	gs__store_close(st);
	if (rc != GS_OK)
		return fail(ctx, rc, "scope set");
	if (o->json)
		printf("{\"device\":\"%s\",\"scope\":\"%s\","
		       "\"scope_version\":%llu}\n",
		       dev.id, dev.scope,
		       (unsigned long long)dev.scope_version);
	else
		printf("device %s: scope %s (version %llu), applied at its "
		       "next "
		       "sync\n",
		       dev.id, dev.scope,
		       (unsigned long long)dev.scope_version);
	return 0;
}

static int cmd_list(struct gs_ctx *ctx, const struct opts *o, const char *what)
{
	struct out out = { o->json, what, 0 };
	struct gs_store *st = NULL;
	int rc = gs__store_open(&st, ctx, opt(o, "db"), 0);

	if (rc == GS_OK) {
		out_begin(&out);
		if (strcmp(what, "device") == 0)
			rc = gs__store_list_devices(st, print_row, &out);
		else if (strcmp(what, "conflict") == 0)
			rc = gs__store_list_conflicts(st, NULL, print_row,
						      &out);
		else
			rc = gs__store_stats(st, print_row, &out);
		out_end(&out);
	}
	gs__store_close(st);
	return rc == GS_OK ? 0 : fail(ctx, rc, what);
}

static int cmd_serve(struct gs_ctx *ctx, const struct opts *o)
{
	struct serve_opts so;
	char pki[4096];
	int rc;

	memset(&so, 0, sizeof(so));
	if (opt(o, "listen") == NULL)
		return usage("serve needs --listen ADDR:PORT");
	so.db_path = opt(o, "db");
	so.listen = opt(o, "listen");
	so.journal_dir = opt(o, "journal");
	so.ready_file = opt(o, "ready-file");
	so.insecure = opt(o, "insecure") != NULL;
	so.pki_dir = pki_dir(o, pki, sizeof(pki));
	so.idle_ms = 60000;
	so.handshake_ms = 10000;
	so.stall_ms = 30000;
	so.journal_every_ms = 200;
	if (opt(o, "handshake-ms") != NULL)
		so.handshake_ms = strtoull(opt(o, "handshake-ms"), NULL, 10);
	if (opt(o, "stall-ms") != NULL)
		so.stall_ms = strtoull(opt(o, "stall-ms"), NULL, 10);
	if (so.handshake_ms == 0 || so.stall_ms == 0)
		return usage("--handshake-ms and --stall-ms need a number of "
			     "milliseconds above 0");
	if (so.insecure && strncmp(so.listen, "127.", 4) != 0 &&
	    strncmp(so.listen, "[::1]", 5) != 0 &&
	    strncmp(so.listen, "localhost", 9) != 0)
		return usage("--insecure only on a loopback address");
	rc = serve_run(ctx, &so);
	return rc == GS_OK ? 0 : fail(ctx, rc, "serve");
}

static int cmd_journal(struct gs_ctx *ctx, const struct opts *o)
{
	struct gs_journal_report rep;
	struct gs_journal *j = NULL;
	struct gs_store *st = NULL;
	int rc;

	if (opt(o, "journal") == NULL)
		return usage("journal verify needs --journal DIR");
	memset(&rep, 0, sizeof(rep));
	rc = gs__store_open(&st, ctx, opt(o, "db"), 0);
	if (rc == GS_OK)
		rc = gs__journal_open(&j, ctx, opt(o, "journal"));
	if (rc == GS_OK)
		rc = gs__journal_verify(j, gs__store_db(st), &rep);
	if (o->json)
		printf("{\"ok\":%s,\"commits\":%llu,\"uploads\":%llu,"
		       "\"matched\":%llu,\"mismatched\":%llu,\"missing\":%llu,"
		       "\"pending\":%llu}\n",
		       rc == GS_OK ? "true" : "false",
		       (unsigned long long)rep.commits,
		       (unsigned long long)rep.uploads,
		       (unsigned long long)rep.matched,
		       (unsigned long long)rep.mismatched,
		       (unsigned long long)rep.missing,
		       (unsigned long long)rep.pending);
	else
		printf("journal: %llu commits, %llu uploads, %llu matched, "
		       "%llu mismatched, %llu missing, %llu pending\n",
		       (unsigned long long)rep.commits,
		       (unsigned long long)rep.uploads,
		       (unsigned long long)rep.matched,
		       (unsigned long long)rep.mismatched,
		       (unsigned long long)rep.missing,
		       (unsigned long long)rep.pending);
	gs__journal_close(j);
	gs__store_close(st);
	return rc == GS_OK ? 0 : fail(ctx, rc, "journal verify");
}

int main(int argc, char **argv)
{
	struct gs_ctx *ctx = NULL;
	const char *cmd;
	struct opts o;
	int first = 2;
	int rc;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0)
		return argc < 2 ? usage(NULL) : (fputs(usage_text, stdout), 0);
	cmd = argv[1];
	if (strcmp(cmd, "journal") == 0) {
		if (argc < 3 || strcmp(argv[2], "verify") != 0)
			return usage("journal verify --db FILE --journal DIR");
		first = 3;
	}
	if (strcmp(cmd, "scope") == 0) {
		if (argc < 3 || strcmp(argv[2], "set") != 0)
			return usage("scope set --db FILE --device ID --scope "
				     "CODE[,CODE...]");
		first = 3;
	}
	rc = parse(argc, argv, first, &o);
	if (rc != 0)
		return rc;
	if (opt(&o, "db") == NULL)
		return usage("--db FILE is required");
	if (gs_ctx_new(&ctx, NULL) != GS_OK)
		return 1;
	if (getenv("GS_LOG") != NULL)
		gs_ctx_set_log(ctx, gs_log_stderr,
			       strcmp(getenv("GS_LOG"), "debug") == 0
				       ? GS_LOG_DEBUG
				       : GS_LOG_INFO,
			       NULL);
	else
		gs_ctx_set_log(ctx, gs_log_stderr, GS_LOG_WARN, NULL);
	if (strcmp(cmd, "init") == 0)
		rc = cmd_init(ctx, &o);
	else if (strcmp(cmd, "seed") == 0)
		rc = cmd_seed(ctx, &o);
	else if (strcmp(cmd, "workers") == 0)
		rc = cmd_workers(ctx, &o);
	else if (strcmp(cmd, "enroll") == 0)
		rc = cmd_enroll(ctx, &o);
	else if (strcmp(cmd, "revoke") == 0)
		rc = cmd_revoke(ctx, &o);
	else if (strcmp(cmd, "serve") == 0)
		rc = cmd_serve(ctx, &o);
	else if (strcmp(cmd, "devices") == 0)
		rc = cmd_list(ctx, &o, "device");
	else if (strcmp(cmd, "conflicts") == 0)
		rc = cmd_list(ctx, &o, "conflict");
	else if (strcmp(cmd, "stats") == 0)
		rc = cmd_list(ctx, &o, "stats");
	else if (strcmp(cmd, "journal") == 0)
		rc = cmd_journal(ctx, &o);
	else if (strcmp(cmd, "scope") == 0)
		rc = cmd_scope(ctx, &o);
	else
		rc = usage("unknown command");
	gs_ctx_free(ctx);
	return rc;
}
