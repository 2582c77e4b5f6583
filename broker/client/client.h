/*
 * client.h - a small asynchronous Pulsar client on a caller-provided libevent event_base.
 *
 * Used by `magnetar perf` and by tests. One struct client holds a connection pool (keyed by
 * the exact broker URL string), the producers and the consumers. Everything runs on the
 * loop thread of the event_base: every callback below fires on that thread, never from
 * inside the call that registered it (except where stated), and never after the object it
 * belongs to has been freed.
 *
 * Producers batch messages client-side and keep a window of pending (sent, not yet
 * acknowledged) messages; consumers unpack batches and push each message to a callback.
 * A chunking producer sends a message over the broker's max message size as chunks (Pulsar's
 * uuid / chunk_id / num_chunks_from_msg / total_chunk_msg_size); consumers put chunks back
 * together per uuid (bounded in count, size and age) and deliver the whole message.
 * Both survive connection loss and broker-initiated CLOSE_*: they look the topic up again
 * and reconnect with backoff (100 ms doubling to 30 s); a producer resends its pending
 * messages with their original sequence ids.
 *
 * Re-entrancy: callbacks may call client_producer_send, client_consumer_ack and the
 * *_flush functions, but must not free the client, a producer or a consumer; stop the
 * loop (event_base_loopbreak) and free them after it returns.
 */
#ifndef MG_CLIENT_H
#define MG_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct client;
struct client_producer;
struct client_consumer;

enum client_sub_type {
    CLIENT_SUB_EXCLUSIVE = 0,
    CLIENT_SUB_SHARED,
    CLIENT_SUB_FAILOVER,
    CLIENT_SUB_KEY_SHARED,
};

enum client_initial_position {
    CLIENT_POS_LATEST = 0,
    CLIENT_POS_EARLIEST,
};

struct client_opts {
    const char *service_url;       /* "pulsar://host[:port][,host[:port]...]" (port 6650 by
                                      default); with several hosts, each lookup (first or
                                      after a failure) asks the next one */
    unsigned connect_timeout_ms;   /* TCP connect + CONNECT/CONNECTED; 0 = 10000 */
    unsigned operation_timeout_ms; /* lookups, PRODUCER, SUBSCRIBE; 0 = 30000 */
    unsigned keepalive_s;          /* PING interval; 0 = 30 */
    /* pulsar+ssl:// service URLs: CA bundle (PEM) the brokers' certificates must verify
     * against; NULL = the system's. tls_allow_insecure: do not verify. */
    const char *tls_trust_certs_file;
    bool tls_allow_insecure;
    const char *auth_token; /* sent in CONNECT as auth method "token"; NULL = none */
    /* Pulsar's AuthenticationTls (pulsar+ssl:// only): the client certificate chain and key
     * (PEM) shown in the handshake; CONNECT then names auth method "tls". NULL = none. */
    const char *tls_cert_file;
    const char *tls_key_file;
};

struct client_msg_id {
    uint64_t ledger_id;
    uint64_t entry_id;
    int32_t partition;   /* -1 for a non-partitioned topic */
    int32_t batch_index; /* -1 when the entry is not a batch */
    int32_t batch_size;  /* messages in the entry's batch, 0 when not a batch */
};

/* What a producer reports for each message. */
struct client_send_result {
    int status;              /* 0, or -MG_E*: -MG_ECANCELED when the producer was freed,
                                -MG_ECHECKSUM / -MG_ENOTALLOWED / -MG_ETERMINATED from
                                the broker, -MG_ETOOBIG for an oversized message */
    struct client_msg_id id; /* valid when status == 0 */
    uint64_t sequence_id;
    uint64_t enqueued_us;  /* mg_mono_us() when client_producer_send was called */
    uint64_t completed_us; /* mg_mono_us() when its SEND completed (read once per SEND) */
    size_t size;           /* payload bytes */
};

/* A message's key and properties (client_producer_send_meta); every pointer is borrowed
 * for the call. */
struct client_msg_meta {
    const char *key;               /* partition key, NULL = none */
    const char *const *properties; /* nprops key/value pairs: k0, v0, k1, v1, ... */
    size_t nprops;
    /* MessageMetadata.deliver_at_time (Pulsar's deliverAt; epoch ms, 0 = none): Shared and
     * Key_Shared subscriptions get the message then. Producers without batching only (a
     * batch has one time): -MG_EINVAL from a batching producer. */
    int64_t deliver_at_ms;
};

/* A received message; every pointer is borrowed and valid only during the callback. */
struct client_message {
    struct client_msg_id id;
    const void *payload;
    size_t len;
    uint64_t publish_time; /* ms since the epoch, from the producer's metadata */
    uint64_t event_time;   /* 0 when unset */
    uint64_t sequence_id;
    const char *producer_name;
    const char *key; /* partition key or NULL */
    uint32_t redelivery_count;
    int64_t schema_version;        /* the producer's schema version from the metadata, -1 = none */
    const char *const *properties; /* nprops key/value pairs: k0, v0, k1, v1, ... */
    size_t nprops;
};

