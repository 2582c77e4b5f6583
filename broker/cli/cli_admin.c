/*
 * cli_admin.c - `magnetar admin`: pulsar-admin's command tree (clusters, brokers, tenants,
 * namespaces, topics, schemas) with its names and flags, over the admin REST API.
 *
 * cli_admin_cmds is the one table: the parser, every --help, the bash completion and the
 * dispatch are made from it. A row either describes its one request (method, path template,
 * what to print: cli_admin_simple) or names a function that builds the body first. Output
 * is pulsar-admin's: nothing for a mutation, pretty JSON for stats and policies, one name
 * per line for lists; a failure prints one line (Pulsar's "reason") and exits 1. A path
 * the server does not route yet (404/405 without a reason) says so in one line.
 */
#include "cli/cli.h"
#include "cli/cli_int.h"

#include "client/client.h"
#include "util/alloc.h"
#include "util/fs.h"
#include "wire/wire.h"

#include <ctype.h>
#include <errno.h>
#include <event2/http.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ---- names and paths --------------------------------------------------------------------- */

static char *cli_enc(const char *s)
{
    char *e = evhttp_uriencode(s, -1, 0);
    char *r = mg_strdup(e ? e : "");
    free(e);
    return r;
}

char *cli_topic_path(const char *topic, char *err, size_t errlen)
{
    const char *sep = strstr(topic, "://");
    char *full = NULL;
    if (sep)
        full = mg_strdup(topic);
    else
        full = client_topic_full_name(topic); /* "x" and "t/ns/x" as pulsar-admin */
    char *domain_end = full ? strstr(full, "://") : NULL;
    char *path = NULL;
    if (!domain_end)
        goto bad;
    *domain_end = '\0';
    if (strcmp(full, "persistent") != 0 && strcmp(full, "non-persistent") != 0)
        goto bad;
    char *t = domain_end + 3;
    char *s1 = strchr(t, '/');
    char *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
    if (!s1 || !s2 || s1 == t || s2 == s1 + 1 || !s2[1])
        goto bad;
    *s1 = *s2 = '\0';
    char *et = cli_enc(t), *en = cli_enc(s1 + 1), *el = cli_enc(s2 + 1);
    path = mg_asprintf("%s/%s/%s/%s", full, et, en, el);
    mg_free(et);
    mg_free(en);
    mg_free(el);
    mg_free(full);
    return path;
bad:
    snprintf(err, errlen,
             "invalid topic name '%s' (expected persistent://tenant/namespace/topic, "
             "tenant/namespace/topic or topic)",
             topic);
    mg_free(full);
    return NULL;
}

/* "t/ns" -> "t/ns" with each part encoded, or NULL. */
static char *cli_ns_path(const char *ns, char *err, size_t errlen)
{
    const char *slash = ns ? strchr(ns, '/') : NULL;
    if (!slash || slash == ns || !slash[1] || strchr(slash + 1, '/')) {
        snprintf(err, errlen, "invalid namespace name '%s' (expected tenant/namespace)",
                 ns ? ns : "");
        return NULL;
    }
    char *t = mg_strndup(ns, (size_t)(slash - ns));
    char *et = cli_enc(t), *en = cli_enc(slash + 1);
    char *r = mg_asprintf("%s/%s", et, en);
    mg_free(t);
    mg_free(et);
    mg_free(en);
    return r;
}

static bool cli_is_int(const char *s, long long min, long long *out)
{
    if (!s || !*s)
        return false;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < min)
        return false;
    if (out)
        *out = v;
    return true;
}

char *cli_admin_expand(const char *tpl, const struct cli_args *a, char *err, size_t errlen)
{
    size_t cap = 256, len = 0;
    char *out = mg_malloc(cap);
    for (const char *p = tpl; *p;) {
        char *piece = NULL;
        if (*p == '{') {
            const char *end = strchr(p, '}');
            char key[64];
            snprintf(key, sizeof key, "%.*s", (int)(end - p - 1), p + 1);
            p = end + 1;
            char *colon = strchr(key, ':');
            const char *flag = colon ? colon + 1 : NULL;
            if (colon)
                *colon = '\0';
            const char *v = flag ? cli_arg(a, flag) : NULL;
            if (strcmp(key, "ns") == 0) {
                piece = cli_ns_path(a->pos, err, errlen);
            } else if (strcmp(key, "tp") == 0 || strcmp(key, "tpn") == 0) {
                piece = cli_topic_path(a->pos, err, errlen);
                if (piece && key[2]) { /* tpn: without the domain, as the schemas paths */
                    char *rest = mg_strdup(strchr(piece, '/') + 1);
                    mg_free(piece);
                    piece = rest;
                }
            } else if (strcmp(key, "tenant") == 0 || strcmp(key, "pos") == 0) {
                if (a->pos && strcmp(key, "tenant") == 0 && strchr(a->pos, '/'))
                    snprintf(err, errlen, "invalid tenant name '%s'", a->pos);
                else
                    piece = cli_enc(a->pos ? a->pos : "");
            } else if (strcmp(key, "sub") == 0) {
                piece = cli_enc(cli_arg(a, "--subscription"));
            } else if (strcmp(key, "bool") == 0) {
                piece = mg_strdup(v ? "true" : "false");
            } else if (strcmp(key, "int") == 0) {
                if (cli_is_int(v, 0, NULL))
                    piece = mg_strdup(v);
                else
                    snprintf(err, errlen, "%s: '%s' is not a non-negative number", flag,
                             v ? v : "");
            } else { /* str */
                piece = cli_enc(v ? v : "");
            }
            if (!piece) {
                mg_free(out);
                return NULL;
            }
        } else {
            size_t n = strcspn(p, "{");
            piece = mg_strndup(p, n);
            p += n;
        }
        size_t n = strlen(piece);
        out = mg_grow(out, &cap, len + n + 1, 1, 256);
        memcpy(out + len, piece, n);
        len += n;
        mg_free(piece);
    }
    out[len] = '\0';
    return out;
}

/* ---- requests ---------------------------------------------------------------------------- */

/* One request; on success print the answer as `out` says, else one line. Returns the exit
 * status. */
