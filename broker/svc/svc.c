/*
 * svc.c - the broker service: the composition root of one loop's broker.
 *
 * Happy path: svc_new creates the namespace module and loads it from the metadata store,
 * the BookKeeper client (managedLedgerStore=bookkeeper), the managed-ledger factory and the
 * topic registry, binds the Pulsar port and the admin port (either may be 0 = any free
 * port; the bound ports are then used in the advertised URLs), starts the namespace module
 * (ownership) and accepts connections, each handed to conn_accept with the environment
 * every connection borrows (struct conn_env). svc_shutdown stops accepting, releases the
 * bundles, asks every
 * connection to close its producers and consumers (CLOSE_PRODUCER/CLOSE_CONSUMER, so
 * clients reconnect elsewhere) and exits the loop once they are gone or a grace timer fires.
 *
 * Failure modes: a port that cannot be bound makes svc_new return NULL with the reason
 * logged. The listener (util/listen.h) pauses accepting when descriptors run short (EMFILE,
 * or fewer free than its reserve, kept for the ledger client's and ZooKeeper's connections)
 * and resumes when a connection closes or on a timer; it never spins. A connection over
 * brokerMaxConnections or brokerMaxConnectionsPerIp gets ERROR NotAllowedError and is
 * closed, as Pulsar's ConnectionController does; refusals are logged once per 10 s with a
 * count.
 */
#include "svc/svc.h"
#include "admin/admin.h"
#include "auth/auth.h"
#include "bkc/bkc.h"
#include "config/cfg.h"
#include "conn/conn.h"
#include "meta/meta.h"
#include "ml/ml.h"
#include "ns/ns.h"
#include "schema/schema.h"
#include "tls/tls.h"
#include "topic/topic.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/listen.h"
#include "util/log.h"
#include "util/loop.h"
#include "util/map.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#define SVC_DRAIN_SECONDS 5
#define SVC_REFUSE_LOG_MS 10000 /* at most one line per interval about refused connections */

struct svc {
    const struct cfg *cfg;            /* borrowed */
    struct mg_loop *loop;             /* borrowed */
    struct event_base *base;          /* borrowed: the loop's */
    struct meta_store *meta;          /* borrowed; may be NULL */
    struct mg_listener *listener;     /* owned; NULL once shutting down or brokerServicePort off */
    struct mg_listener *listener_tls; /* owned: brokerServicePortTls; NULL when off */
    struct tls_server *tls;           /* owned: the TLS context of both TLS ports; NULL when off */
    struct admin *admin;              /* owned */
    struct auth *auth;                /* owned: authentication (auth.h) */
    struct admin_env admin_env;       /* what admin borrows */
    struct conn_env conn_env;         /* what every connection borrows */
    struct conn_env conn_env_tls;     /* the same, for connections that came over TLS */
    struct conn_iopool *io;           /* owned: numIOThreads I/O loops; NULL = none */
    struct ml_factory *mlf;           /* owned */
    struct bkc_client *bkc;           /* owned; NULL unless managedLedgerStore=bookkeeper */
    struct topic_registry *topics;    /* owned */
    struct ns *ns;                    /* owned: tenants, namespaces, bundles, lookup */
    struct sch_registry *schemas;     /* owned: the schema registry; NULL without a store */
    struct mg_map conns;              /* id -> struct conn (the svc holds one reference) */
    struct mg_map conn_ips;           /* id of an admitted conn -> its IPv4 address + 1 */
    struct mg_map ip_conns;           /* IPv4 address (4 bytes) -> admitted conns from it */
    int n_admitted;                   /* conns not refused by the connection limits */
    int64_t refused_conns;            /* refused by brokerMaxConnections[PerIp] */
    int64_t refuse_log_pending;       /* refusals since the last log line */
    uint64_t refuse_log_ms;           /* when that line was written */
    struct event *refuse_ev;          /* owned: writes the line at the end of an interval */
    const char *refuse_last_why;      /* static text of the latest refusal */
    char refuse_last_peer[32];        /* its peer "ip:port" */
    uint64_t next_conn_id;
    int64_t total_conns;
    int broker_port, web_port;         /* -1: off */
    int broker_port_tls, web_port_tls; /* -1: off */
    uint64_t start_ms;
    bool shutting_down;
    struct event *shutdown_ev; /* owned: polls until connections are gone */
    int shutdown_ticks;
    uint64_t shutdown_deadline_ms; /* brokerShutdownTimeoutMs after svc_shutdown began */
    bool shutdown_released;        /* bundles released (or given up on): closing connections */
};

