/**
 * The admin listener (`admin: "HOST:PORT"`): Prometheus `/metrics` scraped around real SMTP
 * sessions, `/healthz`, and `/readyz` following a relay upstream up and down.
 */
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startBridge, type TestBridge } from "../support/bridge.ts"
import { connect } from "../support/SmtpClient.ts"
import { until } from "../support/eventually.ts"

const get = async (port: number, path: string): Promise<{ status: number; type: string; body: string }> => {
  const response = await fetch(`http://127.0.0.1:${port}${path}`)
  return { status: response.status, type: response.headers.get("content-type") ?? "", body: await response.text() }
}

/** The value of one series in Prometheus text, 0 when absent (a counter not yet incremented). */
const sample = (text: string, series: string): number => {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `))
  return line === undefined ? 0 : Number(line.slice(series.length + 1))
}

const adminPort = (bridge: TestBridge): number => bridge.running.admin!.port

describe("admin /metrics", () => {
  let bridge: TestBridge

  beforeAll(async () => {
    bridge = await startBridge({ admin: "127.0.0.1:0", trust: ["127.0.0.1/32"] })
  })
  afterAll(() => bridge.stop())

  it("serves the Prometheus text format with HELP and TYPE lines", async () => {
    const r = await get(adminPort(bridge), "/metrics")
    expect(r.status).toBe(200)
    expect(r.type).toMatch(/^text\/plain; version=0\.0\.4/)
    expect(r.body).toMatch(/^# HELP smtp_bridge_connections_open .+\n# TYPE smtp_bridge_connections_open gauge$/m)
  })

  it("counts a session's connection, accepted message and bytes, and its rejections by code", async () => {
    const before = (await get(adminPort(bridge), "/metrics")).body
    const c = await connect(bridge.port)
    expect(await c.read()).toMatch(/^220 /)
    expect(await c.command("EHLO client.test")).toMatch(/^250-/)
    expect(await c.command("RCPT TO:<bob@example.net>")).toBe("503 5.5.1 Need MAIL before RCPT")
    expect(await c.command("FROB")).toMatch(/^500 5\.5\.2 /)
    expect(await c.command("MAIL FROM:<alice@example.com>")).toBe("250 2.1.0 Ok")
    expect(await c.command("RCPT TO:<bob@example.net>")).toBe("250 2.1.5 Ok")
    expect(await c.command("DATA")).toMatch(/^354 /)
    const body = "Subject: metrics\r\n\r\nHello.\r\n"
    expect(await c.command(`${body}.`)).toMatch(/^250 2\.0\.0 Ok: queued as \w+$/)
    const during = (await get(adminPort(bridge), "/metrics")).body
    expect(sample(during, "smtp_bridge_connections_open")).toBeGreaterThanOrEqual(1)
    expect(await c.command("QUIT")).toMatch(/^221 /)
    await c.closed()

    // The session's end is counted as its fiber finishes, just after the close: poll for it.
    const delta = (after: string) => (series: string) => sample(after, series) - sample(before, series)
    const after = await until("the session's end in /metrics", async () => {
      const body = (await get(adminPort(bridge), "/metrics")).body
      return delta(body)(`smtp_bridge_sessions_total{outcome="quit"}`) >= 1 && body
    })
    expect(delta(after)("smtp_bridge_connections_total")).toBe(1)
    expect(delta(after)("smtp_bridge_messages_accepted_total")).toBe(1)
    // The bytes delivered: what the client sent plus the Received header the bridge added.
    expect(delta(after)("smtp_bridge_bytes_accepted_total")).toBeGreaterThan(body.length)
    expect(delta(after)(`smtp_bridge_rejections_total{code="503",enhanced="5.5.1"}`)).toBe(1)
    expect(delta(after)(`smtp_bridge_rejections_total{code="500",enhanced="5.5.2"}`)).toBe(1)
    expect(delta(after)(`smtp_bridge_sessions_total{outcome="quit"}`)).toBe(1)
    expect(delta(after)(`smtp_bridge_delivery_duration_seconds_count{outcome="ok",transport="default"}`)).toBe(1)
    expect(sample(after, "smtp_bridge_connections_open")).toBe(sample(before, "smtp_bridge_connections_open"))
  })

  it("counts a plugin's refusal by plugin, hook and code (AUTH required for an untrusted client)", async () => {
    const strict = await startBridge({ admin: "127.0.0.1:0" })
    try {
      const before = (await get(adminPort(strict), "/metrics")).body
      const c = await connect(strict.port)
      expect(await c.read()).toMatch(/^220 /)
      await c.command("EHLO client.test")
      expect(await c.command("MAIL FROM:<alice@example.com>")).toBe("530 5.7.0 Authentication required")
      c.close()
      const after = (await get(adminPort(strict), "/metrics")).body
      const delta = (series: string) => sample(after, series) - sample(before, series)
      expect(delta(`smtp_bridge_plugin_rejections_total{code="530",hook="mailFrom",plugin="relay-policy"}`)).toBe(1)
      expect(delta(`smtp_bridge_rejections_total{code="530",enhanced="5.7.0"}`)).toBe(1)
    } finally {
      await strict.stop()
    }
  })

  it("answers /healthz with 200 and an unknown path with 404", async () => {
    expect((await get(adminPort(bridge), "/healthz")).status).toBe(200)
    expect((await get(adminPort(bridge), "/nope")).status).toBe(404)
  })
})

describe("admin /readyz", () => {
  it("is 200 while the listeners are bound and the relay upstream accepts connections, 503 naming it when it does not", async () => {
    const upstream = net.createServer((socket) => socket.destroy())
    await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve))
    const port = (upstream.address() as net.AddressInfo).port
    const bridge = await startBridge({ admin: "127.0.0.1:0", relay: `smtp://127.0.0.1:${port}?tls=none` })
    try {
      const up = await get(adminPort(bridge), "/readyz")
      expect(up.status).toBe(200)
      expect(up.body).toContain("ok listeners")
      expect(up.body).toContain("ok transport default")

      await new Promise<void>((resolve) => upstream.close(() => resolve()))
      const down = await get(adminPort(bridge), "/readyz")
      expect(down.status).toBe(503)
      expect(down.body).toContain("ok listeners")
      expect(down.body).toMatch(new RegExp(`FAIL transport default: smtp://127\\.0\\.0\\.1:${port}: `))
      // Liveness does not depend on the upstream.
      expect((await get(adminPort(bridge), "/healthz")).status).toBe(200)
    } finally {
      await bridge.stop()
      upstream.close()
    }
  })

  it("with a spool, is 200 while the relay is down (the spool takes the mail, 250), 503 once the spool cannot be written", async () => {
    const upstream = net.createServer((socket) => socket.destroy())
    await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve))
    const port = (upstream.address() as net.AddressInfo).port
    await new Promise<void>((resolve) => upstream.close(() => resolve()))
    const spool = fs.mkdtempSync(path.join(os.tmpdir(), "sb-readyz-spool-"))
    const bridge = await startBridge({
      admin: "127.0.0.1:0",
      trust: ["127.0.0.1/32"],
      relay: `smtp://127.0.0.1:${port}?tls=none`,
      spool: { dir: spool, initialDelay: "1 hour" }
    })
    try {
      const down = await get(adminPort(bridge), "/readyz")
      expect(down.status).toBe(200)
      expect(down.body).toContain("ok listeners")
      expect(down.body).toContain("ok spool")
      expect(down.body).toMatch(new RegExp(`down transport default: smtp://127\\.0\\.0\\.1:${port}: .*\\(not counted: the spool accepts mail meanwhile\\)`))
      // And it does take mail.
      const c = await connect(bridge.port)
      expect(await c.read()).toMatch(/^220 /)
      expect(await c.command("EHLO client.test")).toMatch(/^250-/)
      expect(await c.command("MAIL FROM:<a@example.org>")).toBe("250 2.1.0 Ok")
      expect(await c.command("RCPT TO:<b@example.net>")).toBe("250 2.1.5 Ok")
      expect(await c.command("DATA")).toMatch(/^354 /)
      expect(await c.command("Subject: x\r\n\r\nqueued\r\n.")).toMatch(/^250 2\.0\.0 Ok: queued as /)
      c.close()

      // Where the spool writes is gone (a file in its place): no mail could be accepted now.
      fs.rmSync(path.join(spool, "tmp"), { recursive: true, force: true })
      fs.writeFileSync(path.join(spool, "tmp"), "")
      const broken = await get(adminPort(bridge), "/readyz")
      expect(broken.status).toBe(503)
      expect(broken.body).toMatch(/^FAIL spool: /m)
    } finally {
      await bridge.stop()
      fs.rmSync(spool, { recursive: true, force: true })
    }
  })
})

