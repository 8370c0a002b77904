// A tansu broker for the SDK tests (real Kafka protocol on loopback), and records produced
// into it with `chorus-loadtest produce`.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { connect } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, sleep } from './harness.mjs';

const TANSU = process.env.CHORUS_TANSU_BIN ?? join(homedir(), '.cache/chorus/tools/tansu-0.6.0/bin/tansu');

function listening(port) {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.on('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

export async function startTansu() {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'chorus-sdk-tansu-'));
  const url = `tcp://127.0.0.1:${port}`;
  // The sqlite path is relative to the working directory.
  const proc = spawn(TANSU, ['broker', '--listener-url', url, '--advertised-listener-url', url, '--storage-engine', 'sqlite://tansu.db'], {
    cwd: dir,
    stdio: 'ignore',
  });
  for (let i = 0; i < 200 && !(await listening(port)); i++) await sleep(50);
  return {
    brokers: `127.0.0.1:${port}`,
    createTopic(name, partitions = 1) {
      const r = spawnSync(TANSU, ['topic', 'create', name, '--partitions', String(partitions), '--broker', url], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`tansu topic create ${name}: ${r.stderr}`);
    },
    async stop() {
      proc.kill('SIGKILL');
      await new Promise((r) => (proc.exitCode !== null || proc.signalCode ? r() : proc.once('exit', r)));
    },
  };
}

// A producer process: `send(line)` queues a record; `close()` waits until all are acknowledged.
export function producer(brokers, topic, key) {
  const bin = process.env.CHORUS_LOADTEST_BIN;
  if (!bin) throw new Error('CHORUS_LOADTEST_BIN must point at the chorus-loadtest binary');
  const proc = spawn(bin, ['produce', '--brokers', brokers, '--topic', topic, '--key', key], {
    stdio: ['pipe', 'ignore', 'inherit'],
  });
  const done = new Promise((resolve, reject) =>
    proc.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`produce exited with ${code}`)))),
  );
  return {
    send: (line) => proc.stdin.write(`${line}\n`),
    close: async () => {
      proc.stdin.end();
      await done;
    },
  };
}

// A ULID-shaped id from a number (Crockford base32), for chat events.
export function ulid(n) {
  const alphabet = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
  let out = '';
  let v = BigInt(n);
  for (let i = 0; i < 13; i++) {
    out = alphabet[Number(v % 32n)] + out;
    v /= 32n;
  }
  return `01${'0'.repeat(11)}${out}`;
}

export function chatEvent(chat, seq, text = String(seq)) {
  return {
    v: 1,
    event_id: ulid(seq * 2 + 1),
    chat_id: chat,
    ts: Date.now(),
    type: 'message.created',
    data: { message_id: ulid(seq * 2), author: { id: 'u1', name: 'Ada' }, text },
  };
}
