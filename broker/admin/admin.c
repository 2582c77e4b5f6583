/*
 * admin.c - admin HTTP: routes pulsar-admin's REST paths to the service.
 *
 * Happy path: evhttp hands every request to route(); the path is split into decoded
 * segments (URLDecoder semantics: %XX and '+' as space) and matched against the table of
 * handlers. Mutations answer 204, reads 200 with JSON, errors a status with
 * {"reason": "..."} as Pulsar does (pulsar-admin.md §1).
 *
 * Failure modes: unknown paths 404 and wrong methods 405 (framework-style, plain text);
 * unparsable bodies 400; everything else as the reference gives it.
 */
#include "admin/admin.h"
#include "config/cfg.h"
#include "svc/svc.h"
#include "topic/topic.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define ADMIN_MAX_SEGMENTS 12
#define ADMIN_MAX_BODY (1 << 20)

struct admin {
    struct svc *svc;                 /* borrowed */
    struct evhttp *http;             /* owned */
    struct evhttp_bound_socket *sock; /* owned by http */
    int port;
};

/* One parsed request. */
struct admin_req {
    struct admin *a;
    struct evhttp_request *req; /* borrowed from evhttp */
    enum evhttp_cmd_type method;
    char *seg[ADMIN_MAX_SEGMENTS]; /* owned, decoded */
    int nseg;
    struct evkeyvalq query; /* owned */
};

/* ---- responses --------------------------------------------------------------------------- */

static void reply_raw(struct evhttp_request *req, int code, const char *ctype, const char *body)
{
    struct evbuffer *b = evbuffer_new();
    if (body)
        evbuffer_add(b, body, strlen(body));
    if (ctype)
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
    const char *phrase = code == 200   ? "OK"
                         : code == 204 ? "No Content"
                         : code == 307 ? "Temporary Redirect"
                         : code == 400 ? "Bad Request"
                         : code == 404 ? "Not Found"
                         : code == 405 ? "Method Not Allowed"
                         : code == 406 ? "Not Acceptable"
                         : code == 409 ? "Conflict"
                         : code == 412 ? "Precondition Failed"
                         : code == 500 ? "Internal Server Error"
                                       : "Error";
    evhttp_send_reply(req, code, phrase, b);
    evbuffer_free(b);
}

static void reply_json(struct evhttp_request *req, int code, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(j);
    reply_raw(req, code, "application/json", s);
    free(s);
}

static void reply_error(struct evhttp_request *req, int code, const char *reason)
{
    reply_json(req, code, json_pack("{s:s}", "reason", reason));
}

static void reply_no_content(struct evhttp_request *req)
{
    reply_raw(req, 204, NULL, NULL);
}

/* Completion of a metadata write (svc_done_cb): 204, or 500 with the store's error. */
static void reply_done(void *data, int status)
{
    struct evhttp_request *req = data;
    if (status < 0)
        reply_error(req, 500, mg_strerror(status));
    else
        reply_no_content(req);
}

/* Reply with a namespace's topic list (svc_topics_cb). */
static void topics_listed(void *data, int status, char **names, int n)
{
    struct evhttp_request *req = data;
    if (status < 0)
        return reply_error(req, 500, mg_strerror(status));
    json_t *arr = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(arr, json_string(names[i]));
    reply_json(req, 200, arr);
}

/* ---- request helpers --------------------------------------------------------------------- */

static char *url_decode(const char *s, size_t n)
{
    char *tmp = mg_strndup(s, n);
    char *dec = evhttp_uridecode(tmp, 1, NULL);
    mg_free(tmp);
    if (!dec)
        return mg_strdup("");
    char *r = mg_strdup(dec);
    free(dec);
    return r;
}

static int parse_request(struct admin_req *r)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(r->req);
    const char *path = evhttp_uri_get_path(uri);
    const char *query = evhttp_uri_get_query(uri);
    TAILQ_INIT(&r->query);
    if (query && evhttp_parse_query_str(query, &r->query) < 0)
        return -MG_EINVAL;
    if (!path)
        path = "/";
    const char *p = path;
    while (*p) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (r->nseg == ADMIN_MAX_SEGMENTS)
            return -MG_EINVAL;
        r->seg[r->nseg++] = url_decode(p, n);
        p += n;
    }
    return 0;
}

