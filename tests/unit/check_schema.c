/*
 * check_schema.c - the schema module: Avro's resolution rules as a table (reader, writer,
 * expected), validation of definitions, the strategies' decisions, the 8-byte version, and
 * the registry over the in-memory metadata store (versions, equal schemas found, delete
 * markers, refusals storing nothing); then a whole broker (svc, real TCP and HTTP) with the
 * project's client (broker/client): for each strategy family a schema registered, a
 * compatible evolution accepted and an incompatible one refused; the admin resources with
 * their Pulsar shapes and refusals; auto update off; a consumer's schema checked and the
 * producer's version reaching it.
 */
#include "client/client.h"
#include "config/cfg.h"
#include "lib/tl.h"
#include "lib/tl_svc.h"
#include "meta/meta.h"
#include "schema/sch_int.h"
#include "schema/schema.h"
#include "svc/svc.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/loop.h"

#include <check.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

/* ---- Avro resolution table ---------------------------------------------------------------- */

#define REC(fields)                                                                                \
    "{\"type\":\"record\",\"name\":\"R\",\"namespace\":\"n\",\"fields\":[" fields "]}"
#define F(name, type) "{\"name\":\"" name "\",\"type\":" type "}"
#define FD(name, type, def) "{\"name\":\"" name "\",\"type\":" type ",\"default\":" def "}"

static const struct {
    const char *what;
    const char *reader, *writer;
    int can_read;
} avro_rules[] = {
    {"same primitive", "\"int\"", "\"int\"", 1},
    {"int promoted to long", "\"long\"", "\"int\"", 1},
    {"int promoted to float", "\"float\"", "\"int\"", 1},
    {"int promoted to double", "\"double\"", "\"int\"", 1},
    {"long promoted to float", "\"float\"", "\"long\"", 1},
    {"long promoted to double", "\"double\"", "\"long\"", 1},
    {"float promoted to double", "\"double\"", "\"float\"", 1},
    {"long not demoted to int", "\"int\"", "\"long\"", 0},
    {"double not demoted to float", "\"float\"", "\"double\"", 0},
    {"string read as bytes", "\"bytes\"", "\"string\"", 1},
    {"bytes read as string", "\"string\"", "\"bytes\"", 1},
    {"string is not an int", "\"int\"", "\"string\"", 0},
    {"boolean is not an int", "\"int\"", "\"boolean\"", 0},
    {"field added with a default", REC(F("a", "\"int\"") "," FD("b", "\"string\"", "\"x\"")),
     REC(F("a", "\"int\"")), 1},
    {"field added with a null default",
     REC(F("a", "\"int\"") "," FD("b", "[\"null\",\"int\"]", "null")), REC(F("a", "\"int\"")), 1},
    {"field added without a default", REC(F("a", "\"int\"") "," F("b", "\"string\"")),
     REC(F("a", "\"int\"")), 0},
    {"field removed (writer's extra field ignored)", REC(F("a", "\"int\"")),
     REC(F("a", "\"int\"") "," F("b", "\"string\"")), 1},
    {"field type promoted", REC(F("a", "\"long\"")), REC(F("a", "\"int\"")), 1},
    {"field type narrowed", REC(F("a", "\"int\"")), REC(F("a", "\"long\"")), 0},
    {"field renamed with an alias", REC("{\"name\":\"b\",\"type\":\"int\",\"aliases\":[\"a\"]}"),
     REC(F("a", "\"int\"")), 1},
    {"field renamed without alias or default", REC(F("b", "\"int\"")), REC(F("a", "\"int\"")), 0},
    {"record names differ", "{\"type\":\"record\",\"name\":\"X\",\"fields\":[]}",
     "{\"type\":\"record\",\"name\":\"Y\",\"fields\":[]}", 0},
    {"record namespaces differ, names match",
     "{\"type\":\"record\",\"name\":\"X\",\"namespace\":\"a\",\"fields\":[]}",
     "{\"type\":\"record\",\"name\":\"X\",\"namespace\":\"b\",\"fields\":[]}", 1},
    {"writer union, every branch readable", "\"double\"", "[\"int\",\"long\"]", 1},
    {"writer union, one branch unreadable", "\"long\"", "[\"int\",\"string\"]", 0},
    {"reader union holds the writer's type", "[\"null\",\"string\"]", "\"string\"", 1},
    {"reader union holds a promotion", "[\"null\",\"long\"]", "\"int\"", 1},
    {"reader union lacks the writer's type", "[\"null\",\"int\"]", "\"string\"", 0},
    {"both unions, reader wider", "[\"null\",\"int\",\"string\"]", "[\"null\",\"int\"]", 1},
    {"both unions, reader narrower", "[\"null\",\"int\"]", "[\"null\",\"int\",\"string\"]", 0},
    {"optional field made required", REC(F("a", "\"int\"")), REC(F("a", "[\"null\",\"int\"]")), 0},
    {"required field made optional", REC(F("a", "[\"null\",\"int\"]")), REC(F("a", "\"int\"")), 1},
    {"nested record, field added with default",
     REC(F("in", "{\"type\":\"record\",\"name\":\"I\",\"fields\":[" F("x", "\"int\"") "," FD(
                     "y", "\"int\"", "0") "]}")),
     REC(F("in", "{\"type\":\"record\",\"name\":\"I\",\"fields\":[" F("x", "\"int\"") "]}")), 1},
    {"nested record, field added without default",
     REC(F("in", "{\"type\":\"record\",\"name\":\"I\",\"fields\":[" F("x", "\"int\"") "," F(
                     "y", "\"int\"") "]}")),
     REC(F("in", "{\"type\":\"record\",\"name\":\"I\",\"fields\":[" F("x", "\"int\"") "]}")), 0},
    {"enum gains a symbol", "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"B\",\"C\"]}",
     "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"B\"]}", 1},
    {"enum loses a symbol", "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\"]}",
     "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"B\"]}", 0},
    {"enum loses a symbol, reader has a default",
     "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\"],\"default\":\"A\"}",
     "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"B\"]}", 1},
    {"array items promoted", "{\"type\":\"array\",\"items\":\"long\"}",
     "{\"type\":\"array\",\"items\":\"int\"}", 1},
    {"array items incompatible", "{\"type\":\"array\",\"items\":\"int\"}",
     "{\"type\":\"array\",\"items\":\"string\"}", 0},
    {"map values promoted", "{\"type\":\"map\",\"values\":\"double\"}",
     "{\"type\":\"map\",\"values\":\"float\"}", 1},
    {"map is not an array", "{\"type\":\"map\",\"values\":\"int\"}",
     "{\"type\":\"array\",\"items\":\"int\"}", 0},
    {"fixed of the same size", "{\"type\":\"fixed\",\"name\":\"H\",\"size\":16}",
     "{\"type\":\"fixed\",\"name\":\"H\",\"size\":16}", 1},
    {"fixed sizes differ", "{\"type\":\"fixed\",\"name\":\"H\",\"size\":16}",
     "{\"type\":\"fixed\",\"name\":\"H\",\"size\":8}", 0},
    {"recursive record, field added with default",
     "{\"type\":\"record\",\"name\":\"L\",\"fields\":[" F("v", "\"int\"") "," F(
         "next", "[\"null\",\"L\"]") "," FD("w", "\"int\"", "1") "]}",
     "{\"type\":\"record\",\"name\":\"L\",\"fields\":[" F("v", "\"int\"") "," F(
         "next", "[\"null\",\"L\"]") "]}",
     1},
    {"logical type over its base type", "{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}",
     "\"long\"", 1},
};

