/*
 * ns_res.c - cluster resources: tenants, namespaces and partitioned-topic metadata.
 *
 * The metadata store holds them under Pulsar's paths (docs/metadata.md §4):
 *   /admin/clusters/<cluster>                               ClusterData JSON
 *   /admin/policies/<tenant>                                TenantInfo JSON (adminRoles,
 *                                                           allowedClusters)
 *   /admin/policies/<tenant>/<ns>                           Policies JSON (bundles,
 *                                                           retention_policies,
 *                                                           message_ttl_in_seconds,
 *                                                           auth_policies,
 *                                                           backlog_quota_map)
 *   /admin/partitioned-topics/<tenant>/<ns>/persistent/<enc> {"partitions":N}
 * The module keeps a cache. Happy path: at start ns_res_load reads everything (running
 * the loop until done, bounded), creating the cluster, tenants "public" and "pulsar" and
 * namespaces "public/default" and "pulsar/system" on first start; mutations update the
 * cache at once (so a concurrent create of the same name sees it and answers 409) and write
 * through to the store, completing their callback when durable.
 *
 * Failure modes: a store that cannot be read at start fails ns_load. A failed write is
 * logged, the cache entry it changed is put back as it was before (unless a later mutation
 * of the same entry replaced it meanwhile: that one's own outcome decides), and only then
 * is the caller's callback told: the cache never claims what the store does not hold, so a
 * retry creates the tenant again instead of answering "already exists". A write whose
 * outcome is unknown (ZooKeeper connection lost in flight) is rolled back the same way; the
 * retry overwrites. Without a metadata store (managedLedgerStore=memory tests) the cache is
 * all there is.
 *
 * With a shared (ZooKeeper) store the cache is reloaded every few seconds in the
 * background, so what other brokers create is seen here (ns_res_refresh_start).
 * Other brokers' changes are seen by the periodic refresh below, and on demand:
 * ns_tenant_sync / ns_namespace_sync read one tenant or namespace (the admin server asks
 * before it answers 404 for one it does not know).
 */
#include "config/cfg.h"
#include "meta/meta.h"
#include "ns/ns.h"
#include "ns/ns_int.h"
#include "topic/topic.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"
#include "util/loop.h"

#include <event2/event.h>
#include <event2/http.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define RES_LOAD_TIMEOUT_MS 30000

/* One step of the load walk: list children of path (depth says what they are) or read a
 * partitioned topic's value. */
enum res_step {
    RES_TENANTS = 0,   /* children of /admin/policies: tenants */
    RES_TENANT_VALUE,  /* value of /admin/policies/<t>: adminRoles */
    RES_NAMESPACES,    /* children of /admin/policies/<t>: namespaces */
    RES_NS_VALUE,      /* value of /admin/policies/<t>/<ns>: bundles */
    RES_PT_TENANTS,    /* children of /admin/partitioned-topics */
    RES_PT_NAMESPACES, /* children of .../<t> */
    RES_PT_DOMAINS,    /* children of .../<t>/<ns>: "persistent" */
    RES_PT_TOPICS,     /* children of .../<t>/<ns>/persistent */
    RES_PT_VALUE,      /* value of a partitioned topic */
};

/* What the walk reads the children a listing step found as. */
static const enum res_step ns_res_children_step[] = {
    [RES_TENANTS] = RES_NAMESPACES,       [RES_NAMESPACES] = RES_NS_VALUE,
    [RES_PT_TENANTS] = RES_PT_NAMESPACES, [RES_PT_NAMESPACES] = RES_PT_DOMAINS,
    [RES_PT_DOMAINS] = RES_PT_TOPICS,     [RES_PT_TOPICS] = RES_PT_VALUE,
};

/* One read of the load walk (ns_res_load, refresh). */
struct res_load {
    struct ns *s; /* borrowed; NULL once the module is gone (ns_res_fini) */
    enum res_step step;
    char *path;    /* owned */
    ns_done_cb cb; /* a sync (ns_tenant_sync, ns_namespace_sync): its caller; else NULL */
    void *data;    /* of cb */
    uint64_t gen;  /* s->res_gen when the read was sent */
    struct meta_req req;
    LIST_ENTRY(res_load) link; /* in s->res_inflight while s is set */
};

void ns_res_init(struct ns *s)
{
    mg_map_init(&s->tenants);
    mg_map_init(&s->namespaces);
    mg_map_init(&s->partitions);
    mg_map_init(&s->policies);
    mg_map_init(&s->auth);
    mg_map_init(&s->res_gens);
}

/* ---- writes ------------------------------------------------------------------------------ */

/* What a mutation changed in the cache, to put it back if the store write fails. Each
 * cache entry is one key of the store: a tenant, a namespace (bundles and policies share
 * its Policies value) or a partitioned topic. */
enum res_kind {
    RES_K_TENANT = 0,
    RES_K_NAMESPACE,
    RES_K_PARTITIONS,
};

struct res_undo {
    enum res_kind kind;
    char *key;              /* owned */
    bool had;               /* the entry existed before */
    intptr_t value;         /* namespaces, partitioned topics: the value before */
    json_t *roles;          /* tenants: a reference to the adminRoles before (NULL once settled) */
    struct ns_policies pol; /* namespace: its policies before */
    json_t *auth;           /* namespace: a reference to its auth_policies before, or NULL */
    uint64_t gen;           /* this mutation's number for the entry (s->res_gens) */
};

struct res_write {
    struct ns *s; /* borrowed; NULL once the module is gone (ns_res_fini) */
    ns_done_cb cb;
    void *data;
    char *path; /* owned */
    bool is_delete;
    struct res_undo undo;
    bool deferred;         /* never reached the store: later completes it */
    struct mg_timer later; /* with deferred (else zeroed) */
    int sync_status;       /* with deferred: the status to complete with */
    struct meta_req req;
    LIST_ENTRY(res_write) link; /* in s->res_writes while s is set */
};

static struct mg_map *ns_res_cache(struct ns *s, enum res_kind k)
{
    return k == RES_K_TENANT ? &s->tenants : k == RES_K_NAMESPACE ? &s->namespaces : &s->partitions;
}

static char *ns_res_gen_key(enum res_kind k, const char *key)
{
    return mg_asprintf("%d:%s", (int)k, key);
}

/* Record the entry's state before a mutation and number the mutation. */
static void ns_res_snapshot(struct ns *s, enum res_kind k, const char *key, struct res_undo *u)
{
    memset(u, 0, sizeof *u);
    u->kind = k;
    u->key = mg_strdup(key);
    void *v = mg_map_get_str(ns_res_cache(s, k), key);
    u->had = v != NULL;
    u->value = (intptr_t)v;
    if (k == RES_K_TENANT && v)
        u->roles = json_incref(v);
    if (k == RES_K_NAMESPACE) {
        const struct ns_policies *r = mg_map_get_str(&s->policies, key);
        if (r)
            u->pol = *r;
        u->auth = json_incref(mg_map_get_str(&s->auth, key));
    }
    u->gen = ++s->res_gen;
    char *gk = ns_res_gen_key(k, key);
    mg_map_put_str(&s->res_gens, gk, (void *)(uintptr_t)u->gen);
    mg_free(gk);
}

static const char *const ns_limit_names[NS_LIMITS][2] = {
    [NS_LIMIT_PRODUCERS_PER_TOPIC] = {"max_producers_per_topic", "maxProducersPerTopic"},
    [NS_LIMIT_CONSUMERS_PER_TOPIC] = {"max_consumers_per_topic", "maxConsumersPerTopic"},
    [NS_LIMIT_CONSUMERS_PER_SUB] = {"max_consumers_per_subscription",
                                    "maxConsumersPerSubscription"},
    [NS_LIMIT_SUBSCRIPTIONS_PER_TOPIC] = {"max_subscriptions_per_topic",
                                          "maxSubscriptionsPerTopic"},
    [NS_LIMIT_UNACKED_PER_CONSUMER] = {"max_unacked_messages_per_consumer",
                                       "maxUnackedMessagesPerConsumer"},
    [NS_LIMIT_UNACKED_PER_SUB] = {"max_unacked_messages_per_subscription",
                                  "maxUnackedMessagesPerSubscription"},
    [NS_LIMIT_TOPICS] = {"max_topics_per_namespace", "maxTopicsPerNamespace"},
};

