/*
 * ar_shell.c - `magnetar shell`: BookKeeper shell's operator commands for the bookie cluster
 * of metadataStoreUrl, with their names and output (bookkeeper shell 4.17):
 *
 *   listbookies [-rw|-ro|-a]       the registered bookies (writable, read-only, all)
 *   autorecovery [-enable|-disable] show or switch the replication workers (BookKeeper's
 *                                  underreplication/disable node)
 *   lostbookierecoverydelay -get|-set N
 *                                  the delay the auditor uses (its znode wins over the
 *                                  configuration once the first auditor created it)
 *   listledgers                    every ledger's id
 *   listunderreplicated            the ledgers marked under-replicated, with the missing
 *                                  replicas and the worker holding the lock
 *   ledgermetadata -l <id>         one ledger's metadata
 *   recover [-f] [-sk] <bookie,..> re-replicate every fragment of bookies that are gone
 *   decommissionbookie -bookieid <bookie>
 *                                  the same for one bookie, then its cookie is deleted
 *
 * recover and decommissionbookie need the bookies to be gone from the registration (their
 * fragments are copied from the other replicas): they mark every ledger naming them
 * under-replicated, first closing (recovery open, which fences the writer) an open ledger
 * whose last ensemble names them unless -sk, as BookKeeper's recover does, then run a
 * replication worker in this process (next to the cluster's own) until no mark of theirs is
 * left, and check that no ledger names the bookies any more.
 *
 * The commands run the loop until each request completes; every request is bounded by the
 * metadata store's operation timeout and the bookie request timeout. Exit codes: 0, 1 (the
 * command failed: message on stderr), 2 (usage).
 */
#include "autorec/ar_int.h"
#include "config/cfg.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"

#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

#define AR_SH_USAGE 2
#define AR_SH_RECOVER_TIMEOUT_S 3600

struct ar_sh {
    struct cfg cfg;
    struct event_base *base;
    struct mg_loop *loop;
    struct meta_store *meta;
    struct bkc_client *bkc;
    struct ar *worker;  /* owned: recover's worker, freed once the store is closed */
    struct event *tick; /* wakes the loop: the waits check their flag at least every 50 ms */
    const char *root;
};

struct ar_sh_done {
    bool done;
    int status;
};

static void ar_sh_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

/* Run the loop until *done. */
static void ar_sh_run(struct ar_sh *s, const bool *done)
{
    while (!*done)
        event_base_loop(s->base, EVLOOP_ONCE);
}

/* Run the loop for ms. */
static void ar_sh_run_for(struct ar_sh *s, uint64_t ms)
{
    uint64_t end = mg_mono_ms() + ms;
    while (mg_mono_ms() < end)
        event_base_loop(s->base, EVLOOP_ONCE);
}

static void ar_sh_meta_cb(struct meta_req *r, int status)
{
    struct ar_sh_done *d = r->data;
    d->done = true;
    d->status = status;
}

/* meta_get ('g') / meta_children ('c') / meta_put: create ('p') or set ('s') / meta_delete ('d'),
 * waited for. The answer stays in *r
 * (meta_req_fini it). */
static int ar_sh_meta(struct ar_sh *s, char op, const char *path, const char *value,
                      struct meta_req *r)
{
    struct ar_sh_done d = {0};
    memset(r, 0, sizeof(*r));
    r->data = &d;
    int rc = op == 'g'   ? meta_get(s->meta, path, r, ar_sh_meta_cb)
             : op == 'c' ? meta_children(s->meta, path, r, ar_sh_meta_cb)
             : op == 'd' ? meta_delete(s->meta, path, META_VERSION_ANY, r, ar_sh_meta_cb)
                         : meta_put(s->meta, path, value, strlen(value),
                                    op == 's' ? META_VERSION_ANY : META_VERSION_NONE,
                                    META_CREATE_PARENTS, r, ar_sh_meta_cb);
    if (rc < 0)
        return rc;
    ar_sh_run(s, &d.done);
    return d.status;
}

static void ar_sh_walk_cb(struct ar_walk *w, int status)
{
    struct ar_sh_done *d = w->data;
    d->done = true;
    d->status = status;
}

