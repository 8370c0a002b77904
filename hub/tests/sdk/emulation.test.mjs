// Bidirectional emulation at the wire, with no SDK: a streaming response carries the server's
// frames, `/emulation` requests the client's commands. What an attacker could try: another
// client's id as the session (presence shows client ids), a made-up session or node, a
// malformed or oversized body. On the Redis engine (CHORUS_SDK_REDIS) the official SDK runs
// with its stream on one hub node and its commands sent to another.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { client, jwt, once, pushes, redisAddresses, sleep, startHub } from './harness.mjs';

let hub;
before(async () => {
  hub = await startHub({ emulation: { max_request_body_size: 4096 } });
});
after(async () => {
  await hub.stop();
});

// Opens an emulated connection with raw HTTP; `next()` yields its frames in order.
async function openStream(target, kind, connect) {
  const controller = new AbortController();
  const first = JSON.stringify({ id: 1, connect });
  const response =
    kind === 'sse'
      ? await fetch(`${target.base}/connection/sse?cf_connect=${encodeURIComponent(first)}`, { signal: controller.signal })
      : await fetch(`${target.base}/connection/http_stream`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: first,
          signal: controller.signal,
        });
  assert.equal(response.status, 200);
  const frames = pushes(response, kind === 'sse');
  const next = async (pred = () => true) => {
    for (;;) {
      const { value, done } = await Promise.race([
        frames.next(),
        sleep(10000).then(() => {
          throw new Error('no frame within 10 s');
        }),
      ]);
      if (done) return undefined;
      if (pred(value)) return value;
    }
  };
  const connected = await next((f) => f.id === 1);
  return { connected: connected.connect, next, close: () => controller.abort() };
}

