/*
 * bk_gc.c - garbage collection and entry-log compaction (BookKeeper's GarbageCollectorThread
 * with ScanAndCompareGarbageCollector). The decisions and the metadata-store scan run on the
 * loop thread; every index or file change is an operation on the storage thread (bk_store.c),
 * queued behind the checkpoints. README.md "Garbage collection".
 *
 * A run (every gcWaitTime ms, or forced):
 *   1. snapshot the ids of the ledgers this bookie holds (bk_store_ledger_ids), THEN list
 *      the ledgers in the metadata store (/ledgers, bkc's hierarchical layout) one
 *      meta_children call at a time. A ledger's metadata is written before any bookie gets
 *      an entry of it, so a ledger created after the snapshot is not a candidate and one
 *      created before it is in the listing: a new ledger is never dropped.
 *   2. every snapshot ledger missing from the listing is read again (meta_exists) and only a
 *      definite "no such node" drops it (bk_store_drop_ledger; the run goes on when the
 *      storage thread's commit is back). Any listing error, an unreachable store, a missing
 *      /ledgers: the run drops nothing.
 *   3. entry logs (other than the current one) with no live bytes are deleted (storage
 *      thread).
 *   4. compaction, if due: major (majorCompactionThreshold, every majorCompactionInterval s)
 *      else minor; the logs under the threshold, emptiest first, are compacted one at a time
 *      in slices every 100 ms throttled to compactionRateByEntries (or compactionRateByBytes
 *      with isThrottleByBytes) per second. Each slice (bk_store_compact_slice, storage thread)
 *      copies entries straight to the current entry log, syncs it, and points the index at
 *      the copies whose entries still live in the old log; the last one deletes the old log.
 *      A crash before that leaves the old log and the index pointing into it or into synced
 *      copies; unreferenced copies are dead bytes the next compaction drops.
 */
#include "bkc/bkc.h"
#include "bookie/bookie_int.h"
#include "meta/meta.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"
#include "util/loop.h"

#include <ctype.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define BK_GC_ROOT "/ledgers"
#define BK_GC_SLICE_MS 100

struct bk_gc_dir {
    char *path;   /* owned */
    char *digits; /* owned: the id digits of the path below the root */
};

struct bk_gc {
    struct bk_server *srv; /* borrowed */
    struct meta_store *meta;
    struct bk_gc_conf conf;
    struct event *timer_ev, *slice_ev; /* owned */
    uint64_t last_minor_ns, last_major_ns;
    /* a run */
    bool running;
    int64_t *snap; /* owned, sorted: local ledgers before the listing */
    size_t n_snap;
    int64_t *listed; /* owned: ids found in the store */
    size_t n_listed, cap_listed;
    struct bk_gc_dir *stack; /* owned: directories still to list */
    size_t n_stack, cap_stack;
    struct bk_gc_dir cur;
    struct meta_req *req; /* owned by the call in flight (freed by its callback) */
    int64_t *cand;        /* owned: candidates to re-check */
    size_t n_cand, i_cand;
    bool force_compaction;
    /* compaction */
    uint32_t *queue; /* owned: logs to compact */
    size_t n_queue, i_queue;
    bool compacting;
    struct bk_compact comp; /* its op is on the storage thread during a slice */
    unsigned ops;           /* ledger drops and log deletions on the storage thread */
    struct bk_gc_stats st;
    int inject_list_error; /* test hook: the Nth listing call (1-based) fails */
    int list_calls;
    bool pause_listing, paused; /* test hook: stop between the listing and the re-checks */
    int inject_stop_step; /* test hook: compaction stops before step 1 (checkpoint) or 2 (delete),
                           * and the run ends there (as a crash would) */
};

