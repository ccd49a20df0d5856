import { blockKey } from './block-codec.js';
import type { ContentRef } from './content-ref.js';
import { BlockType } from './format.js';
import type { Listing } from './listing.js';
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
  /** Hex SHA-256 (keyed: an HMAC) of the snapshot's settings, the directory's place and its listing (`listingDigest`). */
  digest: string;
  /** Its subdirectories' references, in order (`subdirectoriesText`; their names are in the listing). */
  subs: string;
  ref: ContentRef;
  /** Its files (counted as the walk counts them) and their bytes, for the progress counters. */
  files: number;
  bytes: number;
}

/** The key of the digests' HMAC: a constant (they only tell listings apart; nothing secret is derived from them). */
const DIGEST_KEY = Buffer.from('cairn directory memo digest');

/**
 * The digest a memo is found by: `settings` (the snapshot's, the same for
 * every directory), `place` (the directory's relative path and rules) and
 * the raw listing, in one call of the block naming's HMAC-SHA256 (native
 * where built: a Hash object per directory cost more than the rest of the
 * memo's work on a first snapshot).
 */
export function listingDigest(settings: Buffer, place: string, listing: Listing): string | null {
  const raw = listing.raw;
  if (raw === undefined) return null;
  const stats = new Uint8Array(raw.stats.buffer, raw.stats.byteOffset, raw.stats.byteLength);
  return blockKey(DIGEST_KEY, BlockType.directory, Buffer.concat([settings, Buffer.from(`\0${place}\0`), raw.names, stats]));
}

/** A directory's subdirectories' references, in the directory's order, as text. */
export function subdirectoriesText(refs: ContentRef[]): string {
  let text = '';
  for (const ref of refs) text += `${ref.level}:${ref.key},`;
  return text;
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
