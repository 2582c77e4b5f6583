/*
 * bkc_client.c - the BookKeeper client object: configuration, bookie connection table,
 * deferred completions, metadata requests, digests and the create / open / delete calls.
 *
 * Every user callback goes through one FIFO (done_ev): bkc code completes a request by
 * queueing it, so callbacks never run inside a bkc call or deep inside connection code, and
 * their order is the order of completion (entry order for adds).
 * Metadata requests (struct bkc_mop) are heap objects tracked by the client: the meta
 * store may complete them after their owner (a ledger handle, the client) is gone, in which
 * case the completion only frees them.
 * A periodic tick (a timer on the client's loop) fails bookie requests past their deadline
 * (bkc_config.timeout_ms). Requests reach the bookies through the transport the config names
 * (bkc_int.h struct bkc_transport_ops): TCP connections by default, the in-memory fake in tests.
 */
#include "bkc/bkc_int.h"
#include "tls/tls.h"
#include "util/alloc.h"
#include "util/bytes.h"
#include "util/crc.h"
#include "util/err.h"
#include "util/log.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MOD "bkc"

void bkc_config_default(struct bkc_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->ensemble_size = 2;
    cfg->write_quorum = 2;
    cfg->ack_quorum = 2;
    cfg->digest = BKC_DIGEST_CRC32C;
    cfg->password = "";
    cfg->timeout_ms = 30000;
    cfg->use_v3 = false;
    cfg->max_frame_size = 5 * 1024 * 1024 + BKC_FRAME_PADDING;
    cfg->ledgers_root = "/ledgers";
}

const struct bkc_transport_ops bkc_tcp_transport_ops = {
    .name = "tcp",
    .bookie_get = bkc_bookie_get,
    .bookie_free = bkc_bookie_free,
    .add = bkc_bookie_add,
    .read = bkc_bookie_read,
    .cancel = bkc_op_cancel,
    .check_timeouts = bkc_bookie_check_timeouts,
};

void bkc_op_cancel_tp(struct bkc_client *c, struct bkc_op *op)
{
    if (op)
        c->tp.ops->cancel(op);
}

uint64_t bkc_rand(struct bkc_client *c)
{
    /* xorshift64*: bookie choice only needs to spread load. */
    c->rng ^= c->rng >> 12;
    c->rng ^= c->rng << 25;
    c->rng ^= c->rng >> 27;
    return c->rng * 2685821657736338717ULL;
}

/* ---- completions ------------------------------------------------------------------------ */

void bkc_complete(struct bkc_client *c, struct bkc_req *req, int status)
{
    req->status_ = status;
    req->next_ = NULL;
    if (c->done_tail)
        c->done_tail->next_ = req;
    else
        c->done_head = req;
    c->done_tail = req;
    event_active(c->done_ev, 0, 0);
}

static void bkc_client_release(struct bkc_client *c);

/* Run queued callbacks (also those queued by bkc_client_free from one of them). Returns
 * false if the client was freed by one of them. */
static bool bkc_run_done(struct bkc_client *c)
{
    struct bkc_req *req;
    c->draining = true;
    bkc_zombies_free(c);
    while ((req = c->done_head)) {
        c->done_head = req->next_;
        if (!c->done_head)
            c->done_tail = NULL;
        req->next_ = NULL;
        req->cb(req, req->status_);
    }
    c->draining = false;
    if (c->free_on_return) {
        bkc_client_release(c);
        return false;
    }
    return true;
}

static void bkc_done_ev_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    bkc_run_done(arg);
}

static int bkc_tick_ms(const struct bkc_client *c)
{
    int tick = c->cfg.timeout_ms / 10;
    return tick < 10 ? 10 : tick > 1000 ? 1000 : tick;
}

