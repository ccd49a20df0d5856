import { randomBytes } from 'node:crypto';
import { BackendError } from '../errors.js';
import { acquireLock, decodeLock, encodeLock, isLive, releaseLock, type LockRecord } from '../locks.js';
import type { S3Objects } from './s3-objects.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Tag locks over S3; semantics from locks.ts. */
export interface S3Locks {
  readonly method: string;
  acquire(name: string, owner: string, ttlSeconds: number): Promise<boolean>;
  release(name: string, owner: string): Promise<void>;
  owner(name: string): Promise<string | null>;
}

/**
 * Where the service has conditional writes: one object per lock,
 * `locks/t-NAME`, holding the record. A free lock is created with
 * If-None-Match: *; every change (renewal, release, taking over an expired
 * lock) is a PUT with If-Match on the ETag that was read, so of two clients
 * racing for the same change exactly one gets through and the other re-reads
 * (412). A release writes a free record rather than deleting, so it too is
 * conditional on the owner's version.
 */
export class ConditionalS3Locks implements S3Locks {
  readonly method = 'conditional writes (If-None-Match: * to create, If-Match on the ETag to change)';

  constructor(private readonly objects: S3Objects, private readonly prefix: string) {}

  async acquire(name: string, owner: string, ttlSeconds: number): Promise<boolean> {
    for (let attempt = 0; attempt < 20; attempt += 1) {
      const { record, etag } = await this.current(name);
      const next = acquireLock(record, owner, ttlSeconds);
      if (next === null) return false;
      if (await this.write(name, next, etag)) return true;
    }
    return false;
  }

  async release(name: string, owner: string): Promise<void> {
    for (let attempt = 0; attempt < 20; attempt += 1) {
      const { record, etag } = await this.current(name);
      if (!releaseLock(record, owner)) return;
      if (await this.write(name, { owner: '', expiresAt: 0 }, etag)) return;
    }
    throw new BackendError('conflict', `unlockTag ${name}: the lock kept changing under us`);
  }

  async owner(name: string): Promise<string | null> {
    const { record } = await this.current(name);
    return isLive(record) ? record.owner : null;
  }

  private async current(name: string): Promise<{ record: LockRecord | null; etag: string | null }> {
    const found = await this.objects.get(this.key(name), `lock ${name}`);
    if (found === null) return { record: null, etag: null };
    const record = decodeLock(Buffer.from(found.body).toString('utf8'));
    return { record: record === null || record.owner === '' ? null : record, etag: found.etag };
  }

  private async write(name: string, record: LockRecord, etag: string | null): Promise<boolean> {
    const condition = etag === null ? { ifNoneMatch: true } : { ifMatch: etag };
    return (await this.objects.put(this.key(name), Buffer.from(encodeLock(record)), `lock ${name}`, condition)) !== 'precondition';
  }

  private key(name: string): string {
    return `${this.prefix}locks/t-${name}`;
  }
}

interface Claim {
  key: string;
  owner: string;
  expiresAt: number;
  /** Server time of the claim's creation (LastModified). */
  created: number;
}

/**
 * Where the service has no conditional writes (fallback): each contender
 * writes its own claim object `locks/t-NAME/c-EXPIRY-NONCE-OWNER`, then lists
 * the claims. It holds the lock only if no other owner's live claim is
 * listed; otherwise it withdraws its claim, pauses randomly, and answers
 * false if a claim it saw is still there (a holder), else tries again. Safe on a store with strong
 * read-after-write and list consistency (AWS S3, MinIO, R2): of two claims,
 * the later-written one's listing sees the earlier one, so at most one
 * contender finds itself alone. Expired claims are ignored and cleared.
 */
export class ClaimS3Locks implements S3Locks {
  readonly method = 'claims with list-after-write (the service has no conditional writes)';
  private readonly kept = new Set<string>();

  constructor(private readonly objects: S3Objects, private readonly prefix: string) {}

  async acquire(name: string, owner: string, ttlSeconds: number): Promise<boolean> {
    await this.keepPrefix(name);
    for (let attempt = 0; attempt < 12; attempt += 1) {
      const key = `${this.dir(name)}c-${String(Date.now() + ttlSeconds * 1000).padStart(15, '0')}-${randomBytes(6).toString('hex')}-${Buffer.from(owner).toString('base64url')}`;
      await this.objects.put(key, new Uint8Array(0), `lock ${name}`);
      const claims = await this.claims(name);
      const others = claims.filter((c) => c.owner !== owner);
      if (others.length === 0) {
        // Alone: ours. Older claims of the same owner (a renewal) go.
        await Promise.all(claims.filter((c) => c.key !== key).map((c) => this.objects.delete(c.key, `lock ${name}`)));
        return true;
      }
      await this.objects.delete(key, `lock ${name}`);
      // Contenders withdraw their claims at once, as we just did; a claim
      // still there after a random pause belongs to the holder.
      const seen = new Set(others.map((c) => c.key));
      await sleep(100 + Math.random() * 150);
      if ((await this.claims(name)).some((c) => seen.has(c.key))) return false;
    }
    return false;
  }

  async release(name: string, owner: string): Promise<void> {
    const claims = await this.claims(name);
    const current = holder(claims, null);
    releaseLock(current === null ? null : { owner: current.owner, expiresAt: current.expiresAt }, owner);
    await Promise.all(claims.filter((c) => c.owner === owner).map((c) => this.objects.delete(c.key, `unlock ${name}`)));
  }

  async owner(name: string): Promise<string | null> {
    return holder(await this.claims(name), null)?.owner ?? null;
  }

  private dir(name: string): string {
    return `${this.prefix}locks/t-${name}/`;
  }

  /**
   * A permanent object under each lock's prefix, written once per process
   * before the first claim: the prefix is then never empty. Servers that
   * keep prefixes as directories (s3rver) otherwise race a claim's PUT
   * against removing the directory that the last withdrawn claim emptied.
   */
  private async keepPrefix(name: string): Promise<void> {
    if (this.kept.has(name)) return;
    await this.objects.put(`${this.dir(name)}keep`, new Uint8Array(0), `lock ${name}`);
    this.kept.add(name);
  }

  /** Live claims, oldest first; expired ones are deleted on the way. */
  private async claims(name: string): Promise<Claim[]> {
    const now = Date.now();
    const listed = await this.objects.listAll(this.dir(name), `lock ${name}`);
    const claims: Claim[] = [];
    for (const object of listed) {
      const match = /c-(\d{15})-[0-9a-f]{12}-([A-Za-z0-9_-]*)$/.exec(object.key);
      if (match === null) continue;
      const claim = { key: object.key, owner: Buffer.from(match[2] as string, 'base64url').toString(), expiresAt: Number(match[1]), created: object.lastModified };
      if (claim.expiresAt > now) claims.push(claim);
      else void this.objects.delete(object.key, `lock ${name}`).catch(() => undefined);
    }
    return claims.sort((a, b) => a.created - b.created || (a.key < b.key ? -1 : 1));
  }
}

/** The holder: the oldest live claim (of someone other than `except`, when given). */
function holder(claims: Claim[], except: string | null): Claim | null {
  return claims.find((c) => except === null || c.owner !== except) ?? null;
}
