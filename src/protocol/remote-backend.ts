import type { Readable, Writable } from 'node:stream';
import type {
  AdminResult, Backend, BackendInfo, BackendStats, BlockPage, LogLevel,
} from '../backends/backend.js';
import { BackendError, isErrorCode } from '../backends/errors.js';
import { FrameWriter } from './frame-writer.js';
import { decodeBody, FrameDecoder } from './frames.js';
import { isLogLevel, parseHello, type Request } from './messages.js';
import { requestToWire } from './messages.js';

type RequestWithoutId = Request extends infer R ? (R extends Request ? Omit<R, 'id'> : never) : never;

interface Pending {
  resolve(value: unknown): void;
  reject(err: BackendError): void;
}

export interface RemoteOptions {
  /** What to call the far end in error messages (the redacted identifier). */
  label: string;
  /** Requests on the wire at once; further calls wait their turn, in order. */
  maxInFlight?: number;
  onLog?: (level: LogLevel, text: string) => void;
  /** Extra words for the error when the stream ends (e.g. the child's stderr). */
  describeEnd?: () => string;
  /** Called after the `close` exchange, to let the owner reap the process. */
  onClosed?: () => Promise<void>;
}

/**
 * The client side of protocol.md: a Backend whose every call is a request on
 * the wire, pipelined with ids under a bounded window and matched by id.
 */
export class RemoteBackend implements Backend {
  private readonly pending = new Map<number, Pending>();
  private readonly waiting: Array<() => void> = [];
  private readonly writer: FrameWriter;
  private readonly decoder = new FrameDecoder();
  private readonly maxInFlight: number;
  private nextId = 1;
  private ended: BackendError | null = null;
  private closed = false;
  private greeting: BackendInfo | null = null;
  private readonly greeted: Promise<BackendInfo>;
  private resolveGreeting!: (info: BackendInfo) => void;
  private rejectGreeting!: (err: BackendError) => void;

  private constructor(input: Readable, output: Writable, private readonly options: RemoteOptions) {
    this.writer = new FrameWriter(output);
    this.maxInFlight = options.maxInFlight ?? 64;
    this.greeted = new Promise((resolve, reject) => {
      this.resolveGreeting = resolve;
      this.rejectGreeting = reject;
    });
    input.on('data', (chunk: Buffer) => this.receive(chunk));
    input.on('end', () => this.fail('the backend closed its output'));
    input.on('close', () => this.fail('the backend closed its output'));
    input.on('error', (err) => this.fail(`reading from the backend failed: ${err.message}`));
    output.on('error', (err) => this.fail(`writing to the backend failed: ${err.message}`));
  }

  /** Waits for the greeting (or `fatal`) and returns a ready backend. */
  static async connect(input: Readable, output: Writable, options: RemoteOptions): Promise<RemoteBackend> {
    const remote = new RemoteBackend(input, output, options);
    await remote.greeted;
    return remote;
  }

  info(): BackendInfo {
    if (this.greeting === null) throw new BackendError('unavailable', 'no greeting yet');
    return this.greeting;
  }

  /** Ends the connection with an error for everyone waiting (e.g. the greeting timed out). */
  abort(reason: string): void {
    this.fail(reason);
  }

  put(key: string, data: Uint8Array): Promise<void> {
    return this.call({ op: 'put', key, data }).then(() => undefined);
  }

  exists(key: string): Promise<boolean> {
    return this.call({ op: 'exists', key }).then((r) => expect(r, typeof r === 'boolean', 'a boolean'));
  }

  existsMany(keys: string[]): Promise<boolean[]> {
    return this.call({ op: 'existsMany', keys }).then((r) =>
      expect(r, Array.isArray(r) && r.length === keys.length && r.every((b) => typeof b === 'boolean'), 'an array of booleans'));
  }

  get(key: string): Promise<Uint8Array | null> {
    return this.call({ op: 'get', key }).then((r) => expect(r, r === null || r instanceof Uint8Array, 'bin or nil'));
  }

  remove(key: string): Promise<boolean> {
    return this.call({ op: 'remove', key }).then((r) => expect(r, typeof r === 'boolean', 'a boolean'));
  }

  listBlocks(cursor: string | null, limit: number): Promise<BlockPage> {
    return this.call({ op: 'listBlocks', cursor, limit }).then((r) =>
      expect(r, Array.isArray(r) && r.length === 2 && Array.isArray(r[0]) && (r[1] === null || typeof r[1] === 'string'), '[keys, cursor]'));
  }

  setTag(name: string, value: Uint8Array): Promise<void> {
    return this.call({ op: 'setTag', name, value }).then(() => undefined);
  }

  getTag(name: string): Promise<Uint8Array | null> {
    return this.call({ op: 'getTag', name }).then((r) => expect(r, r === null || r instanceof Uint8Array, 'bin or nil'));
  }

  removeTag(name: string): Promise<boolean> {
    return this.call({ op: 'removeTag', name }).then((r) => expect(r, typeof r === 'boolean', 'a boolean'));
  }

  listTags(): Promise<string[]> {
    return this.call({ op: 'listTags' }).then((r) =>
      expect(r, Array.isArray(r) && r.every((n) => typeof n === 'string'), 'an array of names'));
  }

