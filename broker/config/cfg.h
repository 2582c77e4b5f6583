/*
 * cfg.h - broker configuration: a YAML file (read with libcyaml), then MAGNETAR_<key>
 * environment variables, then --set key=value overrides, each later source winning.
 *
 * Key names are Pulsar's broker.conf names (camelCase) everywhere a user types them: in the
 * YAML file, after MAGNETAR_ in the environment and in --set. Struct fields are snake_case.
 * conf/README.md lists every key with its default and meaning.
 *
 * One key table in cfg.c drives the defaults, the libcyaml schema, the environment and
 * --set parsing, cfg_dump and cfg_key_next, so the sources cannot disagree on a key's type
 * or range. Every error message names its origin (the file path, "--set", or
 * "environment variable MAGNETAR_x") and the key; values are never half-applied by a
 * failing cfg_load_file.
 *
 * Threading: plain data, no globals; load it once at start-up and treat it as read-only.
 */
#ifndef MG_CFG_H
#define MG_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* All char * fields are owned by the struct (freed by cfg_fini) and never NULL after
 * cfg_init, except file. */
struct cfg {
    char *file; /* path of the loaded YAML file, or NULL */
    /* key name -> field (default) */
    char *cluster_name;               /* clusterName ("standalone") */
    char *bind_address;               /* bindAddress ("0.0.0.0") */
    char *advertised_address;         /* advertisedAddress (default: the host name) */
    int broker_service_port;          /* brokerServicePort (6650); 0 = any port; -1 = off */
    int web_service_port;             /* webServicePort (8080); 0 = any port; -1 = off */
    int max_message_size;             /* maxMessageSize (5242880) */
    int keep_alive_interval_seconds;  /* keepAliveIntervalSeconds (30) */
    int max_pending_publish_per_conn; /* maxPendingPublishRequestsPerConnection (1000) */
    int max_unacked_per_consumer;     /* maxUnackedMessagesPerConsumer (50000); 0 = none */
    int max_unacked_per_subscription; /* maxUnackedMessagesPerSubscription (200000); 0 = none */

    /* issue 15's limits and rates (0 = no limit unless told) */
    int max_producers_per_topic;        /* maxProducersPerTopic */
    int max_consumers_per_topic;        /* maxConsumersPerTopic */
    int max_consumers_per_subscription; /* maxConsumersPerSubscription */
    int max_subscriptions_per_topic;    /* maxSubscriptionsPerTopic */
    int max_topics_per_namespace;       /* maxTopicsPerNamespace */
    bool delete_inactive_topics;        /* brokerDeleteInactiveTopicsEnabled (true) */
    bool delete_inactive_pt_metadata;   /* brokerDeleteInactivePartitionedTopicMetadataEnabled */
    int delete_inactive_frequency_secs; /* brokerDeleteInactiveTopicsFrequencySeconds (60) */
    char *delete_inactive_mode;         /* brokerDeleteInactiveTopicsMode */
    int delete_inactive_max_secs;       /* brokerDeleteInactiveTopicsMaxInactiveDurationSeconds (0:
                                           the frequency) */
    int publish_rate_msgs;              /* maxPublishRatePerTopicInMessages */
    int64_t publish_rate_bytes;         /* maxPublishRatePerTopicInBytes */
    int publisher_throttling_tick_ms;   /* topicPublisherThrottlingTickTimeMillis (10) */
    int dispatch_rate_topic_msgs;       /* dispatchThrottlingRatePerTopicInMsg (per second) */
    int64_t dispatch_rate_topic_bytes;  /* dispatchThrottlingRatePerTopicInByte */
    int dispatch_rate_sub_msgs;         /* dispatchThrottlingRatePerSubscriptionInMsg */
    int64_t dispatch_rate_sub_bytes;    /* dispatchThrottlingRatePerSubscriptionInByte */

