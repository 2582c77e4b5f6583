/*
 * url.h - the URL encoding of names stored in the metadata store and written in paths:
 * java.net.URLEncoder / URLDecoder (UTF-8), which Pulsar uses for the local part of a
 * managed-ledger name (topic "my topic" -> ML ".../persistent/my+topic") and for cursor
 * nodes (subscription "my sub/1" -> "my+sub%2F1").
 *
 * Encoding keeps A-Z a-z 0-9 . - * _, writes a space as '+' and every other byte as %XX
 * (upper-case hex). Decoding turns '+' into a space and %XX into the byte; a '%' not
 * followed by two hex digits is kept as it is (URLDecoder would throw; nothing we write
 * holds one). This is not the RFC 3986 encoding of HTTP paths (space is %20 there, '~' is
 * kept): for that, libevent's evhttp_uriencode.
 */
#ifndef MG_URL_H
#define MG_URL_H

#include <stddef.h>

/* s encoded; mg_malloc'd (mg_free), never NULL. */
char *mg_url_encode(const char *s);
/* The n bytes at s decoded; mg_malloc'd (mg_free), NUL-terminated, never NULL. A %00 in the
 * input is a NUL byte in the output: *out_len (may be NULL) gets the decoded length, so a
 * caller that cannot carry one can tell (strlen(result) != *out_len). */
char *mg_url_decode(const char *s, size_t n, size_t *out_len);

#endif
