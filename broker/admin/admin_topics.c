/*
 * admin_topics.c - persistent topics (docs/admin.md §5-§7) and HTTP lookup (§8); the same
 * handlers serve /admin/v2/non-persistent/... (admin_domain), whose topics exist only while
 * loaded (nothing of theirs is stored: a request on one not loaded answers 404).
 *
 * Happy path: a request on P/{topic}[/...] becomes a struct topic_op naming the topics it
 * touches (the topic, or every partition of a partitioned topic). Topics that are not loaded
 * are loaded first: a plain topic only if the namespace's stored topic list has it (so a
 * request on a missing topic never creates one), partitions always (their metadata says
 * they exist). Once every topic is loaded the action runs synchronously (or, for a reset
 * by time, one partition after the other) and replies.
 *
 * Failure modes: 404 "Topic ... not found" for a missing topic, 409 for an existing one,
 * 412/406/400/405/422 per the reference; a failed load or store write is 500. Topics are
 * looked up again by name after every asynchronous step, never kept across one: a topic
 * closed (unloaded, deleted) while a request waited for it makes the request resolve again
 * (at most OP_MAX_RELOADS times), so it answers for the topic as it is now.
 *
 * Peek (.../subscription/{s}/position/{n}) and examine (.../examinemessage) answer one stored
 * entry as Pulsar's generateResponseWithEntry: its X-Pulsar-* headers and its raw payload (a
 * batch whole), read through the managed ledger (its cache or the store, asynchronously); the
 * walk to a peek's n-th unacknowledged entry is sliced over loop turns.
 */
#include "admin/admin_int.h"
#include "config/cfg.h"
#include "ml/ml.h"
#include "ns/ns.h"
#include "topic/topic.h"
#include "util/alloc.h"
#include "util/compress.h"
#include "util/crc.h"
#include "util/err.h"
#include "util/log.h"
#include "util/loop.h"
#include "wire/wire.h"

#include <ctype.h>
#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct topic_op;
typedef void (*topic_op_fn)(struct topic_op *op, struct topic **topics);

/* One topic request in progress; owns everything it points to except a and req. */
struct topic_op {
    struct admin *a;
    struct admin_call *call; /* until replied */
    struct topic_name tn;    /* the name in the path */
    int partitions;          /* > 0: tn is a partitioned topic's base name */
    char *sub;               /* subscription segment, or NULL */
    char *arg;               /* the action's argument segment, or NULL */
    json_t *body;            /* parsed body, or NULL */
    bool force, earliest;
    char **names; /* topics to resolve */
    int n;
    int pending;
    int status; /* first failure */
    topic_op_fn fn;
    int step;              /* reset by time: the partition being reset */
    uint64_t ts;           /* reset by time */
    int new_from;          /* partition update: first new partition */
    bool must_exist;       /* a plain topic must be stored already (admin_tp_op_run) */
    char *body_text;       /* owned: the request's body, or NULL (sub-requests) */
    json_t *result;        /* owned: terminate's answer being built, or NULL */
    struct event *wait_ev; /* owned: the timer of op's next step (tick): delete polling the
                            * store until the data is gone, peek's walk */
    void (*tick)(struct topic_op *op);
    int wait_tries;
    int reloads; /* resolutions started again after a topic closed meanwhile */
    char **subs; /* partition update: subscriptions to copy */
    int n_subs;
    int load_next;         /* admin_tp_op_load_all: the next name to look at */
    struct event *load_ev; /* owned: admin_tp_op_load_all's next slice when no load is in flight */
    struct ml_position at; /* peek: the last position the walk looked at */
    int64_t left;          /* peek: unacknowledged entries still to step over */
};

static void admin_tp_op_free(struct topic_op *op)
{
    topic_name_fini(&op->tn);
    mg_free(op->sub);
    mg_free(op->arg);
    json_decref(op->body);
    json_decref(op->result);
    mg_free_strv(op->names, op->n);
    mg_free_strv(op->subs, op->n_subs);
    mg_free(op->body_text);
    mg_event_free(op->wait_ev);
    mg_event_free(op->load_ev);
    mg_free(op);
}

static void admin_tp_op_free_arg(void *arg)
{
    admin_tp_op_free(arg);
}

static void admin_tp_op_add_name(struct topic_op *op, char *name)
{
    op->names = mg_realloc(op->names, (size_t)(op->n + 1) * sizeof *op->names);
    op->names[op->n++] = name;
}

static void admin_tp_op_partition_names(struct topic_op *op, int from, int to)
{
    if (to <= from)
        return;
    op->names = mg_realloc(op->names, (size_t)(op->n + to - from) * sizeof *op->names);
    for (int i = from; i < to; i++)
        op->names[op->n++] = mg_asprintf("%s-partition-%d", op->tn.full, i);
}

/* The call went away while op waited (the server was freed): op is freed, true. */
static bool admin_tp_op_gone(struct topic_op *op)
{
    if (!admin_call_gone(op->call))
        return false;
    admin_tp_op_free(op);
    return true;
}

/* Answer the call with status and {"reason": reason}, and end op. */
static void admin_tp_op_fail(struct topic_op *op, int status, const char *reason)
{
    admin_reply_error(op->call, status, reason);
    admin_tp_op_free(op);
}

/* 404 "Topic ... not found" for the path's topic, and end op. */
static void admin_tp_op_not_found(struct topic_op *op)
{
    admin_reply_errorf(op->call, 404, "Topic %s not found", op->tn.full);
    admin_tp_op_free(op);
}

/* A store's answer (status < 0: its error) for op came: false when op ended here, the call
 * gone or answered 500 with the error. */
static bool admin_tp_op_store_ok(struct topic_op *op, int status)
{
    if (!admin_call_ended(op->call, status))
        return true;
    admin_tp_op_free(op);
    return false;
}

/* Answer the call 204 and end op. */
static void admin_tp_op_done(struct topic_op *op)
{
    admin_reply_no_content(op->call);
    admin_tp_op_free(op);
}

static void admin_tp_op_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct topic_op *op = arg;
    if (admin_tp_op_gone(op))
        return;
    op->tick(op);
}

/* Run fn(op) in ms milliseconds (0: on the next loop turn), unless the call goes away. */
static void admin_tp_op_later(struct topic_op *op, void (*fn)(struct topic_op *op), int ms)
{
    if (!op->wait_ev)
        op->wait_ev = evtimer_new(op->a->env->base, admin_tp_op_tick, op);
    op->tick = fn;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(op->wait_ev, &tv);
}

/* ---- resolving: load every named topic, then run fn ------------------------------------ */

#define OP_MAX_RELOADS 3

static void admin_tp_op_run(struct topic_op *op, topic_op_fn fn, bool must_exist);
static bool admin_tp_op_names_here(struct topic_op *op);
static void admin_tp_op_fan(struct topic_op *op);

static void admin_tp_op_finish(struct topic_op *op)
{
    if (admin_tp_op_gone(op))
        return;
    bool closed = op->status == -MG_ECLOSED;
    for (int i = 0; i < op->n && op->status == 0; i++)
        closed = closed || !topic_find(op->a->env->topics, op->names[i]);
    if (closed && op->partitions > 0 && ns_partitions_get(op->a->env->ns, op->tn.full) == 0) {
        /* deleted meanwhile: not to be created again by loading it */
        admin_reply_errorf(op->call, 404, "Partitioned Topic %s not found", op->tn.full);
        admin_tp_op_free(op);
        return;
    }
    if (closed && op->reloads < OP_MAX_RELOADS) {
        /* A topic was closed (unloaded, deleted) while this request waited for it: resolve
         * again, from whether it still exists. */
        op->reloads++;
        op->status = 0;
        admin_tp_op_run(op, op->fn, op->must_exist);
        return;
    }
    if (op->status < 0 || closed) {
        if (op->status == -MG_ENOTFOUND)
            admin_tp_op_not_found(op);
        else if (op->status == -MG_ENOTALLOWED) /* enableNonPersistentTopics=false */
            admin_reply_error(op->call, 405, "Broker is unable to load non-persistent topic");
        else
            admin_reply_errorf(op->call, 500, "Failed to load topic: %s",
                               mg_strerror(closed ? -MG_ECLOSED : op->status));
        admin_tp_op_free(op);
        return;
    }
    struct topic **topics = mg_calloc((size_t)op->n + 1, sizeof *topics);
    for (int i = 0; i < op->n; i++)
        topics[i] = topic_find(op->a->env->topics, op->names[i]);
    op->fn(op, topics); /* replies (now or later) and frees op */
    mg_free(topics);
}

/* Loading the named topics is windowed: at most OP_LOAD_WINDOW loads in flight and
 * OP_LOAD_SLICE names looked at per step, so a partitioned topic with thousands of
 * partitions neither loads them all at once nor holds the loop for one turn. A completion
 * takes the next step; with none in flight the next step runs on the next loop turn. */
#define OP_LOAD_WINDOW 16
#define OP_LOAD_SLICE 64

static void admin_tp_op_load_step(struct topic_op *op);
static void admin_tp_op_loaded(struct topic *t, int status, void *data);

static void admin_tp_op_load_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    admin_tp_op_load_step(arg);
}

static void admin_tp_op_load_step(struct topic_op *op)
{
    struct topic_registry *reg = op->a->env->topics;
    for (int looked = 0;
         op->load_next < op->n && op->pending < OP_LOAD_WINDOW && looked < OP_LOAD_SLICE;
         looked++) {
        const char *name = op->names[op->load_next++];
        if (topic_find(reg, name))
            continue;
        int rc = topic_get(reg, name, true, admin_tp_op_loaded, op); /* cb after return */
        if (rc < 0) {
            if (op->status == 0)
                op->status = rc;
            continue;
        }
        op->pending++;
    }
    if (op->pending > 0)
        return; /* a completion takes the next step */
    if (op->load_next < op->n) {
        if (!op->load_ev)
            op->load_ev = evtimer_new(op->a->env->base, admin_tp_op_load_tick, op);
        struct timeval zero = {0, 0};
        evtimer_add(op->load_ev, &zero);
        return;
    }
    admin_tp_op_finish(op);
}

static void admin_tp_op_loaded(struct topic *t, int status, void *data)
{
    (void)t;
    struct topic_op *op = data;
    if (status < 0 && op->status == 0)
        op->status = status;
    op->pending--;
    admin_tp_op_load_step(op);
}

static void admin_tp_op_load_all(struct topic_op *op)
{
    op->pending = 0;
    op->load_next = 0;
    admin_tp_op_load_step(op);
}

/* Whether the path's plain topic is stored answered: load it, or 404. */
static void admin_tp_op_stored(void *data, int status)
{
    struct topic_op *op = data;
    if (!admin_tp_op_store_ok(op, status))
        return;
    if (status == 0) {
        admin_tp_op_not_found(op);
        return;
    }
    admin_tp_op_load_all(op);
}

/* Resolve op's names (the path's topic, or its partitions) and run fn. must_exist: a plain
 * topic must already exist (else 404); otherwise it is created. */
static void admin_tp_op_run(struct topic_op *op, topic_op_fn fn, bool must_exist)
{
    op->fn = fn;
    op->must_exist = must_exist;
    if (op->n == 0) {
        if (op->partitions > 0)
            admin_tp_op_partition_names(op, 0, op->partitions);
        else
            admin_tp_op_add_name(op, mg_strdup(op->tn.full));
    }
    if (op->partitions > 0 && !admin_tp_op_names_here(op)) {
        admin_tp_op_fan(op);
        return;
    }
    if (op->partitions == 0 && must_exist && !topic_find(op->a->env->topics, op->tn.full)) {
        /* Exists: a partition of a partitioned topic, or stored. One key is read, never the
         * namespace's whole list: a partitioned operation fanned out over thousands of
         * partitions would list the namespace once per partition. */
        const struct admin_env *s = op->a->env;
        char *ns = mg_asprintf("%s/%s", op->tn.tenant, op->tn.ns);
        bool ns_ok = ns_namespace_exists(s->ns, ns);
        mg_free(ns);
        if (!ns_ok) {
            admin_tp_op_fail(op, 404, "Namespace does not exist");
            return;
        }
        if (op->tn.partition >= 0 && op->tn.partition < ns_partitions_get(s->ns, op->tn.base)) {
            admin_tp_op_load_all(op);
            return;
        }
        if (!op->tn.persistent) { /* nothing stored: exists while loaded */
            admin_tp_op_not_found(op);
            return;
        }
        int rc = ns_topic_stored(s->ns, op->tn.full, admin_tp_op_stored, op);
        if (rc < 0) {
            admin_tp_op_fail(op, 500, mg_strerror(rc));
        }
        return;
    }
    admin_tp_op_load_all(op);
}

/* ---- stats ------------------------------------------------------------------------------ */

static const char *admin_tp_sub_type_name(const struct topic_sub_stats *ss)
{
    static const char *const names[] = {"Exclusive", "Shared", "Failover", "Key_Shared"};
    return ss->has_type && (unsigned)ss->type < 4 ? names[ss->type] : "None";
}

static const char *admin_tp_access_mode_name(enum topic_access_mode m)
{
    static const char *const names[] = {"Shared", "Exclusive", "WaitForExclusive",
                                        "ExclusiveWithFencing"};
    return (unsigned)m < 4 ? names[m] : "Shared";
}

static json_t *admin_tp_iso_json(uint64_t ms)
{
    char buf[40];
    admin_iso_time(ms, buf, sizeof buf);
    return json_string(buf);
}

static json_t *admin_tp_consumers_json(struct topic *t, const char *sub)
{
    json_t *arr = json_array();
    int idx = 0;
    struct topic_consumer_stats cs;
    while (topic_consumer_stats_next(t, sub, &idx, &cs)) {
        json_t *c = json_object();
        json_object_set_new(c, "msgRateOut", json_real(cs.msg_rate_out));
        json_object_set_new(c, "msgThroughputOut", json_real(cs.throughput_out));
        json_object_set_new(c, "bytesOutCounter", json_integer(cs.bytes_out_counter));
        json_object_set_new(c, "msgOutCounter", json_integer(cs.msg_out_counter));
        json_object_set_new(c, "msgRateRedeliver", json_real(0.0));
        json_object_set_new(c, "messageAckRate", json_real(0.0));
        json_object_set_new(c, "chunkedMessageRate", json_real(cs.chunked_msg_rate));
        json_object_set_new(c, "consumerName", json_string(cs.name));
        json_object_set_new(c, "availablePermits", json_integer(cs.permits > 0 ? cs.permits : 0));
        json_object_set_new(c, "unackedMessages", json_integer(cs.unacked));
        json_object_set_new(c, "avgMessagesPerEntry", json_integer(1));
        json_object_set_new(c, "blockedConsumerOnUnackedMsgs", json_boolean(cs.blocked));
        json_object_set_new(c, "connectedSince", admin_tp_iso_json(cs.connected_since_ms));
        json_object_set_new(c, "metadata", json_object());
        json_array_append_new(arr, c);
    }
    return arr;
}

