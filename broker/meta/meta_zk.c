/*
 * meta_zk.c - the "zk:host:port[,host:port...][/chroot]" backend: a ZooKeeper ensemble
 * through the single-threaded C client (libzookeeper_st), driven by the store's event_base.
 *
 * Happy path: zookeeper_init2 with the host string (the client applies the chroot itself);
 * after every client call meta_zk_rearm asks zookeeper_interest for the fd, the read/write
 * interest and the timeout, and keeps one event for exactly that; when it fires,
 * zookeeper_process runs the client's I/O, completions and watchers — all on the loop
 * thread. A request is a struct zk_op: submitted at once while connected, otherwise kept
 * waiting for the session (bounded by op_timeout_ms). Completions copy their results into
 * the caller's request and queue its callback (meta.c), so no user code ever runs inside
 * the client. put is a small state machine: set (version >= 0 or ANY), create (NONE,
 * sequential, or ANY after ZNONODE), and with META_CREATE_PARENTS, on ZNONODE, the
 * missing ancestors are created one by one (ZNODEEXISTS ignored) before the create is
 * sent again; the client sends them in order on one session.
 * Watches: data watches are zoo_awexists; children watches are zoo_awget_children, and on
 * a missing node an exists watch that reports its creation. The watch object itself is the
 * client's watcher context.
 *
 * Sessions: CONNECTED when a session is established, DISCONNECTED on connection loss,
 * RECONNECTED when the same session comes back (the client re-registers its watches),
 * EXPIRED when ZooKeeper expired it: then the handle is closed, every watch fires once
 * as META_WATCH_CHANGED (the new session has none: callers re-read and re-arm), a new
 * session is opened and reported as CONNECTED. Ephemeral keys of the old session are gone;
 * callers must create them again on that CONNECTED.
 *
 * Failure modes (status codes): ZNONODE → -MG_ENOTFOUND, ZNODEEXISTS → -MG_EEXIST,
 * ZBADVERSION → -MG_EBUSY, ZNOTEMPTY/ZNOCHILDRENFOREPHEMERALS → -MG_ENOTALLOWED,
 * ZOPERATIONTIMEOUT and op_timeout_ms → -MG_ETIMEDOUT, ZSESSIONEXPIRED/ZCLOSING/
 * ZINVALIDSTATE → -MG_ECLOSED, connection loss with the request in flight → -MG_EIO
 * (outcome unknown). A request that timed out is detached; its op lives on until the
 * client completes it. Values over ZK_VALUE_MAX fail synchronously with -MG_ETOOBIG (the
 * server would drop the connection: jute.maxbuffer defaults to 1 MB). The client's own
 * log lines go through MG_LOG (module "zk"), its ERROR level as our WARN.
 */
#include "meta/meta_int.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"
#include "util/loop.h"

#include <event2/event.h>
#include <stdio.h>
#include <string.h>
#include <zookeeper/zookeeper.h>

/* jute.maxbuffer (0xfffff) minus room for the request header and path. */
#define ZK_VALUE_MAX (0xfffff - 8192)
#define ZK_PUT_RETRIES 5

enum zk_kind {
    ZK_GET = 0,
    ZK_PUT,
    ZK_DEL,
    ZK_CHILDREN,
    ZK_EXISTS,
    ZK_WATCH, /* a watch registration waiting for the session (keeps the issue order) */
};

enum zk_put_stage {
    ZK_PUT_SET = 0,
    ZK_PUT_CREATE,
    ZK_PUT_PARENTS, /* ancestors sent, then the create again */
};

/* Registration stages of a watch (struct meta_watch.zk_stage). */
enum zk_wstage {
    ZK_W_WAITING = 0, /* a ZK_WATCH op in z->waiting until connected */
    ZK_W_REG_CHILD,   /* zoo_awget_children in flight */
    ZK_W_REG_EXISTS,  /* zoo_awexists in flight */
    ZK_W_CHILD,       /* registered as a child watch */
    ZK_W_DATA,        /* registered as a data (exists) watch */
};

struct meta_zk;

struct zk_op {
    TAILQ_ENTRY(zk_op) link;  /* z->waiting or z->inflight */
    struct meta_zk *z;        /* borrowed */
    struct meta_req *req;     /* borrowed; NULL once completed (timeout, close) */
    struct meta_watch *watch; /* ZK_WATCH: the watch (owned while waiting) */
    enum zk_kind kind;
    char *path;  /* owned */
    char *value; /* owned copy (put) */
    size_t len;
    int64_t version;
    int flags;
    enum zk_put_stage stage;
    int retries;
    bool parents_tried;
    int parents_err;     /* first real error of the ancestor creates */
    int outstanding;     /* client completions still to come */
    bool waiting;        /* in z->waiting */
    struct event *timer; /* owned: op_timeout_ms */
};
TAILQ_HEAD(zk_op_list, zk_op);