/* by enum ns_rate: Policies field, admin path, the message and byte keys */
static const char *const ns_rate_names[NS_RATES][4] = {
    [NS_RATE_TOPIC] = {"topicDispatchRate", "dispatchRate", "dispatchThrottlingRateInMsg",
                       "dispatchThrottlingRateInByte"},
    [NS_RATE_SUB] = {"subscriptionDispatchRate", "subscriptionDispatchRate",
                     "dispatchThrottlingRateInMsg", "dispatchThrottlingRateInByte"},
    [NS_RATE_PUBLISH] = {"publishMaxMessageRate", "publishRate", "publishThrottlingRateInMsg",
                         "publishThrottlingRateInByte"},
};

/* The row of a names table (n rows of `cols` strings) whose column 1 is segment, or -1. */
static int ns_row_by_path(const char *const *table, int cols, int n, const char *segment)
{
    for (int i = 0; i < n; i++)
        if (strcmp(segment, table[i * cols + 1]) == 0)
            return i;
    return -1;
}

int ns_rate_by_path(const char *segment)
{
    return ns_row_by_path(&ns_rate_names[0][0], 4, NS_RATES, segment);
}

json_t *ns_dispatch_rate_json(enum ns_rate r, const struct ns_dispatch_rate *d)
{
    if (r == NS_RATE_PUBLISH)
        return json_pack("{s:I,s:I}", ns_rate_names[r][2], (json_int_t)d->msgs, ns_rate_names[r][3],
                         (json_int_t)d->bytes);
    return json_pack("{s:I,s:I,s:b,s:i}", ns_rate_names[r][2], (json_int_t)d->msgs,
                     ns_rate_names[r][3], (json_int_t)d->bytes, "relativeToPublishRate",
                     d->relative, "ratePeriodInSecond", d->period_secs);
}

int ns_dispatch_rate_parse(enum ns_rate kind, const json_t *j, struct ns_dispatch_rate *out,
                           const char **why)
{
    memset(out, 0, sizeof *out);
    *why = "Invalid rate: a JSON object is required";
    if (!json_is_object(j))
        return -MG_EINVAL;
    const json_t *m = json_object_get(j, ns_rate_names[kind][2]);
    const json_t *b = json_object_get(j, ns_rate_names[kind][3]);
    const json_t *p = kind == NS_RATE_PUBLISH ? NULL : json_object_get(j, "ratePeriodInSecond");
    const json_t *r = kind == NS_RATE_PUBLISH ? NULL : json_object_get(j, "relativeToPublishRate");
    *why = kind == NS_RATE_PUBLISH
               ? "Invalid publish rate: publishThrottlingRateInMsg and publishThrottlingRateInByte "
                 "must be integers, the message rate at most 2147483647"
               : "Invalid dispatch rate: dispatchThrottlingRateInMsg and "
                 "dispatchThrottlingRateInByte must be integers, the message rate at most "
                 "2147483647";
    if ((m && !json_is_integer(m)) || (b && !json_is_integer(b)) ||
        (m && json_integer_value(m) > INT32_MAX))
        return -MG_EINVAL;
    *why = "Invalid dispatch rate: ratePeriodInSecond must be an integer from 1 to 86400";
    if (p && (!json_is_integer(p) || json_integer_value(p) < 1 || json_integer_value(p) > 86400))
        return -MG_EINVAL;
    *why = "Invalid dispatch rate: relativeToPublishRate must be a boolean";
    if (r && !json_is_boolean(r))
        return -MG_EINVAL;
    out->set = true;
    out->msgs = m && json_integer_value(m) > 0 ? json_integer_value(m) : -1;
    out->bytes = b && json_integer_value(b) > 0 ? json_integer_value(b) : -1;
    out->period_secs = p ? (int32_t)json_integer_value(p) : 1;
    out->relative = r && json_is_true(r);
    *why = NULL;
    return 0;
}

void ns_rates_to_json(const struct ns_policies *p, const char *cluster, json_t *j)
{
    for (int i = 0; i < NS_RATES; i++)
        json_object_set_new(
            j, ns_rate_names[i][0],
            p->rate[i].set
                ? json_pack("{s:o}", cluster, ns_dispatch_rate_json((enum ns_rate)i, &p->rate[i]))
                : json_object());
}

const char *ns_limit_path(enum ns_limit l)
{
    return ns_limit_names[l][1];
}

int ns_limit_by_path(const char *segment)
{
    return ns_row_by_path(&ns_limit_names[0][0], 2, NS_LIMITS, segment);
}

static bool ns_res_policies_eq(const struct ns_policies *a, const struct ns_policies *b)
{
    if (!ns_auto_eq(a, b) || !ns_inactive_eq(&a->inactive, &b->inactive) ||
        !ns_delayed_eq(&a->delayed, &b->delayed))
        return false;
    for (int i = 0; i < NS_LIMITS; i++)
        if (a->has_limit[i] != b->has_limit[i] || (a->has_limit[i] && a->limit[i] != b->limit[i]))
            return false;
    for (int i = 0; i < NS_RATES; i++) {
        const struct ns_dispatch_rate *x = &a->rate[i], *y = &b->rate[i];
        if (x->set != y->set ||
            (x->set && (x->msgs != y->msgs || x->bytes != y->bytes ||
                        x->period_secs != y->period_secs || x->relative != y->relative)))
            return false;
    }
    if (a->has_retention != b->has_retention || a->has_ttl != b->has_ttl ||
        (a->has_retention && (a->retention_time_minutes != b->retention_time_minutes ||
                              a->retention_size_mb != b->retention_size_mb)) ||
        (a->has_ttl && a->ttl_secs != b->ttl_secs) ||
        strcmp(a->schema_strategy, b->schema_strategy) != 0 ||
        a->has_auto_update_schema != b->has_auto_update_schema ||
        a->auto_update_schema != b->auto_update_schema || a->has_dedup != b->has_dedup ||
        (a->has_dedup && a->dedup_enabled != b->dedup_enabled) ||
        a->has_compaction_threshold != b->has_compaction_threshold ||
        (a->has_compaction_threshold && a->compaction_threshold != b->compaction_threshold))
        return false;
    for (int i = 0; i < NS_QUOTA_TYPES; i++) {
        const struct ns_backlog_quota *x = &a->quota[i], *y = &b->quota[i];
        if (x->set != y->set ||
            (x->set && (x->limit_size != y->limit_size || x->limit_time != y->limit_time ||
                        x->policy != y->policy)))
            return false;
    }
    return true;
}

static bool ns_res_policies_empty(const struct ns_policies *p)
{
    if (p->auto_topic.set || p->auto_sub.set || p->inactive.set || p->delayed.set)
        return false;
    for (int i = 0; i < NS_LIMITS; i++)
        if (p->has_limit[i])
            return false;
    for (int i = 0; i < NS_RATES; i++)
        if (p->rate[i].set)
            return false;
    return !p->has_retention && !p->has_ttl && !p->quota[NS_QUOTA_STORAGE].set &&
           !p->quota[NS_QUOTA_AGE].set && !p->schema_strategy[0] && !p->has_auto_update_schema &&
           !p->has_dedup && !p->has_compaction_threshold;
}

/* Put a namespace's policies in the cache (val NULL or empty: none); tell the policies hook
 * when they changed. */
static void ns_res_set_policies(struct ns *s, const char *ns, const struct ns_policies *val)
{
    static const struct ns_policies none;
    struct ns_policies *r = mg_map_get_str(&s->policies, ns);
    if (!val)
        val = &none;
    bool changed = !ns_res_policies_eq(r ? r : &none, val);
    if (ns_res_policies_empty(val)) {
        mg_free(r);
        mg_map_del_str(&s->policies, ns);
    } else {
        if (!r) {
            r = mg_calloc(1, sizeof *r);
            mg_map_put_str(&s->policies, ns, r);
        }
        *r = *val;
    }
    if (changed && s->policies_fn)
        s->policies_fn(s->policies_arg, ns);
}

/* Put a namespace's grants in the cache (val taken; NULL or empty: none); tell the policies
 * hook when they changed. */
