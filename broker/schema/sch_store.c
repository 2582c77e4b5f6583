/*
 * sch_store.c - the schema registry: the versions of each schema id in the metadata store,
 * and the operations PRODUCER, SUBSCRIBE, GET_SCHEMA and the admin API run on them.
 *
 * Layout (README.md): /schemas/<tenant>/<ns>/<local>/<version, 19 digits> = JSON
 * {"type":"AVRO","data":"<base64>","properties":{},"timestamp":ms,"deleted":false}.
 *
 * Happy path: every operation first reads the id's versions (children, then each node in
 * order), keeps those after the last delete marker (Pulsar's "trimmed" list), then decides:
 * list answers them; put finds an equal version or checks the new one (sch_check) and
 * creates the next version's node create-only; test only checks; delete creates a marker.
 *
 * Failure modes: a store error ends the operation with it; a version node that does not
 * parse is an -MG_EMETA (logged once, by the caller); two writers creating the same
 * version: the loser (-MG_EEXIST) reads again and retries, at most SCH_PUT_RETRIES times.
 * Freeing the registry completes its operations with -MG_ECANCELED; their store requests
 * still complete later and only free what is left.
 */
#include "config/cfg.h"
#include "meta/meta.h"
#include "ns/ns.h"
#include "schema/sch_int.h"
#include "util/alloc.h"
#include "util/base64.h"
#include "util/err.h"
#include "util/loop.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#define SCH_ROOT "/schemas"
#define SCH_PUT_RETRIES 5

enum sch_op_kind { SCH_OP_LIST = 0, SCH_OP_PUT, SCH_OP_TEST, SCH_OP_DELETE };

struct sch_op {
    struct sch_registry *r; /* borrowed; NULL once the registry is gone */
    LIST_ENTRY(sch_op) link;
    enum sch_op_kind kind;
    char *dir;           /* owned: /schemas/<id> */
    struct sch_schema s; /* put, test: the candidate (owned copy) */
    enum sch_strategy strategy;
    enum sch_put_mode mode;
    sch_cb cb;
    void *data;
    struct meta_req req;
    char **names; /* owned: the version nodes' names */
    int n_names, next;
    struct sch_list all; /* every stored version read so far, markers included */
    int retries;
};

struct sch_registry {
    struct mg_loop *loop;     /* borrowed */
    struct meta_store *store; /* borrowed */
    struct ns *ns;            /* borrowed, may be NULL */
    const struct cfg *cfg;    /* borrowed, may be NULL */
    LIST_HEAD(, sch_op) ops;  /* in progress */
};

struct sch_registry *sch_registry_new(struct mg_loop *loop, struct meta_store *store, struct ns *ns,
                                      const struct cfg *cfg)
{
    struct sch_registry *r = mg_calloc(1, sizeof *r);
    r->loop = loop;
    r->store = store;
    r->ns = ns;
    r->cfg = cfg;
    LIST_INIT(&r->ops);
    return r;
}

void sch_list_fini(struct sch_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        sch_schema_fini(&l->schemas[i]);
    mg_free(l->schemas);
    mg_free(l->versions);
    *l = (struct sch_list){0};
}

/* op's request, emptied for the next call. */
static struct meta_req *sch_op_req(struct sch_op *op)
{
    meta_req_fini(&op->req);
    op->req = (struct meta_req){.data = op};
    return &op->req;
}

static void sch_op_free(struct sch_op *op)
{
    meta_req_fini(&op->req);
    for (int i = 0; i < op->n_names; i++)
        mg_free(op->names[i]);
    mg_free(op->names);
    sch_list_fini(&op->all);
    sch_schema_fini(&op->s);
    mg_free(op->dir);
    mg_free(op);
}

/* Complete op once (unless the registry already did) and free it. */
static void sch_op_done(struct sch_op *op, int status, int64_t version, const struct sch_list *l,
                        const char *err)
{
    if (op->r) {
        LIST_REMOVE(op, link);
        op->cb(op->data, status, version, l, err ? err : status < 0 ? mg_strerror(status) : NULL);
    }
    sch_op_free(op);
}

void sch_registry_free(struct sch_registry *r)
{
    if (!r)
        return;
    struct sch_op *op;
    while ((op = LIST_FIRST(&r->ops))) {
        LIST_REMOVE(op, link);
        op->r = NULL; /* its store request frees it when it completes */
        op->cb(op->data, -MG_ECANCELED, -1, NULL, "the schema registry is closing");
    }
    mg_free(r);
}

