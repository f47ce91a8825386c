// The Received header names the client by its EHLO name, which the client chooses: what the
// bridge writes is printable ASCII (or a valid IDN as U-labels under SMTPUTF8), at most 255
// characters, so no C1 control, U+FFFD or 3,000-character name reaches the delivered header.
//
//   C: EHLO evil<U+0085>host.example
//   C: MAIL FROM:<a@example.test> ... DATA
//   S: 250 2.0.0 Ok   -> Received: from evil_host.example ([127.0.0.1]) by bridge.test ...
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startBridge, type TestBridge } from "../support/bridge.ts"
import { connect } from "../support/SmtpClient.ts"

describe("received: the EHLO name in the Received header", () => {
  let bridge: TestBridge
  beforeAll(async () => {
    bridge = await startBridge({ trust: ["127.0.0.0/8"] })
  })
  afterAll(() => bridge?.stop())

  /** Greets with `name`, sends one message, returns the delivered header section. */
  const deliverAs = async (name: string, smtputf8 = false): Promise<string> => {
    const subject = `ehlo ${Math.random()}`
    const c = await connect(bridge.port)
    try {
      expect(await c.read()).toMatch(/^220 /)
      expect(await c.command(`EHLO ${name}`)).toMatch(/^250[- ]/)
      expect(await c.command(`MAIL FROM:<a@example.test>${smtputf8 ? " SMTPUTF8" : ""}`)).toBe("250 2.1.0 Ok")
      expect(await c.command("RCPT TO:<b@example.test>")).toMatch(/^250 /)
      expect(await c.command("DATA")).toMatch(/^354 /)
      expect(await c.command(`From: a@example.test\r\nSubject: ${subject}\r\n\r\nx\r\n.`)).toMatch(/^250 2\.0\.0 /)
    } finally {
      c.close()
    }
    const file = bridge.delivered().map((f) => f.toString("utf8")).find((f) => f.includes(subject))!
    return file.slice(0, file.indexOf("\r\n\r\n") + 2)
  }

  /** The first Received field, unfolded. */
  const receivedOf = (head: string): string => /^Received: (.*(?:\r\n[ \t].*)*)/m.exec(head)![1]!.replace(/\r\n[ \t]+/g, " ")

  it.each([
    ["evil\u0085host.example", "evil_host.example", "U+0085 (NEL)"],
    ["a\uFFFDb.example", "a_b.example", "U+FFFD"],
    ["a\u2028b\u202Ec.example", "a_b_c.example", "a line separator and a bidi override"],
    ["\u{1F600}\u0085x.example", "__x.example", "an emoji and a NEL, one _ per code point"]
  ])("writes EHLO %j as %j (%s)", async (name, written) => {
    const received = receivedOf(await deliverAs(name))
    expect(received).toMatch(new RegExp(`^from ${written.replace(/\./g, "\\.")} \\(\\[127\\.0\\.0\\.1\\]\\) by bridge\\.test `))
    expect(received).toMatch(/^[\x20-\x7e]*$/)
  })

  it("caps a 3,000-character EHLO name at 255 characters, and no header line passes 998 octets", async () => {
    const head = await deliverAs("a".repeat(3000))
    expect(receivedOf(head)).toContain(`from ${"a".repeat(252)}... ([127.0.0.1])`)
    for (const line of head.split("\r\n")) expect(Buffer.byteLength(line)).toBeLessThanOrEqual(998)
  })

  it("writes an internationalised EHLO name as U-labels under SMTPUTF8 and as A-labels otherwise", async () => {
    expect(receivedOf(await deliverAs("Bücher.example", true))).toMatch(/^from bücher\.example \(/)
    expect(receivedOf(await deliverAs("Bücher.example"))).toMatch(/^from xn--bcher-kva\.example \(/)
  })
})
