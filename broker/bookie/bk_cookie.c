/*
 * bk_cookie.c - the bookie's identity: a cookie in each of its directories and in the
 * metadata store, checked at every start (loop thread, inside bk_server_new), and
 * `magnetar bookie --format`, the explicit way to start over.
 *
 * A cookie records what a bookie was when it first started: its bookie id, its journal and
 * ledger directories and the cluster's instance id (/ledgers/INSTANCEID, created with a
 * random UUID by the first bookie that finds it missing, together with /ledgers/available
 * and that bookie's store cookie: one group, one sync of the embedded store). It is written as
 * BookKeeper writes it (Cookie.java, layout version 5: the version on its own line, then protobuf
 * text of CookieFormat) to <dir>/current/VERSION in the journal and every ledger directory and to
 * /ledgers/cookies/<bookieId>. A later start compares the cookies with what the
 * configuration says now and refuses (-MG_ENOTALLOWED, one ERROR line naming the directory
 * or the address that changed and how to proceed) when they differ, when some directories
 * lost theirs, or when the directories are empty but the store remembers the bookie: a
 * bookie that came back on an empty or foreign disk would otherwise answer "no such entry"
 * for data that the clients believe it holds. The rules, and where they differ from
 * BookKeeper's, are in broker/bookie/README.md ("Cookie").
 *
 * Metadata operations are asynchronous; at start they are waited for by running the event
 * loop (event_base_loop EVLOOP_ONCE) until each completes, bounded by the store's own
 * operation timeout and by BK_COOKIE_WAIT_MS. The bookie already listens (its id may name
 * the bound port) but closes every connection until its storage is open.
 */
#include "bookie/bookie_int.h"
#include "meta/meta.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/fs.h"
#include "util/log.h"

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

/* Weak: resolved only if the meta module is linked (see bk_reg.c). */
#pragma weak meta_get
#pragma weak meta_put
#pragma weak meta_delete
#pragma weak meta_req_fini

#define BK_COOKIE_LAYOUT 5      /* BookKeeper's current cookie layout version */
#define BK_COOKIE_WAIT_MS 60000 /* longest wait for one metadata operation at start */
#define BK_INSTANCEID_PATH "/ledgers/INSTANCEID"
#define BK_COOKIES_PATH "/ledgers/cookies"
#define BK_AVAILABLE_PATH "/ledgers/available" /* bk_reg.c registers the bookies under it */

static const char *const FORMAT_HINT =
    "if this bookie's data is really gone, `magnetar bookie --format --force` (same "
    "configuration) deletes its directories' contents and cookies so that it starts as a new "
    "bookie; the copies it held are lost, the other bookies of each ensemble keep theirs";

/* ---- text format ------------------------------------------------------------------------ */

void bk_cookie_fini(struct bk_cookie *c)
{
    mg_free(c->bookie_host);
    mg_free(c->journal_dirs);
    mg_free(c->ledger_dirs);
    mg_free(c->instance_id);
    memset(c, 0, sizeof *c);
}

/* Append s as a protobuf text-format string literal (what TextFormat prints). */
static void bk_cookie_quote(char **buf, size_t *len, size_t *cap, const char *s)
{
    size_t need = *len + 4 * strlen(s) + 3;
    if (need > *cap) {
        *cap = need * 2;
        *buf = mg_realloc(*buf, *cap);
    }
    char *p = *buf + *len;
    *p++ = '"';
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        switch (*c) {
        case '"':
            *p++ = '\\', *p++ = '"';
            break;
        case '\\':
            *p++ = '\\', *p++ = '\\';
            break;
        case '\t':
            *p++ = '\\', *p++ = 't';
            break;
        case '\n':
            *p++ = '\\', *p++ = 'n';
            break;
        case '\r':
            *p++ = '\\', *p++ = 'r';
            break;
        default:
            if (*c < 0x20 || *c >= 0x7f) {
                p += sprintf(p, "\\%03o", *c);
            } else {
                *p++ = (char)*c;
            }
        }
    }
    *p++ = '"';
    *p = '\0';
    *len = (size_t)(p - *buf);
}

static void bk_cookie_field(char **buf, size_t *len, size_t *cap, const char *name, const char *v)
{
    size_t need = *len + strlen(name) + 4;
    if (need > *cap) {
        *cap = need * 2;
        *buf = mg_realloc(*buf, *cap);
    }
    *len += (size_t)sprintf(*buf + *len, "%s: ", name);
    bk_cookie_quote(buf, len, cap, v);
    need = *len + 2;
    if (need > *cap) {
        *cap = need * 2;
        *buf = mg_realloc(*buf, *cap);
    }
    (*buf)[(*len)++] = '\n';
    (*buf)[*len] = '\0';
}

