/*
 * ns_bulk.c - work over many topics, done in slices so that the loop keeps serving.
 *
 * Deleting a partitioned topic touches every partition. Done in one loop turn, 10 000
 * partitions blocked the loop for about a second (every other client waited) and loading
 * partitions that were never created cost hundreds of MB. Here the work is a job that
 * handles at most NS_SLICE_ITEMS partitions or NS_SLICE_MS of time per loop turn, then
 * yields (a zero timeout: the loop polls I/O before the next slice).
 *
 * Happy path of ns_partitioned_delete: (1) list the topics stored in the namespace
 * (/managed-ledgers/<t>/<ns>/persistent; its children come sorted and are searched in
 * place); (2) without force, check in slices that no loaded partition has producers or
 * consumers; (3) in slices, delete each partition that is loaded, and load-then-delete
 * each one that is stored but not loaded (at most NS_BULK_LOADS loads in flight);
 * partitions never created are skipped; deletes also wait while the managed-ledger store
 * has NS_BULK_PENDING operations in flight, so that their completions, which the store
 * may deliver many per turn, stay bounded too; (4) delete the partitioned-topic metadata;
 * cb.
 *
 * Unloading many topics (a bundle unloaded, a session expired, a shutdown) is a queue of
 * names worked off the same way: ns_unload_topics appends, each slice unloads at most
 * NS_SLICE_ITEMS topics or NS_SLICE_MS of them.
 *
 * Failure modes: a partition with clients (without force) fails the job with -MG_EBUSY
 * before anything was deleted; a listing or load error fails it with that error (what was
 * deleted stays deleted: the metadata is kept, so the delete can be retried). The module
 * going away cancels jobs: no callback; loads still in flight finish against a job that
 * only counts them down.
 */
#include "config/cfg.h"
#include "meta/meta.h"
#include "ml/ml.h"
#include "ns/ns.h"
#include "ns/ns_int.h"
#include "topic/topic.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"
#include "util/loop.h"

#include <event2/event.h>
#include <event2/http.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NS_SLICE_ITEMS 64  /* partitions looked at per loop turn at most ... */
#define NS_SLICE_MS 2      /* ... and for at most this long */
#define NS_BULK_LOADS 16   /* stored partitions being loaded (to be deleted) at once */
#define NS_BULK_PENDING 64 /* deletes wait while the ML store has this many ops in flight */
#define NS_BULK_WAIT_MS 5  /* how often they look again */

enum pdel_phase {
    PDEL_LISTING = 0, /* waiting for the stored topic list */
    PDEL_CHECKING,    /* without force: no partition may have clients */
    PDEL_DELETING,    /* deleting partitions */
    PDEL_METADATA,    /* deleting the partitioned-topic metadata */
};

struct ns_pdel {
    struct ns *s; /* borrowed; NULL once cancelled */
    char *base;   /* owned: the partitioned topic's full name */
    char *prefix; /* owned: "<base>-partition-" */
    int n;        /* partitions */
    bool force;
    ns_done_cb cb;
    void *data;
    enum pdel_phase phase;
    int next;    /* next partition of the phase */
    int loading; /* topic_get calls in flight */
    int status;  /* first failure */
    int deleted;
    struct meta_req list;     /* children: the stored topics (url-encoded local names) */
    bool listed;              /* list holds results to free */
    struct event *ev;         /* owned: runs the next slice */
    LIST_ENTRY(ns_pdel) link; /* in s->bulk_jobs while s is set */
};

static uint64_t ns_bulk_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void ns_pdel_free(struct ns_pdel *j)
{
    if (j->s)
        LIST_REMOVE(j, link);
    if (j->listed)
        meta_req_fini(&j->list);
    mg_event_free(j->ev);
    mg_free(j->base);
    mg_free(j->prefix);
    mg_free(j);
}

static void ns_pdel_schedule(struct ns_pdel *j)
{
    struct timeval zero = {0, 0};
    evtimer_add(j->ev, &zero);
}

/* The job is over: report (unless cancelled) and free, once no load is in flight. */
static void ns_pdel_finish(struct ns_pdel *j, int status)
{
    if (j->status == 0)
        j->status = status;
    if (j->loading > 0)
        return; /* the last load's callback finishes it */
    if (j->s) {
        if (j->status < 0)
            MG_WARN("ns", "deleting partitioned topic %s failed after %d of %d partitions: %s",
                    j->base, j->deleted, j->n, mg_strerror(j->status));
        else
            MG_INFO("ns", "deleted partitioned topic %s (%d partitions, %d had data)", j->base,
                    j->n, j->deleted);
        if (j->cb)
            j->cb(j->data, j->status);
    }
    ns_pdel_free(j);
}