START_TEST(test_avro_rules)
{
    for (size_t i = 0; i < sizeof avro_rules / sizeof *avro_rules; i++) {
        char err[300] = "";
        int rc =
            sch_avro_can_read(avro_rules[i].reader, strlen(avro_rules[i].reader),
                              avro_rules[i].writer, strlen(avro_rules[i].writer), err, sizeof err);
        ck_assert_msg(rc == avro_rules[i].can_read, "%s: got %d, want %d (%s)", avro_rules[i].what,
                      rc, avro_rules[i].can_read, err);
        if (rc == 0)
            ck_assert_msg(err[0], "%s: a refusal says why", avro_rules[i].what);
    }
}
END_TEST

static const struct {
    const char *what;
    const char *text;
} avro_invalid[] = {
    {"not JSON", "{\"type\":"},
    {"unknown type name", "\"integer\""},
    {"record without name", "{\"type\":\"record\",\"fields\":[]}"},
    {"record without fields", "{\"type\":\"record\",\"name\":\"R\"}"},
    {"field without type", "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\"}]}"},
    {"duplicate field", "{\"type\":\"record\",\"name\":\"R\",\"fields\":[" F("a", "\"int\"") "," F(
                            "a", "\"int\"") "]}"},
    {"bad name", "{\"type\":\"record\",\"name\":\"1R\",\"fields\":[]}"},
    {"empty name", "{\"type\":\"record\",\"name\":\"\",\"fields\":[]}"},
    {"empty namespace part", "{\"type\":\"enum\",\"name\":\"a..E\",\"symbols\":[]}"},
    {"enum duplicate symbol", "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"A\"]}"},
    {"fixed without size", "{\"type\":\"fixed\",\"name\":\"F\"}"},
    {"union in union", "[\"null\",[\"int\"]]"},
    {"union with a type twice", "[\"int\",\"int\"]"},
    {"reference to an undefined type", REC(F("a", "\"Missing\""))},
    {"array without items", "{\"type\":\"array\"}"},
    {"type redefined", "[{\"type\":\"fixed\",\"name\":\"F\",\"size\":1},"
                       "{\"type\":\"fixed\",\"name\":\"F\",\"size\":2}]"},
};

START_TEST(test_avro_invalid)
{
    for (size_t i = 0; i < sizeof avro_invalid / sizeof *avro_invalid; i++) {
        struct sch_schema s;
        sch_schema_init(&s, SCH_AVRO, avro_invalid[i].text, strlen(avro_invalid[i].text));
        char err[300] = "";
        ck_assert_msg(sch_validate(&s, err, sizeof err) == -MG_EINVAL, "%s: accepted",
                      avro_invalid[i].what);
        ck_assert_msg(strstr(err, "Invalid schema definition"), "%s: reason '%s'",
                      avro_invalid[i].what, err);
        sch_schema_fini(&s);
    }
    /* too deep a nesting is refused, not a stack overflow */
    size_t depth = 5000;
    char *deep = mg_malloc(depth * 2 + 10);
    size_t n = 0;
    for (size_t i = 0; i < depth; i++)
        deep[n++] = '[';
    for (size_t i = 0; i < depth; i++)
        deep[n++] = ']';
    struct sch_schema s;
    sch_schema_init(&s, SCH_JSON, deep, n);
    ck_assert_int_eq(sch_validate(&s, NULL, 0), -MG_EINVAL);
    sch_schema_fini(&s);
    mg_free(deep);
}
END_TEST

START_TEST(test_validate_sizes_and_types)
{
    /* a definition over the limit: refused as too big, whatever it holds */
    size_t big = _i ? 5 * 1024 * 1024 : SCH_MAX_DATA_BYTES + 1;
    char *data = mg_malloc(big);
    memset(data, ' ', big);
    struct sch_schema s;
    sch_schema_init(&s, (enum sch_type)(_i ? SCH_STRING : SCH_AVRO), data, big);
    char err[200];
    ck_assert_int_eq(sch_validate(&s, err, sizeof err), -MG_ETOOBIG);
    ck_assert_ptr_nonnull(strstr(err, "over the limit"));
    sch_schema_fini(&s);
    mg_free(data);
}
END_TEST

