import PQueue from 'p-queue';
import {
  DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client, type StorageClass,
} from '@aws-sdk/client-s3';
import type { BackendError } from '../errors.js';
import { isNotFound, isPreconditionFailed, s3ErrorToBackendError } from './errors.js';
import { withRetries } from './retry.js';

export interface PutCondition {
  /** If-None-Match: * (create only). */
  ifNoneMatch?: boolean;
  /** If-Match: this ETag (replace only that version). */
  ifMatch?: string;
}

export interface ListedObject {
  key: string;
  size: number;
  lastModified: number;
}

/**
 * The S3 requests the store makes, each through a bounded queue (at most
 * `connections` in flight) and `withRetries` (backoff with jitter on
 * throttling, server and network errors, within the total timeout).
 */
export class S3Objects {
  private readonly queue: PQueue;

  constructor(
    readonly client: S3Client,
    readonly bucket: string,
    readonly where: string,
    connections: number,
    private readonly timeoutMs: number,
    private readonly storageClass: StorageClass | undefined,
  ) {
    this.queue = new PQueue({ concurrency: connections });
  }

  /** Runs one request with retries; `what` names it in errors. */
  request<T>(what: string, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    return this.queue.add(() => withRetries(fn, { totalMs: this.timeoutMs }, (err): BackendError => s3ErrorToBackendError(err, what, this.where)));
  }

  /** The object's ETag, or null when it does not exist. */
  head(key: string, what: string): Promise<string | null> {
    return this.request(what, async (signal) => {
      try {
        const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal: signal });
        return out.ETag ?? '';
      } catch (err) {
        if (isNotFound(err)) return null;
        throw err;
      }
    });
  }

  get(key: string, what: string): Promise<{ body: Uint8Array; etag: string } | null> {
    return this.request(what, async (signal) => {
      try {
        const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal: signal });
        const body = out.Body === undefined ? new Uint8Array(0) : await out.Body.transformToByteArray();
        return { body, etag: out.ETag ?? '' };
      } catch (err) {
        if (isNotFound(err)) return null;
        throw err;
      }
    });
  }

  /**
   * Writes an object; 'precondition' when a condition did not hold (412).
   * Only blocks (`block: true`) get the configured storage class: tags,
   * locks and the marker are small and rewritten, and stay STANDARD.
   */
  put(key: string, body: Uint8Array, what: string, condition: PutCondition = {}, block = false): Promise<string | 'precondition'> {
    return this.request(what, async (signal) => {
      try {
        const out = await this.client.send(new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: body,
          ContentLength: body.byteLength,
          StorageClass: block ? this.storageClass : undefined,
          IfNoneMatch: condition.ifNoneMatch === true ? '*' : undefined,
          IfMatch: condition.ifMatch,
        }), { abortSignal: signal });
        return out.ETag ?? '';
      } catch (err) {
        if ((condition.ifNoneMatch === true || condition.ifMatch !== undefined) && isPreconditionFailed(err)) return 'precondition';
        throw err;
      }
    });
  }

  delete(key: string, what: string): Promise<void> {
    return this.request(what, async (signal) => {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal: signal });
    });
  }

  /** One page of object names under `prefix`, after `startAfter`, in S3's (binary) order. */
  list(prefix: string, startAfter: string | undefined, max: number, what: string): Promise<{ objects: ListedObject[]; more: boolean }> {
    return this.request(what, async (signal) => {
      const out = await this.client.send(new ListObjectsV2Command({
        Bucket: this.bucket, Prefix: prefix, StartAfter: startAfter, MaxKeys: Math.min(1000, max),
      }), { abortSignal: signal });
      const objects = (out.Contents ?? []).map((o) => ({ key: o.Key ?? '', size: o.Size ?? 0, lastModified: o.LastModified?.getTime() ?? 0 }));
      return { objects, more: out.IsTruncated === true && objects.length > 0 };
    });
  }

  /** Every object under `prefix`. */
  async listAll(prefix: string, what: string): Promise<ListedObject[]> {
    const all: ListedObject[] = [];
    let after: string | undefined;
    for (;;) {
      const { objects, more } = await this.list(prefix, after, 1000, what);
      all.push(...objects);
      if (!more) return all;
      after = objects[objects.length - 1]?.key;
    }
  }

  async close(): Promise<void> {
    this.queue.clear();
    await this.queue.onIdle();
  }
}
