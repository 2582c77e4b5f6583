/*
 * check_bkc.c - unit tests of the bkc module's ledger logic (quorums, ensemble changes,
 * fencing, recovery, reads), over the in-memory fake bookies (bkc_fake.c) on a simulated
 * loop: no sockets, no sleeps; time moves only when a test waits, and a wait is bounded in
 * simulated time. The TCP transport and real bookies are check_bkc_real.c's.
 *
 * Faults are injected per request by a filter (struct fmode per bookie: answer adds with an
 * error, drop requests, lose answers, delay answers, corrupt reads) and per bookie by the fake
 * (crash, restart, read-only).
 *
 * Covers: metadata v3 round trip and v2 text parsing, ledger paths; create/add/read/close with
 * E=3 Qw=2 Qa=2 and striping per bookie; the entry id decided by the caller (a wrong one is
 * refused, nothing sent); in-order completions with out-of-order acks; an erroring, a crashed
 * and a silent (timeout) bookie -> ensemble change recorded in metadata, unacknowledged
 * entries resent, everything readable; not enough bookies -> -MG_ENOBOOKIES, and create works
 * again once bookies are back; read-only bookies; EFENCED -> -MG_EFENCED; recovery of a dead
 * writer's ledger (entries written but never acknowledged to it; entries that reached only
 * some bookies), the old writer fenced; Qa-acked entries surviving recovery with a bookie
 * down; concurrent recoveries; recovery after an ensemble change; an ensemble change that
 * finds the ledger in recovery; digest types, digest mismatch -> failover and -MG_ECHECKSUM;
 * read timeouts -> failover; free with pending requests -> -MG_ECANCELED; freeing many handles
 * stays linear; the fake's crash keeps what it acknowledged.
 * Failure modes: each test asserts with Check; run with CK_FORK=no under ASan.
 */
#include "bkc/bkc.h"
#include "bkc/bkc_int.h"
#include "lib/tl_bk.h"
#include "meta/meta.h"
#include "util/alloc.h"
#include "util/crc.h"
#include "util/err.h"
#include "util/loop.h"

#include <check.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct tl_fakebk env; /* the loop, the metadata store and the fake bookies */
static struct event_base *base;
static struct mg_loop *loop;
static struct meta_store *meta;
static struct bkc_fake *fake;

/* ---- fake bookies and their faults --------------------------------------------------------- */

#define NFB 6

/* What a bookie does with requests (the filter). Entry thresholds: from that entry on. */
struct fmode {
    int add_rc;          /* != 0: adds are answered with this rc (not applied) */
    int64_t add_rc_from; /* ... from this entry on */
    bool drop_adds;      /* adds never reach it */
    bool drop_reads;     /* reads never reach it */
    bool lose_add_acks;  /* adds are stored, their answers lost */
    int64_t lose_from;   /* ... from this entry on (recovery adds are not affected) */
    int add_delay_step;  /* answers to adds delayed by (64 - entry) * step ms: newest first */
    int add_delay;       /* answers to adds delayed by this much more */
    bool corrupt;        /* read answers have a byte flipped */
};
static struct fmode fm[NFB];

static void filter(void *arg, const struct bkc_fake_req *r, struct bkc_fake_action *a)
{
    (void)arg;
    const struct fmode *m = &fm[r->bookie];
    if (r->add) {
        if (m->drop_adds) {
            a->verdict = BKC_FAKE_DROP;
        } else if (m->add_rc && r->entry >= m->add_rc_from) {
            a->verdict = BKC_FAKE_ERROR;
            a->rc = m->add_rc;
        } else if (m->lose_add_acks && !r->recovery && r->entry >= m->lose_from) {
            a->verdict = BKC_FAKE_LOSE_ANSWER;
        }
        a->delay_ms +=
            m->add_delay + (m->add_delay_step ? (64 - (int)r->entry) * m->add_delay_step : 0);
        return;
    }
    if (m->drop_reads)
        a->verdict = BKC_FAKE_DROP;
    a->corrupt = m->corrupt;
}

static const char *fb_id(int i)
{
    return bkc_fake_bookie_id(fake, i);
}

static int fb_index(const char *id)
{
    int i = bkc_fake_bookie_index(fake, id);
    ck_assert_int_ge(i, 0);
    return i;
}

/* A new fake bookie, registered. */
static int fb_new(void)
{
    return tl_fakebk_start(&env, env.n);
}

static struct bkc_fake_stats fb_stats(int i)
{
    struct bkc_fake_stats st;
    bkc_fake_get_stats(fake, i, &st);
    return st;
}

/* ---- fixture -------------------------------------------------------------------------- */

static struct bkc_client *cl;
static struct tl_adds b; /* the test's batch of adds: fx_setup empties it, fx_teardown frees it */

static struct bkc_client *client_new(int e, int w, int a, int timeout_ms)
{
    struct bkc_config cfg;
    tl_bkc_config(&cfg, e, w, a, timeout_ms);
    return tl_fakebk_client(&env, &cfg, 42);
}

static void fx_setup(int n_bookies, int e, int w, int a, int timeout_ms)
{
    tl_fakebk_open(&env, "memory", 7, "10.0.0", 0);
    base = env.base;
    loop = env.loop;
    meta = env.meta;
    fake = env.fake;
    bkc_fake_set_filter(fake, filter, NULL);
    memset(fm, 0, sizeof fm);
    memset(&b, 0, sizeof b);
    for (int i = 0; i < n_bookies; i++)
        fb_new();
    cl = client_new(e, w, a, timeout_ms);
}

static void fx_teardown(void)
{
    bkc_client_free(cl);
    cl = NULL;
    tl_run_due(loop);
    tl_adds_fini(&b);
    tl_fakebk_close(&env);
    base = NULL;
    loop = NULL;
    meta = NULL;
    fake = NULL;
}

/* ---- tests: metadata ------------------------------------------------------------------------ */

START_TEST(test_md_roundtrip)
{
    char *b1[] = {"10.0.0.1:3181", "10.0.0.2:3181", "10.0.0.3:3181"};
    char *b2[] = {"10.0.0.1:3181", "10.0.0.4:3181", "10.0.0.3:3181"};
    struct bkc_md md = {0}, out;
    md.ensemble_size = 3;
    md.write_quorum = 2;
    md.ack_quorum = 2;
    md.state = BKC_STATE_CLOSED;
    md.last_entry = 41;
    md.length = 123456;
    md.digest = BKC_DIGEST_CRC32C;
    md.has_password = true;
    md.password = (uint8_t *)mg_strdup("");
    md.has_ctime = true;
    md.ctime = 1700000000000;
    bkc_md_set_last_segment(&md, 0, b1);
    bkc_md_set_last_segment(&md, 17, b2);
    md.custom = mg_calloc(1, sizeof(*md.custom));
    md.custom[0].key = mg_strdup("application");
    md.custom[0].value = (uint8_t *)mg_strdup("pulsar");
    md.custom[0].len = 6;
    md.n_custom = 1;
    uint8_t *buf;
    size_t len;
    bkc_md_encode(&md, &buf, &len);
    ck_assert(memcmp(buf, "BookieMetadataFormatVersion\t3\n", 30) == 0);
    ck_assert_int_eq(bkc_md_decode(buf, len, &out), 0);
    ck_assert_int_eq(out.ensemble_size, 3);
    ck_assert_int_eq(out.write_quorum, 2);
    ck_assert_int_eq(out.ack_quorum, 2);
    ck_assert_int_eq(out.state, BKC_STATE_CLOSED);
    ck_assert_int_eq(out.last_entry, 41);
    ck_assert_int_eq(out.length, 123456);
    ck_assert_int_eq(out.digest, BKC_DIGEST_CRC32C);
    ck_assert(out.has_password && out.password_len == 0);
    ck_assert_int_eq(out.ctime, 1700000000000);
    ck_assert_int_eq(out.n_segs, 2);
    ck_assert_int_eq(out.segs[1].first, 17);
    ck_assert_str_eq(out.segs[1].bookies[1], "10.0.0.4:3181");
    ck_assert_int_eq(bkc_md_segment_for(&out, 16), 0);
    ck_assert_int_eq(bkc_md_segment_for(&out, 17), 1);
    ck_assert_int_eq(out.n_custom, 1);
    ck_assert_str_eq(out.custom[0].key, "application");
    ck_assert_uint_eq(out.custom[0].len, 6);
    /* truncated input is rejected */
    struct bkc_md bad;
    ck_assert_int_eq(bkc_md_decode(buf, len - 3, &bad), -MG_EPROTO);
    ck_assert_int_eq(bkc_md_decode("garbage", 7, &bad), -MG_EPROTO);
    mg_free(buf);
    /* OPEN: lastEntryId is not written; -1 on decode */
    out.state = BKC_STATE_OPEN;
    bkc_md_encode(&out, &buf, &len);
    bkc_md_fini(&out);
    ck_assert_int_eq(bkc_md_decode(buf, len, &out), 0);
    ck_assert_int_eq(out.last_entry, -1);
    mg_free(buf);
    bkc_md_fini(&out);
    bkc_md_fini(&md);

    const char *v2 = "BookieMetadataFormatVersion\t2\n"
                     "quorumSize: 2\nensembleSize: 3\nlength: 100\nlastEntryId: 9\n"
                     "state: CLOSED\n"
                     "segment {\n  ensembleMember: \"a:1\"\n  ensembleMember: \"b:1\"\n"
                     "  ensembleMember: \"c:1\"\n  firstEntryId: 0\n}\n"
                     "digestType: CRC32C\npassword: \"\"\nackQuorumSize: 2\n"
                     "customMetadata {\n  key: \"k\"\n  value: \"v\\001\"\n}\n";
    ck_assert_int_eq(bkc_md_decode(v2, strlen(v2), &out), 0);
    ck_assert_int_eq(out.last_entry, 9);
    ck_assert_int_eq(out.state, BKC_STATE_CLOSED);
    ck_assert_str_eq(out.segs[0].bookies[2], "c:1");
    ck_assert_int_eq(out.digest, BKC_DIGEST_CRC32C);
    ck_assert_uint_eq(out.custom[0].len, 2);
    bkc_md_fini(&out);

    char *p = bkc_ledger_path("/ledgers", 42);
    ck_assert_str_eq(p, "/ledgers/00/0000/L0042");
    mg_free(p);
    p = bkc_ledger_path("/ledgers", 1234567890);
    ck_assert_str_eq(p, "/ledgers/12/3456/L7890");
    mg_free(p);
    p = bkc_ledger_path("/ledgers", 4294967296LL);
    ck_assert_str_eq(p, "/ledgers/000/0000/0042/9496/L7296");
    mg_free(p);
}
END_TEST

