/*
 * conn_int.h - what the parts of the conn module share: the bodies of a connection, its
 * producers and consumers, and the functions one part calls of another. Only broker/conn
 * and its unit test include it.
 *
 *   conn.c           the connection: framing, handshake, keep-alive, state, backpressure,
 *                    the command dispatch, close, refuse and shutdown
 *   conn_producer.c  PRODUCER, SEND (receipts in order), CLOSE_PRODUCER
 *   conn_consumer.c  SUBSCRIBE and everything on a consumer: FLOW, ACK, REDELIVER,
 *                    UNSUBSCRIBE, SEEK, GET_LAST_MESSAGE_ID, CONSUMER_STATS, CLOSE_CONSUMER;
 *                    MESSAGEs from the topic's dispatcher
 *   conn_lookup.c    topic names and ownership checks, LOOKUP, PARTITIONED_METADATA,
 *                    GET_TOPICS_OF_NAMESPACE, GET_SCHEMA, GET_OR_CREATE_SCHEMA
 */
#ifndef MG_CONN_INT_H
#define MG_CONN_INT_H

#include "conn/conn.h"
#include "topic/topic.h"
#include "util/map.h"
#include "util/ratelimit.h"
#include "wire/wire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#ifndef TAILQ_FOREACH_SAFE /* glibc's sys/queue.h lacks it */
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)                                                 \
    for ((var) = TAILQ_FIRST(head); (var) && ((tvar) = TAILQ_NEXT(var, field), 1); (var) = (tvar))
#endif

struct bufferevent;
struct evbuffer;
struct event;

enum conn_state {
    CONN_AWAIT_CONNECT = 0,
    CONN_READY,
    CONN_CLOSED,
};

/* A publish waiting for its receipt. */
struct conn_pub {
    uint64_t seq;
    uint64_t highest_seq; /* 0 = not sent by the client */
};

struct conn_producer {
    TAILQ_ENTRY(conn_producer) link;
    struct conn *conn;         /* counted reference */
    struct topic_producer *tp; /* borrowed (owned by the topic); NULL until created or once
                                  closed */
    uint64_t id;
    uint64_t request_id; /* of the PRODUCER command */
    char *topic;         /* owned */
    char *name;          /* owned; requested name, may be NULL */
    int access_mode;
    bool ready;    /* PRODUCER_SUCCESS sent */
    bool attached; /* still in the connection's producer map */
    int ops;       /* async operations holding this struct (topic_get, publishes) */
    /* receipts queue (publishes complete in order) */
    struct conn_pub *ring; /* owned */
    size_t ring_cap, ring_head, ring_len;
};

struct conn_consumer {
    TAILQ_ENTRY(conn_consumer) link;
    struct conn *conn;         /* counted reference */
    struct topic_consumer *tc; /* borrowed (owned by the topic) */
    uint64_t id;
    uint64_t request_id;
    int partition; /* partition index of the topic, -1 if not a partition */
    char *topic;   /* owned */
    char *sub;     /* owned */
    struct topic_sub_options opts;
    char *consumer_name;  /* owned */
    int32_t (*ranges)[2]; /* owned sticky ranges */
    bool create;          /* auto-create the topic */
    bool ready;
    bool attached;
    int ops;
};

TAILQ_HEAD(conn_producer_list, conn_producer);
TAILQ_HEAD(conn_consumer_list, conn_consumer);

struct conn {
    int refs;
    uint64_t id;
    struct mg_ratelimit rl_publish; /* failed publishes: one WARN line per interval */
    enum conn_state state;
    const struct conn_env *env; /* borrowed */
    struct bufferevent *bev;    /* owned; NULL once closed */
    struct event *keepalive_ev; /* owned */
    struct event *resume_ev;    /* owned; deferred re-read after a pause */
    char peer[64];
    int protocol_version;
    bool broker_entry_metadata; /* client supports 0x0e02 sections */
    char *client_version;       /* owned */
    bool received_since_tick;
    int ticks;
    uint32_t max_frame;
    int pending_publish;
    int max_pending_publish;
    size_t max_outbound;
    bool read_paused;
    bool shutting_down;          /* conn_shutdown: close once the output is flushed */
    bool refusing;               /* conn_refuse: input is discarded, closed soon */
    bool refuse_fin_sent;        /* our side is shut down after the ERROR went out */
    const char *frame_nul_field; /* static: the frame being dispatched had a NUL in this
                                    string field (wire_frame.nul_string_field), or NULL */
    struct mg_map producers;     /* id -> struct conn_producer (attached ones) */
    struct mg_map consumers;     /* id -> struct conn_consumer */
    struct conn_producer_list all_producers;
    struct conn_consumer_list all_consumers;
};

