/*
 * Enrolment PKI: the district CA, the server certificate and device
 * bundles. ECDSA P-256 keys, SHA-256 signatures, X.509 v3 certificates
 * that pass OpenSSL's strict checks.
 *
 * Files in the PKI directory (all written atomically, mode 0600):
 *   ca.key ca.pem          the district CA (CN "gridsync CA <8 hex>", so
 *                          two districts' CAs never share a name)
 *   server.key server.pem  CN "gridsyncd"; SANs localhost, 127.0.0.1, ::1
 *                          and the names given; EKU serverAuth
 * A key is always written before its certificate, so an interrupted init
 * leaves at worst a key without a certificate, which the next init simply
 * replaces; a certificate without its key is refused as corrupt.
 *
 * Device bundle (one text file, 0600, LF line ends, nothing optional):
 *
 *   gridsync-bundle: 1
 *   device_id: <id>          also the CN of the device certificate
 *   worker_id: <id>
 *   scope: <printable ASCII, no spaces>
 *   server: <host:port>
 *   ca:
 *   -----BEGIN CERTIFICATE-----  ...  -----END CERTIFICATE-----
 *   cert:
 *   -----BEGIN CERTIFICATE-----  ...  -----END CERTIFICATE-----
 *   key:
 *   -----BEGIN PRIVATE KEY-----  ...  -----END PRIVATE KEY-----
 *   sha256: <64 hex digits over every byte before this line>
 *
 * gs__bundle_read refuses anything else: a damaged checksum, a field out
 * of order, an unparsable PEM block, a key that does not match the
 * certificate, a certificate whose CN is not the device id or that the
 * bundled CA did not sign. Key material is never logged and is wiped from
 * our buffers before they are freed.
 */
#define GS_MODULE "sync.pki"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <gridsync/transport.h>
#include <gridsync/wire.h>

#include "tls.h"

#define CA_DAYS      7300L  /* 20 years: the CA outlives the handhelds */
#define LEAF_DAYS    1825L  /* 5 years; there is no renewal protocol yet */
#define BACKDATE_S   86400L /* handheld clocks run behind */
#define PEM_FILE_MAX (64u << 10)
#define BUNDLE_MAX   (64u << 10)
#define VALUE_MAX    255u
#define NAMES_MAX    32u
#define PATH_LEN     4096u
#define BUNDLE_MAGIC "gridsync-bundle: 1"

enum cert_kind { CERT_CA, CERT_SERVER, CERT_DEVICE };

/* ---- validation ------------------------------------------------------------
 */

/* A header value: 1..max bytes of printable ASCII without spaces, so it
 * fits on one "name: value" line and means the same everywhere. */
static bool value_ok(const char *s, size_t len, size_t max)
{
	if (s == NULL || len == 0 || len > max)
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] < 0x21 || s[i] > 0x7e)
			return false;
	return true;
}

/* An IPv4 or IPv6 literal becomes an IP SAN, anything else a DNS SAN. */
static bool is_ip(const char *s)
{
	unsigned char a[16];

	return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

/* A DNS name for a SAN: letters, digits, '-' and '.', no wildcards. */
static bool dns_ok(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > 253 || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '-' || ch == '.'))
			return false;
	}
	return true;
}

/* ---- files
 * ------------------------------------------------------------------- */

static int
join(struct gs_ctx *ctx, char out[PATH_LEN], const char *dir, const char *name)
{
	if (snprintf(out, PATH_LEN, "%s/%s", dir, name) >= (int)PATH_LEN)
		return gs__err(ctx, GS_EINVAL, "pki: path too long");
	return GS_OK;
}

/* Whether path exists. Anything but "no such file" (a permission
 * problem, say) is an error: guessing could overwrite a key. */
static int exists(struct gs_ctx *ctx, const char *path, bool *out)
{
	struct stat st;

	if (stat(path, &st) == 0) {
		*out = true;
		return GS_OK;
	}
	if (errno == ENOENT) {
		*out = false;
		return GS_OK;
	}
	return gs__err(ctx, GS_EIO, "pki: stat %s: %s", path, strerror(errno));
}

/* One PEM certificate from a file. A file that does not parse is
 * GS_ECORRUPT: we wrote it, so damage is the only explanation. */
