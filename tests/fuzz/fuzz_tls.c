/*
 * fuzz_tls.c - libFuzzer target for the first bytes a TLS port (brokerServicePortTls,
 * webServicePortTls) receives: the server handshake of broker/tls/tls.c.
 *
 * Happy path: once, a P-256 key and a self-signed certificate are made in a temporary
 * directory and a tls_server is built from them as a broker's configuration names them
 * (the certificate is also the trust bundle, so a client certificate is asked for and the
 * verification code runs). Each input is written to one end of a socket pair, whose write
 * side is then shut (the client's end of stream); the other end is handed to
 * tls_server_accept, and the loop runs until the handshake ends, bounded by
 * FUZZ_DEADLINE_MS.
 * Promises for every input: exactly one of ready/failed is called, and it is failed (bytes
 * that did not take part in a key exchange cannot complete a handshake); the server counts
 * one more failure and none completed; nothing of the connection is left once it failed.
 * Failure modes: a broken promise aborts (a crash for libFuzzer); ASan/UBSan catch memory
 * errors and undefined behaviour; LeakSanitizer catches leaks.
 */
#define FUZZ_TARGET "fuzz_tls"
#include "config/cfg.h"
#include "fuzz.h"
#include "tls/tls.h"
#include "util/log.h"
#include "util/loop.h"

#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define FUZZ_DEADLINE_MS 5000
#define FUZZ_MAX_INPUT (64 * 1024) /* beyond what a socket pair holds unread: cut */

int LLVMFuzzerInitialize(int *argc, char ***argv);

static struct cfg fuzz_cfg;
static struct event_base *fuzz_base;
static struct mg_loop *fuzz_loop;
static struct tls_server *fuzz_server;

struct fuzz_result {
    int ready, failed;
};

static void fuzz_set(const char *k, const char *v)
{
    char err[256];
    check(cfg_set(&fuzz_cfg, k, v, "fuzz", err, sizeof err) == 0, err);
}

/* dir/cert.pem and dir/key.pem: a self-signed P-256 certificate for CN=fuzz. */
static void fuzz_make_cert(const char *dir)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *x = X509_new();
    check(k && x, "key and certificate");
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"fuzz", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_set_pubkey(x, k);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    check(X509_sign(x, k, EVP_sha256()) > 0, "X509_sign");
    char path[512];
    snprintf(path, sizeof path, "%s/cert.pem", dir);
    FILE *f = fopen(path, "w");
    check(f && PEM_write_X509(f, x) == 1, "write cert.pem");
    fclose(f);
    snprintf(path, sizeof path, "%s/key.pem", dir);
    f = fopen(path, "w");
    check(f && PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) == 1, "write key.pem");
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(k);
}

static void fuzz_cleanup(void)
{
    tls_server_free(fuzz_server);
    mg_loop_free(fuzz_loop);
    event_base_free(fuzz_base);
    cfg_fini(&fuzz_cfg);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    mg_log_set_level((enum mg_log_level)(MG_LOG_ERROR + 1)); /* a failed handshake is a WARN */
    static char dir[] = "/tmp/fuzz_tls.XXXXXX";
    check(mkdtemp(dir) != NULL, "mkdtemp");
    fuzz_make_cert(dir);
    char cert[600], key[600];
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    cfg_init(&fuzz_cfg);
    fuzz_set("tlsCertificateFilePath", cert);
    fuzz_set("tlsKeyFilePath", key);
    fuzz_set("tlsTrustCertsFilePath", cert);
    fuzz_base = event_base_new();
    fuzz_loop = mg_loop_new(fuzz_base);
    char err[512];
    fuzz_server = tls_server_new(fuzz_loop, &fuzz_cfg, "brokerServicePortTls", err, sizeof err);
    check(fuzz_server != NULL, err);
    /* the files were read: the directory is not needed any more */
    unlink(cert);
    unlink(key);
    rmdir(dir);
    atexit(fuzz_cleanup);
    return 0;
}

static void fuzz_ready(void *arg, struct bufferevent *bev, const struct sockaddr *addr, int socklen)
{
    (void)addr;
    (void)socklen;
    ((struct fuzz_result *)arg)->ready++;
    bufferevent_free(bev);
}

static void fuzz_failed(void *arg)
{
    ((struct fuzz_result *)arg)->failed++;
}

static void fuzz_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    *(bool *)arg = true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int sv[2];
    check(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
    int client = sv[0];
    fcntl(client, F_SETFL, fcntl(client, F_GETFL) | O_NONBLOCK);
    size_t n = size < FUZZ_MAX_INPUT ? size : FUZZ_MAX_INPUT;
    for (size_t off = 0; off < n;) {
        ssize_t w = write(client, data + off, n - off);
        if (w <= 0)
            break; /* the pair holds no more unread: the rest is cut */
        off += (size_t)w;
    }
    shutdown(client, SHUT_WR);
    long ok0, failed0;
    tls_server_counts(fuzz_server, &ok0, &failed0);
    struct fuzz_result r = {0, 0};
    tls_server_accept(fuzz_server, sv[1], NULL, 0, fuzz_ready, fuzz_failed, &r);
    bool late = false;
    struct event *deadline = evtimer_new(fuzz_base, fuzz_deadline, &late);
    struct timeval tv = {FUZZ_DEADLINE_MS / 1000, (FUZZ_DEADLINE_MS % 1000) * 1000};
    event_add(deadline, &tv);
    while (r.ready + r.failed == 0 && !late)
        event_base_loop(fuzz_base, EVLOOP_ONCE);
    event_free(deadline);
    check(!late, "the handshake did not end within the deadline after the end of stream");
    check(r.ready == 0, "bytes without a key exchange completed a handshake");
    check(r.failed == 1, "failed called once");
    long ok1, failed1;
    tls_server_counts(fuzz_server, &ok1, &failed1);
    check(ok1 == ok0 && failed1 == failed0 + 1, "the server counted one failure");
    close(client);
    return 0;
}