static void ns_res_set_auth(struct ns *s, const char *ns, json_t *val)
{
    json_t *old = mg_map_get_str(&s->auth, ns);
    bool empty =
        !val || json_object_size(json_object_get(val, "namespace_auth")) +
                        json_object_size(json_object_get(val, "destination_auth")) +
                        json_object_size(json_object_get(val, "subscription_auth_roles")) ==
                    0;
    if (empty) {
        json_decref(val);
        val = NULL;
    }
    bool changed = old ? !val || !json_equal(old, val) : val != NULL;
    json_decref(old);
    if (val)
        mg_map_put_str(&s->auth, ns, val);
    else
        mg_map_del_str(&s->auth, ns);
    if (changed && s->policies_fn)
        s->policies_fn(s->policies_arg, ns);
}

/* The write of u's mutation is over: forget its number, and on failure put the entry back
 * unless a later mutation of the same entry is the one the cache shows now. */
static void ns_res_settle(struct ns *s, struct res_undo *u, int status)
{
    char *gk = ns_res_gen_key(u->kind, u->key);
    bool latest = (uint64_t)(uintptr_t)mg_map_get_str(&s->res_gens, gk) == u->gen;
    if (latest)
        mg_map_del_str(&s->res_gens, gk);
    mg_free(gk);
    if (status >= 0 || !latest) {
        json_decref(u->roles);
        u->roles = NULL;
        json_decref(u->auth);
        u->auth = NULL;
        return;
    }
    struct mg_map *m = ns_res_cache(s, u->kind);
    if (u->kind == RES_K_TENANT) {
        json_decref(mg_map_get_str(m, u->key)); /* the value the failed write put there */
        if (u->had) {
            mg_map_put_str(m, u->key, u->roles); /* the reference moves back to the cache */
            u->roles = NULL;
        } else {
            mg_map_del_str(m, u->key);
        }
    } else if (u->had) {
        mg_map_put_str(m, u->key, (void *)u->value);
    } else {
        mg_map_del_str(m, u->key);
    }
    if (u->kind == RES_K_NAMESPACE) {
        ns_res_set_policies(s, u->key, &u->pol);
        ns_res_set_auth(s, u->key, u->auth); /* the reference moves back to the cache */
        u->auth = NULL;
    }
    MG_WARN("ns", "metadata write failed: %s is back to what the store holds (%s)", u->key,
            u->had ? "present" : "absent");
}

static void ns_res_write_free(struct res_write *w)
{
    if (w->s)
        LIST_REMOVE(w, link);
    mg_timer_fini(&w->later);
    json_decref(w->undo.roles); /* never settled (the module went first) */
    json_decref(w->undo.auth);
    mg_free(w->undo.key);
    mg_free(w->path);
    mg_free(w);
}

static void ns_res_write_finish(struct res_write *w, int status)
{
    if (status == -MG_ENOTFOUND && w->is_delete)
        status = 0; /* deleting what is already gone */
    if (status < 0)
        MG_ERROR("ns", "metadata write of %s failed: %s", w->path, mg_strerror(status));
    if (w->s)
        ns_res_settle(w->s, &w->undo, status); /* before the caller hears of it */
    if (w->cb)
        w->cb(w->data, status);
    ns_res_write_free(w);
}

static void ns_res_write_done(struct meta_req *req, int status)
{
    struct res_write *w = req->data;
    meta_req_fini(req);
    ns_res_write_finish(w, status);
}

static void ns_res_write_deferred(struct mg_timer *t, void *arg)
{
    (void)t;
    struct res_write *w = arg;
    ns_res_write_finish(w, w->sync_status);
}

/* Write json at path (json NULL: delete path); undo (moved in) tells how to put the cache
 * back if the write fails. cb runs after the call returned. */
static void ns_res_persist(struct ns *s, const char *path, json_t *json, struct res_undo *undo,
                           ns_done_cb cb, void *data)
{
    struct res_write *w = mg_calloc(1, sizeof *w);
    w->s = s;
    w->cb = cb;
    w->data = data;
    w->path = mg_strdup(path);
    w->is_delete = json == NULL;
    if (undo) {
        w->undo = *undo;
        undo->key = NULL;
    } else {
        w->undo.key = mg_strdup(""); /* nothing to put back (gen 0 never matches) */
    }
    w->req.data = w;
    LIST_INSERT_HEAD(&s->res_writes, w, link);
    int rc = 0;
    if (s->meta && s->res_fail_writes > 0) {
        /* test seam (ns_res_fail_writes): the store refuses this write */
        s->res_fail_writes--;
        rc = s->res_fail_status;
        json_decref(json);
    } else if (s->meta && json) {
        char *text = json_dumps(json, JSON_COMPACT);
        json_decref(json);
        rc = meta_put(s->meta, path, text, strlen(text), META_VERSION_ANY, META_CREATE_PARENTS,
                      &w->req, ns_res_write_done);
        free(text);
    } else if (s->meta) {
        rc = meta_delete(s->meta, path, META_VERSION_ANY, &w->req, ns_res_write_done);
    } else {
        json_decref(json);
    }
    if (!s->meta || rc < 0) {
        /* No store (the cache is all there is), or a synchronous failure: complete on the
         * next loop pass all the same (ns_res_write_finish logs the failure). */
        w->sync_status = rc;
        w->deferred = true;
        mg_timer_init(&w->later, s->loop, ns_res_write_deferred, w);
        mg_timer_start(&w->later, 0);
    }
}

void ns_res_fail_writes(struct ns *s, int n, int status)
{
    s->res_fail_writes = n;
    s->res_fail_status = status;
}

void ns_res_cancel(struct ns *s)
{
    struct res_write *w;
    LIST_FOREACH(w, &s->res_writes, link)
    {
        w->cb = NULL; /* the callers (admin requests, connections) are going away */
    }
}

/* A tenant's roles (the tenants map's values), for mg_map_fini_free. */
static void ns_res_json_free(void *json)
{
    json_decref(json);
}

void ns_res_fini(struct ns *s)
{
    ns_res_cancel(s);
    struct res_write *w;
    while ((w = LIST_FIRST(&s->res_writes))) {
        LIST_REMOVE(w, link);
        w->s = NULL;
        if (w->deferred) /* never reached the store: nothing else holds it */
            ns_res_write_free(w);
        /* else the store completes it later (at the latest when it is closed) */
    }
    mg_map_fini(&s->res_gens);
    mg_timer_fini(&s->res_refresh);
    struct res_load *l;
    LIST_FOREACH(l, &s->res_inflight, link)
    {
        l->s = NULL; /* completions still to come must not touch the module */
        if (l->cb) {
            ns_done_cb cb = l->cb;
            l->cb = NULL;
            cb(l->data, -MG_ECANCELED);
        }
    }
    LIST_INIT(&s->res_inflight);
    mg_map_fini_free(&s->tenants, ns_res_json_free);
    mg_map_fini(&s->namespaces);
    mg_map_fini(&s->partitions);
    mg_map_fini_free(&s->policies, mg_free);
    mg_map_fini_free(&s->auth, ns_res_json_free);
}

static char *ns_res_tenant_path(const char *tenant)
{
    return mg_asprintf("/admin/policies/%s", tenant);
}

/* ns_res_persist of the policies of name: a tenant's TenantInfo or ("t/ns") a namespace's
 * Policies; json NULL deletes them. */
static void ns_res_persist_policy(struct ns *s, const char *name, json_t *json,
                                  struct res_undo *undo, ns_done_cb cb, void *data)
{
    char *path = ns_res_tenant_path(name);
    ns_res_persist(s, path, json, undo, cb, data);
    mg_free(path);
}

static char *ns_res_partitions_path(const char *base_full_name)
{
    struct topic_name tn;
    if (topic_name_parse(base_full_name, &tn) < 0)
        return NULL;
    char *ml = topic_name_ml(&tn);
    char *p = mg_asprintf("/admin/partitioned-topics/%s", ml);
    mg_free(ml);
    topic_name_fini(&tn);
    return p;
}

/* TenantInfo of a tenant whose adminRoles are roles (a JSON array; NULL: none). */
static json_t *ns_res_tenant_json(struct ns *s, json_t *roles)
{
    json_t *r = roles ? json_incref(roles) : json_array();
    return json_pack("{s:o,s:[s]}", "adminRoles", r, "allowedClusters", s->cfg->cluster_name);
}

static const char *const ns_quota_type_names[NS_QUOTA_TYPES] = {"destination_storage",
                                                                "message_age"};
