// The Redis store against a real redis-server: the same GCRA answers as the memory store, keys
// that expire, one script per decision, an outage that fails fast and is logged once, and the
// recovery by itself when Redis returns.
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as net from "node:net"
import { Effect, Either, Exit, Logger, LogLevel, Scope } from "effect"
import * as RedisStore from "../../../src/ratelimit/RedisStore.ts"
import type { Request, Store } from "../../../src/ratelimit/Store.ts"
import { until } from "../../support/eventually.ts"
import { startRedis, type TestRedis } from "../../support/redis.ts"

const perMinute = (key: string, count: number, cost = 1): Request => ({ key, rate: { count, periodMs: 60_000 }, cost })

describe("Redis store", () => {
  let redis: TestRedis
  let scope: Scope.CloseableScope
  let store: Store
  const logs: Array<string> = []
  const logger = Logger.make(({ message }) => void logs.push(Array.isArray(message) ? message.join(" ") : String(message)))
  const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(Effect.either(effect))

  beforeAll(async () => {
    redis = await startRedis()
    scope = await Effect.runPromise(Scope.make())
    store = await Effect.runPromise(
      RedisStore.make({ url: redis.url, prefix: "t:", maxBackoff: "200 millis" }).pipe(
        Scope.extend(scope),
        Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
        Effect.orDie
      )
    )
  })
  afterAll(async () => {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    await redis.stop()
  })

  const update = async (mode: "peek" | "consume" | "acquire" | "reset", requests: ReadonlyArray<Request>) => {
    const result = await run(store.update(mode, requests))
    if (result._tag === "Left") throw new Error(`store failed: ${result.left.message}`)
    return result.right
  }

  it("answers like the memory store: a burst of COUNT, then a refusal with the time to the next slot", async () => {
    for (let i = 0; i < 3; i++) expect((await update("consume", [perMinute("burst", 3)]))[0]!.allowed).toBe(true)
    const [refused] = await update("peek", [perMinute("burst", 3)])
    expect(refused!.allowed).toBe(false)
    expect(refused!.used).toBe(3)
    // Redis's clock moved on a few milliseconds since the consumes.
    expect(refused!.retryAfterMs).toBeGreaterThan(19_000)
    expect(refused!.retryAfterMs).toBeLessThanOrEqual(20_000)
  })

  it("stores each key with an expiry that ends when it holds nothing", async () => {
    await update("consume", [perMinute("expiring", 2)])
    const pttl = Number((await redis.command("PTTL t:expiring")).slice(1))
    expect(pttl).toBeGreaterThan(29_000)
    expect(pttl).toBeLessThanOrEqual(30_000)
  })

  it("decides several keys in one atomic step: acquire takes from all or from none", async () => {
    await update("consume", [perMinute("full", 1)])
    const results = await update("acquire", [perMinute("free", 5), perMinute("full", 1)])
    expect(results.map((r) => r.allowed)).toEqual([false, false])
    expect((await redis.command("EXISTS t:free")).trim()).toBe(":0")
    expect((await update("acquire", [perMinute("free", 5)]))[0]).toMatchObject({ allowed: true, remaining: 4 })
    await update("reset", [perMinute("free", 5)])
    expect((await redis.command("EXISTS t:free")).trim()).toBe(":0")
  })

  it("is atomic under concurrency: 50 simultaneous acquires of a 10/minute key let exactly 10 through", async () => {
    const results = await Promise.all(Array.from({ length: 50 }, () => update("acquire", [perMinute("race", 10)])))
    expect(results.filter((r) => r[0]!.allowed)).toHaveLength(10)
  })

  it("keeps working after SCRIPT FLUSH (NOSCRIPT falls back to EVAL)", async () => {
    expect((await redis.command("SCRIPT FLUSH")).trim()).toBe("+OK")
    expect((await update("peek", [perMinute("flushed", 1)]))[0]!.allowed).toBe(true)
  })

  it("fails fast while Redis is down, logs the outage once, and recovers by itself", async () => {
    logs.length = 0
    await redis.stop()
    // Until the client notices the close, a command may still fail with Timeout or Unavailable;
    // every call fails, and the outage is logged.
    await until("the outage to be logged", async () => {
      const result = await run(store.update("peek", [perMinute("down", 1)]))
      expect(result._tag).toBe("Left")
      return logs.some((l) => l.includes("is unreachable"))
    })
    // Once it is known, calls fail at once (Unavailable, never waiting for a command timeout)
    // while reconnect attempts go on behind them (backoff up to 200 ms); still one log line.
    const window = Date.now() + 1_000
    while (Date.now() < window) {
      const result = await run(store.update("peek", [perMinute("down", 1)]))
      expect(Either.isLeft(result) && result.left.reason).toBe("Unavailable")
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    expect(logs.filter((l) => l.includes("is unreachable"))).toHaveLength(1)

    await redis.start()
    await until("the store to use Redis again", async () =>
      (await run(store.update("peek", [perMinute("down", 1)])))._tag === "Right")
    await until("the recovery to be logged", () => logs.some((l) => l.includes("is reachable again")))
    expect(logs.filter((l) => l.includes("is reachable again"))).toHaveLength(1)
    expect(logs.filter((l) => l.includes("is unreachable"))).toHaveLength(1)
  })
})

describe("Redis store against a peer that accepts and never answers", () => {
  it("fails each decision within the command timeout instead of holding the SMTP session", async () => {
    const sockets: Array<net.Socket> = []
    const silent = net.createServer((socket) => void sockets.push(socket))
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve))
    const port = (silent.address() as net.AddressInfo).port
    try {
      const started = Date.now()
      const result = await Effect.runPromise(Effect.scoped(Effect.flatMap(
        Effect.orDie(RedisStore.make({ url: `redis://127.0.0.1:${port}`, connectTimeout: "500 millis", commandTimeout: "300 millis" })),
        (store) => Effect.all([store.update("peek", [perMinute("x", 1)]), store.update("peek", [perMinute("x", 1)])].map(Effect.either))
      )).pipe(Logger.withMinimumLogLevel(LogLevel.None)))
      expect(result.map((r) => Either.isLeft(r) && r.left.reason)).toEqual([expect.stringMatching(/Unavailable|Timeout/), expect.stringMatching(/Unavailable|Timeout/)])
      // The start waits for the first attempt (0.5 s + 0.5 s at most), each decision 0.3 s at most.
      expect(Date.now() - started).toBeLessThan(2_500)
    } finally {
      for (const socket of sockets) socket.destroy()
      silent.close()
    }
  })
})

