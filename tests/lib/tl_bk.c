/*
 * tl_bk.c - the test library's storage helpers (tl_bk.h): synchronous metadata calls,
 * BookKeeper client requests, fake and in-process bookies, managed-ledger calls.
 *
 * Each waiting helper finds the loop to run through the object it is given (a store's,
 * client's or factory's loop: their _int.h bodies), so the tests pass no loop around.
 * Failure modes: a synchronous error or a callback that does not come within tl_wait_ms
 * fails the calling test with Check.
 */
#include "lib/tl_bk.h"

#include "bkc/bkc_int.h"
#include "bookie/bookie.h"
#include "meta/meta_int.h"
#include "ml/ml_int.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/loop.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <string.h>

/* ---- the metadata store, synchronously ------------------------------------------------------ */

/* A metadata call's outcome: its callback must run exactly once. */
struct tl_mres {
    int calls;
    int status;
};

static void tl_meta_cb(struct meta_req *r, int status)
{
    struct tl_mres *res = r->data;
    res->calls++;
    res->status = status;
}

/* Wait for the callback of a call that returned rc; the status. */
static int tl_meta_wait(struct meta_store *m, int rc, struct tl_mres *res)
{
    ck_assert_msg(rc == 0, "meta call failed at once: %s", mg_errname(rc));
    ck_assert_msg(tl_until_count(m->loop, &res->calls, 1, tl_wait_ms(m->loop)) == 1,
                  "meta callback: %d calls", res->calls);
    return res->status;
}

int tl_meta_put(struct meta_store *m, const char *path, const void *v, size_t len, int flags)
{
    struct tl_mres res = {0};
    struct meta_req r = {.data = &res};
    int rc =
        meta_put(m, path, v, len, META_VERSION_ANY, flags | META_CREATE_PARENTS, &r, tl_meta_cb);
    int status = tl_meta_wait(m, rc, &res);
    meta_req_fini(&r);
    return status;
}

int tl_meta_del(struct meta_store *m, const char *path)
{
    struct tl_mres res = {0};
    struct meta_req r = {.data = &res};
    int status = tl_meta_wait(m, meta_delete(m, path, META_VERSION_ANY, &r, tl_meta_cb), &res);
    meta_req_fini(&r);
    return status;
}

/* A read (meta_get or meta_children) whose answer stays in *r. */
static int tl_meta_read(struct meta_store *m, const char *path, struct meta_req *r,
                        int (*call)(struct meta_store *, const char *, struct meta_req *, meta_cb))
{
    struct tl_mres res = {0};
    memset(r, 0, sizeof *r);
    r->data = &res;
    int status = tl_meta_wait(m, call(m, path, r, tl_meta_cb), &res);
    r->data = NULL;
    return status;
}

int tl_meta_get(struct meta_store *m, const char *path, struct meta_req *r)
{
    return tl_meta_read(m, path, r, meta_get);
}

int tl_meta_children(struct meta_store *m, const char *path, struct meta_req *r)
{
    return tl_meta_read(m, path, r, meta_children);
}

int tl_bookies_registered(struct meta_store *m)
{
    struct meta_req r;
    int status = tl_meta_children(m, "/ledgers/available", &r);
    int n = 0;
    for (int i = 0; status == 0 && i < r.n_children; i++)
        n += strcmp(r.children[i], "readonly") != 0;
    meta_req_fini(&r);
    return n;
}

void tl_wait_bookies(struct meta_store *m, int n)
{
    uint64_t end = mg_loop_mono_ms(m->loop) + tl_wait_ms(m->loop);
    int have;
    while ((have = tl_bookies_registered(m)) < n) {
        ck_assert_msg(mg_loop_mono_ms(m->loop) < end, "only %d of %d bookies registered", have, n);
        tl_run_for(m->loop, 5);
    }
}

