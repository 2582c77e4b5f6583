/*
 * admin_res.c - clusters, brokers, tenants and namespaces (docs/admin.md §2-§4).
 *
 * Happy path: reads answer from the namespace module's cache; mutations validate in Pulsar's
 * order, update the cache through ns_* and answer 204 once the metadata store has the
 * change (admin_reply_done). Namespace retention policies live in the namespace's Policies
 * JSON in the store (ns_namespace_retention_*) and are applied to the managed ledgers of
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
#include "ns/ns.h"
#include "topic/topic.h"
#include "util/alloc.h"
#include "util/crc.h"
#include "util/err.h"
#include "util/log.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0"
#endif

/* ---- clusters and brokers ---------------------------------------------------------------- */

static json_t *admin_res_cluster_data(const struct admin_env *s)
{
    return json_pack("{s:s,s:s}", "serviceUrl", ns_web_url(s->ns), "brokerServiceUrl",
                     ns_broker_url(s->ns));
}

/* GET /admin/v2/clusters */
void admin_h_clusters(struct admin_req *r)
{
    admin_reply_json(r->call, 200, json_pack("[s]", r->a->env->cfg->cluster_name));
}

void admin_h_cluster_get(struct admin_req *r)
{
    const struct admin_env *s = r->a->env;
    if (strcmp(r->p.cluster, s->cfg->cluster_name) != 0) {
        admin_reply_error(r->call, 404, "Cluster does not exist");
        return;
    }
    admin_reply_json(r->call, 200, admin_res_cluster_data(s));
}

/* PUT: clusters cannot be created (one cluster per deployment). */
void admin_h_cluster_create(struct admin_req *r)
{
    if (!admin_valid_name(r->p.cluster)) {
        admin_reply_error(r->call, 412, "Cluster name is not valid");
        return;
    }
    if (strcmp(r->p.cluster, r->a->env->cfg->cluster_name) == 0) {
        admin_reply_error(r->call, 409, "Cluster already exists");
        return;
    }
    admin_reply_error(r->call, 405, "This broker serves a single cluster");
}

/* POST: accepted for the configured cluster, nothing changes. */
void admin_h_cluster_update(struct admin_req *r)
{
    if (strcmp(r->p.cluster, r->a->env->cfg->cluster_name) != 0) {
        admin_reply_error(r->call, 404, "Cluster does not exist");
        return;
    }
    admin_reply_raw(r->call, 200, NULL, NULL);
}

/* There is no leader election: every broker names the same one, the first live broker in
 * id order (this one when the list is unavailable). */
static void admin_res_leader_listed(void *data, int status, char **ids, int n)
{
    struct admin_call *c = data;
    if (admin_call_gone(c))
        return;
    const struct admin_env *s = c->a->env;
    const char *id = status == 0 && n > 0 ? ids[0] : ns_broker_id(s->ns);
    char *url = strcmp(id, ns_broker_id(s->ns)) == 0 ? mg_strdup(ns_web_url(s->ns))
                                                     : mg_asprintf("http://%s", id);
    admin_reply_json(c, 200, json_pack("{s:s,s:s}", "serviceUrl", url, "brokerId", id));
    mg_free(url);
}

/* GET /admin/v2/brokers[/{cluster}]: the live brokers; any cluster name is accepted
 * (authorization disabled), as Pulsar does. */
void admin_h_brokers(struct admin_req *r)
{
    const struct admin_env *s = r->a->env;
    if (ns_list_brokers(s->ns, admin_reply_names, r->call) < 0)
        admin_reply_json(r->call, 200, json_pack("[s]", ns_broker_id(s->ns)));
}

void admin_h_leader_broker(struct admin_req *r)
{
    if (ns_list_brokers(r->a->env->ns, admin_res_leader_listed, r->call) < 0)
        admin_res_leader_listed(r->call, 0, NULL, 0);
}

void admin_h_version(struct admin_req *r)
{
    admin_reply_raw(r->call, 200, "text/plain", PACKAGE_VERSION);
}

/* ---- tenants ----------------------------------------------------------------------------- */

/* A TenantInfo body: {"adminRoles": [...], "allowedClusters": [...]}. */
struct tenant_info {
    const char **roles; /* owned array of strings borrowed from the request's body */
    size_t n_roles;
};

static void admin_res_tenant_info_fini(struct tenant_info *ti)
{
    mg_free(ti->roles);
}

enum tenant_check {
    TENANT_OK = 0,
    TENANT_BAD_BODY,     /* does not map onto a TenantInfo: 400 framework-style, as Jersey */
    TENANT_NO_CLUSTERS,  /* 412 "Clusters can not be empty" */
    TENANT_BAD_CLUSTERS, /* 412 "Clusters do not exist" */
};

/* Parse and check a TenantInfo body (r->body, ADMIN_R_JSON), in Pulsar's order. */
static enum tenant_check admin_res_parse_tenant_info(struct admin_req *r, struct tenant_info *ti)
{
    memset(ti, 0, sizeof *ti);
    if (r->body_bad || (r->body && !json_is_object(r->body)))
        return TENANT_BAD_BODY;
    json_t *roles = json_object_get(r->body, "adminRoles");
    if (roles && !json_is_null(roles)) {
        if (!json_is_array(roles))
            return TENANT_BAD_BODY;
        ti->roles = mg_calloc(json_array_size(roles) + 1, sizeof *ti->roles);
        for (size_t i = 0; i < json_array_size(roles); i++) {
            const char *role = json_string_value(json_array_get(roles, i));
            if (!role)
                return TENANT_BAD_BODY;
            bool dup = false;
            for (size_t k = 0; k < ti->n_roles && !dup; k++)
                dup = strcmp(ti->roles[k], role) == 0; /* a Set in Pulsar */
            if (!dup)
                ti->roles[ti->n_roles++] = role;
        }
    }
    json_t *clusters = json_object_get(r->body, "allowedClusters");
    if (clusters && !json_is_null(clusters) && !json_is_array(clusters))
        return TENANT_BAD_BODY;
    if (json_array_size(clusters) == 0)
        return TENANT_NO_CLUSTERS;
    for (size_t i = 0; i < json_array_size(clusters); i++) {
        const char *cn = json_string_value(json_array_get(clusters, i));
        if (!cn)
            return TENANT_BAD_BODY;
        if (!*cn || strspn(cn, " \t") == strlen(cn))
            return TENANT_NO_CLUSTERS;
    }
    for (size_t i = 0; i < json_array_size(clusters); i++)
        if (strcmp(json_string_value(json_array_get(clusters, i)), r->a->env->cfg->cluster_name))
            return TENANT_BAD_CLUSTERS;
    return TENANT_OK;
}

