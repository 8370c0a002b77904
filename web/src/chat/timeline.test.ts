import { describe, expect, it } from 'vitest';

import { ChatEvent, HistoryItem, Timeline } from './timeline';

const ann = { id: '1', name: 'Ann' };

const created = (id: string, text: string): ChatEvent => ({
  event_id: `e-${id}`,
  chat_id: '9',
  ts: 1000,
  type: 'message.created',
  data: { message_id: id, author: ann, text },
});

const item = (id: string, text: string): HistoryItem => ({
  message_id: id,
  author: ann,
  created_at: 1000,
  text,
});

const ids = (t: Timeline) => t.messages().map((m) => m.id);

describe('Timeline', () => {
  it('shows each message once, in id order, whichever way it came', () => {
    const t = new Timeline();
    expect(t.apply(created('01C', 'live'))).toBe(true);
    expect(t.addHistory([item('01D', 'd'), item('01A', 'a'), item('01C', 'live again')])).toBe(2);
    expect(t.apply(created('01C', 'repeat'))).toBe(false);
    expect(t.apply(created('01B', 'b'))).toBe(true);
    expect(ids(t)).toEqual(['01A', '01B', '01C', '01D']);
    expect(t.messages().find((m) => m.id === '01C')?.text).toBe('live');
    expect(t.oldestId()).toBe('01A');
  });

  it('keeps a transcript that arrives before its message', () => {
    const t = new Timeline();
    t.apply({
      event_id: 'x',
      chat_id: '9',
      ts: 2000,
      type: 'message.transcribed',
      data: { message_id: '01V', transcript: 'hello there' },
    });
    t.addHistory([{ ...item('01V', ''), text: undefined }]);
    expect(t.messages()[0]?.transcript).toBe('hello there');
  });

  it('does not bring back a deleted message from an older page', () => {
    const t = new Timeline();
    t.apply(created('01A', 'a'));
    t.apply({ event_id: 'd', chat_id: '9', ts: 3000, type: 'message.deleted', data: { message_id: '01A' } });
    expect(t.addHistory([item('01A', 'a')])).toBe(0);
    expect(ids(t)).toEqual([]);
  });

  it('applies edits and attachment outcomes, and a failure never hides a result', () => {
    const t = new Timeline();
    t.apply(created('01A', 'first'));
    t.apply({ event_id: 'e', chat_id: '9', ts: 4000, type: 'message.edited', data: { message_id: '01A', text: 'second' } });
    const thumbnail = { key: 'k.thumb.jpg', mime: 'image/jpeg', width: 320, height: 213, size: 6362 };
    t.apply({ event_id: 'p', chat_id: '9', ts: 5000, type: 'attachment.processed', data: { message_id: '01A', thumbnail } });
    t.apply({ event_id: 'f', chat_id: '9', ts: 6000, type: 'attachment.failed', data: { message_id: '01A', reason: 'late' } });
    expect(t.messages()[0]).toMatchObject({ text: 'second', editedAt: 4000, thumbnail, attachmentError: undefined });
  });
});
