/*
 * TLS 1.3 with mutual authentication, OpenSSL 3 through memory BIOs.
 *
 * Happy path: the server requires a client certificate and verifies it
 * against the district CA; the client verifies the server certificate
 * against the same CA and against the host name or IP it dialled. The
 * authenticated identity of either peer is the CN of its certificate.
 *
 * Failure modes: every handshake failure (no certificate, a certificate
 * from another CA, a name mismatch, an expired certificate, garbage that
 * is not TLS) is GS_EDENIED with one line of detail in the ctx naming the
 * verification result or the TLS alert. After the handshake a certificate
 * alert is still GS_EDENIED (TLS 1.3 clients learn of a refused
 * certificate only then), anything else is GS_EPROTO.
 *
 * Confirmation: in TLS 1.3 the client finishes its handshake before the
 * server has looked at the client certificate. Our servers always send
 * one session ticket right after accepting the client; the client treats
 * that ticket (or any application data) as the server's acceptance and
 * only then reports the connection up. The ticket is never stored, so
 * there is no resumption: every connection presents its certificate.
 *
 * PEM arguments are PEM text when they start with "-----BEGIN", else the
 * path of a PEM file. Key material read from a file is wiped before its
 * buffer is freed. OpenSSL keeps its own allocator.
 */
#define GS_MODULE "sync.tls"

#include "tls.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <string.h>

#include <gridsync/transport.h>
#include <gridsync/wire.h>

#define PEM_MAX      (256u << 10) /* a CA file with a few certificates */
#define NAME_MAX_LEN 253u         /* a DNS name */

/* TLS 1.3 record: 5 header bytes, 1 inner content type, 16 tag bytes. */
#define RECORD_PLAIN    16384u
#define RECORD_OVERHEAD 22u

struct gs_tls {
	struct gs_ctx *ctx;
	SSL_CTX *ssl_ctx;
	bool server;
};

struct gs_tls_sess {
	struct gs_tls *tls;
	SSL *ssl; /* owns both memory BIOs */
	bool done;
	bool confirmed;
	char peer_id[GS_WIRE_ID_MAX + 1];
	char peer_serial[GS_TLS_SERIAL_HEX];
};

/* Ids travel in certificates, logs and the wire: keep them to a small
 * alphabet that needs no escaping anywhere (UUIDs and codes fit). */
bool gs__tls_id_valid(const char *s, size_t len)
{
	if (s == NULL || len == 0 || len > GS_WIRE_ID_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];

		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
		    ch == ':' || ch == '@' || ch == '-')
			continue;
		return false;
	}
	return true;
}

bool gs__tls_serial_hex(X509 *x, char *out, size_t cap)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;
	bool ok = hex != NULL && strlen(hex) < cap;

	if (ok)
		memcpy(out, hex, strlen(hex) + 1);
	else if (cap > 0)
		out[0] = '\0';
	OPENSSL_free(hex);
	BN_free(bn);
	ERR_clear_error();
	return ok;
}

/* ---- loading PEM material ------------------------------------------------ */

struct pem_src {
	BIO *bio;
	uint8_t *file; /* our copy of a file's bytes, wiped on close */
	size_t file_len;
};

/* Free the BIO and our file copy, wiping the copy (it may be a key). */
static void pem_close(struct pem_src *p, struct gs_ctx *ctx)
{
	BIO_free(p->bio);
	if (p->file != NULL) {
		OPENSSL_cleanse(p->file, p->file_len);
		gs__free(ctx, p->file);
	}
	memset(p, 0, sizeof(*p));
}

/* Open arg (PEM text or a path, see top) as a read BIO. what names the
 * argument in error text ("ca", "key"); paths are not secret. */
static int pem_open(struct pem_src *p,
		    struct gs_ctx *ctx,
		    const char *what,
		    const char *arg)
{
	int rc;

	memset(p, 0, sizeof(*p));
	if (strncmp(arg, "-----BEGIN", 10) == 0) {
		p->bio = BIO_new_mem_buf(arg, -1);
	} else {
		rc = gs__fs_read_all(ctx, &p->file, &p->file_len, arg, PEM_MAX);
		if (rc != GS_OK)
			return gs__err_wrap(ctx, rc, "tls: %s", what);
		/* file_len <= PEM_MAX, so the int cast is exact. */
		p->bio = BIO_new_mem_buf(p->file, (int)p->file_len);
	}
	if (p->bio == NULL) {
		pem_close(p, ctx);
		return gs__err(ctx, GS_ENOMEM, "tls: %s: no memory", what);
	}
	return GS_OK;
}

