import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Stream } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import type { Mailbox } from "../../../src/protocol/Envelope.ts"
import * as Reply from "../../../src/protocol/Reply.ts"
import * as Deliver from "../../../src/transport/Deliver.ts"
import * as Dsn from "../../../src/transport/Dsn.ts"
import * as Spool from "../../../src/transport/Spool.ts"
import { type Transport, TransportError } from "../../../src/transport/Transport.ts"
import { entry, eventually, later, ok, recipient, scripted, tempDir, unknownUser } from "./SpoolFixtures.ts"

const encoder = new TextEncoder()
const mailbox = (address: string): Mailbox => {
  const at = address.lastIndexOf("@")
  return { local: address.slice(0, at), domain: address.slice(at + 1), address }
}

const outgoing: Deliver.Outgoing = {
  id: "M1",
  mailFrom: mailbox("alice@example.com"),
  mailParams: { raw: {} },
  session: { id: "S1", remoteAddress: "127.0.0.1", hostname: "bridge.test" } as Deliver.Outgoing["session"],
  size: 3,
  content: () => Stream.succeed(encoder.encode("hi\r\n"))
}

const error = (reason: TransportError["reason"], reply?: Reply.Reply) =>
  new TransportError({ transport: "relay", reason, message: "relay: cannot connect to 10.0.0.9:25: ECONNREFUSED", reply })

describe("Deliver.replyOf: the one TransportError -> reply table", () => {
  it("keeps an upstream 5xx with its enhanced code: 550 5.1.1 relay: User unknown", () => {
    expect(Deliver.replyOf(error("Rejected", Reply.make(550, "5.1.1", "User unknown")))).toEqual(Reply.make(550, "5.1.1", "relay: User unknown"))
  })

  it("gives an upstream reply without an enhanced code its class: 554 5.0.0, 452 4.0.0", () => {
    expect(Deliver.replyOf(error("Rejected", { code: 554, enhanced: undefined, lines: ["no", "way"] }))).toEqual(Reply.make(554, "5.0.0", "relay: no way"))
    expect(Deliver.replyOf(error("Rejected", { code: 452, enhanced: undefined, lines: ["full"] }))).toEqual(Reply.make(452, "4.0.0", "relay: full"))
  })

  it("maps each reason without an upstream reply to a 4xx with the cause, never to a bounce", () => {
    const table = (["Unreachable", "Timeout", "Storage", "Protocol", "Rejected"] as const).map((reason) => Reply.format(Deliver.replyOf(error(reason))).trim())
    const cause = "relay: cannot connect to 10.0.0.9:25: ECONNREFUSED"
    expect(table).toEqual([`451 4.4.1 ${cause}`, `451 4.4.2 ${cause}`, `451 4.3.0 ${cause}`, `451 4.4.0 ${cause}`, `451 4.4.0 ${cause}`])
  })

  it("names the transport once, whether or not the error's message starts with it", () => {
    const bare = new TransportError({ transport: "hook", reason: "Timeout", message: "no answer within 30 s" })
    expect(Reply.format(Deliver.replyOf(bare)).trim()).toBe("451 4.4.2 hook: no answer within 30 s")
  })

  it("ignores an upstream reply that is not a failure (a 250 then a broken connection): 451 4.4.1", () => {
    expect(Deliver.replyOf(error("Unreachable", ok)).code).toBe(451)
  })
})

describe("Deliver.combine: the client's reply in pass-through", () => {
  const result = (address: string, reply: Reply.Reply) => ({ recipient: recipient(address), transport: "relay", reply })

  it("all delivered: 250 2.0.0 Ok: queued as <id>", () => {
    expect(Deliver.combine("M1", [result("a@x.example", ok), result("b@x.example", ok)])).toEqual(Reply.make(250, "2.0.0", "Ok: queued as M1"))
  })

  it("some delivered: partial (the caller answers 250 and hands the others on)", () => {
    expect(Deliver.combine("M1", [result("a@x.example", ok), result("b@x.example", unknownUser)])).toBe("partial")
  })

  it("none delivered, one temporary: the 4xx, so that the client retries", () => {
    expect(Deliver.combine("M1", [result("a@x.example", unknownUser), result("b@x.example", later)])).toBe(later)
  })

  it("none delivered, all permanent: the first 5xx", () => {
    expect(Deliver.combine("M1", [result("a@x.example", unknownUser), result("b@x.example", Reply.make(550, "5.7.1", "no"))])).toBe(unknownUser)
  })
})

