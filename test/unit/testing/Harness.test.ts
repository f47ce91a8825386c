import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect, Either } from "effect"
import * as Resolve from "../../../src/config/Resolve.ts"
import { definePlugin, Reply, Verdict } from "../../../src/index.ts"
import { Contexts, Harness, script } from "../../../src/testing.ts"
import * as Replay from "../../../src/testing/Replay.ts"

// A plugin as a user would write one: refuses example.com, tags messages, fails on demand.
const policy = definePlugin({
  name: "policy",
  rcptTo: ({ recipient }) =>
    Effect.succeed(
      recipient.mailbox.domain === "example.com" ? Verdict.reject("No mail for example.com", { code: 550, enhanced: "5.1.2" }) : Verdict.Continue
    ),
  data: ({ addHeader, message }) =>
    Effect.gen(function*() {
      addHeader("X-Policy", `checked ${message.headers.length} fields`)
      return Verdict.Continue
    }),
  helo: ({ name }) => (name === "boom.test" ? Effect.fail("backend down") : Effect.succeed(Verdict.Continue)),
  auth: ({ username, password }) =>
    Effect.succeed(username === "alice" && password === "secret" ? Verdict.accept({ identity: "alice" }) : Verdict.Continue)
})

describe("testing: a session from a C:/S: script", () => {
  it.effect("runs a whole session through the plugins and delivers the message with the data hook's header", () =>
    Effect.gen(function*() {
      const t = yield* script({ plugins: [policy] }, `
        S: 220
        C: EHLO client.test
        S: 250
        C: MAIL FROM:<alice@example.org>
        S: 250 2.1.0 Ok
        C: RCPT TO:<bob@example.com>
        S: 550 5.1.2 No mail for example.com
        C: RCPT TO:<carol@example.net>
        S: 250 2.1.5 Ok
        C: DATA
        S: 354
        C: Subject: hi
        C:
        C: ..a line that starts with a dot
        C: .
        S: 250 2.0.0 Ok: queued as
        C: QUIT
        S: 221
      `)
      expect(t.delivered).toHaveLength(1)
      const [m] = t.delivered
      expect(m!.recipients).toEqual(["carol@example.net"])
      expect(m!.transport).toBe("default")
      expect(m!.header("X-Policy")).toBe("checked 1 fields")
      expect(m!.text).toContain("\r\n\r\n.a line that starts with a dot\r\n")
      expect(t.exchanges.find((e) => e.input === "RCPT TO:<bob@example.com>")?.refusedBy).toBe("policy")
    }))

  it.effect("fails with the transcript when a reply differs from its S: line", () =>
    Effect.gen(function*() {
      const result = yield* Effect.either(script({ plugins: [policy] }, `
        S: 220
        C: EHLO client.test
        S: 250
        C: MAIL FROM:<alice@example.org>
        C: RCPT TO:<bob@example.com>
        S: 250 2.1.0 Ok
        S: 250 2.1.5 Ok
      `))
      expect(Either.isLeft(result)).toBe(true)
      const error = Either.getLeft(result).pipe((o) => o._tag === "Some" ? o.value : undefined)
      expect(error?._tag).toBe("ScriptError")
      expect(error?.message).toMatch(/^line 8: expected S: 250 2.1.5 Ok, got S: 550 5.1.2 No mail for example.com\n/)
      expect(error?.message).toContain("C: RCPT TO:<bob@example.com>\nS: 550 5.1.2 No mail for example.com")
    }))

  it.effect("answers 451 4.3.0 when a hook fails, and the session goes on", () =>
    Effect.gen(function*() {
      const t = yield* script({ plugins: [policy] }, `
        S: 220
        C: EHLO boom.test
        S: 451 4.3.0 Temporary failure, please try again later
        C: EHLO client.test
        S: 250
      `)
      expect(t.replies).toHaveLength(3)
    }))

  it.effect("refuses a line that is not C: or S: with its line number", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(script({ plugins: [] }, "S: 220\nEHLO x"))
      expect(error.message).toBe(`line 2: expected "C: ..." or "S: ...", got "EHLO x"`)
    }))
})

