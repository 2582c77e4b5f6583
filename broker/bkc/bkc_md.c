/*
 * bkc_md.c - BookKeeper ledger metadata (docs/wire-bookkeeper.md §7): LedgerMetadataFormat encoded
 * and decoded by hand (the message is small and stable; no generated code needed).
 *
 * Format v3: "BookieMetadataFormatVersion\t3\n", varint32 length, binary protobuf.
 * Format v2: the same header with 2, then the protobuf text format (read only).
 * Decoding never trusts lengths: every varint and length is checked against what is left;
 * anything malformed gives -MG_EPROTO and an empty struct.
 */
#include "bkc/bkc_int.h"
#include "util/alloc.h"
#include "util/err.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static uint8_t *dup_bytes(const void *p, size_t n)
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
    dst->password = src->password ? dup_bytes(src->password, src->password_len) : NULL;
    dst->custom = mg_calloc((size_t)(src->n_custom ? src->n_custom : 1), sizeof(*dst->custom));
    for (int i = 0; i < src->n_custom; i++) {
        dst->custom[i].key = mg_strdup(src->custom[i].key);
        dst->custom[i].value = dup_bytes(src->custom[i].value, src->custom[i].len);
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

struct pbuf {
    uint8_t *p;
    size_t len, cap;
};

static void pb_need(struct pbuf *b, size_t n)
{
    if (b->len + n <= b->cap)
        return;
    size_t cap = b->cap ? b->cap * 2 : 256;
    while (cap < b->len + n)
        cap *= 2;
    b->p = mg_realloc(b->p, cap);
    b->cap = cap;
}

static void pb_varint(struct pbuf *b, uint64_t v)
{
    pb_need(b, 10);
    while (v >= 0x80) {
        b->p[b->len++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    b->p[b->len++] = (uint8_t)v;
}

static void pb_tag(struct pbuf *b, int field, int wt)
{
    pb_varint(b, ((uint64_t)field << 3) | (uint64_t)wt);
}

/* int32 / int64 / enum: negative values take 10 bytes (two's complement as uint64). */
static void pb_int(struct pbuf *b, int field, int64_t v)
{
    pb_tag(b, field, 0);
    pb_varint(b, (uint64_t)v);
}

static void pb_bytes(struct pbuf *b, int field, const void *p, size_t n)
{
    pb_tag(b, field, 2);
    pb_varint(b, n);
    pb_need(b, n);
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
}

void bkc_md_encode(const struct bkc_md *md, uint8_t **out, size_t *len)
{
    struct pbuf m = {0};
    pb_int(&m, 1, md->write_quorum);
    pb_int(&m, 2, md->ensemble_size);
    pb_int(&m, 3, md->length);
    if (md->state == BKC_STATE_CLOSED)
        pb_int(&m, 4, md->last_entry);
    pb_int(&m, 5, md->state);
    for (int i = 0; i < md->n_segs; i++) {
        struct pbuf s = {0};
        for (int j = 0; j < md->ensemble_size; j++)
            pb_bytes(&s, 1, md->segs[i].bookies[j], strlen(md->segs[i].bookies[j]));
        pb_int(&s, 2, md->segs[i].first);
        pb_bytes(&m, 6, s.p, s.len);
        mg_free(s.p);
    }
    if (md->digest)
        pb_int(&m, 7, md->digest);
    if (md->has_password)
        pb_bytes(&m, 8, md->password, md->password_len);
    pb_int(&m, 9, md->ack_quorum);
    if (md->has_ctime)
        pb_int(&m, 10, md->ctime);
    for (int i = 0; i < md->n_custom; i++) {
        struct pbuf s = {0};
        pb_bytes(&s, 1, md->custom[i].key, strlen(md->custom[i].key));
        pb_bytes(&s, 2, md->custom[i].value, md->custom[i].len);
        pb_bytes(&m, 11, s.p, s.len);
        mg_free(s.p);
    }
    if (md->has_ctoken)
        pb_int(&m, 12, md->ctoken);

    struct pbuf o = {0};
    const char *hdr = MD_HDR "3\n";
    pb_need(&o, strlen(hdr));
    memcpy(o.p, hdr, strlen(hdr));
    o.len = strlen(hdr);
    pb_varint(&o, m.len);
    pb_need(&o, m.len);
    if (m.len)
        memcpy(o.p + o.len, m.p, m.len);
    o.len += m.len;
    mg_free(m.p);
    *out = o.p;
    *len = o.len;
}

/* ---- binary decoding ------------------------------------------------------------------ */

struct rd {
    const uint8_t *p, *end;
};

static int rd_varint(struct rd *r, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end)
            return -1;
        uint8_t b = *r->p++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

/* Skip a field of wire type wt. */
static int rd_skip(struct rd *r, int wt)
{
    uint64_t v;
    switch (wt) {
    case 0:
        return rd_varint(r, &v);
    case 1:
        if (r->end - r->p < 8)
            return -1;
        r->p += 8;
        return 0;
    case 2:
        if (rd_varint(r, &v) < 0 || v > (uint64_t)(r->end - r->p))
            return -1;
        r->p += v;
        return 0;
    case 5:
        if (r->end - r->p < 4)
            return -1;
        r->p += 4;
        return 0;
    default:
        return -1;
    }
}

static int rd_lenfield(struct rd *r, struct rd *sub)
{
    uint64_t n;
    if (rd_varint(r, &n) < 0 || n > (uint64_t)(r->end - r->p))
        return -1;
    sub->p = r->p;
    sub->end = r->p + n;
    r->p += n;
    return 0;
}

/* Pending segments while decoding: members are collected before the ensemble size is
 * checked. */
struct dseg {
    int64_t first;
    char **members;
    int n;
};

static void dsegs_free(struct dseg *s, int n)
{
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < s[i].n; j++)
            mg_free(s[i].members[j]);
        mg_free(s[i].members);
    }
    mg_free(s);
}

static void dseg_add_member(struct dseg *s, const char *p, size_t n)
{
    s->members = mg_realloc(s->members, sizeof(char *) * (size_t)(s->n + 1));
    s->members[s->n++] = mg_strndup(p, n);
}

static void md_add_custom(struct bkc_md *md, const char *k, size_t kl, const uint8_t *v, size_t vl)
{
    md->custom = mg_realloc(md->custom, sizeof(*md->custom) * (size_t)(md->n_custom + 1));
    struct bkc_md_kv *kv = &md->custom[md->n_custom++];
    kv->key = mg_strndup(k, kl);
    kv->value = dup_bytes(v, vl);
    kv->len = vl;
}

/* Move decoded segments into md after validation. */
static int md_finish(struct bkc_md *md, struct dseg *segs, int n_segs, bool have_ack,
                     bool have_required)
{
    if (!have_required || md->ensemble_size < 1 || md->ensemble_size > BKC_MAX_ENSEMBLE ||
        md->write_quorum < 1 || md->write_quorum > md->ensemble_size || n_segs < 1)
        return -1;
    if (!have_ack)
        md->ack_quorum = md->write_quorum;
    if (md->ack_quorum < 1 || md->ack_quorum > md->write_quorum)
        return -1;
    if (md->state < BKC_STATE_OPEN || md->state > BKC_STATE_CLOSED)
        return -1;
    for (int i = 0; i < n_segs; i++) {
        if (segs[i].n != md->ensemble_size)
            return -1;
        if (i > 0 && segs[i].first < segs[i - 1].first)
            return -1;
    }
    md->segs = mg_calloc((size_t)n_segs, sizeof(*md->segs));
    for (int i = 0; i < n_segs; i++) {
        md->segs[i].first = segs[i].first;
        md->segs[i].bookies = segs[i].members;
        segs[i].members = NULL;
        segs[i].n = 0;
    }
    md->n_segs = n_segs;
    if (md->state != BKC_STATE_CLOSED)
        md->last_entry = -1;
    return 0;
}

static int md_decode_v3(const uint8_t *p, size_t len, struct bkc_md *md)
{
    struct rd r = {p, p + len};
    uint64_t mlen;
    if (rd_varint(&r, &mlen) < 0 || mlen != (uint64_t)(r.end - r.p))
        return -1;
    struct dseg *segs = NULL;
    int n_segs = 0;
    int have = 0; /* bits: 1 quorum, 2 ensemble, 4 length, 8 state */
    bool have_ack = false;
    md->last_entry = -1;
    while (r.p < r.end) {
        uint64_t tag, v;
        if (rd_varint(&r, &tag) < 0)
            goto bad;
        int field = (int)(tag >> 3), wt = (int)(tag & 7);
        if (wt == 0 && field >= 1 && field <= 12 && field != 6 && field != 8 && field != 11) {
            if (rd_varint(&r, &v) < 0)
                goto bad;
            switch (field) {
            case 1:
                md->write_quorum = (int)(int32_t)v;
                have |= 1;
                break;
            case 2:
                md->ensemble_size = (int)(int32_t)v;
                have |= 2;
                break;
            case 3:
                md->length = (int64_t)v;
                have |= 4;
                break;
            case 4:
                md->last_entry = (int64_t)v;
                break;
            case 5:
                md->state = (int)v;
                have |= 8;
                break;
            case 7:
                md->digest = (int)v;
                break;
            case 9:
                md->ack_quorum = (int)(int32_t)v;
                have_ack = true;
                break;
            case 10:
                md->ctime = (int64_t)v;
                md->has_ctime = true;
                break;
            case 12:
                md->ctoken = (int64_t)v;
                md->has_ctoken = true;
                break;
            }
        } else if (wt == 2 && field == 6) {
            struct rd s;
            if (rd_lenfield(&r, &s) < 0)
                goto bad;
            segs = mg_realloc(segs, sizeof(*segs) * (size_t)(n_segs + 1));
            struct dseg *d = &segs[n_segs++];
            memset(d, 0, sizeof(*d));
            bool have_first = false;
            while (s.p < s.end) {
                uint64_t t2;
                if (rd_varint(&s, &t2) < 0)
                    goto bad;
                if (t2 == ((1 << 3) | 2)) {
                    struct rd m;
                    if (rd_lenfield(&s, &m) < 0 || d->n >= BKC_MAX_ENSEMBLE)
                        goto bad;
                    dseg_add_member(d, (const char *)m.p, (size_t)(m.end - m.p));
                } else if (t2 == ((2 << 3) | 0)) {
                    if (rd_varint(&s, &v) < 0)
                        goto bad;
                    d->first = (int64_t)v;
                    have_first = true;
                } else if (rd_skip(&s, (int)(t2 & 7)) < 0) {
                    goto bad;
                }
            }
            if (!have_first)
                goto bad;
        } else if (wt == 2 && field == 8) {
            struct rd s;
            if (rd_lenfield(&r, &s) < 0)
                goto bad;
            mg_free(md->password);
            md->password = dup_bytes(s.p, (size_t)(s.end - s.p));
            md->password_len = (size_t)(s.end - s.p);
            md->has_password = true;
        } else if (wt == 2 && field == 11) {
            struct rd s, k = {NULL, NULL}, val = {NULL, NULL};
            if (rd_lenfield(&r, &s) < 0)
                goto bad;
            while (s.p < s.end) {
                uint64_t t2;
                if (rd_varint(&s, &t2) < 0)
                    goto bad;
                if (t2 == ((1 << 3) | 2)) {
                    if (rd_lenfield(&s, &k) < 0)
                        goto bad;
                } else if (t2 == ((2 << 3) | 2)) {
                    if (rd_lenfield(&s, &val) < 0)
                        goto bad;
                } else if (rd_skip(&s, (int)(t2 & 7)) < 0) {
                    goto bad;
                }
            }
            md_add_custom(md, k.p ? (const char *)k.p : "", k.p ? (size_t)(k.end - k.p) : 0, val.p,
                          val.p ? (size_t)(val.end - val.p) : 0);
        } else if (rd_skip(&r, wt) < 0) {
            goto bad;
        }
    }
    if (md_finish(md, segs, n_segs, have_ack, have == 15) < 0)
        goto bad;
    dsegs_free(segs, n_segs);
    return 0;
bad:
    dsegs_free(segs, n_segs);
    return -1;
}

/* ---- text decoding (format v2) ---------------------------------------------------------- */

struct tx {
    const char *p, *end;
};

static void tx_ws(struct tx *t)
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

static int tx_ident(struct tx *t, char *out, size_t cap)
{
    tx_ws(t);
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

static bool tx_eat(struct tx *t, char c)
{
    tx_ws(t);
    if (t->p < t->end && *t->p == c) {
        t->p++;
        return true;
    }
    return false;
}

/* A quoted string with C escapes into a new buffer. */
static int tx_string(struct tx *t, uint8_t **out, size_t *len)
{
    tx_ws(t);
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

static int tx_int(struct tx *t, int64_t *v)
{
    char buf[32];
    if (tx_ident(t, buf, sizeof(buf)) < 0)
        return -1;
    char *e;
    long long x = strtoll(buf, &e, 10);
    if (*e)
        return -1;
    *v = x;
    return 0;
}

static int md_decode_text(const char *p, size_t len, struct bkc_md *md)
{
    struct tx t = {p, p + len};
    struct dseg *segs = NULL;
    int n_segs = 0, have = 0;
    bool have_ack = false;
    char name[64], val[64];
    md->last_entry = -1;
    for (;;) {
        tx_ws(&t);
        if (t.p >= t.end)
            break;
        if (tx_ident(&t, name, sizeof(name)) < 0)
            goto bad;
        int64_t v;
        if (!strcmp(name, "segment") || !strcmp(name, "customMetadata")) {
            tx_eat(&t, ':');
            if (!tx_eat(&t, '{'))
                goto bad;
            bool seg = !strcmp(name, "segment");
            struct dseg d = {0};
            uint8_t *k = NULL, *vb = NULL;
            size_t kl = 0, vl = 0;
            bool ok = true;
            while (ok && !tx_eat(&t, '}')) {
                char f[64];
                uint8_t *s;
                size_t sl;
                if (tx_ident(&t, f, sizeof(f)) < 0 || !tx_eat(&t, ':')) {
                    ok = false;
                } else if (seg && !strcmp(f, "ensembleMember") && d.n < BKC_MAX_ENSEMBLE &&
                           tx_string(&t, &s, &sl) == 0) {
                    dseg_add_member(&d, (const char *)s, sl);
                    mg_free(s);
                } else if (seg && !strcmp(f, "firstEntryId") && tx_int(&t, &v) == 0) {
                    d.first = v;
                } else if (!seg && !strcmp(f, "key") && !k && tx_string(&t, &k, &kl) == 0) {
                } else if (!seg && !strcmp(f, "value") && !vb && tx_string(&t, &vb, &vl) == 0) {
                } else {
                    ok = false;
                }
            }
            if (seg) {
                segs = mg_realloc(segs, sizeof(*segs) * (size_t)(n_segs + 1));
                segs[n_segs++] = d;
            } else {
                if (ok)
                    md_add_custom(md, k ? (const char *)k : "", kl, vb, vl);
                mg_free(k);
                mg_free(vb);
            }
            if (!ok)
                goto bad;
            continue;
        }
        if (!tx_eat(&t, ':'))
            goto bad;
        if (!strcmp(name, "password")) {
            uint8_t *s;
            size_t sl;
            if (tx_string(&t, &s, &sl) < 0)
                goto bad;
            mg_free(md->password);
            md->password = s;
            md->password_len = sl;
            md->has_password = true;
        } else if (!strcmp(name, "state") || !strcmp(name, "digestType")) {
            if (tx_ident(&t, val, sizeof(val)) < 0)
                goto bad;
            static const char *const states[] = {NULL, "OPEN", "IN_RECOVERY", "CLOSED"};
            static const char *const digests[] = {NULL, "CRC32", "HMAC", "CRC32C", "DUMMY"};
            bool st = !strcmp(name, "state");
            int found = 0;
            for (int i = 1; i < (st ? 4 : 5); i++)
                if (!strcmp(val, st ? states[i] : digests[i]))
                    found = i;
            if (!found)
                goto bad;
            if (st) {
                md->state = found;
                have |= 8;
            } else {
                md->digest = found;
            }
        } else {
            if (tx_int(&t, &v) < 0)
                goto bad;
            if (!strcmp(name, "quorumSize")) {
                md->write_quorum = (int)v;
                have |= 1;
            } else if (!strcmp(name, "ensembleSize")) {
                md->ensemble_size = (int)v;
                have |= 2;
            } else if (!strcmp(name, "length")) {
                md->length = v;
                have |= 4;
            } else if (!strcmp(name, "lastEntryId")) {
                md->last_entry = v;
            } else if (!strcmp(name, "ackQuorumSize")) {
                md->ack_quorum = (int)v;
                have_ack = true;
            } else if (!strcmp(name, "ctime")) {
                md->ctime = v;
                md->has_ctime = true;
            } else if (!strcmp(name, "cToken")) {
                md->ctoken = v;
                md->has_ctoken = true;
            } /* unknown scalar fields are ignored */
        }
    }
    if (md_finish(md, segs, n_segs, have_ack, have == 15) < 0)
        goto bad;
    dsegs_free(segs, n_segs);
    return 0;
bad:
    dsegs_free(segs, n_segs);
    return -1;
}

int bkc_md_decode(const void *buf, size_t len, struct bkc_md *md)
{
    memset(md, 0, sizeof(*md));
    const char *p = buf;
    size_t hl = strlen(MD_HDR);
    int rc = -1;
    if (len >= hl + 2 && !memcmp(p, MD_HDR, hl) && p[hl + 1] == '\n') {
        if (p[hl] == '3')
            rc = md_decode_v3((const uint8_t *)p + hl + 2, len - hl - 2, md);
        else if (p[hl] == '2')
            rc = md_decode_text(p + hl + 2, len - hl - 2, md);
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
