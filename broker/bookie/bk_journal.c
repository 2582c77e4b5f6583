/*
 * bk_journal.c - the bookie's write-ahead journal and its group commit.
 *
 * Happy path: the loop thread builds bk_jreq records while it parses a batch of frames and
 * hands the whole batch over once (bk_journal_submit: one lock, one condition signal). The
 * journal thread takes records off the queue into a group, serialising each one as
 * [BE32 len][body] into its group buffer, and closes the group when
 *   - the entries threshold is reached (journalBufferedEntriesThreshold > 0), or
 *   - the buffered bytes reach journalBufferedWritesThreshold, or
 *   - the queue is empty (adaptive: nothing else is coming right now), or
 *   - the oldest record of the group has waited journalMaxGroupWaitMSec.
 * It then write()s the group to the current file, fdatasyncs once, stamps every record with
 * its (file id, end offset) and moves the group to the done list, waking the loop thread
 * through an eventfd (memcached thread.c style). The loop thread applies each record to
 * storage and only then sends the replies: nothing is acknowledged before the fsync that
 * covers it.
 *
 * Why never sleep for more: the thread does not wait for the group timer when the queue is
 * empty. While it is inside fdatasync (the expensive part), new adds pile up in the queue and
 * form the next group by themselves, so under load groups grow to "everything that arrived
 * during one fsync" (throughput), and a lone add is synced at once (latency). The time bound
 * only caps how long a group keeps absorbing a continuous stream before it is synced.
 *
 * Files: <journalDirectory>/current/<hex id>.txn, a 512-byte header ("BKLG", BE32 version 6)
 * then records. Meta-records share the entry shape with reserved entry ids: LEDGER_KEY
 * [ledger][-0x1000][BE32 len][key], FENCE [ledger][-0x2000], EXPLICIT_LAC
 * [ledger][-0x8000][BE32 len][body], FORCE_LEDGER [ledger][-0x4000]. A new file is started at
 * every start and when the current one passes journalMaxSizeMB.
 *
 * Failure modes: a failed write or fdatasync (or an injected error) fails that group and
 * every later record with the errno's -MG_E* code; the journal never writes again (the file's
 * state is unknown), and the server turns read-only. Replay stops at the first record whose
 * length is impossible or that runs past the end of the file (a torn tail: never
 * acknowledged).
 */
#include "bookie/bookie_int.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define BK_JOURNAL_MAX_RECORD (64u << 20) /* sanity bound when replaying */
#define BK_JOURNAL_PREALLOC (16u << 20)   /* zero-fill this much ahead of the writes */

uint64_t bk_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

bool bk_ratelimit(struct bk_ratelimit *r, int interval_ms, uint64_t *held)
{
    uint64_t now = bk_now_ns();
    if (r->next_ns != 0 && now < r->next_ns) {
        r->suppressed++;
        return false;
    }
    r->next_ns = now + (uint64_t)interval_ms * 1000000u;
    *held = r->suppressed;
    r->suppressed = 0;
    return true;
}

static char *journal_path(const struct bk_journal *j, uint64_t id)
{
    return mg_asprintf("%s/%" PRIx64 ".txn", j->dir, id);
}

/* Sorted ids of the journal files in the directory; returns the count (*ids owned). */
static size_t list_files(const char *dir, uint64_t **ids)
{
    size_t n = 0, cap = 16;
    uint64_t *v = mg_malloc(cap * sizeof *v);
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            char *end;
            unsigned long long id = strtoull(de->d_name, &end, 16);
            if (end == de->d_name || strcmp(end, ".txn") != 0)
                continue;
            if (n == cap) {
                cap *= 2;
                v = mg_realloc(v, cap * sizeof *v);
            }
            v[n++] = id;
        }
        closedir(d);
    }
    for (size_t i = 1; i < n; i++) /* insertion sort: a handful of files */
        for (size_t k = i; k > 0 && v[k - 1] > v[k]; k--) {
            uint64_t t = v[k];
            v[k] = v[k - 1];
            v[k - 1] = t;
        }
    *ids = v;
    return n;
}

static void notify_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct bk_journal *j = arg;
    uint64_t v;
    if (read(fd, &v, sizeof v) < 0 && errno != EAGAIN)
        MG_WARN(BK_MODULE, "journal notify read: %s", strerror(errno));
    bk_server_journal_done(j->srv);
}

