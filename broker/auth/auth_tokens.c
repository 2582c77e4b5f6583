/*
 * auth_tokens.c - `magnetar tokens`, with `pulsar tokens`' commands and flags:
 *
 *   create-secret-key [-a HS256] [-o FILE] [-b]      raw key bytes (base64 text with -b)
 *   create-key-pair [-a RS256] --output-private-key F --output-public-key F
 *                                                    DER: PKCS#8 private, X.509 public
 *   create -s SUBJECT [-e 1d] (--secret-key V | --private-key V) [-a ALG]
 *   show [-i | -f FILE | TOKEN]                      header and claims, unchecked
 *   validate [-i | -f FILE | TOKEN] (--secret-key V | --public-key V) [-a ALG]
 *
 * Key values (V) take every form the broker's keys do (auth_key_read: file:///path,
 * data:;base64,..., a path, bare base64). Without -a, create picks the algorithm from the
 * key as Pulsar's library does: a secret's length (32: HS256, 48: HS384, 64+: HS512), an
 * RSA key's size (RS256 below 3072 bits, RS384 below 4096, else RS512), an EC key's curve.
 * Exit status: 0, 1 for a refused token or a failed step (the reason on stderr), 64 for a
 * usage error.
 */
#include "auth/auth.h"
#include "config/cfg.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/loop.h"

#include <ctype.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AUTH_TOKENS_EXIT_USAGE 64

struct auth_tokens_opts {
    const char *alg;
    const char *output;
    const char *out_priv, *out_pub;
    bool base64;
    const char *secret_key, *private_key, *public_key;
    const char *subject;
    const char *expiry;
    bool stdin_token;
    const char *token_file;
    const char *token;
};

static void auth_tokens_usage(FILE *out)
{
    fputs("usage: magnetar tokens <command> [options]\n"
          "  create-secret-key [-a|--signature-algorithm HS256] [-o|--output FILE] "
          "[-b|--base64]\n"
          "  create-key-pair [-a RS256|ES256|...] --output-private-key FILE "
          "--output-public-key FILE\n"
          "  create -s|--subject ROLE [-e|--expiry-time 1d] (-sk|--secret-key KEY | "
          "-pk|--private-key KEY) [-a ALG]\n"
          "  show [-i|--stdin | -f|--token-file FILE | TOKEN]\n"
          "  validate [-i | -f FILE | TOKEN] (-sk|--secret-key KEY | -pk|--public-key KEY) "
          "[-a ALG]\n"
          "KEY: file:///path, data:;base64,<b64>, a file path or bare base64 (as Pulsar)\n"
          "--algorithm is accepted for --signature-algorithm.\n",
          out);
}

/* The flags, as `pulsar tokens` spells them. A flag sets a bool in auth_tokens_opts; any
 * other option stores its next argument in a const char * there. */
static const struct auth_tokens_flag {
    const char *names[3]; /* unused ones NULL */
    size_t off;           /* offsetof the field in struct auth_tokens_opts */
    bool flag;
} auth_tokens_flags[] = {
#define O(f) offsetof(struct auth_tokens_opts, f)
    {{"-a", "--signature-algorithm", "--algorithm"}, O(alg), false},
    {{"-o", "--output"}, O(output), false},
    {{"--output-private-key"}, O(out_priv), false},
    {{"--output-public-key"}, O(out_pub), false},
    {{"-sk", "--secret-key"}, O(secret_key), false},
    {{"-pk", "--private-key"}, O(private_key), false},
    {{"--public-key"}, O(public_key), false},
    {{"-s", "--subject"}, O(subject), false},
    {{"-e", "--expiry-time"}, O(expiry), false},
    {{"-f", "--token-file"}, O(token_file), false},
    {{"-b", "--base64"}, O(base64), true},
    {{"-i", "--stdin"}, O(stdin_token), true},
#undef O
};

