/*
 * check_schema.c - the schema module: Avro's resolution rules as a table (reader, writer,
 * expected), validation of definitions, the strategies' decisions, the 8-byte version, and
 * the registry over the in-memory metadata store (versions, equal schemas found, delete
 * markers, refusals storing nothing).
 */
#include "lib/tl.h"
#include "meta/meta.h"
#include "schema/sch_int.h"
#include "schema/schema.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/loop.h"

#include <check.h>
#include <event2/event.h>
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
    size_t big = SCH_MAX_DATA_BYTES + 1 + (size_t)_i * 1024 * 1024;
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
    char *id = sch_id_of_topic("persistent://t/ns/orders-partition-3");
    ck_assert_str_eq(id, "t/ns/orders");
    mg_free(id);
    id = sch_id_of_topic("non-persistent://t/ns/orders");
    ck_assert_str_eq(id, "t/ns/orders");
    mg_free(id);
    id = sch_id_of_topic("orders");
    ck_assert_str_eq(id, "public/default/orders");
    mg_free(id);
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

int main(void)
{
    Suite *s = suite_create("schema");
    TCase *tc = tl_tcase(s, "avro", 0, NULL, NULL);
    tl_add(tc, test_avro_rules, test_avro_invalid, test_validate_other_types, test_version_bytes,
           test_schema_id, test_strategies_transitive, test_type_change_and_others, test_same);
    tcase_add_loop_test(tc, test_validate_sizes_and_types, 0, 2); /* Avro, STRING (+1 MiB) */
    tcase_add_loop_test(tc, test_strategies, 0, 2);               /* AVRO, JSON */
    tc = tl_tcase(s, "registry", 0, reg_setup, reg_teardown);
    tl_add(tc, test_registry_versions, test_registry_delete, test_registry_test_only,
           test_registry_free_cancels);
    return tl_run(s);
}
