/*
 * tl_svc.c - the test library's brokers (tl_svc.h): configuration, metadata sessions,
 * services and brokers made of their parts on the test's loop.
 *
 * Failure modes: a configuration key refused, a store that does not open or a broker that
 * does not start fails the calling test with Check.
 */
#include "lib/tl_svc.h"
#include "auth/auth.h"

#include "lib/tl_pulsar.h"
#include "meta/meta.h"
#include "ml/ml.h"
#include "ns/ns.h"
#include "svc/svc.h"
#include "topic/topic.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/http.h"
#include "util/log.h"
#include "util/loop.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/keyvalq_struct.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

void tl_cfg_set(struct cfg *c, const char *key, const char *value)
{
    char err[256];
    ck_assert_msg(cfg_set(c, key, value, "test", err, sizeof err) == 0, "%s=%s: %s", key, value,
                  err);
}

void tl_cfg_tmp_init(struct cfg *c, char **dir, const char *name)
{
    cfg_init(c);
    *dir = tl_tmpdir(name);
}

void tl_cfg_tmp_fini(struct cfg *c, char **dir)
{
    cfg_fini(c);
    tl_tmpdir_free(dir);
}

void tl_cfg_token_auth(struct cfg *c, unsigned char **secret, size_t *secret_len)
{
    ck_assert_int_eq(auth_secret_key_new("HS256", secret, secret_len), 0);
    char *b = mg_malloc((*secret_len + 2) / 3 * 4 + 1);
    EVP_EncodeBlock((unsigned char *)b, *secret, (int)*secret_len);
    char *url = mg_asprintf("data:;base64,%s", b);
    tl_cfg_set(c, "authenticationEnabled", "true");
    tl_cfg_set(c, "authenticationProviders", AUTH_PROVIDER_TOKEN);
    tl_cfg_set(c, "tokenSecretKey", url);
    mg_free(url);
    mg_free(b);
}

/* The configuration and a base; the loop is the caller's to make. */
static void tl_svc_init_base(struct tl_svc *f)
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
}

void tl_svc_init(struct tl_svc *f)
{
    tl_svc_init_base(f);
    f->loop = mg_loop_new(f->base);
}

