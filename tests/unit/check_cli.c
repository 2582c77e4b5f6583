/*
 * check_cli.c - unit tests of the cli module (`magnetar admin`, `magnetar client`).
 *
 * Covers: the command table (every issue-16 command present, every row runnable, flag
 * spellings unique within a command, help for each row), argument parsing (flags in
 * pulsar-admin's spellings, --x=v, repeats, globals after the command, every usage error),
 * path templates and topic/namespace names, sizes, times and message ids, client.conf
 * reading with flag precedence, the error line of an answer (Pulsar's reason, a route the
 * server does not serve, a text body), list and message printing, and the bash completion
 * made from the table. The commands against a real server: tests/integration/cli.test.sh.
 */
#include "cli/cli_int.h"
#include "lib/tl.h"
#include "util/alloc.h"
#include "util/bytes.h"
#include "wire/wire.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Run the parser on a space-separated line for group/name. */
static int parse(const char *group, const char *name, const char *line, struct cli_args *a,
                 char *err, size_t errlen, char **buf, char ***argv)
{
    const struct cli_cmd *cmd = cli_cmd_find(cli_admin_cmds, cli_admin_ncmds, group, name);
    ck_assert_ptr_nonnull(cmd);
    *buf = mg_strdup(line);
    *argv = mg_calloc(64, sizeof **argv);
    int argc = 0;
    char *save = NULL;
    for (char *t = strtok_r(*buf, " ", &save); t && argc < 63; t = strtok_r(NULL, " ", &save))
        (*argv)[argc++] = t;
    return cli_args_parse(cmd, cli_admin_globals, argc, *argv, a, err, errlen);
}

static void done(struct cli_args *a, char *buf, char **argv)
{
    cli_args_fini(a);
    mg_free(buf);
    mg_free(argv);
}

START_TEST(test_table_complete)
{
    static const char *const want[] = {"clusters list",
                                       "clusters get",
                                       "brokers list",
                                       "brokers leader-broker",
                                       "brokers healthcheck",
                                       "tenants list",
                                       "tenants get",
                                       "tenants create",
                                       "tenants update",
                                       "tenants delete",
                                       "namespaces list",
                                       "namespaces create",
                                       "namespaces delete",
                                       "namespaces policies",
                                       "namespaces set-retention",
                                       "namespaces get-retention",
                                       "namespaces set-message-ttl",
                                       "namespaces set-backlog-quota",
                                       "namespaces grant-permission",
                                       "namespaces revoke-permission",
                                       "namespaces permissions",
                                       "namespaces unload",
                                       "namespaces bundles",
                                       "namespaces set-deduplication",
                                       "namespaces set-schema-compatibility-strategy",
                                       "topics list",
                                       "topics create",
                                       "topics create-partitioned-topic",
                                       "topics update-partitioned-topic",
                                       "topics get-partitioned-topic-metadata",
                                       "topics delete",
                                       "topics delete-partitioned-topic",
                                       "topics stats",
                                       "topics stats-internal",
                                       "topics partitioned-stats",
                                       "topics subscriptions",
                                       "topics create-subscription",
                                       "topics unsubscribe",
                                       "topics skip",
                                       "topics clear-backlog",
                                       "topics reset-cursor",
                                       "topics expire-messages",
                                       "topics peek-messages",
                                       "topics examine-message",
                                       "topics terminate",
                                       "topics compact",
                                       "topics compaction-status",
                                       "topics lookup",
                                       "topics unload",
                                       "topics grant-permission",
                                       "topics permissions",
                                       "schemas get",
                                       "schemas upload",
                                       "schemas delete"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        char g[64];
        snprintf(g, sizeof g, "%s", want[i]);
        char *sp = strchr(g, ' ');
        *sp = '\0';
        const struct cli_cmd *c = cli_cmd_find(cli_admin_cmds, cli_admin_ncmds, g, sp + 1);
        ck_assert_msg(c != NULL, "missing: %s", want[i]);
    }
    ck_assert_uint_eq(cli_admin_ncmds, sizeof want / sizeof *want);
    /* every row runs something; a simple row has its request; spellings are unique */
    for (size_t i = 0; i < cli_admin_ncmds; i++) {
        const struct cli_cmd *c = &cli_admin_cmds[i];
        ck_assert(c->run != NULL);
        ck_assert_ptr_nonnull(c->help);
        ck_assert_ptr_eq(cli_cmd_find(cli_admin_cmds, cli_admin_ncmds, c->group, c->name), c);
        for (int f = 0; c->flags[f].names; f++)
            for (int g = f + 1; c->flags[g].names; g++)
                ck_assert_str_ne(c->flags[f].names, c->flags[g].names);
    }
    ck_assert_ptr_nonnull(cli_cmd_find(cli_client_cmds, cli_client_ncmds, NULL, "produce"));
    ck_assert_ptr_nonnull(cli_cmd_find(cli_client_cmds, cli_client_ncmds, NULL, "consume"));
    ck_assert_ptr_nonnull(cli_cmd_find(cli_client_cmds, cli_client_ncmds, NULL, "read"));
    ck_assert_ptr_null(cli_cmd_find(cli_admin_cmds, cli_admin_ncmds, "topics", "nope"));
}
END_TEST