static void free_request(struct admin_req *r)
{
    for (int i = 0; i < r->nseg; i++)
        mg_free(r->seg[i]);
    evhttp_clear_headers(&r->query);
}

static bool query_flag(struct admin_req *r, const char *key)
{
    const char *v = evhttp_find_header(&r->query, key);
    return v && strcmp(v, "true") == 0;
}

/* The request body as a NUL-terminated string (bounded), or NULL if empty. */
static char *body_string(struct evhttp_request *req)
{
    struct evbuffer *b = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(b);
    if (n == 0 || n > ADMIN_MAX_BODY)
        return NULL;
    char *s = mg_malloc(n + 1);
    evbuffer_copyout(b, s, n);
    s[n] = '\0';
    return s;
}

static bool valid_name(const char *s)
{
    /* NamedEntity.checkName: [-=:.\w]+ */
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("-=:._", *s))
            return false;
    return true;
}

/* ---- handlers ---------------------------------------------------------------------------- */

static void h_health(struct admin_req *r)
{
    reply_raw(r->req, 200, "text/plain", "ok");
}

static void h_clusters(struct admin_req *r)
{
    reply_json(r->req, 200, json_pack("[s]", svc_cfg(r->a->svc)->cluster_name));
}

static void h_brokers(struct admin_req *r)
{
    reply_json(r->req, 200, json_pack("[s]", svc_broker_id(r->a->svc)));
}

static void h_tenants(struct admin_req *r)
{
    struct svc *s = r->a->svc;
    if (r->nseg == 3) { /* admin/v2/tenants */
        if (r->method != EVHTTP_REQ_GET)
            return reply_raw(r->req, 405, "text/plain", "Method Not Allowed");
        json_t *arr = json_array();
        size_t pos = 0;
        const char *t;
        while ((t = svc_tenant_next(s, &pos)))
            json_array_append_new(arr, json_string(t));
        return reply_json(r->req, 200, arr);
    }
    const char *t = r->seg[3];
    switch (r->method) {
    case EVHTTP_REQ_GET:
        if (!svc_tenant_exists(s, t))
            return reply_error(r->req, 404, "Tenant does not exist");
        return reply_json(r->req, 200,
                          json_pack("{s:[],s:[s]}", "adminRoles", "allowedClusters",
                                    svc_cfg(s)->cluster_name));
    case EVHTTP_REQ_PUT: {
        char *body = body_string(r->req);
        json_t *j = body ? json_loads(body, 0, NULL) : NULL;
        mg_free(body);
        json_t *clusters = j ? json_object_get(j, "allowedClusters") : NULL;
        bool ok_clusters = clusters && json_is_array(clusters) && json_array_size(clusters) > 0;
        bool known = ok_clusters;
        for (size_t i = 0; ok_clusters && i < json_array_size(clusters); i++) {
            const char *cn = json_string_value(json_array_get(clusters, i));
            if (!cn || strcmp(cn, svc_cfg(s)->cluster_name) != 0)
                known = false;
        }
        json_decref(j);
        if (!ok_clusters)
            return reply_error(r->req, 412, "Clusters can not be empty");
        if (!known)
            return reply_error(r->req, 412, "Clusters do not exist");
        if (!valid_name(t))
            return reply_error(r->req, 412, "Tenant name is not valid");
        if (svc_tenant_create(s, t, reply_done, r->req) < 0)
            return reply_error(r->req, 409, "Tenant already exist");
        return;
    }
    case EVHTTP_REQ_DELETE: {
        int rc = svc_tenant_delete(s, t, reply_done, r->req);
        if (rc == -MG_ENOTFOUND)
            return reply_error(r->req, 404, "Tenant doesn't exist");
        if (rc == -MG_EBUSY)
            return reply_error(r->req, 409, "The tenant still has active namespaces");
        return;
    }
    default:
        return reply_raw(r->req, 405, "text/plain", "Method Not Allowed");
    }
}

static json_t *bundles_json(int n)
{
    json_t *b = json_array();
    uint64_t seg = 0x100000000ull / (uint64_t)n;
    char buf[24];
    for (int i = 0; i < n; i++) {
        snprintf(buf, sizeof buf, "0x%08" PRIx64, (seg * (uint64_t)i) & 0xffffffffu);
        json_array_append_new(b, json_string(buf));
    }
    json_array_append_new(b, json_string("0xffffffff"));
    return json_pack("{s:o,s:i}", "boundaries", b, "numBundles", n);
}

