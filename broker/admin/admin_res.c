/*
 * admin_res.c - clusters, brokers, tenants and namespaces (docs/admin.md §2-§4).
 *
 * Happy path: reads answer from the svc's resource cache; mutations validate in Pulsar's
 * order, update the cache through svc_* and answer 204 once the metadata store has the
 * change (admin_reply_done). Namespace retention policies live in the namespace's Policies
 * JSON in the store (svc_namespace_retention_*) and are applied to the managed ledgers of
 * the namespace's topics: at once to loaded topics, at load time to the others
 * (admin_topic_loaded).
 *
 * Failure modes: Pulsar's statuses and reasons (404 missing, 409 exists / not empty, 412
 * bad name or clusters, 400 bad policy, 405 forced deletion); a failed store write is 500.
 * Single cluster: only the configured cluster exists; clusters cannot be created.
 */
#include "admin/admin_int.h"
#include "config/cfg.h"
#include "ml/ml.h"
#include "svc/svc.h"
#include "topic/topic.h"
#include "util/alloc.h"
#include "util/crc.h"
#include "util/err.h"
#include "util/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0"
#endif

/* ---- clusters and brokers ---------------------------------------------------------------- */

static json_t *cluster_data(struct svc *s)
{
    return json_pack("{s:s,s:s}", "serviceUrl", svc_web_url(s), "brokerServiceUrl",
                     svc_broker_url(s));
}

void admin_h_clusters(struct admin_req *r)
{
    struct svc *s = r->a->svc;
    const char *cluster = svc_cfg(s)->cluster_name;
    if (r->nseg == 3) {
        if (r->method != EVHTTP_REQ_GET)
            return admin_reply_bad_method(r->req);
        return admin_reply_json(r->req, 200, json_pack("[s]", cluster));
    }
    if (r->nseg != 4)
        return admin_reply_not_found(r->req);
    const char *c = r->seg[3];
    switch (r->method) {
    case EVHTTP_REQ_GET:
        if (strcmp(c, cluster) != 0)
            return admin_reply_error(r->req, 404, "Cluster does not exist");
        return admin_reply_json(r->req, 200, cluster_data(s));
    case EVHTTP_REQ_PUT:
        if (!admin_valid_name(c))
            return admin_reply_error(r->req, 412, "Cluster name is not valid");
        if (strcmp(c, cluster) == 0)
            return admin_reply_error(r->req, 409, "Cluster already exists");
        return admin_reply_error(r->req, 405, "This broker serves a single cluster");
    case EVHTTP_REQ_POST:
        if (strcmp(c, cluster) != 0)
            return admin_reply_error(r->req, 404, "Cluster does not exist");
        return admin_reply_raw(r->req, 200, NULL, NULL);
    default:
        return admin_reply_bad_method(r->req);
    }
}

static void brokers_listed(void *data, int status, char **ids, int n)
{
    struct evhttp_request *req = data;
    if (status < 0)
        return admin_reply_error(req, 500, mg_strerror(status));
    json_t *arr = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(arr, json_string(ids[i]));
    admin_reply_json(req, 200, arr);
}

void admin_h_brokers(struct admin_req *r)
{
    struct svc *s = r->a->svc;
    if (r->method != EVHTTP_REQ_GET && r->method != EVHTTP_REQ_HEAD)
        return admin_reply_bad_method(r->req);
    if (r->nseg == 3 || (r->nseg == 4 && strcmp(r->seg[3], "leaderBroker") != 0 &&
                         strcmp(r->seg[3], "version") != 0)) {
        /* GET /admin/v2/brokers[/{cluster}]: the live brokers; any cluster name is accepted
         * (authorization disabled), as Pulsar does. */
        if (svc_list_brokers(s, brokers_listed, r->req) < 0)
            admin_reply_json(r->req, 200, json_pack("[s]", svc_broker_id(s)));
        return;
    }
    if (r->nseg == 4 && strcmp(r->seg[3], "leaderBroker") == 0)
        return admin_reply_json(
            r->req, 200,
            json_pack("{s:s,s:s}", "serviceUrl", svc_web_url(s), "brokerId", svc_broker_id(s)));
    if (r->nseg == 4 && strcmp(r->seg[3], "version") == 0)
        return admin_reply_raw(r->req, 200, "text/plain", PACKAGE_VERSION);
    admin_reply_not_found(r->req);
}

