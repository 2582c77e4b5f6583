/*
 * ml_side.c - side ledgers: ledgers of a managed ledger's store that are not in its list.
 *
 * Pulsar writes a topic's compacted ledger with the managed ledger's BookKeeper client but
 * outside the managed ledger: its owner (the compactor) keeps the id (in a cursor property),
 * writes it once, seals it, reads it and deletes it when a newer one replaced it. These calls
 * give the topic layer exactly that over whichever store the factory runs ("memory" in tests,
 * "bookkeeper"): each is one store request, holding the ML until its callback. Trimming and
 * ml_delete never touch a side ledger; its owner deletes it.
 */
#include "ml/ml_int.h"
#include "util/alloc.h"
#include "util/err.h"

#include <event2/buffer.h>
#include <string.h>

static void ml_side_done(struct ml_store_req *sreq, int status)
{
    struct ml_side_req *req = sreq->data;
    struct ml_ledger *ml = req->ml;
    if (req->entry) {
        ml_entry_unref(req->entry);
        req->entry = NULL;
    }
    if (status == 0) {
        req->ledger_id = sreq->ledger_id;
        req->entries = sreq->entries;
        req->n = sreq->n;
    }
    mg_free(sreq);
    req->sreq = NULL;
    req->cb(req, status);
    ml_release(ml);
}

/* A fresh request on ml completing in cb; the ML is held until then. */
static int ml_side_begin(struct ml_ledger *ml, struct ml_side_req *req, int64_t ledger_id,
                         ml_side_cb cb)
{
    int rc = ml_usable(ml, req && cb);
    if (rc < 0)
        return rc;
    req->cb = cb;
    req->ml = ml;
    req->ledger_id = ledger_id;
    req->entries = NULL;
    req->n = 0;
    req->entry = NULL;
    req->sreq = mg_calloc(1, sizeof *req->sreq);
    *req->sreq = (struct ml_store_req){.data = req, .cb = ml_side_done, .ledger_id = ledger_id};
    ml_hold(ml);
    return 0;
}

/* The store's answer to a started request: < 0 means its callback will not run. */
static int ml_side_started(struct ml_side_req *req, int rc)
{
    if (rc < 0) {
        ml_entry_unref(req->entry);
        req->entry = NULL;
        mg_free(req->sreq);
        req->sreq = NULL;
        ml_release(req->ml);
    }
    return rc;
}

int ml_side_create(struct ml_ledger *ml, struct ml_side_req *req, ml_side_cb cb)
{
    int rc = ml_side_begin(ml, req, -1, cb);
    if (rc < 0)
        return rc;
    return ml_side_started(req, ml->f->lops->create_ledger(ml->f->limpl, ml, req->sreq));
}

int ml_side_add(struct ml_ledger *ml, int64_t ledger_id, int64_t entry_id, struct evbuffer *data,
                struct ml_side_req *req, ml_side_cb cb)
{
    int rc = ml_side_begin(ml, req, ledger_id, cb);
    if (rc < 0) {
        evbuffer_free(data);
        return rc;
    }
    req->entry = ml_entry_new(data, NULL);
    req->entry->pos = (struct ml_position){ledger_id, entry_id};
    req->sreq->entry = req->entry;
    return ml_side_started(req, ml->f->lops->add_entry(ml->f->limpl, ml, req->sreq));
}

int ml_side_close(struct ml_ledger *ml, int64_t ledger_id, struct ml_side_req *req, ml_side_cb cb)
{
    int rc = ml_side_begin(ml, req, ledger_id, cb);
    if (rc < 0)
        return rc;
    if (!ml->f->lops->close_ledger) { /* nothing to seal (memory) */
        ml_store_complete_later(ml->f, req->sreq, 0);
        return 0;
    }
    return ml_side_started(req, ml->f->lops->close_ledger(ml->f->limpl, ml, ledger_id, req->sreq));
}

int ml_side_read(struct ml_ledger *ml, int64_t ledger_id, int64_t first, int64_t last,
                 struct ml_side_req *req, ml_side_cb cb)
{
    int rc = ml_side_begin(ml, req, ledger_id, cb);
    if (rc < 0)
        return rc;
    if (first < 0 || last < first)
        return ml_side_started(req, -MG_EINVAL);
    req->sreq->first = first;
    req->sreq->last = last;
    return ml_side_started(req, ml->f->lops->read_range(ml->f->limpl, ml, req->sreq));
}

void ml_side_delete(struct ml_ledger *ml, int64_t ledger_id)
{
    if (ml && ledger_id >= 0)
        ml->f->lops->delete_ledger(ml->f->limpl, ml, ledger_id, NULL);
}
