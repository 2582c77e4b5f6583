/*
 * admin_topics.c - persistent topics (docs/admin.md §5-§7) and HTTP lookup (§8).
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
 */
#include "admin/admin_int.h"
#include "config/cfg.h"
#include "ml/ml.h"
#include "ns/ns.h"
#include "topic/topic.h"
#include "util/alloc.h"
#include "util/crc.h"
#include "util/err.h"
#include "util/log.h"

#include <ctype.h>
#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <limits.h>
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
    bool must_exist;       /* a plain topic must be stored already (op_run) */
    char *body_text;       /* owned: the request's body, or NULL (sub-requests) */
    struct event *wait_ev; /* owned: delete, polling the store until the data is gone */
    int wait_tries;
    int reloads; /* resolutions started again after a topic closed meanwhile */
    char **subs; /* partition update: subscriptions to copy */
    int n_subs;
    int load_next;         /* op_load_all: the next name to look at */
    struct event *load_ev; /* owned: op_load_all's next slice when no load is in flight */
};

static void op_free(struct topic_op *op)
{
    topic_name_fini(&op->tn);
    mg_free(op->sub);
    mg_free(op->arg);
    json_decref(op->body);
    for (int i = 0; i < op->n; i++)
        mg_free(op->names[i]);
    mg_free(op->names);
    for (int i = 0; i < op->n_subs; i++)
        mg_free(op->subs[i]);
    mg_free(op->subs);
    mg_free(op->body_text);
    if (op->wait_ev)
        event_free(op->wait_ev);
    if (op->load_ev)
        event_free(op->load_ev);
    mg_free(op);
}

static void op_free_arg(void *arg)
{
    op_free(arg);
}

static void op_add_name(struct topic_op *op, char *name)
{
    op->names = mg_realloc(op->names, (size_t)(op->n + 1) * sizeof *op->names);
    op->names[op->n++] = name;
}

static void op_partition_names(struct topic_op *op, int from, int to)
{
    if (to <= from)
        return;
    op->names = mg_realloc(op->names, (size_t)(op->n + to - from) * sizeof *op->names);
    for (int i = from; i < to; i++)
        op->names[op->n++] = mg_asprintf("%s-partition-%d", op->tn.full, i);
}

static void reply_topic_not_found(struct topic_op *op)
{
    admin_reply_errorf(op->call, 404, "Topic %s not found", op->tn.full);
}

/* ---- resolving: load every named topic, then run fn ------------------------------------ */

#define OP_MAX_RELOADS 3

static void op_run(struct topic_op *op, topic_op_fn fn, bool must_exist);
static bool op_names_here(struct topic_op *op);
static void op_fan(struct topic_op *op);

static void op_finish(struct topic_op *op)
{
    if (admin_call_gone(op->call)) {
        op_free(op);
        return;
    }
    bool closed = op->status == -MG_ECLOSED;
    for (int i = 0; i < op->n && op->status == 0; i++)
        closed = closed || !topic_find(op->a->env->topics, op->names[i]);
    if (closed && op->partitions > 0 && ns_partitions_get(op->a->env->ns, op->tn.full) == 0) {
        admin_reply_errorf(op->call, 404, "Partitioned Topic %s not found", op->tn.full);
        {
            op_free(op);
            return;
        } /* deleted meanwhile: not to be created again by loading it */
    }
    if (closed && op->reloads < OP_MAX_RELOADS) {
        /* A topic was closed (unloaded, deleted) while this request waited for it: resolve
         * again, from whether it still exists. */
        op->reloads++;
        op->status = 0;
        op_run(op, op->fn, op->must_exist);
        return;
    }
    if (op->status < 0 || closed) {
        if (op->status == -MG_ENOTFOUND)
            reply_topic_not_found(op);
        else
            admin_reply_errorf(op->call, 500, "Failed to load topic: %s",
                               mg_strerror(closed ? -MG_ECLOSED : op->status));
        op_free(op);
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

static void op_load_step(struct topic_op *op);
static void op_loaded(struct topic *t, int status, void *data);

static void op_load_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    op_load_step(arg);
}

static void op_load_step(struct topic_op *op)
{
    struct topic_registry *reg = op->a->env->topics;
    for (int looked = 0;
         op->load_next < op->n && op->pending < OP_LOAD_WINDOW && looked < OP_LOAD_SLICE;
         looked++) {
        const char *name = op->names[op->load_next++];
        if (topic_find(reg, name))
            continue;
        int rc = topic_get(reg, name, true, op_loaded, op); /* cb after return */
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
            op->load_ev = evtimer_new(op->a->env->base, op_load_tick, op);
        struct timeval zero = {0, 0};
        evtimer_add(op->load_ev, &zero);
        return;
    }
    op_finish(op);
}

static void op_loaded(struct topic *t, int status, void *data)
{
    (void)t;
    struct topic_op *op = data;
    if (status < 0 && op->status == 0)
        op->status = status;
    op->pending--;
    op_load_step(op);
}

static void op_load_all(struct topic_op *op)
{
    op->pending = 0;
    op->load_next = 0;
    op_load_step(op);
}

/* Whether the path's plain topic is stored answered: load it, or 404. */
static void op_stored(void *data, int status)
{
    struct topic_op *op = data;
    if (admin_call_gone(op->call)) {
        op_free(op);
        return;
    }
    if (status < 0) {
        admin_reply_error(op->call, 500, mg_strerror(status));
        op_free(op);
        return;
    }
    if (status == 0) {
        reply_topic_not_found(op);
        op_free(op);
        return;
    }
    op_load_all(op);
}

/* Resolve op's names (the path's topic, or its partitions) and run fn. must_exist: a plain
 * topic must already exist (else 404); otherwise it is created. */
static void op_run(struct topic_op *op, topic_op_fn fn, bool must_exist)
{
    op->fn = fn;
    op->must_exist = must_exist;
    if (op->n == 0) {
        if (op->partitions > 0)
            op_partition_names(op, 0, op->partitions);
        else
            op_add_name(op, mg_strdup(op->tn.full));
    }
    if (op->partitions > 0 && !op_names_here(op)) {
        op_fan(op);
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
            admin_reply_error(op->call, 404, "Namespace does not exist");
            op_free(op);
            return;
        }
        if (op->tn.partition >= 0 && op->tn.partition < ns_partitions_get(s->ns, op->tn.base)) {
            op_load_all(op);
            return;
        }
        int rc = ns_topic_stored(s->ns, op->tn.full, op_stored, op);
        if (rc < 0) {
            admin_reply_error(op->call, 500, mg_strerror(rc));
            op_free(op);
        }
        return;
    }
    op_load_all(op);
}

/* ---- stats ------------------------------------------------------------------------------ */

static const char *sub_type_name(const struct topic_sub_stats *ss)
{
    static const char *const names[] = {"Exclusive", "Shared", "Failover", "Key_Shared"};
    return ss->has_type && (unsigned)ss->type < 4 ? names[ss->type] : "None";
}

static const char *access_mode_name(enum topic_access_mode m)
{
    static const char *const names[] = {"Shared", "Exclusive", "WaitForExclusive",
                                        "ExclusiveWithFencing"};
    return (unsigned)m < 4 ? names[m] : "Shared";
}

static json_t *iso_json(uint64_t ms)
{
    char buf[40];
    admin_iso_time(ms, buf, sizeof buf);
    return json_string(buf);
}

static json_t *consumers_json(struct topic *t, const char *sub)
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
        json_object_set_new(c, "chunkedMessageRate", json_real(0.0));
        json_object_set_new(c, "consumerName", json_string(cs.name));
        json_object_set_new(c, "availablePermits", json_integer(cs.permits > 0 ? cs.permits : 0));
        json_object_set_new(c, "unackedMessages", json_integer(cs.unacked));
        json_object_set_new(c, "avgMessagesPerEntry", json_integer(1));
        json_object_set_new(c, "blockedConsumerOnUnackedMsgs", json_boolean(cs.blocked));
        json_object_set_new(c, "connectedSince", iso_json(cs.connected_since_ms));
        json_object_set_new(c, "metadata", json_object());
        json_array_append_new(arr, c);
    }
    return arr;
}