static const struct auth_tokens_flag *auth_tokens_flag_find(const char *a)
{
    for (size_t i = 0; i < sizeof auth_tokens_flags / sizeof *auth_tokens_flags; i++)
        for (size_t j = 0; j < 3 && auth_tokens_flags[i].names[j]; j++)
            if (strcmp(a, auth_tokens_flags[i].names[j]) == 0)
                return &auth_tokens_flags[i];
    return NULL;
}

/* 0, or AUTH_TOKENS_EXIT_USAGE with a message. */
static int auth_tokens_parse(int argc, char **argv, struct auth_tokens_opts *o)
{
    memset(o, 0, sizeof *o);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const struct auth_tokens_flag *f = auth_tokens_flag_find(a);
        if (f && f->flag) {
            *(bool *)((char *)o + f->off) = true;
        } else if (f) {
            if (i + 1 >= argc) {
                fprintf(stderr, "magnetar tokens: %s needs a value\n", a);
                return AUTH_TOKENS_EXIT_USAGE;
            }
            *(const char **)((char *)o + f->off) = argv[++i];
        } else if (a[0] == '-') {
            fprintf(stderr, "magnetar tokens: unknown option '%s'\n", a);
            return AUTH_TOKENS_EXIT_USAGE;
        } else if (!o->token) {
            o->token = a;
        } else {
            fprintf(stderr, "magnetar tokens: unexpected argument '%s'\n", a);
            return AUTH_TOKENS_EXIT_USAGE;
        }
    }
    return 0;
}

/* Pulsar's relative time: <n>[s|m|h|d|w|y], seconds without a unit. -1 if malformed. */
static int64_t auth_tokens_relative_seconds(const char *s)
{
    char *end;
    if (!isdigit((unsigned char)s[0]))
        return -1;
    long long n = strtoll(s, &end, 10);
    static const struct {
        char unit;
        int64_t sec;
    } units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}, {'w', 604800}, {'y', 31536000}};
    int64_t mult = 1;
    if (*end) {
        mult = -1;
        for (size_t i = 0; i < sizeof units / sizeof *units; i++)
            if (end[0] == units[i].unit && end[1] == '\0')
                mult = units[i].sec;
    }
    if (mult < 0 || n < 0 || n > INT64_MAX / 31536000)
        return -1;
    return (int64_t)n * mult;
}

static int auth_tokens_write(const char *path, const void *d, size_t n)
{
    FILE *f = path ? fopen(path, "wb") : stdout;
    if (!f) {
        perror(path);
        return 1;
    }
    bool ok = fwrite(d, 1, n, f) == n;
    ok = (path ? fclose(f) : fflush(f)) == 0 && ok;
    if (!ok) {
        fprintf(stderr, "magnetar tokens: cannot write %s\n", path ? path : "stdout");
        return 1;
    }
    return 0;
}

static int auth_tokens_create_secret_key(const struct auth_tokens_opts *o)
{
    unsigned char *k;
    size_t n;
    if (auth_secret_key_new(o->alg ? o->alg : "HS256", &k, &n) < 0) {
        fprintf(stderr, "magnetar tokens: '%s' is not HS256, HS384 or HS512\n", o->alg);
        return AUTH_TOKENS_EXIT_USAGE;
    }
    int rc;
    if (o->base64) {
        char *b = mg_malloc(n * 2 + 4);
        int m = EVP_EncodeBlock((unsigned char *)b, k, (int)n);
        rc = auth_tokens_write(o->output, b, (size_t)m);
        mg_free(b);
    } else {
        rc = auth_tokens_write(o->output, k, n);
    }
    mg_free(k);
    return rc;
}

