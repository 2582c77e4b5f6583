/*
 * check_listen.c - the listener (broker/util/listen.c) over loopback sockets: accepting
 * pauses and retries on a timer when the process is out of descriptors (EMFILE), stops at
 * the descriptor reserve before it gets there, and pauses at max_conns; each resumes when a
 * connection closes.
 *
 * Each test listens on 127.0.0.1:0 and connects NCLIENTS non-blocking sockets made before
 * the descriptor limit is lowered, then runs the loop for a while in real time (the pauses
 * are timers) and counts what was accepted and how much CPU the retries took. The soft
 * RLIMIT_NOFILE is restored after every test, failed or not. (The descriptor helpers
 * themselves, without sockets, are check_util's.)
 * Failure modes: each test asserts with Check; run with CK_FORK=no under ASan.
 */
#include "lib/tl.h"
#include "util/listen.h"
#include "util/log.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define NCLIENTS 10

struct lfx {
    struct event_base *base;
    struct mg_listener *l;
    int accepted[64];
    int n_accepted;
    int clients[NCLIENTS];
    struct rlimit saved;
};

static void keep_fd(void *arg, int fd, const struct sockaddr *addr, int socklen)
{
    (void)addr;
    (void)socklen;
    struct lfx *x = arg;
    ck_assert_int_lt(x->n_accepted, 64);
    x->accepted[x->n_accepted++] = fd;
}

static void lfx_start(struct lfx *x, const struct mg_listener_options *o)
{
    memset(x, 0, sizeof *x);
    mg_log_set_level(MG_LOG_ERROR);
    getrlimit(RLIMIT_NOFILE, &x->saved);
    x->base = event_base_new();
    x->l = mg_listener_new(x->base, "127.0.0.1", 0, o, keep_fd, x);
    ck_assert_ptr_nonnull(x->l);
    for (int i = 0; i < NCLIENTS; i++) {
        x->clients[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        ck_assert_int_ge(x->clients[i], 0);
    }
}

/* Connect every client (no new descriptor needed: the sockets exist). */
static void lfx_connect_all(struct lfx *x)
{
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)mg_listener_port(x->l));
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    for (int i = 0; i < NCLIENTS; i++) {
        int rc = connect(x->clients[i], (struct sockaddr *)&sin, sizeof sin);
        ck_assert(rc == 0 || errno == EINPROGRESS);
    }
}

static void lfx_pump_ms(struct lfx *x, int ms)
{
    tl_base_run_for(x->base, (uint64_t)ms);
}

static bool all_but_one_accepted(const void *arg)
{
    const struct lfx *x = arg;
    return x->n_accepted >= NCLIENTS - 1;
}

static void lfx_close_one(struct lfx *x)
{
    ck_assert_int_gt(x->n_accepted, 0);
    close(x->accepted[--x->n_accepted]);
    mg_listener_conn_closed(x->l);
}

static void lfx_stop(struct lfx *x)
{
    setrlimit(RLIMIT_NOFILE, &x->saved);
    while (x->n_accepted > 0)
        close(x->accepted[--x->n_accepted]);
    for (int i = 0; i < NCLIENTS; i++)
        close(x->clients[i]);
    mg_listener_free(x->l);
    event_base_free(x->base);
}

static void set_soft_limit(int n)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = (rlim_t)n;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

/* Lower the soft limit until exactly `room` descriptors are free under it (descriptors
 * inherited above the limit take no room below it, so the first guess can be off). */
static void leave_free(int room)
{
    for (int i = 0; i < 64; i++) {
        int f = mg_fds_free();
        if (f == room)
            return;
        set_soft_limit(mg_fds_limit() - f + room);
    }
    ck_abort_msg("cannot leave exactly %d descriptors free", room);
}

static double cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec * 1e3 + (double)ru.ru_utime.tv_usec / 1e3 +
           (double)ru.ru_stime.tv_sec * 1e3 + (double)ru.ru_stime.tv_usec / 1e3;
}

