import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Fiber, Option, TestClock } from "effect"
import * as Memory from "../../../src/runtime/Memory.ts"

/** A reclaimer whose collections each take `costMs` on a clock the test moves. */
const fake = (costMs: number) => {
  let clock = 1_000
  let collections = 0
  const reclaimer = Memory.make(() => {
    collections++
    clock += costMs
  }, () => clock)
  return { reclaimer, collections: () => collections, advance: (ms: number) => void (clock += ms) }
}

describe("Memory", () => {
  it.effect("collects once enough bulk input was released, not before", () =>
    Effect.gen(function*() {
      const f = fake(10)
      yield* f.reclaimer.release(Memory.every - 1)
      expect(f.collections()).toBe(0)
      expect(f.reclaimer.due()).toBe(false)
      yield* f.reclaimer.release(1)
      expect(f.collections()).toBe(1)
      expect(f.reclaimer.due()).toBe(false)
    }))

  it.effect("counts released bytes without collecting until settle", () =>
    Effect.gen(function*() {
      const f = fake(10)
      f.reclaimer.released(Memory.every)
      expect(f.reclaimer.due()).toBe(true)
      expect(f.collections()).toBe(0)
      yield* f.reclaimer.settle
      expect(f.collections()).toBe(1)
    }))

  it.effect("lets streams go on during the spacing after a collection, up to the cap", () =>
    Effect.gen(function*() {
      const f = fake(10)
      yield* f.reclaimer.release(Memory.every)
      expect(f.collections()).toBe(1)
      // 10 ms collection, so nothing more for 10 ms: below the cap nobody waits.
      yield* f.reclaimer.release(Memory.every)
      expect(f.collections()).toBe(1)
      f.advance(10)
      yield* f.reclaimer.release(1)
      expect(f.collections()).toBe(2)
    }))

  it.effect("makes a stream that reached the cap wait out the spacing, then collects", () =>
    Effect.gen(function*() {
      const f = fake(40)
      yield* f.reclaimer.release(Memory.every)
      expect(f.collections()).toBe(1)
      const waiting = yield* Effect.fork(f.reclaimer.release(Memory.cap))
      yield* Effect.yieldNow()
      expect(Option.isNone(yield* Fiber.poll(waiting))).toBe(true)
      yield* TestClock.adjust(Duration.millis(40))
      yield* Fiber.join(waiting)
      expect(f.collections()).toBe(2)
    }))
})
