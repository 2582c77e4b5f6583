/*
 * client_int.h - struct bodies of the client module; included only by client.c and its
 * tests (tests/unit/check_perf.c, tests/unit/check_client.c).
 */
#ifndef MG_CLIENT_INT_H
#define MG_CLIENT_INT_H

#include "client/client.h"
#include "util/map.h"
#include "wire/wire.h"

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

struct bufferevent;
struct event;

#define CLIENT_DEFAULT_PORT 6650
#define CLIENT_DEFAULT_PORT_TLS 6651
#define CLIENT_MAX_REDIRECTS 20
#define CLIENT_BACKOFF_MIN_MS 100
#define CLIENT_BACKOFF_MAX_MS 30000
#define CLIENT_ACK_GROUP_MAX 1000
#define CLIENT_ACK_GROUP_MS 100

/* A growable flat byte buffer (batch payloads). */
struct client_buf {
    uint8_t *data; /* owned */
    size_t len;
    size_t cap;
};

void client_buf_reserve(struct client_buf *b, size_t extra);
void client_buf_fini(struct client_buf *b);
/* Append one message of a batch: [u32 size][SingleMessageMetadata{payload_size,
 * sequence_id}][payload]. */
void client_batch_append(struct client_buf *b, const void *payload, size_t len, uint64_t seq);
/* The same with the message's key and properties (meta may be NULL). */
void client_batch_append_meta(struct client_buf *b, const void *payload, size_t len, uint64_t seq,
                              const struct client_msg_meta *meta);
/* meta's properties as protobuf KeyValues: *kv (nprops entries) and *ptrs, both mg_free'd by
 * the caller; they borrow meta's strings. */
void client_meta_kv(const struct client_msg_meta *meta, Pulsar__Proto__KeyValue **kv,
                    Pulsar__Proto__KeyValue ***ptrs);

/* The payload bytes of each chunk of a len-byte message whose metadata is md and whose uuid
 * is uuid, under the broker's max_message_size (as Pulsar's ProducerImpl: that size minus
 * the metadata's); 0 when the metadata alone does not fit. */
size_t client_chunk_size(const Pulsar__Proto__MessageMetadata *md, const char *uuid, size_t len,
                         uint32_t max_message_size);

enum client_conn_state {
    CLIENT_CONN_CONNECTING = 0, /* TCP connect in progress */
    CLIENT_CONN_HANDSHAKE,      /* CONNECT sent, waiting for CONNECTED */
    CLIENT_CONN_READY,
    CLIENT_CONN_CLOSED, /* waiting for the deferred free */
};

/* What a request or a waiter for a connection's handshake is for (client.c's table
 * client_req_kinds says what each wants and whom it tells). */
enum client_req_type {
    CLIENT_REQ_NONE = 0, /* fire and forget (CLOSE_*): the answer is dropped */
    CLIENT_WAIT_LOOKUP,  /* waiters: an endpoint's LOOKUP, */
    CLIENT_WAIT_ATTACH,  /* its PRODUCER or SUBSCRIBE, */
    CLIENT_WAIT_QUERY,   /* a PARTITIONED_METADATA or GET_TOPICS_OF_NAMESPACE */
    CLIENT_REQ_LOOKUP,
    CLIENT_REQ_PARTITIONS,
    CLIENT_REQ_TOPICS,
    CLIENT_REQ_WATCH, /* WATCH_TOPIC_LIST */
    CLIENT_REQ_PRODUCER,
    CLIENT_REQ_SUBSCRIBE,
    CLIENT_REQ_TYPES
};

/* A request awaiting its response, or (waiter) an owner awaiting the connection's
 * handshake. Owned by the connection's list; freed as its owner is told. */
struct client_req {
    uint64_t request_id; /* 0 for waiters */
    bool waiter;
    enum client_req_type type;
    void *owner; /* borrowed: the client_ep or partitions context */
    uint64_t deadline_us;
    struct client_req *next;
};

