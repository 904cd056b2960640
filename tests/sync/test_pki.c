/*
 * Enrolment PKI: gs__pki_init is idempotent and careful with partial
 * state, gs__pki_enroll writes a 0600 bundle that gs__bundle_read reads
 * back exactly, and every kind of damage to a bundle is refused.
 */
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gridsync/transport.h>

#include "gs_test.h"

struct fx {
	struct gs_test_alloc a;
	struct gs_ctx *ctx;
	char *dir;
	long live0;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	f->ctx = gs_test_ctx_new(&f->a);
	f->dir = gs_test_tmpdir();
	f->live0 = f->a.live;
	*state = f;
	return f->ctx != NULL && f->dir != NULL ? 0 : -1;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	assert_int_equal(f->a.live, f->live0); /* no leak */
	gs_ctx_free(f->ctx);
	gs_test_tmpdir_free(f->dir);
	free(f);
	return 0;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	char *buf;
	long n;

	assert_non_null(fp);
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
	buf[n] = '\0';
	fclose(fp);
	*len = (size_t)n;
	return buf;
}

static void spit(const char *path, const void *data, size_t len)
{
	FILE *fp = fopen(path, "wb");

	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	fclose(fp);
	chmod(path, 0600);
}

static unsigned mode_of(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return (unsigned)(st.st_mode & 0777);
}

static X509 *cert_of(const char *pem)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);

	BIO_free(bio);
	assert_non_null(x);
	return x;
}

static void init_creates_and_is_idempotent(void **state)
{
	struct fx *f = *state;
	static const char *const names[] = { "district.example.org", "10.1.2.3",
					     NULL };
	static const char *const files[] = { "ca.pem", "ca.key", "server.pem",
					     "server.key" };
	char *before[4];
	size_t len[4];
	size_t l2;
	X509 *srv;

	assert_gs_ok(gs__pki_init(f->ctx, f->dir, names));
	for (int i = 0; i < 4; i++) {
		before[i] = slurp(gs_test_path(f->dir, files[i]), &len[i]);
		assert_int_equal(mode_of(gs_test_path(f->dir, files[i])), 0600);
	}
	assert_non_null(strstr(before[1], "BEGIN PRIVATE KEY"));
	/* The server certificate names every address it may be dialled at. */
	srv = cert_of(before[2]);
	assert_int_equal(X509_check_host(srv, "localhost", 0, 0, NULL), 1);
	assert_int_equal(
		X509_check_host(srv, "district.example.org", 0, 0, NULL), 1);
	assert_int_equal(X509_check_ip_asc(srv, "127.0.0.1", 0), 1);
	assert_int_equal(X509_check_ip_asc(srv, "::1", 0), 1);
	assert_int_equal(X509_check_ip_asc(srv, "10.1.2.3", 0), 1);
	assert_int_equal(X509_check_ip_asc(srv, "10.1.2.4", 0), 0);
	X509_free(srv);
	/* Again: nothing changes. */
	assert_gs_ok(gs__pki_init(f->ctx, f->dir, NULL));
	for (int i = 0; i < 4; i++) {
		char *after = slurp(gs_test_path(f->dir, files[i]), &l2);

		assert_int_equal(l2, len[i]);
		assert_memory_equal(after, before[i], l2);
		free(after);
	}
	/* Server files lost: a new server certificate from the same CA. */
	assert_int_equal(remove(gs_test_path(f->dir, "server.pem")), 0);
	assert_gs_ok(gs__pki_init(f->ctx, f->dir, NULL));
	{
		char *ca = slurp(gs_test_path(f->dir, "ca.pem"), &l2);
		char *s2 = slurp(gs_test_path(f->dir, "server.pem"), &l2);
		X509 *cax = cert_of(ca);
		X509 *sx = cert_of(s2);

		assert_string_equal(ca, before[0]);
		assert_string_not_equal(s2, before[2]);
		assert_int_equal(X509_verify(sx, X509_get0_pubkey(cax)), 1);
		X509_free(cax);
		X509_free(sx);
		free(ca);
		free(s2);
	}
	for (int i = 0; i < 4; i++)
		free(before[i]);
}

