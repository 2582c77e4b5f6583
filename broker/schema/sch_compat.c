/*
 * sch_compat.c - what a schema is and when a new one may follow the stored ones: types and
 * strategies by name, validation of a definition, equality, and the compatibility checks of
 * each strategy (Pulsar's SchemaRegistryServiceImpl and its checkers).
 *
 * Happy path: sch_validate parses what its type defines (Avro JSON for AVRO and JSON, the
 * descriptor JSON of PROTOBUF_NATIVE, the two parts of KEY_VALUE); sch_check applies the
 * strategy: ALWAYS_COMPATIBLE passes, ALWAYS_INCOMPATIBLE refuses once a schema exists, a
 * type change is refused, then the type's checker runs against the latest version (or every
 * version for the _TRANSITIVE strategies).
 *
 * Failure modes: everything is reported through the return code and err (no logging here:
 * the caller decides, once, where the outcome goes).
 */
#include "schema/sch_int.h"
#include "topic/topic.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/url.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const sch_type_names[SCH_TYPE_COUNT] = {
    [SCH_NONE] = "NONE",
    [SCH_STRING] = "STRING",
    [SCH_JSON] = "JSON",
    [SCH_PROTOBUF] = "PROTOBUF",
    [SCH_AVRO] = "AVRO",
    [SCH_BOOLEAN] = "BOOLEAN",
    [SCH_INT8] = "INT8",
    [SCH_INT16] = "INT16",
    [SCH_INT32] = "INT32",
    [SCH_INT64] = "INT64",
    [SCH_FLOAT] = "FLOAT",
    [SCH_DOUBLE] = "DOUBLE",
    [SCH_DATE] = "DATE",
    [SCH_TIME] = "TIME",
    [SCH_TIMESTAMP] = "TIMESTAMP",
    [SCH_KEY_VALUE] = "KEY_VALUE",
    [SCH_INSTANT] = "INSTANT",
    [SCH_LOCAL_DATE] = "LOCAL_DATE",
    [SCH_LOCAL_TIME] = "LOCAL_TIME",
    [SCH_LOCAL_DATE_TIME] = "LOCAL_DATE_TIME",
    [SCH_PROTOBUF_NATIVE] = "PROTOBUF_NATIVE",
    [SCH_AUTO_CONSUME] = "AUTO_CONSUME",
    [SCH_EXTERNAL] = "EXTERNAL",
};

const char *sch_type_name(enum sch_type t)
{
    return (unsigned)t < SCH_TYPE_COUNT ? sch_type_names[t] : "NONE";
}

/* The index of name in names[0..n) (case-insensitive with icase), or -MG_EINVAL. */
static int sch_name_find(const char *const *names, int n, const char *name, bool icase)
{
    for (int i = 0; name && i < n; i++)
        if ((icase ? strcasecmp(name, names[i]) : strcmp(name, names[i])) == 0)
            return i;
    return -MG_EINVAL;
}

int sch_type_parse(const char *name)
{
    if (name && strcasecmp(name, "BYTES") == 0)
        return SCH_NONE;
    return sch_name_find(sch_type_names, SCH_TYPE_COUNT, name, true);
}

static const char *const sch_strategy_names[SCH_STRATEGY_COUNT] = {
    [SCH_UNDEFINED] = "UNDEFINED",
    [SCH_ALWAYS_INCOMPATIBLE] = "ALWAYS_INCOMPATIBLE",
    [SCH_ALWAYS_COMPATIBLE] = "ALWAYS_COMPATIBLE",
    [SCH_BACKWARD] = "BACKWARD",
    [SCH_FORWARD] = "FORWARD",
    [SCH_FULL] = "FULL",
    [SCH_BACKWARD_TRANSITIVE] = "BACKWARD_TRANSITIVE",
    [SCH_FORWARD_TRANSITIVE] = "FORWARD_TRANSITIVE",
    [SCH_FULL_TRANSITIVE] = "FULL_TRANSITIVE",
};

const char *sch_strategy_name(enum sch_strategy s)
{
    return (unsigned)s < SCH_STRATEGY_COUNT ? sch_strategy_names[s] : "UNDEFINED";
}

int sch_strategy_parse(const char *name)
{
    return sch_name_find(sch_strategy_names, SCH_STRATEGY_COUNT, name, false);
}

void sch_schema_init(struct sch_schema *s, enum sch_type type, const void *data, size_t len)
{
    *s = (struct sch_schema){.type = type, .len = len};
    if (len) {
        s->data = mg_malloc(len);
        memcpy(s->data, data, len);
    }
}

