// The Redis store through Redis Sentinel: a master, a replica and three sentinels on loopback.
// The store asks the sentinels for the master, counts there; when the master is killed the
// sentinels promote the replica, the store fails fast meanwhile (the plugin's onStoreError
// decides), finds the new master by itself, and the limit goes on with the counts the replica had.
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Either, Exit, Logger, Scope } from "effect"
import * as RedisStore from "../../../src/ratelimit/RedisStore.ts"
import type { Request, Store } from "../../../src/ratelimit/Store.ts"
import { until } from "../../support/eventually.ts"
import { cli, startSentinelSet, type TestSentinelSet } from "../../support/redisSets.ts"

const perMinute = (key: string, count: number, cost = 1): Request => ({ key, rate: { count, periodMs: 60_000 }, cost })

describe("Redis store through Redis Sentinel", () => {
  let set: TestSentinelSet
  let scope: Scope.CloseableScope
  let store: Store
  const logs: Array<string> = []
  const logger = Logger.make(({ message }) => void logs.push(Array.isArray(message) ? message.join(" ") : String(message)))
  const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(Effect.either(effect))

  beforeAll(async () => {
    set = await startSentinelSet()
    scope = await Effect.runPromise(Scope.make())
    store = await Effect.runPromise(
      RedisStore.make({
        // With sentinels the URL gives the database (and would give the credentials); they name the host.
        url: "redis://127.0.0.1/0",
        sentinel: { name: set.name, sentinels: set.sentinels.map((port) => `127.0.0.1:${port}`) },
        maxBackoff: "200 millis"
      }).pipe(Scope.extend(scope), Effect.provide(Logger.replace(Logger.defaultLogger, logger)), Effect.orDie)
    )
  }, 60_000)
  afterAll(async () => {
    if (scope !== undefined) await Effect.runPromise(Scope.close(scope, Exit.void))
    await set?.stop()
  })

  it("describes itself by the master's name and the sentinels, and counts on the master", async () => {
    expect(store.description).toBe(`redis-sentinel://${set.name}@${set.sentinels.map((p) => `127.0.0.1:${p}`).join(",")}/0`)
    const result = await run(store.update("consume", [perMinute("alice", 3)]))
    expect(Either.getOrThrow(result)[0]).toMatchObject({ allowed: true, remaining: 2 })
    expect((await cli(set.master.port, "EXISTS", "smtp-bridge:rl:alice")).trim()).toBe("1")
  })

  it("keeps the limit after the master is killed and the sentinels promote the replica", async () => {
    await run(store.update("consume", [perMinute("alice", 3)]))
    // Two of alice's three are used; the replica has them before the master dies.
    await until("the replica to hold alice's count", async () => (await cli(set.replica.port, "EXISTS", "smtp-bridge:rl:alice")).trim() === "1")
    logs.length = 0
    const started = Date.now()
    await set.master.kill()
    // Meanwhile every decision fails (fast), and the plugin's onStoreError answers for it.
    const during = await run(store.update("peek", [perMinute("alice", 3)]))
    expect(Either.isLeft(during) && during.left.reason).toMatch(/Unavailable|Timeout/)

    await until("the sentinels to promote the replica", async () => (await set.currentMaster()) === set.replica.port, { timeout: 30_000 })
    await until("the store to decide again", async () => Either.isRight(await run(store.update("peek", [perMinute("alice", 3)]))), { timeout: 30_000 })
    const failoverMs = Date.now() - started
    expect(failoverMs).toBeLessThan(30_000)

    const [third] = Either.getOrThrow(await run(store.update("acquire", [perMinute("alice", 3)])))
    expect(third).toMatchObject({ allowed: true, used: 2, remaining: 0 })
    const [fourth] = Either.getOrThrow(await run(store.update("acquire", [perMinute("alice", 3)])))
    expect(fourth!.allowed).toBe(false)
    expect((await cli(set.replica.port, "EXISTS", "smtp-bridge:rl:alice")).trim()).toBe("1")
    expect(logs.filter((l) => l.includes("is unreachable"))).toHaveLength(1)
    await until("the recovery to be logged", () => logs.some((l) => l.includes("is reachable again")))
  }, 60_000)
})
