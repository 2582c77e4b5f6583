/*
 * topic.h - topics, producers, subscriptions, consumers and dispatch.
 *
 * A topic owns one managed ledger (ml.h). Producers publish entries into it; each
 * subscription owns one cursor and a dispatcher that sends entries to its consumers
 * within their FLOW permits, following the subscription type's rules (Exclusive,
 * Failover, Shared, Key_Shared: docs/wire-pulsar.md §6).
 *
 * The topic module knows nothing about sockets. A connection registers a producer or a
 * consumer with an `owner` pointer and a table of callbacks (topic_consumer_ops /
 * topic_producer_ops) through which the topic sends MESSAGEs, receipts and broker-side
 * closes. Everything runs on the owning loop thread.
 *
 * Ownership: the registry owns topics; a topic owns its producers, subscriptions and
 * consumers. A connection holds borrowed pointers to its producers/consumers and must
 * call topic_producer_close / topic_consumer_close before it goes away; after a
 * broker-side close callback the pointer is already invalid.
 */
#ifndef MG_TOPIC_H
#define MG_TOPIC_H

#include "ml/ml.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evbuffer;
struct wire_msg_info;
struct topic_registry;
struct topic;
struct topic_producer;
struct topic_consumer;
struct topic_sub;

/* ---- names ------------------------------------------------------------------------------ */

/* A parsed topic name. All strings are owned by the struct (topic_name_fini). */
struct topic_name {
    bool persistent;
    char *tenant;
    char *ns;      /* namespace local part, e.g. "default" */
    char *local;   /* local name, including any -partition-N suffix */
    char *full;    /* "persistent://tenant/ns/local" */
    char *base;    /* full name without the -partition-N suffix */
    int partition; /* N of -partition-N, or -1 */
};
/* Longest full topic name accepted ("persistent://t/ns/local" without a -partition-N
 * suffix), in bytes. Pulsar sets none; ours keeps every name printable in a log line and
 * its metadata paths (the local part is URL-encoded, up to 3 bytes per byte) small. */
#define TOPIC_NAME_MAX_LEN 1024
/* Parse "persistent://t/ns/x", "t/ns/x" or "x" (-> public/default), and the legacy
 * 4-part "persistent://t/cluster/ns/x". Returns 0 or -MG_EBADNAME (also for a control
 * character anywhere, or a name longer than TOPIC_NAME_MAX_LEN). */
int topic_name_parse(const char *s, struct topic_name *out);
void topic_name_fini(struct topic_name *n);
/* Managed-ledger name "tenant/ns/persistent/<url-encoded local>"; caller frees. */
char *topic_name_ml(const struct topic_name *n);
/* Pulsar's SystemTopicNames.isSystemTopic: the namespace events and transaction topics (a
 * partition by its partitioned topic's name). Such a topic is never deleted for inactivity
 * (Pulsar's SystemTopic.checkGC) and stays out of clients' topic lists (ns_topic_is_system). */
bool topic_name_is_system(const struct topic_name *n);

/* ---- registry ---------------------------------------------------------------------------- */

/* Backlog quotas, Pulsar's two types: destination_storage on the bytes of the slowest
 * subscription's backlog, message_age on the age of its oldest unacknowledged message (its
 * publish time), and what happens once the backlog reaches the limit. */
enum topic_quota_type {
    TOPIC_QUOTA_STORAGE = 0, /* destination_storage: limit_bytes */
    TOPIC_QUOTA_AGE,         /* message_age: limit_secs */
    TOPIC_QUOTA_TYPES
};
enum topic_quota_policy {
    TOPIC_QUOTA_HOLD = 0,  /* producer_request_hold: new producers get ServerError 7 and the
                              periodic check disconnects the connected ones */
    TOPIC_QUOTA_EXCEPTION, /* producer_exception: the same with ServerError 8 */
    TOPIC_QUOTA_EVICTION,  /* consumer_backlog_eviction: the periodic check moves the slowest
                              subscription forward (storage: to 90 % of the limit; age: past
                              the messages older than the limit) */
};
struct topic_backlog_quota {
    bool set;            /* false (a zeroed struct) = no quota */
    int64_t limit_bytes; /* destination_storage: < 0 = no quota */
    int64_t limit_secs;  /* message_age: < 0 = no quota */
    enum topic_quota_policy policy;
};

/* A dispatch rate (Pulsar's DispatchRate): at most msgs messages and bytes bytes per period
 * of period_secs; <= 0 = no limit of that kind (Pulsar's -1 and 0). */
struct topic_dispatch_rate {
    int64_t msgs, bytes;
    int32_t period_secs; /* <= 0: 1 */
};
enum topic_rate_scope {
    TOPIC_RATE_TOPIC = 0, /* every subscription of the topic together */
    TOPIC_RATE_SUB,       /* each subscription */
    TOPIC_RATE_SCOPES
};

