/*
 * check_authz.c - authorization (authorizationEnabled) over the whole service in-process:
 * two brokers (svc_new on 127.0.0.1, ports 0) sharing one in-memory metadata tree, with
 * token authentication (a fresh HS256 secret) and superUserRoles "root". Binary clients are
 * TCP peers sending CONNECT with a token; admin calls go through libevent's HTTP client.
 * Every wait is bounded (the peers' and tl_svc_http's deadlines); none sleeps.
 *
 * Asserted as Pulsar's: a role with no grant is refused PRODUCER / SUBSCRIBE (ERROR
 * AuthorizationError with Pulsar's message), LOOKUP and PARTITIONED_METADATA (Failed,
 * AuthorizationError) and GET_TOPICS_OF_NAMESPACE (ERROR); produce/consume granted on the
 * namespace or on one topic (through the permission paths) allows exactly that; super-users
 * and a tenant's adminRoles pass; a grant made through one broker is obeyed by the other;
 * producers and consumers whose grant is revoked are closed (CLOSE_PRODUCER/CLOSE_CONSUMER),
 * and their topic list watchers end;
 * admin calls are refused with 401 (tenant, super-user, topic operations) or 403
 * (namespace and policy operations); authorization without authentication stops svc_new.
 */
#include "auth/auth.h"
#include "lib/tl.h"
#include "lib/tl_pulsar.h"
#include "lib/tl_svc.h"
#include "ns/ns.h"
#include "ns/ns_int.h"
#include "svc/svc.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/loop.h"
#include "wire/wire.h"

#include <check.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <string.h>

#define T(x) PULSAR__PROTO__BASE_COMMAND__TYPE__##x
#define AUTHZ_ERROR 4 /* ServerError AuthorizationError */
#define TOPIC "persistent://public/default/t1"
#define TOPIC2 "persistent://public/default/t2"
#define NSP "/admin/v2/namespaces/public/default/permissions"
#define TP "/admin/v2/persistent/public/default/t1/permissions"

static struct tl_svc fx;
static unsigned char *secret;
static size_t secret_len;
static struct tl_http_reply last;
static struct tl_peer peer;

static void setup(void)
{
    mg_log_set_level(MG_LOG_ERROR);
    memset(&last, 0, sizeof last);
    memset(&peer, 0, sizeof peer);
    tl_svc_init(&fx);
    tl_cfg_token_auth(&fx.cfg, &secret, &secret_len);
    tl_cfg_set(&fx.cfg, "authorizationEnabled", "true");
    tl_cfg_set(&fx.cfg, "superUserRoles", "root,other-admin");
    tl_svc_meta(&fx, 0);
    tl_svc_meta(&fx, 1);
    tl_svc_start(&fx, 0);
}

static void teardown(void)
{
    tl_peer_close(&peer);
    tl_http_reply_free(&last);
    tl_svc_fini(&fx);
    mg_free(secret);
}

static char *token(const char *role)
{
    char *t = NULL, err[256];
    ck_assert_msg(auth_token_sign("HS256", secret, secret_len, role, 0, &t, err, sizeof err) == 0,
                  "%s", err);
    return t;
}

/* The admin call method path (body: JSON or NULL) as role on broker i; returns the status. */
static int http_on(int i, enum evhttp_cmd_type method, const char *path, const char *role,
                   const char *body)
{
    char *t = token(role);
    char *h = mg_asprintf("Bearer %s", t);
    int st = tl_svc_http(&fx, i, method, path, h, body, &last);
    mg_free(h);
    mg_free(t);
    return st;
}

static int http(enum evhttp_cmd_type method, const char *path, const char *role, const char *body)
{
    return http_on(0, method, path, role, body);
}

/* The last reply's body equals the JSON json. */
static void expect_body(const char *json)
{
    json_t *want = json_loads(json, JSON_DECODE_ANY, NULL);
    json_t *have = json_loads(last.body, JSON_DECODE_ANY, NULL);
    bool eq = want && have && json_equal(want, have);
    json_decref(want);
    json_decref(have);
    ck_assert_msg(eq, "body %s (want %s)", last.body, json);
}