/* Every certificate in the CA argument becomes a trust anchor (and, on a
 * server, a CA name announced to clients). */
static int load_ca(struct gs_tls *t, const char *arg)
{
	struct pem_src p;
	X509_STORE *store = SSL_CTX_get_cert_store(t->ssl_ctx);
	X509 *x;
	int n = 0;
	int rc;

	rc = pem_open(&p, t->ctx, "ca", arg);
	if (rc != GS_OK)
		return rc;
	while ((x = PEM_read_bio_X509(p.bio, NULL, NULL, NULL)) != NULL) {
		int ok = X509_STORE_add_cert(store, x);

		if (ok == 1 && t->server)
			ok = SSL_CTX_add_client_CA(t->ssl_ctx, x);
		X509_free(x);
		if (ok != 1) {
			rc = gs__err(t->ctx, GS_EINVAL,
				     "tls: ca: certificate %d not usable",
				     n + 1);
			goto out;
		}
		n++;
	}
	ERR_clear_error(); /* the read that ended the loop */
	if (n == 0)
		rc = gs__err(t->ctx, GS_EINVAL,
			     "tls: ca: no PEM certificate found");
out:
	pem_close(&p, t->ctx);
	return rc;
}

/* Our own certificate and key. The key must belong to the certificate;
 * whether the CA signed it is the peer's business (a test client with a
 * foreign certificate must be constructible). */
static int load_cert_key(struct gs_tls *t, const char *cert, const char *key)
{
	struct pem_src p;
	X509 *x = NULL;
	EVP_PKEY *k = NULL;
	int rc;

	rc = pem_open(&p, t->ctx, "certificate", cert);
	if (rc != GS_OK)
		return rc;
	x = PEM_read_bio_X509(p.bio, NULL, NULL, NULL);
	pem_close(&p, t->ctx);
	if (x == NULL || SSL_CTX_use_certificate(t->ssl_ctx, x) != 1) {
		rc = gs__err(t->ctx, GS_EINVAL,
			     "tls: certificate: no usable PEM certificate");
		goto out;
	}
	rc = pem_open(&p, t->ctx, "key", key);
	if (rc != GS_OK)
		goto out;
	k = PEM_read_bio_PrivateKey(p.bio, NULL, NULL, NULL);
	pem_close(&p, t->ctx);
	if (k == NULL) {
		rc = gs__err(t->ctx, GS_EINVAL, "tls: key: no usable PEM key");
		goto out;
	}
	if (SSL_CTX_use_PrivateKey(t->ssl_ctx, k) != 1 ||
	    SSL_CTX_check_private_key(t->ssl_ctx) != 1)
		rc = gs__err(t->ctx, GS_EINVAL,
			     "tls: key does not match the certificate");
out:
	X509_free(x);
	EVP_PKEY_free(k);
	return rc;
}

/* A client learns that the server accepted its certificate from the
 * session ticket; the session itself is dropped (return 0). */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct gs_tls_sess *s = SSL_get_app_data(ssl);

	(void)sess;
	if (s != NULL)
		s->confirmed = true;
	return 0;
}

/*
 * The policy in one place: TLS 1.3 only, X.509 strict mode, chains of
 * leaf + CA, purpose checked (serverAuth / clientAuth EKU), the server
 * demands a certificate, the client verifies the server's. Session
 * resumption is off on both sides, so every connection authenticates
 * with a certificate.
 */
static int configure(struct gs_tls *t)
{
	SSL_CTX *sc = t->ssl_ctx;
	X509_VERIFY_PARAM *param = SSL_CTX_get0_param(sc);
	static const unsigned char sid_ctx[] = "gridsync";

	if (SSL_CTX_set_min_proto_version(sc, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(sc, TLS1_3_VERSION) != 1)
		return gs__err(t->ctx, GS_ERROR, "tls: TLS 1.3 unavailable");
	/* Both peers hold the CA: send the leaf alone, never the root. */
	SSL_CTX_set_mode(sc, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_NO_AUTO_CHAIN);
	X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_X509_STRICT);
	/* Leaf and CA: no intermediates in a district PKI. */
	SSL_CTX_set_verify_depth(sc, 2);
	if (t->server) {
		SSL_CTX_set_verify(
			sc, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
			NULL);
		X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_CLIENT);
		SSL_CTX_set_session_id_context(sc, sid_ctx,
					       sizeof(sid_ctx) - 1);
		SSL_CTX_set_session_cache_mode(sc, SSL_SESS_CACHE_OFF);
		/* The ticket is the client's acceptance signal (see top). */
		SSL_CTX_set_num_tickets(sc, 1);
	} else {
		SSL_CTX_set_verify(sc, SSL_VERIFY_PEER, NULL);
		X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_SERVER);
		SSL_CTX_set_session_cache_mode(
			sc, SSL_SESS_CACHE_CLIENT |
				    SSL_SESS_CACHE_NO_INTERNAL_STORE);
		SSL_CTX_sess_set_new_cb(sc, on_new_session);
	}
	return GS_OK;
}