async function emulate(target, body, contentType = 'application/json') {
  const r = await fetch(`${target.base}/emulation`, {
    method: 'POST',
    headers: { 'Content-Type': contentType },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return r.status;
}

for (const kind of ['http_stream', 'sse']) {
  test(`${kind}: commands reach the session its connect result named, and nothing else does`, async () => {
    const s = await openStream(hub, kind, { token: jwt({ sub: `emu-${kind}` }) });
    const { session, node, client: clientId } = s.connected;
    assert.ok(session.length >= 32, 'a session id');
    assert.notEqual(session, clientId, 'the session id is not the client id presence shows');
    assert.ok(node.length > 0, 'the node holding the stream');
    const cmd = (id, c) => JSON.stringify({ id, ...c });

    // Refused: another client's id, a made-up session, a made-up node, garbage, too large.
    const subscribe = cmd(2, { subscribe: { channel: `chat:emu-${kind}` } });
    assert.equal(await emulate(hub, { session: clientId, node, data: subscribe }), 404);
    assert.equal(await emulate(hub, { session: 'no-such-session', node, data: subscribe }), 404);
    assert.equal(await emulate(hub, { session: 'no-such-session', node: 'no-such-node', data: subscribe }), 404);
    assert.equal(await emulate(hub, '{"session":'), 400);
    assert.equal(await emulate(hub, { session, node, data: { id: 2 } }), 400, 'data is the commands as a string');
    assert.equal(await emulate(hub, [1, 2, 3], 'application/octet-stream'), 400, 'not a Protobuf EmulationRequest');
    assert.equal(await emulate(hub, { session, node, data: 'x'.repeat(5000) }), 413);

    // Accepted: the subscribe reply, then a publication, arrive on the stream, in order.
    assert.equal(await emulate(hub, { session, node, data: subscribe }), 204);
    const reply = await s.next((f) => f.id === 2);
    assert.ok(reply.subscribe, `a subscribe reply: ${JSON.stringify(reply)}`);
    await hub.api('publish', { channel: `chat:emu-${kind}`, data: { n: 1 } });
    const pub = await s.next((f) => f.push?.pub);
    assert.deepEqual([pub.push.channel, pub.push.pub.data], [`chat:emu-${kind}`, { n: 1 }]);
    // Two commands in one request (how the SDK batches), answered in order.
    const two = `${cmd(3, { presence_stats: { channel: `chat:emu-${kind}` } })}\n${cmd(4, { history: { channel: `chat:emu-${kind}`, limit: 10 } })}`;
    assert.equal(await emulate(hub, { session, node, data: two }), 204);
    const stats = await s.next((f) => f.id === 3);
    assert.deepEqual([stats.presence_stats.num_clients, stats.presence_stats.num_users], [1, 1]);
    const history = await s.next((f) => f.id === 4);
    assert.deepEqual(history.history.publications.map((p) => p.data), [{ n: 1 }]);

    // The server ends it with a disconnect push, and the stream ends.
    await hub.api('disconnect', { user: `emu-${kind}` });
    const end = await s.next((f) => f.push?.disconnect);
    assert.deepEqual(end.push.disconnect, { code: 3503, reason: 'force disconnect', reconnect: false });
    assert.equal(await s.next(), undefined, 'nothing after the disconnect push');
    // The session is gone with its stream.
    assert.equal(await emulate(hub, { session, node, data: subscribe }), 404);
  });
}

// The hub pings every 5 s and waits 3 s for the pong (the harness's config). An emulated
// client pongs through /emulation: one that does is kept past several pings, one that does
// not is closed with 3012 (no pong), both told by a disconnect push.
test('pongs come through /emulation, and a client that never pongs is closed', async () => {
  const keep = async () => {
    const s = await openStream(hub, 'http_stream', { token: jwt({ sub: 'emu-pong' }) });
    const { session, node } = s.connected;
    for (let pings = 0; pings < 2; pings++) {
      await s.next((f) => Object.keys(f).length === 0);
      assert.equal(await emulate(hub, { session, node, data: '{}' }), 204);
    }
    // Still served: a command after the second ping gets its reply.
    assert.equal(await emulate(hub, { session, node, data: JSON.stringify({ id: 2, subscribe: { channel: 'chat:pong' } }) }), 204);
    assert.ok((await s.next((f) => f.id === 2)).subscribe);
    s.close();
  };
  const silent = async () => {
    const s = await openStream(hub, 'sse', { token: jwt({ sub: 'emu-silent' }) });
    const end = await s.next((f) => f.push?.disconnect);
    assert.deepEqual(end.push.disconnect, { code: 3012, reason: 'no pong', reconnect: true });
  };
  await Promise.all([keep(), silent()]);
});

test('an emulated connection with a bad first command is refused, not left open', async () => {
  const r = await fetch(`${hub.base}/connection/http_stream`, { method: 'POST', body: '' });
  assert.equal(r.status, 400);
  const garbage = await fetch(`${hub.base}/connection/http_stream`, { method: 'POST', body: '{"id":1,' });
  assert.equal(garbage.status, 200);
  const frames = [];
  for await (const f of pushes(garbage, false)) frames.push(f);
  assert.deepEqual(frames, [{ push: { disconnect: { code: 3501, reason: 'bad request', reconnect: false } } }]);
});

// Two hub nodes on one Redis: the SDK's stream on one, its `/emulation` requests to the
// other, which routes them through the engine (a load balancer without sticky sessions).
test('the SDK over http_stream with its commands sent to another node', { skip: !process.env.CHORUS_SDK_REDIS }, async () => {
  const engine = {
    engine: { type: 'redis', redis: { address: redisAddresses(), prefix: `chorus-sdk-emu-${process.pid}` } },
  };
  const a = await startHub(engine);
  const b = await startHub(engine);
  try {
    // Until each node has heard the other's heartbeat.
    for (let i = 0; i < 100; i++) {
      const info = await b.api('info', {});
      if (info.result.nodes.length === 2) break;
      await sleep(100);
    }
    const c = client(a, { token: jwt({ sub: 'emu-cross' }) }, b, 'http_stream');
    c.connect();
    const connected = await once(c, 'connected');
    assert.equal(connected.transport, 'http_stream');
    const sub = c.newSubscription('chat:emu-cross');
    const got = [];
    sub.on('publication', (ctx) => got.push(ctx.data));
    sub.subscribe();
    await sub.ready(5000);
    await sub.publish({ from: 'client' });
    await b.api('publish', { channel: 'chat:emu-cross', data: { from: 'api' } });
    while (got.length < 2) await sleep(20);
    assert.deepEqual(got, [{ from: 'client' }, { from: 'api' }]);
    const presence = await sub.presence();
    assert.deepEqual(Object.values(presence.clients).map((i) => i.user), ['emu-cross']);
    const history = await sub.history({ limit: 10 });
    assert.deepEqual(history.publications.map((p) => p.data), [{ from: 'client' }, { from: 'api' }]);
    c.disconnect();
  } finally {
    await a.stop();
    await b.stop();
  }
});
