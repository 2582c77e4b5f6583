/*
 * conn_endpoint.c - what a connection's producers and consumers share: the setup a PRODUCER
 * or a SUBSCRIBE goes through, and their close by their topic.
 *
 * Happy path: conn_endpoint_start asks the namespace module whether this broker serves the
 * topic's bundle (ns_lookup, authoritative: an unowned bundle is taken here), then loads
 * the topic (topic_get), checks the bundle is still ours, runs the schema registry's step
 * (conn_schema.c: the command's schema registered or checked; the topic found again after
 * it) and hands the loaded topic to the endpoint's own step (ops->add: topic_producer_add or
 * topic_subscribe, which answers the client). Each asynchronous step holds the endpoint (holds); a
 * step that finds the connection closed, or the endpoint closed by the client meanwhile, only lets
 * go of it.
 *
 * Failure modes: a bundle owned elsewhere, or lost while the topic loaded, answers
 * ServiceNotReady with Pulsar's "Please redo the lookup" message (clients look up again); a
 * topic that cannot be loaded or added to answers its error; a schema the registry refuses
 * answers IncompatibleSchema. Every refusal is logged once,
 * here, and the endpoint is detached and released.
 */
#include "config/cfg.h"
#include "conn/conn_int.h"
#include "ns/ns.h"
#include "topic/topic.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

bool conn_endpoint_begin(struct conn *c, const struct conn_endpoint_ops *ops, struct mg_map *map,
                         uint64_t id, uint64_t request_id, const char *topic, struct topic_name *tn)
{
    struct conn_endpoint *old = mg_map_get_u64(map, id);
    if (old) {
        if (old->ready)
            ops->again(old, request_id);
        else
            conn_send_error(c, request_id, -MG_ENOTREADY, ops->present);
        return false;
    }
    const char *reason = NULL;
    int rc = conn_parse_topic(c, topic, tn, &reason);
    if (rc < 0) {
        conn_send_error(c, request_id, rc, reason);
        return false;
    }
    return true;
}

void conn_endpoint_init(struct conn_endpoint *e, const struct conn_endpoint_ops *ops,
                        struct conn *c, struct mg_map *map, uint64_t id, uint64_t request_id,
                        const struct topic_name *tn)
{
    *e = (struct conn_endpoint){
        .ops = ops,
        .conn = c,
        .id = id,
        .request_id = request_id,
        .topic = mg_strdup(tn->full),
        .map = map,
        .create = conn_auto_create(c, tn).topic,
        .attached = true,
        .schema_version = -1,
    };
    conn_ref(c);
    TAILQ_INSERT_TAIL(&c->endpoints, e, link);
    mg_map_put_u64(map, id, e);
}

void conn_endpoint_release(struct conn_endpoint *e)
{
    if (e->holds > 0 || e->attached)
        return;
    struct conn *c = e->conn;
    TAILQ_REMOVE(&c->endpoints, e, link);
    mg_free(e->topic);
    conn_schema_free(e->schema);
    e->ops->free(e);
    conn_unref(c);
}

void conn_endpoint_drop(struct conn_endpoint *e)
{
    if (e->attached) {
        mg_map_del_u64(e->map, e->id);
        e->attached = false;
    }
    e->ops->close_in_topic(e);
    conn_endpoint_release(e);
}

/* A step completed: false (and e let go of) when the connection closed or the client closed
 * e meanwhile. */
static bool conn_endpoint_step_done(struct conn_endpoint *e)
{
    e->holds--;
    if (conn_is_open(e->conn) && e->attached)
        return true;
    conn_endpoint_release(e);
    return false;
}

/* Answer ERROR(err, msg) to e's command (detail: more for the log line) and drop e. */
static void conn_endpoint_refuse(struct conn_endpoint *e, int err, const char *msg,
                                 const char *detail)
{
    const char *label = e->ops->label ? e->ops->label(e) : NULL;
    MG_INFO("conn", "[%" PRIu64 "] %s %" PRIu64 " on %s%s%s%s refused: %s%s%s", e->conn->id,
            e->ops->kind, e->id, e->topic, label ? " (" : "", label ? label : "", label ? ")" : "",
            msg, detail ? " " : "", detail ? detail : "");
    conn_send_error(e->conn, e->request_id, err, msg);
    conn_endpoint_drop(e);
}

static void conn_endpoint_topic_ready(struct topic *t, int status, void *data)
{
    struct conn_endpoint *e = data;
    if (!conn_endpoint_step_done(e))
        return;
    if (status < 0) {
        conn_endpoint_refuse(
            e, status, status == -MG_ENOTFOUND ? e->ops->topic_missing : mg_strerror(status), NULL);
        return;
    }
    char msg[400];
    int rc = conn_check_owned_name(e->conn, e->topic, msg, sizeof msg);
    if (rc < 0) {
        topic_unload(t); /* the bundle went away while the topic loaded: do not serve it */
        conn_endpoint_refuse(e, rc, msg, NULL);
        return;
    }
    e->holds++;
    if (conn_schema_step(e, t) == 0)
        conn_endpoint_schema_done(e, 0, NULL);
}

