/*
 * bkc_md.c - BookKeeper ledger metadata (docs/wire-bookkeeper.md §7): LedgerMetadataFormat
 * (proto/DataFormats.proto, upstream's field numbers) packed and unpacked by protobuf-c, and
 * ledger paths.
 *
 * Format v3 (written and read): "BookieMetadataFormatVersion\t3\n", a varint length, the
 * binary message - what BookKeeper's LedgerMetadataSerDe writes (writeDelimitedTo), field for
 * field and byte for byte: lastEntryId only once CLOSED, ackQuorumSize always.
 * Format v2 (read only): the same header with 2, then the protobuf text format, which
 * protobuf-c does not read: a small parser here builds the same generated struct, so both
 * formats go through one check and conversion (bkc_md_from_pb).
 * Failure modes: a wrong header or length, a message protobuf-c cannot unpack (lengths are
 * checked against what is there, required fields must be present), text that does not
 * parse, or values no ledger can have (quorums, ensemble sizes, state, segments) give
 * -MG_EPROTO and an empty struct.
 */
#include "bkc/bkc_int.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"

#include "DataFormats.pb-c.h"

#include <ctype.h>
#include <event2/buffer.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef Bookkeeper__Proto__LedgerMetadataFormat md_pb;
typedef Bookkeeper__Proto__LedgerMetadataFormat__Segment md_pb_seg;
typedef Bookkeeper__Proto__LedgerMetadataFormat__CMetadataMapEntry md_pb_kv;

#define MD_HDR "BookieMetadataFormatVersion\t"

/* ---- helpers -------------------------------------------------------------------------- */

void bkc_md_fini(struct bkc_md *md)
{
    if (!md)
        return;
    for (int i = 0; i < md->n_segs; i++) {
        for (int j = 0; j < md->ensemble_size; j++)
            mg_free(md->segs[i].bookies ? md->segs[i].bookies[j] : NULL);
        mg_free(md->segs[i].bookies);
    }
    mg_free(md->segs);
    mg_free(md->password);
    for (int i = 0; i < md->n_custom; i++) {
        mg_free(md->custom[i].key);
        mg_free(md->custom[i].value);
    }
    mg_free(md->custom);
    memset(md, 0, sizeof(*md));
}

static uint8_t *bkc_md_dup_bytes(const void *p, size_t n)
{
    uint8_t *d = mg_malloc(n ? n : 1);
    if (n)
        memcpy(d, p, n);
    return d;
}

void bkc_md_copy(struct bkc_md *dst, const struct bkc_md *src)
{
    *dst = *src;
    dst->segs = mg_calloc((size_t)(src->n_segs ? src->n_segs : 1), sizeof(*dst->segs));
    for (int i = 0; i < src->n_segs; i++) {
        dst->segs[i].first = src->segs[i].first;
        dst->segs[i].bookies = mg_calloc((size_t)src->ensemble_size, sizeof(char *));
        for (int j = 0; j < src->ensemble_size; j++)
            dst->segs[i].bookies[j] = mg_strdup(src->segs[i].bookies[j]);
    }
    dst->password = src->password ? bkc_md_dup_bytes(src->password, src->password_len) : NULL;
    dst->custom = mg_calloc((size_t)(src->n_custom ? src->n_custom : 1), sizeof(*dst->custom));
    for (int i = 0; i < src->n_custom; i++) {
        dst->custom[i].key = mg_strdup(src->custom[i].key);
        dst->custom[i].value = bkc_md_dup_bytes(src->custom[i].value, src->custom[i].len);
        dst->custom[i].len = src->custom[i].len;
    }
}

int bkc_md_segment_for(const struct bkc_md *md, int64_t e)
{
    int k = 0;
    for (int i = 0; i < md->n_segs; i++)
        if (md->segs[i].first <= e)
            k = i;
    return k;
}

