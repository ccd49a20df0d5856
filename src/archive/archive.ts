import { randomBytes } from 'node:crypto';
import type { Backend } from '../backends/backend.js';
import { BackendError } from '../backends/errors.js';
import { openArchive } from '../backends/open.js';
import { redactIdentifier } from '../protocol/identifier.js';
import { BlockCodec, type Compression } from './block-codec.js';
import { FORMAT_TAG, FORMAT_VERSION, KEY_TAG, maxPlaintext, type BlockType } from './format.js';
import { deriveKeys, newMasterKey, unwrapMasterKey, wrapMasterKey, type ArchiveKeys, type KdfParams } from './keys.js';
import { field, isNumber, isString, pack, unpack } from './pack.js';
import { checkCairnTagName, openTag, sealTag, storedTagName, USER_TAG_PREFIX, type TagValue } from './tags.js';

export type PassphraseSource = (purpose: 'unlock' | 'new') => Promise<string>;

export interface ArchiveOptions {
  compression?: Compression;
  compressionLevel?: number;
  /** scrypt parameters for a new key (init, passwd); tests use cheaper ones. */
  kdf?: KdfParams;
  onLog?: (level: 'info' | 'warning' | 'error', text: string) => void;
  /**
   * Unlock only: runs once the passphrase is being stretched (a few hundred
   * ms of a pool thread), for work that needs the backend but not the key.
   */
  whileStretching?: () => void;
}

const LOCK_TTL_SECONDS = 600;

/** An unlocked archive: the backend, the keys, and the block and tag primitives over them. */
export class Archive {
  readonly codec: BlockCodec;
  readonly maxPlaintext: number;
  /** Random: the owner is stored in the archive, which must not learn the host name (design.md, zero knowledge). */
  private readonly lockOwner = `cairn-${randomBytes(12).toString('hex')}`;

  private constructor(readonly backend: Backend, readonly keys: ArchiveKeys, options: ArchiveOptions) {
    this.codec = new BlockCodec(keys.block, options.compression ?? 'zstd', options.compressionLevel ?? 3);
    this.maxPlaintext = maxPlaintext(backend.info().blockSize);
  }

  /** Opens an identifier and refuses a replica member (protocol.md, "Start-up": `member`). */
  static async connect(identifier: string, options: ArchiveOptions = {}): Promise<Backend> {
    const backend = await openArchive(identifier, options.onLog ? { onLog: options.onLog } : {});
    const member = backend.info().member;
    if (member !== undefined) {
      await backend.close().catch(() => undefined);
      throw new BackendError('badRequest', `${redactIdentifier(identifier)} is a member of the replicated set ${JSON.stringify(member)}, not an archive of its own: open the replicated set instead`);
    }
    return backend;
  }

  /** Checks `#cairn-archive-format`; false when the archive is not initialised. */
  static async checkFormat(backend: Backend): Promise<boolean> {
    const value = await backend.getTag(FORMAT_TAG);
    if (value === null) return false;
    const what = 'the format record (#cairn-archive-format)';
    const record = unpack(value, what);
    const version = field(record, 'version', isNumber, what);
    if (field(record, 'format', isString, what) !== 'cairn') throw new BackendError('corrupt', `${what} does not name a cairn archive`);
    if (version > FORMAT_VERSION) {
      throw new BackendError('unsupported', `this archive uses format version ${version}; this cairn reads up to version ${FORMAT_VERSION}: upgrade cairn`);
    }
    return true;
  }

  /** Unlocks an initialised archive. A wrong passphrase fails before anything is written. */
  static async unlock(backend: Backend, passphrase: PassphraseSource, options: ArchiveOptions = {}): Promise<Archive> {
    if (!(await Archive.checkFormat(backend))) {
      throw new BackendError('badRequest', 'this archive is not initialised for cairn: run `cairn init` first');
    }
    const wrapped = await backend.getTag(KEY_TAG);
    if (wrapped === null) throw new BackendError('corrupt', 'this archive has a format record but no key record (#cairn-key)');
    const master = await unwrapMasterKey(wrapped, await passphrase('unlock'), options.whileStretching);
    return new Archive(backend, deriveKeys(master), options);
  }

