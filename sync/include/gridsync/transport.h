/*
 * Frames over TCP with libuv, in plain text (loopback tests, --insecure)
 * or TLS 1.3 with mutual authentication (OpenSSL through memory BIOs). The
 * only file that touches sockets is sync/transport_uv.c. Loop thread only.
 *
 * A connection delivers whole frames: the 4-byte big-endian length is read
 * first and checked against the negotiated maximum before anything is
 * allocated, then exactly that many bytes (gs__frame_reader). Writes are
 * queued; gs__conn_queued() tells how many bytes wait, so a sender can
 * stop producing (backpressure). Deadlines: a connection that has not
 * finished its handshake (TCP + TLS) within the handshake timeout, or
 * that stays silent longer than the idle timeout, is closed with
 * GS_ETIMEDOUT.
 *
 * Signals: the first gs__conn_connect or gs__listen sets SIGPIPE to
 * SIG_IGN if it still has its default action (which would end the process
 * when a peer resets a connection we are writing to).
 *
 * Lifetime (libuv's handle model): a connection is freed only after its
 * close callback has run; gs__conn_close may be called at any time, also
 * from a frame callback, and the close callback then runs exactly once on
 * a later loop turn.
 */
#ifndef GRIDSYNC_TRANSPORT_H
#define GRIDSYNC_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include <gridsync/platform.h>

struct gs_tls;

/* A certificate serial in hex (RFC 5280: at most 20 octets) and a NUL. */
#define GS_CERT_SERIAL_HEX 48
struct gs_conn;
struct gs_listener;

/* ---- TLS configuration -------------------------------------------------- */

/*
 * A TLS 1.3 context from PEM files: the district CA (to verify the peer),
 * our certificate and key. A server requires a client certificate signed
 * by the CA; a client verifies the server certificate against the CA and
 * the host name or address it dialled. *out freed with gs__tls_free, after
 * every listener and connection using it has closed.
 *
 * Each PEM argument is either PEM text (it starts with "-----BEGIN", e.g.
 * the fields of a struct gs_bundle) or the path of a PEM file. ca_pem may
 * hold several certificates. A client may pass NULL for both cert_pem and
 * key_pem: it then has no certificate and every server refuses it (tests).
 * GS_EINVAL (unparsable PEM, key not matching the certificate),
 * GS_ENOTFOUND / GS_EIO (file), GS_ENOMEM; detail text in the ctx.
 */
int gs__tls_server_new(struct gs_tls **out,
		       struct gs_ctx *ctx,
		       const char *ca_pem,
		       const char *cert_pem,
		       const char *key_pem);
int gs__tls_client_new(struct gs_tls **out,
		       struct gs_ctx *ctx,
		       const char *ca_pem,
		       const char *cert_pem,
		       const char *key_pem);
void gs__tls_free(struct gs_tls *tls);

/* Judge the peer certificate's validity period at unix_s instead of the
 * system clock (a handheld whose clock is known to be wrong uses the last
 * server time it saw). For connections started afterwards. */
void gs__tls_set_verify_time(struct gs_tls *tls, int64_t unix_s);

/* ---- connections -------------------------------------------------------- */

struct gs_conn_cbs {
	/* TCP (and TLS) handshake done (status GS_OK) or failed. Client side
	 * only, exactly once; a failed connect is followed by on_close with
	 * the same status (GS_ECANCELED if closed before it was up). With
	 * TLS, GS_OK means the server has also accepted our certificate. */
	void (*on_connect)(struct gs_conn *c, int status, void *payload);
	/* One whole frame: the envelope bytes without the length prefix,
	 * borrowed for the call. Never called while paused or after
	 * gs__conn_close. On a TLS server the peer id is known before the
	 * first frame. */
	void (*on_frame)(struct gs_conn *c,
			 const uint8_t *data,
			 size_t len,
			 void *payload);
	/* All queued writes have been handed to the kernel (queued dropped
	 * to 0); not called once closing. */
	void (*on_drain)(struct gs_conn *c, void *payload);
	/* The connection is closed; status GS_OK for an orderly close by
	 * either side, else why (GS_EPROTO, GS_ETIMEDOUT, GS_EIO, GS_EDENIED
	 * for a failed certificate check). Runs exactly once; c is freed
	 * right after it returns. */
	void (*on_close)(struct gs_conn *c, int status, void *payload);
	void *payload;
};

