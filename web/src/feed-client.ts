import { type Change, CLOSE, type ServerMessage } from '../../src/protocol.ts';
import { parseStatsDelta } from './money.ts';

export type Delta = NonNullable<ReturnType<typeof parseStatsDelta>>;

/**
 * The connection to `/ws`. It owns one thing the rest of the page relies on: the cursor of the last
 * change (or heartbeat) it handed over, so that every reconnect resumes exactly where the page is and
 * the server sends each later change once.
 *
 * Reconnects use capped exponential backoff with full jitter, so a fleet of dashboards does not come
 * back in lockstep after a server restart; they happen at once when the browser says it is online again
 * or the tab becomes visible (a sleeping laptop's timers are not to be trusted). A socket can also die
 * without a close event (a NAT forgets it, Wi-Fi changes): the server sends a heartbeat every
 * `heartbeat_ms` when idle, so silence for a few of those means the socket is dead and is replaced.
 *
 * The page subscribes to its view: `query()` (status, q, stats=1) goes with every connect, and
 * `resubscribe` moves to another view at the cursor of a snapshot taken for it (docs/protocol.md). Each
 * message's live-totals delta (`stats`) is handed over with its changes, exactly once, like them.
 *
 * A `reset` means the cursor cannot be resumed (the log was pruned past it): the page must reload its
 * snapshot and connect with the snapshot's cursor; `onReset` does that and returns the new cursor. Until
 * a reload has succeeded, every retry (the backoff's, `online`, a visible tab, "Retry now") retries the
 * reload, never the stream: the old cursor would only be reset again, or, on a server that can still
 * serve it, stream changes onto a page that was told its data has a gap.
 *
 * A browser cannot set headers on a WebSocket, so the token travels as a `bearer.<token>` subprotocol
 * next to `orders.v1`. Nor does it show why an upgrade failed: a socket refused with 401 (token revoked)
 * looks like any dropped connection. So when a socket closes before it ever opened, or with 1008 (the
 * server closes a revoked token's sockets with it), `verify` asks the REST API who we are, where a 401
 * is visible; the retry goes ahead meanwhile and is cancelled if the page signs out.
 */
export type ConnectionState =
  | { kind: 'connecting'; attempt: number }
  | { kind: 'live'; since: number }
  | { kind: 'reconnecting'; attempt: number; nextAttemptAt: number; reason: string }
  | { kind: 'offline' };

export interface FeedClientOptions {
  /** `/ws` on this origin unless given. */
  url?: string;
  onChanges: (changes: Change[], deltas: Delta[]) => void;
  /** The view's query parameters besides `after` (e.g. `status=pending&q=lap&stats=1`). */
  query?: () => string;
  onState: (state: ConnectionState) => void;
  /** Reload the snapshot; resolves to its cursor. */
  onReset: () => Promise<string>;
  /** Subprotocols to offer; the server answers `orders.v1`. */
  protocols?: () => string[];
  /** Called when the server may have refused our credentials (see above). */
  verify?: () => Promise<void>;
  backoffMinMs?: number;
  backoffMaxMs?: number;
}

const WATCHDOG_BEATS = 2.5;

export class FeedClient {
  private socket: WebSocket | null = null;
  private cursor = '';
  /** The first messages of a transaction that goes on (`more`); dropped on reconnect, which resends it whole. */
  private held: Change[] = [];
  private heldDeltas: Delta[] = [];
  private attempt = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private watchdog: ReturnType<typeof setTimeout> | undefined;
  private heartbeatMs = 15_000;
  private resetPending = false;
  /** A reset's reload failed: the next attempt reloads the snapshot instead of connecting. */
  private reloadPending = false;
  private stopped = false;
  state: ConnectionState = { kind: 'connecting', attempt: 0 };

  constructor(private readonly options: FeedClientOptions) {
    window.addEventListener('online', this.retryNow);
    window.addEventListener('offline', this.wentOffline);
    document.addEventListener('visibilitychange', this.onVisibility);
  }

  /** Starts streaming after `cursor` (the snapshot's X-Change-Cursor). */
  start(cursor: string): void {
    this.cursor = cursor;
    this.reloadPending = false;
    this.connect();
  }

  /** Another view: forget the socket of the old one and stream the new query from `cursor`. */
  resubscribe(cursor: string): void {
    this.detach();
    this.cursor = cursor;
    this.reloadPending = false;
    this.attempt = 0;
    this.connect();
  }

  /** Drops the current socket without reconnecting (while the page loads a new view's snapshot). */
  detach(): void {
    const socket = this.socket;
    this.socket = null;
    clearTimeout(this.watchdog);
    clearTimeout(this.retryTimer);
    socket?.close(1000, 'changing view');
  }