START_TEST(test_parse_flags)
{
    struct cli_args a;
    char err[256], *buf, **argv;
    /* short and long spellings, --x=v, a global after the command */
    ck_assert_int_eq(parse("topics", "skip", "t1 -s sub1 --count=5 --admin-url http://h:1", &a, err,
                           sizeof err, &buf, &argv),
                     0);
    ck_assert_str_eq(a.pos, "t1");
    ck_assert_str_eq(cli_arg(&a, "--subscription"), "sub1");
    ck_assert_str_eq(cli_arg(&a, "-s"), "sub1");
    ck_assert_str_eq(cli_arg(&a, "-n"), "5");
    ck_assert_str_eq(cli_arg(&a, "--admin-url"), "http://h:1");
    ck_assert_ptr_null(cli_arg(&a, "--auth-params"));
    done(&a, buf, argv);
    /* JCommander's one-dash long names; the last value wins; switches */
    ck_assert_int_eq(parse("namespaces", "set-message-ttl", "t/ns -ttl 10 -ttl 20", &a, err,
                           sizeof err, &buf, &argv),
                     0);
    ck_assert_str_eq(cli_arg(&a, "--messageTTL"), "20");
    ck_assert_int_eq(cli_arg_count(&a, "--messageTTL"), 1);
    done(&a, buf, argv);
    ck_assert_int_eq(parse("topics", "delete", "t -f", &a, err, sizeof err, &buf, &argv), 0);
    ck_assert_str_eq(cli_arg(&a, "--force"), "true");
    done(&a, buf, argv);
    ck_assert_int_eq(parse("topics", "delete", "t --force=false", &a, err, sizeof err, &buf, &argv),
                     0);
    ck_assert_ptr_null(cli_arg(&a, "--force"));
    done(&a, buf, argv);
    /* --help anywhere */
    ck_assert_int_eq(parse("topics", "stats", "--help", &a, err, sizeof err, &buf, &argv), 0);
    ck_assert(a.help);
    done(&a, buf, argv);
    /* optional positional */
    ck_assert_int_eq(parse("brokers", "list", "", &a, err, sizeof err, &buf, &argv), 0);
    ck_assert_ptr_null(a.pos);
    done(&a, buf, argv);
}
END_TEST

START_TEST(test_parse_errors)
{
    static const struct {
        const char *group, *name, *line, *needle;
    } bad[] = {
        {"topics", "skip", "t -s s", "-n/--count"},                 /* required flag */
        {"topics", "skip", "-s s -n 1", "needs TOPIC"},             /* missing positional */
        {"topics", "stats", "t --bogus", "unknown flag '--bogus'"}, /* bad flag */
        {"topics", "stats", "t u", "unexpected argument 'u'"},      /* extra word */
        {"topics", "skip", "t -s", "needs a value"},                /* flag without its value */
        {"topics", "delete", "t --force=maybe", "takes no value"},  /* switch with a value */
        {"clusters", "list", "x", "unexpected argument"},           /* no positional at all */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct cli_args a;
        char err[256] = "", *buf, **argv;
        int rc = parse(bad[i].group, bad[i].name, bad[i].line, &a, err, sizeof err, &buf, &argv);
        ck_assert_msg(rc < 0, "accepted: %s", bad[i].line);
        ck_assert_msg(strstr(err, bad[i].needle) != NULL, "'%s' -> '%s'", bad[i].line, err);
        ck_assert_ptr_null(strchr(err, '\n'));
        done(&a, buf, argv);
    }
}
END_TEST

