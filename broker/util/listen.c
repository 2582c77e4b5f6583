/*
 * listen.c - listening sockets that pause instead of spinning when descriptors run out.
 *
 * Happy path: evconnlistener accepts; mg_listen_accept_cb checks the descriptor reserve (counting
 * /proc/self/fd when the cached count may be near it) and hands the fd to the owner's
 * function, which reports the close later (mg_listener_conn_closed).
 *
 * Failure modes: accept() failing with EMFILE, ENFILE, ENOBUFS or ENOMEM disables the
 * listener; it is enabled again when one of its connections closes or when the retry timer
 * finds descriptors free (100 ms, doubling up to 1 s while they are not). A connection that
 * arrives below the reserve is closed at once and the listener paused the same way. Every
 * such event is counted; one WARN line per 10 s at most reports the counts.
 */
#include "util/listen.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"
#include "util/loop.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

/* Counting /proc/self/fd costs time in proportion to the descriptors open, so the count is
 * cached and moved by one with each of our connections opened or closed; it is taken again
 * when older than FD_COUNT_FAR_MS, or FD_COUNT_NEAR_MS when close to the reserve (other
 * descriptors, files and outgoing connections, change it meanwhile). */
#define FD_COUNT_FAR_MS 1000
#define FD_COUNT_NEAR_MS 20

enum pause_reason {
    PAUSE_NONE = 0,
    PAUSE_LIMIT,   /* max_conns of our connections are open: resume on a close */
    PAUSE_RESERVE, /* too few descriptors free: resume on a close or the timer */
    PAUSE_ERROR,   /* accept() failed for lack of resources: same */
};

static const char *const pause_name[] = {"", "connection limit", "descriptor reserve",
                                         "accept error"};

struct mg_listener {
    struct event_base *base;    /* borrowed */
    struct evconnlistener *lev; /* owned unless handed off; NULL once forgotten */
    bool handed_off;            /* fn NULL: a library owns lev */
    struct event *retry_ev;     /* owned */
    mg_listener_accept_fn fn;
    void *arg;
    char *name; /* owned */
    int port;
    int max_conns, reserve;
    enum pause_reason paused;
    int retry_ms;
    uint64_t paused_at_ms;
    /* descriptor count cache */
    int fds_cached;
    uint64_t fds_counted_ms;
    /* counters */
    struct mg_listener_stats st;
    /* rate-limited reporting: what happened since the last line */
    uint64_t last_log_ms;
    int64_t log_refused, log_errors, log_pauses;
    int last_errno;
};

/* ---- descriptors ---------------------------------------------------------------------- */

int mg_fds_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
        rl.rlim_cur > (rlim_t)(1 << 30))
        return 1 << 30;
    return (int)rl.rlim_cur;
}

int mg_fds_raise_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return mg_err_from_errno(errno);
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t old = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            int err = errno;
            MG_WARN("listen", "cannot raise the descriptor limit from %llu to %llu: %s",
                    (unsigned long long)old, (unsigned long long)rl.rlim_max, strerror(err));
            return mg_err_from_errno(err);
        }
    }
    return mg_fds_limit();
}

/* Count the entries of /proc/self/fd, all of them or only those below limit (the numbers a
 * new descriptor can take: RLIMIT_NOFILE bounds the number, and descriptors inherited above
 * it take no room below it). -1 when unknown; at EMFILE, limit (nothing free). */
static int mg_listen_count_fds(int below)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return errno == EMFILE || errno == ENFILE ? below : -1;
    int self = dirfd(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        int fd = atoi(e->d_name);
        if (fd != self && fd < below)
            n++;
    }
    closedir(d);
    return n;
}

int mg_fds_open(void)
{
    return mg_listen_count_fds(INT32_MAX);
}

int mg_fds_free(void)
{
    int limit = mg_fds_limit();
    int used = mg_listen_count_fds(limit);
    return used < 0 ? -1 : limit - used;
}

int mg_fds_default_reserve(int limit)
{
    int r = limit / 16;
    return r < 32 ? 32 : r > 1024 ? 1024 : r;
}

/* Descriptors free under the soft limit (INT32_MAX when unknown: no /proc, then only EMFILE
 * pauses). fresh: count now whatever the cache's age. */
static int mg_listen_fds_free(struct mg_listener *l, bool fresh)
{
    int limit = mg_fds_limit();
    uint64_t now = mg_mono_ms();
    uint64_t age = now - l->fds_counted_ms;
    bool near = l->fds_cached >= 0 && limit - l->fds_cached < 2 * l->reserve + 8;
    if (fresh || l->fds_cached < 0 || age >= FD_COUNT_FAR_MS || (near && age >= FD_COUNT_NEAR_MS)) {
        l->fds_cached = mg_listen_count_fds(limit);
        l->fds_counted_ms = now;
    }
    if (l->fds_cached < 0)
        return INT32_MAX;
    return limit - l->fds_cached;
}