/* The request's TenantInfo into ti: false when it was refused (and answered: 400, 412). */
static bool admin_res_tenant_info(struct admin_req *r, struct tenant_info *ti)
{
    enum tenant_check rc = admin_res_parse_tenant_info(r, ti);
    if (rc == TENANT_OK)
        return true;
    admin_res_tenant_info_fini(ti);
    if (rc == TENANT_BAD_BODY)
        admin_reply_raw(r->call, 400, "text/plain", "Bad Request");
    else if (rc == TENANT_NO_CLUSTERS)
        admin_reply_error(r->call, 412, "Clusters can not be empty");
    else
        admin_reply_error(r->call, 412, "Clusters do not exist");
    return false;
}

/* The tenant is neither cached nor (after one read of the store) stored. Returns true when
 * the call was answered or will be: a read of the store started. */
static bool admin_res_tenant_missing(struct admin_req *r, const char *t)
{
    return !ns_tenant_exists(r->a->env->ns, t) && admin_valid_name(t) && admin_refresh_tenant(r, t);
}

/* GET /admin/v2/tenants: sorted names */
void admin_h_tenants(struct admin_req *r)
{
    json_t *arr = json_array();
    size_t pos = 0;
    const char *t;
    while ((t = ns_tenant_next(r->a->env->ns, &pos)))
        json_array_append_new(arr, json_string(t));
    admin_reply_json(r->call, 200, arr);
}

/* The path's tenant exists (read from the store first when not cached). False when answered
 * (404, with Pulsar's reason of the GET or, named, of the POST) or to be routed again. */
static bool admin_res_tenant_found(struct admin_req *r, bool named)
{
    const char *t = r->p.tenant;
    if (admin_res_tenant_missing(r, t))
        return false;
    if (ns_tenant_exists(r->a->env->ns, t))
        return true;
    if (named)
        admin_reply_errorf(r->call, 404, "Tenant %s not found", t);
    else
        admin_reply_error(r->call, 404, "Tenant does not exist");
    return false;
}

void admin_h_tenant_get(struct admin_req *r)
{
    const struct admin_env *s = r->a->env;
    const char *t = r->p.tenant;
    if (!admin_res_tenant_found(r, false))
        return;
    json_t *roles = json_array();
    const char *role;
    for (size_t i = 0; (role = ns_tenant_role(s->ns, t, i)); i++)
        json_array_append_new(roles, json_string(role));
    admin_reply_json(
        r->call, 200,
        json_pack("{s:o,s:[s]}", "adminRoles", roles, "allowedClusters", s->cfg->cluster_name));
}

/* PUT: checked in Pulsar's order: the body, the name, whether it exists. */
void admin_h_tenant_create(struct admin_req *r)
{
    const struct admin_env *s = r->a->env;
    const char *t = r->p.tenant;
    struct tenant_info ti;
    if (!admin_res_tenant_info(r, &ti))
        return;
    if (!admin_valid_name(t)) {
        admin_res_tenant_info_fini(&ti);
        admin_reply_error(r->call, 412, "Tenant name is not valid");
        return;
    }
    if (admin_res_tenant_missing(r, t)) { /* created elsewhere? then 409 */
        admin_res_tenant_info_fini(&ti);
        return;
    }
    /* Two writes of the same key, in order: the second (with the roles) answers. */
    if (ns_tenant_create(s->ns, t, ti.n_roles ? NULL : admin_reply_done, r->call) < 0) {
        admin_res_tenant_info_fini(&ti);
        admin_reply_error(r->call, 409, "Tenant already exist");
        return;
    }
    if (ti.n_roles &&
        ns_tenant_set_roles(s->ns, t, ti.roles, ti.n_roles, admin_reply_done, r->call) < 0)
        admin_reply_error(r->call, 500, "Tenant vanished while being created");
    admin_res_tenant_info_fini(&ti);
}

/* POST: the cluster list can only be ours; the roles are stored (no authorization here, but
 * pulsar-admin shows and edits them). */
void admin_h_tenant_update(struct admin_req *r)
{
    const struct admin_env *s = r->a->env;
    const char *t = r->p.tenant;
    if (!admin_res_tenant_found(r, true))
        return;
    struct tenant_info ti;
    if (!admin_res_tenant_info(r, &ti))
        return;
    if (ns_tenant_set_roles(s->ns, t, ti.roles, ti.n_roles, admin_reply_done, r->call) < 0)
        admin_reply_errorf(r->call, 404, "Tenant %s not found", t);
    admin_res_tenant_info_fini(&ti);
}

void admin_h_tenant_delete(struct admin_req *r)
{
    const char *t = r->p.tenant;
    if (admin_query_flag(r, "force")) {
        admin_reply_error(r->call, 405, "Broker doesn't allow forced deletion of tenants");
        return;
    }
    if (admin_res_tenant_missing(r, t))
        return;
    int rc = ns_tenant_delete(r->a->env->ns, t, admin_reply_done, r->call);
    if (rc == -MG_ENOTFOUND)
        admin_reply_error(r->call, 404, "Tenant doesn't exist");
    else if (rc == -MG_EBUSY)
        admin_reply_error(r->call, 409, "The tenant still has active namespaces");
    else if (rc < 0)
        admin_reply_error(r->call, 500, mg_strerror(rc));
}

/* ---- namespaces -------------------------------------------------------------------------- */