/* Listen with o, leave room descriptors free (room < 0: the limit as it is), connect every
 * client and run the loop for ms; the listener's stats then in *st. Returns the CPU time
 * (ms) the process used meanwhile. */
static double lfx_run(struct lfx *x, const struct mg_listener_options *o, int room, int ms,
                      struct mg_listener_stats *st)
{
    lfx_start(x, o);
    if (room >= 0)
        leave_free(room);
    lfx_connect_all(x);
    double c0 = cpu_ms();
    lfx_pump_ms(x, ms);
    double used = cpu_ms() - c0;
    mg_listener_get_stats(x->l, st);
    return used;
}

/* Out of descriptors (EMFILE): accepting pauses and retries on a timer; no busy loop, a
 * bounded number of failed accept() calls; once descriptors are free again the waiting
 * clients are all accepted. */
START_TEST(test_listener_emfile_pauses)
{
    struct lfx x;
    struct mg_listener_options o = {.name = "test"};
    struct mg_listener_stats st;
    double used = lfx_run(&x, &o, 2, 400, &st); /* room for two accepts, then EMFILE */
    ck_assert_int_eq(x.n_accepted, 2);
    ck_assert(st.paused);
    ck_assert_int_ge(st.accept_errors, 1);
    /* 400 ms of retries at 100 ms, then 200 ms: a handful, not thousands */
    ck_assert_msg(st.accept_errors <= 6, "%lld failed accepts in 400 ms",
                  (long long)st.accept_errors);
    ck_assert_msg(used < 200, "%.0f ms of CPU in 400 ms while out of descriptors", used);
    /* descriptors come back: everyone waiting is accepted */
    setrlimit(RLIMIT_NOFILE, &x.saved);
    lfx_close_one(&x);
    tl_base_until(x.base, all_but_one_accepted, &x, 1000);
    ck_assert_int_eq(x.n_accepted, NCLIENTS - 1);
    mg_listener_get_stats(x.l, &st);
    ck_assert(!st.paused);
    lfx_stop(&x);
}
END_TEST

/* Below the descriptor reserve the listener stops before the process runs out; a close
 * lets one more in. */
START_TEST(test_listener_keeps_reserve)
{
    struct lfx x;
    struct mg_listener_options o = {.name = "test", .reserve_fds = 16};
    struct mg_listener_stats st;
    lfx_run(&x, &o, 19, 300, &st); /* three accepts leave the reserve's 16 */
    ck_assert_int_eq(x.n_accepted, 3);
    ck_assert(st.paused);
    ck_assert_int_eq(st.accept_errors, 0);
    ck_assert_int_eq(st.refused, 0);
    ck_assert_int_eq(mg_fds_free(), 16);
    lfx_close_one(&x);
    lfx_pump_ms(&x, 50);
    ck_assert_int_eq(x.n_accepted, 3);
    lfx_stop(&x);
}
END_TEST

/* max_conns: accepting pauses at the bound and resumes on a close. */
START_TEST(test_listener_max_conns)
{
    struct lfx x;
    struct mg_listener_options o = {.name = "test", .max_conns = 4};
    struct mg_listener_stats st;
    lfx_run(&x, &o, -1, 200, &st);
    ck_assert_int_eq(x.n_accepted, 4);
    ck_assert_int_eq(st.open_conns, 4);
    ck_assert(st.paused);
    lfx_close_one(&x);
    lfx_close_one(&x);
    lfx_pump_ms(&x, 100);
    ck_assert_int_eq(x.n_accepted, 4);
    mg_listener_get_stats(x.l, &st);
    ck_assert_int_eq(st.accepted, 6);
    lfx_stop(&x);
}
END_TEST

int main(void)
{
    return tl_main("listen",
                   TL_CASES({"listen", 30, tl_nofile_save, tl_nofile_restore,
                             TL_TESTS(test_listener_emfile_pauses, test_listener_keeps_reserve,
                                      test_listener_max_conns)}));
}
