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
 *                    GET_TOPICS_OF_NAMESPACE
 *   conn_endpoint.c  what producers and consumers share: the setup of a PRODUCER or a
 *                    SUBSCRIBE (the bundle's owner, the topic loaded, then added to it) and
 *                    the close by their topic
 *   conn_schema.c    schemas: the registry step of a PRODUCER or SUBSCRIBE setup,
 *                    GET_SCHEMA, GET_OR_CREATE_SCHEMA
 *   conn_watch.c     topic list watchers: WATCH_TOPIC_LIST, WATCH_TOPIC_LIST_CLOSE, and the
 *                    WATCH_TOPIC_UPDATEs of topics created and deleted
 *   conn_io.c        connections whose socket runs on an I/O loop (numIOThreads,
 *                    docs/threads.md): the I/O side and the hand-offs with the main loop
 */
#ifndef MG_CONN_INT_H
#define MG_CONN_INT_H

#include "conn/conn.h"
#include "ns/ns.h"
#include "topic/topic.h"
#include "util/loop.h"
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

struct conn_endpoint;
struct conn_io;
struct conn_io_msg;
struct sch_schema;

/* What a producer or a consumer does at the steps of the setup they share (conn_endpoint.c). */
struct conn_endpoint_ops {
    const char *kind;          /* "producer" or "consumer", for log lines */
    const char *present;       /* the ERROR's message for an id still being set up */
    const char *topic_missing; /* the ERROR's message when the topic does not exist */
    bool consumer;             /* a consumer's setup (its schema is checked, not registered) */
    /* Answer again the command for an id that is ready (Pulsar's clients resend it). */
    void (*again)(struct conn_endpoint *e, uint64_t request_id);
    /* A name for log lines besides the id and the topic (the subscription), or NULL. */
    const char *(*label)(const struct conn_endpoint *e);
    /* Add the endpoint to its loaded topic t: 0 once it is there and the client has its
     * answer (PRODUCER_SUCCESS, SUCCESS), else < 0 with the reason for the client in msg. */
    int (*add)(struct conn_endpoint *e, struct topic *t, char *msg, size_t len);
    /* CLOSE_PRODUCER or CLOSE_CONSUMER for an endpoint the topic closed. */
    void (*send_close)(struct conn *c, uint64_t id);
    /* Close the endpoint in its topic, if it is in one (topic_producer_close,
     * topic_consumer_close). */
    void (*close_in_topic)(struct conn_endpoint *e);
    /* The connection's output drained: what waited for it may go on (NULL: nothing). */
    void (*resume)(struct conn_endpoint *e);
    /* Free what is its own, and the struct. */
    void (*free)(struct conn_endpoint *e);
};

/* What a producer and a consumer share (the first member of both): the client's id for it,
 * its topic, and the state of its setup. */
struct conn_endpoint {
    const struct conn_endpoint_ops *ops;
    TAILQ_ENTRY(conn_endpoint) link; /* in the connection's endpoints */
    struct conn *conn;               /* counted reference */
    uint64_t id;                     /* the producer or consumer id */
    uint64_t request_id;             /* of the PRODUCER or SUBSCRIBE command */
    char *topic;                     /* owned: full name */
    struct mg_map *map;              /* the connection's map of them (producers, consumers) */
    bool create;                     /* the setup may create the topic */
    bool ready;                      /* added to its topic, the client answered */
    bool attached;                   /* still in the connection's map */
    int holds; /* asynchronous operations holding the struct (setup steps, publishes) */
    struct sch_schema *schema; /* owned: the command's schema, NULL = none */
    int64_t schema_version;    /* the registry's answer for it; -1 = none */
};

/* A publish waiting for its receipt. */
struct conn_pub {
    uint64_t seq;
    uint64_t highest_seq; /* 0 = not sent by the client */
};

struct conn_producer {
    struct conn_endpoint e;    /* first: ready once PRODUCER_SUCCESS is sent */
    struct topic_producer *tp; /* borrowed (owned by the topic); NULL until created or once
                                  closed */
    char *name;                /* owned; requested name, may be NULL */
    int access_mode;
    /* receipts queue (publishes complete in order) */
    struct conn_pub *ring; /* owned */
    size_t ring_cap, ring_head, ring_len;
};

struct conn_consumer {
    struct conn_endpoint e;    /* first: ready once SUCCESS is sent */
    struct topic_consumer *tc; /* borrowed (owned by the topic) */
    int partition;             /* partition index of the topic, -1 if not a partition */
    char *sub;                 /* owned */
    struct topic_sub_options opts;
    char *consumer_name;  /* owned */
    int32_t (*ranges)[2]; /* owned sticky ranges */
};

TAILQ_HEAD(conn_endpoint_list, conn_endpoint);

struct conn {
    int refs;
    uint64_t id;
    struct mg_ratelimit rl_publish; /* failed publishes: one WARN line per interval */
    enum conn_state state;
    const struct conn_env *env; /* borrowed */
    struct bufferevent *bev;    /* owned; NULL once closed, and with io */
    /* With an I/O loop (conn_io.c; else all NULL): the hand-off (NULL once closed), the
     * output the handlers write to (handed over by flush_ev once per loop turn) and the
     * decoded frames not dispatched yet. */
    struct conn_io *io;
    struct x509_st *peer_cert; /* owned: with io over TLS, the client's certificate (from the
                                  I/O loop with the first frames), or NULL */
    bool peer_cert_trusted;    /* ... verified against tlsTrustCertsFilePath */
    struct evbuffer *out;      /* owned */
    struct event *flush_ev;    /* owned */
    STAILQ_HEAD(, conn_io_msg) inq;
    uint64_t io_batches;       /* FRAMES messages from the I/O loop: one per read callback */
    struct mg_timer keepalive; /* every keepalive_ms; the refusal's grace period */
    struct mg_timer throttle;  /* publish rate: reading resumes when it fires */
    uint64_t throttle_tick_ms; /* topicPublisherThrottlingTickTimeMillis */
    uint64_t keepalive_ms;
    struct event *resume_ev; /* owned; deferred re-read after a pause */
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
    bool throttled;              /* a topic published to is over its publish rate: reading waits */
    bool shutting_down;          /* conn_shutdown: close once the output is flushed */
    bool refusing;               /* conn_refuse: input is discarded, closed soon */
    bool refuse_fin_sent;        /* our side is shut down after the ERROR went out */
    const char *frame_nul_field; /* static: the frame being dispatched had a NUL in this
                                    string field (wire_frame.nul_string_field), or NULL */
    struct mg_map producers;     /* id -> struct conn_producer (attached ones) */
    struct mg_map recent_closed; /* producer id the broker closed -> mono ms until which SENDs
                                    for it are ignored (conn_producer.c) */
    struct mg_map consumers;     /* id -> struct conn_consumer */
    struct conn_endpoint_list endpoints; /* every producer and consumer not freed yet, in
                                            creation order */
    LIST_HEAD(, conn_watcher) watchers;  /* topic list watchers (conn_watch.c) */
    int n_watchers;                      /* ... how many (at most CONN_MAX_TOPIC_WATCHERS) */
    /* authentication (env->auth on): who the client is, until when, and the refresh */
    char *role;                 /* owned; NULL until CONNECT authenticated */
    int64_t auth_exp_ms;        /* the credential's expiry (wall clock, ms); 0 = never */
    bool auth_refresh_ok;       /* CONNECT's feature flag supports_auth_refresh */
    bool auth_challenged;       /* AUTH_CHALLENGE sent, no valid AUTH_RESPONSE yet */
    struct mg_timer auth_timer; /* every authenticationRefreshCheckSeconds */
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
/* Where frames for the client are written. */
struct evbuffer *conn_out(struct conn *c);
/* The queued output of an open connection: not written to its socket yet. */
size_t conn_outbound_bytes(struct conn *c);
/* The output went under the write watermark: reading resumes, consumers dispatch again, a
 * shutdown or refusal goes on (the write callback's work). */
void conn_output_drained(struct conn *c);
/* Frames came in (conn_io.c): dispatch them unless reading is paused. */
void conn_input_ready(struct conn *c);
/* Append a command frame to the output (nothing once closed). */
void conn_send(struct conn *c, wire_cmd *cmd);
/* conn_send of sub (a command's message, filled in) as the command TYPE
 * (PULSAR__PROTO__BASE_COMMAND__TYPE__<TYPE>); field: sub's member of the BaseCommand. */
#define CONN_SEND(c, TYPE, field, sub)                                                             \
    do {                                                                                           \
        wire_cmd cmd_ = PULSAR__PROTO__BASE_COMMAND__INIT;                                         \
        cmd_.type = PULSAR__PROTO__BASE_COMMAND__TYPE__##TYPE;                                     \
        cmd_.field = &(sub);                                                                       \
        conn_send((c), &cmd_);                                                                     \
    } while (0)
void conn_send_error(struct conn *c, uint64_t request_id, int err, const char *message);
void conn_send_success(struct conn *c, uint64_t request_id);
void conn_send_close_producer(struct conn *c, uint64_t producer_id);
void conn_send_close_consumer(struct conn *c, uint64_t consumer_id);
void conn_send_send_error(struct conn *c, uint64_t producer_id, uint64_t seq,
                          Pulsar__Proto__ServerError error, const char *message);
/* Resume reading when pending publishes and queued output are below half their bounds. */
void conn_maybe_resume(struct conn *c);
/* A publish left its topic over the publish rate for wait_ms: stop reading until then (at
 * least the throttling tick). */
void conn_publish_throttle(struct conn *c, int64_t wait_ms);
/* A request holding a reference to c until conn_req_free. */
struct conn_req *conn_req_new(struct conn *c, uint64_t request_id, uint64_t consumer_id,
                              int partition);
void conn_req_free(struct conn_req *r);
/* Answer ERROR(err, message; NULL: err's text) to r's request while its connection is open,
 * then free r. */
void conn_req_fail(struct conn_req *r, int err, const char *message);

/* ---- conn_endpoint.c ------------------------------------------------------------------------ */

/* The checks a PRODUCER or SUBSCRIBE for id (in map: c->producers, c->consumers) on topic
 * goes through first: false when it is answered here (id names one the connection has:
 * answered again when it is ready, else ERROR ops->present; or the topic is refused, with
 * conn_parse_topic's error), else true with tn filled (the caller finis it). */
/* With authorizationEnabled, may the connection's role do one of the actions need (AUTH_*
 * bits of auth.h) on tn (a topic; with ns_only, its namespace's grants only)? Super-users
 * and the tenant's adminRoles may do everything; sub (a subscription, or NULL) must also
 * not be reserved to other roles (subscription_auth_roles). True with authorization off. */
bool conn_authorized(struct conn *c, const struct topic_name *tn, unsigned need, bool ns_only,
                     const char *sub);
/* Log a refusal by conn_authorized ("<what> <name>: role R not authorized"), at most one line
 * per 10 s for the whole process (clients retry lookups and creations). */
void conn_log_unauthorized(struct conn *c, const char *what, const char *name);
bool conn_endpoint_begin(struct conn *c, const struct conn_endpoint_ops *ops, struct mg_map *map,
                         uint64_t id, uint64_t request_id, const char *topic,
                         struct topic_name *tn);
/* A new endpoint (e: zeroed, the first member of its producer or consumer) of c for the
 * topic tn with the client's id and request id, in c's endpoints and attached in map
 * (c->producers, c->consumers), holding a reference to c. */
void conn_endpoint_init(struct conn_endpoint *e, const struct conn_endpoint_ops *ops,
                        struct conn *c, struct mg_map *map, uint64_t id, uint64_t request_id,
                        const struct topic_name *tn);
/* Detach e (out of its connection's map, closed in its topic), then release it. */
void conn_endpoint_drop(struct conn_endpoint *e);
/* Free e once it is detached and no operation holds it (else nothing). */
void conn_endpoint_release(struct conn_endpoint *e);
/* Set up e (attached, in its connection's map) for the topic tn: this broker must own the
 * topic's bundle (an authoritative ns_lookup: an unowned bundle is taken here, one owned
 * elsewhere refused with ServiceNotReady), the topic is loaded (created when e->create) and
 * e->ops->add runs. A step that fails answers ERROR to e's command, logged once, and
 * detaches and releases e. */
void conn_endpoint_start(struct conn_endpoint *e, const struct topic_name *tn);
/* The registry step (conn_schema.c) is over: status 0 goes on with adding e to its topic
 * (still loaded here, else ServiceNotReady), < 0 refuses e with msg. Ends a hold of e. */
void conn_endpoint_schema_done(struct conn_endpoint *e, int status, const char *msg);
/* The topic closed e (unload, delete): the client is told (CLOSE_PRODUCER, CLOSE_CONSUMER)
 * while e is attached, then e is detached and released. */
void conn_endpoint_closed(struct conn_endpoint *e);

/* ---- conn_producer.c ------------------------------------------------------------------------ */

void conn_handle_producer(struct conn *c, const Pulsar__Proto__CommandProducer *m);
void conn_handle_send(struct conn *c, const Pulsar__Proto__CommandSend *s, struct wire_frame *f);
void conn_handle_close_producer(struct conn *c, const Pulsar__Proto__CommandCloseProducer *m);
/* Forget the producers the broker closed more than a keep-alive interval ago (keep-alive). */
void conn_producer_forget_closed(struct conn *c);

/* ---- conn_consumer.c ------------------------------------------------------------------------ */

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
/* What tn's namespace creates on its own (ns_auto_create_get). */
struct ns_auto_create conn_auto_create(struct conn *c, const struct topic_name *tn);
/* May the connection list the topics of tenant_ns (Consume on the namespace, with
 * authorization on)? When not, the request is answered AuthorizationError here. */
bool conn_namespace_readable(struct conn *c, const char *tenant_ns, uint64_t request_id);
/* The same check, without an answer: may c's role list tenant_ns's topics? */
bool conn_namespace_granted(struct conn *c, const char *tenant_ns);

/* ---- conn_watch.c --------------------------------------------------------------------------- */

/* Topic list watchers one connection may hold (each one a namespace watch and a list). */
#define CONN_MAX_TOPIC_WATCHERS 64
void conn_handle_watch_topic_list(struct conn *c, const Pulsar__Proto__CommandWatchTopicList *m);
void conn_handle_watch_topic_list_close(struct conn *c,
                                        const Pulsar__Proto__CommandWatchTopicListClose *m);
/* The connection closes: its watchers end (nothing is sent). */
void conn_watch_close_all(struct conn *c);
/* tenant_ns's grants changed: c's topic list watchers of it whose role may no longer list its
 * topics are ended (no more WATCH_TOPIC_UPDATE). */
void conn_watch_recheck(struct conn *c, const char *tenant_ns);

/* Bytes one read callback takes from the socket beyond libevent's 4 KiB (util/bev.h), on the
 * main loop and on an I/O loop: about what CONN_MAX_FRAMES_PER_PASS frames of 1-2 KiB take. */
#define CONN_READ_MORE_BYTES (128 * 1024)

/* Set the limits of a client connection's bufferevent (a socket's, plain or TLS, or a pair's),
 * on the main loop (conn_new) as on an I/O loop (conn_io.c): reading stops with one
 * maximum-size frame buffered (max_frame: its limit with padding); the write callback comes
 * below out_low; one write of the socket takes up to MG_BEV_WRITE_MAX. */
void conn_bev_limits(struct bufferevent *bev, uint32_t max_frame, size_t out_low);

/* Take one frame from in (wire_frame_read, bounded by max_frame): 1 with f filled, 0 when
 * more bytes are needed, < 0 with why ("bad frame: ...") when the stream is unusable. Safe
 * on an I/O loop's thread. */
int conn_frame_read(struct evbuffer *in, uint32_t max_frame, struct wire_frame *f, char *why,
                    size_t len);

/* ---- conn_io.c ------------------------------------------------------------------------------ */

/* Hand the accepted socket fd (owned from now on) of c to one of p's I/O loops; ssl (owned
 * too; NULL: plain TCP): the server side of its TLS session, whose handshake runs there. */
void conn_io_attach(struct conn *c, struct conn_iopool *p, evutil_socket_t fd, struct ssl_st *ssl);
/* Take the next decoded frame of c (an I/O loop's) into f: false when there is none. */
bool conn_io_next_frame(struct conn *c, struct wire_frame *f);
bool conn_io_has_input(const struct conn *c);
/* Drop the decoded frames not dispatched yet (a refused connection acts on none). */
void conn_io_drop_input(struct conn *c);
/* The queued output of c: its own buffer and what the I/O loop has not written yet. */
size_t conn_io_outbound(const struct conn *c);
/* Close c, still waiting for its CONNECT, for why (handshake: its TLS handshake failed):
 * anyone can open sockets and send garbage or nothing, so these are logged at most once per
 * MG_RATELIMIT_INTERVAL_MS for the whole process. */
void conn_io_close_early(struct conn *c, const char *why, bool handshake);
/* Shut down the writing side of the socket (after a refusal's ERROR went out). */
void conn_io_shutdown_write(struct conn *c);
/* The connection closes: the I/O loop frees the socket (the I/O side's reference of c ends
 * once it did); unwritten output and undispatched frames are dropped. */
void conn_io_detach(struct conn *c);

/* ---- conn_schema.c -------------------------------------------------------------------------- */

/* The command's schema (NULL: none) as a registry schema, owned (conn_schema_free). */
struct sch_schema *conn_schema_from_wire(const Pulsar__Proto__Schema *s);
void conn_schema_free(struct sch_schema *s);
/* The registry step of e's setup on its loaded topic t: 0 when there is nothing to do
 * (go on now), 1 when it started (conn_endpoint_schema_done follows, holding e). */
int conn_schema_step(struct conn_endpoint *e, struct topic *t);
/* PRODUCER_SUCCESS.schema_version of e: 8 bytes, or none (0 bytes, as Pulsar's Empty). */
void conn_schema_version_field(const struct conn_endpoint *e, uint8_t buf[8],
                               ProtobufCBinaryData *out);
void conn_handle_get_schema(struct conn *c, const Pulsar__Proto__CommandGetSchema *m);
void conn_handle_get_or_create_schema(struct conn *c,
                                      const Pulsar__Proto__CommandGetOrCreateSchema *m);

#endif
