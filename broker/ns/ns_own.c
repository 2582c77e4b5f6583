/*
 * ns_own.c - namespace bundles, bundle ownership by ephemeral keys, broker registration,
 * LOOKUP decisions, bundle unload and the loss of every bundle on session expiry.
 *
 * Happy path (docs/ownership.md): ns_own_start registers the broker under
 * /loadbalance/brokers/<host:webPort> (ephemeral, JSON load report refreshed every
 * loadBalancerReportUpdateMinIntervalMillis). A LOOKUP for a bundle owned here is answered
 * at once; otherwise the bundle's key /namespace/<t>/<ns>/<range> is read: it names the
 * owner (Redirect there), or it is missing and the least-loaded live broker is chosen (this
 * one: create the ephemeral key and answer Connect; another: Redirect with authoritative
 * set, and that broker takes the bundle without asking again). Concurrent lookups of a
 * bundle being acquired wait for that one create.
 *
 * Failure modes: a create that finds the key already there lost the race: the lookup reads
 * the key again and redirects to the winner (bounded retries). A key naming this broker
 * that is not in the owned table is a leftover of an earlier process on the same address
 * (we hold the port now): it is deleted and the bundle taken. Session EXPIRED (or a
 * connection lost for longer than the session timeout) drops every bundle at once: topics
 * are closed so clients look up again, and fencing stops any write the new owner's recovery
 * raced with. Store errors fail the lookup with MetadataError / ServiceNotReady; clients
 * retry. Requests in flight when the module is stopped complete later against a detached
 * context (struct ns_own outlives it through its reference count).
 */
#include "config/cfg.h"
#include "meta/meta.h"
#include "ml/ml.h"
#include "ns/ns.h"
#include "ns/ns_int.h"
#include "topic/topic.h"
#include "util/alloc.h"
#include "util/crc.h"
#include "util/err.h"
#include "util/log.h"
#include "util/loop.h"
#include "util/map.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOD "own"
#define OWN_BROKERS_PATH "/loadbalance/brokers"
#define OWN_MAX_TRIES 5 /* lookup rounds (lost races) before ServiceNotReady */
#define OWN_POLL_MS 50
#define OWN_CHECK_RETRY_MS 1000 /* a revalidation the store could not answer, again */

enum own_state {
    OWN_ACQUIRING = 0, /* our create of the key is in flight */
    OWN_OWNED,
    OWN_RELEASING, /* unload: topics closed, key deleted once cursor writes landed */
};

struct own_lookup;

struct own_bundle {
    struct ns_own *own; /* borrowed */
    char *key;          /* owned: "t/ns/range" (the table key) */
    char *path;         /* owned: "/namespace/t/ns/range" */
    enum own_state state;
    bool in_table;              /* false once dropped; freed when no request holds it */
    bool in_flight;             /* a meta request (create or delete) holds this struct */
    int64_t version;            /* of the ownership key, once created */
    struct own_lookup *waiters; /* owned: lookups waiting for the acquisition */
    struct meta_req req;
    ns_done_cb unload_cb;
    void *unload_data;
    struct mg_timer flush; /* unload: polls until cursor writes landed */
    uint64_t flush_deadline_ms;
    /* revalidation of an owned key (section "revalidation") */
    struct meta_watch *watch; /* armed on the key while OWNED */
    struct meta_req check_req;
    bool checking;         /* check_req holds this struct */
    struct mg_timer check; /* retries a check the store could not answer */
};

struct own_broker {
    char *id;      /* owned: "host:webPort" */
    char *url;     /* owned: pulsarServiceUrl */
    char *web;     /* owned: webServiceUrl */
    char *tls;     /* owned: pulsarServiceUrlTls, or NULL */
    char *web_tls; /* owned: webServiceUrlTls, or NULL */
    int bundles;
    int assigned; /* bundles this broker redirected to it since the list was read */
};

struct ns_own {
    int refs;              /* the module's + one per request in flight */
    struct ns *s;          /* borrowed; NULL once stopped (ns_own_stop) */
    struct mg_loop *loop;  /* the module's: its clock and timers */
    struct mg_map bundles; /* key -> struct own_bundle (any state) */
    int n_owned;           /* bundles in state OWNED */
    bool connected;        /* store session usable */
    bool reg_in_flight, reg_again;
    char *reg_path;         /* owned */
    struct mg_timer report; /* load report interval (with a store; else zeroed) */
    struct mg_timer disc;   /* disconnected for a session timeout -> expired (likewise) */
    int64_t last_in, last_out;
    uint64_t last_report_ms;
    /* the broker list (lookups of unowned bundles) */
    struct own_broker *brokers; /* owned */
    int n_brokers;
    uint64_t brokers_ms;
    bool refreshing;
    struct own_lookup *refresh_waiters; /* owned */
    /* shutdown */
    bool releasing_all;
    int release_pending; /* deletes in flight */
    bool released;
    struct mg_timer release; /* polls cursor writes during the shutdown release (likewise) */
    uint64_t release_deadline_ms;
};

struct own_lookup {
    struct ns_own *own; /* counted reference */
    char *key, *path;   /* owned */
    bool authoritative;
    int tries;
    ns_lookup_cb cb;
    void *data;
    struct meta_req req;
    struct own_lookup *next;
};

static void ns_own_unload_poll(struct mg_timer *t, void *arg);
static void ns_own_check_due(struct mg_timer *t, void *arg);
static void ns_own_check(struct own_bundle *b);
static void ns_own_key_event(struct meta_store *m, const char *path, enum meta_watch_event ev,
                             void *data);
static void ns_own_release_all_poll(struct mg_timer *t, void *arg);

static void ns_own_ref(struct ns_own *o)
{
    o->refs++;
}

static void ns_own_brokers_clear(struct ns_own *o)
{
    for (int i = 0; i < o->n_brokers; i++) {
        mg_free(o->brokers[i].id);
        mg_free(o->brokers[i].url);
        mg_free(o->brokers[i].web);
        mg_free(o->brokers[i].web_tls);
        mg_free(o->brokers[i].tls);
    }
    mg_free(o->brokers);
    o->brokers = NULL;
    o->n_brokers = 0;
}

static void ns_own_unref(struct ns_own *o)
{
    if (--o->refs > 0)
        return;
    mg_map_fini(&o->bundles);
    ns_own_brokers_clear(o);
    mg_free(o->reg_path);
    mg_free(o);
}

/* ---- bundle arithmetic ------------------------------------------------------------------- */

int ns_bundle_index(uint32_t hash, int n)
{
    MG_ASSERT(n >= 1);
    uint64_t seg = 0x100000000ull / (uint64_t)n;
    uint64_t i = (uint64_t)hash / seg;
    return i >= (uint64_t)n ? n - 1 : (int)i;
}

uint32_t ns_bundle_lower(int n, int i)
{
    MG_ASSERT(n >= 1);
    return (uint32_t)((0x100000000ull / (uint64_t)n) * (uint64_t)i);
}