void tl_md_read(struct meta_store *m, int64_t id, struct bkc_md *md)
{
    char *p = bkc_ledger_path("/ledgers", id);
    struct meta_req r;
    ck_assert_int_eq(tl_meta_get(m, p, &r), 0);
    ck_assert_int_eq(bkc_md_decode(r.value, r.len, md), 0);
    meta_req_fini(&r);
    mg_free(p);
}

/* ---- BookKeeper client requests ------------------------------------------------------------ */

void tl_res_cb(struct bkc_req *req, int status)
{
    struct tl_res *r = req->data;
    r->status = status;
    r->n_cb++;
    r->done = true;
}

void tl_res_wait(struct bkc_client *c, struct tl_res *r)
{
    tl_wait(c->loop, &r->done);
}

struct bkc_ledger *tl_bkc_create(struct bkc_client *c, int expect)
{
    struct tl_res r = {0};
    struct bkc_req req = {.data = &r};
    ck_assert_int_eq(bkc_create(c, NULL, &req, tl_res_cb), 0);
    ck_assert(!r.done); /* never inside the call */
    tl_res_wait(c, &r);
    ck_assert_msg(r.status == expect, "create: %d (%s)", r.status, req.errmsg);
    return req.ledger;
}

struct bkc_ledger *tl_bkc_open(struct bkc_client *c, int64_t id, bool recovery, int expect)
{
    struct tl_res r = {0};
    struct bkc_req req = {.data = &r};
    ck_assert_int_eq(bkc_open(c, id, recovery, &req, tl_res_cb), 0);
    tl_res_wait(c, &r);
    ck_assert_msg(r.status == expect, "open: %d %s (%s)", r.status, mg_errname(r.status),
                  req.errmsg);
    return req.ledger;
}

int tl_bkc_close(struct bkc_ledger *lh)
{
    struct tl_res r = {0};
    struct bkc_req req = {.data = &r};
    ck_assert_int_eq(bkc_close(lh, &req, tl_res_cb), 0);
    tl_res_wait(lh->c, &r);
    return r.status;
}

const char *tl_bkc_payload(int64_t ledger, int i)
{
    static char buf[64];
    snprintf(buf, sizeof buf, "entry-%lld-%d-payload", (long long)ledger, i);
    return buf;
}

void tl_bkc_check_read(struct bkc_ledger *lh, int64_t first, int64_t last)
{
    struct tl_res r = {0};
    struct bkc_req req = {.data = &r};
    ck_assert_int_eq(bkc_read(lh, first, last, &req, tl_res_cb), 0);
    tl_res_wait(lh->c, &r);
    ck_assert_msg(r.status == 0, "read: %d (%s)", r.status, req.errmsg);
    ck_assert_int_eq(req.n_entries, last - first + 1);
    for (int i = 0; i < req.n_entries; i++) {
        const char *t = tl_bkc_payload(bkc_ledger_id(lh), (int)(first + i));
        size_t n = evbuffer_get_length(req.entries[i]);
        ck_assert_uint_eq(n, strlen(t));
        ck_assert(memcmp(evbuffer_pullup(req.entries[i], -1), t, n) == 0);
    }
    bkc_req_fini(&req);
}

struct bkc_ledger *tl_bkc_written(struct bkc_client *c, struct tl_adds *b, int n)
{
    struct bkc_ledger *lh = tl_bkc_create(c, 0);
    tl_adds_all(b, lh, n);
    ck_assert_int_eq(tl_bkc_close(lh), 0);
    return lh;
}

void tl_bkc_check_ledger(struct bkc_client *c, int64_t id, bool recovery, int64_t lac)
{
    struct bkc_ledger *lh = tl_bkc_open(c, id, recovery, 0);
    ck_assert_int_eq(bkc_ledger_lac(lh), lac);
    if (lac >= 0)
        tl_bkc_check_read(lh, 0, lac);
    bkc_ledger_free(lh);
}

