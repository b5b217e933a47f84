import { EventEmitter } from 'node:events';
import pg from 'pg';
import type { Logger } from 'pino';
import { backoffDelay } from '../contract/backoff.js';
import { traceNotification, traceNow } from '../trace.js';

/**
 * The LISTEN connection: a dedicated client, never from the pool (a pooled connection goes back to
 * other users and its LISTEN with it; through a transaction pooler LISTEN does not work at all).
 *
 * A notification is a doorbell: it tells the feed to look at the change log. A small transaction's also
 * says what it changed (a summary, feed/summary.ts), which the feed may use instead of a read, but never
 * needs: a notification lost while we are disconnected costs nothing, because after every (re)connect we
 * emit 'connected' and the feed reads the log from where it stopped. The connection is watched by a keepalive
 * query with a timeout, because a connection whose packets vanish (a NAT timing out, a suspended Neon
 * compute, a cut cable) does not fail, it just stops answering. On any failure the client is destroyed
 * and replaced after a capped exponential backoff with jitter. Nothing here throws to the caller.
 */
export const CHANNEL = 'order_changes';
/** A channel name as feed_summary_channel() makes it (migrations/0015): safe to write into LISTEN. */
const SUMMARY_CHANNEL = /^order_summaries_[0-9a-f]{32}$/;

export interface ListenerOptions {
  clientConfig: pg.ClientConfig;
  keepaliveMs: number;
  keepaliveTimeoutMs: number;
  backoffMinMs: number;
  backoffMaxMs: number;
  log: Logger;
}

export type ListenerStatus = 'stopped' | 'connecting' | 'connected' | 'waiting';

export interface ListenerState {
  status: ListenerStatus;
  since: number;
  reconnects: number;
  /** Notifications received on the channel, over all connections. */
  notifications: number;
  lastError: string | null;
  nextAttemptAt: number | null;
}

interface ListenerEvents {
  connected: [];
  disconnected: [reason: string];
  /** The payload: '' for the doorbell, or a summary. */
  notify: [payload: string];
}

