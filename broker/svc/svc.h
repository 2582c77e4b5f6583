/*
 * svc.h - the broker service: one loop's context that ties the modules together.
 *
 * struct svc owns the event loop's listeners (Pulsar protocol and admin HTTP), the live
 * connections, the managed-ledger factory, the topic registry and the cluster resources
 * (tenants, namespaces, partitioned-topic metadata). Nothing here is global: a second
 * loop would get its own svc.
 *
 * Resources live in the metadata store and are cached here (docs/metadata.md §5); a new
 * cluster starts with tenants "public" and "pulsar", namespaces "public/default" and
 * "pulsar/system".
 */
#ifndef MG_SVC_H
#define MG_SVC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct mg_loop;
struct cfg;
struct svc;
struct topic_registry;
struct topic_name;
struct bkc_client;

/* Create the service on loop (borrowed; the managed ledgers and the BookKeeper client use its
 * clock and timers) with the given (loaded, validated) configuration, bind the
 * protocol and admin ports and start accepting. meta is the metadata store (may be NULL
 * when managedLedgerStore is "memory"). Returns NULL with a logged reason (e.g. the port is
 * in use). cfg and meta are borrowed and must outlive the svc. */
struct meta_store;
struct svc *svc_new(struct mg_loop *loop, const struct cfg *cfg, struct meta_store *meta);
/* Stop accepting, close every connection and topic, free everything. Accepts NULL. */
void svc_free(struct svc *s);
/* Begin a graceful shutdown: stop accepting; connections get CLOSE_PRODUCER/CONSUMER and
 * are closed; the loop is asked to exit once done (bounded by a timer). */
void svc_shutdown(struct svc *s);

/* Bound ports (useful with port 0 in the config). */
int svc_broker_port(const struct svc *s);
int svc_web_port(const struct svc *s);
/* "pulsar://advertisedAddress:port" and "http://advertisedAddress:port". */
const char *svc_broker_url(const struct svc *s);
const char *svc_web_url(const struct svc *s);
/* "advertisedAddress:webPort" - the broker id pulsar-admin shows. */
const char *svc_broker_id(const struct svc *s);

const struct cfg *svc_cfg(const struct svc *s);
struct event_base *svc_base(const struct svc *s);
struct topic_registry *svc_topics(struct svc *s);
/* The BookKeeper client (NULL unless managedLedgerStore=bookkeeper); borrowed. */
struct bkc_client *svc_bkc(struct svc *s);
uint64_t svc_start_time_ms(const struct svc *s);
int svc_num_connections(const struct svc *s);
int64_t svc_total_connections(const struct svc *s);

/* ---- resources -----------------------------------------------------------------------
 *
 * Tenants, namespaces and partitioned-topic metadata live in the metadata store under
 * Pulsar's paths (/admin/policies/<tenant>[/<ns>], /admin/partitioned-topics/...); the
 * service keeps a cache loaded at start. Reads answer from the cache. Mutations validate,
 * update the cache at once and write the store; cb (may be NULL) runs once the write is
 * durable, always after the call returned, with 0 or the store's error. When the write
 * failed, the cache entry is already back to what it was before (unless a later mutation
 * of the same entry replaced it), so an answer never claims what the store does not hold
 * and a retry starts from the truth. A synchronous error returns <0 and cb never runs. */

typedef void (*svc_done_cb)(void *data, int status);

bool svc_tenant_exists(struct svc *s, const char *tenant);
/* -MG_EEXIST */
int svc_tenant_create(struct svc *s, const char *tenant, svc_done_cb cb, void *data);
/* -MG_ENOTFOUND, -MG_EBUSY (namespaces left) */
int svc_tenant_delete(struct svc *s, const char *tenant, svc_done_cb cb, void *data);
/* Iterate tenant names in sorted order: *pos = 0 first, NULL at the end. */
const char *svc_tenant_next(struct svc *s, size_t *pos);
/* Role i of a tenant's adminRoles (TenantInfo), NULL past the last one or for no tenant.
 * Valid until the tenant changes. */
const char *svc_tenant_role(struct svc *s, const char *tenant, size_t i);
/* Replace a tenant's adminRoles (stored in its TenantInfo): -MG_ENOTFOUND. */
int svc_tenant_set_roles(struct svc *s, const char *tenant, const char *const *roles, size_t n,
                         svc_done_cb cb, void *data);
/* Read one tenant's TenantInfo, or one namespace's Policies, from the store into the cache
 * (another broker may have created it since the last refresh): cb with 0 once read (the
 * cache then has it), -MG_ENOTFOUND when the store does not have it, or the store's error
 * (-MG_ECANCELED when the service is freed first). Synchronously -MG_ENOTSUP when no other
 * broker writes the store (embedded, memory or none: the cache is complete), -MG_EINVAL for
 * a malformed name. */