/* The request's answer into *r when it is 2xx or the answer is `end` (Pulsar's reason of a
 * 404 that ends a listing, or NULL): 0 (*r for the caller to free); otherwise the one line
 * printed and CLI_EXIT_FAIL. */
static int cli_admin_answer(struct cli_env *env, const char *method, const char *path,
                            const char *body, const char *end, struct cli_http_resp *r)
{
    char err[512];
    if (cli_http(&env->conn, method, path, body, r, err, sizeof err) < 0) {
        fprintf(env->err, "%s: %s\n", env->prog, err);
        return CLI_EXIT_FAIL;
    }
    if (r->status >= 200 && r->status <= 299)
        return 0;
    cli_http_error_line(r, err, sizeof err);
    if (end && r->status == 404 && strncmp(err, end, strlen(end)) == 0 &&
        strncmp(err + strlen(end), " (HTTP", 6) == 0)
        return 0;
    fprintf(env->err, "%s: %s\n", env->prog, err);
    cli_http_resp_fini(r);
    return CLI_EXIT_FAIL;
}

static int cli_admin_request(struct cli_env *env, const char *method, const char *path,
                             const char *body, enum cli_out out, struct cli_http_resp *keep)
{
    struct cli_http_resp r;
    if (cli_admin_answer(env, method, path, body, NULL, &r) != 0)
        return CLI_EXIT_FAIL;
    int rc = 0;
    switch (out) {
    case CLI_OUT_NONE:
        break;
    case CLI_OUT_TEXT:
        fwrite(r.body, 1, r.len, env->out);
        if (r.len && r.body[r.len - 1] != '\n')
            fputc('\n', env->out);
        break;
    case CLI_OUT_LIST:
        if (cli_print_list(env->out, r.body, r.len) < 0) {
            fprintf(env->err, "%s: the server's answer is not a list\n", env->prog);
            rc = CLI_EXIT_FAIL;
        }
        break;
    case CLI_OUT_JSON: {
        if (r.len == 0) {
            fprintf(env->out, "null\n");
            break;
        }
        json_t *j = json_loadb(r.body, r.len, JSON_DECODE_ANY, NULL);
        if (!j) {
            fprintf(env->err, "%s: the server's answer is not JSON\n", env->prog);
            rc = CLI_EXIT_FAIL;
            break;
        }
        cli_print_json(env->out, j);
        json_decref(j);
        break;
    }
    }
    if (keep)
        *keep = r;
    else
        cli_http_resp_fini(&r);
    return rc;
}

/* Expand the row's path template (a usage error exits 2) and make its request. */
static int cli_admin_run_path(struct cli_env *env, const struct cli_args *a, const char *method,
                              const char *tpl, const char *body, enum cli_out out)
{
    char err[300];
    char *path = cli_admin_expand(tpl, a, err, sizeof err);
    if (!path) {
        fprintf(env->err, "%s: %s\n", env->prog, err);
        return CLI_EXIT_USAGE;
    }
    int rc = cli_admin_request(env, method, path, body, out, NULL);
    mg_free(path);
    return rc;
}

static int cli_admin_simple(struct cli_env *env, const struct cli_args *a)
{
    return cli_admin_run_path(env, a, a->cmd->method, a->cmd->path, NULL, a->cmd->out);
}

/* Same, with a JSON body (consumed). */
static int cli_admin_with_body(struct cli_env *env, const struct cli_args *a, json_t *body)
{
    char *b = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(body);
    int rc = cli_admin_run_path(env, a, a->cmd->method, a->cmd->path, b, a->cmd->out);
    free(b);
    return rc;
}

/* One usage line; returns CLI_EXIT_USAGE. */
__attribute__((format(printf, 2, 3))) static int cli_usage_error(struct cli_env *env,
                                                                 const char *fmt, ...)
{
    fprintf(env->err, "%s: ", env->prog);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(env->err, fmt, ap);
    va_end(ap);
    fputc('\n', env->err);
    return CLI_EXIT_USAGE;
}

/* A comma-separated list as a JSON array of strings. */
static json_t *cli_csv_array(const char *csv)
{
    json_t *arr = json_array();
    if (!csv)
        return arr;
    char *copy = mg_strdup(csv), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*t))
            t++;
        size_t n = strlen(t);
        while (n && isspace((unsigned char)t[n - 1]))
            t[--n] = '\0';
        if (*t)
            json_array_append_new(arr, json_string(t));
    }
    mg_free(copy);
    return arr;
}

/* ---- commands that build a body ---------------------------------------------------------- */

/* tenants create|update: -r admin roles, -c allowed clusters (all clusters when absent on
 * create, as pulsar-admin). */
static int cli_admin_tenant(struct cli_env *env, const struct cli_args *a)
{
    json_t *clusters = NULL;
    if (cli_arg(a, "--allowed-clusters")) {
        clusters = cli_csv_array(cli_arg(a, "--allowed-clusters"));
    } else {
        struct cli_http_resp r;
        if (cli_admin_request(env, "GET", "/admin/v2/clusters", NULL, CLI_OUT_NONE, &r) != 0)
            return CLI_EXIT_FAIL;
        clusters = json_loadb(r.body, r.len, 0, NULL);
        cli_http_resp_fini(&r);
        if (!json_is_array(clusters)) {
            json_decref(clusters);
            clusters = json_array();
        }
    }
    json_t *body = json_pack("{s:o,s:o}", "adminRoles", cli_csv_array(cli_arg(a, "--admin-roles")),
                             "allowedClusters", clusters);
    return cli_admin_with_body(env, a, body);
}

static int cli_admin_ns_create(struct cli_env *env, const struct cli_args *a)
{
    json_t *body = json_object();
    long long n;
    const char *b = cli_arg(a, "--bundles");
    if (b) {
        if (!cli_is_int(b, 1, &n))
            return cli_usage_error(env, "--bundles: '%s' is not a positive number", b);
        json_object_set_new(body, "bundles", json_pack("{s:I}", "numBundles", (json_int_t)n));
    }
    if (cli_arg(a, "--clusters"))
        json_object_set_new(body, "replication_clusters", cli_csv_array(cli_arg(a, "--clusters")));
    return cli_admin_with_body(env, a, body);
}

