/*
 * cli_client.c - `magnetar client produce|consume|read`: pulsar-client's commands, flags
 * and output, over the client module (broker/client/) on one event loop.
 *
 *   produce TOPIC -m MSG[,MSG...] | -f FILE  [-n times] [-r msg/s] [-k key] [-p k=v] [-db]
 *   consume TOPIC -s SUB [-t type] [-p position] [-n count (0 = forever)] [--hex]
 *   read TOPIC [-m latest|earliest|ledger:entry] [-i] [-n count] [--hex]
 *
 * `read` is a reader: a non-durable subscription, gone when the command ends. `consume
 * --regex` subscribes to every topic of the pattern's namespace that matches it, and (with a
 * broker that has topic list watchers) to each matching topic created while it runs. --chunking
 * sends a message over the broker's max message size as chunks (consumers reassemble them). Each
 * message received prints as pulsar-client prints it ("----- got message -----", then key,
 * properties, content).
 */
#include "cli/cli.h"
#include "cli/cli_int.h"

#include "client/client.h"
#include "util/alloc.h"
#include "util/compress.h"
#include "util/err.h"
#include "util/fs.h"

#include <event2/event.h>
#include <inttypes.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

struct cli_run {
    struct cli_env *env;
    const struct cli_args *a;
    struct event_base *base;
    struct client *client;
    struct client_producer *producer;
    struct client_consumer **consumers; /* owned array: one, or one per topic of --regex */
    size_t nconsumers;
    struct client_consumer_opts co; /* consume/read: the options of each consumer */
    regex_t re;                     /* --regex: the pattern over full topic names */
    bool has_re;
    char *pattern;      /* --regex: owned, the full pattern ("persistent://t/ns/re") */
    char ns[512];       /* --regex: its namespace */
    bool listed;        /* --regex: the first list came (later calls: topics created since) */
    bool asked_list;    /* --regex: the watch was refused, the list asked for instead */
    struct event *tick; /* produce: paces sends (rate) or retries after EAGAIN */
    /* produce: the payloads (owned), sent round-robin num times each */
    char **payloads;
    size_t *lens;
    int npayloads;
    struct client_msg_meta meta; /* -k and -p: borrows argv and props */
    char **props;                /* owned: key, value, ... */
    long long total, sent, acked;
    double rate;
    uint64_t start_us;
    /* consume/read */
    long long want, got;
    bool reader, hex, skip_start;
    struct client_msg_id start;
    int rc; /* exit status once the loop stops */
};

static uint64_t cli_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void cli_stop(struct cli_run *r, int rc)
{
    if (rc != 0 && r->rc == 0)
        r->rc = rc;
    event_base_loopbreak(r->base);
}

static bool cli_parse_count(const char *s, long long *out)
{
    if (!s)
        return true;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || v < 0)
        return false;
    *out = v;
    return true;
}

/* ---- produce ----------------------------------------------------------------------------- */

static void cli_send_next(struct cli_run *r);

static void cli_on_sent(struct client_producer *p, const struct client_send_result *res, void *data)
{
    (void)p;
    struct cli_run *r = data;
    if (res->status < 0) {
        fprintf(r->env->err, "%s: publishing failed: %s\n", r->env->prog, mg_strerror(res->status));
        cli_stop(r, CLI_EXIT_FAIL);
        return;
    }
    if (++r->acked == r->total) {
        fprintf(r->env->out, "%lld messages successfully produced\n", r->acked);
        cli_stop(r, 0);
        return;
    }
    if (r->rate <= 0)
        cli_send_next(r);
}