struct topic_config {
    int32_t max_pending_publish_per_conn;   /* maxPendingPublishRequestsPerConnection */
    int32_t max_unacked_per_consumer;       /* maxUnackedMessagesPerConsumer, 0 = no limit */
    int32_t max_unacked_per_subscription;   /* maxUnackedMessagesPerSubscription, 0 = none */
    int32_t max_producers_per_topic;        /* maxProducersPerTopic, 0 = no limit */
    int32_t max_consumers_per_topic;        /* maxConsumersPerTopic, 0 = no limit */
    int32_t max_consumers_per_subscription; /* maxConsumersPerSubscription, 0 = no limit */
    int32_t max_subscriptions_per_topic;    /* maxSubscriptionsPerTopic, 0 = no limit */
    /* dispatchThrottlingRatePerTopicInMsg/InByte and ...PerSubscriptionInMsg/InByte */
    struct topic_dispatch_rate dispatch_rate[TOPIC_RATE_SCOPES];
    /* maxPublishRatePerTopicInMessages/InBytes (period 1 s) */
    struct topic_dispatch_rate publish_rate;
    /* brokerDeleteInactiveTopics*: every inactive_check_ms (0 = never: the key is off, and
     * no topic or namespace policy turns the check on, as Pulsar's inactivity monitor) each
     * loaded persistent topic is checked against its inactive topic policy (topic_inactive_*
     * below); the broker's policy is deleteWhileInactive = inactive_check_ms > 0, the mode
     * inactive_caught_up (delete_when_subscriptions_caught_up, else
     * delete_when_no_subscriptions) and inactive_max_ms */
    int64_t inactive_check_ms, inactive_max_ms;
    bool inactive_caught_up;
    int32_t dispatch_max_round_robin; /* dispatcherMaxRoundRobinBatchSize (20) */
    int32_t dispatch_max_read_batch;  /* dispatcherMaxReadBatchSize (100) */
    size_t max_message_size; /* maxMessageSize: the bound of a decompressed batch (compaction);
                                0: WIRE_DEFAULT_MAX_MESSAGE_SIZE */
    size_t consumer_outbound_high_water;       /* bytes queued on a consumer's connection above
                                                  which dispatch to it pauses */
    int32_t active_consumer_failover_delay_ms; /* activeConsumerFailoverDelayTimeMillis */
    bool delayed_enabled;        /* delayedDeliveryEnabled: Shared/Key_Shared hold back messages
                                    with a deliver_at_time until then */
    int64_t delayed_tick_ms;     /* delayedDeliveryTickTimeMillis; <= 0: 1000 */
    int32_t delayed_max_tracked; /* delayed positions a subscription holds before it stops
                                    reading new entries; <= 0: TOPIC_DELAY_MAX_TRACKED */
    const char *cluster_name;    /* producer names: "<cluster>-<broker>-<n>" */
    int broker_index;
    int64_t ttl_default_secs;         /* ttlDurationDefaultInSeconds: message TTL; 0 = none */
    int64_t expiry_check_interval_ms; /* messageExpiryCheckIntervalInMinutes: how often the
                                         TTL is applied to every loaded topic; 0 = never */
    struct topic_backlog_quota quota_default; /* backlogQuotaDefaultLimitBytes,
                                                 backlogQuotaDefaultLimitSecond and
                                                 backlogQuotaDefaultRetentionPolicy: the
                                                 default of both types */
    int64_t quota_check_interval_ms;          /* backlogQuotaCheckIntervalInSeconds; 0 = never */
    /* message deduplication (topic_dedup.c) */
    bool dedup_enabled;          /* brokerDeduplicationEnabled (a namespace's policy overrides) */
    int32_t dedup_max_producers; /* brokerDeduplicationMaxNumberOfProducers; <= 0: 10000 */
    int32_t dedup_entries_interval; /* brokerDeduplicationEntriesInterval; <= 0: 1000 */
    /* compaction (topic_compact.c) */
    int64_t compaction_threshold_bytes; /* brokerServiceCompactionThresholdInBytes; 0 = off (a
                                           namespace's compactionThreshold overrides) */
    int64_t compaction_monitor_ms;      /* brokerServiceCompactionMonitorIntervalInSeconds;
                                           0 = no automatic compaction */
    int64_t dedup_inactivity_ms;        /* brokerDeduplicationProducerInactivityTimeoutMinutes;
                                           <= 0: producers are never forgotten for inactivity */
    bool np_disabled; /* !enableNonPersistentTopics: non-persistent names get -MG_ENOTALLOWED */
};

/* The registry runs on the loop of mlf (ml_factory_loop), base being that loop's base: the
 * loop's clock stamps its statistics (creation, connect, publish, ack times, publish
 * latency) and its timers (failover delay, read retry, the unload after fencing) run there,
 * so a simulated loop drives them. */
struct topic_registry *topic_registry_new(struct event_base *base, struct ml_factory *mlf,
                                          const struct topic_config *cfg);