static int cli_admin_set_retention(struct cli_env *env, const struct cli_args *a)
{
    int64_t size, secs;
    if (cli_parse_size(cli_arg(a, "--size"), &size) < 0)
        return cli_usage_error(env, "--size: '%s' is not a size (10M, 1G, -1)",
                               cli_arg(a, "--size"));
    if (cli_parse_time(cli_arg(a, "--time"), &secs) < 0)
        return cli_usage_error(env, "--time: '%s' is not a time (30m, 3h, 2d, -1)",
                               cli_arg(a, "--time"));
    json_int_t mb = size < 0 ? -1 : (json_int_t)(size / (1024 * 1024));
    json_int_t min = secs < 0 ? -1 : (json_int_t)(secs / 60);
    return cli_admin_with_body(
        env, a, json_pack("{s:I,s:I}", "retentionTimeInMinutes", min, "retentionSizeInMB", mb));
}

static int cli_admin_set_ttl(struct cli_env *env, const struct cli_args *a)
{
    int64_t secs;
    if (cli_parse_time(cli_arg(a, "--messageTTL"), &secs) < 0 || secs < 0)
        return cli_usage_error(env, "--messageTTL: '%s' is not a time in seconds (3600, 1h)",
                               cli_arg(a, "--messageTTL"));
    return cli_admin_with_body(env, a, json_integer((json_int_t)secs));
}

static int cli_admin_set_backlog_quota(struct cli_env *env, const struct cli_args *a)
{
    static const char *const policies[] = {"producer_request_hold", "producer_exception",
                                           "consumer_backlog_eviction"};
    const char *pol = cli_arg(a, "--policy");
    bool ok = false;
    for (size_t i = 0; i < 3; i++)
        ok = ok || strcmp(pol, policies[i]) == 0;
    if (!ok)
        return cli_usage_error(env,
                               "--policy: '%s' is not one of producer_request_hold, "
                               "producer_exception, consumer_backlog_eviction",
                               pol);
    const char *type = cli_arg(a, "--type");
    if (type && strcmp(type, "destination_storage") != 0 && strcmp(type, "message_age") != 0)
        return cli_usage_error(env, "--type: '%s' is not destination_storage or message_age", type);
    int64_t limit = -1, limit_time = -1;
    if (cli_arg(a, "--limit") && cli_parse_size(cli_arg(a, "--limit"), &limit) < 0)
        return cli_usage_error(env, "--limit: '%s' is not a size (10M, 1G)", cli_arg(a, "--limit"));
    if (cli_arg(a, "--limitTime") && cli_parse_time(cli_arg(a, "--limitTime"), &limit_time) < 0)
        return cli_usage_error(env, "--limitTime: '%s' is not a time (30m, 3h)",
                               cli_arg(a, "--limitTime"));
    json_t *body = json_pack("{s:I,s:I,s:s}", "limitSize", (json_int_t)limit, "limitTime",
                             (json_int_t)limit_time, "policy", pol);
    char err[300];
    char *base = cli_admin_expand(a->cmd->path, a, err, sizeof err);
    if (!base) {
        json_decref(body);
        return cli_usage_error(env, "%s", err);
    }
    char *path = mg_asprintf("%s?backlogQuotaType=%s", base,
                             type ? type
                                  : (cli_arg(a, "--limitTime") && !cli_arg(a, "--limit")
                                         ? "message_age"
                                         : "destination_storage"));
    char *b = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    int rc = cli_admin_request(env, "POST", path, b, CLI_OUT_NONE, NULL);
    free(b);
    mg_free(path);
    mg_free(base);
    return rc;
}

static int cli_admin_grant(struct cli_env *env, const struct cli_args *a)
{
    static const char *const known[] = {"produce", "consume", "functions",
                                        "sources", "sinks",   "packages"};
    json_t *actions = cli_csv_array(cli_arg(a, "--actions"));
    size_t i;
    json_t *v;
    json_array_foreach(actions, i, v)
    {
        bool ok = false;
        for (size_t k = 0; k < sizeof known / sizeof *known; k++)
            ok = ok || strcmp(json_string_value(v), known[k]) == 0;
        if (!ok) {
            int rc = cli_usage_error(env, "--actions: unknown action '%s' (produce, consume, ...)",
                                     json_string_value(v));
            json_decref(actions);
            return rc;
        }
    }
    return cli_admin_with_body(env, a, actions);
}

static int cli_admin_dedup(struct cli_env *env, const struct cli_args *a)
{
    bool en = cli_arg(a, "--enable") != NULL, dis = cli_arg(a, "--disable") != NULL;
    if (en == dis)
        return cli_usage_error(env, "set-deduplication: give one of --enable or --disable%s", "");
    return cli_admin_with_body(env, a, json_boolean(en));
}

static int cli_admin_schema_compat(struct cli_env *env, const struct cli_args *a)
{
    static const char *const known[] = {
        "ALWAYS_INCOMPATIBLE", "ALWAYS_COMPATIBLE",  "BACKWARD",        "FORWARD",  "FULL",
        "BACKWARD_TRANSITIVE", "FORWARD_TRANSITIVE", "FULL_TRANSITIVE", "UNDEFINED"};
    const char *c = cli_arg(a, "--compatibility");
    char up[64];
    size_t n = 0;
    for (; c[n] && n + 1 < sizeof up; n++)
        up[n] = (char)toupper((unsigned char)c[n]);
    up[n] = '\0';
    bool ok = false;
    for (size_t k = 0; k < sizeof known / sizeof *known; k++)
        ok = ok || strcmp(up, known[k]) == 0;
    if (!ok)
        return cli_usage_error(env, "--compatibility: unknown strategy '%s' (FULL, BACKWARD, ...)",
                               c);
    return cli_admin_with_body(env, a, json_string(up));
}

static int cli_admin_ns_unload(struct cli_env *env, const struct cli_args *a)
{
    const char *tpl = cli_arg(a, "--bundle") ? "/admin/v2/namespaces/{ns}/{str:--bundle}/unload"
                                             : "/admin/v2/namespaces/{ns}/unload";
    return cli_admin_run_path(env, a, "PUT", tpl, NULL, CLI_OUT_NONE);
}

