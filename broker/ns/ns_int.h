/* ns_int.h - the body of struct ns and what the ns module's parts call of each other. Only
 * broker/ns and its unit tests include it. */
#ifndef MG_NS_INT_H
#define MG_NS_INT_H

#include "ns/ns.h"
#include "util/loop.h"
#include "util/map.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

struct cfg;
struct event_base;
struct meta_store;
struct ml_factory;
struct topic_registry;
struct res_load;
struct res_write;
struct ns_pdel;
struct ns_own;

struct ns {
    const struct cfg *cfg;         /* borrowed */
    struct mg_loop *loop;          /* borrowed: its clock and timers are the module's */
    struct event_base *base;       /* the loop's */
    struct meta_store *meta;       /* borrowed; may be NULL */
    struct topic_registry *topics; /* borrowed from ns_start to ns_stop, else NULL */
    struct ml_factory *mlf;        /* borrowed from ns_start to ns_stop, else NULL */
    char *broker_url;              /* owned; NULL before ns_start */
    char *web_url;                 /* owned */
    char *broker_id;               /* owned */
    int web_port;
    /* TLS (ns_set_tls_ports): NULL / -1 when off */
    char *broker_url_tls; /* owned: "pulsar+ssl://h:p" */
    char *web_url_tls;    /* owned: "https://h:p" */
    int broker_port_tls, web_port_tls;
    bool shutting_down; /* ns_shutdown began: no bundle is served or taken any more */
    /* resources (ns_res.c): a cache of what the metadata store holds */
    struct mg_map tenants;      /* name -> owned json_t * array: its adminRoles */
    struct mg_map namespaces;   /* "t/ns" -> bundles count (intptr) */
    struct mg_map partitions;   /* base full name -> partition count (intptr) */
    struct mg_map policies;     /* "t/ns" -> owned struct ns_policies (when any is set) */
    struct mg_map auth;         /* "t/ns" -> owned json_t *: its auth_policies (when any) */
    ns_policies_fn policies_fn; /* ns_set_policies_hook */
    void *policies_arg;
    int res_loading;                    /* metadata reads outstanding while loading */
    int res_load_error;                 /* first error while loading */
    bool res_refreshing;                /* the periodic reload runs (a shared store, after load) */
    struct mg_timer res_refresh;        /* its interval (else zeroed) */
    LIST_HEAD(, res_load) res_inflight; /* metadata reads of the load walk still in flight */
    LIST_HEAD(, res_write) res_writes;  /* metadata writes not yet completed */
    struct mg_map res_gens;             /* "kind:key" -> number of its latest pending mutation */
    uint64_t res_gen;                   /* local mutations numbered so far: a store read sent
                                           before one is stale (ns_*_sync, refresh) */
    int res_fail_writes;                /* test seam: fail this many next writes ... */
    int res_fail_status;                /* ... with this status */
    struct ns_own *own;                 /* owned: bundle ownership and registration (ns_own.c) */
    LIST_HEAD(, ns_pdel) bulk_jobs;     /* sliced partitioned-topic deletes in progress */
    char **unload_q;                    /* owned names of topics to unload (ns_unload_topics) */
    size_t unload_head, unload_n, unload_cap; /* unload_q[unload_head..unload_n) to do */
    struct mg_timer unload_tm;                /* runs the next unload slice */
    LIST_HEAD(, ns_tw_group) topic_watches;   /* namespaces watched (ns_list.c) */
    struct mg_map topic_pols;                 /* base full name -> struct ns_tpol (ns_topicpol.c) */
    size_t topic_pols_sweep;                  /* where its sweep goes on */
    struct mg_map gc_jobs; /* partitioned base name -> struct ns_gc_job (ns_gc.c) */
    size_t gc_sweep;       /* where its sweep goes on */
};

/* Run fn(arg) on the next pass of the module's loop: the answer of a call that has nothing to
 * wait for, which must still come after the call returned. Returns 0 (it cannot fail; an int
 * so that it stands in for a store request in its callers' error paths). */
int ns_later(struct ns *s, void (*fn)(void *arg), void *arg);

