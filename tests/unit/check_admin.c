/*
 * check_admin.c - the admin HTTP server (broker/admin): route table, path decoding, and the
 * answers of every resource over real HTTP.
 *
 * The route table and the path decoder are checked directly (admin_path_split,
 * admin_path_match, admin_route_find, admin_nul_reason): every row of admin_routes is
 * reached by some path and method (no row hides behind an earlier one) and captures what
 * its pattern names. Everything else runs the whole service in-process (svc_new, ports 0 on
 * 127.0.0.1, the in-memory metadata store, managedLedgerStore=memory) and talks to its
 * admin port with libevent's HTTP client on the same loop: the loop runs until the reply
 * arrives, bounded by a deadline (no sleeps). Every request checks that the admin server has
 * no call left open once its reply arrived (magnetar_admin_requests_open back to 0). Two
 * brokers on one loop (two sessions of one in-memory metadata tree, as check_own.c) show
 * the ownership gate: a topic call on the broker that does not own the topic's bundle is
 * redirected (307) to the owner, with authoritative=true.
 */
#include "PulsarApi.pb-c.h"
#include "admin/admin_int.h"
#include "lib/tl_pulsar.h"
#include "lib/tl_svc.h"
#include "meta/meta.h"
#include "ml/ml.h"
#include "ns/ns.h"
#include "ns/ns_int.h"
#include "svc/svc.h"
#include "topic/topic.h"
#include "topic/topic_int.h" /* compact.threshold */
#include "util/alloc.h"
#include "util/compress.h"
#include "util/err.h"

#include <check.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct tl_svc fx; /* broker 1 only in the two-broker tests */

static struct tl_http_reply last; /* the last reply (rq() frees the one before) */

/* ---- fixture ------------------------------------------------------------------------------- */

static void setup(void)
{
    memset(&last, 0, sizeof last);
    tl_svc_init(&fx);
    tl_cfg_set(&fx.cfg, "allowAutoTopicCreation", "true");
    tl_svc_meta(&fx, 0);
    tl_svc_start(&fx, 0);
}

/* A second broker on a second session of the same metadata tree. */
static void setup2(void)
{
    setup();
    tl_svc_meta(&fx, 1);
    tl_svc_start(&fx, 1);
}

static void teardown(void)
{
    tl_http_reply_free(&last);
    tl_svc_fini(&fx);
}

/* Admin calls routed and not answered yet on broker i. */
static int64_t calls_open(int i)
{
    return svc_admin(fx.svc[i])->calls_open;
}

/* ---- an HTTP client on the loop ------------------------------------------------------------- */

static enum evhttp_cmd_type method_of(const char *m)
{
    if (strcmp(m, "GET") == 0)
        return EVHTTP_REQ_GET;
    if (strcmp(m, "HEAD") == 0)
        return EVHTTP_REQ_HEAD;
    if (strcmp(m, "PUT") == 0)
        return EVHTTP_REQ_PUT;
    if (strcmp(m, "POST") == 0)
        return EVHTTP_REQ_POST;
    ck_assert_str_eq(m, "DELETE");
    return EVHTTP_REQ_DELETE;
}

/* Send one request to broker i's admin port and wait for its reply (into last). body NULL:
 * none. Checks that no admin call is left open on either broker afterwards. */
static int rq_on(int i, const char *method, const char *path, const char *body)
{
    tl_svc_http(&fx, i, method_of(method), path, NULL, body, &last);
    for (int k = 0; k < 2; k++)
        if (fx.svc[k])
            ck_assert_msg(calls_open(k) == 0, "%s %s: %lld admin calls left open on broker %d",
                          method, path, (long long)calls_open(k), k);
    return last.status;
}

static int rq(const char *method, const char *path, const char *body)
{
    return rq_on(0, method, path, body);
}

/* The reply has status and, when json is not NULL, a JSON body equal to json. */
static void expect_json_on(int i, const char *method, const char *path, const char *body,
                           int status, const char *json)
{
    int got = rq_on(i, method, path, body);
    ck_assert_msg(got == status, "%s %s: status %d (want %d), body %s", method, path, got, status,
                  last.body);
    if (!json)
        return;
    ck_assert_msg(strncmp(last.ctype, "application/json", 16) == 0, "%s %s: Content-Type %s",
                  method, path, last.ctype);
    json_error_t e;
    json_t *want = json_loads(json, JSON_DECODE_ANY, &e);
    ck_assert_msg(want != NULL, "bad expected JSON %s: %s", json, e.text);
    json_t *have = json_loads(last.body, JSON_DECODE_ANY, NULL);
    bool eq = have && json_equal(want, have);
    json_decref(want);
    json_decref(have);
    ck_assert_msg(eq, "%s %s: body %s (want %s)", method, path, last.body, json);
}

static void expect_json(const char *method, const char *path, const char *body, int status,
                        const char *json)
{
    expect_json_on(0, method, path, body, status, json);
}

/* {"reason": reason} with status. */
static void expect_reason(const char *method, const char *path, const char *body, int status,
                          const char *reason)
{
    json_t *j = json_pack("{s:s}", "reason", reason);
    char *s = json_dumps(j, JSON_COMPACT);
    expect_json(method, path, body, status, s);
    free(s);
    json_decref(j);
}

/* A plain-text reply: status and exactly text. */
static void expect_text(const char *method, const char *path, const char *body, int status,
                        const char *text)
{
    int got = rq(method, path, body);
    ck_assert_msg(got == status, "%s %s: status %d (want %d), body %s", method, path, got, status,
                  last.body);
    ck_assert_msg(strncmp(last.ctype, "text/plain", 10) == 0, "%s %s: Content-Type %s", method,
                  path, last.ctype);
    if (strcmp(method, "HEAD") == 0)
        text = ""; /* the head of the answer only */
    ck_assert_msg(strcmp(last.body, text) == 0, "%s %s: body '%s' (want '%s')", method, path,
                  last.body, text);
}

/* The framework's answers: 404 and 405 as plain text. */
static void expect_404(const char *method, const char *path)
{
    expect_text(method, path, NULL, 404, "Not Found");
}

static void expect_405(const char *method, const char *path)
{
    expect_text(method, path, NULL, 405, "Method Not Allowed");
}

static void expect_status(const char *method, const char *path, const char *body, int status)
{
    expect_json(method, path, body, status, NULL);
}

/* The value at key of the last JSON reply (borrowed until the next reply's parse). */
static json_t *last_json;

static json_t *reply_json(void)
{
    json_decref(last_json);
    last_json = json_loads(last.body, JSON_DECODE_ANY, NULL);
    ck_assert_msg(last_json != NULL, "not JSON: %s", last.body);
    return last_json;
}

