/*
 * sim_bk.c - a seeded simulation of the durable managed ledger: the managed ledger (ml), the
 * BookKeeper client (bkc) and the memory metadata store on the fake bookies (bkc_fake.c) and a
 * simulated loop (util/loop.h). One seed drives every choice (bookies, quorums, workload,
 * faults, timings), so a failing seed replays exactly.
 *
 * Each seed: 3-6 bookies, E/Qw/Qa drawn from the valid triples; an owner appends, reads and
 * acknowledges through a durable cursor while bookies crash and restart (losing what they had
 * not acknowledged), get partitioned, slow, or drop / lose / fail requests at random, and up to
 * Qa-1 of them die for good; then 1-3 times a new owner takes the managed ledger over
 * (recovering and fencing the old owner's last ledger), either after the old owner crashed or
 * while it still runs (it crashes later), and goes on under faults; everything heals; the last
 * owner appends and closes cleanly; a reader C checks:
 *   I1 every append acknowledged to any owner (also after it was taken over) is readable at
 *      its position with its bytes: nothing acknowledged is lost while fewer than Qa bookies
 *      are gone for good, and a fenced owner gets no acknowledgement its successor does not
 *      see;
 *   I2 entries are in the order they were sent, each sent once by an owner;
 *   I3 nothing an old owner sent after a takeover finished is readable in the ledger its
 *      successor fenced: the fence cuts the ledger;
 *   C1 the stored cursor position never goes backwards; C2 nor does the position a cursor
 *      reopens at; C3 a reopened cursor skips nothing that was not acknowledged; C4 after a
 *      clean close it reopens exactly where it was stored (where it was, unless a split-brain
 *      predecessor's last write won).
 * Liveness: once healed, the owner opens and appends, and C opens and reads, within bounded
 * simulated time.
 *
 * Usage (run by `make check` with the defaults):
 *   sim_bk                  SIM_SEEDS seeds (default 1000) from SIM_SEED_BASE (default 1)
 *   SIM_SEED=n sim_bk       replay seed n with a trace of its decisions (SIM_LOG=debug|info)
 * A failure prints the seed, what broke and the command that replays it; exit status 1.
 * The first seed runs twice and must leave the same trace digest (the replay is exact).
 */
#include "bkc/bkc.h"
#include "lib/tl_ml.h"
#include "meta/meta.h"
#include "meta/meta_int.h"
#include "ml/ml.h"
#include "ml/ml_int.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"
#include "util/loop.h"
#include "util/map.h"

#include "MLDataFormats.pb-c.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAXB 6
#define ML_NAME "t/ns/persistent/sim"
#define SUB "sub"

struct sim;

/* One append sent by a writer. */
struct rec {
    struct sim *s;
    int writer; /* the writer's incarnation: 0, 1, ... in the order they took over */
    int seq;    /* per writer */
    uint64_t sent_at;
    bool done;
    int status;
    struct ml_position pos; /* when acknowledged */
    struct ml_append_req req;
};

struct writer {
    struct sim *s;
    int inc; /* incarnation: 0 for the first owner, +1 per takeover; the reader's is -1 */
    char name[16];
    bool alive;
    struct meta_store *meta; /* owned: its session */
    struct bkc_client *bkc;
    struct ml_factory *f;
    struct ml_ledger *ml;
    struct ml_cursor *cur;
    int next_seq;
    /* the cursor's reads: what was delivered and not yet acknowledged */
    struct ml_read_req rreq;
    bool reading;
    struct ml_position *delivered;
    int n_delivered, cap_delivered;
};

struct sim {
    uint64_t seed, rng;
    bool verbose;
    jmp_buf fail_jmp;
    char fail[400];
    uint64_t digest;
    struct event_base *base;
    struct mg_loop *loop;
    struct meta_store *admin; /* the bookies' registrations and inspection */
    struct bkc_fake *fake;
    int nb, E, Qw, Qa;
    bool crashed[MAXB], partitioned[MAXB], dead[MAXB], registered[MAXB];
    int n_dead, max_dead;
    bool random_faults;
    struct ml_config cfg;
    int timeout_ms;
    struct writer w[3]; /* two owners taking turns (w[0], w[1]) and the reader C (w[2]) */
    struct writer *cur; /* the newest owner */
    bool cur_split;     /* its predecessor still ran when it took over */
    struct rec **recs;
    int n_recs, cap_recs;
    /* cursor: what the application acknowledged */
    struct ml_position cum; /* everything <= cum acknowledged (cumulatively) */
    struct mg_map acked;    /* 16-byte position -> (void *)1: acknowledged individually */
    struct ml_position stored_max, reopen_max;
    /* takeovers: the old owner's last ledger, fenced by the new one, and when */
    struct takeover {
        int old_inc;
        int64_t fenced_ledger;
        uint64_t done_at;
    } tk[8];
    int n_tk;
    int64_t n_appends_ok, n_faults;
};

