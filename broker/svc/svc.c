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
#include "bkc/bkc.h"
#include "config/cfg.h"
#include "conn/conn.h"
#include "meta/meta.h"
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

#define SVC_DRAIN_SECONDS 5

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
    struct evconnlistener *l =
        evconnlistener_new_bind(s->base, accept_cb, s, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                512, (struct sockaddr *)&sin, sizeof sin);
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

struct svc *svc_new(struct event_base *base, const struct cfg *cfg, struct meta_store *meta)
{
    struct svc *s = mg_calloc(1, sizeof *s);
    s->cfg = cfg;
    s->meta = meta;
    s->base = base;
    s->start_ms = now_ms();
    mg_map_init(&s->conns);
    svc_res_init(s);
    if (svc_res_load(s) < 0) {
        MG_ERROR("svc", "cannot load tenants, namespaces and partitioned topics from the "
                        "metadata store");
        svc_free(s);
        return NULL;
    }
    svc_res_refresh_start(s);

    struct ml_config mlc = {
        .cache_size_bytes = (size_t)cfg->managed_ledger_cache_size_mb << 20,
        .max_entries_per_ledger = cfg->managed_ledger_max_entries_per_ledger,
        .max_size_per_ledger = (int64_t)cfg->managed_ledger_max_size_per_ledger_mb << 20,
        .retention_time_minutes = cfg->default_retention_time_minutes,
        .retention_size_mb = cfg->default_retention_size_mb,
        .ensemble_size = cfg->managed_ledger_ensemble_size,
        .write_quorum = cfg->managed_ledger_write_quorum,
        .ack_quorum = cfg->managed_ledger_ack_quorum,
    };
    if (strcmp(cfg->managed_ledger_store, "memory") == 0) {
        /* Volatile topics on a store other brokers share would let a broker crash lose
         * acknowledged messages while every other broker believes the topic exists: only
         * with a second, explicit opt-in. */
        if (meta && strcmp(meta_backend_name(meta), "zookeeper") == 0 &&
            !cfg->allow_volatile_topics) {
            MG_ERROR("svc",
                     "managedLedgerStore=memory keeps topics in RAM only; with a shared "
                     "metadata store (%s) a crashed broker would lose acknowledged "
                     "messages. Use managedLedgerStore=bookkeeper, or also set "
                     "allowVolatileTopics=true if that loss is acceptable",
                     cfg->metadata_store_url);
            svc_free(s);
            return NULL;
        }
        MG_WARN("svc", "managedLedgerStore=memory: topics are NOT durable (kept in RAM only; "
                       "acknowledged messages are lost when the broker stops)");
    }
    if (strcmp(cfg->managed_ledger_store, "bookkeeper") == 0) {
        if (!meta) {
            MG_ERROR("svc", "managedLedgerStore=bookkeeper needs a metadata store "
                            "(metadataStoreUrl)");
            svc_free(s);
            return NULL;
        }
        if (cfg->managed_ledger_ensemble_size < cfg->managed_ledger_write_quorum ||
            cfg->managed_ledger_write_quorum < cfg->managed_ledger_ack_quorum) {
            MG_ERROR("svc",
                     "managedLedgerDefaultEnsembleSize (%d) >= WriteQuorum (%d) >= "
                     "AckQuorum (%d) does not hold",
                     cfg->managed_ledger_ensemble_size, cfg->managed_ledger_write_quorum,
                     cfg->managed_ledger_ack_quorum);
            svc_free(s);
            return NULL;
        }
        struct bkc_config bc;
        bkc_config_default(&bc);
        bc.ensemble_size = cfg->managed_ledger_ensemble_size;
        bc.write_quorum = cfg->managed_ledger_write_quorum;
        bc.ack_quorum = cfg->managed_ledger_ack_quorum;
        bc.timeout_ms = cfg->bookkeeper_client_timeout_seconds * 1000;
        bc.use_v3 = !cfg->bookkeeper_use_v2_wire_protocol;
        bc.max_frame_size = (size_t)cfg->max_message_size + 65536 + 1024;
        int rc = bkc_client_new(base, meta, &bc, &s->bkc);
        if (rc < 0) {
            MG_ERROR("svc", "cannot create the BookKeeper client: %s", mg_strerror(rc));
            svc_free(s);
            return NULL;
        }
        mlc.meta = meta;
        mlc.bkc = s->bkc;
    }
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
    svc_own_start(s);
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
    svc_res_cancel(s);
    close_all_conns(s, false);
    admin_free(s->admin);
    s->admin = NULL;
    svc_own_stop(s);
    svc_drain(s);
    ml_factory_free(s->mlf);
    bkc_client_free(s->bkc);
    if (s->shutdown_ev)
        event_free(s->shutdown_ev);
    mg_map_fini(&s->conns);
    svc_res_fini(s);
    mg_free(s->broker_url);
    mg_free(s->web_url);
    mg_free(s->broker_id);
    mg_free(s);
}