/* ---- tests: write path ------------------------------------------------------------------- */

/* The v3 bytes are BookKeeper's (LedgerMetadataSerDe: header, writeDelimitedTo): fields in
 * number order, lastEntryId only once CLOSED, ackQuorumSize always, negative values as
 * ten-byte varints. The expected bytes were worked out from the proto by hand; the ledgers
 * come from their format-v2 text, so the text converts field for field. A message without its
 * required state, and v2 text whose segment has no firstEntryId, are refused. */
START_TEST(test_md_bytes)
{
    static const uint8_t open_md[] = {
        0x40, 0x08, 0x01, 0x10, 0x01, 0x18, 0x00, 0x28, 0x01, 0x32, 0x12, 0x0a, 0x0e,
        0x31, 0x32, 0x37, 0x2e, 0x30, 0x2e, 0x30, 0x2e, 0x31, 0x3a, 0x33, 0x31, 0x38,
        0x31, 0x10, 0x00, 0x38, 0x03, 0x42, 0x00, 0x48, 0x01, 0x50, 0x80, 0xd0, 0x95,
        0xff, 0xbc, 0x31, 0x5a, 0x15, 0x0a, 0x0b, 0x61, 0x70, 0x70, 0x6c, 0x69, 0x63,
        0x61, 0x74, 0x69, 0x6f, 0x6e, 0x12, 0x06, 0x70, 0x75, 0x6c, 0x73, 0x61, 0x72};
    static const uint8_t closed_md[] = {
        0x34, 0x08, 0x02, 0x10, 0x02, 0x18, 0x80, 0x20, 0x20, 0x63, 0x28, 0x03, 0x32, 0x0c,
        0x0a, 0x03, 0x61, 0x3a, 0x31, 0x0a, 0x03, 0x62, 0x3a, 0x31, 0x10, 0x00, 0x32, 0x0c,
        0x0a, 0x03, 0x61, 0x3a, 0x31, 0x0a, 0x03, 0x63, 0x3a, 0x31, 0x10, 0x32, 0x48, 0x02,
        0x60, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    const char *hdr = "BookieMetadataFormatVersion\t3\n";
    /* the same two ledgers in format v2, as an older cluster stored them */
    const char *open_v2 =
        "BookieMetadataFormatVersion\t2\nquorumSize: 1\nensembleSize: 1\nlength: 0\n"
        "lastEntryId: 5\nstate: OPEN\n" /* lastEntryId: not kept while OPEN */
        "segment {\n  ensembleMember: \"127.0.0.1:3181\"\n  firstEntryId: 0\n}\n"
        "digestType: CRC32C\npassword: \"\"\nackQuorumSize: 1\nctime: 1700000000000\n"
        "customMetadata {\n  key: \"application\"\n  value: \"pulsar\"\n}\n";
    const char *closed_v2 =
        "BookieMetadataFormatVersion\t2\nquorumSize: 2\nensembleSize: 2\nlength: 4096\n"
        "lastEntryId: 99\nstate: CLOSED\n"
        "segment {\n  ensembleMember: \"a:1\"\n  ensembleMember: \"b:1\"\n  firstEntryId: 0\n}\n"
        "segment {\n  ensembleMember: \"a:1\"\n  ensembleMember: \"c:1\"\n  firstEntryId: 50\n}\n"
        "ackQuorumSize: 2\ncToken: -1\n";
    const char *v2[2] = {open_v2, closed_v2};
    const uint8_t *want[2] = {open_md, closed_md};
    size_t want_len[2] = {sizeof(open_md), sizeof(closed_md)};
    for (int k = 0; k < 2; k++) {
        struct bkc_md md, out;
        uint8_t *buf;
        size_t len;
        ck_assert_int_eq(bkc_md_decode(v2[k], strlen(v2[k]), &md), 0);
        bkc_md_encode(&md, &buf, &len);
        ck_assert_uint_eq(len, 30 + want_len[k]);
        ck_assert_mem_eq(buf, hdr, 30);
        ck_assert_mem_eq(buf + 30, want[k], want_len[k]);
        ck_assert_int_eq(bkc_md_decode(buf, len, &out), 0);
        ck_assert_int_eq(out.last_entry, k ? 99 : -1);
        ck_assert_int_eq(out.has_ctoken, k == 1);
        ck_assert_int_eq(out.n_segs, k + 1);
        ck_assert_str_eq(out.segs[k].bookies[k], k ? "c:1" : "127.0.0.1:3181");
        bkc_md_fini(&out);
        bkc_md_fini(&md);
        mg_free(buf);
    }
    struct bkc_md out;

    /* the closed ledger without state (field 5: 0x28 0x03): protobuf-c must not default it */
    uint8_t nostate[30 + sizeof(closed_md)];
    memcpy(nostate, hdr, 30);
    size_t n = 30;
    nostate[n++] = (uint8_t)(closed_md[0] - 2);
    for (size_t i = 1; i < sizeof(closed_md); i++)
        if (!(i >= 10 && i < 12))
            nostate[n++] = closed_md[i];
    ck_assert_int_eq(bkc_md_decode(nostate, n, &out), -MG_EPROTO);

    const char *nofirst = "BookieMetadataFormatVersion\t2\n"
                          "quorumSize: 1\nensembleSize: 1\nlength: 0\nstate: OPEN\n"
                          "segment {\n  ensembleMember: \"a:1\"\n}\n";
    ck_assert_int_eq(bkc_md_decode(nofirst, strlen(nofirst), &out), -MG_EPROTO);
}
END_TEST

START_TEST(test_roundtrip_striping)
{
    fx_setup(3, 3, 2, 2, 30000);
    struct bkc_ledger *lh = tl_bkc_create(cl, 0);
    ck_assert_ptr_nonnull(lh);
    int64_t id = bkc_ledger_id(lh);
    ck_assert_int_eq(bkc_ledger_ensemble_size(lh), 3);
    tl_adds_n(&b, lh, 12);
    ck_assert_int_eq(b.req[11].entry_id, 11);
    ck_assert_int_eq(b.n_done, 0);
    tl_adds_wait(&b);
    for (int i = 0; i < 12; i++) {
        ck_assert_int_eq(b.order[i], i);
        ck_assert_int_eq(b.status[i], 0);
    }
    ck_assert_int_eq(bkc_ledger_lac(lh), 11);
    /* striping: entry e on ensemble[(e+0)%3] and ensemble[(e+1)%3] only */
    for (int i = 0; i < 3; i++) {
        int f = fb_index(bkc_ledger_bookie(lh, i));
        ck_assert_int_eq(bkc_fake_count_entries(fake, f, id), 8);
        for (int e = 0; e < 12; e++) {
            bool should = (e % 3) == i || ((e + 1) % 3) == i;
            ck_assert_msg(bkc_fake_has_entry(fake, f, id, e) == should, "bookie %d entry %d", i, e);
        }
    }
    tl_bkc_check_read(lh, 0, 11);
    ck_assert_int_eq(tl_bkc_close(lh), 0);
    ck_assert(bkc_ledger_is_closed(lh));
    ck_assert_int_eq(bkc_add(lh, 12, b.payload[0], &b.req[0], tl_adds_cb), -MG_ENOTALLOWED);
    struct bkc_md md;
    tl_md_read(meta, id, &md);
    ck_assert_int_eq(md.state, BKC_STATE_CLOSED);
    ck_assert_int_eq(md.last_entry, 11);
    ck_assert_int_eq(md.length, (int64_t)bkc_ledger_length(lh));
    ck_assert_int_gt(md.length, 0);
    ck_assert_int_eq(md.n_segs, 1);
    ck_assert_int_eq(md.ctime, 1700000000000); /* the loop's wall clock */
    bkc_md_fini(&md);
    /* a reader of the closed ledger */
    struct bkc_ledger *rd = tl_bkc_open(cl, id, false, 0);
    ck_assert_int_eq(bkc_ledger_lac(rd), 11);
    tl_bkc_check_read(rd, 3, 7);
    struct tl_res r = {0};
    struct bkc_req req = {.data = &r};
    ck_assert_int_eq(bkc_read(rd, 5, 12, &req, tl_res_cb), -MG_EINVAL);
    bkc_ledger_free(rd);
    bkc_ledger_free(lh);
    /* delete */
    ck_assert_int_eq(bkc_delete(cl, id, &req, tl_res_cb), 0);
    tl_wait(loop, &r.done);
    ck_assert_int_eq(r.status, 0);
    tl_bkc_open(cl, id, false, -MG_ENOTFOUND);
    fx_teardown();
}
END_TEST

/* The caller decides entry ids (the managed ledger's positions): an add naming any id but
 * the next one is refused at once with -MG_EINVAL and nothing reaches a bookie; the ledger
 * goes on with the right id. (Before, bkc numbered entries itself and a caller whose idea of
 * the id differed only found out from a log line.) */
START_TEST(test_add_entry_id_decided_by_caller)
{
    fx_setup(2, 2, 2, 2, 30000);
    struct bkc_ledger *lh = tl_bkc_create(cl, 0);
    ck_assert_int_eq(tl_adds_one(&b, lh), 0);
    ck_assert_int_eq(bkc_ledger_next_entry(lh), 1);
    struct evbuffer *p = evbuffer_new();
    evbuffer_add(p, "x", 1);
    struct bkc_req req = {0};
    int64_t adds = fb_stats(0).adds + fb_stats(1).adds;
    ck_assert_int_eq(bkc_add(lh, 0, p, &req, tl_adds_cb), -MG_EINVAL); /* a duplicate */
    ck_assert_int_eq(bkc_add(lh, 2, p, &req, tl_adds_cb), -MG_EINVAL); /* a gap */
    ck_assert_ptr_nonnull(strstr(req.errmsg, "next entry is 1"));
    tl_adds_wait(&b);
    ck_assert_int_eq(fb_stats(0).adds + fb_stats(1).adds, adds + 2); /* entry 0 only */
    ck_assert_int_eq(tl_adds_one(&b, lh), 0);
    tl_adds_wait(&b);
    ck_assert_int_eq(b.status[1], 0);
    ck_assert_int_eq(bkc_ledger_lac(lh), 1);
    tl_bkc_check_read(lh, 0, 1);
    evbuffer_free(p);
    bkc_ledger_free(lh);
    fx_teardown();
}
END_TEST

START_TEST(test_out_of_order_acks)
{
    fx_setup(2, 2, 2, 2, 30000);
    struct bkc_ledger *lh = tl_bkc_create(cl, 0);
    /* bookie 0 answers newest first; bookie 1 after all of bookie 0's answers */
    fm[0].add_delay_step = 5;
    fm[1].add_delay = 1000;
    tl_adds_n(&b, lh, 8);
    tl_run_for(loop, 600);
    ck_assert_int_eq(b.n_done, 0); /* one bookie acked everything; Qa = 2 */
    tl_adds_wait(&b);
    for (int i = 0; i < 8; i++) {
        ck_assert_int_eq(b.order[i], i);
        ck_assert_int_eq(b.status[i], 0);
    }
    ck_assert_int_eq(bkc_ledger_lac(lh), 7);
    bkc_ledger_free(lh);
    fx_teardown();
}
END_TEST

/* A bookie of the ensemble fails mid-stream (mode 0: EIO answers, 1: crashed, 2: silent ->
 * timeout); the ledger moves to a spare bookie, the entries it had not acknowledged are
 * resent there, and everything stays readable. */
static void ensemble_change_case(int mode)
{
    fx_setup(4, 3, 2, 2, mode == 2 ? 300 : 30000);
    struct bkc_ledger *lh = tl_bkc_create(cl, 0);
    int64_t id = bkc_ledger_id(lh);
    tl_adds_all(&b, lh, 6);
    int victim = fb_index(bkc_ledger_bookie(lh, 1));
    if (mode == 0)
        fm[victim].add_rc = 101;
    else if (mode == 1)
        tl_fakebk_stop(&env, victim);
    else
        fm[victim].drop_adds = true;
    tl_adds_all(&b, lh, 10);
    for (int i = 0; i < 16; i++) {
        ck_assert_msg(b.status[i] == 0, "add %d: %d (%s)", i, b.status[i], b.req[i].errmsg);
        ck_assert_int_eq(b.order[i], i);
    }
    ck_assert_int_eq(bkc_ledger_num_segments(lh), 2);
    int spare = -1;
    for (int i = 0; i < 4; i++) {
        bool in = false;
        for (int j = 0; j < 3; j++)
            in |= !strcmp(fb_id(i), bkc_ledger_bookie(lh, j));
        if (!in)
            spare = i;
    }
    ck_assert_int_eq(spare, victim);
    struct bkc_md md;
    tl_md_read(meta, id, &md);
    ck_assert_int_eq(md.n_segs, 2);
    ck_assert_int_eq(md.segs[1].first, 6);
    ck_assert_str_ne(md.segs[1].bookies[1], fb_id(victim));
    ck_assert_str_eq(md.segs[0].bookies[1], fb_id(victim));
    ck_assert_str_eq(md.segs[1].bookies[0], md.segs[0].bookies[0]);
    /* the replacement holds the new segment's entries of its write sets */
    int repl = fb_index(md.segs[1].bookies[1]);
    for (int e = 6; e < 16; e++) {
        bool should = (e % 3) == 1 || ((e + 1) % 3) == 1;
        ck_assert_msg(bkc_fake_has_entry(fake, repl, id, e) == should, "entry %d", e);
    }
    bkc_md_fini(&md);
    tl_bkc_check_read(lh, 0, 15);
    ck_assert_int_eq(tl_bkc_close(lh), 0);
    bkc_ledger_free(lh);
    /* another client reads it all, failing over around the broken bookie */
    struct bkc_client *c2 = client_new(3, 2, 2, 300);
    tl_bkc_check_ledger(c2, id, false, 15);
    bkc_client_free(c2);
    fx_teardown();
}

START_TEST(test_ensemble_change_error)
{
    ensemble_change_case(0);
}
END_TEST

START_TEST(test_ensemble_change_crashed)
{
    ensemble_change_case(1);
}
END_TEST

START_TEST(test_ensemble_change_timeout)
{
    ensemble_change_case(2);
}
END_TEST

START_TEST(test_not_enough_bookies)
{
    fx_setup(3, 3, 2, 2, 30000);
    struct bkc_ledger *lh = tl_bkc_create(cl, 0);
    tl_adds_one(&b, lh);
    tl_adds_wait(&b);
    tl_fakebk_stop(&env, 0);
    tl_adds_all(&b, lh, 4);
    ck_assert_int_eq(b.status[0], 0);
    for (int i = 1; i < 5; i++) {
        ck_assert_int_eq(b.status[i], -MG_ENOBOOKIES);
        ck_assert_msg(strstr(b.req[i].errmsg, "not enough bookies") != NULL, "%s", b.req[i].errmsg);
    }
    /* later adds fail at once with the same error */
    struct evbuffer *p = evbuffer_new();
    struct bkc_req req = {0};
    ck_assert_int_eq(bkc_add(lh, bkc_ledger_next_entry(lh), p, &req, tl_adds_cb), -MG_ENOBOOKIES);
    evbuffer_free(p);
    /* close still records what was confirmed */
    ck_assert_int_eq(tl_bkc_close(lh), 0);
    ck_assert_int_eq(bkc_ledger_lac(lh), 0);
    bkc_ledger_free(lh);
    /* create needs 3 */
    struct tl_res r = {0};
    struct bkc_req cr = {.data = &r};
    ck_assert_int_eq(bkc_create(cl, NULL, &cr, tl_res_cb), 0);
    tl_wait(loop, &r.done);
    ck_assert_int_eq(r.status, -MG_ENOBOOKIES);
    ck_assert_msg(strstr(cr.errmsg, "not enough writable bookies") != NULL, "%s", cr.errmsg);
    /* a bookie comes back: create works again */
    fb_new();
    lh = tl_bkc_create(cl, 0);
    bkc_ledger_free(lh);
    fx_teardown();
}
END_TEST

/* Bookies that are down but still registered (their sessions have not expired) refuse at
 * once: an ensemble change must not swap them for each other forever. A bookie that failed
 * on the handle is not picked again by it; once none is left the add fails with
 * -MG_ENOBOOKIES, after at most one change per candidate. (Before, the changes went on
 * without end at the same instant: the simulated loop reported a livelock.) */
START_TEST(test_no_swap_between_dead_bookies)
{
    fx_setup(5, 2, 2, 2, 30000);
    struct bkc_ledger *lh = tl_bkc_create(cl, 0);
    tl_adds_one(&b, lh);
    tl_adds_wait(&b);
    /* every bookie but ensemble[0] goes down, all stay registered */
    int keep = fb_index(bkc_ledger_bookie(lh, 0));
    for (int i = 0; i < 5; i++)
        if (i != keep)
            bkc_fake_crash(fake, i);
    tl_adds_one(&b, lh);
    tl_adds_wait(&b);
    ck_assert_msg(b.status[1] == -MG_ENOBOOKIES, "add: %s (%s)", mg_errname(b.status[1]),
                  b.req[1].errmsg);
    ck_assert_int_le(bkc_ledger_num_segments(lh), 1 + 3); /* one change per spare at most */
    bkc_ledger_free(lh);
    fx_teardown();
}
END_TEST

/* A bookie whose disk filled up turns read-only: it answers adds with EREADONLY and moves its
 * registration under /ledgers/available/readonly. With no writable replacement the writer
 * fails with -MG_ENOBOOKIES (not a generic I/O error), naming the bookie and its answer,
 * and creating a ledger fails the same way. */
START_TEST(test_readonly_bookies)
{
    fx_setup(2, 2, 2, 2, 30000);
    struct bkc_ledger *lh = tl_bkc_create(cl, 0);
    tl_adds_one(&b, lh);
    tl_adds_wait(&b);
    ck_assert_int_eq(b.status[0], 0);
    bkc_fake_set_read_only(fake, 0, true);
    tl_fakebk_register(&env, 0, false);
    char *p = mg_asprintf("/ledgers/available/readonly/%s", fb_id(0));
    ck_assert_int_eq(tl_meta_put(meta, p, "", 0, META_EPHEMERAL), 0);
    mg_free(p);
    tl_adds_one(&b, lh);
    tl_adds_wait(&b);
    ck_assert_msg(b.status[1] == -MG_ENOBOOKIES, "add: %s (%s)", mg_errname(b.status[1]),
                  b.req[1].errmsg);
    ck_assert_msg(strstr(b.req[1].errmsg, "EREADONLY") != NULL, "%s", b.req[1].errmsg);
    ck_assert_str_eq(mg_strerror(b.status[1]), "not enough writable bookies");
    struct tl_res r = {0};
    struct bkc_req cr = {.data = &r};
    ck_assert_int_eq(bkc_create(cl, NULL, &cr, tl_res_cb), 0);
    tl_wait(loop, &r.done);
    ck_assert_msg(r.status == -MG_ENOBOOKIES, "create: %s (%s)", mg_errname(r.status), cr.errmsg);
    bkc_ledger_free(lh);
    fx_teardown();
}
END_TEST

START_TEST(test_fenced_adds)
{
    fx_setup(2, 2, 2, 2, 30000);
    struct bkc_ledger *lh = tl_bkc_create(cl, 0);
    tl_adds_one(&b, lh);
    tl_adds_wait(&b);
    /* entries 1 and 2 wait for bookie 1; bookie 0 answers EFENCED from entry 3 on */
    fm[1].lose_add_acks = true;
    fm[1].lose_from = 1;
    fm[0].add_rc = 104;
    fm[0].add_rc_from = 3;
    tl_adds_one(&b, lh);
    tl_adds_one(&b, lh);
    tl_run_for(loop, 20);
    ck_assert_int_eq(b.n_done, 1);
    tl_adds_one(&b, lh);
    tl_adds_wait(&b);
    ck_assert_int_eq(b.status[0], 0);
    for (int i = 1; i < 4; i++)
        ck_assert_int_eq(b.status[i], -MG_EFENCED);
    struct evbuffer *p = evbuffer_new();
    struct bkc_req req = {0};
    ck_assert_int_eq(bkc_add(lh, bkc_ledger_next_entry(lh), p, &req, tl_adds_cb), -MG_EFENCED);
    evbuffer_free(p);
    bkc_ledger_free(lh);
    fx_teardown();
}
END_TEST

START_TEST(test_free_cancels)
{
    fx_setup(2, 2, 2, 2, 30000);
    struct bkc_ledger *lh = tl_bkc_create(cl, 0);
    fm[0].lose_add_acks = true;
    tl_adds_one(&b, lh);
    tl_adds_one(&b, lh);
    tl_run_for(loop, 20);
    bkc_ledger_free(lh);
    ck_assert_int_eq(b.n_done, 0); /* delivered from the loop, in entry order */
    tl_run_due(loop);
    ck_assert_int_eq(b.n_done, 2);
    ck_assert_int_eq(b.order[0], 0);
    ck_assert_int_eq(b.status[0], -MG_ECANCELED);
    ck_assert_int_eq(b.status[1], -MG_ECANCELED);
    /* client free with a create in flight */
    struct tl_res r = {0};
    struct bkc_req cr = {.data = &r};
    ck_assert_int_eq(bkc_create(cl, NULL, &cr, tl_res_cb), 0);
    bkc_client_free(cl);
    cl = NULL;
    ck_assert(r.done);
    ck_assert_int_eq(r.status, -MG_ECANCELED);
    ck_assert_int_eq(r.n_cb, 1);
    tl_run_for(loop, 1000);
    ck_assert_int_eq(r.n_cb, 1);
    fx_teardown();
}
END_TEST

static int free_in_cb_status[4], free_in_cb_n;

static void free_in_cb(struct bkc_req *req, int status)
{
    free_in_cb_status[free_in_cb_n++] = status;
    if (req->entry_id == 0) {
        bkc_client_free(cl);
        cl = NULL;
    }
}

START_TEST(test_client_free_in_callback)
{
    fx_setup(2, 2, 2, 2, 30000);
    struct bkc_ledger *lh = tl_bkc_create(cl, 0);
    struct evbuffer *p = evbuffer_new();
    evbuffer_add(p, "x", 1);
    struct bkc_req req[3];
    memset(req, 0, sizeof(req));
    free_in_cb_n = 0;
    fm[1].lose_add_acks = true; /* only entry 0 will be acknowledged by both */
    fm[1].lose_from = 1;
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(bkc_add(lh, i, p, &req[i], free_in_cb), 0);
    tl_run_for(loop, 100);
    ck_assert_int_eq(free_in_cb_n, 3);
    ck_assert_int_eq(free_in_cb_status[0], 0);
    ck_assert_int_eq(free_in_cb_status[1], -MG_ECANCELED);
    ck_assert_int_eq(free_in_cb_status[2], -MG_ECANCELED);
    tl_run_for(loop, 1000);
    ck_assert_int_eq(free_in_cb_n, 3);
    evbuffer_free(p);
    fx_teardown();
}
END_TEST

/* Destroying a ledger handle marks its metadata requests dead. It must cost that handle's
 * requests only, not every request in flight on the client: with N handles each freed while
 * N deletes and its own close are pending, a scan of the client's list per handle is ~N^2
 * steps (millions here); the per-handle lists make it one step per request. */
struct cnt {
    int n, n_cancel, n_notfound, other;
};

static void cnt_cb(struct bkc_req *req, int status)
{
    struct cnt *c = req->data;
    c->n++;
    if (status == -MG_ECANCELED)
        c->n_cancel++;
    else if (status == -MG_ENOTFOUND)
        c->n_notfound++;
    else if (status != 0)
        c->other++;
}

START_TEST(test_mops_kill_linear)
{
    enum { N = 1500 };
    fx_setup(1, 1, 1, 1, 30000);
    struct bkc_req *creq = calloc(N, sizeof *creq), *dreq = calloc(N, sizeof *dreq),
                   *xreq = calloc(N, sizeof *xreq);
    struct cnt made = {0}, deleted = {0}, closed = {0};
    for (int i = 0; i < N; i++) {
        creq[i].data = &made;
        ck_assert_int_eq(bkc_create(cl, NULL, &creq[i], cnt_cb), 0);
    }
    tl_run_due(loop);
    ck_assert_int_eq(made.n, N);
    ck_assert_int_eq(made.n_cancel + made.n_notfound + made.other, 0);
    /* N deletes (no owner) and one close per handle (owned by it), all in flight */
    for (int i = 0; i < N; i++) {
        dreq[i].data = &deleted;
        ck_assert_int_eq(bkc_delete(cl, 1000000 + i, &dreq[i], cnt_cb), 0);
        xreq[i].data = &closed;
        ck_assert_int_eq(bkc_close(creq[i].ledger, &xreq[i], cnt_cb), 0);
    }
    uint64_t before = cl->mop_kill_steps;
    for (int i = 0; i < N; i++)
        bkc_ledger_free(creq[i].ledger);
    uint64_t steps = cl->mop_kill_steps - before;
    ck_assert_msg(steps <= (uint64_t)N, "%llu steps to free %d handles with %d requests in flight",
                  (unsigned long long)steps, N, 2 * N);
    /* Every request still completes exactly once: closes canceled, deletes answered. */
    tl_run_due(loop);
    ck_assert_int_eq(closed.n, N);
    ck_assert_int_eq(closed.n_cancel, N);
    ck_assert_int_eq(deleted.n, N);
    ck_assert_int_eq(deleted.n_notfound, N);
    tl_run_for(loop, 100);
    ck_assert_int_eq(closed.n + deleted.n, 2 * N);
    free(creq);
    free(dreq);
    free(xreq);
    fx_teardown();
}
END_TEST

/* ---- tests: recovery ---------------------------------------------------------------------- */

START_TEST(test_recovery_dead_writer)
{
    fx_setup(3, 3, 2, 2, 30000);
    struct bkc_ledger *w = tl_bkc_create(cl, 0);
    int64_t id = bkc_ledger_id(w);
    tl_adds_all(&b, w, 5);
    /* entries 5 and 6 reach the bookies but their acks never come back to the writer */
    for (int i = 0; i < 3; i++) {
        fm[i].lose_add_acks = true;
        fm[i].lose_from = 5;
    }
    tl_adds_one(&b, w);
    tl_adds_one(&b, w);
    tl_run_for(loop, 30);
    ck_assert_int_eq(b.n_done, 5);
    /* the writer "dies"; a second client recovers */
    struct bkc_client *c2 = client_new(3, 2, 2, 30000);
    struct bkc_ledger *r = tl_bkc_open(c2, id, true, 0);
    ck_assert_int_eq(bkc_ledger_lac(r), 6);
    ck_assert(bkc_ledger_is_closed(r));
    tl_bkc_check_read(r, 0, 6);
    struct bkc_md md;
    tl_md_read(meta, id, &md);
    ck_assert_int_eq(md.state, BKC_STATE_CLOSED);
    ck_assert_int_eq(md.last_entry, 6);
    ck_assert_int_eq(md.length, bkc_ledger_length(r));
    bkc_md_fini(&md);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_gt(fb_stats(i).fence_reads, 0);
        ck_assert(bkc_fake_is_fenced(fake, i, id));
    }
    /* the old writer's next add fails: bookies are fenced (and so do its pending ones) */
    for (int i = 0; i < 3; i++)
        fm[i].lose_add_acks = false;
    ck_assert_int_eq(tl_adds_one(&b, w), 0);
    tl_adds_wait(&b);
    for (int i = 5; i < 8; i++)
        ck_assert_int_eq(b.status[i], -MG_EFENCED);
    ck_assert_int_eq(tl_bkc_close(w), -MG_EFENCED);
    bkc_ledger_free(w);
    /* recovering again is a no-op open of a closed ledger */
    struct bkc_ledger *r2 = tl_bkc_open(cl, id, true, 0);
    ck_assert_int_eq(bkc_ledger_lac(r2), 6);
    bkc_ledger_free(r2);
    bkc_ledger_free(r);
    bkc_client_free(c2);
    fx_teardown();
}
END_TEST