static json_t *admin_tp_sub_json(struct topic *t, const struct topic_sub_stats *ss)
{
    json_t *j = json_object();
    json_object_set_new(j, "msgRateOut", json_real(ss->msg_rate_out));
    json_object_set_new(j, "msgThroughputOut", json_real(ss->throughput_out));
    json_object_set_new(j, "bytesOutCounter", json_integer(ss->bytes_out_counter));
    json_object_set_new(j, "msgOutCounter", json_integer(ss->msg_out_counter));
    json_object_set_new(j, "msgRateRedeliver", json_real(ss->msg_rate_redeliver));
    json_object_set_new(j, "messageAckRate", json_real(ss->ack_rate));
    json_object_set_new(j, "chunkedMessageRate", json_integer((json_int_t)ss->chunked_msg_rate));
    json_object_set_new(j, "msgBacklog", json_integer(ss->backlog));
    if (!topic_is_persistent(t)) /* NonPersistentSubscriptionStats */
        json_object_set_new(j, "msgDropRate", json_real(ss->msg_drop_rate));
    json_object_set_new(j, "backlogSize", json_integer(-1));
    json_object_set_new(j, "earliestMsgPublishTimeInBacklog", json_integer(0));
    json_object_set_new(j, "msgBacklogNoDelayed", json_integer(ss->backlog - ss->delayed));
    json_object_set_new(j, "blockedSubscriptionOnUnackedMsgs", json_boolean(ss->blocked));
    json_object_set_new(j, "msgDelayed", json_integer(ss->delayed));
    json_object_set_new(j, "unackedMessages", json_integer(ss->unacked));
    json_object_set_new(j, "type", json_string(admin_tp_sub_type_name(ss)));
    if (ss->active_consumer)
        json_object_set_new(j, "activeConsumerName", json_string(ss->active_consumer));
    json_object_set_new(j, "msgRateExpired", json_real(0.0));
    json_object_set_new(j, "totalMsgExpired", json_integer(0));
    json_object_set_new(j, "lastExpireTimestamp", json_integer(0));
    json_object_set_new(j, "lastConsumedFlowTimestamp", json_integer(0));
    json_object_set_new(j, "lastConsumedTimestamp", json_integer((json_int_t)ss->last_consumed_ms));
    json_object_set_new(j, "lastAckedTimestamp", json_integer((json_int_t)ss->last_acked_ms));
    json_object_set_new(j, "lastMarkDeleteAdvancedTimestamp", json_integer(0));
    json_object_set_new(j, "consumers", admin_tp_consumers_json(t, ss->name));
    json_object_set_new(j, "isDurable", json_boolean(ss->durable));
    json_object_set_new(j, "isReplicated", json_false());
    json_object_set_new(j, "allowOutOfOrderDelivery", json_false());
    json_object_set_new(j, "consumersAfterMarkDeletePosition", json_object());
    struct ml_cursor *c = topic_sub_cursor(t, ss->name);
    json_object_set_new(j, "nonContiguousDeletedMessagesRanges",
                        json_integer(c ? ml_cursor_num_ranges(c) : 0));
    json_object_set_new(j, "nonContiguousDeletedMessagesRangesSerializedSize", json_integer(0));
    json_object_set_new(j, "delayedMessageIndexSizeInBytes", json_integer(ss->delayed_index_bytes));
    /* the dispatch passes a rate stopped (no broker-wide dispatch rate here: 0) */
    static const char *const throttled[TOPIC_RATE_SCOPES][2] = {
        [TOPIC_RATE_TOPIC] = {"dispatchThrottledMsgEventsByTopicLimit",
                              "dispatchThrottledBytesEventsByTopicLimit"},
        [TOPIC_RATE_SUB] = {"dispatchThrottledMsgEventsBySubscriptionLimit",
                            "dispatchThrottledBytesEventsBySubscriptionLimit"}};
    for (int sc = 0; sc < TOPIC_RATE_SCOPES; sc++)
        for (int k = 0; k < 2; k++)
            json_object_set_new(j, throttled[sc][k], json_integer(ss->throttled[sc][k]));
    json_object_set_new(j, "dispatchThrottledMsgEventsByBrokerLimit", json_integer(0));
    json_object_set_new(j, "dispatchThrottledBytesEventsByBrokerLimit", json_integer(0));
    json_object_set_new(j, "subscriptionProperties", json_object());
    json_object_set_new(j, "filterProcessedMsgCount", json_integer(0));
    json_object_set_new(j, "filterAcceptedMsgCount", json_integer(0));
    json_object_set_new(j, "filterRejectedMsgCount", json_integer(0));
    json_object_set_new(j, "filterRescheduledMsgCount", json_integer(0));
    json_object_set_new(j, "durable", json_boolean(ss->durable));
    json_object_set_new(j, "replicated", json_false());
    return j;
}

/* TopicStats (docs/admin.md §6), fields in a 4.x answer's order. */
static json_t *admin_tp_topic_stats_json(struct admin *a, struct topic *t)
{
    struct topic_stats st;
    topic_get_stats(t, &st);
    json_t *j = json_object();
    json_object_set_new(j, "msgRateIn", json_real(st.msg_rate_in));
    json_object_set_new(j, "msgRateOut", json_real(st.msg_rate_out));
    json_object_set_new(j, "msgThroughputIn", json_real(st.throughput_in));
    json_object_set_new(j, "msgThroughputOut", json_real(st.throughput_out));
    json_object_set_new(j, "bytesInCounter", json_integer(st.bytes_in_counter));
    json_object_set_new(j, "msgInCounter", json_integer(st.msg_in_counter));
    json_object_set_new(j, "systemTopicBytesInCounter", json_integer(0));
    json_object_set_new(j, "bytesOutCounter", json_integer(st.bytes_out_counter));
    json_object_set_new(j, "msgOutCounter", json_integer(st.msg_out_counter));
    json_object_set_new(j, "bytesOutInternalCounter", json_integer(0));
    json_object_set_new(j, "averageMsgSize",
                        json_real(st.msg_rate_in > 0 ? st.throughput_in / st.msg_rate_in : 0.0));
    json_object_set_new(j, "msgChunkPublished", json_boolean(st.chunk_published));
    if (!topic_is_persistent(t)) /* NonPersistentTopicStats */
        json_object_set_new(j, "msgDropRate", json_real(st.msg_drop_rate));
    json_object_set_new(j, "storageSize", json_integer(st.storage_size));
    json_object_set_new(j, "backlogSize", json_integer(st.backlog_size));
    json_object_set_new(j, "backlogQuotaLimitSize", json_integer(st.quota_limit_bytes));
    json_object_set_new(j, "backlogQuotaLimitTime", json_integer(st.quota_limit_secs));
    json_object_set_new(j, "oldestBacklogMessageAgeSeconds", json_integer(st.backlog_age_secs));
    json_object_set_new(j, "publishRateLimitedTimes", json_integer(st.publish_rate_limited));
    json_object_set_new(j, "earliestMsgPublishTimeInBacklogs", json_integer(0));
    json_object_set_new(j, "offloadedStorageSize", json_integer(0));
    json_object_set_new(j, "lastOffloadLedgerId", json_integer(0));
    json_object_set_new(j, "lastOffloadSuccessTimeStamp", json_integer(0));
    json_object_set_new(j, "lastOffloadFailureTimeStamp", json_integer(0));
    json_object_set_new(j, "ongoingTxnCount", json_integer(0));
    json_object_set_new(j, "abortedTxnCount", json_integer(0));
    json_object_set_new(j, "committedTxnCount", json_integer(0));
    json_t *pubs = json_array();
    size_t pos = 0;
    struct topic_producer_stats ps;
    while (topic_producer_stats_next(t, &pos, &ps)) {
        json_t *p = json_object();
        json_object_set_new(p, "accessMode", json_string(admin_tp_access_mode_name(ps.mode)));
        json_object_set_new(p, "msgRateIn", json_real(ps.msg_rate_in));
        json_object_set_new(p, "msgThroughputIn", json_real(ps.throughput_in));
        json_object_set_new(
            p, "averageMsgSize",
            json_real(ps.msg_rate_in > 0 ? ps.throughput_in / ps.msg_rate_in : 0.0));
        json_object_set_new(p, "chunkedMessageRate", json_real(ps.chunked_msg_rate));
        if (!topic_is_persistent(t)) /* NonPersistentPublisherStats: no drops on this side */
            json_object_set_new(p, "msgDropRate", json_real(0.0));
        json_object_set_new(p, "producerId", json_integer((json_int_t)ps.id));
        json_object_set_new(p, "supportsPartialProducer", json_false());
        json_object_set_new(p, "producerName", json_string(ps.name));
        json_object_set_new(p, "connectedSince", admin_tp_iso_json(ps.connected_since_ms));
        json_object_set_new(p, "metadata", json_object());
        json_array_append_new(pubs, p);
    }
    json_object_set_new(j, "publishers", pubs);
    json_object_set_new(j, "waitingPublishers", json_integer(0));
    json_t *subs = json_object();
    struct topic_sub_stats ss;
    pos = 0;
    while (topic_sub_stats_next(t, &pos, &ss))
        json_object_set_new(subs, ss.name, admin_tp_sub_json(t, &ss));
    json_object_set_new(j, "subscriptions", subs);
    json_object_set_new(j, "replication", json_object());
    json_object_set_new(j, "deduplicationStatus", json_string(topic_dedup_status(t)));
    json_object_set_new(j, "nonContiguousDeletedMessagesRanges", json_integer(0));
    json_object_set_new(j, "nonContiguousDeletedMessagesRangesSerializedSize", json_integer(0));
    json_object_set_new(j, "delayedMessageIndexSizeInBytes", json_integer(st.delayed_index_bytes));
    json_object_set_new(j, "compaction",
                        json_pack("{s:i,s:i,s:i,s:i}", "lastCompactionRemovedEventCount", 0,
                                  "lastCompactionSucceedTimestamp", 0,
                                  "lastCompactionFailedTimestamp", 0,
                                  "lastCompactionDurationTimeInMills", 0));
    json_object_set_new(j, "ownerBroker", json_string(ns_broker_id(a->env->ns)));
    json_object_set_new(j, "topicCreationTimeStamp", json_integer((json_int_t)st.created_ms));
    json_object_set_new(j, "lastPublishTimeStamp", json_integer((json_int_t)st.last_publish_ms));
    return j;
}

/* Sum src into dst: numbers add up, arrays concatenate, objects merge recursively, other
 * values keep dst's (partitioned stats). */
static void admin_tp_json_merge_sum(json_t *dst, json_t *src)
{
    const char *k;
    json_t *sv;
    json_object_foreach(src, k, sv)
    {
        json_t *dv = json_object_get(dst, k);
        if (!dv) {
            json_object_set(dst, k, sv);
        } else if (json_is_integer(dv) && json_is_integer(sv)) {
            json_integer_set(dv, json_integer_value(dv) + json_integer_value(sv));
        } else if (json_is_real(dv) && json_is_real(sv)) {
            json_real_set(dv, json_real_value(dv) + json_real_value(sv));
        } else if (json_is_array(dv) && json_is_array(sv)) {
            json_array_extend(dv, sv);
        } else if (json_is_object(dv) && json_is_object(sv)) {
            admin_tp_json_merge_sum(dv, sv);
        }
    }
}

static void admin_tp_do_stats(struct topic_op *op, struct topic **topics)
{
    admin_reply_json(op->call, 200, admin_tp_topic_stats_json(op->a, topics[0]));
    admin_tp_op_free(op);
}

/* Answer PartitionedTopicStats from each partition's TopicStats (one[i], op->names[i]'s: n
 * references, taken): their sums, the metadata, and the partitions' own unless
 * perPartition=false (carried in op->force for this action); op is freed. */
static void admin_tp_reply_partitioned_stats(struct topic_op *op, json_t **one, int n)
{
    json_t *sum = NULL;
    json_t *parts = json_object();
    for (int i = 0; i < n; i++) {
        if (!sum)
            sum = json_deep_copy(one[i]);
        else
            admin_tp_json_merge_sum(sum, one[i]);
        json_object_set_new(parts, op->names[i], one[i]);
    }
    json_object_set_new(sum, "metadata", json_pack("{s:i}", "partitions", op->partitions));
    if (op->force)
        json_object_set_new(sum, "partitions", parts);
    else
        json_decref(parts);
    admin_reply_json(op->call, 200, sum);
    admin_tp_op_free(op);
}

static void admin_tp_do_partitioned_stats(struct topic_op *op, struct topic **topics)
{
    json_t **one = mg_calloc((size_t)op->n + 1, sizeof *one);
    for (int i = 0; i < op->n; i++)
        one[i] = admin_tp_topic_stats_json(op->a, topics[i]);
    admin_tp_reply_partitioned_stats(op, one, op->n);
    mg_free(one);
}

static json_t *admin_tp_pos_json(struct ml_position p)
{
    char buf[48];
    snprintf(buf, sizeof buf, "%" PRId64 ":%" PRId64, p.ledger, p.entry);
    return json_string(buf);
}

