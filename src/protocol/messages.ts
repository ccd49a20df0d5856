import type { Backend, BackendInfo, Feature, LogLevel } from '../backends/backend.js';
import { BackendError } from '../backends/errors.js';
import {
  checkCursor, checkKey, checkKeyList, checkListLimit, checkOwner, checkTagName, checkTtl,
} from '../backends/names.js';

/** protocol.md, "Start-up": the only protocol version this code speaks. */
export const PROTOCOL_VERSION = 1;
export const MAX_REQUEST_ID = 2 ** 32 - 1;

/** A request, decoded once and validated at the edge. */
export type Request =
  | { id: number; op: 'put'; key: string; data: Uint8Array }
  | { id: number; op: 'exists' | 'get' | 'remove'; key: string }
  | { id: number; op: 'existsMany'; keys: string[] }
  | { id: number; op: 'listBlocks'; cursor: string | null; limit: number }
  | { id: number; op: 'setTag'; name: string; value: Uint8Array }
  | { id: number; op: 'getTag' | 'removeTag' | 'tagLocked'; name: string }
  | { id: number; op: 'lockTag'; name: string; owner: string; ttl: number }
  | { id: number; op: 'unlockTag'; name: string; owner: string }
  | { id: number; op: 'listTags' | 'flush' | 'stats' | 'close' }
  | { id: number; op: 'admin'; command: string; args: string[] };

export type Op = Request['op'];

/** A request that could not be decoded; `id` is set when the frame named one. */
export class RequestError extends BackendError {
  constructor(readonly id: number | null, message: string) {
    super('badRequest', message);
  }
}

export function isRequestId(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= MAX_REQUEST_ID;
}

function bin(value: unknown, what: string): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new BackendError('badRequest', `${what} must be MessagePack bin`);
  return value;
}

function str(value: unknown, what: string): string {
  if (typeof value !== 'string') throw new BackendError('badRequest', `${what} must be a string`);
  return value;
}

function strings(value: unknown, what: string): string[] {
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
    throw new BackendError('badRequest', `${what} must be an array of strings`);
  }
  return value as string[];
}

const ARG_COUNTS: Record<Op, number> = {
  put: 2, exists: 1, existsMany: 1, get: 1, remove: 1, listBlocks: 2, setTag: 2, getTag: 1,
  removeTag: 1, listTags: 0, lockTag: 3, unlockTag: 2, tagLocked: 1, flush: 0, stats: 0, admin: 2, close: 0,
};

export function isOp(value: unknown): value is Op {
  return typeof value === 'string' && Object.hasOwn(ARG_COUNTS, value);
}

/** Decodes `[id, op, ...args]`; throws RequestError for anything else. */
export function parseRequest(message: unknown): Request {
  if (!Array.isArray(message)) throw new RequestError(null, 'a request must be a MessagePack array');
  const [id, op, ...args] = message as unknown[];
  if (!isRequestId(id)) throw new RequestError(null, 'request id must be an integer from 1 to 2^32-1');
  if (!isOp(op)) throw new RequestError(id, `unknown op ${JSON.stringify(String(op)).slice(0, 60)}`);
  if (op === 'admin' && args.length === 1) args.push([]);
  if (args.length !== ARG_COUNTS[op]) {
    throw new RequestError(id, `${op} takes ${ARG_COUNTS[op]} arguments, got ${args.length}`);
  }
  try {
    return decodeArgs(id, op, args);
  } catch (err) {
    throw new RequestError(id, err instanceof Error ? err.message : String(err));
  }
}

function decodeArgs(id: number, op: Op, a: unknown[]): Request {
  switch (op) {
    case 'put': return { id, op, key: checkKey(a[0]), data: bin(a[1], 'block data') };
    case 'exists': case 'get': case 'remove': return { id, op, key: checkKey(a[0]) };
    case 'existsMany': return { id, op, keys: checkKeyList(a[0]) };
    case 'listBlocks': return { id, op, cursor: checkCursor(a[0]), limit: checkListLimit(a[1]) };
    case 'setTag': return { id, op, name: checkTagName(a[0]), value: bin(a[1], 'tag value') };
    case 'getTag': case 'removeTag': case 'tagLocked': return { id, op, name: checkTagName(a[0]) };
    case 'lockTag': return { id, op, name: checkTagName(a[0]), owner: checkOwner(a[1]), ttl: checkTtl(a[2]) };
    case 'unlockTag': return { id, op, name: checkTagName(a[0]), owner: checkOwner(a[1]) };
    case 'listTags': case 'flush': case 'stats': case 'close': return { id, op };
    case 'admin': return { id, op, command: str(a[0], 'admin command'), args: strings(a[1], 'admin arguments') };
  }
}