/* Policies of a namespace, fields in Java order (docs/admin.md §4). */
static json_t *admin_res_policies_json(const struct admin_env *s, const char *ns)
{
    json_t *p = json_object();
    json_object_set_new(p, "auth_policies", admin_az_grants(s, ns));
    json_object_set_new(p, "replication_clusters", json_pack("[s]", s->cfg->cluster_name));
    json_object_set_new(p, "bundles", ns_bundles_json(ns_namespace_bundles(s->ns, ns)));
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
    json_object_set_new(p, "is_allow_auto_update_schema",
                        json_boolean(s->cfg->allow_auto_update_schema));
    json_object_set_new(p, "schema_validation_enforced", json_false());
    json_object_set_new(p, "subscription_types_enabled", json_array());
    json_object_set_new(p, "properties", json_object());
    struct ns_policies pol;
    if (ns_namespace_policies_get(s->ns, ns, &pol) == 0) {
        if (pol.auto_topic.set)
            json_object_set_new(p, "autoTopicCreationOverride",
                                ns_auto_topic_json(&pol.auto_topic));
        if (pol.auto_sub.set)
            json_object_set_new(p, "autoSubscriptionCreationOverride",
                                ns_auto_sub_json(&pol.auto_sub));
        if (pol.has_retention)
            json_object_set_new(p, "retention_policies",
                                json_pack("{s:I,s:I}", "retentionTimeInMinutes",
                                          (json_int_t)pol.retention_time_minutes,
                                          "retentionSizeInMB", (json_int_t)pol.retention_size_mb));
        if (pol.has_ttl)
            json_object_set_new(p, "message_ttl_in_seconds", json_integer(pol.ttl_secs));
        if (pol.schema_strategy[0])
            json_object_set_new(p, "schema_compatibility_strategy",
                                json_string(pol.schema_strategy));
        if (pol.has_auto_update_schema)
            json_object_set_new(p, "is_allow_auto_update_schema",
                                json_boolean(pol.auto_update_schema));
        if (pol.has_dedup)
            json_object_set_new(p, "deduplicationEnabled", json_boolean(pol.dedup_enabled));
        if (pol.has_compaction_threshold)
            json_object_set_new(p, "compaction_threshold", json_integer(pol.compaction_threshold));
        ns_limits_to_json(&pol, p);
        ns_rates_to_json(&pol, s->cfg->cluster_name, p);
        ns_pol_objects_to_json(&pol, p);
        json_t *qm = json_object_get(p, "backlog_quota_map");
        for (int i = 0; i < NS_QUOTA_TYPES; i++)
            if (pol.quota[i].set)
                json_object_set_new(qm, ns_quota_type_name((enum ns_quota_type)i),
                                    ns_backlog_quota_json(&pol.quota[i]));
    }
    return p;
}

/* The namespace's limits and dispatch rates onto one topic (those not set: back to the
 * broker's keys). */
static void admin_res_apply_limits(struct topic *t, const struct ns_policies *p)
{
    static const enum topic_limit to_topic[NS_LIMITS] = {
        [NS_LIMIT_PRODUCERS_PER_TOPIC] = TOPIC_LIMIT_PRODUCERS,
        [NS_LIMIT_CONSUMERS_PER_TOPIC] = TOPIC_LIMIT_CONSUMERS,
        [NS_LIMIT_CONSUMERS_PER_SUB] = TOPIC_LIMIT_CONSUMERS_PER_SUB,
        [NS_LIMIT_SUBSCRIPTIONS_PER_TOPIC] = TOPIC_LIMIT_SUBSCRIPTIONS,
        [NS_LIMIT_UNACKED_PER_CONSUMER] = TOPIC_LIMIT_UNACKED_PER_CONSUMER,
        [NS_LIMIT_UNACKED_PER_SUB] = TOPIC_LIMIT_UNACKED_PER_SUB};
    for (int i = 0; i < NS_LIMIT_TOPICS; i++) /* maxTopicsPerNamespace is the namespace's */
        topic_set_limit(t, to_topic[i], p->has_limit[i] ? p->limit[i] : -1);
    for (int i = 0; i < NS_RATES; i++) {
        const struct ns_dispatch_rate *d = &p->rate[i];
        struct topic_dispatch_rate tr = {d->msgs, d->bytes, d->period_secs};
        if (i == NS_RATE_PUBLISH)
            topic_set_publish_rate(t, d->set ? &tr : NULL);
        else
            topic_set_dispatch_rate(t, i == NS_RATE_TOPIC ? TOPIC_RATE_TOPIC : TOPIC_RATE_SUB,
                                    d->set ? &tr : NULL);
    }
}

/* Apply the namespace's retention policy to one topic's managed ledger; without one, reset
 * it to the broker's defaults when reset (a topic just loaded has them already). */
static void admin_res_apply_retention_to(const struct admin_env *s, struct topic *t, bool reset)
{
    struct topic_name tn;
    char *ns = admin_topic_ns(t, &tn);
    if (!ns)
        return;
    struct ns_policies p;
    struct ml_ledger *ml = topic_ml(t);
    if (ns_namespace_policies_get(s->ns, ns, &p) == 0) {
        if (ml && p.has_retention)
            ml_set_retention(ml, p.retention_time_minutes, p.retention_size_mb);
        else if (ml && reset)
            ml_reset_retention(ml);
        if (p.has_ttl)
            topic_set_message_ttl(t, p.ttl_secs);
        else if (reset)
            topic_reset_message_ttl(t);
        topic_set_deduplication(t, p.has_dedup ? p.dedup_enabled : -1);
        topic_set_compaction_threshold(t, p.has_compaction_threshold ? p.compaction_threshold : -1);
        admin_res_apply_limits(t, &p);
        struct topic_inactive_policy ip = {p.inactive.delete_while_inactive, p.inactive.caught_up,
                                           p.inactive.max_secs * 1000};
        topic_set_inactive_policy(t, p.inactive.set ? &ip : NULL);
        topic_set_delayed_delivery(t, p.delayed.set ? p.delayed.active : -1, p.delayed.tick_ms);
        /* destination_storage and message_age, each with its own policy */
        static const enum topic_quota_type types[NS_QUOTA_TYPES] = {
            [NS_QUOTA_STORAGE] = TOPIC_QUOTA_STORAGE, [NS_QUOTA_AGE] = TOPIC_QUOTA_AGE};
        for (int i = 0; i < NS_QUOTA_TYPES; i++) {
            const struct ns_backlog_quota *q = &p.quota[i];
            if (q->set) {
                struct topic_backlog_quota tq = {
                    .set = true,
                    .limit_bytes = q->limit_size,
                    .limit_secs = q->limit_time,
                    .policy = q->policy == NS_QUOTA_EXCEPTION  ? TOPIC_QUOTA_EXCEPTION
                              : q->policy == NS_QUOTA_EVICTION ? TOPIC_QUOTA_EVICTION
                                                               : TOPIC_QUOTA_HOLD};
                topic_set_backlog_quota(t, types[i], &tq);
            } else if (reset) {
                topic_reset_backlog_quota(t, types[i]);
            }
        }
    }
    mg_free(ns);
    topic_name_fini(&tn);
}

void admin_topic_loaded(void *arg, struct topic *t)
{
    struct admin *a = arg;
    admin_res_apply_retention_to(a->env, t, false);
    ns_topic_policies_track(a->env->ns, t); /* its TopicPolicies, watched */
}