static int load_cert(struct gs_ctx *ctx, X509 **out, const char *path)
{
	uint8_t *data = NULL;
	size_t len = 0;
	BIO *bio = NULL;
	int rc;

	*out = NULL;
	rc = gs__fs_read_all(ctx, &data, &len, path, PEM_FILE_MAX);
	if (rc != GS_OK)
		return gs__err_wrap(ctx, rc, "pki");
	bio = BIO_new_mem_buf(data, (int)len);
	if (bio != NULL)
		*out = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	if (*out == NULL)
		rc = gs__err(ctx, GS_ECORRUPT, "pki: %s: no PEM certificate",
			     path);
	BIO_free(bio);
	gs__free(ctx, data);
	ERR_clear_error();
	return rc;
}

/* The same for a private key; our copy of the file is wiped. */
static int load_key(struct gs_ctx *ctx, EVP_PKEY **out, const char *path)
{
	uint8_t *data = NULL;
	size_t len = 0;
	BIO *bio = NULL;
	int rc;

	*out = NULL;
	rc = gs__fs_read_all(ctx, &data, &len, path, PEM_FILE_MAX);
	if (rc != GS_OK)
		return gs__err_wrap(ctx, rc, "pki");
	bio = BIO_new_mem_buf(data, (int)len);
	if (bio != NULL)
		*out = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	if (*out == NULL)
		rc = gs__err(ctx, GS_ECORRUPT, "pki: %s: no PEM private key",
			     path);
	BIO_free(bio);
	OPENSSL_cleanse(data, len);
	gs__free(ctx, data);
	ERR_clear_error();
	return rc;
}

/* PEM text of a certificate or a private key in a BIO whose storage is
 * wiped when freed. */
static BIO *pem_bio(X509 *x, EVP_PKEY *k)
{
	BIO *bio = BIO_new(BIO_s_secmem());
	int ok;

	if (bio == NULL)
		return NULL;
	if (x != NULL)
		ok = PEM_write_bio_X509(bio, x);
	else
		ok = PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL,
					      NULL);
	if (ok != 1) {
		BIO_free(bio);
		return NULL;
	}
	return bio;
}

/* Write x (or k) as PEM to path atomically, mode 0600. */
static int write_pem(struct gs_ctx *ctx, const char *path, X509 *x, EVP_PKEY *k)
{
	BIO *bio = pem_bio(x, k);
	char *text = NULL;
	long len;
	int rc;

	if (bio == NULL)
		return gs__err(ctx, GS_ENOMEM, "pki: cannot encode %s", path);
	len = BIO_get_mem_data(bio, &text);
	rc = gs__fs_write_atomic(ctx, path, text, (size_t)len);
	BIO_free(bio);
	ERR_clear_error();
	return rc == GS_OK ? rc : gs__err_wrap(ctx, rc, "pki");
}

/* ---- certificates
 * ------------------------------------------------------------- */

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	if (ext == NULL)
		return 0;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok;
}

/* A positive 127-bit random serial (RFC 5280 allows up to 20 octets). */
static int set_serial(struct gs_ctx *ctx, X509 *x)
{
	uint8_t raw[16];
	BIGNUM *bn;
	int ok;
	int rc;

	rc = gs__random(ctx, raw, sizeof(raw));
	if (rc != GS_OK)
		return rc;
	/* Top bit clear: DER integers are signed. Never zero. */
	raw[0] = (uint8_t)((raw[0] & 0x7f) | 0x01);
	bn = BN_bin2bn(raw, (int)sizeof(raw), NULL);
	ok = bn != NULL &&
	     BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
	BN_free(bn);
	return ok ? GS_OK : GS_ENOMEM;
}

/*
 * Issue a certificate for key with CN cn. issuer/issuer_key NULL: self-
 * signed (the CA). san: the subjectAltName value for a server.
 */
