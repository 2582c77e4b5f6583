/*
 * mbox.c - mailboxes between loops and I/O threads (mbox.h).
 *
 * The eventfd is written by a poster only on the empty -> non-empty transition of the list,
 * and the owner reads it before it swaps the list out: a message posted after the read
 * either finds the list non-empty (the swap that follows takes it) or empty (after the swap:
 * it writes the eventfd again). Read after the swap instead, a wake-up could be consumed for
 * a message left in the list.
 */
#include "util/mbox.h"
#include "util/alloc.h"
#include "util/log.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct mg_mbox {
    pthread_mutex_t lock;
    struct mg_mbox_msg *head, *tail; /* under lock */
    int efd;
    struct event *ev; /* read on efd */
};

/* Take the whole list (in posting order) in one swap. */
static struct mg_mbox_msg *mg_mbox_take(struct mg_mbox *b)
{
    pthread_mutex_lock(&b->lock);
    struct mg_mbox_msg *m = b->head;
    b->head = b->tail = NULL;
    pthread_mutex_unlock(&b->lock);
    return m;
}

static void mg_mbox_run_all(struct mg_mbox_msg *m)
{
    while (m) {
        struct mg_mbox_msg *next = m->next;
        m->run(m); /* m belongs to run from here */
        m = next;
    }
}

static void mg_mbox_ready(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct mg_mbox *b = arg;
    uint64_t n;
    if (read(fd, &n, sizeof n) < 0 && errno != EAGAIN)
        MG_WARN("util", "mailbox eventfd read: %s", strerror(errno));
    mg_mbox_run_all(mg_mbox_take(b));
}

struct mg_mbox *mg_mbox_new(struct event_base *base)
{
    struct mg_mbox *b = mg_calloc(1, sizeof *b);
    pthread_mutex_init(&b->lock, NULL);
    b->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    MG_ASSERT(b->efd >= 0);
    b->ev = event_new(base, b->efd, EV_READ | EV_PERSIST, mg_mbox_ready, b);
    MG_ASSERT(b->ev && event_add(b->ev, NULL) == 0);
    return b;
}

void mg_mbox_post(struct mg_mbox *b, struct mg_mbox_msg *m)
{
    m->next = NULL;
    pthread_mutex_lock(&b->lock);
    bool wake = b->head == NULL;
    if (b->tail)
        b->tail->next = m;
    else
        b->head = m;
    b->tail = m;
    pthread_mutex_unlock(&b->lock);
    if (wake) {
        uint64_t one = 1;
        /* EAGAIN: the counter is full, so a wake-up is pending anyway */
        if (write(b->efd, &one, sizeof one) < 0 && errno != EAGAIN)
            MG_WARN("util", "mailbox eventfd write: %s", strerror(errno));
    }
}

void mg_mbox_free(struct mg_mbox *b)
{
    if (!b)
        return;
    mg_mbox_run_all(mg_mbox_take(b));
    event_free(b->ev);
    close(b->efd);
    pthread_mutex_destroy(&b->lock);
    mg_free(b);
}

struct mg_iothread {
    pthread_t tid;
    char name[16];
    struct event_base *base;
    struct mg_mbox *mbox;
};

static void *mg_iothread_main(void *arg)
{
    struct mg_iothread *t = arg;
    pthread_setname_np(pthread_self(), t->name);
    event_base_loop(t->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

struct mg_iothread *mg_iothread_start(const char *name)
{
    struct mg_iothread *t = mg_calloc(1, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->base = event_base_new();
    MG_ASSERT(t->base);
    t->mbox = mg_mbox_new(t->base);
    int rc = pthread_create(&t->tid, NULL, mg_iothread_main, t);
    MG_ASSERT(rc == 0);
    return t;
}

struct event_base *mg_iothread_base(const struct mg_iothread *t)
{
    return t->base;
}

void mg_iothread_post(struct mg_iothread *t, struct mg_mbox_msg *m)
{
    mg_mbox_post(t->mbox, m);
}

struct mg_iothread_stop_msg {
    struct mg_mbox_msg m;
    struct event_base *base;
};

static void mg_iothread_stop_run(struct mg_mbox_msg *m)
{
    struct mg_iothread_stop_msg *s = (struct mg_iothread_stop_msg *)m;
    event_base_loopbreak(s->base);
    mg_free(s);
}

void mg_iothread_stop(struct mg_iothread *t)
{
    if (!t)
        return;
    struct mg_iothread_stop_msg *s = mg_calloc(1, sizeof *s);
    s->m.run = mg_iothread_stop_run;
    s->base = t->base;
    mg_mbox_post(t->mbox, &s->m);
    pthread_join(t->tid, NULL);
    mg_mbox_free(t->mbox); /* what was posted after the stop (nothing, if callers keep to it) */
    event_base_free(t->base);
    mg_free(t);
}
