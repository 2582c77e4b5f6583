/*
 * conn_consumer.c - the consumers of a connection: SUBSCRIBE, FLOW, ACK, REDELIVER, UNSUBSCRIBE,
 * SEEK, GET_LAST_MESSAGE_ID, CONSUMER_STATS, CLOSE_CONSUMER, and the MESSAGEs the topic's
 * dispatcher pushes (conn_consumer_ops).
 *
 * Happy path: SUBSCRIBE parses the topic and its options (type, durable, initial position,
 * start message id, priority, Key_Shared ranges), goes through the setup producers and
 * consumers share (conn_endpoint.c: this broker owns the topic's bundle, the topic loaded,
 * its schema checked: conn_schema.c) and subscribes (SUCCESS). MESSAGE frames share the stored
 * entry's bytes by reference; dispatch pauses while the connection's output is above half of
 * connectionMaxOutboundBytes (conn_dispatch_high_water) and resumes when it drains (conn.c).
 *
 * Failure modes: an unowned or lost bundle answers ServiceNotReady, a busy exclusive
 * subscription ConsumerBusy, an unknown consumer ConsumerNotFound (ACK with a request id gets
 * ACK_RESPONSE with that error); the topic closing the consumer sends CLOSE_CONSUMER.
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

static void conn_consumer_send(void *owner, struct topic_consumer *tc, struct ml_entry *e,
                               uint32_t redelivery_count, const int64_t *ack_set, int n_words)
{
    struct conn_consumer *cc = owner;
    struct conn *c = cc->e.conn;
    (void)tc;
    if (!conn_is_open(c))
        return;
    Pulsar__Proto__MessageIdData mid = PULSAR__PROTO__MESSAGE_ID_DATA__INIT;
    mid.ledgerid = (uint64_t)e->pos.ledger;
    mid.entryid = (uint64_t)e->pos.entry;
    mid.has_partition = 1;
    mid.partition = cc->partition;
    Pulsar__Proto__CommandMessage m = PULSAR__PROTO__COMMAND_MESSAGE__INIT;
    m.consumer_id = cc->e.id;
    m.message_id = &mid;
    if (redelivery_count) {
        m.has_redelivery_count = 1;
        m.redelivery_count = redelivery_count;
    }
    if (ack_set && n_words > 0) {
        m.n_ack_set = (size_t)n_words;
        m.ack_set = (int64_t *)ack_set;
    }
    wire_cmd cmd = PULSAR__PROTO__BASE_COMMAND__INIT;
    cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__MESSAGE;
    cmd.message = &m;
    wire_write_message(conn_out(c), &cmd, e->data);
}

static void conn_consumer_active_change(void *owner, struct topic_consumer *tc, bool active)
{
    struct conn_consumer *cc = owner;
    struct conn *c = cc->e.conn;
    (void)tc;
    if (!conn_is_open(c) || c->protocol_version < 12)
        return;
    Pulsar__Proto__CommandActiveConsumerChange a =
        PULSAR__PROTO__COMMAND_ACTIVE_CONSUMER_CHANGE__INIT;
    a.consumer_id = cc->e.id;
    a.has_is_active = 1;
    a.is_active = active;
    CONN_SEND(c, ACTIVE_CONSUMER_CHANGE, active_consumer_change, a);
}

/* The topic is terminated and this consumer's subscription consumed all of it (protocol
 * v9+, Pulsar's Consumer.reachedEndOfTopic): the client's hasReachedEndOfTopic. */
static void conn_consumer_reached_end(void *owner, struct topic_consumer *tc)
{
    struct conn_consumer *cc = owner;
    struct conn *c = cc->e.conn;
    (void)tc;
    if (!conn_is_open(c) || c->protocol_version < 9)
        return;
    Pulsar__Proto__CommandReachedEndOfTopic r = PULSAR__PROTO__COMMAND_REACHED_END_OF_TOPIC__INIT;
    r.consumer_id = cc->e.id;
    CONN_SEND(c, REACHED_END_OF_TOPIC, reachedendoftopic, r);
}

static void conn_consumer_closed(void *owner, struct topic_consumer *tc)
{
    struct conn_consumer *cc = owner;
    (void)tc;
    cc->tc = NULL;
    conn_endpoint_closed(&cc->e);
}

