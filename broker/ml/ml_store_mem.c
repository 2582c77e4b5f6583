/*
 * ml_store_mem.c - the "memory" ledgers (struct ml_ledger_ops): arrays of referenced
 * entries in this process; nothing survives the factory.
 *
 * Happy path: create_ledger hands out ids from a counter starting at 1 (per factory, so
 * tests see 1, 2, 3...); add_entry keeps a reference to the entry; read_range hands out
 * new references. Every request completes through the factory's task queue on a later
 * loop pass, in the order it was made, so adds complete in order and never inline.
 *
 * Failure modes: an add to an unknown ledger or out of sequence fails synchronously
 * (-MG_ENOTFOUND / -MG_EINVAL: a core bug); a read of a deleted ledger or of entries that
 * do not exist completes with -MG_ENOTFOUND. Tests can lose data (ml_store_mem_lose): a
 * lost ledger reads as deleted, a range with a lost entry fails with -MG_ENONRECOVERABLE. The
 * "memory" store has no metadata ops: with nothing to load an ML from, the core drops an ML's
 * ledgers when it closes.
 */
#include "ml/ml_int.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"

#include <string.h>

struct mem_ledger {
    int64_t id;
    struct ml_entry **entries; /* owned array, each referenced */
    int64_t n, cap;
};

struct mem_store {
    struct ml_factory *f;  /* borrowed */
    struct mg_map ledgers; /* id -> owned struct mem_ledger * */
    int64_t next_id;
};

static void ml_mem_ledger_free(void *p)
{
    struct mem_ledger *l = p;
    if (!l)
        return;
    for (int64_t i = 0; i < l->n; i++)
        ml_entry_unref(l->entries[i]);
    mg_free(l->entries);
    mg_free(l);
}

static int ml_mem_init(struct ml_factory *f, void **impl)
{
    struct mem_store *s = mg_calloc(1, sizeof *s);
    s->f = f;
    s->next_id = 1;
    mg_map_init(&s->ledgers);
    *impl = s;
    return 0;
}

static void ml_mem_fini(void *impl)
{
    struct mem_store *s = impl;
    if (!s)
        return;
    mg_map_fini_free(&s->ledgers, ml_mem_ledger_free);
    mg_free(s);
}

static int ml_mem_create_ledger(void *impl, struct ml_ledger *ml, struct ml_store_req *req)
{
    (void)ml;
    struct mem_store *s = impl;
    struct mem_ledger *l = mg_calloc(1, sizeof *l);
    l->id = s->next_id++;
    mg_map_put_u64(&s->ledgers, (uint64_t)l->id, l);
    req->ledger_id = l->id;
    ml_store_complete_later(s->f, req, 0);
    return 0;
}

static int ml_mem_add_entry(void *impl, struct ml_ledger *ml, struct ml_store_req *req)
{
    (void)ml;
    struct mem_store *s = impl;
    struct mem_ledger *l = mg_map_get_u64(&s->ledgers, (uint64_t)req->ledger_id);
    if (!l)
        return -MG_ENOTFOUND;
    if (req->entry->pos.ledger != l->id || req->entry->pos.entry != l->n)
        return -MG_EINVAL;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->entries = mg_realloc(l->entries, (size_t)l->cap * sizeof *l->entries);
    }
    l->entries[l->n++] = ml_entry_ref(req->entry);
    ml_store_complete_later(s->f, req, 0);
    return 0;
}

/* read_range's answer for req: its entries (referenced) in req, or why there are none. */
static int ml_mem_read(struct mem_store *s, struct ml_store_req *req)
{
    struct mem_ledger *l = mg_map_get_u64(&s->ledgers, (uint64_t)req->ledger_id);
    int64_t first = req->first < 0 ? 0 : req->first;
    int64_t last = l && req->last >= l->n ? l->n - 1 : req->last;
    if (!l || first > last)
        return -MG_ENOTFOUND;
    for (int64_t e = first; e <= last; e++)
        if (!l->entries[e]) /* lost (ml_store_mem_lose) */
            return -MG_ENONRECOVERABLE;
    req->n = (int)(last - first + 1);
    req->entries = mg_malloc((size_t)req->n * sizeof *req->entries);
    for (int i = 0; i < req->n; i++)
        req->entries[i] = ml_entry_ref(l->entries[first + i]);
    return 0;
}

static int ml_mem_read_range(void *impl, struct ml_ledger *ml, struct ml_store_req *req)
{
    (void)ml;
    struct mem_store *s = impl;
    req->entries = NULL;
    req->n = 0;
    ml_store_complete_later(s->f, req, ml_mem_read(s, req));
    return 0;
}

static int ml_mem_delete_ledger(void *impl, struct ml_ledger *ml, int64_t ledger_id,
                                struct ml_store_req *req)
{
    (void)ml;
    struct mem_store *s = impl;
    struct mem_ledger *l = mg_map_del_u64(&s->ledgers, (uint64_t)ledger_id);
    ml_mem_ledger_free(l);
    if (req)
        ml_store_complete_later(s->f, req, l ? 0 : -MG_ENOTFOUND);
    return 0;
}

const struct ml_ledger_ops ml_ledgers_memory = {
    .name = "memory",
    .init = ml_mem_init,
    .fini = ml_mem_fini,
    .create_ledger = ml_mem_create_ledger,
    .add_entry = ml_mem_add_entry,
    .read_range = ml_mem_read_range,
    .close_ledger = NULL,
    .delete_ledger = ml_mem_delete_ledger,
    .recover_ledger = NULL,
    .free_ml = NULL,
    .pending = NULL,
};

void ml_store_mem_lose(struct ml_factory *f, int64_t ledger, int64_t entry)
{
    MG_ASSERT(f->lops == &ml_ledgers_memory);
    struct mem_store *s = f->limpl;
    struct mem_ledger *l = mg_map_get_u64(&s->ledgers, (uint64_t)ledger);
    if (!l)
        return;
    if (entry < 0) {
        mg_map_del_u64(&s->ledgers, (uint64_t)ledger);
        ml_mem_ledger_free(l);
    } else if (entry < l->n) {
        ml_entry_unref(l->entries[entry]);
        l->entries[entry] = NULL;
    }
}
