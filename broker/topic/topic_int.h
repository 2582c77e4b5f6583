/*
 * topic_int.h - struct bodies of the topic module, shared by the topic .c files and its
 * unit tests only.
 *
 * Object graph (all on one loop thread):
 *   topic_registry --owns--> topic --owns--> topic_producer, topic_sub --owns--> consumer
 * Objects that callbacks can reach while they are being torn down (topics, subscriptions,
 * consumers, producers with pending publishes) carry a small reference count: the
 * logical close happens at once, the memory goes when the last reference is dropped.
 */
#ifndef MG_TOPIC_INT_H
#define MG_TOPIC_INT_H

#include "topic/topic.h"
#include "util/loop.h"
#include "util/map.h"
#include "util/ratelimit.h"

#include <event2/event.h>
#include <sys/queue.h>

/* A periodic pass over the registry's loaded topics, TOPIC_SWEEP_SLICE topics per timer
 * firing, going on 1 ms later where it stopped (the position in the topic map; a map that
 * grew meanwhile restarts the walk, and the round stamps skip the topics done already), so
 * many topics never make one loop turn long. */
#define TOPIC_SWEEP_SLICE 64
enum topic_sweep_kind {
    TOPIC_SWEEP_EXPIRY = 0,
    TOPIC_SWEEP_QUOTA,
    TOPIC_SWEEP_COMPACT,
    TOPIC_SWEEP_INACTIVE,
    TOPIC_SWEEPS
};
struct topic_sweep {
    struct mg_timer tmr;
    struct topic_registry *r; /* borrowed: the owner */
    enum topic_sweep_kind kind;
    int64_t interval_ms;         /* between passes */
    void (*fn)(struct topic *t); /* what the pass does to each topic */
    size_t pos, cap;             /* where the pass goes on; the map's capacity then */
    uint64_t round;              /* the pass; topic.sweep_round[kind] == round: done */
    bool running;                /* a pass is under way */
};

struct topic_registry {
    struct mg_loop *loop;                    /* borrowed: the ML factory's; clock and timers */
    struct event_base *base;                 /* borrowed: the loop's */
    struct ml_factory *mlf;                  /* borrowed */
    struct ml_factory *np_mlf;               /* owned: in-memory MLs of non-persistent topics
                                                (their subscriptions' cursors; nothing is
                                                appended or stored) */
    struct topic_config cfg;                 /* cfg.cluster_name points at cluster_name */
    char *cluster_name;                      /* owned */
    struct mg_map topics;                    /* full name -> struct topic (owned) */
    uint64_t producer_counter;               /* generated producer names */
    uint64_t producer_ids;                   /* topic_producer.id */
    struct topic_sweep sweeps[TOPIC_SWEEPS]; /* message TTL (every
                                                cfg.expiry_check_interval_ms), backlog quotas
                                                (every cfg.quota_check_interval_ms) */
    struct mg_timer dedup_tmr; /* cfg.dedup_inactivity_ms / 3: inactive producers forgotten */
    topic_loaded_fn loaded_fn; /* topic_registry_set_loaded_hook */
    void *loaded_arg;
    topic_deleted_fn inactive_fn; /* topic_registry_set_inactive_hook */
    void *inactive_arg;
    /* broker-wide publish latency (ms): a ring of recent samples, totals since start */
    double *lat_ring; /* owned, TOPIC_LAT_RING entries */
    int lat_n, lat_head;
    int64_t lat_count;
    double lat_sum_ms;
};

#define TOPIC_LAT_RING 2048

enum topic_state {
    TOPIC_LOADING = 0,
    TOPIC_READY,
    TOPIC_CLOSED, /* unloaded or deleted, memory waits for refs to drop */
};

enum topic_dedup_status {
    TOPIC_DEDUP_DISABLED = 0,
    TOPIC_DEDUP_RECOVERING, /* the state is being rebuilt from the snapshot cursor */
    TOPIC_DEDUP_ENABLED,
    TOPIC_DEDUP_REMOVING, /* not used: deleting a cursor is synchronous here */
    TOPIC_DEDUP_FAILED,   /* the rebuild failed (the topic is unloaded) */
};