START_TEST(test_paths)
{
    struct cli_args a;
    char err[256], *buf, **argv;
    ck_assert_int_eq(
        parse("topics", "skip", "t/ns/my+t -s a/b -n 3", &a, err, sizeof err, &buf, &argv), 0);
    char *p = cli_admin_expand(a.cmd->path, &a, err, sizeof err);
    ck_assert_str_eq(p, "/admin/v2/persistent/t/ns/my%2Bt/subscription/a%2Fb/skip/3");
    mg_free(p);
    done(&a, buf, argv);
    ck_assert_int_eq(parse("topics", "skip", "x -s s -n -3", &a, err, sizeof err, &buf, &argv), 0);
    ck_assert_ptr_null(cli_admin_expand(a.cmd->path, &a, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "--count"));
    done(&a, buf, argv);
    ck_assert_int_eq(parse("namespaces", "delete", "onlytenant", &a, err, sizeof err, &buf, &argv),
                     0);
    ck_assert_ptr_null(cli_admin_expand(a.cmd->path, &a, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "tenant/namespace"));
    done(&a, buf, argv);
    ck_assert_int_eq(parse("namespaces", "delete", "t/n -f", &a, err, sizeof err, &buf, &argv), 0);
    p = cli_admin_expand(a.cmd->path, &a, err, sizeof err);
    ck_assert_str_eq(p, "/admin/v2/namespaces/t/n?force=true");
    mg_free(p);
    done(&a, buf, argv);

    p = cli_topic_path("x", err, sizeof err);
    ck_assert_str_eq(p, "persistent/public/default/x");
    mg_free(p);
    p = cli_topic_path("non-persistent://a/b/c d", err, sizeof err);
    ck_assert_str_eq(p, "non-persistent/a/b/c%20d");
    mg_free(p);
    ck_assert_ptr_null(cli_topic_path("http://a/b/c", err, sizeof err));
    ck_assert_ptr_null(cli_topic_path("persistent://a/b", err, sizeof err));
    ck_assert_ptr_null(cli_topic_path("persistent://a//c", err, sizeof err));
}
END_TEST

START_TEST(test_values)
{
    int64_t v, l, e;
    ck_assert_int_eq(cli_parse_size("10M", &v), 0);
    ck_assert_int_eq(v, 10LL << 20);
    ck_assert_int_eq(cli_parse_size("3g", &v), 0);
    ck_assert_int_eq(v, 3LL << 30);
    ck_assert_int_eq(cli_parse_size("123", &v), 0);
    ck_assert_int_eq(v, 123);
    ck_assert_int_eq(cli_parse_size("-1", &v), 0);
    ck_assert_int_eq(v, -1);
    ck_assert_int_eq(cli_parse_size("10X", &v), -1);
    ck_assert_int_eq(cli_parse_size("-2", &v), -1);
    ck_assert_int_eq(cli_parse_size("", &v), -1);
    ck_assert_int_eq(cli_parse_size("99999999999T", &v), -1); /* overflow */
    ck_assert_int_eq(cli_parse_time("90", &v), 0);
    ck_assert_int_eq(v, 90);
    ck_assert_int_eq(cli_parse_time("10m", &v), 0);
    ck_assert_int_eq(v, 600);
    ck_assert_int_eq(cli_parse_time("2d", &v), 0);
    ck_assert_int_eq(v, 2 * 86400);
    ck_assert_int_eq(cli_parse_time("1w", &v), 0);
    ck_assert_int_eq(v, 7 * 86400);
    ck_assert_int_eq(cli_parse_time("3hh", &v), -1);
    ck_assert_int_eq(cli_parse_time("h", &v), -1);
    ck_assert_int_eq(cli_parse_msg_id("12:34", &l, &e), 0);
    ck_assert_int_eq(l, 12);
    ck_assert_int_eq(e, 34);
    ck_assert_int_eq(cli_parse_msg_id("12:34:-1:-1", &l, &e), 0);
    ck_assert_int_eq(cli_parse_msg_id("12", &l, &e), -1);
    ck_assert_int_eq(cli_parse_msg_id("12:x", &l, &e), -1);
    ck_assert_int_eq(cli_parse_msg_id("1:2x", &l, &e), -1);
}
END_TEST

