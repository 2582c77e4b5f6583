/*
 * ml_cursor.c - cursors: mark-delete position, individual and batch-index acks, reads.
 *
 * Representation: the mark-delete position M; the individually acked entries beyond M as
 * one bitset per ledger (as Pulsar's default ConcurrentOpenLongPairRangeSet does), which
 * makes an ack, a lookup and the merge into M O(1) amortized for any ack order; ranges
 * (lower, upper] are derived from runs of set bits and never span ledgers (Pulsar writes
 * (L:-1..L:0] for a ledger's first entry). Counters of set bits and runs are kept up to
 * date so backlog and range counts are O(ledgers). Batch-index ack sets live in a map
 * position -> words (set bit = index still unacked).
 *
 * Happy path of a read: ml_cursor_read queues a task; the task lists the unacked
 * positions from the read position up to the last confirmed entry, takes them from the
 * tail cache and reads the rest from the store (read_range, per ledger), then hands them
 * over and moves the read position past the last one. With nothing to read the request
 * waits on the ML until an append completes. Replays do the same for given positions.
 *
 * Failure modes: store read errors complete the read with the error; entries that vanished
 * (ledger trimmed) are skipped. Closing the cursor or the ML completes outstanding reads
 * with -MG_ECANCELED from the loop; ml_cursor_cancel_read completes the read right away.
 */
#include "ml/ml_int.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* ---- acked-entry bitsets ------------------------------------------------------------- */

static int ml_cursor_acks_lower_bound(const struct ml_cursor *c, int64_t ledger)
{
    return ml_lower_bound(c->acks, c->n_acks, sizeof *c->acks, offsetof(struct ml_ack_bits, ledger),
                          ledger);
}

static struct ml_ack_bits *ml_cursor_acks_find(const struct ml_cursor *c, int64_t ledger)
{
    int i = ml_cursor_acks_lower_bound(c, ledger);
    return i < c->n_acks && c->acks[i].ledger == ledger ? &c->acks[i] : NULL;
}

static bool ml_cursor_bit_test(const struct ml_cursor *c, struct ml_position p)
{
    if (p.entry < 0)
        return false;
    const struct ml_ack_bits *ab = ml_cursor_acks_find(c, p.ledger);
    if (!ab)
        return false;
    uint64_t w = (uint64_t)p.entry / 64;
    return w < ab->n_words && (ab->words[w] >> (p.entry % 64) & 1);
}

static bool ml_cursor_bit_test_le(const struct ml_ack_bits *ab, int64_t e)
{
    if (e < 0)
        return false;
    uint64_t w = (uint64_t)e / 64;
    return w < ab->n_words && (ab->words[w] >> (e % 64) & 1);
}

static void ml_cursor_bit_set(struct ml_cursor *c, struct ml_position p)
{
    int i = ml_cursor_acks_lower_bound(c, p.ledger);
    if (i == c->n_acks || c->acks[i].ledger != p.ledger) {
        if (c->n_acks == c->cap_acks) {
            c->cap_acks = c->cap_acks ? c->cap_acks * 2 : 4;
            c->acks = mg_realloc(c->acks, (size_t)c->cap_acks * sizeof *c->acks);
        }
        memmove(c->acks + i + 1, c->acks + i, (size_t)(c->n_acks - i) * sizeof *c->acks);
        c->n_acks++;
        c->acks[i] = (struct ml_ack_bits){.ledger = p.ledger};
    }
    struct ml_ack_bits *ab = &c->acks[i];
    size_t w = (size_t)p.entry / 64;
    if (w >= ab->n_words) {
        size_t n = ab->n_words ? ab->n_words : 4;
        while (n <= w)
            n *= 2;
        ab->words = mg_realloc(ab->words, n * sizeof *ab->words);
        memset(ab->words + ab->n_words, 0, (n - ab->n_words) * sizeof *ab->words);
        ab->n_words = n;
    }
    bool left = ml_cursor_bit_test_le(ab, p.entry - 1),
         right = ml_cursor_bit_test_le(ab, p.entry + 1);
    ab->words[w] |= (uint64_t)1 << (p.entry % 64);
    c->n_acked++;
    c->n_ranges += 1 - (int)left - (int)right;
}

static void ml_cursor_bit_clear(struct ml_cursor *c, struct ml_position p)
{
    struct ml_ack_bits *ab = ml_cursor_acks_find(c, p.ledger);
    if (!ab || !ml_cursor_bit_test_le(ab, p.entry))
        return;
    ab->words[p.entry / 64] &= ~((uint64_t)1 << (p.entry % 64));
    bool left = ml_cursor_bit_test_le(ab, p.entry - 1),
         right = ml_cursor_bit_test_le(ab, p.entry + 1);
    c->n_acked--;
    c->n_ranges += left && right ? 1 : (!left && !right ? -1 : 0);
}

