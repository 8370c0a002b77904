// The official Centrifugo JS SDK (centrifuge 5.x under Node with ws) against chorus-hub,
// started from a Centrifugo-style config file. Nothing here is Chorus-specific client code.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { PROTOCOL, TRANSPORT, WebSocket, client, data, jwt, now, once, payload, sleep, startHub } from './harness.mjs';

let hub;
before(async () => {
  hub = await startHub();
});
after(async () => {
  await hub.stop();
});

test('connects with a JWT', async () => {
  const c = client(hub, { token: jwt({ sub: 'alice', exp: now() + 600 }) });
  const connected = once(c, 'connected');
  c.connect();
  const ctx = await connected;
  assert.ok(ctx.client.length > 10);
  assert.equal(ctx.transport, TRANSPORT);
  c.disconnect();
});

test('a forged token is refused without a reconnect loop', async () => {
  let connecting = 0;
  const c = client(hub, { token: jwt({ sub: 'mallory' }, 'not-the-secret') });
  c.on('connecting', () => connecting++);
  const disconnected = once(c, 'disconnected');
  c.connect();
  const ctx = await disconnected;
  assert.equal(ctx.code, 3500);
  await sleep(1500);
  assert.equal(c.state, 'disconnected');
  assert.equal(connecting, 1, 'only the first attempt');
});

test('an expired token without getToken ends unauthorized, not in a loop', async () => {
  const c = client(hub, { token: jwt({ sub: 'bob', exp: now() - 10 }) });
  const disconnected = once(c, 'disconnected');
  c.on('error', () => {});
  c.connect();
  const ctx = await disconnected;
  assert.equal(ctx.code, 1, 'unauthorized');
  await sleep(1500);
  assert.equal(c.state, 'disconnected');
});

test('an expired token is refreshed through getToken', async () => {
  let calls = 0;
  const c = client(hub, {
    token: jwt({ sub: 'carol', exp: now() - 10 }),
    getToken: async () => {
      calls++;
      return jwt({ sub: 'carol', exp: now() + 600 });
    },
  });
  c.on('error', () => {});
  const connected = once(c, 'connected');
  c.connect();
  await connected;
  assert.equal(calls, 1);
  c.disconnect();
});

test('subscribe, then a server API publish reaches the client', async () => {
  const c = client(hub, { token: jwt({ sub: 'dave' }) });
  c.connect();
  const sub = c.newSubscription('news');
  const subscribed = once(sub, 'subscribed');
  sub.subscribe();
  await subscribed;
  const got = once(sub, 'publication');
  const res = await hub.api('publish', { channel: 'news', data: { text: 'hello' } });
  assert.deepEqual(res, { result: {} });
  const ctx = await got;
  assert.deepEqual(data(ctx), { text: 'hello' });
  c.disconnect();
});

test('client publish is allowed or denied per namespace', async () => {
  const c = client(hub, { token: jwt({ sub: 'erin' }) });
  c.connect();
  const chat = c.newSubscription('chat:pub');
  const ro = c.newSubscription('readonly:pub');
  chat.subscribe();
  ro.subscribe();
  await Promise.all([chat.ready(5000), ro.ready(5000)]);
  const own = once(chat, 'publication');
  await chat.publish(payload({ m: 1 }));
  assert.deepEqual(data(await own), { m: 1 });
  await assert.rejects(ro.publish(payload({ m: 2 })), (e) => e.code === 103);
  c.disconnect();
});

test('after a forced reconnect, recovery delivers the missed publications', async () => {
  const c = client(hub, { token: jwt({ sub: 'frank' }), minReconnectDelay: 1500, maxReconnectDelay: 2000 });
  const sub = c.newSubscription('chat:recovery');
  const seen = [];
  sub.on('publication', (ctx) => seen.push(data(ctx).n));
  c.connect();
  sub.subscribe();
  await sub.ready(5000);
  await hub.api('publish', { channel: 'chat:recovery', data: { n: 1 } });
  while (!seen.includes(1)) await sleep(20);

  const resubscribed = once(sub, 'subscribed', (ctx) => ctx.wasRecovering);
  const dropped = once(c, 'connecting', (ctx) => ctx.code === 3011);
  await hub.api('disconnect', { user: 'frank', disconnect: { code: 3011, reason: 'force reconnect' } });
  await dropped;
  // Published while the client is away (it waits at least 1.5 s before reconnecting).
  await hub.api('publish', { channel: 'chat:recovery', data: { n: 2 } });
  await hub.api('publish', { channel: 'chat:recovery', data: { n: 3 } });
  const ctx = await resubscribed;
  assert.equal(ctx.recovered, true);
  while (seen.length < 3) await sleep(20);
  await sleep(200);
  assert.deepEqual(seen, [1, 2, 3], 'no gap, no duplicate');
  c.disconnect();
});

