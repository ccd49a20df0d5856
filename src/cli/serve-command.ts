import type { Backend } from '../backends/backend.js';
import { toBackendError } from '../backends/errors.js';
import { UsageError, type BackendContext } from '../backends/factory.js';
import { openArchive } from '../backends/open.js';
import { findBackend, usageOf } from '../backends/registry.js';
import { FrameWriter } from '../protocol/frame-writer.js';
import { noticeLogger, serveBackend } from '../protocol/serve.js';
import { cairnVersion } from './version.js';

/**
 * The main of every backend executable: parse the arguments, open the
 * backend, and serve the protocol on stdin/stdout. A backend that cannot
 * start sends `fatal` and exits non-zero (protocol.md, "Start-up").
 */
export async function serveCommand(command: string): Promise<never> {
  const argv = process.argv.slice(2);
  const writer = new FrameWriter(process.stdout);
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h') {
    process.stderr.write(`usage:\n${usageOf(command)}\n\nServes the cairn backend protocol on stdin/stdout; normally started by an archive identifier.\n${command} --version prints the version.\n`);
    process.exit(argv.length === 0 ? 2 : 0);
  }
  if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-V')) {
    process.stdout.write(`${command} (cairn) ${cairnVersion()}\n`);
    process.exit(0);
  }
  const log = noticeLogger(writer);
  let backend: Backend;
  try {
    const found = findBackend([command, ...argv]);
    if (found === undefined) throw new UsageError(`unknown command ${command}`);
    const opener = found.backend.prepare(found.args);
    const context: BackendContext = { log, openArchive: (identifier) => openArchive(identifier, { onLog: log }) };
    backend = await opener(context);
  } catch (err) {
    const usage = err instanceof UsageError;
    const error = toBackendError(err, usage ? 'badRequest' : 'internal');
    const message = usage ? `${error.message}\nusage:\n${usageOf(command)}` : error.message;
    process.stderr.write(`${command}: ${message}\n`);
    writer.write(['fatal', { code: error.code, message }]);
    await writer.end();
    process.exit(usage ? 2 : 1);
  }
  process.stdin.on('error', () => undefined);
  const result = await serveBackend(backend, process.stdin, writer);
  process.exit(result.exitCode);
}
