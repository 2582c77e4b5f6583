/*
 * ns_list.c - topic lists for pattern (regex) consumers: the pattern filter and the list hash
 * of GET_TOPICS_OF_NAMESPACE, and the namespace watches behind WATCH_TOPIC_LIST.
 *
 * Happy path: a client's topics_pattern ("persistent://t/ns/orders-.*") is compiled once with
 * PCRE2 after its domain scheme is taken off, as Pulsar's TopicList.removeTopicDomainScheme
 * does, and must match the whole "t/ns/base" of a topic (a partition is matched by its
 * partitioned topic's name). The hash of a list is Pulsar's TopicList.calculateHash: CRC32C
 * over the sorted names joined by ',', printed as Guava prints a HashCode (the four bytes
 * of the int little-endian first, in lower-case hex).
 *
 * A watch (ns_topics_watch) follows one namespace: per namespace watched, one children watch
 * on its managed ledgers' node in the metadata store (/managed-ledgers/t/ns/persistent: a
 * topic created or deleted on any broker), re-armed each time it fires, plus a slow re-list
 * (NS_TW_POLL_MS) for what the store does not show (loaded topics of a store kept in RAM,
 * partitions of a partitioned topic created elsewhere). Each change re-lists the namespace
 * (ns_list_topics) and compares with the previous list; every watcher hears each name that
 * came or went. One listing per namespace at a time: changes during it ask for one more.
 *
 * Failure modes: a pattern that does not compile is refused with PCRE2's reason; a match
 * that hits the match, depth or heap limit (a catastrophic pattern on some name) answers
 * -MG_ENOTALLOWED, and so does a list whose filtering takes longer than
 * NS_PATTERN_LIST_BUDGET_MS: one request's evaluation is bounded. A listing that fails keeps the
 * previous list (the next change or poll tries again).
 */
#define PCRE2_CODE_UNIT_WIDTH 8

#include "config/cfg.h"
#include "meta/meta.h"
#include "ns/ns_int.h"
#include "topic/topic.h"
#include "util/alloc.h"
#include "util/crc.h"
#include "util/err.h"
#include "util/log.h"
#include "util/loop.h"

#include <pcre2.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* ---- patterns ---------------------------------------------------------------------------- */

/* Bounds on one match: steps of the matcher and its backtracking depth. A name is at most a
 * few hundred bytes, so an honest pattern needs far less; a catastrophic one stops here. */
#define NS_PATTERN_MATCH_LIMIT 100000
#define NS_PATTERN_DEPTH_LIMIT 1000
#define NS_PATTERN_HEAP_LIMIT_KIB 1024 /* the backtracking memory of one match */
#define NS_PATTERN_LIST_BUDGET_MS 250  /* the time one list's filtering may take */

struct ns_pattern {
    pcre2_code *code;
    pcre2_match_data *md;
    pcre2_match_context *mc;
};

/* Pulsar's removeTopicDomainScheme: "persistent://x" and "non-persistent://x" become "x";
 * a prefix that ends with a domain keeps what is before it ("^persistent://x" -> "^x"). */
static int ns_pattern_strip(const char *pat, char **out)
{
    const char *sep = strstr(pat, "://");
    if (!sep) {
        *out = mg_strdup(pat);
        return 0;
    }
    size_t plen = (size_t)(sep - pat);
    static const char *const domains[] = {"non-persistent", "persistent"};
    for (size_t i = 0; i < sizeof domains / sizeof *domains; i++) {
        size_t dlen = strlen(domains[i]);
        if (plen >= dlen && memcmp(pat + plen - dlen, domains[i], dlen) == 0) {
            *out = mg_asprintf("%.*s%s", (int)(plen - dlen), pat, sep + 3);
            return 0;
        }
    }
    return -MG_EINVAL;
}

