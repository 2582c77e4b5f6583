/*
 * topic_compact.c - topic compaction, as Pulsar's TwoPhaseCompactor and CompactedTopicImpl.
 *
 * The compacted view of a topic is one side ledger (ml_side_*, written with the managed
 * ledger's store outside its ledger list) holding, in order, the latest message of every key up
 * to the horizon. Its id and the horizon live on the durable cursor TOPIC_COMPACT_CURSOR
 * ("__compaction"): property CompactedTopicLedger = the ledger, its mark-delete = the horizon
 * (Pulsar's layout), plus two properties of ours: CompactedTopicLedgerEntries (its entry count,
 * which Pulsar learns by opening the ledger) and CompactedTopicPreviousLedger (the view it
 * replaced, deleted by the next run). So the view survives restarts and moves.
 *
 * A run (topic_compact_start), in bounded slices (one read of at most COMPACT_BATCH entries per
 * loop turn):
 *   phase 1: read the previous view, then the topic from the horizon up to the last entry
 *            confirmed when the run started (the new horizon); per message key (partition_key,
 *            batches split per message) remember the id of its latest message; an empty payload
 *            deletes the key; messages without a key are dropped.
 *   phase 2: create a ledger and read the same again, appending every message still the latest
 *            of its key: an entry as it is, a batch rebuilt with only those messages. Each
 *            compacted entry is Pulsar's RawMessage: [int32 idLen][MessageIdData of the
 *            original position][int32 len][the stored entry bytes].
 *   switch:  seal the ledger, then record it and the horizon on the cursor (one mark-delete
 *            with properties). Until then the previous view stays as it was: a crash or an error
 *            in the middle leaves it intact (the half-written ledger is left over, as in
 *            Pulsar). The view before the previous one is deleted here: the previous one is
 *            kept for a run because a cursor write has no completion to wait for.
 *
 * Reads: a subscription with read_compacted whose read position is at or before the horizon
 * reads the view instead (topic_compact_read): the first compacted entry at or after the read
 * position (binary search, one single-entry read per step), up to the batch the dispatcher
 * asked for, entries handed out with their original positions; then the cursor's read
 * position moves past the last one (or past the horizon when the view is exhausted) and the
 * topic is read as usual.
 *
 * Compressed batches are decompressed (bounded by maxMessageSize), split per message like the
 * others, and a rebuilt batch is compressed again with its codec, as Pulsar's phase two does.
 * One that does not decompress (corrupt, or over the bound) is kept whole in topic order.
 *
 * Not done: topic-level compaction thresholds (no topic policies in this broker).
 */
#include "topic/topic_int.h"
#include "util/alloc.h"
#include "util/bytes.h"
#include "util/compress.h"
#include "util/crc.h"
#include "util/err.h"
#include "util/log.h"
#include "wire/wire.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define MOD "topic"
#define COMPACT_BATCH 100 /* entries per read of a run */
#define COMPACT_BATCH_BYTES (8u << 20)
#define COMPACT_PROP_LEDGER "CompactedTopicLedger" /* Pulsar's */
#define COMPACT_PROP_ENTRIES "CompactedTopicLedgerEntries"
#define COMPACT_PROP_PREVIOUS "CompactedTopicPreviousLedger"

static const char *const compact_status_names[] = {"NOT_RUN", "RUNNING", "SUCCESS", "ERROR"};

/* The latest message of a key: its original id (batch -1: not batched). */
struct compact_latest {
    struct ml_position pos;
    int32_t batch;
    char key[];
};

struct compact_job {
    struct topic *t; /* referenced */
    int phase;       /* 1, 2 */
    struct ml_position end;
    struct mg_map latest;     /* key -> struct compact_latest (owned) */
    int64_t src_view;         /* next entry of the previous view to read */
    struct ml_cursor *reader; /* non-durable, over the topic after the horizon */
    bool reader_done;
    struct ml_read_req rreq;
    struct ml_side_req sreq;
    int64_t out_ledger, out_n;
    struct evbuffer **outq; /* owned: compacted entries of the last read, to append in order */
    int outq_n, outq_head;
    struct ml_side_req *wreqs;       /* owned: the appends of one read's entries, all in flight */
    int w_inflight;                  /* appends not completed yet */
    int w_status;                    /* the first failure among them */
    int64_t kept_msgs, dropped_msgs; /* messages kept; entries that are not Pulsar messages */
    int64_t compressed_kept;         /* compressed batches kept whole (not decompressible) */
};

/* ---- entry bytes --------------------------------------------------------------------------- */

/* The stored entry's layout: where the metadata size field and the payload start. */
static int topic_compact_entry_layout(struct evbuffer *e, size_t *md_off, size_t *pl_off)
{
    size_t len = evbuffer_get_length(e), off = 0;
    uint8_t h[6];
    if (len >= 6 && evbuffer_copyout(e, h, 6) == 6 &&
        mg_get_be16(h) == WIRE_MAGIC_BROKER_ENTRY_METADATA)
        off += 6 + mg_get_be32(h + 2);
    if (off + 6 <= len) {
        struct evbuffer_ptr p;
        evbuffer_ptr_set(e, &p, off, EVBUFFER_PTR_SET);
        if (evbuffer_copyout_from(e, &p, h, 2) == 2 && mg_get_be16(h) == WIRE_MAGIC_CHECKSUM)
            off += 6;
    }
    if (off + 4 > len)
        return -MG_EPROTO;
    struct evbuffer_ptr p;
    evbuffer_ptr_set(e, &p, off, EVBUFFER_PTR_SET);
    evbuffer_copyout_from(e, &p, h, 4);
    uint32_t md_size = mg_get_be32(h);
    if (md_size > len - off - 4)
        return -MG_EPROTO;
    *md_off = off;
    *pl_off = off + 4 + md_size;
    return 0;
}