static void h_namespaces(struct admin_req *r)
{
    struct svc *s = r->a->svc;
    const char *t = r->seg[3];
    if (r->nseg == 4) { /* admin/v2/namespaces/{t} */
        if (!svc_tenant_exists(s, t))
            return reply_error(r->req, 404, "Tenant not found");
        json_t *arr = json_array();
        size_t pos = 0, tl = strlen(t);
        const char *ns;
        while ((ns = svc_namespace_next(s, &pos)))
            if (strncmp(ns, t, tl) == 0 && ns[tl] == '/')
                json_array_append_new(arr, json_string(ns));
        return reply_json(r->req, 200, arr);
    }
    char *full = mg_asprintf("%s/%s", t, r->seg[4]);
    if (r->nseg == 5) {
        int bundles = svc_cfg(s)->default_number_of_namespace_bundles;
        switch (r->method) {
        case EVHTTP_REQ_GET:
            if (!svc_namespace_exists(s, full))
                reply_error(r->req, 404, "Namespace does not exist");
            else
                reply_json(r->req, 200,
                           json_pack("{s:[s],s:o,s:b}", "replication_clusters",
                                     svc_cfg(s)->cluster_name, "bundles", bundles_json(bundles),
                                     "deleted", 0));
            break;
        case EVHTTP_REQ_PUT: {
            char *body = body_string(r->req);
            json_t *j = body ? json_loads(body, 0, NULL) : NULL;
            mg_free(body);
            json_t *nb = j ? json_object_get(json_object_get(j, "bundles"), "numBundles") : NULL;
            if (nb && json_is_integer(nb))
                bundles = (int)json_integer_value(nb);
            json_decref(j);
            if (!valid_name(t) || !valid_name(r->seg[4])) {
                reply_error(r->req, 412, "Namespace name is not valid");
                break;
            }
            int rc = svc_namespace_create(s, full, bundles, reply_done, r->req);
            if (rc == -MG_ENOTFOUND)
                reply_error(r->req, 404, "Tenant does not exist");
            else if (rc == -MG_EEXIST)
                reply_error(r->req, 409, "Namespace already exists");
            else if (rc < 0)
                reply_error(r->req, 412, "Namespace name is not valid");
            break;
        }
        case EVHTTP_REQ_DELETE: {
            int rc = svc_namespace_delete(s, full, reply_done, r->req);
            if (rc == -MG_ENOTFOUND) {
                char *msg = mg_asprintf("Namespace %s does not exist.", full);
                reply_error(r->req, 404, msg);
                mg_free(msg);
            } else if (rc == -MG_EBUSY) {
                reply_error(r->req, 409, "Cannot delete non empty namespace");
            }
            break;
        }
        default:
            reply_raw(r->req, 405, "text/plain", "Method Not Allowed");
        }
    } else if (r->nseg == 6 && strcmp(r->seg[5], "topics") == 0 && r->method == EVHTTP_REQ_GET) {
        if (svc_list_topics(s, full, false, topics_listed, r->req) < 0)
            reply_error(r->req, 404, "Namespace does not exist");
    } else if (r->nseg == 6 && strcmp(r->seg[5], "bundles") == 0) {
        if (!svc_namespace_exists(s, full))
            reply_error(r->req, 404, "Namespace does not exist");
        else
            reply_json(r->req, 200,
                       bundles_json(svc_cfg(s)->default_number_of_namespace_bundles));
    } else {
        reply_raw(r->req, 404, "text/plain", "Not Found");
    }
    mg_free(full);
}

static void create_topic_done(struct topic *t, int status, void *data)
{
    struct evhttp_request *req = data;
    (void)t;
    if (status < 0)
        reply_error(req, 500, mg_strerror(status));
    else
        reply_no_content(req);
}

