/*
 * check_cfg.c - unit tests of the config module: defaults, the shipped conf files, every
 * error path (each message must name the key and where the value came from), and the
 * precedence file < environment < --set. YAML files are written to a fresh mkdtemp
 * directory per test and removed afterwards. Run under ASan with CK_FORK=no to check that
 * cfg_fini frees everything.
 */
#include "config/cfg.h"
#include "lib/tl.h"
#include "util/alloc.h"
#include "util/err.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef MG_TOP_SRCDIR
#error "MG_TOP_SRCDIR must name the source tree (see broker/config/Makefile.inc)"
#endif

static char *tmpdir; /* the test's files (tl_tmpdir) */
static char errbuf[512];

static void setup(void)
{
    tmpdir = tl_tmpdir("check_cfg");
    errbuf[0] = '\0';
}

static void teardown(void)
{
    tl_tmpdir_free(&tmpdir);
}

/* Write text to <tmpdir>/name; returns the path (static buffer, one at a time). */
static const char *write_yaml(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
    return path;
}

#define ASSERT_ERR_HAS(s)                                                                          \
    ck_assert_msg(strstr(errbuf, (s)) != NULL, "'%s' not in '%s'", (s), errbuf)

/* Load path into a fresh config and expect failure; c is left finished. */
static void expect_file_error(const char *path)
{
    struct cfg c;
    cfg_init(&c);
    ck_assert_int_eq(cfg_load_file(&c, path, errbuf, sizeof errbuf), -MG_EINVAL);
    ASSERT_ERR_HAS(path);
    cfg_fini(&c);
}

/* Write text to <tmpdir>/name and expect loading it to fail (the message in errbuf). */
static void expect_yaml_error(const char *name, const char *text)
{
    expect_file_error(write_yaml(name, text));
}

START_TEST(test_defaults)
{
    struct cfg c;
    cfg_init(&c);
    ck_assert_ptr_null(c.file);
    ck_assert_str_eq(c.cluster_name, "standalone");
    ck_assert_str_eq(c.bind_address, "0.0.0.0");
    ck_assert_ptr_nonnull(c.advertised_address);
    ck_assert_int_gt((int)strlen(c.advertised_address), 0);
    ck_assert_int_eq(c.broker_service_port, 6650);
    ck_assert_int_eq(c.web_service_port, 8080);
    ck_assert_int_eq(c.max_message_size, 5242880);
    ck_assert_int_eq(c.keep_alive_interval_seconds, 30);
    ck_assert_int_eq(c.max_pending_publish_per_conn, 1000);
    ck_assert_int_eq(c.max_unacked_per_consumer, 50000);
    ck_assert_int_eq(c.max_unacked_per_subscription, 200000);
    ck_assert_int_eq(c.dispatcher_max_round_robin_batch_size, 20);
    ck_assert_int_eq(c.dispatcher_max_read_batch_size, 100);
    ck_assert_int_eq(c.active_consumer_failover_delay_ms, 1000);
    ck_assert_int_eq(c.connection_max_outbound_bytes, 4194304);
    ck_assert_int_eq(c.managed_ledger_cache_size_mb, 16);
    ck_assert_int_eq(c.managed_ledger_max_entries_per_ledger, 50000);
    ck_assert_int_eq(c.managed_ledger_max_size_per_ledger_mb, 2048);
    ck_assert_int_eq(c.default_number_of_namespace_bundles, 4);
    ck_assert(c.allow_auto_topic_creation);
    ck_assert_str_eq(c.allow_auto_topic_creation_type, "non-partitioned");
    ck_assert_int_eq(c.default_num_partitions, 1);
    ck_assert_str_eq(c.data_directory, "data");
    ck_assert_str_eq(c.metadata_store_url, "embedded");
    ck_assert_str_eq(c.managed_ledger_store, "bookkeeper");
    ck_assert(!c.allow_volatile_topics);
    ck_assert_str_eq(c.log_level, "info");

    char host[256] = "";
    if (gethostname(host, sizeof host) == 0 && host[0] != '\0')
        ck_assert_str_eq(c.advertised_address, host);
    cfg_fini(&c);
}
END_TEST