    int dispatcher_max_round_robin_batch_size; /* dispatcherMaxRoundRobinBatchSize (20) */
    int dispatcher_max_read_batch_size;        /* dispatcherMaxReadBatchSize (100) */
    int active_consumer_failover_delay_ms;     /* activeConsumerFailoverDelayTimeMillis (1000) */
    bool delayed_delivery_enabled;             /* delayedDeliveryEnabled (true) */
    bool enable_non_persistent_topics;         /* enableNonPersistentTopics (true) */
    int delayed_delivery_tick_ms;              /* delayedDeliveryTickTimeMillis (1000) */
    int connection_max_outbound_bytes; /* connectionMaxOutboundBytes (4194304): per-connection
                                          output watermark above which dispatch pauses */
    int num_io_threads; /* numIOThreads (0): connection I/O loops; 0 and 1 = the main loop */
    int broker_max_connections;        /* brokerMaxConnections (0 = no bound) */
    int broker_max_connections_per_ip; /* brokerMaxConnectionsPerIp (0 = no bound) */
    int max_http_server_connections;   /* maxHttpServerConnections (2048; 0 = no bound) */
    int max_num_partitions_per_partitioned_topic; /* maxNumPartitionsPerPartitionedTopic
                                                     (10000; 0 = no bound) */
    int managed_ledger_cache_size_mb;             /* managedLedgerCacheSizeMB (16) */
    int managed_ledger_max_entries_per_ledger;    /* managedLedgerMaxEntriesPerLedger (50000) */
    int managed_ledger_max_size_per_ledger_mb;    /* managedLedgerMaxSizePerLedgerMbytes (2048) */
    int default_number_of_namespace_bundles;      /* defaultNumberOfNamespaceBundles (4) */
    int zookeeper_session_timeout_ms;             /* zooKeeperSessionTimeoutMillis (30000): metadata
                                                     store session; bundles are lost after it */
    int load_balancer_report_interval_ms;  /* loadBalancerReportUpdateMinIntervalMillis (5000):
                                              broker registration / load report refresh */
    int broker_shutdown_timeout_ms;        /* brokerShutdownTimeoutMs (60000): bound on SIGTERM */
    bool allow_auto_topic_creation;        /* allowAutoTopicCreation (true) */
    char *allow_auto_topic_creation_type;  /* allowAutoTopicCreationType ("non-partitioned"
                                              or "partitioned") */
    int default_num_partitions;            /* defaultNumPartitions (1) */
    bool allow_auto_subscription_creation; /* allowAutoSubscriptionCreation (true) */
    bool pattern_evaluation;               /* enableBrokerSideSubscriptionPatternEvaluation
                                              (true): topics_pattern filtering, topic watchers */
    int subscription_pattern_max_length;   /* subscriptionPatternMaxLength (50) */
    char *data_directory;                  /* dataDirectory ("data") */
    char *metadata_store_url;              /* metadataStoreUrl ("embedded") */
    char *managed_ledger_store;            /* managedLedgerStore ("bookkeeper"|"memory"): topics'
                                              storage; memory is not durable (tests only) */
    bool allow_volatile_topics;            /* allowVolatileTopics (false): must be true for
                                              managedLedgerStore=memory on a shared (ZooKeeper)
                                              metadata store */
    int managed_ledger_ensemble_size;      /* managedLedgerDefaultEnsembleSize (2) */
    int managed_ledger_write_quorum;       /* managedLedgerDefaultWriteQuorum (2) */
    int managed_ledger_ack_quorum;         /* managedLedgerDefaultAckQuorum (2) */
    bool auto_skip_non_recoverable_data;   /* autoSkipNonRecoverableData (false): skip ledgers
                                              and entries that can never be read back */
    bool bookkeeper_use_v2_wire_protocol;  /* bookkeeperUseV2WireProtocol (true) */
    int bookkeeper_client_timeout_seconds; /* bookkeeperClientTimeoutInSeconds (30) */
    int default_retention_time_minutes;    /* defaultRetentionTimeInMinutes (0; -1 = forever) */
    int default_retention_size_mb;         /* defaultRetentionSizeInMB (0; -1 = unlimited) */
    int retention_check_interval_secs;     /* retentionCheckIntervalInSeconds (120; 0 = off) */
    int ml_min_rollover_minutes;           /* managedLedgerMinLedgerRolloverTimeMinutes (10) */
    int ml_max_rollover_minutes;           /* managedLedgerMaxLedgerRolloverTimeMinutes (240) */
    int ttl_duration_default_secs;         /* ttlDurationDefaultInSeconds (0 = no TTL) */
    int expiry_check_minutes;              /* messageExpiryCheckIntervalInMinutes (5) */
    int64_t backlog_quota_limit_bytes;     /* backlogQuotaDefaultLimitBytes (-1 = none) */
    int backlog_quota_limit_secs;          /* backlogQuotaDefaultLimitSecond (-1 = none) */
    char *backlog_quota_policy;            /* backlogQuotaDefaultRetentionPolicy */
    char *schema_compatibility_strategy;   /* schemaCompatibilityStrategy (FULL) */
    bool allow_auto_update_schema;         /* isAllowAutoUpdateSchemaEnabled (true) */
    int backlog_quota_check_secs;          /* backlogQuotaCheckIntervalInSeconds (60) */
    bool broker_dedup_enabled;             /* brokerDeduplicationEnabled (false) */
    int broker_dedup_max_producers;        /* brokerDeduplicationMaxNumberOfProducers (10000) */
    int broker_dedup_entries_interval;     /* brokerDeduplicationEntriesInterval (1000) */
    int broker_dedup_inactivity_minutes;   /* brokerDeduplicationProducerInactivityTimeoutMinutes
                                              (360; 0 = never forgotten) */
    int64_t compaction_threshold_bytes;    /* brokerServiceCompactionThresholdInBytes (0 = off) */
    int compaction_monitor_secs;     /* brokerServiceCompactionMonitorIntervalInSeconds (60) */
    int standalone_bookies;          /* standaloneBookies (1): bookies run inside
                                        `magnetar standalone` */
    int stats_update_frequency_secs; /* statsUpdateFrequencyInSecs (60): stats interval */
    bool expose_topic_level_metrics; /* exposeTopicLevelMetricsInPrometheus (true) */
    /* broker to bookie TLS (Pulsar's keys; on only with bookkeeperTLSClientAuthentication) */
    bool bookkeeper_tls_client_authentication;   /* bookkeeperTLSClientAuthentication (false) */
    char *bookkeeper_tls_key_file_path;          /* bookkeeperTLSKeyFilePath ("") */
    char *bookkeeper_tls_certificate_file_path;  /* bookkeeperTLSCertificateFilePath ("") */
    char *bookkeeper_tls_trust_certs_file_path;  /* bookkeeperTLSTrustCertsFilePath ("") */
    char *bookkeeper_tls_key_file_type;          /* bookkeeperTLSKeyFileType ("PEM"; only PEM) */
    char *bookkeeper_tls_trust_cert_types;       /* bookkeeperTLSTrustCertTypes ("PEM"; only PEM) */
    char *bookkeeper_tls_provider_factory_class; /* bookkeeperTLSProviderFactoryClass (Pulsar's
                                                    default TLSContextFactory; not read) */
    int bookkeeper_tls_cert_refresh_s; /* bookkeeperTlsCertFilesRefreshDurationSeconds (300) */
    /* bookie (magnetar bookie) */
    int bookie_port;                        /* bookiePort (3181); 0 = any free port */
    char *bookie_id;                        /* bookieId ("auto" = advertisedAddress:bookiePort) */
    char *journal_directory;                /* journalDirectory ("data/bookie/journal") */
    char *journal_directories;              /* journalDirectories (""): wins when set */
    char *ledger_directories;               /* ledgerDirectories ("data/bookie/ledgers") */
    int journal_max_group_wait_ms;          /* journalMaxGroupWaitMSec (1) */
    int journal_buffered_writes_threshold;  /* journalBufferedWritesThreshold (524288) */
    int journal_buffered_entries_threshold; /* journalBufferedEntriesThreshold (0 = off) */
    int journal_max_size_mb;                /* journalMaxSizeMB (256) */
    int journal_max_backups;                /* journalMaxBackups (5) */
    int journal_prealloc_size_mb;           /* journalPreAllocSizeMB (16) */
    bool journal_reuse_files;               /* journalReuseFiles (true) */
    int db_storage_write_cache_max_size_mb; /* dbStorage_writeCacheMaxSizeMb (16): both caches */
    bool journal_sync_data;                 /* journalSyncData (true) */
    int flush_interval_ms;                  /* flushInterval (10000): checkpoint period, ms */
    double disk_usage_threshold;            /* diskUsageThreshold (0.95): read-only above */
    double disk_usage_lwm_threshold;        /* diskUsageLwmThreshold (0.95): writable below */
    double disk_usage_warn_threshold;       /* diskUsageWarnThreshold (0.90): WARN above */
    int disk_check_interval_ms;             /* diskCheckInterval (10000), ms */
    int netty_max_frame_size_bytes;         /* nettyMaxFrameSizeBytes (5253120) */
    int log_size_limit;                     /* logSizeLimit (1 GiB): entry log roll size */
    int flush_entrylog_bytes;               /* flushEntrylogBytes (1 MiB): write-behind, 0 off */
    int gc_wait_time_ms;                    /* gcWaitTime (600000), ms */
    double minor_compaction_threshold;      /* minorCompactionThreshold (0.2) */
    int minor_compaction_interval_s;        /* minorCompactionInterval (3600), s */
    double major_compaction_threshold;      /* majorCompactionThreshold (0.8) */
    int major_compaction_interval_s;        /* majorCompactionInterval (86400), s */
    int compaction_rate_by_entries;         /* compactionRateByEntries (1000), per s */
    int compaction_rate_by_bytes;           /* compactionRateByBytes (1000000), per s */
    bool is_throttle_by_bytes;              /* isThrottleByBytes (false) */
    bool auto_recovery_daemon_enabled;      /* autoRecoveryDaemonEnabled (true): bookie runs it */
    int lost_bookie_recovery_delay_s;       /* lostBookieRecoveryDelay (0), s */
    int auditor_periodic_check_interval_s;  /* auditorPeriodicCheckInterval (604800), s; 0 off */
    int auditor_periodic_bookie_check_interval_s;  /* auditorPeriodicBookieCheckInterval (86400) */
    int rereplication_entry_batch_size;            /* rereplicationEntryBatchSize (100) */
    int open_ledger_rereplication_grace_period_ms; /* openLedgerRereplicationGracePeriod (30000) */
    int lock_release_of_failed_ledger_grace_period_ms; /* lockReleaseOfFailedLedgerGracePeriod */
    int prometheus_stats_http_port;       /* prometheusStatsHttpPort (0 = off): bookie metrics */
    bool is_force_gc_allow_when_no_space; /* isForceGCAllowWhenNoSpace (false) */
    char *log_level;                      /* logLevel ("info": debug|info|warn|error) */
    /* bookie TLS (BookKeeper's keys; on when tlsProviderFactoryClass is set) */
    char *tls_provider_factory_class;         /* tlsProviderFactoryClass ("": no TLS) */
    char *tls_provider;                       /* tlsProvider (""; any value: OpenSSL is used) */
    char *tls_certificate_path;               /* tlsCertificatePath ("") */
    char *tls_key_store;                      /* tlsKeyStore ("") */
    char *tls_key_store_type;                 /* tlsKeyStoreType ("JKS"; only PEM is read) */
    char *tls_trust_store;                    /* tlsTrustStore ("") */
    char *tls_trust_store_type;               /* tlsTrustStoreType ("JKS"; only PEM is read) */
    bool tls_client_authentication;           /* tlsClientAuthentication (false) */
    char *bookie_auth_provider_factory_class; /* bookieAuthProviderFactoryClass ("") */
    int tls_cert_files_refresh_s;             /* tlsCertFilesRefreshDurationSeconds (0: never) */
    char *authorized_roles;                   /* authorizedRoles ("": comma list of CNs) */
    /* authentication (Pulsar's keys; broker/auth/auth.h reads them; "" = not set) */
    bool authentication_enabled;              /* authenticationEnabled (false) */
    char *authentication_providers;           /* authenticationProviders ("") */
    int authentication_refresh_check_seconds; /* authenticationRefreshCheckSeconds (60) */
    bool authenticate_metrics_endpoint;       /* authenticateMetricsEndpoint (false) */
    char *super_user_roles;                   /* superUserRoles ("": comma list) */
    char *token_secret_key;                   /* tokenSecretKey ("") */
    char *token_public_key;                   /* tokenPublicKey ("") */
    char *token_public_alg;                   /* tokenPublicAlg ("RS256") */
    char *token_auth_claim;                   /* tokenAuthClaim ("sub") */
    char *token_audience_claim;               /* tokenAudienceClaim ("") */
    char *token_audience;                     /* tokenAudience ("") */
    char *broker_client_auth_plugin;          /* brokerClientAuthenticationPlugin ("") */
    char *broker_client_auth_params;          /* brokerClientAuthenticationParameters ("") */
    bool authorization_enabled;               /* authorizationEnabled (false) */
    /* the broker's own HTTPS client (admin fan-out) */
    bool broker_client_tls_enabled;    /* brokerClientTlsEnabled (false) */
    char *broker_client_trust_ca_path; /* brokerClientTrustCertsFilePath ("") */
    char *broker_client_cert_path;     /* brokerClientCertificateFilePath ("") */
    char *broker_client_key_path;      /* brokerClientKeyFilePath ("") */