static json_t *sub_json(struct topic *t, const struct topic_sub_stats *ss)
{
    json_t *j = json_object();
    json_object_set_new(j, "msgRateOut", json_real(ss->msg_rate_out));
    json_object_set_new(j, "msgThroughputOut", json_real(ss->throughput_out));
    json_object_set_new(j, "bytesOutCounter", json_integer(ss->bytes_out_counter));
    json_object_set_new(j, "msgOutCounter", json_integer(ss->msg_out_counter));
    json_object_set_new(j, "msgRateRedeliver", json_real(ss->msg_rate_redeliver));
    json_object_set_new(j, "messageAckRate", json_real(ss->ack_rate));
    json_object_set_new(j, "chunkedMessageRate", json_integer(0));
    json_object_set_new(j, "msgBacklog", json_integer(ss->backlog));
    json_object_set_new(j, "backlogSize", json_integer(-1));
    json_object_set_new(j, "earliestMsgPublishTimeInBacklog", json_integer(0));
    json_object_set_new(j, "msgBacklogNoDelayed", json_integer(ss->backlog));
    json_object_set_new(j, "blockedSubscriptionOnUnackedMsgs", json_false());
    json_object_set_new(j, "msgDelayed", json_integer(0));
    json_object_set_new(j, "unackedMessages", json_integer(ss->unacked));
    json_object_set_new(j, "type", json_string(sub_type_name(ss)));
    if (ss->active_consumer)
        json_object_set_new(j, "activeConsumerName", json_string(ss->active_consumer));
    json_object_set_new(j, "msgRateExpired", json_real(0.0));
    json_object_set_new(j, "totalMsgExpired", json_integer(0));
    json_object_set_new(j, "lastExpireTimestamp", json_integer(0));
    json_object_set_new(j, "lastConsumedFlowTimestamp", json_integer(0));
    json_object_set_new(j, "lastConsumedTimestamp", json_integer((json_int_t)ss->last_consumed_ms));
    json_object_set_new(j, "lastAckedTimestamp", json_integer((json_int_t)ss->last_acked_ms));
    json_object_set_new(j, "lastMarkDeleteAdvancedTimestamp", json_integer(0));
    json_object_set_new(j, "consumers", consumers_json(t, ss->name));
    json_object_set_new(j, "isDurable", json_boolean(ss->durable));
    json_object_set_new(j, "isReplicated", json_false());
    json_object_set_new(j, "allowOutOfOrderDelivery", json_false());
    json_object_set_new(j, "consumersAfterMarkDeletePosition", json_object());
    struct ml_cursor *c = topic_sub_cursor(t, ss->name);
    json_object_set_new(j, "nonContiguousDeletedMessagesRanges",
                        json_integer(c ? ml_cursor_num_ranges(c) : 0));
    json_object_set_new(j, "nonContiguousDeletedMessagesRangesSerializedSize", json_integer(0));
    json_object_set_new(j, "delayedMessageIndexSizeInBytes", json_integer(0));
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
static json_t *topic_stats_json(struct admin *a, struct topic *t)
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
    json_object_set_new(j, "msgChunkPublished", json_false());
    json_object_set_new(j, "storageSize", json_integer(st.storage_size));
    json_object_set_new(j, "backlogSize", json_integer(st.backlog_size));
    json_object_set_new(j, "backlogQuotaLimitSize", json_integer(-1));
    json_object_set_new(j, "backlogQuotaLimitTime", json_integer(-1));
    json_object_set_new(j, "oldestBacklogMessageAgeSeconds", json_integer(-1));
    json_object_set_new(j, "publishRateLimitedTimes", json_integer(0));
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
        json_object_set_new(p, "accessMode", json_string(access_mode_name(ps.mode)));
        json_object_set_new(p, "msgRateIn", json_real(ps.msg_rate_in));
        json_object_set_new(p, "msgThroughputIn", json_real(ps.throughput_in));
        json_object_set_new(
            p, "averageMsgSize",
            json_real(ps.msg_rate_in > 0 ? ps.throughput_in / ps.msg_rate_in : 0.0));
        json_object_set_new(p, "chunkedMessageRate", json_real(0.0));
        json_object_set_new(p, "producerId", json_integer((json_int_t)ps.id));
        json_object_set_new(p, "supportsPartialProducer", json_false());
        json_object_set_new(p, "producerName", json_string(ps.name));
        json_object_set_new(p, "connectedSince", iso_json(ps.connected_since_ms));
        json_object_set_new(p, "metadata", json_object());
        json_array_append_new(pubs, p);
    }
    json_object_set_new(j, "publishers", pubs);
    json_object_set_new(j, "waitingPublishers", json_integer(0));
    json_t *subs = json_object();
    struct topic_sub_stats ss;
    pos = 0;
    while (topic_sub_stats_next(t, &pos, &ss))
        json_object_set_new(subs, ss.name, sub_json(t, &ss));
    json_object_set_new(j, "subscriptions", subs);
    json_object_set_new(j, "replication", json_object());
    json_object_set_new(j, "deduplicationStatus", json_string("Disabled"));
    json_object_set_new(j, "nonContiguousDeletedMessagesRanges", json_integer(0));
    json_object_set_new(j, "nonContiguousDeletedMessagesRangesSerializedSize", json_integer(0));
    json_object_set_new(j, "delayedMessageIndexSizeInBytes", json_integer(0));
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
static void json_merge_sum(json_t *dst, json_t *src)
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
            json_merge_sum(dv, sv);
        }
    }
}

static void do_stats(struct topic_op *op, struct topic **topics)
{
    admin_reply_json(op->call, 200, topic_stats_json(op->a, topics[0]));
    op_free(op);
}

static void do_partitioned_stats(struct topic_op *op, struct topic **topics)
{
    json_t *sum = NULL;
    json_t *parts = json_object();
    for (int i = 0; i < op->n; i++) {
        json_t *one = topic_stats_json(op->a, topics[i]);
        if (!sum)
            sum = json_deep_copy(one);
        else
            json_merge_sum(sum, one);
        json_object_set_new(parts, op->names[i], one);
    }
    json_object_set_new(sum, "metadata", json_pack("{s:i}", "partitions", op->partitions));
    if (op->force) /* perPartition (default true) is carried in force for this action */
        json_object_set_new(sum, "partitions", parts);
    else
        json_decref(parts);
    admin_reply_json(op->call, 200, sum);
    op_free(op);
}

static json_t *pos_json(struct ml_position p)
{
    char buf[48];
    snprintf(buf, sizeof buf, "%" PRId64 ":%" PRId64, p.ledger, p.entry);
    return json_string(buf);
}

/* Internal stats (docs/admin.md §7). */
static json_t *internal_stats_json(struct topic *t)
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
    json_object_set_new(j, "lastLedgerCreatedTimestamp", iso_json(st.created_ms));
    json_object_set_new(j, "waitingCursorsCount", json_integer(0));
    json_object_set_new(j, "pendingAddEntriesCount", json_integer(ms.pending_appends));
    json_object_set_new(j, "lastConfirmedEntry", pos_json(ml_last_confirmed(ml)));
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
        json_object_set_new(cj, "markDeletePosition", pos_json(ss.mark_delete));
        json_object_set_new(cj, "readPosition", pos_json(ss.read_position));
        json_object_set_new(cj, "waitingReadOp", json_false());
        json_object_set_new(cj, "pendingReadOps", json_integer(0));
        json_object_set_new(cj, "messagesConsumedCounter", json_integer(ss.msg_out_counter));
        json_object_set_new(cj, "cursorLedger", json_integer(-1));
        json_object_set_new(cj, "cursorLedgerLastEntry", json_integer(-1));
        json_object_set_new(cj, "individuallyDeletedMessages", json_string(ranges ? ranges : "[]"));
        json_object_set_new(cj, "lastLedgerSwitchTimestamp", iso_json(st.created_ms));
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

