import WebSocket from 'ws';
import { TestFeedClient } from '../test/helpers/feed-client.js';
import { between, fork, type Random, sleep } from './random.js';

/**
 * The WebSocket population: TestFeedClients (test/helpers/feed-client.ts, autoResync on) behind the entry
 * point. Each has a supervisor: when its socket is closed (an instance died, a 1012 restart, a 1013 for
 * a slow reader, its own leaving) it reconnects with jitter, usually resuming with its last cursor,
 * sometimes starting over from a fresh GET /orders. Some are slow readers (pause their socket for
 * seconds), some come and go, a few leave for good and some join late.
 */
export type Role = 'steady' | 'slow' | 'flaky' | 'leaver';

export interface SoakClient {
  client: TestFeedClient;
  role: Role;
  joinedAt: number;
  leftAt?: number;
  reconnects: number;
  freshSnapshots: number;
  connectFailures: number;
  paused: boolean;
  /** Set when it disconnects on purpose (a flaky client going away for a while). */
  away: boolean;
}

export class Population {
  readonly clients: SoakClient[] = [];
  private stopped = false;
  private readonly loops: Promise<void>[] = [];

  constructor(
    private readonly entry: (random: Random) => string,
    private readonly random: Random,
    private readonly started: number,
  ) {}

  private now(): number {
    return Date.now() - this.started;
  }

  private roleFor(random: Random): Role {
    const r = random();
    return r < 0.06 ? 'slow' : r < 0.2 ? 'flaky' : r < 0.25 ? 'leaver' : 'steady';
  }

  /** Opens `n` clients now (snapshot, then stream). */
  async open(n: number): Promise<void> {
    const batch: Promise<void>[] = [];
    for (let i = 0; i < n; i++) batch.push(this.add(fork(this.random)));
    await Promise.all(batch);
  }

  async add(random: Random): Promise<void> {
    const base = this.entry(random);
    const name = `c${this.clients.length}`;
    const client = new TestFeedClient({ http: base, ws: `${base.replace('http', 'ws')}/ws`, name, autoResync: true });
    const sc: SoakClient = {
      client,
      role: this.roleFor(random),
      joinedAt: this.now(),
      reconnects: 0,
      freshSnapshots: 0,
      connectFailures: 0,
      paused: false,
      away: false,
    };
    this.clients.push(sc);
    await this.bringUp(sc, random, true);
    this.loops.push(this.supervise(sc, random));
  }

  private resyncing(c: TestFeedClient): Promise<void> | null {
    return (c as unknown as { resyncing: Promise<void> | null }).resyncing;
  }

  /** Connects (resuming, or from a fresh snapshot), retrying with backoff until it works or the soak stops. */
  private async bringUp(sc: SoakClient, random: Random, fresh: boolean): Promise<void> {
    let delay = 100;
    let wantSnapshot = fresh;
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline) {
      if (sc.leftAt !== undefined) return;
      try {
        await this.resyncing(sc.client)?.catch(() => undefined);
        if (sc.client.connected) return;
        const lastClose = sc.client.closes[sc.client.closes.length - 1]?.code;
        if (wantSnapshot || lastClose === 4001 || sc.client.cursor === undefined) {
          await sc.client.loadSnapshot();
          if (!fresh) sc.freshSnapshots++;
        }
        wantSnapshot = false;
        if (sc.client.socket && sc.client.socket.readyState !== WebSocket.CLOSED) {
          await sc.client.disconnect();
        }
        await sc.client.connect();
        if (sc.client.connected) return;
      } catch {
        sc.connectFailures++;
      }
      await sleep(delay * between(random, 0.5, 1.5));
      delay = Math.min(delay * 2, 2000);
    }
  }

  private async supervise(sc: SoakClient, random: Random): Promise<void> {
    let nextAct = Date.now() + between(random, 3000, 15_000);
    while (!this.stopped) {
      await sleep(between(random, 150, 400));
      if (this.stopped || sc.leftAt !== undefined) return;
      if (Date.now() >= nextAct && !sc.away) {
        nextAct = Date.now() + between(random, 5000, 20_000);
        if (sc.role === 'slow' && sc.client.connected && !sc.paused) {
          sc.paused = true;
          sc.client.pauseReading();
          await sleep(between(random, 3000, 12_000));
          sc.client.resumeReading();
          sc.paused = false;
        } else if (sc.role === 'flaky') {
          sc.away = true;
          await sc.client.disconnect();
          await sleep(between(random, 500, 5000));
          sc.away = false;
        } else if (sc.role === 'leaver' && random() < 0.3) {
          sc.leftAt = this.now();
          await sc.client.close();
          return;
        }
      }
      if (!sc.client.connected && !sc.away) {
        await sleep(between(random, 50, 1000));
        sc.reconnects++;
        await this.bringUp(sc, random, random() < 0.1);
      }
    }
  }

  /** Stops acting (no more pauses, leaving); slow readers read again; every remaining client is brought up. */
  async quiesce(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
    for (const sc of this.clients) {
      if (sc.paused) {
        sc.client.resumeReading();
        sc.paused = false;
      }
    }
    await Promise.all(this.active().map((sc) => this.bringUp(sc, fork(this.random), false)));
  }

  active(): SoakClient[] {
    return this.clients.filter((sc) => sc.leftAt === undefined);
  }

  /** Clients that only ever reconnect when closed (no deliberate pauses or absences), and are not paused right now. */
  steady(): SoakClient[] {
    return this.clients.filter((sc) => sc.role === 'steady' && sc.leftAt === undefined && !sc.paused);
  }

  /**
   * A network pause: `fraction` of the connected clients stop reading for `ms` (their TCP windows fill,
   * the server's sends pile up, pings go unanswered), then read again. Resolves with how many.
   */
  async networkPause(random: Random, fraction: number, ms: number): Promise<number> {
    const victims = this.active().filter((sc) => sc.client.connected && !sc.paused && random() < fraction);
    for (const sc of victims) {
      sc.paused = true;
      sc.client.pauseReading();
    }
    await sleep(ms);
    for (const sc of victims) {
      // Its socket may have been closed meanwhile: resuming must not throw and leave the rest paused.
      try {
        sc.client.resumeReading();
      } finally {
        sc.paused = false;
      }
    }
    return victims.length;
  }

  async close(): Promise<void> {
    await Promise.all(this.clients.map((sc) => sc.client.close().catch(() => undefined)));
  }
}
