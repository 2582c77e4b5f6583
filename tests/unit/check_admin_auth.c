/*
 * check_admin_auth.c - token authentication of the admin HTTP server: the whole service
 * in-process (svc_new on 127.0.0.1, ports 0, in-memory metadata and topics) with
 * authenticationEnabled and a fresh HS256 secret, asked with libevent's HTTP client on the
 * same loop until the reply arrives (bounded, no sleeps).
 *
 * As Pulsar's web service: a missing, malformed, wrongly signed or expired
 * "Authorization: Bearer" credential is answered 401 with the servlet error page
 * ("Authentication required"); a valid one reaches the resource; /status.html is always
 * open; /metrics is open unless authenticateMetricsEndpoint=true. An unknown provider stops
 * svc_new with an error naming the key.
 */
#include "auth/auth.h"
#include "lib/tl.h"
#include "lib/tl_svc.h"
#include "svc/svc.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/loop.h"

#include <check.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct tl_svc fx;
static unsigned char *secret;
static size_t secret_len;
static struct tl_http_reply last;

/* GET path with the Authorization header authz (NULL: none); returns the status. */
static int get(const char *path, const char *authz)
{
    return tl_svc_http(&fx, 0, EVHTTP_REQ_GET, path, authz, NULL, &last);
}

static void setup(void)
{
    mg_log_set_level(MG_LOG_ERROR);
    memset(&last, 0, sizeof last);
    tl_svc_init(&fx);
    tl_cfg_token_auth(&fx.cfg, &secret, &secret_len);
    tl_svc_meta(&fx, 0);
}

static void teardown(void)
{
    tl_http_reply_free(&last);
    tl_svc_fini(&fx);
    mg_free(secret);
}

/* "Bearer <token of role, expiring exp_s seconds from now (0: never)>", signed with key. */
static char *bearer(const char *role, int64_t exp_s, const unsigned char *key, size_t len)
{
    char *t = NULL, err[256];
    int64_t exp = exp_s ? mg_wall_ms() / 1000 + exp_s : 0;
    ck_assert_msg(auth_token_sign("HS256", key, len, role, exp, &t, err, sizeof err) == 0, "%s",
                  err);
    char *h = mg_asprintf("Bearer %s", t);
    mg_free(t);
    return h;
}

static void expect_401(const char *path, const char *authz)
{
    ck_assert_int_eq(get(path, authz), 401);
    ck_assert_msg(strstr(last.body, "HTTP ERROR 401 Authentication required") != NULL,
                  "401 body: %s", last.body);
}

START_TEST(test_bearer_required)
{
    tl_svc_start(&fx, 0);
    expect_401("/admin/v2/tenants", NULL);
    expect_401("/admin/v2/brokers/health", NULL);
    expect_401("/lookup/v2/topic/persistent/public/default/t", NULL);
    char *ok = bearer("admin", 3600, secret, secret_len);
    expect_401("/admin/v2/tenants", ok + strlen("Bearer ")); /* no "Bearer " */
    expect_401("/admin/v2/tenants", "Basic YWRtaW46YWRtaW4=");
    char *expired = bearer("admin", -10, secret, secret_len);
    expect_401("/admin/v2/tenants", expired);
    unsigned char other[32];
    memcpy(other, secret, sizeof other);
    other[5] ^= 1;
    char *wrong = bearer("admin", 0, other, sizeof other);
    expect_401("/admin/v2/tenants", wrong);
    ck_assert_int_eq(get("/admin/v2/tenants", ok), 200);
    ck_assert_msg(strstr(last.body, "public") != NULL, "%s", last.body);
    mg_free(ok);
    mg_free(expired);
    mg_free(wrong);
}
END_TEST

START_TEST(test_open_paths)
{
    tl_svc_start(&fx, 0);
    ck_assert_int_eq(get("/status.html", NULL), 200);
    ck_assert_int_eq(get("/metrics", NULL), 200);
}
END_TEST

START_TEST(test_metrics_protected)
{
    tl_cfg_set(&fx.cfg, "authenticateMetricsEndpoint", "true");
    tl_svc_start(&fx, 0);
    expect_401("/metrics", NULL);
    char *ok = bearer("prometheus", 0, secret, secret_len);
    ck_assert_int_eq(get("/metrics", ok), 200);
    ck_assert_int_eq(get("/status.html", NULL), 200);
    mg_free(ok);
}
END_TEST

START_TEST(test_unknown_provider_stops_start)
{
    tl_cfg_set(&fx.cfg, "authenticationProviders", "com.example.AuthenticationProviderNope");
    struct svc *s = svc_new(fx.loop, &fx.cfg, fx.meta[0]);
    ck_assert_ptr_null(s);
}
END_TEST

static Suite *admin_auth_suite(void)
{
    Suite *s = suite_create("admin_auth");
    TCase *tc = tl_tcase(s, "core", 60, setup, teardown);
    tl_add(tc, test_bearer_required, test_open_paths, test_metrics_protected,
           test_unknown_provider_stops_start);
    return s;
}

int main(void)
{
    return tl_run(admin_auth_suite());
}
