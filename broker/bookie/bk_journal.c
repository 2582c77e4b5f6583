/*
 * bk_journal.c - the bookie's write-ahead journal and its group commit.
 *
 * Happy path: the loop thread builds bk_jreq records while it parses a batch of frames and
 * hands the whole batch over once (bk_journal_submit: one lock, one condition signal). The
 * journal thread takes records off the queue into a group, serialising each one with its
 * checksum into its group buffer, and closes the group when
 *   - the entries threshold is reached (journalBufferedEntriesThreshold > 0), or
 *   - the buffered bytes reach journalBufferedWritesThreshold, or
 *   - the queue is empty (adaptive: nothing else is coming right now), or
 *   - the oldest record of the group has waited journalMaxGroupWaitMSec.
 * It then writes the group to the current file, fdatasyncs once, stamps every record with
 * the group's (file id, end offset) and moves the group to the done list, waking the loop
 * thread through an eventfd (memcached thread.c style). The loop thread applies each record
 * to storage and only then sends the replies: nothing is acknowledged before the fsync that
 * covers it.
 *
 * Why never sleep for more: the thread does not wait for the group timer when the queue is
 * empty. While it is inside fdatasync (the expensive part), new adds pile up in the queue and
 * form the next group by themselves, so under load groups grow to "everything that arrived
 * during one fsync" (throughput), and a lone add is synced at once (latency). The time bound
 * only caps how long a group keeps absorbing a continuous stream before it is synced.
 *
 * Files (format version 8): <journalDirectory>/current/<hex id>.txn, a 512-byte header
 * ("BKLG", BE32 version 8, BE64 file id, BE32 flags, zeros), then one group per write:
 *   group header  BE32 "BKGR", BE32 body bytes, BE32 records, BE32 CRC32C(the body), BE64
 *                 offset of this header in the file, BE32 CRC32C(BE64 file id, the 24 bytes
 *                 before)
 *   records       BE32 len, BE32 CRC32C(the len field, body), body (len bytes)
 * Each group is written with an end mark after it, in the same write: an empty group (0
 * records, 0 body bytes) of this file at that offset, which the next group's header
 * overwrites. Then come zeros (preallocated space: a preallocation thread writes them ahead
 * of the groups, see bk_journal_prealloc_ahead) or, in a file taken over from a covered one
 * (journalReuseFiles, header flag BK_JOURNAL_F_REUSED, see bk_journal_reuse_file, which
 * writes the first end mark with the header), that file's earlier groups, which replay tells
 * apart by the file id under their checksum. A record's body is the entry as received, or a
 * meta-record of the same shape with a reserved entry id: LEDGER_KEY
 * [ledger][-0x1000][BE32 len][key], FENCE [ledger][-0x2000], EXPLICIT_LAC
 * [ledger][-0x8000][BE32 len][body], FORCE_LEDGER [ledger][-0x4000]. A new file is started at
 * every start and when the current one passes journalMaxSizeMB. Version 7 files (no body
 * checksum: that word is 0; no end marks) and version 6 files ([BE32 len][body] records, no
 * group headers, no checksums) are replayed, never written.
 *
 * Why version 8: a record's checksum covers only its own bytes, not the file it belongs to.
 * In a file taken over, a crash that tears the newest group after its header leaves the
 * earlier life's bytes under the new header; with entries of the same size they fall on the
 * same record boundaries and pass their record checksums. Version 7 replayed them as new
 * entries; version 8 checks the whole body against its header (which carries the file id
 * under its own checksum) before it applies any record of the group, so a torn group is never
 * partly applied, in a file taken over or a zero-filled one. And version 7 took any header
 * not of this file for the end of a reused file's data, so a torn or damaged last header
 * there dropped its group without a word; the end mark says positively where the data ends
 * (only the last group written leaves one: each later group's header overwrites it), so
 * anything else where a group should start is judged as in a zero-filled file, and the rest
 * of the file (a reused one: up to journalMaxSizeMB of its earlier life) need not be read at
 * each start. The body checksum is one more pass of CRC32C over the group's bytes as it is
 * closed (hardware CRC, ~20 ns per KiB, the bytes still in cache); combining the records'
 * checksums with mg_crc32c_combine would cost ~110 ns per record.
 *
 * Replay and damage: groups are written one at a time, each only after the previous one was
 * synced, so a crash can leave one incomplete group, at the tail of the last journal file,
 * with nothing valid after it. Replay checks every group header, group body (v8) and record.
 * This file's end mark is the end of its data. Where anything fails, it looks at the rest of
 * the file: zeros (in a version-7 reused file: anything without a valid group of this file
 * after it) are the end of the data; other bytes (a failed header, a group whose body fails
 * or is cut by the end of the file) with no valid group after them, in the last file, are
 * that torn write, and the file is truncated at the group (WARN line); anything else (a
 * valid group further on, or a file that is not the last) is damage to synced data and the
 * bookie refuses to start, naming the file and offset and saying how to proceed. The group
 * header carries its own offset and the file id under its checksum, so a stale or copied
 * header cannot pass for a later group.
 *
 * Failure modes: a write that runs out of space (ENOSPC, EDQUOT) fails its group with
 * -MG_EREADONLY: what reached the file is cut off again (the file ends with its last synced
 * group), the loop thread answers the group EREADONLY and turns read-only, and the journal
 * writes again once space returns. Any other failed write, and any failed fdatasync (the
 * state of the written pages is then unknown), fails that group and every later record with
 * the errno's -MG_E* code; the journal never writes again and the server turns read-only
 * until restarted. Preallocation stays under diskUsageThreshold (see bk_journal_prealloc_ahead).
 * Repeated failures log one line per MG_RATELIMIT_INTERVAL_MS.
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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define BK_JOURNAL_MAX_RECORD (64u << 20) /* sanity bound when replaying */

static char *bk_journal_path(const struct bk_journal *j, uint64_t id)
{
    return mg_asprintf("%s/%" PRIx64 ".txn", j->dir, id);
}

/* CRC32C of a record: its length field and its body (rec points at the record header). */
static uint32_t bk_journal_record_crc(const uint8_t *rec, uint32_t len)
{
    return mg_crc32c(mg_crc32c(0, rec, 4), rec + BK_RECORD_HEADER_SIZE, len);
}

/* CRC32C of a group header: the file id, then the header's first 24 bytes. */
static uint32_t bk_journal_group_crc(uint64_t file_id, const uint8_t *h)
{
    uint8_t idb[8];
    mg_put_be64(idb, file_id);
    return mg_crc32c(mg_crc32c(0, idb, 8), h, 24);
}

/* Fill the group header h of a group of nrec records, body_len bytes (following h), written
 * at offset at of file id; nrec 0, body_len 0 is the end mark. */