struct meta_zk {
    struct meta_store *m;    /* borrowed back pointer */
    char *hosts;             /* owned: "h:p,h:p/chroot" */
    zhandle_t *zh;           /* owned */
    struct event *io_ev;     /* owned: the client's fd/timeout */
    struct event *reinit_ev; /* owned: new session after expiry */
    bool connected;          /* session up and connection usable */
    bool had_session;        /* this handle reached CONNECTED once */
    bool closing;
    struct zk_op_list waiting;      /* not yet submitted */
    struct zk_op_list inflight;     /* submitted, completions outstanding */
    struct meta_watch_list watches; /* registering or registered */
};

static void meta_zk_rearm(struct meta_zk *z);
static void meta_zk_submit(struct zk_op *op);
static void meta_zk_watch_submit(struct meta_zk *z, struct meta_watch *w);

/* ---- plumbing ------------------------------------------------------------------------- */

static int meta_zk_err(int rc)
{
    switch (rc) {
    case ZOK:
        return 0;
    case ZNONODE:
        return -MG_ENOTFOUND;
    case ZNODEEXISTS:
        return -MG_EEXIST;
    case ZBADVERSION:
        return -MG_EBUSY;
    case ZNOTEMPTY:
    case ZNOCHILDRENFOREPHEMERALS:
    case ZNOAUTH:
    case ZAUTHFAILED:
        return -MG_ENOTALLOWED;
    case ZOPERATIONTIMEOUT:
        return -MG_ETIMEDOUT;
    case ZSESSIONEXPIRED:
    case ZCLOSING:
    case ZINVALIDSTATE:
        return -MG_ECLOSED;
    case ZBADARGUMENTS:
        return -MG_EINVAL;
    case ZCONNECTIONLOSS:
    default:
        return -MG_EIO;
    }
}

/* While ZooKeeper is down the client logs the same few lines at every connection attempt
 * (recv_timeout/60 apart). Lines seen in the last ZK_LOG_REPEAT_MS are dropped. The client's
 * log callback has no context argument, hence per-thread state (each loop thread has its
 * own stores); it holds only this rate limit. */
#define ZK_LOG_SLOTS 4
#define ZK_LOG_REPEAT_MS 30000
static _Thread_local struct zk_log_slot {
    char text[160];
    int64_t at_ms;
    unsigned dropped;
} zk_log_recent[ZK_LOG_SLOTS];

/* true if this line was logged recently (and counts it). */
static bool meta_zk_log_repeated(const char *text, size_t len)
{
    int64_t now = mg_wall_ms();
    char key[sizeof zk_log_recent[0].text];
    snprintf(key, sizeof key, "%.*s", (int)len, text);
    struct zk_log_slot *oldest = &zk_log_recent[0];
    for (int i = 0; i < ZK_LOG_SLOTS; i++) {
        struct zk_log_slot *sl = &zk_log_recent[i];
        if (sl->text[0] && strcmp(sl->text, key) == 0) {
            if (now - sl->at_ms < ZK_LOG_REPEAT_MS) {
                sl->dropped++;
                return true;
            }
            if (sl->dropped)
                MG_INFO("zk", "(the next line was repeated %u times)", sl->dropped);
            sl->dropped = 0;
            sl->at_ms = now;
            return false;
        }
        if (sl->at_ms < oldest->at_ms)
            oldest = sl;
    }
    memcpy(oldest->text, key, sizeof key);
    oldest->at_ms = now;
    oldest->dropped = 0;
    return false;
}

/* The client's log lines: "time:pid:ZOO_LEVEL@func@line: text". */
static void meta_zk_log_cb(const char *msg)
{
    enum mg_log_level lvl = MG_LOG_DEBUG;
    if (strstr(msg, ":ZOO_ERROR@"))
        lvl = MG_LOG_WARN;
    else if (strstr(msg, ":ZOO_WARN@"))
        lvl = MG_LOG_INFO;
    if (lvl < mg_log_min_level)
        return;
    const char *p = strstr(msg, ":ZOO_");
    const char *func = p ? strchr(p, '@') : NULL;
    const char *text = func ? strstr(func, ": ") : NULL;
    const char *fend = func ? strchr(func + 1, '@') : NULL;
    int flen = func && fend ? (int)(fend - func - 1) : 0;
    text = text ? text + 2 : msg;
    size_t tlen = strlen(text);
    while (tlen > 0 && (text[tlen - 1] == '\n' || text[tlen - 1] == '\r'))
        tlen--;
    if (meta_zk_log_repeated(text, tlen))
        return;
    mg_log_write(lvl, "zk", "%.*s%s%.*s", flen, func ? func + 1 : "", flen ? ": " : "", (int)tlen,
                 text);
}

