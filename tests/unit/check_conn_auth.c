/*
 * check_conn_auth.c - token authentication on a client connection, over an in-process
 * bufferevent pair on a simulated loop (time moves only by mg_loop_advance, so expiry and
 * the refresh checks are exact).
 *
 * Asserted as Pulsar's ServerCnx does it: a missing, wrong or expired credential in CONNECT
 * gets ERROR{request_id -1, AuthenticationError, "Failed to authenticate"} and the
 * connection closes; a valid one gets CONNECTED and the connection keeps the role; every
 * authenticationRefreshCheckSeconds an expired credential gets one AUTH_CHALLENGE
 * ("PulsarAuthRefresh"), a valid AUTH_RESPONSE of the same role keeps the connection, none
 * by the next check closes it, another role is refused, and a client without
 * supports_auth_refresh is closed at expiry. With authentication off a credential is
 * ignored.
 */
#include "auth/auth.h"
#include "config/cfg.h"
#include "conn/conn.h"
#include "conn/conn_int.h"
#include "lib/tl.h"
#include "lib/tl_pulsar.h"
#include "lib/tl_svc.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"
#include "util/loop.h"
#include "wire/wire.h"

#include <check.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/evp.h>
#include <string.h>

#define T(x) PULSAR__PROTO__BASE_COMMAND__TYPE__##x
#define WALL0 ((int64_t)1700000000000) /* the simulated wall clock at the start */
#define AUTH_ERROR 3                   /* ServerError AuthenticationError */

static struct {
    struct tl_svc sv; /* the configuration, base and simulated loop (no broker) */
    struct auth *auth;
    struct conn_env env;
    struct tl_peer peer;
    struct conn *conn; /* NULL once closed */
    unsigned char *secret;
    size_t secret_len;
} fx;

static void on_closed(void *data, struct conn *c)
{
    (void)data;
    if (fx.conn == c) {
        fx.conn = NULL;
        fx.peer.eof = true; /* a pair does not tell its other end */
    }
}

static void setup(void)
{
    memset(&fx, 0, sizeof fx);
    tl_svc_init_sim(&fx.sv); /* wall clock at WALL0 */
    tl_cfg_token_auth(&fx.sv.cfg, &fx.secret, &fx.secret_len);
    tl_cfg_set(&fx.sv.cfg, "authenticationRefreshCheckSeconds", "10");
    tl_cfg_set(&fx.sv.cfg, "keepAliveIntervalSeconds", "3600"); /* out of the way */
}

/* The connection, with authentication on (or off: auth_on false). */
static void start(bool auth_on)
{
    char err[256];
    if (auth_on)
        ck_assert_msg(auth_new(&fx.sv.cfg, &fx.auth, err, sizeof err) == 0, "%s", err);
    fx.env = (struct conn_env){
        .cfg = &fx.sv.cfg, .loop = fx.sv.loop, .auth = fx.auth, .closed = on_closed};
    fx.conn = tl_conn_pair(&fx.sv, &fx.env, &fx.peer, 1);
}

static void teardown(void)
{
    if (fx.conn)
        conn_close(fx.conn, NULL);
    tl_peer_close(&fx.peer);
    event_base_loop(fx.sv.base, EVLOOP_NONBLOCK);
    auth_free(fx.auth);
    mg_free(fx.secret);
    tl_svc_fini(&fx.sv);
}

static void pump(void)
{
    tl_passes(fx.sv.base, 2);
}

/* A token for role expiring exp_s seconds after the start (0: no exp), signed with key. */
static char *token(const char *role, int64_t exp_s, const unsigned char *key, size_t len)
{
    char *t = NULL, err[256];
    int64_t exp = exp_s ? WALL0 / 1000 + exp_s : 0;
    ck_assert_msg(auth_token_sign("HS256", key, len, role, exp, &t, err, sizeof err) == 0, "%s",
                  err);
    return t;
}

static void send_connect(const char *method, const char *tok, bool refresh)
{
    Pulsar__Proto__CommandConnect c = PULSAR__PROTO__COMMAND_CONNECT__INIT;
    Pulsar__Proto__FeatureFlags ff = PULSAR__PROTO__FEATURE_FLAGS__INIT;
    c.client_version = "check";
    c.has_protocol_version = 1;
    c.protocol_version = 17;
    c.auth_method_name = (char *)method;
    if (tok) {
        c.has_auth_data = 1;
        c.auth_data.data = (uint8_t *)tok;
        c.auth_data.len = strlen(tok);
    }
    ff.has_supports_auth_refresh = 1;
    ff.supports_auth_refresh = refresh;
    c.feature_flags = &ff;
    wire_cmd cmd;
    tl_cmd_set(cmd, CONNECT, connect, c);
    tl_peer_send(&fx.peer, &cmd);
    pump();
}

