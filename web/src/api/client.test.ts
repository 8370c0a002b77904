import { describe, expect, it } from 'vitest';

import { ApiClient, ApiError, SignedOut } from './client';

interface Call {
  method: string;
  path: string;
  authorization?: string;
}

/** A fake API: `/auth/refresh` hands out access tokens `a1`, `a2`, …; another path answers
 * 200 only with the newest token, 401 otherwise. */
function fakeApi(options: { refreshOk?: boolean } = {}) {
  const calls: Call[] = [];
  let issued = 0;
  const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
    new Response(JSON.stringify(body), { status, headers });
  const fetchImpl = async (url: string, init?: RequestInit): Promise<Response> => {
    const path = url.replace('http://api', '');
    const headers = (init?.headers ?? {}) as Record<string, string>;
    calls.push({ method: init?.method ?? 'GET', path, authorization: headers.authorization });
    // Let concurrent requests really overlap.
    await new Promise((r) => setTimeout(r, 5));
    if (path === '/auth/login') return json(200, { access_token: 'a0', expires_in: 900 });
    if (path === '/auth/refresh') {
      if (options.refreshOk === false) {
        return json(401, { error: { code: 'unauthorized', message: 'invalid refresh token' } });
      }
      issued += 1;
      return json(200, { access_token: `a${issued}`, expires_in: 900 });
    }
    if (path === '/busy') {
      return json(429, { error: { code: 'rate_limited', message: 'slow down' } }, { 'retry-after': '7' });
    }
    if (headers.authorization === `Bearer a${issued}` && issued > 0) return json(200, { ok: path });
    return json(401, { error: { code: 'unauthorized', message: 'access token expired' } });
  };
  return { calls, client: new ApiClient('http://api', fetchImpl) };
}

describe('ApiClient', () => {
  it('refreshes once on a 401 and retries the request with the new token', async () => {
    const { calls, client } = fakeApi();
    await client.login('ann', 'password-1');
    await expect(client.request('GET', '/me')).resolves.toEqual({ ok: '/me' });
    expect(calls.map((c) => `${c.method} ${c.path} ${c.authorization ?? '-'}`)).toEqual([
      'POST /auth/login -',
      'GET /me Bearer a0',
      'POST /auth/refresh -',
      'GET /me Bearer a1',
    ]);
  });

  it('shares one refresh among requests that fail together', async () => {
    const { calls, client } = fakeApi();
    await client.login('ann', 'password-1');
    const paths = ['/chats', '/me', '/chats/1', '/chats/2'];
    const answers = await Promise.all(paths.map((p) => client.request('GET', p)));
    expect(answers).toEqual(paths.map((p) => ({ ok: p })));
    expect(calls.filter((c) => c.path === '/auth/refresh')).toHaveLength(1);
  });

  it('signs out when the refresh cookie is refused', async () => {
    const { client } = fakeApi({ refreshOk: false });
    await client.login('ann', 'password-1');
    await expect(client.request('GET', '/me')).rejects.toBeInstanceOf(SignedOut);
    expect(client.signedIn).toBe(false);
    await expect(client.resume()).resolves.toBe(false);
  });

  it('reads the API error shape and Retry-After', async () => {
    const { client } = fakeApi();
    const error = await client.request('GET', '/busy').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 429, code: 'rate_limited', message: 'slow down', retryAfter: 7 });
  });
});
