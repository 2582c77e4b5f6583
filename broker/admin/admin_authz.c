/*
 * admin_authz.c - authorization of admin calls and the permission resources (Pulsar's
 * Namespaces / PersistentTopics "permissions" paths).
 *
 * With authorizationEnabled, every routed call is checked before its handler
 * (admin_authorize): super-users may do everything; a tenant's adminRoles everything on that
 * tenant's namespaces and topics; other roles what their produce/consume grants allow, as
 * Pulsar's PulsarAuthorizationProvider: reading a topic (stats, lookup...) needs produce or
 * consume, its subscription operations consume, listing a namespace's topics consume on the
 * namespace. Refusals carry the status Pulsar gives on that path: 401 for tenant,
 * super-user and topic operations, 403 for namespace and policy operations.
 *
 * Grants are kept in the namespace's Policies (auth_policies) by the ns module, so every
 * broker sees them.
 */
#include "admin/admin_int.h"
#include "auth/auth.h"
#include "ns/ns.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"

#include <string.h>

/* What a route needs. */
enum admin_az {
    AZ_OPEN = 0,     /* probes, metrics (authentication already judged them) */
    AZ_SUPER,        /* 401 "This operation requires super-user access" */
    AZ_TENANT,       /* tenant admin, 401 */
    AZ_NS,           /* tenant admin, 403 (namespace and policy operations) */
    AZ_NS_CONSUME,   /* consume on the namespace, 403 */
    AZ_TOPIC_LOOKUP, /* produce or consume on the topic, 401 */
    AZ_TOPIC_CONSUME,
    AZ_TOPIC_ADMIN, /* tenant admin, 401 */
};

static bool admin_az_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* What the route r matched needs (from its pattern and method). */
static enum admin_az admin_az_class(const struct admin_req *r)
{
    const char *pat = r->route->pattern;
    bool get = r->method == EVHTTP_REQ_GET || r->method == EVHTTP_REQ_HEAD;
    if (strcmp(pat, "/metrics") == 0 || strcmp(pat, "/status.html") == 0 ||
        strcmp(pat, "/admin/v2/brokers/ready") == 0)
        return AZ_OPEN;
    if (admin_az_prefix(pat, "/lookup/"))
        return r->p.topic ? AZ_TOPIC_LOOKUP : AZ_OPEN;
    if (admin_az_prefix(pat, "/admin/v2/brokers") || admin_az_prefix(pat, "/admin/v2/clusters") ||
        admin_az_prefix(pat, "/admin/v2/tenants"))
        return AZ_SUPER;
    if (admin_az_prefix(pat, "/admin/v2/namespaces/")) {
        if (!r->p.ns) /* the tenant's namespaces */
            return AZ_TENANT;
        if (!strchr(pat + strlen("/admin/v2/namespaces/{tenant}/{namespace}"), '/'))
            return r->method == EVHTTP_REQ_PUT ? AZ_TENANT : AZ_NS; /* create: a tenant op */
        const char *rest = pat + strlen("/admin/v2/namespaces/{tenant}/{namespace}");
        if (get && strcmp(rest, "/topics") == 0)
            return AZ_NS_CONSUME;
        return AZ_NS;
    }
    if (admin_az_prefix(pat, "/admin/v2/persistent/") ||
        admin_az_prefix(pat, "/admin/v2/non-persistent/")) {
        if (!r->p.topic) /* the namespace's (partitioned) topics */
            return get ? AZ_NS_CONSUME : AZ_NS;
        if (strstr(pat, "/permissions"))
            return AZ_TOPIC_ADMIN;
        if (r->p.sub || strstr(pat, "/all_subscription/") || strstr(pat, "/examinemessage"))
            return AZ_TOPIC_CONSUME; /* examine reads messages: Pulsar's PEEK_MESSAGES */
        return get ? AZ_TOPIC_LOOKUP : AZ_TOPIC_ADMIN;
    }
    if (admin_az_prefix(pat, "/admin/v2/schemas/"))
        return AZ_TENANT; /* Pulsar's validateAdminAccessForTenant */
    return AZ_OPEN;
}

bool admin_is_tenant_admin(const struct admin_env *s, const char *tenant, const char *role)
{
    if (!tenant || !role)
        return false;
    const char *r;
    for (size_t i = 0; (r = ns_tenant_role(s->ns, tenant, i)); i++)
        if (strcmp(r, role) == 0)
            return true;
    return false;
}

