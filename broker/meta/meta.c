/*
 * meta.c - the metadata store front end: picks a backend by URL from one table, checks
 * arguments, and runs every callback from the store's completion queue.
 *
 * Happy path: meta_open finds the backend ("memory", "embedded", "zk:<hosts>"), copies the
 * options and calls its open. Each call checks the path and the version/flag combination,
 * resets the request's results and hands over to the backend, which later queues the
 * completion (meta_req_complete). One libevent event per store runs the queue: first the
 * backend's before_flush hook (embedded: one fdatasync for the whole group), then the
 * items that were queued when the flush started, in order.
 *
 * Failure modes: bad arguments fail synchronously with -MG_EINVAL (the callback never
 * runs); a NULL op gives -MG_ENOTSUP; a failed before_flush turns every durable item of
 * that flush into its error. meta_close cancels everything still queued with
 * -MG_ECANCELED before it returns; called from inside one of the store's callbacks it
 * defers only the free, until that callback has returned.
 */
#include "meta/meta_int.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"
#include "util/loop.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

/* URL → backend: exact names, or a prefix followed by the backend's argument. */
static const struct meta_backend {
    const char *scheme;
    bool prefix;
    const struct meta_ops *ops;
} meta_backends[] = {
    {.scheme = "memory", .prefix = false, .ops = &meta_memory_ops},
    {.scheme = "embedded", .prefix = false, .ops = &meta_embedded_ops},
    {.scheme = "zk:", .prefix = true, .ops = &meta_zk_ops},
    {.scheme = "zookeeper:", .prefix = true, .ops = &meta_zk_ops},
};

static void meta_flush_cb(evutil_socket_t fd, short what, void *arg);

bool meta_url_is_shared(const char *url)
{
    for (size_t i = 0; i < sizeof meta_backends / sizeof meta_backends[0]; i++)
        if (meta_backends[i].prefix &&
            strncmp(url, meta_backends[i].scheme, strlen(meta_backends[i].scheme)) == 0)
            return true;
    return false;
}

static void meta_store_free(struct meta_store *m)
{
    mg_event_free(m->flush_ev);
    mg_free(m->url);
    mg_free(m->data_dir);
    mg_free(m);
}

static struct meta_store *meta_store_new(struct mg_loop *loop, const struct meta_options *o,
                                         const struct meta_ops *ops)
{
    struct meta_store *m = mg_calloc(1, sizeof *m);
    m->ops = ops;
    m->loop = loop;
    m->base = mg_loop_base(loop);
    m->o = *o;
    m->url = mg_strdup(o->url ? o->url : "");
    m->data_dir = o->data_dir ? mg_strdup(o->data_dir) : NULL;
    m->o.url = m->url;
    m->o.data_dir = m->data_dir;
    if (m->o.session_timeout_ms <= 0)
        m->o.session_timeout_ms = 30000;
    if (m->o.op_timeout_ms <= 0)
        m->o.op_timeout_ms = 30000;
    if (m->o.snapshot_log_bytes == 0)
        m->o.snapshot_log_bytes = 64u << 20;
    if (m->o.snapshot_interval_ms == 0)
        m->o.snapshot_interval_ms = 300000;
    TAILQ_INIT(&m->queue);
    m->flush_ev = event_new(m->base, -1, 0, meta_flush_cb, m);
    MG_ASSERT(m->flush_ev != NULL);
    return m;
}