/** Encodes a request for the wire (the inverse of parseRequest). */
export function requestToWire(request: Request): unknown[] {
  switch (request.op) {
    case 'put': return [request.id, request.op, request.key, request.data];
    case 'exists': case 'get': case 'remove': return [request.id, request.op, request.key];
    case 'existsMany': return [request.id, request.op, request.keys];
    case 'listBlocks': return [request.id, request.op, request.cursor, request.limit];
    case 'setTag': return [request.id, request.op, request.name, request.value];
    case 'getTag': case 'removeTag': case 'tagLocked': return [request.id, request.op, request.name];
    case 'lockTag': return [request.id, request.op, request.name, request.owner, request.ttl];
    case 'unlockTag': return [request.id, request.op, request.name, request.owner];
    case 'listTags': case 'flush': case 'stats': case 'close': return [request.id, request.op];
    case 'admin': return [request.id, request.op, request.command, request.args];
  }
}

/** Calls the Backend method a request names. `close` is handled by the server. */
export function callBackend(backend: Backend, r: Request): Promise<unknown> {
  switch (r.op) {
    case 'put': return backend.put(r.key, r.data).then(() => null);
    case 'exists': return backend.exists(r.key);
    case 'existsMany': return backend.existsMany(r.keys);
    case 'get': return backend.get(r.key);
    case 'remove': return backend.remove(r.key);
    case 'listBlocks': return backend.listBlocks(r.cursor, r.limit);
    case 'setTag': return backend.setTag(r.name, r.value).then(() => null);
    case 'getTag': return backend.getTag(r.name);
    case 'removeTag': return backend.removeTag(r.name);
    case 'listTags': return backend.listTags();
    case 'lockTag': return backend.lockTag(r.name, r.owner, r.ttl);
    case 'unlockTag': return backend.unlockTag(r.name, r.owner).then(() => null);
    case 'tagLocked': return backend.tagLocked(r.name);
    case 'flush': return backend.flush().then(() => null);
    case 'stats': return backend.stats();
    case 'admin': return backend.admin(r.command, r.args);
    case 'close': return backend.close().then(() => null);
  }
}

/** The greeting as sent on the wire. */
export function helloMessage(info: BackendInfo): unknown[] {
  const body: Record<string, unknown> = {
    protocol: PROTOCOL_VERSION,
    backend: info.backend,
    blockSize: info.blockSize,
    writable: info.writable,
    features: info.features,
  };
  if (info.member !== undefined) body.member = info.member;
  return ['hello', body];
}

const FEATURES: readonly Feature[] = ['remove', 'listBlocks', 'admin'];

/** Validates a greeting from a backend; throws with a clear message otherwise. */
export function parseHello(message: unknown): BackendInfo {
  if (!Array.isArray(message) || message[0] !== 'hello' || typeof message[1] !== 'object' || message[1] === null) {
    throw new Error('the backend did not start with a hello greeting');
  }
  const body = message[1] as Record<string, unknown>;
  if (body.protocol !== PROTOCOL_VERSION) {
    throw new Error(`the backend speaks protocol ${JSON.stringify(body.protocol)}, this client speaks ${PROTOCOL_VERSION}`);
  }
  const { backend, blockSize, writable, features, member } = body;
  if (typeof blockSize !== 'number' || !Number.isInteger(blockSize) || blockSize < 65536) {
    throw new Error('the greeting has no valid blockSize (at least 65536)');
  }
  if (typeof writable !== 'boolean') throw new Error('the greeting has no boolean writable');
  const featureList = Array.isArray(features)
    ? features.filter((f): f is Feature => (FEATURES as readonly unknown[]).includes(f))
    : [];
  const info: BackendInfo = {
    backend: typeof backend === 'string' ? backend : 'unknown',
    blockSize,
    writable,
    features: featureList,
  };
  if (typeof member === 'string') info.member = member;
  return info;
}

export function isLogLevel(value: unknown): value is LogLevel {
  return value === 'info' || value === 'warning' || value === 'error';
}
