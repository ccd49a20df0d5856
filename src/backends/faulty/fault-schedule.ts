/**
 * The fault schedule of `backend-faulty`, from its options and from
 * CAIRN_FAULTY_* environment variables (an option given on the command line
 * replaces the variable of the same name). This is a stable interface used by
 * other tests: README, "backend-faulty", lists it.
 *
 * Operations are counted from 1 in the order they reach the proxy: every
 * request except `admin` and `close` (which are never faulted, so a schedule
 * can be inspected and a stream always ends cleanly).
 */
import { ERROR_CODES, isErrorCode, type ErrorCode } from '../errors.js';
import { UsageError } from '../factory.js';
import { parseProxyArgs } from '../proxy-args.js';

export const FAULT_OPS = [
  'put', 'exists', 'existsMany', 'get', 'remove', 'listBlocks', 'setTag', 'getTag', 'removeTag', 'listTags',
  'lockTag', 'unlockTag', 'tagLocked', 'flush', 'stats',
] as const;

export type FaultOp = (typeof FAULT_OPS)[number];

/** Which writes `--drop-writes` may drop. */
export const DROPPABLE_OPS = ['put', 'setTag'] as const;
export type DroppableOp = (typeof DROPPABLE_OPS)[number];

export interface FailSpec {
  /** The Nth operation (of `op`, when given), from 1. */
  nth: number;
  op: FaultOp | null;
  code: ErrorCode;
  /** Forward the operation to the inner archive first, then fail it (the effect happens, the answer is lost). */
  after: boolean;
}

export interface CountSpec {
  count: number;
  op: FaultOp | null;
}

export interface FaultSchedule {
  /** --fail-op N[:OP]:CODE[:after] (repeatable): fail exactly the Nth operation. */
  failOps: FailSpec[];
  /** --fail-from N[:OP]:CODE (repeatable): fail the Nth operation and every one after it. */
  failFrom: FailSpec[];
  /** --kill-after N[:OP]: after N operations (of OP) have reached the inner archive, the next one SIGKILLs the process. */
  killAfter: CountSpec | null;
  /** --delay MS[:OP] (repeatable): hold every operation (of OP) MS milliseconds before forwarding it. */
  delays: Array<{ ms: number; op: FaultOp | null }>;
  /** --corrupt-get N (repeatable): flip one byte of the Nth get that returns data. */
  corruptGets: number[];
  /** --corrupt-tag N (repeatable): flip one byte of the Nth getTag that returns data. */
  corruptTags: number[];
  /** --corrupt-rate F: flip one byte of any get or getTag result with probability F. */
  corruptRate: number;
  /** --drop-writes F[:OP] (repeatable): acknowledge a put (or setTag) without storing it, with probability F. */
  dropWrites: Array<{ fraction: number; op: DroppableOp }>;
  /** --seed S: the random decisions (drops, corruption, which byte) follow from it. */
  seed: number;
  /** Whether the seed was chosen at random (it is then logged, to reproduce a run). */
  randomSeed: boolean;
  /** --log FILE: one JSON line per operation. */
  logFile: string | null;
}

/** Option name → environment variable. */
export const FAULT_ENV: Record<string, string> = {
  'fail-op': 'CAIRN_FAULTY_FAIL_OP',
  'fail-from': 'CAIRN_FAULTY_FAIL_FROM',
  'kill-after': 'CAIRN_FAULTY_KILL_AFTER',
  delay: 'CAIRN_FAULTY_DELAY',
  'corrupt-get': 'CAIRN_FAULTY_CORRUPT_GET',
  'corrupt-tag': 'CAIRN_FAULTY_CORRUPT_TAG',
  'corrupt-rate': 'CAIRN_FAULTY_CORRUPT_RATE',
  'drop-writes': 'CAIRN_FAULTY_DROP_WRITES',
  seed: 'CAIRN_FAULTY_SEED',
  log: 'CAIRN_FAULTY_LOG',
};

