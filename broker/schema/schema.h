/*
 * schema.h - the schema registry: per-topic, versioned schemas in the metadata store, and
 * the compatibility checks Pulsar runs before a new version is stored.
 *
 * Two layers:
 *   - pure functions (no I/O): schema types and strategies by name, validation of a schema's
 *     definition, Avro's reader/writer schema resolution (sch_avro_*), and the compatibility
 *     decision of a strategy over a list of existing versions (sch_check);
 *   - the registry (struct sch_registry): the stored versions of one schema id, read,
 *     appended (with the checks), deleted (a delete marker) — asynchronous, loop thread.
 *
 * Schema id (Pulsar's TopicName.getSchemaName): "<tenant>/<ns>/<local name of the partitioned
 * base, URL-encoded>", the domain not included. Storage (README.md): one node per version,
 *   /schemas/<tenant>/<ns>/<local>/<version, 19 digits>
 * holding JSON {"type","data" (base64),"properties","timestamp","deleted"}; versions count
 * from 0 and grow by one per stored version, delete markers included. A version node is
 * created create-only: two brokers appending at once race on that node and the loser reads
 * again and retries.
 *
 * The version on the wire is an 8-byte big-endian long (sch_version_put/get).
 */
#ifndef MG_SCHEMA_H
#define MG_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct meta_store;
struct mg_loop;
struct ns;
struct cfg;

/* Pulsar's SchemaType, numbered as the wire's Schema.Type (PulsarApi.proto). */
enum sch_type {
    SCH_NONE = 0,
    SCH_STRING = 1,
    SCH_JSON = 2,
    SCH_PROTOBUF = 3,
    SCH_AVRO = 4,
    SCH_BOOLEAN = 5,
    SCH_INT8 = 6,
    SCH_INT16 = 7,
    SCH_INT32 = 8,
    SCH_INT64 = 9,
    SCH_FLOAT = 10,
    SCH_DOUBLE = 11,
    SCH_DATE = 12,
    SCH_TIME = 13,
    SCH_TIMESTAMP = 14,
    SCH_KEY_VALUE = 15,
    SCH_INSTANT = 16,
    SCH_LOCAL_DATE = 17,
    SCH_LOCAL_TIME = 18,
    SCH_LOCAL_DATE_TIME = 19,
    SCH_PROTOBUF_NATIVE = 20,
    SCH_AUTO_CONSUME = 21,
    SCH_EXTERNAL = 22,
    SCH_TYPE_COUNT
};
/* Java's enum name ("AVRO", "KEY_VALUE"); "NONE" for an unknown value. */
const char *sch_type_name(enum sch_type t);
/* The type of a Java enum name (case-insensitive); -MG_EINVAL for an unknown one. "BYTES"
 * is NONE, as Pulsar sends it. */
int sch_type_parse(const char *name);

/* Pulsar's SchemaCompatibilityStrategy; UNDEFINED = not set (the next level decides). */
enum sch_strategy {
    SCH_UNDEFINED = 0,
    SCH_ALWAYS_INCOMPATIBLE,
    SCH_ALWAYS_COMPATIBLE,
    SCH_BACKWARD,
    SCH_FORWARD,
    SCH_FULL,
    SCH_BACKWARD_TRANSITIVE,
    SCH_FORWARD_TRANSITIVE,
    SCH_FULL_TRANSITIVE,
    SCH_STRATEGY_COUNT
};
const char *sch_strategy_name(enum sch_strategy s);
/* -MG_EINVAL for an unknown name (case-sensitive, as Java's valueOf). */
int sch_strategy_parse(const char *name);

/* The largest definition accepted, in bytes: a version is one metadata node, ZooKeeper's
 * packet limit is 1 MB and the definition is stored base64-encoded (4/3). */
#define SCH_MAX_DATA_BYTES (512 * 1024)
/* The most versions one schema id keeps; a put beyond it is refused (each check reads them
 * all). */
#define SCH_MAX_VERSIONS 1000

/* One property of a schema (key and value owned by the schema). */
struct sch_prop {
    char *key, *value;
};

/* One schema version: what a client or the admin API gives, and what is stored. */
struct sch_schema {
    enum sch_type type;
    uint8_t *data; /* owned; the definition (may be NULL when len is 0) */
    size_t len;
    struct sch_prop *props; /* owned */
    size_t n_props;
    int64_t timestamp_ms; /* when stored (0 before) */
    bool deleted;         /* a delete marker */
};
/* Fill s with copies of the arguments (props: n pairs key, value). */
void sch_schema_init(struct sch_schema *s, enum sch_type type, const void *data, size_t len);
void sch_schema_add_prop(struct sch_schema *s, const char *key, const char *value);
void sch_schema_fini(struct sch_schema *s);

/* Is the definition valid for its type? 0, or -MG_EINVAL / -MG_ETOOBIG with the reason in
 * err: over SCH_MAX_DATA_BYTES; AVRO and JSON: not JSON, or not a valid Avro schema (a JSON
 * schema in the legacy Jackson form, {"type":"object",...}, is accepted as Pulsar does);
 * PROTOBUF_NATIVE: not a JSON object naming its rootMessageTypeName; KEY_VALUE: not the
 * [len][key][len][value] layout, or a part invalid for its type. */
int sch_validate(const struct sch_schema *s, char *err, size_t errlen);

/* Are two schemas the same one (what a put finds instead of storing a new version)? Same
 * type, and for AVRO/JSON the same parsed JSON (key order and spacing do not matter), else
 * the same bytes; the properties are the same. */
