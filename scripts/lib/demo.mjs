// Proves the running stack end to end with the official SDK: two users register and log in
// through the API, one creates a chat and adds the other, who connects to the hub with the
// API's connection token and subscribes to chat:<id> (the hub asks the API's subscribe
// proxy). A message sent over HTTP goes API → Kafka → hub → the SDK, and sink → DynamoDB →
// the API's history page. With VOICE_FILE, a spoken clip is uploaded as a voice message too:
// the SDK receives it, then its transcript from the transcriber's Whisper model. An image is
// uploaded too, and its thumbnail arrives from the image worker.
// Usage: node demo.mjs API_URL HUB_PORT [VOICE_FILE]
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { Centrifuge } = require('centrifuge');
const WebSocket = require('ws');

const [api, hubPort, voiceFile] = process.argv.slice(2);
const fail = (m) => {
  console.error(`demo: ${m}`);
  process.exit(1);
};
const call = async (method, path, token, body, headers = {}) => {
  const form = body instanceof FormData;
  const r = await fetch(`${api}${path}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body && !form ? { 'content-type': 'application/json' } : {}),
      ...headers,
    },
    body: form ? body : body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
};
const must = async (want, ...args) => {
  const r = await call(...args);
  if (r.status !== want) fail(`${args[0]} ${args[1]} -> ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
};
// The same two demo users every run: registered by the first run only, logged in by every
// run, so scripts/up can run any number of times in a row without meeting the API's limit on
// registrations per address.
const user = async (name) => {
  const login = { username: name, password: 'demo-password' };
  let r = await call('POST', '/auth/login', null, login);
  if (r.status === 401) {
    await must(201, 'POST', '/auth/register', null, login);
    r = await call('POST', '/auth/login', null, login);
  }
  if (r.status !== 200) fail(`POST /auth/login -> ${r.status} ${JSON.stringify(r.body)}`);
  const t = r.body;
  const me = await must(200, 'GET', '/me', t.access_token);
  return { id: me.id, token: t.access_token };
};

const ann = await user('demo_ann');
const bob = await user('demo_bob');
const chat = await must(201, 'POST', '/chats', ann.token, { title: 'demo' });
await must(201, 'POST', `/chats/${chat.id}/members`, ann.token, { user_id: bob.id });
console.log(`demo: demo_ann created chat ${chat.id} and added demo_bob`);

const { token } = await must(200, 'POST', '/hub/connection-token', bob.token);
const client = new Centrifuge(`ws://127.0.0.1:${hubPort}/connection/websocket`, { websocket: WebSocket, token });
const sub = client.newSubscription(`chat:${chat.id}`);
// Every publication, and whoever waits for one that matches.
const seen = [];
const waiting = [];
sub.on('publication', (ctx) => {
  seen.push(ctx.data);
  for (const w of waiting.splice(0)) {
    if (!w.check()) waiting.push(w);
  }
});
const publication = (what, match, ms) =>
  new Promise((resolve) => {
    const timer = setTimeout(() => fail(`no ${what} within ${ms / 1000} s`), ms);
    const check = () => {
      const found = seen.find(match);
      if (found) {
        clearTimeout(timer);
        resolve(found);
      }
      return Boolean(found);
    };
    if (!check()) waiting.push({ check });
  });
client.connect();
sub.subscribe();
await sub.ready(5000);
console.log(`demo: demo_bob subscribed to chat:${chat.id} (allowed by the API's subscribe proxy)`);

const sent = await must(201, 'POST', `/chats/${chat.id}/messages`, ann.token, { text: 'hello from scripts/up' },
  { 'Idempotency-Key': `demo-${chat.id}` });
const live = await publication('message', (e) => e.type === 'message.created' && e.data.message_id === sent.message_id, 15000);
console.log(`demo: SDK received "${live.data.text}" from ${live.data.author.name} live through Kafka`);

let voice = null;
if (voiceFile) {
  const fs = await import('node:fs');
  const form = new FormData();
  form.append('file', new Blob([fs.readFileSync(voiceFile)]), 'voice.wav');
  const started = performance.now();
  voice = await must(201, 'POST', `/chats/${chat.id}/voice`, ann.token, form);
  const created = await publication('voice message', (e) => e.type === 'message.created' && e.data.message_id === voice.message_id, 15000);
  const a = created.data.attachment;
  console.log(`demo: SDK received a voice message (${a.mime}, ${(a.duration_ms / 1000).toFixed(1)} s, ${a.size} bytes)`);
  const done = await publication('transcript',
    (e) => (e.type === 'message.transcribed' || e.type === 'message.transcription_failed') && e.data.message_id === voice.message_id, 60000);
  if (done.type !== 'message.transcribed') fail(`transcription failed: ${done.data.reason}`);
  const ms = performance.now() - started;
  console.log(`demo: SDK received its transcript ${Math.round(ms)} ms after the upload began: "${done.data.transcript}"`);
  const media = await fetch(`${api}/media/${a.key}`, { headers: { authorization: `Bearer ${bob.token}`, range: 'bytes=0-3' } });
  if (media.status !== 206) fail(`GET /media/${a.key} -> ${media.status}`);
}

// An image (a PNG drawn here, 1200×800): the SDK receives it, then its thumbnail's event from
// the image worker beside the transcriber, and the thumbnail is fetched like any media.
const png = (w, h) => {
  const zlib = require('node:zlib');
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  const rows = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) rows.set([(x * 255) / w, (y * 255) / h, 128], y * (w * 3 + 1) + 1 + x * 3);
  }
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(rows)), chunk('IEND', Buffer.alloc(0))]);
};
const form = new FormData();
form.append('file', new Blob([png(1200, 800)]), 'picture.png');
const started = performance.now();
const image = await must(201, 'POST', `/chats/${chat.id}/images`, ann.token, form);
await publication('image message', (e) => e.type === 'message.created' && e.data.message_id === image.message_id, 15000);
const thumbed = await publication('thumbnail',
  (e) => (e.type === 'attachment.processed' || e.type === 'attachment.failed') && e.data.message_id === image.message_id, 30000);
