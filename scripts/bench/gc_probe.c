/*
 * gc_probe.c - the disk's durable-write limits, for scripts/bench.sh.
 *
 *   gc_probe DIR [--fsync-seconds S] [--seconds S] [--size N] [--outstanding N]
 *                [--group-ms MS] [--json FILE]
 *
 * Phase 1 (--fsync-seconds, 1): 4 KiB appends, each followed by fdatasync: the disk's
 * own fsync rate and latency percentiles right now.
 * Phase 2 (--seconds, 3): an ideal group-commit log. A client with --outstanding (1000)
 * records in flight and no cost of its own hands records of --size (1024) bytes to a
 * journal that appends each group with one write() and one fdatasync(), then acknowledges
 * the whole group; the client refills its window at once. A group closes when every
 * outstanding record is in it or when its oldest record has waited --group-ms (1), the
 * same rule as a bookie journal. No network, no parsing, no copies beyond one memcpy: the
 * ceiling any durable broker (acking after fsync) can reach on this disk with this
 * window. Files are appended like a journal and rotated every 256 MiB.
 *
 * Prints one JSON object (and writes it to --json): fsync_per_s, fsync_p50_ms,
 * fsync_p99_ms, gc_msg_per_s, gc_groups_per_s, gc_mb_per_s, gc_latency_ms{p50,p99}.
 */
#define _GNU_SOURCE
#include "bench_common.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#define ROTATE_BYTES (256ull << 20)

static int open_log(const char *dir, int n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/gc_probe.%d.log", dir, n);
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
    if (fd < 0) {
        fprintf(stderr, "gc_probe: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    return fd;
}

static void close_log(const char *dir, int fd, int n)
{
    char path[4096];
    close(fd);
    snprintf(path, sizeof path, "%s/gc_probe.%d.log", dir, n);
    unlink(path);
}

static void must_write(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "gc_probe: write: %s\n", strerror(errno));
            exit(1);
        }
        p += w;
        len -= (size_t)w;
    }
}

static void must_sync(int fd)
{
    if (fdatasync(fd) != 0) {
        fprintf(stderr, "gc_probe: fdatasync: %s\n", strerror(errno));
        exit(1);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: gc_probe DIR [--fsync-seconds S] [--seconds S] [--size N] "
                        "[--outstanding N] [--group-ms MS] [--json FILE]\n");
        return 2;
    }
    const char *dir = argv[1];
    double fsecs = atof(bc_opt(argc, argv, "--fsync-seconds", "1"));
    double secs = atof(bc_opt(argc, argv, "--seconds", "3"));
    size_t size = (size_t)atol(bc_opt(argc, argv, "--size", "1024"));
    size_t window = (size_t)atol(bc_opt(argc, argv, "--outstanding", "1000"));
    double group_ms = atof(bc_opt(argc, argv, "--group-ms", "1"));
    const char *json = bc_opt(argc, argv, "--json", NULL);
    if (window < 1)
        window = 1;

    /* phase 1: 4 KiB append + fdatasync */
    struct bc_lat fl = {0};
    char page[4096];
    memset(page, 'f', sizeof page);
    int n = 0;
    int fd = open_log(dir, n);
    uint64_t t0 = bc_now_ns(), end = t0 + (uint64_t)(fsecs * 1e9), t = t0;
    uint64_t nsync = 0;
    while (t < end) {
        uint64_t a = bc_now_ns();
        must_write(fd, page, sizeof page);
        must_sync(fd);
        t = bc_now_ns();
        bc_lat_add(&fl, t - a);
        nsync++;
    }
    double fsync_rate = (double)nsync / ((double)(t - t0) / 1e9);
    qsort(fl.v, fl.n, sizeof *fl.v, bc_cmp_u32);
    close_log(dir, fd, n++);

    /* phase 2: group commit with `window` outstanding records */
    size_t rec = size + 16; /* [len][ledger-ish id][payload] like a journal record */
    char *buf = malloc(rec * window);
    char *payload = malloc(size);
    memset(payload, 'x', size);
    if (!buf || !payload)
        return 1;
    struct bc_lat gl = {0};
    fd = open_log(dir, n);
    uint64_t written = 0, groups = 0, msgs = 0, seq = 0, bytes = 0;
    t0 = bc_now_ns();
    end = t0 + (uint64_t)(secs * 1e9);
    t = t0;
    while (t < end) {
        /* Every record of the window was acknowledged with the last group, and the client
         * refills it at once: the group holds `window` records, all submitted now. The
         * group timer (group_ms) would only close it earlier if records trickled in. */
        uint64_t submitted = bc_now_ns();
        size_t k = 0;
        while (k < window && (bc_now_ns() - submitted) < (uint64_t)(group_ms * 1e6)) {
            char *r = buf + k * rec;
            uint32_t len = (uint32_t)(size + 12);
            memcpy(r, &len, 4);
            memcpy(r + 4, &seq, 8);
            memset(r + 12, 0, 4);
            memcpy(r + 16, payload, size);
            seq++;
            k++;
        }
        must_write(fd, buf, k * rec);
        must_sync(fd);
        t = bc_now_ns();
        for (size_t i = 0; i < k; i++)
            bc_lat_add(&gl, t - submitted);
        msgs += k;
        groups++;
        bytes += k * rec;
        written += k * rec;
        if (written >= ROTATE_BYTES) {
            close_log(dir, fd, n++);
            fd = open_log(dir, n);
            written = 0;
        }
    }
    close_log(dir, fd, n);
    double el = (double)(t - t0) / 1e9;
    qsort(gl.v, gl.n, sizeof *gl.v, bc_cmp_u32);

    char out[1024];
    snprintf(out, sizeof out,
             "{\"fsync_per_s\": %.1f, \"fsync_mean_ms\": %.3f, \"fsync_p50_ms\": %.3f, "
             "\"fsync_p99_ms\": %.3f, \"gc_msg_per_s\": %.1f, \"gc_groups_per_s\": %.1f, "
             "\"gc_mb_per_s\": %.1f, \"gc_record_size\": %zu, \"gc_outstanding\": %zu, "
             "\"gc_latency_ms\": {\"p50\": %.3f, \"p99\": %.3f}}\n",
             fsync_rate, fl.n ? (double)fl.sum_us / (double)fl.n / 1000.0 : 0, bc_pct_ms(&fl, 50),
             bc_pct_ms(&fl, 99), (double)msgs / el, (double)groups / el, (double)bytes / el / 1e6,
             size, window, bc_pct_ms(&gl, 50), bc_pct_ms(&gl, 99));
    printf("%s", out);
    if (json) {
        FILE *f = fopen(json, "w");
        if (!f || fputs(out, f) < 0 || fclose(f) != 0) {
            perror(json);
            return 1;
        }
    }
    return 0;
}
