/** Open WebSockets per credential and per client address, and whether one more may open. */
export class ConnectionLimits {
  private readonly perPrincipal = new Map<string, number>();
  private readonly perAddress = new Map<string, number>();

  /** 0: no limit. */
  constructor(
    private readonly maxPerPrincipal: number,
    private readonly maxPerAddress: number,
  ) {}

  /** Why a new socket for this credential and address would be refused, or null if it may open. */
  refusal(principal: string, remote: string): string | null {
    // With authentication off every client is 'local': a per-credential cap would mean nothing.
    if (this.maxPerPrincipal > 0 && principal !== 'local' && (this.perPrincipal.get(principal) ?? 0) >= this.maxPerPrincipal) {
      return `At most ${this.maxPerPrincipal} open WebSockets per credential.`;
    }
    if (this.maxPerAddress > 0 && (this.perAddress.get(remote) ?? 0) >= this.maxPerAddress) {
      return `At most ${this.maxPerAddress} open WebSockets per address.`;
    }
    return null;
  }

  add(principal: string, remote: string): void {
    count(this.perPrincipal, principal, 1);
    count(this.perAddress, remote, 1);
  }

  remove(principal: string, remote: string): void {
    count(this.perPrincipal, principal, -1);
    count(this.perAddress, remote, -1);
  }

  /** The credentials with an open socket. */
  principals(): string[] {
    return [...this.perPrincipal.keys()];
  }
}

function count(map: Map<string, number>, key: string, delta: number): void {
  const n = (map.get(key) ?? 0) + delta;
  if (n <= 0) map.delete(key);
  else map.set(key, n);
}
