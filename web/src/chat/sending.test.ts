import { describe, expect, it } from 'vitest';

import { ApiClient } from '../api/client';
import { Sender } from './sending';

/** An API whose sends answer from `answers` in turn, recording each Idempotency-Key. */
function api(answers: Array<() => Response | Promise<Response>>) {
  const keys: string[] = [];
  const fetchImpl = async (url: string, init?: RequestInit): Promise<Response> => {
    if (url.endsWith('/auth/login')) return new Response(JSON.stringify({ access_token: 'a', expires_in: 900 }));
    keys.push((init?.headers as Record<string, string>)['idempotency-key'] ?? '');
    const next = answers.shift();
    if (!next) throw new Error('no more answers');
    return next();
  };
  return { keys, client: new ApiClient('', fetchImpl) };
}

const accepted = (status: number) => () =>
  new Response(JSON.stringify({ chat_id: '9', message_id: `01M${status}`, created_at: 1 }), { status });

describe('Sender', () => {
  it('is pending until the API accepts, then sent with the message id', async () => {
    const { client } = api([accepted(201)]);
    await client.login('ann', 'p');
    const sender = new Sender(client, () => 'k1');
    const sending = sender.send('9', 'hi');
    expect(sender.outgoing('9').map((e) => e.state)).toEqual(['pending']);
    await expect(sending).resolves.toMatchObject({ state: 'sent', messageId: '01M201' });
    sender.settle((id) => id === '01M201');
    expect(sender.outgoing('9')).toEqual([]);
  });

  it('fails in words, and a retry sends again under the same key', async () => {
    const { keys, client } = api([
      () => Promise.reject(new TypeError('Failed to fetch')),
      () => new Response(JSON.stringify({ error: { code: 'unavailable', message: 'kafka' } }), { status: 503 }),
      accepted(202),
    ]);
    await client.login('ann', 'p');
    let n = 0;
    const sender = new Sender(client, () => `k${++n}`);
    await expect(sender.send('9', 'hi')).resolves.toMatchObject({
      state: 'failed',
      error: 'No connection to the server: try again',
    });
    await expect(sender.retry('k1')).resolves.toMatchObject({
      state: 'failed',
      error: 'The server is unavailable: try again',
    });
    // 202: committed and queued for Kafka, so sent.
    await expect(sender.retry('k1')).resolves.toMatchObject({ state: 'sent', messageId: '01M202' });
    expect(keys).toEqual(['k1', 'k1', 'k1']);
  });
});
