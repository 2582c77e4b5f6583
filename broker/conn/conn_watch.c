/*
 * conn_watch.c - topic list watchers of pattern consumers: WATCH_TOPIC_LIST,
 * WATCH_TOPIC_LIST_SUCCESS, WATCH_TOPIC_UPDATE and WATCH_TOPIC_LIST_CLOSE, as Pulsar's
 * TopicListService serves them.
 *
 * Happy path: a client that saw supports_topic_watchers in CONNECTED sends WATCH_TOPIC_LIST
 * {watcher_id, namespace, topics_pattern, topics_hash}. The watcher follows the namespace
 * (ns_topics_watch: the metadata store's view of its topics on every broker), lists its
 * persistent topics, keeps those the pattern matches and answers WATCH_TOPIC_LIST_SUCCESS
 * with them and their hash (no topics when the client's hash is already that one). From then
 * on each matching topic created or deleted is one WATCH_TOPIC_UPDATE carrying the new hash.
 * WATCH_TOPIC_LIST_CLOSE ends it (SUCCESS); so does the connection's close, and a change of
 * the namespace's grants that takes the role's consume permission on it away
 * (conn_watch_recheck, with the producers' and consumers' re-check): the watcher is dropped,
 * no update follows. (Pulsar's TopicListService checks only when the watcher is made; the
 * protocol has no command telling a client its watcher ended, so it is only logged.)
 *
 * Failure modes: pattern evaluation disabled, a pattern longer than
 * subscriptionPatternMaxLength or CONN_MAX_TOPIC_WATCHERS watchers on the connection already
 * answer NotAllowedError; a watcher id in use answers ServiceNotReady, as Pulsar; a pattern
 * that does not compile or that hits PCRE2's match limits on the namespace's topics answers
 * an error and no watcher stays; a namespace that does not exist, TopicNotFound. A topic that
 * hits the match limits later is left out (logged at most once per interval).
 */
#include "config/cfg.h"
#include "conn/conn_int.h"
#include "ns/ns.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"
#include "util/ratelimit.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct conn_watcher {
    LIST_ENTRY(conn_watcher) link;
    struct conn *conn; /* borrowed: the connection frees its watchers when it closes */
    uint64_t id;
    char *ns;                  /* owned: the namespace watched ("t/ns") */
    uint64_t request_id;       /* of the WATCH_TOPIC_LIST, until answered */
    char *client_hash;         /* the client's topics_hash, or NULL */
    bool ready;                /* WATCH_TOPIC_LIST_SUCCESS sent: changes are told */
    struct ns_pattern *pat;    /* owned */
    struct ns_topics_watch *w; /* owned */
    char **topics;             /* the matching topics, sorted, unique */
    int n, cap;
};

/* The watcher's first listing, while the connection is open (by id: the watcher may be gone). */
struct conn_watch_list {
    struct conn *conn; /* counted reference */
    uint64_t id;
};

static struct mg_ratelimit conn_watch_log;

static struct conn_watcher *conn_watcher_find(struct conn *c, uint64_t id)
{
    struct conn_watcher *w;
    LIST_FOREACH(w, &c->watchers, link)
    if (w->id == id)
        return w;
    return NULL;
}

static void conn_watcher_free(struct conn_watcher *w)
{
    LIST_REMOVE(w, link);
    w->conn->n_watchers--;
    ns_topics_unwatch(w->w);
    ns_pattern_free(w->pat);
    mg_free_strv(w->topics, w->n);
    mg_free(w->client_hash);
    mg_free(w->ns);
    mg_free(w);
}

void conn_watch_close_all(struct conn *c)
{
    struct conn_watcher *w;
    while ((w = LIST_FIRST(&c->watchers)))
        conn_watcher_free(w);
}

