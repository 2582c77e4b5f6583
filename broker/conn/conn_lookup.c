/*
 * conn_lookup.c - what a connection answers about topics and namespaces: topic names,
 * ownership checks, LOOKUP, PARTITIONED_METADATA and GET_TOPICS_OF_NAMESPACE.
 *
 * Happy path: LOOKUP asks the namespace module (ns_lookup) and answers Connect (this broker)
 * or Redirect (the owner, or the broker chosen for an unowned bundle), both authoritative.
 * PARTITIONED_METADATA answers the partition count (and creates a partitioned topic when
 * auto-created topics are partitioned: allowAutoTopicCreationType=partitioned or the
 * namespace's autoTopicCreation policy, ns_auto_create_get). GET_TOPICS_OF_NAMESPACE lists what
 * ns_list_topics finds, keeps what the client's topics_pattern matches (filtered=true; when
 * enableBrokerSideSubscriptionPatternEvaluation is on and the pattern is not longer than
 * subscriptionPatternMaxLength) and adds the list's topics_hash; a client that sent that hash
 * gets changed=false and no list. (GET_SCHEMA and GET_OR_CREATE_SCHEMA: conn_schema.c;
 * topic list watchers: conn_watch.c.)
 *
 * Failure modes: a name that cannot be parsed, or that held a NUL byte, answers
 * InvalidTopicName; a namespace that does not exist, its error; a topics_pattern that does
 * not compile, or that hits the match limits (ns_pattern_match), an error to that request
 * only; a lookup that cannot be
 * decided (store error, bundle in transition) answers Failed with the error, and the client
 * retries.
 */
#include "auth/auth.h"
#include "config/cfg.h"
#include "conn/conn_int.h"
#include "ns/ns.h"
#include "topic/topic.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"
#include "wire/wire.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Parse and check the topic of a PRODUCER, SUBSCRIBE, LOOKUP or PARTITIONED_METADATA. A
 * string of the command that held a NUL byte refuses it: the C string stops at the NUL, and
 * serving "a" when "a\0b" was asked for would be serving another topic. */
int conn_parse_topic(struct conn *c, const char *name, struct topic_name *tn, const char **reason)
{
    memset(tn, 0, sizeof *tn);
    if (c->frame_nul_field) {
        bool topic = strcmp(c->frame_nul_field, "topic") == 0;
        MG_INFO("conn", "[%" PRIu64 "] refused: the %s field holds a NUL byte", c->id,
                c->frame_nul_field);
        *reason = topic ? "Invalid topic name" : "A string of the command holds a NUL character";
        return topic ? -MG_EBADNAME : -MG_EINVAL;
    }
    if (topic_name_parse(name, tn) < 0) {
        *reason = "Invalid topic name";
        return -MG_EBADNAME;
    }
    int rc = ns_check_topic(c->env->ns, tn, reason);
    if (rc < 0)
        topic_name_fini(tn);
    return rc;
}

/* Connections run on one loop thread: one limiter serves them all. */
static struct mg_ratelimit conn_unauthorized_log;

void conn_log_unauthorized(struct conn *c, const char *what, const char *name)
{
    uint64_t held;
    if (mg_ratelimit_allow(&conn_unauthorized_log, MG_RATELIMIT_INTERVAL_MS, &held))
        MG_INFO("conn",
                "[%" PRIu64 "] %s %s: role %s not authorized (%" PRIu64
                " more refusals since the last line)",
                c->id, what, name, conn_role(c) ? conn_role(c) : "(none)", held);
}