void bkc_md_set_last_segment(struct bkc_md *md, int64_t first, char *const *bookies)
{
    struct bkc_segment *s;
    if (md->n_segs > 0 && md->segs[md->n_segs - 1].first == first) {
        s = &md->segs[md->n_segs - 1];
        for (int j = 0; j < md->ensemble_size; j++)
            mg_free(s->bookies[j]);
    } else {
        md->segs = mg_realloc(md->segs, sizeof(*md->segs) * (size_t)(md->n_segs + 1));
        s = &md->segs[md->n_segs++];
        s->first = first;
        s->bookies = mg_calloc((size_t)md->ensemble_size, sizeof(char *));
    }
    for (int j = 0; j < md->ensemble_size; j++)
        s->bookies[j] = mg_strdup(bookies[j]);
}

/* ---- encoding ------------------------------------------------------------------------- */

void bkc_md_encode(const struct bkc_md *md, uint8_t **out, size_t *len)
{
    md_pb m = BOOKKEEPER__PROTO__LEDGER_METADATA_FORMAT__INIT;
    m.quorumsize = md->write_quorum;
    m.ensemblesize = md->ensemble_size;
    m.length = md->length;
    m.has_lastentryid = md->state == BKC_STATE_CLOSED;
    m.lastentryid = md->last_entry;
    m.state = (Bookkeeper__Proto__LedgerMetadataFormat__State)md->state;
    /* The message points into md; only the pointer arrays are ours. */
    md_pb_seg *segs = mg_calloc((size_t)md->n_segs, sizeof(*segs));
    md_pb_seg **segp = mg_calloc((size_t)md->n_segs, sizeof(*segp));
    for (int i = 0; i < md->n_segs; i++) {
        bookkeeper__proto__ledger_metadata_format__segment__init(&segs[i]);
        segs[i].n_ensemblemember = (size_t)md->ensemble_size;
        segs[i].ensemblemember = md->segs[i].bookies;
        segs[i].firstentryid = md->segs[i].first;
        segp[i] = &segs[i];
    }
    m.n_segment = (size_t)md->n_segs;
    m.segment = segp;
    m.has_digesttype = md->digest != 0;
    m.digesttype = (Bookkeeper__Proto__LedgerMetadataFormat__DigestType)md->digest;
    m.has_password = md->has_password;
    m.password.data = md->password;
    m.password.len = md->password_len;
    m.has_ackquorumsize = true;
    m.ackquorumsize = md->ack_quorum;
    m.has_ctime = md->has_ctime;
    m.ctime = md->ctime;
    md_pb_kv *kvs = mg_calloc((size_t)md->n_custom, sizeof(*kvs));
    md_pb_kv **kvp = mg_calloc((size_t)md->n_custom, sizeof(*kvp));
    for (int i = 0; i < md->n_custom; i++) {
        bookkeeper__proto__ledger_metadata_format__c_metadata_map_entry__init(&kvs[i]);
        kvs[i].key = md->custom[i].key;
        kvs[i].has_value = true;
        kvs[i].value.data = md->custom[i].value;
        kvs[i].value.len = md->custom[i].len;
        kvp[i] = &kvs[i];
    }
    m.n_custommetadata = (size_t)md->n_custom;
    m.custommetadata = kvp;
    m.has_ctoken = md->has_ctoken;
    m.ctoken = md->ctoken;

    const char *hdr = MD_HDR "3\n";
    size_t hl = strlen(hdr), n = bookkeeper__proto__ledger_metadata_format__get_packed_size(&m);
    uint8_t *o = mg_malloc(hl + 10 + n);
    memcpy(o, hdr, hl);
    size_t vl = wire_bk_varint_put(o + hl, n);
    MG_ASSERT(bookkeeper__proto__ledger_metadata_format__pack(&m, o + hl + vl) == n);
    mg_free(segs);
    mg_free(segp);
    mg_free(kvs);
    mg_free(kvp);
    *out = o;
    *len = hl + vl + n;
}

/* ---- decoding --------------------------------------------------------------------------- */

