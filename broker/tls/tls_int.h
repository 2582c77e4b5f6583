/*
 * tls_int.h - inside the tls module: a TLS context rebuilt when its files change, shared by
 * the listeners' server (tls.c) and the links between our processes (tls_link.c).
 */
#ifndef MG_TLS_INT_H
#define MG_TLS_INT_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

struct tls_file_id {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    bool exists;
};

/* Builds a context from the files the caller knows (arg): NULL with err set when they do
 * not load. */
typedef SSL_CTX *(*tls_build_fn)(const void *arg, char *err, size_t errlen);

/* The current context of up to three files (certificate, key, trust bundle), and the
 * identities (inode, size, mtime) of the files it was built from. */
struct tls_reload {
    SSL_CTX *ctx;         /* owned reference: what new connections get */
    const char *paths[3]; /* borrowed; NULL or "" = none */
    struct tls_file_id ids[3];
    tls_build_fn build;
    const void *arg; /* borrowed, for build */
};

/* Build the first context: 0, or -MG_EINVAL with err set (r untouched then). */
int tls_reload_init(struct tls_reload *r, const char *const paths[3], tls_build_fn build,
                    const void *arg, char *err, size_t errlen);
/* Compare the files with what was loaded; when one changed, build a new context and, if it
 * loads, make it current (live SSLs keep a reference to theirs). 1 = reloaded, 0 = nothing
 * changed, -MG_EINVAL = the changed files do not load (logged with what names; the old
 * context stays, and the next change of any file tries again). */
int tls_reload_check(struct tls_reload *r, const char *what);
void tls_reload_fini(struct tls_reload *r);

#endif