static void bkc_tick_cb(struct mg_timer *t, void *arg)
{
    struct bkc_client *c = arg;
    mg_timer_start(t, (uint64_t)bkc_tick_ms(c));
    uint64_t now = mg_loop_mono_ms(c->loop);
    struct bkc_bookie *bk;
    TAILQ_FOREACH(bk, &c->bookie_list, link)
    c->tp.ops->check_timeouts(bk, now);
}

/* ---- metadata requests -------------------------------------------------------------------- */

/* The list a live mop is on: its owner's, or the client's. */
static struct bkc_mop_list *bkc_mop_list_of(struct bkc_client *c, struct bkc_ledger *owner)
{
    return owner ? &owner->mops : &c->mops;
}

struct bkc_mop *bkc_mop_new(struct bkc_client *c, struct bkc_ledger *owner, bkc_mop_fn fn)
{
    struct bkc_mop *mop = mg_calloc(1, sizeof(*mop));
    mop->c = c;
    mop->owner = owner;
    mop->fn = fn;
    mop->mr.data = mop;
    TAILQ_INSERT_TAIL(bkc_mop_list_of(c, owner), mop, link);
    return mop;
}

void bkc_mop_cb(struct meta_req *mr, int status)
{
    struct bkc_mop *mop = mr->data;
    if (!mop->dead) {
        TAILQ_REMOVE(bkc_mop_list_of(mop->c, mop->owner), mop, link);
        mop->fn(mop, status);
    }
    meta_req_fini(&mop->mr);
    mg_free(mop);
}

void bkc_mops_kill(struct bkc_client *c, struct bkc_ledger *owner)
{
    struct bkc_mop_list *l = bkc_mop_list_of(c, owner);
    struct bkc_mop *mop;
    while ((mop = TAILQ_FIRST(l))) {
        c->mop_kill_steps++;
        TAILQ_REMOVE(l, mop, link);
        mop->dead = true;
    }
}

int bkc_mop_started(struct bkc_mop *mop, int rc)
{
    if (rc >= 0)
        return rc;
    TAILQ_REMOVE(bkc_mop_list_of(mop->c, mop->owner), mop, link);
    meta_req_fini(&mop->mr);
    mg_free(mop);
    return rc;
}

/* ---- digests ------------------------------------------------------------------------------ */

static void bkc_sha1_2(const void *a, size_t al, const void *b, size_t bl, uint8_t out[20])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int n = 20;
    MG_ASSERT(ctx);
    EVP_DigestInit_ex(ctx, EVP_sha1(), NULL);
    EVP_DigestUpdate(ctx, a, al);
    if (bl)
        EVP_DigestUpdate(ctx, b, bl);
    EVP_DigestFinal_ex(ctx, out, &n);
    EVP_MD_CTX_free(ctx);
}

void bkc_master_key(const uint8_t *pw, size_t pw_len, uint8_t out[WIRE_BK_MASTER_KEY_LEN])
{
    bkc_sha1_2("ledger", 6, pw, pw_len, out);
}

static void bkc_mac_key(const uint8_t *pw, size_t pw_len, uint8_t out[20])
{
    bkc_sha1_2("mac", 3, pw, pw_len, out);
}

int bkc_digest_len(int digest)
{
    switch (digest) {
    case BKC_DIGEST_CRC32:
        return 8;
    case BKC_DIGEST_HMAC:
        return 20;
    case BKC_DIGEST_CRC32C:
        return 4;
    case BKC_DIGEST_DUMMY:
        return 0;
    default:
        return -1;
    }
}

static void bkc_crc32_chunk(void *ctx, const void *p, size_t n)
{
    uint32_t *crc = ctx;
    *crc = mg_crc32(*crc, p, n);
}

static void bkc_hmac_chunk(void *ctx, const void *p, size_t n)
{
    EVP_DigestSignUpdate(ctx, p, n);
}

