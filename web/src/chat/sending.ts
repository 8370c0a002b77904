// Sending as a user sees it: a message shows at once as pending, becomes sent when the API
// accepts it (201, or 202 "queued": committed, Kafka will have it), or failed with the
// reason in words, and a retry sends it again under the same Idempotency-Key, so the API
// never makes two messages of one. A sent message stops being shown as pending once the
// timeline has it (the hub delivered it, or history did).

import { ApiClient, ApiError } from '../api/client';

export type SendState = 'pending' | 'sent' | 'failed';

export interface Outgoing {
  /** The Idempotency-Key, also this entry's id. */
  key: string;
  chatId: string;
  text: string;
  state: SendState;
  /** Set once the API accepted it. */
  messageId?: string;
  /** Why it failed, for the user. */
  error?: string;
}

interface Accepted {
  message_id: string;
}

export class Sender {
  private readonly entries = new Map<string, Outgoing>();

  constructor(
    private readonly api: ApiClient,
    private readonly newKey: () => string = () => crypto.randomUUID(),
  ) {}

  /** What is still to be shown as this chat's own, in the order it was written. */
  outgoing(chatId: string): Outgoing[] {
    return [...this.entries.values()].filter((e) => e.chatId === chatId);
  }

  send(chatId: string, text: string): Promise<Outgoing> {
    const entry: Outgoing = { key: this.newKey(), chatId, text, state: 'pending' };
    this.entries.set(entry.key, entry);
    return this.attempt(entry);
  }

  /** Sends a failed message again, under its first key. */
  retry(key: string): Promise<Outgoing> {
    const entry = this.entries.get(key);
    if (!entry) return Promise.reject(new Error(`no message ${key} to retry`));
    entry.state = 'pending';
    entry.error = undefined;
    return this.attempt(entry);
  }

  /** Forgets sent messages that `shown` (the timeline) now has. */
  settle(shown: (messageId: string) => boolean): void {
    for (const [key, e] of this.entries) {
      if (e.state === 'sent' && e.messageId && shown(e.messageId)) this.entries.delete(key);
    }
  }

  private async attempt(entry: Outgoing): Promise<Outgoing> {
    try {
      const accepted = await this.api.request<Accepted>('POST', `/chats/${entry.chatId}/messages`, {
        body: { text: entry.text },
        headers: { 'idempotency-key': entry.key },
      });
      entry.state = 'sent';
      entry.messageId = accepted.message_id;
    } catch (e) {
      entry.state = 'failed';
      entry.error = describe(e);
    }
    return entry;
  }
}

/** A failure in words a user can act on. */
export function describe(e: unknown): string {
  if (e instanceof ApiError) {
    if (e.status === 429) return `Too many messages: try again in ${e.retryAfter ?? 'a few'} seconds`;
    if (e.status >= 500) return 'The server is unavailable: try again';
    return e.message;
  }
  return 'No connection to the server: try again';
}