bool conn_authorized(struct conn *c, const struct topic_name *tn, unsigned need, bool ns_only,
                     const char *sub)
{
    const struct auth *au = c->env->auth;
    if (!auth_authz_enabled(au))
        return true;
    const char *role = conn_role(c);
    if (!role)
        return false;
    if (auth_is_super_user(au, role))
        return true;
    const char *r;
    for (size_t i = 0; (r = ns_tenant_role(c->env->ns, tn->tenant, i)); i++)
        if (strcmp(r, role) == 0)
            return true;
    char *tenant_ns = mg_asprintf("%s/%s", tn->tenant, tn->ns);
    const json_t *grants = ns_namespace_auth(c->env->ns, tenant_ns);
    mg_free(tenant_ns);
    if (!(auth_granted(grants, role, ns_only ? NULL : tn->full) & need))
        return false;
    /* A subscription reserved to some roles (subscription_auth_roles) takes only those. */
    const json_t *subs =
        sub ? json_object_get(json_object_get(grants, "subscription_auth_roles"), sub) : NULL;
    if (json_array_size(subs) == 0)
        return true;
    for (size_t i = 0; i < json_array_size(subs); i++)
        if (json_is_string(json_array_get(subs, i)) &&
            strcmp(json_string_value(json_array_get(subs, i)), role) == 0)
            return true;
    return false;
}

void conn_authz_recheck(struct conn *c, const char *tenant_ns)
{
    if (!auth_authz_enabled(c->env->auth) || !conn_is_open(c))
        return;
    size_t nlen = strlen(tenant_ns);
    struct conn_endpoint *e, *tmp;
    TAILQ_FOREACH_SAFE(e, &c->endpoints, link, tmp)
    {
        /* the namespace's topics, of both domains ("<domain>://t/ns/...") */
        const char *scheme = strstr(e->topic, "://");
        struct topic_name tn;
        if (!e->attached || !e->ready || !scheme || strncmp(scheme + 3, tenant_ns, nlen) != 0 ||
            scheme[3 + nlen] != '/' || topic_name_parse(e->topic, &tn) < 0)
            continue;
        bool producer = e->map == &c->producers;
        const char *sub = producer ? NULL : ((struct conn_consumer *)e)->sub;
        if (!conn_authorized(c, &tn, producer ? AUTH_PRODUCE : AUTH_CONSUME, false, sub)) {
            MG_INFO("conn",
                    "[%" PRIu64 "] %s %" PRIu64 " on %s closed: role %s lost its permission", c->id,
                    e->ops->kind, e->id, e->topic, conn_role(c) ? conn_role(c) : "(none)");
            e->ops->send_close(c, e->id);
            conn_endpoint_drop(e);
        }
        topic_name_fini(&tn);
    }
    conn_watch_recheck(c, tenant_ns);
}

struct ns_auto_create conn_auto_create(struct conn *c, const struct topic_name *tn)
{
    struct ns_auto_create ac;
    char *tenant_ns = mg_asprintf("%s/%s", tn->tenant, tn->ns);
    ns_auto_create_get(c->env->ns, tenant_ns, &ac);
    mg_free(tenant_ns);
    return ac;
}

void conn_handle_partitioned_metadata(struct conn *c,
                                      const Pulsar__Proto__CommandPartitionedTopicMetadata *m)
{
    Pulsar__Proto__CommandPartitionedTopicMetadataResponse r =
        PULSAR__PROTO__COMMAND_PARTITIONED_TOPIC_METADATA_RESPONSE__INIT;
    r.request_id = m->request_id;
    r.has_response = 1;
    struct topic_name tn;
    const char *reason = NULL;
    char reason_buf[96];
    int rc = conn_parse_topic(c, m->topic, &tn, &reason);
    if (rc < 0) {
        r.response =
            PULSAR__PROTO__COMMAND_PARTITIONED_TOPIC_METADATA_RESPONSE__LOOKUP_TYPE__Failed;
        r.has_error = 1;
        r.error = (Pulsar__Proto__ServerError)mg_err_server_error(rc);
        r.message = (char *)reason;
    } else if (!conn_authorized(c, &tn, AUTH_PRODUCE | AUTH_CONSUME, false, NULL)) {
        conn_log_unauthorized(c, "partitioned metadata of", tn.full);
        topic_name_fini(&tn);
        r.response =
            PULSAR__PROTO__COMMAND_PARTITIONED_TOPIC_METADATA_RESPONSE__LOOKUP_TYPE__Failed;
        r.has_error = 1;
        r.error = (Pulsar__Proto__ServerError)mg_err_server_error(-MG_EAUTHZ);
        r.message = "Client is not authorized to Get Partition Metadata";
    } else {
        int n = tn.partition >= 0 ? 0 : ns_partitions_get(c->env->ns, tn.full);
        const struct cfg *cfg = c->env->cfg;
        int made = 0;
        struct ns_auto_create ac = conn_auto_create(c, &tn); /* namespace's policy, or keys */
        if (n == 0 && tn.partition < 0 && ac.topic && ac.partitioned &&
            !topic_find(c->env->topics, tn.full) && ac.partitions > 0) {
            made = ns_partitions_set(c->env->ns, tn.full, ac.partitions, true, NULL, NULL);
            if (made == 0)
                n = ac.partitions;
        }
        topic_name_fini(&tn);
        if (made == -MG_ENOTALLOWED) { /* defaultNumPartitions above the bound: as Pulsar */
            snprintf(reason_buf, sizeof reason_buf,
                     "Number of partitions should be less than or equal to %d",
                     cfg->max_num_partitions_per_partitioned_topic);
            r.response =
                PULSAR__PROTO__COMMAND_PARTITIONED_TOPIC_METADATA_RESPONSE__LOOKUP_TYPE__Failed;
            r.has_error = 1;
            r.error = (Pulsar__Proto__ServerError)mg_err_server_error(made);
            r.message = reason_buf;
        } else {
            r.response =
                PULSAR__PROTO__COMMAND_PARTITIONED_TOPIC_METADATA_RESPONSE__LOOKUP_TYPE__Success;
            r.has_partitions = 1;
            r.partitions = (uint32_t)n;
        }
    }
    CONN_SEND(c, PARTITIONED_METADATA_RESPONSE, partitionmetadataresponse, r);
}