static void ml_cursor_acks_recount(struct ml_cursor *c)
{
    c->n_acked = 0;
    c->n_ranges = 0;
    for (int i = 0; i < c->n_acks; i++) {
        const struct ml_ack_bits *ab = &c->acks[i];
        uint64_t carry = 0;
        for (size_t w = 0; w < ab->n_words; w++) {
            uint64_t x = ab->words[w];
            c->n_acked += __builtin_popcountll(x);
            c->n_ranges += __builtin_popcountll(x & ~((x << 1) | carry));
            carry = x >> 63;
        }
    }
}

static void ml_cursor_acks_clear_all(struct ml_cursor *c)
{
    for (int i = 0; i < c->n_acks; i++)
        mg_free(c->acks[i].words);
    mg_free(c->acks);
    c->acks = NULL;
    c->n_acks = c->cap_acks = 0;
    c->n_acked = 0;
    c->n_ranges = 0;
}

/* Drop every bit <= pos. */
static void ml_cursor_acks_clear_upto(struct ml_cursor *c, struct ml_position pos)
{
    int k = ml_cursor_acks_lower_bound(c, pos.ledger);
    if (k > 0) {
        for (int i = 0; i < k; i++)
            mg_free(c->acks[i].words);
        memmove(c->acks, c->acks + k, (size_t)(c->n_acks - k) * sizeof *c->acks);
        c->n_acks -= k;
    }
    if (c->n_acks > 0 && c->acks[0].ledger == pos.ledger && pos.entry >= 0) {
        struct ml_ack_bits *ab = &c->acks[0];
        uint64_t full = (uint64_t)(pos.entry + 1) / 64;
        for (uint64_t w = 0; w < full && w < ab->n_words; w++)
            ab->words[w] = 0;
        if (full < ab->n_words) {
            unsigned rem = (unsigned)((pos.entry + 1) % 64);
            if (rem)
                ab->words[full] &= ~(((uint64_t)1 << rem) - 1);
        }
    }
    ml_cursor_acks_recount(c);
}

void ml_cursor_foreach_range(const struct ml_cursor *c, ml_range_fn fn, void *arg)
{
    for (int i = 0; i < c->n_acks; i++) {
        const struct ml_ack_bits *ab = &c->acks[i];
        int64_t start = -1, prev = -2;
        for (size_t w = 0; w < ab->n_words; w++) {
            uint64_t x = ab->words[w];
            while (x) {
                int64_t e = (int64_t)(w * 64) + __builtin_ctzll(x);
                x &= x - 1;
                if (e != prev + 1) {
                    if (start >= 0)
                        fn((struct ml_position){ab->ledger, start - 1},
                           (struct ml_position){ab->ledger, prev}, arg);
                    start = e;
                }
                prev = e;
            }
        }
        if (start >= 0)
            fn((struct ml_position){ab->ledger, start - 1}, (struct ml_position){ab->ledger, prev},
               arg);
    }
}

/* ---- batch-index ack sets ------------------------------------------------------------ */

static void ml_cursor_pos_key(struct ml_position p, unsigned char key[16])
{
    memcpy(key, &p.ledger, 8);
    memcpy(key + 8, &p.entry, 8);
}

static void ml_cursor_batch_drop(struct ml_cursor *c, struct ml_position p)
{
    if (c->batch.count == 0)
        return;
    unsigned char key[16];
    ml_cursor_pos_key(p, key);
    mg_free(mg_map_del(&c->batch, key, sizeof key));
}

/* Drop the sets of positions <= pos (all of them with all = true). */
static void ml_cursor_batch_drop_upto(struct ml_cursor *c, struct ml_position pos, bool all)
{
    if (c->batch.count == 0)
        return;
    size_t it = 0;
    const char *key;
    size_t klen;
    void *v;
    while (mg_map_next(&c->batch, &it, &key, &klen, &v)) {
        struct ml_position p;
        memcpy(&p.ledger, key, 8);
        memcpy(&p.entry, key + 8, 8);
        if (all || ml_pos_cmp(p, pos) <= 0) {
            mg_map_del(&c->batch, key, klen);
            mg_free(v);
        }
    }
}

/* ---- mark-delete --------------------------------------------------------------------- */

static void ml_cursor_requeue_waiting(struct ml_cursor *c);

/* Fold the acked run right after M into M. */
static void ml_cursor_merge_into_md(struct ml_cursor *c)
{
    struct ml_ledger *ml = c->ml;
    for (;;) {
        struct ml_position q = ml_next_position(ml, c->mark_delete);
        if (ml_pos_cmp(q, ml->lac) > 0 || !ml_cursor_bit_test(c, q))
            break;
        ml_cursor_bit_clear(c, q);
        c->mark_delete = q;
    }
    /* Bitsets of ledgers wholly before M are empty now. */
    int k = ml_cursor_acks_lower_bound(c, c->mark_delete.ledger);
    if (k > 0) {
        for (int i = 0; i < k; i++)
            mg_free(c->acks[i].words);
        memmove(c->acks, c->acks + k, (size_t)(c->n_acks - k) * sizeof *c->acks);
        c->n_acks -= k;
    }
}

/* After M moved (forward or, on reset, anywhere). */
static void ml_cursor_md_changed(struct ml_cursor *c)
{
    struct ml_ledger *ml = c->ml;
    if (ml_pos_cmp(c->read_pos, c->mark_delete) <= 0)
        c->read_pos = ml_next_position(ml, c->mark_delete);
    if (c->durable) {
        ml_persist_cursor(c, false);
        ml_maybe_trim(ml, c);
    }
}

