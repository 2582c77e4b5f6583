/*
 * meta.h - the metadata store interface: versioned values in a tree of paths, children,
 * watches, ephemeral keys bound to the client's session, sequential keys.
 *
 * Backends (picked by URL from one table, meta.c):
 *   "embedded"                 in process, durable under a data directory (standalone)
 *   "zk:host:port[,host:port...][/chroot]"   a ZooKeeper ensemble (libzookeeper-st)
 *   "memory"                   in process, not durable (unit tests)
 *
 * Paths are absolute, '/'-separated, without a trailing '/', like ZooKeeper's. Parents
 * must exist before children are created (META_CREATE_PARENTS creates missing ones as
 * empty persistent nodes). Versions start at 0 on create and grow by one per update.
 *
 * Async calls follow docs/style.md §2: a synchronous failure returns <0 and the callback never
 * runs; otherwise the callback runs exactly once, on the loop thread, after the call
 * returned. Closing the store completes pending requests with -MG_ECANCELED.
 */
#ifndef MG_META_H
#define MG_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mg_loop;
struct meta_store;

#define META_VERSION_ANY (-1)  /* put/delete: no version check */
#define META_VERSION_NONE (-2) /* put: create only; -MG_EEXIST if the path exists */

enum meta_flags {
    META_PERSISTENT = 0,
    META_EPHEMERAL = 1 << 0,      /* deleted when this store's session ends */
    META_SEQUENTIAL = 1 << 1,     /* a 10-digit counter is appended to the path (create) */
    META_CREATE_PARENTS = 1 << 2, /* create missing parents as empty persistent nodes */
};

struct meta_stat {
    int64_t version;
    bool ephemeral;
    int64_t ctime_ms, mtime_ms;
    int num_children;
};

/* Session state changes of the store (ZooKeeper: connected, connection lost and back,
 * session expired — every ephemeral key of this store is gone after EXPIRED). */
enum meta_session_event {
    META_SESSION_CONNECTED = 0,
    META_SESSION_DISCONNECTED,
    META_SESSION_RECONNECTED,
    META_SESSION_EXPIRED,
};
typedef void (*meta_session_cb)(struct meta_store *m, enum meta_session_event ev, void *data);

struct meta_options {
    const char *url;            /* see above */
    const char *data_dir;       /* embedded: where the data lives (created if missing) */
    int session_timeout_ms;     /* zookeeper: session timeout (default 30000) */
    int op_timeout_ms;          /* per-operation timeout (default 30000) */
    meta_session_cb session_cb; /* may be NULL; runs on the loop thread, never inside a call */
    void *session_data;
    /* embedded: write a snapshot (and restart the log) once the log passes this many bytes
     * (default 64 MiB), and every snapshot_interval_ms if anything was logged (default
     * 300000; <0 = never on a timer). */
    uint64_t snapshot_log_bytes;
    int snapshot_interval_ms;
};

/* Open a store on loop (borrowed: it must outlive the store; its clock stamps ctime/mtime,
 * its timers run the backend's). Returns 0 and *out, or -MG_EINVAL (unknown URL scheme, with a
 * logged reason) / -MG_EIO (embedded: data dir not creatable/writable, corrupt files) / -MG_EBUSY
 * (embedded: the data dir is already open, by this or another process). For zookeeper, the
 * store starts connecting; operations issued before the session is established wait for it
 * (bounded by op_timeout_ms). Session events: CONNECTED when a session is established;
 * DISCONNECTED/RECONNECTED around a connection loss that kept the session; EXPIRED when
 * the session is gone — the store then opens a new session by itself and reports
 * CONNECTED again. After EXPIRED the caller must re-create its ephemeral keys and re-read
 * what it watched (watches of the old session fire once, as META_WATCH_CHANGED). */
int meta_open(struct mg_loop *loop, const struct meta_options *o, struct meta_store **out);
/* Open a second session on the same data as peer, on peer's loop (o may be NULL:
 * peer's options are used; o->url and o->data_dir are ignored). memory: the two stores
 * share one tree, each with its own ephemeral keys and watches (fakes of several brokers
 * in one test); zookeeper: a new ZooKeeper session on the same ensemble and chroot;
 * embedded: -MG_ENOTSUP (one store owns a data dir). */
int meta_open_peer(struct meta_store *peer, const struct meta_options *o, struct meta_store **out);
/* Close the session (ephemeral keys go) and free. Pending requests complete with
 * -MG_ECANCELED before this returns; queued watch events are dropped. May be called from
 * inside a meta callback of this store (the memory is released when that callback returns).
 * Accepts NULL. */
void meta_close(struct meta_store *m);
/* The backend's name ("memory", "embedded", "zookeeper"). */
const char *meta_backend_name(const struct meta_store *m);
/* Does url name a store that several processes share (ZooKeeper), as opposed to one that
 * lives inside this process ("memory", "embedded", "none")? */
