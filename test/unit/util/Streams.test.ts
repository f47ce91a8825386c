// Streams.forEachWhile: every element in order until the effect answers false; a failure of the
// stream or of the effect fails the whole; the stream is closed (its finalizer runs) either way.
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Stream } from "effect"
import * as Streams from "../../../src/util/Streams.ts"

describe("Streams.forEachWhile", () => {
  it.effect("runs the effect for each element, across chunks, in order", () =>
    Effect.gen(function*() {
      const seen: Array<number> = []
      const stream = Stream.concat(Stream.fromIterable([1, 2, 3]), Stream.fromIterable([4, 5]))
      yield* Streams.forEachWhile(stream, (n) => Effect.sync(() => seen.push(n)).pipe(Effect.as(true)))
      expect(seen).toEqual([1, 2, 3, 4, 5])
    }))

  it.effect("stops at the first false, pulls no further and closes the stream", () =>
    Effect.gen(function*() {
      const seen: Array<number> = []
      let pulled = 0
      let closed = false
      const stream = Stream.repeatEffect(Effect.sync(() => ++pulled)).pipe(
        Stream.rechunk(1),
        Stream.ensuring(Effect.sync(() => void (closed = true)))
      )
      yield* Streams.forEachWhile(stream, (n) => Effect.sync(() => seen.push(n)).pipe(Effect.as(n < 3)))
      expect(seen).toEqual([1, 2, 3])
      expect(pulled).toBeLessThan(5)
      expect(closed).toBe(true)
    }))

  it.effect("fails with the stream's error, and with the effect's", () =>
    Effect.gen(function*() {
      const broken = Stream.concat(Stream.succeed(1), Stream.fail("read failed"))
      expect(yield* Effect.exit(Streams.forEachWhile(broken, () => Effect.succeed(true)))).toEqual(Exit.fail("read failed"))
      const refusing = Streams.forEachWhile(Stream.make(1, 2), (n) => n === 2 ? Effect.fail("write failed") : Effect.succeed(true))
      expect(yield* Effect.exit(refusing)).toEqual(Exit.fail("write failed"))
    }))
})