/* ---- lifecycle ------------------------------------------------------------------------ */

struct ml_cursor *ml_cursor_new(struct ml_ledger *ml, const char *name, bool durable,
                                struct ml_position mark_delete)
{
    struct ml_cursor *c = mg_calloc(1, sizeof *c);
    c->ml = ml;
    c->name = mg_strdup(name);
    c->durable = durable;
    c->mark_delete = mark_delete;
    c->read_pos = ml_next_position(ml, mark_delete);
    mg_map_init(&c->batch);
    if (ml->n_cursors == ml->cap_cursors) {
        ml->cap_cursors = ml->cap_cursors ? ml->cap_cursors * 2 : 4;
        ml->cursors = mg_realloc(ml->cursors, (size_t)ml->cap_cursors * sizeof *ml->cursors);
    }
    ml->cursors[ml->n_cursors++] = c;
    return c;
}

struct ml_cursor *ml_restore_cursor(struct ml_ledger *ml, const char *name,
                                    struct ml_position mark_delete)
{
    return ml_cursor_new(ml, name, true, mark_delete);
}

void ml_cursor_restore_range(struct ml_cursor *c, struct ml_position lower,
                             struct ml_position upper)
{
    struct ml_ledger *ml = c->ml;
    for (int i = 0; i < ml->n_ledgers; i++) {
        const struct ml_ledger_info *li = &ml->ledgers[i];
        if (li->id < lower.ledger || li->id > upper.ledger)
            continue;
        int64_t from = li->id == lower.ledger ? lower.entry + 1 : 0;
        int64_t to = li->id == upper.ledger ? upper.entry : li->next_entry - 1;
        if (from < 0)
            from = 0;
        if (to > li->next_entry - 1)
            to = li->next_entry - 1; /* bounded by what the ledger holds */
        for (int64_t e = from; e <= to; e++) {
            struct ml_position p = {li->id, e};
            if (ml_pos_cmp(p, c->mark_delete) > 0 && !ml_cursor_bit_test(c, p))
                ml_cursor_bit_set(c, p);
        }
    }
}

void ml_cursor_restore_batch(struct ml_cursor *c, struct ml_position pos, const int64_t *words,
                             int n_words)
{
    if (n_words <= 0 || ml_pos_cmp(pos, c->mark_delete) <= 0 || ml_cursor_bit_test(c, pos))
        return;
    unsigned char key[16];
    ml_cursor_pos_key(pos, key);
    struct ml_batch_set *bs = mg_malloc(sizeof *bs + (size_t)n_words * sizeof bs->words[0]);
    bs->n_words = n_words;
    memcpy(bs->words, words, (size_t)n_words * sizeof bs->words[0]);
    mg_free(mg_map_del(&c->batch, key, sizeof key));
    mg_map_put(&c->batch, key, sizeof key, bs);
}

static void ml_cursor_props_free(struct ml_cursor *c)
{
    for (int i = 0; i < c->n_props; i++)
        mg_free((char *)c->props[i].name);
    mg_free(c->props);
    c->props = NULL;
    c->n_props = 0;
}

void ml_cursor_restore_props(struct ml_cursor *c, const struct ml_cursor_prop *props, int n)
{
    ml_cursor_props_free(c);
    if (n <= 0)
        return;
    c->props = mg_calloc((size_t)n, sizeof *c->props);
    for (int i = 0; i < n; i++)
        c->props[i] = (struct ml_cursor_prop){mg_strdup(props[i].name), props[i].value};
    c->n_props = n;
}

void ml_cursor_restored(struct ml_cursor *c)
{
    ml_cursor_merge_into_md(c);
    c->read_pos = ml_next_position(c->ml, c->mark_delete);
}

static void ml_cursor_unlink(struct ml_cursor *c)
{
    struct ml_ledger *ml = c->ml;
    for (int i = 0; i < ml->n_cursors; i++) {
        if (ml->cursors[i] == c) {
            memmove(ml->cursors + i, ml->cursors + i + 1,
                    (size_t)(ml->n_cursors - i - 1) * sizeof *ml->cursors);
            ml->n_cursors--;
            return;
        }
    }
}

static void ml_cursor_read_task(void *arg, int status);

/* The cursor lets go of op; it completes with status from the loop. */
static void ml_cursor_detach_op(struct ml_read_op *op, int status)
{
    struct ml_ledger *ml = op->ml;
    op->cursor = NULL;
    op->status = status;
    if (op->state == ML_READ_WAITING) {
        TAILQ_REMOVE(&ml->waiters, op, wait_link);
        op->state = ML_READ_QUEUED;
        ml_defer(ml->f, &op->task, ml_cursor_read_task, op);
    }
    /* QUEUED: the queued task sees status; STORE: the completion does. */
}

static void ml_cursor_cancel_ops(struct ml_cursor *c, int status)
{
    if (c->read_op)
        ml_cursor_detach_op(c->read_op, status);
    if (c->replay_op)
        ml_cursor_detach_op(c->replay_op, status);
    c->read_op = c->replay_op = NULL;
}

