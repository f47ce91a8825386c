/** AUTH (RFC 4954) with PLAIN (RFC 4616) and LOGIN, as the session machine applies it. */
import { describe, expect, it } from "@effect/vitest"
import * as Verdict from "../../../src/pipeline/Verdict.ts"
import type * as Engine from "../../../src/session/Engine.ts"
import { greeted, plain, ready } from "./driver.ts"

const b64 = (s: string) => Buffer.from(s).toString("base64")
const alice = (ctx: { username: string; password: string }) =>
  ctx.username === "alice" && ctx.password === "secret" ? Verdict.accept() : Verdict.Continue

describe("when AUTH may start (RFC 4954 4)", () => {
  it("wants EHLO first: 503 5.5.1 before any hello and after HELO", () => {
    const d = greeted()
    expect(d.send("AUTH PLAIN")).toEqual(["503 5.5.1 Send EHLO first"])
    d.send("HELO client.test")
    expect(d.send("AUTH PLAIN")).toEqual(["503 5.5.1 Send EHLO first"])
  })

  it("answers 538 5.7.11 before TLS, without counting it as an error", () => {
    const d = ready({ plain: true, settings: { maxInvalidCommands: 0 } })
    expect(d.send("AUTH PLAIN")).toEqual(["538 5.7.11 Encryption required for requested authentication mechanism"])
    expect(d.closed()).toBe(false)
  })

  it("answers 502 5.5.1 without an auth hook and 504 5.5.4 for an unknown mechanism", () => {
    expect(ready({ settings: { auth: false } }).send("AUTH PLAIN")).toEqual(["502 5.5.1 AUTH not available"])
    expect(ready().send("AUTH CRAM-MD5")).toEqual(["504 5.5.4 Unrecognized authentication type"])
  })

  it("is not allowed during a mail transaction: 503 5.5.1", () => {
    const d = ready()
    d.send("MAIL FROM:<a@client.test>")
    expect(d.send(`AUTH PLAIN ${plain("alice", "secret")}`)).toEqual(["503 5.5.1 AUTH not allowed during a mail transaction"])
  })
})

describe("the exchange", () => {
  it("PLAIN with an initial response: the auth hooks get the credentials; 235 2.7.0 on Accept", () => {
    const d = ready({ hooks: { auth: alice } })
    expect(d.send(`AUTH PLAIN ${plain("alice", "secret")}`)).toEqual(["235 2.7.0 Authentication successful"])
    expect(d.actions).toContainEqual(expect.objectContaining({ _tag: "Run", hook: "auth", ctx: expect.objectContaining({ username: "alice", password: "secret", mechanism: "PLAIN" }) }))
    expect(d.state.session).toMatchObject({ user: "alice", authMechanism: "PLAIN" })
  })

  it("PLAIN without one: an empty 334 challenge, then the response", () => {
    const d = ready({ hooks: { auth: alice } })
    expect(d.send("AUTH PLAIN")).toEqual(["334 "])
    expect(d.send(plain("alice", "secret"))).toEqual(["235 2.7.0 Authentication successful"])
  })

  it("LOGIN asks for the user name and the password in base64", () => {
    const d = ready({ hooks: { auth: alice } })
    expect(d.send("AUTH LOGIN")).toEqual(["334 VXNlcm5hbWU6"])
    expect(d.send(b64("alice"))).toEqual(["334 UGFzc3dvcmQ6"])
    expect(d.send(b64("secret"))).toEqual(["235 2.7.0 Authentication successful"])
  })

  it("takes the identity an Accept names, and then refuses a second AUTH with 503 5.5.1", () => {
    const d = ready({ hooks: { auth: () => Verdict.accept({ identity: "alice@example.com" }) } })
    d.send(`AUTH PLAIN ${plain("alice", "secret")}`)
    expect(d.state.session.user).toBe("alice@example.com")
    expect(d.send(`AUTH PLAIN ${plain("alice", "secret")}`)).toEqual(["503 5.5.1 Already authenticated"])
    d.send("EHLO client.test")
    expect(d.last[0]!.lines.some((l) => l.startsWith("AUTH"))).toBe(false)
  })

  it("cancels on * with 501 5.0.0, not counted as a failure", () => {
    const d = ready({ settings: { maxAuthFailures: 1 } })
    d.send("AUTH LOGIN")
    expect(d.send("*")).toEqual(["501 5.0.0 Authentication cancelled"])
    expect(d.closed()).toBe(false)
    expect(d.has("AuthFailed")).toBe(false)
  })

  it("answers bad base64 with 501 5.5.2, counted as an invalid command", () => {
    const d = ready()
    expect(d.send("AUTH PLAIN !!!")).toEqual(["501 5.5.2 Invalid base64 data"])
    expect(d.state.invalid).toBe(1)
    expect(d.state.authFailures).toBe(0)
    expect(d.actions).toContainEqual(expect.objectContaining({ _tag: "AuthFailed", reason: "malformed" }))
  })

  it("answers a response line over the limit with 500 5.5.6", () => {
    const d = ready()
    d.send("AUTH LOGIN")
    expect(d.feed({ _tag: "TooLong" })).toEqual(["500 5.5.6 Authentication exchange line is too long"])
    expect(d.actions).toContainEqual(expect.objectContaining({ _tag: "AuthFailed", reason: "too-long" }))
  })
})