void sch_schema_add_prop(struct sch_schema *s, const char *key, const char *value)
{
    s->props = mg_realloc(s->props, (s->n_props + 1) * sizeof *s->props);
    s->props[s->n_props++] = (struct sch_prop){mg_strdup(key), mg_strdup(value ? value : "")};
}

void sch_schema_fini(struct sch_schema *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_props; i++) {
        mg_free(s->props[i].key);
        mg_free(s->props[i].value);
    }
    mg_free(s->props);
    mg_free(s->data);
    *s = (struct sch_schema){0};
}

static const char *sch_prop(const struct sch_schema *s, const char *key)
{
    for (size_t i = 0; i < s->n_props; i++)
        if (strcmp(s->props[i].key, key) == 0)
            return s->props[i].value;
    return NULL;
}

void sch_version_put(int64_t v, uint8_t out[8])
{
    uint64_t u = (uint64_t)v;
    for (int i = 7; i >= 0; i--, u >>= 8)
        out[i] = (uint8_t)u;
}

int64_t sch_version_get(const uint8_t *p, size_t len)
{
    if (len != 8 || !p)
        return -1;
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u = u << 8 | p[i];
    return (int64_t)u;
}

char *sch_id_of_topic(const char *topic)
{
    struct topic_name tn, base;
    if (topic_name_parse(topic, &tn) < 0)
        return NULL;
    /* the partitioned base's local name, URL-encoded as in every metadata path */
    int rc = topic_name_parse(tn.base, &base);
    topic_name_fini(&tn);
    if (rc < 0)
        return NULL;
    char *enc = mg_url_encode(base.local);
    char *id = mg_asprintf("%s/%s/%s", base.tenant, base.ns, enc);
    mg_free(enc);
    topic_name_fini(&base);
    return id;
}

/* ---- definitions ------------------------------------------------------------------------ */

/* The legacy form of a JSON schema (Jackson's JsonSchema: {"type":"object","properties"...}),
 * which Pulsar still accepts. */
static bool sch_is_legacy_json(const struct sch_schema *s)
{
    json_t *j = json_loadb((const char *)s->data, s->len, 0, NULL);
    const char *type = json_string_value(json_object_get(j, "type"));
    bool legacy = type && strcmp(type, "object") == 0;
    json_decref(j);
    return legacy;
}

static bool sch_is_avro_style(enum sch_type t)
{
    return t == SCH_AVRO || t == SCH_JSON;
}

/* KEY_VALUE's definition: [int32 BE len][key schema][int32 BE len][value schema]; a part's
 * type comes from the properties key.schema.type / value.schema.type. */
static int sch_kv_split(const struct sch_schema *s, struct sch_schema *k, struct sch_schema *v)
{
    size_t off = 0;
    struct sch_schema *parts[2] = {k, v};
    static const char *const type_keys[2] = {"key.schema.type", "value.schema.type"};
    for (int i = 0; i < 2; i++) {
        if (s->len - off < 4)
            return -MG_EINVAL;
        const uint8_t *p = s->data + off;
        int32_t n =
            (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
        off += 4;
        if (n < 0)
            n = 0; /* -1: no schema for that part */
        if ((size_t)n > s->len - off)
            return -MG_EINVAL;
        int t = sch_type_parse(sch_prop(s, type_keys[i]));
        sch_schema_init(parts[i], t < 0 ? SCH_NONE : (enum sch_type)t, s->data + off, (size_t)n);
        off += (size_t)n;
    }
    return off == s->len ? 0 : -MG_EINVAL;
}

int sch_validate(const struct sch_schema *s, char *err, size_t errlen)
{
    if (s->len > SCH_MAX_DATA_BYTES) {
        mg_set_err(err, errlen, "Invalid schema definition: %zu bytes, over the limit of %d",
                   s->len, SCH_MAX_DATA_BYTES);
        return -MG_ETOOBIG;
    }
    char why[256] = "";
    switch (s->type) {
    case SCH_AVRO:
    case SCH_JSON:
    case SCH_PROTOBUF: {
        struct av_schema *a = NULL;
        if (s->type == SCH_JSON && s->len && sch_is_legacy_json(s))
            return 0;
        if (sch_avro_parse((const char *)s->data, s->len, &a, why, sizeof why) < 0) {
            mg_set_err(err, errlen, "Invalid schema definition data for %s schema: %s",
                       sch_type_name(s->type), why);
            return -MG_EINVAL;
        }
        sch_avro_free(a);
        return 0;
    }
    case SCH_PROTOBUF_NATIVE: {
        json_t *j = json_loadb((const char *)s->data, s->len, 0, NULL);
        bool ok = json_is_string(json_object_get(j, "rootMessageTypeName")) &&
                  json_is_string(json_object_get(j, "fileDescriptorSet"));
        json_decref(j);
        if (!ok) {
            mg_set_err(err, errlen,
                       "Invalid schema definition data for PROTOBUF_NATIVE schema: a JSON object "
                       "with fileDescriptorSet and rootMessageTypeName is required");
            return -MG_EINVAL;
        }
        return 0;
    }
    case SCH_KEY_VALUE: {
        struct sch_schema k, v;
        memset(&k, 0, sizeof k);
        memset(&v, 0, sizeof v);
        int rc = sch_kv_split(s, &k, &v);
        if (rc < 0)
            mg_set_err(err, errlen, "Invalid schema definition data for KEY_VALUE schema");
        else if ((rc = sch_validate(&k, err, errlen)) == 0)
            rc = sch_validate(&v, err, errlen);
        sch_schema_fini(&k);
        sch_schema_fini(&v);
        return rc;
    }
    default:
        return 0;
    }
}

static bool sch_props_same(const struct sch_schema *a, const struct sch_schema *b)
{
    if (a->n_props != b->n_props)
        return false;
    for (size_t i = 0; i < a->n_props; i++) {
        const char *v = sch_prop(b, a->props[i].key);
        if (!v || strcmp(v, a->props[i].value) != 0)
            return false;
    }
    return true;
}

bool sch_same(const struct sch_schema *a, const struct sch_schema *b)
{
    if (a->type != b->type || a->deleted || b->deleted || !sch_props_same(a, b))
        return false;
    if (a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0))
        return true;
    if (!sch_is_avro_style(a->type))
        return false;
    json_t *ja = json_loadb((const char *)a->data, a->len, 0, NULL);
    json_t *jb = json_loadb((const char *)b->data, b->len, 0, NULL);
    bool same = ja && jb && json_equal(ja, jb);
    json_decref(ja);
    json_decref(jb);
    return same;
}

