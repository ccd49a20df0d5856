/**
 * backend-s3 against a real S3-protocol server on 127.0.0.1 (s3rver, see
 * test/support/s3-server.ts), in process and spawned: once with conditional
 * writes (If-None-Match / If-Match honoured: conditional puts and locks) and
 * once against the plain server (HEAD + PUT and claim locks). Then failures
 * produced for real: a frozen server, a missing bucket, bad credentials.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Backend } from '../src/backends/backend.js';
import { BackendError } from '../src/backends/errors.js';
import { UsageError } from '../src/backends/factory.js';
import { openArchive } from '../src/backends/open.js';
import { parseS3Args } from '../src/backends/s3/config.js';
import { identifierFixtures } from './conformance/fixture.js';
import { backendConformance } from './conformance/suite.js';
import { S3RVER_CREDENTIALS, S3Server } from './support/s3-server.js';
import { scratchDir } from './support/scratch.js';

Object.assign(process.env, S3RVER_CREDENTIALS);
const scratch = scratchDir('cairn-s3-');
let conditional: S3Server;
let plain: S3Server;
let archives = 0;

before(async () => {
  [conditional, plain] = await Promise.all([
    S3Server.start(path.join(scratch.dir, 'conditional'), { conditional: true }),
    S3Server.start(path.join(scratch.dir, 'plain')),
  ]);
  await Promise.all([conditional.createBucket('cairn'), plain.createBucket('cairn')]);
});
after(async () => {
  await Promise.all([conditional?.stop(), plain?.stop()]);
  scratch.remove();
});

function s3Identifier(server: S3Server, prefix: string, extra = ''): string {
  return `backend-s3 --endpoint ${server.endpoint} --path-style ${extra}s3://cairn/${prefix}`;
}

// Each fixture gets a fresh prefix in the shared bucket.
const withConditional = identifierFixtures(() => s3Identifier(conditional, `archive-${(archives += 1)}`));
const withFallback = identifierFixtures(() => s3Identifier(plain, `archive-${(archives += 1)}`));
backendConformance('s3, conditional writes (in process)', withConditional.inProcess);
backendConformance('s3, conditional writes (spawned)', withConditional.spawned);
// The wire path is the same for both services; the fallback runs in process
// only, to keep this file's time down (spawning loads the AWS SDK each time).
backendConformance('s3, HEAD + PUT fallback (in process)', withFallback.inProcess);

async function rejectsWithCode(promise: Promise<unknown>, code: string, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof BackendError, String(err));
    assert.equal(err.code, code, err.message);
    assert.match(err.message, pattern);
    return true;
  });
}

describe('s3: what info says, and failures produced for real', () => {
  it('info says whether puts use conditional writes or HEAD + PUT', async () => {
    const a = await openArchive(s3Identifier(conditional, 'info-a'), { onLog: () => undefined });
    const b = await openArchive(s3Identifier(plain, 'info-b'), { spawnOwn: true, onLog: () => undefined });
    assert.match((await a.admin('info', [])).text, /put:\s+conditional write \(If-None-Match/);
    assert.match((await a.admin('info', [])).text, /locks:\s+conditional writes/);
    assert.match((await b.admin('info', [])).text, /put:\s+HEAD then PUT/);
    assert.match((await b.admin('info', [])).text, /locks:\s+claims/);
    await a.close();
    await b.close();
  });

  it('a missing bucket is reported naming bucket and prefix, not retried; --create-bucket creates it', async () => {
    for (const spawnOwn of [false, true]) {
      const started = Date.now();
      await rejectsWithCode(openArchive(s3Identifier(conditional, 'p/q', '--timeout 30 ').replace('s3://cairn/', 's3://no-such-bucket/'), { spawnOwn, onLog: () => undefined, stderr: null }),
        'badRequest', /no-such-bucket.*s3:\/\/no-such-bucket\/p\/q\/.*--create-bucket/);
      assert.ok(Date.now() - started < 10_000, 'not retried for the whole timeout');
    }
    const created = await openArchive(s3Identifier(conditional, 'x', '--create-bucket ').replace('s3://cairn/', 's3://made-by-cairn/'), { onLog: () => undefined });
    await created.put('k', Buffer.from('v'));
    assert.equal(await created.exists('k'), true);
    await created.close();
  });

  it('bad credentials are reported clearly and not retried', async () => {
    const saved = process.env.AWS_ACCESS_KEY_ID;
    process.env.AWS_ACCESS_KEY_ID = 'NOT-A-KEY-ID';
    try {
      for (const spawnOwn of [false, true]) {
        await rejectsWithCode(openArchive(s3Identifier(conditional, 'creds'), { spawnOwn, onLog: () => undefined, stderr: null }),
          'badRequest', /access to s3:\/\/cairn\/creds\/ denied \((InvalidAccessKeyId|HTTP 403)\).*credentials/);
      }
    } finally {
      process.env.AWS_ACCESS_KEY_ID = saved;
    }
  });

  it('a hung (SIGSTOPped) server gives unavailable after --timeout; after it thaws, nothing acknowledged is lost', async () => {
    const own = await S3Server.start(path.join(scratch.dir, 'hang'), { conditional: true });
    const backends: Backend[] = [];
    try {
      await own.createBucket('cairn');
      for (const spawnOwn of [false, true]) {
        const backend = await openArchive(s3Identifier(own, `hang-${spawnOwn}`, '--timeout 1.5 '), { spawnOwn, onLog: () => undefined });
        await backend.put('before', Buffer.from('kept'));
        await backend.setTag('t', Buffer.from('tag'));
        backends.push(backend);
      }
      own.freeze(true);
      for (const backend of backends) {
        const started = Date.now();
        await rejectsWithCode(backend.put('during', Buffer.from('x')), 'unavailable', /gave up after 1.5 s/);
        const took = Date.now() - started;
        assert.ok(took >= 1400 && took < 6000, `gave up after ${took} ms`);
      }
      own.freeze(false);
      for (const backend of backends) {
        assert.equal(Buffer.from((await backend.get('before')) as Uint8Array).toString(), 'kept');
        assert.equal(Buffer.from((await backend.getTag('t')) as Uint8Array).toString(), 'tag');
        await backend.put('after', Buffer.from('y'));
        assert.equal(await backend.exists('after'), true);
      }
    } finally {
      own.freeze(false);
      for (const backend of backends) await backend.close().catch(() => undefined);
      await own.stop();
    }
  });

  it('a server killed and restarted mid-run: puts are retried and none is lost', async () => {
    const own = await S3Server.start(path.join(scratch.dir, 'restart'), { conditional: true });
    try {
      await own.createBucket('cairn');
      const backend = await openArchive(s3Identifier(own, 'restart', '--timeout 30 '), { onLog: () => undefined });
      const puts: Array<Promise<void>> = [];
      for (let i = 0; i < 40; i += 1) {
        puts.push(backend.put(`r${i}`, Buffer.from(`value ${i}`)));
        if (i === 15) await own.stop();
        if (i === 25) await own.restart();
      }
      await Promise.all(puts);
      for (let i = 0; i < 40; i += 1) assert.equal(Buffer.from((await backend.get(`r${i}`)) as Uint8Array).toString(), `value ${i}`);
      await backend.close();
    } finally {
      await own.stop();
    }
  });
});

describe('s3: arguments', () => {
  it('the option names scripts rely on, the prefix normalised, and clear usage errors', () => {
    const config = parseS3Args(['--endpoint', 'https://x.example', '--region', 'auto', '--path-style', '--storage-class', 'STANDARD_IA',
      '--connections', '8', '--create-bucket', 's3://my-bucket/a/b/']);
    assert.deepEqual(
      [config.bucket, config.prefix, config.endpoint, config.region, config.pathStyle, config.storageClass, config.connections, config.createBucket],
      ['my-bucket', 'a/b/', 'https://x.example', 'auto', true, 'STANDARD_IA', 8, true],
    );
    assert.equal(parseS3Args(['s3://my-bucket']).prefix, '');
    for (const bad of [['my-bucket/x'], ['s3://B/x'], ['s3://b/../x'], ['--endpoint', 'ftp://x', 's3://bkt/x'], ['--storage-class', 'GLACIER', 's3://bkt/x'], ['--connections', '0', 's3://bkt/x']]) {
      assert.throws(() => parseS3Args(bad), UsageError, bad.join(' '));
    }
  });
});
