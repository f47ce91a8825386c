// Hostile clients against parked sessions (an idle session waits with no fiber: see
// idle-sessions.test.ts). Whichever way a session ends (a stop, a hang-up while parked, in a
// pipelined flood, during a STARTTLS handshake, during DATA) it ends once and gives its connection
// and address slots back; a client that sends a byte per run is served and still bounded; a
// reload leaves parked sessions on their generation, released after the last of them.
//
//   C: EHLO a            (then silent: parked)
//   (stop, shutdownTimeout: 0)
//   S: 421 4.3.2 Service shutting down, closing connection
//
//   C: NOOP xxxx...      (64 KiB a run, never a line end)
//   S: 500 5.5.2 Line too long
//   S: 421 4.7.0 Line too long, closing connection      (past 1 MiB skipped in all)
import { describe, expect, it } from "@effect/vitest"
import { Effect, Metric } from "effect"
import * as net from "node:net"
import * as Resolve from "../../src/config/Resolve.ts"
import { definePlugin, Verdict } from "../../src/index.ts"
import * as Metrics from "../../src/observability/Metrics.ts"
import { startBridge } from "../support/bridge.ts"
import { testCertificate } from "../support/certs.ts"
import { until } from "../support/eventually.ts"
import { type Sink, startSink } from "../support/sink.ts"
import type { Client } from "../support/SmtpClient.ts"
import { connect } from "../support/SmtpClient.ts"

const noRun = (runs: Effect.Effect<number>) => until("no session run in progress", async () => (await Effect.runPromise(runs)) === 0)

/** Connections open as the metrics see them: a session ended twice would take it below zero. */
const gauge = async (): Promise<number> => (await Effect.runPromise(Metric.value(Metrics.connectionsOpen))).value

/** Resolves once what `s` receives from now on matches `pattern`. */
const received = (s: net.Socket, pattern: RegExp): Promise<void> =>
  new Promise((resolve) => {
    let seen = ""
    const onData = (chunk: Buffer) => {
      seen += chunk.toString("latin1")
      if (!pattern.test(seen)) return
      s.off("data", onData)
      resolve()
    }
    s.on("data", onData)
  })

/** A raw client from `localAddress`, once it has read the greeting and the reply to EHLO. */
const raw = async (port: number, localAddress: string): Promise<net.Socket> => {
  const s = net.connect({ host: "127.0.0.1", port, localAddress })
  await received(s, /^220 .*\r\n$/)
  s.write("EHLO hostile.test\r\n")
  await received(s, /^250 .*\r\n$/m)
  return s
}

/** A plugin that says which generation it is (EHLO which.test is refused with its tag) and logs its release. */
const generation = (tag: string, released: Array<string>) =>
  definePlugin({
    name: "generation",
    setup: Effect.as(Effect.addFinalizer(() => Effect.sync(() => void released.push(tag))), {
      helo: ({ name }: { readonly name: string }) => Effect.succeed(name === "which.test" ? Verdict.reject(tag) : Verdict.Continue)
    })
  })

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const hungUp = (s: net.Socket): Promise<void> => new Promise((resolve) => (s.destroyed ? resolve() : s.once("close", () => resolve())))

