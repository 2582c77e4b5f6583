/*
 * autorec.c - one autorecovery instance: auditor candidate and replication worker
 * (BookKeeper's AutoRecoveryMain: Auditor + ReplicationWorker).
 *
 * Election: an EPHEMERAL|SEQUENTIAL vote <root>/underreplication/auditorelection/V_<seq>
 * holding our id; the lowest vote is the auditor. A children watch on the election node
 * re-reads the votes on every change; a vote that vanished (session expiry) is cast again.
 *
 * Auditor: watches the children of <root>/available. A registered bookie that is missing is
 * remembered with the time it was first seen missing; an audit lists the registered bookies
 * (available and available/readonly), walks every ledger's metadata (one ledger per callback)
 * and marks each ledger that has, in any segment, a bookie missing for at least
 * lostBookieRecoveryDelay: <root>/underreplication/ledgers/.../urL<id> naming the missing
 * bookies (an existing mark is kept). Bookies missing for less get a later audit at their
 * deadline. Audits also run every auditorPeriodicCheckInterval and
 * auditorPeriodicBookieCheckInterval (both compare every ensemble with the registration, so a
 * bookie lost while no auditor ran is found too), and once when elected.
 *
 * Worker: every poll_ms (and right after an audit of this instance marked something), unless
 * replication is disabled (<root>/underreplication/disable exists, BookKeeper's switch), it walks
 * the marks and takes the first ledger it can lock (<root>/underreplication/locks/urL<id>,
 * ephemeral; a lock that exists belongs to another worker). For the locked ledger: list the
 * registered bookies, open the ledger without recovery, and for each (segment, index) whose
 * bookie is not registered: the open last segment of a ledger that is not closed is left to
 * its writer (its ensemble change replaces the bookie); any other is copied to a bookie the
 * placement picks (bkc_pick_bookies: registered, writable, not in the segment's ensemble),
 * entry by entry with recovery adds (bkc_replicate), and the new bookie is CAS-written into
 * the segment (bkc_ledger_set_bookie). Then the mark is deleted (nothing left) or kept and
 * the ledger left alone for openLedgerRereplicationGracePeriod (only the open fragment left)
 * or lockReleaseOfFailedLedgerGracePeriod (a copy failed), and the lock is deleted.
 *
 * Failure modes: metadata errors end the step and are retried at the next poll or audit; a
 * deleted ledger's mark is dropped; a metadata conflict on the ensemble write re-reads and
 * redoes it (bkc), or, if the segment changed, starts the ledger over (up to 3 times).
 */
#include "autorec/ar_int.h"
#include "bookie/bookie.h"
#include "config/cfg.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"
#include "util/ratelimit.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MOD "autorec"
#define AR_ELECT_RETRY_MS 1000
#define AR_LEDGER_TRIES 3
#define AR_MAX_ENSEMBLE 64 /* bkc's limit */

/* A metadata store failure that the next poll, audit or vote retries (every second while the
 * store is away): one line per MG_RATELIMIT_INTERVAL_MS. */
static void ar_warn_retry(struct ar *a, const char *what, int status)
{
    uint64_t held;
    if (mg_ratelimit_allow(&a->rl_retry, MG_RATELIMIT_INTERVAL_MS, &held))
        MG_WARN(MOD, "%s: %s; retrying (%" PRIu64 " more such failure(s) since the last line)",
                what, mg_strerror(status), held);
}

/* ---- sets of ids ---------------------------------------------------------------------------- */

bool ar_ids_has(const struct ar_ids *s, const char *id)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->v[i], id) == 0)
            return true;
    return false;
}

void ar_ids_add(struct ar_ids *s, const char *id)
{
    if (ar_ids_has(s, id))
        return;
    s->v = mg_realloc(s->v, (size_t)(s->n + 1) * sizeof(char *));
    s->v[s->n++] = mg_strdup(id);
}

void ar_ids_fini(struct ar_ids *s)
{
    mg_free_strv(s->v, s->n);
    s->v = NULL;
    s->n = 0;
}

/* ---- the registered bookies ------------------------------------------------------------------ */

static void ar_blist_cb_meta(struct meta_req *mr, int status);

static int ar_blist_step(struct ar_blist *b)
{
    memset(&b->mr, 0, sizeof(b->mr));
    b->mr.data = b;
    char *p = mg_asprintf("%s/available%s", b->a->root, b->step ? "/readonly" : "");
    int rc = meta_children(b->a->meta, p, &b->mr, ar_blist_cb_meta);
    mg_free(p);
    return rc;
}

static void ar_blist_cb_meta(struct meta_req *mr, int status)
{
    struct ar_blist *b = mr->data;
    if (status < 0 && status != -MG_ENOTFOUND) {
        meta_req_fini(mr);
        b->busy = false;
        b->cb(b, status);
        return;
    }
    for (int i = 0; status == 0 && i < mr->n_children; i++)
        if (strcmp(mr->children[i], "readonly") != 0)
            ar_ids_add(&b->reg, mr->children[i]);
    if (b->step == 0 && status == 0) {
        b->avail = mr->children; /* take the listing */
        b->n_avail = mr->n_children;
        mr->children = NULL;
        mr->n_children = 0;
    }
    meta_req_fini(mr);
    if (b->step++ == 0) {
        int rc = ar_blist_step(b);
        if (rc == 0)
            return;
        status = rc;
    }
    b->busy = false;
    b->cb(b, status < 0 && status != -MG_ENOTFOUND ? status : 0);
}