static const char *const ns_quota_policy_names[] = {
    [NS_QUOTA_HOLD] = "producer_request_hold",
    [NS_QUOTA_EXCEPTION] = "producer_exception",
    [NS_QUOTA_EVICTION] = "consumer_backlog_eviction",
};

const char *ns_quota_type_name(enum ns_quota_type t)
{
    return (unsigned)t < NS_QUOTA_TYPES ? ns_quota_type_names[t] : NULL;
}

int ns_quota_type_parse(const char *name)
{
    for (int i = 0; i < NS_QUOTA_TYPES; i++)
        if (name && strcmp(name, ns_quota_type_names[i]) == 0)
            return i;
    return -MG_EINVAL;
}

const char *ns_quota_policy_name(enum ns_quota_policy p)
{
    return (unsigned)p <= NS_QUOTA_EVICTION ? ns_quota_policy_names[p] : NULL;
}

int ns_quota_policy_parse(const char *name)
{
    for (int i = 0; i <= NS_QUOTA_EVICTION; i++)
        if (name && strcmp(name, ns_quota_policy_names[i]) == 0)
            return i;
    return -MG_EINVAL;
}

json_t *ns_backlog_quota_json(const struct ns_backlog_quota *q)
{
    /* "limit" is the deprecated alias of limitSize that Pulsar still writes */
    return json_pack("{s:I,s:I,s:I,s:s}", "limit", (json_int_t)q->limit_size, "limitSize",
                     (json_int_t)q->limit_size, "limitTime", (json_int_t)q->limit_time, "policy",
                     ns_quota_policy_name(q->policy));
}

static int ns_quota_num(json_t *j, int64_t *out)
{
    if (!j || json_is_null(j)) {
        *out = -1;
        return 0;
    }
    if (!json_is_integer(j) || json_integer_value(j) < -1)
        return -MG_EINVAL;
    *out = json_integer_value(j);
    return 0;
}

int ns_backlog_quota_parse(json_t *j, struct ns_backlog_quota *out)
{
    memset(out, 0, sizeof *out);
    if (!json_is_object(j))
        return -MG_EINVAL;
    json_t *size = json_object_get(j, "limitSize");
    if (!size || json_is_null(size))
        size = json_object_get(j, "limit");
    json_t *pol = json_object_get(j, "policy");
    int policy = pol && !json_is_null(pol) ? ns_quota_policy_parse(json_string_value(pol))
                                           : (int)NS_QUOTA_HOLD;
    if (ns_quota_num(size, &out->limit_size) < 0 ||
        ns_quota_num(json_object_get(j, "limitTime"), &out->limit_time) < 0 || policy < 0)
        return -MG_EINVAL;
    out->policy = (enum ns_quota_policy)policy;
    out->set = true;
    return 0;
}

void ns_limits_to_json(const struct ns_policies *p, json_t *j)
{
    for (int i = 0; i < NS_LIMITS; i++)
        if (p->has_limit[i])
            json_object_set_new(j, ns_limit_names[i][0], json_integer(p->limit[i]));
}

static json_t *ns_res_namespace_json(struct ns *s, const char *ns_key, int bundles,
                                     const struct ns_policies *p)
{
    json_t *j = json_pack("{s:o,s:[s]}", "bundles", ns_bundles_json(bundles),
                          "replication_clusters", s->cfg->cluster_name);
    if (p && p->has_retention)
        json_object_set_new(j, "retention_policies",
                            json_pack("{s:I,s:I}", "retentionTimeInMinutes",
                                      (json_int_t)p->retention_time_minutes, "retentionSizeInMB",
                                      (json_int_t)p->retention_size_mb));
    if (p && p->auto_topic.set)
        json_object_set_new(j, "autoTopicCreationOverride", ns_auto_topic_json(&p->auto_topic));
    if (p && p->auto_sub.set)
        json_object_set_new(j, "autoSubscriptionCreationOverride", ns_auto_sub_json(&p->auto_sub));
    if (p && p->has_ttl)
        json_object_set_new(j, "message_ttl_in_seconds", json_integer(p->ttl_secs));
    if (p && p->schema_strategy[0])
        json_object_set_new(j, "schema_compatibility_strategy", json_string(p->schema_strategy));
    if (p && p->has_auto_update_schema)
        json_object_set_new(j, "is_allow_auto_update_schema", json_boolean(p->auto_update_schema));
    if (p && p->has_dedup)
        json_object_set_new(j, "deduplicationEnabled", json_boolean(p->dedup_enabled));
    if (p && p->has_compaction_threshold)
        json_object_set_new(j, "compaction_threshold", json_integer(p->compaction_threshold));
    if (p) {
        ns_limits_to_json(p, j);
        ns_rates_to_json(p, s->cfg->cluster_name, j);
        ns_pol_objects_to_json(p, j);
    }
    json_t *qm = json_object();
    for (int i = 0; p && i < NS_QUOTA_TYPES; i++)
        if (p->quota[i].set)
            json_object_set_new(qm, ns_quota_type_names[i], ns_backlog_quota_json(&p->quota[i]));
    json_object_set_new(j, "backlog_quota_map", qm);
    json_t *auth = mg_map_get_str(&s->auth, ns_key);
    json_object_set_new(j, "auth_policies",
                        auth ? json_deep_copy(auth)
                             : json_pack("{s:{},s:{},s:{}}", "namespace_auth", "destination_auth",
                                         "subscription_auth_roles"));
    return j;
}

/* ---- cache + write-through --------------------------------------------------------------- */

static int ns_res_cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The n-th name of a map in sorted order (maps are small: tenants, namespaces). */
static const char *ns_res_sorted_nth(const struct mg_map *m, size_t idx)
{
    if (idx >= m->count)
        return NULL;
    const char **names = mg_malloc(m->count * sizeof *names);
    size_t pos = 0, n = 0;
    const char *k;
    while (mg_map_next(m, &pos, &k, NULL, NULL))
        names[n++] = k;
    qsort(names, n, sizeof *names, ns_res_cmp_str);
    const char *r = names[idx];
    mg_free(names);
    return r;
}

bool ns_tenant_exists(struct ns *s, const char *tenant)
{
    return mg_map_get_str(&s->tenants, tenant) != NULL;
}

int ns_tenant_create(struct ns *s, const char *tenant, ns_done_cb cb, void *data)
{
    if (!*tenant || strchr(tenant, '/'))
        return -MG_EINVAL;
    if (ns_tenant_exists(s, tenant))
        return -MG_EEXIST;
    struct res_undo u;
    ns_res_snapshot(s, RES_K_TENANT, tenant, &u);
    json_t *roles = json_array();
    mg_map_put_str(&s->tenants, tenant, roles);
    ns_res_persist_policy(s, tenant, ns_res_tenant_json(s, roles), &u, cb, data);
    return 0;
}

int ns_tenant_delete(struct ns *s, const char *tenant, ns_done_cb cb, void *data)
{
    if (!ns_tenant_exists(s, tenant))
        return -MG_ENOTFOUND;
    size_t pos = 0;
    const char *ns;
    size_t tl = strlen(tenant);
    while (mg_map_next(&s->namespaces, &pos, &ns, NULL, NULL))
        if (strncmp(ns, tenant, tl) == 0 && ns[tl] == '/')
            return -MG_EBUSY;
    struct res_undo u;
    ns_res_snapshot(s, RES_K_TENANT, tenant, &u); /* holds its own reference to the roles */
    json_decref(mg_map_get_str(&s->tenants, tenant));
    mg_map_del_str(&s->tenants, tenant);
    ns_res_persist_policy(s, tenant, NULL, &u, cb, data);
    return 0;
}

const char *ns_tenant_next(struct ns *s, size_t *pos)
{
    return ns_res_sorted_nth(&s->tenants, (*pos)++);
}

const char *ns_tenant_role(struct ns *s, const char *tenant, size_t i)
{
    json_t *roles = mg_map_get_str(&s->tenants, tenant);
    return json_string_value(json_array_get(roles, i));
}

