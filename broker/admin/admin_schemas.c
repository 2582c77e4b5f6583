/*
 * admin_schemas.c - the schema registry's admin resources (Pulsar's SchemasResource v2 and the
 * namespace's schema policies), over schema.h's registry.
 *
 *   GET    /admin/v2/schemas/{t}/{ns}/{topic}/schema            latest: GetSchemaResponse
 *   GET    /admin/v2/schemas/{t}/{ns}/{topic}/schema/{version}  that version
 *   POST   /admin/v2/schemas/{t}/{ns}/{topic}/schema            add: 202 {"version":{"version":N}}
 *   DELETE /admin/v2/schemas/{t}/{ns}/{topic}/schema            a delete marker: {"version":N}
 *   GET    /admin/v2/schemas/{t}/{ns}/{topic}/schemas           {"getSchemaResponses":[...]}
 *   POST   /admin/v2/schemas/{t}/{ns}/{topic}/compatibility     202 {"compatibility":b,
 *                                                               "schemaCompatibilityStrategy":s}
 *   POST   /admin/v2/schemas/{t}/{ns}/{topic}/version           202 {"version":N}, -1 when no
 *                                                               live version equals it
 *   GET/PUT/POST /admin/v2/namespaces/{t}/{ns}/schemaCompatibilityStrategy   "FULL"
 *   GET/POST     /admin/v2/namespaces/{t}/{ns}/isAllowAutoUpdateSchema       true
 *
 * GetSchemaResponse = {"version":N,"type":"AVRO","timestamp":ms,"data":"<definition>",
 * "properties":{}}. The registry is shared by every broker through the metadata store, so any
 * broker answers (no ownership redirect).
 *
 * Failure modes: no schema, a deleted one, or a version that does not exist: 404 with an
 * empty body, as Pulsar; a payload that is not {"type","schema"[,"properties"]} or names an
 * unknown type: 400; an invalid or too large definition: 422; an incompatible one: 409
 * (Pulsar's status; the reason is in the body); a store error: 500. Nothing is stored on
 * any refusal.
 */
#include "admin/admin_int.h"
#include "config/cfg.h"
#include "ns/ns.h"
#include "schema/schema.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One call waiting for the registry. */
struct admin_sch_op {
    struct admin_call *call;
    int64_t version; /* GET .../schema/{version}: the one asked; -1 latest; -2 every one */
    enum sch_strategy strategy;
    struct sch_schema *candidate; /* owned: POST .../version's payload */
};

static json_t *admin_sch_json(const struct sch_schema *s, int64_t version)
{
    json_t *props = json_object();
    for (size_t i = 0; i < s->n_props; i++)
        json_object_set_new(props, s->props[i].key, json_string(s->props[i].value));
    /* the definition as text, as Pulsar's new String(bytes, UTF_8): bytes that are not UTF-8
     * (a binary definition) are replaced */
    const char *text = s->data ? (const char *)s->data : "";
    json_t *data = json_stringn(text, s->len);
    if (!data) {
        char *copy = mg_malloc(s->len + 1);
        for (size_t i = 0; i < s->len; i++)
            copy[i] = (s->data[i] & 0x80) || !s->data[i] ? '?' : (char)s->data[i];
        data = json_stringn(copy, s->len);
        mg_free(copy);
    }
    return json_pack("{s:I,s:s,s:I,s:o,s:o}", "version", (json_int_t)version, "type",
                     sch_type_name(s->type), "timestamp", (json_int_t)s->timestamp_ms, "data", data,
                     "properties", props);
}

static struct admin_sch_op *admin_sch_op_new(struct admin_req *r)
{
    struct admin_sch_op *op = mg_calloc(1, sizeof *op);
    op->call = r->call;
    op->version = -1;
    return op;
}

/* The schema id of the request's topic ("t/ns/local", the partition suffix dropped). */
static char *admin_sch_id(struct admin_req *r)
{
    return sch_id_of_topic(r->tn.full);
}

/* Answer a registry error the way Pulsar maps its exceptions. */
static void admin_sch_reply_error(struct admin_call *call, int status, const char *err)
{
    if (status == -MG_ENOTFOUND)
        admin_reply_raw(call, 404, "application/json", "");
    else if (status == -MG_EINCOMPATSCHEMA)
        admin_reply_error(call, 409, err);
    else if (status == -MG_EINVAL || status == -MG_ETOOBIG)
        admin_reply_error(call, 422, err);
    else
        admin_reply_error(call, 500, err ? err : mg_strerror(status));
}