static void conn_send_lookup_response(struct conn *c, uint64_t request_id, int status,
                                      const char *url, const char *message)
{
    Pulsar__Proto__CommandLookupTopicResponse r =
        PULSAR__PROTO__COMMAND_LOOKUP_TOPIC_RESPONSE__INIT;
    r.request_id = request_id;
    r.has_response = 1;
    if (status < 0) {
        r.response = PULSAR__PROTO__COMMAND_LOOKUP_TOPIC_RESPONSE__LOOKUP_TYPE__Failed;
        r.has_error = 1;
        r.error = (Pulsar__Proto__ServerError)mg_err_server_error(status);
        r.message = (char *)(message ? message : mg_strerror(status));
    } else {
        /* Connect (url NULL: this broker serves it) or Redirect to the owner / the broker
         * chosen for an unowned bundle; both authoritative (that broker takes it). */
        r.response = url ? PULSAR__PROTO__COMMAND_LOOKUP_TOPIC_RESPONSE__LOOKUP_TYPE__Redirect
                         : PULSAR__PROTO__COMMAND_LOOKUP_TOPIC_RESPONSE__LOOKUP_TYPE__Connect;
        r.brokerserviceurl = (char *)(url ? url : ns_broker_url(c->env->ns));
        /* As Pulsar, the TLS URL goes with the plain one when the target serves TLS: a
         * client that came over TLS connects there (it refuses a plain one). */
        const char *tls = url ? ns_broker_tls_url(c->env->ns, url) : ns_broker_url_tls(c->env->ns);
        r.brokerserviceurltls = (char *)tls;
        if (conn_tls(c) && !tls)
            MG_DEBUG("conn", "[%" PRIu64 "] lookup answer for a TLS client has no TLS URL (%s)",
                     conn_id(c), r.brokerserviceurl);
        r.has_authoritative = 1;
        r.authoritative = 1;
    }
    CONN_SEND(c, LOOKUP_RESPONSE, lookuptopicresponse, r);
}

/* A lookup waiting for the ownership decision (ns_lookup). */
struct conn_lookup_wait {
    struct conn *conn; /* counted reference */
    uint64_t request_id;
};

static void conn_lookup_decided(void *data, int status, const char *url, const char *message)
{
    struct conn_lookup_wait *l = data;
    struct conn *c = l->conn;
    if (conn_is_open(c)) {
        if (status < 0)
            MG_INFO("conn", "[%" PRIu64 "] lookup failed: %s", c->id,
                    message ? message : mg_strerror(status));
        conn_send_lookup_response(c, l->request_id, status, url, message);
    }
    mg_free(l);
    conn_unref(c);
}

