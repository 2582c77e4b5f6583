/*
 * ns.h - namespaces: the cluster's tenants, namespaces, their policies and partitioned-topic
 * metadata, the bundles a namespace is cut into, which broker owns each bundle, and the
 * lookup that decides where a topic is served (docs/ownership.md).
 *
 * One struct ns per broker loop. The connections (conn) and the admin server (admin) both
 * use it; the service (svc) creates it, hands it the topic registry once that exists and
 * stops it at shutdown. Why the module is called ns: docs/design.md §2.
 *
 * Resources live in the metadata store and are cached here (docs/metadata.md §5); a new
 * cluster starts with tenants "public" and "pulsar", namespaces "public/default" and
 * "pulsar/system". Everything here runs on the loop thread.
 */
#ifndef MG_NS_H
#define MG_NS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cfg;
struct meta_store;
struct topic;
struct mg_loop;
struct ml_factory;
struct ns;
struct topic_name;
struct topic_registry;

/* ---- lifetime ------------------------------------------------------------------------------
 *
 * ns_new sets up an empty cache on loop: the module's timers are the loop's (mg_timer) and it
 * reads the loop's clock, so on a simulated loop (mg_loop_new_sim) its intervals, timeouts
 * and waits follow simulated time. loop, cfg and meta (NULL: no store, as with
 * managedLedgerStore=memory in unit tests: this broker then owns every bundle) are borrowed
 * and must outlive it. ns_load reads every tenant, namespace and partitioned topic from the
 * store (creating the cluster's defaults on first start), running the loop until done or a
 * bound: 0 or a negative error (logged). With a shared (ZooKeeper) store it then keeps
 * reloading in the background, adding what other brokers created.
 *
 * ns_start: the topics are served now. topics and mlf are borrowed until ns_stop; the
 * broker's URLs are made of advertisedAddress and the two ports given (the bound ones: the
 * service's listeners; a test without listeners gives ports of its own); with a store the
 * broker registers under /loadbalance/brokers and reports its load periodically.
 *
 * ns_shutdown begins the shutdown release: lookups answer ServiceNotReady, every topic is
 * closed (in slices), cursor writes get a bounded time to land, then the ownership keys and
 * the registration are deleted; ns_released tells when that is over (at once without a
 * store). ns_cancel: the callers of pending requests are going away; the callbacks of
 * resource writes and partitioned-topic deletes in flight will not run. ns_stop: no more
 * lookups, timers or topic access (pending store requests complete later against a detached
 * context). ns_free frees the cache; accepts NULL. */
struct ns *ns_new(struct mg_loop *loop, const struct cfg *cfg, struct meta_store *meta);
int ns_load(struct ns *s);
void ns_start(struct ns *s, struct topic_registry *topics, struct ml_factory *mlf, int broker_port,
              int web_port);
void ns_shutdown(struct ns *s);
bool ns_released(struct ns *s);
void ns_cancel(struct ns *s);
void ns_stop(struct ns *s);
void ns_free(struct ns *s);

/* "pulsar://advertisedAddress:port", "http://advertisedAddress:webPort" and the broker id
 * "advertisedAddress:webPort" that pulsar-admin shows; NULL before ns_start. */
const char *ns_broker_url(const struct ns *s);
const char *ns_web_url(const struct ns *s);
/* The TLS ports (-1 = off), set before ns_start; the TLS URLs ("pulsar+ssl://h:p",
 * "https://h:p") are then advertised in the registration and ownership keys (Pulsar's
 * pulsarServiceUrlTls/webServiceUrlTls, nativeUrlTls/httpUrlTls). NULL when off. */
void ns_set_tls_ports(struct ns *s, int broker_port_tls, int web_port_tls);
const char *ns_broker_url_tls(const struct ns *s);
const char *ns_web_url_tls(const struct ns *s);
const char *ns_broker_id(const struct ns *s);

/* Metadata-store session events (the service forwards them). EXPIRED: every bundle is
 * dropped at once (topics closed) and the broker registers again; DISCONNECTED: no new
 * bundles until RECONNECTED, and if the connection stays lost for the session timeout the
 * session is taken as expired (bundles dropped); CONNECTED: (re)register. */
