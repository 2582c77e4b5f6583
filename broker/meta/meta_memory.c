/*
 * meta_memory.c - the in-process tree and the "memory" backend (not durable).
 *
 * The tree (struct meta_tree) holds nodes with ZooKeeper's rules: versions from 0, parents
 * before children, no children under ephemeral nodes, a per-parent counter for sequential
 * names, one-shot data and children watches kept per path. It is shared by every session
 * opened on it (meta_open_peer), and it is the core of the embedded backend, which sees
 * every change through the effect hook and logs it.
 *
 * Happy path: an operation is applied to the tree at once, watch events are queued to the
 * stores their watches belong to, and the completion is queued to the calling store — so
 * a watcher always hears of a change before the writer's callback of a later request.
 *
 * Failure modes: only the status codes of meta.h; there is no I/O. Closing a session
 * removes its watches, then deletes its ephemeral nodes (firing the other sessions'
 * watches), then drops its tree reference.
 */
#include "meta/meta_int.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"
#include "util/loop.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* ---- nodes ---------------------------------------------------------------------------- */

static struct meta_node *meta_mem_node_new(struct meta_node *parent, const char *name, size_t nlen)
{
    struct meta_node *n = mg_calloc(1, sizeof *n);
    n->name = mg_strndup(name, nlen);
    n->parent = parent;
    mg_map_init(&n->children);
    if (parent)
        mg_map_put(&parent->children, n->name, nlen, n);
    return n;
}

static void meta_mem_node_set_value(struct meta_node *n, const void *value, size_t len)
{
    mg_free(n->value);
    n->value = NULL;
    n->len = len;
    if (len > 0) {
        n->value = mg_malloc(len + 1);
        memcpy(n->value, value, len);
        n->value[len] = '\0';
    }
}

static void meta_mem_node_free(void *p)
{
    struct meta_node *n = p;
    mg_map_fini_free(&n->children, meta_mem_node_free);
    mg_free(n->name);
    mg_free(n->value);
    mg_free(n);
}

/* Unlink a childless node from its parent and free it. */
static void meta_mem_node_remove(struct meta_node *n)
{
    MG_ASSERT(n->parent && n->children.count == 0);
    mg_map_del(&n->parent->children, n->name, strlen(n->name));
    meta_mem_node_free(n);
}

void meta_stat_of(const struct meta_node *n, struct meta_stat *st)
{
    st->version = n->version;
    st->ephemeral = n->owner != 0;
    st->ctime_ms = n->ctime_ms;
    st->mtime_ms = n->mtime_ms;
    st->num_children = (int)n->children.count;
}

/* ---- the tree ------------------------------------------------------------------------- */

struct meta_tree *meta_tree_new(const struct mg_loop *clock)
{
    struct meta_tree *t = mg_calloc(1, sizeof *t);
    t->refs = 1;
    t->clock = clock;
    t->root = meta_mem_node_new(NULL, "", 0);
    mg_map_init(&t->watches);
    t->next_session = 1;
    return t;
}

static void meta_mem_watch_list_free(void *p)
{
    struct meta_watch_list *l = p;
    MG_ASSERT(TAILQ_EMPTY(l)); /* every session removed its watches */
    mg_free(l);
}

void meta_tree_unref(struct meta_tree *t)
{
    if (!t || --t->refs > 0)
        return;
    mg_map_fini_free(&t->watches, meta_mem_watch_list_free);
    meta_mem_node_free(t->root);
    mg_free(t);
}

/* Look up len bytes of path ("/" or "/a/b"). */
static struct meta_node *meta_mem_lookup_n(struct meta_tree *t, const char *path, size_t len)
{
    struct meta_node *n = t->root;
    size_t i = 1;
    while (i < len && n) {
        const char *c = path + i;
        const char *e = memchr(c, '/', len - i);
        size_t clen = e ? (size_t)(e - c) : len - i;
        n = mg_map_get(&n->children, c, clen);
        i += clen + 1;
    }
    return n;
}

struct meta_node *meta_tree_lookup(struct meta_tree *t, const char *path)
{
    return meta_mem_lookup_n(t, path, strlen(path));
}

/* Queue the watches on path that match: which bit 1 = data watches, 2 = children. */
static void meta_mem_tree_fire(struct meta_tree *t, const char *path, int which,
                               enum meta_watch_event ev)
{
    struct meta_watch_list *l = mg_map_get_str(&t->watches, path);
    if (!l)
        return;
    struct meta_watch *w, *next;
    for (w = TAILQ_FIRST(l); w; w = next) {
        next = TAILQ_NEXT(w, link);
        if ((w->children && (which & 2)) || (!w->children && (which & 1))) {
            TAILQ_REMOVE(l, w, link);
            w->owner = NULL;
            meta_watch_fire(w, ev);
        }
    }
    if (TAILQ_EMPTY(l)) {
        mg_map_del_str(&t->watches, path);
        mg_free(l);
    }
}