/* brokerMaxConnections / brokerMaxConnectionsPerIp, as Pulsar's ConnectionController: a
 * connection over either bound gets ERROR NotAllowedError and is closed. Only IPv4 peers
 * are counted per address (as Pulsar). Returns NULL to admit, else the reason. */
static const char *svc_over_limits(struct svc *s, const struct sockaddr *addr, uint32_t *ip)
{
    const struct cfg *cfg = s->cfg;
    *ip = 0;
    if (addr && addr->sa_family == AF_INET)
        *ip = ((const struct sockaddr_in *)(const void *)addr)->sin_addr.s_addr;
    if (cfg->broker_max_connections > 0 && s->n_admitted >= cfg->broker_max_connections)
        return "Reached the maximum number of connections";
    if (cfg->broker_max_connections_per_ip > 0 && addr && addr->sa_family == AF_INET) {
        intptr_t n = (intptr_t)mg_map_get(&s->ip_conns, ip, sizeof *ip);
        if (n >= cfg->broker_max_connections_per_ip)
            return "Reached the maximum number of connections on address";
    }
    return NULL;
}

/* Refusals are logged at most once per SVC_REFUSE_LOG_MS, with how many there were; what
 * happened after a line is reported by a timer at the end of its interval. */
static void svc_refuse_log(struct svc *s)
{
    MG_WARN("svc",
            "refused %" PRId64 " connection(s) in the last %d s (brokerMaxConnections=%d, "
            "brokerMaxConnectionsPerIp=%d); latest from %s: %s",
            s->refuse_log_pending, SVC_REFUSE_LOG_MS / 1000, s->cfg->broker_max_connections,
            s->cfg->broker_max_connections_per_ip, s->refuse_last_peer, s->refuse_last_why);
    s->refuse_log_ms = mg_mono_ms();
    s->refuse_log_pending = 0;
}

static void svc_refuse_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct svc *s = arg;
    if (s->refuse_log_pending > 0)
        svc_refuse_log(s);
}

static void svc_note_refused(struct svc *s, const char *why, const char *peer)
{
    s->refused_conns++;
    s->refuse_log_pending++;
    s->refuse_last_why = why;
    snprintf(s->refuse_last_peer, sizeof s->refuse_last_peer, "%s", peer);
    uint64_t now = mg_mono_ms();
    if (!s->refuse_log_ms || now - s->refuse_log_ms >= SVC_REFUSE_LOG_MS) {
        svc_refuse_log(s);
        return;
    }
    if (!s->refuse_ev)
        s->refuse_ev = evtimer_new(s->base, svc_refuse_flush, s);
    if (!evtimer_pending(s->refuse_ev, NULL)) {
        uint64_t left = s->refuse_log_ms + SVC_REFUSE_LOG_MS - now;
        struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};
        evtimer_add(s->refuse_ev, &tv);
    }
}

static void svc_admit(struct svc *s, struct conn *c, uint64_t id, const struct sockaddr *addr);

static void svc_accept_fn(void *arg, int fd, const struct sockaddr *addr, int socklen)
{
    struct svc *s = arg; /* (svc_shutdown frees the listener: no accept after it) */
    uint64_t id = ++s->next_conn_id;
    svc_admit(s, conn_accept(&s->conn_env, fd, addr, socklen, id), id, addr);
}

/* The TLS port: the handshake runs first (tls.h), then the connection is a plain one. */
static void svc_tls_ready(void *arg, struct bufferevent *bev, const struct sockaddr *addr,
                          int socklen)
{
    struct svc *s = arg;
    if (s->shutting_down || !s->listener_tls) { /* the handshake ended after accepting did */
        bufferevent_free(bev);
        return;
    }
    uint64_t id = ++s->next_conn_id;
    svc_admit(s, conn_accept_bev(&s->conn_env_tls, bev, addr, socklen, id), id, addr);
}

