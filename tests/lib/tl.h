/*
 * tl.h - the test library (tests/lib, prefix tl_): what the Check programs of tests/unit and
 * tests/integration share, written once.
 *
 *   tl.h         running a suite; running a loop until a condition holds or a deadline
 *                passes (simulated time on a simulated loop, the monotonic clock on a real
 *                one); temporary directories and files; a configuration's dump
 *   tl_bk.h      metadata-store calls made synchronous; BookKeeper client requests and
 *                batches of adds; fake bookies on a simulated loop; in-process bookies
 *   tl_bk_ops.h  one sub-request of each v3 operation besides add and read (header only,
 *                without Check: the BookKeeper seed-corpus generator uses it too)
 *   tl_ml.h      the outcome of an ml_open (header only, without Check: the simulation
 *                uses it too)
 *   tl_pulsar.h  Pulsar frames: commands built in one call, and a peer that sends frames and
 *                awaits them over a socket on the test's loop (either side of a connection)
 *   tl_svc.h     brokers in this process, whole (svc_new) or made of their parts without
 *                listeners (connections over bufferevent pairs, simulated loops): their
 *                configuration, one in-memory metadata tree shared by their sessions
 *
 * Six headers, one prefix: the BookKeeper and Pulsar helpers pull in their protocols'
 * generated types, which a suite of the other side (or of neither) has no use for, and the
 * brokers the whole service.
 *
 * Every helper asserts with Check, so a failure fails the calling test: they are for Check
 * programs, linked with $(TL_LIBS) (tests/Makefile.inc). Every wait is bounded; on a
 * simulated loop it never sleeps (time jumps to the next timer). Like the tests, the
 * helpers are single-threaded: they run on the test's thread and its loop.
 */
#ifndef MG_TL_H
#define MG_TL_H

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct mg_loop;

/* ---- suites ---------------------------------------------------------------------------- */

/* Run every test of s (Check's CK_NORMAL output; CK_FORK from the environment) and free it;
 * returns main's exit status: EXIT_SUCCESS when none failed. */
int tl_run(Suite *s);
/* A test case named name added to s, with a timeout (seconds; 0: Check's default) and a
 * checked fixture (both NULL: none). */
TCase *tl_tcase(Suite *s, const char *name, double timeout_s, void (*setup)(void),
                void (*teardown)(void));
/* Add the tests of a NULL-terminated list to tc, in order. */
void tl_add_list(TCase *tc, const TTest *const *tests);
/* tl_add(tc, test_a, test_b, ...): the same with the tests as arguments. */
#define tl_add(tc, ...) tl_add_list((tc), (const TTest *const[]){__VA_ARGS__, NULL})
/* A NULL-terminated list of tests: TL_TESTS(test_a, test_b, ...). */
#define TL_TESTS(...) ((const TTest *const[]){__VA_ARGS__, NULL})
/* One test case of a suite: what tl_tcase takes, and its tests (TL_TESTS). */
struct tl_case {
    const char *name;
    double timeout_s;
    void (*setup)(void);
    void (*teardown)(void);
    const TTest *const *tests;
};
/* A list of cases ended by one without a name: TL_CASES({"core", 0, setup, teardown,
 * TL_TESTS(...)}, ...). */
#define TL_CASES(...) ((const struct tl_case[]){__VA_ARGS__, {0}})
/* A suite named name with the cases of a TL_CASES list, run (tl_run): main's exit status. */
int tl_main(const char *name, const struct tl_case *cases);

/* ---- running a loop ---------------------------------------------------------------------- */

/* The default bound of a wait: simulated ms on a simulated loop, wall ms on a real one. */
#define TL_SIM_WAIT_MS 120000
#define TL_REAL_WAIT_MS 10000
uint64_t tl_wait_ms(const struct mg_loop *l);

typedef bool (*tl_cond)(const void *arg);

/* Run l until cond(arg) holds or ms have passed; returns cond's last value. On a simulated
 * loop: what is due runs, then time moves from timer to timer (never past the deadline, and
 * not at all when no timer is pending within it: nothing could change then). On a real
 * loop: blocking passes of its base with a 1 ms tick, so that a condition no event of the
 * test signals is seen within 1 ms. cond may itself run the loop. */
bool tl_until(struct mg_loop *l, tl_cond cond, const void *arg, uint64_t ms);
/* The same for a base without a loop context (real time). */
bool tl_base_until(struct event_base *b, tl_cond cond, const void *arg, uint64_t ms);
/* tl_until on *flag becoming true. */
bool tl_until_flag(struct mg_loop *l, const bool *flag, uint64_t ms);
/* tl_until on *v >= want; returns *v. */
int tl_until_count(struct mg_loop *l, const int *v, int want, uint64_t ms);
/* Wait for *flag within tl_wait_ms(l), failing the test (naming the flag) if it stays false. */
#define tl_wait(l, flag)                                                                           \
    ck_assert_msg(tl_until_flag((l), (flag), tl_wait_ms(l)), "timed out waiting for %s", #flag)

/* Let ms pass: a simulated loop advances by exactly ms (its timers fire on the way); a real
 * one runs its events until ms have passed on the monotonic clock. */
void tl_run_for(struct mg_loop *l, uint64_t ms);
void tl_base_run_for(struct event_base *b, uint64_t ms);
/* Simulated loop: run what is due now without moving time (fails on a livelock). */
void tl_run_due(struct mg_loop *l);
/* n non-blocking passes of b: what is ready runs, nothing waits. */
void tl_passes(struct event_base *b, int n);

/* ---- the descriptor limit ------------------------------------------------------------------ */

/* A fixture pair for tests that lower RLIMIT_NOFILE: save it; restore it (also after a failed
 * test, so that the next ones get their descriptors back). */
void tl_nofile_save(void);
void tl_nofile_restore(void);

/* ---- files ----------------------------------------------------------------------------- */

/* A new empty directory $TMPDIR/<name>.XXXXXX ($TMPDIR: /tmp when unset); the path is owned
 * by the caller (mg_free). */
char *tl_tmpdir(const char *name);
/* Remove path and everything below it (a missing path is fine). */
void tl_rm_rf(const char *path);
/* Remove the directory *dir (from tl_tmpdir) with everything below it, free its path and set
 * *dir to NULL; nothing when *dir is NULL. */
void tl_tmpdir_free(char **dir);
/* The whole file, NUL-terminated (owned: mg_free); its length in *len when len is not NULL. */
char *tl_read_file(const char *path, size_t *len);
/* tests/lib/mkcert.sh DIR NAME SERIAL: NAME's key and certificate (dir/NAME.key, .pem;
 * CN=NAME, for 127.0.0.1) signed by dir's test CA (dir/ca.pem, made by the first call). */
void tl_make_cert(const char *dir, const char *name, int serial);
/* path's size in bytes (it must exist). */
int64_t tl_file_size(const char *path);

/* ---- configuration ------------------------------------------------------------------------ */

struct cfg;
/* What cfg_dump writes for c (it must succeed), NUL-terminated (owned: mg_free). */
char *tl_cfg_dump(const struct cfg *c);

#endif