START_TEST(test_standalone_yaml)
{
    struct cfg c;
    const char *path = MG_TOP_SRCDIR "/conf/standalone.yaml";
    ck_assert_int_eq(cfg_load(&c, NULL, path, NULL, 0, NULL, errbuf, sizeof errbuf), 0);
    ck_assert_str_eq(c.file, path);
    ck_assert_str_eq(c.advertised_address, "127.0.0.1");
    ck_assert_str_eq(c.bind_address, "127.0.0.1");
    ck_assert_int_eq(c.broker_service_port, 6650);
    ck_assert_int_eq(c.web_service_port, 8080);
    ck_assert_str_eq(c.data_directory, "data/standalone");
    ck_assert_str_eq(c.cluster_name, "standalone");
    cfg_fini(&c);
}
END_TEST

START_TEST(test_broker_yaml)
{
    struct cfg c, d;
    const char *path = MG_TOP_SRCDIR "/conf/broker.yaml";
    ck_assert_int_eq(cfg_load(&c, NULL, path, NULL, 0, NULL, errbuf, sizeof errbuf), 0);
    cfg_init(&d);
    ck_assert_str_eq(c.bind_address, "0.0.0.0");
    ck_assert_str_eq(c.advertised_address, d.advertised_address); /* commented out */
    ck_assert_str_eq(c.metadata_store_url, "zk:127.0.0.1:2181");
    ck_assert_str_eq(c.managed_ledger_store, "bookkeeper");
    cfg_fini(&d);
    cfg_fini(&c);
}
END_TEST

/* Every key the table knows is documented in conf/README.md. */
START_TEST(test_readme_lists_every_key)
{
    FILE *f = fopen(MG_TOP_SRCDIR "/conf/README.md", "r");
    ck_assert_ptr_nonnull(f);
    static char text[64 * 1024];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    size_t pos = 0, count = 0;
    const char *key;
    while ((key = cfg_key_next(&pos)) != NULL) {
        char cell[128];
        snprintf(cell, sizeof cell, "| `%s` |", key);
        ck_assert_msg(strstr(text, cell) != NULL, "key %s missing from conf/README.md", key);
        count++;
    }
    /* ... and the README documents no key the table does not know: as many rows as keys */
    size_t rows = 0;
    for (const char *p = text; (p = strstr(p, "\n| `")) != NULL; p++)
        rows++;
    ck_assert_uint_gt(count, 20);
    ck_assert_uint_eq(rows, count);
    ck_assert_ptr_null(cfg_key_next(&pos));
}
END_TEST

START_TEST(test_unknown_key)
{
    expect_yaml_error("x.yaml", "brokerServicePort: 1\nbrokerServicePortt: 6650\n");
    ASSERT_ERR_HAS("unknown key 'brokerServicePortt'");
}
END_TEST

START_TEST(test_bad_integer)
{
    expect_yaml_error("x.yaml", "brokerServicePort: abc\n");
    ASSERT_ERR_HAS("bad value 'abc' for key 'brokerServicePort': expected an integer");

    expect_yaml_error("y.yaml", "maxMessageSize: 12x\n");
    ASSERT_ERR_HAS("'12x'");
    ASSERT_ERR_HAS("'maxMessageSize'");

    expect_yaml_error("z.yaml", "maxMessageSize: 99999999999999999999\n");
    ASSERT_ERR_HAS("'maxMessageSize'");
}
END_TEST

