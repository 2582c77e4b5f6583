/*
 * tl_svc.h - the test library's brokers (prefix tl_), in this process, on the test's loop,
 * with the topics in memory, with no metadata store or with one in-memory metadata tree that
 * up to TL_MAX_BROKERS brokers share, each on its own session (meta_open_peer), so that they
 * see each other's registrations and ephemeral ownership keys. A broker is either
 *
 *   the whole service (tl_svc_start: svc_new), as the unit suites of svc and admin run it:
 *   listening on 127.0.0.1, ports 0, on a real loop (libevent's base and the monotonic
 *   clock); a test waits with tl.h's tl_base_until / tl_until_flag on fx.loop, or through a
 *   socket peer (tl_pulsar.h);
 *
 *   or made of its parts (tl_parts_start), without listeners or admin server: the namespace
 *   module, a managed-ledger factory, a topic registry and the environment its connections
 *   borrow, composed as svc_new composes them; clients are connections over bufferevent
 *   pairs (tl_parts_connect). No socket and no libevent timer of its own: it runs on a
 *   simulated loop (tl_svc_init_sim), where timers fire in simulated time and no wait
 *   sleeps; on a real loop too.
 */
#ifndef MG_TL_SVC_H
#define MG_TL_SVC_H

#include "config/cfg.h"
#include "conn/conn.h"
#include "lib/tl.h"

#include <event2/http.h>
#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct meta_store;
struct mg_loop;
struct ml_factory;
struct ns;
struct svc;
struct tl_peer;
struct topic;
struct topic_registry;

/* cfg_set(c, key, value) that must succeed (the error fails the test). */
void tl_cfg_set(struct cfg *c, const char *key, const char *value);
/* The fixture of a test of configured files: c initialized (cfg_init) and *dir a new empty
 * directory (tl_tmpdir(name)); tl_cfg_tmp_fini undoes both. */
void tl_cfg_tmp_init(struct cfg *c, char **dir, const char *name);
void tl_cfg_tmp_fini(struct cfg *c, char **dir);
/* Token authentication on in c with a new HS256 secret key (given as a data: URL, as an
 * operator would); *secret gets the key (mg_free) to sign the test's tokens with. */
void tl_cfg_token_auth(struct cfg *c, unsigned char **secret, size_t *secret_len);

#define TL_MAX_BROKERS 2
#define TL_PARTS_CONNS 8 /* connections of one broker made of parts, open at once */

/* A broker made of its parts. */
struct tl_parts {
    struct ns *ns;                      /* owned; NULL: not started, or stopped */
    struct ml_factory *mlf;             /* owned */
    struct topic_registry *topics;      /* owned */
    struct conn_env env;                /* what its connections borrow */
    struct conn *conns[TL_PARTS_CONNS]; /* open connections (closed by tl_parts_stop) */
    int n_conns;
    uint64_t next_id;
};

struct tl_svc {
    struct cfg cfg; /* every broker's: a test sets keys before starting them */
    struct event_base *base;
    struct mg_loop *loop;                    /* on base: real, or simulated (tl_svc_init_sim) */
    struct meta_store *meta[TL_MAX_BROKERS]; /* owned; NULL: not opened */
    struct svc *svc[TL_MAX_BROKERS];         /* owned; NULL: not started, or stopped */
    struct tl_parts parts[TL_MAX_BROKERS];   /* brokers made of parts (else zeroed) */
};

/* The configuration (bindAddress and advertisedAddress 127.0.0.1, brokerServicePort and
 * webServicePort 0, managedLedgerStore memory; the rest defaults), a base and its loop; no
 * store and no broker yet. */
void tl_svc_init(struct tl_svc *f);
/* The same on a simulated loop (monotonic clock at 1000000 ms, wall clock at 1700000000000
 * ms): for brokers made of parts only (the whole service listens on TCP). */
void tl_svc_init_sim(struct tl_svc *f);
/* Broker i's metadata session: the first one opened is a new in-memory tree, the others
 * further sessions of it. Returns it. */
struct meta_store *tl_svc_meta(struct tl_svc *f, int i);
/* Start broker i (svc_new on its session, or on none when tl_svc_meta was not called for
 * it; a real loop) and wait until it knows the cluster's default tenant and namespace
 * (public, public/default). Fails the test when svc_new fails. Returns it. */