/* Closes every topic: producers and consumers get their closed callbacks first. */
void topic_registry_free(struct topic_registry *r);

typedef void (*topic_get_cb)(struct topic *t, int status, void *data);
/* Find the loaded topic, or load it (opening its ML). create=false makes a missing topic
 * -MG_ENOTFOUND. Concurrent gets for a topic that is loading all wait for the same load.
 * Callback after return; t is borrowed. */
int topic_get(struct topic_registry *r, const char *full_name, bool create, topic_get_cb cb,
              void *data);
/* The loaded topic, or NULL. */
struct topic *topic_find(struct topic_registry *r, const char *full_name);
/* Iterate loaded topics: *pos = 0 first; NULL at the end. */
struct topic *topic_next(struct topic_registry *r, size_t *pos);
/* Close (unload) a topic: its producers and consumers get closed callbacks. */
void topic_unload(struct topic *t);
/* Delete a topic and its data; -MG_EBUSY if it has producers or consumers and !force. */
int topic_delete(struct topic *t, bool force);
/* Terminate the topic (Pulsar's terminate): no more messages. Publishes from now on fail
 * with -MG_ETERMINATED, those accepted before are stored; then every producer is closed
 * (closed callback: a client that comes back is refused with -MG_ETERMINATED) and each
 * subscription's consumers hear reached_end once they consumed everything. cb (after the
 * call returned) gets the last message id, or an error; a terminated topic answers its
 * position again. The state is stored with the managed ledger (ml_terminate). */
typedef void (*topic_terminate_cb)(void *data, int status, struct ml_position last);
int topic_terminate(struct topic *t, topic_terminate_cb cb, void *data);

const char *topic_full_name(const struct topic *t);
/* false for a non-persistent:// topic (topic_np.c) */
bool topic_is_persistent(const struct topic *t);
struct ml_ledger *topic_ml(struct topic *t);

/* ---- producers --------------------------------------------------------------------------- */

struct topic_producer_ops {
    /* The broker closes the producer (topic unload/delete). The producer is freed after
     * this returns; the connection sends CLOSE_PRODUCER and forgets its pointer. */
    void (*closed)(void *owner, struct topic_producer *p);
};

enum topic_access_mode {
    TOPIC_ACCESS_SHARED = 0,
    TOPIC_ACCESS_EXCLUSIVE = 1,
    TOPIC_ACCESS_WAIT_FOR_EXCLUSIVE = 2,
    TOPIC_ACCESS_EXCLUSIVE_WITH_FENCING = 3,
};

/* Add a producer. name NULL or "" = generate a unique one. Errors: -MG_EPRODUCERBUSY (name
 * already connected, or a Shared producer while an Exclusive one holds the topic),
 * -MG_EPRODUCERFENCED (Exclusive while another Exclusive holds it), -MG_ETERMINATED (the
 * topic is terminated). *out is owned by the
 * topic; topic_producer_name gives the (possibly generated) name. */
int topic_producer_add(struct topic *t, const char *name, enum topic_access_mode mode, void *owner,
                       const struct topic_producer_ops *ops, struct topic_producer **out);
const char *topic_producer_name(const struct topic_producer *p);
/* The topic a producer publishes to (NULL once the topic is gone). */
struct topic *topic_producer_topic(const struct topic_producer *p);
/* PRODUCER_SUCCESS.last_sequence_id: the highest sequence id accepted from this producer
 * name while deduplication is on (Pulsar's highestSequencedPushed), else -1. */
int64_t topic_producer_last_sequence(const struct topic_producer *p);

typedef void (*topic_publish_cb)(void *data, int status, struct ml_position pos);
/* Publish one entry (data moved in, as for ml_append). msg is its MessageMetadata as the
 * frame decoder read it (wire_frame.msg; NULL: read here from data). The callback fires in
 * publish order, once the entry is stored. After topic_producer_close, pending callbacks
 * still fire (status may be -MG_ECANCELED). */
int topic_publish(struct topic_producer *p, struct evbuffer *data, const struct wire_msg_info *msg,
                  uint64_t sequence_id, uint64_t highest_sequence_id, topic_publish_cb cb,
                  void *cb_data);
/* With deduplication on (topic_dedup.c): a message whose sequence id is not above the
 * highest stored one of its producer name is not stored; its callback fires in order with
 * status 0 and position (-1, -1) (Pulsar's receipt for a duplicate). One not above the
 * highest accepted one but above the stored one (its original is still being written)
 * fails synchronously with -MG_EDUPUNKNOWN (Pulsar's PersistenceError: the client sends
 * it again). */
/* The content of a stored entry for the managed ledger (struct ml_entry_info: message count,
 * publish time, Key_Shared hash), read from its MessageMetadata; 0, or -MG_EPROTO for bytes
 * that are not a Pulsar entry. The managed-ledger factory's ml_config.entry_info. */
