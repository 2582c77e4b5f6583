/*
 * ns_gc.c - what the deletion of an inactive partition leaves (Pulsar's
 * PersistentTopic.tryToDeletePartitionedMetadata).
 *
 * The topic registry deletes inactive topics itself (topic.h, brokerDeleteInactiveTopics*),
 * partitions included, each on its own; the partitioned topic's metadata stays unless
 * brokerDeleteInactivePartitionedTopicMetadataEnabled. With it, once a partition was deleted
 * for inactivity, the other partitions are looked at one by one: if none is loaded here and
 * none is stored any more (ns_topic_stored), the metadata is deleted (ns_partitions_delete);
 * a partition still there, or a store error, leaves it (the next deleted partition looks
 * again). One store read at a time per job, at most one job per partitioned topic.
 */
#include "config/cfg.h"
#include "ns/ns_int.h"
#include "topic/topic.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"

#include <string.h>

struct ns_gc_job {
    struct ns *s; /* NULL once the module is freed with a read in flight */
    char *base;   /* owned: the partitioned topic's name (the map's key) */
    int n, next;  /* partitions, the next one to look at */
    int deleted;  /* the partition that was deleted (not looked at) */
    bool reading;
};

static void ns_gc_job_free(struct ns_gc_job *j)
{
    mg_free(j->base);
    mg_free(j);
}

static void ns_gc_end(struct ns_gc_job *j)
{
    mg_map_del_str(&j->s->gc_jobs, j->base);
    ns_gc_job_free(j);
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
    j->reading = false;
    if (!j->s) {
        ns_gc_job_free(j);
        return;
    }
    if (status != 0) { /* stored (1), or the store's error: the metadata stays */
        if (status < 0)
            MG_WARN("ns", "%s: partitions not looked up (%s): partitioned metadata kept", j->base,
                    mg_strerror(status));
        ns_gc_end(j);
        return;
    }
    ns_gc_step(j);
}

/* Look at the next partition, or delete the metadata once none is left. */
static void ns_gc_step(struct ns_gc_job *j)
{
    struct ns *s = j->s;
    if (j->next == j->deleted)
        j->next++;
    if (j->next >= j->n) {
        if (ns_partitions_delete(s, j->base, ns_gc_meta_deleted, mg_strdup(j->base)) < 0)
            MG_WARN("ns", "%s: partitioned metadata not deleted", j->base);
        ns_gc_end(j);
        return;
    }
    char *name = mg_asprintf("%s-partition-%d", j->base, j->next++);
    int rc = s->topics && topic_find(s->topics, name) ? 1 : 0;
    if (rc == 0)
        rc = ns_topic_stored(s, name, ns_gc_stored, j);
    mg_free(name);
    if (rc == 0)
        j->reading = true;
    else
        ns_gc_end(j); /* loaded here, or not asked: the metadata stays */
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
    if (n > 0 && !mg_map_get_str(&s->gc_jobs, tn.base)) {
        struct ns_gc_job *j = mg_calloc(1, sizeof *j);
        j->s = s;
        j->base = mg_strdup(tn.base);
        j->n = n;
        j->deleted = tn.partition;
        mg_map_put_str(&s->gc_jobs, j->base, j);
        ns_gc_step(j);
    }
    topic_name_fini(&tn);
}

static void ns_gc_fini_one(void *value)
{
    struct ns_gc_job *j = value;
    if (j->reading)
        j->s = NULL; /* the read's callback frees it */
    else
        ns_gc_job_free(j);
}

void ns_gc_fini(struct ns *s)
{
    mg_map_fini_free(&s->gc_jobs, ns_gc_fini_one);
    mg_map_init(&s->gc_jobs);
}
