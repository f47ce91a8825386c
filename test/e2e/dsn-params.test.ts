// The failure notice of a pass-through partial delivery is built like the spool's (issue 12): its
// MAIL parameters say what its bytes need, and RET/ENVID of the original MAIL are honoured.
//
//   transports: sink = smtp-sink (the default: the DSN goes there), down = nothing listens
//   C: MAIL FROM:<alice@example.org> BODY=8BITMIME RET=FULL ENVID=env-1
//   C: RCPT TO:<a@down.example> / RCPT TO:<b@else.example>
//   C: DATA ... (an 8-bit body) .
//   S: 250 2.0.0 Ok: queued as ... (1 of 2 recipients delivered; the others are reported to the sender)
//   (sink: the message for b@else.example, then MAIL FROM:<> BODY=8BITMIME to alice@example.org)
// smtp-sink offers no SMTPUTF8; the SMTPUTF8 parameter of a notice is pinned in test/unit/transport/Deliver.test.ts.
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { startBridge, type TestBridge } from "../support/bridge.ts"
import { dumpedEnvelope, dumpedMessage, type Sink, startSink } from "../support/sink.ts"
import { connect } from "../support/SmtpClient.ts"

const send = async (port: number, mail: string, body: string): Promise<string> => {
  const c = await connect(port)
  try {
    expect(await c.read()).toMatch(/^220 /)
    await c.command("EHLO client.test")
    expect(await c.command(mail)).toBe("250 2.1.0 Ok")
    for (const r of ["a@down.example", "b@else.example"]) expect(await c.command(`RCPT TO:<${r}>`)).toBe("250 2.1.5 Ok")
    expect(await c.command("DATA")).toMatch(/^354 /)
    const reply = await c.command(`${body}.`)
    await c.command("QUIT")
    return reply
  } finally {
    c.close()
  }
}

const isDsn = (dump: string): boolean => dump.includes("report-type=delivery-status")

describe("the pass-through DSN to a real upstream (smtp-sink)", () => {
  let sink: Sink
  let bridge: TestBridge
  beforeAll(async () => {
    sink = await startSink()
    bridge = await startBridge({
      trust: ["127.0.0.1/32"],
      transports: {
        sink: { type: "smtp", url: `smtp://127.0.0.1:${sink.port}` },
        // Nothing listens on port 1 (tests only bind port 0).
        down: { type: "smtp", url: "smtp://127.0.0.1:1", timeouts: { connect: "2 seconds" } }
      },
      defaultTransport: "sink",
      routes: [{ recipientDomain: ["down.example"], transport: "down" }]
    })
  })
  afterAll(async () => {
    await bridge?.stop()
    await sink?.stop()
  })

  it("S: 250 (1 of 2 ...); the DSN is sent MAIL FROM:<> BODY=8BITMIME and returns the 8-bit original (RET=FULL)", async () => {
    const body = "Subject: café\r\n\r\nÇa coûte 5 €.\r\n"
    const reply = await send(bridge.port, "MAIL FROM:<alice@example.org> BODY=8BITMIME RET=FULL ENVID=env-1", body)
    expect(reply).toMatch(/^250 2\.0\.0 Ok: queued as \S+ \(1 of 2 recipients delivered; the others are reported to the sender\)$/)
    await sink.waitFor((c) => c.messages >= 2)
    const dsns = sink.messages().filter(isDsn)
    expect(dsns).toHaveLength(1)
    const envelope = dumpedEnvelope(dsns[0]!)
    expect(envelope.mail).toMatch(/^<>/)
    expect(envelope.mail).toContain("BODY=8BITMIME")
    expect(envelope.mail).not.toContain("SMTPUTF8")
    expect(envelope.rcpts).toEqual(["<alice@example.org>"])
    const dsn = dumpedMessage(dsns[0]!)
    expect(dsn).toMatch(/^Original-Envelope-Id: env-1\r?$/m)
    expect(dsn).toMatch(/^Final-Recipient: rfc822; a@down\.example\r?$/m)
    expect(dsn).toMatch(/^Status: 4\.4\.1\r?$/m)
    // RET=FULL: the whole original comes back, its 8-bit body included.
    expect(dsn).toContain("Ça coûte 5 €.")
  })

  it("an ASCII notice of a 7-bit message from an ASCII sender goes without BODY or SMTPUTF8", async () => {
    const before = sink.messages().length
    const reply = await send(bridge.port, "MAIL FROM:<alice@example.org>", "Subject: plain\r\n\r\nhello\r\n")
    expect(reply).toMatch(/^250 2\.0\.0 .*1 of 2 recipients delivered/)
    await sink.waitFor((c) => c.messages >= before + 2)
    const dsns = sink.messages().filter((d) => isDsn(d) && d.includes("Subject: plain"))
    expect(dsns).toHaveLength(1)
    expect(dumpedEnvelope(dsns[0]!).mail).toBe("<>")
  })
})