int ar_blist_start(struct ar_blist *b, struct ar *a, ar_blist_cb cb)
{
    ar_blist_fini(b);
    b->a = a;
    b->cb = cb;
    b->step = 0;
    int rc = ar_blist_step(b);
    b->busy = rc == 0;
    return rc;
}

void ar_blist_fini(struct ar_blist *b)
{
    ar_ids_fini(&b->reg);
    mg_free_strv(b->avail, b->n_avail);
    b->avail = NULL;
    b->n_avail = 0;
}

/* ---- auditor: absent bookies ------------------------------------------------------------------
 */

static struct ar_absent *ar_absent_find(struct ar *a, const char *id)
{
    for (int i = 0; i < a->n_absent; i++)
        if (strcmp(a->absent[i].id, id) == 0)
            return &a->absent[i];
    return NULL;
}

/* Is bookie id (in some ensemble, not registered) lost: missing for at least the delay?
 * A bookie seen missing for the first time starts its clock now. */
static bool ar_is_lost(struct ar *a, const char *id, uint64_t now)
{
    struct ar_absent *ab = ar_absent_find(a, id);
    if (!ab) {
        a->absent = mg_realloc(a->absent, (size_t)(a->n_absent + 1) * sizeof(*a->absent));
        ab = &a->absent[a->n_absent++];
        ab->id = mg_strdup(id);
        ab->since_ms = now;
    }
    uint64_t due = ab->since_ms + (uint64_t)a->delay_ms;
    if (due <= now)
        return true;
    if (a->a_next_ms == 0 || due < a->a_next_ms)
        a->a_next_ms = due;
    return false;
}

/* Forget the absent bookies that are registered again. */
static void ar_absent_prune(struct ar *a, const struct ar_ids *reg)
{
    for (int i = 0; i < a->n_absent;) {
        if (ar_ids_has(reg, a->absent[i].id)) {
            MG_INFO(MOD, "bookie %s is registered again", a->absent[i].id);
            mg_free(a->absent[i].id);
            a->absent[i] = a->absent[--a->n_absent];
        } else {
            i++;
        }
    }
}

/* ---- auditor: audits ---------------------------------------------------------------------------
 */

static void ar_audit_start(struct ar *a);
static void ar_audit_delay(struct ar *a);
static void ar_audit_ledger(struct ar *a);
static void ar_worker_kick(struct ar *a);

static void ar_audit_end(struct ar *a, int status)
{
    a->audit_busy = false;
    if (status < 0) {
        ar_warn_retry(a, "audit", status);
        mg_timer_start(&a->audit_t, AR_ELECT_RETRY_MS);
        return;
    }
    a->st.audits++;
    a->st.under_replicated = a->a_marked;
    MG_INFO(MOD, "audit done: %d ledger(s), %" PRId64 " under-replicated", a->a_walk.n_ids,
            a->a_marked);
    if (a->a_marked > 0)
        ar_worker_kick(a);
    if (a->audit_again) {
        a->audit_again = false;
        mg_timer_activate(&a->audit_t);
    } else if (a->a_next_ms) {
        uint64_t now = mg_loop_mono_ms(a->loop);
        mg_timer_start(&a->audit_t, a->a_next_ms > now ? a->a_next_ms - now : 0);
    }
}

static void ar_audit_mark_done(struct meta_req *mr, int status)
{
    struct ar *a = mr->data;
    meta_req_fini(mr);
    if (a->stopping)
        return;
    if (status == 0)
        a->st.ledgers_marked++;
    if (status < 0 && status != -MG_EEXIST) {
        ar_audit_end(a, status);
        return;
    }
    a->a_pos++;
    ar_audit_ledger(a);
}

/* One ledger's metadata: mark it if a bookie of one of its segments is lost. */
static void ar_audit_open_done(struct bkc_req *req, int status)
{
    struct ar *a = req->data;
    struct bkc_ledger *lh = req->ledger;
    if (a->stopping) {
        if (status == 0)
            bkc_ledger_free(lh);
        return;
    }
    if (status < 0) {
        bkc_req_fini(req);
        if (status == -MG_ENOTFOUND) { /* deleted meanwhile */
            a->a_pos++;
            ar_audit_ledger(a);
            return;
        }
        ar_audit_end(a, status);
        return;
    }
    uint64_t now = mg_loop_mono_ms(a->loop);
    a->st.ledgers_checked++;
    struct ar_ids lost = {0};
    for (int s = 0; s < bkc_ledger_num_segments(lh); s++)
        for (int i = 0; i < bkc_ledger_ensemble_size(lh); i++) {
            const char *b = bkc_ledger_segment_bookie(lh, s, i);
            if (!ar_ids_has(&a->a_bl.reg, b) && ar_is_lost(a, b, now))
                ar_ids_add(&lost, b);
        }
    int64_t id = bkc_ledger_id(lh);
    bkc_ledger_free(lh);
    bkc_req_fini(req);
    if (lost.n == 0) {
        a->a_pos++;
        ar_audit_ledger(a);
        return;
    }
    a->a_marked++;
    char *path = ar_ur_path(a->root, id);
    char *data = ar_ur_data(lost.v, lost.n, mg_loop_wall_ms(a->loop));
    MG_INFO(MOD, "ledger %" PRId64 " is under-replicated (lost: %s%s)", id, lost.v[0],
            lost.n > 1 ? ", ..." : "");
    memset(&a->a_mr, 0, sizeof(a->a_mr));
    a->a_mr.data = a;
    int rc = meta_put(a->meta, path, data, strlen(data), META_VERSION_NONE, META_CREATE_PARENTS,
                      &a->a_mr, ar_audit_mark_done);
    mg_free(path);
    mg_free(data);
    ar_ids_fini(&lost);
    if (rc < 0)
        ar_audit_end(a, rc);
}