START_TEST(test_out_of_range)
{
    expect_yaml_error("x.yaml", "webServicePort: 65536\n");
    ASSERT_ERR_HAS("'65536'");
    ASSERT_ERR_HAS("'webServicePort'");
    ASSERT_ERR_HAS("0..65535");

    expect_yaml_error("y.yaml", "brokerServicePort: -1\n");
    ASSERT_ERR_HAS("'brokerServicePort'");

    expect_yaml_error("z.yaml", "maxMessageSize: 0\n");
    ASSERT_ERR_HAS("'maxMessageSize'");
    ASSERT_ERR_HAS(">= 1");

    /* port 0 is valid: any free port */
    struct cfg c;
    const char *path = write_yaml("ok.yaml", "brokerServicePort: 0\nwebServicePort: 0\n");
    ck_assert_int_eq(cfg_load(&c, NULL, path, NULL, 0, NULL, errbuf, sizeof errbuf), 0);
    ck_assert_int_eq(c.broker_service_port, 0);
    ck_assert_int_eq(c.web_service_port, 0);
    cfg_fini(&c);
}
END_TEST

START_TEST(test_bad_enum_and_bool)
{
    expect_yaml_error("x.yaml", "logLevel: verbose\n");
    ASSERT_ERR_HAS("bad value 'verbose' for key 'logLevel'");
    ASSERT_ERR_HAS("debug|info|warn|error");

    expect_yaml_error("y.yaml", "allowAutoTopicCreationType: sharded\n");
    ASSERT_ERR_HAS("'allowAutoTopicCreationType'");

    expect_yaml_error("z.yaml", "allowAutoTopicCreation: maybe\n");
    ASSERT_ERR_HAS("bad value 'maybe' for key 'allowAutoTopicCreation': expected true or false");

    struct cfg c;
    cfg_init(&c);
    ck_assert_int_eq(cfg_set(&c, "allowAutoTopicCreation", "false", "--set", errbuf, sizeof errbuf),
                     0);
    ck_assert(!c.allow_auto_topic_creation);
    ck_assert_int_eq(
        cfg_set(&c, "allowAutoTopicCreationType", "partitioned", "--set", errbuf, sizeof errbuf),
        0);
    ck_assert_str_eq(c.allow_auto_topic_creation_type, "partitioned");
    ck_assert_int_eq(cfg_set(&c, "clusterName", "", "--set", errbuf, sizeof errbuf), -MG_EINVAL);
    ASSERT_ERR_HAS("--set: bad value '' for key 'clusterName'");
    cfg_fini(&c);
}
END_TEST

/* A port is turned off by leaving it empty (Pulsar's brokerServicePort=); the TLS ports are
 * off by default; "-1" is not a way to say it. */
START_TEST(test_port_off)
{
    struct cfg c;
    cfg_init(&c);
    ck_assert_int_eq(c.broker_service_port, 6650);
    ck_assert_int_eq(c.broker_service_port_tls, -1);
    ck_assert_int_eq(c.web_service_port_tls, -1);
    ck_assert_int_eq(c.tls_cert_refresh_check_s, 300);
    ck_assert_int_eq(cfg_set(&c, "brokerServicePort", "", "--set", errbuf, sizeof errbuf), 0);
    ck_assert_int_eq(c.broker_service_port, -1);
    ck_assert_int_eq(cfg_set(&c, "brokerServicePortTls", "6651", "--set", errbuf, sizeof errbuf),
                     0);
    ck_assert_int_eq(c.broker_service_port_tls, 6651);
    ck_assert_int_eq(cfg_set(&c, "webServicePortTls", "-1", "--set", errbuf, sizeof errbuf),
                     -MG_EINVAL);
    ASSERT_ERR_HAS("'webServicePortTls'");
    ASSERT_ERR_HAS("empty for off");
    ck_assert_int_eq(cfg_set(&c, "maxMessageSize", "", "--set", errbuf, sizeof errbuf),
                     -MG_EINVAL); /* only ports can be empty */
    cfg_fini(&c);
}
END_TEST

