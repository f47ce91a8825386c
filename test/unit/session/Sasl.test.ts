/**
 * AUTH (RFC 4954) with a plugin's SASL mechanism: the exchange runs in the plugin (SaslStart,
 * SaslContinue, answered with SaslStep), the machine keeps RFC 4954's rules around it.
 */
import { describe, expect, it } from "@effect/vitest"
import type { SaslStep } from "../../../src/pipeline/Plugin.ts"
import * as Verdict from "../../../src/pipeline/Verdict.ts"
import type * as Engine from "../../../src/session/Engine.ts"
import { type Options, ready } from "./driver.ts"

const b64 = (s: string) => Buffer.from(s).toString("base64")
const challenge = (text: string): SaslStep => ({ _tag: "Challenge", text: b64(text) })
const done = (verdict: Verdict.Verdict, username: string | undefined = "alice"): SaslStep => ({ _tag: "Done", verdict, username })

/** A two-step mechanism: a first message, one challenge, a proof; `good` decides. */
const scram = (good: (proof: string | undefined) => Verdict.Verdict) => {
  const responses: Array<string | undefined> = []
  const options: Options = {
    sasl: {
      mechanisms: ["SCRAM-SHA-256", "XOAUTH2"],
      step: (response) => {
        responses.push(response)
        return responses.length === 1 ? challenge("r=nonce,s=c2FsdA==,i=4096") : done(good(response))
      }
    }
  }
  return { responses, options }
}

const ehloAuth = (d: ReturnType<typeof ready>) => d.last.flatMap((r) => r.lines).find((l) => l.startsWith("AUTH"))

const tags = (d: ReturnType<typeof ready>) => d.actions.map((a) => (a._tag === "Run" ? `Run ${a.hook}` : a._tag))

describe("what EHLO offers (RFC 4954 3)", () => {
  it("advertises PLAIN LOGIN and then the plugins' mechanisms, each once", () => {
    const d = ready({ sasl: { mechanisms: ["SCRAM-SHA-256", "XOAUTH2"], step: () => done(Verdict.Continue) } })
    expect(ehloAuth(d)).toBe("AUTH PLAIN LOGIN SCRAM-SHA-256 XOAUTH2")
  })

  it("offers a plugin's mechanisms only over TLS unless insecure AUTH is allowed", () => {
    const sasl = { mechanisms: ["SCRAM-SHA-256"], step: () => done(Verdict.Continue) }
    expect(ehloAuth(ready({ plain: true, sasl }))).toBeUndefined()
    expect(ehloAuth(ready({ plain: true, sasl, settings: { allowInsecureAuth: true } }))).toBe("AUTH PLAIN LOGIN SCRAM-SHA-256")
  })

  it("offers only the plugins' mechanisms when no auth hook checks PLAIN and LOGIN; AUTH PLAIN is then 504 5.5.4", () => {
    const d = ready({ settings: { auth: false }, sasl: { mechanisms: ["OAUTHBEARER"], step: () => done(Verdict.Continue) } })
    expect(ehloAuth(d)).toBe("AUTH OAUTHBEARER")
    expect(d.send("AUTH PLAIN")).toEqual(["504 5.5.4 Unrecognized authentication type"])
  })

  it("answers 538 5.7.11 to a plugin's mechanism before TLS", () => {
    const d = ready({ plain: true, sasl: { mechanisms: ["SCRAM-SHA-256"], step: () => done(Verdict.accept()) } })
    expect(d.send("AUTH SCRAM-SHA-256")).toEqual(["538 5.7.11 Encryption required for requested authentication mechanism"])
    expect(d.has("SaslStart")).toBe(false)
  })

  it("answers 504 5.5.4 to a mechanism no plugin offers", () => {
    const d = ready({ sasl: { mechanisms: ["SCRAM-SHA-256"], step: () => done(Verdict.accept()) } })
    expect(d.send("AUTH SCRAM-SHA-1")).toEqual(["504 5.5.4 Unrecognized authentication type"])
  })
})