/* AUTH_RESPONSE with tok, written but not yet read by the broker. */
static void queue_auth_response(const char *tok)
{
    Pulsar__Proto__AuthData d = PULSAR__PROTO__AUTH_DATA__INIT;
    d.auth_method_name = "token";
    d.has_auth_data = 1;
    d.auth_data.data = (uint8_t *)tok;
    d.auth_data.len = strlen(tok);
    Pulsar__Proto__CommandAuthResponse r = PULSAR__PROTO__COMMAND_AUTH_RESPONSE__INIT;
    r.response = &d;
    r.client_version = "check";
    wire_cmd cmd;
    tl_cmd_set(cmd, AUTH_RESPONSE, authresponse, r);
    tl_peer_send(&fx.peer, &cmd);
}

static void send_auth_response(const char *tok)
{
    queue_auth_response(tok);
    pump();
}

static void expect_connected(void)
{
    struct wire_frame f;
    tl_peer_expect(&fx.peer, T(CONNECTED), &f);
    wire_frame_clear(&f);
}

/* Nothing more was written, and the connection is open. */
static void expect_quiet(void)
{
    pump();
    ck_assert_uint_eq(tl_peer_pending(&fx.peer), 0);
    ck_assert_ptr_nonnull(fx.conn);
}

/* Pulsar's refusal, then the close (within the refusal's grace period). */
static void expect_refused(void)
{
    tl_expect_error(&fx.peer, UINT64_MAX, AUTH_ERROR, "Failed to authenticate");
    ck_assert_msg(tl_peer_wait_closed(&fx.peer), "the refused connection is still open");
    ck_assert_ptr_null(fx.conn);
}

/* Authentication on, then CONNECT (with supports_auth_refresh as refresh) with a token of
 * role expiring exp_s seconds after the start: CONNECTED. Returns the token (mg_free). */
static char *connect_as(const char *role, int64_t exp_s, bool refresh)
{
    start(true);
    char *t = token(role, exp_s, fx.secret, fx.secret_len);
    send_connect("token", t, refresh);
    expect_connected();
    return t;
}

/* Authentication on, then CONNECT with method and a token of role expiring exp_s seconds after
 * the start (0: never), signed with key: refused and closed. */
static void expect_token_refused(const char *method, int64_t exp_s, const unsigned char *key,
                                 size_t len)
{
    start(true);
    char *t = token("alice", exp_s, key, len);
    send_connect(method, t, true);
    expect_refused();
    mg_free(t);
}

/* The refresh check due after ms more challenges: one AUTH_CHALLENGE of method "token" with
 * the data "PulsarAuthRefresh", as Pulsar's ServerCnx sends it. */
static void expect_challenge_after(int64_t ms)
{
    mg_loop_advance(fx.sv.loop, ms);
    pump();
    struct wire_frame f;
    tl_peer_expect(&fx.peer, T(AUTH_CHALLENGE), &f);
    const Pulsar__Proto__AuthData *d = f.cmd->authchallenge->challenge;
    ck_assert_ptr_nonnull(d);
    ck_assert_str_eq(d->auth_method_name, "token");
    ck_assert_uint_eq(d->auth_data.len, strlen("PulsarAuthRefresh"));
    ck_assert_mem_eq(d->auth_data.data, "PulsarAuthRefresh", d->auth_data.len);
    wire_frame_clear(&f);
}

START_TEST(test_valid_token_keeps_role)
{
    char *t = connect_as("alice", 3600, true);
    ck_assert_str_eq(conn_role(fx.conn), "alice");
    mg_free(t);
}
END_TEST

START_TEST(test_missing_credential_refused)
{
    start(true);
    send_connect(NULL, NULL, true);
    expect_refused();
}
END_TEST

START_TEST(test_unknown_method_refused)
{
    expect_token_refused("tls", 0, fx.secret, fx.secret_len);
}
END_TEST

START_TEST(test_wrong_key_refused)
{
    unsigned char other[32];
    memcpy(other, fx.secret, sizeof other);
    other[31] ^= 0x80;
    expect_token_refused("token", 0, other, sizeof other);
}
END_TEST