void ml_cursor_destroy(struct ml_cursor *c, int status)
{
    if (!c)
        return;
    ml_cursor_cancel_ops(c, status);
    ml_cursor_acks_clear_all(c);
    ml_cursor_batch_drop_upto(c, ML_POS_LATEST, true);
    mg_map_fini(&c->batch);
    ml_cursor_props_free(c);
    mg_free(c->name);
    mg_free(c);
}

static struct ml_cursor *ml_cursor_find_durable(const struct ml_ledger *ml, const char *name)
{
    for (int i = 0; i < ml->n_cursors; i++)
        if (ml->cursors[i]->durable && strcmp(ml->cursors[i]->name, name) == 0)
            return ml->cursors[i];
    return NULL;
}

struct ml_cursor *ml_cursor_open(struct ml_ledger *ml, const char *name, bool durable,
                                 struct ml_position start, int *err)
{
    int dummy;
    if (!err)
        err = &dummy;
    *err = ml_usable(ml, name != NULL);
    if (*err < 0)
        return NULL;
    if (durable) {
        struct ml_cursor *c = ml_cursor_find_durable(ml, name);
        if (c) {
            if (c->open) {
                *err = -MG_EBUSY;
                return NULL;
            }
            c->open = true;
            c->read_pos = ml_next_position(ml, c->mark_delete);
            return c;
        }
    }
    struct ml_position md;
    if (start.ledger == INT64_MAX) {
        md = ml->lac;
    } else if (start.ledger < 0) {
        md = ml_prev_position(ml, ml_first_position(ml));
    } else {
        struct ml_position s = ml_normalize(ml, start);
        struct ml_position after = ml_next_position(ml, ml->lac);
        if (ml_pos_cmp(s, after) > 0)
            s = after;
        md = ml_prev_position(ml, s);
    }
    struct ml_cursor *c = ml_cursor_new(ml, name, durable, md);
    c->open = true;
    ml_persist_cursor(c, true); /* a new subscription is stored at once */
    return c;
}

void ml_cursor_close(struct ml_cursor *c)
{
    if (!c)
        return;
    struct ml_ledger *ml = c->ml;
    ml_cursor_cancel_ops(c, -MG_ECANCELED);
    if (c->durable) {
        c->open = false;
        ml_persist_cursor(c, true);
        return;
    }
    ml_cursor_unlink(c);
    ml_cursor_destroy(c, -MG_ECANCELED);
    (void)ml;
}

void ml_cursor_delete(struct ml_cursor *c)
{
    if (!c)
        return;
    struct ml_ledger *ml = c->ml;
    if (c->durable && ml->f->mops && ml->state == ML_READY && !ml->deleted)
        ml->f->mops->remove_cursor(ml->f->mimpl, ml, c->name, NULL);
    ml_cursor_unlink(c);
    ml_cursor_destroy(c, -MG_ECANCELED);
    /* The slowest durable cursor may be gone: more ledgers may be consumed now. */
    ml_maybe_trim(ml, NULL);
}

const char *ml_cursor_name_next(struct ml_ledger *ml, size_t *pos)
{
    while (*pos < (size_t)ml->n_cursors) {
        const struct ml_cursor *c = ml->cursors[(*pos)++];
        if (c->durable)
            return c->name;
    }
    return NULL;
}

bool ml_cursor_exists(struct ml_ledger *ml, const char *name)
{
    return ml && name && ml_cursor_find_durable(ml, name) != NULL;
}

const char *ml_cursor_name(const struct ml_cursor *c)
{
    return c->name;
}

bool ml_cursor_durable(const struct ml_cursor *c)
{
    return c->durable;
}

/* ---- acks ----------------------------------------------------------------------------- */

bool ml_cursor_is_acked(const struct ml_cursor *c, struct ml_position pos)
{
    return ml_pos_cmp(pos, c->mark_delete) <= 0 || ml_cursor_bit_test(c, pos);
}

