/*
 * Private to sync/: one TLS session over memory BIOs, driven by
 * transport_uv.c. OpenSSL never sees a socket: received ciphertext goes in
 * with gs__tls_sess_feed, ciphertext to send comes out with
 * gs__tls_sess_take. Loop thread only.
 */
#ifndef GS_SYNC_TLS_H
#define GS_SYNC_TLS_H

#include <openssl/x509.h>

#include <gridsync/transport.h>

#define GS_TLS_SERIAL_HEX GS_CERT_SERIAL_HEX

struct gs_tls_sess;

/*
 * A session for one connection. A client session verifies the server
 * certificate against peer_name (a DNS name or an IP literal; required
 * for a client, ignored for a server). *out is freed with
 * gs__tls_sess_free. GS_ENOMEM, GS_EINVAL (bad peer_name), GS_ERROR.
 */
int gs__tls_sess_new(struct gs_tls_sess **out,
		     struct gs_tls *tls,
		     const char *peer_name);
void gs__tls_sess_free(struct gs_tls_sess *s);

/* Received ciphertext, copied into OpenSSL's read BIO. */
int gs__tls_sess_feed(struct gs_tls_sess *s, const uint8_t *data, size_t len);

/*
 * Advance the handshake. GS_OK once OpenSSL reports it finished and the
 * peer's certificate passed (CN extracted), GS_EAGAIN when more input is
 * needed, GS_EDENIED with detail text in the ctx on any failure. Call
 * gs__tls_sess_take afterwards either way: there may be handshake bytes or
 * an alert to send.
 */
int gs__tls_sess_handshake(struct gs_tls_sess *s);

/*
 * True once the peer has accepted us. A TLS 1.3 server decides on the
 * client certificate only after the client's handshake has finished, so a
 * client waits for the server's first post-handshake record (the session
 * ticket our servers always send) before it calls the connection up.
 * Always true for a server once the handshake is done.
 */
bool gs__tls_sess_confirmed(const struct gs_tls_sess *s);

/*
 * Decrypt into buf. GS_OK with *n_out > 0 (data), GS_OK with *n_out == 0
 * (the peer sent close_notify), GS_EAGAIN (need more ciphertext),
 * GS_EDENIED (a certificate alert, or any failure before confirmation),
 * GS_EPROTO (any other TLS failure). Detail text in the ctx.
 */
int gs__tls_sess_read(struct gs_tls_sess *s,
		      uint8_t *buf,
		      size_t cap,
		      size_t *n_out);

/* Encrypt len bytes; the records land in the write BIO. */
int gs__tls_sess_write(struct gs_tls_sess *s, const uint8_t *data, size_t len);

/* Queue close_notify. */
void gs__tls_sess_shutdown(struct gs_tls_sess *s);

/* Ciphertext waiting to be sent, and taking up to cap bytes of it. */
size_t gs__tls_sess_pending(const struct gs_tls_sess *s);
size_t gs__tls_sess_take(struct gs_tls_sess *s, uint8_t *buf, size_t cap);

/* An upper bound of the ciphertext that len plaintext bytes produce. */
size_t gs__tls_sess_overhead(size_t len);

/* The peer's CN once the handshake is done, else NULL. */
const char *gs__tls_sess_peer_id(const struct gs_tls_sess *s);

/* The peer certificate's serial in upper-case hex once the handshake is
 * done, else NULL. */
const char *gs__tls_sess_peer_serial(const struct gs_tls_sess *s);

/* x's serial as upper-case hex into out; false if it does not fit. */
bool gs__tls_serial_hex(X509 *x, char *out, size_t cap);

/* The identifier rule shared by certificate CNs and enrolment: 1 to
 * GS_WIRE_ID_MAX bytes of [A-Za-z0-9._:@-]. */
bool gs__tls_id_valid(const char *s, size_t len);

#endif
