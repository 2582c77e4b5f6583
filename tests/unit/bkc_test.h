/*
 * bkc_test.h - helpers shared by the bkc suites (check_bkc.c over the fake bookies on a
 * simulated loop, check_bkc_real.c over TCP): synchronous metadata calls, bkc requests and
 * batches of adds. Static functions for one test program each: the includer defines
 *   static struct meta_store *meta;      the metadata store of the test
 *   static void wait_for(const bool *);  runs its loop until the flag (bounded in time)
 * before including it. Failure modes: each helper asserts with Check.
 */
#ifndef MG_BKC_TEST_H
#define MG_BKC_TEST_H

#include "bkc/bkc.h"
#include "bkc/bkc_int.h"
#include "meta/meta.h"
#include "util/alloc.h"
#include "util/err.h"

#include <check.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <string.h>

#define BKC_TEST_UNUSED __attribute__((unused))

/* ---- meta helpers ---------------------------------------------------------------------- */

struct mres {
    bool done;
    int status;
};

static void meta_done(struct meta_req *r, int status)
{
    struct mres *m = r->data;
    m->status = status;
    m->done = true;
}

BKC_TEST_UNUSED static int meta_put_sync(const char *path, const void *v, size_t len, int flags)
{
    struct mres m = {0};
    struct meta_req r = {.data = &m};
    int rc =
        meta_put(meta, path, v, len, META_VERSION_ANY, flags | META_CREATE_PARENTS, &r, meta_done);
    ck_assert_int_eq(rc, 0);
    wait_for(&m.done);
    meta_req_fini(&r);
    return m.status;
}

BKC_TEST_UNUSED static int meta_del_sync(const char *path)
{
    struct mres m = {0};
    struct meta_req r = {.data = &m};
    ck_assert_int_eq(meta_delete(meta, path, META_VERSION_ANY, &r, meta_done), 0);
    wait_for(&m.done);
    meta_req_fini(&r);
    return m.status;
}

/* Read and decode a ledger's metadata. */
BKC_TEST_UNUSED static void md_read(int64_t id, struct bkc_md *md)
{
    struct mres m = {0};
    struct meta_req r = {.data = &m};
    char *p = bkc_ledger_path("/ledgers", id);
    ck_assert_int_eq(meta_get(meta, p, &r, meta_done), 0);
    wait_for(&m.done);
    ck_assert_int_eq(m.status, 0);
    ck_assert_int_eq(bkc_md_decode(r.value, r.len, md), 0);
    meta_req_fini(&r);
    mg_free(p);
}

/* ---- request helpers ------------------------------------------------------------------- */

struct res {
    bool done;
    int status;
    int n_cb;
};

static void res_cb(struct bkc_req *req, int status)
{
    struct res *r = req->data;
    r->status = status;
    r->n_cb++;
    r->done = true;
}

BKC_TEST_UNUSED static struct bkc_ledger *create_sync(struct bkc_client *c, int expect)
{
    struct res r = {0};
    struct bkc_req req = {.data = &r};
    ck_assert_int_eq(bkc_create(c, NULL, &req, res_cb), 0);
    ck_assert(!r.done); /* never inside the call */
    wait_for(&r.done);
    ck_assert_msg(r.status == expect, "create: %d (%s)", r.status, req.errmsg);
    return req.ledger;
}

BKC_TEST_UNUSED static struct bkc_ledger *open_sync(struct bkc_client *c, int64_t id, bool recovery,
                                                    int expect)
{
    struct res r = {0};
    struct bkc_req req = {.data = &r};
    ck_assert_int_eq(bkc_open(c, id, recovery, &req, res_cb), 0);
    wait_for(&r.done);
    ck_assert_msg(r.status == expect, "open: %d %s (%s)", r.status, mg_errname(r.status),
                  req.errmsg);
    return req.ledger;
}

BKC_TEST_UNUSED static int close_sync(struct bkc_ledger *lh)
{
    struct res r = {0};
    struct bkc_req req = {.data = &r};
    ck_assert_int_eq(bkc_close(lh, &req, res_cb), 0);
    wait_for(&r.done);
    return r.status;
}

/* Adds: a batch of requests recording their completion order (the includer waits for them
 * with its own addb_wait). */
#define MAXADD 64
struct addb {
    struct bkc_req req[MAXADD];
    struct evbuffer *payload[MAXADD];
    int status[MAXADD];
    int order[MAXADD];
    int n, n_done;
};

static void add_cb(struct bkc_req *req, int status)
{
    struct addb *b = req->data;
    int i = (int)(req - b->req);
    b->status[i] = status;
    b->order[b->n_done++] = i;
}

static char *payload_text(int64_t ledger, int i)
{
    static char buf[64];
    snprintf(buf, sizeof(buf), "entry-%lld-%d-payload", (long long)ledger, i);
    return buf;
}

/* Add the batch's next entry (entry id = its index in the batch: one batch per ledger). */
BKC_TEST_UNUSED static int add_one(struct addb *b, struct bkc_ledger *lh)
{
    int i = b->n;
    ck_assert_int_lt(i, MAXADD);
    b->payload[i] = evbuffer_new();
    const char *t = payload_text(bkc_ledger_id(lh), i);
    evbuffer_add(b->payload[i], t, strlen(t));
    b->req[i].data = b;
    int rc = bkc_add(lh, i, b->payload[i], &b->req[i], add_cb);
    if (rc == 0)
        b->n++;
    else
        evbuffer_free(b->payload[i]);
    return rc;
}

BKC_TEST_UNUSED static void addb_fini(struct addb *b)
{
    for (int i = 0; i < b->n; i++)
        evbuffer_free(b->payload[i]);
}

/* Read first..last and compare with payload_text. */
BKC_TEST_UNUSED static void check_read(struct bkc_ledger *lh, int64_t first, int64_t last)
{
    struct res r = {0};
    struct bkc_req req = {.data = &r};
    ck_assert_int_eq(bkc_read(lh, first, last, &req, res_cb), 0);
    wait_for(&r.done);
    ck_assert_msg(r.status == 0, "read: %d (%s)", r.status, req.errmsg);
    ck_assert_int_eq(req.n_entries, last - first + 1);
    for (int i = 0; i < req.n_entries; i++) {
        const char *t = payload_text(bkc_ledger_id(lh), (int)(first + i));
        size_t n = evbuffer_get_length(req.entries[i]);
        ck_assert_uint_eq(n, strlen(t));
        ck_assert(memcmp(evbuffer_pullup(req.entries[i], -1), t, n) == 0);
    }
    bkc_req_fini(&req);
}

#endif