static void meta_zk_io_cb(evutil_socket_t fd, short what, void *arg)
{
    struct meta_zk *z = arg;
    int events = 0;
    if (what & EV_READ)
        events |= ZOOKEEPER_READ;
    if (what & EV_WRITE)
        events |= ZOOKEEPER_WRITE;
    if (z->zh)
        zookeeper_process(z->zh, events);
    meta_zk_rearm(z);
}

/* Keep one event on what zookeeper_interest asks for. Recreated each time: the client may
 * have closed and reopened its socket under the same fd number. */
static void meta_zk_rearm(struct meta_zk *z)
{
    mg_event_free(z->io_ev);
    z->io_ev = NULL;
    if (!z->zh || z->closing)
        return;
    int fd = -1, interest = 0;
    struct timeval tv = {0, 0};
    int rc = zookeeper_interest(z->zh, &fd, &interest, &tv);
    if (rc == ZINVALIDSTATE)
        return; /* expired or auth failed: the session watcher schedules a new handle */
    short what = 0;
    if (rc != ZOK) {
        /* connect failed or timed out: the client retries (with its own back-off) on the
         * next zookeeper_interest; do not spin. */
        fd = -1;
        tv.tv_sec = 0;
        tv.tv_usec = 50000;
    } else if (fd >= 0) {
        if (interest & ZOOKEEPER_READ)
            what |= EV_READ;
        if (interest & ZOOKEEPER_WRITE)
            what |= EV_WRITE;
    }
    z->io_ev = event_new(z->m->base, what ? fd : -1, what, meta_zk_io_cb, z);
    MG_ASSERT(z->io_ev != NULL);
    event_add(z->io_ev, &tv);
}

/* ---- requests ------------------------------------------------------------------------- */

static void meta_zk_op_free(struct zk_op *op)
{
    struct meta_zk *z = op->z;
    TAILQ_REMOVE(op->waiting ? &z->waiting : &z->inflight, op, link);
    mg_event_free(op->timer);
    mg_free(op->path);
    mg_free(op->value);
    mg_free(op);
}

/* Complete the caller's request (once) and free the op when the client is done with it. */
static void meta_zk_op_finish(struct zk_op *op, int status)
{
    if (op->req) {
        meta_req_complete(op->z->m, op->req, status, false);
        op->req = NULL;
    }
    if (op->outstanding == 0)
        meta_zk_op_free(op);
}

/* A completion arrived: false if the op no longer has a caller (then it may be freed). */
static bool meta_zk_op_back(struct zk_op *op)
{
    op->outstanding--;
    if (op->req && !op->z->closing)
        return true;
    if (op->outstanding == 0)
        meta_zk_op_free(op);
    return false;
}

static void meta_zk_op_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct zk_op *op = arg;
    MG_DEBUG("meta", "zk: %s timed out", op->path);
    meta_zk_op_finish(op, -MG_ETIMEDOUT);
}

static void meta_zk_stat_to(const struct Stat *s, struct meta_stat *st)
{
    st->version = s->version;
    st->ephemeral = s->ephemeralOwner != 0;
    st->ctime_ms = s->ctime;
    st->mtime_ms = s->mtime;
    st->num_children = s->numChildren;
}

static void meta_zk_data_done(int rc, const char *value, int value_len, const struct Stat *stat,
                              const void *data)
{
    struct zk_op *op = (struct zk_op *)data;
    if (!meta_zk_op_back(op))
        return;
    if (rc == ZOK) {
        size_t len = value && value_len > 0 ? (size_t)value_len : 0;
        op->req->value = mg_malloc(len + 1);
        if (len)
            memcpy(op->req->value, value, len);
        op->req->value[len] = '\0';
        op->req->len = len;
        meta_zk_stat_to(stat, &op->req->stat);
    }
    meta_zk_op_finish(op, meta_zk_err(rc));
}

static void meta_zk_stat_done(int rc, const struct Stat *stat, const void *data)
{
    struct zk_op *op = (struct zk_op *)data;
    if (!meta_zk_op_back(op))
        return;
    if (rc == ZOK)
        meta_zk_stat_to(stat, &op->req->stat);
    meta_zk_op_finish(op, meta_zk_err(rc));
}

