/*
 * bk_store.c - the bookie's ledger storage: per-ledger state, a write cache in two halves,
 * entry logs and an LMDB index, and the storage thread that writes them
 * (docs/bookie-threads.md has the ownership of each structure).
 *
 * Happy path: a journalled add reaches bk_store_apply on the loop thread, which keeps the
 * body in the active write-cache half (readable at once) and updates the ledger's last entry
 * and known LAC. At each checkpoint (bk_store_flush_begin: flushInterval, or the half full)
 * the loop swaps the halves and queues the full one, with the changed ledger records and the
 * journal position, to the storage thread, which (bk_store_flush_run) appends the entries in
 * (ledger, entry) order to the current entry log, fdatasyncs it, puts their index entries and
 * the ledger records in one LMDB transaction (its commit syncs), and only then moves
 * lastMark (the older of its two slots overwritten in place + fdatasync) and trims the journal
 * behind it. While writing the log it starts the writeback of every flushEntrylogBytes and
 * waits for the chunk before (write-behind), so the disk's queue never holds a whole half.
 * The loop then frees the half. Reads look in the active half, the half being flushed, then
 * the index (pread from the entry log). gc's ledger drops, log deletions and compaction
 * slices are storage-thread operations too, queued in order with the checkpoints.
 *
 * Files under <ledgerDir>/current/ of each ledger directory: <hex id>.log entry logs (a 1 KiB
 * header "BKLO"+version, then records), each new one in the next writable directory (round-
 * robin, skipping full and failed ones: README.md "Ledger directories"); in the first one
 * only, index/ (LMDB: "index" and "ledgers" databases) and lastMark (two checksummed slots,
 * BK_MARK_* in bookie_int.h; the older 16-byte form, BE64 journal file id and BE64 offset, is
 * still read).
 *
 * Failure modes: an entry-log write out of space (ENOSPC, EDQUOT) sets nospace: the records
 * stay in the (growing) write buffer and the checkpoint fails, keeping its half (readable)
 * to be retried as it is once space returns (the server's disk check); -MG_EREADONLY. Any
 * other entry-log write or sync failure takes the log's ledger directory out (failed) and
 * the checkpoint writes its half again to a log in another directory; with none left it sets
 * io_failed: checkpoints stop for good (so lastMark never moves past data that is not on disk
 * and the journal keeps it for replay) and the server turns read-only. Index and lastMark failures
 * only fail that checkpoint. Repeated failures log one line per MG_RATELIMIT_INTERVAL_MS. A crash
 * at any point of a checkpoint is safe: the index never points at unsynced log data (logs are
 * synced before the commit), and replaying from the previous lastMark re-applies the same records
 * (overwriting index entries).
 */
#include "bookie/bookie_int.h"
#include "util/alloc.h"
#include "util/bytes.h"
#include "util/crc.h"
#include "util/err.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/loop.h"

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define BK_LOG_BUF_SIZE (1u << 20)
#define BK_LMDB_MAP_SIZE (64ULL << 30) /* address space only; the file grows as needed */
#define BK_LEDGER_REC_VERSION 1

int bk_dir_lock(const char *dir, const char *key)
{
    int rc = mg_mkdirs(dir);
    if (rc < 0) {
        MG_ERROR(BK_MODULE, "%s %s: cannot create it: %s", key, dir, mg_strerror(rc));
        return rc;
    }
    char *path = mg_asprintf("%s/" BK_LOCK_FILE, dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        MG_ERROR(BK_MODULE, "%s %s: cannot open %s: %s", key, dir, path, strerror(e));
        mg_free(path);
        return mg_err_from_errno(e);
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        if (e == EWOULDBLOCK) {
            /* the holder wrote its pid when it took the lock */
            char who[64] = "";
            ssize_t n = pread(fd, who, sizeof who - 1, 0);
            who[n > 0 ? n : 0] = '\0';
            long pid = strncmp(who, "pid=", 4) == 0 ? strtol(who + 4, NULL, 10) : 0;
            char holder[48] = "holder unknown";
            if (pid > 0)
                snprintf(holder, sizeof holder, "held by pid %ld", pid);
            MG_ERROR(BK_MODULE,
                     "%s %s is in use by another bookie (%s, lock %s): stop that bookie or give "
                     "this one its own directories",
                     key, dir, holder, path);
            rc = -MG_EBUSY;
        } else {
            MG_ERROR(BK_MODULE, "%s %s: cannot lock %s: %s", key, dir, path, strerror(e));
            rc = mg_err_from_errno(e);
        }
        close(fd);
        mg_free(path);
        return rc;
    }
    char who[32];
    int n = snprintf(who, sizeof who, "pid=%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, who, (size_t)n, 0) != n)
        MG_WARN(BK_MODULE, "cannot record our pid in %s: %s", path, strerror(errno));
    mg_free(path);
    return fd;
}

static void bk_store_cache_key(uint8_t k[16], int64_t ledger, int64_t entry)
{
    mg_put_be64(k, (uint64_t)ledger);
    mg_put_be64(k + 8, (uint64_t)entry);
}

/* The entry in the active write-cache half or in the half being flushed, NULL if neither. */
static struct bk_cached *bk_store_cached(const struct bk_store *st, const uint8_t kb[16])
{
    struct bk_cached *c = mg_map_get(&st->cache, kb, 16);
    if (!c && st->flush)
        c = mg_map_get(&st->flush->cache, kb, 16);
    return c;
}

static int bk_store_log_path(const struct bk_store *st, unsigned dir, uint32_t id, char *buf,
                             size_t n)
{
    return snprintf(buf, n, "%s/%x.log", st->ldirs[dir], id);
}

/* A ledger directory new entry logs may go to: neither full nor failed. */
static bool bk_store_dir_writable(const struct bk_store *st, unsigned dir)
{
    return !((atomic_load(&st->dir_full) | atomic_load(&st->dir_failed)) & (1u << dir));
}

bool bk_store_any_dir_writable(const struct bk_store *st)
{
    for (unsigned i = 0; i < st->n_ldirs; i++)
        if (bk_store_dir_writable(st, i))
            return true;
    return false;
}

static bool bk_store_no_space(int e)
{
    return e == ENOSPC || e == EDQUOT;
}

static int bk_store_log_open_new(struct bk_store *st, uint32_t id);

/*
 * Storage thread: the current log failed (a write or fdatasync error: what it holds past its
 * last sync is unknown). Its directory is marked failed (one ERROR line), as LedgerDirsManager
 * does, the buffered records are dropped (their owners still have them: a checkpoint keeps
 * its write-cache half until it succeeds, a compaction's copies are not indexed) and the next
 * log starts in another directory. -MG_EAGAIN: append the records again; -MG_EIO (io_failed
 * set) when no directory is left.
 */
static int bk_store_log_failed(struct bk_store *st, const char *what, int e)
{
    atomic_fetch_or(&st->dir_failed, 1u << st->log_dir);
    MG_ERROR(BK_MODULE,
             "entry log %x: %s failed: %s; ledger directory %s failed: no new entry logs go "
             "there until restart",
             st->log_id, what, strerror(e), st->ldirs[st->log_dir]);
    st->log_buf_len = 0;
    st->nospace = false;
    if (bk_store_log_open_new(st, st->log_id + 1) < 0) {
        st->io_failed = true;
        return -MG_EIO;
    }
    return -MG_EAGAIN;
}

/*
 * Write-behind (flushEntrylogBytes, the classic sync_file_range pattern): once about wb_bytes
 * more of the log are written, wait for the writeback started last time (WAIT_BEFORE | WRITE |
 * WAIT_AFTER: also starts any of it not started yet) and start the writeback of what was
 * written since (WRITE). A checkpoint then keeps at most two chunks queued on the disk, the
 * journal's group fdatasyncs are not stuck behind a whole half, and the checkpoint's
 * fdatasync finds at most two chunks left. A failure here is a failure of the log's data
 * (the kernel reports a writeback error once, to whichever call waits first): as a failed
 * write, bk_store_log_failed.
 */
static int bk_store_log_write_behind(struct bk_store *st)
{
    /* the log is written a buffer (at most BK_LOG_BUF_SIZE) at a time: start when the next
     * write would take what is not started yet past wb_bytes */
    if (st->wb_bytes <= 0 ||
        st->log_flushed - st->wb_started + BK_LOG_BUF_SIZE <= (uint64_t)st->wb_bytes)
        return 0;
    int e = atomic_exchange(&st->inject_wb_errno, 0);
    if (e == 0 && st->wb_started > st->wb_waited &&
        sync_file_range(st->log_fd, (off_t)st->wb_waited, (off_t)(st->wb_started - st->wb_waited),
                        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                            SYNC_FILE_RANGE_WAIT_AFTER) != 0)
        e = errno;
    if (e == 0) {
        st->wb_waited = st->wb_started;
        if (sync_file_range(st->log_fd, (off_t)st->wb_started,
                            (off_t)(st->log_flushed - st->wb_started), SYNC_FILE_RANGE_WRITE) != 0)
            e = errno;
    }
    if (e != 0)
        return bk_store_log_failed(st, "sync_file_range", e);
    st->wb_started = st->log_flushed;
    atomic_fetch_add(&st->wb_chunks, 1);
    return 0;
}

/*
 * Write the buffered records at the end of the current entry log. Out of space (ENOSPC,
 * EDQUOT) is not an error of the data: the records stay buffered (and readable from the
 * write cache), whatever part of them reached the file is cut off again, and a later call
 * retries; -MG_EREADONLY. Any other failure: bk_store_log_failed (-MG_EAGAIN or -MG_EIO).
 */
static int bk_store_log_flush_buf(struct bk_store *st)
{
    if (st->log_buf_len == 0)
        return 0;
    int e = atomic_exchange(&st->inject_errno, 0);
    if (e == 0)
        e = mg_pwrite_all(st->log_fd, st->log_buf, st->log_buf_len, st->log_flushed) < 0 ? errno
                                                                                         : 0;
    if (e != 0 && bk_store_no_space(e)) {
        if (ftruncate(st->log_fd, (off_t)st->log_flushed) != 0)
            MG_DEBUG(BK_MODULE, "entry log %x: ftruncate: %s", st->log_id, strerror(errno));
        st->nospace = true;
        uint64_t held;
        if (mg_ratelimit_allow(&st->rl_nospace, MG_RATELIMIT_INTERVAL_MS, &held))
            MG_ERROR(BK_MODULE,
                     "entry log %x: write failed: %s: %zu bytes kept in memory until space "
                     "returns (%" PRIu64 " more such failures since the last line)",
                     st->log_id, strerror(e), st->log_buf_len, held);
        return -MG_EREADONLY;
    }
    if (e != 0)
        return bk_store_log_failed(st, "write", e);
    if (st->nospace)
        MG_INFO(BK_MODULE, "entry log %x: the %zu bytes kept in memory are written", st->log_id,
                st->log_buf_len);
    st->nospace = false;
    st->log_flushed += st->log_buf_len;
    st->log_buf_len = 0;
    if (st->log_buf_cap > 2 * BK_LOG_BUF_SIZE) { /* it grew while out of space */
        st->log_buf_cap = BK_LOG_BUF_SIZE;
        mg_free(st->log_buf);
        st->log_buf = mg_malloc(st->log_buf_cap);
    }
    return bk_store_log_write_behind(st);
}

/* Storage thread: the buffered records written and the current log fdatasynced. 0,
 * -MG_EREADONLY (out of space, kept in the buffer), -MG_EAGAIN (the log failed, the next one
 * is in another directory: append again) or -MG_EIO (io_failed set). */
static int bk_store_log_sync(struct bk_store *st)
{
    int rc = bk_store_log_flush_buf(st);
    if (rc < 0)
        return rc;
    int e = atomic_exchange(&st->inject_sync_errno, 0);
    uint64_t t0 = mg_mono_ns();
    if (e == 0 && fdatasync(st->log_fd) != 0)
        e = errno;
    bk_lat_add(&st->lat_log_sync, mg_mono_ns() - t0, e == 0);
    if (e != 0)
        return bk_store_log_failed(st, "fdatasync", e);
    st->log_synced = st->wb_started = st->wb_waited = st->log_flushed;
    return 0;
}

/* Create entry log id in ledger directory dir: 0, or an errno (logged, the file removed). */
static int bk_store_log_create(struct bk_store *st, unsigned dir, uint32_t id, int *fdp)
{
    char path[4096];
    bk_store_log_path(st, dir, id, path, sizeof path);
    int e = atomic_exchange(&st->inject_create_errno, 0);
    int fd = e ? -1 : open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        e = e ? e : errno;
        MG_ERROR(BK_MODULE, "cannot create entry log %s: %s", path, strerror(e));
        return e;
    }
    uint8_t hdr[BK_ENTRY_LOG_HEADER_SIZE];
    memset(hdr, 0, sizeof hdr);
    memcpy(hdr, "BKLO", 4);
    mg_put_be32(hdr + 4, 1);
    e = mg_write_all(fd, hdr, sizeof hdr) < 0 ? errno : 0;
    if (e == 0 && mg_fsync_dir(st->ldirs[dir]) < 0)
        e = errno ? errno : EIO;
    if (e != 0) {
        MG_ERROR(BK_MODULE, "cannot write entry log %s: %s", path, strerror(e));
        close(fd);
        unlink(path);
        return e;
    }
    *fdp = fd;
    return 0;
}