/* Both constructors: build, configure, load; *out only on success. */
static int tls_new(struct gs_tls **out,
		   struct gs_ctx *ctx,
		   bool server,
		   const char *ca_pem,
		   const char *cert_pem,
		   const char *key_pem)
{
	struct gs_tls *t = NULL;
	int rc;

	GS_CHECK_ARG(out != NULL && ctx != NULL && ca_pem != NULL);
	GS_CHECK_ARG((cert_pem == NULL) == (key_pem == NULL));
	GS_CHECK_ARG(!server || cert_pem != NULL);
	*out = NULL;
	t = gs__calloc(ctx, 1, sizeof(*t));
	if (t == NULL)
		return gs__err(ctx, GS_ENOMEM, "tls: no memory");
	t->ctx = ctx;
	t->server = server;
	ERR_clear_error();
	t->ssl_ctx = SSL_CTX_new(TLS_method());
	if (t->ssl_ctx == NULL) {
		rc = gs__err(ctx, GS_ENOMEM, "tls: cannot create a context");
		goto out;
	}
	rc = configure(t);
	if (rc == GS_OK)
		rc = load_ca(t, ca_pem);
	if (rc == GS_OK && cert_pem != NULL)
		rc = load_cert_key(t, cert_pem, key_pem);
	if (rc != GS_OK)
		goto out;
	*out = t;
	t = NULL;
out:
	ERR_clear_error();
	gs__tls_free(t);
	return rc;
}

int gs__tls_server_new(struct gs_tls **out,
		       struct gs_ctx *ctx,
		       const char *ca_pem,
		       const char *cert_pem,
		       const char *key_pem)
{
	return tls_new(out, ctx, true, ca_pem, cert_pem, key_pem);
}

int gs__tls_client_new(struct gs_tls **out,
		       struct gs_ctx *ctx,
		       const char *ca_pem,
		       const char *cert_pem,
		       const char *key_pem)
{
	return tls_new(out, ctx, false, ca_pem, cert_pem, key_pem);
}

void gs__tls_set_verify_time(struct gs_tls *tls, int64_t unix_s)
{
	X509_VERIFY_PARAM_set_time(SSL_CTX_get0_param(tls->ssl_ctx),
				   (time_t)unix_s);
}

/* Free only after every connection using tls has closed: sessions keep
 * the SSL_CTX alive by reference, but not our struct. */
void gs__tls_free(struct gs_tls *tls)
{
	if (tls == NULL)
		return;
	SSL_CTX_free(tls->ssl_ctx);
	gs__free(tls->ctx, tls);
}

/* ---- sessions ------------------------------------------------------------ */

static bool is_ip(const char *name)
{
	unsigned char a[16];

	return inet_pton(AF_INET, name, a) == 1 ||
	       inet_pton(AF_INET6, name, a) == 1;
}

/* Expect peer_name in the server certificate: an IP literal must be an
 * iPAddress SAN, a name a dNSName SAN (and goes out as SNI). */