/* A file with a bad value changes nothing, even keys before the bad one. */
START_TEST(test_bad_file_changes_nothing)
{
    const char *path = write_yaml("x.yaml", "clusterName: other\nwebServicePort: 1000000\n");
    struct cfg c;
    cfg_init(&c);
    ck_assert_int_eq(cfg_load_file(&c, path, errbuf, sizeof errbuf), -MG_EINVAL);
    ck_assert_str_eq(c.cluster_name, "standalone");
    ck_assert_ptr_null(c.file);
    cfg_fini(&c);
}
END_TEST

START_TEST(test_set_overrides_file)
{
    const char *path = write_yaml("x.yaml", "brokerServicePort: 7000\nclusterName: a\n");
    char *sets[] = {"brokerServicePort=7001", "logLevel=debug"};
    struct cfg c;
    ck_assert_int_eq(cfg_load(&c, NULL, path, NULL, 2, sets, errbuf, sizeof errbuf), 0);
    ck_assert_int_eq(c.broker_service_port, 7001);
    ck_assert_str_eq(c.log_level, "debug");
    ck_assert_str_eq(c.cluster_name, "a");
    cfg_fini(&c);

    char *bad[] = {"brokerServicePort=x"};
    ck_assert_int_eq(cfg_load(&c, NULL, path, NULL, 1, bad, errbuf, sizeof errbuf), -MG_EINVAL);
    ASSERT_ERR_HAS("--set: bad value 'x' for key 'brokerServicePort'");
    cfg_fini(&c); /* harmless after a failed cfg_load */

    char *unknown[] = {"nope=1"};
    ck_assert_int_eq(cfg_load(&c, NULL, NULL, NULL, 1, unknown, errbuf, sizeof errbuf), -MG_EINVAL);
    ASSERT_ERR_HAS("--set: unknown key 'nope'");
}
END_TEST

START_TEST(test_env_precedence)
{
    const char *path = write_yaml("x.yaml", "advertisedAddress: file.example\n"
                                            "brokerServicePort: 7000\n"
                                            "webServicePort: 9000\n");
    char *envp[] = {"PATH=/usr/bin", "MAGNETAR_advertisedAddress=env.example",
                    "MAGNETAR_brokerServicePort=7100", "HOME=/root", NULL};
    char *sets[] = {"brokerServicePort=7200"};
    struct cfg c;
    ck_assert_int_eq(cfg_load(&c, NULL, path, envp, 1, sets, errbuf, sizeof errbuf), 0);
    ck_assert_str_eq(c.advertised_address, "env.example"); /* env beats file */
    ck_assert_int_eq(c.broker_service_port, 7200);         /* --set beats env */
    ck_assert_int_eq(c.web_service_port, 9000);            /* file beats default */
    cfg_fini(&c);

    char *bad_env[] = {"MAGNETAR_webServicePort=http", NULL};
    ck_assert_int_eq(cfg_load(&c, NULL, path, bad_env, 0, NULL, errbuf, sizeof errbuf), -MG_EINVAL);
    ASSERT_ERR_HAS("environment variable MAGNETAR_webServicePort");
    ASSERT_ERR_HAS("'http'");
}
END_TEST

START_TEST(test_env_unknown)
{
    char *envp[] = {"MAGNETAR_brokerServicePortt=1", NULL};
    struct cfg c;
    cfg_init(&c);
    ck_assert_int_eq(cfg_apply_env(&c, envp, errbuf, sizeof errbuf), -MG_EINVAL);
    ASSERT_ERR_HAS("MAGNETAR_brokerServicePortt");
    ck_assert_int_eq(c.broker_service_port, 6650);
    /* other variables, and NULL, are fine */
    char *other[] = {"MAGNETA_x=1", "magnetar_x=2", "X=MAGNETAR_y=1", NULL};
    ck_assert_int_eq(cfg_apply_env(&c, other, errbuf, sizeof errbuf), 0);
    ck_assert_int_eq(cfg_apply_env(&c, NULL, errbuf, sizeof errbuf), 0);
    cfg_fini(&c);
}
END_TEST

