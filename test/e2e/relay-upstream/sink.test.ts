// The SMTP relay transport against Postfix's smtp-sink on loopback: delivery, pooling, the
// upstream's refusals at each stage, and the envelope and content as the sink received them.
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import * as SmtpRelay from "../../../src/transport/smtp/SmtpRelay.ts"
import * as Url from "../../../src/transport/smtp/Url.ts"
import type { TransportError } from "../../../src/transport/Transport.ts"
import { dumpedEnvelope, dumpedMessage, outgoing, type SinkOptions, startSink } from "../../support/sink.ts"

const sink = (options: SinkOptions = {}) =>
  Effect.acquireRelease(Effect.promise(() => startSink(options)), (s) => Effect.promise(() => s.stop()))

const relay = (port: number, options: Omit<SmtpRelay.Options, "target"> = {}) =>
  SmtpRelay.make({ target: Either.getOrThrow(Url.parse(`smtp://127.0.0.1:${port}`)), name: "relay", helo: "bridge.test", ...options })

const failure = <A>(effect: Effect.Effect<A, TransportError>) =>
  Effect.flatMap(Effect.either(effect), (e) => (Either.isLeft(e) ? Effect.succeed(e.left) : Effect.die(`expected a failure, got ${JSON.stringify(e.right)}`)))

const text = "Subject: hello\r\n\r\nline one\r\n"

describe("relay to smtp-sink", () => {
  it.scopedLive("relays one message to two recipients: both get the sink's 250 2.0.0", () =>
    Effect.gen(function*() {
      const s = yield* sink()
      const transport = yield* relay(s.port)
      const report = yield* transport.deliver(outgoing([text], { to: ["bob@example.net", "carol@example.net"] }))
      expect(report.recipients.map((r) => [r.recipient.mailbox.address, r.reply.code, r.reply.enhanced])).toEqual([
        ["bob@example.net", 250, "2.0.0"],
        ["carol@example.net", 250, "2.0.0"]
      ])
      const dumps = s.messages()
      expect(dumps).toHaveLength(1)
      expect(dumpedEnvelope(dumps[0]!)).toEqual({ mail: "<alice@example.org>", rcpts: ["<bob@example.net>", "<carol@example.net>"] })
      expect(dumpedMessage(dumps[0]!)).toBe("Subject: hello\n\nline one\n\n")
    }))

  it.scopedLive("reuses one pooled connection for two messages (RSET between), and QUITs when closed", () =>
    Effect.gen(function*() {
      const s = yield* sink()
      yield* Effect.scoped(Effect.gen(function*() {
        const transport = yield* relay(s.port, { pool: { max: 1 } })
        yield* transport.deliver(outgoing([text], { id: "A" }))
        yield* transport.deliver(outgoing([text], { id: "B" }))
        yield* Effect.promise(() => s.waitFor((c) => c.messages === 2))
        expect(s.counters().sessions).toBe(0)
      }))
      const counters = yield* Effect.promise(() => s.waitFor((c) => c.sessions === 1))
      expect(counters).toEqual({ sessions: 1, quits: 1, messages: 2 })
    }))

  it.scopedLive("sends DSN parameters (RET, ENVID, NOTIFY, ORCPT) and BODY=8BITMIME to an upstream that offers them", () =>
    Effect.gen(function*() {
      const s = yield* sink()
      const transport = yield* relay(s.port)
      yield* transport.deliver(outgoing([text], {
        mailParams: { body: "8BITMIME", ret: "HDRS", envid: "QQ+2B1" },
        rcptParams: { notify: ["SUCCESS", "FAILURE"], orcpt: "rfc822;bob@example.net" }
      }))
      expect(dumpedEnvelope(s.messages()[0]!)).toEqual({
        mail: "<alice@example.org> BODY=8BITMIME RET=HDRS ENVID=QQ+2B1",
        rcpts: ["<bob@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.net"]
      })
    }))

  it.scopedLive("drops DSN parameters for an upstream without DSN (RFC 3461 section 4) and still delivers", () =>
    Effect.gen(function*() {
      const s = yield* sink({ noDsn: true })
      const transport = yield* relay(s.port)
      const report = yield* transport.deliver(outgoing([text], { mailParams: { ret: "FULL" }, rcptParams: { notify: ["NEVER"] } }))
      expect(report.recipients[0]!.reply.code).toBe(250)
      expect(dumpedEnvelope(s.messages()[0]!)).toEqual({ mail: "<alice@example.org>", rcpts: ["<bob@example.net>"] })
    }))

  it.scopedLive("refuses BODY=8BITMIME to a 7-bit upstream with 554 5.6.3, sending nothing", () =>
    Effect.gen(function*() {
      const s = yield* sink({ no8BitMime: true })
      const transport = yield* relay(s.port)
      const error = yield* failure(transport.deliver(outgoing([text], { mailParams: { body: "8BITMIME" } })))
      expect(error.reply).toMatchObject({ code: 554, enhanced: "5.6.3" })
      expect(s.messages()).toHaveLength(0)
    }))

  it.scopedLive("refuses SMTPUTF8 to an upstream without it: 553 5.6.7 for a non-ASCII address", () =>
    Effect.gen(function*() {
      const s = yield* sink()
      const transport = yield* relay(s.port)
      const error = yield* failure(transport.deliver(outgoing([text], { to: ["jörg@example.net"], mailParams: { smtputf8: true } })))
      expect(error.reply).toMatchObject({ code: 553, enhanced: "5.6.7" })
    }))

  it.scopedLive("refuses REQUIRETLS over a plain connection with 550 5.7.30", () =>
    Effect.gen(function*() {
      const s = yield* sink()
      const transport = yield* relay(s.port)
      const error = yield* failure(transport.deliver(outgoing([text], { mailParams: { requireTls: true } })))
      expect(error.reply).toMatchObject({ code: 550, enhanced: "5.7.30" })
    }))

  it.scopedLive("delivers lines that start with a dot exactly as sent, whatever the chunking", () =>
    Effect.gen(function*() {
      const s = yield* sink()
      const transport = yield* relay(s.port)
      const chunks = ["Subject: dots\r\n\r\n.one\r\n", "..two\r", "\n.", "\r\nmid.dle\r\n", ".", "three"]
      yield* transport.deliver(outgoing(chunks))
      expect(dumpedMessage(s.messages()[0]!)).toBe("Subject: dots\n\n.one\n..two\n.\nmid.dle\n.three\n\n")
    }))
})

