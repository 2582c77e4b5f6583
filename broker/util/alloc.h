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
/* mg_free the n owned strings of v, then v. */
void mg_free_strv(char **v, int n);

#endif
