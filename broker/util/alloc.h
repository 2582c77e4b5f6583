/*
 * alloc.h - allocation that never returns NULL: out of memory logs one line and aborts.
 * Lengths read from the wire must be checked against configured limits before they
 * reach these functions.
 */
#ifndef MG_ALLOC_H
#define MG_ALLOC_H

#include <stddef.h>

void *mg_malloc(size_t n);
void *mg_calloc(size_t count, size_t size);
void *mg_realloc(void *p, size_t n);
char *mg_strdup(const char *s);
char *mg_strndup(const char *s, size_t n);
/* printf into a new string. */
char *mg_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void mg_free(void *p);
/* Grow the array p, of *cap elements of elem bytes, to hold at least need: the capacity
 * doubles from *cap (min_cap when 0) until it does. Returns the array (moved or not);
 * *cap is the new capacity. The new elements are not initialised. */
void *mg_grow(void *p, size_t *cap, size_t need, size_t elem, size_t min_cap);
/* mg_free the n owned strings of v, then v. */
void mg_free_strv(char **v, int n);
/* Give the allocator's free memory back to the system (glibc keeps what was freed below the
 * top of its heap: after a burst, RSS would stay at the peak). For a caller that just freed
 * a large amount and expects a quiet spell (the tail cache emptied); costs a walk of the
 * free lists. A no-op without glibc. */
void mg_heap_trim(void);

#endif