/* ---- tenants ----------------------------------------------------------------------------- */

/* TenantInfo body check, in Pulsar's order: clusters (412), then the caller checks the
 * name and existence. Returns NULL when fine, else the 412 reason. */
static const char *check_tenant_body(struct admin_req *r, bool *bad_json)
{
    json_t *j = admin_body_json(r->req, bad_json);
    if (*bad_json)
        return NULL;
    json_t *clusters = j ? json_object_get(j, "allowedClusters") : NULL;
    const char *reason = NULL;
    if (!clusters || !json_is_array(clusters) || json_array_size(clusters) == 0) {
        reason = "Clusters can not be empty";
    } else {
        for (size_t i = 0; i < json_array_size(clusters) && !reason; i++) {
            const char *cn = json_string_value(json_array_get(clusters, i));
            if (!cn || !*cn || strspn(cn, " \t") == strlen(cn))
                reason = "Clusters can not be empty";
            else if (strcmp(cn, svc_cfg(r->a->svc)->cluster_name) != 0)
                reason = "Clusters do not exist";
        }
    }
    json_decref(j);
    return reason;
}

void admin_h_tenants(struct admin_req *r)
{
    struct svc *s = r->a->svc;
    if (r->nseg == 3) { /* admin/v2/tenants */
        if (r->method != EVHTTP_REQ_GET)
            return admin_reply_bad_method(r->req);
        json_t *arr = json_array();
        size_t pos = 0;
        const char *t;
        while ((t = svc_tenant_next(s, &pos)))
            json_array_append_new(arr, json_string(t));
        return admin_reply_json(r->req, 200, arr);
    }
    const char *t = r->seg[3];
    bool bad = false;
    const char *reason;
    switch (r->method) {
    case EVHTTP_REQ_GET:
        if (!svc_tenant_exists(s, t))
            return admin_reply_error(r->req, 404, "Tenant does not exist");
        return admin_reply_json(
            r->req, 200,
            json_pack("{s:[],s:[s]}", "adminRoles", "allowedClusters", svc_cfg(s)->cluster_name));
    case EVHTTP_REQ_PUT:
        reason = check_tenant_body(r, &bad);
        if (bad)
            return admin_reply_raw(r->req, 400, "text/plain", "Bad Request");
        if (reason)
            return admin_reply_error(r->req, 412, reason);
        if (!admin_valid_name(t))
            return admin_reply_error(r->req, 412, "Tenant name is not valid");
        if (svc_tenant_create(s, t, admin_reply_done, r->req) < 0)
            return admin_reply_error(r->req, 409, "Tenant already exist");
        return;
    case EVHTTP_REQ_POST:
        if (!svc_tenant_exists(s, t))
            return admin_reply_errorf(r->req, 404, "Tenant %s not found", t);
        reason = check_tenant_body(r, &bad);
        if (bad)
            return admin_reply_raw(r->req, 400, "text/plain", "Bad Request");
        if (reason)
            return admin_reply_error(r->req, 412, reason);
        /* Admin roles are not kept (no authorization); the cluster list can only be ours. */
        return admin_reply_no_content(r->req);
    case EVHTTP_REQ_DELETE: {
        if (admin_query_flag(r, "force"))
            return admin_reply_error(r->req, 405,
                                     "Broker doesn't allow forced deletion of tenants");
        int rc = svc_tenant_delete(s, t, admin_reply_done, r->req);
        if (rc == -MG_ENOTFOUND)
            return admin_reply_error(r->req, 404, "Tenant doesn't exist");
        if (rc == -MG_EBUSY)
            return admin_reply_error(r->req, 409, "The tenant still has active namespaces");
        if (rc < 0)
            return admin_reply_error(r->req, 500, mg_strerror(rc));
        return;
    }
    default:
        return admin_reply_bad_method(r->req);
    }
}

