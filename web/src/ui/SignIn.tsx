// Log in or register: errors the user can cause (a wrong password, a taken username, a rate
// limit) are shown in words.

import { useState } from 'preact/hooks';

import { type ApiClient, inWords } from '../api/client';

export function SignIn({ api, onSignedIn }: { api: ApiClient; onSignedIn: () => void }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);

  const go = async (register: boolean) => {
    setBusy(true);
    setError('');
    try {
      await (register ? api.register(username, password) : api.login(username, password));
      onSignedIn();
    } catch (e) {
      setError(inWords(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <form
      class="signin"
      onSubmit={(e) => {
        e.preventDefault();
        void go(false);
      }}
    >
      <h1>Chorus</h1>
      <label>
        Username
        <input value={username} autocomplete="username" onInput={(e) => setUsername(e.currentTarget.value)} />
      </label>
      <label>
        Password
        <input
          type="password"
          value={password}
          autocomplete="current-password"
          onInput={(e) => setPassword(e.currentTarget.value)}
        />
      </label>
      <button type="submit" disabled={busy}>
        Log in
      </button>
      <button type="button" disabled={busy} onClick={() => void go(true)}>
        Register
      </button>
      {error ? (
        <p role="alert" class="error">
          {error}
        </p>
      ) : null}
    </form>
  );
}
