import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, TestClock } from "effect"
import { Schema } from "effect"
import { hooksFor, rateLimit } from "../../../plugins/rate-limit/index.ts"
import { Options } from "../../../plugins/rate-limit/options.ts"
import { check, plan, type RateLimitOptions } from "../../../plugins/rate-limit/Plan.ts"
import { RateLimit, Verdict } from "../../../src/index.ts"
import type { RecipientResult, SessionInfo, TransactionInfo } from "../../../src/index.ts"
import { Contexts } from "smtp-bridge/testing"

const make = (options: RateLimitOptions, store?: RateLimit.Store) =>
  Effect.map(store === undefined ? RateLimit.makeMemory() : Effect.succeed(store), (s) => hooksFor(plan(check(options)), s))

const ok = (address: string): RecipientResult => ({ recipient: Contexts.recipient(address), transport: "default", reply: { code: 250, enhanced: "2.0.0", lines: ["Ok"] } })
const failed = (address: string): RecipientResult => ({ recipient: Contexts.recipient(address), transport: "default", reply: { code: 451, enhanced: "4.4.1", lines: ["later"] } })

type Hooks = Effect.Effect.Success<ReturnType<typeof make>>

/** MAIL, then delivery of one message with these results, as the bridge runs the hooks. */
const send = (hooks: Hooks, s: SessionInfo, results: ReadonlyArray<RecipientResult> = [ok("bob@example.net")], from = "alice@example.org") =>
  Effect.gen(function*() {
    const t: TransactionInfo = Contexts.transaction({ mailFrom: { local: "x", domain: from.split("@")[1]!, address: from } })
    const verdict = yield* hooks.mailFrom({ session: s, from: t.mailFrom, params: t.mailParams })
    if (verdict._tag === "Continue") yield* hooks.delivered({ session: s, transaction: t, results })
    return verdict
  })

const storeDown: RateLimit.Store = {
  description: "broken",
  update: () => Effect.fail(new RateLimit.RateLimitStoreError({ reason: "Unavailable", message: "down" }))
}

describe("rate-limit options", () => {
  it("throws at creation, in one line, naming a bad rate, scope, network, choice or Redis URL", () => {
    expect(() => rateLimit({ perUser: "100/week" })).toThrow(/^rate-limit: perUser: expected a rate like "100\/hour".* \(invalid rate "100\/week"; .*\), got "100\/week"$/)
    expect(() => rateLimit({ limits: ["users=1/hour"] })).toThrow(/^rate-limit: limits\[0\]: expected a rate limit like "user=100\/hour" .*unknown rate limit scope "users"/)
    expect(() => rateLimit({ exempt: ["10.0.0.0/33"] })).toThrow(/^rate-limit: exempt\[0\]: expected an address or a network such as 192\.0\.2\.0\/24 or 2001:db8::\/32, got "10\.0\.0\.0\/33"$/)
    expect(() => rateLimit({ ipv4Prefix: 40 })).toThrow(/^rate-limit: ipv4Prefix: expected a whole number from 0 to 32, got 40$/)
    expect(() => rateLimit({ onStoreError: "maybe" as "allow" })).toThrow(/^rate-limit: onStoreError: expected "allow" or "deny", got "maybe"$/)
    expect(() => rateLimit({ redis: "http://:pw@localhost" })).toThrow(/^rate-limit: redis: expected a URL like redis:.*invalid Redis URL scheme "http:"/)
    expect(() => rateLimit({ authFailures: { delay: "soon" as "1 second" } })).toThrow(/^rate-limit: authFailures\.delay: expected a duration like "30 seconds" or "5 minutes", or milliseconds, got "soon"$/)
    expect(() => rateLimit({ perIp: "1/hour", perHour: 5 } as RateLimitOptions)).toThrow(/^rate-limit: perHour: unknown option, expected one of connections, perIp, /)
  })

  it("checks options with its schema, which the config's rateLimit field uses too", () => {
    const decode = Schema.decodeUnknownEither(Options)
    expect(decode({ limits: ["user=100/week"] })._tag).toBe("Left")
    expect(decode({ limits: ["user=100/hour", "recipients=1000/day"], redis: "redis://127.0.0.1:6379/1" })._tag).toBe("Right")
  })

  it("takes Redis as deployed: Sentinel (a master name and HOST:PORT sentinels), Cluster (more seed nodes), a TLS CA file", () => {
    const decode = Schema.decodeUnknownEither(Options)
    const sentinel = { url: "rediss://bridge:pw@localhost/2", sentinel: { name: "mymaster", sentinels: ["10.0.0.1:26379", "[fd00::1]:26379"] } }
    expect(decode({ redis: sentinel })._tag).toBe("Right")
    expect(decode({ redis: { url: "redis://10.0.0.1:6379", cluster: { nodes: ["10.0.0.2:6379"] }, tlsCa: "/etc/ssl/redis-ca.pem" } })._tag).toBe("Right")
    expect(() => rateLimit({ redis: { url: "redis://x", sentinel: { name: "m", sentinels: ["10.0.0.1:99999"] } } })).toThrow(
      /^rate-limit: redis\.sentinel\.sentinels\[0\]: expected a HOST:PORT string .*invalid node "10\.0\.0\.1:99999"/
    )
    expect(() => rateLimit({ redis: { url: "redis://x", sentinel: { name: "m", sentinels: [] } } })).toThrow(/^rate-limit: redis\.sentinel\.sentinels: /)
    expect(() => rateLimit({ redis: { url: "redis://x", cluster: { nodes: ["a:b:c"] } } })).toThrow(/^rate-limit: redis\.cluster\.nodes\[0\]: expected a HOST:PORT string/)
  })
})