int topic_entry_info(struct evbuffer *entry, struct ml_entry_info *info);
/* Client-side close: the producer is freed once its pending publishes completed. */
void topic_producer_close(struct topic_producer *p);

/* ---- consumers --------------------------------------------------------------------------- */

enum topic_sub_type {
    TOPIC_SUB_EXCLUSIVE = 0,
    TOPIC_SUB_SHARED = 1,
    TOPIC_SUB_FAILOVER = 2,
    TOPIC_SUB_KEY_SHARED = 3,
};

struct topic_consumer_ops {
    /* Send one entry as a MESSAGE. ack_set (n words) is the entry's remaining batch set or
     * NULL. The connection takes its own reference to e->data's bytes (evbuffer
     * reference) if it needs them after returning. */
    void (*send)(void *owner, struct topic_consumer *c, struct ml_entry *e,
                 uint32_t redelivery_count, const int64_t *ack_set, int n_words);
    /* Failover/Exclusive: this consumer became active or inactive. May be NULL. */
    void (*active_change)(void *owner, struct topic_consumer *c, bool active);
    /* The broker closes the consumer (unload, seek, delete). The consumer is freed after
     * this returns; the connection sends CLOSE_CONSUMER and forgets its pointer. */
    void (*closed)(void *owner, struct topic_consumer *c);
    /* Bytes the connection has queued for output (to pause dispatch above a watermark). */
    size_t (*outbound_bytes)(void *owner);
    /* The topic is terminated and the subscription has nothing left to consume (Pulsar's
     * REACHED_END_OF_TOPIC): once per consumer, from the dispatch event. May be NULL. */
    void (*reached_end)(void *owner, struct topic_consumer *c);
};

struct topic_sub_options {
    enum topic_sub_type type;
    bool durable;
    bool initial_earliest;             /* InitialPosition Earliest (new subscriptions) */
    bool has_start;                    /* non-durable readers: start_message_id given */
    struct ml_position start;          /* delivery starts AT this entry (inclusive) */
    int32_t priority_level;            /* lower number = higher priority */
    const char *consumer_name;         /* may be NULL */
    bool key_shared_sticky;            /* KeySharedMode STICKY */
    const int32_t (*sticky_ranges)[2]; /* inclusive [start,end] in [0,65535] */
    int n_sticky_ranges;
    bool allow_out_of_order; /* Key_Shared allowOutOfOrderDelivery */
    int partition_index;     /* topic's partition (-1) for Failover choice */
    bool read_compacted;     /* durable Exclusive/Failover only: read the compacted view first */
};

/* Subscribe a consumer. Errors: -MG_ECONSUMERBUSY (Exclusive already has a consumer, or
 * the type differs from the subscription's), -MG_EASSIGN (sticky ranges overlap).
 * Nothing is dispatched until topic_consumer_flow gives permits. */
int topic_subscribe(struct topic *t, const char *sub_name, const struct topic_sub_options *o,
                    void *owner, const struct topic_consumer_ops *ops, struct topic_consumer **out);
/* Add permits (messages). */
void topic_consumer_flow(struct topic_consumer *c, uint32_t permits);
/* The connection's outbound buffer drained: resume dispatch paused by the watermark. */
void topic_consumer_resume(struct topic_consumer *c);

struct topic_ack {
    struct ml_position pos;
    const int64_t *ack_set; /* NULL = whole entry */
    int n_words;
    int32_t batch_size;
};
/* Individual (cumulative=false) or cumulative ack. Cumulative acks on Shared/Key_Shared
 * are ignored (as Pulsar does) and return -MG_ENOTALLOWED. */
int topic_consumer_ack(struct topic_consumer *c, bool cumulative, const struct topic_ack *acks,
                       int n);
/* Redeliver this consumer's unacked messages: the given positions, or all when n = 0. */
void topic_consumer_redeliver(struct topic_consumer *c, const struct ml_position *pos, int n);
/* Delete the subscription. -MG_ECONSUMERBUSY if other consumers are attached and !force.
 * On success the consumer is closed and freed (no closed callback). */
int topic_consumer_unsubscribe(struct topic_consumer *c, bool force);

typedef void (*topic_done_cb)(void *data, int status);
/* Seek the subscription to a message id or publish time; every consumer of the
 * subscription is closed by the broker (closed callback) once done, then cb runs.
 * -MG_ENOTALLOWED on a non-persistent topic. */
int topic_consumer_seek(struct topic_consumer *c, bool by_time, struct ml_position pos,
                        uint64_t ts_ms, topic_done_cb cb, void *data);
/* Client-side close: its unacked messages go back to the subscription for the others. */
void topic_consumer_close(struct topic_consumer *c);

/* Last message id of the topic: position and batch index (num_messages-1 for a batched
 * entry, -1 otherwise), async (may read the entry). -MG_ENOTALLOWED on a non-persistent
 * topic. */