static void h_partitions(struct admin_req *r, struct topic_name *tn)
{
    struct svc *s = r->a->svc;
    int cur = svc_partitions_get(s, tn->full);
    if (r->method == EVHTTP_REQ_GET) {
        if (cur > 0)
            return reply_json(r->req, 200, json_pack("{s:i}", "partitions", cur));
        if (topic_find(svc_topics(s), tn->full) ||
            (query_flag(r, "checkAllowAutoCreation") &&
             svc_cfg(s)->allow_auto_topic_creation))
            return reply_json(r->req, 200, json_pack("{s:i}", "partitions", 0));
        char *msg = mg_asprintf("Topic %s not found", tn->full);
        reply_error(r->req, 404, msg);
        mg_free(msg);
        return;
    }
    if (r->method == EVHTTP_REQ_DELETE) {
        if (cur == 0)
            return reply_error(r->req, 404, "Partitioned topic does not exist");
        for (int i = 0; i < cur; i++) {
            char *pn = mg_asprintf("%s-partition-%d", tn->full, i);
            struct topic *t = topic_find(svc_topics(s), pn);
            bool force = query_flag(r, "force");
            if (t && topic_delete(t, force) < 0) {
                mg_free(pn);
                return reply_error(r->req, 412, "Topic has active producers/subscriptions");
            }
            mg_free(pn);
        }
        if (svc_partitions_delete(s, tn->full, reply_done, r->req) < 0)
            return reply_error(r->req, 404, "Partitioned topic does not exist");
        return;
    }
    if (r->method != EVHTTP_REQ_PUT && r->method != EVHTTP_REQ_POST)
        return reply_raw(r->req, 405, "text/plain", "Method Not Allowed");
    char *body = body_string(r->req);
    char *end = NULL;
    errno = 0;
    long n = body ? strtol(body, &end, 10) : 0;
    bool bad = !body || end == body || errno != 0;
    while (!bad && end && *end && isspace((unsigned char)*end))
        end++;
    bad = bad || (end && *end);
    mg_free(body);
    if (bad)
        return reply_error(r->req, 400, "Request body must be the number of partitions");
    if (n <= 0)
        return reply_error(r->req, 406, "Number of partitions should be more than 0");
    if (n > 100000)
        return reply_error(r->req, 406, "Number of partitions should be less than or equal to 100000");
    if (strstr(tn->local, "-partition-"))
        return reply_error(r->req, 412,
                           "Partitioned Topic Name should not contain '-partition-'");
    if (r->method == EVHTTP_REQ_PUT) {
        int rc = svc_partitions_set(s, tn->full, (int)n, true, reply_done, r->req);
        if (rc == -MG_EEXIST)
            return reply_error(r->req, 409, cur > 0 ? "Partitioned topic already exists"
                                                    : "This topic already exists");
        if (rc < 0)
            return reply_error(r->req, 500, mg_strerror(rc));
        return;
    }
    int rc = svc_partitions_set(s, tn->full, (int)n, false, reply_done, r->req);
    if (rc == -MG_ENOTFOUND)
        return reply_error(r->req, 409, "Topic is not the partitioned topic.");
    if (rc < 0)
        return reply_error(r->req, 409, "Number of new partitions must be greater than "
                                        "existing number of partitions");
}

static const char *sub_type_name(enum topic_sub_type t)
{
    static const char *const names[] = {"Exclusive", "Shared", "Failover", "Key_Shared"};
    return (unsigned)t < 4 ? names[t] : "None";
}

static void h_topic_stats(struct admin_req *r, struct topic *t)
{
    struct topic_stats st;
    topic_get_stats(t, &st);
    json_t *subs = json_object();
    size_t pos = 0;
    struct topic_sub_stats ss;
    while (topic_sub_stats_next(t, &pos, &ss)) {
        json_object_set_new(
            subs, ss.name,
            json_pack("{s:I,s:I,s:I,s:I,s:s,s:b,s:b,s:[]}", "msgBacklog", (json_int_t)ss.backlog,
                      "unackedMessages", (json_int_t)ss.unacked, "msgOutCounter",
                      (json_int_t)ss.msg_out_counter, "bytesOutCounter",
                      (json_int_t)ss.bytes_out_counter, "type", sub_type_name(ss.type),
                      "isDurable", ss.durable, "durable", ss.durable, "consumers"));
    }
    json_t *j = json_pack("{s:f,s:f,s:f,s:f,s:I,s:I,s:I,s:I,s:I,s:I,s:[],s:o}", "msgRateIn", 0.0,
                          "msgRateOut", 0.0, "msgThroughputIn", 0.0, "msgThroughputOut", 0.0,
                          "msgInCounter", (json_int_t)st.msg_in_counter, "bytesInCounter",
                          (json_int_t)st.bytes_in_counter, "msgOutCounter",
                          (json_int_t)st.msg_out_counter, "bytesOutCounter",
                          (json_int_t)st.bytes_out_counter, "storageSize",
                          (json_int_t)st.storage_size, "backlogSize",
                          (json_int_t)st.backlog_size, "publishers", "subscriptions", subs);
    reply_json(r->req, 200, j);
}