bool sch_same(const struct sch_schema *a, const struct sch_schema *b);

/* Can a reader with schema `reader` read what `writer` wrote (Avro's "Schema Resolution")?
 * Both are Avro JSON texts. Returns 1 yes, 0 no (err says where), -MG_EINVAL when one of
 * them does not parse. */
int sch_avro_can_read(const char *reader, size_t rlen, const char *writer, size_t wlen, char *err,
                      size_t errlen);

/* The compatibility decision for a new schema against the existing versions (oldest first,
 * delete markers and what precedes the last one already left out), under strategy (not
 * UNDEFINED). Pulsar's rules: a type different from the latest's is refused; the
 * transitive strategies check every version, the others the latest only; AVRO and JSON use
 * Avro resolution (BACKWARD: the new one reads the old, FORWARD: the old reads the new, FULL:
 * both), PROTOBUF_NATIVE the root message's name, KEY_VALUE its two parts, every other type
 * refuses only under ALWAYS_INCOMPATIBLE. 0 compatible, -MG_EINCOMPATSCHEMA with the reason. */
int sch_check(enum sch_strategy strategy, const struct sch_schema *new_schema,
              const struct sch_schema *existing, size_t n, char *err, size_t errlen);

/* The 8-byte big-endian version, as Pulsar sends it. get: -1 unless len is 8. */
void sch_version_put(int64_t v, uint8_t out[8]);
int64_t sch_version_get(const uint8_t *p, size_t len);

/* The schema id of a topic name (any form topic_name_parse accepts), owned (mg_free); NULL
 * for a bad name. */
char *sch_id_of_topic(const char *topic);

/* ---- the registry ---------------------------------------------------------------------- */

struct sch_registry;
/* A registry on store (borrowed; must outlive it; loop gives the versions' timestamps). ns
 * and cfg (borrowed, may be NULL: then FULL and auto update on) give the strategy and
 * auto-update policy of a namespace. */
struct sch_registry *sch_registry_new(struct mg_loop *loop, struct meta_store *store, struct ns *ns,
                                      const struct cfg *cfg);
/* Accepts NULL. Requests in flight complete with -MG_ECANCELED first. */
void sch_registry_free(struct sch_registry *r);

/* The namespace's effective policy: its schemaCompatibilityStrategy, else the broker's
 * (schemaCompatibilityStrategy, FULL by default); its isAllowAutoUpdateSchema, else the
 * broker's isAllowAutoUpdateSchemaEnabled. tenant_ns is "t/ns". */
enum sch_strategy sch_ns_strategy(const struct sch_registry *r, const char *tenant_ns);
bool sch_ns_auto_update(const struct sch_registry *r, const char *tenant_ns);

/* The stored, live versions of a schema id: versions[i] is schemas[i]'s version. Versions
 * before the last delete marker are left out ("trimmed", as Pulsar); when the latest is a
 * delete marker, n is 0 and next_version says where numbering goes on. */
struct sch_list {
    struct sch_schema *schemas;
    int64_t *versions;
    size_t n;
    int64_t next_version; /* the version the next put gets */
};
void sch_list_fini(struct sch_list *l);

/* What a put does besides storing: the policy of the schema's namespace. */
enum sch_put_mode {
    SCH_PUT_REGISTER = 0, /* add it if new and compatible (auto update allowed) */
    SCH_PUT_FIND_ONLY,    /* only find an equal stored version (auto update disabled) */
    SCH_PUT_ADMIN,        /* the admin API: add if new and compatible, whatever auto update */
    /* a consumer's schema (SUBSCRIBE): an equal version, else checked (never stored) against
     * the latest (BACKWARD, under BACKWARD, FORWARD, FORWARD_TRANSITIVE, FULL) or every
     * version (the strategy itself, under the others); with no schema stored, registered when
     * the topic is idle (no producer, no consumer, nothing written), else refused */
    SCH_PUT_CONSUMER_IDLE,
    SCH_PUT_CONSUMER_ACTIVE,
};

/* Completion: status 0 and the version (put: the new or found one; delete: the marker's;
 * get/list: l filled, valid during the callback), or < 0 with err (a message for the client:
 * -MG_ENOTFOUND no schema / no such version, -MG_EINCOMPATSCHEMA refused, -MG_EINVAL invalid,
 * -MG_ETOOBIG too large, else the store's error). Runs on the loop thread, after the call
 * returned, exactly once. */
typedef void (*sch_cb)(void *data, int status, int64_t version, const struct sch_list *l,
                       const char *err);

/* Read every live version of id (get latest: the last of l; by version: look it up). */
int sch_list(struct sch_registry *r, const char *id, sch_cb cb, void *data);
/* Add s (copied) under strategy: find an equal live version (its version), else check and
 * append. */
int sch_put(struct sch_registry *r, const char *id, const struct sch_schema *s,
            enum sch_strategy strategy, enum sch_put_mode mode, sch_cb cb, void *data);
/* Test s against the live versions without storing: status 0 compatible (version -1), or
 * -MG_EINCOMPATSCHEMA with the reason. */
int sch_test(struct sch_registry *r, const char *id, const struct sch_schema *s,
             enum sch_strategy strategy, sch_cb cb, void *data);
/* Append a delete marker (type NONE, deleted); -MG_ENOTFOUND when there is no live schema. */
int sch_delete(struct sch_registry *r, const char *id, sch_cb cb, void *data);

#endif
