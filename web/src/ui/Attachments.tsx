// Voice and images: record with the microphone (MediaRecorder, WebM/Opus, as the API takes
// it) or pick an image, and upload it as a message. What the API refuses (too large, a type
// it does not take, a file that does not decode) is said in words.

import { useRef, useState } from 'preact/hooks';

import { type ApiClient, inWords } from '../api/client';

export function Attachments({ api, chatId }: { api: ApiClient; chatId: string }) {
  const [recording, setRecording] = useState<MediaRecorder | null>(null);
  const [status, setStatus] = useState('');
  const chunks = useRef<Blob[]>([]);

  const upload = async (kind: 'voice' | 'images', file: Blob, name: string) => {
    const form = new FormData();
    form.append('file', file, name);
    setStatus(kind === 'voice' ? 'Sending the voice message…' : 'Sending the image…');
    try {
      await api.request('POST', `/chats/${chatId}/${kind}`, {
        form,
        headers: { 'idempotency-key': crypto.randomUUID() },
      });
      setStatus('');
    } catch (e) {
      setStatus(`Not sent: ${inWords(e)}`);
    }
  };

  const record = async () => {
    setStatus('');
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      const recorder = new MediaRecorder(stream, { mimeType: 'audio/webm;codecs=opus' });
      chunks.current = [];
      recorder.ondataavailable = (e) => chunks.current.push(e.data);
      recorder.onstop = () => {
        for (const t of stream.getTracks()) t.stop();
        void upload('voice', new Blob(chunks.current, { type: 'audio/webm' }), 'voice.webm');
      };
      recorder.start();
      setRecording(recorder);
    } catch {
      setStatus('No microphone: allow the page to use it');
    }
  };

  const stop = () => {
    recording?.stop();
    setRecording(null);
  };

  return (
    <div class="attachments">
      {recording ? (
        <button type="button" onClick={stop}>
          Stop
        </button>
      ) : (
        <button type="button" onClick={() => void record()}>
          Record
        </button>
      )}
      <label>
        Image
        <input
          type="file"
          accept="image/png,image/jpeg,image/webp,image/gif"
          onChange={(e) => {
            const file = e.currentTarget.files?.[0];
            if (file) void upload('images', file, file.name);
            e.currentTarget.value = '';
          }}
        />
      </label>
      {status.startsWith('Not sent') || status.startsWith('No microphone') ? (
        <span role="alert">{status}</span>
      ) : status ? (
        <span aria-live="polite">{status}</span>
      ) : null}
    </div>
  );
}
