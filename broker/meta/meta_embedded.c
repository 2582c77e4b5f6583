/*
 * meta_embedded.c - the "embedded" backend: the in-process tree, made durable in a data
 * directory by a write-ahead log and snapshots (file formats: broker/meta/README.md).
 *
 * Happy path: a mutation is applied to the tree; the tree's effect hook encodes each change
 * (create, set, delete) as a record [len][crc32c][payload]; the records are appended to
 * meta.log with one write(2) and the completion is queued as "durable". The queue's flush
 * runs before_flush first, which does one fdatasync for every mutation queued since the
 * last one (group commit), then delivers them; a flush that only changed ephemeral nodes
 * (not sequentially) is delivered without a sync (the next open drops them anyway). Once
 * the log passes snapshot_log_bytes (or on the snapshot timer) the whole tree is written to
 * meta.snap.tmp, fsynced and renamed over meta.snap, and a new empty log is started; a
 * generation number in both headers tells which log belongs to which snapshot, so a crash
 * between the two renames is harmless.
 * Open: lock the directory, load the snapshot, replay the log of the same generation (a
 * torn or corrupt tail ends the replay with a warning), drop every ephemeral node (they
 * belonged to the previous run's session), logging their deletes unsynced, and go on
 * appending to the log (meta_emb_open_append); only a torn log is compacted into a new
 * snapshot at open. Sequential counters are part of the snapshot and of every create record.
 * A new store (no snapshot, no record in any log) writes its first log in place unsynced;
 * the first persistent flush syncs the log and then the directory (meta_emb_first_log).
 *
 * Failure modes: data dir not creatable/writable → meta_open -MG_EIO; already open →
 * -MG_EBUSY; a corrupt snapshot, a log newer than the snapshot or a record that does not
 * apply → -MG_EIO (never guess). A failed write or sync never leaves a trace (the file
 * errno becomes the status: ENOSPC/EDQUOT → -MG_ENOSPC, EROFS → -MG_EREADONLY, else -MG_EIO):
 *  - every change applied to the tree since the last sync has an undo record; a failed
 *    log append truncates the partial record away and undoes that change alone; a failed
 *    fdatasync undoes every change since the last sync (newest first) and truncates the log
 *    to its synced length, and the requests of that flush fail — also reads and refusals
 *    answered from the undone changes (their completions are "durable" while unsynced);
 *  - after a failed sync (or a failed truncate, or a new log that cannot be started after
 *    a snapshot was renamed in) the files are rewritten before the next change: a snapshot
 *    of the tree (= what is durable), tried when a change comes, at most once per retry
 *    interval (1 s, doubling per failed attempt up to 30 s); until it succeeds, changes are
 *    refused with the cause. So the store
 *    recovers by itself once space returns, without a restart.
 * A failed snapshot otherwise only logs a warning (the log keeps everything). Watches of
 * undone changes fire (once more) so watchers re-read. The first refusal of an episode is
 * logged, the others counted and reported when writes succeed again.
 * The fdatasync runs on the loop thread: metadata mutations are small and grouped.
 */
#include "meta/meta_int.h"
#include "util/alloc.h"
#include "util/crc.h"
#include "util/err.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/loop.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define EMB_LOG_MAGIC "MGMETLOG"
#define EMB_SNAP_MAGIC "MGMETSNP"
#define EMB_HDR_LEN 16
#define EMB_REC_HDR 8
#define EMB_MAX_RECORD (512u << 20)

enum emb_rec_type {
    EMB_REC_CREATE = 1,
    EMB_REC_SET = 2,
    EMB_REC_DELETE = 3,
    EMB_REC_NODE = 10,
    EMB_REC_END = 11,
};

#define EMB_CREATE_EPHEMERAL 0x01
#define EMB_CREATE_SEQUENTIAL 0x02

/* The owner id that replayed ephemeral nodes get before they are dropped. */
#define EMB_REPLAY_SESSION UINT64_MAX

struct emb_buf {
    uint8_t *p; /* owned */
    size_t len, cap;
};

/* How to take back one change of the tree (the state before it). */
struct emb_undo {
    enum meta_effect_kind kind; /* the change: CREATE, SET (before state) or DELETE */
    char *path;                 /* owned */
    struct meta_node was;       /* SET/DELETE: value (owned), len, version, times, seq, owner */
    uint64_t parent_seq;        /* CREATE: the parent's counter before it */
};

struct meta_emb {
    struct meta_mem mem; /* first member: the memory ops work on the embedded store */
    char *dir;           /* owned */
    int dir_fd, lock_fd, log_fd;
    uint64_t gen;            /* generation of the snapshot and of the current log */
    uint64_t log_bytes;      /* size of meta.log */
    uint64_t synced_bytes;   /* size of meta.log at the last successful sync */
    uint64_t log_records;    /* records in meta.log */
    uint64_t synced_records; /* records in meta.log at the last successful sync */
    bool name_unsynced;      /* meta.log of a new store: its directory entry not yet synced */
    bool dirty;              /* written since the last fdatasync */
    bool durable_dirty;      /* ... and one of those records changed persistent state */
    bool broken;             /* the files must be rewritten (snapshot) before the next change */
    int failed;              /* while broken: the cause, refused changes get it */
    uint64_t retry_at_ms;    /* broken: no rewrite before this (monotonic) */
    int retry_ms;            /* first interval between rewrite attempts (1 s) */
    int retry_cur;           /* the current one: doubles per failed rewrite, up to 30 s */
    int64_t refused;         /* changes refused in the current failure episode */
    struct emb_undo *undo;   /* owned: changes since the last sync, oldest first */
    size_t n_undo, cap_undo;
    struct emb_buf rec;         /* framed records of the operation in progress */
    struct emb_buf payload;     /* scratch */
    struct mg_timer snap_timer; /* snapshot_interval_ms (zeroed when there is none) */
    meta_emb_fault_fn fault;    /* tests */
    void *fault_arg;
};

static meta_emb_fault_fn emb_open_fault; /* meta_embedded_set_open_fault (tests) */
static void *emb_open_fault_arg;