START_TEST(test_validate_other_types)
{
    struct sch_schema s;
    const char *legacy = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}}}";
    sch_schema_init(&s, SCH_JSON, legacy, strlen(legacy));
    ck_assert_int_eq(sch_validate(&s, NULL, 0), 0);
    sch_schema_fini(&s);
    sch_schema_init(&s, SCH_STRING, "", 0);
    ck_assert_int_eq(sch_validate(&s, NULL, 0), 0);
    sch_schema_fini(&s);
    const char *pb = "{\"fileDescriptorSet\":\"AA==\",\"rootMessageTypeName\":\"p.M\"}";
    sch_schema_init(&s, SCH_PROTOBUF_NATIVE, pb, strlen(pb));
    ck_assert_int_eq(sch_validate(&s, NULL, 0), 0);
    sch_schema_fini(&s);
    sch_schema_init(&s, SCH_PROTOBUF_NATIVE, "{}", 2);
    ck_assert_int_eq(sch_validate(&s, NULL, 0), -MG_EINVAL);
    sch_schema_fini(&s);
}
END_TEST

START_TEST(test_version_bytes)
{
    const int64_t vals[] = {0, 1, 255, 256, 65537, INT64_MAX, (int64_t)1 << 40};
    for (size_t i = 0; i < sizeof vals / sizeof *vals; i++) {
        uint8_t b[8];
        sch_version_put(vals[i], b);
        ck_assert_int_eq(sch_version_get(b, 8), vals[i]);
        /* big-endian: the last byte is the low one */
        ck_assert_int_eq(b[7], (uint8_t)vals[i]);
        ck_assert_int_eq(b[0], (uint8_t)((uint64_t)vals[i] >> 56));
    }
    uint8_t b[8] = {0};
    ck_assert_int_eq(sch_version_get(b, 0), -1);
    ck_assert_int_eq(sch_version_get(b, 4), -1);
}
END_TEST

START_TEST(test_schema_id)
{
    static const char *const cases[][2] = {
        {"persistent://t/ns/orders-partition-3", "t/ns/orders"}, /* a partition: its base */
        {"non-persistent://t/ns/orders", "t/ns/orders"},         /* no domain */
        {"orders", "public/default/orders"},
        {"t/ns/a b%c", "t/ns/a+b%25c"}, /* encoded as in every metadata path */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *id = sch_id_of_topic(cases[i][0]);
        ck_assert_str_eq(id, cases[i][1]);
        mg_free(id);
    }
    ck_assert_ptr_null(sch_id_of_topic("persistent://a/b"));
}
END_TEST

/* ---- strategies --------------------------------------------------------------------------- */

static const char *const v1 = REC(F("a", "\"int\""));
static const char *const v2_added_default = REC(F("a", "\"int\"") "," FD("b", "\"int\"", "0"));
static const char *const v2_added_required = REC(F("a", "\"int\"") "," F("b", "\"int\""));
static const char *const v2_removed = "{\"type\":\"record\",\"name\":\"R\",\"namespace\":\"n\","
                                      "\"fields\":[]}";

static int check_one(enum sch_strategy st, enum sch_type t, const char *old, const char *neu)
{
    struct sch_schema o, n;
    sch_schema_init(&o, t, old, strlen(old));
    sch_schema_init(&n, t, neu, strlen(neu));
    char err[400];
    int rc = sch_check(st, &n, &o, 1, err, sizeof err);
    sch_schema_fini(&o);
    sch_schema_fini(&n);
    return rc == 0;
}

START_TEST(test_strategies)
{
    /* For Avro and JSON alike. A field added without a default: the new schema cannot read old
     * data (BACKWARD fails), old readers ignore it (FORWARD passes). A field (without default)
     * removed: the new schema reads old data, old readers miss it. */
    enum sch_type t = _i ? SCH_JSON : SCH_AVRO;
    ck_assert(check_one(SCH_ALWAYS_COMPATIBLE, t, v1, v2_added_required));
    ck_assert(!check_one(SCH_ALWAYS_INCOMPATIBLE, t, v1, v2_added_default));
    ck_assert(check_one(SCH_BACKWARD, t, v1, v2_added_default));
    ck_assert(!check_one(SCH_BACKWARD, t, v1, v2_added_required));
    ck_assert(check_one(SCH_BACKWARD, t, v1, v2_removed));
    ck_assert(check_one(SCH_FORWARD, t, v1, v2_added_required));
    ck_assert(!check_one(SCH_FORWARD, t, v1, v2_removed));
    ck_assert(check_one(SCH_FULL, t, v1, v2_added_default));
    ck_assert(!check_one(SCH_FULL, t, v1, v2_added_required));
    ck_assert(!check_one(SCH_FULL, t, v1, v2_removed));
    ck_assert(check_one(SCH_FULL_TRANSITIVE, t, v1, v2_added_default));
}
END_TEST

START_TEST(test_strategies_transitive)
{
    /* v0 {a}, v1 {a=0, b=0}, candidate {b=0}: v1 reads the candidate's data (a has a
     * default there) and the candidate reads v1's, but v0 requires a, which the candidate
     * does not write: only the transitive forms look at v0. */
    const char *s0 = REC(F("a", "\"int\""));
    const char *s1 = REC(FD("a", "\"int\"", "0") "," FD("b", "\"int\"", "0"));
    const char *cand = REC(FD("b", "\"int\"", "0"));
    struct sch_schema ex[2], n;
    sch_schema_init(&ex[0], SCH_AVRO, s0, strlen(s0));
    sch_schema_init(&ex[1], SCH_AVRO, s1, strlen(s1));
    sch_schema_init(&n, SCH_AVRO, cand, strlen(cand));
    char err[400];
    /* the latest (v1) reads the candidate: a has a default there */
    ck_assert_int_eq(sch_check(SCH_FORWARD, &n, ex, 2, err, sizeof err), 0);
    ck_assert_int_eq(sch_check(SCH_FULL, &n, ex, 2, err, sizeof err), 0);
    /* v0 cannot (a required): only the transitive forms see it */
    ck_assert_int_eq(sch_check(SCH_FORWARD_TRANSITIVE, &n, ex, 2, err, sizeof err),
                     -MG_EINCOMPATSCHEMA);
    ck_assert_int_eq(sch_check(SCH_FULL_TRANSITIVE, &n, ex, 2, err, sizeof err),
                     -MG_EINCOMPATSCHEMA);
    ck_assert_int_eq(sch_check(SCH_BACKWARD_TRANSITIVE, &n, ex, 2, err, sizeof err), 0);
    for (int i = 0; i < 2; i++)
        sch_schema_fini(&ex[i]);
    sch_schema_fini(&n);
}
END_TEST

