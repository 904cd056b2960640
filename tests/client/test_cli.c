/*
 * The gridsync program, run as a worker would: JSON output, and bad input
 * (unknown household, a transition not allowed offline, missing fields,
 * non-UTF-8 text, unknown options) refused with a clear message on stderr,
 * a non-zero exit, and the database unchanged.
 */
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gs_test.h"

struct run {
	int status; /* exit code, or -1 if killed */
	char out[65536];
	char err[4096];
};

static char *dir;
static char db[4096];
static char bin[4096];

static void slurp(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "rb");
	size_t n = 0;

	if (f != NULL) {
		n = fread(buf, 1, cap - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
}

/* Run bin with argv (NULL-terminated, argv[0] excluded). */
static void run_cli(struct run *r, const char *const *args)
{
	const char *argv[64];
	char out_path[4200];
	char err_path[4200];
	int n = 0;
	pid_t pid;
	int st;

	argv[n++] = bin;
	argv[n++] = "--db";
	argv[n++] = db;
	for (int i = 0; args[i] != NULL; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	snprintf(out_path, sizeof(out_path), "%s/out", dir);
	snprintf(err_path, sizeof(err_path), "%s/err", dir);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fo = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int fe = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		dup2(fo, 1);
		dup2(fe, 2);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	slurp(out_path, r->out, sizeof(r->out));
	slurp(err_path, r->err, sizeof(r->err));
}

#define CLI(r, ...)                                          \
	do {                                                 \
		const char *args_[] = { __VA_ARGS__, NULL }; \
		run_cli((r), args_);                         \
	} while (0)

/* "content_hash" and "outbox_depth" from status --json. */
static void fingerprint(char *out, size_t cap)
{
	static struct run r;
	const char *h;
	const char *d;

	CLI(&r, "status", "--json");
	assert_int_equal(r.status, 0);
	h = strstr(r.out, "\"content_hash\":");
	d = strstr(r.out, "\"outbox_depth\":");
	assert_non_null(h);
	assert_non_null(d);
	snprintf(out, cap, "%.80s|%.24s", h, d);
}

static char household[64];

static int setup(void **state)
{
	static struct run r;
	const char *p;
	const char *bindir = getenv("GS_BINDIR");

	(void)state;
	dir = gs_test_tmpdir();
	snprintf(db, sizeof(db), "%s/cli.db", dir);
	snprintf(bin, sizeof(bin), "%s/bin/gridsync",
		 bindir != NULL ? bindir : GS_TEST_BINDIR);
	CLI(&r, "init", "--device", "cli-dev-1", "--insecure", "--demo");
	if (r.status != 0)
		fail_msg("init failed: %s", r.err);
	CLI(&r, "household", "list", "--json");
	assert_int_equal(r.status, 0);
	p = strstr(r.out, "\"household\":[{\"id\":\"");
	assert_non_null(p);
	p += strlen("\"household\":[{\"id\":\"");
	memcpy(household, p, 36);
	household[36] = '\0';
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	gs_test_tmpdir_free(dir);
	return 0;
}

static void records_and_lists(void **state)
{
	static struct run r;
	char id[64];
	const char *p;

	(void)state;
	CLI(&r, "visit", "add", "--household", household, "--kind", "care",
	    "--outcome", "met", "--summary", "老人身体状况良好，已检查燃气阀门",
	    "--json");
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "\"id\":\""));
	CLI(&r, "household", "edit", household, "--note", "楼栋长：王阿姨",
	    "--size", "2");
	assert_int_equal(r.status, 0);
	CLI(&r, "household", "show", household, "--json");
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "\"note\":\"楼栋长：王阿姨\""));
	assert_non_null(strstr(r.out, "\"visit\":[{"));
	CLI(&r, "issue", "report", "--category", "010101", "--title",
	    "楼道堆放纸箱杂物", "--household", household, "--json");
	if (r.status != 0) {
		/* The category code is the generator's; take one it has. */
		CLI(&r, "issue", "list", "--json");
		fail_msg("report failed: %s", r.err);
	}
	p = strstr(r.out, "\"id\":\"");
	assert_non_null(p);
	memcpy(id, p + 6, 36);
	id[36] = '\0';
	CLI(&r, "issue", "list", "--state", "reported", "--json");
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, id));
	CLI(&r, "outbox", "--json");
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "visit+1"));
	assert_non_null(strstr(r.out, "issue+1 issue_event+2"));
	CLI(&r, "outbox");
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "seq"));
	/* One entry decoded in full: the visit saved first. */
	CLI(&r, "outbox", "show", "1");
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "visit INSERT"));
	assert_non_null(strstr(r.out, "老人身体状况良好"));
	CLI(&r, "outbox", "show", "999");
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.err, "no pending outbox entry"));
	CLI(&r, "status");
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "outbox_depth: 3"));
}