static void do_internal_stats(struct topic_op *op, struct topic **topics)
{
    admin_reply_json(op->call, 200, internal_stats_json(topics[0]));
    op_free(op);
}

static void do_partitioned_internal_stats(struct topic_op *op, struct topic **topics)
{
    json_t *parts = json_object();
    for (int i = 0; i < op->n; i++)
        json_object_set_new(parts, op->names[i], internal_stats_json(topics[i]));
    admin_reply_json(
        op->call, 200,
        json_pack("{s:{s:i},s:o}", "metadata", "partitions", op->partitions, "partitions", parts));
    op_free(op);
}

/* ---- subscriptions ---------------------------------------------------------------------- */

static void do_list_subs(struct topic_op *op, struct topic **topics)
{
    json_t *arr = json_array();
    for (int i = 0; i < op->n; i++) {
        size_t pos = 0;
        struct topic_sub_stats ss;
        while (topic_sub_stats_next(topics[i], &pos, &ss)) {
            bool dup = false;
            for (size_t k = 0; k < json_array_size(arr) && !dup; k++)
                dup = strcmp(json_string_value(json_array_get(arr, k)), ss.name) == 0;
            if (!dup)
                json_array_append_new(arr, json_string(ss.name));
        }
    }
    admin_reply_json(op->call, 200, arr);
    op_free(op);
}

/* ResetCursorData / "latest" / "earliest" -> a position of t's ML where delivery restarts.
 * Returns 0, 1 for "latest" (no explicit position), or -1 for a bad body. */
static int reset_position(struct topic *t, json_t *body, struct ml_position *out)
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

static void do_create_sub(struct topic_op *op, struct topic **topics)
{
    /* Check first: creating on some partitions and failing on others helps nobody. */
    for (int i = 0; i < op->n; i++) {
        struct ml_position p;
        if (reset_position(topics[i], op->body, &p) < 0) {
            admin_reply_error(op->call, 400, "Invalid reset cursor data");
            op_free(op);
            return;
        }
        if (topic_sub_cursor(topics[i], op->sub)) {
            admin_reply_error(op->call, 409, "Subscription already exists for topic");
            op_free(op);
            return;
        }
    }
    for (int i = 0; i < op->n; i++) {
        struct ml_position p;
        int kind = reset_position(topics[i], op->body, &p);
        int rc = topic_admin_create_sub(topics[i], op->sub, kind == 0);
        if (rc == -MG_EEXIST) {
            admin_reply_error(op->call, 409, "Subscription already exists for topic");
            op_free(op);
            return;
        }
        if (rc < 0) {
            admin_reply_error(op->call, 500, mg_strerror(rc));
            op_free(op);
            return;
        }
        if (kind == 0 && ml_pos_cmp(p, ml_first_position(topic_ml(topics[i]))) > 0)
            topic_admin_reset_cursor(topics[i], op->sub, p);
    }
    admin_reply_no_content(op->call);
    op_free(op);
}

static void do_delete_sub(struct topic_op *op, struct topic **topics)
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
                admin_reply_error(op->call, 412, "Subscription has active connected consumers");
                op_free(op);
                return;
            }
    }
    if (found == 0) {
        admin_reply_errorf(op->call, 404, "Subscription %s not found for topic %s", op->sub,
                           op->tn.full);
        op_free(op);
        return;
    }
    for (int i = 0; i < op->n; i++) {
        int rc = topic_admin_delete_sub(topics[i], op->sub, op->force);
        if (rc < 0 && rc != -MG_ENOSUB) {
            admin_reply_error(op->call, rc == -MG_ECONSUMERBUSY ? 412 : 500,
                              rc == -MG_ECONSUMERBUSY
                                  ? "Subscription has active connected consumers"
                                  : mg_strerror(rc));
            op_free(op);
            return;
        }
    }
    admin_reply_no_content(op->call);
    op_free(op);
}

static bool sub_missing(struct topic_op *op, struct topic **topics)
{
    for (int i = 0; i < op->n; i++) {
        if (!topic_sub_cursor(topics[i], op->sub)) {
            admin_reply_errorf(op->call, 404, "Subscription %s not found for topic %s", op->sub,
                               op->names[i]);
            op_free(op);
            return true;
        }
    }
    return false;
}

static void do_skip(struct topic_op *op, struct topic **topics)
{
    if (sub_missing(op, topics))
        return;
    char *end = NULL;
    errno = 0;
    long long n = strtoll(op->arg, &end, 10);
    if (errno || end == op->arg || *end || n < 0) {
        admin_reply_error(op->call, 400, "Invalid number of messages to skip");
        op_free(op);
        return;
    }
    topic_admin_skip(topics[0], op->sub, (int64_t)n);
    admin_reply_no_content(op->call);
    op_free(op);
}

static void do_skip_all(struct topic_op *op, struct topic **topics)
{
    if (sub_missing(op, topics))
        return;
    for (int i = 0; i < op->n; i++)
        topic_admin_clear_backlog(topics[i], op->sub);
    admin_reply_no_content(op->call);
    op_free(op);
}

static void do_reset_by_id(struct topic_op *op, struct topic **topics)
{
    if (sub_missing(op, topics))
        return;
    struct ml_position p;
    if (reset_position(topics[0], op->body, &p) < 0) {
        admin_reply_error(op->call, 400,
                          "Invalid reset cursor data: ledgerId and entryId "
                          "are required");
        op_free(op);
        return;
    }
    topic_admin_reset_cursor(topics[0], op->sub, p);
    admin_reply_no_content(op->call);
    op_free(op);
}

static void reset_time_next(struct topic_op *op);

static void reset_time_found(struct ml_position pos, int status, void *data)
{
    struct topic_op *op = data;
    if (admin_call_gone(op->call)) {
        op_free(op);
        return;
    }
    struct topic *t = topic_find(op->a->env->topics, op->names[op->step]);
    if (status < 0 || !t) {
        admin_reply_errorf(op->call, 412, "Unable to find position for timestamp %" PRIu64, op->ts);
        op_free(op);
        return;
    }
    if (topic_admin_reset_cursor(t, op->sub, pos) < 0) {
        admin_reply_errorf(op->call, 404, "Subscription %s not found for topic %s", op->sub,
                           op->names[op->step]);
        op_free(op);
        return;
    }
    op->step++;
    reset_time_next(op);
}

static void reset_time_next(struct topic_op *op)
{
    if (op->step == op->n) {
        admin_reply_no_content(op->call);
        op_free(op);
        return;
    }
    struct topic *t = topic_find(op->a->env->topics, op->names[op->step]);
    int rc = t ? ml_find_by_time(topic_ml(t), op->ts, reset_time_found, op) : -MG_ECLOSED;
    if (rc < 0) {
        admin_reply_errorf(op->call, 412, "Unable to find position for timestamp %" PRIu64, op->ts);
        op_free(op);
    }
}

static void do_reset_by_time(struct topic_op *op, struct topic **topics)
{
    if (sub_missing(op, topics))
        return;
    char *end = NULL;
    errno = 0;
    unsigned long long ts = strtoull(op->arg, &end, 10);
    if (errno || end == op->arg || *end) {
        admin_reply_error(op->call, 400, "Invalid timestamp");
        op_free(op);
        return;
    }
    op->ts = ts;
    op->step = 0;
    reset_time_next(op);
}

/* ---- topics ----------------------------------------------------------------------------- */

static void do_unload(struct topic_op *op, struct topic **topics)
{
    for (int i = 0; i < op->n; i++)
        topic_unload(topics[i]);
    admin_reply_no_content(op->call);
    op_free(op);
}

