/**
 * RFC 5321's command sequence and RFC 3207's STARTTLS, as the session machine applies them,
 * without a socket. Each test names the rule and the reply.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Relay from "../../../src/pipeline/Relay.ts"
import * as Verdict from "../../../src/pipeline/Verdict.ts"
import * as Engine from "../../../src/session/Engine.ts"
import { greeted, ready, start } from "./driver.ts"

const mailTx = ["MAIL FROM:<a@client.test>", "RCPT TO:<b@dest.test>"] as const

describe("the greeting (RFC 5321 3.1, 4.3.1)", () => {
  it("asks the connect hooks first, then greets with 220 and the host name", () => {
    const d = start()
    expect(d.feed({ _tag: "Connected" })).toEqual(["220 mx.test ESMTP smtp-bridge"])
    expect(d.actions[0]).toMatchObject({ _tag: "Run", hook: "connect" })
  })

  it("answers a refusing connect hook with its reply, logs it and closes (outcome refused)", () => {
    const d = start({ hooks: { connect: () => Verdict.reject("No service for you", { code: 554, enhanced: "5.7.1" }) } })
    expect(d.feed({ _tag: "Connected" })).toEqual(["554 5.7.1 No service for you"])
    expect(d.actions).toContainEqual(expect.objectContaining({ _tag: "Refused", by: "test-plugin" }))
    expect(d.outcome()).toBe("refused")
  })

  it("greets a temporary refusal with 421 and a permanent one with 554, the only refusing greetings (RFC 5321 3.1, 3.8, 4.3.2), keeping the hook's enhanced code and text", () => {
    const deferred = start({ hooks: { connect: () => Verdict.defer("Service unavailable - try again later", { code: 451, enhanced: "4.7.1" }) } })
    expect(deferred.feed({ _tag: "Connected" })).toEqual(["421 4.7.1 Service unavailable - try again later"])
    expect(deferred.outcome()).toBe("refused")
    const rejected = start({ hooks: { connect: () => Verdict.reject("Not here", { code: 550, enhanced: "5.7.1" }) } })
    expect(rejected.feed({ _tag: "Connected" })).toEqual(["554 5.7.1 Not here"])
  })
})

describe("EHLO and HELO (RFC 5321 4.1.1.1)", () => {
  it("answers HELO with one 250 line naming the server", () => {
    expect(greeted().send("HELO client.test")).toEqual(["250 mx.test"])
  })

  it("lists the extensions in EHLO's reply: STARTTLS before TLS, no AUTH without TLS", () => {
    const d = greeted()
    d.send("EHLO client.test")
    const lines = d.last[0]!.lines
    expect(lines[0]).toBe("mx.test greets client.test")
    expect(lines).toEqual(expect.arrayContaining(["PIPELINING", "SIZE 10000", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "CHUNKING", "DSN", "STARTTLS"]))
    expect(lines.some((l) => l.startsWith("AUTH"))).toBe(false)
    expect(lines).not.toContain("REQUIRETLS")
  })

  it("offers AUTH and REQUIRETLS and no more STARTTLS once TLS is up", () => {
    const lines = ready().last[0]!.lines
    expect(lines).toEqual(expect.arrayContaining(["AUTH PLAIN LOGIN", "REQUIRETLS"]))
    expect(lines).not.toContain("STARTTLS")
  })

  it("offers AUTH before TLS only when insecure AUTH is allowed, and never without an auth hook", () => {
    expect(ready({ plain: true, settings: { allowInsecureAuth: true } }).last[0]!.lines).toContain("AUTH PLAIN LOGIN")
    expect(ready({ settings: { auth: false } }).last[0]!.lines.some((l) => l.startsWith("AUTH"))).toBe(false)
  })

  it("repeats the client's name printable and short: 64 characters at most", () => {
    const d = greeted()
    d.send(`EHLO ${"x".repeat(300)}`)
    expect(d.last[0]!.lines[0]).toBe(`mx.test greets ${"x".repeat(64)}...`)
  })

  it("refuses LHLO with 500 5.5.2: this is SMTP, not LMTP", () => {
    expect(greeted().send("LHLO client.test")).toEqual(["500 5.5.2 LHLO is for LMTP; this is SMTP"])
  })

  it("lets a helo hook refuse the name, and keeps the session without EHLO", () => {
    const d = greeted({ hooks: { helo: () => Verdict.reject("Bad name", { code: 550, enhanced: "5.7.1" }) } })
    expect(d.send("EHLO bad.test")).toEqual(["550 5.7.1 Bad name"])
    expect(d.send("MAIL FROM:<a@client.test>")).toEqual(["503 5.5.1 Send EHLO or HELO first"])
  })

  it("resets a transaction in progress: a new EHLO implies RSET (4.1.4)", () => {
    const d = ready()
    d.script(...mailTx, "EHLO again.test")
    expect(d.send("RCPT TO:<c@dest.test>")).toEqual(["503 5.5.1 Need MAIL before RCPT"])
    expect(d.events).toContainEqual({ _tag: "Ended", id: "TX1", outcome: "reset", code: undefined })
  })
})

describe("the order of commands (RFC 5321 4.1.4): 503 5.5.1 out of sequence", () => {
  it("refuses MAIL before EHLO or HELO", () => {
    expect(greeted().send("MAIL FROM:<a@client.test>")).toEqual(["503 5.5.1 Send EHLO or HELO first"])
  })

  it("refuses RCPT before MAIL", () => {
    expect(ready().send("RCPT TO:<b@dest.test>")).toEqual(["503 5.5.1 Need MAIL before RCPT"])
  })

  it("refuses DATA before MAIL, and DATA without an accepted recipient with 554 5.5.1", () => {
    const d = ready()
    expect(d.send("DATA")).toEqual(["503 5.5.1 Need MAIL command"])
    d.send("MAIL FROM:<a@client.test>")
    expect(d.send("DATA")).toEqual(["554 5.5.1 No valid recipients"])
  })

  it("refuses a nested MAIL", () => {
    const d = ready()
    d.send("MAIL FROM:<a@client.test>")
    expect(d.send("MAIL FROM:<a@client.test>")).toEqual(["503 5.5.1 Nested MAIL command"])
  })

  it("stays in the same state after a 503 or a 501: the transaction keeps its sender and recipients (3.3)", () => {
    const d = ready()
    d.script(...mailTx)
    expect(d.send("MAIL FROM:<other@client.test>")).toEqual(["503 5.5.1 Nested MAIL command"])
    expect(d.send("RCPT TO:<broken")).toEqual(["501 5.1.3 Bad recipient address syntax"])
    expect(d.state.tx).toMatchObject({ id: "TX1", mailFrom: { address: "a@client.test" } })
    expect(d.state.tx?.recipients.map((r) => r.mailbox.address)).toEqual(["b@dest.test"])
    expect(d.events).toEqual([{ _tag: "Opened", id: "TX1" }])
  })

  it("opens no transaction when MAIL is refused: RCPT then gets 503 5.5.1 (3.3)", () => {
    const d = ready({ hooks: { mailFrom: () => Verdict.reject("No", { code: 550, enhanced: "5.7.1" }) } })
    expect(d.send("MAIL FROM:<a@client.test>")).toEqual(["550 5.7.1 No"])
    expect(d.send("RCPT TO:<b@dest.test>")).toEqual(["503 5.5.1 Need MAIL before RCPT"])
    expect(d.events).toEqual([])
  })

  it("answers DATA with 554 5.5.1 when every recipient was refused (4.1.1.4)", () => {
    const d = ready({ hooks: { rcptTo: () => Verdict.reject("Unknown user", { code: 550, enhanced: "5.1.1" }) } })
    d.script(...mailTx)
    expect(d.send("DATA")).toEqual(["554 5.5.1 No valid recipients"])
    expect(d.state.tx?.id).toBe("TX1")
  })

  it("takes RSET and NOOP at any time, even before EHLO: 250 2.0.0 (4.1.4)", () => {
    const d = greeted()
    expect(d.send("RSET")).toEqual(["250 2.0.0 Ok"])
    expect(d.send("NOOP")).toEqual(["250 2.0.0 Ok"])
    expect(d.state.invalid).toBe(0)
    expect(d.events).toEqual([])
  })

  it("opens a transaction at MAIL's 250 2.1.0 and accepts recipients with 250 2.1.5", () => {
    const d = ready()
    expect(d.send("MAIL FROM:<a@client.test>")).toEqual(["250 2.1.0 Ok"])
    expect(d.send("RCPT TO:<b@dest.test>")).toEqual(["250 2.1.5 Ok"])
    expect(d.state.tx?.recipients.map((r) => r.mailbox.address)).toEqual(["b@dest.test"])
    expect(d.events).toEqual([{ _tag: "Opened", id: "TX1" }])
  })

  it("RSET ends the transaction with 250 2.0.0 and keeps EHLO", () => {
    const d = ready()
    d.script(...mailTx)
    expect(d.send("RSET")).toEqual(["250 2.0.0 Ok"])
    expect(d.state.tx).toBeUndefined()
    expect(d.send("MAIL FROM:<a@client.test>")).toEqual(["250 2.1.0 Ok"])
    expect(d.events[1]).toEqual({ _tag: "Ended", id: "TX1", outcome: "reset", code: undefined })
  })

  it("NOOP, VRFY, EXPN and HELP change nothing (4.1.1.9, 3.5)", () => {
    const d = ready()
    d.script(...mailTx)
    expect(d.send("NOOP")).toEqual(["250 2.0.0 Ok"])
    expect(d.send("VRFY b")).toEqual(["252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery"])
    expect(d.send("EXPN list")).toEqual(["502 5.5.1 EXPN not available"])
    expect(d.send("HELP")).toEqual(["214 2.0.0 smtp-bridge: see RFC 5321 for the commands"])
    expect(d.state.tx?.recipients).toHaveLength(1)
  })

  it("QUIT is answered 221 2.0.0 and ends the session (outcome quit)", () => {
    const d = ready()
    expect(d.send("QUIT")).toEqual(["221 2.0.0 mx.test closing connection"])
    expect(d.outcome()).toBe("quit")
  })

  it("answers an unknown command 500 5.5.2 and a line too long 500 5.5.2", () => {
    const d = ready()
    expect(d.send("FOO")).toEqual(["500 5.5.2 Command unrecognized"])
    expect(d.feed({ _tag: "TooLong" })).toEqual(["500 5.5.2 Line too long"])
  })

  it("closes with 421 4.7.0 after more than maxInvalidCommands errors", () => {
    const d = ready({ settings: { maxInvalidCommands: 2 } })
    d.script("FOO", "RCPT TO:<b@dest.test>")
    expect(d.send("BAR")).toEqual(["421 4.7.0 Too many errors, closing connection"])
    expect(d.outcome()).toBe("closed")
  })

  it("counts lines as commands, and SASL responses not", () => {
    const d = ready()
    const before = d.state.commands
    d.script("AUTH PLAIN", "*")
    expect(d.state.commands).toBe(before + 1)
  })
})

describe("MAIL FROM (RFC 5321 4.1.1.2, RFC 1870, RFC 8689)", () => {
  it("refuses a declared SIZE over the maximum with 552 5.3.4 before any hook", () => {
    const d = ready()
    expect(d.send("MAIL FROM:<a@client.test> SIZE=10001")).toEqual(["552 5.3.4 Message size exceeds fixed maximum message size"])
    expect(d.actions.filter((a) => a._tag === "Run" && a.hook === "mailFrom")).toHaveLength(0)
  })

  it("refuses REQUIRETLS without TLS with 530 5.7.10", () => {
    const d = ready({ plain: true })
    expect(d.send("MAIL FROM:<a@client.test> REQUIRETLS")).toEqual(["530 5.7.10 REQUIRETLS needs a TLS session"])
  })

  it("answers a mailFrom refusal with the hook's reply and logs the plugin", () => {
    const d = ready({ hooks: { mailFrom: () => Verdict.reject("Not your address", { code: 553, enhanced: "5.7.1" }) } })
    expect(d.send("MAIL FROM:<a@client.test>")).toEqual(["553 5.7.1 Not your address"])
    expect(d.actions).toContainEqual(expect.objectContaining({ _tag: "Refused", by: "test-plugin" }))
    expect(d.state.tx).toBeUndefined()
  })

  it("counts 530 (authenticate first) toward the invalid-command limit", () => {
    const d = ready({ settings: { maxInvalidCommands: 1 }, hooks: { mailFrom: () => Verdict.reject("Authentication required", { code: 530, enhanced: "5.7.0" }) } })
    expect(d.send("MAIL FROM:<a@client.test>")).toEqual(["530 5.7.0 Authentication required"])
    expect(d.send("MAIL FROM:<a@client.test>")).toEqual(["421 4.7.0 Too many errors, closing connection"])
  })

  it("asks for a storage check when the spool keeps a floor, and refuses with 452 4.3.1 without room", () => {
    const d = ready({ settings: { checkStorage: true }, storage: false })
    expect(d.send("MAIL FROM:<a@client.test> SIZE=500")).toEqual(["452 4.3.1 Insufficient system storage"])
    expect(d.actions).toContainEqual({ _tag: "CheckStorage", size: 500 })
  })

  it("closes the session on a Disconnect verdict", () => {
    const d = ready({ hooks: { mailFrom: () => Verdict.disconnect("Go away", { code: 421, enhanced: "4.7.0" }) } })
    expect(d.send("MAIL FROM:<a@client.test>")).toEqual(["421 4.7.0 Go away"])
    expect(d.closed()).toBe(true)
  })
})

describe("RCPT TO (RFC 5321 4.1.1.3, 4.5.3.1.8)", () => {
  it("refuses recipients past maxRecipients with 452 4.5.3", () => {
    const d = ready({ settings: { maxRecipients: 1 } })
    d.script(...mailTx)
    expect(d.send("RCPT TO:<c@dest.test>")).toEqual(["452 4.5.3 Too many recipients"])
  })

  it("denies relaying to a stranger when every hook continues: 554 5.7.1", () => {
    const d = ready({ plain: true, trusted: false })
    d.send("MAIL FROM:<a@client.test>")
    expect(d.send("RCPT TO:<b@dest.test>")).toEqual(["554 5.7.1 Relay access denied"])
  })

  it("relays for a trusted network (the Relay.Trusted note) and for an authenticated user", () => {
    const trusted = ready({ plain: true, trusted: false })
    trusted.state.session.notes.set(Relay.Trusted, true)
    trusted.send("MAIL FROM:<a@client.test>")
    expect(trusted.send("RCPT TO:<b@dest.test>")).toEqual(["250 2.1.5 Ok"])
    const user = ready({ plain: true, trusted: false, session: { user: "alice" } })
    user.send("MAIL FROM:<a@client.test>")
    expect(user.send("RCPT TO:<b@dest.test>")).toEqual(["250 2.1.5 Ok"])
  })

  it("accepts a recipient a hook accepts even for a stranger", () => {
    const d = ready({ plain: true, trusted: false, hooks: { rcptTo: () => Verdict.accept() } })
    d.send("MAIL FROM:<a@client.test>")
    expect(d.send("RCPT TO:<b@dest.test>")).toEqual(["250 2.1.5 Ok"])
  })

  it("gives each rcptTo hook the transaction as it stands", () => {
    const seen: Array<number> = []
    const d = ready({ hooks: { rcptTo: (ctx) => (seen.push(ctx.transaction.recipients.length), Verdict.Continue) } })
    d.script(...mailTx, "RCPT TO:<c@dest.test>")
    expect(seen).toEqual([0, 1])
  })
})

describe("STARTTLS (RFC 3207)", () => {
  it("answers 502 5.5.1 when no certificate is configured", () => {
    expect(ready({ plain: true, settings: { tls: false } }).send("STARTTLS")).toEqual(["502 5.5.1 STARTTLS not available"])
  })

  it("answers 220 2.0.0 and asks for the handshake; afterwards the session starts over (4.2)", () => {
    const d = greeted()
    d.script("EHLO client.test", "MAIL FROM:<a@client.test>")
    expect(d.send("STARTTLS")).toEqual(["220 2.0.0 Ready to start TLS"])
    expect(d.actions.at(-1)).toEqual({ _tag: "StartTls" })
    expect(d.state.session.tls?.mode).toBe("starttls")
    expect(d.state.session.helo).toBeUndefined()
    expect(d.state.tx).toBeUndefined()
    expect(d.send("MAIL FROM:<a@client.test>")).toEqual(["503 5.5.1 Send EHLO or HELO first"])
  })

  it("forgets an authentication made before TLS", () => {
    const d = ready({ plain: true, settings: { allowInsecureAuth: true }, hooks: { auth: () => Verdict.accept() } })
    d.send(`AUTH PLAIN ${Buffer.from("\0u\0p").toString("base64")}`)
    expect(d.state.session.user).toBe("u")
    d.send("STARTTLS")
    expect(d.state.session.user).toBeUndefined()
  })

  it("refuses STARTTLS with a parameter: 501 5.5.4 (4: no parameters allowed)", () => {
    const d = greeted()
    d.send("EHLO client.test")
    expect(d.send("STARTTLS now")[0]).toMatch(/^501 5\.5\.4 /)
    expect(d.has("StartTls")).toBe(false)
  })

  it("ends the transaction opened before TLS as reset, and offers STARTTLS no more (4.2)", () => {
    const d = greeted()
    d.script("EHLO client.test", "MAIL FROM:<a@client.test>", "STARTTLS")
    expect(d.events).toEqual([{ _tag: "Opened", id: "TX1" }, { _tag: "Ended", id: "TX1", outcome: "reset", code: undefined }])
    d.send("EHLO client.test")
    expect(d.last[0]!.lines).not.toContain("STARTTLS")
  })

  it("refuses a second STARTTLS with 503 5.5.1", () => {
    expect(ready().send("STARTTLS")).toEqual(["503 5.5.1 TLS already active"])
  })

  it("closes without a reply when the handshake fails", () => {
    const d = ready({ plain: true, tls: "fails" })
    expect(d.send("STARTTLS")).toEqual(["220 2.0.0 Ready to start TLS"])
    expect(d.outcome()).toBe("closed")
  })
})

describe("the end of a session", () => {
  it("answers a timeout with 421 4.4.2 and drops the transaction (outcome timeout)", () => {
    const d = ready()
    d.script(...mailTx)
    expect(d.feed({ _tag: "End", why: "timeout" })).toEqual(["421 4.4.2 Timeout, closing connection"])
    expect(d.outcome()).toBe("timeout")
    expect(d.events.at(-1)).toMatchObject({ _tag: "Ended", outcome: "abandoned" })
  })

  it("answers a drain with 421 4.3.2 (outcome shutdown)", () => {
    const d = ready()
    expect(d.feed({ _tag: "End", why: "drain" })).toEqual(["421 4.3.2 Service shutting down, closing connection"])
    expect(d.outcome()).toBe("shutdown")
  })

  it("says nothing to a client that left (outcome disconnected)", () => {
    const d = ready()
    expect(d.feed({ _tag: "End", why: "eof" })).toEqual([])
    expect(d.outcome()).toBe("disconnected")
  })

  it("closes on endless overlong lines with 421 4.7.0", () => {
    expect(ready().feed({ _tag: "End", why: "flood" })).toEqual(["421 4.7.0 Line too long, closing connection"])
  })

  it("ignores every input once closed", () => {
    const d = ready()
    d.send("QUIT")
    expect(d.send("NOOP")).toEqual([])
  })

  it("is idle (a drain closes it at once) between transactions, also in the middle of an AUTH exchange", () => {
    const d = ready()
    d.send("AUTH LOGIN")
    expect(Engine.idle(d.state)).toBe(true)
    d.send("*")
    d.send("MAIL FROM:<a@client.test>")
    expect(Engine.idle(d.state)).toBe(false)
  })
})
