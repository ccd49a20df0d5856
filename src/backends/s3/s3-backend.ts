/**
 * The s3 store: blocks and tags as objects under a bucket and prefix.
 *
 *     backend-s3 [--endpoint URL] [--region R] [--path-style] [--storage-class CLASS]
 *                [--connections N] [--create-bucket] [--timeout SECONDS] s3://BUCKET/PREFIX
 *
 * Objects under PREFIX: `cairn-s3.json` (marker and settings),
 * `blocks/SS/KEY` (SS: the key's first two characters, as in the fs store,
 * so listing and request rates spread across prefixes), `tags/t-NAME`,
 * `locks/t-NAME` (or `locks/t-NAME/` claims on services without conditional
 * writes), `tmp/` (probes). A PUT is atomic in S3: an object is there whole
 * or not at all. Credentials come from the standard AWS chain (environment,
 * profile, instance role), never from the command line.
 */
import { randomBytes } from 'node:crypto';
import { CreateBucketCommand, HeadBucketCommand, S3Client, type StorageClass } from '@aws-sdk/client-s3';
import type { AdminResult, Backend, BackendInfo, BackendStats, BlockPage } from '../backend.js';
import { formatFields, runAdmin, type AdminTable, statsCommand } from '../admin-commands.js';
import { BackendError } from '../errors.js';
import { parseFsCursor, shardOf } from '../fs/fs-backend.js';
import {
  checkBlockSize, checkCursor, checkKey, checkKeyList, checkListLimit, checkOwner, checkTagName, checkTtl, isValidKey, isValidTagName,
} from '../names.js';
import type { S3Config } from './config.js';
import { nameOf, statusOf } from './errors.js';
import { ClaimS3Locks, ConditionalS3Locks, type S3Locks } from './s3-locks.js';
import { S3Objects } from './s3-objects.js';

const MARKER = 'cairn-s3.json';
const DEFAULT_BLOCK_SIZE = 16 * 1024 * 1024;

interface S3Settings {
  format: 'cairn-s3';
  version: 1;
  blockSize: number;
}

/** What the service supports, found out once at open by a probe under tmp/. */
interface Conditional {
  ifNoneMatch: boolean;
  ifMatch: boolean;
}

export class S3Backend implements Backend {
  private closed = false;
  private readonly locks: S3Locks;
  private readonly adminTable: AdminTable = {
    info: { usage: 'info', summary: 'describe this store and what the service supports', run: () => this.describe() },
    stats: statsCommand('blocks, bytes and tags held (lists every object)', () => this.stats()),
  };

  private constructor(
    private readonly objects: S3Objects,
    private readonly config: S3Config,
    private readonly settings: S3Settings,
    private readonly conditional: Conditional,
  ) {
    this.locks = conditional.ifNoneMatch && conditional.ifMatch
      ? new ConditionalS3Locks(objects, config.prefix)
      : new ClaimS3Locks(objects, config.prefix);
  }

  static async open(config: S3Config, options: { blockSize?: number } = {}): Promise<S3Backend> {
    // We pin @aws-sdk (issue 4); its notice about later releases needing Node 22 is not for our users.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    const region = config.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? (config.endpoint !== undefined ? 'us-east-1' : undefined);
    const client = new S3Client({
      region,
      endpoint: config.endpoint,
      forcePathStyle: config.pathStyle,
      // With the defaults, streamed bodies are stored with chunk framing on some services (issue 4).
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 1, // retries are ours (retry.ts): backoff with jitter within a total time
      requestHandler: {
        connectionTimeout: Math.min(10_000, config.timeoutSeconds * 1000),
        requestTimeout: config.timeoutSeconds * 1000,
        httpAgent: { keepAlive: true, maxSockets: config.connections },
        httpsAgent: { keepAlive: true, maxSockets: config.connections },
      },
    });
    const where = `s3://${config.bucket}/${config.prefix}`;
    const objects = new S3Objects(client, config.bucket, where, config.connections, config.timeoutSeconds * 1000, config.storageClass as StorageClass | undefined);
    try {
      await ensureBucket(objects, config);
      const settings = await readOrCreate(objects, config.prefix, options.blockSize ?? DEFAULT_BLOCK_SIZE);
      const conditional = await probeConditional(objects, config.prefix);
      return new S3Backend(objects, config, settings, conditional);
    } catch (err) {
      client.destroy();
      throw err;
    }
  }

  info(): BackendInfo {
    return { backend: 's3', blockSize: this.settings.blockSize, writable: true, features: ['remove', 'listBlocks', 'admin'] };
  }

  /**
   * protocol.md, put: idempotent. With If-None-Match: * an existing block is
   * never uploaded twice and there is no HEAD-then-PUT race (412: already
   * there); without it, HEAD then PUT (a race only uploads the same bytes twice).
   */
  async put(key: string, data: Uint8Array): Promise<void> {
    this.checkOpen();
    checkKey(key);
    checkBlockSize(data, this.settings.blockSize);
    const object = this.blockObject(key);
    if (this.conditional.ifNoneMatch) {
      await this.objects.put(object, data, `put ${key}`, { ifNoneMatch: true }, true);
      return;
    }
    if ((await this.objects.head(object, `put ${key}`)) !== null) return;
    await this.objects.put(object, data, `put ${key}`, {}, true);
  }

