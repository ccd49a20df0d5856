import { chmodSync, closeSync, constants, ftruncateSync, lchownSync, linkSync, lutimesSync, mkdirSync, openSync, symlinkSync, writeSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { fromWire, type FsMeta, type FsOp, type FsReply, type WirePath } from './fs-writer.js';

/**
 * The thread of fs-writer.ts: carries out a restore's file-system calls in
 * the order they were sent (a directory before what is in it, a file before
 * a link to it), synchronously: they only touch the page cache and inodes,
 * and through libuv's thread pool each would cost more than the call. After
 * each batch it answers what was done, what failed and what could not be set.
 */
const files = new Map<number, { fd: number; end: number }>();

/** Data arrives as Uint8Array (structured clone): a Buffer over the same bytes. */
function buf(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function metadata(wire: WirePath, meta: FsMeta, warnings: Array<[WirePath, string]>): void {
  const path = fromWire(wire);
  const attempt = (what: string, set: () => void): void => {
    try {
      set();
    } catch (err) {
      warnings.push([wire, `${what} not restored: ${(err as Error).message}`]);
    }
  };
  if (meta.uid !== undefined && meta.gid !== undefined) attempt('owner', () => lchownSync(path, meta.uid as number, meta.gid as number));
  if (meta.mode !== undefined) attempt('mode', () => chmodSync(path, meta.mode as number));
  attempt('times', () => lutimesSync(path, meta.atime, meta.mtime));
}

const PAGE = 64 * 1024;
const ZERO = Buffer.alloc(PAGE);

/**
 * Writes a block at `position`, leaving holes where whole 64 KiB pages are
 * zero (the file's length is set at close when it ends in one). Returns how
 * far into the block the last byte written ends (0: nothing written).
 */
function writeSparse(fd: number, block: Buffer, position: number): number {
  let start = -1;
  let end = 0;
  const put = (from: number, to: number): void => {
    for (let at = from; at < to;) at += writeSync(fd, block, at, to - at, position + at);
    end = to;
  };
  for (let i = 0; i < block.length; i += PAGE) {
    const page = block.subarray(i, Math.min(block.length, i + PAGE));
    const zero = page.equals(ZERO.subarray(0, page.length));
    if (!zero && start < 0) start = i;
    if (zero && start >= 0) {
      put(start, i);
      start = -1;
    }
  }
  if (start >= 0) put(start, block.length);
  return end;
}

function closeFile(file: number): void {
  const open = files.get(file);
  if (open === undefined) return;
  files.delete(file);
  closeSync(open.fd);
}

function run(op: FsOp, reply: Required<Omit<FsReply, 'fatal' | 'synced'>>): void {
  switch (op.op) {
    case 'mkdir':
      mkdirSync(fromWire(op.path), { mode: 0o700 });
      return;
    case 'open':
      files.set(op.file, { fd: openSync(fromWire(op.path), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600), end: 0 });
      return;
    case 'write': {
      const open = files.get(op.file);
      if (open === undefined) return; // the file failed earlier; that was answered then
      const written = writeSparse(open.fd, buf(op.data), op.position);
      if (written > 0) open.end = op.position + written;
      return;
    }
    case 'close': {
      const open = files.get(op.file);
      if (open === undefined) return;
      try {
        // A file that ends in a hole gets its length here.
        if (open.end < op.size) ftruncateSync(open.fd, op.size);
      } finally {
        closeFile(op.file);
      }
      metadata(op.path, op.meta, reply.warnings);
      reply.done.push(op.file);
      return;
    }
    case 'abort':
      closeFile(op.file);
      return;
    case 'symlink':
      symlinkSync(fromWire(op.target), fromWire(op.path));
      metadata(op.path, op.meta, reply.warnings);
      return;
    case 'link':
      linkSync(fromWire(op.existing), fromWire(op.path));
      return;
    case 'meta':
      metadata(op.path, op.meta, reply.warnings);
      return;
  }
}

parentPort?.on('message', (batch: { ops: FsOp[]; sync?: number }) => {
  const reply: Required<Omit<FsReply, 'fatal' | 'synced'>> & Pick<FsReply, 'fatal' | 'synced'> = { done: [], failed: [], warnings: [], bytes: 0 };
  for (const op of batch.ops) {
    // Counted whether or not it is written: the sender only needs to know it is off its queue.
    if (op.op === 'write') reply.bytes += op.data.byteLength;
    try {
      run(op, reply);
    } catch (err) {
      const message = (err as Error).message;
      if ('file' in op) {
        closeFile(op.file);
        reply.failed.push([op.file, message]);
      } else {
        reply.fatal ??= message;
      }
    }
  }
  if (batch.sync !== undefined) reply.synced = batch.sync;
  parentPort?.postMessage(reply);
});
