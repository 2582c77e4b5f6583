/*
 * svc.c - the broker service: listeners, connections, topics and cluster resources.
 *
 * Happy path: svc_new binds the Pulsar port and the admin port (either may be 0 = any free
 * port; the bound ports are then used in the advertised URLs), creates the managed-ledger
 * factory and the topic registry, and accepts connections, each handed to conn_new.
 * svc_shutdown stops accepting, asks every connection to close its producers and
 * consumers (CLOSE_PRODUCER/CLOSE_CONSUMER, so clients reconnect elsewhere) and exits the
 * loop once they are gone or a grace timer fires.
 *
 * Failure modes: a port that cannot be bound makes svc_new return NULL with the reason
 * logged; accept errors are logged and accepting goes on.
 */
#include "svc/svc.h"
#include "admin/admin.h"
#include "config/cfg.h"
#include "conn/conn.h"
#include "ml/ml.h"
#include "svc/svc_int.h"
#include "topic/topic.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"
#include "util/map.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#define SVC_SHUTDOWN_GRACE_SECONDS 10

struct svc {
    const struct cfg *cfg;          /* borrowed */
    struct event_base *base;        /* borrowed */
    struct meta_store *meta;        /* borrowed; may be NULL */
    struct evconnlistener *listener; /* owned */
    struct admin *admin;            /* owned */
    struct ml_factory *mlf;         /* owned */
    struct topic_registry *topics;  /* owned */
    struct mg_map conns;            /* id -> struct conn (the svc holds one reference) */
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
    /* resources */
    struct mg_map tenants;    /* name -> (void *)1 */
    struct mg_map namespaces; /* "t/ns" -> bundles count (intptr) */
    struct mg_map partitions; /* base full name -> partition count (intptr) */
};

static uint64_t now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *addr,
                      int socklen, void *arg)
{
    (void)l;
    struct svc *s = arg;
    if (s->shutting_down) {
        evutil_closesocket(fd);
        return;
    }
    uint64_t id = ++s->next_conn_id;
    struct conn *c = conn_new(s, fd, addr, socklen, id);
    mg_map_put_u64(&s->conns, id, c);
    s->total_conns++;
}

static void accept_error_cb(struct evconnlistener *l, void *arg)
{
    (void)l;
    (void)arg;
    int err = EVUTIL_SOCKET_ERROR();
    MG_ERROR("svc", "accept failed: %s", evutil_socket_error_to_string(err));
}

void svc_conn_closed(struct svc *s, struct conn *c)
{
    mg_map_del_u64(&s->conns, conn_id(c));
}

static struct evconnlistener *listen_on(struct svc *s, const char *addr, int port, int *bound)
{
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
        MG_ERROR("svc", "bindAddress '%s' is not an IPv4 address", addr);
        return NULL;
    }
    struct evconnlistener *l = evconnlistener_new_bind(
        s->base, accept_cb, s, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 512,
        (struct sockaddr *)&sin, sizeof sin);
    if (!l) {
        MG_ERROR("svc", "cannot listen on %s:%d: %s", addr, port, strerror(errno));
        return NULL;
    }
    evconnlistener_set_error_cb(l, accept_error_cb);
    struct sockaddr_in got;
    socklen_t len = sizeof got;
    getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&got, &len);
    *bound = ntohs(got.sin_port);
    return l;
}

static void add_default_resources(struct svc *s)
{
    mg_map_put_str(&s->tenants, "public", (void *)1);
    mg_map_put_str(&s->tenants, "pulsar", (void *)1);
    int bundles = s->cfg->default_number_of_namespace_bundles;
    mg_map_put_str(&s->namespaces, "public/default", (void *)(intptr_t)bundles);
    mg_map_put_str(&s->namespaces, "pulsar/system", (void *)(intptr_t)bundles);
}

struct svc *svc_new(struct event_base *base, const struct cfg *cfg, struct meta_store *meta)
{
    struct svc *s = mg_calloc(1, sizeof *s);
    s->cfg = cfg;
    s->meta = meta;
    s->base = base;
    s->start_ms = now_ms();
    mg_map_init(&s->conns);
    mg_map_init(&s->tenants);
    mg_map_init(&s->namespaces);
    mg_map_init(&s->partitions);
    add_default_resources(s);

    struct ml_config mlc = {
        .cache_size_bytes = (size_t)cfg->managed_ledger_cache_size_mb << 20,
        .max_entries_per_ledger = cfg->managed_ledger_max_entries_per_ledger,
        .max_size_per_ledger = (int64_t)cfg->managed_ledger_max_size_per_ledger_mb << 20,
    };
    s->mlf = ml_factory_new(base, cfg->managed_ledger_store, &mlc);
    if (!s->mlf) {
        svc_free(s);
        return NULL;
    }
    struct topic_config tc = {
        .max_pending_publish_per_conn = cfg->max_pending_publish_per_conn,
        .max_unacked_per_consumer = cfg->max_unacked_per_consumer,
        .max_unacked_per_subscription = cfg->max_unacked_per_subscription,
        .dispatch_max_round_robin = cfg->dispatcher_max_round_robin_batch_size,
        .dispatch_max_read_batch = cfg->dispatcher_max_read_batch_size,
        .consumer_outbound_high_water = (size_t)cfg->connection_max_outbound_bytes,
        .active_consumer_failover_delay_ms = cfg->active_consumer_failover_delay_ms,
        .cluster_name = cfg->cluster_name,
        .broker_index = 0,
    };
    s->topics = topic_registry_new(base, s->mlf, &tc);

