/*
 * TLS 1.3 mutual authentication over the real transport: the accepted
 * case and each way a peer must be refused (GS_EDENIED on both sides,
 * with detail text), plus loading errors of the TLS configuration.
 * gs-test: timeout=120 labels=net
 */
#include "test_transport_fixture.h"

static const size_t k_one[] = { 64 };

/* Dial with the world's client options; wait until both sides closed. */
static struct tpeer *dial_and_settle(struct tw *w, const char *host)
{
	struct tpeer *cp = tw_peer(w);

	cp->sizes = k_one;
	cp->n_sizes = 1;
	cp->close_when_echoed = true;
	tw_dial_host(w, cp, host);
	RUN_UNTIL(w, cp->close_calls == 1, 20000);
	RUN_UNTIL(w, w->n_srv == 1 && w->srv[0].close_calls == 1, 20000);
	return cp;
}

static void mutual_auth_ok(void **state)
{
	struct tw *w = tw_new(true);
	struct tpeer *cp;

	(void)state;
	tw_listen(w);
	cp = dial_and_settle(w, NULL);
	assert_int_equal(cp->connect_status, GS_OK);
	assert_int_equal(cp->close_status, GS_OK);
	assert_false(cp->mismatch);
	assert_int_equal(cp->expect, 1);
	assert_string_equal(cp->peer_id, "gridsyncd");
	assert_int_equal(w->srv[0].close_status, GS_OK);
	assert_true(w->srv[0].peer_id_at_first_frame);
	assert_string_equal(w->srv[0].peer_id, "dev-001");
	tw_free(w);
}

/* The server certificate carries DNS:localhost too. */
static void mutual_auth_by_name(void **state)
{
	struct tw *w = tw_new(true);
	struct tpeer *cp;

	(void)state;
	tw_listen(w);
	w->copts.server_name = "localhost";
	cp = dial_and_settle(w, NULL);
	assert_int_equal(cp->connect_status, GS_OK);
	assert_int_equal(cp->close_status, GS_OK);
	tw_free(w);
}

static void expect_denied(struct tw *w,
			  struct tpeer *cp,
			  const char *client_says,
			  const char *server_says)
{
	assert_int_equal(cp->connect_calls, 1);
	assert_int_equal(cp->connect_status, GS_EDENIED);
	assert_int_equal(cp->close_status, GS_EDENIED);
	assert_int_equal(w->srv[0].close_status, GS_EDENIED);
	assert_int_equal(w->srv[0].frames, 0);
	if (strstr(cp->detail, client_says) == NULL)
		fail_msg("client detail '%s' lacks '%s'", cp->detail,
			 client_says);
	if (strstr(w->srv[0].detail, server_says) == NULL)
		fail_msg("server detail '%s' lacks '%s'", w->srv[0].detail,
			 server_says);
}

/* A device enrolled by another district's CA. */
static void client_from_other_ca(void **state)
{
	struct tw *w = tw_new(true);
	struct gs_bundle other;
	char *dir2 = gs_test_tmpdir();
	struct tpeer *cp;

	(void)state;
	tw_pki(w->ctx, dir2, "dev-999", &other);
	gs__tls_free(w->ctls);
	/* Trusts our server, but its certificate is from CA 2. */
	assert_gs_ok(gs__tls_client_new(&w->ctls, w->ctx, w->bundle.ca_pem,
					other.cert_pem, other.key_pem));
	w->copts.tls = w->ctls;
	tw_listen(w);
	cp = dial_and_settle(w, NULL);
	expect_denied(w, cp, "unknown ca", "unable to get local issuer");
	gs__bundle_fini(w->ctx, &other);
	gs_test_tmpdir_free(dir2);
	tw_free(w);
}

static void client_without_certificate(void **state)
{
	struct tw *w = tw_new(true);
	struct tpeer *cp;

	(void)state;
	gs__tls_free(w->ctls);
	assert_gs_ok(gs__tls_client_new(&w->ctls, w->ctx, w->bundle.ca_pem,
					NULL, NULL));
	w->copts.tls = w->ctls;
	tw_listen(w);
	cp = dial_and_settle(w, NULL);
	expect_denied(w, cp, "certificate required",
		      "did not return a certificate");
	tw_free(w);
}

/* The server's certificate is not for the name the client expects. */
static void server_name_mismatch(void **state)
{
	struct tw *w = tw_new(true);
	struct tpeer *cp;

	(void)state;
	tw_listen(w);
	w->copts.server_name = "district.example.org";
	cp = dial_and_settle(w, NULL);
	expect_denied(w, cp, "hostname mismatch", "alert");
	tw_free(w);
}

/* Dialling an address the certificate does not list. */
static void server_ip_mismatch(void **state)
{
	struct tw *w = tw_new(true);
	struct tpeer *cp;

	(void)state;
	tw_listen(w);
	w->copts.server_name = "10.9.8.7";
	cp = dial_and_settle(w, NULL);
	expect_denied(w, cp, "IP address mismatch", "alert");
	tw_free(w);
}

/* A client that trusts another CA refuses our server. */
static void client_trusts_other_ca(void **state)
{
	struct tw *w = tw_new(true);
	struct gs_bundle other;
	char *dir2 = gs_test_tmpdir();
	struct tpeer *cp;

	(void)state;
	tw_pki(w->ctx, dir2, "dev-001", &other);
	gs__tls_free(w->ctls);
	assert_gs_ok(gs__tls_client_new(&w->ctls, w->ctx, other.ca_pem,
					w->bundle.cert_pem, w->bundle.key_pem));
	w->copts.tls = w->ctls;
	tw_listen(w);
	cp = dial_and_settle(w, NULL);
	expect_denied(w, cp, "unable to get local issuer", "unknown ca");
	gs__bundle_fini(w->ctx, &other);
	gs_test_tmpdir_free(dir2);
	tw_free(w);
}

