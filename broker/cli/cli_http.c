/*
 * cli_http.c - one blocking admin REST call: libevent's evhttp client on a private
 * event_base, http or https (bufferevent_openssl with the client module's TLS context),
 * the token as "Authorization: Bearer", redirects followed (a call on a bundle owned by
 * another broker answers 307 to the owner), every wait bounded by --request-timeout
 * (CLI_HTTP_TIMEOUT_S).
 */
#include "cli/cli_int.h"

#include "client/client.h"
#include "util/alloc.h"
#include "util/http.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define CLI_MAX_REDIRECTS 5
#define CLI_MAX_BODY (64u << 20)

struct cli_http_call {
    struct cli_http_resp *r;
    struct bufferevent *bev; /* the TLS one, for its error; NULL for http */
    bool done;
    int req_error; /* enum evhttp_request_error + 1, 0 = none */
};

static void cli_http_on_error(enum evhttp_request_error e, void *arg)
{
    struct cli_http_call *call = arg;
    call->req_error = (int)e + 1;
}

static void cli_http_on_done(struct evhttp_request *req, void *arg)
{
    struct cli_http_call *call = arg;
    call->done = true;
    if (!req || evhttp_request_get_response_code(req) == 0)
        return;
    struct cli_http_resp *r = call->r;
    r->status = evhttp_request_get_response_code(req);
    const char *phrase = evhttp_request_get_response_code_line(req);
    r->phrase = phrase && *phrase ? mg_strdup(phrase) : NULL;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    r->len = evbuffer_get_length(in);
    r->body = mg_malloc(r->len + 1);
    evbuffer_remove(in, r->body, r->len);
    r->body[r->len] = '\0';
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    int n = 0;
    for (struct evkeyval *kv = h->tqh_first; kv; kv = kv->next.tqe_next)
        n++;
    r->hdrs = mg_calloc((size_t)(2 * n + 1), sizeof *r->hdrs);
    for (struct evkeyval *kv = h->tqh_first; kv; kv = kv->next.tqe_next) {
        r->hdrs[r->nhdrs * 2] = mg_strdup(kv->key);
        r->hdrs[r->nhdrs * 2 + 1] = mg_strdup(kv->value);
        r->nhdrs++;
    }
}

static const char *cli_http_req_error(int e)
{
    switch (e - 1) {
    case EVREQ_HTTP_TIMEOUT:
        return "timed out";
    case EVREQ_HTTP_EOF:
        return "connection closed";
    case EVREQ_HTTP_INVALID_HEADER:
        return "invalid HTTP answer";
    case EVREQ_HTTP_BUFFER_ERROR:
        return "connection failed";
    case EVREQ_HTTP_DATA_TOO_LONG:
        return "answer too long";
    default:
        return "request failed";
    }
}

/* Why host:port cannot be reached, for the error line when libevent only says that the
 * request failed: resolve and connect once more (bounded by CLI_PROBE_MS) and name the
 * failure; NULL when that connect works (the failure was later). */
#define CLI_PROBE_MS 3000
static const char *cli_http_probe(const char *host, int port, char *buf, size_t buflen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int gai = getaddrinfo(host, ps, &hints, &ai);
    if (gai != 0 || !ai) {
        snprintf(buf, buflen, "cannot resolve %s: %s", host, gai_strerror(gai));
        return buf;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int e = fd < 0 ? errno : 0;
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        e = errno;
        if (e == EINPROGRESS) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            int n = poll(&pfd, 1, CLI_PROBE_MS);
            socklen_t el = sizeof e;
            if (n == 0)
                e = ETIMEDOUT;
            else if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
                e = errno;
        }
    }
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    if (e == 0)
        return NULL;
    snprintf(buf, buflen, "%s", strerror(e));
    return buf;
}