/* Internal stats (docs/admin.md §7). */
static json_t *admin_tp_internal_stats_json(struct topic *t)
{
    struct ml_ledger *ml = topic_ml(t);
    struct ml_stats ms;
    ml_get_stats(ml, &ms);
    struct topic_stats st;
    topic_get_stats(t, &st);
    json_t *j = json_object();
    json_object_set_new(j, "entriesAddedCounter", json_integer(ms.entries_added));
    json_object_set_new(j, "numberOfEntries", json_integer(ms.number_of_entries));
    json_object_set_new(j, "totalSize", json_integer(ms.total_size));
    json_object_set_new(j, "currentLedgerEntries", json_integer(ms.current_ledger_entries));
    json_object_set_new(j, "currentLedgerSize", json_integer(ms.current_ledger_size));
    json_object_set_new(j, "lastLedgerCreatedTimestamp", admin_tp_iso_json(st.created_ms));
    json_object_set_new(j, "waitingCursorsCount", json_integer(0));
    json_object_set_new(j, "pendingAddEntriesCount", json_integer(ms.pending_appends));
    json_object_set_new(j, "lastConfirmedEntry", admin_tp_pos_json(ml_last_confirmed(ml)));
    json_object_set_new(j, "state", json_string(ml_state_name(ml)));
    json_t *ledgers = json_array();
    size_t pos = 0;
    struct ml_ledger_stat ls;
    while (ml_ledger_next(ml, &pos, &ls)) {
        bool open = pos == (size_t)ms.num_ledgers; /* the last one takes appends */
        json_array_append_new(ledgers,
                              json_pack("{s:I,s:I,s:I,s:b,s:b}", "ledgerId", (json_int_t)ls.id,
                                        "entries", (json_int_t)(open ? 0 : ls.entries), "size",
                                        (json_int_t)(open ? 0 : ls.size), "offloaded", 0,
                                        "underReplicated", 0));
    }
    json_object_set_new(j, "ledgers", ledgers);
    json_t *cursors = json_object();
    struct topic_sub_stats ss;
    pos = 0;
    while (topic_sub_stats_next(t, &pos, &ss)) {
        struct ml_cursor *c = topic_sub_cursor(t, ss.name);
        char *ranges = c ? ml_cursor_ranges_string(c) : NULL;
        json_t *cj = json_object();
        json_object_set_new(cj, "markDeletePosition", admin_tp_pos_json(ss.mark_delete));
        json_object_set_new(cj, "readPosition", admin_tp_pos_json(ss.read_position));
        json_object_set_new(cj, "waitingReadOp", json_false());
        json_object_set_new(cj, "pendingReadOps", json_integer(0));
        json_object_set_new(cj, "messagesConsumedCounter", json_integer(ss.msg_out_counter));
        json_object_set_new(cj, "cursorLedger", json_integer(-1));
        json_object_set_new(cj, "cursorLedgerLastEntry", json_integer(-1));
        json_object_set_new(cj, "individuallyDeletedMessages", json_string(ranges ? ranges : "[]"));
        json_object_set_new(cj, "lastLedgerSwitchTimestamp", admin_tp_iso_json(st.created_ms));
        json_object_set_new(cj, "state", json_string("Open"));
        json_object_set_new(cj, "active", json_boolean(ss.n_consumers > 0));
        json_object_set_new(cj, "numberOfEntriesSinceFirstNotAckedMessage",
                            json_integer(ss.backlog));
        json_object_set_new(cj, "totalNonContiguousDeletedMessagesRange",
                            json_integer(c ? ml_cursor_num_ranges(c) : 0));
        json_object_set_new(cj, "subscriptionHavePendingRead", json_false());
        json_object_set_new(cj, "subscriptionHavePendingReplayRead", json_false());
        json_object_set_new(cj, "properties", json_object());
        json_object_set_new(cursors, ss.name, cj);
        mg_free(ranges);
    }
    json_object_set_new(j, "cursors", cursors);
    json_object_set_new(j, "schemaLedgers", json_array());
    json_object_set_new(j, "compactedLedger",
                        json_pack("{s:i,s:i,s:i,s:b,s:b}", "ledgerId", -1, "entries", -1, "size",
                                  -1, "offloaded", 0, "underReplicated", 0));
    return j;
}

static void admin_tp_do_internal_stats(struct topic_op *op, struct topic **topics)
{
    admin_reply_json(op->call, 200, admin_tp_internal_stats_json(topics[0]));
    admin_tp_op_free(op);
}

/* Answer PartitionedManagedLedgerInternalStats from each partition's internal stats (one[i],
 * op->names[i]'s: n references, taken); op is freed. */
static void admin_tp_reply_partitioned_internal_stats(struct topic_op *op, json_t **one, int n)
{
    json_t *parts = json_object();
    for (int i = 0; i < n; i++)
        json_object_set_new(parts, op->names[i], one[i]);
    admin_reply_json(
        op->call, 200,
        json_pack("{s:{s:i},s:o}", "metadata", "partitions", op->partitions, "partitions", parts));
    admin_tp_op_free(op);
}

static void admin_tp_do_partitioned_internal_stats(struct topic_op *op, struct topic **topics)
{
    json_t **one = mg_calloc((size_t)op->n + 1, sizeof *one);
    for (int i = 0; i < op->n; i++)
        one[i] = admin_tp_internal_stats_json(topics[i]);
    admin_tp_reply_partitioned_internal_stats(op, one, op->n);
    mg_free(one);
}

/* ---- subscriptions ---------------------------------------------------------------------- */

/* Append name (a subscription of a partition) to the names arr unless it is there already. */
static void admin_tp_add_name(json_t *arr, const char *name)
{
    for (size_t k = 0; k < json_array_size(arr); k++)
        if (strcmp(json_string_value(json_array_get(arr, k)), name) == 0)
            return;
    json_array_append_new(arr, json_string(name));
}

/* Add name to the subscriptions a partition update copies, unless it is there already. */
static void admin_tp_op_add_sub(struct topic_op *op, const char *name)
{
    for (int k = 0; k < op->n_subs; k++)
        if (strcmp(op->subs[k], name) == 0)
            return;
    op->subs = mg_realloc(op->subs, (size_t)(op->n_subs + 1) * sizeof *op->subs);
    op->subs[op->n_subs++] = mg_strdup(name);
}

static void admin_tp_do_list_subs(struct topic_op *op, struct topic **topics)
{
    json_t *arr = json_array();
    for (int i = 0; i < op->n; i++) {
        size_t pos = 0;
        struct topic_sub_stats ss;
        while (topic_sub_stats_next(topics[i], &pos, &ss))
            admin_tp_add_name(arr, ss.name);
    }
    admin_reply_json(op->call, 200, arr);
    admin_tp_op_free(op);
}

/* ResetCursorData / "latest" / "earliest" -> a position of t's ML where delivery restarts.
 * Returns 0, 1 for "latest" (no explicit position), or -1 for a bad body. */
static int admin_tp_reset_position(struct topic *t, json_t *body, struct ml_position *out)
{
    struct ml_ledger *ml = topic_ml(t);
    if (!body || (json_is_string(body) && strcmp(json_string_value(body), "latest") == 0)) {
        *out = ml_next_position(ml, ml_last_confirmed(ml));
        return 1;
    }
    if (json_is_string(body) && strcmp(json_string_value(body), "earliest") == 0) {
        *out = ml_first_position(ml);
        return 0;
    }
    if (!json_is_object(body))
        return -1;
    json_t *l = json_object_get(body, "ledgerId"), *e = json_object_get(body, "entryId");
    if (!json_is_integer(l) || !json_is_integer(e))
        return -1;
    struct ml_position p = {json_integer_value(l), json_integer_value(e)};
    if (p.ledger == INT64_MAX && p.entry == INT64_MAX) {
        *out = ml_next_position(ml, ml_last_confirmed(ml));
        return 1;
    }
    if (p.ledger < 0 || p.entry < 0) {
        *out = ml_first_position(ml);
        return 0;
    }
    if (json_is_true(json_object_get(body, "excluded")) ||
        json_is_true(json_object_get(body, "isExcluded")))
        p = ml_next_position(ml, p);
    *out = p;
    return 0;
}

static void admin_tp_do_create_sub(struct topic_op *op, struct topic **topics)
{
    /* Check first: creating on some partitions and failing on others helps nobody. */
    for (int i = 0; i < op->n; i++) {
        struct ml_position p;
        if (admin_tp_reset_position(topics[i], op->body, &p) < 0) {
            admin_tp_op_fail(op, 400, "Invalid reset cursor data");
            return;
        }
        if (topic_sub_cursor(topics[i], op->sub)) {
            admin_tp_op_fail(op, 409, "Subscription already exists for topic");
            return;
        }
    }
    for (int i = 0; i < op->n; i++) {
        struct ml_position p;
        int kind = admin_tp_reset_position(topics[i], op->body, &p);
        int rc = topic_admin_create_sub(topics[i], op->sub, kind == 0);
        if (rc == -MG_EEXIST) {
            admin_tp_op_fail(op, 409, "Subscription already exists for topic");
            return;
        }
        if (rc < 0) {
            admin_tp_op_fail(op, 500, mg_strerror(rc));
            return;
        }
        if (kind == 0 && ml_pos_cmp(p, ml_first_position(topic_ml(topics[i]))) > 0)
            topic_admin_reset_cursor(topics[i], op->sub, p);
    }
    admin_tp_op_done(op);
}

static void admin_tp_do_delete_sub(struct topic_op *op, struct topic **topics)
{
    int found = 0;
    for (int i = 0; i < op->n; i++) {
        if (!topic_sub_cursor(topics[i], op->sub))
            continue;
        found++;
        struct topic_sub_stats ss;
        size_t pos = 0;
        while (topic_sub_stats_next(topics[i], &pos, &ss))
            if (strcmp(ss.name, op->sub) == 0 && ss.n_consumers > 0 && !op->force) {
                admin_tp_op_fail(op, 412, "Subscription has active connected consumers");
                return;
            }
    }
    if (found == 0) {
        admin_reply_errorf(op->call, 404, "Subscription %s not found for topic %s", op->sub,
                           op->tn.full);
        admin_tp_op_free(op);
        return;
    }
    for (int i = 0; i < op->n; i++) {
        int rc = topic_admin_delete_sub(topics[i], op->sub, op->force);
        if (rc < 0 && rc != -MG_ENOSUB) {
            admin_tp_op_fail(op, rc == -MG_ECONSUMERBUSY ? 412 : 500,
                             rc == -MG_ECONSUMERBUSY ? "Subscription has active connected consumers"
                                                     : mg_strerror(rc));
            return;
        }
    }
    admin_tp_op_done(op);
}

static bool admin_tp_sub_missing(struct topic_op *op, struct topic **topics)
{
    for (int i = 0; i < op->n; i++) {
        if (!topic_sub_cursor(topics[i], op->sub)) {
            admin_reply_errorf(op->call, 404, "Subscription %s not found for topic %s", op->sub,
                               op->names[i]);
            admin_tp_op_free(op);
            return true;
        }
    }
    return false;
}

static void admin_tp_do_skip(struct topic_op *op, struct topic **topics)
{
    if (admin_tp_sub_missing(op, topics))
        return;
    char *end = NULL;
    errno = 0;
    long long n = strtoll(op->arg, &end, 10);
    if (errno || end == op->arg || *end || n < 0) {
        admin_tp_op_fail(op, 400, "Invalid number of messages to skip");
        return;
    }
    topic_admin_skip(topics[0], op->sub, (int64_t)n);
    admin_tp_op_done(op);
}

static void admin_tp_do_skip_all(struct topic_op *op, struct topic **topics)
{
    if (admin_tp_sub_missing(op, topics))
        return;
    for (int i = 0; i < op->n; i++)
        topic_admin_clear_backlog(topics[i], op->sub);
    admin_tp_op_done(op);
}

static void admin_tp_do_reset_by_id(struct topic_op *op, struct topic **topics)
{
    if (admin_tp_sub_missing(op, topics))
        return;
    struct ml_position p;
    if (admin_tp_reset_position(topics[0], op->body, &p) < 0) {
        admin_tp_op_fail(op, 400,
                         "Invalid reset cursor data: ledgerId and entryId "
                         "are required");
        return;
    }
    topic_admin_reset_cursor(topics[0], op->sub, p);
    admin_tp_op_done(op);
}

static void admin_tp_reset_time_next(struct topic_op *op);

static void admin_tp_reset_time_found(struct ml_position pos, int status, void *data)
{
    struct topic_op *op = data;
    if (admin_tp_op_gone(op))
        return;
    struct topic *t = topic_find(op->a->env->topics, op->names[op->step]);
    if (status < 0 || !t) {
        admin_reply_errorf(op->call, 412, "Unable to find position for timestamp %" PRIu64, op->ts);
        admin_tp_op_free(op);
        return;
    }
    if (topic_admin_reset_cursor(t, op->sub, pos) < 0) {
        admin_reply_errorf(op->call, 404, "Subscription %s not found for topic %s", op->sub,
                           op->names[op->step]);
        admin_tp_op_free(op);
        return;
    }
    op->step++;
    admin_tp_reset_time_next(op);
}

static void admin_tp_reset_time_next(struct topic_op *op)
{
    if (op->step == op->n) {
        admin_tp_op_done(op);
        return;
    }
    struct topic *t = topic_find(op->a->env->topics, op->names[op->step]);
    int rc = t ? ml_find_by_time(topic_ml(t), op->ts, admin_tp_reset_time_found, op) : -MG_ECLOSED;
    if (rc < 0) {
        admin_reply_errorf(op->call, 412, "Unable to find position for timestamp %" PRIu64, op->ts);
        admin_tp_op_free(op);
    }
}

static void admin_tp_do_reset_by_time(struct topic_op *op, struct topic **topics)
{
    if (admin_tp_sub_missing(op, topics))
        return;
    char *end = NULL;
    errno = 0;
    unsigned long long ts = strtoull(op->arg, &end, 10);
    if (errno || end == op->arg || *end) {
        admin_tp_op_fail(op, 400, "Invalid timestamp");
        return;
    }
    op->ts = ts;
    op->step = 0;
    admin_tp_reset_time_next(op);
}

/* expireMessages: each topic (partition) in turn, as topic_expire_messages answers later. */
static void admin_tp_expire_next(struct topic_op *op);

static void admin_tp_expire_done(void *data, int status)
{
    struct topic_op *op = data;
    if (admin_tp_op_gone(op))
        return;
    if (status == -MG_ENOSUB) {
        admin_reply_errorf(op->call, 404, "Subscription %s not found for topic %s", op->sub,
                           op->names[op->step]);
        admin_tp_op_free(op);
        return;
    }
    if (status < 0 && status != -MG_ECLOSED) {
        admin_tp_op_fail(op, 500, mg_strerror(status));
        return;
    }
    op->step++;
    admin_tp_expire_next(op);
}

static void admin_tp_expire_next(struct topic_op *op)
{
    while (op->step < op->n) {
        struct topic *t = topic_find(op->a->env->topics, op->names[op->step]);
        int rc = t ? topic_expire_messages(t, op->sub, (int64_t)op->ts, admin_tp_expire_done, op)
                   : -MG_ECLOSED;
        if (rc == 0)
            return;
        if (rc != -MG_ECLOSED) { /* a topic unloaded meanwhile has nothing to expire here */
            admin_tp_expire_done(op, rc);
            return;
        }
        op->step++;
    }
    admin_tp_op_done(op);
}