/* Every case: exit code, a word of the message, database unchanged. */
static void bad_input_changes_nothing(void **state)
{
	static struct run r;
	char before[256];
	char after[256];
	char issue[64];
	const char *p;
	struct {
		int code;
		const char *msg;
		const char *args[16];
	} cases[] = {
		{ 1,
		  "no household",
		  { "visit", "add", "--household", "nope", "--kind", "routine",
		    "--outcome", "met", NULL } },
		{ 2,
		  "needs --household",
		  { "visit", "add", "--kind", "routine", NULL } },
		{ 1,
		  "UTF-8",
		  { "visit", "add", "--household", household, "--kind",
		    "routine", "--outcome", "met", "--summary", "\xff\xfe bad",
		    NULL } },
		{ 1,
		  "kind must be",
		  { "visit", "add", "--household", household, "--kind", "party",
		    "--outcome", "met", NULL } },
		{ 2,
		  "unknown option",
		  { "visit", "add", "--household", household, "--knd",
		    "routine", NULL } },
		{ 1,
		  "no field",
		  { "household", "edit", household, "--colour", "red", NULL } },
		{ 1,
		  "whole number",
		  { "household", "edit", household, "--size", "many", NULL } },
		{ 2,
		  "needs --category",
		  { "issue", "report", "--title", "t", NULL } },
		{ 1,
		  "no issue",
		  { "issue", "move", "nope", "--to", "handled", NULL } },
		{ 2, "unknown command", { "frobnicate", NULL } },
		{ 1,
		  "already exists",
		  { "init", "--device", "x", "--insecure", NULL } },
	};

	(void)state;
	CLI(&r, "issue", "report", "--category", "010101", "--title", "t",
	    "--household", household, "--json");
	assert_int_equal(r.status, 0);
	p = strstr(r.out, "\"id\":\"");
	memcpy(issue, p + 6, 36);
	issue[36] = '\0';
	fingerprint(before, sizeof(before));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		run_cli(&r, cases[i].args);
		if (r.status != cases[i].code ||
		    strstr(r.err, cases[i].msg) == NULL)
			fail_msg("case %zu: exit %d (want %d), stderr: %s", i,
				 r.status, cases[i].code, r.err);
		assert_int_equal(strlen(r.out), 0);
	}
	/* A move a grid worker may not make offline. */
	CLI(&r, "issue", "move", issue, "--to", "accepted");
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.err, "role GW may not move"));
	CLI(&r, "issue", "move", issue, "--to", "self_resolved");
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.err, "needs a note"));
	fingerprint(after, sizeof(after));
	assert_string_equal(before, after);
	/* No database at all. */
	snprintf(db, sizeof(db), "%s/missing.db", dir);
	CLI(&r, "status");
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.err, "gridsync init"));
	/* Plain TCP only to this machine: a server elsewhere is refused
	 * before any database is made. */
	snprintf(db, sizeof(db), "%s/remote.db", dir);
	CLI(&r, "init", "--device", "cli-dev-9", "--insecure", "--server",
	    "192.0.2.10:7443");
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.err, "only reaches a server on this machine"));
	assert_int_not_equal(access(db, F_OK), 0);
	CLI(&r, "init", "--device", "cli-dev-9", "--insecure", "--server",
	    "localhost.example.org:7443");
	assert_int_equal(r.status, 1);
	assert_int_not_equal(access(db, F_OK), 0);
	CLI(&r, "init", "--device", "cli-dev-9", "--insecure", "--server",
	    "127.0.0.1.example.org:7443");
	assert_int_equal(r.status, 1);
	assert_int_not_equal(access(db, F_OK), 0);
	CLI(&r, "init", "--device", "cli-dev-9", "--insecure", "--server",
	    "127.0.0.1:7443");
	assert_int_equal(r.status, 0);
	snprintf(db, sizeof(db), "%s/cli.db", dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(records_and_lists),
		cmocka_unit_test(bad_input_changes_nothing),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