void bkc_digest(int digest, const uint8_t *mkey, const uint8_t *hdr, struct evbuffer *payload,
                size_t off, size_t len, uint32_t tail_crc, size_t tail_len, uint8_t *out)
{
    uint32_t crc;
    switch (digest) {
    case BKC_DIGEST_CRC32C:
        if (tail_len > len)
            tail_len = 0;
        crc = mg_crc32c(0, hdr, WIRE_BK_ENTRY_HDR_LEN);
        crc = mg_crc32c_evbuffer(crc, payload, off, len - tail_len);
        if (tail_len > 0) /* the bytes the Pulsar checksum covered: not read again */
            crc = mg_crc32c_combine(crc, tail_crc, tail_len);
        mg_put_be32(out, crc);
        break;
    case BKC_DIGEST_CRC32:
        crc = mg_crc32(0, hdr, WIRE_BK_ENTRY_HDR_LEN);
        mg_evbuffer_chunks(payload, off, len, bkc_crc32_chunk, &crc);
        mg_put_be64(out, crc); /* a Java long */
        break;
    case BKC_DIGEST_HMAC: {
        EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_HMAC, NULL, mkey, 20);
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        size_t n = 20;
        MG_ASSERT(k && ctx);
        EVP_DigestSignInit(ctx, NULL, EVP_sha1(), NULL, k);
        EVP_DigestSignUpdate(ctx, hdr, WIRE_BK_ENTRY_HDR_LEN);
        mg_evbuffer_chunks(payload, off, len, bkc_hmac_chunk, ctx);
        EVP_DigestSignFinal(ctx, out, &n);
        EVP_MD_CTX_free(ctx);
        EVP_PKEY_free(k);
        break;
    }
    default:
        break;
    }
}

/* ---- client ------------------------------------------------------------------------------ */

int bkc_client_new(struct mg_loop *loop, struct meta_store *meta, const struct bkc_config *in,
                   struct bkc_client **out)
{
    struct bkc_config cfg;
    bkc_config_default(&cfg);
    if (in) {
        if (in->ensemble_size)
            cfg.ensemble_size = in->ensemble_size;
        if (in->write_quorum)
            cfg.write_quorum = in->write_quorum;
        if (in->ack_quorum)
            cfg.ack_quorum = in->ack_quorum;
        if (in->digest)
            cfg.digest = in->digest;
        if (in->password)
            cfg.password = in->password;
        if (in->timeout_ms > 0)
            cfg.timeout_ms = in->timeout_ms;
        cfg.use_v3 = in->use_v3;
        if (in->max_frame_size)
            cfg.max_frame_size = in->max_frame_size;
        if (in->ledgers_root)
            cfg.ledgers_root = in->ledgers_root;
        cfg.transport = in->transport;
        cfg.seed = in->seed;
        cfg.tls = in->tls;
    }
    if (cfg.ensemble_size > BKC_MAX_ENSEMBLE || cfg.write_quorum > cfg.ensemble_size ||
        cfg.ack_quorum > cfg.write_quorum || cfg.ack_quorum < 1 || bkc_digest_len(cfg.digest) < 0) {
        MG_ERROR(MOD, "bad client config: E=%d Qw=%d Qa=%d digest=%d", cfg.ensemble_size,
                 cfg.write_quorum, cfg.ack_quorum, cfg.digest);
        return -MG_EINVAL;
    }
    struct tls_link *tls = cfg.tls.on ? bkc_tls_new(&cfg.tls) : NULL;
    if (cfg.tls.on && !tls)
        return -MG_EINVAL;
    cfg.tls = (struct bkc_tls_config){.on = cfg.tls.on}; /* the link keeps its own copies */
    struct bkc_client *c = mg_calloc(1, sizeof(*c));
    c->tls = tls;
    c->loop = loop;
    c->base = mg_loop_base(loop);
    c->meta = meta;
    if (cfg.transport)
        c->tp = *cfg.transport;
    else
        c->tp.ops = &bkc_tcp_transport_ops;
    cfg.transport = NULL; /* copied into c->tp */
    c->password = mg_strdup(cfg.password);
    c->root = mg_strdup(cfg.ledgers_root);
    cfg.password = c->password;
    cfg.ledgers_root = c->root;
    c->cfg = cfg;
    mg_map_init(&c->bookies);
    TAILQ_INIT(&c->bookie_list);
    TAILQ_INIT(&c->ledgers);
    TAILQ_INIT(&c->zombies);
    TAILQ_INIT(&c->mops);
    c->done_ev = event_new(c->base, -1, 0, bkc_done_ev_cb, c);
    mg_timer_init(&c->tick, loop, bkc_tick_cb, c);
    mg_timer_start(&c->tick, (uint64_t)bkc_tick_ms(c));
    if (cfg.seed) {
        c->rng = cfg.seed;
    } else {
        uint64_t us = mg_mono_us();
        c->rng = ((uint64_t)mg_wall_ms() << 20) ^ us ^ ((uint64_t)getpid() << 40) ^
                 (uint64_t)(uintptr_t)c;
    }
    if (!c->rng)
        c->rng = 88172645463325252ULL;
    *out = c;
    return 0;
}

