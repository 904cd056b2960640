/*
 * gridsync: the handheld command line.
 *
 *   gridsync [--db FILE] [--json] COMMAND [ARGS]
 *
 * It uses only the shipped API (gridsync/gridsync.h), which proves that
 * API is enough for a handheld app. Errors go to stderr as one line that
 * says what went wrong and what to do; the exit status is 1 when the
 * operation failed and 2 for bad usage. Output never goes to a log: what
 * the worker asked to see is printed, nothing else.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gridsync/inspect.h>

#include "cli.h"

struct args {
	int argc;
	char **argv;
	int i;
};

struct cli {
	struct gs_ctx *ctx;
	const char *db_path;
	bool json;
};

static const char usage_text[] =
	"usage: gridsync [--db FILE] [--json] COMMAND [ARGS]\n"
	"\n"
	"  init --db FILE --device ID [--server HOST:PORT] (--bundle FILE |"
	" --insecure)\n"
	"       [--worker ID] [--role GW|CS|SC|DC|DH] [--scope CODES] [--demo"
	" [--seed N]]\n"
	"  household list | show ID | add --grid_id ID [--FIELD VALUE ...] |"
	" edit ID --FIELD VALUE ... | delete ID\n"
	"  resident add --household_id ID --name NAME [--FIELD VALUE ...] |"
	" edit ID --FIELD VALUE ...\n"
	"  visit add --household ID --kind KIND --outcome OUTCOME [--summary"
	" TEXT] [--answers JSON]\n"
	"            [--at TIME]\n"
	"  issue report --category CODE --title TEXT [--household ID]"
	" [--description TEXT]\n"
	"               [--grade red|yellow|blue] [--draft]\n"
	"  issue move ID --to STATE [--note TEXT] [--assignee WORKER_ID]"
	" [--due TIME]\n"
	"  issue list [--state STATE] | show ID\n"
	"  category list\n"
	"  sync [--once] [--verbose] [--server HOST:PORT]\n"
	"  conflicts\n"
	"  status | outbox | outbox show SEQ | outbox recover TABLE ID\n"
	"  inspect FILE|- [--upload]   (decodes a changeset or frames; no"
	" database)\n"
	"\n"
	"FIELD names are the columns of the household and resident tables"
	" (e.g. --size 3,\n"
	"--residence_type 户籍); TIME is ISO-8601 UTC, e.g."
	" 2025-03-01T08:30:00Z.\n"
	"GS_DB may name the database instead of --db.\n";

static int usage(const char *msg)
{
	if (msg != NULL)
		fprintf(stderr, "gridsync: %s\n", msg);
	fputs(usage_text, stderr);
	return CLI_USAGE;
}

/* Report a library failure: the detail text says what to do. */
static int fail(struct cli *c, int rc, const char *what)
{
	const char *msg = gs_ctx_errmsg(c->ctx);

	fprintf(stderr, "gridsync: %s: %s\n", what,
		msg[0] != '\0' ? msg : gs_strerror(rc));
	return CLI_FAIL;
}

/* Options of a command: "--name value" pairs and bare flags. */
#define MAX_OPTS 48

struct opts {
	const char *name[MAX_OPTS];
	const char *value[MAX_OPTS];
	int n;
	const char *pos[4]; /* positional arguments */
	int n_pos;
};

static const char *const flags[] = { "--insecure", "--demo", "--draft",
				     "--json",     "--once", "--verbose",
				     NULL };

static bool is_flag(const char *a)
{
	for (int i = 0; flags[i] != NULL; i++)
		if (strcmp(flags[i], a) == 0)
			return true;
	return false;
}

static int parse_opts(struct cli *c, struct args *a, struct opts *o)
{
	memset(o, 0, sizeof(*o));
	for (; a->i < a->argc; a->i++) {
		const char *arg = a->argv[a->i];

		if (strcmp(arg, "--json") == 0) {
			c->json = true;
		} else if (strcmp(arg, "--db") == 0 && a->i + 1 < a->argc) {
			c->db_path = a->argv[++a->i];
		} else if (strncmp(arg, "--", 2) == 0) {
			if (o->n == MAX_OPTS)
				return usage("too many options");
			o->name[o->n] = arg + 2;
			if (is_flag(arg)) {
				o->value[o->n++] = "1";
			} else if (a->i + 1 < a->argc) {
				o->value[o->n++] = a->argv[++a->i];
			} else {
				fprintf(stderr, "gridsync: %s needs a value\n",
					arg);
				return CLI_USAGE;
			}
		} else {
			if (o->n_pos == 4)
				return usage("too many arguments");
			o->pos[o->n_pos++] = arg;
		}
	}
	return 0;
}