/* p: a client of broker i connected as role. */
static void connect_peer(struct tl_peer *p, int i, const char *role)
{
    tl_peer_close(p);
    tl_peer_connect(p, fx.base, svc_broker_port(fx.svc[i]));
    char *t = token(role);
    Pulsar__Proto__CommandConnect c = PULSAR__PROTO__COMMAND_CONNECT__INIT;
    c.client_version = "check";
    c.has_protocol_version = 1;
    c.protocol_version = 17;
    c.auth_method_name = "token";
    c.has_auth_data = 1;
    c.auth_data.data = (uint8_t *)t;
    c.auth_data.len = strlen(t);
    wire_cmd cmd;
    tl_cmd_set(cmd, CONNECT, connect, c);
    tl_peer_send(p, &cmd);
    struct wire_frame f;
    tl_peer_expect(p, T(CONNECTED), &f);
    wire_frame_clear(&f);
    mg_free(t);
}

/* The test's client of broker i connected as role. */
static void connect_as(int i, const char *role)
{
    connect_peer(&peer, i, role);
}

static uint64_t next_id = 1;

/* The next frame is a CLOSE_PRODUCER (producer true) or CLOSE_CONSUMER of id. */
static void expect_closed(bool producer, uint64_t id)
{
    struct wire_frame f;
    tl_peer_expect(&peer, producer ? T(CLOSE_PRODUCER) : T(CLOSE_CONSUMER), &f);
    ck_assert_uint_eq(
        producer ? f.cmd->close_producer->producer_id : f.cmd->close_consumer->consumer_id, id);
    wire_frame_clear(&f);
}

/* The answer to request id: when !allowed, an ERROR AuthorizationError saying refusal (false);
 * else a frame of type want, left in f (true). */
static bool expect_answer(uint64_t id, bool allowed, const char *refusal, int want,
                          struct wire_frame *f)
{
    if (!allowed) {
        tl_expect_error(&peer, id, AUTHZ_ERROR, refusal);
        return false;
    }
    tl_peer_expect(&peer, want, f);
    return true;
}

static void expect_producer(const char *topic, bool allowed)
{
    uint64_t id = next_id++;
    tl_send_producer(&peer, topic, id, id);
    struct wire_frame f;
    if (!expect_answer(id, allowed, "Client is not authorized to Produce", T(PRODUCER_SUCCESS), &f))
        return;
    ck_assert_uint_eq(f.cmd->producer_success->request_id, id);
    wire_frame_clear(&f);
}

static void expect_subscribe(const char *topic, const char *sub, bool allowed)
{
    uint64_t id = next_id++;
    tl_send_subscribe(&peer, topic, sub, id, id, NULL);
    if (allowed)
        tl_expect_success(&peer, id);
    else
        tl_expect_error(&peer, id, AUTHZ_ERROR, "Client is not authorized to subscribe");
}

static void expect_lookup(const char *topic, bool allowed)
{
    uint64_t id = next_id++;
    tl_send_lookup(&peer, topic, id, false);
    struct wire_frame f;
    tl_peer_expect(&peer, T(LOOKUP_RESPONSE), &f);
    const Pulsar__Proto__CommandLookupTopicResponse *r = f.cmd->lookuptopicresponse;
    ck_assert_uint_eq(r->request_id, id);
    if (allowed) {
        ck_assert_int_ne(r->response,
                         PULSAR__PROTO__COMMAND_LOOKUP_TOPIC_RESPONSE__LOOKUP_TYPE__Failed);
    } else {
        ck_assert_int_eq(r->response,
                         PULSAR__PROTO__COMMAND_LOOKUP_TOPIC_RESPONSE__LOOKUP_TYPE__Failed);
        ck_assert_int_eq(r->error, AUTHZ_ERROR);
        ck_assert_str_eq(r->message, "Client is not authorized to Lookup");
    }
    wire_frame_clear(&f);
}

