import { createHash } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import type { ContentRef } from './content-ref.js';
import { putStat, STAT_FIELDS, type Listing, type RawListing } from './listing.js';
import type { Rule, Expr } from './rules.js';

/**
 * The directory memo (README, "The file cache"): a directory's block
 * remembered by what its listing was, so that a snapshot finding the same
 * listing again takes the block's reference instead of building the
 * directory's entries, encoding and naming them (a no-change snapshot of the
 * 952 MB bench tree spent most of its main thread on that: bench/NOTES.md,
 * "Thirteenth pass").
 *
 * A directory's block is a function of: its children's names and lstat
 * fields (mode, owner, size, times, inode, links, device: a file's content
 * is the file cache's, which trusts the same fields), what decides which
 * children are included (the rules, the regex list, the paths left out, the
 * directory's path relative to the source), the owner names, the block
 * size, and its subdirectories' blocks. The memo keeps a digest of all but
 * the last (`digest`) and one of the subdirectories' references (`subs`):
 * with the same digest, the walk visits only the subdirectories, and the
 * directory is the remembered block when they come out the same. Rules that
 * depend on the time of day (`modified-within`) and directories with hard
 * links, skipped entries or files that changed while read are never
 * remembered.
 */
export interface DirectoryMemo {
  /** Hex SHA-256 of the snapshot's settings, the directory's place and its listing (`listingDigest`). */
  digest: string;
  /** Hex SHA-256 of its subdirectories' names and references, in order (`subdirectoriesDigest`). */
  subs: string;
  ref: ContentRef;
  /** Its files (counted as the walk counts them) and their bytes, for the progress counters. */
  files: number;
  bytes: number;
}

/** The raw form of a listing made on the walk's own thread (every lstat succeeded). */
export function rawListing(names: Buffer[], stats: BigIntStats[]): RawListing {
  const packed = Buffer.allocUnsafe(names.reduce((n, name) => n + name.length + 1, 0));
  const values = new BigInt64Array(names.length * STAT_FIELDS);
  let at = 0;
  names.forEach((name, i) => {
    at += name.copy(packed, at);
    packed[at] = 0;
    at += 1;
    putStat(values, i * STAT_FIELDS, stats[i] as BigIntStats);
  });
  return { names: packed, stats: values };
}

/** The digest a memo is found by: `context` (settings, rules, place) and the raw listing. */
export function listingDigest(context: string, listing: Listing): string | null {
  const raw = listing.raw;
  if (raw === undefined) return null;
  return createHash('sha256').update(context).update('\0').update(raw.names)
    .update(new Uint8Array(raw.stats.buffer, raw.stats.byteOffset, raw.stats.byteLength)).digest('hex');
}

/** The digest of a directory's subdirectories: their names and references, in the directory's order. */
export function subdirectoriesDigest(subdirs: Array<{ name: Buffer; ref: ContentRef }>): string {
  const hash = createHash('sha256');
  for (const { name, ref } of subdirs) hash.update(name).update(`\0${ref.level}:${ref.key}\0`);
  return hash.digest('hex');
}

function timeDependent(expr: Expr): boolean {
  switch (expr.kind) {
    case 'modified-within': return true;
    case 'not': return timeDependent(expr.expr);
    case 'and':
    case 'or': return timeDependent(expr.left) || timeDependent(expr.right);
    default: return false;
  }
}

const ruleTexts = new WeakMap<readonly Rule[], string | null>();

/** The rules' part of a memo's context, or null when a rule depends on the time (no memo then). */
export function rulesFingerprint(rules: readonly Rule[]): string | null {
  let text = ruleTexts.get(rules);
  if (text === undefined) {
    text = rules.some((r) => timeDependent(r.expr)) ? null : JSON.stringify(rules.map((r) => [r.include, r.base, r.source]));
    ruleTexts.set(rules, text);
  }
  return text;
}
