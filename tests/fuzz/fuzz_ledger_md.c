/*
 * fuzz_ledger_md.c - libFuzzer targets for the ledger-metadata decoder (bkc_md_decode):
 * fuzz_ledger_md takes the input as a binary LedgerMetadataFormat and puts the format-v3
 * header and the varint length in front (an input starting with 0xff is instead taken, after
 * that byte, as the whole body with its own length, so that the length check gets fuzzed
 * too); fuzz_ledger_md_text (built with -DMD_TEXT) takes it as a format-v2 body (protobuf
 * text format) behind its header. The fuzzer thus spends its time on the message, not on
 * keeping a header and a length consistent.
 *
 * Promises checked for every input the decoder accepts: what it decoded is a ledger (quorums
 * and ensemble within bounds, segments of the ensemble's size in ascending order, a known
 * state), encoding it and decoding the result gives the same metadata, and encoding that
 * again gives the same bytes. Rejected input leaves an empty struct.
 * Failure modes: a broken promise aborts (a crash for libFuzzer); ASan/UBSan catch memory
 * errors and undefined behaviour; LeakSanitizer catches leaks.
 */
#define FUZZ_TARGET "fuzz_ledger_md"
#include "bkc/bkc_int.h"
#include "fuzz.h"
#include "util/alloc.h"
#include "util/err.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef MD_TEXT
#define MD_HEADER "BookieMetadataFormatVersion\t2\n"
#else
#define MD_HEADER "BookieMetadataFormatVersion\t3\n"
#endif

static int same_md(const struct bkc_md *a, const struct bkc_md *b)
{
    if (a->ensemble_size != b->ensemble_size || a->write_quorum != b->write_quorum ||
        a->ack_quorum != b->ack_quorum || a->length != b->length ||
        a->last_entry != b->last_entry || a->state != b->state || a->n_segs != b->n_segs ||
        a->digest != b->digest || a->has_password != b->has_password ||
        a->password_len != b->password_len || a->has_ctime != b->has_ctime ||
        a->ctime != b->ctime || a->n_custom != b->n_custom || a->has_ctoken != b->has_ctoken ||
        a->ctoken != b->ctoken)
        return 0;
    if (a->password_len && memcmp(a->password, b->password, a->password_len) != 0)
        return 0;
    for (int i = 0; i < a->n_segs; i++) {
        if (a->segs[i].first != b->segs[i].first)
            return 0;
        for (int j = 0; j < a->ensemble_size; j++)
            if (strcmp(a->segs[i].bookies[j], b->segs[i].bookies[j]) != 0)
                return 0;
    }
    for (int i = 0; i < a->n_custom; i++)
        if (strcmp(a->custom[i].key, b->custom[i].key) != 0 ||
            a->custom[i].len != b->custom[i].len ||
            (a->custom[i].len &&
             memcmp(a->custom[i].value, b->custom[i].value, a->custom[i].len) != 0))
            return 0;
    return 1;
}

/* The promises of accepted metadata's round trip: its encoding decodes to the same metadata,
 * and encoding that gives the same bytes. */
static void check_round_trip(const struct bkc_md *md)
{
    struct bkc_md again;
    uint8_t *enc, *enc2;
    size_t el, el2;
    bkc_md_encode(md, &enc, &el);
    check(bkc_md_decode(enc, el, &again) == 0, "re-encoded metadata decodes");
    check(same_md(md, &again), "metadata survives encode + decode");
    bkc_md_encode(&again, &enc2, &el2);
    check(el == el2 && memcmp(enc, enc2, el) == 0, "encoding is stable");
    mg_free(enc);
    mg_free(enc2);
    bkc_md_fini(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t hl = strlen(MD_HEADER);
    uint8_t *buf = malloc(hl + 10 + size + 1);
    memcpy(buf, MD_HEADER, hl);
#ifndef MD_TEXT
    if (size > 0 && data[0] == 0xff) {
        data++;
        size--;
    } else {
        hl += wire_bk_varint_put(buf + hl, size);
    }
#endif
    if (size)
        memcpy(buf + hl, data, size);
    struct bkc_md md;
    int rc = bkc_md_decode(buf, hl + size, &md);
    free(buf);
    if (rc < 0) {
        check(rc == -MG_EPROTO, "-MG_EPROTO on refusal");
        check(md.segs == NULL && md.custom == NULL && md.password == NULL, "refusal is empty");
        return 0;
    }
    check(md.ensemble_size >= 1 && md.ensemble_size <= BKC_MAX_ENSEMBLE, "ensemble size");
    check(md.write_quorum >= 1 && md.write_quorum <= md.ensemble_size, "write quorum");
    check(md.ack_quorum >= 1 && md.ack_quorum <= md.write_quorum, "ack quorum");
    check(md.state >= BKC_STATE_OPEN && md.state <= BKC_STATE_CLOSED, "state");
    check(md.state == BKC_STATE_CLOSED || md.last_entry == -1, "lastEntryId only when closed");
    check(md.n_segs >= 1, "a segment");
    for (int i = 1; i < md.n_segs; i++)
        check(md.segs[i].first >= md.segs[i - 1].first, "segments ascending");
    check_round_trip(&md);
    bkc_md_fini(&md);
    return 0;
}
