// PROXY protocol v1/v2 on the listener (issue 5, "Scale-out"): connections from the configured
// balancer networks must start with a PROXY header, and the address in it is the client for trust,
// the per-IP limit and the Received header. Anyone else is a direct client, header or not.
//
//   (from the balancer 127.0.0.1, the header claiming 192.0.2.7, trusted network 192.0.2.0/24)
//   C: PROXY TCP4 192.0.2.7 127.0.0.1 51000 2525
//   S: 220 bridge.test ESMTP
//   C: EHLO client.test / MAIL FROM:<alice@example.org> / RCPT TO:<bob@remote.example>
//   S: 250 ... / 250 2.1.0 / 250 2.1.5      (relayed without AUTH: the client is trusted)
//   (Maildir: Received: from client.test ([192.0.2.7]) by bridge.test ...)
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as net from "node:net"
import { Duplex } from "node:stream"
import * as tls from "node:tls"
import { startBridge, type TestBridge } from "../support/bridge.ts"
import { testCertificate } from "../support/certs.ts"
import { dial, type Wire, wire } from "../support/haproxy.ts"

const text = (s: string): Uint8Array => new TextEncoder().encode(s)

/** A v2 PROXY header (command PROXY, TCP over IPv4) for `src:sport` -> `dst:dport`. */
const v2Header = (src: string, sport: number, dst: string, dport: number): Uint8Array =>
  Uint8Array.from([
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
    0x21, 0x11, 0x00, 0x0c,
    ...src.split(".").map(Number),
    ...dst.split(".").map(Number),
    sport >> 8, sport & 0xff, dport >> 8, dport & 0xff
  ])

/** A v2 LOCAL header, as HAProxy's `check-send-proxy` health checks send it. */
const v2Local = Uint8Array.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x20, 0x00, 0x00, 0x00])

const v1Header = (src: string, sport: number, dst: string, dport: number): string => `PROXY TCP4 ${src} ${dst} ${sport} ${dport}\r\n`

const concat = (a: Uint8Array, b: Uint8Array): Uint8Array => {
  const out = new Uint8Array(a.byteLength + b.byteLength)
  out.set(a)
  out.set(b, a.byteLength)
  return out
}

/** The full trusted transaction; returns the final reply to the message. */
const relayOne = async (c: Wire, subject: string): Promise<string> => {
  expect(await c.command("EHLO client.test")).toMatch(/^250[- ]/)
  expect(await c.command("MAIL FROM:<alice@example.org>")).toBe("250 2.1.0 Ok")
  expect(await c.command("RCPT TO:<bob@remote.example>")).toBe("250 2.1.5 Ok")
  expect(await c.command("DATA")).toMatch(/^354 /)
  return c.command(`Subject: ${subject}\r\n\r\nbody\r\n.`)
}

const deliveredWith = (bridge: TestBridge, subject: string): string | undefined =>
  bridge.delivered().map((b) => b.toString("utf8")).find((m) => m.includes(`Subject: ${subject}\r\n`))

const receivedOf = (message: string): string => /^Received: (.*(?:\r\n[ \t].*)*)/m.exec(message)?.[1] ?? ""

