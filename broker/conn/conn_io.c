/*
 * conn_io.c - connections whose socket runs on an I/O loop (numIOThreads >= 2,
 * docs/threads.md): the I/O side (bufferevent, reads, frame splitting and checks, command
 * decode, writes) and the hand-offs with the main loop, which keeps the struct conn and runs
 * its handlers (conn.c).
 *
 * Ownership: the main loop owns the struct conn; the I/O loop owns struct conn_io (the
 * socket, its bufferevent). Messages to the I/O loop name the conn_io, messages to the main
 * loop name the conn. CLOSE is the last message the main loop sends for a connection (the
 * I/O loop frees the conn_io on it), GONE the last the I/O loop sends (the main loop drops
 * the reference it held for the I/O side). A message for a connection that the main loop has
 * closed meanwhile is dropped there without looking at the conn_io.
 *
 * Flow control: in_bytes counts decoded frames not yet dispatched; the I/O loop stops
 * reading above in_limit and the main loop posts RESUME_IN when its dispatch takes the count
 * back under it. out_bytes counts bytes handed to the I/O loop and not yet written; it is
 * part of the connection's queued output (conn_outbound_bytes). DRAINED (at most one in
 * flight) tells the main loop the output went under the write watermark.
 */
#include "conn/conn_int.h"
#include "tls/tls.h"
#include "util/alloc.h"
#include "util/bev.h"
#include "util/err.h"
#include "util/log.h"
#include "util/mbox.h"
#include "util/ratelimit.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <inttypes.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

struct conn_iopool {
    int n;
    unsigned next;
    struct mg_iothread **threads;
    struct mg_mbox *main; /* run by the main loop */
};

struct conn_io {
    struct conn *c; /* the main loop's: only named in messages to it */
    struct conn_iopool *pool;
    struct mg_iothread *thread;
    evutil_socket_t fd;
    SSL *ssl;                /* TLS: owned until the bufferevent takes it (then its) */
    bool cert_sent;          /* TLS: the client's certificate went with the first frames */
    bool handshaken;         /* TLS: the handshake completed */
    struct bufferevent *bev; /* the I/O loop's */
    uint32_t max_frame;
    size_t in_limit;
    size_t out_low; /* the write watermark: DRAINED below it */
    _Atomic size_t in_bytes;
    _Atomic size_t out_bytes;
    atomic_bool drained_posted;
    bool in_full; /* I/O loop: reading stopped on in_limit */
    bool dead;    /* I/O loop: EOF, error or a bad frame: nothing more is read */
};

enum conn_io_kind {
    /* to the I/O loop */
    IO_OPEN,
    IO_OUT,
    IO_RESUME_IN,
    IO_SHUTWR,
    IO_CLOSE,
    /* to the main loop */
    IO_FRAMES,
    IO_DRAINED,
    IO_PEER_CLOSED,
    IO_GONE,
};

/* One message; a FRAMES one is then the node of the connection's input queue. */
struct conn_io_msg {
    struct mg_mbox_msg m;
    enum conn_io_kind kind;
    struct conn_io *io; /* to the I/O loop */
    struct conn *c;     /* to the main loop */
    struct evbuffer *buf;
    struct wire_frame *f; /* FRAMES: n frames, the first next not dispatched yet */
    int n, cap, next;
    STAILQ_ENTRY(conn_io_msg) link;
    X509 *cert; /* FRAMES over TLS, the first: the client's certificate (owned), or NULL */
    bool cert_trusted;
    char why[224];  /* PEER_CLOSED: the reason, "" = the client closed */
    bool handshake; /* PEER_CLOSED: during the TLS handshake */
};

static void conn_io_run(struct mg_mbox_msg *m);

static struct conn_io_msg *conn_io_msg_new(enum conn_io_kind kind)
{
    struct conn_io_msg *m = mg_calloc(1, sizeof *m);
    m->m.run = conn_io_run;
    m->kind = kind;
    return m;
}

static void conn_io_msg_free(struct conn_io_msg *m)
{
    for (int i = m->next; i < m->n; i++)
        wire_frame_clear(&m->f[i]);
    mg_free(m->f);
    X509_free(m->cert);
    if (m->buf)
        evbuffer_free(m->buf);
    mg_free(m);
}

