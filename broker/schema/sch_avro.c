/*
 * sch_avro.c - Avro schemas: the JSON form parsed (jansson) into a tree of types, checked
 * against the specification, and Avro's schema resolution (can a reader schema read what a
 * writer schema wrote?), which the compatibility strategies are built on.
 *
 * Happy path: sch_avro_parse walks the JSON once; named types (record, enum, fixed) are
 * registered under their full name as they are defined, so a later reference by name, also a
 * recursive one, points to the same node. sch_avro_resolve follows the rules of the
 * specification's "Schema Resolution": primitives equal or promoted (int -> long, float,
 * double; long -> float, double; float -> double; string <-> bytes), records by name with
 * fields matched by name (or a reader field's alias), a reader field missing from the writer
 * needing a default, writer fields missing from the reader ignored; enums by name with every
 * writer symbol known to the reader (or the reader's default); fixed by name and size; arrays
 * and maps by their items and values; a writer union needs each branch readable, a reader
 * union one branch that reads the writer. A pair of records already being compared is
 * taken as compatible (recursive types end there).
 *
 * Failure modes: not JSON, an unknown type name, a record without a name or fields, a bad or
 * duplicate name, an enum with a duplicate symbol, a fixed without a size, a union inside a
 * union or with two branches of one unnamed type: -MG_EINVAL with the reason. Depth is
 * bounded (SCH_AVRO_MAX_DEPTH) so a hostile schema cannot exhaust the stack.
 */
#include "schema/sch_int.h"
#include "util/alloc.h"
#include "util/err.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#define SCH_AVRO_MAX_DEPTH 64

static const char *const av_prim_names[] = {
    [AV_NULL] = "null",     [AV_BOOLEAN] = "boolean", [AV_INT] = "int",     [AV_LONG] = "long",
    [AV_FLOAT] = "float",   [AV_DOUBLE] = "double",   [AV_BYTES] = "bytes", [AV_STRING] = "string",
    [AV_RECORD] = "record", [AV_ENUM] = "enum",       [AV_ARRAY] = "array", [AV_MAP] = "map",
    [AV_UNION] = "union",   [AV_FIXED] = "fixed",
};

const char *sch_avro_kind_name(enum av_kind k)
{
    return av_prim_names[k];
}

struct av_parser {
    struct av_schema *s;
    char *err;
    size_t errlen;
};

static struct av_node *sch_av_new(struct av_parser *p, enum av_kind k)
{
    struct av_schema *s = p->s;
    if (s->n_nodes == s->cap_nodes) {
        s->cap_nodes = s->cap_nodes ? s->cap_nodes * 2 : 16;
        s->nodes = mg_realloc(s->nodes, s->cap_nodes * sizeof *s->nodes);
    }
    struct av_node *n = mg_calloc(1, sizeof *n);
    n->kind = k;
    n->index = (uint32_t)s->n_nodes;
    s->nodes[s->n_nodes++] = n;
    return n;
}

static void sch_av_node_free(struct av_node *n)
{
    mg_free(n->name);
    for (size_t i = 0; i < n->n_fields; i++) {
        mg_free(n->fields[i].name);
        for (size_t j = 0; j < n->fields[i].n_aliases; j++)
            mg_free(n->fields[i].aliases[j]);
        mg_free(n->fields[i].aliases);
    }
    mg_free(n->fields);
    for (size_t i = 0; i < n->n_symbols; i++)
        mg_free(n->symbols[i]);
    mg_free(n->symbols);
    mg_free(n->enum_default);
    mg_free(n->branches);
    mg_free(n);
}

void sch_avro_free(struct av_schema *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_nodes; i++)
        sch_av_node_free(s->nodes[i]);
    mg_free(s->nodes);
    mg_map_fini(&s->named);
    mg_free(s);
}

static bool sch_av_valid_name(const char *n)
{
    if (!n || !(isalpha((unsigned char)*n) || *n == '_'))
        return false;
    for (const char *c = n + 1; *c; c++)
        if (!(isalnum((unsigned char)*c) || *c == '_'))
            return false;
    return true;
}

/* A full name "a.b.C": each dotted part a valid name. */
static bool sch_av_valid_fullname(const char *n)
{
    char buf[512];
    if (!n || !*n || strlen(n) >= sizeof buf)
        return false;
    strcpy(buf, n);
    for (char *save = NULL, *part = strtok_r(buf, ".", &save); part;
         part = strtok_r(NULL, ".", &save))
        if (!sch_av_valid_name(part))
            return false;
    return *n != '.' && n[strlen(n) - 1] != '.' && !strstr(n, "..");
}