/* ---- reporting ------------------------------------------------------------------------ */

static void mg_listen_report(struct mg_listener *l, bool force)
{
    uint64_t now = mg_mono_ms();
    if (!force && l->last_log_ms && now - l->last_log_ms < MG_LISTENER_LOG_INTERVAL_MS)
        return;
    if (!l->log_refused && !l->log_errors && !l->log_pauses)
        return;
    l->last_log_ms = now;
    char err[96] = "";
    if (l->log_errors)
        snprintf(err, sizeof err, " (last: %s)", strerror(l->last_errno));
    MG_WARN("listen",
            "%s port %d: accepting paused %" PRId64 " time(s): %" PRId64 " accept() failures%s, "
            "%" PRId64 " connections refused to keep %d descriptors free (limit %d, %d open); "
            "%s",
            l->name, l->port, l->log_pauses, l->log_errors, err, l->log_refused, l->reserve,
            mg_fds_limit(), l->fds_cached,
            l->paused ? "still paused, retrying" : "accepting again");
    l->log_refused = l->log_errors = l->log_pauses = 0;
}

/* ---- pause and resume ----------------------------------------------------------------- */

static void mg_listen_arm_retry(struct mg_listener *l)
{
    struct timeval tv = {l->retry_ms / 1000, (l->retry_ms % 1000) * 1000};
    evtimer_add(l->retry_ev, &tv);
}

static void mg_listen_pause_accepting(struct mg_listener *l, enum pause_reason why)
{
    if (l->paused == PAUSE_NONE) {
        if (l->lev)
            evconnlistener_disable(l->lev);
        l->st.pauses++;
        if (why != PAUSE_LIMIT) /* a bound reached is normal operation, not news */
            l->log_pauses++;
        l->paused_at_ms = mg_mono_ms();
        l->retry_ms = MG_LISTENER_RETRY_MIN_MS;
        if (why == PAUSE_LIMIT)
            MG_DEBUG("listen", "%s port %d: %d connections open, pausing until one closes", l->name,
                     l->port, l->st.open_conns);
    }
    l->paused = why;
    if (why != PAUSE_LIMIT)
        mg_listen_arm_retry(l);
    else
        evtimer_del(l->retry_ev);
    mg_listen_report(l, false);
}

/* Resume if nothing stands in the way; else stay paused: the timer's own attempts back off
 * (doubling up to MG_LISTENER_RETRY_MAX_MS), a close's attempt leaves the timer as it is. */
static void mg_listen_try_resume(struct mg_listener *l, bool from_timer)
{
    if (l->paused == PAUSE_NONE || !l->lev)
        return;
    if (l->max_conns > 0 && l->st.open_conns >= l->max_conns) {
        l->paused = PAUSE_LIMIT;
        evtimer_del(l->retry_ev);
        return;
    }
    /* Out of descriptors (EMFILE) and none freed yet: re-enabling would only fail the
     * same accept again; stay paused and back off (ENFILE, system-wide, cannot be seen
     * from here: that one is retried). */
    bool still_out = l->paused == PAUSE_ERROR && mg_listen_fds_free(l, true) <= 0;
    if (still_out || (l->reserve > 0 && mg_listen_fds_free(l, from_timer) <= l->reserve)) {
        if (!still_out)
            l->paused = PAUSE_RESERVE;
        if (from_timer) {
            l->retry_ms = l->retry_ms * 2 > MG_LISTENER_RETRY_MAX_MS ? MG_LISTENER_RETRY_MAX_MS
                                                                     : l->retry_ms * 2;
            mg_listen_arm_retry(l);
        } else if (!evtimer_pending(l->retry_ev, NULL)) {
            mg_listen_arm_retry(l); /* paused for the connection limit until now: no timer ran */
        }
        mg_listen_report(l, false);
        return;
    }
    MG_DEBUG("listen", "%s port %d: accepting again after %" PRIu64 " ms (%s)", l->name, l->port,
             mg_mono_ms() - l->paused_at_ms, pause_name[l->paused]);
    l->paused = PAUSE_NONE;
    evtimer_del(l->retry_ev);
    evconnlistener_enable(l->lev);
    mg_listen_report(l, false);
}

static void mg_listen_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    mg_listen_try_resume(arg, true);
}

/* A connection was taken (by us or the library): count it, and pause before the next one
 * when it used the last allowed slot or descriptor. */