void conn_handle_lookup(struct conn *c, const Pulsar__Proto__CommandLookupTopic *l)
{
    struct topic_name tn;
    const char *reason = NULL;
    int rc = conn_parse_topic(c, l->topic, &tn, &reason);
    if (rc < 0) {
        conn_send_lookup_response(c, l->request_id, rc, NULL, reason);
        return;
    }
    if (!conn_authorized(c, &tn, AUTH_PRODUCE | AUTH_CONSUME, false, NULL)) {
        conn_log_unauthorized(c, "lookup of", tn.full);
        conn_send_lookup_response(c, l->request_id, -MG_EAUTHZ, NULL,
                                  "Client is not authorized to Lookup");
        topic_name_fini(&tn);
        return;
    }
    struct conn_lookup_wait *w = mg_malloc(sizeof *w);
    w->conn = c;
    w->request_id = l->request_id;
    conn_ref(c);
    bool authoritative = l->has_authoritative && l->authoritative;
    rc = ns_lookup(c->env->ns, &tn, authoritative, conn_lookup_decided, w);
    if (rc != 0) {
        /* 1: owned here, answer at once; < 0: refused at once. */
        char msg[200];
        snprintf(msg, sizeof msg, "Lookup of %s failed: %s", tn.full, mg_strerror(rc));
        conn_send_lookup_response(c, l->request_id, rc > 0 ? 0 : rc, NULL, rc > 0 ? NULL : msg);
        mg_free(w);
        conn_unref(c);
    }
    topic_name_fini(&tn);
}

/* ServiceNotReady unless this broker owns the topic's bundle (clients look up again). */
static int conn_check_owned(struct conn *c, const struct topic_name *tn, char *msg, size_t len)
{
    if (ns_topic_owned(c->env->ns, tn))
        return 0;
    char range[NS_BUNDLE_NAME_LEN] = "?";
    ns_topic_bundle(c->env->ns, tn, range);
    snprintf(msg, len,
             "Namespace bundle %s/%s/%s of topic %s not served by this instance. Please redo "
             "the lookup.",
             tn->tenant, tn->ns, range, tn->full);
    return -MG_ENOTREADY;
}

int conn_check_owned_name(struct conn *c, const char *full, char *msg, size_t len)
{
    struct topic_name tn;
    if (topic_name_parse(full, &tn) < 0) {
        snprintf(msg, len, "Invalid topic name");
        return -MG_EBADNAME;
    }
    int rc = conn_check_owned(c, &tn, msg, len);
    topic_name_fini(&tn);
    return rc;
}

/* A GET_TOPICS_OF_NAMESPACE waiting for its listing. */
struct conn_topics_req {
    struct conn_req *r;
    struct ns_pattern *pat; /* owned; NULL: not filtered here */
    char *client_hash;      /* owned; the request's topics_hash or NULL */
};

static void conn_topics_req_free(struct conn_topics_req *q)
{
    ns_pattern_free(q->pat);
    mg_free(q->client_hash);
    mg_free(q);
}

static void conn_topics_listed(void *data, int status, char **names, int n)
{
    struct conn_topics_req *q = data;
    struct conn_req *r = q->r;
    char **match = mg_malloc(((size_t)n + 1) * sizeof *match); /* no system topics, as Pulsar */
    int kept = 0;
    if (status >= 0) {
        kept = ns_pattern_filter(q->pat, names, n, match);
        status = kept < 0 ? kept : 0;
    }
    if (status < 0) {
        conn_req_fail(r, status,
                      status == -MG_ENOTALLOWED
                          ? "Topics pattern exceeded the match limit of the broker"
                          : "Cannot list the namespace's topics");
    } else {
        Pulsar__Proto__CommandGetTopicsOfNamespaceResponse resp =
            PULSAR__PROTO__COMMAND_GET_TOPICS_OF_NAMESPACE_RESPONSE__INIT;
        char **topics = match;
        char hash[NS_TOPICS_HASH_LEN];
        ns_topics_hash(topics, kept, hash);
        resp.request_id = r->request_id;
        resp.has_filtered = 1;
        resp.filtered = q->pat != NULL;
        resp.topics_hash = hash;
        resp.has_changed = 1;
        resp.changed = !q->client_hash || strcmp(q->client_hash, hash) != 0;
        if (resp.changed) { /* an unchanged list is not sent again, as Pulsar */
            resp.n_topics = (size_t)kept;
            resp.topics = topics;
        }
        CONN_SEND(r->conn, GET_TOPICS_OF_NAMESPACE_RESPONSE, gettopicsofnamespaceresponse,
                  resp); /* nothing once the connection closed */
        conn_req_free(r);
    }
    mg_free(match);
    conn_topics_req_free(q);
}

