/*
 * bk_main.c - `magnetar bookie`: load the configuration (same sources as the broker:
 * defaults, YAML file, MAGNETAR_<key> variables, --set), open the metadata store if one is
 * configured, run a bk_server until SIGTERM/SIGINT.
 *
 * Happy path: listen, write --port-file (bookiePort=N), serve. On a signal: stop accepting,
 * remove the registration (bounded by 3 s), then bk_server_free writes and syncs what is
 * queued in the journal, checkpoints, and the process exits 0.
 *
 * Failure modes: a configuration error prints one line naming the key and exits 2; storage
 * that cannot be opened, a port that cannot be bound or a port file that cannot be written
 * exit 1.
 */
#include "bookie/bookie_int.h"
#include "config/cfg.h"
#include "meta/meta.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"

#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

#pragma weak meta_open
#pragma weak meta_close

#define BK_EXIT_USAGE 2
#define BK_DEFAULT_CONFIG "conf/bookie.yaml"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: magnetar bookie [--config FILE] [--set key=value]... [--port-file FILE]\n"
            "\n"
            "Runs a storage node speaking Apache BookKeeper's protocol (v2 and v3 on one\n"
            "port): journal with group commit, entry logs, LMDB index.\n"
            "\n"
            "  -c, --config FILE     YAML configuration (default: " BK_DEFAULT_CONFIG
            " if it\n"
            "                        exists, else built-in defaults)\n"
            "  -s, --set key=value   override one configuration key (repeatable)\n"
            "      --port-file FILE  write bookiePort=N to FILE once listening (use with\n"
            "                        bookiePort=0)\n"
            "  -h, --help            this help\n"
            "\n"
            "Keys (bookiePort, journalDirectory, ledgerDirectories, journalMaxGroupWaitMSec,\n"
            "...) are listed in conf/README.md.\n");
}

struct bk_main_ctx {
    struct bk_server *srv; /* borrowed */
    struct event_base *base;
};

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct bk_main_ctx *m = arg;
    MG_INFO(BK_MODULE, "received %s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    struct timeval tv = {3, 0}; /* do not wait forever for the metadata store */
    event_base_loopexit(m->base, &tv);
    bk_server_shutdown(m->srv);
}

static void on_session(struct meta_store *ms, enum meta_session_event ev, void *data)
{
    (void)ms;
    struct bk_main_ctx *m = data;
    if (ev == META_SESSION_EXPIRED && m->srv)
        bk_reg_session_expired(m->srv);
}

static int write_port_file(const char *path, int port)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f, "bookiePort=%d\n", port);
    if (fclose(f) != 0)
        return -1;
    return rename(tmp, path);
}