static int cli_admin_partitions(struct cli_env *env, const struct cli_args *a)
{
    long long n;
    if (!cli_is_int(cli_arg(a, "--partitions"), 1, &n))
        return cli_usage_error(env, "--partitions: '%s' is not a positive number",
                               cli_arg(a, "--partitions"));
    return cli_admin_with_body(env, a, json_integer((json_int_t)n));
}

/* A message id flag as ResetCursorData; "latest"/"earliest" as their ids. NULL = bad. */
static json_t *cli_msg_id_json(const char *s)
{
    int64_t l, e;
    if (!s || strcmp(s, "latest") == 0)
        l = e = INT64_MAX;
    else if (strcmp(s, "earliest") == 0)
        l = e = -1;
    else if (cli_parse_msg_id(s, &l, &e) < 0)
        return NULL;
    return json_pack("{s:I,s:I,s:i,s:i,s:b}", "ledgerId", (json_int_t)l, "entryId", (json_int_t)e,
                     "partitionIndex", -1, "batchIndex", -1, "isExcluded", 0);
}

static int cli_admin_create_sub(struct cli_env *env, const struct cli_args *a)
{
    json_t *id = cli_msg_id_json(cli_arg(a, "--messageId"));
    if (!id)
        return cli_usage_error(env, "--messageId: '%s' is not latest, earliest or ledger:entry",
                               cli_arg(a, "--messageId"));
    return cli_admin_with_body(env, a, id);
}

static int cli_admin_reset_cursor(struct cli_env *env, const struct cli_args *a)
{
    const char *t = cli_arg(a, "--time"), *m = cli_arg(a, "--messageId");
    if (!t == !m)
        return cli_usage_error(env, "reset-cursor: give one of --time or --messageId%s", "");
    if (m) {
        json_t *id = cli_msg_id_json(m);
        if (!id)
            return cli_usage_error(env, "--messageId: '%s' is not latest, earliest or ledger:entry",
                                   m);
        char *b = json_dumps(id, JSON_COMPACT);
        json_decref(id);
        int rc = cli_admin_run_path(env, a, "POST", "/admin/v2/{tp}/subscription/{sub}/resetcursor",
                                    b, CLI_OUT_NONE);
        free(b);
        return rc;
    }
    int64_t secs;
    if (cli_parse_time(t, &secs) < 0 || secs < 0)
        return cli_usage_error(env, "--time: '%s' is not a time (10m, 3h, 2d)", t);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t ts = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 - secs * 1000;
    char tpl[160];
    snprintf(tpl, sizeof tpl, "/admin/v2/{tp}/subscription/{sub}/resetcursor/%" PRId64, ts);
    return cli_admin_run_path(env, a, "POST", tpl, NULL, CLI_OUT_NONE);
}

static int cli_admin_expire(struct cli_env *env, const struct cli_args *a)
{
    int64_t secs;
    if (cli_parse_time(cli_arg(a, "--expireTime"), &secs) < 0 || secs < 0)
        return cli_usage_error(env, "--expireTime: '%s' is not a time in seconds (60, 10m)",
                               cli_arg(a, "--expireTime"));
    char tpl[160];
    snprintf(tpl, sizeof tpl, "/admin/v2/{tp}/subscription/{sub}/expireMessages/%" PRId64, secs);
    return cli_admin_run_path(env, a, "POST", tpl, NULL, CLI_OUT_NONE);
}

/* The request of template tpl, its successful answer (or the 404 whose reason is end, when
 * end is not NULL) kept in *r for the caller to print (cli_http_resp_fini); otherwise the exit
 * status, the line already printed. */
static int cli_admin_fetch(struct cli_env *env, const struct cli_args *a, const char *method,
                           const char *tpl, const char *end, struct cli_http_resp *r)
{
    char err[300];
    char *path = cli_admin_expand(tpl, a, err, sizeof err);
    if (!path)
        return cli_usage_error(env, "%s", err);
    int rc = cli_admin_answer(env, method, path, NULL, end, r);
    mg_free(path);
    return rc;
}

/* peek-messages: messages 1..n of the subscription's backlog, one request per entry (a
 * batch's messages each count, as pulsar-admin's peekMessages); a backlog shorter than n
 * ends the listing ("Message not found"), as it does for pulsar-admin. */
static int cli_admin_peek(struct cli_env *env, const struct cli_args *a)
{
    long long n = 1;
    if (cli_arg(a, "--count") && !cli_is_int(cli_arg(a, "--count"), 1, &n))
        return cli_usage_error(env, "--count: '%s' is not a positive number",
                               cli_arg(a, "--count"));
    long long shown = 0;
    for (long long i = 1; shown < n; i++) {
        char tpl[160];
        snprintf(tpl, sizeof tpl, "/admin/v2/{tp}/subscription/{sub}/position/%lld", i);
        struct cli_http_resp r;
        int rc = cli_admin_fetch(env, a, "GET", tpl, "Message not found", &r);
        if (rc != 0)
            return rc;
        bool end = r.status == 404;
        if (!end)
            cli_print_messages(env->out, &r, n - shown, &shown);
        cli_http_resp_fini(&r);
        if (end)
            break;
    }
    return 0;
}

static int cli_admin_examine(struct cli_env *env, const struct cli_args *a)
{
    const char *init = cli_arg(a, "--initialPosition");
    if (init && strcmp(init, "earliest") != 0 && strcmp(init, "latest") != 0)
        return cli_usage_error(env, "--initialPosition: '%s' is not earliest or latest", init);
    long long pos = 1;
    if (cli_arg(a, "--messagePosition") && !cli_is_int(cli_arg(a, "--messagePosition"), 1, &pos))
        return cli_usage_error(env, "--messagePosition: '%s' is not a positive number",
                               cli_arg(a, "--messagePosition"));
    char tpl[200];
    snprintf(tpl, sizeof tpl,
             "/admin/v2/{tp}/examinemessage?initialPosition=%s&messagePosition=%lld",
             init ? init : "latest", pos);
    struct cli_http_resp r;
    int rc = cli_admin_fetch(env, a, "GET", tpl, NULL, &r);
    if (rc != 0)
        return rc;
    cli_print_message(env->out, &r);
    cli_http_resp_fini(&r);
    return 0;
}