  get lastCursor(): string {
    return this.cursor;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.watchdog);
    window.removeEventListener('online', this.retryNow);
    window.removeEventListener('offline', this.wentOffline);
    document.removeEventListener('visibilitychange', this.onVisibility);
    this.socket?.close(1000, 'page closed');
  }

  private setState(state: ConnectionState): void {
    this.state = state;
    this.options.onState(state);
  }

  private connect(): void {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    if (!navigator.onLine) {
      this.setState({ kind: 'offline' });
      return;
    }
    this.setState({ kind: 'connecting', attempt: this.attempt });
    const base = this.options.url ?? `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/ws`;
    let socket: WebSocket;
    try {
      this.held = [];
      this.heldDeltas = [];
      const extra = this.options.query?.() ?? '';
      socket = new WebSocket(
        `${base}?after=${encodeURIComponent(this.cursor)}${extra ? `&${extra}` : ''}`,
        this.options.protocols?.() ?? [],
      );
    } catch (err) {
      // A subprotocol the browser will not send (a token with characters outside RFC 7230's token set).
      this.scheduleRetry((err as Error).message);
      return;
    }
    this.socket = socket;
    let opened = false;
    socket.onopen = () => {
      opened = true;
    };
    socket.onmessage = (event) => {
      if (this.socket !== socket) return;
      this.armWatchdog();
      const text = event.data as string;
      const message = JSON.parse(text) as ServerMessage;
      if (message.type === 'changes' && message.stats) {
        const delta = parseStatsDelta(text);
        if (delta) this.heldDeltas.push(delta);
      }
      this.onMessage(message);
    };
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      clearTimeout(this.watchdog);
      this.onClose(event.code);
      if (!this.stopped && navigator.onLine && (event.code === CLOSE.POLICY || !opened)) void this.options.verify?.();
    };
    // Not receiving hello in time counts like silence.
    this.armWatchdog();
  }

  private onMessage(message: ServerMessage): void {
    switch (message.type) {
      case 'hello':
        this.heartbeatMs = message.heartbeat_ms;
        this.attempt = 0;
        this.armWatchdog();
        this.setState({ kind: 'live', since: Date.now() });
        return;
      case 'changes': {
        // A transaction too large for one message comes in several: the page sees it only whole.
        this.held.push(...message.changes);
        if (message.more) return;
        const changes = this.held;
        const deltas = this.heldDeltas;
        this.held = [];
        this.heldDeltas = [];
        // Hand over first, then advance: a reconnect never resumes past a change the page did not apply.
        if (changes.length > 0 || deltas.length > 0) this.options.onChanges(changes, deltas);
        this.cursor = message.cursor;
        return;
      }
      case 'heartbeat':
        this.cursor = message.cursor;
        return;
      case 'reset':
        this.resetPending = true;
        return;
      default:
        return;
    }
  }

  private onClose(code: number): void {
    if (this.stopped) return;
    if (this.resetPending || code === CLOSE.RESET) {
      this.resetPending = false;
      this.reload();
      return;
    }
    if (!navigator.onLine) {
      this.setState({ kind: 'offline' });
      return;
    }
    const reason =
      code === CLOSE.RESTART
        ? 'server restarting'
        : code === CLOSE.SLOW_CONSUMER
          ? 'fell behind'
          : code === 4000
            ? 'no heartbeat'
            : code === CLOSE.POLICY
              ? 'refused by the server'
              : 'connection lost';
    this.scheduleRetry(reason);
  }

  private reload(): void {
    this.reloadPending = true;
    this.setState({ kind: 'connecting', attempt: this.attempt });
    this.options.onReset().then(
      (cursor) => {
        if (this.stopped || !this.reloadPending) return;
        this.reloadPending = false;
        this.cursor = cursor;
        this.connect();
      },
      () => {
        if (this.stopped || !this.reloadPending) return;
        this.scheduleRetry('reloading after reset failed');
      },
    );
  }

  /** The next attempt: the reload a reset still needs, or the stream from the cursor. */
  private resume(): void {
    if (this.reloadPending) this.reload();
    else this.connect();
  }

  private scheduleRetry(reason: string): void {
    const min = this.options.backoffMinMs ?? 500;
    const max = this.options.backoffMaxMs ?? 30_000;
    const ceiling = Math.min(max, min * 2 ** this.attempt);
    // "Equal jitter": at least half the ceiling, so a dead server is not hammered, the rest random.
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.attempt++;
    this.setState({ kind: 'reconnecting', attempt: this.attempt, nextAttemptAt: Date.now() + delay, reason });
    this.retryTimer = setTimeout(() => this.resume(), delay);
  }

  private armWatchdog(): void {
    clearTimeout(this.watchdog);
    this.watchdog = setTimeout(
      () => {
        const socket = this.socket;
        if (!socket) return;
        // close() on a dead TCP connection may take long to fire onclose: detach and move on at once.
        this.socket = null;
        socket.close(4000, 'no heartbeat');
        this.onClose(4000);
      },
      this.heartbeatMs * WATCHDOG_BEATS + 1000,
    );
  }

  /** Ends a backoff wait at once (the user asked, or the API answers again). */
  reconnectNow(): void {
    this.retryNow();
  }

  private readonly retryNow = (): void => {
    if (this.stopped || this.socket || this.state.kind === 'live') return;
    if (this.state.kind === 'connecting') return;
    this.resume();
  };

  private readonly wentOffline = (): void => {
    const socket = this.socket;
    this.socket = null;
    clearTimeout(this.watchdog);
    clearTimeout(this.retryTimer);
    socket?.close(1000, 'offline');
    this.setState({ kind: 'offline' });
  };

  private readonly onVisibility = (): void => {
    if (document.visibilityState === 'visible') this.retryNow();
  };
}
