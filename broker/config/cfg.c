/*
 * cfg.c - the broker configuration: defaults, YAML file, environment, --set.
 *
 * Everything is driven by cfg_keys[], one row per key: its YAML name, type, offset in
 * struct cfg, default (as text) and validation (integer range or enumeration names).
 * Defaults, file values, MAGNETAR_<key> variables and --set all go through the same
 * cfg_parse_value/cfg_store_value pair, so a value is accepted or rejected identically whatever its
 * source, and each error says "<origin>: ... key '<name>'".
 *
 * YAML: libcyaml parses the file against a schema built from the table at load time, with
 * every key an optional string; the strings are then converted through the table. That keeps
 * our error messages precise (libcyaml's own would say "Invalid value" without the key) while
 * libcyaml still rejects unknown and duplicate keys, non-scalar values and syntax errors.
 * libcyaml reports those details only through its log callback, so cfg_cyaml_log_cb() both
 * forwards each line to MG_DEBUG and keeps the first error, the offending key and the line
 * number for our message.
 *
 * Failure modes: unreadable or too large file, YAML syntax error, a document that is not a
 * mapping, unknown/duplicate key, bad value, unknown MAGNETAR_ variable, a --set without
 * '='. All return -MG_EINVAL with err filled; a file is validated completely before any of
 * its values is stored.
 */
#include "config/cfg.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/fs.h"
#include "util/log.h"

#include <cyaml/cyaml.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CFG_MODULE "config"
#define CFG_ENV_PREFIX "MAGNETAR_"
#define CFG_MAX_FILE_SIZE (1024 * 1024) /* a config is a few KiB; refuse anything absurd */

enum cfg_type {
    CFG_T_STRING = 0, /* char *, non-empty */
    CFG_T_INT,        /* int in [min, max] */
    CFG_T_BOOL,       /* bool: true|false */
    CFG_T_ENUM,       /* char *, one of choices */
    CFG_T_FRACTION,   /* double in (0, 1), as BookKeeper's float keys */
    CFG_T_OPTSTR,     /* char *, may be empty (= not set) */
    CFG_T_INT64,      /* int64_t in [min, max] (byte counts past 2^31, as Pulsar's longs) */
};

struct cfg_key {
    const char *name; /* YAML / env / --set key */
    enum cfg_type type;
    size_t offset;              /* of the field in struct cfg */
    const char *def;            /* default as text; NULL: computed (advertisedAddress) */
    int64_t min, max;           /* CFG_T_INT / CFG_T_INT64 range */
    const char *const *choices; /* CFG_T_ENUM names, NULL-terminated */
};

static const char *const cfg_log_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const cfg_topic_types[] = {"non-partitioned", "partitioned", NULL};
static const char *const cfg_keystore_types[] = {"JKS", "PKCS12", "PEM", NULL};
static const char *const cfg_ml_stores[] = {"bookkeeper", "memory", NULL};
static const char *const cfg_inactive_modes[] = {"delete_when_no_subscriptions",
                                                 "delete_when_subscriptions_caught_up", NULL};
static const char *const cfg_schema_strategies[] = {
    "ALWAYS_INCOMPATIBLE", "ALWAYS_COMPATIBLE",  "BACKWARD",        "FORWARD", "FULL",
    "BACKWARD_TRANSITIVE", "FORWARD_TRANSITIVE", "FULL_TRANSITIVE", NULL};
static const char *const cfg_quota_policies[] = {"producer_request_hold", "producer_exception",
                                                 "consumer_backlog_eviction", NULL};

#define CFG_OFF(field) offsetof(struct cfg, field)
#define CFG_STR(key, field, def)                                                                   \
    {                                                                                              \
        key, CFG_T_STRING, CFG_OFF(field), def, 0, 0, NULL                                         \
    }
#define CFG_INT(key, field, def, min, max)                                                         \
    {                                                                                              \
        key, CFG_T_INT, CFG_OFF(field), def, min, max, NULL                                        \
    }
#define CFG_INT64(key, field, def, min, max)                                                       \
    {                                                                                              \
        key, CFG_T_INT64, CFG_OFF(field), def, min, max, NULL                                      \
    }
#define CFG_BOOL(key, field, def)                                                                  \
    {                                                                                              \
        key, CFG_T_BOOL, CFG_OFF(field), def, 0, 0, NULL                                           \
    }
#define CFG_ENUM(key, field, def, choices)                                                         \
    {                                                                                              \
        key, CFG_T_ENUM, CFG_OFF(field), def, 0, 0, choices                                        \
    }
#define CFG_OPTSTR(key, field, def)                                                                \
    {                                                                                              \
        key, CFG_T_OPTSTR, CFG_OFF(field), def, 0, 0, NULL                                         \
    }
/* A port that can be turned off: empty = -1 (the choices list only marks it) */
static const char *const cfg_port_off[] = {"", NULL};
#define CFG_PORT(key, field, def)                                                                  \
    {                                                                                              \
        key, CFG_T_INT, CFG_OFF(field), def, -1, 65535, cfg_port_off                               \
    }
#define CFG_FRACTION(key, field, def)                                                              \
    {                                                                                              \
        key, CFG_T_FRACTION, CFG_OFF(field), def, 0, 0, NULL                                       \
    }