/* What deduplication keeps of one producer name (Pulsar's highestSequencedPushed and
 * highestSequencedPersisted entries, and its inactiveProducers entry). */
struct dedup_prod {
    int64_t pushed;    /* highest sequence id accepted; valid when has_pushed */
    int64_t persisted; /* highest sequence id stored; valid when has_persisted */
    bool has_pushed, has_persisted;
    int active;                   /* connected producers of this name (0 or 1) */
    uint64_t inactive_since_ms;   /* monotonic: when the last one left (or it was replayed) */
    TAILQ_ENTRY(dedup_prod) link; /* in topic_dedup.inactive while active == 0 */
    char name[];                  /* the map's key */
};
TAILQ_HEAD(dedup_prod_list, dedup_prod);

/* A topic's deduplication state (topic_dedup.c). */
struct topic_dedup {
    enum topic_dedup_status status;
    int policy;                      /* namespace deduplicationEnabled: 1, 0, -1 = not set */
    int topic_policy;                /* the topic's own (TopicPolicies): wins over policy */
    bool topic_policy_pending;       /* being read: the load waits for it */
    struct mg_map prods;             /* name -> struct dedup_prod (owned) */
    struct dedup_prod_list inactive; /* oldest first (mono clock order) */
    struct ml_cursor *cursor;        /* TOPIC_DEDUP_CURSOR, owned while open */
    int64_t since_snapshot;          /* entries stored since the last snapshot */
    struct ml_read_req rreq;         /* the rebuild's read */
    bool reading;                    /* rreq outstanding (holds a topic reference) */
    bool hold_waiters;               /* the topic's first waiters wait for the rebuild */
    bool started;                    /* topic_dedup_load ran (policies apply from then on) */
};

enum topic_compact_status {
    TOPIC_COMPACT_NOT_RUN = 0,
    TOPIC_COMPACT_RUNNING,
    TOPIC_COMPACT_SUCCESS,
    TOPIC_COMPACT_ERROR,
};

struct compact_job;

/* A topic's compacted view and compaction runs (topic_compact.c). */
struct topic_compact {
    enum topic_compact_status status; /* of the last run on this broker */
    char *last_error;                 /* owned; NULL = none */
    struct ml_cursor *cursor;         /* TOPIC_COMPACT_CURSOR, owned while open */
    int64_t ledger;                   /* the compacted ledger; -1 = no view */
    int64_t entries;                  /* its entries */
    int64_t prev_ledger;              /* the view it replaced (deleted by the next run); -1 */
    struct ml_position horizon;       /* the last position the view covers */
    struct compact_job *job;          /* the run in progress (owned by its callbacks) */
    int64_t threshold;                /* namespace compactionThreshold; -1 = not set */
};

struct topic_waiter {
    topic_get_cb cb;
    void *data;
    struct topic_waiter *next; /* owned */
};

/* A dispatch rate's tokens (topic_rate.c); not primed = full (never used, or rate changed). */
struct topic_bucket {
    double msgs, bytes;
    int64_t last_ms;
    bool primed;
};

/* One layer of delayed delivery: enabled 1 or 0, -1 = not set (the next layer's); its tick
 * in ms, 0 = not set (the next layer's). */
struct topic_delay_layer {
    int enabled;
    int64_t tick_ms;
};