static int make_cert(struct gs_ctx *ctx,
		     X509 **out,
		     enum cert_kind kind,
		     const char *cn,
		     EVP_PKEY *key,
		     X509 *issuer,
		     EVP_PKEY *issuer_key,
		     const char *san)
{
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	long days = kind == CERT_CA ? CA_DAYS : LEAF_DAYS;
	int ok;
	int rc = GS_OK;

	*out = NULL;
	if (x == NULL || name == NULL) {
		rc = gs__err(ctx, GS_ENOMEM, "pki: no memory");
		goto out;
	}
	rc = set_serial(ctx, x);
	if (rc != GS_OK)
		goto out;
	ok = X509_set_version(x, X509_VERSION_3) &&
	     X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
					(const unsigned char *)cn, -1, -1, 0) &&
	     X509_set_subject_name(x, name) &&
	     X509_set_issuer_name(x, issuer != NULL
					     ? X509_get_subject_name(issuer)
					     : name) &&
	     X509_gmtime_adj(X509_getm_notBefore(x), -BACKDATE_S) != NULL &&
	     X509_time_adj_ex(X509_getm_notAfter(x), (int)days, 0, NULL) !=
		     NULL &&
	     X509_set_pubkey(x, key);
	/* Self-signed: the CA is its own issuer for the extensions and the
	 * signature. */
	if (issuer == NULL) {
		issuer = x;
		issuer_key = key;
	}
	/* The subject key id first: a self-signed authority key id refers
	 * to it. */
	ok = ok && add_ext(x, issuer, NID_subject_key_identifier, "hash") &&
	     add_ext(x, issuer, NID_authority_key_identifier, "keyid:always");
	switch (kind) {
	case CERT_CA:
		ok = ok &&
		     add_ext(x, issuer, NID_basic_constraints,
			     "critical,CA:TRUE,pathlen:0") &&
		     add_ext(x, issuer, NID_key_usage,
			     "critical,keyCertSign,cRLSign");
		break;
	case CERT_SERVER:
		ok = ok &&
		     add_ext(x, issuer, NID_basic_constraints,
			     "critical,CA:FALSE") &&
		     add_ext(x, issuer, NID_key_usage,
			     "critical,digitalSignature") &&
		     add_ext(x, issuer, NID_ext_key_usage, "serverAuth") &&
		     add_ext(x, issuer, NID_subject_alt_name, san);
		break;
	case CERT_DEVICE:
		ok = ok &&
		     add_ext(x, issuer, NID_basic_constraints,
			     "critical,CA:FALSE") &&
		     add_ext(x, issuer, NID_key_usage,
			     "critical,digitalSignature") &&
		     add_ext(x, issuer, NID_ext_key_usage, "clientAuth");
		break;
	}
	ok = ok && X509_sign(x, issuer_key, EVP_sha256()) > 0;
	if (!ok) {
		rc = gs__err(ctx, GS_ERROR,
			     "pki: cannot build the %s "
			     "certificate",
			     kind == CERT_CA       ? "CA"
			     : kind == CERT_SERVER ? "server"
						   : "device");
		goto out;
	}
	*out = x;
	x = NULL;
out:
	X509_free(x);
	X509_NAME_free(name);
	ERR_clear_error();
	return rc;
}

/* ECDSA P-256: small certificates and fast handshakes on handhelds, and
 * accepted by every TLS 1.3 stack. Named-curve form (strict mode). */
static int new_key(struct gs_ctx *ctx, EVP_PKEY **out)
{
	*out = EVP_EC_gen("P-256");
	ERR_clear_error();
	if (*out == NULL)
		return gs__err(ctx, GS_ERROR,
			       "pki: P-256 key generation "
			       "failed");
	return GS_OK;
}

/* SAN text for the server: the loopback names plus each given name as an
 * IP or a DNS entry. */
static int
server_san(struct gs_ctx *ctx, struct gs_buf *san, const char *const *names)
{
	int rc = gs__buf_printf(san, "DNS:localhost,IP:127.0.0.1,IP:::1");

	for (size_t i = 0; rc == GS_OK && names != NULL && names[i] != NULL;
	     i++) {
		const char *n = names[i];

		if (i >= NAMES_MAX)
			return gs__err(ctx, GS_EINVAL,
				       "pki: more than %u server names",
				       NAMES_MAX);
		if (is_ip(n))
			rc = gs__buf_printf(san, ",IP:%s", n);
		else if (dns_ok(n))
			rc = gs__buf_printf(san, ",DNS:%s", n);
		else
			return gs__err(ctx, GS_EINVAL,
				       "pki: server name %zu is neither an IP "
				       "address nor a DNS name",
				       i + 1);
	}
	if (rc == GS_OK)
		rc = gs__buf_cstr(san);
	return rc == GS_OK ? rc : gs__err(ctx, rc, "pki: server names");
}

/* The state of a certificate and its key: both there (true), neither or
 * only the key (false: create), or the certificate alone (corrupt). */