START_TEST(test_conf)
{
    char path[] = "/tmp/check_cli_confXXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    const char *text = "# a comment\n"
                       "webServiceUrl=http://from-file:8080/\n"
                       "brokerServiceUrl = pulsar://from-file:6650\n"
                       "authPlugin: org.apache.pulsar.client.impl.auth.AuthenticationToken\n"
                       "authParams=token:abc.def\n"
                       "tlsTrustCertsFilePath=/ca.pem\n"
                       "someOtherKey=ignored\n";
    ck_assert_int_eq(write(fd, text, strlen(text)), (int)strlen(text));
    close(fd);
    struct cli_args a;
    char err[256], *buf, **argv;
    char line[200];
    snprintf(line, sizeof line, "--conf %s --tls-trust-cert-path /flag.pem", path);
    ck_assert_int_eq(parse("clusters", "list", line, &a, err, sizeof err, &buf, &argv), 0);
    struct cli_conn c;
    ck_assert_int_eq(cli_conn_init(&c, &a, err, sizeof err), 0);
    ck_assert_str_eq(c.web_url, "http://from-file:8080/");
    ck_assert_str_eq(c.service_url, "pulsar://from-file:6650");
    ck_assert_str_eq(c.token, "abc.def");
    ck_assert_str_eq(c.trust_certs, "/flag.pem"); /* the flag wins over the file */
    cli_conn_fini(&c);
    done(&a, buf, argv);
    /* a missing --conf file is an error; an unknown plugin too */
    ck_assert_int_eq(
        parse("clusters", "list", "--conf /nonexistent/x.conf", &a, err, sizeof err, &buf, &argv),
        0);
    ck_assert_int_eq(cli_conn_init(&c, &a, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "--conf"));
    cli_conn_fini(&c);
    done(&a, buf, argv);
    ck_assert_int_eq(parse("clusters", "list", "--auth-plugin Basic --auth-params x", &a, err,
                           sizeof err, &buf, &argv),
                     0);
    ck_assert_int_eq(cli_conn_init(&c, &a, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "--auth-plugin"));
    cli_conn_fini(&c);
    done(&a, buf, argv);
    /* no --conf: $PULSAR_HOME/conf/client.conf when PULSAR_HOME is set */
    char home[] = "/tmp/check_cli_homeXXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(home));
    char dir[300], file[320];
    snprintf(dir, sizeof dir, "%s/conf", home);
    snprintf(file, sizeof file, "%s/client.conf", dir);
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    ck_assert_int_eq(rename(path, file), 0);
    setenv("PULSAR_HOME", home, 1);
    unsetenv("PULSAR_CLIENT_CONF");
    ck_assert_int_eq(parse("clusters", "list", "", &a, err, sizeof err, &buf, &argv), 0);
    ck_assert_int_eq(cli_conn_init(&c, &a, err, sizeof err), 0);
    ck_assert_str_eq(c.web_url, "http://from-file:8080/");
    cli_conn_fini(&c);
    done(&a, buf, argv);
    /* without any file: the defaults */
    unlink(file);
    ck_assert_int_eq(parse("clusters", "list", "", &a, err, sizeof err, &buf, &argv), 0);
    ck_assert_int_eq(cli_conn_init(&c, &a, err, sizeof err), 0);
    ck_assert_str_eq(c.web_url, "http://localhost:8080");
    ck_assert_str_eq(c.service_url, "pulsar://localhost:6650");
    ck_assert_ptr_null(c.token);
    cli_conn_fini(&c);
    done(&a, buf, argv);
    unsetenv("PULSAR_HOME");
    rmdir(dir);
    rmdir(home);
}
END_TEST

static struct cli_http_resp resp(int status, const char *body)
{
    struct cli_http_resp r = {.status = status};
    r.body = mg_strdup(body);
    r.len = strlen(body);
    return r;
}

START_TEST(test_error_lines)
{
    char line[300];
    struct cli_http_resp r = resp(404, "{\"reason\":\"Tenant does not exist\"}");
    cli_http_error_line(&r, line, sizeof line);
    ck_assert_str_eq(line, "Tenant does not exist (HTTP 404)");
    ck_assert(!cli_http_unsupported(&r));
    cli_http_resp_fini(&r);
    r = resp(404, "Not Found");
    cli_http_error_line(&r, line, sizeof line);
    ck_assert_ptr_nonnull(strstr(line, "not supported by this server yet"));
    ck_assert(cli_http_unsupported(&r));
    cli_http_resp_fini(&r);
    r = resp(500, "\n--- An unexpected error occurred in the server ---\nat x.y(Z.java)\n");
    cli_http_error_line(&r, line, sizeof line);
    ck_assert_str_eq(line, "HTTP 500: --- An unexpected error occurred in the server ---");
    cli_http_resp_fini(&r);
    /* an HTML error page: the reason phrase, not the page */
    r = resp(401, "<html>\n<head><title>Error 401 Authentication required</title></head>\n"
                  "<body><h2>HTTP ERROR 401</h2></body></html>\n");
    cli_http_error_line(&r, line, sizeof line);
    ck_assert_str_eq(line, "HTTP 401: Authentication required");
    cli_http_resp_fini(&r);
    r = resp(403, "<html><body>no title</body></html>");
    r.phrase = mg_strdup("Forbidden");
    cli_http_error_line(&r, line, sizeof line);
    ck_assert_str_eq(line, "HTTP 403: Forbidden");
    cli_http_resp_fini(&r);
    r = resp(502, "");
    cli_http_error_line(&r, line, sizeof line);
    ck_assert_str_eq(line, "HTTP 502");
    cli_http_resp_fini(&r);
}
END_TEST