void admin_apply_retention(struct admin *a, const char *tenant_ns)
{
    char *prefix = mg_asprintf("persistent://%s/", tenant_ns);
    size_t plen = strlen(prefix);
    size_t pos = 0;
    struct topic *t;
    while ((t = topic_next(a->env->topics, &pos)))
        if (strncmp(topic_full_name(t), prefix, plen) == 0 &&
            !strchr(topic_full_name(t) + plen, '/'))
            admin_res_apply_retention_to(a->env, t, true);
    mg_free(prefix);
}

void admin_policies_changed(void *arg, const char *tenant_ns)
{
    struct admin *a = arg;
    admin_apply_retention(a, tenant_ns);
    if (a->env->policies_changed)
        a->env->policies_changed(a->env->data, tenant_ns);
}

/* Pulsar's checkBacklogQuota: a retention policy that keeps something must keep more than
 * the destination_storage quota holds back (size in bytes, time in seconds). */
static bool admin_res_quota_fits(const struct ns_backlog_quota *q, bool has_ret, int64_t tm,
                                 int64_t mb)
{
    if (!has_ret || (tm <= 0 && mb <= 0) || !q->set)
        return true; /* no quota set: the broker's default (-1, none) */
    if (mb > 0 && q->limit_size >= mb * 1024 * 1024)
        return false;
    if (tm > 0 && q->limit_time >= tm * 60)
        return false;
    return true;
}

/* Retention change stored: apply it, then 204. */
struct retention_op {
    struct admin *a;
    struct admin_call *call;
    char *ns; /* owned */
};

static void admin_res_retention_done(void *data, int status)
{
    struct retention_op *op = data;
    if (status == 0 && op->call->a)
        admin_apply_retention(op->a, op->ns);
    admin_reply_done(op->call, status);
    mg_free(op->ns);
    mg_free(op);
}

void admin_h_retention_get(struct admin_req *r)
{
    int64_t tm = 0, mb = 0;
    if (ns_namespace_retention_get(r->a->env->ns, r->tenant_ns, &tm, &mb) != 1) {
        admin_reply_no_content(r->call); /* never set */
        return;
    }
    admin_reply_json(r->call, 200,
                     json_pack("{s:I,s:I}", "retentionTimeInMinutes", (json_int_t)tm,
                               "retentionSizeInMB", (json_int_t)mb));
}

/* Store the policy (or remove it), then apply it to the namespace's loaded topics: 204. */
static void admin_res_retention_store(struct admin_req *r, bool remove, int64_t tm, int64_t mb)
{
    struct retention_op *op = mg_calloc(1, sizeof *op);
    op->a = r->a;
    op->call = r->call;
    op->ns = mg_strdup(r->tenant_ns);
    int rc = ns_namespace_retention_set(r->a->env->ns, r->tenant_ns, remove, tm, mb,
                                        admin_res_retention_done, op);
    if (rc < 0) {
        mg_free(op->ns);
        mg_free(op);
        admin_reply_error(r->call, rc == -MG_ENOTFOUND ? 404 : 500,
                          rc == -MG_ENOTFOUND ? "Namespace does not exist" : mg_strerror(rc));
    }
}

/* POST: {"retentionTimeInMinutes", "retentionSizeInMB"}, each >= -1, both 0 or neither. */
void admin_h_retention_set(struct admin_req *r)
{
    json_t *j = r->body;
    if (r->body_bad || !json_is_object(j)) {
        admin_reply_error(r->call, 400,
                          "Invalid retention policy: a JSON object "
                          "with retentionTimeInMinutes and "
                          "retentionSizeInMB is required");
        return;
    }
    json_t *jt = json_object_get(j, "retentionTimeInMinutes");
    json_t *js = json_object_get(j, "retentionSizeInMB");
    bool types_ok = (!jt || json_is_integer(jt)) && (!js || json_is_integer(js));
    int64_t tm = json_is_integer(jt) ? json_integer_value(jt) : 0;
    int64_t mb = json_is_integer(js) ? json_integer_value(js) : 0;
    if (!types_ok) {
        admin_reply_error(r->call, 400, "Invalid retention policy: values must be integers");
        return;
    }
    if (tm < -1 || mb < -1 || ((tm == 0) != (mb == 0))) {
        admin_reply_errorf(r->call, 400,
                           "Invalid retention policy: retentionTimeInMinutes=%" PRId64
                           ", retentionSizeInMB=%" PRId64 " (each >= -1, both 0 or neither 0)",
                           tm, mb);
        return;
    }
    struct ns_policies p;
    if (ns_namespace_policies_get(r->a->env->ns, r->tenant_ns, &p) == 0 &&
        !admin_res_quota_fits(&p.quota[NS_QUOTA_STORAGE], true, tm, mb)) {
        admin_reply_error(r->call, 412,
                          "Retention Quota must exceed configured backlog quota for namespace.");
        return;
    }
    admin_res_retention_store(r, false, tm, mb);
}

void admin_h_retention_remove(struct admin_req *r)
{
    admin_res_retention_store(r, true, 0, 0);
}

/* ---- message TTL and backlog quotas (Policies.message_ttl_in_seconds, backlog_quota_map) */

/* Store p for the request's namespace, apply it to the loaded topics, then 204. */
void admin_res_policies_store(struct admin_req *r, const struct ns_policies *p)
{
    struct retention_op *op = mg_calloc(1, sizeof *op);
    op->a = r->a;
    op->call = r->call;
    op->ns = mg_strdup(r->tenant_ns);
    int rc =
        ns_namespace_policies_set(r->a->env->ns, r->tenant_ns, p, admin_res_retention_done, op);
    if (rc < 0) {
        mg_free(op->ns);
        mg_free(op);
        admin_reply_error(r->call, rc == -MG_ENOTFOUND ? 404 : 500,
                          rc == -MG_ENOTFOUND ? "Namespace does not exist" : mg_strerror(rc));
    }
}

/* The request's namespace policies, or false once answered 404. */
bool admin_res_policies(struct admin_req *r, struct ns_policies *p)
{
    if (ns_namespace_policies_get(r->a->env->ns, r->tenant_ns, p) == 0)
        return true;
    admin_reply_error(r->call, 404, "Namespace does not exist");
    return false;
}

/* A namespace policy that is one optional value, found in struct ns_policies at has_off
 * (bool: set or not) and val_off (an int64_t in [min, max], or a bool): messageTTL (Policies.
 * message_ttl_in_seconds), deduplication (Policies.deduplicationEnabled). */
struct admin_policy_field {
    size_t has_off, val_off;
    bool boolean;
    int64_t min, max;
    const char *bad_body;  /* 400: not the JSON type */
    const char *bad_value; /* 412: out of [min, max] */
};