/*
 * Start entry log id in the next writable ledger directory, round-robin (BookKeeper's
 * LedgerDirsManager): full or failed directories are skipped; when none is writable (the
 * bookie is read-only then, and only journalled or high-priority records arrive) any that has
 * not failed is taken. A directory where the log cannot be created is marked full (out of
 * space) or failed (any other error; one ERROR line) and the next one is tried. 0 or
 * -MG_E*.
 */
static int bk_store_log_open_new(struct bk_store *st, uint32_t id)
{
    int fd = -1, e = EIO;
    unsigned dir = 0;
    for (int pass = 0; pass < 2 && fd < 0; pass++) {
        for (unsigned k = 0; k < st->n_ldirs && fd < 0; k++) {
            dir = (st->next_dir + k) % st->n_ldirs;
            unsigned bit = 1u << dir;
            if ((atomic_load(&st->dir_failed) & bit) ||
                (pass == 0 && (atomic_load(&st->dir_full) & bit)))
                continue;
            e = bk_store_log_create(st, dir, id, &fd);
            if (e != 0 && bk_store_no_space(e)) {
                atomic_fetch_or(&st->dir_full, bit); /* the disk check clears it below the lwm */
            } else if (e != 0) {
                atomic_fetch_or(&st->dir_failed, bit);
                MG_ERROR(BK_MODULE,
                         "ledger directory %s failed (%s): no new entry logs go there until "
                         "restart",
                         st->ldirs[dir], strerror(e));
            }
        }
    }
    if (fd < 0)
        return mg_err_from_errno(e);
    st->next_dir = (dir + 1) % st->n_ldirs;
    struct bk_log_file *lf = mg_calloc(1, sizeof *lf);
    lf->id = id;
    lf->fd = fd;
    lf->dir = dir;
    pthread_mutex_lock(&st->logs_lock);
    mg_map_put_u64(&st->logs, id, lf);
    pthread_mutex_unlock(&st->logs_lock);
    st->log_id = id;
    st->log_fd = fd;
    st->log_dir = dir;
    st->log_off = BK_ENTRY_LOG_HEADER_SIZE;
    st->log_flushed = BK_ENTRY_LOG_HEADER_SIZE;
    st->log_synced = st->wb_started = st->wb_waited = 0;
    return 0;
}

/* The descriptor of log id for reading; the caller holds logs_lock (so that it stays open
 * while it is used). */
static int bk_store_pread_all(int fd, uint8_t *b, size_t n, uint64_t off);

static int bk_store_log_fd_for(struct bk_store *st, uint32_t id)
{
    struct bk_log_file *lf = mg_map_get_u64(&st->logs, id);
    if (!lf) /* every log is known since the open; this one was deleted */
        return -1;
    if (lf->fd < 0) {
        char path[4096];
        bk_store_log_path(st, lf->dir, id, path, sizeof path);
        lf->fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    return lf->fd;
}

/* Read n bytes of log id at off (any thread): 0, -MG_ENOTFOUND (no such log) or -1 with
 * errno. The descriptor stays open meanwhile (logs_lock). */
static int bk_store_log_pread(struct bk_store *st, uint32_t id, uint8_t *b, size_t n, uint64_t off)
{
    pthread_mutex_lock(&st->logs_lock);
    int fd = bk_store_log_fd_for(st, id);
    int rc = fd < 0 ? -MG_ENOTFOUND : bk_store_pread_all(fd, b, n, off);
    int e = errno;
    pthread_mutex_unlock(&st->logs_lock);
    errno = e;
    return rc;
}

/* ---- entry-log metadata ----------------------------------------------------------------- */

static struct bk_log_meta *bk_store_meta(struct bk_store *st, uint32_t id)
{
    struct bk_log_meta *m = mg_map_get_u64(&st->log_meta, id);
    if (!m) {
        m = mg_calloc(1, sizeof *m);
        m->id = id;
        mg_map_init(&m->ledgers);
        mg_map_put_u64(&st->log_meta, id, m);
    }
    return m;
}

static void bk_store_meta_free(void *p)
{
    struct bk_log_meta *m = p;
    mg_map_fini_free(&m->ledgers, mg_free);
    mg_free(m);
}

/* Read n bytes at off; 0, or -1 with errno (ENODATA for a file that ends before). */
static int bk_store_pread_all(int fd, uint8_t *b, size_t n, uint64_t off)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, b + got, n - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r == 0)
                errno = ENODATA;
            return -1;
        }
        got += (size_t)r;
    }
    return 0;
}

/* Where the index says an entry's record is: entry log, offset, record length. */
struct bk_store_loc {
    uint32_t log;
    uint64_t off;
    uint32_t len;
};

/* Decode an index value ([log u32][offset u64][length u32], big-endian); false if v is not
 * one. */
static bool bk_store_loc_get(const MDB_val *v, struct bk_store_loc *l)
{
    if (v->mv_size != 16)
        return false;
    const uint8_t *p = v->mv_data;
    l->log = mg_get_be32(p);
    l->off = mg_get_be64(p + 4);
    l->len = mg_get_be32(p + 12);
    return true;
}

/* A read transaction with a cursor on the index; 0 or -MG_EIO (nothing open). Ended by
 * bk_store_read_end. */
static int bk_store_read_index(struct bk_store *st, MDB_txn **txn, MDB_cursor **cur)
{
    if (mdb_txn_begin(st->env, NULL, MDB_RDONLY, txn) != 0)
        return -MG_EIO;
    if (mdb_cursor_open(*txn, st->idx_dbi, cur) != 0) {
        mdb_txn_abort(*txn);
        return -MG_EIO;
    }
    return 0;
}

static void bk_store_read_end(MDB_txn *txn, MDB_cursor *cur)
{
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
}

/* bytes of ledger's records in log id go live (delta > 0) or dead (delta < 0) */
static void bk_store_meta_live(struct bk_store *st, uint32_t id, int64_t ledger, int64_t delta)
{
    struct bk_log_meta *m = bk_store_meta(st, id);
    uint64_t *b = mg_map_get_u64(&m->ledgers, (uint64_t)ledger);
    if (!b) {
        if (delta <= 0)
            return;
        b = mg_calloc(1, sizeof *b);
        mg_map_put_u64(&m->ledgers, (uint64_t)ledger, b);
    }
    if (delta < 0 && (uint64_t)-delta > *b)
        delta = -(int64_t)*b;
    *b += (uint64_t)delta;
    m->live += (uint64_t)delta;
    if (*b == 0)
        mg_free(mg_map_del_u64(&m->ledgers, (uint64_t)ledger));
}

/* At open: the size of each log file and, from the index, the bytes each ledger still has in
 * each log. Records that no index entry points at (overwritten, copied by an interrupted
 * compaction, or of a dropped ledger) count in total only. */
static int bk_store_meta_rebuild(struct bk_store *st)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    if (bk_store_read_index(st, &txn, &cur) < 0)
        return -MG_EIO;
    MDB_val k, v;
    struct bk_store_loc loc;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0) {
        if (k.mv_size == 16 && bk_store_loc_get(&v, &loc))
            bk_store_meta_live(st, loc.log, (int64_t)mg_get_be64(k.mv_data), 4 + (int64_t)loc.len);
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    bk_store_read_end(txn, cur);
    return rc == MDB_NOTFOUND ? 0 : -MG_EIO;
}