/* The writer's last adds reached only some bookies before it died (E = Qw = 3, Qa = 2):
 * entry 4 reached two of them (acknowledged), entry 5 one (not acknowledged). Recovery keeps
 * every acknowledged entry; an entry on one bookie only may be kept or not (it was never
 * acknowledged): _i 0, the bookie that has it answers the recovery read last, so two others
 * say it is missing first and the ledger ends at 4; _i 1, the others answer last, the copy is
 * found and written back to the whole write quorum, and the ledger ends at 5. Either way
 * every entry kept is readable with its exact bytes and the old writer is fenced. */
static int64_t partial_entry = -1; /* entries >= this reach only the bookies in partial_to */
static bool partial_to[NFB];
static int slow_reader = -1;         /* this bookie answers reads 500 ms late */
static int64_t slow_reads_from = -1; /* reads of entries from this one on: 300 ms late */

static void partial_filter(void *arg, const struct bkc_fake_req *r, struct bkc_fake_action *a)
{
    filter(arg, r, a);
    if (r->add && !r->recovery && partial_entry >= 0 && r->entry >= partial_entry &&
        !partial_to[r->bookie])
        a->verdict = BKC_FAKE_DROP;
    if (!r->add && r->bookie == slow_reader)
        a->delay_ms += 500;
}