static void bk_journal_group_header(uint8_t *h, uint64_t id, uint64_t at, uint32_t body_len,
                                    uint32_t nrec)
{
    mg_put_be32(h, BK_GROUP_MAGIC);
    mg_put_be32(h + 4, body_len);
    mg_put_be32(h + 8, nrec);
    mg_put_be32(h + 12, mg_crc32c(0, h + BK_GROUP_HEADER_SIZE, body_len));
    mg_put_be64(h + 16, at);
    mg_put_be32(h + 24, bk_journal_group_crc(id, h));
}

/* Sorted ids of the journal files in the directory; returns the count (*ids owned). */
static size_t bk_journal_list_files(const char *dir, uint64_t **ids)
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

static void bk_journal_notify_cb(evutil_socket_t fd, short what, void *arg)
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
    j->prealloc = o->journal_prealloc > 0 ? (uint64_t)o->journal_prealloc : (16ULL << 20);
    j->reuse = o->journal_reuse;
    j->max_backups = o->journal_max_backups > 0 ? (unsigned)o->journal_max_backups : 0;
    j->sync = o->journal_sync;
    j->threshold_pct = o->disk_usage_threshold_pct > 0 ? o->disk_usage_threshold_pct : 95.0;
    pthread_mutex_init(&j->lock, NULL);
    pthread_cond_init(&j->cond, NULL);
    pthread_mutex_init(&j->pa_lock, NULL);
    pthread_cond_init(&j->pa_cond, NULL);
    j->pa_fd = -1;
    int rc = mg_mkdirs(j->dir);
    if (rc < 0) {
        MG_ERROR(BK_MODULE, "cannot create journal directory %s: %s", j->dir, mg_strerror(rc));
        return rc;
    }
    uint64_t *ids;
    size_t n = bk_journal_list_files(j->dir, &ids);
    j->file_id = n ? ids[n - 1] : 0; /* the next file is file_id + 1 */
    mg_free(ids);
    j->buf_cap = 1u << 20;
    j->buf = mg_malloc(j->buf_cap);
    return 0;
}

/* ---- replay ----------------------------------------------------------------------------- */

bool bk_all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return false;
    return true;
}

/* Whether h (BK_GROUP_HEADER_SIZE bytes) is a group header written at offset at of file id;
 * if so its body length and record count. */
static bool bk_journal_group_header_ok(const uint8_t *h, uint64_t id, uint64_t at,
                                       uint32_t *body_len, uint32_t *nrec)
{
    if (mg_get_be32(h) != BK_GROUP_MAGIC || mg_get_be64(h + 16) != at)
        return false;
    if (mg_get_be32(h + 24) != bk_journal_group_crc(id, h))
        return false;
    *body_len = mg_get_be32(h + 4);
    *nrec = mg_get_be32(h + 8);
    return true;
}

/*
 * Look at [from, size) of a journal file after replay stopped at from: whether it holds any
 * non-zero byte (*nonzero), and the offset of the first valid group header after from
 * (*later, 0 if none). Reads the rest of the file once, in 1 MiB pieces; normally that is the
 * preallocated zeros of the last file (journalPreAllocSizeMB).
 */
static int bk_journal_scan_rest(int fd, uint64_t id, uint64_t from, uint64_t size, bool *nonzero,
                                uint64_t *later)
{
    enum { CHUNK = 1 << 20 };
    uint8_t *buf = mg_malloc(CHUNK + BK_GROUP_HEADER_SIZE);
    *nonzero = false;
    *later = 0;
    int rc = 0;
    for (uint64_t pos = from; pos < size && *later == 0;) {
        size_t want = size - pos < CHUNK + BK_GROUP_HEADER_SIZE ? (size_t)(size - pos)
                                                                : CHUNK + BK_GROUP_HEADER_SIZE;
        ssize_t n = pread(fd, buf, want, (off_t)pos);
        if (n <= 0) {
            rc = n < 0 ? mg_err_from_errno(errno) : 0;
            break;
        }
        size_t body = (size_t)n < CHUNK ? (size_t)n : CHUNK; /* the rest overlaps the next */
        if (!*nonzero && !bk_all_zero(buf, body))
            *nonzero = true;
        for (size_t i = 0; i < body && i + BK_GROUP_HEADER_SIZE <= (size_t)n; i++) {
            uint32_t bl, nr;
            if (buf[i] == (uint8_t)(BK_GROUP_MAGIC >> 24) && pos + i > from &&
                bk_journal_group_header_ok(buf + i, id, pos + i, &bl, &nr) && nr > 0) {
                *later = pos + i;
                break;
            }
        }
        pos += body;
    }
    mg_free(buf);
    return rc;
}

/* Apply one journal record body (ledger, entry id, ...): an entry or a meta-record. */
static void bk_journal_apply_record(struct bk_store *st, const uint8_t *body, size_t len)
{
    int64_t ledger = (int64_t)mg_get_be64(body);
    int64_t entry = (int64_t)mg_get_be64(body + 8);
    if (entry >= 0) {
        uint8_t *copy = mg_malloc(len);
        memcpy(copy, body, len);
        bk_store_apply(st, ledger, entry, copy, len); /* takes copy */
    } else if (entry == BK_META_LEDGER_KEY || entry == BK_META_EXPLICIT_LAC) {
        if (len >= 20) {
            uint32_t n = mg_get_be32(body + 16);
            if (n <= len - 20)
                bk_store_apply(st, ledger, entry, (uint8_t *)(uintptr_t)(body + 20), n);
        }
    } else {
        bk_store_apply(st, ledger, entry, NULL, 0);
    }
}

/* Where and why replay of a file stopped before its end. */
struct bk_stop {
    uint64_t at;
    bool end_mark; /* at this file's end mark (v8): the end of its data, positively */
    char why[160];
};

static int bk_journal_truncate(const char *path, uint64_t at)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    int e = 0;
    if (fd < 0 || ftruncate(fd, (off_t)at) != 0 || fdatasync(fd) != 0)
        e = errno;
    if (fd >= 0)
        close(fd);
    if (e) {
        MG_ERROR(BK_MODULE, "journal %s: cannot truncate it to %" PRIu64 ": %s", path, at,
                 strerror(e));
        return mg_err_from_errno(e);
    }
    return 0;
}

/*
 * Replay stopped at stop->at, before the end of the file (size bytes). Zeros from there on are
 * the end of the data (preallocated space). Anything else is a torn write only at the tail of
 * the last journal file: each group is written only after the previous one was synced, so a
 * crash can leave one incomplete group, at the very end, and nothing valid after it; it is
 * truncated. Damage anywhere else stops the start: returns -MG_ECHECKSUM with a message
 * that names the file and offset and says how to proceed.
 */