/* ---- namespaces -------------------------------------------------------------------------- */

static json_t *bundles_json(int n)
{
    json_t *b = json_array();
    char buf[24];
    for (int i = 0; i < n; i++) {
        snprintf(buf, sizeof buf, "0x%08" PRIx32, svc_bundle_lower(n, i));
        json_array_append_new(b, json_string(buf));
    }
    json_array_append_new(b, json_string("0xffffffff"));
    return json_pack("{s:o,s:i}", "boundaries", b, "numBundles", n);
}

/* Policies of a namespace, fields in Java order (docs/admin.md §4). */
static json_t *policies_json(struct svc *s, const char *ns)
{
    json_t *p = json_object();
    json_object_set_new(p, "auth_policies",
                        json_pack("{s:{},s:{},s:{}}", "namespace_auth", "destination_auth",
                                  "subscription_auth_roles"));
    json_object_set_new(p, "replication_clusters", json_pack("[s]", svc_cfg(s)->cluster_name));
    json_object_set_new(p, "bundles", bundles_json(svc_namespace_bundles(s, ns)));
    static const char *const empty_maps[] = {"backlog_quota_map",      "clusterDispatchRate",
                                             "topicDispatchRate",      "subscriptionDispatchRate",
                                             "replicatorDispatchRate", "clusterSubscribeRate",
                                             "publishMaxMessageRate",  "latency_stats_sample_rate"};
    for (size_t i = 0; i < sizeof empty_maps / sizeof *empty_maps; i++)
        json_object_set_new(p, empty_maps[i], json_object());
    json_object_set_new(p, "deleted", json_false());
    json_object_set_new(p, "encryption_required", json_false());
    json_object_set_new(p, "subscription_auth_mode", json_string("None"));
    json_object_set_new(p, "offload_threshold", json_integer(-1));
    json_object_set_new(p, "schema_compatibility_strategy", json_string("UNDEFINED"));
    json_object_set_new(p, "is_allow_auto_update_schema", json_true());
    json_object_set_new(p, "schema_validation_enforced", json_false());
    json_object_set_new(p, "subscription_types_enabled", json_array());
    json_object_set_new(p, "properties", json_object());
    int64_t tm, mb;
    if (svc_namespace_retention_get(s, ns, &tm, &mb) == 1)
        json_object_set_new(p, "retention_policies",
                            json_pack("{s:I,s:I}", "retentionTimeInMinutes", (json_int_t)tm,
                                      "retentionSizeInMB", (json_int_t)mb));
    return p;
}

static void topics_listed(void *data, int status, char **names, int n)
{
    struct evhttp_request *req = data;
    if (status < 0)
        return admin_reply_error(req, 500, mg_strerror(status));
    json_t *arr = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(arr, json_string(names[i]));
    admin_reply_json(req, 200, arr);
}

/* Apply (or reset) the namespace's retention to one topic's managed ledger. */
static void apply_retention_to(struct svc *s, struct topic *t)
{
    struct topic_name tn;
    if (topic_name_parse(topic_full_name(t), &tn) < 0)
        return;
    char *ns = mg_asprintf("%s/%s", tn.tenant, tn.ns);
    int64_t tm = 0, mb = 0;
    struct ml_ledger *ml = topic_ml(t);
    if (ml) {
        if (svc_namespace_retention_get(s, ns, &tm, &mb) == 1)
            ml_set_retention(ml, tm, mb);
        else
            ml_reset_retention(ml);
    }
    mg_free(ns);
    topic_name_fini(&tn);
}

void admin_topic_loaded(void *arg, struct topic *t)
{
    struct admin *a = arg;
    struct topic_name tn;
    if (topic_name_parse(topic_full_name(t), &tn) < 0)
        return;
    char *ns = mg_asprintf("%s/%s", tn.tenant, tn.ns);
    int64_t tm, mb;
    bool set = svc_namespace_retention_get(a->svc, ns, &tm, &mb) == 1;
    mg_free(ns);
    topic_name_fini(&tn);
    if (set)
        apply_retention_to(a->svc, t);
}

