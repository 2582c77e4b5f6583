/*
 * auth_authz.c - authorization as Pulsar's PulsarAuthorizationProvider decides it, over the
 * grants a namespace's Policies keep (auth_policies, Pulsar's AuthPolicies):
 *
 *   {"namespace_auth":   {"role": ["produce", "consume"]},
 *    "destination_auth": {"persistent://t/ns/topic": {"role": ["consume"]}},
 *    "subscription_auth_roles": {"sub": ["role"]}}
 *
 * A role's actions on a topic are its namespace grant joined with the topic's grant (for a
 * partition "-partition-N", the partitioned topic's grant as well). Super-users and the
 * tenant's adminRoles are decided by the callers (they pass before any grant is read).
 * Everything here is pure: no I/O, bounded by the size of the grants.
 */
#include "auth/auth.h"

#include "util/alloc.h"
#include "util/err.h"

#include <jansson.h>
#include <string.h>

static const char *const auth_action_names[] = {
    "produce", "consume", "functions", "sources", "sinks", "packages",
};
#define AUTH_N_ACTIONS (sizeof auth_action_names / sizeof *auth_action_names)

int auth_action_parse(const char *name)
{
    for (size_t i = 0; name && i < AUTH_N_ACTIONS; i++)
        if (strcmp(name, auth_action_names[i]) == 0)
            return 1 << i;
    return -MG_EINVAL;
}

json_t *auth_actions_json(unsigned actions)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < AUTH_N_ACTIONS; i++)
        if (actions & (1u << i))
            json_array_append_new(arr, json_string(auth_action_names[i]));
    return arr;
}

int auth_actions_parse(const json_t *arr, unsigned *out)
{
    *out = 0;
    if (!json_is_array(arr))
        return -MG_EINVAL;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        int a = auth_action_parse(json_string_value(json_array_get(arr, i)));
        if (a < 0)
            return -MG_EINVAL;
        *out |= (unsigned)a;
    }
    return 0;
}

/* The actions of role in a {"role": [actions]} object (unknown names ignored). */
static unsigned auth_role_actions(const json_t *map, const char *role)
{
    const json_t *arr = json_object_get(map, role);
    unsigned acts = 0;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        int a = auth_action_parse(json_string_value(json_array_get(arr, i)));
        if (a > 0)
            acts |= (unsigned)a;
    }
    return acts;
}

unsigned auth_granted(const json_t *auth_policies, const char *role, const char *topic)
{
    if (!auth_policies || !role)
        return 0;
    unsigned acts = auth_role_actions(json_object_get(auth_policies, "namespace_auth"), role);
    if (!topic)
        return acts;
    const json_t *dest = json_object_get(auth_policies, "destination_auth");
    acts |= auth_role_actions(json_object_get(dest, topic), role);
    const char *p = strstr(topic, "-partition-");
    if (p) {
        char *base = mg_strndup(topic, (size_t)(p - topic));
        acts |= auth_role_actions(json_object_get(dest, base), role);
        mg_free(base);
    }
    return acts;
}
