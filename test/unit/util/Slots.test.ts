import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Option } from "effect"
import * as Slots from "../../../src/util/Slots.ts"

/** Lets every fiber that can run, run. */
const settle = Effect.repeatN(Effect.yieldNow(), 20)

describe("Slots", () => {
  it.effect("admits up to its size at once and hands each freed slot to the longest waiter", () =>
    Effect.gen(function*() {
      const slots = Slots.make(2)
      const order: Array<number> = []
      const gates = yield* Effect.forEach([0, 1, 2, 3, 4], () => Deferred.make<void>())
      const fibers = yield* Effect.forEach([0, 1, 2, 3, 4], (i) =>
        Effect.fork(slots.withSlot(Effect.zipRight(Effect.sync(() => order.push(i)), Deferred.await(gates[i]!)))))
      yield* settle
      expect(order).toEqual([0, 1])
      expect(slots.free()).toBe(0)
      expect(slots.waiting()).toBe(3)
      yield* Deferred.succeed(gates[1]!, undefined)
      yield* settle
      expect(order).toEqual([0, 1, 2])
      yield* Deferred.succeed(gates[0]!, undefined)
      yield* settle
      expect(order).toEqual([0, 1, 2, 3])
      for (const gate of gates) yield* Deferred.succeed(gate, undefined)
      yield* Effect.forEach(fibers, Fiber.join)
      expect(order).toEqual([0, 1, 2, 3, 4])
      expect(slots.free()).toBe(2)
      expect(slots.waiting()).toBe(0)
    }))

  it.effect("an interrupted waiter leaves the queue and takes nothing", () =>
    Effect.gen(function*() {
      const slots = Slots.make(1)
      const gate = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(slots.withSlot(Deferred.await(gate)))
      yield* settle
      const waiter = yield* Effect.fork(slots.withSlot(Effect.void))
      yield* settle
      expect(slots.waiting()).toBe(1)
      yield* Fiber.interrupt(waiter)
      expect(slots.waiting()).toBe(0)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      expect(slots.free()).toBe(1)
    }))

  it.effect("a slot handed to a waiter that is interrupted before it runs goes on to the next", () =>
    Effect.gen(function*() {
      const slots = Slots.make(1)
      expect(slots.tryTake()).toBe(true)
      const first = yield* Effect.fork(slots.take)
      const second = yield* Effect.fork(slots.take)
      yield* settle
      expect(slots.waiting()).toBe(2)
      // Release and interrupt in one step: the first waiter is granted the slot but never runs.
      const interrupting = yield* Effect.fork(Fiber.interrupt(first))
      slots.release()
      yield* Fiber.join(interrupting)
      yield* Fiber.join(second)
      expect(slots.free()).toBe(0)
      slots.release()
      expect(slots.free()).toBe(1)
    }))

  it.effect("gives the slot back when the work fails or is interrupted", () =>
    Effect.gen(function*() {
      const slots = Slots.make(1)
      const failed = yield* Effect.either(slots.withSlot(Effect.fail("no")))
      expect(failed._tag).toBe("Left")
      expect(slots.free()).toBe(1)
      const running = yield* Effect.fork(slots.withSlot(Effect.never))
      yield* settle
      expect(slots.free()).toBe(0)
      yield* Fiber.interrupt(running)
      expect(slots.free()).toBe(1)
    }))

  it.effect("runs work only when a slot is free now", () =>
    Effect.gen(function*() {
      const slots = Slots.make(1)
      const gate = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(slots.withSlot(Deferred.await(gate)))
      yield* settle
      let ran = false
      expect(yield* slots.withSlotIfFree(Effect.sync(() => ran = true))).toEqual(Option.none())
      expect(ran).toBe(false)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      expect(yield* slots.withSlotIfFree(Effect.succeed(7))).toEqual(Option.some(7))
      expect(slots.free()).toBe(1)
    }))

  it.effect("wakes one fiber per release, however many wait", () =>
    Effect.gen(function*() {
      const slots = Slots.make(1)
      expect(slots.tryTake()).toBe(true)
      let woken = 0
      const waiters = yield* Effect.forEach(Array.from({ length: 50 }), () =>
        Effect.fork(Effect.zipRight(slots.take, Effect.sync(() => woken++))))
      yield* settle
      slots.release()
      yield* settle
      expect(woken).toBe(1)
      expect(slots.waiting()).toBe(49)
      for (let i = 0; i < 49; i++) slots.release()
      yield* Effect.forEach(waiters, Fiber.join)
      expect(woken).toBe(50)
    }))
})