char *bk_cookie_text(const struct bk_cookie *c)
{
    size_t cap = 256, len = 0;
    char *buf = mg_malloc(cap);
    len = (size_t)snprintf(buf, cap, "%d\n", BK_COOKIE_LAYOUT);
    bk_cookie_field(&buf, &len, &cap, "bookieHost", c->bookie_host);
    bk_cookie_field(&buf, &len, &cap, "journalDir", c->journal_dirs);
    bk_cookie_field(&buf, &len, &cap, "ledgerDirs", c->ledger_dirs);
    if (c->instance_id)
        bk_cookie_field(&buf, &len, &cap, "instanceId", c->instance_id);
    return buf;
}

/* Parse a string literal at *p (after optional spaces) into a new string; advances *p. */
static char *bk_cookie_unquote(const char **p, const char *end)
{
    const char *s = *p;
    while (s < end && (*s == ' ' || *s == '\t'))
        s++;
    if (s >= end || (*s != '"' && *s != '\''))
        return NULL;
    char q = *s++;
    char *out = mg_malloc((size_t)(end - s) + 1);
    size_t n = 0;
    while (s < end && *s != q) {
        if (*s == '\n')
            goto bad;
        if (*s != '\\') {
            out[n++] = *s++;
            continue;
        }
        if (++s >= end)
            goto bad;
        char e = *s++;
        switch (e) {
        case 't':
            out[n++] = '\t';
            break;
        case 'n':
            out[n++] = '\n';
            break;
        case 'r':
            out[n++] = '\r';
            break;
        case '"':
        case '\'':
        case '\\':
            out[n++] = e;
            break;
        default:
            if (e >= '0' && e <= '7') {
                int v = e - '0';
                for (int i = 0; i < 2 && s < end && *s >= '0' && *s <= '7'; i++)
                    v = v * 8 + (*s++ - '0');
                if (v == 0 || v > 255)
                    goto bad;
                out[n++] = (char)v;
            } else {
                goto bad;
            }
        }
    }
    if (s >= end)
        goto bad;
    out[n] = '\0';
    *p = s + 1;
    return out;
bad:
    mg_free(out);
    return NULL;
}

int bk_cookie_parse(const char *text, size_t len, struct bk_cookie *c)
{
    memset(c, 0, sizeof *c);
    const char *p = text, *end = text + len;
    const char *nl = memchr(p, '\n', len);
    if (!nl)
        return -MG_EPROTO;
    char ver[16];
    size_t vl = (size_t)(nl - p);
    if (vl == 0 || vl >= sizeof ver)
        return -MG_EPROTO;
    memcpy(ver, p, vl);
    ver[vl] = '\0';
    char *ve;
    long v = strtol(ver, &ve, 10);
    while (*ve == ' ' || *ve == '\r')
        ve++;
    if (*ve || v < 3 || v > 1000)
        return -MG_EPROTO;
    c->layout = (int)v;
    p = nl + 1;
    if (v == 3) { /* three plain lines: bookie, journal dirs, ledger dirs */
        char **f[] = {&c->bookie_host, &c->journal_dirs, &c->ledger_dirs};
        for (int i = 0; i < 3; i++) {
            nl = memchr(p, '\n', (size_t)(end - p));
            if (!nl)
                goto bad;
            *f[i] = mg_strndup(p, (size_t)(nl - p));
            p = nl + 1;
        }
        return 0;
    }
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
            p++;
        if (p >= end)
            break;
        const char *name = p;
        while (p < end && *p != ':' && *p != ' ' && *p != '\n')
            p++;
        size_t nlen = (size_t)(p - name);
        while (p < end && *p == ' ')
            p++;
        if (p >= end || *p != ':')
            goto bad;
        p++;
        char *val = bk_cookie_unquote(&p, end);
        if (!val)
            goto bad;
        char **dst = NULL;
        if (nlen == 10 && memcmp(name, "bookieHost", 10) == 0)
            dst = &c->bookie_host;
        else if (nlen == 10 && memcmp(name, "journalDir", 10) == 0)
            dst = &c->journal_dirs;
        else if (nlen == 10 && memcmp(name, "ledgerDirs", 10) == 0)
            dst = &c->ledger_dirs;
        else if (nlen == 10 && memcmp(name, "instanceId", 10) == 0)
            dst = &c->instance_id;
        if (dst) { /* indexDirs and fields of later versions are ignored */
            mg_free(*dst);
            *dst = val;
        } else {
            mg_free(val);
        }
    }
    if (!c->bookie_host || !c->journal_dirs || !c->ledger_dirs)
        goto bad;
    if (c->instance_id && !c->instance_id[0]) { /* empty = none, as BookKeeper reads it */
        mg_free(c->instance_id);
        c->instance_id = NULL;
    }
    return 0;
bad:
    bk_cookie_fini(c);
    return -MG_EPROTO;
}

/* "1\t/a" -> "/a" for messages (the count is BookKeeper's encoding). */
static const char *bk_cookie_dirs_shown(const char *ledger_dirs)
{
    const char *t = strchr(ledger_dirs, '\t');
    return t ? t + 1 : ledger_dirs;
}

