/*
 * svc.h - the broker service: one loop's context that ties the modules together.
 *
 * struct svc owns the event loop's listeners (Pulsar protocol and admin HTTP), the live
 * connections, the managed-ledger factory, the topic registry and the cluster resources
 * (tenants, namespaces, partitioned-topic metadata). Nothing here is global: a second
 * loop would get its own svc.
 *
 * Resources are kept in memory in this version (the metadata-store issue moves them into
 * the store); tenant "public", "pulsar" and namespace "public/default" exist from the start.
 */
#ifndef MG_SVC_H
#define MG_SVC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct cfg;
struct svc;
struct topic_registry;
struct topic_name;

/* Create the service on base with the given (loaded, validated) configuration, bind the
 * protocol and admin ports and start accepting. meta is the metadata store (may be NULL
 * when managedLedgerStore is "memory"). Returns NULL with a logged reason (e.g. the port is
 * in use). cfg and meta are borrowed and must outlive the svc. */
struct meta_store;
struct svc *svc_new(struct event_base *base, const struct cfg *cfg, struct meta_store *meta);
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
uint64_t svc_start_time_ms(const struct svc *s);
int svc_num_connections(const struct svc *s);
int64_t svc_total_connections(const struct svc *s);

/* ---- resources -----------------------------------------------------------------------
 *
 * Tenants, namespaces and partitioned-topic metadata live in the metadata store under
 * Pulsar's paths (/admin/policies/<tenant>[/<ns>], /admin/partitioned-topics/...); the
 * service keeps a cache loaded at start. Reads answer from the cache. Mutations validate,
 * update the cache at once and write the store; cb (may be NULL) runs once the write is
 * durable, always after the call returned, with 0 or the store's error. A synchronous
 * error returns <0 and cb never runs. */

typedef void (*svc_done_cb)(void *data, int status);

bool svc_tenant_exists(struct svc *s, const char *tenant);
/* -MG_EEXIST */
int svc_tenant_create(struct svc *s, const char *tenant, svc_done_cb cb, void *data);
/* -MG_ENOTFOUND, -MG_EBUSY (namespaces left) */
int svc_tenant_delete(struct svc *s, const char *tenant, svc_done_cb cb, void *data);
/* Iterate tenant names in sorted order: *pos = 0 first, NULL at the end. */
const char *svc_tenant_next(struct svc *s, size_t *pos);

bool svc_namespace_exists(struct svc *s, const char *tenant_ns);
/* -MG_EINVAL (not "t/ns"), -MG_ENOTFOUND (no tenant), -MG_EEXIST */
int svc_namespace_create(struct svc *s, const char *tenant_ns, int bundles, svc_done_cb cb,
                         void *data);
/* -MG_ENOTFOUND, -MG_EBUSY (topics left) */
int svc_namespace_delete(struct svc *s, const char *tenant_ns, svc_done_cb cb, void *data);
const char *svc_namespace_next(struct svc *s, size_t *pos);
/* Bundles of a namespace (0 if it does not exist). */
int svc_namespace_bundles(struct svc *s, const char *tenant_ns);

/* Partitioned topics: base full name -> partition count. 0 = not partitioned. */
int svc_partitions_get(struct svc *s, const char *base_full_name);
/* Create (-MG_EEXIST if a partitioned or plain topic of that name exists) or update
 * (grow only: -MG_EINVAL otherwise; -MG_ENOTFOUND if not partitioned) the count. */
int svc_partitions_set(struct svc *s, const char *base_full_name, int n, bool create,
                       svc_done_cb cb, void *data);
int svc_partitions_delete(struct svc *s, const char *base_full_name, svc_done_cb cb,
                          void *data);
/* Iterate: *pos = 0 first; NULL at the end; *n gets the count. */
const char *svc_partitions_next(struct svc *s, size_t *pos, int *n);

/* List the topics of a namespace ("t/ns"): every topic stored there (also when not loaded),
 * the partitions of its partitioned topics and the loaded topics, as full names, sorted;
 * with partitioned_only, the partitioned topics' base names. names are valid during cb.
 * -MG_ENOTFOUND (sync) if the namespace does not exist. */
typedef void (*svc_topics_cb)(void *data, int status, char **names, int n);
int svc_list_topics(struct svc *s, const char *tenant_ns, bool partitioned_only,
                    svc_topics_cb cb, void *data);

/* Can a topic of this name be served (namespace exists)? Fills a reason when not. */
int svc_check_topic(struct svc *s, const struct topic_name *n, const char **reason);

#endif