static void svc_tls_failed(void *arg)
{
    struct svc *s = arg;
    if (s->listener_tls)
        mg_listener_conn_closed(s->listener_tls);
}

static void svc_accept_tls_fn(void *arg, int fd, const struct sockaddr *addr, int socklen)
{
    struct svc *s = arg;
    if (s->io) { /* numIOThreads: the handshake runs on the connection's I/O loop */
        uint64_t id = ++s->next_conn_id;
        svc_admit(
            s, conn_accept_ssl(&s->conn_env_tls, fd, tls_server_new_ssl(s->tls), addr, socklen, id),
            id, addr);
        return;
    }
    tls_server_accept(s->tls, fd, addr, socklen, svc_tls_ready, svc_tls_failed, s);
}

static void svc_admit(struct svc *s, struct conn *c, uint64_t id, const struct sockaddr *addr)
{
    mg_map_put_u64(&s->conns, id, c);
    s->total_conns++;
    uint32_t ip;
    const char *why = svc_over_limits(s, addr, &ip);
    if (why) {
        char msg[128];
        char ipbuf[INET_ADDRSTRLEN] = "?", peer[INET_ADDRSTRLEN + 8] = "?";
        if (addr && addr->sa_family == AF_INET) {
            inet_ntop(AF_INET, &ip, ipbuf, sizeof ipbuf);
            snprintf(peer, sizeof peer, "%s:%u", ipbuf,
                     ntohs(((const struct sockaddr_in *)(const void *)addr)->sin_port));
        }
        /* Pulsar appends the remote address (Java's "/ip:port") to the per-address message */
        if (strstr(why, "on address"))
            snprintf(msg, sizeof msg, "%s/%s", why, peer);
        else
            snprintf(msg, sizeof msg, "%s", why);
        svc_note_refused(s, why, peer);
        conn_refuse(c, -MG_ENOTALLOWED, msg);
        return;
    }
    s->n_admitted++;
    mg_map_put_u64(&s->conn_ips, id, (void *)(uintptr_t)((uint64_t)ip + 1));
    if (addr && addr->sa_family == AF_INET) {
        intptr_t n = (intptr_t)mg_map_get(&s->ip_conns, &ip, sizeof ip);
        mg_map_put(&s->ip_conns, &ip, sizeof ip, (void *)(n + 1));
    }
}

/* A connection closed itself: drop the service's reference to it. */
static void svc_conn_closed(void *data, struct conn *c)
{
    struct svc *s = data;
    uint64_t id = conn_id(c);
    mg_map_del_u64(&s->conns, id);
    void *v = mg_map_del_u64(&s->conn_ips, id);
    if (v) { /* an admitted connection */
        s->n_admitted--;
        uint32_t ip = (uint32_t)((uintptr_t)v - 1);
        intptr_t n = (intptr_t)mg_map_get(&s->ip_conns, &ip, sizeof ip);
        if (n > 1)
            mg_map_put(&s->ip_conns, &ip, sizeof ip, (void *)(n - 1));
        else
            mg_map_del(&s->ip_conns, &ip, sizeof ip);
    }
    struct mg_listener *l = conn_tls(c) ? s->listener_tls : s->listener;
    if (l)
        mg_listener_conn_closed(l);
}

/* The connection counters admin's /metrics reads (struct admin_env). */
static int svc_num_connections(void *data)
{
    const struct svc *s = data;
    return (int)s->conns.count;
}

static int64_t svc_total_connections(void *data)
{
    const struct svc *s = data;
    return s->total_conns;
}

/* A namespace's grants may have changed: its producers and consumers that lost permission
 * are closed (as Pulsar's topics re-check them on a policies update). */
static void svc_policies_changed(void *data, const char *tenant_ns)
{
    struct svc *s = data;
    if (!auth_authz_enabled(s->auth))
        return; /* no grant to re-check: every policy change would walk every connection */
    size_t pos = 0;
    void *c;
    while (mg_map_next(&s->conns, &pos, NULL, NULL, &c))
        conn_authz_recheck(c, tenant_ns);
}

static void svc_drain(struct svc *s);