describe("the end of an exchange", () => {
  it("lets the client try again after a failure: a new AUTH starts over (RFC 4954 4)", () => {
    const d = ready({ hooks: { auth: alice } })
    expect(d.send(`AUTH PLAIN ${plain("alice", "wrong")}`)).toEqual(["535 5.7.8 Authentication credentials invalid"])
    expect(d.send("AUTH LOGIN")).toEqual(["334 VXNlcm5hbWU6"])
    expect(d.script(b64("alice"), b64("secret"))).toEqual(["235 2.7.0 Authentication successful"])
  })

  it("answers a timeout in the middle of the exchange with 421 4.4.2, and a drain with 421 4.3.2", () => {
    const timedOut = ready()
    timedOut.send("AUTH LOGIN")
    expect(timedOut.feed({ _tag: "End", why: "timeout" })).toEqual(["421 4.4.2 Timeout, closing connection"])
    expect(timedOut.outcome()).toBe("timeout")
    const drained = ready()
    drained.script("AUTH LOGIN", b64("alice"))
    expect(drained.feed({ _tag: "End", why: "drain" })).toEqual(["421 4.3.2 Service shutting down, closing connection"])
    expect(drained.has("AuthFailed")).toBe(false)
  })
})

describe("the verdict of the auth hooks", () => {
  it("answers credentials no hook accepts with 535 5.7.8 and counts the failure", () => {
    const d = ready({ hooks: { auth: alice } })
    expect(d.send(`AUTH PLAIN ${plain("alice", "wrong")}`)).toEqual(["535 5.7.8 Authentication credentials invalid"])
    expect(d.state.authFailures).toBe(1)
    expect(d.actions).toContainEqual(expect.objectContaining({ _tag: "AuthFailed", reason: "credentials", username: "alice" }))
  })

  it("closes with 421 4.7.0 at maxAuthFailures", () => {
    const d = ready({ settings: { maxAuthFailures: 2 } })
    d.send(`AUTH PLAIN ${plain("alice", "1")}`)
    expect(d.send(`AUTH PLAIN ${plain("alice", "2")}`)).toEqual(["421 4.7.0 Too many authentication failures, closing connection"])
    expect(d.outcome()).toBe("closed")
  })

  it("answers a deferral with the hook's 454 4.7.0, not counted against the client", () => {
    const d = ready({ hooks: { auth: () => Verdict.defer("Try later", { code: 454, enhanced: "4.7.0" }) } })
    expect(d.send(`AUTH PLAIN ${plain("alice", "secret")}`)).toEqual(["454 4.7.0 Try later"])
    expect(d.state.authFailures).toBe(0)
    expect(d.has("AuthDeferred")).toBe(true)
  })

  it("tells the authResult hooks how it ended: success, failure or deferred, never the password", () => {
    const outcomes = (hooks: Parameters<typeof ready>[0]) => {
      const d = ready(hooks)
      d.send(`AUTH PLAIN ${plain("alice", "secret")}`)
      return d.actions.filter((a): a is Extract<Engine.Action, { _tag: "AuthResult" }> => a._tag === "AuthResult").map((a) => a.ctx)
    }
    expect(outcomes({ hooks: { auth: alice } })[0]).toMatchObject({ outcome: "success", success: true, username: "alice" })
    expect(outcomes({})[0]).toMatchObject({ outcome: "failure", success: false })
    expect(outcomes({ hooks: { auth: () => Verdict.defer("later") } })[0]).toMatchObject({ outcome: "deferred" })
    expect(JSON.stringify(outcomes({ hooks: { auth: alice } }))).not.toContain("secret")
  })

  it("keeps no initial response in its state: AUTH PLAIN's carries the password", () => {
    const d = ready({ hooks: { auth: alice } })
    const response = plain("alice", "secret")
    d.send(`AUTH PLAIN ${response}`)
    expect(JSON.stringify(d.state)).not.toContain(response)
    expect(d.state.command).toMatchObject({ verb: "AUTH", mechanism: "PLAIN" })
  })

  it("keeps no password in its state", () => {
    const d = ready({ hooks: { auth: alice } })
    d.script("AUTH LOGIN", b64("alice"))
    expect(JSON.stringify(d.state)).not.toContain("secret")
    d.send(b64("secret"))
    expect(JSON.stringify(d.state)).not.toContain("secret")
  })
})
