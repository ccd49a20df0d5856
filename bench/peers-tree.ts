/**
 * The benchmark tree for bench/peers: deterministic (seeded), realistic, and
 * the same for every tool. Also the mutation applied between the no-change
 * and the incremental snapshot.
 */
import { createHash } from 'node:crypto';
import { appendFileSync, cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

export interface TreeShape {
  smallFiles: number;
  mediumFiles: number;
  mediumBytes: number;
  bigFiles: number;
  bigBytes: number;
}

export const SHAPES: Record<string, TreeShape> = {
  full: { smallFiles: 30_000, mediumFiles: 40, mediumBytes: 4 * 1024 * 1024, bigFiles: 2, bigBytes: 300 * 1024 * 1024 },
  small: { smallFiles: 3_000, mediumFiles: 8, mediumBytes: 2 * 1024 * 1024, bigFiles: 2, bigBytes: 32 * 1024 * 1024 },
};

/** A small, fast, seeded generator of pseudo-random bytes (xorshift128+ fed through SHA-256 blocks for speed). */
class Random {
  private counter = 0;
  constructor(private readonly seed: string) {}

  bytes(length: number): Buffer {
    const out = Buffer.allocUnsafe(length);
    let offset = 0;
    while (offset < length) {
      const block = createHash('sha512').update(`${this.seed}:${this.counter++}`).digest();
      offset += block.copy(out, offset);
    }
    return out;
  }

  int(max: number): number {
    return this.bytes(4).readUInt32BE(0) % max;
  }
}

const WORDS = ('the of and to in is was that for on are with as by at be this from have or an they which one you were all '
  + 'her she there would their we him been has when who will more no if out so said what up its about into than them can only '
  + 'other new some could time these two may then do first any my now such like our over man me even most made after also did '
  + 'backup archive server block key tag snapshot restore chunk hash index error warning info debug request response').split(' ');

function text(random: Random, bytes: number): Buffer {
  const picks = random.bytes(Math.ceil(bytes / 4) + 16);
  const parts: string[] = [];
  let length = 0;
  for (let i = 0; length < bytes; i += 1) {
    const word = WORDS[(picks[i % picks.length] as number) % WORDS.length] as string;
    const sep = (picks[(i * 7) % picks.length] as number) % 13 === 0 ? '\n' : ' ';
    parts.push(word, sep);
    length += word.length + 1;
  }
  return Buffer.from(parts.join('')).subarray(0, bytes);
}

function logLines(random: Random, bytes: number, start = 0): Buffer {
  const chunks: Buffer[] = [];
  let length = 0;
  for (let line = start; length < bytes; line += 1) {
    const chunk = Buffer.from(`2026-11-25T12:${String(line % 60).padStart(2, '0')}:00Z host${line % 7} svc[${1000 + (line % 97)}]: request ${line} took ${line % 1000} ms status ${200 + (line % 3) * 100} ${random.int(1e9).toString(36)}\n`);
    chunks.push(chunk);
    length += chunk.length;
  }
  return Buffer.concat(chunks).subarray(0, bytes);
}

/** Writes the pristine tree under `root`. */
export function generateTree(root: string, shape: TreeShape): void {
  const random = new Random('cairn-bench-v1');
  rmSync(root, { recursive: true, force: true });
  for (let i = 0; i < shape.smallFiles; i += 1) {
    const dir = path.join(root, 'src', `project${i % 10}`, `module${Math.floor(i / 10) % 30}`, `pkg${Math.floor(i / 300) % 10}`);
    if (i % 10 === 0 || i < 3000) mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, `file${i}.txt`), text(random, 200 + random.int(8000)));
  }
  mkdirSync(path.join(root, 'media'), { recursive: true });
  for (let i = 0; i < shape.mediumFiles; i += 1) {
    const half = Math.floor(shape.mediumBytes / 2);
    writeFileSync(path.join(root, 'media', `mixed${i}.bin`), Buffer.concat([text(random, half), random.bytes(shape.mediumBytes - half)]));
  }
  mkdirSync(path.join(root, 'big'), { recursive: true });
  writeFileSync(path.join(root, 'big', 'service.log'), logLines(random, shape.bigBytes));
  for (let i = 1; i < shape.bigFiles; i += 1) writeFileSync(path.join(root, 'big', `disk${i}.img`), random.bytes(shape.bigBytes));
  // Duplicates: a copied directory and copied files.
  cpSync(path.join(root, 'src', 'project0'), path.join(root, 'src', 'project0-copy'), { recursive: true });
  mkdirSync(path.join(root, 'dups'), { recursive: true });
  for (let i = 0; i < 200; i += 1) {
    const from = path.join(root, 'src', `project${i % 10}`, `module${Math.floor(i / 10) % 30}`, `pkg${Math.floor(i / 300) % 10}`, `file${i}.txt`);
    cpSync(from, path.join(root, 'dups', `dup${i}.txt`));
  }
}

/** About 1% of small files edited, an append to the log, bytes inserted in a medium file, files added and deleted. */
export function mutateTree(root: string, shape: TreeShape): void {
  const random = new Random('cairn-bench-mutation-v1');
  const smallPath = (i: number): string => path.join(root, 'src', `project${i % 10}`, `module${Math.floor(i / 10) % 30}`, `pkg${Math.floor(i / 300) % 10}`, `file${i}.txt`);
  const edits = Math.max(1, Math.floor(shape.smallFiles / 100));
  for (let n = 0; n < edits; n += 1) {
    const file = smallPath((n * 97) % shape.smallFiles);
    appendFileSync(file, text(random, 100));
  }
  appendFileSync(path.join(root, 'big', 'service.log'), logLines(random, 4 * 1024 * 1024, 1e7));
  const medium = path.join(root, 'media', 'mixed0.bin');
  const content = readFileSync(medium);
  const middle = Math.floor(content.length / 2);
  writeFileSync(medium, Buffer.concat([content.subarray(0, middle), random.bytes(4096), content.subarray(middle)]));
  mkdirSync(path.join(root, 'added'), { recursive: true });
  for (let i = 0; i < 100; i += 1) writeFileSync(path.join(root, 'added', `new${i}.txt`), text(random, 1000 + random.int(4000)));
  for (let i = 0; i < 100; i += 1) rmSync(smallPath(shape.smallFiles - 1 - i * 3), { force: true });
}