/* The row's request; its JSON answer handed to print (which returns the exit status). */
static int cli_admin_fetch_json(struct cli_env *env, const struct cli_args *a,
                                int (*print)(struct cli_env *, const struct cli_args *,
                                             const json_t *))
{
    struct cli_http_resp r;
    int rc = cli_admin_fetch(env, a, a->cmd->method, a->cmd->path, NULL, &r);
    if (rc != 0)
        return rc;
    json_t *j = json_loadb(r.body, r.len, 0, NULL);
    cli_http_resp_fini(&r);
    if (!j) {
        fprintf(env->err, "%s: the server's answer is not JSON\n", env->prog);
        return CLI_EXIT_FAIL;
    }
    rc = print(env, a, j);
    json_decref(j);
    return rc;
}

/* pulsar-admin's line: the id as MessageIdImpl prints it, ledgerId:entryId:partitionIndex. */
static int cli_print_terminated(struct cli_env *env, const struct cli_args *a, const json_t *j)
{
    json_t *p = json_object_get(j, "partitionIndex");
    fprintf(env->out,
            "Topic %s successfully terminated at %" JSON_INTEGER_FORMAT ":%" JSON_INTEGER_FORMAT
            ":%" JSON_INTEGER_FORMAT "\n",
            a->pos, json_integer_value(json_object_get(j, "ledgerId")),
            json_integer_value(json_object_get(j, "entryId")),
            json_is_integer(p) ? json_integer_value(p) : (json_int_t)-1);
    return 0;
}

static int cli_admin_terminate(struct cli_env *env, const struct cli_args *a)
{
    return cli_admin_fetch_json(env, a, cli_print_terminated);
}

static int cli_admin_compact(struct cli_env *env, const struct cli_args *a)
{
    int rc = cli_admin_simple(env, a);
    if (rc == 0)
        fprintf(env->out, "Topic compaction requested for %s\n", a->pos);
    return rc;
}

/* The broker URL of a lookup, as pulsar-admin prints it (the TLS one over https). */
static int cli_print_lookup(struct cli_env *env, const struct cli_args *a, const json_t *j)
{
    (void)a;
    const json_t *url = json_object_get(j, "brokerUrl");
    if (strncmp(env->conn.web_url, "https", 5) == 0 &&
        json_is_string(json_object_get(j, "brokerUrlTls")))
        url = json_object_get(j, "brokerUrlTls");
    if (!json_is_string(url)) {
        fprintf(env->err, "%s: the lookup answer has no brokerUrl\n", env->prog);
        return CLI_EXIT_FAIL;
    }
    fprintf(env->out, "%s\n", json_string_value(url));
    return 0;
}

static int cli_admin_lookup(struct cli_env *env, const struct cli_args *a)
{
    return cli_admin_fetch_json(env, a, cli_print_lookup);
}

static int cli_admin_schema_get(struct cli_env *env, const struct cli_args *a)
{
    const char *v = cli_arg(a, "--version");
    if (v && !cli_is_int(v, 0, NULL))
        return cli_usage_error(env, "--version: '%s' is not a number", v);
    return cli_admin_run_path(env, a, "GET",
                              v ? "/admin/v2/schemas/{tpn}/schema/{str:--version}"
                                : "/admin/v2/schemas/{tpn}/schema",
                              NULL, CLI_OUT_JSON);
}

static int cli_admin_schema_upload(struct cli_env *env, const struct cli_args *a)
{
    char why[300];
    size_t len;
    char *text = mg_read_file(cli_arg(a, "--filename"), 16u << 20, &len, why, sizeof why);
    if (!text)
        return cli_usage_error(env, "--filename: %s", why);
    json_t *j = json_loadb(text, len, 0, NULL);
    mg_free(text);
    if (!json_is_object(j)) {
        json_decref(j);
        return cli_usage_error(env,
                               "--filename: '%s' is not a schema definition (a JSON object with "
                               "type, schema, properties)",
                               cli_arg(a, "--filename"));
    }
    return cli_admin_with_body(env, a, j);
}

/* One message: its id line, the times of the answer, key, properties and payload (text, or a
 * hex dump when binary). */
static void cli_print_one(FILE *out, const struct cli_http_resp *r, const char *id, const char *key,
                          json_t *props, const char *payload, size_t len)
{
    fprintf(out, "%s\n", id);
    const char *pt = cli_http_header(r, "X-Pulsar-publish-time");
    fprintf(out, "Publish time: %s\n", pt ? pt : "0");
    const char *et = cli_http_header(r, "X-Pulsar-event-time");
    fprintf(out, "Event time: %s\n", et ? et : "0");
    if (key)
        fprintf(out, "Key: %s\n", key);
    if (json_object_size(props) > 0) {
        fprintf(out, "Properties:\n");
        cli_print_json(out, props);
    }
    if (cli_is_text(payload, len)) {
        fwrite(payload, 1, len, out);
        fputc('\n', out);
    } else {
        cli_hexdump(out, payload, len);
    }
}

static json_t *cli_kv_json(Pulsar__Proto__KeyValue **kv, size_t n)
{
    json_t *j = json_object();
    for (size_t i = 0; i < n; i++)
        if (kv[i]->key && kv[i]->value)
            json_object_set_new(j, kv[i]->key, json_string(kv[i]->value));
    return j;
}

