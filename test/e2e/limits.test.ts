// Connection and command limits (DESIGN.md section 3): the extra connection gets 421 4.7.0, too
// many bad commands end the session with 421, and an overlong line is refused with 500 5.5.2
// while the session goes on, until a client has sent more than 1 MiB of such lines (421).
//
//   C: (third connection while two are open)
//   S: 421 4.7.0 Too many connections, try again later
//   (the server closes)
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as net from "node:net"
import type { TestBridge } from "../support/bridge.ts"
import { startBridge } from "../support/bridge.ts"
import type { Client } from "../support/SmtpClient.ts"
import { connect } from "../support/SmtpClient.ts"

/**
 * The first line the server sends to a connection from `localAddress` (another loopback address
 * shows that a per-IP limit is per IP), and whether it then closed; bounded by 3 s.
 */
const firstLine = (port: number, localAddress: string): Promise<{ line: string; socket: net.Socket }> =>
  new Promise((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port, localAddress })
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`no line from the server within 3 s (from ${localAddress})`))
    }, 3_000)
    let text = ""
    socket.on("data", (chunk: Buffer) => {
      text += chunk.toString("latin1")
      const end = text.indexOf("\r\n")
      if (end !== -1) {
        clearTimeout(timer)
        resolve({ line: text.slice(0, end), socket })
      }
    })
    socket.on("error", (error) => {
      clearTimeout(timer)
      reject(error)
    })
  })

const closedBy = (socket: net.Socket): Promise<void> =>
  new Promise((resolve, reject) => {
    if (socket.destroyed || socket.readableEnded) return resolve()
    const timer = setTimeout(() => reject(new Error("the server did not close within 3 s")), 3_000)
    socket.once("close", () => {
      clearTimeout(timer)
      resolve()
    })
    socket.resume()
  })