    s->listener = listen_on(s, cfg->bind_address, cfg->broker_service_port, &s->broker_port);
    if (!s->listener) {
        svc_free(s);
        return NULL;
    }
    s->broker_url = mg_asprintf("pulsar://%s:%d", cfg->advertised_address, s->broker_port);
    s->admin = admin_new(s, base, cfg->bind_address, cfg->web_service_port);
    if (!s->admin) {
        svc_free(s);
        return NULL;
    }
    s->web_port = admin_port(s->admin);
    s->web_url = mg_asprintf("http://%s:%d", cfg->advertised_address, s->web_port);
    s->broker_id = mg_asprintf("%s:%d", cfg->advertised_address, s->web_port);
    MG_INFO("svc", "serving Pulsar protocol on %s:%d (advertised %s), admin on %s:%d",
            cfg->bind_address, s->broker_port, s->broker_url, cfg->bind_address, s->web_port);
    return s;
}

static void close_all_conns(struct svc *s, bool graceful)
{
    size_t pos = 0;
    void *v;
    /* Collect first: closing removes entries from the map. */
    struct conn **list = NULL;
    size_t n = 0;
    if (s->conns.count) {
        list = mg_malloc(s->conns.count * sizeof *list);
        while (mg_map_next(&s->conns, &pos, NULL, NULL, &v))
            list[n++] = v;
    }
    for (size_t i = 0; i < n; i++) {
        if (graceful)
            conn_shutdown(list[i]);
        else
            conn_close(list[i], NULL);
    }
    mg_free(list);
}

void svc_free(struct svc *s)
{
    if (!s)
        return;
    if (s->listener)
        evconnlistener_free(s->listener);
    s->listener = NULL;
    close_all_conns(s, false);
    admin_free(s->admin);
    topic_registry_free(s->topics);
    ml_factory_free(s->mlf);
    if (s->shutdown_ev)
        event_free(s->shutdown_ev);
    mg_map_fini(&s->conns);
    mg_map_fini(&s->tenants);
    mg_map_fini(&s->namespaces);
    mg_map_fini(&s->partitions);
    mg_free(s->broker_url);
    mg_free(s->web_url);
    mg_free(s->broker_id);
    mg_free(s);
}

static void shutdown_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct svc *s = arg;
    s->shutdown_ticks++;
    if (s->conns.count == 0 || s->shutdown_ticks > SVC_SHUTDOWN_GRACE_SECONDS * 10) {
        if (s->conns.count)
            MG_WARN("svc", "%zu connections still open after %d s; closing them",
                    s->conns.count, SVC_SHUTDOWN_GRACE_SECONDS);
        close_all_conns(s, false);
        event_base_loopexit(s->base, NULL);
    }
}

void svc_shutdown(struct svc *s)
{
    if (s->shutting_down)
        return;
    s->shutting_down = true;
    MG_INFO("svc", "shutting down: closing %zu connections", s->conns.count);
    if (s->listener) {
        evconnlistener_free(s->listener);
        s->listener = NULL;
    }
    close_all_conns(s, true);
    s->shutdown_ev = event_new(s->base, -1, EV_PERSIST, shutdown_tick, s);
    struct timeval tv = {0, 100000};
    event_add(s->shutdown_ev, &tv);
}

int svc_broker_port(const struct svc *s)
{
    return s->broker_port;
}
int svc_web_port(const struct svc *s)
{
    return s->web_port;
}
const char *svc_broker_url(const struct svc *s)
{
    return s->broker_url;
}
const char *svc_web_url(const struct svc *s)
{
    return s->web_url;
}
const char *svc_broker_id(const struct svc *s)
{
    return s->broker_id;
}
const struct cfg *svc_cfg(const struct svc *s)
{
    return s->cfg;
}
struct event_base *svc_base(const struct svc *s)
{
    return s->base;
}
struct topic_registry *svc_topics(struct svc *s)
{
    return s->topics;
}
uint64_t svc_start_time_ms(const struct svc *s)
{
    return s->start_ms;
}
int svc_num_connections(const struct svc *s)
{
    return (int)s->conns.count;
}
int64_t svc_total_connections(const struct svc *s)
{
    return s->total_conns;
}

/* ---- resources ----------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The n-th name of a map in sorted order (maps are small: tenants, namespaces). */
static const char *sorted_nth(const struct mg_map *m, size_t idx)
{
    if (idx >= m->count)
        return NULL;
    const char **names = mg_malloc(m->count * sizeof *names);
    size_t pos = 0, n = 0;
    const char *k;
    while (mg_map_next(m, &pos, &k, NULL, NULL))
        names[n++] = k;
    qsort(names, n, sizeof *names, cmp_str);
    const char *r = names[idx];
    mg_free(names);
    return r;
}

