import type {
  AdminResult, Backend, BackendInfo, BackendStats, BlockPage, ProxyBackend,
} from './backend.js';

/**
 * protocol.md, "Requests and responses": requests on one stream take effect
 * in the order they were sent, while several may be in flight. The sequencer
 * orders operations that touch the same block, tag or tag lock, and runs
 * whole-archive operations (flush, listings, stats, admin, close) as
 * barriers after everything before them; unrelated operations overlap.
 */
export class Sequencer {
  private readonly tails = new Map<string, Promise<void>>();
  private readonly pending = new Set<Promise<void>>();
  private barrier: Promise<void> = Promise.resolve();

  /** Runs `fn` after every earlier operation on the same resources (or after all, for 'all'). */
  run<T>(resources: readonly string[] | 'all', fn: () => Promise<T>): Promise<T> {
    const waits: Promise<void>[] = [];
    if (resources === 'all') {
      waits.push(...this.pending);
    } else {
      waits.push(this.barrier);
      for (const resource of resources) {
        const tail = this.tails.get(resource);
        if (tail !== undefined) waits.push(tail);
      }
    }
    // One wait (a put of a block nothing else touches: a snapshot's usual case) needs no Promise.all.
    const result = (waits.length === 1 ? (waits[0] as Promise<void>) : Promise.all(waits)).then(fn);
    const settled = result.then(noop, noop);
    this.pending.add(settled);
    if (resources === 'all') this.barrier = settled;
    else for (const resource of resources) this.tails.set(resource, settled);
    // One callback forgets the operation everywhere once it has settled.
    void settled.then(() => {
      this.pending.delete(settled);
      if (resources === 'all') return;
      for (const resource of resources) {
        if (this.tails.get(resource) === settled) this.tails.delete(resource);
      }
    });
    return result;
  }

  /** Resolves when everything issued so far has settled. */
  idle(): Promise<void> {
    return Promise.all([...this.pending]).then(noop);
  }
}

function noop(): void {}

const block = (key: string): string => `b:${key}`;
const tag = (name: string): string => `t:${name}`;
const lock = (name: string): string => `l:${name}`;

/** Gives any backend the ordering guarantee of the protocol. */
export class OrderedBackend implements ProxyBackend {
  private readonly sequencer = new Sequencer();

  constructor(readonly inner: Backend) {}

  info(): BackendInfo {
    return this.inner.info();
  }

  put(key: string, data: Uint8Array): Promise<void> {
    return this.sequencer.run([block(key)], () => this.inner.put(key, data));
  }

  exists(key: string): Promise<boolean> {
    return this.sequencer.run([block(key)], () => this.inner.exists(key));
  }

  existsMany(keys: string[]): Promise<boolean[]> {
    const resources = Array.isArray(keys) ? keys.map(block) : [];
    return this.sequencer.run(resources, () => this.inner.existsMany(keys));
  }

  get(key: string): Promise<Uint8Array | null> {
    return this.sequencer.run([block(key)], () => this.inner.get(key));
  }

  remove(key: string): Promise<boolean> {
    return this.sequencer.run([block(key)], () => this.inner.remove(key));
  }

  listBlocks(cursor: string | null, limit: number): Promise<BlockPage> {
    return this.sequencer.run('all', () => this.inner.listBlocks(cursor, limit));
  }

  setTag(name: string, value: Uint8Array): Promise<void> {
    return this.sequencer.run([tag(name)], () => this.inner.setTag(name, value));
  }

  getTag(name: string): Promise<Uint8Array | null> {
    return this.sequencer.run([tag(name)], () => this.inner.getTag(name));
  }

  removeTag(name: string): Promise<boolean> {
    return this.sequencer.run([tag(name)], () => this.inner.removeTag(name));
  }

  listTags(): Promise<string[]> {
    return this.sequencer.run('all', () => this.inner.listTags());
  }

  lockTag(name: string, owner: string, ttlSeconds: number): Promise<boolean> {
    return this.sequencer.run([lock(name)], () => this.inner.lockTag(name, owner, ttlSeconds));
  }

  unlockTag(name: string, owner: string): Promise<void> {
    return this.sequencer.run([lock(name)], () => this.inner.unlockTag(name, owner));
  }

  tagLocked(name: string): Promise<string | null> {
    return this.sequencer.run([lock(name)], () => this.inner.tagLocked(name));
  }

  flush(): Promise<void> {
    return this.sequencer.run('all', () => this.inner.flush());
  }

  stats(): Promise<BackendStats> {
    return this.sequencer.run('all', () => this.inner.stats());
  }

  admin(command: string, args: string[]): Promise<AdminResult> {
    return this.sequencer.run('all', () => this.inner.admin(command, args));
  }

  close(): Promise<void> {
    return this.sequencer.run('all', () => this.inner.close());
  }
}
