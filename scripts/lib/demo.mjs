// Proves the running stack end to end with the official SDK: two users register and log in
// through the API, one creates a chat and adds the other, who connects to the hub with the
// API's connection token and subscribes to chat:<id> (the hub asks the API's subscribe
// proxy). A message sent over HTTP goes API → Kafka → hub → the SDK, and sink → DynamoDB →
// the API's history page.
// Usage: node demo.mjs API_URL HUB_PORT
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { Centrifuge } = require('centrifuge');
const WebSocket = require('ws');

const [api, hubPort] = process.argv.slice(2);
const fail = (m) => {
  console.error(`demo: ${m}`);
  process.exit(1);
};
const call = async (method, path, token, body, headers = {}) => {
  const r = await fetch(`${api}${path}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body ? { 'content-type': 'application/json' } : {}),
      ...headers,
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
};
const must = async (want, ...args) => {
  const r = await call(...args);
  if (r.status !== want) fail(`${args[0]} ${args[1]} -> ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
};
const user = async (name) => {
  const u = await must(201, 'POST', '/auth/register', null, { username: name, password: 'demo-password' });
  const t = await must(200, 'POST', '/auth/login', null, { username: name, password: 'demo-password' });
  return { id: u.id, token: t.access_token };
};

const run = Math.random().toString(36).slice(2, 8);
const ann = await user(`ann_${run}`);
const bob = await user(`bob_${run}`);
const chat = await must(201, 'POST', '/chats', ann.token, { title: 'demo' });
await must(201, 'POST', `/chats/${chat.id}/members`, ann.token, { user_id: bob.id });
console.log(`demo: ann_${run} created chat ${chat.id} and added bob_${run}`);

const { token } = await must(200, 'POST', '/hub/connection-token', bob.token);
const client = new Centrifuge(`ws://127.0.0.1:${hubPort}/connection/websocket`, { websocket: WebSocket, token });
const sub = client.newSubscription(`chat:${chat.id}`);
const timer = setTimeout(() => fail('no publication within 15 s'), 15000);
const received = new Promise((resolve) => {
  sub.on('publication', (ctx) => {
    if (ctx.data.type === 'message.created') resolve(ctx.data);
  });
});
client.connect();
sub.subscribe();
await sub.ready(5000);
console.log(`demo: bob_${run} subscribed to chat:${chat.id} (allowed by the API's subscribe proxy)`);

const sent = await must(201, 'POST', `/chats/${chat.id}/messages`, ann.token, { text: 'hello from scripts/up' },
  { 'Idempotency-Key': `demo-${run}` });
const live = await received;
clearTimeout(timer);
if (live.data.message_id !== sent.message_id) fail(`received ${JSON.stringify(live)}`);
console.log(`demo: SDK received "${live.data.text}" from ${live.data.author.name} live through Kafka`);
client.disconnect();

for (let i = 0; i < 150; i++) {
  const page = await must(200, 'GET', `/chats/${chat.id}/messages?limit=10`, bob.token);
  if (page.messages.some((m) => m.message_id === sent.message_id)) {
    console.log(`demo: the sink stored it; history shows ${page.messages.length} message(s), newest "${page.messages[0].text}"`);
    process.exit(0);
  }
  await new Promise((r) => setTimeout(r, 100));
}
fail('the message did not reach history within 15 s (see .run/logs/sink.log)');