int ns_tenant_set_roles(struct ns *s, const char *tenant, const char *const *roles, size_t n,
                        ns_done_cb cb, void *data)
{
    json_t *old = mg_map_get_str(&s->tenants, tenant);
    if (!old)
        return -MG_ENOTFOUND;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_string(roles[i]));
    struct res_undo u;
    ns_res_snapshot(s, RES_K_TENANT, tenant, &u); /* holds its own reference to old */
    json_decref(old);
    mg_map_put_str(&s->tenants, tenant, arr);
    ns_res_persist_policy(s, tenant, ns_res_tenant_json(s, arr), &u, cb, data);
    return 0;
}

bool ns_namespace_exists(struct ns *s, const char *tenant_ns)
{
    return mg_map_get_str(&s->namespaces, tenant_ns) != NULL;
}

int ns_namespace_bundles(struct ns *s, const char *tenant_ns)
{
    return (int)(intptr_t)mg_map_get_str(&s->namespaces, tenant_ns);
}

int ns_namespace_create(struct ns *s, const char *tenant_ns, int bundles, ns_done_cb cb, void *data)
{
    const char *slash = strchr(tenant_ns, '/');
    if (!slash || slash == tenant_ns || !slash[1] || strchr(slash + 1, '/'))
        return -MG_EINVAL;
    char *tenant = mg_strndup(tenant_ns, (size_t)(slash - tenant_ns));
    bool tenant_ok = ns_tenant_exists(s, tenant);
    mg_free(tenant);
    if (!tenant_ok)
        return -MG_ENOTFOUND;
    if (ns_namespace_exists(s, tenant_ns))
        return -MG_EEXIST;
    if (bundles <= 0 || bundles > 1024)
        bundles = s->cfg->default_number_of_namespace_bundles;
    struct res_undo u;
    ns_res_snapshot(s, RES_K_NAMESPACE, tenant_ns, &u);
    mg_map_put_str(&s->namespaces, tenant_ns, (void *)(intptr_t)bundles);
    ns_res_set_policies(s, tenant_ns, NULL);
    ns_res_set_auth(s, tenant_ns, NULL);
    ns_res_persist_policy(s, tenant_ns, ns_res_namespace_json(s, tenant_ns, bundles, NULL), &u, cb,
                          data);
    return 0;
}

int ns_namespace_delete(struct ns *s, const char *tenant_ns, ns_done_cb cb, void *data)
{
    if (!ns_namespace_exists(s, tenant_ns))
        return -MG_ENOTFOUND;
    char *prefix = mg_asprintf("persistent://%s/", tenant_ns);
    size_t plen = strlen(prefix);
    bool busy = false;
    size_t pos = 0;
    struct topic *t;
    while (!busy && (t = topic_next(s->topics, &pos)))
        busy = strncmp(topic_full_name(t), prefix, plen) == 0;
    const char *base;
    int n;
    pos = 0;
    while (!busy && (base = ns_partitions_next(s, &pos, &n)))
        busy = strncmp(base, prefix, plen) == 0;
    mg_free(prefix);
    if (busy)
        return -MG_EBUSY;
    struct res_undo u;
    ns_res_snapshot(s, RES_K_NAMESPACE, tenant_ns, &u);
    mg_map_del_str(&s->namespaces, tenant_ns);
    ns_res_set_policies(s, tenant_ns, NULL);
    ns_res_set_auth(s, tenant_ns, NULL);
    ns_res_persist_policy(s, tenant_ns, NULL, &u, cb, data);
    return 0;
}

const char *ns_namespace_next(struct ns *s, size_t *pos)
{
    return ns_res_sorted_nth(&s->namespaces, (*pos)++);
}

int ns_namespace_policies_get(struct ns *s, const char *tenant_ns, struct ns_policies *out)
{
    memset(out, 0, sizeof *out);
    if (!ns_namespace_exists(s, tenant_ns))
        return -MG_ENOTFOUND;
    const struct ns_policies *r = mg_map_get_str(&s->policies, tenant_ns);
    if (r)
        *out = *r;
    return 0;
}

int ns_namespace_policies_set(struct ns *s, const char *tenant_ns, const struct ns_policies *p,
                              ns_done_cb cb, void *data)
{
    if (!ns_namespace_exists(s, tenant_ns))
        return -MG_ENOTFOUND;
    struct res_undo u;
    ns_res_snapshot(s, RES_K_NAMESPACE, tenant_ns, &u);
    struct ns_policies val = *p; /* p may be the cache's own copy */
    ns_res_set_policies(s, tenant_ns, &val);
    ns_res_persist_policy(
        s, tenant_ns, ns_res_namespace_json(s, tenant_ns, ns_namespace_bundles(s, tenant_ns), &val),
        &u, cb, data);
    return 0;
}

const json_t *ns_namespace_auth(struct ns *s, const char *tenant_ns)
{
    return mg_map_get_str(&s->auth, tenant_ns);
}

int ns_namespace_auth_set(struct ns *s, const char *tenant_ns, json_t *auth, ns_done_cb cb,
                          void *data)
{
    if (!ns_namespace_exists(s, tenant_ns)) {
        json_decref(auth);
        return -MG_ENOTFOUND;
    }
    struct res_undo u;
    ns_res_snapshot(s, RES_K_NAMESPACE, tenant_ns, &u);
    ns_res_set_auth(s, tenant_ns, auth);
    struct ns_policies p;
    ns_namespace_policies_get(s, tenant_ns, &p);
    ns_res_persist_policy(
        s, tenant_ns, ns_res_namespace_json(s, tenant_ns, ns_namespace_bundles(s, tenant_ns), &p),
        &u, cb, data);
    return 0;
}

void ns_set_policies_hook(struct ns *s, ns_policies_fn fn, void *arg)
{
    s->policies_fn = fn;
    s->policies_arg = arg;
}

int ns_namespace_retention_get(struct ns *s, const char *tenant_ns, int64_t *time_minutes,
                               int64_t *size_mb)
{
    struct ns_policies p;
    int rc = ns_namespace_policies_get(s, tenant_ns, &p);
    if (rc < 0)
        return rc;
    if (!p.has_retention)
        return 0;
    *time_minutes = p.retention_time_minutes;
    *size_mb = p.retention_size_mb;
    return 1;
}

int ns_namespace_retention_set(struct ns *s, const char *tenant_ns, bool remove,
                               int64_t time_minutes, int64_t size_mb, ns_done_cb cb, void *data)
{
    struct ns_policies p;
    int rc = ns_namespace_policies_get(s, tenant_ns, &p);
    if (rc < 0)
        return rc;
    p.has_retention = !remove;
    p.retention_time_minutes = remove ? 0 : time_minutes;
    p.retention_size_mb = remove ? 0 : size_mb;
    return ns_namespace_policies_set(s, tenant_ns, &p, cb, data);
}

int ns_partitions_get(struct ns *s, const char *base_full_name)
{
    return (int)(intptr_t)mg_map_get_str(&s->partitions, base_full_name);
}

/* The partitioned topic base_full_name gets n partitions (0: it is deleted), in the cache at
 * once and written through to the store. */
static int ns_res_partitions_write(struct ns *s, const char *base_full_name, int n, ns_done_cb cb,
                                   void *data)
{
    char *path = ns_res_partitions_path(base_full_name);
    if (!path)
        return -MG_EBADNAME;
    struct res_undo u;
    ns_res_snapshot(s, RES_K_PARTITIONS, base_full_name, &u);
    if (n > 0)
        mg_map_put_str(&s->partitions, base_full_name, (void *)(intptr_t)n);
    else
        mg_map_del_str(&s->partitions, base_full_name);
    ns_res_persist(s, path, n > 0 ? json_pack("{s:i}", "partitions", n) : NULL, &u, cb, data);
    mg_free(path);
    return 0;
}

int ns_partitions_set(struct ns *s, const char *base_full_name, int n, bool create, ns_done_cb cb,
                      void *data)
{
    int cur = ns_partitions_get(s, base_full_name);
    if (n <= 0)
        return -MG_EINVAL;
    int max = s->cfg->max_num_partitions_per_partitioned_topic;
    if (max > 0 && n > max)
        return -MG_ENOTALLOWED;
    if (create) {
        if (cur > 0 || topic_find(s->topics, base_full_name))
            return -MG_EEXIST;
    } else {
        if (cur == 0)
            return -MG_ENOTFOUND;
        if (n <= cur)
            return -MG_EINVAL;
    }
    return ns_res_partitions_write(s, base_full_name, n, cb, data);
}