static int ns_bulk_cmp_child(const void *key, const void *elem)
{
    return strcmp(key, *(char *const *)elem);
}

/* Is partition i stored (its managed ledger exists in the metadata store)? */
static bool ns_pdel_stored(struct ns_pdel *j, const char *full)
{
    if (!j->listed || j->list.n_children == 0)
        return false;
    struct topic_name tn;
    if (topic_name_parse(full, &tn) < 0)
        return false;
    char *ml = topic_name_ml(&tn); /* t/ns/persistent/<encoded local> */
    topic_name_fini(&tn);
    const char *enc = strrchr(ml, '/');
    bool found = enc && bsearch(enc + 1, j->list.children, (size_t)j->list.n_children,
                                sizeof *j->list.children, ns_bulk_cmp_child) != NULL;
    mg_free(ml);
    return found;
}

static void ns_pdel_loaded(struct topic *t, int status, void *data)
{
    struct ns_pdel *j = data;
    j->loading--;
    if (j->s && j->status == 0) {
        if (status == -MG_ENOTFOUND) {
            status = 0; /* gone meanwhile */
        } else if (status == 0) {
            status = topic_delete(t, j->force);
            if (status == 0)
                j->deleted++;
        }
        if (status < 0)
            j->status = status;
    }
    if (!j->s || j->status < 0) {
        if (j->loading == 0)
            ns_pdel_finish(j, j->status);
        return;
    }
    ns_pdel_schedule(j); /* a load slot is free */
}

static void ns_pdel_meta_done(void *data, int status)
{
    ns_pdel_finish(data, status);
}

/* One slice of the current phase. */
static void ns_pdel_slice(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct ns_pdel *j = arg;
    struct ns *s = j->s;
    if (!s || j->phase == PDEL_LISTING || j->phase == PDEL_METADATA)
        return;
    if (j->status < 0) {
        ns_pdel_finish(j, j->status);
        return;
    }
    uint64_t until = ns_bulk_mono_ms() + NS_SLICE_MS;
    char name[TOPIC_NAME_MAX_LEN + 64];
    for (int k = 0; k < NS_SLICE_ITEMS && j->next < j->n; k++) {
        if (k > 0 && ns_bulk_mono_ms() >= until)
            break;
        if (j->phase == PDEL_DELETING && j->loading >= NS_BULK_LOADS)
            return; /* resumed by a load's completion */
        if (j->phase == PDEL_DELETING && ml_factory_pending(s->mlf) >= NS_BULK_PENDING) {
            /* Each delete starts metadata and ledger removals that complete later, many in
             * one turn when their store answers in batches: keep a bounded number in
             * flight so that their completions are bounded too. */
            struct timeval tv = {0, NS_BULK_WAIT_MS * 1000};
            evtimer_add(j->ev, &tv);
            return;
        }
        snprintf(name, sizeof name, "%s%d", j->prefix, j->next);
        struct topic *t = topic_find(s->topics, name);
        if (j->phase == PDEL_CHECKING) {
            struct topic_stats st;
            if (t) {
                topic_get_stats(t, &st);
                if (st.n_producers > 0 || st.n_consumers > 0) {
                    ns_pdel_finish(j, -MG_EBUSY);
                    return;
                }
            }
            j->next++;
            continue;
        }
        j->next++;
        int rc = 0;
        if (t) {
            rc = topic_delete(t, j->force);
            if (rc == 0)
                j->deleted++;
        } else if (ns_pdel_stored(j, name)) {
            /* create=true: an empty stored ledger loads too (create=false treats an ML
             * that never had entries as missing, which would leave it in the store) */
            j->loading++;
            rc = topic_get(s->topics, name, true, ns_pdel_loaded, j);
            if (rc < 0)
                j->loading--;
            if (rc == -MG_ENOTFOUND)
                rc = 0;
        }
        if (rc < 0) {
            ns_pdel_finish(j, rc);
            return;
        }
    }
    if (j->next < j->n) {
        ns_pdel_schedule(j);
        return;
    }
    if (j->phase == PDEL_CHECKING) {
        j->phase = PDEL_DELETING;
        j->next = 0;
        ns_pdel_schedule(j);
        return;
    }
    if (j->loading > 0)
        return; /* the last load reschedules */
    j->phase = PDEL_METADATA;
    int rc = ns_partitions_delete(s, j->base, ns_pdel_meta_done, j);
    if (rc < 0)
        ns_pdel_finish(j, rc == -MG_ENOTFOUND ? 0 : rc); /* removed meanwhile: done */
}

static void ns_pdel_listed(struct meta_req *req, int status)
{
    struct ns_pdel *j = req->data;
    j->listed = true; /* results are kept (searched in place) until the job ends */
    if (!j->s) {
        ns_pdel_free(j);
        return;
    }
    if (status < 0 && status != -MG_ENOTFOUND) {
        ns_pdel_finish(j, status);
        return;
    }
    j->phase = j->force ? PDEL_DELETING : PDEL_CHECKING;
    ns_pdel_slice(-1, 0, j);
}