const eventually = async (check: () => boolean, timeoutMs = 3_000): Promise<boolean> => {
  const deadline = Date.now() + timeoutMs
  while (!check() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
  return check()
}

describe("connection limits", () => {
  it("refuses the connection past maxConnections with 421 4.7.0 and closes it", async () => {
    const bridge = await startBridge({ trust: ["127.0.0.0/8"], limits: { maxConnections: 2, maxConnectionsPerIp: 10 } })
    const open: Array<net.Socket> = []
    try {
      for (const from of ["127.0.0.1", "127.0.0.2"]) {
        const { line, socket } = await firstLine(bridge.port, from)
        open.push(socket)
        expect(line).toMatch(/^220 /)
      }
      const extra = await firstLine(bridge.port, "127.0.0.3")
      open.push(extra.socket)
      expect(extra.line).toBe("421 4.7.0 Too many connections, try again later")
      await closedBy(extra.socket)

      // A slot freed is a slot available again.
      open[0]!.destroy()
      expect(await eventually(() => bridge.running.connections() === 1)).toBe(true)
      const again = await firstLine(bridge.port, "127.0.0.3")
      open.push(again.socket)
      expect(again.line).toMatch(/^220 /)
    } finally {
      for (const s of open) s.destroy()
      await bridge.stop()
    }
  })

  it("refuses the connection past maxConnectionsPerIp with 421 4.7.0, but not one from another address", async () => {
    const bridge = await startBridge({ limits: { maxConnectionsPerIp: 2 } })
    const open: Array<net.Socket> = []
    try {
      for (let i = 0; i < 2; i++) {
        const { line, socket } = await firstLine(bridge.port, "127.0.0.1")
        open.push(socket)
        expect(line).toMatch(/^220 /)
      }
      const extra = await firstLine(bridge.port, "127.0.0.1")
      open.push(extra.socket)
      expect(extra.line).toBe("421 4.7.0 Too many connections from your address, try again later")
      await closedBy(extra.socket)

      const other = await firstLine(bridge.port, "127.0.0.2")
      open.push(other.socket)
      expect(other.line).toMatch(/^220 /)
    } finally {
      for (const s of open) s.destroy()
      await bridge.stop()
    }
  })

  it("does not hold trusted networks to maxConnectionsPerIp (like Postfix's mynetworks exception)", async () => {
    const bridge = await startBridge({ trust: ["127.0.0.1/32"], limits: { maxConnectionsPerIp: 2 } })
    const open: Array<net.Socket> = []
    try {
      for (let i = 0; i < 4; i++) {
        const { line, socket } = await firstLine(bridge.port, "127.0.0.1")
        open.push(socket)
        expect(line).toMatch(/^220 /)
      }
      for (let i = 0; i < 2; i++) {
        const { line, socket } = await firstLine(bridge.port, "127.0.0.2")
        open.push(socket)
        expect(line).toMatch(/^220 /)
      }
      const extra = await firstLine(bridge.port, "127.0.0.2")
      open.push(extra.socket)
      expect(extra.line).toBe("421 4.7.0 Too many connections from your address, try again later")
    } finally {
      for (const s of open) s.destroy()
      await bridge.stop()
    }
  })
})

describe("command limits", () => {
  let bridge: TestBridge
  beforeAll(async () => {
    bridge = await startBridge({ trust: ["127.0.0.0/8"], limits: { maxInvalidCommands: 3, maxLineLength: 512 } })
  })
  afterAll(() => bridge.stop())

  const session = async (): Promise<Client> => {
    const c = await connect(bridge.port)
    expect(await c.read()).toMatch(/^220 /)
    return c
  }

  it("closes with 421 4.7.0 after maxInvalidCommands bad commands", async () => {
    const c = await session()
    for (let i = 0; i < 3; i++) expect(await c.command("XYZZY")).toBe("500 5.5.2 Command unrecognized")
    expect(await c.command("XYZZY")).toBe("421 4.7.0 Too many errors, closing connection")
    await c.closed(3_000)
  })

  it("answers a line longer than maxLineLength with 500 5.5.2 and carries on", async () => {
    const c = await session()
    expect(await c.command(`NOOP ${"a".repeat(600)}`)).toBe("500 5.5.2 Line too long")
    expect(await c.command("EHLO client.test")).toMatch(/^250-/)
    expect(await c.command("MAIL FROM:<alice@example.org>")).toBe("250 2.1.0 Ok")
    expect(await c.command("QUIT")).toMatch(/^221 /)
  })

  it("accepts a line of exactly maxLineLength bytes, CRLF included", async () => {
    const c = await session()
    // "NOOP " + 505 characters + CRLF = 512 bytes.
    expect(await c.command(`NOOP ${"a".repeat(505)}`)).toBe("250 2.0.0 Ok")
    expect(await c.command(`NOOP ${"a".repeat(506)}`)).toBe("500 5.5.2 Line too long")
    c.close()
  })

  it("answers an overlong line that goes on past 1 MiB with 500 5.5.2, then 421 4.7.0 and a close", async () => {
    const c = await session()
    // 10 MB without a line end: skipped as it arrives, but not for ever.
    c.send(Buffer.alloc(10 * 1024 * 1024, 0x41))
    c.send("\r\n")
    expect(await c.read(15_000)).toBe("500 5.5.2 Line too long")
    expect(await c.read(15_000)).toBe("421 4.7.0 Line too long, closing connection")
    await c.closed(15_000)
  })

  it("keeps a session whose overlong lines stay under 1 MiB in all", async () => {
    const c = await session()
    for (let i = 0; i < 3; i++) {
      c.send(Buffer.alloc(200 * 1024, 0x41))
      c.send("\r\n")
      expect(await c.read(15_000)).toBe("500 5.5.2 Line too long")
    }
    expect(await c.command("NOOP")).toBe("250 2.0.0 Ok")
    expect(await c.command("QUIT")).toMatch(/^221 /)
    await c.closed(3_000)
  })
})
