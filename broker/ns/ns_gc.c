/*
 * ns_gc.c - what the deletion of an inactive partition leaves (Pulsar's
 * PersistentTopic.tryToDeletePartitionedMetadata).
 *
 * The topic registry deletes inactive topics itself (topic.h, brokerDeleteInactiveTopics*),
 * partitions included, each on its own; the partitioned topic's metadata stays unless
 * brokerDeleteInactivePartitionedTopicMetadataEnabled. With it, each partition deleted for
 * inactivity here is noted on its partitioned topic's record (with the time: the managed
 * ledger's delete completes later, so for NS_GC_MARK_MS the note stands for "gone"), and the
 * other partitions are looked at one by one: once none is loaded here and each is noted or
 * no longer stored (ns_topic_stored), the metadata is deleted (ns_partitions_delete). A
 * partition still stored and not noted, or a store error, ends the look and drops the record
 * (the metadata stays); one loaded here ends it too but keeps the record, as the same check
 * usually deletes that partition next, which looks again.
 *
 * Bounds: one record per partitioned topic with a partition deleted here, one store read at a
 * time per record; each deletion also drops up to two records whose notes have all expired
 * and that are not reading.
 */
#include "config/cfg.h"
#include "ns/ns_int.h"
#include "topic/topic.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"
#include "util/loop.h"

#include <string.h>

#define NS_GC_MARK_MS 60000

struct ns_gc_job {
    struct ns_pending p; /* first: p.s NULL once the module is freed with a read in flight */
    char *base;          /* owned: the partitioned topic's name (the map's key) */
    int n, next;         /* partitions, the next one to look at */
    uint64_t *marked_ms; /* owned, n: when partition i was deleted here (0: not noted) */
};

static void ns_gc_job_free(struct ns_gc_job *j)
{
    mg_free(j->marked_ms);
    mg_free(j->base);
    mg_free(j);
}

static void ns_gc_drop(struct ns_gc_job *j)
{
    mg_map_del_str(&j->p.s->gc_jobs, j->base);
    ns_gc_job_free(j);
}

/* Partition i was deleted here lately (its ML delete may still be under way). */
static bool ns_gc_noted(const struct ns_gc_job *j, int i)
{
    return j->marked_ms[i] && mg_loop_mono_ms(j->p.s->loop) - j->marked_ms[i] < NS_GC_MARK_MS;
}

static void ns_gc_meta_deleted(void *data, int status)
{
    char *base = data;
    if (status < 0 && status != -MG_ENOTFOUND)
        MG_WARN("ns", "%s: partitioned metadata of an inactive topic not deleted: %s", base,
                mg_strerror(status));
    else
        MG_INFO("ns",
                "%s: no partition left: partitioned metadata deleted "
                "(brokerDeleteInactivePartitionedTopicMetadataEnabled)",
                base);
    mg_free(base);
}

static void ns_gc_step(struct ns_gc_job *j);

static void ns_gc_stored(void *data, int status)
{
    struct ns_gc_job *j = data;
    j->p.reading = false;
    if (!j->p.s) {
        ns_gc_job_free(j);
        return;
    }
    if (status == 1 && ns_gc_noted(j, j->next - 1)) {
        ns_gc_step(j); /* deleted here while the read was out */
        return;
    }
    if (status != 0) { /* stored (1), or the store's error: the metadata stays */
        if (status < 0)
            MG_WARN("ns", "%s: partitions not looked up (%s): partitioned metadata kept", j->base,
                    mg_strerror(status));
        ns_gc_drop(j);
        return;
    }
    ns_gc_step(j);
}

/* Look at the next partition, or delete the metadata once none is left. */
static void ns_gc_step(struct ns_gc_job *j)
{
    struct ns *s = j->p.s;
    if (!s->topics) { /* the broker is stopping: the metadata stays */
        ns_gc_drop(j);
        return;
    }
    for (;;) {
        if (j->next >= j->n) {
            char *base = mg_strdup(j->base);
            if (ns_partitions_delete(s, base, ns_gc_meta_deleted, base) < 0)
                mg_free(base); /* gone meanwhile (-MG_ENOTFOUND): nothing to do */
            ns_gc_drop(j);
            return;
        }
        int i = j->next;
        char *name = mg_asprintf("%s-partition-%d", j->base, i);
        bool here = topic_find(s->topics, name) != NULL;
        if (here) {
            mg_free(name);
            j->next = 0; /* kept: the next deletion of a partition looks again */
            return;
        }
        if (ns_gc_noted(j, i)) {
            mg_free(name);
            j->next++;
            continue;
        }
        int rc = ns_topic_stored(s, name, ns_gc_stored, j);
        mg_free(name);
        if (rc < 0) {
            ns_gc_drop(j);
            return;
        }
        j->next++;
        j->p.reading = true;
        return;
    }
}

/* A record whose notes have all expired (ns_pending_sweep drops it when not reading). */
static bool ns_gc_stale(void *entry)
{
    struct ns_gc_job *j = entry;
    for (int i = 0; i < j->n; i++)
        if (ns_gc_noted(j, i))
            return false;
    return true;
}

static void ns_gc_drop_one(void *entry)
{
    ns_gc_drop(entry);
}

void ns_gc_topic_deleted(void *arg, const char *full_name)
{
    struct ns *s = arg;
    if (!s->cfg->delete_inactive_pt_metadata)
        return;
    struct topic_name tn;
    if (topic_name_parse(full_name, &tn) < 0)
        return;
    int n = tn.partition >= 0 ? ns_partitions_get(s, tn.base) : 0;
    if (n > 0 && tn.partition < n) {
        ns_pending_sweep(&s->gc_jobs, &s->gc_sweep, ns_gc_stale, ns_gc_drop_one);
        struct ns_gc_job *j = mg_map_get_str(&s->gc_jobs, tn.base);
        if (j && j->n != n) { /* the count changed: start over */
            if (j->p.reading)
                j = NULL; /* its read completes first; this deletion is not noted */
            else
                ns_gc_drop(j), j = NULL;
        }
        if (!j && !mg_map_get_str(&s->gc_jobs, tn.base)) {
            j = mg_calloc(1, sizeof *j);
            j->p.s = s;
            j->base = mg_strdup(tn.base);
            j->n = n;
            j->marked_ms = mg_calloc((size_t)n, sizeof *j->marked_ms);
            mg_map_put_str(&s->gc_jobs, j->base, j);
        }
        if (j) {
            j->marked_ms[tn.partition] = mg_loop_mono_ms(s->loop);
            if (!j->p.reading) {
                j->next = 0;
                ns_gc_step(j);
            }
        }
    }
    topic_name_fini(&tn);
}

static void ns_gc_free_one(void *value)
{
    ns_gc_job_free(value);
}

void ns_gc_fini(struct ns *s)
{
    ns_pending_release(&s->gc_jobs, NULL, ns_gc_free_one);
    s->gc_sweep = 0;
}