void ns_bundle_name(int n, int i, char out[NS_BUNDLE_NAME_LEN])
{
    uint32_t hi = i == n - 1 ? 0xffffffffu : ns_bundle_lower(n, i + 1);
    snprintf(out, NS_BUNDLE_NAME_LEN, "0x%08" PRIx32 "_0x%08" PRIx32, ns_bundle_lower(n, i), hi);
}

json_t *ns_bundles_json(int n)
{
    json_t *b = json_array();
    char buf[24];
    for (int i = 0; i < n; i++) {
        snprintf(buf, sizeof buf, "0x%08" PRIx32, ns_bundle_lower(n, i));
        json_array_append_new(b, json_string(buf));
    }
    json_array_append_new(b, json_string("0xffffffff"));
    return json_pack("{s:o,s:i}", "boundaries", b, "numBundles", n);
}

int ns_topic_bundle(struct ns *s, const struct topic_name *n, char range[NS_BUNDLE_NAME_LEN])
{
    char *ns = mg_asprintf("%s/%s", n->tenant, n->ns);
    int bundles = ns_namespace_bundles(s, ns);
    mg_free(ns);
    if (bundles <= 0)
        return -MG_ENOTFOUND;
    uint32_t h = mg_crc32(0, n->full, strlen(n->full));
    int i = ns_bundle_index(h, bundles);
    ns_bundle_name(bundles, i, range);
    return i;
}

/* "t/ns/range" of a topic (caller frees), or NULL for an unknown namespace. */
static char *ns_own_topic_key(struct ns *s, const struct topic_name *n)
{
    char range[NS_BUNDLE_NAME_LEN];
    if (ns_topic_bundle(s, n, range) < 0)
        return NULL;
    return mg_asprintf("%s/%s/%s", n->tenant, n->ns, range);
}

static bool ns_own_valid_range(const char *range)
{
    unsigned lo, hi;
    char tail;
    return strlen(range) == NS_BUNDLE_NAME_LEN - 1 &&
           sscanf(range, "0x%8x_0x%8x%c", &lo, &hi, &tail) == 2 && lo < hi;
}

/* ---- the owned table ----------------------------------------------------------------------- */

static bool ns_own_active(const struct ns *s)
{
    return s->meta != NULL && s->own != NULL;
}

bool ns_bundle_owned(struct ns *s, const char *tenant_ns, const char *range)
{
    if (!ns_own_active(s))
        return !s->shutting_down;
    char *key = mg_asprintf("%s/%s", tenant_ns, range);
    struct own_bundle *b = mg_map_get_str(&s->own->bundles, key);
    mg_free(key);
    return b && b->state == OWN_OWNED;
}

bool ns_topic_owned(struct ns *s, const struct topic_name *n)
{
    if (!ns_own_active(s))
        return !s->shutting_down;
    char *key = ns_own_topic_key(s, n);
    if (!key)
        return false;
    struct own_bundle *b = mg_map_get_str(&s->own->bundles, key);
    mg_free(key);
    return b && b->state == OWN_OWNED;
}

const char *ns_owned_bundle_next(struct ns *s, size_t *pos)
{
    if (!s->own)
        return NULL;
    const char *k;
    void *v;
    while (mg_map_next(&s->own->bundles, pos, &k, NULL, &v))
        if (((struct own_bundle *)v)->state == OWN_OWNED)
            return k;
    return NULL;
}

int ns_owned_bundles(const struct ns *s)
{
    return s->own ? s->own->n_owned : 0;
}

static void ns_own_bundle_free(struct own_bundle *b)
{
    MG_ASSERT(!b->waiters && !b->checking);
    mg_timer_fini(&b->flush);
    mg_timer_fini(&b->check);
    mg_free(b->key);
    mg_free(b->path);
    mg_free(b);
}

/* Take b out of the table (it stays allocated while a request holds it). */
static void ns_own_bundle_drop(struct own_bundle *b)
{
    struct ns_own *o = b->own;
    if (b->in_table) {
        mg_map_del_str(&o->bundles, b->key);
        b->in_table = false;
        if (b->state == OWN_OWNED)
            o->n_owned--;
    }
    mg_timer_stop(&b->flush);
    mg_timer_stop(&b->check);
    if (b->watch) {
        meta_unwatch(o->s ? o->s->meta : NULL, b->watch);
        b->watch = NULL;
    }
    if (!b->in_flight && !b->waiters && !b->checking)
        ns_own_bundle_free(b);
}

static void ns_own_bundle_set_state(struct own_bundle *b, enum own_state st)
{
    if (b->in_table && b->state == OWN_OWNED)
        b->own->n_owned--;
    b->state = st;
    if (b->in_table && st == OWN_OWNED)
        b->own->n_owned++;
}

/* Close every loaded topic of bundle key (NULL: every topic), in slices that yield to the
 * loop (ns_unload_topics); ns_unload_pending tells when they are closed. Names first:
 * unloading changes the registry. */
static void ns_own_unload_topics(struct ns *s, const char *key)
{
    struct topic_registry *reg = s->topics;
    if (!reg)
        return;
    size_t pos = 0, n = 0, cap = 0;
    char **names = NULL;
    struct topic *t;
    while ((t = topic_next(reg, &pos))) {
        if (key) {
            struct topic_name tn;
            if (topic_name_parse(topic_full_name(t), &tn) < 0)
                continue;
            char *k = ns_own_topic_key(s, &tn);
            topic_name_fini(&tn);
            bool match = k && strcmp(k, key) == 0;
            mg_free(k);
            if (!match)
                continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            names = mg_realloc(names, cap * sizeof *names);
        }
        names[n++] = mg_strdup(topic_full_name(t));
    }
    ns_unload_topics(s, names, n);
}

/* The bundles of the table, in an array (owned: mg_free) of *n: dropping one changes the
 * table. */
static struct own_bundle **ns_own_bundle_list(struct ns_own *o, int *n)
{
    size_t pos = 0;
    void *v;
    *n = 0;
    struct own_bundle **list = o->bundles.count ? mg_malloc(o->bundles.count * sizeof *list) : NULL;
    while (mg_map_next(&o->bundles, &pos, NULL, NULL, &v))
        list[(*n)++] = v;
    return list;
}

/* Every bundle is gone (session expired): stop serving all of them now. */
static void ns_own_drop_all(struct ns *s, const char *why)
{
    struct ns_own *o = s->own;
    int n;
    struct own_bundle **list = ns_own_bundle_list(o, &n);
    for (int i = 0; i < n; i++) {
        if (list[i]->state != OWN_ACQUIRING)
            MG_WARN(MOD, "bundle %s lost (%s): closing its topics", list[i]->key, why);
        if (list[i]->unload_cb) {
            ns_done_cb cb = list[i]->unload_cb;
            list[i]->unload_cb = NULL;
            cb(list[i]->unload_data, 0); /* the key is gone with the session */
        }
        ns_own_bundle_drop(list[i]);
    }
    mg_free(list);
    ns_own_unload_topics(s, NULL);
}

