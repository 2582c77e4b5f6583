/*
 * meta_int.h - the metadata store's struct bodies, backend table and shared helpers.
 *
 * Only the meta sources and tests/unit/check_meta.c include this header.
 *
 * Layers:
 *   meta.c          URL → backend table, argument checks, the completion queue, watches'
 *                   common part, meta_req_fini.
 *   meta_memory.c   the in-process tree (struct meta_tree) and the "memory" backend; the
 *                   tree is also the core of the embedded backend.
 *   meta_embedded.c the tree plus a write-ahead log and snapshots in a data directory.
 *   meta_zk.c       ZooKeeper through libzookeeper_st driven by the store's event_base.
 *
 * Completion queue: every callback (request completions, watch events, session events)
 * goes through the store's queue and runs from one libevent event, so no user callback
 * ever runs inside a meta call or inside a ZooKeeper client call. A flush runs the items
 * present when it started, in order; the backend's before_flush hook runs first (embedded:
 * the group fdatasync that makes every queued mutation durable).
 */
#ifndef MG_META_INT_H
#define MG_META_INT_H

#include "meta/meta.h"
#include "util/map.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

struct event;

/* ---- backends ----------------------------------------------------------------------- */

/* A backend. NULL ops return -MG_ENOTSUP. Ops run after meta.c checked the arguments
 * (valid path, version/flag combinations, store not closed) and reset req's results. */
struct meta_ops {
    const char *name;
    /* arg: the URL after the scheme ("" for "memory"/"embedded", the host string for zk) */
    int (*open)(struct meta_store *m, const char *arg);
    int (*open_peer)(struct meta_store *m, struct meta_store *peer);
    /* Complete in-flight requests with -MG_ECANCELED (meta_req_complete_now), free the
     * watches the backend holds (queued ones are meta.c's), free impl. */
    void (*close)(struct meta_store *m);
    int (*get)(struct meta_store *m, const char *path, struct meta_req *req);
    int (*put)(struct meta_store *m, const char *path, const void *value, size_t len,
               int64_t expected_version, int flags, struct meta_req *req);
    int (*del)(struct meta_store *m, const char *path, int64_t expected_version,
               struct meta_req *req);
    int (*children)(struct meta_store *m, const char *path, struct meta_req *req);
    int (*exists)(struct meta_store *m, const char *path, struct meta_req *req);
    /* Register w (meta.c filled path, children, cb, data). */
    int (*watch)(struct meta_store *m, struct meta_watch *w);
    /* Drop the backend's references to w, which has not fired; meta.c frees it. */
    void (*unwatch)(struct meta_store *m, struct meta_watch *w);
    /* Runs at the start of each queue flush. Returns 0, or <0 to fail every durable item
     * of this flush with that status. */
    int (*before_flush)(struct meta_store *m);
};

extern const struct meta_ops meta_memory_ops;
extern const struct meta_ops meta_embedded_ops;
extern const struct meta_ops meta_zk_ops;

/* ---- completion queue ---------------------------------------------------------------- */

enum meta_qkind {
    META_Q_REQ = 0,
    META_Q_WATCH,
    META_Q_SESSION,
};

struct meta_qitem {
    TAILQ_ENTRY(meta_qitem) link;
    enum meta_qkind kind;
    uint64_t seq;             /* push order: a flush runs only what was queued before it */
    bool durable;             /* REQ: the status holds only if before_flush succeeds */
    bool embedded;            /* part of a struct meta_watch: not freed by the queue */
    int status;               /* REQ: status; WATCH: event; SESSION: event */
    struct meta_req *req;     /* REQ: borrowed (the caller's) */
    struct meta_watch *watch; /* WATCH: the watch, owned by the queue while queued */
};
TAILQ_HEAD(meta_qhead, meta_qitem);

enum meta_watch_state {
    META_W_NEW = 0,  /* being set up */
    META_W_ARMED,    /* held by the backend */
    META_W_QUEUED,   /* fired: in the store's queue */
    META_W_RUNNING,  /* its callback is running */
    META_W_CANCELED, /* zk: unwatched while its registration is in flight */
};