static void meta_zk_children_done(int rc, const struct String_vector *strings,
                                  const struct Stat *stat, const void *data)
{
    struct zk_op *op = (struct zk_op *)data;
    if (!meta_zk_op_back(op))
        return;
    if (rc == ZOK) {
        int n = strings ? strings->count : 0;
        char **names = mg_calloc(n ? (size_t)n : 1, sizeof *names);
        for (int i = 0; i < n; i++)
            names[i] = mg_strdup(strings->data[i]);
        meta_req_set_children(op->req, names, n);
        meta_zk_stat_to(stat, &op->req->stat);
    }
    meta_zk_op_finish(op, meta_zk_err(rc));
}

static void meta_zk_void_done(int rc, const void *data)
{
    struct zk_op *op = (struct zk_op *)data;
    if (!meta_zk_op_back(op))
        return;
    meta_zk_op_finish(op, meta_zk_err(rc));
}

/* Send the op's next step again (put stages) from inside a completion. */
static void meta_zk_resubmit(struct zk_op *op)
{
    if (!op->z->connected) {
        meta_zk_op_finish(op, -MG_EIO);
        return;
    }
    meta_zk_submit(op);
}

static void meta_zk_set_done(int rc, const struct Stat *stat, const void *data)
{
    struct zk_op *op = (struct zk_op *)data;
    if (!meta_zk_op_back(op))
        return;
    if (rc == ZOK) {
        meta_zk_stat_to(stat, &op->req->stat);
        op->req->path = mg_strdup(op->path);
    } else if (rc == ZNONODE && op->version == META_VERSION_ANY) {
        op->stage = ZK_PUT_CREATE;
        meta_zk_resubmit(op);
        return;
    }
    meta_zk_op_finish(op, meta_zk_err(rc));
}

static void meta_zk_create_done(int rc, const char *path, const struct Stat *stat, const void *data)
{
    struct zk_op *op = (struct zk_op *)data;
    if (!meta_zk_op_back(op))
        return;
    if (rc == ZOK) {
        op->req->path = mg_strdup(path ? path : op->path);
        meta_zk_stat_to(stat, &op->req->stat);
    } else if (rc == ZNODEEXISTS && op->version == META_VERSION_ANY &&
               !(op->flags & META_SEQUENTIAL) && op->retries++ < ZK_PUT_RETRIES) {
        op->stage = ZK_PUT_SET; /* created by someone else meanwhile: overwrite */
        meta_zk_resubmit(op);
        return;
    } else if (rc == ZNONODE && (op->flags & META_CREATE_PARENTS) && !op->parents_tried) {
        op->stage = ZK_PUT_PARENTS;
        op->parents_tried = true;
        meta_zk_resubmit(op);
        return;
    } else if (rc == ZNONODE && op->parents_err) {
        rc = op->parents_err;
    }
    meta_zk_op_finish(op, meta_zk_err(rc));
}

static void meta_zk_parent_done(int rc, const char *path, const void *data)
{
    struct zk_op *op = (struct zk_op *)data;
    if (!meta_zk_op_back(op))
        return;
    if (rc != ZOK && rc != ZNODEEXISTS && op->parents_err == 0)
        op->parents_err = rc;
}

static int meta_zk_create_mode(int flags)
{
    bool eph = (flags & META_EPHEMERAL) != 0, seq = (flags & META_SEQUENTIAL) != 0;
    return eph ? (seq ? ZOO_EPHEMERAL_SEQUENTIAL : ZOO_EPHEMERAL)
               : (seq ? ZOO_PERSISTENT_SEQUENTIAL : ZOO_PERSISTENT);
}