/* The order here is the order of cfg_dump and cfg_key_next. */
static const struct cfg_key cfg_keys[] = {
    CFG_STR("clusterName", cluster_name, "standalone"),
    CFG_STR("bindAddress", bind_address, "0.0.0.0"),
    CFG_STR("advertisedAddress", advertised_address, NULL),
    CFG_PORT("brokerServicePort", broker_service_port, "6650"),
    CFG_PORT("webServicePort", web_service_port, "8080"),
    CFG_PORT("brokerServicePortTls", broker_service_port_tls, ""),
    CFG_PORT("webServicePortTls", web_service_port_tls, ""),
    CFG_OPTSTR("tlsCertificateFilePath", tls_certificate_file_path, ""),
    CFG_OPTSTR("tlsKeyFilePath", tls_key_file_path, ""),
    CFG_OPTSTR("tlsTrustCertsFilePath", tls_trust_certs_file_path, ""),
    CFG_BOOL("tlsAllowInsecureConnection", tls_allow_insecure_connection, "false"),
    CFG_BOOL("tlsRequireTrustedClientCertOnConnect", tls_require_trusted_client_cert, "false"),
    CFG_OPTSTR("tlsProtocols", tls_protocols, ""),
    CFG_OPTSTR("tlsCiphers", tls_ciphers, ""),
    CFG_INT("tlsCertRefreshCheckDurationSec", tls_cert_refresh_check_s, "300", 0, INT_MAX),
    CFG_INT("httpMaxRequestHeaderSize", http_max_request_header_size, "8192", 1024, 1048576),
    CFG_INT("httpRequestReadTimeoutSeconds", http_request_read_timeout_seconds, "10", 1, 3600),
    CFG_INT("httpIdleTimeoutSeconds", http_idle_timeout_seconds, "30", 1, 86400),
    CFG_INT("maxMessageSize", max_message_size, "5242880", 1, INT_MAX),
    CFG_INT("keepAliveIntervalSeconds", keep_alive_interval_seconds, "30", 1, INT_MAX),
    CFG_INT("maxPendingPublishRequestsPerConnection", max_pending_publish_per_conn, "1000", 1,
            INT_MAX),
    CFG_INT("maxUnackedMessagesPerConsumer", max_unacked_per_consumer, "50000", 0, INT_MAX),
    CFG_INT("maxUnackedMessagesPerSubscription", max_unacked_per_subscription, "200000", 0,
            INT_MAX),
    CFG_INT("maxProducersPerTopic", max_producers_per_topic, "0", 0, INT_MAX),
    CFG_INT("maxConsumersPerTopic", max_consumers_per_topic, "0", 0, INT_MAX),
    CFG_INT("maxConsumersPerSubscription", max_consumers_per_subscription, "0", 0, INT_MAX),
    CFG_INT("maxSubscriptionsPerTopic", max_subscriptions_per_topic, "0", 0, INT_MAX),
    CFG_INT("maxTopicsPerNamespace", max_topics_per_namespace, "0", 0, INT_MAX),
    CFG_BOOL("brokerDeleteInactiveTopicsEnabled", delete_inactive_topics, "true"),
    CFG_BOOL("brokerDeleteInactivePartitionedTopicMetadataEnabled", delete_inactive_pt_metadata,
             "false"),
    CFG_INT("brokerDeleteInactiveTopicsFrequencySeconds", delete_inactive_frequency_secs, "60", 1,
            INT_MAX),
    CFG_ENUM("brokerDeleteInactiveTopicsMode", delete_inactive_mode, "delete_when_no_subscriptions",
             cfg_inactive_modes),
    CFG_INT("brokerDeleteInactiveTopicsMaxInactiveDurationSeconds", delete_inactive_max_secs, "0",
            0, INT_MAX),
    CFG_INT("maxPublishRatePerTopicInMessages", publish_rate_msgs, "0", 0, INT_MAX),
    CFG_INT64("maxPublishRatePerTopicInBytes", publish_rate_bytes, "0", 0, INT64_MAX),
    CFG_INT("topicPublisherThrottlingTickTimeMillis", publisher_throttling_tick_ms, "10", 1, 60000),
    CFG_INT("dispatchThrottlingRatePerTopicInMsg", dispatch_rate_topic_msgs, "0", 0, INT_MAX),
    CFG_INT64("dispatchThrottlingRatePerTopicInByte", dispatch_rate_topic_bytes, "0", 0, INT64_MAX),
    CFG_INT("dispatchThrottlingRatePerSubscriptionInMsg", dispatch_rate_sub_msgs, "0", 0, INT_MAX),
    CFG_INT64("dispatchThrottlingRatePerSubscriptionInByte", dispatch_rate_sub_bytes, "0", 0,
              INT64_MAX),
    CFG_INT("dispatcherMaxRoundRobinBatchSize", dispatcher_max_round_robin_batch_size, "20", 1,
            INT_MAX),
    CFG_INT("dispatcherMaxReadBatchSize", dispatcher_max_read_batch_size, "100", 1, INT_MAX),
    CFG_INT("activeConsumerFailoverDelayTimeMillis", active_consumer_failover_delay_ms, "1000", 0,
            INT_MAX),
    CFG_BOOL("delayedDeliveryEnabled", delayed_delivery_enabled, "true"),
    CFG_BOOL("enableNonPersistentTopics", enable_non_persistent_topics, "true"),
    CFG_INT("delayedDeliveryTickTimeMillis", delayed_delivery_tick_ms, "1000", 1, 3600000),
    CFG_INT("connectionMaxOutboundBytes", connection_max_outbound_bytes, "4194304", 1, INT_MAX),
    CFG_INT("numIOThreads", num_io_threads, "0", 0, 64),
    CFG_INT("brokerMaxConnections", broker_max_connections, "0", 0, INT_MAX),
    CFG_INT("brokerMaxConnectionsPerIp", broker_max_connections_per_ip, "0", 0, INT_MAX),
    CFG_INT("maxHttpServerConnections", max_http_server_connections, "2048", 0, INT_MAX),
    CFG_INT("maxNumPartitionsPerPartitionedTopic", max_num_partitions_per_partitioned_topic,
            "10000", 0, INT_MAX),
    CFG_INT("managedLedgerCacheSizeMB", managed_ledger_cache_size_mb, "16", 0, INT_MAX),
    CFG_INT("managedLedgerCacheEvictionTimeThresholdMillis", ml_cache_eviction_time_ms, "1000", 0,
            INT_MAX),
    CFG_INT("managedLedgerCacheEvictionIntervalMs", ml_cache_eviction_interval_ms, "10", 1,
            INT_MAX),
    CFG_INT("managedLedgerMaxEntriesPerLedger", managed_ledger_max_entries_per_ledger, "50000", 1,
            INT_MAX),
    CFG_INT("managedLedgerMaxSizePerLedgerMbytes", managed_ledger_max_size_per_ledger_mb, "2048", 1,
            INT_MAX),
    CFG_INT("defaultNumberOfNamespaceBundles", default_number_of_namespace_bundles, "4", 1,
            INT_MAX),
    CFG_INT("zooKeeperSessionTimeoutMillis", zookeeper_session_timeout_ms, "30000", 1000, INT_MAX),
    CFG_INT("loadBalancerReportUpdateMinIntervalMillis", load_balancer_report_interval_ms, "5000",
            100, INT_MAX),
    CFG_INT("brokerShutdownTimeoutMs", broker_shutdown_timeout_ms, "60000", 100, INT_MAX),
    CFG_BOOL("allowAutoTopicCreation", allow_auto_topic_creation, "true"),
    CFG_ENUM("allowAutoTopicCreationType", allow_auto_topic_creation_type, "non-partitioned",
             cfg_topic_types),
    CFG_INT("defaultNumPartitions", default_num_partitions, "1", 1, INT_MAX),
    CFG_BOOL("allowAutoSubscriptionCreation", allow_auto_subscription_creation, "true"),
    CFG_BOOL("enableBrokerSideSubscriptionPatternEvaluation", pattern_evaluation, "true"),
    CFG_INT("subscriptionPatternMaxLength", subscription_pattern_max_length, "50", 1, 65536),
    CFG_STR("dataDirectory", data_directory, "data"),
    CFG_STR("metadataStoreUrl", metadata_store_url, "embedded"),
    CFG_ENUM("managedLedgerStore", managed_ledger_store, "bookkeeper", cfg_ml_stores),
    CFG_BOOL("allowVolatileTopics", allow_volatile_topics, "false"),
    CFG_INT("managedLedgerDefaultEnsembleSize", managed_ledger_ensemble_size, "2", 1, 64),
    CFG_INT("managedLedgerDefaultWriteQuorum", managed_ledger_write_quorum, "2", 1, 64),
    CFG_INT("managedLedgerDefaultAckQuorum", managed_ledger_ack_quorum, "2", 1, 64),
    CFG_BOOL("autoSkipNonRecoverableData", auto_skip_non_recoverable_data, "false"),
    CFG_BOOL("bookkeeperUseV2WireProtocol", bookkeeper_use_v2_wire_protocol, "true"),
    CFG_INT("bookkeeperClientTimeoutInSeconds", bookkeeper_client_timeout_seconds, "30", 1, 3600),
    CFG_BOOL("bookkeeperTLSClientAuthentication", bookkeeper_tls_client_authentication, "false"),
    CFG_OPTSTR("bookkeeperTLSKeyFilePath", bookkeeper_tls_key_file_path, ""),
    CFG_OPTSTR("bookkeeperTLSCertificateFilePath", bookkeeper_tls_certificate_file_path, ""),
    CFG_OPTSTR("bookkeeperTLSTrustCertsFilePath", bookkeeper_tls_trust_certs_file_path, ""),
    CFG_ENUM("bookkeeperTLSKeyFileType", bookkeeper_tls_key_file_type, "PEM", cfg_keystore_types),
    CFG_ENUM("bookkeeperTLSTrustCertTypes", bookkeeper_tls_trust_cert_types, "PEM",
             cfg_keystore_types),
    CFG_OPTSTR("bookkeeperTLSProviderFactoryClass", bookkeeper_tls_provider_factory_class,
               "org.apache.bookkeeper.tls.TLSContextFactory"),
    CFG_INT("bookkeeperTlsCertFilesRefreshDurationSeconds", bookkeeper_tls_cert_refresh_s, "300", 0,
            INT_MAX),
    CFG_INT("defaultRetentionTimeInMinutes", default_retention_time_minutes, "0", -1, INT_MAX),
    CFG_INT("defaultRetentionSizeInMB", default_retention_size_mb, "0", -1, INT_MAX),
    CFG_INT("retentionCheckIntervalInSeconds", retention_check_interval_secs, "120", 0, 86400),
    CFG_INT("managedLedgerMinLedgerRolloverTimeMinutes", ml_min_rollover_minutes, "10", 0, 525600),
    CFG_INT("managedLedgerMaxLedgerRolloverTimeMinutes", ml_max_rollover_minutes, "240", 0, 525600),
    CFG_INT("ttlDurationDefaultInSeconds", ttl_duration_default_secs, "0", 0, INT_MAX),
    CFG_INT("messageExpiryCheckIntervalInMinutes", expiry_check_minutes, "5", 0, 1440),
    CFG_INT64("backlogQuotaDefaultLimitBytes", backlog_quota_limit_bytes, "-1", -1, INT64_MAX),
    CFG_INT("backlogQuotaDefaultLimitSecond", backlog_quota_limit_secs, "-1", -1, INT_MAX),
    CFG_ENUM("backlogQuotaDefaultRetentionPolicy", backlog_quota_policy, "producer_request_hold",
             cfg_quota_policies),
    CFG_INT("backlogQuotaCheckIntervalInSeconds", backlog_quota_check_secs, "60", 0, 86400),
    CFG_ENUM("schemaCompatibilityStrategy", schema_compatibility_strategy, "FULL",
             cfg_schema_strategies),
    CFG_BOOL("isAllowAutoUpdateSchemaEnabled", allow_auto_update_schema, "true"),
    CFG_BOOL("brokerDeduplicationEnabled", broker_dedup_enabled, "false"),
    CFG_INT("brokerDeduplicationMaxNumberOfProducers", broker_dedup_max_producers, "10000", 1,
            INT_MAX),
    CFG_INT("brokerDeduplicationEntriesInterval", broker_dedup_entries_interval, "1000", 1,
            INT_MAX),
    CFG_INT("brokerDeduplicationProducerInactivityTimeoutMinutes", broker_dedup_inactivity_minutes,
            "360", 0, 5256000),
    CFG_INT64("brokerServiceCompactionThresholdInBytes", compaction_threshold_bytes, "0", 0,
              INT64_MAX),
    CFG_INT("brokerServiceCompactionMonitorIntervalInSeconds", compaction_monitor_secs, "60", 1,
            86400),
    CFG_INT("standaloneBookies", standalone_bookies, "1", 0, 16),
    CFG_INT("statsUpdateFrequencyInSecs", stats_update_frequency_secs, "60", 1, 3600),
    CFG_BOOL("exposeTopicLevelMetricsInPrometheus", expose_topic_level_metrics, "true"),
    /* bookie (magnetar bookie): names from BookKeeper's bk_server.conf */
    CFG_INT("bookiePort", bookie_port, "3181", 0, 65535),
    CFG_STR("bookieId", bookie_id, "auto"),
    CFG_STR("journalDirectory", journal_directory, "data/bookie/journal"),
    CFG_OPTSTR("journalDirectories", journal_directories, ""),
    CFG_STR("ledgerDirectories", ledger_directories, "data/bookie/ledgers"),
    CFG_INT("journalMaxGroupWaitMSec", journal_max_group_wait_ms, "1", 0, INT_MAX),
    CFG_INT("journalBufferedWritesThreshold", journal_buffered_writes_threshold, "524288", 1,
            INT_MAX),
    CFG_INT("journalBufferedEntriesThreshold", journal_buffered_entries_threshold, "0", 0, INT_MAX),
    CFG_INT("journalMaxSizeMB", journal_max_size_mb, "256", 1, 1048576),
    CFG_INT("journalMaxBackups", journal_max_backups, "5", 0, 1000),
    CFG_INT("journalPreAllocSizeMB", journal_prealloc_size_mb, "16", 1, 1024),
    CFG_BOOL("journalReuseFiles", journal_reuse_files, "true"),
    CFG_BOOL("journalSyncData", journal_sync_data, "true"),
    CFG_INT("flushInterval", flush_interval_ms, "10000", 1, INT_MAX),
    CFG_INT("dbStorage_writeCacheMaxSizeMb", db_storage_write_cache_max_size_mb, "16", 1, 65536),
    CFG_FRACTION("diskUsageThreshold", disk_usage_threshold, "0.95"),
    CFG_FRACTION("diskUsageLwmThreshold", disk_usage_lwm_threshold, "0.95"),
    CFG_FRACTION("diskUsageWarnThreshold", disk_usage_warn_threshold, "0.90"),
    CFG_INT("diskCheckInterval", disk_check_interval_ms, "10000", 1, INT_MAX),
    CFG_INT("nettyMaxFrameSizeBytes", netty_max_frame_size_bytes, "5253120", 1024, INT_MAX),
    CFG_INT("logSizeLimit", log_size_limit, "1073741824", 65536, 1073741824),
    CFG_INT("flushEntrylogBytes", flush_entrylog_bytes, "1048576", 0, INT_MAX),
    CFG_INT("gcWaitTime", gc_wait_time_ms, "600000", 1, INT_MAX),
    CFG_FRACTION("minorCompactionThreshold", minor_compaction_threshold, "0.2"),
    CFG_INT("minorCompactionInterval", minor_compaction_interval_s, "3600", 0, INT_MAX),
    CFG_FRACTION("majorCompactionThreshold", major_compaction_threshold, "0.8"),
    CFG_INT("majorCompactionInterval", major_compaction_interval_s, "86400", 0, INT_MAX),
    CFG_INT("compactionRateByEntries", compaction_rate_by_entries, "1000", 1, INT_MAX),
    CFG_INT("compactionRateByBytes", compaction_rate_by_bytes, "1000000", 1, INT_MAX),
    CFG_BOOL("isThrottleByBytes", is_throttle_by_bytes, "false"),
    CFG_BOOL("autoRecoveryDaemonEnabled", auto_recovery_daemon_enabled, "true"),
    CFG_INT("lostBookieRecoveryDelay", lost_bookie_recovery_delay_s, "0", 0, INT_MAX / 1000),
    CFG_INT("auditorPeriodicCheckInterval", auditor_periodic_check_interval_s, "604800", 0,
            INT_MAX / 1000),
    CFG_INT("auditorPeriodicBookieCheckInterval", auditor_periodic_bookie_check_interval_s, "86400",
            0, INT_MAX / 1000),
    CFG_INT("rereplicationEntryBatchSize", rereplication_entry_batch_size, "100", 1, 10000),
    CFG_INT("openLedgerRereplicationGracePeriod", open_ledger_rereplication_grace_period_ms,
            "30000", 0, INT_MAX),
    CFG_INT("prometheusStatsHttpPort", prometheus_stats_http_port, "0", 0, 65535),
    CFG_INT("lockReleaseOfFailedLedgerGracePeriod", lock_release_of_failed_ledger_grace_period_ms,
            "300000", 0, INT_MAX),
    CFG_BOOL("isForceGCAllowWhenNoSpace", is_force_gc_allow_when_no_space, "false"),
    CFG_OPTSTR("tlsProviderFactoryClass", tls_provider_factory_class, ""),
    CFG_OPTSTR("tlsProvider", tls_provider, ""),
    CFG_OPTSTR("tlsCertificatePath", tls_certificate_path, ""),
    CFG_OPTSTR("tlsKeyStore", tls_key_store, ""),
    CFG_ENUM("tlsKeyStoreType", tls_key_store_type, "JKS", cfg_keystore_types),
    CFG_OPTSTR("tlsTrustStore", tls_trust_store, ""),
    CFG_ENUM("tlsTrustStoreType", tls_trust_store_type, "JKS", cfg_keystore_types),
    CFG_BOOL("tlsClientAuthentication", tls_client_authentication, "false"),
    CFG_OPTSTR("bookieAuthProviderFactoryClass", bookie_auth_provider_factory_class, ""),
    CFG_INT("tlsCertFilesRefreshDurationSeconds", tls_cert_files_refresh_s, "0", 0, INT_MAX),
    CFG_OPTSTR("authorizedRoles", authorized_roles, ""),
    CFG_ENUM("logLevel", log_level, "info", cfg_log_levels),
    /* authentication (broker/auth: the values are checked when the broker starts) */
    CFG_BOOL("authenticationEnabled", authentication_enabled, "false"),
    CFG_OPTSTR("authenticationProviders", authentication_providers, ""),
    CFG_INT("authenticationRefreshCheckSeconds", authentication_refresh_check_seconds, "60", 1,
            INT_MAX),
    CFG_BOOL("authenticateMetricsEndpoint", authenticate_metrics_endpoint, "false"),
    CFG_OPTSTR("superUserRoles", super_user_roles, ""),
    CFG_BOOL("authorizationEnabled", authorization_enabled, "false"),
    CFG_OPTSTR("tokenSecretKey", token_secret_key, ""),
    CFG_OPTSTR("tokenPublicKey", token_public_key, ""),
    CFG_STR("tokenPublicAlg", token_public_alg, "RS256"),
    CFG_STR("tokenAuthClaim", token_auth_claim, "sub"),
    CFG_OPTSTR("tokenAudienceClaim", token_audience_claim, ""),
    CFG_OPTSTR("tokenAudience", token_audience, ""),
    CFG_OPTSTR("brokerClientAuthenticationPlugin", broker_client_auth_plugin, ""),
    CFG_OPTSTR("brokerClientAuthenticationParameters", broker_client_auth_params, ""),
    CFG_BOOL("brokerClientTlsEnabled", broker_client_tls_enabled, "false"),
    CFG_OPTSTR("brokerClientTrustCertsFilePath", broker_client_trust_ca_path, ""),
    CFG_OPTSTR("brokerClientCertificateFilePath", broker_client_cert_path, ""),
    CFG_OPTSTR("brokerClientKeyFilePath", broker_client_key_path, ""),
};