/* A watch: the common part, plus the backend's links. */
struct meta_watch {
    struct meta_store *m; /* borrowed: the store it belongs to */
    char *path;           /* owned */
    bool children;
    meta_watch_cb cb;
    void *data;
    enum meta_watch_state state;
    struct meta_qitem q;           /* used while queued */
    TAILQ_ENTRY(meta_watch) link;  /* backend's list (memory: per path; zk: per store) */
    struct meta_watch_list *owner; /* memory: the per-path list holding it (borrowed) */
    int zk_stage;                  /* zk: registration stage */
    void *zk_op;                   /* zk: its place in the waiting queue (borrowed) */
};
TAILQ_HEAD(meta_watch_list, meta_watch);

struct meta_store {
    const struct meta_ops *ops;
    void *impl;              /* owned by the backend */
    struct mg_loop *loop;    /* borrowed: clock and timers */
    struct event_base *base; /* borrowed: loop's */
    struct meta_options o;   /* copy; url and data_dir point at the owned copies below */
    char *url;               /* owned */
    char *data_dir;          /* owned, may be NULL */
    struct meta_qhead queue; /* pending callbacks, in order */
    uint64_t qseq;           /* last seq given to a queue item */
    struct event *flush_ev;  /* owned: runs the queue */
    bool closed;             /* meta_close ran */
    bool offline;            /* meta_set_offline: every call fails (tests: a crashed broker) */
    int dispatch_depth;      /* > 0 while a callback of this store runs */
    bool free_pending;       /* meta_close ran inside a callback: free on return */
    char errmsg[256];
};

/* Queue req's completion with status (durable: depends on before_flush). */
void meta_req_complete(struct meta_store *m, struct meta_req *req, int status, bool durable);
/* Run req's callback now (only meta_close paths, for -MG_ECANCELED). */
void meta_req_complete_now(struct meta_req *req, int status);
/* Queue w's event; w must be detached from the backend (state ARMED or NEW). */
void meta_watch_fire(struct meta_watch *w, enum meta_watch_event ev);
/* Queue a session event for the store's session_cb. */
void meta_session_event(struct meta_store *m, enum meta_session_event ev);
/* Free a watch that is in no backend list and not queued. */
void meta_watch_free(struct meta_watch *w);

/* Path helpers. */
bool meta_path_valid(const char *path, bool sequential_prefix);
/* Length of the parent's path ("/a/b" → 2, "/a" → 1 meaning "/"); 0 for "/". */
size_t meta_path_parent_len(const char *path);
/* Copy children names into req (sorted); takes ownership of names[] and each name. */
void meta_req_set_children(struct meta_req *req, char **names, int n);

/* ---- the tree (meta_memory.c) -------------------------------------------------------- */

struct meta_node {
    char *name;               /* owned; "" for the root */
    struct meta_node *parent; /* borrowed; NULL for the root */
    struct mg_map children;   /* name → struct meta_node * (owned) */
    char *value;              /* owned, NUL-terminated copy; may be NULL when len == 0 */
    size_t len;
    int64_t version, ctime_ms, mtime_ms;
    uint64_t seq;   /* next sequential suffix for a child */
    uint64_t owner; /* session id of an ephemeral node; 0 = persistent */
};

enum meta_effect_kind {
    META_EFFECT_CREATE = 0, /* node created (n); parent's seq is n->parent->seq */
    META_EFFECT_SET,        /* node's value/version/mtime changed */
    META_EFFECT_DELETE,     /* node at path removed (n is still valid during the call) */
    META_EFFECT_BEFORE_SET, /* node n is about to change (SET follows): its current state */
};
/* Called for every change a tree operation makes, in order (embedded: logs it). */
typedef void (*meta_effect_fn)(void *arg, enum meta_effect_kind kind, const char *path,
                               const struct meta_node *n, bool sequential);

struct meta_tree {
    int refs;
    const struct mg_loop *clock; /* borrowed: the loop of the store that made it (its peers
                                    share it); stamps ctime/mtime */
    struct meta_node *root;      /* owned */
    struct mg_map watches; /* path → struct meta_watch_list * (owned lists, borrowed watches) */
    uint64_t next_session;
    meta_effect_fn effect; /* may be NULL */
    void *effect_arg;
};

/* One session on a tree: the impl of a memory store, first member of an embedded one. */
struct meta_mem {
    struct meta_store *m;   /* borrowed back pointer */
    struct meta_tree *tree; /* one reference */
    uint64_t session;
    /* embedded: the tree holds changes not yet synced. Reads then complete as "durable":
     * if the sync fails (and the changes are undone) they fail too, so no answer ever
     * reflects a change that was not stored. */
    bool unsynced;
};