static int set_peer_name(struct gs_tls_sess *s, const char *name)
{
	struct gs_ctx *ctx = s->tls->ctx;
	X509_VERIFY_PARAM *param = SSL_get0_param(s->ssl);
	size_t len = name != NULL ? strlen(name) : 0;

	if (len == 0 || len > NAME_MAX_LEN)
		return gs__err(ctx, GS_EINVAL,
			       "tls: the server name to verify is missing or "
			       "too long");
	if (is_ip(name)) {
		if (X509_VERIFY_PARAM_set1_ip_asc(param, name) != 1)
			return gs__err(ctx, GS_EINVAL, "tls: bad address");
		return GS_OK;
	}
	X509_VERIFY_PARAM_set_hostflags(param,
					X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (SSL_set1_host(s->ssl, name) != 1 ||
	    SSL_set_tlsext_host_name(s->ssl, name) != 1)
		return gs__err(ctx, GS_EINVAL, "tls: bad server name");
	return GS_OK;
}

/* The SSL object owns both memory BIOs once SSL_set_bio has run. */
int gs__tls_sess_new(struct gs_tls_sess **out,
		     struct gs_tls *tls,
		     const char *peer_name)
{
	struct gs_tls_sess *s = NULL;
	BIO *rbio = NULL;
	BIO *wbio = NULL;
	int rc = GS_OK;

	GS_CHECK_ARG(out != NULL && tls != NULL);
	*out = NULL;
	s = gs__calloc(tls->ctx, 1, sizeof(*s));
	if (s == NULL)
		return gs__err(tls->ctx, GS_ENOMEM, "tls: no memory");
	s->tls = tls;
	ERR_clear_error();
	s->ssl = SSL_new(tls->ssl_ctx);
	rbio = BIO_new(BIO_s_mem());
	wbio = BIO_new(BIO_s_mem());
	if (s->ssl == NULL || rbio == NULL || wbio == NULL) {
		rc = gs__err(tls->ctx, GS_ENOMEM, "tls: no memory");
		goto out;
	}
	/* An empty read BIO means "wait for more", not end of stream. */
	BIO_set_mem_eof_return(rbio, -1);
	BIO_set_mem_eof_return(wbio, -1);
	SSL_set_bio(s->ssl, rbio, wbio);
	rbio = NULL;
	wbio = NULL;
	SSL_set_app_data(s->ssl, s);
	if (tls->server) {
		SSL_set_accept_state(s->ssl);
	} else {
		SSL_set_connect_state(s->ssl);
		rc = set_peer_name(s, peer_name);
		if (rc != GS_OK)
			goto out;
	}
	*out = s;
	s = NULL;
out:
	BIO_free(rbio);
	BIO_free(wbio);
	ERR_clear_error();
	gs__tls_sess_free(s);
	return rc;
}

void gs__tls_sess_free(struct gs_tls_sess *s)
{
	if (s == NULL)
		return;
	SSL_free(s->ssl);
	gs__free(s->tls->ctx, s);
}

/* OpenSSL copies: data is the caller's again when this returns. */
int gs__tls_sess_feed(struct gs_tls_sess *s, const uint8_t *data, size_t len)
{
	size_t n = 0;

	if (len == 0)
		return GS_OK;
	/* A memory BIO grows as needed: it takes everything or nothing. */
	if (BIO_write_ex(SSL_get_rbio(s->ssl), data, len, &n) != 1 || n != len)
		return gs__err(s->tls->ctx, GS_ENOMEM,
			       "tls: cannot buffer %zu received bytes", len);
	return GS_OK;
}

/* Record why the session failed: the certificate verification result if
 * there is one, else the reason of the last OpenSSL error (which names a
 * received alert, e.g. "tlsv1 alert unknown ca"). */
static int fail(struct gs_tls_sess *s, int code, const char *stage)
{
	long vr = SSL_get_verify_result(s->ssl);
	unsigned long e = ERR_peek_last_error();
	const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;
	int rc;

	if (vr != X509_V_OK)
		rc = gs__err(s->tls->ctx, code,
			     "tls: %s: peer certificate refused: %s", stage,
			     X509_verify_cert_error_string(vr));
	else
		rc = gs__err(s->tls->ctx, code, "tls: %s failed: %s", stage,
			     reason != NULL ? reason : "unknown error");
	ERR_clear_error();
	return rc;
}

/* Alerts that mean "your certificate is not accepted" (RFC 8446 6.2). */
static bool is_cert_alert(unsigned long e)
{
	int reason = ERR_GET_REASON(e);
	int alert;

	if (ERR_GET_LIB(e) != ERR_LIB_SSL || reason < SSL_AD_REASON_OFFSET)
		return false;
	alert = reason - SSL_AD_REASON_OFFSET;
	return (alert >= SSL_AD_BAD_CERTIFICATE &&
		alert <= SSL_AD_ACCESS_DENIED) ||
	       alert == SSL_AD_CERTIFICATE_REQUIRED;
}

/* The CN becomes the peer id, so it must be exactly one well-formed id. */
static int take_peer_id(struct gs_tls_sess *s)
{
	struct gs_ctx *ctx = s->tls->ctx;
	X509 *peer = SSL_get0_peer_certificate(s->ssl);
	X509_NAME *nm;
	unsigned char *utf8 = NULL;
	int i;
	int n;
	int rc = GS_OK;

	if (peer == NULL)
		return gs__err(ctx, GS_EDENIED,
			       "tls: peer sent no certificate");
	nm = X509_get_subject_name(peer);
	i = X509_NAME_get_index_by_NID(nm, NID_commonName, -1);
	if (i < 0 || X509_NAME_get_index_by_NID(nm, NID_commonName, i) >= 0)
		return gs__err(ctx, GS_EDENIED,
			       "tls: peer certificate must have exactly one "
			       "CN");
	n = ASN1_STRING_to_UTF8(
		&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(nm, i)));
	if (n <= 0 || !gs__tls_id_valid((const char *)utf8, (size_t)n)) {
		rc = gs__err(ctx, GS_EDENIED,
			     "tls: peer certificate CN is not a valid id");
		goto out;
	}
	memcpy(s->peer_id, utf8, (size_t)n);
	s->peer_id[n] = '\0';
	if (!gs__tls_serial_hex(peer, s->peer_serial, sizeof(s->peer_serial)))
		rc = gs__err(ctx, GS_EDENIED,
			     "tls: peer certificate serial is unreadable");
out:
	OPENSSL_free(utf8);
	ERR_clear_error();
	return rc;
}