static const char *opt(struct opts *o, const char *name)
{
	for (int i = 0; i < o->n; i++)
		if (strcmp(o->name[i], name) == 0)
			return o->value[i];
	return NULL;
}

/* Reject options the command does not know (a typo must not be
 * silently ignored). */
static int only(struct opts *o, const char *const *known)
{
	for (int i = 0; i < o->n; i++) {
		bool ok = false;

		for (int k = 0; known[k] != NULL; k++)
			ok = ok || strcmp(known[k], o->name[i]) == 0;
		if (!ok) {
			fprintf(stderr,
				"gridsync: unknown option --%s (see gridsync "
				"--help)\n",
				o->name[i]);
			return CLI_USAGE;
		}
	}
	return 0;
}

static int open_device(struct cli *c, struct gs_device **dev)
{
	int rc;

	if (c->db_path == NULL)
		return usage("no database: give --db FILE (or set GS_DB)");
	rc = gs_device_open(dev, c->ctx, c->db_path);
	return rc == GS_OK ? 0 : fail(c, rc, "open");
}

static int cmd_init(struct cli *c, struct opts *o)
{
	static const char *const known[] = { "device",   "server", "bundle",
					     "insecure", "worker", "role",
					     "scope",    "demo",   "seed",
					     NULL };
	struct gs_device_init_opts io = GS_DEVICE_INIT_OPTS_INIT;
	struct gs_device *dev = NULL;
	struct gs_status st;
	struct printer *p;
	int rc = only(o, known);

	if (rc != 0)
		return rc;
	if (c->db_path == NULL ||
	    (opt(o, "device") == NULL && opt(o, "bundle") == NULL))
		return usage("init needs --db FILE and --device ID (or "
			     "--bundle FILE)");
	if (opt(o, "insecure") == NULL && opt(o, "demo") == NULL &&
	    opt(o, "bundle") == NULL)
		return usage("init needs --bundle FILE or --insecure");
	io.device_id = opt(o, "device");
	io.worker_id = opt(o, "worker");
	io.role = opt(o, "role");
	io.server = opt(o, "server");
	io.scope = opt(o, "scope");
	io.insecure = opt(o, "insecure") != NULL;
	io.demo = opt(o, "demo") != NULL;
	io.bundle = opt(o, "bundle");
	if (opt(o, "seed") != NULL) {
		char *end = NULL;

		errno = 0;
		io.demo_seed = strtoull(opt(o, "seed"), &end, 10);
		if (errno != 0 || end == opt(o, "seed") || *end != '\0' ||
		    io.demo_seed == 0)
			return usage("--seed takes a positive whole number");
	}
	rc = gs_device_init(&dev, c->ctx, c->db_path, &io);
	if (rc != GS_OK)
		return fail(c, rc, "init");
	rc = gs_device_status(dev, &st);
	gs_device_close(dev);
	if (rc != GS_OK)
		return fail(c, rc, "status");
	p = printer_new(c->json, false);
	printer_field(p, "db", c->db_path, true);
	printer_field(p, "device_id", st.device_id, true);
	printer_field(p, "worker_id", st.worker_id, true);
	printer_field(p, "role", st.role, true);
	printer_field(p, "scope", st.scope, true);
	printer_flush(p, stdout);
	printer_free(p);
	return 0;
}

/* Turn "--name value" options into fields (dashes become underscores). */
static int to_fields(struct opts *o, struct gs_field *f, char names[][64])
{
	for (int i = 0; i < o->n; i++) {
		snprintf(names[i], 64, "%s", o->name[i]);
		for (char *s = names[i]; *s; s++)
			if (*s == '-')
				*s = '_';
		f[i].name = names[i];
		f[i].value = strcmp(o->value[i], "-") == 0 ? NULL : o->value[i];
	}
	return o->n;
}