static void ar_audit_ledger(struct ar *a)
{
    if (a->stopping)
        return;
    if (a->a_pos >= a->a_walk.n_ids) {
        ar_audit_end(a, 0);
        return;
    }
    memset(&a->a_req, 0, sizeof(a->a_req));
    a->a_req.data = a;
    int rc = bkc_open(a->bkc, a->a_walk.ids[a->a_pos], false, &a->a_req, ar_audit_open_done);
    if (rc < 0)
        ar_audit_end(a, rc);
}

static void ar_audit_walk_done(struct ar_walk *w, int status)
{
    struct ar *a = w->data;
    if (a->stopping)
        return;
    if (status < 0) {
        ar_audit_end(a, status);
        return;
    }
    a->a_pos = 0;
    ar_audit_ledger(a);
}

static void ar_audit_bookies_done(struct ar_blist *b, int status)
{
    struct ar *a = b->a;
    if (a->stopping)
        return;
    if (status < 0) {
        ar_audit_end(a, status);
        return;
    }
    ar_absent_prune(a, &b->reg);
    int rc = ar_walk_start(&a->a_walk, a->meta, a->root, AR_WALK_LEDGERS, ar_audit_walk_done, a);
    if (rc < 0)
        ar_audit_end(a, rc);
}

/* The delay in force: BookKeeper's <root>/underreplication/lostBookieRecoveryDelay (seconds,
 * decimal text), created from lostBookieRecoveryDelay when missing; once it exists its value
 * wins over the configuration (an operator changes it with `magnetar shell
 * lostbookierecoverydelay -set`, and a watch makes the auditor audit again). */
static void ar_audit_delay_done(struct meta_req *mr, int status)
{
    struct ar *a = mr->data;
    bool was_get = a->delay_read;
    long v = a->conf.lost_bookie_delay_ms / 1000;
    if (!a->stopping && was_get && status == 0) {
        char *end = NULL;
        long z = mr->value ? strtol(mr->value, &end, 10) : -1;
        if (z >= 0 && z <= INT32_MAX / 1000 && end != mr->value && (!*end || *end == '\n'))
            v = z;
        else
            MG_WARN(MOD,
                    "%s/underreplication/lostBookieRecoveryDelay holds '%.32s', not seconds: "
                    "using lostBookieRecoveryDelay %ld s",
                    a->root, mr->value ? mr->value : "", v);
    }
    meta_req_fini(mr);
    if (a->stopping)
        return;
    if (was_get && status == -MG_ENOTFOUND) { /* the first auditor of the cluster: store ours */
        char *p = mg_asprintf("%s/underreplication/lostBookieRecoveryDelay", a->root);
        char val[24];
        snprintf(val, sizeof(val), "%ld", v);
        memset(&a->a_mr, 0, sizeof(a->a_mr));
        a->a_mr.data = a;
        a->delay_read = false;
        int rc = meta_put(a->meta, p, val, strlen(val), META_VERSION_NONE, META_CREATE_PARENTS,
                          &a->a_mr, ar_audit_delay_done);
        mg_free(p);
        if (rc < 0)
            ar_audit_end(a, rc);
        return;
    }
    if (!was_get && status == -MG_EEXIST) { /* another auditor stored one meanwhile */
        ar_audit_delay(a);
        return;
    }
    if (status < 0) {
        ar_audit_end(a, status);
        return;
    }
    if ((int)v * 1000 != a->delay_ms)
        MG_INFO(MOD,
                "lostBookieRecoveryDelay in force: %ld s (%s/underreplication/"
                "lostBookieRecoveryDelay)",
                v, a->root);
    a->delay_ms = (int)v * 1000;
    int rc = ar_blist_start(&a->a_bl, a, ar_audit_bookies_done);
    if (rc < 0)
        ar_audit_end(a, rc);
}

static void ar_audit_delay(struct ar *a)
{
    char *p = mg_asprintf("%s/underreplication/lostBookieRecoveryDelay", a->root);
    memset(&a->a_mr, 0, sizeof(a->a_mr));
    a->a_mr.data = a;
    a->delay_read = true;
    int rc = meta_get(a->meta, p, &a->a_mr, ar_audit_delay_done);
    mg_free(p);
    if (rc < 0)
        ar_audit_end(a, rc);
}

static void ar_audit_start(struct ar *a)
{
    if (!a->st.is_auditor || a->stopping)
        return;
    if (a->audit_busy) {
        a->audit_again = true;
        return;
    }
    a->audit_busy = true;
    a->a_marked = 0;
    a->a_next_ms = 0;
    ar_audit_delay(a);
}

static void ar_audit_timer(struct mg_timer *t, void *arg)
{
    (void)t;
    ar_audit_start(arg);
}

