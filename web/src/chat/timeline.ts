// One chat's messages as the page shows them: pages of history from the API and live events
// from the hub merged by message id, each message once, oldest first. Message ids are ULIDs,
// so their order is the order they were sent in. An event about a message that is not here
// yet (a transcript racing its message, or a page not loaded) waits for it; a deleted message
// stays deleted even if an older page still had it.

export interface Author {
  id: string;
  name: string | null;
}

export interface Attachment {
  kind: 'voice' | 'image';
  key: string;
  mime: string;
  size: number;
  duration_ms?: number;
  width?: number;
  height?: number;
}

export interface Thumbnail {
  key: string;
  mime: string;
  width: number;
  height: number;
  size: number;
}

export interface ChatMessage {
  id: string;
  author: Author;
  /** Unix milliseconds. */
  createdAt: number;
  text?: string;
  editedAt?: number;
  attachment?: Attachment;
  transcript?: string;
  transcriptionError?: string;
  thumbnail?: Thumbnail;
  attachmentError?: string;
}

/** An item of `GET /chats/{id}/messages`. */
export interface HistoryItem {
  message_id: string;
  author: Author;
  created_at: number;
  text?: string;
  edited_at?: number;
  attachment?: Attachment;
  transcript?: string;
  transcription_error?: string;
  thumbnail?: Thumbnail;
  attachment_error?: string;
}

/** A chat event as the hub delivers it on `chat:<id>` (`docs/protocol.md`). */
export type ChatEvent =
  | Envelope<'message.created', { message_id: string; author: Author; text?: string; attachment?: Attachment }>
  | Envelope<'message.edited', { message_id: string; text: string }>
  | Envelope<'message.deleted', { message_id: string }>
  | Envelope<'message.transcribed', { message_id: string; transcript: string }>
  | Envelope<'message.transcription_failed', { message_id: string; reason: string }>
  | Envelope<'attachment.processed', { message_id: string; thumbnail: Thumbnail }>
  | Envelope<'attachment.failed', { message_id: string; reason: string }>
  | Envelope<'chat.updated', Record<string, unknown>>;

interface Envelope<T extends string, D> {
  event_id: string;
  chat_id: string;
  ts: number;
  type: T;
  data: D;
}

type Change = (m: ChatMessage) => ChatMessage;

export class Timeline {
  private readonly byId = new Map<string, ChatMessage>();
  private readonly deleted = new Set<string>();
  /** Changes to messages not here yet, applied when they arrive. */
  private readonly waiting = new Map<string, Change[]>();

  /** Oldest first. */
  messages(): ChatMessage[] {
    return [...this.byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** The id to ask for older messages before (the API's cursor), if any are shown. */
  oldestId(): string | undefined {
    return this.messages()[0]?.id;
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  /** Merges a page of history (any order); returns how many messages were new. */
  addHistory(items: HistoryItem[]): number {
    let added = 0;
    for (const item of items) {
      if (this.insert(fromHistory(item))) added += 1;
    }
    return added;
  }

  /** Applies one live event; returns whether anything shown changed. */
  apply(event: ChatEvent): boolean {
    switch (event.type) {
      case 'message.created': {
        const d = event.data;
        return this.insert({
          id: d.message_id,
          author: { id: d.author.id, name: d.author.name ?? null },
          createdAt: event.ts,
          text: d.text,
          attachment: d.attachment,
        });
      }
      case 'message.deleted':
        this.deleted.add(event.data.message_id);
        this.waiting.delete(event.data.message_id);
        return this.byId.delete(event.data.message_id);
      case 'message.edited': {
        const { text } = event.data;
        return this.change(event.data.message_id, (m) => ({ ...m, text, editedAt: event.ts }));
      }
      case 'message.transcribed': {
        const { transcript } = event.data;
        return this.change(event.data.message_id, (m) => ({ ...m, transcript, transcriptionError: undefined }));
      }
      case 'message.transcription_failed': {
        const { reason } = event.data;
        return this.change(event.data.message_id, (m) =>
          m.transcript === undefined ? { ...m, transcriptionError: reason } : m,
        );
      }
      case 'attachment.processed': {
        const { thumbnail } = event.data;
        return this.change(event.data.message_id, (m) => ({ ...m, thumbnail, attachmentError: undefined }));
      }
      case 'attachment.failed': {
        const { reason } = event.data;
        return this.change(event.data.message_id, (m) =>
          m.thumbnail === undefined ? { ...m, attachmentError: reason } : m,
        );
      }
      case 'chat.updated':
        return false;
    }
  }

  private insert(message: ChatMessage): boolean {
    if (this.deleted.has(message.id) || this.byId.has(message.id)) return false;
    let m = message;
    for (const change of this.waiting.get(message.id) ?? []) m = change(m);
    this.waiting.delete(message.id);
    this.byId.set(m.id, m);
    return true;
  }

  private change(id: string, change: Change): boolean {
    if (this.deleted.has(id)) return false;
    const m = this.byId.get(id);
    if (!m) {
      this.waiting.set(id, [...(this.waiting.get(id) ?? []), change]);
      return false;
    }
    this.byId.set(id, change(m));
    return true;
  }
}

function fromHistory(item: HistoryItem): ChatMessage {
  return {
    id: item.message_id,
    author: item.author,
    createdAt: item.created_at,
    text: item.text,
    editedAt: item.edited_at,
    attachment: item.attachment,
    transcript: item.transcript,
    transcriptionError: item.transcription_error,
    thumbnail: item.thumbnail,
    attachmentError: item.attachment_error,
  };
}