static void h_persistent(struct admin_req *r)
{
    struct svc *s = r->a->svc;
    if (r->nseg < 5)
        return reply_raw(r->req, 404, "text/plain", "Not Found");
    char *ns = mg_asprintf("%s/%s", r->seg[3], r->seg[4]);
    if (!svc_namespace_exists(s, ns)) {
        mg_free(ns);
        return reply_error(r->req, 404, "Namespace does not exist");
    }
    if (r->nseg == 5 || (r->nseg == 6 && strcmp(r->seg[5], "partitioned") == 0)) {
        if (svc_list_topics(s, ns, r->nseg == 6, topics_listed, r->req) < 0)
            reply_error(r->req, 404, "Namespace does not exist");
        mg_free(ns);
        return;
    }
    char *name = mg_asprintf("persistent://%s/%s", ns, r->seg[5]);
    mg_free(ns);
    struct topic_name tn;
    if (topic_name_parse(name, &tn) < 0) {
        mg_free(name);
        return reply_error(r->req, 412, "Invalid topic name");
    }
    mg_free(name);
    const char *action = r->nseg >= 7 ? r->seg[6] : NULL;
    struct topic *t = topic_find(svc_topics(s), tn.full);
    if (action && strcmp(action, "partitions") == 0 && r->nseg == 7) {
        h_partitions(r, &tn);
    } else if (!action) {
        if (r->method == EVHTTP_REQ_PUT) {
            if (t || svc_partitions_get(s, tn.full) > 0)
                reply_error(r->req, 409, "This topic already exists");
            else if (topic_get(svc_topics(s), tn.full, true, create_topic_done, r->req) < 0)
                reply_error(r->req, 500, "Failed to create topic");
        } else if (r->method == EVHTTP_REQ_DELETE) {
            if (svc_partitions_get(s, tn.full) > 0) {
                char *msg = mg_asprintf("%s is a partitioned topic, instead of calling delete "
                                        "topic, please call delete-partitioned-topic.",
                                        tn.full);
                reply_error(r->req, 409, msg);
                mg_free(msg);
            } else if (!t) {
                char *msg = mg_asprintf("Topic %s not found", tn.full);
                reply_error(r->req, 404, msg);
                mg_free(msg);
            } else if (topic_delete(t, query_flag(r, "force")) < 0) {
                reply_error(r->req, 412, "Topic has active producers/subscriptions");
            } else {
                reply_no_content(r->req);
            }
        } else {
            reply_raw(r->req, 405, "text/plain", "Method Not Allowed");
        }
    } else if (!t) {
        char *msg = mg_asprintf("Topic %s not found", tn.full);
        reply_error(r->req, 404, msg);
        mg_free(msg);
    } else if (strcmp(action, "stats") == 0 && r->method == EVHTTP_REQ_GET) {
        h_topic_stats(r, t);
    } else if (strcmp(action, "subscriptions") == 0 && r->method == EVHTTP_REQ_GET) {
        json_t *arr = json_array();
        size_t pos = 0;
        struct topic_sub_stats ss;
        while (topic_sub_stats_next(t, &pos, &ss))
            json_array_append_new(arr, json_string(ss.name));
        reply_json(r->req, 200, arr);
    } else {
        reply_raw(r->req, 404, "text/plain", "Not Found");
    }
    topic_name_fini(&tn);
}