static int bk_journal_replay_stopped(const char *path, int fd, uint64_t id, uint64_t size,
                                     bool is_last, bool reused, bool earlier_life,
                                     const struct bk_stop *stop)
{
    if (stop->end_mark) {
        /* written with the last group that reached the file, and overwritten by the next
         * one's header: nothing of this file lies after it (a group torn after it was never
         * acknowledged, and no group is written before the previous one was synced), so the
         * rest is not read. The last file's preallocated tail is given back now (on a full
         * disk it may be what keeps the new journal file from being created); a file taken
         * over keeps its blocks for the writes of a next life. */
        uint64_t end = stop->at + BK_GROUP_HEADER_SIZE;
        if (is_last && !reused && end < size && bk_journal_truncate(path, end) == 0)
            MG_DEBUG(BK_MODULE, "journal %s: %" PRIu64 " preallocated bytes released", path,
                     size - end);
        return 0;
    }
    bool nonzero;
    uint64_t later;
    int rc = bk_journal_scan_rest(fd, id, stop->at, size, &nonzero, &later);
    if (rc < 0) {
        MG_ERROR(BK_MODULE, "journal %s: cannot read it: %s", path, mg_strerror(rc));
        return rc;
    }
    if (earlier_life && later == 0) {
        /* a file taken over (journalReuseFiles), at the end of this life's data: what follows
         * is its earlier life's groups (written under another file id), or in version 7 a
         * torn group over them; nothing of this one comes after, and the blocks stay for the
         * writes of a next life */
        MG_DEBUG(BK_MODULE,
                 "journal %s: %s at offset %" PRIu64 ": the end of its data (a file taken "
                 "over: an earlier file's records follow)",
                 path, stop->why, stop->at);
        return 0;
    }
    if (!nonzero && later == 0) {
        /* zeros: the end of the data. The last file's preallocated tail is given back now:
         * on a full disk it may be what keeps the new journal file from being created. */
        if (is_last && stop->at < size && bk_journal_truncate(path, stop->at) == 0)
            MG_DEBUG(BK_MODULE, "journal %s: %" PRIu64 " preallocated bytes released", path,
                     size - stop->at);
        return 0;
    }
    if (later == 0 && is_last) {
        MG_WARN(BK_MODULE,
                "journal %s: %s at offset %" PRIu64 ": a torn write at the tail of the last "
                "journal file (a crash during its last group write, which was never "
                "acknowledged); truncating the file to %" PRIu64 " (%" PRIu64 " bytes dropped)",
                path, stop->why, stop->at, stop->at, size - stop->at);
        return bk_journal_truncate(path, stop->at);
    }
    char after[96];
    if (later)
        snprintf(after, sizeof after, "a valid group follows at offset %" PRIu64, later);
    else
        snprintf(after, sizeof after, "later journal files follow");
    MG_ERROR(BK_MODULE,
             "journal %s: %s at offset %" PRIu64 ", and %s: this is damage to synced (and "
             "acknowledged) records, not a torn write at the tail. The bookie does not start, "
             "so that nothing is dropped silently. To proceed: check the disk; keep a copy of "
             "the file; if the records from that offset on may be given up (the brokers read "
             "the entries of each ledger from the other bookies of its ensemble), cut the file "
             "there with `truncate -s %" PRIu64 " %s` (this also drops the valid records after "
             "it in that file) and start the bookie again",
             path, stop->why, stop->at, after, stop->at, path);
    return -MG_ECHECKSUM;
}

/* Versions 7 and 8: [group header][records...] groups (see the top of this file); with
 * body_crc (v8) a group is applied only once its whole body matches the header's checksum. */
static int bk_journal_replay_groups(int fd, uint64_t id, uint64_t from, uint64_t size,
                                    bool body_crc, struct bk_store *st, uint64_t *count,
                                    struct bk_stop *stop)
{
    uint64_t off = from;
    while (off < size) {
        uint8_t h[BK_GROUP_HEADER_SIZE];
        uint32_t body_len, nrec;
        if (size - off < BK_GROUP_HEADER_SIZE || pread(fd, h, sizeof h, (off_t)off) != sizeof h) {
            stop->at = off;
            snprintf(stop->why, sizeof stop->why, "incomplete group header");
            return 1;
        }
        if (!bk_journal_group_header_ok(h, id, off, &body_len, &nrec)) {
            stop->at = off;
            snprintf(stop->why, sizeof stop->why, "%s",
                     bk_all_zero(h, sizeof h) ? "end of data" : "invalid group header");
            return 1;
        }
        if (body_crc && nrec == 0 && body_len == 0) {
            stop->at = off;
            stop->end_mark = true;
            snprintf(stop->why, sizeof stop->why, "end mark");
            return 1;
        }
        uint64_t base = off + BK_GROUP_HEADER_SIZE;
        size_t avail = size - base < body_len ? (size_t)(size - base) : body_len;
        uint8_t *b = mg_malloc(avail ? avail : 1);
        if (pread(fd, b, avail, (off_t)base) != (ssize_t)avail) {
            int e = errno;
            mg_free(b);
            return mg_err_from_errno(e ? e : EIO);
        }
        if (body_crc && (avail < body_len || mg_crc32c(0, b, avail) != mg_get_be32(h + 12))) {
            mg_free(b);
            stop->at = off;
            snprintf(stop->why, sizeof stop->why, "group of %" PRIu32 " bytes %s", body_len,
                     avail < body_len ? "cut by the end of the file"
                                      : "fails its body CRC32C checksum");
            return 1;
        }
        size_t p = 0;
        uint32_t k = 0;
        stop->why[0] = '\0';
        while (p < avail) {
            if (avail - p < BK_RECORD_HEADER_SIZE) {
                snprintf(stop->why, sizeof stop->why, "incomplete record header");
                break;
            }
            uint32_t len = mg_get_be32(b + p);
            if (len < 16 || len > avail - p - BK_RECORD_HEADER_SIZE) {
                snprintf(stop->why, sizeof stop->why, "record length %" PRIu32 " impossible", len);
                break;
            }
            if (mg_get_be32(b + p + 4) != bk_journal_record_crc(b + p, len)) {
                snprintf(stop->why, sizeof stop->why,
                         "record of %" PRIu32 " bytes fails its CRC32C checksum", len);
                break;
            }
            bk_journal_apply_record(st, b + p + BK_RECORD_HEADER_SIZE, len);
            (*count)++;
            k++;
            p += BK_RECORD_HEADER_SIZE + len;
        }
        mg_free(b);
        if (stop->why[0] == '\0' && avail == body_len && k != nrec) {
            snprintf(stop->why, sizeof stop->why,
                     "group of %" PRIu32 " records, its header says %" PRIu32, k, nrec);
            stop->at = off;
            return 1;
        }
        if (stop->why[0] != '\0') {
            stop->at = base + p;
            return 1;
        }
        if (avail < body_len)
            return 0; /* cut by the end of the file: nothing more in it */
        off = base + body_len;
        st->mark_off = off;
    }
    return 0;
}

/* Version 6 (magnetar before checksums): [BE32 len][body] records, read only. A record of
 * impossible length or running past the end stops replay; there is nothing to check a
 * record's contents with. */