/* Issue the op's current step. Synchronous client errors complete it like replies. */
static void meta_zk_submit(struct zk_op *op)
{
    struct meta_zk *z = op->z;
    int rc = ZOK;
    const char *val = op->value ? op->value : "";
    int vlen = (int)op->len;
    int ver = op->version < 0 ? -1 : (int)op->version;
    switch (op->kind) {
    case ZK_GET:
        rc = zoo_aget(z->zh, op->path, 0, meta_zk_data_done, op);
        break;
    case ZK_EXISTS:
        rc = zoo_aexists(z->zh, op->path, 0, meta_zk_stat_done, op);
        break;
    case ZK_CHILDREN:
        rc = zoo_aget_children2(z->zh, op->path, 0, meta_zk_children_done, op);
        break;
    case ZK_DEL:
        rc = zoo_adelete(z->zh, op->path, ver, meta_zk_void_done, op);
        break;
    case ZK_WATCH:
        MG_ASSERT(!"a watch registration is not a request");
        break;
    case ZK_PUT:
        if (op->stage == ZK_PUT_SET) {
            rc = zoo_aset(z->zh, op->path, val, vlen, ver, meta_zk_set_done, op);
            break;
        }
        if (op->stage == ZK_PUT_PARENTS) {
            /* every ancestor below the root, top down; the create follows on the same
             * session, so it is answered after them */
            const char *last = strrchr(op->path, '/');
            for (const char *s = strchr(op->path + 1, '/'); s && s <= last && s > op->path;
                 s = strchr(s + 1, '/')) {
                char *anc = mg_strndup(op->path, (size_t)(s - op->path));
                int prc = zoo_acreate(z->zh, anc, "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT,
                                      meta_zk_parent_done, op);
                mg_free(anc);
                if (prc != ZOK) {
                    rc = prc;
                    break;
                }
                op->outstanding++;
            }
            if (rc != ZOK)
                break;
        }
        rc = zoo_acreate2(z->zh, op->path, val, vlen, &ZOO_OPEN_ACL_UNSAFE,
                          meta_zk_create_mode(op->flags), meta_zk_create_done, op);
        break;
    }
    if (rc != ZOK) {
        MG_DEBUG("meta", "zk: request on %s failed at once: %s", op->path, zerror(rc));
        meta_zk_op_finish(op, meta_zk_err(rc));
        return;
    }
    op->outstanding++;
}

static struct zk_op *meta_zk_op_new(struct meta_store *m, enum zk_kind kind, const char *path,
                                    struct meta_req *req)
{
    struct meta_zk *z = m->impl;
    struct zk_op *op = mg_calloc(1, sizeof *op);
    op->z = z;
    op->req = req;
    op->kind = kind;
    op->path = mg_strdup(path);
    op->version = META_VERSION_ANY;
    op->timer = event_new(m->base, -1, 0, meta_zk_op_timeout_cb, op);
    struct timeval tv = {m->o.op_timeout_ms / 1000, (m->o.op_timeout_ms % 1000) * 1000};
    event_add(op->timer, &tv);
    return op;
}

/* Submit now when connected, else wait for the session. */
static int meta_zk_start(struct zk_op *op)
{
    struct meta_zk *z = op->z;
    if (z->connected) {
        TAILQ_INSERT_TAIL(&z->inflight, op, link);
        meta_zk_submit(op);
        meta_zk_rearm(z);
    } else {
        op->waiting = true;
        TAILQ_INSERT_TAIL(&z->waiting, op, link);
    }
    return 0;
}

/* Queue a watch registration behind the requests already waiting. */
static void meta_zk_watch_wait(struct meta_zk *z, struct meta_watch *w)
{
    struct zk_op *op = mg_calloc(1, sizeof *op);
    op->z = z;
    op->kind = ZK_WATCH;
    op->watch = w;
    op->waiting = true;
    TAILQ_INSERT_TAIL(&z->waiting, op, link);
    w->zk_stage = ZK_W_WAITING;
    w->zk_op = op;
}

/* The session is (back) up: send what waited for it, requests and watch registrations in
 * the order they were issued. */
static void meta_zk_flush_waiting(struct meta_zk *z)
{
    struct zk_op *op;
    while (z->connected && (op = TAILQ_FIRST(&z->waiting)) != NULL) {
        if (op->kind == ZK_WATCH) {
            struct meta_watch *w = op->watch;
            w->zk_op = NULL;
            meta_zk_op_free(op);
            meta_zk_watch_submit(z, w);
            continue;
        }
        TAILQ_REMOVE(&z->waiting, op, link);
        op->waiting = false;
        TAILQ_INSERT_TAIL(&z->inflight, op, link);
        meta_zk_submit(op);
    }
}

static int meta_zk_get(struct meta_store *m, const char *path, struct meta_req *req)
{
    return meta_zk_start(meta_zk_op_new(m, ZK_GET, path, req));
}

static int meta_zk_exists(struct meta_store *m, const char *path, struct meta_req *req)
{
    return meta_zk_start(meta_zk_op_new(m, ZK_EXISTS, path, req));
}

static int meta_zk_children(struct meta_store *m, const char *path, struct meta_req *req)
{
    return meta_zk_start(meta_zk_op_new(m, ZK_CHILDREN, path, req));
}