START_TEST(test_recovery_partial_adds)
{
    fx_setup(3, 3, 3, 2, 30000);
    bkc_fake_set_filter(fake, partial_filter, NULL);
    struct bkc_ledger *w = tl_bkc_create(cl, 0);
    int64_t id = bkc_ledger_id(w);
    tl_adds_all(&b, w, 4);
    int b0 = fb_index(bkc_ledger_bookie(w, 0)), b1 = fb_index(bkc_ledger_bookie(w, 1));
    partial_entry = 4;
    partial_to[b0] = partial_to[b1] = true;
    tl_adds_one(&b, w); /* entry 4: two bookies, acknowledged */
    tl_adds_wait(&b);
    ck_assert_int_eq(b.status[4], 0);
    partial_to[b1] = false;
    tl_adds_one(&b, w); /* entry 5: one bookie, never acknowledged */
    tl_run_for(loop, 50);
    ck_assert_int_eq(b.n_done, 5);
    ck_assert(bkc_fake_has_entry(fake, b0, id, 5));
    partial_entry = -1;
    slow_reader = _i == 0 ? b0 : b1;
    /* the writer dies; another client recovers */
    struct bkc_client *c2 = client_new(3, 3, 2, 30000);
    struct bkc_ledger *r = tl_bkc_open(c2, id, true, 0);
    int64_t lac = bkc_ledger_lac(r);
    ck_assert_int_eq(lac, _i == 0 ? 4 : 5);
    tl_bkc_check_read(r, 0, lac);
    /* every entry kept has Qa copies at least; one recovery found (beyond the LAC the
     * fencing reads saw, 4) was written back to the whole write quorum */
    for (int64_t e = 0; e <= lac; e++) {
        int copies = 0;
        for (int i = 0; i < 3; i++)
            copies += bkc_fake_has_entry(fake, i, id, e);
        ck_assert_msg(copies >= (e == 5 ? 3 : 2), "entry %lld: %d copies", (long long)e, copies);
    }
    /* the old writer is fenced */
    tl_adds_fenced(&b, w);
    bkc_ledger_free(w);
    bkc_ledger_free(r);
    bkc_client_free(c2);
    memset(partial_to, 0, sizeof partial_to);
    slow_reader = -1;
    fx_teardown();
}
END_TEST