static void h_lookup(struct admin_req *r)
{
    /* lookup/v2/topic/persistent/{t}/{ns}/{topic} */
    struct svc *s = r->a->svc;
    if (r->nseg != 7 || strcmp(r->seg[3], "persistent") != 0)
        return reply_raw(r->req, 404, "text/plain", "Not Found");
    char *name = mg_asprintf("persistent://%s/%s/%s", r->seg[4], r->seg[5], r->seg[6]);
    struct topic_name tn;
    int rc = topic_name_parse(name, &tn);
    mg_free(name);
    if (rc < 0)
        return reply_error(r->req, 412, "Invalid topic name");
    const char *reason = NULL;
    rc = svc_check_topic(s, &tn, &reason);
    topic_name_fini(&tn);
    if (rc < 0)
        return reply_error(r->req, 404, reason);
    reply_json(r->req, 200,
               json_pack("{s:s,s:s,s:s,s:s}", "brokerUrl", svc_broker_url(s), "httpUrl",
                         svc_web_url(s), "nativeUrl", svc_broker_url(s), "brokerUrlSsl", ""));
}

static long read_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

static void h_metrics(struct admin_req *r)
{
    struct svc *s = r->a->svc;
    const char *cluster = svc_cfg(s)->cluster_name;
    struct evbuffer *b = evbuffer_new();
    int n_topics = 0, n_subs = 0, n_prod = 0, n_cons = 0;
    int64_t storage = 0, backlog = 0, in_msgs = 0, in_bytes = 0;
    struct topic *t;
    size_t pos = 0;
    /* Per-topic series, one # TYPE line per name (pulsar-admin.md §9). */
    static const char *const topic_series[] = {
        "pulsar_producers_count", "pulsar_subscriptions_count", "pulsar_consumers_count",
        "pulsar_in_messages_total", "pulsar_in_bytes_total", "pulsar_storage_size",
        "pulsar_storage_logical_size", "pulsar_msg_backlog"};
    for (size_t k = 0; k < sizeof topic_series / sizeof *topic_series; k++) {
        evbuffer_add_printf(b, "# TYPE %s gauge\n", topic_series[k]);
        pos = 0;
        while ((t = topic_next(svc_topics(s), &pos))) {
            struct topic_stats st;
            topic_get_stats(t, &st);
            struct topic_name tn;
            if (topic_name_parse(topic_full_name(t), &tn) < 0)
                continue;
            int64_t sub_backlog = 0;
            size_t sp = 0;
            struct topic_sub_stats ss;
            while (topic_sub_stats_next(t, &sp, &ss))
                sub_backlog += ss.backlog;
            int64_t v[] = {st.n_producers,     st.n_subscriptions, st.n_consumers,
                           st.msg_in_counter,  st.bytes_in_counter, st.storage_size,
                           st.storage_size,    sub_backlog};
            evbuffer_add_printf(b, "%s{cluster=\"%s\",namespace=\"%s/%s\",topic=\"%s\"} %" PRId64
                                   "\n",
                                topic_series[k], cluster, tn.tenant, tn.ns, tn.full, v[k]);
            if (k == 0) {
                n_topics++;
                n_prod += st.n_producers;
                n_subs += st.n_subscriptions;
                n_cons += st.n_consumers;
                storage += st.storage_size;
                backlog += sub_backlog;
                in_msgs += st.msg_in_counter;
                in_bytes += st.bytes_in_counter;
            }
            topic_name_fini(&tn);
        }
    }
    struct {
        const char *name;
        int64_t v;
    } totals[] = {
        {"pulsar_broker_topics_count", n_topics},
        {"pulsar_broker_subscriptions_count", n_subs},
        {"pulsar_broker_producers_count", n_prod},
        {"pulsar_broker_consumers_count", n_cons},
        {"pulsar_broker_storage_size", storage},
        {"pulsar_broker_msg_backlog", backlog},
        {"pulsar_broker_in_messages_total", in_msgs},
        {"pulsar_broker_in_bytes_total", in_bytes},
    };
    for (size_t i = 0; i < sizeof totals / sizeof *totals; i++)
        evbuffer_add_printf(b, "# TYPE %s gauge\n%s{cluster=\"%s\"} %" PRId64 "\n",
                            totals[i].name, totals[i].name, cluster, totals[i].v);
    evbuffer_add_printf(b, "# TYPE pulsar_active_connections gauge\n"
                           "pulsar_active_connections{cluster=\"%s\"} %d\n",
                        cluster, svc_num_connections(s));
    evbuffer_add_printf(b, "# TYPE pulsar_connection_created_total_count gauge\n"
                           "pulsar_connection_created_total_count{cluster=\"%s\"} %" PRId64 "\n",
                        cluster, svc_total_connections(s));
    long rss = read_rss_kb();
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
                 ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
    evbuffer_add_printf(b,
                        "# TYPE process_resident_memory_bytes gauge\n"
                        "process_resident_memory_bytes %ld\n"
                        "# TYPE process_cpu_seconds_total counter\n"
                        "process_cpu_seconds_total %.3f\n"
                        "# TYPE process_start_time_seconds gauge\n"
                        "process_start_time_seconds %.3f\n",
                        rss < 0 ? 0 : rss * 1024, cpu, (double)svc_start_time_ms(s) / 1000.0);
    evhttp_add_header(evhttp_request_get_output_headers(r->req), "Content-Type",
                      "text/plain; version=0.0.4");
    evhttp_send_reply(r->req, 200, "OK", b);
    evbuffer_free(b);
}