/* A stored entry made of md and payload (checksummed, as a producer's SEND carries it). */
static struct evbuffer *topic_compact_entry_build(const Pulsar__Proto__MessageMetadata *md,
                                                  const uint8_t *payload, size_t len)
{
    size_t md_size = protobuf_c_message_get_packed_size(&md->base);
    uint8_t *buf = mg_malloc(10 + md_size + len);
    mg_put_be16(buf, WIRE_MAGIC_CHECKSUM);
    mg_put_be32(buf + 6, (uint32_t)md_size);
    protobuf_c_message_pack(&md->base, buf + 10);
    if (len)
        memcpy(buf + 10 + md_size, payload, len);
    mg_put_be32(buf + 2, mg_crc32c(0, buf + 6, 4 + md_size + len));
    struct evbuffer *out = evbuffer_new();
    evbuffer_add(out, buf, 10 + md_size + len);
    mg_free(buf);
    return out;
}

/* Pulsar's RawMessage: [int32 idLen][MessageIdData][int32 len][entry]. */
static struct evbuffer *topic_compact_raw_build(struct ml_position pos, struct evbuffer *entry)
{
    Pulsar__Proto__MessageIdData id = PULSAR__PROTO__MESSAGE_ID_DATA__INIT;
    id.ledgerid = (uint64_t)pos.ledger;
    id.entryid = (uint64_t)pos.entry;
    size_t idlen = pulsar__proto__message_id_data__get_packed_size(&id);
    uint8_t head[64];
    MG_ASSERT(idlen + 8 <= sizeof head);
    mg_put_be32(head, (uint32_t)idlen);
    pulsar__proto__message_id_data__pack(&id, head + 4);
    mg_put_be32(head + 4 + idlen, (uint32_t)evbuffer_get_length(entry));
    struct evbuffer *out = evbuffer_new();
    evbuffer_add(out, head, idlen + 8);
    evbuffer_add_buffer(out, entry);
    return out;
}

/* Split a compacted entry: its original position and the stored entry (a new evbuffer). */
static int topic_compact_raw_parse(struct evbuffer *raw, struct ml_position *pos,
                                   struct evbuffer **entry)
{
    size_t len = evbuffer_get_length(raw);
    uint8_t h[4];
    if (len < 8 || evbuffer_copyout(raw, h, 4) != 4)
        return -MG_EPROTO;
    uint32_t idlen = mg_get_be32(h);
    if (idlen > 64 || idlen + 8 > len)
        return -MG_EPROTO;
    uint8_t buf[72];
    evbuffer_copyout(raw, buf, idlen + 8);
    Pulsar__Proto__MessageIdData *id = pulsar__proto__message_id_data__unpack(NULL, idlen, buf + 4);
    if (!id)
        return -MG_EPROTO;
    pos->ledger = (int64_t)id->ledgerid;
    pos->entry = (int64_t)id->entryid;
    pulsar__proto__message_id_data__free_unpacked(id, NULL);
    uint32_t elen = mg_get_be32(buf + 4 + idlen);
    if (elen != len - idlen - 8)
        return -MG_EPROTO;
    *entry = evbuffer_new();
    struct evbuffer_ptr p;
    evbuffer_ptr_set(raw, &p, idlen + 8, EVBUFFER_PTR_SET);
    uint8_t *copy = mg_malloc(elen ? elen : 1);
    evbuffer_copyout_from(raw, &p, copy, elen);
    evbuffer_add(*entry, copy, elen);
    mg_free(copy);
    return 0;
}

/* ---- what a run keeps ---------------------------------------------------------------------- */

/* Phase 1: a message (key, payload size, original id). */
static void topic_compact_note(struct compact_job *j, const char *key, size_t size,
                               struct ml_position pos, int32_t batch)
{
    if (!key)
        return; /* no key: dropped (Pulsar's phase two keeps only keyed messages) */
    struct compact_latest *l = mg_map_get_str(&j->latest, key);
    if (size == 0) { /* an empty payload deletes the key */
        if (l) {
            mg_map_del_str(&j->latest, key);
            mg_free(l);
        }
        return;
    }
    if (!l) {
        size_t n = strlen(key);
        l = mg_calloc(1, sizeof *l + n + 1);
        memcpy(l->key, key, n + 1);
        mg_map_put_str(&j->latest, l->key, l);
    }
    l->pos = pos;
    l->batch = batch;
}

static bool topic_compact_is_latest(struct compact_job *j, const char *key, size_t size,
                                    struct ml_position pos, int32_t batch)
{
    if (!key || size == 0)
        return false;
    const struct compact_latest *l = mg_map_get_str(&j->latest, key);
    return l && ml_pos_cmp(l->pos, pos) == 0 && l->batch == batch;
}