/* What differs between a found cookie and the expected one, as a phrase; NULL = same. */
static char *bk_cookie_diff(const struct bk_cookie *found, const struct bk_cookie *want)
{
    if (strcmp(found->bookie_host, want->bookie_host) != 0)
        return mg_asprintf("it belongs to bookie %s but this bookie is %s: advertisedAddress, "
                           "bookieId or bookiePort changed (set them back to start this "
                           "bookie with its data)",
                           found->bookie_host, want->bookie_host);
    if (strcmp(found->journal_dirs, want->journal_dirs) != 0)
        return mg_asprintf("it was written with journalDirectory %s, the configuration now says "
                           "%s",
                           found->journal_dirs, want->journal_dirs);
    if (strcmp(found->ledger_dirs, want->ledger_dirs) != 0)
        return mg_asprintf("it was written with ledgerDirectories %s, the configuration now "
                           "says %s",
                           bk_cookie_dirs_shown(found->ledger_dirs),
                           bk_cookie_dirs_shown(want->ledger_dirs));
    bool fi = found->instance_id != NULL, wi = want->instance_id != NULL;
    if (fi == wi && (!fi || strcmp(found->instance_id, want->instance_id) == 0))
        return NULL;
    char *now =
        wi ? mg_asprintf("the metadata store's " BK_INSTANCEID_PATH " is %s", want->instance_id)
           : mg_strdup("this bookie has no metadata store");
    char *why =
        mg_asprintf("it belongs to cluster instance %s but %s: metadataStoreUrl now "
                    "names another cluster's store, or the cluster's metadata was "
                    "created anew",
                    fi ? found->instance_id : "(none: written without a metadata store)", now);
    mg_free(now);
    return why;
}

/* ---- files ------------------------------------------------------------------------------- */

static char *bk_cookie_path(const char *dir)
{
    return mg_asprintf("%s/current/" BK_COOKIE_FILE, dir);
}

/* 0 and *c, -MG_ENOTFOUND (no cookie file), -MG_EPROTO (unreadable content), or an I/O error. */
static int bk_cookie_read_file(const char *dir, struct bk_cookie *c)
{
    memset(c, 0, sizeof *c);
    char *path = bk_cookie_path(dir);
    FILE *f = fopen(path, "r");
    mg_free(path);
    if (!f)
        return errno == ENOENT ? -MG_ENOTFOUND : mg_err_from_errno(errno);
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf, f);
    int err = ferror(f);
    fclose(f);
    if (err)
        return -MG_EIO;
    if (n == sizeof buf)
        return -MG_EPROTO;
    return bk_cookie_parse(buf, n, c);
}

static int bk_cookie_write_file(const char *dir, const char *text)
{
    char *cur = mg_asprintf("%s/current", dir);
    char *path = bk_cookie_path(dir);
    char *tmp = mg_asprintf("%s.tmp", path);
    int rc = mg_mkdirs(cur);
    int fd = -1;
    if (rc == 0) {
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
            rc = mg_err_from_errno(errno);
    }
    if (rc == 0 && mg_write_all(fd, text, strlen(text)) < 0)
        rc = mg_err_from_errno(errno);
    if (rc == 0 && fsync(fd) != 0)
        rc = mg_err_from_errno(errno);
    if (fd >= 0)
        close(fd);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = mg_err_from_errno(errno);
    if (rc == 0)
        rc = mg_fsync_dir(cur);
    if (rc < 0) {
        MG_ERROR(BK_MODULE, "cannot write the cookie %s: %s", path, mg_strerror(rc));
        unlink(tmp);
    }
    mg_free(cur);
    mg_free(path);
    mg_free(tmp);
    return rc;
}

/* Does <dir>/current hold anything besides the cookie? (The lock file is outside it.) */
static bool bk_dir_has_data(const char *dir)
{
    char *cur = mg_asprintf("%s/current", dir);
    DIR *d = opendir(cur);
    mg_free(cur);
    if (!d)
        return false;
    bool data = false;
    struct dirent *de;
    while (!data && (de = readdir(d)) != NULL)
        data = strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 &&
               strcmp(de->d_name, BK_COOKIE_FILE) != 0 &&
               strcmp(de->d_name, BK_COOKIE_FILE ".tmp") != 0;
    closedir(d);
    return data;
}

int bk_cookie_port_hint(const struct bk_dirs *dirs)
{
    for (unsigned i = 0; i < dirs->n; i++) {
        struct bk_cookie c;
        if (bk_cookie_read_file(dirs->all[i], &c) < 0)
            continue;
        const char *colon = strrchr(c.bookie_host, ':');
        char *e = NULL;
        long port = colon ? strtol(colon + 1, &e, 10) : 0;
        bool ok = colon && e && *e == '\0' && port > 0 && port <= 65535;
        bk_cookie_fini(&c);
        if (ok)
            return (int)port;
    }
    return 0;
}

/* ---- metadata store, waited for ----------------------------------------------------------- */

struct bk_msync {
    struct meta_req req; /* first: the callback gets it back */
    bool done, abandoned;
    int status;
};