static int ar_sh_walk(struct ar_sh *s, const char *top, enum ar_walk_kind kind, struct ar_walk *w)
{
    struct ar_sh_done d = {0};
    memset(w, 0, sizeof(*w));
    int rc = ar_walk_start(w, s->meta, top, kind, ar_sh_walk_cb, &d);
    if (rc < 0)
        return rc;
    ar_sh_run(s, &d.done);
    return d.status;
}

static void ar_sh_bkc_cb(struct bkc_req *req, int status)
{
    struct ar_sh_done *d = req->data;
    d->done = true;
    d->status = status;
}

static int ar_sh_open(struct ar_sh *s, int64_t id, bool recovery, struct bkc_ledger **out)
{
    struct ar_sh_done d = {0};
    struct bkc_req req = {0};
    req.data = &d;
    *out = NULL;
    int rc = bkc_open(s->bkc, id, recovery, &req, ar_sh_bkc_cb);
    if (rc < 0)
        return rc;
    ar_sh_run(s, &d.done);
    if (d.status == 0)
        *out = req.ledger;
    else if (req.errmsg[0])
        fprintf(stderr, "ledger %" PRId64 ": %s\n", id, req.errmsg);
    return d.status;
}

/* The registered bookies: writable (*rw) and read-only (*ro). */
static int ar_sh_bookies(struct ar_sh *s, struct ar_ids *rw, struct ar_ids *ro)
{
    struct meta_req r;
    char *p = mg_asprintf("%s/available", s->root);
    int rc = ar_sh_meta(s, 'c', p, NULL, &r);
    for (int i = 0; rc == 0 && i < r.n_children; i++)
        if (strcmp(r.children[i], "readonly") != 0)
            ar_ids_add(rw, r.children[i]);
    meta_req_fini(&r);
    char *q = mg_asprintf("%s/readonly", p);
    int rc2 = ar_sh_meta(s, 'c', q, NULL, &r);
    for (int i = 0; rc2 == 0 && i < r.n_children; i++)
        ar_ids_add(ro, r.children[i]);
    meta_req_fini(&r);
    mg_free(p);
    mg_free(q);
    if (rc < 0 && rc != -MG_ENOTFOUND)
        return rc;
    return rc2 < 0 && rc2 != -MG_ENOTFOUND ? rc2 : 0;
}

/* ---- listbookies ---------------------------------------------------------------------------- */

static void ar_sh_print_bookies(const char *title, const struct ar_ids *ids)
{
    printf("%s :\n", title);
    if (ids->n == 0)
        printf("No bookie exists!\n");
    for (int i = 0; i < ids->n; i++) {
        const char *colon = strrchr(ids->v[i], ':');
        int hl = colon ? (int)(colon - ids->v[i]) : (int)strlen(ids->v[i]);
        printf("BookieID:%s, IP:%.*s, Port:%s, Hostname:%.*s\n", ids->v[i], hl, ids->v[i],
               colon ? colon + 1 : "", hl, ids->v[i]);
    }
}

static int ar_sh_listbookies(struct ar_sh *s, int argc, char **argv)
{
    bool rw = false, ro = false, all = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-rw") || !strcmp(argv[i], "--readwrite"))
            rw = true;
        else if (!strcmp(argv[i], "-ro") || !strcmp(argv[i], "--readonly"))
            ro = true;
        else if (!strcmp(argv[i], "-a") || !strcmp(argv[i], "--all"))
            all = true;
        else {
            fprintf(stderr, "listbookies: unknown option '%s' (-rw, -ro or -a)\n", argv[i]);
            return AR_SH_USAGE;
        }
    }
    if (!rw && !ro && !all)
        rw = ro = all = true;
    struct ar_ids w = {0}, r = {0}, a = {0};
    int rc = ar_sh_bookies(s, &w, &r);
    if (rc < 0) {
        fprintf(stderr, "listbookies: %s\n", mg_strerror(rc));
        return 1;
    }
    for (int i = 0; i < w.n; i++)
        ar_ids_add(&a, w.v[i]);
    for (int i = 0; i < r.n; i++)
        ar_ids_add(&a, r.v[i]);
    if (rw)
        ar_sh_print_bookies("ReadWrite Bookies", &w);
    if (ro)
        ar_sh_print_bookies("Readonly Bookies", &r);
    if (all)
        ar_sh_print_bookies("All Bookies", &a);
    ar_ids_fini(&w);
    ar_ids_fini(&r);
    ar_ids_fini(&a);
    return 0;
}

