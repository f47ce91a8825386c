/**
 * auth-dovecot against a Dovecot that is broken or hostile (a fake auth server written here, on a
 * unix socket): what it is told about the client, and that nothing it answers can crash the
 * bridge, inject a reply, authenticate anyone, or grow memory without bound.
 */
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { authDovecot } from "../../plugins/auth-dovecot/index.ts"
import type { OptionsInput } from "../../plugins/auth-dovecot/index.ts"
import { startBridge, type TestBridge } from "../support/bridge.ts"
import { testCertificate } from "../support/certs.ts"
import { until } from "../support/eventually.ts"
import { type Client, connect } from "../support/SmtpClient.ts"

const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64")
const handshake = "VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tX-TEST\nMECH\tANONYMOUS\tanonymous\nSPID\t1\nCUID\t7\nCOOKIE\t00\nDONE\n"

/** A fake auth server: `answer` gets each line the bridge sends and the socket to write to. */
const fakeDovecot = async (answer: (line: string, socket: net.Socket) => void, greeting = handshake) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-fake-dovecot-"))
  const socketPath = path.join(dir, "auth")
  const lines: Array<string> = []
  let connections = 0
  const sockets = new Set<net.Socket>()
  const server = net.createServer((socket) => {
    connections++
    sockets.add(socket)
    socket.on("close", () => sockets.delete(socket))
    socket.on("error", () => undefined)
    socket.write(greeting)
    let buffered = ""
    socket.setEncoding("utf8").on("data", (text: string) => {
      buffered += text
      const parts = buffered.split("\n")
      buffered = parts.pop()!
      for (const line of parts) {
        lines.push(line)
        answer(line, socket)
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(socketPath, resolve))
  return {
    path: socketPath,
    lines,
    connections: () => connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => {
          fs.rmSync(dir, { recursive: true, force: true })
          resolve()
        })
      })
  }
}

const { cert, key } = testCertificate()
let cleanup: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const f of cleanup.reverse()) await f()
  cleanup = []
})

const bridgeFor = async (fake: Awaited<ReturnType<typeof fakeDovecot>>, options: Partial<OptionsInput> = {}): Promise<TestBridge> => {
  const bridge = await startBridge({
    tls: { cert, key },
    rateLimit: { authFailures: { perIp: "1000/hour", perUser: "1000/hour", delay: "1 millis", maxDelay: "1 millis" } },
    plugins: [authDovecot({ path: fake.path, timeout: "1 second", backoff: "20 millis", maxBackoff: "100 millis", ...options })]
  })
  cleanup.push(() => bridge.stop())
  return bridge
}

const secured = async (port: number): Promise<{ c: Client; ehlo: string }> => {
  const c = await connect(port)
  expect(await c.read()).toMatch(/^220 /)
  await c.command("EHLO client.test")
  expect(await c.command("STARTTLS")).toMatch(/^220 /)
  await c.startTls()
  return { c, ehlo: await c.command("EHLO client.test") }
}

const idOf = (line: string): string => line.split("\t")[1]!