/* ---- helpers ---------------------------------------------------------------------------- */

static uint64_t rnd(struct sim *s)
{
    /* splitmix64: every decision of a seed comes from here */
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int between(struct sim *s, int lo, int hi)
{
    return lo + (int)(rnd(s) % (uint64_t)(hi - lo + 1));
}

static bool chance(struct sim *s, int percent)
{
    return (int)(rnd(s) % 100) < percent;
}

static uint64_t now_ms(struct sim *s)
{
    return mg_loop_mono_ms(s->loop);
}

static void mix(struct sim *s, uint64_t v)
{
    s->digest = (s->digest ^ v) * 0x100000001b3ULL;
}

static void trace(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void trace(struct sim *s, const char *fmt, ...)
{
    if (!s->verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "sim[t=%" PRIu64 "] ", now_ms(s));
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void fail(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct sim *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(s->fail, sizeof s->fail, "t=%" PRIu64 " ms: ", s->loop ? now_ms(s) : 0);
    vsnprintf(s->fail + n, sizeof s->fail - (size_t)n, fmt, ap);
    va_end(ap);
    longjmp(s->fail_jmp, 1);
}

static void advance(struct sim *s, int ms)
{
    if (mg_loop_advance(s->loop, (uint64_t)ms) < 0)
        fail(s, "the loop does not settle (livelock)");
}

/* Run the loop until *flag (at most max_ms of simulated time). */
static bool run_until(struct sim *s, const bool *flag, int max_ms)
{
    uint64_t end = now_ms(s) + (uint64_t)max_ms;
    if (mg_loop_run_due(s->loop) < 0)
        fail(s, "the loop does not settle (livelock)");
    while (!*flag && now_ms(s) < end && mg_loop_step(s->loop, end - now_ms(s)))
        ;
    return *flag;
}

static int pos_cmp(struct ml_position a, struct ml_position b)
{
    return ml_pos_cmp(a, b);
}

static void pos_key(struct ml_position p, uint8_t k[16])
{
    memcpy(k, &p.ledger, 8);
    memcpy(k + 8, &p.entry, 8);
}

/* ---- metadata inspection ------------------------------------------------------------------ */

struct mwait {
    bool done;
    int status;
};

static void mwait_cb(struct meta_req *r, int status)
{
    struct mwait *m = r->data;
    m->done = true;
    m->status = status;
}

static void bookie_register(struct sim *s, int i, bool on)
{
    char *path = mg_asprintf("/ledgers/available/%s", bkc_fake_bookie_id(s->fake, i));
    struct mwait m = {0};
    struct meta_req r = {.data = &m};
    int rc =
        on ? meta_put(s->admin, path, "", 0, META_VERSION_ANY, META_CREATE_PARENTS, &r, mwait_cb)
           : meta_delete(s->admin, path, META_VERSION_ANY, &r, mwait_cb);
    mg_free(path);
    if (rc < 0 || !run_until(s, &m.done, 1000))
        fail(s, "cannot (un)register bookie %d", i);
    meta_req_fini(&r);
    s->registered[i] = on;
}

/* The cursor's stored mark-delete position ({-2, -2}: not stored). */
static struct ml_position stored_md(struct sim *s)
{
    struct mwait m = {0};
    struct meta_req r = {.data = &m};
    struct ml_position p = {-2, -2};
    if (meta_get(s->admin, "/managed-ledgers/" ML_NAME "/" SUB, &r, mwait_cb) < 0 ||
        !run_until(s, &m.done, 1000))
        fail(s, "cannot read the stored cursor");
    if (m.status == 0) {
        Pulsar__Ml__ManagedCursorInfo *ci =
            pulsar__ml__managed_cursor_info__unpack(NULL, r.len, (const uint8_t *)r.value);
        if (!ci)
            fail(s, "stored cursor undecodable");
        p = (struct ml_position){ci->markdeleteledgerid, ci->markdeleteentryid};
        pulsar__ml__managed_cursor_info__free_unpacked(ci, NULL);
    }
    meta_req_fini(&r);
    return p;
}

/* C1: the stored cursor position never goes backwards. */
static void check_stored_cursor(struct sim *s)
{
    struct ml_position p = stored_md(s);
    if (p.ledger == -2)
        return;
    if (pos_cmp(p, s->stored_max) < 0)
        fail(s,
             "C1: the stored cursor went back from %" PRId64 ":%" PRId64 " to %" PRId64 ":%" PRId64,
             s->stored_max.ledger, s->stored_max.entry, p.ledger, p.entry);
    s->stored_max = p;
}

/* ---- faults ------------------------------------------------------------------------------- */

static void heal_all(struct sim *s)
{
    trace(s, "heal everything");
    for (int i = 0; i < s->nb; i++) {
        if (s->dead[i])
            continue;
        if (s->crashed[i]) {
            bkc_fake_restart(s->fake, i);
            s->crashed[i] = false;
        }
        if (!s->registered[i])
            bookie_register(s, i, true);
        if (s->partitioned[i]) {
            bkc_fake_partition(s->fake, i, false);
            s->partitioned[i] = false;
        }
        bkc_fake_set_latency(s->fake, i, 1, 3);
    }
    bkc_fake_set_random(s->fake, NULL);
    s->random_faults = false;
}

static void inject_fault(struct sim *s)
{
    int i = between(s, 0, s->nb - 1);
    if (s->dead[i])
        return;
    s->n_faults++;
    switch (between(s, 0, 7)) {
    case 0: /* crash */
        if (!s->crashed[i]) {
            trace(s, "crash bookie %d", i);
            bkc_fake_crash(s->fake, i);
            s->crashed[i] = true;
            if (chance(s, 50)) /* its session expired: it leaves the registry */
                bookie_register(s, i, false);
        }
        break;
    case 1: /* restart */
        if (s->crashed[i]) {
            trace(s, "restart bookie %d", i);
            bkc_fake_restart(s->fake, i);
            s->crashed[i] = false;
            if (!s->registered[i])
                bookie_register(s, i, true);
        }
        break;
    case 2: /* partition or heal */
        s->partitioned[i] = !s->partitioned[i];
        trace(s, "%s bookie %d", s->partitioned[i] ? "partition" : "heal", i);
        bkc_fake_partition(s->fake, i, s->partitioned[i]);
        break;
    case 3: /* slow, or fast again */
        if (chance(s, 50)) {
            trace(s, "bookie %d slow", i);
            bkc_fake_set_latency(s->fake, i, 5, between(s, 20, 400));
        } else {
            bkc_fake_set_latency(s->fake, i, 1, 3);
        }
        break;
    case 4: /* random request faults on or off */
        s->random_faults = !s->random_faults;
        trace(s, "random faults %s", s->random_faults ? "on" : "off");
        if (s->random_faults) {
            struct bkc_fake_random r = {
                .drop_permille = between(s, 0, 20),
                .lose_answer_permille = between(s, 0, 20),
                .error_permille = between(s, 0, 30),
                .delay_permille = between(s, 0, 100),
                .max_delay_ms = between(s, 5, 300),
            };
            bkc_fake_set_random(s->fake, &r);
        } else {
            bkc_fake_set_random(s->fake, NULL);
        }
        break;
    case 5: /* dies for good (fewer than Qa, and E stay for new ledgers) */
        if (s->n_dead < s->max_dead) {
            trace(s, "bookie %d dies for good", i);
            if (!s->crashed[i])
                bkc_fake_crash(s->fake, i);
            s->crashed[i] = true;
            s->dead[i] = true;
            s->n_dead++;
            if (s->registered[i])
                bookie_register(s, i, false);
        }
        break;
    default: /* most of the time nothing */
        break;
    }
}

/* ---- writers ------------------------------------------------------------------------------ */

static void append_cb(struct ml_append_req *req, int status)
{
    struct rec *r = req->data;
    struct sim *s = r->s;
    r->done = true;
    r->status = status;
    if (status == 0) {
        r->pos = req->pos;
        s->n_appends_ok++;
        mix(s, (uint64_t)r->writer << 56 ^ (uint64_t)r->seq << 32 ^
                   (uint64_t)req->pos.ledger << 20 ^ (uint64_t)req->pos.entry);
    }
}

static struct evbuffer *payload(struct sim *s, int writer, int seq)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, "S%" PRIu64 "-W%d-%06d", s->seed, writer, seq);
    return b;
}

static void do_append(struct writer *w)
{
    struct sim *s = w->s;
    struct rec *r = mg_calloc(1, sizeof *r);
    r->s = s;
    r->writer = w->inc;
    r->seq = w->next_seq++;
    r->sent_at = now_ms(s);
    r->req.data = r;
    if (s->n_recs == s->cap_recs) {
        s->cap_recs = s->cap_recs ? s->cap_recs * 2 : 256;
        s->recs = mg_realloc(s->recs, (size_t)s->cap_recs * sizeof *s->recs);
    }
    s->recs[s->n_recs++] = r;
    int rc = ml_append(w->ml, payload(s, w->inc, r->seq), NULL, &r->req, append_cb);
    if (rc < 0) {
        r->done = true;
        r->status = rc;
    }
}

static void read_cb(struct ml_read_req *req, int status)
{
    struct writer *w = req->data;
    w->reading = false;
    if (status != 0)
        return;
    for (int i = 0; i < req->n; i++) {
        struct ml_entry *e = req->entries[i];
        if (w->n_delivered == w->cap_delivered) {
            w->cap_delivered = w->cap_delivered ? w->cap_delivered * 2 : 64;
            w->delivered =
                mg_realloc(w->delivered, (size_t)w->cap_delivered * sizeof *w->delivered);
        }
        w->delivered[w->n_delivered++] = e->pos;
        ml_entry_unref(e);
    }
    mg_free(req->entries);
    req->entries = NULL;
}

/* Acknowledge some of what was delivered, as an application would. */
static void do_ack(struct writer *w)
{
    struct sim *s = w->s;
    if (!w->n_delivered || !w->cur)
        return;
    if (chance(s, 40)) {
        /* cumulative, up to a delivered position: everything before it was delivered too
         * (reads come in order), so the application consumed it all */
        int k = between(s, 0, w->n_delivered - 1);
        struct ml_position p = w->delivered[k];
        ml_cursor_ack_cumulative(w->cur, p);
        if (pos_cmp(p, s->cum) > 0)
            s->cum = p;
        memmove(w->delivered, w->delivered + k + 1,
                (size_t)(w->n_delivered - k - 1) * sizeof *w->delivered);
        w->n_delivered -= k + 1;
    } else {
        int k = between(s, 0, w->n_delivered - 1);
        struct ml_position p = w->delivered[k];
        ml_cursor_ack(w->cur, p, NULL, 0, 0);
        uint8_t key[16];
        pos_key(p, key);
        mg_map_put(&s->acked, key, 16, (void *)1);
        w->delivered[k] = w->delivered[--w->n_delivered];
    }
}

static bool was_acked(struct sim *s, struct ml_position p)
{
    uint8_t key[16];
    pos_key(p, key);
    return pos_cmp(p, s->cum) <= 0 || mg_map_get(&s->acked, key, 16) != NULL;
}

static void writer_new(struct sim *s, struct writer *w, int inc)
{
    memset(w, 0, sizeof *w);
    w->s = s;
    w->inc = inc;
    if (inc >= 0)
        snprintf(w->name, sizeof w->name, "W%d", inc);
    else
        snprintf(w->name, sizeof w->name, "C");
    if (meta_open_peer(s->admin, NULL, &w->meta) < 0)
        fail(s, "no meta session for %s", w->name);
    struct bkc_config bc;
    bkc_config_default(&bc);
    bc.ensemble_size = s->E;
    bc.write_quorum = s->Qw;
    bc.ack_quorum = s->Qa;
    bc.timeout_ms = s->timeout_ms;
    bc.transport = bkc_fake_transport(s->fake);
    bc.seed = rnd(s) | 1;
    if (bkc_client_new(s->loop, w->meta, &bc, &w->bkc) < 0)
        fail(s, "bkc_client_new");
    struct ml_config cfg = s->cfg;
    cfg.meta = w->meta;
    cfg.bkc = w->bkc;
    w->f = ml_factory_new(s->loop, "bookkeeper", &cfg);
    if (!w->f)
        fail(s, "ml_factory_new");
    w->alive = true;
}

/* Close the writer's ML if it is open (a read in progress cancelled). */
static void writer_close(struct writer *w)
{
    if (!w->ml)
        return;
    if (w->reading)
        ml_cursor_cancel_read(w->cur);
    w->cur = NULL;
    ml_close(w->ml);
    w->ml = NULL;
}

/* Close the writer's ML (if open) and reopen it with its cursor. Returns the open status. */
static int writer_open(struct writer *w)
{
    struct sim *s = w->s;
    writer_close(w);
    w->n_delivered = 0;
    struct tl_open r = {0};
    if (ml_open(w->f, ML_NAME, tl_open_cb, &r) < 0)
        return -MG_EIO;
    /* An open waits for the recovery of the last ledger, which waits for bookies: while
     * they stay unreachable (a partition keeps them registered, so ensemble changes may pick
     * them again and again) it does not end; once everything healed it must. */
    if (!run_until(s, &r.done, 10000)) {
        heal_all(s);
        if (!run_until(s, &r.done, 60000))
            fail(s, "liveness: %s: ml_open does not complete once everything healed", w->name);
    }
    trace(s, "%s: open: %s", w->name, r.status ? mg_errname(r.status) : "ok");
    if (r.status < 0)
        return r.status;
    w->ml = r.ml;
    int err = 0;
    w->cur = ml_cursor_open(w->ml, SUB, true, ML_POS_EARLIEST, &err);
    if (!w->cur)
        fail(s, "%s: cursor open: %s", w->name, mg_errname(err));
    return 0;
}

/* C2, C3: a cursor reopens neither behind the last position it reopened at or was stored
 * at, nor past anything the application did not acknowledge. */
static void check_reopened_cursor(struct sim *s, struct writer *w)
{
    struct ml_position m = ml_cursor_mark_delete(w->cur);
    trace(s, "%s: cursor reopens at %" PRId64 ":%" PRId64, w->name, m.ledger, m.entry);
    mix(s, (uint64_t)m.ledger << 32 ^ (uint64_t)m.entry);
    if (pos_cmp(m, s->reopen_max) < 0)
        fail(s,
             "C2: the cursor reopened at %" PRId64 ":%" PRId64 ", behind %" PRId64 ":%" PRId64
             " where it was before",
             m.ledger, m.entry, s->reopen_max.ledger, s->reopen_max.entry);
    if (s->stored_max.ledger >= 0 && pos_cmp(m, s->stored_max) < 0)
        fail(s,
             "C2: the cursor reopened at %" PRId64 ":%" PRId64 ", behind the stored %" PRId64
             ":%" PRId64,
             m.ledger, m.entry, s->stored_max.ledger, s->stored_max.entry);
    s->reopen_max = m;
    for (int i = 0; i < s->n_recs; i++) {
        struct rec *r = s->recs[i];
        if (r->status == 0 && r->done && pos_cmp(r->pos, m) <= 0 && !was_acked(s, r->pos))
            fail(s,
                 "C3: the cursor reopened at %" PRId64 ":%" PRId64 " skips %" PRId64 ":%" PRId64
                 " (writer %d seq %d), never acknowledged",
                 m.ledger, m.entry, r->pos.ledger, r->pos.entry, r->writer, r->seq);
    }
}

/* Free what the writer's incarnation holds: its factory (with its ML and cursor), client,
 * metadata session and deliveries; it is no longer alive. */
static void writer_free(struct writer *w)
{
    ml_factory_free(w->f);
    w->f = NULL;
    w->ml = NULL;
    w->cur = NULL;
    bkc_client_free(w->bkc);
    w->bkc = NULL;
    meta_close(w->meta);
    w->meta = NULL;
    mg_free(w->delivered);
    w->delivered = NULL;
    w->alive = false;
}

/* The writer dies: nothing more leaves it; what it had sent to the bookies still lands. */
static void writer_crash(struct writer *w)
{
    if (!w->alive)
        return;
    trace(w->s, "%s crashes", w->name);
    meta_set_offline(w->meta, true);
    writer_free(w);
}

/* A clean shutdown: close, let the metadata writes land, free. */
static void writer_shutdown(struct writer *w)
{
    struct sim *s = w->s;
    writer_close(w);
    uint64_t end = now_ms(s) + 30000;
    while (ml_factory_pending(w->f) > 0 && now_ms(s) < end)
        advance(s, 5);
    if (ml_factory_pending(w->f) > 0)
        fail(s, "%s: metadata writes still pending after 30 s", w->name);
    writer_free(w);
    memset(w, 0, sizeof *w);
}

/* One step of a writer's workload. */
static void writer_step(struct writer *w)
{
    struct sim *s = w->s;
    if (!w->alive || !w->ml)
        return;
    if (ml_is_fenced(w->ml)) {
        if (w != s->cur)
            return; /* an old owner lost the ML: it does nothing more */
        /* the newest owner was fenced by its predecessor's late writes (split brain):
         * reopen, as a broker would */
        trace(s, "%s is fenced: reopen", w->name);
        if (writer_open(w) == 0)
            check_reopened_cursor(s, w);
        return;
    }
    if (chance(s, 60)) {
        int n = between(s, 1, 4);
        for (int i = 0; i < n && w->ml; i++)
            do_append(w);
    }
    if (w->cur && !w->reading && chance(s, 50)) {
        memset(&w->rreq, 0, sizeof w->rreq);
        w->rreq.data = w;
        if (ml_cursor_read(w->cur, between(s, 1, 10), 0, &w->rreq, read_cb) == 0)
            w->reading = true;
    }
    if (chance(s, 40))
        do_ack(w);
}

/* ---- the scenario ---------------------------------------------------------------------------- */

static void setup(struct sim *s)
{
    s->base = event_base_new();
    s->loop = mg_loop_new_sim(s->base, 1000000, 1700000000000);
    struct meta_options mo = {.url = "memory"};
    if (meta_open(s->loop, &mo, &s->admin) < 0)
        fail(s, "meta_open");
    s->fake = bkc_fake_new(s->loop, rnd(s) | 1);
    s->nb = between(s, 3, MAXB);
    s->E = between(s, 1, s->nb < 5 ? s->nb : 5);
    s->Qw = between(s, 1, s->E);
    s->Qa = between(s, 1, s->Qw);
    /* fewer than Qa bookies die for good, and E stay for new ledgers */
    s->max_dead = s->Qa - 1 < s->nb - s->E ? s->Qa - 1 : s->nb - s->E;
    for (int i = 0; i < s->nb; i++) {
        char id[32];
        snprintf(id, sizeof id, "10.1.0.%d:3181", i + 1);
        bkc_fake_add_bookie(s->fake, id);
        bookie_register(s, i, true);
    }
    s->timeout_ms = between(s, 300, 2000);
    s->cfg.cache_size_bytes = chance(s, 50) ? 0 : (size_t)between(s, 100, 100000);
    s->cfg.max_entries_per_ledger = between(s, 3, 40);
    s->cfg.max_size_per_ledger = 1 << 30;
    s->cfg.retention_time_minutes = -1; /* keep everything: C reads it all */
    s->cfg.retention_size_mb = -1;
    s->cfg.cursor_flush_interval_ms = between(s, 20, 1000);
    s->cum = (struct ml_position){-1, -1};
    s->stored_max = (struct ml_position){-1, -1};
    s->reopen_max = (struct ml_position){-1, -1};
    mg_map_init(&s->acked);
    trace(s,
          "%d bookies, E=%d Qw=%d Qa=%d, at most %d die, timeout %d ms, %lld entries per "
          "ledger, cursor flush %d ms, cache %zu",
          s->nb, s->E, s->Qw, s->Qa, s->max_dead, s->timeout_ms,
          (long long)s->cfg.max_entries_per_ledger, s->cfg.cursor_flush_interval_ms,
          s->cfg.cache_size_bytes);
}

static void teardown(struct sim *s)
{
    for (int i = 0; i < 3; i++)
        if (s->w[i].f)
            writer_crash(&s->w[i]);
    if (s->admin)
        meta_close(s->admin);
    s->admin = NULL;
    if (s->loop)
        mg_loop_run_due(s->loop);
    bkc_fake_free(s->fake);
    s->fake = NULL;
    for (int i = 0; i < s->n_recs; i++)
        mg_free(s->recs[i]);
    mg_free(s->recs);
    s->recs = NULL;
    mg_map_fini(&s->acked);
    mg_loop_free(s->loop);
    s->loop = NULL;
    if (s->base)
        event_base_free(s->base);
    s->base = NULL;
}

/* Open writer w, retrying as a broker would (healing everything after a few failures). */
static void open_with_retries(struct sim *s, struct writer *w, struct writer *other)
{
    for (int attempt = 0;; attempt++) {
        if (attempt == 4)
            heal_all(s);
        if (attempt > 40)
            fail(s, "liveness: %s cannot open the ML after healing", w->name);
        if (writer_open(w) == 0)
            return;
        for (int k = 0; k < 10; k++) {
            if (other)
                writer_step(other);
            advance(s, 50);
        }
    }
}

static void verify_read_cb(struct ml_read_req *req, int status)
{
    struct mwait *m = req->data;
    m->done = true;
    m->status = status;
}

/* Read the whole ML through a non-durable cursor of C and check I1-I3. */
static void verify(struct sim *s, struct writer *c)
{
    struct ml_cursor *rc = ml_cursor_open(c->ml, "verify", false, ML_POS_EARLIEST, NULL);
    int *found = mg_calloc((size_t)s->n_recs + 1, sizeof *found); /* rec index -> seen */
    int last_writer = -1, last_seq = -1, n = 0;
    for (int guard = 0; ml_cursor_has_more(rc); guard++) {
        if (guard > 100000)
            fail(s, "verify: reading does not end");
        struct ml_read_req req = {0};
        struct mwait m = {0};
        req.data = &m;
        if (ml_cursor_read(rc, 50, 0, &req, verify_read_cb) < 0)
            fail(s, "verify: read refused");
        if (!run_until(s, &m.done, 60000))
            fail(s, "liveness: a read of C never completed");
        if (m.status < 0)
            fail(s, "I1: C cannot read the ML: %s", mg_errname(m.status));
        for (int i = 0; i < req.n; i++) {
            struct ml_entry *e = req.entries[i];
            char buf[64] = {0};
            evbuffer_copyout(e->data, buf, sizeof buf - 1);
            uint64_t seed;
            int wr, seq;
            if (sscanf(buf, "S%" SCNu64 "-W%d-%d", &seed, &wr, &seq) != 3 || seed != s->seed)
                fail(s, "I2: entry %" PRId64 ":%" PRId64 " holds bytes nobody sent", e->pos.ledger,
                     e->pos.entry);
            /* I2: in send order, each once */
            if (wr < last_writer || (wr == last_writer && seq <= last_seq))
                fail(s,
                     "I2: entry %" PRId64 ":%" PRId64 " (writer %d seq %d) after writer %d seq %d",
                     e->pos.ledger, e->pos.entry, wr, seq, last_writer, last_seq);
            last_writer = wr;
            last_seq = seq;
            int idx = -1;
            for (int k = 0; k < s->n_recs; k++)
                if (s->recs[k]->writer == wr && s->recs[k]->seq == seq)
                    idx = k;
            if (idx < 0)
                fail(s, "I2: entry %" PRId64 ":%" PRId64 ": writer %d never sent seq %d",
                     e->pos.ledger, e->pos.entry, wr, seq);
            struct rec *r = s->recs[idx];
            found[idx] = 1;
            if (r->status == 0 && pos_cmp(r->pos, e->pos) != 0)
                fail(s,
                     "I1: writer %d seq %d was acknowledged at %" PRId64 ":%" PRId64
                     " but is at %" PRId64 ":%" PRId64,
                     wr, seq, r->pos.ledger, r->pos.entry, e->pos.ledger, e->pos.entry);
            /* I3: a fence cuts the ledger the new owner recovered */
            for (int t = 0; t < s->n_tk; t++)
                if (wr == s->tk[t].old_inc && e->pos.ledger == s->tk[t].fenced_ledger &&
                    r->sent_at > s->tk[t].done_at)
                    fail(s,
                         "I3: W%d's seq %d, sent at %" PRIu64 " ms after the takeover at %" PRIu64
                         " ms, is readable at %" PRId64 ":%" PRId64 " in the ledger it fenced",
                         wr, seq, r->sent_at, s->tk[t].done_at, e->pos.ledger, e->pos.entry);
            mix(s, (uint64_t)e->pos.ledger << 32 ^ (uint64_t)e->pos.entry);
            n++;
            ml_entry_unref(e);
        }
        mg_free(req.entries);
    }
    for (int k = 0; k < s->n_recs; k++) {
        struct rec *r = s->recs[k];
        if (r->status == 0 && !found[k])
            fail(s, "I1: writer %d seq %d acknowledged at %" PRId64 ":%" PRId64 " is lost",
                 r->writer, r->seq, r->pos.ledger, r->pos.entry);
    }
    trace(s, "C read %d entries, all acknowledged ones among them", n);
    mg_free(found);
    ml_cursor_close(rc);
}

/* The newest owner's workload for `steps` steps under faults; its predecessor (split
 * brain) goes on until it crashes. */
static void run_phase(struct sim *s, struct writer *w, struct writer *old, int steps)
{
    for (int i = 0; i < steps; i++) {
        if (old && old->alive) {
            writer_step(old);
            if (chance(s, 10))
                writer_crash(old);
        }
        writer_step(w);
        if (chance(s, 7))
            inject_fault(s);
        advance(s, between(s, 0, 40));
        if (i % 8 == 0)
            check_stored_cursor(s);
    }
}

static void run_seed(struct sim *s)
{
    setup(s);
    struct writer *w = &s->w[0], *c = &s->w[2];

    /* the first owner: a healthy start, then its workload under faults */
    writer_new(s, w, 0);
    s->cur = w;
    open_with_retries(s, w, NULL);
    run_phase(s, w, NULL, between(s, 40, 300));

    /* 1-3 takeovers: after the owner crashed, or while it still runs (it crashes later) */
    int rounds = between(s, 1, 3);
    for (int round = 0; round < rounds; round++) {
        struct writer *old = w;
        w = old == &s->w[0] ? &s->w[1] : &s->w[0];
        bool split = chance(s, 50);
        if (!split)
            writer_crash(old);
        writer_new(s, w, old->inc + 1);
        trace(s, "%s takes over %s", w->name,
              split ? "while its predecessor still runs" : "after its predecessor crashed");
        open_with_retries(s, w, split ? old : NULL);
        s->cur = w;
        s->cur_split = split;
        struct takeover *t = &s->tk[s->n_tk++];
        t->old_inc = old->inc;
        t->done_at = now_ms(s);
        t->fenced_ledger = w->ml->n_ledgers >= 2 ? w->ml->ledgers[w->ml->n_ledgers - 2].id : -1;
        check_reopened_cursor(s, w);
        run_phase(s, w, split ? old : NULL, between(s, 20, 200));
        writer_crash(old);
    }

    /* everything heals; the owner must make progress, then closes cleanly */
    heal_all(s);
    if (!w->ml || ml_is_fenced(w->ml)) {
        open_with_retries(s, w, NULL);
        check_reopened_cursor(s, w);
    }
    /* requests lost before the heal still time out and may fail the ledger (and the roll
     * backs off): a producer resends until an append succeeds */
    bool progress = false;
    uint64_t end = now_ms(s) + 60000;
    while (!progress && now_ms(s) < end) {
        if (ml_is_fenced(w->ml)) {
            /* only the predecessor's writes from before its crash can have won a CAS */
            if (!s->cur_split)
                fail(s, "%s is fenced, but its predecessor crashed before it took over", w->name);
            open_with_retries(s, w, NULL);
            check_reopened_cursor(s, w);
            continue;
        }
        int first = s->n_recs;
        for (int i = 0; i < 3; i++)
            do_append(w);
        for (int i = first; i < s->n_recs; i++)
            while (!s->recs[i]->done && now_ms(s) < end)
                advance(s, 10);
        for (int i = first; i < s->n_recs; i++)
            progress |= s->recs[i]->status == 0;
        if (!progress)
            advance(s, 300);
    }
    if (!progress)
        fail(s, "liveness: %s cannot append for 60 s once everything healed", w->name);
    struct ml_position closed_at = ml_cursor_mark_delete(w->cur);
    writer_shutdown(w);
    check_stored_cursor(s);
    /* A clean close stores the cursor where it is, unless the predecessor's last writes
     * (split brain: issued before it learnt it was fenced) won the CAS, which fences the
     * owner instead: then the state the predecessor stored stands (C1 and C2 checked it does
     * not go back). */
    struct ml_position stored = stored_md(s);
    if (!s->cur_split && pos_cmp(stored, closed_at) != 0)
        fail(s,
             "C4: the owner closed cleanly at %" PRId64 ":%" PRId64 " but %" PRId64 ":%" PRId64
             " is stored",
             closed_at.ledger, closed_at.entry, stored.ledger, stored.entry);

    /* C: the cursor is where it was stored; every acknowledged append is there */
    writer_new(s, c, -1);
    open_with_retries(s, c, NULL);
    check_reopened_cursor(s, c);
    struct ml_position m = ml_cursor_mark_delete(c->cur);
    if (pos_cmp(m, stored) != 0)
        fail(s, "C4: the cursor stored at %" PRId64 ":%" PRId64 " reopens at %" PRId64 ":%" PRId64,
             stored.ledger, stored.entry, m.ledger, m.entry);
    verify(s, c);
    writer_shutdown(c);
    teardown(s);
}

/* Run one seed; returns 0 or -1 (s->fail says why). */
static int sim_one(uint64_t seed, bool verbose, uint64_t *digest)
{
    struct sim *s = mg_calloc(1, sizeof *s);
    s->seed = seed;
    s->rng = seed;
    s->verbose = verbose;
    s->digest = 0xcbf29ce484222325ULL;
    int rc = 0;
    if (setjmp(s->fail_jmp) == 0) {
        run_seed(s);
        if (digest)
            *digest = s->digest;
        if (verbose)
            fprintf(stderr,
                    "sim: seed %" PRIu64 ": %" PRId64 " appends acknowledged, %" PRId64
                    " faults, digest %016" PRIx64 "\n",
                    seed, s->n_appends_ok, s->n_faults, s->digest);
    } else {
        fprintf(stderr, "sim: seed %" PRIu64 " FAILED: %s\n", seed, s->fail);
        rc = -1; /* the state may be anything: the caller exits without freeing it */
    }
    if (rc == 0)
        mg_free(s);
    return rc;
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *v = getenv(name);
    return v && *v ? strtoull(v, NULL, 10) : dflt;
}

int main(int argc, char **argv)
{
    (void)argc;
    const char *self = argv[0];
    const char *one = getenv("SIM_SEED");
    if (one && *one) {
        enum mg_log_level lvl = MG_LOG_INFO;
        const char *l = getenv("SIM_LOG");
        if (l && *l)
            mg_log_parse_level(l, &lvl);
        mg_log_set_level(lvl);
        uint64_t seed = strtoull(one, NULL, 10);
        if (sim_one(seed, true, NULL) == 0)
            return 0;
        fflush(NULL);
        _exit(1); /* a failed seed's state is not freed: no leak report */
    }
    mg_log_set_level(MG_LOG_ERROR);
    uint64_t n = env_u64("SIM_SEEDS", 1000), base = env_u64("SIM_SEED_BASE", 1);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* The replay is exact: the same seed leaves the same trace. */
    uint64_t d1 = 0, d2 = 0;
    if (sim_one(base, false, &d1) < 0 || sim_one(base, false, &d2) < 0 || d1 != d2) {
        if (d1 != d2)
            fprintf(stderr,
                    "sim: seed %" PRIu64 " does not replay exactly (%016" PRIx64 " then %016" PRIx64
                    ")\n",
                    base, d1, d2);
        fprintf(stderr, "sim: replay with: SIM_SEED=%" PRIu64 " %s\n", base, self);
        fflush(NULL);
        _exit(1);
    }
    for (uint64_t seed = base + 1; seed < base + n; seed++) {
        if (sim_one(seed, false, NULL) < 0) {
            fprintf(stderr, "sim: replay with: SIM_SEED=%" PRIu64 " %s\n", seed, self);
            fflush(NULL);
            _exit(1);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("sim: %" PRIu64 " seeds passed (%" PRIu64 "..%" PRIu64 ") in %.1f s: %.1f seeds/s\n", n,
           base, base + n - 1, secs, (double)n / secs);
    return 0;
}