    /* admin HTTP server limits: httpMaxRequestHeaderSize (8192 bytes of request line and
     * headers; past it 431), httpRequestReadTimeoutSeconds (10: a request must arrive within
     * it, else 408), httpIdleTimeoutSeconds (30: a connection with no request in progress
     * is closed after it) */
    int http_max_request_header_size;
    int http_request_read_timeout_seconds;
    int http_idle_timeout_seconds;

    /* TLS (tls.h): the TLS ports are off (-1) unless set (0 = any free port) */
    int broker_service_port_tls;          /* brokerServicePortTls */
    int web_service_port_tls;             /* webServicePortTls */
    char *tls_certificate_file_path;      /* tlsCertificateFilePath ("") */
    char *tls_key_file_path;              /* tlsKeyFilePath ("") */
    char *tls_trust_certs_file_path;      /* tlsTrustCertsFilePath ("") */
    bool tls_allow_insecure_connection;   /* tlsAllowInsecureConnection (false) */
    bool tls_require_trusted_client_cert; /* tlsRequireTrustedClientCertOnConnect (false) */
    char *tls_protocols;                  /* tlsProtocols ("": OpenSSL's defaults) */
    char *tls_ciphers;                    /* tlsCiphers ("": OpenSSL's defaults) */
    int tls_cert_refresh_check_s;         /* tlsCertRefreshCheckDurationSec (300) */

