/*
 * ml.c - managed ledger core: factory, deferred tasks, ledger list, positions, appends,
 * rollover, tail cache, trimming, entry lookups.
 *
 * Happy path: ml_open loads the ML from the store (load_ml, if the store has it), creates
 * a ledger and hands the handle out. ml_append wraps the evbuffer in a refcounted entry,
 * assigns (current ledger, next entry id) and hands it to the store; completions are
 * drained strictly in append order (a later completion waits for the earlier ones), each
 * one updates the ledger's counts, the last confirmed position and the tail cache, calls
 * the caller back and finally wakes waiting cursor reads. When the current ledger reaches
 * max_entries_per_ledger or max_size_per_ledger, appends queue; once the in-flight adds
 * completed the ledger is closed, the next one created and the ledger list saved, then
 * the queued appends go out. Open waits for the list write too.
 * When every durable cursor's mark-delete passed whole ledgers (other than the current
 * one) and retention allows, they leave the stored list, then the store deletes them.
 *
 * Failure modes: a failed add fails itself, the adds behind it and the queued appends;
 * the next append rolls to a new ledger (a rollover that cannot create a ledger fails the
 * queued appends; the next append tries again). -MG_EFENCED fences the ML for good.
 * Closing the last handle completes everything pending with -MG_ECANCELED from the loop; store
 * requests still in flight keep the struct alive (ml->holds) until they come back.
 * ml_factory_free drains the task queue with -MG_ECANCELED so nothing runs afterwards.
 */
#include "ml/ml_int.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"
#include "util/loop.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define ML_MOD "ml"

/* One explicit table of stores (docs/style.md §2): where entries live, and where the
 * ledger list and cursors are kept (NULL: nowhere, they die with the ML). */
static const struct ml_store {
    const char *name;
    const struct ml_ledger_ops *ledgers;
    const struct ml_meta_ops *meta;
} ml_stores[] = {
    {"memory", &ml_ledgers_memory, NULL},
    {"bookkeeper", &ml_ledgers_bookkeeper, &ml_meta_store},
};

/* ---- positions and entries --------------------------------------------------------- */

int ml_pos_cmp(struct ml_position a, struct ml_position b)
{
    if (a.ledger != b.ledger)
        return a.ledger < b.ledger ? -1 : 1;
    if (a.entry != b.entry)
        return a.entry < b.entry ? -1 : 1;
    return 0;
}

struct ml_entry *ml_entry_ref(struct ml_entry *e)
{
    if (e)
        e->refs++;
    return e;
}

void ml_entry_unref(struct ml_entry *e)
{
    if (!e)
        return;
    MG_ASSERT(e->refs > 0);
    if (--e->refs > 0)
        return;
    if (e->data)
        evbuffer_free(e->data);
    mg_free(e);
}

struct ml_entry *ml_entry_new(struct evbuffer *data, const struct ml_entry_info *info)
{
    struct ml_entry *e = mg_calloc(1, sizeof *e);
    e->refs = 1;
    e->pos = (struct ml_position){-1, -1};
    e->data = data;
    e->size = evbuffer_get_length(data);
    e->num_messages = 1; /* nobody said: one message, no metadata */
    if (info) {
        e->num_messages = info->num_messages > 0 ? info->num_messages : 1;
        e->batched = info->batched;
        e->publish_time = info->publish_time;
        e->key_hash = info->key_hash;
        e->deliver_at_time = info->deliver_at_time;
        e->chunk_key = info->chunk_key;
        e->chunk_last = info->chunk_last;
        e->tail_len = info->tail_len <= e->size ? info->tail_len : 0;
        e->tail_crc = info->tail_crc;
    }
    return e;
}

struct ml_entry *ml_entry_stored(const struct ml_factory *f, struct evbuffer *data)
{
    struct ml_entry_info info;
    memset(&info, 0, sizeof info);
    bool known = f && f->cfg.entry_info && f->cfg.entry_info(data, &info) == 0;
    return ml_entry_new(data, known ? &info : NULL);
}

/* ---- deferred tasks ----------------------------------------------------------------- */

static void ml_task_tmr_cb(struct mg_timer *tmr, void *arg)
{
    struct ml_factory *f = arg;
    (void)tmr;
    /* Run what was queued before this pass; work queued by the callbacks waits for the
     * next pass so I/O is not starved. */
    int n = f->n_tasks;
    f->running_tasks = true;
    while (n-- > 0 && !TAILQ_EMPTY(&f->tasks)) {
        struct ml_task *t = TAILQ_FIRST(&f->tasks);
        TAILQ_REMOVE(&f->tasks, t, link);
        f->n_tasks--;
        t->queued = false;
        t->fn(t->arg, 0);
    }
    f->running_tasks = false;
    /* A zero timeout rather than an activation: libevent would run an event activated from
     * its own callback again in this same pass. */
    if (!TAILQ_EMPTY(&f->tasks) && !f->closing)
        mg_timer_start(&f->task_tmr, 0);
}

void ml_defer(struct ml_factory *f, struct ml_task *t, ml_task_fn fn, void *arg)
{
    MG_ASSERT(!t->queued);
    t->fn = fn;
    t->arg = arg;
    t->queued = true;
    TAILQ_INSERT_TAIL(&f->tasks, t, link);
    f->n_tasks++;
    if (!f->closing && !f->running_tasks)
        mg_timer_activate(&f->task_tmr);
}

void ml_task_cancel(struct ml_factory *f, struct ml_task *t)
{
    if (!t->queued)
        return;
    TAILQ_REMOVE(&f->tasks, t, link);
    f->n_tasks--;
    t->queued = false;
}

static void ml_store_later_task(void *arg, int status)
{
    struct ml_store_req *req = arg;
    if (status) {
        for (int i = 0; i < req->n; i++)
            ml_entry_unref(req->entries[i]);
        mg_free(req->entries);
        req->entries = NULL;
        req->n = 0;
    } else {
        status = req->status;
    }
    req->cb(req, status);
}

void ml_store_complete_later(struct ml_factory *f, struct ml_store_req *req, int status)
{
    req->status = status;
    ml_defer(f, &req->task, ml_store_later_task, req);
}

void ml_store_complete_all(struct ml_store_req *req, int status)
{
    while (req) {
        struct ml_store_req *next = req->next_;
        req->next_ = NULL;
        req->cb(req, status);
        req = next;
    }
}

struct ml_call {
    struct ml_task task;
    ml_task_fn fn;
    void *arg; /* borrowed */
};

static void ml_call_trampoline(void *arg, int status)
{
    struct ml_call *c = arg;
    ml_task_fn fn = c->fn;
    void *a = c->arg;
    mg_free(c);
    fn(a, status);
}

void ml_defer_call(struct ml_factory *f, ml_task_fn fn, void *arg)
{
    struct ml_call *c = mg_calloc(1, sizeof *c);
    c->fn = fn;
    c->arg = arg;
    ml_defer(f, &c->task, ml_call_trampoline, c);
}

/* ---- factory ------------------------------------------------------------------------ */

static void ml_periodic_check(struct ml_ledger *ml);

/* Every retention_check_interval_ms (Pulsar's BrokerService.checkConsumedLedgers): each open
 * ML trims what retention lets go and rolls a current ledger that its age made full, so time
 * does its part with no traffic. A pass checks at most ML_CHECK_SLICE MLs per timer firing
 * and goes on 1 ms later from the next one (held meanwhile), so thousands of MLs never
 * make one loop turn long. */
static void ml_cache_evict_tmr_cb(struct mg_timer *tmr, void *arg);

static void ml_check_tmr_cb(struct mg_timer *tmr, void *arg)
{
    struct ml_factory *f = arg;
    (void)tmr;
    struct ml_ledger *ml = f->check_next;
    bool resumed = ml != NULL;
    if (!resumed)
        ml = TAILQ_FIRST(&f->all);
    else
        f->check_next = NULL; /* its hold is dropped below, after the check */
    for (int n = 0; ml && n < ML_CHECK_SLICE; n++) {
        if (!resumed)
            ml_hold(ml);
        resumed = false;
        ml_periodic_check(ml);
        struct ml_ledger *next = TAILQ_NEXT(ml, link);
        ml_release(ml);
        ml = next;
    }
    if (f->closing)
        return;
    if (ml) {
        ml_hold(ml); /* the next slice starts here */
        f->check_next = ml;
        mg_timer_start(&f->check_tmr, 1);
        return;
    }
    mg_timer_start(&f->check_tmr, (uint64_t)f->cfg.retention_check_interval_ms);
}

struct ml_factory *ml_factory_new(struct mg_loop *loop, const char *store,
                                  const struct ml_config *cfg)
{
    const struct ml_store *st = NULL;
    for (size_t i = 0; i < sizeof ml_stores / sizeof ml_stores[0]; i++)
        if (store && strcmp(ml_stores[i].name, store) == 0)
            st = &ml_stores[i];
    if (!st) {
        MG_ERROR(ML_MOD, "unknown managed-ledger store \"%s\" (known: memory, bookkeeper)",
                 store ? store : "(null)");
        return NULL;
    }
    if (!loop) {
        MG_ERROR(ML_MOD, "ml_factory_new: no loop");
        return NULL;
    }
    struct ml_factory *f = mg_calloc(1, sizeof *f);
    f->loop = loop;
    if (cfg) {
        f->cfg = *cfg;
    } else {
        f->cfg.cache_size_bytes = 16u << 20;
        f->cfg.cache_eviction_time_ms = 1000;
        f->cfg.max_entries_per_ledger = 50000;
        f->cfg.max_size_per_ledger = (int64_t)2048 << 20;
    }
    f->store = st->name;
    f->lops = st->ledgers;
    f->mops = st->meta;
    mg_map_init(&f->by_name);
    TAILQ_INIT(&f->all);
    TAILQ_INIT(&f->tasks);
    mg_timer_init(&f->task_tmr, loop, ml_task_tmr_cb, f);
    mg_timer_init(&f->check_tmr, loop, ml_check_tmr_cb, f);
    mg_timer_init(&f->evict_tmr, loop, ml_cache_evict_tmr_cb, f);
    int rc = f->lops->init(f, &f->limpl);
    if (rc == 0 && f->mops) {
        rc = f->mops->init(f, &f->mimpl);
        if (rc < 0)
            f->lops->fini(f->limpl);
    }
    if (rc < 0) {
        MG_ERROR(ML_MOD, "store %s: init failed: %s", st->name, mg_strerror(rc));
        mg_timer_fini(&f->task_tmr);
        mg_timer_fini(&f->check_tmr);
        mg_timer_fini(&f->evict_tmr);
        mg_map_fini(&f->by_name);
        mg_free(f);
        return NULL;
    }
    if (f->cfg.retention_check_interval_ms > 0)
        mg_timer_start(&f->check_tmr, (uint64_t)f->cfg.retention_check_interval_ms);
    MG_DEBUG(ML_MOD, "factory with store %s", st->name);
    return f;
}