/* Send what the rate allows now; come back on the tick for the rest. */
static void cli_send_next(struct cli_run *r)
{
    long long allowed = r->total;
    if (r->rate > 0) {
        double secs = (double)(cli_now_us() - r->start_us) / 1e6;
        allowed = (long long)(secs * r->rate) + 1;
        if (allowed > r->total)
            allowed = r->total;
    }
    while (r->sent < allowed) {
        int i = (int)(r->sent % r->npayloads);
        int rc = client_producer_send_meta(r->producer, r->payloads[i], r->lens[i], &r->meta,
                                           cli_on_sent, r);
        if (rc == -MG_EAGAIN)
            break; /* an acknowledgement calls again */
        if (rc < 0) {
            fprintf(r->env->err, "%s: cannot send: %s\n", r->env->prog, mg_strerror(rc));
            cli_stop(r, CLI_EXIT_FAIL);
            return;
        }
        r->sent++;
    }
    client_producer_flush(r->producer);
    if (r->sent < r->total && r->rate > 0) {
        struct timeval tv = {0, (long)(1e6 / r->rate > 1000 ? 1e6 / r->rate : 1000)};
        if (tv.tv_usec >= 1000000) {
            tv.tv_sec = tv.tv_usec / 1000000;
            tv.tv_usec %= 1000000;
        }
        evtimer_add(r->tick, &tv);
    }
}

static void cli_on_tick(evutil_socket_t fd, short what, void *data)
{
    (void)fd;
    (void)what;
    cli_send_next(data);
}

/* A producer or consumer could not be created: one line, and the loop stops. */
static bool cli_ready_failed(struct cli_run *r, int status, const char *msg, const char *what)
{
    if (status >= 0)
        return false;
    fprintf(r->env->err, "%s: %s: %s\n", r->env->prog, what, msg ? msg : mg_strerror(status));
    cli_stop(r, CLI_EXIT_FAIL);
    return true;
}

static void cli_on_producer(struct client_producer *p, int status, const char *msg, void *data)
{
    (void)p;
    struct cli_run *r = data;
    if (cli_ready_failed(r, status, msg, "cannot create the producer"))
        return;
    r->start_us = cli_now_us();
    cli_send_next(r);
}

static void cli_add_payload(struct cli_run *r, size_t *cap, char *payload, size_t len)
{
    size_t lcap = *cap;
    r->payloads = mg_grow(r->payloads, cap, (size_t)r->npayloads + 1, sizeof *r->payloads, 8);
    r->lens = mg_grow(r->lens, &lcap, (size_t)r->npayloads + 1, sizeof *r->lens, 8);
    r->payloads[r->npayloads] = payload;
    r->lens[r->npayloads++] = len;
}

/* Split each -m value at the separator; each -f file is one message. */
static int cli_collect_payloads(struct cli_run *r, char *err, size_t errlen)
{
    const struct cli_args *a = r->a;
    const char *sep = cli_arg(a, "--separator") ? cli_arg(a, "--separator") : ",";
    if (!*sep) {
        snprintf(err, errlen, "--separator: must not be empty");
        return -1;
    }
    size_t cap = 0;
    for (int i = 0; i < cli_arg_count(a, "--messages"); i++) {
        for (const char *p = cli_arg_at(a, "--messages", i);;) {
            const char *e = strstr(p, sep);
            size_t n = e ? (size_t)(e - p) : strlen(p);
            cli_add_payload(r, &cap, mg_strndup(p, n), n);
            if (!e)
                break;
            p = e + strlen(sep);
        }
    }
    for (int i = 0; i < cli_arg_count(a, "--files"); i++) {
        size_t len;
        char why[300];
        char *text = mg_read_file(cli_arg_at(a, "--files", i), 64u << 20, &len, why, sizeof why);
        if (!text) {
            snprintf(err, errlen, "--files: %s", why);
            return -1;
        }
        cli_add_payload(r, &cap, text, len);
    }
    if (r->npayloads == 0) {
        snprintf(err, errlen, "give the messages: -m MSG or -f FILE");
        return -1;
    }
    return 0;
}

/* ---- consume and read -------------------------------------------------------------------- */

static bool cli_same_entry(const struct client_msg_id *x, const struct client_msg_id *y)
{
    return x->ledger_id == y->ledger_id && x->entry_id == y->entry_id;
}