int bk_journal_init(struct bk_journal *j, struct bk_server *srv, const struct bk_options *o)
{
    memset(j, 0, sizeof *j);
    j->srv = srv;
    j->fd = -1;
    j->notify_fd = -1;
    j->dir = mg_asprintf("%s/current", o->journal_dir);
    j->max_group_wait_ms = o->max_group_wait_ms;
    j->bytes_threshold =
        o->buffered_writes_threshold > 0 ? (size_t)o->buffered_writes_threshold : 524288;
    j->entries_threshold =
        o->buffered_entries_threshold > 0 ? (size_t)o->buffered_entries_threshold : 0;
    j->max_size = o->journal_max_size > 0 ? (uint64_t)o->journal_max_size : (2048ULL << 20);
    j->sync = o->journal_sync;
    pthread_mutex_init(&j->lock, NULL);
    pthread_cond_init(&j->cond, NULL);
    int rc = bk_mkdirs(j->dir);
    if (rc < 0) {
        MG_ERROR(BK_MODULE, "cannot create journal directory %s: %s", j->dir, mg_strerror(rc));
        return rc;
    }
    uint64_t *ids;
    size_t n = list_files(j->dir, &ids);
    j->file_id = n ? ids[n - 1] : 0; /* the next file is file_id + 1 */
    mg_free(ids);
    j->buf_cap = 1u << 20;
    j->buf = mg_malloc(j->buf_cap);
    return 0;
}

/* Apply every valid record of one file from offset; returns the offset replay stopped at. */
static uint64_t replay_file(struct bk_journal *j, struct bk_store *st, uint64_t id, uint64_t from,
                            uint64_t *count)
{
    char *path = journal_path(j, id);
    FILE *f = fopen(path, "rb");
    if (!f) {
        MG_WARN(BK_MODULE, "journal %s: %s", path, strerror(errno));
        mg_free(path);
        return from;
    }
    uint8_t hdr[8];
    if (fread(hdr, 1, sizeof hdr, f) != sizeof hdr || memcmp(hdr, "BKLG", 4) != 0) {
        MG_WARN(BK_MODULE, "journal %s: bad header, skipped", path);
        fclose(f);
        mg_free(path);
        return from;
    }
    if (from < BK_JOURNAL_HEADER_SIZE)
        from = BK_JOURNAL_HEADER_SIZE;
    uint64_t off = from;
    if (fseeko(f, (off_t)off, SEEK_SET) != 0) {
        fclose(f);
        mg_free(path);
        return from;
    }
    for (;;) {
        uint8_t lb[4];
        if (fread(lb, 1, 4, f) != 4)
            break;
        int32_t len = (int32_t)bk_get_be32(lb);
        if (len < 16 || (uint32_t)len > BK_JOURNAL_MAX_RECORD) {
            if (len != 0)
                MG_WARN(BK_MODULE,
                        "journal %s: bad record length %d at %" PRIu64
                        ", replay of this file stops",
                        path, len, off);
            break;
        }
        uint8_t *body = mg_malloc((size_t)len);
        if (fread(body, 1, (size_t)len, f) != (size_t)len) {
            MG_WARN(BK_MODULE, "journal %s: torn record at %" PRIu64 " (never acknowledged)", path,
                    off);
            mg_free(body);
            break;
        }
        off += 4 + (uint64_t)len;
        int64_t ledger = (int64_t)bk_get_be64(body);
        int64_t entry = (int64_t)bk_get_be64(body + 8);
        if (entry >= 0) {
            bk_store_apply(st, ledger, entry, body, (size_t)len); /* takes body */
            body = NULL;
        } else if (entry == BK_META_LEDGER_KEY || entry == BK_META_EXPLICIT_LAC) {
            if (len >= 20) {
                uint32_t n = bk_get_be32(body + 16);
                if (n <= (uint32_t)len - 20)
                    bk_store_apply(st, ledger, entry, body + 20, n);
            }
        } else {
            bk_store_apply(st, ledger, entry, NULL, 0);
        }
        mg_free(body);
        st->mark_file = id;
        st->mark_off = off;
        (*count)++;
    }
    fclose(f);
    mg_free(path);
    return off;
}

