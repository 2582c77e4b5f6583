/*
 * map.h - an open-addressing hash map from byte-string keys to borrowed void * values.
 *
 * Keys are copied into the map (owned by it) with a NUL after their bytes, so string keys
 * returned by mg_map_next are C strings; values are borrowed (the map never frees them). Used for
 * topics by name, producers and consumers by id. Helpers for uint64 keys pass the 8 bytes of the
 * number. Not thread-safe: each map belongs to one loop thread.
 */
#ifndef MG_MAP_H
#define MG_MAP_H

#include <stddef.h>
#include <stdint.h>

struct mg_map_slot {
    char *key; /* owned; NULL = empty, MG_MAP_TOMB = deleted */
    size_t klen;
    uint64_t hash;
    void *value; /* borrowed */
};

struct mg_map {
    struct mg_map_slot *slots; /* owned */
    size_t cap;                /* power of two or 0 */
    size_t count;
    size_t used; /* count + tombstones */
};

void mg_map_init(struct mg_map *m);
void mg_map_fini(struct mg_map *m);
/* mg_map_fini, after passing every value to free_value (which may mg_map_del it). For maps
 * that own their values. */
void mg_map_fini_free(struct mg_map *m, void (*free_value)(void *value));
void *mg_map_get(const struct mg_map *m, const void *key, size_t klen);
/* Insert or replace; returns the previous value or NULL. */
void *mg_map_put(struct mg_map *m, const void *key, size_t klen, void *value);
/* Remove; returns the removed value or NULL. */
void *mg_map_del(struct mg_map *m, const void *key, size_t klen);

void *mg_map_get_str(const struct mg_map *m, const char *key);
void *mg_map_put_str(struct mg_map *m, const char *key, void *value);
void *mg_map_del_str(struct mg_map *m, const char *key);
void *mg_map_get_u64(const struct mg_map *m, uint64_t key);
void *mg_map_put_u64(struct mg_map *m, uint64_t key, void *value);
void *mg_map_del_u64(struct mg_map *m, uint64_t key);

/* Iterate: start with *pos = 0; returns 0 at the end. key, klen and value may be NULL
 * when not wanted. Do not insert while iterating; deleting the current entry is allowed. */
int mg_map_next(const struct mg_map *m, size_t *pos, const char **key, size_t *klen, void **value);

/* MurmurHash3's 32-bit finaliser (fmix32): every input bit flips about half the output
 * bits. It ends murmur3 (wire_murmur3_32) and spreads other 32-bit hashes. */
static inline uint32_t mg_hash_fmix32(uint32_t h)
{
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

#endif
