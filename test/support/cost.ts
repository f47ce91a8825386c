/**
 * Relative CPU cost of two workloads, for tests that bound the cost per byte of hostile input
 * without a wall-clock limit: both run in alternating rounds and each keeps its fastest round, so
 * a loaded machine (other processes, GC, JIT tiers) slows both alike and the ratio stays put.
 *
 * @example
 * expect(costRatio(() => parse(hostile), () => parse(ordinary))).toBeLessThan(10)
 */
const time = (f: () => void, iterations: number): number => {
  const start = performance.now()
  for (let i = 0; i < iterations; i++) f()
  return performance.now() - start
}

/** How many times `adversarial` costs `ordinary`: the best of `rounds` alternating rounds each. */
export const costRatio = (adversarial: () => void, ordinary: () => void, options: { iterations?: number; rounds?: number } = {}): number => {
  const iterations = options.iterations ?? 200
  const rounds = options.rounds ?? 7
  // Warm both up so the JIT's tiers do not count against the first one measured.
  time(adversarial, 20)
  time(ordinary, 20)
  let bestAdversarial = Infinity
  let bestOrdinary = Infinity
  for (let r = 0; r < rounds; r++) {
    bestAdversarial = Math.min(bestAdversarial, time(adversarial, iterations))
    bestOrdinary = Math.min(bestOrdinary, time(ordinary, iterations))
  }
  // A timer's resolution can make a tiny ordinary cost read as zero.
  return bestAdversarial / Math.max(bestOrdinary, 0.05)
}