static void expect_partitions(const char *topic, bool allowed)
{
    uint64_t id = next_id++;
    Pulsar__Proto__CommandPartitionedTopicMetadata pm =
        PULSAR__PROTO__COMMAND_PARTITIONED_TOPIC_METADATA__INIT;
    pm.topic = (char *)topic;
    pm.request_id = id;
    wire_cmd cmd;
    tl_cmd_set(cmd, PARTITIONED_METADATA, partitionmetadata, pm);
    tl_peer_send(&peer, &cmd);
    struct wire_frame f;
    tl_peer_expect(&peer, T(PARTITIONED_METADATA_RESPONSE), &f);
    const Pulsar__Proto__CommandPartitionedTopicMetadataResponse *r =
        f.cmd->partitionmetadataresponse;
    ck_assert_uint_eq(r->request_id, id);
    if (allowed) {
        ck_assert_int_eq(
            r->response,
            PULSAR__PROTO__COMMAND_PARTITIONED_TOPIC_METADATA_RESPONSE__LOOKUP_TYPE__Success);
    } else {
        ck_assert_int_eq(
            r->response,
            PULSAR__PROTO__COMMAND_PARTITIONED_TOPIC_METADATA_RESPONSE__LOOKUP_TYPE__Failed);
        ck_assert_int_eq(r->error, AUTHZ_ERROR);
        ck_assert_str_eq(r->message, "Client is not authorized to Get Partition Metadata");
    }
    wire_frame_clear(&f);
}

static void expect_topics_of_namespace(bool allowed)
{
    uint64_t id = next_id++;
    Pulsar__Proto__CommandGetTopicsOfNamespace g =
        PULSAR__PROTO__COMMAND_GET_TOPICS_OF_NAMESPACE__INIT;
    g.request_id = id;
    g.namespace_ = "public/default";
    wire_cmd cmd;
    tl_cmd_set(cmd, GET_TOPICS_OF_NAMESPACE, gettopicsofnamespace, g);
    tl_peer_send(&peer, &cmd);
    struct wire_frame f;
    if (!expect_answer(id, allowed, "Client is not authorized to GetTopicsOfNamespace",
                       T(GET_TOPICS_OF_NAMESPACE_RESPONSE), &f))
        return;
    ck_assert_uint_eq(f.cmd->gettopicsofnamespaceresponse->request_id, id);
    wire_frame_clear(&f);
}

/* WATCH_TOPIC_LIST needs what GET_TOPICS_OF_NAMESPACE needs (consume on the namespace). */
/* WATCH_TOPIC_LIST of every topic of public/default from p, watcher and request id id. */
static void send_watch(struct tl_peer *p, uint64_t id)
{
    Pulsar__Proto__CommandWatchTopicList w = PULSAR__PROTO__COMMAND_WATCH_TOPIC_LIST__INIT;
    w.request_id = id;
    w.watcher_id = id;
    w.namespace_ = "public/default";
    w.topics_pattern = "persistent://public/default/.*";
    wire_cmd cmd;
    tl_cmd_set(cmd, WATCH_TOPIC_LIST, watchtopiclist, w);
    tl_peer_send(p, &cmd);
}

static void expect_topic_list_watch(bool allowed)
{
    uint64_t id = next_id++;
    send_watch(&peer, id);
    struct wire_frame f;
    if (!expect_answer(id, allowed, "Client is not authorized to GetTopicsOfNamespace",
                       T(WATCH_TOPIC_LIST_SUCCESS), &f))
        return;
    ck_assert_uint_eq(f.cmd->watchtopiclistsuccess->request_id, id);
    wire_frame_clear(&f);
}

START_TEST(test_no_grant_refused_everywhere)
{
    connect_as(0, "alice");
    expect_producer(TOPIC, false);
    expect_subscribe(TOPIC, "s", false);
    expect_lookup(TOPIC, false);
    expect_partitions(TOPIC, false);
    expect_topics_of_namespace(false);
    expect_topic_list_watch(false);
    ck_assert(!peer.eof); /* refusals do not close the connection */
}
END_TEST

