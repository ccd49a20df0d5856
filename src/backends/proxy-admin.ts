import type { AdminResult, Backend } from './backend.js';
import { adminHelp, formatFields, type AdminTable } from './admin-commands.js';
import { BackendError } from './errors.js';

/**
 * Admin for proxy backends: the proxy's own commands first; `help` lists them
 * and then the inner archive's help; `info` shows the proxy's fields and then
 * the inner archive's info; `inner COMMAND ARGS...` always reaches the inner
 * archive (for a name the proxy shadows, e.g. the cache's `stats`); every
 * other command is passed to the inner archive unchanged, so `archive-admin`
 * reaches the store at the end of a chain of proxies.
 */
export async function runProxyAdmin(
  proxyName: string,
  table: AdminTable,
  inner: Backend,
  command: string,
  args: string[],
): Promise<AdminResult> {
  if (typeof command !== 'string' || !Array.isArray(args) || !args.every((a) => typeof a === 'string')) {
    throw new BackendError('badRequest', 'admin takes a command name and an array of string arguments');
  }
  if (command === 'help') return proxyHelp(proxyName, table, inner);
  if (command === 'inner') {
    const [innerCommand, ...innerArgs] = args;
    if (innerCommand === undefined) throw new BackendError('badRequest', 'usage: inner COMMAND [ARGS...]');
    return innerAdmin(inner, innerCommand, innerArgs);
  }
  const entry = Object.hasOwn(table, command) ? table[command] : undefined;
  if (entry !== undefined) return entry.run(args);
  return innerAdmin(inner, command, args);
}

/** A proxy's own `info`: its fields, then the inner archive's info. */
export async function proxyInfo(fields: Record<string, unknown>, inner: Backend): Promise<AdminResult> {
  const innerInfo = await innerAdminOrNull(inner, 'info');
  const text = innerInfo === null
    ? formatFields(fields)
    : `${formatFields(fields)}\n\ninner archive (${inner.info().backend}):\n${indent(innerInfo.text)}`;
  return { text, data: { ...fields, inner: innerInfo?.data ?? null } };
}

async function proxyHelp(proxyName: string, table: AdminTable, inner: Backend): Promise<AdminResult> {
  const full: AdminTable = {
    ...table,
    inner: { usage: 'inner COMMAND [ARGS...]', summary: 'run an admin command of the inner archive', run: () => ({ text: '', data: null }) },
  };
  const own = adminHelp(proxyName, full);
  const innerHelp = await innerAdminOrNull(inner, 'help');
  const text = innerHelp === null
    ? `${own.text}\nThe inner archive (${inner.info().backend}) has no admin commands.`
    : `${own.text}\nOther commands go to the inner archive (${inner.info().backend}):\n${indent(innerHelp.text)}`;
  return { text, data: { commands: own.data, inner: innerHelp?.data ?? null } };
}

function innerAdmin(inner: Backend, command: string, args: string[]): Promise<AdminResult> {
  if (!inner.info().features.includes('admin')) {
    throw new BackendError('unsupported', `the inner archive (${inner.info().backend}) has no admin commands`);
  }
  return inner.admin(command, args);
}

async function innerAdminOrNull(inner: Backend, command: 'help' | 'info'): Promise<AdminResult | null> {
  if (!inner.info().features.includes('admin')) return null;
  return inner.admin(command, []);
}

function indent(text: string): string {
  return text.replace(/^(?=.)/gm, '  ');
}
