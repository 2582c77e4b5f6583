'use strict';
// Acceptance 4: 50 producers on 50 topics at once; every message arrives.
// Each topic gets its own Exclusive consumer, subscribed before anything is produced
// (pulsar-flex subscribes at Latest). pulsar-flex opens one connection per client, so this
// is 100 client connections (plus 100 short-lived lookup connections) at once.
const { test } = require('node:test');
const assert = require('node:assert');
const f = require('./lib/flex');

const TOPICS = 50;
const PER_TOPIC = 100;

test(`${TOPICS} producers on ${TOPICS} topics at once: all ${TOPICS * PER_TOPIC} messages arrive, in order per topic`,
  { timeout: 180000 },
  () => f.withScope('many-topics', async (s) => {
    const topics = Array.from({ length: TOPICS }, (_, i) => f.uniqueTopic(`many${i}`));
    const consumers = await Promise.all(topics.map((topic) => s.consumer({ topic, subscription: 'many-sub' })));
    const gots = await Promise.all(consumers.map((c) => f.collect(c)));
    const producers = await Promise.all(topics.map((topic) => s.producer(topic)));
    const msgs = topics.map((_, i) => f.makeMessages(PER_TOPIC, `t${i}`));

    await Promise.all(producers.map((p, i) => f.sendAll(p, msgs[i], { window: 10, timeoutMs: 90000, what: `topic ${i}` })));
    const total = () => gots.reduce((n, g) => n + g.length, 0);
    await s.waitFor(() => gots.every((g) => g.length >= PER_TOPIC), 90000, () => {
      const short = gots.map((g, i) => [i, g.length]).filter(([, n]) => n < PER_TOPIC);
      return `all messages (total ${total()}/${TOPICS * PER_TOPIC}; short topics: ` +
        `${short.slice(0, 10).map(([i, n]) => `#${i}=${n}`).join(' ')})`;
    });
    await Promise.all(producers.map((p, i) => f.flushWithMarker(s, p, gots[i], { timeoutMs: 60000 })));

    for (let i = 0; i < TOPICS; i++) f.checkExactSequence(gots[i], msgs[i], `topic #${i}`);
    assert.strictEqual(total(), TOPICS * PER_TOPIC);
    assert.deepStrictEqual(gots.flatMap((g) => g.errors), []);
    assert.deepStrictEqual(s.problems(), [], 'pulsar-flex logged warnings/errors');
  }));
