/**
 * Implicit TLS (RFC 8314, "submissions" on 465): the handshake comes before the greeting, AUTH is
 * offered at once, STARTTLS never is.
 */
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import nodemailer from "nodemailer"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { hashPassword } from "../../plugins/auth-htpasswd/index.ts"
import { startBridge, stripTrace, type TestBridge } from "../support/bridge.ts"
import { testCertificate } from "../support/certs.ts"
import { run } from "../support/exec.ts"
import { connect } from "../support/SmtpClient.ts"

const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64")

describe("implicit-TLS listener (listenTls)", () => {
  let bridge: TestBridge
  let tlsPort: number

  beforeAll(async () => {
    const { cert, key } = testCertificate()
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-implicit-"))
    const users = path.join(dir, "users.htpasswd")
    fs.writeFileSync(users, `alice@example.com:${await hashPassword("secret", 4)}\n`)
    bridge = await startBridge({ tls: { cert, key }, users, listenTls: ["127.0.0.1:0"] })
    if (bridge.tlsPort === undefined) throw new Error("no implicit-TLS listener was bound")
    tlsPort = bridge.tlsPort
  })
  afterAll(() => bridge.stop())

  it("binds a second port next to the plain one", () => {
    expect(tlsPort).toBeGreaterThan(0)
    expect(tlsPort).not.toBe(bridge.port)
  })

  it("greets over TLS with openssl s_client; EHLO offers AUTH and no STARTTLS", async () => {
    const r = await run("openssl", [
      "s_client", "-connect", `127.0.0.1:${tlsPort}`, "-servername", "localhost", "-crlf", "-ign_eof", "-brief"
    ], { input: "EHLO openssl.test\nQUIT\n", timeoutMs: 15_000 })
    const all = r.stdout + r.stderr
    expect(r.timedOut, all).toBe(false)
    expect(all).toMatch(/CONNECTION ESTABLISHED/)
    expect(r.stdout).toMatch(/^220 bridge\.test ESMTP/m)
    expect(r.stdout).toMatch(/^250[- ]AUTH PLAIN LOGIN\r?$/m)
    expect(r.stdout).not.toMatch(/STARTTLS/)
    expect(r.stdout).toMatch(/^221 2\.0\.0 /m)
  })

  it("says nothing to a plaintext client on the TLS port (no greeting before the handshake)", async () => {
    const c = await connect(tlsPort)
    try {
      await expect(c.read(500)).rejects.toThrow(/timed out|closed/)
      expect(c.transcript()).not.toMatch(/S: 220/)
    } finally {
      c.close()
    }
  })

  it("C: AUTH PLAIN right after EHLO (no STARTTLS): 235 2.7.0; STARTTLS is refused with 503 5.5.1", async () => {
    const c = await connect(tlsPort, { tls: true })
    try {
      expect(await c.read()).toMatch(/^220 bridge\.test /)
      await c.command("EHLO client.test")
      expect(await c.command("STARTTLS")).toMatch(/^503 5\.5\.1 /)
      expect(await c.command(`AUTH PLAIN ${b64("\0alice@example.com\0secret")}`)).toBe("235 2.7.0 Authentication successful")
    } finally {
      c.close()
    }
  })

  it("delivers a message from nodemailer with secure: true and AUTH", async () => {
    const transport = nodemailer.createTransport({
      host: "127.0.0.1",
      port: tlsPort,
      secure: true,
      tls: { rejectUnauthorized: false },
      auth: { user: "alice@example.com", pass: "secret" },
      connectionTimeout: 10_000,
      greetingTimeout: 10_000,
      socketTimeout: 10_000
    })
    try {
      const info = await transport.sendMail({
        from: "alice@example.com",
        to: ["bob@example.net", "carol@example.org"],
        subject: "implicit TLS",
        text: "Sent over port 465 style TLS.\n"
      })
      expect(info.response).toMatch(/^250 2\.0\.0 Ok: queued as /)
      expect(info.accepted).toEqual(["bob@example.net", "carol@example.org"])
    } finally {
      transport.close()
    }
    const files = bridge.delivered().map((f) => f.toString("utf8")).filter((f) => f.includes("Subject: implicit TLS"))
    expect(files).toHaveLength(1)
    const file = files[0]!
    // The trace records implicit TLS and the authenticated submission.
    expect(file).toMatch(/with\s+ESMTPSA\b[\s\S]*\(using TLSv1\.[23]/)
    expect(stripTrace(Buffer.from(file))).toMatch(/\r\n\r\nSent over port 465 style TLS\.\r\n$/)
  })

  it("refuses nodemailer with a wrong password: 535 5.7.8", async () => {
    const transport = nodemailer.createTransport({
      host: "127.0.0.1",
      port: tlsPort,
      secure: true,
      tls: { rejectUnauthorized: false },
      auth: { user: "alice@example.com", pass: "nope" },
      connectionTimeout: 10_000,
      greetingTimeout: 10_000,
      socketTimeout: 10_000
    })
    try {
      await expect(transport.verify()).rejects.toMatchObject({ code: "EAUTH", responseCode: 535 })
    } finally {
      transport.close()
    }
  })

  it("delivers a full raw transcript over implicit TLS with AUTH LOGIN", async () => {
    const c = await connect(tlsPort, { tls: true })
    try {
      expect(await c.read()).toMatch(/^220 /)
      await c.command("EHLO client.test")
      expect(await c.command("AUTH LOGIN")).toMatch(/^334 /)
      expect(await c.command(b64("alice@example.com"))).toMatch(/^334 /)
      expect(await c.command(b64("secret"))).toBe("235 2.7.0 Authentication successful")
      expect(await c.command("MAIL FROM:<alice@example.com>")).toBe("250 2.1.0 Ok")
      expect(await c.command("RCPT TO:<dave@example.net>")).toBe("250 2.1.5 Ok")
      expect(await c.command("DATA")).toMatch(/^354 /)
      expect(await c.command("Subject: raw implicit\r\n\r\nbody line\r\n.")).toMatch(/^250 2\.0\.0 Ok: queued as /)
      expect(await c.command("QUIT")).toMatch(/^221 /)
      await c.closed()
    } finally {
      c.close()
    }
    const files = bridge.delivered().filter((f) => f.toString("utf8").includes("Subject: raw implicit"))
    expect(files).toHaveLength(1)
    expect(stripTrace(files[0]!)).toBe("Subject: raw implicit\r\n\r\nbody line\r\n")
  })
})

describe("a client that leaves during the implicit-TLS handshake", () => {
  it("is let go at once: the bridge then stops within 5 s (not after the 30 s greeting timeout)", async () => {
    const { cert, key } = testCertificate()
    const bridge = await startBridge({ tls: { cert, key }, listenTls: ["127.0.0.1:0"] })
    try {
      const c = await connect(bridge.tlsPort ?? 0)
      // Give the server time to start its handshake on this socket, then hang up without a ClientHello.
      await expect(c.read(200)).rejects.toThrow(/timed out/)
      c.close()
      await new Promise((resolve) => setTimeout(resolve, 200))
    } finally {
      const started = Date.now()
      await Promise.race([
        bridge.stop(),
        new Promise((_, reject) => setTimeout(() => reject(new Error("bridge.stop() still waiting after 5 s")), 5_000))
      ])
      expect(Date.now() - started).toBeLessThan(5_000)
    }
  })
})

/**
 * What the server sends a raw TCP client from `localAddress` before it closes (bounded by 3 s). On an
 * implicit-TLS port a real client has sent its ClientHello and reads whatever comes as TLS records.
 */
const bytesBeforeClose = (port: number, localAddress: string): Promise<string> =>
  new Promise((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port, localAddress })
    let text = ""
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`not closed within 3 s; sent ${JSON.stringify(text)}`))
    }, 3_000)
    socket.on("data", (chunk: Buffer) => {
      text += chunk.toString("latin1")
    })
    socket.on("error", () => {})
    socket.on("close", () => {
      clearTimeout(timer)
      resolve(text)
    })
  })