/* ---- encoding ------------------------------------------------------------------------- */

static void meta_emb_buf_reserve(struct emb_buf *b, size_t n)
{
    b->p = mg_grow(b->p, &b->cap, b->len + n, 1, 256);
}

static void meta_emb_put_bytes(struct emb_buf *b, const void *p, size_t n)
{
    meta_emb_buf_reserve(b, n);
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void meta_emb_put_u8(struct emb_buf *b, uint8_t v)
{
    meta_emb_put_bytes(b, &v, 1);
}

/* The low n bytes of v, little-endian. */
static void meta_emb_put_le(struct emb_buf *b, uint64_t v, int n)
{
    uint8_t x[8];
    for (int i = 0; i < n; i++)
        x[i] = (uint8_t)(v >> (8 * i));
    meta_emb_put_bytes(b, x, (size_t)n);
}

static void meta_emb_put_u32(struct emb_buf *b, uint32_t v)
{
    meta_emb_put_le(b, v, 4);
}

static void meta_emb_put_u64(struct emb_buf *b, uint64_t v)
{
    meta_emb_put_le(b, v, 8);
}

static void meta_emb_put_str(struct emb_buf *b, const void *p, size_t n)
{
    meta_emb_put_u32(b, (uint32_t)n);
    meta_emb_put_bytes(b, p, n);
}

/* Frame payload as [u32 len][u32 crc32c(payload)][payload] onto out. */
static void meta_emb_frame(struct emb_buf *out, const struct emb_buf *payload)
{
    meta_emb_put_u32(out, (uint32_t)payload->len);
    meta_emb_put_u32(out, mg_crc32c(0, payload->p, payload->len));
    meta_emb_put_bytes(out, payload->p, payload->len);
}

struct rd {
    const uint8_t *p;
    size_t len, off;
    bool bad;
};

static const uint8_t *meta_emb_get_bytes(struct rd *r, size_t n)
{
    if (r->bad || r->len - r->off < n) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *p = r->p + r->off;
    r->off += n;
    return p;
}

static uint8_t meta_emb_get_u8(struct rd *r)
{
    const uint8_t *p = meta_emb_get_bytes(r, 1);
    return p ? p[0] : 0;
}

/* n bytes, little-endian (0 past the end). */
static uint64_t meta_emb_get_le(struct rd *r, int n)
{
    const uint8_t *p = meta_emb_get_bytes(r, (size_t)n);
    uint64_t v = 0;
    for (int i = 0; p && i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static uint32_t meta_emb_get_u32(struct rd *r)
{
    return (uint32_t)meta_emb_get_le(r, 4);
}

static uint64_t meta_emb_get_u64(struct rd *r)
{
    return meta_emb_get_le(r, 8);
}

/* A length-prefixed string; *out points into the buffer. */
static size_t meta_emb_get_str(struct rd *r, const uint8_t **out)
{
    uint32_t n = meta_emb_get_u32(r);
    *out = meta_emb_get_bytes(r, n);
    return *out ? n : 0;
}

static void meta_emb_undo_clear(struct meta_emb *e);
static void meta_emb_break(struct meta_emb *e, int rc);

/* ---- files ---------------------------------------------------------------------------- */

/* The status for a failed file operation: the cause where callers can act on it. */
static int meta_emb_status(int err)
{
    switch (err) {
    case ENOSPC:
    case EDQUOT:
        return -MG_ENOSPC;
    case EROFS:
        return -MG_EREADONLY;
    default:
        return -MG_EIO;
    }
}

static int meta_emb_errno(struct meta_emb *e, const char *what, const char *name)
{
    int err = errno;
    snprintf(e->mem.m->errmsg, sizeof e->mem.m->errmsg, "%s %s/%s: %s", what, e->dir,
             name ? name : "", strerror(err));
    return meta_emb_status(err);
}

/* The test hook's verdict for op: 0, or -1 with errno set. */
static int meta_emb_fault(struct meta_emb *e, const char *op, size_t *len)
{
    int err = e->fault ? e->fault(e->fault_arg, op, len) : 0;
    if (err == 0)
        return 0;
    errno = err;
    return -1;
}

static int meta_emb_sync(struct meta_emb *e, int fd, bool data_only)
{
    if (meta_emb_fault(e, "sync", NULL) < 0)
        return -1;
    return data_only ? fdatasync(fd) : fsync(fd);
}

/* Cut fd back to len bytes and write from there on. */
static int meta_emb_truncate(struct meta_emb *e, int fd, uint64_t len)
{
    if (meta_emb_fault(e, "truncate", NULL) < 0)
        return -1;
    if (ftruncate(fd, (off_t)len) < 0 || lseek(fd, (off_t)len, SEEK_SET) < 0)
        return -1;
    return 0;
}

/* write(2) all of p, through the test hook (which may make it a partial write). */
static int meta_emb_write_all(struct meta_emb *e, int fd, const void *p, size_t n)
{
    size_t allow = n;
    if (meta_emb_fault(e, "write", &allow) < 0) {
        int err = errno;
        if (allow < n && allow > 0)
            mg_write_all(fd, p, allow);
        errno = err;
        return -1;
    }
    return mg_write_all(fd, p, n);
}

/* Read a whole file; -1 with errno on failure (ENOENT if missing). */
static int meta_emb_read_file(int dir_fd, const char *name, struct emb_buf *out)
{
    int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        close(fd);
        return -1;
    }
    out->len = 0;
    meta_emb_buf_reserve(out, (size_t)st.st_size + 1);
    for (;;) {
        meta_emb_buf_reserve(out, 65536);
        ssize_t r = read(fd, out->p + out->len, out->cap - out->len);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int err = errno;
            close(fd);
            errno = err;
            return -1;
        }
        if (r == 0)
            break;
        out->len += (size_t)r;
    }
    close(fd);
    return 0;
}

static void meta_emb_header(struct emb_buf *b, const char *magic, uint64_t gen)
{
    meta_emb_put_bytes(b, magic, 8);
    meta_emb_put_u64(b, gen);
}

/* Start an empty log of generation gen: write it aside, sync, rename into place. */
static int meta_emb_new_log(struct meta_emb *e, uint64_t gen)
{
    int fd = openat(e->dir_fd, "meta.log.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return meta_emb_errno(e, "cannot create", "meta.log.tmp");
    struct emb_buf h = {0};
    meta_emb_header(&h, EMB_LOG_MAGIC, gen);
    int rc = meta_emb_write_all(e, fd, h.p, h.len);
    mg_free(h.p);
    if (rc < 0 || meta_emb_sync(e, fd, true) < 0) {
        rc = meta_emb_errno(e, "cannot write", "meta.log.tmp");
        close(fd);
        return rc;
    }
    if (renameat(e->dir_fd, "meta.log.tmp", e->dir_fd, "meta.log") < 0 ||
        meta_emb_sync(e, e->dir_fd, false) < 0) {
        rc = meta_emb_errno(e, "cannot rename", "meta.log.tmp");
        close(fd);
        return rc;
    }
    if (e->log_fd >= 0)
        close(e->log_fd);
    e->log_fd = fd;
    e->gen = gen;
    e->log_bytes = e->synced_bytes = EMB_HDR_LEN;
    e->log_records = e->synced_records = 0;
    e->dirty = e->durable_dirty = e->name_unsynced = false;
    return 0;
}

/* The first log of a new store (no snapshot, no log with anything in it): written in place
 * and not synced. Nothing depends on it yet: the first flush with a persistent change syncs
 * it and then its directory entry (name_unsynced), before that change is answered; a crash
 * before then leaves no meta.log or a torn one, which the next open takes for a new store
 * (meta_emb_replay_log), as it is. Saves a new store's open two syncs (file, directory). */
static int meta_emb_first_log(struct meta_emb *e)
{
    int fd = openat(e->dir_fd, "meta.log", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return meta_emb_errno(e, "cannot create", "meta.log");
    struct emb_buf h = {0};
    meta_emb_header(&h, EMB_LOG_MAGIC, 0);
    int rc = meta_emb_write_all(e, fd, h.p, h.len);
    mg_free(h.p);
    if (rc < 0) {
        rc = meta_emb_errno(e, "cannot write", "meta.log");
        close(fd);
        return rc;
    }
    e->log_fd = fd;
    e->gen = 0;
    e->log_bytes = e->synced_bytes = EMB_HDR_LEN;
    e->log_records = e->synced_records = 0;
    e->dirty = e->durable_dirty = false;
    e->name_unsynced = true;
    return 0;
}

struct snap_writer {
    struct meta_emb *e;
    int fd;
    struct emb_buf out;
    uint64_t count;
    int err;
};

static int meta_emb_snap_flush(struct snap_writer *w)
{
    if (w->out.len && meta_emb_write_all(w->e, w->fd, w->out.p, w->out.len) < 0)
        return -1;
    w->out.len = 0;
    return 0;
}

static int meta_emb_snap_node(void *arg, const char *path, const struct meta_node *n)
{
    struct snap_writer *w = arg;
    if (n->owner)
        return 0; /* ephemeral: bound to this run's session */
    struct emb_buf *p = &w->e->payload;
    p->len = 0;
    meta_emb_put_u8(p, EMB_REC_NODE);
    meta_emb_put_u64(p, (uint64_t)n->version);
    meta_emb_put_u64(p, (uint64_t)n->ctime_ms);
    meta_emb_put_u64(p, (uint64_t)n->mtime_ms);
    meta_emb_put_u64(p, n->seq);
    meta_emb_put_str(p, path, strlen(path));
    meta_emb_put_str(p, n->value, n->len);
    meta_emb_frame(&w->out, p);
    w->count++;
    if (w->out.len >= (1u << 20) && meta_emb_snap_flush(w) < 0)
        return -1;
    return 0;
}

/* Write the tree as snapshot gen+1 and start log gen+1. */
static int meta_emb_snapshot(struct meta_emb *e)
{
    uint64_t gen = e->gen + 1;
    struct snap_writer w = {.e = e};
    w.fd = openat(e->dir_fd, "meta.snap.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w.fd < 0)
        return meta_emb_errno(e, "cannot create", "meta.snap.tmp");
    meta_emb_header(&w.out, EMB_SNAP_MAGIC, gen);
    int rc = meta_tree_walk(e->mem.tree, meta_emb_snap_node, &w);
    if (rc == 0) {
        struct emb_buf *p = &e->payload;
        p->len = 0;
        meta_emb_put_u8(p, EMB_REC_END);
        meta_emb_put_u64(p, w.count);
        meta_emb_frame(&w.out, p);
        rc = meta_emb_snap_flush(&w);
    }
    if (rc == 0)
        rc = meta_emb_sync(e, w.fd, false);
    if (rc < 0) {
        rc = meta_emb_errno(e, "cannot write", "meta.snap.tmp");
        close(w.fd);
        unlinkat(e->dir_fd, "meta.snap.tmp", 0);
        mg_free(w.out.p);
        return rc;
    }
    close(w.fd);
    mg_free(w.out.p);
    if (renameat(e->dir_fd, "meta.snap.tmp", e->dir_fd, "meta.snap") < 0 ||
        meta_emb_sync(e, e->dir_fd, false) < 0) {
        rc = meta_emb_errno(e, "cannot rename", "meta.snap.tmp");
        unlinkat(e->dir_fd, "meta.snap.tmp", 0);
        return rc;
    }
    /* The snapshot holds the whole tree, durably: the changes not yet synced are stored. */
    meta_emb_undo_clear(e);
    e->mem.unsynced = false;
    /* From here the old log is obsolete. If the new log cannot be started, later appends
     * would go to a log the next open ignores: rewrite before the next change. */
    rc = meta_emb_new_log(e, gen);
    if (rc < 0) {
        meta_emb_break(e, rc);
        return rc;
    }
    MG_DEBUG("meta", "embedded store %s: snapshot %llu (%llu nodes)", e->dir,
             (unsigned long long)gen, (unsigned long long)w.count);
    return 0;
}

/* ---- the effect hook: changes become log records --------------------------------------- */

static void meta_emb_undo_push(struct meta_emb *e, enum meta_effect_kind kind, const char *path,
                               const struct meta_node *n, uint64_t parent_seq)
{
    if (e->n_undo == e->cap_undo) {
        e->cap_undo = e->cap_undo ? e->cap_undo * 2 : 16;
        e->undo = mg_realloc(e->undo, e->cap_undo * sizeof *e->undo);
    }
    struct emb_undo *u = &e->undo[e->n_undo++];
    memset(u, 0, sizeof *u);
    u->kind = kind;
    u->path = mg_strdup(path);
    u->parent_seq = parent_seq;
    if (kind != META_EFFECT_CREATE) {
        u->was.len = n->len;
        u->was.value = n->len ? mg_strndup(n->value, n->len) : NULL;
        u->was.version = n->version;
        u->was.ctime_ms = n->ctime_ms;
        u->was.mtime_ms = n->mtime_ms;
        u->was.seq = n->seq;
        u->was.owner = n->owner;
    }
}

static void meta_emb_effect(void *arg, enum meta_effect_kind kind, const char *path,
                            const struct meta_node *n, bool sequential)
{
    struct meta_emb *e = arg;
    struct emb_buf *p = &e->payload;
    p->len = 0;
    switch (kind) {
    case META_EFFECT_BEFORE_SET:
        meta_emb_undo_push(e, META_EFFECT_SET, path, n, 0);
        return;
    case META_EFFECT_CREATE:
        meta_emb_undo_push(e, META_EFFECT_CREATE, path, n, n->parent->seq - (sequential ? 1 : 0));
        meta_emb_put_u8(p, EMB_REC_CREATE);
        meta_emb_put_u8(p, (uint8_t)((n->owner ? EMB_CREATE_EPHEMERAL : 0) |
                                     (sequential ? EMB_CREATE_SEQUENTIAL : 0)));
        meta_emb_put_u64(p, (uint64_t)n->ctime_ms);
        meta_emb_put_u64(p, n->parent->seq);
        meta_emb_put_str(p, path, strlen(path));
        meta_emb_put_str(p, n->value, n->len);
        break;
    case META_EFFECT_SET:
        meta_emb_put_u8(p, EMB_REC_SET);
        meta_emb_put_u64(p, (uint64_t)n->version);
        meta_emb_put_u64(p, (uint64_t)n->mtime_ms);
        meta_emb_put_str(p, path, strlen(path));
        meta_emb_put_str(p, n->value, n->len);
        break;
    case META_EFFECT_DELETE:
        meta_emb_undo_push(e, META_EFFECT_DELETE, path, n, 0);
        meta_emb_put_u8(p, EMB_REC_DELETE);
        meta_emb_put_str(p, path, strlen(path));
        break;
    }
    /* Ephemeral nodes are dropped at every open, so a record that only creates (without a
     * sequential number: the parent's counter is persistent), updates or deletes an
     * ephemeral node needs no fdatasync of its own (meta_emb_before_flush). */
    if (!n->owner || sequential)
        e->durable_dirty = true;
    meta_emb_frame(&e->rec, p);
    e->log_records++;
}

/* Take back the changes from undo index `from` on, newest first. */
static void meta_emb_undo_to(struct meta_emb *e, size_t from)
{
    while (e->n_undo > from) {
        struct emb_undo *u = &e->undo[--e->n_undo];
        struct meta_tree *t = e->mem.tree;
        int rc = u->kind == META_EFFECT_CREATE ? meta_tree_undo_create(t, u->path, u->parent_seq)
                 : u->kind == META_EFFECT_SET
                     ? meta_tree_undo_set(t, u->path, u->was.value, u->was.len, u->was.version,
                                          u->was.mtime_ms)
                     : meta_tree_undo_delete(t, u->path, &u->was);
        MG_ASSERT(rc == 0); /* undo records mirror the tree exactly */
        mg_free(u->path);
        mg_free(u->was.value);
    }
}

/* The changes since the last sync are durable: forget how to undo them. */
static void meta_emb_undo_clear(struct meta_emb *e)
{
    for (size_t i = 0; i < e->n_undo; i++) {
        mg_free(e->undo[i].path);
        mg_free(e->undo[i].was.value);
    }
    e->n_undo = 0;
}

/* A change was refused (status rc): the first of an episode is logged, the others counted. */
static void meta_emb_refused(struct meta_emb *e, int rc)
{
    if (e->refused++ == 0)
        MG_ERROR("meta",
                 "embedded store %s: %s: %s; changes are refused (not stored) until it "
                 "can write again",
                 e->dir, mg_strerror(rc), e->mem.m->errmsg);
}

/* The files must be rewritten before the next change. */
static void meta_emb_break(struct meta_emb *e, int rc)
{
    e->broken = true;
    e->failed = rc;
    e->retry_at_ms = 0; /* the next change tries at once */
    e->retry_cur = e->retry_ms;
}

/* Writes work (again). */
static void meta_emb_writable(struct meta_emb *e)
{
    if (e->refused > 0)
        MG_INFO("meta", "embedded store %s: writable again (%lld change(s) were refused)", e->dir,
                (long long)e->refused);
    e->refused = 0;
}

/* Can a change be applied now? A broken store first rewrites its files from the tree (which
 * holds exactly what is durable), at most once per retry interval. Returns 0 or the cause. */
static int meta_emb_ready(struct meta_emb *e)
{
    if (!e->broken)
        return 0;
    uint64_t now = mg_loop_mono_ms(e->mem.m->loop);
    if (now < e->retry_at_ms)
        return e->failed;
    int rc = meta_emb_snapshot(e);
    if (rc < 0) {
        /* A full disk makes each attempt write until it fails: space them out. */
        e->failed = rc;
        e->retry_at_ms = now + (uint64_t)e->retry_cur;
        e->retry_cur = e->retry_cur * 2 > 30000 ? 30000 : e->retry_cur * 2;
        return rc;
    }
    e->broken = false;
    e->failed = 0;
    meta_emb_writable(e);
    return 0;
}

/* Append the records of the operation just applied; on failure, take the operation back
 * (undo records from `from` on) and leave the log as it was. */
static int meta_emb_append(struct meta_emb *e, size_t from, uint64_t records)
{
    if (e->rec.len == 0)
        return 0;
    if (meta_emb_write_all(e, e->log_fd, e->rec.p, e->rec.len) < 0) {
        int rc = meta_emb_errno(e, "cannot append to", "meta.log");
        e->rec.len = 0;
        /* A partial record would end every later replay early: cut it off. */
        if (meta_emb_truncate(e, e->log_fd, e->log_bytes) < 0) {
            meta_emb_errno(e, "cannot truncate", "meta.log");
            meta_emb_break(e, rc);
        }
        meta_emb_undo_to(e, from);
        e->log_records = records;
        return rc;
    }
    e->log_bytes += e->rec.len;
    e->rec.len = 0;
    e->dirty = true;
    e->mem.unsynced = true;
    return 0;
}

/* ---- replay --------------------------------------------------------------------------- */

/* Split buf[off..] into records; calls fn per payload. Returns the offset where valid
 * records end (== buf->len when all are whole), or <0 from fn. */
static long long meta_emb_scan_records(const struct emb_buf *b, size_t off,
                                       int (*fn)(void *arg, struct rd *payload), void *arg)
{
    while (off < b->len) {
        if (b->len - off < EMB_REC_HDR)
            break;
        struct rd h = {.p = b->p + off, .len = EMB_REC_HDR};
        uint32_t len = meta_emb_get_u32(&h);
        uint32_t crc = meta_emb_get_u32(&h);
        if (len > EMB_MAX_RECORD || len > b->len - off - EMB_REC_HDR)
            break;
        const uint8_t *payload = b->p + off + EMB_REC_HDR;
        if (mg_crc32c(0, payload, len) != crc)
            break;
        struct rd r = {.p = payload, .len = len};
        int rc = fn(arg, &r);
        if (rc < 0)
            return rc;
        off += EMB_REC_HDR + len;
    }
    return (long long)off;
}

struct replay {
    struct meta_emb *e;
    uint64_t n;
    uint64_t end_count; /* snapshot: the END record's count */
    bool ended;
};

static int meta_emb_replay_log_record(void *arg, struct rd *r)
{
    struct replay *rp = arg;
    struct meta_tree *t = rp->e->mem.tree;
    uint8_t type = meta_emb_get_u8(r);
    const uint8_t *path, *value;
    size_t plen, vlen;
    int rc = -MG_EIO;
    char *p = NULL;
    if (type == EMB_REC_CREATE) {
        uint8_t flags = meta_emb_get_u8(r);
        int64_t ctime = (int64_t)meta_emb_get_u64(r);
        uint64_t pseq = meta_emb_get_u64(r);
        plen = meta_emb_get_str(r, &path);
        vlen = meta_emb_get_str(r, &value);
        if (!r->bad) {
            p = mg_strndup((const char *)path, plen);
            if (meta_path_valid(p, false))
                rc = meta_tree_apply_create(t, p, value, vlen, ctime,
                                            (flags & EMB_CREATE_EPHEMERAL) ? EMB_REPLAY_SESSION : 0,
                                            pseq);
        }
    } else if (type == EMB_REC_SET) {
        int64_t version = (int64_t)meta_emb_get_u64(r);
        int64_t mtime = (int64_t)meta_emb_get_u64(r);
        plen = meta_emb_get_str(r, &path);
        vlen = meta_emb_get_str(r, &value);
        if (!r->bad) {
            p = mg_strndup((const char *)path, plen);
            if (meta_path_valid(p, false))
                rc = meta_tree_apply_set(t, p, value, vlen, version, mtime);
        }
    } else if (type == EMB_REC_DELETE) {
        plen = meta_emb_get_str(r, &path);
        if (!r->bad) {
            p = mg_strndup((const char *)path, plen);
            if (meta_path_valid(p, false))
                rc = meta_tree_delete(t, p, META_VERSION_ANY) == 0 ? 0 : -MG_EIO;
        }
    }
    if (rc < 0)
        snprintf(rp->e->mem.m->errmsg, sizeof rp->e->mem.m->errmsg,
                 "%s/meta.log: record %llu (type %u, path %s) does not apply", rp->e->dir,
                 (unsigned long long)rp->n, type, p ? p : "?");
    mg_free(p);
    rp->n++;
    return rc;
}

static int meta_emb_replay_snap_record(void *arg, struct rd *r)
{
    struct replay *rp = arg;
    uint8_t type = meta_emb_get_u8(r);
    int rc = -MG_EIO;
    char *p = NULL;
    if (rp->ended) {
        rc = -MG_EIO;
    } else if (type == EMB_REC_NODE) {
        int64_t version = (int64_t)meta_emb_get_u64(r);
        int64_t ctime = (int64_t)meta_emb_get_u64(r);
        int64_t mtime = (int64_t)meta_emb_get_u64(r);
        uint64_t seq = meta_emb_get_u64(r);
        const uint8_t *path, *value;
        size_t plen = meta_emb_get_str(r, &path);
        size_t vlen = meta_emb_get_str(r, &value);
        if (!r->bad) {
            p = mg_strndup((const char *)path, plen);
            if (meta_path_valid(p, false))
                rc = meta_tree_apply_node(rp->e->mem.tree, p, value, vlen, version, ctime, mtime,
                                          seq);
        }
        rp->n++;
    } else if (type == EMB_REC_END) {
        rp->end_count = meta_emb_get_u64(r);
        rp->ended = !r->bad;
        rc = r->bad ? -MG_EIO : 0;
    }
    if (rc < 0)
        snprintf(rp->e->mem.m->errmsg, sizeof rp->e->mem.m->errmsg,
                 "%s/meta.snap: record %llu (type %u, path %s) does not apply", rp->e->dir,
                 (unsigned long long)rp->n, type, p ? p : "?");
    mg_free(p);
    return rc;
}

static bool meta_emb_check_header(const struct emb_buf *b, const char *magic, uint64_t *gen)
{
    if (b->len < EMB_HDR_LEN || memcmp(b->p, magic, 8) != 0)
        return false;
    struct rd r = {.p = b->p + 8, .len = 8};
    *gen = meta_emb_get_u64(&r);
    return true;
}

/* Load meta.snap (if any) into the tree; *gen = its generation (0 without one). */
static int meta_emb_load_snapshot(struct meta_emb *e, uint64_t *gen)
{
    struct emb_buf b = {0};
    *gen = 0;
    if (meta_emb_read_file(e->dir_fd, "meta.snap", &b) < 0) {
        mg_free(b.p);
        return errno == ENOENT ? 0 : meta_emb_errno(e, "cannot read", "meta.snap");
    }
    int rc = 0;
    if (!meta_emb_check_header(&b, EMB_SNAP_MAGIC, gen)) {
        snprintf(e->mem.m->errmsg, sizeof e->mem.m->errmsg, "%s/meta.snap: bad header", e->dir);
        rc = -MG_EIO;
    } else {
        struct replay rp = {.e = e};
        long long end = meta_emb_scan_records(&b, EMB_HDR_LEN, meta_emb_replay_snap_record, &rp);
        if (end < 0) {
            rc = (int)end;
        } else if ((size_t)end != b.len || !rp.ended || rp.end_count != rp.n) {
            snprintf(e->mem.m->errmsg, sizeof e->mem.m->errmsg,
                     "%s/meta.snap: truncated or corrupt at offset %lld", e->dir, end);
            rc = -MG_EIO;
        }
    }
    mg_free(b.p);
    return rc;
}

/* Replay meta.log of generation snap_gen. *need_snapshot: records were replayed or the log
 * has a torn tail (*torn), *need_new_log: the log is stale, missing or torn while created. */
static int meta_emb_replay_log(struct meta_emb *e, uint64_t snap_gen, bool *need_new_log,
                               bool *need_snapshot, bool *torn)
{
    struct emb_buf b = {0};
    *need_new_log = false;
    *need_snapshot = false;
    *torn = false;
    if (meta_emb_read_file(e->dir_fd, "meta.log", &b) < 0) {
        mg_free(b.p);
        if (errno != ENOENT)
            return meta_emb_errno(e, "cannot read", "meta.log");
        *need_new_log = true;
        return 0;
    }
    uint64_t gen = 0;
    int rc = 0;
    if (!meta_emb_check_header(&b, EMB_LOG_MAGIC, &gen)) {
        if (b.len >= 8 && memcmp(b.p, EMB_LOG_MAGIC, 8) != 0) {
            snprintf(e->mem.m->errmsg, sizeof e->mem.m->errmsg, "%s/meta.log: bad header", e->dir);
            rc = -MG_EIO;
        } else {
            *need_new_log = true; /* torn while being created: nothing was logged in it */
        }
    } else if (gen < snap_gen) {
        MG_INFO("meta", "embedded store %s: log %llu is older than snapshot %llu, ignored", e->dir,
                (unsigned long long)gen, (unsigned long long)snap_gen);
        *need_new_log = true;
    } else if (gen > snap_gen) {
        snprintf(e->mem.m->errmsg, sizeof e->mem.m->errmsg,
                 "%s/meta.log: generation %llu but the snapshot is %llu (snapshot missing?)",
                 e->dir, (unsigned long long)gen, (unsigned long long)snap_gen);
        rc = -MG_EIO;
    } else {
        struct replay rp = {.e = e};
        long long end = meta_emb_scan_records(&b, EMB_HDR_LEN, meta_emb_replay_log_record, &rp);
        if (end < 0) {
            rc = (int)end;
        } else {
            if ((size_t)end != b.len)
                MG_WARN("meta",
                        "embedded store %s: meta.log has a torn or corrupt record at "
                        "offset %lld; ignoring its last %zu bytes",
                        e->dir, end, b.len - (size_t)end);
            *torn = (size_t)end != b.len;
            *need_snapshot = rp.n > 0 || *torn;
            e->gen = gen;
            e->log_records = rp.n;
            e->log_bytes = (uint64_t)end;
        }
    }
    mg_free(b.p);
    return rc;
}

/* ---- the backend ------------------------------------------------------------------------ */

static struct meta_emb *meta_emb_of(struct meta_store *m)
{
    return m->impl;
}

static void meta_emb_snap_timer_cb(struct mg_timer *t, void *arg)
{
    struct meta_emb *e = arg;
    mg_timer_start(t, (uint64_t)e->mem.m->o.snapshot_interval_ms);
    if (e->broken || e->log_records == 0)
        return;
    if (meta_emb_snapshot(e) < 0)
        MG_WARN("meta", "embedded store: snapshot failed: %s", e->mem.m->errmsg);
}

static void meta_emb_free(struct meta_emb *e)
{
    mg_timer_fini(&e->snap_timer);
    if (e->mem.tree) {
        e->mem.tree->effect = NULL;
        meta_mem_detach(&e->mem);
    }
    if (e->log_fd >= 0) {
        if (e->dirty && meta_emb_sync(e, e->log_fd, true) < 0)
            MG_WARN("meta", "embedded store %s: fdatasync at close: %s", e->dir, strerror(errno));
        close(e->log_fd);
    }
    meta_emb_undo_clear(e);
    mg_free(e->undo);
    if (e->lock_fd >= 0)
        close(e->lock_fd);
    if (e->dir_fd >= 0)
        close(e->dir_fd);
    mg_free(e->rec.p);
    mg_free(e->payload.p);
    mg_free(e->dir);
    mg_free(e);
}

/* Open: a whole log with records is not compacted (a snapshot and a new log: 4 syncs on
 * the start path); it is appended to. The ephemeral nodes it left are dropped with the
 * effect hook attached, so their deletes go into the log (else a later create of the same
 * path would not apply at the next replay); those records need no sync: a crash that loses
 * them leaves nodes that the next open drops again. The log is compacted later, by size or
 * by the snapshot timer. 0, or -1 when the deletes could not be appended (the tree and the
 * log as they were, the effect hook off: the caller compacts instead). */
static int meta_emb_open_append(struct meta_emb *e, struct meta_tree *t)
{
    e->log_fd = openat(e->dir_fd, "meta.log", O_WRONLY | O_APPEND | O_CLOEXEC);
    if (e->log_fd < 0)
        return -1;
    e->synced_bytes = e->log_bytes;
    e->synced_records = e->log_records;
    uint64_t records = e->log_records;
    e->rec.len = 0;
    t->effect = meta_emb_effect;
    t->effect_arg = e;
    meta_tree_drop_ephemerals(t, 0);
    int rc = meta_emb_append(e, 0, records);
    meta_emb_undo_clear(e);
    e->mem.unsynced = false;
    e->durable_dirty = false;
    if (rc == 0 && !e->broken)
        return 0;
    t->effect = NULL;
    close(e->log_fd);
    e->log_fd = -1;
    e->broken = false;
    e->failed = 0;
    e->dirty = false;
    return -1;
}

static int meta_emb_open(struct meta_store *m, const char *arg)
{
    if (!m->data_dir || !m->data_dir[0]) {
        snprintf(m->errmsg, sizeof m->errmsg, "the embedded store needs a data_dir");
        return -MG_EINVAL;
    }
    struct meta_emb *e = mg_calloc(1, sizeof *e);
    e->dir = mg_strdup(m->data_dir);
    e->dir_fd = e->lock_fd = e->log_fd = -1;
    e->retry_ms = e->retry_cur = 1000;
    e->fault = emb_open_fault;
    e->fault_arg = emb_open_fault_arg;
    e->mem.m = m;
    m->impl = e;
    int rc;
    if (mg_mkdirs(e->dir) < 0) {
        rc = meta_emb_errno(e, "cannot create", NULL);
        goto fail;
    }
    e->dir_fd = open(e->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (e->dir_fd < 0) {
        rc = meta_emb_errno(e, "cannot open", NULL);
        goto fail;
    }
    e->lock_fd = openat(e->dir_fd, "meta.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (e->lock_fd < 0) {
        rc = meta_emb_errno(e, "cannot create", "meta.lock");
        goto fail;
    }
    if (flock(e->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        rc = errno == EWOULDBLOCK ? -MG_EBUSY : -MG_EIO;
        meta_emb_errno(e, "cannot lock", "meta.lock");
        goto fail;
    }
    struct meta_tree *t = meta_tree_new(m->loop);
    meta_mem_attach(&e->mem, m, t);
    meta_tree_unref(t);

    uint64_t snap_gen;
    bool need_new_log, need_snapshot, torn;
    rc = meta_emb_load_snapshot(e, &snap_gen);
    if (rc == 0)
        rc = meta_emb_replay_log(e, snap_gen, &need_new_log, &need_snapshot, &torn);
    if (rc < 0)
        goto fail;
    if (!need_new_log && need_snapshot && !torn && meta_emb_open_append(e, t) == 0)
        need_snapshot = false; /* the log goes on, the dropped nodes' deletes appended */
    else
        meta_tree_drop_ephemerals(t, 0);
    /* no snapshot (snapshots have generation >= 1) and a log without records: nothing was
     * ever stored, and the log's directory entry may never have been synced
     * (meta_emb_first_log): start it over as new */
    if (snap_gen == 0 && !need_snapshot && e->log_records == 0)
        need_new_log = true;
    if (need_new_log && snap_gen == 0) {
        rc = meta_emb_first_log(e);
    } else if (need_new_log) {
        e->gen = snap_gen;
        rc = meta_emb_new_log(e, snap_gen);
    } else if (e->log_fd >= 0) {
        /* meta_emb_open_append: the log is open and its records are replayed */
    } else if (need_snapshot) {
        rc = meta_emb_snapshot(e);
        if (rc < 0 && !e->broken) {
            /* Compaction failed before replacing anything (a full disk): go on with the log
             * as it is, its torn tail cut off; the snapshot is tried again later. */
            MG_WARN("meta",
                    "embedded store %s: compaction at open failed (%s): appending to "
                    "the log",
                    e->dir, m->errmsg);
            rc = 0;
            e->log_fd = openat(e->dir_fd, "meta.log", O_WRONLY | O_APPEND | O_CLOEXEC);
            if (e->log_fd < 0 || meta_emb_truncate(e, e->log_fd, e->log_bytes) < 0)
                rc = meta_emb_errno(e, "cannot reopen", "meta.log");
            e->synced_bytes = e->log_bytes;
            e->synced_records = e->log_records;
        }
    } else {
        e->log_fd = openat(e->dir_fd, "meta.log", O_WRONLY | O_APPEND | O_CLOEXEC);
        rc = e->log_fd < 0 ? meta_emb_errno(e, "cannot open", "meta.log") : 0;
        e->synced_bytes = e->log_bytes;
        e->synced_records = e->log_records;
    }
    if (rc < 0 || e->broken) {
        rc = rc < 0 ? rc : e->failed;
        goto fail;
    }
    t->effect = meta_emb_effect;
    t->effect_arg = e;
    if (m->o.snapshot_interval_ms > 0) {
        mg_timer_init(&e->snap_timer, m->loop, meta_emb_snap_timer_cb, e);
        mg_timer_start(&e->snap_timer, (uint64_t)m->o.snapshot_interval_ms);
    }
    MG_INFO("meta", "embedded store %s open (generation %llu)", e->dir, (unsigned long long)e->gen);
    return 0;
fail:
    meta_emb_free(e);
    m->impl = NULL;
    return rc;
}

static void meta_emb_close(struct meta_store *m)
{
    meta_emb_free(meta_emb_of(m));
}

/* Complete a mutation. A success depends on the next sync; so does a refusal answered
 * while the tree holds unsynced changes (it may be their consequence: -MG_EEXIST after an
 * unsynced create). A refusal for lack of space does not: it is the disk's answer. */
static void meta_emb_complete(struct meta_emb *e, struct meta_req *req, int rc, bool io_failed)
{
    if (io_failed)
        meta_emb_refused(e, rc);
    meta_req_complete(e->mem.m, req, rc, rc == 0 || (!io_failed && e->mem.unsynced));
}

/* One logged change of the tree: meta_emb_change_begin, the tree operation when it returned
 * 0, then meta_emb_change_end, which logs what the operation did (even a refused put may
 * have created parents, META_CREATE_PARENTS) and completes req. */
struct meta_emb_change {
    bool io_failed;   /* the store could not take a change (begin failed) */
    size_t from;      /* e->n_undo before the operation */
    uint64_t records; /* e->log_records before the operation */
};

static int meta_emb_change_begin(struct meta_emb *e, struct meta_emb_change *ch)
{
    int rc = meta_emb_ready(e);
    ch->io_failed = rc < 0;
    if (rc == 0) {
        e->rec.len = 0;
        ch->from = e->n_undo;
        ch->records = e->log_records;
    }
    return rc;
}

static void meta_emb_change_end(struct meta_emb *e, struct meta_emb_change *ch,
                                struct meta_req *req, int rc)
{
    if (!ch->io_failed) {
        int arc = meta_emb_append(e, ch->from, ch->records);
        if (arc < 0) {
            rc = arc;
            ch->io_failed = true;
        }
    }
    meta_emb_complete(e, req, rc, ch->io_failed);
}

static int meta_emb_put(struct meta_store *m, const char *path, const void *value, size_t len,
                        int64_t expected_version, int flags, struct meta_req *req)
{
    struct meta_emb *e = meta_emb_of(m);
    struct meta_emb_change ch;
    int rc = meta_emb_change_begin(e, &ch);
    if (rc == 0)
        rc = meta_tree_put(e->mem.tree, e->mem.session, path, value, len, expected_version, flags,
                           req);
    meta_emb_change_end(e, &ch, req, rc);
    return 0;
}

static int meta_emb_del(struct meta_store *m, const char *path, int64_t expected_version,
                        struct meta_req *req)
{
    struct meta_emb *e = meta_emb_of(m);
    struct meta_emb_change ch;
    int rc = meta_emb_change_begin(e, &ch);
    if (rc == 0)
        rc = meta_tree_delete(e->mem.tree, path, expected_version);
    meta_emb_change_end(e, &ch, req, rc);
    return 0;
}

/* Group commit: one fdatasync covers every mutation queued since the last flush. */
static int meta_emb_before_flush(struct meta_store *m)
{
    struct meta_emb *e = meta_emb_of(m);
    if (e->dirty && !e->durable_dirty) {
        /* Only ephemeral nodes changed (the lease renewals, registrations and load reports
         * that a start and an idle broker write): deliver without fdatasync. Their records
         * stay in the log, synced by the next flush that needs it; a crash before that
         * loses only nodes the next open drops anyway. They are committed as far as the
         * tree goes: a later failed sync takes back only what came after them. */
        meta_emb_undo_clear(e);
        e->mem.unsynced = false;
    } else if (e->dirty) {
        if (meta_emb_sync(e, e->log_fd, true) < 0 ||
            (e->name_unsynced && meta_emb_sync(e, e->dir_fd, false) < 0)) {
            /* After a failed sync the kernel may have dropped the unsynced pages: none of
             * those changes is stored. Take them all back, cut them off the log (so that a
             * restart cannot replay them) and rewrite the files before the next change. */
            int rc = meta_emb_errno(e, "cannot fdatasync", "meta.log");
            MG_ERROR("meta", "embedded store %s: %s; %zu unsynced change(s) taken back", e->dir,
                     m->errmsg, e->n_undo);
            e->refused += e->n_undo ? (int64_t)e->n_undo : 1;
            meta_emb_undo_to(e, 0);
            e->mem.unsynced = false;
            e->dirty = e->durable_dirty = false;
            if (meta_emb_truncate(e, e->log_fd, e->synced_bytes) == 0)
                e->log_bytes = e->synced_bytes;
            e->log_records = e->synced_records;
            meta_emb_break(e, rc);
            return rc;
        }
        e->dirty = e->durable_dirty = e->name_unsynced = false;
        e->synced_bytes = e->log_bytes;
        e->synced_records = e->log_records;
        meta_emb_undo_clear(e);
        e->mem.unsynced = false;
        meta_emb_writable(e);
    }
    if (e->broken)
        return 0; /* nothing of this flush depends on the files */
    /* The items of this flush are durable now; a failed snapshot does not change that
     * (a failure to restart the log only blocks later mutations, through e->failed). */
    if (e->log_bytes > m->o.snapshot_log_bytes && meta_emb_snapshot(e) < 0)
        MG_WARN("meta", "embedded store: snapshot failed: %s", m->errmsg);
    return 0;
}

void meta_embedded_set_fault(struct meta_store *m, meta_emb_fault_fn fn, void *arg)
{
    MG_ASSERT(m->ops == &meta_embedded_ops);
    struct meta_emb *e = meta_emb_of(m);
    e->fault = fn;
    e->fault_arg = arg;
}

void meta_embedded_set_open_fault(meta_emb_fault_fn fn, void *arg)
{
    emb_open_fault = fn;
    emb_open_fault_arg = arg;
}

void meta_embedded_set_retry_ms(struct meta_store *m, int ms)
{
    MG_ASSERT(m->ops == &meta_embedded_ops);
    struct meta_emb *e = meta_emb_of(m);
    e->retry_ms = e->retry_cur = ms;
    uint64_t limit = mg_loop_mono_ms(m->loop) + (uint64_t)ms;
    if (e->retry_at_ms > limit)
        e->retry_at_ms = limit;
}

const struct meta_ops meta_embedded_ops = {
    .name = "embedded",
    .open = meta_emb_open,
    .open_peer = NULL, /* one store owns a data dir */
    .close = meta_emb_close,
    .get = meta_mem_get,
    .put = meta_emb_put,
    .del = meta_emb_del,
    .children = meta_mem_children,
    .exists = meta_mem_exists,
    .watch = meta_mem_watch,
    .unwatch = meta_mem_unwatch,
    .before_flush = meta_emb_before_flush,
};