static int
have_pair(struct gs_ctx *ctx, bool *out, const char *cert, const char *key)
{
	bool c = false;
	bool k = false;
	int rc;

	rc = exists(ctx, cert, &c);
	if (rc == GS_OK)
		rc = exists(ctx, key, &k);
	if (rc != GS_OK)
		return rc;
	if (c && !k)
		return gs__err(ctx, GS_ECORRUPT,
			       "pki: %s exists without its key", cert);
	*out = c && k;
	return GS_OK;
}

/* Load the CA, checking that the key belongs to the certificate. */
static int
load_ca(struct gs_ctx *ctx, const char *dir, X509 **x_out, EVP_PKEY **k_out)
{
	char cert[PATH_LEN];
	char key[PATH_LEN];
	X509 *x = NULL;
	EVP_PKEY *k = NULL;
	int rc;

	rc = join(ctx, cert, dir, "ca.pem");
	if (rc == GS_OK)
		rc = join(ctx, key, dir, "ca.key");
	if (rc == GS_OK)
		rc = load_cert(ctx, &x, cert);
	if (rc == GS_OK)
		rc = load_key(ctx, &k, key);
	if (rc == GS_ENOTFOUND)
		rc = gs__err(ctx, rc, "pki: no CA in %s (run init first)", dir);
	if (rc == GS_OK && X509_check_private_key(x, k) != 1)
		rc = gs__err(ctx, GS_ECORRUPT,
			     "pki: ca.key does not belong to ca.pem");
	ERR_clear_error();
	if (rc != GS_OK) {
		X509_free(x);
		EVP_PKEY_free(k);
		return rc;
	}
	*x_out = x;
	*k_out = k;
	return GS_OK;
}

/*
 * Idempotent by construction: each pair (certificate, key) is either
 * complete and left alone, or missing and created key first. A fresh CA
 * always gets a fresh server certificate; names are validated before
 * anything is written.
 */
int gs__pki_init(struct gs_ctx *ctx, const char *dir, const char *const *names)
{
	char p_ca[PATH_LEN], p_cakey[PATH_LEN];
	char p_srv[PATH_LEN], p_srvkey[PATH_LEN];
	struct gs_buf san;
	X509 *ca = NULL;
	X509 *srv = NULL;
	EVP_PKEY *ca_key = NULL;
	EVP_PKEY *srv_key = NULL;
	bool have_ca = false;
	bool have_srv = false;
	char cn[32];
	uint8_t tag[4];
	int rc;

	GS_CHECK_ARG(ctx != NULL && dir != NULL);
	gs__buf_init(&san, ctx, 16u << 10);
	rc = server_san(ctx, &san, names); /* validate before any write */
	if (rc != GS_OK)
		goto out;
	rc = gs__fs_private_dir(ctx, dir);
	if (rc != GS_OK) {
		rc = gs__err_wrap(ctx, rc, "pki");
		goto out;
	}
	rc = join(ctx, p_ca, dir, "ca.pem");
	if (rc == GS_OK)
		rc = join(ctx, p_cakey, dir, "ca.key");
	if (rc == GS_OK)
		rc = join(ctx, p_srv, dir, "server.pem");
	if (rc == GS_OK)
		rc = join(ctx, p_srvkey, dir, "server.key");
	if (rc == GS_OK)
		rc = have_pair(ctx, &have_ca, p_ca, p_cakey);
	if (rc == GS_OK)
		rc = have_pair(ctx, &have_srv, p_srv, p_srvkey);
	if (rc != GS_OK || (have_ca && have_srv))
		goto out; /* everything is there: nothing to do */
	if (have_ca) {
		rc = load_ca(ctx, dir, &ca, &ca_key);
	} else {
		rc = gs__random(ctx, tag, sizeof(tag));
		if (rc == GS_OK) {
			snprintf(cn, sizeof(cn), "gridsync CA %02x%02x%02x%02x",
				 tag[0], tag[1], tag[2], tag[3]);
			rc = new_key(ctx, &ca_key);
		}
		if (rc == GS_OK)
			rc = make_cert(ctx, &ca, CERT_CA, cn, ca_key, NULL,
				       NULL, NULL);
		if (rc == GS_OK)
			rc = write_pem(ctx, p_cakey, NULL, ca_key);
		if (rc == GS_OK)
			rc = write_pem(ctx, p_ca, ca, NULL);
		if (rc == GS_OK)
			GS_INFO(ctx, "pki: created a CA in %s", dir);
	}
	/* A new CA invalidates any old server certificate. */
	if (rc == GS_OK)
		rc = new_key(ctx, &srv_key);
	if (rc == GS_OK)
		rc = make_cert(ctx, &srv, CERT_SERVER, "gridsyncd", srv_key, ca,
			       ca_key, (const char *)san.data);
	if (rc == GS_OK)
		rc = write_pem(ctx, p_srvkey, NULL, srv_key);
	if (rc == GS_OK)
		rc = write_pem(ctx, p_srv, srv, NULL);
	if (rc == GS_OK)
		GS_INFO(ctx, "pki: issued the server certificate in %s", dir);
out:
	X509_free(ca);
	X509_free(srv);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(srv_key);
	gs__buf_fini(&san);
	return rc;
}

