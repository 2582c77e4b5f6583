/*
 * topic_np.c - publishing on non-persistent topics (Pulsar's NonPersistentTopic).
 *
 * Happy path: a SEND on "non-persistent://t/ns/x" is not written anywhere. The entry is
 * handed at once, inside topic_publish, to each subscription: the consumer its type picks
 * (Exclusive/Failover: the active one; Shared: round robin; Key_Shared: the key's owner)
 * gets it if it can take it now (permits, below the outbound watermark), else its
 * messages are dropped and counted (msgDropRate). Every message has the position (0, 0),
 * as in Pulsar: the receipt answers it, in publish order, from the producer's FIFO on the
 * next loop turn (never inside the caller's call), and the consumers' acks and
 * redeliveries of it do nothing. A consumer that connects later sees nothing from before.
 *
 * Failure modes: none of its own; a topic not ready or a closed producer was refused by
 * topic_publish already. The topic still opens a managed ledger (subscriptions use its
 * non-durable cursors) but nothing is appended to it.
 */
#include "topic/topic_int.h"
#include "util/alloc.h"
#include "util/loop.h"
#include "wire/wire.h"

#include <event2/buffer.h>

int topic_np_publish(struct topic_producer *p, struct evbuffer *data,
                     const struct wire_msg_info *msg, topic_publish_cb cb, void *cb_data)
{
    struct topic *t = p->topic;
    struct wire_msg_info parsed;
    if (!msg && wire_entry_parse(data, &parsed) == 0)
        msg = &parsed;
    struct ml_entry_info info;
    if (msg)
        topic_entry_info_of(msg, &info);
    struct ml_entry *e = ml_entry_new(data, msg ? &info : NULL);
    e->pos = (struct ml_position){0, 0}; /* Pulsar's id for every non-persistent message */
    int64_t msgs = e->num_messages > 0 ? e->num_messages : 1;
    p->msg_in += msgs;
    p->bytes_in += (int64_t)e->size;
    t->msg_in += msgs;
    t->bytes_in += (int64_t)e->size;
    topic_record_write(t, 0, (int64_t)e->size);
    size_t pos = 0;
    void *v;
    while (mg_map_next(&t->subs, &pos, NULL, NULL, &v))
        topic_sub_np_deliver(v, e);
    ml_entry_unref(e);

    struct topic_publish *pub = mg_calloc(1, sizeof *pub);
    pub->p = p;
    pub->cb = cb;
    pub->cb_data = cb_data;
    pub->done = true;
    pub->pos = (struct ml_position){0, 0};
    topic_publish_queue(p, pub);
    if (p->fifo == pub)
        mg_timer_activate(&p->answer_tmr);
    return 0;
}