struct topic {
    int refs; /* the registry's (1) plus callbacks in progress */
    enum topic_state state;
    struct topic_registry *reg;                  /* borrowed; NULL once the registry is gone */
    struct mg_loop *loop;                        /* borrowed: the registry's */
    struct topic_name name;                      /* owned strings */
    char *ml_name;                               /* owned */
    struct ml_ledger *ml;                        /* one ML reference, owned */
    bool create;                                 /* the load may create the ML */
    struct topic_waiter *waiters, *waiters_tail; /* owned, FIFO */
    struct event *ev_notify;                     /* owned; runs waiters of a loaded topic */
    struct mg_map producers;                     /* name -> topic_producer (owned) */
    struct topic_producer *exclusive;            /* borrowed: the producer holding the topic */
    struct topic_dedup dedup;                    /* message deduplication */
    struct topic_compact compact;                /* compaction */
    struct mg_map subs;                          /* name -> topic_sub (owned) */
    int64_t msg_in, bytes_in;
    int64_t msg_out_closed, bytes_out_closed; /* counters of subscriptions gone */
    int64_t ttl_secs;                         /* message TTL; -1 = the registry's default */
    int64_t limit[TOPIC_LIMITS];       /* enum topic_limit overrides; -1 = the registry's default */
    int64_t topic_limit[TOPIC_LIMITS]; /* the topic's own (TopicPolicies) overrides, before
                                        * limit[]; -1 = not set */
    int limit_refused;                 /* the enum topic_limit that refused the last add, or -1 */
    bool rate_set[TOPIC_RATE_SCOPES];  /* rate[sc] overrides the registry's */
    struct topic_dispatch_rate rate[TOPIC_RATE_SCOPES];
    struct topic_bucket bucket; /* TOPIC_RATE_TOPIC */
    bool publish_rate_set;      /* publish_rate overrides the registry's */
    struct topic_dispatch_rate publish_rate;
    /* the topic's own (TopicPolicies) rates, before rate[] and publish_rate: [TOPIC_RATE_SCOPES]
     * is the publish rate */
    bool topic_rate_set[TOPIC_RATE_SCOPES + 1];
    struct topic_dispatch_rate topic_rate[TOPIC_RATE_SCOPES + 1];
    struct topic_bucket publish_bucket;
    /* Pulsar's publishRateLimitedTimes: the throttles of the publish rate since the last stats
     * roll (reset there, as Pulsar's updateRates); a throttle lasts until
     * publish_limited_until (monotonic ms), the publishes it pauses count once */
    int64_t publish_limited;
    uint64_t publish_limited_until;
    int64_t msg_expired; /* entries acknowledged by expiry */
    bool expiring;       /* the expiry timer's search is running (the next tick skips the topic) */
    bool quota_set[TOPIC_QUOTA_TYPES]; /* quota[type] overrides the registry's default */
    struct topic_backlog_quota quota[TOPIC_QUOTA_TYPES];
    /* message_age: the oldest unacknowledged position at the last check and its publish
     * time (wall ms; 0 = not known), read by age_reading */
    struct ml_position age_pos;
    uint64_t age_publish_ms;
    bool age_reading;
    int64_t quota_evictions[TOPIC_QUOTA_TYPES];
    uint64_t sweep_round[TOPIC_SWEEPS]; /* the last pass of each sweep that did this topic */
    uint64_t active_ms; /* monotonic: the last producer or consumer change, publish, or sweep
                         * that found it active (inactive topic deletion) */
    /* inactive topic policies: the namespace's and the topic's own (TopicPolicies) */
    bool system; /* topic_name_is_system: never deleted for inactivity */
    bool inactive_set, topic_inactive_set;
    struct topic_inactive_policy inactive, topic_inactive;
    /* delayed delivery: the namespace's (delayed_delivery_policies) and the topic's own
     * (TopicPolicies delayedDeliveryEnabled / delayedDeliveryTickTimeMillis) */
    struct topic_delay_layer delayed, topic_delayed;
    bool fence_pending;          /* an unload after fencing is scheduled */
    struct mg_timer fence_timer; /* runs that unload (holds a reference) */
    /* statistics (topic_registry_stats_update) */
    int64_t entries_in, entries_out;      /* entries written / dispatched */
    uint64_t created_ms, last_publish_ms; /* wall clock */
    bool chunk_published;                 /* a chunk was stored (msgChunkPublished) */
    uint64_t stats_ms;                    /* monotonic ms of the last roll (or load) */
    int64_t prev_msg_in, prev_bytes_in, prev_entries_in, prev_entries_out;
    double rate_msg_in, rate_bytes_in, rate_entries_in, rate_entries_out;
    int64_t lat_cur[TOPIC_LAT_BUCKETS], lat_last[TOPIC_LAT_BUCKETS];
    int64_t lat_sum_cur, lat_sum_last; /* µs */
    int64_t size_cur[TOPIC_SIZE_BUCKETS], size_last[TOPIC_SIZE_BUCKETS];
    int64_t size_sum_cur, size_sum_last;
};

