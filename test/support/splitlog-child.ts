/**
 * A writer process for the splitlog crash tests: opens IDENTIFIER in
 * process, then puts blocks `b<i>` (content patternBytes(sizeOf(i), i)) from
 * START on, flushing every FLUSH-EVERY blocks and setting the tag `latest`
 * to i before each flush; up to 8 puts are in flight at once. After each
 * flush it prints `flushed <i>`: every block up to i is durable. With STOP,
 * it then puts block STOP+1 of LAST-SIZE bytes (patternBytes(LAST-SIZE, i)),
 * prints `written <i>` without flushing, and waits to be killed.
 *
 *     node splitlog-child.js IDENTIFIER START FLUSH-EVERY [STOP LAST-SIZE]
 */
import { openArchive } from '../../src/backends/open.js';
import { patternBytes } from './scratch.js';

export function blockSizeOf(i: number): number {
  return 1 + ((i * 7919 * 13) % 1_000_000);
}

async function main(): Promise<void> {
  const [identifier, startText, everyText, stopText, lastSizeText] = process.argv.slice(2) as [string, string, string, string | undefined, string | undefined];
  const backend = await openArchive(identifier, { spawnOwn: false, onLog: (level, text) => process.stderr.write(`${level}: ${text}\n`) });
  const every = Number(everyText);
  const stop = stopText === undefined ? Infinity : Number(stopText);
  // Made ahead, so that the process spends its time writing (and is likelier to die mid-record).
  const ahead = new Map<number, Buffer>();
  for (let i = Number(startText); i < Number(startText) + 48; i += 1) ahead.set(i, patternBytes(blockSizeOf(i), i));
  const inFlight = new Set<Promise<void>>();
  for (let i = Number(startText); ; i += 1) {
    if (i > stop) {
      await Promise.all(inFlight);
      await backend.put(`b${i}`, patternBytes(Number(lastSizeText), i));
      process.stdout.write(`written ${i}\n`);
      await new Promise(() => undefined);
    }
    const put = backend.put(`b${i}`, ahead.get(i) ?? patternBytes(blockSizeOf(i), i)).finally(() => inFlight.delete(put));
    ahead.delete(i);
    inFlight.add(put);
    if (inFlight.size >= 8) await Promise.race(inFlight);
    if ((i + 1) % every === 0) {
      await Promise.all(inFlight);
      await backend.setTag('latest', Buffer.from(String(i)));
      await backend.flush();
      process.stdout.write(`flushed ${i}\n`);
    }
  }
}

if (process.argv[1]?.endsWith('splitlog-child.js') === true) {
  main().catch((err: unknown) => {
    process.stderr.write(`splitlog-child: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
