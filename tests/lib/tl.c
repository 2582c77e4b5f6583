/*
 * tl.c - the core of the test library: suites, running a loop until a condition or a
 * deadline, temporary files, a configuration's dump (tl.h says what each does).
 *
 * A wait on a real loop keeps two events on the base while it runs: a persistent 1 ms tick,
 * which bounds each blocking pass, and nothing else; the deadline is read from the
 * monotonic clock, so a pass that overruns is caught on the next check. Both are freed
 * before the wait returns. On a simulated loop nothing is added to the base (it may hold no
 * timers of its own): time moves with mg_loop_step and mg_loop_advance only.
 * Failure modes: a livelock of a simulated loop and file errors fail the calling test.
 */
#include "lib/tl.h"
#include "config/cfg.h"

#include "util/alloc.h"
#include "util/loop.h"

#include <event2/event.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

/* ---- suites ---------------------------------------------------------------------------- */

int tl_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

TCase *tl_tcase(Suite *s, const char *name, double timeout_s, void (*setup)(void),
                void (*teardown)(void))
{
    TCase *tc = tcase_create(name);
    if (timeout_s > 0)
        tcase_set_timeout(tc, timeout_s);
    if (setup || teardown)
        tcase_add_checked_fixture(tc, setup, teardown);
    suite_add_tcase(s, tc);
    return tc;
}

void tl_add_list(TCase *tc, const TTest *const *tests)
{
    for (; *tests; tests++)
        tcase_add_test(tc, *tests);
}

int tl_main(const char *name, const struct tl_case *cases)
{
    Suite *s = suite_create(name);
    for (; cases->name; cases++)
        tl_add_list(tl_tcase(s, cases->name, cases->timeout_s, cases->setup, cases->teardown),
                    cases->tests);
    return tl_run(s);
}

/* ---- running a loop ---------------------------------------------------------------------- */

uint64_t tl_wait_ms(const struct mg_loop *l)
{
    return mg_loop_is_sim(l) ? TL_SIM_WAIT_MS : TL_REAL_WAIT_MS;
}

static void tl_tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

bool tl_base_until(struct event_base *b, tl_cond cond, const void *arg, uint64_t ms)
{
    if (cond(arg))
        return true;
    struct event *tick = event_new(b, -1, EV_PERSIST, tl_tick_cb, NULL);
    ck_assert_ptr_nonnull(tick);
    struct timeval one = {0, 1000};
    event_add(tick, &one);
    uint64_t end = mg_mono_ms() + ms;
    bool ok;
    while (!(ok = cond(arg)) && mg_mono_ms() < end)
        event_base_loop(b, EVLOOP_ONCE);
    event_free(tick);
    return ok;
}

bool tl_until(struct mg_loop *l, tl_cond cond, const void *arg, uint64_t ms)
{
    if (!mg_loop_is_sim(l))
        return tl_base_until(mg_loop_base(l), cond, arg, ms);
    uint64_t end = mg_loop_mono_ms(l) + ms;
    tl_run_due(l);
    bool ok;
    while (!(ok = cond(arg)) && mg_loop_mono_ms(l) < end &&
           mg_loop_step(l, end - mg_loop_mono_ms(l)))
        ;
    return ok;
}

static bool tl_flag_set(const void *arg)
{
    return *(const bool *)arg;
}

bool tl_until_flag(struct mg_loop *l, const bool *flag, uint64_t ms)
{
    return tl_until(l, tl_flag_set, flag, ms);
}

struct tl_count {
    const int *v;
    int want;
};

static bool tl_count_reached(const void *arg)
{
    const struct tl_count *c = arg;
    return *c->v >= c->want;
}

int tl_until_count(struct mg_loop *l, const int *v, int want, uint64_t ms)
{
    struct tl_count c = {v, want};
    tl_until(l, tl_count_reached, &c, ms);
    return *v;
}

static bool tl_never(const void *arg)
{
    (void)arg;
    return false;
}

void tl_base_run_for(struct event_base *b, uint64_t ms)
{
    tl_base_until(b, tl_never, NULL, ms);
}

void tl_run_for(struct mg_loop *l, uint64_t ms)
{
    if (mg_loop_is_sim(l))
        ck_assert_msg(mg_loop_advance(l, ms) >= 0, "simulated loop: livelock");
    else
        tl_base_run_for(mg_loop_base(l), ms);
}

void tl_run_due(struct mg_loop *l)
{
    ck_assert_msg(mg_loop_run_due(l) >= 0, "simulated loop: livelock");
}

void tl_passes(struct event_base *b, int n)
{
    for (int i = 0; i < n; i++)
        event_base_loop(b, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

/* ---- the descriptor limit ------------------------------------------------------------------ */

static struct rlimit tl_saved_nofile;

void tl_nofile_save(void)
{
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &tl_saved_nofile), 0);
}

void tl_nofile_restore(void)
{
    setrlimit(RLIMIT_NOFILE, &tl_saved_nofile);
}

/* ---- files ----------------------------------------------------------------------------- */

char *tl_tmpdir(const char *name)
{
    const char *t = getenv("TMPDIR");
    char *d = mg_asprintf("%s/%s.XXXXXX", t && *t ? t : "/tmp", name);
    ck_assert_msg(mkdtemp(d) != NULL, "mkdtemp %s failed", d);
    return d;
}

static int tl_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 ? 0 : -1;
}

void tl_rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    ck_assert_msg(nftw(path, tl_rm_entry, 16, FTW_DEPTH | FTW_PHYS) == 0, "cannot remove %s", path);
}

void tl_tmpdir_free(char **dir)
{
    if (!*dir)
        return;
    tl_rm_rf(*dir);
    mg_free(*dir);
    *dir = NULL;
}

void tl_make_cert(const char *dir, const char *name, int serial)
{
    char *cmd =
        mg_asprintf("sh '%s/tests/lib/mkcert.sh' '%s' '%s' %d", TL_TOP_SRCDIR, dir, name, serial);
    ck_assert_msg(system(cmd) == 0, "openssl failed: %s", cmd);
    mg_free(cmd);
}

char *tl_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    long sz = ftell(f);
    ck_assert_int_ge(sz, 0);
    ck_assert_int_eq(fseek(f, 0, SEEK_SET), 0);
    char *b = mg_malloc((size_t)sz + 1);
    ck_assert_uint_eq(fread(b, 1, (size_t)sz, f), (size_t)sz);
    fclose(f);
    b[sz] = '\0';
    if (len)
        *len = (size_t)sz;
    return b;
}

int64_t tl_file_size(const char *path)
{
    struct stat st;
    ck_assert_msg(stat(path, &st) == 0, "cannot stat %s", path);
    return (int64_t)st.st_size;
}

char *tl_cfg_dump(const struct cfg *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(cfg_dump(c, f), 0);
    ck_assert_int_eq(fclose(f), 0);
    char *out = mg_strndup(buf, len);
    free(buf); /* open_memstream's, from malloc */
    return out;
}
