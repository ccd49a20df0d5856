import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { ownCommandPath } from '../../src/backends/open.js';
import { decodeBody, encodeFrame, FrameDecoder } from '../../src/protocol/frames.js';

/** A backend process spoken to byte by byte, for tests of the wire itself. */
export class RawWire {
  readonly child: ChildProcessWithoutNullStreams;
  private readonly decoder = new FrameDecoder();
  private readonly inbox: unknown[] = [];
  private waiter: (() => void) | null = null;
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(command: string, args: string[]) {
    this.child = spawn(process.execPath, [ownCommandPath(command), ...args], { stdio: 'pipe' });
    this.child.stdout.on('data', (chunk: Buffer) => {
      for (const body of this.decoder.push(chunk)) this.inbox.push(decodeBody(body));
      this.waiter?.();
    });
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (text: string) => { this.stderr += text; });
    this.child.stdin.on('error', () => undefined);
    this.exited = new Promise((resolve) => this.child.once('close', (code, signal) => {
      this.waiter?.();
      resolve({ code, signal });
    }));
  }

  send(message: unknown): void {
    for (const part of encodeFrame(message)) this.child.stdin.write(part);
  }

  sendRaw(bytes: Uint8Array): void {
    this.child.stdin.write(bytes);
  }

  /** The next message from the backend (greeting, response or notice); throws after `ms`. */
  async next(ms = 5000): Promise<unknown> {
    const deadline = Date.now() + ms;
    while (this.inbox.length === 0) {
      if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error(`backend exited; stderr: ${this.stderr}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('no message in time');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = null;
    }
    return this.inbox.shift();
  }

  /** The next message that is not a log notice, collecting notices on the way. */
  async nextResponse(notices: unknown[] = []): Promise<unknown> {
    for (;;) {
      const message = await this.next();
      if (Array.isArray(message) && message[0] === 'log') notices.push(message);
      else return message;
    }
  }

  end(): void {
    this.child.stdin.end();
  }
}
