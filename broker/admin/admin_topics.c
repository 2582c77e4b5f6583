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
 * looked up again by name after every asynchronous step, so an unload meanwhile is a 500
 * rather than a dangling pointer.
 */
#include "admin/admin_int.h"
#include "config/cfg.h"
#include "ml/ml.h"
#include "svc/svc.h"
#include "topic/topic.h"
#include "util/alloc.h"
#include "util/crc.h"
#include "util/err.h"
#include "util/log.h"

#include <ctype.h>
#include <errno.h>
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
    struct evhttp_request *req; /* borrowed until replied */
    struct topic_name tn;       /* the name in the path */
    int partitions;             /* > 0: tn is a partitioned topic's base name */
    char *sub;                  /* subscription segment, or NULL */
    char *arg;                  /* the action's argument segment, or NULL */
    json_t *body;               /* parsed body, or NULL */
    bool force, earliest;
    char **names; /* topics to resolve */
    int n;
    int pending;
    int status; /* first failure */
    topic_op_fn fn;
    int step;     /* reset by time: the partition being reset */
    uint64_t ts;  /* reset by time */
    int new_from; /* partition update: first new partition */
    char **subs;  /* partition update: subscriptions to copy */
    int n_subs;
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
    mg_free(op);
}

static void op_add_name(struct topic_op *op, char *name)
{
    op->names = mg_realloc(op->names, (size_t)(op->n + 1) * sizeof *op->names);
    op->names[op->n++] = name;
}

static void op_partition_names(struct topic_op *op, int from, int to)
{
    for (int i = from; i < to; i++)
        op_add_name(op, mg_asprintf("%s-partition-%d", op->tn.full, i));
}

static void reply_topic_not_found(struct topic_op *op)
{
    admin_reply_errorf(op->req, 404, "Topic %s not found", op->tn.full);
}

/* ---- resolving: load every named topic, then run fn ------------------------------------ */

static void op_finish(struct topic_op *op)
{
    if (op->status < 0) {
        if (op->status == -MG_ENOTFOUND)
            reply_topic_not_found(op);
        else
            admin_reply_errorf(op->req, 500, "Failed to load topic: %s", mg_strerror(op->status));
        return op_free(op);
    }
    struct topic **topics = mg_calloc((size_t)op->n + 1, sizeof *topics);
    for (int i = 0; i < op->n; i++) {
        topics[i] = topic_find(svc_topics(op->a->svc), op->names[i]);
        if (!topics[i]) {
            mg_free(topics);
            admin_reply_errorf(op->req, 500, "Topic %s was unloaded", op->names[i]);
            return op_free(op);
        }
    }
    op->fn(op, topics); /* replies (now or later) and frees op */
    mg_free(topics);
}

static void op_loaded(struct topic *t, int status, void *data)
{
    (void)t;
    struct topic_op *op = data;
    if (status < 0 && op->status == 0)
        op->status = status;
    if (--op->pending == 0)
        op_finish(op);
}

static void op_load_all(struct topic_op *op)
{
    op->pending = 1;
    for (int i = 0; i < op->n; i++) {
        if (topic_find(svc_topics(op->a->svc), op->names[i]))
            continue;
        int rc = topic_get(svc_topics(op->a->svc), op->names[i], true, op_loaded, op);
        if (rc < 0) {
            if (op->status == 0)
                op->status = rc;
            continue;
        }
        op->pending++;
    }
    if (--op->pending == 0)
        op_finish(op);
}

/* The stored topic list of the namespace answered: a plain topic exists if listed. */
static void op_listed(void *data, int status, char **names, int n)
{
    struct topic_op *op = data;
    if (status < 0) {
        admin_reply_error(op->req, 500, mg_strerror(status));
        return op_free(op);
    }
    bool found = false;
    for (int i = 0; i < n && !found; i++)
        found = strcmp(names[i], op->tn.full) == 0;
    if (!found) {
        reply_topic_not_found(op);
        return op_free(op);
    }
    op_load_all(op);
}

/* Resolve op's names (the path's topic, or its partitions) and run fn. must_exist: a plain
 * topic must already exist (else 404); otherwise it is created. */