#define CFG_NKEYS (sizeof cfg_keys / sizeof cfg_keys[0])

/* A parsed, validated value not yet stored. */
union cfg_value {
    int i;
    int64_t l;
    double d;
    bool b;
    const char *s; /* borrowed from the text being parsed */
};

static const struct cfg_key *cfg_find_key(const char *name)
{
    for (size_t i = 0; i < CFG_NKEYS; i++)
        if (strcmp(cfg_keys[i].name, name) == 0)
            return &cfg_keys[i];
    return NULL;
}

static int cfg_bad_value(const struct cfg_key *k, const char *value, const char *origin,
                         const char *expected, char *err, size_t errlen)
{
    mg_set_err(err, errlen, "%s: bad value '%s' for key '%s': expected %s", origin, value, k->name,
               expected);
    return -MG_EINVAL;
}

/* Validate value for k and convert it into *out; no side effect on failure. */
static int cfg_parse_value(const struct cfg_key *k, const char *value, const char *origin,
                           union cfg_value *out, char *err, size_t errlen)
{
    switch (k->type) {
    case CFG_T_STRING:
        if (value[0] == '\0')
            return cfg_bad_value(k, value, origin, "a non-empty string", err, errlen);
        out->s = value;
        return 0;
    case CFG_T_OPTSTR:
        out->s = value;
        return 0;
    case CFG_T_BOOL:
        if (strcmp(value, "true") == 0)
            out->b = true;
        else if (strcmp(value, "false") == 0)
            out->b = false;
        else
            return cfg_bad_value(k, value, origin, "true or false", err, errlen);
        return 0;
    case CFG_T_ENUM: {
        char expected[256];
        size_t n = 0;
        for (const char *const *ch = k->choices; *ch != NULL; ch++) {
            if (strcmp(*ch, value) == 0) {
                out->s = *ch;
                return 0;
            }
            int m = snprintf(expected + n, sizeof expected - n, "%s%s", n ? "|" : "one of ", *ch);
            if (m > 0 && (size_t)m < sizeof expected - n)
                n += (size_t)m;
        }
        return cfg_bad_value(k, value, origin, expected, err, errlen);
    }
    case CFG_T_FRACTION: {
        /* plain decimals only: strtod would also take blanks, exponents, hex, inf, nan */
        size_t digits = 0, dots = 0, i = 0;
        for (; value[i] != '\0'; i++) {
            if (value[i] == '.')
                dots++;
            else if (value[i] >= '0' && value[i] <= '9')
                digits++;
            else
                break;
        }
        double v = strtod(value, NULL);
        if (value[i] != '\0' || dots > 1 || digits == 0 || !(v > 0.0 && v < 1.0))
            return cfg_bad_value(k, value, origin,
                                 "a number between 0 and 1 (exclusive), e.g. 0.95", err, errlen);
        out->d = v;
        return 0;
    }
    case CFG_T_INT:
    case CFG_T_INT64: {
        if (value[0] == '\0' &&
            k->choices == cfg_port_off) { /* a port left empty: off, as in Pulsar */
            out->i = -1;
            return 0;
        }
        /* strtoll alone would accept leading blanks, "" and trailing junk */
        if (value[0] != '-' && value[0] != '+' && (value[0] < '0' || value[0] > '9'))
            return cfg_bad_value(k, value, origin, "an integer", err, errlen);
        char *end;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (end == value || *end != '\0')
            return cfg_bad_value(k, value, origin, "an integer", err, errlen);
        /* a port is turned off by leaving it empty, as in Pulsar; -1 is only how it is kept */
        if (errno == ERANGE || v < k->min || v > k->max ||
            (k->choices == cfg_port_off && v == -1)) {
            char range[96];
            if (k->choices == cfg_port_off)
                snprintf(range, sizeof range, "a port in 0..%" PRId64 ", or empty for off", k->max);
            else if (k->max == INT_MAX || k->max == INT64_MAX)
                snprintf(range, sizeof range, "an integer >= %" PRId64, k->min);
            else
                snprintf(range, sizeof range, "an integer in %" PRId64 "..%" PRId64, k->min,
                         k->max);
            return cfg_bad_value(k, value, origin, range, err, errlen);
        }
        if (k->type == CFG_T_INT64)
            out->l = (int64_t)v;
        else
            out->i = (int)v;
        return 0;
    }
    }
    MG_ASSERT(!"unknown key type");
    return -MG_EINVAL;
}

