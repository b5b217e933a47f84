/**
 * Whether one more WebSocket may open: open sockets per credential and per client address, and the
 * distinct views (filters) served at once, each of which costs a frame build per batch.
 */
export class ConnectionLimits {
  private readonly perPrincipal = new Map<string, number>();
  private readonly perAddress = new Map<string, number>();
  private readonly perView = new Map<string, number>();

  /** 0: no limit. */
  constructor(
    private readonly maxPerPrincipal: number,
    private readonly maxPerAddress: number,
    private readonly maxViews = 0,
  ) {}

  /** Why a new socket for this credential, address and view would be refused, or null if it may open. */
  refusal(principal: string, remote: string, view: string): string | null {
    if (this.maxViews > 0 && !this.perView.has(view) && this.perView.size >= this.maxViews) {
      return `This server already streams ${this.maxViews} distinct views (filters); use one of them, or no filter.`;
    }
    // With authentication off every client is 'local': a per-credential cap would mean nothing.
    if (this.maxPerPrincipal > 0 && principal !== 'local' && (this.perPrincipal.get(principal) ?? 0) >= this.maxPerPrincipal) {
      return `At most ${this.maxPerPrincipal} open WebSockets per credential.`;
    }
    if (this.maxPerAddress > 0 && (this.perAddress.get(remote) ?? 0) >= this.maxPerAddress) {
      return `At most ${this.maxPerAddress} open WebSockets per address.`;
    }
    return null;
  }

  add(principal: string, remote: string, view: string): void {
    count(this.perPrincipal, principal, 1);
    count(this.perAddress, remote, 1);
    count(this.perView, view, 1);
  }

  remove(principal: string, remote: string, view: string): void {
    count(this.perPrincipal, principal, -1);
    count(this.perAddress, remote, -1);
    count(this.perView, view, -1);
  }

  /** The credentials with an open socket. */
  principals(): string[] {
    return [...this.perPrincipal.keys()];
  }

  /** Distinct views with open sockets now. */
  get views(): number {
    return this.perView.size;
  }
}

function count(map: Map<string, number>, key: string, delta: number): void {
  const n = (map.get(key) ?? 0) + delta;
  if (n <= 0) map.delete(key);
  else map.set(key, n);
}