int meta_open(struct mg_loop *loop, const struct meta_options *o, struct meta_store **out)
{
    *out = NULL;
    if (!loop || !o || !o->url) {
        MG_ERROR("meta", "meta_open: no URL");
        return -MG_EINVAL;
    }
    const struct meta_backend *b = NULL;
    const char *arg = "";
    for (size_t i = 0; i < sizeof meta_backends / sizeof meta_backends[0]; i++) {
        const struct meta_backend *c = &meta_backends[i];
        size_t n = strlen(c->scheme);
        if (c->prefix ? strncmp(o->url, c->scheme, n) == 0 : strcmp(o->url, c->scheme) == 0) {
            b = c;
            arg = o->url + (c->prefix ? n : strlen(o->url));
            break;
        }
    }
    if (!b) {
        MG_ERROR("meta",
                 "unknown metadata store URL '%s' (expected memory, embedded or "
                 "zk:host:port[,host:port...][/chroot])",
                 o->url);
        return -MG_EINVAL;
    }
    if (!b->ops->open)
        return -MG_ENOTSUP;
    struct meta_store *m = meta_store_new(loop, o, b->ops);
    int rc = m->ops->open(m, arg);
    if (rc < 0) {
        MG_ERROR("meta", "cannot open %s store '%s': %s%s%s", b->ops->name, o->url, mg_strerror(rc),
                 m->errmsg[0] ? ": " : "", m->errmsg);
        meta_store_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

int meta_open_peer(struct meta_store *peer, const struct meta_options *o, struct meta_store **out)
{
    *out = NULL;
    if (!peer || peer->closed)
        return -MG_ECLOSED;
    if (!peer->ops->open_peer)
        return -MG_ENOTSUP;
    struct meta_options po = o ? *o : peer->o;
    po.url = peer->url;
    po.data_dir = peer->data_dir;
    struct meta_store *m = meta_store_new(peer->loop, &po, peer->ops);
    int rc = m->ops->open_peer(m, peer);
    if (rc < 0) {
        MG_ERROR("meta", "cannot open a peer session of '%s': %s%s%s", peer->url, mg_strerror(rc),
                 m->errmsg[0] ? ": " : "", m->errmsg);
        meta_store_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

const char *meta_backend_name(const struct meta_store *m)
{
    return m->ops->name;
}

/* Cancel every queued item: requests get -MG_ECANCELED, watch and session events go. */
static void meta_queue_cancel(struct meta_store *m)
{
    struct meta_qitem *q;
    while ((q = TAILQ_FIRST(&m->queue)) != NULL) {
        TAILQ_REMOVE(&m->queue, q, link);
        if (q->kind == META_Q_REQ) {
            struct meta_req *req = q->req;
            mg_free(q);
            meta_req_complete_now(req, -MG_ECANCELED);
        } else if (q->kind == META_Q_WATCH) {
            meta_watch_free(q->watch);
        } else {
            mg_free(q);
        }
    }
}

void meta_close(struct meta_store *m)
{
    if (!m || m->closed)
        return;
    m->closed = true;
    if (m->ops->close)
        m->ops->close(m);
    m->impl = NULL;
    meta_queue_cancel(m);
    if (m->dispatch_depth > 0) {
        m->free_pending = true;
        return;
    }
    meta_store_free(m);
}

static void meta_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct meta_store *m = arg;
    if (TAILQ_EMPTY(&m->queue))
        return;
    int sync_rc = 0;
    if (m->ops->before_flush)
        sync_rc = m->ops->before_flush(m);
    /* Only what is queued now: later items may need another before_flush. */
    uint64_t limit = m->qseq;
    m->dispatch_depth++;
    while (!m->closed) {
        struct meta_qitem *q = TAILQ_FIRST(&m->queue);
        if (!q || q->seq > limit)
            break;
        TAILQ_REMOVE(&m->queue, q, link);
        if (q->kind == META_Q_REQ) {
            struct meta_req *req = q->req;
            int status = q->status;
            /* A durable item depends on the sync: a write it claims, or (embedded) an answer
             * read from changes not yet synced, which the failed sync undid. */
            if (q->durable && sync_rc < 0)
                status = sync_rc;
            mg_free(q);
            req->cb(req, status);
        } else if (q->kind == META_Q_WATCH) {
            struct meta_watch *w = q->watch;
            w->state = META_W_RUNNING;
            w->cb(m, w->path, (enum meta_watch_event)q->status, w->data);
            meta_watch_free(w);
        } else {
            enum meta_session_event ev = (enum meta_session_event)q->status;
            mg_free(q);
            if (m->o.session_cb)
                m->o.session_cb(m, ev, m->o.session_data);
        }
    }
    m->dispatch_depth--;
    if (m->free_pending) {
        if (m->dispatch_depth == 0)
            meta_store_free(m);
        return;
    }
    if (!TAILQ_EMPTY(&m->queue))
        event_active(m->flush_ev, EV_TIMEOUT, 0);
}

static void meta_queue_push(struct meta_store *m, struct meta_qitem *q)
{
    bool was_empty = TAILQ_EMPTY(&m->queue);
    q->seq = ++m->qseq;
    TAILQ_INSERT_TAIL(&m->queue, q, link);
    /* A flush in progress re-activates the event itself when it leaves items behind. */
    if (was_empty && m->dispatch_depth == 0)
        event_active(m->flush_ev, EV_TIMEOUT, 0);
}

void meta_req_complete(struct meta_store *m, struct meta_req *req, int status, bool durable)
{
    struct meta_qitem *q = mg_calloc(1, sizeof *q);
    q->kind = META_Q_REQ;
    q->req = req;
    q->status = status;
    q->durable = durable;
    meta_queue_push(m, q);
}

void meta_req_complete_now(struct meta_req *req, int status)
{
    req->cb(req, status);
}

void meta_watch_fire(struct meta_watch *w, enum meta_watch_event ev)
{
    MG_ASSERT(w->state == META_W_ARMED || w->state == META_W_NEW);
    w->state = META_W_QUEUED;
    memset(&w->q, 0, sizeof w->q);
    w->q.kind = META_Q_WATCH;
    w->q.embedded = true;
    w->q.status = (int)ev;
    w->q.watch = w;
    meta_queue_push(w->m, &w->q);
}

void meta_session_event(struct meta_store *m, enum meta_session_event ev)
{
    struct meta_qitem *q = mg_calloc(1, sizeof *q);
    q->kind = META_Q_SESSION;
    q->status = (int)ev;
    meta_queue_push(m, q);
}

void meta_watch_free(struct meta_watch *w)
{
    if (!w)
        return;
    mg_free(w->path);
    mg_free(w);
}

void meta_req_fini(struct meta_req *req)
{
    if (!req)
        return;
    mg_free(req->value);
    req->value = NULL;
    req->len = 0;
    mg_free_strv(req->children, req->n_children);
    req->children = NULL;
    req->n_children = 0;
    mg_free(req->path);
    req->path = NULL;
}

static int meta_cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void meta_req_set_children(struct meta_req *req, char **names, int n)
{
    if (n > 1)
        qsort(names, (size_t)n, sizeof *names, meta_cmp_names);
    req->children = names;
    req->n_children = n;
}

bool meta_path_valid(const char *path, bool sequential_prefix)
{
    if (!path || path[0] != '/')
        return false;
    if (path[1] == '\0')
        return true; /* the root, or the prefix of sequential children of the root */
    const char *p = path + 1;
    for (;;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 0)
            return sequential_prefix && !e; /* trailing '/': only as a sequential prefix */
        if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        if (!e)
            return true;
        p = e + 1;
    }
}

size_t meta_path_parent_len(const char *path)
{
    const char *s = strrchr(path, '/');
    if (!s || (s == path && path[1] == '\0'))
        return 0;
    return s == path ? 1 : (size_t)(s - path);
}

/* ---- the calls ------------------------------------------------------------------------ */

static void meta_req_reset(struct meta_req *req, meta_cb cb)
{
    req->cb = cb;
    req->value = NULL;
    req->len = 0;
    memset(&req->stat, 0, sizeof req->stat);
    req->children = NULL;
    req->n_children = 0;
    req->path = NULL;
    req->impl = NULL;
}

void meta_set_offline(struct meta_store *m, bool on)
{
    m->offline = on;
}

static int meta_check(struct meta_store *m, const char *path, struct meta_req *req, meta_cb cb)
{
    if (!m || m->closed || m->offline)
        return -MG_ECLOSED;
    if (!req || !cb || !meta_path_valid(path, false))
        return -MG_EINVAL;
    return 0;
}

/* get, children and exists: the checks, then read (the store's operation; NULL: it has none). */
static int meta_read(struct meta_store *m, const char *path, struct meta_req *req, meta_cb cb,
                     int (*read)(struct meta_store *m, const char *path, struct meta_req *req))
{
    int rc = meta_check(m, path, req, cb);
    if (rc < 0)
        return rc;
    if (!read)
        return -MG_ENOTSUP;
    meta_req_reset(req, cb);
    return read(m, path, req);
}

int meta_get(struct meta_store *m, const char *path, struct meta_req *req, meta_cb cb)
{
    return meta_read(m, path, req, cb, m ? m->ops->get : NULL);
}

int meta_put(struct meta_store *m, const char *path, const void *value, size_t len,
             int64_t expected_version, int flags, struct meta_req *req, meta_cb cb)
{
    if (!m || m->closed || m->offline)
        return -MG_ECLOSED;
    bool seq = (flags & META_SEQUENTIAL) != 0;
    if (!req || !cb || !meta_path_valid(path, seq) || (len > 0 && !value))
        return -MG_EINVAL;
    if (flags & ~(META_EPHEMERAL | META_SEQUENTIAL | META_CREATE_PARENTS))
        return -MG_EINVAL;
    if (expected_version < META_VERSION_NONE)
        return -MG_EINVAL;
    if (seq && expected_version >= 0)
        return -MG_EINVAL;
    if (!m->ops->put)
        return -MG_ENOTSUP;
    meta_req_reset(req, cb);
    return m->ops->put(m, path, value, len, expected_version, flags, req);
}

int meta_delete(struct meta_store *m, const char *path, int64_t expected_version,
                struct meta_req *req, meta_cb cb)
{
    int rc = meta_check(m, path, req, cb);
    if (rc < 0)
        return rc;
    if (expected_version < META_VERSION_ANY)
        return -MG_EINVAL;
    if (strcmp(path, "/") == 0)
        return -MG_ENOTALLOWED; /* zk: "/" is the chroot node itself */
    if (!m->ops->del)
        return -MG_ENOTSUP;
    meta_req_reset(req, cb);
    return m->ops->del(m, path, expected_version, req);
}

int meta_children(struct meta_store *m, const char *path, struct meta_req *req, meta_cb cb)
{
    return meta_read(m, path, req, cb, m ? m->ops->children : NULL);
}

int meta_exists(struct meta_store *m, const char *path, struct meta_req *req, meta_cb cb)
{
    return meta_read(m, path, req, cb, m ? m->ops->exists : NULL);
}

struct meta_watch *meta_watch(struct meta_store *m, const char *path, bool children,
                              meta_watch_cb cb, void *data)
{
    if (!m || m->closed || !cb || !meta_path_valid(path, false) || !m->ops->watch)
        return NULL;
    struct meta_watch *w = mg_calloc(1, sizeof *w);
    w->m = m;
    w->path = mg_strdup(path);
    w->children = children;
    w->cb = cb;
    w->data = data;
    w->state = META_W_NEW;
    if (m->ops->watch(m, w) < 0) {
        meta_watch_free(w);
        return NULL;
    }
    return w;
}

void meta_unwatch(struct meta_store *m, struct meta_watch *w)
{
    if (!m || !w || m->closed)
        return;
    switch (w->state) {
    case META_W_RUNNING:
    case META_W_CANCELED:
        return; /* inside its callback, or already being canceled */
    case META_W_QUEUED:
        TAILQ_REMOVE(&m->queue, &w->q, link);
        meta_watch_free(w);
        return;
    case META_W_NEW:
    case META_W_ARMED:
        if (m->ops->unwatch)
            m->ops->unwatch(m, w); /* zk may keep it (CANCELED) until its reply */
        if (w->state != META_W_CANCELED)
            meta_watch_free(w);
        return;
    }
}
