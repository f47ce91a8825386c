import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { authservIdOf, claimsAuthservId, mailauthVerify, Results } from "../../../plugins/mailauth-verify/index.ts"
import type { MailauthVerifyOptions } from "../../../plugins/mailauth-verify/index.ts"
import * as Static from "../../../src/dns/Static.ts"
import { Relay, Verdict } from "../../../src/index.ts"
import type { DataContext } from "../../../src/index.ts"
import { Contexts } from "smtp-bridge/testing"

const long = `${"a".repeat(60)}.${"b".repeat(60)}.test`

// The client is 203.0.113.5 (Contexts.session); good.test allows it, bad.test does not.
const zone = Static.layer({
  "good.test": { TXT: ["v=spf1 ip4:203.0.113.5 -all"] },
  "_dmarc.good.test": { TXT: ["v=DMARC1; p=reject"] },
  "bad.test": { TXT: ["v=spf1 ip4:192.0.2.1 -all"] },
  "_dmarc.bad.test": { TXT: ["v=DMARC1; p=reject"] },
  "soft.test": { TXT: ["v=spf1 ~all"] },
  "_dmarc.soft.test": { TXT: ["v=DMARC1; p=quarantine"] },
  "slow.test": "TEMPFAIL",
  [long]: { TXT: ["v=spf1 ip4:192.0.2.1 -all"] },
  [`_dmarc.${long}`]: { TXT: ["v=DMARC1; p=reject"] }
})

const mail = (from: string, extra = "") => `${extra}From: ${from}\r\nSubject: hi\r\n\r\nbody\r\n`

/** Runs the data hook for a message from `sender`; returns the verdict, the added and the removed headers. */
const check = (sender: string, options: MailauthVerifyOptions, overrides: { user?: string; trusted?: boolean; extra?: string } = {}) =>
  Effect.gen(function*() {
    const s = Contexts.session(overrides.user !== undefined ? { user: overrides.user } : {})
    if (overrides.trusted === true) s.notes.set(Relay.Trusted, true)
    const t = Contexts.transaction({ mailFrom: Contexts.mailbox(sender) })
    const ctx = Contexts.data(mail(sender, overrides.extra), { session: s, transaction: t })
    const { added } = ctx
    const removed: Array<string> = []
    const withRemove: DataContext = {
      ...ctx,
      removeHeader: (name, predicate) => {
        for (const h of ctx.message.headers) {
          if (h.name.toLowerCase() === name.toLowerCase() && (predicate === undefined || predicate(h.value))) removed.push(h.value)
        }
      }
    }
    const verdict = yield* mailauthVerify(options).data!(withRemove)
    return { verdict, added, removed, results: t.notes.get(Results) }
  })

