/*
 * admin.h - the admin HTTP server (webServicePort): pulsar-admin REST paths, lookup,
 * health and readiness probes, Prometheus metrics. Built on libevent's evhttp; JSON with
 * jansson. Paths, status codes and JSON shapes follow Pulsar's (docs/admin.md).
 * Loop thread only.
 */
#ifndef MG_ADMIN_H
#define MG_ADMIN_H

struct admin;
struct svc;
struct event_base;

/* Bind addr:port (0 = any free port) and serve. NULL with a logged reason on failure.
 * s is borrowed and must outlive the admin server. */
struct admin *admin_new(struct svc *s, struct event_base *base, const char *addr, int port);
/* The bound port. */
int admin_port(const struct admin *a);
/* Stop serving and free. Accepts NULL. */
void admin_free(struct admin *a);

#endif