int bk_main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"set", required_argument, NULL, 's'},
        {"port-file", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL, *port_file = NULL;
    char **sets = mg_calloc((size_t)argc + 1, sizeof *sets);
    int nsets = 0, ch;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "+c:s:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            config = optarg;
            break;
        case 's':
            sets[nsets++] = optarg;
            break;
        case 'p':
            port_file = optarg;
            break;
        case 'h':
            usage(stdout);
            mg_free(sets);
            return 0;
        default:
            fprintf(stderr, "magnetar bookie: unknown or incomplete option '%s'\n",
                    argv[optind - 1]);
            usage(stderr);
            mg_free(sets);
            return BK_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "magnetar bookie: unexpected argument '%s'\n", argv[optind]);
        mg_free(sets);
        return BK_EXIT_USAGE;
    }
    if (!config && access(BK_DEFAULT_CONFIG, R_OK) == 0)
        config = BK_DEFAULT_CONFIG;
    struct cfg cfg;
    char err[512];
    if (cfg_load(&cfg, config, environ, nsets, sets, err, sizeof err) < 0) {
        fprintf(stderr, "magnetar: configuration error: %s\n", err);
        mg_free(sets);
        return BK_EXIT_USAGE;
    }
    mg_free(sets);
    enum mg_log_level lvl;
    if (mg_log_parse_level(cfg.log_level, &lvl) == 0)
        mg_log_set_level(lvl);

    /* one ledger directory: extra comma-separated ones are ignored */
    char *ledger_dir = mg_strdup(cfg.ledger_directories);
    char *comma = strchr(ledger_dir, ',');
    if (comma) {
        *comma = '\0';
        MG_WARN(BK_MODULE, "ledgerDirectories: only the first directory (%s) is used",
                ledger_dir);
    }
    struct bk_options o;
    bk_options_default(&o);
    o.bind_address = cfg.bind_address;
    o.port = cfg.bookie_port;
    o.advertised_address = cfg.advertised_address;
    o.bookie_id = strcmp(cfg.bookie_id, "auto") == 0 ? NULL : cfg.bookie_id;
    o.journal_dir = cfg.journal_directory;
    o.ledger_dir = ledger_dir;
    o.max_group_wait_ms = cfg.journal_max_group_wait_ms;
    o.buffered_writes_threshold = cfg.journal_buffered_writes_threshold;
    o.buffered_entries_threshold = cfg.journal_buffered_entries_threshold;
    o.journal_max_size = (int64_t)cfg.journal_max_size_mb << 20;
    o.journal_sync = cfg.journal_sync_data;
    o.flush_interval_ms = cfg.flush_interval_ms;
    o.disk_usage_threshold_pct = cfg.disk_usage_threshold_percent;
    o.disk_check_interval_ms = cfg.disk_check_interval_ms;
    o.max_frame_size = cfg.netty_max_frame_size_bytes;

    signal(SIGPIPE, SIG_IGN);
    mg_log_hook_libevent();
    int exit_code = 0;
    struct bk_main_ctx m = {NULL, event_base_new()};
    struct meta_store *meta = NULL;
    struct bk_server *s = NULL;
    struct event *sigterm = NULL, *sigint = NULL;
    if (!m.base) {
        MG_ERROR(BK_MODULE, "cannot create the event loop");
        exit_code = 1;
        goto out;
    }
    const char *url = cfg.metadata_store_url;
    if (strcmp(url, "none") == 0 || strcmp(url, "embedded") == 0 || strcmp(url, "memory") == 0) {
        MG_INFO(BK_MODULE, "metadataStoreUrl=%s: the bookie is not registered (an in-process "
                "store is invisible to brokers; set a zk: URL to register)", url);
    } else if (meta_open == NULL) {
        MG_WARN(BK_MODULE, "metadataStoreUrl=%s but this binary has no metadata store module: "
                "the bookie is not registered", url);
    } else {
        struct meta_options mo = {.url = url, .data_dir = cfg.data_directory,
                                  .session_cb = on_session, .session_data = &m};
        int rc = meta_open(m.base, &mo, &meta);
        if (rc < 0) {
            MG_ERROR(BK_MODULE, "cannot open the metadata store %s: %s", url, mg_strerror(rc));
            exit_code = 1;
            goto out;
        }
        o.meta = meta;
    }
    if (bk_server_new(m.base, &o, &s) < 0) {
        exit_code = 1;
        goto out;
    }
    m.srv = s;
    if (port_file && write_port_file(port_file, bk_server_port(s)) < 0) {
        MG_ERROR(BK_MODULE, "cannot write port file %s: %s", port_file, strerror(errno));
        exit_code = 1;
        goto out;
    }
    sigterm = evsignal_new(m.base, SIGTERM, on_signal, &m);
    sigint = evsignal_new(m.base, SIGINT, on_signal, &m);
    event_add(sigterm, NULL);
    event_add(sigint, NULL);
    MG_INFO(BK_MODULE, "magnetar %s bookie ready (pid %d)", PACKAGE_VERSION, (int)getpid());
    event_base_dispatch(m.base);
out:
    if (sigterm)
        event_free(sigterm);
    if (sigint)
        event_free(sigint);
    bk_server_free(s);
    if (meta)
        meta_close(meta);
    if (m.base)
        event_base_free(m.base);
    if (exit_code == 0)
        MG_INFO(BK_MODULE, "stopped");
    mg_free(ledger_dir);
    cfg_fini(&cfg);
    return exit_code;
}
