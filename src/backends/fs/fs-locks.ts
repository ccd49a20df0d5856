import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { acquireLock, decodeLock, isLive, releaseLock, encodeLock, type LockRecord } from '../locks.js';
import { mkdirPrivate, tempName, writeNewFile } from './atomic-file.js';

/**
 * Tag locks shared by several processes on one filesystem. A lock's state is
 * the newest of its numbered generation files; a change creates the next
 * generation with O_EXCL, so of two processes racing for the same change
 * exactly one wins, and a crashed holder's lock simply expires.
 */
export class FsLocks {
  constructor(private readonly dir: string) {}

  async acquire(name: string, owner: string, ttlSeconds: number): Promise<boolean> {
    for (let attempt = 0; attempt < 20; attempt += 1) {
      const { generation, record } = await this.current(name);
      const next = acquireLock(record, owner, ttlSeconds);
      if (next === null) return false;
      if (await this.write(name, generation + 1, next)) return true;
    }
    return false;
  }

  async release(name: string, owner: string): Promise<void> {
    for (let attempt = 0; attempt < 20; attempt += 1) {
      const { generation, record } = await this.current(name);
      if (!releaseLock(record, owner)) return;
      if (await this.write(name, generation + 1, { owner: '', expiresAt: 0 })) return;
    }
  }

  async owner(name: string): Promise<string | null> {
    const { record } = await this.current(name);
    return isLive(record) ? record.owner : null;
  }

  private lockDir(name: string): string {
    return path.join(this.dir, `t-${name}`);
  }

  private async current(name: string): Promise<{ generation: number; record: LockRecord | null }> {
    const dir = this.lockDir(name);
    let entries: string[];
    try {
      entries = await fsp.readdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { generation: 0, record: null };
      throw err;
    }
    const generations = entries.filter((e) => /^\d{12}$/.test(e)).map(Number).sort((a, b) => b - a);
    for (const generation of generations) {
      try {
        const record = decodeLock(await fsp.readFile(path.join(dir, String(generation).padStart(12, '0')), 'utf8'));
        const free = record === null || record.owner === '' ? null : record;
        return { generation, record: free };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    return { generation: 0, record: null };
  }

  /** Creates generation `generation`; false when another process got there first. */
  private async write(name: string, generation: number, record: LockRecord): Promise<boolean> {
    const dir = this.lockDir(name);
    await mkdirPrivate(dir);
    // Written under a temporary name, then linked: link() is atomic and
    // fails if the generation exists, so no reader ever sees a half-written lock.
    const tmp = tempName(dir);
    try {
      await writeNewFile(tmp, Buffer.from(encodeLock(record)));
      await fsp.link(tmp, path.join(dir, String(generation).padStart(12, '0')));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw err;
    } finally {
      await fsp.rm(tmp, { force: true });
    }
    await this.prune(dir, generation);
    return true;
  }

  private async prune(dir: string, newest: number): Promise<void> {
    const entries = await fsp.readdir(dir);
    await Promise.all(entries
      .filter((e) => /^\d{12}$/.test(e) && Number(e) < newest)
      .map((e) => fsp.rm(path.join(dir, e), { force: true })));
  }
}