static size_t conn_consumer_outbound_bytes(void *owner)
{
    struct conn_consumer *cc = owner;
    struct conn *c = cc->e.conn;
    if (!conn_is_open(c))
        return SIZE_MAX;
    return conn_outbound_bytes(c);
}

static const struct topic_consumer_ops conn_consumer_ops = {
    .send = conn_consumer_send,
    .active_change = conn_consumer_active_change,
    .closed = conn_consumer_closed,
    .outbound_bytes = conn_consumer_outbound_bytes,
    .reached_end = conn_consumer_reached_end,
};

static int conn_consumer_add(struct conn_endpoint *e, struct topic *t, char *msg, size_t len)
{
    struct conn_consumer *cc = (struct conn_consumer *)e;
    struct topic_name tn;
    /* allowAutoSubscriptionCreation=false (or the namespace's autoSubscriptionCreation):
     * a durable subscription must exist already, as Pulsar. */
    if (cc->opts.durable && !topic_sub_cursor(t, cc->sub) && topic_name_parse(e->topic, &tn) == 0) {
        bool allowed = conn_auto_create(e->conn, &tn).subscription;
        topic_name_fini(&tn);
        if (!allowed) {
            snprintf(msg, len, "Subscription does not exist");
            return -MG_ENOSUB;
        }
    }
    int rc = topic_subscribe(t, cc->sub, &cc->opts, cc, &conn_consumer_ops, &cc->tc);
    if (rc < 0) {
        cc->tc = NULL;
        if (topic_limit_refused(t) >= 0) {
            topic_limit_message(t, (enum topic_limit)topic_limit_refused(t), msg, len);
            return rc;
        }
        const char *why = mg_strerror(rc);
        if (rc == -MG_ECONSUMERBUSY)
            why = cc->opts.type == TOPIC_SUB_EXCLUSIVE ? "Exclusive consumer is already connected"
                                                       : "Subscription is of different type";
        else if (rc == -MG_ENOTALLOWED && cc->opts.read_compacted &&
                 (cc->opts.type == TOPIC_SUB_SHARED || cc->opts.type == TOPIC_SUB_KEY_SHARED))
            why =
                "readCompacted only allowed on failover or exclusive subscriptions"; /* Pulsar's */
        snprintf(msg, len, "%s", why);
        return rc;
    }
    MG_INFO("conn", "[%" PRIu64 "] consumer %" PRIu64 " subscribed to %s sub '%s'", e->conn->id,
            e->id, e->topic, cc->sub);
    conn_send_success(e->conn, e->request_id);
    return 0;
}

static const char *conn_consumer_label(const struct conn_endpoint *e)
{
    return ((const struct conn_consumer *)e)->sub;
}

static void conn_consumer_close_in_topic(struct conn_endpoint *e)
{
    struct conn_consumer *cc = (struct conn_consumer *)e;
    if (cc->tc) {
        struct topic_consumer *tc = cc->tc;
        cc->tc = NULL;
        topic_consumer_close(tc);
    }
}

static void conn_consumer_resume(struct conn_endpoint *e)
{
    struct conn_consumer *cc = (struct conn_consumer *)e;
    if (cc->tc && conn_is_open(e->conn))
        topic_consumer_resume(cc->tc);
}

static void conn_consumer_free(struct conn_endpoint *e)
{
    struct conn_consumer *cc = (struct conn_consumer *)e;
    mg_free(cc->sub);
    mg_free(cc->consumer_name);
    mg_free(cc->ranges);
    mg_free(cc);
}

/* A SUBSCRIBE for a ready consumer: SUCCESS again. */
static void conn_consumer_again(struct conn_endpoint *e, uint64_t request_id)
{
    conn_send_success(e->conn, request_id);
}

static const struct conn_endpoint_ops conn_consumer_endpoint_ops = {
    .kind = "consumer",
    .present = "Consumer is already present on the connection",
    .topic_missing = "Topic does not exist",
    .consumer = true,
    .again = conn_consumer_again,
    .label = conn_consumer_label,
    .add = conn_consumer_add,
    .send_close = conn_send_close_consumer,
    .close_in_topic = conn_consumer_close_in_topic,
    .resume = conn_consumer_resume,
    .free = conn_consumer_free,
};