static void bk_msync_cb(struct meta_req *req, int status)
{
    struct bk_msync *m = (struct bk_msync *)req;
    if (m->abandoned) {
        meta_req_fini(req);
        mg_free(m);
        return;
    }
    m->done = true;
    m->status = status;
}

static void bk_msync_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    *(bool *)arg = true;
}

/* Wait for the request just issued (rc: what the call returned). Returns its status; the
 * request's results stay in m until bk_msync_free. */
static int bk_msync_wait(struct event_base *base, struct bk_msync *m, int rc)
{
    if (rc < 0) {
        m->done = true;
        m->status = rc;
        return rc;
    }
    bool expired = false;
    struct event *t = evtimer_new(base, bk_msync_timeout, &expired);
    struct timeval tv = {BK_COOKIE_WAIT_MS / 1000, 0};
    evtimer_add(t, &tv);
    while (!m->done && !expired)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(t);
    if (!m->done)
        return -MG_ETIMEDOUT;
    return m->status;
}

static struct bk_msync *bk_msync_new(void)
{
    return mg_calloc(1, sizeof(struct bk_msync));
}

static void bk_msync_free(struct bk_msync *m)
{
    if (!m)
        return;
    if (!m->done) { /* still in flight: its callback frees it */
        m->abandoned = true;
        return;
    }
    meta_req_fini(&m->req);
    mg_free(m);
}

/* Read path into *val (NULL if absent). Returns 0 (found or absent) or the error. */
static int bk_meta_read(struct event_base *base, struct meta_store *meta, const char *path,
                        char **val, size_t *len)
{
    *val = NULL;
    *len = 0;
    struct bk_msync *m = bk_msync_new();
    int rc = bk_msync_wait(base, m, meta_get(meta, path, &m->req, bk_msync_cb));
    if (rc == 0) {
        *val = mg_strndup(m->req.value ? m->req.value : "", m->req.len);
        *len = m->req.len;
    } else if (rc == -MG_ENOTFOUND) {
        rc = 0;
    }
    bk_msync_free(m);
    return rc;
}

/* Create the n paths with their values in one go: every put is issued before any is waited
 * for, so the embedded store makes them durable with one sync (one group) and ZooKeeper
 * pipelines them. rcs[i] gets each put's status (-MG_EEXIST if it is there). */
static void bk_meta_create_group(struct event_base *base, struct meta_store *meta,
                                 const char *const *paths, const char *const *vals, int n, int *rcs)
{
    struct bk_msync *m[4];
    for (int i = 0; i < n; i++) {
        m[i] = bk_msync_new();
        int rc = meta_put(meta, paths[i], vals[i], strlen(vals[i]), META_VERSION_NONE,
                          META_PERSISTENT | META_CREATE_PARENTS, &m[i]->req, bk_msync_cb);
        if (rc < 0) {
            m[i]->done = true;
            m[i]->status = rc;
        }
    }
    for (int i = 0; i < n; i++) {
        rcs[i] = m[i]->done ? m[i]->status : bk_msync_wait(base, m[i], 0);
        bk_msync_free(m[i]);
    }
}

static int bk_meta_remove(struct event_base *base, struct meta_store *meta, const char *path)
{
    struct bk_msync *m = bk_msync_new();
    int rc =
        bk_msync_wait(base, m, meta_delete(meta, path, META_VERSION_ANY, &m->req, bk_msync_cb));
    bk_msync_free(m);
    return rc == -MG_ENOTFOUND ? 0 : rc;
}

/* A random (version 4) UUID, as BookKeeper's metaformat writes to /ledgers/INSTANCEID. */
static char *bk_new_uuid(void)
{
    uint8_t b[16];
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t n = getrandom(b + got, sizeof b - got, 0);
        if (n < 0 && errno != EINTR)
            break;
        if (n > 0)
            got += (size_t)n;
    }
    if (got < sizeof b) { /* no getrandom: time and pid, still unique enough per cluster */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x =
            (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 40);
        for (size_t i = 0; i < sizeof b; i++, x = x * 6364136223846793005u + 1442695040888963407u)
            b[i] = (uint8_t)(x >> 56);
    }
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    return mg_asprintf("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
                       b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
                       b[13], b[14], b[15]);
}

/* The cluster's instance id: the one at /ledgers/INSTANCEID (*fresh false) or, when it is
 * missing or empty, a new one (*fresh true) that bk_cookie_stamp creates together with the
 * bookie's cookie. */
static int bk_instance_id(struct event_base *base, struct meta_store *meta, char **out, bool *fresh)
{
    *out = NULL;
    *fresh = false;
    char *val;
    size_t len;
    int rc = bk_meta_read(base, meta, BK_INSTANCEID_PATH, &val, &len);
    if (rc < 0) {
        MG_ERROR(BK_MODULE, "cannot read %s from the metadata store: %s", BK_INSTANCEID_PATH,
                 mg_strerror(rc));
        return rc;
    }
    if (val && len > 0) {
        *out = val;
        return 0;
    }
    mg_free(val);
    *out = bk_new_uuid();
    *fresh = true;
    return 0;
}

