/*
 * url.c - java.net.URLEncoder / URLDecoder (UTF-8) encoding of names (url.h).
 *
 * Plain byte loops: the output of encoding is at most three bytes per input byte, of
 * decoding at most one, so each allocates its bound once. Nothing fails but allocation
 * (which aborts, util/alloc.h).
 */
#include "util/url.h"
#include "util/alloc.h"

#include <stdbool.h>
#include <string.h>

static bool mg_url_unreserved(unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '-' || ch == '*' || ch == '_';
}

static int mg_url_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

char *mg_url_encode(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = mg_malloc(strlen(s) * 3 + 1), *o = out;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (mg_url_unreserved(*p)) {
            *o++ = (char)*p;
        } else if (*p == ' ') {
            *o++ = '+';
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

char *mg_url_decode(const char *s, size_t n, size_t *out_len)
{
    char *out = mg_malloc(n + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '+') {
            *o++ = ' ';
        } else if (s[i] == '%' && n - i >= 3 && (hi = mg_url_hexval(s[i + 1])) >= 0 &&
                   (lo = mg_url_hexval(s[i + 2])) >= 0) {
            *o++ = (char)(hi * 16 + lo);
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    if (out_len)
        *out_len = (size_t)(o - out);
    return out;
}