static void init_refuses_bad_input_and_partial_state(void **state)
{
	struct fx *f = *state;
	static const char *const bad[] = { "bad name!", NULL };
	static const char *const wild[] = { "*.example.org", NULL };
	bool there;

	assert_gs_err(gs__pki_init(f->ctx, f->dir, bad), GS_EINVAL);
	assert_gs_err(gs__pki_init(f->ctx, f->dir, wild), GS_EINVAL);
	there = access(gs_test_path(f->dir, "ca.key"), F_OK) == 0;
	assert_false(there); /* validated before anything was written */
	assert_gs_ok(gs__pki_init(f->ctx, f->dir, NULL));
	/* A certificate whose key is gone is corrupt, not recreated. */
	assert_int_equal(remove(gs_test_path(f->dir, "ca.key")), 0);
	assert_gs_err(gs__pki_init(f->ctx, f->dir, NULL), GS_ECORRUPT);
	assert_non_null(strstr(gs_ctx_errmsg(f->ctx), "without its key"));
	/* A key without its certificate (an interrupted init) is replaced. */
	assert_int_equal(remove(gs_test_path(f->dir, "ca.pem")), 0);
	spit(gs_test_path(f->dir, "ca.key"), "stale", 5);
	assert_gs_ok(gs__pki_init(f->ctx, f->dir, NULL));
	{
		size_t len;
		char *k = slurp(gs_test_path(f->dir, "ca.key"), &len);

		assert_non_null(strstr(k, "BEGIN PRIVATE KEY"));
		free(k);
	}
	/* A mismatched CA key is detected at enrolment. */
	{
		char *sub = gs_test_tmpdir();
		size_t len;
		char *k;

		assert_gs_ok(gs__pki_init(f->ctx, sub, NULL));
		k = slurp(gs_test_path(sub, "ca.key"), &len);
		spit(gs_test_path(f->dir, "ca.key"), k, len);
		free(k);
		assert_gs_err(gs__pki_enroll(f->ctx, f->dir, "d1", "w1", "G1",
					     "h:1", gs_test_path(f->dir, "b")),
			      GS_ECORRUPT);
		gs_test_tmpdir_free(sub);
	}
}

static void enroll_round_trip(void **state)
{
	struct fx *f = *state;
	struct gs_bundle b;
	const char *path;
	X509 *cert;
	X509 *ca;
	char cn[80];

	assert_gs_ok(gs__pki_init(f->ctx, f->dir, NULL));
	path = gs_test_path(f->dir, "dev.bundle");
	assert_gs_ok(gs__pki_enroll(
		f->ctx, f->dir, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
		"worker-17", "G1,G2/north", "[fd00::5]:7443", path));
	assert_int_equal(mode_of(path), 0600);
	memset(&b, 0, sizeof(b));
	assert_gs_ok(gs__bundle_read(&b, f->ctx, path));
	assert_string_equal(b.device_id,
			    "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
	assert_string_equal(b.worker_id, "worker-17");
	assert_string_equal(b.scope, "G1,G2/north");
	assert_string_equal(b.server, "[fd00::5]:7443");
	assert_non_null(strstr(b.key_pem, "-----BEGIN PRIVATE KEY-----"));
	cert = cert_of(b.cert_pem);
	ca = cert_of(b.ca_pem);
	X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName,
				  cn, sizeof(cn));
	assert_string_equal(cn, b.device_id);
	assert_int_equal(X509_verify(cert, X509_get0_pubkey(ca)), 1);
	assert_int_equal(X509_check_purpose(cert, X509_PURPOSE_SSL_CLIENT, 0),
			 1);
	assert_int_equal(X509_check_purpose(cert, X509_PURPOSE_SSL_SERVER, 0),
			 0);
	X509_free(cert);
	X509_free(ca);
	{
		size_t len;
		char *ca_file = slurp(gs_test_path(f->dir, "ca.pem"), &len);

		assert_string_equal(ca_file, b.ca_pem);
		free(ca_file);
	}
	gs__bundle_fini(f->ctx, &b);
	gs__bundle_fini(f->ctx, &b); /* idempotent */
	/* Never overwritten; bad ids refused; no CA, no enrolment. */
	assert_gs_err(
		gs__pki_enroll(f->ctx, f->dir, "d2", "w", "G", "h:1", path),
		GS_EEXISTS);
	assert_gs_err(gs__pki_enroll(f->ctx, f->dir, "bad id", "w", "G", "h:1",
				     gs_test_path(f->dir, "x")),
		      GS_EINVAL);
	assert_gs_err(gs__pki_enroll(f->ctx, f->dir, "d", "w", "two words",
				     "h:1", gs_test_path(f->dir, "x")),
		      GS_EINVAL);
	assert_gs_err(gs__pki_enroll(f->ctx, f->dir, "d", "w", "G", "",
				     gs_test_path(f->dir, "x")),
		      GS_EINVAL);
	{
		char *empty = gs_test_tmpdir();

		assert_gs_err(gs__pki_enroll(f->ctx, empty, "d", "w", "G",
					     "h:1", gs_test_path(empty, "x")),
			      GS_ENOTFOUND);
		assert_non_null(strstr(gs_ctx_errmsg(f->ctx), "no CA"));
		gs_test_tmpdir_free(empty);
	}
}