void conn_handle_subscribe(struct conn *c, const Pulsar__Proto__CommandSubscribe *m)
{
    struct topic_name tn;
    if (!conn_endpoint_begin(c, &conn_consumer_endpoint_ops, &c->consumers, m->consumer_id,
                             m->request_id, m->topic, &tn))
        return;
    if (!m->subscription || !*m->subscription) {
        topic_name_fini(&tn);
        conn_send_error(c, m->request_id, -MG_EINVAL, "Empty subscription name");
        return;
    }
    /* Checked once here: the consumer's MESSAGEs do no permission work. */
    if (!conn_authorized(c, &tn, AUTH_CONSUME, false, m->subscription)) {
        conn_log_unauthorized(c, "subscription to", tn.full);
        topic_name_fini(&tn);
        conn_send_error(c, m->request_id, -MG_EAUTHZ, "Client is not authorized to subscribe");
        return;
    }
    struct conn_consumer *cc = mg_calloc(1, sizeof *cc);
    conn_endpoint_init(&cc->e, &conn_consumer_endpoint_ops, c, &c->consumers, m->consumer_id,
                       m->request_id, &tn);
    cc->e.create = cc->e.create && (!m->has_force_topic_creation || m->force_topic_creation);
    cc->partition = tn.partition;
    cc->sub = mg_strdup(m->subscription);
    cc->e.schema = conn_schema_from_wire(m->schema);
    struct topic_sub_options *o = &cc->opts;
    o->type = (enum topic_sub_type)m->subtype;
    o->durable = m->has_durable ? m->durable : true;
    o->initial_earliest =
        m->has_initialposition &&
        m->initialposition == PULSAR__PROTO__COMMAND_SUBSCRIBE__INITIAL_POSITION__Earliest;
    if (m->start_message_id) {
        o->has_start = true;
        o->start.ledger = (int64_t)m->start_message_id->ledgerid;
        o->start.entry = (int64_t)m->start_message_id->entryid;
    }
    o->priority_level = m->has_priority_level ? m->priority_level : 0;
    o->read_compacted = m->has_read_compacted && m->read_compacted;
    if (m->consumer_name && *m->consumer_name)
        cc->consumer_name = mg_strdup(m->consumer_name);
    else
        cc->consumer_name = mg_asprintf("consumer-%" PRIu64 "-%" PRIu64, c->id, m->consumer_id);
    o->consumer_name = cc->consumer_name;
    o->partition_index = cc->partition;
    if (m->keysharedmeta) {
        o->key_shared_sticky =
            m->keysharedmeta->keysharedmode == PULSAR__PROTO__KEY_SHARED_MODE__STICKY;
        o->allow_out_of_order = m->keysharedmeta->has_allowoutoforderdelivery
                                    ? m->keysharedmeta->allowoutoforderdelivery
                                    : false;
        if (m->keysharedmeta->n_hashranges > 0) {
            size_t n = m->keysharedmeta->n_hashranges;
            cc->ranges = mg_malloc(n * sizeof *cc->ranges);
            for (size_t i = 0; i < n; i++) {
                cc->ranges[i][0] = m->keysharedmeta->hashranges[i]->start;
                cc->ranges[i][1] = m->keysharedmeta->hashranges[i]->end;
            }
            o->sticky_ranges = (const int32_t(*)[2])cc->ranges;
            o->n_sticky_ranges = (int)n;
        }
    }
    conn_endpoint_start(&cc->e, &tn);
    topic_name_fini(&tn);
}

static struct conn_consumer *conn_ready_consumer(struct conn *c, uint64_t id)
{
    struct conn_consumer *cc = mg_map_get_u64(&c->consumers, id);
    return cc && cc->e.ready && cc->tc ? cc : NULL;
}

/* The ready consumer an UNSUBSCRIBE, SEEK or GET_LAST_MESSAGE_ID names; NULL when this
 * connection has none such, answered as Pulsar does: MetadataError "Consumer not found"
 * (its clients retry that one). */
static struct conn_consumer *conn_request_consumer(struct conn *c, uint64_t id, uint64_t request_id)
{
    struct conn_consumer *cc = conn_ready_consumer(c, id);
    if (!cc)
        conn_send_error(c, request_id, -MG_EMETA, "Consumer not found");
    return cc;
}