enum sch_strategy sch_ns_strategy(const struct sch_registry *r, const char *tenant_ns)
{
    struct ns_policies p;
    if (r->ns && ns_namespace_policies_get(r->ns, tenant_ns, &p) == 0) {
        int s = sch_strategy_parse(p.schema_strategy);
        if (s > SCH_UNDEFINED)
            return (enum sch_strategy)s;
    }
    int s = r->cfg ? sch_strategy_parse(r->cfg->schema_compatibility_strategy) : -1;
    return s > SCH_UNDEFINED ? (enum sch_strategy)s : SCH_FULL;
}

bool sch_ns_auto_update(const struct sch_registry *r, const char *tenant_ns)
{
    struct ns_policies p;
    if (r->ns && ns_namespace_policies_get(r->ns, tenant_ns, &p) == 0 && p.has_auto_update_schema)
        return p.auto_update_schema;
    return r->cfg ? r->cfg->allow_auto_update_schema : true;
}

/* ---- one stored version ----------------------------------------------------------------- */

static char *sch_encode(const struct sch_schema *s, int64_t now_ms)
{
    char *b64 = mg_malloc(4 * ((s->len + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)b64, s->data ? s->data : (const uint8_t *)"", (int)s->len);
    json_t *props = json_object();
    for (size_t i = 0; i < s->n_props; i++)
        json_object_set_new(props, s->props[i].key, json_string(s->props[i].value));
    json_t *j =
        json_pack("{s:s,s:s,s:o,s:I,s:b}", "type", sch_type_name(s->type), "data", b64,
                  "properties", props, "timestamp", (json_int_t)now_ms, "deleted", s->deleted);
    mg_free(b64);
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return text;
}

static int sch_decode(const char *text, size_t len, struct sch_schema *out)
{
    json_t *j = json_loadb(text, len, 0, NULL);
    const char *type = json_string_value(json_object_get(j, "type"));
    const char *b64 = json_string_value(json_object_get(j, "data"));
    int t = sch_type_parse(type);
    if (!j || t < 0 || !b64) {
        json_decref(j);
        return -MG_EMETA;
    }
    size_t blen = strlen(b64);
    uint8_t *data = mg_malloc(MG_BASE64_DECODED_MAX(blen) + 1);
    ssize_t n = mg_base64_decode(b64, blen, false, data);
    if (n < 0) {
        mg_free(data);
        json_decref(j);
        return -MG_EMETA;
    }
    *out = (struct sch_schema){.type = (enum sch_type)t, .data = data, .len = (size_t)n};
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(j, "properties"), k, v)
    {
        if (json_is_string(v))
            sch_schema_add_prop(out, k, json_string_value(v));
    }
    out->timestamp_ms = json_integer_value(json_object_get(j, "timestamp"));
    out->deleted = json_is_true(json_object_get(j, "deleted"));
    json_decref(j);
    return 0;
}

/* ---- the operations --------------------------------------------------------------------- */

static void sch_op_load(struct sch_op *op);
static void sch_op_read_next(struct sch_op *op);

/* The live versions: those after the last delete marker (borrowed views into op->all). */
static struct sch_list sch_live(const struct sch_list *all)
{
    if (all->n == 0) /* nothing stored (the arrays are NULL) */
        return (struct sch_list){.n = 0, .next_version = 0};
    size_t first = 0;
    for (size_t i = 0; i < all->n; i++)
        if (all->schemas[i].deleted)
            first = i + 1;
    return (struct sch_list){
        .schemas = all->schemas + first,
        .versions = all->versions + first,
        .n = all->n - first,
        .next_version = all->versions[all->n - 1] + 1,
    };
}

static void sch_op_written(struct meta_req *req, int status)
{
    struct sch_op *op = req->data;
    if (status == -MG_EEXIST && op->r && op->retries++ < SCH_PUT_RETRIES) {
        sch_op_load(op); /* another writer took that version: read again */
        return;
    }
    int64_t v = op->all.n ? op->all.versions[op->all.n - 1] + 1 : 0;
    sch_op_done(op, status, status < 0 ? -1 : v, NULL, NULL);
}