void tl_adds_cb(struct bkc_req *req, int status)
{
    struct tl_adds *b = req->data;
    int i = (int)(req - b->req);
    b->status[i] = status;
    b->order[b->n_done++] = i;
}

int tl_adds_one(struct tl_adds *b, struct bkc_ledger *lh)
{
    int i = b->n;
    ck_assert_int_lt(i, TL_MAX_ADDS);
    if (!b->loop)
        b->loop = lh->c->loop;
    b->payload[i] = evbuffer_new();
    const char *t = tl_bkc_payload(bkc_ledger_id(lh), i);
    evbuffer_add(b->payload[i], t, strlen(t));
    b->req[i].data = b;
    int rc = bkc_add(lh, i, b->payload[i], &b->req[i], tl_adds_cb);
    if (rc == 0)
        b->n++;
    else
        evbuffer_free(b->payload[i]);
    return rc;
}

void tl_adds_n(struct tl_adds *b, struct bkc_ledger *lh, int n)
{
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(tl_adds_one(b, lh), 0);
}

static bool tl_adds_done(const void *arg)
{
    const struct tl_adds *b = arg;
    return b->n_done >= b->n;
}

void tl_adds_wait(struct tl_adds *b)
{
    ck_assert_ptr_nonnull(b->loop);
    tl_until(b->loop, tl_adds_done, b, tl_wait_ms(b->loop));
    ck_assert_int_eq(b->n_done, b->n);
}

void tl_adds_all(struct tl_adds *b, struct bkc_ledger *lh, int n)
{
    tl_adds_n(b, lh, n);
    tl_adds_wait(b);
}

void tl_adds_fenced(struct tl_adds *b, struct bkc_ledger *lh)
{
    int i = b->n;
    ck_assert_int_eq(tl_adds_one(b, lh), 0);
    tl_adds_wait(b);
    ck_assert_msg(b->status[i] == -MG_EFENCED, "add %d: %s, not fenced", i,
                  mg_errname(b->status[i]));
}

void tl_adds_fini(struct tl_adds *b)
{
    for (int i = 0; i < b->n; i++)
        evbuffer_free(b->payload[i]);
}

void tl_bkc_config(struct bkc_config *c, int e, int w, int a, int timeout_ms)
{
    bkc_config_default(c);
    c->ensemble_size = e;
    c->write_quorum = w;
    c->ack_quorum = a;
    c->timeout_ms = timeout_ms;
}

/* ---- fake bookies on a simulated loop ------------------------------------------------------ */

void tl_fakebk_open(struct tl_fakebk *f, const char *meta_url, uint64_t seed, const char *net,
                    int n)
{
    memset(f, 0, sizeof *f);
    f->base = event_base_new();
    ck_assert_ptr_nonnull(f->base);
    f->loop = mg_loop_new_sim(f->base, 1000000, 1700000000000);
    struct meta_options mo = {.url = meta_url};
    if (strcmp(meta_url, "memory") != 0) {
        f->dir = tl_tmpdir("tl_fakebk");
        mo.data_dir = f->dir;
    }
    ck_assert_int_eq(meta_open(f->loop, &mo, &f->meta), 0);
    f->fake = bkc_fake_new(f->loop, seed);
    f->net = net;
    for (int i = 0; i < n; i++)
        tl_fakebk_start(f, i);
}

void tl_fakebk_close(struct tl_fakebk *f)
{
    meta_close(f->meta);
    tl_run_due(f->loop);
    bkc_fake_free(f->fake);
    mg_loop_free(f->loop);
    event_base_free(f->base);
    if (f->dir) {
        tl_rm_rf(f->dir);
        mg_free(f->dir);
    }
    memset(f, 0, sizeof *f);
}

void tl_fakebk_register(struct tl_fakebk *f, int i, bool on)
{
    char *p = mg_asprintf("/ledgers/available/%s", bkc_fake_bookie_id(f->fake, i));
    if (on)
        ck_assert_int_eq(tl_meta_put(f->meta, p, "", 0, META_EPHEMERAL), 0);
    else
        tl_meta_del(f->meta, p);
    mg_free(p);
}