static void ml_shutdown(struct ml_ledger *ml);
static void ml_free(struct ml_ledger *ml);

void ml_factory_free(struct ml_factory *f)
{
    if (!f)
        return;
    f->closing = true;
    mg_timer_stop(&f->check_tmr);
    mg_timer_stop(&f->evict_tmr);
    if (f->check_next) {
        ml_release(f->check_next);
        f->check_next = NULL;
    }
    struct ml_ledger *ml = TAILQ_FIRST(&f->all);
    while (ml) {
        struct ml_ledger *next = TAILQ_NEXT(ml, link);
        ml_hold(ml);
        ml_shutdown(ml);
        next = TAILQ_NEXT(ml, link);
        ml_release(ml);
        ml = next;
    }
    /* Everything pending completes now, with -MG_ECANCELED: queued tasks, then what the
     * store still has (its fini), then the tasks that produced. */
    for (int pass = 0; pass < 2; pass++) {
        while (!TAILQ_EMPTY(&f->tasks)) {
            struct ml_task *t = TAILQ_FIRST(&f->tasks);
            TAILQ_REMOVE(&f->tasks, t, link);
            f->n_tasks--;
            t->queued = false;
            t->fn(t->arg, -MG_ECANCELED);
        }
        if (pass == 0) {
            if (f->mops)
                f->mops->fini(f->mimpl);
            f->lops->fini(f->limpl);
        }
    }
    while ((ml = TAILQ_FIRST(&f->all)) != NULL) {
        MG_WARN(ML_MOD, "%s: still held at factory free", ml->name);
        ml_free(ml);
    }
    mg_timer_fini(&f->task_tmr);
    mg_timer_fini(&f->check_tmr);
    mg_timer_fini(&f->evict_tmr);
    mg_map_fini(&f->by_name);
    mg_free(f);
}

/* ---- ledger list and positions ------------------------------------------------------ */

