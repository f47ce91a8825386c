// Routing by recipient (issue 3, plugins/routing): one message whose recipients map to several
// transports is delivered once through each, one upstream transaction per transport, and the
// client gets one reply that reflects the combined result.
//
//   transports: sink = smtp-sink over SMTP, archive = a second Maildir; default = the bridge's Maildir
//   routes: corp.example -> sink, *@archive.example -> archive
//
//   C: MAIL FROM:<alice@example.org>
//   C: RCPT TO:<a@corp.example> / RCPT TO:<b@else.example> / RCPT TO:<c@archive.example>
//   C: DATA ... .
//   S: 250 2.0.0 Ok: queued as ...
//   (smtp-sink: one message, RCPT a@corp.example only; Maildir: b@else.example; archive: c@archive.example)
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { maildirMessages, startBridge, type TestBridge } from "../support/bridge.ts"
import { dumpedEnvelope, dumpedMessage, type Sink, startSink } from "../support/sink.ts"
import { connect } from "../support/SmtpClient.ts"

/** C: one transaction to the bridge with `recipients`; returns the reply to the final dot. */
const send = async (port: number, recipients: ReadonlyArray<string>, subject: string): Promise<string> => {
  const c = await connect(port)
  try {
    expect(await c.read()).toMatch(/^220 /)
    await c.command("EHLO client.test")
    expect(await c.command("MAIL FROM:<alice@example.org>")).toBe("250 2.1.0 Ok")
    for (const r of recipients) expect(await c.command(`RCPT TO:<${r}>`)).toBe("250 2.1.5 Ok")
    expect(await c.command("DATA")).toMatch(/^354 /)
    const reply = await c.command(`Subject: ${subject}\r\n\r\nhello\r\n.`)
    await c.command("QUIT")
    return reply
  } finally {
    c.close()
  }
}

const isDsn = (message: string): boolean => message.includes("report-type=delivery-status")

/** The copies of the message with this subject (a DSN quoting its headers is not one). */
const withSubject = (messages: ReadonlyArray<string>, subject: string) =>
  messages.filter((m) => !isDsn(m) && m.includes(`\r\nSubject: ${subject}\r\n`))

const deliveredTo = (message: string): ReadonlyArray<string> => [...message.matchAll(/^Delivered-To: (.*)\r$/gm)].map((m) => m[1]!)

describe("routing by recipient domain to smtp-sink, an archive Maildir and the default Maildir", () => {
  let sink: Sink
  let bridge: TestBridge
  let archive: string
  beforeAll(async () => {
    sink = await startSink()
    archive = fs.mkdtempSync(path.join(os.tmpdir(), "sb-archive-"))
    bridge = await startBridge({
      trust: ["127.0.0.1/32"],
      transports: {
        sink: { type: "smtp", url: `smtp://127.0.0.1:${sink.port}` },
        archive: { type: "maildir", dir: archive }
      },
      routes: [
        { recipientDomain: ["corp.example"], transport: "sink" },
        { recipient: "*@archive.example", transport: "archive" }
      ]
    })
  })
  afterAll(async () => {
    await bridge?.stop()
    await sink?.stop()
    fs.rmSync(archive, { recursive: true, force: true })
  })

  it("a@corp.example and b@else.example: S: one 250; the sink gets RCPT a@corp.example only, the Maildir b@else.example", async () => {
    const reply = await send(bridge.port, ["a@corp.example", "b@else.example"], "split two")
    expect(reply).toMatch(/^250 2\.0\.0 Ok: queued as \S+$/)
    await sink.waitFor((c) => c.messages >= 1)
    const dumps = sink.messages().filter((d) => dumpedMessage(d).includes("Subject: split two"))
    expect(dumps).toHaveLength(1)
    expect(dumpedEnvelope(dumps[0]!).rcpts).toEqual(["<a@corp.example>"])
    const local = withSubject(bridge.delivered().map((b) => b.toString("utf8")), "split two")
    expect(local).toHaveLength(1)
    expect(deliveredTo(local[0]!)).toEqual(["b@else.example"])
    expect(withSubject(maildirMessages(archive), "split two")).toHaveLength(0)
  })

  it("three recipients for three transports: S: one 250; each transport delivers its recipient once", async () => {
    const before = sink.counters().messages
    const reply = await send(bridge.port, ["a@corp.example", "b@else.example", "c@archive.example"], "split three")
    expect(reply).toMatch(/^250 2\.0\.0 Ok: queued as \S+$/)
    await sink.waitFor((c) => c.messages >= before + 1)
    const dumps = sink.messages().filter((d) => dumpedMessage(d).includes("Subject: split three"))
    expect(dumps.map((d) => dumpedEnvelope(d).rcpts)).toEqual([["<a@corp.example>"]])
    const local = withSubject(bridge.delivered().map((b) => b.toString("utf8")), "split three")
    expect(local.map(deliveredTo)).toEqual([["b@else.example"]])
    const archived = withSubject(maildirMessages(archive), "split three")
    expect(archived.map(deliveredTo)).toEqual([["c@archive.example"]])
  })

  it("two recipients in corp.example go to the sink in one transaction with both RCPTs", async () => {
    const before = sink.counters().messages
    expect(await send(bridge.port, ["a@corp.example", "z@corp.example"], "one transaction")).toMatch(/^250 2\.0\.0 /)
    await sink.waitFor((c) => c.messages >= before + 1)
    const dumps = sink.messages().filter((d) => dumpedMessage(d).includes("Subject: one transaction"))
    expect(dumps.map((d) => dumpedEnvelope(d).rcpts)).toEqual([["<a@corp.example>", "<z@corp.example>"]])
    expect(withSubject(bridge.delivered().map((b) => b.toString("utf8")), "one transaction")).toHaveLength(0)
  })
})