void ns_session_event(struct ns *s, int meta_session_event);

/* ---- resources -----------------------------------------------------------------------
 *
 * Tenants, namespaces and partitioned-topic metadata live in the metadata store under
 * Pulsar's paths (/admin/policies/<tenant>[/<ns>], /admin/partitioned-topics/...); a cache
 * is loaded at start. Reads answer from the cache. Mutations validate, update the cache at
 * once and write the store; cb (may be NULL) runs once the write is durable, always after
 * the call returned, with 0 or the store's error. When the write failed, the cache entry is
 * already back to what it was before (unless a later mutation of the same entry replaced
 * it), so an answer never claims what the store does not hold and a retry starts from the
 * truth. A synchronous error returns <0 and cb never runs. */

typedef void (*ns_done_cb)(void *data, int status);

bool ns_tenant_exists(struct ns *s, const char *tenant);
/* -MG_EEXIST */
int ns_tenant_create(struct ns *s, const char *tenant, ns_done_cb cb, void *data);
/* -MG_ENOTFOUND, -MG_EBUSY (namespaces left) */
int ns_tenant_delete(struct ns *s, const char *tenant, ns_done_cb cb, void *data);
/* Iterate tenant names in sorted order: *pos = 0 first, NULL at the end. */
const char *ns_tenant_next(struct ns *s, size_t *pos);
/* Role i of a tenant's adminRoles (TenantInfo), NULL past the last one or for no tenant.
 * Valid until the tenant changes. */
const char *ns_tenant_role(struct ns *s, const char *tenant, size_t i);
/* Replace a tenant's adminRoles (stored in its TenantInfo): -MG_ENOTFOUND. */
int ns_tenant_set_roles(struct ns *s, const char *tenant, const char *const *roles, size_t n,
                        ns_done_cb cb, void *data);
/* Read one tenant's TenantInfo, or one namespace's Policies, from the store into the cache
 * (another broker may have created it since the last refresh): cb with 0 once read (the
 * cache then has it), -MG_ENOTFOUND when the store does not have it, or the store's error
 * (-MG_ECANCELED when the module is freed first). Synchronously -MG_ENOTSUP when no other
 * broker writes the store (embedded, memory or none: the cache is complete), -MG_EINVAL for
 * a malformed name. */
int ns_tenant_sync(struct ns *s, const char *tenant, ns_done_cb cb, void *data);
int ns_namespace_sync(struct ns *s, const char *tenant_ns, ns_done_cb cb, void *data);

bool ns_namespace_exists(struct ns *s, const char *tenant_ns);
/* -MG_EINVAL (not "t/ns"), -MG_ENOTFOUND (no tenant), -MG_EEXIST */
int ns_namespace_create(struct ns *s, const char *tenant_ns, int bundles, ns_done_cb cb,
                        void *data);
/* -MG_ENOTFOUND, -MG_EBUSY (topics left) */
int ns_namespace_delete(struct ns *s, const char *tenant_ns, ns_done_cb cb, void *data);
const char *ns_namespace_next(struct ns *s, size_t *pos);
/* Bundles of a namespace (0 if it does not exist). */
int ns_namespace_bundles(struct ns *s, const char *tenant_ns);
/* A namespace's policies (Pulsar's Policies fields retention_policies,
 * message_ttl_in_seconds, backlog_quota_map), each either set or not (then the broker's
 * defaults apply). */
enum ns_quota_type { NS_QUOTA_STORAGE = 0, NS_QUOTA_AGE, NS_QUOTA_TYPES };
enum ns_quota_policy { NS_QUOTA_HOLD = 0, NS_QUOTA_EXCEPTION, NS_QUOTA_EVICTION };
struct ns_backlog_quota {
    bool set;
    int64_t limit_size; /* bytes, -1 = none */
    int64_t limit_time; /* seconds, -1 = none */
    enum ns_quota_policy policy;
};
/* Pulsar's AutoTopicCreationOverride {"allowAutoTopicCreation", "topicType",
 * "defaultNumPartitions"} and AutoSubscriptionCreationOverride
 * {"allowAutoSubscriptionCreation"}: set, or not (the broker's keys apply). */
