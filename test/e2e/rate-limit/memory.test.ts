// The rate-limit plugin with the in-memory store, through a real socket.
//
//   C: MAIL FROM:<alice@example.org>            (alice's third message in an hour, limit 2/hour)
//   S: 451 4.7.1 Message rate limit exceeded for alice, try again in 30 minutes
//   C: RCPT TO:<r4@example.net>                  (limit 3 recipients/day)
//   S: 450 4.7.1 Recipient rate limit exceeded, try again in 8 hours
//   (connect from a network over its message limit)
//   S: 421 4.7.0 Too many messages for 127.0.0.1, try again in 60 minutes
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { rateLimit } from "../../../plugins/rate-limit/index.ts"
import { definePlugin, Verdict } from "../../../src/index.ts"
import { startBridge, type TestBridge } from "../../support/bridge.ts"
import { connect } from "../../support/SmtpClient.ts"
import { login, mail, open, passwordAuth, plain } from "./transcript.ts"

// Refuses nobody@ at RCPT, as a directory lookup would: such recipients must not burn slots.
const directory = definePlugin({
  name: "directory",
  rcptTo: ({ recipient }) =>
    Effect.succeed(recipient.mailbox.local === "nobody" ? Verdict.reject("No such user", { code: 550, enhanced: "5.1.1" }) : Verdict.Continue)
})

describe("rate-limit (memory store): messages and recipients", () => {
  let bridge: TestBridge
  beforeAll(async () => {
    bridge = await startBridge({
      trust: ["127.0.0.0/8"],
      allowInsecureAuth: true,
      senders: { alice: ["*"], bob: ["*"], carol: ["*"] },
      plugins: [
        rateLimit({ perUser: "2/hour", recipients: "3/day", users: { bob: { perUser: "unlimited" }, carol: { perUser: "unlimited" } }, authFailures: false }),
        passwordAuth,
        directory
      ]
    })
  })
  afterAll(() => bridge.stop())

  it("defers alice's third message at MAIL with 451 4.7.1 and a retry hint; bob is not affected", async () => {
    const c = await login(bridge.port, "alice")
    expect((await mail(c, "alice@example.org")).final).toMatch(/^250 2\.0\.0 Ok: queued as /)
    expect((await mail(c, "alice@example.org")).final).toMatch(/^250 2\.0\.0 /)
    expect((await mail(c, "alice@example.org")).mail).toBe("451 4.7.1 Message rate limit exceeded for alice, try again in 30 minutes")
    c.close()
    const other = await login(bridge.port, "carol")
    for (let i = 0; i < 3; i++) expect((await mail(other, "carol@example.org")).final).toMatch(/^250 2\.0\.0 /)
    other.close()
  })

  it("counts only accepted recipients, and defers the RCPT past the limit with 450 4.7.1", async () => {
    const c = await login(bridge.port, "bob")
    const first = await mail(c, "bob@example.org", ["r1@example.net", "nobody@example.net", "r2@example.net"])
    expect(first.rcpt).toEqual(["250 2.1.5 Ok", "550 5.1.1 No such user", "250 2.1.5 Ok"])
    expect(first.final).toMatch(/^250 2\.0\.0 /)
    // One recipient left today: the second RCPT of this transaction would exceed it.
    const second = await mail(c, "bob@example.org", ["r3@example.net", "r4@example.net"])
    expect(second.rcpt).toEqual(["250 2.1.5 Ok", "450 4.7.1 Recipient rate limit exceeded, try again in 8 hours"])
    expect(second.final).toMatch(/^250 2\.0\.0 /)
    expect((await c.command("MAIL FROM:<bob@example.org>"))).toBe("250 2.1.0 Ok")
    expect(await c.command("RCPT TO:<r5@example.net>")).toMatch(/^450 4\.7\.1 Recipient rate limit exceeded, try again in \d+ hours$/)
    c.close()
  })
})

describe("rate-limit (memory store): client networks", () => {
  let bridge: TestBridge
  beforeAll(async () => {
    bridge = await startBridge({ trust: ["127.0.0.0/8"], plugins: [rateLimit({ perIp: "1/hour", authFailures: false })] })
  })
  afterAll(() => bridge.stop())

  it("answers 421 4.7.0 at connect and closes once the client's network used its messages", async () => {
    const c = await open(bridge.port)
    expect((await mail(c, "a@example.org")).final).toMatch(/^250 2\.0\.0 /)
    // Already connected: the next message is deferred at MAIL.
    expect((await mail(c, "a@example.org")).mail).toBe("451 4.7.1 Message rate limit exceeded for 127.0.0.1, try again in 60 minutes")
    c.close()
    const late = await connect(bridge.port)
    expect(await late.read()).toBe("421 4.7.0 Too many messages for 127.0.0.1, try again in 60 minutes")
    await late.closed()
  })
})

describe("rate-limit (memory store): AUTH brute force", () => {
  let bridge: TestBridge
  beforeAll(async () => {
    bridge = await startBridge({
      trust: ["127.0.0.0/8"],
      allowInsecureAuth: true,
      limits: { maxAuthFailures: 10 },
      plugins: [rateLimit({ authFailures: { perIp: "3/hour", perUser: "10/hour", delay: "100 millis", maxDelay: "200 millis" } }), passwordAuth]
    })
  })
  afterAll(() => bridge.stop())

  it("slows down failed AUTH, then defers with 454 4.7.0 without checking; the session and new connections stay usable", async () => {
    const c = await open(bridge.port)
    const started = Date.now()
    for (let i = 0; i < 3; i++) expect(await c.command(`AUTH PLAIN ${plain("alice", "guess" + i)}`)).toBe("535 5.7.8 Authentication credentials invalid")
    // The failures were answered after 100, 200 and 200 ms.
    expect(Date.now() - started).toBeGreaterThanOrEqual(490)
    // Even the right password is not checked now: the network used its attempts.
    expect(await c.command(`AUTH PLAIN ${plain("alice", "secret")}`)).toBe(
      "454 4.7.0 Too many authentication failures from 127.0.0.0/24, try again in 20 minutes"
    )
    expect(await c.command("NOOP")).toBe("250 2.0.0 Ok")
    c.close()
    const late = await connect(bridge.port)
    expect(await late.read()).toMatch(/^220 /)
    late.close()
  })
})
