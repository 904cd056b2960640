/*
 * gridsync error codes.
 *
 * Every fallible call returns an int: GS_OK (0) or a negative GS_E* code.
 * Codes and their one-line descriptions come from one X-macro table so that
 * the enum and gs_strerror() can never disagree. Detail text for the last
 * failure lives in the context object (gs_ctx_errmsg), never in a global.
 */
#ifndef GRIDSYNC_ERR_H
#define GRIDSYNC_ERR_H

#if defined(GS_BUILDING) && defined(__GNUC__)
#define GS_API __attribute__((visibility("default")))
#else
#define GS_API
#endif

/* X(name, code, text): text says what went wrong, not what to do. */
#define GS_ERR_MAP(X)                                   \
	X(NOMEM, -2, "out of memory")                   \
	X(INVAL, -3, "invalid argument")                \
	X(NOTFOUND, -4, "not found")                    \
	X(CONFLICT, -5, "conflicting change")           \
	X(PROTO, -6, "malformed or unexpected message") \
	X(AGAIN, -7, "need more input")                 \
	X(CANCELED, -8, "operation canceled")           \
	X(TIMEDOUT, -9, "timed out")                    \
	X(IO, -10, "I/O error")                         \
	X(CORRUPT, -11, "stored data is corrupt")       \
	X(EXISTS, -12, "already exists")                \
	X(DENIED, -13, "not allowed")                   \
	X(SCHEMA, -14, "schema version mismatch")       \
	X(STATE, -15, "transition not allowed")         \
	X(FULL, -16, "disk full")                       \
	X(TOOBIG, -17, "too large")                     \
	X(BUSY, -18, "busy, try again later")

enum gs_err {
	GS_OK = 0,
	GS_ERROR = -1,
#define GS_ERR_ENUM(name, code, text) GS_E##name = (code),
	GS_ERR_MAP(GS_ERR_ENUM)
#undef GS_ERR_ENUM
};

/* The fixed description of err; never NULL, static storage. */
GS_API const char *gs_strerror(int err);

/* The symbolic name of err ("GS_EPROTO"); never NULL, static storage. */
GS_API const char *gs_errname(int err);

#endif