struct ns_auto_topic {
    bool set, allow, partitioned;
    int partitions; /* partitioned: >= 1 */
};
struct ns_auto_sub {
    bool set, allow;
};
/* Pulsar's Policies limits (Integers, null when not set; 0 = no limit): the broker's keys of
 * the same names apply when not set. */
enum ns_limit {
    NS_LIMIT_PRODUCERS_PER_TOPIC = 0, /* max_producers_per_topic */
    NS_LIMIT_CONSUMERS_PER_TOPIC,     /* max_consumers_per_topic */
    NS_LIMIT_CONSUMERS_PER_SUB,       /* max_consumers_per_subscription */
    NS_LIMIT_SUBSCRIPTIONS_PER_TOPIC, /* max_subscriptions_per_topic */
    NS_LIMIT_UNACKED_PER_CONSUMER,    /* max_unacked_messages_per_consumer */
    NS_LIMIT_UNACKED_PER_SUB,         /* max_unacked_messages_per_subscription */
    NS_LIMIT_TOPICS,                  /* max_topics_per_namespace (ns_topics_room) */
    NS_LIMITS
};
/* A limit's admin path segment ("maxProducersPerTopic"; its Policies field is
 * "max_producers_per_topic"); ns_limit_by_path: the enum value or -1. */
const char *ns_limit_path(enum ns_limit l);
int ns_limit_by_path(const char *segment);
/* Pulsar's DispatchRate ({"dispatchThrottlingRateInMsg", "dispatchThrottlingRateInByte",
 * "relativeToPublishRate", "ratePeriodInSecond"}) as the namespace's dispatchRate
 * (Policies.topicDispatchRate) and subscriptionDispatchRate (Policies.subscriptionDispatchRate),
 * and PublishRate ({"publishThrottlingRateInMsg", "publishThrottlingRateInByte"}) as its
 * publishRate (Policies.publishMaxMessageRate): each a map keyed by cluster name of which
 * this cluster's entry is the one used. A rate <= 0 is no limit (Pulsar's -1). */
enum ns_rate { NS_RATE_TOPIC = 0, NS_RATE_SUB, NS_RATE_PUBLISH, NS_RATES };
struct ns_dispatch_rate {
    bool set;
    int64_t msgs, bytes;
    int32_t period_secs; /* >= 1 (publish: 1) */
    bool relative;       /* relativeToPublishRate: kept, not applied */
};
/* The rate of an admin path segment ("dispatchRate": NS_RATE_TOPIC, kept in Policies as
 * "topicDispatchRate"), -1: none; the JSON of kind r and back. parse: 0 and *out (set), or
 * -MG_EINVAL with why (not an object, a rate that is not an integer, a message rate above
 * 2^31-1, a period not in 1..86400). */
int ns_rate_by_path(const char *segment);
json_t *ns_dispatch_rate_json(enum ns_rate r, const struct ns_dispatch_rate *d);
int ns_dispatch_rate_parse(enum ns_rate r, const json_t *j, struct ns_dispatch_rate *out,
                           const char **why);
/* Pulsar's InactiveTopicPolicies and DelayedDeliveryPolicies (ns_pol.c): set, or not (the
 * broker's keys apply). */