/* ---- the start check ---------------------------------------------------------------------- */

struct bk_cdir {
    const char *key; /* configuration key naming it */
    const char *dir;
    int rc; /* 0: cookie read; -MG_ENOTFOUND: none */
    struct bk_cookie c;
    bool data;
};

static bool bk_same_dir(const char *a, const char *b)
{
    struct stat sa, sb;
    if (strcmp(a, b) == 0)
        return true;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

/* Split a comma-separated directory list (blanks around each trimmed) into out[] (owned).
 * The count, or -MG_EINVAL (logged) when it is empty, has an empty item or more than max. */
static int bk_dirs_split(const char *key, const char *list, char **out, unsigned max)
{
    unsigned n = 0;
    const char *p = list ? list : "";
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len == 0 || n == max) {
            MG_ERROR(BK_MODULE, "%s=%s: %s", key, list ? list : "",
                     len == 0 ? "an empty directory name" : "too many directories");
            while (n > 0)
                mg_free(out[--n]);
            return -MG_EINVAL;
        }
        out[n++] = mg_strndup(p, len);
        if (!end)
            return (int)n;
        p = end + 1;
    }
}

int bk_dirs_init(struct bk_dirs *d, const char *journal_dirs, const char *ledger_dirs)
{
    memset(d, 0, sizeof *d);
    char *j[2];
    int nj = bk_dirs_split("journalDirectories", journal_dirs, j, 2);
    if (nj < 0)
        return nj;
    d->journal = j[0];
    if (nj > 1) {
        MG_ERROR(BK_MODULE,
                 "journalDirectories=%s: one journal directory is supported (each journal "
                 "needs its own thread and lastMark)",
                 journal_dirs);
        mg_free(j[1]);
        bk_dirs_fini(d);
        return -MG_EINVAL;
    }
    int nl = bk_dirs_split("ledgerDirectories", ledger_dirs, d->ledger, BK_MAX_LEDGER_DIRS);
    if (nl < 0) {
        bk_dirs_fini(d);
        return nl;
    }
    d->n_ledger = (unsigned)nl;
    d->all[0] = d->journal;
    d->key[0] = "journalDirectory";
    d->n = 1;
    for (unsigned i = 0; i < d->n_ledger; i++) {
        int rc = mg_mkdirs(d->ledger[i]);
        if (rc < 0) {
            MG_ERROR(BK_MODULE, "ledgerDirectories: cannot create %s: %s", d->ledger[i],
                     mg_strerror(rc));
            bk_dirs_fini(d);
            return rc;
        }
        for (unsigned k = 0; k < i; k++)
            if (bk_same_dir(d->ledger[k], d->ledger[i])) {
                MG_ERROR(BK_MODULE, "ledgerDirectories: %s and %s are the same directory",
                         d->ledger[k], d->ledger[i]);
                bk_dirs_fini(d);
                return -MG_EINVAL;
            }
        if (mg_mkdirs(d->journal) == 0 && bk_same_dir(d->journal, d->ledger[i]))
            continue; /* one cookie and one lock */
        d->all[d->n] = d->ledger[i];
        d->key[d->n++] = "ledgerDirectories";
    }
    return 0;
}

void bk_dirs_fini(struct bk_dirs *d)
{
    mg_free(d->journal);
    for (unsigned i = 0; i < d->n_ledger; i++)
        mg_free(d->ledger[i]);
    memset(d, 0, sizeof *d);
}

/* The cookie's ledgerDirs field: "<count>\t<dir>\t<dir>...". */
static char *bk_dirs_cookie_field(const struct bk_dirs *d)
{
    char *f = mg_asprintf("%u", d->n_ledger);
    for (unsigned i = 0; i < d->n_ledger; i++) {
        char *g = mg_asprintf("%s\t%s", f, d->ledger[i]);
        mg_free(f);
        f = g;
    }
    return f;
}

int bk_dirs_lock(const struct bk_dirs *d, int *fds)
{
    for (unsigned i = 0; i < d->n; i++)
        fds[i] = -1;
    for (unsigned i = 0; i < d->n; i++) {
        fds[i] = bk_dir_lock(d->all[i], d->key[i]);
        if (fds[i] < 0) {
            int rc = fds[i];
            fds[i] = -1;
            bk_dirs_unlock(d, fds);
            return rc;
        }
    }
    return 0;
}

void bk_dirs_unlock(const struct bk_dirs *d, int *fds)
{
    for (unsigned i = 0; i < d->n; i++)
        if (fds[i] >= 0) {
            close(fds[i]);
            fds[i] = -1;
        }
}