/* ---- listunderreplicated -------------------------------------------------------------------- */

static int ar_sh_listunderreplicated(struct ar_sh *s)
{
    struct ar_walk w;
    char *top = mg_asprintf("%s/underreplication/ledgers", s->root);
    int rc = ar_sh_walk(s, top, AR_WALK_MARKS, &w);
    mg_free(top);
    if (rc < 0 && rc != -MG_ENOTFOUND) {
        fprintf(stderr, "listunderreplicated: %s\n", mg_strerror(rc));
        ar_walk_fini(&w);
        return 1;
    }
    for (int i = 0; i < w.n_ids; i++) {
        printf("%" PRId64 "\n", w.ids[i]);
        struct meta_req r;
        char *p = ar_ur_path(s->root, w.ids[i]);
        if (ar_sh_meta(s, 'g', p, NULL, &r) == 0 && r.value) {
            const char *ct = strstr(r.value, "ctime: ");
            if (ct)
                printf("\tCtime : %lld\n", strtoll(ct + 7, NULL, 10));
            for (const char *q = r.value; (q = strstr(q, "replica: \"")); q++) {
                const char *b = q + 10, *e = strchr(b, '"');
                if (e)
                    printf("\tMissingReplica : %.*s\n", (int)(e - b), b);
            }
        }
        meta_req_fini(&r);
        mg_free(p);
        p = ar_lock_path(s->root, w.ids[i]);
        if (ar_sh_meta(s, 'g', p, NULL, &r) == 0 && r.value)
            printf("\tReplicationWorkerId : %s\n", r.value);
        meta_req_fini(&r);
        mg_free(p);
    }
    printf("Under replicated ledger count: %d\n", w.n_ids);
    ar_walk_fini(&w);
    return 0;
}

/* ---- autorecovery -enable|-disable --------------------------------------------------------- */

static int ar_sh_autorecovery(struct ar_sh *s, int argc, char **argv)
{
    int want = -1; /* -1: show */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-enable") || !strcmp(argv[i], "--enable"))
            want = 1;
        else if (!strcmp(argv[i], "-disable") || !strcmp(argv[i], "--disable"))
            want = 0;
        else {
            fprintf(stderr, "usage: magnetar shell autorecovery [-enable|-disable]\n");
            return AR_SH_USAGE;
        }
    }
    struct meta_req r;
    char *p = mg_asprintf("%s/underreplication/disable", s->root);
    int rc = want < 0   ? ar_sh_meta(s, 'g', p, NULL, &r)
             : want > 0 ? ar_sh_meta(s, 'd', p, NULL, &r)
                        : ar_sh_meta(s, 'p', p, "", &r);
    meta_req_fini(&r);
    mg_free(p);
    if (rc < 0 && rc != -MG_ENOTFOUND && rc != -MG_EEXIST) {
        fprintf(stderr, "autorecovery: %s\n", mg_strerror(rc));
        return 1;
    }
    bool enabled = want >= 0 ? want == 1 : rc == -MG_ENOTFOUND;
    printf("Autorecovery is %s\n", enabled ? "enabled" : "disabled");
    return 0;
}

/* ---- lostbookierecoverydelay -get|-set N ---------------------------------------------------- */

