import type { BackendFactory } from '../factory.js';
import { parseSftpArgs, SFTP_USAGE, type SftpConfig } from './config.js';

export const sftpFactory: BackendFactory<SftpConfig> = {
  command: 'backend-sftp',
  name: 'sftp',
  subcommand: false,
  usage: `${SFTP_USAGE}\n      the fs layout on a remote host over SFTP; host keys are checked against ~/.ssh/known_hosts unless --known-hosts or --no-host-key-check`,
  parseArgs: parseSftpArgs,
  async open(config) {
    // Loaded on first use: ssh2 costs every other command's start-up time otherwise.
    const { SftpBackend } = await import('./sftp-backend.js');
    return SftpBackend.open(config);
  },
};
