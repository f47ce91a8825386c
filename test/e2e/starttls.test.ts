/**
 * STARTTLS (RFC 3207): the upgrade with openssl s_client and the raw client, no command injection
 * across the upgrade, the session reset it implies, and the refusals around it.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { hashPassword } from "../../plugins/auth-htpasswd/index.ts"
import { startBridge, type TestBridge } from "../support/bridge.ts"
import { testCertificate } from "../support/certs.ts"
import { run } from "../support/exec.ts"
import { type Client, connect } from "../support/SmtpClient.ts"

const usersFile = async (): Promise<string> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-starttls-"))
  const file = path.join(dir, "users.htpasswd")
  fs.writeFileSync(file, `alice:${await hashPassword("secret", 4)}\n`)
  return file
}

/** S: 220 greeting; C: EHLO; returns the EHLO reply. */
const greet = async (c: Client): Promise<string> => {
  expect(await c.read()).toMatch(/^220 bridge\.test /)
  return c.command("EHLO client.test")
}

describe("STARTTLS with a certificate configured", () => {
  let bridge: TestBridge

  beforeAll(async () => {
    const { cert, key } = testCertificate()
    // Loopback is trusted so that MAIL/RCPT succeed without AUTH: a 503 seen below is the sequence, not policy.
    bridge = await startBridge({ tls: { cert, key }, users: await usersFile(), trust: ["127.0.0.0/8"] })
  })
  afterAll(() => bridge.stop())

  it("upgrades with openssl s_client -starttls smtp, then answers EHLO with AUTH and without STARTTLS", async () => {
    const r = await run("openssl", [
      "s_client", "-starttls", "smtp", "-connect", `127.0.0.1:${bridge.port}`, "-servername", "localhost",
      "-crlf", "-ign_eof", "-brief"
    ], { input: "EHLO openssl.test\nQUIT\n", timeoutMs: 15_000 })
    const all = r.stdout + r.stderr
    expect(r.timedOut, all).toBe(false)
    expect(all).toMatch(/CONNECTION ESTABLISHED/)
    expect(all).toMatch(/Protocol version: TLSv1\.[23]/)
    expect(r.stdout).toMatch(/^250-bridge\.test greets openssl\.test\r?$/m)
    expect(r.stdout).toMatch(/^250[- ]AUTH PLAIN LOGIN\r?$/m)
    expect(r.stdout).not.toMatch(/STARTTLS/)
    expect(r.stdout).toMatch(/^221 2\.0\.0 /m)
  })

  it("C: STARTTLS / S: 220 2.0.0, then the handshake, then EHLO advertises AUTH and no STARTTLS", async () => {
    const c = await connect(bridge.port)
    try {
      const plain = await greet(c)
      expect(plain).toMatch(/^250[- ]STARTTLS$/m)
      expect(plain).not.toMatch(/AUTH/)
      expect(await c.command("STARTTLS")).toBe("220 2.0.0 Ready to start TLS")
      await c.startTls()
      expect(c.encrypted).toBe(true)
      const secure = await c.command("EHLO client.test")
      expect(secure.split("\n")[0]).toBe("250-bridge.test greets client.test")
      expect(secure).toMatch(/^250[- ]AUTH PLAIN LOGIN$/m)
      expect(secure).not.toMatch(/STARTTLS/)
    } finally {
      c.close()
    }
  })

  it.each([
    ["RSET", "STARTTLS\r\nRSET\r\n"],
    ["MAIL FROM", "STARTTLS\r\nMAIL FROM:<x@y.example>\r\n"],
    ["NOOP, NOOP", "STARTTLS\r\nNOOP\r\nNOOP\r\n"]
  ])("discards %s pipelined after STARTTLS in the same write: no reply for the injected lines", async (_name, injection) => {
    const c = await connect(bridge.port)
    try {
      await greet(c)
      // C: STARTTLS<CRLF>RSET<CRLF>  (one write, as a man in the middle would append it)
      c.send(injection)
      expect(await c.read()).toBe("220 2.0.0 Ready to start TLS")
      await c.startTls()
      // The first reply over TLS is the EHLO's; the injected command got none, before or after the upgrade.
      const ehlo = await c.command("EHLO client.test")
      expect(ehlo.split("\n")[0]).toBe("250-bridge.test greets client.test")
      expect(await c.command("NOOP")).toBe("250 2.0.0 Ok")
      // An injected MAIL did not open a transaction either.
      expect(await c.command("RCPT TO:<bob@example.net>")).toMatch(/^503 5\.5\.1 /)
      expect(c.transcript()).not.toMatch(/S: 250 2\.1\.0/)
    } finally {
      c.close()
    }
  })

  it("forgets the EHLO: MAIL after STARTTLS but before a new EHLO gets 503 5.5.1", async () => {
    const c = await connect(bridge.port)
    try {
      await greet(c)
      expect(await c.command("STARTTLS")).toBe("220 2.0.0 Ready to start TLS")
      await c.startTls()
      expect(await c.command("MAIL FROM:<a@example.com>")).toMatch(/^503 5\.5\.1 /)
      await c.command("EHLO client.test")
      expect(await c.command("MAIL FROM:<a@example.com>")).toBe("250 2.1.0 Ok")
    } finally {
      c.close()
    }
  })

  it("forgets a transaction opened before STARTTLS: RCPT after the new EHLO gets 503 5.5.1", async () => {
    const c = await connect(bridge.port)
    try {
      await greet(c)
      expect(await c.command("MAIL FROM:<a@example.com>")).toBe("250 2.1.0 Ok")
      expect(await c.command("STARTTLS")).toBe("220 2.0.0 Ready to start TLS")
      await c.startTls()
      await c.command("EHLO client.test")
      expect(await c.command("RCPT TO:<bob@example.net>")).toMatch(/^503 5\.5\.1 /)
    } finally {
      c.close()
    }
  })

  it("refuses a second STARTTLS with 503 5.5.1 and keeps the session", async () => {
    const c = await connect(bridge.port)
    try {
      await greet(c)
      expect(await c.command("STARTTLS")).toBe("220 2.0.0 Ready to start TLS")
      await c.startTls()
      await c.command("EHLO client.test")
      expect(await c.command("STARTTLS")).toMatch(/^503 5\.5\.1 /)
      expect(await c.command("NOOP")).toBe("250 2.0.0 Ok")
    } finally {
      c.close()
    }
  })

  it("refuses STARTTLS with an argument with 501 5.5.4", async () => {
    const c = await connect(bridge.port)
    try {
      await greet(c)
      expect(await c.command("STARTTLS now")).toMatch(/^501 5\.5\.4 /)
      expect(await c.command("NOOP")).toBe("250 2.0.0 Ok")
    } finally {
      c.close()
    }
  })
})