static char *sch_av_fullname(const char *name, const char *ns)
{
    if (strchr(name, '.') || !ns || !*ns)
        return mg_strdup(name);
    return mg_asprintf("%s.%s", ns, name);
}

static struct av_node *sch_av_lookup(struct av_schema *s, const char *full)
{
    return mg_map_get_str(&s->named, full);
}

static int sch_av_primitive(const char *name)
{
    for (int k = AV_NULL; k <= AV_STRING; k++)
        if (strcmp(name, av_prim_names[k]) == 0)
            return k;
    return -1;
}

static struct av_node *sch_av_parse(struct av_parser *p, json_t *j, const char *ns, int depth);

/* A named type (record, enum, fixed) defined by j: its node, registered under its full name
 * (checked, not defined before) so that references to it, also from inside it, find it; with
 * array_key, j must hold that member as an array (*arr). NULL with the reason. */
static struct av_node *sch_av_define(struct av_parser *p, json_t *j, const char *ns,
                                     enum av_kind kind, const char *array_key, json_t **arr)
{
    const char *name = json_string_value(json_object_get(j, "name"));
    const char *space = json_string_value(json_object_get(j, "namespace"));
    if (!name) {
        mg_set_err(p->err, p->errlen, "a named type without a \"name\"");
        return NULL;
    }
    char *full = strchr(name, '.') ? mg_strdup(name) : sch_av_fullname(name, space ? space : ns);
    const char *why = !sch_av_valid_fullname(full) ? "is not a valid name"
                      : sch_av_primitive(full) >= 0 || sch_av_lookup(p->s, full)
                          ? "is already defined"
                          : NULL;
    if (!why && array_key && !json_is_array(*arr = json_object_get(j, array_key)))
        why = array_key[0] == 'f' ? "has no \"fields\" array" : "has no \"symbols\" array";
    if (why) {
        mg_set_err(p->err, p->errlen, "%s \"%s\" %s", av_prim_names[kind], full, why);
        mg_free(full);
        return NULL;
    }
    struct av_node *n = sch_av_new(p, kind);
    n->name = full;
    mg_map_put_str(&p->s->named, full, n);
    return n;
}

/* The namespace of what a named type holds: its full name up to the last dot. */
static char *sch_av_ns_of(const char *full)
{
    const char *dot = strrchr(full, '.');
    return dot ? mg_strndup(full, (size_t)(dot - full)) : mg_strdup("");
}

/* Field i (f) of record n: added to n, or false with the reason. */
static bool sch_av_parse_field(struct av_parser *p, struct av_node *n, json_t *f, size_t i,
                               const char *inner_ns, int depth)
{
    const char *fname = json_string_value(json_object_get(f, "name"));
    json_t *ft = json_object_get(f, "type");
    const char *why = !sch_av_valid_name(fname) ? "has no valid \"name\""
                      : !ft                     ? "has no \"type\""
                                                : NULL;
    for (size_t k = 0; !why && k < n->n_fields; k++)
        if (strcmp(n->fields[k].name, fname) == 0)
            why = "is a duplicate";
    if (why) {
        mg_set_err(p->err, p->errlen, "record \"%s\": field %zu %s", n->name, i, why);
        return false;
    }
    struct av_field *fd = &n->fields[n->n_fields++];
    fd->name = mg_strdup(fname);
    fd->has_default = json_object_get(f, "default") != NULL;
    json_t *al = json_object_get(f, "aliases");
    if (json_is_array(al) && json_array_size(al)) {
        fd->aliases = mg_calloc(json_array_size(al), sizeof *fd->aliases);
        for (size_t k = 0; k < json_array_size(al); k++)
            if (json_is_string(json_array_get(al, k)))
                fd->aliases[fd->n_aliases++] = mg_strdup(json_string_value(json_array_get(al, k)));
    }
    fd->type = sch_av_parse(p, ft, inner_ns, depth + 1);
    return fd->type != NULL;
}

static struct av_node *sch_av_parse_record(struct av_parser *p, json_t *j, const char *ns,
                                           int depth)
{
    json_t *fields = NULL;
    struct av_node *n = sch_av_define(p, j, ns, AV_RECORD, "fields", &fields);
    if (!n)
        return NULL;
    char *inner_ns = sch_av_ns_of(n->name);
    size_t nf = json_array_size(fields);
    n->fields = mg_calloc(nf ? nf : 1, sizeof *n->fields);
    bool ok = true;
    for (size_t i = 0; ok && i < nf; i++)
        ok = sch_av_parse_field(p, n, json_array_get(fields, i), i, inner_ns, depth);
    mg_free(inner_ns);
    return ok ? n : NULL;
}