START_TEST(test_expired_refused)
{
    expect_token_refused("token", -1, fx.secret, fx.secret_len);
}
END_TEST

START_TEST(test_garbage_refused)
{
    start(true);
    send_connect("token", "not.a.token", true);
    expect_refused();
}
END_TEST

START_TEST(test_auth_off_ignores_credential)
{
    start(false);
    send_connect("token", "garbage", false);
    expect_connected();
    ck_assert_ptr_null(conn_role(fx.conn));
}
END_TEST

/* exp at +25 s, checks every 10 s: the checks at 10 and 20 s say nothing, the one at 30 s
 * challenges; a fresh token of the same role answers it; later checks stay quiet. */
START_TEST(test_refresh_answered)
{
    char *t = connect_as("alice", 25, true);
    mg_loop_advance(fx.sv.loop, 20000);
    expect_quiet();
    expect_challenge_after(10000);
    char *t2 = token("alice", 3600, fx.secret, fx.secret_len);
    send_auth_response(t2);
    expect_quiet();
    mg_loop_advance(fx.sv.loop, 30000);
    expect_quiet();
    ck_assert_str_eq(conn_role(fx.conn), "alice");
    mg_free(t);
    mg_free(t2);
}
END_TEST

START_TEST(test_refresh_unanswered_closes)
{
    char *t = connect_as("alice", 5, true);
    expect_challenge_after(10000);
    mg_loop_advance(fx.sv.loop, 9999);
    expect_quiet();
    mg_loop_advance(fx.sv.loop, 1);
    pump();
    ck_assert_msg(fx.conn == NULL, "the unanswered challenge did not close the connection");
    mg_free(t);
}
END_TEST

START_TEST(test_refresh_other_role_refused)
{
    char *t = connect_as("alice", 5, true);
    expect_challenge_after(10000);
    char *t2 = token("mallory", 3600, fx.secret, fx.secret_len);
    send_auth_response(t2);
    expect_refused();
    mg_free(t);
    mg_free(t2);
}
END_TEST

/* A PRODUCER that arrives in the same read as a failed AUTH_RESPONSE is not served: after
 * the refusal the broker acts on nothing more the client sent. */
START_TEST(test_refused_refresh_serves_nothing_after)
{
    char *t = connect_as("alice", 5, true);
    expect_challenge_after(10000);
    char *bad = token("mallory", 3600, fx.secret, fx.secret_len);
    queue_auth_response(bad);
    Pulsar__Proto__CommandProducer pr = PULSAR__PROTO__COMMAND_PRODUCER__INIT;
    pr.topic = "persistent://public/default/after-refusal";
    pr.producer_id = 1;
    pr.request_id = 7;
    wire_cmd cmd;
    tl_cmd_set(cmd, PRODUCER, producer, pr);
    tl_peer_send(&fx.peer, &cmd);
    pump();
    tl_expect_error(&fx.peer, UINT64_MAX, AUTH_ERROR, "Failed to authenticate");
    struct wire_frame f;
    while (tl_peer_next(&fx.peer, &f) == 1) {
        ck_assert_msg(f.cmd->type != T(PRODUCER_SUCCESS) && f.cmd->type != T(ERROR),
                      "the refused client's PRODUCER was answered (%s)",
                      wire_command_name(f.cmd->type));
        wire_frame_clear(&f);
    }
    ck_assert_msg(tl_peer_wait_closed(&fx.peer), "the refused connection is still open");
    mg_free(t);
    mg_free(bad);
}
END_TEST

START_TEST(test_expiry_without_refresh_support_closes)
{
    char *t = connect_as("alice", 5, false);
    mg_loop_advance(fx.sv.loop, 10000);
    pump();
    ck_assert_msg(fx.conn == NULL, "an expired connection without refresh support is open");
    mg_free(t);
}
END_TEST

static Suite *conn_auth_suite(void)
{
    Suite *s = suite_create("conn_auth");
    TCase *tc = tl_tcase(s, "core", 0, setup, teardown);
    tl_add(tc, test_valid_token_keeps_role, test_missing_credential_refused,
           test_unknown_method_refused, test_wrong_key_refused, test_expired_refused,
           test_garbage_refused, test_auth_off_ignores_credential, test_refresh_answered,
           test_refresh_unanswered_closes, test_refresh_other_role_refused,
           test_refused_refresh_serves_nothing_after, test_expiry_without_refresh_support_closes);
    return s;
}

int main(void)
{
    return tl_run(conn_auth_suite());
}