START_TEST(test_namespace_grant)
{
    connect_as(0, "alice");
    expect_producer(TOPIC, false);
    ck_assert_int_eq(http(EVHTTP_REQ_POST, NSP "/alice", "root", "[\"produce\"]"), 204);
    ck_assert_int_eq(http(EVHTTP_REQ_GET, NSP, "root", NULL), 200);
    expect_body("{\"alice\":[\"produce\"]}");
    uint64_t p1 = next_id;
    expect_producer(TOPIC, true);
    uint64_t p2 = next_id;
    expect_producer(TOPIC2, true);
    expect_lookup(TOPIC, true);
    expect_partitions(TOPIC, true);
    expect_subscribe(TOPIC, "s", false); /* produce only */
    expect_topics_of_namespace(false);   /* needs consume */
    expect_topic_list_watch(false);
    /* reading messages through the REST API (peek, examine) needs consume too */
    const char *peek = "/admin/v2/persistent/public/default/t1/subscription/s/position/1";
    const char *examine = "/admin/v2/persistent/public/default/t1/examinemessage";
    ck_assert_int_eq(http(EVHTTP_REQ_GET, peek, "alice", NULL), 401);
    ck_assert_int_eq(http(EVHTTP_REQ_GET, examine, "alice", NULL), 401);
    ck_assert_int_eq(http(EVHTTP_REQ_POST, NSP "/alice", "root", "[\"produce\",\"consume\"]"), 204);
    uint64_t c1 = next_id;
    expect_subscribe(TOPIC, "s", true);
    expect_topics_of_namespace(true);
    expect_topic_list_watch(true);
    ck_assert_int_eq(http(EVHTTP_REQ_GET, examine, "alice", NULL), 404); /* allowed: no message */
    ck_assert_int_eq(http(EVHTTP_REQ_GET, peek, "alice", NULL), 404);
    /* Revoked: what was made with it is closed, and new producers are refused again. */
    ck_assert_int_eq(http(EVHTTP_REQ_DELETE, NSP "/alice", "root", NULL), 204);
    expect_closed(true, p1);
    expect_closed(true, p2);
    expect_closed(false, c1);
    ck_assert_int_eq(http(EVHTTP_REQ_GET, NSP, "root", NULL), 200);
    expect_body("{}");
    expect_producer(TOPIC2, false);
    expect_lookup(TOPIC, false);
}
END_TEST

START_TEST(test_topic_grant)
{
    connect_as(0, "bob");
    ck_assert_int_eq(http(EVHTTP_REQ_POST, TP "/bob", "root", "[\"consume\"]"), 204);
    ck_assert_int_eq(http(EVHTTP_REQ_GET, TP, "root", NULL), 200);
    expect_body("{\"bob\":[\"consume\"]}");
    uint64_t c1 = next_id;
    expect_subscribe(TOPIC, "s", true);
    expect_lookup(TOPIC, true);
    expect_subscribe(TOPIC2, "s", false); /* another topic */
    expect_lookup(TOPIC2, false);
    expect_producer(TOPIC, false);     /* consume only */
    expect_topics_of_namespace(false); /* a topic's grant is not the namespace's */
    /* The topic's permissions join the namespace's. */
    ck_assert_int_eq(http(EVHTTP_REQ_POST, NSP "/bob", "root", "[\"produce\"]"), 204);
    ck_assert_int_eq(http(EVHTTP_REQ_GET, TP, "root", NULL), 200);
    expect_body("{\"bob\":[\"produce\",\"consume\"]}");
    expect_producer(TOPIC, true);
    ck_assert_int_eq(http(EVHTTP_REQ_DELETE, TP "/bob", "root", NULL), 204);
    expect_closed(false, c1); /* its producer keeps the namespace's produce */
    expect_subscribe(TOPIC, "s2", false);
}
END_TEST