void admin_apply_retention(struct admin *a, const char *tenant_ns)
{
    char *prefix = mg_asprintf("persistent://%s/", tenant_ns);
    size_t plen = strlen(prefix);
    size_t pos = 0;
    struct topic *t;
    while ((t = topic_next(svc_topics(a->svc), &pos)))
        if (strncmp(topic_full_name(t), prefix, plen) == 0 &&
            !strchr(topic_full_name(t) + plen, '/'))
            apply_retention_to(a->svc, t);
    mg_free(prefix);
}

/* Retention change stored: apply it, then 204. */
struct retention_op {
    struct admin *a;
    struct evhttp_request *req;
    char *ns; /* owned */
};

static void retention_done(void *data, int status)
{
    struct retention_op *op = data;
    if (status == 0)
        admin_apply_retention(op->a, op->ns);
    admin_reply_done(op->req, status);
    mg_free(op->ns);
    mg_free(op);
}

static void h_retention(struct admin_req *r, const char *ns)
{
    struct svc *s = r->a->svc;
    if (!svc_namespace_exists(s, ns))
        return admin_reply_error(r->req, 404, "Namespace does not exist");
    int64_t tm = 0, mb = 0;
    bool remove = false;
    switch (r->method) {
    case EVHTTP_REQ_GET:
        if (svc_namespace_retention_get(s, ns, &tm, &mb) != 1)
            return admin_reply_no_content(r->req);
        return admin_reply_json(r->req, 200,
                                json_pack("{s:I,s:I}", "retentionTimeInMinutes", (json_int_t)tm,
                                          "retentionSizeInMB", (json_int_t)mb));
    case EVHTTP_REQ_POST: {
        bool bad = false;
        json_t *j = admin_body_json(r->req, &bad);
        if (bad || !json_is_object(j)) {
            json_decref(j);
            return admin_reply_error(r->req, 400,
                                     "Invalid retention policy: a JSON object "
                                     "with retentionTimeInMinutes and "
                                     "retentionSizeInMB is required");
        }
        json_t *jt = json_object_get(j, "retentionTimeInMinutes");
        json_t *js = json_object_get(j, "retentionSizeInMB");
        bool types_ok = (!jt || json_is_integer(jt)) && (!js || json_is_integer(js));
        tm = json_is_integer(jt) ? json_integer_value(jt) : 0;
        mb = json_is_integer(js) ? json_integer_value(js) : 0;
        json_decref(j);
        if (!types_ok)
            return admin_reply_error(r->req, 400,
                                     "Invalid retention policy: values must be "
                                     "integers");
        if (tm < -1 || mb < -1 || ((tm == 0) != (mb == 0)))
            return admin_reply_errorf(r->req, 400,
                                      "Invalid retention policy: retentionTimeInMinutes=%" PRId64
                                      ", retentionSizeInMB=%" PRId64
                                      " (each >= -1, both 0 or neither 0)",
                                      tm, mb);
        break;
    }
    case EVHTTP_REQ_DELETE:
        remove = true;
        break;
    default:
        return admin_reply_bad_method(r->req);
    }
    struct retention_op *op = mg_calloc(1, sizeof *op);
    op->a = r->a;
    op->req = r->req;
    op->ns = mg_strdup(ns);
    int rc = svc_namespace_retention_set(s, ns, remove, tm, mb, retention_done, op);
    if (rc < 0) {
        mg_free(op->ns);
        mg_free(op);
        admin_reply_error(r->req, rc == -MG_ENOTFOUND ? 404 : 500,
                          rc == -MG_ENOTFOUND ? "Namespace does not exist" : mg_strerror(rc));
    }
}

/* Is range one of the namespace's bundles? */
static bool valid_bundle(struct svc *s, const char *ns, const char *range)
{
    int n = svc_namespace_bundles(s, ns);
    char buf[SVC_BUNDLE_NAME_LEN];
    for (int i = 0; i < n; i++) {
        svc_bundle_name(n, i, buf);
        if (strcmp(buf, range) == 0)
            return true;
    }
    return false;
}