void svc_ml_config(const struct cfg *cfg, struct ml_config *mlc)
{
    *mlc = (struct ml_config){
        .cache_size_bytes = (size_t)cfg->managed_ledger_cache_size_mb << 20,
        .cache_eviction_time_ms = cfg->ml_cache_eviction_time_ms,
        .cache_eviction_interval_ms = cfg->ml_cache_eviction_interval_ms,
        .max_entries_per_ledger = cfg->managed_ledger_max_entries_per_ledger,
        .max_size_per_ledger = (int64_t)cfg->managed_ledger_max_size_per_ledger_mb << 20,
        .retention_time_minutes = cfg->default_retention_time_minutes,
        .retention_size_mb = cfg->default_retention_size_mb,
        .retention_check_interval_ms = (int64_t)cfg->retention_check_interval_secs * 1000,
        .min_rollover_ms = (int64_t)cfg->ml_min_rollover_minutes * 60000,
        .max_rollover_ms = (int64_t)cfg->ml_max_rollover_minutes * 60000,
        .ensemble_size = cfg->managed_ledger_ensemble_size,
        .write_quorum = cfg->managed_ledger_write_quorum,
        .ack_quorum = cfg->managed_ledger_ack_quorum,
        .auto_skip_non_recoverable_data = cfg->auto_skip_non_recoverable_data,
        .entry_info = topic_entry_info, /* entries read back from bookies */
    };
}

void svc_topic_config(const struct cfg *cfg, struct topic_config *tc)
{
    *tc = (struct topic_config){
        .max_pending_publish_per_conn = cfg->max_pending_publish_per_conn,
        .max_unacked_per_consumer = cfg->max_unacked_per_consumer,
        .max_unacked_per_subscription = cfg->max_unacked_per_subscription,
        .max_producers_per_topic = cfg->max_producers_per_topic,
        .max_consumers_per_topic = cfg->max_consumers_per_topic,
        .max_consumers_per_subscription = cfg->max_consumers_per_subscription,
        .max_subscriptions_per_topic = cfg->max_subscriptions_per_topic,
        .dispatch_rate = {[TOPIC_RATE_TOPIC] = {cfg->dispatch_rate_topic_msgs,
                                                cfg->dispatch_rate_topic_bytes, 1},
                          [TOPIC_RATE_SUB] = {cfg->dispatch_rate_sub_msgs,
                                              cfg->dispatch_rate_sub_bytes, 1}},
        .publish_rate = {cfg->publish_rate_msgs, cfg->publish_rate_bytes, 1},
        .inactive_check_ms =
            cfg->delete_inactive_topics ? (int64_t)cfg->delete_inactive_frequency_secs * 1000 : 0,
        .inactive_max_ms =
            (int64_t)(cfg->delete_inactive_max_secs > 0 ? cfg->delete_inactive_max_secs
                                                        : cfg->delete_inactive_frequency_secs) *
            1000,
        .inactive_caught_up =
            strcmp(cfg->delete_inactive_mode, "delete_when_subscriptions_caught_up") == 0,
        .dispatch_max_round_robin = cfg->dispatcher_max_round_robin_batch_size,
        .dispatch_max_read_batch = cfg->dispatcher_max_read_batch_size,
        .max_message_size = (size_t)cfg->max_message_size,
        .consumer_outbound_high_water = conn_dispatch_high_water(cfg),
        .active_consumer_failover_delay_ms = cfg->active_consumer_failover_delay_ms,
        .delayed_enabled = cfg->delayed_delivery_enabled,
        .np_disabled = !cfg->enable_non_persistent_topics,
        .delayed_tick_ms = cfg->delayed_delivery_tick_ms,
        .cluster_name = cfg->cluster_name,
        .broker_index = 0,
        .ttl_default_secs = cfg->ttl_duration_default_secs,
        .expiry_check_interval_ms = (int64_t)cfg->expiry_check_minutes * 60000,
        .quota_default = {.set = true,
                          .limit_bytes = cfg->backlog_quota_limit_bytes,
                          .limit_secs = cfg->backlog_quota_limit_secs,
                          .policy =
                              strcmp(cfg->backlog_quota_policy, "producer_exception") == 0
                                  ? TOPIC_QUOTA_EXCEPTION
                              : strcmp(cfg->backlog_quota_policy, "consumer_backlog_eviction") == 0
                                  ? TOPIC_QUOTA_EVICTION
                                  : TOPIC_QUOTA_HOLD},
        .quota_check_interval_ms = (int64_t)cfg->backlog_quota_check_secs * 1000,
        .dedup_enabled = cfg->broker_dedup_enabled,
        .dedup_max_producers = cfg->broker_dedup_max_producers,
        .dedup_entries_interval = cfg->broker_dedup_entries_interval,
        .dedup_inactivity_ms = (int64_t)cfg->broker_dedup_inactivity_minutes * 60000,
        .compaction_threshold_bytes = cfg->compaction_threshold_bytes,
        .compaction_monitor_ms = (int64_t)cfg->compaction_monitor_secs * 1000,
    };
}

