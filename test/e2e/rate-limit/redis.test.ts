// The rate-limit plugin with a real redis-server: two bridges in this process share one Redis
// and enforce one per-user limit together; while Redis is down, "allow" lets mail through and
// "deny" defers it, and both recover by themselves when Redis returns.
//
//   (alice sent 3 messages through bridges A, B, A; limit 3/hour)
//   C: MAIL FROM:<alice@example.org>             (to bridge B)
//   S: 451 4.7.1 Message rate limit exceeded for alice, try again in 20 minutes
//   (Redis down, onStoreError "deny")
//   C: MAIL FROM:<carol@example.org>
//   S: 451 4.3.0 Rate limit service unavailable, try again later
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { rateLimit } from "../../../plugins/rate-limit/index.ts"
import { startBridge, type TestBridge } from "../../support/bridge.ts"
import { startRedis, type TestRedis } from "../../support/redis.ts"
import { login, mail, open, passwordAuth, plain } from "./transcript.ts"

describe("rate-limit (Redis store)", () => {
  let redis: TestRedis
  const bridges: Array<TestBridge> = []

  const bridge = async (options: Parameters<typeof rateLimit>[0]) => {
    const b = await startBridge({
      trust: ["127.0.0.0/8"],
      allowInsecureAuth: true,
      // probeN: throw-away users that show whether a bridge counts again after an outage.
      senders: { alice: ["*"], bob: ["*"], carol: ["*"], ...Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`probe${i + 1}`, ["*"]])) },
      plugins: [rateLimit({ redis: { url: redis.url, maxBackoff: "300 millis" }, authFailures: false, ...options }), passwordAuth]
    })
    bridges.push(b)
    return b
  }

  /** One message from `user` through `b`: the MAIL reply, or the final reply when MAIL passed. */
  const send = async (b: TestBridge, user: string) => {
    const c = await login(b.port, user)
    const r = await mail(c, `${user}@example.org`)
    c.close()
    return r.final ?? r.mail
  }

  const waitFor = async (what: string, probe: () => Promise<boolean>) => {
    const deadline = Date.now() + 8_000
    while (Date.now() < deadline) {
      if (await probe()) return
      await new Promise((resolve) => setTimeout(resolve, 150))
    }
    throw new Error(`not ${what} within 8 s`)
  }

  beforeAll(async () => {
    redis = await startRedis()
  })
  afterAll(async () => {
    for (const b of bridges) await b.stop()
    await redis.stop()
  })

  it("two bridges sharing one Redis count AUTH attempts together: of 10 parallel guesses 3 are checked, and successes are given back", async () => {
    const authFailures = { perIp: "5/hour", perUser: "3/hour", delay: "10 millis", maxDelay: "50 millis" } as const
    const a = await bridge({ authFailures })
    const b = await bridge({ authFailures })
    const guess = async (target: TestBridge) => {
      const c = await open(target.port)
      const r = await c.command(`AUTH PLAIN ${plain("carol", "wrong")}`)
      c.close()
      return r
    }
    const replies = await Promise.all(Array.from({ length: 10 }, (_, i) => guess(i % 2 === 0 ? a : b)))
    expect(replies.filter((r) => r === "535 5.7.8 Authentication credentials invalid"), replies.join("\n")).toHaveLength(3)
    expect(replies.filter((r) => /^454 4\.7\.0 Too many authentication failures for this user from 127\.0\.0\.0\/24, try again in \d+ minutes$/.test(r))).toHaveLength(7)
    // 2 of the network's 5 attempts are left; each success is given back, so logins go on.
    for (let i = 0; i < 6; i++) (await login((i % 2 === 0 ? a : b).port, "dave")).close()
  })

  it("two bridges sharing one Redis enforce one per-user limit together", async () => {
    const a = await bridge({ perUser: "3/hour" })
    const b = await bridge({ perUser: "3/hour" })
    expect(await send(a, "alice")).toMatch(/^250 2\.0\.0 /)
    expect(await send(b, "alice")).toMatch(/^250 2\.0\.0 /)
    expect(await send(a, "alice")).toMatch(/^250 2\.0\.0 /)
    expect(await send(b, "alice")).toBe("451 4.7.1 Message rate limit exceeded for alice, try again in 20 minutes")
    expect(await send(a, "alice")).toBe("451 4.7.1 Message rate limit exceeded for alice, try again in 20 minutes")
    expect(await send(b, "bob")).toMatch(/^250 2\.0\.0 /)
    const ttl = Number((await redis.command("PTTL smtp-bridge:rl:user:3/3600000:alice")).slice(1))
    expect(ttl).toBeGreaterThan(3_500_000)
  })

  it("fails open by default while Redis is down, and counts again once it is back", async () => {
    const open = await bridge({ perUser: "1/hour" })
    const closed = await bridge({ perUser: "1/hour", onStoreError: "deny" })
    await redis.stop()
    try {
      // Over the limit would be the second message: during the outage nothing is counted.
      expect(await send(open, "carol")).toMatch(/^250 2\.0\.0 /)
      expect(await send(open, "carol")).toMatch(/^250 2\.0\.0 /)
      expect(await send(closed, "carol")).toBe("451 4.3.0 Rate limit service unavailable, try again later")
    } finally {
      await redis.start()
    }
    await waitFor("recovered", async () => (await send(closed, "carol")).startsWith("250"))
    // Each bridge reconnects on its own backoff: wait until the fail-open one counts again too,
    // with users of its own so that carol's count is untouched.
    let probe = 0
    await waitFor("counting again", async () => {
      const user = `probe${++probe}`
      await send(open, user)
      return (await send(open, user)).startsWith("451 4.7.1")
    })
    expect(await send(open, "carol")).toBe("451 4.7.1 Message rate limit exceeded for carol, try again in 60 minutes")
  })
})