static void do_last_message_id(struct topic_op *op, struct topic **topics)
{
    struct ml_position p = ml_last_confirmed(topic_ml(topics[0]));
    admin_reply_json(op->call, 200,
                     json_pack("{s:I,s:I,s:i}", "ledgerId", (json_int_t)p.ledger, "entryId",
                               (json_int_t)p.entry, "partitionIndex", op->tn.partition));
    op_free(op);
}

#define DELETE_WAIT_MS 20
#define DELETE_WAIT_TRIES 250 /* 5 s */

static void delete_wait_next(struct topic_op *op);
static void delete_wait_tick(evutil_socket_t fd, short what, void *arg);

static void do_delete(struct topic_op *op, struct topic **topics)
{
    for (int i = 0; i < op->n; i++) {
        struct topic_stats st;
        topic_get_stats(topics[i], &st);
        if (!op->force && (st.n_producers > 0 || st.n_consumers > 0)) {
            admin_reply_error(op->call, 412, "Topic has active producers/subscriptions");
            op_free(op);
            return;
        }
    }
    for (int i = 0; i < op->n; i++) {
        int rc = topic_delete(topics[i], op->force);
        if (rc < 0) {
            admin_reply_error(op->call, rc == -MG_EBUSY ? 412 : 500,
                              rc == -MG_EBUSY ? "Topic has active producers/subscriptions"
                                              : mg_strerror(rc));
            op_free(op);
            return;
        }
    }
    op->step = 0;
    op->wait_ev = evtimer_new(op->a->env->base, delete_wait_tick, op);
    delete_wait_next(op);
}

/* The deleted topics' data leave the store after topic_delete returned: the answer waits
 * until the store no longer has them (bounded), so that whatever follows, on any broker
 * (a namespace deletion, a listing), finds them gone. */
static void delete_finish(struct topic_op *op)
{
    if (op->partitions > 0) {
        int rc = ns_partitions_delete(op->a->env->ns, op->tn.full, admin_reply_done, op->call);
        if (rc < 0)
            admin_reply_error(op->call, 404, "Partitioned topic does not exist");
    } else {
        admin_reply_no_content(op->call);
    }
    op_free(op);
}

static void delete_wait_stored(void *data, int status)
{
    struct topic_op *op = data;
    if (admin_call_gone(op->call)) {
        op_free(op);
        return;
    }
    if (status == 1 && op->wait_tries < DELETE_WAIT_TRIES) {
        op->wait_tries++;
        struct timeval tv = {0, DELETE_WAIT_MS * 1000};
        event_add(op->wait_ev, &tv);
        return;
    }
    if (status != 0)
        MG_WARN("admin", "%s: deleted, but the store %s", op->names[op->step],
                status == 1 ? "still has its data" : mg_strerror(status));
    op->step++;
    delete_wait_next(op);
}

static void delete_wait_next(struct topic_op *op)
{
    if (op->step == op->n) {
        delete_finish(op);
        return;
    }
    if (ns_topic_stored(op->a->env->ns, op->names[op->step], delete_wait_stored, op) < 0) {
        op->step++;
        delete_wait_next(op);
    }
}

static void delete_wait_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct topic_op *op = arg;
    if (admin_call_gone(op->call)) {
        op_free(op);
        return;
    }
    delete_wait_next(op);
}

static void do_created(struct topic_op *op, struct topic **topics)
{
    (void)topics;
    admin_reply_no_content(op->call);
    op_free(op);
}

/* PUT P/{topic}: 409 when a topic of that name is stored, else create (load) it. */
static void create_listed(void *data, int status, char **names, int n)
{
    struct topic_op *op = data;
    if (admin_call_gone(op->call)) {
        op_free(op);
        return;
    }
    if (status < 0) {
        admin_reply_error(op->call, 500, mg_strerror(status));
        op_free(op);
        return;
    }
    for (int i = 0; i < n; i++) {
        if (strcmp(names[i], op->tn.full) == 0) {
            admin_reply_error(op->call, 409, "This topic already exists");
            op_free(op);
            return;
        }
    }
    op_run(op, do_created, false);
}

/* ---- partitions ------------------------------------------------------------------------- */

static void partitions_meta_listed(void *data, int status, char **names, int n)
{
    struct topic_op *op = data;
    if (admin_call_gone(op->call)) {
        op_free(op);
        return;
    }
    bool found = false;
    for (int i = 0; status == 0 && i < n && !found; i++)
        found = strcmp(names[i], op->tn.full) == 0;
    const struct admin_env *s = op->a->env;
    if (found || (op->force && s->cfg->allow_auto_topic_creation))
        admin_reply_json(op->call, 200, json_pack("{s:i}", "partitions", 0));
    else
        reply_topic_not_found(op);
    op_free(op);
}

/* PUT partitions: 409 when a plain topic of that name is stored; else write the metadata. */
static void partitions_create_listed(void *data, int status, char **names, int n)
{
    struct topic_op *op = data;
    if (admin_call_gone(op->call)) {
        op_free(op);
        return;
    }
    for (int i = 0; status == 0 && i < n; i++) {
        if (strcmp(names[i], op->tn.full) == 0) {
            admin_reply_error(op->call, 409, "This topic already exists");
            op_free(op);
            return;
        }
    }
    int rc = ns_partitions_set(op->a->env->ns, op->tn.full, op->partitions, true, admin_reply_done,
                               op->call);
    if (rc == -MG_EEXIST)
        admin_reply_error(op->call, 409, "This topic already exists");
    else if (rc < 0)
        admin_reply_error(op->call, 500, mg_strerror(rc));
    op_free(op);
}

/* Partition update: copy the existing partitions' subscriptions to the new ones. */
static void do_copy_subs(struct topic_op *op, struct topic **topics)
{
    for (int i = 0; i < op->n; i++)
        for (int k = 0; k < op->n_subs; k++)
            if (!topic_sub_cursor(topics[i], op->subs[k]))
                topic_admin_create_sub(topics[i], op->subs[k], true);
    admin_reply_no_content(op->call);
    op_free(op);
}