static int auth_tokens_create_key_pair(const struct auth_tokens_opts *o)
{
    if (!o->out_priv || !o->out_pub) {
        fprintf(stderr, "magnetar tokens: create-key-pair needs --output-private-key and "
                        "--output-public-key\n");
        return AUTH_TOKENS_EXIT_USAGE;
    }
    unsigned char *priv, *pub;
    size_t pl, ul;
    char err[256];
    if (auth_key_pair_new(o->alg ? o->alg : "RS256", &priv, &pl, &pub, &ul, err, sizeof err) < 0) {
        fprintf(stderr, "magnetar tokens: %s\n", err);
        return AUTH_TOKENS_EXIT_USAGE;
    }
    int rc = auth_tokens_write(o->out_priv, priv, pl);
    if (rc == 0)
        rc = auth_tokens_write(o->out_pub, pub, ul);
    mg_free(priv);
    mg_free(pub);
    return rc;
}

/* The algorithm Pulsar's library picks for a signing key. */
static const char *auth_tokens_default_alg(bool secret, const unsigned char *k, size_t n)
{
    if (secret)
        return n >= 64 ? "HS512" : n >= 48 ? "HS384" : "HS256";
    const unsigned char *p = k;
    EVP_PKEY *pk = d2i_AutoPrivateKey(NULL, &p, (long)n);
    if (!pk) {
        BIO *b = BIO_new_mem_buf(k, (int)n);
        pk = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
        BIO_free(b);
    }
    if (!pk)
        return "RS256"; /* auth_token_sign reports the key */
    int bits = EVP_PKEY_get_bits(pk);
    bool ec = EVP_PKEY_get_base_id(pk) == EVP_PKEY_EC;
    EVP_PKEY_free(pk);
    if (ec)
        return bits >= 521 ? "ES512" : bits >= 384 ? "ES384" : "ES256";
    return bits >= 4096 ? "RS512" : bits >= 3072 ? "RS384" : "RS256";
}

static int auth_tokens_create(const struct auth_tokens_opts *o)
{
    if (!o->subject || (!o->secret_key == !o->private_key)) {
        fprintf(stderr, "magnetar tokens: create needs --subject and one of --secret-key, "
                        "--private-key\n");
        return AUTH_TOKENS_EXIT_USAGE;
    }
    int64_t exp = 0;
    if (o->expiry) {
        int64_t rel = auth_tokens_relative_seconds(o->expiry);
        if (rel < 0) {
            fprintf(stderr, "magnetar tokens: bad --expiry-time '%s' (e.g. 3600, 30m, 1d)\n",
                    o->expiry);
            return AUTH_TOKENS_EXIT_USAGE;
        }
        exp = mg_wall_ms() / 1000 + rel;
    }
    unsigned char *k;
    size_t n;
    char err[256];
    const char *v = o->secret_key ? o->secret_key : o->private_key;
    if (auth_key_read(v, &k, &n, err, sizeof err) < 0) {
        fprintf(stderr, "magnetar tokens: %s: %s\n",
                o->secret_key ? "--secret-key" : "--private-key", err);
        return 1;
    }
    const char *alg = o->alg ? o->alg : auth_tokens_default_alg(o->secret_key != NULL, k, n);
    char *t = NULL;
    int rc = auth_token_sign(alg, k, n, o->subject, exp, &t, err, sizeof err);
    mg_free(k);
    if (rc < 0) {
        fprintf(stderr, "magnetar tokens: %s\n", err);
        return 1;
    }
    printf("%s\n", t);
    mg_free(t);
    return 0;
}

/* The token of show and validate: the argument, -f's file or stdin (trimmed). */
static char *auth_tokens_read_token(const struct auth_tokens_opts *o)
{
    if (o->token)
        return mg_strdup(o->token);
    FILE *f = o->token_file ? fopen(o->token_file, "rb") : o->stdin_token ? stdin : NULL;
    if (!f) {
        if (o->token_file)
            perror(o->token_file);
        else
            fprintf(stderr, "magnetar tokens: give a token, -f FILE or -i\n");
        return NULL;
    }
    char *buf = mg_malloc(AUTH_TOKEN_MAX + 2);
    size_t n = fread(buf, 1, AUTH_TOKEN_MAX + 1, f);
    if (f != stdin)
        fclose(f);
    while (n > 0 && isspace((unsigned char)buf[n - 1]))
        n--;
    buf[n] = '\0';
    return buf;
}

