/*
 * conn_schema.c - schemas on a connection: the registry step of a PRODUCER or SUBSCRIBE
 * setup, GET_SCHEMA and GET_OR_CREATE_SCHEMA (Pulsar's ServerCnx and AbstractTopic.addSchema).
 *
 * Happy path: a PRODUCER with a schema registers it (schema.h sch_put under its namespace's
 * strategy; with isAllowAutoUpdateSchema off it must already be stored) and its
 * PRODUCER_SUCCESS carries the version (8 bytes, big-endian). A SUBSCRIBE with a schema
 * (not AUTO_CONSUME) is checked against the stored ones, or registered on an idle topic
 * without one. GET_SCHEMA answers the latest live version or the one asked for;
 * GET_OR_CREATE_SCHEMA registers as a PRODUCER does, for a topic loaded here. Messages are
 * stored as the producer sent them: the schema_version of their metadata is never touched.
 *
 * Failure modes: a schema the registry refuses (incompatible, invalid, too large) answers
 * IncompatibleSchema with the registry's reason; a producer without a schema on a topic with
 * one is refused unless auto update is on and the strategy is ALWAYS_COMPATIBLE;
 * GET_SCHEMA of a topic without a schema, or of a version that does not exist (or was
 * deleted), answers TopicNotFound "Topic not found or no-schema <topic>" (what clients read
 * as "no schema"); an empty version IncompatibleSchema; a bad name InvalidTopicName. A store
 * error answers its code; the refusal is logged once, by the endpoint's setup.
 */
#include "conn/conn_int.h"
#include "schema/schema.h"
#include "topic/topic.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define CONN_NO_SCHEMA_MSG                                                                         \
    "Producers cannot connect or send message without a schema to topics with a schema"

struct sch_schema *conn_schema_from_wire(const Pulsar__Proto__Schema *s)
{
    if (!s)
        return NULL;
    struct sch_schema *o = mg_malloc(sizeof *o);
    enum sch_type t = (unsigned)s->type < SCH_TYPE_COUNT ? (enum sch_type)s->type : SCH_NONE;
    sch_schema_init(o, t, s->schema_data.data, s->schema_data.len);
    for (size_t i = 0; i < s->n_properties; i++)
        if (s->properties[i]->key)
            sch_schema_add_prop(o, s->properties[i]->key, s->properties[i]->value);
    return o;
}

void conn_schema_free(struct sch_schema *s)
{
    sch_schema_fini(s);
    mg_free(s);
}

void conn_schema_version_field(const struct conn_endpoint *e, uint8_t buf[8],
                               ProtobufCBinaryData *out)
{
    out->len = 0;
    out->data = buf;
    if (e->schema_version >= 0) {
        sch_version_put(e->schema_version, buf);
        out->len = 8;
    }
}

/* ---- registering a producer's schema (PRODUCER, GET_OR_CREATE_SCHEMA) ------------------- */

typedef void (*conn_schema_done_fn)(void *data, int status, int64_t version, const char *msg);

struct conn_schema_reg {
    conn_schema_done_fn done;
    void *data;
    bool auto_update;
    enum sch_strategy strategy;
};

static void conn_schema_registered(void *data, int status, int64_t version,
                                   const struct sch_list *l, const char *err)
{
    struct conn_schema_reg *g = data;
    (void)l;
    /* an invalid or too large definition is IncompatibleSchema on the wire, as Pulsar's
     * InvalidSchemaDataException */
    if (status == -MG_EINVAL || status == -MG_ETOOBIG)
        status = -MG_EINCOMPATSCHEMA;
    g->done(g->data, status, status < 0 ? -1 : version, err);
    mg_free(g);
}

/* Without a schema: allowed on a topic without one, else only when auto update is on and the
 * strategy is ALWAYS_COMPATIBLE. */
static void conn_schema_none_listed(void *data, int status, int64_t version,
                                    const struct sch_list *l, const char *err)
{
    struct conn_schema_reg *g = data;
    (void)version;
    if (status == 0 && l->n && !(g->auto_update && g->strategy == SCH_ALWAYS_COMPATIBLE))
        g->done(g->data, -MG_EINCOMPATSCHEMA, -1, CONN_NO_SCHEMA_MSG);
    else if (status < 0 && status != -MG_ENOTFOUND)
        g->done(g->data, status, -1, err);
    else
        g->done(g->data, 0, -1, NULL);
    mg_free(g);
}

/* Register schema s (NULL or NONE: none) of topic for a producer (consumer: false) or a
 * consumer (idle: the topic has no producer, consumer or message), done once, after the call
 * returned; or < 0 synchronously (done never runs). */