static void cli_on_message(struct client_consumer *c, const struct client_message *m, void *data)
{
    struct cli_run *r = data;
    if (r->want > 0 && r->got >= r->want)
        return;
    if (!r->reader)
        client_consumer_ack(c, &m->id);
    if (r->skip_start && cli_same_entry(&m->id, &r->start))
        return; /* a reader starts after its message id unless -i */
    FILE *out = r->env->out;
    fprintf(out, "----- got message -----\n");
    /* as pulsar-client: key:[k], properties:[k1=v1, k2=v2], content:... */
    fprintf(out, "key:[%s], properties:[", m->key ? m->key : "null");
    for (size_t i = 0; i < m->nprops; i++)
        fprintf(out, "%s%s=%s", i ? ", " : "", m->properties[2 * i], m->properties[2 * i + 1]);
    fprintf(out, "], content:");
    if (r->hex) {
        fputc('\n', out);
        cli_hexdump(out, m->payload, m->len);
    } else {
        fwrite(m->payload, 1, m->len, out);
        fputc('\n', out);
    }
    fflush(out);
    if (++r->got == r->want) {
        client_consumer_flush(c);
        cli_stop(r, 0);
    }
}

static void cli_on_consumer(struct client_consumer *c, int status, const char *msg, void *data)
{
    (void)c;
    cli_ready_failed(data, status, msg, "cannot subscribe");
}

/* One more consumer (r->co) on topic. Returns 0 or -MG_EINVAL. */
static int cli_subscribe(struct cli_run *r, const char *topic)
{
    struct client_consumer_opts co = r->co;
    co.topic = topic;
    struct client_consumer *c = NULL;
    int rc = client_consumer_new(r->client, &co, cli_on_message, cli_on_consumer, r, &c);
    if (rc < 0)
        return rc;
    r->consumers = mg_realloc(r->consumers, (r->nconsumers + 1) * sizeof *r->consumers);
    r->consumers[r->nconsumers++] = c;
    return 0;
}

/* --regex: the pattern names topics of one namespace, as pulsar-client's topicsPattern
 * ("persistent://t/ns/re", "t/ns/re", or "re" in public/default); it must match a whole
 * topic name (POSIX extended syntax). Fills ns; returns 0 or -1 with the line printed. */
static int cli_pattern(struct cli_run *r, const char *pat, char *ns, size_t nslen)
{
    const char *slash1 = strchr(pat, '/');
    const char *slash2 = slash1 ? strchr(slash1 + 1, '/') : NULL;
    char *full = strstr(pat, "://") ? mg_strdup(pat)
                 : slash2           ? mg_asprintf("persistent://%s", pat)
                                    : mg_asprintf("persistent://public/default/%s", pat);
    const char *t = full + strlen("persistent://");
    const char *s1 = strncmp(full, "persistent://", 13) == 0 ? strchr(t, '/') : NULL;
    const char *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
    if (!s2 || s1 == t || s2 == s1 + 1 || (size_t)(s2 - t) >= nslen) {
        fprintf(r->env->err, "%s: --regex: '%s' is not persistent://tenant/namespace/pattern\n",
                r->env->prog, pat);
        mg_free(full);
        return -1;
    }
    snprintf(ns, nslen, "%.*s", (int)(s2 - t), t);
    char *anchored = mg_asprintf("^(%s)$", full);
    int rc = regcomp(&r->re, anchored, REG_EXTENDED | REG_NOSUB);
    mg_free(anchored);
    if (rc != 0) {
        mg_free(full);
        char why[200];
        regerror(rc, &r->re, why, sizeof why);
        fprintf(r->env->err, "%s: --regex: '%s': %s\n", r->env->prog, pat, why);
        return -1;
    }
    r->has_re = true;
    r->pattern = full;
    return 0;
}

/* The namespace's topics came (the watch's first answer, or the listing), or topics created
 * since (the watch's updates): subscribe to each that matches the pattern. When the watch is
 * refused (a broker without topic list watchers, a pattern longer than it evaluates) the
 * namespace's list is asked for once instead. */
static void cli_on_topics(struct client *c, int status, const char *const *topics, size_t n,
                          const char *msg, void *data)
{
    struct cli_run *r = data;
    if (status < 0 && !r->listed && !r->asked_list) {
        r->asked_list = true; /* no watcher (none advertised, pattern too long...): list once */
        client_get_topics(c, r->ns, cli_on_topics, r);
        return;
    }
    if (cli_ready_failed(r, status, msg, "cannot list the namespace's topics"))
        return;
    for (size_t i = 0; i < n; i++)
        if (regexec(&r->re, topics[i], 0, NULL, 0) == 0 && cli_subscribe(r, topics[i]) < 0)
            cli_ready_failed(r, -MG_EINVAL, topics[i], "invalid topic");
    if (!r->listed && r->nconsumers == 0) {
        fprintf(r->env->err, "%s: no topic matches '%s' in its namespace\n", r->env->prog,
                r->a->pos);
        cli_stop(r, CLI_EXIT_FAIL);
    }
    r->listed = true;
}