static void cfg_store_value(struct cfg *c, const struct cfg_key *k, const union cfg_value *v)
{
    char *field = (char *)c + k->offset;
    switch (k->type) {
    case CFG_T_STRING:
    case CFG_T_OPTSTR:
    case CFG_T_ENUM: {
        char **sp = (char **)(void *)field;
        char *copy = mg_strdup(v->s); /* before freeing: v->s may alias *sp */
        mg_free(*sp);
        *sp = copy;
        break;
    }
    case CFG_T_INT:
        *(int *)(void *)field = v->i;
        break;
    case CFG_T_INT64:
        *(int64_t *)(void *)field = v->l;
        break;
    case CFG_T_BOOL:
        *(bool *)(void *)field = v->b;
        break;
    case CFG_T_FRACTION:
        *(double *)(void *)field = v->d;
        break;
    }
}

void cfg_init(struct cfg *c)
{
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < CFG_NKEYS; i++) {
        const struct cfg_key *k = &cfg_keys[i];
        char host[256];
        const char *def = k->def;
        if (def == NULL) { /* advertisedAddress */
            if (gethostname(host, sizeof host) != 0 || host[0] == '\0')
                snprintf(host, sizeof host, "localhost");
            host[sizeof host - 1] = '\0';
            def = host;
        }
        union cfg_value v;
        char err[256];
        int rc = cfg_parse_value(k, def, "default", &v, err, sizeof err);
        MG_ASSERT(rc == 0);
        cfg_store_value(c, k, &v);
    }
}

