/*
 * base64.h - base64 decoding (RFC 4648), the one decoder of the tree: Pulsar's base64
 * partition keys (the standard alphabet, java.util.Base64's basic decoder) and JSON Web
 * Tokens' segments and key values (the URL-safe alphabet, unpadded).
 */
#ifndef MG_BASE64_H
#define MG_BASE64_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Decode the len characters at in (url: the URL-safe alphabet, '-' and '_' for '+' and '/').
 * Up to two '=' of padding at the end are accepted, never required. out needs room for
 * MG_BASE64_DECODED_MAX(len) bytes. Returns the decoded length, or -1 for a character
 * outside the alphabet, padding elsewhere than at the end, or a length no encoding has. */
#define MG_BASE64_DECODED_MAX(len) ((len) / 4 * 3 + 3)
ssize_t mg_base64_decode(const char *in, size_t len, bool url, uint8_t *out);

#endif