/* ---- checks ----------------------------------------------------------------------------- */

enum sch_direction {
    SCH_DIR_BACKWARD = 1, /* the new schema reads what the old one wrote */
    SCH_DIR_FORWARD = 2,  /* the old schema reads what the new one writes */
    SCH_DIR_FULL = 3,
};

static enum sch_direction sch_strategy_direction(enum sch_strategy s)
{
    switch (s) {
    case SCH_BACKWARD:
    case SCH_BACKWARD_TRANSITIVE:
        return SCH_DIR_BACKWARD;
    case SCH_FORWARD:
    case SCH_FORWARD_TRANSITIVE:
        return SCH_DIR_FORWARD;
    default:
        return SCH_DIR_FULL;
    }
}

/* Avro resolution of the new schema n (parsed: nt, or NULL to parse it here) against old. */
static int sch_check_avro(enum sch_direction dir, const struct sch_schema *n,
                          const struct av_schema *nt, const struct sch_schema *old, char *err,
                          size_t errlen)
{
    bool legacy_new = n->type == SCH_JSON && sch_is_legacy_json(n);
    bool legacy_old = old->type == SCH_JSON && sch_is_legacy_json(old);
    if (legacy_old && !legacy_new)
        return 0; /* the upgrade from a legacy JSON schema to an Avro-defined one */
    if (legacy_new) {
        if (legacy_old && sch_same(n, old))
            return 0;
        mg_set_err(err, errlen, "Incompatible schema: a legacy JSON schema cannot follow %s",
                   legacy_old ? "a different one" : "an Avro-defined one");
        return -MG_EINCOMPATSCHEMA;
    }
    char why[300] = "";
    struct av_schema *own = NULL, *ot = NULL;
    if ((!nt && sch_avro_parse((const char *)n->data, n->len, &own, why, sizeof why) < 0) ||
        sch_avro_parse((const char *)old->data, old->len, &ot, why, sizeof why) < 0) {
        sch_avro_free(own);
        mg_set_err(err, errlen, "Invalid schema definition: %s", why);
        return -MG_EINVAL;
    }
    if (!nt)
        nt = own;
    const char *what = NULL;
    if ((dir & SCH_DIR_BACKWARD) && !sch_avro_resolve(nt, ot, why, sizeof why))
        what = "the new schema cannot read data written with an existing one";
    else if ((dir & SCH_DIR_FORWARD) && !sch_avro_resolve(ot, nt, why, sizeof why))
        what = "an existing schema cannot read data written with the new one";
    sch_avro_free(own);
    sch_avro_free(ot);
    if (!what)
        return 0;
    mg_set_err(err, errlen, "Incompatible schema: %s: %s", what, why);
    return -MG_EINCOMPATSCHEMA;
}