/* Write the cookie to the metadata store, then (dirs_too) to every directory. With a fresh
 * instance id (a new cluster) the store's writes are those of BookKeeper's initNewCluster
 * plus the cookie: /ledgers/INSTANCEID, the /ledgers/available parent of the bookies'
 * registrations and /ledgers/cookies/<id>, issued together so that the embedded store makes
 * them durable with one sync instead of three. -MG_EAGAIN: another bookie created the
 * instance id meanwhile (this bookie's cookie, which named its own, is removed again). */
static int bk_cookie_stamp(struct event_base *base, struct meta_store *meta, struct bk_cdir *d,
                           int n, const struct bk_cookie *want, const char *store_path, bool fresh,
                           bool dirs_too)
{
    char *text = bk_cookie_text(want);
    int rc = 0;
    /* the store's cookie first (create-only, as BookKeeper registers it first): when another
     * bookie with this id holds it, nothing is written here, so every later start is refused
     * too instead of finding this bookie's directories stamped */
    if (meta) {
        const char *paths[3] = {BK_INSTANCEID_PATH, BK_AVAILABLE_PATH, store_path};
        const char *vals[3] = {want->instance_id, "", text};
        int rcs[3];
        int first = fresh ? 0 : 2;
        bk_meta_create_group(base, meta, paths + first, vals + first, 3 - first, rcs + first);
        rc = rcs[2];
        if (fresh && rcs[0] < 0) {
            if (rc == 0)
                bk_meta_remove(base, meta, store_path);
            if (rcs[0] == -MG_EEXIST) {
                mg_free(text);
                return -MG_EAGAIN;
            }
            MG_ERROR(BK_MODULE, "cannot create %s: %s", BK_INSTANCEID_PATH, mg_strerror(rcs[0]));
            mg_free(text);
            return rcs[0];
        }
        if (fresh && rcs[1] < 0 && rcs[1] != -MG_EEXIST) /* the registration retries it */
            MG_WARN(BK_MODULE, "cannot create %s: %s", BK_AVAILABLE_PATH, mg_strerror(rcs[1]));
        if (fresh && rc == 0)
            MG_INFO(BK_MODULE, "created the cluster's instance id %s at %s", want->instance_id,
                    BK_INSTANCEID_PATH);
        if (rc == -MG_EEXIST)
            MG_ERROR(BK_MODULE,
                     "the metadata store got a cookie at %s while this bookie started: another "
                     "bookie with the id %s is starting; give each bookie its own id",
                     store_path, want->bookie_host);
        else if (rc < 0)
            MG_ERROR(BK_MODULE, "cannot write the cookie %s to the metadata store: %s", store_path,
                     mg_strerror(rc));
    }
    for (int i = 0; dirs_too && i < n && rc == 0; i++)
        rc = bk_cookie_write_file(d[i].dir, text);
    mg_free(text);
    return rc == -MG_EEXIST ? -MG_ENOTALLOWED : rc;
}