static int bk_journal_replay_v6(int fd, uint64_t from, uint64_t size, struct bk_store *st,
                                uint64_t *count, struct bk_stop *stop)
{
    uint64_t off = from;
    while (off < size) {
        uint8_t lb[4];
        if (size - off < 4 || pread(fd, lb, 4, (off_t)off) != 4) {
            stop->at = off;
            snprintf(stop->why, sizeof stop->why, "incomplete record length");
            return 1;
        }
        uint32_t len = mg_get_be32(lb);
        if (len < 16 || len > BK_JOURNAL_MAX_RECORD || len > size - off - 4) {
            stop->at = off;
            snprintf(stop->why, sizeof stop->why, "%s",
                     len == 0 ? "end of data" : "impossible or torn record length");
            return 1;
        }
        uint8_t *b = mg_malloc(len);
        if (pread(fd, b, len, (off_t)(off + 4)) != (ssize_t)len) {
            int e = errno;
            mg_free(b);
            return mg_err_from_errno(e ? e : EIO);
        }
        bk_journal_apply_record(st, b, len);
        mg_free(b);
        (*count)++;
        off += 4 + (uint64_t)len;
        st->mark_off = off;
    }
    return 0;
}

/* Replay one file from offset from (0 = its start). Returns 0 or -MG_E* (logged). */
static int bk_journal_replay_file(struct bk_journal *j, struct bk_store *st, uint64_t id,
                                  uint64_t from, bool is_last, uint64_t *count)
{
    char *path = bk_journal_path(j, id);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        int e = errno;
        MG_ERROR(BK_MODULE, "journal %s: %s", path, strerror(e));
        if (fd >= 0)
            close(fd);
        mg_free(path);
        return mg_err_from_errno(e);
    }
    uint64_t size = (uint64_t)sb.st_size;
    uint8_t hdr[20] = {0};
    bool hdr_ok = size >= BK_JOURNAL_HEADER_SIZE && pread(fd, hdr, sizeof hdr, 0) == sizeof hdr &&
                  memcmp(hdr, "BKLG", 4) == 0;
    int rc = 0;
    if (!hdr_ok) {
        /* a file is created by writing and syncing its header before anything else goes in:
         * a crash (or a failed write) in between leaves at most the header's space, which
         * cannot hold a record */
        if (size <= BK_JOURNAL_HEADER_SIZE) {
            MG_WARN(BK_MODULE,
                    "journal %s: incomplete header (%" PRIu64 " bytes: the file was being "
                    "created when a crash or a failed write stopped it, nothing is in it): "
                    "removed",
                    path, size);
            if (unlink(path) != 0)
                rc = mg_err_from_errno(errno);
        } else {
            MG_ERROR(BK_MODULE,
                     "journal %s: its header is damaged (not \"BKLG\"), %" PRIu64 " bytes: the "
                     "bookie does not start. Check the disk; if the file's records may be given "
                     "up, move it out of the journal directory and start again",
                     path, size);
            rc = -MG_ECHECKSUM;
        }
        close(fd);
        mg_free(path);
        return rc;
    }
    uint32_t version = mg_get_be32(hdr + 4);
    bool grouped = version == BK_JOURNAL_VERSION || version == BK_JOURNAL_VERSION_V7;
    bool reused = grouped && (mg_get_be32(hdr + 16) & BK_JOURNAL_F_REUSED);
    if (from < BK_JOURNAL_HEADER_SIZE)
        from = BK_JOURNAL_HEADER_SIZE;
    struct bk_stop stop = {0};
    st->mark_file = id;
    st->mark_off = from;
    if (grouped) {
        rc = bk_journal_replay_groups(fd, id, from, size, version == BK_JOURNAL_VERSION, st, count,
                                      &stop);
    } else if (version == BK_JOURNAL_VERSION_V6) {
        MG_INFO(BK_MODULE,
                "journal %s is in the previous format (version 6, records without checksums): "
                "replayed as such; new journal files are version %d",
                path, BK_JOURNAL_VERSION);
        rc = bk_journal_replay_v6(fd, from, size, st, count, &stop);
    } else {
        MG_ERROR(BK_MODULE,
                 "journal %s: format version %" PRIu32 " is not one this bookie reads (%d to "
                 "%d): the bookie does not start; it was written by another program or version",
                 path, version, BK_JOURNAL_VERSION_V6, BK_JOURNAL_VERSION);
        rc = -MG_EINVAL;
    }
    if (rc < 0 && rc != -MG_EINVAL)
        MG_ERROR(BK_MODULE, "journal %s: cannot read it: %s", path, mg_strerror(rc));
    if (rc == 1 && version == BK_JOURNAL_VERSION_V6 && !is_last) {
        /* Earlier versions never cut a torn tail off, and a later start then created the
         * next file: in this format a torn write before a later file cannot be told apart
         * from damage. Replayed as those versions did. */
        bool nonzero;
        uint64_t later;
        rc = bk_journal_scan_rest(fd, id, stop.at, size, &nonzero, &later);
        if (rc == 0 && nonzero)
            MG_WARN(BK_MODULE,
                    "journal %s (version 6, no checksums): %s at offset %" PRIu64 ": replay of "
                    "this file stops there (%" PRIu64 " bytes not replayed), as earlier "
                    "versions did",
                    path, stop.why, stop.at, size - stop.at);
    } else if (rc == 1) {
        /* in a version-7 file taken over, any header not this file's may be the end of its
         * data (version 8 marks the end: anything else there is torn or damaged as in a
         * zero-filled file) */
        bool earlier_life = reused && version == BK_JOURNAL_VERSION_V7;
        rc = bk_journal_replay_stopped(path, fd, id, size, is_last, reused, earlier_life, &stop);
    }
    close(fd);
    mg_free(path);
    return rc;
}

int bk_journal_replay(struct bk_journal *j, struct bk_store *st, uint64_t mark_file,
                      uint64_t mark_off, uint64_t *replayed)
{
    uint64_t *ids;
    size_t n = bk_journal_list_files(j->dir, &ids);
    *replayed = 0;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (ids[i] < mark_file)
            continue;
        rc = bk_journal_replay_file(j, st, ids[i], ids[i] == mark_file ? mark_off : 0, i == n - 1,
                                    replayed);
    }
    mg_free(ids);
    if (*replayed)
        MG_INFO(BK_MODULE,
                "journal: replayed %" PRIu64 " records since lastMark %" PRIx64 ":%" PRIu64,
                *replayed, mark_file, mark_off);
    return rc;
}

static bool bk_journal_no_space(int e)
{
    return e == ENOSPC || e == EDQUOT;
}

/* Log a failure of the journal thread: at most one line per interval (while out of space the
 * same failure comes back with every group). */