START_TEST(test_partition_uses_topic_grant)
{
    connect_as(0, "bob");
    ck_assert_int_eq(http(EVHTTP_REQ_POST, TP "/bob", "root", "[\"produce\"]"), 204);
    expect_producer(TOPIC "-partition-3", true);
    expect_producer(TOPIC2 "-partition-0", false);
}
END_TEST

START_TEST(test_super_user_and_tenant_admin)
{
    connect_as(0, "root");
    expect_producer(TOPIC, true);
    expect_subscribe(TOPIC, "s", true);
    expect_topics_of_namespace(true);
    connect_as(0, "carol");
    expect_producer(TOPIC, false);
    ck_assert_int_eq(http(EVHTTP_REQ_POST, "/admin/v2/tenants/public", "root",
                          "{\"adminRoles\":[\"carol\"],\"allowedClusters\":[\"standalone\"]}"),
                     204);
    expect_producer(TOPIC, true);
    expect_subscribe(TOPIC, "s", true);
    expect_topics_of_namespace(true);
    /* carol administers public's namespaces, not the tenants */
    ck_assert_int_eq(http(EVHTTP_REQ_POST, NSP "/dave", "carol", "[\"consume\"]"), 204);
    ck_assert_int_eq(http(EVHTTP_REQ_PUT, "/admin/v2/tenants/t2", "carol", "{}"), 401);
}
END_TEST

START_TEST(test_subscription_auth_roles)
{
    connect_as(0, "erin");
    ck_assert_int_eq(http(EVHTTP_REQ_POST, NSP "/erin", "root", "[\"consume\"]"), 204);
    /* reserve subscription "only-frank" to frank (as Pulsar's Policies store it) */
    struct ns *ns = svc_ns(fx.svc[0]);
    json_t *g = json_deep_copy(ns_namespace_auth(ns, "public/default"));
    json_object_set_new(json_object_get(g, "subscription_auth_roles"), "only-frank",
                        json_pack("[s]", "frank"));
    struct tl_done d = {0};
    ck_assert_int_eq(ns_namespace_auth_set(ns, "public/default", g, tl_done_cb, &d), 0);
    ck_assert_int_eq(tl_done_wait(&fx, &d), 0);
    expect_subscribe(TOPIC, "only-frank", false);
    expect_subscribe(TOPIC, "anyone", true);
}
END_TEST

