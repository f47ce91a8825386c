/**
 * A bounded cache in front of a `Lookup`: answers (positive and negative) are kept as long as
 * their TTL says, within `[minTtl, maxTtl]`; failures are never kept, so a timeout is asked again.
 * The least recently used entry goes first when the cache is full. Time is Effect's `Clock`, so
 * tests move it with `TestClock`.
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type * as Udp from "./Udp.ts"
import * as Wire from "./Wire.ts"

export interface CacheOptions {
  /** Most entries kept (default 10,000). 0 turns the cache off. */
  readonly maxEntries?: number
  /** Floor on the TTL, in seconds (default 0). */
  readonly minTtl?: number
  /** Ceiling on the TTL of positive answers, in seconds (default 86,400). */
  readonly maxTtl?: number
  /** Ceiling on the TTL of negative answers (NXDOMAIN, no data), in seconds (default 900). */
  readonly maxNegativeTtl?: number
}

interface Entry {
  readonly outcome: Udp.Outcome
  readonly expires: number
}

export interface Cached {
  readonly lookup: Udp.Lookup
  /** Entries currently held (expired ones go when next read or pushed out). */
  readonly size: () => number
  readonly clear: () => void
}

export const make = (inner: Udp.Lookup, options: CacheOptions = {}): Cached => {
  const maxEntries = options.maxEntries ?? 10_000
  const minTtl = options.minTtl ?? 0
  const maxTtl = options.maxTtl ?? 86_400
  const maxNegativeTtl = options.maxNegativeTtl ?? 900
  const entries = new Map<string, Entry>()

  const store = (key: string, outcome: Udp.Outcome, now: number) => {
    const ceiling = outcome._tag === "Records" ? maxTtl : maxNegativeTtl
    const ttl = Math.max(minTtl, Math.min(outcome.ttl, ceiling))
    if (maxEntries <= 0 || ttl <= 0) return
    entries.delete(key)
    entries.set(key, { outcome, expires: now + ttl * 1000 })
    // A Map iterates in insertion order and a hit re-inserts: the first key is the least recently used.
    while (entries.size > maxEntries) entries.delete(entries.keys().next().value!)
  }

  const lookup: Udp.Lookup = (name, type) =>
    Effect.gen(function*() {
      const key = `${type} ${Wire.normalizeName(name)}`
      const now = yield* Clock.currentTimeMillis
      const hit = entries.get(key)
      if (hit !== undefined) {
        entries.delete(key)
        if (hit.expires > now) {
          entries.set(key, hit)
          // Report what is left of the TTL, as a caching resolver does.
          return { ...hit.outcome, ttl: Math.ceil((hit.expires - now) / 1000) }
        }
      }
      const outcome = yield* inner(name, type)
      store(key, outcome, yield* Clock.currentTimeMillis)
      return outcome
    })

  return { lookup, size: () => entries.size, clear: () => entries.clear() }
}