static const char *sch_pb_root(const struct sch_schema *s, char *buf, size_t len)
{
    json_t *j = json_loadb((const char *)s->data, s->len, 0, NULL);
    const char *root = json_string_value(json_object_get(j, "rootMessageTypeName"));
    snprintf(buf, len, "%s", root ? root : "");
    json_decref(j);
    return buf;
}

static int sch_check_one(enum sch_strategy strategy, const struct sch_schema *n,
                         const struct av_schema *nt, const struct sch_schema *old, char *err,
                         size_t errlen);

static int sch_check_kv(enum sch_strategy strategy, const struct sch_schema *n,
                        const struct sch_schema *old, char *err, size_t errlen)
{
    struct sch_schema nk, nv, ok, ov;
    memset(&nk, 0, sizeof nk);
    memset(&nv, 0, sizeof nv);
    memset(&ok, 0, sizeof ok);
    memset(&ov, 0, sizeof ov);
    int rc = sch_kv_split(n, &nk, &nv) < 0 || sch_kv_split(old, &ok, &ov) < 0 ? -MG_EINVAL : 0;
    if (rc < 0)
        mg_set_err(err, errlen, "Invalid schema definition data for KEY_VALUE schema");
    if (rc == 0 && (nk.type != ok.type || nv.type != ov.type)) {
        mg_set_err(err, errlen, "Incompatible schema: the key or value type of KEY_VALUE changed");
        rc = -MG_EINCOMPATSCHEMA;
    }
    if (rc == 0)
        rc = sch_check_one(strategy, &nk, NULL, &ok, err, errlen);
    if (rc == 0)
        rc = sch_check_one(strategy, &nv, NULL, &ov, err, errlen);
    sch_schema_fini(&nk);
    sch_schema_fini(&nv);
    sch_schema_fini(&ok);
    sch_schema_fini(&ov);
    return rc;
}

/* The type's checker, one existing version (same type); nt: n parsed as Avro, or NULL. */
static int sch_check_one(enum sch_strategy strategy, const struct sch_schema *n,
                         const struct av_schema *nt, const struct sch_schema *old, char *err,
                         size_t errlen)
{
    switch (n->type) {
    case SCH_AVRO:
    case SCH_JSON:
        return sch_check_avro(sch_strategy_direction(strategy), n, nt, old, err, errlen);
    case SCH_PROTOBUF_NATIVE: {
        char a[256], b[256];
        if (strcmp(sch_pb_root(n, a, sizeof a), sch_pb_root(old, b, sizeof b)) == 0)
            return 0;
        mg_set_err(err, errlen,
                   "Incompatible schema: the root message changed from \"%s\" to \"%s\"", b, a);
        return -MG_EINCOMPATSCHEMA;
    }
    case SCH_KEY_VALUE:
        return sch_check_kv(strategy, n, old, err, errlen);
    default:
        return 0; /* Pulsar's default checker: only ALWAYS_INCOMPATIBLE refuses */
    }
}

int sch_check(enum sch_strategy strategy, const struct sch_schema *n,
              const struct sch_schema *existing, size_t count, char *err, size_t errlen)
{
    if (count == 0 || strategy == SCH_ALWAYS_COMPATIBLE)
        return 0;
    if (strategy == SCH_ALWAYS_INCOMPATIBLE) {
        mg_set_err(err, errlen,
                   "Incompatible schema: the schema compatibility strategy is "
                   "ALWAYS_INCOMPATIBLE");
        return -MG_EINCOMPATSCHEMA;
    }
    const struct sch_schema *latest = &existing[count - 1];
    if (latest->type != n->type) {
        mg_set_err(err, errlen, "Incompatible schema: exists schema type %s, new schema type %s",
                   sch_type_name(latest->type), sch_type_name(n->type));
        return -MG_EINCOMPATSCHEMA;
    }
    bool transitive = strategy == SCH_BACKWARD_TRANSITIVE || strategy == SCH_FORWARD_TRANSITIVE ||
                      strategy == SCH_FULL_TRANSITIVE;
    /* the new schema parsed once for every version it is checked against */
    struct av_schema *nt = NULL;
    if (sch_is_avro_style(n->type) && !(n->type == SCH_JSON && sch_is_legacy_json(n)) &&
        sch_avro_parse((const char *)n->data, n->len, &nt, NULL, 0) < 0) {
        mg_set_err(err, errlen, "Invalid schema definition data for %s schema",
                   sch_type_name(n->type));
        return -MG_EINVAL;
    }
    int rc = 0;
    /* newest first, as Avro's validateAll walks them */
    for (size_t i = count; rc == 0 && i-- > 0;) {
        if (existing[i].type == n->type)
            rc = sch_check_one(strategy, n, nt, &existing[i], err, errlen);
        if (!transitive)
            break;
    }
    sch_avro_free(nt);
    return rc;
}
