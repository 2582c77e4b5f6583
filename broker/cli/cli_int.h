/*
 * cli_int.h - internals of the cli module: the command table and its parser, the shared
 * connection options (flags and client.conf), the blocking HTTP call and the output
 * helpers. Included only by the cli module's .c files and tests/unit/check_cli.c.
 */
#ifndef MG_CLI_INT_H
#define MG_CLI_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2
#define CLI_MAX_FLAGS 12
#define CLI_HTTP_TIMEOUT_S 30 /* default --request-timeout: connect, and each read */

/* ---- command table ----------------------------------------------------------------------- */

enum {
    CLI_F_REQUIRED = 1 << 0, /* the flag must be given */
    CLI_F_REPEAT = 1 << 1,   /* may be given several times (values kept in order) */
};

struct cli_flag {
    const char *names; /* comma-separated, as pulsar-admin spells them: "-s,--subscription" */
    const char *arg;   /* the value's placeholder; NULL for a switch */
    const char *help;
    unsigned flags; /* CLI_F_* */
};

struct cli_args;
struct cli_env;
typedef int (*cli_run_fn)(struct cli_env *env, const struct cli_args *a);

/* What a command prints from a successful answer (cli_admin_request). */
enum cli_out {
    CLI_OUT_NONE = 0, /* nothing (mutations, as pulsar-admin) */
    CLI_OUT_JSON,     /* the body as pretty JSON ("null" when empty) */
    CLI_OUT_LIST,     /* a JSON array of names, one per line */
    CLI_OUT_TEXT,     /* the body as it is */
};

struct cli_cmd {
    const char *group; /* "topics"; NULL for a command without a group (client's) */
    const char *name;  /* "stats" */
    const char *pos;   /* positional argument's name ("TOPIC"); "[X]" optional; NULL none */
    const char *help;
    struct cli_flag flags[CLI_MAX_FLAGS]; /* ends at names == NULL */
    cli_run_fn run;
    /* For cli_admin_simple: one request. path is a template (cli_admin_expand): {ns},
     * {tenant}, {tp}, {pos}, {sub}, {str:FLAG}, {int:FLAG}, {bool:FLAG}. */
    const char *method, *path;
    enum cli_out out;
};

/* The global flags both tools take after their URL flag (cli_conn_init reads them). */
/* clang-format off */
#define CLI_CONN_FLAGS                                                                             \
    {"--auth-plugin", "CLASS",                                                                     \
     "authentication plugin (org.apache.pulsar.client.impl.auth.AuthenticationToken)", 0},         \
    {"--auth-params", "PARAMS", "its parameters: token:TOKEN or file:///path", 0},                 \
    {"--tls-trust-cert-path", "FILE",                                                              \
     "CA certificates (PEM) the server's certificate must verify against (tlsTrustCertsFilePath)", \
     0},                                                                                           \
    {"--tls-allow-insecure", NULL, "do not verify the server's certificate", 0},                   \
    {"--conf", "FILE", "client.conf-style file (default $PULSAR_CLIENT_CONF, ./conf/client.conf)", \
     0}
/* clang-format on */

/* A parsed command line: the command, its positional value, each flag's values. */
struct cli_args {
    const struct cli_cmd *cmd;
    const char *pos; /* borrowed from argv; NULL when not given */
    /* per flag of cmd->flags, then of the globals: the values given (borrowed; a switch
     * given has the value "true") */
    const char **vals[2 * CLI_MAX_FLAGS];
    int nvals[2 * CLI_MAX_FLAGS];
    const struct cli_flag *globals;
    bool help;
};

/* Find group+name in table (n rows). NULL when absent. */
const struct cli_cmd *cli_cmd_find(const struct cli_cmd *table, size_t n, const char *group,
                                   const char *name);
/* Parse argv (the words after the command's name) for cmd, with the global flags also
 * accepted. Returns 0, or -1 with a one-line reason in err. Free with cli_args_fini. */
int cli_args_parse(const struct cli_cmd *cmd, const struct cli_flag *globals, int argc, char **argv,
                   struct cli_args *a, char *err, size_t errlen);
void cli_args_fini(struct cli_args *a);
/* The last value of the flag named `name` (any of its spellings, e.g. "--subscription"),
 * or NULL when not given. count: how many times it was given (NULL allowed). */
const char *cli_arg(const struct cli_args *a, const char *name);
int cli_arg_count(const struct cli_args *a, const char *name);
/* The i-th value of a repeatable flag. */
const char *cli_arg_at(const struct cli_args *a, const char *name, int i);

/* Usage: of a whole tool (prog "magnetar admin"), a group, or one command. */
void cli_usage_tool(FILE *out, const char *prog, const char *what, const struct cli_cmd *table,
                    size_t n, const struct cli_flag *globals);
void cli_usage_group(FILE *out, const char *prog, const struct cli_cmd *table, size_t n,
                     const char *group);
void cli_usage_cmd(FILE *out, const char *prog, const struct cli_cmd *cmd,
                   const struct cli_flag *globals);
/* A bash completion script for prog's table (complete -F). */
void cli_completion_bash(FILE *out, const char *prog, const struct cli_cmd *table, size_t n,
                         const struct cli_flag *globals);

/* ---- connection options ------------------------------------------------------------------ */

/* The options a tool connects with: flags first, then the client.conf-style file
 * (--conf, else $PULSAR_CLIENT_CONF, else $PULSAR_HOME/conf/client.conf or
 * ./conf/client.conf when it exists), then defaults. */
