/*
 * gen_corpus_bk.c - writes the seed corpora of the BookKeeper fuzz targets, encoded with the
 * codec itself: fuzz_bk_request (v2 and v3 requests of every kind, behind the control byte
 * that picks the framing and the frame limit), fuzz_bk_response (v2 and v3 responses),
 * fuzz_ledger_md (the binary LedgerMetadataFormat of a few ledgers, and one whole format-v3
 * body behind 0xff) and fuzz_ledger_md_text (format-v2 text bodies).
 *
 * Usage: gen_corpus_bk DIR  (writes DIR/<target>/<name>.bin, overwriting; the target folders
 * must exist). Happy path: one file per seed, exit 0. Failure modes: a file that cannot be
 * written prints the reason, exit 1.
 */
#include "bkc/bkc_int.h"
#include "lib/tl_bk_ops.h"
#include "util/alloc.h"
#include "wire/wire_bk.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Control bytes (see the targets): framing in bits 0-1 (requests) or bit 0 (responses), bit 2
 * a small frame limit of 32 + 8 * (byte >> 3). */
#define REQ_UNKNOWN 0x00
#define REQ_V3 0x02
#define REQ_V2_SMALL (0x01 | 0x04 | (4 << 3)) /* limit 64 */
#define RESP_V2 0x00
#define RESP_V3 0x01
#define RESP_V3_SMALL (0x01 | 0x04 | (8 << 3)) /* limit 96 */

static int failed;

static void save_bytes(const char *dir, const char *target, const char *name, uint8_t ctl,
                       bool with_ctl, const void *p, size_t n)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s/%s.bin", dir, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || (with_ctl && fwrite(&ctl, 1, 1, f) != 1) || (n && fwrite(p, 1, n, f) != n)) {
        perror(path);
        failed = 1;
    }
    if (f && fclose(f) != 0)
        failed = 1;
}

/* Save (and empty) b behind a control byte. */
static void save(const char *dir, const char *target, const char *name, uint8_t ctl,
                 struct evbuffer *b)
{
    size_t n = evbuffer_get_length(b);
    uint8_t *p = malloc(n + 1);
    evbuffer_remove(b, p, n);
    save_bytes(dir, target, name, ctl, true, p, n);
    free(p);
}

static const uint8_t key[WIRE_BK_MASTER_KEY_LEN] = "magnetar-master-key!";

static struct evbuffer *payload(size_t n)
{
    struct evbuffer *b = evbuffer_new();
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)('a' + i % 26);
        evbuffer_add(b, &c, 1);
    }
    return b;
}

static void add(struct evbuffer *out, bool v3, int64_t ledger, int64_t entry, uint16_t flags,
                size_t plen)
{
    uint8_t e[WIRE_BK_ENTRY_HDR_LEN + 4];
    struct wire_bk_entry_hdr h = {
        .ledger = ledger, .entry = entry, .lac = entry - 1, .length = (int64_t)plen};
    wire_bk_entry_hdr_put(e, &h);
    memcpy(e + WIRE_BK_ENTRY_HDR_LEN, "\x12\x34\x56\x78", 4);
    struct evbuffer *pl = payload(plen);
    struct wire_bk_add a = {.ledger = ledger,
                            .entry = entry,
                            .flags = flags,
                            .txn = (uint64_t)entry + 1,
                            .master_key = key,
                            .ehdr = e,
                            .ehdr_len = sizeof(e)};
    wire_bk_write_add(out, v3, &a, pl);
    evbuffer_free(pl);
}

static void read_req(struct evbuffer *out, bool v3, int64_t ledger, int64_t entry, uint16_t flags)
{
    struct wire_bk_read r = {.ledger = ledger,
                             .entry = entry,
                             .flags = flags,
                             .txn = (uint64_t)ledger * 1000 + 7,
                             .master_key = key};
    wire_bk_write_read(out, v3, &r);
}