describe("testing: a session driven by calls", () => {
  it.effect("never keeps AUTH credentials in the exchanges", () =>
    Harness.use({ plugins: [policy] }, (harness) =>
      Effect.gen(function*() {
        const s = yield* harness.open()
        expect(yield* s.send("EHLO client.test")).toMatch(/^250 /)
        expect(yield* s.send("AUTH PLAIN AGFsaWNlAHNlY3JldA==")).toBe("235 2.7.0 Authentication successful")
        expect(yield* s.send("AUTH LOGIN")).toBe("503 5.5.1 Already authenticated")
        expect(s.info().user).toBe("alice")
        const s2 = yield* harness.open()
        yield* s2.send("EHLO client.test")
        expect(yield* s2.send("AUTH LOGIN")).toBe("334 VXNlcm5hbWU6")
        yield* s2.send("YWxpY2U=")
        expect(yield* s2.send("d3Jvbmc=")).toBe("535 5.7.8 Authentication credentials invalid")
        const inputs = [...s.exchanges, ...s2.exchanges].map((e) => e.input)
        expect(inputs).toEqual(["(connect)", "EHLO client.test", "AUTH PLAIN *", "AUTH LOGIN", "(connect)", "EHLO client.test", "AUTH LOGIN", "*", "*"])
      })))

  it.effect("sends a message with s.message (dot-stuffed for you) and gives the final reply", () =>
    Harness.use({ plugins: [policy] }, (harness) =>
      Effect.gen(function*() {
        const s = yield* harness.open()
        yield* s.send("EHLO client.test")
        yield* s.send("MAIL FROM:<alice@example.org>")
        yield* s.send("RCPT TO:<bob@example.net>")
        expect(yield* s.send("DATA")).toMatch(/^354 /)
        expect(yield* s.message("Subject: x\n\n.hidden\nend")).toMatch(/^250 2.0.0 Ok: queued as /)
        yield* s.end
        expect(harness.delivered[0]!.text).toMatch(/^X-Policy: checked 1 fields\r\nSubject: x\r\n\r\n\.hidden\r\nend\r\n$/)
      })))

  it.effect("follows a config: the bridge's relay policy, its routes to named transports, and transport failures", () =>
    Harness.use({
      config: {
        hostname: "mx.config.test",
        trust: ["192.0.2.0/24"],
        transports: { archive: { type: "maildir", dir: "/nonexistent" } },
        routes: [{ recipientDomain: ["archive.test"], transport: "archive" }]
      },
    }, (harness) =>
      Effect.gen(function*() {
        const stranger = yield* harness.open({ remoteAddress: "198.51.100.7" })
        expect(stranger.exchanges[0]!.replies[0]!.lines[0]).toBe("mx.config.test ESMTP smtp-bridge")
        yield* stranger.send("EHLO client.test")
        expect(yield* stranger.send("MAIL FROM:<a@example.org>")).toBe("530 5.7.0 Authentication required")
        const s = yield* harness.open({ remoteAddress: "192.0.2.55" })
        yield* s.send("EHLO client.test")
        yield* s.send("MAIL FROM:<a@example.org>")
        expect(yield* s.send("RCPT TO:<x@archive.test>")).toBe("250 2.1.5 Ok")
        yield* s.send("RCPT TO:<y@example.net>")
        yield* s.send("DATA")
        expect(yield* s.message("Subject: routed\r\n\r\nhi\r\n")).toMatch(/^250 /)
        expect(harness.delivered.map((d) => [d.transport, d.recipients])).toEqual([["archive", ["x@archive.test"]], ["default", ["y@example.net"]]])
        // The config's own plugins ran: the Received header is on top.
        expect(harness.delivered[0]!.text).toMatch(/^Received: from client\.test/)
      })))
})

  it.effect("gives the client the transports' answer: 451 when the upstream is busy for every recipient", () =>
    Harness.use({ plugins: [], answer: () => Reply.make(451, "4.4.1", "upstream busy") }, (harness) =>
      Effect.gen(function*() {
        const s = yield* harness.open()
        for (const line of ["EHLO client.test", "MAIL FROM:<a@example.org>", "RCPT TO:<b@example.net>", "DATA"]) yield* s.send(line)
        expect(yield* s.message("Subject: x\r\n\r\nhi\r\n")).toBe("451 4.4.1 upstream busy")
        expect(harness.delivered).toHaveLength(1)
      })))