static void ar_periodic_timer(struct mg_timer *t, void *arg)
{
    struct ar *a = arg;
    int ms = t == &a->periodic_t ? a->conf.check_interval_ms : a->conf.bookie_check_interval_ms;
    MG_INFO(MOD, "periodic %s check", t == &a->periodic_t ? "ledger" : "bookie");
    if (ms > 0)
        mg_timer_start(t, (uint64_t)ms);
    ar_audit_start(a);
}

/* The auditor watches the registration (available's children) and the delay znode: either
 * changing re-arms its watch and starts an audit. */
static void ar_auditor_watch(struct meta_store *m, const char *path, enum meta_watch_event ev,
                             void *data);

static void ar_auditor_arm(struct ar *a, bool delay)
{
    char *p = mg_asprintf(delay ? "%s/underreplication/lostBookieRecoveryDelay" : "%s/available",
                          a->root);
    *(delay ? &a->delay_w : &a->avail_w) = meta_watch(a->meta, p, !delay, ar_auditor_watch, a);
    mg_free(p);
}

static void ar_auditor_watch(struct meta_store *m, const char *path, enum meta_watch_event ev,
                             void *data)
{
    (void)m;
    (void)ev;
    struct ar *a = data;
    bool delay = strstr(path, "/lostBookieRecoveryDelay") != NULL;
    *(delay ? &a->delay_w : &a->avail_w) = NULL;
    if (!a->st.is_auditor || a->stopping)
        return;
    ar_auditor_arm(a, delay);
    MG_INFO(MOD, "%s changed: auditing",
            delay ? "the lost bookie delay" : "the registered bookies");
    ar_audit_start(a);
}

static void ar_become_auditor(struct ar *a)
{
    MG_INFO(MOD, "%s is the auditor", a->id);
    a->st.is_auditor = true;
    ar_auditor_arm(a, false);
    ar_auditor_arm(a, true);
    if (a->conf.check_interval_ms > 0)
        mg_timer_start(&a->periodic_t, (uint64_t)a->conf.check_interval_ms);
    if (a->conf.bookie_check_interval_ms > 0)
        mg_timer_start(&a->bookie_chk_t, (uint64_t)a->conf.bookie_check_interval_ms);
    ar_audit_start(a);
}

static void ar_stop_auditor(struct ar *a)
{
    if (!a->st.is_auditor)
        return;
    MG_INFO(MOD, "%s is no longer the auditor", a->id);
    a->st.is_auditor = false;
    meta_unwatch(a->meta, a->avail_w);
    meta_unwatch(a->meta, a->delay_w);
    a->avail_w = a->delay_w = NULL;
    mg_timer_stop(&a->audit_t);
    mg_timer_stop(&a->periodic_t);
    mg_timer_stop(&a->bookie_chk_t);
}

/* ---- election ----------------------------------------------------------------------------------
 */

static void ar_elect_check(struct ar *a);

static void ar_elect_watch(struct meta_store *m, const char *path, enum meta_watch_event ev,
                           void *data)
{
    (void)m;
    (void)path;
    (void)ev;
    struct ar *a = data;
    a->elect_w = NULL;
    if (!a->stopping)
        ar_elect_check(a);
}

static void ar_elect_fail(struct ar *a, const char *what, int status)
{
    ar_warn_retry(a, what, status);
    a->elect_busy = false;
    mg_timer_start(&a->elect_retry, AR_ELECT_RETRY_MS);
}

static void ar_elect_listed(struct meta_req *mr, int status);

static void ar_elect_voted(struct meta_req *mr, int status)
{
    struct ar *a = mr->data;
    if (a->stopping) {
        meta_req_fini(mr);
        return;
    }
    if (status < 0) {
        meta_req_fini(mr);
        ar_elect_fail(a, "auditor election: vote", status);
        return;
    }
    const char *slash = strrchr(mr->path, '/');
    mg_free(a->vote);
    a->vote = mg_strdup(slash ? slash + 1 : mr->path);
    meta_req_fini(mr);
    a->elect_busy = false;
    ar_elect_check(a);
}

static void ar_elect_listed(struct meta_req *mr, int status)
{
    struct ar *a = mr->data;
    if (a->stopping) {
        meta_req_fini(mr);
        return;
    }
    if (status < 0 && status != -MG_ENOTFOUND) {
        meta_req_fini(mr);
        ar_elect_fail(a, "auditor election: listing the votes", status);
        return;
    }
    bool mine = false;
    const char *lowest = NULL;
    for (int i = 0; i < mr->n_children; i++) {
        const char *v = mr->children[i];
        if (strncmp(v, "V_", 2) != 0)
            continue;
        if (!lowest || strcmp(v, lowest) < 0) /* same-length counters sort as numbers */
            lowest = v;
        if (a->vote && strcmp(v, a->vote) == 0)
            mine = true;
    }
    bool leader = mine && strcmp(lowest, a->vote) == 0;
    meta_req_fini(mr);
    a->elect_busy = false;
    if (!mine) {
        ar_stop_auditor(a);
        mg_free(a->vote);
        a->vote = NULL; /* cast (again: the session that held it expired) */
        ar_elect_check(a);
        return;
    }
    if (a->elect_again) {
        a->elect_again = false;
        ar_elect_check(a);
        return;
    }
    if (leader && !a->st.is_auditor)
        ar_become_auditor(a);
    else if (!leader)
        ar_stop_auditor(a);
}