bool meta_url_is_shared(const char *url);

struct meta_req;
typedef void (*meta_cb)(struct meta_req *req, int status);
struct meta_req {
    void *data; /* caller's */
    meta_cb cb; /* set by the call */
    /* results, valid during the callback; owned by the request, freed by meta_req_fini */
    char *value;           /* get: the value (NUL-terminated for convenience) */
    size_t len;            /* get: value length */
    struct meta_stat stat; /* get/put: the node's stat after the operation */
    char **children;       /* children: names (not paths), sorted */
    int n_children;
    char *path; /* put: the created path (sequential keys) */
    void *impl; /* private */
};
/* Free what a completed request holds (call after or inside the callback). Each call
 * overwrites the result fields without freeing them: call meta_req_fini before reusing a
 * request, and start from a zeroed request. */
void meta_req_fini(struct meta_req *req);

/* Status codes: 0, -MG_ENOTFOUND (no such path / parent), -MG_EEXIST (create of an
 * existing path), -MG_EBUSY (version mismatch: BadVersion), -MG_ENOTALLOWED (delete of a
 * node with children, children of an ephemeral), -MG_ETIMEDOUT, -MG_ECLOSED (session
 * expired / store closed), -MG_EIO (zookeeper: connection lost with the request in flight,
 * its outcome unknown; embedded: the log could not be written or synced — the store then
 * refuses every later mutation until reopened), -MG_ECANCELED (meta_close).
 * Synchronous failures (callback never runs): -MG_EINVAL (bad path: not absolute, empty
 * component, trailing '/', "." or ".."; bad version/flags), -MG_ETOOBIG (zookeeper: value
 * over its 1 MB packet limit), -MG_ECLOSED (store closed).
 * Every call records its results in req and completes in order of issue per store; the
 * embedded store completes mutations only after the fdatasync that covers them, and reads
 * issued after a mutation complete after it. */
int meta_get(struct meta_store *m, const char *path, struct meta_req *req, meta_cb cb);
/* Create or update. expected_version: META_VERSION_NONE = create only, META_VERSION_ANY =
 * create or overwrite, >= 0 = update only if the current version matches (-MG_ENOTFOUND
 * if the path is missing). flags apply to creation. META_SEQUENTIAL always creates (the
 * version must be NONE or ANY): path is the prefix ("/ledgers/idgen/ID-"), the counter is
 * per parent and never reused, and req->path returns the created path. req->path is set
 * on every successful put; req->stat is the node's stat after it. */
int meta_put(struct meta_store *m, const char *path, const void *value, size_t len,
             int64_t expected_version, int flags, struct meta_req *req, meta_cb cb);
/* Delete. expected_version: META_VERSION_ANY or >= 0 (-MG_EBUSY on mismatch; checked
 * before emptiness). -MG_ENOTALLOWED for a node with children; the root ("/", the chroot
 * node for zookeeper) is refused synchronously with -MG_ENOTALLOWED. */
int meta_delete(struct meta_store *m, const char *path, int64_t expected_version,
                struct meta_req *req, meta_cb cb);
/* The children's names, sorted bytewise (req->children, n_children) and the node's stat. */
int meta_children(struct meta_store *m, const char *path, struct meta_req *req, meta_cb cb);
/* The node's stat; -MG_ENOTFOUND if it does not exist. */
int meta_exists(struct meta_store *m, const char *path, struct meta_req *req, meta_cb cb);

/* One-shot watch (ZooKeeper semantics). children == false (a data watch): fires once at
 * the node's next creation (CREATED), deletion (DELETED) or data change (CHANGED).
 * children == true: fires once when a child is added or removed (CHILDREN), the node is
 * deleted (DELETED), or — if it did not exist when the watch was set — created (CREATED).
 * The watch is in place before any request issued after this call is served; set it, then
 * read, then act on the event by reading again and re-arming.
 * The callback runs on the loop thread, never inside a meta call. Returns the handle, or
 * NULL (bad path, store closed). The handle stays valid until its callback has returned
 * or until meta_unwatch; after the callback the store frees it (calling meta_unwatch from
 * inside the callback is allowed and does nothing). meta_close frees every watch. */
enum meta_watch_event {
    META_WATCH_CREATED = 0,
    META_WATCH_DELETED,
    META_WATCH_CHANGED,
    META_WATCH_CHILDREN,
};
typedef void (*meta_watch_cb)(struct meta_store *m, const char *path, enum meta_watch_event ev,
                              void *data);
struct meta_watch;
struct meta_watch *meta_watch(struct meta_store *m, const char *path, bool children,
                              meta_watch_cb cb, void *data);
/* Cancel a watch that has not fired: its callback will not run. Accepts NULL. */
void meta_unwatch(struct meta_store *m, struct meta_watch *w);

#endif