static void bk_journal_error(struct bk_journal *j, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void bk_journal_error(struct bk_journal *j, const char *fmt, ...)
{
    uint64_t held;
    if (!mg_ratelimit_allow(&j->rl_error, MG_RATELIMIT_INTERVAL_MS, &held))
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    MG_ERROR(BK_MODULE, "%s (%" PRIu64 " more journal failures since the last line)", line, held);
}

/* Journal thread: stop the preallocation thread's work on the current file (before the file
 * is cut back or replaced); returns with pa_lock held. */
static void bk_journal_prealloc_hold(struct bk_journal *j)
{
    pthread_mutex_lock(&j->pa_lock);
    j->pa_target = 0; /* no new run, and a run in progress stops after its step */
    while (j->pa_busy)
        pthread_cond_wait(&j->pa_cond, &j->pa_lock);
}

static void bk_journal_header(uint8_t *hdr, uint64_t id, uint32_t flags)
{
    memset(hdr, 0, BK_JOURNAL_HEADER_SIZE);
    memcpy(hdr, "BKLG", 4);
    mg_put_be32(hdr + 4, BK_JOURNAL_VERSION);
    mg_put_be64(hdr + 8, id);
    mg_put_be32(hdr + 16, flags);
}

/* Create journal id with its header, synced: the descriptor, or -MG_E* (logged; nothing is
 * left behind). */
static int bk_journal_create_file(struct bk_journal *j, uint64_t id)
{
    char *path = bk_journal_path(j, id);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        bk_journal_error(j, "cannot create journal %s: %s", path, strerror(e));
        mg_free(path);
        atomic_store(&j->failed_errno, e);
        return bk_journal_no_space(e) ? -MG_EREADONLY : mg_err_from_errno(e);
    }
    uint8_t hdr[BK_JOURNAL_HEADER_SIZE];
    bk_journal_header(hdr, id, 0);
    ssize_t w = pwrite(fd, hdr, sizeof hdr, 0);
    int e = w < 0 ? errno : w != (ssize_t)sizeof hdr ? ENOSPC : 0;
    if (e == 0 && j->sync && fdatasync(fd) != 0)
        e = errno;
    if (e != 0) {
        bk_journal_error(j, "cannot write journal %s: %s", path, strerror(e));
        close(fd);
        unlink(path); /* no half-made file may stay behind as the "last" journal */
        mg_free(path);
        atomic_store(&j->failed_errno, e);
        return bk_journal_no_space(e) ? -MG_EREADONLY : mg_err_from_errno(e);
    }
    if (j->sync)
        mg_fsync_dir(j->dir);
    mg_free(path);
    return fd;
}

/*
 * journalReuseFiles: take over the oldest journal file the durable lastMark covers, when
 * journalMaxBackups (at least one) of them are kept, as journal id: its header is rewritten
 * (id, BK_JOURNAL_F_REUSED) and synced, then it is renamed. Its blocks are allocated and
 * written already, so the groups written over it need no zero-fill and their fdatasync no
 * metadata. What follows the last group of the new life is the old one's: replay tells them
 * apart by the file id under each group header's checksum. The descriptor and *size, or -1
 * (nothing to take over, or it failed: logged, a new file is created instead). A crash
 * between the header and the rename leaves a covered file with the new header: never
 * replayed (it is below lastMark), deleted or taken over later.
 */