static void partitions_updated(void *data, int status)
{
    struct topic_op *op = data;
    if (admin_call_gone(op->call)) {
        op_free(op);
        return;
    }
    if (status < 0) {
        admin_reply_error(op->call, 500, mg_strerror(status));
        op_free(op);
        return;
    }
    if (op->n_subs == 0) {
        admin_reply_no_content(op->call);
        op_free(op);
        return;
    }
    op_partition_names(op, op->new_from, op->partitions);
    op_run(op, do_copy_subs, false);
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
static bool op_names_here(struct topic_op *op)
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

static char *uri_enc(const char *s)
{
    char *e = evhttp_uriencode(s, -1, 0);
    char *r = mg_strdup(e ? e : "");
    free(e);
    return r;
}

/* The admin path of topic full_name (in op's namespace) followed by suffix (already
 * encoded) and query. */
static char *topic_path(struct topic_op *op, const char *full, const char *suffix,
                        const char *query)
{
    const char *local =
        full + strlen("persistent://") + strlen(op->tn.tenant) + 1 + strlen(op->tn.ns) + 1;
    char *t = uri_enc(op->tn.tenant), *n = uri_enc(op->tn.ns), *l = uri_enc(local);
    char *p = mg_asprintf("/admin/v2/persistent/%s/%s/%s%s%s%s", t, n, l, suffix,
                          query && *query ? "?" : "", query && *query ? query : "");
    mg_free(t);
    mg_free(n);
    mg_free(l);
    return p;
}

/* Every partition answered 2xx (or ignore_status): 204; else the first one's error. */
static bool fan_all_ok(struct admin_call *c, struct admin_sub *subs, int n, int ignore_status)
{
    int bad = admin_fan_first_error(subs, n, ignore_status);
    if (bad >= 0) {
        admin_fan_reply_error(c, &subs[bad]);
        return false;
    }
    return true;
}

static void fan_done_ok(struct admin_call *c, void *arg, struct admin_sub *subs, int n)
{
    if (fan_all_ok(c, subs, n, 0))
        admin_reply_no_content(c);
    op_free(arg);
}

/* Deleting a subscription: 404 only when no partition has it. */
static void fan_done_delete_sub(struct admin_call *c, void *arg, struct admin_sub *subs, int n)
{
    struct topic_op *op = arg;
    int found = 0;
    for (int i = 0; i < n; i++)
        found += subs[i].status != 404;
    if (found == 0)
        admin_reply_errorf(c, 404, "Subscription %s not found for topic %s", op->sub, op->tn.full);
    else if (fan_all_ok(c, subs, n, 404))
        admin_reply_no_content(c);
    op_free(op);
}

static void fan_done_stats(struct admin_call *c, void *arg, struct admin_sub *subs, int n)
{
    struct topic_op *op = arg;
    if (!fan_all_ok(c, subs, n, 0)) {
        op_free(op);
        return;
    }
    json_t *sum = NULL;
    json_t *parts = json_object();
    for (int i = 0; i < n; i++) {
        json_t *one = json_is_object(subs[i].json) ? subs[i].json : json_object();
        if (!sum)
            sum = json_deep_copy(one);
        else
            json_merge_sum(sum, one);
        json_object_set(parts, op->names[i], one);
        if (one != subs[i].json)
            json_decref(one);
    }
    json_object_set_new(sum, "metadata", json_pack("{s:i}", "partitions", op->partitions));
    if (op->force) /* perPartition (default true) is carried in force for this action */
        json_object_set_new(sum, "partitions", parts);
    else
        json_decref(parts);
    admin_reply_json(c, 200, sum);
    op_free(op);
}

static void fan_done_internal_stats(struct admin_call *c, void *arg, struct admin_sub *subs, int n)
{
    struct topic_op *op = arg;
    if (!fan_all_ok(c, subs, n, 0)) {
        op_free(op);
        return;
    }
    json_t *parts = json_object();
    for (int i = 0; i < n; i++)
        json_object_set(parts, op->names[i], subs[i].json ? subs[i].json : json_object());
    admin_reply_json(
        c, 200,
        json_pack("{s:{s:i},s:o}", "metadata", "partitions", op->partitions, "partitions", parts));
    op_free(op);
}

static void fan_done_list_subs(struct admin_call *c, void *arg, struct admin_sub *subs, int n)
{
    if (!fan_all_ok(c, subs, n, 0)) {
        op_free(arg);
        return;
    }
    json_t *arr = json_array();
    for (int i = 0; i < n; i++) {
        for (size_t k = 0; k < json_array_size(subs[i].json); k++) {
            const char *name = json_string_value(json_array_get(subs[i].json, k));
            bool dup = !name;
            for (size_t j = 0; j < json_array_size(arr) && !dup; j++)
                dup = strcmp(json_string_value(json_array_get(arr, j)), name) == 0;
            if (!dup)
                json_array_append_new(arr, json_string(name));
        }
    }
    admin_reply_json(c, 200, arr);
    op_free(arg);
}

/* Deleting a partitioned topic: its partitions (a partition never created answers 404),
 * then, only if all went, its metadata. */
static void fan_done_delete(struct admin_call *c, void *arg, struct admin_sub *subs, int n)
{
    struct topic_op *op = arg;
    if (fan_all_ok(c, subs, n, 404)) {
        int rc = ns_partitions_delete(op->a->env->ns, op->tn.full, admin_reply_done, c);
        if (rc < 0)
            admin_reply_error(c, 404, "Partitioned topic does not exist");
    }
    op_free(op);
}

/* The subscriptions copied onto new partitions may already exist there. */
static void fan_done_copy_subs(struct admin_call *c, void *arg, struct admin_sub *subs, int n)
{
    if (fan_all_ok(c, subs, n, 409))
        admin_reply_no_content(c);
    op_free(arg);
}

static void op_fan(struct topic_op *op)
{
    enum evhttp_cmd_type m = EVHTTP_REQ_GET;
    const char *query = NULL, *body = NULL;
    char *suffix = NULL;
    admin_fan_done done = fan_done_ok;
    char *sub = op->sub ? uri_enc(op->sub) : NULL;
    if (op->fn == do_partitioned_stats) {
        suffix = mg_strdup("/stats");
        done = fan_done_stats;
    } else if (op->fn == do_partitioned_internal_stats) {
        suffix = mg_strdup("/internalStats");
        done = fan_done_internal_stats;
    } else if (op->fn == do_list_subs) {
        suffix = mg_strdup("/subscriptions");
        done = fan_done_list_subs;
    } else if (op->fn == do_unload) {
        m = EVHTTP_REQ_PUT;
        suffix = mg_strdup("/unload");
    } else if (op->fn == do_create_sub) {
        m = EVHTTP_REQ_PUT;
        suffix = mg_asprintf("/subscription/%s", sub);
        body = op->body_text;
    } else if (op->fn == do_delete_sub) {
        m = EVHTTP_REQ_DELETE;
        suffix = mg_asprintf("/subscription/%s", sub);
        query = op->force ? "force=true" : NULL;
        done = fan_done_delete_sub;
    } else if (op->fn == do_skip_all) {
        m = EVHTTP_REQ_POST;
        suffix = mg_asprintf("/subscription/%s/skip_all", sub);
    } else if (op->fn == do_reset_by_time) {
        m = EVHTTP_REQ_POST;
        char *ts = uri_enc(op->arg);
        suffix = mg_asprintf("/subscription/%s/resetcursor/%s", sub, ts);
        mg_free(ts);
    } else if (op->fn == do_delete) {
        m = EVHTTP_REQ_DELETE;
        suffix = mg_strdup("");
        query = op->force ? "force=true" : NULL;
        done = fan_done_delete;
    } else if (op->fn == do_copy_subs) {
        /* every new partition gets every subscription, from its start */
        char **paths = mg_calloc((size_t)(op->n * op->n_subs) + 1, sizeof *paths);
        int k = 0;
        for (int i = 0; i < op->n; i++) {
            for (int j = 0; j < op->n_subs; j++) {
                char *sj = uri_enc(op->subs[j]);
                char *sfx = mg_asprintf("/subscription/%s", sj);
                paths[k++] = topic_path(op, op->names[i], sfx, NULL);
                mg_free(sfx);
                mg_free(sj);
            }
        }
        mg_free(sub);
        admin_fan(op->call, EVHTTP_REQ_PUT, paths, k, "\"earliest\"", fan_done_copy_subs,
                  op_free_arg, op);
        mg_free(paths);
        return;
    } else {
        mg_free(sub);
        admin_reply_error(op->call, 500, "Operation not available across brokers");
        op_free(op);
        return;
    }
    char **paths = mg_calloc((size_t)op->n + 1, sizeof *paths);
    for (int i = 0; i < op->n; i++)
        paths[i] = topic_path(op, op->names[i], suffix, query);
    mg_free(suffix);
    mg_free(sub);
    admin_fan(op->call, m, paths, op->n, body, done, op_free_arg, op);
    mg_free(paths);
}

/* POST partitions, across brokers: the durable subscriptions of the existing partitions,
 * read from their owners, to copy onto the new ones. */
static void grow_partitions_set(struct topic_op *op);

static void fan_done_grow_stats(struct admin_call *c, void *arg, struct admin_sub *subs, int n)
{
    struct topic_op *op = arg;
    if (!fan_all_ok(c, subs, n, 0)) {
        op_free(op);
        return;
    }
    for (int i = 0; i < n; i++) {
        const char *name;
        json_t *v;
        json_object_foreach(json_object_get(subs[i].json, "subscriptions"), name, v)
        {
            bool dup = !json_is_true(json_object_get(v, "isDurable"));
            for (int k = 0; k < op->n_subs && !dup; k++)
                dup = strcmp(op->subs[k], name) == 0;
            if (dup)
                continue;
            op->subs = mg_realloc(op->subs, (size_t)(op->n_subs + 1) * sizeof *op->subs);
            op->subs[op->n_subs++] = mg_strdup(name);
        }
    }
    grow_partitions_set(op);
}

static void partitions_deleted(void *data, int status)
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

static void h_partitions(struct admin_req *r, struct topic_op *op)
{
    const struct admin_env *s = r->a->env;
    int cur = ns_partitions_get(s->ns, op->tn.full);
    char *ns = mg_asprintf("%s/%s", op->tn.tenant, op->tn.ns);
    if (r->method == EVHTTP_REQ_GET) {
        if (cur > 0) {
            admin_reply_json(r->call, 200, json_pack("{s:i}", "partitions", cur));
            op_free(op);
        } else if (topic_find(s->topics, op->tn.full)) {
            admin_reply_json(r->call, 200, json_pack("{s:i}", "partitions", 0));
            op_free(op);
        } else {
            op->force = admin_query_flag(r, "checkAllowAutoCreation");
            if (ns_list_topics(s->ns, ns, false, partitions_meta_listed, op) < 0) {
                admin_reply_error(r->call, 404, "Namespace does not exist");
                op_free(op);
            }
        }
        mg_free(ns);
        return;
    }
    if (r->method == EVHTTP_REQ_DELETE) {
        mg_free(ns);
        if (cur == 0) {
            if (topic_find(s->topics, op->tn.full)) {
                admin_reply_errorf(r->call, 409, "%s is not a partitioned topic", op->tn.full);
                op_free(op);
                return;
            }
            admin_reply_errorf(r->call, 404, "Partitioned topic %s does not exist", op->tn.full);
            op_free(op);
            return;
        }
        op->partitions = cur;
        op->force = admin_query_flag(r, "force");
        op_partition_names(op, 0, cur);
        if (!op_names_here(op)) /* some partitions are served by other brokers: ask each */
        {
            op_run(op, do_delete, false);
            return;
        }
        /* Every partition is served here: sliced in ns (ns_partitioned_delete), so that
         * thousands of partitions neither hold the loop in one turn nor get loaded only to
         * be deleted. */
        int rc = ns_partitioned_delete(s->ns, op->tn.full, op->force, partitions_deleted, r->call);
        op_free(op);
        if (rc < 0)
            admin_reply_errorf(r->call, 404, "Partitioned topic does not exist");
        return;
    }
    if (r->method != EVHTTP_REQ_PUT && r->method != EVHTTP_REQ_POST) {
        mg_free(ns);
        op_free(op);
        admin_reply_bad_method(r->call);
        return;
    }
    mg_free(ns);
    bool bad = false;
    json_t *j = admin_body_json(r->req, &bad);
    bool is_int = json_is_integer(j);
    json_int_t n = is_int ? json_integer_value(j) : 0;
    json_decref(j);
    if (bad || !is_int) {
        op_free(op);
        admin_reply_error(r->call, 400,
                          "The request body must be the number of "
                          "partitions");
        return;
    }
    if (n <= 0) {
        op_free(op);
        admin_reply_error(r->call, 406, "Number of partitions should be more than 0");
        return;
    }
    int maxp = s->cfg->max_num_partitions_per_partitioned_topic;
    if ((maxp > 0 && n > maxp) || n > INT_MAX) {
        op_free(op);
        admin_reply_errorf(r->call, 406, "Number of partitions should be less than or equal to %d",
                           maxp > 0 ? maxp : INT_MAX);
        return;
    }
    if (r->method == EVHTTP_REQ_PUT) {
        if (strstr(op->tn.local, "-partition-")) {
            op_free(op);
            admin_reply_error(r->call, 412,
                              "Partitioned Topic Name should not contain "
                              "'-partition-'");
            return;
        }
        if (cur > 0 || topic_find(s->topics, op->tn.full)) {
            op_free(op);
            admin_reply_error(r->call, 409,
                              cur > 0 ? "Partitioned topic already exists"
                                      : "This topic already exists");
            return;
        }
        op->partitions = (int)n;
        char *nsn = mg_asprintf("%s/%s", op->tn.tenant, op->tn.ns);
        int rc = ns_list_topics(s->ns, nsn, false, partitions_create_listed, op);
        mg_free(nsn);
        if (rc < 0) {
            admin_reply_error(r->call, 404, "Namespace does not exist");
            op_free(op);
        }
        return;
    }
    /* POST: grow (4.x statuses, docs/admin.md §5). */
    if (cur == 0) {
        admin_reply_errorf(r->call, 409, "Topic %s is not the partitioned topic.", op->tn.full);
        op_free(op);
        return;
    }
    if (n < cur) {
        admin_reply_errorf(r->call, 422,
                           "Desired partitions %lld can't be less than the current "
                           "partitions %d.",
                           (long long)n, cur);
        op_free(op);
        return;
    }
    if (n == cur) {
        admin_reply_no_content(r->call);
        op_free(op);
        return;
    }
    /* The subscriptions of the existing partitions are copied onto the new ones: read from
     * the loaded partitions when this broker owns them all, else from their owners. */
    op->new_from = cur;
    op->partitions = (int)n;
    op_partition_names(op, 0, cur);
    if (!op_names_here(op)) {
        char **paths = mg_calloc((size_t)cur + 1, sizeof *paths);
        for (int i = 0; i < cur; i++)
            paths[i] = topic_path(op, op->names[i], "/stats", NULL);
        admin_fan(op->call, EVHTTP_REQ_GET, paths, cur, NULL, fan_done_grow_stats, op_free_arg, op);
        mg_free(paths);
        return;
    }
    for (int i = 0; i < cur; i++) {
        struct topic *t = topic_find(s->topics, op->names[i]);
        size_t pos = 0;
        struct topic_sub_stats ss;
        while (t && topic_sub_stats_next(t, &pos, &ss)) {
            bool dup = !ss.durable;
            for (int k = 0; k < op->n_subs && !dup; k++)
                dup = strcmp(op->subs[k], ss.name) == 0;
            if (dup)
                continue;
            op->subs = mg_realloc(op->subs, (size_t)(op->n_subs + 1) * sizeof *op->subs);
            op->subs[op->n_subs++] = mg_strdup(ss.name);
        }
    }
    grow_partitions_set(op);
}

static void grow_partitions_set(struct topic_op *op)
{
    for (int i = 0; i < op->n; i++) /* the existing partitions' names: not needed any more */
        mg_free(op->names[i]);
    op->n = 0;
    int rc = ns_partitions_set(op->a->env->ns, op->tn.full, op->partitions, false,
                               partitions_updated, op);
    if (rc < 0) {
        admin_reply_error(op->call, 500, mg_strerror(rc));
        op_free(op);
    }
}

/* ---- router for P = /admin/v2/persistent/{t}/{ns}[/...] ---------------------------------- */

static void topics_listed(void *data, int status, char **names, int n)
{
    struct admin_call *c = data;
    if (status < 0) {
        admin_reply_error(c, 500, mg_strerror(status));
        return;
    }
    json_t *arr = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(arr, json_string(names[i]));
    admin_reply_json(c, 200, arr);
}

static bool is(const char *a, const char *b)
{
    return a && strcmp(a, b) == 0;
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

static void locate_free(struct locate_op *l)
{
    if (l->retry_ev)
        event_free(l->retry_ev);
    mg_free(l->topic);
    mg_free(l->ns);
    mg_free(l->why);
    mg_free(l);
}

static void lookup_reply_self(struct admin_call *c, const struct admin_env *s)
{
    admin_reply_json(c, 200,
                     json_pack("{s:s,s:s,s:s,s:s}", "brokerUrl", ns_broker_url(s->ns), "httpUrl",
                               ns_web_url(s->ns), "nativeUrl", ns_broker_url(s->ns), "brokerUrlSsl",
                               ""));
}

/* The request's URI on another broker: its path and query, with authoritative=true instead
 * of any authoritative parameter (Pulsar's redirect does the same). */
static char *redirect_location(struct evhttp_request *req, const char *web_url)
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
    size_t len = evbuffer_get_length(b);
    char *loc = mg_malloc(len + 1);
    evbuffer_remove(b, loc, len);
    loc[len] = '\0';
    evbuffer_free(b);
    return loc;
}

static void locate_step(struct locate_op *l);

/* This broker serves the topic. */
static void locate_here(struct locate_op *l)
{
    struct admin_call *c = l->call;
    if (l->lookup) {
        lookup_reply_self(c, l->a->env);
    } else {
        c->gated = true;
        admin_route(c);
    }
    locate_free(l);
}

static void locate_redirect(struct locate_op *l, const char *web_url)
{
    char *loc = redirect_location(l->call->req, web_url);
    admin_reply_redirect(l->call, loc);
    mg_free(loc);
    locate_free(l);
}

/* The bundle is unavailable for now: ask again shortly, or give up with 503. */
static void locate_again(struct locate_op *l, const char *why)
{
    if (why) {
        mg_free(l->why);
        l->why = mg_strdup(why);
    }
    if (++l->tries >= LOCATE_TRIES) {
        admin_reply_errorf(l->call, 503, "%s", l->why ? l->why : "Topic's bundle is unavailable");
        locate_free(l);
        return;
    }
    struct timeval tv = {0, LOCATE_RETRY_MS * 1000};
    event_add(l->retry_ev, &tv);
}

static void locate_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct locate_op *l = arg;
    if (admin_call_gone(l->call)) {
        locate_free(l);
        return;
    }
    locate_step(l);
}