START_TEST(test_type_change_and_others)
{
    struct sch_schema o, n;
    sch_schema_init(&o, SCH_AVRO, v1, strlen(v1));
    sch_schema_init(&n, SCH_STRING, "", 0);
    char err[300];
    ck_assert_int_eq(sch_check(SCH_FULL, &n, &o, 1, err, sizeof err), -MG_EINCOMPATSCHEMA);
    ck_assert_ptr_nonnull(strstr(err, "exists schema type AVRO, new schema type STRING"));
    ck_assert_int_eq(sch_check(SCH_ALWAYS_COMPATIBLE, &n, &o, 1, err, sizeof err), 0);
    sch_schema_fini(&o);
    /* other types: only ALWAYS_INCOMPATIBLE refuses */
    sch_schema_init(&o, SCH_STRING, "x", 1);
    ck_assert_int_eq(sch_check(SCH_FULL, &n, &o, 1, err, sizeof err), 0);
    ck_assert_int_eq(sch_check(SCH_ALWAYS_INCOMPATIBLE, &n, &o, 1, err, sizeof err),
                     -MG_EINCOMPATSCHEMA);
    sch_schema_fini(&o);
    sch_schema_fini(&n);
    /* PROTOBUF_NATIVE: the root message's name */
    const char *p1 = "{\"fileDescriptorSet\":\"AA==\",\"rootMessageTypeName\":\"p.M\"}";
    const char *p2 = "{\"fileDescriptorSet\":\"AQ==\",\"rootMessageTypeName\":\"p.M\"}";
    const char *p3 = "{\"fileDescriptorSet\":\"AA==\",\"rootMessageTypeName\":\"p.N\"}";
    ck_assert(check_one(SCH_FULL, SCH_PROTOBUF_NATIVE, p1, p2));
    ck_assert(!check_one(SCH_FULL, SCH_PROTOBUF_NATIVE, p1, p3));
    ck_assert(check_one(SCH_ALWAYS_COMPATIBLE, SCH_PROTOBUF_NATIVE, p1, p3));
}
END_TEST

START_TEST(test_same)
{
    const char *a = "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":"
                    "\"int\"}]}";
    const char *b = "{ \"fields\" : [ { \"type\" : \"int\", \"name\" : \"a\" } ], \"name\" : "
                    "\"R\", \"type\" : \"record\" }";
    struct sch_schema x, y;
    sch_schema_init(&x, SCH_AVRO, a, strlen(a));
    sch_schema_init(&y, SCH_AVRO, b, strlen(b));
    ck_assert(sch_same(&x, &y));
    sch_schema_add_prop(&y, "k", "v");
    ck_assert(!sch_same(&x, &y));
    sch_schema_add_prop(&x, "k", "v");
    ck_assert(sch_same(&x, &y));
    y.type = SCH_JSON;
    ck_assert(!sch_same(&x, &y));
    sch_schema_fini(&x);
    sch_schema_fini(&y);
}
END_TEST

/* ---- the registry over the memory store --------------------------------------------------- */

static struct event_base *base;
static struct mg_loop *loop;
static struct meta_store *store;
static struct sch_registry *reg;

static void reg_setup(void)
{
    base = event_base_new();
    loop = mg_loop_new(base);
    struct meta_options o = {.url = "memory"};
    ck_assert_int_eq(meta_open(loop, &o, &store), 0);
    reg = sch_registry_new(loop, store, NULL, NULL);
}

static void reg_teardown(void)
{
    sch_registry_free(reg);
    meta_close(store);
    mg_loop_free(loop);
    event_base_free(base);
}

struct result {
    bool done;
    int status;
    int64_t version;
    size_t n;
    int64_t versions[8];
    enum sch_type types[8];
    char err[400];
};

static void on_done(void *data, int status, int64_t version, const struct sch_list *l,
                    const char *err)
{
    struct result *r = data;
    r->done = true;
    r->status = status;
    r->version = version;
    r->n = l ? l->n : 0;
    for (size_t i = 0; l && i < l->n && i < 8; i++) {
        r->versions[i] = l->versions[i];
        r->types[i] = l->schemas[i].type;
    }
    snprintf(r->err, sizeof r->err, "%s", err ? err : "");
}

static struct result put(const char *id, enum sch_type t, const char *def, enum sch_strategy st,
                         enum sch_put_mode mode)
{
    struct result r = {0};
    struct sch_schema s;
    sch_schema_init(&s, t, def, strlen(def));
    ck_assert_int_eq(sch_put(reg, id, &s, st, mode, on_done, &r), 0);
    sch_schema_fini(&s);
    ck_assert(!r.done); /* never inside the call */
    tl_wait(loop, &r.done);
    return r;
}

static struct result list(const char *id)
{
    struct result r = {0};
    ck_assert_int_eq(sch_list(reg, id, on_done, &r), 0);
    tl_wait(loop, &r.done);
    return r;
}