/* Phase 2: the stored entry e goes to the view as it is. */
static void topic_compact_keep_whole(struct compact_job *j, struct ml_position pos,
                                     struct evbuffer *e, int32_t msgs)
{
    size_t len = evbuffer_get_length(e);
    struct evbuffer *copy = evbuffer_new();
    uint8_t *b = mg_malloc(len ? len : 1);
    evbuffer_copyout(e, b, len);
    evbuffer_add(copy, b, len);
    mg_free(b);
    j->outq[j->outq_n++] = topic_compact_raw_build(pos, copy);
    evbuffer_free(copy);
    j->kept_msgs += msgs;
}

/* One stored entry at its original position: phase 1 notes its messages, phase 2 queues what
 * is kept. */
static void topic_compact_entry(struct compact_job *j, struct ml_position pos, struct evbuffer *e)
{
    Pulsar__Proto__MessageMetadata *md = wire_entry_metadata(e);
    size_t md_off, pl_off;
    if (!md || topic_compact_entry_layout(e, &md_off, &pl_off) < 0) {
        if (md)
            pulsar__proto__message_metadata__free_unpacked(md, NULL);
        j->dropped_msgs++;
        return; /* not a Pulsar message: nothing to keep */
    }
    size_t len = evbuffer_get_length(e);
    int codec = md->has_compression ? (int)md->compression : MG_CODEC_NONE;
    if (!md->has_num_messages_in_batch) {
        size_t size = md->has_uncompressed_size ? md->uncompressed_size : len - pl_off;
        if (j->phase == 1)
            topic_compact_note(j, md->partition_key, size, pos, -1);
        else if (topic_compact_is_latest(j, md->partition_key, size, pos, -1))
            topic_compact_keep_whole(j, pos, e, 1);
        pulsar__proto__message_metadata__free_unpacked(md, NULL);
        return;
    }
    /* A batch: each message by its own key; phase 2 rebuilds it with the kept ones (a
     * compressed batch is decompressed first and the rebuilt one compressed with its codec). */
    size_t plen = len - pl_off;
    uint8_t *p = mg_malloc(plen ? plen : 1);
    struct evbuffer_ptr ep;
    evbuffer_ptr_set(e, &ep, pl_off, EVBUFFER_PTR_SET);
    evbuffer_copyout_from(e, &ep, p, plen);
    if (codec != MG_CODEC_NONE) {
        uint8_t *raw = NULL;
        char why[160];
        size_t max = j->t->reg ? j->t->reg->cfg.max_message_size : WIRE_DEFAULT_MAX_MESSAGE_SIZE;
        if (mg_decompress(codec, p, plen, md->has_uncompressed_size ? md->uncompressed_size : 0,
                          max, &raw, why, sizeof why) < 0) {
            /* Its keys cannot be read: kept whole, in topic order, so a reader applying the
             * messages in order still ends with every key's latest value (nothing is lost). */
            if (j->phase == 2) {
                if (j->compressed_kept++ == 0)
                    MG_WARN(MOD, "%s: batch %" PRId64 ":%" PRId64 " kept whole: %s",
                            j->t->name.full, pos.ledger, pos.entry, why);
                topic_compact_keep_whole(j, pos, e, md->num_messages_in_batch);
            }
            mg_free(p);
            pulsar__proto__message_metadata__free_unpacked(md, NULL);
            return;
        }
        mg_free(p);
        p = raw;
        plen = md->uncompressed_size;
    }
    uint8_t *out = j->phase == 2 ? mg_malloc(plen ? plen : 1) : NULL;
    size_t off = 0, olen = 0;
    int32_t idx = 0, kept = 0;
    while (off + 4 <= plen && idx < md->num_messages_in_batch) {
        size_t start = off;
        uint32_t sz = mg_get_be32(p + off);
        if (sz > plen - off - 4)
            break;
        Pulsar__Proto__SingleMessageMetadata *smm =
            pulsar__proto__single_message_metadata__unpack(NULL, sz, p + off + 4);
        if (!smm)
            break;
        size_t body = off + 4 + sz;
        if (smm->payload_size < 0 || (size_t)smm->payload_size > plen - body) {
            pulsar__proto__single_message_metadata__free_unpacked(smm, NULL);
            break;
        }
        off = body + (size_t)smm->payload_size;
        size_t size = smm->compacted_out ? 0 : (size_t)smm->payload_size;
        if (j->phase == 1) {
            topic_compact_note(j, smm->partition_key, size, pos, idx);
        } else if (topic_compact_is_latest(j, smm->partition_key, size, pos, idx)) {
            memcpy(out + olen, p + start, off - start);
            olen += off - start;
            kept++;
        }
        pulsar__proto__single_message_metadata__free_unpacked(smm, NULL);
        idx++;
    }
    if (j->phase == 2 && kept > 0) {
        md->num_messages_in_batch = kept;
        if (md->has_uncompressed_size || codec != MG_CODEC_NONE) {
            md->has_uncompressed_size = 1;
            md->uncompressed_size = (uint32_t)olen;
        }
        uint8_t *packed = NULL;
        size_t packed_n = 0;
        if (codec != MG_CODEC_NONE) { /* the same codec: its bound fits a kept subset */
            int rc = mg_compress(codec, out, olen, &packed, &packed_n);
            MG_ASSERT(rc == 0);
        }
        struct evbuffer *rebuilt =
            topic_compact_entry_build(md, packed ? packed : out, packed ? packed_n : olen);
        mg_free(packed);
        j->outq[j->outq_n++] = topic_compact_raw_build(pos, rebuilt);
        evbuffer_free(rebuilt);
        j->kept_msgs += kept;
    }
    mg_free(out);
    mg_free(p);
    pulsar__proto__message_metadata__free_unpacked(md, NULL);
}