/* ---- bundles
 * ---------------------------------------------------------------------- */

static void wipe_buf(struct gs_buf *b)
{
	if (b->data != NULL)
		OPENSSL_cleanse(b->data, b->cap);
	gs__buf_fini(b);
}

/*
 * Every input is validated before the CA key is loaded; the device key
 * lives only in OpenSSL's secure-heap BIO and in one buffer of the final
 * size, both wiped; the bundle appears atomically or not at all.
 */
int gs__pki_enroll(struct gs_ctx *ctx,
		   const char *dir,
		   const char *device_id,
		   const char *worker_id,
		   const char *scope,
		   const char *server,
		   const char *out_path)
{
	char serial[GS_TLS_SERIAL_HEX];

	return gs__pki_enroll_serial(ctx, dir, device_id, worker_id, scope,
				     server, out_path, serial, sizeof(serial));
}

int gs__pki_enroll_serial(struct gs_ctx *ctx,
			  const char *dir,
			  const char *device_id,
			  const char *worker_id,
			  const char *scope,
			  const char *server,
			  const char *out_path,
			  char *serial,
			  size_t serial_cap)
{
	X509 *ca = NULL;
	X509 *dev = NULL;
	EVP_PKEY *ca_key = NULL;
	EVP_PKEY *dev_key = NULL;
	BIO *ca_pem = NULL;
	BIO *cert_pem = NULL;
	BIO *key_pem = NULL;
	char *t1 = NULL, *t2 = NULL, *t3 = NULL;
	long n1, n2, n3;
	struct gs_buf b;
	uint8_t digest[GS_SHA256_LEN];
	char hex[2 * GS_SHA256_LEN + 1];
	bool there = false;
	int rc;

	GS_CHECK_ARG(ctx != NULL && dir != NULL && out_path != NULL);
	GS_CHECK_ARG(device_id != NULL && worker_id != NULL);
	GS_CHECK_ARG(scope != NULL && server != NULL);
	gs__buf_init(&b, ctx, BUNDLE_MAX);
	if (!gs__tls_id_valid(device_id, strlen(device_id)) ||
	    !gs__tls_id_valid(worker_id, strlen(worker_id))) {
		rc = gs__err(ctx, GS_EINVAL,
			     "pki: device and worker ids must be 1-%u "
			     "characters of [A-Za-z0-9._:@-]",
			     GS_WIRE_ID_MAX);
		goto out;
	}
	if (!value_ok(scope, strlen(scope), VALUE_MAX) ||
	    !value_ok(server, strlen(server), VALUE_MAX)) {
		rc = gs__err(ctx, GS_EINVAL,
			     "pki: scope and server must be 1-%u printable "
			     "characters without spaces",
			     VALUE_MAX);
		goto out;
	}
	rc = exists(ctx, out_path, &there);
	/* A bundle in place may already be on a device: replacing its key
	 * silently would lock that device out. */
	if (rc == GS_OK && there)
		rc = gs__err(ctx, GS_EEXISTS,
			     "pki: %s exists; a bundle is never overwritten",
			     out_path);
	if (rc == GS_OK)
		rc = load_ca(ctx, dir, &ca, &ca_key);
	if (rc == GS_OK)
		rc = new_key(ctx, &dev_key);
	if (rc == GS_OK)
		rc = make_cert(ctx, &dev, CERT_DEVICE, device_id, dev_key, ca,
			       ca_key, NULL);
	if (rc == GS_OK && !gs__tls_serial_hex(dev, serial, serial_cap))
		rc = gs__err(ctx, GS_EINVAL, "pki: serial buffer too small");
	if (rc != GS_OK)
		goto out;
	ca_pem = pem_bio(ca, NULL);
	cert_pem = pem_bio(dev, NULL);
	key_pem = pem_bio(NULL, dev_key);
	if (ca_pem == NULL || cert_pem == NULL || key_pem == NULL) {
		rc = gs__err(ctx, GS_ENOMEM, "pki: cannot encode the bundle");
		goto out;
	}
	n1 = BIO_get_mem_data(ca_pem, &t1);
	n2 = BIO_get_mem_data(cert_pem, &t2);
	n3 = BIO_get_mem_data(key_pem, &t3);
	/* One allocation of the final size: growing by realloc would leave
	 * copies of the key in freed memory. */
	rc = gs__buf_reserve(&b, (size_t)(n1 + n2 + n3) + 4 * VALUE_MAX + 256);
	if (rc == GS_OK)
		rc = gs__buf_printf(&b,
				    BUNDLE_MAGIC
				    "\ndevice_id: %s\nworker_id: "
				    "%s\nscope: %s\nserver: %s\n"
				    "ca:\n%.*scert:\n%.*skey:\n%.*s",
				    device_id, worker_id, scope, server,
				    (int)n1, t1, (int)n2, t2, (int)n3, t3);
	if (rc == GS_OK) {
		gs__sha256(digest, b.data, b.len);
		gs__hex(hex, digest, sizeof(digest));
		rc = gs__buf_printf(&b, "sha256: %s\n", hex);
	}
	if (rc != GS_OK) {
		rc = gs__err(ctx, rc, "pki: cannot build the bundle");
		goto out;
	}
	rc = gs__fs_write_atomic(ctx, out_path, b.data, b.len);
	if (rc != GS_OK)
		rc = gs__err_wrap(ctx, rc, "pki: bundle");
	else
		GS_INFO(ctx, "pki: enrolled device %s", device_id);
out:
	BIO_free(ca_pem);
	BIO_free(cert_pem);
	BIO_free(key_pem);
	X509_free(ca);
	X509_free(dev);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(dev_key);
	wipe_buf(&b);
	ERR_clear_error();
	return rc;
}

