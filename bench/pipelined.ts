/**
 * Runs op(0) .. op(count - 1) with at most `window` of them in flight, the
 * next starting as soon as one ends (the way a snapshot's block writer
 * keeps requests going); resolves with the seconds it took. The benches'
 * one way of pipelining requests.
 */
export async function pipelined(count: number, window: number, op: (i: number) => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  const inFlight = new Set<Promise<unknown>>();
  for (let i = 0; i < count; i += 1) {
    const p = op(i).finally(() => inFlight.delete(p));
    inFlight.add(p);
    if (inFlight.size >= window) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  return Number(process.hrtime.bigint() - started) / 1e9;
}
