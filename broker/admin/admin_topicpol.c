/*
 * admin_topicpol.c - topic-level policies over REST (Pulsar's PersistentTopics): GET/POST/DELETE
 * /admin/v2/persistent/{t}/{ns}/{topic}/<path> for each row of admin_tpol_paths:
 * deduplicationEnabled, maxProducers, maxConsumers, maxConsumersPerSubscription,
 * maxSubscriptionsPerTopic, maxUnackedMessagesOnConsumer, maxUnackedMessagesOnSubscription,
 * dispatchRate, subscriptionDispatchRate, publishRate, inactiveTopicPolicies and
 * delayedDelivery, each a field of the topic's TopicPolicies (Pulsar's field name in the row;
 * delayedDelivery is two: delayedDeliveryEnabled and delayedDeliveryTickTimeMillis, answered
 * as a DelayedDeliveryPolicies only when both are set, as Pulsar).
 *
 * As Pulsar's preValidation: a partition's name is refused (412 "Not allowed to set/get topic
 * policy for a partition": a partitioned topic's policy lives on its base name and applies
 * to every partition), a topic that exists nowhere gets 404 "Topic ... not found". GET
 * answers the topic's own value, or 204 when it has none; with applied=true the value in
 * force: the topic's, else the namespace's, else the broker's key. POST takes the value (a
 * bare JSON boolean; an integer, 412 "<name> must be 0 or more" below 0 as Pulsar's
 * PersistentTopicsBase; a DispatchRate / PublishRate / InactiveTopicPolicies /
 * DelayedDeliveryPolicies object; 400 when
 * of the wrong shape)
 * and DELETE removes it; both answer 204 once the store holds it. Any
 * broker answers (the store is shared); the brokers serving the topic's partitions apply a
 * change through their watch on it (ns_topicpol.c), this one at once.
 */
#include "admin/admin_int.h"
#include "config/cfg.h"
#include "ns/ns.h"
#include "schema/schema.h"
#include "topic/topic.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"

#include <jansson.h>
#include <string.h>

enum admin_tpol_kind {
    ADMIN_TPOL_BOOL,
    ADMIN_TPOL_LIMIT,
    ADMIN_TPOL_RATE,
    ADMIN_TPOL_INACTIVE,
    ADMIN_TPOL_DELAYED, /* two TopicPolicies fields: delayedDeliveryEnabled, ...TickTimeMillis */
};

/* One topic policy path: its segment, TopicPolicies field (NULL: the segment), the name in
 * Pulsar's 412 for a negative limit (NULL: the segment), kind and which (LIMIT: the enum
 * topic_limit and enum ns_limit of the same meaning; RATE: the enum ns_rate, also the scope of
 * topic_registry_rate). */