  /** Initialises an empty archive: a new master key wrapped under the passphrase, then the format record. */
  static async initialise(backend: Backend, passphrase: PassphraseSource, options: ArchiveOptions = {}): Promise<Archive> {
    if (!backend.info().writable) throw new BackendError('readOnly', 'the archive is not writable');
    const master = newMasterKey();
    await backend.setTag(KEY_TAG, await wrapMasterKey(master, await passphrase('new'), options.kdf));
    await backend.setTag(FORMAT_TAG, pack({ format: 'cairn', version: FORMAT_VERSION }));
    await backend.flush();
    return new Archive(backend, deriveKeys(master), options);
  }

  /** Re-wraps the master key under a new passphrase (the old one must unlock it). */
  static async changePassphrase(backend: Backend, passphrase: PassphraseSource, options: ArchiveOptions = {}): Promise<void> {
    await Archive.checkFormat(backend);
    const wrapped = await backend.getTag(KEY_TAG);
    if (wrapped === null) throw new BackendError('badRequest', 'this archive is not initialised for cairn: run `cairn init` first');
    const master = await unwrapMasterKey(wrapped, await passphrase('unlock'));
    await backend.setTag(KEY_TAG, await wrapMasterKey(master, await passphrase('new'), options.kdf));
    await backend.flush();
  }

  /** A block's plaintext; a missing or damaged block is `corrupt` and says which. */
  async readBlock(key: string, type: BlockType): Promise<Buffer> {
    return this.codec.open(key, type, await this.readSealed(key));
  }

  /** A block as stored, still sealed (to be opened by the codec later, or by another thread); a missing one is `corrupt`. */
  async readSealed(key: string): Promise<Uint8Array> {
    const sealed = await this.backend.get(key);
    if (sealed === null) throw new BackendError('corrupt', `block ${key} is missing from the archive`);
    return sealed;
  }

  async getTag(name: string): Promise<TagValue | null> {
    checkCairnTagName(name);
    const stored = storedTagName(this.keys, name);
    const sealed = await this.backend.getTag(stored);
    return sealed === null ? null : openTag(this.keys, stored, sealed);
  }

  /** A tag that must exist. */
  async requireTag(name: string): Promise<TagValue> {
    const tag = await this.getTag(name);
    if (tag === null) throw new BackendError('badRequest', `no tag ${JSON.stringify(name)} in this archive (see \`cairn tags\`)`);
    return tag;
  }

  async setTag(name: string, head: string | null): Promise<void> {
    checkCairnTagName(name);
    const stored = storedTagName(this.keys, name);
    await this.backend.setTag(stored, sealTag(this.keys, stored, { name, head, time: Date.now() }));
  }

  /** Every user tag, decrypted, sorted by name. A tag that fails to open is reported, not hidden. */
  async listTags(): Promise<TagValue[]> {
    const names = (await this.backend.listTags()).filter((n) => n.startsWith(USER_TAG_PREFIX));
    const values = await Promise.all(names.map(async (stored) => {
      const sealed = await this.backend.getTag(stored);
      return sealed === null ? null : openTag(this.keys, stored, sealed);
    }));
    return values.filter((v): v is TagValue => v !== null).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Holds a tag's lock while `fn` runs, renewing it; refuses when someone else holds it. */
  async withTagLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const stored = storedTagName(this.keys, checkCairnTagName(name));
    if (!(await this.backend.lockTag(stored, this.lockOwner, LOCK_TTL_SECONDS))) {
      const owner = await this.backend.tagLocked(stored);
      throw new BackendError('conflict', `tag ${JSON.stringify(name)} is locked by another client (${owner ?? 'unknown'}); try again when it finishes`);
    }
    const renew = setInterval(() => {
      void this.backend.lockTag(stored, this.lockOwner, LOCK_TTL_SECONDS).catch(() => undefined);
    }, (LOCK_TTL_SECONDS * 1000) / 3);
    renew.unref();
    try {
      return await fn();
    } finally {
      clearInterval(renew);
      await this.backend.unlockTag(stored, this.lockOwner).catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    await this.backend.close();
  }
}
