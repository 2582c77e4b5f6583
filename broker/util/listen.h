/*
 * listen.h - a listening TCP socket that keeps working when descriptors run out.
 *
 * A plain evconnlistener that hits EMFILE/ENFILE (the process or the system is out of
 * descriptors) stays readable, so the loop calls accept() again at once, forever: a busy
 * loop that also writes one log line per failed accept. An mg_listener instead stops
 * accepting (nginx, HAProxy and libuv do the same) and starts again when one of its
 * connections closes or, failing that, on a timer (MG_LISTENER_RETRY_MIN_MS doubling up to
 * MG_LISTENER_RETRY_MAX_MS). Pending clients wait in the kernel's backlog meanwhile.
 *
 * It also keeps descriptors in reserve for the process's own outgoing connections (bookies,
 * ZooKeeper, files): it stops accepting while fewer than `reserve_fds` descriptors are free
 * under the soft RLIMIT_NOFILE (open descriptors counted in /proc/self/fd), so a flood of
 * clients cannot take the last descriptors the broker needs to store what its existing
 * clients send. A connection accepted below the reserve is closed at once (refused).
 * With `max_conns` it also pauses while that many of its connections are open (Jetty's
 * ConnectionLimit, behind Pulsar's maxHttpServerConnections).
 *
 * Logging: at most one WARN line per MG_LISTENER_LOG_INTERVAL_MS per listener, with the
 * counts of what happened since the previous line, never one line per attempt.
 *
 * Two modes. With an accept function the listener accepts and hands each kept connection
 * to it. Without one (evhttp), the caller hands mg_listener_evconn() to a library that sets
 * its own accept callback (evhttp_bind_listener) and reports each connection itself with
 * mg_listener_conn_opened. In both modes the owner reports every close with
 * mg_listener_conn_closed. Everything runs on the loop thread.
 */
#ifndef MG_LISTEN_H
#define MG_LISTEN_H

#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct evconnlistener;
struct sockaddr;
struct mg_listener;

#define MG_LISTENER_RETRY_MIN_MS 100
#define MG_LISTENER_RETRY_MAX_MS 1000
#define MG_LISTENER_LOG_INTERVAL_MS 10000

/* A kept connection: fd is the callee's (close it when done, then mg_listener_conn_closed).
 * addr is valid during the call. */
typedef void (*mg_listener_accept_fn)(void *arg, int fd, const struct sockaddr *addr, int socklen);

struct mg_listener_options {
    const char *name; /* for log lines, e.g. "Pulsar protocol" (borrowed, must outlive l) */
    int max_conns;    /* pause accepting while this many connections are open; 0 = no bound */
    int reserve_fds;  /* pause accepting while fewer descriptors than this are free; 0 = none */
};

/* Bind the IPv4 address addr:port (port 0 = any free port) and start accepting. fn NULL:
 * the evconnlistener is handed to a library (see above). Returns NULL with a logged reason
 * (bad address, port in use). */
struct mg_listener *mg_listener_new(struct event_base *base, const char *addr, int port,
                                    const struct mg_listener_options *o, mg_listener_accept_fn fn,
                                    void *arg);
/* Stop accepting and free. The evconnlistener is freed too unless it was handed to a
 * library (mg_listener_evconn), which frees it itself (evhttp_free). Accepts NULL. */
void mg_listener_free(struct mg_listener *l);

int mg_listener_port(const struct mg_listener *l);
/* Hand the underlying listener to a library (evhttp_bind_listener), which owns it from now
 * on and sets its accept callback (fn NULL only). */
struct evconnlistener *mg_listener_evconn(struct mg_listener *l);
/* The library accepted a connection (fn NULL only): counts it, and pauses accepting when
 * the bound or the descriptor reserve is reached. */
void mg_listener_conn_opened(struct mg_listener *l);
/* One of this listener's connections closed (its descriptor is free): counts it, and
 * resumes a paused listener when the reason is gone. */
void mg_listener_conn_closed(struct mg_listener *l);
/* The library the listener was handed to is about to free it (call right before
 * evhttp_free): the listener forgets it and never pauses or resumes it again; closes
 * reported afterwards are only counted. */
void mg_listener_evconn_gone(struct mg_listener *l);

struct mg_listener_stats {
    int open_conns;        /* connections counted open */
    int64_t accepted;      /* kept connections */
    int64_t refused;       /* accepted then closed at once: below the descriptor reserve */
    int64_t accept_errors; /* accept() failures for lack of descriptors or memory */
    int64_t pauses;        /* times accepting was paused */
    bool paused;
};
void mg_listener_get_stats(const struct mg_listener *l, struct mg_listener_stats *out);

/* Raise the soft RLIMIT_NOFILE to the hard limit. Returns the soft limit now in force, or a
 * negative -MG_E* code. */
int mg_fds_raise_limit(void);
/* The soft RLIMIT_NOFILE. */
int mg_fds_limit(void);
/* Descriptors open in this process (entries of /proc/self/fd, not counting the one used to
 * read it), or -1 when unknown (no /proc). */
int mg_fds_open(void);
/* Descriptors a new open() can still take: the soft limit minus those open below it; 0 at
 * the limit, -1 when unknown. */
int mg_fds_free(void);
/* The default reserve for a process allowed `limit` descriptors: 1/16 of it, between 32
 * and 1024 (room for the ledger client's and ZooKeeper's connections and for files). */
int mg_fds_default_reserve(int limit);

#endif
