import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Either, Fiber, TestClock } from "effect"
import * as Pool from "../../../../src/transport/smtp/Pool.ts"

interface Item {
  readonly id: number
  closed: boolean
  healthy: boolean
}

const fixture = (options: { readonly max?: number; readonly failFirst?: boolean } = {}) =>
  Effect.gen(function*() {
    const items: Array<Item> = []
    let attempts = 0
    const pool = yield* Pool.make<Item, string>({
      acquire: Effect.acquireRelease(
        Effect.suspend(() => {
          attempts++
          if (options.failFirst === true && attempts === 1) return Effect.fail("connection refused")
          const item: Item = { id: items.length + 1, closed: false, healthy: true }
          items.push(item)
          return Effect.succeed(item)
        }),
        (item) => Effect.sync(() => void (item.closed = true))
      ),
      max: options.max ?? 2,
      idleTimeout: "30 seconds",
      acquireTimeout: "1 second",
      reusable: (item) => item.healthy && !item.closed,
      onExhausted: () => "busy"
    })
    return { pool, items }
  })

describe("session pool", () => {
  it.scoped("reuses an idle session for the next message", () =>
    Effect.gen(function*() {
      const { pool, items } = yield* fixture()
      const first = yield* pool.use((item, reused) => Effect.succeed([item.id, reused]))
      const second = yield* pool.use((item, reused) => Effect.succeed([item.id, reused]))
      expect([first, second]).toEqual([[1, false], [1, true]])
      expect(items).toHaveLength(1)
      expect(pool.idle()).toBe(1)
    }))

  it.scoped("keeps a session after a clean refusal but discards a broken one", () =>
    Effect.gen(function*() {
      const { pool, items } = yield* fixture()
      yield* Effect.either(pool.use(() => Effect.fail("550 refused")))
      expect(pool.idle()).toBe(1)
      yield* Effect.either(pool.use((item) => Effect.sync(() => void (item.healthy = false)).pipe(Effect.zipRight(Effect.fail("timeout")))))
      yield* Effect.yieldNow()
      expect(items[0]!.closed).toBe(true)
      expect(pool.size()).toBe(0)
      const next = yield* pool.use((item) => Effect.succeed(item.id))
      expect(next).toBe(2)
    }))

  it.scoped("discards a session whose use was interrupted (conversation state unknown)", () =>
    Effect.gen(function*() {
      const { pool, items } = yield* fixture()
      const started = yield* Deferred.make<void>()
      const fiber = yield* Effect.fork(pool.use(() => Effect.zipRight(Deferred.succeed(started, undefined), Effect.never)))
      yield* Deferred.await(started)
      yield* Fiber.interrupt(fiber)
      yield* Effect.yieldNow()
      expect(items[0]!.closed).toBe(true)
      expect(pool.idle()).toBe(0)
    }))

  it.scoped("closes a session left idle past idleTimeout", () =>
    Effect.gen(function*() {
      const { pool, items } = yield* fixture()
      yield* pool.use(() => Effect.void)
      yield* TestClock.adjust("31 seconds")
      yield* Effect.yieldNow()
      expect(items[0]!.closed).toBe(true)
      expect(pool.size()).toBe(0)
    }))

  it.scoped("fails with the exhaustion error when every slot stays busy past acquireTimeout", () =>
    Effect.gen(function*() {
      const { pool } = yield* fixture({ max: 1 })
      const started = yield* Deferred.make<void>()
      yield* Effect.fork(pool.use(() => Effect.zipRight(Deferred.succeed(started, undefined), Effect.never)))
      yield* Deferred.await(started)
      const waiting = yield* Effect.fork(Effect.either(pool.use(() => Effect.succeed("never"))))
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(waiting)).toEqual(Either.left("busy"))
    }))

  it.scoped("gives the slot back when connecting fails, so the next message can try again", () =>
    Effect.gen(function*() {
      const { pool } = yield* fixture({ max: 1, failFirst: true })
      expect(yield* Effect.either(pool.use(() => Effect.succeed(1)))).toEqual(Either.left("connection refused"))
      expect(yield* pool.use((item) => Effect.succeed(item.id))).toBe(1)
      expect(pool.size()).toBe(1)
    }))

  it.scoped("opens a fresh session on request even when an idle one exists", () =>
    Effect.gen(function*() {
      const { pool, items } = yield* fixture()
      yield* pool.use(() => Effect.void)
      const id = yield* pool.use((item) => Effect.succeed(item.id), { fresh: true })
      expect(id).toBe(2)
      expect(items).toHaveLength(2)
    }))
})
