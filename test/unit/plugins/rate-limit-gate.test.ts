// The AUTH throttle's gate (plugins/rate-limit/Gate.ts): at most `limit` attempts of a key at
// once in this process, the rest waiting their turn for at most `patience`; nothing left behind
// by an attempt that ends, times out or is interrupted.
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, TestClock } from "effect"
import * as Gate from "../../../plugins/rate-limit/Gate.ts"

describe("rate-limit Gate", () => {
  it.effect("admits `limit` attempts of a key at once; the next goes when one ends, and other keys never wait", () =>
    Effect.gen(function*() {
      const gate = Gate.make()
      const held: Array<() => void> = []
      yield* gate.enter("k", 2, "10 seconds", held)
      yield* gate.enter("k", 2, "10 seconds", held)
      const third: Array<() => void> = []
      const waiting = yield* Effect.fork(gate.enter("k", 2, "10 seconds", third))
      yield* TestClock.adjust("1 second")
      expect(waiting.unsafePoll()).toBeNull()
      const other: Array<() => void> = []
      yield* gate.enter("other", 2, "10 seconds", other)
      held[0]!()
      held[0]!() // ending twice frees one slot only
      yield* Fiber.join(waiting)
      expect(third).toHaveLength(1)
      for (const end of [...held, ...third, ...other]) end()
      expect(gate.size()).toBe(0)
    }))

  it.effect("lets a waiter go after `patience` even when no slot freed (the store then decides)", () =>
    Effect.gen(function*() {
      const gate = Gate.make()
      const held: Array<() => void> = []
      yield* gate.enter("k", 1, "8 seconds", held)
      const late: Array<() => void> = []
      const waiting = yield* Effect.fork(gate.enter("k", 1, "8 seconds", late))
      yield* TestClock.adjust("7 seconds")
      expect(waiting.unsafePoll()).toBeNull()
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(waiting)
      expect(late).toHaveLength(1)
      held[0]!()
      late[0]!()
      expect(gate.size()).toBe(0)
    }))

  it.effect("an interrupted waiter leaves nothing behind, and the others still get their turn", () =>
    Effect.gen(function*() {
      const gate = Gate.make()
      const held: Array<() => void> = []
      yield* gate.enter("k", 1, "1 minute", held)
      const a: Array<() => void> = []
      const b: Array<() => void> = []
      const first = yield* Effect.fork(gate.enter("k", 1, "1 minute", a))
      const second = yield* Effect.fork(gate.enter("k", 1, "1 minute", b))
      yield* TestClock.adjust("1 second")
      yield* Fiber.interrupt(first)
      held[0]!()
      yield* Fiber.join(second)
      expect(a).toHaveLength(0)
      expect(b).toHaveLength(1)
      b[0]!()
      expect(gate.size()).toBe(0)
      // A lone waiter interrupted while the key is busy, then the key freed: no entry stays.
      const busy: Array<() => void> = []
      yield* gate.enter("z", 1, "1 minute", busy)
      const lone = yield* Effect.fork(gate.enter("z", 1, "1 minute", []))
      yield* TestClock.adjust("1 second")
      yield* Fiber.interrupt(lone)
      busy[0]!()
      expect(gate.size()).toBe(0)
    }))
})
