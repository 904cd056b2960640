#include "gs_itest.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gridsync/store.h>
#include <gridsync/synth.h>

const char *gs_itest_bin(const char *name)
{
	static char ring[4][4096];
	static unsigned next;
	const char *bindir = getenv("GS_BINDIR");
	char *p = ring[next++ % 4];

	snprintf(p, sizeof(ring[0]), "%s/bin/%s",
		 bindir != NULL ? bindir : GS_TEST_BINDIR, name);
	return p;
}

static pid_t spawn(const char *const *argv,
		   const char *out_path,
		   const char *err_path,
		   const char *extra_env)
{
	const char *args[64];
	pid_t pid;
	int n = 0;

	args[n++] = gs_itest_bin(argv[0]);
	for (int i = 1; argv[i] != NULL && n < 63; i++)
		args[n++] = argv[i];
	args[n] = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* A failed assertion leaves the test without stopping its
		 * server: the server must not outlive the test process. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() == 1)
			_exit(126);
		if (out_path != NULL) {
			int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC,
				      0600);
			dup2(fd, 1);
		}
		if (err_path != NULL) {
			int fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC,
				      0600);
			dup2(fd, 2);
		}
		if (extra_env != NULL)
			putenv((char *)extra_env);
		execv(args[0], (char *const *)args);
		_exit(127);
	}
	return pid;
}