int ns_partitions_delete(struct ns *s, const char *base_full_name, ns_done_cb cb, void *data)
{
    if (!mg_map_get_str(&s->partitions, base_full_name))
        return -MG_ENOTFOUND;
    return ns_res_partitions_write(s, base_full_name, 0, cb, data);
}

const char *ns_partitions_next(struct ns *s, size_t *pos, int *n)
{
    const char *k;
    void *v;
    if (!mg_map_next(&s->partitions, pos, &k, NULL, &v))
        return NULL;
    if (n)
        *n = (int)(intptr_t)v;
    return k;
}

int ns_check_topic(struct ns *s, const struct topic_name *n, const char **reason)
{
    if (!n->persistent && !s->cfg->enable_non_persistent_topics) {
        *reason = "Broker is unable to load non-persistent topic"; /* Pulsar's NotAllowed */
        return -MG_ENOTALLOWED;
    }
    char *ns = mg_asprintf("%s/%s", n->tenant, n->ns);
    bool ok = ns_namespace_exists(s, ns);
    mg_free(ns);
    if (!ok) {
        *reason = "Namespace does not exist";
        return -MG_ENOTFOUND;
    }
    return 0;
}

/* ---- loading ----------------------------------------------------------------------------- */

static void ns_res_load_issue(struct ns *s, enum res_step step, char *path);

/* The base full name of a partitioned topic from its metadata path after
 * /admin/partitioned-topics/ (<t>/<ns>/persistent/<url-encoded local>), or NULL. */
static char *ns_res_pt_full_name(const char *rest)
{
    char *copy = mg_strdup(rest);
    char *t = strtok(copy, "/"), *ns = strtok(NULL, "/"), *dom = strtok(NULL, "/");
    char *enc = strtok(NULL, "");
    char *local = enc ? evhttp_uridecode(enc, 1, NULL) : NULL;
    char *full = t && ns && dom && local ? mg_asprintf("%s://%s/%s/%s", dom, t, ns, local) : NULL;
    free(local);
    mg_free(copy);
    return full;
}

/* A namespace's stored Policies: its bundles and retention into the cache. */
static void ns_res_cache_namespace(struct ns *s, const char *tenant_ns, json_t *j)
{
    json_t *nb = json_object_get(json_object_get(j, "bundles"), "numBundles");
    int bundles = json_is_integer(nb) ? (int)json_integer_value(nb)
                                      : s->cfg->default_number_of_namespace_bundles;
    mg_map_put_str(&s->namespaces, tenant_ns, (void *)(intptr_t)bundles);
    /* The stored policies replace the cached ones (a policy another broker removed goes) */
    struct ns_policies p;
    memset(&p, 0, sizeof p);
    json_t *rp = json_object_get(j, "retention_policies");
    json_t *rt = json_object_get(rp, "retentionTimeInMinutes");
    json_t *rs = json_object_get(rp, "retentionSizeInMB");
    if (json_is_integer(rt) && json_is_integer(rs)) {
        p.has_retention = true;
        p.retention_time_minutes = json_integer_value(rt);
        p.retention_size_mb = json_integer_value(rs);
    }
    const char *why;
    json_t *ato = json_object_get(j, "autoTopicCreationOverride");
    if (ato && ns_auto_topic_parse(ato, 0, &p.auto_topic, &why) < 0)
        MG_WARN("ns", "namespace %s: autoTopicCreationOverride ignored: %s", tenant_ns, why);
    json_t *aso = json_object_get(j, "autoSubscriptionCreationOverride");
    if (aso && ns_auto_sub_parse(aso, &p.auto_sub, &why) < 0)
        MG_WARN("ns", "namespace %s: autoSubscriptionCreationOverride ignored: %s", tenant_ns, why);
    ns_pol_objects_parse(j, tenant_ns, &p);
    json_t *ttl = json_object_get(j, "message_ttl_in_seconds");
    if (json_is_integer(ttl)) {
        p.has_ttl = true;
        p.ttl_secs = json_integer_value(ttl);
    }
    const char *strategy = json_string_value(json_object_get(j, "schema_compatibility_strategy"));
    if (strategy && strlen(strategy) < sizeof p.schema_strategy)
        strcpy(p.schema_strategy, strategy);
    json_t *auto_update = json_object_get(j, "is_allow_auto_update_schema");
    if (json_is_boolean(auto_update)) {
        p.has_auto_update_schema = true;
        p.auto_update_schema = json_is_true(auto_update);
    }
    json_t *dd = json_object_get(j, "deduplicationEnabled");
    if (json_is_boolean(dd)) {
        p.has_dedup = true;
        p.dedup_enabled = json_is_true(dd);
    }
    for (int i = 0; i < NS_RATES; i++) {
        json_t *rv = json_object_get(json_object_get(j, ns_rate_names[i][0]), s->cfg->cluster_name);
        const char *bad;
        if (rv && ns_dispatch_rate_parse((enum ns_rate)i, rv, &p.rate[i], &bad) < 0)
            MG_WARN("ns", "namespace %s: %s ignored: %s", tenant_ns, ns_rate_names[i][0], bad);
    }
    for (int i = 0; i < NS_LIMITS; i++) {
        json_t *lv = json_object_get(j, ns_limit_names[i][0]);
        if (json_is_integer(lv) && json_integer_value(lv) >= 0) {
            p.has_limit[i] = true;
            p.limit[i] = json_integer_value(lv);
        }
    }
    json_t *ct = json_object_get(j, "compaction_threshold");
    if (json_is_integer(ct) && json_integer_value(ct) >= 0) {
        p.has_compaction_threshold = true;
        p.compaction_threshold = json_integer_value(ct);
    }
    json_t *qm = json_object_get(j, "backlog_quota_map");
    for (int i = 0; i < NS_QUOTA_TYPES; i++) {
        json_t *q = json_object_get(qm, ns_quota_type_names[i]);
        if (json_is_object(q))
            ns_backlog_quota_parse(q, &p.quota[i]);
    }
    ns_res_set_policies(s, tenant_ns, &p);
    json_t *auth = json_object_get(j, "auth_policies");
    ns_res_set_auth(s, tenant_ns, json_is_object(auth) ? json_deep_copy(auth) : NULL);
    /* Its tenant exists too (created elsewhere, perhaps since the last refresh). */
    const char *slash = strchr(tenant_ns, '/');
    if (slash) {
        char *tenant = mg_strndup(tenant_ns, (size_t)(slash - tenant_ns));
        if (!mg_map_get_str(&s->tenants, tenant))
            mg_map_put_str(&s->tenants, tenant, json_array());
        mg_free(tenant);
    }
}

/* A tenant's stored TenantInfo (j NULL: only its name is known): adminRoles into the cache. */
static void ns_res_cache_tenant(struct ns *s, const char *tenant, json_t *j)
{
    json_t *old = mg_map_get_str(&s->tenants, tenant);
    json_t *roles = json_object_get(j, "adminRoles");
    if (old && !json_is_array(roles))
        return;
    json_t *arr = json_array();
    for (size_t i = 0; i < json_array_size(roles); i++)
        if (json_is_string(json_array_get(roles, i)))
            json_array_append(arr, json_array_get(roles, i));
    json_decref(old);
    mg_map_put_str(&s->tenants, tenant, arr);
}