static bool bk_gc_digits(const char *s, size_t n)
{
    if (strlen(s) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return true;
}

static void bk_gc_push(struct bk_gc *g, char *path, char *digits)
{
    g->stack = mg_grow(g->stack, &g->cap_stack, g->n_stack + 1, sizeof *g->stack, 8);
    g->stack[g->n_stack].path = path;
    g->stack[g->n_stack].digits = digits;
    g->n_stack++;
}

static void bk_gc_clear_run(struct bk_gc *g)
{
    for (size_t i = 0; i < g->n_stack; i++) {
        mg_free(g->stack[i].path);
        mg_free(g->stack[i].digits);
    }
    g->n_stack = 0;
    mg_free(g->cur.path);
    mg_free(g->cur.digits);
    memset(&g->cur, 0, sizeof g->cur);
    mg_free(g->snap);
    g->snap = NULL;
    g->n_snap = 0;
    mg_free(g->listed);
    g->listed = NULL;
    g->n_listed = g->cap_listed = 0;
    mg_free(g->cand);
    g->cand = NULL;
    g->n_cand = g->i_cand = 0;
    g->running = false;
}

static void bk_gc_list_next(struct bk_gc *g);
static void bk_gc_check_next(struct bk_gc *g);
static void bk_gc_after_ledgers(struct bk_gc *g);

static void bk_gc_fail(struct bk_gc *g, const char *what, int status)
{
    g->st.scan_failures++;
    MG_WARN(BK_MODULE, "gc: %s: %s; no ledger is deleted in this run", what, mg_strerror(status));
    bk_gc_clear_run(g);
    bk_gc_after_ledgers(g); /* logs without live data and compaction need no listing */
}

static void bk_gc_children_cb(struct meta_req *req, int status)
{
    struct bk_gc *g = req->data;
    if (!g) {
        meta_req_fini(req);
        mg_free(req);
        return;
    }
    g->req = NULL;
    if (g->inject_list_error > 0 && ++g->list_calls == g->inject_list_error)
        status = -MG_EIO;
    bool root = strcmp(g->cur.path, BK_GC_ROOT) == 0;
    if (status == -MG_ENOTFOUND && !root) {
        status = 0;         /* the directory went away meanwhile: its ledgers were deleted */
        meta_req_fini(req); /* no children */
    }
    if (status < 0) {
        meta_req_fini(req);
        mg_free(req);
        bk_gc_fail(g, "listing the ledgers in the metadata store failed", status);
        return;
    }
    size_t depth = strlen(g->cur.digits);
    for (int i = 0; i < req->n_children; i++) {
        const char *c = req->children[i];
        if (c[0] == 'L' && bk_gc_digits(c + 1, 4) && !root) {
            char *d = mg_asprintf("%s%s", g->cur.digits, c + 1);
            g->listed = mg_grow(g->listed, &g->cap_listed, g->n_listed + 1, sizeof *g->listed, 64);
            g->listed[g->n_listed++] = strtoll(d, NULL, 10);
            mg_free(d);
        } else if (root ? (bk_gc_digits(c, 2) || bk_gc_digits(c, 3))
                        : (bk_gc_digits(c, 4) && depth < 15)) {
            bk_gc_push(g, mg_asprintf("%s/%s", g->cur.path, c),
                       mg_asprintf("%s%s", g->cur.digits, c));
        }
    }
    meta_req_fini(req);
    mg_free(req);
    bk_gc_list_next(g);
}

static void bk_gc_list_next(struct bk_gc *g)
{
    mg_free(g->cur.path);
    mg_free(g->cur.digits);
    memset(&g->cur, 0, sizeof g->cur);
    if (g->n_stack == 0) {
        if (g->pause_listing && !g->paused) {
            g->paused = true;
            return;
        }
        g->paused = false;
        /* the listing is complete: candidates are the snapshot's ledgers not in it */
        if (g->n_listed)
            qsort(g->listed, g->n_listed, sizeof *g->listed, bk_store_cmp_i64);
        size_t cap = 0;
        for (size_t i = 0; i < g->n_snap; i++) {
            int64_t id = g->snap[i];
            if (g->n_listed &&
                bsearch(&id, g->listed, g->n_listed, sizeof id, bk_store_cmp_i64) != NULL)
                continue;
            g->cand = mg_grow(g->cand, &cap, g->n_cand + 1, sizeof *g->cand, 16);
            g->cand[g->n_cand++] = id;
        }
        bk_gc_check_next(g);
        return;
    }
    g->cur = g->stack[--g->n_stack];
    g->req = mg_calloc(1, sizeof *g->req);
    g->req->data = g;
    int rc = meta_children(g->meta, g->cur.path, g->req, bk_gc_children_cb);
    if (rc < 0) {
        mg_free(g->req);
        g->req = NULL;
    }
    if (rc < 0)
        bk_gc_fail(g, "listing the ledgers in the metadata store failed", rc);
}

/* A ledger drop came back from the storage thread. */
static void bk_gc_dropped(struct bk_server *s, struct bk_sop *op)
{
    (void)s;
    struct bk_gc_op *o = (struct bk_gc_op *)op;
    struct bk_gc *g = o->arg;
    g->ops--;
    if (op->rc == 0) {
        g->st.ledgers_deleted++;
        MG_DEBUG(BK_MODULE, "gc: ledger %" PRId64 " is gone from the metadata store: dropped",
                 o->id);
    }
    mg_free(o);
    if (g->running)
        bk_gc_check_next(g);
}

static void bk_gc_exists_cb(struct meta_req *req, int status)
{
    struct bk_gc *g = req->data;
    meta_req_fini(req);
    mg_free(req);
    if (!g)
        return;
    g->req = NULL;
    int64_t id = g->cand[g->i_cand++];
    if (status == -MG_ENOTFOUND) {
        /* the index commit runs on the storage thread; the run goes on when it is back */
        g->ops++;
        bk_store_drop_ledger(&g->srv->store, id, bk_gc_dropped, g);
        return;
    } else if (status < 0) {
        g->st.scan_failures++;
        MG_WARN(BK_MODULE, "gc: cannot check ledger %" PRId64 " in the metadata store: %s; kept",
                id, mg_strerror(status));
    }
    bk_gc_check_next(g);
}

static void bk_gc_check_next(struct bk_gc *g)
{
    while (g->i_cand < g->n_cand) {
        char *path = bkc_ledger_path(BK_GC_ROOT, g->cand[g->i_cand]);
        g->req = mg_calloc(1, sizeof *g->req);
        g->req->data = g;
        int rc = meta_exists(g->meta, path, g->req, bk_gc_exists_cb);
        mg_free(path);
        if (rc == 0)
            return;
        mg_free(g->req);
        g->req = NULL;
        g->i_cand++; /* a bad path cannot name a ledger of ours: keep it */
    }
    g->st.scans++;
    bk_gc_clear_run(g);
    bk_gc_after_ledgers(g);
}

static bool bk_gc_space_short(struct bk_gc *g)
{
    return (g->srv->readonly & (BK_RO_DISK | BK_RO_NOSPACE)) != 0;
}

static void bk_gc_compact_next(struct bk_gc *g);
static void bk_gc_slice_done(struct bk_server *s, struct bk_sop *op);

/* A dead log's deletion came back from the storage thread. */
static void bk_gc_log_deleted(struct bk_server *s, struct bk_sop *op)
{
    struct bk_gc_op *o = (struct bk_gc_op *)op;
    struct bk_gc *g = o->arg;
    g->ops--;
    if (op->rc == 0) {
        bk_store_log_forget(&s->store, (uint32_t)o->id);
        g->st.logs_deleted++;
        g->st.bytes_reclaimed += o->bytes;
        MG_DEBUG(BK_MODULE, "gc: entry log %x holds no live entry: deleted", (unsigned)o->id);
        if (bk_gc_space_short(g))
            bk_server_check_disk(s);
    }
    mg_free(o);
}

/* Steps 3 and 4. */
static void bk_gc_after_ledgers(struct bk_gc *g)
{
    struct bk_store *st = &g->srv->store;
    size_t n;
    int64_t *ids = bk_store_log_ids(st, &n); /* entry log ids: 32 bits */
    /* (deletions of an earlier run still queued: their logs are still listed; skip) */
    size_t queued = 0;
    for (size_t i = 0; i < n && g->ops == queued; i++) {
        uint32_t id = (uint32_t)ids[i];
        const struct bk_log_meta *m = bk_store_log_meta(st, id);
        if (!m || m->live != 0 || (g->compacting && g->comp.log_id == id))
            continue;
        g->ops++;
        queued++;
        bk_store_delete_log(st, id, bk_gc_log_deleted, g);
    }
    if (g->compacting) {
        mg_free(ids);
        return;
    }
    uint64_t now = mg_mono_ns();
    double thr = 0;
    bool space = bk_gc_space_short(g);
    bool forced = g->force_compaction || (space && g->conf.force_gc_when_no_space);
    /* a disk above diskUsageWarnThreshold ("almost full"): BookKeeper suspends major
     * compaction, which needs the most room for its copies, unless isForceGCAllowWhenNoSpace */
    bool almost = g->srv->disk_warned != 0 && !g->conf.force_gc_when_no_space;
    g->force_compaction = false;
    if (space && !g->conf.force_gc_when_no_space) {
        /* BookKeeper suspends compaction on a full disk unless isForceGCAllowWhenNoSpace */
    } else if (g->conf.major_threshold > 0 &&
               (forced || (!almost && now - g->last_major_ns >=
                                          (uint64_t)g->conf.major_interval_s * 1000000000ULL))) {
        thr = g->conf.major_threshold;
        g->last_major_ns = g->last_minor_ns = now;
    } else if (g->conf.minor_threshold > 0 &&
               (forced ||
                now - g->last_minor_ns >= (uint64_t)g->conf.minor_interval_s * 1000000000ULL)) {
        thr = g->conf.minor_threshold;
        g->last_minor_ns = now;
    }
    g->n_queue = g->i_queue = 0;
    if (thr > 0) {
        size_t cap = 0;
        for (size_t i = 0; i < n; i++) {
            const struct bk_log_meta *m = bk_store_log_meta(st, (uint32_t)ids[i]);
            if (!m || m->total == 0 || m->live == 0 || (double)m->live / (double)m->total >= thr)
                continue; /* (no live bytes: deleted above) */
            g->queue = mg_grow(g->queue, &cap, g->n_queue + 1, sizeof *g->queue, 8);
            g->queue[g->n_queue++] = (uint32_t)ids[i];
        }
        /* emptiest first */
        for (size_t i = 1; i < g->n_queue; i++)
            for (size_t j = i; j > 0; j--) {
                const struct bk_log_meta *a = bk_store_log_meta(st, g->queue[j - 1]);
                const struct bk_log_meta *b = bk_store_log_meta(st, g->queue[j]);
                if ((double)a->live / (double)a->total <= (double)b->live / (double)b->total)
                    break;
                uint32_t t = g->queue[j];
                g->queue[j] = g->queue[j - 1];
                g->queue[j - 1] = t;
            }
    }
    mg_free(ids);
    if (g->n_queue)
        bk_gc_compact_next(g);
}

static void bk_gc_compact_next(struct bk_gc *g)
{
    struct bk_store *st = &g->srv->store;
    while (g->i_queue < g->n_queue) {
        uint32_t id = g->queue[g->i_queue++];
        if (!bk_store_log_meta(st, id) || id >= st->meta_log_id)
            continue;
        /* the copies come from the committed index; entries still in the write cache are
         * newer and reach the index after them */
        bk_store_compact_begin(st, &g->comp, id);
        if (g->conf.throttle_by_bytes)
            g->comp.max_bytes = (size_t)(g->conf.rate_bytes / (1000 / BK_GC_SLICE_MS)) + 1;
        else
            g->comp.max_entries = (size_t)(g->conf.rate_entries / (1000 / BK_GC_SLICE_MS)) + 1;
        g->comp.stop_step = g->inject_stop_step;
        g->comp.op.done = bk_gc_slice_done;
        g->comp.arg = g;
        g->compacting = true;
        struct timeval tv = {0, BK_GC_SLICE_MS * 1000};
        event_add(g->slice_ev, &tv);
        return;
    }
    g->n_queue = g->i_queue = 0;
}

/* A slice came back from the storage thread: count its copies; next slice, or the log is
 * done (deleted, stopped by the test hook, or given up). */
static void bk_gc_slice_done(struct bk_server *s, struct bk_sop *op)
{
    (void)op;
    struct bk_compact *c = (struct bk_compact *)op;
    struct bk_gc *g = c->arg;
    struct bk_store *st = &s->store;
    uint32_t id = c->log_id;
    const struct bk_log_meta *m = bk_store_log_meta(st, id);
    uint64_t total = m ? m->total : 0;
    g->st.entries_compacted += c->n_copies;
    bk_store_compact_apply(st, c);
    if (op->rc < 0) {
        MG_WARN(BK_MODULE, "compaction of entry log %x stopped: %s; the log is kept", id,
                mg_strerror(op->rc));
    } else if (!c->done) {
        struct timeval tv = {0, BK_GC_SLICE_MS * 1000};
        event_add(g->slice_ev, &tv);
        return;
    } else if (c->deleted) {
        g->st.logs_compacted++;
        g->st.bytes_reclaimed += total > c->bytes ? total - c->bytes : 0;
        MG_INFO(BK_MODULE,
                "compaction: entry log %x (%" PRIu64 " bytes) deleted, %" PRIu64
                " live entries (%" PRIu64 " bytes) copied",
                id, total, c->entries, c->bytes);
        if (bk_gc_space_short(g))
            bk_server_check_disk(s);
    }
    if (op->rc < 0 || c->stop_step)
        g->n_queue = g->i_queue = 0; /* the run ends here (the test hook: as a crash would) */
    bk_store_compact_fini(st, &g->comp);
    g->compacting = false;
    bk_gc_compact_next(g);
}

static void bk_gc_slice_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct bk_gc *g = arg;
    if (g->compacting)
        bk_store_compact_slice(&g->srv->store, &g->comp);
}