static void conn_io_to_main(struct conn_io *io, struct conn_io_msg *m)
{
    m->c = io->c;
    mg_mbox_post(io->pool->main, &m->m);
}

static void conn_io_to_io(struct conn_io *io, enum conn_io_kind kind, struct evbuffer *buf)
{
    struct conn_io_msg *m = conn_io_msg_new(kind);
    m->io = io;
    m->buf = buf;
    mg_iothread_post(io->thread, &m->m);
}

/* ---- the I/O loop ------------------------------------------------------------------------- */

static void conn_io_peer_closed(struct conn_io *io, const char *why)
{
    if (io->dead)
        return;
    io->dead = true;
    bufferevent_disable(io->bev, EV_READ);
    struct conn_io_msg *m = conn_io_msg_new(IO_PEER_CLOSED);
    snprintf(m->why, sizeof m->why, "%s", why ? why : "");
    m->handshake = io->ssl && !io->handshaken;
    conn_io_to_main(io, m);
}

/* Decode what is buffered, up to in_limit of frames not dispatched yet; one FRAMES message. */
static void conn_iol_read(struct bufferevent *bev, void *arg)
{
    struct conn_io *io = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct conn_io_msg *batch = NULL;
    /* as the main loop's conn_io_read: the rest the socket holds, in one read, rather than
     * one loop turn (and one FRAMES message) per 4 KiB */
    if (!io->dead && !io->in_full)
        mg_bev_read_more(bev, CONN_READ_MORE_BYTES);
    while (!io->dead && !io->in_full) {
        struct wire_frame f;
        char why[220];
        int rc = conn_frame_read(in, io->max_frame, &f, why, sizeof why);
        if (rc == 0)
            break;
        if (rc < 0) {
            conn_io_peer_closed(io, why);
            break;
        }
        if (!batch) {
            batch = conn_io_msg_new(IO_FRAMES);
            if (io->ssl && !io->cert_sent) { /* for TLS authentication, on the main loop */
                io->cert_sent = true;
                batch->cert = tls_peer_cert(bev, &batch->cert_trusted);
                if (batch->cert)
                    X509_up_ref(batch->cert);
            }
        }
        if (batch->n == batch->cap) {
            batch->cap = batch->cap ? 2 * batch->cap : 8;
            batch->f = mg_realloc(batch->f, (size_t)batch->cap * sizeof *batch->f);
        }
        batch->f[batch->n++] = f;
        if (atomic_fetch_add(&io->in_bytes, f.frame_size) + f.frame_size > io->in_limit) {
            io->in_full = true; /* the main loop posts RESUME_IN once it took some */
            bufferevent_disable(bev, EV_READ);
        }
    }
    if (batch)
        conn_io_to_main(io, batch);
}

static void conn_iol_write(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct conn_io *io = arg;
    if (!atomic_exchange(&io->drained_posted, true))
        conn_io_to_main(io, conn_io_msg_new(IO_DRAINED));
}

static void conn_iol_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn_io *io = arg;
    if (what & BEV_EVENT_CONNECTED) {
        io->handshaken = true;
    } else if (what & BEV_EVENT_EOF) {
        conn_io_peer_closed(io, NULL);
    } else if (what & BEV_EVENT_ERROR) {
        char why[200];
        if (io->ssl) /* OpenSSL's reason, or the socket's (this thread's error queue) */
            tls_bev_error(bev, what, why, sizeof why);
        else
            snprintf(why, sizeof why, "%s", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        conn_io_peer_closed(io, why);
    }
}

/* The output drained by n bytes: they are no longer queued output of the connection. */
static void conn_io_out_cb(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
    (void)b;
    struct conn_io *io = arg;
    if (info->n_deleted)
        atomic_fetch_sub(&io->out_bytes, info->n_deleted);
}