    /* managedLedgerCacheEvictionTimeThresholdMillis (1000), ...IntervalMs (10) */
    int ml_cache_eviction_time_ms;
    int ml_cache_eviction_interval_ms;
};

/*
 * Fill c with the defaults; c's previous contents are overwritten, not freed (call cfg_fini
 * first if it held a configuration). advertisedAddress defaults to gethostname(), or
 * "localhost" if that fails. Cannot fail (allocation failure aborts, as mg_malloc does).
 */
void cfg_init(struct cfg *c);

/* Free every string c owns and zero it. Accepts a zeroed struct and may be called twice. */
void cfg_fini(struct cfg *c);

/*
 * Read the YAML file at path (a mapping of key: value, every key optional; an empty value
 * or null leaves the key as it was) and apply it on top of c, which must be initialised.
 * c->file becomes a copy of path. The file is parsed by libcyaml; its log lines go to
 * MG_DEBUG("config").
 * Returns 0, or -MG_EINVAL with err (errlen bytes, always NUL-terminated) naming the file
 * and the key: unreadable file, YAML syntax error, unknown/duplicate key, a bad or
 * out-of-range value. On failure no key of the file has been applied.
 */
int cfg_load_file(struct cfg *c, const char *path, char *err, size_t errlen);

/*
 * Apply one override: key exactly as in YAML ("brokerServicePort"), value as text.
 * Integers are decimal and range-checked; booleans are "true" or "false"; enumerations must
 * be one of their names; strings must be non-empty. value is copied.
 * origin names the source in error messages ("--set", "environment variable MAGNETAR_x").
 * Returns 0, or -MG_EINVAL with err filled ("<origin>: unknown key 'x'",
 * "<origin>: bad value 'abc' for key 'brokerServicePort': expected an integer"); on failure
 * c is unchanged.
 * The optional strings (superUserRoles, the token keys...) may be "": not set.
 */