struct svc *svc_new(struct mg_loop *loop, const struct cfg *cfg, struct meta_store *meta)
{
    return svc_new_with_transport(loop, cfg, meta, NULL);
}

struct svc *svc_new_with_transport(struct mg_loop *loop, const struct cfg *cfg,
                                   struct meta_store *meta, const struct bkc_transport *bookies)
{
    if (cfg->web_service_port < 0 &&
        (!cfg->broker_client_tls_enabled || cfg->web_service_port_tls < 0)) {
        /* Brokers call each other's admin API (partitioned-topic operations, redirects):
         * without brokerClientTlsEnabled at the plain web URL. */
        MG_ERROR("svc", "webServicePort is off (empty): needs webServicePortTls and "
                        "brokerClientTlsEnabled=true (brokers call each other's admin API)");
        return NULL;
    }
    struct event_base *base = mg_loop_base(loop);
    struct svc *s = mg_calloc(1, sizeof *s);
    s->cfg = cfg;
    s->meta = meta;
    s->loop = loop;
    s->base = base;
    s->start_ms = (uint64_t)mg_wall_ms();
    mg_map_init(&s->conns);
    mg_map_init(&s->conn_ips);
    mg_map_init(&s->ip_conns);
    char aerr[512];
    if (auth_new(cfg, &s->auth, aerr, sizeof aerr) < 0) {
        MG_ERROR("svc", "%s", aerr);
        svc_free(s);
        return NULL;
    }
    auth_warn_if_open(s->auth, cfg->bind_address);
    s->ns = ns_new(loop, cfg, meta);
    if (ns_load(s->ns) < 0) {
        MG_ERROR("svc", "cannot load tenants, namespaces and partitioned topics from the "
                        "metadata store");
        svc_free(s);
        return NULL;
    }