/* One request to url (absolute); fills r. Returns 0 or -1 with err. */
static int cli_http_once(const struct cli_conn *c, struct event_base *base, const char *url,
                         const char *method, const char *body, struct cli_http_resp *r, char *err,
                         size_t errlen)
{
    struct evhttp_uri *u = evhttp_uri_parse(url);
    const char *scheme = u ? evhttp_uri_get_scheme(u) : NULL;
    const char *host = u ? evhttp_uri_get_host(u) : NULL;
    if (!scheme || !host || (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0)) {
        snprintf(err, errlen, "invalid admin URL '%s' (expected http://host:port or https://...)",
                 url);
        if (u)
            evhttp_uri_free(u);
        return -1;
    }
    bool tls = strcasecmp(scheme, "https") == 0;
    int port = evhttp_uri_get_port(u);
    if (port < 0)
        port = tls ? 443 : 80;
    const char *path = evhttp_uri_get_path(u);
    const char *query = evhttp_uri_get_query(u);
    char *target =
        mg_asprintf("%s%s%s", path && *path ? path : "/", query ? "?" : "", query ? query : "");
    struct cli_http_call call = {.r = r};
    struct ssl_ctx_st *ctx = NULL;
    struct evhttp_connection *conn = NULL;
    int rc = -1;
    if (tls) {
        ctx = client_tls_ctx_new(c->trust_certs, c->allow_insecure, err, errlen);
        if (!ctx)
            goto out;
        SSL *ssl = SSL_new(ctx);
        SSL_set_tlsext_host_name(ssl, host);
        call.bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                                  BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
        bufferevent_openssl_set_allow_dirty_shutdown(call.bev, 1);
    }
    char *auth = c->token ? mg_asprintf("Bearer %s", c->token) : NULL;
    struct evhttp_request *req = mg_http_request_new(
        base, call.bev, host, port, c->timeout_s > 0 ? c->timeout_s : CLI_HTTP_TIMEOUT_S, auth,
        body, cli_http_on_done, &call, &conn);
    mg_free(auth);
    if (!req) {
        call.bev = NULL; /* freed with the connection that could not be made */
        snprintf(err, errlen, "cannot make a request to %s", url);
        goto out;
    }
    evhttp_connection_set_max_body_size(conn, CLI_MAX_BODY);
    evhttp_request_set_error_cb(req, cli_http_on_error);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Accept", "application/json");
    evhttp_add_header(h, "User-Agent", "magnetar-admin/" PACKAGE_VERSION);
    enum evhttp_cmd_type m = strcmp(method, "PUT") == 0      ? EVHTTP_REQ_PUT
                             : strcmp(method, "POST") == 0   ? EVHTTP_REQ_POST
                             : strcmp(method, "DELETE") == 0 ? EVHTTP_REQ_DELETE
                                                             : EVHTTP_REQ_GET;
    if (evhttp_make_request(conn, req, m, target) < 0) { /* req is freed by libevent */
        snprintf(err, errlen, "cannot send the request to %s", url);
        goto out;
    }
    while (!call.done && event_base_loop(base, EVLOOP_ONCE) == 0)
        ;
    if (r->status == 0) {
        unsigned long tls_err = call.bev ? bufferevent_get_openssl_error(call.bev) : 0;
        if (tls_err) {
            char buf[256];
            ERR_error_string_n(tls_err, buf, sizeof buf);
            snprintf(err, errlen, "TLS with %s:%d failed: %s", host, port, buf);
        } else if (call.req_error - 1 != EVREQ_HTTP_TIMEOUT) {
            char why[200];
            const char *probe = cli_http_probe(host, port, why, sizeof why);
            snprintf(err, errlen, "cannot reach %s:%d: %s", host, port,
                     probe ? probe : cli_http_req_error(call.req_error));
        } else {
            snprintf(err, errlen, "no answer from %s:%d within %d s", host, port,
                     c->timeout_s > 0 ? c->timeout_s : CLI_HTTP_TIMEOUT_S);
        }
        goto out;
    }
    rc = 0;
out:
    if (conn)
        evhttp_connection_free(conn);
    if (ctx)
        SSL_CTX_free(ctx);
    mg_free(target);
    evhttp_uri_free(u);
    return rc;
}