static void requests(const char *dir)
{
    const char *t = "bk_request";
    struct evbuffer *b = evbuffer_new();
    add(b, false, 3, 0, 0, 100);
    save(dir, t, "v2_add", REQ_UNKNOWN, b);
    add(b, false, 3, 1, WIRE_BK_FLAG_RECOVERY_ADD | WIRE_BK_FLAG_HIGH_PRIORITY, 10);
    read_req(b, false, 3, 1, 0);
    read_req(b, false, 3, -1, WIRE_BK_FLAG_FENCE | WIRE_BK_FLAG_HIGH_PRIORITY);
    save(dir, t, "v2_add_read_fence", REQ_UNKNOWN, b);
    static const uint8_t auth[] = {0, 0, 0, 6, 2, 3, 0, 0, 0x0a, 0x00};
    evbuffer_add(b, auth, sizeof(auth));
    read_req(b, false, 9, 4, 0);
    save(dir, t, "v2_auth_read", REQ_UNKNOWN, b);
    add(b, false, 5, 2, 0, 200); /* oversized under the small limit */
    read_req(b, false, 5, 2, 0);
    save(dir, t, "v2_oversized_add", REQ_V2_SMALL, b);

    add(b, true, 3, 0, 0, 100);
    save(dir, t, "v3_add", REQ_UNKNOWN, b);
    add(b, true, 3, 1, WIRE_BK_FLAG_RECOVERY_ADD | WIRE_BK_FLAG_HIGH_PRIORITY, 10);
    read_req(b, true, 3, -1, WIRE_BK_FLAG_FENCE);
    save(dir, t, "v3_add_read_fence", REQ_V3, b);

    /* every other operation the bookie answers, one Request each */
    struct tl_bk_ops o;
    tl_bk_ops_init(&o);
    uint8_t lac[20] = {0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4};
    o.read_lac.ledgerid = o.write_lac.ledgerid = o.force_ledger.ledgerid = 3;
    o.write_lac.lac = 1;
    o.write_lac.masterkey.data = (uint8_t *)key;
    o.write_lac.masterkey.len = sizeof(key);
    o.write_lac.body.data = lac;
    o.write_lac.body.len = sizeof(lac);
    o.bookie_info.has_requested = 1;
    o.bookie_info.requested = 3;
    o.auth.authpluginname = "AuthDisabledPlugin";
    static const int ops[6] = {BOOKKEEPER__PROTO__OPERATION_TYPE__READ_LAC,
                               BOOKKEEPER__PROTO__OPERATION_TYPE__WRITE_LAC,
                               BOOKKEEPER__PROTO__OPERATION_TYPE__GET_BOOKIE_INFO,
                               BOOKKEEPER__PROTO__OPERATION_TYPE__FORCE_LEDGER,
                               BOOKKEEPER__PROTO__OPERATION_TYPE__AUTH,
                               BOOKKEEPER__PROTO__OPERATION_TYPE__START_TLS};
    for (int i = 0; i < 6; i++) {
        Bookkeeper__Proto__Request r;
        tl_bk_ops_request(&o, ops[i], &r);
        wire_bk_write_v3_request(b, ops[i], 11 + (uint64_t)i, 0, &r);
        if (i == 1)
            save(dir, t, "v3_lac", REQ_V3, b);
    }
    save(dir, t, "v3_info_force_auth_tls", REQ_UNKNOWN, b);

    /* START_TLS as a TLS client's first frame (a v2 client's too), then its requests */
    wire_bk_write_start_tls(b, 1);
    save(dir, t, "start_tls", REQ_UNKNOWN, b);
    wire_bk_write_start_tls(b, 2);
    add(b, true, 3, 0, 0, 100);
    read_req(b, true, 3, 0, 0);
    save(dir, t, "start_tls_v3_add_read", REQ_UNKNOWN, b);
    evbuffer_free(b);
}