static const struct admin_tpol_path {
    const char *seg, *field, *arg;
    enum admin_tpol_kind kind;
    int which;
} admin_tpol_paths[] = {
    {"deduplicationEnabled", NULL, NULL, ADMIN_TPOL_BOOL, 0},
    {"maxProducers", "maxProducerPerTopic", NULL, ADMIN_TPOL_LIMIT, TOPIC_LIMIT_PRODUCERS},
    {"maxConsumers", "maxConsumerPerTopic", NULL, ADMIN_TPOL_LIMIT, TOPIC_LIMIT_CONSUMERS},
    {"maxConsumersPerSubscription", NULL, NULL, ADMIN_TPOL_LIMIT, TOPIC_LIMIT_CONSUMERS_PER_SUB},
    {"maxSubscriptionsPerTopic", NULL, NULL, ADMIN_TPOL_LIMIT, TOPIC_LIMIT_SUBSCRIPTIONS},
    {"maxUnackedMessagesOnConsumer", NULL, "maxUnackedNum", ADMIN_TPOL_LIMIT,
     TOPIC_LIMIT_UNACKED_PER_CONSUMER},
    {"maxUnackedMessagesOnSubscription", NULL, "maxUnackedNum", ADMIN_TPOL_LIMIT,
     TOPIC_LIMIT_UNACKED_PER_SUB},
    {"dispatchRate", NULL, NULL, ADMIN_TPOL_RATE, NS_RATE_TOPIC},
    {"subscriptionDispatchRate", NULL, NULL, ADMIN_TPOL_RATE, NS_RATE_SUB},
    {"publishRate", NULL, NULL, ADMIN_TPOL_RATE, NS_RATE_PUBLISH},
    {"inactiveTopicPolicies", NULL, NULL, ADMIN_TPOL_INACTIVE, 0},
    {"delayedDelivery", NULL, NULL, ADMIN_TPOL_DELAYED, 0},
};
_Static_assert((int)NS_LIMIT_PRODUCERS_PER_TOPIC == (int)TOPIC_LIMIT_PRODUCERS &&
                   (int)NS_LIMIT_CONSUMERS_PER_TOPIC == (int)TOPIC_LIMIT_CONSUMERS &&
                   (int)NS_LIMIT_CONSUMERS_PER_SUB == (int)TOPIC_LIMIT_CONSUMERS_PER_SUB &&
                   (int)NS_LIMIT_SUBSCRIPTIONS_PER_TOPIC == (int)TOPIC_LIMIT_SUBSCRIPTIONS &&
                   (int)NS_LIMIT_UNACKED_PER_CONSUMER == (int)TOPIC_LIMIT_UNACKED_PER_CONSUMER &&
                   (int)NS_LIMIT_UNACKED_PER_SUB == (int)TOPIC_LIMIT_UNACKED_PER_SUB,
               "enum ns_limit and enum topic_limit in the same order");
_Static_assert((int)NS_RATE_TOPIC == (int)TOPIC_RATE_TOPIC &&
                   (int)NS_RATE_SUB == (int)TOPIC_RATE_SUB &&
                   (int)NS_RATE_PUBLISH == (int)TOPIC_RATE_SCOPES,
               "enum ns_rate and topic_registry_rate's scopes in the same order");

/* The TopicPolicies field of pp; NULL for delayedDelivery (the whole object is read, and the
 * two fields written as one object: admin_tpol_delayed_fields). */
static const char *admin_tpol_field(const struct admin_tpol_path *pp)
{
    if (pp->kind == ADMIN_TPOL_DELAYED)
        return NULL;
    return pp->field ? pp->field : pp->seg;
}

/* Pulsar's setDelayedDeliveryPolicies: DelayedDeliveryPolicies d (NULL: removed) as the two
 * TopicPolicies fields, for ns_topic_policy_set's merge. */
static json_t *admin_tpol_delayed_fields(const struct ns_delayed *d)
{
    return json_pack("{s:o,s:o}", "delayedDeliveryEnabled",
                     d ? json_boolean(d->active) : json_null(), "delayedDeliveryTickTimeMillis",
                     d ? json_integer(d->tick_ms) : json_null());
}

/* The topic's own DelayedDeliveryPolicies from its TopicPolicies pol: set only when both fields
 * are, as Pulsar's getDelayedDeliveryPolicies; NULL otherwise. */
static json_t *admin_tpol_delayed_own(const json_t *pol)
{
    const json_t *en = json_object_get(pol, "delayedDeliveryEnabled");
    const json_t *tick = json_object_get(pol, "delayedDeliveryTickTimeMillis");
    if (!json_is_boolean(en) || !json_is_integer(tick))
        return NULL;
    struct ns_delayed d = {true, json_is_true(en), json_integer_value(tick)};
    return ns_delayed_json(&d);
}

/* One call waiting for the store. */
struct admin_tpol_call {
    struct admin_call *call;
    const struct admin_env *env;
    const struct admin_tpol_path *pp;
    char *tenant_ns; /* owned (applied=true) */
    struct ns *ns;   /* borrowed */
    bool applied;    /* GET: the value in force */
    bool write;      /* POST/DELETE */
    json_t *value;   /* owned: POST: the value to store (NULL: DELETE) */
    char *base;      /* owned */
};