START_TEST(test_admin_refusals)
{
    /* 401: super-user operations (tenants, clusters, brokers) */
    ck_assert_int_eq(http(EVHTTP_REQ_GET, "/admin/v2/tenants", "alice", NULL), 401);
    ck_assert_msg(strstr(last.body, "requires super-user access"), "%s", last.body);
    ck_assert_int_eq(http(EVHTTP_REQ_PUT, "/admin/v2/tenants/x", "alice", "{}"), 401);
    ck_assert_int_eq(http(EVHTTP_REQ_DELETE, "/admin/v2/tenants/public", "alice", NULL), 401);
    ck_assert_int_eq(http(EVHTTP_REQ_GET, "/admin/v2/brokers/health", "alice", NULL), 401);
    /* 401: tenant operations (namespaces of a tenant, creating one) */
    ck_assert_int_eq(http(EVHTTP_REQ_GET, "/admin/v2/namespaces/public", "alice", NULL), 401);
    ck_assert_int_eq(http(EVHTTP_REQ_PUT, "/admin/v2/namespaces/public/n2", "alice", "{}"), 401);
    /* 403: namespace and policy operations */
    ck_assert_int_eq(http(EVHTTP_REQ_GET, NSP, "alice", NULL), 403);
    ck_assert_int_eq(http(EVHTTP_REQ_POST, NSP "/alice", "alice", "[\"produce\"]"), 403);
    ck_assert_int_eq(
        http(EVHTTP_REQ_POST, "/admin/v2/namespaces/public/default/messageTTL", "alice", "10"),
        403);
    ck_assert_int_eq(
        http(EVHTTP_REQ_GET, "/admin/v2/namespaces/public/default/topics", "alice", NULL), 403);
    ck_assert_int_eq(http(EVHTTP_REQ_DELETE, "/admin/v2/namespaces/public/default", "alice", NULL),
                     403);
    /* 401: topic operations */
    ck_assert_int_eq(http(EVHTTP_REQ_GET, TP, "alice", NULL), 401);
    ck_assert_int_eq(http(EVHTTP_REQ_PUT, "/admin/v2/persistent/public/default/t1", "alice", NULL),
                     401);
    ck_assert_int_eq(
        http(EVHTTP_REQ_GET, "/admin/v2/persistent/public/default/t1/stats", "alice", NULL), 401);
    ck_assert_int_eq(
        http(EVHTTP_REQ_GET, "/lookup/v2/topic/persistent/public/default/t1", "alice", NULL), 401);
    /* with consume on the namespace: its topics listed, a topic looked up */
    ck_assert_int_eq(http(EVHTTP_REQ_POST, NSP "/alice", "root", "[\"consume\"]"), 204);
    ck_assert_int_eq(
        http(EVHTTP_REQ_GET, "/admin/v2/namespaces/public/default/topics", "alice", NULL), 200);
    ck_assert_int_eq(
        http(EVHTTP_REQ_GET, "/lookup/v2/topic/persistent/public/default/t1", "alice", NULL), 200);
    /* still not a policy operation */
    ck_assert_int_eq(http(EVHTTP_REQ_POST, NSP "/alice", "alice", "[\"produce\"]"), 403);
    /* the open paths stay open; super-users pass */
    ck_assert_int_eq(http(EVHTTP_REQ_GET, "/admin/v2/brokers/ready", "alice", NULL), 200);
    ck_assert_int_eq(http(EVHTTP_REQ_GET, "/admin/v2/tenants", "other-admin", NULL), 200);
}
END_TEST

/* An operation on a partitioned topic is split into sub-requests to the admin API: they
 * carry the call's credential, so they are authorized as the call was. */
START_TEST(test_partitioned_operation_keeps_credential)
{
    const char *pt = "/admin/v2/persistent/public/default/pt";
    char path[256];
    snprintf(path, sizeof path, "%s/partitions", pt);
    ck_assert_int_eq(http(EVHTTP_REQ_PUT, path, "root", "2"), 204);
    snprintf(path, sizeof path, "%s/partitioned-stats", pt);
    ck_assert_int_eq(http(EVHTTP_REQ_GET, path, "root", NULL), 200);
    ck_assert_int_eq(http(EVHTTP_REQ_GET, path, "jane", NULL), 401);
    snprintf(path, sizeof path, "%s/permissions/jane", pt);
    ck_assert_int_eq(http(EVHTTP_REQ_POST, path, "root", "[\"consume\"]"), 204);
    snprintf(path, sizeof path, "%s/partitioned-stats", pt);
    ck_assert_int_eq(http(EVHTTP_REQ_GET, path, "jane", NULL), 200);
}
END_TEST

START_TEST(test_permission_bodies)
{
    ck_assert_int_eq(http(EVHTTP_REQ_POST, NSP "/a", "root", "[\"fly\"]"), 400);
    ck_assert_int_eq(http(EVHTTP_REQ_POST, NSP "/a", "root", "{\"produce\":1}"), 400);
    ck_assert_int_eq(http(EVHTTP_REQ_POST, NSP "/a", "root", "not json"), 400);
    ck_assert_int_eq(http(EVHTTP_REQ_POST, "/admin/v2/namespaces/public/nope/permissions/a", "root",
                          "[\"produce\"]"),
                     404);
    ck_assert_int_eq(http(EVHTTP_REQ_GET, NSP, "root", NULL), 200);
    expect_body("{}");
    /* stored in the namespace's Policies as Pulsar keeps them */
    ck_assert_int_eq(
        http(EVHTTP_REQ_POST, NSP "/a", "root", "[\"consume\",\"produce\",\"functions\"]"), 204);
    ck_assert_int_eq(http(EVHTTP_REQ_POST, TP "/b", "root", "[\"produce\"]"), 204);
    ck_assert_int_eq(http(EVHTTP_REQ_GET, "/admin/v2/namespaces/public/default", "root", NULL),
                     200);
    json_t *pol = json_loads(last.body, 0, NULL);
    ck_assert_ptr_nonnull(pol);
    json_t *want = json_loads("{\"namespace_auth\":{\"a\":[\"produce\",\"consume\",\"functions\"]},"
                              "\"destination_auth\":{\"" TOPIC "\":{\"b\":[\"produce\"]}},"
                              "\"subscription_auth_roles\":{}}",
                              0, NULL);
    ck_assert_msg(json_equal(json_object_get(pol, "auth_policies"), want), "%s", last.body);
    json_decref(pol);
    json_decref(want);
}
END_TEST