static void locate_owner(void *data, int status, const struct ns_owner *o)
{
    struct locate_op *l = data;
    if (admin_call_gone(l->call)) {
        locate_free(l);
        return;
    }
    if (status == -MG_ECANCELED) {
        admin_reply_error(l->call, 503, "Broker is shutting down");
        locate_free(l);
        return;
    }
    if (status == 0 && o->kind == NS_OWNER_OTHER && o->web_url && !o->disabled) {
        locate_redirect(l, o->web_url);
        return;
    }
    /* Nobody (yet), ourselves (a race with our own acquisition) or unreadable: ask again. */
    locate_again(l, status < 0 ? mg_strerror(status) : "Owner of the topic's bundle is changing");
}

static void locate_decided(void *data, int status, const char *url, const char *message)
{
    struct locate_op *l = data;
    if (admin_call_gone(l->call)) {
        locate_free(l);
        return;
    }
    const struct admin_env *s = l->a->env;
    if (status == -MG_ECANCELED) {
        admin_reply_error(l->call, 503, "Broker is shutting down");
        locate_free(l);
        return;
    }
    if (status == -MG_ENOTREADY) {
        locate_again(l, message);
        return;
    }
    if (status < 0) {
        admin_reply_error(l->call, 500, message ? message : mg_strerror(status));
        locate_free(l);
        return;
    }
    if (!url || strcmp(url, ns_broker_url(s->ns)) == 0) {
        locate_here(l);
        return;
    }
    /* Owned by, or just assigned to, another broker: its web URL from its registration, or
     * else from the ownership key. */
    const char *web = ns_broker_web_url(s->ns, url);
    if (web) {
        locate_redirect(l, web);
        return;
    }
    if (ns_bundle_owner(s->ns, l->ns, l->range, locate_owner, l) < 0)
        locate_again(l, "Owner of the topic's bundle is not known");
}