typedef void (*topic_last_id_cb)(void *data, int status, struct ml_position pos,
                                 int32_t batch_index, struct ml_position mark_delete);
int topic_consumer_last_message_id(struct topic_consumer *c, topic_last_id_cb cb, void *data);

/* ---- admin / stats ----------------------------------------------------------------------- */

/* Histogram buckets of the topic metrics (docs/admin.md §9.2), NOT cumulative: each
 * counts its own range. Write latency bounds in ms: 0.5, 1, 5, 10, 20, 50, 100, 200, 1000,
 * then overflow. Entry size bounds in bytes: 128, 512, 1 KiB, 2 KiB, 4 KiB, 16 KiB,
 * 100 KiB, 1 MiB, then overflow. */
#define TOPIC_LAT_BUCKETS 10
#define TOPIC_SIZE_BUCKETS 9

struct topic_sub_stats {
    const char *name;
    enum topic_sub_type type;
    bool has_type; /* false while no consumer ever attached (Pulsar's "None") */
    bool durable;
    int64_t backlog;
    int64_t unacked;
    bool blocked;                /* at maxUnackedMessagesPerSubscription */
    int64_t delayed;             /* entries held back by delayed delivery (msgDelayed) */
    int64_t delayed_index_bytes; /* memory of their index (delayedMessageIndexSizeInBytes) */
    /* dispatch passes a rate stopped, by enum topic_rate_scope and kind (0: messages, 1:
     * bytes): dispatchThrottled{Msg,Bytes}EventsBy{Topic,Subscription}Limit */
    int64_t throttled[TOPIC_RATE_SCOPES][2];
    int n_consumers;
    int64_t msg_out_counter, bytes_out_counter;
    int64_t ack_counter; /* entries acknowledged through consumers */
    /* averaged over the last stats interval (topic_registry_stats_update) */
    double msg_rate_out, throughput_out, ack_rate, msg_rate_redeliver;
    double chunked_msg_rate;  /* chunks sent per second, summed over the consumers */
    int64_t msg_drop_counter; /* non-persistent: messages dropped (no consumer could take them) */
    double msg_drop_rate;     /* msgDropRate, over the last stats interval */
    uint64_t last_consumed_ms, last_acked_ms; /* 0 = never */
    const char *active_consumer; /* Exclusive/Failover active consumer's name, or NULL */
    struct ml_position mark_delete, read_position;
};
struct topic_stats {
    int n_producers, n_subscriptions, n_consumers;
    int64_t msg_in_counter, bytes_in_counter;
    int64_t msg_out_counter, bytes_out_counter;
    int64_t entries_in_counter; /* entries written */
    int64_t storage_size;
    int64_t backlog_size;
    int64_t msg_backlog;         /* sum of the subscriptions' backlogs (entries) */
    int64_t delayed_index_bytes; /* delayed delivery's indexes (delayedMessageIndexSizeInBytes) */
    /* throttles of the publish rate since the last stats roll (publishRateLimitedTimes) */
    int64_t publish_rate_limited;
    /* quotas: the limits (-1 = none), the age in seconds of the oldest unacknowledged
     * message at the last check (-1 = unknown or no backlog) and the evictions done */
    int64_t quota_limit_bytes, quota_limit_secs;
    int64_t backlog_age_secs;
    int64_t quota_evictions[TOPIC_QUOTA_TYPES];
    /* averaged over the last stats interval */
    double msg_rate_in, msg_rate_out, throughput_in, throughput_out;
    double storage_write_rate, storage_read_rate; /* entries/s */
    double msg_drop_rate; /* non-persistent: the subscriptions' msgDropRate summed */
    uint64_t created_ms, last_publish_ms; /* wall clock; 0 = never */
    bool chunk_published;                 /* a chunk was stored since the load */
    /* last stats interval's histograms (non-cumulative) and their sums (µs, bytes) */
    int64_t write_latency[TOPIC_LAT_BUCKETS];
    int64_t write_latency_sum_us;
    int64_t entry_size[TOPIC_SIZE_BUCKETS];
    int64_t entry_size_sum;
};
void topic_get_stats(struct topic *t, struct topic_stats *out);
/* Iterate subscriptions: *pos = 0 first; returns 0 at the end. */
int topic_sub_stats_next(struct topic *t, size_t *pos, struct topic_sub_stats *out);

struct topic_producer_stats {
    const char *name; /* borrowed until the producer closes */
    enum topic_access_mode mode;
    uint64_t id; /* order of creation on the topic */
    int64_t msg_in_counter, bytes_in_counter;
    double msg_rate_in, throughput_in;
    double chunked_msg_rate; /* chunks stored per second (each chunk of a message counts) */
    uint64_t connected_since_ms;
};
/* Iterate producers: *pos = 0 first; returns 0 at the end. */
int topic_producer_stats_next(struct topic *t, size_t *pos, struct topic_producer_stats *out);