static void missing_bundle_is_clear(void **state)
{
	struct fx *f = *state;
	struct gs_bundle b;

	memset(&b, 0, sizeof(b));
	assert_gs_err(gs__bundle_read(&b, f->ctx,
				      gs_test_path(f->dir, "nope.bundle")),
		      GS_ENOTFOUND);
	assert_non_null(strstr(gs_ctx_errmsg(f->ctx), "not found"));
	assert_null(b.device_id);
}

/* Every single-bit flip and every truncation is refused as corrupt. */
static void damaged_bundle_refused(void **state)
{
	struct fx *f = *state;
	const char *path = gs_test_path(f->dir, "d.bundle");
	char damaged_path[4096];
	struct gs_bundle b;
	size_t len;
	char *text;
	char *copy;
	uint64_t seed = gs_test_seed("pki damage");

	snprintf(damaged_path, sizeof(damaged_path), "%s",
		 gs_test_path(f->dir, "damaged.bundle"));
	assert_gs_ok(gs__pki_init(f->ctx, f->dir, NULL));
	assert_gs_ok(gs__pki_enroll(f->ctx, f->dir, "dev-1", "w-1", "G1",
				    "127.0.0.1:7443", path));
	text = slurp(path, &len);
	copy = malloc(len);
	memset(&b, 0, sizeof(b));
	for (size_t i = 0; i < len; i++) {
		int bit = (int)(gs_test_rand(&seed) % 8);

		memcpy(copy, text, len);
		copy[i] = (char)(copy[i] ^ (1 << bit));
		spit(damaged_path, copy, len);
		assert_gs_err(gs__bundle_read(&b, f->ctx, damaged_path),
			      GS_ECORRUPT);
		assert_null(b.device_id);
	}
	for (size_t cut = 0; cut < len; cut += 1 + cut / 8) {
		spit(damaged_path, text, cut);
		assert_gs_err(gs__bundle_read(&b, f->ctx, damaged_path),
			      GS_ECORRUPT);
	}
	/* Appended garbage. */
	memcpy(copy, text, len);
	spit(damaged_path, copy, len);
	{
		FILE *fp = fopen(damaged_path, "ab");

		fputs("extra\n", fp);
		fclose(fp);
	}
	assert_gs_err(gs__bundle_read(&b, f->ctx, damaged_path), GS_ECORRUPT);
	assert_non_null(strstr(gs_ctx_errmsg(f->ctx), "damaged"));
	free(copy);
	free(text);
}

/* Recompute the checksum over a body, as someone editing the file would. */
static void write_with_sum(const char *path, const char *body)
{
	uint8_t d[GS_SHA256_LEN];
	char hex[2 * GS_SHA256_LEN + 1];
	size_t n = strlen(body);
	char *all = malloc(n + 100);

	gs__sha256(d, body, n);
	gs__hex(hex, d, sizeof(d));
	memcpy(all, body, n);
	n += (size_t)sprintf(all + n, "sha256: %s\n", hex);
	spit(path, all, n);
	free(all);
}

static char *replace(const char *s, const char *from, const char *to)
{
	const char *p = strstr(s, from);
	size_t n = strlen(s) - strlen(from) + strlen(to);
	char *out = malloc(n + 1);

	assert_non_null(p);
	memcpy(out, s, (size_t)(p - s));
	strcpy(out + (p - s), to);
	strcat(out, p + strlen(from));
	return out;
}