static void v3_resp(struct evbuffer *b, int op, uint64_t txn, int status, const char *body)
{
    Bookkeeper__Proto__Response r = BOOKKEEPER__PROTO__RESPONSE__INIT;
    Bookkeeper__Proto__AddResponse ar = BOOKKEEPER__PROTO__ADD_RESPONSE__INIT;
    Bookkeeper__Proto__ReadResponse rr = BOOKKEEPER__PROTO__READ_RESPONSE__INIT;
    if (op == BOOKKEEPER__PROTO__OPERATION_TYPE__ADD_ENTRY) {
        ar.status = wire_bk_status_to_v3(status);
        ar.ledgerid = 3;
        ar.entryid = (int64_t)txn - 1;
        r.addresponse = &ar;
    } else if (op == BOOKKEEPER__PROTO__OPERATION_TYPE__READ_ENTRY) {
        rr.status = wire_bk_status_to_v3(status);
        rr.ledgerid = 3;
        rr.entryid = (int64_t)txn - 1;
        if (body) {
            rr.has_body = 1;
            rr.body.data = (uint8_t *)body;
            rr.body.len = strlen(body);
        }
        rr.has_maxlac = 1;
        rr.maxlac = 5;
        r.readresponse = &rr;
    }
    wire_bk_write_v3_response(b, op, txn, status, &r);
}

static void responses(const char *dir)
{
    const char *t = "bk_response";
    uint32_t add_hdr = (uint32_t)WIRE_BK_V2_VERSION << 24 | WIRE_BK_OP_ADD << 16;
    uint32_t read_hdr = (uint32_t)WIRE_BK_V2_VERSION << 24 | WIRE_BK_OP_READ << 16;
    const char *entry = "0123456789abcdef0123456789abcdef-digest-payload";
    struct evbuffer *b = evbuffer_new();
    wire_bk_write_v2_response(b, add_hdr, WIRE_BK_EOK, 3, 0, NULL, 0);
    wire_bk_write_v2_response(b, add_hdr, WIRE_BK_EFENCED, 3, 1, NULL, 0);
    save(dir, t, "v2_adds", RESP_V2, b);
    wire_bk_write_v2_response(b, read_hdr, WIRE_BK_EOK, 3, 0, (const uint8_t *)entry,
                              strlen(entry));
    wire_bk_write_v2_response(b, read_hdr, WIRE_BK_ENOENTRY, 3, -1, NULL, 0);
    save(dir, t, "v2_reads", RESP_V2, b);
    v3_resp(b, BOOKKEEPER__PROTO__OPERATION_TYPE__ADD_ENTRY, 1, WIRE_BK_EOK, NULL);
    v3_resp(b, BOOKKEEPER__PROTO__OPERATION_TYPE__ADD_ENTRY, 2, WIRE_BK_EREADONLY, NULL);
    save(dir, t, "v3_adds", RESP_V3, b);
    v3_resp(b, BOOKKEEPER__PROTO__OPERATION_TYPE__READ_ENTRY, 3, WIRE_BK_EOK, entry);
    v3_resp(b, BOOKKEEPER__PROTO__OPERATION_TYPE__READ_ENTRY, 4, WIRE_BK_ENOLEDGER, NULL);
    v3_resp(b, BOOKKEEPER__PROTO__OPERATION_TYPE__START_TLS, 5, WIRE_BK_EBADREQ, NULL);
    save(dir, t, "v3_reads", RESP_V3, b);
    v3_resp(b, BOOKKEEPER__PROTO__OPERATION_TYPE__READ_ENTRY, 6, WIRE_BK_EOK, entry);
    v3_resp(b, BOOKKEEPER__PROTO__OPERATION_TYPE__ADD_ENTRY, 7, WIRE_BK_EOK, NULL);
    save(dir, t, "v3_oversized_read", RESP_V3_SMALL, b);
    /* the answers to START_TLS: EOK (with the empty StartTLSResponse) and a refusal */
    wire_bk_write_start_tls_response(b, 1, WIRE_BK_EOK);
    wire_bk_write_start_tls_response(b, 2, WIRE_BK_EBADREQ);
    v3_resp(b, BOOKKEEPER__PROTO__OPERATION_TYPE__ADD_ENTRY, 3, WIRE_BK_EUA, NULL);
    save(dir, t, "v3_start_tls", RESP_V3, b);
    evbuffer_free(b);
}