describe("rate-limit hooks", () => {
  it.effect("defers MAIL with 451 4.7.1 and a retry hint once the user's messages are used up", () =>
    Effect.gen(function*() {
      const hooks = yield* make({ perUser: "2/hour" })
      const alice = Contexts.session({ user: "alice" })
      expect(yield* send(hooks, alice)).toEqual(Verdict.Continue)
      expect(yield* send(hooks, alice)).toEqual(Verdict.Continue)
      expect(yield* send(hooks, alice)).toEqual(
        Verdict.defer("Message rate limit exceeded for alice, try again in 30 minutes", { code: 451, enhanced: "4.7.1" })
      )
      // Other users are not affected.
      expect(yield* send(hooks, Contexts.session({ user: "bob" }))).toEqual(Verdict.Continue)
      yield* TestClock.adjust("30 minutes")
      expect(yield* send(hooks, alice)).toEqual(Verdict.Continue)
    }))

  it.effect("counts only delivered messages: a failed delivery burns nothing", () =>
    Effect.gen(function*() {
      const hooks = yield* make({ perUser: "1/hour" })
      const alice = Contexts.session({ user: "alice" })
      for (let i = 0; i < 3; i++) expect(yield* send(hooks, alice, [failed("bob@example.net")])).toEqual(Verdict.Continue)
      expect(yield* send(hooks, alice)).toEqual(Verdict.Continue)
      expect((yield* send(hooks, alice))._tag).toBe("Defer")
    }))

  it.effect("applies per-user overrides, including unlimited", () =>
    Effect.gen(function*() {
      const hooks = yield* make({ perUser: "1/hour", users: { bulk: { perUser: "unlimited" }, vip: { perUser: "3/hour" } } })
      for (let i = 0; i < 5; i++) expect(yield* send(hooks, Contexts.session({ user: "bulk" }))).toEqual(Verdict.Continue)
      for (let i = 0; i < 3; i++) expect(yield* send(hooks, Contexts.session({ user: "vip" }))).toEqual(Verdict.Continue)
      expect((yield* send(hooks, Contexts.session({ user: "vip" })))._tag).toBe("Defer")
    }))

  it.effect("limits the envelope sender domain, case-insensitively", () =>
    Effect.gen(function*() {
      const hooks = yield* make({ perSenderDomain: "1/minute" })
      const s = Contexts.session()
      expect(yield* send(hooks, s, undefined, "a@Example.org")).toEqual(Verdict.Continue)
      expect(yield* send(hooks, s, undefined, "b@example.ORG")).toEqual(
        Verdict.defer("Message rate limit exceeded for sender domain example.org, try again in 60 seconds", { code: 451, enhanced: "4.7.1" })
      )
      expect(yield* send(hooks, s, undefined, "c@example.net")).toEqual(Verdict.Continue)
    }))

  it.effect("disconnects with 421 4.7.0 at connect when the client's /24 has used its messages", () =>
    Effect.gen(function*() {
      const hooks = yield* make({ perIp: "1/hour", ipv4Prefix: 24 })
      expect(yield* send(hooks, Contexts.session({ remoteAddress: "198.51.100.7" }))).toEqual(Verdict.Continue)
      expect(yield* hooks.connect({ session: Contexts.session({ remoteAddress: "198.51.100.200" }) })).toEqual(
        Verdict.disconnect("Too many messages for 198.51.100.0/24, try again in 60 minutes")
      )
      expect(yield* hooks.connect({ session: Contexts.session({ remoteAddress: "198.51.101.1" }) })).toEqual(Verdict.Continue)
    }))

  it.effect("aggregates IPv6 clients per /64 by default", () =>
    Effect.gen(function*() {
      const hooks = yield* make({ perIp: "1/hour" })
      yield* send(hooks, Contexts.session({ remoteAddress: "2001:db8:1:2::10" }))
      expect((yield* hooks.connect({ session: Contexts.session({ remoteAddress: "2001:db8:1:2::99" }) }))._tag).toBe("Disconnect")
      expect((yield* hooks.connect({ session: Contexts.session({ remoteAddress: "2001:db8:1:3::10" }) }))._tag).toBe("Continue")
    }))

  it.effect("defers the RCPT that would exceed the recipient limit with 450 4.7.1, counting the transaction's recipients", () =>
    Effect.gen(function*() {
      const hooks = yield* make({ recipients: "3/day" })
      const s = Contexts.session({ user: "alice" })
      const rcpt = (already: number) =>
        hooks.rcptTo({
          session: s,
          transaction: Contexts.transaction({ recipients: Array.from({ length: already }, (_, i) => Contexts.recipient(`r${i}@example.net`)) }),
          recipient: Contexts.recipient("next@example.net")
        })
      expect(yield* rcpt(2)).toEqual(Verdict.Continue)
      expect(yield* rcpt(3)).toEqual(Verdict.defer("Recipient rate limit exceeded, try again in 8 hours", { code: 450, enhanced: "4.7.1" }))
      // Two of three delivered: one recipient slot is left.
      yield* send(hooks, s, [ok("a@example.net"), ok("b@example.net"), failed("c@example.net")])
      expect(yield* rcpt(0)).toEqual(Verdict.Continue)
      expect((yield* rcpt(1))._tag).toBe("Defer")
    }))

  it.effect("refuses the connection past the connection rate with 421 4.7.0, counting only accepted ones", () =>
    Effect.gen(function*() {
      const hooks = yield* make({ connections: "2/minute" })
      const s = Contexts.session()
      expect(yield* hooks.connect({ session: s })).toEqual(Verdict.Continue)
      expect(yield* hooks.connect({ session: s })).toEqual(Verdict.Continue)
      for (let i = 0; i < 3; i++) {
        expect(yield* hooks.connect({ session: s })).toEqual(Verdict.disconnect("Too many connections from 203.0.113.5, try again in 30 seconds"))
      }
      yield* TestClock.adjust("30 seconds")
      expect(yield* hooks.connect({ session: s })).toEqual(Verdict.Continue)
    }))

  it.effect("exempt networks are never limited", () =>
    Effect.gen(function*() {
      const hooks = yield* make({ perIp: "1/hour", exempt: ["203.0.113.0/24"] })
      for (let i = 0; i < 3; i++) expect(yield* send(hooks, Contexts.session())).toEqual(Verdict.Continue)
    }))
})

