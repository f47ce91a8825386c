import { describe, expect, it } from "vitest"
import * as Password from "../../../src/runtime/Password.ts"

/** Milliseconds `f` takes. */
const timed = async (f: () => Promise<unknown>): Promise<number> => {
  const started = performance.now()
  await f()
  return performance.now() - started
}

describe("Password", () => {
  it("verifies the right password and refuses a wrong one", async () => {
    const hash = await Password.hash("correct horse", 4)
    expect(await Password.verify("correct horse", hash)).toBe(true)
    expect(await Password.verify("wrong horse", hash)).toBe(false)
  })

  it("never runs a queued check whose caller gave up: 60 abandoned checks do not delay the next login", async () => {
    const hash = await Password.hash("correct horse", 9)
    // One check alone, warmed up (the first one may start a worker).
    await Password.verify("warm-up", hash)
    const single = await timed(() => Password.verify("correct horse", hash))

    // 60 guesses whose AUTH hook timed out (or whose session ended) while they waited for the pool.
    const gaveUp = new AbortController()
    const abandoned = Array.from({ length: 60 }, () => Password.verify("guess", hash, gaveUp.signal))
    gaveUp.abort()
    const settled = await Promise.allSettled([...abandoned])

    // Those that had a slot already (at most 4) finish; the rest never ran: rejected, not `false`
    // (a `false` would be a wrong password, a failure the throttle counts).
    const rejected = settled.filter((s) => s.status === "rejected")
    expect(rejected.length).toBeGreaterThanOrEqual(60 - 4)
    for (const s of settled) if (s.status === "fulfilled") expect(s.value).toBe(false)

    // Before, all 60 ran first: the next login waited 60 checks (15 or more on a 4-thread pool).
    const login = await timed(async () => expect(await Password.verify("correct horse", hash)).toBe(true))
    expect(login, `one check ${single.toFixed(0)} ms, the login ${login.toFixed(0)} ms`).toBeLessThan(single * 10)
  }, 60_000)

  it("rejects a check whose caller gave up before it asked, without running it", async () => {
    const hash = await Password.hash("correct horse", 4)
    const gaveUp = new AbortController()
    gaveUp.abort(new Error("hook timed out"))
    await expect(Password.verify("correct horse", hash, gaveUp.signal)).rejects.toThrow("hook timed out")
  })
})