/* Find the entry logs of ledger directory dir: each is known (its directory, a descriptor
 * opened on first read) with its metadata; *max_id is raised to the highest id. A log id
 * found in two directories refuses the open (-MG_EIO): the index cannot tell which is meant. */
static int bk_store_scan_logs(struct bk_store *st, unsigned dir, uint32_t *max_id)
{
    DIR *d = opendir(st->ldirs[dir]);
    if (!d)
        return 0; /* just created: mg_mkdirs made it, or the index open fails first */
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        char *end;
        unsigned long v = strtoul(de->d_name, &end, 16);
        if (end == de->d_name || strcmp(end, ".log") != 0 || v >= UINT32_MAX)
            continue;
        uint32_t id = (uint32_t)v;
        struct bk_log_file *lf = mg_map_get_u64(&st->logs, id);
        if (lf) {
            MG_ERROR(BK_MODULE, "entry log %x is in both %s and %s: remove the stray copy", id,
                     st->ldirs[lf->dir], st->ldirs[dir]);
            rc = -MG_EIO;
            break;
        }
        lf = mg_calloc(1, sizeof *lf);
        lf->id = id;
        lf->fd = -1;
        lf->dir = dir;
        mg_map_put_u64(&st->logs, id, lf);
        if (id > *max_id)
            *max_id = id;
        /* every log gets its metadata, also one with no record (the log of a start that
         * wrote nothing): gc deletes the logs without live bytes, these among them */
        struct stat sb;
        char path[4096];
        bk_store_log_path(st, dir, id, path, sizeof path);
        struct bk_log_meta *m = bk_store_meta(st, id);
        if (stat(path, &sb) == 0 && sb.st_size > BK_ENTRY_LOG_HEADER_SIZE)
            m->total = (uint64_t)sb.st_size - BK_ENTRY_LOG_HEADER_SIZE;
    }
    closedir(d);
    return rc;
}

int bk_store_open(struct bk_store *st, char *const *ledger_dirs, unsigned n_dirs, int64_t log_max)
{
    if (n_dirs == 0 || n_dirs > BK_MAX_LEDGER_DIRS)
        return -MG_EINVAL;
    size_t cache_max = st->cache_max ? st->cache_max : BK_WRITE_CACHE_MAX / 2;
    int64_t wb_bytes = st->wb_bytes;
    memset(st, 0, sizeof *st);
    st->cache_max = cache_max;
    st->wb_bytes = wb_bytes;
    st->notify_fd = -1;
    pthread_mutex_init(&st->logs_lock, NULL);
    pthread_mutex_init(&st->lock, NULL);
    pthread_cond_init(&st->cond, NULL);
    mg_map_init(&st->ledgers);
    mg_map_init(&st->cache);
    mg_map_init(&st->logs);
    mg_map_init(&st->log_meta);
    st->log_fd = -1;
    st->log_max = log_max > 0 ? log_max : BK_DEFAULT_ENTRY_LOG_MAX;
    st->n_ldirs = n_dirs;
    for (unsigned i = 0; i < n_dirs; i++) {
        st->ldirs[i] = mg_asprintf("%s/current", ledger_dirs[i]);
        int mrc = mg_mkdirs(st->ldirs[i]);
        if (mrc < 0) {
            MG_ERROR(BK_MODULE, "cannot create %s: %s", st->ldirs[i], mg_strerror(mrc));
            return mrc;
        }
    }
    st->dir = st->ldirs[0]; /* the index and lastMark */
    char *idx = mg_asprintf("%s/index", st->dir);
    int rc = mg_mkdirs(idx);
    if (rc < 0) {
        MG_ERROR(BK_MODULE, "cannot create %s: %s", idx, mg_strerror(rc));
        mg_free(idx);
        return rc;
    }
    int mrc = mdb_env_create(&st->env);
    if (mrc == 0)
        mrc = mdb_env_set_maxdbs(st->env, 4);
    if (mrc == 0)
        mrc = mdb_env_set_mapsize(st->env, BK_LMDB_MAP_SIZE);
    if (mrc == 0)
        mrc = mdb_env_open(st->env, idx, MDB_NOTLS, 0644);
    MDB_txn *txn = NULL;
    if (mrc == 0)
        mrc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (mrc == 0)
        mrc = mdb_dbi_open(txn, "index", MDB_CREATE, &st->idx_dbi);
    if (mrc == 0)
        mrc = mdb_dbi_open(txn, "ledgers", MDB_CREATE, &st->meta_dbi);
    if (mrc == 0) {
        mrc = mdb_txn_commit(txn);
        txn = NULL;
    }
    if (txn)
        mdb_txn_abort(txn);
    if (mrc != 0) {
        MG_ERROR(BK_MODULE, "cannot open the index %s: %s", idx, mdb_strerror(mrc));
        mg_free(idx);
        return -MG_EIO;
    }
    mg_free(idx);

    /* A new entry log per start: the tail of the previous one may hold unsynced records
     * that the journal replay is about to write again. */
    uint32_t max_id = 0;
    for (unsigned i = 0; i < n_dirs; i++) {
        int src = bk_store_scan_logs(st, i, &max_id);
        if (src < 0)
            return src;
    }
    if (bk_store_meta_rebuild(st) < 0) {
        MG_ERROR(BK_MODULE, "cannot scan the index of %s", st->dir);
        return -MG_EIO;
    }
    st->log_buf_cap = BK_LOG_BUF_SIZE;
    st->log_buf = mg_malloc(st->log_buf_cap);
    st->meta_log_id = max_id + 1;
    return bk_store_log_open_new(st, max_id + 1);
}

static void bk_store_cached_free(void *p)
{
    struct bk_cached *c = p;
    mg_free(c->data);
    mg_free(c);
}

static void bk_store_ledger_free(void *p)
{
    struct bk_ledger *l = p;
    mg_free(l->explicit_lac);
    mg_free(l);
}

static void bk_store_log_file_free(void *p)
{
    struct bk_log_file *lf = p;
    if (lf->fd >= 0)
        close(lf->fd);
    mg_free(lf);
}

static void bk_store_free_cache(struct bk_store *st)
{
    mg_map_fini_free(&st->cache, bk_store_cached_free);
    mg_map_init(&st->cache);
    st->cache_bytes = 0;
}

static void bk_flush_free(struct bk_flush *f)
{
    if (!f)
        return;
    mg_map_fini_free(&f->cache, bk_store_cached_free);
    mg_map_fini_free(&f->recs, mg_free);
    mg_free(f);
}

void bk_store_close(struct bk_store *st, bool skip_flush)
{
    if (!skip_flush && st->log_fd >= 0 && !st->io_failed && st->log_buf_len > 0 &&
        bk_store_log_flush_buf(st) == -MG_EREADONLY)
        MG_WARN(BK_MODULE,
                "entry log %x: %zu bytes could not be written for lack of space: "
                "the journal keeps them (lastMark did not pass them)",
                st->log_id, st->log_buf_len);
    bk_store_free_cache(st);
    mg_map_fini(&st->cache);
    bk_flush_free(st->flush); /* the queues point at it */
    mg_free(st->dropped);
    mg_map_fini_free(&st->ledgers, bk_store_ledger_free);
    mg_map_fini_free(&st->logs, bk_store_log_file_free);
    mg_map_fini_free(&st->log_meta, bk_store_meta_free);
    if (st->env)
        mdb_env_close(st->env);
    st->env = NULL;
    mg_free(st->log_buf);
    for (unsigned i = 0; i < st->n_ldirs; i++)
        mg_free(st->ldirs[i]);
    pthread_mutex_destroy(&st->logs_lock);
    pthread_mutex_destroy(&st->lock);
    pthread_cond_destroy(&st->cond);
    memset(st, 0, sizeof *st);
    st->log_fd = -1;
    st->notify_fd = -1;
}

/* Ledger record: u8 version, u8 flags (1 has_key, 2 fenced), u8 key_len, key,
 * BE64 last_entry, BE64 lac, BE32 explicit_lac_len, explicit_lac. */
static uint8_t *bk_store_ledger_encode(const struct bk_ledger *l, size_t *len)
{
    size_t n = 3 + l->key_len + 8 + 8 + 4 + l->explicit_lac_len;
    uint8_t *b = mg_malloc(n), *p = b;
    *p++ = BK_LEDGER_REC_VERSION;
    *p++ = (uint8_t)((l->has_key ? 1 : 0) | (l->fenced ? 2 : 0));
    *p++ = l->key_len;
    memcpy(p, l->key, l->key_len);
    p += l->key_len;
    mg_put_be64(p, (uint64_t)l->last_entry);
    mg_put_be64(p + 8, (uint64_t)l->lac);
    mg_put_be32(p + 16, (uint32_t)l->explicit_lac_len);
    p += 20;
    if (l->explicit_lac_len)
        memcpy(p, l->explicit_lac, l->explicit_lac_len);
    *len = n;
    return b;
}

static bool bk_store_ledger_decode(struct bk_ledger *l, const uint8_t *b, size_t n)
{
    if (n < 3 || b[0] != BK_LEDGER_REC_VERSION || b[2] > BK_MASTER_KEY_MAX)
        return false;
    size_t kl = b[2];
    if (n < 3 + kl + 20)
        return false;
    l->has_key = (b[1] & 1) != 0;
    l->fenced = (b[1] & 2) != 0;
    l->key_len = (uint8_t)kl;
    memcpy(l->key, b + 3, kl);
    const uint8_t *p = b + 3 + kl;
    l->last_entry = (int64_t)mg_get_be64(p);
    l->lac = (int64_t)mg_get_be64(p + 8);
    size_t el = mg_get_be32(p + 16);
    if (n < 3 + kl + 20 + el)
        return false;
    if (el) {
        l->explicit_lac = mg_malloc(el);
        memcpy(l->explicit_lac, p + 20, el);
        l->explicit_lac_len = el;
    }
    return true;
}

/* Highest entry id of the ledger in the committed index, -1 if none: the ordered keys make
 * it one cursor positioning. */