START_TEST(test_set_without_equals)
{
    char *sets[] = {"logLevel=warn", "brokerServicePort"};
    struct cfg c;
    ck_assert_int_eq(cfg_load(&c, NULL, NULL, NULL, 2, sets, errbuf, sizeof errbuf), -MG_EINVAL);
    ASSERT_ERR_HAS("'brokerServicePort'");
    ASSERT_ERR_HAS("key=value");
    ck_assert_ptr_null(c.log_level); /* finished on failure */

    /* the value may itself contain '=' */
    char *eq[] = {"metadataStoreUrl=zk:a:2181/x?y=z"};
    ck_assert_int_eq(cfg_load(&c, NULL, NULL, NULL, 1, eq, errbuf, sizeof errbuf), 0);
    ck_assert_str_eq(c.metadata_store_url, "zk:a:2181/x?y=z");
    cfg_fini(&c);
}
END_TEST

START_TEST(test_yaml_syntax_error)
{
    expect_yaml_error("x.yaml", "clusterName: a\n  bindAddress: [1, 2\n");
    ASSERT_ERR_HAS("YAML syntax error");

    expect_yaml_error("y.yaml", "- just\n- a list\n");
    ASSERT_ERR_HAS("mapping");

    expect_yaml_error("z.yaml", "bindAddress: [a, b]\n");
    ASSERT_ERR_HAS("'bindAddress'");

    expect_yaml_error("d.yaml", "clusterName: a\nclusterName: b\n");
    ASSERT_ERR_HAS("clusterName");

    expect_file_error("/nonexistent/magnetar.yaml");
    ASSERT_ERR_HAS("cannot open");
}
END_TEST

START_TEST(test_empty_and_null_values)
{
    struct cfg c;
    const char *path = write_yaml("empty.yaml", "# nothing but a comment\n");
    ck_assert_int_eq(cfg_load(&c, NULL, path, NULL, 0, NULL, errbuf, sizeof errbuf), 0);
    ck_assert_int_eq(c.broker_service_port, 6650);
    cfg_fini(&c);

    path = write_yaml("zero.yaml", "");
    ck_assert_int_eq(cfg_load(&c, NULL, path, NULL, 0, NULL, errbuf, sizeof errbuf), 0);
    cfg_fini(&c);

    path = write_yaml("null.yaml", "advertisedAddress:\nclusterName: ~\nwebServicePort: 81\n");
    ck_assert_int_eq(cfg_load(&c, NULL, path, NULL, 0, NULL, errbuf, sizeof errbuf), 0);
    ck_assert_str_eq(c.cluster_name, "standalone");
    ck_assert_int_eq(c.web_service_port, 81);
    cfg_fini(&c);
}
END_TEST

