/*
 * ns_topicpol.c - topic-level policies (Pulsar's TopicPolicies): deduplicationEnabled, the
 * limits (maxProducerPerTopic ... maxUnackedMessagesOnSubscription), the rates
 * (dispatchRate, subscriptionDispatchRate, publishRate), inactiveTopicPolicies and
 * delayedDeliveryEnabled with delayedDeliveryTickTimeMillis, one row each in ns_tpol_fields.
 *
 * Each topic's policies are one TopicPolicies JSON object ({"deduplicationEnabled": true})
 * in the metadata store at
 *   /admin/topic-policies/<tenant>/<ns>/persistent/<local name>
 * keyed by the partitioned topic's base name, so the policy of a partitioned topic applies
 * to every partition, as in Pulsar (docs/metadata.md §4). A node without any field is
 * deleted.
 *
 * Every broker sees a change: when a topic loads here (ns_topic_policies_track) the module
 * reads its node and keeps a one-shot data watch on it, re-armed on each event (set the
 * watch, then read); each read applies every field to every loaded topic of that base name
 * (topic_set_topic_deduplication, topic_set_topic_limit, topic_set_topic_dispatch_rate,
 * topic_set_topic_publish_rate, topic_set_topic_inactive_policy,
 * topic_set_topic_delayed_delivery; a field not set goes back
 * to the namespace's), which wins
 * over the namespace's and the broker's (deduplicationEnabled last: it may release a held
 * topic's waiters, which may free it). A change made through this broker is applied at once,
 * without waiting for the watch. One tracking entry is kept per base name loaded here; it is
 * dropped at the first read that finds no topic of that name loaded any more, or by a sweep
 * that looks at two entries per newly tracked name (so the entries stay about as many as the
 * names loaded). Without a metadata store the cache is the store.
 */
#include "meta/meta.h"
#include "ns/ns.h"
#include "ns/ns_int.h"
#include "topic/topic.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"

#include <jansson.h>
#include <string.h>

#define MOD "ns"
#define TOPICPOL_ROOT "/admin/topic-policies"

/* One base name tracked here (ns.topic_pols). */
struct ns_tpol {
    struct ns_pending p; /* first: p.s NULL once the module is freed with a read in flight */
    char *base;          /* owned: base full name (the map's key) */
    char *path;          /* owned */
    json_t *pol;         /* owned: the stored TopicPolicies object */
    struct meta_watch *w;
    struct meta_req req;
    bool again;
};

/* One store operation of an admin call: read the node, then (set) write it changed. */
struct ns_tpol_op {
    struct ns *s;
    char *base, *path;
    bool set;      /* a write follows the read */
    char *field;   /* owned: the TopicPolicies field; NULL: all of them (get: the whole object;
                      set: each member of value, null removing it, or value NULL: the node) */
    json_t *value; /* owned: set: the new value (NULL removes the field) */
    ns_topic_pol_cb get_cb;
    ns_done_cb done_cb;
    void *data;
    json_t *pol; /* the node's object (owned) */
    struct meta_req req;
};

static char *ns_tpol_path(const char *base)
{
    struct topic_name tn;
    if (topic_name_parse(base, &tn) < 0)
        return NULL;
    char *p = mg_asprintf(TOPICPOL_ROOT "/%s/%s/persistent/%s", tn.tenant, tn.ns, tn.local);
    topic_name_fini(&tn);
    return p;
}

