/*
 * check_perf.c - unit tests of the perf and client modules.
 *
 * Covers: histogram percentiles against a sorted reference within 1% for uniform,
 * exponential, bimodal, constant and heavy-tailed distributions; bucket bounds; merge and
 * reset; perf option parsing (good and bad cases, pulsar-perf's -bm style names, --x=v
 * forms); service URL parsing; topic name expansion; batch payload encoding round trip,
 * including a SEND frame decoded by the wire module.
 * Failure modes: each test asserts with Check; run with CK_FORK=no under ASan.
 */
#include "client/client_int.h"
#include "lib/tl_pulsar.h"
#include "perf/perf_int.h"
#include "util/alloc.h"
#include "util/compress.h"
#include "util/err.h"

#include <check.h>
#include <event2/buffer.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---- histogram ---------------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t rng_state = 88172645463325252ull;

static double urand(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

/* Compare every interesting percentile with the sorted reference. */
static void check_against_reference(uint64_t *v, size_t n)
{
    struct perf_hist *h = mg_calloc(1, sizeof(*h));
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        perf_hist_record(h, v[i]);
        sum += (double)v[i];
    }
    qsort(v, n, sizeof(*v), cmp_u64);
    static const double ps[] = {1, 10, 25, 50, 75, 90, 95, 99, 99.9, 99.99, 100};
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
        size_t rank = (size_t)ceil(ps[i] / 100.0 * (double)n);
        if (rank < 1)
            rank = 1;
        uint64_t ref = v[rank - 1];
        uint64_t got = perf_hist_percentile(h, ps[i]);
        double tol = (double)ref * 0.01;
        ck_assert_msg(fabs((double)got - (double)ref) <= tol, "p%g: got %llu want %llu (n=%zu)",
                      ps[i], (unsigned long long)got, (unsigned long long)ref, n);
    }
    ck_assert_uint_eq(perf_hist_max(h), v[n - 1]);
    ck_assert(fabs(perf_hist_mean(h) - sum / (double)n) <= 1e-6 * (sum / (double)n) + 1e-9);
    ck_assert_uint_eq(h->count, n);
    mg_free(h);
}

#define NSAMPLES 200000

START_TEST(test_hist_uniform)
{
    uint64_t *v = mg_malloc(NSAMPLES * sizeof(*v));
    for (size_t i = 0; i < NSAMPLES; i++)
        v[i] = (uint64_t)(urand() * 100000.0);
    check_against_reference(v, NSAMPLES);
    mg_free(v);
}
END_TEST

START_TEST(test_hist_exponential)
{
    uint64_t *v = mg_malloc(NSAMPLES * sizeof(*v));
    for (size_t i = 0; i < NSAMPLES; i++)
        v[i] = (uint64_t)(-log(1.0 - urand()) * 2000.0);
    check_against_reference(v, NSAMPLES);
    mg_free(v);
}
END_TEST

START_TEST(test_hist_bimodal_and_tail)
{
    uint64_t *v = mg_malloc(NSAMPLES * sizeof(*v));
    for (size_t i = 0; i < NSAMPLES; i++) {
        double u = urand();
        if (u < 0.6)
            v[i] = 300 + (uint64_t)(urand() * 200);
        else if (u < 0.999)
            v[i] = 50000 + (uint64_t)(urand() * 10000);
        else /* seconds to an hour */
            v[i] = 1000000 + (uint64_t)(urand() * 3600e6);
    }
    check_against_reference(v, NSAMPLES);
    mg_free(v);
}
END_TEST

START_TEST(test_hist_pareto_small_n)
{
    for (size_t n = 1; n <= 1000; n = n * 3 + 1) {
        uint64_t *v = mg_malloc(n * sizeof(*v));
        for (size_t i = 0; i < n; i++)
            v[i] = (uint64_t)(100.0 / pow(1.0 - urand(), 1.5));
        check_against_reference(v, n);
        mg_free(v);
    }
}
END_TEST