struct meta_tree *meta_tree_new(const struct mg_loop *clock);
void meta_tree_unref(struct meta_tree *t);
struct meta_node *meta_tree_lookup(struct meta_tree *t, const char *path);
void meta_stat_of(const struct meta_node *n, struct meta_stat *st);
/* Apply a put or delete as session `session` (ZooKeeper rules, see meta.h); fills req's
 * stat/path, queues watch events and calls the effect hook. Returns the status. */
int meta_tree_put(struct meta_tree *t, uint64_t session, const char *path, const void *value,
                  size_t len, int64_t expected_version, int flags, struct meta_req *req);
int meta_tree_delete(struct meta_tree *t, const char *path, int64_t expected_version);
/* Undo one change the disk refused (embedded), newest first: no effect hook; the watches
 * of the path fire as for the opposite change. -MG_EIO if the tree does not match. */
int meta_tree_undo_create(struct meta_tree *t, const char *path, uint64_t parent_seq);
int meta_tree_undo_set(struct meta_tree *t, const char *path, const void *value, size_t len,
                       int64_t version, int64_t mtime_ms);
int meta_tree_undo_delete(struct meta_tree *t, const char *path, const struct meta_node *was);
/* Replay (no watches, no effect hook): 0 or -MG_EIO on an inconsistency. */
int meta_tree_apply_create(struct meta_tree *t, const char *path, const void *value, size_t len,
                           int64_t ctime_ms, uint64_t owner, uint64_t parent_seq);
int meta_tree_apply_set(struct meta_tree *t, const char *path, const void *value, size_t len,
                        int64_t version, int64_t mtime_ms);
/* Replay/snapshot load: set every field of an existing (or the root) or new node. */
int meta_tree_apply_node(struct meta_tree *t, const char *path, const void *value, size_t len,
                         int64_t version, int64_t ctime_ms, int64_t mtime_ms, uint64_t seq);
/* Delete every ephemeral node owned by session (0 = any session), firing watches. */
void meta_tree_drop_ephemerals(struct meta_tree *t, uint64_t session);
/* Visit nodes in pre-order (parents first). Returns the first nonzero fn result. */
int meta_tree_walk(struct meta_tree *t,
                   int (*fn)(void *arg, const char *path, const struct meta_node *n), void *arg);

/* The memory backend's ops on a session, shared with the embedded backend. */
int meta_mem_attach(struct meta_mem *s, struct meta_store *m, struct meta_tree *t);
void meta_mem_detach(struct meta_mem *s);
int meta_mem_get(struct meta_store *m, const char *path, struct meta_req *req);
int meta_mem_children(struct meta_store *m, const char *path, struct meta_req *req);
int meta_mem_exists(struct meta_store *m, const char *path, struct meta_req *req);
int meta_mem_watch(struct meta_store *m, struct meta_watch *w);
void meta_mem_unwatch(struct meta_store *m, struct meta_watch *w);

/* ---- test hooks ----------------------------------------------------------------------- */

/* Make every later call on m fail synchronously with -MG_ECLOSED (on = true), as for a
 * process that died: what m already accepted still completes. Tests and the simulation use
 * it to crash a broker, then free its objects, then meta_close m. */
void meta_set_offline(struct meta_store *m, bool on);

/* ---- embedded: test hooks ------------------------------------------------------------- */

/* Fault injection into an embedded store's file I/O (tests). fn runs before each write
 * (op "write"; lowering *len writes that many bytes first, a partial write), each
 * fdatasync/fsync (op "sync") and ftruncate (op "truncate"); it returns 0 to go on or an
 * errno to fail with. fn NULL removes the hook. */
typedef int (*meta_emb_fault_fn)(void *arg, const char *op, size_t *len);
void meta_embedded_set_fault(struct meta_store *m, meta_emb_fault_fn fn, void *arg);
/* The same hook for every embedded store opened from now on, from its open (tests). */
void meta_embedded_set_open_fault(meta_emb_fault_fn fn, void *arg);
/* After a failure that needs the files rewritten, the store tries again at most once per
 * this interval (default 1000 ms; tests use 0). */
void meta_embedded_set_retry_ms(struct meta_store *m, int ms);

#endif
