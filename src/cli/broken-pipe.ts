/** Exit status of a command whose output went to a reader that is gone: 128 + SIGPIPE, as a shell reports other tools. */
export const BROKEN_PIPE_EXIT = 141;

/**
 * A reader that went away (`cairn ls home | head -1`) ends the command at
 * once and quietly, as SIGPIPE ends other tools (Node ignores SIGPIPE, so a
 * write fails with EPIPE instead, which would otherwise surface as a stack
 * trace). A snapshot cut short this way moves no tag: like any interrupted
 * one, it leaves the archive as it was, plus blocks that nothing refers to.
 */
export function endQuietlyOnBrokenPipe(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(BROKEN_PIPE_EXIT);
      throw err;
    });
  }
}