/* What fn prints for r, as a string (free). */
/* The n headers (name, value pairs) of an answer, copied. */
static void set_headers(struct cli_http_resp *r, const char *const *h, int n)
{
    r->nhdrs = n;
    r->hdrs = mg_calloc(2 * (size_t)n + 1, sizeof *r->hdrs);
    for (int i = 0; i < 2 * n; i++)
        r->hdrs[i] = mg_strdup(h[i]);
}

static char *printed(void (*fn)(FILE *, const struct cli_http_resp *),
                     const struct cli_http_resp *r)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    fn(f, r);
    fclose(f);
    return text;
}

START_TEST(test_output)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ck_assert_int_eq(cli_print_list(f, "[\"a\",\"b/c\"]", 11), 0);
    ck_assert_int_eq(cli_print_list(f, "{}", 2), -1);
    json_t *j = json_pack("{s:i,s:[]}", "partitions", 4, "x");
    cli_print_json(f, j);
    json_decref(j);
    fclose(f);
    ck_assert_str_eq(text, "a\nb/c\n{\n  \"partitions\": 4,\n  \"x\": []\n}\n");
    free(text);

    ck_assert(cli_is_text("hello\n\tw\xc3\xa9", 10));
    ck_assert(!cli_is_text("a\0b", 3));
    ck_assert(!cli_is_text("\xff\xfe", 2));
    ck_assert(!cli_is_text("\xc3", 1)); /* cut UTF-8 */

    /* a peeked message: headers and a binary payload */
    struct cli_http_resp r = {.status = 200, .len = 20};
    r.body = mg_malloc(21);
    for (int i = 0; i < 20; i++)
        r.body[i] = (char)i;
    r.body[20] = 0;
    const char *h[] = {"X-Pulsar-Message-ID",    "7:3",
                       "X-Pulsar-publish-time",  "2026-01-01T00:00:00Z",
                       "X-Pulsar-PROPERTY-k1",   "v1",
                       "X-Pulsar-partition-key", "key1",
                       "X-Pulsar-PROPERTY",      "{\"k2\":\"v2\"}"};
    set_headers(&r, h, 5);
    text = printed(cli_print_message, &r);
    ck_assert_ptr_nonnull(strstr(text, "Message ID: 7:3\n"));
    ck_assert_ptr_nonnull(strstr(text, "Publish time: 2026-01-01T00:00:00Z\n"));
    ck_assert_ptr_nonnull(strstr(text, "Key: key1\n"));
    ck_assert_ptr_nonnull(strstr(text, "\"k1\": \"v1\""));
    ck_assert_ptr_nonnull(strstr(text, "\"k2\": \"v2\""));
    ck_assert_ptr_nonnull(strstr(text, "|00000000| 00 01 02 03"));
    ck_assert_ptr_nonnull(strstr(text, "|00000010| 10 11 12 13    "));
    free(text);
    /* a text payload prints as text */
    mg_free(r.body);
    r.body = mg_strdup("hello world");
    r.len = 11;
    text = printed(cli_print_message, &r);
    ck_assert_ptr_nonnull(strstr(text, "\nhello world\n"));
    ck_assert_ptr_null(strstr(text, "|00000000|"));
    free(text);
    cli_http_resp_fini(&r);
}
END_TEST