/* A line-by-line reader over the bundle text. */
struct parser {
	struct gs_ctx *ctx;
	const char *p;
	const char *end;
	int line;
};

/* GS_ECORRUPT naming the line and what was expected there. */
static int bad(struct parser *ps, const char *what)
{
	return gs__err(ps->ctx, GS_ECORRUPT, "bundle: line %d: %s", ps->line,
		       what);
}

/* The next line without its newline; false at the end. */
static bool next_line(struct parser *ps, const char **line, size_t *len)
{
	const char *nl;

	if (ps->p >= ps->end)
		return false;
	nl = memchr(ps->p, '\n', (size_t)(ps->end - ps->p));
	GS_ASSERT(nl != NULL); /* the text ends with a newline */
	*line = ps->p;
	*len = (size_t)(nl - ps->p);
	ps->p = nl + 1;
	ps->line++;
	return true;
}

/* The next line must be exactly want. */
static int expect_line(struct parser *ps, const char *want)
{
	const char *line;
	size_t len;

	if (!next_line(ps, &line, &len) || len != strlen(want) ||
	    memcmp(line, want, len) != 0)
		return bad(ps, want);
	return GS_OK;
}

/* "name: value" with a value that value_ok accepts; *out is a copy. */
static int
take_field(struct parser *ps, char **out, const char *name, size_t max)
{
	const char *line;
	size_t len;
	size_t nlen = strlen(name);
	char want[64];

	snprintf(want, sizeof(want), "expected '%s: <value>'", name);
	if (!next_line(ps, &line, &len) || len < nlen + 3 ||
	    memcmp(line, name, nlen) != 0 || line[nlen] != ':' ||
	    line[nlen + 1] != ' ' ||
	    !value_ok(line + nlen + 2, len - nlen - 2, max))
		return bad(ps, want);
	*out = gs__strndup(ps->ctx, line + nlen + 2, len - nlen - 2);
	return *out != NULL ? GS_OK
			    : gs__err(ps->ctx, GS_ENOMEM, "bundle: no memory");
}