static void admin_sch_got(void *data, int status, int64_t version, const struct sch_list *l,
                          const char *err)
{
    struct admin_sch_op *op = data;
    (void)version;
    if (!admin_call_gone(op->call)) {
        if (op->version == -2) { /* every live version */
            json_t *all = json_array();
            for (size_t i = 0; status == 0 && i < l->n; i++)
                json_array_append_new(all, admin_sch_json(&l->schemas[i], l->versions[i]));
            if (status == 0 || status == -MG_ENOTFOUND)
                admin_reply_json(op->call, 200, json_pack("{s:o}", "getSchemaResponses", all));
            else {
                json_decref(all);
                admin_sch_reply_error(op->call, status, err);
            }
        } else {
            size_t found = SIZE_MAX;
            for (size_t i = 0; status == 0 && i < l->n; i++)
                if (op->version < 0 ? i == l->n - 1 : l->versions[i] == op->version)
                    found = i;
            if (found != SIZE_MAX)
                admin_reply_json(op->call, 200,
                                 admin_sch_json(&l->schemas[found], l->versions[found]));
            else
                admin_sch_reply_error(op->call, status == 0 ? -MG_ENOTFOUND : status, err);
        }
    }
    mg_free(op);
}

/* Start a registry call on the request's schema id (sch_list, sch_delete) completing in cb;
 * a synchronous failure (or no registry: nothing found) completes it now. */
static void admin_sch_run(struct admin_req *r, struct admin_sch_op *op,
                          int (*start)(struct sch_registry *, const char *, sch_cb, void *),
                          sch_cb cb)
{
    char *id = admin_sch_id(r);
    int rc = r->a->env->schemas && id ? start(r->a->env->schemas, id, cb, op) : -MG_ENOTFOUND;
    mg_free(id);
    if (rc < 0)
        cb(op, rc, -1, NULL, mg_strerror(rc));
}

static void admin_sch_list(struct admin_req *r, struct admin_sch_op *op)
{
    admin_sch_run(r, op, sch_list, admin_sch_got);
}

void admin_h_schema_get(struct admin_req *r)
{
    admin_sch_list(r, admin_sch_op_new(r));
}

void admin_h_schema_get_version(struct admin_req *r)
{
    const char *v = r->p.arg;
    char *end = NULL;
    errno = 0;
    long long n = v ? strtoll(v, &end, 10) : -1;
    if (!v || !*v || *end || errno || n < 0) {
        /* Pulsar parses it with Long.parseLong: a negative one finds nothing */
        if (v && *v && !*end && !errno)
            admin_reply_raw(r->call, 404, "application/json", "");
        else
            admin_reply_error(r->call, 400, "Invalid schema version");
        return;
    }
    struct admin_sch_op *op = admin_sch_op_new(r);
    op->version = n;
    admin_sch_list(r, op);
}

void admin_h_schemas_all(struct admin_req *r)
{
    struct admin_sch_op *op = admin_sch_op_new(r);
    op->version = -2;
    admin_sch_list(r, op);
}

static void admin_sch_deleted(void *data, int status, int64_t version, const struct sch_list *l,
                              const char *err)
{
    struct admin_sch_op *op = data;
    (void)l;
    if (!admin_call_gone(op->call)) {
        if (status == 0)
            admin_reply_json(op->call, 200, json_pack("{s:I}", "version", (json_int_t)version));
        else
            admin_sch_reply_error(op->call, status, err);
    }
    mg_free(op);
}

void admin_h_schema_delete(struct admin_req *r)
{
    admin_sch_run(r, admin_sch_op_new(r), sch_delete, admin_sch_deleted);
}

/* PostSchemaPayload {"type":"AVRO","schema":"<definition>","properties":{...}} into s: 0, or
 * answered 400. */
static int admin_sch_payload(struct admin_req *r, struct sch_schema *s)
{
    json_t *b = r->body;
    const char *type = json_string_value(json_object_get(b, "type"));
    json_t *def = json_object_get(b, "schema");
    json_t *props = json_object_get(b, "properties");
    int t = sch_type_parse(type);
    if (r->body_bad || !json_is_object(b) || t < 0 || (def && !json_is_string(def)) ||
        (props && !json_is_object(props) && !json_is_null(props))) {
        admin_reply_error(r->call, 400,
                          t < 0 && json_is_object(b) && !r->body_bad
                              ? "Invalid schema type"
                              : "Invalid schema payload: {\"type\", \"schema\", \"properties\"}");
        return -1;
    }
    sch_schema_init(s, (enum sch_type)t, json_string_value(def), json_string_length(def));
    const char *k;
    json_t *v;
    json_object_foreach(props, k, v)
    {
        if (json_is_string(v))
            sch_schema_add_prop(s, k, json_string_value(v));
    }
    return 0;
}

static void admin_sch_posted(void *data, int status, int64_t version, const struct sch_list *l,
                             const char *err)
{
    struct admin_sch_op *op = data;
    (void)l;
    if (!admin_call_gone(op->call)) {
        if (status == 0) /* PostSchemaResponse{SchemaVersion version}: LongSchemaVersion's bean */
            admin_reply_json(op->call, 202,
                             json_pack("{s:{s:I}}", "version", "version", (json_int_t)version));
        else
            admin_sch_reply_error(op->call, status, err);
    }
    mg_free(op);
}