static void admin_tp_do_expire(struct topic_op *op, struct topic **topics)
{
    if (op->sub && admin_tp_sub_missing(op, topics))
        return;
    char *end = NULL;
    errno = 0;
    long long secs = strtoll(op->arg, &end, 10);
    if (errno || end == op->arg || *end || secs < 0) {
        admin_tp_op_fail(op, 400, "Invalid expire time in seconds");
        return;
    }
    op->ts = (uint64_t)secs;
    op->step = 0;
    admin_tp_expire_next(op);
}

/* ---- peek and examine: one stored message, as Pulsar's generateResponseWithEntry -------- */

/* Add header name: value to the reply, when both are what an HTTP header may carry (a
 * property key is a token, a value has no line break); others are left out. */
static void admin_tp_msg_header(struct evkeyvalq *h, const char *name, const char *value)
{
    if (!value)
        return;
    for (const char *p = name; *p; p++)
        if (*p <= ' ' || *p >= 0x7f || strchr("()<>@,;:\\\"/[]?={}", *p))
            return;
    evhttp_add_header(h, name, value); /* refuses a value with a line break */
}

static void admin_tp_msg_header_int(struct evkeyvalq *h, const char *name, int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    admin_tp_msg_header(h, name, buf);
}

static void admin_tp_msg_header_uint(struct evkeyvalq *h, const char *name, uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    admin_tp_msg_header(h, name, buf);
}

static void admin_tp_msg_header_time(struct evkeyvalq *h, const char *name, uint64_t ms)
{
    char buf[40];
    admin_iso_time(ms, buf, sizeof buf);
    admin_tp_msg_header(h, name, buf);
}

static void admin_tp_msg_header_b64(struct evkeyvalq *h, const char *name, const uint8_t *data,
                                    size_t len)
{
    if (len > 4096) /* far over any key or version; a header of its own is not the place */
        return;
    char *buf = mg_malloc((len + 2) / 3 * 4 + 1);
    EVP_EncodeBlock((unsigned char *)buf, data, (int)len);
    admin_tp_msg_header(h, name, buf);
    mg_free(buf);
}

static void admin_tp_msg_header_bool(struct evkeyvalq *h, const char *name, bool v)
{
    admin_tp_msg_header(h, name, v ? "true" : "false");
}

/* The X-Pulsar-* headers of a message with metadata md, stored at pos in total bytes of which
 * md took md_size (Pulsar's names and formats: times ISO-8601, binary fields base64). */
static void admin_tp_msg_headers(struct evkeyvalq *h, const Pulsar__Proto__MessageMetadata *md,
                                 struct ml_position pos, size_t total, size_t md_size)
{
    char id[48];
    snprintf(id, sizeof id, "%" PRId64 ":%" PRId64, pos.ledger, pos.entry);
    admin_tp_msg_header(h, "X-Pulsar-Message-ID", id);
    for (size_t i = 0; i < md->n_properties; i++) {
        if (!md->properties[i]->key || strlen(md->properties[i]->key) > 200)
            continue;
        char name[256];
        snprintf(name, sizeof name, "X-Pulsar-PROPERTY-%s", md->properties[i]->key);
        admin_tp_msg_header(h, name, md->properties[i]->value);
    }
    admin_tp_msg_header_time(h, "X-Pulsar-publish-time", md->publish_time);
    if (md->has_event_time)
        admin_tp_msg_header_time(h, "X-Pulsar-event-time", md->event_time);
    if (md->has_deliver_at_time)
        admin_tp_msg_header_time(h, "X-Pulsar-deliver-at-time", (uint64_t)md->deliver_at_time);
    if (md->has_num_messages_in_batch) {
        admin_tp_msg_header_int(h, "X-Pulsar-num-batch-message", md->num_messages_in_batch);
        admin_tp_msg_header_uint(h, "X-Pulsar-batch-size", total - md_size);
    }
    if (md->has_null_value)
        admin_tp_msg_header_bool(h, "X-Pulsar-null-value", md->null_value);
    if (md->has_num_chunks_from_msg) {
        admin_tp_msg_header_int(h, "X-Pulsar-PROPERTY-TOTAL-CHUNKS", md->num_chunks_from_msg);
        admin_tp_msg_header_int(h, "X-Pulsar-PROPERTY-CHUNK-ID", md->chunk_id);
    }
    admin_tp_msg_header_bool(h, "X-Pulsar-Is-Encrypted", md->n_encryption_keys > 0);
    admin_tp_msg_header(h, "X-Pulsar-producer-name", md->producer_name);
    admin_tp_msg_header_uint(h, "X-Pulsar-sequence-id", md->sequence_id);
    admin_tp_msg_header(h, "X-Pulsar-replicated-from", md->replicated_from);
    for (size_t i = 0; i < md->n_replicate_to; i++)
        admin_tp_msg_header(h, "X-Pulsar-replicated-to", md->replicate_to[i]);
    admin_tp_msg_header(h, "X-Pulsar-partition-key", md->partition_key);
    if (md->has_compression) {
        const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
            &pulsar__proto__compression_type__descriptor, (int)md->compression);
        admin_tp_msg_header(h, "X-Pulsar-compression", v ? v->name : "NONE");
    }
    if (md->has_uncompressed_size)
        admin_tp_msg_header_uint(h, "X-Pulsar-uncompressed-size", md->uncompressed_size);
    admin_tp_msg_header(h, "X-Pulsar-encryption-algo", md->encryption_algo);
    if (md->has_encryption_param)
        admin_tp_msg_header_b64(h, "X-Pulsar-Base64-encryption-param", md->encryption_param.data,
                                md->encryption_param.len);
    if (md->has_schema_version)
        admin_tp_msg_header_b64(h, "X-Pulsar-Base64-schema-version", md->schema_version.data,
                                md->schema_version.len);
    if (md->has_partition_key_b64_encoded)
        admin_tp_msg_header_bool(h, "X-Pulsar-partition-key-b64-encoded",
                                 md->partition_key_b64_encoded);
    if (md->has_ordering_key)
        admin_tp_msg_header_b64(h, "X-Pulsar-Base64-ordering-key", md->ordering_key.data,
                                md->ordering_key.len);
    if (md->has_marker_type)
        admin_tp_msg_header_int(h, "X-Pulsar-marker-type", md->marker_type);
    if (md->has_txnid_least_bits)
        admin_tp_msg_header_uint(h, "X-Pulsar-txnid-least-bits", md->txnid_least_bits);
    if (md->has_txnid_most_bits)
        admin_tp_msg_header_uint(h, "X-Pulsar-txnid-most-bits", md->txnid_most_bits);
    if (md->has_highest_sequence_id)
        admin_tp_msg_header_uint(h, "X-Pulsar-highest-sequence-id", md->highest_sequence_id);
    admin_tp_msg_header(h, "X-Pulsar-uuid", md->uuid);
    if (md->has_num_chunks_from_msg)
        admin_tp_msg_header_int(h, "X-Pulsar-num-chunks-from-msg", md->num_chunks_from_msg);
    if (md->has_total_chunk_msg_size)
        admin_tp_msg_header_int(h, "X-Pulsar-total-chunk-msg-size", md->total_chunk_msg_size);
    if (md->has_chunk_id)
        admin_tp_msg_header_int(h, "X-Pulsar-chunk-id", md->chunk_id);
    if (md->has_null_partition_key)
        admin_tp_msg_header_bool(h, "X-Pulsar-null-partition-key", md->null_partition_key);
}

/* Answer 200 with entry e's payload (a batch's whole payload: the client splits it) and its
 * metadata as headers, and end op. A compressed payload is decompressed first, as Pulsar
 * does (bounded by maxMessageSize; the compression headers still say how it is stored); one
 * that does not decompress answers 500 with the reason. */
