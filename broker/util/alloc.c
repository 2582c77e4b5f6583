/* alloc.c - malloc wrappers that abort with a log line on OOM. */
#include "util/alloc.h"
#include "util/log.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__ /* (defined by the headers above) */
#include <malloc.h>
#endif

static _Noreturn void mg_oom(size_t n)
{
    mg_log_write(MG_LOG_ERROR, "alloc", "out of memory allocating %zu bytes", n);
    abort();
}

void *mg_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        mg_oom(n);
    return p;
}

void *mg_calloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        mg_oom(count * size);
    return p;
}

void *mg_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        mg_oom(n);
    return q;
}

void *mg_grow(void *p, size_t *cap, size_t need, size_t elem, size_t min_cap)
{
    if (need <= *cap)
        return p;
    size_t c = *cap ? *cap : (min_cap ? min_cap : 1);
    while (c < need) {
        if (c > SIZE_MAX / 2 / elem)
            mg_oom(SIZE_MAX);
        c *= 2;
    }
    *cap = c;
    return mg_realloc(p, c * elem);
}

char *mg_strdup(const char *s)
{
    return mg_strndup(s, strlen(s));
}

char *mg_strndup(const char *s, size_t n)
{
    char *p = mg_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *mg_asprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    char *p = mg_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

void mg_free(void *p)
{
    free(p);
}

void mg_free_strv(char **v, int n)
{
    for (int i = 0; i < n; i++)
        mg_free(v[i]);
    mg_free(v);
}

void mg_heap_trim(void)
{
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}