/* ---- JSON of the keys ------------------------------------------------------------------------ */

/* j (consumed) with this broker's TLS URLs under the names given (when TLS is on), as
 * compact text (json_dumps's: free it). */
static char *ns_own_dump_with_tls(struct ns *s, json_t *j, const char *url_key, const char *web_key)
{
    if (s->broker_url_tls)
        json_object_set_new(j, url_key, json_string(s->broker_url_tls));
    if (s->web_url_tls)
        json_object_set_new(j, web_key, json_string(s->web_url_tls));
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return text;
}

static char *ns_own_ownership_json(struct ns *s)
{
    json_t *j = json_pack("{s:s,s:s,s:b,s:{}}", "nativeUrl", ns_broker_url(s), "httpUrl",
                          ns_web_url(s), "disabled", 0, "advertisedListeners");
    return ns_own_dump_with_tls(s, j, "nativeUrlTls", "httpUrlTls");
}

static char *ns_own_report_json(struct ns *s)
{
    struct ns_own *o = s->own;
    int topics = 0, producers = 0, consumers = 0;
    int64_t in = 0, out = 0;
    struct topic_registry *reg = s->topics;
    size_t pos = 0;
    struct topic *t;
    while (reg && (t = topic_next(reg, &pos))) {
        struct topic_stats st;
        topic_get_stats(t, &st);
        topics++;
        producers += st.n_producers;
        consumers += st.n_consumers;
        in += st.msg_in_counter;
        out += st.msg_out_counter;
    }
    uint64_t now = mg_loop_mono_ms(o->loop);
    double secs = o->last_report_ms ? (double)(now - o->last_report_ms) / 1000.0 : 0;
    double rate_in = secs > 0 && in >= o->last_in ? (double)(in - o->last_in) / secs : 0;
    double rate_out = secs > 0 && out >= o->last_out ? (double)(out - o->last_out) / secs : 0;
    o->last_in = in;
    o->last_out = out;
    o->last_report_ms = now;
    json_t *j =
        json_pack("{s:s,s:s,s:s,s:i,s:i,s:i,s:i,s:i,s:f,s:f,s:I}", "webServiceUrl", ns_web_url(s),
                  "pulsarServiceUrl", ns_broker_url(s), "brokerVersionString", PACKAGE_VERSION,
                  "numBundles", o->n_owned, "numTopics", topics, "numProducers", producers,
                  "numConsumers", consumers, "webServicePort", s->web_port, "msgRateIn", rate_in,
                  "msgRateOut", rate_out, "lastUpdate", (json_int_t)now);
    return ns_own_dump_with_tls(s, j, "pulsarServiceUrlTls", "webServiceUrlTls");
}

/* ---- registration ---------------------------------------------------------------------------- */

static void ns_own_register(struct ns *s);

struct own_op {         /* a fire-and-forget store request */
    struct ns_own *own; /* counted reference */
    struct meta_req req;
};

static void ns_own_register_done(struct meta_req *req, int status)
{
    struct own_op *op = req->data;
    struct ns_own *o = op->own;
    o->reg_in_flight = false;
    if (o->s && status < 0 && status != -MG_ECANCELED)
        MG_WARN(MOD, "broker registration %s not written: %s", o->reg_path, mg_strerror(status));
    bool again = o->reg_again && o->s && !o->releasing_all;
    o->reg_again = false;
    meta_req_fini(req);
    mg_free(op);
    struct ns *s = o->s;
    ns_own_unref(o);
    if (again)
        ns_own_register(s);
}

/* Write the registration (creating the ephemeral key if it is missing). */
static void ns_own_register(struct ns *s)
{
    struct ns_own *o = s->own;
    if (!ns_own_active(s) || o->releasing_all)
        return;
    if (o->reg_in_flight) {
        o->reg_again = true;
        return;
    }
    char *text = ns_own_report_json(s);
    struct own_op *op = mg_calloc(1, sizeof *op);
    op->own = o;
    op->req.data = op;
    int rc = meta_put(s->meta, o->reg_path, text, strlen(text), META_VERSION_ANY,
                      META_EPHEMERAL | META_CREATE_PARENTS, &op->req, ns_own_register_done);
    free(text);
    if (rc < 0) {
        MG_WARN(MOD, "broker registration %s refused: %s", o->reg_path, mg_strerror(rc));
        mg_free(op);
        return;
    }
    ns_own_ref(o);
    o->reg_in_flight = true;
}

static void ns_own_report_cb(struct mg_timer *t, void *arg)
{
    struct ns *s = arg;
    mg_timer_start(t, (uint64_t)s->cfg->load_balancer_report_interval_ms);
    ns_own_register(s);
}

static void ns_own_disconnected_too_long(struct mg_timer *t, void *arg)
{
    (void)t;
    struct ns *s = arg;
    if (s->own->connected)
        return;
    MG_WARN(MOD,
            "metadata store unreachable for the session timeout (%d ms): the session "
            "must have expired; dropping every bundle",
            s->cfg->zookeeper_session_timeout_ms);
    ns_own_drop_all(s, "session timeout while disconnected");
}

void ns_session_event(struct ns *s, int ev)
{
    struct ns_own *o = s->own;
    if (!ns_own_active(s))
        return;
    switch ((enum meta_session_event)ev) {
    case META_SESSION_CONNECTED:
    case META_SESSION_RECONNECTED:
        o->connected = true;
        mg_timer_stop(&o->disc);
        if (ev == META_SESSION_CONNECTED) /* a new session: the registration is gone */
            ns_own_register(s);
        break;
    case META_SESSION_DISCONNECTED: {
        o->connected = false;
        mg_timer_start(&o->disc, (uint64_t)s->cfg->zookeeper_session_timeout_ms);
        break;
    }
    case META_SESSION_EXPIRED:
        o->connected = false;
        mg_timer_stop(&o->disc);
        ns_own_drop_all(s, "metadata store session expired");
        break;
    }
}

void ns_own_start(struct ns *s)
{
    struct ns_own *o = mg_calloc(1, sizeof *o);
    o->refs = 1;
    o->s = s;
    o->loop = s->loop;
    o->connected = true;
    mg_map_init(&o->bundles);
    s->own = o;
    if (!s->meta)
        return;
    o->reg_path = mg_asprintf(OWN_BROKERS_PATH "/%s", ns_broker_id(s));
    mg_timer_init(&o->report, o->loop, ns_own_report_cb, s);
    mg_timer_init(&o->disc, o->loop, ns_own_disconnected_too_long, s);
    mg_timer_init(&o->release, o->loop, ns_own_release_all_poll, s);
    mg_timer_start(&o->report, (uint64_t)s->cfg->load_balancer_report_interval_ms);
    ns_own_register(s);
    MG_INFO(MOD, "registering broker %s (%s)", ns_broker_id(s), ns_broker_url(s));
}

/* ---- revalidation ------------------------------------------------------------------------- */

