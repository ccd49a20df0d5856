/**
 * The Backend interface: protocol.md seen from TypeScript. Each method is one
 * operation of the wire protocol, with the same name and arguments; every
 * store, every proxy, the remote client and the replicated backend
 * implements it.
 *
 * Ordering: operations take effect in the order they are called, even when
 * the caller does not await one before issuing the next (protocol.md,
 * "Requests and responses"). Stores get this from `OrderedBackend`
 * (sequencer.ts), which `openArchive` and `serveBackend` put in front of them.
 */
export type Feature = 'remove' | 'listBlocks' | 'admin';

export type LogLevel = 'info' | 'warning' | 'error';

/** The greeting: capabilities are data, never method presence. */
export interface BackendInfo {
  /** The backend's kind, e.g. "fs", "splitlog", "cache". */
  backend: string;
  /** Largest block `put` accepts, in bytes; at least 65,536. */
  blockSize: number;
  /** False for a write-protected or read-only archive. */
  writable: boolean;
  /** Optional operations this backend supports. */
  features: Feature[];
  /** Present when this archive is a member of a replicated set: the set's name. */
  member?: string;
}

export interface AdminResult {
  text: string;
  data: unknown;
}

/** One page of `listBlocks`: the keys, and the cursor for the next page or null at the end. */
export type BlockPage = [keys: string[], next: string | null];

export type BackendStats = Record<string, unknown> & { blocks?: number; bytes?: number };

export interface Backend {
  /** The greeting: block size, writability, features, replica membership. */
  info(): BackendInfo;

  /** Stores a block. Idempotent: putting an existing key is a no-op. `tooLarge` over blockSize; `readOnly` when not writable. */
  put(key: string, data: Uint8Array): Promise<void>;

  /** Whether a block is present. */
  exists(key: string): Promise<boolean>;

  /** Presence of up to 4096 blocks, in the order of `keys`. */
  existsMany(keys: string[]): Promise<boolean[]>;

  /** A block's bytes, or null when absent. */
  get(key: string): Promise<Uint8Array | null>;

  /** Removes a block; true when it existed. Feature `remove`, else `unsupported`. */
  remove(key: string): Promise<boolean>;

  /**
   * One page of block keys (limit at most 10000). Every key present for the
   * whole listing appears exactly once across the pages. Feature `listBlocks`.
   */
  listBlocks(cursor: string | null, limit: number): Promise<BlockPage>;

  /** Sets a tag's value. */
  setTag(name: string, value: Uint8Array): Promise<void>;

  /** A tag's value, or null when absent. */
  getTag(name: string): Promise<Uint8Array | null>;

  /** Removes a tag; true when it existed. */
  removeTag(name: string): Promise<boolean>;

  /** Names of every tag. */
  listTags(): Promise<string[]>;

  /**
   * Takes a tag's lock for `owner`; true when acquired, false when another
   * owner holds a live lock. A lock past its ttl counts as free. Re-locking by
   * the same owner renews it.
   */
  lockTag(name: string, owner: string, ttlSeconds: number): Promise<boolean>;

  /**
   * Releases a tag's lock. Another owner's live lock answers `conflict`;
   * unlocking a free tag is a no-op.
   */
  unlockTag(name: string, owner: string): Promise<void>;

  /** The owner of a tag's live lock, or null. */
  tagLocked(name: string): Promise<string | null>;

  /** When it returns, every earlier acknowledged put, remove, setTag and removeTag is durable. */
  flush(): Promise<void>;

  /** At least `blocks` and `bytes` where known; backend-specific fields may follow. */
  stats(): Promise<BackendStats>;

  /** Runs an admin command (feature `admin`); `help` and `info` always exist. */
  admin(command: string, args: string[]): Promise<AdminResult>;

  /** Flushes and releases everything; the backend is unusable afterwards. */
  close(): Promise<void>;
}

/** A proxy exposes the backend it wraps, so tools can walk a chain. */
export interface ProxyBackend extends Backend {
  readonly inner: Backend;
}