static int print_id(struct cli *c, const char *kind, const char *id)
{
	struct printer *p = printer_new(c->json, false);

	printer_field(p, kind, id, true);
	printer_flush(p, stdout);
	printer_free(p);
	return 0;
}

static int
list_with(struct cli *c,
	  struct gs_device *dev,
	  const char *kind,
	  bool table,
	  int (*fn)(struct gs_device *, const char *, gs_row_cb, void *),
	  const char *arg,
	  const char *what)
{
	struct printer *p = printer_new(c->json, table);
	int rc;

	printer_expect(p, kind);
	rc = fn(dev, arg, printer_row, p);
	if (rc == GS_OK)
		printer_flush(p, stdout);
	printer_free(p);
	return rc == GS_OK ? 0 : fail(c, rc, what);
}

static int household_list(struct gs_device *dev,
			  const char *unused,
			  gs_row_cb cb,
			  void *payload)
{
	(void)unused;
	return gs_household_list(dev, cb, payload);
}

static int category_list(struct gs_device *dev,
			 const char *unused,
			 gs_row_cb cb,
			 void *payload)
{
	(void)unused;
	return gs_category_list(dev, cb, payload);
}

static int outbox_list(struct gs_device *dev,
		       const char *unused,
		       gs_row_cb cb,
		       void *payload)
{
	(void)unused;
	return gs_outbox_list(dev, cb, payload);
}

static int cmd_record(struct cli *c,
		      struct gs_device *dev,
		      const char *table,
		      struct opts *o)
{
	static char names[MAX_OPTS][64];
	struct gs_field f[MAX_OPTS];
	char id[GS_ID_LEN];
	const char *sub = o->n_pos > 0 ? o->pos[0] : NULL;
	bool household = strcmp(table, "household") == 0;
	int n;
	int rc;

	if (sub == NULL)
		return usage("say what to do: list, show, add or edit");
	if (household && strcmp(sub, "list") == 0 && o->n == 0)
		return list_with(c, dev, "household", true, household_list,
				 NULL, "household list");
	if (household && strcmp(sub, "show") == 0 && o->n_pos == 2 && o->n == 0)
		return list_with(c, dev, "household", false, gs_household_show,
				 o->pos[1], "household show");
	if (household && strcmp(sub, "delete") == 0 && o->n_pos == 2 &&
	    o->n == 0) {
		rc = gs_household_delete(dev, o->pos[1]);
		if (rc != GS_OK)
			return fail(c, rc, "household delete");
		return print_id(c, "id", o->pos[1]);
	}
	n = to_fields(o, f, names);
	if (strcmp(sub, "add") == 0 && o->n_pos == 1) {
		rc = household ? gs_household_add(dev, id, f, (size_t)n)
			       : gs_resident_add(dev, id, f, (size_t)n);
		if (rc != GS_OK)
			return fail(c, rc,
				    household ? "household add"
					      : "resident add");
		return print_id(c, "id", id);
	}
	if (strcmp(sub, "edit") == 0 && o->n_pos == 2) {
		rc = household ? gs_household_edit(dev, o->pos[1], f, (size_t)n)
			       : gs_resident_edit(dev, o->pos[1], f, (size_t)n);
		if (rc != GS_OK)
			return fail(c, rc,
				    household ? "household edit"
					      : "resident edit");
		return print_id(c, "id", o->pos[1]);
	}
	return usage("unknown or incomplete record command");
}

static int cmd_visit(struct cli *c, struct gs_device *dev, struct opts *o)
{
	static const char *const known[] = { "household", "kind",    "outcome",
					     "summary",   "answers", "at",
					     NULL };
	struct gs_visit_opts vo = GS_VISIT_OPTS_INIT;
	char id[GS_ID_LEN];
	int rc = only(o, known);

	if (rc != 0)
		return rc;
	if (o->n_pos != 1 || strcmp(o->pos[0], "add") != 0)
		return usage("visit add --household ID --kind KIND --outcome "
			     "OUTCOME");
	if (opt(o, "household") == NULL || opt(o, "kind") == NULL ||
	    opt(o, "outcome") == NULL)
		return usage("visit add needs --household, --kind and "
			     "--outcome");
	vo.household_id = opt(o, "household");
	vo.kind = opt(o, "kind");
	vo.outcome = opt(o, "outcome");
	vo.summary = opt(o, "summary");
	vo.answers = opt(o, "answers");
	vo.started_at = opt(o, "at");
	rc = gs_visit_add(dev, id, &vo);
	if (rc != GS_OK)
		return fail(c, rc, "visit add");
	return print_id(c, "id", id);
}