static void bkc_client_release(struct bkc_client *c)
{
    event_free(c->done_ev);
    mg_free(c->password);
    mg_free(c->root);
    tls_link_free(c->tls);
    mg_free(c);
}

void bkc_client_free(struct bkc_client *c)
{
    if (!c)
        return;
    struct bkc_ledger *lh;
    while ((lh = TAILQ_FIRST(&c->ledgers)))
        bkc_ledger_destroy(lh, -MG_ECANCELED, false);
    bkc_zombies_free(c);
    struct bkc_mop *mop;
    while ((mop = TAILQ_FIRST(&c->mops))) {
        TAILQ_REMOVE(&c->mops, mop, link);
        mop->dead = true;
        if (mop->ureq)
            bkc_complete(c, mop->ureq, -MG_ECANCELED);
    }
    struct bkc_bookie *bk;
    while ((bk = TAILQ_FIRST(&c->bookie_list))) {
        TAILQ_REMOVE(&c->bookie_list, bk, link);
        c->tp.ops->bookie_free(bk);
    }
    mg_map_fini(&c->bookies);
    mg_timer_fini(&c->tick);
    if (c->draining) {
        /* Called from a callback: the drain loop finishes the queue and frees. */
        c->free_on_return = true;
        return;
    }
    if (bkc_run_done(c))
        bkc_client_release(c);
}

void bkc_req_fini(struct bkc_req *req)
{
    if (!req)
        return;
    for (int i = 0; i < req->n_entries; i++)
        if (req->entries[i])
            evbuffer_free(req->entries[i]);
    mg_free(req->entries);
    req->entries = NULL;
    req->n_entries = 0;
}

/* ---- create / open / delete --------------------------------------------------------------- */

static int bkc_check_quorums(int e, int w, int a)
{
    return (e >= 1 && e <= BKC_MAX_ENSEMBLE && w >= 1 && w <= e && a >= 1 && a <= w) ? 0
                                                                                     : -MG_EINVAL;
}