START_TEST(test_registry_versions)
{
    struct result r = list("t/ns/x");
    ck_assert_int_eq(r.status, -MG_ENOTFOUND);
    r = put("t/ns/x", SCH_AVRO, v1, SCH_FULL, SCH_PUT_REGISTER);
    ck_assert_int_eq(r.status, 0);
    ck_assert_int_eq(r.version, 0);
    /* the same schema, spelled differently: found, not stored again */
    r = put("t/ns/x", SCH_AVRO,
            "{ \"namespace\":\"n\", \"name\":\"R\", \"type\":\"record\", \"fields\":[{\"type\":"
            "\"int\",\"name\":\"a\"}] }",
            SCH_FULL, SCH_PUT_REGISTER);
    ck_assert_int_eq(r.status, 0);
    ck_assert_int_eq(r.version, 0);
    r = put("t/ns/x", SCH_AVRO, v2_added_default, SCH_FULL, SCH_PUT_REGISTER);
    ck_assert_int_eq(r.status, 0);
    ck_assert_int_eq(r.version, 1);
    /* refused ones store nothing */
    r = put("t/ns/x", SCH_AVRO, v2_removed, SCH_FULL, SCH_PUT_REGISTER); /* a: no default */
    ck_assert_int_eq(r.status, -MG_EINCOMPATSCHEMA);
    ck_assert_ptr_nonnull(strstr(r.err, "Incompatible schema"));
    r = put("t/ns/x", SCH_AVRO, "{not json", SCH_ALWAYS_COMPATIBLE, SCH_PUT_REGISTER);
    ck_assert_int_eq(r.status, -MG_EINVAL);
    r = put("t/ns/x", SCH_AVRO, v2_added_required, SCH_FULL, SCH_PUT_FIND_ONLY);
    ck_assert_int_eq(r.status, -MG_EINCOMPATSCHEMA);
    ck_assert_str_eq(r.err, "Schema not found and schema auto updating is disabled.");
    /* auto update off still finds a stored one */
    r = put("t/ns/x", SCH_AVRO, v1, SCH_FULL, SCH_PUT_FIND_ONLY);
    ck_assert_int_eq(r.status, 0);
    ck_assert_int_eq(r.version, 0);
    r = list("t/ns/x");
    ck_assert_int_eq(r.status, 0);
    ck_assert_int_eq(r.n, 2);
    ck_assert_int_eq(r.versions[0], 0);
    ck_assert_int_eq(r.versions[1], 1);
    /* another id is another schema */
    ck_assert_int_eq(list("t/ns/y").status, -MG_ENOTFOUND);
}
END_TEST

START_TEST(test_registry_delete)
{
    ck_assert_int_eq(put("t/ns/d", SCH_AVRO, v1, SCH_FULL, SCH_PUT_REGISTER).version, 0);
    struct result r = {0};
    ck_assert_int_eq(sch_delete(reg, "t/ns/d", on_done, &r), 0);
    tl_wait(loop, &r.done);
    ck_assert_int_eq(r.status, 0);
    ck_assert_int_eq(r.version, 1); /* the marker is a version */
    ck_assert_int_eq(list("t/ns/d").status, -MG_ENOTFOUND);
    struct result again = {0};
    ck_assert_int_eq(sch_delete(reg, "t/ns/d", on_done, &again), 0);
    tl_wait(loop, &again.done);
    ck_assert_int_eq(again.status, -MG_ENOTFOUND);
    /* after a delete, any schema is new again (nothing to be compatible with), and the
     * numbering goes on */
    r = put("t/ns/d", SCH_STRING, "", SCH_FULL, SCH_PUT_REGISTER);
    ck_assert_int_eq(r.status, 0);
    ck_assert_int_eq(r.version, 2);
    r = list("t/ns/d");
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(r.versions[0], 2);
    ck_assert_int_eq(r.types[0], SCH_STRING);
}
END_TEST

START_TEST(test_registry_test_only)
{
    ck_assert_int_eq(put("t/ns/c", SCH_AVRO, v1, SCH_FULL, SCH_PUT_REGISTER).version, 0);
    struct sch_schema s;
    sch_schema_init(&s, SCH_AVRO, v2_added_required, strlen(v2_added_required));
    struct result r = {0}, r2 = {0};
    ck_assert_int_eq(sch_test(reg, "t/ns/c", &s, SCH_FULL, on_done, &r), 0);
    ck_assert_int_eq(sch_test(reg, "t/ns/c", &s, SCH_FORWARD, on_done, &r2), 0);
    sch_schema_fini(&s);
    tl_wait(loop, &r.done);
    tl_wait(loop, &r2.done);
    ck_assert_int_eq(r.status, -MG_EINCOMPATSCHEMA);
    ck_assert_int_eq(r2.status, 0);
    ck_assert_int_eq(list("t/ns/c").n, 1); /* nothing stored */
}
END_TEST

/* Puts racing on one id (a partitioned topic's producers registering at once): the loser of
 * the create reads again and finds the winner's equal version, or stores after it. */
START_TEST(test_registry_racing_puts)
{
    struct result r[4] = {{0}};
    const char *defs[4] = {v1, v1, v1, v2_added_default};
    for (int i = 0; i < 4; i++) {
        struct sch_schema s;
        sch_schema_init(&s, SCH_AVRO, defs[i], strlen(defs[i]));
        ck_assert_int_eq(sch_put(reg, "t/ns/race", &s, SCH_FULL, SCH_PUT_REGISTER, on_done, &r[i]),
                         0);
        sch_schema_fini(&s);
    }
    for (int i = 0; i < 4; i++) {
        tl_wait(loop, &r[i].done);
        ck_assert_int_eq(r[i].status, 0);
        ck_assert_int_eq(r[i].version, i < 3 ? 0 : 1);
    }
    struct result l = list("t/ns/race");
    ck_assert_int_eq(l.n, 2);
}
END_TEST

START_TEST(test_registry_free_cancels)
{
    struct result r = {0};
    struct sch_schema s;
    sch_schema_init(&s, SCH_AVRO, v1, strlen(v1));
    ck_assert_int_eq(sch_put(reg, "t/ns/z", &s, SCH_FULL, SCH_PUT_REGISTER, on_done, &r), 0);
    sch_schema_fini(&s);
    sch_registry_free(reg);
    reg = NULL;
    ck_assert(r.done);
    ck_assert_int_eq(r.status, -MG_ECANCELED);
    tl_run_for(loop, 20); /* the store's answer arrives and only frees the operation */
}
END_TEST

/* ---- a broker and the project's client ------------------------------------------------- */

static struct tl_svc sf;
static struct client *cli;
static struct tl_http_reply hr;

