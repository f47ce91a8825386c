/**
 * The in-process store: one TAT per key in a `Map` kept in least-recently-used order and bounded
 * in size, so a flood of distinct addresses or user names costs at most `maxKeys` entries. Time
 * comes from Effect's `Clock`, so tests drive it with the `TestClock`.
 *
 * @example
 * const store = yield* MemoryStore.make({ maxKeys: 10_000 })
 * yield* store.update("consume", [{ key: "ip:192.0.2.0/24", rate: { count: 100, periodMs: 3_600_000 }, cost: 1 }])
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Limiter from "./Limiter.ts"
import { RateLimitStore, type Request, type Result, type Store } from "./Store.ts"

export interface MemoryOptions {
  /** Keys kept at most; the least recently used go first. Default 100 000 (a few MB). */
  readonly maxKeys?: number
}

export const defaultMaxKeys = 100_000

export interface MemoryStore extends Store {
  /** Keys held now (expired ones go when touched or evicted). */
  readonly size: () => number
}

/** Creates a store; its state lives as long as the returned value. */
export const make = (options: MemoryOptions = {}): Effect.Effect<MemoryStore> =>
  Effect.sync(() => {
    const maxKeys = Math.max(1, Math.trunc(options.maxKeys ?? defaultMaxKeys))
    // Insertion order of a Map is its LRU order once every touch deletes and re-inserts.
    const tats = new Map<string, number>()

    const read = (key: string, now: number): number | undefined => {
      const tat = tats.get(key)
      if (tat === undefined) return undefined
      tats.delete(key)
      // An expired TAT means the same as no entry: dropping it keeps the map small.
      if (tat <= now) return undefined
      tats.set(key, tat)
      return tat
    }

    const write = (key: string, tat: number) => {
      tats.delete(key)
      tats.set(key, tat)
      while (tats.size > maxKeys) {
        const oldest = tats.keys().next()
        if (oldest.done === true) break
        tats.delete(oldest.value)
      }
    }

    const update: Store["update"] = (mode, requests) =>
      Effect.map(Clock.currentTimeMillis, (now): ReadonlyArray<Result> => {
        const decisions = requests.map((r: Request) => {
          const tat = read(r.key, now)
          return { request: r, tat, decision: Limiter.evaluate(r.rate, tat, r.cost, now) }
        })
        const all = decisions.every((d) => d.decision.allowed)
        if (mode === "reset") for (const r of requests) tats.delete(r.key)
        if (mode === "consume" || (mode === "acquire" && all)) {
          for (const d of decisions) write(d.request.key, d.decision.tat)
        }
        return decisions.map(({ decision, request, tat }) => ({
          allowed: mode === "acquire" ? all : decision.allowed,
          remaining: decision.remaining,
          retryAfterMs: decision.retryAfterMs,
          used: Limiter.used(request.rate, tat, now)
        }))
      })

    return { update, description: "memory", size: () => tats.size }
  })

/** A store for the current process. */
export const layer = (options: MemoryOptions = {}): Layer.Layer<RateLimitStore> => Layer.effect(RateLimitStore, make(options))
