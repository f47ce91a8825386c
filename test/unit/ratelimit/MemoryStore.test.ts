import { describe, expect, it } from "@effect/vitest"
import { Effect, TestClock } from "effect"
import * as MemoryStore from "../../../src/ratelimit/MemoryStore.ts"
import type { Request } from "../../../src/ratelimit/Store.ts"

const perMinute = (count: number, key = "user:alice", cost = 1): Request => ({ key, rate: { count, periodMs: 60_000 }, cost })

describe("MemoryStore", () => {
  it.effect("peek never counts: the same question gets the same answer", () =>
    Effect.gen(function*() {
      const store = yield* MemoryStore.make()
      for (let i = 0; i < 5; i++) expect((yield* store.update("peek", [perMinute(1)]))[0]).toMatchObject({ allowed: true, used: 0 })
    }))

  it.effect("consume counts; the limit refuses with the time until the next slot, over a rolling window", () =>
    Effect.gen(function*() {
      const store = yield* MemoryStore.make()
      for (let i = 0; i < 3; i++) yield* store.update("consume", [perMinute(3)])
      expect((yield* store.update("peek", [perMinute(3)]))[0]).toEqual({ allowed: false, remaining: 0, retryAfterMs: 20_000, used: 3 })
      yield* TestClock.adjust("19 seconds")
      expect((yield* store.update("peek", [perMinute(3)]))[0]).toMatchObject({ allowed: false, retryAfterMs: 1_000 })
      yield* TestClock.adjust("1 second")
      // One slot came back, not the whole window: the window rolls.
      expect((yield* store.update("peek", [perMinute(3)]))[0]).toMatchObject({ allowed: true, remaining: 0, used: 2 })
      yield* TestClock.adjust("40 seconds")
      expect((yield* store.update("peek", [perMinute(3)]))[0]).toMatchObject({ allowed: true, remaining: 2, used: 0 })
    }))

  it.effect("consume goes past the limit, and the debt makes the wait longer", () =>
    Effect.gen(function*() {
      const store = yield* MemoryStore.make()
      yield* store.update("consume", [perMinute(2, "k", 4)])
      expect((yield* store.update("peek", [perMinute(2, "k")]))[0]).toMatchObject({ allowed: false, retryAfterMs: 90_000 })
    }))

  it.effect("acquire takes from every key only when all of them allow it", () =>
    Effect.gen(function*() {
      const store = yield* MemoryStore.make()
      yield* store.update("consume", [perMinute(1, "full")])
      const results = yield* store.update("acquire", [perMinute(5, "free"), perMinute(1, "full")])
      expect(results.map((r) => r.allowed)).toEqual([false, false])
      expect((yield* store.update("peek", [perMinute(5, "free")]))[0]).toMatchObject({ used: 0 })
      const ok = yield* store.update("acquire", [perMinute(5, "free")])
      expect(ok[0]).toMatchObject({ allowed: true, remaining: 4 })
    }))

  it.effect("keys are independent, and reset forgets one", () =>
    Effect.gen(function*() {
      const store = yield* MemoryStore.make()
      yield* store.update("consume", [perMinute(1, "a")])
      expect((yield* store.update("peek", [perMinute(1, "a"), perMinute(1, "b")])).map((r) => r.allowed)).toEqual([false, true])
      yield* store.update("reset", [perMinute(1, "a")])
      expect((yield* store.update("peek", [perMinute(1, "a")]))[0]!.allowed).toBe(true)
    }))

  it.effect("stays within maxKeys, dropping the least recently used key", () =>
    Effect.gen(function*() {
      const store = yield* MemoryStore.make({ maxKeys: 3 })
      for (const key of ["a", "b", "c"]) yield* store.update("consume", [perMinute(1, key)])
      yield* store.update("peek", [perMinute(1, "a")]) // a is now the most recently used
      yield* store.update("consume", [perMinute(1, "d")])
      expect(store.size()).toBe(3)
      const [a, b] = yield* store.update("peek", [perMinute(1, "a"), perMinute(1, "b")])
      expect(a!.allowed).toBe(false)
      expect(b!.allowed).toBe(true)
    }))

  it.effect("drops expired keys when they are touched", () =>
    Effect.gen(function*() {
      const store = yield* MemoryStore.make()
      yield* store.update("consume", [perMinute(1, "gone")])
      yield* TestClock.adjust("2 minutes")
      yield* store.update("peek", [perMinute(1, "gone")])
      expect(store.size()).toBe(0)
    }))
})
