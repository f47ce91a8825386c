// The Redis store's Lua script against Limiter.evaluate, the arithmetic the memory store uses:
// for random rates (periods that do not divide evenly), random costs above 1 and random gaps
// (keys that expire in between), a real redis-server must answer allowed, remaining, retry-after
// and used exactly as the model does, and keep the same TAT.
//
// The script reads Redis's clock (TIME); the test swaps that one line for a clock passed as the
// last ARGV, so time is chosen by the test and the rest of the script runs as shipped.
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import { Redis as Client } from "ioredis"
import * as Limiter from "../../../src/ratelimit/Limiter.ts"
import * as RedisStore from "../../../src/ratelimit/RedisStore.ts"
import { startRedis, type TestRedis } from "../../support/redis.ts"

const clockLine = "local t = redis.call('TIME')\nlocal now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)"

const scriptWithClock = (): string => {
  // Fails loudly when the script's clock lines change, instead of testing a script that never ran.
  if (!RedisStore.script.includes(clockLine)) throw new Error("RedisStore.script no longer reads TIME as this test expects")
  return RedisStore.script.replace(clockLine, "local now = tonumber(ARGV[#ARGV])")
}

interface Step {
  readonly advanceMs: number
  readonly cost: number
  readonly mode: "peek" | "consume" | "acquire"
  /** Whether Redis has already dropped the key when its PX expiry passed. */
  readonly expireWhenDue: boolean
}

const rateArb = fc.record({
  count: fc.integer({ min: 1, max: 40 }),
  // Most periods are not a multiple of the count: intervals like 1000/3 ms.
  periodMs: fc.oneof(fc.integer({ min: 7, max: 5_000 }), fc.constantFrom(1_000, 60_000, 3_600_000, 86_400_000))
})

const stepsArb = (rate: Limiter.Rate) =>
  fc.array(
    fc.record({
      advanceMs: fc.oneof(
        fc.constant(0),
        fc.integer({ min: 0, max: Math.ceil(Limiter.intervalOf(rate)) * 2 }),
        fc.integer({ min: 0, max: rate.periodMs * 2 })
      ),
      cost: fc.integer({ min: 2, max: rate.count + 3 }),
      mode: fc.constantFrom("peek", "consume", "acquire"),
      expireWhenDue: fc.boolean()
    }),
    { minLength: 1, maxLength: 25 }
  )

const toNumbers = (value: unknown): ReadonlyArray<number> => {
  const item = Array.isArray(value) && value.length === 1 ? value[0] : undefined
  if (!Array.isArray(item) || !item.every((v) => typeof v === "number")) throw new Error(`script answered ${JSON.stringify(value)}`)
  return item
}

describe("Redis rate-limit script", () => {
  let redis: TestRedis
  let client: Client
  const script = scriptWithClock()
  let run = 0

  beforeAll(async () => {
    redis = await startRedis()
    client = new Client(redis.url)
  })
  afterAll(async () => {
    client.disconnect()
    await redis.stop()
  })

  const command = (args: ReadonlyArray<string | number>): Promise<unknown> => client.call(String(args[0]), ...args.slice(1))

  it("answers allowed, remaining, retry-after and used as Limiter.evaluate does, for costs above 1 and uneven periods", async () => {
    await fc.assert(
      fc.asyncProperty(rateArb.chain((rate) => fc.tuple(fc.constant(rate), stepsArb(rate))), async ([rate, steps]) => {
        const key = `prop:${run++}`
        // A realistic clock (ms since 1970) so the script's floating point is the production one.
        let now = 1_767_225_600_000
        let tat: number | undefined
        for (const step of steps as ReadonlyArray<Step>) {
          now += step.advanceMs
          if (tat !== undefined && tat <= now) {
            // An expired TAT: either Redis dropped the key (PX) or it is still there, past due.
            if (step.expireWhenDue) await command(["DEL", key])
            tat = undefined
          }
          const decision = Limiter.evaluate(rate, tat, step.cost, now)
          // In one transaction, so the key's real-time PX expiry cannot strike between the script
          // and the reads (the test's clock is not Redis's): the TTL is read, then removed.
          const exec = await client.multi()
            .eval(script, 1, key, step.mode, Limiter.intervalOf(rate), rate.periodMs, step.cost, Limiter.toleranceOf(rate), now)
            .get(key)
            .pttl(key)
            .persist(key)
            .exec()
          if (exec === null || exec.some(([error]) => error !== null)) throw new Error(`EXEC answered ${JSON.stringify(exec)}`)
          const [reply, stored, pttl] = exec.map(([, value]) => value)
          const [allowed, remaining, retry, used] = toNumbers(reply)
          const context = JSON.stringify({ rate, step, now, tat, decision })
          expect({ allowed: allowed === 1, remaining, retryAfterMs: retry, used }, context).toEqual({
            allowed: decision.allowed,
            remaining: decision.remaining,
            retryAfterMs: decision.retryAfterMs,
            used: Limiter.used(rate, tat, now)
          })
          if (step.mode === "consume" || (step.mode === "acquire" && decision.allowed)) {
            tat = decision.tat
            expect(typeof stored === "string" ? Number(stored) : NaN, context).toBeCloseTo(tat, 2)
            // The key lives as long as it holds something (less the few ms the transaction took).
            const ttl = typeof pttl === "number" ? pttl : NaN
            expect(ttl, context).toBeLessThanOrEqual(Math.max(1, Math.ceil(tat - now)))
            expect(ttl, context).toBeGreaterThanOrEqual(Math.ceil(tat - now) - 5)
          } else if (tat === undefined && typeof stored === "string") {
            expect(Number(stored), context).toBeLessThanOrEqual(now)
          }
        }
      }),
      { numRuns: 150 }
    )
  })

  it("forgets a key whose PX expiry passed on Redis's own clock, and answers as for a new key", async () => {
    const rate = { count: 3, periodMs: 300 }
    const real = (mode: string, cost: number) =>
      command(["EVAL", RedisStore.script, 1, "real", mode, Limiter.intervalOf(rate), rate.periodMs, cost, Limiter.toleranceOf(rate)])
    expect(toNumbers(await real("consume", 5))).toEqual([0, 0, 200, 0])
    // The debt of 5 events at 100 ms each keeps the key for 500 ms.
    const pttl = Number((await redis.command("PTTL real")).slice(1))
    expect(pttl).toBeGreaterThan(400)
    expect(pttl).toBeLessThanOrEqual(500)
    const deadline = Date.now() + 5_000
    while ((await redis.command("EXISTS real")).trim() !== ":0" && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    expect((await redis.command("EXISTS real")).trim()).toBe(":0")
    expect(toNumbers(await real("peek", 2))).toEqual([1, 1, 0, 0])
  })
})