/* As Pulsar re-checks producers and consumers on a policies update: those that lost their
 * permission get CLOSE_PRODUCER / CLOSE_CONSUMER (on persistent and non-persistent topics of
 * the namespace); a change that keeps it closes nothing. */
START_TEST(test_revoked_endpoints_closed)
{
    connect_as(0, "hank");
    ck_assert_int_eq(http(EVHTTP_REQ_POST, NSP "/hank", "root", "[\"produce\",\"consume\"]"), 204);
    uint64_t prod = next_id;
    expect_producer(TOPIC, true);
    uint64_t cons = next_id;
    expect_subscribe(TOPIC, "s", true);
    uint64_t np_prod = next_id; /* the namespace's non-persistent topics are re-checked too */
    expect_producer("non-persistent://public/default/np", true);
    /* a grant to someone else, and hank's own unchanged: nothing closed */
    ck_assert_int_eq(http(EVHTTP_REQ_POST, NSP "/ivy", "root", "[\"consume\"]"), 204);
    tl_send_ping(&peer);
    struct wire_frame f;
    tl_peer_expect(&peer, T(PONG), &f);
    wire_frame_clear(&f);
    /* produce taken away: the producer is closed, the consumer stays */
    ck_assert_int_eq(http(EVHTTP_REQ_POST, NSP "/hank", "root", "[\"consume\"]"), 204);
    expect_closed(true, prod);
    expect_closed(true, np_prod);
    tl_send_ping(&peer);
    tl_peer_expect(&peer, T(PONG), &f);
    wire_frame_clear(&f);
    /* everything taken away: the consumer is closed too */
    ck_assert_int_eq(http(EVHTTP_REQ_DELETE, NSP "/hank", "root", NULL), 204);
    expect_closed(false, cons);
    expect_producer(TOPIC, false); /* its reconnection is refused */
}
END_TEST

/* A topic list watcher (regex consumers) whose role loses consume on the namespace is ended
 * with the producers and consumers: the next topic created is not told to it. While the
 * grant stands, a created topic is told (the same path). */
START_TEST(test_revoked_watcher_ended)
{
    connect_as(0, "jack");
    ck_assert_int_eq(http(EVHTTP_REQ_POST, NSP "/jack", "root", "[\"consume\"]"), 204);
    uint64_t wid = next_id;
    expect_topic_list_watch(true);
    /* root's watcher on another connection: when it hears a topic, jack's would have too */
    struct tl_peer rp;
    memset(&rp, 0, sizeof rp);
    connect_peer(&rp, 0, "root");
    send_watch(&rp, 9000);
    struct wire_frame f;
    tl_peer_expect(&rp, T(WATCH_TOPIC_LIST_SUCCESS), &f);
    wire_frame_clear(&f);
    static const char *const names[] = {"persistent://public/default/wa",
                                        "persistent://public/default/wb"};
    for (int k = 0; k < 2; k++) {
        if (k == 1) /* revoked before the second topic */
            ck_assert_int_eq(http(EVHTTP_REQ_DELETE, NSP "/jack", "root", NULL), 204);
        char *path = mg_asprintf("/admin/v2/persistent/public/default/%s", names[k] + 28);
        ck_assert_int_eq(http(EVHTTP_REQ_PUT, path, "root", NULL), 204);
        mg_free(path);
        tl_peer_expect(&rp, T(WATCH_TOPIC_UPDATE), &f);
        ck_assert_str_eq(f.cmd->watchtopicupdate->new_topics[0], names[k]);
        wire_frame_clear(&f);
        if (k == 0) {
            tl_peer_expect(&peer, T(WATCH_TOPIC_UPDATE), &f);
            ck_assert_uint_eq(f.cmd->watchtopicupdate->watcher_id, wid);
            ck_assert_str_eq(f.cmd->watchtopicupdate->new_topics[0], names[0]);
            wire_frame_clear(&f);
        }
    }
    tl_send_ping(&peer);
    tl_peer_expect(&peer, T(PONG), &f); /* no WATCH_TOPIC_UPDATE of wb before it */
    wire_frame_clear(&f);
    ck_assert(!peer.eof);
    tl_peer_close(&rp);
}
END_TEST

