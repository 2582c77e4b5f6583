/*
 * tl_svc.h - the test library's brokers (prefix tl_): the whole service (svc_new) in this
 * process, on the test's loop, as the unit suites of the modules above the storage run it
 * (svc, ns, admin): on 127.0.0.1 with ports 0 and the topics in memory, with no metadata
 * store or with one in-memory metadata tree that up to TL_MAX_BROKERS brokers share, each on
 * its own session (meta_open_peer), so that they see each other's registrations and
 * ephemeral ownership keys.
 *
 * The loop is real (libevent's base and the monotonic clock): a test waits with tl.h's
 * tl_base_until / tl_until_flag on fx.loop, or through a socket peer (tl_pulsar.h).
 */
#ifndef MG_TL_SVC_H
#define MG_TL_SVC_H

#include "config/cfg.h"
#include "lib/tl.h"

#include <stdbool.h>

struct event_base;
struct meta_store;
struct mg_loop;
struct svc;
struct topic;

/* cfg_set(c, key, value) that must succeed (the error fails the test). */
void tl_cfg_set(struct cfg *c, const char *key, const char *value);

#define TL_MAX_BROKERS 2

struct tl_svc {
    struct cfg cfg; /* every broker's: a test sets keys before starting them */
    struct event_base *base;
    struct mg_loop *loop;                    /* real, on base */
    struct meta_store *meta[TL_MAX_BROKERS]; /* owned; NULL: not opened */
    struct svc *svc[TL_MAX_BROKERS];         /* owned; NULL: not started, or stopped */
};

/* The configuration (bindAddress and advertisedAddress 127.0.0.1, brokerServicePort and
 * webServicePort 0, managedLedgerStore memory; the rest defaults), a base and its loop; no
 * store and no broker yet. */
void tl_svc_init(struct tl_svc *f);
/* Broker i's metadata session: the first one opened is a new in-memory tree, the others
 * further sessions of it. Returns it. */
struct meta_store *tl_svc_meta(struct tl_svc *f, int i);
/* Start broker i (svc_new on its session, or on none when tl_svc_meta was not called for
 * it) and wait until it knows the cluster's default tenant and namespace (public,
 * public/default). Fails the test when svc_new fails. Returns it. */
struct svc *tl_svc_start(struct tl_svc *f, int i);
/* Free broker i (accepts one not started or already stopped). */
void tl_svc_stop(struct tl_svc *f, int i);
/* Stop every broker, then close the sessions, free the loop, the base and the
 * configuration. */
void tl_svc_fini(struct tl_svc *f);

/* ---- the brokers' callbacks ---------------------------------------------------------------- */

/* The outcome of a call taking an ns_done_cb (data points to it; callback tl_done_cb). */
struct tl_done {
    bool called;
    int calls; /* exactly 1 once called */
    int status;
};
void tl_done_cb(void *data, int status);
/* Wait for d's callback on f's loop (fails the test when it does not come within
 * TL_REAL_WAIT_MS, or came more than once); returns its status. */
int tl_done_wait(struct tl_svc *f, struct tl_done *d);
/* A topic_get callback that counts the topics loaded in *(int *)data; the load must have
 * succeeded. */
void tl_topic_loaded_cb(struct topic *t, int status, void *data);

#endif
