import { useEffect, useRef, useState } from 'preact/hooks';
import type { Session } from '../session.ts';

/**
 * The sign-in screen, shown only when the server requires a token. The token is checked with the server
 * before it is kept; why a previous sign-in ended (a revoked token) is said above the form.
 */
export function SignIn({ session, reason }: { session: Session; reason: string | null }) {
  const [token, setToken] = useState('');
  const [remember, setRemember] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const input = useRef<HTMLInputElement>(null);

  useEffect(() => input.current?.focus(), []);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    const problem = await session.signIn(token, remember);
    // Signed in: this screen is gone. Otherwise say why, and let the user correct it in place.
    if (problem !== null) {
      setBusy(false);
      setError(problem);
      input.current?.focus();
    }
  };

  return (
    <main class="sign-in">
      <form class="panel sign-in-card" onSubmit={submit} noValidate aria-labelledby="sign-in-title" data-testid="sign-in">
        <h1 id="sign-in-title">Sign in to Orders</h1>
        {reason && (
          <p class="notice notice-error" role="alert" data-testid="sign-in-reason">
            {reason}
          </p>
        )}
        <p class="muted">This server requires an access token. An administrator creates one with npm run token.</p>
        <div class={`field ${error ? 'invalid' : ''}`}>
          <label for="sign-in-token">Access token</label>
          <input
            ref={input}
            id="sign-in-token"
            type="password"
            autoComplete="off"
            autoCapitalize="off"
            spellcheck={false}
            required
            aria-invalid={error ? true : undefined}
            aria-describedby={error ? 'sign-in-error' : undefined}
            value={token}
            onInput={(e) => setToken(e.currentTarget.value)}
          />
          {error && (
            <p class="field-error" id="sign-in-error" role="alert" data-testid="sign-in-error">
              {error}
            </p>
          )}
        </div>
        <div class="check">
          <input id="sign-in-remember" type="checkbox" checked={remember} onChange={(e) => setRemember(e.currentTarget.checked)} />
          <label for="sign-in-remember">Remember on this device</label>
        </div>
        <p class="muted hint">Otherwise the token is forgotten when this tab is closed. Do not use it on a shared computer.</p>
        <div class="actions">
          <button type="submit" class="primary" disabled={busy}>
            {busy ? 'Signing in…' : 'Sign in'}
          </button>
        </div>
      </form>
    </main>
  );
}
