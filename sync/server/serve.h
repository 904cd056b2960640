/* gridsyncd's serving loop (private to sync/server/). */
#ifndef GS_SERVER_SERVE_H
#define GS_SERVER_SERVE_H

#include <gridsync/journal.h>
#include <gridsync/store.h>
#include <gridsync/transport.h>

struct serve_opts {
	const char *db_path;
	const char *listen;      /* addr:port */
	const char *journal_dir; /* NULL: no journal */
	const char *pki_dir;     /* NULL with insecure */
	const char *ready_file;  /* write the bound port here once listening */
	bool insecure;
	uint64_t idle_ms;
	uint64_t handshake_ms;     /* TLS and Hello done within this */
	uint64_t stall_ms;         /* replies unread this long: disconnect */
	uint64_t journal_every_ms; /* group-commit interval */
};

/* Serve until SIGINT or SIGTERM. */
int serve_run(struct gs_ctx *ctx, const struct serve_opts *o);

#endif
