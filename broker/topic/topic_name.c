/*
 * topic_name.c - parsing Pulsar topic names and deriving managed-ledger names.
 *
 * Accepted forms (docs/wire-pulsar.md §7, as Java TopicName):
 *   {persistent|non-persistent}://tenant/ns/local          v2
 *   {persistent|non-persistent}://tenant/cluster/ns/local  legacy v1: ns = "cluster/ns"
 *   tenant/ns/local                                        -> persistent://tenant/ns/local
 *   local                                                  -> persistent://public/default/local
 * The local part of a full name may itself contain '/' only in the 4-part form (the
 * fourth part takes the rest, as Java's split("/", 4)). A local name ending in
 * "-partition-N" (N decimal without leading zeros, fits an int) is partition N of base.
 * Any empty part, unknown domain or wrong part count gives -MG_EBADNAME. So does a control
 * character anywhere (bytes 0x00-0x1f and 0x7f: a name must print in a log line and cannot
 * hold the NUL that ends a C string), and a name longer than TOPIC_NAME_MAX_LEN bytes once
 * completed to its full form, without a -partition-N suffix (so every partition of a
 * partitioned topic that was accepted is accepted too).
 */
#include "topic/topic.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/url.h"

#include <limits.h>
#include <string.h>

#define PARTITION_SUFFIX "-partition-"

static int topic_name_parse_partition(const char *local)
{
    const char *p = NULL;
    for (const char *q = strstr(local, PARTITION_SUFFIX); q; q = strstr(q + 1, PARTITION_SUFFIX))
        p = q;
    if (!p || p == local)
        return -1;
    p += strlen(PARTITION_SUFFIX);
    if (!*p || (p[0] == '0' && p[1]))
        return -1;
    long v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
        if (v > INT_MAX)
            return -1;
    }
    return (int)v;
}

int topic_name_parse(const char *s, struct topic_name *out)
{
    memset(out, 0, sizeof *out);
    out->partition = -1;
    if (!s || !*s)
        return -MG_EBADNAME;
    /* Bounded before any work: the longest acceptable input is a full name of the limit
     * plus the longest partition suffix ("-partition-2147483647"). */
    size_t in_len = strnlen(s, TOPIC_NAME_MAX_LEN + 64);
    if (in_len > TOPIC_NAME_MAX_LEN + 32)
        return -MG_EBADNAME;
    for (size_t i = 0; i < in_len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return -MG_EBADNAME;

    bool persistent = true;
    const char *rest = s;
    const char *sep = strstr(s, "://");
    char *parts[4] = {NULL, NULL, NULL, NULL};
    int n = 0;
    if (sep) {
        size_t dl = (size_t)(sep - s);
        if (dl == 10 && !strncmp(s, "persistent", dl))
            persistent = true;
        else if (dl == 14 && !strncmp(s, "non-persistent", dl))
            persistent = false;
        else
            return -MG_EBADNAME;
        rest = sep + 3;
        /* split("/", 4) */
        const char *p = rest;
        while (n < 3) {
            const char *slash = strchr(p, '/');
            if (!slash)
                break;
            parts[n++] = mg_strndup(p, (size_t)(slash - p));
            p = slash + 1;
        }
        parts[n++] = mg_strdup(p);
        if (n < 3)
            goto bad;
    } else {
        const char *p = rest;
        for (;;) {
            const char *slash = strchr(p, '/');
            if (!slash) {
                if (n >= 3)
                    goto bad;
                parts[n++] = mg_strdup(p);
                break;
            }
            if (n >= 2)
                goto bad;
            parts[n++] = mg_strndup(p, (size_t)(slash - p));
            p = slash + 1;
        }
        if (n == 1) {
            parts[2] = parts[0];
            parts[0] = mg_strdup("public");
            parts[1] = mg_strdup("default");
            n = 3;
        } else if (n != 3) {
            goto bad;
        }
    }
    for (int i = 0; i < n; i++)
        if (!parts[i][0])
            goto bad;

    out->persistent = persistent;
    out->tenant = parts[0];
    if (n == 4) {
        out->ns = mg_asprintf("%s/%s", parts[1], parts[2]);
        out->local = parts[3];
        mg_free(parts[1]);
        mg_free(parts[2]);
    } else {
        out->ns = parts[1];
        out->local = parts[2];
    }
    const char *dom = persistent ? "persistent" : "non-persistent";
    out->full = mg_asprintf("%s://%s/%s/%s", dom, out->tenant, out->ns, out->local);
    out->partition = topic_name_parse_partition(out->local);
    if (out->partition >= 0) {
        const char *suf = out->local + strlen(out->local);
        while (suf > out->local && suf[-1] != '-')
            suf--;
        /* suf points at N; the base drops "-partition-N" */
        size_t cut = strlen(out->local) - (size_t)(suf - out->local) + strlen(PARTITION_SUFFIX);
        out->base = mg_strndup(out->full, strlen(out->full) - cut);
    } else {
        out->base = mg_strdup(out->full);
    }
    if (strlen(out->base) > TOPIC_NAME_MAX_LEN) {
        topic_name_fini(out);
        return -MG_EBADNAME;
    }
    return 0;

bad:
    for (int i = 0; i < 4; i++)
        mg_free(parts[i]);
    memset(out, 0, sizeof *out);
    out->partition = -1;
    return -MG_EBADNAME;
}

void topic_name_fini(struct topic_name *n)
{
    if (!n)
        return;
    mg_free(n->tenant);
    mg_free(n->ns);
    mg_free(n->local);
    mg_free(n->full);
    mg_free(n->base);
    memset(n, 0, sizeof *n);
    n->partition = -1;
}

char *topic_name_ml(const struct topic_name *n)
{
    char *enc = mg_url_encode(n->local);
    char *r = mg_asprintf("%s/%s/%s/%s", n->tenant, n->ns,
                          n->persistent ? "persistent" : "non-persistent", enc);
    mg_free(enc);
    return r;
}

bool topic_name_is_system(const struct topic_name *n)
{
    static const char *const events[] = {"__change_events", "__transaction_buffer_snapshot",
                                         "__transaction_buffer_snapshot_segments",
                                         "__transaction_buffer_snapshot_indexes"};
    static const char *const prefixes[] = {
        "persistent://pulsar/system/transaction_coordinator_assign",
        "persistent://pulsar/system/__transaction_log_"};
    static const char suffix[] = "__transaction_pending_ack";
    const char *local = strrchr(n->base, '/') + 1;
    size_t len = strlen(n->base), sl = sizeof suffix - 1;
    bool sys = len >= sl && strcmp(n->base + len - sl, suffix) == 0;
    for (size_t i = 0; !sys && i < sizeof events / sizeof *events; i++)
        sys = strcmp(local, events[i]) == 0;
    for (size_t i = 0; !sys && i < sizeof prefixes / sizeof *prefixes; i++)
        sys = strncmp(n->base, prefixes[i], strlen(prefixes[i])) == 0;
    return sys;
}
