import { backoffDelay } from '../../src/contract/backoff.ts';
import * as api from './api.ts';
import { Dashboard } from './dashboard.ts';
import { forgetLastData } from './last-data.ts';
import { setCurrency } from './money.ts';

/**
 * Who the page is signed in as, and the dashboard that acts as them.
 *
 * On load GET /me decides: `authentication: false` (no token configured on the server) starts the
 * dashboard at once as the local admin, as before there were tokens; a 401 shows the sign-in screen. A
 * token given there is checked with /me before it is kept: in sessionStorage (this tab, until it
 * closes) unless the user asks to be remembered on this device (localStorage). The last /me answer is
 * kept beside it, so a reload while the server is unreachable still opens the dashboard (and its
 * offline queue) as that identity; the first answer that arrives settles it.
 *
 * From then on any 401 (on a REST call, or found by the feed after its socket was refused or closed
 * with 1008) means the token was revoked: the dashboard is stopped, the token forgotten, and the
 * sign-in screen says why.
 */
export type SessionState =
  | { kind: 'checking'; detail: string | null }
  | { kind: 'signed-out'; reason: string | null }
  | { kind: 'signed-in'; me: api.Me; dashboard: Dashboard; generation: number };

interface Saved {
  token: string | null;
  me: api.Me;
}

const STORAGE_KEY = 'orders-dashboard.session.v1';

/** What a browser can send both as a bearer token and as a WebSocket subprotocol (RFC 7230 tchar). */
const TOKEN_SHAPE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

const REVOKED_MESSAGE = 'Your access token is no longer accepted: it was revoked or removed. Sign in again with a valid token.';

export class Session {
  state: SessionState = { kind: 'checking', detail: null };
  private readonly listeners = new Set<() => void>();
  private generation = 0;

  constructor(
    private readonly tabStorage: Storage = sessionStorage,
    private readonly deviceStorage: Storage = localStorage,
  ) {}

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private set(state: SessionState): void {
    this.state = state;
    for (const l of this.listeners) l();
  }

  /** Decides between the dashboard and the sign-in screen; retries while the server cannot be reached. */
  async start(): Promise<void> {
    const saved = this.saved();
    for (let attempt = 0; ; attempt++) {
      try {
        const me = await api.fetchMe(saved?.token ?? null);
        this.enter(me.authentication ? (saved?.token ?? null) : null, me, this.rememberedOnDevice());
        return;
      } catch (err) {
        if (err instanceof api.ApiProblem && err.status === 401) {
          this.forget();
          forgetLastData(this.tabStorage);
          this.set({ kind: 'signed-out', reason: saved?.token ? REVOKED_MESSAGE : null });
          return;
        }
        if (saved && this.state.kind === 'checking') {
          // Start as who we were; the dashboard reconnects by itself, and a 401 then signs out.
          this.enter(saved.token, saved.me, this.rememberedOnDevice());
          return;
        }
        this.set({ kind: 'checking', detail: `The server cannot be reached (${(err as Error).message}). Trying again…` });
        await retryDelay(attempt);
      }
    }
  }

  /** Resolves to an error message to show under the field, or null once signed in. */
  async signIn(input: string, remember: boolean): Promise<string | null> {
    const token = input.trim();
    if (!token) return 'Enter your access token.';
    if (!TOKEN_SHAPE.test(token))
      return 'That is not an access token: a token has no spaces and only letters, digits and - _ . ~ + characters.';
    let me: api.Me;
    try {
      me = await api.fetchMe(token);
    } catch (err) {
      if (err instanceof api.ApiProblem && err.status === 401) return 'This token was not accepted: it is unknown or has been revoked.';
      if (err instanceof api.NetworkError) return 'The server cannot be reached. Check your connection and try again.';
      return (err as Error).message;
    }
    this.enter(me.authentication ? token : null, me, remember);
    return null;
  }

  signOut(reason: string | null = null): void {
    if (this.state.kind === 'signed-in') this.state.dashboard.stop();
    api.setCredentials(null);
    this.forget();
    // The orders this tab kept for an offline reload are not for whoever signs in next.
    forgetLastData(this.tabStorage);
    this.set({ kind: 'signed-out', reason });
  }

  private enter(token: string | null, me: api.Me, remember: boolean): void {
    if (this.state.kind === 'signed-in') this.state.dashboard.stop();
    const generation = ++this.generation;
    setCurrency(me.currency ?? 'USD');
    this.save({ token, me }, remember);
    api.setCredentials(token, () => {
      // Only the session that made the request: a late 401 for an old token ends nothing.
      if (this.state.kind === 'signed-in' && this.state.generation === generation) this.signOut(REVOKED_MESSAGE);
    });
    const dashboard = new Dashboard(me, { onIdentity: (next) => this.save({ token, me: next }, remember) });
    this.set({ kind: 'signed-in', me, dashboard, generation });
    void dashboard.start();
  }

  private saved(): Saved | null {
    for (const storage of [this.tabStorage, this.deviceStorage]) {
      try {
        const raw = storage.getItem(STORAGE_KEY);
        if (!raw) continue;
        const parsed = JSON.parse(raw) as Saved;
        if (parsed && typeof parsed === 'object' && parsed.me && typeof parsed.me.role === 'string') return parsed;
      } catch {
        // Unreadable: as if signed out.
      }
    }
    return null;
  }

  private rememberedOnDevice(): boolean {
    return this.deviceStorage.getItem(STORAGE_KEY) !== null;
  }

  private save(saved: Saved, remember: boolean): void {
    // Without a token there is nothing to protect; the identity is kept for this tab only.
    const keep = remember && saved.token !== null ? this.deviceStorage : this.tabStorage;
    this.forget();
    keep.setItem(STORAGE_KEY, JSON.stringify(saved));
  }

  private forget(): void {
    this.tabStorage.removeItem(STORAGE_KEY);
    this.deviceStorage.removeItem(STORAGE_KEY);
  }
}

function retryDelay(attempt: number): Promise<void> {
  const delay = backoffDelay(attempt, { minMs: 500, maxMs: 30_000 });
  return new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      window.removeEventListener('online', done);
      resolve();
    };
    const timer = setTimeout(done, delay);
    window.addEventListener('online', done);
  });
}