void bk_gc_inject(struct bk_gc *g, int list_error_at, int stop_step)
{
    g->inject_list_error = list_error_at;
    g->inject_stop_step = stop_step;
}

int bk_gc_run(struct bk_gc *g, bool force_compaction)
{
    if (g->running)
        return -MG_EBUSY;
    g->force_compaction = g->force_compaction || force_compaction;
    if (!g->meta) { /* no metadata store: nothing tells which ledgers are deleted */
        bk_gc_after_ledgers(g);
        return 0;
    }
    g->running = true;
    g->snap = bk_store_ledger_ids(&g->srv->store, &g->n_snap);
    g->list_calls = 0;
    bk_gc_push(g, mg_strdup(BK_GC_ROOT), mg_strdup(""));
    bk_gc_list_next(g);
    return 0;
}

static void bk_gc_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    bk_gc_run(arg, false);
}

struct bk_gc *bk_gc_new(struct bk_server *s, struct meta_store *meta, const struct bk_gc_conf *c)
{
    struct bk_gc *g = mg_calloc(1, sizeof *g);
    g->srv = s;
    g->meta = meta;
    g->conf = *c;
    g->last_minor_ns = g->last_major_ns = mg_mono_ns();
    g->slice_ev = event_new(s->base, -1, 0, bk_gc_slice_cb, g);
    if (c->wait_ms > 0) {
        g->timer_ev = event_new(s->base, -1, EV_PERSIST, bk_gc_timer_cb, g);
        struct timeval tv = {c->wait_ms / 1000, (c->wait_ms % 1000) * 1000};
        event_add(g->timer_ev, &tv);
    }
    return g;
}

