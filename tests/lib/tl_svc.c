/*
 * tl_svc.c - the test library's brokers (tl_svc.h): configuration, metadata sessions and
 * services on the test's loop.
 *
 * Failure modes: a configuration key refused, a store that does not open or a service that
 * does not start fails the calling test with Check.
 */
#include "lib/tl_svc.h"

#include "meta/meta.h"
#include "ns/ns.h"
#include "svc/svc.h"
#include "util/err.h"
#include "util/log.h"
#include "util/loop.h"

#include <event2/event.h>
#include <string.h>

void tl_cfg_set(struct cfg *c, const char *key, const char *value)
{
    char err[256];
    ck_assert_msg(cfg_set(c, key, value, "test", err, sizeof err) == 0, "%s=%s: %s", key, value,
                  err);
}

void tl_svc_init(struct tl_svc *f)
{
    mg_log_set_level(MG_LOG_ERROR);
    memset(f, 0, sizeof *f);
    cfg_init(&f->cfg);
    tl_cfg_set(&f->cfg, "bindAddress", "127.0.0.1");
    tl_cfg_set(&f->cfg, "advertisedAddress", "127.0.0.1");
    tl_cfg_set(&f->cfg, "brokerServicePort", "0");
    tl_cfg_set(&f->cfg, "webServicePort", "0");
    tl_cfg_set(&f->cfg, "managedLedgerStore", "memory");
    f->base = event_base_new();
    ck_assert_ptr_nonnull(f->base);
    f->loop = mg_loop_new(f->base);
}

struct meta_store *tl_svc_meta(struct tl_svc *f, int i)
{
    ck_assert_int_lt(i, TL_MAX_BROKERS);
    ck_assert_ptr_null(f->meta[i]);
    struct meta_store *first = NULL;
    for (int k = 0; k < TL_MAX_BROKERS && !first; k++)
        first = f->meta[k];
    int rc;
    if (first) {
        rc = meta_open_peer(first, NULL, &f->meta[i]);
    } else {
        struct meta_options mo = {.url = "memory"};
        rc = meta_open(f->loop, &mo, &f->meta[i]);
    }
    ck_assert_msg(rc == 0, "metadata session %d: %s", i, mg_errname(rc));
    return f->meta[i];
}

static bool tl_svc_loaded(const void *arg)
{
    struct ns *s = svc_ns((struct svc *)arg);
    return ns_tenant_exists(s, "public") && ns_namespace_exists(s, "public/default");
}

struct svc *tl_svc_start(struct tl_svc *f, int i)
{
    ck_assert_int_lt(i, TL_MAX_BROKERS);
    ck_assert_ptr_null(f->svc[i]);
    f->svc[i] = svc_new(f->loop, &f->cfg, f->meta[i]);
    ck_assert_msg(f->svc[i] != NULL, "broker %d did not start", i);
    ck_assert_msg(tl_base_until(f->base, tl_svc_loaded, f->svc[i], TL_REAL_WAIT_MS),
                  "broker %d: resources not loaded", i);
    return f->svc[i];
}

void tl_svc_stop(struct tl_svc *f, int i)
{
    svc_free(f->svc[i]);
    f->svc[i] = NULL;
}

void tl_svc_fini(struct tl_svc *f)
{
    for (int i = TL_MAX_BROKERS - 1; i >= 0; i--)
        tl_svc_stop(f, i);
    for (int i = TL_MAX_BROKERS - 1; i >= 0; i--)
        if (f->meta[i])
            meta_close(f->meta[i]);
    if (f->loop)
        mg_loop_free(f->loop);
    if (f->base)
        event_base_free(f->base);
    cfg_fini(&f->cfg);
    memset(f, 0, sizeof *f);
}

/* ---- the brokers' callbacks ---------------------------------------------------------------- */

void tl_done_cb(void *data, int status)
{
    struct tl_done *d = data;
    d->called = true;
    d->calls++;
    d->status = status;
}

int tl_done_wait(struct tl_svc *f, struct tl_done *d)
{
    ck_assert_msg(tl_until_flag(f->loop, &d->called, TL_REAL_WAIT_MS), "callback never ran");
    ck_assert_int_eq(d->calls, 1);
    return d->status;
}

void tl_topic_loaded_cb(struct topic *t, int status, void *data)
{
    (void)t;
    ck_assert_msg(status == 0, "topic load: %s", mg_errname(status));
    (*(int *)data)++;
}