static const struct admin_policy_field admin_ttl_field = {
    offsetof(struct ns_policies, has_ttl),
    offsetof(struct ns_policies, ttl_secs),
    false,
    0,
    INT32_MAX,
    "Invalid message TTL: an integer body is required",
    "Invalid value for message TTL"};

static const struct admin_policy_field admin_dedup_field = {
    offsetof(struct ns_policies, has_dedup),
    offsetof(struct ns_policies, dedup_enabled),
    true,
    0,
    1,
    "Invalid deduplication setting: true or false is required",
    NULL};

static const struct admin_policy_field admin_compaction_field = {
    offsetof(struct ns_policies, has_compaction_threshold),
    offsetof(struct ns_policies, compaction_threshold),
    false,
    0,
    INT64_MAX,
    "Invalid compaction threshold: an integer body is required",
    "compactionThreshold must be 0 or more"};

/* GET: the value, or 204 when never set (Pulsar's null: the broker's default applies);
 * POST (PUT for compactionThreshold): a bare JSON value of the field's type; DELETE: back to
 * not set. */
static void admin_res_field(struct admin_req *r, const struct admin_policy_field *f)
{
    const json_t *v = NULL;
    if (r->method == EVHTTP_REQ_POST || r->method == EVHTTP_REQ_PUT) {
        v = r->body;
        if (r->body_bad || !(f->boolean ? json_is_boolean(v) : json_is_integer(v))) {
            admin_reply_error(r->call, 400, f->bad_body);
            return;
        }
        if (!f->boolean && (json_integer_value(v) < f->min || json_integer_value(v) > f->max)) {
            admin_reply_error(r->call, 412, f->bad_value);
            return;
        }
    }
    struct ns_policies p;
    if (!admin_res_policies(r, &p))
        return;
    bool *has = (bool *)((char *)&p + f->has_off);
    void *val = (char *)&p + f->val_off;
    if (r->method == EVHTTP_REQ_GET) {
        if (!*has)
            admin_reply_no_content(r->call);
        else
            admin_reply_json(r->call, 200,
                             f->boolean ? json_boolean(*(bool *)val)
                                        : json_integer((json_int_t) * (int64_t *)val));
        return;
    }
    *has = v != NULL;
    if (f->boolean)
        *(bool *)val = v && json_is_true(v);
    else
        *(int64_t *)val = v ? json_integer_value(v) : 0;
    admin_res_policies_store(r, &p);
}

/* .../messageTTL: the seconds, >= 0 (0 = no TTL for the namespace). */
void admin_h_ttl(struct admin_req *r)
{
    admin_res_field(r, &admin_ttl_field);
}

/* .../deduplication: true or false (unset: brokerDeduplicationEnabled applies). */
void admin_h_dedup(struct admin_req *r)
{
    admin_res_field(r, &admin_dedup_field);
}

/* .../compactionThreshold: bytes, >= 0 (0 = no automatic compaction for the namespace;
 * unset: brokerServiceCompactionThresholdInBytes applies). */
void admin_h_compaction_threshold(struct admin_req *r)
{
    admin_res_field(r, &admin_compaction_field);
}

/* .../maxProducersPerTopic, maxConsumersPerTopic, maxConsumersPerSubscription,
 * maxSubscriptionsPerTopic, maxUnackedMessagesPerConsumer, maxUnackedMessagesPerSubscription,
 * maxTopicsPerNamespace (the path's last segment names it): an integer >= 0 (0 = no limit), as
 * Pulsar's NamespacesBase (412 "<name> must be 0 or more"). */
static void admin_res_limit(struct admin_req *r, int l)
{
    char bad_body[96], bad_value[96];
    snprintf(bad_body, sizeof bad_body, "Invalid %s: an integer body is required",
             ns_limit_path((enum ns_limit)l));
    snprintf(bad_value, sizeof bad_value, "%s must be 0 or more", ns_limit_path((enum ns_limit)l));
    const struct admin_policy_field f = {
        offsetof(struct ns_policies, has_limit) + (size_t)l * sizeof(bool),
        offsetof(struct ns_policies, limit) + (size_t)l * sizeof(int64_t),
        false,
        0,
        INT32_MAX,
        bad_body,
        bad_value};
    admin_res_field(r, &f);
}

/* .../dispatchRate (Policies.topicDispatchRate), .../subscriptionDispatchRate and
 * .../publishRate (Policies.publishMaxMessageRate), this cluster's entry: GET it or 204 while
 * unset; POST a DispatchRate / PublishRate (400 when malformed; a rate <= 0 is no limit, as
 * Pulsar's -1); DELETE back to the broker's keys. */
static void admin_res_rate(struct admin_req *r, int which)
{
    struct ns_dispatch_rate d = {0};
    if (r->method == EVHTTP_REQ_POST) {
        const char *why;
        if (r->body_bad || ns_dispatch_rate_parse((enum ns_rate)which, r->body, &d, &why) < 0) {
            admin_reply_error(r->call, 400,
                              r->body_bad ? "Invalid rate: a JSON object is required" : why);
            return;
        }
    }
    struct ns_policies p;
    if (!admin_res_policies(r, &p))
        return;
    if (r->method == EVHTTP_REQ_GET) {
        if (p.rate[which].set)
            admin_reply_json(r->call, 200,
                             ns_dispatch_rate_json((enum ns_rate)which, &p.rate[which]));
        else
            admin_reply_no_content(r->call);
        return;
    }
    p.rate[which] = d; /* DELETE: not set */
    admin_res_policies_store(r, &p);
}

void admin_h_ns_setting(struct admin_req *r)
{
    const char *name = r->seg[r->nseg - 1];
    int limit = ns_limit_by_path(name), rate = ns_rate_by_path(name);
    if (limit < 0 && rate < 0)
        admin_h_not_found(r);
    else if (r->method != EVHTTP_REQ_GET && r->method != EVHTTP_REQ_POST &&
             r->method != EVHTTP_REQ_DELETE)
        admin_h_bad_method(r);
    else if (limit >= 0)
        admin_res_limit(r, limit);
    else
        admin_res_rate(r, rate);
}

/* GET .../backlogQuotaMap: {type: BacklogQuota} of the quotas set ({} when none). */
void admin_h_backlog_quota_map(struct admin_req *r)
{
    struct ns_policies p;
    if (!admin_res_policies(r, &p))
        return;
    json_t *m = json_object();
    for (int i = 0; i < NS_QUOTA_TYPES; i++)
        if (p.quota[i].set)
            json_object_set_new(m, ns_quota_type_name((enum ns_quota_type)i),
                                ns_backlog_quota_json(&p.quota[i]));
    admin_reply_json(r->call, 200, m);
}