static bool seg_is(struct admin_req *r, int i, const char *s)
{
    return r->nseg > i && strcmp(r->seg[i], s) == 0;
}

static void route(struct evhttp_request *req, void *arg)
{
    struct admin_req r;
    memset(&r, 0, sizeof r);
    r.a = arg;
    r.req = req;
    r.method = evhttp_request_get_command(req);
    if (parse_request(&r) < 0) {
        free_request(&r);
        return reply_error(req, 400, "Bad request path");
    }
    bool get = r.method == EVHTTP_REQ_GET;
    if (r.nseg == 1 && (seg_is(&r, 0, "metrics")) && get)
        h_metrics(&r);
    else if (r.nseg == 1 && seg_is(&r, 0, "status.html") && get)
        reply_raw(req, 200, "text/plain", "OK");
    else if (seg_is(&r, 0, "lookup") && seg_is(&r, 1, "v2") && seg_is(&r, 2, "topic") && get)
        h_lookup(&r);
    else if (!seg_is(&r, 0, "admin") || !seg_is(&r, 1, "v2") || r.nseg < 3)
        reply_raw(req, 404, "text/plain", "Not Found");
    else if (seg_is(&r, 2, "brokers") && r.nseg == 4 &&
             (seg_is(&r, 3, "health") || seg_is(&r, 3, "ready")) && get)
        h_health(&r);
    else if (seg_is(&r, 2, "brokers") && r.nseg <= 4 && get)
        h_brokers(&r);
    else if (seg_is(&r, 2, "clusters") && r.nseg == 3 && get)
        h_clusters(&r);
    else if (seg_is(&r, 2, "tenants") && r.nseg <= 4)
        h_tenants(&r);
    else if (seg_is(&r, 2, "namespaces") && r.nseg >= 4)
        h_namespaces(&r);
    else if (seg_is(&r, 2, "persistent"))
        h_persistent(&r);
    else
        reply_raw(req, 404, "text/plain", "Not Found");
    free_request(&r);
}

struct admin *admin_new(struct svc *s, struct event_base *base, const char *addr, int port)
{
    struct admin *a = mg_calloc(1, sizeof *a);
    a->svc = s;
    a->http = evhttp_new(base);
    if (!a->http) {
        mg_free(a);
        return NULL;
    }
    evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_PUT | EVHTTP_REQ_POST |
                                            EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD);
    evhttp_set_max_body_size(a->http, ADMIN_MAX_BODY);
    evhttp_set_gencb(a->http, route, a);
    a->sock = evhttp_bind_socket_with_handle(a->http, addr, (uint16_t)port);
    if (!a->sock) {
        MG_ERROR("admin", "cannot listen on %s:%d: %s", addr, port, strerror(errno));
        evhttp_free(a->http);
        mg_free(a);
        return NULL;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    getsockname(evhttp_bound_socket_get_fd(a->sock), (struct sockaddr *)&ss, &len);
    a->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return a;
}

int admin_port(const struct admin *a)
{
    return a->port;
}

void admin_free(struct admin *a)
{
    if (!a)
        return;
    evhttp_free(a->http);
    mg_free(a);
}