int svc_tenant_sync(struct svc *s, const char *tenant, svc_done_cb cb, void *data);
int svc_namespace_sync(struct svc *s, const char *tenant_ns, svc_done_cb cb, void *data);

bool svc_namespace_exists(struct svc *s, const char *tenant_ns);
/* -MG_EINVAL (not "t/ns"), -MG_ENOTFOUND (no tenant), -MG_EEXIST */
int svc_namespace_create(struct svc *s, const char *tenant_ns, int bundles, svc_done_cb cb,
                         void *data);
/* -MG_ENOTFOUND, -MG_EBUSY (topics left) */
int svc_namespace_delete(struct svc *s, const char *tenant_ns, svc_done_cb cb, void *data);
const char *svc_namespace_next(struct svc *s, size_t *pos);
/* Bundles of a namespace (0 if it does not exist). */
int svc_namespace_bundles(struct svc *s, const char *tenant_ns);
/* A namespace's retention policy (Policies.retention_policies): minutes and MB, -1 =
 * unlimited. get: 1 and the values when set, 0 when never set (Pulsar answers 204),
 * -MG_ENOTFOUND without the namespace. set / remove (remove=true): like the other
 * mutations (cb once durable); -MG_ENOTFOUND synchronously. */
int svc_namespace_retention_get(struct svc *s, const char *tenant_ns, int64_t *time_minutes,
                                int64_t *size_mb);
int svc_namespace_retention_set(struct svc *s, const char *tenant_ns, bool remove,
                                int64_t time_minutes, int64_t size_mb, svc_done_cb cb, void *data);

/* Partitioned topics: base full name -> partition count. 0 = not partitioned. */
int svc_partitions_get(struct svc *s, const char *base_full_name);
/* Create (-MG_EEXIST if a partitioned or plain topic of that name exists) or update
 * (grow only: -MG_EINVAL otherwise; -MG_ENOTFOUND if not partitioned) the count.
 * -MG_ENOTALLOWED: n is above maxNumPartitionsPerPartitionedTopic. */
int svc_partitions_set(struct svc *s, const char *base_full_name, int n, bool create,
                       svc_done_cb cb, void *data);
int svc_partitions_delete(struct svc *s, const char *base_full_name, svc_done_cb cb, void *data);
/* Delete a partitioned topic: its partitions (those loaded, and those stored but not loaded;
 * partitions never created are skipped), then its metadata. The work is done in slices
 * that yield to the loop (svc_bulk.c), so other clients are served meanwhile. Without
 * force, a partition with producers or consumers fails it with -MG_EBUSY before anything
 * is deleted. Synchronously: -MG_ENOTFOUND (not partitioned), -MG_EBADNAME. cb runs once
 * with 0 or the error (never if the service is freed first). */
int svc_partitioned_delete(struct svc *s, const char *base_full_name, bool force, svc_done_cb cb,
                           void *data);
/* Read one partitioned topic's metadata from the store into the cache, as svc_namespace_sync
 * (-MG_ENOTFOUND: not partitioned; a cached count is then dropped). */
int svc_partitions_sync(struct svc *s, const char *base_full_name, svc_done_cb cb, void *data);
/* Iterate: *pos = 0 first; NULL at the end; *n gets the count. */
const char *svc_partitions_next(struct svc *s, size_t *pos, int *n);

/* List the topics of a namespace ("t/ns"): every topic stored there (also when not loaded),
 * the partitions of its partitioned topics and the loaded topics, as full names, sorted;
 * with partitioned_only, the partitioned topics' base names. names are valid during cb.
 * -MG_ENOTFOUND (sync) if the namespace does not exist. */
typedef void (*svc_topics_cb)(void *data, int status, char **names, int n);
int svc_list_topics(struct svc *s, const char *tenant_ns, bool partitioned_only, svc_topics_cb cb,
                    void *data);

/* Does the store still hold a topic's managed ledger (its data)? cb status 1 (yes), 0 (no:
 * never created, or deleted and gone) or the store's error; after the call returned.
 * Synchronously -MG_EBADNAME or the store's refusal. */
int svc_topic_stored(struct svc *s, const char *full_name, svc_done_cb cb, void *data);

/* Can a topic of this name be served (namespace exists)? Fills a reason when not. */
int svc_check_topic(struct svc *s, const struct topic_name *n, const char **reason);

/* ---- bundles and ownership (svc_own.c; docs/ownership.md) -----------------------------
 *
 * A namespace of n bundles splits the 32-bit hash space at 0, 2^32/n, ..., 0xffffffff; a
 * topic belongs to the range holding mg_crc32(full name) (a partition hashes its own
 * "-partition-N" name). Bundle names are Pulsar's: "0x%08x_0x%08x". A broker serves a topic
 * only while it holds the ephemeral key /namespace/<tenant>/<ns>/<range>. Without a
 * metadata store (unit tests with managedLedgerStore=memory) the broker owns every bundle.
 * Everything below runs on the loop thread. */