static int64_t bk_store_index_last_entry(struct bk_store *st, MDB_txn *txn, int64_t ledger)
{
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, st->idx_dbi, &cur) != 0)
        return -1;
    uint8_t kb[16];
    bk_store_cache_key(kb, ledger + 1, 0);
    MDB_val k = {sizeof kb, kb}, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    if (rc == 0)
        rc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
    else
        rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    int64_t last = -1;
    if (rc == 0 && k.mv_size == 16 && (int64_t)mg_get_be64(k.mv_data) == ledger)
        last = (int64_t)mg_get_be64((uint8_t *)k.mv_data + 8);
    mdb_cursor_close(cur);
    return last;
}

struct bk_ledger *bk_store_ledger(struct bk_store *st, int64_t ledger_id, bool create)
{
    struct bk_ledger *l = mg_map_get_u64(&st->ledgers, (uint64_t)ledger_id);
    if (l)
        return l;
    l = mg_calloc(1, sizeof *l);
    l->id = ledger_id;
    l->last_entry = -1;
    l->lac = -1;
    bool found = false;
    MDB_txn *txn;
    if (mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn) == 0) {
        uint8_t kb[8];
        mg_put_be64(kb, (uint64_t)ledger_id);
        MDB_val k = {sizeof kb, kb}, v;
        if (mdb_get(txn, st->meta_dbi, &k, &v) == 0)
            found = bk_store_ledger_decode(l, v.mv_data, v.mv_size);
        int64_t last = bk_store_index_last_entry(st, txn, ledger_id);
        if (last >= 0) {
            found = true;
            if (last > l->last_entry)
                l->last_entry = last;
        }
        mdb_txn_abort(txn);
    }
    if (!found && !create) {
        mg_free(l->explicit_lac);
        mg_free(l);
        return NULL;
    }
    mg_map_put_u64(&st->ledgers, (uint64_t)ledger_id, l);
    return l;
}

/* Storage thread: the current log is complete (full, or its directory is): sync it, so that
 * checkpoints only sync one, and start the next in a writable directory. */
static int bk_store_log_roll(struct bk_store *st)
{
    int rc = bk_store_log_sync(st);
    if (rc == 0 && bk_store_log_open_new(st, st->log_id + 1) < 0) {
        st->io_failed = true;
        rc = -MG_EIO;
    }
    return rc;
}

/* Storage thread: append c's record to the current entry log (rolling it first when it is
 * full) and note where its body went. 0, -MG_EREADONLY (out of space: the record waits in
 * the growing buffer), -MG_EAGAIN (the log failed: this record and those appended since the
 * last sync must be appended again, to the new log) or -MG_EIO. */
static int bk_store_log_append(struct bk_store *st, struct bk_cached *c)
{
    int rc = 0;
    size_t rec = 4 + c->len;
    if (!st->io_failed && !st->nospace && st->log_off + rec > (uint64_t)st->log_max &&
        st->log_off > BK_ENTRY_LOG_HEADER_SIZE)
        rc = bk_store_log_roll(st);
    if (st->io_failed)
        return -MG_EIO;
    /* out of space the buffer grows (adds are refused meanwhile, so only what was already
     * journalled and high-priority adds land here) */
    if (rc == 0 && st->log_buf_len > 0 && st->log_buf_len + rec > BK_LOG_BUF_SIZE && !st->nospace)
        rc = bk_store_log_flush_buf(st);
    if (rc == -MG_EAGAIN || rc == -MG_EIO)
        return rc;
    c->log_id = st->log_id;
    c->offset = st->log_off + 4;
    st->log_buf = mg_grow(st->log_buf, &st->log_buf_cap, st->log_buf_len + rec, 1, 0);
    mg_put_be32(st->log_buf + st->log_buf_len, (uint32_t)c->len);
    memcpy(st->log_buf + st->log_buf_len + 4, c->data, c->len);
    st->log_buf_len += rec;
    st->log_off += rec;
    if (st->log_buf_len >= BK_LOG_BUF_SIZE && !st->nospace) /* a big entry: write it now */
        rc = bk_store_log_flush_buf(st);
    if (rc == 0 && st->nospace)
        rc = -MG_EREADONLY;
    return rc;
}

/* Loop thread: the entry goes into the active write cache (readable at once); the storage
 * thread writes it to the entry log at the next checkpoint. */
static void bk_store_add_entry(struct bk_store *st, int64_t ledger_id, int64_t entry_id,
                               uint8_t *data, size_t len)
{
    uint8_t kb[16];
    bk_store_cache_key(kb, ledger_id, entry_id);
    struct bk_cached *c = mg_calloc(1, sizeof *c);
    c->ledger_id = ledger_id;
    c->entry_id = entry_id;
    c->data = data;
    c->len = len;
    struct bk_cached *old = mg_map_put(&st->cache, kb, sizeof kb, c);
    if (old) {
        st->cache_bytes -= old->len;
        bk_store_cached_free(old);
    }
    st->cache_bytes += len;
    size_t both = st->cache_bytes + (st->flush ? st->flush->cache_bytes : 0);
    if (both > st->cache_peak)
        st->cache_peak = both;
    struct bk_ledger *l = bk_store_ledger(st, ledger_id, true);
    if (entry_id > l->last_entry)
        l->last_entry = entry_id;
    if (len >= WIRE_BK_ENTRY_HDR_LEN) {
        struct wire_bk_entry_hdr h;
        wire_bk_entry_hdr_get(data, &h);
        if (h.lac > l->lac)
            l->lac = h.lac;
    }
    l->dirty = true;
}

int bk_store_apply(struct bk_store *st, int64_t ledger_id, int64_t entry_id, uint8_t *data,
                   size_t len)
{
    if (entry_id >= 0) {
        bk_store_add_entry(st, ledger_id, entry_id, data, len);
        return 0;
    }
    struct bk_ledger *l = bk_store_ledger(st, ledger_id, true);
    switch (entry_id) {
    case BK_META_LEDGER_KEY:
        if (!l->has_key && len <= BK_MASTER_KEY_MAX) {
            l->has_key = true;
            l->key_len = (uint8_t)len;
            memcpy(l->key, data, len);
            l->dirty = true;
        }
        break;
    case BK_META_FENCE_KEY:
        l->fenced = true;
        l->dirty = true;
        break;
    case BK_META_EXPLICIT_LAC:
        mg_free(l->explicit_lac);
        l->explicit_lac = NULL;
        l->explicit_lac_len = 0;
        if (len > 0) {
            l->explicit_lac = mg_malloc(len);
            memcpy(l->explicit_lac, data, len);
            l->explicit_lac_len = len;
        }
        if (len >= 16) {
            int64_t lac = (int64_t)mg_get_be64(data + 8);
            if (lac > l->lac)
                l->lac = lac;
        }
        l->dirty = true;
        break;
    default: /* FORCE_LEDGER and unknown meta-records carry no state */
        break;
    }
    return 0;
}

#define BK_READ_AGAIN (-1) /* the log went meanwhile: look the entry up again */
static int bk_store_read_indexed(struct bk_store *st, const uint8_t kb[16], uint8_t **data,
                                 size_t *len, bool *owned, bool last);

int bk_store_read(struct bk_store *st, int64_t ledger_id, int64_t entry_id, uint8_t **data,
                  size_t *len, bool *owned)
{
    *owned = false;
    struct bk_ledger *l = bk_store_ledger(st, ledger_id, false);
    if (!l)
        return WIRE_BK_ENOLEDGER;
    if (entry_id < 0)
        entry_id = l->last_entry;
    if (entry_id < 0)
        return WIRE_BK_ENOENTRY;
    uint8_t kb[16];
    bk_store_cache_key(kb, ledger_id, entry_id);
    /* the active half, then the half being flushed (freed only after the commit that points
     * the index at its entries), then the index */
    const struct bk_cached *c = bk_store_cached(st, kb);
    if (c) {
        *data = c->data;
        *len = c->len;
        return WIRE_BK_EOK;
    }
    /* a compaction may move the entry and delete its log between the lookup and the read:
     * the index then points at the copy, so look again */
    int rc = BK_READ_AGAIN;
    for (int attempt = 0; attempt < 3 && rc == BK_READ_AGAIN; attempt++)
        rc = bk_store_read_indexed(st, kb, data, len, owned, attempt == 2);
    return rc;
}

/* The entry at key kb through the index: pread from its entry log. A log missing is logged
 * only when last (the caller looks again otherwise). */
static int bk_store_read_indexed(struct bk_store *st, const uint8_t kb[16], uint8_t **data,
                                 size_t *len, bool *owned, bool last)
{
    int64_t ledger_id = (int64_t)mg_get_be64(kb), entry_id = (int64_t)mg_get_be64(kb + 8);
    MDB_txn *txn;
    if (mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn) != 0)
        return WIRE_BK_EIO;
    MDB_val k = {16, (void *)kb}, v;
    int rc = mdb_get(txn, st->idx_dbi, &k, &v);
    struct bk_store_loc loc;
    bool found = rc == 0 && bk_store_loc_get(&v, &loc);
    mdb_txn_abort(txn);
    if (rc == MDB_NOTFOUND)
        return WIRE_BK_ENOENTRY;
    if (!found)
        return WIRE_BK_EIO;
    uint32_t log_id = loc.log;
    uint64_t off = loc.off;
    uint32_t n = loc.len;
    uint8_t *b = mg_malloc(n ? n : 1);
    int prc = bk_store_log_pread(st, log_id, b, n, off);
    if (prc == -MG_ENOTFOUND) {
        mg_free(b);
        if (!last)
            return BK_READ_AGAIN;
        MG_ERROR(BK_MODULE, "entry log %x missing for ledger %" PRId64 " entry %" PRId64, log_id,
                 ledger_id, entry_id);
        return WIRE_BK_EIO;
    }
    if (prc < 0) {
        MG_ERROR(BK_MODULE, "entry log %x: read at %" PRIu64 " failed: %s", log_id, off,
                 errno == ENODATA ? "short file" : strerror(errno));
        mg_free(b);
        return WIRE_BK_EIO;
    }
    *data = b;
    *len = n;
    *owned = true;
    return WIRE_BK_EOK;
}