/* Check what a ledger's metadata must satisfy and copy it into md (zeroed by the caller). */
static int bkc_md_from_pb(const md_pb *m, struct bkc_md *md)
{
    int e = m->ensemblesize, w = m->quorumsize, st = (int)m->state;
    int a = m->has_ackquorumsize ? m->ackquorumsize : w; /* absent: = quorumSize */
    if (e < 1 || e > BKC_MAX_ENSEMBLE || w < 1 || w > e || a < 1 || a > w || m->n_segment < 1 ||
        st < BKC_STATE_OPEN || st > BKC_STATE_CLOSED)
        return -1;
    for (size_t i = 0; i < m->n_segment; i++)
        if (m->segment[i]->n_ensemblemember != (size_t)e ||
            (i > 0 && m->segment[i]->firstentryid < m->segment[i - 1]->firstentryid))
            return -1;
    md->ensemble_size = e;
    md->write_quorum = w;
    md->ack_quorum = a;
    md->length = m->length;
    md->state = st;
    md->last_entry = md->state == BKC_STATE_CLOSED && m->has_lastentryid ? m->lastentryid : -1;
    md->segs = mg_calloc(m->n_segment, sizeof(*md->segs));
    for (size_t i = 0; i < m->n_segment; i++) {
        md->segs[i].first = m->segment[i]->firstentryid;
        md->segs[i].bookies = mg_calloc((size_t)e, sizeof(char *));
        for (int j = 0; j < e; j++)
            md->segs[i].bookies[j] = mg_strdup(m->segment[i]->ensemblemember[j]);
    }
    md->n_segs = (int)m->n_segment;
    md->digest = m->has_digesttype ? (int)m->digesttype : 0;
    if (m->has_password) {
        md->has_password = true;
        md->password = bkc_md_dup_bytes(m->password.data, m->password.len);
        md->password_len = m->password.len;
    }
    md->has_ctime = m->has_ctime;
    md->ctime = m->ctime;
    md->custom = mg_calloc(m->n_custommetadata, sizeof(*md->custom));
    for (size_t i = 0; i < m->n_custommetadata; i++) {
        const md_pb_kv *kv = m->custommetadata[i];
        md->custom[i].key = mg_strdup(kv->key ? kv->key : "");
        md->custom[i].len = kv->has_value ? kv->value.len : 0;
        md->custom[i].value = bkc_md_dup_bytes(kv->value.data, md->custom[i].len);
    }
    md->n_custom = (int)m->n_custommetadata;
    md->has_ctoken = m->has_ctoken;
    md->ctoken = m->ctoken;
    return 0;
}

/* Format v3: a varint length, then exactly that many bytes of binary protobuf. */
static int bkc_md_decode_v3(const uint8_t *p, size_t len, struct bkc_md *md)
{
    uint64_t n;
    int k = wire_bk_varint_get(p, len, &n);
    if (k < 0 || n != len - (size_t)k)
        return -1;
    md_pb *m =
        bookkeeper__proto__ledger_metadata_format__unpack(wire_bk_allocator(), (size_t)n, p + k);
    if (!m)
        return -1;
    int rc = bkc_md_from_pb(m, md);
    bookkeeper__proto__ledger_metadata_format__free_unpacked(m, wire_bk_allocator());
    return rc;
}

/* ---- text decoding (format v2) ---------------------------------------------------------- */

struct tx {
    const char *p, *end;
};

static void bkc_md_tx_ws(struct tx *t)
{
    while (t->p < t->end && (isspace((unsigned char)*t->p) || *t->p == '#')) {
        if (*t->p == '#') {
            while (t->p < t->end && *t->p != '\n')
                t->p++;
        } else {
            t->p++;
        }
    }
}

static int bkc_md_tx_ident(struct tx *t, char *out, size_t cap)
{
    bkc_md_tx_ws(t);
    size_t n = 0;
    while (t->p < t->end &&
           (isalnum((unsigned char)*t->p) || *t->p == '_' || *t->p == '-' || *t->p == '.')) {
        if (n + 1 >= cap)
            return -1;
        out[n++] = *t->p++;
    }
    out[n] = '\0';
    return n ? 0 : -1;
}

static bool bkc_md_tx_eat(struct tx *t, char c)
{
    bkc_md_tx_ws(t);
    if (t->p < t->end && *t->p == c) {
        t->p++;
        return true;
    }
    return false;
}

