/**
 * Placement choices (design.md, "Replication with trust weights"): members
 * to write a block to are picked at random, weighted by write weight, until
 * their trust adds up to what is missing; holders to read from are tried in
 * a random order weighted by read weight. A weight of 0 means "only when
 * nothing else will do": such members come after all weighted ones.
 */
export interface WeightedMember {
  id: number;
  trust: number;
}

/** Trust is a percentage; a block is safe when its holders' trust adds up to this. */
export const FULL_TRUST = 100;

/**
 * Orders members at random with probability proportional to weight
 * (Efraimidis–Spirakis: sort by u^(1/w)); weight-0 members come last, shuffled.
 */
export function weightedOrder<T>(members: readonly T[], weight: (m: T) => number, random: () => number = Math.random): T[] {
  const keyed = members.map((m) => {
    const w = weight(m);
    const u = Math.max(random(), Number.MIN_VALUE);
    return { m, k: w > 0 ? Math.log(u) / w : Number.NEGATIVE_INFINITY, tie: random() };
  });
  keyed.sort((a, b) => (b.k - a.k) || (b.tie - a.tie));
  return keyed.map((x) => x.m);
}

/**
 * Picks members, weighted by write weight, until their trust reaches `need`
 * (or the candidates run out). Members with no trust never help and are not picked.
 */
export function pickForWrite<T extends WeightedMember>(
  candidates: readonly T[], need: number, writeWeight: (m: T) => number, random: () => number = Math.random,
): T[] {
  const picked: T[] = [];
  let trust = 0;
  for (const m of weightedOrder(candidates.filter((c) => c.trust > 0), writeWeight, random)) {
    if (trust >= need) break;
    picked.push(m);
    trust += m.trust;
  }
  return picked;
}