void cli_print_messages(FILE *out, const struct cli_http_resp *r, long long max, long long *count)
{
    static const char sep[] = "-------------------------------------------------------------"
                              "------------\n\n";
    const char *id = cli_http_header(r, "X-Pulsar-Message-ID");
    char line[160];
    if (cli_http_header(r, "X-Pulsar-num-batch-message")) {
        /* a batch: [u32 size][SingleMessageMetadata][payload] per message, each shown with
         * its own key and properties (pulsar-admin's getIndividualMsgsFromBatch) */
        size_t off = 0;
        Pulsar__Proto__SingleMessageMetadata *smm;
        const uint8_t *payload;
        size_t plen;
        for (int i = 0; (max < 0 || i < max) && client_batch_next((const uint8_t *)r->body, r->len,
                                                                  &off, &smm, &payload, &plen) > 0;
             i++) {
            if ((*count)++ > 0)
                fputs(sep, out);
            snprintf(line, sizeof line, "Batch Message ID: %s:%d", id ? id : "(unknown)", i);
            json_t *props = cli_kv_json(smm->properties, smm->n_properties);
            cli_print_one(out, r, line, smm->partition_key, props, (const char *)payload, plen);
            json_decref(props);
            pulsar__proto__single_message_metadata__free_unpacked(smm, NULL);
        }
        return;
    }
    /* properties: one header per key (X-Pulsar-PROPERTY-<key>), or in newer brokers one
     * X-Pulsar-PROPERTY header holding a JSON object */
    const char *all = cli_http_header(r, "X-Pulsar-PROPERTY");
    json_t *props = all ? json_loads(all, 0, NULL) : NULL;
    if (!json_is_object(props)) {
        json_decref(props);
        props = json_object();
    }
    static const char prefix[] = "X-Pulsar-PROPERTY-";
    for (int i = 0; i < r->nhdrs; i++)
        if (strncasecmp(r->hdrs[2 * i], prefix, sizeof prefix - 1) == 0)
            json_object_set_new(props, r->hdrs[2 * i] + sizeof prefix - 1,
                                json_string(r->hdrs[2 * i + 1]));
    if ((*count)++ > 0)
        fputs(sep, out);
    snprintf(line, sizeof line, "Message ID: %s", id ? id : "(unknown)");
    cli_print_one(out, r, line, cli_http_header(r, "X-Pulsar-partition-key"), props, r->body,
                  r->len);
    json_decref(props);
}

void cli_print_message(FILE *out, const struct cli_http_resp *r)
{
    long long count = 0;
    cli_print_messages(out, r, -1, &count);
}

/* brokers list [CLUSTER]: the local cluster's brokers without one. */
static int cli_admin_brokers_list(struct cli_env *env, const struct cli_args *a)
{
    return cli_admin_run_path(env, a, "GET",
                              a->pos ? "/admin/v2/brokers/{pos}" : "/admin/v2/brokers", NULL,
                              CLI_OUT_LIST);
}

/* ---- the table --------------------------------------------------------------------------- */

#define SUB_FLAG                                                                                   \
    {                                                                                              \
        "-s,--subscription", "SUB", "subscription", CLI_F_REQUIRED                                 \
    }
#define FORCE_FLAG(what)                                                                           \
    {                                                                                              \
        "-f,--force", NULL, what, 0                                                                \
    }
/* the role and actions of grant-permission and revoke-permission, a namespace's or a topic's */
#define ROLE_FLAG                                                                                  \
    {                                                                                              \
        "--role", "ROLE", "client role", CLI_F_REQUIRED                                            \
    }
#define ACTIONS_FLAG                                                                               \
    {                                                                                              \
        "--actions", "ACTIONS", "comma-separated actions (produce,consume)", CLI_F_REQUIRED        \
    }
#define S cli_admin_simple
#define NSP "/admin/v2/namespaces/{ns}"
#define TP "/admin/v2/{tp}"

