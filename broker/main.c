/*
 * main.c - the magnetar binary: subcommands and the composition of a process's roles.
 *
 *   magnetar standalone   metadata store (embedded) + standaloneBookies bookies + broker
 *   magnetar broker       broker on a shared metadata store (metadataStoreUrl) and bookies
 *   magnetar bookie       one storage node, registered in metadataStoreUrl
 *   magnetar bookie --format --force   delete a bookie's data and cookies (start over)
 *   magnetar autorecovery auditor and replication worker alone (autorec module)
 *   magnetar shell ...    BookKeeper shell's operator commands (autorec module)
 *   magnetar perf ...     load generator (perf module)
 *   magnetar tokens ...   make and check authentication tokens (auth module)
 *   magnetar admin ...    pulsar-admin's commands over the admin REST API (cli module)
 *   magnetar client ...   pulsar-client's produce, consume and read (cli module)
 *   magnetar config check|show, magnetar version
 *
 * Every role runs on one event loop. Configuration errors (unknown key, bad value) print
 * one line naming the key and where it came from, and exit 2. SIGTERM/SIGINT shut down
 * gracefully (clients are told to reconnect, the journal is synced) and exit 0.
 */
#include "auth/auth.h"
#include "autorec/autorec.h"
#include "bookie/bookie.h"
#include "cli/cli.h"
#include "config/cfg.h"
#include "meta/meta.h"
#include "perf/perf.h"
#include "svc/svc.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/fs.h"
#include "util/listen.h"
#include "util/log.h"
#include "util/loop.h"

#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

#define EXIT_USAGE 2
#define MAX_BOOKIES 16

enum role {
    ROLE_STANDALONE = 0,
    ROLE_BROKER,
    ROLE_BOOKIE,
    ROLE_AUTORECOVERY,
};

static const char *const role_name[] = {"standalone", "broker", "bookie", "autorecovery"};
static const char *const role_config[] = {"conf/standalone.yaml", "conf/broker.yaml",
                                          "conf/bookie.yaml", "conf/bookie.yaml"};

/* A role's own built-in defaults, applied before any file: the standalone is a local
 * development server wherever it is started (loopback only, its bookies in the same process
 * with one copy of each entry), whether or not conf/standalone.yaml is found. */
static const char *const standalone_defaults[] = {
    "bindAddress=127.0.0.1",
    "advertisedAddress=127.0.0.1",
    "dataDirectory=data/standalone",
    "bookiePort=0",
    "managedLedgerDefaultEnsembleSize=1",
    "managedLedgerDefaultWriteQuorum=1",
    "managedLedgerDefaultAckQuorum=1",
    NULL,
};
static const char *const *const role_defaults[] = {standalone_defaults, NULL, NULL, NULL};

struct main_opts {
    const char *config; /* borrowed from argv */
    const char *port_file;
    char **sets; /* owned array of borrowed strings */
    int nsets;
    bool format, force; /* magnetar bookie --format [--force] */
};

/* Everything one process runs. */
struct proc {
    enum role role;
    struct cfg cfg;
    struct event_base *base;                /* owned */
    struct mg_loop *loop;                   /* owned: base's clock and timers */
    struct meta_store *meta;                /* owned; NULL when no store is used */
    struct bk_server *bookies[MAX_BOOKIES]; /* owned */
    char *bookie_dirs[MAX_BOOKIES];         /* owned: ledger dir strings the options borrow */
    char *bookie_journals[MAX_BOOKIES];
    int n_bookies;
    struct bk_local *local;          /* owned: the broker's in-process path to bookies[] */
    struct svc *svc;                 /* owned */
    struct ar *autorec;              /* owned: bookie (autoRecoveryDaemonEnabled), autorecovery */
    struct bk_metrics_http *metrics; /* owned: bookie's GET /metrics (prometheusStatsHttpPort) */
};