static int bk_journal_reuse_file(struct bk_journal *j, uint64_t id, uint64_t *size)
{
    uint64_t *ids;
    size_t n = bk_journal_list_files(j->dir, &ids), covered = 0;
    uint64_t below = atomic_load(&j->covered_below);
    while (covered < n && ids[covered] < below)
        covered++;
    uint64_t old = ids && n ? ids[0] : 0;
    mg_free(ids);
    if (covered == 0 || covered < (j->max_backups ? j->max_backups : 1))
        return -1;
    char *from = bk_journal_path(j, old), *to = bk_journal_path(j, id);
    uint8_t hdr[BK_JOURNAL_HEADER_SIZE + BK_GROUP_HEADER_SIZE]; /* + the end mark */
    bk_journal_header(hdr, id, BK_JOURNAL_F_REUSED);
    bk_journal_group_header(hdr + BK_JOURNAL_HEADER_SIZE, id, BK_JOURNAL_HEADER_SIZE, 0, 0);
    struct stat sb;
    int fd = open(from, O_RDWR | O_CLOEXEC), e = 0;
    if (fd < 0 || fstat(fd, &sb) != 0)
        e = errno;
    else if ((uint64_t)sb.st_size < BK_JOURNAL_HEADER_SIZE)
        e = EINVAL;
    else if (pwrite(fd, hdr, sizeof hdr, 0) != (ssize_t)sizeof hdr)
        e = errno ? errno : ENOSPC;
    else if (j->sync && fdatasync(fd) != 0)
        e = errno;
    else if (rename(from, to) != 0)
        e = errno;
    else if (j->sync && mg_fsync_dir(j->dir) < 0)
        e = errno ? errno : EIO;
    if (e == 0) {
        *size = (uint64_t)sb.st_size;
        atomic_fetch_add(&j->st_reused, 1);
        MG_DEBUG(BK_MODULE, "journal %s taken over as %s (%" PRIu64 " bytes)", from, to, *size);
    } else {
        MG_WARN(BK_MODULE, "journal %s: cannot take it over as %s: %s; a new file is created", from,
                to, strerror(e));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    mg_free(from);
    mg_free(to);
    return fd;
}

/* Journal thread (or before start): make file_id + 1 current, taking a covered file over
 * (journalReuseFiles) or creating it. Out of space: -MG_EREADONLY (the current file stays;
 * nothing is left behind). */
static int bk_journal_open_next_file(struct bk_journal *j)
{
    uint64_t id = j->file_id + 1, zeroed = BK_JOURNAL_HEADER_SIZE;
    int fd = j->reuse ? bk_journal_reuse_file(j, id, &zeroed) : -1;
    if (fd < 0)
        fd = bk_journal_create_file(j, id);
    if (fd < 0)
        return fd;
    bk_journal_prealloc_hold(j); /* the thread lets go of the old file */
    j->pa_fd = fd;
    j->alloc_end = zeroed; /* a file taken over: written already, as far as it goes */
    pthread_mutex_unlock(&j->pa_lock);
    if (j->fd >= 0)
        close(j->fd);
    j->fd = fd;
    j->file_id = id;
    j->file_off = BK_JOURNAL_HEADER_SIZE;
    return 0;
}

/* Bytes the journal's file system can still take before its usage passes
 * diskUsageThreshold; UINT64_MAX when there is no threshold or it cannot be known. */
static uint64_t bk_journal_room_below_threshold(const struct bk_journal *j)
{
    struct statvfs sv;
    if (j->threshold_pct >= 100.0 || statvfs(j->dir, &sv) != 0 || sv.f_blocks == 0)
        return UINT64_MAX;
    double total = (double)sv.f_blocks * (double)sv.f_frsize;
    double used = (double)(sv.f_blocks - sv.f_bavail) * (double)sv.f_frsize;
    double room = total * j->threshold_pct / 100.0 - used;
    return room > 0 ? (uint64_t)room : 0;
}

/*
 * Zero-fill the journal ahead of the writes (BookKeeper's journalPreAllocSizeMB). Appending
 * to a file grows its size, so every group's fdatasync would also have to write the inode;
 * writing inside blocks that already exist flushes only the data. Replay stops at the first
 * zero group header, so the zeros read as the end of the journal.
 *
 * The zeros are written by their own thread, ahead of the groups: written inline, 16 MiB of
 * zeros and their fdatasync stopped the journal for 10-20 ms (a quiet disk) to 90 ms (a busy
 * one) every 16 MiB of journal, which was the p99 publish latency (docs/bookie-threads.md,
 * "Where the tail came from"). The thread writes BK_PREALLOC_STEP at a time and pushes each
 * step to the disk at once (sync_file_range), so that a group's fdatasync running meanwhile
 * has at most one step of zeros to write besides its own pages; the last fdatasync of a run
 * commits the new size. The journal thread asks for more when less than half of
 * journalPreAllocSizeMB is left ahead of its writes, and waits only if it catches up (counted:
 * magnetar_bookie_journal_preallocation_waits_total).
 *
 * The disk-usage threshold is checked first: preallocation never takes the file system past
 * diskUsageThreshold (it stays within the room left, or is skipped and the group written
 * without it), and the loop thread is asked to check the disks at once when room is short,
 * so that the bookie turns read-only before the disk is full rather than after.
 */
#define BK_PREALLOC_STEP (1u << 20)

/* Zero-fill [from, end) of fd; the end actually reached (a failed write, e.g. a nearly full
 * disk, stops it there: the groups are then written without zeros ahead). A failed sync of
 * the zeros is *err (the state of the file's pages is then unknown). */
static uint64_t bk_journal_zero_fill(struct bk_journal *j, int fd, uint64_t from, uint64_t end,
                                     int *err)
{
    static const uint8_t zeros[1 << 16];
    uint64_t off = from;
    while (off < end) {
        uint64_t step_end = end - off < BK_PREALLOC_STEP ? end : off + BK_PREALLOC_STEP;
        uint64_t p = off;
        while (p < step_end) {
            size_t n = step_end - p < sizeof zeros ? (size_t)(step_end - p) : sizeof zeros;
            ssize_t w = pwrite(fd, zeros, n, (off_t)p);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                break;
            p += (uint64_t)w;
        }
        if (j->sync && p > off &&
            sync_file_range(fd, (off_t)off, (off_t)(p - off),
                            SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                SYNC_FILE_RANGE_WAIT_AFTER) != 0) {
            *err = errno;
            return off;
        }
        pthread_mutex_lock(&j->pa_lock);
        j->alloc_end = p; /* usable at once: a group no longer waits for the rest */
        bool more = p == step_end && j->pa_target > p && !j->pa_stopping;
        pthread_cond_broadcast(&j->pa_cond);
        pthread_mutex_unlock(&j->pa_lock);
        off = p;
        if (!more)
            break;
    }
    if (j->sync && off > from && fdatasync(fd) != 0) /* the new size, off the groups' path */
        *err = errno;
    return off;
}

static void *bk_journal_prealloc_main(void *arg)
{
    struct bk_journal *j = arg;
    pthread_mutex_lock(&j->pa_lock);
    for (;;) {
        while (!j->pa_stopping && (j->pa_fd < 0 || j->pa_errno || j->alloc_end >= j->pa_target))
            pthread_cond_wait(&j->pa_cond, &j->pa_lock);
        if (j->pa_stopping)
            break;
        int fd = j->pa_fd;
        uint64_t from = j->alloc_end, end = j->pa_target;
        j->pa_busy = true;
        pthread_mutex_unlock(&j->pa_lock);
        uint64_t room = bk_journal_room_below_threshold(j);
        if (end - from > room) {
            atomic_store(&j->disk_check_due, 1);
            end = from + room;
        }
        uint64_t t0 = mg_mono_ns();
        int err = 0;
        uint64_t reached = end > from ? bk_journal_zero_fill(j, fd, from, end, &err) : from;
        if (reached > from)
            bk_lat_add(&j->lat_prealloc, mg_mono_ns() - t0, err == 0);
        /* one line per run (journalPreAllocSizeMB / 2 of journal), to match slow receipts */
        MG_DEBUG(BK_MODULE, "zero-fill run done in %.1f ms", (double)(mg_mono_ns() - t0) / 1e6);
        pthread_mutex_lock(&j->pa_lock);
        j->pa_busy = false;
        if (err)
            j->pa_errno = err;
        if (reached < j->pa_target && !j->pa_stopping)
            j->pa_target = reached; /* no room, or a failed write: groups go on without */
        pthread_cond_broadcast(&j->pa_cond);
    }
    pthread_mutex_unlock(&j->pa_lock);
    return NULL;
}

/* Journal thread, before writing up to need: keep journalPreAllocSizeMB of zeros ahead of
 * the writes (the preallocation thread fills them), and wait only when the group would reach
 * past them and the thread is still filling. 0, or -errno of a failed sync of the zeros. */
static int bk_journal_prealloc_ahead(struct bk_journal *j, uint64_t need)
{
    pthread_mutex_lock(&j->pa_lock);
    /* groups written while there was no room to zero-fill ahead lie past alloc_end: they are
     * data, the zeros start after them */
    if (!j->pa_busy && j->alloc_end < j->file_off)
        j->alloc_end = j->file_off;
    uint64_t want = j->file_off + j->prealloc;
    if (want > j->max_size)
        want = j->max_size; /* the file rolls there */
    if (want < need)
        want = need;
    if ((need > j->alloc_end || j->alloc_end < j->file_off + j->prealloc / 2) &&
        j->pa_target < want) {
        j->pa_target = want;
        pthread_cond_broadcast(&j->pa_cond);
    }
    uint64_t t0 = 0;
    while (j->pa_started && need > j->alloc_end && !j->pa_errno &&
           (j->pa_busy || j->pa_target > j->alloc_end)) {
        if (t0 == 0) {
            t0 = mg_mono_ns();
            atomic_fetch_add(&j->st_prealloc_waits, 1);
        }
        pthread_cond_wait(&j->pa_cond, &j->pa_lock);
    }
    int e = j->pa_errno;
    pthread_mutex_unlock(&j->pa_lock);
    if (t0)
        bk_lat_add(&j->lat_prealloc_wait, mg_mono_ns() - t0, true);
    return -e;
}

/*
 * A group could not be written for lack of space: cut off whatever part of it reached the
 * file, so that the file ends with its last synced group again and the journal can go on
 * when space returns. Returns -MG_EREADONLY (the group's adds are answered EREADONLY), or
 * -MG_EIO when the file cannot be cut back (then the journal stops for good).
 */
static int bk_journal_group_no_space(struct bk_journal *j, int e, const char *what)
{
    atomic_store(&j->failed_errno, e);
    atomic_store(&j->disk_check_due, 1);
    bk_journal_error(j, "journal %" PRIx64 ": %s: %s: the group's requests are refused (EREADONLY)",
                     j->file_id, what, strerror(e));
    bk_journal_prealloc_hold(j);
    bool cut = ftruncate(j->fd, (off_t)j->file_off) == 0 && (!j->sync || fdatasync(j->fd) == 0);
    int e2 = errno;
    j->alloc_end = j->file_off;
    pthread_mutex_unlock(&j->pa_lock);
    if (!cut) {
        MG_ERROR(BK_MODULE,
                 "journal %" PRIx64 ": cannot cut it back to %" PRIu64 " after a failed write: "
                 "%s; the journal stops (read-only until restart)",
                 j->file_id, j->file_off, strerror(e2));
        return -MG_EIO;
    }
    return -MG_EREADONLY;
}

static size_t bk_journal_record_size(const struct bk_jreq *r)
{
    switch (r->type) {
    case BK_J_ADD:
        return BK_RECORD_HEADER_SIZE + r->len;
    case BK_J_KEY:
    case BK_J_LAC:
        return BK_RECORD_HEADER_SIZE + 16 + 4 + r->len;
    default:
        return BK_RECORD_HEADER_SIZE + 16;
    }
}

static void bk_journal_serialize(struct bk_journal *j, size_t *used, const struct bk_jreq *r)
{
    size_t need = bk_journal_record_size(r);
    j->buf = mg_grow(j->buf, &j->buf_cap, *used + need, 1, 0);
    uint8_t *rec = j->buf + *used, *p = rec + BK_RECORD_HEADER_SIZE;
    *used += need;
    uint32_t len = (uint32_t)(need - BK_RECORD_HEADER_SIZE);
    mg_put_be32(rec, len);
    if (r->type == BK_J_ADD) {
        memcpy(p, r->data, r->len);
        mg_put_be32(rec + 4, bk_journal_record_crc(rec, len));
        return;
    }
    static const int64_t ids[] = {
        [BK_J_KEY] = BK_META_LEDGER_KEY,
        [BK_J_FENCE] = BK_META_FENCE_KEY,
        [BK_J_LAC] = BK_META_EXPLICIT_LAC,
        [BK_J_FORCE] = BK_META_FORCE_LEDGER,
    };
    mg_put_be64(p, (uint64_t)r->ledger_id);
    mg_put_be64(p + 8, (uint64_t)ids[r->type]);
    if (r->type == BK_J_KEY || r->type == BK_J_LAC) {
        mg_put_be32(p + 16, (uint32_t)r->len);
        if (r->len)
            memcpy(p + 20, r->data, r->len);
    }
    mg_put_be32(rec + 4, bk_journal_record_crc(rec, len));
}

/* Write and sync one group; returns 0 or -MG_E*. */
/* Write and sync one group; returns 0, -MG_EREADONLY (out of space: nothing of it stays in
 * the file, the journal goes on) or another -MG_E* (the journal stops). */
static int bk_journal_write_group(struct bk_journal *j, size_t used, uint32_t nrec)
{
    int inj = atomic_exchange(&j->inject_errno, 0);
    if (inj != 0) {
        if (bk_journal_no_space(inj))
            return bk_journal_group_no_space(j, inj, "write failed (injected)");
        atomic_store(&j->failed_errno, inj);
        MG_ERROR(BK_MODULE, "journal: write failed: %s (injected)", strerror(inj));
        return mg_err_from_errno(inj);
    }
    if (j->file_off > BK_JOURNAL_HEADER_SIZE && j->file_off + used > j->max_size) {
        int rc = bk_journal_open_next_file(j);
        if (rc < 0)
            return rc;
    }
    /* the end mark after the group, in the same write (the next group's header overwrites
     * it): see the top of this file */
    j->buf = mg_grow(j->buf, &j->buf_cap, used + BK_GROUP_HEADER_SIZE, 1, 0);
    {
        int e = bk_journal_prealloc_ahead(j, j->file_off + used + BK_GROUP_HEADER_SIZE);
        if (e < 0) {
            atomic_store(&j->failed_errno, -e);
            MG_ERROR(BK_MODULE, "journal %" PRIx64 ": preallocation failed: %s", j->file_id,
                     strerror(-e));
            return mg_err_from_errno(-e);
        }
    }
    /* the group header: its position ties it to this file and offset */
    bk_journal_group_header(j->buf, j->file_id, j->file_off,
                            (uint32_t)(used - BK_GROUP_HEADER_SIZE), nrec);
    bk_journal_group_header(j->buf + used, j->file_id, j->file_off + used, 0, 0);
    if (mg_pwrite_all(j->fd, j->buf, used + BK_GROUP_HEADER_SIZE, j->file_off) < 0) {
        int e = errno;
        if (bk_journal_no_space(e))
            return bk_journal_group_no_space(j, e, "write failed");
        atomic_store(&j->failed_errno, e);
        MG_ERROR(BK_MODULE, "journal %" PRIx64 ": write failed: %s", j->file_id, strerror(e));
        return mg_err_from_errno(e);
    }
    if (j->sync) {
        /* a failed fdatasync leaves the state of the written pages unknown: stop for good */
        uint64_t t0 = mg_mono_ns();
        int synced = fdatasync(j->fd);
        bk_lat_add(&j->lat_sync, mg_mono_ns() - t0, synced == 0);
        if (synced != 0) {
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

/* Append the chain head..tail to the list *first..*last (the journal's queues: under
 * j->lock). */
static void bk_jreq_append(struct bk_jreq **first, struct bk_jreq **last, struct bk_jreq *head,
                           struct bk_jreq *tail)
{
    if (*last)
        (*last)->next = head;
    else
        *first = head;
    *last = tail;
}

static void bk_journal_complete_group(struct bk_journal *j, struct bk_jreq *head,
                                      struct bk_jreq *tail)
{
    pthread_mutex_lock(&j->lock);
    bk_jreq_append(&j->done_head, &j->done_tail, head, tail);
    pthread_mutex_unlock(&j->lock);
    uint64_t one = 1;
    if (write(j->notify_fd, &one, sizeof one) < 0)
        MG_WARN(BK_MODULE, "journal notify write: %s", strerror(errno));
}

static void *bk_journal_main(void *arg)
{
    struct bk_journal *j = arg;
    for (;;) {
        struct bk_jreq *head = NULL, *tail = NULL;
        size_t n = 0, used = BK_GROUP_HEADER_SIZE; /* the header is filled in at the write */
        uint64_t oldest = 0;
        bool stop = false;
        pthread_mutex_lock(&j->lock);
        while ((j->q_head == NULL || j->held) && !j->stopping)
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
                bk_jreq_append(&took, &took_tail, r, r);
                bytes += bk_journal_record_size(r);
                n++;
            }
            bool empty = j->q_head == NULL;
            pthread_mutex_unlock(&j->lock);
            for (struct bk_jreq *r = took; r; r = r->next) {
                if (oldest == 0)
                    oldest = r->enq_ns;
                if (!j->failed)
                    bk_journal_serialize(j, &used, r);
            }
            if (took)
                bk_jreq_append(&head, &tail, took, took_tail);
            if (empty || (j->entries_threshold && n >= j->entries_threshold) ||
                used >= j->bytes_threshold ||
                mg_mono_ns() - oldest >= (uint64_t)j->max_group_wait_ms * 1000000u)
                break;
        }
        int status = -MG_EIO;
        if (!j->failed) {
            status = bk_journal_write_group(j, used, (uint32_t)n);
            if (status == 0)
                j->file_off += used;
            else if (status != -MG_EREADONLY)
                j->failed = true;
        }
        /* Every record of a group gets the group's end as its position: lastMark always
         * falls between groups, where replay can resume (meaningful only when written). */
        uint64_t now = mg_mono_ns();
        for (struct bk_jreq *r = head; r; r = r->next) {
            r->status = status;
            r->jfile = j->file_id;
            r->jend = j->file_off;
            atomic_fetch_add(&j->st_records, 1);
            if (r->type == BK_J_ADD) {
                atomic_fetch_add(&j->st_adds, 1);
                bk_lat_add(&j->lat_add, now - r->enq_ns, status == 0);
            }
        }
        bk_journal_complete_group(j, head, tail);
    }
    return NULL;
}

int bk_notify_open(struct event_base *base, event_callback_fn cb, void *arg, int *fd,
                   struct event **ev)
{
    *fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (*fd < 0) {
        MG_ERROR(BK_MODULE, "eventfd: %s", strerror(errno));
        return mg_err_from_errno(errno);
    }
    *ev = event_new(base, *fd, EV_READ | EV_PERSIST, cb, arg);
    event_add(*ev, NULL);
    return 0;
}

void bk_notify_close(int *fd, struct event **ev)
{
    mg_event_free(*ev);
    *ev = NULL;
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

int bk_journal_start(struct bk_journal *j, struct event_base *base)
{
    int rc = bk_notify_open(base, bk_journal_notify_cb, j, &j->notify_fd, &j->notify_ev);
    if (rc < 0)
        return rc;
    rc = bk_journal_open_next_file(j);
    if (rc < 0)
        return rc;
    if (pthread_create(&j->pa_thread, NULL, bk_journal_prealloc_main, j) != 0) {
        MG_ERROR(BK_MODULE, "cannot start the journal's preallocation thread");
        return -MG_EIO;
    }
    j->pa_started = true;
    if (pthread_create(&j->thread, NULL, bk_journal_main, j) != 0) {
        MG_ERROR(BK_MODULE, "cannot start the journal thread");
        return -MG_EIO;
    }
    j->started = true;
    return 0;
}

void bk_journal_hold(struct bk_journal *j, bool on)
{
    pthread_mutex_lock(&j->lock);
    j->held = on;
    pthread_cond_signal(&j->cond);
    pthread_mutex_unlock(&j->lock);
}

void bk_journal_submit(struct bk_journal *j, struct bk_jreq *head, struct bk_jreq *tail)
{
    if (!head)
        return;
    pthread_mutex_lock(&j->lock);
    bk_jreq_append(&j->q_head, &j->q_tail, head, tail);
    pthread_cond_signal(&j->cond);
    pthread_mutex_unlock(&j->lock);
}

/* Tell a worker thread to stop (*stopping under m, c broadcast) and join it. */
static void bk_journal_join(pthread_t t, pthread_mutex_t *m, pthread_cond_t *c, bool *stopping,
                            bool *started)
{
    if (!*started)
        return;
    pthread_mutex_lock(m);
    *stopping = true;
    pthread_cond_broadcast(c);
    pthread_mutex_unlock(m);
    pthread_join(t, NULL);
    *started = false;
}

void bk_journal_stop(struct bk_journal *j)
{
    bool was = j->started;
    bk_journal_join(j->thread, &j->lock, &j->cond, &j->stopping, &j->started);
    if (was)
        MG_INFO(BK_MODULE,
                "journal: %" PRIu64 " groups, fdatasync p50 %.3f p99 %.3f max %.3f ms; "
                "zero-fill: %" PRIu64 " runs p99 %.3f ms, %" PRIu64
                " group writes waited for it (p99 %.3f ms) (log2 bucket bounds)",
                atomic_load(&j->st_groups), bk_lat_quantile_ms(&j->lat_sync, 0.5),
                bk_lat_quantile_ms(&j->lat_sync, 0.99), bk_lat_quantile_ms(&j->lat_sync, 1.0),
                atomic_load(&j->lat_prealloc.count), bk_lat_quantile_ms(&j->lat_prealloc, 0.99),
                atomic_load(&j->st_prealloc_waits),
                bk_lat_quantile_ms(&j->lat_prealloc_wait, 0.99));
    bk_journal_join(j->pa_thread, &j->pa_lock, &j->pa_cond, &j->pa_stopping, &j->pa_started);
}

struct bk_jreq *bk_journal_take_done(struct bk_journal *j)
{
    pthread_mutex_lock(&j->lock);
    struct bk_jreq *h = j->done_head;
    j->done_head = j->done_tail = NULL;
    pthread_mutex_unlock(&j->lock);
    return h;
}

void bk_journal_trim(struct bk_journal *j, uint64_t mark_file, unsigned keep)
{
    uint64_t was = atomic_load(&j->covered_below);
    while (was < mark_file && !atomic_compare_exchange_weak(&j->covered_below, &was, mark_file))
        ;
    uint64_t *ids;
    size_t n = bk_journal_list_files(j->dir, &ids); /* ascending */
    size_t covered = 0;
    while (covered < n && ids[covered] < mark_file)
        covered++;
    for (size_t i = 0; i + keep < covered; i++) {
        char *path = bk_journal_path(j, ids[i]);
        if (unlink(path) == 0)
            MG_DEBUG(BK_MODULE, "journal %s removed (before lastMark)", path);
        else if (errno != ENOENT) /* ENOENT: taken over by the journal thread meanwhile */
            MG_WARN(BK_MODULE, "cannot remove journal %s: %s", path, strerror(errno));
        mg_free(path);
    }
    mg_free(ids);
}

void bk_journal_fini(struct bk_journal *j)
{
    bk_journal_stop(j);
    bk_notify_close(&j->notify_fd, &j->notify_ev);
    if (j->fd >= 0)
        close(j->fd);
    j->fd = j->notify_fd = -1;
    pthread_mutex_destroy(&j->lock);
    pthread_cond_destroy(&j->cond);
    pthread_mutex_destroy(&j->pa_lock);
    pthread_cond_destroy(&j->pa_cond);
    mg_free(j->buf);
    mg_free(j->dir);
    j->buf = NULL;
    j->dir = NULL;
}