const struct cli_cmd cli_admin_cmds[] = {
    /* clang-format off */
    {"clusters", "list", NULL, "list the clusters", {{0}}, S, "GET", "/admin/v2/clusters", CLI_OUT_LIST},
    {"clusters", "get", "CLUSTER", "the configuration of a cluster", {{0}}, S, "GET",
     "/admin/v2/clusters/{pos}", CLI_OUT_JSON},

    {"brokers", "list", "[CLUSTER]", "list the active brokers (of a cluster)", {{0}},
     cli_admin_brokers_list, "GET", NULL, CLI_OUT_LIST},
    {"brokers", "leader-broker", NULL, "the leader broker", {{0}}, S, "GET",
     "/admin/v2/brokers/leaderBroker", CLI_OUT_JSON},
    {"brokers", "healthcheck", NULL, "run a health check on the broker (prints ok)", {{0}}, S,
     "GET", "/admin/v2/brokers/health", CLI_OUT_TEXT},

    {"tenants", "list", NULL, "list the tenants", {{0}}, S, "GET", "/admin/v2/tenants", CLI_OUT_LIST},
    {"tenants", "get", "TENANT", "the admin roles and allowed clusters of a tenant", {{0}}, S,
     "GET", "/admin/v2/tenants/{tenant}", CLI_OUT_JSON},
    {"tenants", "create", "TENANT", "create a tenant",
     {{"-r,--admin-roles", "ROLES", "comma-separated admin roles", 0},
      {"-c,--allowed-clusters", "CLUSTERS", "comma-separated allowed clusters (default: all)", 0}},
     cli_admin_tenant, "PUT", "/admin/v2/tenants/{tenant}", CLI_OUT_NONE},
    {"tenants", "update", "TENANT", "update a tenant's admin roles and allowed clusters",
     {{"-r,--admin-roles", "ROLES", "comma-separated admin roles", 0},
      {"-c,--allowed-clusters", "CLUSTERS", "comma-separated allowed clusters (default: all)", 0}},
     cli_admin_tenant, "POST", "/admin/v2/tenants/{tenant}", CLI_OUT_NONE},
    {"tenants", "delete", "TENANT", "delete a tenant",
     {FORCE_FLAG("delete its namespaces and topics too")}, S, "DELETE",
     "/admin/v2/tenants/{tenant}?force={bool:--force}", CLI_OUT_NONE},

    {"namespaces", "list", "TENANT", "list the namespaces of a tenant", {{0}}, S, "GET",
     "/admin/v2/namespaces/{tenant}", CLI_OUT_LIST},
    {"namespaces", "create", "TENANT/NAMESPACE", "create a namespace",
     {{"-b,--bundles", "N", "number of bundles", 0},
      {"-c,--clusters", "CLUSTERS", "comma-separated replication clusters", 0}},
     cli_admin_ns_create, "PUT", NSP, CLI_OUT_NONE},
    {"namespaces", "delete", "TENANT/NAMESPACE", "delete a namespace",
     {FORCE_FLAG("delete its topics too")}, S, "DELETE", NSP "?force={bool:--force}", CLI_OUT_NONE},
    {"namespaces", "policies", "TENANT/NAMESPACE", "the policies of a namespace", {{0}}, S, "GET",
     NSP, CLI_OUT_JSON},
    {"namespaces", "set-retention", "TENANT/NAMESPACE", "set the retention policy",
     {{"-s,--size", "SIZE", "retention size (10M, 16G, 3T; -1 = unlimited)", CLI_F_REQUIRED},
      {"-t,--time", "TIME", "retention time (100m, 3h, 2d, 5w; -1 = unlimited)", CLI_F_REQUIRED}},
     cli_admin_set_retention, "POST", NSP "/retention", CLI_OUT_NONE},
    {"namespaces", "get-retention", "TENANT/NAMESPACE", "the retention policy", {{0}}, S, "GET",
     NSP "/retention", CLI_OUT_JSON},
    {"namespaces", "set-message-ttl", "TENANT/NAMESPACE", "set the message time to live",
     {{"-ttl,--messageTTL", "SECONDS", "time to live in seconds (or 1h, 2d)", CLI_F_REQUIRED}},
     cli_admin_set_ttl, "POST", NSP "/messageTTL", CLI_OUT_NONE},
    {"namespaces", "set-backlog-quota", "TENANT/NAMESPACE", "set a backlog quota",
     {{"-l,--limit", "SIZE", "size limit (4G, 100M)", 0},
      {"-lt,--limitTime", "TIME", "time limit (1h, 2d)", 0},
      {"-p,--policy", "POLICY",
       "producer_request_hold, producer_exception or consumer_backlog_eviction", CLI_F_REQUIRED},
      {"-t,--type", "TYPE", "destination_storage or message_age", 0}},
     cli_admin_set_backlog_quota, "POST", NSP "/backlogQuota", CLI_OUT_NONE},
    {"namespaces", "grant-permission", "TENANT/NAMESPACE", "grant permissions to a role",
     {ROLE_FLAG, ACTIONS_FLAG}, cli_admin_grant, "POST", NSP "/permissions/{str:--role}",
     CLI_OUT_NONE},
    {"namespaces", "revoke-permission", "TENANT/NAMESPACE", "revoke a role's permissions",
     {ROLE_FLAG}, S, "DELETE",
     NSP "/permissions/{str:--role}", CLI_OUT_NONE},
    {"namespaces", "permissions", "TENANT/NAMESPACE", "the permissions of a namespace", {{0}}, S,
     "GET", NSP "/permissions", CLI_OUT_JSON},
    {"namespaces", "unload", "TENANT/NAMESPACE", "unload a namespace or one of its bundles",
     {{"-b,--bundle", "RANGE", "bundle range (0x00000000_0x40000000)", 0}},
     cli_admin_ns_unload, "PUT", NULL, CLI_OUT_NONE},
    {"namespaces", "bundles", "TENANT/NAMESPACE", "the bundles of a namespace", {{0}}, S, "GET",
     NSP "/bundles", CLI_OUT_JSON},
    {"namespaces", "set-deduplication", "TENANT/NAMESPACE", "enable or disable deduplication",
     {{"-e,--enable", NULL, "enable deduplication", 0},
      {"-d,--disable", NULL, "disable deduplication", 0}},
     cli_admin_dedup, "POST", NSP "/deduplication", CLI_OUT_NONE},
    {"namespaces", "set-schema-compatibility-strategy", "TENANT/NAMESPACE",
     "set the schema compatibility strategy",
     {{"-c,--compatibility", "STRATEGY", "FULL, BACKWARD, FORWARD, ALWAYS_COMPATIBLE, ...",
       CLI_F_REQUIRED}},
     cli_admin_schema_compat, "PUT", NSP "/schemaCompatibilityStrategy", CLI_OUT_NONE},

    {"topics", "list", "TENANT/NAMESPACE", "list the topics of a namespace", {{0}}, S, "GET",
     "/admin/v2/persistent/{ns}", CLI_OUT_LIST},
    {"topics", "create", "TOPIC", "create a non-partitioned topic", {{0}}, S, "PUT", TP,
     CLI_OUT_NONE},
    {"topics", "create-partitioned-topic", "TOPIC", "create a partitioned topic",
     {{"-p,--partitions", "N", "number of partitions", CLI_F_REQUIRED}}, cli_admin_partitions,
     "PUT", TP "/partitions", CLI_OUT_NONE},
    {"topics", "update-partitioned-topic", "TOPIC", "grow a partitioned topic",
     {{"-p,--partitions", "N", "new number of partitions", CLI_F_REQUIRED}, FORCE_FLAG("force")},
     cli_admin_partitions, "POST", TP "/partitions?force={bool:--force}", CLI_OUT_NONE},
    {"topics", "get-partitioned-topic-metadata", "TOPIC", "the partitions of a topic", {{0}}, S,
     "GET", TP "/partitions", CLI_OUT_JSON},
    {"topics", "delete", "TOPIC", "delete a topic",
     {FORCE_FLAG("close its producers and consumers first"),
      {"-d,--deleteSchema", NULL, "delete its schema too", 0}},
     S, "DELETE", TP "?force={bool:--force}&deleteSchema={bool:--deleteSchema}", CLI_OUT_NONE},
    {"topics", "delete-partitioned-topic", "TOPIC", "delete a partitioned topic",
     {FORCE_FLAG("close its producers and consumers first"),
      {"-d,--deleteSchema", NULL, "delete its schema too", 0}},
     S, "DELETE", TP "/partitions?force={bool:--force}&deleteSchema={bool:--deleteSchema}",
     CLI_OUT_NONE},
    {"topics", "stats", "TOPIC", "the stats of a topic",
     {{"-gpb,--get-precise-backlog", NULL, "count the backlog precisely", 0},
      {"-sbs,--get-subscription-backlog-size", NULL, "with each subscription's backlog size", 0}},
     S, "GET",
     TP "/stats?getPreciseBacklog={bool:--get-precise-backlog}&subscriptionBacklogSize="
        "{bool:--get-subscription-backlog-size}",
     CLI_OUT_JSON},
    {"topics", "stats-internal", "TOPIC", "the internal stats of a topic", {{0}}, S, "GET",
     TP "/internalStats", CLI_OUT_JSON},
    {"topics", "partitioned-stats", "TOPIC", "the stats of a partitioned topic",
     {{"--per-partition", NULL, "with each partition's stats", 0}}, S, "GET",
     TP "/partitioned-stats?perPartition={bool:--per-partition}", CLI_OUT_JSON},
    {"topics", "subscriptions", "TOPIC", "list the subscriptions of a topic", {{0}}, S, "GET",
     TP "/subscriptions", CLI_OUT_LIST},
    {"topics", "create-subscription", "TOPIC", "create a subscription",
     {SUB_FLAG, {"-m,--messageId", "ID", "where it starts: latest (default), earliest, ledger:entry", 0}},
     cli_admin_create_sub, "PUT", TP "/subscription/{sub}", CLI_OUT_NONE},
    {"topics", "unsubscribe", "TOPIC", "delete a subscription",
     {SUB_FLAG, FORCE_FLAG("disconnect its consumers first")}, S, "DELETE",
     TP "/subscription/{sub}?force={bool:--force}", CLI_OUT_NONE},
    {"topics", "skip", "TOPIC", "skip messages of a subscription",
     {SUB_FLAG, {"-n,--count", "N", "number of messages to skip", CLI_F_REQUIRED}}, S, "POST",
     TP "/subscription/{sub}/skip/{int:--count}", CLI_OUT_NONE},
    {"topics", "clear-backlog", "TOPIC", "skip every message of a subscription", {SUB_FLAG}, S,
     "POST", TP "/subscription/{sub}/skip_all", CLI_OUT_NONE},
    {"topics", "reset-cursor", "TOPIC", "move a subscription's cursor",
     {SUB_FLAG, {"-t,--time", "TIME", "to this long ago (10m, 3h, 2d)", 0},
      {"-m,--messageId", "ID", "to this message (ledger:entry, earliest, latest)", 0}},
     cli_admin_reset_cursor, "POST", NULL, CLI_OUT_NONE},
    {"topics", "expire-messages", "TOPIC", "expire the messages older than a time",
     {SUB_FLAG, {"-t,--expireTime", "SECONDS", "age in seconds (or 10m, 1h)", CLI_F_REQUIRED}},
     cli_admin_expire, "POST", NULL, CLI_OUT_NONE},
    {"topics", "peek-messages", "TOPIC", "show the next messages of a subscription",
     {SUB_FLAG, {"-n,--count", "N", "number of messages (default 1)", 0}}, cli_admin_peek,
     "GET", NULL, CLI_OUT_NONE},
    {"topics", "examine-message", "TOPIC", "show one message at a position",
     {{"-i,--initialPosition", "POS", "earliest or latest (default)", 0},
      {"-m,--messagePosition", "N", "position from there (default 1)", 0}},
     cli_admin_examine, "GET", NULL, CLI_OUT_NONE},
    {"topics", "terminate", "TOPIC", "terminate a topic (no more messages)", {{0}},
     cli_admin_terminate, "POST", TP "/terminate", CLI_OUT_NONE},
    {"topics", "compact", "TOPIC", "start a compaction", {{0}}, cli_admin_compact, "PUT",
     TP "/compaction", CLI_OUT_NONE},
    {"topics", "compaction-status", "TOPIC", "the status of a compaction",
     {{"-w,--wait-complete", NULL, "wait until it is done", 0}}, S, "GET", TP "/compaction",
     CLI_OUT_JSON},
    {"topics", "lookup", "TOPIC", "the broker serving a topic", {{0}}, cli_admin_lookup, "GET",
     "/lookup/v2/topic/{tp}", CLI_OUT_NONE},
    {"topics", "unload", "TOPIC", "unload a topic", {{0}}, S, "PUT", TP "/unload", CLI_OUT_NONE},
    {"topics", "grant-permission", "TOPIC", "grant permissions on a topic to a role",
     {ROLE_FLAG, ACTIONS_FLAG}, cli_admin_grant, "POST", TP "/permissions/{str:--role}",
     CLI_OUT_NONE},
    {"topics", "permissions", "TOPIC", "the permissions on a topic", {{0}}, S, "GET",
     TP "/permissions", CLI_OUT_JSON},

    {"schemas", "get", "TOPIC", "the schema of a topic",
     {{"-v,--version", "N", "that version (default: the latest)", 0}}, cli_admin_schema_get,
     "GET", NULL, CLI_OUT_JSON},
    {"schemas", "upload", "TOPIC", "upload a schema",
     {{"-f,--filename", "FILE", "schema definition (JSON: type, schema, properties)",
       CLI_F_REQUIRED}},
     cli_admin_schema_upload, "POST", "/admin/v2/schemas/{tpn}/schema", CLI_OUT_NONE},
    {"schemas", "delete", "TOPIC", "delete the schema of a topic", {{0}}, S, "DELETE",
     "/admin/v2/schemas/{tpn}/schema", CLI_OUT_NONE},
    /* clang-format on */
};
const size_t cli_admin_ncmds = sizeof cli_admin_cmds / sizeof *cli_admin_cmds;

const struct cli_flag cli_admin_globals[] = {
    {"--admin-url", "URL", "admin service URL (webServiceUrl; default http://localhost:8080)", 0},
    {"--request-timeout", "SECONDS", "bound of the connect and of each wait for an answer (30)", 0},
    CLI_CONN_FLAGS,
    {NULL, NULL, NULL, 0},
};

#undef SUB_FLAG
#undef FORCE_FLAG
#undef ROLE_FLAG
#undef ACTIONS_FLAG
#undef S
#undef NSP
#undef TP

int cli_admin_main(int argc, char **argv)
{
    return cli_tool_main("magnetar admin",
                         "pulsar-admin's commands over the admin REST API (webServicePort).",
                         cli_admin_cmds, cli_admin_ncmds, cli_admin_globals, argc, argv);
}