static void locate_step(struct locate_op *l)
{
    const struct admin_env *s = l->a->env;
    struct topic_name tn;
    if (topic_name_parse(l->topic, &tn) < 0) { /* it parsed when the call was routed */
        admin_reply_error(l->call, 500, "Invalid topic name");
        locate_free(l);
        return;
    }
    int rc = ns_lookup(s->ns, &tn, l->authoritative, locate_decided, l);
    topic_name_fini(&tn);
    if (rc == 1) {
        locate_here(l);
        return;
    }
    if (rc == -MG_ENOTREADY) {
        locate_again(l, "Topic's bundle is being unloaded");
        return;
    }
    if (rc == -MG_ENOTFOUND) {
        admin_reply_error(l->call, 404, "Namespace does not exist");
        locate_free(l);
        return;
    }
    if (rc < 0) {
        admin_reply_error(l->call, 503, mg_strerror(rc));
        locate_free(l);
        return;
    }
}

/* Start finding who serves tn for the call (lookup: an HTTP lookup). */
static void locate_start(struct admin_req *r, const struct topic_name *tn, bool lookup)
{
    struct locate_op *l = mg_calloc(1, sizeof *l);
    l->a = r->a;
    l->call = r->call;
    l->topic = mg_strdup(tn->full);
    l->ns = mg_asprintf("%s/%s", tn->tenant, tn->ns);
    l->authoritative = admin_query_flag(r, "authoritative");
    l->lookup = lookup;
    l->retry_ev = evtimer_new(r->a->env->base, locate_retry_cb, l);
    if (ns_topic_bundle(r->a->env->ns, tn, l->range) < 0) {
        admin_reply_error(r->call, 404, "Namespace does not exist");
        locate_free(l);
        return;
    }
    locate_step(l);
}

/* Returns true when the request may go on here now; otherwise the call is answered (or
 * routed again) later. */
static bool gate_topic(struct admin_req *r, const struct topic_name *tn)
{
    const struct admin_env *s = r->a->env;
    if (r->call->gated || ns_topic_owned(s->ns, tn))
        return true;
    locate_start(r, tn, false);
    return false;
}