static int ar_sh_delay(struct ar_sh *s, int argc, char **argv)
{
    const char *set = NULL;
    bool get = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-get") || !strcmp(argv[i], "--get"))
            get = true;
        else if ((!strcmp(argv[i], "-set") || !strcmp(argv[i], "--set")) && i + 1 < argc)
            set = argv[++i];
        else {
            fprintf(stderr, "lostbookierecoverydelay: unknown option '%s'\n", argv[i]);
            return AR_SH_USAGE;
        }
    }
    char *end = NULL;
    long v = set ? strtol(set, &end, 10) : 0;
    if (get == (set != NULL) || (set && (*end || end == set || v < 0 || v > INT32_MAX / 1000))) {
        fprintf(stderr, "usage: magnetar shell lostbookierecoverydelay -get | -set <seconds>\n");
        return AR_SH_USAGE;
    }
    struct meta_req r;
    char *p = mg_asprintf("%s/underreplication/lostBookieRecoveryDelay", s->root);
    char val[24];
    snprintf(val, sizeof(val), "%ld", v);
    int rc = ar_sh_meta(s, set ? 's' : 'g', p, val, &r);
    if (rc == 0 && get)
        printf("LostBookieRecoveryDelay value in ZK: %s\n", r.value ? r.value : "");
    else if (rc == 0)
        printf("Successfully set LostBookieRecoveryDelay value in ZK to: %ld\n", v);
    else
        fprintf(stderr, "lostbookierecoverydelay: %s: %s\n", p,
                rc == -MG_ENOTFOUND ? "not set yet (the first auditor stores the configured value)"
                                    : mg_strerror(rc));
    meta_req_fini(&r);
    mg_free(p);
    return rc == 0 ? 0 : 1;
}

/* ---- listledgers ---------------------------------------------------------------------------- */

static int ar_sh_listledgers(struct ar_sh *s)
{
    struct ar_walk w;
    int rc = ar_sh_walk(s, s->root, AR_WALK_LEDGERS, &w);
    if (rc < 0 && rc != -MG_ENOTFOUND) {
        fprintf(stderr, "listledgers: %s\n", mg_strerror(rc));
        ar_walk_fini(&w);
        return 1;
    }
    for (int i = 0; i < w.n_ids; i++)
        printf("ledgerID: %" PRId64 "\n", w.ids[i]);
    ar_walk_fini(&w);
    return 0;
}

/* ---- ledgermetadata ------------------------------------------------------------------------- */

static int ar_sh_ledgermetadata(struct ar_sh *s, int argc, char **argv)
{
    const char *arg = NULL;
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "-l") || !strcmp(argv[i], "--ledgerid")) && i + 1 < argc)
            arg = argv[++i];
        else if (argv[i][0] != '-')
            arg = argv[i];
    }
    char *end = NULL;
    long long id = arg ? strtoll(arg, &end, 10) : -1;
    if (!arg || *end || id < 0) {
        fprintf(stderr, "usage: magnetar shell ledgermetadata -l <ledger id>\n");
        return AR_SH_USAGE;
    }
    struct meta_req r;
    char *p = bkc_ledger_path(s->root, id);
    int rc = ar_sh_meta(s, 'g', p, NULL, &r);
    mg_free(p);
    if (rc < 0) {
        fprintf(stderr, "ledgermetadata: ledger %lld: %s\n", id,
                rc == -MG_ENOTFOUND ? "no such ledger" : mg_strerror(rc));
        meta_req_fini(&r);
        return 1;
    }
    char *txt = bkc_md_describe(r.value, r.len);
    meta_req_fini(&r);
    if (!txt) {
        fprintf(stderr, "ledgermetadata: ledger %lld: corrupt metadata\n", id);
        return 1;
    }
    printf("ledgerID: %lld\n%s\n", id, txt);
    mg_free(txt);
    return 0;
}

/* ---- recover / decommissionbookie ----------------------------------------------------------- */

/* Does segment seg of lh name a bookie of set? */
static bool ar_sh_names(const struct bkc_ledger *lh, int seg, const struct ar_ids *set)
{
    for (int i = 0; i < bkc_ledger_ensemble_size(lh); i++)
        if (ar_ids_has(set, bkc_ledger_segment_bookie(lh, seg, i)))
            return true;
    return false;
}

/* Walk every ledger: with mark, put a mark on each naming a bookie of set (closing an open one
 * whose last ensemble names one first, unless skip_open); count those still naming one. */