/* ---- a run --------------------------------------------------------------------------------- */

static void topic_compact_step(struct compact_job *j);
static void topic_compact_write_next(struct compact_job *j);

static void topic_compact_job_free(struct compact_job *j)
{
    mg_map_fini_free(&j->latest, mg_free);
    for (int i = j->outq_head; i < j->outq_n; i++)
        evbuffer_free(j->outq[i]);
    mg_free(j->outq);
    mg_free(j->wreqs);
    if (j->reader)
        ml_cursor_close(j->reader);
    mg_free(j);
}

/* The run ends (status < 0: ERROR with why; the view stays as it was). */
static void topic_compact_end(struct compact_job *j, int status, const char *why)
{
    struct topic *t = j->t;
    struct topic_compact *tc = &t->compact;
    if (tc->job == j)
        tc->job = NULL;
    mg_free(tc->last_error);
    tc->last_error = NULL;
    if (status < 0) {
        tc->status = TOPIC_COMPACT_ERROR;
        tc->last_error = mg_asprintf("%s: %s", why, mg_strerror(status));
        MG_WARN(MOD, "%s: compaction failed: %s", t->name.full, tc->last_error);
    } else {
        tc->status = TOPIC_COMPACT_SUCCESS;
    }
    topic_compact_job_free(j);
    topic_unref(t);
}

/* A step of the run completed: false when the run ended here (the topic closed meanwhile, or
 * status < 0: ERROR because of why); j is gone then. */
static bool topic_compact_step_ok(struct compact_job *j, int status, const char *why)
{
    if (j->t->state != TOPIC_READY || j->t->compact.job != j) {
        topic_compact_end(j, -MG_ECANCELED, "the topic closed");
        return false;
    }
    if (status < 0) {
        topic_compact_end(j, status, why);
        return false;
    }
    return true;
}

static void topic_compact_switched(struct compact_job *j)
{
    struct topic *t = j->t;
    struct topic_compact *tc = &t->compact;
    if (tc->prev_ledger >= 0)
        ml_side_delete(t->ml, tc->prev_ledger);
    tc->prev_ledger = tc->ledger;
    tc->ledger = j->out_ledger;
    tc->entries = j->out_n;
    tc->horizon = j->end;
    struct ml_cursor_prop props[3] = {
        {COMPACT_PROP_LEDGER, tc->ledger},
        {COMPACT_PROP_ENTRIES, tc->entries},
        {COMPACT_PROP_PREVIOUS, tc->prev_ledger},
    };
    ml_cursor_mark_delete_props(tc->cursor, tc->horizon, props, 3);
    MG_INFO(MOD,
            "%s: compacted up to %" PRId64 ":%" PRId64 " into ledger %" PRId64 " (%" PRId64
            " entries, %" PRId64 " messages kept, %" PRId64
            " compressed batches kept whole, %" PRId64 " entries not Pulsar messages dropped)",
            t->name.full, tc->horizon.ledger, tc->horizon.entry, tc->ledger, tc->entries,
            j->kept_msgs, j->compressed_kept, j->dropped_msgs);
    topic_compact_end(j, 0, NULL);
}

static void topic_compact_closed_cb(struct ml_side_req *req, int status)
{
    struct compact_job *j = req->data;
    if (topic_compact_step_ok(j, status, "sealing the compacted ledger"))
        topic_compact_switched(j);
}

static void topic_compact_created_cb(struct ml_side_req *req, int status)
{
    struct compact_job *j = req->data;
    if (status == 0)
        j->out_ledger = req->ledger_id;
    /* the topic closed meanwhile: an empty ledger is left over, as after a crash */
    if (topic_compact_step_ok(j, status, "creating the compacted ledger"))
        topic_compact_step(j);
}

/* A reader of the topic from the entry after the view's horizon (the start without a view). */
static int topic_compact_open_reader(struct compact_job *j)
{
    struct topic *t = j->t;
    struct ml_position start =
        t->compact.ledger >= 0 ? ml_next_position(t->ml, t->compact.horizon) : ML_POS_EARLIEST;
    int err = 0;
    j->reader = ml_cursor_open(t->ml, TOPIC_COMPACT_CURSOR "-reader", false, start, &err);
    return j->reader ? 0 : err ? err : -MG_EIO;
}