describe("auth-dovecot against a broken or hostile Dovecot", () => {
  it("tells Dovecot the client's and its own address, secured (TLS), nologin, service=smtp; relays CONT and OK", async () => {
    const fake = await fakeDovecot((line, socket) => {
      if (line.startsWith("AUTH\t")) socket.write(`CONT\t${idOf(line)}\t${b64("challenge")}\n`)
      else if (line.startsWith("CONT\t")) socket.write(`OK\t${idOf(line)}\tuser=alice@example.test\n`)
    })
    cleanup.push(fake.close)
    const bridge = await bridgeFor(fake)
    const { c, ehlo } = await until("connected", async () => {
      const s = await secured(bridge.port)
      if (s.ehlo.includes("X-TEST")) return s
      s.c.close()
      return undefined
    })
    // ANONYMOUS is never offered (no credentials at all).
    expect(ehlo).toMatch(/^250[- ]AUTH PLAIN LOGIN X-TEST$/m)
    expect(await c.command(`AUTH X-TEST ${b64("hello")}`)).toBe(`334 ${b64("challenge")}`)
    expect(await c.command(b64("response"))).toBe("235 2.7.0 Authentication successful")
    const auth = fake.lines.find((l) => l.startsWith("AUTH\t"))!.split("\t")
    expect(auth.slice(2)).toEqual(expect.arrayContaining(["X-TEST", "service=smtp", "rip=127.0.0.1", "lip=127.0.0.1", "secured", "nologin", `resp=${b64("hello")}`]))
    expect(fake.lines.find((l) => l.startsWith("CPID\t"))).toMatch(/^CPID\t\d+$/)
    c.close()
  })

  it("drops the connection on a line of 2 MB without end: 454 4.7.0, then reconnects", async () => {
    let flood = true
    const fake = await fakeDovecot((line, socket) => {
      if (!line.startsWith("AUTH\t")) return
      if (flood) {
        flood = false
        socket.write(`CONT\t${idOf(line)}\t${"A".repeat(2 * 1024 * 1024)}`)
      } else socket.write(`OK\t${idOf(line)}\tuser=bob\n`)
    })
    cleanup.push(fake.close)
    const bridge = await bridgeFor(fake)
    await until("connected", () => fake.connections() >= 1 && fake.lines.some((l) => l.startsWith("CPID")))
    const { c } = await secured(bridge.port)
    expect(await c.command(`AUTH PLAIN ${b64("\0bob\0pw")}`)).toMatch(/^454 4\.7\.0 /)
    await until("reconnected", () => fake.connections() >= 2)
    const reply = await until("authenticated after reconnecting", async () => {
      const r = await c.command(`AUTH PLAIN ${b64("\0bob\0pw")}`)
      return r.startsWith("235") ? r : undefined
    })
    expect(reply).toBe("235 2.7.0 Authentication successful")
    c.close()
  })

  it("ignores answers to ids it never asked (a forged OK authenticates nobody): 454 4.7.0 after the timeout", async () => {
    const fake = await fakeDovecot((line, socket) => {
      if (line.startsWith("AUTH\t")) socket.write(`OK\t${Number(idOf(line)) + 1000}\tuser=mallory\nOK\tx\tuser=mallory\nBOGUS\n`)
    })
    cleanup.push(fake.close)
    const bridge = await bridgeFor(fake)
    await until("connected", () => fake.lines.some((l) => l.startsWith("CPID")))
    const { c } = await secured(bridge.port)
    expect(await c.command(`AUTH PLAIN ${b64("\0bob\0pw")}`)).toMatch(/^454 4\.7\.0 /)
    // Given up on: Dovecot is told to forget it.
    await until("CANCEL sent", () => fake.lines.some((l) => l.startsWith("CANCEL\t")))
    expect(await c.command("NOOP")).toBe("250 2.0.0 Ok")
    c.close()
  })

  it.each([
    ["a CONT that is no base64 (a reply injection)", (id: string) => `CONT\t${id}\tabc\r\n235 2.7.0 injected\n`],
    ["an OK whose user holds a line break", (id: string) => `OK\t${id}\tuser=alice\x01n250 injected\n`],
    ["an OK without user", (id: string) => `OK\t${id}\n`]
  ])("answers %s with 454 4.7.0, injecting nothing", async (_, answer) => {
    const fake = await fakeDovecot((line, socket) => {
      if (line.startsWith("AUTH\t")) socket.write(answer(idOf(line)))
    })
    cleanup.push(fake.close)
    const bridge = await bridgeFor(fake)
    await until("connected", () => fake.lines.some((l) => l.startsWith("CPID")))
    const { c } = await secured(bridge.port)
    expect(await c.command(`AUTH X-TEST ${b64("x")}`)).toMatch(/^454 4\.7\.0 /)
    expect(await c.command("NOOP")).toBe("250 2.0.0 Ok")
    expect(c.transcript()).not.toMatch(/injected/)
    c.close()
  })

  it("keeps at most maxPending requests open: past it AUTH gets 454 4.7.0 at once", async () => {
    const fake = await fakeDovecot(() => undefined)
    cleanup.push(fake.close)
    const bridge = await bridgeFor(fake, { maxPending: 2, timeout: "3 seconds" })
    await until("connected", () => fake.lines.some((l) => l.startsWith("CPID")))
    const sessions = await Promise.all([secured(bridge.port), secured(bridge.port), secured(bridge.port)])
    const waiting = sessions.slice(0, 2).map(({ c }) => c.command(`AUTH PLAIN ${b64("\0bob\0pw")}`))
    await until("two requests at Dovecot", () => fake.lines.filter((l) => l.startsWith("AUTH\t")).length === 2)
    const started = Date.now()
    expect(await sessions[2]!.c.command(`AUTH PLAIN ${b64("\0bob\0pw")}`)).toMatch(/^454 4\.7\.0 /)
    expect(Date.now() - started).toBeLessThan(1_000)
    expect(await Promise.all(waiting)).toEqual([expect.stringMatching(/^454 4\.7\.0 /), expect.stringMatching(/^454 4\.7\.0 /)])
    for (const { c } of sessions) c.close()
  })

  it("refuses a server of another protocol version: no mechanism offered, AUTH PLAIN 454 4.7.0", async () => {
    const fake = await fakeDovecot(() => undefined, "VERSION\t2\t0\nMECH\tX-TEST\nDONE\n")
    cleanup.push(fake.close)
    const bridge = await bridgeFor(fake)
    await until("tried", () => fake.connections() >= 2)
    const { c, ehlo } = await secured(bridge.port)
    expect(ehlo).not.toContain("X-TEST")
    expect(await c.command(`AUTH PLAIN ${b64("\0bob\0pw")}`)).toMatch(/^454 4\.7\.0 /)
    c.close()
  })

  it("tells Dovecot when the client cancels an exchange (CANCEL)", async () => {
    const fake = await fakeDovecot((line, socket) => {
      if (line.startsWith("AUTH\t")) socket.write(`CONT\t${idOf(line)}\t${b64("more")}\n`)
    })
    cleanup.push(fake.close)
    const bridge = await bridgeFor(fake)
    await until("connected", () => fake.lines.some((l) => l.startsWith("CPID")))
    const { c } = await secured(bridge.port)
    expect(await c.command("AUTH X-TEST")).toBe(`334 ${b64("more")}`)
    expect(await c.command("*")).toBe("501 5.0.0 Authentication cancelled")
    const id = idOf(fake.lines.find((l) => l.startsWith("AUTH\t"))!)
    await until("CANCEL sent", () => fake.lines.includes(`CANCEL\t${id}`))
    c.close()
  })
})
