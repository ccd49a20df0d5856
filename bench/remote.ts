/**
 * Pipelined put throughput of 1 MiB blocks to remote stores, printed as
 * MiB/s: `backend-fs fs` spawned directly, the same through ssh (a real
 * sshd on 127.0.0.1), backend-sftp to the same sshd, and both again with
 * 50 ms of added round trip (a delay proxy in front of the sshd).
 *
 *     npx tsc -p . && node dist/bench/remote.js [MiB]
 */
import * as path from 'node:path';
import type { Backend } from '../src/backends/backend.js';
import { openArchive } from '../src/backends/open.js';
import { DelayProxy } from '../test/support/delay-proxy.js';
import { patternBytes, scratchDir } from '../test/support/scratch.js';
import { Sshd } from '../test/support/sshd.js';

const MIB = 1024 * 1024;
const total = Number(process.argv[2] ?? 64);

async function measure(label: string, identifier: string, spawnOwn: boolean): Promise<void> {
  const backend: Backend = await openArchive(identifier, { spawnOwn, onLog: () => undefined });
  const blocks = Array.from({ length: total }, (_, i) => patternBytes(MIB, i + 1));
  const started = process.hrtime.bigint();
  await Promise.all(blocks.map((data, i) => backend.put(`bench-${i}`, data)));
  await backend.flush();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  await backend.close();
  console.log(`${label.padEnd(48)} ${(total / seconds).toFixed(1).padStart(7)} MiB/s  (${total} x 1 MiB in ${seconds.toFixed(2)} s)`);
}

const scratch = scratchDir('cairn-bench-');
const sshd = await Sshd.start(path.join(scratch.dir, 'sshd'));
const proxy = await DelayProxy.start(sshd.port, 50);
try {
  const dir = (name: string): string => path.join(scratch.dir, name);
  const ssh = (port: number): string => sshd.sshCommand().replace(`-p ${sshd.port}`, `-p ${port}`);
  const sftp = (port: number, d: string): string =>
    `backend-sftp --port ${port} --identity ${sshd.clientKey} --no-host-key-check --connections 8 ${sshd.user}@127.0.0.1:${d}`;
  console.log(`pipelined put of ${total} blocks of 1 MiB (each run a fresh archive; flush included)`);
  await measure('backend-fs fs, spawned directly', `backend-fs fs ${dir('direct')}`, true);
  await measure('ssh ... backend-fs fs', `${ssh(sshd.port)} backend-fs fs ${dir('ssh')}`, true);
  await measure('backend-sftp', sftp(sshd.port, dir('sftp')), true);
  await measure('ssh ... backend-fs fs, +50 ms round trip', `${ssh(proxy.port)} backend-fs fs ${dir('ssh-delay')}`, true);
  await measure('backend-sftp, +50 ms round trip', sftp(proxy.port, dir('sftp-delay')), true);
} finally {
  await proxy.stop();
  await sshd.stop();
  scratch.remove();
}