START_TEST(test_recovery_empty_ledger)
{
    fx_setup(2, 2, 2, 2, 30000);
    struct bkc_ledger *w = tl_bkc_create(cl, 0);
    int64_t id = bkc_ledger_id(w);
    struct bkc_ledger *r = tl_bkc_open(cl, id, true, 0);
    ck_assert_int_eq(bkc_ledger_lac(r), -1);
    ck_assert(bkc_ledger_is_closed(r));
    bkc_ledger_free(r);
    bkc_ledger_free(w);
    fx_teardown();
}
END_TEST

START_TEST(test_recovery_bookie_down)
{
    /* E=3 Qw=3 Qa=2: entries acked by two bookies survive losing the third */
    fx_setup(4, 3, 3, 2, 30000);
    struct bkc_ledger *w = tl_bkc_create(cl, 0);
    int64_t id = bkc_ledger_id(w);
    int slow = fb_index(bkc_ledger_bookie(w, 2));
    fm[slow].drop_adds = true; /* stores nothing, acks nothing */
    tl_adds_all(&b, w, 6);
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(b.status[i], 0);
    ck_assert_int_eq(bkc_fake_count_entries(fake, slow, id), 0);
    tl_fakebk_stop(&env, slow);
    struct bkc_client *c2 = client_new(3, 3, 2, 2000);
    tl_bkc_check_ledger(c2, id, true, 5);
    bkc_ledger_free(w);
    bkc_client_free(c2);
    fx_teardown();
}
END_TEST