static void ns_res_load_done(struct meta_req *req, int status)
{
    struct res_load *l = req->data;
    struct ns *s = l->s;
    if (!s) { /* the module was freed while this read was in flight */
        meta_req_fini(req);
        mg_free(l->path);
        mg_free(l);
        return;
    }
    LIST_REMOVE(l, link);
    if (!l->cb)
        s->res_loading--;
    if (status == -MG_ENOTFOUND) {
        if (!l->cb) {
            status = 0; /* nothing stored there yet */
        } else if (l->step == RES_PT_VALUE && l->gen == s->res_gen) {
            /* a sync: deleted by another broker since we cached it */
            char *full = ns_res_pt_full_name(l->path + strlen("/admin/partitioned-topics/"));
            if (full)
                mg_map_del_str(&s->partitions, full);
            mg_free(full);
        }
    } else if (status < 0) {
        MG_LOG(s->res_refreshing || l->cb ? MG_LOG_DEBUG : MG_LOG_ERROR, "ns",
               "reading %s from the metadata store: %s", l->path, mg_strerror(status));
        if (!s->res_load_error && !l->cb)
            s->res_load_error = status;
    } else if (l->step == RES_TENANT_VALUE) {
        json_t *j = json_loadb(req->value ? req->value : "", req->len, 0, NULL);
        /* A value read before a local change of the tenants is stale: the change wins (the
         * next refresh reads the stored result). */
        if (l->gen == s->res_gen)
            ns_res_cache_tenant(s, l->path + strlen("/admin/policies/"), j);
        json_decref(j);
    } else if (l->step == RES_NS_VALUE || l->step == RES_PT_VALUE) {
        json_t *j = json_loadb(req->value ? req->value : "", req->len, 0, NULL);
        const char *rest = l->path + strlen(l->step == RES_NS_VALUE ? "/admin/policies/"
                                                                    : "/admin/partitioned-topics/");
        if (l->step == RES_NS_VALUE) {
            /* A read sent before a local change (a namespace deleted here meanwhile) is
             * stale: the change wins; the next refresh reads what is stored then. */
            if (l->gen == s->res_gen)
                ns_res_cache_namespace(s, rest, j);
        } else {
            json_t *np = json_object_get(j, "partitions");
            char *full = ns_res_pt_full_name(rest);
            if (full && json_is_integer(np) && json_integer_value(np) > 0) {
                if (!l->cb || l->gen == s->res_gen) /* a sync older than a local change loses */
                    mg_map_put_str(&s->partitions, full, (void *)(intptr_t)json_integer_value(np));
            } else
                MG_WARN("ns", "ignoring unreadable partitioned-topic metadata at %s", l->path);
            mg_free(full);
        }
        json_decref(j);
    } else {
        for (int i = 0; i < req->n_children; i++) {
            char *child = mg_asprintf("%s/%s", l->path, req->children[i]);
            if (l->step == RES_TENANTS) { /* a tenant: its value, and its namespaces */
                if (l->gen == s->res_gen && !mg_map_get_str(&s->tenants, req->children[i]))
                    ns_res_cache_tenant(s, req->children[i], NULL);
                ns_res_load_issue(s, RES_TENANT_VALUE, mg_strdup(child));
            }
            ns_res_load_issue(s, ns_res_children_step[l->step], child);
        }
    }
    if (l->cb)
        l->cb(l->data, status);
    meta_req_fini(req);
    mg_free(l->path);
    mg_free(l);
}

/* Send one read of the walk (cb NULL) or of a sync (cb set: not counted in res_loading).
 * Takes ownership of path. Returns 0, or the store's synchronous error. */
static int ns_res_read(struct ns *s, enum res_step step, char *path, ns_done_cb cb, void *data)
{
    struct res_load *l = mg_calloc(1, sizeof *l);
    l->s = s;
    l->step = step;
    l->path = path;
    l->cb = cb;
    l->data = data;
    l->gen = s->res_gen;
    l->req.data = l;
    bool value = step == RES_NS_VALUE || step == RES_PT_VALUE || step == RES_TENANT_VALUE;
    int rc = value ? meta_get(s->meta, path, &l->req, ns_res_load_done)
                   : meta_children(s->meta, path, &l->req, ns_res_load_done);
    if (rc < 0) {
        mg_free(l->path);
        mg_free(l);
        return rc;
    }
    LIST_INSERT_HEAD(&s->res_inflight, l, link);
    if (!cb)
        s->res_loading++;
    return 0;
}

/* Takes ownership of path. */
static void ns_res_load_issue(struct ns *s, enum res_step step, char *path)
{
    int rc = ns_res_read(s, step, path, NULL, NULL);
    if (rc < 0 && !s->res_load_error)
        s->res_load_error = rc;
}

/* Only a shared (ZooKeeper) store is written by other brokers. */
static bool ns_res_shared(struct ns *s)
{
    return s->meta && strcmp(meta_backend_name(s->meta), "zookeeper") == 0;
}

int ns_tenant_sync(struct ns *s, const char *tenant, ns_done_cb cb, void *data)
{
    if (!ns_res_shared(s))
        return -MG_ENOTSUP;
    if (!*tenant || strchr(tenant, '/'))
        return -MG_EINVAL;
    return ns_res_read(s, RES_TENANT_VALUE, ns_res_tenant_path(tenant), cb, data);
}

int ns_partitions_sync(struct ns *s, const char *base_full_name, ns_done_cb cb, void *data)
{
    if (!ns_res_shared(s))
        return -MG_ENOTSUP;
    char *path = ns_res_partitions_path(base_full_name);
    if (!path)
        return -MG_EINVAL;
    return ns_res_read(s, RES_PT_VALUE, path, cb, data);
}

int ns_namespace_sync(struct ns *s, const char *tenant_ns, ns_done_cb cb, void *data)
{
    if (!ns_res_shared(s))
        return -MG_ENOTSUP;
    const char *slash = strchr(tenant_ns, '/');
    if (!slash || slash == tenant_ns || !slash[1] || strchr(slash + 1, '/'))
        return -MG_EINVAL;
    return ns_res_read(s, RES_NS_VALUE, ns_res_tenant_path(tenant_ns), cb, data);
}

static void ns_res_load_timeout(struct mg_timer *t, void *arg)
{
    (void)t;
    bool *expired = arg;
    *expired = true;
}

/* One pass of the loop while loading: a real loop blocks until something is ready and runs
 * it; a simulated one runs what is due and, while the load is still waiting, moves its time
 * to the next timer. false: a simulated loop that cannot go on (a livelock). */
static bool ns_res_load_pass(struct ns *s)
{
    if (!mg_loop_is_sim(s->loop)) {
        event_base_loop(s->base, EVLOOP_ONCE);
        return true;
    }
    if (mg_loop_run_due(s->loop) < 0)
        return false;
    return s->res_loading == 0 || mg_loop_step(s->loop, RES_LOAD_TIMEOUT_MS);
}

int ns_res_load(struct ns *s)
{
    int bundles = s->cfg->default_number_of_namespace_bundles;
    if (!s->meta) {
        mg_map_put_str(&s->tenants, "public", json_array());
        mg_map_put_str(&s->tenants, "pulsar", json_array());
        mg_map_put_str(&s->namespaces, "public/default", (void *)(intptr_t)bundles);
        mg_map_put_str(&s->namespaces, "pulsar/system", (void *)(intptr_t)bundles);
        return 0;
    }
    ns_res_load_issue(s, RES_TENANTS, mg_strdup("/admin/policies"));
    ns_res_load_issue(s, RES_PT_TENANTS, mg_strdup("/admin/partitioned-topics"));
    bool expired = false;
    struct mg_timer timer;
    mg_timer_init(&timer, s->loop, ns_res_load_timeout, &expired);
    mg_timer_start(&timer, RES_LOAD_TIMEOUT_MS);
    while (s->res_loading > 0 && !expired && ns_res_load_pass(s))
        ;
    mg_timer_fini(&timer);
    if (s->res_loading > 0) {
        MG_ERROR("ns", "metadata store did not answer within %d s", RES_LOAD_TIMEOUT_MS / 1000);
        return -MG_ETIMEDOUT;
    }
    if (s->res_load_error)
        return s->res_load_error;
    /* First start of a cluster: what initialize-cluster-metadata creates. */
    if (!ns_tenant_exists(s, "public")) {
        char *cluster = mg_asprintf("/admin/clusters/%s", s->cfg->cluster_name);
        ns_res_persist(s, cluster, json_object(), NULL, NULL, NULL);
        mg_free(cluster);
        ns_tenant_create(s, "public", NULL, NULL);
        ns_namespace_create(s, "public/default", bundles, NULL, NULL);
    }
    if (!ns_tenant_exists(s, "pulsar")) {
        ns_tenant_create(s, "pulsar", NULL, NULL);
        ns_namespace_create(s, "pulsar/system", bundles, NULL, NULL);
    }
    MG_INFO("ns", "loaded %zu tenants, %zu namespaces, %zu partitioned topics", s->tenants.count,
            s->namespaces.count, s->partitions.count);
    return 0;
}

/* ---- topic listing ----------------------------------------------------------------------- */

struct res_list {
    struct ns *s; /* borrowed */
    char *ns;     /* owned: "t/ns" */
    bool partitioned_only;
    int domains; /* NS_DOMAIN_* bits */
    ns_topics_cb cb;
    void *data;
    struct meta_req req;
};