test('presence and join/leave', async () => {
  const a = client(hub, { token: jwt({ sub: 'gina' }) });
  const b = client(hub, { token: jwt({ sub: 'hank' }) });
  a.connect();
  b.connect();
  const subA = a.newSubscription('chat:room');
  subA.subscribe();
  await subA.ready(5000);
  const joined = once(subA, 'join', (ctx) => ctx.info.user === 'hank');
  const subB = b.newSubscription('chat:room');
  subB.subscribe();
  await subB.ready(5000);
  await joined;
  const presence = await subA.presence();
  assert.deepEqual(Object.values(presence.clients).map((i) => i.user).sort(), ['gina', 'hank']);
  const stats = await subA.presenceStats();
  assert.deepEqual([stats.numClients, stats.numUsers], [2, 2]);
  const left = once(subA, 'leave', (ctx) => ctx.info.user === 'hank');
  b.disconnect();
  await left;
  a.disconnect();
});

test('server-side unsubscribe and disconnect', async () => {
  const c = client(hub, { token: jwt({ sub: 'ivan' }) });
  c.connect();
  const sub = c.newSubscription('news');
  sub.subscribe();
  await sub.ready(5000);
  const unsubscribed = once(sub, 'unsubscribed');
  await hub.api('unsubscribe', { user: 'ivan', channel: 'news' });
  assert.equal((await unsubscribed).code, 2000);

  const disconnected = once(c, 'disconnected');
  await hub.api('disconnect', { user: 'ivan' });
  assert.equal((await disconnected).code, 3503);
});

test('server-side subscriptions from the token channels claim', async () => {
  const c = client(hub, { token: jwt({ sub: 'jane', channels: ['chat:server'] }) });
  const subscribed = once(c, 'subscribed', (ctx) => ctx.channel === 'chat:server');
  c.connect();
  await subscribed;
  const got = once(c, 'publication', (ctx) => ctx.channel === 'chat:server');
  await hub.api('publish', { channel: 'chat:server', data: { s: 1 } });
  assert.deepEqual(data(await got), { s: 1 });
  c.disconnect();
});

// A WebSocket frame limit: an emulated client's commands are HTTP requests, whose limit
// (emulation.max_request_body_size, 413) emulation.test.mjs checks.
test('an oversized message gets the message-size-limit error', { skip: TRANSPORT !== 'websocket' }, async () => {
  const c = client(hub, { token: jwt({ sub: 'kate' }) });
  c.connect();
  const sub = c.newSubscription('chat:big');
  sub.subscribe();
  await sub.ready(5000);
  const disconnected = once(c, 'disconnected');
  sub.publish(payload({ blob: 'x'.repeat(10000) })).catch(() => {});
  const ctx = await disconnected;
  assert.equal(ctx.code, 3, 'messageSizeLimit: the hub closed with 1009');
  assert.equal(c.state, 'disconnected');
});

test('delta compression: fossil deltas decode to the published documents', async () => {
  const c = client(hub, { token: jwt({ sub: 'delta-user' }) });
  c.connect();
  const sub = c.newSubscription('delta:doc', { delta: 'fossil' });
  const got = [];
  sub.on('publication', (ctx) => got.push(data(ctx)));
  sub.subscribe();
  await sub.ready(5000);
  // What the SDK saw on the wire, in JSON: deltas after the first whole document.
  let raw;
  if (PROTOCOL === 'json') {
    raw = new WebSocket(hub.url);
    raw.frames = [];
    raw.on('message', (m) => raw.frames.push(...m.toString().split('\n').filter(Boolean).map((l) => JSON.parse(l))));
    await once(raw, 'open');
    raw.send(`${JSON.stringify({ id: 1, connect: { token: jwt({ sub: 'delta-raw' }) } })}\n${JSON.stringify({ id: 2, subscribe: { channel: 'delta:doc', delta: 'fossil' } })}`);
    while (!raw.frames.some((f) => f.id === 2)) await sleep(20);
    assert.equal(raw.frames.find((f) => f.id === 2).subscribe.delta, true, 'negotiated');
  }
  const docs = [1, 2, 3, 4].map((v) => ({ title: 'a slowly changing document', body: 'x'.repeat(300), version: v }));
  for (const d of docs) await hub.api('publish', { channel: 'delta:doc', data: d });
  while (got.length < docs.length) await sleep(20);
  assert.deepEqual(got, docs, 'every delta applied to the right base');
  if (raw) {
    while (raw.frames.filter((f) => f.push?.pub).length < docs.length) await sleep(20);
    const pubs = raw.frames.filter((f) => f.push?.pub).map((f) => f.push.pub);
    assert.deepEqual(pubs.map((p) => Boolean(p.delta)), [false, true, true, true]);
    assert.ok(pubs[1].data.length < 60, `a delta, not the document: ${pubs[1].data}`);
    raw.close();
  }
  // A delta type the namespace does not allow is refused.
  const other = c.newSubscription('chat:nodelta', { delta: 'fossil' });
  const refused = once(other, 'unsubscribed');
  other.subscribe();
  assert.equal((await refused).code, 107);
  c.disconnect();
});