describe("the exchange (RFC 4954 4)", () => {
  it("relays challenges as 334 and responses to the plugin; 235 2.7.0 when it accepts", () => {
    const { responses, options } = scram(() => Verdict.accept({ identity: "alice@example.com" }))
    const d = ready(options)
    expect(d.send(`AUTH SCRAM-SHA-256 ${b64("n,,n=alice,r=abc")}`)).toEqual([`334 ${b64("r=nonce,s=c2FsdA==,i=4096")}`])
    expect(d.send(b64("c=biws,r=nonce,p=proof"))).toEqual(["235 2.7.0 Authentication successful"])
    expect(responses).toEqual([b64("n,,n=alice,r=abc"), b64("c=biws,r=nonce,p=proof")])
    expect(d.state.session.user).toBe("alice@example.com")
    expect(d.state.session.authMechanism).toBe("SCRAM-SHA-256")
    expect(tags(d).slice(-4)).toEqual(["SaslStart", "SaslContinue", "Run authAttempt", "AuthResult"])
  })

  it("starts without an initial response when the client sent none, and reads RFC 4954's = as an empty one", () => {
    const first = scram(() => Verdict.accept())
    ready(first.options).send("AUTH SCRAM-SHA-256")
    expect(first.responses).toEqual([undefined])
    const empty = scram(() => Verdict.accept())
    ready(empty.options).send("AUTH XOAUTH2 =")
    expect(empty.responses).toEqual([""])
  })

  it("passes an empty response line on as an empty response", () => {
    const { responses, options } = scram(() => Verdict.accept())
    const d = ready(options)
    d.send("AUTH SCRAM-SHA-256")
    expect(d.send("")).toEqual(["235 2.7.0 Authentication successful"])
    expect(responses).toEqual([undefined, ""])
  })

  it("cancels on * with 501 5.0.0 and tells the plugin (SaslAbort)", () => {
    const d = ready(scram(() => Verdict.accept()).options)
    d.send("AUTH SCRAM-SHA-256")
    expect(d.send("*")).toEqual(["501 5.0.0 Authentication cancelled"])
    expect(tags(d).at(-1)).toBe("SaslAbort")
    expect(d.send("NOOP")).toEqual(["250 2.0.0 Ok"])
  })

  it("answers a response that is no base64 with 501 5.5.2, aborts the exchange and counts an invalid command", () => {
    const d = ready(scram(() => Verdict.accept()).options)
    d.send("AUTH SCRAM-SHA-256")
    const before = d.state.invalid
    expect(d.send("not base64!")).toEqual(["501 5.5.2 Invalid base64 data"])
    expect(d.has("SaslAbort")).toBe(true)
    expect(d.state.invalid).toBe(before + 1)
  })

  it("answers an initial response that is no base64 with 501 5.5.2 before asking the plugin", () => {
    const d = ready(scram(() => Verdict.accept()).options)
    expect(d.send("AUTH SCRAM-SHA-256 a*b")).toEqual(["501 5.5.2 Invalid base64 data"])
    expect(d.has("SaslStart")).toBe(false)
  })

  it("answers an overlong response with 500 5.5.6 and aborts the exchange", () => {
    const d = ready(scram(() => Verdict.accept()).options)
    d.send("AUTH SCRAM-SHA-256")
    expect(d.feed({ _tag: "TooLong" })).toEqual(["500 5.5.6 Authentication exchange line is too long"])
    expect(tags(d)).toContain("SaslAbort")
  })

  it("tells the plugin when the client leaves in the middle", () => {
    const d = ready(scram(() => Verdict.accept()).options)
    d.send("AUTH SCRAM-SHA-256")
    d.feed({ _tag: "End", why: "eof" })
    expect(tags(d).at(-1)).toBe("SaslAbort")
  })

  it("treats a challenge that is no base64 (a reply injection) as a failed hook: 451 4.3.0, exchange aborted", () => {
    const d = ready({ sasl: { mechanisms: ["X-BROKEN"], step: () => ({ _tag: "Challenge", text: "abc\r\n235 2.7.0 ok" }) } })
    expect(d.send("AUTH X-BROKEN")).toEqual(["451 4.3.0 Temporary failure, please try again later"])
    expect(d.has("SaslAbort")).toBe(true)
    expect(d.state.session.user).toBeUndefined()
  })
})