struct ns_inactive {
    bool set, delete_while_inactive;
    bool caught_up;   /* inactiveTopicDeleteMode delete_when_subscriptions_caught_up (else
                         delete_when_no_subscriptions) */
    int64_t max_secs; /* maxInactiveDurationSeconds */
};
struct ns_delayed {
    bool set, active;
    int64_t tick_ms; /* tickTime, >= 1 */
};
struct ns_policies {
    struct ns_dispatch_rate rate[NS_RATES]; /* by enum ns_rate */
    bool has_limit[NS_LIMITS];              /* by enum ns_limit */
    int64_t limit[NS_LIMITS];
    bool has_retention;
    int64_t retention_time_minutes, retention_size_mb;
    bool has_ttl;
    int64_t ttl_secs;
    bool has_dedup; /* deduplicationEnabled (a Boolean, null when not set) */
    bool dedup_enabled;
    bool has_compaction_threshold; /* compaction_threshold (bytes; a Long, null when not set) */
    int64_t compaction_threshold;
    struct ns_backlog_quota quota[NS_QUOTA_TYPES]; /* by enum ns_quota_type */
    /* schema_compatibility_strategy (Pulsar's name, e.g. "FULL"; empty = not set) and
     * is_allow_auto_update_schema (has_: set) */
    char schema_strategy[24];
    bool has_auto_update_schema, auto_update_schema;
    struct ns_auto_topic auto_topic; /* autoTopicCreationOverride (ns_auto.c) */
    struct ns_auto_sub auto_sub;     /* autoSubscriptionCreationOverride */
    struct ns_inactive inactive;     /* inactive_topic_policies (ns_pol.c) */
    struct ns_delayed delayed;       /* delayed_delivery_policies */
};
/* The two policy objects as JSON and back (ns_pol.c). parse: 0 and *out (set), or -MG_EINVAL
 * (not an object, a member of the wrong type, an unknown mode, a tickTime below 1) with the
 * reason in *why; a member left out takes Pulsar's default. eq: the same value. */
json_t *ns_inactive_json(const struct ns_inactive *p);
int ns_inactive_parse(const json_t *j, struct ns_inactive *out, const char **why);
bool ns_inactive_eq(const struct ns_inactive *a, const struct ns_inactive *b);
json_t *ns_delayed_json(const struct ns_delayed *p);
int ns_delayed_parse(const json_t *j, struct ns_delayed *out, const char **why);
bool ns_delayed_eq(const struct ns_delayed *a, const struct ns_delayed *b);
/* Set on the Policies object j those of the two p has (inactive_topic_policies,
 * delayed_delivery_policies); parse them from a stored Policies j into p (a malformed one is
 * logged and left unset). */
void ns_pol_objects_to_json(const struct ns_policies *p, json_t *j);
void ns_pol_objects_parse(const json_t *j, const char *tenant_ns, struct ns_policies *p);
/* Set on the Policies object j the limits p has. */
void ns_limits_to_json(const struct ns_policies *p, json_t *j);
/* Set on the Policies object j the dispatch rates p has, as maps keyed by cluster ({} when
 * not set). */
void ns_rates_to_json(const struct ns_policies *p, const char *cluster, json_t *j);
/* get: 0 and the policies (none set: zeroed), -MG_ENOTFOUND without the namespace. set:
 * replace them all (cb once durable, as the other mutations); -MG_ENOTFOUND synchronously. */
int ns_namespace_policies_get(struct ns *s, const char *tenant_ns, struct ns_policies *out);
int ns_namespace_policies_set(struct ns *s, const char *tenant_ns, const struct ns_policies *p,
                              ns_done_cb cb, void *data);
/* A namespace's grants (Policies.auth_policies, as Pulsar's AuthPolicies: namespace_auth,
 * destination_auth, subscription_auth_roles): borrowed, valid until its policies change;
 * NULL when none (or no namespace). set: replace them (auth is taken; NULL = none), like
 * the other mutations (cb once durable); -MG_ENOTFOUND synchronously. */
const json_t *ns_namespace_auth(struct ns *s, const char *tenant_ns);
int ns_namespace_auth_set(struct ns *s, const char *tenant_ns, json_t *auth, ns_done_cb cb,
                          void *data);
/* Called (on the loop) when a namespace's cached policies change: set here, put back after a
 * failed write, or read from the store with another broker's change; grants included. */
typedef void (*ns_policies_fn)(void *arg, const char *tenant_ns);
void ns_set_policies_hook(struct ns *s, ns_policies_fn fn, void *arg);
/* Pulsar's names: "destination_storage"/"message_age", "producer_request_hold"/
 * "producer_exception"/"consumer_backlog_eviction"; parse: the enum value or -MG_EINVAL. */
