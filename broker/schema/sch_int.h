/*
 * sch_int.h - what the schema module's files share: the Avro type tree. Only broker/schema
 * and its unit test include it.
 *
 *   sch_avro.c     Avro schemas: parse (jansson) into a tree, resolution
 *   sch_compat.c   types and strategies by name, validation, equality, the strategies' checks
 *   sch_store.c    the registry: versions in the metadata store, put, delete, list
 */
#ifndef MG_SCH_INT_H
#define MG_SCH_INT_H

#include "schema/schema.h"
#include "util/map.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum av_kind {
    AV_NULL = 0,
    AV_BOOLEAN,
    AV_INT,
    AV_LONG,
    AV_FLOAT,
    AV_DOUBLE,
    AV_BYTES,
    AV_STRING,
    AV_RECORD,
    AV_ENUM,
    AV_ARRAY,
    AV_MAP,
    AV_UNION,
    AV_FIXED,
};

struct av_node;

struct av_field {
    char *name;     /* owned */
    char **aliases; /* owned */
    size_t n_aliases;
    struct av_node *type; /* borrowed from the schema's arena */
    bool has_default;
};

/* One type. Named types (record, enum, fixed) have their full name; a reference by name is
 * the same node, so the tree is a graph (recursive records point back). */
struct av_node {
    enum av_kind kind;
    char *name;              /* owned: the full name of a named type, else NULL */
    struct av_field *fields; /* owned: record */
    size_t n_fields;
    char **symbols; /* owned: enum */
    size_t n_symbols;
    char *enum_default;        /* owned: enum's default symbol, or NULL */
    struct av_node *items;     /* borrowed: array items, map values */
    struct av_node **branches; /* owned array of borrowed nodes: union */
    size_t n_branches;
    int64_t size;   /* fixed */
    uint32_t index; /* its place in the schema's arena */
};

/* A parsed schema: every node in one arena, freed together. */
struct av_schema {
    struct av_node *root;
    struct av_node **nodes; /* owned */
    size_t n_nodes, cap_nodes;
    struct mg_map named; /* full name -> its named node (borrowed) */
};

/* Parse Avro JSON text: 0 and *out (sch_avro_free), or -MG_EINVAL with the reason. */
int sch_avro_parse(const char *text, size_t len, struct av_schema **out, char *err, size_t errlen);
void sch_avro_free(struct av_schema *s);
/* Can reader read what writer wrote? false with the reason in err. */
bool sch_avro_resolve(const struct av_schema *r, const struct av_schema *w, char *err,
                      size_t errlen);
const char *sch_avro_kind_name(enum av_kind k);

#endif