static void ar_elect_check(struct ar *a)
{
    if (a->stopping)
        return;
    if (a->elect_busy) {
        a->elect_again = true;
        return;
    }
    a->elect_busy = true;
    memset(&a->elect_mr, 0, sizeof(a->elect_mr));
    a->elect_mr.data = a;
    char *dir = mg_asprintf("%s/underreplication/auditorelection", a->root);
    int rc;
    if (!a->vote) {
        a->st.election_attempts++;
        char *p = mg_asprintf("%s/V_", dir);
        rc = meta_put(a->meta, p, a->id, strlen(a->id), META_VERSION_NONE,
                      META_EPHEMERAL | META_SEQUENTIAL | META_CREATE_PARENTS, &a->elect_mr,
                      ar_elect_voted);
        mg_free(p);
    } else {
        if (!a->elect_w)
            a->elect_w = meta_watch(a->meta, dir, true, ar_elect_watch, a);
        rc = meta_children(a->meta, dir, &a->elect_mr, ar_elect_listed);
    }
    mg_free(dir);
    if (rc < 0)
        ar_elect_fail(a, "auditor election", rc);
}

static void ar_elect_timer(struct mg_timer *t, void *arg)
{
    (void)t;
    ar_elect_check(arg);
}

/* ---- worker ------------------------------------------------------------------------------------
 */

static void ar_worker_poll(struct ar *a);
static void ar_worker_try_lock(struct ar *a);
static void ar_worker_scan(struct ar *a);

static void ar_worker_kick(struct ar *a)
{
    if (a->conf.worker && a->ws == AR_W_IDLE)
        mg_timer_activate(&a->poll_t);
}

static bool ar_deferred(struct ar *a, int64_t id, uint64_t now)
{
    for (int i = 0; i < a->n_defer; i++)
        if (a->defer[i].id == id) {
            if (a->defer[i].until_ms > now)
                return true;
            a->defer[i] = a->defer[--a->n_defer];
            return false;
        }
    return false;
}

static void ar_defer(struct ar *a, int64_t id, uint64_t ms)
{
    uint64_t now = mg_loop_mono_ms(a->loop);
    for (int i = 0; i < a->n_defer;) /* drop the expired ones (their marks may be gone) */
        if (a->defer[i].until_ms <= now || a->defer[i].id == id)
            a->defer[i] = a->defer[--a->n_defer];
        else
            i++;
    a->defer = mg_realloc(a->defer, (size_t)(a->n_defer + 1) * sizeof(*a->defer));
    a->defer[a->n_defer].id = id;
    a->defer[a->n_defer++].until_ms = now + ms;
}

static void ar_worker_idle(struct ar *a)
{
    a->ws = AR_W_IDLE;
    if (!a->stopping)
        mg_timer_start(&a->poll_t, (uint64_t)a->conf.poll_ms);
}

static void ar_worker_unlocked(struct meta_req *mr, int status)
{
    struct ar *a = mr->data;
    meta_req_fini(mr);
    if (a->stopping)
        return;
    if (status < 0 && status != -MG_ENOTFOUND)
        MG_WARN(MOD, "ledger %" PRId64 ": releasing the lock: %s", a->w_ledger,
                mg_strerror(status));
    a->w_pos++;
    ar_worker_try_lock(a);
}

static void ar_worker_unlock(struct ar *a)
{
    a->ws = AR_W_UNLOCKING;
    char *p = ar_lock_path(a->root, a->w_ledger);
    memset(&a->w_mr, 0, sizeof(a->w_mr));
    a->w_mr.data = a;
    int rc = meta_delete(a->meta, p, META_VERSION_ANY, &a->w_mr, ar_worker_unlocked);
    mg_free(p);
    if (rc < 0)
        ar_worker_idle(a);
}

static void ar_worker_cleared(struct meta_req *mr, int status)
{
    struct ar *a = mr->data;
    meta_req_fini(mr);
    if (a->stopping)
        return;
    if (status < 0 && status != -MG_ENOTFOUND)
        MG_WARN(MOD, "ledger %" PRId64 ": deleting the mark: %s", a->w_ledger, mg_strerror(status));
    else
        a->st.ledgers_replicated++;
    ar_worker_unlock(a);
}

/* The locked ledger is finished with: clear its mark (nothing left) or leave it for later. */
static void ar_worker_ledger_end(struct ar *a, int status, const char *why)
{
    bkc_ledger_free(a->w_lh);
    a->w_lh = NULL;
    bkc_req_fini(&a->w_req);
    if (status < 0) {
        a->st.fragments_failed++;
        uint64_t held; /* (a cluster short of bookies fails every ledger in turn) */
        if (mg_ratelimit_allow(&a->rl_fail, MG_RATELIMIT_INTERVAL_MS, &held))
            MG_WARN(MOD,
                    "ledger %" PRId64 ": re-replication failed: %s; retrying in %d ms (%" PRIu64
                    " more ledger(s) failed since the last line)",
                    a->w_ledger, why, a->conf.failed_grace_ms, held);
        ar_defer(a, a->w_ledger, (uint64_t)a->conf.failed_grace_ms);
        ar_worker_unlock(a);
        return;
    }
    if (a->w_open_left) {
        MG_INFO(MOD,
                "ledger %" PRId64 ": only its open last fragment has a lost bookie (the "
                "writer's); looking again in %d ms",
                a->w_ledger, a->conf.open_grace_ms);
        ar_defer(a, a->w_ledger, (uint64_t)a->conf.open_grace_ms);
        ar_worker_unlock(a);
        return;
    }
    MG_INFO(MOD, "ledger %" PRId64 " is fully replicated", a->w_ledger);
    a->ws = AR_W_CLEARING;
    char *p = ar_ur_path(a->root, a->w_ledger);
    memset(&a->w_mr, 0, sizeof(a->w_mr));
    a->w_mr.data = a;
    int rc = meta_delete(a->meta, p, META_VERSION_ANY, &a->w_mr, ar_worker_cleared);
    mg_free(p);
    if (rc < 0)
        ar_worker_unlock(a);
}