/* Are the auto-creation overrides of two namespaces' policies the same (ns_auto.c)? */
bool ns_auto_eq(const struct ns_policies *a, const struct ns_policies *b);

/* Topic-list watches (ns_list.c): stop them all (ns_stop); the callers' handles stay theirs
 * to pass to ns_topics_unwatch, and hear nothing more. */
void ns_watch_fini(struct ns *s);

/* The head of an entry of a module's map whose store read may outlive the module
 * (ns_topicpol.c, ns_gc.c): s is NULL once ns_free let go of it with the read in flight, and
 * the read's callback then frees it. */
struct ns_pending {
    struct ns *s;
    bool reading;
};
/* ns_free: each entry of m (a struct ns_pending first) goes: before(entry) when not NULL, then
 * freed (free_fn) or, with its read in flight, detached; m is left empty. */
void ns_pending_release(struct mg_map *m, void (*before)(void *entry),
                        void (*free_fn)(void *entry));
/* A bounded sweep of such a map: the next two entries from *pos (wrapping to the start at the
 * end), each not reading and stale(entry) dropped (drop(entry) takes it out of m and frees it). */
void ns_pending_sweep(struct mg_map *m, size_t *pos, bool (*stale)(void *entry),
                      void (*drop)(void *entry));

/* Inactive partitions (ns_gc.c): the registry's inactive hook (ns_start sets it), and the
 * end of the jobs in progress (ns_free; their reads in flight complete detached). */
void ns_gc_topic_deleted(void *arg, const char *full_name);
void ns_gc_fini(struct ns *s);

/* Topic-level policies (ns_topicpol.c): stop tracking every topic (ns_free). */
void ns_topicpol_fini(struct ns *s);

/* Test seam: the next n metadata writes of resources fail with status (a negative -MG_E*
 * code) as if the store had refused them, completing on the next loop pass. */
void ns_res_fail_writes(struct ns *s, int n, int status);

/* Resources (ns_res.c): set up the cache; load it from the metadata store (creating the
 * cluster's default tenants and namespaces on first start) - blocks, running the loop,
 * until done or a bound; returns 0 or a negative error. */
void ns_res_init(struct ns *s);
int ns_res_load(struct ns *s);
void ns_res_fini(struct ns *s);
/* The callers are going away: writes still in flight will not call their callbacks. */
void ns_res_cancel(struct ns *s);
/* With a shared (ZooKeeper) store: reload the cache periodically, adding what other
 * brokers created. */
void ns_res_refresh_start(struct ns *s);
/* Test hook: start one refresh walk now (any store). */
void ns_res_refresh_now(struct ns *s);

/* Ownership (ns_own.c). A lookup of an unowned bundle reuses the list of live brokers (and
 * their loads) read at most NS_OWN_BROKERS_CACHE_MS ago; an unload or the shutdown release
 * waits at most NS_OWN_FLUSH_MAX_MS after its topics closed for their cursor writes. */
#define NS_OWN_BROKERS_CACHE_MS 1000
#define NS_OWN_FLUSH_MAX_MS 3000

/* Ownership (ns_own.c): start (register the broker when there is a store, start the load
 * report timer); stop (cancel timers; pending store requests complete later and find the
 * module gone). ns_own_release_all begins the shutdown release: close every topic, let
 * cursor writes land, delete the ownership keys and the registration; ns_own_released
 * tells when that is over (true at once without a store). */
void ns_own_start(struct ns *s);
void ns_own_stop(struct ns *s);
void ns_own_release_all(struct ns *s);
bool ns_own_released(struct ns *s);

/* Bulk work (ns_bulk.c): set up (ns_new); the callers are going away: jobs in progress stop
 * without calling back (call before ns_res_cancel); fini: cancel and release (ns_free). */
void ns_bulk_init(struct ns *s);
void ns_bulk_cancel(struct ns *s);
void ns_bulk_fini(struct ns *s);
/* Unload the loaded topics named by names[0..n) (an owned array of owned strings, moved in;
 * names no longer loaded are skipped) in slices that yield to the loop, after those queued
 * before. ns_unload_pending: how many are still to be unloaded. */
void ns_unload_topics(struct ns *s, char **names, size_t n);
size_t ns_unload_pending(const struct ns *s);

#endif