struct topic_producer {
    struct topic *topic; /* borrowed; NULL after the topic closed */
    char *name;          /* owned */
    enum topic_access_mode mode;
    void *owner;                            /* borrowed */
    const struct topic_producer_ops *ops;   /* borrowed */
    int pending;                            /* publishes not yet completed */
    bool closed;                            /* freed when pending reaches 0 */
    struct topic_publish *fifo, *fifo_tail; /* owned: publishes not yet answered, in order */
    struct mg_timer answer_tmr;             /* answers a duplicate at the FIFO's head */
    struct mg_loop *loop;                   /* borrowed: the topic's */
    int64_t msg_in, bytes_in;
    uint64_t id;           /* registry-wide creation order */
    uint64_t connected_ms; /* wall clock */
    int64_t prev_msg_in, prev_bytes_in;
    double rate_msg_in, rate_bytes_in;
    int64_t chunks_in, prev_chunks_in; /* chunks stored (chunkedMessageRate) */
    double rate_chunks_in;
};

/* One in-flight publish (in its producer's FIFO, freed after its callback). */
struct topic_publish {
    struct ml_append_req req;
    struct topic_producer *p; /* keeps the producer alive through p->pending */
    struct topic_publish *next;
    bool done; /* answered by the ML (or a duplicate): status and pos are set */
    int status;
    struct ml_position pos;
    int64_t seq;       /* max(sequence_id, highest_sequence_id), as Pulsar compares it */
    bool dedup;        /* deduplication checks and records it (not a chunk before the last) */
    uint64_t start_us; /* monotonic: publish latency */
    topic_publish_cb cb;
    void *cb_data;
};

/* A sent, unacknowledged entry of one consumer (value in topic_consumer.pending). */
struct sub_pending {
    int32_t msgs;       /* messages it still counts for (unacked batch indexes) */
    uint32_t key_hash;  /* for Key_Shared replays */
    uint32_t chunk_key; /* a chunk: its run (ml_entry.chunk_key), else 0 */
};

/* A position waiting for redelivery (sorted array in topic_sub.replay). */
struct sub_replay {
    struct ml_position pos;
    uint32_t key_hash;
};

/* A point of the Key_Shared AUTO_SPLIT hash ring. */
struct sub_ring_point {
    uint32_t point;           /* in [0, 65535] */
    uint64_t consumer_id;     /* tie-break for equal points */
    struct topic_consumer *c; /* borrowed */
};

enum sub_notify {
    SUB_NOTIFY_NONE = 0,
    SUB_NOTIFY_ACTIVE,
    SUB_NOTIFY_INACTIVE,
};

struct topic_consumer {
    int refs;                             /* the subscription's (1) plus sends in progress */
    bool dead;                            /* closed: no more callbacks */
    struct topic_sub *sub;                /* borrowed */
    void *owner;                          /* borrowed */
    const struct topic_consumer_ops *ops; /* borrowed */
    char *name;                           /* owned, never NULL ("" when not given) */
    uint64_t id;                          /* connect order within the subscription */
    int32_t priority;
    int64_t permits;        /* may go negative */
    int64_t unacked;        /* messages in pending */
    bool unacked_blocked;   /* at maxUnackedMessagesPerConsumer, until back to half of it */
    bool paused;            /* over the outbound watermark */
    enum sub_notify notify; /* active_change to send from the dispatch event */
    struct mg_map pending;  /* position -> struct sub_pending (owned) */
    int32_t (*ranges)[2];   /* owned, Key_Shared STICKY */
    int n_ranges;
    bool reached_end; /* reached_end was sent (the topic is terminated, nothing left) */
    bool holding;     /* Key_Shared: entries >= join_pos held */
    struct ml_position join_pos;
    int64_t msg_out, bytes_out;
    uint64_t connected_ms; /* wall clock */
    int64_t prev_msg_out, prev_bytes_out;
    double rate_msg_out, rate_bytes_out;
    int64_t chunks_out, prev_chunks_out; /* chunks sent (chunkedMessageRate) */
    double rate_chunks_out;
};