static void admin_tp_reply_entry(struct topic_op *op, struct ml_entry *e)
{
    size_t off = 0;
    Pulsar__Proto__MessageMetadata *md = wire_entry_metadata_payload(e->data, &off);
    if (!md) {
        MG_WARN("admin", "%s: entry %" PRId64 ":%" PRId64 " has no readable message metadata",
                op->tn.full, e->pos.ledger, e->pos.entry);
        admin_tp_op_fail(op, 500, "Failed to parse the message metadata of the entry");
        return;
    }
    size_t total = evbuffer_get_length(e->data);
    uint8_t *stored = mg_malloc(total - off ? total - off : 1);
    struct evbuffer_ptr at;
    evbuffer_ptr_set(e->data, &at, off, EVBUFFER_PTR_SET);
    evbuffer_copyout_from(e->data, &at, stored, total - off); /* e->data stays as stored */
    uint8_t *payload = stored;
    size_t plen = total - off;
    if (md->has_compression && md->compression != PULSAR__PROTO__COMPRESSION_TYPE__NONE) {
        char why[200];
        uint8_t *raw = NULL;
        size_t size = md->has_uncompressed_size ? md->uncompressed_size : 0;
        if (mg_decompress((int)md->compression, stored, plen, size,
                          (size_t)op->a->env->cfg->max_message_size, &raw, why, sizeof why) < 0) {
            MG_WARN("admin", "%s: entry %" PRId64 ":%" PRId64 ": %s", op->tn.full, e->pos.ledger,
                    e->pos.entry, why);
            pulsar__proto__message_metadata__free_unpacked(md, NULL);
            mg_free(stored);
            admin_tp_op_fail(op, 500, why);
            return;
        }
        mg_free(stored);
        payload = stored = raw;
        plen = size;
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(op->call->req);
    admin_tp_msg_headers(h, md, e->pos, total, protobuf_c_message_get_packed_size(&md->base));
    pulsar__proto__message_metadata__free_unpacked(md, NULL);
    struct evbuffer *body = evbuffer_new();
    evbuffer_add(body, payload, plen);
    mg_free(stored);
    admin_reply_buf(op->call, 200, "application/octet-stream", body);
    evbuffer_free(body);
    admin_tp_op_free(op);
}

static void admin_tp_entry_read(struct ml_entry *e, int status, void *data)
{
    struct topic_op *op = data;
    if (admin_tp_op_gone(op)) {
        ml_entry_unref(e);
        return;
    }
    if (status == -MG_ENOTFOUND || (status >= 0 && !e)) {
        admin_tp_op_fail(op, 404, "Message not found");
    } else if (status < 0) {
        admin_reply_errorf(op->call, 500, "Failed to read the message: %s", mg_strerror(status));
        admin_tp_op_free(op);
    } else {
        admin_tp_reply_entry(op, e);
    }
    ml_entry_unref(e);
}

/* Read the entry at pos of t (through the managed ledger: its cache or the store) and answer
 * with it. */
static void admin_tp_read_message(struct topic_op *op, struct topic *t, struct ml_position pos)
{
    int rc = ml_get_entry(topic_ml(t), pos, admin_tp_entry_read, op);
    if (rc == -MG_ENOTFOUND)
        admin_tp_op_fail(op, 404, "Message not found");
    else if (rc < 0)
        admin_tp_op_fail(op, 500, mg_strerror(rc));
}

/* Peek: the op->ts-th entry after the mark-delete position that is not acknowledged (entries
 * acknowledged one by one are stepped over, as Pulsar's IndividualDeletedEntries.Exclude). The
 * walk looks at PEEK_SLICE positions per loop turn. */
#define PEEK_SLICE 65536

static void admin_tp_do_peek(struct topic_op *op, struct topic **topics);
static void admin_tp_peek_walk(struct topic_op *op);

static void admin_tp_peek_walk(struct topic_op *op)
{
    struct topic *t = topic_find(op->a->env->topics, op->names[0]);
    struct ml_cursor *c = t ? topic_sub_cursor(t, op->sub) : NULL;
    if (!c) { /* unloaded meanwhile, or the subscription went: from the start */
        if (op->reloads++ < OP_MAX_RELOADS) {
            admin_tp_op_run(op, admin_tp_do_peek, true);
            return;
        }
        admin_tp_op_fail(op, 500, "Failed to load topic: closed");
        return;
    }
    struct ml_ledger *ml = topic_ml(t);
    struct ml_position last = ml_last_confirmed(ml);
    for (int looked = 0; looked < PEEK_SLICE; looked++) {
        struct ml_position p = ml_next_position(ml, op->at);
        if (ml_pos_cmp(p, last) > 0) {
            admin_tp_op_fail(op, 404, "Message not found");
            return;
        }
        op->at = p;
        if (!ml_cursor_is_acked(c, p) && --op->left == 0) {
            admin_tp_read_message(op, t, p);
            return;
        }
    }
    admin_tp_op_later(op, admin_tp_peek_walk, 0);
}

static void admin_tp_do_peek(struct topic_op *op, struct topic **topics)
{
    if (admin_tp_sub_missing(op, topics))
        return;
    struct ml_cursor *c = topic_sub_cursor(topics[0], op->sub);
    if ((int64_t)op->ts > ml_cursor_backlog(c)) {
        admin_tp_op_fail(op, 404, "Message not found");
        return;
    }
    op->at = ml_cursor_mark_delete(c);
    op->left = (int64_t)op->ts;
    admin_tp_peek_walk(op);
}

/* Examine: the op->ts-th entry of the topic counted from its first (op->earliest) or from its
 * last entry, kept within the topic (Pulsar's getPositionAfterN stops at the last entry). */
static void admin_tp_do_examine(struct topic_op *op, struct topic **topics)
{
    struct ml_ledger *ml = topic_ml(topics[0]);
    struct ml_stats st;
    ml_get_stats(ml, &st);
    if (st.number_of_entries <= 0) {
        admin_tp_op_fail(op, 404, "Message not found");
        return;
    }
    int64_t k = op->earliest ? (int64_t)op->ts : st.number_of_entries - (int64_t)op->ts + 1;
    k = k < 1 ? 1 : k > st.number_of_entries ? st.number_of_entries : k;
    size_t pos = 0;
    struct ml_ledger_stat ls;
    while (ml_ledger_next(ml, &pos, &ls)) {
        if (k <= ls.entries) {
            admin_tp_read_message(op, topics[0], (struct ml_position){ls.id, k - 1});
            return;
        }
        k -= ls.entries;
    }
    admin_tp_op_fail(op, 404, "Message not found");
}

/* ---- topics ----------------------------------------------------------------------------- */

static void admin_tp_do_unload(struct topic_op *op, struct topic **topics)
{
    for (int i = 0; i < op->n; i++)
        topic_unload(topics[i]);
    admin_tp_op_done(op);
}

/* Pulsar's MessageId JSON. */
static json_t *admin_tp_msg_id_json(struct ml_position p, int partition)
{
    return json_pack("{s:I,s:I,s:i}", "ledgerId", (json_int_t)p.ledger, "entryId",
                     (json_int_t)p.entry, "partitionIndex", partition);
}

static void admin_tp_do_last_message_id(struct topic_op *op, struct topic **topics)
{
    struct ml_position p = ml_last_confirmed(topic_ml(topics[0]));
    admin_reply_json(op->call, 200, admin_tp_msg_id_json(p, op->tn.partition));
    admin_tp_op_free(op);
}

/* PUT compaction (Pulsar's triggerCompaction): 204 started, 409 one is running. */
static void admin_tp_do_compact(struct topic_op *op, struct topic **topics)
{
    for (int i = 0; i < op->n; i++) {
        int rc = topic_compact_start(topics[i]);
        if (rc == -MG_EBUSY) {
            admin_tp_op_fail(op, 409, "Compaction already in progress");
            return;
        }
        if (rc == -MG_ENOTALLOWED) {
            admin_tp_op_fail(op, 405, "Compaction is not allowed on a non-persistent topic");
            return;
        }
        if (rc < 0) {
            admin_reply_errorf(op->call, 500, "Cannot start compaction: %s", mg_strerror(rc));
            admin_tp_op_free(op);
            return;
        }
    }
    admin_tp_op_done(op);
}

/* GET compaction: Pulsar's LongRunningProcessStatus. */
static void admin_tp_do_compaction_status(struct topic_op *op, struct topic **topics)
{
    const char *err;
    const char *status = topic_compact_status(topics[0], &err);
    admin_reply_json(op->call, 200, json_pack("{s:s,s:s}", "status", status, "lastError", err));
    admin_tp_op_free(op);
}

/* terminate: each topic (partition) in turn, as topic_terminate answers later. A plain
 * topic answers its last message id; a partitioned one {"<partition>": id, ...} (Pulsar's
 * terminatePartitionedTopic map). */
static void admin_tp_terminate_next(struct topic_op *op);

static void admin_tp_terminated(void *data, int status, struct ml_position last)
{
    struct topic_op *op = data;
    if (admin_tp_op_gone(op))
        return;
    if (status < 0) {
        admin_tp_op_fail(op, 500, mg_strerror(status));
        return;
    }
    if (op->partitions > 0) {
        char key[16];
        snprintf(key, sizeof key, "%d", op->step);
        json_object_set_new(op->result, key, admin_tp_msg_id_json(last, op->step));
    } else {
        op->result = admin_tp_msg_id_json(last, op->tn.partition);
    }
    op->step++;
    admin_tp_terminate_next(op);
}

static void admin_tp_terminate_next(struct topic_op *op)
{
    if (op->step == op->n) {
        admin_reply_json(op->call, 200, op->result);
        op->result = NULL;
        admin_tp_op_free(op);
        return;
    }
    struct topic *t = topic_find(op->a->env->topics, op->names[op->step]);
    int rc = t ? topic_terminate(t, admin_tp_terminated, op) : -MG_ECLOSED;
    if (rc < 0)
        admin_tp_op_fail(op, 500, mg_strerror(rc));
}

static void admin_tp_do_terminate(struct topic_op *op, struct topic **topics)
{
    (void)topics;
    op->step = 0;
    op->result = op->partitions > 0 ? json_object() : NULL;
    admin_tp_terminate_next(op);
}

#define DELETE_WAIT_MS 20
#define DELETE_WAIT_TRIES 250 /* 5 s */

static void admin_tp_delete_wait_next(struct topic_op *op);

static void admin_tp_do_delete(struct topic_op *op, struct topic **topics)
{
    for (int i = 0; i < op->n; i++) {
        struct topic_stats st;
        topic_get_stats(topics[i], &st);
        if (!op->force && (st.n_producers > 0 || st.n_consumers > 0)) {
            admin_tp_op_fail(op, 412, "Topic has active producers/subscriptions");
            return;
        }
    }
    for (int i = 0; i < op->n; i++) {
        int rc = topic_delete(topics[i], op->force);
        if (rc < 0) {
            admin_tp_op_fail(op, rc == -MG_EBUSY ? 412 : 500,
                             rc == -MG_EBUSY ? "Topic has active producers/subscriptions"
                                             : mg_strerror(rc));
            return;
        }
    }
    op->step = 0;
    admin_tp_delete_wait_next(op);
}

/* A partitioned topic's partitions are gone: its metadata goes, then its schema and topic
 * policies (admin_gone), then c's answer. */
static void admin_tp_partitions_meta_delete(struct topic_op *op, struct admin_call *c)
{
    struct admin_gone *g = admin_gone_new(op->a->env, op->tn.full, admin_gone_reply, c);
    if (ns_partitions_delete(op->a->env->ns, op->tn.full, admin_gone_done, g) < 0) {
        admin_gone_free(g);
        admin_reply_error(c, 404, "Partitioned topic does not exist");
    }
}

/* The deleted topics' data leave the store after topic_delete returned: the answer waits
 * until the store no longer has them (bounded), so that whatever follows, on any broker
 * (a namespace deletion, a listing), finds them gone. */
static void admin_tp_delete_finish(struct topic_op *op)
{
    const struct admin_env *s = op->a->env;
    if (op->partitions > 0) {
        admin_tp_partitions_meta_delete(op, op->call);
    } else if (op->tn.partition < 0) { /* a partition alone keeps the partitioned topic's */
        admin_gone_done(admin_gone_new(s, op->tn.full, admin_gone_reply, op->call), 0);
    } else {
        admin_reply_no_content(op->call);
    }
    admin_tp_op_free(op);
}

static void admin_tp_delete_wait_stored(void *data, int status)
{
    struct topic_op *op = data;
    if (admin_tp_op_gone(op))
        return;
    if (status == 1 && op->wait_tries < DELETE_WAIT_TRIES) {
        op->wait_tries++;
        admin_tp_op_later(op, admin_tp_delete_wait_next, DELETE_WAIT_MS);
        return;
    }
    if (status != 0)
        MG_WARN("admin", "%s: deleted, but the store %s", op->names[op->step],
                status == 1 ? "still has its data" : mg_strerror(status));
    op->step++;
    admin_tp_delete_wait_next(op);
}

static void admin_tp_delete_wait_next(struct topic_op *op)
{
    if (op->step == op->n) {
        admin_tp_delete_finish(op);
        return;
    }
    if (ns_topic_stored(op->a->env->ns, op->names[op->step], admin_tp_delete_wait_stored, op) < 0) {
        op->step++;
        admin_tp_delete_wait_next(op);
    }
}

static void admin_tp_do_created(struct topic_op *op, struct topic **topics)
{
    (void)topics;
    admin_tp_op_done(op);
}

/* PUT P/{topic}: 409 when a topic of that name is stored, else create (load) it. */
static void admin_tp_create_listed(void *data, int status, char **names, int n)
{
    struct topic_op *op = data;
    if (!admin_tp_op_store_ok(op, status))
        return;
    for (int i = 0; i < n; i++) {
        if (strcmp(names[i], op->tn.full) == 0) {
            admin_tp_op_fail(op, 409, "This topic already exists");
            return;
        }
    }
    if (ns_topics_room(op->a->env->ns, &op->tn, names, n, 1) < 0) {
        admin_tp_op_fail(op, 412, NS_TOPICS_FULL);
        return;
    }
    admin_tp_op_run(op, admin_tp_do_created, false);
}

/* ---- partitions ------------------------------------------------------------------------- */

static void admin_tp_partitions_meta_listed(void *data, int status, char **names, int n)
{
    struct topic_op *op = data;
    if (admin_tp_op_gone(op))
        return;
    bool found = false;
    for (int i = 0; status == 0 && i < n && !found; i++)
        found = strcmp(names[i], op->tn.full) == 0;
    const struct admin_env *s = op->a->env;
    if (!found && !(op->force && s->cfg->allow_auto_topic_creation)) {
        admin_tp_op_not_found(op);
        return;
    }
    admin_reply_json(op->call, 200, json_pack("{s:i}", "partitions", 0));
    admin_tp_op_free(op);
}

/* PUT partitions: 409 when a plain topic of that name is stored; else write the metadata. */
static void admin_tp_partitions_create_listed(void *data, int status, char **names, int n)
{
    struct topic_op *op = data;
    if (admin_tp_op_gone(op))
        return;
    for (int i = 0; status == 0 && i < n; i++) {
        if (strcmp(names[i], op->tn.full) == 0) {
            admin_tp_op_fail(op, 409, "This topic already exists");
            return;
        }
    }
    if (status == 0 && ns_topics_room(op->a->env->ns, &op->tn, names, n, op->partitions) < 0) {
        admin_tp_op_fail(op, 412, NS_TOPICS_FULL);
        return;
    }
    int rc = ns_partitions_set(op->a->env->ns, op->tn.full, op->partitions, true, admin_reply_done,
                               op->call);
    if (rc == -MG_EEXIST)
        admin_reply_error(op->call, 409, "This topic already exists");
    else if (rc < 0)
        admin_reply_error(op->call, 500, mg_strerror(rc));
    admin_tp_op_free(op);
}

/* Partition update: copy the existing partitions' subscriptions to the new ones. */
static void admin_tp_do_copy_subs(struct topic_op *op, struct topic **topics)
{
    for (int i = 0; i < op->n; i++)
        for (int k = 0; k < op->n_subs; k++)
            if (!topic_sub_cursor(topics[i], op->subs[k]))
                topic_admin_create_sub(topics[i], op->subs[k], true);
    admin_tp_op_done(op);
}

static void admin_tp_partitions_updated(void *data, int status)
{
    struct topic_op *op = data;
    if (!admin_tp_op_store_ok(op, status))
        return;
    if (op->n_subs == 0) {
        admin_tp_op_done(op);
        return;
    }
    admin_tp_op_partition_names(op, op->new_from, op->partitions);
    admin_tp_op_run(op, admin_tp_do_copy_subs, false);
}

/* ---- partitioned topics across brokers ---------------------------------------------------
 *
 * An operation on a partitioned topic runs here, on the loaded partitions, only when this
 * broker owns the bundle of every partition it touches. Otherwise it is split into one
 * sub-request per partition (admin_fan), each served by the partition's owner, and the
 * answers are combined as the local operation would have: sums of stats, the union of
 * subscriptions, 204 when every partition did it, else the first partition's error.
 */

/* Does this broker own the bundle of every topic op names? */
static bool admin_tp_op_names_here(struct topic_op *op)
{
    const struct admin_env *s = op->a->env;
    bool here = true;
    for (int i = 0; i < op->n && here; i++) {
        struct topic_name tn;
        if (topic_name_parse(op->names[i], &tn) < 0)
            return false;
        here = ns_topic_owned(s->ns, &tn);
        topic_name_fini(&tn);
    }
    return here;
}

static char *admin_tp_uri_enc(const char *s)
{
    char *e = evhttp_uriencode(s, -1, 0);
    char *r = mg_strdup(e ? e : "");
    free(e);
    return r;
}

/* The admin path of topic full_name (in op's namespace) followed by suffix (already
 * encoded) and query. */
static char *admin_tp_topic_path(struct topic_op *op, const char *full, const char *suffix,
                                 const char *query)
{
    const char *dom = op->tn.persistent ? "persistent" : "non-persistent";
    const char *local = full + strlen(dom) + 3 + strlen(op->tn.tenant) + 1 + strlen(op->tn.ns) + 1;
    char *t = admin_tp_uri_enc(op->tn.tenant), *n = admin_tp_uri_enc(op->tn.ns),
         *l = admin_tp_uri_enc(local);
    char *p = mg_asprintf("/admin/v2/%s/%s/%s/%s%s%s%s", dom, t, n, l, suffix,
                          query && *query ? "?" : "", query && *query ? query : "");
    mg_free(t);
    mg_free(n);
    mg_free(l);
    return p;
}

/* Every partition answered 2xx (or ignore_status): 204; else the first one's error. */
static bool admin_tp_fan_all_ok(struct admin_call *c, struct admin_sub *subs, int n,
                                int ignore_status)
{
    int bad = admin_fan_first_error(subs, n, ignore_status);
    if (bad >= 0) {
        admin_fan_reply_error(c, &subs[bad]);
        return false;
    }
    return true;
}

static void admin_tp_fan_done_ok(struct admin_call *c, void *arg, struct admin_sub *subs, int n)
{
    if (admin_tp_fan_all_ok(c, subs, n, 0))
        admin_reply_no_content(c);
    admin_tp_op_free(arg);
}

/* Terminating partitions on several brokers: each one's message id, by partition. */
static void admin_tp_fan_done_terminate(struct admin_call *c, void *arg, struct admin_sub *subs,
                                        int n)
{
    if (admin_tp_fan_all_ok(c, subs, n, 0)) {
        json_t *j = json_object();
        for (int i = 0; i < n; i++) {
            char key[16];
            snprintf(key, sizeof key, "%d", i);
            json_object_set(j, key, subs[i].json ? subs[i].json : json_null());
        }
        admin_reply_json(c, 200, j);
    }
    admin_tp_op_free(arg);
}

/* Deleting a subscription: 404 only when no partition has it. */
static void admin_tp_fan_done_delete_sub(struct admin_call *c, void *arg, struct admin_sub *subs,
                                         int n)
{
    struct topic_op *op = arg;
    int found = 0;
    for (int i = 0; i < n; i++)
        found += subs[i].status != 404;
    if (found == 0)
        admin_reply_errorf(c, 404, "Subscription %s not found for topic %s", op->sub, op->tn.full);
    else if (admin_tp_fan_all_ok(c, subs, n, 404))
        admin_reply_no_content(c);
    admin_tp_op_free(op);
}

static void admin_tp_fan_done_stats(struct admin_call *c, void *arg, struct admin_sub *subs, int n)
{
    struct topic_op *op = arg;
    if (!admin_tp_fan_all_ok(c, subs, n, 0)) {
        admin_tp_op_free(op);
        return;
    }
    json_t **one = mg_calloc((size_t)n + 1, sizeof *one);
    for (int i = 0; i < n; i++)
        one[i] = json_is_object(subs[i].json) ? json_incref(subs[i].json) : json_object();
    admin_tp_reply_partitioned_stats(op, one, n);
    mg_free(one);
}

static void admin_tp_fan_done_internal_stats(struct admin_call *c, void *arg,
                                             struct admin_sub *subs, int n)
{
    struct topic_op *op = arg;
    if (!admin_tp_fan_all_ok(c, subs, n, 0)) {
        admin_tp_op_free(op);
        return;
    }
    json_t **one = mg_calloc((size_t)n + 1, sizeof *one);
    for (int i = 0; i < n; i++)
        one[i] = subs[i].json ? json_incref(subs[i].json) : json_object();
    admin_tp_reply_partitioned_internal_stats(op, one, n);
    mg_free(one);
}

static void admin_tp_fan_done_list_subs(struct admin_call *c, void *arg, struct admin_sub *subs,
                                        int n)
{
    if (!admin_tp_fan_all_ok(c, subs, n, 0)) {
        admin_tp_op_free(arg);
        return;
    }
    json_t *arr = json_array();
    for (int i = 0; i < n; i++) {
        for (size_t k = 0; k < json_array_size(subs[i].json); k++) {
            const char *name = json_string_value(json_array_get(subs[i].json, k));
            if (name)
                admin_tp_add_name(arr, name);
        }
    }
    admin_reply_json(c, 200, arr);
    admin_tp_op_free(arg);
}

/* Deleting a partitioned topic: its partitions (a partition never created answers 404),
 * then, only if all went, its metadata. */
static void admin_tp_fan_done_delete(struct admin_call *c, void *arg, struct admin_sub *subs, int n)
{
    struct topic_op *op = arg;
    if (admin_tp_fan_all_ok(c, subs, n, 404))
        admin_tp_partitions_meta_delete(op, c);
    admin_tp_op_free(op);
}

/* The subscriptions copied onto new partitions may already exist there. */
static void admin_tp_fan_done_copy_subs(struct admin_call *c, void *arg, struct admin_sub *subs,
                                        int n)
{
    if (admin_tp_fan_all_ok(c, subs, n, 409))
        admin_reply_no_content(c);
    admin_tp_op_free(arg);
}

/* Partition update: every new partition gets every subscription, from its start. */
static void admin_tp_fan_copy_subs(struct topic_op *op)
{
    char **paths = mg_calloc((size_t)(op->n * op->n_subs) + 1, sizeof *paths);
    int k = 0;
    for (int i = 0; i < op->n; i++) {
        for (int j = 0; j < op->n_subs; j++) {
            char *sj = admin_tp_uri_enc(op->subs[j]);
            char *sfx = mg_asprintf("/subscription/%s", sj);
            paths[k++] = admin_tp_topic_path(op, op->names[i], sfx, NULL);
            mg_free(sfx);
            mg_free(sj);
        }
    }
    admin_fan(op->call, EVHTTP_REQ_PUT, paths, k, "\"earliest\"", admin_tp_fan_done_copy_subs,
              admin_tp_op_free_arg, op);
    mg_free(paths);
}

/* How an operation on partitions owned by several brokers is split: for each partition, the
 * sub-request method, path (the partition's path, then "/subscription/{subscription}" when
 * sub, suffix, and "/{arg}" when arg), query (force=true when force and op->force) and body
 * (the call's own when body), and the function that combines the answers; or a function of
 * its own (fan). Operations missing here run only on a plain topic. */
static const struct {
    topic_op_fn fn;
    enum evhttp_cmd_type method;
    bool sub;
    const char *suffix;
    bool arg, force, body;
    admin_fan_done done;
    void (*fan)(struct topic_op *op);
} admin_tp_op_fans[] = {
    {.fn = admin_tp_do_partitioned_stats,
     .method = EVHTTP_REQ_GET,
     .suffix = "/stats",
     .done = admin_tp_fan_done_stats},
    {.fn = admin_tp_do_partitioned_internal_stats,
     .method = EVHTTP_REQ_GET,
     .suffix = "/internalStats",
     .done = admin_tp_fan_done_internal_stats},
    {.fn = admin_tp_do_list_subs,
     .method = EVHTTP_REQ_GET,
     .suffix = "/subscriptions",
     .done = admin_tp_fan_done_list_subs},
    {.fn = admin_tp_do_unload,
     .method = EVHTTP_REQ_PUT,
     .suffix = "/unload",
     .done = admin_tp_fan_done_ok},
    {.fn = admin_tp_do_compact,
     .method = EVHTTP_REQ_PUT,
     .suffix = "/compaction",
     .done = admin_tp_fan_done_ok},
    {.fn = admin_tp_do_terminate,
     .method = EVHTTP_REQ_POST,
     .suffix = "/terminate",
     .done = admin_tp_fan_done_terminate},
    {.fn = admin_tp_do_create_sub,
     .method = EVHTTP_REQ_PUT,
     .sub = true,
     .suffix = "",
     .body = true,
     .done = admin_tp_fan_done_ok},
    {.fn = admin_tp_do_delete_sub,
     .method = EVHTTP_REQ_DELETE,
     .sub = true,
     .suffix = "",
     .force = true,
     .done = admin_tp_fan_done_delete_sub},
    {.fn = admin_tp_do_skip_all,
     .method = EVHTTP_REQ_POST,
     .sub = true,
     .suffix = "/skip_all",
     .done = admin_tp_fan_done_ok},
    {.fn = admin_tp_do_expire,
     .method = EVHTTP_REQ_POST,
     .sub = true,
     .suffix = "/expireMessages",
     .arg = true,
     .done = admin_tp_fan_done_ok},
    {.fn = admin_tp_do_reset_by_time,
     .method = EVHTTP_REQ_POST,
     .sub = true,
     .suffix = "/resetcursor",
     .arg = true,
     .done = admin_tp_fan_done_ok},
    {.fn = admin_tp_do_delete,
     .method = EVHTTP_REQ_DELETE,
     .suffix = "",
     .force = true,
     .done = admin_tp_fan_done_delete},
    {.fn = admin_tp_do_copy_subs, .fan = admin_tp_fan_copy_subs},
};

static void admin_tp_op_fan(struct topic_op *op)
{
    size_t k = 0;
    while (k < sizeof admin_tp_op_fans / sizeof *admin_tp_op_fans &&
           admin_tp_op_fans[k].fn != op->fn)
        k++;
    if (k == sizeof admin_tp_op_fans / sizeof *admin_tp_op_fans) {
        admin_tp_op_fail(op, 500, "Operation not available across brokers");
        return;
    }
    if (admin_tp_op_fans[k].fan) {
        admin_tp_op_fans[k].fan(op);
        return;
    }
    /* a subscription operation without one: every subscription (expireMessages) */
    char *sub = admin_tp_op_fans[k].sub && op->sub ? admin_tp_uri_enc(op->sub) : NULL;
    char *arg = admin_tp_op_fans[k].arg ? admin_tp_uri_enc(op->arg) : NULL;
    const char *sub_seg = sub                       ? "/subscription/"
                          : admin_tp_op_fans[k].sub ? "/all_subscription"
                                                    : "";
    char *suffix = mg_asprintf("%s%s%s%s%s", sub_seg, sub ? sub : "", admin_tp_op_fans[k].suffix,
                               arg ? "/" : "", arg ? arg : "");
    const char *query = admin_tp_op_fans[k].force && op->force ? "force=true" : NULL;
    char **paths = mg_calloc((size_t)op->n + 1, sizeof *paths);
    for (int i = 0; i < op->n; i++)
        paths[i] = admin_tp_topic_path(op, op->names[i], suffix, query);
    mg_free(suffix);
    mg_free(sub);
    mg_free(arg);
    admin_fan(op->call, admin_tp_op_fans[k].method, paths, op->n,
              admin_tp_op_fans[k].body ? op->body_text : NULL, admin_tp_op_fans[k].done,
              admin_tp_op_free_arg, op);
    mg_free(paths);
}

/* POST partitions, across brokers: the durable subscriptions of the existing partitions,
 * read from their owners, to copy onto the new ones. */
static void admin_tp_grow_partitions_set(struct topic_op *op);

static void admin_tp_fan_done_grow_stats(struct admin_call *c, void *arg, struct admin_sub *subs,
                                         int n)
{
    struct topic_op *op = arg;
    if (!admin_tp_fan_all_ok(c, subs, n, 0)) {
        admin_tp_op_free(op);
        return;
    }
    for (int i = 0; i < n; i++) {
        const char *name;
        json_t *v;
        json_object_foreach(json_object_get(subs[i].json, "subscriptions"), name, v)
        {
            if (json_is_true(json_object_get(v, "isDurable")))
                admin_tp_op_add_sub(op, name);
        }
    }
    admin_tp_grow_partitions_set(op);
}

static void admin_tp_partitions_deleted(void *data, int status)
{
    struct admin_call *c = data;
    if (admin_call_gone(c))
        return;
    if (status == -MG_EBUSY)
        admin_reply_error(c, 412, "Topic has active producers/subscriptions");
    else if (status < 0)
        admin_reply_error(c, 500, mg_strerror(status));
    else
        admin_reply_no_content(c);
}

/* The operation on the path's topic (the router checked it, ADMIN_R_TOPIC): op->tn is
 * moved out of r; the path's subscription and argument ({numMessages}, {timestamp}) when it
 * has them. */
static struct topic_op *admin_tp_op_new(struct admin_req *r)
{
    struct topic_op *op = mg_calloc(1, sizeof *op);
    op->a = r->a;
    op->call = r->call;
    op->tn = r->tn;
    memset(&r->tn, 0, sizeof r->tn);
    op->sub = r->p.sub ? mg_strdup(r->p.sub) : NULL;
    op->arg = r->p.arg ? mg_strdup(r->p.arg) : NULL;
    op->body_text = admin_body_string(r->req);
    op->force = admin_query_flag(r, "force");
    op->partitions = ns_partitions_get(r->a->env->ns, op->tn.full);
    return op;
}

/* GET P/{topic}/partitions: {"partitions": N}, 0 for a plain topic; 404 when nothing exists,
 * unless checkAllowAutoCreation with auto-creation on. */
void admin_h_partitions_get(struct admin_req *r)
{
    const struct admin_env *s = r->a->env;
    struct topic_op *op = admin_tp_op_new(r);
    if (op->partitions > 0) {
        admin_reply_json(r->call, 200, json_pack("{s:i}", "partitions", op->partitions));
        admin_tp_op_free(op);
    } else if (topic_find(s->topics, op->tn.full)) {
        admin_reply_json(r->call, 200, json_pack("{s:i}", "partitions", 0));
        admin_tp_op_free(op);
    } else {
        op->force = admin_query_flag(r, "checkAllowAutoCreation");
        if (ns_list_topics(s->ns, r->tenant_ns, false, admin_tp_partitions_meta_listed, op) < 0) {
            admin_tp_op_fail(op, 404, "Namespace does not exist");
        }
    }
}

void admin_h_partitions_delete(struct admin_req *r)
{
    const struct admin_env *s = r->a->env;
    struct topic_op *op = admin_tp_op_new(r);
    if (op->partitions == 0) {
        if (topic_find(s->topics, op->tn.full))
            admin_reply_errorf(r->call, 409, "%s is not a partitioned topic", op->tn.full);
        else
            admin_reply_errorf(r->call, 404, "Partitioned topic %s does not exist", op->tn.full);
        admin_tp_op_free(op);
        return;
    }
    admin_tp_op_partition_names(op, 0, op->partitions);
    if (!admin_tp_op_names_here(op)) { /* some partitions are served by other brokers: ask each */
        admin_tp_op_run(op, admin_tp_do_delete, false);
        return;
    }
    /* Every partition is served here: sliced in ns (ns_partitioned_delete), so that
     * thousands of partitions neither hold the loop in one turn nor get loaded only to be
     * deleted. */
    struct admin_gone *g = admin_gone_new(s, op->tn.full, admin_tp_partitions_deleted, r->call);
    int rc = ns_partitioned_delete(s->ns, op->tn.full, op->force, admin_gone_done, g);
    admin_tp_op_free(op);
    if (rc < 0) {
        admin_gone_free(g);
        admin_reply_errorf(r->call, 404, "Partitioned topic does not exist");
    }
}

/* The body of PUT and POST P/{topic}/partitions: the number of partitions (bare JSON). False
 * when answered: 400 not a number, 406 out of range. */
static bool admin_tp_partitions_count(struct admin_req *r, int *count)
{
    if (r->body_bad || !json_is_integer(r->body)) {
        admin_reply_error(r->call, 400, "The request body must be the number of partitions");
        return false;
    }
    json_int_t n = json_integer_value(r->body);
    if (n <= 0) {
        admin_reply_error(r->call, 406, "Number of partitions should be more than 0");
        return false;
    }
    int maxp = r->a->env->cfg->max_num_partitions_per_partitioned_topic;
    if ((maxp > 0 && n > maxp) || n > INT_MAX) {
        admin_reply_errorf(r->call, 406, "Number of partitions should be less than or equal to %d",
                           maxp > 0 ? maxp : INT_MAX);
        return false;
    }
    *count = (int)n;
    return true;
}

/* PUT P/{topic}/partitions: creates the partitioned topic. */
void admin_h_partitions_create(struct admin_req *r)
{
    const struct admin_env *s = r->a->env;
    int n;
    if (!admin_tp_partitions_count(r, &n))
        return;
    if (strstr(r->tn.local, "-partition-")) {
        admin_reply_error(r->call, 412, "Partitioned Topic Name should not contain '-partition-'");
        return;
    }
    struct topic_op *op = admin_tp_op_new(r);
    if (op->partitions > 0 || topic_find(s->topics, op->tn.full)) {
        admin_tp_op_fail(op, 409,
                         op->partitions > 0 ? "Partitioned topic already exists"
                                            : "This topic already exists");
        return;
    }
    op->partitions = n;
    if (ns_list_topics(s->ns, r->tenant_ns, false, admin_tp_partitions_create_listed, op) < 0) {
        admin_tp_op_fail(op, 404, "Namespace does not exist");
    }
}

/* POST P/{topic}/partitions: grows it (4.x statuses, docs/admin.md §5); the subscriptions of
 * the existing partitions are copied onto the new ones. */
void admin_h_partitions_update(struct admin_req *r)
{
    const struct admin_env *s = r->a->env;
    int n;
    if (!admin_tp_partitions_count(r, &n))
        return;
    struct topic_op *op = admin_tp_op_new(r);
    int cur = op->partitions;
    if (cur == 0) {
        admin_reply_errorf(op->call, 409, "Topic %s is not the partitioned topic.", op->tn.full);
        admin_tp_op_free(op);
        return;
    }
    if (n < cur) {
        admin_reply_errorf(op->call, 422,
                           "Desired partitions %d can't be less than the current partitions %d.", n,
                           cur);
        admin_tp_op_free(op);
        return;
    }
    if (n == cur) {
        admin_tp_op_done(op);
        return;
    }
    /* The subscriptions to copy: read from the loaded partitions when this broker owns them
     * all, else from their owners. */
    op->new_from = cur;
    op->partitions = n;
    admin_tp_op_partition_names(op, 0, cur);
    if (!admin_tp_op_names_here(op)) {
        char **paths = mg_calloc((size_t)cur + 1, sizeof *paths);
        for (int i = 0; i < cur; i++)
            paths[i] = admin_tp_topic_path(op, op->names[i], "/stats", NULL);
        admin_fan(op->call, EVHTTP_REQ_GET, paths, cur, NULL, admin_tp_fan_done_grow_stats,
                  admin_tp_op_free_arg, op);
        mg_free(paths);
        return;
    }
    for (int i = 0; i < cur; i++) {
        struct topic *t = topic_find(s->topics, op->names[i]);
        size_t pos = 0;
        struct topic_sub_stats ss;
        while (t && topic_sub_stats_next(t, &pos, &ss))
            if (ss.durable)
                admin_tp_op_add_sub(op, ss.name);
    }
    admin_tp_grow_partitions_set(op);
}

static void admin_tp_grow_partitions_set(struct topic_op *op)
{
    for (int i = 0; i < op->n; i++) /* the existing partitions' names: not needed any more */
        mg_free(op->names[i]);
    op->n = 0;
    int rc = ns_partitions_set(op->a->env->ns, op->tn.full, op->partitions, false,
                               admin_tp_partitions_updated, op);
    if (rc < 0) {
        admin_tp_op_fail(op, 500, mg_strerror(rc));
    }
}

/* ---- ownership: serve here, or redirect to the broker that serves ------------------------
 *
 * A topic is served only by the broker that owns its bundle (loading it without the lease
 * would recover and fence the owner's ledger). A topic request or an HTTP lookup first
 * asks ns_lookup, as a binary LOOKUP does, which assigns an unowned bundle there and then:
 * owned or taken here -> the call is routed again and served here (a lookup answers with
 * this broker); owned by, or assigned to, another broker -> 307 to that broker's web URL
 * with authoritative=true, and that broker takes the bundle without choosing again. A
 * bundle in transition (being unloaded, a lost race, the new owner not written yet) is
 * asked again a bounded number of times, so a valid request never needs a client retry;
 * only a bundle that stays unavailable for LOCATE_TRIES rounds answers 503.
 */
#define LOCATE_TRIES 50     /* rounds of ns_lookup before 503: 5 s, past an unload (3 s) */
#define LOCATE_RETRY_MS 100 /* between rounds */

struct locate_op {
    struct admin *a;         /* borrowed */
    struct admin_call *call; /* until replied */
    char *topic;             /* owned: full name */
    char *ns;                /* owned: "t/ns" */
    char range[NS_BUNDLE_NAME_LEN];
    bool authoritative;
    bool lookup; /* HTTP lookup: answer with this broker's URLs; else route the call again */
    int tries;
    struct event *retry_ev; /* owned */
    char *why;              /* owned: the last reason the bundle was unavailable */
};

static void admin_tp_locate_free(struct locate_op *l)
{
    mg_event_free(l->retry_ev);
    mg_free(l->topic);
    mg_free(l->ns);
    mg_free(l->why);
    mg_free(l);
}

/* As admin_tp_op_gone, admin_tp_op_fail: for a locate_op. */
static bool admin_tp_locate_gone(struct locate_op *l)
{
    if (!admin_call_gone(l->call))
        return false;
    admin_tp_locate_free(l);
    return true;
}

static void admin_tp_locate_fail(struct locate_op *l, int status, const char *reason)
{
    admin_reply_error(l->call, status, reason);
    admin_tp_locate_free(l);
}

static void admin_tp_lookup_reply_self(struct admin_call *c, const struct admin_env *s)
{
    json_t *j = json_pack("{s:s,s:s,s:s,s:s}", "brokerUrl", ns_broker_url(s->ns), "httpUrl",
                          ns_web_url(s->ns), "nativeUrl", ns_broker_url(s->ns), "brokerUrlSsl", "");
    /* Pulsar's LookupData carries the TLS URLs only when TLS is on */
    if (ns_broker_url_tls(s->ns))
        json_object_set_new(j, "brokerUrlTls", json_string(ns_broker_url_tls(s->ns)));
    if (ns_web_url_tls(s->ns))
        json_object_set_new(j, "httpUrlTls", json_string(ns_web_url_tls(s->ns)));
    admin_reply_json(c, 200, j);
}

/* The request's URI on another broker: its path and query, with authoritative=true instead
 * of any authoritative parameter (Pulsar's redirect does the same). */
static char *admin_tp_redirect_location(struct evhttp_request *req, const char *web_url)
{
    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
    const char *path = evhttp_uri_get_path(u);
    const char *query = evhttp_uri_get_query(u);
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, "%s%s?", web_url, path && *path ? path : "/");
    for (const char *p = query; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        bool skip = n == 0 || (strncmp(p, "authoritative", 13) == 0 && (n == 13 || p[13] == '='));
        if (!skip) {
            evbuffer_add(b, p, n);
            evbuffer_add(b, "&", 1);
        }
        p += n;
        if (*p == '&')
            p++;
    }
    evbuffer_add_printf(b, "authoritative=true");
    return admin_buf_string(b);
}