static void sch_op_write(struct sch_op *op, int64_t version, const struct sch_schema *s)
{
    char *path = mg_asprintf("%s/%019" PRId64, op->dir, version);
    char *text = sch_encode(s, mg_loop_wall_ms(op->r->loop));
    int rc = meta_put(op->r->store, path, text, strlen(text), META_VERSION_NONE,
                      META_CREATE_PARENTS, sch_op_req(op), sch_op_written);
    free(text); /* json_dumps' */
    mg_free(path);
    if (rc < 0)
        sch_op_done(op, rc, -1, NULL, NULL);
}

/* Every stored version read: decide. */
static void sch_op_loaded(struct sch_op *op)
{
    struct sch_list live = sch_live(&op->all);
    char err[512] = "";
    if (op->kind == SCH_OP_LIST) {
        sch_op_done(op, live.n ? 0 : -MG_ENOTFOUND, -1, &live, live.n ? NULL : "no schema");
        return;
    }
    if (op->kind == SCH_OP_DELETE) {
        if (!live.n) {
            sch_op_done(op, -MG_ENOTFOUND, -1, NULL, "no schema");
            return;
        }
        struct sch_schema marker = {.type = SCH_NONE, .deleted = true};
        sch_op_write(op, live.next_version, &marker);
        return;
    }
    int rc = sch_validate(&op->s, err, sizeof err);
    if (rc < 0) {
        sch_op_done(op, rc, -1, NULL, err);
        return;
    }
    if (op->kind == SCH_OP_PUT)
        for (size_t i = live.n; i-- > 0;)
            if (sch_same(&live.schemas[i], &op->s)) {
                sch_op_done(op, 0, live.versions[i], NULL, NULL);
                return;
            }
    if (op->kind == SCH_OP_PUT && op->mode == SCH_PUT_FIND_ONLY) {
        sch_op_done(op, -MG_EINCOMPATSCHEMA, -1, NULL,
                    "Schema not found and schema auto updating is disabled.");
        return;
    }
    bool consumer = op->mode == SCH_PUT_CONSUMER_IDLE || op->mode == SCH_PUT_CONSUMER_ACTIVE;
    if (consumer && live.n) {
        enum sch_strategy st = op->strategy;
        if (st == SCH_BACKWARD || st == SCH_FORWARD || st == SCH_FORWARD_TRANSITIVE ||
            st == SCH_FULL) {
            live.schemas += live.n - 1; /* the latest only */
            live.n = 1;
            st = SCH_BACKWARD;
        }
        rc = sch_check(st, &op->s, live.schemas, live.n, err, sizeof err);
        sch_op_done(op, rc, -1, NULL, rc < 0 ? err : NULL);
        return;
    }
    if (op->mode == SCH_PUT_CONSUMER_ACTIVE) {
        snprintf(err, sizeof err,
                 "Failed to add schema to an active topic with empty(BYTES) schema: new schema "
                 "type %s",
                 sch_type_name(op->s.type));
        sch_op_done(op, -MG_EINCOMPATSCHEMA, -1, NULL, err);
        return;
    }
    rc = sch_check(op->strategy, &op->s, live.schemas, live.n, err, sizeof err);
    if (rc < 0 || op->kind == SCH_OP_TEST) {
        sch_op_done(op, rc, -1, NULL, rc < 0 ? err : NULL);
        return;
    }
    if (op->all.n >= SCH_MAX_VERSIONS) {
        snprintf(err, sizeof err, "The schema already has %d versions, the most kept",
                 SCH_MAX_VERSIONS);
        sch_op_done(op, -MG_ENOTALLOWED, -1, NULL, err);
        return;
    }
    sch_op_write(op, live.next_version, &op->s);
}

static void sch_op_version_read(struct meta_req *req, int status)
{
    struct sch_op *op = req->data;
    if (!op->r) {
        sch_op_done(op, -MG_ECANCELED, -1, NULL, NULL);
        return;
    }
    if (status == -MG_ENOTFOUND) { /* deleted meanwhile (topic deletion): skip it */
        sch_op_read_next(op);
        return;
    }
    struct sch_schema s;
    if (status == 0)
        status = sch_decode(req->value, req->len, &s);
    if (status < 0) {
        sch_op_done(op, status, -1, NULL, "a stored schema version could not be read");
        return;
    }
    struct sch_list *a = &op->all;
    a->schemas = mg_realloc(a->schemas, (a->n + 1) * sizeof *a->schemas);
    a->versions = mg_realloc(a->versions, (a->n + 1) * sizeof *a->versions);
    a->schemas[a->n] = s;
    a->versions[a->n] = strtoll(op->names[op->next - 1], NULL, 10);
    a->n++;
    sch_op_read_next(op);
}

