import { BackendError } from '../errors.js';

/** SFTP status codes (draft-ietf-secsh-filexfer-02, 7), as ssh2 puts them in `err.code`. */
export const SFTP_STATUS = {
  NO_SUCH_FILE: 2,
  PERMISSION_DENIED: 3,
  FAILURE: 4,
  NO_CONNECTION: 6,
  CONNECTION_LOST: 7,
  OP_UNSUPPORTED: 8,
} as const;

/** An error of the SSH connection itself rather than of one SFTP request. */
export function isConnectionError(err: unknown): boolean {
  if (err instanceof BackendError) return err.code === 'unavailable';
  const e = err as { code?: unknown; level?: unknown; message?: unknown } | null;
  if (e === null || typeof e !== 'object') return false;
  if (e.code === SFTP_STATUS.NO_CONNECTION || e.code === SFTP_STATUS.CONNECTION_LOST) return true;
  if (e.level === 'client-socket' || e.level === 'client-timeout' || e.level === 'client-dns') return true;
  if (typeof e.code === 'string' && /^(ECONNRESET|ECONNREFUSED|ETIMEDOUT|EPIPE|EHOSTUNREACH|ENETUNREACH|ECONNABORTED|ERR_NOT_CONNECTED)$/.test(e.code)) return true;
  return typeof e.message === 'string' && /No response from server|Not connected|Channel not open|Keepalive timeout|Timed out while waiting for handshake|connection (lost|closed)|ended/i.test(e.message);
}

export function isNoSuchFile(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === SFTP_STATUS.NO_SUCH_FILE || code === 'ENOENT';
}

/**
 * Maps an SFTP or SSH error to a protocol code (conventions.md, 3): lost
 * connections and timeouts are `unavailable` (retryable), refused
 * authentication or host keys are user mistakes (`badRequest`), permission
 * denied is `readOnly`.
 */
export function sftpErrorToBackendError(err: unknown, what: string): BackendError {
  if (err instanceof BackendError) return err;
  const e = err as { code?: unknown; level?: unknown; message?: unknown } | null;
  const message = `${what}: ${typeof e?.message === 'string' ? e.message : String(err)}`;
  if (e?.level === 'client-authentication') {
    return new BackendError('badRequest', `${what}: authentication refused (${String(e.message)}); check the user and --identity`, { cause: err });
  }
  if (isConnectionError(err)) return new BackendError('unavailable', message, { cause: err });
  if (e?.code === SFTP_STATUS.PERMISSION_DENIED || e?.code === 'EACCES') return new BackendError('readOnly', message, { cause: err });
  if (e?.code === SFTP_STATUS.OP_UNSUPPORTED) return new BackendError('unsupported', message, { cause: err });
  return new BackendError('internal', message, { cause: err });
}