/*
 * lastMark (BK_MARK_*): two fixed-size slots, each with a sequence number and a CRC32C. A
 * checkpoint overwrites the older slot in place and fdatasyncs the file: one device flush,
 * where a new file, its rename and the directory's fsync were three (BookKeeper also
 * overwrites its lastMark file in place). A torn or damaged slot fails its CRC and the other
 * one, the mark before, is taken: never a mark past what the last completed checkpoint made
 * durable. A file in the old form (16 bytes: BE64 file id, BE64 offset) is read as it is and
 * replaced by a new one, through a temporary file, rename and directory fsync, on the first
 * write; so is a missing file.
 */
static void bk_store_mark_path(const struct bk_store *st, char *buf, size_t n)
{
    snprintf(buf, n, "%s/lastMark", st->dir);
}

static void bk_store_mark_encode(uint8_t b[BK_MARK_SLOT_SIZE], uint64_t seq, uint64_t file,
                                 uint64_t off)
{
    memset(b, 0, BK_MARK_SLOT_SIZE);
    memcpy(b, "BKLM", 4);
    mg_put_be32(b + 4, 1);
    mg_put_be64(b + 8, seq);
    mg_put_be64(b + 16, file);
    mg_put_be64(b + 24, off);
    mg_put_be32(b + BK_MARK_SLOT_SIZE - 4, mg_crc32c(0, b, BK_MARK_SLOT_SIZE - 4));
}

static bool bk_store_mark_decode(const uint8_t *b, uint64_t *seq, uint64_t *file, uint64_t *off)
{
    if (memcmp(b, "BKLM", 4) != 0 || mg_get_be32(b + 4) != 1 ||
        mg_get_be32(b + BK_MARK_SLOT_SIZE - 4) != mg_crc32c(0, b, BK_MARK_SLOT_SIZE - 4))
        return false;
    *seq = mg_get_be64(b + 8);
    *file = mg_get_be64(b + 16);
    *off = mg_get_be64(b + 24);
    return *seq > 0;
}

/* The durable mark and the sequence of its slot (0: none, or the old 16-byte form). 0 or
 * -MG_EIO (logged: no valid slot). */
static int bk_store_mark_load(const struct bk_store *st, uint64_t *seq, uint64_t *file,
                              uint64_t *off)
{
    *seq = *file = *off = 0;
    char path[4096];
    bk_store_mark_path(st, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : mg_err_from_errno(errno);
    uint8_t b[BK_MARK_FILE_SIZE];
    ssize_t n = pread(fd, b, sizeof b, 0);
    int e = errno;
    close(fd);
    if (n < 0) {
        MG_ERROR(BK_MODULE, "cannot read %s: %s", path, strerror(e));
        return mg_err_from_errno(e);
    }
    if (n == 16) { /* the old form */
        *file = mg_get_be64(b);
        *off = mg_get_be64(b + 8);
        return 0;
    }
    bool found = false;
    for (unsigned i = 0; i < 2 && BK_MARK_SLOT_OFF(i) + BK_MARK_SLOT_SIZE <= (uint64_t)n; i++) {
        const uint8_t *p = b + BK_MARK_SLOT_OFF(i);
        uint64_t s, f, o;
        if (!bk_store_mark_decode(p, &s, &f, &o)) {
            if (!bk_all_zero(p, BK_MARK_SLOT_SIZE)) /* (a slot never written is zeros) */
                MG_WARN(BK_MODULE, "%s: slot %u is damaged (a write torn by a crash?)", path, i);
        } else if (s > *seq) {
            *seq = s;
            *file = f;
            *off = o;
            found = true;
        }
    }
    if (!found) {
        MG_ERROR(BK_MODULE, "%s: no valid slot (%zd bytes): damaged", path, n);
        return -MG_EIO;
    }
    return 0;
}

int bk_store_read_mark(const struct bk_store *st, uint64_t *file, uint64_t *off)
{
    uint64_t seq;
    return bk_store_mark_load(st, &seq, file, off);
}

/* A new lastMark file with the mark in slot 1 (slot 0 empty): temporary file, fsync, rename,
 * directory fsync. errno value or 0. */
static int bk_store_mark_create(const char *path, const char *dir, const uint8_t *slot)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    uint8_t b[BK_MARK_FILE_SIZE];
    memset(b, 0, sizeof b);
    memcpy(b + BK_MARK_SLOT_OFF(1), slot, BK_MARK_SLOT_SIZE);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int e = fd < 0 || mg_write_all(fd, b, sizeof b) < 0 ? errno : 0;
    if (e == 0 && fsync(fd) != 0)
        e = errno;
    if (fd >= 0)
        close(fd);
    if (e == 0 && rename(tmp, path) != 0)
        e = errno;
    if (e == 0 && mg_fsync_dir(dir) < 0)
        e = errno ? errno : EIO;
    return e;
}

static int bk_store_write_mark(struct bk_store *st, uint64_t file, uint64_t off)
{
    char path[4096];
    bk_store_mark_path(st, path, sizeof path);
    int rc = 0;
    if (st->mark_seq == 0) { /* first write of this run: which slot is the newer */
        uint64_t f, o;
        rc = bk_store_mark_load(st, &st->mark_seq, &f, &o);
    }
    int e = 0;
    if (rc == 0) {
        uint8_t slot[BK_MARK_SLOT_SIZE];
        uint64_t seq = st->mark_seq + 1;
        bk_store_mark_encode(slot, seq, file, off);
        if (st->mark_seq == 0) {
            e = bk_store_mark_create(path, st->dir, slot);
        } else {
            int fd = open(path, O_WRONLY | O_CLOEXEC);
            e = fd < 0 || mg_pwrite_all(fd, slot, sizeof slot, BK_MARK_SLOT_OFF(seq % 2)) < 0
                    ? errno
                    : 0;
            if (e == 0 && fdatasync(fd) != 0)
                e = errno;
            if (fd >= 0)
                close(fd);
        }
        /* after a failure the slot's content is unknown: the next write goes to the same
         * one, leaving the valid older mark alone */
        if (e == 0)
            st->mark_seq = seq;
    }
    if (rc != 0 || e != 0) {
        uint64_t held;
        if (mg_ratelimit_allow(&st->rl_ckpt, MG_RATELIMIT_INTERVAL_MS, &held))
            MG_ERROR(BK_MODULE, "cannot write %s: %s (%" PRIu64 " more since the last line)", path,
                     e ? strerror(e) : mg_strerror(rc), held);
        return rc ? rc : bk_store_no_space(e) ? -MG_EREADONLY : mg_err_from_errno(e);
    }
    return 0;
}

/* A failed index transaction: nothing is lost (the journal is not trimmed) and the next
 * checkpoint tries again. -MG_EREADONLY when the disk is full, else -MG_EIO. */
static int bk_store_index_failed(struct bk_store *st, const char *what, int mrc)
{
    uint64_t held;
    if (mg_ratelimit_allow(&st->rl_ckpt, MG_RATELIMIT_INTERVAL_MS, &held))
        MG_ERROR(BK_MODULE, "index: %s: %s (%" PRIu64 " more since the last line)", what,
                 mdb_strerror(mrc), held);
    return bk_store_no_space(mrc) ? -MG_EREADONLY : -MG_EIO;
}

/* End a write transaction: commit it when every step succeeded (mrc 0), else abort it. 0, or
 * what bk_store_index_failed returns for what. */
static int bk_store_txn_end(struct bk_store *st, MDB_txn *txn, int mrc, const char *what)
{
    if (mrc == 0)
        mrc = mdb_txn_commit(txn);
    else
        mdb_txn_abort(txn);
    return mrc == 0 ? 0 : bk_store_index_failed(st, what, mrc);
}

/* ---- checkpoints on the storage thread ------------------------------------------------ */

static int bk_store_cmp_cached(const void *a, const void *b)
{
    const struct bk_cached *x = *(const struct bk_cached *const *)a;
    const struct bk_cached *y = *(const struct bk_cached *const *)b;
    if (x->ledger_id != y->ledger_id)
        return x->ledger_id < y->ledger_id ? -1 : 1;
    return x->entry_id < y->entry_id ? -1 : x->entry_id > y->entry_id;
}

/* Test hook: park at this gate while it is set; false when the thread is told to abandon its
 * job (a simulated crash). Storage thread. */
static bool bk_store_gate_pass(struct bk_store *st, enum bk_gate at)
{
    pthread_mutex_lock(&st->lock);
    while (st->gate_at == at && !st->abandon) {
        st->gate_parked = true;
        pthread_cond_broadcast(&st->cond);
        pthread_cond_wait(&st->cond, &st->lock);
    }
    st->gate_parked = false;
    bool go = !st->abandon;
    pthread_mutex_unlock(&st->lock);
    return go;
}

static int bk_store_flush_run_again(struct bk_store *st, struct bk_flush *f)
{
    f->appended = false;
    return bk_store_flush_run(st, f);
}