static void op_run(struct topic_op *op, topic_op_fn fn, bool must_exist)
{
    op->fn = fn;
    if (op->n == 0) {
        if (op->partitions > 0)
            op_partition_names(op, 0, op->partitions);
        else
            op_add_name(op, mg_strdup(op->tn.full));
    }
    if (op->partitions == 0 && must_exist && !topic_find(svc_topics(op->a->svc), op->tn.full)) {
        char *ns = mg_asprintf("%s/%s", op->tn.tenant, op->tn.ns);
        int rc = svc_list_topics(op->a->svc, ns, false, op_listed, op);
        mg_free(ns);
        if (rc < 0) {
            admin_reply_error(op->req, 404, "Namespace does not exist");
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
    json_object_set_new(j, "ownerBroker", json_string(svc_broker_id(a->svc)));
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
    admin_reply_json(op->req, 200, topic_stats_json(op->a, topics[0]));
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
    admin_reply_json(op->req, 200, sum);
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
    admin_reply_json(op->req, 200, internal_stats_json(topics[0]));
    op_free(op);
}

static void do_partitioned_internal_stats(struct topic_op *op, struct topic **topics)
{
    json_t *parts = json_object();
    for (int i = 0; i < op->n; i++)
        json_object_set_new(parts, op->names[i], internal_stats_json(topics[i]));
    admin_reply_json(
        op->req, 200,
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
    admin_reply_json(op->req, 200, arr);
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
            admin_reply_error(op->req, 400, "Invalid reset cursor data");
            return op_free(op);
        }
        if (topic_sub_cursor(topics[i], op->sub)) {
            admin_reply_error(op->req, 409, "Subscription already exists for topic");
            return op_free(op);
        }
    }
    for (int i = 0; i < op->n; i++) {
        struct ml_position p;
        int kind = reset_position(topics[i], op->body, &p);
        int rc = topic_admin_create_sub(topics[i], op->sub, kind == 0);
        if (rc == -MG_EEXIST) {
            admin_reply_error(op->req, 409, "Subscription already exists for topic");
            return op_free(op);
        }
        if (rc < 0) {
            admin_reply_error(op->req, 500, mg_strerror(rc));
            return op_free(op);
        }
        if (kind == 0 && ml_pos_cmp(p, ml_first_position(topic_ml(topics[i]))) > 0)
            topic_admin_reset_cursor(topics[i], op->sub, p);
    }
    admin_reply_no_content(op->req);
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
                admin_reply_error(op->req, 412, "Subscription has active connected consumers");
                return op_free(op);
            }
    }
    if (found == 0) {
        admin_reply_errorf(op->req, 404, "Subscription %s not found for topic %s", op->sub,
                           op->tn.full);
        return op_free(op);
    }
    for (int i = 0; i < op->n; i++) {
        int rc = topic_admin_delete_sub(topics[i], op->sub, op->force);
        if (rc < 0 && rc != -MG_ENOSUB) {
            admin_reply_error(op->req, rc == -MG_ECONSUMERBUSY ? 412 : 500,
                              rc == -MG_ECONSUMERBUSY
                                  ? "Subscription has active connected consumers"
                                  : mg_strerror(rc));
            return op_free(op);
        }
    }
    admin_reply_no_content(op->req);
    op_free(op);
}

