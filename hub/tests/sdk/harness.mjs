// Starts a real chorus-hub from a Centrifugo-style config file and gives tests what they need:
// tokens, the server API, and SDK clients. Everything talks to 127.0.0.1 only.
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Centrifuge as JsonCentrifuge } from 'centrifuge';
import { Centrifuge as ProtobufCentrifuge } from 'centrifuge/build/protobuf';
import { EventSource } from 'eventsource';
import WebSocket from 'ws';

// CHORUS_SDK_PROTOCOL=protobuf runs the same scenarios with the SDK's Protobuf build (the
// `centrifuge-protobuf` subprotocol); payloads are then bytes, which `payload` and `data`
// turn to and from the JSON documents the tests compare.
export const PROTOCOL = process.env.CHORUS_SDK_PROTOCOL === 'protobuf' ? 'protobuf' : 'json';
const Centrifuge = PROTOCOL === 'protobuf' ? ProtobufCentrifuge : JsonCentrifuge;

// CHORUS_SDK_TRANSPORT=http_stream or sse runs them over Centrifugo's bidirectional
// emulation instead of a WebSocket: the server's frames on a streaming response, the client's
// commands as `/emulation` requests.
export const TRANSPORT = process.env.CHORUS_SDK_TRANSPORT ?? 'websocket';

export function payload(doc) {
  return PROTOCOL === 'protobuf' ? new TextEncoder().encode(JSON.stringify(doc)) : doc;
}

export function data(ctx) {
  return PROTOCOL === 'protobuf' ? JSON.parse(new TextDecoder().decode(ctx.data)) : ctx.data;
}

export const SECRET = 'sdk-test-secret';
export const API_KEY = 'sdk-test-api-key';

function b64url(obj) {
  return Buffer.from(JSON.stringify(obj)).toString('base64url');
}