/* Shutdown, polled every 100 ms: first the bundles are released (topics closed, cursor
 * writes landed, ownership keys and the registration deleted), then connections are closed
 * gracefully; brokerShutdownTimeoutMs bounds the whole. */
static void shutdown_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct svc *s = arg;
    s->shutdown_ticks++;
    bool late = now_ms() >= s->shutdown_deadline_ms;
    if (!s->shutdown_released) {
        /* Leave at least a second of the bound for the connections. */
        bool release_late = now_ms() + 1000 >= s->shutdown_deadline_ms;
        if (!svc_own_released(s) && !release_late)
            return;
        if (!svc_own_released(s))
            MG_WARN("svc", "bundles not released within the shutdown bound; going on");
        s->shutdown_released = true;
        MG_INFO("svc", "bundles released: closing %zu connections", s->conns.count);
        close_all_conns(s, true);
    }
    if (s->conns.count == 0 || late) {
        if (s->conns.count)
            MG_WARN("svc",
                    "%zu connections still open at the shutdown bound (%d ms); closing "
                    "them",
                    s->conns.count, s->cfg->broker_shutdown_timeout_ms);
        close_all_conns(s, false);
        event_base_loopexit(s->base, NULL);
    }
}

static void drain_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    *(bool *)arg = true;
}

/* Close every topic (cursors flush their positions, ledgers close) and run the loop until
 * the managed ledgers' metadata writes are done, bounded in time. */
void svc_drain(struct svc *s)
{
    if (s->topics) {
        topic_registry_free(s->topics);
        s->topics = NULL;
    }
    if (!s->mlf || ml_factory_pending(s->mlf) == 0)
        return;
    bool expired = false;
    struct event *timer = evtimer_new(s->base, drain_timeout, &expired);
    struct timeval tv = {SVC_DRAIN_SECONDS, 0};
    evtimer_add(timer, &tv);
    while (ml_factory_pending(s->mlf) > 0 && !expired)
        event_base_loop(s->base, EVLOOP_ONCE);
    event_free(timer);
    if (expired)
        MG_WARN("svc", "%d managed-ledger metadata writes still pending after %d s",
                ml_factory_pending(s->mlf), SVC_DRAIN_SECONDS);
}

void svc_shutdown(struct svc *s)
{
    if (s->shutting_down)
        return;
    s->shutting_down = true;
    MG_INFO("svc", "shutting down: releasing %d bundles, then closing %zu connections",
            svc_owned_bundles(s), s->conns.count);
    s->shutdown_deadline_ms = now_ms() + (uint64_t)s->cfg->broker_shutdown_timeout_ms;
    if (s->listener) {
        evconnlistener_free(s->listener);
        s->listener = NULL;
    }
    svc_own_release_all(s);
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

struct bkc_client *svc_bkc(struct svc *s)
{
    return s->bkc;
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