struct unload_op {
    struct evhttp_request *req; /* borrowed until replied */
    char *path;                 /* owned: the request path, for a redirect */
};

/* Who owns a bundle we do not: redirect to it (307), or a no-op 204 when nobody does. */
static void unload_owner_known(void *data, int status, const struct svc_owner *o)
{
    struct unload_op *op = data;
    if (status < 0) {
        admin_reply_error(op->req, 500, mg_strerror(status));
    } else if (o->kind == SVC_OWNER_OTHER && o->web_url) {
        char *loc = mg_asprintf("%s%s", o->web_url, op->path);
        evhttp_add_header(evhttp_request_get_output_headers(op->req), "Location", loc);
        admin_reply_raw(op->req, 307, NULL, NULL);
        mg_free(loc);
    } else {
        admin_reply_no_content(op->req); /* nobody owns it: nothing to unload */
    }
    mg_free(op->path);
    mg_free(op);
}

/* PUT|POST .../{bundle}/unload: unload here when owned here, else redirect to the owner. */
static void unload_bundle(struct admin_req *r, const char *ns, const char *range)
{
    struct svc *s = r->a->svc;
    if (!valid_bundle(s, ns, range))
        return admin_reply_errorf(r->req, 412, "Invalid bundle range %s", range);
    if (svc_bundle_owned(s, ns, range)) {
        if (svc_bundle_unload(s, ns, range, admin_reply_done, r->req) < 0)
            admin_reply_no_content(r->req);
        return;
    }
    struct unload_op *op = mg_calloc(1, sizeof *op);
    op->req = r->req;
    op->path = mg_strdup(evhttp_request_get_uri(r->req));
    if (svc_bundle_owner(s, ns, range, unload_owner_known, op) < 0) {
        mg_free(op->path);
        mg_free(op);
        admin_reply_no_content(r->req);
    }
}

/* PUT .../unload: every bundle of the namespace this broker owns. */
static void unload_namespace(struct admin_req *r, const char *ns)
{
    struct svc *s = r->a->svc;
    size_t nslen = strlen(ns), pos = 0;
    const char *key;
    char **ranges = NULL;
    int n = 0;
    /* Unloading changes the owned table: collect first. */
    while ((key = svc_owned_bundle_next(s, &pos))) {
        if (strncmp(key, ns, nslen) == 0 && key[nslen] == '/') {
            ranges = mg_realloc(ranges, (size_t)(n + 1) * sizeof *ranges);
            ranges[n++] = mg_strdup(key + nslen + 1);
        }
    }
    for (int i = 0; i < n; i++) {
        svc_bundle_unload(s, ns, ranges[i], NULL, NULL);
        mg_free(ranges[i]);
    }
    mg_free(ranges);
    admin_reply_no_content(r->req);
}