START_TEST(test_hist_constant_and_edges)
{
    uint64_t *v = mg_malloc(1000 * sizeof(*v));
    for (size_t i = 0; i < 1000; i++)
        v[i] = 12345;
    check_against_reference(v, 1000);
    for (size_t i = 0; i < 1000; i++)
        v[i] = i % 3; /* zeros and tiny values are exact */
    check_against_reference(v, 1000);
    mg_free(v);

    struct perf_hist *h = mg_calloc(1, sizeof(*h));
    ck_assert_uint_eq(perf_hist_percentile(h, 50), 0);
    ck_assert(perf_hist_mean(h) == 0.0);
    perf_hist_record(h, 3600ull * 1000000ull); /* one hour */
    ck_assert_uint_eq(perf_hist_percentile(h, 50), 3600ull * 1000000ull);
    perf_hist_record(h, UINT64_MAX / 2); /* beyond range: last bucket, max exact */
    ck_assert_uint_eq(perf_hist_max(h), UINT64_MAX / 2);
    perf_hist_reset(h);
    ck_assert_uint_eq(h->count, 0);
    mg_free(h);
}
END_TEST

START_TEST(test_hist_buckets)
{
    /* Every bucket: the index of its bounds maps back, widths are <= 1/128 of the low. */
    for (unsigned i = 0; i < PERF_HIST_BUCKETS; i++) {
        uint64_t lo = perf_hist_bucket_low(i), w = perf_hist_bucket_width(i);
        ck_assert_uint_eq(perf_hist_index(lo), i);
        ck_assert_uint_eq(perf_hist_index(lo + w - 1), i);
        if (i + 1 < PERF_HIST_BUCKETS)
            ck_assert_uint_eq(perf_hist_bucket_low(i + 1), lo + w);
        if (i >= PERF_HIST_LINEAR)
            ck_assert(w * 128 <= lo);
    }
    ck_assert(perf_hist_bucket_low(PERF_HIST_BUCKETS - 1) > 3600ull * 1000000ull);
}
END_TEST

START_TEST(test_hist_merge)
{
    struct perf_hist *a = mg_calloc(1, sizeof(*a)), *b = mg_calloc(1, sizeof(*b));
    struct perf_hist *all = mg_calloc(1, sizeof(*all));
    for (uint64_t i = 1; i <= 10000; i++) {
        perf_hist_record(i % 2 ? a : b, i * 10);
        perf_hist_record(all, i * 10);
    }
    perf_hist_merge(a, b);
    ck_assert_uint_eq(a->count, all->count);
    ck_assert_uint_eq(a->min, 10);
    ck_assert_uint_eq(a->max, 100000);
    ck_assert(memcmp(a->buckets, all->buckets, sizeof(a->buckets)) == 0);
    ck_assert_uint_eq(perf_hist_percentile(a, 99), perf_hist_percentile(all, 99));
    perf_hist_reset(b);
    perf_hist_merge(a, b); /* empty merge changes nothing */
    ck_assert_uint_eq(a->count, 10000);
    mg_free(a);
    mg_free(b);
    mg_free(all);
}
END_TEST

/* ---- options ------------------------------------------------------------------------ */

static int parse(enum perf_mode mode, struct perf_opts *o, char *err, const char *first, ...)
{
    char *argv[64];
    int argc = 0;
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    return perf_parse_args(mode, argc, argv, o, err, 256);
}

/* The producer's settings in o as one line, every field (doubles exactly: %.17g), so that a
 * test states them all in one string and a failure shows every difference at once. */
static const char *produce_settings(const struct perf_opts *o, char *buf, size_t len)
{
    snprintf(buf, len,
             "url=%s topics=%lld clients=%lld rate=%.17g size=%lld batch=%lld/%lld/%.17gms "
             "pending=%lld messages=%lld time=%.17g warmup=%.17g interval=%.17g connect=%.17g "
             "json=%s",
             o->service_url, o->num_topics, o->num_clients, o->rate, o->size, o->batch_max_messages,
             o->batch_max_bytes, o->batch_delay_ms, o->max_pending, o->num_messages, o->duration_s,
             o->warmup_s, o->stats_interval_s, o->connect_timeout_s,
             o->json_path ? o->json_path : "(none)");
    return buf;
}

START_TEST(test_opts_produce_defaults)
{
    struct perf_opts o;
    char err[256];
    ck_assert_int_eq(parse(PERF_PRODUCE, &o, err, "my-topic", NULL), 0);
    ck_assert_int_eq(o.ntopics, 1);
    ck_assert_str_eq(o.topics[0], "my-topic");
    char buf[512];
    ck_assert_str_eq(produce_settings(&o, buf, sizeof buf),
                     "url=pulsar://127.0.0.1:6650 topics=1 clients=1 rate=100 size=1024 "
                     "batch=1000/131072/1ms pending=1000 messages=0 time=0 warmup=1 interval=10 "
                     "connect=10 json=(none)");
    perf_opts_fini(&o);
}
END_TEST