static void meta_mem_tree_fire_parent(struct meta_tree *t, const char *path)
{
    size_t plen = meta_path_parent_len(path);
    if (plen == 0)
        return;
    char *pp = mg_strndup(path, plen);
    meta_mem_tree_fire(t, pp, 2, META_WATCH_CHILDREN);
    mg_free(pp);
}

static void meta_mem_effect(struct meta_tree *t, enum meta_effect_kind kind, const char *path,
                            const struct meta_node *n, bool sequential)
{
    if (t->effect)
        t->effect(t->effect_arg, kind, path, n, sequential);
}

/* Create a child of parent named name, fire watches and report the effect. */
static struct meta_node *meta_mem_tree_create(struct meta_tree *t, struct meta_node *parent,
                                              const char *path, const char *name, const void *value,
                                              size_t len, uint64_t owner, bool sequential)
{
    struct meta_node *n = meta_mem_node_new(parent, name, strlen(name));
    meta_mem_node_set_value(n, value, len);
    n->ctime_ms = n->mtime_ms = mg_loop_wall_ms(t->clock);
    n->owner = owner;
    meta_mem_effect(t, META_EFFECT_CREATE, path, n, sequential);
    meta_mem_tree_fire(t, path, 3, META_WATCH_CREATED);
    meta_mem_tree_fire_parent(t, path);
    return n;
}

/* Create the missing ancestors of the node whose parent path is ppath[0..plen). */
static int meta_mem_tree_create_parents(struct meta_tree *t, const char *ppath, size_t plen,
                                        struct meta_node **out)
{
    struct meta_node *n = t->root;
    size_t i = 1;
    while (i < plen) {
        const char *c = ppath + i;
        const char *e = memchr(c, '/', plen - i);
        size_t clen = e ? (size_t)(e - c) : plen - i;
        struct meta_node *child = mg_map_get(&n->children, c, clen);
        if (!child) {
            if (n->owner)
                return -MG_ENOTALLOWED;
            char *sub = mg_strndup(ppath, i + clen);
            char *name = mg_strndup(c, clen);
            child = meta_mem_tree_create(t, n, sub, name, NULL, 0, 0, false);
            mg_free(name);
            mg_free(sub);
        }
        n = child;
        i += clen + 1;
    }
    *out = n;
    return 0;
}

int meta_tree_put(struct meta_tree *t, uint64_t session, const char *path, const void *value,
                  size_t len, int64_t expected_version, int flags, struct meta_req *req)
{
    bool seq = (flags & META_SEQUENTIAL) != 0;
    if (!seq) {
        struct meta_node *n = meta_tree_lookup(t, path);
        if (n) {
            if (expected_version == META_VERSION_NONE)
                return -MG_EEXIST;
            if (expected_version >= 0 && n->version != expected_version)
                return -MG_EBUSY;
            meta_mem_effect(t, META_EFFECT_BEFORE_SET, path, n, false);
            meta_mem_node_set_value(n, value, len);
            n->version++;
            n->mtime_ms = mg_loop_wall_ms(t->clock);
            meta_mem_effect(t, META_EFFECT_SET, path, n, false);
            meta_mem_tree_fire(t, path, 1, META_WATCH_CHANGED);
            if (req) {
                meta_stat_of(n, &req->stat);
                req->path = mg_strdup(path);
            }
            return 0;
        }
        if (expected_version >= 0)
            return -MG_ENOTFOUND;
    }
    /* create: the parent is everything before the last '/' ("/" for "/x" and for "/") */
    const char *slash = strrchr(path, '/');
    size_t plen = slash == path ? 1 : (size_t)(slash - path);
    struct meta_node *parent = meta_mem_lookup_n(t, path, plen);
    if (!parent) {
        if (!(flags & META_CREATE_PARENTS))
            return -MG_ENOTFOUND;
        int rc = meta_mem_tree_create_parents(t, path, plen, &parent);
        if (rc < 0)
            return rc;
    }
    if (parent->owner)
        return -MG_ENOTALLOWED;
    char *full, *name;
    if (seq) {
        full = mg_asprintf("%s%010" PRIu64, path, parent->seq);
        parent->seq++;
    } else {
        full = mg_strdup(path);
    }
    name = strrchr(full, '/') + 1;
    if (mg_map_get_str(&parent->children, name)) {
        mg_free(full); /* a sequential name taken by a plain create */
        return -MG_EEXIST;
    }
    uint64_t owner = (flags & META_EPHEMERAL) ? session : 0;
    struct meta_node *n = meta_mem_tree_create(t, parent, full, name, value, len, owner, seq);
    if (req) {
        meta_stat_of(n, &req->stat);
        req->path = full;
    } else {
        mg_free(full);
    }
    return 0;
}

