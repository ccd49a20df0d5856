/**
 * The global options of the cairn command that take a value
 * (cairn-program.ts defines them; a test checks the two agree).
 */
export const GLOBAL_OPTIONS_WITH_VALUE = ['--config', '--archive', '--passphrase-command', '--passphrase-file'];

/**
 * The subcommand named on a cairn command line (the arguments after the
 * program's), without commander: the first argument that is neither an
 * option nor a global option's value. Undefined when there is none. Only a
 * hint, for what to start early (cairn.ts): commander parses the line.
 */
export function commandOf(args: readonly string[]): string | undefined {
  for (let i = 0; i < args.length; i += 1) {
    const arg = args[i] as string;
    if (arg === '--') return args[i + 1];
    if (!arg.startsWith('-')) return arg;
    if (GLOBAL_OPTIONS_WITH_VALUE.includes(arg)) i += 1;
  }
  return undefined;
}