static int conn_schema_register(struct sch_registry *reg, const char *topic,
                                const struct sch_schema *s, bool consumer, bool idle,
                                conn_schema_done_fn done, void *data)
{
    char *id = sch_id_of_topic(topic);
    if (!id)
        return -MG_EBADNAME;
    char *tenant_ns = mg_strdup(id);
    *strchr(strchr(tenant_ns, '/') + 1, '/') = '\0';
    struct conn_schema_reg *g = mg_calloc(1, sizeof *g);
    *g = (struct conn_schema_reg){.done = done,
                                  .data = data,
                                  .auto_update = sch_ns_auto_update(reg, tenant_ns),
                                  .strategy = sch_ns_strategy(reg, tenant_ns)};
    int rc;
    if (!s || s->type == SCH_NONE)
        rc = sch_list(reg, id, conn_schema_none_listed, g);
    else
        rc = sch_put(reg, id, s, g->strategy,
                     consumer         ? (idle ? SCH_PUT_CONSUMER_IDLE : SCH_PUT_CONSUMER_ACTIVE)
                     : g->auto_update ? SCH_PUT_REGISTER
                                      : SCH_PUT_FIND_ONLY,
                     conn_schema_registered, g);
    if (rc < 0)
        mg_free(g);
    mg_free(tenant_ns);
    mg_free(id);
    return rc;
}

/* ---- the endpoint's step ------------------------------------------------------------------- */

static void conn_schema_step_done(void *data, int status, int64_t version, const char *msg)
{
    struct conn_endpoint *e = data;
    e->schema_version = version;
    conn_endpoint_schema_done(e, status, msg);
}

int conn_schema_step(struct conn_endpoint *e, struct topic *t)
{
    struct sch_registry *reg = e->conn->env->schemas;
    const struct sch_schema *s = e->schema;
    if (!reg)
        return 0;
    if (e->ops->consumer && (!s || s->type == SCH_NONE || s->type == SCH_AUTO_CONSUME))
        return 0; /* nothing to check */
    bool idle = false;
    if (e->ops->consumer) {
        struct topic_stats st;
        topic_get_stats(t, &st);
        idle = st.n_producers == 0 && st.n_consumers == 0 && st.msg_in_counter == 0;
    }
    int rc =
        conn_schema_register(reg, e->topic, s, e->ops->consumer, idle, conn_schema_step_done, e);
    if (rc < 0)
        conn_endpoint_schema_done(e, rc, mg_strerror(rc));
    return 1;
}

/* ---- GET_SCHEMA ------------------------------------------------------------------------------ */

struct conn_schema_get {
    struct conn_req *req; /* owned */
    char *topic;          /* owned: as the client named it */
    char *id;             /* owned: the schema id */
    int64_t version;      /* -1: the latest */
};

static void conn_schema_get_answer(struct conn *c, uint64_t request_id, const char *id,
                                   const struct sch_schema *s, int64_t version)
{
    Pulsar__Proto__Schema ws = PULSAR__PROTO__SCHEMA__INIT;
    ws.name = (char *)id;
    ws.schema_data.data = s->data;
    ws.schema_data.len = s->len;
    ws.type = (Pulsar__Proto__Schema__Type)s->type;
    Pulsar__Proto__KeyValue *kv = mg_calloc(s->n_props ? s->n_props : 1, sizeof *kv);
    Pulsar__Proto__KeyValue **kvp = mg_calloc(s->n_props ? s->n_props : 1, sizeof *kvp);
    for (size_t i = 0; i < s->n_props; i++) {
        pulsar__proto__key_value__init(&kv[i]);
        kv[i].key = s->props[i].key;
        kv[i].value = s->props[i].value;
        kvp[i] = &kv[i];
    }
    ws.n_properties = s->n_props;
    ws.properties = kvp;
    uint8_t vb[8];
    sch_version_put(version, vb);
    Pulsar__Proto__CommandGetSchemaResponse r = PULSAR__PROTO__COMMAND_GET_SCHEMA_RESPONSE__INIT;
    r.request_id = request_id;
    r.schema = &ws;
    r.has_schema_version = 1;
    r.schema_version.data = vb;
    r.schema_version.len = sizeof vb;
    CONN_SEND(c, GET_SCHEMA_RESPONSE, getschemaresponse, r);
    mg_free(kvp);
    mg_free(kv);
}

static void conn_schema_get_error(struct conn *c, uint64_t request_id,
                                  Pulsar__Proto__ServerError code, const char *msg)
{
    Pulsar__Proto__CommandGetSchemaResponse r = PULSAR__PROTO__COMMAND_GET_SCHEMA_RESPONSE__INIT;
    r.request_id = request_id;
    r.has_error_code = 1;
    r.error_code = code;
    r.error_message = (char *)msg;
    CONN_SEND(c, GET_SCHEMA_RESPONSE, getschemaresponse, r);
}

static void conn_schema_not_found(struct conn *c, uint64_t request_id, const char *topic)
{
    char msg[TOPIC_NAME_MAX_LEN + 64];
    snprintf(msg, sizeof msg, "Topic not found or no-schema %s", topic);
    conn_schema_get_error(c, request_id, PULSAR__PROTO__SERVER_ERROR__TopicNotFound, msg);
}