struct svc *tl_svc_start(struct tl_svc *f, int i);
/* Free broker i (accepts one not started or already stopped). */
void tl_svc_stop(struct tl_svc *f, int i);
/* Stop every broker (either kind), then close the sessions, free the loop, the base and the
 * configuration. */
void tl_svc_fini(struct tl_svc *f);

/* ---- brokers made of their parts ----------------------------------------------------------- */

/* The ports in a broker's URLs (ns_start): nothing listens there, but they tell the brokers
 * of a fixture apart ("pulsar://127.0.0.1:<TL_PARTS_PORT + i>", web port
 * TL_PARTS_WEB_PORT + i). */
#define TL_PARTS_PORT 6650
#define TL_PARTS_WEB_PORT 8080

/* Start broker i from its parts on its session (or on none when tl_svc_meta was not called
 * for it), as svc_new does but without listeners: ns_new and ns_load, the managed-ledger
 * factory and the topic registry of svc_ml_config / svc_topic_config, ns_start; then wait
 * until it knows public and public/default. Returns it (f->parts[i]). */
struct tl_parts *tl_parts_start(struct tl_svc *f, int i);
/* Take broker i apart in svc_free's order: pending callers cancelled, its connections
 * closed, ns stopped, every topic closed and the managed ledgers' writes awaited (bounded),
 * everything freed. Accepts one not started or already stopped. */
void tl_parts_stop(struct tl_svc *f, int i);
/* A client of broker i: a bufferevent pair on f's base, one end taken by conn_new with the
 * broker's environment, the other opened as p on f's loop (tl_peer_open_loop). The
 * connection (returned) is the broker's: it is closed by tl_parts_stop unless it closed
 * before (closing p does not close it: a pair does not pass its end's close on). */
struct conn *tl_parts_connect(struct tl_svc *f, int i, struct tl_peer *p);
/* A connection of env (conn_new, id) on one end of a bufferevent pair on f's base, the other
 * end opened as p on f's loop: what tl_parts_connect does, for a test that makes the
 * environment itself. The connection is the caller's to close. */
struct conn *tl_conn_pair(struct tl_svc *f, const struct conn_env *env, struct tl_peer *p,
                          uint64_t id);

/* ---- the brokers' callbacks ---------------------------------------------------------------- */

/* The outcome of a call taking an ns_done_cb (data points to it; callback tl_done_cb). */
struct tl_done {
    bool called;
    int calls; /* exactly 1 once called */
    int status;
};
void tl_done_cb(void *data, int status);
/* Wait for d's callback on f's loop (fails the test when it does not come within
 * tl_wait_ms of the loop, or came more than once); returns its status. */
int tl_done_wait(struct tl_svc *f, struct tl_done *d);
/* A topic_get callback that counts the topics loaded in *(int *)data; the load must have
 * succeeded. */
void tl_topic_loaded_cb(struct topic *t, int status, void *data);

/* ---- the admin HTTP server ----------------------------------------------------------------- */

#define TL_HTTP_DEADLINE_MS 20000 /* how long tl_svc_http waits for a reply */

/* One reply of a broker's web server, filled in by tl_http_on_reply. */
struct tl_http_reply {
    bool done;
    int status; /* 0: no answer (the connection failed or ended) */
    char *body; /* owned, NUL-terminated; NULL until a reply with a body came */
    char ctype[128];
    char location[1024];
};

/* An evhttp request callback (arg: a struct tl_http_reply, done set on any outcome). */
void tl_http_on_reply(struct evhttp_request *req, void *arg);
/* tl_base_until's predicate: the reply (arg) is done. */
bool tl_http_reply_done(const void *arg);
/* Free r's body and zero r. */
void tl_http_reply_free(struct tl_http_reply *r);
/* Send method path to broker i's web port with "Host: 127.0.0.1",
 * "Authorization: <authz>" unless authz is NULL and body as application/json unless body is
 * NULL, and wait for the reply into r (whose earlier reply is freed first). Fails the test
 * when no reply comes within TL_HTTP_DEADLINE_MS or the connection fails; returns the status
 * (r->body is "" when the reply had none). */
int tl_svc_http(struct tl_svc *f, int i, enum evhttp_cmd_type method, const char *path,
                const char *authz, const char *body, struct tl_http_reply *r);

#endif