test('a tags filter: only matching publications, live and recovered, and only where allowed', async () => {
  const c = client(hub, { token: jwt({ sub: 'tags-user' }), minReconnectDelay: 1500, maxReconnectDelay: 2000 });
  c.connect();
  const onlyAlerts = { key: 'kind', cmp: 'eq', val: 'alert' };
  const sub = c.newSubscription('tags:feed', { tagsFilter: onlyAlerts });
  const seen = [];
  sub.on('publication', (ctx) => seen.push(data(ctx).n));
  sub.subscribe();
  await sub.ready(5000);
  const publish = (n, kind) => hub.api('publish', { channel: 'tags:feed', data: { n }, tags: { kind } });
  await publish(1, 'alert');
  await publish(2, 'info');
  await publish(3, 'alert');
  while (seen.length < 2) await sleep(20);
  // Missed while away: recovery passes the same filter, and no skipped offset is a gap.
  const resubscribed = once(sub, 'subscribed', (ctx) => ctx.wasRecovering);
  const dropped = once(c, 'connecting', (ctx) => ctx.code === 3011);
  await hub.api('disconnect', { user: 'tags-user', disconnect: { code: 3011, reason: 'force reconnect' } });
  await dropped;
  await publish(4, 'info');
  await publish(5, 'alert');
  const ctx = await resubscribed;
  assert.equal(ctx.recovered, true);
  await publish(6, 'info');
  await publish(7, 'alert');
  while (seen.length < 4) await sleep(20);
  await sleep(200);
  assert.deepEqual(seen, [1, 3, 5, 7]);
  // A namespace without allow_tags_filter, and a malformed filter, are refused (107).
  for (const [channel, tagsFilter] of [['chat:nofilter', onlyAlerts], ['tags:bad', { op: 'xor', nodes: [] }]]) {
    const other = c.newSubscription(channel, { tagsFilter });
    const refused = once(other, 'unsubscribed');
    other.subscribe();
    assert.equal((await refused).code, 107, channel);
  }
  c.disconnect();
});

for (const ns of ['docs', 'hdocs']) {
  test(`delta compression on request (${ns}): the publish delta flag where the namespace has no delta_publish`, async () => {
    const c = client(hub, { token: jwt({ sub: 'delta-flag-user' }) });
    c.connect();
    const sub = c.newSubscription(`${ns}:one`, { delta: 'fossil' });
    const got = [];
    sub.on('publication', (ctx) => got.push(data(ctx)));
    sub.subscribe();
    await sub.ready(5000);
    let raw;
    if (PROTOCOL === 'json' && TRANSPORT === 'websocket') {
      raw = new WebSocket(hub.url);
      raw.frames = [];
      raw.on('message', (m) => raw.frames.push(...m.toString().split('\n').filter(Boolean).map((l) => JSON.parse(l))));
      await once(raw, 'open');
      raw.send(`${JSON.stringify({ id: 1, connect: { token: jwt({ sub: 'delta-flag-raw' }) } })}\n${JSON.stringify({ id: 2, subscribe: { channel: `${ns}:one`, delta: 'fossil' } })}`);
      while (!raw.frames.some((f) => f.id === 2)) await sleep(20);
    }
    const docs = [1, 2, 3, 4].map((v) => ({ title: 'a slowly changing document', body: 'y'.repeat(300), version: v }));
    const asDelta = [false, true, false, true];
    for (const [i, d] of docs.entries()) await hub.api('publish', { channel: `${ns}:one`, data: d, delta: asDelta[i] });
    while (got.length < docs.length) await sleep(20);
    assert.deepEqual(got, docs, 'every publication decoded, deltas against the right base');
    if (raw) {
      while (raw.frames.filter((f) => f.push?.pub).length < docs.length) await sleep(20);
      const pubs = raw.frames.filter((f) => f.push?.pub).map((f) => f.push.pub);
      assert.deepEqual(pubs.map((p) => Boolean(p.delta)), asDelta, 'a delta exactly where the publisher asked');
      raw.close();
    }
    c.disconnect();
  });
}