/* ?backlogQuotaType= (destination_storage when absent), or -1 once answered 400. */
static int admin_res_quota_type(struct admin_req *r)
{
    const char *q = evhttp_find_header(&r->query, "backlogQuotaType");
    int type = q && *q ? ns_quota_type_parse(q) : (int)NS_QUOTA_STORAGE;
    if (type < 0)
        admin_reply_errorf(r->call, 400, "Invalid backlogQuotaType %s", q);
    return type;
}

/* POST .../backlogQuota[?backlogQuotaType=]: a BacklogQuota ({"limitSize", "limitTime",
 * "policy"}; "limit" = limitSize); 412 when a retention policy would keep less. */
void admin_h_backlog_quota_set(struct admin_req *r)
{
    int type = admin_res_quota_type(r);
    if (type < 0)
        return;
    struct ns_backlog_quota q;
    if (r->body_bad || ns_backlog_quota_parse(r->body, &q) < 0) {
        admin_reply_error(r->call, 400,
                          "Invalid backlog quota: a JSON object with limitSize and limitTime "
                          "(integers >= -1) and policy (producer_request_hold, "
                          "producer_exception or consumer_backlog_eviction) is required");
        return;
    }
    struct ns_policies p;
    if (!admin_res_policies(r, &p))
        return;
    if (type == NS_QUOTA_STORAGE &&
        !admin_res_quota_fits(&q, p.has_retention, p.retention_time_minutes, p.retention_size_mb)) {
        admin_reply_error(r->call, 412,
                          "Backlog Quota exceeds configured retention quota for namespace. "
                          "Please increase retention quota and retry");
        return;
    }
    p.quota[type] = q;
    admin_res_policies_store(r, &p);
}

void admin_h_backlog_quota_remove(struct admin_req *r)
{
    int type = admin_res_quota_type(r);
    if (type < 0)
        return;
    struct ns_policies p;
    if (!admin_res_policies(r, &p))
        return;
    memset(&p.quota[type], 0, sizeof p.quota[type]);
    admin_res_policies_store(r, &p);
}

/* A namespace policy that is one JSON object, a struct in struct ns_policies at off (of size
 * bytes) whose first member is its bool set: its JSON and its parser (0, or -MG_EINVAL /
 * -MG_ENOTALLOWED with the reason). */
struct admin_policy_object {
    size_t off, size;
    json_t *(*to_json)(const void *obj);
    int (*parse)(const struct admin_req *r, void *obj, const char **why);
};

static json_t *admin_auto_topic_json(const void *o)
{
    return ns_auto_topic_json(o);
}
static int admin_auto_topic_parse(const struct admin_req *r, void *o, const char **why)
{
    return ns_auto_topic_parse(r->body, r->a->env->cfg->max_num_partitions_per_partitioned_topic, o,
                               why);
}
static json_t *admin_auto_sub_json(const void *o)
{
    return ns_auto_sub_json(o);
}
static int admin_auto_sub_parse(const struct admin_req *r, void *o, const char **why)
{
    return ns_auto_sub_parse(r->body, o, why);
}
static json_t *admin_inactive_json(const void *o)
{
    return ns_inactive_json(o);
}
static int admin_inactive_parse(const struct admin_req *r, void *o, const char **why)
{
    return ns_inactive_parse(r->body, o, why);
}
static json_t *admin_delayed_json(const void *o)
{
    return ns_delayed_json(o);
}
static int admin_delayed_parse(const struct admin_req *r, void *o, const char **why)
{
    return ns_delayed_parse(r->body, o, why);
}

#define ADMIN_POLICY_OBJECT(member, name)                                                          \
    {                                                                                              \
        offsetof(struct ns_policies, member), sizeof(((struct ns_policies *)0)->member),           \
            admin_##name##_json, admin_##name##_parse                                              \
    }
static const struct admin_policy_object admin_auto_topic_obj =
    ADMIN_POLICY_OBJECT(auto_topic, auto_topic);
static const struct admin_policy_object admin_auto_sub_obj =
    ADMIN_POLICY_OBJECT(auto_sub, auto_sub);
static const struct admin_policy_object admin_inactive_obj =
    ADMIN_POLICY_OBJECT(inactive, inactive);
static const struct admin_policy_object admin_delayed_obj = ADMIN_POLICY_OBJECT(delayed, delayed);
#undef ADMIN_POLICY_OBJECT

/* GET the object (204 when not set: the broker's keys apply), POST one (400/406 with the
 * reason when invalid), DELETE it; 405 for another method. */
static void admin_res_object(struct admin_req *r, const struct admin_policy_object *o)
{
    if (r->method != EVHTTP_REQ_GET && r->method != EVHTTP_REQ_POST &&
        r->method != EVHTTP_REQ_DELETE) {
        admin_h_bad_method(r);
        return;
    }
    struct ns_policies p;
    if (!admin_res_policies(r, &p))
        return;
    void *obj = (char *)&p + o->off;
    if (r->method == EVHTTP_REQ_GET) {
        if (!*(bool *)obj)
            admin_reply_no_content(r->call);
        else
            admin_reply_json(r->call, 200, o->to_json(obj));
        return;
    }
    if (r->method == EVHTTP_REQ_POST) {
        const char *why = "Invalid request body";
        int rc = r->body_bad ? -MG_EINVAL : o->parse(r, obj, &why);
        if (rc < 0) {
            admin_reply_error(r->call, rc == -MG_ENOTALLOWED ? 406 : 400, why);
            return;
        }
    } else {
        memset(obj, 0, o->size);
    }
    admin_res_policies_store(r, &p);
}

/* .../autoTopicCreation (Policies.autoTopicCreationOverride) and .../autoSubscriptionCreation
 * (autoSubscriptionCreationOverride). */
void admin_h_auto_topic(struct admin_req *r)
{
    admin_res_object(r, &admin_auto_topic_obj);
}

void admin_h_auto_sub(struct admin_req *r)
{
    admin_res_object(r, &admin_auto_sub_obj);
}

/* .../inactiveTopicPolicies (Policies.inactive_topic_policies, InactiveTopicPolicies) and
 * .../delayedDelivery (delayed_delivery_policies, DelayedDeliveryPolicies): applied to the
 * namespace's loaded topics once stored. */
