/*
 * main.c - the magnetar binary: subcommand dispatch and process setup.
 *
 *   magnetar standalone [--config FILE] [--set key=value]... [--port-file FILE]
 *   magnetar config check|show [--config FILE] [--set key=value]...
 *   magnetar version
 *
 * Configuration errors (unknown key, bad value) print one line naming the key and where it
 * came from, and exit 2. SIGTERM/SIGINT shut down gracefully and exit 0.
 */
#include "bookie/bookie.h"
#include "config/cfg.h"
#include "perf/perf.h"
#include "svc/svc.h"
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

#define EXIT_USAGE 2

struct main_opts {
    const char *config; /* borrowed from argv */
    const char *port_file;
    char **sets; /* owned array of borrowed strings */
    int nsets;
};

static void usage_top(FILE *out)
{
    fprintf(out,
            "magnetar %s - a streaming broker that speaks Apache Pulsar's binary protocol\n"
            "\n"
            "usage: magnetar <command> [options]\n"
            "\n"
            "commands:\n"
            "  standalone   broker with embedded storage in one process (Pulsar on 6650,\n"
            "               admin HTTP on 8080)\n"
            "  bookie       storage node speaking BookKeeper's protocol (port 3181)\n"
            "  config       check or show the effective configuration\n"
            "  perf         load generator and latency meter (perf produce | perf consume)\n"
            "  version      print the version\n"
            "\n"
            "Run 'magnetar <command> --help' for the options of a command.\n",
            PACKAGE_VERSION);
}

static void usage_standalone(FILE *out)
{
    fprintf(out,
            "usage: magnetar standalone [--config FILE] [--set key=value]... [--port-file FILE]\n"
            "\n"
            "Runs a broker that Pulsar clients connect to unchanged.\n"
            "\n"
            "  -c, --config FILE     YAML configuration (default: conf/standalone.yaml if it\n"
            "                        exists, else built-in defaults)\n"
            "  -s, --set key=value   override one configuration key (repeatable); applied after\n"
            "                        the file and MAGNETAR_<key> environment variables\n"
            "      --port-file FILE  write the bound ports (brokerServicePort=N,\n"
            "                        webServicePort=N) to FILE once listening; use with port 0\n"
            "  -h, --help            this help\n"
            "\n"
            "Configuration keys are listed in conf/README.md.\n");
}

static void usage_config(FILE *out)
{
    fprintf(out, "usage: magnetar config check|show [--config FILE] [--set key=value]...\n"
                 "\n"
                 "  check   validate the configuration (file, MAGNETAR_<key> variables, --set);\n"
                 "          exit 0 if it is valid, 2 with the offending key otherwise\n"
                 "  show    print the effective configuration as YAML\n");
}

/* Parse the options shared by standalone and config. Returns 0, 1 for --help, or -1. */
static int parse_opts(int argc, char **argv, struct main_opts *o, bool allow_port_file)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"set", required_argument, NULL, 's'},
        {"port-file", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
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
    return 0;
}

static int load_config(const struct main_opts *o, struct cfg *cfg)
{
    const char *path = o->config;
    if (!path && access("conf/standalone.yaml", R_OK) == 0)
        path = "conf/standalone.yaml";
    char err[512];
    if (cfg_load(cfg, path, environ, o->nsets, o->sets, err, sizeof err) < 0) {
        fprintf(stderr, "magnetar: configuration error: %s\n", err);
        return -1;
    }
    enum mg_log_level lvl;
    if (mg_log_parse_level(cfg->log_level, &lvl) == 0)
        mg_log_set_level(lvl);
    return 0;
}

static int write_port_file(const char *path, struct svc *s)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f, "brokerServicePort=%d\nwebServicePort=%d\n", svc_broker_port(s), svc_web_port(s));
    if (fclose(f) != 0)
        return -1;
    return rename(tmp, path); /* atomic: readers never see a half-written file */
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct svc *s = arg;
    MG_INFO("main", "received %s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    svc_shutdown(s);
}

static int cmd_standalone(int argc, char **argv)
{
    struct main_opts o;
    int rc = parse_opts(argc, argv, &o, true);
    if (rc != 0) {
        usage_standalone(rc > 0 ? stdout : stderr);
        mg_free(o.sets);
        return rc > 0 ? 0 : EXIT_USAGE;
    }
    struct cfg cfg;
    if (load_config(&o, &cfg) < 0) {
        mg_free(o.sets);
        return EXIT_USAGE;
    }
    signal(SIGPIPE, SIG_IGN);
    mg_log_hook_libevent();
    struct event_base *base = event_base_new();
    if (!base) {
        MG_ERROR("main", "cannot create the event loop");
        cfg_fini(&cfg);
        mg_free(o.sets);
        return 1;
    }
    int exit_code = 0;
    struct svc *s = svc_new(base, &cfg);
    if (!s) {
        exit_code = 1;
        goto out;
    }
    if (o.port_file && write_port_file(o.port_file, s) < 0) {
        MG_ERROR("main", "cannot write port file %s: %s", o.port_file, strerror(errno));
        exit_code = 1;
        goto out;
    }
    struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, s);
    struct event *sigint = evsignal_new(base, SIGINT, on_signal, s);
    event_add(sigterm, NULL);
    event_add(sigint, NULL);
    MG_INFO("main", "magnetar %s standalone ready (pid %d)", PACKAGE_VERSION, (int)getpid());
    event_base_dispatch(base);
    event_free(sigterm);
    event_free(sigint);
    MG_INFO("main", "stopped");
out:
    svc_free(s);
    event_base_free(base);
    cfg_fini(&cfg);
    mg_free(o.sets);
    return exit_code;
}

static int cmd_config(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage_config(argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    const char *what = argv[1];
    if (strcmp(what, "check") != 0 && strcmp(what, "show") != 0) {
        fprintf(stderr, "magnetar config: unknown action '%s'\n", what);
        usage_config(stderr);
        return EXIT_USAGE;
    }
    struct main_opts o;
    int rc = parse_opts(argc - 1, argv + 1, &o, false);
    if (rc != 0) {
        usage_config(rc > 0 ? stdout : stderr);
        mg_free(o.sets);
        return rc > 0 ? 0 : EXIT_USAGE;
    }
    struct cfg cfg;
    if (load_config(&o, &cfg) < 0) {
        mg_free(o.sets);
        return EXIT_USAGE;
    }
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
        usage_top(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage_top(stdout);
        return 0;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("magnetar %s\n", PACKAGE_VERSION);
        return 0;
    }
    if (strcmp(cmd, "standalone") == 0)
        return cmd_standalone(argc - 1, argv + 1);
    if (strcmp(cmd, "config") == 0)
        return cmd_config(argc - 1, argv + 1);
    if (strcmp(cmd, "perf") == 0)
        return perf_main(argc - 1, argv + 1);
    if (strcmp(cmd, "bookie") == 0)
        return bk_main(argc - 1, argv + 1);
    fprintf(stderr, "magnetar: unknown command '%s'\n\n", cmd);
    usage_top(stderr);
    return EXIT_USAGE;
}