int bk_journal_replay(struct bk_journal *j, struct bk_store *st, uint64_t mark_file,
                      uint64_t mark_off, uint64_t *replayed)
{
    uint64_t *ids;
    size_t n = list_files(j->dir, &ids);
    *replayed = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < mark_file)
            continue;
        replay_file(j, st, ids[i], ids[i] == mark_file ? mark_off : 0, replayed);
    }
    mg_free(ids);
    if (*replayed)
        MG_INFO(BK_MODULE,
                "journal: replayed %" PRIu64 " records since lastMark %" PRIx64 ":%" PRIu64,
                *replayed, mark_file, mark_off);
    return 0;
}

/* Journal thread (or before start): create file_id + 1 and make it current. */
static int open_next_file(struct bk_journal *j)
{
    uint64_t id = j->file_id + 1;
    char *path = journal_path(j, id);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        MG_ERROR(BK_MODULE, "cannot create journal %s: %s", path, strerror(e));
        mg_free(path);
        return mg_err_from_errno(e);
    }
    uint8_t hdr[BK_JOURNAL_HEADER_SIZE];
    memset(hdr, 0, sizeof hdr);
    memcpy(hdr, "BKLG", 4);
    bk_put_be32(hdr + 4, BK_JOURNAL_VERSION);
    ssize_t w = write(fd, hdr, sizeof hdr);
    int rc = 0;
    if (w != (ssize_t)sizeof hdr || (j->sync && fdatasync(fd) != 0)) {
        rc = mg_err_from_errno(w < 0 ? errno : EIO);
        MG_ERROR(BK_MODULE, "cannot write journal %s: %s", path, strerror(errno));
        close(fd);
    } else {
        if (j->sync)
            bk_fsync_dir(j->dir);
        if (j->fd >= 0)
            close(j->fd);
        j->fd = fd;
        j->file_id = id;
        j->file_off = BK_JOURNAL_HEADER_SIZE;
        j->alloc_end = BK_JOURNAL_HEADER_SIZE;
    }
    mg_free(path);
    return rc;
}

/*
 * Zero-fill the journal ahead of the writes (BookKeeper's journalPreAllocSizeMB). Appending
 * to a file grows its size, so every group's fdatasync would also have to write the inode;
 * writing inside blocks that already exist flushes only the data. Replay stops at the first
 * zero length, so the zeros read as the end of the journal.
 */