/** node-postgres does not expose a way to destroy a client's socket; a dead peer never ends it. */
function destroySocket(client: pg.Client): void {
  (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
}

export class Listener extends EventEmitter<ListenerEvents> {
  private client: pg.Client | null = null;
  private generation = 0;
  private attempt = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private summaries: string | null = null;
  /** The summaries' channel the current connection listens on. */
  private listenedOn: string | null = null;
  private keepaliveTimer: NodeJS.Timeout | null = null;
  private readonly current: ListenerState = {
    status: 'stopped',
    since: Date.now(),
    reconnects: 0,
    notifications: 0,
    lastError: null,
    nextAttemptAt: null,
  };

  constructor(private readonly options: ListenerOptions) {
    super();
  }

  get state(): Readonly<ListenerState> {
    return { ...this.current };
  }

  /**
   * The channel this database generation's summaries travel on (feed/summary.ts), secret to the key's
   * holders; also listened on from the next moment, on this connection and every later one. Null: none.
   */
  set summaryChannel(channel: string | null) {
    this.summaries = channel !== null && SUMMARY_CHANNEL.test(channel) ? channel : null;
    if (this.current.status === 'connected') this.listenForSummaries();
  }

  /** Makes the current connection listen on the summaries' channel (and on no earlier one). */
  private listenForSummaries(): void {
    const client = this.client;
    const next = this.summaries;
    const before = this.listenedOn;
    if (!client || next === before) return;
    this.listenedOn = next;
    const generation = this.generation;
    const switched = async () => {
      if (before) await client.query(`UNLISTEN ${before}`);
      if (next) await client.query(`LISTEN ${next}`);
    };
    // A failure here is the connection's: the keepalive finds it, and the next connection listens anew.
    switched().catch((err: unknown) => this.fail(generation, client, err));
  }

  start(): void {
    if (this.current.status !== 'stopped') return;
    this.attempt = 0;
    void this.connect();
  }

  /** Disconnects and stays disconnected until start(). */
  async stop(): Promise<void> {
    this.generation++;
    this.clearTimers();
    const client = this.client;
    this.client = null;
    this.setStatus('stopped');
    if (client) await this.endClient(client);
  }

  private setStatus(status: ListenerStatus): void {
    if (this.current.status !== status) this.current.since = Date.now();
    this.current.status = status;
  }

  private clearTimers(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.keepaliveTimer) clearTimeout(this.keepaliveTimer);
    this.retryTimer = null;
    this.keepaliveTimer = null;
    this.current.nextAttemptAt = null;
  }

  private async endClient(client: pg.Client): Promise<void> {
    const ended = client.end().catch(() => undefined);
    const timeout = new Promise((r) => setTimeout(r, 1000).unref());
    await Promise.race([ended, timeout]);
    destroySocket(client);
  }

  private async connect(): Promise<void> {
    const generation = ++this.generation;
    this.setStatus('connecting');
    this.current.nextAttemptAt = null;
    const client = new pg.Client(this.options.clientConfig);
    this.client = client;
    client.on('error', (err) => this.fail(generation, client, err));
    client.on('end', () => this.fail(generation, client, new Error('connection ended')));
    // Until 'connected' is emitted the feed has not read since it stopped listening, so a summary could
    // extend a head that lacks what was sent meanwhile: until then, every notification is a doorbell.
    let listening = false;
    client.on('notification', (msg) => {
      if (generation !== this.generation) return;
      const summary = this.listenedOn !== null && msg.channel === this.listenedOn;
      if (msg.channel !== CHANNEL && !summary) return;
      this.current.notifications++;
      if (traceNotification.hasSubscribers) traceNotification.publish({ at: traceNow(), payload: msg.payload ?? '' });
      // The public channel only ever rings; a summary counts once the feed has read since connecting.
      this.emit('notify', summary && listening ? (msg.payload ?? '') : '');
    });
    try {
      await client.connect();
      await this.withTimeout(client.query(`LISTEN ${CHANNEL}`), this.options.keepaliveTimeoutMs);
      const summaries = this.summaries;
      if (summaries) await this.withTimeout(client.query(`LISTEN ${summaries}`), this.options.keepaliveTimeoutMs);
      this.listenedOn = summaries;
    } catch (err) {
      this.fail(generation, client, err);
      return;
    }
    if (generation !== this.generation) return;
    this.attempt = 0;
    this.current.lastError = null;
    this.setStatus('connected');
    this.options.log.info({ event: 'listener.connected', reconnects: this.current.reconnects }, 'listener connected');
    listening = true;
    this.listenForSummaries();
    this.emit('connected');
    this.scheduleKeepalive(generation, client);
  }

  private withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
      promise.then(
        (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        (e: unknown) => {
          clearTimeout(timer);
          reject(e);
        },
      );
    });
  }

  private scheduleKeepalive(generation: number, client: pg.Client): void {
    this.keepaliveTimer = setTimeout(async () => {
      if (generation !== this.generation) return;
      try {
        await this.withTimeout(client.query('SELECT 1'), this.options.keepaliveTimeoutMs);
        if (generation === this.generation) this.scheduleKeepalive(generation, client);
      } catch (err) {
        this.fail(generation, client, err);
      }
    }, this.options.keepaliveMs);
  }

  private fail(generation: number, client: pg.Client, err: unknown): void {
    if (generation !== this.generation) return;
    this.generation++;
    this.clearTimers();
    this.client = null;
    destroySocket(client);
    void client.end().catch(() => undefined);
    const reason = err instanceof Error ? err.message : String(err);
    const wasConnected = this.current.status === 'connected';
    this.current.lastError = reason;
    const delay = backoffDelay(this.attempt++, { minMs: this.options.backoffMinMs, maxMs: this.options.backoffMaxMs });
    this.current.reconnects++;
    this.current.nextAttemptAt = Date.now() + delay;
    this.setStatus('waiting');
    this.options.log.warn(
      { event: wasConnected ? 'listener.lost' : 'listener.connect_failed', reason, retryInMs: delay, attempt: this.attempt },
      wasConnected ? 'listener connection lost; reconnecting' : 'listener could not connect; retrying',
    );
    if (wasConnected) this.emit('disconnected', reason);
    this.retryTimer = setTimeout(() => void this.connect(), delay);
  }
}
