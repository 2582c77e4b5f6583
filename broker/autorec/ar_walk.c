/*
 * ar_walk.c - the autorecovery's znode layout (BookKeeper's ZkLedgerUnderreplicationManager:
 * marks under underreplication/ledgers split in four 16-bit hex groups, locks under
 * underreplication/locks) and the asynchronous walk of a hierarchical tree into ledger ids.
 *
 * The walk lists one node per meta_children call; its callback only sorts the children into
 * leaves (ids) and inner nodes (pushed on a stack), so each loop turn does the work of one
 * listing. Names that are neither (available, idgen, LAYOUT, underreplication, cookies ...)
 * are skipped. A node that vanished while walking (-MG_ENOTFOUND) is skipped too; any other
 * meta error ends the walk with that error.
 */
#include "autorec/ar_int.h"
#include "util/alloc.h"
#include "util/err.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *ar_ur_path(const char *root, int64_t id)
{
    uint64_t u = (uint64_t)id;
    return mg_asprintf("%s/underreplication/ledgers/%04x/%04x/%04x/%04x/urL%010" PRId64, root,
                       (unsigned)((u >> 48) & 0xffff), (unsigned)((u >> 32) & 0xffff),
                       (unsigned)((u >> 16) & 0xffff), (unsigned)(u & 0xffff), id);
}

char *ar_lock_path(const char *root, int64_t id)
{
    return mg_asprintf("%s/underreplication/locks/urL%010" PRId64, root, id);
}

char *ar_ur_data(char *const *missing, int n, int64_t ctime_ms)
{
    size_t cap = 32;
    for (int i = 0; i < n; i++)
        cap += strlen(missing[i]) + 16;
    char *s = mg_malloc(cap);
    size_t off = 0;
    for (int i = 0; i < n; i++)
        off += (size_t)snprintf(s + off, cap - off, "replica: \"%s\"\n", missing[i]);
    snprintf(s + off, cap - off, "ctime: %" PRId64 "\n", ctime_ms);
    return s;
}

static bool ar_all(const char *s, int (*pred)(int))
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!pred((unsigned char)*s))
            return false;
    return true;
}

/* The ledger id of a leaf named name under path (relative part rel), or -1. */
static int64_t ar_walk_leaf(enum ar_walk_kind kind, const char *rel, const char *name)
{
    if (kind == AR_WALK_MARKS) {
        if (strncmp(name, "urL", 3) != 0 || !ar_all(name + 3, isdigit))
            return -1;
        return strtoll(name + 3, NULL, 10);
    }
    if (name[0] != 'L' || !ar_all(name + 1, isdigit))
        return -1;
    char digits[64];
    size_t n = 0;
    for (const char *p = rel; *p && n < sizeof(digits) - 1; p++)
        if (isdigit((unsigned char)*p))
            digits[n++] = *p;
    for (const char *p = name + 1; *p && n < sizeof(digits) - 1; p++)
        digits[n++] = *p;
    digits[n] = '\0';
    if (n == 0 || n > 19)
        return -1;
    return strtoll(digits, NULL, 10);
}

static void ar_walk_next(struct ar_walk *w);

static int ar_cmp_id(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return a < b ? -1 : a > b;
}

static void ar_walk_done(struct ar_walk *w, int status)
{
    w->busy = false;
    if (status == 0 && w->n_ids > 1)
        qsort(w->ids, (size_t)w->n_ids, sizeof(*w->ids), ar_cmp_id);
    w->cb(w, status);
}

static void ar_walk_children_cb(struct meta_req *mr, int status)
{
    struct ar_walk *w = mr->data;
    char *path = w->todo[--w->n_todo];
    if (status < 0 && status != -MG_ENOTFOUND) {
        mg_free(path);
        meta_req_fini(mr);
        ar_walk_done(w, status);
        return;
    }
    /* the part below the top, for the digits of a ledger's id (the top is todo[0]'s) */
    const char *rel = strlen(path) > w->top_len ? path + w->top_len : "";
    int depth = 0;
    for (const char *p = rel; *p; p++)
        depth += *p == '/';
    for (int i = 0; status == 0 && i < mr->n_children; i++) {
        const char *name = mr->children[i];
        int64_t id = ar_walk_leaf(w->kind, rel, name);
        if (id >= 0) {
            if (w->n_ids == w->cap_ids) {
                w->cap_ids = w->cap_ids ? 2 * w->cap_ids : 64;
                w->ids = mg_realloc(w->ids, (size_t)w->cap_ids * sizeof(*w->ids));
            }
            w->ids[w->n_ids++] = id;
            continue;
        }
        bool inner = depth < 4 &&
                     (w->kind == AR_WALK_MARKS ? ar_all(name, isxdigit) : ar_all(name, isdigit));
        if (!inner)
            continue;
        if (w->n_todo == w->cap_todo) {
            w->cap_todo = w->cap_todo ? 2 * w->cap_todo : 16;
            w->todo = mg_realloc(w->todo, (size_t)w->cap_todo * sizeof(*w->todo));
        }
        w->todo[w->n_todo++] = mg_asprintf("%s/%s", path, name);
    }
    mg_free(path);
    meta_req_fini(mr);
    ar_walk_next(w);
}

static void ar_walk_next(struct ar_walk *w)
{
    while (w->n_todo > 0) {
        memset(&w->mr, 0, sizeof(w->mr));
        w->mr.data = w;
        int rc = meta_children(w->meta, w->todo[w->n_todo - 1], &w->mr, ar_walk_children_cb);
        if (rc == 0)
            return;
        mg_free(w->todo[--w->n_todo]);
        if (rc != -MG_EINVAL) {
            ar_walk_done(w, rc);
            return;
        }
    }
    ar_walk_done(w, 0);
}

int ar_walk_start(struct ar_walk *w, struct meta_store *meta, const char *top,
                  enum ar_walk_kind kind, ar_walk_cb cb, void *data)
{
    ar_walk_fini(w);
    w->meta = meta;
    w->kind = kind;
    w->cb = cb;
    w->data = data;
    w->top_len = strlen(top);
    w->cap_todo = 16;
    w->todo = mg_calloc((size_t)w->cap_todo, sizeof(*w->todo));
    w->todo[w->n_todo++] = mg_strdup(top);
    w->busy = true;
    memset(&w->mr, 0, sizeof(w->mr));
    w->mr.data = w;
    int rc = meta_children(meta, top, &w->mr, ar_walk_children_cb);
    if (rc < 0) {
        w->busy = false;
        ar_walk_fini(w);
    }
    return rc;
}

void ar_walk_fini(struct ar_walk *w)
{
    for (int i = 0; i < w->n_todo; i++)
        mg_free(w->todo[i]);
    mg_free(w->todo);
    mg_free(w->ids);
    w->todo = NULL;
    w->n_todo = w->cap_todo = 0;
    w->ids = NULL;
    w->n_ids = w->cap_ids = 0;
}
