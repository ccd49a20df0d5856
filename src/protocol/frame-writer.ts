import type { Writable } from 'node:stream';
import { encodeFrame } from './frames.js';

/** Writes frames to a stream, and tells whether the stream wants the writer to wait. */
export class FrameWriter {
  private closed = false;

  constructor(private readonly output: Writable) {
    output.on('error', () => {
      this.closed = true;
    });
  }

  /** Writes one message; returns false when the stream's buffer is full (wait for `drained`). */
  write(message: unknown): boolean {
    if (this.closed || this.output.destroyed || this.output.writableEnded) return false;
    const parts = encodeFrame(message);
    this.output.cork();
    let ok = true;
    for (const part of parts) ok = this.output.write(part);
    this.output.uncork();
    return ok;
  }

  get congested(): boolean {
    return this.output.writableNeedDrain;
  }

  drained(): Promise<void> {
    if (!this.output.writableNeedDrain || this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.output.off('drain', done);
        this.output.off('close', done);
        this.output.off('error', done);
        resolve();
      };
      this.output.on('drain', done);
      this.output.on('close', done);
      this.output.on('error', done);
    });
  }

  end(): Promise<void> {
    if (this.closed || this.output.writableEnded) return Promise.resolve();
    this.closed = true;
    return new Promise((resolve) => {
      this.output.end(() => resolve());
      this.output.once('error', () => resolve());
    });
  }
}