static void main_usage_top(FILE *out)
{
    fprintf(out,
            "magnetar %s - a streaming broker that speaks Apache Pulsar's binary protocol\n"
            "\n"
            "usage: magnetar <command> [options]\n"
            "\n"
            "commands:\n"
            "  standalone   broker, bookies and metadata store in one process (Pulsar on\n"
            "               6650, admin HTTP on 8080)\n"
            "  broker       stateless broker on a shared metadata store and bookies\n"
            "  bookie       storage node speaking BookKeeper's protocol (port 3181)\n"
            "  autorecovery auditor and replication worker of a bookie cluster\n"
            "  shell        operator commands (listbookies, listunderreplicated, recover ...)\n"
            "  perf         load generator and latency meter (perf produce | perf consume)\n"
            "  tokens       make keys and tokens, show and validate tokens (as pulsar tokens)\n"
            "  admin        pulsar-admin's commands over the admin REST API\n"
            "  client       pulsar-client's produce, consume and read\n"
            "  config       check or show the effective configuration\n"
            "  version      print the version\n"
            "\n"
            "Run 'magnetar <command> --help' for the options of a command.\n",
            PACKAGE_VERSION);
}

static void main_usage_role(FILE *out, enum role r)
{
    static const char *const what[] = {
        "Runs a broker with its own bookies and an embedded metadata store, all durable\n"
        "under dataDirectory. Pulsar clients connect to it unchanged.",
        "Runs a stateless broker. It keeps metadata in metadataStoreUrl (zk:host:port/...)\n"
        "and topic data on the bookies registered there.",
        "Runs a storage node speaking Apache BookKeeper's protocol (v2 and v3 on one port):\n"
        "journal with group commit, entry logs, LMDB index. It registers itself in\n"
        "metadataStoreUrl (a zk: URL) so brokers find it.",
        "Runs BookKeeper's autorecovery (auditor candidate and replication worker) on the\n"
        "bookies registered in metadataStoreUrl (a zk: URL), without a bookie.",
    };
    fprintf(out,
            "usage: magnetar %s [--config FILE] [--set key=value]... [--port-file FILE]\n"
            "\n%s\n\n"
            "  -c, --config FILE     YAML configuration (default: %s if it exists,\n"
            "                        else built-in defaults)\n"
            "  -s, --set key=value   override one configuration key (repeatable); applied after\n"
            "                        the file and MAGNETAR_<key> environment variables\n"
            "      --port-file FILE  write the bound ports (key=port lines) to FILE once\n"
            "                        listening; use with ports set to 0\n"
            "  -h, --help            this help\n"
            "%s"
            "\n"
            "Configuration keys are listed in conf/README.md.\n",
            role_name[r], what[r], role_config[r],
            r == ROLE_BOOKIE
                ? "      --format          start over: delete this bookie's data and cookies\n"
                  "                        (journal and ledger directories, and its cookie in\n"
                  "                        the metadata store), then exit; lists what it would\n"
                  "                        delete unless --force is given too\n"
                  "      --force           confirm --format\n"
                : "");
}

static void main_usage_config(FILE *out)
{
    fprintf(out, "usage: magnetar config check|show [--config FILE] [--set key=value]...\n"
                 "\n"
                 "  check   validate the configuration (file, MAGNETAR_<key> variables, --set);\n"
                 "          exit 0 if it is valid, 2 with the offending key otherwise\n"
                 "  show    print the effective configuration as YAML\n");
}

/* Parse the options shared by the roles and config (--format and --force: the bookie only).
 * Returns 0, 1 for --help, or -1. */
static int main_parse_opts(int argc, char **argv, struct main_opts *o, bool allow_port_file,
                           bool allow_format)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"set", required_argument, NULL, 's'},
        {"port-file", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {"format", no_argument, NULL, 'F'},
        {"force", no_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->sets = mg_calloc((size_t)argc + 1, sizeof *o->sets);
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "+c:s:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            o->config = optarg;
            break;
        case 's':
            o->sets[o->nsets++] = optarg;
            break;
        case 'p':
            if (!allow_port_file)
                goto bad;
            o->port_file = optarg;
            break;
        case 'F':
        case 'f':
            if (!allow_format)
                goto bad;
            if (ch == 'F')
                o->format = true;
            else
                o->force = true;
            break;
        case 'h':
            return 1;
        default:
        bad:
            fprintf(stderr, "magnetar: unknown or incomplete option '%s'\n", argv[optind - 1]);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "magnetar: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (o->force && !o->format) {
        fprintf(stderr, "magnetar: --force goes with --format\n");
        return -1;
    }
    return 0;
}