/* An owned bundle's key is watched. When it changes or goes away without this broker doing
 * it (an operator deleted it, the store lost it) the key is read again, as Pulsar's
 * resource locks revalidate: still naming this broker, nothing happens; gone, it is
 * created again with this broker's value (nobody else took the bundle yet, so it stays
 * here); naming another broker, the bundle was taken and is dropped at once (its topics
 * closed, clients look up again). A check the store cannot answer is retried every
 * OWN_CHECK_RETRY_MS while the bundle is owned. */

static bool ns_own_check_live(const struct own_bundle *b)
{
    const struct ns_own *o = b->own;
    return o->s && b->in_table && b->state == OWN_OWNED && !o->releasing_all;
}

static void ns_own_check_later(struct own_bundle *b)
{
    if (ns_own_check_live(b))
        mg_timer_start(&b->check, OWN_CHECK_RETRY_MS);
}

/* The request of b's check is over: false (b freed or not to be touched) when the bundle is
 * no longer live. */
static bool ns_own_check_end(struct own_bundle *b)
{
    struct ns_own *o = b->own;
    b->checking = false;
    meta_req_fini(&b->check_req);
    bool live = ns_own_check_live(b);
    if (!b->in_table && !b->in_flight && !b->waiters)
        ns_own_bundle_free(b);
    ns_own_unref(o);
    return live;
}

/* Another broker holds b's key now: stop serving the bundle. */
static void ns_own_bundle_lost(struct own_bundle *b, const char *owner)
{
    struct ns *s = b->own->s;
    char *key = mg_strdup(b->key);
    MG_WARN(MOD, "bundle %s: its ownership key names %s now: closing its topics", key, owner);
    ns_own_bundle_drop(b);
    ns_own_unload_topics(s, key);
    mg_free(key);
}

static void ns_own_orphan_deleted(struct meta_req *req, int status)
{
    struct own_op *op = req->data;
    (void)status; /* gone either way; a leftover goes with the session */
    meta_req_fini(req);
    ns_own_unref(op->own);
    mg_free(op);
}

static void ns_own_check_created(struct meta_req *req, int status)
{
    struct own_bundle *b = req->data;
    struct ns_own *o = b->own;
    int64_t version = req->stat.version;
    if (!o->s || !b->in_table || b->state != OWN_OWNED || o->releasing_all) {
        /* dropped while the create was in flight: take back what was just created */
        if (status == 0 && o->s) {
            struct own_op *op = mg_calloc(1, sizeof *op);
            op->own = o;
            op->req.data = op;
            if (meta_delete(o->s->meta, b->path, version, &op->req, ns_own_orphan_deleted) == 0)
                ns_own_ref(o);
            else
                mg_free(op);
        }
        ns_own_check_end(b);
        return;
    }
    if (status == 0) {
        b->version = version;
        MG_WARN(MOD, "bundle %s: its ownership key had been deleted; written again", b->key);
    }
    if (!ns_own_check_end(b))
        return;
    if (status == 0 || status == -MG_EEXIST)
        ns_own_check(b); /* created by someone else meanwhile: read whose it is */
    else
        ns_own_check_later(b);
}

static void ns_own_check_read(struct meta_req *req, int status)
{
    struct own_bundle *b = req->data;
    struct ns_own *o = b->own;
    if (!ns_own_check_live(b)) {
        ns_own_check_end(b);
        return;
    }
    if (status == -MG_ENOTFOUND) {
        meta_req_fini(req);
        char *text = ns_own_ownership_json(o->s);
        int rc = meta_put(o->s->meta, b->path, text, strlen(text), META_VERSION_NONE,
                          META_EPHEMERAL | META_CREATE_PARENTS, req, ns_own_check_created);
        free(text);
        if (rc == 0)
            return;
        ns_own_check_end(b);
        ns_own_check_later(b);
        return;
    }
    if (status < 0) {
        if (ns_own_check_end(b))
            ns_own_check_later(b);
        return;
    }
    json_t *j = json_loadb(req->value, req->len, 0, NULL);
    const char *url = j ? json_string_value(json_object_get(j, "nativeUrl")) : NULL;
    char *owner = mg_strdup(url ? url : "an unknown owner");
    json_decref(j);
    bool ours = url && strcmp(owner, ns_broker_url(o->s)) == 0;
    int64_t version = req->stat.version;
    if (ns_own_check_end(b)) {
        if (ours)
            b->version = version; /* rewritten with our own value: delete that one later */
        else
            ns_own_bundle_lost(b, owner);
    }
    mg_free(owner);
}

/* Arm the watch on b's key and read it (the watch first: no change can slip in between). */
static void ns_own_check(struct own_bundle *b)
{
    struct ns_own *o = b->own;
    if (b->checking || !ns_own_check_live(b))
        return;
    if (!o->connected) {
        ns_own_check_later(b);
        return;
    }
    if (!b->watch)
        b->watch = meta_watch(o->s->meta, b->path, false, ns_own_key_event, b);
    b->check_req.data = b;
    if (!b->watch || meta_get(o->s->meta, b->path, &b->check_req, ns_own_check_read) < 0) {
        ns_own_check_later(b);
        return;
    }
    b->checking = true;
    ns_own_ref(o);
}

static void ns_own_key_event(struct meta_store *m, const char *path, enum meta_watch_event ev,
                             void *data)
{
    struct own_bundle *b = data;
    (void)m;
    (void)path;
    (void)ev;
    b->watch = NULL; /* fired: the store frees it */
    ns_own_check(b);
}

static void ns_own_check_due(struct mg_timer *t, void *arg)
{
    (void)t;
    ns_own_check(arg);
}

/* ---- lookups ------------------------------------------------------------------------------- */

static void ns_own_lookup_free(struct own_lookup *l)
{
    struct ns_own *o = l->own;
    meta_req_fini(&l->req);
    mg_free(l->key);
    mg_free(l->path);
    mg_free(l);
    ns_own_unref(o);
}

static void ns_own_lookup_finish(struct own_lookup *l, int status, const char *url, const char *msg)
{
    l->cb(l->data, status, url, msg);
    ns_own_lookup_free(l);
}

