import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import * as Limiter from "../../../src/ratelimit/Limiter.ts"

const left = <A>(e: Either.Either<A, string>): string => Either.match(e, { onLeft: (l) => l, onRight: () => "no error" })

describe("Limiter.parseLimit", () => {
  it("reads SCOPE=COUNT/PERIOD for every scope and period", () => {
    expect(Limiter.parseLimit("user=100/hour")).toEqual(Either.right({ scope: "user", count: 100, periodMs: 3_600_000 }))
    expect(Limiter.parseLimit("ip=20/minute")).toEqual(Either.right({ scope: "ip", count: 20, periodMs: 60_000 }))
    expect(Limiter.parseLimit("sender-domain=5/second")).toEqual(Either.right({ scope: "sender-domain", count: 5, periodMs: 1000 }))
    expect(Limiter.parseLimit("recipients=1000/day")).toEqual(Either.right({ scope: "recipients", count: 1000, periodMs: 86_400_000 }))
  })

  it("accepts a unit word after the count, plurals and a period multiplier", () => {
    expect(Limiter.parseRate("1000 recipients/day")).toEqual(Either.right({ count: 1000, periodMs: 86_400_000 }))
    expect(Limiter.parseRate("5/10 minutes")).toEqual(Either.right({ count: 5, periodMs: 600_000 }))
    expect(Limiter.parseRate("3 / hours")).toEqual(Either.right({ count: 3, periodMs: 3_600_000 }))
  })

  it("names an unknown scope and lists the valid ones", () => {
    expect(left(Limiter.parseLimit("users=1/hour"))).toBe(
      'unknown rate limit scope "users" in "users=1/hour"; expected one of ip, user, sender-domain, recipients'
    )
  })

  it("explains a missing =, a bad period and a zero count", () => {
    expect(left(Limiter.parseLimit("100/hour"))).toMatch(/expected SCOPE=COUNT\/PERIOD such as "user=100\/hour"/)
    expect(left(Limiter.parseLimit("user=100/week"))).toMatch(/PERIOD one of second, minute, hour, day .*in --rate-limit "user=100\/week"/)
    expect(left(Limiter.parseLimit("user=0/hour"))).toMatch(/the count must be at least 1/)
    expect(left(Limiter.parseLimit("user=many/hour"))).toMatch(/invalid rate "many\/hour"/)
  })
})

describe("Limiter.evaluate (GCRA)", () => {
  const rate = { count: 3, periodMs: 60_000 }

  it("lets a full burst of COUNT through at once, then refuses with the time to the next slot", () => {
    let tat: number | undefined
    for (const remaining of [2, 1, 0]) {
      const d = Limiter.evaluate(rate, tat, 1, 0)
      expect(d).toMatchObject({ allowed: true, remaining, retryAfterMs: 0 })
      tat = d.tat
    }
    expect(Limiter.evaluate(rate, tat, 1, 0)).toMatchObject({ allowed: false, remaining: 0, retryAfterMs: 20_000 })
    expect(Limiter.evaluate(rate, tat, 1, 15_000)).toMatchObject({ allowed: false, retryAfterMs: 5_000 })
    expect(Limiter.evaluate(rate, tat, 1, 20_000)).toMatchObject({ allowed: true, remaining: 0 })
  })

  it("refuses a cost larger than what is left, and one larger than the whole limit forever", () => {
    const one = Limiter.evaluate(rate, undefined, 1, 0)
    expect(Limiter.evaluate(rate, one.tat, 3, 0)).toMatchObject({ allowed: false, retryAfterMs: 20_000 })
    expect(Limiter.evaluate(rate, undefined, 4, 0)).toMatchObject({ allowed: false, retryAfterMs: 20_000 })
  })

  it("treats an expired TAT as empty", () => {
    expect(Limiter.evaluate(rate, 1_000, 3, 500_000)).toMatchObject({ allowed: true, remaining: 0 })
  })

  it("handles periods that do not divide evenly", () => {
    const odd = { count: 3, periodMs: 1000 }
    let tat: number | undefined
    for (let i = 0; i < 3; i++) {
      const d = Limiter.evaluate(odd, tat, 1, 0)
      expect(d.allowed).toBe(true)
      tat = d.tat
    }
    expect(Limiter.evaluate(odd, tat, 1, 0)).toMatchObject({ allowed: false, retryAfterMs: 334 })
  })

  it("lets a full burst of COUNT through at an epoch clock for any rate (rounding of 1.7e12 ms absorbed)", () => {
    const now = 1_767_225_600_000
    for (let count = 1; count <= 400; count++) {
      for (const periodMs of [7, 18, 999, 1000, 10_000, 60_000, 3_600_000, 86_400_000]) {
        const rate = { count, periodMs }
        // Up to 1000 events a second: finer rates are beyond what a double at epoch times resolves.
        if (Limiter.intervalOf(rate) < 1) continue
        let tat: number | undefined
        for (let i = 0; i < count; i++) {
          const decision = Limiter.evaluate(rate, tat, 1, now)
          expect(decision.allowed, `event ${i + 1} of ${count}/${periodMs} ms`).toBe(true)
          expect(decision.remaining, `remaining after ${i + 1} of ${count}/${periodMs} ms`).toBe(count - i - 1)
          tat = decision.tat
        }
        expect(Limiter.used(rate, tat, now)).toBe(count)
        expect(Limiter.evaluate(rate, tat, 1, now).allowed, `event ${count + 1} of ${count}/${periodMs} ms`).toBe(false)
      }
    }
  })

  it("counts the events a key holds, rounded up", () => {
    expect(Limiter.used(rate, undefined, 0)).toBe(0)
    expect(Limiter.used(rate, 40_000, 0)).toBe(2)
    expect(Limiter.used(rate, 40_000, 25_000)).toBe(1)
    expect(Limiter.used(rate, 40_000, 40_000)).toBe(0)
  })
})

describe("Limiter.formatRetry", () => {
  it("rounds up to whole seconds, then minutes, then hours", () => {
    expect(Limiter.formatRetry(36_200)).toBe("37 seconds")
    expect(Limiter.formatRetry(1)).toBe("1 second")
    expect(Limiter.formatRetry(5_400_000)).toBe("90 minutes")
    expect(Limiter.formatRetry(86_400_000)).toBe("24 hours")
  })

  it("writes a limit the way --rate-limit takes it", () => {
    expect(Limiter.format({ scope: "user", count: 100, periodMs: 3_600_000 })).toBe("user=100/hour")
  })
})
