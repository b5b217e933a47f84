/**
 * A counting semaphore with weights: at most `capacity` units held at once, the others queue in order.
 * A request larger than the whole capacity is let through alone, so nothing waits forever.
 */
export class Gate {
  private held = 0;
  private readonly waiting: { units: number; resolve: () => void }[] = [];

  constructor(private readonly capacity: number) {}

  async enter(units = 1): Promise<void> {
    if (this.waiting.length === 0 && this.fits(units)) {
      this.held += units;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push({ units, resolve }));
  }

  leave(units = 1): void {
    this.held = Math.max(0, this.held - units);
    for (let next = this.waiting[0]; next && this.fits(next.units); next = this.waiting[0]) {
      this.waiting.shift();
      this.held += next.units;
      next.resolve();
    }
  }

  private fits(units: number): boolean {
    return this.held === 0 || this.held + units <= this.capacity;
  }
}
