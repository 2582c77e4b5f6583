/* map.c - open addressing, linear probing, tombstones, grows at 70% use. */
#include "util/map.h"
#include "util/alloc.h"

#include <string.h>

static char tomb_marker;
#define MG_MAP_TOMB (&tomb_marker)

static uint64_t mg_map_hash_bytes(const void *key, size_t len)
{
    /* FNV-1a then a final avalanche (splitmix64). */
    const unsigned char *p = key;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h;
}

void mg_map_init(struct mg_map *m)
{
    memset(m, 0, sizeof *m);
}

void mg_map_fini(struct mg_map *m)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key && m->slots[i].key != MG_MAP_TOMB)
            mg_free(m->slots[i].key);
    mg_free(m->slots);
    memset(m, 0, sizeof *m);
}

void mg_map_fini_free(struct mg_map *m, void (*free_value)(void *value))
{
    size_t pos = 0;
    void *v;
    while (mg_map_next(m, &pos, NULL, NULL, &v))
        free_value(v);
    mg_map_fini(m);
}

static struct mg_map_slot *mg_map_find(const struct mg_map *m, const void *key, size_t klen,
                                       uint64_t h)
{
    if (!m->cap)
        return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = h & mask, n = 0; n < m->cap; i = (i + 1) & mask, n++) {
        struct mg_map_slot *s = &m->slots[i];
        if (!s->key)
            return NULL;
        if (s->key != MG_MAP_TOMB && s->hash == h && s->klen == klen &&
            memcmp(s->key, key, klen) == 0)
            return s;
    }
    return NULL;
}

static void mg_map_grow(struct mg_map *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 16;
    if (m->count * 10 < m->cap * 4)
        ncap = m->cap ? m->cap : 16; /* mostly tombstones: rehash at the same size */
    struct mg_map_slot *old = m->slots;
    size_t ocap = m->cap;
    m->slots = mg_calloc(ncap, sizeof *m->slots);
    m->cap = ncap;
    m->used = m->count;
    for (size_t i = 0; i < ocap; i++) {
        struct mg_map_slot *s = &old[i];
        if (!s->key || s->key == MG_MAP_TOMB)
            continue;
        size_t j = s->hash & (ncap - 1);
        while (m->slots[j].key)
            j = (j + 1) & (ncap - 1);
        m->slots[j] = *s;
    }
    mg_free(old);
}

void *mg_map_get(const struct mg_map *m, const void *key, size_t klen)
{
    struct mg_map_slot *s = mg_map_find(m, key, klen, mg_map_hash_bytes(key, klen));
    return s ? s->value : NULL;
}

void *mg_map_put(struct mg_map *m, const void *key, size_t klen, void *value)
{
    uint64_t h = mg_map_hash_bytes(key, klen);
    struct mg_map_slot *s = mg_map_find(m, key, klen, h);
    if (s) {
        void *prev = s->value;
        s->value = value;
        return prev;
    }
    if ((m->used + 1) * 10 >= m->cap * 7)
        mg_map_grow(m);
    size_t mask = m->cap - 1, i = h & mask;
    while (m->slots[i].key && m->slots[i].key != MG_MAP_TOMB)
        i = (i + 1) & mask;
    if (!m->slots[i].key)
        m->used++;
    s = &m->slots[i];
    s->key = mg_malloc(klen + 1);
    memcpy(s->key, key, klen);
    s->key[klen] = '\0'; /* string keys can be used as C strings */
    s->klen = klen;
    s->hash = h;
    s->value = value;
    m->count++;
    return NULL;
}

void *mg_map_del(struct mg_map *m, const void *key, size_t klen)
{
    struct mg_map_slot *s = mg_map_find(m, key, klen, mg_map_hash_bytes(key, klen));
    if (!s)
        return NULL;
    void *v = s->value;
    mg_free(s->key);
    s->key = MG_MAP_TOMB;
    s->value = NULL;
    m->count--;
    return v;
}

void *mg_map_get_str(const struct mg_map *m, const char *key)
{
    return mg_map_get(m, key, strlen(key));
}
void *mg_map_put_str(struct mg_map *m, const char *key, void *value)
{
    return mg_map_put(m, key, strlen(key), value);
}
void *mg_map_del_str(struct mg_map *m, const char *key)
{
    return mg_map_del(m, key, strlen(key));
}
void *mg_map_get_u64(const struct mg_map *m, uint64_t key)
{
    return mg_map_get(m, &key, sizeof key);
}
void *mg_map_put_u64(struct mg_map *m, uint64_t key, void *value)
{
    return mg_map_put(m, &key, sizeof key, value);
}
void *mg_map_del_u64(struct mg_map *m, uint64_t key)
{
    return mg_map_del(m, &key, sizeof key);
}

int mg_map_next(const struct mg_map *m, size_t *pos, const char **key, size_t *klen, void **value)
{
    while (*pos < m->cap) {
        struct mg_map_slot *s = &m->slots[(*pos)++];
        if (s->key && s->key != MG_MAP_TOMB) {
            if (key)
                *key = s->key;
            if (klen)
                *klen = s->klen;
            if (value)
                *value = s->value;
            return 1;
        }
    }
    return 0;
}