/* The sources are read: phase 1 -> create the ledger and read again; phase 2 -> seal. */
static void topic_compact_phase_end(struct compact_job *j)
{
    struct topic *t = j->t;
    if (j->reader)
        ml_cursor_close(j->reader);
    j->reader = NULL;
    j->src_view = 0;
    j->reader_done = false;
    memset(&j->sreq, 0, sizeof j->sreq);
    j->sreq.data = j;
    int rc;
    if (j->phase == 1) {
        j->phase = 2;
        rc = topic_compact_open_reader(j);
        if (rc < 0) {
            topic_compact_end(j, rc, "reading the topic");
            return;
        }
        rc = ml_side_create(t->ml, &j->sreq, topic_compact_created_cb);
        if (rc < 0)
            topic_compact_end(j, rc, "creating the compacted ledger");
        return;
    }
    rc = ml_side_close(t->ml, j->out_ledger, &j->sreq, topic_compact_closed_cb);
    if (rc < 0)
        topic_compact_end(j, rc, "sealing the compacted ledger");
}

/* The appends of one read are all back (in order): read on, or end with the first failure. */
static void topic_compact_written(struct compact_job *j)
{
    if (topic_compact_step_ok(j, j->w_status, "writing the compacted ledger"))
        topic_compact_step(j);
}

static void topic_compact_written_cb(struct ml_side_req *req, int status)
{
    struct compact_job *j = req->data;
    if (status < 0 && j->w_status == 0)
        j->w_status = status;
    else if (status == 0)
        j->out_n++; /* appends complete in order: the ledger holds 0 .. out_n - 1 */
    if (--j->w_inflight == 0)
        topic_compact_written(j);
}

/* Append the queued compacted entries of one read, all at once (pipelined, as the managed
 * ledger's appends: ids out_n, out_n + 1, ...), then read on once they are all back. */
static void topic_compact_write_next(struct compact_job *j)
{
    int n = j->outq_n - j->outq_head;
    j->w_status = 0;
    if (n > 0)
        j->wreqs = mg_realloc(j->wreqs, (size_t)n * sizeof *j->wreqs);
    for (int i = 0; i < n && j->w_status == 0; i++) {
        struct evbuffer *b = j->outq[j->outq_head];
        j->outq[j->outq_head++] = NULL;
        struct ml_side_req *w = &j->wreqs[i];
        memset(w, 0, sizeof *w);
        w->data = j;
        int rc = ml_side_add(j->t->ml, j->out_ledger, j->out_n + i, b, w, topic_compact_written_cb);
        if (rc < 0)
            j->w_status = rc; /* what is queued behind it is not sent (freed with j) */
        else
            j->w_inflight++;
    }
    if (j->w_inflight == 0) {
        j->outq_head = j->outq_n = 0;
        topic_compact_written(j);
    }
}

/* Entries read: handle them, then write what phase 2 kept (or read on). */
static void topic_compact_handle(struct compact_job *j, struct ml_entry **es, int n, bool from_view)
{
    for (int i = j->outq_head; i < j->outq_n; i++) /* left by a failed batch: none here */
        evbuffer_free(j->outq[i]);
    j->outq = mg_realloc(j->outq, (size_t)(n > 0 ? n : 1) * sizeof *j->outq);
    j->outq_n = j->outq_head = 0;
    for (int i = 0; i < n; i++) {
        struct ml_entry *e = es[i];
        if (from_view) {
            struct ml_position pos;
            struct evbuffer *inner;
            if (topic_compact_raw_parse(e->data, &pos, &inner) == 0) {
                topic_compact_entry(j, pos, inner);
                evbuffer_free(inner);
            } else {
                j->dropped_msgs++;
            }
        } else if (ml_pos_cmp(e->pos, j->end) <= 0) {
            topic_compact_entry(j, e->pos, e->data);
        } else {
            j->reader_done = true; /* past the horizon of this run */
        }
        ml_entry_unref(e);
    }
    mg_free(es);
}

static void topic_compact_entries_free(struct ml_entry **es, int n)
{
    for (int i = 0; i < n; i++)
        ml_entry_unref(es[i]);
    mg_free(es);
}

/* A read of a run completed: its entries are handled (from_view: the previous view's
 * compacted entries), then what phase 2 kept is written; req belonged to j. */
static void topic_compact_read_done(struct compact_job *j, struct ml_entry **entries, int n,
                                    int status, bool from_view)
{
    if (!topic_compact_step_ok(j, status,
                               from_view ? "reading the compacted ledger" : "reading the topic")) {
        if (status == 0) /* the topic closed; the request was j's: gone too */
            topic_compact_entries_free(entries, n);
        return;
    }
    if (from_view)
        j->src_view = n > 0 ? j->src_view + n : j->t->compact.entries; /* none: nothing more */
    topic_compact_handle(j, entries, n, from_view);
    topic_compact_write_next(j);
}

static void topic_compact_view_read_cb(struct ml_side_req *req, int status)
{
    topic_compact_read_done(req->data, req->entries, req->n, status, true);
}

static void topic_compact_topic_read_cb(struct ml_read_req *req, int status)
{
    topic_compact_read_done(req->data, req->entries, req->n, status, false);
}

/* Read the next slice of the current phase's sources (the previous view, then the topic up to
 * the run's end), or end the phase. */