struct sub_read;
struct sub_seek;

/* Delayed delivery (topic_delay.c): a held-back entry of a Shared / Key_Shared subscription. */
struct sub_delay_item {
    int64_t at; /* wall ms, rounded down to the tick's precision */
    struct ml_position pos;
    uint32_t key_hash;
};
/* Default bound of a subscription's index (topic_config.delayed_max_tracked): 32 bytes each. */
#define TOPIC_DELAY_MAX_TRACKED 500000
struct topic_delay {
    struct sub_delay_item *heap; /* owned: binary min-heap on (at, pos) */
    int n, cap;
    struct mg_timer timer; /* the one timer: the earliest time in the heap */
    int64_t timer_at;      /* wall ms the timer is armed for (valid while pending) */
    int64_t last_run_ms;   /* wall ms of its last firing */
    int64_t fires;         /* firings (tests: no timer storm) */
};

struct topic_sub {
    int refs; /* the topic's (1) plus dispatch passes */
    bool dead;
    struct mg_ratelimit rl_read; /* failed reads: one WARN line per interval */
    struct topic *topic;         /* borrowed */
    char *name;                  /* owned */
    bool durable;
    enum topic_sub_type type;
    struct ml_cursor *cursor;          /* owned */
    int partition_index;               /* Failover choice; -1 = not partitioned */
    struct topic_consumer **consumers; /* owned array of owned consumers, connect order */
    int n_consumers, cap_consumers;
    uint64_t next_consumer_id;
    struct topic_consumer *active; /* borrowed: Exclusive/Failover */
    struct topic_consumer *rr_cur; /* borrowed: Shared round robin */
    int rr_count;
    bool ks_sticky;
    struct sub_ring_point *ring; /* owned, sorted */
    int n_ring;
    struct sub_replay *replay; /* owned, sorted by position, unique */
    int n_replay, cap_replay;
    struct mg_map stuck;        /* Key_Shared: key hash -> count in replay */
    struct mg_map chunk_runs;   /* Shared: chunk key -> consumer (borrowed) that has the
                                   run's first chunks in flight (topic_sub_chunk_pick) */
    struct mg_map redeliveries; /* position -> redelivery count (uintptr_t) */
    struct topic_delay delay;   /* delayed delivery's index */
    struct ml_entry **ready;    /* owned refs: read, not yet dispatched */
    int ready_n, ready_head;
    bool ready_is_replay;
    struct sub_read *read;          /* in-flight read, owned by its callback */
    uint64_t epoch;                 /* bumped by rewinds: stale reads are dropped */
    struct event *ev_dispatch;      /* owned */
    struct mg_timer failover_timer; /* activeConsumerFailoverDelayTimeMillis */
    struct mg_timer retry_timer;    /* read errors back off; dispatch rate waits */
    bool failover_wait;
    struct sub_seek *seek; /* borrowed: a seek in progress */
    int64_t unacked;
    bool unacked_blocked;       /* at maxUnackedMessagesPerSubscription, until below half of it */
    struct topic_bucket bucket; /* TOPIC_RATE_SUB */
    /* dispatch passes stopped by a rate, by scope (enum topic_rate_scope) and kind (0:
     * messages, 1: bytes): Pulsar's dispatchThrottled{Msg,Bytes}EventsBy{Topic,Subscription}Limit
     */
    int64_t throttled[TOPIC_RATE_SCOPES][2];
    int64_t msg_out, bytes_out;
    bool has_type;             /* a consumer attached once (else type "None") */
    bool read_compacted;       /* reads at or before the horizon come from the compacted view */
    bool compact_from_start;   /* the next read starts at the view's start (a consumer attached
                                  to a subscription with nothing acknowledged) */
    int64_t acks, redelivered; /* counters for the rates */
    int64_t msg_drop;          /* non-persistent: messages no consumer could take (dropped) */
    int64_t prev_msg_drop;
    double rate_msg_drop;
    uint64_t last_consumed_ms, last_acked_ms; /* wall clock, 0 = never */
    int64_t prev_msg_out, prev_bytes_out, prev_acks, prev_redelivered;
    double rate_msg_out, rate_bytes_out, rate_acks, rate_redelivered;
};