static void admin_tp_locate_step(struct locate_op *l);

/* This broker serves the topic. */
static void admin_tp_locate_here(struct locate_op *l)
{
    struct admin_call *c = l->call;
    if (l->lookup) {
        admin_tp_lookup_reply_self(c, l->a->env);
    } else {
        c->gated = true;
        admin_route(c);
    }
    admin_tp_locate_free(l);
}

static void admin_tp_locate_redirect(struct locate_op *l, const char *web_url)
{
    char *loc = admin_tp_redirect_location(l->call->req, web_url);
    admin_reply_redirect(l->call, loc);
    mg_free(loc);
    admin_tp_locate_free(l);
}

/* The bundle is unavailable for now: ask again shortly, or give up with 503. */
static void admin_tp_locate_again(struct locate_op *l, const char *why)
{
    if (why) {
        mg_free(l->why);
        l->why = mg_strdup(why);
    }
    if (++l->tries >= LOCATE_TRIES) {
        admin_reply_errorf(l->call, 503, "%s", l->why ? l->why : "Topic's bundle is unavailable");
        admin_tp_locate_free(l);
        return;
    }
    struct timeval tv = {0, LOCATE_RETRY_MS * 1000};
    event_add(l->retry_ev, &tv);
}

static void admin_tp_locate_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct locate_op *l = arg;
    if (admin_tp_locate_gone(l))
        return;
    admin_tp_locate_step(l);
}

