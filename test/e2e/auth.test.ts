/**
 * AUTH PLAIN and LOGIN (RFC 4954) through real sockets: swaks, nodemailer and python3 smtplib over
 * STARTTLS, then the edge cases as raw C:/S: transcripts.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import nodemailer from "nodemailer"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { hashPassword } from "../../plugins/auth-htpasswd/index.ts"
import { startBridge, type TestBridge } from "../support/bridge.ts"
import { testCertificate } from "../support/certs.ts"
import { run } from "../support/exec.ts"
import { type Client, connect } from "../support/SmtpClient.ts"

const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64")
const plainToken = (user: string, pass: string): string => b64(`\0${user}\0${pass}`)

// These tests send wrong passwords on purpose, many from one address: the AUTH throttle (on by
// default with users; its own tests are in auth-throttle.test.ts) is set wide and quick here.
const wideThrottle = { authFailures: { perIp: "1000/hour", perUser: "1000/hour", delay: "1 millis", maxDelay: "1 millis" } } as const

const usersFile = async (): Promise<string> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-auth-"))
  const file = path.join(dir, "users.htpasswd")
  fs.writeFileSync(file, `alice:${await hashPassword("secret", 4)}\n`)
  return file
}

/** C: EHLO, STARTTLS, EHLO again over TLS; returns the second EHLO reply. */
const secure = async (c: Client): Promise<string> => {
  expect(await c.read()).toMatch(/^220 /)
  expect(await c.command("EHLO client.test")).toMatch(/^250-/)
  expect(await c.command("STARTTLS")).toBe("220 2.0.0 Ready to start TLS")
  await c.startTls()
  return c.command("EHLO client.test")
}