START_TEST(test_read_lac)
{
    fx_setup(2, 2, 2, 2, 30000);
    struct bkc_ledger *w = tl_bkc_create(cl, 0);
    for (int i = 0; i < 4; i++) {
        tl_adds_one(&b, w);
        tl_adds_wait(&b);
    }
    struct bkc_ledger *r = tl_bkc_open(cl, bkc_ledger_id(w), false, 0);
    ck_assert_int_eq(bkc_ledger_lac(r), -1);
    struct tl_res rs = {0};
    struct bkc_req req = {.data = &rs};
    ck_assert_int_eq(bkc_read_lac(r, &req, tl_res_cb), 0);
    tl_wait(loop, &rs.done);
    ck_assert_int_eq(rs.status, 0);
    /* the last entry carries the LAC the writer had when sending it */
    ck_assert_int_eq(bkc_ledger_lac(r), 2);
    tl_bkc_check_read(r, 0, 2);
    bkc_ledger_free(r);
    bkc_ledger_free(w);
    fx_teardown();
}
END_TEST

START_TEST(test_recovery_concurrent)
{
    fx_setup(3, 3, 2, 2, 30000);
    struct bkc_ledger *w = tl_bkc_create(cl, 0);
    int64_t id = bkc_ledger_id(w);
    tl_adds_all(&b, w, 9);
    struct bkc_client *c2 = client_new(3, 2, 2, 30000), *c3 = client_new(3, 2, 2, 30000);
    struct tl_res r2 = {0}, r3 = {0};
    struct bkc_req q2 = {.data = &r2}, q3 = {.data = &r3};
    ck_assert_int_eq(bkc_open(c2, id, true, &q2, tl_res_cb), 0);
    ck_assert_int_eq(bkc_open(c3, id, true, &q3, tl_res_cb), 0);
    tl_wait(loop, &r2.done);
    tl_wait(loop, &r3.done);
    ck_assert_msg(r2.status == 0, "%s", q2.errmsg);
    ck_assert_msg(r3.status == 0, "%s", q3.errmsg);
    ck_assert_int_eq(bkc_ledger_lac(q2.ledger), 8);
    ck_assert_int_eq(bkc_ledger_lac(q3.ledger), 8);
    struct bkc_md md;
    tl_md_read(meta, id, &md);
    ck_assert_int_eq(md.state, BKC_STATE_CLOSED);
    ck_assert_int_eq(md.last_entry, 8);
    bkc_md_fini(&md);
    tl_bkc_check_read(q3.ledger, 0, 8);
    bkc_ledger_free(q2.ledger);
    bkc_ledger_free(q3.ledger);
    bkc_client_free(c2);
    bkc_client_free(c3);
    bkc_ledger_free(w);
    fx_teardown();
}
END_TEST

START_TEST(test_recovery_after_ensemble_change)
{
    /* the writer changed ensembles, then died: recovery fences the last ensemble and starts
     * no earlier than its first entry - 1 */
    fx_setup(3, 2, 2, 2, 30000);
    struct bkc_ledger *w = tl_bkc_create(cl, 0);
    int64_t id = bkc_ledger_id(w);
    tl_adds_all(&b, w, 5);
    tl_fakebk_stop(&env, fb_index(bkc_ledger_bookie(w, 0)));
    tl_adds_all(&b, w, 5);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(b.status[i], 0);
    ck_assert_int_eq(bkc_ledger_num_segments(w), 2);
    struct bkc_client *c2 = client_new(2, 2, 2, 30000);
    tl_bkc_check_ledger(c2, id, true, 9);
    bkc_client_free(c2);
    bkc_ledger_free(w);
    fx_teardown();
}
END_TEST

START_TEST(test_change_sees_recovery)
{
    /* someone marked the ledger IN_RECOVERY (bookies not fenced yet): the writer's next
     * ensemble change loses the CAS and reports the ledger fenced */
    fx_setup(3, 2, 2, 2, 30000);
    struct bkc_ledger *w = tl_bkc_create(cl, 0);
    int64_t id = bkc_ledger_id(w);
    tl_adds_one(&b, w);
    tl_adds_wait(&b);
    struct bkc_md md;
    tl_md_read(meta, id, &md);
    md.state = BKC_STATE_IN_RECOVERY;
    uint8_t *buf;
    size_t len;
    bkc_md_encode(&md, &buf, &len);
    char *p = bkc_ledger_path("/ledgers", id);
    ck_assert_int_eq(tl_meta_put(meta, p, buf, len, 0), 0);
    mg_free(p);
    mg_free(buf);
    bkc_md_fini(&md);
    fm[fb_index(bkc_ledger_bookie(w, 0))].add_rc = 101;
    tl_adds_fenced(&b, w);
    ck_assert_msg(strstr(b.req[1].errmsg, "recovered") != NULL, "%s", b.req[1].errmsg);
    bkc_ledger_free(w);
    fx_teardown();
}
END_TEST

/* A bookie that crashes loses only what it had not acknowledged: after a restart it still
 * serves every entry it acked, and an ensemble change took its place meanwhile. */
START_TEST(test_crash_keeps_acknowledged)
{
    fx_setup(3, 2, 2, 2, 30000);
    struct bkc_ledger *w = tl_bkc_create(cl, 0);
    int64_t id = bkc_ledger_id(w);
    tl_adds_all(&b, w, 6);
    int v = fb_index(bkc_ledger_bookie(w, 0));
    int64_t had = bkc_fake_count_entries(fake, v, id);
    ck_assert_int_eq(had, 6);
    bkc_fake_crash(fake, v);
    ck_assert(!bkc_fake_is_up(fake, v));
    tl_adds_all(&b, w, 4);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(b.status[i], 0);
    ck_assert_int_eq(bkc_ledger_num_segments(w), 2);
    bkc_fake_restart(fake, v);
    ck_assert_int_eq(bkc_fake_count_entries(fake, v, id), had);
    ck_assert_int_eq(tl_bkc_close(w), 0);
    tl_bkc_check_read(w, 0, 9);
    bkc_ledger_free(w);
    fx_teardown();
}
END_TEST

START_TEST(test_unauthorized)
{
    fx_setup(2, 2, 2, 2, 30000);
    struct bkc_ledger *w = tl_bkc_create(cl, 0);
    fm[0].add_rc = 102;
    fm[1].add_rc = 102;
    tl_adds_one(&b, w);
    tl_adds_wait(&b);
    ck_assert_int_eq(b.status[0], -MG_ENOTALLOWED);
    bkc_ledger_free(w);
    fx_teardown();
}
END_TEST

/* ---- tests: reads --------------------------------------------------------------------------- */

static void digest_case(enum bkc_digest d)
{
    fx_setup(2, 2, 2, 2, 30000);
    struct bkc_config cfg;
    bkc_config_default(&cfg);
    cfg.digest = d;
    cfg.password = "secret";
    cfg.transport = bkc_fake_transport(fake);
    struct bkc_client *c = NULL;
    ck_assert_int_eq(bkc_client_new(loop, meta, &cfg, &c), 0);
    struct bkc_ledger *w = tl_bkc_written(c, &b, 3);
    /* a client configured with other defaults takes digest and password from metadata */
    struct bkc_ledger *r = tl_bkc_open(cl, bkc_ledger_id(w), true, 0);
    tl_bkc_check_read(r, 0, 2);
    /* corruption is caught with this digest too */
    fm[0].corrupt = fm[1].corrupt = true;
    struct tl_res rs = {0};
    struct bkc_req req = {.data = &rs};
    ck_assert_int_eq(bkc_read(r, 0, 0, &req, tl_res_cb), 0);
    tl_wait(loop, &rs.done);
    ck_assert_int_eq(rs.status, d == BKC_DIGEST_DUMMY ? 0 : -MG_ECHECKSUM);
    bkc_req_fini(&req);
    bkc_ledger_free(r);
    bkc_ledger_free(w);
    bkc_client_free(c);
    fx_teardown();
}