static void ar_worker_open(struct ar *a);

static void ar_worker_set_done(struct bkc_req *req, int status)
{
    struct ar *a = req->data;
    if (a->stopping)
        return;
    if (status == -MG_EBUSY && ++a->w_tries < AR_LEDGER_TRIES) {
        /* the segment changed under us: look at the ledger again */
        bkc_ledger_free(a->w_lh);
        a->w_lh = NULL;
        bkc_req_fini(req);
        ar_worker_open(a);
        return;
    }
    if (status < 0) {
        ar_worker_ledger_end(a, status, req->errmsg[0] ? req->errmsg : mg_strerror(status));
        return;
    }
    a->w_idx++;
    ar_worker_scan(a);
}

static void ar_worker_copied(struct bkc_req *req, int status)
{
    struct ar *a = req->data;
    if (a->stopping)
        return;
    a->st.entries_copied += req->entry_id;
    if (status == 0)
        MG_INFO(MOD, "ledger %" PRId64 " segment %d: %" PRId64 " entries copied to %s", a->w_ledger,
                a->w_seg, req->entry_id, a->w_target);
    if (status < 0) {
        ar_worker_ledger_end(a, status, req->errmsg[0] ? req->errmsg : mg_strerror(status));
        return;
    }
    int rc =
        bkc_ledger_set_bookie(a->w_lh, a->w_seg, a->w_idx, a->w_target, req, ar_worker_set_done);
    if (rc < 0)
        ar_worker_ledger_end(a, rc, "metadata update refused");
}

/* Find the next (segment, index) with a lost bookie from (w_seg, w_idx) on and copy it. */
static void ar_worker_scan(struct ar *a)
{
    struct bkc_ledger *lh = a->w_lh;
    int E = bkc_ledger_ensemble_size(lh);
    for (; a->w_seg < bkc_ledger_num_segments(lh); a->w_seg++, a->w_idx = 0) {
        for (; a->w_idx < E; a->w_idx++) {
            const char *b = bkc_ledger_segment_bookie(lh, a->w_seg, a->w_idx);
            if (ar_ids_has(&a->w_bl.reg, b))
                continue;
            if (bkc_ledger_segment_last(lh, a->w_seg) < -1) {
                a->w_open_left = true; /* the writer's */
                continue;
            }
            char *ens[AR_MAX_ENSEMBLE];
            for (int i = 0; i < E && i < AR_MAX_ENSEMBLE; i++)
                ens[i] = (char *)bkc_ledger_segment_bookie(lh, a->w_seg, i);
            const char *pick = NULL;
            bkc_pick_bookies(a->bkc, a->w_bl.avail, a->w_bl.n_avail, ens, E, 1, &pick);
            if (!pick) {
                char why[160];
                snprintf(why, sizeof(why),
                         "no writable bookie outside the ensemble of segment %d to copy %s's "
                         "fragment to",
                         a->w_seg, b);
                ar_worker_ledger_end(a, -MG_ENOBOOKIES, why);
                return;
            }
            mg_free(a->w_target);
            a->w_target = mg_strdup(pick);
            bkc_req_fini(&a->w_req);
            memset(&a->w_req, 0, sizeof(a->w_req));
            a->w_req.data = a;
            int rc = bkc_replicate(lh, a->w_seg, a->w_idx, a->w_target, a->conf.batch, &a->w_req,
                                   ar_worker_copied);
            if (rc < 0)
                ar_worker_ledger_end(a, rc, "copy refused");
            return;
        }
    }
    ar_worker_ledger_end(a, 0, NULL);
}

static void ar_worker_opened(struct bkc_req *req, int status)
{
    struct ar *a = req->data;
    if (a->stopping) {
        if (status == 0)
            bkc_ledger_free(req->ledger);
        return;
    }
    if (status == -MG_ENOTFOUND) {
        MG_INFO(MOD, "ledger %" PRId64 " was deleted: dropping its mark", a->w_ledger);
        ar_worker_ledger_end(a, 0, NULL);
        return;
    }
    if (status < 0) {
        ar_worker_ledger_end(a, status, req->errmsg[0] ? req->errmsg : mg_strerror(status));
        return;
    }
    a->w_lh = req->ledger;
    a->w_seg = a->w_idx = 0;
    a->w_open_left = false;
    ar_worker_scan(a);
}