static int bk_cookie_check_once(struct event_base *base, struct meta_store *meta,
                                const char *bookie_id, const struct bk_dirs *dirs,
                                const char *ledger_list)
{
    const char *journal_dir = dirs->journal;
    struct bk_cookie want = {
        .layout = BK_COOKIE_LAYOUT,
        .bookie_host = mg_strdup(bookie_id),
        .journal_dirs = mg_strdup(journal_dir),
        .ledger_dirs = bk_dirs_cookie_field(dirs),
    };
    struct bk_cdir d[BK_MAX_LEDGER_DIRS + 1];
    memset(d, 0, sizeof d);
    int n = (int)dirs->n;
    for (int i = 0; i < n; i++) {
        d[i].key = dirs->key[i];
        d[i].dir = dirs->all[i];
    }
    char *store_path = mg_asprintf(BK_COOKIES_PATH "/%s", bookie_id);
    char *store_val = NULL;
    size_t store_len = 0;
    struct bk_cookie store = {0};
    bool have_store = false, fresh = false;
    int rc = 0;
    if (meta) {
        rc = bk_instance_id(base, meta, &want.instance_id, &fresh);
        if (rc == 0) {
            rc = bk_meta_read(base, meta, store_path, &store_val, &store_len);
            if (rc < 0)
                MG_ERROR(BK_MODULE,
                         "cannot read this bookie's cookie %s from the metadata store: %s",
                         store_path, mg_strerror(rc));
        }
        if (rc == 0 && store_val) {
            if (bk_cookie_parse(store_val, store_len, &store) < 0) {
                MG_ERROR(BK_MODULE, "the metadata store's cookie %s is unreadable; %s", store_path,
                         FORMAT_HINT);
                rc = -MG_ENOTALLOWED;
            } else {
                have_store = true;
            }
        }
        if (rc < 0)
            goto out;
    }
    int stamped = 0, with_data = 0;
    for (int i = 0; i < n; i++) {
        d[i].rc = bk_cookie_read_file(d[i].dir, &d[i].c);
        d[i].data = bk_dir_has_data(d[i].dir);
        with_data += d[i].data;
        if (d[i].rc == 0) {
            stamped++;
            char *why = bk_cookie_diff(&d[i].c, &want);
            if (why) {
                MG_ERROR(BK_MODULE,
                         "%s %s: its cookie does not match this bookie: %s. Refusing to "
                         "start; %s",
                         d[i].key, d[i].dir, why, FORMAT_HINT);
                mg_free(why);
                rc = -MG_ENOTALLOWED;
                goto out;
            }
        } else if (d[i].rc != -MG_ENOTFOUND) {
            char *path = bk_cookie_path(d[i].dir);
            MG_ERROR(BK_MODULE, "%s %s: cannot read its cookie %s: %s. Refusing to start; %s",
                     d[i].key, d[i].dir, path,
                     d[i].rc == -MG_EPROTO ? "not a cookie" : mg_strerror(d[i].rc), FORMAT_HINT);
            mg_free(path);
            rc = -MG_ENOTALLOWED;
            goto out;
        }
    }
    if (have_store) {
        char *why = bk_cookie_diff(&store, &want);
        if (why) {
            MG_ERROR(BK_MODULE,
                     "the metadata store's cookie %s does not match this bookie: %s. Refusing "
                     "to start; %s",
                     store_path, why, FORMAT_HINT);
            mg_free(why);
            rc = -MG_ENOTALLOWED;
            goto out;
        }
    }
    if (stamped == n) {
        if (!meta || have_store)
            goto out; /* the same bookie as before */
        if (with_data == 0) {
            /* a first start of an older version (which wrote the directories' cookies first)
             * stopped before the store's */
            MG_INFO(BK_MODULE,
                    "bookie %s: writing its cookie %s (its first start stopped "
                    "before it)",
                    bookie_id, store_path);
            rc = bk_cookie_stamp(base, meta, d, n, &want, store_path, fresh, false);
            goto out;
        }
        MG_ERROR(BK_MODULE,
                 "bookie %s: its directories have cookies but the metadata store has no %s: "
                 "the cookie was deleted (the bookie was decommissioned) or metadataStoreUrl "
                 "names another cluster's store. Refusing to start; %s",
                 bookie_id, store_path, FORMAT_HINT);
        rc = -MG_ENOTALLOWED;
        goto out;
    }
    if (stamped > 0) {
        const struct bk_cdir *has = d;
        while (has->rc != 0)
            has++;
        for (int i = 0; i < n; i++)
            if (d[i].rc != 0)
                MG_ERROR(BK_MODULE,
                         "%s %s has no cookie (%s/current/" BK_COOKIE_FILE
                         ") while %s %s has one: the directory was wiped, replaced or is not "
                         "mounted, and the ledger data this bookie had there is missing. "
                         "Refusing to start: mount the right disk (or fix %s) and start "
                         "again; %s",
                         d[i].key, d[i].dir, d[i].dir, has->key, has->dir, d[i].key, FORMAT_HINT);
        rc = -MG_ENOTALLOWED;
        goto out;
    }
    /* no directory has a cookie */
    if (have_store) {
        MG_ERROR(BK_MODULE,
                 "bookie %s: the metadata store has its cookie %s but none of its directories "
                 "(journalDirectory %s, ledgerDirectories %s) has one: the bookie is starting "
                 "on empty or replaced disks and would answer as if it never held the entries "
                 "written to it. Refusing to start: mount the right disks and start again; %s",
                 bookie_id, store_path, journal_dir, ledger_list, FORMAT_HINT);
        rc = -MG_ENOTALLOWED;
        goto out;
    }
    if (with_data > 0 && with_data < n) {
        const struct bk_cdir *full = d, *empty = d;
        while (!full->data)
            full++;
        while (empty->data)
            empty++;
        MG_ERROR(BK_MODULE,
                 "%s %s holds bookie data without a cookie while %s %s is empty: one of them "
                 "was wiped or replaced. Refusing to start; %s",
                 full->key, full->dir, empty->key, empty->dir, FORMAT_HINT);
        rc = -MG_ENOTALLOWED;
        goto out;
    }
    if (with_data > 0)
        MG_WARN(BK_MODULE,
                "bookie %s: its directories hold data written before cookies existed; "
                "writing cookies to them%s",
                bookie_id, meta ? " and to the metadata store" : "");
    else
        MG_INFO(BK_MODULE, "new bookie %s: writing cookies to %s%s%s%s", bookie_id, journal_dir,
                n > 1 ? " and " : "", n > 1 ? ledger_list : "",
                meta ? " and the metadata store" : "");
    rc = bk_cookie_stamp(base, meta, d, n, &want, store_path, fresh, true);
out:
    for (int i = 0; i < n; i++)
        bk_cookie_fini(&d[i].c);
    bk_cookie_fini(&store);
    bk_cookie_fini(&want);
    mg_free(store_val);
    mg_free(store_path);
    return rc;
}