void tl_svc_init_sim(struct tl_svc *f)
{
    tl_svc_init_base(f);
    f->loop = mg_loop_new_sim(f->base, 1000000, 1700000000000);
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

/* A namespace module that knows the cluster's default tenant and namespace. */
static bool tl_ns_loaded(const void *arg)
{
    struct ns *s = (struct ns *)arg;
    return ns_tenant_exists(s, "public") && ns_namespace_exists(s, "public/default");
}

struct svc *tl_svc_start(struct tl_svc *f, int i)
{
    ck_assert_int_lt(i, TL_MAX_BROKERS);
    ck_assert_ptr_null(f->svc[i]);
    ck_assert_msg(!mg_loop_is_sim(f->loop), "svc_new listens on TCP: a simulated loop cannot");
    f->svc[i] = svc_new(f->loop, &f->cfg, f->meta[i]);
    ck_assert_msg(f->svc[i] != NULL, "broker %d did not start", i);
    ck_assert_msg(tl_base_until(f->base, tl_ns_loaded, svc_ns(f->svc[i]), TL_REAL_WAIT_MS),
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
    for (int i = TL_MAX_BROKERS - 1; i >= 0; i--) {
        tl_svc_stop(f, i);
        tl_parts_stop(f, i);
    }
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

/* ---- brokers made of their parts ----------------------------------------------------------- */

/* A connection of a broker made of parts closed (conn_env.closed): forget it. */
static void tl_parts_closed(void *data, struct conn *c)
{
    struct tl_parts *b = data;
    for (int k = 0; k < b->n_conns; k++) {
        if (b->conns[k] == c) {
            b->conns[k] = b->conns[--b->n_conns];
            return;
        }
    }
}

struct tl_parts *tl_parts_start(struct tl_svc *f, int i)
{
    ck_assert_int_lt(i, TL_MAX_BROKERS);
    struct tl_parts *b = &f->parts[i];
    ck_assert_ptr_null(b->ns);
    const struct cfg *cfg = &f->cfg;
    b->ns = ns_new(f->loop, cfg, f->meta[i]);
    ck_assert_msg(ns_load(b->ns) == 0, "broker %d: resources not loaded", i);
    struct ml_config mlc;
    svc_ml_config(cfg, &mlc);
    b->mlf = ml_factory_new(f->loop, cfg->managed_ledger_store, &mlc);
    ck_assert_msg(b->mlf != NULL, "broker %d: no managed-ledger factory", i);
    struct topic_config tc;
    svc_topic_config(cfg, &tc);
    b->topics = topic_registry_new(f->base, b->mlf, &tc);
    b->env = (struct conn_env){
        .cfg = cfg,
        .loop = f->loop,
        .topics = b->topics,
        .ns = b->ns,
        .closed = tl_parts_closed,
        .data = b,
    };
    ns_start(b->ns, b->topics, b->mlf, TL_PARTS_PORT + i, TL_PARTS_WEB_PORT + i);
    ck_assert_msg(tl_until(f->loop, tl_ns_loaded, b->ns, tl_wait_ms(f->loop)),
                  "broker %d: resources not loaded", i);
    return b;
}

static bool tl_ml_idle(const void *arg)
{
    return ml_factory_pending((struct ml_factory *)arg) == 0;
}

void tl_parts_stop(struct tl_svc *f, int i)
{
    struct tl_parts *b = &f->parts[i];
    if (!b->ns)
        return;
    ns_cancel(b->ns); /* the callers of pending requests are going away */
    while (b->n_conns > 0)
        conn_close(b->conns[b->n_conns - 1], NULL); /* tl_parts_closed forgets it */
    ns_stop(b->ns);
    topic_registry_free(b->topics); /* cursors flush their positions, ledgers close */
    ck_assert_msg(tl_until(f->loop, tl_ml_idle, b->mlf, tl_wait_ms(f->loop)),
                  "broker %d: %d managed-ledger writes still pending", i,
                  ml_factory_pending(b->mlf));
    ml_factory_free(b->mlf);
    if (mg_loop_is_sim(f->loop))
        tl_run_due(f->loop); /* what ns left for the next pass runs while it exists */
    ns_free(b->ns);
    memset(b, 0, sizeof *b);
}

struct conn *tl_parts_connect(struct tl_svc *f, int i, struct tl_peer *p)
{
    struct tl_parts *b = &f->parts[i];
    ck_assert_ptr_nonnull(b->ns);
    ck_assert_int_lt(b->n_conns, TL_PARTS_CONNS);
    struct conn *c = tl_conn_pair(f, &b->env, p, ++b->next_id);
    b->conns[b->n_conns++] = c;
    return c;
}

struct conn *tl_conn_pair(struct tl_svc *f, const struct conn_env *env, struct tl_peer *p,
                          uint64_t id)
{
    struct bufferevent *pair[2];
    ck_assert_int_eq(
        bufferevent_pair_new(f->base, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS, pair), 0);
    tl_peer_open_loop(p, f->loop, pair[1]);
    return conn_new(env, pair[0], "pair", id);
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
    ck_assert_msg(tl_until_flag(f->loop, &d->called, tl_wait_ms(f->loop)), "callback never ran");
    ck_assert_int_eq(d->calls, 1);
    return d->status;
}

void tl_topic_loaded_cb(struct topic *t, int status, void *data)
{
    (void)t;
    ck_assert_msg(status == 0, "topic load: %s", mg_errname(status));
    (*(int *)data)++;
}

/* ---- the admin HTTP server ----------------------------------------------------------------- */

void tl_http_on_reply(struct evhttp_request *req, void *arg)
{
    struct tl_http_reply *r = arg;
    r->done = true;
    if (!req)
        return;
    r->status = evhttp_request_get_response_code(req);
    struct evbuffer *b = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(b);
    mg_free(r->body);
    r->body = mg_malloc(n + 1);
    evbuffer_copyout(b, r->body, n);
    r->body[n] = '\0';
    const struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    const char *ct = evhttp_find_header(h, "Content-Type");
    const char *loc = evhttp_find_header(h, "Location");
    snprintf(r->ctype, sizeof r->ctype, "%s", ct ? ct : "");
    snprintf(r->location, sizeof r->location, "%s", loc ? loc : "");
}

bool tl_http_reply_done(const void *arg)
{
    return ((const struct tl_http_reply *)arg)->done;
}

void tl_http_reply_free(struct tl_http_reply *r)
{
    mg_free(r->body);
    memset(r, 0, sizeof *r);
}

int tl_svc_http(struct tl_svc *f, int i, enum evhttp_cmd_type method, const char *path,
                const char *authz, const char *body, struct tl_http_reply *r)
{
    tl_http_reply_free(r);
    struct evhttp_connection *conn;
    struct evhttp_request *req =
        mg_http_request_new(f->base, NULL, "127.0.0.1", svc_web_port(f->svc[i]),
                            TL_HTTP_DEADLINE_MS / 1000, authz, body, tl_http_on_reply, r, &conn);
    ck_assert_ptr_nonnull(req);
    ck_assert_int_eq(evhttp_make_request(conn, req, method, path), 0);
    bool done = tl_base_until(f->base, tl_http_reply_done, r, TL_HTTP_DEADLINE_MS);
    evhttp_connection_free(conn);
    ck_assert_msg(done, "%s: no reply within %d ms", path, TL_HTTP_DEADLINE_MS);
    ck_assert_msg(r->status != 0, "%s: connection failed", path);
    if (!r->body)
        r->body = mg_strdup("");
    return r->status;
}