/* Internal calls between topic.c and topic_sub.c. */
struct topic_sub *topic_sub_new(struct topic *t, const char *name, bool durable,
                                struct ml_position start, int *err);
/* Close a subscription: consumers get closed callbacks when notify; the cursor is
 * deleted when delete_cursor, else closed. */
void topic_sub_destroy(struct topic_sub *s, bool notify, bool delete_cursor);
void topic_sub_get_stats(struct topic_sub *s, struct topic_sub_stats *out);
void topic_sub_reset_to(struct topic_sub *s, struct ml_position pos, bool close_consumers);
void topic_sub_schedule(struct topic_sub *s);
/* Dispatch rates (topic_rate.c): how many messages (*bytes: bytes) s may read now, at least
 * 1 (INT64_MAX: no limit); 0 when out of room, s's retry timer then set for when there is
 * room. consume: what a send took. */
int64_t topic_rate_room(struct topic_sub *s, int64_t *bytes);
void topic_rate_consume(struct topic_sub *s, int64_t msgs, int64_t bytes);
/* Something happened on t: inactive topic deletion counts from now. */
void topic_touch(struct topic *t);
/* A publish of msgs messages and bytes bytes took its share of t's publish rate. */
void topic_rate_published(struct topic *t, int64_t msgs, int64_t bytes);
/* 0 when `have` is below limit l of t (or it has none), else -1 with the refusal noted. */
int topic_limit_admit(struct topic *t, enum topic_limit l, int64_t have);
void topic_ref(struct topic *t);
/* Roll one subscription's interval (rates over secs seconds). */
void topic_sub_stats_roll(struct topic_sub *s, double secs);
void topic_unref(struct topic *t);

/* Add a position to the replay set (it is read back and delivered before new entries). */
void topic_sub_replay_add(struct topic_sub *s, struct ml_position pos, uint32_t hash);

/* Delayed delivery (topic_delay.c), for the dispatcher. */
void topic_delay_init(struct topic_sub *s);
void topic_delay_fini(struct topic_sub *s);
/* Hold e back (true: do not deliver it now) when its subscription is Shared or Key_Shared,
 * delayed delivery is on and its deliver_at_time is later than now + one tick. */
bool topic_delay_track(struct topic_sub *s, const struct ml_entry *e);
/* Move every position now due into the replay set; re-arm the timer. */
void topic_delay_release(struct topic_sub *s);
/* The index is at its bound: read no new entries. */
bool topic_delay_full(const struct topic_sub *s);
/* Forget the index (the cursor was reset: the entries will be read again). */
void topic_delay_clear(struct topic_sub *s);
/* Hand every held position to the replay set (the subscription no longer delays). */
void topic_delay_flush(struct topic_sub *s);

/* Non-persistent topics (topic_np.c, topic_sub.c). */
/* A publish on a non-persistent topic: handed at once to every subscription's connected
 * consumers, nothing stored; answered in order with position (0, 0), as Pulsar does. */
int topic_np_publish(struct topic_producer *p, struct evbuffer *data,
                     const struct wire_msg_info *msg, topic_publish_cb cb, void *cb_data);
/* Give e to the consumer the subscription's type picks among those that can take it now, or
 * count its messages as dropped (no waiting, no redelivery). */