static int ar_sh_scan(struct ar_sh *s, const struct ar_ids *set, bool mark, bool skip_open,
                      int *count)
{
    struct ar_walk w;
    *count = 0;
    int rc = ar_sh_walk(s, s->root, AR_WALK_LEDGERS, &w);
    for (int i = 0; rc == 0 && i < w.n_ids; i++) {
        struct bkc_ledger *lh;
        int st = ar_sh_open(s, w.ids[i], false, &lh);
        if (st == -MG_ENOTFOUND)
            continue;
        if (st < 0) {
            rc = st;
            break;
        }
        int n = bkc_ledger_num_segments(lh);
        bool on = false;
        for (int g = 0; g < n; g++)
            on |= ar_sh_names(lh, g, set);
        bool open_last = !bkc_ledger_is_closed(lh) && ar_sh_names(lh, n - 1, set);
        bkc_ledger_free(lh);
        if (!on || (!mark && skip_open && open_last))
            continue; /* (-sk: an open ledger's last fragment stays the writer's) */
        (*count)++;
        if (!mark)
            continue;
        if (open_last && !skip_open) {
            printf("ledger %" PRId64 " is open on the bookie: recovering (fences its writer)\n",
                   w.ids[i]);
            st = ar_sh_open(s, w.ids[i], true, &lh);
            bkc_ledger_free(lh);
            if (st < 0) {
                rc = st;
                break;
            }
        }
        char *p = ar_ur_path(s->root, w.ids[i]);
        char *data = ar_ur_data(set->v, set->n, mg_wall_ms());
        struct meta_req r;
        st = ar_sh_meta(s, 'p', p, data, &r);
        meta_req_fini(&r);
        mg_free(p);
        mg_free(data);
        if (st < 0 && st != -MG_EEXIST) {
            rc = st;
            break;
        }
    }
    ar_walk_fini(&w);
    return rc;
}

static int ar_sh_rereplicate(struct ar_sh *s, const char *what, const struct ar_ids *set,
                             bool skip_open, int timeout_s)
{
    struct ar_ids rw = {0}, ro = {0};
    int rc = ar_sh_bookies(s, &rw, &ro);
    for (int i = 0; rc == 0 && i < set->n; i++)
        if (ar_ids_has(&rw, set->v[i]) || ar_ids_has(&ro, set->v[i])) {
            fprintf(stderr,
                    "%s: bookie %s is still registered (running): stop it first; its "
                    "fragments are copied from the other replicas\n",
                    what, set->v[i]);
            rc = -MG_EBUSY;
        }
    ar_ids_fini(&rw);
    ar_ids_fini(&ro);
    if (rc < 0) {
        if (rc != -MG_EBUSY)
            fprintf(stderr, "%s: listing the bookies: %s\n", what, mg_strerror(rc));
        return 1;
    }
    int n = 0;
    rc = ar_sh_scan(s, set, true, skip_open, &n);
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", what, mg_strerror(rc));
        return 1;
    }
    printf("%d ledger(s) to re-replicate\n", n);
    char *id = mg_asprintf("shell:%d", (int)getpid());
    struct ar_conf o;
    ar_conf_from_cfg(&o, &s->cfg, id);
    o.auditor = false;
    o.poll_ms = 200;
    o.open_grace_ms = o.failed_grace_ms = 1000;
    struct ar *a = NULL;
    rc = ar_new(s->loop, s->meta, &o, &a);
    mg_free(id);
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", what, mg_strerror(rc));
        return 1;
    }
    uint64_t deadline = mg_mono_ms() + (uint64_t)timeout_s * 1000;
    int left = n;
    while (left > 0 && mg_mono_ms() < deadline) {
        ar_sh_run_for(s, 1000);
        rc = ar_sh_scan(s, set, false, skip_open, &left);
        if (rc < 0)
            left = n;
    }
    struct ar_stats st;
    ar_get_stats(a, &st);
    ar_stop(a);
    /* the worker's requests in flight finish before it is freed: with the store (main) */
    s->worker = a;
    if (left > 0) {
        fprintf(stderr, "%s: %d ledger(s) still name the bookie(s) after %d s\n", what, left,
                timeout_s);
        return 1;
    }
    printf("Re-replicated %" PRId64 " entries; no ledger names the bookie(s) any more\n",
           st.entries_copied);
    return 0;
}