void admin_h_inactive_policies(struct admin_req *r)
{
    admin_res_object(r, &admin_inactive_obj);
}

void admin_h_delayed_delivery(struct admin_req *r)
{
    admin_res_object(r, &admin_delayed_obj);
}

/* GET .../bundles */
void admin_h_bundles(struct admin_req *r)
{
    admin_reply_json(r->call, 200,
                     ns_bundles_json(ns_namespace_bundles(r->a->env->ns, r->tenant_ns)));
}

/* Is range one of the namespace's bundles? */
static bool admin_res_valid_bundle(const struct admin_env *s, const char *ns, const char *range)
{
    int n = ns_namespace_bundles(s->ns, ns);
    char buf[NS_BUNDLE_NAME_LEN];
    for (int i = 0; i < n; i++) {
        ns_bundle_name(n, i, buf);
        if (strcmp(buf, range) == 0)
            return true;
    }
    return false;
}

struct bundle_op {
    struct admin_call *call;               /* until replied */
    char *path;                            /* owned: the request path, for a redirect */
    void (*unowned)(struct admin_call *c); /* the answer when nobody owns the bundle */
};

/* Who owns a bundle we do not: redirect to it (307), or op->unowned when nobody does. */
static void admin_res_bundle_owner_known(void *data, int status, const struct ns_owner *o)
{
    struct bundle_op *op = data;
    if (admin_call_ended(op->call, status)) {
        /* answered, or nothing to answer */
    } else if (o->kind == NS_OWNER_OTHER && o->web_url) {
        char *loc =
            mg_asprintf("%s%s", admin_call_web_url(op->call, o->web_url, o->web_url_tls), op->path);
        admin_reply_redirect(op->call, loc);
        mg_free(loc);
    } else {
        op->unowned(op->call);
    }
    mg_free(op->path);
    mg_free(op);
}

bool admin_bundle_here(struct admin_req *r, void (*unowned)(struct admin_call *c))
{
    const struct admin_env *s = r->a->env;
    const char *ns = r->tenant_ns, *range = r->p.bundle;
    if (!admin_res_valid_bundle(s, ns, range)) {
        admin_reply_errorf(r->call, 412, "Invalid bundle range %s", range);
        return false;
    }
    if (ns_bundle_owned(s->ns, ns, range))
        return true;
    struct bundle_op *op = mg_calloc(1, sizeof *op);
    op->call = r->call;
    op->path = mg_strdup(evhttp_request_get_uri(r->req));
    op->unowned = unowned;
    if (ns_bundle_owner(s->ns, ns, range, admin_res_bundle_owner_known, op) < 0) {
        mg_free(op->path);
        mg_free(op);
        unowned(r->call);
    }
    return false;
}

/* PUT|POST .../{bundle}/unload: unload here when owned here, else redirect to the owner; a
 * no-op (204) when nobody owns it. */
void admin_h_bundle_unload(struct admin_req *r)
{
    if (!admin_bundle_here(r, admin_reply_no_content))
        return;
    if (ns_bundle_unload(r->a->env->ns, r->tenant_ns, r->p.bundle, admin_reply_done, r->call) < 0)
        admin_reply_no_content(r->call);
}

/* PUT .../unload: every bundle of the namespace, each by its owner (Pulsar unloads them one
 * by one through its admin API): a sub-request per bundle, which unloads a bundle owned
 * here, redirects to the owner of one owned elsewhere, and is a no-op for an unowned one. */
static void admin_res_unload_fanned(struct admin_call *c, void *arg, struct admin_sub *subs, int n)
{
    (void)arg;
    int bad = admin_fan_first_error(subs, n, 0);
    if (bad >= 0) {
        admin_fan_reply_error(c, &subs[bad]);
        return;
    }
    admin_reply_no_content(c);
}

void admin_h_namespace_unload(struct admin_req *r)
{
    int n = ns_namespace_bundles(r->a->env->ns, r->tenant_ns);
    char **paths = mg_calloc((size_t)n + 1, sizeof *paths);
    char *t = evhttp_uriencode(r->p.tenant, -1, 0), *local = evhttp_uriencode(r->p.ns, -1, 0);
    char range[NS_BUNDLE_NAME_LEN];
    for (int i = 0; i < n; i++) {
        ns_bundle_name(n, i, range);
        paths[i] = mg_asprintf("/admin/v2/namespaces/%s/%s/%s/unload", t, local, range);
    }
    free(t);
    free(local);
    admin_fan(r->call, EVHTTP_REQ_PUT, paths, n, NULL, admin_res_unload_fanned, NULL, NULL);
    mg_free(paths);
}

/* DELETE namespace: refused while any broker stores or serves a topic in it. */
struct ns_delete_op {
    struct admin_call *call;
    char *ns; /* owned */
};

static void admin_res_ns_delete_listed(void *data, int status, char **names, int n)
{
    (void)names;
    struct ns_delete_op *op = data;
    struct admin_call *c = op->call;
    if (admin_call_gone(c)) {
    } else if (status < 0) {
        admin_reply_error(c, 500, mg_strerror(status));
    } else if (n > 0) {
        admin_reply_error(c, 409, "Cannot delete non empty namespace");
    } else {
        int rc = ns_namespace_delete(c->a->env->ns, op->ns, admin_reply_done, c);
        if (rc == -MG_ENOTFOUND)
            admin_reply_errorf(c, 404, "Namespace %s does not exist.", op->ns);
        else if (rc == -MG_EBUSY)
            admin_reply_error(c, 409, "Cannot delete non empty namespace");
        else if (rc < 0)
            admin_reply_error(c, 500, mg_strerror(rc));
    }
    mg_free(op->ns);
    mg_free(op);
}

#define MAX_BUNDLES 1024 /* bundles of one namespace (Pulsar allows up to 2^32) */

/* Check a Policies body of a namespace creation (NULL: none). Returns 0 with *bundles (0:
 * the default), or the status to answer: 400 with *reason NULL when the body does not map
 * onto Pulsar's Policies (Jersey answers that one, without a reason), else with *reason
 * Pulsar's (400 bad bundles, 403 a replication cluster the tenant may not use). */