describe("testing: contexts in one line", () => {
  it("builds each hook's context from addresses", () => {
    const ctx = Contexts.rcptTo("bob@example.com", { session: { user: "alice" }, transaction: { mailFrom: null } })
    expect(ctx.recipient.mailbox).toEqual({ local: "bob", domain: "example.com", address: "bob@example.com" })
    expect(ctx.session.user).toBe("alice")
    expect(ctx.transaction.mailFrom).toBeNull()
    const data = Contexts.data("From: a@example.org\nSubject: hi\n\nbody\n")
    expect(data.message.headers.map((h) => h.name)).toEqual(["From", "Subject"])
    data.addHeader("X-Seen", "yes")
    expect(data.added).toEqual([{ name: "X-Seen", value: "yes" }])
    expect(Contexts.mailFrom(null).from).toBeNull()
  })
})

describe("replay: reading captures", () => {
  it("refuses a file that is no capture, of another version, or with an input of several lines", () => {
    const capture = { format: "smtp-bridge-capture", version: 1, client: {}, auth: [], messages: [], exchanges: [{ input: "NOOP", replies: [] }] }
    expect(Replay.problemOf(capture)).toBeUndefined()
    expect(Replay.problemOf({ ...capture, version: 2 })).toBe("capture format version 2; this replay reads version 1")
    expect(Replay.problemOf({ hello: 1 })).toBe("not an smtp-bridge capture")
    expect(Replay.problemOf({ ...capture, exchanges: [{ input: "NOOP\r\nRCPT TO:<x@y>", replies: [] }] })).toBe("exchange 0 is not one line with its replies")
  })
})

describe("replay: the capture's clock", () => {
  // A rule that depends on the time: replayed at the capture's time it decides as it did then.
  const only2025 = definePlugin({
    name: "only-2025",
    mailFrom: () =>
      Effect.map(Clock.currentTimeMillis, (ms) => (new Date(ms).getUTCFullYear() === 2025 ? Verdict.Continue : Verdict.reject("Not in 2025", { code: 550, enhanced: "5.7.1" })))
  })
  const startMs = Date.UTC(2025, 5, 1, 3, 0, 0)
  const capture = {
    format: "smtp-bridge-capture", version: 1, session: "C1", start: new Date(startMs).toISOString(), startMs,
    client: { remoteAddress: "192.0.2.10", remotePort: 40000, localAddress: "192.0.2.1", localPort: 25 },
    hostname: "mx.clock.test", tls: [], auth: [], messages: [], outcome: "quit",
    exchanges: [
      { at: 0, input: "(connect)", replies: ["220 mx.clock.test ESMTP smtp-bridge"], ms: 0 },
      { at: 5, input: "HELO client.test", replies: ["250 mx.clock.test"], ms: 0 },
      { at: 9, input: "MAIL FROM:<a@example.org>", replies: ["250 2.1.0 Ok"], ms: 0 },
      { at: 12, input: "QUIT", replies: ["221 2.0.0 mx.clock.test closing connection"], ms: 0 }
    ]
  }

  it.live("answers Clock with the capture's time of each input, so a time rule replays unchanged", () =>
    Effect.gen(function*() {
      const config = yield* Resolve.resolve({ hostname: "mx.clock.test", trust: ["192.0.2.0/24"], plugins: [only2025] }, "test")
      const report = yield* Effect.scoped(Replay.run(config, [{ file: "c1.json", content: capture }]))
      expect(report.changed).toBe(0)
      // The same session at today's time is refused: the clock, not luck, made the difference.
      const now = yield* Effect.scoped(Replay.run(config, [{ file: "c1.json", content: { ...capture, startMs: Date.UTC(2031, 0, 1) } }]))
      expect(now.sessions[0]!.differences.map((d) => [d.input, d.new, d.newBy])).toEqual([["MAIL FROM:<a@example.org>", ["550 5.7.1 Not in 2025"], "only-2025"]])
    }))
})