void conn_handle_flow(struct conn *c, const Pulsar__Proto__CommandFlow *m)
{
    struct conn_consumer *cc = conn_ready_consumer(c, m->consumer_id);
    if (cc)
        topic_consumer_flow(cc->tc, m->messagepermits);
}

void conn_handle_ack(struct conn *c, const Pulsar__Proto__CommandAck *m)
{
    struct conn_consumer *cc = conn_ready_consumer(c, m->consumer_id);
    int rc = -MG_ENOTFOUND;
    if (cc && m->n_message_id > 0) {
        struct topic_ack stack_acks[16];
        struct topic_ack *acks =
            m->n_message_id <= 16 ? stack_acks : mg_malloc(m->n_message_id * sizeof *acks);
        for (size_t i = 0; i < m->n_message_id; i++) {
            const Pulsar__Proto__MessageIdData *id = m->message_id[i];
            acks[i].pos.ledger = (int64_t)id->ledgerid;
            acks[i].pos.entry = (int64_t)id->entryid;
            acks[i].ack_set = id->n_ack_set ? id->ack_set : NULL;
            acks[i].n_words = (int)id->n_ack_set;
            acks[i].batch_size = id->has_batch_size ? id->batch_size : 0;
        }
        rc = topic_consumer_ack(cc->tc,
                                m->ack_type == PULSAR__PROTO__COMMAND_ACK__ACK_TYPE__Cumulative,
                                acks, (int)m->n_message_id);
        if (acks != stack_acks)
            mg_free(acks);
    } else if (cc) {
        rc = 0;
    }
    if (!m->has_request_id)
        return;
    Pulsar__Proto__CommandAckResponse r = PULSAR__PROTO__COMMAND_ACK_RESPONSE__INIT;
    r.consumer_id = m->consumer_id;
    r.has_request_id = 1;
    r.request_id = m->request_id;
    if (rc < 0 && rc != -MG_ENOTALLOWED) {
        r.has_error = 1;
        r.error = rc == -MG_ENOTFOUND ? PULSAR__PROTO__SERVER_ERROR__ConsumerNotFound
                                      : (Pulsar__Proto__ServerError)mg_err_server_error(rc);
        r.message = rc == -MG_ENOTFOUND ? "Consumer not found" : (char *)mg_strerror(rc);
    }
    CONN_SEND(c, ACK_RESPONSE, ackresponse, r);
}

void conn_handle_redeliver(struct conn *c,
                           const Pulsar__Proto__CommandRedeliverUnacknowledgedMessages *m)
{
    struct conn_consumer *cc = conn_ready_consumer(c, m->consumer_id);
    if (!cc)
        return;
    size_t n = m->n_message_ids;
    struct ml_position *pos = n ? mg_malloc(n * sizeof *pos) : NULL;
    for (size_t i = 0; i < n; i++) {
        pos[i].ledger = (int64_t)m->message_ids[i]->ledgerid;
        pos[i].entry = (int64_t)m->message_ids[i]->entryid;
    }
    topic_consumer_redeliver(cc->tc, pos, (int)n);
    mg_free(pos);
}

void conn_handle_unsubscribe(struct conn *c, const Pulsar__Proto__CommandUnsubscribe *m)
{
    struct conn_consumer *cc = conn_request_consumer(c, m->consumer_id, m->request_id);
    if (!cc)
        return;
    int rc = topic_consumer_unsubscribe(cc->tc, m->has_force && m->force);
    if (rc < 0) {
        conn_send_error(c, m->request_id, rc, "Subscription has other connected consumers");
        return;
    }
    cc->tc = NULL; /* freed by the topic */
    conn_endpoint_drop(&cc->e);
    conn_send_success(c, m->request_id);
}

static void conn_seek_done(void *data, int status)
{
    struct conn_req *r = data;
    if (status < 0) {
        conn_req_fail(r, status, NULL);
        return;
    }
    if (conn_is_open(r->conn))
        conn_send_success(r->conn, r->request_id);
    conn_req_free(r);
}

