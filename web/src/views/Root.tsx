import { useEffect, useReducer } from 'preact/hooks';
import type { Session } from '../session.ts';
import { App } from './App.tsx';
import { SignIn } from './SignIn.tsx';

/** The dashboard of whoever is signed in, the sign-in screen, or (briefly) asking the server which. */
export function Root({ session }: { session: Session }) {
  const [, force] = useReducer((n: number, _: undefined) => n + 1, 0);
  useEffect(() => {
    const unsubscribe = session.subscribe(() => force(undefined));
    // Effects run after the first paint: the session may have moved on in between, unseen.
    force(undefined);
    return unsubscribe;
  }, [session]);
  const state = session.state;
  switch (state.kind) {
    case 'signed-in':
      return (
        <App key={state.generation} dashboard={state.dashboard} onSignOut={state.me.authentication ? () => session.signOut() : undefined} />
      );
    case 'signed-out':
      return <SignIn session={session} reason={state.reason} />;
    case 'checking':
      return (
        <main class="sign-in">
          <p class="panel sign-in-card" role="status">
            {state.detail ?? 'Connecting to the server…'}
          </p>
        </main>
      );
  }
}