int bkc_create(struct bkc_client *c, const struct bkc_create_opts *o, struct bkc_req *req,
               bkc_cb cb)
{
    int e = o && o->ensemble_size ? o->ensemble_size : c->cfg.ensemble_size;
    int w = o && o->write_quorum ? o->write_quorum : c->cfg.write_quorum;
    int a = o && o->ack_quorum ? o->ack_quorum : c->cfg.ack_quorum;
    if (bkc_check_quorums(e, w, a) < 0)
        return -MG_EINVAL;
    req->cb = cb;
    req->ledger = NULL;
    req->errmsg[0] = '\0';
    struct bkc_ledger *lh = bkc_ledger_alloc(c, -1, BKC_MODE_CREATING);
    lh->open_req = req;
    lh->md.ensemble_size = e;
    lh->md.write_quorum = w;
    lh->md.ack_quorum = a;
    lh->md.state = BKC_STATE_OPEN;
    lh->md.last_entry = -1;
    lh->md.digest = c->cfg.digest;
    lh->md.has_password = true;
    lh->md.password_len = strlen(c->password);
    lh->md.password = mg_malloc(lh->md.password_len + 1);
    memcpy(lh->md.password, c->password, lh->md.password_len + 1);
    lh->md.has_ctime = true;
    lh->md.ctime = mg_loop_wall_ms(c->loop);
    if (o && o->n_custom > 0) {
        lh->md.custom = mg_calloc((size_t)o->n_custom, sizeof(*lh->md.custom));
        for (int i = 0; i < o->n_custom; i++) {
            struct bkc_md_kv *kv = &lh->md.custom[i];
            kv->key = mg_strdup(o->custom[i].key);
            kv->len = o->custom[i].value_len;
            kv->value = mg_malloc(kv->len ? kv->len : 1);
            if (kv->len)
                memcpy(kv->value, o->custom[i].value, kv->len);
        }
        lh->md.n_custom = o->n_custom;
    }
    bkc_ledger_create_start(lh);
    return 0;
}

int bkc_open(struct bkc_client *c, int64_t ledger_id, bool recovery, struct bkc_req *req, bkc_cb cb)
{
    if (ledger_id < 0)
        return -MG_EINVAL;
    req->cb = cb;
    req->ledger = NULL;
    req->errmsg[0] = '\0';
    struct bkc_ledger *lh = bkc_ledger_alloc(c, ledger_id, BKC_MODE_OPENING);
    lh->open_req = req;
    lh->recovery = recovery;
    bkc_ledger_open_start(lh);
    return 0;
}

static void bkc_delete_done(struct bkc_mop *mop, int status)
{
    if (status < 0)
        snprintf(mop->ureq->errmsg, sizeof(mop->ureq->errmsg), "delete ledger metadata: %s",
                 mg_strerror(status));
    bkc_complete(mop->c, mop->ureq, status);
}

int bkc_delete(struct bkc_client *c, int64_t ledger_id, struct bkc_req *req, bkc_cb cb)
{
    if (ledger_id < 0)
        return -MG_EINVAL;
    req->cb = cb;
    req->errmsg[0] = '\0';
    struct bkc_mop *mop = bkc_mop_new(c, NULL, bkc_delete_done);
    mop->ureq = req;
    char *path = bkc_ledger_path(c->root, ledger_id);
    int rc =
        bkc_mop_started(mop, meta_delete(c->meta, path, META_VERSION_ANY, &mop->mr, bkc_mop_cb));
    mg_free(path);
    return rc < 0 ? rc : 0;
}

void bkc_ledger_keys(struct bkc_ledger *lh)
{
    const uint8_t *pw = (const uint8_t *)lh->c->password;
    size_t pl = strlen(lh->c->password);
    if (lh->md.has_password) {
        pw = lh->md.password;
        pl = lh->md.password_len;
    }
    bkc_master_key(pw, pl, lh->master_key);
    bkc_mac_key(pw, pl, lh->mac_key);
    lh->digest = lh->md.digest ? lh->md.digest : (int)lh->c->cfg.digest;
    lh->digest_len = bkc_digest_len(lh->digest);
}

int bkc_client_bookie_stats_next(struct bkc_client *c, size_t *pos, struct bkc_bookie_stats *out)
{
    void *v;
    if (!mg_map_next(&c->bookies, pos, NULL, NULL, &v))
        return 0;
    const struct bkc_bookie *bk = v;
    memset(out, 0, sizeof *out);
    out->id = bk->id;
    out->connected = bk->state == BKC_BK_CONNECTED;
    out->outstanding = bk->n_ops;
    out->add_count = bk->add_count;
    out->add_errors = bk->add_errors;
    out->add_latency_sum_us = bk->add_lat_sum_us;
    memcpy(out->add_latency_buckets, bk->add_lat, sizeof out->add_latency_buckets);
    return 1;
}
