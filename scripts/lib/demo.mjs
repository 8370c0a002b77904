// Proves a running hub works: the official SDK connects with a JWT, subscribes to a chat
// channel, and receives a message published through the server API.
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
const timer = setTimeout(() => {
  console.error('demo: no publication within 10 s');
  process.exit(1);
}, 10000);
const sub = client.newSubscription('chat:demo');
sub.on('publication', (ctx) => {
  console.log(`demo: SDK received ${JSON.stringify(ctx.data)} on chat:demo (offset ${ctx.offset})`);
  clearTimeout(timer);
  client.disconnect();
});
client.connect();
sub.subscribe();
await sub.ready(5000);
const r = await fetch(`http://127.0.0.1:${port}/api/publish`, {
  method: 'POST',
  headers: { 'X-API-Key': config.http_api.key },
  body: JSON.stringify({ channel: 'chat:demo', data: { text: 'hello from scripts/up' } }),
});
console.log(`demo: server API publish -> ${await r.text()}`);