describe("upstream refusals from smtp-sink", () => {
  const cases: ReadonlyArray<{ stage: string; options: SinkOptions; code: number }> = [
    { stage: "MAIL", options: { reject: { soft: ["MAIL"] } }, code: 450 },
    { stage: "MAIL", options: { reject: { hard: ["MAIL"] } }, code: 500 },
    { stage: "DATA", options: { reject: { soft: ["DATA"] } }, code: 450 },
    { stage: "DATA", options: { reject: { hard: ["DATA"] } }, code: 500 },
    { stage: ".", options: { reject: { soft: ["."] } }, code: 450 },
    { stage: ".", options: { reject: { hard: ["."] } }, code: 500 }
  ]
  for (const { stage, options, code } of cases) {
    it.scopedLive(`fails with the upstream's ${code} when it refuses ${stage}, never reporting success`, () =>
      Effect.gen(function*() {
        const s = yield* sink(options)
        const transport = yield* relay(s.port)
        const error = yield* failure(transport.deliver(outgoing([text])))
        expect(error).toMatchObject({ _tag: "TransportError", reason: "Rejected", transport: "relay" })
        expect(error.reply).toMatchObject({ code, enhanced: `${Math.floor(code / 100)}.3.0` })
      }))
  }

  for (const [kind, code] of [["soft", 450], ["hard", 500]] as const) {
    it.scopedLive(`gives each recipient the upstream's ${code} when it refuses RCPT`, () =>
      Effect.gen(function*() {
        const s = yield* sink({ reject: { [kind]: ["RCPT"] } })
        const transport = yield* relay(s.port)
        const report = yield* transport.deliver(outgoing([text], { to: ["bob@example.net", "carol@example.net"] }))
        expect(report.recipients.map((r) => r.reply.code)).toEqual([code, code])
        expect(s.messages().filter((m) => dumpedMessage(m).includes("line one"))).toHaveLength(0)
      }))
  }

  it.scopedLive("fails (never succeeds) when the upstream drops the connection after the final dot", () =>
    Effect.gen(function*() {
      const s = yield* sink({ disconnect: ["."] })
      const transport = yield* relay(s.port)
      const error = yield* failure(transport.deliver(outgoing([text])))
      expect(error.reason).toBe("Unreachable")
      expect(error.message).toContain("end of data")
    }))

  it.scopedLive("recovers after a failure: the broken session is discarded and the next message gets a new one", () =>
    Effect.gen(function*() {
      const s = yield* sink({ disconnect: ["."] })
      const transport = yield* relay(s.port, { pool: { max: 1 } })
      yield* failure(transport.deliver(outgoing([text])))
      const again = yield* failure(transport.deliver(outgoing([text])))
      // A second connection was made (the first is gone), and it failed the same honest way.
      expect(again.reason).toBe("Unreachable")
    }))
})