/* The TopicPolicies fields applied to topics: name, kind and the topic's enum. */
enum ns_tpol_kind { NS_TPOL_BOOL, NS_TPOL_LIMIT, NS_TPOL_RATE, NS_TPOL_INACTIVE, NS_TPOL_DELAYED };
static const struct ns_tpol_field {
    const char *name;
    enum ns_tpol_kind kind;
    int which; /* LIMIT: enum topic_limit; RATE: enum ns_rate */
} ns_tpol_fields[] = {
    {"maxProducerPerTopic", NS_TPOL_LIMIT, TOPIC_LIMIT_PRODUCERS},
    {"maxConsumerPerTopic", NS_TPOL_LIMIT, TOPIC_LIMIT_CONSUMERS},
    {"maxConsumersPerSubscription", NS_TPOL_LIMIT, TOPIC_LIMIT_CONSUMERS_PER_SUB},
    {"maxSubscriptionsPerTopic", NS_TPOL_LIMIT, TOPIC_LIMIT_SUBSCRIPTIONS},
    {"maxUnackedMessagesOnConsumer", NS_TPOL_LIMIT, TOPIC_LIMIT_UNACKED_PER_CONSUMER},
    {"maxUnackedMessagesOnSubscription", NS_TPOL_LIMIT, TOPIC_LIMIT_UNACKED_PER_SUB},
    {"dispatchRate", NS_TPOL_RATE, NS_RATE_TOPIC},
    {"subscriptionDispatchRate", NS_TPOL_RATE, NS_RATE_SUB},
    {"publishRate", NS_TPOL_RATE, NS_RATE_PUBLISH},
    {"inactiveTopicPolicies", NS_TPOL_INACTIVE, 0},
    {"delayedDeliveryEnabled", NS_TPOL_DELAYED, 0}, /* with delayedDeliveryTickTimeMillis */
    /* last: releasing a held topic runs its waiters, which may close and free it */
    {"deduplicationEnabled", NS_TPOL_BOOL, 0},
};

/* Each field of pol (a TopicPolicies object, NULL: none) onto t; a field not set, or not of
 * its type, is taken off the topic (the namespace's value applies again). */
static void ns_tpol_apply_one(struct topic *t, const json_t *pol)
{
    for (size_t i = 0; i < sizeof ns_tpol_fields / sizeof ns_tpol_fields[0]; i++) {
        const struct ns_tpol_field *f = &ns_tpol_fields[i];
        const json_t *v = json_object_get(pol, f->name);
        struct ns_dispatch_rate d;
        const char *why;
        switch (f->kind) {
        case NS_TPOL_BOOL:
            topic_set_topic_deduplication(t, json_is_boolean(v) ? json_is_true(v) : -1);
            break;
        case NS_TPOL_LIMIT:
            topic_set_topic_limit(t, (enum topic_limit)f->which,
                                  json_is_integer(v) ? json_integer_value(v) : -1);
            break;
        case NS_TPOL_RATE: {
            bool set = v && ns_dispatch_rate_parse((enum ns_rate)f->which, v, &d, &why) == 0;
            struct topic_dispatch_rate tr = {set ? d.msgs : 0, set ? d.bytes : 0,
                                             set ? d.period_secs : 1};
            if (f->which == NS_RATE_PUBLISH)
                topic_set_topic_publish_rate(t, set ? &tr : NULL);
            else
                topic_set_topic_dispatch_rate(
                    t, f->which == NS_RATE_TOPIC ? TOPIC_RATE_TOPIC : TOPIC_RATE_SUB,
                    set ? &tr : NULL);
            break;
        }
        case NS_TPOL_INACTIVE: {
            struct ns_inactive in = {0};
            bool set = v && ns_inactive_parse(v, &in, &why) == 0;
            struct topic_inactive_policy tp = {in.delete_while_inactive, in.caught_up,
                                               in.max_secs * 1000};
            topic_set_topic_inactive_policy(t, set ? &tp : NULL);
            break;
        }
        case NS_TPOL_DELAYED: {
            const json_t *tick = json_object_get(pol, "delayedDeliveryTickTimeMillis");
            topic_set_topic_delayed_delivery(t, json_is_boolean(v) ? json_is_true(v) : -1,
                                             json_is_integer(tick) ? json_integer_value(tick) : 0);
            break;
        }
        }
    }
}