START_TEST(test_grant_seen_by_other_broker)
{
    tl_svc_start(&fx, 1);
    connect_as(1, "gina");
    expect_producer(TOPIC, false);
    ck_assert_int_eq(http_on(0, EVHTTP_REQ_POST, NSP "/gina", "root", "[\"produce\"]"), 204);
    struct ns *ns1 = svc_ns(fx.svc[1]);
    for (int i = 0; i < 200 && !ns_namespace_auth(ns1, "public/default"); i++) {
        ns_res_refresh_now(ns1);
        tl_base_run_for(fx.base, 20);
    }
    uint64_t p1 = next_id;
    expect_producer(TOPIC, true);
    ck_assert_int_eq(http_on(1, EVHTTP_REQ_GET, NSP, "root", NULL), 200);
    expect_body("{\"gina\":[\"produce\"]}");
    ck_assert_int_eq(http_on(0, EVHTTP_REQ_DELETE, NSP "/gina", "root", NULL), 204);
    for (int i = 0; i < 200 && ns_namespace_auth(ns1, "public/default"); i++) {
        ns_res_refresh_now(ns1);
        tl_base_run_for(fx.base, 20);
    }
    expect_closed(true, p1); /* broker 1 re-checked it on its reload */
    expect_producer(TOPIC2, false);
}
END_TEST

START_TEST(test_authorization_needs_authentication)
{
    tl_svc_stop(&fx, 0);
    tl_cfg_set(&fx.cfg, "authenticationEnabled", "false");
    ck_assert_ptr_null(svc_new(fx.loop, &fx.cfg, fx.meta[0]));
    struct auth *a = NULL;
    char err[256] = "";
    ck_assert_int_lt(auth_new(&fx.cfg, &a, err, sizeof err), 0);
    ck_assert_msg(strstr(err, "authorizationEnabled"), "%s", err);
}
END_TEST

START_TEST(test_authorization_off_allows)
{
    tl_svc_stop(&fx, 0);
    tl_cfg_set(&fx.cfg, "authorizationEnabled", "false");
    tl_svc_start(&fx, 0);
    connect_as(0, "alice");
    expect_producer(TOPIC, true);
    expect_topics_of_namespace(true);
    ck_assert_int_eq(http(EVHTTP_REQ_GET, "/admin/v2/tenants", "alice", NULL), 200);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("authz");
    TCase *tc = tl_tcase(s, "core", 60, setup, teardown);
    tl_add(tc, test_no_grant_refused_everywhere, test_namespace_grant, test_topic_grant,
           test_partition_uses_topic_grant, test_super_user_and_tenant_admin,
           test_subscription_auth_roles, test_admin_refusals, test_permission_bodies,
           test_revoked_endpoints_closed, test_revoked_watcher_ended,
           test_partitioned_operation_keeps_credential, test_grant_seen_by_other_broker,
           test_authorization_needs_authentication, test_authorization_off_allows);
    return tl_run(s);
}