/* cfg_dump's output loads back to the same configuration. */
START_TEST(test_dump_roundtrip)
{
    char *sets[] = {"clusterName=we \"quote\" \\ and: colon", "brokerServicePort=0",
                    "allowAutoTopicCreation=false", "logLevel=error"};
    struct cfg c, d;
    ck_assert_int_eq(cfg_load(&c, NULL, NULL, NULL, 4, sets, errbuf, sizeof errbuf), 0);
    char path[512];
    snprintf(path, sizeof path, "%s/dump.yaml", tmpdir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(cfg_dump(&c, f), 0);
    fclose(f);
    ck_assert_int_eq(cfg_load(&d, NULL, path, NULL, 0, NULL, errbuf, sizeof errbuf), 0);
    ck_assert_str_eq(d.cluster_name, c.cluster_name);
    ck_assert_int_eq(d.broker_service_port, 0);
    ck_assert(!d.allow_auto_topic_creation);
    ck_assert_str_eq(d.log_level, "error");
    ck_assert_str_eq(d.advertised_address, c.advertised_address);

    /* dumping the reloaded config (which has c.file set) also works */
    char *buf = tl_cfg_dump(&d);
    ck_assert_ptr_nonnull(strstr(buf, "brokerServicePort: 0\n"));
    ck_assert_ptr_nonnull(strstr(buf, "# loaded from"));
    mg_free(buf);
    cfg_fini(&d);
    cfg_fini(&c);
}
END_TEST

/* backlogQuotaDefaultLimitBytes is a long in Pulsar: byte counts past 2^31 (and up to 2^63-1)
 * are kept whole, through --set and a dump reloaded; -1 (none) stays the default. */
START_TEST(test_int64_key)
{
    struct cfg c, d;
    cfg_init(&c);
    ck_assert_int_eq(c.backlog_quota_limit_bytes, -1);
    const char *big[] = {"2147483648", "107374182400", "9223372036854775807"};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
        ck_assert_int_eq(
            cfg_set(&c, "backlogQuotaDefaultLimitBytes", big[i], "--set", errbuf, sizeof errbuf),
            0);
        ck_assert_int_eq(c.backlog_quota_limit_bytes, strtoll(big[i], NULL, 10));
    }
    ck_assert_int_eq(cfg_set(&c, "backlogQuotaDefaultLimitBytes", "9223372036854775808", "--set",
                             errbuf, sizeof errbuf),
                     -MG_EINVAL);
    ck_assert_int_eq(
        cfg_set(&c, "backlogQuotaDefaultLimitBytes", "-2", "--set", errbuf, sizeof errbuf),
        -MG_EINVAL);
    ck_assert_int_eq(
        cfg_set(&c, "backlogQuotaDefaultLimitBytes", "5368709120", "--set", errbuf, sizeof errbuf),
        0);
    char *buf = tl_cfg_dump(&c);
    ck_assert_ptr_nonnull(strstr(buf, "backlogQuotaDefaultLimitBytes: 5368709120\n"));
    const char *path = write_yaml("big.yaml", buf);
    mg_free(buf);
    ck_assert_int_eq(cfg_load(&d, NULL, path, NULL, 0, NULL, errbuf, sizeof errbuf), 0);
    ck_assert_int_eq(d.backlog_quota_limit_bytes, 5368709120LL);
    cfg_fini(&d);
    cfg_fini(&c);
}
END_TEST

START_TEST(test_fini)
{
    struct cfg c;
    memset(&c, 0, sizeof c);
    cfg_fini(&c); /* zeroed struct */
    cfg_fini(NULL);
    cfg_init(&c);
    ck_assert_int_eq(
        cfg_set(&c, "dataDirectory", "/var/lib/magnetar", "--set", errbuf, sizeof errbuf), 0);
    ck_assert_int_eq(cfg_set(&c, "dataDirectory", c.data_directory, "--set", errbuf, sizeof errbuf),
                     0); /* value aliasing the field */
    ck_assert_str_eq(c.data_directory, "/var/lib/magnetar");
    const char *path = write_yaml("x.yaml", "dataDirectory: d\n");
    ck_assert_int_eq(cfg_load_file(&c, path, errbuf, sizeof errbuf), 0);
    ck_assert_int_eq(cfg_load_file(&c, path, errbuf, sizeof errbuf), 0);
    cfg_fini(&c);
    ck_assert_ptr_null(c.data_directory);
    ck_assert_ptr_null(c.file);
    cfg_fini(&c); /* twice */
}
END_TEST

int main(void)
{
    return tl_main(
        "cfg", TL_CASES({"core", 0, setup, teardown,
                         TL_TESTS(test_defaults, test_standalone_yaml, test_broker_yaml,
                                  test_readme_lists_every_key, test_unknown_key, test_bad_integer,
                                  test_out_of_range, test_port_off, test_bad_enum_and_bool,
                                  test_bad_file_changes_nothing, test_set_overrides_file,
                                  test_env_precedence, test_env_unknown, test_set_without_equals,
                                  test_yaml_syntax_error, test_empty_and_null_values,
                                  test_dump_roundtrip, test_int64_key, test_fini)}));
}