static struct av_node *sch_av_parse_enum(struct av_parser *p, json_t *j, const char *ns)
{
    json_t *syms = NULL;
    struct av_node *n = sch_av_define(p, j, ns, AV_ENUM, "symbols", &syms);
    if (!n)
        return NULL;
    const char *full = n->name;
    n->symbols = mg_calloc(json_array_size(syms) + 1, sizeof *n->symbols);
    for (size_t i = 0; i < json_array_size(syms); i++) {
        const char *sym = json_string_value(json_array_get(syms, i));
        if (!sch_av_valid_name(sym)) {
            mg_set_err(p->err, p->errlen, "enum \"%s\": invalid symbol %zu", full, i);
            return NULL;
        }
        for (size_t k = 0; k < n->n_symbols; k++)
            if (strcmp(n->symbols[k], sym) == 0) {
                mg_set_err(p->err, p->errlen, "enum \"%s\": duplicate symbol \"%s\"", full, sym);
                return NULL;
            }
        n->symbols[n->n_symbols++] = mg_strdup(sym);
    }
    const char *def = json_string_value(json_object_get(j, "default"));
    if (def)
        n->enum_default = mg_strdup(def);
    return n;
}

static struct av_node *sch_av_parse_union(struct av_parser *p, json_t *j, const char *ns, int depth)
{
    struct av_node *n = sch_av_new(p, AV_UNION);
    size_t nb = json_array_size(j);
    n->branches = mg_calloc(nb ? nb : 1, sizeof *n->branches);
    for (size_t i = 0; i < nb; i++) {
        struct av_node *b = sch_av_parse(p, json_array_get(j, i), ns, depth + 1);
        if (!b)
            return NULL;
        if (b->kind == AV_UNION) {
            mg_set_err(p->err, p->errlen, "a union may not immediately contain a union");
            return NULL;
        }
        for (size_t k = 0; k < n->n_branches; k++) {
            const struct av_node *o = n->branches[k];
            bool named = b->kind == AV_RECORD || b->kind == AV_ENUM || b->kind == AV_FIXED;
            if (o->kind == b->kind && (!named || strcmp(o->name, b->name) == 0)) {
                mg_set_err(p->err, p->errlen, "a union holds \"%s\" twice",
                           named ? b->name : av_prim_names[b->kind]);
                return NULL;
            }
        }
        n->branches[n->n_branches++] = b;
    }
    return n;
}

static struct av_node *sch_av_parse(struct av_parser *p, json_t *j, const char *ns, int depth)
{
    if (depth > SCH_AVRO_MAX_DEPTH) {
        mg_set_err(p->err, p->errlen, "schema nested deeper than %d levels", SCH_AVRO_MAX_DEPTH);
        return NULL;
    }
    if (json_is_array(j))
        return sch_av_parse_union(p, j, ns, depth);
    const char *name = json_is_string(j)   ? json_string_value(j)
                       : json_is_object(j) ? json_string_value(json_object_get(j, "type"))
                                           : NULL;
    if (!name) {
        if (json_is_object(j) && json_is_object(json_object_get(j, "type")))
            return sch_av_parse(p, json_object_get(j, "type"), ns, depth + 1);
        if (json_is_object(j) && json_is_array(json_object_get(j, "type")))
            return sch_av_parse_union(p, json_object_get(j, "type"), ns, depth);
        mg_set_err(p->err, p->errlen, "a type must be a name, an object or a union");
        return NULL;
    }
    int prim = sch_av_primitive(name);
    if (prim >= 0)
        return sch_av_new(p, (enum av_kind)prim); /* logicalType and other attributes: ignored */
    if (json_is_object(j)) {
        if (strcmp(name, "record") == 0 || strcmp(name, "error") == 0)
            return sch_av_parse_record(p, j, ns, depth);
        if (strcmp(name, "enum") == 0)
            return sch_av_parse_enum(p, j, ns);
        if (strcmp(name, "array") == 0 || strcmp(name, "map") == 0) {
            bool arr = name[0] == 'a';
            json_t *it = json_object_get(j, arr ? "items" : "values");
            if (!it) {
                mg_set_err(p->err, p->errlen, "%s without \"%s\"", name, arr ? "items" : "values");
                return NULL;
            }
            struct av_node *n = sch_av_new(p, arr ? AV_ARRAY : AV_MAP);
            n->items = sch_av_parse(p, it, ns, depth + 1);
            return n->items ? n : NULL;
        }
        if (strcmp(name, "fixed") == 0) {
            json_t *size = json_object_get(j, "size");
            if (!json_is_integer(size) || json_integer_value(size) < 0) {
                mg_set_err(p->err, p->errlen, "fixed without a valid \"size\"");
                return NULL;
            }
            struct av_node *n = sch_av_define(p, j, ns, AV_FIXED, NULL, NULL);
            if (n)
                n->size = json_integer_value(size);
            return n;
        }
    }
    /* A reference to a named type defined before. */
    char *full = sch_av_fullname(name, ns);
    struct av_node *ref = sch_av_lookup(p->s, full);
    if (!ref && !strchr(name, '.'))
        ref = sch_av_lookup(p->s, name);
    mg_free(full);
    if (!ref)
        mg_set_err(p->err, p->errlen, "unknown type \"%s\"", name);
    return ref;
}