static void admin_sch_tested(void *data, int status, int64_t version, const struct sch_list *l,
                             const char *err)
{
    struct admin_sch_op *op = data;
    (void)version;
    (void)l;
    if (!admin_call_gone(op->call)) {
        if (status == 0 || status == -MG_EINCOMPATSCHEMA)
            admin_reply_json(op->call, 202,
                             json_pack("{s:b,s:s}", "compatibility", status == 0,
                                       "schemaCompatibilityStrategy",
                                       sch_strategy_name(op->strategy)));
        else
            admin_sch_reply_error(op->call, status, err);
    }
    mg_free(op);
}

static void admin_sch_put_or_test(struct admin_req *r, bool test)
{
    struct sch_schema s;
    if (admin_sch_payload(r, &s) < 0)
        return;
    struct admin_sch_op *op = admin_sch_op_new(r);
    struct sch_registry *reg = r->a->env->schemas;
    char *id = admin_sch_id(r);
    int rc = -MG_ENOTSUP;
    if (reg && id) {
        op->strategy = sch_ns_strategy(reg, r->tenant_ns);
        rc = test ? sch_test(reg, id, &s, op->strategy, admin_sch_tested, op)
                  : sch_put(reg, id, &s, op->strategy, SCH_PUT_ADMIN, admin_sch_posted, op);
    }
    mg_free(id);
    sch_schema_fini(&s);
    if (rc < 0) {
        admin_reply_error(r->call, 500, mg_strerror(rc));
        mg_free(op);
    }
}

/* POST .../version: the version of the live schema equal to the payload's, or -1. */
static void admin_sch_found(void *data, int status, int64_t version, const struct sch_list *l,
                            const char *err)
{
    struct admin_sch_op *op = data;
    (void)version;
    if (!admin_call_gone(op->call)) {
        if (status == 0 || status == -MG_ENOTFOUND) {
            int64_t found = -1;
            for (size_t i = 0; status == 0 && i < l->n; i++)
                if (sch_same(&l->schemas[i], op->candidate))
                    found = l->versions[i];
            admin_reply_json(op->call, 202, json_pack("{s:I}", "version", (json_int_t)found));
        } else {
            admin_sch_reply_error(op->call, status, err);
        }
    }
    sch_schema_fini(op->candidate);
    mg_free(op->candidate);
    mg_free(op);
}

void admin_h_schema_version(struct admin_req *r)
{
    struct sch_schema *s = mg_calloc(1, sizeof *s);
    if (admin_sch_payload(r, s) < 0) {
        mg_free(s);
        return;
    }
    struct admin_sch_op *op = admin_sch_op_new(r);
    op->candidate = s;
    admin_sch_run(r, op, sch_list, admin_sch_found);
}

void admin_h_schema_post(struct admin_req *r)
{
    admin_sch_put_or_test(r, false);
}

void admin_h_schema_compatibility(struct admin_req *r)
{
    admin_sch_put_or_test(r, true);
}

/* ---- the namespace's schema policies ------------------------------------------------------ */

void admin_h_ns_schema_strategy_get(struct admin_req *r)
{
    struct ns_policies p;
    if (!admin_res_policies(r, &p))
        return;
    admin_reply_json(r->call, 200,
                     json_string(p.schema_strategy[0] ? p.schema_strategy : "UNDEFINED"));
}

void admin_h_ns_schema_strategy_set(struct admin_req *r)
{
    const char *name = json_string_value(r->body);
    int st = sch_strategy_parse(name);
    if (r->body_bad || st < 0) {
        admin_reply_error(r->call, 400, "Invalid schema compatibility strategy");
        return;
    }
    struct ns_policies p;
    if (!admin_res_policies(r, &p))
        return;
    snprintf(p.schema_strategy, sizeof p.schema_strategy, "%s",
             st == SCH_UNDEFINED ? "" : sch_strategy_name((enum sch_strategy)st));
    admin_res_policies_store(r, &p);
}

void admin_h_ns_auto_update_get(struct admin_req *r)
{
    struct ns_policies p;
    if (!admin_res_policies(r, &p))
        return;
    admin_reply_json(r->call, 200,
                     json_boolean(p.has_auto_update_schema
                                      ? p.auto_update_schema
                                      : r->a->env->cfg->allow_auto_update_schema));
}

void admin_h_ns_auto_update_set(struct admin_req *r)
{
    if (r->body_bad || !json_is_boolean(r->body)) {
        admin_reply_error(r->call, 400, "A boolean body (true or false) is required");
        return;
    }
    struct ns_policies p;
    if (!admin_res_policies(r, &p))
        return;
    p.has_auto_update_schema = true;
    p.auto_update_schema = json_is_true(r->body);
    admin_res_policies_store(r, &p);
}
