// The API as the page talks to it: the access token lives in memory only, the refresh token
// in the HttpOnly cookie the API sets (the page never sees it). A request answered 401 is
// retried once after one refresh; concurrent 401s share that refresh, so a burst of requests
// costs one rotation, and a second tab refreshing at the same time is covered by the API's
// grace window.

/** The API's one error shape: `{"error": {"code", "message"}}` with a 4xx or 5xx status. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Seconds to wait, from `Retry-After` (rate limits). */
    readonly retryAfter?: number,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** What went wrong, in words a user can read: the API's message, or that there is no
 * connection (fetch itself failed). */
export function inWords(e: unknown): string {
  return e instanceof ApiError ? e.message : 'No connection to the server';
}

/** The refresh cookie is gone or refused: the user must sign in again. */
export class SignedOut extends Error {
  constructor() {
    super('signed out');
    this.name = 'SignedOut';
  }
}

export interface Tokens {
  access_token: string;
  expires_in: number;
}

type Fetch = (input: string, init?: RequestInit) => Promise<Response>;

export interface RequestOptions {
  body?: unknown;
  /** A multipart upload instead of JSON. */
  form?: FormData;
  headers?: Record<string, string>;
}

export class ApiClient {
  private access: string | null = null;
  private refreshing: Promise<void> | null = null;

  constructor(
    private readonly base: string,
    private readonly fetchImpl: Fetch = (input, init) => fetch(input, init),
  ) {}

  get signedIn(): boolean {
    return this.access !== null;
  }

  async register(username: string, password: string): Promise<void> {
    await this.call('POST', '/auth/register', { body: { username, password } }, false);
    await this.login(username, password);
  }

  async login(username: string, password: string): Promise<void> {
    const tokens = await this.call<Tokens>('POST', '/auth/login', { body: { username, password } }, false);
    this.access = tokens.access_token;
  }

  async logout(): Promise<void> {
    try {
      await this.call('POST', '/auth/logout', {}, false);
    } finally {
      this.access = null;
    }
  }

  /** Restores a session from the refresh cookie (a reload); false when there is none. */
  async resume(): Promise<boolean> {
    try {
      await this.refresh();
      return true;
    } catch (e) {
      if (e instanceof SignedOut) return false;
      throw e;
    }
  }

  /** A request as the signed-in user: one refresh and one retry on 401. */
  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    try {
      return await this.call<T>(method, path, options, true);
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 401) throw e;
      await this.refresh();
      return this.call<T>(method, path, options, true);
    }
  }

  /** A blob the API serves to members only (`GET /media/{key}`): media elements cannot send
   * the bearer token themselves, so the page fetches it and shows an object URL. */
  async blob(path: string): Promise<Blob> {
    const get = () =>
      this.fetchImpl(this.base + path, {
        headers: this.access ? { authorization: `Bearer ${this.access}` } : {},
        credentials: 'include',
      });
    let response = await get();
    if (response.status === 401) {
      await this.refresh();
      response = await get();
    }
    if (!response.ok) throw new ApiError(response.status, 'http_error', `HTTP ${response.status}`);
    return response.blob();
  }

  /** One rotation for every caller that asks while it runs. */
  refresh(): Promise<void> {
    this.refreshing ??= this.rotate().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  private async rotate(): Promise<void> {
    try {
      const tokens = await this.call<Tokens>('POST', '/auth/refresh', {}, false);
      this.access = tokens.access_token;
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        this.access = null;
        throw new SignedOut();
      }
      throw e;
    }
  }

  private async call<T>(method: string, path: string, options: RequestOptions, bearer: boolean): Promise<T> {
    const headers: Record<string, string> = { ...options.headers };
    if (bearer && this.access) headers.authorization = `Bearer ${this.access}`;
    let body: BodyInit | undefined;
    if (options.form) {
      body = options.form;
    } else if (options.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(options.body);
    }
    // The refresh cookie is scoped to /auth and sent only with credentials.
    const response = await this.fetchImpl(this.base + path, { method, headers, body, credentials: 'include' });
    const text = await response.text();
    const json: unknown = text ? JSON.parse(text) : null;
    if (!response.ok) {
      const error = (json as { error?: { code?: string; message?: string } } | null)?.error;
      const retry = response.headers.get('retry-after');
      throw new ApiError(
        response.status,
        error?.code ?? 'http_error',
        error?.message ?? `HTTP ${response.status}`,
        retry ? Number(retry) : undefined,
      );
    }
    return json as T;
  }
}