struct topic_consumer_stats {
    const char *name; /* borrowed; "" when the client gave none */
    uint64_t id;      /* connect order within the subscription */
    int64_t msg_out_counter, bytes_out_counter;
    int64_t unacked, permits;
    double msg_rate_out, throughput_out;
    double chunked_msg_rate; /* chunks sent per second */
    bool blocked;            /* at maxUnackedMessagesPerConsumer (Shared, Key_Shared) */
    uint64_t connected_since_ms;
};
/* Iterate the consumers of subscription sub: *idx = 0 first; returns 0 at the end (also
 * when sub does not exist). */
int topic_consumer_stats_next(struct topic *t, const char *sub, int *idx,
                              struct topic_consumer_stats *out);

/* Roll the statistics interval of every loaded topic (Pulsar's statsUpdateFrequencyInSecs
 * timer): rates become (counter now - counter at the previous roll) / elapsed time and the
 * histograms of the interval that ended become the reported ones. now_ms: the registry
 * loop's monotonic clock in ms (mg_loop_mono_ms). Loop thread. */
void topic_registry_stats_update(struct topic_registry *r, uint64_t now_ms);

/* Broker-wide publish latency (publish to stored, ms) over recent publishes: the samples
 * kept (up to n, most recent first order not guaranteed) copied to out; returns how many.
 * *count / *sum_ms: every publish since start. */
int topic_registry_publish_latency(struct topic_registry *r, double *out, int n, int64_t *count,
                                   double *sum_ms);

/* The cursor of subscription sub (borrowed; internal stats), or NULL. */
struct ml_cursor *topic_sub_cursor(struct topic *t, const char *sub);

/* Called once for every topic that finished loading, before its waiters run (e.g. to apply
 * namespace policies to its ML). One hook per registry; fn NULL removes it. */
typedef void (*topic_loaded_fn)(void *arg, struct topic *t);
void topic_registry_set_loaded_hook(struct topic_registry *r, topic_loaded_fn fn, void *arg);

/* Admin operations on a subscription by name (creating it at latest/earliest when create).
 * -MG_ENOSUB if missing. */
int topic_admin_create_sub(struct topic *t, const char *sub, bool earliest);
int topic_admin_delete_sub(struct topic *t, const char *sub, bool force);
int topic_admin_skip(struct topic *t, const char *sub, int64_t n);
int topic_admin_clear_backlog(struct topic *t, const char *sub);
int topic_admin_reset_cursor(struct topic *t, const char *sub, struct ml_position pos);
/* Message TTL of t (a namespace's message_ttl_in_seconds, 0 = none); reset: back to the
 * registry's ttl_default_secs. The expiry timer applies it. */
/* ---- limits (Pulsar's maxProducersPerTopic ... maxUnackedMessagesPerSubscription) --------
 *
 * Each limit is the topic's own policy (TopicPolicies, topic_set_topic_limit) when set, else
 * its namespace's (topic_set_limit), else the registry's default (topic_config); 0 = no
 * limit. The rates below are layered the same way. topic_producer_add refuses a producer over
 * PRODUCERS (-MG_EPRODUCERBUSY), topic_subscribe a consumer over CONSUMERS or
 * CONSUMERS_PER_SUB (-MG_ECONSUMERBUSY) and a new subscription over SUBSCRIPTIONS
 * (-MG_ENOTALLOWED). A Shared or Key_Shared consumer at UNACKED_PER_CONSUMER gets nothing
 * more until acks bring it to half of it, a subscription at UNACKED_PER_SUB until below
 * half (Pulsar's hysteresis; blocked in their stats). */
enum topic_limit {
    TOPIC_LIMIT_PRODUCERS = 0,        /* maxProducersPerTopic */
    TOPIC_LIMIT_CONSUMERS,            /* maxConsumersPerTopic */
    TOPIC_LIMIT_CONSUMERS_PER_SUB,    /* maxConsumersPerSubscription */
    TOPIC_LIMIT_SUBSCRIPTIONS,        /* maxSubscriptionsPerTopic */
    TOPIC_LIMIT_UNACKED_PER_CONSUMER, /* maxUnackedMessagesPerConsumer */
    TOPIC_LIMIT_UNACKED_PER_SUB,      /* maxUnackedMessagesPerSubscription */
    TOPIC_LIMITS
};
/* max < 0: back to the registry's default. A change takes effect for the next producer or
 * consumer; a raised unacked limit resumes blocked consumers at once. */
void topic_set_limit(struct topic *t, enum topic_limit l, int64_t max);
/* The topic's own limit (its TopicPolicies), which wins over topic_set_limit's; < 0: not set. */
void topic_set_topic_limit(struct topic *t, enum topic_limit l, int64_t max);
/* The broker's key for limit l (what applies without a topic or namespace override). */
int64_t topic_registry_limit(const struct topic_registry *r, enum topic_limit l);
int64_t topic_limit(const struct topic *t, enum topic_limit l);
/* The limit that refused the last topic_producer_add or topic_subscribe on t, -1 when that
 * call was not refused by a limit; and Pulsar's message for it into buf. */