// RFC 8314 section 3.3: on the "submissions" port the TLS handshake begins at once and SMTP is only
// ever TLS application data. A plaintext "421 4.7.0 Too many connections" there reached TLS clients
// as "wrong version number" (Bun, Node) or "received corrupt message of type InvalidContentType"
// (Deno): a TLS misconfiguration, by the look of it, not a busy server. A refusal closes instead.
//
//   C: (TCP connection to the implicit-TLS port, past the limit)
//   S: (closes; not a byte)
describe("an implicit-TLS listener past its connection limits", () => {
  it("refuses past maxConnections by closing without a byte, then greets over TLS once a slot is free", async () => {
    const { cert, key } = testCertificate()
    const bridge = await startBridge({ tls: { cert, key }, listenTls: ["127.0.0.1:0"], trust: ["127.0.0.0/8"], limits: { maxConnections: 1 } })
    const port = bridge.tlsPort ?? 0
    try {
      const first = await connect(port, { tls: true })
      expect(await first.read()).toMatch(/^220 bridge\.test /)
      expect(await bytesBeforeClose(port, "127.0.0.2")).toBe("")
      first.close()
      let greeting = ""
      for (let attempt = 0; attempt < 20 && !greeting.startsWith("220 "); attempt++) {
        await new Promise((r) => setTimeout(r, 50))
        const next = await connect(port, { tls: true }).catch(() => undefined)
        greeting = (await next?.read(1_000).catch(() => "")) ?? ""
        next?.close()
      }
      expect(greeting).toMatch(/^220 bridge\.test /)
    } finally {
      await bridge.stop()
    }
  })

  it("refuses past maxConnectionsPerIp by closing without a byte; another address is greeted", async () => {
    const { cert, key } = testCertificate()
    const bridge = await startBridge({ tls: { cert, key }, listenTls: ["127.0.0.1:0"], limits: { maxConnectionsPerIp: 1 } })
    const port = bridge.tlsPort ?? 0
    try {
      const first = await connect(port, { tls: true, localAddress: "127.0.0.3" })
      expect(await first.read()).toMatch(/^220 bridge\.test /)
      expect(await bytesBeforeClose(port, "127.0.0.3")).toBe("")
      const other = await connect(port, { tls: true, localAddress: "127.0.0.4" })
      expect(await other.read()).toMatch(/^220 bridge\.test /)
      first.close()
      other.close()
    } finally {
      await bridge.stop()
    }
  })
})
