import type { Writable } from 'node:stream';

/** Writes a buffer and waits for the stream to take more (backpressure), failing on a stream error. */
export function writeAll(out: Writable, data: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    out.once('error', onError);
    const ok = out.write(data, (err) => {
      if (err) reject(err);
    });
    const done = (): void => {
      out.removeListener('error', onError);
      resolve();
    };
    if (ok) done();
    else out.once('drain', done);
  });
}