static void ns_own_lookup_failf(struct own_lookup *l, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void ns_own_lookup_failf(struct own_lookup *l, int status, const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ns_own_lookup_finish(l, status, NULL, msg);
}

static void ns_own_lookup_step(struct own_lookup *l);
static void ns_own_lookup_acquire(struct own_lookup *l);

static void ns_own_acquire_done(struct meta_req *req, int status)
{
    struct own_bundle *b = req->data;
    struct ns_own *o = b->own;
    b->in_flight = false;
    int64_t version = req->stat.version;
    meta_req_fini(req);
    struct own_lookup *w = b->waiters;
    b->waiters = NULL;
    bool live = o->s && b->in_table && b->state == OWN_ACQUIRING && !o->releasing_all;
    if (live && status == 0) {
        b->version = version;
        ns_own_bundle_set_state(b, OWN_OWNED);
        MG_INFO(MOD, "bundle %s acquired", b->key);
        ns_own_check(b); /* watch the key from now on */
    } else if (live) {
        ns_own_bundle_drop(b);
        b = NULL;
    } else {
        ns_own_bundle_drop(b);
        b = NULL;
        if (status == 0)
            status = -MG_ENOTREADY; /* lost while the create was in flight */
    }
    while (w) {
        struct own_lookup *nx = w->next;
        w->next = NULL;
        if (!o->s)
            ns_own_lookup_failf(w, -MG_ECANCELED, "broker shutting down");
        else if (status == 0)
            ns_own_lookup_finish(w, 0, NULL, NULL);
        else if (status == -MG_EEXIST || status == -MG_ENOTREADY)
            ns_own_lookup_step(w); /* someone else won: read who */
        else
            ns_own_lookup_failf(
                w,
                status == -MG_ETIMEDOUT || status == -MG_ECLOSED || status == -MG_EIO
                    ? -MG_ENOTREADY
                    : -MG_EMETA,
                "Cannot take ownership of bundle %s: %s", w->key, mg_strerror(status));
        w = nx;
    }
    ns_own_unref(o);
}

/* Take the bundle here (ephemeral create); lookups of it wait for the one create. */
static void ns_own_lookup_acquire(struct own_lookup *l)
{
    struct ns_own *o = l->own;
    struct ns *s = o->s;
    struct own_bundle *b = mg_map_get_str(&o->bundles, l->key);
    if (b) {
        if (b->state == OWN_OWNED) {
            ns_own_lookup_finish(l, 0, NULL, NULL);
        } else if (b->state == OWN_ACQUIRING) {
            l->next = b->waiters;
            b->waiters = l;
        } else {
            ns_own_lookup_failf(l, -MG_ENOTREADY, "Namespace bundle %s is being unloaded", l->key);
        }
        return;
    }
    if (!o->connected || s->shutting_down) {
        ns_own_lookup_failf(l, -MG_ENOTREADY, "Broker cannot take bundle %s now (%s)", l->key,
                            s->shutting_down ? "shutting down" : "metadata store disconnected");
        return;
    }
    b = mg_calloc(1, sizeof *b);
    b->own = o;
    b->key = mg_strdup(l->key);
    b->path = mg_strdup(l->path);
    b->state = OWN_ACQUIRING;
    mg_timer_init(&b->flush, o->loop, ns_own_unload_poll, b);
    mg_timer_init(&b->check, o->loop, ns_own_check_due, b);
    b->req.data = b;
    b->waiters = l;
    char *text = ns_own_ownership_json(s);
    int rc = meta_put(s->meta, b->path, text, strlen(text), META_VERSION_NONE,
                      META_EPHEMERAL | META_CREATE_PARENTS, &b->req, ns_own_acquire_done);
    free(text);
    if (rc < 0) {
        b->waiters = NULL;
        ns_own_bundle_free(b);
        ns_own_lookup_failf(l, -MG_EMETA, "Cannot take ownership of bundle %s: %s", l->key,
                            mg_strerror(rc));
        return;
    }
    b->in_flight = true;
    b->in_table = true;
    mg_map_put_str(&o->bundles, b->key, b);
    ns_own_ref(o);
}

/* Choose the least-loaded live broker for an unowned bundle (ties: smallest id). */
static void ns_own_lookup_decide(struct own_lookup *l)
{
    struct ns_own *o = l->own;
    struct ns *s = o->s;
    const char *self = ns_broker_id(s);
    int best = -1; /* -1 = this broker */
    int best_load = o->n_owned;
    const char *best_id = self;
    for (int i = 0; i < o->n_brokers; i++) {
        struct own_broker *br = &o->brokers[i];
        if (strcmp(br->id, self) == 0 || !br->url)
            continue;
        int load = br->bundles + br->assigned;
        if (load < best_load || (load == best_load && strcmp(br->id, best_id) < 0)) {
            best = i;
            best_load = load;
            best_id = br->id;
        }
    }
    if (best < 0) {
        ns_own_lookup_acquire(l);
        return;
    }
    o->brokers[best].assigned++;
    MG_DEBUG(MOD, "bundle %s assigned to %s", l->key, o->brokers[best].id);
    ns_own_lookup_finish(l, 0, o->brokers[best].url, NULL);
}

struct own_refresh {
    struct ns_own *own; /* counted reference */
    struct meta_req list;
    struct meta_req *gets; /* owned: one per child */
    int n, pending;
    struct own_broker *found; /* owned */
    int status;
};

static void ns_own_refresh_finish(struct own_refresh *r)
{
    struct ns_own *o = r->own;
    o->refreshing = false;
    if (r->status == 0) {
        ns_own_brokers_clear(o);
        o->brokers = r->found;
        o->n_brokers = r->n;
        r->found = NULL;
        o->brokers_ms = mg_loop_mono_ms(o->loop);
    }
    for (int i = 0; r->found && i < r->n; i++) {
        mg_free(r->found[i].id);
        mg_free(r->found[i].url);
        mg_free(r->found[i].web);
        mg_free(r->found[i].tls);
        mg_free(r->found[i].web_tls);
    }
    mg_free(r->found);
    for (int i = 0; i < r->n; i++)
        meta_req_fini(&r->gets[i]);
    mg_free(r->gets);
    meta_req_fini(&r->list);
    struct own_lookup *w = o->refresh_waiters;
    o->refresh_waiters = NULL;
    int status = r->status;
    mg_free(r);
    while (w) {
        struct own_lookup *nx = w->next;
        w->next = NULL;
        if (!o->s)
            ns_own_lookup_failf(w, -MG_ECANCELED, "broker shutting down");
        else if (status < 0 && status != -MG_ENOTFOUND)
            ns_own_lookup_failf(w, -MG_EMETA, "Cannot list the live brokers: %s",
                                mg_strerror(status));
        else
            ns_own_lookup_decide(w);
        w = nx;
    }
    ns_own_unref(o);
}

static void ns_own_refresh_got(struct meta_req *req, int status)
{
    struct own_refresh *r = req->data;
    int i = (int)(req - r->gets);
    if (status == 0) {
        json_error_t err;
        json_t *j = json_loadb(req->value, req->len, 0, &err);
        const char *url = j ? json_string_value(json_object_get(j, "pulsarServiceUrl")) : NULL;
        const char *web = j ? json_string_value(json_object_get(j, "webServiceUrl")) : NULL;
        json_t *nb = j ? json_object_get(j, "numBundles") : NULL;
        if (url)
            r->found[i].url = mg_strdup(url);
        if (web)
            r->found[i].web = mg_strdup(web);
        const char *tls = j ? json_string_value(json_object_get(j, "pulsarServiceUrlTls")) : NULL;
        if (tls)
            r->found[i].tls = mg_strdup(tls);
        const char *web_tls = j ? json_string_value(json_object_get(j, "webServiceUrlTls")) : NULL;
        if (web_tls)
            r->found[i].web_tls = mg_strdup(web_tls);
        r->found[i].bundles = json_is_integer(nb) ? (int)json_integer_value(nb) : 0;
        json_decref(j);
    }
    if (--r->pending == 0)
        ns_own_refresh_finish(r);
}

static void ns_own_refresh_listed(struct meta_req *req, int status)
{
    struct own_refresh *r = req->data;
    struct ns_own *o = r->own;
    if (status < 0 || !o->s) {
        r->status = status < 0 ? status : -MG_ECANCELED;
        r->n = 0;
        ns_own_refresh_finish(r);
        return;
    }
    r->n = req->n_children;
    r->found = mg_calloc((size_t)r->n + 1, sizeof *r->found);
    r->gets = mg_calloc((size_t)r->n + 1, sizeof *r->gets);
    r->pending = 1; /* ours, dropped below */
    for (int i = 0; i < r->n; i++) {
        r->found[i].id = mg_strdup(req->children[i]);
        char *path = mg_asprintf(OWN_BROKERS_PATH "/%s", req->children[i]);
        r->gets[i].data = r;
        if (meta_get(o->s->meta, path, &r->gets[i], ns_own_refresh_got) == 0)
            r->pending++;
        mg_free(path);
    }
    if (--r->pending == 0)
        ns_own_refresh_finish(r);
}

/* The bundle is unowned: decide with a fresh enough broker list. */
static void ns_own_lookup_unowned(struct own_lookup *l)
{
    struct ns_own *o = l->own;
    if (l->authoritative) {
        ns_own_lookup_acquire(l);
        return;
    }
    if (o->brokers_ms && mg_loop_mono_ms(o->loop) - o->brokers_ms < NS_OWN_BROKERS_CACHE_MS) {
        ns_own_lookup_decide(l);
        return;
    }
    l->next = o->refresh_waiters;
    o->refresh_waiters = l;
    if (o->refreshing)
        return;
    struct own_refresh *r = mg_calloc(1, sizeof *r);
    r->own = o;
    r->list.data = r;
    if (meta_children(o->s->meta, OWN_BROKERS_PATH, &r->list, ns_own_refresh_listed) < 0) {
        o->refresh_waiters = l->next;
        l->next = NULL;
        mg_free(r);
        ns_own_lookup_decide(l); /* decide alone: this broker */
        return;
    }
    ns_own_ref(o);
    o->refreshing = true;
}

static void ns_own_stale_deleted(struct meta_req *req, int status)
{
    struct own_lookup *l = req->data;
    (void)status; /* gone either way, or someone else's now: read again */
    meta_req_fini(req);
    if (!l->own->s)
        ns_own_lookup_failf(l, -MG_ECANCELED, "broker shutting down");
    else
        ns_own_lookup_step(l);
}

static void ns_own_lookup_read(struct meta_req *req, int status)
{
    struct own_lookup *l = req->data;
    struct ns_own *o = l->own;
    struct ns *s = o->s;
    if (!s) {
        ns_own_lookup_failf(l, -MG_ECANCELED, "broker shutting down");
        return;
    }
    if (status == -MG_ENOTFOUND) {
        meta_req_fini(req);
        ns_own_lookup_unowned(l);
        return;
    }
    if (status < 0) {
        ns_own_lookup_failf(l,
                            status == -MG_ETIMEDOUT || status == -MG_ECLOSED || status == -MG_EIO
                                ? -MG_ENOTREADY
                                : -MG_EMETA,
                            "Cannot read the owner of bundle %s: %s", l->key, mg_strerror(status));
        return;
    }
    json_error_t err;
    json_t *j = json_loadb(req->value, req->len, 0, &err);
    const char *url = j ? json_string_value(json_object_get(j, "nativeUrl")) : NULL;
    bool disabled = j && json_is_true(json_object_get(j, "disabled"));
    int64_t version = req->stat.version;
    if (!url) {
        json_decref(j);
        ns_own_lookup_failf(l, -MG_EMETA, "Bad ownership data for bundle %s", l->key);
        return;
    }
    if (disabled) {
        json_decref(j);
        ns_own_lookup_failf(l, -MG_ENOTREADY, "Namespace bundle %s is being unloaded", l->key);
        return;
    }
    if (strcmp(url, ns_broker_url(s)) != 0) {
        char *u = mg_strdup(url);
        json_decref(j);
        ns_own_lookup_finish(l, 0, u, NULL);
        mg_free(u);
        return;
    }
    struct own_bundle *b = mg_map_get_str(&o->bundles, l->key);
    if (b) { /* ours: acquired (or being released) since the read was sent */
        json_decref(j);
        meta_req_fini(req);
        ns_own_lookup_acquire(l);
        return;
    }
    /* It names this broker's address but is not ours: a previous process on this address
     * that did not live to delete it (its session has not expired yet). Nobody else can
     * serve this address, so delete it and take the bundle. */
    MG_INFO(MOD, "bundle %s: removing a stale ownership key of a previous process on %s", l->key,
            url);
    json_decref(j); /* url points into j */
    meta_req_fini(req);
    if (meta_delete(s->meta, l->path, version, &l->req, ns_own_stale_deleted) < 0)
        ns_own_lookup_failf(l, -MG_EMETA, "Cannot remove the stale owner of bundle %s", l->key);
}

/* One round: owned here / being acquired here / read the key. */
static void ns_own_lookup_step(struct own_lookup *l)
{
    struct ns_own *o = l->own;
    struct ns *s = o->s;
    if (++l->tries > OWN_MAX_TRIES) {
        ns_own_lookup_failf(l, -MG_ENOTREADY, "Ownership of bundle %s keeps changing; retry",
                            l->key);
        return;
    }
    struct own_bundle *b = mg_map_get_str(&o->bundles, l->key);
    if (b) {
        ns_own_lookup_acquire(l); /* owned: Connect; acquiring: wait; releasing: not ready */
        return;
    }
    l->req.data = l;
    int rc = meta_get(s->meta, l->path, &l->req, ns_own_lookup_read);
    if (rc < 0)
        ns_own_lookup_failf(l, -MG_EMETA, "Cannot read the owner of bundle %s: %s", l->key,
                            mg_strerror(rc));
}

int ns_lookup(struct ns *s, const struct topic_name *n, bool authoritative, ns_lookup_cb cb,
              void *data)
{
    if (!ns_own_active(s))
        return s->shutting_down ? -MG_ENOTREADY : 1;
    char *key = ns_own_topic_key(s, n);
    if (!key)
        return -MG_ENOTFOUND;
    struct own_bundle *b = mg_map_get_str(&s->own->bundles, key);
    if (b && b->state == OWN_OWNED) {
        mg_free(key);
        return 1;
    }
    if (s->shutting_down || (b && b->state == OWN_RELEASING)) {
        mg_free(key);
        return -MG_ENOTREADY;
    }
    struct own_lookup *l = mg_calloc(1, sizeof *l);
    l->own = s->own;
    ns_own_ref(l->own);
    l->key = key;
    l->path = mg_asprintf("/namespace/%s", key);
    l->authoritative = authoritative;
    l->cb = cb;
    l->data = data;
    if (b) { /* being acquired: wait for it (completes after we return) */
        l->next = b->waiters;
        b->waiters = l;
        return 0;
    }
    l->tries = 1;
    l->req.data = l;
    int rc = meta_get(s->meta, l->path, &l->req, ns_own_lookup_read);
    if (rc < 0) {
        ns_own_lookup_free(l);
        return -MG_EMETA;
    }
    return 0;
}

/* The listed broker whose service URL is broker_url, or NULL (not listed, or no list). */
static const struct own_broker *ns_own_listed(const struct ns *s, const char *broker_url)
{
    const struct ns_own *o = s->own;
    for (int i = 0; o && i < o->n_brokers; i++)
        if (o->brokers[i].url && strcmp(o->brokers[i].url, broker_url) == 0)
            return &o->brokers[i];
    return NULL;
}

const char *ns_broker_web_url(struct ns *s, const char *broker_url)
{
    if (strcmp(broker_url, ns_broker_url(s)) == 0)
        return ns_web_url(s);
    const struct own_broker *b = ns_own_listed(s, broker_url);
    return b ? b->web : NULL;
}

const char *ns_broker_tls_url(struct ns *s, const char *broker_url)
{
    if (strcmp(broker_url, ns_broker_url(s)) == 0)
        return ns_broker_url_tls(s);
    const struct own_broker *b = ns_own_listed(s, broker_url);
    return b ? b->tls : NULL;
}

const char *ns_broker_web_url_tls(struct ns *s, const char *broker_url)
{
    if (strcmp(broker_url, ns_broker_url(s)) == 0)
        return ns_web_url_tls(s);
    const struct own_broker *b = ns_own_listed(s, broker_url);
    return b ? b->web_tls : NULL;
}

/* ---- queries of the store for admin (the owner of a bundle, the live brokers) ------------- */

/* One query: answered from the store's reply, or (no store in use) by this broker alone on
 * the next loop pass. */
struct own_query {
    struct ns_own *own; /* counted reference */
    union {
        ns_owner_cb owner;
        ns_brokers_cb brokers;
    } cb;
    void *data;
    struct meta_req req;
};

/* Start q: a read of path (children: a listing) with read as its callback, or, when no store
 * is in use, local on the next loop pass. On failure q is freed and the error returned. */
static int ns_own_query_start(struct ns *s, struct own_query *q, const char *path, bool children,
                              meta_cb read, void (*local)(void *q))
{
    q->own = s->own;
    q->req.data = q;
    int rc;
    if (!ns_own_active(s)) {
        rc = ns_later(s, local, q);
    } else {
        rc = children ? meta_children(s->meta, path, &q->req, read)
                      : meta_get(s->meta, path, &q->req, read);
    }
    if (rc < 0) {
        mg_free(q);
        return rc;
    }
    ns_own_ref(q->own);
    return 0;
}

/* q answered: free it and its request. */
static void ns_own_query_free(struct own_query *q)
{
    struct ns_own *o = q->own;
    meta_req_fini(&q->req);
    mg_free(q);
    ns_own_unref(o);
}

static void ns_own_owner_read(struct meta_req *req, int status)
{
    struct own_query *q = req->data;
    struct ns_own *o = q->own;
    struct ns_owner info = {.kind = NS_OWNER_NONE};
    json_t *j = NULL;
    if (status == 0) {
        json_error_t err;
        j = json_loadb(req->value, req->len, 0, &err);
        info.broker_url = j ? json_string_value(json_object_get(j, "nativeUrl")) : NULL;
        info.web_url = j ? json_string_value(json_object_get(j, "httpUrl")) : NULL;
        info.web_url_tls = j ? json_string_value(json_object_get(j, "httpUrlTls")) : NULL;
        info.disabled = j && json_is_true(json_object_get(j, "disabled"));
        if (!info.broker_url)
            status = -MG_EMETA;
        else
            info.kind = o->s && strcmp(info.broker_url, ns_broker_url(o->s)) == 0 ? NS_OWNER_HERE
                                                                                  : NS_OWNER_OTHER;
    } else if (status == -MG_ENOTFOUND) {
        status = 0;
    } else if (status != -MG_ECANCELED) {
        status = -MG_EMETA;
    }
    q->cb.owner(q->data, status, &info);
    json_decref(j);
    ns_own_query_free(q);
}

static void ns_own_owner_local(void *arg)
{
    struct own_query *q = arg;
    struct ns *s = q->own->s;
    struct ns_owner info = {.kind = NS_OWNER_HERE};
    if (s) {
        info.broker_url = ns_broker_url(s);
        info.web_url = ns_web_url(s);
        info.web_url_tls = ns_web_url_tls(s);
    }
    q->cb.owner(q->data, s ? 0 : -MG_ECANCELED, &info);
    ns_own_query_free(q);
}

int ns_bundle_owner(struct ns *s, const char *tenant_ns, const char *range, ns_owner_cb cb,
                    void *data)
{
    if (!ns_own_valid_range(range))
        return -MG_EINVAL;
    if (!ns_namespace_exists(s, tenant_ns))
        return -MG_ENOTFOUND;
    struct own_query *q = mg_calloc(1, sizeof *q);
    q->cb.owner = cb;
    q->data = data;
    char *path = mg_asprintf("/namespace/%s/%s", tenant_ns, range);
    int rc = ns_own_query_start(s, q, path, false, ns_own_owner_read, ns_own_owner_local);
    mg_free(path);
    return rc;
}

static void ns_own_brokers_listed(struct meta_req *req, int status)
{
    struct own_query *q = req->data;
    if (status == -MG_ENOTFOUND)
        status = 0;
    q->cb.brokers(q->data, status, status == 0 ? req->children : NULL,
                  status == 0 ? req->n_children : 0);
    ns_own_query_free(q);
}

static void ns_own_brokers_local(void *arg)
{
    struct own_query *q = arg;
    struct ns *s = q->own->s;
    char *id = s ? mg_strdup(ns_broker_id(s)) : NULL;
    q->cb.brokers(q->data, s ? 0 : -MG_ECANCELED, &id, id ? 1 : 0);
    mg_free(id);
    ns_own_query_free(q);
}

int ns_list_brokers(struct ns *s, ns_brokers_cb cb, void *data)
{
    if (!s->own)
        return -MG_ECLOSED;
    struct own_query *q = mg_calloc(1, sizeof *q);
    q->cb.brokers = cb;
    q->data = data;
    return ns_own_query_start(s, q, OWN_BROKERS_PATH, true, ns_own_brokers_listed,
                              ns_own_brokers_local);
}

/* ---- unload and release ---------------------------------------------------------------------- */

/* The release of b is over (status: its key's delete): out of the table, its unload's
 * caller told. */
static void ns_own_release_done(struct own_bundle *b, int status)
{
    struct ns_own *o = b->own;
    ns_done_cb cb = b->unload_cb;
    void *cb_data = b->unload_data;
    b->unload_cb = NULL;
    if (o->releasing_all)
        o->release_pending--;
    ns_own_bundle_drop(b);
    if (cb)
        cb(cb_data, status);
}

static void ns_own_release_deleted(struct meta_req *req, int status)
{
    struct own_bundle *b = req->data;
    struct ns_own *o = b->own;
    b->in_flight = false;
    meta_req_fini(req);
    if (status == -MG_ENOTFOUND)
        status = 0;
    if (status < 0 && status != -MG_ECANCELED)
        MG_WARN(MOD, "bundle %s: ownership key not deleted: %s (it goes with the session)", b->key,
                mg_strerror(status));
    else if (status == 0)
        MG_INFO(MOD, "bundle %s released", b->key);
    ns_own_release_done(b, o->s ? status : -MG_ECANCELED);
    ns_own_unref(o);
}

static void ns_own_release_delete(struct own_bundle *b)
{
    struct ns_own *o = b->own;
    b->req.data = b;
    int rc = o->s ? meta_delete(o->s->meta, b->path, b->version, &b->req, ns_own_release_deleted)
                  : -MG_ECANCELED;
    if (rc < 0) {
        ns_own_release_done(b, rc);
        return;
    }
    b->in_flight = true;
    ns_own_ref(o);
}

/* Topics closed for an unload or the shutdown release: true (t armed to look again) while
 * they are still being closed (in slices: the flush bound starts once they are) or, until
 * *deadline_ms, their cursors' position writes are landing. */
static bool ns_own_flush_wait(struct ns_own *o, struct mg_timer *t, uint64_t *deadline_ms)
{
    struct ns *s = o->s;
    uint64_t now = mg_loop_mono_ms(o->loop);
    if (s && ns_unload_pending(s) > 0)
        *deadline_ms = now + NS_OWN_FLUSH_MAX_MS;
    else if (!s || !s->mlf || ml_factory_pending(s->mlf) == 0 || now >= *deadline_ms)
        return false;
    mg_timer_start(t, OWN_POLL_MS);
    return true;
}

static void ns_own_unload_poll(struct mg_timer *t, void *arg)
{
    struct own_bundle *b = arg;
    if (!ns_own_flush_wait(b->own, t, &b->flush_deadline_ms))
        ns_own_release_delete(b);
}

/* Close b's topics, then (once cursor writes landed, bounded) delete its key. */
static void ns_own_bundle_release(struct ns *s, struct own_bundle *b)
{
    ns_own_bundle_set_state(b, OWN_RELEASING);
    MG_INFO(MOD, "unloading bundle %s", b->key);
    ns_own_unload_topics(s, b->key);
    b->flush_deadline_ms = mg_loop_mono_ms(s->loop) + NS_OWN_FLUSH_MAX_MS;
    mg_timer_start(&b->flush, 0);
}

int ns_bundle_unload(struct ns *s, const char *tenant_ns, const char *range, ns_done_cb cb,
                     void *data)
{
    if (!ns_own_valid_range(range))
        return -MG_EINVAL;
    if (!ns_own_active(s))
        return -MG_ENOTSUP; /* no store: this broker is the only one, nothing to move to */
    char *key = mg_asprintf("%s/%s", tenant_ns, range);
    struct own_bundle *b = mg_map_get_str(&s->own->bundles, key);
    mg_free(key);
    if (!b || b->state == OWN_ACQUIRING)
        return -MG_ENOTFOUND;
    if (b->state == OWN_RELEASING)
        return -MG_EBUSY;
    b->unload_cb = cb;
    b->unload_data = data;
    ns_own_bundle_release(s, b);
    return 0;
}

static void ns_own_deregistered(struct meta_req *req, int status)
{
    struct own_op *op = req->data;
    struct ns_own *o = op->own;
    (void)status;
    o->release_pending--;
    meta_req_fini(req);
    mg_free(op);
    ns_own_unref(o);
}

static void ns_own_release_all_poll(struct mg_timer *t, void *arg)
{
    struct ns *s = arg;
    struct ns_own *o = s->own;
    if (ns_own_flush_wait(o, t, &o->release_deadline_ms))
        return;
    /* Cursor positions are stored (or we gave up waiting): give the bundles away. */
    int n;
    struct own_bundle **list = ns_own_bundle_list(o, &n);
    for (int i = 0; i < n; i++) {
        struct own_bundle *b = list[i];
        if (b->in_flight)
            continue; /* an acquisition or an unload: it ends on its own */
        mg_timer_stop(&b->flush);
        o->release_pending++;
        ns_own_release_delete(b);
    }
    mg_free(list);
    struct own_op *op = mg_calloc(1, sizeof *op);
    op->own = o;
    op->req.data = op;
    if (meta_delete(s->meta, o->reg_path, META_VERSION_ANY, &op->req, ns_own_deregistered) == 0) {
        ns_own_ref(o);
        o->release_pending++;
    } else {
        mg_free(op);
    }
    o->released = true;
}

void ns_own_release_all(struct ns *s)
{
    struct ns_own *o = s->own;
    if (!o || o->releasing_all)
        return;
    o->releasing_all = true;
    mg_timer_stop(&o->report);
    size_t pos = 0;
    void *v;
    while (mg_map_next(&o->bundles, &pos, NULL, NULL, &v)) {
        struct own_bundle *b = v;
        if (b->state == OWN_OWNED)
            ns_own_bundle_set_state(b, OWN_RELEASING);
    }
    MG_INFO(MOD, "releasing %zu bundles", o->bundles.count);
    ns_own_unload_topics(s, NULL); /* cursors flush their positions */
    if (!s->meta) {
        o->released = true;
        return;
    }
    o->release_deadline_ms = mg_loop_mono_ms(o->loop) + NS_OWN_FLUSH_MAX_MS;
    mg_timer_start(&o->release, 0);
}

bool ns_own_released(struct ns *s)
{
    struct ns_own *o = s->own;
    return !o || (o->released && o->release_pending <= 0);
}

void ns_own_stop(struct ns *s)
{
    struct ns_own *o = s->own;
    if (!o)
        return;
    size_t wpos = 0;
    void *wv;
    while (mg_map_next(&o->bundles, &wpos, NULL, NULL, &wv)) { /* while the store is known */
        struct own_bundle *b = wv;
        meta_unwatch(s->meta, b->watch);
        b->watch = NULL;
    }
    s->own = NULL;
    o->s = NULL;
    mg_timer_fini(&o->report);
    mg_timer_fini(&o->disc);
    mg_timer_fini(&o->release);
    size_t pos = 0;
    void *v;
    while (mg_map_next(&o->bundles, &pos, NULL, NULL, &v)) {
        struct own_bundle *b = v;
        if (b->unload_cb) {
            ns_done_cb cb = b->unload_cb;
            b->unload_cb = NULL;
            cb(b->unload_data, -MG_ECANCELED);
        }
        ns_own_bundle_drop(b);
    }
    ns_own_unref(o);
}