static void topic_compact_step(struct compact_job *j)
{
    struct topic *t = j->t;
    struct topic_compact *tc = &t->compact;
    int rc;
    if (tc->ledger >= 0 && j->src_view < tc->entries) {
        int64_t last = j->src_view + COMPACT_BATCH - 1;
        if (last >= tc->entries)
            last = tc->entries - 1;
        memset(&j->sreq, 0, sizeof j->sreq);
        j->sreq.data = j;
        rc = ml_side_read(t->ml, tc->ledger, j->src_view, last, &j->sreq,
                          topic_compact_view_read_cb);
        if (rc < 0)
            topic_compact_end(j, rc, "reading the compacted ledger");
        return;
    }
    if (!j->reader_done && ml_pos_cmp(ml_cursor_read_position(j->reader), j->end) <= 0 &&
        ml_cursor_has_more(j->reader)) {
        memset(&j->rreq, 0, sizeof j->rreq);
        j->rreq.data = j;
        rc = ml_cursor_read(j->reader, COMPACT_BATCH, COMPACT_BATCH_BYTES, &j->rreq,
                            topic_compact_topic_read_cb);
        if (rc < 0)
            topic_compact_end(j, rc, "reading the topic");
        return;
    }
    topic_compact_phase_end(j);
}

int topic_compact_start(struct topic *t)
{
    struct topic_compact *tc = &t->compact;
    if (t->state != TOPIC_READY || !t->ml)
        return -MG_ECLOSED;
    if (!t->name.persistent)
        return -MG_ENOTALLOWED;
    if (tc->job)
        return -MG_EBUSY;
    if (!tc->cursor) {
        int err = 0;
        tc->cursor = ml_cursor_open(t->ml, TOPIC_COMPACT_CURSOR, true, ML_POS_EARLIEST, &err);
        if (!tc->cursor)
            return err ? err : -MG_EIO;
    }
    struct compact_job *j = mg_calloc(1, sizeof *j);
    j->t = t;
    topic_ref(t);
    mg_map_init(&j->latest);
    j->phase = 1;
    j->end = ml_last_confirmed(t->ml);
    j->out_ledger = -1;
    int rc = topic_compact_open_reader(j);
    if (rc < 0) {
        topic_compact_job_free(j);
        topic_unref(t);
        return rc;
    }
    tc->job = j;
    tc->status = TOPIC_COMPACT_RUNNING;
    /* the view before the previous one: recorded as replaced for a whole run by now */
    if (tc->prev_ledger >= 0) {
        ml_side_delete(t->ml, tc->prev_ledger);
        tc->prev_ledger = -1;
    }
    MG_INFO(MOD, "%s: compaction up to %" PRId64 ":%" PRId64 " started", t->name.full,
            j->end.ledger, j->end.entry);
    topic_compact_step(j);
    return 0;
}

/* ---- the topic's life ---------------------------------------------------------------------- */

void topic_compact_init(struct topic *t)
{
    t->compact.threshold = -1;
    t->compact.ledger = -1;
    t->compact.prev_ledger = -1;
    t->compact.horizon = ML_POS_EARLIEST;
}

void topic_compact_load(struct topic *t)
{
    struct topic_compact *tc = &t->compact;
    if (!ml_cursor_exists(t->ml, TOPIC_COMPACT_CURSOR))
        return;
    tc->cursor = ml_cursor_open(t->ml, TOPIC_COMPACT_CURSOR, true, ML_POS_EARLIEST, NULL);
    if (!tc->cursor)
        return;
    const struct ml_cursor_prop *props;
    int n = ml_cursor_props(tc->cursor, &props);
    for (int i = 0; i < n; i++) {
        if (strcmp(props[i].name, COMPACT_PROP_LEDGER) == 0)
            tc->ledger = props[i].value;
        else if (strcmp(props[i].name, COMPACT_PROP_ENTRIES) == 0)
            tc->entries = props[i].value;
        else if (strcmp(props[i].name, COMPACT_PROP_PREVIOUS) == 0)
            tc->prev_ledger = props[i].value;
    }
    tc->horizon = ml_cursor_mark_delete(tc->cursor);
    if (tc->ledger >= 0)
        tc->status = TOPIC_COMPACT_NOT_RUN;
}

void topic_compact_close(struct topic *t, bool delete)
{
    struct topic_compact *tc = &t->compact;
    if (delete &&t->ml) {
        ml_side_delete(t->ml, tc->ledger);
        ml_side_delete(t->ml, tc->prev_ledger);
    }
    if (tc->cursor) {
        if (delete)
            ml_cursor_delete(tc->cursor);
        else
            ml_cursor_close(tc->cursor);
    }
    tc->cursor = NULL;
    /* A run in progress ends at its next completion (the topic is closed by now); its reader
     * goes with the ML: closing it may complete (and free) the run at once. */
    struct compact_job *j = tc->job;
    if (j) {
        tc->job = NULL;
        struct ml_cursor *reader = j->reader;
        j->reader = NULL;
        if (reader)
            ml_cursor_close(reader);
    }
}

void topic_compact_fini(struct topic *t)
{
    mg_free(t->compact.last_error);
    t->compact.last_error = NULL;
}

const char *topic_compact_status(const struct topic *t, const char **last_error)
{
    if (last_error)
        *last_error = t->compact.last_error ? t->compact.last_error : "";
    return compact_status_names[t->compact.status];
}

bool topic_compact_trimmed(const struct topic_sub *s, struct ml_position pos)
{
    struct topic *t = s->topic;
    return s->read_compacted && t->ml && ml_pos_cmp(pos, ml_first_position(t->ml)) < 0;
}

bool topic_cursor_reserved(const char *name)
{
    return strcmp(name, TOPIC_DEDUP_CURSOR) == 0 || strcmp(name, TOPIC_COMPACT_CURSOR) == 0;
}