  async exists(key: string): Promise<boolean> {
    this.checkOpen();
    checkKey(key);
    return (await this.objects.head(this.blockObject(key), `exists ${key}`)) !== null;
  }

  async existsMany(keys: string[]): Promise<boolean[]> {
    this.checkOpen();
    return Promise.all(checkKeyList(keys).map((key) => this.exists(key)));
  }

  async get(key: string): Promise<Uint8Array | null> {
    this.checkOpen();
    checkKey(key);
    return (await this.objects.get(this.blockObject(key), `get ${key}`))?.body ?? null;
  }

  /** S3's DELETE does not say whether the object was there: HEAD first. */
  async remove(key: string): Promise<boolean> {
    this.checkOpen();
    checkKey(key);
    const object = this.blockObject(key);
    if ((await this.objects.head(object, `remove ${key}`)) === null) return false;
    await this.objects.delete(object, `remove ${key}`);
    return true;
  }

  /** Order and cursor as the fs store ("SHARD/KEY"), which is S3's own listing order of blocks/SS/KEY. */
  async listBlocks(cursor: string | null, limit: number): Promise<BlockPage> {
    this.checkOpen();
    const after = parseFsCursor(checkCursor(cursor));
    checkListLimit(limit);
    const base = `${this.config.prefix}blocks/`;
    let startAfter = after === null ? undefined : `${base}${after.shard}/${after.key}`;
    const keys: string[] = [];
    let last: string | null = null;
    for (;;) {
      const { objects, more } = await this.objects.list(base, startAfter, limit - keys.length, 'listBlocks');
      for (const object of objects) {
        const rest = object.key.slice(base.length);
        const slash = rest.indexOf('/');
        const key = rest.slice(slash + 1);
        if (slash < 0 || !isValidKey(key) || shardOf(key) !== rest.slice(0, slash)) continue;
        keys.push(key);
        last = rest;
        if (keys.length === limit) return [keys, last];
      }
      if (!more) return [keys, null];
      startAfter = objects[objects.length - 1]?.key;
    }
  }

  async setTag(name: string, value: Uint8Array): Promise<void> {
    this.checkOpen();
    checkTagName(name);
    await this.objects.put(this.tagObject(name), value, `setTag ${name}`);
  }

  async getTag(name: string): Promise<Uint8Array | null> {
    this.checkOpen();
    checkTagName(name);
    return (await this.objects.get(this.tagObject(name), `getTag ${name}`))?.body ?? null;
  }

  async removeTag(name: string): Promise<boolean> {
    this.checkOpen();
    checkTagName(name);
    const object = this.tagObject(name);
    if ((await this.objects.head(object, `removeTag ${name}`)) === null) return false;
    await this.objects.delete(object, `removeTag ${name}`);
    return true;
  }

  async listTags(): Promise<string[]> {
    this.checkOpen();
    const base = `${this.config.prefix}tags/t-`;
    const objects = await this.objects.listAll(base, 'listTags');
    return objects.map((o) => o.key.slice(base.length)).filter(isValidTagName).sort();
  }

  async lockTag(name: string, owner: string, ttlSeconds: number): Promise<boolean> {
    this.checkOpen();
    checkTagName(name);
    checkOwner(owner);
    checkTtl(ttlSeconds);
    return this.locks.acquire(name, owner, ttlSeconds);
  }

  async unlockTag(name: string, owner: string): Promise<void> {
    this.checkOpen();
    checkTagName(name);
    checkOwner(owner);
    await this.locks.release(name, owner);
  }

  async tagLocked(name: string): Promise<string | null> {
    this.checkOpen();
    checkTagName(name);
    return this.locks.owner(name);
  }

  /** An acknowledged PUT or DELETE is durable in S3; the sequencer orders flush after them. */
  async flush(): Promise<void> {
    this.checkOpen();
  }

  async stats(): Promise<BackendStats> {
    this.checkOpen();
    const base = `${this.config.prefix}blocks/`;
    const objects = await this.objects.listAll(base, 'stats');
    let blocks = 0;
    let bytes = 0;
    for (const object of objects) {
      if (!isValidKey(object.key.slice(object.key.lastIndexOf('/') + 1))) continue;
      blocks += 1;
      bytes += object.size;
    }
    return { blocks, bytes, tags: (await this.listTags()).length };
  }

  admin(command: string, args: string[]): Promise<AdminResult> {
    this.checkOpen();
    return runAdmin('s3', this.adminTable, command, args);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.objects.close();
    this.objects.client.destroy();
  }

