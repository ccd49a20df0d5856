/**
 * Pipelined put and get throughput of 1 MiB blocks for each store backend
 * and proxy (issue 8's `bench/backends`), opened three ways: in this
 * process, spawned as a child process (the protocol over its stdin and
 * stdout), and through ssh (`ssh ... backend-...` to a real sshd on
 * 127.0.0.1, started here). The S3 store talks to a real S3 server
 * (s3rver, started here). backend-sftp is ssh already, and backend-s3 needs
 * credentials the ssh session does not pass: neither is run through ssh.
 *
 *     bench/backends [MiB]     (default 256 blocks of 1 MiB each run; builds first if needed)
 *
 * Each run opens a fresh archive, puts the blocks with at most WINDOW in
 * flight, flushes, then gets them all back the same way and checks their
 * sizes. Prints a Markdown table of MiB/s. With fewer blocks the figures
 * are mostly the first requests' (64 MiB: the spawned fs store about a
 * third of the in-process one; 256 MiB: about half).
 */
import { mkdirSync } from 'node:fs';
import * as path from 'node:path';
import type { Backend } from '../src/backends/backend.js';
import { openArchive } from '../src/backends/open.js';
import { pipelined } from './pipelined.js';
import { quoteArgument } from '../src/protocol/identifier.js';
import { setUpReplica, THREE_HALVES } from '../test/support/replica-fixtures.js';
import { S3RVER_CREDENTIALS, S3Server } from '../test/support/s3-server.js';
import { patternBytes, scratchDir } from '../test/support/scratch.js';
import { Sshd } from '../test/support/sshd.js';

const MIB = 1024 * 1024;
const count = Number(process.argv[2] ?? 256);
if (!Number.isInteger(count) || count < 1) {
  console.error('usage: bench/backends [MiB]   (a whole number of 1 MiB blocks, at least 1)');
  process.exit(2);
}
/** Requests in flight at once, as a snapshot's block writer keeps them. */
const WINDOW = 32;

type Mode = 'in process' | 'spawned' | 'through ssh';

/** Put then get `count` blocks of 1 MiB: MiB/s each way. */
async function measure(identifier: string, mode: Mode): Promise<{ put: number; get: number }> {
  const backend: Backend = await openArchive(identifier, { spawnOwn: mode !== 'in process', onLog: () => undefined });
  try {
    const blocks = Array.from({ length: count }, (_, i) => patternBytes(MIB, i + 1));
    const put = await pipelined(count, WINDOW, async (i) => backend.put(`bench-${i}`, blocks[i] as Uint8Array));
    const flushed = process.hrtime.bigint();
    await backend.flush();
    const putSeconds = put + Number(process.hrtime.bigint() - flushed) / 1e9;
    const get = await pipelined(count, WINDOW, async (i) => {
      const data = await backend.get(`bench-${i}`);
      if (data === null || data.length !== MIB) throw new Error(`${identifier}: block ${i} came back ${data === null ? 'missing' : `${data.length} bytes`}`);
    });
    return { put: count / putSeconds, get: count / get };
  } finally {
    await backend.close();
  }
}

const scratch = scratchDir('cairn-bench-backends-');
Object.assign(process.env, S3RVER_CREDENTIALS);
const sshd = await Sshd.start(path.join(scratch.dir, 'sshd'));
const s3 = await S3Server.start(path.join(scratch.dir, 's3'));
try {
  await s3.createBucket('cairn');
  let runs = 0;
  /** A fresh directory for each run. */
  const fresh = (name: string): string => path.join(scratch.dir, `${name}-${(runs += 1)}`);
  const fs = (): string => `backend-fs fs ${quoteArgument(fresh('fs'))}`;
  const archives: Array<{ name: string; modes: Mode[]; identifier: () => Promise<string> }> = [
    { name: 'backend-fs fs', modes: ['in process', 'spawned', 'through ssh'], identifier: async () => fs() },
    {
      name: 'backend-fs splitlog', modes: ['in process', 'spawned', 'through ssh'],
      identifier: async () => {
        const dir = fresh('splitlog');
        return `backend-fs splitlog ${quoteArgument(path.join(dir, 'logs'))} ${quoteArgument(path.join(dir, 'meta.sqlite'))}`;
      },
    },
    {
      name: 'backend-sftp', modes: ['in process', 'spawned'],
      identifier: async () => `backend-sftp --port ${sshd.port} --identity ${quoteArgument(sshd.clientKey)} --no-host-key-check ${sshd.user}@127.0.0.1:${quoteArgument(fresh('sftp'))}`,
    },
    {
      name: 'backend-s3 (s3rver)', modes: ['in process', 'spawned'],
      identifier: async () => `backend-s3 --endpoint ${s3.endpoint} --path-style s3://cairn/${path.basename(fresh('s3'))}/`,
    },
    { name: 'backend-cache over fs', modes: ['in process', 'spawned', 'through ssh'], identifier: async () => `backend-cache ${quoteArgument(path.join(fresh('cache'), 'cache.sqlite'))} ${quoteArgument(fs())}` },
    { name: 'backend-throttle over fs (quotas of 2 GB/s)', modes: ['in process', 'spawned', 'through ssh'], identifier: async () => `backend-throttle --read 2G --write 2G ${quoteArgument(fs())}` },
    { name: 'backend-faulty over fs (nothing scheduled)', modes: ['in process', 'spawned', 'through ssh'], identifier: async () => `backend-faulty ${quoteArgument(fs())}` },
    {
      name: 'backend-replicated, three fs members of 50 %', modes: ['in process', 'spawned', 'through ssh'],
      identifier: async () => {
        const dir = fresh('replicated');
        mkdirSync(dir, { recursive: true });
        return setUpReplica(dir, THREE_HALVES);
      },
    },
  ];
  console.log(`pipelined put (flush included) and get of ${count} blocks of 1 MiB, ${WINDOW} in flight; MiB/s\n`);
  console.log('| archive | opened | put MiB/s | get MiB/s |');
  console.log('| --- | --- | ---: | ---: |');
  for (const archive of archives) {
    for (const mode of archive.modes) {
      const identifier = await archive.identifier();
      // Through ssh, the remote shell splits the command again: the identifier goes as one quoted word.
      const { put, get } = await measure(mode === 'through ssh' ? `${sshd.sshCommand()} ${quoteArgument(identifier)}` : identifier, mode);
      console.log(`| ${archive.name} | ${mode} | ${put.toFixed(1)} | ${get.toFixed(1)} |`);
    }
  }
} finally {
  await s3.stop();
  await sshd.stop();
  scratch.remove();
}
