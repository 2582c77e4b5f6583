/*
 * admin_console.c - the web console: GET / of the admin port (plain and HTTPS) answers the
 * console's page, GET /console/{file} its script and style sheet.
 *
 * Happy path: the files under broker/admin/console/ are compiled into the binary
 * (admin_console_assets.c, generated at build time by broker/admin/console/gen.sh); a
 * request names one and gets it with its content type. The page loads nothing else: what it
 * shows it reads from this server's REST API (clusters, brokers, tenants, namespaces,
 * topics and their stats), and its actions go through that API too, so they get the same
 * authentication and authorization as any admin client (the token the user types is sent
 * as "Authorization: Bearer" and kept in the browser's sessionStorage only).
 *
 * The console's own paths need no authentication (admin_console_public): they hold no
 * data. Every answer carries a Content-Security-Policy allowing scripts, styles and requests
 * from this origin only (no inline script, no eval, no framing), so a name that reached the
 * page as markup could not run even if the page failed to show it as text.
 *
 * Failure modes: an unknown file 404 {"reason"}; other methods 405 (the route table).
 */
#include "admin/admin_int.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <string.h>

#define ADMIN_CONSOLE_PREFIX "/console/"

static const char *admin_console_ctype(const char *name)
{
    static const struct {
        const char *ext;
        const char *ctype;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".svg", "image/svg+xml"},
    };
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof *types; i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].ctype;
    return "application/octet-stream";
}

static const struct admin_console_asset *admin_console_find(const char *name)
{
    for (size_t i = 0; i < admin_console_assets_count; i++)
        if (strcmp(admin_console_assets[i].name, name) == 0)
            return &admin_console_assets[i];
    return NULL;
}

bool admin_console_public(const char *path)
{
    size_t n = strlen(ADMIN_CONSOLE_PREFIX);
    return strcmp(path, "/") == 0 ||
           (strncmp(path, ADMIN_CONSOLE_PREFIX, n) == 0 && !strchr(path + n, '/'));
}

void admin_h_console(struct admin_req *r)
{
    const char *name = r->nseg == 0 ? "index.html" : r->seg[r->nseg - 1];
    const struct admin_console_asset *f = admin_console_find(name);
    if (!f) {
        admin_reply_error(r->call, 404, "No such file in the console");
        return;
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
    evhttp_add_header(h, "Content-Security-Policy",
                      "default-src 'none'; script-src 'self'; style-src 'self'; "
                      "connect-src 'self'; img-src 'self' data:; base-uri 'none'; "
                      "form-action 'none'; frame-ancestors 'none'");
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(h, "Referrer-Policy", "no-referrer");
    evhttp_add_header(h, "Cache-Control", "no-cache");
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_reference(b, f->data, f->len, NULL, NULL);
    admin_reply_buf(r->call, 200, admin_console_ctype(f->name), b);
    evbuffer_free(b);
}