int tl_fakebk_start(struct tl_fakebk *f, int i)
{
    if (i == f->n) {
        char id[64];
        snprintf(id, sizeof id, "%s.%d:3181", f->net, i + 1);
        ck_assert_int_eq(bkc_fake_add_bookie(f->fake, id), i);
        f->n++;
    } else {
        ck_assert_int_lt(i, f->n);
        bkc_fake_restart(f->fake, i);
    }
    tl_fakebk_register(f, i, true);
    return i;
}

void tl_fakebk_stop(struct tl_fakebk *f, int i)
{
    bkc_fake_crash(f->fake, i);
    tl_fakebk_register(f, i, false);
}

struct bkc_client *tl_fakebk_client(struct tl_fakebk *f, struct bkc_config *cfg, uint64_t seed)
{
    cfg->transport = bkc_fake_transport(f->fake);
    cfg->seed = seed;
    struct bkc_client *c = NULL;
    ck_assert_int_eq(bkc_client_new(f->loop, f->meta, cfg, &c), 0);
    return c;
}

/* ---- bookies in this process ---------------------------------------------------------------- */

struct bk_server *tl_bookie_start(struct event_base *b, const char *dir, int i,
                                  const struct bk_options *o)
{
    struct bk_options bo;
    if (o)
        bo = *o;
    else
        bk_options_default(&bo);
    char *j = mg_asprintf("%s/b%d/journal", dir, i), *l = mg_asprintf("%s/b%d/ledgers", dir, i);
    bo.bind_address = "127.0.0.1";
    bo.advertised_address = "127.0.0.1";
    bo.port = 0;
    bo.journal_dir = j;
    bo.ledger_dir = l;
    struct bk_server *s = NULL;
    ck_assert_int_eq(bk_server_new(b, &bo, &s), 0);
    mg_free(j);
    mg_free(l);
    return s;
}

void tl_bookie_stop(struct bk_server *s, struct event_base *b)
{
    if (!s)
        return;
    bk_server_shutdown(s);
    tl_base_run_for(b, 20); /* the unregistration: bk_server_free must not race it */
    bk_server_free(s);
}

const char *tl_bookie_id(const struct bk_server *s, char *buf, size_t len)
{
    snprintf(buf, len, "127.0.0.1:%d", bk_server_port(s));
    return buf;
}

/* ---- managed ledgers ------------------------------------------------------------------------ */

struct ml_ledger *tl_ml_open(struct ml_factory *f, const char *name, int *status)
{
    struct tl_open r = {0};
    ck_assert_int_eq(ml_open(f, name, tl_open_cb, &r), 0);
    ck_assert(!r.done); /* never inside the call */
    tl_wait(f->loop, &r.done);
    if (status) {
        *status = r.status;
        return r.ml;
    }
    ck_assert_msg(r.status == 0, "open %s: %s", name, mg_strerror(r.status));
    ck_assert_ptr_nonnull(r.ml);
    return r.ml;
}

int tl_append_order;

void tl_append_cb(struct ml_append_req *req, int status)
{
    struct tl_append *a = req->data;
    a->done = true;
    a->status = status;
    a->order = tl_append_order++;
    if (status == 0) {
        a->pos = req->pos;
        ck_assert_ptr_nonnull(req->entry);
        a->entry_size = req->entry->size;
    }
}

void tl_read_cb(struct ml_read_req *req, int status)
{
    struct tl_read *r = req->data;
    r->done = true;
    r->status = status;
}

void tl_read_release(struct tl_read *r)
{
    for (int i = 0; i < r->req.n; i++)
        ml_entry_unref(r->req.entries[i]);
    mg_free(r->req.entries);
    r->req.entries = NULL;
    r->req.n = 0;
    r->done = false;
}