bool conn_namespace_granted(struct conn *c, const char *tenant_ns)
{
    /* Consume granted on the namespace itself (a topic's grant is not enough), as Pulsar's
     * provider decides NamespaceOperation.GET_TOPICS. */
    if (!auth_authz_enabled(c->env->auth))
        return true;
    struct topic_name ns_tn = {0};
    const char *slash = tenant_ns ? strchr(tenant_ns, '/') : NULL;
    ns_tn.tenant = slash ? mg_strndup(tenant_ns, (size_t)(slash - tenant_ns))
                         : mg_strdup(tenant_ns ? tenant_ns : "");
    ns_tn.ns = mg_strdup(slash ? slash + 1 : "");
    bool ok = conn_authorized(c, &ns_tn, AUTH_CONSUME, true, NULL);
    mg_free(ns_tn.tenant);
    mg_free(ns_tn.ns);
    return ok;
}

bool conn_namespace_readable(struct conn *c, const char *tenant_ns, uint64_t request_id)
{
    bool ok = conn_namespace_granted(c, tenant_ns);
    if (!ok) {
        conn_log_unauthorized(c, "topics of", tenant_ns ? tenant_ns : "");
        conn_send_error(c, request_id, -MG_EAUTHZ,
                        "Client is not authorized to GetTopicsOfNamespace");
    }
    return ok;
}

void conn_handle_get_topics(struct conn *c, const Pulsar__Proto__CommandGetTopicsOfNamespace *m)
{
    struct conn_topics_req *q = mg_calloc(1, sizeof *q);
    /* Pulsar's modes: PERSISTENT (the default), NON_PERSISTENT (the loaded ones), ALL */
    int domains = NS_DOMAIN_PERSISTENT;
    if (m->has_mode &&
        m->mode == PULSAR__PROTO__COMMAND_GET_TOPICS_OF_NAMESPACE__MODE__NON_PERSISTENT)
        domains = NS_DOMAIN_NON_PERSISTENT;
    else if (m->has_mode && m->mode == PULSAR__PROTO__COMMAND_GET_TOPICS_OF_NAMESPACE__MODE__ALL)
        domains |= NS_DOMAIN_NON_PERSISTENT;
    if (!conn_namespace_readable(c, m->namespace_, m->request_id)) {
        conn_topics_req_free(q);
        return;
    }
    /* As Pulsar: the pattern is applied here when evaluation is on and it is not longer
     * than subscriptionPatternMaxLength; otherwise the whole list goes (filtered=false) and
     * the client filters. */
    const struct cfg *cfg = c->env->cfg;
    if (m->topics_pattern && cfg->pattern_evaluation &&
        strlen(m->topics_pattern) <= (size_t)cfg->subscription_pattern_max_length) {
        char err[200];
        int rc = ns_pattern_compile(m->topics_pattern, &q->pat, err, sizeof err);
        if (rc < 0) {
            MG_DEBUG("conn", "[%" PRIu64 "] GET_TOPICS_OF_NAMESPACE refused: %s", c->id, err);
            conn_send_error(c, m->request_id, rc, err);
            conn_topics_req_free(q);
            return;
        }
    }
    q->client_hash = m->topics_hash ? mg_strdup(m->topics_hash) : NULL;
    q->r = conn_req_new(c, m->request_id, 0, -1);
    int rc = ns_list_topics_in(c->env->ns, m->namespace_, domains, false, conn_topics_listed, q);
    if (rc < 0) {
        conn_req_fail(q->r, rc, "Namespace does not exist");
        conn_topics_req_free(q);
    }
}