static void ar_sh_split(struct ar_ids *set, const char *list)
{
    char *dup = mg_strdup(list), *save = NULL;
    for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save))
        if (*t)
            ar_ids_add(set, t);
    mg_free(dup);
}

static int ar_sh_recover(struct ar_sh *s, int argc, char **argv, bool decommission)
{
    const char *what = decommission ? "decommissionbookie" : "recover";
    bool force = decommission, skip_open = false;
    struct ar_ids set = {0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-f") || !strcmp(argv[i], "--force"))
            force = true;
        else if (!strcmp(argv[i], "-sk") || !strcmp(argv[i], "--skipOpenLedgers"))
            skip_open = true;
        else if ((!strcmp(argv[i], "-bookieid") || !strcmp(argv[i], "-b")) && i + 1 < argc)
            ar_sh_split(&set, argv[++i]);
        else if (argv[i][0] != '-')
            ar_sh_split(&set, argv[i]);
        else {
            fprintf(stderr, "%s: unknown option '%s'\n", what, argv[i]);
            ar_ids_fini(&set);
            return AR_SH_USAGE;
        }
    }
    if (set.n == 0 || (decommission && set.n != 1)) {
        fprintf(stderr,
                decommission
                    ? "usage: magnetar shell decommissionbookie -bookieid <host:port>\n"
                    : "usage: magnetar shell recover [-f] [-sk] <host:port[,host:port...]>\n");
        ar_ids_fini(&set);
        return AR_SH_USAGE;
    }
    if (!force) {
        printf("Bookies : %s%s\nAre you sure to recover them : (Y/N)\n", set.v[0],
               set.n > 1 ? ", ..." : "");
        fflush(stdout);
        char ans[16] = "";
        if (!fgets(ans, sizeof(ans), stdin) || (ans[0] != 'Y' && ans[0] != 'y')) {
            printf("Aborted\n");
            ar_ids_fini(&set);
            return 1;
        }
    }
    int rc = ar_sh_rereplicate(s, what, &set, skip_open, AR_SH_RECOVER_TIMEOUT_S);
    if (rc == 0 && decommission) {
        struct meta_req r;
        char *p = mg_asprintf("%s/cookies/%s", s->root, set.v[0]);
        int st = ar_sh_meta(s, 'd', p, NULL, &r);
        meta_req_fini(&r);
        mg_free(p);
        if (st < 0 && st != -MG_ENOTFOUND) {
            fprintf(stderr, "%s: deleting the cookie of %s: %s\n", what, set.v[0], mg_strerror(st));
            rc = 1;
        } else {
            printf("Decommission of bookie %s completed\n", set.v[0]);
        }
    }
    ar_ids_fini(&set);
    return rc;
}

/* ---- main ----------------------------------------------------------------------------------- */

static void ar_sh_usage(FILE *out)
{
    fprintf(out, "usage: magnetar shell [--config FILE] [--set key=value]... <command> [args]\n"
                 "\n"
                 "BookKeeper shell's operator commands, on the bookies of metadataStoreUrl:\n"
                 "  listbookies [-rw|-ro|-a]              registered bookies\n"
                 "  autorecovery [-enable|-disable]       show or switch ledger replication\n"
                 "  lostbookierecoverydelay -get|-set N   the auditor's delay (its znode wins)\n"
                 "  listledgers                           every ledger's id\n"
                 "  listunderreplicated                   ledgers marked under-replicated\n"
                 "  ledgermetadata -l <id>                a ledger's metadata\n"
                 "  recover [-f] [-sk] <bookie[,...]>     re-replicate the fragments of bookies\n"
                 "                                        that are gone (-sk: leave open ledgers)\n"
                 "  decommissionbookie -bookieid <bookie> the same, then delete its cookie\n");
}