static void conn_schema_got(void *data, int status, int64_t version, const struct sch_list *l,
                            const char *err)
{
    struct conn_schema_get *g = data;
    struct conn *c = g->req->conn;
    (void)version;
    if (conn_is_open(c)) {
        size_t found = SIZE_MAX;
        for (size_t i = 0; status == 0 && i < l->n; i++)
            if (g->version < 0 ? i == l->n - 1 : l->versions[i] == g->version)
                found = i;
        if (found != SIZE_MAX)
            conn_schema_get_answer(c, g->req->request_id, g->id, &l->schemas[found],
                                   l->versions[found]);
        else if (status == 0 || status == -MG_ENOTFOUND)
            conn_schema_not_found(c, g->req->request_id, g->topic);
        else
            conn_schema_get_error(c, g->req->request_id, PULSAR__PROTO__SERVER_ERROR__UnknownError,
                                  err);
    }
    conn_req_free(g->req);
    mg_free(g->topic);
    mg_free(g->id);
    mg_free(g);
}

void conn_handle_get_schema(struct conn *c, const Pulsar__Proto__CommandGetSchema *m)
{
    const char *topic = m->topic ? m->topic : "";
    char *id = sch_id_of_topic(topic);
    if (!id) {
        conn_schema_get_error(c, m->request_id, PULSAR__PROTO__SERVER_ERROR__InvalidTopicName,
                              "Invalid topic name");
        return;
    }
    if (m->has_schema_version && m->schema_version.len == 0) {
        mg_free(id);
        conn_schema_get_error(c, m->request_id, PULSAR__PROTO__SERVER_ERROR__IncompatibleSchema,
                              "Empty schema version");
        return;
    }
    int64_t version = -1;
    if (m->has_schema_version) {
        version = sch_version_get(m->schema_version.data, m->schema_version.len);
        if (version < 0) { /* not 8 bytes, or negative: no such version */
            mg_free(id);
            conn_schema_not_found(c, m->request_id, topic);
            return;
        }
    }
    if (!c->env->schemas) {
        mg_free(id);
        conn_schema_not_found(c, m->request_id, topic);
        return;
    }
    struct conn_schema_get *g = mg_calloc(1, sizeof *g);
    g->req = conn_req_new(c, m->request_id, 0, -1);
    g->topic = mg_strdup(topic);
    g->id = id;
    g->version = version;
    int rc = sch_list(c->env->schemas, id, conn_schema_got, g);
    if (rc < 0)
        conn_schema_got(g, rc, -1, NULL, mg_strerror(rc));
}

/* ---- GET_OR_CREATE_SCHEMA ------------------------------------------------------------------ */

static void conn_schema_goc_answer(struct conn *c, uint64_t request_id, int status, int64_t version,
                                   const char *msg)
{
    Pulsar__Proto__CommandGetOrCreateSchemaResponse r =
        PULSAR__PROTO__COMMAND_GET_OR_CREATE_SCHEMA_RESPONSE__INIT;
    r.request_id = request_id;
    uint8_t vb[8];
    if (status < 0) {
        r.has_error_code = 1;
        r.error_code = (Pulsar__Proto__ServerError)mg_err_server_error(status);
        r.error_message = (char *)(msg ? msg : mg_strerror(status));
    } else {
        r.has_schema_version = 1;
        r.schema_version.data = vb;
        r.schema_version.len = 0;
        if (version >= 0) {
            sch_version_put(version, vb);
            r.schema_version.len = 8;
        }
    }
    CONN_SEND(c, GET_OR_CREATE_SCHEMA_RESPONSE, getorcreateschemaresponse, r);
}

static void conn_schema_goc_done(void *data, int status, int64_t version, const char *msg)
{
    struct conn_req *req = data;
    if (conn_is_open(req->conn))
        conn_schema_goc_answer(req->conn, req->request_id, status, version, msg);
    conn_req_free(req);
}

void conn_handle_get_or_create_schema(struct conn *c,
                                      const Pulsar__Proto__CommandGetOrCreateSchema *m)
{
    struct topic_name tn;
    if (!m->topic || topic_name_parse(m->topic, &tn) < 0) {
        conn_schema_goc_answer(c, m->request_id, -MG_EBADNAME, -1, "Invalid topic name");
        return;
    }
    bool loaded = topic_find(c->env->topics, tn.full) != NULL;
    topic_name_fini(&tn);
    if (!loaded) {
        char msg[TOPIC_NAME_MAX_LEN + 32];
        snprintf(msg, sizeof msg, "Topic not found %s", m->topic);
        conn_schema_goc_answer(c, m->request_id, -MG_ENOTFOUND, -1, msg);
        return;
    }
    if (!c->env->schemas) {
        conn_schema_goc_answer(c, m->request_id, 0, -1, NULL);
        return;
    }
    struct sch_schema *s = conn_schema_from_wire(m->schema);
    struct conn_req *req = conn_req_new(c, m->request_id, 0, -1);
    int rc =
        conn_schema_register(c->env->schemas, m->topic, s, false, false, conn_schema_goc_done, req);
    conn_schema_free(s);
    if (rc < 0)
        conn_schema_goc_done(req, rc, -1, mg_strerror(rc));
}
