import { BackendError } from './errors.js';

/** A tag lock as stores keep it: who holds it and until when (ms since the epoch). */
export interface LockRecord {
  owner: string;
  expiresAt: number;
}

export function isLive(lock: LockRecord | null | undefined, now = Date.now()): lock is LockRecord {
  return lock !== null && lock !== undefined && lock.expiresAt > now;
}

/**
 * protocol.md, lockTag: acquired when the lock is free, expired, or already
 * held by the same owner (which renews it). Returns the record to store, or
 * null when another owner holds a live lock.
 */
export function acquireLock(current: LockRecord | null, owner: string, ttlSeconds: number, now = Date.now()): LockRecord | null {
  if (isLive(current, now) && current.owner !== owner) return null;
  return { owner, expiresAt: now + ttlSeconds * 1000 };
}

/**
 * protocol.md, unlockTag: only the owner can unlock; another owner's live
 * lock answers `conflict`; unlocking a free tag is a no-op. Returns true when
 * there is a lock to delete.
 */
export function releaseLock(current: LockRecord | null, owner: string, now = Date.now()): boolean {
  if (!isLive(current, now)) return current !== null;
  if (current.owner !== owner) {
    throw new BackendError('conflict', `tag is locked by another owner (${current.owner})`);
  }
  return true;
}

export function encodeLock(lock: LockRecord): string {
  return JSON.stringify(lock);
}

/** Parses a stored lock; anything malformed counts as no lock. */
export function decodeLock(text: string): LockRecord | null {
  try {
    const value = JSON.parse(text) as unknown;
    if (typeof value === 'object' && value !== null) {
      const { owner, expiresAt } = value as Record<string, unknown>;
      if (typeof owner === 'string' && typeof expiresAt === 'number') return { owner, expiresAt };
    }
  } catch {
    // fall through
  }
  return null;
}