int sch_avro_parse(const char *text, size_t len, struct av_schema **out, char *err, size_t errlen)
{
    json_error_t je;
    json_t *j = json_loadb(text, len, JSON_DECODE_ANY, &je);
    if (!j) {
        mg_set_err(err, errlen, "not JSON: %s (line %d)", je.text, je.line);
        return -MG_EINVAL;
    }
    struct av_schema *s = mg_calloc(1, sizeof *s);
    mg_map_init(&s->named);
    struct av_parser p = {.s = s, .err = err, .errlen = errlen};
    s->root = sch_av_parse(&p, j, "", 0);
    json_decref(j);
    if (!s->root) {
        sch_avro_free(s);
        return -MG_EINVAL;
    }
    *out = s;
    return 0;
}

/* ---- resolution ------------------------------------------------------------------------- */

/* The record pairs compared so far, by (reader index, writer index): AV_PAIR_OK while being
 * compared or once compatible (a recursive type ends there, as Avro's own checker does),
 * AV_PAIR_FAILED once not. Each pair is compared once: the work is bounded by the product of
 * the two schemas' sizes, whatever unions and nesting they hold. */
#define AV_PAIR_OK ((void *)1)
#define AV_PAIR_FAILED ((void *)2)

struct av_resolver {
    struct mg_map pairs;
    char *err;
    size_t errlen;
};

static const char *sch_av_short(const char *full)
{
    const char *dot = strrchr(full, '.');
    return dot ? dot + 1 : full;
}

/* Avro Java's SchemaCompatibility compares the unqualified names. */
static bool sch_av_names_match(const struct av_node *r, const struct av_node *w)
{
    return strcmp(sch_av_short(r->name), sch_av_short(w->name)) == 0;
}

static bool sch_av_resolve(struct av_resolver *x, const struct av_node *r, const struct av_node *w,
                           const char *where, int depth);

static bool sch_av_promotes(enum av_kind w, enum av_kind r)
{
    switch (w) {
    case AV_INT:
        return r == AV_LONG || r == AV_FLOAT || r == AV_DOUBLE;
    case AV_LONG:
        return r == AV_FLOAT || r == AV_DOUBLE;
    case AV_FLOAT:
        return r == AV_DOUBLE;
    case AV_STRING:
        return r == AV_BYTES;
    case AV_BYTES:
        return r == AV_STRING;
    default:
        return false;
    }
}

static const struct av_field *sch_av_writer_field(const struct av_node *w,
                                                  const struct av_field *rf)
{
    for (size_t i = 0; i < w->n_fields; i++)
        if (strcmp(w->fields[i].name, rf->name) == 0)
            return &w->fields[i];
    for (size_t a = 0; a < rf->n_aliases; a++)
        for (size_t i = 0; i < w->n_fields; i++)
            if (strcmp(w->fields[i].name, rf->aliases[a]) == 0)
                return &w->fields[i];
    return NULL;
}