struct cli_conn {
    char *web_url;     /* webServiceUrl, default http://localhost:8080 */
    char *service_url; /* brokerServiceUrl, default pulsar://localhost:6650 */
    char *auth_plugin, *auth_params;
    char *trust_certs; /* tlsTrustCertsFilePath */
    bool allow_insecure;
    char *token;   /* resolved from auth_plugin/auth_params; NULL = none */
    int timeout_s; /* --request-timeout: connect, and each wait for the answer */
};

/* Read a Java-properties file (key=value or key: value, # and ! comments) into the keys
 * cli_conn knows; unknown keys are ignored, as the Java tools do. Returns 0 or -1 with err. */
int cli_conf_load(struct cli_conn *c, const char *path, char *err, size_t errlen);
/* Fill c from the parsed global flags, the file and the defaults; resolve the token.
 * Returns 0 or -1 with a one-line reason in err. */
int cli_conn_init(struct cli_conn *c, const struct cli_args *a, char *err, size_t errlen);
void cli_conn_fini(struct cli_conn *c);

/* ---- HTTP -------------------------------------------------------------------------------- */

struct cli_http_resp {
    int status;   /* HTTP status, 0 when no answer came */
    char *phrase; /* owned: its reason phrase ("Unauthorized"), or NULL */
    char *body;   /* owned, NUL-terminated (the body may hold NULs: use len) */
    size_t len;
    char **hdrs; /* owned: name, value, name, value ... */
    int nhdrs;
};

/* One request to c->web_url + path (path starts with '/'), following up to 5 redirects
 * (307/302 with a Location), with the token as "Authorization: Bearer". body may be NULL
 * (then no Content-Type). Returns 0 when an answer came (any status), or -1 with a one-line
 * reason in err (unreachable, timeout, TLS). */
int cli_http(const struct cli_conn *c, const char *method, const char *path, const char *body,
             struct cli_http_resp *r, char *err, size_t errlen);
void cli_http_resp_fini(struct cli_http_resp *r);
/* A header of the answer (case-insensitive name), or NULL. */
const char *cli_http_header(const struct cli_http_resp *r, const char *name);
/* The one line describing a failed answer: Pulsar's {"reason"} when the body has one,
 * "not supported by this server yet" for a 404/405 of a path the server does not route
 * (no reason), else the status and the body's first line (the reason phrase instead of an
 * HTML page). */
void cli_http_error_line(const struct cli_http_resp *r, char *out, size_t outlen);
/* Whether the answer is a route the server does not serve (404/405 without a reason). */
bool cli_http_unsupported(const struct cli_http_resp *r);

/* ---- output ------------------------------------------------------------------------------ */

/* Pretty JSON as pulsar-admin prints it (2-space indent), then a newline. */
void cli_print_json(FILE *out, const json_t *j);
/* A JSON array of strings, one per line. Returns 0, or -1 when body is not such an array. */
int cli_print_list(FILE *out, const char *body, size_t len);
/* A hex dump as pulsar-admin prints payloads (offset, 16 bytes, printable text). */
void cli_hexdump(FILE *out, const void *data, size_t len);
/* Whether the bytes are printable UTF-8 text (tabs and newlines allowed). */
bool cli_is_text(const void *data, size_t len);

/* ---- values ------------------------------------------------------------------------------ */

/* pulsar-admin's sizes: "10", "10k", "10M", "1G", "2T" (bytes, powers of 1024), "-1".
 * Returns 0 or -1. */
int cli_parse_size(const char *s, int64_t *bytes);
/* pulsar-admin's relative times: "30" (s), "30s", "10m", "3h", "2d", "1w", "1y", "-1".
 * Returns 0 or -1. */
int cli_parse_time(const char *s, int64_t *seconds);
/* "ledger:entry" (also "ledger:entry:partition[:batch]"). Returns 0 or -1. */
int cli_parse_msg_id(const char *s, int64_t *ledger, int64_t *entry);

/* ---- admin ------------------------------------------------------------------------------- */

/* Expand a path template of cmd for a. Returns the path (mg_free) or NULL with a one-line
 * usage error in err (a namespace without its tenant, a count that is not a number...). */
char *cli_admin_expand(const char *tpl, const struct cli_args *a, char *err, size_t errlen);
/* "persistent/t/ns/<encoded local name>" for a topic given as pulsar-admin takes it
 * ("x", "t/ns/x", "persistent://t/ns/x", "non-persistent://t/ns/x"), or NULL with err. */
char *cli_topic_path(const char *topic, char *err, size_t errlen);
/* Print the messages of one peek/examine answer (payload and X-Pulsar-* headers) as
 * pulsar-admin does: id, publish and event time, key, properties, then the payload as text
 * (a hex dump when it is binary); a batch (X-Pulsar-num-batch-message) is split into its
 * messages, each with its own key and properties. _messages prints at most max of them
 * (max < 0: all), each after a separator line unless it is the first (*count == 0), and adds
 * to *count those it printed. */
void cli_print_message(FILE *out, const struct cli_http_resp *r);
void cli_print_messages(FILE *out, const struct cli_http_resp *r, long long max, long long *count);

/* ---- the tools --------------------------------------------------------------------------- */

struct cli_env {
    struct cli_conn conn;
    const char *prog; /* "magnetar admin" */
    FILE *out, *err;
};

extern const struct cli_cmd cli_admin_cmds[];
extern const size_t cli_admin_ncmds;
extern const struct cli_flag cli_admin_globals[];
extern const struct cli_cmd cli_client_cmds[];
extern const size_t cli_client_ncmds;
extern const struct cli_flag cli_client_globals[];

/* Shared main of both tools: help, completion, parse, connection options, run. */
int cli_tool_main(const char *prog, const char *what, const struct cli_cmd *table, size_t n,
                  const struct cli_flag *globals, int argc, char **argv);

#endif