static int cmd_issue(struct cli *c, struct gs_device *dev, struct opts *o)
{
	static const char *const report_known[] = { "category",  "title",
						    "household", "description",
						    "grade",     "draft",
						    "grid",      NULL };
	static const char *const move_known[] = { "to", "note", "assignee",
						  "due", NULL };
	static const char *const list_known[] = { "state", NULL };
	const char *sub = o->n_pos > 0 ? o->pos[0] : "";
	char id[GS_ID_LEN];
	int rc;

	if (strcmp(sub, "report") == 0 && o->n_pos == 1) {
		struct gs_issue_report_opts ro = GS_ISSUE_REPORT_OPTS_INIT;

		rc = only(o, report_known);
		if (rc != 0)
			return rc;
		if (opt(o, "category") == NULL || opt(o, "title") == NULL)
			return usage("issue report needs --category and "
				     "--title");
		ro.category = opt(o, "category");
		ro.title = opt(o, "title");
		ro.household_id = opt(o, "household");
		ro.description = opt(o, "description");
		ro.grade = opt(o, "grade");
		ro.grid_id = opt(o, "grid");
		ro.draft = opt(o, "draft") != NULL;
		rc = gs_issue_report(dev, id, &ro);
		if (rc != GS_OK)
			return fail(c, rc, "issue report");
		return print_id(c, "id", id);
	}
	if (strcmp(sub, "move") == 0 && o->n_pos == 2) {
		struct gs_issue_move_opts mo = GS_ISSUE_MOVE_OPTS_INIT;

		rc = only(o, move_known);
		if (rc != 0)
			return rc;
		if (opt(o, "to") == NULL)
			return usage("issue move ID --to STATE");
		mo.to = opt(o, "to");
		mo.note = opt(o, "note");
		mo.assignee = opt(o, "assignee");
		mo.due = opt(o, "due");
		rc = gs_issue_move(dev, o->pos[1], &mo);
		if (rc != GS_OK)
			return fail(c, rc, "issue move");
		return print_id(c, "id", o->pos[1]);
	}
	if (strcmp(sub, "list") == 0 && o->n_pos == 1) {
		rc = only(o, list_known);
		if (rc != 0)
			return rc;
		return list_with(c, dev, "issue", true, gs_issue_list,
				 opt(o, "state"), "issue list");
	}
	if (strcmp(sub, "show") == 0 && o->n_pos == 2 && o->n == 0)
		return list_with(c, dev, "issue", false, gs_issue_show,
				 o->pos[1], "issue show");
	return usage("issue report | move ID | list | show ID");
}

static void
sync_progress(const char *phase, const struct gs_sync_summary *s, void *payload)
{
	bool *tty = payload;

	if (!*tty)
		return;
	fprintf(stderr,
		"\r%-7s pushed %llu (acked %llu, rejected %llu)  pulled %llu "
		"rows  %llu KiB up, %llu KiB down   %s",
		phase, (unsigned long long)s->pushed,
		(unsigned long long)s->acknowledged,
		(unsigned long long)s->rejected,
		(unsigned long long)s->pulled_rows,
		(unsigned long long)(s->bytes_up / 1024),
		(unsigned long long)(s->bytes_down / 1024),
		strcmp(phase, "done") == 0 ? "\n" : "");
	fflush(stderr);
}

/* "ahead of the server by 2h 5m" for an offset (server - device); the
 * words a worker reads in status and in a sync's warning. */
static void clock_words(char *out, size_t cap, int64_t off_ms)
{
	int64_t s = (off_ms < 0 ? -off_ms : off_ms) / 1000;

	if (s == 0) {
		snprintf(out, cap, "in step with the server");
		return;
	}
	snprintf(out, cap, "%s the server by %lldh %02lldm %02llds",
		 off_ms < 0 ? "ahead of" : "behind", (long long)(s / 3600),
		 (long long)(s / 60 % 60), (long long)(s % 60));
}