int topic_limit_refused(const struct topic *t);
void topic_limit_message(const struct topic *t, enum topic_limit l, char *buf, size_t len);

/* ---- dispatch rate limits (topic_rate.c) ----------------------------------------------------
 *
 * A subscription reads and sends only while both its own bucket and its topic's have room
 * (token buckets refilled continuously, holding at most one period's worth; a batch may take
 * them below zero, which later reads wait out). Out of room, it stops and its timer brings
 * it back when there is room again: no polling. rate NULL: back to the broker's keys. */
void topic_set_dispatch_rate(struct topic *t, enum topic_rate_scope sc,
                             const struct topic_dispatch_rate *rate);
struct topic_dispatch_rate topic_dispatch_rate(const struct topic *t, enum topic_rate_scope sc);
/* The topic's own rates (its TopicPolicies), which win over the namespace's; NULL: not set. */
void topic_set_topic_dispatch_rate(struct topic *t, enum topic_rate_scope sc,
                                   const struct topic_dispatch_rate *rate);
void topic_set_topic_publish_rate(struct topic *t, const struct topic_dispatch_rate *rate);
/* The broker's keys for dispatch rate scope sc, or (sc = TOPIC_RATE_SCOPES) the publish rate. */
struct topic_dispatch_rate topic_registry_rate(const struct topic_registry *r, int sc);
/* Publish rate (the namespace's publishRate, else maxPublishRatePerTopicInMessages/InBytes;
 * same struct, <= 0 = none): every publish takes its messages and bytes from the topic's
 * bucket; topic_publish_wait_ms tells a connection how long its publishers must wait before
 * the bucket is above zero again (0: go on). The connection stops reading meanwhile, as
 * Pulsar's throttling; nothing is refused. rate NULL: back to the broker's keys. */
void topic_set_publish_rate(struct topic *t, const struct topic_dispatch_rate *rate);
struct topic_dispatch_rate topic_publish_rate(const struct topic *t);
/* A non-zero answer while the topic is not already throttled starts a throttle, counted in
 * topic_stats.publish_rate_limited. */
int64_t topic_publish_wait_ms(struct topic *t);

void topic_set_message_ttl(struct topic *t, int64_t secs);
void topic_reset_message_ttl(struct topic *t);
int64_t topic_message_ttl(const struct topic *t);
/* Expire messages (Pulsar's expireMessages): on subscription sub (NULL: every durable
 * subscription), acknowledge every message published more than secs ago (the mark-delete
 * moves to the last such entry; it never moves back). Asynchronous (the position is found
 * by publish time, which may read from the store); cb (may be NULL) gets 0 or an error once
 * done. -MG_ENOSUB synchronously for an unknown sub, -MG_ECLOSED for a topic not loaded. */
int topic_expire_messages(struct topic *t, const char *sub, int64_t secs, topic_done_cb cb,
                          void *data);
/* The backlog quota of that type of t (a namespace's backlog_quota_map entry); reset: back to
 * the registry's quota_default. The limit of a type is its field (limit_bytes, limit_secs);
 * topic_quota_limit gives it, -1 when the quota is not set. */
void topic_set_backlog_quota(struct topic *t, enum topic_quota_type type,
                             const struct topic_backlog_quota *q);
void topic_reset_backlog_quota(struct topic *t, enum topic_quota_type type);
struct topic_backlog_quota topic_backlog_quota(const struct topic *t, enum topic_quota_type type);
int64_t topic_quota_limit(const struct topic *t, enum topic_quota_type type);
/* Bytes of the slowest durable subscription's backlog (Pulsar's backlogSize, estimated from
 * the average entry size). */
int64_t topic_backlog_bytes(struct topic *t);
/* Apply t's quotas now (what the periodic check does). The age quota needs the publish time
 * of the oldest unacknowledged message: when its position changed since the last check it
 * is read (ml_get_entry) and the quota applied when the read completes. */
void topic_check_backlog_quota(struct topic *t);

/* ---- inactive topic deletion (Pulsar's PersistentTopic.checkGC) --------------------------
 *
 * Every topic_config.inactive_check_ms each loaded topic whose policy in force has
 * delete_while_inactive is looked at: it is active while it has a producer or a consumer, or
 * (delete_when_no_subscriptions) any subscription, or (delete_when_subscriptions_caught_up)
 * a subscription with a backlog; then it is deleted with its data (as an admin delete without
 * force) once it has been inactive for max_inactive_ms and its retention time (its managed
 * ledger's, ml_retention_time_minutes) does not cover its last activity: a negative
 * retention time keeps it forever (Pulsar's shouldTopicBeRetained; the retention size does
 * not count). A non-persistent topic (NonPersistentTopic.checkGC) is active while it has a
 * producer or a subscription, whatever the mode (a subscription goes with its last
 * consumer), and has no retention. A policy is the topic's own
 * (TopicPolicies.inactiveTopicPolicies), else its namespace's (Policies.inactive_topic_policies),
 * else the registry's. */