int ml_cursor_ack(struct ml_cursor *c, struct ml_position pos, const int64_t *ack_set, int n_words,
                  int32_t batch_size)
{
    if (!c)
        return 0;
    struct ml_ledger *ml = c->ml;
    if (ml_pos_cmp(pos, c->mark_delete) <= 0 || ml_pos_cmp(pos, ml->lac) > 0)
        return 0;
    const struct ml_ledger_info *li = ml_find_ledger(ml, pos.ledger);
    if (!li || pos.entry < 0 || pos.entry >= li->entries || ml_cursor_bit_test(c, pos))
        return 0;
    if (ack_set) {
        unsigned char key[16];
        ml_cursor_pos_key(pos, key);
        struct ml_batch_set *bs = mg_map_get(&c->batch, key, sizeof key);
        if (!bs) {
            int nb = batch_size > 0 ? (batch_size + 63) / 64 : n_words;
            if (nb < 0)
                nb = 0;
            bs = mg_malloc(sizeof *bs + (size_t)nb * sizeof bs->words[0]);
            bs->n_words = nb;
            for (int i = 0; i < nb; i++) {
                int64_t bits = batch_size > 0 ? (int64_t)batch_size - (int64_t)i * 64 : 64;
                bs->words[i] = bits >= 64 ? -1 : (int64_t)(((uint64_t)1 << bits) - 1);
            }
            mg_map_put(&c->batch, key, sizeof key, bs);
        }
        bool left = false;
        for (int i = 0; i < bs->n_words; i++) {
            bs->words[i] &= i < n_words ? ack_set[i] : 0;
            left |= bs->words[i] != 0;
        }
        if (left) {
            if (c->durable)
                ml_persist_cursor(c, false);
            return 0;
        }
        mg_free(mg_map_del(&c->batch, key, sizeof key));
    } else {
        ml_cursor_batch_drop(c, pos);
    }
    if (ml_pos_cmp(ml_next_position(ml, c->mark_delete), pos) == 0) {
        c->mark_delete = pos;
        ml_cursor_merge_into_md(c);
        ml_cursor_md_changed(c);
    } else {
        ml_cursor_bit_set(c, pos);
        if (c->durable)
            ml_persist_cursor(c, false);
    }
    return 1;
}

void ml_cursor_ack_lost(struct ml_cursor *c, int64_t ledger, int64_t first, int64_t last)
{
    struct ml_ledger *ml = c->ml;
    bool any = false;
    for (int64_t e = first; e <= last; e++) {
        struct ml_position p = {ledger, e};
        if (ml_pos_cmp(p, c->mark_delete) <= 0 || ml_pos_cmp(p, ml->lac) > 0 ||
            ml_cursor_bit_test(c, p))
            continue;
        ml_cursor_batch_drop(c, p);
        ml_cursor_bit_set(c, p);
        any = true;
    }
    if (!any)
        return;
    ml_cursor_merge_into_md(c);
    ml_cursor_md_changed(c);
}

void ml_cursor_ack_cumulative(struct ml_cursor *c, struct ml_position pos)
{
    if (!c)
        return;
    struct ml_ledger *ml = c->ml;
    if (ml_pos_cmp(pos, ml->lac) > 0)
        pos = ml->lac;
    if (ml_pos_cmp(pos, c->mark_delete) <= 0)
        return;
    ml_cursor_acks_clear_upto(c, pos);
    ml_cursor_batch_drop_upto(c, pos, false);
    c->mark_delete = pos;
    ml_cursor_merge_into_md(c);
    ml_cursor_md_changed(c);
}

void ml_cursor_mark_delete_props(struct ml_cursor *c, struct ml_position pos,
                                 const struct ml_cursor_prop *props, int n)
{
    if (!c)
        return;
    ml_cursor_restore_props(c, props, n);
    struct ml_position before = c->mark_delete;
    ml_cursor_ack_cumulative(c, pos);
    if (ml_pos_cmp(before, c->mark_delete) == 0 && c->durable)
        ml_persist_cursor(c, false); /* only the properties changed */
}

int ml_cursor_props(const struct ml_cursor *c, const struct ml_cursor_prop **out)
{
    *out = c->props;
    return c->n_props;
}

const int64_t *ml_cursor_ack_set(const struct ml_cursor *c, struct ml_position pos, int *n_words)
{
    unsigned char key[16];
    ml_cursor_pos_key(pos, key);
    const struct ml_batch_set *bs = c->batch.count ? mg_map_get(&c->batch, key, sizeof key) : NULL;
    if (n_words)
        *n_words = bs ? bs->n_words : 0;
    return bs ? bs->words : NULL;
}

struct ml_position ml_cursor_mark_delete(const struct ml_cursor *c)
{
    return c->mark_delete;
}

void ml_cursor_reset(struct ml_cursor *c, struct ml_position pos)
{
    if (!c)
        return;
    struct ml_ledger *ml = c->ml;
    struct ml_position after = ml_next_position(ml, ml->lac);
    if (pos.ledger == INT64_MAX)
        pos = after;
    else if (pos.ledger < 0)
        pos = ml_first_position(ml);
    else
        pos = ml_normalize(ml, pos);
    if (ml_pos_cmp(pos, after) > 0)
        pos = after;
    ml_cursor_acks_clear_all(c);
    ml_cursor_batch_drop_upto(c, ML_POS_LATEST, true);
    c->mark_delete = ml_prev_position(ml, pos);
    c->read_pos = pos;
    ml_cursor_md_changed(c);
    ml_cursor_requeue_waiting(c);
}

void ml_cursor_skip(struct ml_cursor *c, int64_t n)
{
    if (!c || n <= 0)
        return;
    struct ml_ledger *ml = c->ml;
    struct ml_position last = c->mark_delete;
    struct ml_position p = ml_next_position(ml, c->mark_delete);
    while (n > 0 && ml_pos_cmp(p, ml->lac) <= 0) {
        if (!ml_cursor_bit_test(c, p)) {
            n--;
            last = p;
        }
        p = ml_next_position(ml, p);
    }
    ml_cursor_ack_cumulative(c, last);
}

void ml_cursor_clear_backlog(struct ml_cursor *c)
{
    if (c)
        ml_cursor_ack_cumulative(c, c->ml->lac);
}