START_TEST(test_opts_produce_all)
{
    struct perf_opts o;
    char err[256];
    ck_assert_int_eq(parse(PERF_PRODUCE, &o, err, "-u", "pulsar://10.0.0.1:6651", "-t", "4", "-n",
                           "2", "-r", "0", "-s", "100", "-bm", "50", "-bb=65536",
                           "--batch-max-publish-delay", "5", "-o", "200", "-m", "20000", "-time",
                           "30", "--warmup-time", "0", "-i", "2", "--json", "/tmp/x",
                           "--connect-timeout", "3", "t1", "t2", NULL),
                     0);
    char buf[512];
    ck_assert_str_eq(produce_settings(&o, buf, sizeof buf),
                     "url=pulsar://10.0.0.1:6651 topics=4 clients=2 rate=0 size=100 "
                     "batch=50/65536/5ms pending=200 messages=20000 time=30 warmup=0 interval=2 "
                     "connect=3 json=/tmp/x");
    ck_assert_int_eq(o.ntopics, 2);
    ck_assert_str_eq(o.topics[1], "t2");
    perf_opts_fini(&o);

    ck_assert_int_eq(parse(PERF_PRODUCE, &o, err, "--rate", "5.5", "--size=10",
                           "--batch-time-window", "2", "--max-outstanding", "7", "--max-pending",
                           "9", "-b", "3", "-db", "-f", "/etc/hostname", "t", NULL),
                     0);
    ck_assert(o.rate == 5.5);
    ck_assert_int_eq(o.max_pending, 9);
    ck_assert(o.batch_delay_ms == 3);
    ck_assert(o.disable_batching);
    ck_assert_str_eq(o.payload_file, "/etc/hostname");
    ck_assert_int_eq(o.compression, MG_CODEC_NONE);
    perf_opts_fini(&o);

    /* pulsar-perf's -z/--compression, any case; --compression-type the same */
    ck_assert_int_eq(parse(PERF_PRODUCE, &o, err, "-z", "lz4", "t", NULL), 0);
    ck_assert_int_eq(o.compression, MG_CODEC_LZ4);
    perf_opts_fini(&o);
    ck_assert_int_eq(parse(PERF_PRODUCE, &o, err, "--compression=ZSTD", "t", NULL), 0);
    ck_assert_int_eq(o.compression, MG_CODEC_ZSTD);
    perf_opts_fini(&o);
    ck_assert_int_eq(parse(PERF_PRODUCE, &o, err, "--compression-type", "Snappy", "t", NULL), 0);
    ck_assert_int_eq(o.compression, MG_CODEC_SNAPPY);
    perf_opts_fini(&o);

    ck_assert_int_eq(parse(PERF_PRODUCE, &o, err, "-h", NULL), 1);
    perf_opts_fini(&o);
}
END_TEST

START_TEST(test_opts_consume)
{
    struct perf_opts o;
    char err[256];
    ck_assert_int_eq(parse(PERF_CONSUME, &o, err, "t", NULL), 0);
    ck_assert_str_eq(o.subscription, "sub");
    ck_assert_int_eq(o.sub_type, CLIENT_SUB_EXCLUSIVE);
    ck_assert_int_eq(o.queue_size, 1000);
    ck_assert(o.ack);
    ck_assert_int_eq(o.position, CLIENT_POS_LATEST);
    perf_opts_fini(&o);
    ck_assert_int_eq(parse(PERF_CONSUME, &o, err, "-s", "s1", "-st", "Key_Shared", "-q", "50",
                           "--no-ack", "-p", "Earliest", "-m", "10", "t", NULL),
                     0);
    ck_assert_str_eq(o.subscription, "s1");
    ck_assert_int_eq(o.sub_type, CLIENT_SUB_KEY_SHARED);
    ck_assert_int_eq(o.queue_size, 50);
    ck_assert(!o.ack);
    ck_assert_int_eq(o.position, CLIENT_POS_EARLIEST);
    ck_assert_int_eq(o.num_messages, 10);
    perf_opts_fini(&o);
    ck_assert_int_eq(parse(PERF_CONSUME, &o, err, "--subscription-type=shared", "--ack", "t", NULL),
                     0);
    ck_assert_int_eq(o.sub_type, CLIENT_SUB_SHARED);
    perf_opts_fini(&o);
}
END_TEST