  lockTag(name: string, owner: string, ttlSeconds: number): Promise<boolean> {
    return this.call({ op: 'lockTag', name, owner, ttl: ttlSeconds }).then((r) => expect(r, typeof r === 'boolean', 'a boolean'));
  }

  unlockTag(name: string, owner: string): Promise<void> {
    return this.call({ op: 'unlockTag', name, owner }).then(() => undefined);
  }

  tagLocked(name: string): Promise<string | null> {
    return this.call({ op: 'tagLocked', name }).then((r) => expect(r, r === null || typeof r === 'string', 'an owner or nil'));
  }

  flush(): Promise<void> {
    return this.call({ op: 'flush' }).then(() => undefined);
  }

  stats(): Promise<BackendStats> {
    return this.call({ op: 'stats' }).then((r) =>
      expect(r, typeof r === 'object' && r !== null && !Array.isArray(r), 'a map'));
  }

  admin(command: string, args: string[]): Promise<AdminResult> {
    return this.call({ op: 'admin', command, args }).then((r) => {
      const result = expect<AdminResult>(r, typeof r === 'object' && r !== null && typeof (r as AdminResult).text === 'string', '{text, data}');
      return { text: result.text, data: result.data ?? null };
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.ended === null) {
      try {
        await this.send({ op: 'close' });
      } catch (err) {
        if (!(err instanceof BackendError && this.ended !== null)) throw err;
      }
    }
    await this.writer.end();
    await this.options.onClosed?.();
  }

  private call(request: RequestWithoutId): Promise<unknown> {
    if (this.closed) return Promise.reject(new BackendError('unavailable', `${this.options.label}: the archive is closed`));
    return this.send(request);
  }

  private async send(request: RequestWithoutId): Promise<unknown> {
    if (this.pending.size >= this.maxInFlight || this.waiting.length > 0) {
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
    if (this.ended !== null) throw this.ended;
    const id = this.nextId;
    this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
    const result = new Promise<unknown>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.writer.write(requestToWire({ ...request, id } as Request));
    return result;
  }

  private receive(chunk: Buffer): void {
    let bodies: Buffer[];
    try {
      bodies = this.decoder.push(chunk);
    } catch (err) {
      this.fail(`the backend sent a bad frame: ${(err as Error).message}`);
      return;
    }
    for (const body of bodies) {
      let message: unknown;
      try {
        message = decodeBody(body);
      } catch (err) {
        this.fail(`the backend sent a bad frame: ${(err as Error).message}`);
        return;
      }
      this.dispatch(message);
    }
  }

  private dispatch(message: unknown): void {
    if (!Array.isArray(message)) return this.fail('the backend sent a message that is not an array');
    const [head, second, third] = message as unknown[];
    if (head === 'log') {
      if (isLogLevel(second) && typeof third === 'string') this.options.onLog?.(second, third);
      return;
    }
    if (this.greeting === null) {
      if (head === 'fatal') {
        const body = (second ?? {}) as { code?: unknown; message?: unknown };
        const code = isErrorCode(body.code) ? body.code : 'unavailable';
        return this.fail(`${typeof body.message === 'string' ? body.message : 'fatal error'}`, code, true);
      }
      try {
        this.greeting = parseHello(message);
      } catch (err) {
        return this.fail((err as Error).message);
      }
      this.resolveGreeting(this.greeting);
      return;
    }
    if (head === 'fatal') {
      const body = (second ?? {}) as { message?: unknown };
      return this.fail(`fatal: ${typeof body.message === 'string' ? body.message : 'unknown'}`);
    }
    const waiter = typeof head === 'number' ? this.pending.get(head) : undefined;
    if (waiter === undefined) return this.fail('the backend answered a request that is not in flight');
    this.pending.delete(head as number);
    this.waiting.shift()?.();
    if (second === 0) {
      waiter.resolve(third);
    } else {
      const body = (third ?? {}) as { code?: unknown; message?: unknown };
      const code = isErrorCode(body.code) ? body.code : 'internal';
      waiter.reject(new BackendError(code, typeof body.message === 'string' ? body.message : code));
    }
  }

  private fail(reason: string, code: BackendError['code'] = 'unavailable', fatal = false): void {
    if (this.ended !== null) return;
    // Before the greeting, whoever is connecting words the error (it can wait for the child's stderr).
    const extra = this.greeting === null ? '' : this.options.describeEnd?.() ?? '';
    this.ended = fatal
      ? new FatalError(code, `${this.options.label}: ${reason}`)
      : new BackendError(code, `${this.options.label}: ${reason}${extra}`);
    this.rejectGreeting(this.ended);
    for (const waiter of this.pending.values()) waiter.reject(this.ended);
    this.pending.clear();
    for (const wake of this.waiting.splice(0)) wake();
  }
}

/** A backend's `fatal` message: it says all there is to say. */
export class FatalError extends BackendError {}

function expect<T>(value: unknown, ok: boolean, what: string): T {
  if (!ok) throw new BackendError('internal', `the backend answered with something other than ${what}`);
  return value as T;
}