static void sch_op_read_next(struct sch_op *op)
{
    if (op->next == op->n_names) {
        sch_op_loaded(op);
        return;
    }
    char *path = mg_asprintf("%s/%s", op->dir, op->names[op->next++]);
    int rc = meta_get(op->r->store, path, sch_op_req(op), sch_op_version_read);
    mg_free(path);
    if (rc < 0)
        sch_op_done(op, rc, -1, NULL, NULL);
}

static void sch_op_listed(struct meta_req *req, int status)
{
    struct sch_op *op = req->data;
    if (!op->r) {
        sch_op_done(op, -MG_ECANCELED, -1, NULL, NULL);
        return;
    }
    if (status < 0 && status != -MG_ENOTFOUND) {
        sch_op_done(op, status, -1, NULL, NULL);
        return;
    }
    for (int i = 0; status == 0 && i < req->n_children; i++) {
        const char *name = req->children[i];
        if (strlen(name) != 19 || strspn(name, "0123456789") != 19)
            continue; /* not a version node */
        op->names = mg_realloc(op->names, (size_t)(op->n_names + 1) * sizeof *op->names);
        op->names[op->n_names++] = mg_strdup(name);
    }
    sch_op_read_next(op);
}

/* (Re)read every version of op's id. */
static void sch_op_load(struct sch_op *op)
{
    for (int i = 0; i < op->n_names; i++)
        mg_free(op->names[i]);
    mg_free(op->names);
    op->names = NULL;
    op->n_names = op->next = 0;
    sch_list_fini(&op->all);
    int rc = meta_children(op->r->store, op->dir, sch_op_req(op), sch_op_listed);
    if (rc < 0)
        sch_op_done(op, rc, -1, NULL, NULL);
}

static int sch_op_start(struct sch_registry *r, enum sch_op_kind kind, const char *id,
                        const struct sch_schema *s, enum sch_strategy strategy,
                        enum sch_put_mode mode, sch_cb cb, void *data)
{
    if (!id || !*id || id[0] == '/' || strstr(id, "//") || id[strlen(id) - 1] == '/')
        return -MG_EINVAL;
    struct sch_op *op = mg_calloc(1, sizeof *op);
    op->r = r;
    op->kind = kind;
    op->dir = mg_asprintf(SCH_ROOT "/%s", id);
    op->strategy = strategy ? strategy : SCH_FULL;
    op->mode = mode;
    op->cb = cb;
    op->data = data;
    op->req.data = op;
    if (s) {
        sch_schema_init(&op->s, s->type, s->data, s->len);
        for (size_t i = 0; i < s->n_props; i++)
            sch_schema_add_prop(&op->s, s->props[i].key, s->props[i].value);
    }
    int rc = meta_children(r->store, op->dir, &op->req, sch_op_listed);
    if (rc < 0) {
        sch_op_free(op);
        return rc;
    }
    LIST_INSERT_HEAD(&r->ops, op, link);
    return 0;
}

int sch_list(struct sch_registry *r, const char *id, sch_cb cb, void *data)
{
    return sch_op_start(r, SCH_OP_LIST, id, NULL, SCH_FULL, SCH_PUT_REGISTER, cb, data);
}

int sch_put(struct sch_registry *r, const char *id, const struct sch_schema *s,
            enum sch_strategy strategy, enum sch_put_mode mode, sch_cb cb, void *data)
{
    return sch_op_start(r, SCH_OP_PUT, id, s, strategy, mode, cb, data);
}

int sch_test(struct sch_registry *r, const char *id, const struct sch_schema *s,
             enum sch_strategy strategy, sch_cb cb, void *data)
{
    return sch_op_start(r, SCH_OP_TEST, id, s, strategy, SCH_PUT_REGISTER, cb, data);
}

int sch_delete(struct sch_registry *r, const char *id, sch_cb cb, void *data)
{
    return sch_op_start(r, SCH_OP_DELETE, id, NULL, SCH_FULL, SCH_PUT_REGISTER, cb, data);
}