struct gs_conn_opts {
	size_t max_frame;        /* GS_FRAME_MAX_DEFAULT if 0; clamped to
				  * GS_FRAME_MAX_CEILING */
	uint64_t handshake_ms;   /* 10,000 if 0; also bounds an orderly
				  * close */
	uint64_t idle_ms;        /* 60,000 if 0; UINT64_MAX: none */
	struct gs_tls *tls;      /* NULL: plain TCP; borrowed, must
				  * outlive the connection */
	const char *server_name; /* client: expected server name, or NULL to
				  * use the host dialled */
};

/* Dial host:port (IPv4, IPv6 in brackets, or a name resolved with
 * getaddrinfo; each address in turn). Returns GS_OK and later calls
 * on_connect, or an error (GS_EINVAL for a malformed address, GS_ENOMEM)
 * and never calls back. Every later failure, even an immediate refusal,
 * arrives through on_connect and on_close on a later loop turn. */
int gs__conn_connect(struct gs_conn **out,
		     struct gs_ctx *ctx,
		     uv_loop_t *loop,
		     const char *host_port,
		     const struct gs_conn_opts *opts,
		     const struct gs_conn_cbs *cbs);

/* Queue one frame: writes the 4-byte length and len bytes (copied).
 * Frames sent before the handshake is done wait for it. GS_EINVAL for
 * len 0, GS_ETOOBIG above max_frame, GS_ECANCELED once closing, GS_ENOMEM
 * (nothing queued, the connection stays up). An I/O error found here
 * closes the connection (on_close follows) and is returned too. */
int gs__conn_send(struct gs_conn *c, const uint8_t *data, size_t len);

/* Frame bytes (length prefixes included, TLS overhead not) queued and not
 * yet handed to the kernel. */
size_t gs__conn_queued(const struct gs_conn *c);

/* Bytes received and sent on the socket so far (TLS records included). */
void gs__conn_counters(const struct gs_conn *c,
		       uint64_t *rx_bytes,
		       uint64_t *tx_bytes);

/* The peer's authenticated identity: the CN of its certificate (TLS), or
 * NULL on a plain connection. Borrowed until close. */
const char *gs__conn_peer_id(const struct gs_conn *c);

/* The serial (upper-case hex) of the peer's certificate, like the peer id:
 * NULL without TLS or before the handshake. */
const char *gs__conn_peer_serial(const struct gs_conn *c);

/* The peer address as text ("127.0.0.1:4321", "[::1]:4321"); the address
 * dialled until the TCP connection is up. Borrowed until close. */
const char *gs__conn_peer_addr(const struct gs_conn *c);

/* Stop reading (and resume): for backpressure on the receive side. While
 * paused no on_frame runs and nothing more is read from the socket, so
 * the peer's sends eventually block. Frames already received are
 * delivered after a resume, on a later loop turn (never inside this
 * call). The handshake proceeds while paused. */
void gs__conn_pause(struct gs_conn *c, bool paused);

/* Deliver no more frames on this loop turn: the next ones come on a later
 * turn, after other connections had theirs (fairness between peers that
 * pipeline many requests). A later gs__conn_pause overrides it. */
void gs__conn_yield(struct gs_conn *c);

/* Change the idle deadline (0: the default, UINT64_MAX: none), counted
 * from the last received byte. */
void gs__conn_set_idle(struct gs_conn *c, uint64_t idle_ms);

/* Close: flush queued writes (orderly, TLS close_notify) then close, or
 * close at once when status is an error. on_close follows, on a later
 * loop turn, with status (or the first failure that happened before it).
 * Safe from inside any callback of c; no-op once closing. */
void gs__conn_close(struct gs_conn *c, int status);

/* Caller data. */
void gs__conn_set_data(struct gs_conn *c, void *data);
void *gs__conn_data(const struct gs_conn *c);

/* ---- listener ----------------------------------------------------------- */

