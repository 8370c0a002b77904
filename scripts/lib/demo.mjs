// Proves a running hub works: the official SDK connects with a JWT, subscribes to a chat
// channel, and receives a message published through the server API, then a chat event
// produced to Kafka (when given `chorus-loadtest`, the brokers and the topic).
// Usage: node demo.mjs CONFIG [LOADTEST_BIN BROKERS TOPIC]
import { spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { Centrifuge } = require('centrifuge');
const WebSocket = require('ws');

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const port = config.http_server.port;
const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
const head = b64({ alg: 'HS256', typ: 'JWT' });
const body = b64({ sub: 'demo-user', exp: Math.floor(Date.now() / 1000) + 300 });
const sig = createHmac('sha256', config.client.token.hmac_secret_key).update(`${head}.${body}`).digest('base64url');

const client = new Centrifuge(`ws://127.0.0.1:${port}/connection/websocket`, { websocket: WebSocket, token: `${head}.${body}.${sig}` });
const [loadtest, brokers, topic] = process.argv.slice(3);
const timer = setTimeout(() => {
  console.error('demo: no publication within 15 s');
  process.exit(1);
}, 15000);
const sub = client.newSubscription('chat:demo');
sub.on('publication', (ctx) => {
  console.log(`demo: SDK received ${JSON.stringify(ctx.data)} on chat:demo (offset ${ctx.offset})`);
  clearTimeout(timer);
  client.disconnect();
});
client.connect();
sub.subscribe();
await sub.ready(5000);
const api = async (method, params) => {
  const r = await fetch(`http://127.0.0.1:${port}/api/${method}`, {
    method: 'POST',
    headers: { 'X-API-Key': config.http_api.key },
    body: JSON.stringify(params),
  });
  return r.text();
};
if (!loadtest) {
  console.log(`demo: server API publish -> ${await api('publish', { channel: 'chat:demo', data: { text: 'hello from scripts/up' } })}`);
} else {
  // Chat channels are fed by Kafka, so the API is shown with a read, and the message goes
  // through Kafka.
  const info = JSON.parse(await api('info', {}));
  console.log(`demo: server API info -> ${info.result.nodes.length} node(s)`);
}
if (loadtest) {
  // A chat event as the API will produce it: ULID ids, keyed by chat id.
  const ulid = () => {
    const a = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
    let t = Date.now();
    let out = '';
    for (let i = 0; i < 10; i++) {
      out = a[t % 32] + out;
      t = Math.floor(t / 32);
    }
    for (let i = 0; i < 16; i++) out += a[Math.floor(Math.random() * 32)];
    return out;
  };
  const event = {
    v: 1, event_id: ulid(), chat_id: 'demo', ts: Date.now(), type: 'message.created',
    data: { message_id: ulid(), author: { id: 'demo-user' }, text: 'hello through Kafka' },
  };
  const p = spawnSync(loadtest, ['produce', '--brokers', brokers, '--topic', topic, '--key', 'demo'], {
    input: `${JSON.stringify(event)}\n`,
    encoding: 'utf8',
  });
  if (p.status !== 0) {
    console.error(`demo: producing to Kafka failed: ${p.stderr}`);
    process.exit(1);
  }
  console.log(`demo: produced a chat event to Kafka topic ${topic}`);
}