int meta_tree_delete(struct meta_tree *t, const char *path, int64_t expected_version)
{
    struct meta_node *n = meta_tree_lookup(t, path);
    if (!n)
        return -MG_ENOTFOUND;
    if (!n->parent)
        return -MG_ENOTALLOWED;
    if (expected_version >= 0 && n->version != expected_version)
        return -MG_EBUSY;
    if (n->children.count > 0)
        return -MG_ENOTALLOWED;
    meta_mem_effect(t, META_EFFECT_DELETE, path, n, false);
    meta_mem_node_remove(n);
    meta_mem_tree_fire(t, path, 3, META_WATCH_DELETED);
    meta_mem_tree_fire_parent(t, path);
    return 0;
}

/* ---- undo (embedded: a change the disk refused) ------------------------------------------ */

int meta_tree_undo_create(struct meta_tree *t, const char *path, uint64_t parent_seq)
{
    struct meta_node *n = meta_tree_lookup(t, path);
    if (!n || !n->parent || n->children.count > 0)
        return -MG_EIO;
    n->parent->seq = parent_seq;
    meta_mem_node_remove(n);
    meta_mem_tree_fire(t, path, 3, META_WATCH_DELETED);
    meta_mem_tree_fire_parent(t, path);
    return 0;
}

/* The new, empty node at path (replaying a log or an undo): NULL when its parent is
 * missing or already has it, or (parent_not_ephemeral) when the parent is ephemeral. */
static struct meta_node *meta_mem_new_child(struct meta_tree *t, const char *path,
                                            bool parent_not_ephemeral)
{
    size_t plen = meta_path_parent_len(path);
    struct meta_node *parent = plen ? meta_mem_lookup_n(t, path, plen) : NULL;
    const char *name = strrchr(path, '/') + 1;
    if (!parent || (parent_not_ephemeral && parent->owner) ||
        mg_map_get_str(&parent->children, name))
        return NULL;
    return meta_mem_node_new(parent, name, strlen(name));
}

int meta_tree_undo_set(struct meta_tree *t, const char *path, const void *value, size_t len,
                       int64_t version, int64_t mtime_ms)
{
    int rc = meta_tree_apply_set(t, path, value, len, version, mtime_ms);
    if (rc == 0)
        meta_mem_tree_fire(t, path, 1, META_WATCH_CHANGED);
    return rc;
}

int meta_tree_undo_delete(struct meta_tree *t, const char *path, const struct meta_node *was)
{
    struct meta_node *n = meta_mem_new_child(t, path, false);
    if (!n)
        return -MG_EIO;
    meta_mem_node_set_value(n, was->value, was->len);
    n->version = was->version;
    n->ctime_ms = was->ctime_ms;
    n->mtime_ms = was->mtime_ms;
    n->seq = was->seq;
    n->owner = was->owner;
    meta_mem_tree_fire(t, path, 3, META_WATCH_CREATED);
    meta_mem_tree_fire_parent(t, path);
    return 0;
}

int meta_tree_apply_create(struct meta_tree *t, const char *path, const void *value, size_t len,
                           int64_t ctime_ms, uint64_t owner, uint64_t parent_seq)
{
    struct meta_node *n = meta_mem_new_child(t, path, true);
    if (!n)
        return -MG_EIO;
    meta_mem_node_set_value(n, value, len);
    n->ctime_ms = n->mtime_ms = ctime_ms;
    n->owner = owner;
    if (n->parent->seq < parent_seq)
        n->parent->seq = parent_seq;
    return 0;
}

int meta_tree_apply_set(struct meta_tree *t, const char *path, const void *value, size_t len,
                        int64_t version, int64_t mtime_ms)
{
    struct meta_node *n = meta_tree_lookup(t, path);
    if (!n)
        return -MG_EIO;
    meta_mem_node_set_value(n, value, len);
    n->version = version;
    n->mtime_ms = mtime_ms;
    return 0;
}