void conn_endpoint_schema_done(struct conn_endpoint *e, int status, const char *msg)
{
    if (!conn_endpoint_step_done(e))
        return;
    if (status < 0) {
        conn_endpoint_refuse(e, status, msg ? msg : mg_strerror(status), NULL);
        return;
    }
    /* the topic may have gone, or the bundle moved, while the registry answered */
    char why[400];
    struct topic *t = topic_find(e->conn->env->topics, e->topic);
    int rc = conn_check_owned_name(e->conn, e->topic, why, sizeof why);
    if (rc == 0 && !t) {
        rc = -MG_ENOTREADY;
        snprintf(why, sizeof why, "Topic %s was unloaded while its schema was checked", e->topic);
    }
    if (rc < 0) {
        conn_endpoint_refuse(e, rc, why, NULL);
        return;
    }
    rc = e->ops->add(e, t, why, sizeof why);
    if (rc < 0) {
        conn_endpoint_refuse(e, rc, why, NULL);
        return;
    }
    e->ready = true;
}

static void conn_endpoint_load(struct conn_endpoint *e)
{
    const struct conn_env *env = e->conn->env;
    e->holds++;
    int rc = topic_get(env->topics, e->topic, e->create, conn_endpoint_topic_ready, e);
    if (rc < 0) {
        e->holds--;
        conn_endpoint_refuse(e, rc, mg_strerror(rc), NULL);
    }
}

/* The namespace's listing for maxTopicsPerNamespace: a topic not in it is a new one. */
static void conn_endpoint_topics_listed(void *data, int status, char **names, int n)
{
    struct conn_endpoint *e = data;
    if (!conn_endpoint_step_done(e))
        return;
    bool known = false;
    for (int i = 0; status == 0 && i < n && !known; i++)
        known = strcmp(names[i], e->topic) == 0;
    struct topic_name tn;
    if (status == 0 && !known && topic_name_parse(e->topic, &tn) == 0) {
        int rc = ns_topics_room(e->conn->env->ns, &tn, names, n, 1);
        topic_name_fini(&tn);
        if (rc < 0) {
            conn_endpoint_refuse(e, rc, NS_TOPICS_FULL, NULL);
            return;
        }
    }
    conn_endpoint_load(e); /* a listing that failed: the store's error comes from the load */
}

/* A topic this setup may create, not loaded, in a namespace with maxTopicsPerNamespace:
 * list the namespace first (1: listing; 0: go on and load). */
static int conn_endpoint_count_topics(struct conn_endpoint *e)
{
    const struct conn_env *env = e->conn->env;
    struct topic_name tn;
    if (!e->create || topic_find(env->topics, e->topic) || topic_name_parse(e->topic, &tn) < 0)
        return 0;
    char *tenant_ns =
        ns_topics_max(env->ns, &tn) > 0 ? mg_asprintf("%s/%s", tn.tenant, tn.ns) : NULL;
    topic_name_fini(&tn);
    if (!tenant_ns)
        return 0;
    e->holds++;
    int rc = ns_list_topics(env->ns, tenant_ns, false, conn_endpoint_topics_listed, e);
    mg_free(tenant_ns);
    if (rc < 0) {
        e->holds--;
        return 0;
    }
    return 1;
}

static void conn_endpoint_owner_decided(void *data, int status, const char *url,
                                        const char *message)
{
    struct conn_endpoint *e = data;
    if (!conn_endpoint_step_done(e))
        return;
    if (status < 0 || url) {
        char msg[400];
        conn_check_owned_name(e->conn, e->topic, msg, sizeof msg);
        conn_endpoint_refuse(e, -MG_ENOTREADY, msg, message);
        return;
    }
    if (conn_endpoint_count_topics(e) == 0)
        conn_endpoint_load(e);
}

void conn_endpoint_start(struct conn_endpoint *e, const struct topic_name *tn)
{
    e->holds++;
    int rc = ns_lookup(e->conn->env->ns, tn, true, conn_endpoint_owner_decided, e);
    if (rc == 1)
        conn_endpoint_owner_decided(e, 0, NULL, NULL);
    else if (rc < 0)
        conn_endpoint_owner_decided(e, rc, NULL, NULL);
}

void conn_endpoint_closed(struct conn_endpoint *e)
{
    struct conn *c = e->conn;
    if (conn_is_open(c) && e->attached)
        e->ops->send_close(c, e->id);
    conn_endpoint_drop(e);
}