  private describe(): AdminResult {
    const { config, conditional } = this;
    const data = {
      backend: 's3',
      location: `s3://${config.bucket}/${config.prefix}`,
      endpoint: config.endpoint ?? '(AWS S3)',
      region: config.region ?? '(AWS_REGION, the profile, or us-east-1 with --endpoint)',
      pathStyle: config.pathStyle,
      storageClass: config.storageClass ?? '(bucket default)',
      blockSize: this.settings.blockSize,
      formatVersion: this.settings.version,
      connections: config.connections,
      timeoutSeconds: config.timeoutSeconds,
      put: conditional.ifNoneMatch
        ? 'conditional write (If-None-Match: *; 412 = already there)'
        : 'HEAD then PUT (the service ignores If-None-Match)',
      locks: this.locks.method,
    };
    return { text: formatFields(data), data };
  }

  private blockObject(key: string): string {
    return `${this.config.prefix}blocks/${shardOf(key)}/${key}`;
  }

  private tagObject(name: string): string {
    return `${this.config.prefix}tags/t-${name}`;
  }

  private checkOpen(): void {
    if (this.closed) throw new BackendError('unavailable', `the s3 archive s3://${this.config.bucket}/${this.config.prefix} is closed`);
  }
}

/** HEAD the bucket; a missing one is created with --create-bucket, else a clear error naming it. */
async function ensureBucket(objects: S3Objects, config: S3Config): Promise<void> {
  const missing = await objects.request('open', async (signal) => {
    try {
      await objects.client.send(new HeadBucketCommand({ Bucket: config.bucket }), { abortSignal: signal });
      return false;
    } catch (err) {
      if (statusOf(err) === 404 || nameOf(err) === 'NotFound' || nameOf(err) === 'NoSuchBucket') return true;
      throw err;
    }
  });
  if (!missing) return;
  if (!config.createBucket) {
    throw new BackendError('badRequest', `the bucket ${JSON.stringify(config.bucket)} does not exist (archive s3://${config.bucket}/${config.prefix}); create it or pass --create-bucket`);
  }
  await objects.request(`create bucket ${config.bucket}`, async (signal) => {
    await objects.client.send(new CreateBucketCommand({ Bucket: config.bucket }), { abortSignal: signal });
  });
}

async function readOrCreate(objects: S3Objects, prefix: string, blockSize: number): Promise<S3Settings> {
  const where = `s3://${objects.bucket}/${prefix}`;
  const marker = await objects.get(`${prefix}${MARKER}`, 'open');
  if (marker !== null) return parseMarker(marker.body, where);
  const { objects: present } = await objects.list(prefix, undefined, 1, 'open');
  if (present.length > 0) {
    throw new BackendError('badRequest', `${where} holds objects but no ${MARKER}: it is not a cairn s3 archive, refusing to use it`);
  }
  const settings: S3Settings = { format: 'cairn-s3', version: 1, blockSize };
  const written = await objects.put(`${prefix}${MARKER}`, Buffer.from(`${JSON.stringify(settings)}\n`), 'open', { ifNoneMatch: true });
  if (written === 'precondition') {
    const raced = await objects.get(`${prefix}${MARKER}`, 'open');
    if (raced !== null) return parseMarker(raced.body, where);
  }
  return settings;
}

function parseMarker(body: Uint8Array, where: string): S3Settings {
  let parsed: Partial<S3Settings> = {};
  try {
    parsed = JSON.parse(Buffer.from(body).toString('utf8')) as Partial<S3Settings>;
  } catch {
    // reported below
  }
  if (parsed.format !== 'cairn-s3' || parsed.version !== 1 || typeof parsed.blockSize !== 'number') {
    throw new BackendError('corrupt', `${where}${MARKER} is not a cairn s3 archive marker of a known version`);
  }
  return parsed as S3Settings;
}

/**
 * Does the service honour conditional writes? Write a probe object, then
 * write it again with If-None-Match: * (412 if honoured) and with If-Match
 * on a wrong ETag (412 if honoured). A service that rejects the headers
 * (400, 501) counts as not supporting them.
 */
async function probeConditional(objects: S3Objects, prefix: string): Promise<Conditional> {
  const probe = `${prefix}tmp/probe-${randomBytes(8).toString('hex')}`;
  const attempt = async (condition: { ifNoneMatch?: boolean; ifMatch?: string }): Promise<boolean> => {
    try {
      return (await objects.put(probe, Buffer.from('probe'), 'probe conditional writes', condition)) === 'precondition';
    } catch (err) {
      if (err instanceof BackendError && err.code !== 'internal') throw err;
      return false;
    }
  };
  try {
    await objects.put(probe, Buffer.from('probe'), 'probe conditional writes');
    const ifNoneMatch = await attempt({ ifNoneMatch: true });
    const ifMatch = await attempt({ ifMatch: '"00000000000000000000000000000000"' });
    return { ifNoneMatch, ifMatch };
  } finally {
    await objects.delete(probe, 'probe conditional writes').catch(() => undefined);
  }
}