describe("Redis store connection settings", () => {
  let redis: TestRedis
  beforeAll(async () => {
    redis = await startRedis({ args: ["--requirepass", "s3cret"] })
  })
  afterAll(() => redis.stop())

  const withStore = <A>(url: string, use: (store: Store) => Effect.Effect<A, unknown>) =>
    Effect.runPromise(Effect.scoped(Effect.flatMap(
      Effect.orDie(RedisStore.make({ url, connectTimeout: "1 second" })),
      use
    )).pipe(Logger.withMinimumLogLevel(LogLevel.None), Effect.either))

  it("authenticates with the URL's password and uses the URL's database", async () => {
    const url = `redis://:s3cret@127.0.0.1:${redis.port}`
    expect((await withStore(`${url}/3`, (store) => store.update("consume", [perMinute("db", 5)])))._tag).toBe("Right")
    const used = (db: number) =>
      withStore(`${url}/${db}`, (store) => Effect.map(store.update("peek", [perMinute("db", 5)]), (r) => r[0]!.used))
    expect(await used(3)).toEqual(Either.right(1))
    expect(await used(0)).toEqual(Either.right(0))
  })

  it("reports a wrong password as unavailable, never echoing it", async () => {
    const result = await withStore(`redis://:wrong@127.0.0.1:${redis.port}`, (store) => store.update("peek", [perMinute("x", 1)]))
    expect(result._tag).toBe("Left")
    expect(JSON.stringify(result)).not.toContain("wrong")
  })
})