void topic_sub_np_deliver(struct topic_sub *s, struct ml_entry *e);
/* topic.c's helpers for topic_np.c: one entry written (statistics), a publish into the
 * producer's answer FIFO, the managed-ledger view of a message's metadata. */
void topic_record_write(struct topic *t, uint64_t lat_us, int64_t bytes);
void topic_publish_queue(struct topic_producer *p, struct topic_publish *pub);
void topic_entry_info_of(const struct wire_msg_info *m, struct ml_entry_info *info);

/* Internal calls between topic.c and topic_dedup.c. */
void topic_dedup_init(struct topic *t);
/* The topic finished loading: rebuild the state when deduplication is on (or delete a
 * snapshot cursor left from when it was); true when the caller must not run the waiters
 * (they wait for the rebuild, or a failed rebuild closed the topic: t may be gone). */
bool topic_dedup_load(struct topic *t);
/* The topic closes: the cursor is closed (deleted with the topic's data when delete). */
void topic_dedup_close(struct topic *t, bool delete);
void topic_dedup_fini(struct topic *t);
/* A producer name connected / left. */
void topic_dedup_producer_added(struct topic *t, const char *name);
void topic_dedup_producer_removed(struct topic *t, const char *name);
/* Before storing a message: 0 (store it), 1 (a duplicate: do not store) or -MG_EDUPUNKNOWN. */
int topic_dedup_check(struct topic *t, const char *name, int64_t seq, int64_t highest);
/* A message stored at pos (a snapshot every dedup_entries_interval of them; name NULL: a
 * chunk before the last, counted only); a failed write: every accepted id falls back to the
 * stored one. */
void topic_dedup_persisted(struct topic *t, const char *name, int64_t highest,
                           struct ml_position pos);
/* Chunks of a chunked message share its sequence id: only the last one is checked and
 * recorded (Pulsar's rule). */
bool topic_dedup_skips_chunk(int32_t chunk_id, int32_t num_chunks);
void topic_dedup_write_failed(struct topic *t);
int64_t topic_dedup_last_pushed(const struct topic *t, const char *name);
/* The registry's timer: forget producers inactive for cfg.dedup_inactivity_ms. */
void topic_dedup_registry_start(struct topic_registry *r);
/* Internal calls between topic.c / topic_sub.c and topic_compact.c. */
void topic_compact_init(struct topic *t);
/* The topic loaded: the view recorded on the __compaction cursor, if any. */
void topic_compact_load(struct topic *t);
/* The topic closes: the cursor is closed (deleted with the view when delete). */
void topic_compact_close(struct topic *t, bool delete);
void topic_compact_fini(struct topic *t);
/* The dispatcher's read for a read_compacted subscription: true when the read goes to the
 * compacted view (cb later gets out filled, with the cursor's read position moved past what it
 * holds; *alive is NULL once the subscription is gone), false when the topic is to be read. */
bool topic_compact_read(struct topic_sub *s, struct topic_sub *const *alive, int max,
                        struct ml_read_req *out, ml_read_cb cb);
/* GET_LAST_MESSAGE_ID of a read_compacted subscription whose topic has nothing after the
 * horizon (Pulsar's ServerCnx): true when the view's last message is being read (cb runs
 * later, with its original position); an empty view sets *last to (-1, -1) and gives false. */
bool topic_compact_last_id(struct topic_sub *s, struct ml_position *last, struct ml_position md,
                           topic_last_id_cb cb, void *data);
/* An entry of the compacted view at a position retention removed from the topic: delivered
 * although the cursor counts it as acknowledged (it is before its mark-delete). */
bool topic_compact_trimmed(const struct topic_sub *s, struct ml_position pos);
/* The compaction sweep's look at one topic: a run when over its threshold. */
void topic_compact_check(struct topic *t);
/* Cursor names that are not subscriptions (deduplication's, compaction's). */
bool topic_cursor_reserved(const char *name);
/* Run the topic's waiters (status 0 while it is loaded). */
void topic_loaded_notify(struct topic *t);

#endif