void admin_h_persistent(struct admin_req *r)
{
    const struct admin_env *s = r->a->env;
    if (r->nseg < 5) {
        admin_reply_not_found(r->call);
        return;
    }
    bool list = r->nseg == 5 || (r->nseg == 6 && is(r->seg[5], "partitioned"));
    if (!admin_valid_name(r->seg[3]) || !admin_valid_name(r->seg[4])) {
        admin_reply_error(r->call, 412,
                          list ? "Namespace name is not valid" : "Topic name is not valid");
        return;
    }
    char *ns = mg_asprintf("%s/%s", r->seg[3], r->seg[4]);
    if (!ns_namespace_exists(s->ns, ns)) {
        if (!admin_refresh_namespace(r, ns))
            admin_reply_error(r->call, 404, "Namespace does not exist");
        mg_free(ns);
        return;
    }
    if (list) {
        if (r->method != EVHTTP_REQ_GET)
            admin_reply_bad_method(r->call);
        else if (ns_list_topics(s->ns, ns, r->nseg == 6, topics_listed, r->call) < 0)
            admin_reply_error(r->call, 404, "Namespace does not exist");
        mg_free(ns);
        return;
    }
    char *name = mg_asprintf("persistent://%s/%s", ns, r->seg[5]);
    struct topic_op *op = mg_calloc(1, sizeof *op);
    op->a = r->a;
    op->call = r->call;
    int rc = topic_name_parse(name, &op->tn);
    mg_free(name);
    /* The local name is one path segment: a '/' in it (%2F) would name a topic of another
     * (legacy) namespace than the path's. */
    bool same_ns =
        rc == 0 && strcmp(op->tn.tenant, r->seg[3]) == 0 && strcmp(op->tn.ns, r->seg[4]) == 0;
    mg_free(ns);
    if (rc < 0 || !same_ns || !*r->seg[5]) {
        topic_name_fini(&op->tn);
        mg_free(op);
        admin_reply_error(r->call, 412, "Topic name is not valid");
        return;
    }
    /* With other brokers writing the store, its partitioned metadata first: created or
     * deleted elsewhere since the last refresh? (One read of the store per call.) */
    if (admin_refresh_partitions(r, op->tn.base)) {
        topic_name_fini(&op->tn);
        mg_free(op);
        return;
    }
    const char *action = r->nseg >= 7 ? r->seg[6] : NULL;
    int parts = ns_partitions_get(s->ns, op->tn.full);
    op->body_text = admin_body_string(r->req);
    enum evhttp_cmd_type m = r->method;
    bool get = m == EVHTTP_REQ_GET, post = m == EVHTTP_REQ_POST;
    op->force = admin_query_flag(r, "force");

    if (is(action, "partitions") && r->nseg == 7) {
        h_partitions(r, op);
        return;
    }
    if (parts == 0 && !gate_topic(r, &op->tn)) {
        op_free(op);
        return;
    }
    if (!action) {
        if (m == EVHTTP_REQ_PUT) {
            if (parts > 0 || topic_find(s->topics, op->tn.full)) {
                admin_reply_error(r->call, 409, "This topic already exists");
                op_free(op);
                return;
            }
            char *nsn = mg_asprintf("%s/%s", op->tn.tenant, op->tn.ns);
            int lrc = ns_list_topics(s->ns, nsn, false, create_listed, op);
            mg_free(nsn);
            if (lrc < 0) {
                admin_reply_error(r->call, 404, "Namespace does not exist");
                op_free(op);
            }
            return;
        }
        if (m == EVHTTP_REQ_DELETE) {
            if (parts > 0) {
                admin_reply_errorf(r->call, 409,
                                   "%s is a partitioned topic, instead of calling delete topic, "
                                   "please call delete-partitioned-topic.",
                                   op->tn.full);
                op_free(op);
                return;
            }
            op_run(op, do_delete, true);
            return;
        }
        op_free(op);
        admin_reply_bad_method(r->call);
        return;
    }
    op->partitions = parts;
    if (r->nseg == 7 && get && is(action, "stats")) {
        if (parts > 0) {
            reply_topic_not_found(op);
            op_free(op);
            return;
        }
        op_run(op, do_stats, true);
        return;
    }
    if (r->nseg == 7 && get && is(action, "partitioned-stats")) {
        if (parts == 0) {
            admin_reply_errorf(r->call, 404, "Partitioned Topic %s not found", op->tn.full);
            op_free(op);
            return;
        }
        const char *per = admin_query(r, "perPartition");
        op->force = !per || strcmp(per, "false") != 0;
        op_run(op, do_partitioned_stats, true);
        return;
    }
    if (r->nseg == 7 && get && is(action, "internalStats")) {
        if (parts > 0) {
            reply_topic_not_found(op);
            op_free(op);
            return;
        }
        op_run(op, do_internal_stats, true);
        return;
    }
    if (r->nseg == 7 && get && is(action, "partitioned-internalStats")) {
        if (parts == 0) {
            admin_reply_errorf(r->call, 404, "Partitioned Topic %s not found", op->tn.full);
            op_free(op);
            return;
        }
        op_run(op, do_partitioned_internal_stats, true);
        return;
    }
    if (r->nseg == 7 && get && is(action, "subscriptions")) {
        op_run(op, do_list_subs, true);
        return;
    }
    if (r->nseg == 7 && m == EVHTTP_REQ_PUT && is(action, "unload")) {
        op_run(op, do_unload, true);
        return;
    }
    if (r->nseg == 7 && get && is(action, "lastMessageId")) {
        if (parts > 0) {
            admin_reply_error(r->call, 405,
                              "Get last message id on a partitioned topic is not "
                              "allowed");
            op_free(op);
            return;
        }
        op_run(op, do_last_message_id, true);
        return;
    }
    if (r->nseg >= 8 && is(action, "subscription")) {
        op->sub = mg_strdup(r->seg[7]);
        const char *sub_action = r->nseg >= 9 ? r->seg[8] : NULL;
        if (r->nseg == 8 && m == EVHTTP_REQ_PUT) {
            bool bad = false;
            op->body = admin_body_json(r->req, &bad);
            if (bad) {
                admin_reply_error(r->call, 400, "Invalid reset cursor data");
                op_free(op);
                return;
            }
            /* A missing topic is auto-created when auto-creation is allowed. */
            bool auto_create = s->cfg->allow_auto_topic_creation;
            op_run(op, do_create_sub, !auto_create);
            return;
        }
        if (r->nseg == 8 && m == EVHTTP_REQ_DELETE) {
            op_run(op, do_delete_sub, true);
            return;
        }
        if (r->nseg == 10 && post && is(sub_action, "skip")) {
            if (parts > 0) {
                admin_reply_error(r->call, 405,
                                  "Skip messages on a partitioned topic is not "
                                  "allowed");
                op_free(op);
                return;
            }
            op->arg = mg_strdup(r->seg[9]);
            op_run(op, do_skip, true);
            return;
        }
        if (r->nseg == 9 && post && is(sub_action, "skip_all")) {
            op_run(op, do_skip_all, true);
            return;
        }
        if (r->nseg == 10 && post && is(sub_action, "resetcursor")) {
            op->arg = mg_strdup(r->seg[9]);
            op_run(op, do_reset_by_time, true);
            return;
        }
        if (r->nseg == 9 && post && is(sub_action, "resetcursor")) {
            if (parts > 0) {
                admin_reply_error(r->call, 405,
                                  "Reset-cursor at position is not allowed for "
                                  "partitioned-topic");
                op_free(op);
                return;
            }
            bool bad = false;
            op->body = admin_body_json(r->req, &bad);
            if (bad || !op->body) {
                admin_reply_error(r->call, 400,
                                  "Invalid reset cursor data: ledgerId and "
                                  "entryId are required");
                op_free(op);
                return;
            }
            op_run(op, do_reset_by_id, true);
            return;
        }
    }
    op_free(op);
    admin_reply_not_found(r->call);
}

/* ---- lookup ----------------------------------------------------------------------------- */

void admin_h_lookup(struct admin_req *r)
{
    /* lookup/v2/topic/{domain}/{t}/{ns}/{topic}[/bundle] */
    const struct admin_env *s = r->a->env;
    if (r->nseg < 7 || r->nseg > 8 || (r->nseg == 8 && strcmp(r->seg[7], "bundle") != 0)) {
        admin_reply_not_found(r->call);
        return;
    }
    if (strcmp(r->seg[3], "persistent") != 0) {
        admin_reply_error(r->call, 405, "Non-persistent topics are not supported");
        return;
    }
    char *name = mg_asprintf("persistent://%s/%s/%s", r->seg[4], r->seg[5], r->seg[6]);
    struct topic_name tn;
    int rc = topic_name_parse(name, &tn);
    mg_free(name);
    if (rc < 0) {
        admin_reply_error(r->call, 412, "Topic name is not valid");
        return;
    }
    const char *reason = NULL;
    rc = ns_check_topic(s->ns, &tn, &reason);
    if (rc == -MG_ENOTFOUND) { /* created on another broker since the last refresh? */
        char *ns = mg_asprintf("%s/%s", tn.tenant, tn.ns);
        bool reading = admin_refresh_namespace(r, ns);
        mg_free(ns);
        if (reading) {
            topic_name_fini(&tn);
            return;
        }
    }
    if (rc < 0) {
        topic_name_fini(&tn);
        admin_reply_error(r->call, 404, reason);
        return;
    }
    char range[NS_BUNDLE_NAME_LEN];
    if (ns_topic_bundle(s->ns, &tn, range) < 0) {
        topic_name_fini(&tn);
        admin_reply_error(r->call, 404, "Namespace does not exist");
        return;
    }
    if (r->nseg == 8) {
        topic_name_fini(&tn);
        admin_reply_raw(r->call, 200, "text/plain", range);
        return;
    }
    locate_start(r, &tn, true);
    topic_name_fini(&tn);
}
