/**
 * Replica membership (design.md, "Replication with trust weights"): every
 * member archive of a replicated set carries the reserved tag
 * `#cairn-replica-member`, whose value is the set's name (UTF-8). A store
 * reports it as `member` in its greeting (protocol.md, "Start-up"), so a
 * client opening a member directly can refuse it.
 *
 * Every store calls `memberOf` with the tag's stored value when it opens and
 * whenever that tag is set or removed, and puts the result in `info().member`.
 */
export const MEMBER_TAG = '#cairn-replica-member';

/** The set's name from the tag's stored value; undefined when there is no (usable) value. */
export function memberOf(value: Uint8Array | null | undefined): string | undefined {
  if (value === null || value === undefined || value.byteLength === 0 || value.byteLength > 256) return undefined;
  const name = Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('utf8').trim();
  return name === '' ? undefined : name;
}

/** The tag value that makes an archive a member of the set `setName`. */
export function memberTagValue(setName: string): Uint8Array {
  return Buffer.from(setName, 'utf8');
}