int ns_pattern_compile(const char *topics_pattern, struct ns_pattern **out, char *err,
                       size_t errlen)
{
    *out = NULL;
    char *stripped;
    if (ns_pattern_strip(topics_pattern, &stripped) < 0) {
        snprintf(err, errlen, "Does not support topic domain of pattern %s", topics_pattern);
        return -MG_EINVAL;
    }
    int code;
    PCRE2_SIZE off;
    pcre2_code *re =
        pcre2_compile((PCRE2_SPTR)stripped, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &code, &off, NULL);
    mg_free(stripped);
    if (!re) {
        PCRE2_UCHAR msg[120];
        pcre2_get_error_message(code, msg, sizeof msg);
        snprintf(err, errlen, "Invalid topics pattern at offset %zu: %s", (size_t)off,
                 (const char *)msg);
        return -MG_EINVAL;
    }
    struct ns_pattern *p = mg_calloc(1, sizeof *p);
    p->code = re;
    p->md = pcre2_match_data_create_from_pattern(re, NULL);
    p->mc = pcre2_match_context_create(NULL);
    if (!p->md || !p->mc) {
        ns_pattern_free(p);
        snprintf(err, errlen, "Out of memory compiling the topics pattern");
        return -MG_ENOMEM;
    }
    pcre2_set_match_limit(p->mc, NS_PATTERN_MATCH_LIMIT);
    pcre2_set_depth_limit(p->mc, NS_PATTERN_DEPTH_LIMIT);
    pcre2_set_heap_limit(p->mc, NS_PATTERN_HEAP_LIMIT_KIB);
    *out = p;
    return 0;
}

void ns_pattern_free(struct ns_pattern *p)
{
    if (!p)
        return;
    pcre2_match_context_free(p->mc);
    pcre2_match_data_free(p->md);
    pcre2_code_free(p->code);
    mg_free(p);
}

int ns_pattern_match(struct ns_pattern *p, const char *full_name)
{
    /* "domain://t/ns/base[-partition-N]" -> "t/ns/base" (the partitioned topic's name) */
    struct topic_name tn;
    if (topic_name_parse(full_name, &tn) < 0)
        return 0;
    const char *subject = strstr(tn.base, "://") + 3;
    int rc = pcre2_match(p->code, (PCRE2_SPTR)subject, strlen(subject), 0,
                         PCRE2_ANCHORED | PCRE2_ENDANCHORED, p->md, p->mc);
    topic_name_fini(&tn);
    if (rc >= 0)
        return 1;
    if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT || rc == PCRE2_ERROR_HEAPLIMIT)
        return -MG_ENOTALLOWED; /* a catastrophic pattern: stopped, refused */
    return 0;                   /* no match (or a name that is not UTF-8: none can match) */
}

static uint64_t ns_cpu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int64_t ns_topics_max(struct ns *s, const struct topic_name *tn)
{
    char *tenant_ns = mg_asprintf("%s/%s", tn->tenant, tn->ns);
    struct ns_policies p;
    int64_t max = s->cfg->max_topics_per_namespace;
    if (ns_namespace_policies_get(s, tenant_ns, &p) == 0 && p.has_limit[NS_LIMIT_TOPICS])
        max = p.limit[NS_LIMIT_TOPICS];
    mg_free(tenant_ns);
    return max;
}

int ns_topics_room(struct ns *s, const struct topic_name *tn, char *const *names, int n, int adding)
{
    int64_t max = ns_topics_max(s, tn);
    if (max <= 0)
        return 0;
    int64_t have = 0;
    for (int i = 0; i < n; i++)
        have += !ns_topic_is_system(names[i]);
    return have + adding > max ? -MG_ENOTALLOWED : 0;
}

/* Pulsar's SystemTopicNames.isSystemTopic (4.x): the namespace events topics and the
 * transaction internals, by their partitioned topic's name. */
bool ns_topic_is_system(const char *full_name)
{
    struct topic_name tn;
    if (topic_name_parse(full_name, &tn) < 0)
        return false;
    bool sys = topic_name_is_system(&tn);
    topic_name_fini(&tn);
    return sys;
}