describe("parked sessions under attack", () => {
  it("says 421 4.3.2 to every parked session (one over STARTTLS) and closes it, even with shutdownTimeout 0", async () => {
    const { cert, key } = testCertificate()
    const bridge = await startBridge({ tls: { cert, key }, trust: ["127.0.0.0/8"], shutdownTimeout: 0 })
    const clients: Array<Client> = []
    try {
      for (let i = 0; i < 5; i++) {
        const c = await connect(bridge.port)
        clients.push(c)
        expect(await c.read()).toMatch(/^220 /)
        expect(await c.command("EHLO client.test")).toMatch(/^250[ -]/)
      }
      // One parks again after a STARTTLS sent from a parked session: it waits on the TLS socket now.
      const secure = clients[2]!
      await noRun(bridge.running.runs)
      expect(await secure.command("STARTTLS")).toMatch(/^220 /)
      await secure.startTls()
      expect(await secure.command("EHLO client.test")).toMatch(/^250[ -]/)
      expect(secure.encrypted).toBe(true)
      await noRun(bridge.running.runs)
      await bridge.stop()
      for (const c of clients) expect(await c.read(3_000)).toBe("421 4.3.2 Service shutting down, closing connection")
      for (const c of clients) await c.closed(3_000)
      expect(bridge.running.connections()).toBe(0)
    } finally {
      for (const c of clients) c.close()
    }
  })

  it("gives back every slot, once, to clients that hang up parked, mid-run, mid-handshake and mid-DATA", async () => {
    const { cert, key } = testCertificate()
    // 127.0.9.1 is held to 4 connections; 127.0.0.1 is trusted (it may send mail).
    const bridge = await startBridge({ tls: { cert, key }, trust: ["127.0.0.1/32"], limits: { maxConnectionsPerIp: 4 } })
    const before = await gauge()
    try {
      // Parked, then gone.
      const parked = await raw(bridge.port, "127.0.9.1")
      await noRun(bridge.running.runs)
      parked.destroy()
      // Mid-run: a pipelined flood (more than the socket's high-water mark), then gone at once.
      const flood = await raw(bridge.port, "127.0.9.1")
      flood.write("NOOP\r\n".repeat(60_000))
      flood.destroy()
      // A STARTTLS handshake started from a parked session, then gone after half a ClientHello.
      const tls = await raw(bridge.port, "127.0.9.1")
      await noRun(bridge.running.runs)
      tls.write("STARTTLS\r\n")
      await received(tls, /^220 .*\r\n$/)
      tls.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]))
      await new Promise((resolve) => setTimeout(resolve, 50))
      tls.destroy()
      // Mid-DATA, after a quiet moment.
      const data = await raw(bridge.port, "127.0.0.1")
      await noRun(bridge.running.runs)
      data.write("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n")
      await received(data, /^354 /m)
      data.write("Subject: cut\r\n\r\nhalf a body")
      await new Promise((resolve) => setTimeout(resolve, 50))
      data.destroy()
      await Promise.all([parked, flood, tls, data].map(hungUp))

      await until("no connection", () => bridge.running.connections() === 0)
      await noRun(bridge.running.runs)
      expect(await gauge()).toBe(before)
      expect(bridge.delivered()).toHaveLength(0)
      // The address's 4 slots are all free again.
      const again: Array<Client> = []
      for (let i = 0; i < 4; i++) {
        const c = await connect(bridge.port, { localAddress: "127.0.9.1" })
        again.push(c)
        expect(await c.read()).toMatch(/^220 /)
      }
      expect(bridge.running.connections()).toBe(4)
      const fifth = await connect(bridge.port, { localAddress: "127.0.9.1" })
      expect(await fifth.read()).toBe("421 4.7.0 Too many connections from your address, try again later")
      fifth.close()
      for (const c of again) c.close()
      await until("no connection", () => bridge.running.connections() === 0)
      expect(await gauge()).toBe(before)
    } finally {
      await bridge.stop()
    }
  })

  it("answers a command sent a byte per run, and bounds an overlong line sent a piece per run: 500 5.5.2, then 421 4.7.0", async () => {
    const bridge = await startBridge({ trust: ["127.0.0.0/8"] })
    try {
      const c = await connect(bridge.port)
      expect(await c.read()).toMatch(/^220 /)
      // Each byte comes after a quiet moment: the session parks between bytes, and each starts a run.
      for (const byte of "EHLO slow.test\r\n") {
        c.send(byte)
        await sleep(5)
      }
      expect(await c.read()).toMatch(/^250-bridge\.test/)
      for (const byte of "NOOP\r\n") {
        await noRun(bridge.running.runs)
        c.send(byte)
      }
      expect(await c.read()).toBe("250 2.0.0 Ok")
      // An overlong line in 64 KiB pieces, each after a park: skipped and refused once it ends.
      const piece = "x".repeat(64 * 1024)
      c.send("NOOP ")
      for (let i = 0; i < 4; i++) {
        await noRun(bridge.running.runs)
        c.send(piece)
      }
      c.send("\r\n")
      expect(await c.read()).toBe("500 5.5.2 Line too long")
      expect(await c.command("NOOP")).toBe("250 2.0.0 Ok")
      // Past 1 MiB of skipped bytes in all, however it is spread over runs: 421 4.7.0 and closed.
      c.send("NOOP ")
      let closed = false
      void c.closed(20_000).then(() => (closed = true), () => {})
      for (let i = 0; i < 20 && !closed; i++) {
        await noRun(bridge.running.runs)
        c.send(piece)
      }
      expect(await c.read()).toBe("500 5.5.2 Line too long")
      expect(await c.read()).toBe("421 4.7.0 Line too long, closing connection")
      await c.closed()
      await until("no connection", () => bridge.running.connections() === 0)
    } finally {
      await bridge.stop()
    }
  })

  it("keeps parked sessions on the generation they started with across a reload, and releases it after the last one, once", async () => {
    const released: Array<string> = []
    const bridge = await startBridge({ trust: ["127.0.0.0/8"], plugins: [generation("first", released)] })
    const clients: Array<Client> = []
    try {
      for (let i = 0; i < 3; i++) {
        const c = await connect(bridge.port)
        clients.push(c)
        expect(await c.read()).toMatch(/^220 /)
        expect(await c.command("EHLO client.test")).toMatch(/^250[ -]/)
      }
      await noRun(bridge.running.runs)
      const next = await Effect.runPromise(Resolve.resolve({
        trust: ["127.0.0.0/8"],
        listen: ["127.0.0.1:0"],
        hostname: "bridge.test",
        maildir: bridge.maildir,
        plugins: [generation("second", released)]
      }, "test"))
      await Effect.runPromise(bridge.running.reload(next))
      const fresh = await connect(bridge.port)
      expect(await fresh.read()).toMatch(/^220 /)
      expect(await fresh.command("EHLO which.test")).toMatch(/^5\d\d .*second/)
      // Woken by a command after the reload, a parked session still runs on its own generation.
      for (const c of clients) expect(await c.command("EHLO which.test")).toMatch(/^5\d\d .*first/)
      await noRun(bridge.running.runs)
      expect(await clients[0]!.command("QUIT")).toMatch(/^221 /)
      clients[1]!.close()
      await until("one old session left", () => bridge.running.connections() === 2)
      await sleep(50)
      expect(released).toEqual([])
      // The last one ends at its idle moment: by hanging up while parked.
      clients[2]!.close()
      await until("the first generation released", () => released.length > 0)
      expect(released).toEqual(["first"])
      fresh.close()
      await until("no connection", () => bridge.running.connections() === 0)
    } finally {
      for (const c of clients) c.close()
      await bridge.stop()
    }
    expect(released).toEqual(["first", "second"])
  })

  it("a session of generation 1 still delivers through its relay after generation 2 shared that relay and generation 3 replaced it", async () => {
    const first = await startSink()
    const second = await startSink()
    const released: Array<string> = []
    const configOf = (tag: string, sink: Sink) =>
      Effect.runPromise(Resolve.resolve({
        trust: ["127.0.0.0/8"],
        listen: ["127.0.0.1:0"],
        hostname: "bridge.test",
        relay: `smtp://127.0.0.1:${sink.port}`,
        plugins: [generation(tag, released)]
      }, "test"))
    const bridge = await startBridge({ trust: ["127.0.0.0/8"], relay: `smtp://127.0.0.1:${first.port}`, plugins: [generation("one", released)] })
    const c = await connect(bridge.port)
    try {
      expect(await c.read()).toMatch(/^220 /)
      expect(await c.command("EHLO client.test")).toMatch(/^250[ -]/)
      // Generation 2 keeps the relay (only a plugin changed); generation 3 points it elsewhere.
      // Generation 2 had no session, so it is released at once when 3 replaces it.
      await Effect.runPromise(bridge.running.reload(await configOf("two", first)))
      await Effect.runPromise(bridge.running.reload(await configOf("three", second)))
      await until("generation two released", () => released.includes("two"))
      expect(released).toEqual(["two"])
      expect(await c.command("MAIL FROM:<alice@example.com>")).toBe("250 2.1.0 Ok")
      expect(await c.command("RCPT TO:<bob@example.net>")).toBe("250 2.1.5 Ok")
      expect(await c.command("DATA")).toMatch(/^354 /)
      expect(await c.command("Subject: generation one\r\n\r\nstill relayed\r\n.")).toMatch(/^250 2\.0\.0 /)
      await first.waitFor((n) => n.messages >= 1)
      expect(first.messages()[0]).toContain("still relayed")
      expect(second.counters().messages).toBe(0)
      expect(await c.command("QUIT")).toMatch(/^221 /)
      await until("generation one released", () => released.includes("one"))
    } finally {
      c.close()
      await bridge.stop()
      await first.stop()
      await second.stop()
    }
  })

  it("ends 40 sessions woken at once by their commands and by a stop: each last hears 421 4.3.2, and stop() does not wait for shutdownTimeout", async () => {
    const bridge = await startBridge({ trust: ["127.0.0.0/8"], shutdownTimeout: "5 seconds" })
    const clients: Array<Client> = []
    try {
      for (let i = 0; i < 40; i++) {
        const c = await connect(bridge.port)
        clients.push(c)
        expect(await c.read()).toMatch(/^220 /)
        expect(await c.command(`EHLO client${i}.test`)).toMatch(/^250[ -]/)
      }
      // One is in a transaction: the drain waits for it until it is idle again.
      const busy = clients[0]!
      expect(await busy.command("MAIL FROM:<a@example.org>")).toMatch(/^250 /)
      // It holds the only run: a session in a transaction waits for its client on a fiber.
      await until("one run in progress", async () => (await Effect.runPromise(bridge.running.runs)) === 1)
      // Every parked session gets a command and the server stops, in the same tick.
      for (const c of clients.slice(1)) c.send("NOOP\r\n")
      const started = Date.now()
      const stopped = bridge.stop()
      for (const c of clients.slice(1)) {
        // The NOOP may be read before the wake-up (250, then 421) or after it (421 only).
        let reply = await c.read(3_000)
        if (reply === "250 2.0.0 Ok") reply = await c.read(3_000)
        expect(reply).toBe("421 4.3.2 Service shutting down, closing connection")
        await c.closed(3_000)
      }
      expect(bridge.running.connections()).toBe(1)
      expect(await busy.command("RSET")).toBe("250 2.0.0 Ok")
      expect(await busy.read(3_000)).toBe("421 4.3.2 Service shutting down, closing connection")
      await stopped
      expect(Date.now() - started).toBeLessThan(4_000)
      expect(bridge.running.connections()).toBe(0)
      expect(await Effect.runPromise(bridge.running.runs)).toBe(0)
    } finally {
      for (const c of clients) c.close()
    }
  })
})