/* ---- compacted reads ----------------------------------------------------------------------- */

struct compact_read {
    struct topic_sub *const *alive; /* the dispatcher's read's subscription: NULL once gone */
    struct topic *t;                /* referenced */
    uint64_t epoch;
    struct ml_position target; /* the read position */
    int64_t ledger, lo, hi;    /* binary search over [lo, hi) of the view */
    int max;
    struct ml_read_req *out; /* the dispatcher's request */
    ml_read_cb cb;
    struct ml_side_req req;
    bool searching;
};

static void topic_compact_read_go(struct compact_read *r);

static void topic_compact_read_finish(struct compact_read *r, int status)
{
    struct ml_read_req *out = r->out;
    ml_read_cb cb = r->cb;
    topic_unref(r->t);
    mg_free(r);
    cb(out, status);
}

/* The view's entries as the topic's: original positions, the stored bytes. */
static int topic_compact_read_entries(struct compact_read *r, struct ml_entry **es, int n,
                                      struct ml_entry ***out, int *n_out)
{
    struct ml_entry **v = mg_malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    int k = 0;
    for (int i = 0; i < n; i++) {
        struct ml_position pos;
        struct evbuffer *inner;
        if (topic_compact_raw_parse(es[i]->data, &pos, &inner) == 0) {
            if (ml_pos_cmp(pos, r->target) >= 0) {
                struct ml_entry_info info;
                bool known = topic_entry_info(inner, &info) == 0;
                v[k] = ml_entry_new(inner, known ? &info : NULL);
                v[k++]->pos = pos;
            } else {
                evbuffer_free(inner);
            }
        }
        ml_entry_unref(es[i]);
    }
    mg_free(es);
    *out = v;
    *n_out = k;
    return 0;
}

static void topic_compact_read_cb(struct ml_side_req *req, int status)
{
    struct compact_read *r = req->data;
    struct topic_sub *s = *r->alive;
    bool live = s && r->t->state == TOPIC_READY && r->t->compact.ledger == r->ledger &&
                s->epoch == r->epoch && !s->dead;
    if (status < 0 || !live) {
        if (status == 0) {
            for (int i = 0; i < req->n; i++)
                ml_entry_unref(req->entries[i]);
            mg_free(req->entries);
        }
        topic_compact_read_finish(r, status < 0 ? status : -MG_ECANCELED);
        return;
    }
    if (r->searching) {
        struct ml_position pos = {-1, -1};
        struct evbuffer *inner = NULL;
        if (req->n == 1 && topic_compact_raw_parse(req->entries[0]->data, &pos, &inner) == 0)
            evbuffer_free(inner);
        for (int i = 0; i < req->n; i++)
            ml_entry_unref(req->entries[i]);
        mg_free(req->entries);
        int64_t mid = r->lo + (r->hi - r->lo) / 2;
        if (ml_pos_cmp(pos, r->target) < 0)
            r->lo = mid + 1;
        else
            r->hi = mid;
        topic_compact_read_go(r);
        return;
    }
    struct ml_entry **v;
    int n;
    topic_compact_read_entries(r, req->entries, req->n, &v, &n);
    struct ml_cursor *c = s->cursor;
    if (n > 0)
        ml_cursor_seek_read(c, ml_next_position(r->t->ml, v[n - 1]->pos));
    r->out->entries = v;
    r->out->n = n;
    if (n == 0) {
        mg_free(v);
        r->out->entries = NULL;
        ml_cursor_seek_read(c, ml_next_position(r->t->ml, r->t->compact.horizon));
    }
    topic_compact_read_finish(r, 0);
}

static void topic_compact_read_go(struct compact_read *r)
{
    struct topic *t = r->t;
    int64_t first, last;
    if (r->lo < r->hi) {
        r->searching = true;
        first = last = r->lo + (r->hi - r->lo) / 2;
    } else if (r->lo >= t->compact.entries) {
        /* nothing at or after the read position in the view: the topic after the horizon */
        ml_cursor_seek_read((*r->alive)->cursor, ml_next_position(t->ml, t->compact.horizon));
        r->out->entries = NULL;
        r->out->n = 0;
        topic_compact_read_finish(r, 0);
        return;
    } else {
        r->searching = false;
        first = r->lo;
        last = r->lo + r->max - 1;
        if (last >= t->compact.entries)
            last = t->compact.entries - 1;
    }
    memset(&r->req, 0, sizeof r->req);
    r->req.data = r;
    int rc = ml_side_read(t->ml, r->ledger, first, last, &r->req, topic_compact_read_cb);
    if (rc < 0)
        topic_compact_read_finish(r, rc); /* from the loop: the caller returned long ago */
}