static void mg_listen_note_opened(struct mg_listener *l)
{
    l->st.open_conns++;
    l->st.accepted++;
    if (l->fds_cached >= 0)
        l->fds_cached++;
    if (l->max_conns > 0 && l->st.open_conns >= l->max_conns)
        mg_listen_pause_accepting(l, PAUSE_LIMIT);
    else if (l->reserve > 0 && mg_listen_fds_free(l, false) <= l->reserve)
        mg_listen_pause_accepting(l, PAUSE_RESERVE);
}

void mg_listener_conn_opened(struct mg_listener *l)
{
    mg_listen_note_opened(l);
}

void mg_listener_conn_closed(struct mg_listener *l)
{
    if (l->st.open_conns > 0)
        l->st.open_conns--;
    if (l->fds_cached > 0)
        l->fds_cached--;
    if (l->paused != PAUSE_NONE)
        mg_listen_try_resume(l, false);
}

/* ---- accepting ------------------------------------------------------------------------ */

static void mg_listen_accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
                                struct sockaddr *addr, int socklen, void *arg)
{
    (void)lev;
    struct mg_listener *l = arg;
    if (l->reserve > 0 && mg_listen_fds_free(l, false) < l->reserve) {
        /* Taking it would eat into the descriptors kept for our own connections. */
        evutil_closesocket(fd);
        if (l->fds_cached > 0)
            l->fds_cached--;
        l->st.refused++;
        l->log_refused++;
        mg_listen_pause_accepting(l, PAUSE_RESERVE);
        return;
    }
    mg_listen_note_opened(l);
    l->fn(l->arg, fd, addr, socklen);
}

static void mg_listen_accept_error_cb(struct evconnlistener *lev, void *arg)
{
    (void)lev;
    struct mg_listener *l = arg;
    int err = EVUTIL_SOCKET_ERROR();
    l->st.accept_errors++;
    l->log_errors++;
    l->last_errno = err;
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        l->fds_counted_ms = 0; /* recount on resume */
        mg_listen_pause_accepting(l, PAUSE_ERROR);
        return;
    }
    /* Anything else (a transient error libevent does not retry by itself): log, rate
     * limited, and keep accepting. */
    mg_listen_report(l, false);
}

struct mg_listener *mg_listener_new(struct event_base *base, const char *addr, int port,
                                    const struct mg_listener_options *o, mg_listener_accept_fn fn,
                                    void *arg)
{
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    const char *name = o && o->name ? o->name : "listener";
    if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
        MG_ERROR("listen", "%s: bindAddress '%s' is not an IPv4 address", name, addr);
        return NULL;
    }
    struct mg_listener *l = mg_calloc(1, sizeof *l);
    l->base = base;
    l->fn = fn;
    l->arg = arg;
    l->name = mg_strdup(name);
    l->max_conns = o ? o->max_conns : 0;
    l->reserve = o ? o->reserve_fds : 0;
    l->fds_cached = -1;
    l->retry_ms = MG_LISTENER_RETRY_MIN_MS;
    l->lev = evconnlistener_new_bind(base, mg_listen_accept_cb, l,
                                     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 512,
                                     (struct sockaddr *)&sin, sizeof sin);
    if (!l->lev) {
        MG_ERROR("listen", "%s: cannot listen on %s:%d: %s", name, addr, port, strerror(errno));
        mg_free(l->name);
        mg_free(l);
        return NULL;
    }
    evconnlistener_set_error_cb(l->lev, mg_listen_accept_error_cb);
    l->retry_ev = evtimer_new(base, mg_listen_retry_cb, l);
    struct sockaddr_in got;
    socklen_t len = sizeof got;
    getsockname(evconnlistener_get_fd(l->lev), (struct sockaddr *)&got, &len);
    l->port = ntohs(got.sin_port);
    return l;
}

void mg_listener_free(struct mg_listener *l)
{
    if (!l)
        return;
    mg_listen_report(l, true);
    if (l->lev && !l->handed_off)
        evconnlistener_free(l->lev);
    l->lev = NULL;
    mg_event_free(l->retry_ev);
    mg_free(l->name);
    mg_free(l);
}

int mg_listener_port(const struct mg_listener *l)
{
    return l->port;
}

struct evconnlistener *mg_listener_evconn(struct mg_listener *l)
{
    l->handed_off = true;
    return l->lev;
}

void mg_listener_evconn_gone(struct mg_listener *l)
{
    l->lev = NULL;
    evtimer_del(l->retry_ev);
}

void mg_listener_get_stats(const struct mg_listener *l, struct mg_listener_stats *out)
{
    *out = l->st;
    out->paused = l->paused != PAUSE_NONE;
}