void cfg_fini(struct cfg *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < CFG_NKEYS; i++) {
        if (cfg_keys[i].type == CFG_T_STRING || cfg_keys[i].type == CFG_T_OPTSTR ||
            cfg_keys[i].type == CFG_T_ENUM) {
            char **sp = (char **)(void *)((char *)c + cfg_keys[i].offset);
            mg_free(*sp);
            *sp = NULL;
        }
    }
    mg_free(c->file);
    memset(c, 0, sizeof *c);
}

int cfg_set(struct cfg *c, const char *key, const char *value, const char *origin, char *err,
            size_t errlen)
{
    const struct cfg_key *k = cfg_find_key(key);
    if (k == NULL) {
        mg_set_err(err, errlen, "%s: unknown key '%s'", origin, key);
        return -MG_EINVAL;
    }
    union cfg_value v;
    int rc = cfg_parse_value(k, value, origin, &v, err, errlen);
    if (rc != 0)
        return rc;
    cfg_store_value(c, k, &v);
    return 0;
}

int cfg_apply_env(struct cfg *c, char *const *envp, char *err, size_t errlen)
{
    static const size_t plen = sizeof CFG_ENV_PREFIX - 1;
    for (; envp != NULL && *envp != NULL; envp++) {
        const char *var = *envp;
        if (strncmp(var, CFG_ENV_PREFIX, plen) != 0)
            continue;
        const char *eq = strchr(var, '=');
        if (eq == NULL)
            continue; /* not a real environment entry */
        char *name = mg_strndup(var, (size_t)(eq - var));
        char *origin = mg_asprintf("environment variable %s", name);
        int rc = cfg_set(c, name + plen, eq + 1, origin, err, errlen);
        mg_free(origin);
        mg_free(name);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* ---- YAML through libcyaml ---------------------------------------------------------- */

/* What libcyaml told us about a failed load (it reports details only through logging). */
struct cyaml_report {
    char first[256]; /* first error line, without "Load: " */
    char key[128];   /* key named by "Unexpected key:", "already seen:" or the backtrace */
    size_t line;     /* first line number in the backtrace, 0 if none */
};

static void cfg_copy_trimmed(char *dst, size_t dstlen, const char *src)
{
    snprintf(dst, dstlen, "%s", src);
    size_t n = strlen(dst);
    while (n > 0 && (dst[n - 1] == '\n' || dst[n - 1] == ' '))
        dst[--n] = '\0';
}

static void cfg_cyaml_log_cb(cyaml_log_t level, void *ctx, const char *fmt, va_list args)
    __attribute__((format(printf, 3, 0)));

static void cfg_cyaml_log_cb(cyaml_log_t level, void *ctx, const char *fmt, va_list args)
{
    struct cyaml_report *rep = ctx;
    char line[512];
    vsnprintf(line, sizeof line, fmt, args);
    char *s = line;
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == '\n')
        s[--n] = '\0';
    MG_DEBUG(CFG_MODULE, "libcyaml: %s", s);
    if (level < CYAML_LOG_ERROR || rep == NULL)
        return;
    if (strncmp(s, "Load: ", 6) == 0)
        s += 6;
    static const char *const key_prefixes[] = {"Unexpected key: ", "Mapping field already seen: "};
    for (size_t i = 0; i < 2; i++) {
        size_t pl = strlen(key_prefixes[i]);
        if (strncmp(s, key_prefixes[i], pl) == 0 && rep->key[0] == '\0')
            cfg_copy_trimmed(rep->key, sizeof rep->key, s + pl);
    }
    const char *field = strstr(s, "in mapping field '");
    if (field != NULL && rep->key[0] == '\0') {
        field += strlen("in mapping field '");
        const char *q = strchr(field, '\'');
        if (q != NULL)
            snprintf(rep->key, sizeof rep->key, "%.*s", (int)(q - field), field);
    }
    const char *ln = strstr(s, "(line: ");
    if (ln != NULL && rep->line == 0)
        rep->line = (size_t)strtoul(ln + strlen("(line: "), NULL, 10);
    if (rep->first[0] == '\0' && strncmp(s, "Backtrace", 9) != 0 && s[0] != ' ')
        cfg_copy_trimmed(rep->first, sizeof rep->first, s);
}

static void *cfg_cyaml_mem_cb(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    if (size == 0) {
        mg_free(ptr);
        return NULL;
    }
    return mg_realloc(ptr, size);
}

/* The file's values, as libcyaml loads them: one optional string per key, table order. */
struct cfg_raw {
    char *val[CFG_NKEYS];
};

static void cfg_cyaml_error(const char *path, cyaml_err_t cerr, const struct cyaml_report *rep,
                            char *err, size_t errlen)
{
    /* libcyaml's backtrace gives the line where the enclosing value starts, not where the
     * problem is: report it only together with that key, as "near key 'k' (line n)". */
    char line[32] = "", near[192] = "";
    if (rep->key[0] != '\0' && rep->line > 0) {
        snprintf(line, sizeof line, " (line %zu)", rep->line);
        snprintf(near, sizeof near, " near key '%s'%s", rep->key, line);
    }
    const char *detail = rep->first[0] ? rep->first : cyaml_strerror(cerr);
    if (strncmp(detail, "libyaml: ", 9) == 0)
        detail += 9;
    switch (cerr) {
    case CYAML_ERR_INVALID_KEY:
        mg_set_err(err, errlen, "%s: unknown key '%s'", path, rep->key);
        break;
    case CYAML_ERR_LIBYAML_PARSER:
        mg_set_err(err, errlen, "%s: YAML syntax error%s: %s", path, near, detail);
        break;
    case CYAML_ERR_ALIAS:
    case CYAML_ERR_INVALID_ALIAS:
        mg_set_err(err, errlen, "%s: YAML anchors and aliases are not supported%s", path, near);
        break;
    default:
        if (strncmp(detail, "Mapping field already seen", 26) == 0)
            mg_set_err(err, errlen, "%s: duplicate key '%s'", path, rep->key);
        else if (rep->key[0] != '\0')
            mg_set_err(err, errlen, "%s: bad value for key '%s'%s: expected a scalar (%s)", path,
                       rep->key, line, detail);
        else
            mg_set_err(err, errlen, "%s: expected a mapping of key: value (%s)", path, detail);
        break;
    }
}

/* Read the whole file; NULL with err filled on failure. */
int cfg_load_file(struct cfg *c, const char *path, char *err, size_t errlen)
{
    size_t len = 0;
    char *data = mg_read_file(path, CFG_MAX_FILE_SIZE, &len, err, errlen);
    if (data == NULL)
        return -MG_EINVAL;

    /* The schema is built per call from the table: no mutable globals. */
    cyaml_schema_field_t *fields = mg_calloc(CFG_NKEYS + 1, sizeof *fields);
    for (size_t i = 0; i < CFG_NKEYS; i++) {
        fields[i].key = cfg_keys[i].name;
        fields[i].data_offset = (uint32_t)offsetof(struct cfg_raw, val[i]);
        fields[i].value.type = CYAML_STRING;
        /* an empty value, ~ or null loads as NULL: "leave this key alone" */
        fields[i].value.flags = CYAML_FLAG_OPTIONAL | CYAML_FLAG_POINTER_NULL_STR;
        fields[i].value.data_size = sizeof(char);
        fields[i].value.string.min = 0;
        fields[i].value.string.max = CYAML_UNLIMITED;
    }
    const cyaml_schema_value_t top = {
        CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, struct cfg_raw, fields),
    };
    struct cyaml_report rep = {.first = "", .key = "", .line = 0};
    const cyaml_config_t ccfg = {
        .log_fn = cfg_cyaml_log_cb,
        .log_ctx = &rep,
        .mem_fn = cfg_cyaml_mem_cb,
        .log_level = CYAML_LOG_WARNING,
        .flags = CYAML_CFG_NO_ALIAS,
    };
    struct cfg_raw *raw = NULL;
    cyaml_err_t cerr =
        cyaml_load_data((const uint8_t *)data, len, &ccfg, &top, (cyaml_data_t **)&raw, NULL);
    mg_free(data);
    int rc = 0;
    if (cerr != CYAML_OK) {
        cfg_cyaml_error(path, cerr, &rep, err, errlen);
        rc = -MG_EINVAL;
        raw = NULL;
    }

    /* Validate everything first, then store: a bad file changes nothing. */
    union cfg_value vals[CFG_NKEYS];
    for (size_t i = 0; rc == 0 && raw != NULL && i < CFG_NKEYS; i++)
        if (raw->val[i] != NULL)
            rc = cfg_parse_value(&cfg_keys[i], raw->val[i], path, &vals[i], err, errlen);
    if (rc == 0) {
        for (size_t i = 0; raw != NULL && i < CFG_NKEYS; i++)
            if (raw->val[i] != NULL)
                cfg_store_value(c, &cfg_keys[i], &vals[i]);
        char *copy = mg_strdup(path);
        mg_free(c->file);
        c->file = copy;
        MG_DEBUG(CFG_MODULE, "loaded %s", path);
    }
    if (raw != NULL)
        cyaml_free(&ccfg, &top, raw, 0);
    mg_free(fields);
    return rc;
}