static void admin_tpol_free(struct admin_tpol_call *tc)
{
    json_decref(tc->value);
    mg_free(tc->tenant_ns);
    mg_free(tc->base);
    mg_free(tc);
}

/* The broker's value of tc's path (what applies without a topic or namespace policy). */
static json_t *admin_tpol_broker_value(const struct admin_tpol_call *tc)
{
    const struct admin_tpol_path *pp = tc->pp;
    if (pp->kind == ADMIN_TPOL_BOOL)
        return json_boolean(tc->env->cfg->broker_dedup_enabled);
    if (pp->kind == ADMIN_TPOL_LIMIT)
        return json_integer(topic_registry_limit(tc->env->topics, (enum topic_limit)pp->which));
    if (pp->kind == ADMIN_TPOL_DELAYED) {
        struct ns_delayed d = {true, tc->env->cfg->delayed_delivery_enabled,
                               tc->env->cfg->delayed_delivery_tick_ms};
        return ns_delayed_json(&d);
    }
    if (pp->kind == ADMIN_TPOL_INACTIVE) {
        struct topic_inactive_policy ip = topic_registry_inactive_policy(tc->env->topics);
        struct ns_inactive in = {true, ip.delete_while_inactive, ip.caught_up,
                                 ip.max_inactive_ms / 1000};
        return ns_inactive_json(&in);
    }
    struct topic_dispatch_rate tr = topic_registry_rate(tc->env->topics, pp->which);
    struct ns_dispatch_rate d = {
        .set = true, .msgs = tr.msgs, .bytes = tr.bytes, .period_secs = tr.period_secs};
    return ns_dispatch_rate_json((enum ns_rate)pp->which, &d);
}

/* The value in force without the topic's own: the namespace's, else the broker's. */
static json_t *admin_tpol_inherited(const struct admin_tpol_call *tc)
{
    struct ns_policies p;
    if (ns_namespace_policies_get(tc->ns, tc->tenant_ns, &p) == 0) {
        int w = tc->pp->which;
        if (tc->pp->kind == ADMIN_TPOL_BOOL && p.has_dedup)
            return json_boolean(p.dedup_enabled);
        if (tc->pp->kind == ADMIN_TPOL_LIMIT && p.has_limit[w])
            return json_integer(p.limit[w]);
        if (tc->pp->kind == ADMIN_TPOL_RATE && p.rate[w].set)
            return ns_dispatch_rate_json((enum ns_rate)w, &p.rate[w]);
        if (tc->pp->kind == ADMIN_TPOL_INACTIVE && p.inactive.set)
            return ns_inactive_json(&p.inactive);
        if (tc->pp->kind == ADMIN_TPOL_DELAYED && p.delayed.set)
            return ns_delayed_json(&p.delayed);
    }
    return admin_tpol_broker_value(tc);
}

static void admin_tpol_got(void *data, int status, const json_t *value)
{
    struct admin_tpol_call *tc = data;
    if (!admin_call_ended(tc->call, status)) {
        json_t *v = tc->pp->kind == ADMIN_TPOL_DELAYED ? admin_tpol_delayed_own(value)
                    : value                            ? json_deep_copy(value)
                                                       : NULL;
        if (!v && tc->applied)
            v = admin_tpol_inherited(tc);
        if (v)
            admin_reply_json(tc->call, 200, v);
        else
            admin_reply_no_content(tc->call);
    }
    admin_tpol_free(tc);
}

static void admin_tpol_done(void *data, int status)
{
    struct admin_tpol_call *tc = data;
    admin_reply_done(tc->call, status);
    admin_tpol_free(tc);
}

