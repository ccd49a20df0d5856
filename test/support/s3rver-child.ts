/**
 * Runs s3rver@3.7.1 (started by s3-server.ts under `node
 * --openssl-legacy-provider`: its listing tokens use DES). Arguments: PORT
 * DIRECTORY [--conditional]. With --conditional, a pre-middleware gives the
 * server the conditional writes of current S3 (If-None-Match: * and
 * If-Match on PUT, 412 on failure), made atomic per object by serialising
 * conditional requests for the same key. Prints "ready PORT" when listening.
 *
 * One fault of s3rver itself is mended here: its filesystem store answers a
 * PUT before the object file is written (a body held in memory: as soon as
 * the write has *started*; a streamed body, which is what every PUT of the
 * AWS SDK arrives as: once the body has been read, while the file may not
 * even be open yet). A GET, HEAD or conditional PUT right after the answer
 * could then find no object or a short one, which no real S3 service does
 * (they read after write). The conformance suite's lock race caught it: two
 * clients both took one lock (round 4: false,true,true in a full run).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import * as path from 'node:path';

interface KoaContext {
  method: string;
  path: string;
  get(header: string): string;
  status: number;
  type: string;
  body: unknown;
}
type Middleware = (ctx: KoaContext, next: () => Promise<void>) => Promise<void>;
interface S3rverObject {
  bucket: string;
  key: string;
  content: unknown;
  metadata: unknown;
}
interface S3rverStore {
  getMetadata(bucket: string, key: string): Promise<{ etag?: string }>;
  getResourcePath(bucket: string, key: string, resource: string): string;
  putObject(object: S3rverObject): Promise<{ size: number; md5: string }>;
  putMetadata(bucket: string, key: string, metadata: unknown, md5: string): Promise<void>;
}
interface S3rverInstance {
  middleware: Middleware[];
  store: S3rverStore;
  run(): Promise<{ port: number }>;
}
type S3rverClass = new (options: Record<string, unknown>) => S3rverInstance;

const require = createRequire(import.meta.url);
const S3rver = require('s3rver') as S3rverClass;

const [portText, directory, flag] = process.argv.slice(2);
const server = new S3rver({ port: Number(portText), address: '127.0.0.1', directory, silent: true, allowMismatchedSignatures: false });

/** The whole body of a PUT (streamed or held in memory). */
async function bodyOf(content: unknown): Promise<Buffer> {
  if (Buffer.isBuffer(content)) return content;
  const parts: Buffer[] = [];
  for await (const part of content as AsyncIterable<Buffer>) parts.push(part);
  return Buffer.concat(parts);
}

/**
 * A PUT is answered only once the object file is written whole (see above).
 * The content goes first and its MD5 (the ETag) after, as s3rver does: a
 * reader in between sees the new content under the old ETag, so a write
 * conditional on that ETag fails rather than overwrite unseen data.
 */
const store = server.store;
store.putObject = async (object) => {
  const content = await bodyOf(object.content);
  const objectPath = store.getResourcePath(object.bucket, object.key, 'object');
  await mkdir(path.dirname(objectPath), { recursive: true });
  // Whole or not at all, as on S3: a reader never sees a half-written object.
  const partial = `${objectPath}.partial-${randomBytes(6).toString('hex')}`;
  await writeFile(partial, content);
  await rename(partial, objectPath);
  const md5 = createHash('md5').update(content).digest('hex');
  await store.putMetadata(object.bucket, object.key, object.metadata, md5);
  return { size: content.length, md5 };
};

if (flag === '--conditional') {
  const tails = new Map<string, Promise<void>>();
  const failed = (ctx: KoaContext, message: string): void => {
    ctx.status = 412;
    ctx.type = 'application/xml';
    ctx.body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>PreconditionFailed</Code><Message>${message}</Message></Error>`;
  };
  const conditional: Middleware = async (ctx, next) => {
    const ifNoneMatch = ctx.get('if-none-match');
    const ifMatch = ctx.get('if-match');
    const match = /^\/([^/]+)\/(.+)$/.exec(ctx.path);
    if (ctx.method !== 'PUT' || match === null || (ifNoneMatch === '' && ifMatch === '')) return next();
    const bucket = decodeURIComponent(match[1] as string);
    const key = decodeURIComponent(match[2] as string);
    const id = `${bucket}/${key}`;
    const previous = tails.get(id) ?? Promise.resolve();
    let release = (): void => undefined;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    const tail = previous.then(() => mine);
    tails.set(id, tail);
    await previous;
    try {
      const etag = await server.store.getMetadata(bucket, key).then((m) => m.etag ?? null, () => null);
      if (ifNoneMatch === '*' && etag !== null) return failed(ctx, 'At least one of the pre-conditions you specified did not hold');
      if (ifMatch !== '' && (etag === null || etag !== ifMatch)) return failed(ctx, 'At least one of the pre-conditions you specified did not hold');
      await next();
    } finally {
      release();
      if (tails.get(id) === tail) tails.delete(id);
    }
  };
  server.middleware.unshift(conditional);
}

const address = await server.run();
process.stdout.write(`ready ${address.port}\n`);