int ns_partitioned_delete(struct ns *s, const char *base_full_name, bool force, ns_done_cb cb,
                          void *data)
{
    int n = ns_partitions_get(s, base_full_name);
    if (n <= 0)
        return -MG_ENOTFOUND;
    struct topic_name tn;
    if (topic_name_parse(base_full_name, &tn) < 0)
        return -MG_EBADNAME;
    struct ns_pdel *j = mg_calloc(1, sizeof *j);
    j->s = s;
    j->base = mg_strdup(base_full_name);
    j->prefix = mg_asprintf("%s-partition-", base_full_name);
    j->n = n;
    j->force = force;
    j->cb = cb;
    j->data = data;
    j->ev = evtimer_new(s->base, ns_pdel_slice, j);
    j->list.data = j;
    LIST_INSERT_HEAD(&s->bulk_jobs, j, link);
    MG_INFO("ns", "deleting partitioned topic %s (%d partitions%s)", base_full_name, n,
            force ? ", force" : "");
    int rc = -MG_ENOTFOUND;
    if (s->meta) {
        char *path = mg_asprintf("/managed-ledgers/%s/%s/persistent", tn.tenant, tn.ns);
        rc = meta_children(s->meta, path, &j->list, ns_pdel_listed);
        mg_free(path);
    }
    topic_name_fini(&tn);
    if (rc < 0) { /* no store, or nothing to list: only loaded partitions can exist */
        j->phase = force ? PDEL_DELETING : PDEL_CHECKING;
        ns_pdel_schedule(j);
    }
    return 0;
}

/* ---- unloading many topics ---------------------------------------------------------------- */

static void ns_bulk_unload_slice(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct ns *s = arg;
    struct topic_registry *reg = s->topics;
    uint64_t t0 = ns_bulk_mono_ms();
    for (int k = 0; k < NS_SLICE_ITEMS && s->unload_head < s->unload_n; k++) {
        char *name = s->unload_q[s->unload_head++];
        struct topic *t = reg ? topic_find(reg, name) : NULL;
        if (t)
            topic_unload(t);
        mg_free(name);
        if (ns_bulk_mono_ms() - t0 >= NS_SLICE_MS)
            break;
    }
    if (s->unload_head < s->unload_n) {
        struct timeval zero = {0, 0};
        evtimer_add(s->unload_ev, &zero);
        return;
    }
    s->unload_head = s->unload_n = 0;
}

void ns_unload_topics(struct ns *s, char **names, size_t n)
{
    if (n > 0 && s->unload_n + n > s->unload_cap) {
        /* compact what is done, then grow */
        if (s->unload_head > 0)
            memmove(s->unload_q, s->unload_q + s->unload_head,
                    (s->unload_n - s->unload_head) * sizeof *s->unload_q);
        s->unload_n -= s->unload_head;
        s->unload_head = 0;
        if (s->unload_n + n > s->unload_cap) {
            s->unload_cap = (s->unload_n + n) * 2;
            s->unload_q = mg_realloc(s->unload_q, s->unload_cap * sizeof *s->unload_q);
        }
    }
    for (size_t i = 0; i < n; i++)
        s->unload_q[s->unload_n++] = names[i];
    mg_free(names);
    if (s->unload_head < s->unload_n) {
        if (!s->unload_ev)
            s->unload_ev = evtimer_new(s->base, ns_bulk_unload_slice, s);
        struct timeval zero = {0, 0};
        evtimer_add(s->unload_ev, &zero);
    }
}

size_t ns_unload_pending(const struct ns *s)
{
    return s->unload_n - s->unload_head;
}

void ns_bulk_cancel(struct ns *s)
{
    /* Unloads not done yet: the service closes every topic when it is freed. */
    while (s->unload_head < s->unload_n)
        mg_free(s->unload_q[s->unload_head++]);
    mg_free(s->unload_q);
    s->unload_q = NULL;
    s->unload_head = s->unload_n = s->unload_cap = 0;
    mg_event_free(s->unload_ev);
    s->unload_ev = NULL;
    struct ns_pdel *j;
    while ((j = LIST_FIRST(&s->bulk_jobs))) {
        LIST_REMOVE(j, link);
        j->s = NULL;
        j->cb = NULL;
        evtimer_del(j->ev);
        /* The listing and loads still in flight free the job when they complete. The
         * metadata write's callback is dropped by ns_res_cancel, which runs next. */
        if (j->loading == 0 && j->phase != PDEL_LISTING)
            ns_pdel_free(j);
    }
}
