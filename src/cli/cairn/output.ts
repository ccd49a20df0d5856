import { BackendError } from '../../backends/errors.js';

/** Exit status for an error: 2 for a mistake on the command line, 1 for anything else. */
export class UsageProblem extends Error {}

/** Wraps a command's action: errors become one line on stderr and a non-zero exit, never a stack trace. */
export function runAction<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      process.exitCode = err instanceof UsageProblem ? 2 : 1;
      const message = err instanceof Error ? err.message : String(err);
      process.stderr.write(`cairn: ${message}\n`);
      if (process.env.CAIRN_DEBUG === '1' && err instanceof Error && !(err instanceof BackendError)) process.stderr.write(`${err.stack ?? ''}\n`);
    }
  };
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${n} B` : `${value.toFixed(1)} ${units[unit]}`;
}

export function formatTime(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

/**
 * A progress display: on a terminal, one line redrawn a few times a second;
 * elsewhere, a plain line every `plainEvery` ms (or nothing when quiet).
 */
export class Progress {
  private timer: NodeJS.Timeout | null = null;
  private readonly tty = process.stderr.isTTY === true;
  private lastLength = 0;

  constructor(private readonly render: () => string, private readonly quiet: boolean, private readonly plainEvery = 10_000) {}

  start(): void {
    if (this.quiet) return;
    this.timer = setInterval(() => this.draw(), this.tty ? 250 : this.plainEvery);
    this.timer.unref();
  }

  private draw(): void {
    const line = this.render();
    if (this.tty) {
      const padded = line.length < this.lastLength ? line.padEnd(this.lastLength) : line;
      process.stderr.write(`\r${padded.slice(0, (process.stderr.columns ?? 120) - 1)}`);
      this.lastLength = line.length;
    } else {
      process.stderr.write(`${line}\n`);
    }
  }

  /** A message that must not be overwritten by the progress line. */
  log(text: string): void {
    if (this.tty && this.timer !== null) process.stderr.write(`\r${' '.repeat(Math.min(this.lastLength, 200))}\r`);
    process.stderr.write(`${text}\n`);
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    if (this.tty && !this.quiet && this.lastLength > 0) process.stderr.write(`\r${' '.repeat(Math.min(this.lastLength, 200))}\r`);
  }
}