int ns_pattern_filter(struct ns_pattern *p, char *const *names, int n, char **out)
{
    /* Each match is bounded, and so is the whole list: a pattern slow (but under the limits)
     * on every name of a large namespace is refused once it has used up the budget. */
    uint64_t start = ns_cpu_now_ms();
    int kept = 0;
    for (int i = 0; i < n; i++) {
        if (ns_topic_is_system(names[i]))
            continue;
        int m = p ? ns_pattern_match(p, names[i]) : 1;
        if (m < 0)
            return m;
        if (m > 0)
            out[kept++] = names[i];
        if ((i & 63) == 63 && ns_cpu_now_ms() - start > NS_PATTERN_LIST_BUDGET_MS)
            return -MG_ENOTALLOWED;
    }
    return kept;
}

static int ns_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void ns_topics_hash(char *const *names, int n, char out[NS_TOPICS_HASH_LEN])
{
    const char **sorted = mg_malloc(((size_t)n + 1) * sizeof *sorted);
    for (int i = 0; i < n; i++)
        sorted[i] = names[i];
    if (n > 1)
        qsort(sorted, (size_t)n, sizeof *sorted, ns_cmp_str);
    uint32_t crc = 0;
    for (int i = 0; i < n; i++) {
        if (i > 0)
            crc = mg_crc32c(crc, ",", 1);
        crc = mg_crc32c(crc, sorted[i], strlen(sorted[i]));
    }
    mg_free(sorted);
    snprintf(out, NS_TOPICS_HASH_LEN, "%02x%02x%02x%02x", crc & 0xff, (crc >> 8) & 0xff,
             (crc >> 16) & 0xff, crc >> 24);
}

/* ---- watches ----------------------------------------------------------------------------- */

#define NS_TW_POLL_MS 5000

struct ns_tw_group;

struct ns_topics_watch {
    LIST_ENTRY(ns_topics_watch) link;
    struct ns_tw_group *g;
    ns_topics_change_fn fn;
    void *arg;
};

/* One watched namespace. Freed when its last watcher leaves, or (a listing in flight) when
 * that listing comes back. */
struct ns_tw_group {
    LIST_ENTRY(ns_tw_group) link;
    struct ns *s; /* NULL once detached (no watcher left, module going away) */
    char *ns;
    char **names; /* the last listing, sorted */
    int n;
    bool listed;  /* names holds a listing */
    bool listing; /* a listing is in flight */
    bool again;   /* a change came during it: list once more */
    struct meta_watch *mw;
    struct mg_timer poll;
    LIST_HEAD(, ns_topics_watch) watchers;
};

static void ns_tw_list(struct ns_tw_group *g);

static void ns_tw_free(struct ns_tw_group *g)
{
    mg_free_strv(g->names, g->n);
    mg_free(g->ns);
    mg_free(g);
}

/* No watcher left, or the module is going away: stop the store watch and the poll. */
static void ns_tw_detach(struct ns_tw_group *g)
{
    LIST_REMOVE(g, link);
    if (g->s->meta)
        meta_unwatch(g->s->meta, g->mw);
    g->mw = NULL;
    mg_timer_fini(&g->poll);
    g->s = NULL;
    if (!g->listing)
        ns_tw_free(g);
}

static void ns_tw_tell(struct ns_tw_group *g, const char *name, bool created)
{
    /* A watcher's callback only sends: it never adds or removes watchers. */
    struct ns_topics_watch *w;
    LIST_FOREACH(w, &g->watchers, link)
    w->fn(w->arg, name, created);
}

static void ns_tw_listed(void *data, int status, char **names, int n)
{
    struct ns_tw_group *g = data;
    g->listing = false;
    if (!g->s) {
        ns_tw_free(g);
        return;
    }
    if (status < 0) {
        MG_DEBUG("ns", "topic list watch of %s: listing failed: %s", g->ns, mg_strerror(status));
    } else {
        if (g->listed) { /* both sorted: one merge walk */
            int i = 0, j = 0;
            while (g->s && (i < g->n || j < n)) {
                int c = i == g->n ? 1 : j == n ? -1 : strcmp(g->names[i], names[j]);
                if (c < 0)
                    ns_tw_tell(g, g->names[i++], false);
                else if (c > 0)
                    ns_tw_tell(g, names[j++], true);
                else
                    i++, j++;
            }
        }
        mg_free_strv(g->names, g->n);
        g->names = mg_malloc(((size_t)n + 1) * sizeof *g->names);
        for (int i = 0; i < n; i++)
            g->names[i] = mg_strdup(names[i]);
        g->n = n;
        g->listed = true;
    }
    if (g->again) {
        g->again = false;
        ns_tw_list(g);
    }
}