int cli_http(const struct cli_conn *c, const char *method, const char *path, const char *body,
             struct cli_http_resp *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    struct event_base *base = event_base_new();
    if (!base) {
        snprintf(err, errlen, "cannot create an event loop");
        return -1;
    }
    size_t bl = strlen(c->web_url);
    while (bl > 0 && c->web_url[bl - 1] == '/')
        bl--;
    char *url = mg_asprintf("%.*s%s", (int)bl, c->web_url, path);
    int rc = -1;
    for (int hop = 0; hop <= CLI_MAX_REDIRECTS; hop++) {
        if (cli_http_once(c, base, url, method, body, r, err, errlen) < 0)
            break;
        const char *loc = cli_http_header(r, "Location");
        bool redirect =
            r->status == 301 || r->status == 302 || r->status == 307 || r->status == 308;
        if (!redirect || !loc) {
            rc = 0;
            break;
        }
        if (hop == CLI_MAX_REDIRECTS) {
            snprintf(err, errlen, "too many redirects (last to %s)", loc);
            break;
        }
        mg_free(url);
        url = mg_strdup(loc);
        cli_http_resp_fini(r);
    }
    mg_free(url);
    event_base_free(base);
    return rc;
}

void cli_http_resp_fini(struct cli_http_resp *r)
{
    mg_free(r->body);
    mg_free(r->phrase);
    mg_free_strv(r->hdrs, 2 * r->nhdrs);
    memset(r, 0, sizeof *r);
}

const char *cli_http_header(const struct cli_http_resp *r, const char *name)
{
    for (int i = 0; i < r->nhdrs; i++)
        if (strcasecmp(r->hdrs[2 * i], name) == 0)
            return r->hdrs[2 * i + 1];
    return NULL;
}

/* Pulsar's {"reason": ...} of the body, or NULL; json is set to free. */
static const char *cli_http_reason(const struct cli_http_resp *r, json_t **json)
{
    *json = r->body ? json_loadb(r->body, r->len, 0, NULL) : NULL;
    json_t *reason = json_object_get(*json, "reason");
    return json_is_string(reason) ? json_string_value(reason) : NULL;
}

/* A path the server has no route for: 405, or a 404 that is not a handler's JSON answer (a
 * handler's 404 without a reason, e.g. "no schema", is an answer, not a missing route). */
bool cli_http_unsupported(const struct cli_http_resp *r)
{
    if (r->status != 404 && r->status != 405)
        return false;
    const char *ct = cli_http_header(r, "Content-Type");
    if (r->status == 404 && ct && strncasecmp(ct, "application/json", 16) == 0)
        return false;
    json_t *j;
    bool has_reason = cli_http_reason(r, &j) != NULL;
    json_decref(j);
    return !has_reason;
}

void cli_http_error_line(const struct cli_http_resp *r, char *out, size_t outlen)
{
    json_t *j;
    const char *reason = cli_http_reason(r, &j);
    if (reason) {
        snprintf(out, outlen, "%s (HTTP %d)", reason, r->status);
    } else if (cli_http_unsupported(r)) {
        snprintf(out, outlen, "not supported by this server yet (HTTP %d)", r->status);
    } else {
        /* a text body (a stack trace): its first non-blank line; an HTML page (Jetty's
         * error page): its title without "Error NNN"; none: the reason phrase */
        const char *b = r->body ? r->body : "";
        while (*b == '\n' || *b == '\r' || *b == ' ')
            b++;
        size_t n;
        const char *title = *b == '<' ? strcasestr(b, "<title>") : NULL;
        if (title) {
            b = title + 7;
            char code[16];
            int cl = snprintf(code, sizeof code, "Error %d ", r->status);
            if (strncmp(b, code, (size_t)cl) == 0)
                b += cl;
            n = strcspn(b, "<\r\n");
        } else {
            if (*b == '<' || !*b)
                b = r->phrase ? r->phrase : "";
            n = strcspn(b, "\r\n");
        }
        if (n > 200)
            n = 200;
        snprintf(out, outlen, "HTTP %d%s%.*s", r->status, n ? ": " : "", (int)n, b);
    }
    json_decref(j);
}