static int main_load_config(const struct main_opts *o, enum role role, struct cfg *cfg)
{
    const char *path = o->config;
    if (!path && access(role_config[role], R_OK) == 0)
        path = role_config[role];
    char err[512];
    if (cfg_load(cfg, role_defaults[role], path, environ, o->nsets, o->sets, err, sizeof err) < 0) {
        fprintf(stderr, "magnetar: configuration error: %s\n", err);
        return -1;
    }
    enum mg_log_level lvl;
    if (mg_log_parse_level(cfg->log_level, &lvl) == 0)
        mg_log_set_level(lvl);
    return 0;
}

static int main_write_port_file(const char *path, const struct proc *p)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    if (p->svc) {
        fprintf(f, "brokerServicePort=%d\nwebServicePort=%d\n", svc_broker_port(p->svc),
                svc_web_port(p->svc));
        if (svc_broker_port_tls(p->svc) >= 0)
            fprintf(f, "brokerServicePortTls=%d\n", svc_broker_port_tls(p->svc));
        if (svc_web_port_tls(p->svc) >= 0)
            fprintf(f, "webServicePortTls=%d\n", svc_web_port_tls(p->svc));
    }
    for (int i = 0; i < p->n_bookies; i++) {
        if (i == 0)
            fprintf(f, "bookiePort=%d\n", bk_server_port(p->bookies[0]));
        else
            fprintf(f, "bookiePort.%d=%d\n", i, bk_server_port(p->bookies[i]));
    }
    if (fclose(f) != 0)
        return -1;
    return rename(tmp, path); /* atomic: readers never see a half-written file */
}

static void main_on_session(struct meta_store *m, enum meta_session_event ev, void *data)
{
    (void)m;
    struct proc *p = data;
    if (p->svc)
        svc_session_event(p->svc, (int)ev); /* bundles: lost on expiry, held across a blip */
    if (ev != META_SESSION_EXPIRED)
        return;
    MG_WARN("main", "metadata store session expired: registering again");
    for (int i = 0; i < p->n_bookies; i++)
        bk_server_session_expired(p->bookies[i]);
}

static int main_open_meta(struct proc *p)
{
    const char *url = p->cfg.metadata_store_url;
    if (p->role >= ROLE_BOOKIE &&
        (strcmp(url, "none") == 0 || strcmp(url, "embedded") == 0 || strcmp(url, "memory") == 0)) {
        if (p->role == ROLE_BOOKIE) /* (the autorecovery says what it needs) */
            MG_INFO("main",
                    "metadataStoreUrl=%s: the bookie is not registered (set a zk: URL so "
                    "brokers find it)",
                    url);
        return 0;
    }
    if (strcmp(url, "none") == 0)
        return 0;
    char *dir = mg_asprintf("%s/metadata", p->cfg.data_directory);
    struct meta_options mo = {
        .url = url,
        .data_dir = dir,
        .session_timeout_ms = p->cfg.zookeeper_session_timeout_ms,
        .session_cb = main_on_session,
        .session_data = p,
    };
    int rc = meta_open(p->loop, &mo, &p->meta);
    if (rc < 0)
        MG_ERROR("main", "cannot open the metadata store %s: %s", url, mg_strerror(rc));
    mg_free(dir);
    return rc;
}

/*
 * Standalone bookies live under dataDirectory/bookie-N. Their ports must stay the same
 * across restarts, because ledger metadata names bookies by host:port: the first start
 * takes bookiePort+N (or any free port when bookiePort is 0) and remembers it in
 * bookie-N/port; later starts reuse it.
 */