/* "name:" then one PEM block of type, kept with its newlines. */
static int
take_pem(struct parser *ps, char **out, const char *name, const char *type)
{
	char begin[64];
	char end[64];
	char label[64];
	const char *start;
	const char *line;
	size_t len;
	int rc;

	snprintf(label, sizeof(label), "%s:", name);
	snprintf(begin, sizeof(begin), "-----BEGIN %s-----", type);
	snprintf(end, sizeof(end), "-----END %s-----", type);
	rc = expect_line(ps, label);
	if (rc != GS_OK)
		return rc;
	start = ps->p;
	rc = expect_line(ps, begin);
	if (rc != GS_OK)
		return rc;
	for (;;) {
		if (!next_line(ps, &line, &len))
			return bad(ps, end);
		if (len == strlen(end) && memcmp(line, end, len) == 0)
			break;
		/* Base64 lines of at most 64 characters (RFC 7468); a
		 * dash would be another block starting. */
		if (len == 0 || len > 64 || line[0] == '-')
			return bad(ps, "not a PEM line");
	}
	*out = gs__strndup(ps->ctx, start, (size_t)(ps->p - start));
	return *out != NULL ? GS_OK
			    : gs__err(ps->ctx, GS_ENOMEM, "bundle: no memory");
}

/* The PEM blocks must be what they claim and belong together. */
static int check_crypto(struct gs_ctx *ctx, const struct gs_bundle *b)
{
	BIO *bio = NULL;
	X509 *ca = NULL;
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	X509_NAME *nm;
	char cn[GS_WIRE_ID_MAX + 2];
	int rc = GS_OK;

	bio = BIO_new_mem_buf(b->ca_pem, -1);
	ca = bio != NULL ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	bio = BIO_new_mem_buf(b->cert_pem, -1);
	cert = bio != NULL ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	bio = BIO_new_mem_buf(b->key_pem, -1);
	key = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)
			  : NULL;
	BIO_free(bio);
	if (ca == NULL || cert == NULL || key == NULL) {
		rc = gs__err(ctx, GS_ECORRUPT, "bundle: the %s does not parse",
			     ca == NULL     ? "CA certificate"
			     : cert == NULL ? "device certificate"
					    : "private key");
		goto out;
	}
	if (X509_check_private_key(cert, key) != 1) {
		rc = gs__err(ctx, GS_ECORRUPT,
			     "bundle: the key does not match the certificate");
		goto out;
	}
	if (X509_verify(cert, X509_get0_pubkey(ca)) != 1) {
		rc = gs__err(ctx, GS_ECORRUPT,
			     "bundle: the device certificate "
			     "is not signed by the CA");
		goto out;
	}
	nm = X509_get_subject_name(cert);
	if (X509_NAME_get_text_by_NID(nm, NID_commonName, cn, sizeof(cn)) <=
		    0 ||
	    strcmp(cn, b->device_id) != 0)
		rc = gs__err(ctx, GS_ECORRUPT,
			     "bundle: the certificate is "
			     "not for this device id");
out:
	X509_free(ca);
	X509_free(cert);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return rc;
}

/* Free every field; the key text is wiped first. Safe on a zeroed or an
 * already finished bundle. */
void gs__bundle_fini(struct gs_ctx *ctx, struct gs_bundle *b)
{
	if (b == NULL)
		return;
	if (b->key_pem != NULL)
		OPENSSL_cleanse(b->key_pem, strlen(b->key_pem));
	gs__free(ctx, b->device_id);
	gs__free(ctx, b->worker_id);
	gs__free(ctx, b->scope);
	gs__free(ctx, b->server);
	gs__free(ctx, b->ca_pem);
	gs__free(ctx, b->cert_pem);
	gs__free(ctx, b->key_pem);
	memset(b, 0, sizeof(*b));
}

/* Check the trailing "sha256: <hex>" line; *body_len is what it covers. */
static int
check_sum(struct gs_ctx *ctx, const uint8_t *data, size_t len, size_t *body_len)
{
	static const char tag[] = "sha256: ";
	uint8_t digest[GS_SHA256_LEN];
	char hex[2 * GS_SHA256_LEN + 1];
	size_t start = len - 1;

	while (start > 0 && data[start - 1] != '\n')
		start--;
	if (len - start != sizeof(tag) - 1 + 2 * GS_SHA256_LEN + 1 ||
	    memcmp(data + start, tag, sizeof(tag) - 1) != 0)
		return gs__err(ctx, GS_ECORRUPT,
			       "bundle: damaged (no checksum line at the end)");
	gs__sha256(digest, data, start);
	gs__hex(hex, digest, sizeof(digest));
	if (memcmp(hex, data + start + sizeof(tag) - 1, 2 * GS_SHA256_LEN) != 0)
		return gs__err(ctx, GS_ECORRUPT,
			       "bundle: damaged (checksum mismatch)");
	*body_len = start;
	return GS_OK;
}