static int ns_res_cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names are collected with duplicates (a loaded topic is also stored, a partition also
 * listed from its metadata); ns_res_list_finish sorts them and drops the duplicates: O(n log n),
 * where checking each new name against the list was quadratic in a namespace's topics. */
static void ns_res_list_add(char ***names, int *n, int *cap, char *name)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *names = mg_realloc(*names, (size_t)*cap * sizeof **names);
    }
    (*names)[(*n)++] = name;
}

/* Add the names of one domain (NS_DOMAIN_*): partitions of its partitioned topics, its loaded
 * topics and the stored ones (children: the managed ledgers' node, persistent only). */
static void ns_res_list_domain(const struct res_list *l, int d, char ***names, int *n, int *cap,
                               char **children, int n_children)
{
    struct ns *s = l->s;
    char *prefix =
        mg_asprintf("%s://%s/", d == NS_DOMAIN_PERSISTENT ? "persistent" : "non-persistent", l->ns);
    size_t plen = strlen(prefix);
    size_t pos = 0;
    int parts;
    const char *base;
    while ((base = ns_partitions_next(s, &pos, &parts))) {
        if (strncmp(base, prefix, plen) != 0 || strchr(base + plen, '/'))
            continue;
        if (l->partitioned_only) {
            ns_res_list_add(names, n, cap, mg_strdup(base));
            continue;
        }
        for (int i = 0; i < parts; i++)
            ns_res_list_add(names, n, cap, mg_asprintf("%s-partition-%d", base, i));
    }
    if (!l->partitioned_only) {
        struct topic *t;
        pos = 0;
        while (s->topics && (t = topic_next(s->topics, &pos))) {
            const char *full = topic_full_name(t);
            if (strncmp(full, prefix, plen) == 0 && !strchr(full + plen, '/'))
                ns_res_list_add(names, n, cap, mg_strdup(full));
        }
        for (int i = 0; i < n_children; i++) {
            char *local = evhttp_uridecode(children[i], 1, NULL);
            if (local) {
                ns_res_list_add(names, n, cap, mg_asprintf("%s%s", prefix, local));
                free(local);
            }
        }
    }
    mg_free(prefix);
}

/* Finish a listing: stored names (children, may be NULL; l->req's) + loaded topics +
 * partitions; l is freed. */
static void ns_res_list_finish(struct res_list *l, int status, char **children, int n_children)
{
    char **names = NULL;
    int n = 0, cap = 0;
    for (int d = NS_DOMAIN_PERSISTENT; d <= NS_DOMAIN_NON_PERSISTENT; d <<= 1)
        if (l->domains & d)
            ns_res_list_domain(l, d, &names, &n, &cap, d == NS_DOMAIN_PERSISTENT ? children : NULL,
                               d == NS_DOMAIN_PERSISTENT ? n_children : 0);
    if (n > 1)
        qsort(names, (size_t)n, sizeof *names, ns_res_cmp_name);
    int u = 0;
    for (int i = 0; i < n; i++) {
        if (u > 0 && strcmp(names[u - 1], names[i]) == 0)
            mg_free(names[i]);
        else
            names[u++] = names[i];
    }
    n = u;
    l->cb(l->data, status, names, n);
    mg_free_strv(names, n);
    meta_req_fini(&l->req);
    mg_free(l->ns);
    mg_free(l);
}

static void ns_res_list_done(struct meta_req *req, int status)
{
    struct res_list *l = req->data;
    if (status == -MG_ENOTFOUND)
        status = 0; /* no topic was ever stored in this namespace */
    ns_res_list_finish(l, status, status == 0 ? req->children : NULL,
                       status == 0 ? req->n_children : 0);
}

/* Without a store: the loaded topics and partitions alone. */
static void ns_res_list_deferred(void *arg)
{
    ns_res_list_finish(arg, 0, NULL, 0);
}

int ns_list_topics(struct ns *s, const char *tenant_ns, bool partitioned_only, ns_topics_cb cb,
                   void *data)
{
    return ns_list_topics_in(s, tenant_ns, NS_DOMAIN_PERSISTENT, partitioned_only, cb, data);
}

int ns_list_topics_in(struct ns *s, const char *tenant_ns, int domains, bool partitioned_only,
                      ns_topics_cb cb, void *data)
{
    if (!ns_namespace_exists(s, tenant_ns))
        return -MG_ENOTFOUND;
    struct res_list *l = mg_calloc(1, sizeof *l);
    l->s = s;
    l->ns = mg_strdup(tenant_ns);
    l->partitioned_only = partitioned_only;
    l->domains = domains;
    l->cb = cb;
    l->data = data;
    l->req.data = l;
    if (s->meta && !partitioned_only && (domains & NS_DOMAIN_PERSISTENT)) {
        char *path = mg_asprintf("/managed-ledgers/%s/persistent", tenant_ns);
        int rc = meta_children(s->meta, path, &l->req, ns_res_list_done);
        mg_free(path);
        if (rc == 0)
            return 0;
    }
    if (ns_later(s, ns_res_list_deferred, l) < 0) {
        mg_free(l->ns);
        mg_free(l);
        return -MG_EIO;
    }
    return 0;
}

/* ---- is a topic's data stored ------------------------------------------------------------- */

struct res_stored {
    ns_done_cb cb;
    void *data;
    struct meta_req req;
};

static void ns_res_stored_read(struct meta_req *req, int status)
{
    struct res_stored *q = req->data;
    q->cb(q->data, status == 0 ? 1 : status == -MG_ENOTFOUND ? 0 : status);
    meta_req_fini(req);
    mg_free(q);
}

static void ns_res_stored_none(void *arg)
{
    struct res_stored *q = arg;
    q->cb(q->data, 0);
    mg_free(q);
}

int ns_topic_stored(struct ns *s, const char *full_name, ns_done_cb cb, void *data)
{
    struct topic_name tn;
    if (topic_name_parse(full_name, &tn) < 0)
        return -MG_EBADNAME;
    struct res_stored *q = mg_calloc(1, sizeof *q);
    q->cb = cb;
    q->data = data;
    q->req.data = q;
    int rc = -MG_ENOTSUP;
    if (s->meta) {
        char *ml = topic_name_ml(&tn);
        char *path = mg_asprintf("/managed-ledgers/%s", ml);
        rc = meta_get(s->meta, path, &q->req, ns_res_stored_read);
        mg_free(path);
        mg_free(ml);
    }
    topic_name_fini(&tn);
    if (rc == -MG_ENOTSUP) /* no store: nothing is stored (said on the next loop pass) */
        rc = ns_later(s, ns_res_stored_none, q);
    if (rc < 0)
        mg_free(q);
    return rc < 0 ? rc : 0;
}

/* ---- refresh (several brokers) --------------------------------------------------------- */

/*
 * With a shared store (ZooKeeper), another broker may create tenants, namespaces and
 * partitioned topics. Every NS_RES_REFRESH_MS the same walk as at start runs again in the
 * background and adds what it finds to the cache (values are updated, nothing is removed:
 * a namespace deleted elsewhere stays known here until restart). A read sent before a local
 * change is stale (s->res_gen moved on): its answer is dropped, so a walk that was under way
 * when a namespace was deleted here cannot bring it back.
 */
#define NS_RES_REFRESH_MS 3000

void ns_res_refresh_now(struct ns *s)
{
    if (s->res_loading > 0)
        return; /* the previous walk is still running */
    s->res_load_error = 0;
    ns_res_load_issue(s, RES_TENANTS, mg_strdup("/admin/policies"));
    ns_res_load_issue(s, RES_PT_TENANTS, mg_strdup("/admin/partitioned-topics"));
}

static void ns_res_refresh_tick(struct mg_timer *t, void *arg)
{
    mg_timer_start(t, NS_RES_REFRESH_MS);
    ns_res_refresh_now(arg);
}

void ns_res_refresh_start(struct ns *s)
{
    if (!ns_res_shared(s))
        return; /* only this process writes an embedded or memory store */
    s->res_refreshing = true;
    mg_timer_init(&s->res_refresh, s->loop, ns_res_refresh_tick, s);
    mg_timer_start(&s->res_refresh, NS_RES_REFRESH_MS);
}
