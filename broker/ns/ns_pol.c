/*
 * ns_pol.c - two policy objects of a namespace's Policies (and, for the first, of a topic's
 * TopicPolicies), as Pulsar's:
 *
 *   inactive_topic_policies (InactiveTopicPolicies)
 *     {"inactiveTopicDeleteMode": "delete_when_no_subscriptions" |
 *                                 "delete_when_subscriptions_caught_up",
 *      "maxInactiveDurationSeconds": 60, "deleteWhileInactive": true}
 *   delayed_delivery_policies (DelayedDeliveryPolicies)
 *     {"tickTime": 1000, "active": true}
 *
 * set through /admin/v2/namespaces/{t}/{ns}/inactiveTopicPolicies and .../delayedDelivery
 * (TopicPolicies.inactiveTopicPolicies through the topic's path). A field left out takes the
 * default of Pulsar's class (mode delete_when_no_subscriptions, 0 seconds, false; tickTime
 * 1000, active false). A stored object that does not parse is ignored with a warning: the
 * broker's keys apply.
 */
#include "ns/ns_int.h"
#include "util/err.h"
#include "util/log.h"

#include <stdint.h>
#include <string.h>

#define NS_MODE_NO_SUBS "delete_when_no_subscriptions"
#define NS_MODE_CAUGHT_UP "delete_when_subscriptions_caught_up"

json_t *ns_inactive_json(const struct ns_inactive *p)
{
    return json_pack("{s:s,s:i,s:b}", "inactiveTopicDeleteMode",
                     p->caught_up ? NS_MODE_CAUGHT_UP : NS_MODE_NO_SUBS,
                     "maxInactiveDurationSeconds", (int)p->max_secs, "deleteWhileInactive",
                     p->delete_while_inactive);
}

/* The integer member key of object j into *out (left as it is when absent): 0, or -1 when it
 * is there but not an integer in [min, max]. */
static int ns_pol_int(const json_t *j, const char *key, int64_t min, int64_t max, int64_t *out)
{
    json_t *v = json_object_get(j, key);
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return -1;
    *out = json_integer_value(v);
    return 0;
}

/* The boolean member key of j into *out (left as it is when absent): 0, or -1. */
static int ns_pol_bool(const json_t *j, const char *key, bool *out)
{
    json_t *v = json_object_get(j, key);
    if (!v)
        return 0;
    if (!json_is_boolean(v))
        return -1;
    *out = json_is_true(v);
    return 0;
}

int ns_inactive_parse(const json_t *j, struct ns_inactive *out, const char **why)
{
    memset(out, 0, sizeof *out);
    *why = "Invalid inactiveTopicPolicies: a JSON object with inactiveTopicDeleteMode "
           "(" NS_MODE_NO_SUBS " or " NS_MODE_CAUGHT_UP "), maxInactiveDurationSeconds (an "
           "integer) and deleteWhileInactive (a boolean) is required";
    if (!json_is_object(j))
        return -MG_EINVAL;
    json_t *mode = json_object_get(j, "inactiveTopicDeleteMode");
    if (mode && !json_is_null(mode)) {
        const char *m = json_string_value(mode);
        if (!m || (strcmp(m, NS_MODE_NO_SUBS) != 0 && strcmp(m, NS_MODE_CAUGHT_UP) != 0))
            return -MG_EINVAL;
        out->caught_up = strcmp(m, NS_MODE_CAUGHT_UP) == 0;
    }
    if (ns_pol_int(j, "maxInactiveDurationSeconds", INT32_MIN, INT32_MAX, &out->max_secs) < 0 ||
        ns_pol_bool(j, "deleteWhileInactive", &out->delete_while_inactive) < 0)
        return -MG_EINVAL;
    out->set = true;
    return 0;
}

bool ns_inactive_eq(const struct ns_inactive *a, const struct ns_inactive *b)
{
    return a->set == b->set &&
           (!a->set || (a->caught_up == b->caught_up && a->max_secs == b->max_secs &&
                        a->delete_while_inactive == b->delete_while_inactive));
}

json_t *ns_delayed_json(const struct ns_delayed *p)
{
    return json_pack("{s:I,s:b}", "tickTime", (json_int_t)p->tick_ms, "active", p->active);
}

int ns_delayed_parse(const json_t *j, struct ns_delayed *out, const char **why)
{
    memset(out, 0, sizeof *out);
    out->tick_ms = 1000;
    *why = "Invalid delayedDelivery: a JSON object with tickTime (milliseconds, 1 or more) and "
           "active (a boolean) is required";
    if (!json_is_object(j) || ns_pol_int(j, "tickTime", 1, INT64_MAX, &out->tick_ms) < 0 ||
        ns_pol_bool(j, "active", &out->active) < 0)
        return -MG_EINVAL;
    out->set = true;
    return 0;
}

bool ns_delayed_eq(const struct ns_delayed *a, const struct ns_delayed *b)
{
    return a->set == b->set && (!a->set || (a->active == b->active && a->tick_ms == b->tick_ms));
}

void ns_pol_objects_to_json(const struct ns_policies *p, json_t *j)
{
    if (p->inactive.set)
        json_object_set_new(j, "inactive_topic_policies", ns_inactive_json(&p->inactive));
    if (p->delayed.set)
        json_object_set_new(j, "delayed_delivery_policies", ns_delayed_json(&p->delayed));
}

void ns_pol_objects_parse(const json_t *j, const char *tenant_ns, struct ns_policies *p)
{
    const char *why;
    json_t *v = json_object_get(j, "inactive_topic_policies");
    if (v && !json_is_null(v) && ns_inactive_parse(v, &p->inactive, &why) < 0)
        MG_WARN("ns", "namespace %s: inactive_topic_policies ignored: %s", tenant_ns, why);
    v = json_object_get(j, "delayed_delivery_policies");
    if (v && !json_is_null(v) && ns_delayed_parse(v, &p->delayed, &why) < 0)
        MG_WARN("ns", "namespace %s: delayed_delivery_policies ignored: %s", tenant_ns, why);
}
