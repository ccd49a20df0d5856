import { UsageError } from '../factory.js';
import { parseProxyArgs } from '../proxy-args.js';

export interface S3Config {
  bucket: string;
  /** Object name prefix: empty, or ending with "/". */
  prefix: string;
  endpoint: string | undefined;
  region: string | undefined;
  pathStyle: boolean;
  storageClass: string | undefined;
  connections: number;
  createBucket: boolean;
  /** Seconds one operation may take, retries included, before it fails with `unavailable`. */
  timeoutSeconds: number;
}

export const S3_USAGE = 'backend-s3 [--endpoint URL] [--region R] [--path-style] [--storage-class CLASS] [--connections N] [--create-bucket] [--timeout SECONDS] s3://BUCKET/PREFIX';

/** Splits s3://BUCKET/PREFIX; the prefix gets a trailing "/" unless empty. */
export function parseS3Url(text: string): { bucket: string; prefix: string } {
  const match = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(text);
  if (match === null) throw new UsageError(`expected s3://BUCKET/PREFIX with a valid bucket name, got ${JSON.stringify(text)}`);
  let prefix = (match[2] ?? '').replace(/\/+$/, '');
  if (prefix.split('/').some((part) => part === '.' || part === '..')) throw new UsageError('the prefix may not contain "." or ".." segments');
  if (prefix !== '') prefix += '/';
  return { bucket: match[1] as string, prefix };
}

export function parseS3Args(argv: readonly string[]): S3Config {
  const { options, positional } = parseProxyArgs(argv, {
    values: ['endpoint', 'region', 'storage-class', 'connections', 'timeout'],
    flags: ['path-style', 'create-bucket'],
  });
  const one = (name: string): string | undefined => options.get(name)?.[0];
  if (positional.length !== 1) throw new UsageError('expected exactly one s3://BUCKET/PREFIX');
  const { bucket, prefix } = parseS3Url(positional[0] as string);
  const endpoint = one('endpoint');
  if (endpoint !== undefined && !/^https?:\/\/[^\s/]+/.test(endpoint)) throw new UsageError(`--endpoint must be an http(s) URL, got ${JSON.stringify(endpoint)}`);
  const connections = one('connections') ?? '16';
  if (!/^\d+$/.test(connections) || Number(connections) < 1 || Number(connections) > 256) throw new UsageError('--connections must be an integer from 1 to 256');
  const timeout = one('timeout') ?? '60';
  if (!/^\d+(\.\d+)?$/.test(timeout) || Number(timeout) <= 0 || Number(timeout) > 3600) throw new UsageError('--timeout must be a number of seconds above 0 and at most 3600');
  const storageClass = one('storage-class');
  if (storageClass !== undefined && !/^[A-Z_]+$/.test(storageClass)) throw new UsageError(`--storage-class looks wrong: ${JSON.stringify(storageClass)} (e.g. STANDARD, STANDARD_IA, GLACIER_IR)`);
  if (storageClass === 'GLACIER' || storageClass === 'DEEP_ARCHIVE') {
    throw new UsageError(`--storage-class ${storageClass} needs a restore before every read; blocks must be readable at once (use GLACIER_IR or STANDARD_IA)`);
  }
  return {
    bucket,
    prefix,
    endpoint,
    region: one('region'),
    pathStyle: one('path-style') !== undefined,
    storageClass,
    connections: Number(connections),
    createBucket: one('create-bucket') !== undefined,
    timeoutSeconds: Number(timeout),
  };
}