export function jwt(claims, secret = SECRET) {
  const head = b64url({ alg: 'HS256', typ: 'JWT' });
  const body = b64url(claims);
  const sig = createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

export const now = () => Math.floor(Date.now() / 1000);

export async function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

// A Centrifugo v6 config, as a Centrifugo user would write it.
function centrifugoConfig(port) {
  return {
    http_server: { address: '127.0.0.1', port },
    log: { level: 'warn' },
    client: {
      token: { hmac_secret_key: SECRET },
      allowed_origins: ['http://localhost:*'],
      ping_interval: '5s',
      pong_timeout: '3s',
    },
    http_api: { key: API_KEY },
    websocket: { message_size_limit: 4096 },
    uni_websocket: { enabled: true },
    uni_sse: { enabled: true },
    uni_http_stream: { enabled: true },
    http_stream: { enabled: true },
    sse: { enabled: true },
    channel: {
      without_namespace: { allow_subscribe_for_client: true },
      namespaces: [
        {
          name: 'chat',
          presence: true,
          join_leave: true,
          force_push_join_leave: true,
          history_size: 100,
          history_ttl: '300s',
          force_recovery: true,
          allow_subscribe_for_client: true,
          allow_publish_for_subscriber: true,
          allow_presence_for_subscriber: true,
          allow_history_for_subscriber: true,
        },
        { name: 'readonly', allow_subscribe_for_client: true },
        // Deltas only for the publications whose publisher asks (the API's `delta` flag).
        // Without history (plain PUBLISH on Redis) and with (the engine's Lua script).
        { name: 'docs', allow_subscribe_for_client: true, allowed_delta_types: ['fossil'] },
        { name: 'hdocs', allow_subscribe_for_client: true, allowed_delta_types: ['fossil'], history_size: 10, history_ttl: '300s' },
        {
          name: 'tags',
          allow_subscribe_for_client: true,
          allow_tags_filter: true,
          history_size: 100,
          history_ttl: '300s',
          force_recovery: true,
        },
        {
          name: 'delta',
          allow_subscribe_for_client: true,
          allowed_delta_types: ['fossil'],
          delta_publish: true,
          history_size: 10,
          history_ttl: '300s',
          force_recovery: true,
        },
      ],
    },
  };
}

// With CHORUS_SDK_REDIS set, the same scenarios run on the Redis engine; several addresses
// (separated by spaces) shard the channels over several Redis servers. The key prefix
// follows the port: a fresh hub starts clean, a hub restarted on its port finds its data.
export function redisAddresses() {
  return (process.env.CHORUS_SDK_REDIS ?? '').split(/\s+/).filter(Boolean);
}

function engine(port) {
  const address = redisAddresses();
  if (address.length === 0) return {};
  return { engine: { type: 'redis', redis: { address, prefix: `chorus-sdk-${process.pid}-${port}` } } };
}

// `extra` adds top-level config keys (e.g. `consumers`); `port` reuses a port, so that clients
// of a killed hub reconnect to its successor.
export async function startHub(extra = {}, port = undefined) {
  const bin = process.env.CHORUS_HUB_BIN;
  if (!bin) throw new Error('CHORUS_HUB_BIN must point at the chorus-hub binary');
  port ??= await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'chorus-sdk-'));
  const configPath = join(dir, 'config.json');
  writeFileSync(configPath, JSON.stringify({ ...centrifugoConfig(port), ...engine(port), ...extra }, null, 2));
  const proc = spawn(bin, ['--config', configPath], { stdio: ['ignore', 'inherit', 'inherit'] });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 300; i++) {
    try {
      const r = await fetch(`${base}/health`);
      if (r.ok) break;
    } catch {
      /* not up yet */
    }
    if (proc.exitCode !== null) throw new Error(`chorus-hub exited with ${proc.exitCode}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    port,
    url: `ws://127.0.0.1:${port}/connection/websocket`,
    base,
    async kill() {
      proc.kill('SIGKILL');
      await new Promise((r) => (proc.exitCode !== null || proc.signalCode ? r() : proc.once('exit', r)));
    },
    async api(method, body) {
      const r = await fetch(`${base}/api/${method}`, {
        method: 'POST',
        headers: { 'X-API-Key': API_KEY, 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
      return r.json();
    },
    async stop() {
      proc.kill('SIGTERM');
      await new Promise((r) => proc.once('exit', r));
    },
  };
}

// An SDK client of `hub` over `transport`. `emulationVia` is the hub an emulated client sends
// its commands to: another node than the one holding its stream reaches it through the engine.
export function client(hub, opts = {}, emulationVia = hub, transport = TRANSPORT) {
  const delays = { minReconnectDelay: 300, maxReconnectDelay: 1000 };
  if (transport === 'websocket') return new Centrifuge(hub.url, { websocket: WebSocket, ...delays, ...opts });
  const transports = [{ transport, endpoint: `${hub.base}/connection/${transport}` }];
  return new Centrifuge(transports, {
    eventsource: EventSource,
    emulationEndpoint: `${emulationVia.base}/emulation`,
    ...delays,
    ...opts,
  });
}

// Resolves with the first event `name` whose args pass `pred`; rejects after `ms` (a bound,
// so a broken hub fails the test instead of hanging it, not a speed check).
export function once(emitter, name, pred = () => true, ms = 10000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ${name} event within ${ms} ms`)), ms);
    const h = (ctx) => {
      if (!pred(ctx)) return;
      clearTimeout(t);
      emitter.removeListener(name, h);
      resolve(ctx);
    };
    emitter.on(name, h);
  });
}

// Reads the JSON documents off a streaming response: SSE `data:` events or JSON lines.
export async function* pushes(response, sse) {
  const decoder = new TextDecoder();
  let buf = '';
  for await (const chunk of response.body) {
    buf += decoder.decode(chunk, { stream: true });
    const sep = sse ? '\n\n' : '\n';
    let i;
    while ((i = buf.indexOf(sep)) >= 0) {
      const event = buf.slice(0, i);
      buf = buf.slice(i + sep.length);
      const text = sse ? event.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('') : event;
      if (text.trim() !== '') yield JSON.parse(text);
    }
  }
}

export { WebSocket };

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