static void conn_io_open(struct conn_io *io)
{
    struct event_base *base = mg_iothread_base(io->thread);
    if (io->ssl) /* the handshake runs as the bufferevent reads; it frees the SSL */
        io->bev = bufferevent_openssl_socket_new(base, io->fd, io->ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                 BEV_OPT_CLOSE_ON_FREE);
    else
        io->bev = bufferevent_socket_new(base, io->fd, BEV_OPT_CLOSE_ON_FREE);
    MG_ASSERT(io->bev);
    bufferevent_setcb(io->bev, conn_iol_read, conn_iol_write, conn_iol_event, io);
    conn_bev_limits(io->bev, io->max_frame, io->out_low);
    evbuffer_add_cb(bufferevent_get_output(io->bev), conn_io_out_cb, io);
    bufferevent_enable(io->bev, EV_READ | EV_WRITE);
}

/* ---- the main loop ------------------------------------------------------------------------ */

/* Connections closed before CONNECT with a reason (main loop only). */
static struct mg_ratelimit conn_io_early_log;

void conn_io_close_early(struct conn *c, const char *why, bool handshake)
{
    uint64_t held;
    if (mg_ratelimit_allow(&conn_io_early_log, MG_RATELIMIT_INTERVAL_MS, &held)) {
        if (handshake) /* tls.c's words for the same event on the main loop */
            MG_WARN("conn",
                    "TLS handshake from %s failed: %s (%" PRIu64 " more since the last line)",
                    c->peer, why, held);
        else
            MG_WARN("conn",
                    "[%" PRIu64 "] %s closed before CONNECT: %s (%" PRIu64
                    " more since the last line)",
                    c->id, c->peer, why, held);
    }
    conn_close(c, NULL);
}

static void conn_io_main(struct conn_io_msg *m)
{
    struct conn *c = m->c;
    if (m->kind == IO_GONE) {
        conn_unref(c); /* the I/O side's reference */
        conn_io_msg_free(m);
        return;
    }
    if (!conn_is_open(c) || !c->io) { /* closed meanwhile: c->io may be gone already */
        conn_io_msg_free(m);
        return;
    }
    switch (m->kind) {
    case IO_FRAMES:
        c->io_batches++;
        if (m->cert) {
            c->peer_cert = m->cert;
            c->peer_cert_trusted = m->cert_trusted;
            m->cert = NULL;
        }
        STAILQ_INSERT_TAIL(&c->inq, m, link);
        conn_input_ready(c);
        break;
    case IO_DRAINED:
        atomic_store(&c->io->drained_posted, false);
        conn_io_msg_free(m);
        conn_output_drained(c);
        break;
    case IO_PEER_CLOSED: {
        char why[sizeof m->why];
        memcpy(why, m->why, sizeof why);
        bool handshake = m->handshake;
        conn_io_msg_free(m);
        if (why[0] && c->state == CONN_AWAIT_CONNECT)
            conn_io_close_early(c, why, handshake);
        else
            conn_close(c, why[0] && !c->refusing ? why : NULL);
        break;
    }
    default:
        MG_ASSERT(!"not a message to the main loop");
    }
}

static void conn_io_run(struct mg_mbox_msg *mm)
{
    struct conn_io_msg *m = (struct conn_io_msg *)mm;
    struct conn_io *io = m->io;
    switch (m->kind) {
    case IO_OPEN:
        conn_io_open(io);
        break;
    case IO_OUT:
        evbuffer_add_buffer(bufferevent_get_output(io->bev), m->buf);
        break;
    case IO_RESUME_IN:
        io->in_full = false;
        if (!io->dead) {
            bufferevent_enable(io->bev, EV_READ);
            conn_iol_read(io->bev, io); /* what is buffered already */
        }
        break;
    case IO_SHUTWR:
        shutdown(io->fd, SHUT_WR);
        break;
    case IO_CLOSE:
        bufferevent_free(io->bev); /* and the socket */
        conn_io_to_main(io, conn_io_msg_new(IO_GONE));
        mg_free(io);
        break;
    default:
        conn_io_main(m);
        return;
    }
    conn_io_msg_free(m);
}

struct conn_iopool *conn_iopool_new(struct mg_loop *loop, int n)
{
    if (n < 2)
        return NULL;
    struct conn_iopool *p = mg_calloc(1, sizeof *p);
    p->n = n;
    p->main = mg_mbox_new(mg_loop_base(loop));
    p->threads = mg_calloc((size_t)n, sizeof *p->threads);
    for (int i = 0; i < n; i++) {
        char name[24]; /* (mg_iothread_start keeps 15 bytes) */
        snprintf(name, sizeof name, "mg-io-%d", i);
        p->threads[i] = mg_iothread_start(name);
    }
    return p;
}