/* ---- the commands ------------------------------------------------------------------------ */

/* Create the client on a new loop; run the loop until a callback stops it. */
static int cli_client_open(struct cli_run *r)
{
    r->base = event_base_new();
    struct client_opts co = {
        .service_url = r->env->conn.service_url,
        .tls_trust_certs_file = r->env->conn.trust_certs,
        .tls_allow_insecure = r->env->conn.allow_insecure,
        .auth_token = r->env->conn.token,
    };
    char err[300];
    if (client_new(r->base, &co, &r->client, err, sizeof err) < 0) {
        fprintf(r->env->err, "%s: --url: %s\n", r->env->prog, err);
        return CLI_EXIT_USAGE;
    }
    return 0;
}

/* How long the loop runs after the last message for the acknowledgements and the
 * CLOSE_CONSUMER queued on the connection to be written before it is closed. */
#define CLI_DRAIN_MS 300

static void cli_client_close(struct cli_run *r)
{
    client_producer_free(r->producer);
    for (size_t i = 0; i < r->nconsumers; i++)
        client_consumer_free(r->consumers[i]); /* flushes its acks */
    if (r->nconsumers > 0) {
        struct timeval tv = {0, CLI_DRAIN_MS * 1000};
        event_base_loopexit(r->base, &tv);
        event_base_dispatch(r->base);
    }
    mg_free(r->consumers);
    if (r->has_re)
        regfree(&r->re);
    mg_free(r->pattern);
    client_free(r->client);
    if (r->tick)
        event_free(r->tick);
    if (r->base)
        event_base_free(r->base);
    mg_free_strv(r->payloads, r->npayloads);
    mg_free(r->lens);
    mg_free_strv(r->props, (int)(2 * r->meta.nprops));
}

static int cli_client_produce(struct cli_env *env, const struct cli_args *a)
{
    int rc;
    struct cli_run r = {.env = env, .a = a, .total = 1};
    char err[400];
    r.meta.key = cli_arg(a, "--key");
    int np = cli_arg_count(a, "--properties");
    r.props = mg_calloc(2 * (size_t)np + 1, sizeof *r.props);
    for (int i = 0; i < np; i++) {
        const char *kv = cli_arg_at(a, "--properties", i);
        const char *eq = strchr(kv, '=');
        if (!eq || eq == kv) {
            fprintf(env->err, "%s: --properties: '%s' is not key=value\n", env->prog, kv);
            cli_client_close(&r);
            return CLI_EXIT_USAGE;
        }
        r.props[r.meta.nprops * 2] = mg_strndup(kv, (size_t)(eq - kv));
        r.props[r.meta.nprops * 2 + 1] = mg_strdup(eq + 1);
        r.meta.nprops++;
    }
    r.meta.properties = (const char *const *)r.props;
    long long n = 1;
    if (!cli_parse_count(cli_arg(a, "--num-produce"), &n) || n < 1) {
        fprintf(env->err, "%s: --num-produce: '%s' is not a positive number\n", env->prog,
                cli_arg(a, "--num-produce"));
        return CLI_EXIT_USAGE;
    }
    const char *rate = cli_arg(a, "--rate");
    if (rate) {
        char *end;
        r.rate = strtod(rate, &end);
        if (!*rate || *end || r.rate < 0) {
            fprintf(env->err, "%s: --rate: '%s' is not a rate (messages per second)\n", env->prog,
                    rate);
            return CLI_EXIT_USAGE;
        }
    }
    if (cli_collect_payloads(&r, err, sizeof err) < 0) {
        fprintf(env->err, "%s: %s\n", env->prog, err);
        cli_client_close(&r);
        return CLI_EXIT_USAGE;
    }
    r.total = n * r.npayloads;
    if ((rc = cli_client_open(&r)) != 0) {
        cli_client_close(&r);
        return rc;
    }
    r.tick = evtimer_new(r.base, cli_on_tick, &r);
    const char *z = cli_arg(a, "--compression");
    int codec = z ? mg_codec_parse(z) : MG_CODEC_NONE;
    if (codec < 0) {
        fprintf(env->err, "%s: --compression: '%s' is not NONE, LZ4, ZLIB, ZSTD or SNAPPY\n",
                env->prog, z);
        cli_client_close(&r);
        return CLI_EXIT_USAGE;
    }
    struct client_producer_opts po = {
        .topic = a->pos,
        .batching = !cli_arg(a, "--disable-batching"),
        .compression = codec,
        .chunking = cli_arg(a, "--chunking") != NULL, /* as pulsar-client: turns batching off */
    };
    if (client_producer_new(r.client, &po, cli_on_producer, &r, &r.producer) < 0) {
        fprintf(env->err, "%s: invalid topic '%s'\n", env->prog, a->pos);
        cli_client_close(&r);
        return CLI_EXIT_USAGE;
    }
    event_base_dispatch(r.base);
    rc = r.rc;
    cli_client_close(&r);
    return rc;
}