int meta_tree_apply_node(struct meta_tree *t, const char *path, const void *value, size_t len,
                         int64_t version, int64_t ctime_ms, int64_t mtime_ms, uint64_t seq)
{
    struct meta_node *n;
    if (strcmp(path, "/") == 0) {
        n = t->root;
    } else {
        n = meta_mem_new_child(t, path, false);
        if (!n)
            return -MG_EIO;
    }
    meta_mem_node_set_value(n, value, len);
    n->version = version;
    n->ctime_ms = ctime_ms;
    n->mtime_ms = mtime_ms;
    n->seq = seq;
    return 0;
}

/* Pre-order walk with a growing path buffer. */
struct walk {
    char *buf;
    size_t cap;
    int (*fn)(void *arg, const char *path, const struct meta_node *n);
    void *arg;
};

static int meta_mem_walk_node(struct walk *w, size_t len, const struct meta_node *n)
{
    int rc = w->fn(w->arg, len ? w->buf : "/", n);
    if (rc)
        return rc;
    size_t pos = 0;
    const char *key;
    size_t klen;
    void *v;
    while (mg_map_next(&n->children, &pos, &key, &klen, &v)) {
        if (len + klen + 2 > w->cap) {
            w->cap = (len + klen + 2) * 2;
            w->buf = mg_realloc(w->buf, w->cap);
        }
        w->buf[len] = '/';
        memcpy(w->buf + len + 1, key, klen);
        w->buf[len + 1 + klen] = '\0';
        rc = meta_mem_walk_node(w, len + 1 + klen, v);
        if (rc)
            return rc;
        w->buf[len] = '\0';
    }
    return 0;
}

int meta_tree_walk(struct meta_tree *t,
                   int (*fn)(void *arg, const char *path, const struct meta_node *n), void *arg)
{
    struct walk w = {.buf = mg_malloc(256), .cap = 256, .fn = fn, .arg = arg};
    w.buf[0] = '\0';
    int rc = meta_mem_walk_node(&w, 0, t->root);
    mg_free(w.buf);
    return rc;
}

struct eph_collect {
    uint64_t session;
    char **paths;
    size_t n, cap;
};

static int meta_mem_collect_ephemeral(void *arg, const char *path, const struct meta_node *n)
{
    struct eph_collect *c = arg;
    if (n->owner && (c->session == 0 || n->owner == c->session)) {
        if (c->n == c->cap) {
            c->cap = c->cap ? c->cap * 2 : 16;
            c->paths = mg_realloc(c->paths, c->cap * sizeof *c->paths);
        }
        c->paths[c->n++] = mg_strdup(path);
    }
    return 0;
}

void meta_tree_drop_ephemerals(struct meta_tree *t, uint64_t session)
{
    struct eph_collect c = {.session = session};
    meta_tree_walk(t, meta_mem_collect_ephemeral, &c);
    for (size_t i = 0; i < c.n; i++) {
        meta_tree_delete(t, c.paths[i], META_VERSION_ANY);
        mg_free(c.paths[i]);
    }
    mg_free(c.paths);
}

/* ---- sessions: the memory backend, shared with embedded ------------------------------- */

int meta_mem_attach(struct meta_mem *s, struct meta_store *m, struct meta_tree *t)
{
    s->m = m;
    s->tree = t;
    t->refs++;
    s->session = t->next_session++;
    return 0;
}

/* Remove this session's watches from the tree (meta.c frees queued ones). */
static void meta_mem_drop_watches(struct meta_mem *s)
{
    struct meta_tree *t = s->tree;
    size_t pos = 0;
    const char *key;
    size_t klen;
    void *v;
    while (mg_map_next(&t->watches, &pos, &key, &klen, &v)) {
        struct meta_watch_list *l = v;
        struct meta_watch *w, *next;
        for (w = TAILQ_FIRST(l); w; w = next) {
            next = TAILQ_NEXT(w, link);
            if (w->m == s->m) {
                TAILQ_REMOVE(l, w, link);
                meta_watch_free(w);
            }
        }
        if (TAILQ_EMPTY(l)) {
            mg_map_del(&t->watches, key, klen);
            mg_free(l);
        }
    }
}

void meta_mem_detach(struct meta_mem *s)
{
    if (!s->tree)
        return;
    meta_mem_drop_watches(s);
    meta_tree_drop_ephemerals(s->tree, s->session);
    meta_tree_unref(s->tree);
    s->tree = NULL;
}

static struct meta_mem *meta_mem_of(struct meta_store *m)
{
    return m->impl;
}

