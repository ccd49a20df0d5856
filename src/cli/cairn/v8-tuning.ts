import { setFlagsFromString } from 'node:v8';

/**
 * For the snapshot commands: V8 optimises a function once it has run
 * through an "interrupt budget" of bytecode (67,584 by default). A snapshot
 * lives for seconds, and its many moderately hot functions were each handed
 * to TurboFan: 14 % of all CPU samples of a first snapshot of the small
 * bench tree were its background compile tasks. Eight times the budget still
 * optimises what is really hot (chunking, the walk): that snapshot went from
 * 4.16 to 3.79 s of CPU and 2.88 to 2.73 s wall (6 interleaved runs each;
 * bench/NOTES.md, "Fourth pass"). Restore, whose hot path is short and
 * runs on one thread, was 5 % slower with it, so only snapshots ask for it.
 * A budget given in NODE_OPTIONS or on node's command line wins.
 */
const INTERRUPT_BUDGET = 540_000;

export function tuneV8ForSnapshots(): void {
  const given = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].some((a) => /interrupt[-_]budget/.test(a));
  if (!given) setFlagsFromString(`--interrupt-budget=${INTERRUPT_BUDGET}`);
}