static int preallocate(struct bk_journal *j, uint64_t needed)
{
    static const uint8_t zeros[1 << 16];
    uint64_t end = j->alloc_end + BK_JOURNAL_PREALLOC;
    if (end < needed)
        end = needed;
    uint64_t off = j->alloc_end;
    while (off < end) {
        size_t n = end - off < sizeof zeros ? (size_t)(end - off) : sizeof zeros;
        ssize_t w = pwrite(j->fd, zeros, n, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break; /* e.g. a nearly full disk: the group is written without it below */
        off += (uint64_t)w;
    }
    if (off > j->alloc_end && j->sync && fdatasync(j->fd) != 0)
        return -errno;
    j->alloc_end = off;
    return 0;
}

static size_t record_size(const struct bk_jreq *r)
{
    switch (r->type) {
    case BK_J_ADD:
        return 4 + r->len;
    case BK_J_KEY:
    case BK_J_LAC:
        return 4 + 16 + 4 + r->len;
    default:
        return 4 + 16;
    }
}

static void serialize(struct bk_journal *j, size_t *used, const struct bk_jreq *r)
{
    size_t need = record_size(r);
    if (*used + need > j->buf_cap) {
        while (*used + need > j->buf_cap)
            j->buf_cap *= 2;
        j->buf = mg_realloc(j->buf, j->buf_cap);
    }
    uint8_t *p = j->buf + *used;
    *used += need;
    bk_put_be32(p, (uint32_t)(need - 4));
    p += 4;
    if (r->type == BK_J_ADD) {
        memcpy(p, r->data, r->len);
        return;
    }
    static const int64_t ids[] = {
        [BK_J_KEY] = BK_META_LEDGER_KEY,
        [BK_J_FENCE] = BK_META_FENCE_KEY,
        [BK_J_LAC] = BK_META_EXPLICIT_LAC,
        [BK_J_FORCE] = BK_META_FORCE_LEDGER,
    };
    bk_put_be64(p, (uint64_t)r->ledger_id);
    bk_put_be64(p + 8, (uint64_t)ids[r->type]);
    if (r->type == BK_J_KEY || r->type == BK_J_LAC) {
        bk_put_be32(p + 16, (uint32_t)r->len);
        if (r->len)
            memcpy(p + 20, r->data, r->len);
    }
}

/* Write and sync one group; returns 0 or -MG_E*. */
static int write_group(struct bk_journal *j, size_t used)
{
    int inj = atomic_exchange(&j->inject_errno, 0);
    if (inj != 0) {
        atomic_store(&j->failed_errno, inj);
        MG_ERROR(BK_MODULE, "journal: write failed: %s (injected)", strerror(inj));
        return mg_err_from_errno(inj);
    }
    if (j->file_off > BK_JOURNAL_HEADER_SIZE && j->file_off + used > j->max_size) {
        int rc = open_next_file(j);
        if (rc < 0)
            return rc;
    }
    if (j->file_off + used > j->alloc_end) {
        int e = preallocate(j, j->file_off + used);
        if (e < 0) {
            atomic_store(&j->failed_errno, -e);
            MG_ERROR(BK_MODULE, "journal %" PRIx64 ": preallocation failed: %s", j->file_id,
                     strerror(-e));
            return mg_err_from_errno(-e);
        }
    }
    const uint8_t *p = j->buf;
    size_t left = used;
    while (left > 0) {
        ssize_t n = write(j->fd, p, left);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            atomic_store(&j->failed_errno, e);
            MG_ERROR(BK_MODULE, "journal %" PRIx64 ": write failed: %s", j->file_id, strerror(e));
            return mg_err_from_errno(e);
        }
        p += n;
        left -= (size_t)n;
    }
    if (j->sync) {
        if (fdatasync(j->fd) != 0) {
            int e = errno;
            atomic_store(&j->failed_errno, e);
            MG_ERROR(BK_MODULE, "journal %" PRIx64 ": fdatasync failed: %s", j->file_id,
                     strerror(e));
            return mg_err_from_errno(e);
        }
        atomic_fetch_add(&j->st_fsyncs, 1);
    }
    atomic_fetch_add(&j->st_groups, 1);
    atomic_fetch_add(&j->st_bytes, used);
    return 0;
}

static void complete_group(struct bk_journal *j, struct bk_jreq *head, struct bk_jreq *tail)
{
    pthread_mutex_lock(&j->lock);
    if (j->done_tail)
        j->done_tail->next = head;
    else
        j->done_head = head;
    j->done_tail = tail;
    pthread_mutex_unlock(&j->lock);
    uint64_t one = 1;
    if (write(j->notify_fd, &one, sizeof one) < 0)
        MG_WARN(BK_MODULE, "journal notify write: %s", strerror(errno));
}

