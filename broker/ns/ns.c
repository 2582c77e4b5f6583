/*
 * ns.c - the namespace module's lifetime: the cache, the broker's identity, start and stop.
 *
 * Happy path: ns_new sets up the empty cache on a loop (real, or simulated in tests: every
 * timer of the module is the loop's mg_timer and every clock read its clock); ns_load fills it from
 * the metadata store (ns_res.c) and starts the background refresh with a shared store; ns_start
 * receives the topic registry and the bound ports, makes the broker's URLs and starts ownership
 * (ns_own.c: registration, load reports); ns_shutdown releases the bundles; ns_cancel,
 * ns_stop and ns_free take it apart in the order the service's own teardown needs
 * (svc.c: svc_free).
 *
 * Failure modes: a store that cannot be read fails ns_load (the service does not start).
 * Everything after that is asynchronous and reported through the callbacks of ns.h.
 */
#include "config/cfg.h"
#include "ns/ns_int.h"
#include "topic/topic.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/loop.h"

struct ns *ns_new(struct mg_loop *loop, const struct cfg *cfg, struct meta_store *meta)
{
    struct ns *s = mg_calloc(1, sizeof *s);
    s->cfg = cfg;
    s->loop = loop;
    s->base = mg_loop_base(loop);
    s->meta = meta;
    LIST_INIT(&s->topic_watches);
    mg_map_init(&s->topic_pols);
    mg_map_init(&s->gc_jobs);
    ns_res_init(s);
    ns_bulk_init(s);
    return s;
}

int ns_load(struct ns *s)
{
    int rc = ns_res_load(s);
    if (rc < 0)
        return rc;
    ns_res_refresh_start(s);
    return 0;
}

void ns_start(struct ns *s, struct topic_registry *topics, struct ml_factory *mlf, int broker_port,
              int web_port)
{
    const char *host = s->cfg->advertised_address;
    s->topics = topics;
    s->mlf = mlf;
    s->web_port = web_port;
    s->broker_url = mg_asprintf("pulsar://%s:%d", host, broker_port);
    /* the plain web port off: web_port is the HTTPS one, and so is the web URL */
    bool https_only = s->web_port_tls > 0 && web_port == s->web_port_tls;
    s->web_url = mg_asprintf("%s://%s:%d", https_only ? "https" : "http", host, web_port);
    s->broker_id = mg_asprintf("%s:%d", host, web_port);
    if (s->broker_port_tls > 0)
        s->broker_url_tls = mg_asprintf("pulsar+ssl://%s:%d", host, s->broker_port_tls);
    if (s->web_port_tls > 0)
        s->web_url_tls = mg_asprintf("https://%s:%d", host, s->web_port_tls);
    topic_registry_set_inactive_hook(topics, ns_gc_topic_deleted, s);
    ns_own_start(s);
}

void ns_shutdown(struct ns *s)
{
    s->shutting_down = true;
    ns_own_release_all(s);
}

bool ns_released(struct ns *s)
{
    return ns_own_released(s);
}

void ns_cancel(struct ns *s)
{
    ns_bulk_cancel(s);
    ns_res_cancel(s);
}

void ns_stop(struct ns *s)
{
    ns_watch_fini(s);
    ns_own_stop(s);
    if (s->topics)
        topic_registry_set_inactive_hook(s->topics, NULL, NULL);
    s->topics = NULL;
    s->mlf = NULL;
}

void ns_pending_release(struct mg_map *m, void (*before)(void *entry), void (*free_fn)(void *entry))
{
    size_t pos = 0;
    void *v;
    while (mg_map_next(m, &pos, NULL, NULL, &v)) {
        struct ns_pending *pe = v;
        if (before)
            before(v);
        if (pe->reading)
            pe->s = NULL;
        else
            free_fn(v);
    }
    mg_map_fini(m);
    mg_map_init(m);
}

void ns_pending_sweep(struct mg_map *m, size_t *pos, bool (*stale)(void *entry),
                      void (*drop)(void *entry))
{
    for (int k = 0; k < 2; k++) {
        void *v;
        if (!mg_map_next(m, pos, NULL, NULL, &v)) {
            *pos = 0;
            return;
        }
        if (!((struct ns_pending *)v)->reading && stale(v))
            drop(v);
    }
}

void ns_free(struct ns *s)
{
    if (!s)
        return;
    ns_watch_fini(s);
    ns_topicpol_fini(s);
    ns_gc_fini(s);
    ns_bulk_fini(s);
    ns_own_stop(s);
    ns_res_fini(s);
    mg_free(s->broker_url);
    mg_free(s->web_url);
    mg_free(s->broker_url_tls);
    mg_free(s->web_url_tls);
    mg_free(s->broker_id);
    mg_free(s);
}

const char *ns_broker_url(const struct ns *s)
{
    return s->broker_url;
}

const char *ns_web_url(const struct ns *s)
{
    return s->web_url;
}

void ns_set_tls_ports(struct ns *s, int broker_port_tls, int web_port_tls)
{
    s->broker_port_tls = broker_port_tls;
    s->web_port_tls = web_port_tls;
}

const char *ns_broker_url_tls(const struct ns *s)
{
    return s->broker_url_tls;
}

const char *ns_web_url_tls(const struct ns *s)
{
    return s->web_url_tls;
}

const char *ns_broker_id(const struct ns *s)
{
    return s->broker_id;
}

/* A function to run on the next loop pass (ns_later). */
struct ns_later_call {
    struct mg_timer timer;
    void (*fn)(void *arg);
    void *arg;
};

static void ns_later_run(struct mg_timer *t, void *p)
{
    struct ns_later_call *call = p;
    void (*fn)(void *arg) = call->fn;
    void *arg = call->arg;
    mg_timer_fini(t);
    mg_free(call);
    fn(arg);
}

int ns_later(struct ns *s, void (*fn)(void *arg), void *arg)
{
    struct ns_later_call *call = mg_malloc(sizeof *call);
    call->fn = fn;
    call->arg = arg;
    mg_timer_init(&call->timer, s->loop, ns_later_run, call);
    mg_timer_start(&call->timer, 0); /* a zero timeout: after the loop polled I/O */
    return 0;
}