static void ns_tw_list(struct ns_tw_group *g)
{
    if (g->listing) {
        g->again = true;
        return;
    }
    g->listing = true;
    if (ns_list_topics(g->s, g->ns, false, ns_tw_listed, g) < 0)
        g->listing = false; /* the namespace is gone: nothing more to hear */
}

static void ns_tw_store_fired(struct meta_store *m, const char *path, enum meta_watch_event ev,
                              void *data);

static void ns_tw_arm(struct ns_tw_group *g)
{
    if (!g->s->meta)
        return;
    char *path = mg_asprintf("/managed-ledgers/%s/persistent", g->ns);
    g->mw = meta_watch(g->s->meta, path, true, ns_tw_store_fired, g);
    mg_free(path);
}

static void ns_tw_store_fired(struct meta_store *m, const char *path, enum meta_watch_event ev,
                              void *data)
{
    struct ns_tw_group *g = data;
    g->mw = NULL; /* one-shot: the store frees it */
    ns_tw_arm(g);
    ns_tw_list(g);
}

static void ns_tw_poll(struct mg_timer *t, void *arg)
{
    struct ns_tw_group *g = arg;
    mg_timer_start(t, NS_TW_POLL_MS);
    ns_tw_list(g);
}

struct ns_topics_watch *ns_topics_watch(struct ns *s, const char *tenant_ns, ns_topics_change_fn fn,
                                        void *arg)
{
    if (!ns_namespace_exists(s, tenant_ns))
        return NULL;
    struct ns_tw_group *g;
    LIST_FOREACH(g, &s->topic_watches, link)
    if (strcmp(g->ns, tenant_ns) == 0)
        break;
    if (!g) {
        g = mg_calloc(1, sizeof *g);
        g->s = s;
        g->ns = mg_strdup(tenant_ns);
        LIST_INIT(&g->watchers);
        LIST_INSERT_HEAD(&s->topic_watches, g, link);
        mg_timer_init(&g->poll, s->loop, ns_tw_poll, g);
        mg_timer_start(&g->poll, NS_TW_POLL_MS);
        ns_tw_arm(g); /* armed before the first listing: nothing falls between */
        ns_tw_list(g);
    }
    struct ns_topics_watch *w = mg_calloc(1, sizeof *w);
    w->g = g;
    w->fn = fn;
    w->arg = arg;
    LIST_INSERT_HEAD(&g->watchers, w, link);
    return w;
}

void ns_topics_unwatch(struct ns_topics_watch *w)
{
    if (!w)
        return;
    struct ns_tw_group *g = w->g; /* NULL: the module went away first (ns_stop) */
    if (g)
        LIST_REMOVE(w, link);
    mg_free(w);
    if (g && g->s && LIST_EMPTY(&g->watchers))
        ns_tw_detach(g);
}

void ns_topics_changed(struct ns *s, const char *tenant_ns)
{
    struct ns_tw_group *g;
    LIST_FOREACH(g, &s->topic_watches, link)
    if (strcmp(g->ns, tenant_ns) == 0)
        ns_tw_list(g);
}

void ns_watch_fini(struct ns *s)
{
    struct ns_tw_group *g;
    while ((g = LIST_FIRST(&s->topic_watches))) {
        struct ns_topics_watch *w;
        while ((w = LIST_FIRST(&g->watchers))) {
            LIST_REMOVE(w, link);
            w->g = NULL;
        }
        ns_tw_detach(g);
    }
}
