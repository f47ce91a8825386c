/**
 * Recipients: limits.maxRecipients refuses the excess with 452 4.5.3 (RFC 5321 4.5.3.1.8) while
 * the accepted ones still get the message; RCPT ordering and the DSN parameters (RFC 3461).
 */
import nodemailer from "nodemailer"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startBridge, stripTrace, type TestBridge } from "../support/bridge.ts"
import { run } from "../support/exec.ts"
import { type Client, connect } from "../support/SmtpClient.ts"

const deliveredTo = (file: Buffer): Array<string> =>
  [...file.toString("utf8").matchAll(/^Delivered-To: (.*)\r$/gm)].map((m) => m[1]!)

describe("recipients (maxRecipients: 3)", () => {
  let bridge: TestBridge

  beforeAll(async () => {
    bridge = await startBridge({ trust: ["127.0.0.0/8"], limits: { maxRecipients: 3 } })
  })
  afterAll(() => bridge.stop())

  const open = async (): Promise<Client> => {
    const c = await connect(bridge.port)
    expect(await c.read()).toMatch(/^220 /)
    await c.command("EHLO client.test")
    return c
  }
  const withSubject = (subject: string) => bridge.delivered().filter((f) => f.toString("utf8").includes(`Subject: ${subject}\r\n`))

  it("refuses the 4th and 5th RCPT with 452 4.5.3 and delivers to the first three", async () => {
    const c = await open()
    try {
      expect(await c.command("MAIL FROM:<a@example.com>")).toBe("250 2.1.0 Ok")
      for (const n of [1, 2, 3]) expect(await c.command(`RCPT TO:<r${n}@example.net>`)).toBe("250 2.1.5 Ok")
      expect(await c.command("RCPT TO:<r4@example.net>")).toBe("452 4.5.3 Too many recipients")
      expect(await c.command("RCPT TO:<r5@example.net>")).toBe("452 4.5.3 Too many recipients")
      expect(await c.command("DATA")).toMatch(/^354 /)
      expect(await c.command("Subject: three of five\r\n\r\nhi\r\n.")).toMatch(/^250 2\.0\.0 Ok: queued as /)
    } finally {
      c.close()
    }
    const files = withSubject("three of five")
    expect(files).toHaveLength(1)
    expect(deliveredTo(files[0]!)).toEqual(["r1@example.net", "r2@example.net", "r3@example.net"])
    expect(stripTrace(files[0]!)).toBe("Subject: three of five\r\n\r\nhi\r\n")
  })

  it("counts per transaction: after RSET three recipients are accepted again", async () => {
    const c = await open()
    try {
      await c.command("MAIL FROM:<a@example.com>")
      for (const n of [1, 2, 3]) expect(await c.command(`RCPT TO:<x${n}@example.net>`)).toBe("250 2.1.5 Ok")
      expect(await c.command("RCPT TO:<x4@example.net>")).toMatch(/^452 4\.5\.3 /)
      expect(await c.command("RSET")).toBe("250 2.0.0 Ok")
      await c.command("MAIL FROM:<a@example.com>")
      for (const n of [1, 2, 3]) expect(await c.command(`RCPT TO:<y${n}@example.net>`)).toBe("250 2.1.5 Ok")
    } finally {
      c.close()
    }
  })

  it("answers pipelined RCPTs over the limit in order: 250 250 250 452 452", async () => {
    const c = await open()
    try {
      c.send("MAIL FROM:<a@example.com>\r\n" + [1, 2, 3, 4, 5].map((n) => `RCPT TO:<p${n}@example.net>\r\n`).join(""))
      expect(await c.read()).toBe("250 2.1.0 Ok")
      const replies = []
      for (let i = 0; i < 5; i++) replies.push(await c.read())
      expect(replies).toEqual(["250 2.1.5 Ok", "250 2.1.5 Ok", "250 2.1.5 Ok", "452 4.5.3 Too many recipients", "452 4.5.3 Too many recipients"])
    } finally {
      c.close()
    }
  })

  it("lets python3 smtplib see the 452 refusals and still deliver to the rest", async () => {
    const script = `
import smtplib
s = smtplib.SMTP("127.0.0.1", ${bridge.port}, timeout=10)
refused = s.sendmail("a@example.com", ["q1@example.net", "q2@example.net", "q3@example.net", "q4@example.net"], "Subject: python limit\\r\\n\\r\\nx\\r\\n")
for rcpt, (code, text) in sorted(refused.items()):
    print("REFUSED", rcpt, code, text.decode())
s.quit()
print("DONE")
`
    const r = await run("python3", ["-c", script])
    expect(r.stdout, r.stderr).toMatch(/^DONE$/m)
    expect(r.stdout).toMatch(/^REFUSED q4@example\.net 452 4\.5\.3 Too many recipients$/m)
    expect(r.stdout.match(/^REFUSED/gm)).toHaveLength(1)
    const files = withSubject("python limit")
    expect(files).toHaveLength(1)
    expect(deliveredTo(files[0]!)).toEqual(["q1@example.net", "q2@example.net", "q3@example.net"])
  })

  it("refuses RCPT before MAIL with 503 5.5.1", async () => {
    const c = await open()
    try {
      expect(await c.command("RCPT TO:<early@example.net>")).toBe("503 5.5.1 Need MAIL before RCPT")
      expect(await c.command("MAIL FROM:<a@example.com>")).toBe("250 2.1.0 Ok")
      expect(await c.command("RCPT TO:<early@example.net>")).toBe("250 2.1.5 Ok")
    } finally {
      c.close()
    }
  })

  it("refuses DATA without any RCPT: 554 5.5.1 after MAIL, 503 5.5.1 before MAIL", async () => {
    const c = await open()
    try {
      expect(await c.command("DATA")).toMatch(/^503 5\.5\.1 /)
      await c.command("MAIL FROM:<a@example.com>")
      expect(await c.command("DATA")).toMatch(/^554 5\.5\.1 /)
    } finally {
      c.close()
    }
  })

  it("refuses a nested MAIL with 503 5.5.1", async () => {
    const c = await open()
    try {
      expect(await c.command("MAIL FROM:<a@example.com>")).toBe("250 2.1.0 Ok")
      expect(await c.command("MAIL FROM:<b@example.com>")).toMatch(/^503 5\.5\.1 /)
    } finally {
      c.close()
    }
  })

  it("accepts the DSN parameters RET, ENVID, NOTIFY and ORCPT with 250", async () => {
    const c = await open()
    try {
      expect(await c.command("MAIL FROM:<a@example.com> RET=HDRS ENVID=QQ314159")).toBe("250 2.1.0 Ok")
      expect(await c.command("RCPT TO:<d1@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;d1@example.net")).toBe("250 2.1.5 Ok")
      expect(await c.command("RCPT TO:<d2@example.net> NOTIFY=NEVER")).toBe("250 2.1.5 Ok")
      expect(await c.command("RCPT TO:<d3@example.net> ORCPT=rfc822;Bob+2Bsmith@example.net")).toBe("250 2.1.5 Ok")
      expect(await c.command("DATA")).toMatch(/^354 /)
      expect(await c.command("Subject: dsn\r\n\r\nx\r\n.")).toMatch(/^250 2\.0\.0 /)
    } finally {
      c.close()
    }
    const files = withSubject("dsn")
    expect(files).toHaveLength(1)
    expect(deliveredTo(files[0]!)).toEqual(["d1@example.net", "d2@example.net", "d3@example.net"])
  })

  it("refuses malformed DSN parameters with 555 5.5.4", async () => {
    const c = await open()
    try {
      expect(await c.command("MAIL FROM:<a@example.com> RET=SOME")).toMatch(/^555 5\.5\.4 /)
      expect(await c.command("MAIL FROM:<a@example.com>")).toBe("250 2.1.0 Ok")
      expect(await c.command("RCPT TO:<e@example.net> NOTIFY=NEVER,SUCCESS")).toMatch(/^555 5\.5\.4 /)
      expect(await c.command("RCPT TO:<e@example.net> NOTIFY=SOMETIMES")).toMatch(/^555 5\.5\.4 /)
      expect(await c.command("RCPT TO:<e@example.net> ORCPT=no-semicolon")).toMatch(/^555 5\.5\.4 /)
      expect(await c.command("RCPT TO:<e@example.net> FOO=BAR")).toMatch(/^555 5\.5\.4 /)
    } finally {
      c.close()
    }
  })

  it("delivers from nodemailer with DSN options", async () => {
    const transport = nodemailer.createTransport({
      host: "127.0.0.1",
      port: bridge.port,
      secure: false,
      ignoreTLS: true,
      connectionTimeout: 10_000,
      greetingTimeout: 10_000,
      socketTimeout: 10_000
    })
    try {
      const info = await transport.sendMail({
        from: "a@example.com",
        to: "n1@example.net",
        subject: "nodemailer dsn",
        text: "x",
        dsn: { id: "msg-42", return: "headers", notify: ["failure", "delay"], recipient: "a@example.com" }
      })
      expect(info.response).toMatch(/^250 2\.0\.0 /)
      expect(info.accepted).toEqual(["n1@example.net"])
    } finally {
      transport.close()
    }
    expect(withSubject("nodemailer dsn")).toHaveLength(1)
  })

  it("delivers from swaks to two recipients in one transaction", async () => {
    const r = await run("swaks", [
      "--server", `127.0.0.1:${bridge.port}`, "--from", "a@example.com", "--to", "s1@example.net,s2@example.net",
      "--header", "Subject: swaks two"
    ])
    expect(r.code, r.stdout + r.stderr).toBe(0)
    const files = withSubject("swaks two")
    expect(files).toHaveLength(1)
    expect(deliveredTo(files[0]!)).toEqual(["s1@example.net", "s2@example.net"])
  })
})