layer(zone)("mailauth-verify", (it) => {
  describe("data", () => {
    it.effect("adds one Authentication-Results with spf=pass and dmarc=pass under the session's hostname, and publishes the results", () =>
      Effect.gen(function*() {
        const { verdict, added, results } = yield* check("alice@good.test", { skipTrusted: false })
        expect(verdict).toEqual(Verdict.Continue)
        expect(added.map((a) => a.name)).toEqual(["Authentication-Results"])
        expect(added[0]!.value).toMatch(/^mx\.bridge\.test;/)
        expect(added[0]!.value).toContain("spf=pass")
        expect(results?.spf?.result).toBe("pass")
        // No DKIM signature, but SPF passes for good.test, which aligns with From.
        expect(results?.dmarc?.result).toBe("pass")
      }))

    it.effect("rejects a DMARC failure of a p=reject domain with 550 5.7.1 when the policy says reject", () =>
      Effect.gen(function*() {
        const { verdict } = yield* check("mallory@bad.test", { policy: { dmarcReject: "reject" } })
        expect(verdict).toEqual(Verdict.reject("DMARC policy of bad.test (p=reject) rejects this message", { code: 550, enhanced: "5.7.1" }))
      }))

    it.effect("names a long From domain in its 550 by its first 64 characters and ...", () =>
      Effect.gen(function*() {
        const { verdict } = yield* check(`m@${long}`, { policy: { dmarcReject: "reject" } })
        expect(verdict).toEqual(Verdict.reject(`DMARC policy of ${long.slice(0, 64)}... (p=reject) rejects this message`, { code: 550, enhanced: "5.7.1" }))
      }))

    it.effect("rejects an SPF fail with 550 5.7.23 and defers it with 451 4.7.23", () =>
      Effect.gen(function*() {
        const text = "SPF check failed: bad.test does not designate this client as a permitted sender"
        expect((yield* check("m@bad.test", { policy: { spfFail: "reject" } })).verdict).toEqual(
          Verdict.reject(text, { code: 550, enhanced: "5.7.23" })
        )
        expect((yield* check("m@bad.test", { policy: { spfFail: "defer" } })).verdict).toEqual(
          Verdict.defer(text, { code: 451, enhanced: "4.7.23" })
        )
      }))

    it.effect("tags by default: X-Mailauth-Warning names the failed checks, nothing is refused", () =>
      Effect.gen(function*() {
        const { verdict, added } = yield* check("m@bad.test", {})
        expect(verdict).toEqual(Verdict.Continue)
        expect(added.find((a) => a.name === "X-Mailauth-Warning")?.value).toBe("dmarc=fail policy=reject; spf=fail smtp.mailfrom=bad.test")
      }))

    it.effect("defers a DNS timeout with 451 4.7.0 when temperror is deferred, and accepts it by default", () =>
      Effect.gen(function*() {
        expect((yield* check("a@slow.test", { policy: { temperror: "defer" } })).verdict).toEqual(
          Verdict.defer("Temporary DNS failure while authenticating this message, try again later", { code: 451, enhanced: "4.7.0" })
        )
        expect((yield* check("a@slow.test", {})).verdict).toEqual(Verdict.Continue)
      }))

    it.effect("removes forged Authentication-Results claiming its own authserv-id, keeps others'", () =>
      Effect.gen(function*() {
        const extra = "Authentication-Results: MX.BRIDGE.TEST; dkim=pass\r\nAuthentication-Results: other.test; spf=pass\r\n"
        const { removed } = yield* check("alice@good.test", {}, { extra })
        expect(removed).toEqual(["MX.BRIDGE.TEST; dkim=pass"])
      }))

    it.effect("removes forged Authentication-Results in every RFC 8601 spelling of its id: nested comment, quoted, upper case, trailing dot", () =>
      Effect.gen(function*() {
        const forged = [
          "(a (nested) comment) mx.bridge.test; dkim=pass",
          "\"mx.bridge.test\"; dkim=pass",
          "MX.BRIDGE.TEST.; dkim=pass",
          "(x) \"MX.Bridge.Test.\" 1; spf=pass"
        ]
        const extra = forged.map((f) => `Authentication-Results: ${f}\r\n`).join("") + "Authentication-Results: other.test; spf=pass\r\n"
        expect((yield* check("alice@good.test", {}, { extra })).removed).toEqual(forged)
      }))

    it.effect("removes forged Authentication-Results for authenticated and trusted senders, whose checks are skipped", () =>
      Effect.gen(function*() {
        const extra = "Authentication-Results: (forged) \"mx.bridge.test.\"; dkim=pass\r\nAuthentication-Results: other.test; spf=pass\r\n"
        const authenticated = yield* check("m@bad.test", {}, { user: "alice", extra })
        expect(authenticated.added).toEqual([])
        expect(authenticated.removed).toEqual(["(forged) \"mx.bridge.test.\"; dkim=pass"])
        expect((yield* check("m@bad.test", {}, { trusted: true, extra })).removed).toEqual(["(forged) \"mx.bridge.test.\"; dkim=pass"])
      }))

    it.effect("skips authenticated and trusted sessions by default, and checks them when told", () =>
      Effect.gen(function*() {
        expect((yield* check("m@bad.test", { policy: { spfFail: "reject" } }, { user: "alice" })).added).toEqual([])
        expect((yield* check("m@bad.test", { policy: { spfFail: "reject" } }, { trusted: true })).added).toEqual([])
        const checked = yield* check("m@bad.test", { skipTrusted: false, policy: { spfFail: "reject" } }, { trusted: true })
        expect(checked.verdict._tag).toBe("Reject")
      }))
  })

  describe("mailFrom", () => {
    it.effect("with spfAtMailFrom rejects an SPF fail at MAIL FROM with 550 5.7.23", () =>
      Effect.gen(function*() {
        const hook = mailauthVerify({ spfAtMailFrom: true, policy: { spfFail: "reject" } }).mailFrom!
        const verdict = yield* hook({ session: Contexts.session(), from: Contexts.mailbox("m@bad.test"), params: { raw: {} } })
        expect(verdict).toEqual(
          Verdict.reject("SPF check failed: bad.test does not designate this client as a permitted sender", { code: 550, enhanced: "5.7.23" })
        )
        expect(yield* hook({ session: Contexts.session(), from: Contexts.mailbox("a@good.test"), params: { raw: {} } })).toEqual(Verdict.Continue)
      }))
  })

  it.effect("reads the authserv-id of an Authentication-Results value past comments and a version", () =>
    Effect.sync(() => {
      expect(authservIdOf("(forged) mx.bridge.test 1; spf=pass")).toBe("mx.bridge.test")
      expect(authservIdOf("mx.bridge.test;spf=pass")).toBe("mx.bridge.test")
    }))

  it.effect("reads the authserv-id as RFC 8601 does: nested comments with quoted-pairs, quoted-string, case and trailing dot", () =>
    Effect.sync(() => {
      expect(authservIdOf("(a (nested) comment) mx.test; spf=pass")).toBe("mx.test")
      expect(authservIdOf("(a \\) tricky (one)) mx.test; spf=pass")).toBe("mx.test")
      expect(authservIdOf("\"mx.test\"; spf=pass")).toBe("mx.test")
      expect(authservIdOf("\"mx\\.test\"; spf=pass")).toBe("mx.test")
      expect(authservIdOf("MX.TEST.; spf=pass")).toBe("mx.test")
      expect(authservIdOf("\t mx.test(c); none")).toBe("mx.test")
      expect(authservIdOf("other.test; spf=pass (mx.test)")).toBe("other.test")
    }))

  it.effect("gives no authserv-id for a value that does not parse: an unclosed comment or quote, nothing before the `;`", () =>
    Effect.sync(() => {
      expect(authservIdOf("(unclosed (comment) mx.test; spf=pass")).toBeUndefined()
      expect(authservIdOf("\"mx.test; spf=pass")).toBeUndefined()
      expect(authservIdOf("; spf=pass")).toBeUndefined()
    }))

  it.effect("takes a value that does not parse as claiming the id when it names it, and others' ids as theirs", () =>
    Effect.sync(() => {
      expect(claimsAuthservId("(unclosed mx.test; dkim=pass", "mx.test")).toBe(true)
      expect(claimsAuthservId("(unclosed; dkim=pass", "mx.test")).toBe(false)
      expect(claimsAuthservId("mx.test.evil; dkim=pass", "mx.test")).toBe(false)
      expect(claimsAuthservId("MX.TEST.; dkim=pass", "mx.test.")).toBe(true)
    }))

  it.effect("reads a 100,000-character comment nest in linear time", () =>
    Effect.sync(() => {
      const deep = "(".repeat(50_000) + ")".repeat(50_000) + " mx.test; none"
      expect(authservIdOf(deep)).toBe("mx.test")
    }))
})
