// The hub as the page uses it: one Centrifuge connection, its token from the API
// (`POST /hub/connection-token`, refreshed by the SDK when it expires), and the state a user
// sees. A chat's subscription recovers what a short drop missed from the hub's history; when
// the hub cannot (`recovered: false`), the chat reloads its newest page from the API. Once
// subscribed, the chat also reads the hub's recent stream (members may: the subscribe proxy
// let them in), which covers what the API's history does not hold yet.

import { Centrifuge, type Subscription } from 'centrifuge';

import type { ApiClient } from '../api/client';
import type { ChatEvent } from '../chat/timeline';

export type ConnectionState = 'connecting' | 'connected' | 'offline';

export interface ChatFeed {
  /** A chat event, live. */
  event(e: ChatEvent): void;
  /** The hub could not fill a gap: reload the newest page. */
  missed(): void;
  /** The server ended the subscription (the user was removed, or the chat deleted). */
  closed(): void;
  /** Who is in the chat now: user ids with at least one connection subscribed. */
  online(users: string[]): void;
}

export class Hub {
  private readonly centrifuge: Centrifuge;

  constructor(url: string, api: ApiClient, onState: (s: ConnectionState) => void) {
    this.centrifuge = new Centrifuge(url, {
      getToken: async () => (await api.request<{ token: string }>('POST', '/hub/connection-token')).token,
    });
    this.centrifuge.on('connecting', () => onState('connecting'));
    this.centrifuge.on('connected', () => onState('connected'));
    this.centrifuge.on('disconnected', () => onState('offline'));
    onState('connecting');
    this.centrifuge.connect();
  }

  /** Follows `chat:<id>` until the returned function is called. */
  follow(chatId: string, feed: ChatFeed): () => void {
    const channel = `chat:${chatId}`;
    const sub: Subscription =
      this.centrifuge.getSubscription(channel) ?? this.centrifuge.newSubscription(channel);
    sub.removeAllListeners();
    sub.on('publication', (ctx) => feed.event(ctx.data as ChatEvent));
    // Presence: the clients subscribed now, kept current by join and leave.
    const clients = new Map<string, string>();
    const tell = () => feed.online([...new Set(clients.values())]);
    sub.on('join', (ctx) => {
      clients.set(ctx.info.client, ctx.info.user);
      tell();
    });
    sub.on('leave', (ctx) => {
      clients.delete(ctx.info.client);
      tell();
    });
    sub.on('subscribed', (ctx) => {
      if (ctx.wasRecovering && !ctx.recovered) feed.missed();
      sub.presence().then(
        (p) => {
          clients.clear();
          for (const info of Object.values(p.clients)) clients.set(info.client, info.user);
          tell();
        },
        () => {},
      );
      // What reached the chat before this subscription but may not be stored yet (the sink
      // writes history a moment after the hub delivers): the hub's own recent stream, merged
      // by message id like everything else.
      sub.history({ limit: 100, reverse: true }).then(
        (h) => {
          for (const p of [...h.publications].reverse()) feed.event(p.data as ChatEvent);
        },
        () => {},
      );
    });
    // Codes 2500 and up are resubscribed by the SDK itself; below that the server meant it.
    sub.on('unsubscribed', (ctx) => {
      if (ctx.code >= 2000 && ctx.code < 2500) feed.closed();
    });
    sub.subscribe();
    return () => {
      sub.removeAllListeners();
      sub.unsubscribe();
      this.centrifuge.removeSubscription(sub);
    };
  }

  close(): void {
    this.centrifuge.disconnect();
  }
}
