/**
 * A real S3-protocol server for tests: s3rver@3.7.1 as a child process under
 * `node --openssl-legacy-provider` on a free 127.0.0.1 port with its own
 * scratch directory. `conditional: true` adds conditional writes
 * (If-None-Match: *, If-Match) through a pre-middleware (s3rver-child.ts);
 * the plain server honours neither, which tests backend-s3's fallback.
 * Credentials: s3rver accepts the key id and secret "S3RVER".
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { freePort } from './sshd.js';

const CHILD = fileURLToPath(new URL('./s3rver-child.js', import.meta.url));

export const S3RVER_CREDENTIALS = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' };

export class S3Server {
  private child: ChildProcess | null = null;

  private constructor(readonly dir: string, readonly port: number, readonly conditional: boolean) {}

  static async start(dir: string, options: { conditional?: boolean; port?: number } = {}): Promise<S3Server> {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const server = new S3Server(dir, options.port ?? (await freePort()), options.conditional ?? false);
    await server.launch();
    return server;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Creates a bucket through the S3 API (path style). */
  async createBucket(name: string): Promise<void> {
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    const { CreateBucketCommand, S3Client } = await import('@aws-sdk/client-s3');
    const client = new S3Client({
      endpoint: this.endpoint, forcePathStyle: true, region: 'us-east-1',
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    });
    try {
      await client.send(new CreateBucketCommand({ Bucket: name }));
    } finally {
      client.destroy();
    }
  }

  /** Freezes (SIGSTOP) or thaws (SIGCONT) the server: a hung server, for real. */
  freeze(frozen: boolean): void {
    this.child?.kill(frozen ? 'SIGSTOP' : 'SIGCONT');
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (child === null) return;
    this.child = null;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGCONT');
    child.kill('SIGKILL');
    await exited;
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.launch();
  }

  private async launch(): Promise<void> {
    const args = ['--openssl-legacy-provider', CHILD, String(this.port), this.dir];
    if (this.conditional) args.push('--conditional');
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.once('exit', (code, signal) => {
      if (this.child === child) process.stderr.write(`s3rver on port ${this.port} exited unexpectedly (${code ?? signal}): ${stderr}\n`);
    });
    let stderr = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (text: string) => {
      stderr = (stderr + text).slice(-4000);
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`s3rver did not start within 20 s: ${stderr}`)), 20_000);
      let out = '';
      child.stdout?.setEncoding('utf8');
      child.stdout?.on('data', (text: string) => {
        out += text;
        if (/ready \d+/.test(out)) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`s3rver exited with status ${code}: ${stderr}`));
      });
    });
  }
}