/* Plain frames sent to a TLS server are not a handshake. */
static void plain_client_to_tls_server(void **state)
{
	struct tw *w = tw_new(true);
	struct tpeer *cp;

	(void)state;
	tw_listen(w);
	w->copts.tls = NULL;
	cp = dial_and_settle(w, NULL);
	assert_int_equal(w->srv[0].close_status, GS_EDENIED);
	assert_int_equal(w->srv[0].frames, 0);
	assert_int_equal(cp->expect, 0);
	tw_free(w);
}

/* A device certificate cannot serve as a server certificate (EKU). */
static void device_cert_as_server_refused(void **state)
{
	struct tw *w = tw_new(true);
	struct tpeer *cp;

	(void)state;
	gs__tls_free(w->stls);
	assert_gs_ok(gs__tls_server_new(&w->stls, w->ctx, w->bundle.ca_pem,
					w->bundle.cert_pem, w->bundle.key_pem));
	w->sopts.tls = w->stls;
	tw_listen(w);
	w->copts.server_name = "dev-001";
	cp = dial_and_settle(w, NULL);
	assert_int_equal(cp->close_status, GS_EDENIED);
	assert_int_equal(w->srv[0].close_status, GS_EDENIED);
	tw_free(w);
}

static void config_errors(void **state)
{
	struct gs_test_alloc a;
	struct gs_ctx *ctx = gs_test_ctx_new(&a);
	char *dir = gs_test_tmpdir();
	char *dir2 = gs_test_tmpdir();
	struct gs_bundle b, b2;
	struct gs_tls *t = NULL;
	long live0;

	(void)state;
	tw_pki(ctx, dir, "dev-001", &b);
	tw_pki(ctx, dir2, "dev-002", &b2);
	live0 = a.live;
	assert_gs_err(gs__tls_server_new(&t, ctx, "/nonexistent/ca.pem",
					 b.cert_pem, b.key_pem),
		      GS_ENOTFOUND);
	assert_non_null(strstr(gs_ctx_errmsg(ctx), "tls: ca"));
	assert_gs_err(gs__tls_client_new(&t, ctx,
					 "-----BEGIN CERTIFICATE-----\nxx\n",
					 NULL, NULL),
		      GS_EINVAL);
	assert_gs_err(
		gs__tls_client_new(&t, ctx, b.ca_pem, b.cert_pem, b2.key_pem),
		GS_EINVAL);
	assert_non_null(strstr(gs_ctx_errmsg(ctx), "does not match"));
	assert_gs_err(gs__tls_client_new(&t, ctx, b.ca_pem, b.cert_pem, NULL),
		      GS_EINVAL);
	assert_gs_err(gs__tls_server_new(&t, ctx, b.ca_pem, NULL, NULL),
		      GS_EINVAL);
	assert_gs_err(
		gs__tls_client_new(&t, ctx, b.ca_pem, b.key_pem, b.key_pem),
		GS_EINVAL);
	assert_null(t);
	/* Several CA certificates in one argument are all trusted. */
	{
		size_t l1 = strlen(b.ca_pem), l2 = strlen(b2.ca_pem);
		char *both = malloc(l1 + l2 + 1);

		memcpy(both, b.ca_pem, l1);
		memcpy(both + l1, b2.ca_pem, l2 + 1);
		assert_gs_ok(gs__tls_client_new(&t, ctx, both, b.cert_pem,
						b.key_pem));
		gs__tls_free(t);
		free(both);
	}
	assert_int_equal(a.live, live0);
	gs__bundle_fini(ctx, &b);
	gs__bundle_fini(ctx, &b2);
	gs_ctx_free(ctx);
	gs_test_tmpdir_free(dir);
	gs_test_tmpdir_free(dir2);
}

/* Every allocation of TLS setup fails in turn: a clean GS_ENOMEM each
 * time and nothing left behind. */
static void tls_new_survives_allocation_failures(void **state)
{
	struct gs_test_alloc a;
	struct gs_ctx *ctx = gs_test_ctx_new(&a);
	char *dir = gs_test_tmpdir();
	struct gs_bundle b;
	struct gs_tls *t = NULL;
	long live0;
	int rc;

	(void)state;
	tw_pki(ctx, dir, "dev-001", &b);
	live0 = a.live;
	for (long n = 0;; n++) {
		gs_test_fail_alloc_at(&a, n);
		rc = gs__tls_server_new(&t, ctx, gs_test_path(dir, "ca.pem"),
					gs_test_path(dir, "server.pem"),
					gs_test_path(dir, "server.key"));
		gs_test_fail_alloc_at(&a, -1);
		if (rc == GS_OK)
			break;
		assert_int_equal(rc, GS_ENOMEM);
		assert_null(t);
		assert_int_equal(a.live, live0);
		assert_true(n < 100);
	}
	gs__tls_free(t);
	assert_int_equal(a.live, live0);
	gs__bundle_fini(ctx, &b);
	gs_ctx_free(ctx);
	gs_test_tmpdir_free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(mutual_auth_ok),
		cmocka_unit_test(mutual_auth_by_name),
		cmocka_unit_test(client_from_other_ca),
		cmocka_unit_test(client_without_certificate),
		cmocka_unit_test(server_name_mismatch),
		cmocka_unit_test(server_ip_mismatch),
		cmocka_unit_test(client_trusts_other_ca),
		cmocka_unit_test(plain_client_to_tls_server),
		cmocka_unit_test(device_cert_as_server_refused),
		cmocka_unit_test(config_errors),
		cmocka_unit_test(tls_new_survives_allocation_failures),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