/* A quoted string with C escapes into a new buffer. */
static int bkc_md_tx_string(struct tx *t, uint8_t **out, size_t *len)
{
    bkc_md_tx_ws(t);
    if (t->p >= t->end || (*t->p != '"' && *t->p != '\''))
        return -1;
    char q = *t->p++;
    size_t cap = (size_t)(t->end - t->p) + 1, n = 0;
    uint8_t *b = mg_malloc(cap);
    while (t->p < t->end && *t->p != q) {
        char ch = *t->p++;
        if (ch == '\\' && t->p < t->end) {
            char e = *t->p++;
            if (e >= '0' && e <= '7') {
                int v = e - '0';
                for (int k = 0; k < 2 && t->p < t->end && *t->p >= '0' && *t->p <= '7'; k++)
                    v = v * 8 + (*t->p++ - '0');
                b[n++] = (uint8_t)v;
            } else if (e == 'x') {
                int v = 0, k = 0;
                for (; k < 2 && t->p < t->end && isxdigit((unsigned char)*t->p); k++) {
                    char h = *t->p++;
                    v = v * 16 + (isdigit((unsigned char)h) ? h - '0' : (tolower(h) - 'a' + 10));
                }
                b[n++] = (uint8_t)v;
            } else {
                b[n++] = (uint8_t)(e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e);
            }
        } else {
            b[n++] = (uint8_t)ch;
        }
    }
    if (t->p >= t->end) {
        mg_free(b);
        return -1;
    }
    t->p++;
    b[n] = '\0';
    *out = b;
    *len = n;
    return 0;
}

static int bkc_md_tx_int(struct tx *t, int64_t *v)
{
    char buf[32];
    if (bkc_md_tx_ident(t, buf, sizeof(buf)) < 0)
        return -1;
    char *e;
    long long x = strtoll(buf, &e, 10);
    if (*e)
        return -1;
    *v = x;
    return 0;
}

/* Append to a repeated field of a message built here (freed by protobuf-c with
 * wire_bk_allocator, like an unpacked one). */
static void *bkc_md_pb_append(void *arr, size_t *n, size_t elt)
{
    arr = mg_realloc(arr, elt * (*n + 1));
    (*n)++;
    return arr;
}

/* One `segment { ... }` or `customMetadata { ... }` block, the opening brace eaten. */
static int bkc_md_tx_block(struct tx *t, md_pb *m, bool seg)
{
    if (seg) {
        md_pb_seg *s = mg_malloc(sizeof(*s));
        bookkeeper__proto__ledger_metadata_format__segment__init(s);
        m->segment = bkc_md_pb_append(m->segment, &m->n_segment, sizeof(*m->segment));
        m->segment[m->n_segment - 1] = s;
    } else {
        md_pb_kv *kv = mg_malloc(sizeof(*kv));
        bookkeeper__proto__ledger_metadata_format__c_metadata_map_entry__init(kv);
        m->custommetadata =
            bkc_md_pb_append(m->custommetadata, &m->n_custommetadata, sizeof(*m->custommetadata));
        m->custommetadata[m->n_custommetadata - 1] = kv;
    }
    bool have_first = false;
    while (!bkc_md_tx_eat(t, '}')) {
        char f[64];
        uint8_t *str;
        size_t sl;
        int64_t v;
        if (bkc_md_tx_ident(t, f, sizeof(f)) < 0 || !bkc_md_tx_eat(t, ':'))
            return -1;
        if (seg) {
            md_pb_seg *s = m->segment[m->n_segment - 1];
            if (!strcmp(f, "ensembleMember") && s->n_ensemblemember < BKC_MAX_ENSEMBLE &&
                bkc_md_tx_string(t, &str, &sl) == 0) {
                s->ensemblemember =
                    bkc_md_pb_append(s->ensemblemember, &s->n_ensemblemember, sizeof(char *));
                s->ensemblemember[s->n_ensemblemember - 1] = (char *)str;
            } else if (!strcmp(f, "firstEntryId") && bkc_md_tx_int(t, &v) == 0) {
                s->firstentryid = v;
                have_first = true;
            } else {
                return -1;
            }
        } else {
            md_pb_kv *kv = m->custommetadata[m->n_custommetadata - 1];
            if (!strcmp(f, "key") && !kv->key && bkc_md_tx_string(t, &str, &sl) == 0) {
                kv->key = (char *)str;
            } else if (!strcmp(f, "value") && !kv->has_value &&
                       bkc_md_tx_string(t, &str, &sl) == 0) {
                kv->has_value = true;
                kv->value.data = str;
                kv->value.len = sl;
            } else {
                return -1;
            }
        }
    }
    return seg && !have_first ? -1 : 0; /* firstEntryId is required */
}