describe("rate-limit AUTH brute-force control", () => {
  const options: RateLimitOptions = { authFailures: { perIp: "8/hour", perUser: "3/15 minutes", delay: "1 second", maxDelay: "4 seconds" } }
  const context = (s: SessionInfo, username: string) => ({ session: s, mechanism: "PLAIN" as const, username, password: "x", authzid: undefined })
  const settle = <A>(effect: Effect.Effect<A>) =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(effect)
      // Past maxDelay (4 s), well within every limit's interval.
      yield* TestClock.adjust("10 seconds")
      return yield* Fiber.join(fiber)
    })
  /** One exchange: the auth hook, then (when it let the check happen) authResult with the outcome. */
  const attempt = (hooks: Hooks, s: SessionInfo, username: string, outcome: "success" | "failure" = "failure") =>
    settle(Effect.gen(function*() {
      const verdict = yield* hooks.authAttempt(context(s, username))
      if (verdict._tag === "Continue") yield* hooks.authResult({ session: s, mechanism: "PLAIN", username, success: outcome === "success", outcome })
      return verdict
    }))
  const throttled = (what: string, retry: string) =>
    Verdict.defer(`Too many authentication failures ${what}, try again in ${retry}`, { code: 454, enhanced: "4.7.0" })
  // Each attempt above moved the test clock, so the retry hint is only known to be short.
  const throttledShortly = (what: string) => ({
    _tag: "Defer",
    code: 454,
    enhanced: "4.7.0",
    text: expect.stringMatching(new RegExp(`^Too many authentication failures ${what.replace(/[./]/g, "\\$&")}, try again in \\d+ (seconds|minutes)$`))
  })

  it.effect("counts each attempt before the credentials are checked: of 10 parallel ones for a user, 3 go on, 7 wait for them (up to maxDelay) and get 454 4.7.0", () =>
    Effect.gen(function*() {
      const hooks = yield* make(options)
      const verdicts = yield* settle(Effect.all(Array.from({ length: 10 }, () => hooks.authAttempt(context(Contexts.session(), "carol"))), { concurrency: "unbounded" }))
      expect(verdicts.filter((v) => v._tag === "Continue")).toHaveLength(3)
      expect(verdicts.filter((v) => v._tag !== "Continue")).toEqual(
        Array.from({ length: 7 }, () => throttled("for this user from 203.0.113.0/24", "5 minutes"))
      )
    }))

  it.effect("lets 10 parallel logins of one user that succeed all go on: the 7 beyond perUser wait for an earlier one to give its count back", () =>
    Effect.gen(function*() {
      const hooks = yield* make(options)
      const verdicts = yield* settle(Effect.all(Array.from({ length: 10 }, () => attempt(hooks, Contexts.session(), "carol", "success")), { concurrency: "unbounded" }))
      expect(verdicts).toEqual(Array.from({ length: 10 }, () => Verdict.Continue))
    }))

  it.effect("10 parallel guesses still get only 3 checks when each waits for the earlier ones: the rest get 454 4.7.0", () =>
    Effect.gen(function*() {
      const hooks = yield* make(options)
      const verdicts = yield* settle(Effect.all(Array.from({ length: 10 }, () => attempt(hooks, Contexts.session(), "carol", "failure")), { concurrency: "unbounded" }))
      expect(verdicts.filter((v) => v._tag === "Continue")).toHaveLength(3)
      expect(verdicts.filter((v) => v._tag === "Defer")).toHaveLength(7)
    }))

  it.effect("a session that ends between its attempt and the result keeps its count but lets the next attempt go", () =>
    Effect.gen(function*() {
      const hooks = yield* make(options)
      const sessions = Array.from({ length: 4 }, () => Contexts.session())
      // Three attempts in progress fill carol's key; the 4th waits.
      for (const s of sessions.slice(0, 3)) expect(yield* hooks.authAttempt(context(s, "carol"))).toEqual(Verdict.Continue)
      const fourth = yield* Effect.fork(hooks.authAttempt(context(sessions[3]!, "carol")))
      yield* TestClock.adjust("100 millis")
      expect(fourth.unsafePoll()).toBeNull()
      // The first session leaves: its count stays (no free guess), so the 4th is refused at once,
      // answered after maxDelay (4 s) rather than after waiting its patience (4 s more) first.
      yield* hooks.disconnect({ session: sessions[0]! })
      yield* TestClock.adjust("4100 millis")
      expect(fourth.unsafePoll()).not.toBeNull()
      expect(yield* Fiber.join(fourth)).toMatchObject({ _tag: "Defer", code: 454 })
    }))

  it.effect("counts a plugin mechanism's decided exchange at authAttempt, as PLAIN's at auth: the 4th failure from a network gets 454 4.7.0", () =>
    Effect.gen(function*() {
      const hooks = yield* make(options)
      const exchange = (s: SessionInfo) =>
        settle(Effect.gen(function*() {
          const verdict = yield* hooks.authAttempt({ session: s, mechanism: "SCRAM-SHA-256", username: "dave" })
          if (verdict._tag === "Continue") yield* hooks.authResult({ session: s, mechanism: "SCRAM-SHA-256", username: "dave", success: false, outcome: "failure" })
          return verdict
        }))
      for (let i = 0; i < 3; i++) expect(yield* exchange(Contexts.session())).toEqual(Verdict.Continue)
      expect(yield* exchange(Contexts.session())).toEqual(throttledShortly("for this user from 203.0.113.0/24"))
      // The same counter as PLAIN's: the user's pair is used up for both.
      expect(yield* attempt(hooks, Contexts.session(), "dave")).toEqual(throttledShortly("for this user from 203.0.113.0/24"))
    }))

  it.effect("gives the attempt back on success: a user who logs in again and again is never throttled", () =>
    Effect.gen(function*() {
      const hooks = yield* make(options)
      for (let i = 0; i < 20; i++) expect(yield* attempt(hooks, Contexts.session(), "alice", "success")).toEqual(Verdict.Continue)
    }))

  it.effect("gives the attempt back when a backend deferred: nothing was learnt about the password", () =>
    Effect.gen(function*() {
      const hooks = yield* make(options)
      for (let i = 0; i < 10; i++) {
        const s = Contexts.session()
        expect(yield* settle(hooks.authAttempt(context(s, "alice")))).toEqual(Verdict.Continue)
        yield* hooks.authResult({ session: s, mechanism: "PLAIN", username: "alice", success: false, outcome: "deferred" })
      }
    }))

  it.effect("never locks the owner out: throttled for carol from one network, carol from another network goes on", () =>
    Effect.gen(function*() {
      const hooks = yield* make(options)
      const attacker = () => Contexts.session({ remoteAddress: "198.51.100.7" })
      for (let i = 0; i < 3; i++) expect(yield* attempt(hooks, attacker(), "Carol")).toEqual(Verdict.Continue)
      // Case does not give the attacker a fresh counter.
      expect(yield* attempt(hooks, attacker(), "carol")).toMatchObject(throttledShortly("for this user from 198.51.100.0/24"))
      expect(yield* attempt(hooks, Contexts.session({ remoteAddress: "192.0.2.9" }), "carol", "success")).toEqual(Verdict.Continue)
      // The attacker's network may still try other users until its own limit.
      expect(yield* attempt(hooks, attacker(), "dave")).toEqual(Verdict.Continue)
    }))

  it.effect("a neighbour's guesses do not lock out a user who already logs in from the same /24 (known for 30 days)", () =>
    Effect.gen(function*() {
      const hooks = yield* make(options)
      // alice has logged in from 198.51.100.0/24 before; bob never has.
      expect(yield* attempt(hooks, Contexts.session({ remoteAddress: "198.51.100.50" }), "alice", "success")).toEqual(Verdict.Continue)
      for (let i = 0; i < 8; i++) yield* attempt(hooks, Contexts.session({ remoteAddress: "198.51.100.7" }), `guess${i}`)
      // The network is used up for names that never logged in from it...
      expect(yield* attempt(hooks, Contexts.session({ remoteAddress: "198.51.100.60" }), "bob")).toMatchObject(throttledShortly("from 198.51.100.0/24"))
      // ...but alice still logs in from there, and her own pair limit still applies to guesses for her.
      expect(yield* attempt(hooks, Contexts.session({ remoteAddress: "198.51.100.51" }), "alice", "success")).toEqual(Verdict.Continue)
      for (let i = 0; i < 3; i++) expect(yield* attempt(hooks, Contexts.session({ remoteAddress: "198.51.100.7" }), "alice")).toEqual(Verdict.Continue)
      expect(yield* attempt(hooks, Contexts.session({ remoteAddress: "198.51.100.7" }), "alice")).toMatchObject(throttledShortly("for this user from 198.51.100.0/24"))
      // The mark lapses after 30 days without a login.
      yield* TestClock.adjust("31 days")
      for (let i = 0; i < 8; i++) yield* attempt(hooks, Contexts.session({ remoteAddress: "198.51.100.7" }), `later${i}`)
      expect(yield* attempt(hooks, Contexts.session({ remoteAddress: "198.51.100.51" }), "alice", "success")).toMatchObject(throttledShortly("from 198.51.100.0/24"))
    }))

  it.effect("limits a network across user names (perIp), per /24: 198.51.100.7 and .8 count together", () =>
    Effect.gen(function*() {
      const hooks = yield* make(options)
      for (let i = 0; i < 8; i++) yield* attempt(hooks, Contexts.session({ remoteAddress: `198.51.100.${7 + (i % 2)}` }), `user${i}`)
      expect(yield* attempt(hooks, Contexts.session({ remoteAddress: "198.51.100.200" }), "other")).toMatchObject(throttledShortly("from 198.51.100.0/24"))
      expect(yield* attempt(hooks, Contexts.session({ remoteAddress: "198.51.101.1" }), "other")).toEqual(Verdict.Continue)
    }))

  it.effect("a success clears no earlier failure: an attacker with one valid account gains nothing", () =>
    Effect.gen(function*() {
      const hooks = yield* make(options)
      for (let i = 0; i < 7; i++) yield* attempt(hooks, Contexts.session(), `user${i}`)
      expect(yield* attempt(hooks, Contexts.session(), "mallory", "success")).toEqual(Verdict.Continue)
      expect(yield* attempt(hooks, Contexts.session(), "user8")).toEqual(Verdict.Continue)
      expect(yield* attempt(hooks, Contexts.session(), "user9")).toMatchObject(throttledShortly("from 203.0.113.0/24"))
    }))

  it.effect("delays each failure's reply by delay * 2^n, n the attempts already counted, at most maxDelay", () =>
    Effect.gen(function*() {
      const hooks = yield* make({ authFailures: { perIp: "10/hour", perUser: "10/hour", delay: "1 second", maxDelay: "3 seconds" } })
      const delayOf = Effect.gen(function*() {
        const s = Contexts.session()
        expect(yield* hooks.authAttempt(context(s, "alice"))).toEqual(Verdict.Continue)
        const fiber = yield* Effect.fork(hooks.authResult({ session: s, mechanism: "PLAIN", username: "alice", success: false, outcome: "failure" }))
        let waited = 0
        const done = Effect.zipRight(Effect.repeatN(Effect.yieldNow(), 5), Fiber.poll(fiber))
        while ((yield* done)._tag === "None") {
          yield* TestClock.adjust("500 millis")
          waited += 500
        }
        return waited
      })
      expect([yield* delayOf, yield* delayOf, yield* delayOf, yield* delayOf]).toEqual([1000, 2000, 3000, 3000])
    }))

  it.effect("keeps store keys short whatever the user name: a 3,000-character name is cut at 256", () =>
    Effect.gen(function*() {
      const keys: Array<string> = []
      const memory = yield* RateLimit.makeMemory()
      const recording: RateLimit.Store = {
        description: "recording",
        update: (mode, requests) => {
          keys.push(...requests.map((r) => r.key))
          return memory.update(mode, requests)
        }
      }
      const hooks = yield* make(options, recording)
      yield* attempt(hooks, Contexts.session(), "x".repeat(3000))
      expect(keys.length).toBeGreaterThan(0)
      expect(Math.max(...keys.map((k) => k.length))).toBeLessThan(300)
    }))

  it.effect("can be turned off", () =>
    Effect.gen(function*() {
      const hooks = yield* make({ authFailures: false })
      for (let i = 0; i < 30; i++) expect(yield* attempt(hooks, Contexts.session(), "alice")).toEqual(Verdict.Continue)
    }))
})

