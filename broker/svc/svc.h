/*
 * svc.h - the broker service: one loop's context that ties the modules together.
 *
 * struct svc is the broker's composition root, as main.c is the process's: it creates and
 * wires the parts on one event loop (the Pulsar protocol listener and its connections, the
 * BookKeeper client, the managed-ledger factory, the topic registry, the namespace module
 * and the admin server) and runs the shutdown. Nothing here is global: a second loop would
 * get its own svc.
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
struct ns;

/* Create the service on loop (borrowed; the managed ledgers and the BookKeeper client use its
 * clock and timers) with the given (loaded, validated) configuration, bind the
 * protocol and admin ports and start accepting. meta is the metadata store (may be NULL
 * when managedLedgerStore is "memory"). Returns NULL with a logged reason (e.g. the port is
 * in use). cfg and meta are borrowed and must outlive the svc. */
struct meta_store;
struct svc *svc_new(struct mg_loop *loop, const struct cfg *cfg, struct meta_store *meta);
/* As svc_new, with the BookKeeper client's transport to the bookies (borrowed, must outlive
 * the svc; NULL = TCP): a standalone passes the in-process one of its own bookies
 * (bk_local_transport, bookie.h), which sends other bookie ids over TCP. */
struct bkc_transport;
struct svc *svc_new_with_transport(struct mg_loop *loop, const struct cfg *cfg,
                                   struct meta_store *meta, const struct bkc_transport *bookies);
/* Stop accepting, close every connection and topic, free everything. Accepts NULL. */
void svc_free(struct svc *s);
/* Begin a graceful shutdown: stop accepting; connections get CLOSE_PRODUCER/CONSUMER and
 * are closed; the loop is asked to exit once done (bounded by a timer). */
void svc_shutdown(struct svc *s);

/* Bound ports (useful with port 0 in the config). */
int svc_broker_port(const struct svc *s);
int svc_web_port(const struct svc *s);
/* Bound TLS ports (brokerServicePortTls, webServicePortTls); -1 when off. */
int svc_broker_port_tls(const struct svc *s);
int svc_web_port_tls(const struct svc *s);

/* The topic registry; borrowed. */
struct topic_registry *svc_topics(struct svc *s);
/* The namespace module (tenants, namespaces, bundles, ownership, lookup) the service
 * created; borrowed. */
struct ns *svc_ns(struct svc *s);
/* The admin server (borrowed; tests read its request accounting). */
struct admin;
struct admin *svc_admin(struct svc *s);

/* Metadata-store session events (main.c forwards them to the namespace module:
 * ns_session_event). */
void svc_session_event(struct svc *s, int meta_session_event);

/* What svc_new derives from the configuration for the managed-ledger factory (without its
 * store: meta and bkc are left NULL) and for the topic registry; for tests that build a
 * connection's environment (struct conn_env) without the whole service. */
struct ml_config;
struct topic_config;
void svc_ml_config(const struct cfg *cfg, struct ml_config *mlc);
void svc_topic_config(const struct cfg *cfg, struct topic_config *tc);

#endif
