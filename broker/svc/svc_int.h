/* svc_int.h - the body of struct svc, and what the connections it owns call back. */
#ifndef MG_SVC_INT_H
#define MG_SVC_INT_H

#include "admin/admin.h"
#include "util/map.h"

#include <stdbool.h>
#include <stdint.h>

struct conn;
struct cfg;
struct event;
struct event_base;
struct mg_listener;
struct admin;
struct ml_factory;
struct bkc_client;
struct topic_registry;
struct meta_store;
struct ns;

struct svc {
    const struct cfg *cfg;         /* borrowed */
    struct event_base *base;       /* borrowed */
    struct meta_store *meta;       /* borrowed; may be NULL */
    struct mg_listener *listener;  /* owned; NULL once shutting down */
    struct admin *admin;           /* owned */
    struct admin_env admin_env;    /* what admin borrows */
    struct ml_factory *mlf;        /* owned */
    struct bkc_client *bkc;        /* owned; NULL unless managedLedgerStore=bookkeeper */
    struct topic_registry *topics; /* owned */
    struct ns *ns;                 /* owned: tenants, namespaces, bundles, lookup */
    struct mg_map conns;           /* id -> struct conn (the svc holds one reference) */
    struct mg_map conn_ips;        /* id of an admitted conn -> its IPv4 address + 1 */
    struct mg_map ip_conns;        /* IPv4 address (4 bytes) -> admitted conns from it */
    int n_admitted;                /* conns not refused by the connection limits */
    int64_t refused_conns;         /* refused by brokerMaxConnections[PerIp] */
    int64_t refuse_log_pending;    /* refusals since the last log line */
    uint64_t refuse_log_ms;        /* when that line was written */
    struct event *refuse_ev;       /* owned: writes the line at the end of an interval */
    const char *refuse_last_why;   /* static text of the latest refusal */
    char refuse_last_peer[32];     /* its peer "ip:port" */
    uint64_t next_conn_id;
    int64_t total_conns;
    int broker_port, web_port;
    uint64_t start_ms;
    bool shutting_down;
    struct event *shutdown_ev; /* owned: polls until connections are gone */
    int shutdown_ticks;
    uint64_t shutdown_deadline_ms; /* brokerShutdownTimeoutMs after svc_shutdown began */
    bool shutdown_released;        /* bundles released (or given up on): closing connections */
};

/* A connection closed itself: drop the service's reference to it. */
void svc_conn_closed(struct svc *s, struct conn *c);

#endif