START_TEST(test_digest_types)
{
    digest_case(BKC_DIGEST_HMAC);
    digest_case(BKC_DIGEST_CRC32);
    digest_case(BKC_DIGEST_DUMMY);
}
END_TEST

/* The CRC32C digest of hdr + payload[off, off + len) with the CRC of the payload's last
 * tail_len bytes given, against the one read in full, for random payloads in chunks of
 * random sizes, random splits and each digest type (the others ignore the CRC). */
START_TEST(test_digest_tail_crc)
{
    uint64_t rng = 0x243F6A8885A308D3ull;
    uint8_t *bytes = mg_malloc(20000), hdr[WIRE_BK_ENTRY_HDR_LEN];
    for (int round = 0; round < 60; round++) {
        for (size_t i = 0; i < 20000; i++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            bytes[i] = (uint8_t)(rng >> 56);
        }
        memcpy(hdr, bytes + 19000, sizeof hdr);
        size_t total = (size_t)(rng >> 20) % 18000, off = round % 2 ? (size_t)(rng >> 8) % 40 : 0;
        off = off > total ? total : off;
        size_t len = total - off, tail = len ? (size_t)(rng >> 33) % (len + 1) : 0;
        struct evbuffer *p = evbuffer_new();
        for (size_t at = 0; at < total;) {
            size_t n = 1 + (size_t)(rng >> (at % 29)) % 4000;
            n = n > total - at ? total - at : n;
            evbuffer_add_reference(p, bytes + at, n, NULL, NULL); /* a chunk of its own */
            at += n;
        }
        uint32_t tail_crc = mg_crc32c(0, bytes + total - tail, tail);
        int digests[] = {BKC_DIGEST_CRC32C, BKC_DIGEST_CRC32, BKC_DIGEST_HMAC};
        for (int d = 0; d < 3; d++) {
            uint8_t full[WIRE_BK_MAX_DIGEST_LEN], hinted[WIRE_BK_MAX_DIGEST_LEN];
            uint8_t key[20] = {1, 2, 3};
            bkc_digest(digests[d], key, hdr, p, off, len, 0, 0, full);
            bkc_digest(digests[d], key, hdr, p, off, len, tail_crc, tail, hinted);
            ck_assert(memcmp(full, hinted, (size_t)bkc_digest_len(digests[d])) == 0);
        }
        evbuffer_free(p);
    }
    mg_free(bytes);
}
END_TEST

/* bkc_add_crc: entries whose tail CRC the caller gave read back with their digest checked;
 * a tail CRC that does not match the bytes is what the digest was made of (the tail is not
 * read again), so that entry reads as corrupt. */
START_TEST(test_add_crc)
{
    fx_setup(2, 2, 2, 2, 30000);
    struct bkc_ledger *lh = tl_bkc_create(cl, 0);
    b.loop = loop;
    for (int i = 0; i < 5; i++) {
        const char *t = tl_bkc_payload(bkc_ledger_id(lh), i);
        size_t n = strlen(t), tail = (size_t)(i * 7) % (n + 1);
        uint32_t crc = mg_crc32c(0, t + n - tail, tail);
        if (i == 4) {
            tail = n;
            crc = mg_crc32c(0, t, n) ^ 1; /* not the bytes' */
        }
        b.payload[i] = evbuffer_new();
        evbuffer_add(b.payload[i], t, n);
        b.req[i].data = &b;
        ck_assert_int_eq(bkc_add_crc(lh, i, b.payload[i], crc, tail, &b.req[i], tl_adds_cb), 0);
        b.n++;
    }
    tl_adds_wait(&b);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(b.status[i], 0);
    tl_bkc_check_read(lh, 0, 3);
    struct tl_res rs = {0};
    struct bkc_req req = {.data = &rs};
    ck_assert_int_eq(bkc_read(lh, 4, 4, &req, tl_res_cb), 0);
    tl_wait(loop, &rs.done);
    ck_assert_int_eq(rs.status, -MG_ECHECKSUM);
    bkc_req_fini(&req);
    bkc_ledger_free(lh);
    fx_teardown();
}
END_TEST

START_TEST(test_read_timeout_failover)
{
    fx_setup(2, 2, 2, 2, 200);
    struct bkc_ledger *w = tl_bkc_written(cl, &b, 4);
    /* a bookie that never answers reads */
    fm[fb_index(bkc_ledger_bookie(w, 0))].drop_reads = true;
    uint64_t t0 = mg_loop_mono_ms(loop);
    tl_bkc_check_read(w, 0, 3);
    ck_assert_uint_ge(mg_loop_mono_ms(loop) - t0, 200); /* after the timeout */
    bkc_ledger_free(w);
    fx_teardown();
}
END_TEST

START_TEST(test_digest_failover)
{
    fx_setup(2, 2, 2, 2, 30000);
    struct bkc_ledger *w = tl_bkc_written(cl, &b, 4);
    /* entries 0 and 2 are read first from ensemble[0], 1 and 3 from ensemble[1] */
    int f0 = fb_index(bkc_ledger_bookie(w, 0));
    fm[f0].corrupt = true;
    int64_t before = fb_stats(f0).reads;
    tl_bkc_check_read(w, 0, 3);
    ck_assert_int_ge(fb_stats(f0).reads - before, 2);
    /* both copies corrupt (the stored ones this time): checksum error */
    fm[f0].corrupt = false;
    bkc_fake_corrupt_entry(fake, 0, bkc_ledger_id(w), 1);
    bkc_fake_corrupt_entry(fake, 1, bkc_ledger_id(w), 1);
    struct tl_res r = {0};
    struct bkc_req req = {.data = &r};
    ck_assert_int_eq(bkc_read(w, 1, 1, &req, tl_res_cb), 0);
    tl_wait(loop, &r.done);
    ck_assert_int_eq(r.status, -MG_ECHECKSUM);
    ck_assert_int_eq(req.n_entries, 0);
    bkc_ledger_free(w);
    fx_teardown();
}
END_TEST

/* Recovery adds fail on these bookies (recovery_fail_on[i]). */
static bool recovery_fail_on[NFB];

static void recovery_filter(void *arg, const struct bkc_fake_req *r, struct bkc_fake_action *a)
{
    filter(arg, r, a);
    if (r->add && r->recovery && recovery_fail_on[r->bookie]) {
        a->verdict = BKC_FAKE_ERROR;
        a->rc = 101; /* EIO */
    }
    if (!r->add && r->bookie == slow_reader)
        a->delay_ms += 500;
    if (!r->add && slow_reads_from >= 0 && r->entry >= slow_reads_from)
        a->delay_ms += 300;
}

/* A recovery that changed ensembles and then failed must leave the metadata as it found it
 * (E = Qw = Qa = 3, 4 bookies): the first recoverer's re-add of entry 4 fails on ensemble[2]
 * and on the spare that replaces it, so it gives up. Had it written the new ensemble (whose
 * spare never had the entries), the next recoverer would fence and read that ensemble, hear
 * "no such entry" from the spare (one answer is enough with Qw - Qa + 1 = 1) and close the
 * ledger before entry 4, which the writer had acknowledged. Recovery keeps its ensemble
 * changes local until it writes CLOSED, as BookKeeper does. (Before, the second recovery
 * closed the ledger at entry 3: an acknowledged entry lost.) */