void conn_watch_recheck(struct conn *c, const char *tenant_ns)
{
    struct conn_watcher *w, *next;
    for (w = LIST_FIRST(&c->watchers); w; w = next) {
        next = LIST_NEXT(w, link);
        if (strcmp(w->ns, tenant_ns) != 0 || conn_namespace_granted(c, tenant_ns))
            continue;
        MG_INFO("conn",
                "[%" PRIu64 "] topic list watcher %" PRIu64
                " on %s ended: role %s may no longer list its topics",
                conn_id(c), w->id, tenant_ns, conn_role(c) ? conn_role(c) : "(none)");
        conn_watcher_free(w);
    }
}

/* Index of name in the sorted list, or where it would go (*found false). */
static int conn_watcher_pos(const struct conn_watcher *w, const char *name, bool *found)
{
    int lo = 0, hi = w->n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(w->topics[mid], name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static void conn_watcher_changed(void *arg, const char *name, bool created)
{
    struct conn_watcher *w = arg;
    if (!w->ready || strncmp(name, "persistent://", 13) != 0 || ns_topic_is_system(name))
        return; /* before the first answer, the listing says it all */
    bool found;
    int i = conn_watcher_pos(w, name, &found);
    if (created == found)
        return;
    if (created) {
        int m = ns_pattern_match(w->pat, name);
        if (m < 0) {
            uint64_t held;
            if (mg_ratelimit_allow(&conn_watch_log, MG_RATELIMIT_INTERVAL_MS, &held))
                MG_INFO("conn",
                        "[%" PRIu64 "] topic list watcher %" PRIu64
                        ": pattern hit its match limit on %s, topic left out (%" PRIu64
                        " more since the last line)",
                        conn_id(w->conn), w->id, name, held);
            return;
        }
        if (m == 0)
            return;
        if (w->n == w->cap) {
            w->cap = w->cap ? w->cap * 2 : 8;
            w->topics = mg_realloc(w->topics, (size_t)w->cap * sizeof *w->topics);
        }
        memmove(w->topics + i + 1, w->topics + i, (size_t)(w->n - i) * sizeof *w->topics);
        w->topics[i] = mg_strdup(name);
        w->n++;
    } else {
        mg_free(w->topics[i]);
        memmove(w->topics + i, w->topics + i + 1, (size_t)(w->n - i - 1) * sizeof *w->topics);
        w->n--;
    }
    char hash[NS_TOPICS_HASH_LEN];
    ns_topics_hash(w->topics, w->n, hash);
    Pulsar__Proto__CommandWatchTopicUpdate u = PULSAR__PROTO__COMMAND_WATCH_TOPIC_UPDATE__INIT;
    char *one = (char *)name;
    u.watcher_id = w->id;
    if (created) {
        u.n_new_topics = 1;
        u.new_topics = &one;
    } else {
        u.n_deleted_topics = 1;
        u.deleted_topics = &one;
    }
    u.topics_hash = hash;
    CONN_SEND(w->conn, WATCH_TOPIC_UPDATE, watchtopicupdate, u);
}

static void conn_watch_listed(void *data, int status, char **names, int n)
{
    struct conn_watch_list *l = data;
    struct conn *c = l->conn;
    struct conn_watcher *w = conn_is_open(c) ? conn_watcher_find(c, l->id) : NULL;
    mg_free(l);
    if (!w) {
        conn_unref(c);
        return;
    }
    char **match = mg_malloc(((size_t)n + 1) * sizeof *match);
    int kept = status < 0 ? status : ns_pattern_filter(w->pat, names, n, match);
    if (kept < 0) {
        mg_free(match);
        conn_send_error(c, w->request_id, kept,
                        kept == -MG_ENOTALLOWED
                            ? "Topics pattern exceeded the match limit of the broker"
                            : "Cannot list the namespace's topics");
        conn_watcher_free(w);
        conn_unref(c);
        return;
    }
    /* The listing's names are valid during this call only: the watcher keeps copies. */
    for (int i = 0; i < kept; i++)
        match[i] = mg_strdup(match[i]);
    w->topics = match;
    w->n = w->cap = kept;
    char hash[NS_TOPICS_HASH_LEN];
    ns_topics_hash(w->topics, w->n, hash);
    Pulsar__Proto__CommandWatchTopicListSuccess r =
        PULSAR__PROTO__COMMAND_WATCH_TOPIC_LIST_SUCCESS__INIT;
    r.request_id = w->request_id;
    r.watcher_id = w->id;
    if (!w->client_hash || strcmp(w->client_hash, hash) != 0) {
        r.n_topic = (size_t)w->n;
        r.topic = w->topics;
    }
    r.topics_hash = hash;
    w->ready = true;
    CONN_SEND(c, WATCH_TOPIC_LIST_SUCCESS, watchtopiclistsuccess, r);
    conn_unref(c);
}

void conn_handle_watch_topic_list(struct conn *c, const Pulsar__Proto__CommandWatchTopicList *m)
{
    const struct cfg *cfg = c->env->cfg;
    if (!cfg->pattern_evaluation) {
        conn_send_error(c, m->request_id, -MG_ENOTALLOWED,
                        "Broker side subscription pattern evaluation is disabled");
        return;
    }
    if (!m->topics_pattern ||
        strlen(m->topics_pattern) > (size_t)cfg->subscription_pattern_max_length) {
        conn_send_error(c, m->request_id, -MG_ENOTALLOWED,
                        "Unable to create topic list watcher: topics pattern exceeds the maximum "
                        "allowed length (subscriptionPatternMaxLength)");
        return;
    }
    if (c->frame_nul_field) {
        conn_send_error(c, m->request_id, -MG_EINVAL,
                        "A string of the command holds a NUL character");
        return;
    }
    if (conn_watcher_find(c, m->watcher_id)) {
        conn_send_error(c, m->request_id, -MG_ENOTREADY, "Watcher with that id already exists");
        return;
    }
    if (c->n_watchers >= CONN_MAX_TOPIC_WATCHERS) {
        conn_send_error(c, m->request_id, -MG_ENOTALLOWED,
                        "Too many topic list watchers on this connection");
        return;
    }
    if (!conn_namespace_readable(c, m->namespace_, m->request_id))
        return;
    char err[200];
    struct ns_pattern *pat;
    int rc = ns_pattern_compile(m->topics_pattern, &pat, err, sizeof err);
    if (rc < 0) {
        conn_send_error(c, m->request_id, rc, err);
        return;
    }
    struct conn_watcher *w = mg_calloc(1, sizeof *w);
    w->conn = c;
    w->id = m->watcher_id;
    w->ns = mg_strdup(m->namespace_);
    w->request_id = m->request_id;
    w->client_hash = m->topics_hash ? mg_strdup(m->topics_hash) : NULL;
    w->pat = pat;
    LIST_INSERT_HEAD(&c->watchers, w, link);
    c->n_watchers++;
    /* Watch first, then list: a topic created in between is in the listing or told. */
    w->w = ns_topics_watch(c->env->ns, m->namespace_, conn_watcher_changed, w);
    struct conn_watch_list *l = mg_malloc(sizeof *l);
    l->conn = c;
    l->id = w->id;
    conn_ref(c);
    rc = w->w ? ns_list_topics(c->env->ns, m->namespace_, false, conn_watch_listed, l)
              : -MG_ENOTFOUND;
    if (rc < 0) {
        mg_free(l);
        conn_unref(c);
        conn_send_error(c, m->request_id, rc, "Namespace does not exist");
        conn_watcher_free(w);
    }
}

void conn_handle_watch_topic_list_close(struct conn *c,
                                        const Pulsar__Proto__CommandWatchTopicListClose *m)
{
    struct conn_watcher *w = conn_watcher_find(c, m->watcher_id);
    if (w)
        conn_watcher_free(w);
    conn_send_success(c, m->request_id); /* as Pulsar: closing an unknown watcher succeeds */
}
