/*
 * tl_ml.h - the outcome of an ml_open, recorded by its callback (prefix tl_): for the Check
 * programs through tl_bk.h (tl_ml_open waits for it) and for the seeded simulation
 * (tests/sim/sim_bk), which is no Check program and runs its own loop.
 *
 * Header only and without Check, like tl_bk_ops.h.
 */
#ifndef MG_TL_ML_H
#define MG_TL_ML_H

#include "ml/ml.h"

#include <stdbool.h>

/* The outcome of an ml_open (data: points to it; callback tl_open_cb). */
struct tl_open {
    bool done;
    int calls; /* exactly 1 once done */
    struct ml_ledger *ml;
    int status;
};

static inline void tl_open_cb(struct ml_ledger *ml, int status, void *data)
{
    struct tl_open *r = data;
    r->done = true;
    r->calls++;
    r->ml = ml;
    r->status = status;
}

#endif