static int meta_zk_del(struct meta_store *m, const char *path, int64_t expected_version,
                       struct meta_req *req)
{
    if (expected_version > INT32_MAX)
        return -MG_EINVAL;
    struct zk_op *op = meta_zk_op_new(m, ZK_DEL, path, req);
    op->version = expected_version;
    return meta_zk_start(op);
}

static int meta_zk_put(struct meta_store *m, const char *path, const void *value, size_t len,
                       int64_t expected_version, int flags, struct meta_req *req)
{
    if (expected_version > INT32_MAX)
        return -MG_EINVAL;
    if (len > ZK_VALUE_MAX)
        return -MG_ETOOBIG;
    struct zk_op *op = meta_zk_op_new(m, ZK_PUT, path, req);
    op->version = expected_version;
    op->flags = flags;
    if (len) {
        op->value = mg_malloc(len);
        memcpy(op->value, value, len);
    }
    op->len = len;
    op->stage = ((flags & META_SEQUENTIAL) || expected_version == META_VERSION_NONE) ? ZK_PUT_CREATE
                                                                                     : ZK_PUT_SET;
    return meta_zk_start(op);
}

/* ---- watches -------------------------------------------------------------------------- */

static void meta_zk_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    struct meta_watch *w = ctx;
    struct meta_zk *z = w->m->impl;
    if (type == ZOO_SESSION_EVENT || !z || z->closing || zh != z->zh)
        return; /* session changes are handled by the session watcher */
    enum meta_watch_event ev = META_WATCH_CHANGED;
    if (type == ZOO_CREATED_EVENT)
        ev = META_WATCH_CREATED;
    else if (type == ZOO_DELETED_EVENT)
        ev = META_WATCH_DELETED;
    else if (type == ZOO_CHILD_EVENT)
        ev = META_WATCH_CHILDREN;
    TAILQ_REMOVE(&z->watches, w, link);
    if (w->state == META_W_CANCELED) {
        meta_watch_free(w);
        return;
    }
    meta_watch_fire(w, ev);
}

/* A registration failed: connection loss → try again once connected; anything else
 * (expiry) → fire once, so that the caller re-reads. */
static void meta_zk_watch_failed(struct meta_zk *z, struct meta_watch *w, int rc)
{
    TAILQ_REMOVE(&z->watches, w, link);
    if (w->state == META_W_CANCELED) {
        meta_watch_free(w);
        return;
    }
    if (rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT) {
        if (z->connected)
            meta_zk_watch_submit(z, w);
        else
            meta_zk_watch_wait(z, w);
        return;
    }
    meta_watch_fire(w, META_WATCH_CHANGED);
}

static void meta_zk_wexists_done(int rc, const struct Stat *stat, const void *data)
{
    struct meta_watch *w = (struct meta_watch *)data;
    struct meta_zk *z = w->m->impl;
    if (!z || z->closing)
        return; /* meta_zk_close frees the watches */
    bool registered = rc == ZOK || rc == ZNONODE;
    if (registered && w->state == META_W_CANCELED) {
        zoo_aremove_watches(z->zh, w->path, ZWATCHTYPE_DATA, meta_zk_watcher, w, 1, NULL, NULL);
        TAILQ_REMOVE(&z->watches, w, link);
        meta_watch_free(w);
        return;
    }
    if (!registered) {
        meta_zk_watch_failed(z, w, rc);
        return;
    }
    if (w->children && rc == ZOK) {
        /* a children watch on a node that was missing a moment ago: it exists now */
        zoo_aremove_watches(z->zh, w->path, ZWATCHTYPE_DATA, meta_zk_watcher, w, 1, NULL, NULL);
        TAILQ_REMOVE(&z->watches, w, link);
        meta_watch_fire(w, META_WATCH_CREATED);
        return;
    }
    w->zk_stage = ZK_W_DATA;
    if (w->state == META_W_NEW)
        w->state = META_W_ARMED;
}

static void meta_zk_wchildren_done(int rc, const struct String_vector *strings, const void *data)
{
    struct meta_watch *w = (struct meta_watch *)data;
    struct meta_zk *z = w->m->impl;
    if (!z || z->closing)
        return;
    if (rc == ZOK && w->state == META_W_CANCELED) {
        zoo_aremove_watches(z->zh, w->path, ZWATCHTYPE_CHILD, meta_zk_watcher, w, 1, NULL, NULL);
        TAILQ_REMOVE(&z->watches, w, link);
        meta_watch_free(w);
        return;
    }
    if (rc == ZNONODE && w->state != META_W_CANCELED) {
        /* no node: watch for its creation instead */
        w->zk_stage = ZK_W_REG_EXISTS;
        int src = zoo_awexists(z->zh, w->path, meta_zk_watcher, w, meta_zk_wexists_done, w);
        if (src != ZOK)
            meta_zk_watch_failed(z, w, src);
        return;
    }
    if (rc != ZOK) {
        meta_zk_watch_failed(z, w, rc == ZNONODE ? ZCLOSING : rc);
        return;
    }
    w->zk_stage = ZK_W_CHILD;
    if (w->state == META_W_NEW)
        w->state = META_W_ARMED;
}

