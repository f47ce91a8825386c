/**
 * SMTPUTF8 (RFC 6531) and the EHLO extension list: internationalised addresses pass when the
 * transaction declares SMTPUTF8 and are refused with 553 5.6.7 when it does not.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startBridge, stripTrace, type TestBridge } from "../support/bridge.ts"
import { run } from "../support/exec.ts"
import { type Client, connect } from "../support/SmtpClient.ts"

describe("SMTPUTF8", () => {
  let bridge: TestBridge

  beforeAll(async () => {
    bridge = await startBridge({ trust: ["127.0.0.0/8"], limits: { maxMessageSize: "5MB" } })
  })
  afterAll(() => bridge.stop())

  const open = async (): Promise<Client> => {
    const c = await connect(bridge.port)
    expect(await c.read()).toMatch(/^220 /)
    await c.command("EHLO client.test")
    return c
  }

  it("EHLO advertises PIPELINING, SIZE, 8BITMIME, SMTPUTF8, ENHANCEDSTATUSCODES, CHUNKING and DSN", async () => {
    const c = await connect(bridge.port)
    try {
      expect(await c.read()).toMatch(/^220 /)
      const lines = (await c.command("EHLO client.test")).split("\n")
      expect(lines[0]).toBe("250-bridge.test greets client.test")
      const keywords = lines.slice(1).map((l) => l.slice(4))
      expect(keywords).toEqual(expect.arrayContaining([
        "PIPELINING",
        `SIZE ${5 * 1024 * 1024}`,
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
        "CHUNKING",
        "DSN"
      ]))
      // Only the last line has "250 ", every other one "250-".
      expect(lines.slice(0, -1).every((l) => l.startsWith("250-"))).toBe(true)
      expect(lines.at(-1)).toMatch(/^250 /)
    } finally {
      c.close()
    }
  })

  it("answers HELO with a single 250 line and no extensions", async () => {
    const c = await connect(bridge.port)
    try {
      await c.read()
      expect(await c.command("HELO client.test")).toBe("250 bridge.test")
    } finally {
      c.close()
    }
  })

  it("accepts MAIL FROM:<用户@例子.广告> SMTPUTF8 and a UTF-8 RCPT, and delivers the UTF-8 message intact", async () => {
    const message = "From: 用户@例子.广告\r\nTo: 测试@例子.广告\r\nSubject: 你好 smtputf8\r\n\r\nGrüße aus 例子\r\n"
    const c = await open()
    try {
      expect(await c.command("MAIL FROM:<用户@例子.广告> SMTPUTF8 BODY=8BITMIME")).toBe("250 2.1.0 Ok")
      expect(await c.command("RCPT TO:<测试@例子.广告>")).toBe("250 2.1.5 Ok")
      expect(await c.command("RCPT TO:<ascii@example.net>")).toBe("250 2.1.5 Ok")
      expect(await c.command("DATA")).toMatch(/^354 /)
      expect(await c.command(`${message}.`)).toMatch(/^250 2\.0\.0 Ok: queued as /)
    } finally {
      c.close()
    }
    const files = bridge.delivered().filter((f) => f.toString("utf8").includes("Subject: 你好 smtputf8"))
    expect(files).toHaveLength(1)
    const file = files[0]!.toString("utf8")
    expect(file).toMatch(/^Return-Path: <用户@例子\.广告>\r$/m)
    expect(file).toMatch(/^Delivered-To: 测试@例子\.广告\r$/m)
    expect(stripTrace(files[0]!)).toBe(message)
  })

  it("refuses a non-ASCII sender without SMTPUTF8 with 553 5.6.7", async () => {
    const c = await open()
    try {
      expect(await c.command("MAIL FROM:<用户@例子.广告>")).toBe("553 5.6.7 Non-ASCII address requires SMTPUTF8")
      expect(await c.command("MAIL FROM:<josé@example.com>")).toMatch(/^553 5\.6\.7 /)
    } finally {
      c.close()
    }
  })

  it("refuses a non-ASCII recipient in a transaction without SMTPUTF8 with 553 5.6.7, and keeps the others", async () => {
    const c = await open()
    try {
      expect(await c.command("MAIL FROM:<ascii@example.com>")).toBe("250 2.1.0 Ok")
      expect(await c.command("RCPT TO:<测试@例子.广告>")).toBe("553 5.6.7 Non-ASCII address requires SMTPUTF8")
      expect(await c.command("RCPT TO:<ok@example.net>")).toBe("250 2.1.5 Ok")
    } finally {
      c.close()
    }
  })

  it("accepts an ASCII sender with SMTPUTF8 and then a UTF-8 recipient", async () => {
    const c = await open()
    try {
      expect(await c.command("MAIL FROM:<ascii@example.com> SMTPUTF8")).toBe("250 2.1.0 Ok")
      expect(await c.command("RCPT TO:<josé@exämple.com>")).toBe("250 2.1.5 Ok")
    } finally {
      c.close()
    }
  })

  // Invisible in a log line, a Received header or a DSN, they make one address read as another
  // (U+202E turns `moc.elpmaxe@` around) or split a line for a viewer that honours U+2028.
  it("refuses line separators and bidi controls in UTF-8 addresses with 501 5.1.7 and 501 5.1.3", async () => {
    const c = await open()
    try {
      for (const ch of ["\u2028", "\u2029", "\u202e", "\u2066", "\u200f", "\ufeff"]) {
        expect(await c.command(`MAIL FROM:<ali${ch}ce@example.com> SMTPUTF8`), `U+${ch.codePointAt(0)!.toString(16)}`).toBe("501 5.1.7 Bad sender address syntax")
      }
      expect(await c.command("MAIL FROM:<alice@example.com> SMTPUTF8")).toBe("250 2.1.0 Ok")
      expect(await c.command("RCPT TO:<bob\u202e@example.com>")).toMatch(/^501 5\.1\.3 /)
      expect(await c.command("RCPT TO:<bob@exa\u2028mple.com>")).toMatch(/^501 5\.1\.3 /)
      // Joiners are part of some scripts (Persian, Indic) and stay allowed.
      expect(await c.command("RCPT TO:<مي\u200cخواهم@example.com>")).toBe("250 2.1.5 Ok")
    } finally {
      c.close()
    }
  })

  it("refuses SMTPUTF8 with a value with 555 5.5.4", async () => {
    const c = await open()
    try {
      expect(await c.command("MAIL FROM:<a@example.com> SMTPUTF8=yes")).toMatch(/^555 5\.5\.4 /)
    } finally {
      c.close()
    }
  })

  it("delivers from python3 smtplib with mail_options=['SMTPUTF8']", async () => {
    const script = `
import smtplib
s = smtplib.SMTP("127.0.0.1", ${bridge.port}, timeout=10)
s.ehlo("python.test")
assert s.has_extn("smtputf8"), "SMTPUTF8 not advertised"
msg = "Subject: python utf8 \\u4f60\\u597d\\r\\n\\r\\n\\u00e9t\\u00e9\\r\\n".encode("utf-8")
refused = s.sendmail("\\u7528\\u6237@\\u4f8b\\u5b50.\\u5e7f\\u544a", ["\\u6d4b\\u8bd5@\\u4f8b\\u5b50.\\u5e7f\\u544a"], msg, mail_options=["SMTPUTF8"])
print("REFUSED", refused)
s.quit()
`
    const r = await run("python3", ["-c", script])
    expect(r.stdout, r.stderr).toMatch(/^REFUSED \{\}$/m)
    expect(r.code).toBe(0)
    const files = bridge.delivered().filter((f) => f.toString("utf8").includes("Subject: python utf8 你好"))
    expect(files).toHaveLength(1)
    expect(files[0]!.toString("utf8")).toMatch(/^Delivered-To: 测试@例子\.广告\r$/m)
    expect(stripTrace(files[0]!)).toBe("Subject: python utf8 你好\r\n\r\nété\r\n")
  })
})