static int auth_tokens_show(const struct auth_tokens_opts *o)
{
    char *t = auth_tokens_read_token(o);
    if (!t)
        return AUTH_TOKENS_EXIT_USAGE;
    char *h, *p, err[256];
    int rc = auth_token_decode(t, &h, &p, err, sizeof err);
    mg_free(t);
    if (rc < 0) {
        fprintf(stderr, "magnetar tokens: %s\n", err);
        return 1;
    }
    printf("%s\n%s\n", h, p);
    mg_free(h);
    mg_free(p);
    return 0;
}

static int auth_tokens_validate(const struct auth_tokens_opts *o)
{
    /* -pk is --public-key here (and --private-key for create), as in pulsar tokens */
    const char *pub = o->public_key ? o->public_key : o->private_key;
    if (!o->secret_key == !pub) {
        fprintf(stderr, "magnetar tokens: validate needs one of --secret-key, --public-key\n");
        return AUTH_TOKENS_EXIT_USAGE;
    }
    char *t = auth_tokens_read_token(o);
    if (!t)
        return AUTH_TOKENS_EXIT_USAGE;
    /* the broker's own check, configured as a broker would be */
    struct cfg c;
    cfg_init(&c);
    char err[512];
    int rc = cfg_set(&c, "authenticationEnabled", "true", "tokens", err, sizeof err);
    if (rc == 0)
        rc = cfg_set(&c, "authenticationProviders", AUTH_METHOD_TOKEN, "tokens", err, sizeof err);
    if (rc == 0)
        rc = cfg_set(&c, o->secret_key ? "tokenSecretKey" : "tokenPublicKey",
                     o->secret_key ? o->secret_key : pub, "tokens", err, sizeof err);
    if (rc == 0 && o->alg)
        rc = cfg_set(&c, "tokenPublicAlg", o->alg, "tokens", err, sizeof err);
    struct auth *a = NULL;
    if (rc == 0)
        rc = auth_new(&c, &a, err, sizeof err);
    cfg_fini(&c);
    if (rc < 0) {
        fprintf(stderr, "magnetar tokens: %s\n", err);
        mg_free(t);
        return 1;
    }
    struct auth_id id;
    rc = auth_check(a, AUTH_METHOD_TOKEN, t, strlen(t), mg_wall_ms(), &id, err, sizeof err);
    auth_free(a);
    if (rc < 0) {
        fprintf(stderr, "magnetar tokens: invalid token: %s\n", err);
        mg_free(t);
        return 1;
    }
    char *h, *p;
    if (auth_token_decode(t, &h, &p, err, sizeof err) == 0) {
        printf("%s\n", p);
        mg_free(h);
        mg_free(p);
    }
    auth_id_fini(&id);
    mg_free(t);
    return 0;
}

int auth_tokens_main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        auth_tokens_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? AUTH_TOKENS_EXIT_USAGE : 0;
    }
    struct auth_tokens_opts o;
    int rc = auth_tokens_parse(argc - 2, argv + 2, &o);
    if (rc != 0)
        return rc;
    const char *cmd = argv[1];
    if (strcmp(cmd, "create-secret-key") == 0)
        return auth_tokens_create_secret_key(&o);
    if (strcmp(cmd, "create-key-pair") == 0)
        return auth_tokens_create_key_pair(&o);
    if (strcmp(cmd, "create") == 0)
        return auth_tokens_create(&o);
    if (strcmp(cmd, "show") == 0)
        return auth_tokens_show(&o);
    if (strcmp(cmd, "validate") == 0)
        return auth_tokens_validate(&o);
    fprintf(stderr, "magnetar tokens: unknown command '%s'\n", cmd);
    auth_tokens_usage(stderr);
    return AUTH_TOKENS_EXIT_USAGE;
}