int bk_store_flush_run(struct bk_store *st, struct bk_flush *f)
{
    if (st->io_failed)
        return -MG_EIO;
    if (!bk_store_gate_pass(st, BK_GATE_BEFORE_WRITE))
        return -MG_ECANCELED;
    int rc = 0;
    /* the current log's directory filled up or failed: what follows goes to a log in a
     * writable one (LedgerDirsManager's listener rolls the log the same way) */
    if (!f->appended && !st->nospace && !bk_store_dir_writable(st, st->log_dir) &&
        bk_store_any_dir_writable(st)) {
        MG_INFO(BK_MODULE, "entry log %x: %s is no longer writable; rolling to another directory",
                st->log_id, st->ldirs[st->log_dir]);
        rc = bk_store_log_roll(st);
        if (rc < 0 && rc != -MG_EAGAIN) /* (EAGAIN: it failed, and rolled all the same) */
            return rc;
        rc = 0;
    }
    if (!f->appended) {
        /* in (ledger, entry) order, as DbLedgerStorage flushes its write cache: a ledger's
         * entries lie together in the log, for catch-up reads and for gc, which frees a log
         * once every ledger in it is gone */
        struct bk_cached **v = mg_malloc((f->cache.count ? f->cache.count : 1) * sizeof *v);
        size_t n = 0, pos = 0;
        void *val;
        while (mg_map_next(&f->cache, &pos, NULL, NULL, &val))
            v[n++] = val;
        qsort(v, n, sizeof *v, bk_store_cmp_cached);
        for (size_t i = 0; i < n && rc != -MG_EIO && rc != -MG_EAGAIN; i++)
            rc = bk_store_log_append(st, v[i]);
        mg_free(v);
        if (rc == -MG_EIO)
            return rc;
        /* out of space the records wait in the buffer: retried below */
        f->appended = rc != -MG_EAGAIN;
    }
    f->log_id = st->log_id;
    rc = f->appended ? bk_store_log_sync(st) : -MG_EAGAIN;
    /* the log failed and the next is in another directory: all of the half again there
     * (each failure takes a directory out, so this ends) */
    if (rc == -MG_EAGAIN)
        return bk_store_flush_run_again(st, f);
    if (rc < 0)
        return rc;
    if (!bk_store_gate_pass(st, BK_GATE_BEFORE_INDEX))
        return -MG_ECANCELED;
    MDB_txn *txn;
    int mrc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (mrc != 0)
        return bk_store_index_failed(st, "cannot begin a transaction", mrc);
    size_t pos = 0;
    const char *k;
    size_t kl;
    void *v;
    while (mrc == 0 && mg_map_next(&f->cache, &pos, &k, &kl, &v)) {
        const struct bk_cached *c = v;
        uint8_t loc[16];
        mg_put_be32(loc, c->log_id);
        mg_put_be64(loc + 4, c->offset);
        mg_put_be32(loc + 12, (uint32_t)c->len);
        MDB_val mk = {kl, (void *)k}, mv = {sizeof loc, loc};
        mrc = mdb_put(txn, st->idx_dbi, &mk, &mv, 0);
    }
    pos = 0;
    while (mrc == 0 && mg_map_next(&f->recs, &pos, &k, &kl, &v)) {
        struct bk_flush_rec *r = v;
        uint8_t kb[8];
        uint64_t id;
        memcpy(&id, k, sizeof id); /* u64 keys are stored in host order */
        mg_put_be64(kb, id);
        MDB_val mk = {sizeof kb, kb}, mv = {r->len, r->b};
        mrc = mdb_put(txn, st->meta_dbi, &mk, &mv, 0);
    }
    rc = bk_store_txn_end(st, txn, mrc, "commit failed");
    if (rc < 0)
        return rc;
    if (!bk_store_gate_pass(st, BK_GATE_BEFORE_MARK))
        return -MG_ECANCELED;
    rc = bk_store_write_mark(st, f->mark_file, f->mark_off);
    if (rc == 0 && st->journal) /* only what the durable lastMark no longer needs */
        bk_journal_trim(st->journal, f->mark_file, f->journal_keep);
    return rc;
}

/* Append op to the list *head..*tail (under st->lock). */
static void bk_sop_append(struct bk_sop **head, struct bk_sop **tail, struct bk_sop *op)
{
    op->next = NULL;
    if (*tail)
        (*tail)->next = op;
    else
        *head = op;
    *tail = op;
}

/* Storage thread: a completed operation goes to the loop (under st->lock). */
static void bk_store_complete(struct bk_store *st, struct bk_sop *op)
{
    bk_sop_append(&st->d_head, &st->d_tail, op);
    pthread_cond_broadcast(&st->cond);
    uint64_t one = 1;
    if (st->notify_fd >= 0 && write(st->notify_fd, &one, sizeof one) < 0) {
        /* EAGAIN only: the counter is far from overflowing and the loop reads it */
    }
}

static void *bk_store_thread_main(void *arg)
{
    struct bk_store *st = arg;
    pthread_mutex_lock(&st->lock);
    for (;;) {
        while (!st->q_head && !st->stopping)
            pthread_cond_wait(&st->cond, &st->lock);
        struct bk_sop *op = st->q_head;
        if (!op)
            break;
        st->q_head = op->next;
        if (!st->q_head)
            st->q_tail = NULL;
        pthread_mutex_unlock(&st->lock);
        uint64_t t0 = mg_mono_ns();
        if (op->gc && !bk_store_gate_pass(st, BK_GATE_GC))
            op->rc = -MG_ECANCELED;
        else
            op->rc = op->run(st, op);
        uint64_t dt = mg_mono_ns() - t0;
        if (!op->gc)
            bk_lat_add(&st->lat_ckpt, dt, op->rc == 0);
        MG_DEBUG(BK_MODULE, "storage thread: %s operation %s in %.1f ms",
                 op->gc ? "gc" : "checkpoint", op->rc == 0 ? "done" : mg_strerror(op->rc),
                 (double)dt / 1e6);
        pthread_mutex_lock(&st->lock);
        bk_store_complete(st, op);
    }
    pthread_mutex_unlock(&st->lock);
    return NULL;
}

static void bk_store_notify_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    uint64_t n;
    if (read(fd, &n, sizeof n) < 0) { /* EAGAIN: a waiter took the operations already */
    }
    bk_server_store_done(arg);
}

int bk_store_thread_start(struct bk_store *st, struct event_base *base, struct bk_server *srv)
{
    int rc = bk_notify_open(base, bk_store_notify_cb, srv, &st->notify_fd, &st->notify_ev);
    if (rc < 0)
        return rc;
    int e = pthread_create(&st->thread, NULL, bk_store_thread_main, st);
    if (e != 0) {
        MG_ERROR(BK_MODULE, "cannot start the storage thread: %s", strerror(e));
        return mg_err_from_errno(e);
    }
    st->thread_started = true;
    return 0;
}

void bk_store_thread_stop(struct bk_store *st, bool abandon)
{
    if (st->thread_started) {
        pthread_mutex_lock(&st->lock);
        st->stopping = true;
        st->abandon = abandon;
        while (abandon && st->q_head) { /* never taken: as if the crash came first */
            struct bk_sop *op = st->q_head;
            st->q_head = op->next;
            op->rc = -MG_ECANCELED;
            bk_store_complete(st, op);
        }
        st->q_tail = NULL;
        pthread_cond_broadcast(&st->cond);
        pthread_mutex_unlock(&st->lock);
        pthread_join(st->thread, NULL);
        st->thread_started = false;
        MG_INFO(BK_MODULE,
                "storage thread: %" PRIu64 " checkpoint operations p50 %.3f p99 %.3f max %.3f ms, "
                "entry-log fdatasync p50 %.3f p99 %.3f ms, %" PRIu64
                " write-behind chunks (log2 bucket bounds)",
                atomic_load(&st->lat_ckpt.count), bk_lat_quantile_ms(&st->lat_ckpt, 0.5),
                bk_lat_quantile_ms(&st->lat_ckpt, 0.99), bk_lat_quantile_ms(&st->lat_ckpt, 1.0),
                bk_lat_quantile_ms(&st->lat_log_sync, 0.5),
                bk_lat_quantile_ms(&st->lat_log_sync, 0.99), atomic_load(&st->wb_chunks));
    }
    bk_notify_close(&st->notify_fd, &st->notify_ev);
}

void bk_store_submit(struct bk_store *st, struct bk_sop *op)
{
    pthread_mutex_lock(&st->lock);
    if (st->thread_started && !st->stopping) {
        bk_sop_append(&st->q_head, &st->q_tail, op);
        pthread_cond_broadcast(&st->cond);
    } else {
        op->rc = -MG_ECANCELED;
        bk_store_complete(st, op);
    }
    pthread_mutex_unlock(&st->lock);
}

void bk_store_wait_done(struct bk_store *st)
{
    pthread_mutex_lock(&st->lock);
    while (!st->d_head && st->thread_started)
        pthread_cond_wait(&st->cond, &st->lock);
    pthread_mutex_unlock(&st->lock);
}

struct bk_sop *bk_store_take_done(struct bk_store *st)
{
    pthread_mutex_lock(&st->lock);
    struct bk_sop *op = st->d_head;
    st->d_head = st->d_tail = NULL;
    pthread_mutex_unlock(&st->lock);
    return op;
}

static size_t bk_store_cache_drop(struct mg_map *cache, int64_t ledger_id);

static bool bk_store_changed(const struct bk_store *st)
{
    if (st->cache.count || st->mark_file != st->durable_file || st->mark_off != st->durable_off)
        return true;
    size_t pos = 0;
    void *v;
    while (mg_map_next(&st->ledgers, &pos, NULL, NULL, &v))
        if (((const struct bk_ledger *)v)->dirty)
            return true;
    return false;
}

static int bk_flush_run(struct bk_store *st, struct bk_sop *op)
{
    return bk_store_flush_run(st, (struct bk_flush *)op);
}

/* Loop thread: a checkpoint came back. Done: its entries are counted in their logs and the
 * half is dropped. Failed: it is kept, still readable, to be retried as it is (without the
 * ledgers gc dropped meanwhile). */
static void bk_flush_done(struct bk_server *s, struct bk_sop *op)
{
    struct bk_store *st = &s->store;
    struct bk_flush *f = (struct bk_flush *)op;
    st->flush_busy = false;
    for (size_t i = 0; i < st->n_dropped; i++) {
        f->cache_bytes -= bk_store_cache_drop(&f->cache, st->dropped[i]);
        mg_free(mg_map_del_u64(&f->recs, (uint64_t)st->dropped[i]));
    }
    st->n_dropped = 0;
    int rc = op->rc;
    if (rc == 0) {
        size_t pos = 0;
        void *v;
        while (mg_map_next(&f->cache, &pos, NULL, NULL, &v)) {
            const struct bk_cached *c = v;
            bk_store_meta(st, c->log_id)->total += 4 + c->len;
            bk_store_meta_live(st, c->log_id, c->ledger_id, 4 + (int64_t)c->len);
        }
        bk_store_meta(st, f->log_id); /* the current log has metadata even while empty */
        st->meta_log_id = f->log_id;
        st->durable_file = f->mark_file;
        st->durable_off = f->mark_off;
        st->flush = NULL;
        bk_flush_free(f);
    }
    bk_server_flushed(s, rc);
}

bool bk_store_cache_full(const struct bk_store *st)
{
    return st->cache_bytes > st->cache_max && st->flush_busy && !st->io_failed && !st->nospace;
}