const char *ns_quota_type_name(enum ns_quota_type t);
int ns_quota_type_parse(const char *name);
const char *ns_quota_policy_name(enum ns_quota_policy p);
int ns_quota_policy_parse(const char *name);
/* A BacklogQuota JSON object ({"limit","limitSize","limitTime","policy"}) and back. parse:
 * 0 and *out (set), or -MG_EINVAL for a bad one (not an object, a number that is not an
 * integer >= -1, an unknown policy); "limit" is the deprecated alias of "limitSize";
 * missing numbers are -1, a missing policy is producer_request_hold. */
json_t *ns_backlog_quota_json(const struct ns_backlog_quota *q);
int ns_backlog_quota_parse(json_t *j, struct ns_backlog_quota *out);

/* Auto-creation overrides (ns_auto.c) as JSON and back. parse: 0 and *out (set), or
 * -MG_EINVAL (400: not an object, allow not a boolean, unknown topicType, partitioned
 * without defaultNumPartitions >= 1, non-partitioned with it) or -MG_ENOTALLOWED (406: more
 * partitions than max_partitions, when > 0), with Pulsar's reason in *why. */
json_t *ns_auto_topic_json(const struct ns_auto_topic *a);
int ns_auto_topic_parse(const json_t *j, int max_partitions, struct ns_auto_topic *out,
                        const char **why);
json_t *ns_auto_sub_json(const struct ns_auto_sub *a);
int ns_auto_sub_parse(const json_t *j, struct ns_auto_sub *out, const char **why);
/* What is auto-created in namespace tenant_ns: its overrides where set, else
 * allowAutoTopicCreation, allowAutoTopicCreationType, defaultNumPartitions and
 * allowAutoSubscriptionCreation. */
struct ns_auto_create {
    bool topic, partitioned, subscription;
    int partitions;
};
void ns_auto_create_get(struct ns *s, const char *tenant_ns, struct ns_auto_create *out);

/* A namespace's retention policy (Policies.retention_policies): minutes and MB, -1 =
 * unlimited. get: 1 and the values when set, 0 when never set (Pulsar answers 204),
 * -MG_ENOTFOUND without the namespace. set / remove (remove=true): like the other
 * mutations (cb once durable); -MG_ENOTFOUND synchronously. */
int ns_namespace_retention_get(struct ns *s, const char *tenant_ns, int64_t *time_minutes,
                               int64_t *size_mb);
int ns_namespace_retention_set(struct ns *s, const char *tenant_ns, bool remove,
                               int64_t time_minutes, int64_t size_mb, ns_done_cb cb, void *data);

/* Partitioned topics: base full name -> partition count. 0 = not partitioned. */
int ns_partitions_get(struct ns *s, const char *base_full_name);
/* Create (-MG_EEXIST if a partitioned or plain topic of that name exists) or update
 * (grow only: -MG_EINVAL otherwise; -MG_ENOTFOUND if not partitioned) the count.
 * -MG_ENOTALLOWED: n is above maxNumPartitionsPerPartitionedTopic. */
int ns_partitions_set(struct ns *s, const char *base_full_name, int n, bool create, ns_done_cb cb,
                      void *data);
int ns_partitions_delete(struct ns *s, const char *base_full_name, ns_done_cb cb, void *data);
/* Delete a partitioned topic: its partitions (those loaded, and those stored but not loaded;
 * partitions never created are skipped), then its metadata. The work is done in slices
 * that yield to the loop (ns_bulk.c), so other clients are served meanwhile. Without
 * force, a partition with producers or consumers fails it with -MG_EBUSY before anything
 * is deleted. Synchronously: -MG_ENOTFOUND (not partitioned), -MG_EBADNAME. cb runs once
 * with 0 or the error (never after ns_cancel). */
int ns_partitioned_delete(struct ns *s, const char *base_full_name, bool force, ns_done_cb cb,
                          void *data);
/* Read one partitioned topic's metadata from the store into the cache, as ns_namespace_sync
 * (-MG_ENOTFOUND: not partitioned; a cached count is then dropped). */
