import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Memory from "../../../src/runtime/Memory.ts"

/** A reclaimer whose collections each take `costMs` on a clock the test moves (sleeps move it too). */
const fake = (costMs: number) => {
  let clock = 1_000
  let collections = 0
  const slept: Array<number> = []
  const reclaimer = Memory.make(() => {
    collections++
    clock += costMs
  }, () => clock, (ms) =>
    Effect.sync(() => {
      slept.push(ms)
      clock += ms
    }))
  return { reclaimer, collections: () => collections, slept, advance: (ms: number) => void (clock += ms) }
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
      f.advance(15)
      yield* f.reclaimer.release(Memory.cap)
      expect(f.slept).toEqual([25])
      expect(f.collections()).toBe(2)
    }))

  it.effect("never waits longer than a bounded spacing, however long a collection seemed to take", () =>
    Effect.gen(function*() {
      // A process stopped for ten minutes in the middle of a collection.
      const f = fake(600_000)
      yield* f.reclaimer.release(Memory.every)
      yield* f.reclaimer.release(Memory.cap)
      expect(f.slept).toHaveLength(1)
      expect(f.slept[0]).toBeLessThanOrEqual(250)
      expect(f.collections()).toBe(2)
    }))

  it("waits on a real timer by default, not on Effect's clock", async () => {
    let clock = 0
    const reclaimer = Memory.make(() => {
      clock += 30
    }, () => clock)
    await Effect.runPromise(reclaimer.release(Memory.every))
    const started = performance.now()
    await Effect.runPromise(reclaimer.release(Memory.cap))
    expect(performance.now() - started).toBeGreaterThanOrEqual(25)
  })
})