/* Format v2: the text format, into m. Unknown scalar fields are ignored. */
static int bkc_md_parse_text(struct tx *t, md_pb *m)
{
    int have = 0; /* the required scalars: 1 quorumSize, 2 ensembleSize, 4 length, 8 state */
    char name[64], val[64];
    for (;;) {
        bkc_md_tx_ws(t);
        if (t->p >= t->end)
            break;
        if (bkc_md_tx_ident(t, name, sizeof(name)) < 0)
            return -1;
        int64_t v;
        if (!strcmp(name, "segment") || !strcmp(name, "customMetadata")) {
            bkc_md_tx_eat(t, ':');
            if (!bkc_md_tx_eat(t, '{') || bkc_md_tx_block(t, m, !strcmp(name, "segment")) < 0)
                return -1;
            continue;
        }
        if (!bkc_md_tx_eat(t, ':'))
            return -1;
        if (!strcmp(name, "password")) {
            uint8_t *str;
            size_t sl;
            if (bkc_md_tx_string(t, &str, &sl) < 0)
                return -1;
            mg_free(m->password.data);
            m->has_password = true;
            m->password.data = str;
            m->password.len = sl;
        } else if (!strcmp(name, "state") || !strcmp(name, "digestType")) {
            if (bkc_md_tx_ident(t, val, sizeof(val)) < 0)
                return -1;
            static const char *const states[] = {NULL, "OPEN", "IN_RECOVERY", "CLOSED"};
            static const char *const digests[] = {NULL, "CRC32", "HMAC", "CRC32C", "DUMMY"};
            bool st = !strcmp(name, "state");
            int found = 0;
            for (int i = 1; i < (st ? 4 : 5); i++)
                if (!strcmp(val, st ? states[i] : digests[i]))
                    found = i;
            if (!found)
                return -1;
            if (st) {
                m->state = (Bookkeeper__Proto__LedgerMetadataFormat__State)found;
                have |= 8;
            } else {
                m->has_digesttype = true;
                m->digesttype = (Bookkeeper__Proto__LedgerMetadataFormat__DigestType)found;
            }
        } else {
            if (bkc_md_tx_int(t, &v) < 0)
                return -1;
            if (!strcmp(name, "quorumSize")) {
                m->quorumsize = (int32_t)v;
                have |= 1;
            } else if (!strcmp(name, "ensembleSize")) {
                m->ensemblesize = (int32_t)v;
                have |= 2;
            } else if (!strcmp(name, "length")) {
                m->length = v;
                have |= 4;
            } else if (!strcmp(name, "lastEntryId")) {
                m->has_lastentryid = true;
                m->lastentryid = v;
            } else if (!strcmp(name, "ackQuorumSize")) {
                m->has_ackquorumsize = true;
                m->ackquorumsize = (int32_t)v;
            } else if (!strcmp(name, "ctime")) {
                m->has_ctime = true;
                m->ctime = v;
            } else if (!strcmp(name, "cToken")) {
                m->has_ctoken = true;
                m->ctoken = v;
            }
        }
    }
    return have == 15 ? 0 : -1;
}

static int bkc_md_decode_text(const char *p, size_t len, struct bkc_md *md)
{
    struct tx t = {p, p + len};
    md_pb *m = mg_malloc(sizeof(*m));
    bookkeeper__proto__ledger_metadata_format__init(m);
    int rc = bkc_md_parse_text(&t, m) == 0 ? bkc_md_from_pb(m, md) : -1;
    bookkeeper__proto__ledger_metadata_format__free_unpacked(m, wire_bk_allocator());
    return rc;
}

