// The official SDK receiving what was produced to Kafka: chat events through a real tansu
// broker and the hub's Kafka consumer, including across a hub that is killed mid-stream.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { client, jwt, once, sleep, startHub } from './harness.mjs';
import { chatEvent, producer, startTansu } from './kafka.mjs';

let tansu;
before(async () => {
  tansu = await startTansu();
});
after(async () => {
  await tansu.stop();
});

// History long enough to hold everything a client misses while a hub restarts.
function consumers(topic, group = `sdk-${randomUUID()}`) {
  return {
    channel: {
      namespaces: [
        { name: 'chat', history_size: 1000, history_ttl: '300s', force_recovery: true, allow_subscribe_for_client: true },
      ],
    },
    consumers: [
      {
        enabled: true,
        name: 'chats',
        type: 'kafka',
        kafka: {
          brokers: [tansu.brokers],
          topics: [topic],
          consumer_group: group,
          chat_event_mode: { enabled: true },
        },
      },
    ],
  };
}

test('a chat event produced to Kafka reaches an SDK subscriber intact', async () => {
  const topic = `sdk-chat-${randomUUID()}`;
  tansu.createTopic(topic, 3);
  const hub = await startHub(consumers(topic));
  const c = client(hub, { token: jwt({ sub: 'ada' }) });
  const sub = c.newSubscription('chat:42');
  const got = once(sub, 'publication');
  c.connect();
  sub.subscribe();
  await sub.ready(5000);
  const event = chatEvent('42', 1, 'héllo, wörld ✓ "quoted" \\ back');
  const p = producer(tansu.brokers, topic, '42');
  p.send(JSON.stringify(event));
  await p.close();
  const ctx = await got;
  assert.deepEqual(ctx.data, event);
  assert.ok(Number(ctx.offset) > 0, 'chat events carry a stream position');
  c.disconnect();
  await hub.stop();
});

test('killed mid-stream, the restarted hub lets the SDK recover every event once, in order', async () => {
  const N = 300;
  const topic = `sdk-kill-${randomUUID()}`;
  tansu.createTopic(topic, 2);
  const config = consumers(topic);
  let hub = await startHub(config);
  const c = client(hub, { token: jwt({ sub: 'bob' }), minReconnectDelay: 500, maxReconnectDelay: 1000 });
  const sub = c.newSubscription('chat:k');
  const seen = [];
  const recoveries = [];
  sub.on('publication', (ctx) => seen.push(Number(ctx.data.data.text)));
  sub.on('subscribed', (ctx) => {
    if (ctx.wasRecovering) recoveries.push(ctx.recovered);
  });
  c.connect();
  sub.subscribe();
  await sub.ready(5000);

  const p = producer(tansu.brokers, topic, 'k');
  const producing = (async () => {
    for (let i = 0; i < N; i++) {
      p.send(JSON.stringify(chatEvent('k', i)));
      await sleep(5);
    }
    await p.close();
  })();
  while (seen.length < 100) await sleep(5);
  await hub.kill();
  hub = await startHub(config, hub.port);
  await producing;
  for (let i = 0; i < 400 && seen.length < N; i++) await sleep(50);
  await sleep(300); // a late duplicate would show up here
  assert.deepEqual(recoveries, [true], 'one reconnect, recovered');
  assert.deepEqual(seen, [...Array(N).keys()], 'every event once, in order');
  c.disconnect();
  await hub.stop();
});