/* Store call for tc, the topic being known to exist. */
static void admin_tpol_run(struct admin_tpol_call *tc)
{
    json_t *v = tc->value;
    tc->value = NULL;
    int rc = tc->write ? ns_topic_policy_set(tc->ns, tc->base, admin_tpol_field(tc->pp), v,
                                             admin_tpol_done, tc)
                       : ns_topic_policy_get(tc->ns, tc->base, admin_tpol_field(tc->pp),
                                             admin_tpol_got, tc);
    if (rc < 0) {
        admin_reply_error(tc->call, 500, mg_strerror(rc));
        admin_tpol_free(tc);
    }
}

/* ns_topic_stored's answer for a topic neither partitioned nor loaded here. */
static void admin_tpol_stored(void *data, int status)
{
    struct admin_tpol_call *tc = data;
    if (admin_call_gone(tc->call)) {
        admin_tpol_free(tc);
    } else if (status < 0) {
        admin_reply_error(tc->call, 500, mg_strerror(status));
        admin_tpol_free(tc);
    } else if (status == 0) {
        admin_reply_errorf(tc->call, 404, "Topic %s not found", tc->base);
        admin_tpol_free(tc);
    } else {
        admin_tpol_run(tc);
    }
}

/* The value a POST stores (new reference), or NULL once answered 400 or 412. */
static json_t *admin_tpol_body(struct admin_req *r, const struct admin_tpol_path *pp)
{
    const json_t *b = r->body_bad ? NULL : r->body;
    switch (pp->kind) {
    case ADMIN_TPOL_BOOL:
        if (json_is_boolean(b))
            return json_incref(r->body);
        admin_reply_error(r->call, 400, "Invalid deduplication setting: true or false is required");
        return NULL;
    case ADMIN_TPOL_LIMIT:
        if (!json_is_integer(b)) {
            admin_reply_errorf(r->call, 400, "Invalid %s: an integer body is required", pp->seg);
            return NULL;
        }
        if (json_integer_value(b) < 0 || json_integer_value(b) > INT32_MAX) {
            admin_reply_errorf(r->call, 412, "%s must be 0 or more", pp->arg ? pp->arg : pp->seg);
            return NULL;
        }
        return json_incref(r->body);
    default:
        break;
    }
    /* the policy objects: the value as stored, or 400 with the parser's reason */
    const char *why = pp->kind == ADMIN_TPOL_RATE ? "Invalid rate: a JSON object is required"
                      : pp->kind == ADMIN_TPOL_INACTIVE
                          ? "Invalid inactiveTopicPolicies: a JSON object is required"
                          : "Invalid delayedDelivery: a JSON object is required";
    json_t *v = NULL;
    struct ns_dispatch_rate d;
    struct ns_inactive in;
    struct ns_delayed dl;
    if (pp->kind == ADMIN_TPOL_RATE && b &&
        ns_dispatch_rate_parse((enum ns_rate)pp->which, b, &d, &why) == 0)
        v = ns_dispatch_rate_json((enum ns_rate)pp->which, &d);
    else if (pp->kind == ADMIN_TPOL_INACTIVE && b && ns_inactive_parse(b, &in, &why) == 0)
        v = ns_inactive_json(&in);
    else if (pp->kind == ADMIN_TPOL_DELAYED && b && ns_delayed_parse(b, &dl, &why) == 0)
        v = admin_tpol_delayed_fields(&dl);
    if (!v)
        admin_reply_error(r->call, 400, why);
    return v;
}

