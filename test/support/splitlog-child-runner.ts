/**
 * Runs test/support/splitlog-child.js for the splitlog crash tests and
 * checks blocks it wrote.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Backend } from '../../src/backends/backend.js';
import { patternBytes } from './scratch.js';
import { blockSizeOf } from './splitlog-child.js';

const CHILD = fileURLToPath(new URL('./splitlog-child.js', import.meta.url));

export interface Child {
  process: ChildProcess;
  /** Resolves with the first stdout line matching `pattern`'s prefix. */
  waitFor(prefix: string, count?: number): Promise<number>;
  lastFlushed(): number;
}

export function startChild(args: string[]): Child {
  const child = spawn(process.execPath, [CHILD, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let buffered = '';
  let stderr = '';
  let flushed = -1;
  const seen: Array<{ prefix: string; value: number }> = [];
  const waiters: Array<() => void> = [];
  child.stderr.setEncoding('utf8').on('data', (text: string) => { stderr += text; });
  child.stdout.setEncoding('utf8').on('data', (text: string) => {
    buffered += text;
    const lines = buffered.split('\n');
    buffered = lines.pop() as string;
    for (const line of lines) {
      const [prefix, value] = line.split(' ');
      seen.push({ prefix: prefix as string, value: Number(value) });
      if (prefix === 'flushed') flushed = Number(value);
    }
    for (const wake of waiters.splice(0)) wake();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    process: child,
    lastFlushed: () => flushed,
    async waitFor(prefix, count = 1) {
      for (;;) {
        const hits = seen.filter((s) => s.prefix === prefix);
        if (hits.length >= count) return (hits[count - 1] as { value: number }).value;
        if (child.exitCode !== null) throw new Error(`child exited early: ${stderr}`);
        await Promise.race([new Promise<void>((resolve) => waiters.push(resolve)), exited]);
      }
    },
  };
}

export async function kill(child: Child): Promise<void> {
  const done = new Promise((resolve) => child.process.once('exit', resolve));
  child.process.kill('SIGKILL');
  await done;
}

export async function expectIntact(backend: Backend, key: string): Promise<void> {
  const i = Number(key.slice(1));
  const data = await backend.get(key);
  assert.ok(data !== null, `${key} is missing`);
  assert.ok(Buffer.from(data).equals(patternBytes(blockSizeOf(i), i)), `${key} is not intact`);
}

export async function allKeys(backend: Backend): Promise<string[]> {
  const keys: string[] = [];
  let cursor: string | null = null;
  do {
    const page: [string[], string | null] = await backend.listBlocks(cursor, 1000);
    keys.push(...page[0]);
    cursor = page[1];
  } while (cursor !== null);
  return keys;
}