#define SVC_BUNDLE_NAME_LEN 22 /* "0x%08x_0x%08x" and its NUL */

/* Pure bundle arithmetic (no svc): index of hash among n equal bundles, and the name of
 * bundle i of n. n >= 1, 0 <= i < n. */
int svc_bundle_index(uint32_t hash, int n);
/* Lower boundary of bundle i of n (the last one ends at 0xffffffff, inclusive). */
uint32_t svc_bundle_lower(int n, int i);
void svc_bundle_name(int n, int i, char out[SVC_BUNDLE_NAME_LEN]);
/* The bundle of a topic: fills range (the bundle name) and returns its index, or
 * -MG_ENOTFOUND when the namespace is unknown. */
int svc_topic_bundle(struct svc *s, const struct topic_name *n, char range[SVC_BUNDLE_NAME_LEN]);
/* Is the topic's bundle owned (acquired, not being released) by this broker? */
bool svc_topic_owned(struct svc *s, const struct topic_name *n);
/* Is bundle range of tenant_ns ("t/ns") owned by this broker? */
bool svc_bundle_owned(struct svc *s, const char *tenant_ns, const char *range);
/* Iterate owned bundles as "t/ns/range" (sorted is not guaranteed): *pos = 0 first; NULL at
 * the end. Valid until the next change of ownership. */
const char *svc_owned_bundle_next(struct svc *s, size_t *pos);
int svc_owned_bundles(const struct svc *s);

/* LOOKUP. Returns 1 when the topic's bundle is owned here (answer Connect at once; cb never
 * runs), <0 for a synchronous failure (cb never runs), or 0: cb runs later exactly once
 * with status 0 and url NULL (this broker took the bundle: Connect), status 0 and url set
 * (Redirect there, authoritative), or status < 0 and a message (-MG_ENOTREADY: bundle
 * being unloaded, session down, lost a race too often - the client retries; -MG_EMETA:
 * store error; -MG_ECANCELED: the service is going away). url and message are valid during
 * cb. authoritative: the sender was redirected here by the broker that assigned the
 * bundle, so an unowned bundle is taken here, never redirected again. */
typedef void (*svc_lookup_cb)(void *data, int status, const char *url, const char *message);
int svc_lookup(struct svc *s, const struct topic_name *n, bool authoritative, svc_lookup_cb cb,
               void *data);

/* The web service URL ("http://h:p") of the broker whose service URL is broker_url (this
 * broker, or one of the live brokers as last read from their registrations: a lookup that
 * redirects to a broker it chose has just read them), or NULL when unknown. Valid until the
 * next lookup. */
const char *svc_broker_web_url(struct svc *s, const char *broker_url);

/* Owner of a bundle, for admin: reads the ownership key (never takes the bundle). */
enum svc_owner_kind {
    SVC_OWNER_HERE = 0,
    SVC_OWNER_OTHER,
    SVC_OWNER_NONE,
};
struct svc_owner {
    enum svc_owner_kind kind;
    const char *broker_url; /* "pulsar://h:p" (HERE/OTHER), else NULL */
    const char *web_url;    /* "http://h:p" (HERE/OTHER), else NULL */
    bool disabled;          /* the owner is unloading it */
};
typedef void (*svc_owner_cb)(void *data, int status, const struct svc_owner *o);
/* 0 and cb later (status 0 or -MG_EMETA; o valid during cb), or -MG_EINVAL (bad range),
 * -MG_ENOTFOUND (no namespace) synchronously. */
int svc_bundle_owner(struct svc *s, const char *tenant_ns, const char *range, svc_owner_cb cb,
                     void *data);
/* Unload a bundle owned here: its topics are closed (clients get CLOSE_PRODUCER /
 * CLOSE_CONSUMER and look up again), cursor writes are given a bounded time to land, then
 * the ownership key is deleted so another broker can take it. cb (may be NULL) runs once
 * done with 0 or the store's error. Synchronously: -MG_ENOTFOUND when not owned here (ask
 * svc_bundle_owner and redirect to the owner), -MG_EBUSY when already being unloaded. */
int svc_bundle_unload(struct svc *s, const char *tenant_ns, const char *range, svc_done_cb cb,
                      void *data);
/* Live brokers (children of /loadbalance/brokers: "host:webPort" ids, sorted). ids are
 * valid during cb. Without a store: this broker alone. 0 and cb later, or <0. */
typedef void (*svc_brokers_cb)(void *data, int status, char **ids, int n);
int svc_list_brokers(struct svc *s, svc_brokers_cb cb, void *data);

/* Metadata-store session events (main.c forwards them). EXPIRED: every bundle is dropped at
 * once (topics closed) and the broker registers again; DISCONNECTED: no new bundles until
 * RECONNECTED, and if the connection stays lost for the session timeout the session is
 * taken as expired (bundles dropped); CONNECTED: (re)register. */
void svc_session_event(struct svc *s, int meta_session_event);

#endif
