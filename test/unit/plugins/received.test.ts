import { expect, layer } from "@effect/vitest"
import * as Resolver from "../../../src/dns/Resolver.ts"
import { Effect, TestClock } from "effect"
import { received } from "../../../plugins/received/index.ts"
import type { ReceivedOptions } from "../../../plugins/received/index.ts"
import { Verdict } from "../../../src/index.ts"
import type { SessionInfo, TransactionInfo } from "../../../src/index.ts"
import { Contexts } from "smtp-bridge/testing"

const NOON = Date.UTC(2025, 6, 1, 12, 0, 0)
const tls = { protocol: "TLSv1.3", cipher: "TLS_AES_256_GCM_SHA384", mode: "starttls" } as const

/** Runs the data hook at 2025-07-01 12:00 UTC and returns the one header it added. */
const stamp = (s: SessionInfo, t: TransactionInfo, options?: ReceivedOptions) =>
  Effect.gen(function*() {
    yield* TestClock.setTime(NOON)
    const hook = received(options).data
    if (hook === undefined) throw new Error("received has no data hook")
    const ctx = Contexts.data(undefined, { session: s, transaction: t })
    const { added } = ctx
    expect(yield* hook(ctx)).toEqual(Verdict.Continue)
    expect(added).toHaveLength(1)
    expect(added[0]!.name).toBe("Received")
    return added[0]!.value
  })

layer(Resolver.layer())("received", (it) => {
  it.effect("adds Received with ESMTP, the one recipient and an RFC 5322 date, and continues", () =>
    Effect.gen(function*() {
      expect(yield* stamp(Contexts.session(), Contexts.transaction())).toBe(
        "from client.test ([203.0.113.5]) by mx.bridge.test (smtp-bridge) with ESMTP id T1 " +
          "for <bob@example.net>; Tue, 01 Jul 2025 12:00:00 +0000"
      )
    }))

  it.effect("names ESMTPSA with the TLS comment and (authenticated), without the user by default", () =>
    Effect.gen(function*() {
      const value = yield* stamp(Contexts.session({ tls, user: "alice", authMechanism: "PLAIN" }), Contexts.transaction())
      expect(value).toBe(
        "from client.test ([203.0.113.5]) by mx.bridge.test (smtp-bridge) with ESMTPSA id T1 for <bob@example.net> " +
          "(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384) (authenticated); Tue, 01 Jul 2025 12:00:00 +0000"
      )
      expect(value).not.toContain("alice")
    }))

  it.effect("names the user only with includeUser", () =>
    Effect.gen(function*() {
      const value = yield* stamp(Contexts.session({ user: "alice" }), Contexts.transaction(), { includeUser: true })
      expect(value).toContain("with ESMTPA id T1 for <bob@example.net> (authenticated as alice);")
    }))

  it.effect("leaves out the for clause with several recipients", () =>
    Effect.gen(function*() {
      const value = yield* stamp(Contexts.session(), Contexts.transaction({ recipients: [Contexts.recipient("a@x.test"), Contexts.recipient("b@x.test")] }))
      expect(value).toContain("id T1; Tue")
      expect(value).not.toContain("for <")
    }))

  it.effect("chooses the protocol keyword by greeting, TLS, AUTH and SMTPUTF8", () =>
    Effect.gen(function*() {
      const utf8 = Contexts.transaction({ mailParams: { smtputf8: true, raw: { SMTPUTF8: undefined } } })
      const cases: ReadonlyArray<[SessionInfo, TransactionInfo, string]> = [
        [Contexts.session({ helo: { verb: "HELO", name: "old.test" } }), Contexts.transaction(), "SMTP"],
        [Contexts.session({ helo: { verb: "LHLO", name: "lmtp.test" } }), Contexts.transaction(), "LMTP"],
        [Contexts.session({ tls }), Contexts.transaction(), "ESMTPS"],
        [Contexts.session({ user: "u" }), Contexts.transaction(), "ESMTPA"],
        [Contexts.session(), utf8, "UTF8SMTP"],
        [Contexts.session({ tls }), utf8, "UTF8SMTPS"],
        [Contexts.session({ user: "u" }), utf8, "UTF8SMTPA"],
        [Contexts.session({ tls, user: "u" }), utf8, "UTF8SMTPSA"]
      ]
      for (const [s, t, keyword] of cases) expect(yield* stamp(s, t)).toContain(` with ${keyword} id `)
    }))

  it.effect("writes an IPv6 client as an IPv6 address literal and an IPv4-mapped one as IPv4", () =>
    Effect.gen(function*() {
      expect(yield* stamp(Contexts.session({ remoteAddress: "2001:DB8::7" }), Contexts.transaction())).toContain("([IPv6:2001:db8::7])")
      expect(yield* stamp(Contexts.session({ remoteAddress: "::ffff:192.0.2.9" }), Contexts.transaction())).toContain("([192.0.2.9])")
    }))

  it.effect("keeps a hostile HELO name and user name from breaking out of their clause", () =>
    Effect.gen(function*() {
      const s = Contexts.session({ helo: { verb: "EHLO", name: "x) by evil; y" }, user: "a)b\\c" })
      const value = yield* stamp(s, Contexts.transaction(), { includeUser: true })
      expect(value).toContain("from x__by_evil__y ([203.0.113.5]) by mx.bridge.test")
      expect(value).toContain("(authenticated as a\\)b\\\\c)")
    }))

  it.effect("writes a user name as printable ASCII of at most 255 characters", () =>
    Effect.gen(function*() {
      const value = yield* stamp(Contexts.session({ user: "al\u0085ice\uFFFD" }), Contexts.transaction(), { includeUser: true })
      expect(value).toContain("(authenticated as al_ice_);")
      const long = yield* stamp(Contexts.session({ user: "u".repeat(1000) }), Contexts.transaction(), { includeUser: true })
      expect(long).toContain(`(authenticated as ${"u".repeat(252)}...);`)
    }))
})
