import { describe, expect, it } from "@effect/vitest"
import type { Mailbox, Recipient } from "../../../src/protocol/Envelope.ts"
import * as Reply from "../../../src/protocol/Reply.ts"
import * as Dsn from "../../../src/transport/Dsn.ts"

const decoder = new TextDecoder()
const encoder = new TextEncoder()

const mailbox = (address: string): Mailbox => {
  const at = address.lastIndexOf("@")
  return { local: address.slice(0, at), domain: address.slice(at + 1), address }
}
const recipient = (address: string, params: Partial<Recipient["params"]> = {}): Recipient => ({
  mailbox: mailbox(address),
  params: { raw: {}, ...params }
})

/** A header block as name (lower case) -> unfolded values, in order. */
const fields = (block: string): Array<[string, string]> =>
  block.replace(/\r\n(?=[ \t])/g, "").split("\r\n").filter((l) => l !== "").map((line) => {
    const colon = line.indexOf(":")
    return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()]
  })

const get = (block: Array<[string, string]>, name: string): string | undefined =>
  block.find(([n]) => n === name.toLowerCase())?.[1]

/** The smallest MIME split the tests need: top headers, then each part's headers and body. */
const parse = (bytes: Uint8Array) => {
  const text = decoder.decode(bytes)
  const split = text.indexOf("\r\n\r\n")
  const headers = fields(text.slice(0, split + 2))
  const contentType = get(headers, "content-type")!
  const boundary = /boundary="([^"]+)"/.exec(contentType)![1]!
  const body = text.slice(split + 4)
  const close = body.indexOf(`\r\n--${boundary}--\r\n`)
  expect(close).toBeGreaterThan(0)
  const parts = body.slice(0, close).split(`--${boundary}\r\n`).slice(1).map((raw) => {
    const end = raw.indexOf("\r\n\r\n")
    return { headers: fields(raw.slice(0, end + 2)), body: raw.slice(end + 4) }
  })
  return { text, headers, contentType, parts }
}

const base = {
  reportingMta: "mx.bridge.test",
  arrivalDate: new Date(Date.UTC(2025, 0, 2, 3, 4, 5)),
  date: new Date(Date.UTC(2025, 0, 3, 3, 4, 5)),
  originalSender: mailbox("alice@example.com"),
  originalHeaders: "From: alice@example.com\r\nSubject: hello\r\nMessage-ID: <m1@example.com>\r\n",
  messageId: "dsn1@mx.bridge.test"
} as const