static json_t *ns_tpol_parse(const char *value, size_t len, const char *path)
{
    json_error_t err;
    json_t *j = len ? json_loadb(value, len, 0, &err) : NULL;
    if (len && !json_is_object(j)) {
        MG_WARN(MOD, "%s: not a TopicPolicies object; treated as empty", path);
        json_decref(j);
        j = NULL;
    }
    return j ? j : json_object();
}

/* "-partition-<digits>" (what follows a partition's base name)? */
static bool ns_tpol_is_partition(const char *s)
{
    static const char suffix[] = "-partition-";
    if (strncmp(s, suffix, sizeof suffix - 1) != 0 || !s[sizeof suffix - 1])
        return false;
    for (s += sizeof suffix - 1; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* Apply pol (when apply) to every loaded topic of base name base; false when none is
 * loaded. */
static bool ns_tpol_apply(struct ns *s, const char *base, bool apply, const json_t *pol)
{
    if (!s->topics)
        return false;
    bool any = false;
    size_t pos = 0;
    struct topic *t;
    size_t blen = strlen(base);
    while ((t = topic_next(s->topics, &pos))) {
        const char *n = topic_full_name(t);
        if (strncmp(n, base, blen) == 0 && (n[blen] == '\0' || ns_tpol_is_partition(n + blen))) {
            if (apply)
                ns_tpol_apply_one(t, pol);
            any = true;
        }
    }
    return any;
}

static void ns_tpol_free(struct ns_tpol *e)
{
    meta_req_fini(&e->req);
    json_decref(e->pol);
    mg_free(e->base);
    mg_free(e->path);
    mg_free(e);
}

/* Stop tracking e: its watch, its map entry, the entry. */
static void ns_tpol_drop(void *entry)
{
    struct ns_tpol *e = entry;
    struct ns *s = e->p.s;
    if (s->meta)
        meta_unwatch(s->meta, e->w);
    mg_map_del_str(&s->topic_pols, e->base);
    ns_tpol_free(e);
}

static void ns_tpol_arm(struct ns_tpol *e);

/* A new entry for base (a parsed name), not set, in s->topic_pols. */
static struct ns_tpol *ns_tpol_new(struct ns *s, const char *base)
{
    struct ns_tpol *e = mg_calloc(1, sizeof *e);
    e->p.s = s;
    e->base = mg_strdup(base);
    e->path = ns_tpol_path(base);
    e->pol = json_object();
    mg_map_put_str(&s->topic_pols, e->base, e);
    return e;
}

static void ns_tpol_read_cb(struct meta_req *req, int status)
{
    struct ns_tpol *e = req->data;
    e->p.reading = false;
    struct ns *s = e->p.s;
    if (!s) {
        ns_tpol_free(e);
        return;
    }
    if (status == 0 || status == -MG_ENOTFOUND) {
        json_decref(e->pol);
        e->pol = status == 0 ? ns_tpol_parse(req->value, req->len, e->path) : json_object();
    } else {
        MG_WARN(MOD, "%s: topic policies not read (%s); kept as they were", e->path,
                mg_strerror(status));
    }
    meta_req_fini(&e->req);
    memset(&e->req, 0, sizeof e->req);
    if (!ns_tpol_apply(s, e->base, true, e->pol)) {
        ns_tpol_drop(e); /* no topic of this name is served here any more */
        return;
    }
    if (e->again) {
        e->again = false;
        ns_tpol_arm(e);
    }
}

static void ns_tpol_watch_cb(struct meta_store *m, const char *path, enum meta_watch_event ev,
                             void *data)
{
    (void)m, (void)path, (void)ev;
    struct ns_tpol *e = data;
    e->w = NULL;
    if (e->p.reading)
        e->again = true;
    else
        ns_tpol_arm(e);
}

/* Set the watch, then read (the watch is in place before the read is served). */
static void ns_tpol_arm(struct ns_tpol *e)
{
    struct ns *s = e->p.s;
    if (!e->w)
        e->w = meta_watch(s->meta, e->path, false, ns_tpol_watch_cb, e);
    e->req.data = e;
    if (meta_get(s->meta, e->path, &e->req, ns_tpol_read_cb) == 0) {
        e->p.reading = true;
    } else {
        MG_WARN(MOD, "%s: topic policies not read (store closed)", e->path);
        ns_tpol_apply(s, e->base, true, e->pol); /* what is known; no topic waits for it */
    }
}

/* An entry of a name no longer loaded here: dropped by the sweep (ns_pending_sweep, two
 * entries per newly tracked name: a topic unloaded while its policy did not change would
 * otherwise keep its entry and watch). */
static bool ns_tpol_stale(void *entry)
{
    struct ns_tpol *e = entry;
    return !ns_tpol_apply(e->p.s, e->base, false, NULL);
}

void ns_topic_policies_track(struct ns *s, struct topic *t)
{
    struct topic_name tn;
    if (topic_name_parse(topic_full_name(t), &tn) < 0)
        return;
    struct ns_tpol *e = mg_map_get_str(&s->topic_pols, tn.base);
    if (e) {
        topic_name_fini(&tn);
        if (e->p.reading) /* the read in flight applies it */
            topic_hold_topic_policy(t);
        else
            ns_tpol_apply_one(t, e->pol);
        return;
    }
    if (s->meta) /* (without a store the entries are the store) */
        ns_pending_sweep(&s->topic_pols, &s->topic_pols_sweep, ns_tpol_stale, ns_tpol_drop);
    e = ns_tpol_new(s, tn.base);
    topic_name_fini(&tn);
    if (s->meta) {
        topic_hold_topic_policy(t);
        ns_tpol_arm(e);
    }
}

static void ns_tpol_unwatch(void *value)
{
    struct ns_tpol *e = value;
    if (e->p.s->meta)
        meta_unwatch(e->p.s->meta, e->w);
}

static void ns_tpol_free_one(void *value)
{
    ns_tpol_free(value);
}

void ns_topicpol_fini(struct ns *s)
{
    ns_pending_release(&s->topic_pols, ns_tpol_unwatch, ns_tpol_free_one);
}

/* ---- admin calls ------------------------------------------------------------------------- */

/* A get's answer: field of pol, or (field NULL) pol itself. */
static const json_t *ns_tpol_field(const json_t *pol, const char *field)
{
    return field ? json_object_get(pol, field) : pol;
}

static void ns_tpol_op_free(struct ns_tpol_op *op)
{
    meta_req_fini(&op->req);
    json_decref(op->pol);
    json_decref(op->value);
    mg_free(op->field);
    mg_free(op->base);
    mg_free(op->path);
    mg_free(op);
}

/* The write completed: the cache and the topics loaded here take the value at once. */
static void ns_tpol_op_written(struct ns_tpol_op *op, int status)
{
    if (status == 0) {
        struct ns_tpol *e = mg_map_get_str(&op->s->topic_pols, op->base);
        if (e) {
            json_decref(e->pol);
            e->pol = json_incref(op->pol);
        }
        ns_tpol_apply(op->s, op->base, true, op->pol);
    } else {
        MG_WARN(MOD, "%s: topic policies not written: %s", op->path, mg_strerror(status));
    }
    op->done_cb(op->data, status);
    ns_tpol_op_free(op);
}

static void ns_tpol_op_write_cb(struct meta_req *req, int status)
{
    ns_tpol_op_written(req->data, status == -MG_ENOTFOUND ? 0 : status);
}

/* The change of a set onto op->pol: its field set to (or, value NULL, taken off) value; no
 * field: each member of value set (a null one taken off), or without value every field taken
 * off. */
static void ns_tpol_op_change(struct ns_tpol_op *op)
{
    if (!op->field && op->value) {
        const char *k;
        json_t *v;
        json_object_foreach(op->value, k, v)
        {
            if (json_is_null(v))
                json_object_del(op->pol, k);
            else
                json_object_set(op->pol, k, v);
        }
    } else if (!op->field)
        json_object_clear(op->pol);
    else if (op->value)
        json_object_set(op->pol, op->field, op->value);
    else
        json_object_del(op->pol, op->field);
}

static void ns_tpol_op_read_cb(struct meta_req *req, int status)
{
    struct ns_tpol_op *op = req->data;
    if (status != 0 && status != -MG_ENOTFOUND) {
        if (op->set)
            op->done_cb(op->data, status);
        else
            op->get_cb(op->data, status, NULL);
        ns_tpol_op_free(op);
        return;
    }
    op->pol = status == 0 ? ns_tpol_parse(req->value, req->len, op->path) : json_object();
    meta_req_fini(&op->req);
    memset(&op->req, 0, sizeof op->req);
    op->req.data = op;
    if (!op->set) {
        op->get_cb(op->data, 0, ns_tpol_field(op->pol, op->field));
        ns_tpol_op_free(op);
        return;
    }
    ns_tpol_op_change(op);
    int rc;
    if (json_object_size(op->pol) == 0) {
        rc = status == -MG_ENOTFOUND ? (ns_tpol_op_written(op, 0), 0)
                                     : meta_delete(op->s->meta, op->path, META_VERSION_ANY,
                                                   &op->req, ns_tpol_op_write_cb);
    } else {
        char *v = json_dumps(op->pol, JSON_COMPACT);
        rc = meta_put(op->s->meta, op->path, v, strlen(v), META_VERSION_ANY, META_CREATE_PARENTS,
                      &op->req, ns_tpol_op_write_cb);
        free(v);
    }
    if (rc < 0)
        ns_tpol_op_written(op, rc);
}

static void ns_tpol_op_nometa(void *arg)
{
    struct ns_tpol_op *op = arg;
    struct ns_tpol *e = mg_map_get_str(&op->s->topic_pols, op->base);
    if (op->set) {
        op->pol = json_deep_copy(e->pol);
        ns_tpol_op_change(op);
        ns_tpol_op_written(op, 0);
        return;
    }
    op->get_cb(op->data, 0, e ? ns_tpol_field(e->pol, op->field) : NULL);
    ns_tpol_op_free(op);
}

static int ns_tpol_op_start(struct ns *s, const char *base, struct ns_tpol_op *tmpl)
{
    char *path = ns_tpol_path(base);
    if (!path) {
        mg_free(tmpl->field);
        json_decref(tmpl->value);
        return -MG_EBADNAME;
    }
    struct ns_tpol_op *op = mg_calloc(1, sizeof *op);
    *op = *tmpl;
    op->s = s;
    op->base = mg_strdup(base);
    op->path = path;
    op->req.data = op;
    if (!s->meta) {
        if (op->set && !mg_map_get_str(&s->topic_pols, base))
            ns_tpol_new(s, base); /* the cache is the store */
        return ns_later(s, ns_tpol_op_nometa, op);
    }
    int rc = meta_get(s->meta, path, &op->req, ns_tpol_op_read_cb);
    if (rc < 0)
        ns_tpol_op_free(op);
    return rc;
}

int ns_topic_policy_get(struct ns *s, const char *base, const char *field, ns_topic_pol_cb cb,
                        void *data)
{
    struct ns_tpol_op t = {.field = field ? mg_strdup(field) : NULL, .get_cb = cb, .data = data};
    return ns_tpol_op_start(s, base, &t);
}

int ns_topic_policy_set(struct ns *s, const char *base, const char *field, json_t *value,
                        ns_done_cb cb, void *data)
{
    struct ns_tpol_op t = {.set = true,
                           .field = field ? mg_strdup(field) : NULL,
                           .value = value,
                           .done_cb = cb,
                           .data = data};
    return ns_tpol_op_start(s, base, &t);
}