describe("PROXY protocol from a configured balancer (proxyProtocol: 127.0.0.1/32, trust: 192.0.2.0/24)", () => {
  let bridge: TestBridge
  beforeAll(async () => {
    const { cert, key } = testCertificate()
    bridge = await startBridge({
      proxyProtocol: ["127.0.0.1/32"],
      trust: ["192.0.2.0/24"],
      tls: { cert, key },
      listenTls: ["127.0.0.1:0"],
      limits: { greetingTimeout: "2 seconds" }
    })
  })
  afterAll(() => bridge.stop())

  it("C: PROXY TCP4 192.0.2.7 ... (v1); the session is 192.0.2.7: relayed without AUTH, Received says [192.0.2.7]", async () => {
    const c = await dial(bridge.port)
    try {
      c.send(v1Header("192.0.2.7", 51000, "127.0.0.1", bridge.port))
      expect(await c.read()).toMatch(/^220 bridge\.test /)
      expect(await relayOne(c, "proxy v1")).toMatch(/^250 2\.0\.0 /)
      await c.command("QUIT")
    } finally {
      c.destroy()
    }
    const received = receivedOf(deliveredWith(bridge, "proxy v1") ?? "")
    expect(received).toMatch(/^from client\.test \(\[192\.0\.2\.7\]\) by bridge\.test /)
    expect(received).not.toContain("127.0.0.1")
  })

  it("C: a v2 header for 192.0.2.7; the session is 192.0.2.7: relayed without AUTH, Received says [192.0.2.7]", async () => {
    const c = await dial(bridge.port)
    try {
      c.send(v2Header("192.0.2.7", 51001, "127.0.0.1", bridge.port))
      expect(await c.read()).toMatch(/^220 bridge\.test /)
      expect(await relayOne(c, "proxy v2")).toMatch(/^250 2\.0\.0 /)
    } finally {
      c.destroy()
    }
    expect(receivedOf(deliveredWith(bridge, "proxy v2") ?? "")).toMatch(/^from client\.test \(\[192\.0\.2\.7\]\) by bridge\.test /)
  })

  it("C: the v2 header and EHLO in one write: S: 220, then the EHLO reply (the rest is not lost)", async () => {
    const c = await dial(bridge.port)
    try {
      c.send(concat(v2Header("192.0.2.7", 51002, "127.0.0.1", bridge.port), text("EHLO client.test\r\n")))
      expect(await c.read()).toMatch(/^220 bridge\.test /)
      expect(await c.read()).toMatch(/^250-bridge\.test/)
      expect(await c.command("MAIL FROM:<alice@example.org>")).toBe("250 2.1.0 Ok")
      expect(await c.command("RCPT TO:<bob@remote.example>")).toBe("250 2.1.5 Ok")
    } finally {
      c.destroy()
    }
  })

  it("C: the v1 line, EHLO, MAIL and RCPT in one write (pipelined behind the header): every reply comes", async () => {
    const c = await dial(bridge.port)
    try {
      c.send(`${v1Header("192.0.2.7", 51003, "127.0.0.1", bridge.port)}EHLO client.test\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@remote.example>\r\n`)
      expect(await c.read()).toMatch(/^220 /)
      expect(await c.read()).toMatch(/^250-/)
      expect(await c.read()).toBe("250 2.1.0 Ok")
      expect(await c.read()).toBe("250 2.1.5 Ok")
    } finally {
      c.destroy()
    }
  })

  // With TLS configured, an untrusted client must AUTH before MAIL.
  it("C: a header claiming 198.51.100.9 (outside trust): S: 530 5.7.0 to MAIL, as for a direct untrusted client", async () => {
    const c = await dial(bridge.port)
    try {
      c.send(v1Header("198.51.100.9", 40000, "127.0.0.1", bridge.port))
      expect(await c.read()).toMatch(/^220 /)
      await c.command("EHLO client.test")
      expect(await c.command("MAIL FROM:<alice@example.org>")).toBe("530 5.7.0 Authentication required")
    } finally {
      c.destroy()
    }
  })

  it("C: a v2 LOCAL header (a health check): the session is the balancer's own address, not trusted: S: 530 5.7.0 to MAIL", async () => {
    const c = await dial(bridge.port)
    try {
      c.send(v2Local)
      expect(await c.read()).toMatch(/^220 /)
      await c.command("EHLO check.test")
      expect(await c.command("MAIL FROM:<alice@example.org>")).toBe("530 5.7.0 Authentication required")
    } finally {
      c.destroy()
    }
  })

  it("C: EHLO (no header) from the balancer network: no greeting, the connection is closed", async () => {
    const c = await dial(bridge.port)
    try {
      c.send("EHLO client.test\r\n")
      await c.closed()
      expect(c.transcript()).not.toMatch(/^S:/m)
    } finally {
      c.destroy()
    }
  })

  it("C: (nothing) from the balancer network: closed after the greeting timeout, never greeted", async () => {
    const c = await dial(bridge.port)
    try {
      await c.closed(6_000)
      expect(c.transcript()).toBe("")
    } finally {
      c.destroy()
    }
  })

  it.each([
    ["a v1 line with a bad port", "PROXY TCP4 192.0.2.7 127.0.0.1 99999 25\r\n"],
    ["a v1 line with no CRLF within 107 bytes", `PROXY TCP4 ${"9".repeat(120)}`],
    ["a v2 header with an unknown command", "\r\n\r\n\0\r\nQUIT\n\x22\x11\x00\x0c123456789012"],
    ["a v2 signature with a wrong byte", "\r\n\r\n\0\r\nQUIX\n\x21\x11\x00\x0c123456789012"]
  ])("C: %s: no greeting, the connection is closed", async (_, header) => {
    const c = await dial(bridge.port)
    try {
      c.send(Buffer.from(header, "latin1"))
      await c.closed()
      expect(c.transcript()).not.toMatch(/^S:/m)
    } finally {
      c.destroy()
    }
  })

  it("a client from 127.0.0.2 (not a balancer) is direct: S: 220 at once, C: PROXY ... S: 500 5.5.2, and it is not trusted (530 5.7.0 to MAIL)", async () => {
    const c = await dial(bridge.port, "127.0.0.2")
    try {
      expect(await c.read()).toMatch(/^220 bridge\.test /)
      expect(await c.command(v1Header("192.0.2.7", 51000, "127.0.0.1", bridge.port).trimEnd())).toBe("500 5.5.2 Command unrecognized")
      await c.command("EHLO client.test")
      expect(await c.command("MAIL FROM:<alice@example.org>")).toBe("530 5.7.0 Authentication required")
    } finally {
      c.destroy()
    }
  })

  describe("implicit TLS (listenTls) behind a v2 header", () => {
    /**
     * TLS to `port` behind `header`. With `oneWrite` the header travels in the same write as the
     * ClientHello (TLS runs over a duplex that prepends it); otherwise the header goes first and
     * the handshake starts 100 ms later, so the bridge reads them apart.
     */
    const tlsBehindHeader = (port: number, header: Uint8Array, oneWrite: boolean): Promise<{ wire: Wire; secure: tls.TLSSocket }> =>
      new Promise((resolve, reject) => {
        const raw = net.connect({ host: "127.0.0.1", port })
        const timer = setTimeout(() => {
          raw.destroy()
          reject(new Error("TLS handshake behind the PROXY header did not finish within 5 s"))
        }, 5_000)
        const fail = (error: Error) => {
          clearTimeout(timer)
          raw.destroy()
          reject(error)
        }
        raw.once("error", fail)
        const handshake = (transport: net.Socket | Duplex) => {
          const secure = tls.connect({ socket: transport, rejectUnauthorized: false, servername: "localhost" })
          const w = wire(secure)
          secure.once("secureConnect", () => {
            clearTimeout(timer)
            resolve({ wire: w, secure })
          })
          secure.once("error", fail)
        }
        raw.once("connect", () => {
          if (!oneWrite) {
            raw.write(header)
            setTimeout(() => handshake(raw), 100)
            return
          }
          let first = true
          const carrier = new Duplex({
            read() {},
            write(chunk: Buffer, _encoding, callback) {
              raw.write(first ? concat(header, chunk) : chunk, callback)
              first = false
            },
            final(callback) {
              raw.end(callback)
            },
            destroy(error, callback) {
              raw.destroy()
              callback(error)
            }
          })
          raw.on("data", (chunk: Buffer) => carrier.push(chunk))
          raw.on("end", () => carrier.push(null))
          handshake(carrier)
        })
      })

    it.each([
      ["in one write with the ClientHello", true],
      ["and the ClientHello 100 ms later", false]
    ])("C: the v2 header %s: S: 220 over TLS, the session is 192.0.2.7 and trusted", async (_, oneWrite) => {
      const port = bridge.tlsPort!
      const { wire: c, secure } = await tlsBehindHeader(port, v2Header("192.0.2.7", 51100, "127.0.0.1", port), oneWrite)
      try {
        expect(secure.encrypted).toBe(true)
        expect(await c.read()).toMatch(/^220 bridge\.test /)
        const subject = `proxy tls ${oneWrite ? "one write" : "two writes"}`
        expect(await relayOne(c, subject)).toMatch(/^250 2\.0\.0 /)
        const received = receivedOf(deliveredWith(bridge, subject) ?? "")
        expect(received).toMatch(/^from client\.test \(\[192\.0\.2\.7\]\) by bridge\.test /)
        expect(received).toMatch(/\(using TLS/)
      } finally {
        c.destroy()
      }
    })
  })
})

describe("the per-IP limit behind a balancer (maxConnectionsPerIp: 1) counts real clients, not the balancer", () => {
  let bridge: TestBridge
  beforeAll(async () => {
    bridge = await startBridge({ proxyProtocol: ["127.0.0.1/32"], limits: { maxConnectionsPerIp: 1, greetingTimeout: "2 seconds" } })
  })
  afterAll(() => bridge.stop())

  it("192.0.2.7 and 192.0.2.8 through the same balancer are both greeted; a second 192.0.2.7 gets 421 4.7.0", async () => {
    const first = await dial(bridge.port)
    const second = await dial(bridge.port)
    const third = await dial(bridge.port)
    try {
      first.send(v1Header("192.0.2.7", 50001, "127.0.0.1", bridge.port))
      expect(await first.read()).toMatch(/^220 /)
      second.send(v2Header("192.0.2.8", 50002, "127.0.0.1", bridge.port))
      expect(await second.read()).toMatch(/^220 /)
      third.send(v2Header("192.0.2.7", 50003, "127.0.0.1", bridge.port))
      expect(await third.read()).toBe("421 4.7.0 Too many connections from your address, try again later")
      await third.closed()
      // The first two are still served.
      expect(await first.command("NOOP")).toMatch(/^250 /)
      expect(await second.command("NOOP")).toMatch(/^250 /)
    } finally {
      first.destroy()
      second.destroy()
      third.destroy()
    }
  })

  it("once 192.0.2.7 has left, it is admitted again", async () => {
    const first = await dial(bridge.port)
    try {
      first.send(v1Header("192.0.2.7", 50004, "127.0.0.1", bridge.port))
      expect(await first.read()).toMatch(/^220 /)
      expect(await first.command("QUIT")).toMatch(/^221 /)
      await first.closed()
    } finally {
      first.destroy()
    }
    // The slot is released when the server side of the session ends: allow it a moment.
    let greeting = ""
    for (let attempt = 0; attempt < 50 && !greeting.startsWith("220"); attempt++) {
      const again = await dial(bridge.port)
      try {
        again.send(v1Header("192.0.2.7", 50005, "127.0.0.1", bridge.port))
        greeting = await again.read()
      } finally {
        again.destroy()
      }
      if (!greeting.startsWith("220")) await new Promise((resolve) => setTimeout(resolve, 50))
    }
    expect(greeting).toMatch(/^220 /)
  })
})