int64_t ml_cursor_backlog(const struct ml_cursor *c)
{
    int64_t n = ml_count_entries(c->ml, c->mark_delete, c->ml->lac) - c->n_acked;
    return n > 0 ? n : 0;
}

int ml_cursor_num_ranges(const struct ml_cursor *c)
{
    return c->n_ranges;
}

struct strbuf {
    char *s; /* owned */
    size_t len, cap;
    int n;
};

static void ml_cursor_range_text(struct ml_position lower, struct ml_position upper, void *arg)
{
    struct strbuf *b = arg;
    char tmp[128];
    int k = snprintf(tmp, sizeof tmp, "%s(%" PRId64 ":%" PRId64 "..%" PRId64 ":%" PRId64 "]",
                     b->n++ ? "," : "", lower.ledger, lower.entry, upper.ledger, upper.entry);
    b->s = mg_grow(b->s, &b->cap, b->len + (size_t)k + 2, 1, 0);
    memcpy(b->s + b->len, tmp, (size_t)k);
    b->len += (size_t)k;
}

char *ml_cursor_ranges_string(const struct ml_cursor *c)
{
    struct strbuf b = {.s = mg_malloc(64), .len = 1, .cap = 64};
    b.s[0] = '[';
    ml_cursor_foreach_range(c, ml_cursor_range_text, &b);
    b.s[b.len++] = ']';
    b.s[b.len] = '\0';
    return b.s;
}

/* ---- reads ---------------------------------------------------------------------------- */

static void ml_cursor_read_run(struct ml_read_op *op);

static void ml_cursor_read_op_free(struct ml_read_op *op)
{
    struct ml_ledger *ml = op->ml;
    for (int i = 0; i < op->n_out; i++)
        ml_entry_unref(op->out[i]);
    mg_free(op->out);
    mg_free(op->targets);
    mg_free(op);
    ml_release(ml);
}

static void ml_cursor_read_finish(struct ml_read_op *op, int status)
{
    struct ml_cursor *c = op->cursor;
    struct ml_read_req *req = op->req;
    if (c) {
        if (op->replay)
            c->replay_op = NULL;
        else
            c->read_op = NULL;
        if (status == 0 && !op->replay && op->n_out > 0)
            c->read_pos = ml_next_position(c->ml, op->out[op->n_out - 1]->pos);
    }
    op->req = NULL;
    if (req) {
        if (status == 0) {
            req->entries = op->out;
            req->n = op->n_out;
            op->out = NULL;
            op->n_out = 0;
        } else {
            req->entries = NULL;
            req->n = 0;
        }
        req->cb(req, status);
    }
    ml_cursor_read_op_free(op);
}

static void ml_cursor_read_task(void *arg, int status)
{
    struct ml_read_op *op = arg;
    if (!status)
        status = op->status;
    if (!status && (!op->cursor || op->ml->state == ML_CLOSED))
        status = -MG_ECANCELED;
    if (status) {
        ml_cursor_read_finish(op, status);
        return;
    }
    ml_cursor_read_run(op);
}

static void ml_cursor_push_target(struct ml_read_op *op, struct ml_position p)
{
    if (op->n_targets == op->cap_targets) {
        op->cap_targets = op->cap_targets ? op->cap_targets * 2 : 16;
        op->targets = mg_realloc(op->targets, (size_t)op->cap_targets * sizeof *op->targets);
    }
    op->targets[op->n_targets++] = p;
}

/* The unacked positions from the read position on, up to max_entries. */
static void ml_cursor_compute_targets(struct ml_read_op *op)
{
    struct ml_cursor *c = op->cursor;
    struct ml_ledger *ml = c->ml;
    struct ml_position p = ml_normalize(ml, c->read_pos);
    struct ml_position first = ml_next_position(ml, c->mark_delete);
    if (ml_pos_cmp(p, first) < 0)
        p = first;
    op->n_targets = op->idx = 0;
    while (op->n_targets < op->req->max_entries && ml_pos_cmp(p, ml->lac) <= 0) {
        if (!ml_cursor_bit_test(c, p))
            ml_cursor_push_target(op, p);
        p = ml_next_position(ml, p);
    }
}

static bool ml_cursor_bytes_reached(const struct ml_read_op *op)
{
    size_t max = op->req->max_bytes;
    return max > 0 && op->n_out > 0 && op->bytes >= max;
}

static void ml_cursor_push_out(struct ml_read_op *op, struct ml_entry *e)
{
    if (op->n_out == 0)
        op->out = mg_malloc((size_t)(op->n_targets > 0 ? op->n_targets : 1) * sizeof *op->out);
    op->out[op->n_out++] = e;
    op->bytes += e->size;
}

static bool ml_cursor_target_skipped(const struct ml_read_op *op, struct ml_position p)
{
    /* Leave out positions acked since the targets were listed (replays: given acked) and
     * ones that are not (or no longer) stored. */
    const struct ml_ledger *ml = op->ml;
    if (ml_pos_cmp(p, ml->lac) > 0 || ml_cursor_is_acked(op->cursor, p))
        return true;
    const struct ml_ledger_info *li = ml_find_ledger(ml, p.ledger);
    return !li || p.entry < 0 || p.entry >= li->entries;
}