static bool sch_av_resolve_record(struct av_resolver *x, const struct av_node *r,
                                  const struct av_node *w, int depth)
{
    uint64_t key = (uint64_t)r->index << 32 | w->index;
    void *known = mg_map_get_u64(&x->pairs, key);
    if (known)
        return known == AV_PAIR_OK;
    mg_map_put_u64(&x->pairs, key, AV_PAIR_OK);
    for (size_t i = 0; i < r->n_fields; i++) {
        const struct av_field *rf = &r->fields[i];
        const struct av_field *wf = sch_av_writer_field(w, rf);
        if (!wf) {
            if (!rf->has_default) {
                mg_set_err(x->err, x->errlen,
                           "reader field \"%s.%s\" is missing from the writer and has no default",
                           r->name, rf->name);
                mg_map_put_u64(&x->pairs, key, AV_PAIR_FAILED);
                return false;
            }
            continue;
        }
        if (!sch_av_resolve(x, rf->type, wf->type, rf->name, depth + 1)) {
            mg_map_put_u64(&x->pairs, key, AV_PAIR_FAILED);
            return false;
        }
    }
    return true;
}

static bool sch_av_resolve(struct av_resolver *x, const struct av_node *r, const struct av_node *w,
                           const char *where, int depth)
{
    if (depth > SCH_AVRO_MAX_DEPTH * 4) {
        mg_set_err(x->err, x->errlen, "schemas nested too deep to compare");
        return false;
    }
    if (w->kind == AV_UNION) {
        for (size_t i = 0; i < w->n_branches; i++)
            if (!sch_av_resolve(x, r, w->branches[i], where, depth + 1))
                return false;
        return true;
    }
    if (r->kind == AV_UNION) {
        for (size_t i = 0; i < r->n_branches; i++)
            if (sch_av_resolve(x, r->branches[i], w, where, depth + 1))
                return true;
        mg_set_err(x->err, x->errlen, "at \"%s\": no branch of the reader's union reads the %s",
                   where, w->name ? w->name : av_prim_names[w->kind]);
        return false;
    }
    if (r->kind != w->kind) {
        if (sch_av_promotes(w->kind, r->kind))
            return true;
        mg_set_err(x->err, x->errlen, "at \"%s\": the reader's %s cannot read the writer's %s",
                   where, av_prim_names[r->kind], av_prim_names[w->kind]);
        return false;
    }
    switch (r->kind) {
    case AV_RECORD:
    case AV_ENUM:
    case AV_FIXED:
        if (!sch_av_names_match(r, w)) {
            mg_set_err(x->err, x->errlen, "at \"%s\": %s names differ (\"%s\", \"%s\")", where,
                       av_prim_names[r->kind], r->name, w->name);
            return false;
        }
        if (r->kind == AV_RECORD)
            return sch_av_resolve_record(x, r, w, depth);
        if (r->kind == AV_FIXED && r->size != w->size) {
            mg_set_err(x->err, x->errlen, "at \"%s\": fixed sizes differ", where);
            return false;
        }
        if (r->kind == AV_ENUM && !r->enum_default)
            for (size_t i = 0; i < w->n_symbols; i++) {
                bool known = false;
                for (size_t k = 0; k < r->n_symbols && !known; k++)
                    known = strcmp(r->symbols[k], w->symbols[i]) == 0;
                if (!known) {
                    mg_set_err(x->err, x->errlen,
                               "at \"%s\": the writer's symbol \"%s\" is unknown to the reader's "
                               "enum \"%s\"",
                               where, w->symbols[i], r->name);
                    return false;
                }
            }
        return true;
    case AV_ARRAY:
    case AV_MAP:
        return sch_av_resolve(x, r->items, w->items, where, depth + 1);
    default:
        return true; /* the same primitive */
    }
}

int sch_avro_can_read(const char *reader, size_t rlen, const char *writer, size_t wlen, char *err,
                      size_t errlen)
{
    struct av_schema *r = NULL, *w = NULL;
    char perr[200];
    if (sch_avro_parse(reader, rlen, &r, perr, sizeof perr) < 0) {
        mg_set_err(err, errlen, "reader schema: %s", perr);
        return -MG_EINVAL;
    }
    if (sch_avro_parse(writer, wlen, &w, perr, sizeof perr) < 0) {
        mg_set_err(err, errlen, "writer schema: %s", perr);
        sch_avro_free(r);
        return -MG_EINVAL;
    }
    int rc = sch_avro_resolve(r, w, err, errlen) ? 1 : 0;
    sch_avro_free(r);
    sch_avro_free(w);
    return rc;
}

bool sch_avro_resolve(const struct av_schema *r, const struct av_schema *w, char *err,
                      size_t errlen)
{
    struct av_resolver x = {.err = err, .errlen = errlen};
    mg_map_init(&x.pairs);
    bool ok = sch_av_resolve(&x, r->root, w->root, "<root>", 0);
    mg_map_fini(&x.pairs);
    return ok;
}