START_TEST(test_failed_recovery_leaves_metadata)
{
    fx_setup(4, 3, 3, 3, 30000);
    memset(recovery_fail_on, 0, sizeof recovery_fail_on);
    bkc_fake_set_filter(fake, recovery_filter, NULL);
    struct bkc_ledger *w = tl_bkc_create(cl, 0);
    int64_t id = bkc_ledger_id(w);
    for (int i = 0; i < 5; i++) {
        tl_adds_one(&b, w);
        tl_adds_wait(&b);
        ck_assert_int_eq(b.status[i], 0);
    }
    /* the writer dies; the first recoverer's re-adds fail on ensemble[2] and the spare */
    int e2 = fb_index(bkc_ledger_bookie(w, 2));
    for (int i = 0; i < 4; i++)
        recovery_fail_on[i] = i == e2 || (i != fb_index(bkc_ledger_bookie(w, 0)) &&
                                          i != fb_index(bkc_ledger_bookie(w, 1)));
    struct bkc_client *c2 = client_new(3, 3, 3, 30000);
    struct tl_res r = {0};
    struct bkc_req q = {.data = &r};
    ck_assert_int_eq(bkc_open(c2, id, true, &q, tl_res_cb), 0);
    tl_wait(loop, &r.done);
    ck_assert_msg(r.status < 0, "the first recovery should fail");
    struct bkc_md md;
    tl_md_read(meta, id, &md);
    ck_assert_int_eq(md.n_segs, 1); /* the ensemble it found */
    ck_assert_int_eq(md.state, BKC_STATE_IN_RECOVERY);
    bkc_md_fini(&md);
    /* the bookies work again: the next recoverer keeps every acknowledged entry */
    memset(recovery_fail_on, 0, sizeof recovery_fail_on);
    tl_bkc_check_ledger(c2, id, true, 4);
    bkc_ledger_free(w);
    bkc_client_free(c2);
    fx_teardown();
}
END_TEST

/* The entries of a recovery that changed ensembles on the way are all where the metadata
 * it closed with says: the re-add of entry 4 fails on ensemble[2], a spare takes its place,
 * and the CLOSED metadata names the spare for the entries re-added. */
START_TEST(test_recovery_ensemble_change_closed_with)
{
    fx_setup(4, 3, 3, 3, 30000);
    memset(recovery_fail_on, 0, sizeof recovery_fail_on);
    bkc_fake_set_filter(fake, recovery_filter, NULL);
    struct bkc_ledger *w = tl_bkc_create(cl, 0);
    int64_t id = bkc_ledger_id(w);
    for (int i = 0; i < 5; i++) {
        tl_adds_one(&b, w);
        tl_adds_wait(&b);
    }
    int e2 = fb_index(bkc_ledger_bookie(w, 2));
    recovery_fail_on[e2] = true;
    struct bkc_client *c2 = client_new(3, 3, 3, 30000);
    struct bkc_ledger *rl = tl_bkc_open(c2, id, true, 0);
    ck_assert_int_eq(bkc_ledger_lac(rl), 4);
    struct bkc_md md;
    tl_md_read(meta, id, &md);
    ck_assert_int_eq(md.state, BKC_STATE_CLOSED);
    ck_assert_int_eq(md.last_entry, 4);
    ck_assert_int_eq(md.n_segs, 2);
    ck_assert_int_eq(md.segs[1].first, 4);
    ck_assert_str_ne(md.segs[1].bookies[2], fb_id(e2));
    ck_assert(bkc_fake_has_entry(fake, fb_index(md.segs[1].bookies[2]), id, 4));
    bkc_md_fini(&md);
    memset(recovery_fail_on, 0, sizeof recovery_fail_on);
    /* another client reads it all through the closed metadata */
    struct bkc_client *c3 = client_new(3, 3, 3, 30000);
    struct bkc_ledger *rd = tl_bkc_open(c3, id, false, 0);
    tl_bkc_check_read(rd, 0, 4);
    bkc_ledger_free(rd);
    bkc_client_free(c3);
    bkc_ledger_free(rl);
    bkc_ledger_free(w);
    bkc_client_free(c2);
    fx_teardown();
}
END_TEST

/* Copies of entry e of ledger id on the bookies its segment in md names. */
static int copies_in_segment(const struct bkc_md *md, int64_t id, int64_t e)
{
    const struct bkc_segment *sg = &md->segs[bkc_md_segment_for(md, e)];
    int n = 0;
    for (int k = 0; k < md->write_quorum; k++) {
        int i = bkc_fake_bookie_index(fake, sg->bookies[(e + k) % md->ensemble_size]);
        n += i >= 0 && bkc_fake_has_entry(fake, i, id, e);
    }
    return n;
}

/* A recovery's re-adds must not vouch for entries outside the metadata's ensembles (E = Qw =
 * Qa = 2, 3 bookies): the dead writer left entries 0 and 1 on ensemble[0] only. The first
 * recoverer re-adds entry 0 to ensemble[0] and a replacement of ensemble[1] (an ensemble
 * change kept in the handle), then fails on entry 1, leaving entry 1's re-add on
 * ensemble[0]. Had that re-add carried the LAC the recovery had reached (0), the next
 * recoverer would take entry 0 as confirmed on the ensemble the metadata names, where it has
 * one copy, and close the ledger with it: losing that bookie would lose the entry. Re-adds
 * carry the LAC the recovery started from. After the second recovery every entry of the
 * ledger has Qa copies on the bookies its segment names. (Before: entry 0 had one.) */
START_TEST(test_recovery_readds_vouch_for_nothing)
{
    fx_setup(3, 2, 2, 2, 30000);
    memset(recovery_fail_on, 0, sizeof recovery_fail_on);
    bkc_fake_set_filter(fake, recovery_filter, NULL);
    struct bkc_ledger *w = tl_bkc_create(cl, 0);
    int64_t id = bkc_ledger_id(w);
    int e0 = fb_index(bkc_ledger_bookie(w, 0)), e1 = fb_index(bkc_ledger_bookie(w, 1));
    int spare = 3 - e0 - e1;
    fm[e1].drop_adds = true; /* entries 0 and 1 reach ensemble[0] only */
    tl_adds_one(&b, w);
    tl_adds_one(&b, w);
    tl_run_for(loop, 50);
    ck_assert_int_eq(b.n_done, 0);
    fm[e1].drop_adds = false;
    /* recovery 1: re-adds fail on ensemble[1], then on the spare from entry 1 on (and
     * ensemble[1] answers reads last, so the copies on ensemble[0] are found) */
    recovery_fail_on[e1] = true;
    slow_reader = e1;
    slow_reads_from = 1; /* entry 0's re-add is acknowledged before entry 1's is sent */
    struct bkc_client *c2 = client_new(2, 2, 2, 30000);
    fm[spare].add_rc = 101;
    fm[spare].add_rc_from = 1;
    struct tl_res r = {0};
    struct bkc_req q = {.data = &r};
    ck_assert_int_eq(bkc_open(c2, id, true, &q, tl_res_cb), 0);
    tl_wait(loop, &r.done);
    ck_assert_msg(r.status < 0, "the first recovery should fail");
    ck_assert(bkc_fake_has_entry(fake, spare, id, 0)); /* the replacement got entry 0 */
    /* recovery 2, nothing failing */
    memset(recovery_fail_on, 0, sizeof recovery_fail_on);
    fm[spare].add_rc = 0;
    struct bkc_ledger *rl = tl_bkc_open(c2, id, true, 0);
    int64_t lac = bkc_ledger_lac(rl);
    struct bkc_md md;
    tl_md_read(meta, id, &md);
    ck_assert_int_eq(md.state, BKC_STATE_CLOSED);
    for (int64_t e = 0; e <= lac; e++)
        ck_assert_msg(copies_in_segment(&md, id, e) >= 2,
                      "entry %lld has %d copies on the bookies its segment names", (long long)e,
                      copies_in_segment(&md, id, e));
    bkc_md_fini(&md);
    bkc_ledger_free(rl);
    bkc_ledger_free(w);
    bkc_client_free(c2);
    slow_reader = -1;
    slow_reads_from = -1;
    fx_teardown();
}
END_TEST

static Suite *bkc_suite(void)
{
    Suite *s = suite_create("bkc");
    TCase *t = tl_tcase(s, "bkc", 60, NULL, NULL);
    tl_add(t, test_md_roundtrip, test_md_bytes, test_roundtrip_striping,
           test_add_entry_id_decided_by_caller, test_out_of_order_acks, test_ensemble_change_error,
           test_ensemble_change_crashed, test_ensemble_change_timeout, test_not_enough_bookies,
           test_no_swap_between_dead_bookies, test_readonly_bookies, test_fenced_adds,
           test_free_cancels, test_client_free_in_callback, test_mops_kill_linear,
           test_recovery_dead_writer);
    tcase_add_loop_test(t, test_recovery_partial_adds, 0, 2);
    tl_add(t, test_recovery_empty_ledger, test_recovery_bookie_down, test_read_lac,
           test_recovery_concurrent, test_recovery_after_ensemble_change, test_change_sees_recovery,
           test_failed_recovery_leaves_metadata, test_recovery_ensemble_change_closed_with,
           test_recovery_readds_vouch_for_nothing, test_crash_keeps_acknowledged, test_unauthorized,
           test_digest_types, test_digest_tail_crc, test_add_crc, test_read_timeout_failover,
           test_digest_failover);
    return s;
}

int main(void)
{
    return tl_run(bkc_suite());
}