static void ml_cursor_read_store_done(struct ml_store_req *sreq, int status)
{
    struct ml_read_op *op = sreq->data;
    bool dead = !op->req || op->status || !op->cursor || op->ml->state == ML_CLOSED;
    int end = op->idx;
    while (end < op->n_targets && op->targets[end].ledger == sreq->ledger_id &&
           op->targets[end].entry >= sreq->first && op->targets[end].entry <= sreq->last &&
           (end == op->idx || op->targets[end].entry > op->targets[end - 1].entry))
        end++;
    if (status == 0 && !dead) {
        int k = 0;
        for (int j = op->idx; j < end && !ml_cursor_bytes_reached(op); j++) {
            if (ml_cursor_target_skipped(op, op->targets[j]))
                continue;
            while (k < sreq->n && sreq->entries[k]->pos.entry < op->targets[j].entry)
                k++;
            if (k < sreq->n && sreq->entries[k]->pos.entry == op->targets[j].entry) {
                ml_cursor_push_out(op, sreq->entries[k]);
                sreq->entries[k++] = NULL;
            }
        }
    }
    for (int i = 0; i < sreq->n; i++)
        ml_entry_unref(sreq->entries[i]);
    mg_free(sreq->entries);
    sreq->entries = NULL;
    sreq->n = 0;
    if (!op->req) { /* canceled while the store read ran */
        ml_cursor_read_op_free(op);
        return;
    }
    if (dead) {
        ml_cursor_read_finish(op, op->status ? op->status : -MG_ECANCELED);
        return;
    }
    const struct ml_ledger_info *li = ml_find_ledger(op->ml, sreq->ledger_id);
    bool listed = li && sreq->first < li->entries;
    if (listed && (status == -MG_ENOTFOUND || status == -MG_ENONRECOVERABLE)) {
        /* Data the list has can never be read back: a gone ledger (all of it), or an entry
         * of the range (narrow down to it, one entry per read). */
        if (status == -MG_ENONRECOVERABLE && sreq->first < sreq->last) {
            op->narrow = true;
            op->state = ML_READ_QUEUED;
            ml_cursor_read_run(op);
            return;
        }
        int rc = status == -MG_ENOTFOUND
                     ? ml_data_lost(op->ml, sreq->ledger_id, -1, -1)
                     : ml_data_lost(op->ml, sreq->ledger_id, sreq->first, sreq->last);
        if (rc < 0) {
            /* What was read before it goes out first; the next read stops here again. */
            ml_cursor_read_finish(op, op->n_out > 0 ? 0 : rc);
            return;
        }
        /* Skipped: those entries are acknowledged now, the targets pass over them. */
        op->state = ML_READ_QUEUED;
        ml_cursor_read_run(op);
        return;
    }
    if (status < 0 && status != -MG_ENOTFOUND) {
        ml_cursor_read_finish(op, status);
        return;
    }
    op->idx = end; /* targets in the range that did not come back are gone: skipped */
    op->state = ML_READ_QUEUED;
    ml_cursor_read_run(op);
}

static void ml_cursor_read_run(struct ml_read_op *op)
{
    struct ml_ledger *ml = op->ml;
    for (;;) {
        if (!op->replay && op->n_targets == 0) {
            ml_cursor_compute_targets(op);
            if (op->n_targets == 0) {
                op->state = ML_READ_WAITING;
                TAILQ_INSERT_TAIL(&ml->waiters, op, wait_link);
                return;
            }
        }
        while (op->idx < op->n_targets && !ml_cursor_bytes_reached(op)) {
            struct ml_position p = op->targets[op->idx];
            if (ml_cursor_target_skipped(op, p)) {
                op->idx++;
                continue;
            }
            struct ml_entry *e = ml_cache_get(ml, p);
            if (e) {
                ml_cursor_push_out(op, e);
                op->idx++;
                continue;
            }
            const struct ml_ledger_info *li = ml_find_ledger(ml, p.ledger);
            if (!li || p.entry < 0 || p.entry >= li->entries) {
                op->idx++;
                continue;
            }
            /* One store read for the run of targets ahead in this ledger. */
            int64_t last = p.entry;
            for (int j = op->idx + 1; j < op->n_targets && !op->narrow; j++) {
                struct ml_position q = op->targets[j];
                if (q.ledger != p.ledger || q.entry <= last || q.entry >= li->entries ||
                    q.entry - p.entry >= 1000)
                    break;
                last = q.entry;
            }
            op->state = ML_READ_STORE;
            int rc = ml_read_range(op->ml, &op->sreq, p.ledger, p.entry, last,
                                   ml_cursor_read_store_done, op);
            if (rc < 0) {
                op->state = ML_READ_QUEUED;
                ml_cursor_read_finish(op, rc);
            }
            return;
        }
        if (op->replay || op->n_out > 0)
            break;
        /* Every target vanished (trimmed): move past them and look again. */
        op->cursor->read_pos = ml_next_position(ml, op->targets[op->n_targets - 1]);
        op->n_targets = op->idx = 0;
    }
    ml_cursor_read_finish(op, 0);
}