const REPEATABLE = ['fail-op', 'fail-from', 'delay', 'corrupt-get', 'corrupt-tag', 'drop-writes'];

export const FAULT_OPTIONS_USAGE = `options (or the CAIRN_FAULTY_* variable named after each; lists comma-separated):
  --fail-op N[:OP]:CODE[:after]  fail the Nth operation (of OP) with CODE; with :after, only once the inner archive did it
  --fail-from N[:OP]:CODE        fail the Nth operation (of OP) and every later one
  --kill-after N[:OP]            SIGKILL this process when an operation (of OP) arrives after N of them went through
  --delay MS[:OP]                hold every operation (of OP) MS milliseconds
  --corrupt-get N                flip one byte of the Nth get that returns data
  --corrupt-tag N                flip one byte of the Nth getTag that returns data
  --corrupt-rate FRACTION        flip one byte of any returned block or tag with this probability
  --drop-writes FRACTION[:OP]    acknowledge a put (or setTag) without storing it, with this probability
  --seed S                       seed of the random choices (default: random, logged)
  --log FILE                     append one JSON line per operation to FILE
OP: ${FAULT_OPS.join(' ')}; CODE: ${ERROR_CODES.join(' ')}`;

/** Parses the arguments of `backend-faulty` (options, then the inner identifier) with the environment as defaults. */
export function parseFaultArgs(argv: readonly string[], env: NodeJS.ProcessEnv): { schedule: FaultSchedule; positional: string[] } {
  const parsed = parseProxyArgs(argv, { values: Object.keys(FAULT_ENV), repeatable: REPEATABLE });
  const values = (name: string): string[] => {
    const given = parsed.options.get(name);
    if (given !== undefined) return given;
    const fromEnv = env[FAULT_ENV[name] as string];
    if (fromEnv === undefined || fromEnv.trim() === '') return [];
    return REPEATABLE.includes(name) ? fromEnv.split(',').map((s) => s.trim()).filter((s) => s !== '') : [fromEnv.trim()];
  };
  const single = (name: string): string | undefined => values(name).at(-1);
  const seedText = single('seed');
  const seed = seedText === undefined ? Math.floor(Math.random() * 2 ** 31) : parseNumber(seedText, '--seed', true);
  const kill = single('kill-after');
  const rate = single('corrupt-rate');
  const schedule: FaultSchedule = {
    failOps: values('fail-op').map((s) => parseFail(s, '--fail-op', true)),
    failFrom: values('fail-from').map((s) => parseFail(s, '--fail-from', false)),
    killAfter: kill === undefined ? null : parseCount(kill),
    delays: values('delay').map((s) => {
      const [ms, op, ...rest] = s.split(':');
      if (rest.length > 0) throw new UsageError(`--delay takes MS[:OP]: got ${JSON.stringify(s)}`);
      return { ms: parseNumber(ms ?? '', '--delay', false), op: op === undefined ? null : parseOp(op, '--delay') };
    }),
    corruptGets: values('corrupt-get').map((s) => parseNth(s, '--corrupt-get')),
    corruptTags: values('corrupt-tag').map((s) => parseNth(s, '--corrupt-tag')),
    corruptRate: rate === undefined ? 0 : parseFraction(rate, '--corrupt-rate'),
    dropWrites: values('drop-writes').map((s) => {
      const [fraction, op, ...rest] = s.split(':');
      if (rest.length > 0) throw new UsageError(`--drop-writes takes FRACTION[:OP]: got ${JSON.stringify(s)}`);
      if (op !== undefined && !(DROPPABLE_OPS as readonly string[]).includes(op)) {
        throw new UsageError(`--drop-writes drops ${DROPPABLE_OPS.join(' or ')}: got ${JSON.stringify(op)}`);
      }
      return { fraction: parseFraction(fraction ?? '', '--drop-writes'), op: (op ?? 'put') as DroppableOp };
    }),
    seed,
    randomSeed: seedText === undefined,
    logFile: single('log') ?? null,
  };
  return { schedule, positional: parsed.positional };
}

