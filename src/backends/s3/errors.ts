import { BackendError } from '../errors.js';

/** The shape of an SDK v3 service or network error, as far as we look at it. */
interface S3ErrorShape {
  name?: string;
  code?: string;
  message?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
  $retryable?: unknown;
}

const RETRYABLE_NAMES = new Set([
  'SlowDown', 'ThrottlingException', 'Throttling', 'RequestTimeout', 'RequestTimeTooSkewed', 'InternalError',
  'ServiceUnavailable', 'TimeoutError', 'RequestTimeoutException', 'ConditionalRequestConflict', 'OperationAborted',
]);
const RETRYABLE_NETWORK = /^(ECONNRESET|ECONNREFUSED|ETIMEDOUT|EPIPE|EHOSTUNREACH|ENETUNREACH|EAI_AGAIN|ECONNABORTED|ENOTFOUND|UND_ERR_SOCKET)$/;

export function statusOf(err: unknown): number | undefined {
  return (err as S3ErrorShape | null)?.$metadata?.httpStatusCode;
}

export function nameOf(err: unknown): string {
  const e = err as S3ErrorShape | null;
  return e?.name ?? e?.Code ?? e?.code ?? '';
}

/** 404 of a missing object (not of a missing bucket). */
export function isNotFound(err: unknown): boolean {
  const name = nameOf(err);
  return name === 'NoSuchKey' || name === 'NotFound' || (statusOf(err) === 404 && name !== 'NoSuchBucket');
}

/** 412: a conditional write found the object there (If-None-Match) or changed (If-Match). */
export function isPreconditionFailed(err: unknown): boolean {
  return statusOf(err) === 412 || nameOf(err) === 'PreconditionFailed';
}

/** Throttling (429, 503 SlowDown), server errors (500, 502, 503, 504) and network errors may pass. */
export function isRetryable(err: unknown): boolean {
  if (err instanceof BackendError) return err.code === 'unavailable';
  const status = statusOf(err);
  if (status === 429 || status === 500 || status === 502 || status === 503 || status === 504) return true;
  if (RETRYABLE_NAMES.has(nameOf(err))) return true;
  const code = (err as S3ErrorShape | null)?.code;
  if (typeof code === 'string' && RETRYABLE_NETWORK.test(code)) return true;
  return status === undefined && /socket hang up|ECONNRESET|ECONNREFUSED|timed? ?out|aborted/i.test((err as Error | null)?.message ?? '');
}

/**
 * Maps an S3 or network error to a protocol code (conventions.md, 3), naming
 * the bucket and prefix: retryable ones are `unavailable`; a missing bucket,
 * refused credentials or missing credentials are mistakes to fix
 * (`badRequest`) and are never retried.
 */
export function s3ErrorToBackendError(err: unknown, what: string, where: string): BackendError {
  if (err instanceof BackendError) return err;
  const name = nameOf(err);
  const status = statusOf(err);
  const detail = (err as Error | null)?.message ?? String(err);
  if (name === 'NoSuchBucket') {
    return new BackendError('badRequest', `${what}: the bucket of ${where} does not exist; create it or pass --create-bucket`, { cause: err });
  }
  if (name === 'CredentialsProviderError' || /Could not load credentials/i.test(detail)) {
    return new BackendError('badRequest', `${what}: no AWS credentials for ${where}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE`, { cause: err });
  }
  if (status === 403 || name === 'AccessDenied' || name === 'InvalidAccessKeyId' || name === 'SignatureDoesNotMatch') {
    return new BackendError('badRequest', `${what}: access to ${where} denied (${name !== '' && name !== 'Unknown' ? name : `HTTP ${status ?? 403}`}): check the credentials and the bucket policy`, { cause: err });
  }
  if (/Region is missing/i.test(detail)) {
    return new BackendError('badRequest', `${what}: no region for ${where}: pass --region or set AWS_REGION`, { cause: err });
  }
  if (isRetryable(err)) return new BackendError('unavailable', `${what} (${where}): ${name || status || ''} ${detail}`.trim(), { cause: err });
  return new BackendError('internal', `${what} (${where}): ${name || status || ''} ${detail}`.trim(), { cause: err });
}
