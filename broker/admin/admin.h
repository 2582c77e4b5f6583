/*
 * admin.h - the admin HTTP server (webServicePort): pulsar-admin REST paths, lookup,
 * health and readiness probes, Prometheus metrics. Built on libevent's evhttp; JSON with
 * jansson. Paths, status codes and JSON shapes follow Pulsar's (docs/admin.md).
 * Loop thread only.
 */
#ifndef MG_ADMIN_H
#define MG_ADMIN_H

#include <stdint.h>

struct admin;
struct auth;
struct bkc_client;
struct cfg;
struct event_base;
struct mg_loop;
struct ns;
struct sch_registry;
struct tls_server;
struct topic_registry;

/* What the admin server uses of the broker: filled by its creator (the service), borrowed
 * by admin_new and read at each use. */
struct admin_env {
    const struct cfg *cfg;
    struct mg_loop *loop; /* the clock of the topics' statistics */
    struct event_base *base;
    struct topic_registry *topics;
    struct ns *ns;          /* tenants, namespaces, bundles, lookup, this broker's URLs */
    struct bkc_client *bkc; /* NULL unless managedLedgerStore=bookkeeper */
    uint64_t start_time_ms; /* when the broker started (wall clock, ms) */
    /* Pulsar protocol connections open now, and accepted since the start (/metrics). */
    int (*num_connections)(void *data);
    int64_t (*total_connections)(void *data);
    /* A namespace's policies changed (grants included): the service re-checks its
     * connections' producers and consumers (NULL: nothing). */
    void (*policies_changed)(void *data, const char *tenant_ns);
    void *data; /* of the two counters and policies_changed */
    /* authentication (auth.h); NULL = off */
    const struct auth *auth;
    struct sch_registry *schemas; /* the schema registry (schema.h); NULL = none kept */
};

/* Bind addr:port (0 = any free port) and serve. NULL with a logged reason on failure.
 * env is borrowed and must outlive the admin server. */
struct admin *admin_new(const struct admin_env *env, struct event_base *base, const char *addr,
                        int port);
/* The bound port; -1 when port was -1 (webServicePort off: only admin_listen_tls serves). */
int admin_port(const struct admin *a);
/* Also serve HTTPS on addr:port (webServicePortTls; 0 = any free port), each connection
 * wrapped by tls (borrowed; must outlive a). The same routes as the plain port; evhttp's own
 * limits (header size, body size, httpIdleTimeoutSeconds, which also bounds a stalled
 * handshake) apply. Returns the bound port, or -1 with a logged reason. */
int admin_listen_tls(struct admin *a, const char *addr, int port, struct tls_server *tls);
/* Stop serving and free. Accepts NULL. */
void admin_free(struct admin *a);

#endif