describe("Dsn.build", () => {
  it("writes a multipart/report from MAILER-DAEMON to the sender, auto-replied, with three parts", () => {
    const dsn = parse(Dsn.build({
      ...base,
      recipients: [{ recipient: recipient("bob@example.org"), action: "failed", reply: Reply.make(550, "5.1.1", "User unknown") }]
    }))
    expect(dsn.contentType).toMatch(/^multipart\/report; report-type=delivery-status;\s+boundary="=_/)
    expect(get(dsn.headers, "from")).toBe("Mail Delivery System <MAILER-DAEMON@mx.bridge.test>")
    expect(get(dsn.headers, "to")).toBe("<alice@example.com>")
    expect(get(dsn.headers, "subject")).toBe("Undelivered Mail Returned to Sender")
    expect(get(dsn.headers, "date")).toBe("Fri, 03 Jan 2025 03:04:05 +0000")
    expect(get(dsn.headers, "message-id")).toBe("<dsn1@mx.bridge.test>")
    expect(get(dsn.headers, "auto-submitted")).toBe("auto-replied")
    expect(get(dsn.headers, "mime-version")).toBe("1.0")
    expect(dsn.parts.map((p) => get(p.headers, "content-type"))).toEqual([
      "text/plain; charset=us-ascii",
      "message/delivery-status",
      "text/rfc822-headers"
    ])
    expect(dsn.parts[0]!.body).toContain("<bob@example.org>: failed: 550 5.1.1 User unknown")
    expect(dsn.parts[2]!.body).toBe(base.originalHeaders)
  })

  it("reports per-message and per-recipient fields in message/delivery-status", () => {
    const dsn = parse(Dsn.build({
      ...base,
      envelopeId: "QQ314159+2B1",
      recipients: [
        {
          recipient: recipient("bob@example.org", { orcpt: "rfc822;Bob+2Bx@example.org" }),
          action: "failed",
          reply: Reply.make(550, "5.1.1", "User unknown"),
          remoteMta: "mx.example.org"
        },
        { recipient: recipient("carol@example.org"), action: "failed", reply: Reply.make(554, undefined, "No thanks") }
      ]
    }))
    const groups = dsn.parts[1]!.body.split("\r\n\r\n").filter((g) => g.trim() !== "").map((g) => fields(g + "\r\n"))
    expect(groups).toEqual([
      [["reporting-mta", "dns; mx.bridge.test"], ["original-envelope-id", "QQ314159+1"], ["arrival-date", "Thu, 02 Jan 2025 03:04:05 +0000"]],
      [
        ["original-recipient", "rfc822; Bob+x@example.org"],
        ["final-recipient", "rfc822; bob@example.org"],
        ["action", "failed"],
        ["status", "5.1.1"],
        ["remote-mta", "dns; mx.example.org"],
        ["diagnostic-code", "smtp; 550 5.1.1 User unknown"]
      ],
      [
        ["final-recipient", "rfc822; carol@example.org"],
        ["action", "failed"],
        ["status", "5.0.0"],
        ["diagnostic-code", "smtp; 554 No thanks"]
      ]
    ])
  })

  it("uses an explicit status such as 4.4.7 for an expired message while quoting the last reply", () => {
    const dsn = parse(Dsn.build({
      ...base,
      recipients: [{ recipient: recipient("bob@example.org"), action: "failed", status: "4.4.7", reply: Reply.make(451, "4.4.1", "unreachable") }]
    }))
    const status = fields(dsn.parts[1]!.body)
    expect(get(status, "status")).toBe("4.4.7")
    expect(get(status, "diagnostic-code")).toBe("smtp; 451 4.4.1 unreachable")
  })

  it("says Delayed when no recipient failed", () => {
    const dsn = parse(Dsn.build({
      ...base,
      recipients: [{ recipient: recipient("bob@example.org"), action: "delayed", reply: Reply.make(451, undefined, "later") }]
    }))
    expect(get(dsn.headers, "subject")).toBe("Delayed Mail (still being retried)")
    expect(get(fields(dsn.parts[1]!.body), "status")).toBe("4.0.0")
  })

  it("returns the whole message as message/rfc822 when given (RET=FULL)", () => {
    const original = encoder.encode("Subject: hello\r\n\r\nbody line\r\n")
    const dsn = parse(Dsn.build({
      ...base,
      originalMessage: original,
      recipients: [{ recipient: recipient("bob@example.org"), action: "failed", reply: Reply.make(550, "5.1.1", "User unknown") }]
    }))
    expect(get(dsn.parts[2]!.headers, "content-type")).toBe("message/rfc822")
    expect(dsn.parts[2]!.body).toBe("Subject: hello\r\n\r\nbody line\r\n")
  })

  it("uses the RFC 6533 global types and utf-8 address type for non-ASCII addresses", () => {
    const dsn = parse(Dsn.build({
      ...base,
      originalSender: mailbox("jöran@example.com"),
      recipients: [{ recipient: recipient("bø@example.org"), action: "failed", reply: Reply.make(550, "5.1.1", "User unknown") }]
    }))
    expect(dsn.parts.map((p) => get(p.headers, "content-type"))).toEqual([
      "text/plain; charset=utf-8",
      "message/global-delivery-status",
      "message/global-headers"
    ])
    expect(get(fields(dsn.parts[1]!.body), "final-recipient")).toBe("utf-8; bø@example.org")
  })

  it("uses CRLF only, keeps every line within 998 octets, and strips CR/LF smuggled in replies", () => {
    const bytes = Dsn.build({
      ...base,
      originalHeaders: `X-Long: ${"a".repeat(3000)}\nSubject: bare lf\r\n`,
      originalMessage: undefined,
      recipients: [{
        recipient: recipient("bob@example.org"),
        action: "failed",
        reply: Reply.make(550, "5.7.1", [`rejected ${"word ".repeat(400)}`, "Bcc: injected\r\nX: y"])
      }]
    })
    const text = decoder.decode(bytes)
    expect(text).not.toMatch(/\r(?!\n)|(?<!\r)\n/)
    for (const line of text.split("\r\n")) expect(encoder.encode(line).byteLength).toBeLessThanOrEqual(998)
    expect(text).not.toMatch(/^Bcc:/m)
    const dsn = parse(bytes)
    expect(fields(dsn.parts[2]!.body).map(([n]) => n)).toEqual(["x-long", "subject"])
  })
})