int ar_shell_main(int argc, char **argv)
{
    const char *config = NULL;
    char **sets = mg_calloc((size_t)argc + 1, sizeof(char *));
    int nsets = 0, i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if ((!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config")) && i + 1 < argc)
            config = argv[++i];
        else if ((!strcmp(argv[i], "-s") || !strcmp(argv[i], "--set")) && i + 1 < argc)
            sets[nsets++] = argv[++i];
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            ar_sh_usage(stdout);
            mg_free(sets);
            return 0;
        } else
            break;
    }
    if (i >= argc) {
        ar_sh_usage(stderr);
        mg_free(sets);
        return AR_SH_USAGE;
    }
    const char *cmd = argv[i];
    int cargc = argc - i;
    char **cargv = argv + i;
    struct ar_sh s;
    memset(&s, 0, sizeof(s));
    char err[512];
    if (!config && access("conf/bookie.yaml", R_OK) == 0)
        config = "conf/bookie.yaml";
    if (cfg_load(&s.cfg, NULL, config, environ, nsets, sets, err, sizeof(err)) < 0) {
        fprintf(stderr, "magnetar: configuration error: %s\n", err);
        mg_free(sets);
        return AR_SH_USAGE;
    }
    mg_free(sets);
    enum mg_log_level lvl;
    if (mg_log_parse_level(s.cfg.log_level, &lvl) == 0)
        mg_log_set_level(lvl < MG_LOG_WARN ? MG_LOG_WARN : lvl); /* the output is the answer */
    if (!meta_url_is_shared(s.cfg.metadata_store_url)) {
        fprintf(stderr,
                "magnetar shell: metadataStoreUrl '%s' is not a shared store: set "
                "metadataStoreUrl=zk:host:2181[/root] (--set or the config file)\n",
                s.cfg.metadata_store_url);
        cfg_fini(&s.cfg);
        return AR_SH_USAGE;
    }
    s.root = "/ledgers";
    s.base = event_base_new();
    s.loop = mg_loop_new(s.base);
    s.tick = event_new(s.base, -1, EV_PERSIST, ar_sh_tick, NULL);
    struct timeval tv = {0, 50000};
    event_add(s.tick, &tv);
    struct meta_options mo = {.url = s.cfg.metadata_store_url,
                              .session_timeout_ms = s.cfg.zookeeper_session_timeout_ms};
    int rc = meta_open(s.loop, &mo, &s.meta);
    struct bkc_config bc;
    bkc_config_default(&bc);
    bc.timeout_ms = s.cfg.bookkeeper_client_timeout_seconds * 1000;
    if (rc == 0)
        rc = bkc_client_new(s.loop, s.meta, &bc, &s.bkc);
    int code = 1;
    if (rc < 0) {
        fprintf(stderr, "magnetar shell: %s: %s\n", s.cfg.metadata_store_url, mg_strerror(rc));
    } else if (!strcmp(cmd, "listbookies")) {
        code = ar_sh_listbookies(&s, cargc, cargv);
    } else if (!strcmp(cmd, "autorecovery")) {
        code = ar_sh_autorecovery(&s, cargc, cargv);
    } else if (!strcmp(cmd, "lostbookierecoverydelay")) {
        code = ar_sh_delay(&s, cargc, cargv);
    } else if (!strcmp(cmd, "listledgers")) {
        code = ar_sh_listledgers(&s);
    } else if (!strcmp(cmd, "listunderreplicated")) {
        code = ar_sh_listunderreplicated(&s);
    } else if (!strcmp(cmd, "ledgermetadata")) {
        code = ar_sh_ledgermetadata(&s, cargc, cargv);
    } else if (!strcmp(cmd, "recover")) {
        code = ar_sh_recover(&s, cargc, cargv, false);
    } else if (!strcmp(cmd, "decommissionbookie")) {
        code = ar_sh_recover(&s, cargc, cargv, true);
    } else {
        fprintf(stderr, "magnetar shell: unknown command '%s'\n", cmd);
        ar_sh_usage(stderr);
        code = AR_SH_USAGE;
    }
    bkc_client_free(s.bkc);
    meta_close(s.meta);
    ar_free(s.worker);
    mg_event_free(s.tick);
    mg_loop_free(s.loop);
    event_base_free(s.base);
    cfg_fini(&s.cfg);
    return code;
}