static void admin_tp_locate_owner(void *data, int status, const struct ns_owner *o)
{
    struct locate_op *l = data;
    if (admin_tp_locate_gone(l))
        return;
    if (status == -MG_ECANCELED) {
        admin_tp_locate_fail(l, 503, "Broker is shutting down");
        return;
    }
    if (status == 0 && o->kind == NS_OWNER_OTHER && o->web_url && !o->disabled) {
        admin_tp_locate_redirect(l, admin_call_web_url(l->call, o->web_url, o->web_url_tls));
        return;
    }
    /* Nobody (yet), ourselves (a race with our own acquisition) or unreadable: ask again. */
    admin_tp_locate_again(l, status < 0 ? mg_strerror(status)
                                        : "Owner of the topic's bundle is changing");
}

static void admin_tp_locate_decided(void *data, int status, const char *url, const char *message)
{
    struct locate_op *l = data;
    if (admin_tp_locate_gone(l))
        return;
    const struct admin_env *s = l->a->env;
    if (status == -MG_ECANCELED) {
        admin_tp_locate_fail(l, 503, "Broker is shutting down");
        return;
    }
    if (status == -MG_ENOTREADY) {
        admin_tp_locate_again(l, message);
        return;
    }
    if (status < 0) {
        admin_tp_locate_fail(l, 500, message ? message : mg_strerror(status));
        return;
    }
    if (!url || strcmp(url, ns_broker_url(s->ns)) == 0) {
        admin_tp_locate_here(l);
        return;
    }
    /* Owned by, or just assigned to, another broker: its web URL from its registration, or
     * else from the ownership key. */
    const char *web = ns_broker_web_url(s->ns, url);
    if (web) {
        web = admin_call_web_url(l->call, web, ns_broker_web_url_tls(s->ns, url));
        admin_tp_locate_redirect(l, web);
        return;
    }
    if (ns_bundle_owner(s->ns, l->ns, l->range, admin_tp_locate_owner, l) < 0)
        admin_tp_locate_again(l, "Owner of the topic's bundle is not known");
}

static void admin_tp_locate_step(struct locate_op *l)
{
    const struct admin_env *s = l->a->env;
    struct topic_name tn;
    if (topic_name_parse(l->topic, &tn) < 0) { /* it parsed when the call was routed */
        admin_tp_locate_fail(l, 500, "Invalid topic name");
        return;
    }
    int rc = ns_lookup(s->ns, &tn, l->authoritative, admin_tp_locate_decided, l);
    topic_name_fini(&tn);
    if (rc == 1) {
        admin_tp_locate_here(l);
        return;
    }
    if (rc == -MG_ENOTREADY) {
        admin_tp_locate_again(l, "Topic's bundle is being unloaded");
        return;
    }
    if (rc == -MG_ENOTFOUND) {
        admin_tp_locate_fail(l, 404, "Namespace does not exist");
        return;
    }
    if (rc < 0) {
        admin_tp_locate_fail(l, 503, mg_strerror(rc));
        return;
    }
}

/* Start finding who serves tn for the call (lookup: an HTTP lookup). */
static void admin_tp_locate_start(struct admin_req *r, const struct topic_name *tn, bool lookup)
{
    struct locate_op *l = mg_calloc(1, sizeof *l);
    l->a = r->a;
    l->call = r->call;
    l->topic = mg_strdup(tn->full);
    l->ns = mg_asprintf("%s/%s", tn->tenant, tn->ns);
    l->authoritative = admin_query_flag(r, "authoritative");
    l->lookup = lookup;
    l->retry_ev = evtimer_new(r->a->env->base, admin_tp_locate_retry_cb, l);
    if (ns_topic_bundle(r->a->env->ns, tn, l->range) < 0) {
        admin_reply_error(r->call, 404, "Namespace does not exist");
        admin_tp_locate_free(l);
        return;
    }
    admin_tp_locate_step(l);
}

bool admin_topic_gate(struct admin_req *r)
{
    if (r->call->gated || ns_topic_owned(r->a->env->ns, &r->tn))
        return true;
    admin_tp_locate_start(r, &r->tn, false);
    return false;
}

/* ---- handlers of P = /admin/v2/persistent/{tenant}/{namespace}[/...] ---------------------- */

/* GET P, and GET /admin/v2/namespaces/{tenant}/{namespace}/topics: every topic of the
 * namespace, loaded or not, partitions included. */
/* ---- non-persistent topics across brokers (Pulsar's NonPersistentTopics.getList) ---------- */

static int admin_np_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reply the names in the JSON array names (taken), sorted, each once. */
static void admin_np_reply_sorted(struct admin_call *c, json_t *names)
{
    size_t n = json_array_size(names), u = 0;
    const char **v = mg_calloc(n + 1, sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = json_string_value(json_array_get(names, i));
    qsort(v, n, sizeof *v, admin_np_cmp);
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++)
        if (v[i] && (u == 0 || strcmp(v[u - 1], v[i]) != 0)) {
            v[u++] = v[i];
            json_array_append_new(out, json_string(v[i]));
        }
    mg_free(v);
    json_decref(names);
    admin_reply_json(c, 200, out);
}

static void admin_np_reply_none(struct admin_call *c)
{
    admin_reply_json(c, 200, json_array());
}

/* GET NPT/{bundle} (Pulsar's getListFromBundle): the non-persistent topics loaded by the
 * bundle's owner, served there (a redirect from elsewhere); [] when nobody owns it. */
void admin_h_np_bundle_topics(struct admin_req *r)
{
    if (!admin_bundle_here(r, admin_np_reply_none))
        return;
    const struct admin_env *s = r->a->env;
    char *prefix = mg_asprintf("non-persistent://%s/", r->tenant_ns);
    size_t plen = strlen(prefix), pos = 0;
    json_t *names = json_array();
    struct topic *t;
    while ((t = topic_next(s->topics, &pos))) {
        const char *full = topic_full_name(t);
        struct topic_name tn;
        char range[NS_BUNDLE_NAME_LEN];
        if (strncmp(full, prefix, plen) != 0 || strchr(full + plen, '/') ||
            topic_name_parse(full, &tn) < 0)
            continue;
        if (ns_topic_bundle(s->ns, &tn, range) >= 0 && strcmp(range, r->p.bundle) == 0)
            json_array_append_new(names, json_string(full));
        topic_name_fini(&tn);
    }
    mg_free(prefix);
    admin_np_reply_sorted(r->call, names);
}

/* A listing of a namespace's non-persistent topics: what is known here, then what the owners
 * of the bundles not owned here answer. */
struct admin_np_list {
    struct admin_call *call;
    struct ns *ns;   /* borrowed */
    char *tenant_ns; /* owned */
    char *path;      /* owned: the namespace's NPT path (encoded) */
    json_t *names;   /* owned: collected so far */
};

static void admin_np_list_free(void *arg)
{
    struct admin_np_list *l = arg;
    json_decref(l->names);
    mg_free(l->tenant_ns);
    mg_free(l->path);
    mg_free(l);
}

static void admin_np_fanned(struct admin_call *c, void *arg, struct admin_sub *subs, int n)
{
    struct admin_np_list *l = arg;
    int bad = admin_fan_first_error(subs, n, 0);
    if (bad >= 0) {
        admin_fan_reply_error(c, &subs[bad]);
    } else {
        for (int i = 0; i < n; i++) {
            size_t k;
            json_t *v;
            json_array_foreach(subs[i].json, k, v) if (json_is_string(v))
                json_array_append(l->names, v);
        }
        admin_np_reply_sorted(c, json_incref(l->names));
    }
    admin_np_list_free(l);
}

