/*
 * fuzz_meta_replay.c - libFuzzer target for the embedded metadata store's open path: the
 * snapshot loader and the write-ahead log replay (meta_embedded.c), which read whatever a
 * crash, a full disk or a hostile user left in the data directory.
 *
 * The input's first byte chooses the file: even, the rest is the body of meta.log behind a
 * valid header of generation 0 (no snapshot: the log is replayed); odd, the rest is the
 * whole of meta.snap (its header included, so the header checks get fuzzed too). The store
 * is opened on a fresh directory under /dev/shm (tmpfs: the fdatasyncs cost nothing).
 *
 * Promises checked for every input: meta_open either succeeds or fails with an error; a
 * store that opened once (and compacted what it replayed) opens again, and its second open
 * replays nothing new. Failure modes: a broken promise aborts; ASan/UBSan catch memory
 * errors and undefined behaviour; LeakSanitizer catches leaks (meta_close frees everything).
 */
#include "meta/meta.h"
#include "util/log.h"
#include "util/loop.h"

#include <event2/event.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fuzz_dir[64];

static void fuzz_write(const char *name, const void *hdr, size_t hlen, const void *p, size_t n)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", fuzz_dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        abort();
    if ((hlen && write(fd, hdr, hlen) != (ssize_t)hlen) || (n && write(fd, p, n) != (ssize_t)n))
        abort();
    close(fd);
}

static void fuzz_clean(void)
{
    static const char *const names[] = {"meta.log", "meta.snap", "meta.log.tmp", "meta.snap.tmp"};
    char path[128];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", fuzz_dir, names[i]);
        unlink(path);
    }
}

static int fuzz_open_close(void)
{
    struct event_base *base = event_base_new();
    struct mg_loop *loop = mg_loop_new(base);
    struct meta_options mo = {.url = "embedded", .data_dir = fuzz_dir};
    struct meta_store *m = NULL;
    int rc = meta_open(loop, &mo, &m);
    if (rc == 0)
        meta_close(m);
    mg_loop_free(loop);
    event_base_free(base);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fuzz_dir[0]) {
        mg_log_set_level(
            (enum mg_log_level)(MG_LOG_ERROR + 1)); /* quiet: every input is a warning */
        snprintf(fuzz_dir, sizeof fuzz_dir, "/dev/shm/fuzz_meta.XXXXXX");
        if (!mkdtemp(fuzz_dir))
            abort();
    }
    if (size < 1)
        return 0;
    fuzz_clean();
    if (data[0] & 1) {
        fuzz_write("meta.snap", NULL, 0, data + 1, size - 1);
    } else {
        static const uint8_t hdr[16] = {'M', 'G', 'M', 'E', 'T', 'L', 'O', 'G'};
        fuzz_write("meta.log", hdr, sizeof hdr, data + 1, size - 1);
    }
    if (fuzz_open_close() == 0 && fuzz_open_close() != 0) {
        fprintf(stderr, "fuzz_meta_replay: broken promise: a store that opened once does not "
                        "open again\n");
        abort();
    }
    return 0;
}