static void meta_zk_watch_submit(struct meta_zk *z, struct meta_watch *w)
{
    TAILQ_INSERT_TAIL(&z->watches, w, link);
    int rc;
    if (w->children) {
        w->zk_stage = ZK_W_REG_CHILD;
        rc = zoo_awget_children(z->zh, w->path, meta_zk_watcher, w, meta_zk_wchildren_done, w);
    } else {
        w->zk_stage = ZK_W_REG_EXISTS;
        rc = zoo_awexists(z->zh, w->path, meta_zk_watcher, w, meta_zk_wexists_done, w);
    }
    if (rc != ZOK)
        meta_zk_watch_failed(z, w, rc);
}

static int meta_zk_watch(struct meta_store *m, struct meta_watch *w)
{
    struct meta_zk *z = m->impl;
    if (z->connected) {
        meta_zk_watch_submit(z, w);
        meta_zk_rearm(z);
    } else {
        meta_zk_watch_wait(z, w);
    }
    return 0;
}

static void meta_zk_unwatch(struct meta_store *m, struct meta_watch *w)
{
    struct meta_zk *z = m->impl;
    switch (w->zk_stage) {
    case ZK_W_WAITING:
        meta_zk_op_free(w->zk_op);
        w->zk_op = NULL;
        return;
    case ZK_W_REG_CHILD:
    case ZK_W_REG_EXISTS:
        w->state = META_W_CANCELED; /* freed when its registration is answered */
        return;
    case ZK_W_CHILD:
    case ZK_W_DATA:
        zoo_aremove_watches(z->zh, w->path,
                            w->zk_stage == ZK_W_CHILD ? ZWATCHTYPE_CHILD : ZWATCHTYPE_DATA,
                            meta_zk_watcher, w, 1, NULL, NULL);
        TAILQ_REMOVE(&z->watches, w, link);
        return;
    }
}

/* ---- sessions ------------------------------------------------------------------------- */

static void meta_zk_session_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    struct meta_zk *z = ctx;
    if (type != ZOO_SESSION_EVENT || zh != z->zh || z->closing)
        return;
    if (state == ZOO_CONNECTED_STATE || state == ZOO_READONLY_STATE) {
        if (z->connected)
            return;
        z->connected = true;
        const clientid_t *cid = zoo_client_id(zh);
        MG_INFO("meta", "zk: session 0x%llx %s on %s", (unsigned long long)cid->client_id,
                z->had_session ? "reconnected" : "established", zoo_get_current_server(zh));
        meta_session_event(z->m,
                           z->had_session ? META_SESSION_RECONNECTED : META_SESSION_CONNECTED);
        z->had_session = true;
        meta_zk_flush_waiting(z);
    } else if (state == ZOO_EXPIRED_SESSION_STATE || state == ZOO_AUTH_FAILED_STATE) {
        z->connected = false;
        MG_WARN("meta", "zk: session %s; opening a new one",
                state == ZOO_EXPIRED_SESSION_STATE ? "expired" : "authentication failed");
        meta_session_event(z->m, META_SESSION_EXPIRED);
        event_active(z->reinit_ev, EV_TIMEOUT, 0);
    } else if (z->connected) { /* CONNECTING / ASSOCIATING: the connection was lost */
        z->connected = false;
        MG_WARN("meta", "zk: connection lost, reconnecting");
        meta_session_event(z->m, META_SESSION_DISCONNECTED);
    }
}

static int meta_zk_init_handle(struct meta_zk *z)
{
    zoo_set_debug_level(mg_log_min_level <= MG_LOG_DEBUG ? ZOO_LOG_LEVEL_INFO : ZOO_LOG_LEVEL_WARN);
    z->had_session = false;
    z->connected = false;
    z->zh = zookeeper_init2(z->hosts, meta_zk_session_watcher, z->m->o.session_timeout_ms, NULL, z,
                            ZOO_NO_LOG_CLIENTENV, meta_zk_log_cb);
    if (!z->zh) {
        snprintf(z->m->errmsg, sizeof z->m->errmsg, "zookeeper_init('%s'): %s", z->hosts,
                 strerror(errno));
        return errno == EINVAL ? -MG_EINVAL : -MG_EIO;
    }
    meta_zk_rearm(z);
    return 0;
}