static void admin_np_listed_here(void *data, int status, char **names, int n)
{
    struct admin_np_list *l = data;
    if (admin_call_ended(l->call, status)) {
        admin_np_list_free(l);
        return;
    }
    for (int i = 0; i < n; i++)
        json_array_append_new(l->names, json_string(names[i]));
    int nb = ns_namespace_bundles(l->ns, l->tenant_ns), k = 0;
    char **paths = mg_calloc((size_t)nb + 1, sizeof *paths);
    char range[NS_BUNDLE_NAME_LEN];
    for (int i = 0; i < nb; i++) {
        ns_bundle_name(nb, i, range);
        if (!ns_bundle_owned(l->ns, l->tenant_ns, range)) /* (owned here: listed already) */
            paths[k++] = mg_asprintf("%s/%s", l->path, range);
    }
    if (k == 0) {
        mg_free(paths);
        admin_np_reply_sorted(l->call, json_incref(l->names));
        admin_np_list_free(l);
        return;
    }
    admin_fan(l->call, EVHTTP_REQ_GET, paths, k, NULL, admin_np_fanned, admin_np_list_free, l);
    mg_free(paths);
}

/* GET NPT: this broker's non-persistent topics (and its partitioned ones' partitions) with
 * those of the namespace's other bundles, asked of their owners (GET NPT/{bundle}). */
static void admin_np_list(struct admin_req *r)
{
    struct admin_np_list *l = mg_calloc(1, sizeof *l);
    l->call = r->call;
    l->ns = r->a->env->ns;
    l->tenant_ns = mg_strdup(r->tenant_ns);
    char *t = evhttp_uriencode(r->p.tenant, -1, 0), *local = evhttp_uriencode(r->p.ns, -1, 0);
    l->path = mg_asprintf("/admin/v2/non-persistent/%s/%s", t, local);
    free(t);
    free(local);
    l->names = json_array();
    if (ns_list_topics_in(l->ns, r->tenant_ns, NS_DOMAIN_NON_PERSISTENT, false,
                          admin_np_listed_here, l) < 0) {
        admin_reply_error(r->call, 404, "Namespace does not exist");
        admin_np_list_free(l);
    }
}

void admin_h_topics(struct admin_req *r)
{
    if (admin_domain(r) == NS_DOMAIN_NON_PERSISTENT) {
        admin_np_list(r);
        return;
    }
    if (ns_list_topics_in(r->a->env->ns, r->tenant_ns, admin_domain(r), false, admin_reply_names,
                          r->call) < 0)
        admin_reply_error(r->call, 404, "Namespace does not exist");
}

/* GET P/partitioned: the partitioned topics' base names. */
void admin_h_partitioned_topics(struct admin_req *r)
{
    if (ns_list_topics_in(r->a->env->ns, r->tenant_ns, admin_domain(r), true, admin_reply_names,
                          r->call) < 0)
        admin_reply_error(r->call, 404, "Namespace does not exist");
}

/* PUT P/{topic}: a plain topic, unless one of that name (plain or partitioned) exists. */
void admin_h_topic_create(struct admin_req *r)
{
    const struct admin_env *s = r->a->env;
    struct topic_op *op = admin_tp_op_new(r);
    if (op->partitions > 0 || topic_find(s->topics, op->tn.full)) {
        admin_tp_op_fail(op, 409, "This topic already exists");
        return;
    }
    if (ns_list_topics(s->ns, r->tenant_ns, false, admin_tp_create_listed, op) < 0) {
        admin_tp_op_fail(op, 404, "Namespace does not exist");
    }
}

/* DELETE P/{topic}[?force=true]: a plain topic (a partitioned one has its own call). */
void admin_h_topic_delete(struct admin_req *r)
{
    struct topic_op *op = admin_tp_op_new(r);
    if (op->partitions > 0) {
        admin_reply_errorf(op->call, 409,
                           "%s is a partitioned topic, instead of calling delete topic, "
                           "please call delete-partitioned-topic.",
                           op->tn.full);
        admin_tp_op_free(op);
        return;
    }
    admin_tp_op_run(op, admin_tp_do_delete, true);
}

/* A call on a plain topic only (not a partitioned topic's base name, which Pulsar answers as
 * a topic not found): run fn. */
static void admin_tp_run_on_plain_topic(struct topic_op *op, topic_op_fn fn)
{
    if (op->partitions > 0) {
        admin_tp_op_not_found(op);
        return;
    }
    admin_tp_op_run(op, fn, true);
}

/* A call on a partitioned topic's base name only: run fn on its partitions. */
static void admin_tp_run_on_partitioned(struct topic_op *op, topic_op_fn fn)
{
    if (op->partitions == 0) {
        admin_reply_errorf(op->call, 404, "Partitioned Topic %s not found", op->tn.full);
        admin_tp_op_free(op);
        return;
    }
    admin_tp_op_run(op, fn, true);
}

void admin_h_topic_stats(struct admin_req *r)
{
    admin_tp_run_on_plain_topic(admin_tp_op_new(r), admin_tp_do_stats);
}

void admin_h_internal_stats(struct admin_req *r)
{
    admin_tp_run_on_plain_topic(admin_tp_op_new(r), admin_tp_do_internal_stats);
}

void admin_h_partitioned_stats(struct admin_req *r)
{
    struct topic_op *op = admin_tp_op_new(r);
    const char *per = admin_query(r, "perPartition"); /* default true: carried in force */
    op->force = !per || strcmp(per, "false") != 0;
    admin_tp_run_on_partitioned(op, admin_tp_do_partitioned_stats);
}

void admin_h_partitioned_internal_stats(struct admin_req *r)
{
    admin_tp_run_on_partitioned(admin_tp_op_new(r), admin_tp_do_partitioned_internal_stats);
}

void admin_h_subscriptions(struct admin_req *r)
{
    admin_tp_op_run(admin_tp_op_new(r), admin_tp_do_list_subs, true);
}

void admin_h_topic_unload(struct admin_req *r)
{
    admin_tp_op_run(admin_tp_op_new(r), admin_tp_do_unload, true);
}

/* A call Pulsar refuses on a partitioned topic's base name: 405 with reason there. True when
 * answered (op is freed). */
static bool admin_tp_partitioned_405(struct topic_op *op, const char *reason)
{
    if (op->partitions == 0)
        return false;
    admin_tp_op_fail(op, 405, reason);
    return true;
}

void admin_h_compaction_trigger(struct admin_req *r)
{
    admin_tp_op_run(admin_tp_op_new(r), admin_tp_do_compact, true);
}

void admin_h_compaction_status(struct admin_req *r)
{
    struct topic_op *op = admin_tp_op_new(r);
    if (!admin_tp_partitioned_405(op, "Compaction status on a partitioned topic is not allowed"))
        admin_tp_op_run(op, admin_tp_do_compaction_status, true);
}

void admin_h_last_message_id(struct admin_req *r)
{
    struct topic_op *op = admin_tp_op_new(r);
    if (!admin_tp_partitioned_405(op, "Get last message id on a partitioned topic is not allowed"))
        admin_tp_op_run(op, admin_tp_do_last_message_id, true);
}

/* POST P/{topic}/terminate: the last message id; 405 on a partitioned topic's name. */
void admin_h_topic_terminate(struct admin_req *r)
{
    struct topic_op *op = admin_tp_op_new(r);
    if (!admin_tp_partitioned_405(op, "Termination of a partitioned topic is not allowed"))
        admin_tp_op_run(op, admin_tp_do_terminate, true);
}

/* POST P/{topic}/partitions/terminate: every partition, {"<partition>": message id}. */
void admin_h_partitions_terminate(struct admin_req *r)
{
    admin_tp_run_on_partitioned(admin_tp_op_new(r), admin_tp_do_terminate);
}

/* The 1-based message position of a peek (an int above 0, Pulsar's checkArgument) or an
 * examine (a long; below 1 means 1) into op->ts: false when answered 400. */
static bool admin_tp_message_position(struct topic_op *op, const char *s, bool peek)
{
    char *end = NULL;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (errno || end == s || *end || (peek && (n < 1 || n > INT_MAX))) {
        admin_tp_op_fail(op, 400, "Invalid message position");
        return false;
    }
    op->ts = (uint64_t)(n < 1 ? 1 : n);
    return true;
}

/* GET .../subscription/{subscription}/position/{messagePosition}: the n-th message (from 1)
 * of the subscription's backlog, as Pulsar's peekNthMessage. */
void admin_h_sub_peek(struct admin_req *r)
{
    struct topic_op *op = admin_tp_op_new(r);
    if (admin_tp_partitioned_405(op, "Peek messages on a partitioned topic is not allowed"))
        return;
    if (admin_tp_message_position(op, op->arg, true))
        admin_tp_op_run(op, admin_tp_do_peek, true);
}

/* GET P/{topic}/examinemessage?initialPosition=earliest|latest&messagePosition=n: the n-th
 * message from the first (earliest) or the last (latest, the default) of the topic. */
void admin_h_examine_message(struct admin_req *r)
{
    struct topic_op *op = admin_tp_op_new(r);
    if (admin_tp_partitioned_405(op, "Examine messages on a partitioned topic is not allowed, "
                                     "please try examine message on specific topic partition"))
        return;
    const char *init = admin_query(r, "initialPosition");
    op->earliest = init && strcmp(init, "earliest") == 0;
    const char *n = admin_query(r, "messagePosition");
    if (admin_tp_message_position(op, n ? n : "1", false))
        admin_tp_op_run(op, admin_tp_do_examine, true);
}

/* PUT P/{topic}/subscription/{subscription}: an optional ResetCursorData body (default
 * latest); a missing topic is created when auto-creation is allowed. */
void admin_h_sub_create(struct admin_req *r)
{
    struct topic_op *op = admin_tp_op_new(r);
    if (r->body_bad) {
        admin_tp_op_fail(op, 400, "Invalid reset cursor data");
        return;
    }
    op->body = r->body;
    r->body = NULL;
    admin_tp_op_run(op, admin_tp_do_create_sub, !r->a->env->cfg->allow_auto_topic_creation);
}

void admin_h_sub_delete(struct admin_req *r)
{
    admin_tp_op_run(admin_tp_op_new(r), admin_tp_do_delete_sub, true);
}

void admin_h_sub_skip(struct admin_req *r)
{
    struct topic_op *op = admin_tp_op_new(r);
    if (!admin_tp_partitioned_405(op, "Skip messages on a partitioned topic is not allowed"))
        admin_tp_op_run(op, admin_tp_do_skip, true);
}

void admin_h_sub_skip_all(struct admin_req *r)
{
    admin_tp_op_run(admin_tp_op_new(r), admin_tp_do_skip_all, true);
}

void admin_h_sub_reset_by_time(struct admin_req *r)
{
    admin_tp_op_run(admin_tp_op_new(r), admin_tp_do_reset_by_time, true);
}

/* POST .../subscription/{sub}/expireMessages/{seconds} and
 * .../all_subscription/expireMessages/{seconds}: acknowledge what is older (Pulsar's TTL by
 * hand); 204. */
void admin_h_sub_expire(struct admin_req *r)
{
    admin_tp_op_run(admin_tp_op_new(r), admin_tp_do_expire, true);
}

/* POST .../resetcursor: to a message id (ResetCursorData); not on a partitioned base name. */
void admin_h_sub_reset_by_id(struct admin_req *r)
{
    struct topic_op *op = admin_tp_op_new(r);
    if (admin_tp_partitioned_405(op,
                                 "Reset-cursor at position is not allowed for partitioned-topic"))
        return;
    if (r->body_bad || !r->body) {
        admin_tp_op_fail(op, 400, "Invalid reset cursor data: ledgerId and entryId are required");
        return;
    }
    op->body = r->body;
    r->body = NULL;
    admin_tp_op_run(op, admin_tp_do_reset_by_id, true);
}

/* ---- lookup ----------------------------------------------------------------------------- */

/* The topic of a lookup path, checked: false when answered (or routed again after a read of
 * the store). */
static bool admin_tp_lookup_topic(struct admin_req *r, struct topic_name *tn, char *range)
{
    const struct admin_env *s = r->a->env;
    /* LK/persistent/... or LK/{domain}/...: the two domains Pulsar has */
    const char *dom = r->p.domain ? r->p.domain : "persistent";
    if (strcmp(dom, "persistent") != 0 && strcmp(dom, "non-persistent") != 0) {
        admin_reply_not_found(r->call);
        return false;
    }
    char *name = mg_asprintf("%s://%s/%s/%s", dom, r->p.tenant, r->p.ns, r->p.topic);
    int rc = topic_name_parse(name, tn);
    mg_free(name);
    if (rc < 0) {
        admin_reply_error(r->call, 412, "Topic name is not valid");
        return false;
    }
    const char *reason = NULL;
    rc = ns_check_topic(s->ns, tn, &reason);
    if (rc == -MG_ENOTFOUND) { /* created on another broker since the last refresh? */
        char *ns = mg_asprintf("%s/%s", tn->tenant, tn->ns);
        bool reading = admin_refresh_namespace(r, ns);
        mg_free(ns);
        if (reading) {
            topic_name_fini(tn);
            return false;
        }
    }
    if (rc < 0) {
        topic_name_fini(tn);
        admin_reply_error(r->call, 404, reason);
        return false;
    }
    if (ns_topic_bundle(s->ns, tn, range) < 0) {
        topic_name_fini(tn);
        admin_reply_error(r->call, 404, "Namespace does not exist");
        return false;
    }
    return true;
}

/* GET /lookup/v2/topic/persistent/{tenant}/{namespace}/{topic}: the owner's URLs, from the
 * owner (307 to it from any other broker). */
void admin_h_lookup(struct admin_req *r)
{
    struct topic_name tn;
    char range[NS_BUNDLE_NAME_LEN];
    if (!admin_tp_lookup_topic(r, &tn, range))
        return;
    admin_tp_locate_start(r, &tn, true);
    topic_name_fini(&tn);
}

/* GET .../bundle: the topic's bundle range, plain text. */
void admin_h_lookup_bundle(struct admin_req *r)
{
    struct topic_name tn;
    char range[NS_BUNDLE_NAME_LEN];
    if (!admin_tp_lookup_topic(r, &tn, range))
        return;
    topic_name_fini(&tn);
    admin_reply_raw(r->call, 200, "text/plain", range);
}