    struct ml_config mlc;
    svc_ml_config(cfg, &mlc);
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
        bc.tls = (struct bkc_tls_config){.on = cfg->bookkeeper_tls_client_authentication,
                                         .cert = cfg->bookkeeper_tls_certificate_file_path,
                                         .key = cfg->bookkeeper_tls_key_file_path,
                                         .trust = cfg->bookkeeper_tls_trust_certs_file_path,
                                         .key_type = cfg->bookkeeper_tls_key_file_type,
                                         .trust_type = cfg->bookkeeper_tls_trust_cert_types,
                                         .refresh_s = cfg->bookkeeper_tls_cert_refresh_s};
        bc.max_frame_size = (size_t)cfg->max_message_size + BKC_FRAME_PADDING;
        bc.transport = bookies;
        int rc = bkc_client_new(loop, meta, &bc, &s->bkc);
        if (rc < 0) {
            MG_ERROR("svc", "cannot create the BookKeeper client: %s", mg_strerror(rc));
            svc_free(s);
            return NULL;
        }
        mlc.meta = meta;
        mlc.bkc = s->bkc;
    }
    s->mlf = ml_factory_new(loop, cfg->managed_ledger_store, &mlc);
    if (!s->mlf) {
        svc_free(s);
        return NULL;
    }
    struct topic_config tc;
    svc_topic_config(cfg, &tc);
    s->topics = topic_registry_new(base, s->mlf, &tc);
    s->schemas = meta ? sch_registry_new(loop, meta, s->ns, cfg) : NULL;
    s->conn_env = (struct conn_env){
        .cfg = cfg,
        .loop = loop,
        .topics = s->topics,
        .ns = s->ns,
        .auth = s->auth,
        .schemas = s->schemas,
        .closed = svc_conn_closed,
        .data = s,
    };

    s->conn_env_tls = s->conn_env;
    s->conn_env_tls.tls = true;
    s->io = conn_iopool_new(loop, cfg->num_io_threads);
    s->conn_env.io = s->io;
    s->conn_env_tls.io = s->io;

    s->broker_port = s->broker_port_tls = s->web_port_tls = -1;
    if (cfg->broker_service_port_tls >= 0 || cfg->web_service_port_tls >= 0) {
        char terr[512];
        s->tls = tls_server_new(loop, cfg,
                                cfg->broker_service_port_tls >= 0 ? "brokerServicePortTls"
                                                                  : "webServicePortTls",
                                terr, sizeof terr);
        if (!s->tls) {
            MG_ERROR("svc", "%s", terr);
            svc_free(s);
            return NULL;
        }
    }
    if (cfg->broker_service_port < 0 && cfg->broker_service_port_tls < 0) {
        MG_ERROR("svc", "brokerServicePort and brokerServicePortTls are both off: no port "
                        "serves the Pulsar protocol");
        svc_free(s);
        return NULL;
    }
    struct mg_listener_options lo = {
        .name = "Pulsar protocol",
        .reserve_fds = mg_fds_default_reserve(mg_fds_limit()),
    };
    if (cfg->broker_service_port >= 0) {
        s->listener = mg_listener_new(base, cfg->bind_address, cfg->broker_service_port, &lo,
                                      svc_accept_fn, s);
        if (!s->listener) {
            svc_free(s);
            return NULL;
        }
        s->broker_port = mg_listener_port(s->listener);
    }
    if (cfg->broker_service_port_tls >= 0) {
        lo.name = "Pulsar protocol over TLS";
        s->listener_tls = mg_listener_new(base, cfg->bind_address, cfg->broker_service_port_tls,
                                          &lo, svc_accept_tls_fn, s);
        if (!s->listener_tls) {
            svc_free(s);
            return NULL;
        }
        s->broker_port_tls = mg_listener_port(s->listener_tls);
    }
    s->admin_env = (struct admin_env){
        .cfg = cfg,
        .loop = loop,
        .base = base,
        .topics = s->topics,
        .ns = s->ns,
        .bkc = s->bkc,
        .auth = s->auth,
        .schemas = s->schemas,
        .start_time_ms = s->start_ms,
        .num_connections = svc_num_connections,
        .total_connections = svc_total_connections,
        .policies_changed = svc_policies_changed,
        .data = s,
    };
    s->admin = admin_new(&s->admin_env, base, cfg->bind_address, cfg->web_service_port);
    if (!s->admin) {
        svc_free(s);
        return NULL;
    }
    s->web_port = admin_port(s->admin);
    if (cfg->web_service_port_tls >= 0) {
        s->web_port_tls =
            admin_listen_tls(s->admin, cfg->bind_address, cfg->web_service_port_tls, s->tls);
        if (s->web_port_tls < 0) {
            svc_free(s);
            return NULL;
        }
    }
    ns_set_tls_ports(s->ns, s->broker_port_tls, s->web_port_tls);
    ns_start(s->ns, s->topics, s->mlf, s->broker_port >= 0 ? s->broker_port : s->broker_port_tls,
             s->web_port >= 0 ? s->web_port : s->web_port_tls);
    if (s->broker_port >= 0 || s->web_port >= 0)
        MG_INFO("svc", "serving Pulsar protocol on %s:%d (advertised %s), admin on %s:%d (-1: off)",
                cfg->bind_address, s->broker_port, ns_broker_url(s->ns), cfg->bind_address,
                s->web_port);
    if (s->tls)
        MG_INFO("svc", "TLS: Pulsar protocol on %s:%d (%s), HTTPS admin on %s:%d",
                cfg->bind_address, s->broker_port_tls,
                ns_broker_url_tls(s->ns) ? ns_broker_url_tls(s->ns) : "off", cfg->bind_address,
                s->web_port_tls);
    return s;
}