static const struct {
    const char *name;
    enum client_sub_type type;
} cli_sub_types[] = {
    {"Exclusive", CLIENT_SUB_EXCLUSIVE},
    {"Shared", CLIENT_SUB_SHARED},
    {"Failover", CLIENT_SUB_FAILOVER},
    {"Key_Shared", CLIENT_SUB_KEY_SHARED},
};

/* consume and read: subscribe (durable or not) and print messages until -n of them came. */
static int cli_client_receive(struct cli_env *env, const struct cli_args *a, bool reader)
{
    int rc;
    struct cli_run r = {
        .env = env, .a = a, .want = 1, .reader = reader, .hex = cli_arg(a, "--hex") != NULL};

    if (!cli_parse_count(cli_arg(a, "--num-messages"), &r.want)) {
        fprintf(env->err, "%s: --num-messages: '%s' is not a number (0 = forever)\n", env->prog,
                cli_arg(a, "--num-messages"));
        return CLI_EXIT_USAGE;
    }
    struct client_consumer_opts co = {.topic = a->pos, .receiver_queue_size = 1000};
    char subname[64];
    if (reader) {
        const char *m = cli_arg(a, "--start-message-id");
        co.non_durable = true;
        co.initial_position = CLIENT_POS_LATEST;
        if (m && strcmp(m, "earliest") == 0) {
            co.initial_position = CLIENT_POS_EARLIEST;
        } else if (m && strcmp(m, "latest") != 0) {
            int64_t l, e;
            if (cli_parse_msg_id(m, &l, &e) < 0 || l < 0 || e < 0) {
                fprintf(env->err,
                        "%s: --start-message-id: '%s' is not latest, earliest or ledger:entry\n",
                        env->prog, m);
                return CLI_EXIT_USAGE;
            }
            r.start = (struct client_msg_id){.ledger_id = (uint64_t)l, .entry_id = (uint64_t)e};
            co.start_id = &r.start;
            r.skip_start = !cli_arg(a, "--start-message-id-inclusive");
        }
        snprintf(subname, sizeof subname, "reader-%08x%04x", (unsigned)time(NULL),
                 (unsigned)getpid() & 0xffff);
        co.subscription = subname;
    } else {
        co.subscription = cli_arg(a, "--subscription-name");
        const char *t = cli_arg(a, "--subscription-type");
        bool found = !t;
        for (size_t i = 0; t && i < sizeof cli_sub_types / sizeof *cli_sub_types; i++)
            if (strcasecmp(t, cli_sub_types[i].name) == 0) {
                co.sub_type = cli_sub_types[i].type;
                found = true;
            }
        const char *p = cli_arg(a, "--subscription-position");
        bool pos_ok = !p || strcasecmp(p, "Latest") == 0 || strcasecmp(p, "Earliest") == 0;
        if (!found || !pos_ok) {
            fprintf(env->err, "%s: %s\n", env->prog,
                    !found ? "--subscription-type: expected Exclusive, Shared, Failover or "
                             "Key_Shared"
                           : "--subscription-position: expected Latest or Earliest");
            return CLI_EXIT_USAGE;
        }
        co.initial_position =
            p && strcasecmp(p, "Earliest") == 0 ? CLIENT_POS_EARLIEST : CLIENT_POS_LATEST;
    }
    if (cli_arg(a, "--regex") && cli_pattern(&r, a->pos, r.ns, sizeof r.ns) < 0)
        return CLI_EXIT_USAGE;
    if ((rc = cli_client_open(&r)) != 0) {
        cli_client_close(&r);
        return rc;
    }
    r.co = co;
    if (r.has_re) {
        client_watch_topics(r.client, r.ns, r.pattern, cli_on_topics, &r);
    } else if (cli_subscribe(&r, a->pos) < 0) {
        fprintf(env->err, "%s: invalid topic '%s'\n", env->prog, a->pos);
        cli_client_close(&r);
        return CLI_EXIT_USAGE;
    }
    event_base_dispatch(r.base);
    rc = r.rc;
    if (rc == 0)
        fprintf(env->out, "%lld messages successfully %s\n", r.got, reader ? "read" : "consumed");
    cli_client_close(&r);
    return rc;
}