describe("Deliver.fanOut", () => {
  it.effect("offers every group at once and answers each recipient in plan order, matched by address", () =>
    Effect.gen(function*() {
      const both = yield* Deferred.make<void>()
      let started = 0
      // Each transport waits until both were called: a sequential fan-out would never finish.
      const waiting = (name: string, answer: (address: string) => Reply.Reply): Transport => ({
        name,
        deliver: (message) =>
          Effect.gen(function*() {
            if (++started === 2) yield* Deferred.succeed(both, undefined)
            yield* Deferred.await(both)
            return { recipients: [...message.envelope.recipients].reverse().map((r) => ({ recipient: r, reply: answer(r.mailbox.address) })) }
          })
      })
      const transports = new Map([
        ["a", waiting("a", (x) => (x === "two@a.example" ? unknownUser : ok))],
        ["b", waiting("b", () => ok)]
      ])
      const results = yield* Deliver.fanOut(transports, [
        { transport: "a", recipients: [recipient("one@a.example"), recipient("two@a.example")] },
        { transport: "b", recipients: [recipient("three@b.example")] }
      ], outgoing).pipe(Effect.timeout("5 seconds"))
      expect(results.map((r) => [r.transport, r.recipient.mailbox.address, r.reply.code])).toEqual([
        ["a", "one@a.example", 250],
        ["a", "two@a.example", 550],
        ["b", "three@b.example", 250]
      ])
    }))

  it.effect("never fails: a TransportError, a missing answer and an unknown transport become 4xx replies", () =>
    Effect.gen(function*() {
      const transports = new Map<string, Transport>([
        ["down", { name: "down", deliver: () => Effect.fail(error("Unreachable")) }],
        ["mute", { name: "mute", deliver: () => Effect.succeed({ recipients: [] }) }]
      ])
      const results = yield* Deliver.fanOut(transports, [
        { transport: "down", recipients: [recipient("a@x.example")] },
        { transport: "mute", recipients: [recipient("b@x.example")] },
        { transport: "gone", recipients: [recipient("c@x.example")] }
      ], outgoing)
      expect(results.map((r) => Reply.format(r.reply).trim())).toEqual([
        "451 4.4.1 relay: cannot connect to 10.0.0.9:25: ECONNREFUSED",
        "451 4.4.0 mute: no reply for this recipient",
        "451 4.3.5 gone: transport is not configured"
      ])
    }))
})