int cfg_set(struct cfg *c, const char *key, const char *value, const char *origin, char *err,
            size_t errlen);

/*
 * Apply every MAGNETAR_<key>=value of envp (a NULL-terminated environ-style array; NULL is
 * an empty environment) in order. Other variables are ignored; a MAGNETAR_ variable whose
 * key is unknown is an error naming the variable. Returns 0 or -MG_EINVAL (err filled;
 * variables before the failing one stay applied).
 */
int cfg_apply_env(struct cfg *c, char *const *envp, char *err, size_t errlen);

/*
 * The whole start-up sequence: cfg_init(c), then defaults (a NULL-terminated list of
 * "key=value" strings: a role's own built-in defaults, e.g. the standalone's loopback
 * bindAddress; may be NULL), then the file at path (skipped if NULL), then
 * envp (skipped if NULL), then each of the nsets "key=value" strings of sets (an entry
 * without '=' is an error). c's previous contents are overwritten, not freed.
 * Returns 0, or -MG_EINVAL with err filled; on failure c has already been cfg_fini'd (a
 * further cfg_fini is harmless). On success the caller owns c and calls cfg_fini.
 */
int cfg_load(struct cfg *c, const char *const *defaults, const char *path, char *const *envp,
             int nsets, char *const *sets, char *err, size_t errlen);

/*
 * Print the effective configuration to out as YAML, one "key: value" line per key in table
 * order (strings double-quoted), loadable again by cfg_load_file. Returns 0, or -MG_EIO if
 * writing failed.
 */
int cfg_dump(const struct cfg *c, FILE *out);

/*
 * Iterate the key names: start with *pos = 0; each call returns the next name (a static
 * string) and advances *pos, or returns NULL after the last key.
 */
const char *cfg_key_next(size_t *pos);

#endif