void conn_iopool_free(struct conn_iopool *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n; i++)
        mg_iothread_stop(p->threads[i]); /* runs the CLOSEs posted before: GONEs follow */
    mg_mbox_free(p->main);               /* runs the GONEs: the connections are freed */
    mg_free(p->threads);
    mg_free(p);
}

/* Copy out what the handlers wrote (once per loop turn): a MESSAGE references its stored
 * entry, whose chain must not be released on another thread (docs/threads.md). */
static void conn_io_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct conn *c = arg;
    size_t len = evbuffer_get_length(c->out);
    if (!c->io || len == 0)
        return;
    struct evbuffer *buf = evbuffer_new();
    struct evbuffer_iovec v;
    MG_ASSERT(evbuffer_reserve_space(buf, (ev_ssize_t)len, &v, 1) == 1);
    MG_ASSERT(evbuffer_remove(c->out, v.iov_base, len) == (int)len);
    v.iov_len = len;
    MG_ASSERT(evbuffer_commit_space(buf, &v, 1) == 0);
    atomic_fetch_add(&c->io->out_bytes, len);
    conn_io_to_io(c->io, IO_OUT, buf);
}

static void conn_io_out_added(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
    (void)b;
    struct conn *c = arg;
    if (info->n_added && c->flush_ev)
        event_active(c->flush_ev, EV_WRITE, 0);
}

void conn_io_attach(struct conn *c, struct conn_iopool *p, evutil_socket_t fd, SSL *ssl)
{
    struct conn_io *io = mg_calloc(1, sizeof *io);
    io->ssl = ssl;
    io->c = c;
    io->pool = p;
    io->thread = p->threads[p->next++ % (unsigned)p->n];
    io->fd = fd;
    io->max_frame = c->max_frame;
    io->in_limit = (size_t)c->max_frame + 4 + 65536;
    io->out_low = c->max_outbound / 4;
    c->io = io;
    conn_ref(c); /* the I/O side's, until GONE */
    c->out = evbuffer_new();
    c->flush_ev = event_new(mg_loop_base(c->env->loop), -1, 0, conn_io_flush, c);
    evbuffer_add_cb(c->out, conn_io_out_added, c);
    conn_io_to_io(io, IO_OPEN, NULL);
}

bool conn_io_next_frame(struct conn *c, struct wire_frame *f)
{
    struct conn_io_msg *m = STAILQ_FIRST(&c->inq);
    if (!m)
        return false;
    *f = m->f[m->next++];
    if (m->next == m->n) {
        STAILQ_REMOVE_HEAD(&c->inq, link);
        conn_io_msg_free(m);
    }
    size_t old = atomic_fetch_sub(&c->io->in_bytes, f->frame_size);
    if (old > c->io->in_limit && old - f->frame_size <= c->io->in_limit)
        conn_io_to_io(c->io, IO_RESUME_IN, NULL);
    return true;
}

bool conn_io_has_input(const struct conn *c)
{
    return !STAILQ_EMPTY(&c->inq);
}

void conn_io_drop_input(struct conn *c)
{
    struct wire_frame f;
    while (c->io && conn_io_next_frame(c, &f))
        wire_frame_clear(&f);
}

size_t conn_io_outbound(const struct conn *c)
{
    return evbuffer_get_length(c->out) + atomic_load(&c->io->out_bytes);
}

void conn_io_shutdown_write(struct conn *c)
{
    conn_io_to_io(c->io, IO_SHUTWR, NULL);
}

void conn_io_detach(struct conn *c)
{
    struct conn_io_msg *m;
    while ((m = STAILQ_FIRST(&c->inq))) {
        STAILQ_REMOVE_HEAD(&c->inq, link);
        conn_io_msg_free(m);
    }
    mg_event_free(c->flush_ev);
    c->flush_ev = NULL;
    evbuffer_free(c->out); /* what was not handed over goes, as a closed socket's output */
    c->out = NULL;
    conn_io_to_io(c->io, IO_CLOSE, NULL);
    c->io = NULL;
}