describe("rate-limit when the store fails", () => {
  const ctx = { session: Contexts.session({ user: "alice" }), from: null, params: { raw: {} } }
  it.effect("allows everything by default (fail open)", () =>
    Effect.gen(function*() {
      const hooks = yield* make({ perUser: "1/hour", recipients: "1/hour" }, storeDown)
      expect(yield* hooks.connect({ session: ctx.session })).toEqual(Verdict.Continue)
      expect(yield* hooks.mailFrom(ctx)).toEqual(Verdict.Continue)
      expect(yield* hooks.rcptTo({ session: ctx.session, transaction: Contexts.transaction(), recipient: Contexts.recipient("b@example.net") })).toEqual(Verdict.Continue)
      expect(yield* hooks.authAttempt({ session: ctx.session, mechanism: "PLAIN", username: "a" })).toEqual(Verdict.Continue)
    }))

  it.effect("with onStoreError deny, defers MAIL and RCPT with 451 4.3.0 and AUTH with 454 4.7.0, but lets the connection in", () =>
    Effect.gen(function*() {
      const hooks = yield* make({ perUser: "1/hour", recipients: "1/hour", onStoreError: "deny" }, storeDown)
      expect(yield* hooks.connect({ session: ctx.session })).toEqual(Verdict.Continue)
      const unavailable = Verdict.defer("Rate limit service unavailable, try again later", { code: 451, enhanced: "4.3.0" })
      expect(yield* hooks.mailFrom(ctx)).toEqual(unavailable)
      expect(yield* hooks.rcptTo({ session: ctx.session, transaction: Contexts.transaction(), recipient: Contexts.recipient("b@example.net") })).toEqual(unavailable)
      expect(yield* hooks.authAttempt({ session: ctx.session, mechanism: "PLAIN", username: "a" })).toEqual(
        Verdict.defer("Temporary authentication failure", { code: 454, enhanced: "4.7.0" })
      )
    }))
})