static int wait_status(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int gs_itest_run(const char *const *argv,
		 const char *out_path,
		 const char *err_path)
{
	return wait_status(spawn(argv, out_path, err_path, NULL));
}

void gs_itest_server_create(struct gs_itest_server *s,
			    const char *dir,
			    bool tls)
{
	memset(s, 0, sizeof(*s));
	s->tls = tls;
	snprintf(s->dir, sizeof(s->dir), "%s", dir);
	snprintf(s->db, sizeof(s->db), "%s/server.db", dir);
	snprintf(s->journal, sizeof(s->journal), "%s/journal.git", dir);
	snprintf(s->ready, sizeof(s->ready), "%s/ready", dir);
	{
		const char *init[] = { "gridsyncd", "init",     "--db", s->db,
				       "--journal", s->journal, NULL };
		const char *seed[] = { "gridsyncd", "seed", "--db", s->db,
				       "--profile", "demo", NULL };

		assert_int_equal(gs_itest_run(init, "/dev/null", NULL), 0);
		assert_int_equal(gs_itest_run(seed, "/dev/null", NULL), 0);
	}
}

void gs_itest_server_start(struct gs_itest_server *s, const char *extra_env)
{
	char listen[64];
	const char *tls_args[] = { "gridsyncd", "serve",    "--db",
				   s->db,       "--listen", listen,
				   "--journal", s->journal, "--ready-file",
				   s->ready,    NULL };
	const char *plain_args[] = { "gridsyncd", "serve",      "--db",
				     s->db,       "--listen",   listen,
				     "--journal", s->journal,   "--ready-file",
				     s->ready,    "--insecure", NULL };
	uint64_t deadline = gs__clock_mono_ns() + 20ull * 1000000000ull;
	const char *args[32];
	size_t n = 0;
	char err[4200];

	for (const char *const *a = s->tls ? tls_args : plain_args; *a; a++)
		args[n++] = *a;
	for (size_t i = 0; s->serve_args[i] != NULL && n < 31; i++)
		args[n++] = s->serve_args[i];
	args[n] = NULL;
	/* A restart keeps the port: enrolled devices remember the address. */
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", s->port);
	unlink(s->ready);
	snprintf(err, sizeof(err), "%s/server.log", s->dir);
	s->pid = spawn(args, "/dev/null", err, extra_env);
	/* Wait for the condition (the ready file), bounded. */
	for (;;) {
		FILE *f = fopen(s->ready, "r");
		int status;

		if (f != NULL) {
			int ok = fscanf(f, "%d", &s->port) == 1;

			fclose(f);
			if (ok)
				break;
		}
		if (waitpid(s->pid, &status, WNOHANG) == s->pid)
			fail_msg("gridsyncd exited before listening (see %s)",
				 err);
		if (gs__clock_mono_ns() > deadline)
			fail_msg("gridsyncd did not listen within 20 s");
		{
			struct timespec ts = { 0, 2000000 };

			nanosleep(&ts, NULL); /* poll interval, not a wait */
		}
	}
	snprintf(s->addr, sizeof(s->addr), "127.0.0.1:%d", s->port);
}

int gs_itest_server_stop(struct gs_itest_server *s)
{
	int rc;

	if (s->pid <= 0)
		return 0;
	kill(s->pid, SIGTERM);
	rc = wait_status(s->pid);
	s->pid = 0;
	return rc;
}

int gs_itest_server_wait(struct gs_itest_server *s)
{
	uint64_t deadline = gs__clock_mono_ns() + 30ull * 1000000000ull;
	int st;

	/* Bounded: a server that does not exit by itself fails the test. */
	while (waitpid(s->pid, &st, WNOHANG) == 0) {
		struct timespec ts = { 0, 5000000 };

		if (gs__clock_mono_ns() > deadline) {
			kill(s->pid, SIGKILL);
			waitpid(s->pid, &st, 0);
			s->pid = 0;
			fail_msg("gridsyncd did not exit within 30 s");
		}
		nanosleep(&ts, NULL); /* poll interval, not a wait */
	}
	s->pid = 0;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

struct pick {
	struct gs_itest_workers *w;
	char first_micro_resp_grid[32];
};

static int pick_worker(const struct gs_synth_worker_info *info, void *payload)
{
	struct gs_itest_workers *w = payload;

	if (strcmp(info->role, "GW") == 0 &&
	    strcmp(info->duties, "responsible") == 0) {
		if (w->gw_a[0] == '\0') {
			snprintf(w->gw_a, sizeof(w->gw_a), "%s", info->id);
			snprintf(w->grid_a, sizeof(w->grid_a), "%s",
				 info->grid_codes);
		} else if (w->gw_c[0] == '\0' &&
			   strcmp(info->grid_codes, w->grid_a) != 0) {
			snprintf(w->gw_c, sizeof(w->gw_c), "%s", info->id);
			snprintf(w->grid_c, sizeof(w->grid_c), "%s",
				 info->grid_codes);
		}
	}
	if (strcmp(info->role, "SC") == 0 && w->sc[0] == '\0')
		snprintf(w->sc, sizeof(w->sc), "%s", info->id);
	return 0;
}

/* The full-time GW assisting on grid A. */
static int pick_assistant(const struct gs_synth_worker_info *info,
			  void *payload)
{
	struct gs_itest_workers *w = payload;

	if (w->gw_b[0] == '\0' && strcmp(info->role, "GW") == 0 &&
	    strstr(info->duties, "assistant") != NULL &&
	    strstr(info->grid_codes, w->grid_a) != NULL)
		snprintf(w->gw_b, sizeof(w->gw_b), "%s", info->id);
	return 0;
}

void gs_itest_workers(struct gs_itest_server *s, struct gs_itest_workers *w)
{
	struct gs_ctx *ctx = gs_test_ctx_new(NULL);
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;

	memset(w, 0, sizeof(*w));
	assert_gs_ok(gs__db_open(&db, ctx, s->db, GS_DB_READONLY));
	assert_gs_ok(gs__synth_workers(ctx, db, pick_worker, w));
	assert_gs_ok(gs__synth_workers(ctx, db, pick_assistant, w));
	/* The street of grid A: a 12-digit admin code, level street. */
	assert_int_equal(sqlite3_prepare_v2(db,
					    "SELECT code FROM admin_area WHERE"
					    " level = 'street' LIMIT 1",
					    -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	snprintf(w->street, sizeof(w->street), "%s",
		 sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	gs__db_close(db);
	gs_ctx_free(ctx);
	assert_true(w->gw_a[0] && w->gw_b[0] && w->gw_c[0] && w->sc[0]);
}

struct gs_device *gs_itest_device(struct gs_itest_server *s,
				  struct gs_ctx *ctx,
				  const char *device_id,
				  const char *worker_id,
				  const char *scope)
{
	struct gs_device_init_opts io = GS_DEVICE_INIT_OPTS_INIT;
	struct gs_device *dev = NULL;
	char path[4200];
	char bundle[4200];
	int rc;

	snprintf(path, sizeof(path), "%s/%s.db", s->dir, device_id);
	snprintf(bundle, sizeof(bundle), "%s/%s.bundle", s->dir, device_id);
	{
		const char *enroll[] = { "gridsyncd", "enroll",   "--db",
					 s->db,       "--device", device_id,
					 "--worker",  worker_id,  "--scope",
					 scope,       "--out",    bundle,
					 "--server",  s->addr,    NULL };

		assert_int_equal(gs_itest_run(enroll, "/dev/null", NULL), 0);
	}
	if (s->tls) {
		io.bundle = bundle;
	} else {
		io.device_id = device_id;
		io.worker_id = worker_id;
		io.scope = scope;
		io.server = s->addr;
		io.insecure = 1;
	}
	rc = gs_device_init(&dev, ctx, path, &io);
	if (rc != GS_OK)
		fail_msg("device %s: %s", device_id, gs_ctx_errmsg(ctx));
	return dev;
}

void gs_itest_sync(struct gs_device *dev, struct gs_sync_summary *sum)
{
	struct gs_sync_opts so = GS_SYNC_OPTS_INIT;
	struct gs_sync_summary local;
	struct gs_status st;
	int rc;

	so.once = 1;
	so.timeout_ms = 30000;
	rc = gs_device_sync(dev, &so, sum != NULL ? sum : &local);
	if (rc != GS_OK) {
		gs_device_status(dev, &st);
		fail_msg("sync of %s failed: %s", st.device_id,
			 gs_strerror(rc));
	}
}

void gs_itest_device_hash(struct gs_device *dev, char out[65])
{
	struct gs_status st;

	assert_gs_ok(gs_device_status(dev, &st));
	memcpy(out, st.content_hash, 65);
}

void gs_itest_scope_hash(struct gs_itest_server *s,
			 const char *device_id,
			 char out[65])
{
	struct gs_ctx *ctx = gs_test_ctx_new(NULL);
	struct gs_store *st = NULL;
	struct gs_store_device dev;

	assert_gs_ok(gs__store_open(&st, ctx, s->db, 0));
	assert_gs_ok(gs__store_device_get(st, device_id, &dev));
	assert_gs_ok(gs__store_scope_hash(st, &dev, out));
	gs__store_close(st);
	gs_ctx_free(ctx);
}

int64_t
gs_itest_server_int(struct gs_itest_server *s, const char *sql, const char *arg)
{
	struct gs_ctx *ctx = gs_test_ctx_new(NULL);
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t n = -1;

	assert_gs_ok(gs__db_open(&db, ctx, s->db, GS_DB_READONLY));
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (arg != NULL)
		sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	gs__db_close(db);
	gs_ctx_free(ctx);
	return n;
}

void gs_itest_rss(pid_t pid, long *hwm_kib, long *rss_kib)
{
	char path[64];
	char line[256];
	FILE *f;

	*hwm_kib = *rss_kib = -1;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		fail_msg("cannot read %s", path);
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "VmHWM:", 6) == 0)
			*hwm_kib = strtol(line + 6, NULL, 10);
		else if (strncmp(line, "VmRSS:", 6) == 0)
			*rss_kib = strtol(line + 6, NULL, 10);
	}
	fclose(f);
	if (*hwm_kib < 0 || *rss_kib < 0)
		fail_msg("no VmHWM/VmRSS in %s", path);
}