static void svc_setup(void)
{
    tl_svc_init(&sf);
    tl_svc_meta(&sf, 0);
    struct svc *s = tl_svc_start(&sf, 0);
    char url[64], err[200];
    snprintf(url, sizeof url, "pulsar://127.0.0.1:%d", svc_broker_port(s));
    struct client_opts o = {.service_url = url, .operation_timeout_ms = 10000};
    ck_assert_int_eq(client_new(sf.base, &o, &cli, err, sizeof err), 0);
}

static void svc_teardown(void)
{
    client_free(cli);
    cli = NULL;
    tl_http_reply_free(&hr);
    tl_svc_fini(&sf);
}

static int http(enum evhttp_cmd_type m, const char *path, const char *body)
{
    return tl_svc_http(&sf, 0, m, path, NULL, body, &hr);
}

/* POST a PostSchemaPayload {"type","schema"} to path: the status. */
static int post_schema(const char *path, const char *type, const char *def)
{
    json_t *j = json_pack("{s:s,s:s}", "type", type, "schema", def);
    char *body = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    int st = http(EVHTTP_REQ_POST, path, body);
    free(body);
    return st;
}

struct ready {
    bool done;
    int status;
    char msg[400];
};

static void on_pready(struct client_producer *p, int status, const char *msg, void *data)
{
    struct ready *r = data;
    (void)p;
    r->done = true;
    r->status = status;
    snprintf(r->msg, sizeof r->msg, "%s", msg ? msg : "");
}

/* A producer on topic with an AVRO schema (def NULL: none): its schema version (>= 0), -1
 * when it has none, or its creation's error (< -1, the message in r). The producer is kept in
 * *out (NULL: freed). */
static int64_t avro_producer(const char *topic, const char *def, struct ready *r,
                             struct client_producer **out)
{
    struct client_schema sc = {.type = 4 /* Avro */, .data = def, .len = def ? strlen(def) : 0};
    struct client_producer_opts po = {.topic = topic, .schema = def ? &sc : NULL};
    struct client_producer *p = NULL;
    memset(r, 0, sizeof *r);
    ck_assert_int_eq(client_producer_new(cli, &po, on_pready, r, &p), 0);
    tl_wait(sf.loop, &r->done);
    int64_t v =
        r->status < 0 ? (r->status == -1 ? -2 : r->status) : client_producer_schema_version(p);
    if (out)
        *out = p;
    else
        client_producer_free(p);
    return v;
}

/* Pulsar's strategy families: a first version, an evolution the strategy accepts, one it
 * refuses (NULL: it refuses nothing). Base {a:int, b:int}. */
#define S_BASE REC(F("a", "\"int\"") "," F("b", "\"int\""))
#define S_ADD_DEFAULT REC(F("a", "\"int\"") "," F("b", "\"int\"") "," FD("c", "\"int\"", "0"))
#define S_ADD_REQUIRED REC(F("a", "\"int\"") "," F("b", "\"int\"") "," F("c", "\"int\""))
#define S_DROP_A REC(F("b", "\"int\""))
#define S_A_STRING REC(F("a", "\"string\"") "," F("b", "\"int\""))
static const struct {
    const char *strategy;
    const char *ok, *bad;
} families[] = {
    {"BACKWARD", S_DROP_A, S_ADD_REQUIRED},  {"BACKWARD_TRANSITIVE", S_ADD_DEFAULT, S_ADD_REQUIRED},
    {"FORWARD", S_ADD_REQUIRED, S_DROP_A},   {"FORWARD_TRANSITIVE", S_ADD_REQUIRED, S_DROP_A},
    {"FULL", S_ADD_DEFAULT, S_DROP_A},       {"FULL_TRANSITIVE", S_ADD_DEFAULT, S_DROP_A},
    {"ALWAYS_COMPATIBLE", S_A_STRING, NULL}, {"ALWAYS_INCOMPATIBLE", NULL, S_ADD_DEFAULT},
};

START_TEST(test_svc_strategy_families)
{
    char body[64], topic[64];
    snprintf(body, sizeof body, "\"%s\"", families[_i].strategy);
    ck_assert_int_eq(http(EVHTTP_REQ_POST,
                          "/admin/v2/namespaces/public/default/schemaCompatibilityStrategy", body),
                     204);
    ck_assert_int_eq(http(EVHTTP_REQ_GET,
                          "/admin/v2/namespaces/public/default/schemaCompatibilityStrategy", NULL),
                     200);
    ck_assert_str_eq(hr.body, body);
    snprintf(topic, sizeof topic, "persistent://public/default/fam-%d", _i);
    struct ready r;
    ck_assert_int_eq(avro_producer(topic, S_BASE, &r, NULL), 0); /* registered */
    ck_assert_int_eq(avro_producer(topic, S_BASE, &r, NULL), 0); /* found again */
    int64_t next = 1;
    if (families[_i].ok) {
        ck_assert_msg(avro_producer(topic, families[_i].ok, &r, NULL) == next, "%s: ok refused: %s",
                      families[_i].strategy, r.msg);
        next++;
    }
    if (families[_i].bad) {
        ck_assert_int_eq(avro_producer(topic, families[_i].bad, &r, NULL), -MG_EINCOMPATSCHEMA);
        ck_assert_msg(strstr(r.msg, "ncompatible"), "%s: %s", families[_i].strategy, r.msg);
    }
    /* what was stored: exactly the accepted versions */
    char path[128];
    snprintf(path, sizeof path, "/admin/v2/schemas/public/default/fam-%d/schemas", _i);
    ck_assert_int_eq(http(EVHTTP_REQ_GET, path, NULL), 200);
    json_t *j = json_loads(hr.body, 0, NULL);
    ck_assert_int_eq(json_array_size(json_object_get(j, "getSchemaResponses")), next);
    json_decref(j);
}
END_TEST

