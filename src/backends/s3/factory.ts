import type { BackendFactory } from '../factory.js';
import { parseS3Args, S3_USAGE, type S3Config } from './config.js';

export const s3Factory: BackendFactory<S3Config> = {
  command: 'backend-s3',
  name: 's3',
  subcommand: false,
  usage: `${S3_USAGE}\n      blocks and tags as objects in S3 or an S3-compatible service; credentials from the AWS environment or profile`,
  parseArgs: parseS3Args,
  async open(config) {
    // Loaded on first use: the AWS SDK costs every other command's start-up time otherwise.
    const { S3Backend } = await import('./s3-backend.js');
    return S3Backend.open(config);
  },
};