static int cli_client_consume(struct cli_env *env, const struct cli_args *a)
{
    return cli_client_receive(env, a, false);
}

static int cli_client_read(struct cli_env *env, const struct cli_args *a)
{
    return cli_client_receive(env, a, true);
}

const struct cli_cmd cli_client_cmds[] = {
    /* clang-format off */
    {NULL, "produce", "TOPIC", "publish messages",
     {{"-m,--messages", "MSG", "messages to send, split at the separator (repeatable)", CLI_F_REPEAT},
      {"-f,--files", "FILE", "a file whose content is one message (repeatable)", CLI_F_REPEAT},
      {"-n,--num-produce", "N", "send the messages this many times (default 1)", 0},
      {"-r,--rate", "RATE", "messages per second (default 0: as fast as possible)", 0},
      {"-s,--separator", "SEP", "separator of -m values (default ,)", 0},
      {"-k,--key", "KEY", "message key", 0},
      {"-p,--properties", "K=V", "message property (repeatable)", CLI_F_REPEAT},
      {"-c,--chunking", NULL, "split large messages into chunks", 0},
      {"-db,--disable-batching", NULL, "send each message on its own", 0},
      {"-z,--compression,--compression-type", "CODEC", "compress the payloads: NONE (default), "
       "LZ4, ZLIB, ZSTD or SNAPPY (pulsar-perf's flag)", 0}},
     cli_client_produce, NULL, NULL, CLI_OUT_NONE},
    {NULL, "consume", "TOPIC", "consume messages (acknowledged as they are printed)",
     {{"-s,--subscription-name", "SUB", "subscription name", CLI_F_REQUIRED},
      {"-t,--subscription-type", "TYPE", "Exclusive (default), Shared, Failover, Key_Shared", 0},
      {"-p,--subscription-position", "POS", "where a new subscription starts: Latest "
       "(default) or Earliest", 0},
      {"-n,--num-messages", "N", "messages to consume (default 1, 0 = forever)", 0},
      {"--hex", NULL, "print the content as a hex dump", 0},
      {"--regex", NULL, "TOPIC is a pattern", 0}},
     cli_client_consume, NULL, NULL, CLI_OUT_NONE},
    {NULL, "read", "TOPIC", "read messages with a reader (nothing is acknowledged or kept)",
     {{"-m,--start-message-id", "ID", "latest (default), earliest or ledger:entry", 0},
      {"-i,--start-message-id-inclusive", NULL, "include the start message", 0},
      {"-n,--num-messages", "N", "messages to read (default 1, 0 = forever)", 0},
      {"--hex", NULL, "print the content as a hex dump", 0}},
     cli_client_read, NULL, NULL, CLI_OUT_NONE},
    /* clang-format on */
};
const size_t cli_client_ncmds = sizeof cli_client_cmds / sizeof *cli_client_cmds;

const struct cli_flag cli_client_globals[] = {
    {"--url", "URL", "service URL (brokerServiceUrl; default pulsar://localhost:6650)", 0},
    CLI_CONN_FLAGS,
    {NULL, NULL, NULL, 0},
};

int cli_client_main(int argc, char **argv)
{
    return cli_tool_main("magnetar client", "pulsar-client's produce, consume and read.",
                         cli_client_cmds, cli_client_ncmds, cli_client_globals, argc, argv);
}