int bk_store_flush_begin(struct bk_store *st, bool force)
{
    if (st->flush_busy)
        return -MG_EBUSY;
    struct bk_flush *f = st->flush; /* the last one failed: retried as it is */
    if (!f) {
        if (!force && !bk_store_changed(st))
            return 0;
        f = mg_calloc(1, sizeof *f);
        f->op.run = bk_flush_run;
        f->op.done = bk_flush_done;
        f->cache = st->cache; /* the swap: adds go on into a new, empty half */
        f->cache_bytes = st->cache_bytes;
        mg_map_init(&st->cache);
        st->cache_bytes = 0;
        mg_map_init(&f->recs);
        size_t pos = 0;
        void *v;
        while (mg_map_next(&st->ledgers, &pos, NULL, NULL, &v)) {
            struct bk_ledger *l = v;
            if (!l->dirty)
                continue;
            size_t n;
            uint8_t *enc = bk_store_ledger_encode(l, &n);
            struct bk_flush_rec *r = mg_malloc(sizeof *r + n);
            r->len = n;
            memcpy(r->b, enc, n);
            mg_free(enc);
            mg_map_put_u64(&f->recs, (uint64_t)l->id, r);
            l->dirty = false;
        }
        f->mark_file = st->mark_file;
        f->mark_off = st->mark_off;
        st->flush = f;
    }
    f->journal_keep = st->journal_keep;
    st->flush_busy = true;
    bk_store_submit(st, &f->op);
    return 1;
}

void bk_store_gate(struct bk_store *st, enum bk_gate at)
{
    pthread_mutex_lock(&st->lock);
    st->gate_at = at;
    pthread_cond_broadcast(&st->cond);
    pthread_mutex_unlock(&st->lock);
}

bool bk_store_gate_parked(struct bk_store *st)
{
    pthread_mutex_lock(&st->lock);
    bool p = st->gate_parked;
    pthread_mutex_unlock(&st->lock);
    return p;
}

/* ---- garbage collection and compaction ---------------------------------------------------- */

int bk_store_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* A list of ids (ledgers, entry logs) being collected; bk_store_ids_done sorts it. */
struct bk_store_ids {
    int64_t *v;
    size_t n, cap;
};

static void bk_store_ids_add(struct bk_store_ids *l, int64_t id)
{
    l->v = mg_grow(l->v, &l->cap, l->n + 1, sizeof *l->v, 0);
    l->v[l->n++] = id;
}

/* The collected ids ascending, each once (*n of them; caller frees). */
static int64_t *bk_store_ids_done(struct bk_store_ids *l, size_t *n)
{
    if (l->n > 1) {
        qsort(l->v, l->n, sizeof *l->v, bk_store_cmp_i64);
        size_t u = 1;
        for (size_t i = 1; i < l->n; i++)
            if (l->v[i] != l->v[u - 1])
                l->v[u++] = l->v[i];
        l->n = u;
    }
    *n = l->n;
    return l->v;
}

int64_t *bk_store_ledger_ids(struct bk_store *st, size_t *n)
{
    struct bk_store_ids l = {0};
    size_t pos = 0;
    const char *k;
    size_t kl;
    void *val;
    while (mg_map_next(&st->ledgers, &pos, &k, &kl, &val))
        bk_store_ids_add(&l, ((struct bk_ledger *)val)->id);
    MDB_txn *txn;
    if (mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn) == 0) {
        MDB_cursor *cur;
        MDB_dbi dbis[2] = {st->meta_dbi, st->idx_dbi};
        for (int d = 0; d < 2; d++) {
            if (mdb_cursor_open(txn, dbis[d], &cur) != 0)
                continue;
            MDB_val mk, mv;
            int rc = mdb_cursor_get(cur, &mk, &mv, MDB_FIRST);
            while (rc == 0 && mk.mv_size >= 8) {
                int64_t id = (int64_t)mg_get_be64(mk.mv_data);
                bk_store_ids_add(&l, id);
                if (d == 0) {
                    rc = mdb_cursor_get(cur, &mk, &mv, MDB_NEXT);
                    continue;
                }
                /* the index: jump to the next ledger */
                uint8_t kb[16];
                bk_store_cache_key(kb, id + 1, 0);
                mk.mv_size = sizeof kb;
                mk.mv_data = kb;
                rc = id == INT64_MAX ? MDB_NOTFOUND : mdb_cursor_get(cur, &mk, &mv, MDB_SET_RANGE);
            }
            mdb_cursor_close(cur);
        }
        mdb_txn_abort(txn);
    }
    for (int h = 0; h < 2; h++) {
        const struct mg_map *m = h == 0 ? &st->cache : st->flush ? &st->flush->cache : NULL;
        pos = 0;
        while (m && mg_map_next(m, &pos, &k, &kl, &val))
            bk_store_ids_add(&l, ((struct bk_cached *)val)->ledger_id);
    }
    return bk_store_ids_done(&l, n);
}

/* Remove the ledger's entries from one write-cache half; the bytes removed. */
static size_t bk_store_cache_drop(struct mg_map *cache, int64_t ledger_id)
{
    size_t pos = 0, bytes = 0;
    struct bk_store_ids keys = {0};
    void *val;
    while (mg_map_next(cache, &pos, NULL, NULL, &val)) /* collect first: no deletes meanwhile */
        if (((struct bk_cached *)val)->ledger_id == ledger_id)
            bk_store_ids_add(&keys, ((struct bk_cached *)val)->entry_id);
    for (size_t i = 0; i < keys.n; i++) {
        uint8_t kb[16];
        bk_store_cache_key(kb, ledger_id, keys.v[i]);
        struct bk_cached *c = mg_map_del(cache, kb, sizeof kb);
        if (c) {
            bytes += c->len;
            bk_store_cached_free(c);
        }
    }
    mg_free(keys.v);
    return bytes;
}

static int bk_store_drop_run(struct bk_store *st, struct bk_sop *op)
{
    int64_t ledger_id = ((struct bk_gc_op *)op)->id;
    MDB_txn *txn;
    int mrc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (mrc != 0)
        return bk_store_index_failed(st, "gc: cannot begin a transaction", mrc);
    MDB_cursor *cur;
    mrc = mdb_cursor_open(txn, st->idx_dbi, &cur);
    if (mrc == 0) {
        uint8_t kb[16];
        bk_store_cache_key(kb, ledger_id, 0);
        MDB_val k = {sizeof kb, kb}, v;
        int rc;
        /* position at the ledger's first remaining key each time: simple and exact */
        while ((rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE)) == 0 && k.mv_size == 16 &&
               (int64_t)mg_get_be64(k.mv_data) == ledger_id) {
            mrc = mdb_cursor_del(cur, 0);
            if (mrc != 0)
                break;
            k.mv_size = sizeof kb;
            k.mv_data = kb;
        }
        if (rc != 0 && rc != MDB_NOTFOUND && mrc == 0)
            mrc = rc;
        mdb_cursor_close(cur);
    }
    if (mrc == 0) {
        uint8_t kb[8];
        mg_put_be64(kb, (uint64_t)ledger_id);
        MDB_val k = {sizeof kb, kb};
        mrc = mdb_del(txn, st->meta_dbi, &k, NULL);
        if (mrc == MDB_NOTFOUND)
            mrc = 0;
    }
    return bk_store_txn_end(st, txn, mrc, "gc: dropping a ledger failed");
}

static struct bk_gc_op *bk_gc_op_new(bk_sop_run_fn run, bk_sop_done_fn done, int64_t id, void *arg)
{
    struct bk_gc_op *o = mg_calloc(1, sizeof *o);
    o->op.run = run;
    o->op.done = done;
    o->op.gc = true;
    o->id = id;
    o->arg = arg;
    return o;
}

void bk_store_drop_ledger(struct bk_store *st, int64_t ledger_id, bk_sop_done_fn done, void *arg)
{
    /* memory now: the ledger is gone from the metadata store, nothing will add to it. A
     * checkpoint queued before puts its entries in the index; the drop, queued after it,
     * takes them out again. One in flight that fails is retried without them. */
    st->cache_bytes -= bk_store_cache_drop(&st->cache, ledger_id);
    if (st->flush && !st->flush_busy) {
        st->flush->cache_bytes -= bk_store_cache_drop(&st->flush->cache, ledger_id);
        mg_free(mg_map_del_u64(&st->flush->recs, (uint64_t)ledger_id));
    } else if (st->flush) {
        st->dropped =
            mg_grow(st->dropped, &st->cap_dropped, st->n_dropped + 1, sizeof *st->dropped, 8);
        st->dropped[st->n_dropped++] = ledger_id;
    }
    struct bk_ledger *l = mg_map_del_u64(&st->ledgers, (uint64_t)ledger_id);
    if (l)
        bk_store_ledger_free(l);
    struct bk_compact *c = st->compacting;
    if (c) {
        c->dropped = mg_grow(c->dropped, &c->cap_dropped, c->n_dropped + 1, sizeof *c->dropped, 8);
        c->dropped[c->n_dropped++] = ledger_id;
    }
    size_t pos = 0;
    void *val;
    while (mg_map_next(&st->log_meta, &pos, NULL, NULL, &val)) {
        struct bk_log_meta *m = val;
        uint64_t *b = mg_map_del_u64(&m->ledgers, (uint64_t)ledger_id);
        if (b) {
            m->live -= *b;
            mg_free(b);
        }
    }
    bk_store_submit(st, &bk_gc_op_new(bk_store_drop_run, done, ledger_id, arg)->op);
}

int64_t *bk_store_log_ids(struct bk_store *st, size_t *n)
{
    struct bk_store_ids l = {0};
    size_t pos = 0;
    void *val;
    while (mg_map_next(&st->log_meta, &pos, NULL, NULL, &val)) {
        const struct bk_log_meta *m = val;
        if (m->id < st->meta_log_id) /* the current log (and any later one) stays */
            bk_store_ids_add(&l, m->id);
    }
    return bk_store_ids_done(&l, n);
}

const struct bk_log_meta *bk_store_log_meta(struct bk_store *st, uint32_t id)
{
    return mg_map_get_u64(&st->log_meta, id);
}