/* A schema a producer registers or a consumer is checked with (Pulsar's Schema: type is
 * PulsarApi.proto's Schema.Type, e.g. 4 Avro; data its definition). Borrowed by the options,
 * copied by the client. */
struct client_schema {
    int type;
    const void *data;
    size_t len;
};

struct client_producer_opts {
    const char *topic;           /* short ("t"), "tenant/ns/t" or a full persistent:// name */
    const char *producer_name;   /* NULL: the broker assigns one */
    bool batching;               /* false: one SEND per message */
    unsigned batch_max_messages; /* 0 = 1000 */
    size_t batch_max_bytes;      /* 0 = 128 KiB */
    unsigned batch_max_delay_us; /* 0 = 1000 (1 ms) */
    unsigned max_pending;        /* messages sent or batched but not yet acknowledged; 0 = 1000 */
    const struct client_schema *schema; /* NULL: none (bytes) */
    int compression; /* enum mg_codec (util/compress.h): each entry's payload (a batch's whole
                        payload) compressed with it, as Pulsar's compressionType; 0 = NONE */
    /* Pulsar's chunkingEnabled: a message whose (compressed) payload does not fit the
     * broker's max message size minus its metadata goes as chunks (one SEND each, same
     * sequence id, uuid "<producer name>-<sequence id>"); its callback fires on the last
     * chunk's receipt with that chunk's id. Turns batching off, as Pulsar does. */
    bool chunking;
};

struct client_consumer_opts {
    const char *topic;
    const char *subscription;
    const char *consumer_name; /* NULL: none */
    enum client_sub_type sub_type;
    enum client_initial_position initial_position;
    unsigned receiver_queue_size;       /* FLOW permits; 0 = 1000. Refilled at half. */
    const struct client_schema *schema; /* NULL: none */
    bool non_durable;    /* a reader's subscription: no cursor is stored, gone when closed */
    bool read_compacted; /* SUBSCRIBE read_compacted: the compacted view first (Exclusive,
                            Failover) */
    const struct client_msg_id *start_id; /* non_durable: start at this entry (copied);
                                             NULL = initial_position */
    /* Chunked messages being reassembled (Pulsar's maxPendingChunkedMessage): past it the
     * oldest incomplete one is dropped; 0 = 10. */
    unsigned max_pending_chunked;
    /* Pulsar's autoAckOldestChunkedMessageOnQueueFull: the chunks of the one dropped past
     * max_pending_chunked are acked (true) or left unacked, for the broker to deliver again
     * after a reconnect (false, Pulsar's default). */
    bool auto_ack_oldest_chunked;
    /* Pulsar's expireTimeOfIncompleteChunkedMessage: an incomplete chunked message older
     * than this is dropped (chunks acked), by a timer even when no other chunk comes;
     * 0 = 60000 ms. */
    unsigned chunk_expire_ms;
    /* A chunked message announcing more bytes (total_chunk_msg_size) is dropped and its
     * chunks acked; 0 = 256 MiB. */
    size_t max_chunked_bytes;
};

/* Fires once when the producer or consumer is first created (status 0) or could not be
 * (status < 0, msg says why). After a failure the object is inert: free it. */
typedef void (*client_producer_ready_cb)(struct client_producer *p, int status, const char *msg,
                                         void *data);
typedef void (*client_consumer_ready_cb)(struct client_consumer *c, int status, const char *msg,
                                         void *data);
/* Fires exactly once per message passed to client_producer_send. */
typedef void (*client_send_cb)(struct client_producer *p, const struct client_send_result *r,
                               void *data);
/* Fires for every message received. The message counts as consumed when this returns. */
typedef void (*client_message_cb)(struct client_consumer *c, const struct client_message *m,
                                  void *data);
/* PARTITIONED_METADATA answer: partitions (0 = not partitioned) or status < 0. */
typedef void (*client_partitions_cb)(struct client *c, int status, uint32_t partitions,
                                     const char *msg, void *data);

/* Parse "pulsar://host[:port]" into host (malloc'd, caller frees with mg_free) and port.
 * Returns 0 or -MG_EINVAL with a reason in errmsg. */
int client_parse_url(const char *url, char **host, int *port, char *errmsg, size_t errlen);
/* Whether url is a pulsar+ssl:// URL (its default port is 6651). */
bool client_url_tls(const char *url);
/* A TLS client context as pulsar+ssl:// connections use (also for https:// admin calls): the
 * server's certificate must verify against trust_certs_file (PEM; NULL = the system's CAs)
 * unless allow_insecure; host names are not checked (Pulsar's tlsHostnameVerificationEnable
 * defaults to false). NULL with errmsg filled when the file cannot be loaded. */
struct ssl_ctx_st *client_tls_ctx_new(const char *trust_certs_file, bool allow_insecure,
                                      char *errmsg, size_t errlen);
/* Expand a short topic name to persistent://tenant/ns/name; malloc'd (mg_free). */
char *client_topic_full_name(const char *topic);

