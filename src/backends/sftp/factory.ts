import type { BackendFactory } from '../factory.js';
import { parseSftpArgs, SFTP_USAGE, type SftpConfig } from './config.js';
import { SftpBackend } from './sftp-backend.js';

export const sftpFactory: BackendFactory<SftpConfig> = {
  command: 'backend-sftp',
  name: 'sftp',
  subcommand: false,
  usage: `${SFTP_USAGE}\n      the fs layout on a remote host over SFTP; host keys are checked against ~/.ssh/known_hosts unless --known-hosts or --no-host-key-check`,
  parseArgs: parseSftpArgs,
  open(config) {
    return SftpBackend.open(config);
  },
};