static bool sub_missing(struct topic_op *op, struct topic **topics)
{
    for (int i = 0; i < op->n; i++) {
        if (!topic_sub_cursor(topics[i], op->sub)) {
            admin_reply_errorf(op->req, 404, "Subscription %s not found for topic %s", op->sub,
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
        admin_reply_error(op->req, 400, "Invalid number of messages to skip");
        return op_free(op);
    }
    topic_admin_skip(topics[0], op->sub, (int64_t)n);
    admin_reply_no_content(op->req);
    op_free(op);
}

static void do_skip_all(struct topic_op *op, struct topic **topics)
{
    if (sub_missing(op, topics))
        return;
    for (int i = 0; i < op->n; i++)
        topic_admin_clear_backlog(topics[i], op->sub);
    admin_reply_no_content(op->req);
    op_free(op);
}

static void do_reset_by_id(struct topic_op *op, struct topic **topics)
{
    if (sub_missing(op, topics))
        return;
    struct ml_position p;
    if (reset_position(topics[0], op->body, &p) < 0) {
        admin_reply_error(op->req, 400,
                          "Invalid reset cursor data: ledgerId and entryId "
                          "are required");
        return op_free(op);
    }
    topic_admin_reset_cursor(topics[0], op->sub, p);
    admin_reply_no_content(op->req);
    op_free(op);
}

static void reset_time_next(struct topic_op *op);

static void reset_time_found(struct ml_position pos, int status, void *data)
{
    struct topic_op *op = data;
    struct topic *t = topic_find(svc_topics(op->a->svc), op->names[op->step]);
    if (status < 0 || !t) {
        admin_reply_errorf(op->req, 412, "Unable to find position for timestamp %" PRIu64, op->ts);
        return op_free(op);
    }
    if (topic_admin_reset_cursor(t, op->sub, pos) < 0) {
        admin_reply_errorf(op->req, 404, "Subscription %s not found for topic %s", op->sub,
                           op->names[op->step]);
        return op_free(op);
    }
    op->step++;
    reset_time_next(op);
}

static void reset_time_next(struct topic_op *op)
{
    if (op->step == op->n) {
        admin_reply_no_content(op->req);
        return op_free(op);
    }
    struct topic *t = topic_find(svc_topics(op->a->svc), op->names[op->step]);
    int rc = t ? ml_find_by_time(topic_ml(t), op->ts, reset_time_found, op) : -MG_ECLOSED;
    if (rc < 0) {
        admin_reply_errorf(op->req, 412, "Unable to find position for timestamp %" PRIu64, op->ts);
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
        admin_reply_error(op->req, 400, "Invalid timestamp");
        return op_free(op);
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
    admin_reply_no_content(op->req);
    op_free(op);
}

static void do_last_message_id(struct topic_op *op, struct topic **topics)
{
    struct ml_position p = ml_last_confirmed(topic_ml(topics[0]));
    admin_reply_json(op->req, 200,
                     json_pack("{s:I,s:I,s:i}", "ledgerId", (json_int_t)p.ledger, "entryId",
                               (json_int_t)p.entry, "partitionIndex", op->tn.partition));
    op_free(op);
}

static void do_delete(struct topic_op *op, struct topic **topics)
{
    for (int i = 0; i < op->n; i++) {
        struct topic_stats st;
        topic_get_stats(topics[i], &st);
        if (!op->force && (st.n_producers > 0 || st.n_consumers > 0)) {
            admin_reply_error(op->req, 412, "Topic has active producers/subscriptions");
            return op_free(op);
        }
    }
    for (int i = 0; i < op->n; i++) {
        int rc = topic_delete(topics[i], op->force);
        if (rc < 0) {
            admin_reply_error(op->req, rc == -MG_EBUSY ? 412 : 500,
                              rc == -MG_EBUSY ? "Topic has active producers/subscriptions"
                                              : mg_strerror(rc));
            return op_free(op);
        }
    }
    if (op->partitions > 0) {
        int rc = svc_partitions_delete(op->a->svc, op->tn.full, admin_reply_done, op->req);
        if (rc < 0)
            admin_reply_error(op->req, 404, "Partitioned topic does not exist");
    } else {
        admin_reply_no_content(op->req);
    }
    op_free(op);
}

static void do_created(struct topic_op *op, struct topic **topics)
{
    (void)topics;
    admin_reply_no_content(op->req);
    op_free(op);
}

/* PUT P/{topic}: 409 when a topic of that name is stored, else create (load) it. */
static void create_listed(void *data, int status, char **names, int n)
{
    struct topic_op *op = data;
    if (status < 0) {
        admin_reply_error(op->req, 500, mg_strerror(status));
        return op_free(op);
    }
    for (int i = 0; i < n; i++) {
        if (strcmp(names[i], op->tn.full) == 0) {
            admin_reply_error(op->req, 409, "This topic already exists");
            return op_free(op);
        }
    }
    op_run(op, do_created, false);
}

/* ---- partitions ------------------------------------------------------------------------- */

static void partitions_meta_listed(void *data, int status, char **names, int n)
{
    struct topic_op *op = data;
    bool found = false;
    for (int i = 0; status == 0 && i < n && !found; i++)
        found = strcmp(names[i], op->tn.full) == 0;
    struct svc *s = op->a->svc;
    if (found || (op->force && svc_cfg(s)->allow_auto_topic_creation))
        admin_reply_json(op->req, 200, json_pack("{s:i}", "partitions", 0));
    else
        reply_topic_not_found(op);
    op_free(op);
}

/* PUT partitions: 409 when a plain topic of that name is stored; else write the metadata. */
static void partitions_create_listed(void *data, int status, char **names, int n)
{
    struct topic_op *op = data;
    for (int i = 0; status == 0 && i < n; i++) {
        if (strcmp(names[i], op->tn.full) == 0) {
            admin_reply_error(op->req, 409, "This topic already exists");
            return op_free(op);
        }
    }
    int rc = svc_partitions_set(op->a->svc, op->tn.full, op->partitions, true, admin_reply_done,
                                op->req);
    if (rc == -MG_EEXIST)
        admin_reply_error(op->req, 409, "This topic already exists");
    else if (rc < 0)
        admin_reply_error(op->req, 500, mg_strerror(rc));
    op_free(op);
}

/* Partition update: copy the existing partitions' subscriptions to the new ones. */
static void do_copy_subs(struct topic_op *op, struct topic **topics)
{
    for (int i = 0; i < op->n; i++)
        for (int k = 0; k < op->n_subs; k++)
            if (!topic_sub_cursor(topics[i], op->subs[k]))
                topic_admin_create_sub(topics[i], op->subs[k], true);
    admin_reply_no_content(op->req);
    op_free(op);
}

static void partitions_updated(void *data, int status)
{
    struct topic_op *op = data;
    if (status < 0) {
        admin_reply_error(op->req, 500, mg_strerror(status));
        return op_free(op);
    }
    if (op->n_subs == 0) {
        admin_reply_no_content(op->req);
        return op_free(op);
    }
    op_partition_names(op, op->new_from, op->partitions);
    op_run(op, do_copy_subs, false);
}

static void partitions_deleted(void *data, int status)
{
    struct evhttp_request *req = data;
    if (status == -MG_EBUSY)
        admin_reply_error(req, 412, "Topic has active producers/subscriptions");
    else if (status < 0)
        admin_reply_error(req, 500, mg_strerror(status));
    else
        admin_reply_no_content(req);
}

static void h_partitions(struct admin_req *r, struct topic_op *op)
{
    struct svc *s = r->a->svc;
    int cur = svc_partitions_get(s, op->tn.full);
    char *ns = mg_asprintf("%s/%s", op->tn.tenant, op->tn.ns);
    if (r->method == EVHTTP_REQ_GET) {
        if (cur > 0) {
            admin_reply_json(r->req, 200, json_pack("{s:i}", "partitions", cur));
            op_free(op);
        } else if (topic_find(svc_topics(s), op->tn.full)) {
            admin_reply_json(r->req, 200, json_pack("{s:i}", "partitions", 0));
            op_free(op);
        } else {
            op->force = admin_query_flag(r, "checkAllowAutoCreation");
            if (svc_list_topics(s, ns, false, partitions_meta_listed, op) < 0) {
                admin_reply_error(r->req, 404, "Namespace does not exist");
                op_free(op);
            }
        }
        return mg_free(ns);
    }
    if (r->method == EVHTTP_REQ_DELETE) {
        mg_free(ns);
        if (cur == 0) {
            if (topic_find(svc_topics(s), op->tn.full)) {
                admin_reply_errorf(r->req, 409, "%s is not a partitioned topic", op->tn.full);
                return op_free(op);
            }
            admin_reply_errorf(r->req, 404, "Partitioned topic %s does not exist", op->tn.full);
            return op_free(op);
        }
        /* Sliced in svc (svc_partitioned_delete): thousands of partitions must not hold
         * the loop in one turn, nor be loaded only to be deleted. */
        int rc = svc_partitioned_delete(s, op->tn.full, admin_query_flag(r, "force"),
                                        partitions_deleted, r->req);
        op_free(op);
        if (rc < 0)
            admin_reply_errorf(r->req, 404, "Partitioned topic does not exist");
        return;
    }
    if (r->method != EVHTTP_REQ_PUT && r->method != EVHTTP_REQ_POST) {
        mg_free(ns);
        op_free(op);
        return admin_reply_bad_method(r->req);
    }
    mg_free(ns);
    bool bad = false;
    json_t *j = admin_body_json(r->req, &bad);
    bool is_int = json_is_integer(j);
    json_int_t n = is_int ? json_integer_value(j) : 0;
    json_decref(j);
    if (bad || !is_int) {
        op_free(op);
        return admin_reply_error(r->req, 400,
                                 "The request body must be the number of "
                                 "partitions");
    }
    if (n <= 0) {
        op_free(op);
        return admin_reply_error(r->req, 406, "Number of partitions should be more than 0");
    }
    int maxp = svc_cfg(s)->max_num_partitions_per_partitioned_topic;
    if ((maxp > 0 && n > maxp) || n > INT_MAX) {
        op_free(op);
        return admin_reply_errorf(r->req, 406,
                                  "Number of partitions should be less than or equal to %d",
                                  maxp > 0 ? maxp : INT_MAX);
    }
    if (r->method == EVHTTP_REQ_PUT) {
        if (strstr(op->tn.local, "-partition-")) {
            op_free(op);
            return admin_reply_error(r->req, 412,
                                     "Partitioned Topic Name should not contain "
                                     "'-partition-'");
        }
        if (cur > 0 || topic_find(svc_topics(s), op->tn.full)) {
            op_free(op);
            return admin_reply_error(r->req, 409,
                                     cur > 0 ? "Partitioned topic already exists"
                                             : "This topic already exists");
        }
        op->partitions = (int)n;
        char *nsn = mg_asprintf("%s/%s", op->tn.tenant, op->tn.ns);
        int rc = svc_list_topics(s, nsn, false, partitions_create_listed, op);
        mg_free(nsn);
        if (rc < 0) {
            admin_reply_error(r->req, 404, "Namespace does not exist");
            op_free(op);
        }
        return;
    }
    /* POST: grow (4.x statuses, docs/admin.md §5). */
    if (cur == 0) {
        admin_reply_errorf(r->req, 409, "Topic %s is not the partitioned topic.", op->tn.full);
        return op_free(op);
    }
    if (n < cur) {
        admin_reply_errorf(r->req, 422,
                           "Desired partitions %lld can't be less than the current "
                           "partitions %d.",
                           (long long)n, cur);
        return op_free(op);
    }
    if (n == cur) {
        admin_reply_no_content(r->req);
        return op_free(op);
    }
    /* Subscriptions of the loaded partitions, to copy onto the new ones. */
    for (int i = 0; i < cur; i++) {
        char *pn = mg_asprintf("%s-partition-%d", op->tn.full, i);
        struct topic *t = topic_find(svc_topics(s), pn);
        mg_free(pn);
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
    op->new_from = cur;
    op->partitions = (int)n;
    int rc = svc_partitions_set(s, op->tn.full, (int)n, false, partitions_updated, op);
    if (rc < 0) {
        admin_reply_error(r->req, 500, mg_strerror(rc));
        op_free(op);
    }
}

/* ---- router for P = /admin/v2/persistent/{t}/{ns}[/...] ---------------------------------- */

static void topics_listed(void *data, int status, char **names, int n)
{
    struct evhttp_request *req = data;
    if (status < 0)
        return admin_reply_error(req, 500, mg_strerror(status));
    json_t *arr = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(arr, json_string(names[i]));
    admin_reply_json(req, 200, arr);
}

static bool is(const char *a, const char *b)
{
    return a && strcmp(a, b) == 0;
}

/* ---- ownership gate ------------------------------------------------------------------------
 *
 * A topic is served only by the broker that owns its bundle: a topic request for a bundle
 * owned elsewhere is redirected (307) to the owner's web URL, and one for an unowned bundle
 * first takes the bundle here (as a lookup would) and is then routed again. Loading the
 * topic without the lease would recover and fence the owner's ledger.
 */
struct gate_op {
    struct admin *a;            /* borrowed */
    struct evhttp_request *req; /* borrowed until replied */
    char *ns;                   /* owned: "t/ns" */
    char range[SVC_BUNDLE_NAME_LEN];
};

static void gate_free(struct gate_op *g)
{
    mg_free(g->ns);
    mg_free(g);
}

static void gate_owner(void *data, int status, const struct svc_owner *o)
{
    struct gate_op *g = data;
    if (status == -MG_ECANCELED)
        return gate_free(g); /* the service is going away */
    if (status == 0 && o && o->kind == SVC_OWNER_OTHER && o->web_url) {
        const char *uri = evhttp_request_get_uri(g->req);
        char *loc = mg_asprintf("%s%s", o->web_url, uri);
        evhttp_add_header(evhttp_request_get_output_headers(g->req), "Location", loc);
        mg_free(loc);
        admin_reply_raw(g->req, 307, NULL, NULL);
    } else {
        admin_reply_error(g->req, 503, "Owner of the topic's bundle is not known; retry");
    }
    gate_free(g);
}

static void gate_lookup_done(void *data, int status, const char *url, const char *message)
{
    struct gate_op *g = data;
    if (status == -MG_ECANCELED)
        return gate_free(g);
    if (status < 0) {
        admin_reply_error(g->req, 503, message ? message : mg_strerror(status));
        return gate_free(g);
    }
    if (url) { /* owned by another broker: send the client there */
        if (svc_bundle_owner(g->a->svc, g->ns, g->range, gate_owner, g) < 0) {
            admin_reply_error(g->req, 503, "Owner of the topic's bundle is not known; retry");
            gate_free(g);
        }
        return;
    }
    /* This broker took the bundle: handle the request for real. */
    mg_map_put(&g->a->owned_reqs, &g->req, sizeof g->req, (void *)1);
    admin_route(g->req, g->a);
    gate_free(g);
}

/* Returns true when the request may go on here now; otherwise the reply (or the routing
 * again) happens later. */
static bool gate_topic(struct admin_req *r, const struct topic_name *tn)
{
    struct admin *a = r->a;
    struct svc *s = a->svc;
    if (mg_map_del(&a->owned_reqs, &r->req, sizeof r->req) || svc_topic_owned(s, tn))
        return true;
    struct gate_op *g = mg_calloc(1, sizeof *g);
    g->a = a;
    g->req = r->req;
    g->ns = mg_asprintf("%s/%s", tn->tenant, tn->ns);
    if (svc_topic_bundle(s, tn, g->range) < 0) {
        gate_free(g);
        return true; /* no bundle table (no metadata store): single broker */
    }
    int rc = svc_lookup(s, tn, admin_query_flag(r, "authoritative"), gate_lookup_done, g);
    if (rc == 1) {
        gate_free(g);
        return true;
    }
    if (rc < 0) {
        gate_free(g);
        admin_reply_error(r->req, 503, "Cannot look up the topic's owner; retry");
    }
    return false;
}

void admin_h_persistent(struct admin_req *r)
{
    struct svc *s = r->a->svc;
    if (r->nseg < 5)
        return admin_reply_not_found(r->req);
    if (!admin_valid_name(r->seg[3]) || !admin_valid_name(r->seg[4]))
        return admin_reply_error(r->req, 412, "Namespace name is not valid");
    char *ns = mg_asprintf("%s/%s", r->seg[3], r->seg[4]);
    if (!svc_namespace_exists(s, ns)) {
        mg_free(ns);
        return admin_reply_error(r->req, 404, "Namespace does not exist");
    }
    if (r->nseg == 5 || (r->nseg == 6 && is(r->seg[5], "partitioned"))) {
        if (r->method != EVHTTP_REQ_GET)
            admin_reply_bad_method(r->req);
        else if (svc_list_topics(s, ns, r->nseg == 6, topics_listed, r->req) < 0)
            admin_reply_error(r->req, 404, "Namespace does not exist");
        mg_free(ns);
        return;
    }
    char *name = mg_asprintf("persistent://%s/%s", ns, r->seg[5]);
    mg_free(ns);
    struct topic_op *op = mg_calloc(1, sizeof *op);
    op->a = r->a;
    op->req = r->req;
    int rc = topic_name_parse(name, &op->tn);
    mg_free(name);
    if (rc < 0 || !*r->seg[5]) {
        mg_free(op);
        return admin_reply_error(r->req, 412, "Invalid topic name");
    }
    const char *action = r->nseg >= 7 ? r->seg[6] : NULL;
    int parts = svc_partitions_get(s, op->tn.full);
    enum evhttp_cmd_type m = r->method;
    bool get = m == EVHTTP_REQ_GET, post = m == EVHTTP_REQ_POST;
    op->force = admin_query_flag(r, "force");

    if (is(action, "partitions") && r->nseg == 7)
        return h_partitions(r, op);
    if (parts == 0 && !gate_topic(r, &op->tn))
        return op_free(op);
    if (!action) {
        if (m == EVHTTP_REQ_PUT) {
            if (parts > 0 || topic_find(svc_topics(s), op->tn.full)) {
                admin_reply_error(r->req, 409, "This topic already exists");
                return op_free(op);
            }
            char *nsn = mg_asprintf("%s/%s", op->tn.tenant, op->tn.ns);
            svc_list_topics(s, nsn, false, create_listed, op);
            return mg_free(nsn);
        }
        if (m == EVHTTP_REQ_DELETE) {
            if (parts > 0) {
                admin_reply_errorf(r->req, 409,
                                   "%s is a partitioned topic, instead of calling delete topic, "
                                   "please call delete-partitioned-topic.",
                                   op->tn.full);
                return op_free(op);
            }
            return op_run(op, do_delete, true);
        }
        op_free(op);
        return admin_reply_bad_method(r->req);
    }
    op->partitions = parts;
    if (r->nseg == 7 && get && is(action, "stats")) {
        if (parts > 0) {
            reply_topic_not_found(op);
            return op_free(op);
        }
        return op_run(op, do_stats, true);
    }
    if (r->nseg == 7 && get && is(action, "partitioned-stats")) {
        if (parts == 0) {
            admin_reply_errorf(r->req, 404, "Partitioned Topic %s not found", op->tn.full);
            return op_free(op);
        }
        const char *per = admin_query(r, "perPartition");
        op->force = !per || strcmp(per, "false") != 0;
        return op_run(op, do_partitioned_stats, true);
    }
    if (r->nseg == 7 && get && is(action, "internalStats")) {
        if (parts > 0) {
            reply_topic_not_found(op);
            return op_free(op);
        }
        return op_run(op, do_internal_stats, true);
    }
    if (r->nseg == 7 && get && is(action, "partitioned-internalStats")) {
        if (parts == 0) {
            admin_reply_errorf(r->req, 404, "Partitioned Topic %s not found", op->tn.full);
            return op_free(op);
        }
        return op_run(op, do_partitioned_internal_stats, true);
    }
    if (r->nseg == 7 && get && is(action, "subscriptions"))
        return op_run(op, do_list_subs, true);
    if (r->nseg == 7 && m == EVHTTP_REQ_PUT && is(action, "unload"))
        return op_run(op, do_unload, true);
    if (r->nseg == 7 && get && is(action, "lastMessageId")) {
        if (parts > 0) {
            admin_reply_error(r->req, 405,
                              "Get last message id on a partitioned topic is not "
                              "allowed");
            return op_free(op);
        }
        return op_run(op, do_last_message_id, true);
    }
    if (r->nseg >= 8 && is(action, "subscription")) {
        op->sub = mg_strdup(r->seg[7]);
        const char *sub_action = r->nseg >= 9 ? r->seg[8] : NULL;
        if (r->nseg == 8 && m == EVHTTP_REQ_PUT) {
            bool bad = false;
            op->body = admin_body_json(r->req, &bad);
            if (bad) {
                admin_reply_error(r->req, 400, "Invalid reset cursor data");
                return op_free(op);
            }
            /* A missing topic is auto-created when auto-creation is allowed. */
            bool auto_create = svc_cfg(s)->allow_auto_topic_creation;
            return op_run(op, do_create_sub, !auto_create);
        }
        if (r->nseg == 8 && m == EVHTTP_REQ_DELETE)
            return op_run(op, do_delete_sub, true);
        if (r->nseg == 10 && post && is(sub_action, "skip")) {
            if (parts > 0) {
                admin_reply_error(r->req, 405,
                                  "Skip messages on a partitioned topic is not "
                                  "allowed");
                return op_free(op);
            }
            op->arg = mg_strdup(r->seg[9]);
            return op_run(op, do_skip, true);
        }
        if (r->nseg == 9 && post && is(sub_action, "skip_all"))
            return op_run(op, do_skip_all, true);
        if (r->nseg == 10 && post && is(sub_action, "resetcursor")) {
            op->arg = mg_strdup(r->seg[9]);
            return op_run(op, do_reset_by_time, true);
        }
        if (r->nseg == 9 && post && is(sub_action, "resetcursor")) {
            if (parts > 0) {
                admin_reply_error(r->req, 405,
                                  "Reset-cursor at position is not allowed for "
                                  "partitioned-topic");
                return op_free(op);
            }
            bool bad = false;
            op->body = admin_body_json(r->req, &bad);
            if (bad || !op->body) {
                admin_reply_error(r->req, 400,
                                  "Invalid reset cursor data: ledgerId and "
                                  "entryId are required");
                return op_free(op);
            }
            return op_run(op, do_reset_by_id, true);
        }
    }
    op_free(op);
    admin_reply_not_found(r->req);
}

/* ---- lookup ----------------------------------------------------------------------------- */

/* An HTTP lookup in progress (svc_lookup, then for a foreign owner svc_bundle_owner). */
struct lookup_op {
    struct admin *a;
    struct evhttp_request *req; /* borrowed until replied */
    char *ns;                   /* owned: "t/ns" */
    char range[SVC_BUNDLE_NAME_LEN];
    char *path; /* owned: the request's path (for the redirect) */
};

static void lookup_free(struct lookup_op *l)
{
    mg_free(l->ns);
    mg_free(l->path);
    mg_free(l);
}

static void lookup_reply_self(struct evhttp_request *req, struct svc *s)
{
    admin_reply_json(req, 200,
                     json_pack("{s:s,s:s,s:s,s:s}", "brokerUrl", svc_broker_url(s), "httpUrl",
                               svc_web_url(s), "nativeUrl", svc_broker_url(s), "brokerUrlSsl", ""));
}

static void lookup_owner(void *data, int status, const struct svc_owner *o)
{
    struct lookup_op *l = data;
    if (status < 0 || !o || o->kind == SVC_OWNER_NONE || !o->web_url) {
        admin_reply_error(l->req, 503, "Owner of the topic's bundle is not known; retry");
    } else if (o->kind == SVC_OWNER_HERE) {
        lookup_reply_self(l->req, l->a->svc);
    } else {
        char *loc = mg_asprintf("%s%s?authoritative=true", o->web_url, l->path);
        evhttp_add_header(evhttp_request_get_output_headers(l->req), "Location", loc);
        mg_free(loc);
        admin_reply_raw(l->req, 307, NULL, NULL);
    }
    lookup_free(l);
}

static void lookup_done(void *data, int status, const char *url, const char *message)
{
    struct lookup_op *l = data;
    struct svc *s = l->a->svc;
    if (status < 0) {
        admin_reply_error(l->req, status == -MG_ENOTREADY ? 503 : 500,
                          message ? message : mg_strerror(status));
        return lookup_free(l);
    }
    if (!url || strcmp(url, svc_broker_url(s)) == 0) {
        lookup_reply_self(l->req, s);
        return lookup_free(l);
    }
    /* Owned elsewhere: redirect to the owner's web service. */
    if (svc_bundle_owner(s, l->ns, l->range, lookup_owner, l) < 0) {
        admin_reply_error(l->req, 503, "Owner of the topic's bundle is not known; retry");
        lookup_free(l);
    }
}

void admin_h_lookup(struct admin_req *r)
{
    /* lookup/v2/topic/{domain}/{t}/{ns}/{topic}[/bundle] */
    struct svc *s = r->a->svc;
    if (r->nseg < 7 || r->nseg > 8 || (r->nseg == 8 && strcmp(r->seg[7], "bundle") != 0))
        return admin_reply_not_found(r->req);
    if (strcmp(r->seg[3], "persistent") != 0)
        return admin_reply_error(r->req, 405, "Non-persistent topics are not supported");
    char *name = mg_asprintf("persistent://%s/%s/%s", r->seg[4], r->seg[5], r->seg[6]);
    struct topic_name tn;
    int rc = topic_name_parse(name, &tn);
    mg_free(name);
    if (rc < 0)
        return admin_reply_error(r->req, 412, "Invalid topic name");
    const char *reason = NULL;
    rc = svc_check_topic(s, &tn, &reason);
    if (rc < 0) {
        topic_name_fini(&tn);
        return admin_reply_error(r->req, 404, reason);
    }
    char range[SVC_BUNDLE_NAME_LEN];
    if (svc_topic_bundle(s, &tn, range) < 0) {
        topic_name_fini(&tn);
        return admin_reply_error(r->req, 404, "Namespace does not exist");
    }
    if (r->nseg == 8) {
        topic_name_fini(&tn);
        return admin_reply_raw(r->req, 200, "text/plain", range);
    }
    struct lookup_op *l = mg_calloc(1, sizeof *l);
    l->a = r->a;
    l->req = r->req;
    l->ns = mg_asprintf("%s/%s", tn.tenant, tn.ns);
    memcpy(l->range, range, sizeof range);
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(r->req));
    l->path = mg_strdup(path ? path : "/");
    rc = svc_lookup(s, &tn, admin_query_flag(r, "authoritative"), lookup_done, l);
    topic_name_fini(&tn);
    if (rc == 1) {
        lookup_reply_self(r->req, s);
        lookup_free(l);
    } else if (rc < 0) {
        admin_reply_error(r->req, 503, mg_strerror(rc));
        lookup_free(l);
    }
}