static void ar_worker_open(struct ar *a)
{
    memset(&a->w_req, 0, sizeof(a->w_req));
    a->w_req.data = a;
    int rc = bkc_open(a->bkc, a->w_ledger, false, &a->w_req, ar_worker_opened);
    if (rc < 0)
        ar_worker_ledger_end(a, rc, "open refused");
}

static void ar_worker_bookies_done(struct ar_blist *b, int status)
{
    struct ar *a = b->a;
    if (a->stopping)
        return;
    if (status < 0) {
        ar_worker_ledger_end(a, status, "listing the bookies");
        return;
    }
    ar_worker_open(a);
}

static void ar_worker_locked(struct meta_req *mr, int status)
{
    struct ar *a = mr->data;
    meta_req_fini(mr);
    if (a->stopping)
        return;
    if (status == -MG_EEXIST) { /* another worker has it */
        a->w_pos++;
        ar_worker_try_lock(a);
        return;
    }
    if (status < 0) {
        ar_warn_retry(a, "taking a ledger's lock", status);
        ar_worker_idle(a);
        return;
    }
    MG_INFO(MOD, "ledger %" PRId64 ": re-replicating", a->w_ledger);
    a->ws = AR_W_WORKING;
    a->w_tries = 0;
    int rc = ar_blist_start(&a->w_bl, a, ar_worker_bookies_done);
    if (rc < 0)
        ar_worker_ledger_end(a, rc, "listing the bookies");
}

/* Lock the next marked ledger that is not deferred. */
static void ar_worker_try_lock(struct ar *a)
{
    if (a->stopping)
        return;
    uint64_t now = mg_loop_mono_ms(a->loop);
    while (a->w_pos < a->w_walk.n_ids && ar_deferred(a, a->w_walk.ids[a->w_pos], now))
        a->w_pos++;
    if (a->w_pos >= a->w_walk.n_ids) {
        ar_worker_idle(a);
        return;
    }
    a->ws = AR_W_LOCKING;
    a->w_ledger = a->w_walk.ids[a->w_pos];
    char *p = ar_lock_path(a->root, a->w_ledger);
    memset(&a->w_mr, 0, sizeof(a->w_mr));
    a->w_mr.data = a;
    int rc = meta_put(a->meta, p, a->id, strlen(a->id), META_VERSION_NONE,
                      META_EPHEMERAL | META_CREATE_PARENTS, &a->w_mr, ar_worker_locked);
    mg_free(p);
    if (rc < 0)
        ar_worker_idle(a);
}

static void ar_worker_listed(struct ar_walk *w, int status)
{
    struct ar *a = w->data;
    if (a->stopping)
        return;
    if (status < 0) {
        ar_warn_retry(a, "listing the under-replicated ledgers", status);
        ar_worker_idle(a);
        return;
    }
    if (!a->st.is_auditor)
        a->st.under_replicated = w->n_ids; /* the auditor counts at its audits */
    a->w_pos = 0;
    ar_worker_try_lock(a);
}

/* Replication is not paused (no <root>/underreplication/disable): walk the marks. */
static void ar_worker_enabled(struct meta_req *mr, int status)
{
    struct ar *a = mr->data;
    meta_req_fini(mr);
    if (a->stopping)
        return;
    bool paused = status == 0;
    if (paused != a->w_paused)
        MG_INFO(MOD, "ledger replication %s (%s/underreplication/disable %s)",
                paused ? "disabled: the worker waits" : "enabled", a->root,
                paused ? "exists" : "is gone");
    a->w_paused = paused;
    if (paused || (status < 0 && status != -MG_ENOTFOUND)) {
        if (!paused)
            ar_warn_retry(a, "checking whether replication is disabled", status);
        ar_worker_idle(a);
        return;
    }
    char *top = mg_asprintf("%s/underreplication/ledgers", a->root);
    int rc = ar_walk_start(&a->w_walk, a->meta, top, AR_WALK_MARKS, ar_worker_listed, a);
    mg_free(top);
    if (rc < 0)
        ar_worker_idle(a);
}

static void ar_worker_poll(struct ar *a)
{
    if (a->stopping || a->ws != AR_W_IDLE)
        return;
    a->ws = AR_W_LISTING;
    char *p = mg_asprintf("%s/underreplication/disable", a->root);
    memset(&a->w_mr, 0, sizeof(a->w_mr));
    a->w_mr.data = a;
    int rc = meta_exists(a->meta, p, &a->w_mr, ar_worker_enabled);
    mg_free(p);
    if (rc < 0)
        ar_worker_idle(a);
}

static void ar_poll_timer(struct mg_timer *t, void *arg)
{
    (void)t;
    ar_worker_poll(arg);
}

/* ---- the instance
 * -------------------------------------------------------------------------------- */

void ar_conf_from_cfg(struct ar_conf *o, const struct cfg *cfg, const char *id)
{
    memset(o, 0, sizeof(*o));
    o->id = id;
    o->lost_bookie_delay_ms = cfg->lost_bookie_recovery_delay_s * 1000;
    o->check_interval_ms = cfg->auditor_periodic_check_interval_s * 1000;
    o->bookie_check_interval_ms = cfg->auditor_periodic_bookie_check_interval_s * 1000;
    o->batch = cfg->rereplication_entry_batch_size;
    o->open_grace_ms = cfg->open_ledger_rereplication_grace_period_ms;
    o->failed_grace_ms = cfg->lock_release_of_failed_ledger_grace_period_ms;
    o->poll_ms = 1000;
    o->timeout_ms = cfg->bookkeeper_client_timeout_seconds * 1000;
    o->auditor = o->worker = true;
}