/* Well-formed text that does not hang together is refused too. */
static void inconsistent_bundle_refused(void **state)
{
	struct fx *f = *state;
	const char *p1 = gs_test_path(f->dir, "one.bundle");
	char p2[4096], px[4096];
	struct gs_bundle b1, b2;
	size_t len;
	char *text;
	char *body;
	char *mod;

	snprintf(p2, sizeof(p2), "%s", gs_test_path(f->dir, "two.bundle"));
	snprintf(px, sizeof(px), "%s", gs_test_path(f->dir, "x.bundle"));
	assert_gs_ok(gs__pki_init(f->ctx, f->dir, NULL));
	assert_gs_ok(
		gs__pki_enroll(f->ctx, f->dir, "dev-1", "w", "G", "h:1", p1));
	assert_gs_ok(
		gs__pki_enroll(f->ctx, f->dir, "dev-2", "w", "G", "h:1", p2));
	assert_gs_ok(gs__bundle_read(&b1, f->ctx, p1));
	assert_gs_ok(gs__bundle_read(&b2, f->ctx, p2));
	text = slurp(p1, &len);
	body = strndup(text, (size_t)(strstr(text, "sha256: ") - text));
	/* The checksum recomputed but the device id changed. */
	mod = replace(body, "device_id: dev-1", "device_id: dev-9");
	write_with_sum(px, mod);
	assert_gs_err(gs__bundle_read(&b1, f->ctx, px), GS_ECORRUPT);
	assert_non_null(strstr(gs_ctx_errmsg(f->ctx), "not for this device"));
	free(mod);
	/* Another device's key. */
	mod = replace(body, b1.key_pem, b2.key_pem);
	write_with_sum(px, mod);
	assert_gs_err(gs__bundle_read(&b1, f->ctx, px), GS_ECORRUPT);
	assert_non_null(strstr(gs_ctx_errmsg(f->ctx), "does not match"));
	free(mod);
	/* Fields out of order. */
	mod = replace(body, "worker_id: w\nscope: G\n",
		      "scope: G\nworker_id: w\n");
	write_with_sum(px, mod);
	assert_gs_err(gs__bundle_read(&b1, f->ctx, px), GS_ECORRUPT);
	assert_non_null(strstr(gs_ctx_errmsg(f->ctx), "line 3"));
	free(mod);
	/* A CA that did not sign the device certificate. */
	{
		char *sub = gs_test_tmpdir();
		char *ca2;

		assert_gs_ok(gs__pki_init(f->ctx, sub, NULL));
		ca2 = slurp(gs_test_path(sub, "ca.pem"), &len);
		mod = replace(body, b1.ca_pem, ca2);
		write_with_sum(px, mod);
		assert_gs_err(gs__bundle_read(&b1, f->ctx, px), GS_ECORRUPT);
		assert_non_null(strstr(gs_ctx_errmsg(f->ctx), "not signed"));
		free(mod);
		free(ca2);
		gs_test_tmpdir_free(sub);
	}
	/* The untouched body with a fresh checksum still reads. */
	write_with_sum(px, body);
	gs__bundle_fini(f->ctx, &b2);
	assert_gs_ok(gs__bundle_read(&b2, f->ctx, px));
	gs__bundle_fini(f->ctx, &b1);
	gs__bundle_fini(f->ctx, &b2);
	free(body);
	free(text);
}

/* Every allocation of gs__bundle_read (and of enrolment) fails in turn:
 * GS_ENOMEM, *out untouched, nothing leaked. */
static void bundle_read_survives_allocation_failures(void **state)
{
	struct fx *f = *state;
	const char *path = gs_test_path(f->dir, "a.bundle");
	char path2[4096];
	struct gs_bundle b;
	int rc;

	snprintf(path2, sizeof(path2), "%s", gs_test_path(f->dir, "e.bundle"));
	assert_gs_ok(gs__pki_init(f->ctx, f->dir, NULL));
	assert_gs_ok(
		gs__pki_enroll(f->ctx, f->dir, "dev-1", "w", "G", "h:1", path));
	for (long n = 0;; n++) {
		memset(&b, 0, sizeof(b));
		gs_test_fail_alloc_at(&f->a, n);
		rc = gs__bundle_read(&b, f->ctx, path);
		gs_test_fail_alloc_at(&f->a, -1);
		if (rc == GS_OK)
			break;
		assert_int_equal(rc, GS_ENOMEM);
		assert_null(b.device_id);
		assert_null(b.key_pem);
		assert_int_equal(f->a.live, f->live0);
		assert_true(n < 100);
	}
	gs__bundle_fini(f->ctx, &b);
	for (long n = 0;; n++) {
		gs_test_fail_alloc_at(&f->a, n);
		rc = gs__pki_enroll(f->ctx, f->dir, "dev-2", "w", "G", "h:1",
				    path2);
		gs_test_fail_alloc_at(&f->a, -1);
		if (rc == GS_OK)
			break;
		assert_int_equal(rc, GS_ENOMEM);
		assert_int_equal(access(path2, F_OK), -1);
		assert_int_equal(f->a.live, f->live0);
		assert_true(n < 100);
	}
	assert_gs_ok(gs__bundle_read(&b, f->ctx, path2));
	gs__bundle_fini(f->ctx, &b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(init_creates_and_is_idempotent,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			init_refuses_bad_input_and_partial_state, setup,
			teardown),
		cmocka_unit_test_setup_teardown(enroll_round_trip, setup,
						teardown),
		cmocka_unit_test_setup_teardown(missing_bundle_is_clear, setup,
						teardown),
		cmocka_unit_test_setup_teardown(damaged_bundle_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(inconsistent_bundle_refused,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			bundle_read_survives_allocation_failures, setup,
			teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