START_TEST(test_opts_bad)
{
    struct perf_opts o;
    char err[256];
    /* Unknown flags, missing values, bad numbers, ranges, mode-specific names, and what the
     * error must name (NULL: not checked). */
    static const struct {
        enum perf_mode mode;
        const char *argv[4]; /* NULL-terminated */
        const char *names;
    } bad[] = {
        {PERF_PRODUCE, {"--bogus", "t"}, "--bogus"},
        {PERF_PRODUCE, {"t", "-r"}, "needs a value"},
        {PERF_PRODUCE, {"-r", "fast", "t"}, NULL},
        {PERF_PRODUCE, {"-r", "-5", "t"}, NULL},
        {PERF_PRODUCE, {"-s", "1.5", "t"}, NULL},
        {PERF_PRODUCE, {"-bm", "0", "t"}, NULL},
        {PERF_PRODUCE, {"-q", "10", "t"}, NULL},
        {PERF_CONSUME, {"-bm", "10", "t"}, NULL},
        {PERF_CONSUME, {"-st", "Exclusiv", "t"}, NULL},
        {PERF_CONSUME, {"-p", "middle", "t"}, NULL},
        {PERF_CONSUME, {"--ack=1", "t"}, NULL},
        {PERF_PRODUCE, {"-m", "5"}, "no topic"},
        {PERF_PRODUCE, {"-u", "http://x:1", "t"}, NULL},
        {PERF_PRODUCE, {"-u", "pulsar://:1", "t"}, NULL},
        {PERF_PRODUCE, {"-u", "pulsar://h:99999", "t"}, NULL},
        {PERF_PRODUCE, {"-u", "", "t"}, NULL},
        {PERF_PRODUCE, {"-z", "gzip", "t"}, "gzip"},
        {PERF_CONSUME, {"-z", "LZ4", "t"}, NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int argc = 0;
        while (bad[i].argv[argc])
            argc++;
        err[0] = '\0';
        ck_assert_msg(perf_parse_args(bad[i].mode, argc, (char **)bad[i].argv, &o, err,
                                      sizeof err) == -MG_EINVAL,
                      "case %zu (%s) was accepted", i, bad[i].argv[0]);
        if (bad[i].names)
            ck_assert_msg(strstr(err, bad[i].names), "case %zu: \"%s\" does not name %s", i, err,
                          bad[i].names);
    }
}
END_TEST

START_TEST(test_url_and_topic)
{
    char *host;
    int port;
    char err[200];
    ck_assert_int_eq(client_parse_url("pulsar://127.0.0.1:6650", &host, &port, err, sizeof err), 0);
    ck_assert_str_eq(host, "127.0.0.1");
    ck_assert_int_eq(port, 6650);
    mg_free(host);
    ck_assert_int_eq(client_parse_url("pulsar://localhost", &host, &port, err, sizeof err), 0);
    ck_assert_int_eq(port, 6650);
    mg_free(host);
    ck_assert_int_eq(client_parse_url("pulsar://a:1,b:2", &host, &port, err, sizeof err), 0);
    ck_assert_str_eq(host, "a");
    ck_assert_int_eq(port, 1);
    mg_free(host);
    ck_assert_int_eq(client_parse_url("pulsar+ssl://a:1", &host, &port, err, sizeof err), 0);
    ck_assert_str_eq(host, "a");
    ck_assert_int_eq(port, 1);
    mg_free(host);
    ck_assert_int_eq(client_parse_url("pulsar+ssl://b", &host, &port, err, sizeof err), 0);
    ck_assert_int_eq(port, 6651); /* Pulsar's TLS port by default */
    mg_free(host);
    ck_assert(client_url_tls("pulsar+ssl://b") && !client_url_tls("pulsar://b"));
    ck_assert_int_eq(client_parse_url("http://a:1", &host, &port, err, sizeof err), -MG_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "pulsar+ssl://"));
    ck_assert_int_eq(client_parse_url("pulsar://a:x", &host, &port, err, sizeof err), -MG_EINVAL);
    ck_assert_int_eq(client_parse_url("pulsar://a b:1", &host, &port, err, sizeof err), -MG_EINVAL);
    ck_assert_int_eq(client_parse_url(NULL, &host, &port, err, sizeof err), -MG_EINVAL);

    char *t = client_topic_full_name("x");
    ck_assert_str_eq(t, "persistent://public/default/x");
    mg_free(t);
    t = client_topic_full_name("ten/ns/x");
    ck_assert_str_eq(t, "persistent://ten/ns/x");
    mg_free(t);
    t = client_topic_full_name("non-persistent://ten/ns/x");
    ck_assert_str_eq(t, "non-persistent://ten/ns/x");
    mg_free(t);
}
END_TEST