int cfg_load(struct cfg *c, const char *const *defaults, const char *path, char *const *envp,
             int nsets, char *const *sets, char *err, size_t errlen)
{
    cfg_init(c);
    int rc = 0;
    for (const char *const *d = defaults; rc == 0 && d && *d; d++) {
        const char *eq = strchr(*d, '=');
        MG_ASSERT(eq != NULL);
        char *key = mg_strndup(*d, (size_t)(eq - *d));
        rc = cfg_set(c, key, eq + 1, "built-in default", err, errlen);
        mg_free(key);
    }
    if (rc == 0 && path != NULL)
        rc = cfg_load_file(c, path, err, errlen);
    if (rc == 0)
        rc = cfg_apply_env(c, envp, err, errlen);
    for (int i = 0; rc == 0 && i < nsets; i++) {
        const char *eq = strchr(sets[i], '=');
        if (eq == NULL) {
            mg_set_err(err, errlen, "--set: '%s' is not key=value", sets[i]);
            rc = -MG_EINVAL;
            break;
        }
        char *key = mg_strndup(sets[i], (size_t)(eq - sets[i]));
        rc = cfg_set(c, key, eq + 1, "--set", err, errlen);
        mg_free(key);
    }
    if (rc != 0)
        cfg_fini(c);
    return rc;
}