int ns_partitions_sync(struct ns *s, const char *base_full_name, ns_done_cb cb, void *data);
/* Topic-level policies (ns_topicpol.c; Pulsar's TopicPolicies, stored per partitioned
 * topic's base name at /admin/topic-policies/<t>/<ns>/persistent/<local>, docs/metadata.md):
 * one JSON object with Pulsar's field names (deduplicationEnabled, maxProducerPerTopic,
 * maxConsumerPerTopic, maxConsumersPerSubscription, maxSubscriptionsPerTopic,
 * maxUnackedMessagesOnConsumer, maxUnackedMessagesOnSubscription, dispatchRate,
 * subscriptionDispatchRate, publishRate, inactiveTopicPolicies, delayedDeliveryEnabled,
 * delayedDeliveryTickTimeMillis). A topic loaded here is tracked:
 * its stored policies, and every later change (a store watch), are applied to it and its sibling
 * partitions (topic_set_topic_deduplication, topic_set_topic_limit, ..._dispatch_rate,
 * ..._publish_rate). get answers the stored field (borrowed; NULL when not set; field NULL:
 * the whole object); set writes value (taken; NULL removes the field; field NULL: value an
 * object whose members are set, a null member removed, or value NULL: removes them all) and
 * applies it here at once. Synchronously: -MG_EBADNAME, -MG_ECLOSED. */
typedef void (*ns_topic_pol_cb)(void *data, int status, const json_t *value);
void ns_topic_policies_track(struct ns *s, struct topic *t);
int ns_topic_policy_get(struct ns *s, const char *base_full_name, const char *field,
                        ns_topic_pol_cb cb, void *data);
int ns_topic_policy_set(struct ns *s, const char *base_full_name, const char *field, json_t *value,
                        ns_done_cb cb, void *data);
/* Iterate: *pos = 0 first; NULL at the end; *n gets the count. */
const char *ns_partitions_next(struct ns *s, size_t *pos, int *n);

/* List the topics of a namespace ("t/ns"): every topic stored there (also when not loaded),
 * the partitions of its partitioned topics and the loaded topics, as full names, sorted;
 * with partitioned_only, the partitioned topics' base names. names are valid during cb.
 * -MG_ENOTFOUND (sync) if the namespace does not exist. */
typedef void (*ns_topics_cb)(void *data, int status, char **names, int n);
int ns_list_topics(struct ns *s, const char *tenant_ns, bool partitioned_only, ns_topics_cb cb,
                   void *data);
/* The same for the domains given (NS_DOMAIN_* bits): non-persistent topics are the ones
 * loaded on this broker and the partitions of non-persistent partitioned topics (nothing of
 * theirs is stored). */
enum { NS_DOMAIN_PERSISTENT = 1, NS_DOMAIN_NON_PERSISTENT = 2 };
int ns_list_topics_in(struct ns *s, const char *tenant_ns, int domains, bool partitioned_only,
                      ns_topics_cb cb, void *data);

/* ---- topic lists of pattern consumers (ns_list.c) -----------------------------------------
 *
 * A topics_pattern as Pulsar clients send it ("persistent://t/ns/orders-.*", a Java regex):
 * compiled with PCRE2 once its domain scheme is taken off (TopicList.removeTopicDomainScheme),
 * it must match all of a topic's "t/ns/base" (a partition matches by its partitioned topic's
 * name). compile: 0, or -MG_EINVAL (does not compile, unknown domain) with the reason in err.
 * match: 1, 0, or -MG_ENOTALLOWED when the match, depth or heap limit stopped it (a catastrophic
 * pattern: evaluation is bounded). filter: the names[0..n) that are not system topics
 * (ns_topic_is_system) and match p (NULL: any), in order, into out (room for n; the pointers
 * are borrowed from names): their count, or match's error, or -MG_ENOTALLOWED once filtering
 * the list has taken a bounded time (a quarter second). is_system: Pulsar's
 * SystemTopicNames.isSystemTopic (namespace events and transaction topics), which topic lists
 * of clients leave out. */
struct ns_pattern;
int ns_pattern_compile(const char *topics_pattern, struct ns_pattern **out, char *err,
                       size_t errlen);