static int main_remembered_port(const char *dir)
{
    char *path = mg_asprintf("%s/port", dir);
    FILE *f = fopen(path, "r");
    mg_free(path);
    int port = -1;
    if (f) {
        if (fscanf(f, "%d", &port) != 1)
            port = -1;
        fclose(f);
    }
    return port;
}

static void main_remember_port(const char *dir, int port)
{
    char *path = mg_asprintf("%s/port", dir);
    FILE *f = fopen(path, "w");
    if (f) {
        fprintf(f, "%d\n", port);
        fclose(f);
    }
    mg_free(path);
}

static int main_start_bookies(struct proc *p)
{
    int n = p->role == ROLE_BOOKIE ? 1 : p->cfg.standalone_bookies;
    for (int i = 0; i < n; i++) {
        struct bk_options o;
        if (p->role == ROLE_BOOKIE) {
            p->bookie_dirs[i] = mg_strdup(p->cfg.ledger_directories); /* comma-separated */
            bk_options_from_cfg(&o, &p->cfg, p->bookie_dirs[i]);
        } else {
            char *base = mg_asprintf("%s/bookie-%d", p->cfg.data_directory, i);
            if (mg_mkdirs(base) < 0) {
                MG_ERROR("main", "cannot create %s: %s", base, strerror(errno));
                mg_free(base);
                return -1;
            }
            p->bookie_dirs[i] = mg_asprintf("%s/ledgers", base);
            p->bookie_journals[i] = mg_asprintf("%s/journal", base);
            bk_options_from_cfg(&o, &p->cfg, p->bookie_dirs[i]);
            o.journal_dir = p->bookie_journals[i];
            o.bookie_id = NULL;
            /* this broker's own bookies: a message of maxMessageSize must fit in one frame */
            if (o.max_frame_size - BK_FRAME_PADDING < p->cfg.max_message_size)
                o.max_frame_size = p->cfg.max_message_size > INT_MAX - BK_FRAME_PADDING
                                       ? INT_MAX
                                       : p->cfg.max_message_size + BK_FRAME_PADDING;
            int port = main_remembered_port(base);
            o.port = port > 0 ? port : p->cfg.bookie_port ? p->cfg.bookie_port + i : 0;
            mg_free(base);
        }
        o.meta = p->meta;
        if (bk_server_new(p->base, &o, &p->bookies[i]) < 0)
            return -1;
        p->n_bookies++;
        if (p->role != ROLE_BOOKIE) {
            char *base = mg_asprintf("%s/bookie-%d", p->cfg.data_directory, i);
            main_remember_port(base, bk_server_port(p->bookies[i]));
            mg_free(base);
        }
    }
    return 0;
}

/* magnetar bookie --format [--force]: the bookie's directories and cookies are deleted, so
 * that its next start is a new bookie (BookKeeper's `bookie format`). */
static int main_format_bookie(struct proc *p, bool force)
{
    struct bk_options o;
    bk_options_from_cfg(&o, &p->cfg, p->cfg.ledger_directories);
    int rc = bk_format(p->base, p->meta, &o, force);
    if (rc == -MG_ENOTALLOWED)
        return EXIT_USAGE; /* --force missing: nothing was deleted */
    return rc < 0 ? 1 : 0;
}

static void main_on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct proc *p = arg;
    MG_INFO("main", "received %s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    if (p->svc) {
        /* The service exits the loop once its clients are gone; bookies in this process
         * are synced when freed after the loop. */
        svc_shutdown(p->svc);
    } else {
        struct timeval tv = {3, 0}; /* do not wait forever for the metadata store */
        event_base_loopexit(p->base, &tv);
        for (int i = 0; i < p->n_bookies; i++)
            bk_server_shutdown(p->bookies[i]); /* deregisters, then exits the loop */
    }
}

/* A bookie's /metrics: its own, then its autorecovery's. */
static void main_bookie_metrics(void *arg, struct evbuffer *b)
{
    struct proc *p = arg;
    for (int i = 0; i < p->n_bookies; i++)
        bk_metrics(p->bookies[i], b);
    if (p->autorec)
        ar_metrics(p->autorec, b);
}