static void *journal_main(void *arg)
{
    struct bk_journal *j = arg;
    for (;;) {
        struct bk_jreq *head = NULL, *tail = NULL;
        size_t n = 0, used = 0;
        uint64_t oldest = 0;
        bool stop = false;
        pthread_mutex_lock(&j->lock);
        while (j->q_head == NULL && !j->stopping)
            pthread_cond_wait(&j->cond, &j->lock);
        if (j->q_head == NULL)
            stop = true;
        pthread_mutex_unlock(&j->lock);
        if (stop)
            break;
        for (;;) {
            /* take records until a threshold is reached or the queue is empty */
            struct bk_jreq *took = NULL, *took_tail = NULL;
            pthread_mutex_lock(&j->lock);
            size_t bytes = used;
            while (j->q_head != NULL && !(j->entries_threshold && n >= j->entries_threshold) &&
                   bytes < j->bytes_threshold) {
                struct bk_jreq *r = j->q_head;
                j->q_head = r->next;
                if (!j->q_head)
                    j->q_tail = NULL;
                r->next = NULL;
                if (took_tail)
                    took_tail->next = r;
                else
                    took = r;
                took_tail = r;
                bytes += record_size(r);
                n++;
            }
            bool empty = j->q_head == NULL;
            pthread_mutex_unlock(&j->lock);
            for (struct bk_jreq *r = took; r; r = r->next) {
                if (oldest == 0)
                    oldest = r->enq_ns;
                if (!j->failed)
                    serialize(j, &used, r);
            }
            if (took) {
                if (tail)
                    tail->next = took;
                else
                    head = took;
                tail = took_tail;
            }
            if (empty || (j->entries_threshold && n >= j->entries_threshold) ||
                used >= j->bytes_threshold ||
                bk_now_ns() - oldest >= (uint64_t)j->max_group_wait_ms * 1000000u)
                break;
        }
        int status = -MG_EIO;
        if (!j->failed) {
            status = write_group(j, used);
            if (status < 0)
                j->failed = true;
        }
        /* stamp positions: offsets are only meaningful when the group was written */
        uint64_t off = j->file_off;
        for (struct bk_jreq *r = head; r; r = r->next) {
            r->status = status;
            off += record_size(r);
            r->jfile = j->file_id;
            r->jend = off;
            atomic_fetch_add(&j->st_records, 1);
            if (r->type == BK_J_ADD)
                atomic_fetch_add(&j->st_adds, 1);
        }
        if (status == 0)
            j->file_off = off;
        complete_group(j, head, tail);
    }
    return NULL;
}

int bk_journal_start(struct bk_journal *j, struct event_base *base)
{
    j->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (j->notify_fd < 0) {
        MG_ERROR(BK_MODULE, "eventfd: %s", strerror(errno));
        return mg_err_from_errno(errno);
    }
    j->notify_ev = event_new(base, j->notify_fd, EV_READ | EV_PERSIST, notify_cb, j);
    event_add(j->notify_ev, NULL);
    int rc = open_next_file(j);
    if (rc < 0)
        return rc;
    if (pthread_create(&j->thread, NULL, journal_main, j) != 0) {
        MG_ERROR(BK_MODULE, "cannot start the journal thread");
        return -MG_EIO;
    }
    j->started = true;
    return 0;
}

void bk_journal_submit(struct bk_journal *j, struct bk_jreq *head, struct bk_jreq *tail)
{
    if (!head)
        return;
    pthread_mutex_lock(&j->lock);
    if (j->q_tail)
        j->q_tail->next = head;
    else
        j->q_head = head;
    j->q_tail = tail;
    pthread_cond_signal(&j->cond);
    pthread_mutex_unlock(&j->lock);
}

void bk_journal_stop(struct bk_journal *j)
{
    if (!j->started)
        return;
    pthread_mutex_lock(&j->lock);
    j->stopping = true;
    pthread_cond_signal(&j->cond);
    pthread_mutex_unlock(&j->lock);
    pthread_join(j->thread, NULL);
    j->started = false;
}

struct bk_jreq *bk_journal_take_done(struct bk_journal *j)
{
    pthread_mutex_lock(&j->lock);
    struct bk_jreq *h = j->done_head;
    j->done_head = j->done_tail = NULL;
    pthread_mutex_unlock(&j->lock);
    return h;
}

void bk_journal_trim(struct bk_journal *j, uint64_t mark_file)
{
    uint64_t *ids;
    size_t n = list_files(j->dir, &ids);
    for (size_t i = 0; i < n; i++) {
        if (ids[i] >= mark_file)
            break;
        char *path = journal_path(j, ids[i]);
        if (unlink(path) == 0)
            MG_DEBUG(BK_MODULE, "journal %s removed (before lastMark)", path);
        else
            MG_WARN(BK_MODULE, "cannot remove journal %s: %s", path, strerror(errno));
        mg_free(path);
    }
    mg_free(ids);
}

void bk_journal_fini(struct bk_journal *j)
{
    bk_journal_stop(j);
    if (j->notify_ev)
        event_free(j->notify_ev);
    j->notify_ev = NULL;
    if (j->notify_fd >= 0)
        close(j->notify_fd);
    if (j->fd >= 0)
        close(j->fd);
    j->fd = j->notify_fd = -1;
    pthread_mutex_destroy(&j->lock);
    pthread_cond_destroy(&j->cond);
    mg_free(j->buf);
    mg_free(j->dir);
    j->buf = NULL;
    j->dir = NULL;
}