describe("the plugin's decision", () => {
  it("answers a rejection with 535 5.7.8 and counts it: 421 4.7.0 at maxAuthFailures", () => {
    const d = ready(scram(() => Verdict.reject("Authentication credentials invalid", { code: 535, enhanced: "5.7.8" })).options)
    expect(d.script("AUTH SCRAM-SHA-256", b64("p"))).toEqual(["535 5.7.8 Authentication credentials invalid"])
    expect(d.actions).toContainEqual(expect.objectContaining({ _tag: "AuthFailed", mechanism: "SCRAM-SHA-256", username: "alice", reason: "credentials" }))
  })

  it("answers a plugin that did not know the user (Continue) with 535 5.7.8", () => {
    const d = ready({ sasl: { mechanisms: ["XOAUTH2"], step: () => done(Verdict.Continue) } })
    expect(d.send(`AUTH XOAUTH2 ${b64("x")}`)).toEqual(["535 5.7.8 Authentication credentials invalid"])
  })

  it("closes with 421 4.7.0 after maxAuthFailures failed exchanges", () => {
    const d = ready({ sasl: { mechanisms: ["XOAUTH2"], step: () => done(Verdict.reject("no", { code: 535, enhanced: "5.7.8" })) } })
    d.send(`AUTH XOAUTH2 ${b64("x")}`)
    d.send(`AUTH XOAUTH2 ${b64("x")}`)
    expect(d.send(`AUTH XOAUTH2 ${b64("x")}`)).toEqual(["421 4.7.0 Too many authentication failures, closing connection"])
    expect(d.closed()).toBe(true)
  })

  it("answers a deferral with its 454 4.7.0, not counted against the client and not asking authAttempt", () => {
    const d = ready({
      settings: { maxAuthFailures: 1 },
      sasl: { mechanisms: ["XOAUTH2"], step: () => done(Verdict.defer("Temporary authentication failure", { code: 454, enhanced: "4.7.0" })) }
    })
    expect(d.send(`AUTH XOAUTH2 ${b64("x")}`)).toEqual(["454 4.7.0 Temporary authentication failure"])
    expect(d.send(`AUTH XOAUTH2 ${b64("x")}`)).toEqual(["454 4.7.0 Temporary authentication failure"])
    expect(d.closed()).toBe(false)
    expect(tags(d)).not.toContain("Run authAttempt")
    expect(d.actions).toContainEqual(expect.objectContaining({ _tag: "AuthResult", ctx: expect.objectContaining({ outcome: "deferred" }) }))
  })

  it("lets the authAttempt hooks (the throttle) withhold a success: 454 4.7.0, the session not authenticated", () => {
    const d = ready({
      ...scram(() => Verdict.accept()).options,
      hooks: { authAttempt: (ctx) => (ctx.username === "alice" ? Verdict.defer("Too many authentication failures", { code: 454, enhanced: "4.7.0" }) : Verdict.Continue) }
    })
    expect(d.script("AUTH SCRAM-SHA-256", b64("p"))).toEqual(["454 4.7.0 Too many authentication failures"])
    expect(d.state.session.user).toBeUndefined()
  })

  it("never lets an authAttempt hook turn a failure into a success", () => {
    const d = ready({
      sasl: { mechanisms: ["XOAUTH2"], step: () => done(Verdict.reject("no", { code: 535, enhanced: "5.7.8" })) },
      hooks: { authAttempt: () => Verdict.accept({ identity: "mallory" }) }
    })
    expect(d.send(`AUTH XOAUTH2 ${b64("x")}`)).toEqual(["535 5.7.8 no"])
    expect(d.state.session.user).toBeUndefined()
  })

  it("tells the authResult hooks the mechanism, the user and the outcome", () => {
    const d = ready(scram(() => Verdict.accept()).options)
    d.script("AUTH SCRAM-SHA-256", b64("p"))
    const result = d.actions.find((a): a is Extract<Engine.Action, { _tag: "AuthResult" }> => a._tag === "AuthResult")
    expect(result?.ctx).toMatchObject({ mechanism: "SCRAM-SHA-256", username: "alice", success: true, outcome: "success" })
  })

  it("keeps no response nor challenge in its state", () => {
    const d = ready(scram(() => Verdict.accept()).options)
    d.send(`AUTH SCRAM-SHA-256 ${b64("n,,n=alice,r=client-nonce-secret")}`)
    expect(JSON.stringify(d.state)).not.toContain(b64("n,,n=alice,r=client-nonce-secret"))
    expect(JSON.stringify(d.state)).not.toContain("c2FsdA")
    d.send(b64("proof-secret"))
    expect(JSON.stringify(d.state)).not.toContain(b64("proof-secret"))
  })
})