static int cmd_sync(struct cli *c, struct gs_device *dev, struct opts *o)
{
	static const char *const known[] = { "once", "verbose", "server",
					     NULL };
	struct gs_sync_opts so = GS_SYNC_OPTS_INIT;
	struct gs_sync_summary sum;
	struct printer *p;
	bool tty = isatty(2) && !c->json;
	char num[32];
	bool refused;
	int rc = only(o, known);

	if (rc != 0)
		return rc;
	if (o->n_pos != 0)
		return usage("sync takes no arguments");
	so.server = opt(o, "server");
	so.once = opt(o, "once") != NULL;
	so.progress = sync_progress;
	so.payload = &tty;
	if (opt(o, "verbose") != NULL)
		gs_ctx_set_log(c->ctx, gs_log_stderr, GS_LOG_INFO, NULL);
	rc = gs_device_sync(dev, &so, &sum);
	/* The sync ran to its end, but something of the outbox did not
	 * arrive: not ok, and the worker is told where to look. */
	refused = rc == GS_OK &&
		  (sum.rejected > 0 || sum.deferred > 0 || sum.quarantined > 0);
	p = printer_new(c->json, false);
	printer_field(p, "ok", rc == GS_OK && !refused ? "true" : "false",
		      false);
#define NUM(name, v)                                                 \
	snprintf(num, sizeof(num), "%llu", (unsigned long long)(v)); \
	printer_field(p, name, num, false)
	NUM("pushed", sum.pushed);
	NUM("acknowledged", sum.acknowledged);
	NUM("rejected", sum.rejected);
	NUM("deferred", sum.deferred);
	NUM("quarantined", sum.quarantined);
	NUM("recaptured", sum.recaptured);
	NUM("conflicts", sum.conflicts);
	NUM("pulled", sum.pulled_rows);
	NUM("purged", sum.purged);
	NUM("bytes_up", sum.bytes_up);
	NUM("bytes_down", sum.bytes_down);
	NUM("cursor", sum.cursor);
	NUM("attempts", sum.attempts);
#undef NUM
	snprintf(num, sizeof(num), "%.3f", sum.seconds);
	printer_field(p, "seconds", num, false);
	if (sum.clock_known) {
		char words[96];
		char warn[256];

		snprintf(num, sizeof(num), "%lld",
			 (long long)sum.clock_offset_ms);
		printer_field(p, "clock_offset_ms", num, false);
		if (sum.clock_skewed) {
			clock_words(words, sizeof(words), sum.clock_offset_ms);
			snprintf(warn, sizeof(warn),
				 "this device's clock is %s: set its date and "
				 "time (automatic time); until then its edits "
				 "may lose to older ones or win over newer "
				 "ones",
				 words);
			printer_field(p, "clock_warning", warn, true);
			fprintf(stderr, "gridsync: warning: %s\n", warn);
		}
	}
	if (rc != GS_OK)
		printer_field(p, "error", gs_ctx_errmsg(c->ctx), true);
	printer_flush(p, stdout);
	printer_free(p);
	if (refused) {
		fprintf(stderr,
			"gridsync: sync: %llu entries refused and undone, %llu "
			"kept to send again, %llu damaged entries "
			"quarantined: see gridsync conflicts\n",
			(unsigned long long)sum.rejected,
			(unsigned long long)sum.deferred,
			(unsigned long long)sum.quarantined);
		return CLI_FAIL;
	}
	return rc == GS_OK ? 0 : fail(c, rc, "sync");
}

static int conflict_list(struct gs_device *dev,
			 const char *unused,
			 gs_row_cb cb,
			 void *payload)
{
	(void)unused;
	return gs_conflict_list(dev, cb, payload);
}

static int write_out(const char *text, size_t len, void *payload)
{
	(void)payload;
	return fwrite(text, 1, len, stdout) == len ? 0 : CLI_FAIL;
}

/* One outbox entry decoded in full, row by row (what `inspect` prints for
 * a changeset file). */