static void svc_close_all_conns(struct svc *s, bool graceful)
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
    mg_listener_free(s->listener);
    s->listener = NULL;
    mg_listener_free(s->listener_tls);
    s->listener_tls = NULL;
    if (s->ns)
        ns_cancel(s->ns); /* the callers of pending requests are going away */
    svc_close_all_conns(s, false);
    conn_iopool_free(s->io); /* the closed connections' sockets go, then the connections */
    s->io = NULL;
    s->conn_env.io = NULL;
    s->conn_env_tls.io = NULL;
    admin_free(s->admin);
    s->admin = NULL;
    if (s->ns)
        ns_stop(s->ns);
    svc_drain(s);
    ml_factory_free(s->mlf);
    bkc_client_free(s->bkc);
    mg_event_free(s->shutdown_ev);
    mg_event_free(s->refuse_ev);
    mg_map_fini(&s->conns);
    mg_map_fini(&s->conn_ips);
    mg_map_fini(&s->ip_conns);
    sch_registry_free(s->schemas);
    ns_free(s->ns);
    auth_free(s->auth);
    tls_server_free(s->tls);
    mg_free(s);
}

/* Shutdown, polled every 100 ms: first the bundles are released (topics closed, cursor
 * writes landed, ownership keys and the registration deleted), then connections are closed
 * gracefully; brokerShutdownTimeoutMs bounds the whole. */
static void svc_shutdown_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct svc *s = arg;
    s->shutdown_ticks++;
    bool late = mg_mono_ms() >= s->shutdown_deadline_ms;
    if (!s->shutdown_released) {
        /* Leave at least a second of the bound for the connections. */
        bool release_late = mg_mono_ms() + 1000 >= s->shutdown_deadline_ms;
        if (!ns_released(s->ns) && !release_late)
            return;
        if (!ns_released(s->ns))
            MG_WARN("svc", "bundles not released within the shutdown bound; going on");
        s->shutdown_released = true;
        MG_INFO("svc", "bundles released: closing %zu connections", s->conns.count);
        svc_close_all_conns(s, true);
    }
    if (s->conns.count == 0 || late) {
        if (s->conns.count)
            MG_WARN("svc",
                    "%zu connections still open at the shutdown bound (%d ms); closing "
                    "them",
                    s->conns.count, s->cfg->broker_shutdown_timeout_ms);
        svc_close_all_conns(s, false);
        event_base_loopexit(s->base, NULL);
    }
}

static void svc_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    *(bool *)arg = true;
}

/* Close every topic (cursors flush their positions, ledgers close) and run the loop until
 * the managed ledgers' metadata writes are done, bounded in time. */
static void svc_drain(struct svc *s)
{
    if (s->topics) {
        topic_registry_free(s->topics);
        s->topics = NULL;
    }
    if (!s->mlf || ml_factory_pending(s->mlf) == 0)
        return;
    bool expired = false;
    struct event *timer = evtimer_new(s->base, svc_drain_timeout, &expired);
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
            ns_owned_bundles(s->ns), s->conns.count);
    s->shutdown_deadline_ms = mg_mono_ms() + (uint64_t)s->cfg->broker_shutdown_timeout_ms;
    mg_listener_free(s->listener);
    s->listener = NULL;
    mg_listener_free(s->listener_tls);
    s->listener_tls = NULL;
    ns_shutdown(s->ns);
    s->shutdown_ev = event_new(s->base, -1, EV_PERSIST, svc_shutdown_tick, s);
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

int svc_broker_port_tls(const struct svc *s)
{
    return s->broker_port_tls;
}

int svc_web_port_tls(const struct svc *s)
{
    return s->web_port_tls;
}

struct topic_registry *svc_topics(struct svc *s)
{
    return s->topics;
}

struct ns *svc_ns(struct svc *s)
{
    return s->ns;
}

struct admin *svc_admin(struct svc *s)
{
    return s->admin;
}

void svc_session_event(struct svc *s, int meta_session_event)
{
    ns_session_event(s->ns, meta_session_event);
}