static void main_proc_free(struct proc *p)
{
    bk_metrics_http_stop(p->metrics);
    svc_free(p->svc);
    bk_local_free(p->local); /* after its client (the svc's), before its bookies */
    ar_stop(p->autorec);
    for (int i = 0; i < p->n_bookies; i++)
        bk_server_free(p->bookies[i]);
    for (int i = 0; i < MAX_BOOKIES; i++) {
        mg_free(p->bookie_dirs[i]);
        mg_free(p->bookie_journals[i]);
    }
    if (p->meta)
        meta_close(p->meta);
    ar_free(p->autorec); /* after the store: nothing of it completes later */
    mg_loop_free(p->loop);
    if (p->base)
        event_base_free(p->base);
    cfg_fini(&p->cfg);
}

static int main_cmd_role(enum role role, int argc, char **argv)
{
    struct main_opts o;
    int rc = main_parse_opts(argc, argv, &o, true, role == ROLE_BOOKIE);
    if (rc != 0) {
        main_usage_role(rc > 0 ? stdout : stderr, role);
        mg_free(o.sets);
        return rc > 0 ? 0 : EXIT_USAGE;
    }
    struct proc p;
    memset(&p, 0, sizeof p);
    p.role = role;
    if (main_load_config(&o, role, &p.cfg) < 0) {
        mg_free(o.sets);
        return EXIT_USAGE;
    }
    if (role == ROLE_BROKER && strcmp(p.cfg.managed_ledger_store, "bookkeeper") == 0 &&
        !meta_url_is_shared(p.cfg.metadata_store_url)) {
        fprintf(stderr,
                "magnetar: configuration error: %s: metadataStoreUrl '%s': a broker keeps "
                "topics on the bookies registered in a shared metadata store; set "
                "metadataStoreUrl=zk:host:2181[/root] (or run `magnetar standalone`)\n",
                p.cfg.file ? p.cfg.file : "built-in default", p.cfg.metadata_store_url);
        cfg_fini(&p.cfg);
        mg_free(o.sets);
        return EXIT_USAGE;
    }
    signal(SIGPIPE, SIG_IGN);
    mg_log_hook_libevent();
    /* Every connection is a descriptor: use all the hard limit allows (as the JVM does for
     * Pulsar). The listeners keep a reserve of it for our own outgoing connections. */
    int fd_limit = mg_fds_raise_limit();
    if (fd_limit > 0)
        MG_INFO("main", "descriptor limit %d (%d kept free for the broker's own connections)",
                fd_limit, mg_fds_default_reserve(fd_limit));
    int exit_code = 1;
    struct event *sigterm = NULL, *sigint = NULL;
    struct event_config *ec = event_config_new();
    event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER);
    p.base = event_base_new_with_config(ec);
    event_config_free(ec);
    if (!p.base) {
        MG_ERROR("main", "cannot create the event loop");
        goto out;
    }
    p.loop = mg_loop_new(p.base);
    if (role <= ROLE_BROKER && mg_mkdirs(p.cfg.data_directory) < 0) {
        MG_ERROR("main", "cannot create dataDirectory %s: %s", p.cfg.data_directory,
                 strerror(errno));
        goto out;
    }
    if (main_open_meta(&p) < 0)
        goto out;
    if (o.format) {
        exit_code = main_format_bookie(&p, o.force);
        goto out;
    }
    if ((role == ROLE_BOOKIE || role == ROLE_STANDALONE) && main_start_bookies(&p) < 0)
        goto out;
    if (role >= ROLE_BOOKIE &&
        ar_start_role(p.loop, p.meta, &p.cfg, p.n_bookies ? bk_server_id(p.bookies[0]) : NULL,
                      &p.autorec) < 0)
        goto out;
    if (role == ROLE_BOOKIE && p.cfg.prometheus_stats_http_port > 0)
        p.metrics = bk_metrics_http_start(
            p.base, p.cfg.bind_address, p.cfg.prometheus_stats_http_port, main_bookie_metrics, &p);
    if (role <= ROLE_BROKER) {
        /* the standalone's broker reaches its own bookies by calls (bk_local.c), others and
         * every other client (autorecovery, tools) over TCP */
        if (p.n_bookies > 0) {
            p.local = bk_local_new(p.bookies, p.n_bookies);
            MG_INFO("main",
                    "the broker reaches its %d bookie(s) in process (their ports serve "
                    "other clients)",
                    p.n_bookies);
        }
        p.svc = svc_new_with_transport(p.loop, &p.cfg, p.meta,
                                       p.local ? bk_local_transport(p.local) : NULL);
        if (!p.svc)
            goto out;
    }
    if (o.port_file && main_write_port_file(o.port_file, &p) < 0) {
        MG_ERROR("main", "cannot write port file %s: %s", o.port_file, strerror(errno));
        goto out;
    }
    sigterm = evsignal_new(p.base, SIGTERM, main_on_signal, &p);
    sigint = evsignal_new(p.base, SIGINT, main_on_signal, &p);
    event_add(sigterm, NULL);
    event_add(sigint, NULL);
    MG_INFO("main", "magnetar %s %s ready (pid %d)", PACKAGE_VERSION, role_name[role],
            (int)getpid());
    event_base_dispatch(p.base);
    MG_INFO("main", "stopped");
    exit_code = 0;
