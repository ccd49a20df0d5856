/** Exit status of a command whose output went to a reader that is gone: 128 + SIGPIPE, as a shell reports other tools. */
export const BROKEN_PIPE_EXIT = 141;

/**
 * Output that cannot be written ends the command at once, in one line,
 * never with a stack trace. A reader that went away (`cairn ls home |
 * head -1`) ends it quietly with 141, as SIGPIPE ends other tools (Node
 * ignores SIGPIPE, so the write fails with EPIPE instead); any other failure
 * (`> /dev/full`: ENOSPC) is said on stderr, with status 1. A snapshot cut
 * short this way moves no tag: like any interrupted one, it leaves the
 * archive as it was, plus blocks that nothing refers to.
 */
export function endOnOutputErrors(program: string): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(BROKEN_PIPE_EXIT);
      if (stream === process.stdout) process.stderr.write(`${program}: cannot write the output: ${err.message}\n`);
      process.exit(1);
    });
  }
}