describe("Dsn.failureNotice: the DSN of both paths", () => {
  const original = (from: string | null, options: { readonly ret?: "FULL"; readonly bytes?: string; readonly envid?: string } = {}) => {
    const bytes = encoder.encode(options.bytes ?? "Subject: hi\r\n\r\nhello\r\n")
    return {
      mailFrom: from === null ? null : mailbox(from),
      mailParams: { raw: {}, ...(options.ret === undefined ? {} : { ret: options.ret }), ...(options.envid === undefined ? {} : { envid: options.envid }) },
      arrivalDate: new Date(),
      size: bytes.byteLength,
      headers: Effect.succeed("Subject: hi\r\n"),
      content: () => Stream.succeed(bytes)
    }
  }
  const failed = (address: string, notify?: ReadonlyArray<"NEVER" | "SUCCESS" | "FAILURE" | "DELAY">) => ({
    recipient: recipient(address, notify === undefined ? {} : { notify }),
    reply: unknownUser
  })

  it.effect("is sent MAIL FROM:<> to the sender, with no BODY or SMTPUTF8 when it is ASCII", () =>
    Effect.gen(function*() {
      const notice = (yield* Dsn.failureNotice("mx.bridge.test", original("alice@example.com"), [failed("bob@example.org")]))!
      expect(notice.envelope).toEqual({
        mailFrom: null,
        mailParams: { raw: {} },
        recipients: [{ mailbox: mailbox("alice@example.com"), params: { raw: {} } }]
      })
    }))

  it.effect("says BODY=8BITMIME when it returns an 8-bit original (RET=FULL)", () =>
    Effect.gen(function*() {
      const notice = (yield* Dsn.failureNotice("mx.bridge.test", original("alice@example.com", { ret: "FULL", bytes: "Subject: café\r\n\r\nÇa\r\n" }), [failed("bob@example.org")]))!
      expect(notice.envelope.mailParams).toEqual({ raw: {}, body: "8BITMIME" })
      expect(new TextDecoder().decode(notice.bytes)).toContain("\r\n\r\nSubject: café\r\n\r\nÇa\r\n")
    }))

  it.effect("returns only the headers of an original over Dsn.maxReturnedBytes, whatever RET says, without reading it", () =>
    Effect.gen(function*() {
      const big = { ...original("alice@example.com", { ret: "FULL" }), size: Dsn.maxReturnedBytes + 1, content: () => Stream.die("read") }
      const notice = (yield* Dsn.failureNotice("mx.bridge.test", big, [failed("bob@example.org")]))!
      const text = new TextDecoder().decode(notice.bytes)
      expect(text).toContain("Content-Type: text/rfc822-headers\r\n\r\nSubject: hi\r\n")
      expect(text).not.toContain("hello")
    }))

  it.effect("says SMTPUTF8 when the sender's address is not ASCII", () =>
    Effect.gen(function*() {
      const notice = (yield* Dsn.failureNotice("mx.bridge.test", original("josé@example.com"), [failed("bob@example.org")]))!
      expect(notice.envelope.mailParams.smtputf8).toBe(true)
    }))

  it.effect("quotes ENVID and marks an expiry 4.4.7", () =>
    Effect.gen(function*() {
      const notice = (yield* Dsn.failureNotice("mx.bridge.test", original("alice@example.com", { envid: "env+2D1" }), [
        { recipient: recipient("bob@example.org"), reply: later, expired: true }
      ]))!
      const text = new TextDecoder().decode(notice.bytes)
      expect(text).toContain("\r\nOriginal-Envelope-Id: env-1\r\n")
      expect(text).toContain("\r\nStatus: 4.4.7\r\n")
    }))

  it.effect("is not due for the null sender, nor for recipients with NOTIFY=NEVER or without FAILURE", () =>
    Effect.gen(function*() {
      expect(yield* Dsn.failureNotice("mx.bridge.test", original(null), [failed("bob@example.org")])).toBeUndefined()
      expect(yield* Dsn.failureNotice("mx.bridge.test", original("alice@example.com"), [failed("a@x.example", ["NEVER"]), failed("b@x.example", ["SUCCESS", "DELAY"])])).toBeUndefined()
      const some = (yield* Dsn.failureNotice("mx.bridge.test", original("alice@example.com"), [failed("a@x.example", ["NEVER"]), failed("b@x.example", ["FAILURE"])]))!
      expect(some.recipients.map((r) => r.mailbox.address)).toEqual(["b@x.example"])
    }))

  it.scopedLive("the spool sends its DSN with the same parameters: BODY=8BITMIME and SMTPUTF8 for josé's 8-bit RET=FULL message", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const relay = scripted("relay", () => unknownUser)
      const bounce = scripted("default")
      const spool = yield* Spool.make({
        dir, hostname: "mx.bridge.test", retry: { initialDelay: "40 millis", maxDelay: "200 millis", maxAge: "1 hour" },
        transports: new Map([["relay", relay.transport], ["default", bounce.transport]])
      })
      const bytes = encoder.encode("Subject: café\r\n\r\nÇa\r\n")
      yield* spool.enqueue({
        ...entry([{ transport: "relay", recipients: [recipient("bob@example.org")] }], { from: "josé@example.com", ret: "FULL" }),
        size: bytes.byteLength,
        content: () => Stream.succeed(bytes)
      })
      yield* eventually(Effect.sync(() => bounce.calls.length), (n) => n === 1)
      const sent = bounce.calls[0]!.message.envelope
      expect(sent.mailFrom).toBeNull()
      expect(sent.mailParams).toEqual({ raw: {}, body: "8BITMIME", smtputf8: true })
      expect(sent.recipients.map((r) => r.mailbox.address)).toEqual(["josé@example.com"])
    }))
})

describe("one delivery path (issue 12): no module but Deliver fans out, and none but Dsn builds a DSN", () => {
  const root = path.join(import.meta.dirname, "../../../src")
  const sources = (fs.readdirSync(root, { recursive: true }) as Array<string>)
    .filter((f) => f.endsWith(".ts"))
    .map((f) => ({ file: f.split(path.sep).join("/"), text: fs.readFileSync(path.join(root, f), "utf8") }))
  // The module that defines a function may name it in its own doc example.
  const using = (pattern: RegExp, definedIn: string) =>
    sources.filter((s) => s.file !== definedIn && pattern.test(s.text)).map((s) => s.file).sort()

  it("only transport/Deliver.ts calls AttemptLog.deliver (the fan-out) and maps a TransportError's reason", () => {
    expect(using(/AttemptLog\.deliver\(/, "transport/AttemptLog.ts")).toEqual(["transport/Deliver.ts"])
    expect(using(/case "Unreachable"|replyOfError|transportReply/, "")).toEqual(["transport/Deliver.ts"])
  })

  it("only transport/Dsn.ts builds a DSN; pass-through and the spool both call Dsn.failureNotice", () => {
    expect(using(/Dsn\.build\(|\{ build \}|mailFrom: null,\s*mailParams/, "transport/Dsn.ts")).toEqual([])
    expect(using(/Dsn\.failureNotice\(/, "transport/Dsn.ts")).toEqual(["server/Delivery.ts", "transport/spool/Attempt.ts"])
  })
})