/* Create a client on base. Checks the service URL synchronously (returns -MG_EINVAL and
 * fills errmsg on a bad one); connects lazily on first use. *out owned by the caller. */
int client_new(struct event_base *base, const struct client_opts *opts, struct client **out,
               char *errmsg, size_t errlen);
/* Close every connection and free every producer and consumer still open (their pending
 * sends complete with -MG_ECANCELED first). Accepts NULL. */
void client_free(struct client *c);

/* Ask the service URL broker how many partitions topic has. */
int client_get_partitions(struct client *c, const char *topic, client_partitions_cb cb, void *data);
/* GET_TOPICS_OF_NAMESPACE answer: the persistent topics of a namespace (full names,
 * partitions listed one by one; borrowed for the call), or status < 0. */
typedef void (*client_topics_cb)(struct client *c, int status, const char *const *topics,
                                 size_t ntopics, const char *msg, void *data);
/* Ask the service URL broker for the persistent topics of ns ("tenant/namespace"). */
int client_get_topics(struct client *c, const char *ns, client_topics_cb cb, void *data);
/* Watch the persistent topics of ns that match pattern (a topicsPattern such as
 * "persistent://t/ns/orders-.*"): WATCH_TOPIC_LIST to the service URL broker. cb runs first
 * with the matching topics (or an error: -MG_ENOTSUP when the broker does not filter by
 * pattern, then fall back to client_get_topics), then once per WATCH_TOPIC_UPDATE with the
 * topics it created (deleted ones are not told: their consumers are closed by the broker).
 * The watch lasts until client_free; it is not re-established after its connection drops. */
int client_watch_topics(struct client *c, const char *ns, const char *pattern, client_topics_cb cb,
                        void *data);

/* Create a producer; ready_cb fires once. Returns 0 (the producer is in *out, owned by the
 * caller, valid even if creation later fails) or -MG_EINVAL for bad options. */
int client_producer_new(struct client *c, const struct client_producer_opts *opts,
                        client_producer_ready_cb ready_cb, void *data,
                        struct client_producer **out);
/* Queue one message (payload copied). Returns 0 (cb fires later exactly once), -MG_EAGAIN
 * when max_pending messages are outstanding (cb never fires; retry after a callback),
 * -MG_ETOOBIG over the broker's max message size, or -MG_ECLOSED if creation failed. */
int client_producer_send(struct client_producer *p, const void *payload, size_t len,
                         client_send_cb cb, void *data);
/* The same, with a key and properties (NULL meta: none), copied. */
int client_producer_send_meta(struct client_producer *p, const void *payload, size_t len,
                              const struct client_msg_meta *meta, client_send_cb cb, void *data);
/* Send the open batch now. */
void client_producer_flush(struct client_producer *p);
/* Messages sent or batched and not yet acknowledged. */
unsigned client_producer_pending(const struct client_producer *p);
/* The name the broker gave (NULL before the producer is ready). Borrowed. */
const char *client_producer_name(const struct client_producer *p);
/* The version of the producer's schema the broker answered (PRODUCER_SUCCESS), -1 = none; its
 * messages carry it in their metadata. */
int64_t client_producer_schema_version(const struct client_producer *p);
/* Close the producer (CLOSE_PRODUCER, no wait) and free it; pending sends complete with
 * -MG_ECANCELED during this call. Accepts NULL. Not from inside a client callback. */
void client_producer_free(struct client_producer *p);

int client_consumer_new(struct client *c, const struct client_consumer_opts *opts,
                        client_message_cb msg_cb, client_consumer_ready_cb ready_cb, void *data,
                        struct client_consumer **out);
/* Acknowledge one message. Acks are grouped (up to 1000 ids or 100 ms) into one ACK frame;
 * a batch entry is acked once all its messages are; a chunked message's id (its last
 * chunk's) acks every one of its chunks. Returns 0 or -MG_ECLOSED. */
int client_consumer_ack(struct client_consumer *c, const struct client_msg_id *id);
/* Acknowledge everything up to and including id (Exclusive/Failover only). */
int client_consumer_ack_cumulative(struct client_consumer *c, const struct client_msg_id *id);
/* Send grouped acks now. */
void client_consumer_flush(struct client_consumer *c);
/* The broker said the topic is terminated and this subscription consumed all of it
 * (REACHED_END_OF_TOPIC; Pulsar's hasReachedEndOfTopic). */
bool client_consumer_reached_end(const struct client_consumer *c);
/* Close (CLOSE_CONSUMER after flushing acks, no wait) and free. Accepts NULL. */
void client_consumer_free(struct client_consumer *c);

/* Parse the message of a batch payload that starts at *off and advance *off past it.
 * Returns 1 with *smm (free with pulsar__proto__single_message_metadata__free_unpacked) and
 * the payload slice, 0 at the end, -MG_EPROTO on a malformed batch. */
struct Pulsar__Proto__SingleMessageMetadata;
int client_batch_next(const uint8_t *p, size_t len, size_t *off,
                      struct Pulsar__Proto__SingleMessageMetadata **smm, const uint8_t **payload,
                      size_t *plen);

#endif