int ar_new(struct mg_loop *loop, struct meta_store *meta, const struct ar_conf *o, struct ar **out)
{
    if (!o->id || !o->id[0])
        return -MG_EINVAL;
    struct ar *a = mg_calloc(1, sizeof(*a));
    a->loop = loop;
    a->meta = meta;
    a->conf = *o;
    a->id = mg_strdup(o->id);
    a->root = mg_strdup(o->ledgers_root ? o->ledgers_root : "/ledgers");
    a->conf.id = a->id;
    a->delay_ms = o->lost_bookie_delay_ms;
    a->conf.ledgers_root = a->root;
    if (a->conf.batch < 1)
        a->conf.batch = 1;
    if (a->conf.poll_ms < 1)
        a->conf.poll_ms = 1000;
    struct bkc_config bc;
    bkc_config_default(&bc);
    if (o->timeout_ms > 0)
        bc.timeout_ms = o->timeout_ms;
    bc.ledgers_root = a->root;
    bc.transport = o->transport;
    int rc = bkc_client_new(loop, meta, &bc, &a->bkc);
    if (rc < 0) {
        mg_free(a->id);
        mg_free(a->root);
        mg_free(a);
        return rc;
    }
    mg_timer_init(&a->elect_retry, loop, ar_elect_timer, a);
    mg_timer_init(&a->audit_t, loop, ar_audit_timer, a);
    mg_timer_init(&a->periodic_t, loop, ar_periodic_timer, a);
    mg_timer_init(&a->bookie_chk_t, loop, ar_periodic_timer, a);
    mg_timer_init(&a->poll_t, loop, ar_poll_timer, a);
    MG_INFO(MOD, "autorecovery %s started (auditor candidate: %s, worker: %s)", a->id,
            o->auditor ? "yes" : "no", o->worker ? "yes" : "no");
    if (o->auditor)
        ar_elect_check(a);
    if (o->worker)
        mg_timer_activate(&a->poll_t);
    *out = a;
    return 0;
}

int ar_start_role(struct mg_loop *loop, struct meta_store *meta, const struct cfg *cfg,
                  const char *bookie_id, struct ar **out)
{
    *out = NULL;
    if (bookie_id && (!cfg->auto_recovery_daemon_enabled || !meta))
        return 0;
    if (!meta) {
        MG_ERROR(MOD, "autorecovery needs the bookies' shared metadata store: set "
                      "metadataStoreUrl=zk:host:2181[/root]");
        return -MG_EINVAL;
    }
    /* the instance's name in votes and locks: the bookie's id, or host:pid of a lone one */
    char *id = bookie_id ? mg_strdup(bookie_id)
                         : mg_asprintf("%s:%d", cfg->advertised_address, (int)getpid());
    struct ar_conf o;
    ar_conf_from_cfg(&o, cfg, id);
    int rc = ar_new(loop, meta, &o, out);
    mg_free(id);
    if (rc == 0 && !bookie_id && cfg->prometheus_stats_http_port > 0) /* a bookie serves its own */
        (*out)->http =
            bk_metrics_http_start(mg_loop_base(loop), cfg->bind_address,
                                  cfg->prometheus_stats_http_port, ar_metrics_fill, *out);
    return rc;
}

void ar_stop(struct ar *a)
{
    if (!a || a->stopping)
        return;
    a->stopping = true;
    bk_metrics_http_stop(a->http);
    a->http = NULL;
    meta_unwatch(a->meta, a->elect_w);
    meta_unwatch(a->meta, a->avail_w);
    meta_unwatch(a->meta, a->delay_w);
    a->elect_w = a->avail_w = a->delay_w = NULL;
    mg_timer_stop(&a->elect_retry);
    mg_timer_stop(&a->audit_t);
    mg_timer_stop(&a->periodic_t);
    mg_timer_stop(&a->bookie_chk_t);
    mg_timer_stop(&a->poll_t);
    bkc_ledger_free(a->w_lh);
    a->w_lh = NULL;
    bkc_client_free(a->bkc); /* the callbacks still owed run here, and see stopping */
    a->bkc = NULL;
}

void ar_free(struct ar *a)
{
    if (!a)
        return;
    ar_stop(a);
    mg_timer_fini(&a->elect_retry);
    mg_timer_fini(&a->audit_t);
    mg_timer_fini(&a->periodic_t);
    mg_timer_fini(&a->bookie_chk_t);
    mg_timer_fini(&a->poll_t);
    bkc_req_fini(&a->w_req);
    bkc_req_fini(&a->a_req);
    ar_walk_fini(&a->a_walk);
    ar_walk_fini(&a->w_walk);
    ar_blist_fini(&a->a_bl);
    ar_blist_fini(&a->w_bl);
    for (int i = 0; i < a->n_absent; i++)
        mg_free(a->absent[i].id);
    mg_free(a->absent);
    mg_free(a->defer);
    mg_free(a->vote);
    mg_free(a->w_target);
    mg_free(a->id);
    mg_free(a->root);
    mg_free(a);
}

void ar_get_stats(const struct ar *a, struct ar_stats *out)
{
    *out = a->st;
}
