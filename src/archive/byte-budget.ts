/**
 * Bounds the bytes held at once by several readers (a restore's files read
 * ahead block by block): `const release = await budget.take(n)`. Served in
 * order of asking; when nothing is held any amount is granted, so a block
 * larger than the whole budget still goes through.
 */
export class ByteBudget {
  private held = 0;
  private readonly queue: Array<{ bytes: number; grant: () => void }> = [];

  constructor(private readonly limit: number) {}

  async take(bytes: number): Promise<() => void> {
    if (this.queue.length > 0 || !this.fits(bytes)) {
      await new Promise<void>((grant) => this.queue.push({ bytes, grant }));
    } else {
      this.held += bytes;
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.held -= bytes;
      this.grantWaiting();
    };
  }

  private fits(bytes: number): boolean {
    return this.held === 0 || this.held + bytes <= this.limit;
  }

  private grantWaiting(): void {
    for (let next = this.queue[0]; next !== undefined && this.fits(next.bytes); next = this.queue[0]) {
      this.queue.shift();
      this.held += next.bytes;
      next.grant();
    }
  }
}
