// The page: signed out, it asks for a username and a password; signed in, the chats and the
// open chat, with the hub's connection state always in view.

import { useEffect, useMemo, useState } from 'preact/hooks';

import { ApiClient } from '../api/client';
import { type ConnectionState, Hub } from '../hub/connection';
import { Chats } from './Chats';
import { SignIn } from './SignIn';

export function App() {
  const api = useMemo(() => new ApiClient(''), []);
  const [signedIn, setSignedIn] = useState<boolean | null>(null);
  const [me, setMe] = useState<{ id: string; username: string } | null>(null);
  const [hub, setHub] = useState<Hub | null>(null);
  const [state, setState] = useState<ConnectionState>('offline');

  useEffect(() => {
    api.resume().then(setSignedIn, () => setSignedIn(false));
  }, [api]);

  useEffect(() => {
    if (!signedIn) return;
    let stop = false;
    let connected: Hub | null = null;
    (async () => {
      const [config, who] = await Promise.all([
        api.request<{ hub_url: string }>('GET', '/config'),
        api.request<{ id: string; username: string }>('GET', '/me'),
      ]);
      if (stop) return;
      setMe(who);
      connected = new Hub(config.hub_url, api, setState);
      setHub(connected);
    })().catch(() => setSignedIn(false));
    return () => {
      stop = true;
      connected?.close();
      setHub(null);
    };
  }, [api, signedIn]);

  if (signedIn === null) return <p role="status">Loading…</p>;
  if (!signedIn) return <SignIn api={api} onSignedIn={() => setSignedIn(true)} />;
  return (
    <>
      <header>
        <strong>Chorus</strong>
        <span>{me?.username}</span>
        <button type="button" onClick={() => api.logout().finally(() => setSignedIn(false))}>
          Log out
        </button>
        <span role="status">{state === 'connected' ? 'connected' : state === 'connecting' ? 'connecting…' : 'offline'}</span>
      </header>
      {hub && me ? <Chats api={api} hub={hub} me={me.id} /> : null}
    </>
  );
}