bool bk_gc_listing_done(const struct bk_gc *g)
{
    return g->paused;
}

void bk_gc_pause_after_listing(struct bk_gc *g, bool on)
{
    g->pause_listing = on;
}

void bk_gc_resume(struct bk_gc *g)
{
    if (g->paused)
        bk_gc_list_next(g);
}

bool bk_gc_idle(const struct bk_gc *g)
{
    return !g->running && !g->compacting && g->ops == 0;
}

void bk_gc_stats(const struct bk_gc *g, struct bk_gc_stats *out)
{
    *out = g->st;
}

void bk_gc_space_short_entered(struct bk_gc *g)
{
    if (g->conf.force_gc_when_no_space && !g->running) {
        MG_INFO(BK_MODULE, "gc: disk short of space, isForceGCAllowWhenNoSpace: running gc now");
        bk_gc_run(g, true);
    }
}

void bk_gc_free(struct bk_gc *g)
{
    if (!g)
        return;
    if (g->req)
        g->req->data = NULL; /* the callback in flight frees its request and finds no gc */
    mg_event_free(g->timer_ev);
    mg_event_free(g->slice_ev);
    bk_gc_clear_run(g);
    if (g->compacting)
        bk_store_compact_fini(&g->srv->store, &g->comp);
    mg_free(g->queue);
    mg_free(g->stack);
    mg_free(g);
}