bool admin_authorize(struct admin_req *r)
{
    const struct admin_env *s = r->a->env;
    const char *role = r->call->role;
    if (!auth_authz_enabled(s->auth))
        return true;
    enum admin_az az = admin_az_class(r);
    if (az == AZ_OPEN || auth_is_super_user(s->auth, role))
        return true;
    if (az == AZ_SUPER) {
        admin_reply_error(r->call, 401, "This operation requires super-user access");
        return false;
    }
    if (admin_is_tenant_admin(s, r->p.tenant, role))
        return true;
    char *tenant_ns = r->p.ns ? mg_asprintf("%s/%s", r->p.tenant, r->p.ns) : NULL;
    char *topic =
        r->p.topic && r->p.ns
            ? mg_asprintf("%s://%s/%s",
                          admin_domain(r) == NS_DOMAIN_PERSISTENT ? "persistent" : "non-persistent",
                          tenant_ns, r->p.topic)
            : NULL;
    const json_t *grants = tenant_ns ? ns_namespace_auth(s->ns, tenant_ns) : NULL;
    bool ok = false;
    switch (az) {
    case AZ_NS_CONSUME:
        ok = role && (auth_granted(grants, role, NULL) & AUTH_CONSUME);
        break;
    case AZ_TOPIC_LOOKUP:
        ok = role && (auth_granted(grants, role, topic) & (AUTH_PRODUCE | AUTH_CONSUME));
        break;
    case AZ_TOPIC_CONSUME:
        ok = role && (auth_granted(grants, role, topic) & AUTH_CONSUME);
        break;
    default:
        break;
    }
    if (!ok) {
        MG_DEBUG("admin", "role %s refused on %s", role ? role : "(none)", r->route->pattern);
        if (az == AZ_TENANT)
            admin_reply_error(r->call, 401,
                              "Don't have permission to administrate resources on this tenant");
        else if (az == AZ_NS || az == AZ_NS_CONSUME)
            admin_reply_errorf(r->call, 403,
                               "Unauthorized to validateNamespaceOperation for operation [%s] on "
                               "namespace [%s]",
                               az == AZ_NS_CONSUME ? "GET_TOPICS" : "ADMIN", tenant_ns);
        else
            admin_reply_errorf(r->call, 401,
                               "Unauthorized to validateTopicOperation for operation [%s] on "
                               "topic [%s]",
                               az == AZ_TOPIC_LOOKUP    ? "LOOKUP"
                               : az == AZ_TOPIC_CONSUME ? "CONSUME"
                                                        : "ADMIN",
                               topic ? topic : "?");
    }
    mg_free(tenant_ns);
    mg_free(topic);
    return ok;
}

/* ---- permission resources ---------------------------------------------------------------- */

json_t *admin_az_grants(const struct admin_env *s, const char *tenant_ns)
{
    const json_t *cur = ns_namespace_auth(s->ns, tenant_ns);
    json_t *g = cur ? json_deep_copy(cur) : json_object();
    static const char *const keys[] = {"namespace_auth", "destination_auth",
                                       "subscription_auth_roles"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        if (!json_is_object(json_object_get(g, keys[i])))
            json_object_set_new(g, keys[i], json_object());
    return g;
}

static void admin_az_store(struct admin_req *r, json_t *g)
{
    int rc = ns_namespace_auth_set(r->a->env->ns, r->tenant_ns, g, admin_reply_done, r->call);
    if (rc < 0)
        admin_reply_error(r->call, rc == -MG_ENOTFOUND ? 404 : 500,
                          rc == -MG_ENOTFOUND ? "Namespace does not exist" : mg_strerror(rc));
}

/* The {role} segment: the last one of the path. */
static const char *admin_az_role(const struct admin_req *r)
{
    return r->nseg > 0 ? r->seg[r->nseg - 1] : "";
}

/* The body's actions, or false once answered 400. */
static bool admin_az_actions(struct admin_req *r, unsigned *acts)
{
    if (r->body_bad || auth_actions_parse(r->body, acts) < 0) {
        admin_reply_error(r->call, 400,
                          "Invalid actions: a JSON array of produce, consume, functions, "
                          "sources, sinks, packages is required");
        return false;
    }
    return true;
}

/* Set (acts != 0) or remove role's entry in map. */
static void admin_az_put(json_t *map, const char *role, unsigned acts)
{
    if (acts)
        json_object_set_new(map, role, auth_actions_json(acts));
    else
        json_object_del(map, role);
}

/* GET .../namespaces/{t}/{ns}/permissions: {role: [actions]} of the namespace. */
void admin_h_ns_permissions(struct admin_req *r)
{
    json_t *g = admin_az_grants(r->a->env, r->tenant_ns);
    admin_reply_json(r->call, 200, json_incref(json_object_get(g, "namespace_auth")));
    json_decref(g);
}

/* POST (grant, replacing the role's actions) / DELETE (revoke) .../permissions/{role}. */
void admin_h_ns_permission_set(struct admin_req *r)
{
    unsigned acts = 0;
    if (r->method == EVHTTP_REQ_POST && !admin_az_actions(r, &acts))
        return;
    json_t *g = admin_az_grants(r->a->env, r->tenant_ns);
    admin_az_put(json_object_get(g, "namespace_auth"), admin_az_role(r), acts);
    admin_az_store(r, g);
}

/* GET .../persistent/{t}/{ns}/{topic}/permissions: the namespace's grants joined with the
 * topic's, {role: [actions]}. */
void admin_h_topic_permissions(struct admin_req *r)
{
    json_t *g = admin_az_grants(r->a->env, r->tenant_ns);
    json_t *out = json_object();
    const char *role;
    json_t *v;
    json_object_foreach(json_object_get(g, "namespace_auth"), role, v)
    {
        json_object_set_new(out, role, auth_actions_json(auth_granted(g, role, NULL)));
    }
    json_object_foreach(json_object_get(json_object_get(g, "destination_auth"), r->tn.full), role,
                        v)
    {
        json_object_set_new(out, role, auth_actions_json(auth_granted(g, role, r->tn.full)));
    }
    json_decref(g);
    admin_reply_json(r->call, 200, out);
}

void admin_h_topic_permission_set(struct admin_req *r)
{
    unsigned acts = 0;
    if (r->method == EVHTTP_REQ_POST && !admin_az_actions(r, &acts))
        return;
    json_t *g = admin_az_grants(r->a->env, r->tenant_ns);
    json_t *dest = json_object_get(g, "destination_auth");
    json_t *t = json_object_get(dest, r->tn.full);
    if (!json_is_object(t)) {
        t = json_object();
        json_object_set_new(dest, r->tn.full, t);
    }
    admin_az_put(t, admin_az_role(r), acts);
    if (json_object_size(t) == 0)
        json_object_del(dest, r->tn.full);
    admin_az_store(r, g);
}