START_TEST(test_svc_admin)
{
    const char *P = "/admin/v2/schemas/public/default/adm";
    char path[160];
    snprintf(path, sizeof path, "%s/schema", P);
    ck_assert_int_eq(http(EVHTTP_REQ_GET, path, NULL), 404);
    ck_assert_str_eq(hr.body, "");
    json_t *payload =
        json_pack("{s:s,s:s,s:{s:s}}", "type", "AVRO", "schema", S_BASE, "properties", "k", "v");
    char *body = json_dumps(payload, JSON_COMPACT);
    ck_assert_int_eq(http(EVHTTP_REQ_POST, path, body), 202);
    ck_assert_str_eq(hr.body, "{\"version\":{\"version\":0}}");
    free(body);
    json_decref(payload);
    ck_assert_int_eq(http(EVHTTP_REQ_GET, path, NULL), 200);
    json_t *g = json_loads(hr.body, 0, NULL);
    ck_assert_int_eq(json_integer_value(json_object_get(g, "version")), 0);
    ck_assert_str_eq(json_string_value(json_object_get(g, "type")), "AVRO");
    ck_assert_str_eq(json_string_value(json_object_get(g, "data")), S_BASE);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(g, "properties"), "k")),
                     "v");
    ck_assert_int_gt(json_integer_value(json_object_get(g, "timestamp")), 0);
    json_decref(g);
    /* the client's producer finds the admin's version (properties differ: k=v is not sent) */
    struct ready r;
    ck_assert_int_eq(avro_producer("persistent://public/default/adm", S_ADD_DEFAULT, &r, NULL), 1);

    /* versions: one that exists, ones that do not (Pulsar: 404, empty) */
    snprintf(path, sizeof path, "%s/schema/0", P);
    ck_assert_int_eq(http(EVHTTP_REQ_GET, path, NULL), 200);
    snprintf(path, sizeof path, "%s/schema/7", P);
    ck_assert_int_eq(http(EVHTTP_REQ_GET, path, NULL), 404);
    ck_assert_str_eq(hr.body, "");
    snprintf(path, sizeof path, "%s/schema/x1", P);
    ck_assert_int_eq(http(EVHTTP_REQ_GET, path, NULL), 400);

    /* compatibility: tested, not stored */
    snprintf(path, sizeof path, "%s/compatibility", P);
    ck_assert_int_eq(post_schema(path, "AVRO", S_DROP_A), 202);
    ck_assert_str_eq(hr.body, "{\"compatibility\":false,\"schemaCompatibilityStrategy\":\"FULL\"}");
    snprintf(path, sizeof path, "%s/schema", P);
    ck_assert_int_eq(post_schema(path, "AVRO", S_DROP_A), 409);
    snprintf(path, sizeof path, "%s/version", P);
    ck_assert_int_eq(post_schema(path, "AVRO", S_ADD_DEFAULT), 202);
    ck_assert_str_eq(hr.body, "{\"version\":1}");
    ck_assert_int_eq(post_schema(path, "AVRO", S_DROP_A), 202);
    ck_assert_str_eq(hr.body, "{\"version\":-1}");
    snprintf(path, sizeof path, "%s/schema", P);

    /* bad input: stores nothing */
    ck_assert_int_eq(http(EVHTTP_REQ_POST, path, "{\"type\":\"AVRO\",\"schema\":\"{not json\"}"),
                     422);
    ck_assert_ptr_nonnull(strstr(hr.body, "Invalid schema definition"));
    ck_assert_int_eq(
        http(EVHTTP_REQ_POST, path, "{\"type\":\"AVRO\",\"schema\":\"\\\"integer\\\"\"}"), 422);
    ck_assert_int_eq(http(EVHTTP_REQ_POST, path, "not json"), 400);
    ck_assert_int_eq(http(EVHTTP_REQ_POST, path, "{\"type\":\"NOPE\",\"schema\":\"\"}"), 400);
    size_t big_n = SCH_MAX_DATA_BYTES + 100;
    char *big = mg_malloc(big_n + 64);
    int n = snprintf(big, 64, "{\"type\":\"STRING\",\"schema\":\"");
    memset(big + n, 'x', big_n);
    strcpy(big + n + big_n, "\"}");
    ck_assert_int_eq(http(EVHTTP_REQ_POST, path, big), 422);
    ck_assert_ptr_nonnull(strstr(hr.body, "over the limit"));
    mg_free(big);
    /* a definition of megabytes through the protocol (the admin server's body limit, 1 MiB,
     * refuses it before the registry): refused with the reason, nothing stored, the
     * connection goes on */
    big_n = 4 * 1024 * 1024;
    big = mg_malloc(big_n + 1);
    memset(big, ' ', big_n);
    big[big_n] = '\0';
    int64_t got = avro_producer("persistent://public/default/adm", big, &r, NULL);
    ck_assert_msg(got == -MG_EINCOMPATSCHEMA, "%d: %s", (int)got, r.msg);
    ck_assert_ptr_nonnull(strstr(r.msg, "over the limit"));
    mg_free(big);
    snprintf(path, sizeof path, "%s/schemas", P);
    ck_assert_int_eq(http(EVHTTP_REQ_GET, path, NULL), 200);
    json_t *all = json_loads(hr.body, 0, NULL);
    ck_assert_int_eq(json_array_size(json_object_get(all, "getSchemaResponses")), 2);
    json_decref(all);

    /* delete: a marker version; the schema is gone, numbering goes on */
    snprintf(path, sizeof path, "%s/schema", P);
    ck_assert_int_eq(http(EVHTTP_REQ_DELETE, path, NULL), 200);
    ck_assert_str_eq(hr.body, "{\"version\":2}");
    ck_assert_int_eq(http(EVHTTP_REQ_GET, path, NULL), 404);
    ck_assert_int_eq(http(EVHTTP_REQ_DELETE, path, NULL), 404);
    snprintf(path, sizeof path, "%s/schemas", P);
    ck_assert_int_eq(http(EVHTTP_REQ_GET, path, NULL), 200);
    ck_assert_str_eq(hr.body, "{\"getSchemaResponses\":[]}");
    ck_assert_int_eq(avro_producer("persistent://public/default/adm", S_A_STRING, &r, NULL), 3);
}
END_TEST

