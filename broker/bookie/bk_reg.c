/*
 * bk_reg.c - the bookie's registration in the metadata store (loop thread).
 *
 * Happy path: a writable bookie owns the EPHEMERAL node /ledgers/available/<bookieId>
 * (parents created persistent with META_CREATE_PARENTS); in read-only mode it owns
 * /ledgers/available/readonly/<bookieId> instead; on shutdown it deletes its node. One
 * operation is in flight at a time; bk_reg_update compares the node we hold with the one the
 * server's mode calls for and issues the next step (create the wanted node first, then
 * delete the old one, so that the bookie is never invisible while it changes mode).
 *
 * Failure modes: a create that finds the node already there (a previous session of this
 * bookie that has not expired yet) deletes it and creates it again. Other errors are logged
 * and retried every 2 s. After META_SESSION_EXPIRED the ephemeral node is gone and is
 * created again. When the metadata module is not linked into the binary (it is reached
 * through weak references, so the bookie links and its tests run without it), or no store
 * is given, registration is skipped.
 */
#include "bookie/bookie_int.h"
#include "meta/meta.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"
#include "util/loop.h"

#include <event2/event.h>
#include <string.h>

/* Weak: resolved only if the meta module is linked (see the header comment). */
#pragma weak meta_put
#pragma weak meta_delete
#pragma weak meta_req_fini
#pragma weak meta_open

#define BK_REG_RETRY_MS 2000

enum bk_reg_kind { REG_CREATE = 0, REG_DELETE };

struct bk_reg_op {
    struct meta_req req; /* first: the callback gets it back */
    struct bk_server *srv;
    enum bk_reg_kind kind;
    enum bk_reg_mode mode;
    bool then_create; /* delete of a stale node before creating it */
};

static void bk_reg_issue(struct bk_server *s, enum bk_reg_kind kind, enum bk_reg_mode mode,
                         bool then_create);

bool bk_reg_meta_linked(void)
{
    return meta_put != NULL && meta_delete != NULL && meta_req_fini != NULL;
}

static enum bk_reg_mode bk_reg_wanted(const struct bk_server *s)
{
    if (s->reg.stopped)
        return BK_REG_NONE;
    return s->readonly ? BK_REG_READONLY : BK_REG_WRITABLE;
}

static void bk_reg_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    bk_reg_update(arg);
}

static void bk_reg_done(struct meta_req *req, int status)
{
    struct bk_reg_op *op = (struct bk_reg_op *)req;
    struct bk_server *s = op->srv;
    enum bk_reg_kind kind = op->kind;
    enum bk_reg_mode mode = op->mode;
    bool then_create = op->then_create;
    meta_req_fini(req);
    mg_free(op);
    if (!s)
        return; /* the server was freed while this was in flight */
    s->reg.inflight = NULL;
    if (status == -MG_ECANCELED)
        return; /* the store is closing */
    struct bk_reg *r = &s->reg;
    r->busy = false;
    const char *path = r->path[mode];
    if (kind == REG_CREATE) {
        if (status == -MG_EEXIST) {
            MG_INFO(BK_MODULE, "registration %s exists (earlier session): replacing it", path);
            bk_reg_issue(s, REG_DELETE, mode, true);
            return;
        }
        if (status < 0) {
            MG_WARN(BK_MODULE, "cannot register %s: %s; retrying", path, mg_strerror(status));
            struct timeval tv = {BK_REG_RETRY_MS / 1000, 0};
            event_add(r->retry_ev, &tv);
            return;
        }
        MG_INFO(BK_MODULE, "registered %s", path);
        enum bk_reg_mode old = r->current;
        r->current = mode;
        if (old != BK_REG_NONE && old != mode) {
            bk_reg_issue(s, REG_DELETE, old, false);
            return;
        }
    } else {
        if (status < 0 && status != -MG_ENOTFOUND)
            MG_WARN(BK_MODULE, "cannot remove %s: %s", path, mg_strerror(status));
        else if (!then_create)
            MG_INFO(BK_MODULE, "unregistered %s", path);
        if (then_create) {
            bk_reg_issue(s, REG_CREATE, mode, false);
            return;
        }
    }
    bk_reg_update(s);
}

static void bk_reg_issue(struct bk_server *s, enum bk_reg_kind kind, enum bk_reg_mode mode,
                         bool then_create)
{
    struct bk_reg *r = &s->reg;
    struct bk_reg_op *op = mg_calloc(1, sizeof *op);
    op->srv = s;
    op->kind = kind;
    op->mode = mode;
    op->then_create = then_create;
    int rc;
    if (kind == REG_CREATE)
        rc = meta_put(r->meta, r->path[mode], "", 0, META_VERSION_NONE,
                      META_EPHEMERAL | META_CREATE_PARENTS, &op->req, bk_reg_done);
    else
        rc = meta_delete(r->meta, r->path[mode], META_VERSION_ANY, &op->req, bk_reg_done);
    if (rc < 0) {
        MG_WARN(BK_MODULE, "registration %s of %s failed: %s",
                kind == REG_CREATE ? "create" : "delete", r->path[mode], mg_strerror(rc));
        mg_free(op);
        struct timeval tv = {BK_REG_RETRY_MS / 1000, 0};
        event_add(r->retry_ev, &tv);
        return;
    }
    r->busy = true;
    r->inflight = op;
}

void bk_reg_init(struct bk_server *s, struct meta_store *meta, const char *bookie_id)
{
    struct bk_reg *r = &s->reg;
    memset(r, 0, sizeof *r);
    if (!meta)
        return;
    if (!bk_reg_meta_linked()) {
        MG_WARN(BK_MODULE, "metadata store module not linked in: bookie not registered");
        return;
    }
    r->meta = meta;
    r->path[BK_REG_WRITABLE] = mg_asprintf("/ledgers/available/%s", bookie_id);
    r->path[BK_REG_READONLY] = mg_asprintf("/ledgers/available/readonly/%s", bookie_id);
    r->retry_ev = event_new(s->base, -1, 0, bk_reg_retry_cb, s);
}

void bk_reg_update(struct bk_server *s)
{
    struct bk_reg *r = &s->reg;
    if (!r->meta || r->busy)
        return;
    enum bk_reg_mode want = bk_reg_wanted(s);
    if (want == r->current) {
        bk_server_reg_idle(s);
        return;
    }
    if (want == BK_REG_NONE) {
        enum bk_reg_mode old = r->current;
        r->current = BK_REG_NONE;
        bk_reg_issue(s, REG_DELETE, old, false);
    } else {
        bk_reg_issue(s, REG_CREATE, want, false);
    }
}

void bk_reg_session_expired(struct bk_server *s)
{
    struct bk_reg *r = &s->reg;
    if (!r->meta)
        return;
    MG_WARN(BK_MODULE, "metadata session expired: registering again");
    r->current = BK_REG_NONE;
    bk_reg_update(s);
}

bool bk_reg_idle(const struct bk_server *s)
{
    return !s->reg.meta || (!s->reg.busy && s->reg.current == bk_reg_wanted(s));
}

void bk_reg_fini(struct bk_server *s)
{
    struct bk_reg *r = &s->reg;
    if (r->inflight)
        r->inflight->srv = NULL; /* its completion must not touch the freed server */
    mg_event_free(r->retry_ev);
    mg_free(r->path[BK_REG_WRITABLE]);
    mg_free(r->path[BK_REG_READONLY]);
    memset(r, 0, sizeof *r);
}