void admin_h_topic_policy(struct admin_req *r)
{
    const struct admin_env *s = r->a->env;
    const char *seg = r->seg[r->nseg - 1];
    const struct admin_tpol_path *pp = NULL;
    for (size_t i = 0; i < sizeof admin_tpol_paths / sizeof admin_tpol_paths[0]; i++)
        if (strcmp(admin_tpol_paths[i].seg, seg) == 0)
            pp = &admin_tpol_paths[i];
    if (!pp) {
        admin_h_not_found(r);
        return;
    }
    if (r->method != EVHTTP_REQ_GET && r->method != EVHTTP_REQ_POST &&
        r->method != EVHTTP_REQ_DELETE) {
        admin_h_bad_method(r);
        return;
    }
    if (r->tn.partition >= 0) {
        admin_reply_error(r->call, 412, "Not allowed to set/get topic policy for a partition");
        return;
    }
    const char *base = r->tn.base;
    /* (routing synced the partitioned metadata with the store: ADMIN_R_TOPIC_NAME) */
    bool known = ns_partitions_get(s->ns, base) > 0 || topic_find(s->topics, base);
    json_t *value = NULL;
    if (r->method == EVHTTP_REQ_POST && !(value = admin_tpol_body(r, pp)))
        return;
    if (r->method == EVHTTP_REQ_DELETE && pp->kind == ADMIN_TPOL_DELAYED)
        value = admin_tpol_delayed_fields(NULL); /* both fields removed, no other */
    struct admin_tpol_call *tc = mg_calloc(1, sizeof *tc);
    tc->call = r->call;
    tc->env = s;
    tc->pp = pp;
    tc->ns = s->ns;
    tc->tenant_ns = mg_strdup(r->tenant_ns);
    tc->base = mg_strdup(r->tn.base);
    tc->applied = admin_query_flag(r, "applied");
    tc->write = r->method != EVHTTP_REQ_GET;
    tc->value = value;
    if (known) {
        admin_tpol_run(tc);
        return;
    }
    int rc = ns_topic_stored(s->ns, tc->base, admin_tpol_stored, tc);
    if (rc < 0) {
        admin_reply_error(r->call, 500, mg_strerror(rc));
        admin_tpol_free(tc);
    }
}

/* ---- what goes with a deleted topic ------------------------------------------------------ */

/* A deleted topic's schema and topic policies being dropped (Pulsar's deleteSchema and
 * deleteTopicPolicies) before cb. */
struct admin_gone {
    const struct admin_env *env;
    char *base; /* owned */
    ns_done_cb cb;
    void *data;
};

struct admin_gone *admin_gone_new(const struct admin_env *env, const char *base, ns_done_cb cb,
                                  void *data)
{
    struct admin_gone *g = mg_calloc(1, sizeof *g);
    g->env = env;
    g->base = mg_strdup(base);
    g->cb = cb;
    g->data = data;
    return g;
}

void admin_gone_free(struct admin_gone *g)
{
    mg_free(g->base);
    mg_free(g);
}

static void admin_gone_end(void *data, int status)
{
    struct admin_gone *g = data;
    if (status < 0)
        MG_WARN("admin", "%s: deleted, but its topic policies were not: %s", g->base,
                mg_strerror(status));
    g->cb(g->data, 0);
    admin_gone_free(g);
}

static void admin_gone_policies(struct admin_gone *g)
{
    if (ns_topic_policy_set(g->env->ns, g->base, NULL, NULL, admin_gone_end, g) < 0)
        admin_gone_end(g, 0);
}

static void admin_gone_schema_deleted(void *data, int status, int64_t version,
                                      const struct sch_list *l, const char *err)
{
    (void)version, (void)l;
    struct admin_gone *g = data;
    if (status < 0 && status != -MG_ENOTFOUND)
        MG_WARN("admin", "%s: deleted, but its schema was not: %s", g->base,
                err ? err : mg_strerror(status));
    admin_gone_policies(g);
}

void admin_gone_done(void *data, int status)
{
    struct admin_gone *g = data;
    if (status < 0) {
        g->cb(g->data, status);
        admin_gone_free(g);
        return;
    }
    char *id = g->env->schemas ? sch_id_of_topic(g->base) : NULL;
    int rc = id ? sch_delete(g->env->schemas, id, admin_gone_schema_deleted, g) : -MG_ENOTFOUND;
    mg_free(id);
    if (rc < 0)
        admin_gone_policies(g);
}

void admin_gone_reply(void *data, int status)
{
    struct admin_call *c = data;
    if (!admin_call_gone(c))
        admin_reply_done(c, status);
}
