import { Packr } from 'msgpackr';
import { BackendError } from '../backends/errors.js';

/** The MessagePack settings of every structure the snapshot layer stores (docs/format.md). */
const packr = new Packr({
  useRecords: false,
  moreTypes: false,
  structuredClone: false,
  bundleStrings: false,
  mapsAsObjects: true,
  int64AsType: 'number',
  variableMapSize: true,
});

export function pack(value: unknown): Buffer {
  return packr.pack(value);
}

/** Decodes one stored structure; anything malformed is `corrupt`, naming `what`. */
export function unpack(data: Uint8Array, what: string): unknown {
  try {
    return packr.unpack(data);
  } catch (err) {
    throw new BackendError('corrupt', `${what} is not valid MessagePack: ${(err as Error).message}`);
  }
}

/** Reads a field of a decoded record, checking its type; a mismatch is `corrupt`. */
export function field<T>(record: unknown, name: string, check: (v: unknown) => v is T, what: string): T {
  if (typeof record !== 'object' || record === null) throw new BackendError('corrupt', `${what} is not a record`);
  const value = (record as Record<string, unknown>)[name];
  if (!check(value)) throw new BackendError('corrupt', `${what}: field ${name} is missing or malformed`);
  return value;
}

export const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
export const isString = (v: unknown): v is string => typeof v === 'string';
export const isBytes = (v: unknown): v is Buffer => Buffer.isBuffer(v) || v instanceof Uint8Array;
