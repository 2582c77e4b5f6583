/*
 * tl_bk_ops.h - one sub-request of each BookKeeper v3 operation besides ADD_ENTRY and
 * READ_ENTRY (the bookie answers all of them), for tests that write every such request: the
 * codec's unit suite (check_wire_bk) and the seed corpus of the bookie's request reader
 * (tests/fuzz/gen_corpus_bk).
 *
 * Header only and without Check, unlike the rest of tests/lib (prefix tl_): the corpus
 * generator is no Check program. The caller fills in the fields it wants; the request of an
 * operation points into the struct, which must outlive it.
 */
#ifndef MG_TL_BK_OPS_H
#define MG_TL_BK_OPS_H

#include "wire/wire_bk.h"

struct tl_bk_ops {
    Bookkeeper__Proto__ReadLacRequest read_lac;
    Bookkeeper__Proto__WriteLacRequest write_lac;
    Bookkeeper__Proto__GetBookieInfoRequest bookie_info;
    Bookkeeper__Proto__ForceLedgerRequest force_ledger;
    Bookkeeper__Proto__AuthMessage auth;
    Bookkeeper__Proto__StartTLSRequest start_tls;
};

/* Every sub-request empty (protobuf-c's initial values). */
static inline void tl_bk_ops_init(struct tl_bk_ops *o)
{
    bookkeeper__proto__read_lac_request__init(&o->read_lac);
    bookkeeper__proto__write_lac_request__init(&o->write_lac);
    bookkeeper__proto__get_bookie_info_request__init(&o->bookie_info);
    bookkeeper__proto__force_ledger_request__init(&o->force_ledger);
    bookkeeper__proto__auth_message__init(&o->auth);
    bookkeeper__proto__start_tlsrequest__init(&o->start_tls);
}

/* *r made a Request (no header yet) carrying o's sub-request of op, one of READ_LAC,
 * WRITE_LAC, GET_BOOKIE_INFO, FORCE_LEDGER, AUTH and START_TLS (another op: none). */
static inline void tl_bk_ops_request(struct tl_bk_ops *o, int op, Bookkeeper__Proto__Request *r)
{
#define TL_BK_OP(name) (op == BOOKKEEPER__PROTO__OPERATION_TYPE__##name)
    bookkeeper__proto__request__init(r);
    r->readlacrequest = TL_BK_OP(READ_LAC) ? &o->read_lac : NULL;
    r->writelacrequest = TL_BK_OP(WRITE_LAC) ? &o->write_lac : NULL;
    r->getbookieinforequest = TL_BK_OP(GET_BOOKIE_INFO) ? &o->bookie_info : NULL;
    r->forceledgerrequest = TL_BK_OP(FORCE_LEDGER) ? &o->force_ledger : NULL;
    r->authrequest = TL_BK_OP(AUTH) ? &o->auth : NULL;
    r->starttlsrequest = TL_BK_OP(START_TLS) ? &o->start_tls : NULL;
#undef TL_BK_OP
}

#endif
