// One message as a list item: author, time, text, and what its attachment became.

import { useEffect, useState } from 'preact/hooks';

import type { ApiClient } from '../api/client';
import type { ChatMessage } from '../chat/timeline';

/** An object URL for a members-only blob, revoked when the item goes. */
function useMedia(api: ApiClient, key: string | undefined): string | undefined {
  const [url, setUrl] = useState<string>();
  useEffect(() => {
    if (!key) return;
    let made: string | undefined;
    let live = true;
    api.blob(`/media/${key}`).then(
      (b) => {
        made = URL.createObjectURL(b);
        if (live) setUrl(made);
      },
      () => {},
    );
    return () => {
      live = false;
      if (made) URL.revokeObjectURL(made);
    };
  }, [api, key]);
  return url;
}

/** The original image in a tab of its own (members-only: fetched with the token). */
async function openOriginal(api: ApiClient, key: string | undefined) {
  if (!key) return;
  const tab = window.open('', '_blank');
  const url = URL.createObjectURL(await api.blob(`/media/${key}`));
  if (tab) tab.location.href = url;
}

export function MessageItem({ api, message: m, author }: { api: ApiClient; message: ChatMessage; author: string }) {
  const voice = useMedia(api, m.attachment?.kind === 'voice' ? m.attachment.key : undefined);
  const thumbnail = useMedia(api, m.thumbnail?.key);
  const time = new Date(m.createdAt).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return (
    <li data-message-id={m.id}>
      <span class="author">{author}</span>
      <time class="time" dateTime={new Date(m.createdAt).toISOString()}>
        {time}
      </time>
      {m.text ? <div class="text">{m.text}</div> : null}
      {m.attachment?.kind === 'voice' ? (
        <div class="voice">
          <audio controls preload="metadata" src={voice} />
          {m.transcript ? (
            <p class="transcript">{m.transcript}</p>
          ) : m.transcriptionError ? (
            <p class="transcript failed">transcription failed</p>
          ) : (
            <p class="transcript">transcribing…</p>
          )}
        </div>
      ) : null}
      {m.attachment?.kind === 'image' ? (
        <span class="image">
          {m.thumbnail && thumbnail ? (
            <img
              role="button"
              tabIndex={0}
              title="Open the original"
              onClick={() => void openOriginal(api, m.attachment?.key)}
              onKeyDown={(e) => {
                if (e.key === 'Enter') void openOriginal(api, m.attachment?.key);
              }}
              src={thumbnail}
              width={m.thumbnail.width}
              height={m.thumbnail.height}
              alt="image"
            />
          ) : (
            <span>{m.attachmentError ? 'image (no preview)' : 'image…'}</span>
          )}
        </span>
      ) : null}
    </li>
  );
}