static void md_seeds(const char *dir)
{
    char *e1[] = {"127.0.0.1:3181"};
    char *e3[] = {"bk-0.bookie:3181", "bk-1.bookie:3181", "bk-2.bookie:3181"};
    char *e3b[] = {"bk-0.bookie:3181", "bk-3.bookie:3181", "bk-2.bookie:3181"};
    for (int k = 0; k < 2; k++) {
        struct bkc_md md = {0};
        md.ensemble_size = k ? 3 : 1;
        md.write_quorum = k ? 2 : 1;
        md.ack_quorum = k ? 2 : 1;
        md.state = k ? BKC_STATE_CLOSED : BKC_STATE_OPEN;
        md.last_entry = k ? 120 : -1;
        md.length = k ? 65536 : 0;
        md.digest = BKC_DIGEST_CRC32C;
        md.has_password = true;
        md.password = (uint8_t *)mg_strdup(k ? "secret" : "");
        md.password_len = k ? 6 : 0;
        md.has_ctime = true;
        md.ctime = 1700000000000;
        bkc_md_set_last_segment(&md, 0, k ? e3 : e1);
        if (k)
            bkc_md_set_last_segment(&md, 64, e3b);
        md.custom = mg_calloc(3, sizeof(*md.custom));
        static const char *const kv[3][2] = {{"application", "pulsar"},
                                             {"component", "managed-ledger"},
                                             {"pulsar/managed-ledger", "public/default/t"}};
        for (int i = 0; i < 3; i++) {
            md.custom[i].key = mg_strdup(kv[i][0]);
            md.custom[i].value = (uint8_t *)mg_strdup(kv[i][1]);
            md.custom[i].len = strlen(kv[i][1]);
        }
        md.n_custom = 3;
        if (k) {
            md.has_ctoken = true;
            md.ctoken = -1;
        }
        uint8_t *buf;
        size_t len;
        bkc_md_encode(&md, &buf, &len);
        /* the message alone (the target adds header and length), and once with them */
        size_t hl = strlen("BookieMetadataFormatVersion\t3\n");
        uint64_t n;
        int vl = wire_bk_varint_get(buf + hl, len - hl, &n);
        save_bytes(dir, "ledger_md", k ? "closed_e3" : "open_e1", 0, false, buf + hl + vl, n);
        if (k)
            save_bytes(dir, "ledger_md", "closed_e3_delimited", 0xff, true, buf + hl, len - hl);
        mg_free(buf);
        bkc_md_fini(&md);
    }
    static const char *const text[] = {
        "quorumSize: 2\nensembleSize: 3\nlength: 100\nlastEntryId: 9\nstate: CLOSED\n"
        "segment {\n  ensembleMember: \"bk-0:3181\"\n  ensembleMember: \"bk-1:3181\"\n"
        "  ensembleMember: \"bk-2:3181\"\n  firstEntryId: 0\n}\n"
        "digestType: CRC32C\npassword: \"\"\nackQuorumSize: 2\nctime: 1700000000000\n"
        "customMetadata {\n  key: \"application\"\n  value: \"pulsar\"\n}\n",
        "# an older ledger\nquorumSize: 1\nensembleSize: 1\nlength: 0\nstate: OPEN\n"
        "segment {\n  ensembleMember: \"127.0.0.1:3181\"\n  firstEntryId: 0\n}\n"
        "segment {\n  ensembleMember: \"127.0.0.2:3181\"\n  firstEntryId: 17\n}\n"
        "digestType: HMAC\npassword: \"p\\141\\x73s\\n\"\ncToken: 4\n"
        "customMetadata {\n  key: 'k'\n  value: \"\\001\\002\"\n}\n",
    };
    for (int i = 0; i < 2; i++)
        save_bytes(dir, "ledger_md_text", i ? "open_two_segments" : "closed_e3", 0, false, text[i],
                   strlen(text[i]));
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    requests(argv[1]);
    responses(argv[1]);
    md_seeds(argv[1]);
    return failed ? 1 : 0;
}