/* A read (replay: of given positions) of c into req, checked against c's state; 0 with
 * *out the op to start, or < 0. */
static int ml_cursor_read_op_new(struct ml_cursor *c, struct ml_read_req *req, ml_read_cb cb,
                                 int max_entries, size_t max_bytes, bool replay,
                                 struct ml_read_op **out)
{
    if (!c->open || c->ml->state != ML_READY || c->ml->deleted)
        return -MG_ECLOSED;
    if (replay ? c->replay_op : c->read_op)
        return -MG_EBUSY;
    req->cb = cb;
    req->entries = NULL;
    req->n = 0;
    req->max_entries = max_entries;
    req->max_bytes = max_bytes;
    req->cursor = c;
    struct ml_read_op *op = mg_calloc(1, sizeof *op);
    op->ml = c->ml;
    op->cursor = c;
    op->req = req;
    op->replay = replay;
    op->state = ML_READ_QUEUED;
    ml_hold(c->ml);
    *out = op;
    return 0;
}

int ml_cursor_read(struct ml_cursor *c, int max_entries, size_t max_bytes, struct ml_read_req *req,
                   ml_read_cb cb)
{
    if (!c || !req || !cb || max_entries <= 0)
        return -MG_EINVAL;
    struct ml_read_op *op;
    int rc = ml_cursor_read_op_new(c, req, cb, max_entries, max_bytes, false, &op);
    if (rc < 0)
        return rc;
    c->read_op = op;
    ml_defer(c->ml->f, &op->task, ml_cursor_read_task, op);
    return 0;
}

int ml_cursor_replay(struct ml_cursor *c, const struct ml_position *positions, int n,
                     struct ml_read_req *req, ml_read_cb cb)
{
    if (!c || !req || !cb || n < 0 || (n > 0 && !positions))
        return -MG_EINVAL;
    struct ml_read_op *op;
    int rc = ml_cursor_read_op_new(c, req, cb, n, 0, true, &op);
    if (rc < 0)
        return rc;
    for (int i = 0; i < n; i++)
        ml_cursor_push_target(op, positions[i]);
    c->replay_op = op;
    ml_defer(c->ml->f, &op->task, ml_cursor_read_task, op);
    return 0;
}

int ml_cursor_cancel_read(struct ml_cursor *c)
{
    if (!c || !c->read_op)
        return -MG_ENOTFOUND;
    struct ml_read_op *op = c->read_op;
    struct ml_ledger *ml = c->ml;
    struct ml_read_req *req = op->req;
    c->read_op = NULL;
    op->cursor = NULL;
    op->req = NULL;
    switch (op->state) {
    case ML_READ_QUEUED:
        ml_task_cancel(ml->f, &op->task);
        ml_cursor_read_op_free(op);
        break;
    case ML_READ_WAITING:
        TAILQ_REMOVE(&ml->waiters, op, wait_link);
        ml_cursor_read_op_free(op);
        break;
    case ML_READ_STORE:
        break; /* ml_cursor_read_store_done frees it */
    }
    req->entries = NULL;
    req->n = 0;
    req->cb(req, -MG_ECANCELED);
    return 0;
}

void ml_wake_waiters(struct ml_ledger *ml)
{
    struct ml_read_op *op;
    while ((op = TAILQ_FIRST(&ml->waiters)) != NULL) {
        TAILQ_REMOVE(&ml->waiters, op, wait_link);
        op->state = ML_READ_QUEUED;
        ml_defer(ml->f, &op->task, ml_cursor_read_task, op);
    }
}

static void ml_cursor_requeue_waiting(struct ml_cursor *c)
{
    struct ml_read_op *op = c->read_op;
    if (op && op->state == ML_READ_WAITING) {
        TAILQ_REMOVE(&c->ml->waiters, op, wait_link);
        op->state = ML_READ_QUEUED;
        ml_defer(c->ml->f, &op->task, ml_cursor_read_task, op);
    }
}

bool ml_cursor_has_more(const struct ml_cursor *c)
{
    const struct ml_ledger *ml = c->ml;
    struct ml_position p = ml_normalize(ml, c->read_pos);
    struct ml_position first = ml_next_position(ml, c->mark_delete);
    if (ml_pos_cmp(p, first) < 0)
        p = first;
    for (; ml_pos_cmp(p, ml->lac) <= 0; p = ml_next_position(ml, p))
        if (!ml_cursor_bit_test(c, p))
            return true;
    return false;
}

struct ml_position ml_cursor_read_position(const struct ml_cursor *c)
{
    return c->read_pos;
}

void ml_cursor_seek_read(struct ml_cursor *c, struct ml_position pos)
{
    if (!c)
        return;
    c->read_pos = pos;
    ml_cursor_requeue_waiting(c);
}

void ml_cursor_rewind(struct ml_cursor *c)
{
    if (!c)
        return;
    c->read_pos = ml_next_position(c->ml, c->mark_delete);
    ml_cursor_requeue_waiting(c);
}
