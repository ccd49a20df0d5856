/**
 * One error class and one code union for every backend and for the wire
 * (protocol.md, "Error codes"). Callers test `code`, never message text.
 */
export const ERROR_CODES = [
  'badRequest',
  'unsupported',
  'readOnly',
  'tooLarge',
  'corrupt',
  'unavailable',
  'conflict',
  'internal',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export class BackendError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BackendError';
    this.code = code;
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && (ERROR_CODES as readonly string[]).includes(value);
}

export function isBackendError(err: unknown, code?: ErrorCode): err is BackendError {
  return err instanceof BackendError && (code === undefined || err.code === code);
}

/** Wraps anything thrown into a BackendError; BackendErrors pass unchanged. */
export function toBackendError(err: unknown, fallback: ErrorCode = 'internal'): BackendError {
  if (err instanceof BackendError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new BackendError(fallback, message, { cause: err });
}

/** Node system error codes that mean "the store cannot be reached now". */
const UNAVAILABLE_ERRNO = new Set([
  'EIO', 'ENOSPC', 'EDQUOT', 'EMFILE', 'ENFILE', 'ETIMEDOUT', 'ECONNRESET',
  'ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'ESTALE', 'EAGAIN', 'EBUSY',
]);

/** Maps a filesystem error to a protocol code (used by the fs and splitlog stores). */
export function fsErrorToBackendError(err: unknown, what: string): BackendError {
  if (err instanceof BackendError) return err;
  const errno = (err as NodeJS.ErrnoException | undefined)?.code;
  const message = `${what}: ${err instanceof Error ? err.message : String(err)}`;
  if (errno === 'EROFS' || errno === 'EACCES' || errno === 'EPERM') {
    return new BackendError('readOnly', message, { cause: err });
  }
  if (errno !== undefined && UNAVAILABLE_ERRNO.has(errno)) {
    return new BackendError('unavailable', message, { cause: err });
  }
  return new BackendError('internal', message, { cause: err });
}
