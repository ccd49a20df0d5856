import { randomBytes } from 'node:crypto';
import { posix as path } from 'node:path';
import type { SFTPWrapper } from 'ssh2';
import { acquireLock, decodeLock, encodeLock, isLive, releaseLock, type LockRecord } from '../locks.js';
import { mkdir, readFile, readdir, renameNoReplace, stat, unlink, writeNewFile } from './sftp-ops.js';

/**
 * How a new lock generation is created so that of two clients racing for it
 * exactly one wins:
 * - `rename`: write the record to a temporary file, then SFTP v3 rename it to
 *   the generation's name. The protocol's rename fails when the target
 *   exists, and OpenSSH implements it with link() + unlink(), so the create
 *   is atomic and a reader never sees a half-written record. Preferred.
 * - `exclusive-create`: open the generation with `wx` (SSH_FXF_CREAT |
 *   SSH_FXF_EXCL) and write the record into it; used only on a server whose
 *   rename replaces an existing target. A reader may catch the file before
 *   its record is written, so an unreadable newest generation is re-read
 *   before it is taken as free.
 */
export type LockMethod = 'rename' | 'exclusive-create';

const GENERATION = /^\d{12}$/;

/**
 * Tag locks over SFTP, in the same layout as the fs store's (`locks/t-NAME/`
 * holding numbered generations, the newest being the lock's state), so that
 * an sftp client and a `backend-fs fs` process on the server see each
 * other's locks. Semantics come from locks.ts.
 */
export class SftpLocks {
  constructor(private readonly dir: string, private readonly method: LockMethod, private readonly canFsync: boolean) {}

  async acquire(sftp: SFTPWrapper, name: string, owner: string, ttlSeconds: number): Promise<boolean> {
    for (let attempt = 0; attempt < 20; attempt += 1) {
      const { generation, record } = await this.current(sftp, name);
      const next = acquireLock(record, owner, ttlSeconds);
      if (next === null) return false;
      if (await this.write(sftp, name, generation + 1, next)) return true;
    }
    return false;
  }

  async release(sftp: SFTPWrapper, name: string, owner: string): Promise<void> {
    for (let attempt = 0; attempt < 20; attempt += 1) {
      const { generation, record } = await this.current(sftp, name);
      if (!releaseLock(record, owner)) return;
      if (await this.write(sftp, name, generation + 1, { owner: '', expiresAt: 0 })) return;
    }
  }

  async owner(sftp: SFTPWrapper, name: string): Promise<string | null> {
    const { record } = await this.current(sftp, name);
    return isLive(record) ? record.owner : null;
  }

  private lockDir(name: string): string {
    return path.join(this.dir, `t-${name}`);
  }

  private async current(sftp: SFTPWrapper, name: string): Promise<{ generation: number; record: LockRecord | null }> {
    const dir = this.lockDir(name);
    const generations = (await readdir(sftp, dir)).map((e) => e.filename).filter((e) => GENERATION.test(e)).map(Number).sort((a, b) => b - a);
    for (const generation of generations) {
      const file = path.join(dir, String(generation).padStart(12, '0'));
      let text = await readFile(sftp, file);
      for (let retry = 0; this.method === 'exclusive-create' && text !== null && decodeLock(text.toString('utf8')) === null && retry < 10; retry += 1) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        text = await readFile(sftp, file);
      }
      if (text === null) continue; // pruned meanwhile: look at the next
      const record = decodeLock(text.toString('utf8'));
      return { generation, record: record === null || record.owner === '' ? null : record };
    }
    return { generation: 0, record: null };
  }

  /** Creates generation `generation`; false when another client got there first. */
  private async write(sftp: SFTPWrapper, name: string, generation: number, record: LockRecord): Promise<boolean> {
    const dir = this.lockDir(name);
    await mkdir(sftp, dir);
    const file = path.join(dir, String(generation).padStart(12, '0'));
    const data = Buffer.from(encodeLock(record));
    if (this.method === 'exclusive-create') {
      try {
        await writeNewFile(sftp, file, data, this.canFsync);
      } catch (err) {
        if ((await stat(sftp, file)) !== null) return false;
        throw err;
      }
    } else {
      const tmp = path.join(dir, `tmp-${process.pid}-${randomBytes(8).toString('hex')}`);
      try {
        await writeNewFile(sftp, tmp, data, this.canFsync);
        await renameNoReplace(sftp, tmp, file);
      } catch (err) {
        await unlink(sftp, tmp).catch(() => false);
        if ((await stat(sftp, file)) !== null) return false;
        throw err;
      }
    }
    await this.prune(sftp, dir, generation);
    return true;
  }

  private async prune(sftp: SFTPWrapper, dir: string, newest: number): Promise<void> {
    const entries = await readdir(sftp, dir);
    await Promise.all(entries
      .filter((e) => GENERATION.test(e.filename) && Number(e.filename) < newest)
      .map((e) => unlink(sftp, path.join(dir, e.filename))));
  }
}
