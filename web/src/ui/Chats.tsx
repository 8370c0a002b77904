// The caller's chats: the list, a new chat, and the open one (its path is `/c/<id>`, which
// the API does not route, so a reload comes back to it).

import { useCallback, useEffect, useState } from 'preact/hooks';

import { type ApiClient, inWords } from '../api/client';
import type { Hub } from '../hub/connection';
import { ChatView } from './ChatView';

export interface ChatSummary {
  id: string;
  title: string;
  role: string;
}

function openFromPath(): string | null {
  return /^\/c\/([0-9]+)$/.exec(location.pathname)?.[1] ?? null;
}

export function Chats({ api, hub, me }: { api: ApiClient; hub: Hub; me: string }) {
  const [chats, setChats] = useState<ChatSummary[]>([]);
  const [open, setOpen] = useState<string | null>(openFromPath());
  const [title, setTitle] = useState('');
  const [error, setError] = useState('');

  const reload = useCallback(
    () => api.request<{ chats: ChatSummary[] }>('GET', '/chats').then((r) => setChats(r.chats)),
    [api],
  );
  useEffect(() => {
    void reload();
  }, [reload]);

  const select = (id: string | null) => {
    history.pushState(null, '', id ? `/c/${id}` : '/');
    setOpen(id);
  };

  const create = async () => {
    setError('');
    try {
      const chat = await api.request<ChatSummary>('POST', '/chats', { body: { title: title.trim() } });
      setTitle('');
      await reload();
      select(chat.id);
    } catch (e) {
      setError(inWords(e));
    }
  };

  return (
    <main>
      <nav aria-label="Chats">
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void create();
          }}
        >
          <label>
            Chat title
            <input value={title} onInput={(e) => setTitle(e.currentTarget.value)} />
          </label>
          <button type="submit" disabled={!title.trim()}>
            New chat
          </button>
        </form>
        {error ? <p class="error">{error}</p> : null}
        <ul>
          {chats.map((c) => (
            <li key={c.id}>
              <button type="button" class="chat" aria-current={c.id === open} onClick={() => select(c.id)}>
                {c.title}
              </button>
            </li>
          ))}
        </ul>
      </nav>
      {open ? (
        <ChatView
          key={open}
          api={api}
          hub={hub}
          me={me}
          chatId={open}
          onGone={() => {
            select(null);
            void reload();
          }}
          onChanged={() => void reload()}
        />
      ) : (
        <p>Choose a chat, or start one.</p>
      )}
    </main>
  );
}