int ns_pattern_match(struct ns_pattern *p, const char *full_name);
int ns_pattern_filter(struct ns_pattern *p, char *const *names, int n, char **out);
void ns_pattern_free(struct ns_pattern *p);
bool ns_topic_is_system(const char *full_name);
/* maxTopicsPerNamespace (the namespace's max_topics_per_namespace when set): the limit of
 * tn's namespace, 0 = none. ns_topics_room: whether `adding` more topics fit beside names
 * (its listing, ns_list_topics; system topics do not count, as Pulsar): 0, or
 * -MG_ENOTALLOWED (Pulsar's text: NS_TOPICS_FULL). */
#define NS_TOPICS_FULL "Exceed maximum number of topics in namespace."
int64_t ns_topics_max(struct ns *s, const struct topic_name *tn);
int ns_topics_room(struct ns *s, const struct topic_name *tn, char *const *names, int n,
                   int adding);

/* Pulsar's TopicList.calculateHash of a list (any order): CRC32C of the sorted names joined
 * by ',', as 8 lower-case hex digits of its little-endian bytes. */
#define NS_TOPICS_HASH_LEN 9
void ns_topics_hash(char *const *names, int n, char out[NS_TOPICS_HASH_LEN]);

/* Watch the topics of namespace tenant_ns: fn(arg, full name, created) for every topic that
 * appears in (created) or leaves its listing (ns_list_topics) from now on, on any broker
 * sharing the store (a store watch; plus a periodic re-list for what the store does not
 * show). NULL when the namespace does not exist. unwatch: no call after it; accepts NULL.
 * ns_topics_changed: re-list a watched namespace now (a change made here). */
typedef void (*ns_topics_change_fn)(void *arg, const char *full_name, bool created);
struct ns_topics_watch;
struct ns_topics_watch *ns_topics_watch(struct ns *s, const char *tenant_ns, ns_topics_change_fn fn,
                                        void *arg);
void ns_topics_unwatch(struct ns_topics_watch *w);
void ns_topics_changed(struct ns *s, const char *tenant_ns);

/* Does the store still hold a topic's managed ledger (its data)? cb status 1 (yes), 0 (no:
 * never created, or deleted and gone) or the store's error; after the call returned.
 * Synchronously -MG_EBADNAME or the store's refusal. */
int ns_topic_stored(struct ns *s, const char *full_name, ns_done_cb cb, void *data);

/* Can a topic of this name be served (namespace exists)? Fills a reason when not. */
int ns_check_topic(struct ns *s, const struct topic_name *n, const char **reason);

/* ---- bundles and ownership (ns_own.c; docs/ownership.md) -----------------------------
 *
 * A namespace of n bundles splits the 32-bit hash space at 0, 2^32/n, ..., 0xffffffff; a
 * topic belongs to the range holding mg_crc32(full name) (a partition hashes its own
 * "-partition-N" name). Bundle names are Pulsar's: "0x%08x_0x%08x". A broker serves a topic
 * only while it holds the ephemeral key /namespace/<tenant>/<ns>/<range>. Without a
 * metadata store the broker owns every bundle. */

#define NS_BUNDLE_NAME_LEN 22 /* "0x%08x_0x%08x" and its NUL */

/* Pure bundle arithmetic: index of hash among n equal bundles, and the name of bundle i of
 * n. n >= 1, 0 <= i < n. */
int ns_bundle_index(uint32_t hash, int n);
/* Lower boundary of bundle i of n (the last one ends at 0xffffffff, inclusive). */
uint32_t ns_bundle_lower(int n, int i);
void ns_bundle_name(int n, int i, char out[NS_BUNDLE_NAME_LEN]);
/* Pulsar's BundlesData of n equal bundles: {"boundaries": ["0x00000000", ...,
 * "0xffffffff"], "numBundles": n} (a new reference). */
json_t *ns_bundles_json(int n);
/* The bundle of a topic: fills range (the bundle name) and returns its index, or
 * -MG_ENOTFOUND when the namespace is unknown. */