if (thumbed.type !== 'attachment.processed') fail(`no thumbnail: ${thumbed.data.reason}`);
const thumb = thumbed.data.thumbnail;
const got = await fetch(`${api}/media/${thumb.key}`, { headers: { authorization: `Bearer ${bob.token}` } });
if (got.status !== 200 || got.headers.get('content-type') !== 'image/jpeg') fail(`GET /media/${thumb.key} -> ${got.status}`);
console.log(`demo: SDK received an image (1200×800 PNG) and ${Math.round(performance.now() - started)} ms after the upload its thumbnail (${thumb.width}×${thumb.height} JPEG, ${thumb.size} bytes)`);
client.disconnect();

const stored = (page) => page.messages.some((m) => m.message_id === sent.message_id)
  && (!voice || page.messages.some((m) => m.message_id === voice.message_id && m.transcript))
  && page.messages.some((m) => m.message_id === image.message_id && m.thumbnail);
for (let i = 0; i < 150; i++) {
  const page = await must(200, 'GET', `/chats/${chat.id}/messages?limit=10`, bob.token);
  if (stored(page)) {
    const said = (m) => (m.transcript ? `a voice message transcribed "${m.transcript}"`
      : m.thumbnail ? `an image with its ${m.thumbnail.width}×${m.thumbnail.height} thumbnail` : `"${m.text}"`);
    console.log(`demo: the sink stored them; history shows ${page.messages.length} message(s): ${page.messages.map(said).join(', ')}`);
    process.exit(0);
  }
  await new Promise((r) => setTimeout(r, 100));
}
fail('the messages did not reach history within 15 s (see .run/logs/sink.log)');