static int admin_res_check_policies(const struct admin_env *s, const char *tenant, json_t *j,
                                    int *bundles, char *why, size_t why_len, const char **reason)
{
    *bundles = 0;
    *reason = NULL;
    if (!j || json_is_null(j))
        return 0;
    if (!json_is_object(j))
        return 400;
    json_t *b = json_object_get(j, "bundles");
    json_t *clusters = json_object_get(j, "replication_clusters");
    json_t *retention = json_object_get(j, "retention_policies");
    if ((b && !json_is_null(b) && !json_is_object(b)) ||
        (clusters && !json_is_null(clusters) && !json_is_array(clusters)) ||
        (retention && !json_is_null(retention) && !json_is_object(retention)))
        return 400;
    for (size_t i = 0; i < json_array_size(clusters); i++) {
        const char *c = json_string_value(json_array_get(clusters, i));
        if (!c)
            return 400;
        if (strcmp(c, s->cfg->cluster_name) != 0) {
            snprintf(why, why_len,
                     "Cluster [%.40s] is not in the list of allowed clusters list for tenant "
                     "[%.60s]",
                     c, tenant);
            *reason = why;
            return 403;
        }
    }
    json_t *nb = json_object_get(b, "numBundles");
    json_t *bounds = json_object_get(b, "boundaries");
    if ((nb && !json_is_null(nb) && !json_is_integer(nb)) ||
        (bounds && !json_is_null(bounds) && !json_is_array(bounds)))
        return 400;
    json_int_t n = json_is_integer(nb) ? json_integer_value(nb) : 0;
    size_t nbounds = json_array_size(bounds);
    if (n > 0 && nbounds > 0) {
        /* Pulsar takes the boundaries; here they must be the n equal bundles. */
        for (size_t i = 0; i < nbounds; i++)
            if (!json_is_string(json_array_get(bounds, i)))
                return 400;
        const char *first = json_string_value(json_array_get(bounds, 0));
        const char *last = json_string_value(json_array_get(bounds, nbounds - 1));
        if (strcmp(first, "0x00000000") != 0 || strcmp(last, "0xffffffff") != 0) {
            snprintf(why, why_len,
                     "Input bundles do not cover the whole hash range. first:%.12s, last:%.12s",
                     first, last);
            *reason = why;
            return 400;
        }
        n = (json_int_t)nbounds - 1;
        bool equal = n >= 1 && n <= MAX_BUNDLES;
        char buf[24];
        for (size_t i = 0; equal && i + 1 < nbounds; i++) {
            snprintf(buf, sizeof buf, "0x%08" PRIx32, ns_bundle_lower((int)n, (int)i));
            equal = strcmp(buf, json_string_value(json_array_get(bounds, i))) == 0;
        }
        if (!equal) {
            *reason = "Only equal bundle boundaries are supported (give numBundles alone)";
            return 400;
        }
    }
    if (n > MAX_BUNDLES) {
        *reason = "Invalid number of bundles. Number of bundles has to be in the range of "
                  "(0, 1024].";
        return 400;
    }
    *bundles = n > 0 ? (int)n : 0; /* Pulsar: numBundles <= 0 means the default */
    return 0;
}

/* GET /admin/v2/namespaces/{tenant}: the tenant's namespaces, "t/ns" */
void admin_h_namespaces(struct admin_req *r)
{
    const struct admin_env *s = r->a->env;
    const char *t = r->p.tenant;
    if (!admin_valid_name(t)) {
        admin_reply_error(r->call, 412, "Tenant name is not valid");
        return;
    }
    if (admin_res_tenant_missing(r, t))
        return;
    if (!ns_tenant_exists(s->ns, t)) {
        admin_reply_error(r->call, 404, "Tenant not found");
        return;
    }
    json_t *arr = json_array();
    size_t pos = 0, tl = strlen(t);
    const char *ns;
    while ((ns = ns_namespace_next(s->ns, &pos)))
        if (strncmp(ns, t, tl) == 0 && ns[tl] == '/')
            json_array_append_new(arr, json_string(ns));
    admin_reply_json(r->call, 200, arr);
}

/* PUT: checked in its own order: the body, the names, the tenant, the policies, whether it
 * exists. */
void admin_h_namespace_create(struct admin_req *r)
{
    const struct admin_env *s = r->a->env;
    const char *t = r->p.tenant;
    int bundles = 0, status = r->body_bad ? 400 : 0;
    const char *reason = NULL;
    char why[192];
    if (!r->body_bad)
        status = admin_res_check_policies(s, t, r->body, &bundles, why, sizeof why, &reason);
    if (status == 400 && !reason) { /* does not map onto Policies: Jersey's answer */
        admin_reply_raw(r->call, 400, "text/plain", "Bad Request");
        return;
    }
    if (!admin_valid_name(t) || !admin_valid_name(r->p.ns)) {
        admin_reply_error(r->call, 412, "Namespace name is not valid");
        return;
    }
    char *ns = mg_asprintf("%s/%s", t, r->p.ns);
    if (admin_res_tenant_missing(r, t) ||
        (!ns_namespace_exists(s->ns, ns) && admin_refresh_namespace(r, ns))) {
        mg_free(ns); /* read from the store first: created elsewhere? */
        return;
    }
    int rc = 0;
    if (!ns_tenant_exists(s->ns, t))
        admin_reply_error(r->call, 404, "Tenant does not exist");
    else if (status)
        admin_reply_errorf(r->call, status, "%s", reason);
    else
        rc = ns_namespace_create(
            s->ns, ns, bundles > 0 ? bundles : s->cfg->default_number_of_namespace_bundles,
            admin_reply_done, r->call);
    mg_free(ns);
    if (rc == -MG_ENOTFOUND)
        admin_reply_error(r->call, 404, "Tenant does not exist");
    else if (rc == -MG_EEXIST)
        admin_reply_error(r->call, 409, "Namespace already exists");
    else if (rc < 0)
        admin_reply_error(r->call, 412, "Namespace name is not valid");
}

/* GET: the Policies */
void admin_h_namespace_get(struct admin_req *r)
{
    admin_reply_json(r->call, 200, admin_res_policies_json(r->a->env, r->tenant_ns));
}

/* DELETE: refused while topics exist (stored or loaded by any broker: the store's list). */
void admin_h_namespace_delete(struct admin_req *r)
{
    if (admin_query_flag(r, "force")) {
        admin_reply_error(r->call, 405, "Broker doesn't allow forced deletion of namespaces");
        return;
    }
    struct ns_delete_op *op = mg_calloc(1, sizeof *op);
    op->call = r->call;
    op->ns = mg_strdup(r->tenant_ns);
    if (ns_list_topics(r->a->env->ns, r->tenant_ns, false, admin_res_ns_delete_listed, op) < 0) {
        mg_free(op->ns);
        mg_free(op);
        admin_reply_errorf(r->call, 404, "Namespace %s does not exist.", r->tenant_ns);
    }
}