describe("AUTH over STARTTLS", () => {
  let bridge: TestBridge

  beforeAll(async () => {
    const { cert, key } = testCertificate()
    bridge = await startBridge({ tls: { cert, key }, users: await usersFile(), senders: { alice: ["alice@example.com"] }, limits: { maxAuthFailures: 2 }, rateLimit: wideThrottle })
  })
  afterAll(() => bridge.stop())

  describe("with swaks", () => {
    const swaks = (mechanism: "PLAIN" | "LOGIN", password: string) =>
      run("swaks", [
        "--server", `127.0.0.1:${bridge.port}`, "--tls",
        "--auth", mechanism, "--auth-user", "alice", "--auth-password", password,
        "--from", "alice@example.com", "--to", "bob@example.net", "--helo", "swaks.test",
        "--header", `Subject: swaks ${mechanism}`
      ])

    it.each(["PLAIN", "LOGIN"] as const)("authenticates with AUTH %s: 235 2.7.0, then the message is delivered", async (mechanism) => {
      const before = bridge.delivered().length
      const r = await swaks(mechanism, "secret")
      expect(r.stdout).toMatch(/<~ +235 2\.7\.0 /)
      expect(r.stdout).toMatch(/<~ +250 2\.0\.0 Ok: queued as /)
      expect(r.code, r.stdout + r.stderr).toBe(0)
      const files = bridge.delivered()
      expect(files.length).toBe(before + 1)
      expect(files.filter((f) => f.toString("utf8").includes(`Subject: swaks ${mechanism}`))).toHaveLength(1)
    })

    it.each(["PLAIN", "LOGIN"] as const)("refuses a wrong password with AUTH %s: 535 5.7.8", async (mechanism) => {
      const before = bridge.delivered().length
      const r = await swaks(mechanism, "wrong")
      expect(r.stdout).toMatch(/<~\* +535 5\.7\.8 /)
      expect(r.code).not.toBe(0)
      expect(bridge.delivered().length).toBe(before)
    })
  })

  describe("with nodemailer", () => {
    const transport = (pass: string) =>
      nodemailer.createTransport({
        host: "127.0.0.1",
        port: bridge.port,
        secure: false,
        requireTLS: true,
        tls: { rejectUnauthorized: false },
        auth: { user: "alice", pass },
        connectionTimeout: 10_000,
        greetingTimeout: 10_000,
        socketTimeout: 10_000
      })

    it.each(["PLAIN", "LOGIN"] as const)("authenticates with AUTH %s and delivers (250 2.0.0)", async (method) => {
      const before = bridge.delivered().length
      const t = nodemailer.createTransport({
        host: "127.0.0.1",
        port: bridge.port,
        secure: false,
        requireTLS: true,
        tls: { rejectUnauthorized: false },
        auth: { type: "login", user: "alice", pass: "secret", method },
        connectionTimeout: 10_000,
        greetingTimeout: 10_000,
        socketTimeout: 10_000
      })
      try {
        const info = await t.sendMail({ from: "alice@example.com", to: "bob@example.net", subject: `nodemailer ${method}`, text: "hi" })
        expect(info.response).toMatch(/^250 2\.0\.0 Ok: queued as /)
      } finally {
        t.close()
      }
      expect(bridge.delivered().length).toBe(before + 1)
      expect(bridge.delivered().filter((f) => f.toString("utf8").includes(`Subject: nodemailer ${method}`))).toHaveLength(1)
    })

    it("refuses a wrong password: 535 5.7.8 (EAUTH)", async () => {
      const t = transport("wrong")
      try {
        await expect(t.verify()).rejects.toMatchObject({ code: "EAUTH", responseCode: 535, response: expect.stringMatching(/^535 5\.7\.8 /) })
      } finally {
        t.close()
      }
    })
  })

  describe("with python3 smtplib", () => {
    const script = (password: string, mechanism: "PLAIN" | "LOGIN" | "login()") => `
import smtplib, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP("127.0.0.1", ${bridge.port}, timeout=10)
s.ehlo("python.test")
s.starttls(context=ctx)
s.ehlo("python.test")
s.user, s.password = "alice", "${password}"
try:
    code, resp = ${mechanism === "login()" ? "s.login(s.user, s.password)" : `s.auth("${mechanism}", s.auth_${mechanism.toLowerCase()})`}
    print("AUTH", code, resp.decode())
except smtplib.SMTPAuthenticationError as e:
    print("AUTHFAIL", e.smtp_code, e.smtp_error.decode())
    s.quit()
    sys.exit(3)
s.sendmail("alice@example.com", ["bob@example.net"], "Subject: python ${mechanism === "login()" ? "login" : mechanism}\\r\\n\\r\\nhello\\r\\n")
s.quit()
print("SENT")
`

    it.each(["PLAIN", "LOGIN", "login()"] as const)("logs in (%s) after starttls(): 235 2.7.0 and sends", async (mechanism) => {
      const before = bridge.delivered().length
      const r = await run("python3", ["-c", script("secret", mechanism)])
      expect(r.stdout, r.stderr).toMatch(/^AUTH 235 2\.7\.0 /m)
      expect(r.stdout).toMatch(/^SENT$/m)
      expect(r.code).toBe(0)
      expect(bridge.delivered().length).toBe(before + 1)
      expect(bridge.delivered().filter((f) => f.toString("utf8").includes(`Subject: python ${mechanism === "login()" ? "login" : mechanism}`))).toHaveLength(1)
    })

    it.each(["PLAIN", "LOGIN"] as const)("refuses a wrong password with AUTH %s: 535 5.7.8", async (mechanism) => {
      const r = await run("python3", ["-c", script("wrong", mechanism)])
      expect(r.stdout, r.stderr).toMatch(/^AUTHFAIL 535 5\.7\.8 /m)
      expect(r.code).toBe(3)
    })
  })

  describe("as raw transcripts", () => {
    it("advertises AUTH PLAIN LOGIN only after TLS", async () => {
      const c = await connect(bridge.port)
      try {
        expect(await c.read()).toMatch(/^220 /)
        const before = await c.command("EHLO client.test")
        expect(before).toMatch(/^250[- ]STARTTLS$/m)
        expect(before).not.toMatch(/AUTH/)
        expect(await c.command("STARTTLS")).toBe("220 2.0.0 Ready to start TLS")
        await c.startTls()
        const after = await c.command("EHLO client.test")
        expect(after).toMatch(/^250[- ]AUTH PLAIN LOGIN$/m)
      } finally {
        c.close()
      }
    })

    it("refuses AUTH on the plain connection with 538 5.7.11", async () => {
      const c = await connect(bridge.port)
      try {
        expect(await c.read()).toMatch(/^220 /)
        await c.command("EHLO client.test")
        // C: AUTH PLAIN <credentials>  (never sent in the clear by a careful client)
        expect(await c.command(`AUTH PLAIN ${plainToken("alice", "secret")}`)).toMatch(/^538 5\.7\.11 /)
        expect(await c.command("AUTH LOGIN")).toMatch(/^538 5\.7\.11 /)
      } finally {
        c.close()
      }
    })

    it("accepts PLAIN with an initial response: 235 2.7.0", async () => {
      const c = await connect(bridge.port)
      try {
        await secure(c)
        expect(await c.command(`AUTH PLAIN ${plainToken("alice", "secret")}`)).toBe("235 2.7.0 Authentication successful")
        expect(await c.command("MAIL FROM:<alice@example.com>")).toBe("250 2.1.0 Ok")
      } finally {
        c.close()
      }
    })

    it("accepts PLAIN in the continuation form: 334, then the response, then 235 2.7.0", async () => {
      const c = await connect(bridge.port)
      try {
        await secure(c)
        expect(await c.command("AUTH PLAIN")).toMatch(/^334 ?$/)
        expect(await c.command(plainToken("alice", "secret"))).toBe("235 2.7.0 Authentication successful")
      } finally {
        c.close()
      }
    })

    it("accepts LOGIN: 334 Username:, 334 Password:, 235 2.7.0", async () => {
      const c = await connect(bridge.port)
      try {
        await secure(c)
        expect(await c.command("AUTH LOGIN")).toBe(`334 ${b64("Username:")}`)
        expect(await c.command(b64("alice"))).toBe(`334 ${b64("Password:")}`)
        expect(await c.command(b64("secret"))).toBe("235 2.7.0 Authentication successful")
      } finally {
        c.close()
      }
    })

    it("accepts LOGIN with the user name as initial response: 334 Password:, 235 2.7.0", async () => {
      const c = await connect(bridge.port)
      try {
        await secure(c)
        expect(await c.command(`AUTH LOGIN ${b64("alice")}`)).toBe(`334 ${b64("Password:")}`)
        expect(await c.command(b64("secret"))).toBe("235 2.7.0 Authentication successful")
      } finally {
        c.close()
      }
    })

    it("cancels the exchange on `*` with 501 and stays usable", async () => {
      const c = await connect(bridge.port)
      try {
        await secure(c)
        expect(await c.command("AUTH LOGIN")).toMatch(/^334 /)
        expect(await c.command("*")).toMatch(/^501 5\.\d\.\d /)
        expect(await c.command("AUTH PLAIN")).toMatch(/^334/)
        expect(await c.command("*")).toMatch(/^501 5\.\d\.\d /)
        expect(await c.command(`AUTH PLAIN ${plainToken("alice", "secret")}`)).toBe("235 2.7.0 Authentication successful")
      } finally {
        c.close()
      }
    })

    it("refuses invalid base64 with 501", async () => {
      const c = await connect(bridge.port)
      try {
        await secure(c)
        expect(await c.command("AUTH PLAIN !!!not-base64!!!")).toMatch(/^501 5\.5\.\d /)
        expect(await c.command("AUTH LOGIN")).toMatch(/^334 /)
        expect(await c.command("%%%")).toMatch(/^501 5\.5\.\d /)
        expect(await c.command("NOOP")).toBe("250 2.0.0 Ok")
      } finally {
        c.close()
      }
    })

    it("answers an overlong AUTH PLAIN response with 500 5.5.6 and stays in step: NOOP gets its own 250", async () => {
      const c = await connect(bridge.port)
      try {
        await secure(c)
        expect(await c.command("AUTH PLAIN")).toMatch(/^334 ?$/)
        // C: 4,095 `A`s: over the 4,096-byte line limit with the CRLF.
        expect(await c.command("A".repeat(4095))).toBe("500 5.5.6 Authentication exchange line is too long")
        expect(await c.command("NOOP")).toBe("250 2.0.0 Ok")
        expect(await c.command(`AUTH PLAIN ${plainToken("alice", "secret")}`)).toBe("235 2.7.0 Authentication successful")
      } finally {
        c.close()
      }
    })

    it.each(["user name", "password"] as const)("answers an overlong AUTH LOGIN %s with 500 5.5.6, then NOOP gets 250", async (which) => {
      const c = await connect(bridge.port)
      try {
        await secure(c)
        expect(await c.command("AUTH LOGIN")).toBe(`334 ${b64("Username:")}`)
        if (which === "password") expect(await c.command(b64("alice"))).toBe(`334 ${b64("Password:")}`)
        expect(await c.command("A".repeat(4095))).toBe("500 5.5.6 Authentication exchange line is too long")
        expect(await c.command("NOOP")).toBe("250 2.0.0 Ok")
      } finally {
        c.close()
      }
    })

    it("counts an overlong AUTH response as an AUTH failure: the second one (maxAuthFailures 2) closes with 421 4.7.0", async () => {
      const c = await connect(bridge.port)
      try {
        await secure(c)
        expect(await c.command("AUTH PLAIN")).toMatch(/^334 ?$/)
        expect(await c.command("A".repeat(4095))).toBe("500 5.5.6 Authentication exchange line is too long")
        expect(await c.command("AUTH PLAIN")).toMatch(/^334 ?$/)
        expect(await c.command("A".repeat(5000))).toMatch(/^421 4\.7\.0 /)
        await c.closed()
      } finally {
        c.close()
      }
    })

    it("refuses base64 with non-zero bits before the padding (QR==) with 501 5.5.2", async () => {
      const c = await connect(bridge.port)
      try {
        await secure(c)
        expect(await c.command("AUTH LOGIN QR==")).toBe("501 5.5.2 Invalid base64 data")
        expect(await c.command("NOOP")).toBe("250 2.0.0 Ok")
      } finally {
        c.close()
      }
    })

    it("refuses AUTH before EHLO (STARTTLS forgot the first EHLO) with 503 5.5.1", async () => {
      const c = await connect(bridge.port)
      try {
        expect(await c.read()).toMatch(/^220 /)
        expect(await c.command("EHLO client.test")).toMatch(/^250-/)
        expect(await c.command("STARTTLS")).toBe("220 2.0.0 Ready to start TLS")
        await c.startTls()
        expect(await c.command(`AUTH PLAIN ${plainToken("alice", "secret")}`)).toMatch(/^503 5\.5\.1 /)
        await c.command("EHLO client.test")
        expect(await c.command(`AUTH PLAIN ${plainToken("alice", "secret")}`)).toBe("235 2.7.0 Authentication successful")
      } finally {
        c.close()
      }
    })

    it("refuses a second AUTH after success with 503 5.5.1", async () => {
      const c = await connect(bridge.port)
      try {
        const ehlo = await secure(c)
        expect(ehlo).toMatch(/AUTH PLAIN LOGIN/)
        expect(await c.command(`AUTH PLAIN ${plainToken("alice", "secret")}`)).toBe("235 2.7.0 Authentication successful")
        expect(await c.command(`AUTH PLAIN ${plainToken("alice", "secret")}`)).toMatch(/^503 5\.5\.1 /)
        expect(await c.command("AUTH LOGIN")).toMatch(/^503 5\.5\.1 /)
      } finally {
        c.close()
      }
    })

    it("closes with 421 4.7.0 after maxAuthFailures (2) wrong passwords", async () => {
      const c = await connect(bridge.port)
      try {
        await secure(c)
        expect(await c.command(`AUTH PLAIN ${plainToken("alice", "wrong1")}`)).toMatch(/^535 5\.7\.8 /)
        expect(await c.command(`AUTH PLAIN ${plainToken("alice", "wrong2")}`)).toMatch(/^421 4\.7\.0 /)
        await c.closed()
      } finally {
        c.close()
      }
    })

    it("refuses an unknown user with the same 535 5.7.8", async () => {
      const c = await connect(bridge.port)
      try {
        await secure(c)
        expect(await c.command(`AUTH PLAIN ${plainToken("mallory", "secret")}`)).toMatch(/^535 5\.7\.8 /)
      } finally {
        c.close()
      }
    })
  })
})