out:
    mg_event_free(sigterm);
    mg_event_free(sigint);
    main_proc_free(&p);
    mg_free(o.sets);
    return exit_code;
}

static int main_cmd_config(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        main_usage_config(argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    const char *what = argv[1];
    if (strcmp(what, "check") != 0 && strcmp(what, "show") != 0) {
        fprintf(stderr, "magnetar config: unknown action '%s'\n", what);
        main_usage_config(stderr);
        return EXIT_USAGE;
    }
    struct main_opts o;
    int rc = main_parse_opts(argc - 1, argv + 1, &o, false, false);
    if (rc != 0) {
        main_usage_config(rc > 0 ? stdout : stderr);
        mg_free(o.sets);
        return rc > 0 ? 0 : EXIT_USAGE;
    }
    struct cfg cfg;
    if (main_load_config(&o, ROLE_STANDALONE, &cfg) < 0) {
        mg_free(o.sets);
        return EXIT_USAGE;
    }
    struct auth *au = NULL; /* the authentication keys are checked as the broker does */
    char aerr[512];
    if (auth_new(&cfg, &au, aerr, sizeof aerr) < 0) {
        fprintf(stderr, "magnetar: %s\n", aerr);
        cfg_fini(&cfg);
        mg_free(o.sets);
        return EXIT_USAGE;
    }
    auth_free(au);
    if (strcmp(what, "show") == 0)
        cfg_dump(&cfg, stdout);
    else
        printf("configuration ok%s%s\n", cfg.file ? ": " : "", cfg.file ? cfg.file : "");
    cfg_fini(&cfg);
    mg_free(o.sets);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        main_usage_top(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        main_usage_top(stdout);
        return 0;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("magnetar %s\n", PACKAGE_VERSION);
        return 0;
    }
    for (int r = ROLE_STANDALONE; r <= ROLE_AUTORECOVERY; r++)
        if (strcmp(cmd, role_name[r]) == 0)
            return main_cmd_role((enum role)r, argc - 1, argv + 1);
    if (strcmp(cmd, "config") == 0)
        return main_cmd_config(argc - 1, argv + 1);
    if (strcmp(cmd, "shell") == 0)
        return ar_shell_main(argc - 1, argv + 1);
    if (strcmp(cmd, "perf") == 0)
        return perf_main(argc - 1, argv + 1);
    if (strcmp(cmd, "tokens") == 0)
        return auth_tokens_main(argc - 1, argv + 1);
    if (strcmp(cmd, "admin") == 0)
        return cli_admin_main(argc - 1, argv + 1);
    if (strcmp(cmd, "client") == 0)
        return cli_client_main(argc - 1, argv + 1);
    fprintf(stderr, "magnetar: unknown command '%s'\n\n", cmd);
    main_usage_top(stderr);
    return EXIT_USAGE;
}