int bkc_md_decode(const void *buf, size_t len, struct bkc_md *md)
{
    memset(md, 0, sizeof(*md));
    const char *p = buf;
    size_t hl = strlen(MD_HDR);
    int rc = -1;
    if (len >= hl + 2 && !memcmp(p, MD_HDR, hl) && p[hl + 1] == '\n') {
        if (p[hl] == '3')
            rc = bkc_md_decode_v3((const uint8_t *)p + hl + 2, len - hl - 2, md);
        else if (p[hl] == '2')
            rc = bkc_md_decode_text(p + hl + 2, len - hl - 2, md);
    }
    if (rc < 0) {
        bkc_md_fini(md);
        return -MG_EPROTO;
    }
    return 0;
}

/* ---- paths ------------------------------------------------------------------------------ */

char *bkc_ledger_path(const char *root, int64_t id)
{
    char d[32];
    if (id < INT32_MAX) {
        snprintf(d, sizeof(d), "%010" PRId64, id);
        return mg_asprintf("%s/%.2s/%.4s/L%.4s", root, d, d + 2, d + 6);
    }
    snprintf(d, sizeof(d), "%019" PRId64, id);
    return mg_asprintf("%s/%.3s/%.4s/%.4s/%.4s/L%.4s", root, d, d + 3, d + 7, d + 11, d + 15);
}

/* ---- text form (bookkeeper shell's ledgermetadata) ------------------------------------------ */

static void bkc_md_b64(struct evbuffer *out, const uint8_t *v, size_t len)
{
    char *b = mg_malloc(4 * ((len + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)b, v, (int)len);
    evbuffer_add_printf(out, "base64:%s", b);
    mg_free(b);
}

char *bkc_md_describe(const void *buf, size_t len)
{
    struct bkc_md md;
    if (bkc_md_decode(buf, len, &md) < 0)
        return NULL;
    static const char *const digests[] = {"?", "CRC32", "HMAC", "CRC32C", "DUMMY"};
    static const char *const states[] = {"?", "OPEN", "IN_RECOVERY", "CLOSED"};
    struct evbuffer *out = evbuffer_new();
    evbuffer_add_printf(out,
                        "LedgerMetadata{formatVersion=3, ensembleSize=%d, writeQuorumSize=%d, "
                        "ackQuorumSize=%d, state=%s",
                        md.ensemble_size, md.write_quorum, md.ack_quorum,
                        md.state >= 1 && md.state <= 3 ? states[md.state] : "?");
    if (md.state == BKC_STATE_CLOSED)
        evbuffer_add_printf(out, ", length=%" PRId64 ", lastEntryId=%" PRId64, md.length,
                            md.last_entry);
    evbuffer_add_printf(out, ", digestType=%s, password=",
                        md.digest >= 1 && md.digest <= 4 ? digests[md.digest] : "?");
    bkc_md_b64(out, md.password ? md.password : (const uint8_t *)"",
               md.has_password ? md.password_len : 0);
    evbuffer_add_printf(out, ", ensembles={");
    for (int i = 0; i < md.n_segs; i++) {
        evbuffer_add_printf(out, "%s%" PRId64 "=[", i ? ", " : "", md.segs[i].first);
        for (int j = 0; j < md.ensemble_size; j++)
            evbuffer_add_printf(out, "%s%s", j ? ", " : "", md.segs[i].bookies[j]);
        evbuffer_add_printf(out, "]");
    }
    evbuffer_add_printf(out, "}, customMetadata={");
    for (int i = 0; i < md.n_custom; i++) {
        evbuffer_add_printf(out, "%s%s=", i ? ", " : "", md.custom[i].key);
        bkc_md_b64(out, md.custom[i].value, md.custom[i].len);
    }
    evbuffer_add_printf(out, "}}");
    size_t n = evbuffer_get_length(out);
    char *s = mg_malloc(n + 1);
    evbuffer_remove(out, s, n);
    s[n] = '\0';
    evbuffer_free(out);
    bkc_md_fini(&md);
    return s;
}
