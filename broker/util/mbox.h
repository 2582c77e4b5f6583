/*
 * mbox.h - hand-offs between loops: a mailbox that any thread posts to and the thread of
 * one event_base runs, and an I/O thread (an event_base on its own thread, with a mailbox).
 *
 * A mailbox is a mutex-protected list plus an eventfd. mg_mbox_post appends a message and
 * writes the eventfd only when the list was empty; the owning loop reads the eventfd, takes
 * the whole list in one swap and runs the messages in the order they were posted. So a
 * batch costs one lock on each side, not one per message, and messages posted by one thread
 * run in the order that thread posted them.
 *
 * Threading: mg_mbox_post from any thread; everything else on the thread of the mailbox's
 * base. No libevent object is shared between threads (libevent's own locking stays off).
 */
#ifndef MG_MBOX_H
#define MG_MBOX_H

struct event_base;
struct mg_mbox;
struct mg_iothread;

/* A message: embed it in a struct of your own; run gets it on the mailbox's loop and owns it
 * from then on (frees it). */
struct mg_mbox_msg {
    struct mg_mbox_msg *next; /* the mailbox's */
    void (*run)(struct mg_mbox_msg *m);
};

/* A mailbox run by base's loop. Never NULL (aborts when the eventfd cannot be made). */
struct mg_mbox *mg_mbox_new(struct event_base *base);
/* Post m (run set) from any thread. */
void mg_mbox_post(struct mg_mbox *b, struct mg_mbox_msg *m);
/* Run what is queued now (as the loop would), then free. No thread may post any more.
 * Accepts NULL. */
void mg_mbox_free(struct mg_mbox *b);

/* A thread running its own event_base (named name, 15 bytes at most, for top and perf) until
 * mg_iothread_stop. Never NULL. */
struct mg_iothread *mg_iothread_start(const char *name);
struct event_base *mg_iothread_base(const struct mg_iothread *t);
/* Post m to the thread's mailbox (any thread). */
void mg_iothread_post(struct mg_iothread *t, struct mg_mbox_msg *m);
/* Stop the loop once what was posted before ran, join the thread, free its base. From
 * another thread; accepts NULL. */
void mg_iothread_stop(struct mg_iothread *t);

#endif
