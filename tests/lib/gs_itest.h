/*
 * Integration-test harness: a real gridsyncd process on 127.0.0.1 with a
 * real store (and journal), real device databases, in a temp directory.
 * Readiness is a file the server writes once it listens (no sleeps);
 * every wait is bounded.
 */
#ifndef GS_ITEST_H
#define GS_ITEST_H

#include <sys/types.h>

#include <gridsync/db.h>
#include <gridsync/gridsync.h>

#include "gs_test.h"

struct gs_itest_server {
	char dir[4096];
	char db[4096];
	char journal[4096];
	char ready[4096];
	char addr[64];
	int port;
	pid_t pid;
	bool tls;
	/* More `serve` arguments (NULL-terminated), e.g. "--stall-ms",
	 * "2000"; set before gs_itest_server_start. */
	const char *serve_args[9];
};

/* VmHWM (peak) and VmRSS (now) of a process, in KiB, from
 * /proc/PID/status; fails the test if they cannot be read. */
void gs_itest_rss(pid_t pid, long *hwm_kib, long *rss_kib);

/* Path of a built program: GS_BINDIR/bin/<name>. */
const char *gs_itest_bin(const char *name);

/* Run a program to completion; returns its exit status (-1 if killed).
 * argv[0] is the program name (resolved with gs_itest_bin). Output goes to
 * out_path (stdout) and err_path (stderr) unless NULL (then inherited). */
int gs_itest_run(const char *const *argv,
		 const char *out_path,
		 const char *err_path);

/* `gridsyncd init` + `seed --profile demo` into dir. */
void gs_itest_server_create(struct gs_itest_server *s,
			    const char *dir,
			    bool tls);

/* Start `gridsyncd serve` (port 0) and wait until it listens. extra_env
 * (may be NULL) is "NAME=VALUE" set for the server only. */
void gs_itest_server_start(struct gs_itest_server *s, const char *extra_env);

/* SIGTERM and wait for it to exit; returns its exit status. */
int gs_itest_server_stop(struct gs_itest_server *s);

/* Wait for the server process to exit by itself (crash tests). */
int gs_itest_server_wait(struct gs_itest_server *s);

/* Workers of the seeded demo profile. */
struct gs_itest_workers {
	char gw_a[64];   /* responsible GW of micro-grid A */
	char gw_b[64];   /* full-time (assistant) GW also on grid A */
	char gw_c[64];   /* responsible GW of another micro-grid */
	char grid_a[32]; /* grid code of A */
	char grid_c[32]; /* grid code of C's grid */
	char sc[64];     /* a street-centre worker */
	char street[32]; /* the street's admin code */
};

void gs_itest_workers(struct gs_itest_server *s, struct gs_itest_workers *w);

/*
 * Enrol a device and create its database (empty; its first sync
 * bootstraps it). With TLS the bundle from `gridsyncd enroll` is used,
 * else --insecure. The returned device is open on ctx.
 */
struct gs_device *gs_itest_device(struct gs_itest_server *s,
				  struct gs_ctx *ctx,
				  const char *device_id,
				  const char *worker_id,
				  const char *scope);

/* gs_device_sync --once; fails the test on error. */
void gs_itest_sync(struct gs_device *dev, struct gs_sync_summary *sum);

/* One integer from the server's database, read-only while it runs; arg
 * (may be NULL) binds the first parameter. */
int64_t gs_itest_server_int(struct gs_itest_server *s,
			    const char *sql,
			    const char *arg);

/* The device's content hash and the server's hash of the device's scope
 * (computed on the server's database, read-only, while it runs). */
void gs_itest_device_hash(struct gs_device *dev, char out[65]);
void gs_itest_scope_hash(struct gs_itest_server *s,
			 const char *device_id,
			 char out[65]);

#endif