static int
cmd_outbox_show(struct cli *c, struct gs_device *dev, const char *seq_text)
{
	uint8_t *data = NULL;
	size_t len = 0;
	char *end = NULL;
	unsigned long long seq;
	int rc;

	errno = 0;
	seq = strtoull(seq_text, &end, 10);
	if (errno != 0 || end == seq_text || *end != '\0' || seq == 0)
		return usage("outbox show takes a sequence number (see "
			     "gridsync outbox)");
	rc = gs_outbox_get(dev, seq, &data, &len);
	if (rc == GS_OK)
		rc = gs_inspect(c->ctx, data, len,
				c->json ? GS_INSPECT_JSON : 0, write_out, NULL);
	gs_free(c->ctx, data);
	return rc == GS_OK ? 0 : fail(c, rc, "outbox show");
}

/* A row's current values as a new outbox entry (after a quarantine). */
static int cmd_outbox_recover(struct cli *c,
			      struct gs_device *dev,
			      const char *table,
			      const char *id)
{
	uint64_t seq = 0;
	int rc = gs_outbox_recover(dev, table, id, &seq);

	if (rc != GS_OK)
		return fail(c, rc, "outbox recover");
	if (c->json)
		printf("{\"seq\":%llu}\n", (unsigned long long)seq);
	else
		printf("seq: %llu\n", (unsigned long long)seq);
	return 0;
}

static int cmd_status(struct cli *c, struct gs_device *dev)
{
	struct gs_status st;
	struct printer *p;
	char num[32];
	int rc = gs_device_status(dev, &st);

	if (rc != GS_OK)
		return fail(c, rc, "status");
	p = printer_new(c->json, false);
	printer_field(p, "device_id", st.device_id, true);
	printer_field(p, "worker_id", st.worker_id, true);
	printer_field(p, "role", st.role, true);
	printer_field(p, "server", st.server, true);
	printer_field(p, "scope", st.scope, true);
	snprintf(num, sizeof(num), "%d", st.schema_version);
	printer_field(p, "schema_version", num, false);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)st.outbox_depth);
	printer_field(p, "outbox_depth", num, false);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)st.outbox_bytes);
	printer_field(p, "outbox_bytes", num, false);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)st.quarantined);
	printer_field(p, "quarantined", num, false);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)st.last_seq);
	printer_field(p, "last_seq", num, false);
	snprintf(num, sizeof(num), "%016llx", (unsigned long long)st.hlc);
	printer_field(p, "hlc", num, true);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)st.cursor);
	printer_field(p, "cursor", num, false);
	printer_field(p, "last_sync", st.last_sync[0] ? st.last_sync : NULL,
		      true);
	if (st.clock_known) {
		char words[96];

		snprintf(num, sizeof(num), "%lld",
			 (long long)st.clock_offset_ms);
		printer_field(p, "clock_offset_ms", num, false);
		clock_words(words, sizeof(words), st.clock_offset_ms);
		printer_field(p, "clock", words, true);
		printer_field(p, "clock_skewed",
			      st.clock_skewed ? "true" : "false", false);
	} else {
		printer_field(p, "clock_offset_ms", NULL, false);
	}
	snprintf(num, sizeof(num), "%llu", (unsigned long long)st.households);
	printer_field(p, "households", num, false);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)st.visits);
	printer_field(p, "visits", num, false);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)st.issues);
	printer_field(p, "issues", num, false);
	printer_field(p, "content_hash", st.content_hash, true);
	snprintf(num, sizeof(num), "%llu",
		 (unsigned long long)st.scope_version);
	printer_field(p, "scope_version", num, false);
	printer_field(p, "rescope", st.rescope ? "true" : "false", false);
	snprintf(num, sizeof(num), "%llu",
		 (unsigned long long)st.purge_pending);
	printer_field(p, "purge_pending", num, false);
	printer_flush(p, stdout);
	printer_free(p);
	return 0;
}