/* ---- batch payload ------------------------------------------------------------------ */

START_TEST(test_batch_round_trip)
{
    struct client_buf b = {0};
    char msg[64];
    for (int i = 0; i < 50; i++) {
        int n = snprintf(msg, sizeof msg, "message-%d", i);
        client_batch_append(&b, msg, i == 7 ? 0 : (size_t)n, 1000 + (uint64_t)i);
    }
    size_t off = 0;
    int count = 0;
    for (;;) {
        Pulsar__Proto__SingleMessageMetadata *smm;
        const uint8_t *pl;
        size_t plen;
        int rc = client_batch_next(b.data, b.len, &off, &smm, &pl, &plen);
        ck_assert_int_ge(rc, 0);
        if (rc == 0)
            break;
        int n = snprintf(msg, sizeof msg, "message-%d", count);
        if (count == 7) {
            ck_assert_uint_eq(plen, 0);
        } else {
            ck_assert_uint_eq(plen, (size_t)n);
            ck_assert(memcmp(pl, msg, plen) == 0);
        }
        ck_assert(smm->has_sequence_id);
        ck_assert_uint_eq(smm->sequence_id, 1000 + (uint64_t)count);
        ck_assert_int_eq(smm->payload_size, (int32_t)plen);
        pulsar__proto__single_message_metadata__free_unpacked(smm, NULL);
        count++;
    }
    ck_assert_int_eq(count, 50);
    ck_assert_uint_eq(off, b.len);

    /* Truncations anywhere are errors, never crashes or over-reads. */
    for (size_t cut = 1; cut < 40; cut++) {
        size_t o2 = 0;
        int rc;
        Pulsar__Proto__SingleMessageMetadata *smm;
        const uint8_t *pl;
        size_t plen;
        int got = 0;
        while ((rc = client_batch_next(b.data, b.len - cut, &o2, &smm, &pl, &plen)) == 1) {
            pulsar__proto__single_message_metadata__free_unpacked(smm, NULL);
            got++;
        }
        /* A cut on a message boundary is a shorter, valid batch. */
        ck_assert(rc == -MG_EPROTO || (rc == 0 && got < 50));
    }

    /* The batch inside a SEND frame survives the wire codec unchanged. */
    Pulsar__Proto__MessageMetadata md = PULSAR__PROTO__MESSAGE_METADATA__INIT;
    md.producer_name = (char *)"p";
    md.sequence_id = 1000;
    md.publish_time = 1;
    md.has_num_messages_in_batch = 1;
    md.num_messages_in_batch = 50;
    Pulsar__Proto__CommandSend send = PULSAR__PROTO__COMMAND_SEND__INIT;
    send.producer_id = 1;
    send.sequence_id = 1000;
    send.has_num_messages = 1;
    send.num_messages = 50;
    wire_cmd cmd;
    tl_cmd_set(cmd, SEND, send, send);
    struct evbuffer *frame = evbuffer_new();
    wire_write_send(frame, &cmd, &md, b.data, b.len);
    struct wire_frame f;
    char err[200];
    ck_assert_int_eq(wire_frame_read(frame, 10 << 20, &f, err, sizeof err), 1);
    ck_assert(f.checksum_ok);
    struct wire_msg_info info;
    ck_assert_int_eq(wire_entry_parse(f.payload, &info), 0);
    ck_assert(info.batched);
    ck_assert_int_eq(info.num_messages, 50);
    size_t len = evbuffer_get_length(f.payload);
    ck_assert_uint_ge(len, b.len);
    const uint8_t *flat = evbuffer_pullup(f.payload, -1);
    ck_assert(memcmp(flat + len - b.len, b.data, b.len) == 0);
    wire_frame_clear(&f);
    evbuffer_free(frame);
    client_buf_fini(&b);
}
END_TEST

int main(void)
{
    return tl_main(
        "perf",
        TL_CASES({"hist", 0, NULL, NULL,
                  TL_TESTS(test_hist_uniform, test_hist_exponential, test_hist_bimodal_and_tail,
                           test_hist_pareto_small_n, test_hist_constant_and_edges,
                           test_hist_buckets, test_hist_merge)},
                 {"opts", 0, NULL, NULL,
                  TL_TESTS(test_opts_produce_defaults, test_opts_produce_all, test_opts_consume,
                           test_opts_bad, test_url_and_topic)},
                 {"batch", 0, NULL, NULL, TL_TESTS(test_batch_round_trip)}));
}