/* The reads: path's node, filled into req by fill (NULL: only its stat), or ENOTFOUND. */
static int meta_mem_read(struct meta_store *m, const char *path, struct meta_req *req,
                         void (*fill)(const struct meta_node *n, struct meta_req *req))
{
    struct meta_node *n = meta_tree_lookup(meta_mem_of(m)->tree, path);
    if (n) {
        if (fill)
            fill(n, req);
        meta_stat_of(n, &req->stat);
    }
    meta_req_complete(m, req, n ? 0 : -MG_ENOTFOUND, meta_mem_of(m)->unsynced);
    return 0;
}

static void meta_mem_fill_value(const struct meta_node *n, struct meta_req *req)
{
    req->value = mg_malloc(n->len + 1);
    if (n->len)
        memcpy(req->value, n->value, n->len);
    req->value[n->len] = '\0';
    req->len = n->len;
}

static void meta_mem_fill_children(const struct meta_node *n, struct meta_req *req)
{
    int cnt = (int)n->children.count;
    char **names = mg_calloc(cnt ? (size_t)cnt : 1, sizeof *names);
    size_t pos = 0;
    const char *key;
    size_t klen;
    int i = 0;
    while (mg_map_next(&n->children, &pos, &key, &klen, NULL))
        names[i++] = mg_strndup(key, klen);
    meta_req_set_children(req, names, i);
}

int meta_mem_get(struct meta_store *m, const char *path, struct meta_req *req)
{
    return meta_mem_read(m, path, req, meta_mem_fill_value);
}

int meta_mem_children(struct meta_store *m, const char *path, struct meta_req *req)
{
    return meta_mem_read(m, path, req, meta_mem_fill_children);
}

int meta_mem_exists(struct meta_store *m, const char *path, struct meta_req *req)
{
    return meta_mem_read(m, path, req, NULL);
}

int meta_mem_watch(struct meta_store *m, struct meta_watch *w)
{
    struct meta_tree *t = meta_mem_of(m)->tree;
    struct meta_watch_list *l = mg_map_get_str(&t->watches, w->path);
    if (!l) {
        l = mg_malloc(sizeof *l);
        TAILQ_INIT(l);
        mg_map_put_str(&t->watches, w->path, l);
    }
    TAILQ_INSERT_TAIL(l, w, link);
    w->owner = l;
    w->state = META_W_ARMED;
    return 0;
}

void meta_mem_unwatch(struct meta_store *m, struct meta_watch *w)
{
    struct meta_tree *t = meta_mem_of(m)->tree;
    struct meta_watch_list *l = w->owner;
    if (!l)
        return;
    TAILQ_REMOVE(l, w, link);
    w->owner = NULL;
    if (TAILQ_EMPTY(l)) {
        mg_map_del_str(&t->watches, w->path);
        mg_free(l);
    }
}

static int meta_mem_put(struct meta_store *m, const char *path, const void *value, size_t len,
                        int64_t expected_version, int flags, struct meta_req *req)
{
    struct meta_mem *s = meta_mem_of(m);
    int rc = meta_tree_put(s->tree, s->session, path, value, len, expected_version, flags, req);
    meta_req_complete(m, req, rc, false);
    return 0;
}

static int meta_mem_del(struct meta_store *m, const char *path, int64_t expected_version,
                        struct meta_req *req)
{
    int rc = meta_tree_delete(meta_mem_of(m)->tree, path, expected_version);
    meta_req_complete(m, req, rc, false);
    return 0;
}

static int meta_mem_open(struct meta_store *m, const char *arg)
{
    struct meta_mem *s = mg_calloc(1, sizeof *s);
    struct meta_tree *t = meta_tree_new(m->loop);
    meta_mem_attach(s, m, t);
    meta_tree_unref(t); /* the session holds the only reference */
    m->impl = s;
    return 0;
}

static int meta_mem_open_peer(struct meta_store *m, struct meta_store *peer)
{
    struct meta_mem *s = mg_calloc(1, sizeof *s);
    meta_mem_attach(s, m, meta_mem_of(peer)->tree);
    m->impl = s;
    return 0;
}

static void meta_mem_close(struct meta_store *m)
{
    struct meta_mem *s = meta_mem_of(m);
    meta_mem_detach(s);
    mg_free(s);
}

const struct meta_ops meta_memory_ops = {
    .name = "memory",
    .open = meta_mem_open,
    .open_peer = meta_mem_open_peer,
    .close = meta_mem_close,
    .get = meta_mem_get,
    .put = meta_mem_put,
    .del = meta_mem_del,
    .children = meta_mem_children,
    .exists = meta_mem_exists,
    .watch = meta_mem_watch,
    .unwatch = meta_mem_unwatch,
};