/*
 * Order of checks: size and shape of the file, then the checksum (random
 * damage stops here with a clear message), then the layout line by line,
 * then the cryptographic consistency. The file buffer held the key: it is
 * wiped before it is freed, on every path.
 */
int gs__bundle_read(struct gs_bundle *out, struct gs_ctx *ctx, const char *path)
{
	struct gs_bundle b;
	struct parser ps;
	struct stat st;
	uint8_t *data = NULL;
	size_t len = 0;
	size_t body = 0;
	int rc;

	GS_CHECK_ARG(out != NULL && ctx != NULL && path != NULL);
	memset(&b, 0, sizeof(b));
	rc = gs__fs_read_all(ctx, &data, &len, path, BUNDLE_MAX);
	if (rc == GS_ENOTFOUND) {
		return gs__err(ctx, rc,
			       "bundle %s: not found (enrol the device "
			       "with gridsyncd enroll first)",
			       path);
	} else if (rc == GS_ETOOBIG) {
		return gs__err(ctx, GS_ECORRUPT,
			       "bundle %s: damaged (larger than %u bytes)",
			       path, BUNDLE_MAX);
	} else if (rc != GS_OK) {
		return gs__err_wrap(ctx, rc, "bundle");
	}
	/* Only a warning: the device may have copied the file with a
	 * careless umask, and refusing would not make the key secret. */
	if (stat(path, &st) == 0 && (st.st_mode & 077) != 0)
		GS_WARN(ctx, "bundle %s is readable by other users", path);
	if (len == 0 || data[len - 1] != '\n' ||
	    memchr(data, '\0', len) != NULL) {
		rc = gs__err(ctx, GS_ECORRUPT,
			     "bundle %s: damaged (truncated or binary)", path);
		goto out;
	}
	/* The checksum first: random damage gets one clear message. */
	rc = check_sum(ctx, data, len, &body);
	if (rc != GS_OK)
		goto out;
	ps.ctx = ctx;
	ps.p = (const char *)data;
	ps.end = (const char *)data + body;
	ps.line = 0;
	rc = expect_line(&ps, BUNDLE_MAGIC);
	if (rc == GS_OK)
		rc = take_field(&ps, &b.device_id, "device_id", GS_WIRE_ID_MAX);
	if (rc == GS_OK)
		rc = take_field(&ps, &b.worker_id, "worker_id", GS_WIRE_ID_MAX);
	if (rc == GS_OK)
		rc = take_field(&ps, &b.scope, "scope", VALUE_MAX);
	if (rc == GS_OK)
		rc = take_field(&ps, &b.server, "server", VALUE_MAX);
	if (rc == GS_OK)
		rc = take_pem(&ps, &b.ca_pem, "ca", "CERTIFICATE");
	if (rc == GS_OK)
		rc = take_pem(&ps, &b.cert_pem, "cert", "CERTIFICATE");
	if (rc == GS_OK)
		rc = take_pem(&ps, &b.key_pem, "key", "PRIVATE KEY");
	/* Nothing may hide between the key and the checksum line. */
	if (rc == GS_OK && ps.p != ps.end)
		rc = bad(&ps, "unexpected text after the key");
	if (rc == GS_OK &&
	    (!gs__tls_id_valid(b.device_id, strlen(b.device_id)) ||
	     !gs__tls_id_valid(b.worker_id, strlen(b.worker_id))))
		rc = gs__err(ctx, GS_ECORRUPT, "bundle: malformed id");
	if (rc == GS_OK)
		rc = check_crypto(ctx, &b);
	if (rc != GS_OK)
		goto out;
	*out = b;
	memset(&b, 0, sizeof(b));
out:
	gs__bundle_fini(ctx, &b);
	OPENSSL_cleanse(data, len);
	gs__free(ctx, data);
	return rc;
}
