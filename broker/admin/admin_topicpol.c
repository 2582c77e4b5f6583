/*
 * admin_topicpol.c - topic-level policies over REST (Pulsar's PersistentTopics), so far
 * GET/POST/DELETE /admin/v2/persistent/{t}/{ns}/{topic}/deduplicationEnabled.
 *
 * As Pulsar's preValidation: a partition's name is refused (412 "Not allowed to set/get topic
 * policy for a partition": a partitioned topic's policy lives on its base name and applies
 * to every partition), a topic that exists nowhere gets 404 "Topic ... not found". GET
 * answers the topic's own value, or 204 when it has none; with applied=true the value in
 * force: the topic's, else the namespace's deduplicationEnabled, else
 * brokerDeduplicationEnabled. POST takes a bare JSON boolean (400 otherwise) and DELETE
 * removes the value; both answer 204 once the store holds it. Any broker answers (the store
 * is shared); the brokers serving the topic's partitions apply a change through their watch
 * on it (ns_topicpol.c), this one at once.
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

/* One call waiting for the store. */
struct admin_tpol_call {
    struct admin_call *call;
    const struct admin_env *env;
    char *tenant_ns;   /* owned (applied=true) */
    struct ns *ns;     /* borrowed */
    bool applied;      /* GET: the value in force */
    int dedup;         /* POST/DELETE: the value to store (-1 removes it) */
    bool write;        /* POST/DELETE */
    bool broker_dedup; /* brokerDeduplicationEnabled */
    char *base;        /* owned */
};

static void admin_tpol_free(struct admin_tpol_call *tc)
{
    mg_free(tc->tenant_ns);
    mg_free(tc->base);
    mg_free(tc);
}

static void admin_tpol_got(void *data, int status, int dedup)
{
    struct admin_tpol_call *tc = data;
    if (admin_call_gone(tc->call)) {
        admin_tpol_free(tc);
        return;
    }
    if (status < 0) {
        admin_reply_error(tc->call, 500, mg_strerror(status));
    } else {
        struct ns_policies p;
        if (dedup < 0 && tc->applied)
            dedup = ns_namespace_policies_get(tc->ns, tc->tenant_ns, &p) == 0 && p.has_dedup
                        ? p.dedup_enabled
                        : tc->broker_dedup;
        if (dedup < 0)
            admin_reply_no_content(tc->call);
        else
            admin_reply_json(tc->call, 200, json_boolean(dedup));
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
    int rc = tc->write ? ns_topic_dedup_set(tc->ns, tc->base, tc->dedup, admin_tpol_done, tc)
                       : ns_topic_dedup_get(tc->ns, tc->base, admin_tpol_got, tc);
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

void admin_h_topic_dedup(struct admin_req *r)
{
    const struct admin_env *s = r->a->env;
    if (r->tn.partition >= 0) {
        admin_reply_error(r->call, 412, "Not allowed to set/get topic policy for a partition");
        return;
    }
    const char *base = r->tn.base;
    /* (routing synced the partitioned metadata with the store: ADMIN_R_TOPIC_NAME) */
    bool known = ns_partitions_get(s->ns, base) > 0 || topic_find(s->topics, base);
    bool write = r->method != EVHTTP_REQ_GET;
    if (r->method == EVHTTP_REQ_POST && (r->body_bad || !json_is_boolean(r->body))) {
        admin_reply_error(r->call, 400, "Invalid deduplication setting: true or false is required");
        return;
    }
    struct admin_tpol_call *tc = mg_calloc(1, sizeof *tc);
    tc->call = r->call;
    tc->env = s;
    tc->ns = s->ns;
    tc->tenant_ns = mg_strdup(r->tenant_ns);
    tc->base = mg_strdup(r->tn.base);
    tc->applied = admin_query_flag(r, "applied");
    tc->write = write;
    tc->dedup = r->method == EVHTTP_REQ_POST ? json_is_true(r->body) : -1;
    tc->broker_dedup = s->cfg->broker_dedup_enabled;
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
    if (ns_topic_dedup_set(g->env->ns, g->base, -1, admin_gone_end, g) < 0)
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
