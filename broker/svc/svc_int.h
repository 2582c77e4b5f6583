/* svc_int.h - what the svc module's own parts and the connections it owns call back. */
#ifndef MG_SVC_INT_H
#define MG_SVC_INT_H

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
struct res_load;
struct res_write;
struct svc_pdel;
struct svc_own;
struct mg_loop;

struct svc {
    const struct cfg *cfg;         /* borrowed */
    struct mg_loop *loop;          /* borrowed */
    struct event_base *base;       /* borrowed: the loop's */
    struct meta_store *meta;       /* borrowed; may be NULL */
    struct mg_listener *listener;  /* owned; NULL once shutting down */
    struct admin *admin;           /* owned */
    struct ml_factory *mlf;        /* owned */
    struct bkc_client *bkc;        /* owned; NULL unless managedLedgerStore=bookkeeper */
    struct topic_registry *topics; /* owned */
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
    char *broker_url; /* owned */
    char *web_url;    /* owned */
    char *broker_id;  /* owned */
    uint64_t start_ms;
    bool shutting_down;
    struct event *shutdown_ev; /* owned: polls until connections are gone */
    int shutdown_ticks;
    /* resources (svc_res.c): a cache of what the metadata store holds */
    struct mg_map tenants;         /* name -> owned json_t * array: its adminRoles */
    struct mg_map namespaces;      /* "t/ns" -> bundles count (intptr) */
    struct mg_map partitions;      /* base full name -> partition count (intptr) */
    struct mg_map retention;       /* "t/ns" -> owned struct svc_retention (set policies only) */
    int res_loading;               /* metadata reads outstanding while loading */
    int res_load_error;            /* first error while loading */
    struct event *res_refresh_ev;  /* owned: periodic reload with a shared store */
    struct res_load *res_inflight; /* metadata reads of the load walk still in flight */
    struct res_write *res_writes;  /* metadata writes not yet completed */
    struct mg_map res_gens;        /* "kind:key" -> number of its latest pending mutation */
    uint64_t res_gen;              /* local mutations numbered so far: a store read sent
                                      before one is stale (svc_*_sync, refresh) */
    int res_fail_writes;           /* test seam: fail this many next writes ... */
    int res_fail_status;           /* ... with this status */
    struct svc_own *own;           /* owned: bundle ownership and registration (svc_own.c) */
    struct svc_pdel *bulk_jobs;    /* sliced partitioned-topic deletes in progress */
    char **unload_q;               /* owned names of topics to unload (svc_unload_topics) */
    size_t unload_head, unload_n, unload_cap; /* unload_q[unload_head..unload_n) to do */
    struct event *unload_ev;                  /* owned: runs the next unload slice */
    uint64_t shutdown_deadline_ms;            /* brokerShutdownTimeoutMs after svc_shutdown began */
    bool shutdown_released; /* bundles released (or given up on): closing connections */
};

/* A connection closed itself: drop the service's reference to it. */
void svc_conn_closed(struct svc *s, struct conn *c);

/* Resources (svc_res.c): set up the cache; load it from the metadata store (creating the
 * cluster's default tenants and namespaces on first start) — blocks, running the loop,
 * until done or a bound; returns 0 or a negative error. */
void svc_res_init(struct svc *s);
int svc_res_load(struct svc *s);
void svc_res_fini(struct svc *s);
/* The service is going away: writes still in flight will not call their callbacks (their
 * callers, admin requests and connections, are freed first). */
void svc_res_cancel(struct svc *s);
/* Test seam: the next n metadata writes of resources fail with status (a negative -MG_E*
 * code) as if the store had refused them, completing on the next loop pass. */
void svc_res_fail_writes(struct svc *s, int n, int status);
/* With a shared (ZooKeeper) store: reload the cache periodically, adding what other
 * brokers created. */
void svc_res_refresh_start(struct svc *s);
/* Test hook: start one refresh walk now (any store). */
void svc_res_refresh_now(struct svc *s);

/* Ownership (svc_own.c): start (register the broker when there is a store, start the load
 * report timer); stop (cancel timers; pending store requests complete later and find the
 * svc gone). svc_own_release_all begins the shutdown release: close every topic, let cursor
 * writes land, delete the ownership keys and the registration; svc_own_released tells when
 * that is over (true at once without a store). */
void svc_own_start(struct svc *s);
void svc_own_stop(struct svc *s);
void svc_own_release_all(struct svc *s);
bool svc_own_released(struct svc *s);

/* Bulk work (svc_bulk.c): the service is going away; jobs in progress stop without
 * calling back. Call before svc_res_cancel. */
void svc_bulk_cancel(struct svc *s);
/* Unload the loaded topics named by names[0..n) (an owned array of owned strings, moved in;
 * names no longer loaded are skipped) in slices that yield to the loop, after those queued
 * before. svc_unload_pending: how many are still to be unloaded. */
void svc_unload_topics(struct svc *s, char **names, size_t n);
size_t svc_unload_pending(const struct svc *s);

/* Close every topic and wait (running the loop, bounded) for their metadata writes. */
void svc_drain(struct svc *s);

#endif