describe("STARTTLS without a certificate", () => {
  let bridge: TestBridge

  beforeAll(async () => {
    bridge = await startBridge({ trust: ["127.0.0.0/8"] })
  })
  afterAll(() => bridge.stop())

  it("is not advertised in EHLO and is refused with 502 5.5.1", async () => {
    const c = await connect(bridge.port)
    try {
      const ehlo = await greet(c)
      expect(ehlo).not.toMatch(/STARTTLS/)
      expect(await c.command("STARTTLS")).toMatch(/^502 5\.5\.1 /)
      // Still in plaintext and usable.
      expect(await c.command("MAIL FROM:<a@example.com>")).toBe("250 2.1.0 Ok")
    } finally {
      c.close()
    }
  })

  it("makes openssl s_client -starttls smtp fail", async () => {
    const r = await run("openssl", [
      "s_client", "-starttls", "smtp", "-connect", `127.0.0.1:${bridge.port}`, "-crlf", "-brief"
    ], { input: "QUIT\n", timeoutMs: 15_000 })
    expect(r.timedOut).toBe(false)
    expect(r.stdout + r.stderr).not.toMatch(/CONNECTION ESTABLISHED/)
    expect(r.code).not.toBe(0)
  })
})

describe("a client that leaves during the STARTTLS handshake", () => {
  it("is let go at once: the bridge then stops within 5 s (not after the 30 s greeting timeout)", async () => {
    const { cert, key } = testCertificate()
    const bridge = await startBridge({ tls: { cert, key } })
    try {
      const c = await connect(bridge.port)
      await greet(c)
      expect(await c.command("STARTTLS")).toBe("220 2.0.0 Ready to start TLS")
      // C: (hangs up instead of sending a ClientHello)
      c.close()
      await new Promise((resolve) => setTimeout(resolve, 200))
    } finally {
      await Promise.race([
        bridge.stop(),
        new Promise((_, reject) => setTimeout(() => reject(new Error("bridge.stop() still waiting after 5 s")), 5_000))
      ])
    }
  })
})