bool topic_compact_read(struct topic_sub *s, struct topic_sub *const *alive, int max,
                        struct ml_read_req *out, ml_read_cb cb)
{
    struct topic *t = s->topic;
    struct topic_compact *tc = &t->compact;
    bool from_start = s->compact_from_start;
    s->compact_from_start = false;
    if (!s->read_compacted || tc->ledger < 0 || !t->ml)
        return false;
    struct ml_position rp = ml_cursor_read_position(s->cursor);
    if (ml_pos_cmp(rp, tc->horizon) > 0 && !from_start)
        return false;
    struct compact_read *r = mg_calloc(1, sizeof *r);
    r->alive = alive;
    r->t = t;
    topic_ref(t);
    r->epoch = s->epoch;
    r->target = rp;
    r->ledger = tc->ledger;
    r->lo = 0;
    r->hi = tc->entries;
    if (from_start) {
        /* a consumer's first read, nothing acknowledged yet: the view from its start, also
         * when retention trimmed what it covers from the topic (Pulsar's readFromEarliest) */
        r->target = ML_POS_EARLIEST;
        r->hi = 0;
    }
    r->max = max > 0 ? max : 1;
    r->out = out;
    r->cb = cb;
    out->entries = NULL;
    out->n = 0;
    /* the first step goes through the loop, so cb never runs inside this call */
    memset(&r->req, 0, sizeof r->req);
    r->req.data = r;
    r->searching = r->lo < r->hi;
    int64_t first = r->searching ? r->lo + (r->hi - r->lo) / 2 : 0;
    int64_t last = r->searching ? first : (r->max < tc->entries ? r->max : tc->entries) - 1;
    if (tc->entries == 0) { /* an empty view: past the horizon at once */
        ml_cursor_seek_read(s->cursor, ml_next_position(t->ml, tc->horizon));
        topic_unref(t);
        mg_free(r);
        return false;
    }
    int rc = ml_side_read(t->ml, r->ledger, first, last, &r->req, topic_compact_read_cb);
    if (rc < 0) {
        topic_unref(t);
        mg_free(r);
        return false;
    }
    return true;
}

int64_t topic_compact_backlog_bytes(struct topic *t)
{
    if (t->state != TOPIC_READY || !t->ml)
        return 0;
    struct ml_stats st;
    ml_get_stats(t->ml, &st);
    if (st.number_of_entries <= 0)
        return 0;
    if (!t->compact.cursor)
        return st.total_size; /* never run: the whole topic */
    /* entries not compacted times the average entry size, as the stats' backlogSize */
    return ml_cursor_backlog(t->compact.cursor) * (st.total_size / st.number_of_entries);
}

void topic_set_compaction_threshold(struct topic *t, int64_t bytes)
{
    t->compact.threshold = bytes < 0 ? -1 : bytes;
}

void topic_compact_check(struct topic *t)
{
    int64_t threshold = t->compact.threshold >= 0 ? t->compact.threshold
                        : t->reg                  ? t->reg->cfg.compaction_threshold_bytes
                                                  : 0;
    if (threshold <= 0 || t->compact.job || !t->name.persistent || t->state != TOPIC_READY)
        return;
    int64_t backlog = topic_compact_backlog_bytes(t);
    if (backlog < threshold)
        return;
    int rc = topic_compact_start(t);
    if (rc < 0)
        MG_WARN(MOD,
                "%s: automatic compaction (%" PRId64 " bytes over the threshold of %" PRId64
                "): %s",
                t->name.full, backlog, threshold, mg_strerror(rc));
}

/* ---- the last message id of a compacted reader -------------------------------------------- */

struct compact_lastid {
    struct topic *t; /* referenced */
    topic_last_id_cb cb;
    void *data;
    struct ml_position mark_delete;
    struct ml_side_req req;
};

static void topic_compact_lastid_cb(struct ml_side_req *req, int status)
{
    struct compact_lastid *op = req->data;
    struct ml_position pos = {-1, -1};
    int32_t batch_index = -1;
    struct evbuffer *inner = NULL;
    if (status == 0 &&
        (req->n != 1 || topic_compact_raw_parse(req->entries[0]->data, &pos, &inner) < 0))
        status = -MG_EPROTO;
    if (inner) {
        struct wire_msg_info info;
        if (wire_entry_parse(inner, &info) == 0 && info.batched)
            batch_index = info.num_messages - 1;
        evbuffer_free(inner);
    }
    if (req->entries)
        topic_compact_entries_free(req->entries, req->n);
    topic_last_id_cb cb = op->cb;
    void *data = op->data;
    struct ml_position md = op->mark_delete;
    topic_unref(op->t);
    mg_free(op);
    cb(data, status, pos, batch_index, md);
}

bool topic_compact_last_id(struct topic_sub *s, struct ml_position *last, struct ml_position md,
                           topic_last_id_cb cb, void *data)
{
    struct topic *t = s->topic;
    struct topic_compact *tc = &t->compact;
    if (!s->read_compacted || tc->ledger < 0 || !t->ml ||
        (last->entry >= 0 && ml_pos_cmp(*last, tc->horizon) > 0))
        return false;
    if (tc->entries == 0) {
        *last = (struct ml_position){-1, -1}; /* nothing to read (Pulsar's answer) */
        return false;
    }
    struct compact_lastid *op = mg_calloc(1, sizeof *op);
    op->t = t;
    op->cb = cb;
    op->data = data;
    op->mark_delete = md;
    op->req.data = op;
    topic_ref(t);
    if (ml_side_read(t->ml, tc->ledger, tc->entries - 1, tc->entries - 1, &op->req,
                     topic_compact_lastid_cb) < 0) {
        topic_unref(t);
        mg_free(op);
        return false; /* the topic's own last position, then */
    }
    return true;
}
