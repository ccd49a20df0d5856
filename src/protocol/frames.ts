import { Packr } from 'msgpackr';

/** protocol.md, "Framing": 4-byte big-endian length, then one MessagePack value. */
export const MAX_FRAME_BYTES = 64 * 1024 * 1024;
const HEADER_BYTES = 4;

const packr = new Packr({
  useRecords: false,
  moreTypes: false,
  structuredClone: false,
  bundleStrings: false,
  mapsAsObjects: true,
  int64AsType: 'number',
});

export class FrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FrameError';
  }
}

/** Payloads at least this large are written as they are instead of being copied into the encoder's buffer. */
const ZERO_COPY_BYTES = 16 * 1024;

/**
 * Encodes one message as a frame, returned as buffers to write in order.
 * A large binary last element (a block in a put or a get's answer) is not
 * copied: the array and bin headers are encoded by hand in front of it.
 */
export function encodeFrame(message: unknown): Buffer[] {
  const parts = encodeBody(message);
  const length = parts.reduce((sum, part) => sum + part.length, 0);
  if (length > MAX_FRAME_BYTES) {
    throw new FrameError(`message of ${length} bytes is over the 64 MiB frame limit`);
  }
  const header = Buffer.allocUnsafe(HEADER_BYTES);
  header.writeUInt32BE(length, 0);
  return [header, ...parts];
}

function encodeBody(message: unknown): Buffer[] {
  if (!Array.isArray(message) || message.length === 0 || message.length > 15) return [packr.pack(message)];
  const last: unknown = message[message.length - 1];
  if (!(last instanceof Uint8Array) || last.byteLength < ZERO_COPY_BYTES) return [packr.pack(message)];
  const head = message.slice(0, -1).map((element: unknown) => packr.pack(element));
  const binHeader = Buffer.allocUnsafe(5);
  binHeader[0] = 0xc6;
  binHeader.writeUInt32BE(last.byteLength, 1);
  const payload = Buffer.from(last.buffer, last.byteOffset, last.byteLength);
  return [Buffer.from([0x90 | message.length]), ...head, binHeader, payload];
}

/** Decodes a frame body; throws FrameError for anything that is not exactly one MessagePack value. */
export function decodeBody(body: Buffer): unknown {
  try {
    const values = packr.unpackMultiple(body) as unknown[];
    if (values.length !== 1) throw new FrameError(`frame holds ${values.length} MessagePack values, not one`);
    return values[0];
  } catch (err) {
    if (err instanceof FrameError) throw err;
    throw new FrameError(`malformed MessagePack: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/**
 * Incremental frame parser: feed it chunks, it yields whole frame bodies.
 * A length over the limit (or zero) is rejected from the header alone, before
 * anything is buffered for it.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private expected = -1;

  constructor(private readonly maxFrameBytes = MAX_FRAME_BYTES) {}

  /** Returns the frame bodies completed by this chunk. Throws FrameError on a bad length. */
  push(chunk: Buffer): Buffer[] {
    const frames: Buffer[] = [];
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    for (;;) {
      if (this.expected < 0) {
        if (this.buffered < HEADER_BYTES) break;
        const length = this.take(HEADER_BYTES).readUInt32BE(0);
        if (length < 1 || length > this.maxFrameBytes) {
          throw new FrameError(`frame length ${length} is outside 1..${this.maxFrameBytes}`);
        }
        this.expected = length;
      }
      if (this.buffered < this.expected) break;
      frames.push(this.take(this.expected));
      this.expected = -1;
    }
    return frames;
  }

  /** True when a frame has started but not completed (a truncated stream at end of input). */
  get partial(): boolean {
    return this.buffered > 0 || this.expected >= 0;
  }

  private take(count: number): Buffer {
    const first = this.chunks[0];
    if (first !== undefined && first.length >= count) {
      const out = first.subarray(0, count);
      if (first.length === count) this.chunks.shift();
      else this.chunks[0] = first.subarray(count);
      this.buffered -= count;
      return out;
    }
    const out = Buffer.allocUnsafe(count);
    let filled = 0;
    while (filled < count) {
      const head = this.chunks[0] as Buffer;
      const n = Math.min(head.length, count - filled);
      head.copy(out, filled, 0, n);
      filled += n;
      if (n === head.length) this.chunks.shift();
      else this.chunks[0] = head.subarray(n);
    }
    this.buffered -= count;
    return out;
  }
}