/** True when the schedule injects nothing (logging aside). */
export function isQuiet(schedule: FaultSchedule): boolean {
  return schedule.failOps.length === 0 && schedule.failFrom.length === 0 && schedule.killAfter === null
    && schedule.delays.length === 0 && schedule.corruptGets.length === 0 && schedule.corruptTags.length === 0
    && schedule.corruptRate === 0 && schedule.dropWrites.length === 0;
}

/** The schedule written back as the options that give it (for info and logs). */
export function scheduleAsOptions(schedule: FaultSchedule): string[] {
  const op = (o: string | null): string => (o === null ? '' : `:${o}`);
  return [
    ...schedule.failOps.map((f) => `--fail-op ${f.nth}${op(f.op)}:${f.code}${f.after ? ':after' : ''}`),
    ...schedule.failFrom.map((f) => `--fail-from ${f.nth}${op(f.op)}:${f.code}`),
    ...(schedule.killAfter === null ? [] : [`--kill-after ${schedule.killAfter.count}${op(schedule.killAfter.op)}`]),
    ...schedule.delays.map((d) => `--delay ${d.ms}${op(d.op)}`),
    ...schedule.corruptGets.map((n) => `--corrupt-get ${n}`),
    ...schedule.corruptTags.map((n) => `--corrupt-tag ${n}`),
    ...(schedule.corruptRate > 0 ? [`--corrupt-rate ${schedule.corruptRate}`] : []),
    ...schedule.dropWrites.map((d) => `--drop-writes ${d.fraction}:${d.op}`),
  ];
}

function parseFail(spec: string, option: string, allowAfter: boolean): FailSpec {
  const parts = spec.split(':');
  const bad = (): UsageError => new UsageError(`${option} takes N[:OP]:CODE${allowAfter ? '[:after]' : ''}: got ${JSON.stringify(spec)}`);
  const after = parts.at(-1) === 'after';
  if (after && !allowAfter) throw bad();
  if (after) parts.pop();
  if (parts.length < 2 || parts.length > 3) throw bad();
  const nth = parseNth(parts[0] as string, option);
  const op = parts.length === 3 ? parseOp(parts[1] as string, option) : null;
  const code = parts.at(-1) as string;
  if (!isErrorCode(code)) throw new UsageError(`${option}: unknown error code ${JSON.stringify(code)}; one of: ${ERROR_CODES.join(' ')}`);
  return { nth, op, code, after };
}

function parseCount(spec: string): CountSpec {
  const [count, op, ...rest] = spec.split(':');
  if (rest.length > 0) throw new UsageError(`--kill-after takes N[:OP]: got ${JSON.stringify(spec)}`);
  return { count: parseNumber(count ?? '', '--kill-after', true), op: op === undefined ? null : parseOp(op, '--kill-after') };
}

function parseOp(text: string, option: string): FaultOp {
  if (!(FAULT_OPS as readonly string[]).includes(text)) {
    throw new UsageError(`${option}: unknown operation ${JSON.stringify(text)}; one of: ${FAULT_OPS.join(' ')}`);
  }
  return text as FaultOp;
}

function parseNth(text: string, option: string): number {
  const n = parseNumber(text, option, true);
  if (n < 1) throw new UsageError(`${option}: operations are counted from 1`);
  return n;
}

function parseNumber(text: string, option: string, integer: boolean): number {
  const pattern = integer ? /^\d+$/ : /^\d+(?:\.\d+)?$/;
  if (!pattern.test(text.trim())) throw new UsageError(`${option} needs a non-negative ${integer ? 'integer' : 'number'}: got ${JSON.stringify(text)}`);
  const value = Number(text);
  if (!Number.isSafeInteger(Math.floor(value))) throw new UsageError(`${option} is too large`);
  return value;
}

function parseFraction(text: string, option: string): number {
  const value = parseNumber(text, option, false);
  if (value > 1) throw new UsageError(`${option} is a fraction from 0 to 1: got ${JSON.stringify(text)}`);
  return value;
}