/* Storage thread: close, unlink, sync the directory. */
static int bk_store_unlink_log(struct bk_store *st, uint32_t id)
{
    char path[4096];
    pthread_mutex_lock(&st->logs_lock); /* no read is using its descriptor */
    struct bk_log_file *lf = mg_map_del_u64(&st->logs, id);
    unsigned dir = lf ? lf->dir : 0;
    if (lf)
        bk_store_log_file_free(lf);
    pthread_mutex_unlock(&st->logs_lock);
    if (!lf)
        return 0; /* deleted before */
    bk_store_log_path(st, dir, id, path, sizeof path);
    if (unlink(path) != 0 && errno != ENOENT) {
        MG_ERROR(BK_MODULE, "gc: cannot delete entry log %s: %s", path, strerror(errno));
        return mg_err_from_errno(errno);
    }
    return mg_fsync_dir(st->ldirs[dir]);
}

static int bk_store_refuse_run(struct bk_store *st, struct bk_sop *op)
{
    (void)st;
    (void)op;
    return -MG_EINVAL;
}

static int bk_store_delete_run(struct bk_store *st, struct bk_sop *op)
{
    return bk_store_unlink_log(st, (uint32_t)((struct bk_gc_op *)op)->id);
}

void bk_store_delete_log(struct bk_store *st, uint32_t id, bk_sop_done_fn done, void *arg)
{
    struct bk_gc_op *o = bk_gc_op_new(bk_store_delete_run, done, id, arg);
    const struct bk_log_meta *m = mg_map_get_u64(&st->log_meta, id);
    o->bytes = m ? m->total : 0;
    if (id >= st->meta_log_id) /* never the current log */
        o->op.run = bk_store_refuse_run;
    bk_store_submit(st, &o->op);
}

void bk_store_log_forget(struct bk_store *st, uint32_t id)
{
    struct bk_log_meta *m = mg_map_del_u64(&st->log_meta, id);
    if (m)
        bk_store_meta_free(m);
}

void bk_store_compact_begin(struct bk_store *st, struct bk_compact *c, uint32_t id)
{
    memset(c, 0, sizeof *c);
    c->log_id = id;
    struct bk_log_meta *m = mg_map_get_u64(&st->log_meta, id);
    if (!m)
        return;
    struct bk_store_ids l = {0};
    size_t pos = 0;
    const char *k;
    while (mg_map_next(&m->ledgers, &pos, &k, NULL, NULL)) {
        uint64_t lid;
        memcpy(&lid, k, sizeof lid); /* u64 keys are stored in host order */
        bk_store_ids_add(&l, (int64_t)lid);
    }
    c->ledgers = bk_store_ids_done(&l, &c->n_ledgers);
    st->compacting = c;
}

void bk_store_compact_fini(struct bk_store *st, struct bk_compact *c)
{
    if (st->compacting == c)
        st->compacting = NULL;
    mg_free(c->ledgers);
    mg_free(c->copies);
    mg_free(c->dropped);
    memset(c, 0, sizeof *c);
}

/* Where a slice copied an entry: its key and its old and new places. */
struct bk_copy {
    int64_t entry;
    uint64_t off; /* in the old log */
    uint32_t len;
    uint32_t new_log;
    uint64_t new_off;
};

/* Storage thread: copy the next batch (at most 64) of ledgers[i]'s entries that the index
 * points into the old log; appends them to *pend. */
static int bk_store_compact_batch(struct bk_store *st, struct bk_compact *c, size_t want,
                                  struct bk_copy **pend, size_t *n_pend, size_t *cap_pend,
                                  size_t *bytes)
{
    int64_t ledger = c->ledgers[c->i];
    struct bk_copy batch[64];
    size_t nb = 0;
    bool ledger_done = false;
    MDB_txn *txn;
    MDB_cursor *cur;
    if (bk_store_read_index(st, &txn, &cur) < 0)
        return -MG_EIO;
    uint8_t kb[16];
    bk_store_cache_key(kb, ledger, c->next_entry);
    MDB_val k = {sizeof kb, kb}, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    for (;;) {
        if (rc != 0 || k.mv_size != 16 || (int64_t)mg_get_be64(k.mv_data) != ledger) {
            ledger_done = true;
            break;
        }
        if (nb == 64 || nb >= want)
            break;
        int64_t e = (int64_t)mg_get_be64((uint8_t *)k.mv_data + 8);
        c->next_entry = e + 1;
        struct bk_store_loc loc;
        if (bk_store_loc_get(&v, &loc) && loc.log == c->log_id) {
            batch[nb].entry = e;
            batch[nb].off = loc.off;
            batch[nb].len = loc.len;
            nb++;
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    bk_store_read_end(txn, cur);
    for (size_t i = 0; i < nb; i++) {
        struct bk_cached tmp = {
            .ledger_id = ledger, .entry_id = batch[i].entry, .len = batch[i].len};
        tmp.data = mg_malloc(tmp.len ? tmp.len : 1);
        int prc = bk_store_log_pread(st, c->log_id, tmp.data, tmp.len, batch[i].off);
        if (prc < 0) {
            MG_ERROR(BK_MODULE, "compaction: entry log %x: read at %" PRIu64 " failed: %s",
                     c->log_id, batch[i].off,
                     prc == -MG_ENOTFOUND ? "no such log" : strerror(errno));
            mg_free(tmp.data);
            return -MG_EIO;
        }
        int arc = bk_store_log_append(st, &tmp);
        mg_free(tmp.data);
        if (arc < 0)
            return arc;
        batch[i].new_log = tmp.log_id;
        batch[i].new_off = tmp.offset;
        *pend = mg_grow(*pend, cap_pend, *n_pend + 1, sizeof **pend, 64);
        (*pend)[(*n_pend)++] = batch[i];
        c->copies = mg_grow(c->copies, &c->cap_copies, c->n_copies + 1, sizeof *c->copies, 64);
        c->copies[c->n_copies++] = (struct bk_compact_copy){
            .ledger = ledger, .len = batch[i].len, .log = tmp.log_id, .indexed = false};
        *bytes += batch[i].len;
        c->entries++;
        c->bytes += batch[i].len;
    }
    if (ledger_done) {
        c->i++;
        c->next_entry = 0;
    }
    return 0;
}

/* Storage thread: sync the copies, then point the index at those whose entry it still
 * places in the old log (one commit). */
static int bk_store_compact_commit(struct bk_store *st, struct bk_compact *c,
                                   const struct bk_copy *pend, size_t n, size_t first_copy)
{
    int rc = bk_store_log_sync(st);
    if (rc < 0)
        return rc;
    MDB_txn *txn;
    int mrc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (mrc != 0)
        return bk_store_index_failed(st, "compaction: cannot begin a transaction", mrc);
    for (size_t i = 0; i < n && mrc == 0; i++) {
        struct bk_compact_copy *cp = &c->copies[first_copy + i];
        uint8_t kb[16];
        bk_store_cache_key(kb, cp->ledger, pend[i].entry);
        MDB_val k = {sizeof kb, kb}, v;
        struct bk_store_loc loc;
        if (mdb_get(txn, st->idx_dbi, &k, &v) != 0 || !bk_store_loc_get(&v, &loc) ||
            loc.log != c->log_id || loc.off != pend[i].off)
            continue; /* written again (or dropped) since: the copy is dead */
        uint8_t nv[16];
        mg_put_be32(nv, pend[i].new_log);
        mg_put_be64(nv + 4, pend[i].new_off);
        mg_put_be32(nv + 12, pend[i].len);
        MDB_val mv = {sizeof nv, nv};
        mrc = mdb_put(txn, st->idx_dbi, &k, &mv, 0);
        cp->indexed = mrc == 0;
    }
    rc = bk_store_txn_end(st, txn, mrc, "compaction: commit failed");
    if (rc < 0)
        for (size_t i = 0; i < n; i++)
            c->copies[first_copy + i].indexed = false;
    return rc;
}

static int bk_store_compact_run(struct bk_store *st, struct bk_sop *op)
{
    struct bk_compact *c = (struct bk_compact *)op;
    c->n_copies = 0;
    size_t entries0 = (size_t)c->entries, bytes = 0;
    struct bk_copy *pend = NULL;
    size_t n_pend = 0, cap_pend = 0;
    int rc = 0;
    while (rc == 0 && c->i < c->n_ledgers) {
        size_t done_e = (size_t)c->entries - entries0;
        if ((c->max_entries && done_e >= c->max_entries) || (c->max_bytes && bytes >= c->max_bytes))
            break;
        size_t want = c->max_entries ? c->max_entries - done_e : 64;
        rc = bk_store_compact_batch(st, c, want, &pend, &n_pend, &cap_pend, &bytes);
    }
    if (rc == 0 && c->i >= c->n_ledgers)
        c->done = true;
    bool stop = c->done && c->stop_step == 1; /* as a crash before the copies are synced */
    if (rc == 0 && n_pend && !stop)
        rc = bk_store_compact_commit(st, c, pend, n_pend, 0);
    mg_free(pend);
    if (rc < 0 || !c->done || c->stop_step)
        return rc;
    /* the copies are durable and indexed: only now the old log goes */
    rc = bk_store_unlink_log(st, c->log_id);
    c->deleted = rc == 0;
    return rc;
}

void bk_store_compact_slice(struct bk_store *st, struct bk_compact *c)
{
    c->op.run = bk_store_compact_run;
    c->op.gc = true;
    bk_store_submit(st, &c->op);
}

/* A ledger dropped while c runs: a copy of it that a slice already in flight indexes is dead
 * (the drop, queued behind that slice, removes its index entries), so it must not count as
 * live in the log it went to: the drop already took the ledger out of every log's metadata. */
static bool bk_store_compact_dropped(const struct bk_compact *c, int64_t ledger)
{
    for (size_t i = 0; i < c->n_dropped; i++)
        if (c->dropped[i] == ledger)
            return true;
    return false;
}

void bk_store_compact_apply(struct bk_store *st, struct bk_compact *c)
{
    for (size_t i = 0; i < c->n_copies; i++) {
        const struct bk_compact_copy *cp = &c->copies[i];
        bk_store_meta(st, cp->log)->total += 4 + (uint64_t)cp->len;
        if (cp->indexed && !bk_store_compact_dropped(c, cp->ledger)) {
            bk_store_meta_live(st, cp->log, cp->ledger, 4 + (int64_t)cp->len);
            bk_store_meta_live(st, c->log_id, cp->ledger, -(4 + (int64_t)cp->len));
        }
    }
    c->n_copies = 0;
    if (c->deleted)
        bk_store_log_forget(st, c->log_id);
}