/* After expiry: drop the dead handle, release every watch once, start a new session. */
static void meta_zk_reinit_cb(evutil_socket_t fd, short what, void *arg)
{
    struct meta_zk *z = arg;
    if (z->closing)
        return;
    mg_event_free(z->io_ev);
    z->io_ev = NULL;
    if (z->zh) {
        zhandle_t *old = z->zh;
        z->zh = NULL; /* completions of the old handle now fail their ops (ECLOSED) */
        zookeeper_close(old);
    }
    struct meta_watch *w;
    while ((w = TAILQ_FIRST(&z->watches)) != NULL) {
        TAILQ_REMOVE(&z->watches, w, link);
        if (w->state == META_W_CANCELED)
            meta_watch_free(w);
        else
            meta_watch_fire(w, META_WATCH_CHANGED);
    }
    if (meta_zk_init_handle(z) < 0) {
        MG_ERROR("meta", "zk: %s; retrying in 1 s", z->m->errmsg);
        struct timeval tv = {1, 0};
        event_add(z->reinit_ev, &tv);
    }
}

static int meta_zk_open_hosts(struct meta_store *m, const char *hosts)
{
    if (!hosts[0]) {
        snprintf(m->errmsg, sizeof m->errmsg, "no ZooKeeper hosts in the URL");
        return -MG_EINVAL;
    }
    struct meta_zk *z = mg_calloc(1, sizeof *z);
    z->m = m;
    z->hosts = mg_strdup(hosts);
    TAILQ_INIT(&z->waiting);
    TAILQ_INIT(&z->inflight);
    TAILQ_INIT(&z->watches);
    z->reinit_ev = event_new(m->base, -1, 0, meta_zk_reinit_cb, z);
    m->impl = z;
    int rc = meta_zk_init_handle(z);
    if (rc < 0) {
        event_free(z->reinit_ev);
        mg_free(z->hosts);
        mg_free(z);
        m->impl = NULL;
    }
    return rc;
}

static int meta_zk_open(struct meta_store *m, const char *arg)
{
    return meta_zk_open_hosts(m, arg);
}

static int meta_zk_open_peer(struct meta_store *m, struct meta_store *peer)
{
    struct meta_zk *pz = peer->impl;
    return meta_zk_open_hosts(m, pz->hosts);
}

static void meta_zk_close(struct meta_store *m)
{
    struct meta_zk *z = m->impl;
    z->closing = true;
    struct zk_op *op, *next;
    while ((op = TAILQ_FIRST(&z->waiting)) != NULL) {
        struct meta_req *req = op->req;
        op->req = NULL;
        meta_watch_free(op->watch);
        meta_zk_op_free(op);
        if (req)
            meta_req_complete_now(req, -MG_ECANCELED);
    }
    for (op = TAILQ_FIRST(&z->inflight); op; op = next) {
        next = TAILQ_NEXT(op, link);
        struct meta_req *req = op->req;
        op->req = NULL;
        mg_event_free(op->timer);
        op->timer = NULL;
        if (req)
            meta_req_complete_now(req, -MG_ECANCELED);
    }
    mg_event_free(z->io_ev);
    z->io_ev = NULL;
    if (z->zh) {
        /* sends closeSession (the server deletes our ephemeral nodes at once) and runs
         * the outstanding completions with ZCLOSING, which free their ops */
        zookeeper_close(z->zh);
        z->zh = NULL;
    }
    while ((op = TAILQ_FIRST(&z->inflight)) != NULL) {
        op->outstanding = 0;
        meta_zk_op_free(op);
    }
    struct meta_watch *w;
    while ((w = TAILQ_FIRST(&z->watches)) != NULL) {
        TAILQ_REMOVE(&z->watches, w, link);
        meta_watch_free(w);
    }
    event_free(z->reinit_ev);
    mg_free(z->hosts);
    mg_free(z);
    m->impl = NULL;
}

const struct meta_ops meta_zk_ops = {
    .name = "zookeeper",
    .open = meta_zk_open,
    .open_peer = meta_zk_open_peer,
    .close = meta_zk_close,
    .get = meta_zk_get,
    .put = meta_zk_put,
    .del = meta_zk_del,
    .children = meta_zk_children,
    .exists = meta_zk_exists,
    .watch = meta_zk_watch,
    .unwatch = meta_zk_unwatch,
};