static void reply_json_free(void)
{
    json_decref(last_json);
    last_json = NULL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A 200 JSON array of names, in any order, equal to the comma-separated list want. */
static void expect_names(const char *method, const char *path, const char *want)
{
    expect_json(method, path, NULL, 200, NULL);
    json_t *arr = reply_json();
    ck_assert(json_is_array(arr));
    size_t n = json_array_size(arr);
    const char **names = calloc(n + 1, sizeof *names);
    for (size_t i = 0; i < n; i++) {
        names[i] = json_string_value(json_array_get(arr, i));
        ck_assert_ptr_nonnull(names[i]);
    }
    qsort(names, n, sizeof *names, cmp_str);
    char got[1024] = "";
    for (size_t i = 0; i < n; i++)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", i ? "," : "", names[i]);
    free(names);
    reply_json_free();
    ck_assert_msg(strcmp(got, want) == 0, "%s %s: names %s (want %s)", method, path, got, want);
}

/* ---- path decoding and the route table (no server) ------------------------------------------ */

struct split {
    char *seg[ADMIN_MAX_SEGMENTS];
    int n;
    int nul;
};

static void split(struct split *sp, const char *path)
{
    memset(sp, 0, sizeof *sp);
    sp->n = admin_path_split(path, sp->seg, ADMIN_MAX_SEGMENTS, &sp->nul);
}

static void split_free(struct split *sp)
{
    for (int i = 0; i < sp->n; i++)
        free(sp->seg[i]);
}

START_TEST(test_path_split_decodes_like_urldecoder)
{
    struct split sp;
    split(&sp, "/admin/v2/persistent/a+b/c%2Fd/%41%62");
    ck_assert_int_eq(sp.n, 6);
    ck_assert_int_eq(sp.nul, -1);
    ck_assert_str_eq(sp.seg[3], "a b"); /* '+' is a space */
    ck_assert_str_eq(sp.seg[4], "c/d"); /* %2F stays inside its segment */
    ck_assert_str_eq(sp.seg[5], "Ab");
    split_free(&sp);
    split(&sp, "//a///b/");
    ck_assert_int_eq(sp.n, 2); /* empty segments are skipped */
    ck_assert_str_eq(sp.seg[0], "a");
    ck_assert_str_eq(sp.seg[1], "b");
    split_free(&sp);
    split(&sp, "/");
    ck_assert_int_eq(sp.n, 0);
    split_free(&sp);
    /* a literal %2B is a '+', a bad escape is kept as it is */
    split(&sp, "/x%2By/%zz");
    ck_assert_int_eq(sp.n, 2);
    ck_assert_str_eq(sp.seg[0], "x+y");
    ck_assert_str_eq(sp.seg[1], "%zz");
    split_free(&sp);
}
END_TEST

START_TEST(test_path_split_keeps_nul_as_control)
{
    struct split sp;
    split(&sp, "/a/b%00c/%00");
    ck_assert_int_eq(sp.n, 3);
    ck_assert_int_eq(sp.nul, 1);             /* the first segment that held a NUL */
    ck_assert_uint_eq(strlen(sp.seg[1]), 3); /* not cut short at the NUL */
    ck_assert_int_eq(sp.seg[1][1], 0x7f);
    ck_assert_int_eq(sp.seg[2][0], 0x7f);
    ck_assert(!admin_valid_name(sp.seg[1]));
    split_free(&sp);
}
END_TEST

START_TEST(test_path_split_bounds_segments)
{
    struct split sp;
    split(&sp, "/1/2/3/4/5/6/7/8/9/10/11/12");
    ck_assert_int_eq(sp.n, 12);
    split_free(&sp);
    split(&sp, "/1/2/3/4/5/6/7/8/9/10/11/12/13");
    ck_assert_int_eq(sp.n, -MG_EINVAL);
}
END_TEST

START_TEST(test_path_match_captures)
{
    struct split sp;
    struct admin_path p;
    unsigned mask = 0;
    split(&sp, "/admin/v2/persistent/t/ns/x/subscription/s/skip/5");
    ck_assert(admin_path_match("/admin/v2/persistent/{tenant}/{namespace}/{topic}/subscription/"
                               "{subscription}/skip/{numMessages}",
                               sp.seg, sp.n, &p, &mask));
    ck_assert_str_eq(p.tenant, "t");
    ck_assert_str_eq(p.ns, "ns");
    ck_assert_str_eq(p.topic, "x");
    ck_assert_str_eq(p.sub, "s");
    ck_assert_str_eq(p.arg, "5");
    ck_assert_ptr_null(p.cluster);
    ck_assert_uint_eq(mask, (1u << 3) | (1u << 4) | (1u << 5) | (1u << 7) | (1u << 9));
    /* literals must match, lengths must match */
    ck_assert(!admin_path_match("/admin/v2/persistent/{tenant}/{namespace}/{topic}", sp.seg, sp.n,
                                NULL, NULL));
    ck_assert(!admin_path_match("/admin/v2/non-persistent/**", sp.seg, sp.n, NULL, NULL));
    /* ** takes the rest, also nothing; * one segment without capturing */
    ck_assert(admin_path_match("/admin/v2/**", sp.seg, sp.n, NULL, NULL));
    ck_assert(admin_path_match("/admin/*/persistent/**", sp.seg, sp.n, &p, &mask));
    ck_assert_uint_eq(mask, 0);
    ck_assert_ptr_null(p.tenant);
    split_free(&sp);
    split(&sp, "/admin/v2");
    ck_assert(admin_path_match("/admin/v2/**", sp.seg, sp.n, NULL, NULL));
    ck_assert(!admin_path_match("/admin/v2/{tenant}", sp.seg, sp.n, NULL, NULL));
    split_free(&sp);
}
END_TEST

/* A value for each capture name that reaches the row it is in. */
static const char *sample(const char *name, size_t n)
{
    static const char *const v[][2] = {
        {"tenant", "rt"},
        {"namespace", "ns"},
        {"topic", "t"},
        {"subscription", "s"},
        {"cluster", "standalone"},
        {"bundle", "0x00000000_0x40000000"},
        {"domain", "non-persistent"},
        {"numMessages", "1"},
        {"timestamp", "0"},
        {"expireTimeInSeconds", "5"},
        {"messagePosition", "1"},
        {"version", "0"},
    };
    for (size_t i = 0; i < sizeof v / sizeof *v; i++)
        if (strlen(v[i][0]) == n && memcmp(v[i][0], name, n) == 0)
            return v[i][1];
    ck_abort_msg("no sample for capture %.*s", (int)n, name);
    return NULL;
}

/* A concrete path for pattern: captures get their sample, '*' "x", '**' rest. */
static void path_for(const char *pattern, const char *rest, char *out, size_t len)
{
    size_t o = 0, n;
    out[0] = '\0';
    const char *pos = pattern, *s;
    while ((s = admin_pattern_next(&pos, &n))) {
        const char *v;
        size_t vn;
        if (n == 2 && memcmp(s, "**", 2) == 0) {
            v = rest;
            vn = strlen(rest);
        } else if (s[0] == '{') {
            v = sample(s + 1, n - 2);
            vn = strlen(v);
        } else if (n == 1 && *s == '*') {
            v = "x";
            vn = 1;
        } else {
            v = s;
            vn = n;
        }
        if (vn > 0)
            o += (size_t)snprintf(out + o, len - o, "/%.*s", (int)vn, v);
    }
    if (o == 0)
        snprintf(out, len, "/");
}

static const enum evhttp_cmd_type all_methods[] = {EVHTTP_REQ_GET, EVHTTP_REQ_HEAD, EVHTTP_REQ_PUT,
                                                   EVHTTP_REQ_POST, EVHTTP_REQ_DELETE};

/* A path and method that reach row i (false when none does: an earlier row hides it). */
static bool reach(size_t i, char *path, size_t len, enum evhttp_cmd_type *method)
{
    static const char *const rests[] = {"", "zz", "zz/zz/zz"};
    const struct admin_route *rt = &admin_routes[i];
    for (size_t k = 0; k < sizeof rests / sizeof *rests; k++) {
        path_for(rt->pattern, rests[k], path, len);
        struct split sp;
        split(&sp, path);
        for (size_t m = 0; m < sizeof all_methods / sizeof *all_methods; m++) {
            if (!(rt->methods & (unsigned)all_methods[m]))
                continue;
            bool known;
            if (admin_route_find(all_methods[m], sp.seg, sp.n, &known) == rt) {
                *method = all_methods[m];
                split_free(&sp);
                return true;
            }
        }
        split_free(&sp);
    }
    return false;
}

START_TEST(test_every_route_reachable)
{
    ck_assert_uint_ge(admin_routes_count, 60);
    for (size_t i = 0; i < admin_routes_count; i++) {
        char path[512];
        enum evhttp_cmd_type m;
        ck_assert_msg(reach(i, path, sizeof path, &m), "route %zu (%s) is never reached", i,
                      admin_routes[i].pattern);
        /* its captures are the samples */
        struct split sp;
        struct admin_path p;
        split(&sp, path);
        ck_assert(admin_path_match(admin_routes[i].pattern, sp.seg, sp.n, &p, NULL));
        if (strstr(admin_routes[i].pattern, "{tenant}"))
            ck_assert_str_eq(p.tenant, "rt");
        if (strstr(admin_routes[i].pattern, "{namespace}"))
            ck_assert_str_eq(p.ns, "ns");
        if (strstr(admin_routes[i].pattern, "{topic}"))
            ck_assert_str_eq(p.topic, "t");
        if (strstr(admin_routes[i].pattern, "{subscription}"))
            ck_assert_str_eq(p.sub, "s");
        split_free(&sp);
        /* a flag that needs a capture has it */
        if (admin_routes[i].flags & ADMIN_R_NAMESPACE)
            ck_assert(strstr(admin_routes[i].pattern, "{tenant}/{namespace}"));
        if (admin_routes[i].flags & ADMIN_R_TOPIC_NAME)
            ck_assert(strstr(admin_routes[i].pattern, "{namespace}/{topic}"));
        if (admin_routes[i].flags & ADMIN_R_OWNER)
            ck_assert(admin_routes[i].flags & ADMIN_R_TOPIC_NAME);
    }
}
END_TEST

/* The method of a path no row answers with: 405 where rows know the path, 404 where none. */
START_TEST(test_route_find_404_405)
{
    static const struct {
        const char *method, *path;
        bool found, known;
    } cases[] = {
        {"GET", "/admin/v2/tenants", true, true},
        {"HEAD", "/admin/v2/tenants", false, true},
        {"DELETE", "/admin/v2/clusters", false, true},
        {"DELETE", "/admin/v2/clusters/c", false, true},
        {"GET", "/admin/v2/clusters/c/x", false, false},
        {"GET", "/admin/v2/tenants/t/x", false, false},
        {"GET", "/admin/v2/namespaces", false, false},
        {"GET", "/admin/v2/persistent/t", false, false},
        {"GET", "/admin/v2/nope", false, false},
        {"GET", "/admin/v1/clusters", false, false},
        {"POST", "/lookup/v2/topic/persistent/t/n/x", false, true},
        {"POST", "/lookup/v2/topic/x", false, true},
        {"GET", "/lookup/v2/topic/x", true, true},
        {"POST", "/admin/v2/brokers/x/y", false, true},
        {"PUT", "/metrics", true, true}, /* the ANY row: 404 as before the table */
        {"GET", "/", true, true},        /* the console */
        {"PUT", "/", false, true},
        {"GET", "/nope", false, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct split sp;
        split(&sp, cases[i].path);
        bool known = false;
        const struct admin_route *rt =
            admin_route_find(method_of(cases[i].method), sp.seg, sp.n, &known);
        ck_assert_msg((rt != NULL) == cases[i].found, "%s %s: %s", cases[i].method, cases[i].path,
                      rt ? rt->pattern : "no route");
        if (!rt)
            ck_assert_msg(known == cases[i].known, "%s %s: known %d", cases[i].method,
                          cases[i].path, known);
        split_free(&sp);
    }
}
END_TEST

START_TEST(test_nul_reasons)
{
    static const struct {
        const char *path;
        const char *reason; /* NULL: 400 Bad request path */
    } cases[] = {
        {"/admin/v2/tenants/a%00", "Tenant name is not valid"},
        {"/admin/v2/tenants/a%00/x/y", "Tenant name is not valid"},
        {"/admin/v2/clusters/a%00", "Cluster name is not valid"},
        {"/admin/v2/namespaces/a%00", "Tenant name is not valid"},
        {"/admin/v2/namespaces/a%00/ns", "Namespace name is not valid"},
        {"/admin/v2/namespaces/t/n%00/topics", "Namespace name is not valid"},
        {"/admin/v2/namespaces/t/n/b%00/unload", NULL},
        {"/admin/v2/persistent/a%00", "Topic name is not valid"},
        {"/admin/v2/persistent/a%00/ns", "Namespace name is not valid"},
        {"/admin/v2/persistent/t/n%00/partitioned", "Namespace name is not valid"},
        {"/admin/v2/persistent/t/n/x%00", "Topic name is not valid"},
        {"/admin/v2/persistent/t/n%00/x/stats", "Topic name is not valid"},
        {"/admin/v2/persistent/t/n/x/subscription/s%00", "Subscription name is not valid"},
        {"/admin/v2/persistent/t/n/x/subscription/s%00/skip_all", "Subscription name is not valid"},
        {"/admin/v2/persistent/t/n/x/y%00", NULL},
        {"/admin/v2/non-persistent/t/n%00", "Namespace name is not valid"},
        {"/admin/v2/non-persistent/t/n/x%00", "Topic name is not valid"},
        {"/lookup/v2/topic/persistent/a%00", "Topic name is not valid"},
        {"/lookup/v2/topic/persistent/t/n/x%00", "Topic name is not valid"},
        {"/lookup/v2/topic/p%00/t/n/x", NULL},
        {"/admin/v2/x%00", NULL},
        {"/metrics%00", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct split sp;
        split(&sp, cases[i].path);
        ck_assert_int_ge(sp.nul, 0);
        const char *why = admin_nul_reason(sp.seg, sp.n, sp.nul);
        if (cases[i].reason)
            ck_assert_msg(why && strcmp(why, cases[i].reason) == 0, "%s: %s", cases[i].path,
                          why ? why : "(400)");
        else
            ck_assert_msg(why == NULL, "%s: %s (want 400)", cases[i].path, why);
        split_free(&sp);
    }
}
END_TEST

/* ---- every route over HTTP ------------------------------------------------------------------ */

/* The resources the samples of sample() name: tenant rt, namespace rt/ns, topic t with
 * subscription s. */
static void make_samples(void)
{
    expect_status("PUT", "/admin/v2/tenants/rt", "{\"allowedClusters\":[\"standalone\"]}", 204);
    expect_status("PUT", "/admin/v2/namespaces/rt/ns", NULL, 204);
    expect_status("PUT", "/admin/v2/persistent/rt/ns/t", NULL, 204);
    expect_status("PUT", "/admin/v2/persistent/rt/ns/t/subscription/s", NULL, 204);
}

START_TEST(test_every_route_answers_over_http)
{
    make_samples();
    for (size_t i = 0; i < admin_routes_count; i++) {
        const struct admin_route *rt = &admin_routes[i];
        char path[512];
        enum evhttp_cmd_type m;
        ck_assert(reach(i, path, sizeof path, &m));
        const char *method = m == EVHTTP_REQ_GET    ? "GET"
                             : m == EVHTTP_REQ_HEAD ? "HEAD"
                             : m == EVHTTP_REQ_PUT  ? "PUT"
                             : m == EVHTTP_REQ_POST ? "POST"
                                                    : "DELETE";
        if (m == EVHTTP_REQ_DELETE && (strcmp(rt->pattern, "/admin/v2/tenants/{tenant}") == 0 ||
                                       strstr(rt->pattern, "{topic}")))
            continue; /* keep the samples for the rows after it */
        int status = rq(method, path, NULL);
        bool framework_404 = status == 404 && strncmp(last.ctype, "text/plain", 10) == 0;
        bool framework_405 = status == 405 && strncmp(last.ctype, "text/plain", 10) == 0;
        if (rt->handler == admin_h_not_found)
            ck_assert_msg(framework_404, "%s %s: %d %s", method, path, status, last.body);
        else if (rt->handler == admin_h_bad_method)
            ck_assert_msg(framework_405, "%s %s: %d %s", method, path, status, last.body);
        else
            ck_assert_msg(!framework_404 && !framework_405 && status != 0,
                          "%s %s: %d %s (the router's answer, not the handler's)", method, path,
                          status, last.body);
    }
}
END_TEST

/* ---- framework answers ---------------------------------------------------------------------- */

START_TEST(test_unknown_paths_404)
{
    expect_404("GET", "/nope");
    expect_404("GET", "/admin");
    expect_404("GET", "/admin/v2");
    expect_404("GET", "/admin/v2/nope");
    expect_404("GET", "/admin/v1/clusters");
    expect_404("GET", "/admin/v2/clusters/standalone/x");
    expect_404("GET", "/admin/v2/tenants/public/x");
    expect_404("GET", "/admin/v2/namespaces");
    expect_404("GET", "/admin/v2/persistent");
    expect_404("GET", "/admin/v2/persistent/public");
    expect_404("GET", "/admin/v2/brokers/a/b");
    expect_404("GET", "/metrics/x");
    expect_404("GET", "/lookup/v2/topic/x");
    expect_404("GET", "/lookup/v2/topic/persistent/public/default/t/other");
    /* after the namespace's checks */
    expect_404("GET", "/admin/v2/namespaces/public/default/bogus");
    expect_404("GET", "/admin/v2/namespaces/public/default/a/b/c");
    /* after the topic's checks and its ownership */
    expect_404("GET", "/admin/v2/persistent/public/default/t/bogus");
    expect_404("POST", "/admin/v2/persistent/public/default/t/stats");
    expect_404("HEAD", "/admin/v2/persistent/public/default/t/stats");
    expect_404("GET", "/admin/v2/persistent/public/default/t/subscription/s/bogus");
    /* the probes answer other methods 404, as before the table */
    expect_404("PUT", "/metrics");
    expect_404("POST", "/status.html");
    /* more than 12 segments or a bad query: 400 */
    expect_reason("GET", "/a/b/c/d/e/f/g/h/i/j/k/l/m", NULL, 400, "Bad request path");
    expect_reason("GET", "/admin/v2/tenants?a=1&b", NULL, 400, "Bad request path");
}
END_TEST

START_TEST(test_wrong_methods_405)
{
    expect_405("DELETE", "/admin/v2/clusters");
    expect_405("HEAD", "/admin/v2/clusters");
    expect_405("DELETE", "/admin/v2/clusters/standalone");
    expect_405("PUT", "/admin/v2/tenants");
    expect_405("HEAD", "/admin/v2/tenants/public");
    expect_405("POST", "/admin/v2/namespaces/public");
    expect_405("POST", "/admin/v2/brokers");
    expect_405("POST", "/admin/v2/brokers/health");
    expect_405("PUT", "/admin/v2/brokers/x/y");
    expect_405("POST", "/lookup/v2/topic/persistent/public/default/t");
    expect_405("DELETE", "/lookup/v2/topic/x");
    /* after the path's checks */
    expect_405("POST", "/admin/v2/namespaces/public/default");
    expect_405("PUT", "/admin/v2/namespaces/public/default/topics");
    expect_405("PUT", "/admin/v2/namespaces/public/default/retention");
    expect_405("POST", "/admin/v2/namespaces/public/default/bundles");
    expect_405("GET", "/admin/v2/namespaces/public/default/unload");
    expect_405("GET", "/admin/v2/namespaces/public/default/0x00000000_0x40000000/unload");
    expect_405("PUT", "/admin/v2/persistent/public/default");
    expect_405("PUT", "/admin/v2/persistent/public/default/partitioned");
    expect_405("HEAD", "/admin/v2/persistent/public/default/t/partitions");
    expect_405("GET", "/admin/v2/persistent/public/default/t");
    expect_405("POST", "/admin/v2/persistent/public/default/t");
    /* the checks come first: a bad name or a missing namespace, whatever the method */
    expect_reason("POST", "/admin/v2/namespaces/b!d/ns", NULL, 412, "Namespace name is not valid");
    expect_reason("PUT", "/admin/v2/namespaces/public/nope/topics", NULL, 404,
                  "Namespace does not exist");
    expect_405("POST", "/admin/v2/namespaces/public/nope"); /* no existence check there */
    expect_reason("PUT", "/admin/v2/persistent/public/nope/partitioned", NULL, 404,
                  "Namespace does not exist");
    expect_reason("GET", "/admin/v2/persistent/b!d/default/t", NULL, 412,
                  "Topic name is not valid");
    expect_reason("PUT", "/admin/v2/persistent/b!d/default", NULL, 412,
                  "Namespace name is not valid");
    /* non-persistent topics: the same methods; what they do not have, any method */
    expect_405("POST", "/admin/v2/non-persistent/public/default/t");
    /* GET of one segment below the namespace is Pulsar's getListFromBundle: a bundle range */
    expect_reason("GET", "/admin/v2/non-persistent/public/default/t", NULL, 412,
                  "Invalid bundle range t");
    expect_reason("POST", "/admin/v2/non-persistent/public/default/t/terminate", NULL, 405,
                  "Not supported on a non-persistent topic");
    expect_reason("DELETE", "/admin/v2/non-persistent", NULL, 405,
                  "Not supported on a non-persistent topic");
}
END_TEST

/* ---- clusters, brokers, probes -------------------------------------------------------------- */

/* The web console: / answers index.html, /console/NAME each embedded file with its content
 * type; other names 404; only those paths pass without authentication. */
START_TEST(test_console_files)
{
    ck_assert_uint_ge(admin_console_assets_count, 3);
    ck_assert_int_eq(rq("GET", "/", NULL), 200);
    ck_assert_str_eq(last.ctype, "text/html; charset=utf-8");
    ck_assert(strstr(last.body, "<script src=\"/console/console.js\""));
    for (size_t i = 0; i < admin_console_assets_count; i++) {
        const struct admin_console_asset *f = &admin_console_assets[i];
        char path[256];
        snprintf(path, sizeof path, "/console/%s", f->name);
        ck_assert_int_eq(rq("GET", path, NULL), 200);
        ck_assert_msg(strlen(last.body) == f->len && memcmp(last.body, f->data, f->len) == 0,
                      "%s: not the embedded file", path);
        const char *ext = strrchr(f->name, '.');
        ck_assert_ptr_nonnull(ext);
        const char *want = strcmp(ext, ".html") == 0  ? "text/html"
                           : strcmp(ext, ".js") == 0  ? "text/javascript"
                           : strcmp(ext, ".css") == 0 ? "text/css"
                                                      : "?";
        ck_assert_msg(strncmp(last.ctype, want, strlen(want)) == 0, "%s: %s", path, last.ctype);
    }
    ck_assert_int_eq(rq("GET", "/console/nope.js", NULL), 404);
    ck_assert_int_eq(rq("GET", "/console/a/console.js", NULL), 404);
    ck_assert_int_eq(rq("PUT", "/", NULL), 405);
    ck_assert(admin_console_public("/"));
    ck_assert(admin_console_public("/console/console.js"));
    ck_assert(!admin_console_public("/console/a/b"));
    ck_assert(!admin_console_public("/consolex"));
    ck_assert(!admin_console_public("/admin/v2/tenants"));
    ck_assert(!admin_console_public("//admin/v2/tenants"));
}
END_TEST

START_TEST(test_clusters_brokers_probes)
{
    struct svc *s = fx.svc[0];
    char buf[512];
    expect_json("GET", "/admin/v2/clusters", NULL, 200, "[\"standalone\"]");
    snprintf(buf, sizeof buf, "{\"serviceUrl\":\"%s\",\"brokerServiceUrl\":\"%s\"}",
             ns_web_url(svc_ns(s)), ns_broker_url(svc_ns(s)));
    expect_json("GET", "/admin/v2/clusters/standalone", NULL, 200, buf);
    expect_reason("GET", "/admin/v2/clusters/other", NULL, 404, "Cluster does not exist");
    expect_reason("PUT", "/admin/v2/clusters/standalone", "{}", 409, "Cluster already exists");
    expect_reason("PUT", "/admin/v2/clusters/other", "{}", 405,
                  "This broker serves a single cluster");
    expect_reason("PUT", "/admin/v2/clusters/b!d", "{}", 412, "Cluster name is not valid");
    expect_status("POST", "/admin/v2/clusters/standalone", "{}", 200);
    expect_reason("POST", "/admin/v2/clusters/other", "{}", 404, "Cluster does not exist");
    snprintf(buf, sizeof buf, "[\"%s\"]", ns_broker_id(svc_ns(s)));
    expect_json("GET", "/admin/v2/brokers", NULL, 200, buf);
    expect_json("GET", "/admin/v2/brokers/standalone", NULL, 200, buf);
    expect_json("GET", "/admin/v2/brokers/any-cluster", NULL, 200, buf);
    snprintf(buf, sizeof buf, "{\"serviceUrl\":\"%s\",\"brokerId\":\"%s\"}", ns_web_url(svc_ns(s)),
             ns_broker_id(svc_ns(s)));
    expect_json("GET", "/admin/v2/brokers/leaderBroker", NULL, 200, buf);
    ck_assert_int_eq(rq("GET", "/admin/v2/brokers/version", NULL), 200);
    ck_assert_str_eq(last.body, PACKAGE_VERSION);
    expect_text("GET", "/admin/v2/brokers/ready", NULL, 200, "ok");
    expect_text("GET", "/admin/v2/brokers/health", NULL, 200, "ok");
    expect_text("GET", "/admin/v2/brokers/health?topicVersion=V2", NULL, 200, "ok");
    expect_text("GET", "/status.html", NULL, 200, "OK");
    ck_assert_int_eq(rq("HEAD", "/status.html", NULL), 200);
    ck_assert_str_eq(last.body, "");
    /* /metrics counts itself as the one open request */
    ck_assert_int_eq(rq("GET", "/metrics", NULL), 200);
    ck_assert_ptr_nonnull(strstr(last.body, "\nmagnetar_admin_requests_open 1\n"));
    ck_assert_ptr_nonnull(strstr(last.ctype, "version=0.0.4"));
}
END_TEST

/* ---- tenants -------------------------------------------------------------------------------- */

#define TI "{\"allowedClusters\":[\"standalone\"]}"

START_TEST(test_tenant_crud)
{
    expect_json("GET", "/admin/v2/tenants", NULL, 200, "[\"public\",\"pulsar\"]");
    expect_reason("GET", "/admin/v2/tenants/t1", NULL, 404, "Tenant does not exist");
    expect_status("PUT", "/admin/v2/tenants/t1", TI, 204);
    ck_assert_str_eq(last.body, "");
    expect_json("GET", "/admin/v2/tenants", NULL, 200, "[\"public\",\"pulsar\",\"t1\"]");
    expect_json("GET", "/admin/v2/tenants/t1", NULL, 200,
                "{\"adminRoles\":[],\"allowedClusters\":[\"standalone\"]}");
    expect_reason("PUT", "/admin/v2/tenants/t1", TI, 409, "Tenant already exist");
    /* update: the roles are stored, once each */
    expect_status("POST", "/admin/v2/tenants/t1",
                  "{\"adminRoles\":[\"r1\",\"r2\",\"r1\"],\"allowedClusters\":[\"standalone\"]}",
                  204);
    expect_json("GET", "/admin/v2/tenants/t1", NULL, 200,
                "{\"adminRoles\":[\"r1\",\"r2\"],\"allowedClusters\":[\"standalone\"]}");
    expect_reason("POST", "/admin/v2/tenants/nope", TI, 404, "Tenant nope not found");
    /* created with roles */
    expect_status("PUT", "/admin/v2/tenants/t2",
                  "{\"adminRoles\":[\"a\"],\"allowedClusters\":[\"standalone\"]}", 204);
    expect_json("GET", "/admin/v2/tenants/t2", NULL, 200,
                "{\"adminRoles\":[\"a\"],\"allowedClusters\":[\"standalone\"]}");
    /* delete */
    expect_reason("DELETE", "/admin/v2/tenants/t1?force=true", NULL, 405,
                  "Broker doesn't allow forced deletion of tenants");
    expect_status("DELETE", "/admin/v2/tenants/t1", NULL, 204);
    expect_reason("GET", "/admin/v2/tenants/t1", NULL, 404, "Tenant does not exist");
    expect_reason("DELETE", "/admin/v2/tenants/t1", NULL, 404, "Tenant doesn't exist");
    /* not while it has namespaces */
    expect_status("PUT", "/admin/v2/namespaces/t2/ns", NULL, 204);
    expect_reason("DELETE", "/admin/v2/tenants/t2", NULL, 409,
                  "The tenant still has active namespaces");
    expect_status("DELETE", "/admin/v2/namespaces/t2/ns", NULL, 204);
    expect_status("DELETE", "/admin/v2/tenants/t2", NULL, 204);
    expect_json("GET", "/admin/v2/tenants", NULL, 200, "[\"public\",\"pulsar\"]");
}
END_TEST

START_TEST(test_tenant_validation)
{
    /* Pulsar's order: the body, then the name, then whether it exists */
    expect_reason("PUT", "/admin/v2/tenants/t1", NULL, 412, "Clusters can not be empty");
    expect_reason("PUT", "/admin/v2/tenants/t1", "{}", 412, "Clusters can not be empty");
    expect_reason("PUT", "/admin/v2/tenants/t1", "{\"allowedClusters\":[]}", 412,
                  "Clusters can not be empty");
    expect_reason("PUT", "/admin/v2/tenants/t1", "{\"allowedClusters\":[\" \"]}", 412,
                  "Clusters can not be empty");
    expect_reason("PUT", "/admin/v2/tenants/t1", "{\"allowedClusters\":[\"other\"]}", 412,
                  "Clusters do not exist");
    /* bodies that are not a TenantInfo: Jersey's 400 */
    static const char *const bad[] = {"x",
                                      "[]",
                                      "3",
                                      "{\"allowedClusters\":\"standalone\"}",
                                      "{\"allowedClusters\":[1]}",
                                      "{\"adminRoles\":\"r\",\"allowedClusters\":[\"standalone\"]}",
                                      "{\"adminRoles\":[1],\"allowedClusters\":[\"standalone\"]}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        expect_text("PUT", "/admin/v2/tenants/t1", bad[i], 400, "Bad Request");
        expect_text("POST", "/admin/v2/tenants/public", bad[i], 400, "Bad Request");
    }
    /* names: NamedEntity, not . or .., at most 255 bytes */
    char longname[300];
    memset(longname, 'x', 256);
    longname[256] = '\0';
    char path[400];
    snprintf(path, sizeof path, "/admin/v2/tenants/%s", longname);
    static const char *const names[] = {"/admin/v2/tenants/b!d", "/admin/v2/tenants/.",
                                        "/admin/v2/tenants/..", "/admin/v2/tenants/a%01b",
                                        "/admin/v2/tenants/a%20b"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        expect_reason("PUT", names[i], TI, 412, "Tenant name is not valid");
    expect_reason("PUT", path, TI, 412, "Tenant name is not valid");
    expect_reason("PUT", "/admin/v2/tenants/a%00b", TI, 412, "Tenant name is not valid");
    longname[255] = '\0';
    snprintf(path, sizeof path, "/admin/v2/tenants/%s", longname);
    expect_status("PUT", path, TI, 204);
    expect_status("PUT", "/admin/v2/tenants/a-b=c:d.e_f", TI, 204);
    /* nothing else was created */
    ck_assert_int_eq(rq("GET", "/admin/v2/tenants", NULL), 200);
    ck_assert_uint_eq(json_array_size(reply_json()), 4);
    reply_json_free();
}
END_TEST

/* ---- namespaces ----------------------------------------------------------------------------- */

START_TEST(test_namespace_crud)
{
    expect_json("GET", "/admin/v2/namespaces/public", NULL, 200, "[\"public/default\"]");
    expect_reason("GET", "/admin/v2/namespaces/nope", NULL, 404, "Tenant not found");
    expect_reason("GET", "/admin/v2/namespaces/b!d", NULL, 412, "Tenant name is not valid");
    expect_status("PUT", "/admin/v2/namespaces/public/n1", NULL, 204);
    expect_reason("PUT", "/admin/v2/namespaces/public/n1", NULL, 409, "Namespace already exists");
    expect_status("PUT", "/admin/v2/namespaces/public/n2", "{\"bundles\":{\"numBundles\":2}}", 204);
    expect_json("GET", "/admin/v2/namespaces/public", NULL, 200,
                "[\"public/default\",\"public/n1\",\"public/n2\"]");
    expect_json("GET", "/admin/v2/namespaces/public/n2/bundles", NULL, 200,
                "{\"boundaries\":[\"0x00000000\",\"0x80000000\",\"0xffffffff\"],"
                "\"numBundles\":2}");
    /* the default count (defaultNumberOfNamespaceBundles, 4) */
    expect_json("GET", "/admin/v2/namespaces/public/n1/bundles", NULL, 200,
                "{\"boundaries\":[\"0x00000000\",\"0x40000000\",\"0x80000000\",\"0xc0000000\","
                "\"0xffffffff\"],\"numBundles\":4}");
    ck_assert_int_eq(rq("GET", "/admin/v2/namespaces/public/n2", NULL), 200);
    json_t *pol = reply_json();
    ck_assert_int_eq(
        json_integer_value(json_object_get(json_object_get(pol, "bundles"), "numBundles")), 2);
    ck_assert_str_eq(
        json_string_value(json_array_get(json_object_get(pol, "replication_clusters"), 0)),
        "standalone");
    ck_assert_ptr_null(json_object_get(pol, "retention_policies")); /* never set */
    reply_json_free();
    expect_reason("GET", "/admin/v2/namespaces/public/nope", NULL, 404, "Namespace does not exist");
    expect_reason("PUT", "/admin/v2/namespaces/nope/n1", NULL, 404, "Tenant does not exist");
    /* listed topics */
    expect_json("GET", "/admin/v2/namespaces/public/n1/topics", NULL, 200, "[]");
    expect_status("PUT", "/admin/v2/persistent/public/n1/t", NULL, 204);
    expect_json("GET", "/admin/v2/namespaces/public/n1/topics", NULL, 200,
                "[\"persistent://public/n1/t\"]");
    /* delete: not while topics exist; not forced */
    expect_reason("DELETE", "/admin/v2/namespaces/public/n1", NULL, 409,
                  "Cannot delete non empty namespace");
    expect_reason("DELETE", "/admin/v2/namespaces/public/n1?force=true", NULL, 405,
                  "Broker doesn't allow forced deletion of namespaces");
    expect_status("DELETE", "/admin/v2/persistent/public/n1/t", NULL, 204);
    expect_status("DELETE", "/admin/v2/namespaces/public/n1", NULL, 204);
    expect_reason("GET", "/admin/v2/namespaces/public/n1", NULL, 404, "Namespace does not exist");
    expect_reason("DELETE", "/admin/v2/namespaces/public/n1", NULL, 404,
                  "Namespace public/n1 does not exist.");
    expect_reason("GET", "/admin/v2/namespaces/public/n1/topics", NULL, 404,
                  "Namespace does not exist");
}
END_TEST

START_TEST(test_namespace_validation)
{
    /* a body that is not a Policies: Jersey's 400, before the name */
    static const char *const bad[] = {"x",
                                      "[]",
                                      "{\"bundles\":\"x\"}",
                                      "{\"replication_clusters\":\"standalone\"}",
                                      "{\"bundles\":{\"numBundles\":\"2\"}}",
                                      "{\"retention_policies\":1}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        expect_text("PUT", "/admin/v2/namespaces/public/b!d", bad[i], 400, "Bad Request");
    expect_reason("PUT", "/admin/v2/namespaces/public/b!d", NULL, 412,
                  "Namespace name is not valid");
    expect_reason("PUT", "/admin/v2/namespaces/b!d/ns", NULL, 412, "Namespace name is not valid");
    expect_reason("PUT", "/admin/v2/namespaces/public/..", NULL, 412,
                  "Namespace name is not valid");
    /* policies Pulsar refuses: after the name and the tenant */
    expect_reason("PUT", "/admin/v2/namespaces/public/n1", "{\"bundles\":{\"numBundles\":5000}}",
                  400,
                  "Invalid number of bundles. Number of bundles has to be in the range of "
                  "(0, 1024].");
    expect_reason("PUT", "/admin/v2/namespaces/public/n1", "{\"replication_clusters\":[\"other\"]}",
                  403,
                  "Cluster [other] is not in the list of allowed clusters list for tenant "
                  "[public]");
    expect_reason("PUT", "/admin/v2/namespaces/public/n1",
                  "{\"bundles\":{\"boundaries\":[\"0x00000001\",\"0xffffffff\"],"
                  "\"numBundles\":1}}",
                  400,
                  "Input bundles do not cover the whole hash range. first:0x00000001, "
                  "last:0xffffffff");
    expect_reason("PUT", "/admin/v2/namespaces/public/n1",
                  "{\"bundles\":{\"boundaries\":[\"0x00000000\",\"0x70000000\",\"0xffffffff\"],"
                  "\"numBundles\":2}}",
                  400, "Only equal bundle boundaries are supported (give numBundles alone)");
    expect_reason("PUT", "/admin/v2/namespaces/nope/n1", "{\"bundles\":{\"numBundles\":5000}}", 404,
                  "Tenant does not exist");
    /* nothing was created */
    expect_json("GET", "/admin/v2/namespaces/public", NULL, 200, "[\"public/default\"]");
    /* equal boundaries are accepted */
    expect_status("PUT", "/admin/v2/namespaces/public/n1",
                  "{\"bundles\":{\"boundaries\":[\"0x00000000\",\"0x80000000\",\"0xffffffff\"],"
                  "\"numBundles\":2}}",
                  204);
    expect_json("GET", "/admin/v2/namespaces/public/n1/bundles", NULL, 200,
                "{\"boundaries\":[\"0x00000000\",\"0x80000000\",\"0xffffffff\"],"
                "\"numBundles\":2}");
}
END_TEST

START_TEST(test_namespace_message_ttl)
{
    const char *p = "/admin/v2/namespaces/public/default/messageTTL";
    expect_status("PUT", "/admin/v2/persistent/public/default/t", NULL,
                  204); /* a loaded topic takes the policy */
    struct topic *t = topic_find(svc_topics(fx.svc[0]), "persistent://public/default/t");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(topic_message_ttl(t), 0); /* ttlDurationDefaultInSeconds 0: none */
    expect_status("GET", p, NULL, 204);        /* never set */
    ck_assert_str_eq(last.body, "");
    expect_status("POST", p, "120", 204);
    expect_json("GET", p, NULL, 200, "120");
    ck_assert_int_eq(topic_message_ttl(t), 120);
    ck_assert_int_eq(rq("GET", "/admin/v2/namespaces/public/default", NULL), 200);
    ck_assert_int_eq(json_integer_value(json_object_get(reply_json(), "message_ttl_in_seconds")),
                     120);
    reply_json_free();
    expect_status("POST", p, "0", 204); /* 0: no TTL for this namespace */
    expect_json("GET", p, NULL, 200, "0");
    ck_assert_int_eq(topic_message_ttl(t), 0);
    expect_reason("POST", p, "-1", 412, "Invalid value for message TTL");
    expect_reason("POST", p, "\"x\"", 400, "Invalid message TTL: an integer body is required");
    expect_reason("POST", p, "x", 400, "Invalid message TTL: an integer body is required");
    expect_json("GET", p, NULL, 200, "0"); /* the refused ones changed nothing */
    expect_status("DELETE", p, NULL, 204);
    expect_status("GET", p, NULL, 204);
    expect_405("PUT", p);
    expect_reason("GET", "/admin/v2/namespaces/public/nope/messageTTL", NULL, 404,
                  "Namespace does not exist");
    expect_reason("POST", "/admin/v2/namespaces/public/nope/messageTTL", "5", 404,
                  "Namespace does not exist");
}
END_TEST

/* PUT a topic of public/default through the admin API: the loaded topic. */
static struct topic *put_topic(const char *local)
{
    char path[160], full[160];
    snprintf(path, sizeof path, "/admin/v2/persistent/public/default/%s", local);
    snprintf(full, sizeof full, "persistent://public/default/%s", local);
    expect_status("PUT", path, NULL, 204);
    struct topic *t = topic_find(svc_topics(fx.svc[0]), full);
    ck_assert_ptr_nonnull(t);
    return t;
}

/* Policies.deduplicationEnabled: GET 204 while unset (the broker's default, off, applies),
 * POST true/false reaches the loaded topics (the snapshot cursor comes and goes), DELETE
 * goes back to the default; a body that is not a boolean is refused. */
START_TEST(test_namespace_deduplication)
{
    const char *p = "/admin/v2/namespaces/public/default/deduplication";
    struct topic *t = put_topic("dd");
    ck_assert_str_eq(topic_dedup_status(t), "Disabled");
    expect_status("GET", p, NULL, 204);
    expect_status("POST", p, "true", 204);
    expect_json("GET", p, NULL, 200, "true");
    for (int i = 0; i < 100 && strcmp(topic_dedup_status(t), "Enabled") != 0; i++)
        tl_base_run_for(fx.base, 10);
    ck_assert_str_eq(topic_dedup_status(t), "Enabled");
    ck_assert(ml_cursor_exists(topic_ml(t), TOPIC_DEDUP_CURSOR));
    ck_assert_int_eq(rq("GET", "/admin/v2/persistent/public/default/dd/stats", NULL), 200);
    ck_assert_str_eq(json_string_value(json_object_get(reply_json(), "deduplicationStatus")),
                     "Enabled");
    reply_json_free();
    ck_assert_int_eq(rq("GET", "/admin/v2/namespaces/public/default", NULL), 200);
    ck_assert(json_is_true(json_object_get(reply_json(), "deduplicationEnabled")));
    reply_json_free();
    expect_reason("POST", p, "1", 400, "Invalid deduplication setting: true or false is required");
    expect_reason("POST", p, "x", 400, "Invalid deduplication setting: true or false is required");
    expect_json("GET", p, NULL, 200, "true");
    expect_status("POST", p, "false", 204);
    expect_json("GET", p, NULL, 200, "false");
    ck_assert_str_eq(topic_dedup_status(t), "Disabled");
    ck_assert(!ml_cursor_exists(topic_ml(t), TOPIC_DEDUP_CURSOR));
    expect_status("DELETE", p, NULL, 204);
    expect_status("GET", p, NULL, 204);
    expect_405("PUT", p);
    expect_reason("POST", "/admin/v2/namespaces/public/nope/deduplication", "true", 404,
                  "Namespace does not exist");
}
END_TEST

/* Policies.inactive_topic_policies (.../inactiveTopicPolicies) and delayed_delivery_policies
 * (.../delayedDelivery): GET 204 while unset, POST an object (400 when malformed) shown in
 * the namespace's Policies and applied to its loaded topic, DELETE back to the broker's keys
 * (brokerDeleteInactiveTopics*, delayedDelivery*); 405 for PUT, 404 without the namespace. */
START_TEST(test_namespace_inactive_and_delayed)
{
    const char *ip = "/admin/v2/namespaces/public/default/inactiveTopicPolicies";
    const char *dp = "/admin/v2/namespaces/public/default/delayedDelivery";
    struct topic *t = put_topic("gc");
    struct topic_inactive_policy in = topic_inactive_policy(t);
    ck_assert(in.delete_while_inactive && !in.caught_up); /* the broker's defaults */
    ck_assert_int_eq(in.max_inactive_ms, 60000);
    expect_status("GET", ip, NULL, 204);
    const char *pol = "{\"inactiveTopicDeleteMode\":\"delete_when_subscriptions_caught_up\","
                      "\"maxInactiveDurationSeconds\":120,\"deleteWhileInactive\":false}";
    expect_status("POST", ip, pol, 204);
    expect_json("GET", ip, NULL, 200, pol);
    in = topic_inactive_policy(t);
    ck_assert(!in.delete_while_inactive && in.caught_up);
    ck_assert_int_eq(in.max_inactive_ms, 120000);
    ck_assert_int_eq(rq("GET", "/admin/v2/namespaces/public/default", NULL), 200);
    ck_assert_int_eq(
        json_integer_value(json_object_get(json_object_get(reply_json(), "inactive_topic_policies"),
                                           "maxInactiveDurationSeconds")),
        120);
    reply_json_free();
    /* Pulsar's defaults for what is left out */
    expect_status("POST", ip, "{\"deleteWhileInactive\":true}", 204);
    expect_json("GET", ip, NULL, 200,
                "{\"inactiveTopicDeleteMode\":\"delete_when_no_subscriptions\","
                "\"maxInactiveDurationSeconds\":0,\"deleteWhileInactive\":true}");
    const char *bad[] = {"{\"inactiveTopicDeleteMode\":\"sometimes\"}",
                         "{\"maxInactiveDurationSeconds\":\"60\"}", "{\"deleteWhileInactive\":1}",
                         "[]", "x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        expect_status("POST", ip, bad[i], 400);
    expect_status("DELETE", ip, NULL, 204);
    expect_status("GET", ip, NULL, 204);
    ck_assert(topic_inactive_policy(t).delete_while_inactive);
    ck_assert_int_eq(topic_inactive_policy(t).max_inactive_ms, 60000);
    expect_405("PUT", ip);
    expect_reason("POST", "/admin/v2/namespaces/public/nope/inactiveTopicPolicies", pol, 404,
                  "Namespace does not exist");

    ck_assert(topic_delayed_enabled(t));
    expect_status("GET", dp, NULL, 204);
    expect_status("POST", dp, "{\"tickTime\":2500,\"active\":false}", 204);
    expect_json("GET", dp, NULL, 200, "{\"tickTime\":2500,\"active\":false}");
    ck_assert(!topic_delayed_enabled(t));
    ck_assert_int_eq(topic_delayed_tick_ms(t), 2500);
    ck_assert_int_eq(rq("GET", "/admin/v2/namespaces/public/default", NULL), 200);
    ck_assert(json_is_false(
        json_object_get(json_object_get(reply_json(), "delayed_delivery_policies"), "active")));
    reply_json_free();
    expect_status("POST", dp, "{\"tickTime\":0,\"active\":true}", 400);
    expect_status("POST", dp, "{\"active\":\"yes\"}", 400);
    expect_status("POST", dp, "{\"active\":true}", 204);
    expect_json("GET", dp, NULL, 200, "{\"tickTime\":1000,\"active\":true}");
    ck_assert(topic_delayed_enabled(t));
    expect_status("DELETE", dp, NULL, 204);
    expect_status("GET", dp, NULL, 204);
    ck_assert(topic_delayed_enabled(t));
    expect_405("PUT", dp);
}
END_TEST

/* The topic-level inactiveTopicPolicies (TopicPolicies): GET 204 while unset, applied=true the
 * broker's, then the namespace's, then the topic's; the topic's wins on the loaded topic at
 * once; DELETE gives the namespace's back; 400 for a malformed body. */
/* A topic policy's paths: the topic's (p), its applied=true (applied), the namespace's (np). */
struct tpol_paths {
    char p[160], applied[192], np[160];
};

/* The paths of policy seg of topic local (made here) and of its namespace; the topic. */
static struct topic *tpol_topic(const char *local, const char *seg, struct tpol_paths *pp)
{
    snprintf(pp->p, sizeof pp->p, "/admin/v2/persistent/public/default/%s/%s", local, seg);
    snprintf(pp->applied, sizeof pp->applied, "%s?applied=true", pp->p);
    snprintf(pp->np, sizeof pp->np, "/admin/v2/namespaces/public/default/%s", seg);
    return put_topic(local);
}

START_TEST(test_topic_inactive_policy)
{
    struct tpol_paths pp;
    struct topic *t = tpol_topic("tgc", "inactiveTopicPolicies", &pp);
    const char *p = pp.p, *np = pp.np, *applied = pp.applied;
    expect_status("GET", p, NULL, 204);
    expect_json("GET", applied, NULL, 200,
                "{\"inactiveTopicDeleteMode\":\"delete_when_no_subscriptions\","
                "\"maxInactiveDurationSeconds\":60,\"deleteWhileInactive\":true}");
    const char *nspol = "{\"inactiveTopicDeleteMode\":\"delete_when_no_subscriptions\","
                        "\"maxInactiveDurationSeconds\":30,\"deleteWhileInactive\":true}";
    expect_status("POST", np, nspol, 204);
    expect_json("GET", applied, NULL, 200, nspol);
    const char *tpol = "{\"inactiveTopicDeleteMode\":\"delete_when_subscriptions_caught_up\","
                       "\"maxInactiveDurationSeconds\":7,\"deleteWhileInactive\":false}";
    expect_status("POST", p, tpol, 204);
    expect_json("GET", p, NULL, 200, tpol);
    expect_json("GET", applied, NULL, 200, tpol);
    struct topic_inactive_policy in = topic_inactive_policy(t);
    ck_assert(!in.delete_while_inactive && in.caught_up);
    ck_assert_int_eq(in.max_inactive_ms, 7000);
    expect_status("POST", p, "{\"inactiveTopicDeleteMode\":1}", 400);
    expect_json("GET", p, NULL, 200, tpol);
    expect_status("DELETE", p, NULL, 204);
    expect_status("GET", p, NULL, 204);
    in = topic_inactive_policy(t);
    ck_assert(in.delete_while_inactive && !in.caught_up);
    ck_assert_int_eq(in.max_inactive_ms, 30000);
    expect_status("DELETE", np, NULL, 204);
}
END_TEST

/* The topic-level delayedDelivery (TopicPolicies delayedDeliveryEnabled and
 * delayedDeliveryTickTimeMillis): GET 204 while unset, applied=true the broker's, then the
 * namespace's, then the topic's; the topic's wins on the loaded topic at once (also over a
 * namespace that turns it on); DELETE gives the namespace's back and leaves the topic's other
 * policies; 400 for a malformed body. */
START_TEST(test_topic_delayed_policy)
{
    struct tpol_paths pp;
    struct topic *t = tpol_topic("tdl", "delayedDelivery", &pp);
    const char *p = pp.p, *np = pp.np, *applied = pp.applied;
    const char *dp = "/admin/v2/persistent/public/default/tdl/maxProducers";
    expect_status("GET", p, NULL, 204);
    expect_json("GET", applied, NULL, 200, "{\"tickTime\":1000,\"active\":true}");
    expect_status("POST", np, "{\"tickTime\":250,\"active\":true}", 204);
    expect_json("GET", applied, NULL, 200, "{\"tickTime\":250,\"active\":true}");
    ck_assert(topic_delayed_enabled(t));
    ck_assert_int_eq(topic_delayed_tick_ms(t), 250);
    expect_status("POST", dp, "3", 204); /* another topic policy, kept by the DELETE below */
    expect_status("POST", p, "{\"tickTime\":7000,\"active\":false}", 204);
    expect_json("GET", p, NULL, 200, "{\"tickTime\":7000,\"active\":false}");
    expect_json("GET", applied, NULL, 200, "{\"tickTime\":7000,\"active\":false}");
    ck_assert(!topic_delayed_enabled(t));
    ck_assert_int_eq(topic_delayed_tick_ms(t), 7000);
    expect_status("POST", p, "{\"tickTime\":0,\"active\":true}", 400);
    expect_status("POST", p, "true", 400);
    expect_json("GET", p, NULL, 200, "{\"tickTime\":7000,\"active\":false}");
    expect_status("DELETE", p, NULL, 204);
    expect_status("GET", p, NULL, 204);
    expect_json("GET", dp, NULL, 200, "3");
    ck_assert(topic_delayed_enabled(t));
    ck_assert_int_eq(topic_delayed_tick_ms(t), 250);
    expect_status("DELETE", np, NULL, 204);
    expect_status("DELETE", dp, NULL, 204);
    ck_assert_int_eq(topic_delayed_tick_ms(t), 1000);
}
END_TEST

/* Each limit path (maxProducersPerTopic ... maxUnackedMessagesPerSubscription): GET 204
 * while unset, POST an integer >= 0 (412 below, 400 not an integer), shown in the
 * namespace's Policies under Pulsar's field, applied to the loaded topic (overriding the
 * broker's key), DELETE back to the key; 405 for PUT, 404 without the namespace. */
START_TEST(test_namespace_limits)
{
    static const struct {
        const char *path, *field;
        enum topic_limit l;
    } lims[] = {
        {"maxProducersPerTopic", "max_producers_per_topic", TOPIC_LIMIT_PRODUCERS},
        {"maxConsumersPerTopic", "max_consumers_per_topic", TOPIC_LIMIT_CONSUMERS},
        {"maxConsumersPerSubscription", "max_consumers_per_subscription",
         TOPIC_LIMIT_CONSUMERS_PER_SUB},
        {"maxSubscriptionsPerTopic", "max_subscriptions_per_topic", TOPIC_LIMIT_SUBSCRIPTIONS},
        {"maxUnackedMessagesPerConsumer", "max_unacked_messages_per_consumer",
         TOPIC_LIMIT_UNACKED_PER_CONSUMER},
        {"maxUnackedMessagesPerSubscription", "max_unacked_messages_per_subscription",
         TOPIC_LIMIT_UNACKED_PER_SUB},
    };
    struct topic *t = put_topic("lim");
    for (size_t i = 0; i < sizeof lims / sizeof lims[0]; i++) {
        char p[160], why[120], val[16];
        snprintf(p, sizeof p, "/admin/v2/namespaces/public/default/%s", lims[i].path);
        int64_t dflt = topic_limit(t, lims[i].l);
        int64_t v = 7 + (int64_t)i; /* differs from every default */
        snprintf(val, sizeof val, "%lld", (long long)v);
        expect_status("GET", p, NULL, 204);
        expect_status("POST", p, val, 204);
        expect_json("GET", p, NULL, 200, val);
        ck_assert_int_eq(topic_limit(t, lims[i].l), v);
        ck_assert_int_eq(rq("GET", "/admin/v2/namespaces/public/default", NULL), 200);
        ck_assert_int_eq(json_integer_value(json_object_get(reply_json(), lims[i].field)), v);
        reply_json_free();
        snprintf(why, sizeof why, "%s must be 0 or more", lims[i].path);
        expect_reason("POST", p, "-1", 412, why);
        snprintf(why, sizeof why, "Invalid %s: an integer body is required", lims[i].path);
        expect_reason("POST", p, "\"x\"", 400, why);
        expect_json("GET", p, NULL, 200, val);
        expect_status("POST", p, "0", 204); /* 0 = no limit */
        ck_assert_int_eq(topic_limit(t, lims[i].l), 0);
        expect_status("DELETE", p, NULL, 204);
        expect_status("GET", p, NULL, 204);
        ck_assert_int_eq(topic_limit(t, lims[i].l), dflt);
        expect_405("PUT", p);
        snprintf(p, sizeof p, "/admin/v2/namespaces/public/nope/%s", lims[i].path);
        expect_reason("POST", p, "1", 404, "Namespace does not exist");
    }
}
END_TEST

/* maxTopicsPerNamespace: a namespace's own path (GET 204 while unset, POST >= 0, DELETE);
 * creating topics beyond it, plain or partitioned (each partition counts), answers 412 with
 * Pulsar's text and creates nothing; an existing topic is not refused; removing it lifts it. */
START_TEST(test_namespace_max_topics)
{
    const char *p = "/admin/v2/namespaces/public/mt/maxTopicsPerNamespace";
    const char *tp = "/admin/v2/persistent/public/mt/";
    char path[128];
    expect_status("PUT", "/admin/v2/namespaces/public/mt", NULL, 204);
    expect_status("GET", p, NULL, 204);
    expect_reason("POST", p, "-1", 412, "maxTopicsPerNamespace must be 0 or more");
    expect_status("POST", p, "3", 204);
    expect_json("GET", p, NULL, 200, "3");
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%sa%d", tp, i);
        expect_status("PUT", path, NULL, 204);
    }
    snprintf(path, sizeof path, "%sa3", tp);
    expect_reason("PUT", path, NULL, 412, "Exceed maximum number of topics in namespace.");
    expect_status("GET", "/admin/v2/persistent/public/mt/a3/stats", NULL, 404);
    snprintf(path, sizeof path, "%sa0", tp);
    expect_reason("PUT", path, NULL, 409, "This topic already exists");
    expect_status("POST", p, "4", 204);
    snprintf(path, sizeof path, "%spt/partitions", tp);
    expect_reason("PUT", path, "2", 412, "Exceed maximum number of topics in namespace.");
    expect_status("POST", p, "5", 204);
    expect_status("PUT", path, "2", 204);
    expect_status("DELETE", p, NULL, 204);
    expect_status("GET", p, NULL, 204);
    snprintf(path, sizeof path, "%sa3", tp);
    expect_status("PUT", path, NULL, 204);
}
END_TEST

/* .../dispatchRate and .../subscriptionDispatchRate: GET 204 while unset; POST a
 * DispatchRate, kept under this cluster in Policies.topicDispatchRate /
 * subscriptionDispatchRate and applied to the loaded topic; a negative or 0 rate means no
 * limit (Pulsar's -1); malformed ones (not integers, a message rate beyond 2^31-1, a period
 * of 0) answer 400 and change nothing; DELETE goes back to the broker's keys. */
START_TEST(test_namespace_dispatch_rate)
{
    static const struct {
        const char *path, *field;
        enum topic_rate_scope sc;
    } rates[] = {{"dispatchRate", "topicDispatchRate", TOPIC_RATE_TOPIC},
                 {"subscriptionDispatchRate", "subscriptionDispatchRate", TOPIC_RATE_SUB}};
    struct topic *t = put_topic("dr");
    for (size_t i = 0; i < 2; i++) {
        char p[128];
        snprintf(p, sizeof p, "/admin/v2/namespaces/public/default/%s", rates[i].path);
        expect_status("GET", p, NULL, 204);
        expect_status("POST", p,
                      "{\"dispatchThrottlingRateInMsg\":70,\"dispatchThrottlingRateInByte\":-1,"
                      "\"ratePeriodInSecond\":2}",
                      204);
        expect_json("GET", p, NULL, 200,
                    "{\"dispatchThrottlingRateInMsg\":70,\"dispatchThrottlingRateInByte\":-1,"
                    "\"relativeToPublishRate\":false,\"ratePeriodInSecond\":2}");
        struct topic_dispatch_rate d = topic_dispatch_rate(t, rates[i].sc);
        ck_assert_int_eq(d.msgs, 70);
        ck_assert_int_le(d.bytes, 0);
        ck_assert_int_eq(d.period_secs, 2);
        ck_assert_int_eq(rq("GET", "/admin/v2/namespaces/public/default", NULL), 200);
        json_t *m = json_object_get(json_object_get(reply_json(), rates[i].field), "standalone");
        ck_assert_int_eq(json_integer_value(json_object_get(m, "dispatchThrottlingRateInMsg")), 70);
        reply_json_free();
        const char *bad[] = {"{\"dispatchThrottlingRateInMsg\":\"x\"}",
                             "{\"dispatchThrottlingRateInMsg\":4294967296}",
                             "{\"dispatchThrottlingRateInMsg\":5,\"ratePeriodInSecond\":0}", "[1]",
                             "nope"};
        for (size_t k = 0; k < sizeof bad / sizeof *bad; k++)
            expect_status("POST", p, bad[k], 400);
        ck_assert_int_eq(topic_dispatch_rate(t, rates[i].sc).msgs, 70);
        expect_status("POST", p, "{\"dispatchThrottlingRateInMsg\":0}", 204);
        ck_assert_int_le(topic_dispatch_rate(t, rates[i].sc).msgs, 0);
        expect_status("DELETE", p, NULL, 204);
        expect_status("GET", p, NULL, 204);
        ck_assert_int_eq(topic_dispatch_rate(t, rates[i].sc).msgs, 0); /* the broker's 0 */
        expect_405("PUT", p);
    }
}
END_TEST

/* A metadata read on broker 0's session. */
struct node_read {
    struct meta_req req;
    int status;
    bool done;
};

static void node_read_cb(struct meta_req *req, int status)
{
    struct node_read *nr = req->data;
    nr->status = status;
    nr->done = true;
}

static bool node_read_done(const void *arg)
{
    return ((const struct node_read *)arg)->done;
}

/* Read path from the store: its status, and its value as JSON into *j (0 only). */
static int read_node(const char *path, json_t **j)
{
    struct node_read nr = {.req = {.data = NULL}};
    nr.req.data = &nr;
    ck_assert_int_eq(meta_get(fx.meta[0], path, &nr.req, node_read_cb), 0);
    ck_assert(tl_base_until(fx.base, node_read_done, &nr, 5000));
    if (nr.status == 0)
        *j = json_loadb(nr.req.value, nr.req.len, 0, NULL);
    meta_req_fini(&nr.req);
    return nr.status;
}

/* Run the loop until t's deduplication status is want (bounded). */
static void wait_dedup_status(struct topic *t, const char *want)
{
    for (int i = 0; i < 300 && strcmp(topic_dedup_status(t), want) != 0; i++)
        tl_base_run_for(fx.base, 10);
    ck_assert_str_eq(topic_dedup_status(t), want);
}

/* The topic-level deduplicationEnabled (TopicPolicies): GET 204 while unset, applied=true the
 * value in force (broker, then namespace, then topic); the topic's value wins over the
 * namespace's on the loaded topic at once, DELETE gives the namespace's back; 400 for a body
 * that is not a boolean, 412 for a partition's name, 404 for a topic that does not exist,
 * 405 for another method; the store holds it under /admin/topic-policies. */
START_TEST(test_topic_deduplication_policy)
{
    const char *p = "/admin/v2/persistent/public/default/tdd/deduplicationEnabled";
    const char *np = "/admin/v2/namespaces/public/default/deduplication";
    struct topic *t = put_topic("tdd");
    expect_status("GET", p, NULL, 204);
    char applied[256];
    snprintf(applied, sizeof applied, "%s?applied=true", p);
    expect_json("GET", applied, NULL, 200, "false"); /* brokerDeduplicationEnabled */
    expect_status("POST", np, "true", 204);
    expect_json("GET", applied, NULL, 200, "true"); /* the namespace's */
    expect_status("GET", p, NULL, 204);
    wait_dedup_status(t, "Enabled");
    /* the topic's own value wins over the namespace's, at once */
    expect_status("POST", p, "false", 204);
    expect_json("GET", p, NULL, 200, "false");
    expect_json("GET", applied, NULL, 200, "false");
    wait_dedup_status(t, "Disabled");
    ck_assert(!ml_cursor_exists(topic_ml(t), TOPIC_DEDUP_CURSOR));
    expect_status("POST", np, "false", 204);
    expect_status("POST", p, "true", 204);
    wait_dedup_status(t, "Enabled");
    expect_json("GET", p, NULL, 200, "true");
    /* stored as TopicPolicies JSON on the base name */
    json_t *j = NULL;
    ck_assert_int_eq(read_node("/admin/topic-policies/public/default/persistent/tdd", &j), 0);
    ck_assert(json_is_true(json_object_get(j, "deduplicationEnabled")));
    json_decref(j);
    /* bad input */
    expect_reason("POST", p, "1", 400, "Invalid deduplication setting: true or false is required");
    expect_reason("POST", p, "x", 400, "Invalid deduplication setting: true or false is required");
    expect_json("GET", p, NULL, 200, "true");
    expect_reason("GET", "/admin/v2/persistent/public/default/tdd-partition-0/deduplicationEnabled",
                  NULL, 412, "Not allowed to set/get topic policy for a partition");
    expect_reason("POST", "/admin/v2/persistent/public/default/nope/deduplicationEnabled", "true",
                  404, "Topic persistent://public/default/nope not found");
    expect_405("PUT", p);
    /* DELETE: the namespace's value (false now) applies again */
    expect_status("DELETE", p, NULL, 204);
    expect_status("GET", p, NULL, 204);
    wait_dedup_status(t, "Disabled");
    expect_status("DELETE", p, NULL, 204); /* nothing to remove */
    /* an empty TopicPolicies is not kept */
    ck_assert_int_eq(read_node("/admin/topic-policies/public/default/persistent/tdd", &j),
                     -MG_ENOTFOUND);
}
END_TEST

/* What a topic_get waiter sees of deduplication when its callback runs. */
static void dedup_at_load_cb(struct topic *t, int status, void *data)
{
    ck_assert_int_eq(status, 0);
    snprintf(data, 32, "%s", topic_dedup_status(t));
}

/* Load full on broker 0: its first waiter sees deduplication's status want. */
static void expect_dedup_at_load(const char *full, const char *want)
{
    char seen[32] = "";
    ck_assert_int_eq(topic_get(svc_topics(fx.svc[0]), full, true, dedup_at_load_cb, seen), 0);
    for (int i = 0; i < 300 && !seen[0]; i++)
        tl_base_run_for(fx.base, 10);
    ck_assert_str_eq(seen, want);
}

static void loaded_cb(struct topic *t, int status, void *data)
{
    ck_assert_int_eq(status, 0);
    *(struct topic **)data = t;
}

/* Load partition n of the partitioned topic public/default/<base> on broker 0 (waiting at
 * most 3 s). */
static struct topic *load_partition(const char *base, int n)
{
    char full[160];
    snprintf(full, sizeof full, "persistent://public/default/%s-partition-%d", base, n);
    struct topic *t = NULL;
    ck_assert_int_eq(topic_get(svc_topics(fx.svc[0]), full, true, loaded_cb, &t), 0);
    for (int i = 0; i < 300 && !t; i++)
        tl_base_run_for(fx.base, 10);
    ck_assert_ptr_nonnull(t);
    return t;
}

/* Each topic limit path (maxProducers ... maxUnackedMessagesOnSubscription): GET 204 while
 * unset, applied=true the value in force (broker, namespace, topic); POST an integer >= 0
 * (412 below, 400 not an integer) is stored under Pulsar's TopicPolicies field and wins over
 * the namespace's value on the loaded topic at once; DELETE gives the namespace's back; 412
 * for a partition, 404 for no topic, 405 for PUT. A partitioned topic's value reaches its
 * loaded partitions. */
START_TEST(test_topic_limit_policies)
{
    static const struct {
        const char *path, *ns_path, *field, *arg;
        enum topic_limit l;
    } lims[] = {
        {"maxProducers", "maxProducersPerTopic", "maxProducerPerTopic", "maxProducers",
         TOPIC_LIMIT_PRODUCERS},
        {"maxConsumers", "maxConsumersPerTopic", "maxConsumerPerTopic", "maxConsumers",
         TOPIC_LIMIT_CONSUMERS},
        {"maxConsumersPerSubscription", "maxConsumersPerSubscription",
         "maxConsumersPerSubscription", "maxConsumersPerSubscription",
         TOPIC_LIMIT_CONSUMERS_PER_SUB},
        {"maxSubscriptionsPerTopic", "maxSubscriptionsPerTopic", "maxSubscriptionsPerTopic",
         "maxSubscriptionsPerTopic", TOPIC_LIMIT_SUBSCRIPTIONS},
        {"maxUnackedMessagesOnConsumer", "maxUnackedMessagesPerConsumer",
         "maxUnackedMessagesOnConsumer", "maxUnackedNum", TOPIC_LIMIT_UNACKED_PER_CONSUMER},
        {"maxUnackedMessagesOnSubscription", "maxUnackedMessagesPerSubscription",
         "maxUnackedMessagesOnSubscription", "maxUnackedNum", TOPIC_LIMIT_UNACKED_PER_SUB},
    };
    struct topic *t = put_topic("tlim");
    expect_status("PUT", "/admin/v2/persistent/public/default/tlp/partitions", "2", 204);
    struct topic *p0 = load_partition("tlp", 0), *p1 = load_partition("tlp", 1);
    for (size_t i = 0; i < sizeof lims / sizeof lims[0]; i++) {
        char p[160], ap[180], np[160], pp[160], why[120], val[16], nval[16];
        snprintf(p, sizeof p, "/admin/v2/persistent/public/default/tlim/%s", lims[i].path);
        snprintf(ap, sizeof ap, "%s?applied=true", p);
        snprintf(np, sizeof np, "/admin/v2/namespaces/public/default/%s", lims[i].ns_path);
        snprintf(pp, sizeof pp, "/admin/v2/persistent/public/default/tlp/%s", lims[i].path);
        int64_t dflt = topic_limit(t, lims[i].l), vns = 11 + (int64_t)i, v = 3 + (int64_t)i;
        snprintf(val, sizeof val, "%lld", (long long)v);
        snprintf(nval, sizeof nval, "%lld", (long long)vns);
        char dval[24];
        snprintf(dval, sizeof dval, "%lld", (long long)dflt);
        expect_status("GET", p, NULL, 204);
        expect_json("GET", ap, NULL, 200, dval);
        expect_status("POST", np, nval, 204);
        expect_json("GET", ap, NULL, 200, nval);
        ck_assert_int_eq(topic_limit(t, lims[i].l), vns);
        /* the topic's own value wins, at once */
        expect_status("POST", p, val, 204);
        expect_json("GET", p, NULL, 200, val);
        expect_json("GET", ap, NULL, 200, val);
        ck_assert_int_eq(topic_limit(t, lims[i].l), v);
        json_t *j = NULL;
        ck_assert_int_eq(read_node("/admin/topic-policies/public/default/persistent/tlim", &j), 0);
        ck_assert_int_eq(json_integer_value(json_object_get(j, lims[i].field)), v);
        json_decref(j);
        snprintf(why, sizeof why, "%s must be 0 or more", lims[i].arg);
        expect_reason("POST", p, "-1", 412, why);
        snprintf(why, sizeof why, "Invalid %s: an integer body is required", lims[i].path);
        expect_reason("POST", p, "\"x\"", 400, why);
        expect_json("GET", p, NULL, 200, val);
        /* a partitioned topic's value reaches its partitions */
        expect_status("POST", pp, val, 204);
        ck_assert_int_eq(topic_limit(p0, lims[i].l), v);
        ck_assert_int_eq(topic_limit(p1, lims[i].l), v);
        expect_status("DELETE", pp, NULL, 204);
        ck_assert_int_eq(topic_limit(p1, lims[i].l), vns);
        /* DELETE: the namespace's value again */
        expect_status("DELETE", p, NULL, 204);
        expect_status("GET", p, NULL, 204);
        ck_assert_int_eq(topic_limit(t, lims[i].l), vns);
        expect_status("DELETE", np, NULL, 204);
        ck_assert_int_eq(topic_limit(t, lims[i].l), dflt);
        snprintf(pp, sizeof pp, "/admin/v2/persistent/public/default/tlp-partition-0/%s",
                 lims[i].path);
        expect_reason("GET", pp, NULL, 412, "Not allowed to set/get topic policy for a partition");
        snprintf(pp, sizeof pp, "/admin/v2/persistent/public/default/nope/%s", lims[i].path);
        expect_reason("POST", pp, "1", 404, "Topic persistent://public/default/nope not found");
        expect_405("PUT", p);
    }
}
END_TEST

/* The topic's msgs rate of path (dispatch rates by scope, else the publish rate). */
static int64_t topic_rate_msgs(struct topic *t, const char *path)
{
    if (strcmp(path, "publishRate") == 0)
        return topic_publish_rate(t).msgs;
    return topic_dispatch_rate(t, strcmp(path, "dispatchRate") == 0 ? TOPIC_RATE_TOPIC
                                                                    : TOPIC_RATE_SUB)
        .msgs;
}

/* GET path (answering 200): its field's integer. */
static int64_t applied_msgs(const char *path, const char *field)
{
    ck_assert_int_eq(rq("GET", path, NULL), 200);
    int64_t v = json_integer_value(json_object_get(reply_json(), field));
    reply_json_free();
    return v;
}

/* dispatchRate, subscriptionDispatchRate, publishRate on a topic: GET 204 while unset, POST a
 * DispatchRate / PublishRate (400 when not an object) stored under the TopicPolicies field
 * and winning over the namespace's on the loaded topic and on a partitioned topic's loaded
 * partitions; GET answers it, applied=true the rate in force (broker, namespace, topic);
 * DELETE gives the namespace's back. */
START_TEST(test_topic_rate_policies)
{
    static const char *paths[] = {"dispatchRate", "subscriptionDispatchRate", "publishRate"};
    struct topic *t = put_topic("trate");
    expect_status("PUT", "/admin/v2/persistent/public/default/trp/partitions", "2", 204);
    struct topic *p1 = load_partition("trp", 1);
    for (size_t i = 0; i < 3; i++) {
        bool pub = i == 2;
        char p[160], np[160], pp[160], body[160], nbody[160];
        int64_t v = 40 + (int64_t)i, vns = 900 + (int64_t)i;
        const char *field = pub ? "publishThrottlingRateInMsg" : "dispatchThrottlingRateInMsg";
        const char *rest = pub ? "\"publishThrottlingRateInByte\":-1"
                               : "\"dispatchThrottlingRateInByte\":-1,\"ratePeriodInSecond\":1";
        snprintf(body, sizeof body, "{\"%s\":%lld,%s}", field, (long long)v, rest);
        snprintf(nbody, sizeof nbody, "{\"%s\":%lld,%s}", field, (long long)vns, rest);
        snprintf(p, sizeof p, "/admin/v2/persistent/public/default/trate/%s", paths[i]);
        snprintf(np, sizeof np, "/admin/v2/namespaces/public/default/%s", paths[i]);
        snprintf(pp, sizeof pp, "/admin/v2/persistent/public/default/trp/%s", paths[i]);
        char ap[180];
        snprintf(ap, sizeof ap, "%s?applied=true", p);
        expect_status("GET", p, NULL, 204);
        ck_assert_int_eq(applied_msgs(ap, field), topic_rate_msgs(t, paths[i])); /* broker's */
        expect_status("POST", np, nbody, 204);
        ck_assert_int_eq(topic_rate_msgs(t, paths[i]), vns);
        ck_assert_int_eq(applied_msgs(ap, field), vns);
        expect_status("POST", p, body, 204);
        ck_assert_int_eq(topic_rate_msgs(t, paths[i]), v);
        ck_assert_int_eq(applied_msgs(ap, field), v);
        ck_assert_int_eq(rq("GET", p, NULL), 200);
        ck_assert_int_eq(
            json_integer_value(json_object_get(reply_json(), pub ? "publishThrottlingRateInMsg"
                                                                 : "dispatchThrottlingRateInMsg")),
            v);
        reply_json_free();
        json_t *j = NULL;
        ck_assert_int_eq(read_node("/admin/topic-policies/public/default/persistent/trate", &j), 0);
        ck_assert(json_is_object(json_object_get(j, paths[i])));
        json_decref(j);
        expect_status("POST", p, "5", 400);
        expect_status("POST", pp, body, 204);
        ck_assert_int_eq(topic_rate_msgs(p1, paths[i]), v);
        expect_status("DELETE", pp, NULL, 204);
        ck_assert_int_eq(topic_rate_msgs(p1, paths[i]), vns);
        expect_status("DELETE", p, NULL, 204);
        expect_status("GET", p, NULL, 204);
        ck_assert_int_eq(topic_rate_msgs(t, paths[i]), vns);
        expect_status("DELETE", np, NULL, 204);
    }
}
END_TEST

/* A topic whose own policy is stored loads with it: its first waiters (the producers a load
 * serves) run only once deduplication is as the topic's policy says, over the namespace's
 * (on: rebuilt; off while the namespace says on: never started). */
START_TEST(test_topic_dedup_policy_at_load)
{
    expect_status("PUT", "/admin/v2/persistent/public/default/ph/partitions", "2", 204);
    expect_status("POST", "/admin/v2/persistent/public/default/ph/deduplicationEnabled", "true",
                  204);
    expect_dedup_at_load("persistent://public/default/ph-partition-0", "Enabled");
    expect_status("POST", "/admin/v2/namespaces/public/default/deduplication", "true", 204);
    expect_status("POST", "/admin/v2/persistent/public/default/ph/deduplicationEnabled", "false",
                  204);
    expect_dedup_at_load("persistent://public/default/ph-partition-1", "Disabled");
    struct topic *t =
        topic_find(svc_topics(fx.svc[0]), "persistent://public/default/ph-partition-1");
    ck_assert(!ml_cursor_exists(topic_ml(t), TOPIC_DEDUP_CURSOR));
}
END_TEST

/* A topic unloaded while its policy did not change does not keep its tracking entry (and store
 * watch) for ever: topics loaded afterwards sweep it. */
START_TEST(test_topic_policy_tracking_bounded)
{
    struct ns *ns0 = svc_ns(fx.svc[0]);
    expect_status("PUT", "/admin/v2/persistent/public/default/sw", NULL, 204);
    ck_assert_ptr_nonnull(mg_map_get_str(&ns0->topic_pols, "persistent://public/default/sw"));
    expect_status("PUT", "/admin/v2/persistent/public/default/sw/unload", NULL, 204);
    ck_assert_ptr_null(topic_find(svc_topics(fx.svc[0]), "persistent://public/default/sw"));
    for (int i = 0; i < 8; i++) {
        char p[128];
        snprintf(p, sizeof p, "/admin/v2/persistent/public/default/sw%d", i);
        expect_status("PUT", p, NULL, 204);
    }
    ck_assert_ptr_null(mg_map_get_str(&ns0->topic_pols, "persistent://public/default/sw"));
    ck_assert_ptr_nonnull(mg_map_get_str(&ns0->topic_pols, "persistent://public/default/sw7"));
    /* a plain topic whose name only looks like a partition's does not follow sw's policy */
    struct topic *look = put_topic("sw0-partition-x");
    expect_status("POST", "/admin/v2/persistent/public/default/sw0/deduplicationEnabled", "true",
                  204);
    ck_assert_str_eq(topic_dedup_status(look), "Disabled");
}
END_TEST

/* Deleting a topic deletes its schema and topic policies (Pulsar's PersistentTopic.delete:
 * deleteSchema, deleteTopicPolicies): a plain topic at its delete; of a partitioned topic,
 * deleting one partition keeps the partitioned topic's, deleting the partitioned topic drops
 * them. A topic created again under the name starts without either. */
START_TEST(test_topic_delete_drops_schema_and_policies)
{
    const char *body = "{\"type\":\"STRING\",\"schema\":\"\",\"properties\":{}}";
    const char *names[] = {"sd", "spd"};
    for (int k = 0; k < 2; k++) {
        bool part = k == 1;
        char t[160], sch[160], pol[160], p0[160];
        snprintf(t, sizeof t, "/admin/v2/persistent/public/default/%s%s", names[k],
                 part ? "/partitions" : "");
        snprintf(sch, sizeof sch, "/admin/v2/schemas/public/default/%s/schema", names[k]);
        snprintf(pol, sizeof pol, "/admin/v2/persistent/public/default/%s/deduplicationEnabled",
                 names[k]);
        snprintf(p0, sizeof p0, "/admin/v2/persistent/public/default/%s-partition-0", names[k]);
        expect_status("PUT", t, part ? "2" : NULL, 204);
        expect_status("POST", sch, body, 202);
        expect_status("GET", sch, NULL, 200);
        expect_status("POST", pol, "true", 204);
        if (part) { /* a partition alone: the partitioned topic keeps both */
            expect_status("DELETE", p0, NULL, 204);
            expect_status("GET", sch, NULL, 200);
            expect_json("GET", pol, NULL, 200, "true");
        }
        expect_status("DELETE", t, NULL, 204);
        expect_status("GET", sch, NULL, 404);
        expect_status("PUT", t, part ? "2" : NULL, 204);
        expect_status("GET", sch, NULL, 404);
        expect_status("GET", pol, NULL, 204);
    }
}
END_TEST

/* .../publishRate: GET 204 while unset; POST a PublishRate, kept under this cluster in
 * Policies.publishMaxMessageRate and applied to the loaded topic (<= 0: none); malformed
 * ones answer 400; DELETE goes back to the broker's keys. */
START_TEST(test_namespace_publish_rate)
{
    const char *p = "/admin/v2/namespaces/public/default/publishRate";
    struct topic *t = put_topic("pr");
    expect_status("GET", p, NULL, 204);
    expect_status("POST", p,
                  "{\"publishThrottlingRateInMsg\":90,\"publishThrottlingRateInByte\":-1}", 204);
    expect_json("GET", p, NULL, 200,
                "{\"publishThrottlingRateInMsg\":90,\"publishThrottlingRateInByte\":-1}");
    ck_assert_int_eq(topic_publish_rate(t).msgs, 90);
    ck_assert_int_le(topic_publish_rate(t).bytes, 0);
    ck_assert_int_eq(rq("GET", "/admin/v2/namespaces/public/default", NULL), 200);
    json_t *m =
        json_object_get(json_object_get(reply_json(), "publishMaxMessageRate"), "standalone");
    ck_assert_int_eq(json_integer_value(json_object_get(m, "publishThrottlingRateInMsg")), 90);
    reply_json_free();
    expect_status("POST", p, "{\"publishThrottlingRateInMsg\":1.5}", 400);
    expect_status("POST", p, "{\"publishThrottlingRateInMsg\":9999999999}", 400);
    expect_status("POST", p, "7", 400);
    ck_assert_int_eq(topic_publish_rate(t).msgs, 90);
    expect_status("POST", p, "{\"publishThrottlingRateInMsg\":-5}", 204);
    ck_assert_int_le(topic_publish_rate(t).msgs, 0);
    expect_status("DELETE", p, NULL, 204);
    expect_status("GET", p, NULL, 204);
    ck_assert_int_eq(topic_publish_rate(t).msgs, 0);
}
END_TEST

static void cp_pub_cb(void *data, int status, struct ml_position pos)
{
    (void)pos;
    ck_assert_int_eq(status, 0);
    (*(int *)data)++;
}

/* PUT .../compaction starts a run (204), another while it runs is refused with 409; GET gives
 * Pulsar's LongRunningProcessStatus; the namespace's compactionThreshold (GET 204 while unset,
 * PUT a byte count, DELETE) reaches the loaded topics. */
START_TEST(test_compaction_admin)
{
    const char *c = "/admin/v2/persistent/public/default/cpt/compaction";
    const char *th = "/admin/v2/namespaces/public/default/compactionThreshold";
    struct topic *t = put_topic("cpt");
    expect_json("GET", c, NULL, 200, "{\"status\":\"NOT_RUN\",\"lastError\":\"\"}");
    /* many keys: the run reads and appends 100 entries per loop turn, so it outlasts requests */
    struct topic_producer *p = NULL;
    ck_assert_int_eq(topic_producer_add(t, NULL, TOPIC_ACCESS_SHARED, NULL, NULL, &p), 0);
    int done = 0, n = 5000;
    for (int i = 0; i < n; i++) {
        Pulsar__Proto__MessageMetadata md;
        tl_pulsar_md(&md, "p", (uint64_t)i, 1000);
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        md.partition_key = key;
        ck_assert_int_eq(
            topic_publish(p, tl_pulsar_entry(&md, "v", 1), NULL, (uint64_t)i, 0, cp_pub_cb, &done),
            0);
    }
    for (int i = 0; i < 1000 && done < n; i++)
        tl_base_run_for(fx.base, 10);
    ck_assert_int_eq(done, n);
    topic_producer_close(p);
    expect_status("PUT", c, NULL, 204);
    expect_reason("PUT", c, NULL, 409, "Compaction already in progress");
    expect_json("GET", c, NULL, 200, "{\"status\":\"RUNNING\",\"lastError\":\"\"}");
    const char *err;
    for (int i = 0; i < 3000 && strcmp(topic_compact_status(t, &err), "RUNNING") == 0; i++)
        tl_base_run_for(fx.base, 10);
    expect_json("GET", c, NULL, 200, "{\"status\":\"SUCCESS\",\"lastError\":\"\"}");
    expect_405("POST", c);

    expect_status("GET", th, NULL, 204);
    ck_assert_int_eq(t->compact.threshold, -1);
    expect_status("PUT", th, "1048576", 204);
    expect_json("GET", th, NULL, 200, "1048576");
    ck_assert_int_eq(t->compact.threshold, 1048576);
    ck_assert_int_eq(rq("GET", "/admin/v2/namespaces/public/default", NULL), 200);
    ck_assert_int_eq(json_integer_value(json_object_get(reply_json(), "compaction_threshold")),
                     1048576);
    reply_json_free();
    expect_reason("PUT", th, "-1", 412, "compactionThreshold must be 0 or more");
    expect_reason("PUT", th, "\"x\"", 400,
                  "Invalid compaction threshold: an integer body is required");
    expect_status("DELETE", th, NULL, 204);
    expect_status("GET", th, NULL, 204);
    ck_assert_int_eq(t->compact.threshold, -1);
}
END_TEST

START_TEST(test_namespace_backlog_quota)
{
    const char *map = "/admin/v2/namespaces/public/default/backlogQuotaMap";
    const char *q = "/admin/v2/namespaces/public/default/backlogQuota";
    const char *q_age =
        "/admin/v2/namespaces/public/default/backlogQuota?backlogQuotaType=message_age";
    expect_json("GET", map, NULL, 200, "{}");
    const char *stats = "/admin/v2/persistent/public/default/qt/stats";
    expect_status("PUT", "/admin/v2/persistent/public/default/qt", NULL, 204);
    ck_assert_int_eq(rq("GET", stats, NULL), 200);
    ck_assert_int_eq(json_integer_value(json_object_get(reply_json(), "backlogQuotaLimitSize")),
                     -1);
    reply_json_free();
    expect_status("POST", q,
                  "{\"limitSize\":1048576,\"limitTime\":-1,\"policy\":\"producer_exception\"}",
                  204);
    expect_json("GET", map, NULL, 200,
                "{\"destination_storage\":{\"limit\":1048576,\"limitSize\":1048576,"
                "\"limitTime\":-1,\"policy\":\"producer_exception\"}}");
    /* "limit" is limitSize's old name; the policy defaults to producer_request_hold */
    expect_status("POST", q_age, "{\"limit\":-1,\"limitTime\":3600}", 204);
    expect_json("GET", map, NULL, 200,
                "{\"destination_storage\":{\"limit\":1048576,\"limitSize\":1048576,"
                "\"limitTime\":-1,\"policy\":\"producer_exception\"},"
                "\"message_age\":{\"limit\":-1,\"limitSize\":-1,\"limitTime\":3600,"
                "\"policy\":\"producer_request_hold\"}}");
    ck_assert_int_eq(rq("GET", "/admin/v2/namespaces/public/default", NULL), 200);
    ck_assert_int_eq(json_object_size(json_object_get(reply_json(), "backlog_quota_map")), 2);
    reply_json_free();
    ck_assert_int_eq(rq("GET", stats, NULL), 200); /* the loaded topic took both quotas */
    ck_assert_int_eq(json_integer_value(json_object_get(reply_json(), "backlogQuotaLimitSize")),
                     1048576);
    ck_assert_int_eq(json_integer_value(json_object_get(reply_json(), "backlogQuotaLimitTime")),
                     3600);
    reply_json_free();
    /* and /metrics shows them with Pulsar's names, the evictions once per quota type */
    ck_assert_int_eq(rq("GET", "/metrics", NULL), 200);
    const char *lbl = "{cluster=\"standalone\",namespace=\"public/default\","
                      "topic=\"persistent://public/default/qt\"";
    char want[512];
    snprintf(want, sizeof want, "\npulsar_storage_backlog_quota_limit%s} 1048576.0\n", lbl);
    ck_assert_ptr_nonnull(strstr(last.body, want));
    snprintf(want, sizeof want, "\npulsar_storage_backlog_quota_limit_time%s} 3600.0\n", lbl);
    ck_assert_ptr_nonnull(strstr(last.body, want));
    snprintf(want, sizeof want, "\npulsar_storage_backlog_age_seconds%s} -1.0\n", lbl);
    ck_assert_ptr_nonnull(strstr(last.body, want));
    snprintf(want, sizeof want,
             "\n# TYPE pulsar_storage_backlog_quota_exceeded_evictions_total gauge\n"
             "pulsar_storage_backlog_quota_exceeded_evictions_total%s,quota_type=\"size\"} 0.0\n"
             "pulsar_storage_backlog_quota_exceeded_evictions_total%s,quota_type=\"time\"} 0.0\n",
             lbl, lbl);
    ck_assert_ptr_nonnull(strstr(last.body, want));
    const char *bad = "Invalid backlog quota: a JSON object with limitSize and limitTime "
                      "(integers >= -1) and policy (producer_request_hold, producer_exception "
                      "or consumer_backlog_eviction) is required";
    expect_reason("POST", q, "{\"limitSize\":1,\"policy\":\"nope\"}", 400, bad);
    expect_reason("POST", q, "{\"limitSize\":-2}", 400, bad);
    expect_reason("POST", q, "x", 400, bad);
    expect_reason("POST", q, NULL, 400, bad);
    expect_reason("POST", "/admin/v2/namespaces/public/default/backlogQuota?backlogQuotaType=x",
                  "{}", 400, "Invalid backlogQuotaType x");
    /* retention must keep more than the storage quota holds back, both ways */
    const char *ret = "/admin/v2/namespaces/public/default/retention";
    expect_reason("POST", ret, "{\"retentionTimeInMinutes\":10,\"retentionSizeInMB\":1}", 412,
                  "Retention Quota must exceed configured backlog quota for namespace.");
    expect_status("POST", ret, "{\"retentionTimeInMinutes\":10,\"retentionSizeInMB\":2}", 204);
    expect_reason("POST", q, "{\"limitSize\":4194304}", 412,
                  "Backlog Quota exceeds configured retention quota for namespace. Please "
                  "increase retention quota and retry");
    expect_status("DELETE", q_age, NULL, 204);
    expect_json("GET", map, NULL, 200,
                "{\"destination_storage\":{\"limit\":1048576,\"limitSize\":1048576,"
                "\"limitTime\":-1,\"policy\":\"producer_exception\"}}");
    expect_status("DELETE", q, NULL, 204); /* destination_storage when no type is given */
    expect_json("GET", map, NULL, 200, "{}");
    expect_405("GET", q);
    expect_405("POST", map);
    expect_reason("GET", "/admin/v2/namespaces/public/nope/backlogQuotaMap", NULL, 404,
                  "Namespace does not exist");
}
END_TEST

START_TEST(test_namespace_retention)
{
    const char *p = "/admin/v2/namespaces/public/default/retention";
    expect_status("GET", p, NULL, 204); /* never set */
    ck_assert_str_eq(last.body, "");
    expect_status("POST", p, "{\"retentionTimeInMinutes\":60,\"retentionSizeInMB\":100}", 204);
    expect_json("GET", p, NULL, 200, "{\"retentionTimeInMinutes\":60,\"retentionSizeInMB\":100}");
    ck_assert_int_eq(rq("GET", "/admin/v2/namespaces/public/default", NULL), 200);
    ck_assert_ptr_nonnull(json_object_get(reply_json(), "retention_policies"));
    reply_json_free();
    expect_status("POST", p, "{\"retentionTimeInMinutes\":-1,\"retentionSizeInMB\":-1}", 204);
    expect_json("GET", p, NULL, 200, "{\"retentionTimeInMinutes\":-1,\"retentionSizeInMB\":-1}");
    const char *need = "Invalid retention policy: a JSON object with retentionTimeInMinutes "
                       "and retentionSizeInMB is required";
    expect_reason("POST", p, NULL, 400, need);
    expect_reason("POST", p, "x", 400, need);
    expect_reason("POST", p, "[1]", 400, need);
    expect_reason("POST", p, "{\"retentionTimeInMinutes\":\"1\"}", 400,
                  "Invalid retention policy: values must be integers");
    expect_reason("POST", p, "{\"retentionTimeInMinutes\":-2,\"retentionSizeInMB\":5}", 400,
                  "Invalid retention policy: retentionTimeInMinutes=-2, retentionSizeInMB=5 "
                  "(each >= -1, both 0 or neither 0)");
    expect_reason("POST", p, "{\"retentionTimeInMinutes\":10}", 400,
                  "Invalid retention policy: retentionTimeInMinutes=10, retentionSizeInMB=0 "
                  "(each >= -1, both 0 or neither 0)");
    /* the refused ones changed nothing */
    expect_json("GET", p, NULL, 200, "{\"retentionTimeInMinutes\":-1,\"retentionSizeInMB\":-1}");
    expect_status("DELETE", p, NULL, 204);
    expect_status("GET", p, NULL, 204);
    expect_reason("GET", "/admin/v2/namespaces/public/nope/retention", NULL, 404,
                  "Namespace does not exist");
}
END_TEST

START_TEST(test_namespace_unload)
{
    expect_status("PUT", "/admin/v2/persistent/public/default/t", NULL, 204);
    expect_status("PUT", "/admin/v2/namespaces/public/default/unload", NULL, 204);
    expect_status("POST", "/admin/v2/namespaces/public/default/unload", NULL, 204);
    expect_status("PUT", "/admin/v2/namespaces/public/default/0x00000000_0x40000000/unload", NULL,
                  204);
    expect_reason("PUT", "/admin/v2/namespaces/public/default/0x00000000_0x10000000/unload", NULL,
                  412, "Invalid bundle range 0x00000000_0x10000000");
    expect_reason("POST", "/admin/v2/namespaces/public/default/topics/unload", NULL, 412,
                  "Invalid bundle range topics");
    /* the bundles were released: the topic is not loaded here any more */
    ck_assert_ptr_null(topic_find(svc_topics(fx.svc[0]), "persistent://public/default/t"));
}
END_TEST

/* ---- topics --------------------------------------------------------------------------------- */

#define T "/admin/v2/persistent/public/default"

START_TEST(test_topic_crud)
{
    expect_json("GET", T, NULL, 200, "[]");
    expect_reason("GET", T "/t1/stats", NULL, 404,
                  "Topic persistent://public/default/t1 not found");
    expect_status("PUT", T "/t1", NULL, 204);
    expect_reason("PUT", T "/t1", NULL, 409, "This topic already exists");
    expect_json("GET", T, NULL, 200, "[\"persistent://public/default/t1\"]");
    expect_json("GET", T "/partitioned", NULL, 200, "[]");
    ck_assert_int_eq(rq("GET", T "/t1/stats", NULL), 200);
    json_t *st = reply_json();
    ck_assert(json_is_array(json_object_get(st, "publishers")));
    ck_assert(json_is_object(json_object_get(st, "subscriptions")));
    ck_assert_int_eq(json_integer_value(json_object_get(st, "msgInCounter")), 0);
    ck_assert_str_eq(json_string_value(json_object_get(st, "ownerBroker")),
                     ns_broker_id(svc_ns(fx.svc[0])));
    reply_json_free();
    ck_assert_int_eq(rq("GET", T "/t1/internalStats", NULL), 200);
    ck_assert(json_is_array(json_object_get(reply_json(), "ledgers")));
    reply_json_free();
    ck_assert_int_eq(rq("GET", T "/t1/lastMessageId", NULL), 200);
    ck_assert_int_eq(json_integer_value(json_object_get(reply_json(), "partitionIndex")), -1);
    reply_json_free();
    expect_json("GET", T "/t1/partitions", NULL, 200, "{\"partitions\":0}");
    expect_json("GET", T "/t1/subscriptions", NULL, 200, "[]");
    expect_status("PUT", T "/t1/unload", NULL, 204);
    ck_assert_ptr_null(topic_find(svc_topics(fx.svc[0]), "persistent://public/default/t1"));
    expect_status("PUT", T "/t1", NULL, 204); /* managedLedgerStore=memory: gone with the unload */
    /* delete */
    expect_status("DELETE", T "/t1", NULL, 204);
    expect_reason("GET", T "/t1/stats", NULL, 404,
                  "Topic persistent://public/default/t1 not found");
    expect_reason("DELETE", T "/t1", NULL, 404, "Topic persistent://public/default/t1 not found");
    expect_json("GET", T, NULL, 200, "[]");
    /* a request on a missing topic creates nothing */
    expect_reason("GET", T "/t2/subscriptions", NULL, 404,
                  "Topic persistent://public/default/t2 not found");
    expect_reason("PUT", T "/t2/unload", NULL, 404,
                  "Topic persistent://public/default/t2 not found");
    expect_json("GET", T, NULL, 200, "[]");
    expect_reason("GET", T "/t2/partitions", NULL, 404,
                  "Topic persistent://public/default/t2 not found");
    expect_json("GET", T "/t2/partitions?checkAllowAutoCreation=true", NULL, 200,
                "{\"partitions\":0}");
    expect_json("GET", T, NULL, 200, "[]");
    /* a missing namespace */
    expect_reason("PUT", "/admin/v2/persistent/public/nope/t", NULL, 404,
                  "Namespace does not exist");
    expect_reason("GET", "/admin/v2/persistent/public/nope", NULL, 404, "Namespace does not exist");
}
END_TEST

/* ---- non-persistent topics ------------------------------------------------------------------- */

#define NPT "/admin/v2/non-persistent/public/default"

static int np_answered;
static void np_pub_cb(void *data, int status, struct ml_position pos)
{
    (void)data;
    ck_assert_int_eq(status, 0);
    ck_assert(pos.ledger == 0 && pos.entry == 0); /* Pulsar's id of a non-persistent message */
    np_answered++;
}
static void np_send(void *owner, struct topic_consumer *c, struct ml_entry *e, uint32_t rc,
                    const int64_t *ack_set, int n_words)
{
    (void)owner, (void)c, (void)e, (void)rc, (void)ack_set, (void)n_words;
    ck_abort_msg("a consumer without permits got a message");
}
static void np_closed(void *owner, struct topic_consumer *c)
{
    (void)c;
    *(struct topic_consumer **)owner = NULL;
}
static const struct topic_consumer_ops np_ops = {.send = np_send, .closed = np_closed};

/* /admin/v2/non-persistent/...: the loaded topics listed (not among the persistent ones),
 * their stats with msgDropRate (topic and subscription), partitioned topics created and
 * listed in their domain; a topic not loaded is not found (nothing of it is stored). */
START_TEST(test_non_persistent_topics)
{
    const char *full = "non-persistent://public/default/np1";
    expect_json("GET", NPT, NULL, 200, "[]");
    expect_reason("GET", NPT "/np1/stats", NULL, 404,
                  "Topic non-persistent://public/default/np1 not found");
    expect_status("PUT", NPT "/np1", NULL, 204);
    expect_json("GET", NPT, NULL, 200, "[\"non-persistent://public/default/np1\"]");
    expect_json("GET", T, NULL, 200, "[]");
    /* a consumer without permits: what is published is dropped and counted */
    struct topic_registry *reg = svc_topics(fx.svc[0]);
    struct topic *t = topic_find(reg, full);
    ck_assert_ptr_nonnull(t);
    struct topic_consumer *c = NULL;
    struct topic_sub_options o = {.type = TOPIC_SUB_SHARED, .durable = true, .partition_index = -1};
    ck_assert_int_eq(topic_subscribe(t, "s", &o, &c, &np_ops, &c), 0);
    struct topic_producer *p = NULL;
    ck_assert_int_eq(topic_producer_add(t, NULL, TOPIC_ACCESS_SHARED, NULL, NULL, &p), 0);
    int sent = 6;
    np_answered = 0;
    for (int i = 0; i < sent; i++) {
        Pulsar__Proto__MessageMetadata md;
        tl_pulsar_md(&md, "p", (uint64_t)i, 1000);
        ck_assert_int_eq(
            topic_publish(p, tl_pulsar_entry(&md, "x", 1), NULL, (uint64_t)i, 0, np_pub_cb, NULL),
            0);
    }
    topic_producer_close(p);                              /* freed once its receipts went out */
    topic_registry_stats_update(reg, t->stats_ms + 2000); /* a 2 s interval */
    ck_assert_int_eq(rq("GET", NPT "/np1/stats", NULL), 200);
    ck_assert_int_eq(np_answered, sent);
    json_t *st = reply_json();
    ck_assert_int_eq(json_integer_value(json_object_get(st, "msgInCounter")), sent);
    ck_assert(json_real_value(json_object_get(st, "msgDropRate")) == sent / 2.0);
    json_t *ss = json_object_get(json_object_get(st, "subscriptions"), "s");
    ck_assert(json_real_value(json_object_get(ss, "msgDropRate")) == sent / 2.0);
    ck_assert_int_eq(json_integer_value(json_object_get(ss, "msgBacklog")), 0);
    reply_json_free();
    /* and Pulsar's metric */
    ck_assert_int_eq(rq("GET", "/metrics", NULL), 200);
    char want[300];
    snprintf(want, sizeof want,
             "pulsar_subscription_msg_drop_rate{cluster=\"standalone\",namespace=\"public/"
             "default\",topic=\"%s\",subscription=\"s\"} %.1f\n",
             full, sent / 2.0);
    ck_assert_msg(strstr(last.body, want), "no %s in /metrics", want);
    topic_consumer_close(c);
    /* partitioned topics of the domain */
    expect_status("PUT", NPT "/pp/partitions", "2", 204);
    expect_json("GET", NPT "/pp/partitions", NULL, 200, "{\"partitions\":2}");
    expect_json("GET", NPT "/partitioned", NULL, 200, "[\"non-persistent://public/default/pp\"]");
    expect_json("GET", T "/partitioned", NULL, 200, "[]");
    ck_assert_int_eq(rq("GET", NPT "/pp/partitioned-stats", NULL), 200);
    expect_status("DELETE", NPT "/np1", NULL, 204);
    expect_reason("GET", NPT "/np1/stats", NULL, 404,
                  "Topic non-persistent://public/default/np1 not found");
}
END_TEST

/* enableNonPersistentTopics=false: refused (NotAllowed), as Pulsar's broker does. */
START_TEST(test_non_persistent_disabled)
{
    teardown();
    memset(&last, 0, sizeof last);
    tl_svc_init(&fx);
    tl_cfg_set(&fx.cfg, "enableNonPersistentTopics", "false");
    tl_svc_meta(&fx, 0);
    tl_svc_start(&fx, 0);
    expect_reason("PUT", NPT "/np1", NULL, 405, "Broker is unable to load non-persistent topic");
    expect_json("GET", NPT, NULL, 200, "[]");
    expect_status("PUT", T "/t1", NULL, 204);
}
END_TEST

/* terminate: a plain topic answers its last message id (the same again), a partitioned one
 * 405 there and its partitions' ids on .../partitions/terminate (and Pulsar's
 * .../terminate/partitions); missing topics 404. The topic then refuses producers. */
START_TEST(test_topic_terminate)
{
    expect_status("PUT", T "/tt", NULL, 204);
    ck_assert_int_eq(rq("POST", T "/tt/terminate", NULL), 200);
    json_t *id = json_deep_copy(reply_json());
    reply_json_free();
    ck_assert_int_eq(json_integer_value(json_object_get(id, "entryId")), -1); /* empty */
    ck_assert_int_eq(json_integer_value(json_object_get(id, "partitionIndex")), -1);
    ck_assert(json_is_integer(json_object_get(id, "ledgerId")));
    ck_assert_int_eq(rq("POST", T "/tt/terminate", NULL), 200);
    ck_assert(json_equal(reply_json(), id));
    reply_json_free();
    json_decref(id);
    struct topic *t = topic_find(svc_topics(fx.svc[0]), "persistent://public/default/tt");
    ck_assert_ptr_nonnull(t);
    struct topic_producer *p = NULL;
    ck_assert_int_eq(topic_producer_add(t, NULL, TOPIC_ACCESS_SHARED, NULL, NULL, &p),
                     -MG_ETERMINATED);
    expect_reason("POST", T "/none/terminate", NULL, 404,
                  "Topic persistent://public/default/none not found");

    expect_status("PUT", T "/pt/partitions", "2", 204);
    expect_reason("POST", T "/pt/terminate", NULL, 405,
                  "Termination of a partitioned topic is not allowed");
    const char *paths[] = {T "/pt/partitions/terminate", T "/pt/terminate/partitions"};
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(rq("POST", paths[k], NULL), 200);
        json_t *j = reply_json();
        ck_assert_int_eq(json_object_size(j), 2);
        for (int i = 0; i < 2; i++) {
            char key[4];
            snprintf(key, sizeof key, "%d", i);
            json_t *pid = json_object_get(j, key);
            ck_assert_int_eq(json_integer_value(json_object_get(pid, "partitionIndex")), i);
            ck_assert_int_eq(json_integer_value(json_object_get(pid, "entryId")), -1);
        }
        reply_json_free();
    }
    expect_reason("POST", T "/tt/partitions/terminate", NULL, 404,
                  "Partitioned Topic persistent://public/default/tt not found");
}
END_TEST

START_TEST(test_topic_names)
{
    /* a '/' (%2F) in the topic segment would name a topic of another namespace */
    expect_reason("PUT", T "/a%2Fb", NULL, 412, "Topic name is not valid");
    expect_reason("PUT", T "/a%2Fb%2Fc", NULL, 412, "Topic name is not valid");
    /* control characters, a decoded NUL included */
    expect_reason("PUT", T "/a%00b", NULL, 412, "Topic name is not valid");
    expect_reason("PUT", T "/a%01b", NULL, 412, "Topic name is not valid");
    expect_reason("PUT", T "/a%00b/partitions", "2", 412, "Topic name is not valid");
    expect_reason("PUT", T "/t/subscription/s%00", NULL, 412, "Subscription name is not valid");
    expect_reason("PUT", "/admin/v2/persistent/pub!ic/default/t", NULL, 412,
                  "Topic name is not valid");
    expect_reason("GET", "/admin/v2/persistent/pub!ic/default", NULL, 412,
                  "Namespace name is not valid");
    expect_json("GET", T, NULL, 200, "[]"); /* nothing created, "a" included */
    /* '+' is a space; %2B a '+' */
    expect_status("PUT", T "/x%2By", NULL, 204);
    expect_json("GET", T, NULL, 200, "[\"persistent://public/default/x+y\"]");
    expect_status("GET", T "/x%2By/stats", NULL, 200);
    expect_reason("GET", T "/x+y/stats", NULL, 404,
                  "Topic persistent://public/default/x y not found");
}
END_TEST

START_TEST(test_subscriptions)
{
    expect_status("PUT", T "/t", NULL, 204);
    expect_status("PUT", T "/t/subscription/s1", NULL, 204);
    expect_reason("PUT", T "/t/subscription/s1", NULL, 409,
                  "Subscription already exists for topic");
    expect_status("PUT", T "/t/subscription/s2", "\"earliest\"", 204);
    expect_status("PUT", T "/t/subscription/s3", "{\"ledgerId\":-1,\"entryId\":-1}", 204);
    expect_reason("PUT", T "/t/subscription/s4", "x", 400, "Invalid reset cursor data");
    expect_reason("PUT", T "/t/subscription/s4", "[1]", 400, "Invalid reset cursor data");
    expect_names("GET", T "/t/subscriptions", "s1,s2,s3");
    ck_assert_int_eq(rq("GET", T "/t/stats", NULL), 200);
    ck_assert_ptr_nonnull(json_object_get(json_object_get(reply_json(), "subscriptions"), "s2"));
    reply_json_free();
    expect_status("POST", T "/t/subscription/s1/skip/3", NULL, 204);
    expect_reason("POST", T "/t/subscription/s1/skip/x", NULL, 400,
                  "Invalid number of messages to skip");
    expect_reason("POST", T "/t/subscription/s1/skip/-1", NULL, 400,
                  "Invalid number of messages to skip");
    expect_status("POST", T "/t/subscription/s1/skip_all", NULL, 204);
    expect_status("POST", T "/t/subscription/s1/expireMessages/10", NULL, 204);
    expect_status("POST", T "/t/all_subscription/expireMessages/0", NULL, 204);
    expect_reason("POST", T "/t/subscription/s1/expireMessages/x", NULL, 400,
                  "Invalid expire time in seconds");
    expect_reason("POST", T "/t/subscription/nope/expireMessages/10", NULL, 404,
                  "Subscription nope not found for topic persistent://public/default/t");
    expect_status("POST", T "/t/subscription/s1/resetcursor/0", NULL, 204);
    expect_reason("POST", T "/t/subscription/s1/resetcursor/x", NULL, 400, "Invalid timestamp");
    expect_status("POST", T "/t/subscription/s1/resetcursor", "{\"ledgerId\":0,\"entryId\":0}",
                  204);
    const char *need = "Invalid reset cursor data: ledgerId and entryId are required";
    expect_reason("POST", T "/t/subscription/s1/resetcursor", NULL, 400, need);
    expect_reason("POST", T "/t/subscription/s1/resetcursor", "x", 400, need);
    expect_reason("POST", T "/t/subscription/s1/resetcursor", "{\"ledgerId\":\"a\"}", 400, need);
    expect_reason("POST", T "/t/subscription/nope/skip_all", NULL, 404,
                  "Subscription nope not found for topic persistent://public/default/t");
    expect_status("DELETE", T "/t/subscription/s1", NULL, 204);
    expect_reason("DELETE", T "/t/subscription/s1", NULL, 404,
                  "Subscription s1 not found for topic persistent://public/default/t");
    expect_names("GET", T "/t/subscriptions", "s2,s3");
    /* on a missing topic a subscription creates it (allowAutoTopicCreation) */
    expect_status("PUT", T "/auto/subscription/s", NULL, 204);
    expect_json("GET", T "/auto/subscriptions", NULL, 200, "[\"s\"]");
}
END_TEST

/* ---- peek and examine ------------------------------------------------------------------------ */

static void appended_cb(struct ml_append_req *req, int status)
{
    ck_assert_int_eq(status, 0);
    (*(int *)req->data)++;
}

static bool appended_all(const void *arg)
{
    return *(const int *)arg == 6;
}

/* The body of a 200 answer with the raw payload. */
static void expect_payload(const char *path, const char *payload)
{
    int got = rq("GET", path, NULL);
    ck_assert_msg(got == 200, "GET %s: status %d, body %s", path, got, last.body);
    ck_assert_str_eq(last.ctype, "application/octet-stream");
    ck_assert_msg(last.body && strcmp(last.body, payload) == 0, "GET %s: body '%s' (want '%s')",
                  path, last.body, payload);
}

START_TEST(test_peek_and_examine)
{
    expect_status("PUT", T "/pk", NULL, 204);
    expect_status("PUT", T "/pk/subscription/s", "\"earliest\"", 204);
    struct topic *t = topic_find(svc_topics(fx.svc[0]), "persistent://public/default/pk");
    ck_assert_ptr_nonnull(t);
    /* six entries m0..m5 */
    struct ml_append_req reqs[6];
    int done = 0;
    for (int i = 0; i < 6; i++) {
        Pulsar__Proto__MessageMetadata md;
        tl_pulsar_md(&md, "p", (uint64_t)i, 1000 + (uint64_t)i);
        char payload[8];
        snprintf(payload, sizeof payload, "m%d", i);
        reqs[i].data = &done;
        ck_assert_int_eq(ml_append(topic_ml(t), tl_pulsar_entry(&md, payload, strlen(payload)),
                                   NULL, &reqs[i], appended_cb),
                         0);
    }
    ck_assert(tl_base_until(fx.base, appended_all, &done, 5000));
    /* m1 and m3 acknowledged one by one: the backlog is m0, m2, m4, m5 */
    struct ml_cursor *c = topic_sub_cursor(t, "s");
    ck_assert_int_eq(ml_cursor_ack(c, reqs[1].pos, NULL, 0, 0), 1);
    ck_assert_int_eq(ml_cursor_ack(c, reqs[3].pos, NULL, 0, 0), 1);
    const char *sp = T "/pk/subscription/s/position/";
    const char *want[] = {"m0", "m2", "m4", "m5"};
    char path[256];
    for (int n = 1; n <= 4; n++) {
        snprintf(path, sizeof path, "%s%d", sp, n);
        expect_payload(path, want[n - 1]);
    }
    snprintf(path, sizeof path, "%s5", sp);
    expect_reason("GET", path, NULL, 404, "Message not found");
    /* the mark-delete position moves past m0 and m1: m2 comes first */
    ml_cursor_ack_cumulative(c, reqs[0].pos);
    snprintf(path, sizeof path, "%s1", sp);
    expect_payload(path, "m2");
    snprintf(path, sizeof path, "%s4", sp);
    expect_reason("GET", path, NULL, 404, "Message not found");
    for (const char *const *bad = (const char *const[]){"0", "-1", "x", "2147483648", NULL}; *bad;
         bad++) {
        snprintf(path, sizeof path, "%s%s", sp, *bad);
        expect_reason("GET", path, NULL, 400, "Invalid message position");
    }
    expect_reason("GET", T "/pk/subscription/nope/position/1", NULL, 404,
                  "Subscription nope not found for topic persistent://public/default/pk");
    expect_reason("GET", T "/missing/subscription/s/position/1", NULL, 404,
                  "Topic persistent://public/default/missing not found");

    /* examine: counted from the first entry or from the last, acknowledged or not, kept
     * within the topic */
    const char *ex = T "/pk/examinemessage";
    struct {
        const char *query, *payload;
    } cases[] = {
        {"?initialPosition=earliest&messagePosition=1", "m0"},
        {"?initialPosition=earliest&messagePosition=4", "m3"},
        {"?initialPosition=earliest&messagePosition=99", "m5"},
        {"?initialPosition=latest&messagePosition=1", "m5"},
        {"?initialPosition=latest&messagePosition=3", "m3"},
        {"?initialPosition=latest&messagePosition=99", "m0"},
        {"?initialPosition=earliest&messagePosition=0", "m0"},
        {"", "m5"}, /* latest, 1 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        snprintf(path, sizeof path, "%s%s", ex, cases[i].query);
        expect_payload(path, cases[i].payload);
    }
    snprintf(path, sizeof path, "%s?messagePosition=x", ex);
    expect_reason("GET", path, NULL, 400, "Invalid message position");
    expect_status("PUT", T "/empty", NULL, 204);
    expect_reason("GET", T "/empty/examinemessage", NULL, 404, "Message not found");

    /* a partitioned topic's base name: Pulsar refuses both */
    expect_status("PUT", T "/pp/partitions", "2", 204);
    expect_reason("GET", T "/pp/subscription/s/position/1", NULL, 405,
                  "Peek messages on a partitioned topic is not allowed");
    expect_reason("GET", T "/pp/examinemessage", NULL, 405,
                  "Examine messages on a partitioned topic is not allowed, please try examine "
                  "message on specific topic partition");
}
END_TEST

static bool appended_n(const void *arg)
{
    return ((const int *)arg)[0] == ((const int *)arg)[1];
}

/* Peek and examine answer a compressed message's payload decompressed, with every codec; a
 * payload whose declared size lies answers 500 with the reason, and the topic goes on. */
START_TEST(test_peek_compressed)
{
    expect_status("PUT", T "/pz", NULL, 204);
    expect_status("PUT", T "/pz/subscription/s", "\"earliest\"", 204);
    struct topic *t = topic_find(svc_topics(fx.svc[0]), "persistent://public/default/pz");
    ck_assert_ptr_nonnull(t);
    enum { PZ_N = 5 }; /* LZ4, ZLIB, ZSTD, SNAPPY, then LZ4 with a lying size */
    char text[PZ_N][200];
    struct ml_append_req reqs[PZ_N];
    int done[2] = {0, PZ_N};
    size_t lying_n = 0;
    for (int i = 0; i < PZ_N; i++) {
        int codec = i < 4 ? MG_CODEC_LZ4 + i : MG_CODEC_LZ4;
        snprintf(text[i], sizeof text[i], "%s payload %d, %s payload %d, %s payload %d",
                 mg_codec_name(codec), i, mg_codec_name(codec), i, mg_codec_name(codec), i);
        uint8_t *z = NULL;
        size_t zn = 0;
        ck_assert_int_eq(mg_compress(codec, (const uint8_t *)text[i], strlen(text[i]), &z, &zn), 0);
        ck_assert_uint_lt(zn, strlen(text[i]));
        Pulsar__Proto__MessageMetadata md;
        tl_pulsar_md(&md, "p", (uint64_t)i, 1000 + (uint64_t)i);
        md.has_compression = 1;
        md.compression = (Pulsar__Proto__CompressionType)codec;
        md.has_uncompressed_size = 1;
        md.uncompressed_size = (uint32_t)strlen(text[i]) + (i == 4 ? 7 : 0);
        lying_n = zn;
        reqs[i].data = done;
        ck_assert_int_eq(
            ml_append(topic_ml(t), tl_pulsar_entry(&md, z, zn), NULL, &reqs[i], appended_cb), 0);
        mg_free(z);
    }
    ck_assert(tl_base_until(fx.base, appended_n, done, 5000));
    char path[256];
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, T "/pz/subscription/s/position/%d", i + 1);
        expect_payload(path, text[i]);
        snprintf(path, sizeof path,
                 T "/pz/examinemessage?initialPosition=earliest&messagePosition=%d", i + 1);
        expect_payload(path, text[i]);
    }
    char why[200];
    snprintf(why, sizeof why,
             "LZ4 payload of %zu bytes does not decompress to its declared %zu bytes", lying_n,
             strlen(text[4]) + 7);
    expect_reason("GET", T "/pz/subscription/s/position/5", NULL, 500, why);
    expect_payload(T "/pz/subscription/s/position/1", text[0]);
}
END_TEST

START_TEST(test_partitioned_topics)
{
    const char *pt = T "/pt/partitions";
    expect_reason("PUT", pt, NULL, 400, "The request body must be the number of partitions");
    expect_reason("PUT", pt, "x", 400, "The request body must be the number of partitions");
    expect_reason("PUT", pt, "\"3\"", 400, "The request body must be the number of partitions");
    expect_reason("PUT", pt, "1.5", 400, "The request body must be the number of partitions");
    expect_reason("PUT", pt, "0", 406, "Number of partitions should be more than 0");
    expect_reason("PUT", pt, "-1", 406, "Number of partitions should be more than 0");
    expect_reason("PUT", T "/x-partition-1/partitions", "2", 412,
                  "Partitioned Topic Name should not contain '-partition-'");
    expect_status("PUT", pt, "3", 204);
    expect_reason("PUT", pt, "3", 409, "Partitioned topic already exists");
    expect_json("GET", pt, NULL, 200, "{\"partitions\":3}");
    expect_json("GET", T "/partitioned", NULL, 200, "[\"persistent://public/default/pt\"]");
    /* a plain topic of that name, or a partitioned topic of a plain topic's name */
    expect_reason("PUT", T "/pt", NULL, 409, "This topic already exists");
    expect_status("PUT", T "/plain", NULL, 204);
    expect_reason("PUT", T "/plain/partitions", "2", 409, "This topic already exists");
    expect_reason("POST", T "/plain/partitions", "4", 409,
                  "Topic persistent://public/default/plain is not the partitioned topic.");
    /* grow only */
    expect_status("POST", pt, "5", 204);
    expect_json("GET", pt, NULL, 200, "{\"partitions\":5}");
    expect_status("POST", pt, "5", 204);
    expect_reason("POST", pt, "4", 422,
                  "Desired partitions 4 can't be less than the current partitions 5.");
    /* calls on the partitions */
    expect_status("PUT", T "/pt/subscription/ps", "\"earliest\"", 204);
    expect_json("GET", T "/pt/subscriptions", NULL, 200, "[\"ps\"]");
    expect_json("GET", T "/pt-partition-4/subscriptions", NULL, 200, "[\"ps\"]");
    ck_assert_int_eq(rq("GET", T "/pt/partitioned-stats", NULL), 200);
    json_t *st = reply_json();
    ck_assert_int_eq(
        json_integer_value(json_object_get(json_object_get(st, "metadata"), "partitions")), 5);
    ck_assert_uint_eq(json_object_size(json_object_get(st, "partitions")), 5);
    reply_json_free();
    ck_assert_int_eq(rq("GET", T "/pt/partitioned-stats?perPartition=false", NULL), 200);
    ck_assert_ptr_null(json_object_get(reply_json(), "partitions"));
    reply_json_free();
    ck_assert_int_eq(rq("GET", T "/pt/partitioned-internalStats", NULL), 200);
    ck_assert_uint_eq(json_object_size(json_object_get(reply_json(), "partitions")), 5);
    reply_json_free();
    expect_status("POST", T "/pt/subscription/ps/skip_all", NULL, 204);
    expect_status("POST", T "/pt/subscription/ps/resetcursor/0", NULL, 204);
    /* calls only a plain topic answers */
    expect_reason("GET", T "/pt/stats", NULL, 404,
                  "Topic persistent://public/default/pt not found");
    expect_reason("GET", T "/pt/internalStats", NULL, 404,
                  "Topic persistent://public/default/pt not found");
    expect_reason("GET", T "/pt/lastMessageId", NULL, 405,
                  "Get last message id on a partitioned topic is not allowed");
    expect_reason("POST", T "/pt/subscription/ps/skip/1", NULL, 405,
                  "Skip messages on a partitioned topic is not allowed");
    expect_reason("POST", T "/pt/subscription/ps/resetcursor", "{\"ledgerId\":0,\"entryId\":0}",
                  405, "Reset-cursor at position is not allowed for partitioned-topic");
    expect_reason("GET", T "/plain/partitioned-stats", NULL, 404,
                  "Partitioned Topic persistent://public/default/plain not found");
    expect_reason("DELETE", T "/pt", NULL, 409,
                  "persistent://public/default/pt is a partitioned topic, instead of calling "
                  "delete topic, please call delete-partitioned-topic.");
    /* delete */
    expect_status("DELETE", T "/pt/subscription/ps", NULL, 204);
    expect_reason("DELETE", T "/pt/subscription/ps", NULL, 404,
                  "Subscription ps not found for topic persistent://public/default/pt");
    expect_status("PUT", T "/pt/unload", NULL, 204);
    for (int i = 0; i < 5; i++) {
        char name[64];
        snprintf(name, sizeof name, "persistent://public/default/pt-partition-%d", i);
        ck_assert_ptr_null(topic_find(svc_topics(fx.svc[0]), name));
    }
    expect_status("DELETE", pt, NULL, 204);
    expect_reason("GET", pt, NULL, 404, "Topic persistent://public/default/pt not found");
    expect_reason("DELETE", pt, NULL, 404,
                  "Partitioned topic persistent://public/default/pt does not exist");
    expect_reason("DELETE", T "/plain/partitions", NULL, 409,
                  "persistent://public/default/plain is not a partitioned topic");
    expect_json("GET", T "/partitioned", NULL, 200, "[]");
    expect_json("GET", T, NULL, 200, "[\"persistent://public/default/plain\"]");
}
END_TEST

START_TEST(test_partitions_bounded)
{
    tl_cfg_set(&fx.cfg, "maxNumPartitionsPerPartitionedTopic", "8");
    expect_reason("PUT", T "/pt/partitions", "9", 406,
                  "Number of partitions should be less than or equal to 8");
    expect_status("PUT", T "/pt/partitions", "8", 204);
    expect_reason("POST", T "/pt/partitions", "99999999999", 406,
                  "Number of partitions should be less than or equal to 8");
}
END_TEST

/* ---- lookup --------------------------------------------------------------------------------- */

START_TEST(test_lookup)
{
    struct svc *s = fx.svc[0];
    char want[512];
    snprintf(want, sizeof want,
             "{\"brokerUrl\":\"%s\",\"httpUrl\":\"%s\",\"nativeUrl\":\"%s\",\"brokerUrlSsl\":\"\"}",
             ns_broker_url(svc_ns(s)), ns_web_url(svc_ns(s)), ns_broker_url(svc_ns(s)));
    expect_json("GET", "/lookup/v2/topic/persistent/public/default/lk", NULL, 200, want);
    ck_assert_int_eq(rq("GET", "/lookup/v2/topic/persistent/public/default/lk/bundle", NULL), 200);
    ck_assert_str_eq(last.ctype, "text/plain");
    ck_assert_int_eq(strlen(last.body), 21); /* 0x........_0x........ */
    ck_assert(strncmp(last.body, "0x", 2) == 0 && last.body[10] == '_');
    /* non-persistent topics: looked up as persistent ones (bundle ownership); no other domain */
    expect_json("GET", "/lookup/v2/topic/non-persistent/public/default/lk", NULL, 200, want);
    ck_assert_int_eq(rq("GET", "/lookup/v2/topic/non-persistent/public/default/lk/bundle", NULL),
                     200);
    ck_assert_int_eq(strlen(last.body), 21);
    ck_assert_int_eq(rq("GET", "/lookup/v2/topic/other/public/default/lk", NULL), 404);
    expect_reason("GET", "/lookup/v2/topic/persistent/public/nope/lk", NULL, 404,
                  "Namespace does not exist");
    /* a '/' in the topic: the legacy name public/default(cluster)/a/b, of a namespace that
     * does not exist */
    expect_reason("GET", "/lookup/v2/topic/persistent/public/default/a%2Fb", NULL, 404,
                  "Namespace does not exist");
    expect_reason("GET", "/lookup/v2/topic/persistent/public/default/a%01b", NULL, 412,
                  "Topic name is not valid");
    expect_405("PUT", "/lookup/v2/topic/persistent/public/default/lk");
}
END_TEST

/* ---- the ownership gate: two brokers --------------------------------------------------------- */

/* Index of the broker that owns topic's bundle, or -1. */
static int owner_of(const char *full)
{
    struct topic_name tn;
    ck_assert_int_eq(topic_name_parse(full, &tn), 0);
    int who = -1;
    for (int i = 0; i < 2; i++)
        if (ns_topic_owned(svc_ns(fx.svc[i]), &tn))
            who = i;
    topic_name_fini(&tn);
    return who;
}

/* The request on broker i, following one redirect to the other broker. */
static int rq_follow(int i, const char *method, const char *path, const char *body)
{
    int st = rq_on(i, method, path, body);
    if (st != 307)
        return st;
    const char *other = ns_web_url(svc_ns(fx.svc[1 - i]));
    ck_assert_msg(strncmp(last.location, other, strlen(other)) == 0, "Location %s (want %s...)",
                  last.location, other);
    char next[1024];
    snprintf(next, sizeof next, "%s", last.location + strlen(other));
    return rq_on(1 - i, method, next, body);
}

START_TEST(test_gate_redirects_to_owner)
{
    /* whoever takes the bundle, the topic is created once */
    ck_assert_int_eq(rq_follow(0, "PUT", T "/g", NULL), 204);
    int own = owner_of("persistent://public/default/g");
    ck_assert_int_ge(own, 0);
    int other = 1 - own;
    /* the owner serves; the other redirects with the same path and authoritative=true */
    expect_json_on(own, "GET", T "/g/stats", NULL, 200, NULL);
    expect_json_on(other, "GET", T "/g/stats?x=1&authoritative=false", NULL, 307, NULL);
    char want[1024];
    snprintf(want, sizeof want, "%s%s", ns_web_url(svc_ns(fx.svc[own])),
             T "/g/stats?x=1&authoritative=true");
    ck_assert_str_eq(last.location, want);
    ck_assert_str_eq(last.body, "");
    /* 405 and 404 only from the owner: the other broker redirects first */
    expect_json_on(other, "GET", T "/g", NULL, 307, NULL);
    expect_json_on(own, "GET", T "/g", NULL, 405, NULL);
    expect_json_on(other, "GET", T "/g/bogus", NULL, 307, NULL);
    expect_json_on(own, "GET", T "/g/bogus", NULL, 404, NULL);
    /* the non-owner's topic registry never loaded it (that would fence the owner) */
    ck_assert_ptr_null(topic_find(svc_topics(fx.svc[other]), "persistent://public/default/g"));
    /* HTTP lookup: the owner answers with itself, the other redirects */
    expect_json_on(other, "GET", "/lookup/v2/topic/persistent/public/default/g", NULL, 307, NULL);
    ck_assert(strncmp(last.location, ns_web_url(svc_ns(fx.svc[own])),
                      strlen(ns_web_url(svc_ns(fx.svc[own])))) == 0);
    ck_assert_int_eq(rq_on(own, "GET", "/lookup/v2/topic/persistent/public/default/g", NULL), 200);
    ck_assert_str_eq(json_string_value(json_object_get(reply_json(), "brokerUrl")),
                     ns_broker_url(svc_ns(fx.svc[own])));
    reply_json_free();
    /* partitioned metadata is not gated: answered where asked (the other broker's
     * managedLedgerStore=memory does not hold g) */
    expect_json_on(other, "GET", T "/g/partitions", NULL, 404,
                   "{\"reason\":\"Topic persistent://public/default/g not found\"}");
}
END_TEST

/* GET non-persistent/{t}/{ns} on either broker lists the namespace's non-persistent topics
 * loaded on both (Pulsar asks each bundle's owner: GET .../{bundle}); a bundle's list is
 * answered by its owner (the other broker redirects), [] for a bundle nobody owns, 412 for a
 * range not of the namespace. */
START_TEST(test_np_list_across_brokers)
{
    char path[128], full[128], want[2048] = "[";
    int on[2] = {0, 0}, made = 0;
    /* through either broker in turn, until each owns one (a bundle goes to whoever asks) */
    for (int i = 0; i < 16 && (on[0] == 0 || on[1] == 0); i++) {
        snprintf(path, sizeof path, NPT "/np%d", i);
        snprintf(full, sizeof full, "non-persistent://public/default/np%d", i);
        ck_assert_int_eq(rq_follow(i % 2, "PUT", path, NULL), 204);
        int own = owner_of(full);
        ck_assert_int_ge(own, 0);
        ck_assert_ptr_nonnull(topic_find(svc_topics(fx.svc[own]), full));
        on[own]++;
        made = i + 1;
    }
    ck_assert_int_gt(on[0], 0);
    ck_assert_int_gt(on[1], 0);
    /* the names sorted as strings */
    char *names[16];
    for (int i = 0; i < made; i++) {
        names[i] = mg_asprintf("\"non-persistent://public/default/np%d\"", i);
        for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char *x = names[j];
            names[j] = names[j - 1];
            names[j - 1] = x;
        }
    }
    for (int i = 0; i < made; i++) {
        strcat(want, i ? "," : "");
        strcat(want, names[i]);
        mg_free(names[i]);
    }
    strcat(want, "]");
    expect_json_on(0, "GET", NPT, NULL, 200, want);
    expect_json_on(1, "GET", NPT, NULL, 200, want);
    /* one bundle: its owner answers, the other broker redirects to it */
    struct topic_name tn;
    char range[NS_BUNDLE_NAME_LEN];
    ck_assert_int_eq(topic_name_parse("non-persistent://public/default/np0", &tn), 0);
    ck_assert_int_ge(ns_topic_bundle(svc_ns(fx.svc[0]), &tn, range), 0);
    topic_name_fini(&tn);
    int own = owner_of("non-persistent://public/default/np0");
    snprintf(path, sizeof path, NPT "/%s", range);
    ck_assert_int_eq(rq_on(own, "GET", path, NULL), 200);
    ck_assert(strstr(last.body, "non-persistent://public/default/np0") != NULL);
    ck_assert_int_eq(rq_on(1 - own, "GET", path, NULL), 307);
    expect_json_on(0, "GET", NPT "/0x00000000_0x00000001", NULL, 412, NULL);
}
END_TEST

/* The topic local loaded on broker i (its registry directly: each broker's managed ledgers
 * are its own memory here). */
static struct topic *load_on(int i, const char *local)
{
    char full[256];
    snprintf(full, sizeof full, "persistent://public/default/%s", local);
    int loaded = 0;
    ck_assert_int_eq(topic_get(svc_topics(fx.svc[i]), full, true, tl_topic_loaded_cb, &loaded), 0);
    for (int k = 0; k < 200 && !loaded; k++)
        tl_base_run_for(fx.base, 10);
    ck_assert_int_eq(loaded, 1);
    struct topic *t = topic_find(svc_topics(fx.svc[i]), full);
    ck_assert_ptr_nonnull(t);
    return t;
}

/* A partitioned topic's deduplicationEnabled, set through either broker, reaches every
 * partition on whichever broker serves it (the store watch), a removal too; a partition loaded
 * after the policy was set takes it at load. */
START_TEST(test_topic_dedup_policy_partitions_every_broker)
{
    expect_json_on(0, "PUT", T "/pd/partitions", "3", 204, NULL);
    struct ns *ns1 = svc_ns(fx.svc[1]); /* broker 1 learns of it (the store's reload) */
    for (int i = 0; i < 200 && ns_partitions_get(ns1, "persistent://public/default/pd") != 3; i++) {
        ns_res_refresh_now(ns1);
        tl_base_run_for(fx.base, 20);
    }
    ck_assert_int_eq(ns_partitions_get(ns1, "persistent://public/default/pd"), 3);
    struct topic *p0 = load_on(0, "pd-partition-0");
    struct topic *p1 = load_on(1, "pd-partition-1");
    for (int from = 0; from < 2; from++) {
        expect_json_on(from, "POST", T "/pd/deduplicationEnabled", "true", 204, NULL);
        wait_dedup_status(p0, "Enabled");
        wait_dedup_status(p1, "Enabled");
        expect_json_on(1 - from, "GET", T "/pd/deduplicationEnabled", NULL, 200, "true");
        expect_json_on(from, "DELETE", T "/pd/deduplicationEnabled", NULL, 204, NULL);
        wait_dedup_status(p0, "Disabled");
        wait_dedup_status(p1, "Disabled");
    }
    expect_json_on(1, "POST", T "/pd/deduplicationEnabled", "true", 204, NULL);
    struct topic *p2 = load_on(0, "pd-partition-2");
    wait_dedup_status(p2, "Enabled");
}
END_TEST

/* A partitioned topic's limit and publish rate, set through one broker, reach the partition
 * the other broker serves (its store watch), over the namespace's value; a partition loaded
 * afterwards takes them at load; a removal through either broker gives each partition the
 * namespace's value back. */
START_TEST(test_topic_limit_policy_every_broker)
{
    const char *rate = "{\"publishThrottlingRateInMsg\":77,\"publishThrottlingRateInByte\":-1}";
    expect_json_on(0, "PUT", T "/pl/partitions", "2", 204, NULL);
    expect_json_on(0, "POST", "/admin/v2/namespaces/public/default/maxProducersPerTopic", "9", 204,
                   NULL);
    struct ns *ns1 = svc_ns(fx.svc[1]);
    struct ns_policies np;
    for (int i = 0; i < 200 && (ns_partitions_get(ns1, "persistent://public/default/pl") != 2 ||
                                ns_namespace_policies_get(ns1, "public/default", &np) != 0 ||
                                !np.has_limit[NS_LIMIT_PRODUCERS_PER_TOPIC]);
         i++) {
        ns_res_refresh_now(ns1);
        tl_base_run_for(fx.base, 20);
    }
    ck_assert_int_eq(ns_partitions_get(ns1, "persistent://public/default/pl"), 2);
    struct topic *p0 = load_on(0, "pl-partition-0");
    ck_assert_int_eq(topic_limit(p0, TOPIC_LIMIT_PRODUCERS), 9);
    /* through broker 1: broker 0's partition follows its watch */
    expect_json_on(1, "POST", T "/pl/maxProducers", "5", 204, NULL);
    expect_json_on(1, "POST", T "/pl/publishRate", rate, 204, NULL);
    for (int i = 0; i < 300 && (topic_limit(p0, TOPIC_LIMIT_PRODUCERS) != 5 ||
                                topic_publish_rate(p0).msgs != 77);
         i++)
        tl_base_run_for(fx.base, 10);
    ck_assert_int_eq(topic_limit(p0, TOPIC_LIMIT_PRODUCERS), 5);
    ck_assert_int_eq(topic_publish_rate(p0).msgs, 77);
    /* loaded afterwards on broker 1: taken at load */
    struct topic *p1 = load_on(1, "pl-partition-1");
    ck_assert_int_eq(topic_limit(p1, TOPIC_LIMIT_PRODUCERS), 5);
    ck_assert_int_eq(topic_publish_rate(p1).msgs, 77);
    /* removed through broker 0: at once there, through the watch on broker 1 */
    expect_json_on(0, "DELETE", T "/pl/maxProducers", NULL, 204, NULL);
    ck_assert_int_eq(topic_limit(p0, TOPIC_LIMIT_PRODUCERS), 9);
    for (int i = 0; i < 300 && topic_limit(p1, TOPIC_LIMIT_PRODUCERS) != 9; i++)
        tl_base_run_for(fx.base, 10);
    ck_assert_int_eq(topic_limit(p1, TOPIC_LIMIT_PRODUCERS), 9);
    ck_assert_int_eq(topic_publish_rate(p1).msgs, 77); /* the other field is kept */
    expect_json_on(1, "GET", T "/pl/publishRate", NULL, 200, rate);
}
END_TEST

#undef T

/* ---- lifecycle ------------------------------------------------------------------------------ */

/* The server freed while a call is in progress (a namespace unload waiting for its
 * sub-requests): the call is completed without an answer and detached, the fan-out is
 * cancelled, nothing leaks (ASan) and the client sees its connection end. */
START_TEST(test_free_with_call_in_progress)
{
    struct evhttp_connection *conn = evhttp_connection_base_new(
        fx.base, NULL, "127.0.0.1", (unsigned short)svc_web_port(fx.svc[0]));
    struct tl_http_reply r = {0};
    struct evhttp_request *req = evhttp_request_new(tl_http_on_reply, &r);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Host", "127.0.0.1");
    ck_assert_int_eq(evhttp_make_request(conn, req, EVHTTP_REQ_PUT,
                                         "/admin/v2/namespaces/public/default/unload"),
                     0);
    struct admin *a = svc_admin(fx.svc[0]);
    while (a->calls_total == 0 && !r.done) /* one loop turn at a time until it is routed */
        event_base_loop(fx.base, EVLOOP_ONCE);
    ck_assert(!r.done);
    ck_assert_int_eq(a->calls_open, 1); /* its sub-requests are not routed yet */
    tl_svc_stop(&fx, 0);
    ck_assert(tl_base_until(fx.base, tl_http_reply_done, &r, TL_HTTP_DEADLINE_MS));
    ck_assert_int_eq(r.status, 0); /* no answer: the connection ended */
    evhttp_connection_free(conn);
    tl_http_reply_free(&r);
}
END_TEST

/* A policy set through one broker reaches the other broker's cache (its reload of the store)
 * and so its loaded topics; a removal too. */
START_TEST(test_policies_seen_by_other_broker)
{
    const char *p = "/admin/v2/namespaces/public/default/messageTTL";
    struct ns *ns1 = svc_ns(fx.svc[1]);
    expect_json_on(0, "POST", p, "300", 204, NULL);
    struct ns_policies pol;
    for (int i = 0; i < 200; i++) {
        ck_assert_int_eq(ns_namespace_policies_get(ns1, "public/default", &pol), 0);
        if (pol.has_ttl)
            break;
        ns_res_refresh_now(ns1);
        tl_base_run_for(fx.base, 20);
    }
    ck_assert(pol.has_ttl);
    ck_assert_int_eq(pol.ttl_secs, 300);
    expect_json_on(1, "GET", p, NULL, 200, "300");
    expect_json_on(0, "DELETE", p, NULL, 204, NULL);
    for (int i = 0; i < 200; i++) {
        ck_assert_int_eq(ns_namespace_policies_get(ns1, "public/default", &pol), 0);
        if (!pol.has_ttl)
            break;
        ns_res_refresh_now(ns1);
        tl_base_run_for(fx.base, 20);
    }
    ck_assert(!pol.has_ttl);
    expect_json_on(1, "GET", p, NULL, 204, NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("admin");
    TCase *tc = tl_tcase(s, "routes", 0, NULL, NULL);
    tl_add(tc, test_path_split_decodes_like_urldecoder, test_path_split_keeps_nul_as_control,
           test_path_split_bounds_segments, test_path_match_captures, test_every_route_reachable,
           test_route_find_404_405, test_nul_reasons);
    tc = tl_tcase(s, "http", 60, setup, teardown);
    tl_add(tc, test_every_route_answers_over_http, test_unknown_paths_404, test_wrong_methods_405,
           test_console_files, test_clusters_brokers_probes, test_tenant_crud,
           test_tenant_validation, test_namespace_crud, test_namespace_validation,
           test_namespace_retention, test_namespace_message_ttl, test_namespace_deduplication,
           test_namespace_limits, test_namespace_max_topics, test_namespace_dispatch_rate,
           test_namespace_publish_rate, test_namespace_inactive_and_delayed,
           test_topic_inactive_policy, test_topic_delayed_policy, test_topic_deduplication_policy,
           test_topic_delete_drops_schema_and_policies, test_topic_policy_tracking_bounded,
           test_topic_dedup_policy_at_load, test_topic_limit_policies, test_topic_rate_policies,
           test_compaction_admin, test_namespace_backlog_quota, test_namespace_unload,
           test_topic_crud, test_topic_terminate, test_topic_names, test_subscriptions,
           test_peek_and_examine, test_peek_compressed, test_partitioned_topics,
           test_partitions_bounded, test_lookup, test_free_with_call_in_progress,
           test_non_persistent_topics, test_non_persistent_disabled);
    tc = tl_tcase(s, "brokers", 60, setup2, teardown);
    tl_add(tc, test_gate_redirects_to_owner, test_policies_seen_by_other_broker,
           test_topic_dedup_policy_partitions_every_broker, test_topic_limit_policy_every_broker,
           test_np_list_across_brokers);
    return tl_run(s);
}