void conn_handle_seek(struct conn *c, const Pulsar__Proto__CommandSeek *m)
{
    struct conn_consumer *cc = conn_request_consumer(c, m->consumer_id, m->request_id);
    if (!cc)
        return;
    bool by_time = !m->message_id && m->has_message_publish_time;
    if (!m->message_id && !by_time) {
        conn_send_error(c, m->request_id, -MG_EINVAL, "Seek needs a message id or a publish time");
        return;
    }
    struct ml_position pos = {0, 0};
    if (m->message_id) {
        pos.ledger = (int64_t)m->message_id->ledgerid;
        pos.entry = (int64_t)m->message_id->entryid;
    }
    struct conn_req *r = conn_req_new(c, m->request_id, m->consumer_id, cc->partition);
    int rc = topic_consumer_seek(cc->tc, by_time, pos, by_time ? m->message_publish_time : 0,
                                 conn_seek_done, r);
    if (rc < 0)
        conn_req_fail(r, rc, NULL);
}

static void conn_fill_id(Pulsar__Proto__MessageIdData *id, struct ml_position pos, int partition,
                         int32_t batch_index)
{
    id->ledgerid = (uint64_t)pos.ledger;
    id->entryid = (uint64_t)pos.entry;
    id->has_partition = 1;
    id->partition = partition;
    id->has_batch_index = 1;
    id->batch_index = batch_index;
}

static void conn_last_id_done(void *data, int status, struct ml_position pos, int32_t batch_index,
                              struct ml_position mark_delete)
{
    struct conn_req *r = data;
    if (status < 0) {
        conn_req_fail(r, status, NULL);
        return;
    }
    Pulsar__Proto__MessageIdData last = PULSAR__PROTO__MESSAGE_ID_DATA__INIT;
    Pulsar__Proto__MessageIdData md = PULSAR__PROTO__MESSAGE_ID_DATA__INIT;
    conn_fill_id(&last, pos, r->partition, batch_index);
    conn_fill_id(&md, mark_delete, r->partition, -1);
    Pulsar__Proto__CommandGetLastMessageIdResponse resp =
        PULSAR__PROTO__COMMAND_GET_LAST_MESSAGE_ID_RESPONSE__INIT;
    resp.request_id = r->request_id;
    resp.last_message_id = &last;
    resp.consumer_mark_delete_position = &md;
    CONN_SEND(r->conn, GET_LAST_MESSAGE_ID_RESPONSE, getlastmessageidresponse,
              resp); /* nothing once the connection closed */
    conn_req_free(r);
}

void conn_handle_get_last_message_id(struct conn *c,
                                     const Pulsar__Proto__CommandGetLastMessageId *m)
{
    struct conn_consumer *cc = conn_request_consumer(c, m->consumer_id, m->request_id);
    if (!cc)
        return;
    struct conn_req *r = conn_req_new(c, m->request_id, m->consumer_id, cc->partition);
    int rc = topic_consumer_last_message_id(cc->tc, conn_last_id_done, r);
    if (rc < 0)
        conn_req_fail(r, rc, NULL);
}

void conn_handle_close_consumer(struct conn *c, const Pulsar__Proto__CommandCloseConsumer *m)
{
    struct conn_consumer *cc = mg_map_get_u64(&c->consumers, m->consumer_id);
    if (cc)
        conn_endpoint_drop(&cc->e);
    conn_send_success(c, m->request_id);
}

void conn_handle_consumer_stats(struct conn *c, const Pulsar__Proto__CommandConsumerStats *m)
{
    struct conn_consumer *cc = conn_ready_consumer(c, m->consumer_id);
    Pulsar__Proto__CommandConsumerStatsResponse r =
        PULSAR__PROTO__COMMAND_CONSUMER_STATS_RESPONSE__INIT;
    r.request_id = m->request_id;
    if (!cc) {
        r.has_error_code = 1;
        r.error_code = PULSAR__PROTO__SERVER_ERROR__ConsumerNotFound;
        r.error_message = "Consumer not found";
    } else {
        static const char *const type_names[] = {"Exclusive", "Shared", "Failover", "Key_Shared"};
        r.consumername = cc->consumer_name;
        r.address = c->peer;
        r.type = (char *)type_names[cc->opts.type & 3];
    }
    CONN_SEND(c, CONSUMER_STATS_RESPONSE, consumerstatsresponse, r);
}