describe("admin listener", () => {
  it("answers POST with 405, HEAD with the headers and no body, and marks every answer no-store", async () => {
    const bridge = await startBridge({ admin: "127.0.0.1:0" })
    try {
      const post = await fetch(`http://127.0.0.1:${adminPort(bridge)}/metrics`, { method: "POST", body: "x" })
      expect([post.status, await post.text()]).toEqual([405, "method not allowed\n"])
      const head = await fetch(`http://127.0.0.1:${adminPort(bridge)}/healthz`, { method: "HEAD" })
      expect(head.status).toBe(200)
      expect(head.headers.get("cache-control")).toBe("no-store")
      expect(head.headers.get("content-type")).toBe("text/plain; charset=utf-8")
      expect(await head.text()).toBe("")
    } finally {
      await bridge.stop()
    }
  })

  it("stops at once while a scraper holds an idle keep-alive connection or a half-sent request, and closes both", async () => {
    const bridge = await startBridge({ admin: "127.0.0.1:0" })
    const open = () => {
      const socket = net.connect({ host: "127.0.0.1", port: adminPort(bridge) })
      let answer = ""
      socket.on("data", (c: Buffer) => void (answer += c.toString("latin1")))
      socket.on("error", () => {})
      return { socket, answer: () => answer, closed: new Promise<void>((resolve) => socket.once("close", () => resolve())) }
    }
    const idle = open()
    idle.socket.write("GET /healthz HTTP/1.1\r\nHost: admin\r\nConnection: keep-alive\r\n\r\n")
    await until("the /healthz answer", () => idle.answer().endsWith("ok\n"))
    expect(idle.answer()).toMatch(/^HTTP\/1\.1 200 /)
    const slow = open()
    slow.socket.write("GET /metrics HTTP/1.1\r\nHost: ad")
    await new Promise((resolve) => setTimeout(resolve, 100))
    const started = performance.now()
    await bridge.stop()
    // Idle connections stay 5 s and a request's headers may take a minute: the stop waits for neither.
    expect(performance.now() - started).toBeLessThan(2_000)
    await Promise.all([idle.closed, slow.closed])
  })

  it("answers an unparseable request target (GET //[) with 400 and keeps serving", async () => {
    const bridge = await startBridge({ admin: "127.0.0.1:0" })
    try {
      for (const target of ["//[", "http://["]) {
        const socket = net.connect({ host: "127.0.0.1", port: adminPort(bridge) })
        let answer = ""
        socket.on("data", (c: Buffer) => void (answer += c.toString("latin1")))
        socket.on("error", () => {})
        socket.write(`GET ${target} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n`)
        await new Promise((resolve) => socket.once("close", resolve))
        expect(answer).toMatch(/^HTTP\/1\.1 400 /)
        expect(answer).toContain("bad request: unparseable request target\n")
      }
      expect((await get(adminPort(bridge), "/healthz")).status).toBe(200)
    } finally {
      await bridge.stop()
    }
  })

  it("fails to start with the admin address and the cause when the port is taken", async () => {
    const taken = net.createServer()
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve))
    const port = (taken.address() as net.AddressInfo).port
    try {
      await expect(startBridge({ admin: `127.0.0.1:${port}` })).rejects.toThrow(new RegExp(`admin listener 127\\.0\\.0\\.1:${port}: .*(EADDRINUSE|in use)`))
    } finally {
      taken.close()
    }
  })
})