/* A request answered later (SEEK, GET_LAST_MESSAGE_ID, GET_TOPICS_OF_NAMESPACE). */
struct conn_req {
    struct conn *conn; /* counted reference */
    uint64_t request_id;
    uint64_t consumer_id;
    int partition;
};

/* ---- conn.c: references, output, requests ------------------------------------------------- */

void conn_ref(struct conn *c);
void conn_unref(struct conn *c);
/* Open: not closed and the bufferevent is still there. */
bool conn_is_open(const struct conn *c);
struct evbuffer *conn_out(struct conn *c);
/* Append a command frame to the output (nothing once closed). */
void conn_send(struct conn *c, wire_cmd *cmd);
void conn_send_error(struct conn *c, uint64_t request_id, int err, const char *message);
void conn_send_success(struct conn *c, uint64_t request_id);
void conn_send_close_producer(struct conn *c, uint64_t producer_id);
void conn_send_close_consumer(struct conn *c, uint64_t consumer_id);
void conn_send_send_error(struct conn *c, uint64_t producer_id, uint64_t seq,
                          Pulsar__Proto__ServerError error, const char *message);
/* Resume reading when pending publishes and queued output are below half their bounds. */
void conn_maybe_resume(struct conn *c);
/* A request holding a reference to c until conn_req_free. */
struct conn_req *conn_req_new(struct conn *c, uint64_t request_id, uint64_t consumer_id,
                              int partition);
void conn_req_free(struct conn_req *r);

/* ---- conn_producer.c ------------------------------------------------------------------------ */

/* Detach: out of the producer map, closed in its topic. Release: freed once detached and no
 * operation holds it. */
void conn_producer_detach(struct conn_producer *p);
void conn_producer_release(struct conn_producer *p);
void conn_handle_producer(struct conn *c, const Pulsar__Proto__CommandProducer *m);
void conn_handle_send(struct conn *c, const Pulsar__Proto__CommandSend *s, struct wire_frame *f);
void conn_handle_close_producer(struct conn *c, const Pulsar__Proto__CommandCloseProducer *m);

/* ---- conn_consumer.c ------------------------------------------------------------------------ */

/* Detach: out of the consumer map (and closed in its topic when close_in_topic). Release:
 * freed once detached and no operation holds it. */
void conn_consumer_detach(struct conn_consumer *cc, bool close_in_topic);
void conn_consumer_release(struct conn_consumer *cc);
void conn_handle_subscribe(struct conn *c, const Pulsar__Proto__CommandSubscribe *m);
void conn_handle_flow(struct conn *c, const Pulsar__Proto__CommandFlow *m);
void conn_handle_ack(struct conn *c, const Pulsar__Proto__CommandAck *m);
void conn_handle_redeliver(struct conn *c,
                           const Pulsar__Proto__CommandRedeliverUnacknowledgedMessages *m);
void conn_handle_unsubscribe(struct conn *c, const Pulsar__Proto__CommandUnsubscribe *m);
void conn_handle_seek(struct conn *c, const Pulsar__Proto__CommandSeek *m);
void conn_handle_get_last_message_id(struct conn *c,
                                     const Pulsar__Proto__CommandGetLastMessageId *m);
void conn_handle_close_consumer(struct conn *c, const Pulsar__Proto__CommandCloseConsumer *m);
void conn_handle_consumer_stats(struct conn *c, const Pulsar__Proto__CommandConsumerStats *m);

/* ---- conn_lookup.c -------------------------------------------------------------------------- */

/* Parse and check the topic of a PRODUCER, SUBSCRIBE, LOOKUP or PARTITIONED_METADATA: 0 and
 * tn filled (the caller finis it), or <0 with a reason for the client. */
int conn_parse_topic(struct conn *c, const char *name, struct topic_name *tn, const char **reason);
/* 0 when this broker owns the bundle of topic full, else -MG_ENOTREADY (or -MG_EBADNAME)
 * with the message Pulsar sends so that clients look up again. */
int conn_check_owned_name(struct conn *c, const char *full, char *msg, size_t len);
void conn_handle_partitioned_metadata(struct conn *c,
                                      const Pulsar__Proto__CommandPartitionedTopicMetadata *m);
void conn_handle_lookup(struct conn *c, const Pulsar__Proto__CommandLookupTopic *l);
void conn_handle_get_topics(struct conn *c, const Pulsar__Proto__CommandGetTopicsOfNamespace *m);
void conn_handle_get_schema(struct conn *c, const Pulsar__Proto__CommandGetSchema *m);
void conn_handle_get_or_create_schema(struct conn *c,
                                      const Pulsar__Proto__CommandGetOrCreateSchema *m);

#endif