/* OpenSSL verifies the chain, purpose and name inside SSL_do_handshake;
 * we add the CN rule. A failure leaves an alert in the write BIO. */
int gs__tls_sess_handshake(struct gs_tls_sess *s)
{
	int r;
	int rc;

	if (s->done)
		return GS_OK;
	ERR_clear_error();
	r = SSL_do_handshake(s->ssl);
	if (r == 1) {
		rc = take_peer_id(s);
		if (rc != GS_OK)
			return rc;
		s->done = true;
		if (s->tls->server)
			s->confirmed = true;
		return GS_OK;
	}
	if (SSL_get_error(s->ssl, r) == SSL_ERROR_WANT_READ) {
		ERR_clear_error();
		return GS_EAGAIN;
	}
	return fail(s, GS_EDENIED, "handshake");
}

bool gs__tls_sess_confirmed(const struct gs_tls_sess *s)
{
	return s->done && s->confirmed;
}

int gs__tls_sess_read(struct gs_tls_sess *s,
		      uint8_t *buf,
		      size_t cap,
		      size_t *n_out)
{
	size_t n = 0;
	int r;

	*n_out = 0;
	ERR_clear_error();
	r = SSL_read_ex(s->ssl, buf, cap, &n);
	if (r == 1) {
		/* Data from the server implies it accepted us. */
		s->confirmed = true;
		*n_out = n;
		return GS_OK;
	}
	switch (SSL_get_error(s->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		ERR_clear_error();
		return GS_EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		ERR_clear_error();
		return GS_OK; /* close_notify: *n_out stays 0 */
	default:
		break;
	}
	if (!s->confirmed || is_cert_alert(ERR_peek_last_error()))
		return fail(s, GS_EDENIED, "read");
	return fail(s, GS_EPROTO, "read");
}

/* With a memory write BIO SSL_write never blocks and never writes part:
 * anything short of the whole is a failure. */
int gs__tls_sess_write(struct gs_tls_sess *s, const uint8_t *data, size_t len)
{
	size_t n = 0;

	ERR_clear_error();
	if (len == 0)
		return GS_OK;
	if (SSL_write_ex(s->ssl, data, len, &n) != 1 || n != len)
		return fail(s, GS_EPROTO, "write");
	return GS_OK;
}

/* close_notify only makes sense after a finished handshake; we do not
 * wait for the peer's (the transport lingers for its FIN instead). */
void gs__tls_sess_shutdown(struct gs_tls_sess *s)
{
	ERR_clear_error();
	if (s->done)
		(void)SSL_shutdown(s->ssl); /* 0: close_notify queued */
	ERR_clear_error();
}

size_t gs__tls_sess_pending(const struct gs_tls_sess *s)
{
	return BIO_ctrl_pending(SSL_get_wbio(s->ssl));
}

size_t gs__tls_sess_take(struct gs_tls_sess *s, uint8_t *buf, size_t cap)
{
	size_t n = 0;

	if (cap == 0 || BIO_read_ex(SSL_get_wbio(s->ssl), buf, cap, &n) != 1)
		n = 0;
	ERR_clear_error();
	return n;
}

/* Each record of up to 16 KiB plaintext grows by a fixed amount (no
 * padding is configured); the caller adds what is already pending. */
size_t gs__tls_sess_overhead(size_t len)
{
	return len + (len / RECORD_PLAIN + 1) * RECORD_OVERHEAD;
}

const char *gs__tls_sess_peer_id(const struct gs_tls_sess *s)
{
	return s != NULL && s->done ? s->peer_id : NULL;
}

const char *gs__tls_sess_peer_serial(const struct gs_tls_sess *s)
{
	return s != NULL && s->done ? s->peer_serial : NULL;
}