struct client_conn {
    struct client *client; /* borrowed */
    char *url;             /* owned; pool key */
    enum client_conn_state state;
    struct bufferevent *bev;  /* owned */
    struct event *connect_ev; /* owned: connect + handshake timeout */
    struct event *tick_ev;    /* owned: 1 s tick (request deadlines, keep-alive) */
    struct event *free_ev;    /* owned: deferred free after close */
    struct event *fail_ev;    /* owned: reports a synchronous connect failure later */
    char errmsg[256];         /* why fail_ev fires */
    struct client_req *reqs;  /* owned list */
    struct mg_map eps;        /* producer/consumer id -> struct client_ep (borrowed) */
    unsigned ticks;
    bool rx_since_ping;
    uint32_t max_message_size;
    int32_t protocol_version;
    bool topic_watchers;           /* CONNECTED advertised supports_topic_watchers */
    struct client_conn *dead_next; /* borrowed: client's list of closed, not yet freed */
};

enum client_ep_kind { CLIENT_EP_PRODUCER = 0, CLIENT_EP_CONSUMER };

enum client_ep_state {
    CLIENT_EP_INIT = 0,
    CLIENT_EP_LOOKUP,   /* LOOKUP in flight (maybe following redirects) */
    CLIENT_EP_CREATING, /* PRODUCER / SUBSCRIBE sent */
    CLIENT_EP_READY,
    CLIENT_EP_WAIT_RETRY, /* backoff timer running */
    CLIENT_EP_FAILED,     /* first creation failed; inert */
};

/* What producers and consumers share: topic, lookup, connection, reconnect backoff. */
struct client_ep {
    enum client_ep_kind kind;
    struct client *client;    /* borrowed */
    char *topic;              /* owned; full name */
    uint64_t id;              /* producer_id / consumer_id (client-wide unique) */
    struct client_conn *conn; /* borrowed; the connection serving the topic, or NULL */
    enum client_ep_state state;
    bool ever_ready;
    int redirects;
    bool authoritative;
    unsigned starts; /* lookups started: picks the service URL host (multi-host URLs) */
    unsigned backoff_ms;
    struct event *retry_ev;     /* owned */
    LIST_ENTRY(client_ep) link; /* in the client's eps */
};

/* Test seam (tests/unit/check_client.c): when struct client's dial is set, a new connection
 * takes its socket from dial(dial_arg, url) instead of resolving url and connecting: an
 * already connected stream socket, which the connection then owns, or -1 (the connection
 * fails as a refused connect would). NULL in every client the product makes. */
typedef int (*client_dial_fn)(void *arg, const char *url);

struct client {
    struct event_base *base; /* borrowed */
    client_dial_fn dial;     /* the test seam above; NULL */
    void *dial_arg;
    bool use_tls;        /* the service URL is pulsar+ssl://: lookups follow TLS URLs */
    SSL_CTX *ssl_ctx;    /* owned; NULL unless use_tls */
    char *auth_token;    /* owned; NULL = no authentication */
    bool auth_tls;       /* a client certificate is shown: auth method "tls" */
    char *service_url;   /* owned, normalised pool key (the first host) */
    char **service_urls; /* owned: every host of a multi-host URL, normalised */
    int n_service_urls;
    unsigned connect_timeout_ms;
    unsigned operation_timeout_ms;
    unsigned keepalive_s;
    uint64_t next_request_id;
    uint64_t next_ep_id;
    struct mg_map conns;        /* url -> struct client_conn (owned through this map) */
    LIST_HEAD(, client_ep) eps; /* borrowed: the producers and consumers */
    struct client_conn *dead;   /* owned list: closed connections awaiting their deferred free */
    struct mg_map watches;      /* watcher id -> struct client_query_req (client_watch_topics) */
    bool closing;
};

/* One message awaiting its receipt. */
struct client_pending_msg {
    client_send_cb cb;
    void *data; /* borrowed */
    uint64_t enqueued_us;
    uint64_t seq;
    size_t size;
};

/* One SEND (a batch or a single message) awaiting its receipt. */
struct client_op {
    STAILQ_ENTRY(client_op) link; /* in the producer's ops */
    uint64_t first_seq;
    uint64_t last_seq;
    bool batched;
    unsigned n;
    struct client_pending_msg *msgs; /* owned, n entries */
    struct evbuffer *frame;          /* owned: the SEND frame, resent verbatim on reconnect */
};