describe("routing with the sink route down (no spool): a partial delivery", () => {
  let bridge: TestBridge
  beforeAll(async () => {
    // Nothing listens on port 1 (tests only bind port 0): the sink transport is unreachable.
    const down = 1
    bridge = await startBridge({
      trust: ["127.0.0.1/32"],
      transports: { sink: { type: "smtp", url: `smtp://127.0.0.1:${down}`, timeouts: { connect: "2 seconds" } } },
      routes: [{ recipientDomain: ["corp.example"], transport: "sink" }]
    })
  })
  afterAll(() => bridge?.stop())

  it("S: 250 (1 of 2 recipients delivered; the others are reported to the sender); the sender gets a DSN for a@corp.example", async () => {
    const reply = await send(bridge.port, ["a@corp.example", "b@else.example"], "sink down")
    expect(reply).toMatch(/^250 2\.0\.0 Ok: queued as \S+ \(1 of 2 recipients delivered; the others are reported to the sender\)$/)
    const local = bridge.delivered().map((b) => b.toString("utf8"))
    // b@else.example got the message once.
    const copies = withSubject(local, "sink down")
    expect(copies.map(deliveredTo)).toEqual([["b@else.example"]])
    // The DSN went to the sender through the default transport (this Maildir), from the null sender.
    const dsns = local.filter(isDsn)
    expect(dsns).toHaveLength(1)
    const dsn = dsns[0]!
    expect(dsn).toMatch(/^Return-Path: <>\r$/m)
    expect(deliveredTo(dsn)).toEqual(["alice@example.org"])
    expect(dsn).toMatch(/^Content-Type: multipart\/report; report-type=delivery-status;/m)
    expect(dsn).toMatch(/^Final-Recipient: rfc822; a@corp\.example\r$/m)
    expect(dsn).toMatch(/^Action: failed\r$/m)
    expect(dsn).toMatch(/^Status: 4\.4\.1\r$/m)
    expect(dsn).not.toMatch(/^Final-Recipient: rfc822; b@else\.example/m)
    // The original headers come back to the sender.
    expect(dsn).toMatch(/^Subject: sink down\r$/m)
  })

  it("both recipients in the down route: S: 451 4.4.1 (retry later), nothing delivered and no DSN", async () => {
    const before = bridge.delivered().length
    const reply = await send(bridge.port, ["a@corp.example", "z@corp.example"], "all down")
    expect(reply).toMatch(/^451 4\.4\.1 /)
    expect(bridge.delivered()).toHaveLength(before)
  })
})
