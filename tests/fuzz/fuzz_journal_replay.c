/*
 * fuzz_journal_replay.c - libFuzzer target for the bookie's journal replay (bk_journal.c):
 * the reader of whatever a crash, a torn write, a reused file's earlier life or a damaged
 * disk left in <journalDirectory>/current/.
 *
 * The input's first byte chooses the file image: bit 0 set, the rest is the whole journal
 * file (its header included, so the header and version checks get fuzzed too); clear, the
 * rest follows a valid 512-byte header of file id 1, version 8 (bit 1 clear) or 7 (bit 1
 * set), with the reused flag when bit 2 is set (journalReuseFiles: an earlier life's groups
 * may follow). It is written as the only (so the last) journal file, id 1, and replayed from
 * its start into a fresh store (ledger directory and index) under /dev/shm.
 *
 * Promises checked for every input: replay returns 0 or a negative error; a replay that
 * succeeded, run again on what it left (it truncates a torn tail), succeeds again and
 * replays exactly as many records (it cut off nothing that it had applied). Failure modes:
 * a broken promise aborts; ASan/UBSan catch memory errors and undefined behaviour;
 * LeakSanitizer catches leaks.
 */
#define FUZZ_TARGET "fuzz_journal_replay"
#include "bookie/bookie_int.h"
#include "fuzz.h"
#include "util/bytes.h"
#include "util/fs.h"
#include "util/log.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char fuzz_dir[64];

static void fuzz_rm(const char *sub)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/%s'", fuzz_dir, sub);
    check(system(cmd) == 0, "cleaning the fuzz directory");
}

/* Replay the journal directory into a fresh store: the replay's return code, *count. */
static int fuzz_replay(uint64_t *count)
{
    fuzz_rm("ledgers");
    char ldir[96], jdir[96];
    snprintf(ldir, sizeof ldir, "%s/ledgers", fuzz_dir);
    snprintf(jdir, sizeof jdir, "%s/journal", fuzz_dir);
    struct bk_store st;
    memset(&st, 0, sizeof st);
    char *dirs[1] = {ldir};
    check(bk_store_open(&st, dirs, 1, 0) == 0, "opening a fresh store");
    struct bk_options o;
    memset(&o, 0, sizeof o);
    o.journal_dir = jdir;
    struct bk_journal j;
    check(bk_journal_init(&j, NULL, &o) == 0, "opening the journal directory");
    *count = 0;
    int rc = bk_journal_replay(&j, &st, 0, 0, count);
    bk_journal_fini(&j);
    bk_store_close(&st, true);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fuzz_dir[0]) {
        mg_log_set_level((enum mg_log_level)(MG_LOG_ERROR + 1)); /* every input is a warning */
        snprintf(fuzz_dir, sizeof fuzz_dir, "/dev/shm/fuzz_journal.XXXXXX");
        check(mkdtemp(fuzz_dir) != NULL, "creating the fuzz directory");
    }
    if (size < 1)
        return 0;
    fuzz_rm("journal");
    char path[128];
    snprintf(path, sizeof path, "%s/journal/current", fuzz_dir);
    check(mg_mkdirs(path) == 0, "creating the journal directory");
    snprintf(path, sizeof path, "%s/journal/current/1.txn", fuzz_dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    check(fd >= 0, "creating the journal file");
    if (!(data[0] & 1)) {
        uint8_t hdr[BK_JOURNAL_HEADER_SIZE] = {'B', 'K', 'L', 'G'};
        mg_put_be32(hdr + 4, data[0] & 2 ? BK_JOURNAL_VERSION_V7 : BK_JOURNAL_VERSION);
        mg_put_be64(hdr + 8, 1);
        mg_put_be32(hdr + 16, data[0] & 4 ? BK_JOURNAL_F_REUSED : 0);
        check(write(fd, hdr, sizeof hdr) == (ssize_t)sizeof hdr, "writing the header");
    }
    check(size == 1 || write(fd, data + 1, size - 1) == (ssize_t)(size - 1), "writing the file");
    close(fd);

    uint64_t first, again;
    int rc = fuzz_replay(&first);
    check(rc <= 0, "replay returns 0 or an error");
    if (rc == 0) {
        check(fuzz_replay(&again) == 0, "a replay that succeeded succeeds again");
        check(again == first, "a second replay applies as many records as the first");
    }
    return 0;
}