struct client_producer {
    struct client_ep ep; /* first: a client_ep * is a client_producer * when kind says so */
    char *name;          /* owned; requested, then the broker's answer */
    bool user_name;
    uint64_t epoch;
    uint64_t next_seq;
    bool seq_known; /* next_seq set from the first PRODUCER_SUCCESS */
    bool batching;
    bool chunking;   /* opts.chunking (then batching is false) */
    int compression; /* enum mg_codec */
    unsigned batch_max_messages;
    size_t batch_max_bytes;
    unsigned batch_max_delay_us;
    unsigned max_pending;
    unsigned pending;                 /* messages in ops + the open batch */
    STAILQ_HEAD(, client_op) ops;     /* owned queue of sent/unsent SENDs, oldest first */
    struct client_buf batch;          /* the open batch's payload */
    struct client_pending_msg *bmsgs; /* owned: the open batch's messages */
    unsigned bn;
    unsigned bcap;
    uint64_t batch_publish_ms;
    struct event *batch_ev; /* owned: max publish delay */
    /* without batching: the key and properties of the one message waiting in batch */
    char *single_key;    /* owned or NULL */
    char **single_props; /* owned: nsingle_props key/value pairs */
    size_t nsingle_props;
    int64_t single_deliver_at; /* deliver_at_time of that message, 0 = none */
    client_producer_ready_cb ready_cb;
    void *data;                  /* borrowed */
    struct client_schema schema; /* data owned; type -1: none */
    uint8_t schema_version[8];   /* PRODUCER_SUCCESS's, schema_version_len bytes */
    size_t schema_version_len;
};

/* The chunk ids of a delivered chunked message, until the application acks its id (the
 * last chunk's), keyed by that id's (ledger, entry). */
struct client_chunk_ids {
    size_t n;
    struct client_msg_id ids[]; /* every chunk's entry, in chunk order */
};

/* A chunked message being reassembled (consumer's chunks map, keyed by uuid). */
struct client_chunk_ctx {
    char *uuid;                         /* owned */
    int32_t num_chunks;                 /* num_chunks_from_msg */
    int32_t last_chunk_id;              /* the last chunk appended */
    size_t total;                       /* total_chunk_msg_size */
    struct client_buf buf;              /* the chunks' payloads so far */
    struct client_msg_id *ids;          /* owned, num_chunks entries: the chunks received so far */
    uint64_t created_us;                /* mg_mono_us() at chunk 0 */
    TAILQ_ENTRY(client_chunk_ctx) link; /* in the consumer's chunk_order, oldest first */
};

/* Per received batch entry: which indexes the application acked. */
struct client_batch_track {
    int32_t size;
    int32_t remaining;
    uint64_t acked[]; /* bit i = index i acked */
};

struct client_consumer {
    struct client_ep ep; /* first */
    char *subscription;  /* owned */
    char *consumer_name; /* owned or NULL */
    enum client_sub_type sub_type;
    enum client_initial_position initial_position;
    bool non_durable, has_start;
    bool read_compacted; /* SUBSCRIBE read_compacted */
    struct client_msg_id start;
    unsigned queue_size;
    unsigned consumed_since_flow;
    struct mg_map batches; /* (ledger, entry) -> struct client_batch_track (owned) */
    struct mg_map chunks;  /* uuid -> struct client_chunk_ctx (owned through chunk_order) */
    TAILQ_HEAD(, client_chunk_ctx) chunk_order; /* the incomplete chunked messages, oldest first */
    unsigned nchunked;                          /* entries in chunk_order */
    unsigned max_pending_chunked;
    bool auto_ack_oldest_chunked;
    unsigned chunk_expire_ms;
    size_t max_chunked_bytes;
    struct mg_map chunk_acks;   /* (ledger, entry) of a delivered chunked message's id ->
                                   struct client_chunk_ids (owned) */
    struct client_msg_id *acks; /* owned: grouped individual acks (entry level) */
    size_t nacks;
    size_t acap;
    struct event *ack_ev;   /* owned: ack grouping timer */
    struct event *chunk_ev; /* owned: the oldest incomplete chunked message's expiry */
    client_message_cb msg_cb;
    client_consumer_ready_cb ready_cb;
    void *data;                  /* borrowed */
    struct client_schema schema; /* data owned; type -1: none */
    bool reached_end;            /* REACHED_END_OF_TOPIC came (the topic is terminated) */
};

#endif