describe("AUTH without TLS when allowInsecureAuth is true", () => {
  let bridge: TestBridge

  beforeAll(async () => {
    bridge = await startBridge({ users: await usersFile(), senders: { alice: ["alice@example.com"] }, allowInsecureAuth: true })
  })
  afterAll(() => bridge.stop())

  it("advertises AUTH PLAIN LOGIN and no STARTTLS, and accepts PLAIN with 235 2.7.0", async () => {
    const c = await connect(bridge.port)
    try {
      expect(await c.read()).toMatch(/^220 /)
      const ehlo = await c.command("EHLO client.test")
      expect(ehlo).toMatch(/^250[- ]AUTH PLAIN LOGIN$/m)
      expect(ehlo).not.toMatch(/STARTTLS/)
      expect(await c.command(`AUTH PLAIN ${plainToken("alice", "secret")}`)).toBe("235 2.7.0 Authentication successful")
      expect(await c.command("MAIL FROM:<alice@example.com>")).toBe("250 2.1.0 Ok")
      expect(await c.command("RCPT TO:<bob@example.net>")).toBe("250 2.1.5 Ok")
    } finally {
      c.close()
    }
  })

  it("refuses AUTH after HELO (not EHLO) with 503 5.5.1", async () => {
    const c = await connect(bridge.port)
    try {
      expect(await c.read()).toMatch(/^220 /)
      expect(await c.command(`AUTH PLAIN ${plainToken("alice", "secret")}`)).toMatch(/^503 5\.5\.1 /)
      expect(await c.command("HELO client.test")).toMatch(/^250 /)
      expect(await c.command(`AUTH PLAIN ${plainToken("alice", "secret")}`)).toMatch(/^503 5\.5\.1 /)
    } finally {
      c.close()
    }
  })

  it("delivers with swaks using AUTH LOGIN in the clear", async () => {
    const before = bridge.delivered().length
    const r = await run("swaks", [
      "--server", `127.0.0.1:${bridge.port}`, "--auth", "LOGIN", "--auth-user", "alice", "--auth-password", "secret",
      "--from", "alice@example.com", "--to", "bob@example.net"
    ])
    expect(r.stdout).toMatch(/<- +235 2\.7\.0 /)
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(bridge.delivered().length).toBe(before + 1)
  })
})