int ml_lower_bound(const void *base, int n, size_t size, size_t key_off, int64_t key)
{
    const char *p = base;
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        int64_t k;
        memcpy(&k, p + (size_t)mid * size + key_off, sizeof k);
        if (k < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int ml_read_range(struct ml_ledger *ml, struct ml_store_req *req, int64_t ledger, int64_t first,
                  int64_t last, ml_store_cb cb, void *data)
{
    /* A fresh request: nothing of a previous read (errmsg, entries) carries over. */
    *req = (struct ml_store_req){
        .data = data, .cb = cb, .ledger_id = ledger, .first = first, .last = last};
    return ml->f->lops->read_range(ml->f->limpl, ml, req);
}

/* First index whose id >= id. */
static int ml_ledger_lower_bound(const struct ml_ledger *ml, int64_t id)
{
    return ml_lower_bound(ml->ledgers, ml->n_ledgers, sizeof *ml->ledgers,
                          offsetof(struct ml_ledger_info, id), id);
}

struct ml_ledger_info *ml_find_ledger(const struct ml_ledger *ml, int64_t id)
{
    int i = ml_ledger_lower_bound(ml, id);
    if (i < ml->n_ledgers && ml->ledgers[i].id == id)
        return &ml->ledgers[i];
    return NULL;
}

static struct ml_ledger_info *ml_current_ledger(const struct ml_ledger *ml)
{
    return ml->n_ledgers ? &ml->ledgers[ml->n_ledgers - 1] : NULL;
}

static struct ml_ledger_info *ml_push_ledger(struct ml_ledger *ml, int64_t id)
{
    if (ml->n_ledgers == ml->cap_ledgers) {
        ml->cap_ledgers = ml->cap_ledgers ? ml->cap_ledgers * 2 : 4;
        ml->ledgers = mg_realloc(ml->ledgers, (size_t)ml->cap_ledgers * sizeof *ml->ledgers);
    }
    MG_ASSERT(ml->n_ledgers == 0 || ml->ledgers[ml->n_ledgers - 1].id < id);
    struct ml_ledger_info *li = &ml->ledgers[ml->n_ledgers++];
    memset(li, 0, sizeof *li);
    li->id = id;
    li->publish_known = true;
    li->created_ms = mg_loop_mono_ms(ml->f->loop);
    return li;
}

void ml_restore_ledger(struct ml_ledger *ml, int64_t id, int64_t entries, int64_t size)
{
    struct ml_ledger_info *li = ml_push_ledger(ml, id);
    li->entries = li->next_entry = entries;
    li->size = li->assigned_size = size;
    li->publish_known = entries == 0;
}

struct ml_position ml_normalize(const struct ml_ledger *ml, struct ml_position pos)
{
    for (int i = ml_ledger_lower_bound(ml, pos.ledger); i < ml->n_ledgers; i++) {
        const struct ml_ledger_info *li = &ml->ledgers[i];
        int64_t e = li->id == pos.ledger ? (pos.entry < 0 ? 0 : pos.entry) : 0;
        if (e < li->next_entry || i == ml->n_ledgers - 1)
            return (struct ml_position){li->id, e};
    }
    return pos;
}

struct ml_position ml_next_position(const struct ml_ledger *ml, struct ml_position pos)
{
    if (pos.entry == INT64_MAX)
        return pos;
    return ml_normalize(ml, (struct ml_position){pos.ledger, pos.entry + 1});
}

struct ml_position ml_prev_position(const struct ml_ledger *ml, struct ml_position pos)
{
    if (pos.entry > 0)
        return (struct ml_position){pos.ledger, pos.entry - 1};
    for (int i = ml_ledger_lower_bound(ml, pos.ledger) - 1; i >= 0; i--)
        if (ml->ledgers[i].next_entry > 0)
            return (struct ml_position){ml->ledgers[i].id, ml->ledgers[i].next_entry - 1};
    return (struct ml_position){pos.ledger, -1};
}

static struct ml_position ml_compute_lac(const struct ml_ledger *ml)
{
    for (int i = ml->n_ledgers - 1; i >= 0; i--)
        if (ml->ledgers[i].entries > 0)
            return (struct ml_position){ml->ledgers[i].id, ml->ledgers[i].entries - 1};
    const struct ml_ledger_info *cur = ml_current_ledger(ml);
    return (struct ml_position){cur ? cur->id : -1, -1};
}

struct ml_position ml_last_confirmed(const struct ml_ledger *ml)
{
    return ml->lac;
}

struct ml_position ml_first_position(const struct ml_ledger *ml)
{
    if (!ml->n_ledgers)
        return ML_POS_EARLIEST;
    return ml_normalize(ml, (struct ml_position){ml->ledgers[0].id, 0});
}

int64_t ml_count_entries(const struct ml_ledger *ml, struct ml_position from, struct ml_position to)
{
    int64_t total = 0;
    for (int i = 0; i < ml->n_ledgers; i++) {
        const struct ml_ledger_info *li = &ml->ledgers[i];
        int64_t n = li->entries;
        if (n == 0)
            continue;
        int64_t lo, hi;
        if (li->id > from.ledger)
            lo = 0;
        else if (li->id == from.ledger)
            lo = from.entry >= n - 1 ? n : from.entry + 1;
        else
            lo = n;
        if (li->id < to.ledger)
            hi = n - 1;
        else if (li->id == to.ledger)
            hi = to.entry < n - 1 ? to.entry : n - 1;
        else
            hi = -1;
        if (hi >= lo)
            total += hi - lo + 1;
    }
    return total;
}

const char *ml_name(const struct ml_ledger *ml)
{
    return ml->name;
}

void ml_get_stats(const struct ml_ledger *ml, struct ml_stats *out)
{
    memset(out, 0, sizeof *out);
    out->entries_added = ml->entries_added;
    for (int i = 0; i < ml->n_ledgers; i++) {
        out->number_of_entries += ml->ledgers[i].entries;
        out->total_size += ml->ledgers[i].size;
    }
    const struct ml_ledger_info *cur = ml_current_ledger(ml);
    if (cur) {
        out->current_ledger_entries = cur->entries;
        out->current_ledger_size = cur->size;
    }
    out->pending_appends = ml->n_pending;
    out->num_ledgers = ml->n_ledgers;
}

int ml_ledger_next(const struct ml_ledger *ml, size_t *pos, struct ml_ledger_stat *out)
{
    if (*pos >= (size_t)ml->n_ledgers)
        return 0;
    const struct ml_ledger_info *li = &ml->ledgers[(*pos)++];
    out->id = li->id;
    out->entries = li->entries;
    out->size = li->size;
    out->closed_ms = li->timestamp;
    return 1;
}

const char *ml_state_name(const struct ml_ledger *ml)
{
    if (ml->fenced)
        return "Fenced";
    switch (ml->state) {
    case ML_OPENING:
        return "Opening";
    case ML_READY:
        return "LedgerOpened";
    default:
        return "Closed";
    }
}

void ml_set_retention(struct ml_ledger *ml, int64_t time_minutes, int64_t size_mb)
{
    ml->retention_set = true;
    ml->retention_time_minutes = time_minutes;
    ml->retention_size_mb = size_mb;
    ml_maybe_trim(ml, NULL);
}

void ml_reset_retention(struct ml_ledger *ml)
{
    ml->retention_set = false;
    ml_maybe_trim(ml, NULL);
}

int64_t ml_retention_time_minutes(const struct ml_ledger *ml)
{
    return ml->retention_set ? ml->retention_time_minutes : ml->f->cfg.retention_time_minutes;
}

/* ---- tail cache ---------------------------------------------------------------------
 *
 * The bound is on heap, not on payload bytes. An appended entry's evbuffer is relinked
 * from the connection's read chains (wire.c), which hold more than the entry: a 1 KiB
 * message costs ~3 KiB there. So the cache keeps its own compact copy of each entry
 * (below) and charges it ml_cache_charge (that storage plus ML_CACHE_ENTRY_OVERHEAD); the sum over
 * the factory never exceeds cache_size_bytes. The copy costs one memcpy per appended byte and frees
 * the read chains as soon as the add completed and the consumers took it. Entries leave the cache
 * oldest first: when the budget is exceeded (this ML's, then others'), after cache_eviction_time_ms
 * or once every open cursor read them (the factory's evict_tmr, pending only while something is
 * cached: an idle broker has no timer), on trim and on close. When that timer empties the cache,
 * the allocator's free memory goes back to the system (mg_heap_trim), so a broker that went quiet
 * does not sit at its peak. A read that misses goes to the store (bookies' write cache or entry
 * log); store reads are not cached. */

/* libevent allocates a chain for n bytes as its header plus n rounded up to a power of two
 * of at least 1 KiB (evbuffer_chain_new); a reference chain is such a chain for a small
 * struct. A cached entry's bytes go where they cost less: copied into one chain (small
 * entries), or into a block of exactly their size behind a reference chain (large ones). */
#define ML_EV_CHAIN_HDR 64
#define ML_EV_CHAIN_MIN 1024

static size_t ml_ev_chain_alloc(size_t n)
{
    size_t need = n + ML_EV_CHAIN_HDR, a = ML_EV_CHAIN_MIN;
    while (a < need)
        a <<= 1;
    return a;
}

static bool ml_cache_by_reference(size_t size)
{
    return ml_ev_chain_alloc(0) + size < ml_ev_chain_alloc(size);
}

/* The heap a cached copy of e holds: its bytes' storage plus the entry and its evbuffer. */
static size_t ml_cache_charge(const struct ml_entry *e)
{
    size_t data = ml_cache_by_reference(e->size) ? ml_ev_chain_alloc(0) + e->size
                                                 : ml_ev_chain_alloc(e->size);
    return data + ML_CACHE_ENTRY_OVERHEAD;
}

static struct ml_entry *ml_cache_at(const struct ml_cache *c, size_t i)
{
    return c->ring[(c->head + i) % c->cap].e;
}

static void ml_cache_pop(struct ml_ledger *ml)
{
    struct ml_cache *c = &ml->cache;
    struct ml_entry *e = c->ring[c->head].e;
    c->ring[c->head].e = NULL;
    c->head = (c->head + 1) % c->cap;
    c->len--;
    c->bytes -= ml_cache_charge(e);
    ml->f->cache_bytes -= ml_cache_charge(e);
    ml_entry_unref(e);
}

static void ml_cache_free_block(const void *data, size_t len, void *arg)
{
    (void)len;
    (void)arg;
    mg_free((void *)data);
}

/* A copy of e (same position and content) whose bytes are stored compactly (above). */
static struct ml_entry *ml_cache_copy(const struct ml_entry *e)
{
    struct ml_entry *c = mg_malloc(sizeof *c);
    *c = *e;
    c->refs = 1;
    c->data = evbuffer_new();
    MG_ASSERT(c->data != NULL);
    if (e->size > 0 && ml_cache_by_reference(e->size)) {
        void *block = mg_malloc(e->size);
        MG_ASSERT(evbuffer_copyout(e->data, block, e->size) == (ev_ssize_t)e->size);
        MG_ASSERT(evbuffer_add_reference(c->data, block, e->size, ml_cache_free_block, NULL) == 0);
    } else if (e->size > 0) {
        struct evbuffer_iovec v;
        MG_ASSERT(evbuffer_reserve_space(c->data, (ev_ssize_t)e->size, &v, 1) == 1);
        MG_ASSERT(evbuffer_copyout(e->data, v.iov_base, e->size) == (ev_ssize_t)e->size);
        v.iov_len = e->size;
        MG_ASSERT(evbuffer_commit_space(c->data, &v, 1) == 0);
    }
    return c;
}

/* managedLedgerCacheEvictionIntervalMs: the eviction timer's shortest period. */
static uint64_t ml_cache_evict_every(const struct ml_factory *f)
{
    return f->cfg.cache_eviction_interval_ms > 0 ? (uint64_t)f->cfg.cache_eviction_interval_ms : 10;
}

static void ml_cache_put(struct ml_ledger *ml, struct ml_entry *e)
{
    struct ml_factory *f = ml->f;
    struct ml_cache *c = &ml->cache;
    size_t limit = f->cfg.cache_size_bytes;
    if (limit == 0 || ml_cache_charge(e) > limit)
        return; /* no cache, or an entry that would evict everything and then itself */
    if (c->len == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 64;
        struct ml_cache_slot *ring = mg_calloc(ncap, sizeof *ring);
        for (size_t i = 0; i < c->len; i++)
            ring[i] = c->ring[(c->head + i) % c->cap];
        mg_free(c->ring);
        c->ring = ring;
        c->cap = ncap;
        c->head = 0;
    }
    c->ring[(c->head + c->len) % c->cap] =
        (struct ml_cache_slot){ml_cache_copy(e), mg_loop_mono_ms(f->loop)};
    c->len++;
    c->bytes += ml_cache_charge(e);
    f->cache_bytes += ml_cache_charge(e);
    /* Over the factory-wide budget: evict this ML's oldest entries first, then other
     * MLs' (oldest first within each). */
    while (f->cache_bytes > limit && c->len > 0)
        ml_cache_pop(ml);
    struct ml_ledger *o;
    TAILQ_FOREACH(o, &f->all, link)
    {
        while (f->cache_bytes > limit && o->cache.len > 0)
            ml_cache_pop(o);
        if (f->cache_bytes <= limit)
            break;
    }
    f->cache_put_ms = mg_loop_mono_ms(f->loop);
    if (f->cfg.cache_eviction_time_ms > 0 && f->cache_bytes > 0 &&
        (!mg_timer_pending(&f->evict_tmr) || f->evict_quiet_wait)) {
        f->evict_quiet_wait = false;
        mg_timer_start(&f->evict_tmr, ml_cache_evict_every(f));
    }
}

/* The lowest read position of the ML's open cursors (Pulsar's slowest reader): every
 * entry before it has been read by each of them. false when no cursor is open. */
static bool ml_cache_slowest_reader(const struct ml_ledger *ml, struct ml_position *pos)
{
    bool any = false;
    for (int i = 0; i < ml->n_cursors; i++) {
        const struct ml_cursor *cu = ml->cursors[i];
        if (!cu->open)
            continue;
        if (!any || ml_pos_cmp(cu->read_pos, *pos) < 0)
            *pos = cu->read_pos;
        any = true;
    }
    return any;
}

/* Entries leave the cache once cached longer than cache_eviction_time_ms, or once every
 * open cursor has read them (Pulsar's eviction by the slowest reader; a rewind or a
 * redelivery then reads from the store). The timer then runs again every
 * cache_eviction_interval_ms while an ML with open cursors has entries cached, else when
 * the next entry expires, and stops with the cache empty. One pass touches every ML and
 * its cursors once, plus what it evicts. */
static void ml_cache_evict_tmr_cb(struct mg_timer *tmr, void *arg)
{
    (void)tmr;
    struct ml_factory *f = arg;
    uint64_t now = mg_loop_mono_ms(f->loop);
    uint64_t ttl = (uint64_t)f->cfg.cache_eviction_time_ms;
    uint64_t every = ml_cache_evict_every(f);
    uint64_t next = UINT64_MAX; /* when to look again */
    struct ml_ledger *ml;
    TAILQ_FOREACH(ml, &f->all, link)
    {
        struct ml_cache *c = &ml->cache;
        if (c->len == 0)
            continue;
        struct ml_position slow;
        bool readers = ml_cache_slowest_reader(ml, &slow);
        while (c->len > 0 && (c->ring[c->head].at_ms + ttl <= now ||
                              (readers && ml_pos_cmp(c->ring[c->head].e->pos, slow) < 0)))
            ml_cache_pop(ml);
        if (c->len == 0)
            continue;
        uint64_t t = readers ? now + every : c->ring[c->head].at_ms + ttl;
        if (t < next)
            next = t;
    }
    if (next == UINT64_MAX) {
        /* The cache is empty. Once nothing was cached for cache_eviction_time_ms (a quiet
         * spell, not a consumer keeping up), the allocator gives its memory back: at most
         * once per burst, never per pass. */
        f->evict_quiet_wait = false;
        if (now >= f->cache_put_ms + ttl) {
            mg_heap_trim();
        } else {
            f->evict_quiet_wait = true;
            mg_timer_start(&f->evict_tmr, f->cache_put_ms + ttl - now);
        }
        return;
    }
    mg_timer_start(&f->evict_tmr, next - now > every ? next - now : every);
}

struct ml_entry *ml_cache_get(struct ml_ledger *ml, struct ml_position pos)
{
    struct ml_cache *c = &ml->cache;
    size_t lo = 0, hi = c->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = ml_pos_cmp(ml_cache_at(c, mid)->pos, pos);
        if (cmp == 0)
            return ml_entry_ref(ml_cache_at(c, mid));
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static void ml_cache_drop_upto(struct ml_ledger *ml, struct ml_position pos)
{
    while (ml->cache.len > 0 && ml_pos_cmp(ml_cache_at(&ml->cache, 0)->pos, pos) <= 0)
        ml_cache_pop(ml);
}

static void ml_cache_clear(struct ml_ledger *ml)
{
    while (ml->cache.len > 0)
        ml_cache_pop(ml);
    mg_free(ml->cache.ring);
    memset(&ml->cache, 0, sizeof ml->cache);
}

/* ---- lifetime ------------------------------------------------------------------------ */

void ml_hold(struct ml_ledger *ml)
{
    ml->holds++;
}

void ml_release(struct ml_ledger *ml)
{
    MG_ASSERT(ml->holds > 0);
    if (--ml->holds == 0)
        ml_free(ml);
}

int ml_usable(const struct ml_ledger *ml, bool args_ok)
{
    if (!ml || !args_ok)
        return -MG_EINVAL;
    if (ml->state != ML_READY || ml->deleted)
        return -MG_ECLOSED;
    return 0;
}

static void ml_free(struct ml_ledger *ml)
{
    struct ml_factory *f = ml->f;
    MG_ASSERT(TAILQ_EMPTY(&ml->sent) && TAILQ_EMPTY(&ml->unsent));
    MG_ASSERT(ml->n_cursors == 0 && TAILQ_EMPTY(&ml->waiters));
    ml_task_cancel(f, &ml->drain_task);
    if (mg_map_get_str(&f->by_name, ml->name) == ml)
        mg_map_del_str(&f->by_name, ml->name);
    TAILQ_REMOVE(&f->all, ml, link);
    ml_cache_clear(ml);
    while (ml->open_waiters) {
        struct ml_open_waiter *w = ml->open_waiters;
        ml->open_waiters = w->next;
        mg_free(w);
    }
    if (f->mops && f->mops->free_ml)
        f->mops->free_ml(f->mimpl, ml);
    if (f->lops->free_ml)
        f->lops->free_ml(f->limpl, ml);
    mg_free(ml->doomed);
    mg_free(ml->doomed_seq);
    mg_free(ml->lost);
    mg_free(ml->cursors);
    mg_free(ml->ledgers);
    mg_free(ml->name);
    mg_free(ml);
}

static struct ml_ledger *ml_new(struct ml_factory *f, const char *name)
{
    struct ml_ledger *ml = mg_calloc(1, sizeof *ml);
    ml->f = f;
    ml->name = mg_strdup(name);
    ml->holds = 1; /* released by ml_shutdown */
    ml->state = ML_OPENING;
    ml->lac = (struct ml_position){-1, -1};
    TAILQ_INIT(&ml->sent);
    TAILQ_INIT(&ml->unsent);
    TAILQ_INIT(&ml->waiters);
    TAILQ_INSERT_TAIL(&f->all, ml, link);
    mg_map_put_str(&f->by_name, name, ml);
    return ml;
}

#define ML_ROLL_BACKOFF_MIN_MS 250
#define ML_ROLL_BACKOFF_MAX_MS 5000

/* ---- ledger-list writes ---------------------------------------------------------------- */

typedef void (*ml_saved_fn)(struct ml_ledger *ml, int status);

struct save_op {
    struct ml_ledger *ml; /* borrowed, held */
    ml_saved_fn then;     /* may be NULL */
    uint64_t seq;         /* doomed ledgers up to this one are off the stored list */
    struct ml_store_req req;
};

/* Ledgers removed from the list are deleted only once a list without them is stored, so
 * the stored list never names a deleted ledger. */
static void ml_doom_ledger(struct ml_ledger *ml, int64_t id)
{
    if (ml->n_doomed == ml->cap_doomed) {
        ml->cap_doomed = ml->cap_doomed ? ml->cap_doomed * 2 : 8;
        ml->doomed = mg_realloc(ml->doomed, (size_t)ml->cap_doomed * sizeof *ml->doomed);
        ml->doomed_seq =
            mg_realloc(ml->doomed_seq, (size_t)ml->cap_doomed * sizeof *ml->doomed_seq);
    }
    ml->doomed[ml->n_doomed] = id;
    ml->doomed_seq[ml->n_doomed] = ++ml->save_seq;
    ml->n_doomed++;
}

static void ml_purge_doomed(struct ml_ledger *ml, uint64_t upto)
{
    struct ml_factory *f = ml->f;
    int k = 0;
    for (int i = 0; i < ml->n_doomed; i++) {
        if (ml->doomed_seq[i] <= upto) {
            MG_DEBUG(ML_MOD, "%s: deleting ledger %" PRId64, ml->name, ml->doomed[i]);
            f->lops->delete_ledger(f->limpl, ml, ml->doomed[i], NULL);
        } else {
            ml->doomed[k] = ml->doomed[i];
            ml->doomed_seq[k++] = ml->doomed_seq[i];
        }
    }
    ml->n_doomed = k;
}

static void ml_save_done(struct ml_store_req *req, int status)
{
    struct save_op *op = req->data;
    struct ml_ledger *ml = op->ml;
    if (status == 0)
        ml_purge_doomed(ml, op->seq);
    else if (status == -MG_EFENCED)
        ml_fence(ml);
    else if (status != -MG_ECANCELED)
        MG_WARN(ML_MOD, "%s: ledger list not stored: %s", ml->name, mg_strerror(status));
    ml_saved_fn then = op->then;
    mg_free(op);
    if (then)
        then(ml, status);
    ml_release(ml);
}

/* Persist the ledger list; then(ml, status) runs once it is stored (at once, inside this
 * call, when the store keeps no metadata or the write cannot start). */
static void ml_save(struct ml_ledger *ml, ml_saved_fn then)
{
    struct ml_factory *f = ml->f;
    if (!f->mops) {
        ml_purge_doomed(ml, ml->save_seq);
        if (then)
            then(ml, 0);
        return;
    }
    struct save_op *op = mg_calloc(1, sizeof *op);
    op->ml = ml;
    op->then = then;
    op->seq = ml->save_seq;
    op->req.data = op;
    op->req.cb = ml_save_done;
    ml_hold(ml);
    int rc = ml->fenced ? -MG_EFENCED : f->mops->save_ml(f->mimpl, ml, &op->req);
    if (rc < 0) {
        mg_free(op);
        if (then)
            then(ml, rc);
        ml_release(ml);
    }
}

void ml_persist_cursor(struct ml_cursor *c, bool now)
{
    struct ml_ledger *ml = c->ml;
    if (c->durable && ml->f->mops && ml->state == ML_READY && !ml->deleted && !ml->fenced)
        ml->f->mops->save_cursor(ml->f->mimpl, ml, c, now, NULL);
}

struct req_cancel {
    struct ml_append_req *req; /* borrowed: the caller's */
    int status;
};

static void ml_req_cancel_task(void *arg, int status)
{
    struct req_cancel *rc = arg;
    struct ml_append_req *req = rc->req;
    int st = status ? status : rc->status;
    mg_free(rc);
    req->cb(req, st);
}

static void ml_defer_append_fail(struct ml_factory *f, struct ml_append_req *req, int status)
{
    struct req_cancel *rc = mg_calloc(1, sizeof *rc);
    rc->req = req;
    rc->status = status;
    req->pending = NULL;
    ml_defer_call(f, ml_req_cancel_task, rc);
}

static void ml_add_op_free(struct ml_add_op *op)
{
    ml_entry_unref(op->entry);
    mg_free(op);
}

/* Take every pending append off the ML: callers hear status from the loop. */
static void ml_cancel_adds(struct ml_ledger *ml, int status)
{
    struct ml_add_op *op;
    while ((op = TAILQ_FIRST(&ml->sent)) != NULL) {
        TAILQ_REMOVE(&ml->sent, op, link);
        ml->n_pending--;
        if (op->req)
            ml_defer_append_fail(ml->f, op->req, status);
        op->req = NULL;
        if (op->done && !op->orphan)
            ml_add_op_free(op); /* the store already answered (or failed synchronously) */
        else
            op->orphan = true; /* the store completion frees it */
    }
    while ((op = TAILQ_FIRST(&ml->unsent)) != NULL) {
        TAILQ_REMOVE(&ml->unsent, op, link);
        ml->n_pending--;
        if (op->req)
            ml_defer_append_fail(ml->f, op->req, status);
        ml_add_op_free(op);
    }
    ml_task_cancel(ml->f, &ml->drain_task);
}

static void ml_destroy_cursors(struct ml_ledger *ml, bool remove_stored)
{
    while (ml->n_cursors > 0) {
        struct ml_cursor *c = ml->cursors[--ml->n_cursors];
        if (remove_stored && c->durable && ml->f->mops)
            ml->f->mops->remove_cursor(ml->f->mimpl, ml, c->name, NULL);
        ml_cursor_destroy(c, -MG_ECANCELED);
    }
}

struct open_cancel {
    ml_open_cb cb;
    void *data; /* caller's */
    int status;
};

static void ml_open_cancel_task(void *arg, int status)
{
    struct open_cancel *oc = arg;
    ml_open_cb cb = oc->cb;
    void *data = oc->data;
    int st = status ? status : oc->status;
    mg_free(oc);
    cb(NULL, st, data);
}

/* Close the ML for good: everything pending completes with -MG_ECANCELED from the loop. */
static void ml_term_cancel(struct ml_ledger *ml);

static void ml_shutdown(struct ml_ledger *ml)
{
    struct ml_factory *f = ml->f;
    if (ml->state == ML_CLOSED)
        return;
    bool was_ready = ml->state == ML_READY;
    /* Durable cursors' last state goes out now (the store snapshots it in the call). */
    if (was_ready && !ml->deleted && !ml->fenced && f->mops)
        for (int i = 0; i < ml->n_cursors; i++)
            if (ml->cursors[i]->durable)
                f->mops->save_cursor(f->mimpl, ml, ml->cursors[i], true, NULL);
    ml->state = ML_CLOSED;
    if (mg_map_get_str(&f->by_name, ml->name) == ml)
        mg_map_del_str(&f->by_name, ml->name);
    while (ml->open_waiters) {
        struct ml_open_waiter *w = ml->open_waiters;
        ml->open_waiters = w->next;
        struct open_cancel *oc = mg_calloc(1, sizeof *oc);
        oc->cb = w->cb;
        oc->data = w->data;
        oc->status = -MG_ECANCELED;
        ml_defer_call(f, ml_open_cancel_task, oc);
        mg_free(w);
    }
    ml_term_cancel(ml);
    ml_destroy_cursors(ml, false);
    ml_cancel_adds(ml, -MG_ECANCELED);
    /* A store that cannot load an ML back (memory) would keep its ledgers forever. */
    bool drop = !f->mops;
    for (int i = 0; i < ml->n_ledgers; i++) {
        if (drop)
            f->lops->delete_ledger(f->limpl, ml, ml->ledgers[i].id, NULL);
        else if (i == ml->n_ledgers - 1 && f->lops->close_ledger && was_ready)
            f->lops->close_ledger(f->limpl, ml, ml->ledgers[i].id, NULL);
    }
    ml_cache_clear(ml);
    MG_DEBUG(ML_MOD, "%s: closed", ml->name);
    ml_release(ml);
}

void ml_close(struct ml_ledger *ml)
{
    if (!ml)
        return;
    if (ml->refs > 0)
        ml->refs--;
    if (ml->refs == 0)
        ml_shutdown(ml);
}

struct delete_op {
    struct ml_ledger *ml; /* borrowed, held */
    int64_t *ids;         /* owned */
    int n;
    struct ml_store_req req;
};

static void ml_delete_meta_done(struct ml_store_req *req, int status)
{
    struct delete_op *op = req->data;
    struct ml_ledger *ml = op->ml;
    /* Metadata first, ledgers after: a crash in between leaks ledgers but never leaves
     * metadata naming a deleted ledger. */
    if (status == 0 || status == -MG_ENOTFOUND) {
        for (int i = 0; i < op->n; i++)
            ml->f->lops->delete_ledger(ml->f->limpl, ml, op->ids[i], NULL);
    } else {
        MG_WARN(ML_MOD, "%s: metadata not deleted (%s): ledgers kept", ml->name,
                mg_strerror(status));
    }
    mg_free(op->ids);
    mg_free(op);
    ml_release(ml);
}

int ml_delete(struct ml_ledger *ml, bool force)
{
    int rc = ml_usable(ml, true);
    if (rc < 0)
        return rc;
    struct ml_factory *f = ml->f;
    for (int i = 0; i < ml->n_cursors; i++)
        if (ml->cursors[i]->open && !force)
            return -MG_EBUSY;
    ml->deleted = true;
    if (mg_map_get_str(&f->by_name, ml->name) == ml)
        mg_map_del_str(&f->by_name, ml->name);
    ml_destroy_cursors(ml, true);
    ml_cancel_adds(ml, -MG_ECANCELED);
    struct delete_op *op = mg_calloc(1, sizeof *op);
    op->ml = ml;
    op->n = ml->n_ledgers + ml->n_doomed;
    op->ids = mg_malloc((size_t)(op->n ? op->n : 1) * sizeof *op->ids);
    for (int i = 0; i < ml->n_ledgers; i++)
        op->ids[i] = ml->ledgers[i].id;
    for (int i = 0; i < ml->n_doomed; i++)
        op->ids[ml->n_ledgers + i] = ml->doomed[i];
    ml->n_ledgers = 0;
    ml->n_doomed = 0;
    ml_cache_clear(ml);
    op->req.data = op;
    op->req.cb = ml_delete_meta_done;
    ml_hold(ml);
    rc = f->mops ? f->mops->remove_ml(f->mimpl, ml, &op->req) : 0;
    if (!f->mops || rc < 0)
        ml_delete_meta_done(&op->req, rc);
    MG_INFO(ML_MOD, "%s: deleted", ml->name);
    return 0;
}

bool ml_is_fenced(const struct ml_ledger *ml)
{
    return ml && ml->fenced;
}

struct mg_loop *ml_factory_loop(const struct ml_factory *f)
{
    return f->loop;
}

int ml_factory_pending(const struct ml_factory *f)
{
    if (!f)
        return 0;
    int n = f->lops->pending ? f->lops->pending(f->limpl) : 0;
    if (f->mops && f->mops->pending)
        n += f->mops->pending(f->mimpl);
    return n;
}

/* ---- open ----------------------------------------------------------------------------- */

static void ml_open_fail(struct ml_ledger *ml, int status)
{
    /* Called from a store completion: the callbacks may run now. */
    struct ml_open_waiter *w = ml->open_waiters;
    ml->open_waiters = NULL;
    ml->refs = 0;
    MG_WARN(ML_MOD, "%s: open failed: %s", ml->name, mg_strerror(status));
    ml_hold(ml);
    ml_shutdown(ml);
    while (w) {
        struct ml_open_waiter *next = w->next;
        w->cb(NULL, status, w->data);
        mg_free(w);
        w = next;
    }
    ml_release(ml);
}

static void ml_open_saved(struct ml_ledger *ml, int status)
{
    struct ml_factory *f = ml->f;
    if (ml->state == ML_CLOSED)
        return;
    if (status < 0) {
        /* The new ledger is not in the stored list: nobody will ever read it. */
        struct ml_ledger_info *cur = ml_current_ledger(ml);
        f->lops->delete_ledger(f->limpl, ml, cur->id, NULL);
        ml->n_ledgers--;
        ml_open_fail(ml, status);
        return;
    }
    ml->lac = ml_compute_lac(ml);
    ml->state = ML_READY;
    for (int i = 0; i < ml->n_cursors; i++)
        ml_cursor_restored(ml->cursors[i]);
    MG_DEBUG(ML_MOD, "%s: open, current ledger %" PRId64, ml->name, ml_current_ledger(ml)->id);
    struct ml_open_waiter *w = ml->open_waiters;
    ml->open_waiters = NULL;
    ml_hold(ml);
    while (w) {
        struct ml_open_waiter *next = w->next;
        if (ml->state == ML_READY)
            w->cb(ml, 0, w->data);
        else
            w->cb(NULL, -MG_ECANCELED, w->data);
        mg_free(w);
        w = next;
    }
    ml_release(ml);
}

/* Start a step of the open chain: the store op start (of impl) on ml->open_req, completing
 * in cb, which gets the hold on ml taken here. < 0: nothing started, no hold. */
static int ml_open_step(struct ml_ledger *ml, void *impl,
                        int (*start)(void *impl, struct ml_ledger *ml, struct ml_store_req *req),
                        ml_store_cb cb)
{
    ml->open_req.data = ml;
    ml->open_req.cb = cb;
    ml_hold(ml);
    int rc = start(impl, ml, &ml->open_req);
    if (rc < 0)
        ml_release(ml);
    return rc;
}

/* The ML of an open-chain step's completion, or NULL when it closed meanwhile (the step's
 * hold is released then). */
static struct ml_ledger *ml_open_step_ml(struct ml_store_req *req)
{
    struct ml_ledger *ml = req->data;
    if (ml->state != ML_CLOSED)
        return ml;
    ml_release(ml);
    return NULL;
}

/* The end of an open-chain step's completion: status < 0 fails the open; the step's hold
 * on ml goes. */
static void ml_open_step_end(struct ml_ledger *ml, int status)
{
    if (status < 0)
        ml_open_fail(ml, status);
    ml_release(ml);
}

static void ml_open_created(struct ml_store_req *req, int status)
{
    struct ml_ledger *ml = req->data;
    struct ml_factory *f = ml->f;
    if (ml->state == ML_CLOSED) {
        if (status == 0)
            f->lops->delete_ledger(f->limpl, ml, req->ledger_id, NULL);
        ml_release(ml);
        return;
    }
    if (status == 0) {
        ml_push_ledger(ml, req->ledger_id);
        /* Writes wait until the list naming the new ledger is stored (ml_save). */
        ml_save(ml, ml_open_saved);
    }
    ml_open_step_end(ml, status);
}

/* Third step of the open chain (after the ledger list and the recovery of its last ledger):
 * the durable cursors, then the first ledger of this session. */
static void ml_open_cursors_loaded(struct ml_store_req *req, int status)
{
    struct ml_ledger *ml = ml_open_step_ml(req);
    if (!ml)
        return;
    if (status == 0) {
        /* Restored ledgers are closed: seal their times for retention. */
        for (int i = 0; i < ml->n_ledgers; i++)
            if (ml->ledgers[i].timestamp == 0)
                ml->ledgers[i].timestamp = mg_loop_wall_ms(ml->f->loop);
        status = ml_open_step(ml, ml->f->limpl, ml->f->lops->create_ledger, ml_open_created);
    }
    ml_open_step_end(ml, status);
}

/* The last ledger of the list is recovered: its true end replaces what the list says, or,
 * if it can never be read (gone from the store, corrupt metadata, every copy of an entry
 * corrupt, fewer entries than the list confirmed), autoSkipNonRecoverableData decides. */
static void ml_open_recovered(struct ml_store_req *req, int status)
{
    struct ml_ledger *ml = ml_open_step_ml(req);
    if (!ml)
        return;
    struct ml_ledger_info *li = ml_current_ledger(ml);
    const char *why = req->errmsg ? req->errmsg : "";
    char msg[120];
    /* Never readable again; transient failures (bookies down) are not: the open fails and is
     * tried again later. */
    bool lost = status == -MG_ENOTFOUND || status == -MG_EPROTO || status == -MG_ECHECKSUM;
    int64_t n = status == 0 ? req->last + 1 : 0;
    if (status == 0 && n < li->entries) {
        /* Fewer entries than the list says were confirmed: no replica has the rest. */
        lost = true;
        snprintf(msg, sizeof msg,
                 "recovered %" PRId64 " entries, the ledger list has %" PRId64 " confirmed", n,
                 li->entries);
        why = msg;
    }
    if (status == -MG_ENOTFOUND && li->entries == 0) {
        /* Created but never written to the ledger store's metadata: drop it. */
        MG_WARN(ML_MOD, "%s: last ledger %" PRId64 " does not exist, dropped", ml->name, li->id);
        ml->n_ledgers--;
    } else if (lost && !ml->f->cfg.auto_skip_non_recoverable_data) {
        MG_ERROR(ML_MOD,
                 "%s: ledger %" PRId64 " cannot be recovered (%s%s%s): refusing to load the "
                 "topic; autoSkipNonRecoverableData=true would skip it and lose its %" PRId64
                 " entries",
                 ml->name, li->id, status < 0 ? mg_strerror(status) : "entries lost",
                 why[0] ? ": " : "", why, li->entries);
        ml_open_step_end(ml, -MG_ENONRECOVERABLE);
        return;
    } else if (lost && status < 0) {
        MG_ERROR(ML_MOD,
                 "%s: autoSkipNonRecoverableData: ledger %" PRId64 " cannot be recovered "
                 "(%s%s%s): skipped, its %" PRId64 " entries are lost",
                 ml->name, li->id, mg_strerror(status), why[0] ? ": " : "", why, li->entries);
        ml->n_ledgers--;
    } else if (status < 0) {
        MG_WARN(ML_MOD, "%s: recovery of ledger %" PRId64 " failed: %s %s", ml->name, li->id,
                mg_strerror(status), why);
        ml_open_step_end(ml, status);
        return;
    } else {
        if (lost)
            MG_ERROR(ML_MOD,
                     "%s: autoSkipNonRecoverableData: ledger %" PRId64 " %s: entries %" PRId64
                     "..%" PRId64 " are lost",
                     ml->name, li->id, why, n, li->entries - 1);
        li->entries = li->next_entry = n;
        li->size = li->assigned_size = req->length;
        li->publish_known = n == 0;
        MG_DEBUG(ML_MOD, "%s: recovered ledger %" PRId64 ": %" PRId64 " entries", ml->name, li->id,
                 n);
    }
    ml_open_step_end(
        ml, ml_open_step(ml, ml->f->mimpl, ml->f->mops->load_cursors, ml_open_cursors_loaded));
}

/* Second step: the ledger list is loaded; the last ledger may still be open (a previous
 * owner, or a crash): recover it, which fences its previous writer and gives its true end. */
static void ml_open_loaded(struct ml_store_req *req, int status)
{
    struct ml_ledger *ml = ml_open_step_ml(req);
    if (!ml)
        return;
    struct ml_factory *f = ml->f;
    if (status == 0 && ml->n_ledgers > 0 && f->lops->recover_ledger) {
        memset(req, 0, sizeof *req);
        req->ledger_id = ml_current_ledger(ml)->id;
        status = ml_open_step(ml, f->limpl, f->lops->recover_ledger, ml_open_recovered);
    } else if (status == 0) {
        status = ml_open_step(ml, f->mimpl, f->mops->load_cursors, ml_open_cursors_loaded);
    }
    ml_open_step_end(ml, status);
}

struct open_done {
    struct ml_ledger *ml; /* borrowed; kept alive by the reference ml_open took */
    ml_open_cb cb;
    void *data; /* caller's */
};

static void ml_open_done_task(void *arg, int status)
{
    struct open_done *od = arg;
    struct open_done d = *od;
    mg_free(od);
    if (status)
        d.cb(NULL, status, d.data);
    else if (d.ml->state == ML_READY && !d.ml->deleted)
        d.cb(d.ml, 0, d.data);
    else
        d.cb(NULL, -MG_ECLOSED, d.data);
}

int ml_open(struct ml_factory *f, const char *name, ml_open_cb cb, void *data)
{
    if (!f || !name || !*name || !cb)
        return -MG_EINVAL;
    if (f->closing)
        return -MG_ECLOSED;
    struct ml_ledger *ml = mg_map_get_str(&f->by_name, name);
    if (ml && ml->state == ML_READY) {
        ml->refs++;
        struct open_done *od = mg_calloc(1, sizeof *od);
        od->ml = ml;
        od->cb = cb;
        od->data = data;
        ml_defer_call(f, ml_open_done_task, od);
        return 0;
    }
    bool fresh = !ml;
    if (fresh)
        ml = ml_new(f, name);
    struct ml_open_waiter *w = mg_calloc(1, sizeof *w);
    w->cb = cb;
    w->data = data;
    w->next = NULL;
    struct ml_open_waiter **tail = &ml->open_waiters;
    while (*tail)
        tail = &(*tail)->next;
    *tail = w;
    ml->refs++;
    if (!fresh)
        return 0;
    int rc;
    if (f->mops)
        rc = ml_open_step(ml, f->mimpl, f->mops->load_ml, ml_open_loaded);
    else
        rc = ml_open_step(ml, f->limpl, f->lops->create_ledger, ml_open_created);
    if (rc < 0) {
        /* Nothing was started: no callback. */
        MG_WARN(ML_MOD, "%s: open failed: %s", name, mg_strerror(rc));
        mg_free(w);
        ml->open_waiters = NULL;
        ml->refs = 0;
        ml->state = ML_CLOSED;
        ml_release(ml);
        return rc;
    }
    return 0;
}

/* ---- appends ------------------------------------------------------------------------- */

/* Pulsar's currentLedgerIsFull: over the entry or size bound, or (by_age: the periodic
 * check's question; appends do not ask it, so the clock is read per append only once a bound
 * is reached) past the maximum age with an entry (an empty ledger is never rolled for its
 * age); either way only once past the minimum age. */
static bool ml_ledger_full(const struct ml_ledger *ml, const struct ml_ledger_info *li, bool by_age)
{
    const struct ml_config *cfg = &ml->f->cfg;
    bool full =
        (cfg->max_entries_per_ledger > 0 && li->next_entry >= cfg->max_entries_per_ledger) ||
        (cfg->max_size_per_ledger > 0 && li->assigned_size >= cfg->max_size_per_ledger);
    if (!full && !(by_age && cfg->max_rollover_ms > 0 && li->next_entry > 0))
        return false;
    int64_t age = (int64_t)(mg_loop_mono_ms(ml->f->loop) - li->created_ms);
    if (!full && age < cfg->max_rollover_ms)
        return false;
    return cfg->min_rollover_ms <= 0 || age > cfg->min_rollover_ms;
}

static void ml_drain(struct ml_ledger *ml);
static void ml_term_check(struct ml_ledger *ml);
static void ml_start_rollover(struct ml_ledger *ml);
static void ml_roll_continue(struct ml_ledger *ml);

static void ml_drain_task(void *arg, int status)
{
    struct ml_ledger *ml = arg;
    (void)status;
    ml_drain(ml);
    ml_release(ml);
}

static void ml_schedule_drain(struct ml_ledger *ml)
{
    if (ml->drain_task.queued)
        return;
    ml_hold(ml);
    ml_defer(ml->f, &ml->drain_task, ml_drain_task, ml);
}

/* Fail every unsent append (in order, after the sent ones). */
static void ml_fail_unsent(struct ml_ledger *ml, int status)
{
    struct ml_add_op *op;
    while ((op = TAILQ_FIRST(&ml->unsent)) != NULL) {
        TAILQ_REMOVE(&ml->unsent, op, link);
        op->done = true;
        op->status = status;
        TAILQ_INSERT_TAIL(&ml->sent, op, link);
    }
}

void ml_fence(struct ml_ledger *ml)
{
    if (ml->fenced)
        return;
    ml->fenced = true;
    MG_WARN(ML_MOD, "%s: fenced: another broker owns it now", ml->name);
    if (ml->state == ML_CLOSED)
        return;
    ml_fail_unsent(ml, -MG_EFENCED);
    ml_schedule_drain(ml);
}

static void ml_add_done(struct ml_store_req *sreq, int status)
{
    struct ml_add_op *op = sreq->data;
    struct ml_ledger *ml = op->ml;
    if (op->orphan) {
        ml_add_op_free(op);
        ml_release(ml);
        return;
    }
    op->done = true;
    op->status = status;
    ml_drain(ml);
    ml_release(ml);
}

static void ml_send_unsent(struct ml_ledger *ml)
{
    struct ml_factory *f = ml->f;
    struct ml_add_op *op;
    while (!ml->rolling && !ml->fenced && ml->state == ML_READY &&
           (op = TAILQ_FIRST(&ml->unsent)) != NULL) {
        struct ml_ledger_info *cur = ml_current_ledger(ml);
        if (ml->broken || ml_ledger_full(ml, cur, false)) {
            if (ml->roll_error && (int64_t)mg_loop_mono_ms(ml->f->loop) < ml->roll_retry_at) {
                /* The last roll failed a moment ago: fail fast, try again later. */
                ml_fail_unsent(ml, ml->roll_error);
                ml_schedule_drain(ml);
                break;
            }
            ml_start_rollover(ml);
            continue;
        }
        TAILQ_REMOVE(&ml->unsent, op, link);
        TAILQ_INSERT_TAIL(&ml->sent, op, link);
        op->entry->pos = (struct ml_position){cur->id, cur->next_entry++};
        cur->assigned_size += (int64_t)op->entry->size;
        op->sreq.data = op;
        op->sreq.cb = ml_add_done;
        op->sreq.ledger_id = cur->id;
        op->sreq.entry = op->entry;
        ml_hold(ml);
        int rc = f->lops->add_entry(f->limpl, ml, &op->sreq);
        if (rc == -MG_ETOOBIG) {
            /* The store can never take this entry (over its frame limit) and sent nothing:
             * it alone fails, in order; the ledger goes on with the same entry id. */
            ml_release(ml);
            cur->next_entry--;
            cur->assigned_size -= (int64_t)op->entry->size;
            op->entry->pos = (struct ml_position){-1, -1};
            op->done = true;
            op->status = rc;
            ml_schedule_drain(ml);
            continue;
        }
        if (rc < 0) {
            ml_release(ml);
            op->done = true;
            op->status = rc;
            ml_schedule_drain(ml);
            /* Nothing more goes to this ledger; ml_drain fails what follows. */
            break;
        }
        if (ml_ledger_full(ml, ml_current_ledger(ml), false))
            ml_start_rollover(ml);
    }
}

static void ml_roll_fail(struct ml_ledger *ml, int status)
{
    ml->rolling = false;
    ml->roll_phase = ML_ROLL_NONE;
    if (status == -MG_EFENCED) {
        ml_fence(ml);
        return;
    }
    ml->roll_backoff_ms = ml->roll_backoff_ms ? ml->roll_backoff_ms * 2 : ML_ROLL_BACKOFF_MIN_MS;
    if (ml->roll_backoff_ms > ML_ROLL_BACKOFF_MAX_MS)
        ml->roll_backoff_ms = ML_ROLL_BACKOFF_MAX_MS;
    ml->roll_retry_at = (int64_t)mg_loop_mono_ms(ml->f->loop) + ml->roll_backoff_ms;
    ml->roll_error = status;
    MG_WARN(ML_MOD,
            "%s: cannot roll to a new ledger: %s; appends fail for %d ms, then it is "
            "tried again",
            ml->name, mg_strerror(status), ml->roll_backoff_ms);
    /* The queued appends fail (clients resend); an append after the delay tries again. */
    ml_fail_unsent(ml, status);
    ml_schedule_drain(ml);
}

static void ml_roll_saved(struct ml_ledger *ml, int status)
{
    struct ml_factory *f = ml->f;
    if (ml->state == ML_CLOSED || ml->deleted)
        return;
    if (status < 0) {
        /* Not in the stored list: drop the new ledger, keep the old one as current. */
        f->lops->delete_ledger(f->limpl, ml, ml_current_ledger(ml)->id, NULL);
        ml->n_ledgers--;
        ml_roll_fail(ml, status);
        return;
    }
    ml->rolling = false;
    ml->roll_phase = ML_ROLL_NONE;
    ml->broken = false;
    ml->roll_error = 0;
    ml->roll_backoff_ms = 0;
    MG_DEBUG(ML_MOD, "%s: rolled over to ledger %" PRId64, ml->name, ml_current_ledger(ml)->id);
    ml_send_unsent(ml);
    ml_maybe_trim(ml, NULL);
}

static void ml_roll_created(struct ml_store_req *req, int status)
{
    struct ml_ledger *ml = req->data;
    struct ml_factory *f = ml->f;
    if (ml->state == ML_CLOSED || ml->deleted) {
        if (status == 0)
            f->lops->delete_ledger(f->limpl, ml, req->ledger_id, NULL);
        ml_release(ml);
        return;
    }
    if (status < 0) {
        ml_roll_fail(ml, status);
        ml_release(ml);
        return;
    }
    if (ml->fenced) {
        f->lops->delete_ledger(f->limpl, ml, req->ledger_id, NULL);
        ml_roll_fail(ml, -MG_EFENCED);
        ml_release(ml);
        return;
    }
    ml_push_ledger(ml, req->ledger_id);
    ml->roll_phase = ML_ROLL_SAVE;
    ml_save(ml, ml_roll_saved);
    ml_release(ml);
}

static void ml_roll_create(struct ml_ledger *ml)
{
    struct ml_factory *f = ml->f;
    ml->roll_phase = ML_ROLL_CREATE;
    ml->roll_req.data = ml;
    ml->roll_req.cb = ml_roll_created;
    ml_hold(ml);
    int rc = f->lops->create_ledger(f->limpl, ml, &ml->roll_req);
    if (rc < 0) {
        ml_release(ml);
        ml_roll_fail(ml, rc);
    }
}

static void ml_roll_closed(struct ml_store_req *req, int status)
{
    struct ml_ledger *ml = req->data;
    if (ml->state == ML_CLOSED || ml->deleted) {
        ml_release(ml);
        return;
    }
    if (status == -MG_EFENCED) {
        ml_roll_fail(ml, status);
    } else {
        /* Other errors (bookies or metadata unreachable) leave the ledger open in its
         * metadata; readers recover it. Its entry count in our list is what completed. */
        if (status < 0)
            MG_WARN(ML_MOD, "%s: ledger %" PRId64 " not closed: %s", ml->name,
                    ml_current_ledger(ml)->id, mg_strerror(status));
        ml_current_ledger(ml)->timestamp = mg_loop_wall_ms(ml->f->loop);
        ml_roll_create(ml);
    }
    ml_release(ml);
}

/* Next step of a rollover once the in-flight adds of the current ledger completed. */
static void ml_roll_continue(struct ml_ledger *ml)
{
    struct ml_factory *f = ml->f;
    if (ml->roll_phase != ML_ROLL_DRAIN || !TAILQ_EMPTY(&ml->sent))
        return;
    if (ml->fenced || ml->state != ML_READY) {
        ml_roll_fail(ml, -MG_EFENCED);
        return;
    }
    ml->roll_phase = ML_ROLL_CLOSE;
    if (!f->lops->close_ledger) {
        ml_current_ledger(ml)->timestamp = mg_loop_wall_ms(ml->f->loop);
        ml_roll_create(ml);
        return;
    }
    ml->roll_req.data = ml;
    ml->roll_req.cb = ml_roll_closed;
    ml_hold(ml);
    int rc = f->lops->close_ledger(f->limpl, ml, ml_current_ledger(ml)->id, &ml->roll_req);
    if (rc < 0)
        ml_roll_closed(&ml->roll_req, rc); /* releases the hold taken for the request */
}

static void ml_start_rollover(struct ml_ledger *ml)
{
    if (ml->rolling)
        return;
    ml->rolling = true;
    ml->roll_phase = ML_ROLL_DRAIN;
    ml->roll_attempts++;
    ml_roll_continue(ml);
}

static void ml_periodic_check(struct ml_ledger *ml)
{
    if (ml->state != ML_READY || ml->deleted || ml->fenced || ml->n_ledgers == 0)
        return;
    const struct ml_ledger_info *cur = ml_current_ledger(ml);
    if (!ml->rolling && !ml->broken && !ml->terminated && ml_ledger_full(ml, cur, true) &&
        !(ml->roll_error && (int64_t)mg_loop_mono_ms(ml->f->loop) < ml->roll_retry_at))
        ml_start_rollover(ml); /* its end runs the trim check */
    else
        ml_maybe_trim(ml, NULL);
}

/* Complete the appends at the head of `sent` that are done, strictly in order. */
static void ml_drain(struct ml_ledger *ml)
{
    bool stored = false;
    struct ml_add_op *op;
    ml_hold(ml);
    while (ml->state != ML_CLOSED && (op = TAILQ_FIRST(&ml->sent)) != NULL && op->done) {
        TAILQ_REMOVE(&ml->sent, op, link);
        ml->n_pending--;
        struct ml_entry *e = op->entry;
        struct ml_append_req *req = op->req;
        int status = op->status;
        if (status == 0 && ml->fail_sent)
            status = ml->fail_sent; /* behind a failed add: the ledger has a gap */
        if (status == 0) {
            struct ml_ledger_info *li = ml_find_ledger(ml, e->pos.ledger);
            if (li) {
                if (li->entries == 0 || e->publish_time < li->min_publish_time)
                    li->min_publish_time = e->publish_time;
                if (e->publish_time > li->max_publish_time)
                    li->max_publish_time = e->publish_time;
                li->entries++;
                li->size += (int64_t)e->size;
            }
            ml->lac = e->pos;
            ml->entries_added++;
            ml_cache_put(ml, e);
            stored = true;
            req->pos = e->pos;
            req->entry = e;
        }
        if (status != 0 && e->pos.ledger >= 0 && status != -MG_ECANCELED) {
            /* Its position never comes to exist (nor do those of the appends behind it on
             * this ledger, which fail too): the ledger ends at its last confirmed entry, as
             * its close and a reopen will say, so positions and cursors skip the rest. */
            struct ml_ledger_info *li = ml_find_ledger(ml, e->pos.ledger);
            if (li) {
                li->next_entry = li->entries;
                li->assigned_size = li->size;
            }
        }
        if (status != 0 && e->pos.ledger >= 0 && !ml->fail_sent && status != -MG_ECANCELED) {
            /* A failed add on the ledger: what follows on it fails too, queued appends
             * fail, and the next append rolls to a new ledger. */
            ml->fail_sent = status;
            if (status == -MG_EFENCED) {
                ml_fence(ml);
            } else {
                MG_WARN(ML_MOD, "%s: add to ledger %" PRId64 " failed: %s", ml->name, e->pos.ledger,
                        mg_strerror(status));
                ml->broken = true;
                ml_fail_unsent(ml, status);
            }
        }
        req->pending = NULL;
        req->cb(req, status);
        ml_add_op_free(op);
    }
    if (TAILQ_EMPTY(&ml->sent))
        ml->fail_sent = 0;
    if (ml->state == ML_READY) {
        if (stored)
            ml_wake_waiters(ml);
        if (ml->rolling && TAILQ_EMPTY(&ml->sent))
            ml_roll_continue(ml);
        if (ml->terminated)
            ml_term_check(ml);
    }
    ml_release(ml);
}

int ml_append(struct ml_ledger *ml, struct evbuffer *data, const struct ml_entry_info *info,
              struct ml_append_req *req, ml_append_cb cb)
{
    int rc = ml_usable(ml, data && req && cb);
    if (rc == 0 && ml->fenced)
        rc = -MG_EFENCED;
    if (rc == 0 && ml->terminated)
        rc = -MG_ETERMINATED;
    if (rc < 0) {
        if (data)
            evbuffer_free(data);
        return rc;
    }
    struct ml_add_op *op = mg_calloc(1, sizeof *op);
    op->ml = ml;
    op->req = req;
    op->entry = ml_entry_new(data, info);
    req->cb = cb;
    req->pending = op->entry;
    req->next = NULL;
    req->entry = NULL;
    TAILQ_INSERT_TAIL(&ml->unsent, op, link);
    ml->n_pending++;
    ml_send_unsent(ml);
    return 0;
}

/* ---- terminate ------------------------------------------------------------------------- */

/* The waiters of one answer (a list taken off the ML), answered together from the queue. */
struct term_answer {
    struct ml_ledger *ml;     /* held */
    struct ml_term_waiter *w; /* owned list */
    struct ml_position pos;
    int status;
};

static void ml_term_answer_task(void *arg, int status)
{
    struct term_answer *a = arg;
    for (struct ml_term_waiter *w = a->w, *next; w; w = next) {
        next = w->next;
        w->cb(a->ml, a->pos, status ? status : a->status, w->data);
        mg_free(w);
    }
    ml_release(a->ml);
    mg_free(a);
}

/* Answer every waiting ml_terminate from the task queue (never inside the caller's call). */
static void ml_term_answer_all(struct ml_ledger *ml, int status)
{
    if (!ml->term_waiters)
        return;
    struct term_answer *a = mg_calloc(1, sizeof *a);
    a->ml = ml;
    a->w = ml->term_waiters;
    a->pos = ml->term_pos;
    a->status = status;
    ml->term_waiters = NULL;
    ml_hold(ml);
    ml_defer_call(ml->f, ml_term_answer_task, a);
}

static void ml_term_cancel(struct ml_ledger *ml)
{
    ml_term_answer_all(ml, -MG_ECANCELED);
}

static void ml_term_saved(struct ml_ledger *ml, int status)
{
    ml->term_saving = false;
    if (status == 0) {
        ml->term_saved = true;
        MG_INFO(ML_MOD, "%s: terminated at %" PRId64 ":%" PRId64, ml->name, ml->term_pos.ledger,
                ml->term_pos.entry);
    } else if (status != -MG_ECANCELED) {
        MG_WARN(ML_MOD, "%s: terminated position not stored: %s", ml->name, mg_strerror(status));
    }
    if (ml->state == ML_READY)
        ml_term_answer_all(ml, status);
}

/* Once nothing accepted before the terminate is in flight: fix the position, store it,
 * answer the waiters. */
static void ml_term_check(struct ml_ledger *ml)
{
    if (!ml->terminated || !ml->term_waiters || ml->n_pending > 0 || ml->term_saving ||
        ml->state != ML_READY)
        return;
    if (!ml->term_known) {
        ml->term_pos = ml->lac;
        ml->term_known = true;
    }
    if (ml->term_saved) {
        ml_term_answer_all(ml, 0);
        return;
    }
    ml->term_saving = true;
    ml_save(ml, ml_term_saved);
}

static void ml_term_check_task(void *arg, int status)
{
    struct ml_ledger *ml = arg;
    if (status == 0 && ml->state == ML_READY)
        ml_term_check(ml);
    ml_release(ml);
}

int ml_terminate(struct ml_ledger *ml, ml_terminate_cb cb, void *data)
{
    int rc = ml_usable(ml, cb != NULL);
    if (rc == 0 && ml->fenced)
        rc = -MG_EFENCED;
    if (rc < 0)
        return rc;
    struct ml_term_waiter *w = mg_calloc(1, sizeof *w);
    w->cb = cb;
    w->data = data;
    w->next = ml->term_waiters;
    ml->term_waiters = w;
    ml->terminated = true;
    ml_hold(ml);
    ml_defer_call(ml->f, ml_term_check_task, ml);
    return 0;
}

bool ml_is_terminated(const struct ml_ledger *ml)
{
    return ml->terminated;
}

bool ml_terminated_position(const struct ml_ledger *ml, struct ml_position *out)
{
    if (!ml->terminated || !ml->term_known)
        return false;
    *out = ml->term_pos;
    return true;
}

void ml_restore_terminated(struct ml_ledger *ml, struct ml_position pos)
{
    ml->terminated = ml->term_known = ml->term_saved = true;
    ml->term_pos = pos;
}

/* ---- data that cannot be read back ---------------------------------------------------- */

/* Has the loss of ledger been reported? Notes it if not. */
static bool ml_lost_reported(struct ml_ledger *ml, int64_t ledger)
{
    for (int i = 0; i < ml->n_lost; i++)
        if (ml->lost[i] == ledger)
            return true;
    if (ml->n_lost == ml->cap_lost) {
        ml->cap_lost = ml->cap_lost ? ml->cap_lost * 2 : 4;
        ml->lost = mg_realloc(ml->lost, (size_t)ml->cap_lost * sizeof *ml->lost);
    }
    ml->lost[ml->n_lost++] = ledger;
    return false;
}

int ml_data_lost(struct ml_ledger *ml, int64_t ledger, int64_t first, int64_t last)
{
    const struct ml_ledger_info *li = ml_find_ledger(ml, ledger);
    if (!li || li->entries == 0)
        return 0; /* trimmed meanwhile: nothing in the list is lost */
    bool whole = first < 0;
    if (whole) {
        first = 0;
        last = li->entries - 1;
    }
    if (last >= li->entries)
        last = li->entries - 1;
    bool skip = ml->f->cfg.auto_skip_non_recoverable_data;
    if (!ml_lost_reported(ml, ledger)) {
        if (skip)
            MG_ERROR(ML_MOD,
                     "%s: ledger %" PRId64 "%s: entries %" PRId64 "..%" PRId64
                     " cannot be read back; autoSkipNonRecoverableData: skipped and "
                     "acknowledged for every subscription (lost)",
                     ml->name, ledger, whole ? " is gone" : "", first, last);
        else
            MG_ERROR(ML_MOD,
                     "%s: ledger %" PRId64 "%s: entries %" PRId64 "..%" PRId64
                     " cannot be read back: reads stop there (autoSkipNonRecoverableData=true "
                     "would skip them)",
                     ml->name, ledger, whole ? " is gone" : "", first, last);
    }
    if (!skip)
        return -MG_ENONRECOVERABLE;
    for (int i = 0; i < ml->n_cursors; i++)
        ml_cursor_ack_lost(ml->cursors[i], ledger, first, last);
    return 0;
}

/* ---- trimming ------------------------------------------------------------------------ */

/* Pulsar's rule (ManagedLedgerImpl.internalTrimLedgers): a consumed ledger goes when it is
 * older than the retention time or what stays after it exceeds the retention size; -1 in
 * both keeps it forever. `remaining` is the size of the ledgers from li on. */
static bool ml_retention_allows(const struct ml_ledger *ml, const struct ml_ledger_info *li,
                                int64_t remaining)
{
    const struct ml_config *cfg = &ml->f->cfg;
    int64_t t = cfg->retention_time_minutes, sz = cfg->retention_size_mb;
    if (ml->retention_set) {
        t = ml->retention_time_minutes;
        sz = ml->retention_size_mb;
    }
    if (t == 0 || sz == 0)
        return true;
    if (t > 0 && li->timestamp > 0 && mg_loop_wall_ms(ml->f->loop) - li->timestamp > t * 60000)
        return true;
    if (sz > 0 && remaining - li->size > sz * (int64_t)1048576)
        return true;
    return false;
}

static void ml_trim_saved(struct ml_ledger *ml, int status)
{
    (void)status; /* ml_save_done handled the outcome; doomed ledgers wait for a stored list */
    ml->trimming = false;
    if (ml->trim_again && ml->state == ML_READY) {
        ml->trim_again = false;
        ml_maybe_trim(ml, NULL);
    }
}

void ml_maybe_trim(struct ml_ledger *ml, const struct ml_cursor *moved)
{
    if (ml->state != ML_READY || ml->deleted || ml->fenced || ml->n_ledgers < 2)
        return;
    if (ml->trimming) {
        ml->trim_again = true;
        return;
    }
    const struct ml_ledger_info *first = &ml->ledgers[0];
    struct ml_position first_end = {first->id, first->next_entry - 1};
    if (moved && ml_pos_cmp(moved->mark_delete, first_end) < 0)
        return;
    /* Only durable cursors hold data; with none, keep everything (documented in
     * broker/ml/README.md: Pulsar would trim consumed ledgers, we wait for a first subscriber). */
    bool any = false;
    struct ml_position min = {0, 0};
    for (int i = 0; i < ml->n_cursors; i++) {
        const struct ml_cursor *c = ml->cursors[i];
        if (!c->durable)
            continue;
        if (!any || ml_pos_cmp(c->mark_delete, min) < 0)
            min = c->mark_delete;
        any = true;
    }
    if (!any)
        return;
    int64_t remaining = 0;
    for (int i = 0; i < ml->n_ledgers; i++)
        remaining += ml->ledgers[i].size;
    int k = 0;
    while (k < ml->n_ledgers - 1) {
        const struct ml_ledger_info *li = &ml->ledgers[k];
        bool consumed =
            li->id < min.ledger || (li->id == min.ledger && min.entry >= li->next_entry - 1);
        if (!consumed || li->entries != li->next_entry || !ml_retention_allows(ml, li, remaining))
            break;
        remaining -= li->size;
        k++;
    }
    if (k == 0)
        return;
    for (int i = 0; i < k; i++) {
        MG_DEBUG(ML_MOD, "%s: trimming ledger %" PRId64, ml->name, ml->ledgers[i].id);
        ml_doom_ledger(ml, ml->ledgers[i].id);
    }
    ml_cache_drop_upto(ml, (struct ml_position){ml->ledgers[k - 1].id, INT64_MAX});
    memmove(ml->ledgers, ml->ledgers + k, (size_t)(ml->n_ledgers - k) * sizeof *ml->ledgers);
    ml->n_ledgers -= k;
    /* Off the stored list first, then deleted (ml_purge_doomed, after the write). */
    ml->trimming = true;
    ml_save(ml, ml_trim_saved);
}

/* ---- lookups ------------------------------------------------------------------------- */

/* What a lookup (ml_get_entry, ml_find_by_time) keeps while it runs: the first member of its
 * op. */
struct ml_lookup {
    struct ml_ledger *ml; /* borrowed, held */
    void *data;           /* caller's */
    int status;
    struct ml_task task;
    struct ml_store_req sreq;
};

/* A lookup's op of size bytes (starting with struct ml_lookup) on ml, holding ml; NULL when
 * the call cannot go on (*rc says why: ml_usable). */
static void *ml_lookup_new(struct ml_ledger *ml, bool args_ok, size_t size, void *data, int *rc)
{
    *rc = ml_usable(ml, args_ok);
    if (*rc < 0)
        return NULL;
    struct ml_lookup *l = mg_calloc(1, size);
    l->ml = ml;
    l->data = data;
    ml_hold(ml);
    return l;
}

/* The outcome of lookup l that ends with status (0: what l found, unless its ML closed). */
static int ml_lookup_status(const struct ml_lookup *l, int status)
{
    if (!status)
        status = l->status;
    if (!status && l->ml->state == ML_CLOSED)
        status = -MG_ECANCELED;
    return status;
}

struct get_op {
    struct ml_lookup l;
    ml_get_cb cb;
    struct ml_entry *entry; /* owned reference until handed over */
};

static void ml_get_finish(struct get_op *op, int status)
{
    struct ml_ledger *ml = op->l.ml;
    struct ml_entry *e = op->entry;
    status = ml_lookup_status(&op->l, status);
    if (status < 0) {
        ml_entry_unref(e);
        e = NULL;
    }
    ml_get_cb cb = op->cb;
    void *data = op->l.data;
    mg_free(op);
    cb(e, status, data);
    ml_release(ml);
}

static void ml_get_task(void *arg, int status)
{
    ml_get_finish(arg, status);
}

static void ml_get_read_done(struct ml_store_req *sreq, int status)
{
    struct get_op *op = sreq->data;
    if (status == 0) {
        for (int i = 0; i < sreq->n; i++) {
            if (!op->entry && sreq->entries[i]->pos.entry == sreq->first)
                op->entry = sreq->entries[i];
            else
                ml_entry_unref(sreq->entries[i]);
        }
        mg_free(sreq->entries);
        sreq->entries = NULL;
        if (!op->entry)
            status = -MG_ENOTFOUND;
    }
    ml_get_finish(op, status);
}

int ml_get_entry(struct ml_ledger *ml, struct ml_position pos, ml_get_cb cb, void *data)
{
    int rc;
    struct get_op *op = ml_lookup_new(ml, cb != NULL, sizeof *op, data, &rc);
    if (!op)
        return rc;
    op->cb = cb;
    const struct ml_ledger_info *li = ml_find_ledger(ml, pos.ledger);
    if (!li || pos.entry < 0 || pos.entry >= li->entries) {
        op->l.status = -MG_ENOTFOUND;
    } else if ((op->entry = ml_cache_get(ml, pos)) == NULL) {
        rc = ml_read_range(ml, &op->l.sreq, pos.ledger, pos.entry, pos.entry, ml_get_read_done, op);
        if (rc < 0) {
            mg_free(op);
            ml_release(ml);
            return rc;
        }
        return 0;
    }
    ml_defer(ml->f, &op->l.task, ml_get_task, op);
    return 0;
}

struct find_op {
    struct ml_lookup l;
    uint64_t ts;
    ml_find_cb cb;
    struct ml_position from; /* the search starts here */
    int64_t after;           /* search ledgers with id > after */
    struct ml_position result;
};

static void ml_find_task(void *arg, int status)
{
    struct find_op *op = arg;
    struct ml_ledger *ml = op->l.ml;
    status = ml_lookup_status(&op->l, status);
    ml_find_cb cb = op->cb;
    void *data = op->l.data;
    struct ml_position pos = status ? ML_POS_EARLIEST : op->result;
    mg_free(op);
    cb(pos, status, data);
    ml_release(ml);
}

static void ml_find_step(struct find_op *op);

/* A read of a closed ledger from its first entry to its last tells its publish times:
 * remembered, so later searches skip it (all older) or stop at it (all newer) unread. */
static void ml_find_learn(struct ml_ledger *ml, const struct ml_store_req *sreq)
{
    int i = ml_ledger_lower_bound(ml, sreq->ledger_id);
    if (i >= ml->n_ledgers - 1 || ml->ledgers[i].id != sreq->ledger_id)
        return; /* gone, or the current ledger (still growing) */
    struct ml_ledger_info *li = &ml->ledgers[i];
    if (li->publish_known || sreq->first != 0 || sreq->last != li->entries - 1 ||
        sreq->n != li->entries)
        return;
    for (int k = 0; k < sreq->n; k++) {
        uint64_t pt = sreq->entries[k]->publish_time;
        if (k == 0 || pt < li->min_publish_time)
            li->min_publish_time = pt;
        if (k == 0 || pt > li->max_publish_time)
            li->max_publish_time = pt;
    }
    li->publish_known = true;
}

static void ml_find_read_done(struct ml_store_req *sreq, int status)
{
    struct find_op *op = sreq->data;
    bool found = false;
    if (status == 0) {
        if (op->l.ml->state != ML_CLOSED)
            ml_find_learn(op->l.ml, sreq);
        for (int i = 0; i < sreq->n; i++) {
            if (!found && sreq->entries[i]->publish_time >= op->ts) {
                op->result = sreq->entries[i]->pos;
                found = true;
            }
            ml_entry_unref(sreq->entries[i]);
        }
        mg_free(sreq->entries);
        sreq->entries = NULL;
    } else if (status != -MG_ENOTFOUND) {
        op->l.status = status; /* a ledger trimmed meanwhile is just skipped */
        found = true;
    }
    if (status == -MG_ECANCELED || op->l.ml->state == ML_CLOSED) {
        op->l.status = -MG_ECANCELED;
        found = true;
    }
    op->after = sreq->ledger_id;
    if (found)
        ml_defer(op->l.ml->f, &op->l.task, ml_find_task, op);
    else
        ml_find_step(op);
}

static void ml_find_step(struct find_op *op)
{
    struct ml_ledger *ml = op->l.ml;
    int64_t after = op->after >= op->from.ledger ? op->after : op->from.ledger - 1;
    for (int i = ml_ledger_lower_bound(ml, after + 1); i < ml->n_ledgers; i++) {
        const struct ml_ledger_info *li = &ml->ledgers[i];
        int64_t first = li->id == op->from.ledger && op->from.entry > 0 ? op->from.entry : 0;
        if (first >= li->entries)
            continue;
        /* Ledgers whose publish times are known are not read: all older, skipped; all at or
         * after ts, the search ends at its first entry searched. */
        if (li->publish_known && li->max_publish_time < op->ts)
            continue;
        if (li->publish_known && li->min_publish_time >= op->ts) {
            op->result = (struct ml_position){li->id, first};
            ml_defer(ml->f, &op->l.task, ml_find_task, op);
            return;
        }
        int rc =
            ml_read_range(ml, &op->l.sreq, li->id, first, li->entries - 1, ml_find_read_done, op);
        if (rc == 0)
            return;
        op->l.status = rc;
        break;
    }
    if (!op->l.status)
        op->result = ml_next_position(ml, ml->lac);
    ml_defer(ml->f, &op->l.task, ml_find_task, op);
}

int ml_find_by_time_from(struct ml_ledger *ml, struct ml_position from, uint64_t ts_ms,
                         ml_find_cb cb, void *data)
{
    int rc;
    struct find_op *op = ml_lookup_new(ml, cb != NULL, sizeof *op, data, &rc);
    if (!op)
        return rc;
    op->ts = ts_ms;
    op->cb = cb;
    op->from = from;
    op->after = INT64_MIN;
    ml_find_step(op); /* completes through the task queue or a store read: never inline */
    return 0;
}

int ml_find_by_time(struct ml_ledger *ml, uint64_t ts_ms, ml_find_cb cb, void *data)
{
    return ml_find_by_time_from(ml, ML_POS_EARLIEST, ts_ms, cb, data);
}
