// One chat: its newest page of history, older pages on scrolling up, live messages from the
// hub, each once and in order, and what this user is sending, pending or failed with a retry.
// A member who is removed sees the chat close at once (the hub's unsubscribe).

import { useEffect, useLayoutEffect, useMemo, useRef, useState } from 'preact/hooks';

import { type ApiClient, ApiError, inWords } from '../api/client';
import { Sender } from '../chat/sending';
import { type HistoryItem, Timeline } from '../chat/timeline';
import type { Hub } from '../hub/connection';
import { Attachments } from './Attachments';
import { Composer } from './Composer';
import { MessageItem } from './MessageItem';

interface Member {
  id: string;
  username: string;
  display_name: string;
  role: string;
}

interface Page {
  messages: HistoryItem[];
  next_cursor: string | null;
}

const PAGE = 50;

export function ChatView(props: {
  api: ApiClient;
  hub: Hub;
  me: string;
  chatId: string;
  onGone: () => void;
  onChanged: () => void;
}) {
  const { api, hub, chatId } = props;
  const timeline = useMemo(() => new Timeline(), []);
  const sender = useMemo(() => new Sender(api), [api]);
  const [version, setVersion] = useState(0);
  const redraw = () => setVersion((v) => v + 1);
  const [title, setTitle] = useState('');
  const [members, setMembers] = useState<Member[]>([]);
  const [online, setOnline] = useState<string[]>([]);
  /** Whether the API may hold messages older than the oldest shown. */
  const [more, setMore] = useState(false);
  const loadingOlder = useRef(false);
  const [notice, setNotice] = useState('');
  const [memberName, setMemberName] = useState('');
  const [newTitle, setNewTitle] = useState('');
  const log = useRef<HTMLDivElement>(null);
  // Follow the newest message while the reader is at the bottom; keep the reader's place when
  // an older page lands above.
  const atBottom = useRef(true);
  const heightBefore = useRef<number | null>(null);
  useLayoutEffect(() => {
    const el = log.current;
    if (!el) return;
    if (heightBefore.current !== null) {
      el.scrollTop += el.scrollHeight - heightBefore.current;
      heightBefore.current = null;
    } else if (atBottom.current) {
      el.scrollTop = el.scrollHeight;
    }
  }, [version]);

  const loadNewest = async () => {
    const page = await api.request<Page>('GET', `/chats/${chatId}/messages?limit=${PAGE}`);
    timeline.addHistory(page.messages);
    if (page.next_cursor) setMore(true);
    redraw();
  };

  const loadMembers = () =>
    api.request<{ title: string; members: Member[] }>('GET', `/chats/${chatId}`).then((c) => {
      setTitle(c.title);
      setMembers(c.members);
    });

  useEffect(() => {
    let gone = false;
    // A 404 from the chat's own routes: removed, or the chat deleted.
    const failed = (e: unknown) => {
      if (gone) return;
      if (e instanceof ApiError && e.status === 404) {
        gone = true;
        props.onGone();
      } else {
        setNotice('Could not load the chat.');
      }
    };
    const unfollow = hub.follow(chatId, {
      event: (e) => {
        if (e.type === 'chat.updated') {
          // Renamed, or its members changed: the title, the members, and the chat list.
          loadMembers().catch(failed);
          props.onChanged();
        }
        if (timeline.apply(e)) {
          sender.settle((id) => timeline.has(id));
          redraw();
        }
      },
      missed: () => loadNewest().catch(failed),
      online: setOnline,
      closed: () => {
        if (gone) return;
        gone = true;
        props.onGone();
      },
    });
    Promise.all([loadMembers(), loadNewest()]).catch(failed);
    return () => {
      gone = true;
      unfollow();
    };
  }, [chatId]);

  // Before the oldest message shown, whichever way it came (the hub's recent stream can reach
  // further back than the API's first page).
  const loadOlder = async () => {
    const before = timeline.oldestId();
    if (!more || !before || loadingOlder.current) return;
    loadingOlder.current = true;
    heightBefore.current = log.current?.scrollHeight ?? null;
    try {
      const page = await api.request<Page>('GET', `/chats/${chatId}/messages?limit=${PAGE}&before=${before}`);
      timeline.addHistory(page.messages);
      setMore(page.next_cursor !== null);
      redraw();
    } catch (e) {
      heightBefore.current = null;
      setNotice(inWords(e));
    } finally {
      loadingOlder.current = false;
    }
  };

  const addMember = async () => {
    setNotice('');
    try {
      const user = await api.request<{ id: string }>(
        'GET',
        `/users?username=${encodeURIComponent(memberName.trim())}`,
      );
      await api.request('POST', `/chats/${chatId}/members`, { body: { user_id: user.id } });
      setMemberName('');
      await loadMembers();
    } catch (e) {
      setNotice(e instanceof ApiError && e.status === 404 ? `No user named ${memberName.trim()}` : inWords(e));
    }
  };

  const removeMember = async (userId: string) => {
    try {
      await api.request('DELETE', `/chats/${chatId}/members/${userId}`);
      await loadMembers();
    } catch (e) {
      setNotice(inWords(e));
    }
  };

  const rename = async () => {
    setNotice('');
    try {
      await api.request('PATCH', `/chats/${chatId}`, { body: { title: newTitle.trim() } });
      setNewTitle('');
      await loadMembers();
      props.onChanged();
    } catch (e) {
      setNotice(inWords(e));
    }
  };

  const leave = async () => {
    try {
      await api.request('POST', `/chats/${chatId}/leave`);
      props.onGone();
    } catch (e) {
      setNotice(inWords(e));
    }
  };

  const send = (text: string) => {
    const sending = sender.send(chatId, text);
    redraw();
    void sending.then(() => {
      sender.settle((id) => timeline.has(id));
      redraw();
    });
  };

  const retry = (key: string) => {
    void sender.retry(key).then(redraw);
    redraw();
  };

  const shown = timeline.messages();
  const outgoing = sender.outgoing(chatId).filter((o) => !(o.messageId && timeline.has(o.messageId)));
  const names = new Map(members.map((m) => [m.id, m.display_name]));
  const mine = members.find((m) => m.id === props.me);

  return (
    <section class="chat" aria-label={title || 'Chat'}>
      <header>
        <h2>{title}</h2>
        <span>{members.map((m) => m.display_name).join(', ')}</span>
        <span aria-label="Online">
          Online:{' '}
          {members
            .filter((m) => online.includes(m.id))
            .map((m) => m.display_name)
            .join(', ') || 'nobody'}
        </span>
        <button type="button" onClick={() => void leave()}>
          Leave
        </button>
      </header>
      {mine && mine.role !== 'member' ? (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void rename();
          }}
        >
          <label>
            New title
            <input value={newTitle} onInput={(e) => setNewTitle(e.currentTarget.value)} />
          </label>
          <button type="submit" disabled={!newTitle.trim()}>
            Rename
          </button>
        </form>
      ) : null}
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void addMember();
        }}
      >
        <label>
          Member username
          <input value={memberName} onInput={(e) => setMemberName(e.currentTarget.value)} />
        </label>
        <button type="submit" disabled={!memberName.trim()}>
          Add member
        </button>
        {mine && mine.role !== 'member'
          ? members
              .filter((m) => m.id !== props.me)
              .map((m) => (
                <button type="button" key={m.id} onClick={() => void removeMember(m.id)}>
                  Remove {m.username}
                </button>
              ))
          : null}
      </form>
      {notice ? (
        <p role="alert" class="error">
          {notice}
        </p>
      ) : null}
      <div
        role="log"
        aria-label="Messages"
        ref={log}
        onScroll={(e) => {
          const el = e.currentTarget;
          atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
          if (el.scrollTop === 0) void loadOlder();
        }}
      >
        {more ? (
          <button type="button" onClick={() => void loadOlder()}>
            Load older messages
          </button>
        ) : null}
        <ul>
          {shown.map((m) => (
            <MessageItem key={m.id} api={api} message={m} author={names.get(m.author.id) ?? m.author.name ?? m.author.id} />
          ))}
          {outgoing.map((o) => (
            <li key={o.key} class={o.state === 'failed' ? 'failed' : 'pending'}>
              <span class="author">{mine?.display_name ?? 'You'}</span>
              <span class="text">{o.text}</span>{' '}
              {o.state === 'failed' ? (
                <>
                  <span>Not sent: {o.error}</span>{' '}
                  <button type="button" onClick={() => retry(o.key)}>
                    Retry
                  </button>
                </>
              ) : (
                <span>sending…</span>
              )}
            </li>
          ))}
        </ul>
      </div>
      <Attachments api={api} chatId={chatId} />
      <Composer onSend={send} />
    </section>
  );
}