/* A batch payload of n messages: "p<i>" with key "k<i>" and property i=v<i>. */
static void batch_body(struct cli_http_resp *r, int n)
{
    r->body = mg_malloc(64 * (size_t)n + 1);
    r->len = 0;
    for (int i = 0; i < n; i++) {
        char key[8], pk[8], pv[8], payload[8];
        snprintf(key, sizeof key, "k%d", i);
        snprintf(pk, sizeof pk, "%d", i);
        snprintf(pv, sizeof pv, "v%d", i);
        snprintf(payload, sizeof payload, "p%d", i);
        Pulsar__Proto__KeyValue kv = PULSAR__PROTO__KEY_VALUE__INIT, *kvs[1] = {&kv};
        kv.key = pk;
        kv.value = pv;
        Pulsar__Proto__SingleMessageMetadata smm = PULSAR__PROTO__SINGLE_MESSAGE_METADATA__INIT;
        smm.partition_key = key;
        smm.n_properties = 1;
        smm.properties = kvs;
        smm.payload_size = (int32_t)strlen(payload);
        size_t sz = pulsar__proto__single_message_metadata__get_packed_size(&smm);
        mg_put_be32((uint8_t *)r->body + r->len, (uint32_t)sz);
        pulsar__proto__single_message_metadata__pack(&smm, (uint8_t *)r->body + r->len + 4);
        memcpy(r->body + r->len + 4 + sz, payload, strlen(payload));
        r->len += 4 + sz + strlen(payload);
    }
    r->body[r->len] = 0;
}

START_TEST(test_print_batch)
{
    struct cli_http_resp r = {.status = 200};
    batch_body(&r, 3);
    const char *h[] = {"X-Pulsar-Message-ID",        "5:6",
                       "X-Pulsar-publish-time",      "2026-01-01T00:00:00.000Z",
                       "X-Pulsar-num-batch-message", "3"};
    set_headers(&r, h, 3);
    /* every message of the batch, each with its own id, key, property and payload */
    char *text = printed(cli_print_message, &r);
    for (int i = 0; i < 3; i++) {
        char want[64];
        snprintf(want, sizeof want, "Batch Message ID: 5:6:%d\n", i);
        ck_assert_msg(strstr(text, want), "%s", text);
        snprintf(want, sizeof want, "Key: k%d\n", i);
        ck_assert_msg(strstr(text, want), "%s", text);
        snprintf(want, sizeof want, "\"%d\": \"v%d\"", i, i);
        ck_assert_msg(strstr(text, want), "%s", text);
        snprintf(want, sizeof want, "\np%d\n", i);
        ck_assert_msg(strstr(text, want), "%s", text);
    }
    ck_assert_ptr_null(strstr(text, "|00000000|")); /* not the batch's bytes as one payload */
    free(text);
    /* at most max of them, the count carried over from earlier answers */
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    long long count = 1;
    cli_print_messages(f, &r, 2, &count);
    fclose(f);
    ck_assert_int_eq(count, 3);
    ck_assert_msg(strncmp(out, "------", 6) == 0, "%s", out); /* after an earlier message */
    ck_assert_ptr_nonnull(strstr(out, "Batch Message ID: 5:6:1\n"));
    ck_assert_ptr_null(strstr(out, "Batch Message ID: 5:6:2"));
    free(out);
    cli_http_resp_fini(&r);
}
END_TEST

START_TEST(test_completion)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cli_completion_bash(f, "magnetar admin", cli_admin_cmds, cli_admin_ncmds, cli_admin_globals);
    fclose(f);
    /* every group, command and flag spelling of the table is offered */
    for (size_t i = 0; i < cli_admin_ncmds; i++) {
        const struct cli_cmd *c = &cli_admin_cmds[i];
        ck_assert_ptr_nonnull(strstr(text, c->group));
        char w[128];
        snprintf(w, sizeof w, "%s ", c->name);
        ck_assert_msg(strstr(text, w) != NULL, "%s", c->name);
        for (int k = 0; c->flags[k].names; k++) {
            char first[64];
            snprintf(first, sizeof first, "%s", c->flags[k].names);
            *strchrnul(first, ',') = '\0';
            ck_assert_msg(strstr(text, first) != NULL, "%s", first);
        }
    }
    ck_assert_ptr_nonnull(strstr(text, "complete -F _magnetar_admin magnetar"));
    ck_assert_ptr_nonnull(strstr(text, "--admin-url"));
    free(text);
}
END_TEST

int main(void)
{
    return tl_main("cli", TL_CASES({"table", 0, NULL, NULL,
                                    TL_TESTS(test_table_complete, test_parse_flags,
                                             test_parse_errors, test_paths, test_completion)},
                                   {"values", 0, NULL, NULL,
                                    TL_TESTS(test_values, test_conf, test_error_lines, test_output,
                                             test_print_batch)}));
}