bool svc_tenant_exists(struct svc *s, const char *tenant)
{
    return mg_map_get_str(&s->tenants, tenant) != NULL;
}

int svc_tenant_create(struct svc *s, const char *tenant)
{
    if (svc_tenant_exists(s, tenant))
        return -MG_EEXIST;
    mg_map_put_str(&s->tenants, tenant, (void *)1);
    return 0;
}

int svc_tenant_delete(struct svc *s, const char *tenant)
{
    if (!svc_tenant_exists(s, tenant))
        return -MG_ENOTFOUND;
    size_t pos = 0;
    const char *ns;
    size_t tl = strlen(tenant);
    while (mg_map_next(&s->namespaces, &pos, &ns, NULL, NULL))
        if (strncmp(ns, tenant, tl) == 0 && ns[tl] == '/')
            return -MG_EBUSY;
    mg_map_del_str(&s->tenants, tenant);
    return 0;
}

const char *svc_tenant_next(struct svc *s, size_t *pos)
{
    return sorted_nth(&s->tenants, (*pos)++);
}

bool svc_namespace_exists(struct svc *s, const char *tenant_ns)
{
    return mg_map_get_str(&s->namespaces, tenant_ns) != NULL;
}

int svc_namespace_create(struct svc *s, const char *tenant_ns, int bundles)
{
    const char *slash = strchr(tenant_ns, '/');
    if (!slash || slash == tenant_ns || !slash[1] || strchr(slash + 1, '/'))
        return -MG_EINVAL;
    char *tenant = mg_strndup(tenant_ns, (size_t)(slash - tenant_ns));
    bool tenant_ok = svc_tenant_exists(s, tenant);
    mg_free(tenant);
    if (!tenant_ok)
        return -MG_ENOTFOUND;
    if (svc_namespace_exists(s, tenant_ns))
        return -MG_EEXIST;
    if (bundles <= 0)
        bundles = s->cfg->default_number_of_namespace_bundles;
    mg_map_put_str(&s->namespaces, tenant_ns, (void *)(intptr_t)bundles);
    return 0;
}

int svc_namespace_delete(struct svc *s, const char *tenant_ns)
{
    if (!svc_namespace_exists(s, tenant_ns))
        return -MG_ENOTFOUND;
    char *prefix = mg_asprintf("persistent://%s/", tenant_ns);
    size_t plen = strlen(prefix);
    bool busy = false;
    size_t pos = 0;
    struct topic *t;
    while (!busy && (t = topic_next(s->topics, &pos)))
        busy = strncmp(topic_full_name(t), prefix, plen) == 0;
    const char *base;
    int n;
    pos = 0;
    while (!busy && (base = svc_partitions_next(s, &pos, &n)))
        busy = strncmp(base, prefix, plen) == 0;
    mg_free(prefix);
    if (busy)
        return -MG_EBUSY;
    mg_map_del_str(&s->namespaces, tenant_ns);
    return 0;
}

const char *svc_namespace_next(struct svc *s, size_t *pos)
{
    return sorted_nth(&s->namespaces, (*pos)++);
}

int svc_partitions_get(struct svc *s, const char *base_full_name)
{
    return (int)(intptr_t)mg_map_get_str(&s->partitions, base_full_name);
}

int svc_partitions_set(struct svc *s, const char *base_full_name, int n, bool create)
{
    int cur = svc_partitions_get(s, base_full_name);
    if (n <= 0)
        return -MG_EINVAL;
    if (create) {
        if (cur > 0 || topic_find(s->topics, base_full_name))
            return -MG_EEXIST;
    } else {
        if (cur == 0)
            return -MG_ENOTFOUND;
        if (n <= cur)
            return -MG_EINVAL;
    }
    mg_map_put_str(&s->partitions, base_full_name, (void *)(intptr_t)n);
    return 0;
}

int svc_partitions_delete(struct svc *s, const char *base_full_name)
{
    return mg_map_del_str(&s->partitions, base_full_name) ? 0 : -MG_ENOTFOUND;
}

const char *svc_partitions_next(struct svc *s, size_t *pos, int *n)
{
    const char *k;
    void *v;
    if (!mg_map_next(&s->partitions, pos, &k, NULL, &v))
        return NULL;
    if (n)
        *n = (int)(intptr_t)v;
    return k;
}

int svc_check_topic(struct svc *s, const struct topic_name *n, const char **reason)
{
    if (!n->persistent) {
        *reason = "Non-persistent topics are not supported";
        return -MG_ENOTALLOWED;
    }
    char *ns = mg_asprintf("%s/%s", n->tenant, n->ns);
    bool ok = svc_namespace_exists(s, ns);
    mg_free(ns);
    if (!ok) {
        *reason = "Namespace does not exist";
        return -MG_ENOTFOUND;
    }
    return 0;
}