int ns_topic_bundle(struct ns *s, const struct topic_name *n, char range[NS_BUNDLE_NAME_LEN]);
/* Is the topic's bundle owned (acquired, not being released) by this broker? */
bool ns_topic_owned(struct ns *s, const struct topic_name *n);
/* Is bundle range of tenant_ns ("t/ns") owned by this broker? */
bool ns_bundle_owned(struct ns *s, const char *tenant_ns, const char *range);
/* Iterate owned bundles as "t/ns/range" (sorted is not guaranteed): *pos = 0 first; NULL at
 * the end. Valid until the next change of ownership. */
const char *ns_owned_bundle_next(struct ns *s, size_t *pos);
int ns_owned_bundles(const struct ns *s);

/* LOOKUP. Returns 1 when the topic's bundle is owned here (answer Connect at once; cb never
 * runs), <0 for a synchronous failure (cb never runs), or 0: cb runs later exactly once
 * with status 0 and url NULL (this broker took the bundle: Connect), status 0 and url set
 * (Redirect there, authoritative), or status < 0 and a message (-MG_ENOTREADY: bundle
 * being unloaded, session down, lost a race too often - the client retries; -MG_EMETA:
 * store error; -MG_ECANCELED: the module is going away). url and message are valid during
 * cb. authoritative: the sender was redirected here by the broker that assigned the
 * bundle, so an unowned bundle is taken here, never redirected again. */
typedef void (*ns_lookup_cb)(void *data, int status, const char *url, const char *message);
int ns_lookup(struct ns *s, const struct topic_name *n, bool authoritative, ns_lookup_cb cb,
              void *data);

/* The web service URL ("http://h:p") of the broker whose service URL is broker_url (this
 * broker, or one of the live brokers as last read from their registrations: a lookup that
 * redirects to a broker it chose has just read them), or NULL when unknown. Valid until the
 * next lookup. */
const char *ns_broker_web_url(struct ns *s, const char *broker_url);
/* The same for its TLS service URL ("pulsar+ssl://h:p"); NULL when unknown or off. */
const char *ns_broker_tls_url(struct ns *s, const char *broker_url);
/* The same for its HTTPS web service URL (webServiceUrlTls, "https://h:p"); NULL when
 * unknown or off. */
const char *ns_broker_web_url_tls(struct ns *s, const char *broker_url);

/* Owner of a bundle, for admin: reads the ownership key (never takes the bundle). */
enum ns_owner_kind {
    NS_OWNER_HERE = 0,
    NS_OWNER_OTHER,
    NS_OWNER_NONE,
};
struct ns_owner {
    enum ns_owner_kind kind;
    const char *broker_url;  /* "pulsar://h:p" (HERE/OTHER), else NULL */
    const char *web_url;     /* "http://h:p" (HERE/OTHER), else NULL */
    const char *web_url_tls; /* "https://h:p" (HERE/OTHER, with HTTPS on), else NULL */
    bool disabled;           /* the owner is unloading it */
};
typedef void (*ns_owner_cb)(void *data, int status, const struct ns_owner *o);
/* 0 and cb later (status 0 or -MG_EMETA; o valid during cb), or -MG_EINVAL (bad range),
 * -MG_ENOTFOUND (no namespace) synchronously. */
int ns_bundle_owner(struct ns *s, const char *tenant_ns, const char *range, ns_owner_cb cb,
                    void *data);
/* Unload a bundle owned here: its topics are closed (clients get CLOSE_PRODUCER /
 * CLOSE_CONSUMER and look up again), cursor writes are given a bounded time to land, then
 * the ownership key is deleted so another broker can take it. cb (may be NULL) runs once
 * done with 0 or the store's error. Synchronously: -MG_ENOTFOUND when not owned here (ask
 * ns_bundle_owner and redirect to the owner), -MG_EBUSY when already being unloaded. */
int ns_bundle_unload(struct ns *s, const char *tenant_ns, const char *range, ns_done_cb cb,
                     void *data);
/* Live brokers (children of /loadbalance/brokers: "host:webPort" ids, sorted). ids are
 * valid during cb. Without a store: this broker alone. 0 and cb later, or <0. */
typedef void (*ns_brokers_cb)(void *data, int status, char **ids, int n);
int ns_list_brokers(struct ns *s, ns_brokers_cb cb, void *data);

#endif