/* A new connection; install its callbacks with gs__conn_set_cbs before
 * returning. Called at TCP accept, before the TLS handshake, so that a
 * refused or timed-out handshake is reported through on_close too. */
typedef void (*gs_accept_cb)(struct gs_listener *l,
			     struct gs_conn *c,
			     void *payload);

void gs__conn_set_cbs(struct gs_conn *c, const struct gs_conn_cbs *cbs);

/* Listen on addr:port, numeric ("127.0.0.1:0" picks a port, "[::]:7443").
 * opts applies to every accepted connection (server_name is ignored).
 * GS_EINVAL, GS_EBUSY (address in use), GS_EDENIED, GS_EIO, GS_ENOMEM; on
 * failure nothing is called back (the handle is released on the loop). A
 * connection that cannot be allocated is accepted and closed at once. */
int gs__listen(struct gs_listener **out,
	       struct gs_ctx *ctx,
	       uv_loop_t *loop,
	       const char *addr_port,
	       const struct gs_conn_opts *opts,
	       gs_accept_cb cb,
	       void *payload);

/* The port actually bound. */
int gs__listener_port(const struct gs_listener *l);

/* Stop accepting and close the listening socket; cb (may be NULL) runs
 * once it is closed, then l is freed. Open connections are not touched. */
void gs__listener_close(struct gs_listener *l,
			void (*cb)(void *payload),
			void *payload);

/* ---- enrolment (PKI) ---------------------------------------------------- */

/*
 * Create the district CA and the server's certificate in dir (ca.pem,
 * ca.key, server.pem, server.key; keys 0600), ECDSA P-256, the server
 * certificate valid for "localhost", 127.0.0.1 and ::1 plus names (a
 * NULL-terminated list of DNS names or IP literals, may be NULL; at most
 * 32). Does nothing if they exist. Creates dir (0700) if missing. A new
 * server certificate is issued if only the server files are missing.
 * GS_EINVAL (bad name), GS_ECORRUPT (a certificate without its key),
 * GS_EIO / GS_EFULL.
 */
int gs__pki_init(struct gs_ctx *ctx, const char *dir, const char *const *names);

/*
 * Issue a device certificate (CN = device_id) signed by the CA in dir and
 * write a bundle file at out_path (0600): the text format read by
 * gs__bundle_read, holding device id, worker id, scope, server address,
 * the CA certificate, the device certificate and its private key (format
 * described atop sync/pki.c). Ids: 1-64 characters of [A-Za-z0-9._:@-];
 * scope and server: 1-255 printable ASCII characters without spaces.
 * GS_EINVAL, GS_EEXISTS (out_path exists: bundles are never overwritten),
 * GS_ENOTFOUND (no CA in dir), GS_EIO / GS_EFULL.
 */
int gs__pki_enroll(struct gs_ctx *ctx,
		   const char *dir,
		   const char *device_id,
		   const char *worker_id,
		   const char *scope,
		   const char *server,
		   const char *out_path);

/* The same, giving the new certificate's serial (upper-case hex, what
 * gs__conn_peer_serial reports for it) in serial (48 bytes are enough). */
int gs__pki_enroll_serial(struct gs_ctx *ctx,
			  const char *dir,
			  const char *device_id,
			  const char *worker_id,
			  const char *scope,
			  const char *server,
			  const char *out_path,
			  char *serial,
			  size_t serial_cap);

struct gs_bundle {
	char *device_id;
	char *worker_id;
	char *scope;
	char *server;
	char *ca_pem;
	char *cert_pem;
	char *key_pem;
};

/*
 * Read and check a bundle: *out is filled only on success and released
 * with gs__bundle_fini (which wipes the key; accepts a zeroed struct).
 * GS_ENOTFOUND (no file), GS_ECORRUPT (damaged or inconsistent: checksum,
 * layout, PEM, key/certificate/CA mismatch, CN not the device id),
 * GS_EIO, GS_ENOMEM; detail text in the ctx names the problem.
 */
int gs__bundle_read(struct gs_bundle *out,
		    struct gs_ctx *ctx,
		    const char *path);
void gs__bundle_fini(struct gs_ctx *ctx, struct gs_bundle *b);

#endif