static void h_namespace(struct admin_req *r, const char *t, const char *ns)
{
    struct svc *s = r->a->svc;
    switch (r->method) {
    case EVHTTP_REQ_GET:
        if (!svc_namespace_exists(s, ns))
            return admin_reply_error(r->req, 404, "Namespace does not exist");
        return admin_reply_json(r->req, 200, policies_json(s, ns));
    case EVHTTP_REQ_PUT: {
        bool bad = false;
        json_t *j = admin_body_json(r->req, &bad);
        if (bad) {
            json_decref(j);
            return admin_reply_raw(r->req, 400, "text/plain", "Bad Request");
        }
        int bundles = svc_cfg(s)->default_number_of_namespace_bundles;
        json_t *nb = j ? json_object_get(json_object_get(j, "bundles"), "numBundles") : NULL;
        if (nb && json_is_integer(nb))
            bundles = (int)json_integer_value(nb);
        json_decref(j);
        if (!admin_valid_name(t) || !admin_valid_name(r->seg[4]))
            return admin_reply_error(r->req, 412, "Namespace name is not valid");
        if (nb && (bundles <= 0 || bundles > 1024))
            return admin_reply_error(r->req, 412, "Invalid number of bundles");
        int rc = svc_namespace_create(s, ns, bundles, admin_reply_done, r->req);
        if (rc == -MG_ENOTFOUND)
            return admin_reply_error(r->req, 404, "Tenant does not exist");
        if (rc == -MG_EEXIST)
            return admin_reply_error(r->req, 409, "Namespace already exists");
        if (rc < 0)
            return admin_reply_error(r->req, 412, "Namespace name is not valid");
        return;
    }
    case EVHTTP_REQ_DELETE: {
        if (admin_query_flag(r, "force"))
            return admin_reply_error(r->req, 405,
                                     "Broker doesn't allow forced deletion of namespaces");
        int rc = svc_namespace_delete(s, ns, admin_reply_done, r->req);
        if (rc == -MG_ENOTFOUND)
            return admin_reply_errorf(r->req, 404, "Namespace %s does not exist.", ns);
        if (rc == -MG_EBUSY)
            return admin_reply_error(r->req, 409, "Cannot delete non empty namespace");
        if (rc < 0)
            return admin_reply_error(r->req, 500, mg_strerror(rc));
        return;
    }
    default:
        return admin_reply_bad_method(r->req);
    }
}

void admin_h_namespaces(struct admin_req *r)
{
    struct svc *s = r->a->svc;
    const char *t = r->seg[3];
    if (r->nseg == 4) { /* admin/v2/namespaces/{t} */
        if (r->method != EVHTTP_REQ_GET)
            return admin_reply_bad_method(r->req);
        if (!admin_valid_name(t))
            return admin_reply_error(r->req, 412, "Tenant name is not valid");
        if (!svc_tenant_exists(s, t))
            return admin_reply_error(r->req, 404, "Tenant not found");
        json_t *arr = json_array();
        size_t pos = 0, tl = strlen(t);
        const char *ns;
        while ((ns = svc_namespace_next(s, &pos)))
            if (strncmp(ns, t, tl) == 0 && ns[tl] == '/')
                json_array_append_new(arr, json_string(ns));
        return admin_reply_json(r->req, 200, arr);
    }
    char *full = mg_asprintf("%s/%s", t, r->seg[4]);
    const char *what = r->nseg >= 6 ? r->seg[5] : NULL;
    if (r->nseg == 5) {
        h_namespace(r, t, full);
    } else if (!svc_namespace_exists(s, full)) {
        admin_reply_error(r->req, 404, "Namespace does not exist");
    } else if (r->nseg == 6 && strcmp(what, "topics") == 0) {
        if (r->method != EVHTTP_REQ_GET)
            admin_reply_bad_method(r->req);
        else if (svc_list_topics(s, full, false, topics_listed, r->req) < 0)
            admin_reply_error(r->req, 404, "Namespace does not exist");
    } else if (r->nseg == 6 && strcmp(what, "retention") == 0) {
        h_retention(r, full);
    } else if (r->nseg == 6 && strcmp(what, "bundles") == 0) {
        if (r->method != EVHTTP_REQ_GET)
            admin_reply_bad_method(r->req);
        else
            admin_reply_json(r->req, 200, bundles_json(svc_namespace_bundles(s, full)));
    } else if (r->nseg == 6 && strcmp(what, "unload") == 0) {
        if (r->method != EVHTTP_REQ_PUT && r->method != EVHTTP_REQ_POST)
            admin_reply_bad_method(r->req);
        else
            unload_namespace(r, full);
    } else if (r->nseg == 7 && strcmp(r->seg[6], "unload") == 0) {
        /* PUT (pulsar-admin) or POST .../{bundle}/unload */
        if (r->method != EVHTTP_REQ_PUT && r->method != EVHTTP_REQ_POST)
            admin_reply_bad_method(r->req);
        else
            unload_bundle(r, full, what);
    } else {
        admin_reply_not_found(r->req);
    }
    mg_free(full);
}