static int run(struct cli *c, struct args *a)
{
	struct gs_device *dev = NULL;
	struct opts o;
	const char *cmd;
	int rc;

	/* Global options before the command. */
	for (; a->i < a->argc && strncmp(a->argv[a->i], "--", 2) == 0; a->i++) {
		if (strcmp(a->argv[a->i], "--json") == 0)
			c->json = true;
		else if (strcmp(a->argv[a->i], "--db") == 0 &&
			 a->i + 1 < a->argc)
			c->db_path = a->argv[++a->i];
		else if (strcmp(a->argv[a->i], "--help") == 0 ||
			 strcmp(a->argv[a->i], "-h") == 0) {
			fputs(usage_text, stdout);
			return 0;
		} else
			return usage("unknown global option");
	}
	if (a->i >= a->argc)
		return usage(NULL);
	cmd = a->argv[a->i++];
	if (strcmp(cmd, "inspect") == 0) /* no database; own arguments */
		return cmd_inspect(c->ctx, c->json, a->argc - a->i,
				   a->argv + a->i);
	rc = parse_opts(c, a, &o);
	if (rc != 0)
		return rc;
	if (strcmp(cmd, "help") == 0) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (strcmp(cmd, "init") == 0)
		return cmd_init(c, &o);
	if (strcmp(cmd, "household") != 0 && strcmp(cmd, "resident") != 0 &&
	    strcmp(cmd, "visit") != 0 && strcmp(cmd, "issue") != 0 &&
	    strcmp(cmd, "status") != 0 && strcmp(cmd, "outbox") != 0 &&
	    strcmp(cmd, "category") != 0 && strcmp(cmd, "sync") != 0 &&
	    strcmp(cmd, "conflicts") != 0) {
		fprintf(stderr, "gridsync: unknown command %s\n", cmd);
		return usage(NULL);
	}
	rc = open_device(c, &dev);
	if (rc != 0)
		return rc;
	if (strcmp(cmd, "household") == 0 || strcmp(cmd, "resident") == 0)
		rc = cmd_record(c, dev, cmd, &o);
	else if (strcmp(cmd, "visit") == 0)
		rc = cmd_visit(c, dev, &o);
	else if (strcmp(cmd, "issue") == 0)
		rc = cmd_issue(c, dev, &o);
	else if (strcmp(cmd, "sync") == 0)
		rc = cmd_sync(c, dev, &o);
	else if (strcmp(cmd, "conflicts") == 0)
		rc = o.n == 0 && o.n_pos == 0
			     ? list_with(c, dev, "conflict", true,
					 conflict_list, NULL, "conflicts")
			     : usage("conflicts takes no arguments");
	else if (strcmp(cmd, "category") == 0)
		rc = o.n == 0 && o.n_pos == 1 && strcmp(o.pos[0], "list") == 0
			     ? list_with(c, dev, "category", true,
					 category_list, NULL, "category list")
			     : usage("category list");
	else if (strcmp(cmd, "status") == 0)
		rc = o.n == 0 && o.n_pos == 0 ? cmd_status(c, dev)
					      : usage("status takes no "
						      "arguments");
	else if (o.n == 0 && o.n_pos == 2 && strcmp(o.pos[0], "show") == 0)
		rc = cmd_outbox_show(c, dev, o.pos[1]);
	else if (o.n == 0 && o.n_pos == 3 && strcmp(o.pos[0], "recover") == 0)
		rc = cmd_outbox_recover(c, dev, o.pos[1], o.pos[2]);
	else
		rc = o.n == 0 && o.n_pos == 0
			     ? list_with(c, dev, "outbox", true, outbox_list,
					 NULL, "outbox")
			     : usage("outbox | outbox show SEQ | outbox "
				     "recover TABLE ID");
	gs_device_close(dev);
	return rc;
}

int main(int argc, char **argv)
{
	struct cli c = { NULL, NULL, false };
	struct args a = { argc, argv, 1 };
	int rc;

	c.db_path = getenv("GS_DB");
	if (gs_ctx_new(&c.ctx, NULL) != GS_OK) {
		fputs("gridsync: out of memory\n", stderr);
		return CLI_FAIL;
	}
	if (getenv("GS_LOG") != NULL)
		gs_ctx_set_log(c.ctx, gs_log_stderr,
			       strcmp(getenv("GS_LOG"), "debug") == 0
				       ? GS_LOG_DEBUG
				       : GS_LOG_INFO,
			       NULL);
	rc = run(&c, &a);
	gs_ctx_free(c.ctx);
	return rc;
}
