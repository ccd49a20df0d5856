import { BackendError } from '../backends/errors.js';
import type { Archive } from './archive.js';
import { readDirectory } from './directory.js';
import { readSnapshotRecord, type SnapshotRecord } from './snapshot-record.js';
import { checkCairnTagName } from './tags.js';
import type { Entry } from './tree-entry.js';

/**
 * `TAG[@SNAPSHOT][/PATH]`: SNAPSHOT is a prefix of a snapshot id (at least 4
 * hex digits) or `~N`, the Nth before the newest; PATH is inside the tree.
 */
export interface SnapshotSpec {
  tag: string;
  snapshot: string | null;
  path: string[];
}

export function parseSpec(text: string): SnapshotSpec {
  const slash = text.indexOf('/');
  const head = slash < 0 ? text : text.slice(0, slash);
  const path = slash < 0 ? [] : text.slice(slash + 1).split('/').filter((c) => c !== '' && c !== '.');
  if (path.includes('..')) throw new BackendError('badRequest', `'..' is not allowed in a snapshot path: ${JSON.stringify(text)}`);
  const at = head.indexOf('@');
  const tag = at < 0 ? head : head.slice(0, at);
  const snapshot = at < 0 ? null : head.slice(at + 1);
  if (tag === '') throw new BackendError('badRequest', `no tag in ${JSON.stringify(text)}: expected TAG[@SNAPSHOT][/PATH]`);
  checkCairnTagName(tag);
  if (snapshot !== null && !/^([0-9a-f]{4,64}|~\d+)$/.test(snapshot)) {
    throw new BackendError('badRequest', `bad snapshot ${JSON.stringify(snapshot)}: a snapshot id prefix (4 or more hex digits) or ~N`);
  }
  return { tag, snapshot, path };
}

/** The chain of a tag, newest first (reads records until `stop` says so or the chain ends). */
export async function* chain(archive: Archive, head: string | null): AsyncGenerator<{ id: string; record: SnapshotRecord }> {
  const seen = new Set<string>();
  let id = head;
  while (id !== null) {
    if (seen.has(id)) throw new BackendError('corrupt', `snapshot chain loops at ${id}`);
    seen.add(id);
    const record = await readSnapshotRecord(archive, id);
    yield { id, record };
    id = record.previous;
  }
}

export async function resolveSnapshot(archive: Archive, spec: SnapshotSpec): Promise<{ id: string; record: SnapshotRecord }> {
  const tag = await archive.requireTag(spec.tag);
  if (tag.head === null) throw new BackendError('badRequest', `tag ${JSON.stringify(spec.tag)} has no snapshot yet`);
  const wanted = spec.snapshot;
  let index = 0;
  const back = wanted?.startsWith('~') === true ? Number(wanted.slice(1)) : null;
  for await (const item of chain(archive, tag.head)) {
    if (wanted === null || (back !== null && index === back) || (back === null && item.id.startsWith(wanted))) return item;
    index += 1;
  }
  throw new BackendError('badRequest', `no snapshot ${JSON.stringify(wanted)} on tag ${JSON.stringify(spec.tag)} (see \`cairn log ${spec.tag}\`)`);
}

/** The entry at PATH in a tree snapshot; the root itself is a directory entry named after the tag. */
export async function resolveEntry(archive: Archive, record: SnapshotRecord, path: string[], label: string): Promise<Entry> {
  if (record.kind !== 'tree' || record.root === null) throw new BackendError('badRequest', `${label} is a stream snapshot, not a tree: use cat-stream`);
  let entry: Entry = record.rootEntry ?? {
    name: Buffer.from('root'), type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: [Math.floor(record.time / 1000), 0], size: 0, content: record.root,
  };
  entry = { ...entry, content: record.root };
  for (let i = 0; i < path.length; i += 1) {
    if (entry.type !== 'dir' || entry.content === undefined || entry.content === null) {
      throw new BackendError('badRequest', `${label}: /${path.slice(0, i).join('/')} is not a directory`);
    }
    const name = Buffer.from(path[i] as string);
    const found = (await readDirectory(archive, entry.content)).find((e) => e.name.equals(name));
    if (found === undefined) throw new BackendError('badRequest', `${label}: no /${path.slice(0, i + 1).join('/')} in this snapshot`);
    entry = found;
  }
  return entry;
}
