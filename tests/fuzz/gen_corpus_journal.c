/*
 * gen_corpus_journal.c - writes the seed corpus of fuzz_journal_replay: journal file images
 * of each format the bookie replays (version 8 as written, 7 and 6 read only), intact, with a
 * torn last group, and files taken over (journalReuseFiles) with an earlier life's groups
 * after the new ones and their end mark, one of them torn right after its header over the
 * earlier life's records (the case version 8's group body checksum is for).
 *
 * Usage: gen_corpus_journal DIR  (writes DIR/<name>.bin, overwriting; DIR must exist). The
 * first byte of each seed is the target's control byte (see fuzz_journal_replay.c). Happy
 * path: one file per seed, exit 0. Failure modes: a file that cannot be written prints the
 * reason, exit 1.
 */
#include "bookie/bookie_int.h"
#include "util/bytes.h"
#include "util/crc.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CTL_V8 0x00
#define CTL_WHOLE 0x01
#define CTL_V7 0x02
#define CTL_REUSED 0x04

struct image {
    uint8_t b[16384];
    size_t len; /* the offset in the journal file is len - 1 + header (see off()) */
    bool whole; /* the image holds the file header itself */
};

static int failed;

static uint64_t off(const struct image *im)
{
    return im->whole ? im->len - 1 : im->len - 1 + BK_JOURNAL_HEADER_SIZE;
}

/* A record body of ledger/entry (entry < 0: a meta-record), n bytes in all. */
static size_t body(uint8_t *p, int64_t ledger, int64_t entry, size_t n, uint8_t fill)
{
    mg_put_be64(p, (uint64_t)ledger);
    mg_put_be64(p + 8, (uint64_t)entry);
    memset(p + 16, fill, n - 16);
    if (entry == BK_META_LEDGER_KEY)
        mg_put_be32(p + 16, (uint32_t)(n - 20));
    return n;
}

/* The header h of a group of nrec records, body_len bytes (following h), at offset at of file
 * id in the given version (nrec 0, body_len 0 in version 8: the end mark). */
static void header(uint8_t *h, uint64_t id, int version, uint64_t at, size_t body_len,
                   unsigned nrec)
{
    uint8_t idb[8];
    mg_put_be64(idb, id);
    mg_put_be32(h, BK_GROUP_MAGIC);
    mg_put_be32(h + 4, (uint32_t)body_len);
    mg_put_be32(h + 8, nrec);
    mg_put_be32(h + 12, version >= BK_JOURNAL_VERSION
                            ? mg_crc32c(0, h + BK_GROUP_HEADER_SIZE, body_len)
                            : 0);
    mg_put_be64(h + 16, at);
    mg_put_be32(h + 24, mg_crc32c(mg_crc32c(0, idb, 8), h, 24));
}

/* Append a group of nrec records of size n (entries first .. of ledger, the first one a
 * ledger key record when key), written as file id in the given version. */
static void group(struct image *im, uint64_t id, int version, int64_t ledger, int64_t first,
                  unsigned nrec, size_t n, bool key)
{
    uint8_t *h = im->b + im->len;
    uint64_t at = off(im);
    size_t p = BK_GROUP_HEADER_SIZE;
    for (unsigned k = 0; k < nrec; k++) {
        uint8_t *rec = h + p;
        bool is_key = key && k == 0;
        size_t len = body(rec + BK_RECORD_HEADER_SIZE, ledger,
                          is_key ? BK_META_LEDGER_KEY : first + k - (key ? 1 : 0), is_key ? 40 : n,
                          (uint8_t)(first + k));
        mg_put_be32(rec, (uint32_t)len);
        mg_put_be32(rec + 4, mg_crc32c(mg_crc32c(0, rec, 4), rec + BK_RECORD_HEADER_SIZE, len));
        p += BK_RECORD_HEADER_SIZE + len;
    }
    header(h, id, version, at, p - BK_GROUP_HEADER_SIZE, nrec);
    im->len += p;
    if (version >= BK_JOURNAL_VERSION) /* the end mark, in the image if something follows */
        header(im->b + im->len, id, version, at + p, 0, 0);
}

static void start(struct image *im, uint8_t ctl, int whole_version, uint32_t flags)
{
    memset(im, 0, sizeof *im);
    im->b[0] = ctl;
    im->len = 1;
    im->whole = whole_version != 0;
    if (im->whole) {
        memcpy(im->b + 1, "BKLG", 4);
        mg_put_be32(im->b + 5, (uint32_t)whole_version);
        mg_put_be64(im->b + 9, 1);
        mg_put_be32(im->b + 17, flags);
        im->len += BK_JOURNAL_HEADER_SIZE;
    }
}

static void save(const char *dir, const char *name, const struct image *im)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.bin", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(im->b, 1, im->len, f) != im->len) {
        perror(path);
        failed = 1;
    }
    if (f)
        fclose(f);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    static struct image im, old, marked;

    start(&im, CTL_V8, 0, 0); /* version 8: a key and entries, then preallocated zeros */
    group(&im, 1, 8, 5, 0, 2, 100, true);
    group(&im, 1, 8, 5, 1, 3, 60, false);
    marked = im; /* with the end mark after the last group */
    marked.len += BK_GROUP_HEADER_SIZE;
    save(dir, "v8", &marked);
    marked.len += 512;
    save(dir, "v8-zeros", &marked);
    group(&im, 1, 8, 5, 4, 2, 80, false); /* a torn last group: its body cut short */
    im.len -= 50;
    save(dir, "v8-torn-tail", &im);

    start(&im, CTL_WHOLE, 8, 0); /* the whole file, header included */
    group(&im, 1, 8, 6, 0, 2, 40, true);
    save(dir, "v8-whole", &im);

    /* a file taken over: the earlier life (file 7) under the new one's groups */
    start(&old, CTL_V8 | CTL_REUSED, 0, 0);
    for (int g = 0; g < 6; g++)
        group(&old, 7, 8, 9, g, 1, 64, false);
    im = old;
    im.len = 1;
    group(&im, 1, 8, 5, 0, 1, 64, false); /* the same sizes: the lives' groups line up */
    group(&im, 1, 8, 5, 1, 1, 64, false);
    im.len = old.len;
    save(dir, "reused", &im);
    /* the newest group torn right after its header, over the earlier life's record */
    size_t at = 1 + 2 * (BK_GROUP_HEADER_SIZE + BK_RECORD_HEADER_SIZE + 64);
    struct image torn = im;
    torn.len = at;
    group(&torn, 1, 8, 5, 2, 1, 64, false);
    memcpy(torn.b + at + BK_GROUP_HEADER_SIZE, old.b + at + BK_GROUP_HEADER_SIZE,
           old.len - at - BK_GROUP_HEADER_SIZE); /* nothing after its header was written */
    torn.len = old.len;
    save(dir, "reused-torn-header", &torn);

    start(&im, CTL_V7, 0, 0); /* version 7: no body checksum, a damaged last record */
    group(&im, 1, 7, 5, 0, 2, 100, true);
    group(&im, 1, 7, 5, 1, 2, 100, false);
    im.b[im.len - 10] ^= 0xff;
    save(dir, "v7-torn-record", &im);

    start(&im, CTL_WHOLE, 6, 0); /* version 6: [BE32 len][body] records, no checksums */
    for (int e = 0; e < 3; e++) {
        mg_put_be32(im.b + im.len, 48);
        im.len += 4 + body(im.b + im.len + 4, 4, e, 48, (uint8_t)e);
    }
    mg_put_be32(im.b + im.len, 1000); /* a record cut short */
    im.len += 4 + 20;
    save(dir, "v6", &im);
    return failed;
}
