/*
 * ns_auto.c - what a namespace creates on its own: topics on their first producer, consumer or
 * partitioned-metadata request, and subscriptions on their first consumer.
 *
 * Happy path: the broker's keys (allowAutoTopicCreation, allowAutoTopicCreationType,
 * defaultNumPartitions, allowAutoSubscriptionCreation) apply unless the namespace's policies
 * override them: Pulsar's Policies.autoTopicCreationOverride
 * {"allowAutoTopicCreation":true,"topicType":"partitioned","defaultNumPartitions":3} and
 * autoSubscriptionCreationOverride {"allowAutoSubscriptionCreation":false}, set through
 * /admin/v2/namespaces/{t}/{ns}/autoTopicCreation and .../autoSubscriptionCreation.
 *
 * Failure modes: an override that breaks Pulsar's rules (AutoTopicCreationOverrideImpl's
 * validation) is refused with Pulsar's reason: an unknown topicType, a partitioned type
 * without defaultNumPartitions >= 1 or a non-partitioned one with it (400), more partitions
 * than maxNumPartitionsPerPartitionedTopic (406). A stored override that does not parse is
 * ignored with a warning (the broker's keys apply).
 */
#include "config/cfg.h"
#include "ns/ns_int.h"
#include "util/err.h"

#include <stdint.h>
#include <string.h>

#define NS_PARTITIONED "partitioned"
#define NS_NON_PARTITIONED "non-partitioned"

json_t *ns_auto_topic_json(const struct ns_auto_topic *a)
{
    json_t *j = json_pack("{s:b,s:s}", "allowAutoTopicCreation", a->allow, "topicType",
                          a->partitioned ? NS_PARTITIONED : NS_NON_PARTITIONED);
    if (a->partitioned)
        json_object_set_new(j, "defaultNumPartitions", json_integer(a->partitions));
    return j;
}

/* The boolean key of an override object j into *allow: 0, or -MG_EINVAL with *why. */
static int ns_auto_allow(const json_t *j, const char *key, bool *allow, const char **why)
{
    json_t *v = json_object_get(j, key);
    if (!json_is_object(j) || !json_is_boolean(v)) {
        *why = strcmp(key, "allowAutoTopicCreation") == 0
                   ? "Invalid configuration for autoTopicCreationOverride: "
                     "[allowAutoTopicCreation] (a boolean) is required"
                   : "Invalid configuration for autoSubscriptionCreationOverride: "
                     "[allowAutoSubscriptionCreation] (a boolean) is required";
        return -MG_EINVAL;
    }
    *allow = json_is_true(v);
    return 0;
}

int ns_auto_topic_parse(const json_t *j, int max_partitions, struct ns_auto_topic *out,
                        const char **why)
{
    json_t *type = json_object_get(j, "topicType");
    json_t *parts = json_object_get(j, "defaultNumPartitions");
    memset(out, 0, sizeof *out);
    if (ns_auto_allow(j, "allowAutoTopicCreation", &out->allow, why) < 0)
        return -MG_EINVAL;
    out->set = true;
    const char *t = json_string_value(type);
    out->partitioned = t && strcmp(t, NS_PARTITIONED) == 0;
    bool has_parts = parts && !json_is_null(parts);
    if (has_parts && !json_is_integer(parts)) {
        *why = "Invalid configuration for autoTopicCreationOverride. the detail is "
               "[defaultNumPartitions] must be an integer";
        return -MG_EINVAL;
    }
    json_int_t n = has_parts ? json_integer_value(parts) : 0;
    if (out->allow) { /* Pulsar checks the rest only when creation is allowed */
        if (!t || (!out->partitioned && strcmp(t, NS_NON_PARTITIONED) != 0)) {
            *why = "Invalid configuration for autoTopicCreationOverride. the detail is "
                   "[topicType] must be partitioned or non-partitioned";
            return -MG_EINVAL;
        }
        if (out->partitioned && n < 1) {
            *why = "Invalid configuration for autoTopicCreationOverride. the detail is "
                   "[defaultNumPartitions] cannot be less than 1 for partition type.";
            return -MG_EINVAL;
        }
        if (!out->partitioned && has_parts) {
            *why = "Invalid configuration for autoTopicCreationOverride. the detail is "
                   "[defaultNumPartitions] is not allowed to be set when the type is "
                   "non-partition.";
            return -MG_EINVAL;
        }
        if (max_partitions > 0 && n > max_partitions) {
            *why = "Number of partitions should be less than or equal to "
                   "maxNumPartitionsPerPartitionedTopic";
            return -MG_ENOTALLOWED;
        }
    }
    out->partitions = out->partitioned && n > 0 && n <= INT32_MAX ? (int)n : 0;
    return 0;
}

json_t *ns_auto_sub_json(const struct ns_auto_sub *a)
{
    return json_pack("{s:b}", "allowAutoSubscriptionCreation", a->allow);
}

int ns_auto_sub_parse(const json_t *j, struct ns_auto_sub *out, const char **why)
{
    memset(out, 0, sizeof *out);
    if (ns_auto_allow(j, "allowAutoSubscriptionCreation", &out->allow, why) < 0)
        return -MG_EINVAL;
    out->set = true;
    return 0;
}

bool ns_auto_eq(const struct ns_policies *a, const struct ns_policies *b)
{
    const struct ns_auto_topic *x = &a->auto_topic, *y = &b->auto_topic;
    return x->set == y->set && x->allow == y->allow && x->partitioned == y->partitioned &&
           x->partitions == y->partitions && a->auto_sub.set == b->auto_sub.set &&
           a->auto_sub.allow == b->auto_sub.allow;
}

void ns_auto_create_get(struct ns *s, const char *tenant_ns, struct ns_auto_create *out)
{
    const struct cfg *cfg = s->cfg;
    out->topic = cfg->allow_auto_topic_creation;
    out->partitioned = strcmp(cfg->allow_auto_topic_creation_type, NS_PARTITIONED) == 0;
    out->partitions = cfg->default_num_partitions;
    out->subscription = cfg->allow_auto_subscription_creation;
    const struct ns_policies *p = mg_map_get_str(&s->policies, tenant_ns);
    if (p && p->auto_topic.set) {
        out->topic = p->auto_topic.allow;
        if (p->auto_topic.allow) {
            out->partitioned = p->auto_topic.partitioned;
            out->partitions = p->auto_topic.partitions;
        }
    }
    if (p && p->auto_sub.set)
        out->subscription = p->auto_sub.allow;
}