START_TEST(test_svc_auto_update_off)
{
    const char *topic = "persistent://public/default/frozen";
    struct ready r;
    ck_assert_int_eq(avro_producer(topic, S_BASE, &r, NULL), 0);
    const char *au = "/admin/v2/namespaces/public/default/isAllowAutoUpdateSchema";
    ck_assert_int_eq(http(EVHTTP_REQ_GET, au, NULL), 200);
    ck_assert_str_eq(hr.body, "true");
    ck_assert_int_eq(http(EVHTTP_REQ_POST, au, "false"), 204);
    ck_assert_int_eq(http(EVHTTP_REQ_GET, au, NULL), 200);
    ck_assert_str_eq(hr.body, "false");
    /* compatible, but not stored: refused */
    ck_assert_int_eq(avro_producer(topic, S_ADD_DEFAULT, &r, NULL), -MG_EINCOMPATSCHEMA);
    ck_assert_ptr_nonnull(strstr(r.msg, "Schema not found and schema auto updating is disabled."));
    ck_assert_int_eq(avro_producer(topic, S_BASE, &r, NULL), 0);
    /* the admin API is not bound by it */
    ck_assert_int_eq(
        post_schema("/admin/v2/schemas/public/default/frozen/schema", "AVRO", S_ADD_DEFAULT), 202);
    ck_assert_int_eq(avro_producer(topic, S_ADD_DEFAULT, &r, NULL), 1);
    /* a producer without a schema on a topic with one */
    ck_assert_int_eq(avro_producer(topic, NULL, &r, NULL), -MG_EINCOMPATSCHEMA);
    ck_assert_ptr_nonnull(strstr(r.msg, "without a schema"));
    ck_assert_int_eq(avro_producer("persistent://public/default/untyped", NULL, &r, NULL), -1);
}
END_TEST

struct got {
    struct ready r; /* the consumer's creation */
    int n;
    int64_t schema_version;
};

static void on_cready(struct client_consumer *c, int status, const char *msg, void *data)
{
    struct got *g = data;
    (void)c;
    on_pready(NULL, status, msg, &g->r);
}

static void on_msg(struct client_consumer *c, const struct client_message *m, void *data)
{
    struct got *g = data;
    (void)c;
    g->n++;
    g->schema_version = m->schema_version;
}

static int consumer(const char *topic, const char *sub, const char *def, struct got *g,
                    struct client_consumer **out)
{
    struct client_schema sc = {.type = 4, .data = def, .len = def ? strlen(def) : 0};
    struct client_consumer_opts co = {.topic = topic,
                                      .subscription = sub,
                                      .initial_position = CLIENT_POS_EARLIEST,
                                      .schema = def ? &sc : NULL};
    ck_assert_int_eq(client_consumer_new(cli, &co, on_msg, on_cready, g, out), 0);
    tl_wait(sf.loop, &g->r.done);
    return g->r.status;
}

static void on_sent(struct client_producer *p, const struct client_send_result *r, void *data)
{
    (void)p;
    ck_assert_int_eq(r->status, 0);
    (*(int *)data)++;
}

START_TEST(test_svc_consumer_and_message_version)
{
    const char *topic = "persistent://public/default/typed-msgs";
    struct ready r;
    struct client_producer *p0, *p1;
    ck_assert_int_eq(avro_producer(topic, S_BASE, &r, &p0), 0);
    ck_assert_int_eq(avro_producer(topic, S_ADD_DEFAULT, &r, &p1), 1);
    struct got g = {0};
    struct client_consumer *c = NULL, *bad = NULL;
    /* a reader of the latest: {a, b, c=0} reads v1; {a:string} cannot */
    ck_assert_int_eq(consumer(topic, "good", S_ADD_DEFAULT, &g, &c), 0);
    struct got gb = {0};
    ck_assert_int_eq(consumer(topic, "bad", S_A_STRING, &gb, &bad), -MG_EINCOMPATSCHEMA);
    client_consumer_free(bad);
    int sent = 0;
    ck_assert_int_eq(client_producer_send(p1, "x", 1, on_sent, &sent), 0);
    client_producer_flush(p1);
    tl_until_count(sf.loop, &g.n, 1, tl_wait_ms(sf.loop));
    ck_assert_int_eq(g.n, 1);
    ck_assert_int_eq(g.schema_version, 1); /* the producer's version, as it sent it */
    ck_assert_int_eq(client_producer_send(p0, "y", 1, on_sent, &sent), 0);
    client_producer_flush(p0);
    tl_until_count(sf.loop, &g.n, 2, tl_wait_ms(sf.loop));
    ck_assert_int_eq(g.schema_version, 0);
    client_consumer_free(c);
    client_producer_free(p0);
    client_producer_free(p1);
}
END_TEST

int main(void)
{
    /* the admin server closes a connection whose body is over its limit while it is sent */
    signal(SIGPIPE, SIG_IGN);
    Suite *s = suite_create("schema");
    TCase *tc = tl_tcase(s, "avro", 0, NULL, NULL);
    tl_add(tc, test_avro_rules, test_avro_invalid, test_validate_other_types, test_version_bytes,
           test_schema_id, test_strategies_transitive, test_type_change_and_others, test_same);
    tcase_add_loop_test(tc, test_validate_sizes_and_types, 0, 2); /* Avro, STRING (5 MiB) */
    tcase_add_loop_test(tc, test_strategies, 0, 2);               /* AVRO, JSON */
    tc = tl_tcase(s, "registry", 0, reg_setup, reg_teardown);
    tl_add(tc, test_registry_versions, test_registry_delete, test_registry_test_only,
           test_registry_racing_puts, test_registry_free_cancels);
    tc = tl_tcase(s, "svc", 60, svc_setup, svc_teardown);
    tcase_add_loop_test(tc, test_svc_strategy_families, 0,
                        (int)(sizeof families / sizeof *families));
    tl_add(tc, test_svc_admin, test_svc_auto_update_off, test_svc_consumer_and_message_version);
    return tl_run(s);
}