/* A YAML double-quoted scalar: always loadable as the same string. */
static void cfg_dump_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(out, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f)
            fprintf(out, "\\x%02x", ch);
        else
            fputc(ch, out);
    }
    fputc('"', out);
}

int cfg_dump(const struct cfg *c, FILE *out)
{
    if (c->file != NULL) {
        fputs("# loaded from ", out);
        cfg_dump_string(out, c->file);
        fputc('\n', out);
    }
    for (size_t i = 0; i < CFG_NKEYS; i++) {
        const struct cfg_key *k = &cfg_keys[i];
        const char *field = (const char *)c + k->offset;
        fprintf(out, "%s: ", k->name);
        switch (k->type) {
        case CFG_T_STRING:
        case CFG_T_OPTSTR:
        case CFG_T_ENUM: {
            const char *s = *(char *const *)(const void *)field;
            cfg_dump_string(out, s != NULL ? s : "");
            break;
        }
        case CFG_T_INT:
            if (k->choices == cfg_port_off && *(const int *)(const void *)field == -1)
                fputs("\"\"", out); /* a port that is off */
            else
                fprintf(out, "%d", *(const int *)(const void *)field);
            break;
        case CFG_T_INT64:
            fprintf(out, "%" PRId64, *(const int64_t *)(const void *)field);
            break;
        case CFG_T_BOOL:
            fputs(*(const bool *)(const void *)field ? "true" : "false", out);
            break;
        case CFG_T_FRACTION:
            fprintf(out, "%.15g", *(const double *)(const void *)field);
            break;
        }
        fputc('\n', out);
    }
    if (fflush(out) != 0 || ferror(out))
        return -MG_EIO;
    return 0;
}

const char *cfg_key_next(size_t *pos)
{
    if (*pos >= CFG_NKEYS)
        return NULL;
    return cfg_keys[(*pos)++].name;
}
