'use strict';
// Namespace limits (issue 15): maxProducersPerTopic, maxConsumersPerSubscription,
// maxConsumersPerTopic and maxSubscriptionsPerTopic set with the admin paths pulsar-admin
// uses, then met by pulsar-flex clients: a producer over the limit is refused with Pulsar's
// "Topic reached max producers limit", a consumer with ConsumerBusy and Pulsar's text, a new
// subscription over the limit with NotAllowedError; removing the policy lifts the limit.
// Each test uses a namespace of its own, so other tests are not limited.
const { test } = require('node:test');
const assert = require('node:assert');
const f = require('./lib/flex');
const { SERVER_ERROR } = require('./lib/frames');

async function ok(method, path, body, status = 204) {
  const r = await f.admin(method, path, body);
  assert.strictEqual(r.status, status, `${method} ${path} -> HTTP ${r.status} ${r.text}`);
  return r;
}

async function freshNamespace(tag) {
  const ns = `public/${f.uniqueName(tag)}`;
  await ok('PUT', `/admin/v2/namespaces/${ns}`);
  return ns;
}

// A fresh namespace with limit `name` (an admin path segment) set to value, read back.
async function limitedNamespace(tag, name, value) {
  const ns = await freshNamespace(tag);
  const path = `/admin/v2/namespaces/${ns}/${name}`;
  await ok('POST', path, String(value));
  const r = await ok('GET', path, undefined, 200);
  assert.strictEqual(r.text.trim(), String(value));
  return { ns, path };
}

// Subscribes `c` expecting a refusal: { err, codes, texts } (what the broker's ERRORs held).
async function expectRefused(c) {
  const codes = [];
  const texts = [];
  c._client.getResponseEvents().on('error', ({ command }) => {
    codes.push(command.error);
    texts.push(command.message);
  });
  const err = await f.withTimeout(c.subscribe().then(() => null, (e) => e), f.OP_TIMEOUT_MS,
    'the refused subscribe() to settle');
  return { err, codes, texts };
}

test('maxProducersPerTopic: the producer over the limit is refused with Pulsar\'s text, '
  + 'and admitted once the policy is removed', { timeout: 60000 },
  () => f.withScope('limit-producers', async (s) => {
    const { ns, path } = await limitedNamespace('limp', 'maxProducersPerTopic', 2);
    const topic = `persistent://${ns}/t`;
    await s.producer(topic);
    const p2 = await s.producer(topic);
    const err = await f.withTimeout(s.producer(topic, { sendTimeoutMs: 5000 }).then(() => null, (e) => e),
      f.OP_TIMEOUT_MS, 'the third producer to settle');
    assert.ok(err, 'a third producer must be refused with maxProducersPerTopic=2');
    assert.match(String(err.message), /Topic reached max producers limit/);
    // room again once one goes
    await s.closeOne(p2);
    await s.producer(topic);
    await ok('DELETE', path);
    await ok('GET', path, undefined, 204);
    await s.producer(topic);
  }));

test('maxConsumersPerSubscription, maxConsumersPerTopic: ConsumerBusy with Pulsar\'s texts; '
  + 'maxSubscriptionsPerTopic: NotAllowedError for a new subscription', { timeout: 60000 },
  () => f.withScope('limit-consumers', async (s) => {
    const ns = await freshNamespace('limc');
    await ok('POST', `/admin/v2/namespaces/${ns}/maxConsumersPerSubscription`, '1');
    await ok('POST', `/admin/v2/namespaces/${ns}/maxConsumersPerTopic`, '2');
    await ok('POST', `/admin/v2/namespaces/${ns}/maxSubscriptionsPerTopic`, '3');
    const pol = await ok('GET', `/admin/v2/namespaces/${ns}`, undefined, 200);
    assert.strictEqual(pol.json.max_consumers_per_subscription, 1);
    assert.strictEqual(pol.json.max_consumers_per_topic, 2);
    assert.strictEqual(pol.json.max_subscriptions_per_topic, 3);
    const topic = `persistent://${ns}/t`;
    const shared = f.SUB_TYPES.SHARED;
    await s.consumer({ topic, subscription: 'a', subType: shared });
    let r = await expectRefused(s.newConsumer({ topic, subscription: 'a', subType: shared }));
    assert.ok(r.err, 'a second consumer on a subscription limited to 1 must be refused');
    assert.deepStrictEqual(r.codes, [SERVER_ERROR.ConsumerBusy]);
    assert.deepStrictEqual(r.texts, ['Subscription reached max consumers limit']);
    await s.consumer({ topic, subscription: 'b', subType: shared });
    r = await expectRefused(s.newConsumer({ topic, subscription: 'c', subType: shared }));
    assert.deepStrictEqual(r.codes, [SERVER_ERROR.ConsumerBusy]);
    assert.deepStrictEqual(r.texts, ['Topic reached max consumers limit']);
    // subscriptions: a, b and a third (made by admin) are the limit of 3
    await ok('PUT', `/admin/v2/persistent/${ns}/t/subscription/c`, undefined);
    await ok('POST', `/admin/v2/namespaces/${ns}/maxConsumersPerTopic`, '0');
    r = await expectRefused(s.newConsumer({ topic, subscription: 'd', subType: shared }));
    assert.deepStrictEqual(r.codes, [SERVER_ERROR.NotAllowedError]);
    assert.deepStrictEqual(r.texts,
      [`Exceed the maximum number of subscriptions of the topic: ${topic}`]);
    await s.consumer({ topic, subscription: 'c', subType: shared }); // an existing one is fine
  }));

test('maxTopicsPerNamespace: a producer that would create one topic too many gets '
  + 'NotAllowedError with Pulsar\'s text; topics that exist stay usable', { timeout: 60000 },
  () => f.withScope('limit-topics', async (s) => {
    const { ns, path } = await limitedNamespace('limt', 'maxTopicsPerNamespace', 2);
    await s.producer(`persistent://${ns}/a`);
    await s.producer(`persistent://${ns}/b`);
    const third = s.newConsumer({ topic: `persistent://${ns}/c`, subscription: 'x' });
    const r = await expectRefused(third);
    assert.ok(r.err, 'a third topic must be refused with maxTopicsPerNamespace=2');
    assert.deepStrictEqual(r.codes, [SERVER_ERROR.NotAllowedError]);
    assert.deepStrictEqual(r.texts, ['Exceed maximum number of topics in namespace.']);
    const list = await ok('GET', `/admin/v2/namespaces/${ns}/topics`, undefined, 200);
    assert.deepStrictEqual(list.json.sort(), [`persistent://${ns}/a`, `persistent://${ns}/b`]);
    await s.producer(`persistent://${ns}/a`); // an existing topic is fine
    await ok('DELETE', path);
    await s.producer(`persistent://${ns}/c`);
  }));
