// The unidirectional transports with no SDK at all: a plain HTTP reader of uni_sse (what a
// browser's EventSource does: GET with cf_connect), of uni_http_stream (POST, one JSON per
// line, what curl shows) and the ws package on uni_websocket. Each follows the channels its
// token names, and a reconnect with the last offset and epoch recovers what it missed.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { jwt, once, pushes, startHub } from './harness.mjs';

let hub;
before(async () => {
  hub = await startHub();
});
after(async () => {
  await hub.stop();
});

function open(kind, connect, signal) {
  if (kind === 'uni_sse') {
    const url = new URL(`${hub.base}/connection/uni_sse`);
    url.searchParams.set('cf_connect', JSON.stringify(connect));
    return fetch(url, { signal, headers: { Accept: 'text/event-stream' } });
  }
  return fetch(`${hub.base}/connection/uni_http_stream`, { method: 'POST', body: JSON.stringify(connect), signal });
}

// Takes pushes until `want` publications came (pings skipped); returns the connect push too.
async function follow(kind, connect, want, onConnected = async () => {}) {
  const controller = new AbortController();
  const response = await open(kind, connect, controller.signal);
  assert.equal(response.status, 200);
  let connected;
  const pubs = [];
  const timer = setTimeout(() => controller.abort(), 10000);
  try {
    for await (const push of pushes(response, kind === 'uni_sse')) {
      if (push.connect) {
        connected = push.connect;
        await onConnected(connected);
      } else if (push.pub) {
        assert.ok(push.channel.startsWith('chat:uni-'), push.channel);
        pubs.push(push.pub);
      }
      if (pubs.length >= want) break;
    }
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
  return { connected, pubs };
}

for (const kind of ['uni_sse', 'uni_http_stream']) {
  test(`${kind}: a plain HTTP reader follows its channels and recovers after a reconnect`, async () => {
    const channel = 'chat:uni-' + kind;
    const token = jwt({ sub: 'uni-' + kind, channels: [channel] });
    const first = await follow(kind, { token }, 1, async () => {
      await hub.api('publish', { channel, data: { n: 1 } });
    });
    assert.ok(first.connected.client.length > 10);
    const sub = first.connected.subs[channel];
    assert.ok(sub.recoverable && sub.epoch, `positioned: ${JSON.stringify(sub)}`);
    assert.deepEqual(first.pubs.map((p) => [p.data.n, p.offset]), [[1, 1]]);

    // Away: two publications it must get back on reconnect, in order, then a live one.
    await hub.api('publish', { channel, data: { n: 2 } });
    await hub.api('publish', { channel, data: { n: 3 } });
    const subs = { [channel]: { recover: true, offset: 1, epoch: sub.epoch } };
    const second = await follow(kind, { token, subs }, 1, async () => {
      await hub.api('publish', { channel, data: { n: 4 } });
    });
    const recovered = second.connected.subs[channel];
    assert.equal(recovered.recovered, true);
    assert.deepEqual(recovered.publications.map((p) => p.data.n), [2, 3]);
    assert.deepEqual(second.pubs.map((p) => [p.data.n, p.offset]), [[4, 4]], 'live after the recovered ones');
  });
}

test('uni_sse and uni_http_stream refuse a forged token with a disconnect push', async () => {
  for (const kind of ['uni_sse', 'uni_http_stream']) {
    const response = await open(kind, { token: jwt({ sub: 'mallory' }, 'not-the-secret') });
    assert.equal(response.status, 200);
    const all = [];
    for await (const push of pushes(response, kind === 'uni_sse')) all.push(push);
    assert.deepEqual(all, [{ disconnect: { code: 3500, reason: 'invalid token' } }], kind);
  }
  const bad = await fetch(`${hub.base}/connection/uni_http_stream`, { method: 'POST', body: '{not json' });
  assert.equal(bad.status, 400);
  const big = await fetch(`${hub.base}/connection/uni_http_stream`, {
    method: 'POST',
    body: JSON.stringify({ token: 'x'.repeat(70000) }),
  });
  assert.equal(big.status, 413, 'over uni_http_stream.max_request_body_size');
});

test('uni_websocket: connect as the first message, one push per message, server disconnect', async () => {
  const channel = 'chat:uni-ws';
  const ws = new WebSocket(`ws://127.0.0.1:${hub.port}/connection/uni_websocket`);
  const messages = [];
  ws.on('message', (m) => messages.push(JSON.parse(m.toString())));
  await once(ws, 'open');
  ws.send(JSON.stringify({ token: jwt({ sub: 'uni-ws', channels: [channel] }) }));
  while (!messages.some((m) => m.connect)) await new Promise((r) => setTimeout(r, 20));
  await hub.api('publish', { channel, data: { n: 1 } });
  while (!messages.some((m) => m.pub)) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(messages.find((m) => m.pub), { channel, pub: { data: { n: 1 }, offset: 1 } });
  const closed = new Promise((r) => ws.once('close', (code) => r(code)));
  await hub.api('disconnect', { user: 'uni-ws' });
  assert.equal(await closed, 3503);
});

test('a reader that goes away leaves nothing behind on the hub', async () => {
  const token = jwt({ sub: 'uni-leaver', channels: ['chat:uni-leave'] });
  await follow('uni_http_stream', { token }, 1, async () => {
    await hub.api('publish', { channel: 'chat:uni-leave', data: { n: 1 } });
  });
  // The reader aborted its request: the session must end and release the client.
  let clients;
  for (let i = 0; i < 100; i++) {
    const info = await hub.api('info', {});
    clients = info.result.nodes[0].num_clients;
    if (clients === 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(clients, 0);
});