int bk_cookie_check(struct event_base *base, struct meta_store *meta, const char *bookie_id,
                    const struct bk_dirs *dirs, const char *ledger_list)
{
    if (meta && (!meta_get || !meta_put || !meta_delete || !meta_req_fini))
        meta = NULL;
    /* a second try reads the instance id another bookie created meanwhile */
    for (int attempt = 0; attempt < 2; attempt++) {
        int rc = bk_cookie_check_once(base, meta, bookie_id, dirs, ledger_list);
        if (rc != -MG_EAGAIN)
            return rc;
    }
    MG_ERROR(BK_MODULE, "%s is empty in the metadata store", BK_INSTANCEID_PATH);
    return -MG_EMETA;
}

/* ---- format ------------------------------------------------------------------------------ */

static int bk_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

/* Remove <dir>/current and everything in it. */
static int bk_rm_current(const char *dir)
{
    char *cur = mg_asprintf("%s/current", dir);
    int rc = 0;
    struct stat st;
    if (lstat(cur, &st) == 0 && nftw(cur, bk_rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
        rc = mg_err_from_errno(errno ? errno : EIO);
    if (rc == 0)
        rc = mg_fsync_dir(dir);
    if (rc < 0)
        MG_ERROR(BK_MODULE, "format: cannot remove %s: %s", cur, mg_strerror(rc));
    mg_free(cur);
    return rc;
}

int bk_format(struct event_base *base, struct meta_store *meta, const struct bk_options *o,
              bool force)
{
    if (meta && (!meta_get || !meta_put || !meta_delete || !meta_req_fini))
        meta = NULL;
    struct bk_dirs ds;
    int rc = bk_dirs_init(&ds, o->journal_dir, o->ledger_dir);
    if (rc < 0)
        return rc;
    const char *const *dirs = ds.all, *const *keys = ds.key;
    int n = (int)ds.n;
    int lock[BK_MAX_LEDGER_DIRS + 1];
    char *ids[BK_MAX_LEDGER_DIRS + 2];
    int nids = 0;
    rc = bk_dirs_lock(&ds, lock);
    if (rc < 0) {
        bk_dirs_fini(&ds);
        return rc;
    }
    /* the bookie ids whose store cookies go: the ones in the local cookies, and the
     * configured one (known unless it depends on a bookiePort of 0) */
    for (int i = 0; i < n; i++) {
        struct bk_cookie c;
        if (bk_cookie_read_file(dirs[i], &c) == 0) {
            bool dup = false;
            for (int k = 0; k < nids; k++)
                dup |= strcmp(ids[k], c.bookie_host) == 0;
            if (!dup)
                ids[nids++] = mg_strdup(c.bookie_host);
            bk_cookie_fini(&c);
        }
    }
    char *cfg_id =
        o->bookie_id && o->bookie_id[0] ? mg_strdup(o->bookie_id)
        : o->port > 0
            ? mg_asprintf("%s:%d", o->advertised_address ? o->advertised_address : "localhost",
                          o->port)
            : NULL;
    if (cfg_id) {
        bool dup = false;
        for (int k = 0; k < nids; k++)
            dup |= strcmp(ids[k], cfg_id) == 0;
        if (dup)
            mg_free(cfg_id);
        else
            ids[nids++] = cfg_id;
    }
    if (!force) {
        fprintf(stderr, "magnetar bookie --format would delete:\n");
        for (int i = 0; i < n; i++)
            fprintf(stderr, "  %s %s: %s/current (journal or ledger data and its cookie)\n",
                    keys[i], dirs[i], dirs[i]);
        for (int k = 0; meta && k < nids; k++)
            fprintf(stderr, "  metadata store: " BK_COOKIES_PATH "/%s\n", ids[k]);
        fprintf(stderr, "The data on this bookie is lost for good. Add --force to do it.\n");
        rc = -MG_ENOTALLOWED;
        goto out;
    }
    /* the store's cookies first: when one cannot be deleted the directories keep theirs,
     * and the bookie still starts as it was (directories removed first would leave a store
     * cookie that refuses every start) */
    for (int k = 0; meta && rc == 0 && k < nids; k++) {
        char *path = mg_asprintf(BK_COOKIES_PATH "/%s", ids[k]);
        MG_WARN(BK_MODULE, "format: deleting the cookie %s from the metadata store", path);
        rc = bk_meta_remove(base, meta, path);
        if (rc < 0)
            MG_ERROR(BK_MODULE, "format: cannot delete %s: %s; nothing else deleted", path,
                     mg_strerror(rc));
        mg_free(path);
    }
    for (int i = 0; i < n && rc == 0; i++) {
        MG_WARN(BK_MODULE, "format: deleting %s/current (%s): its data and cookie", dirs[i],
                keys[i]);
        rc = bk_rm_current(dirs[i]);
    }
    if (rc == 0)
        MG_WARN(BK_MODULE, "format: done; the next start is a new bookie%s",
                meta || nids == 0 ? "" : " (no metadata store: its cookies there, if any, stay)");
out:
    for (int k = 0; k < nids; k++)
        mg_free(ids[k]);
    bk_dirs_unlock(&ds, lock);
    bk_dirs_fini(&ds);
    return rc;
}