struct topic_inactive_policy {
    bool delete_while_inactive; /* deleteWhileInactive */
    bool caught_up;             /* inactiveTopicDeleteMode: delete_when_subscriptions_caught_up
                                   (else delete_when_no_subscriptions) */
    int64_t max_inactive_ms;    /* maxInactiveDurationSeconds, in ms */
};
/* The namespace's policy (NULL: not set) and the topic's own (NULL: not set). */
void topic_set_inactive_policy(struct topic *t, const struct topic_inactive_policy *p);
void topic_set_topic_inactive_policy(struct topic *t, const struct topic_inactive_policy *p);
/* The policy in force on t, and the registry's (the broker's keys). */
struct topic_inactive_policy topic_inactive_policy(const struct topic *t);
struct topic_inactive_policy topic_registry_inactive_policy(const struct topic_registry *r);
/* Called with the full name of each topic the check deleted, after its delete began (e.g.
 * to drop a partitioned topic's metadata). One hook per registry; fn NULL removes it. */
typedef void (*topic_deleted_fn)(void *arg, const char *full_name);
void topic_registry_set_inactive_hook(struct topic_registry *r, topic_deleted_fn fn, void *arg);

/* ---- delayed delivery (topic_delay.c) ------------------------------------------------------ */

/* A namespace's delayed_delivery_policies ({"active", "tickTime"}): enabled 1 or 0 with its
 * tick in ms (> 0); enabled -1: not set (the registry's delayed_enabled and delayed_tick_ms).
 * Applies to what is read from now on; positions already held wait for their time. */
void topic_set_delayed_delivery(struct topic *t, int enabled, int64_t tick_ms);
/* The topic's own (TopicPolicies delayedDeliveryEnabled, delayedDeliveryTickTimeMillis):
 * enabled 1, 0 or -1 (not set) and tick_ms (<= 0: not set); each set value wins over the
 * namespace's, which wins over the registry's. */
void topic_set_topic_delayed_delivery(struct topic *t, int enabled, int64_t tick_ms);
bool topic_delayed_enabled(const struct topic *t);
int64_t topic_delayed_tick_ms(const struct topic *t);

/* ---- message deduplication (topic_dedup.c) ------------------------------------------------ */

/* The cursor holding the deduplication snapshot (never a subscription: SUBSCRIBE refuses it). */
#define TOPIC_DEDUP_CURSOR "pulsar.dedup"
/* A namespace's deduplicationEnabled: 1 on, 0 off, -1 not set (the registry's
 * dedup_enabled). Enabling opens the snapshot cursor and rebuilds the state from it
 * (asynchronously; until then publishes are not checked, as in Pulsar); disabling deletes
 * the cursor and forgets the state. Persistent topics only. */
void topic_set_deduplication(struct topic *t, int enabled);
/* The topic's own deduplicationEnabled (TopicPolicies; 1, 0, -1 not set): when set it wins
 * over the namespace's and the broker's (topic > namespace > broker), applied at once. */
void topic_set_topic_deduplication(struct topic *t, int enabled);
/* From the registry's loaded hook: the topic's own policy is being read, so its first
 * waiters wait for topic_set_topic_deduplication (which must come) before deduplication
 * starts as the policies say; no producer attaches under the wrong setting. */
void topic_hold_topic_policy(struct topic *t);
/* Pulsar's deduplicationStatus: "Disabled", "Recovering", "Enabled", "Removing", "Failed". */
const char *topic_dedup_status(const struct topic *t);

/* ---- compaction (topic_compact.c) --------------------------------------------------------- */

/* The cursor recording the compacted view (never a subscription: SUBSCRIBE refuses it). */
#define TOPIC_COMPACT_CURSOR "__compaction"
/* Start a compaction run up to the last confirmed entry (asynchronous, in slices on the loop).
 * -MG_EBUSY while one runs, -MG_ENOTALLOWED for a non-persistent topic, -MG_ECLOSED. */
int topic_compact_start(struct topic *t);
/* Pulsar's LongRunningProcessStatus of the last run on this broker: "NOT_RUN", "RUNNING",
 * "SUCCESS" or "ERROR"; *last_error (if wanted) "" or why it failed. */
const char *topic_compact_status(const struct topic *t, const char **last_error);
/* A namespace's compactionThreshold in bytes (0 = off); -1: not set (the registry's
 * compaction_threshold_bytes). Checked every compaction_monitor_ms. */
void topic_set_compaction_threshold(struct topic *t, int64_t bytes);
/* Bytes not yet compacted: the __compaction cursor's backlog (the whole topic before the first
 * run), for the thresholds. */
int64_t topic_compact_backlog_bytes(struct topic *t);

#endif
