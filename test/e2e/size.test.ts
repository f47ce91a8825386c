/**
 * SIZE (RFC 1870) and limits.maxMessageSize: refused early at MAIL when declared, else after the
 * end of data, with 552 5.3.4; nothing is delivered and the session goes on.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startBridge, stripTrace, type TestBridge } from "../support/bridge.ts"
import { run } from "../support/exec.ts"
import { type Client, connect } from "../support/SmtpClient.ts"

const limit = 10 * 1024

/** A message of about `bytes` octets, CRLF lines of 78 characters. */
const messageOf = (subject: string, bytes: number): string => {
  const line = `${"x".repeat(76)}\r\n`
  return `Subject: ${subject}\r\n\r\n${line.repeat(Math.ceil(bytes / line.length))}`
}

describe("message size limit (maxMessageSize: 10KB)", () => {
  let bridge: TestBridge

  beforeAll(async () => {
    bridge = await startBridge({ trust: ["127.0.0.0/8"], limits: { maxMessageSize: "10KB" } })
  })
  afterAll(() => bridge.stop())

  const open = async (): Promise<Client> => {
    const c = await connect(bridge.port)
    expect(await c.read()).toMatch(/^220 /)
    expect(await c.command("EHLO client.test")).toMatch(new RegExp(`^250-SIZE ${limit}$`, "m"))
    return c
  }

  const subjects = (subject: string) => bridge.delivered().filter((f) => f.toString("utf8").includes(`Subject: ${subject}`))

  it("advertises SIZE 10240 in EHLO", async () => {
    const c = await open()
    c.close()
  })

  it("refuses MAIL FROM with SIZE=10241 with 552 5.3.4 and accepts SIZE=10240", async () => {
    const c = await open()
    try {
      expect(await c.command(`MAIL FROM:<a@example.com> SIZE=${limit + 1}`)).toBe(
        "552 5.3.4 Message size exceeds fixed maximum message size"
      )
      // No transaction was opened by the refused MAIL.
      expect(await c.command("RCPT TO:<b@example.net>")).toMatch(/^503 5\.5\.1 /)
      expect(await c.command(`MAIL FROM:<a@example.com> SIZE=${limit}`)).toBe("250 2.1.0 Ok")
    } finally {
      c.close()
    }
  })

  it("refuses an absurd SIZE=99999999999999999999 with 552 5.3.4", async () => {
    const c = await open()
    try {
      expect(await c.command("MAIL FROM:<a@example.com> SIZE=99999999999999999999")).toMatch(/^552 5\.3\.4 /)
    } finally {
      c.close()
    }
  })

  it("refuses a message over the limit with 552 5.3.4 after the end of data, delivers nothing, and the next transaction works", async () => {
    const c = await open()
    try {
      expect(await c.command("MAIL FROM:<a@example.com>")).toBe("250 2.1.0 Ok")
      expect(await c.command("RCPT TO:<b@example.net>")).toBe("250 2.1.5 Ok")
      expect(await c.command("DATA")).toMatch(/^354 /)
      // C: 20 KB of message, then CRLF.CRLF; no reply may come before the end of data.
      c.send(messageOf("too big", 2 * limit))
      await expect(c.read(300)).rejects.toThrow(/timed out/)
      expect(await c.command(".")).toBe("552 5.3.4 Message size exceeds fixed maximum message size")
      expect(subjects("too big")).toHaveLength(0)

      // Same session, a message that fits.
      expect(await c.command("MAIL FROM:<a@example.com>")).toBe("250 2.1.0 Ok")
      expect(await c.command("RCPT TO:<b@example.net>")).toBe("250 2.1.5 Ok")
      expect(await c.command("DATA")).toMatch(/^354 /)
      expect(await c.command("Subject: fits\r\n\r\nsmall\r\n.")).toMatch(/^250 2\.0\.0 Ok: queued as /)
    } finally {
      c.close()
    }
    expect(subjects("too big")).toHaveLength(0)
    const fits = subjects("fits")
    expect(fits).toHaveLength(1)
    expect(stripTrace(fits[0]!)).toBe("Subject: fits\r\n\r\nsmall\r\n")
  })

  it("refuses a message that lied about its SIZE with 552 5.3.4", async () => {
    const c = await open()
    try {
      expect(await c.command("MAIL FROM:<a@example.com> SIZE=100")).toBe("250 2.1.0 Ok")
      expect(await c.command("RCPT TO:<b@example.net>")).toBe("250 2.1.5 Ok")
      expect(await c.command("DATA")).toMatch(/^354 /)
      c.send(messageOf("liar", limit + 2048))
      expect(await c.command(".")).toMatch(/^552 5\.3\.4 /)
      expect(await c.command("NOOP")).toBe("250 2.0.0 Ok")
    } finally {
      c.close()
    }
    expect(subjects("liar")).toHaveLength(0)
  })

  it("accepts a message just under the limit", async () => {
    const c = await open()
    try {
      await c.command("MAIL FROM:<a@example.com>")
      await c.command("RCPT TO:<b@example.net>")
      expect(await c.command("DATA")).toMatch(/^354 /)
      c.send(messageOf("under", limit - 1024))
      expect(await c.command(".")).toMatch(/^250 2\.0\.0 /)
    } finally {
      c.close()
    }
    expect(subjects("under")).toHaveLength(1)
  })

  it("makes swaks fail with 552 5.3.4 for a 20 KB body", async () => {
    const r = await run("swaks", [
      "--server", `127.0.0.1:${bridge.port}`, "--from", "a@example.com", "--to", "b@example.net",
      "--header", "Subject: swaks too big", "--body", "y".repeat(2 * limit)
    ])
    expect(r.stdout).toMatch(/<\*\* +552 5\.3\.4 /)
    expect(r.code).not.toBe(0)
    expect(subjects("swaks too big")).toHaveLength(0)
  })
})
