// Graceful shutdown (SIGTERM, or closing the bridge's scope): stop accepting, tell idle sessions
// 421 4.3.2 at once, let a transaction in flight finish until `shutdownTimeout`, then cut it off.
//
//   A: C: DATA / S: 354 / C: part of the message ...      B: (idle after EHLO)
//   (stop)
//                                                          B: S: 421 4.3.2 Service shutting down
//   A: C: ... the rest, CRLF.CRLF / S: 250 2.0.0 Ok
//   new connections: refused
import { describe, expect, it } from "@effect/vitest"
import { Effect, Metric } from "effect"
import * as net from "node:net"
import { definePlugin, Verdict } from "../../src/index.ts"
import * as Metrics from "../../src/observability/Metrics.ts"
import { startBridge, stripTrace } from "../support/bridge.ts"
import { testCertificate } from "../support/certs.ts"
import { until } from "../support/eventually.ts"
import { connect } from "../support/SmtpClient.ts"
import { openData } from "../support/transcript.ts"

/** Whether a TCP connection to the port is refused (or closed without a byte), within 3 s. */
const refused = (port: number): Promise<boolean> =>
  new Promise((resolve, reject) => {
    const s = net.connect({ host: "127.0.0.1", port })
    const timer = setTimeout(() => {
      s.destroy()
      reject(new Error("no answer within 3 s"))
    }, 3_000)
    const done = (value: boolean) => {
      clearTimeout(timer)
      s.destroy()
      resolve(value)
    }
    s.once("error", () => done(true))
    s.once("data", (chunk: Buffer) => done(!chunk.toString().startsWith("220")))
    s.once("close", () => done(true))
  })

/** `promise`, or a rejection after `ms`: every wait in these specifications is bounded. */
const within = <A>(ms: number, what: string, promise: Promise<A>): Promise<A> =>
  Promise.race([
    promise,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms))
  ])

/** A raw connection: what it received so far, and whether (when) the bridge closed it. */
interface Peer {
  readonly socket: net.Socket
  readonly received: () => string
  readonly closed: Promise<void>
}

const peer = async (port: number): Promise<Peer> => {
  const socket = net.connect({ host: "127.0.0.1", port })
  await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject))
  let received = ""
  socket.on("data", (chunk: Buffer) => (received += chunk.toString("latin1")))
  socket.on("error", () => {})
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()))
  return { socket, received: () => received, closed }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Connections open as the metrics see them (one gauge for the whole file). */
const gauge = async (): Promise<number> => (await Effect.runPromise(Metric.value(Metrics.connectionsOpen))).value

/** A v2 PROXY header (command PROXY, TCP over IPv4) for 192.0.2.7:51000 -> 127.0.0.1:`port`. */
const v2Header = (port: number): Uint8Array =>
  Uint8Array.from([
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x11, 0x00, 0x0c,
    192, 0, 2, 7, 127, 0, 0, 1, 51000 >> 8, 51000 & 0xff, port >> 8, port & 0xff
  ])

describe("graceful shutdown", () => {
  it("lets the transaction in flight finish with 250, says 421 4.3.2 to idle sessions and refuses new ones", async () => {
    const bridge = await startBridge({ trust: ["127.0.0.0/8"], shutdownTimeout: "10 seconds" })
    let stopped: Promise<void> | undefined
    try {
      const busy = await openData(bridge.port)
      busy.send("Subject: in flight\r\n\r\nfirst half\r\n")
      const idle = await connect(bridge.port)
      await idle.read()
      expect(await idle.command("EHLO idle.test")).toMatch(/^250-/)

      let resolved = false
      stopped = bridge.stop().then(() => {
        resolved = true
      })

      expect(await idle.read(2_000)).toBe("421 4.3.2 Service shutting down, closing connection")
      await idle.closed(2_000)
      expect(await refused(bridge.port)).toBe(true)
      expect(resolved).toBe(false)

      busy.send("second half\r\n.\r\n")
      expect(await busy.read(5_000)).toMatch(/^250 2\.0\.0 Ok: queued as /)
      await busy.closed(5_000)
      await within(5_000, "stop()", stopped)
      expect(bridge.delivered()).toHaveLength(1)
      expect(stripTrace(bridge.delivered()[0]!)).toBe("Subject: in flight\r\n\r\nfirst half\r\nsecond half\r\n")
    } finally {
      await (stopped ?? bridge.stop())
    }
  })

  it("cuts off a transaction still open at shutdownTimeout with 421 4.3.2 and delivers nothing", async () => {
    const bridge = await startBridge({ trust: ["127.0.0.0/8"], shutdownTimeout: 500 })
    let stopped: Promise<void> | undefined
    try {
      const slow = await openData(bridge.port)
      slow.send("Subject: never finished\r\n\r\nsome of it\r\n")
      stopped = bridge.stop()
      expect(await slow.read(5_000)).toBe("421 4.3.2 Service shutting down, closing connection")
      await slow.closed(5_000)
      await within(5_000, "stop()", stopped)
      expect(bridge.delivered()).toHaveLength(0)
    } finally {
      await (stopped ?? bridge.stop())
    }
  })

  it("says 421 4.3.2 at once in the middle of an AUTH exchange; a BDAT transfer and a hook still running finish first", async () => {
    // An auth hook (so AUTH is offered) and a helo hook that takes 600 ms.
    const plugin = definePlugin({
      name: "drain-probe",
      auth: () => Effect.succeed(Verdict.Continue),
      helo: ({ name }) => name === "slow.test" ? Effect.as(Effect.sleep("600 millis"), Verdict.Continue) : Effect.succeed(Verdict.Continue)
    })
    const bridge = await startBridge({ trust: ["127.0.0.0/8"], allowInsecureAuth: true, shutdownTimeout: "10 seconds", plugins: [plugin] })
    let stopped: Promise<void> | undefined
    try {
      const auth = await connect(bridge.port)
      await auth.read()
      expect(await auth.command("EHLO auth.test")).toMatch(/^250-/)
      expect(await auth.command("AUTH LOGIN")).toBe("334 VXNlcm5hbWU6")
      const chunked = await connect(bridge.port)
      await chunked.read()
      await chunked.command("EHLO chunked.test")
      await chunked.command("MAIL FROM:<alice@example.org>")
      await chunked.command("RCPT TO:<bob@example.net>")
      const first = "Subject: chunked\r\n\r\n"
      chunked.send(`BDAT ${first.length}\r\n${first}`)
      expect(await chunked.read()).toBe(`250 2.0.0 ${first.length} octets received`)
      const hooked = await connect(bridge.port)
      await hooked.read()
      hooked.send("EHLO slow.test\r\n")
      await new Promise((resolve) => setTimeout(resolve, 100))

      stopped = bridge.stop()
      // C: (in the middle of AUTH LOGIN)  S: 421 4.3.2
      expect(await auth.read(2_000)).toBe("421 4.3.2 Service shutting down, closing connection")
      await auth.closed(2_000)
      // The hook's command is answered, then the session is idle: 421 4.3.2.
      expect(await hooked.read(5_000)).toMatch(/^250-bridge.test greets slow.test/)
      expect(await hooked.read(5_000)).toBe("421 4.3.2 Service shutting down, closing connection")
      // The transfer in flight ends with its 250, then 421 4.3.2.
      chunked.send("BDAT 5 LAST\r\nlast\n")
      expect(await chunked.read(5_000)).toMatch(/^250 2\.0\.0 Ok: queued as /)
      expect(await chunked.read(5_000)).toBe("421 4.3.2 Service shutting down, closing connection")
      await within(5_000, "stop()", stopped)
      expect(bridge.delivered()).toHaveLength(1)
      expect(stripTrace(bridge.delivered()[0]!)).toBe("Subject: chunked\r\n\r\nlast\r\n")
    } finally {
      await (stopped ?? bridge.stop())
    }
  })

  it("resolves stop() at once when no session is open", async () => {
    const bridge = await startBridge({ trust: ["127.0.0.0/8"] })
    await within(5_000, "stop()", bridge.stop())
    expect(await refused(bridge.port)).toBe(true)
  })

  it("does not wait for a balancer's connection that never sends its PROXY header: stop() ends at once and the bridge closes it", async () => {
    // The header's own deadline (greetingTimeout) and the shutdown timeout are both far away.
    const bridge = await startBridge({ trust: ["127.0.0.0/8"], proxyProtocol: ["127.0.0.1/32"], shutdownTimeout: "20 seconds", limits: { greetingTimeout: "20 seconds" } })
    let stopped: Promise<void> | undefined
    const silent = net.connect({ host: "127.0.0.1", port: bridge.port })
    try {
      await new Promise<void>((resolve, reject) => silent.once("connect", resolve).once("error", reject))
      let received = ""
      silent.on("data", (chunk: Buffer) => (received += chunk.toString()))
      const closed = new Promise<void>((resolve) => silent.once("close", () => resolve()))
      silent.on("error", () => {})
      // The bridge is waiting for the header now (no banner before it).
      await new Promise((resolve) => setTimeout(resolve, 200))
      stopped = bridge.stop()
      await within(3_000, "stop()", stopped)
      await within(3_000, "the balancer's connection closed by the bridge", closed)
      expect(received).toBe("")
    } finally {
      silent.destroy()
      await (stopped ?? bridge.stop())
    }
  })

  it("does not wait for 200 balancer connections that sent nothing, half a v1 header or a v2 header in pieces: stop() ends at once, each is closed without a word, and the connections gauge is back where it was", async () => {
    const before = await gauge()
    const bridge = await startBridge({ trust: ["127.0.0.0/8"], proxyProtocol: ["127.0.0.1/32"], shutdownTimeout: "20 seconds", limits: { greetingTimeout: "20 seconds" } })
    let stopped: Promise<void> | undefined
    const peers: Array<Peer> = []
    try {
      for (let i = 0; i < 200; i++) peers.push(await peer(bridge.port))
      const v1 = await peer(bridge.port)
      peers.push(v1)
      v1.socket.write("PROXY TCP4 192.0.2.7 127.0.0.1 51000 ")
      // The v2 header a byte at a time, up to its address block, then nothing more.
      const v2 = await peer(bridge.port)
      peers.push(v2)
      for (const byte of v2Header(bridge.port).subarray(0, 20)) {
        v2.socket.write(Uint8Array.of(byte))
        await sleep(5)
      }
      await until("every connection counted", async () => (await gauge()) === before + peers.length)
      stopped = bridge.stop()
      await within(3_000, "stop()", stopped)
      await within(3_000, "every balancer connection closed by the bridge", Promise.all(peers.map((p) => p.closed)))
      expect(peers.map((p) => p.received()).filter((r) => r !== "")).toEqual([])
      expect(await gauge()).toBe(before)
    } finally {
      for (const p of peers) p.socket.destroy()
      await (stopped ?? bridge.stop())
    }
  })

  it("a balancer connection whose header and pipelined commands come as the stop begins is closed without a word, or greeted and told 421 4.3.2; stop() does not wait", async () => {
    const before = await gauge()
    const bridge = await startBridge({ trust: ["127.0.0.0/8"], proxyProtocol: ["127.0.0.1/32"], shutdownTimeout: "20 seconds", limits: { greetingTimeout: "20 seconds" } })
    let stopped: Promise<void> | undefined
    const peers: Array<Peer> = []
    try {
      for (let i = 0; i < 20; i++) peers.push(await peer(bridge.port))
      await until("every connection counted", async () => (await gauge()) === before + peers.length)
      const commands = new TextEncoder().encode("EHLO client.test\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.net>\r\n")
      for (const p of peers) p.socket.write(Buffer.concat([v2Header(bridge.port), commands]))
      stopped = bridge.stop()
      await within(3_000, "stop()", stopped)
      await within(3_000, "every balancer connection closed by the bridge", Promise.all(peers.map((p) => p.closed)))
      for (const p of peers) expect(p.received()).toMatch(/^(?:|220 [^]*\r\n421 4\.3\.2 Service shutting down, closing connection\r\n)$/)
      expect(await gauge()).toBe(before)
    } finally {
      for (const p of peers) p.socket.destroy()
      await (stopped ?? bridge.stop())
    }
  })

  it("does not wait for implicit-TLS connections that never finish a handshake (a client silent, one that sent 5 bytes of it, a balancer's that sent only its header): stop() ends at once and closes them", async () => {
    const before = await gauge()
    const { cert, key } = testCertificate()
    const bridge = await startBridge({
      tls: { cert, key },
      trust: ["127.0.0.0/8"],
      listenTls: ["127.0.0.1:0"],
      proxyProtocol: ["127.0.0.2/32"],
      shutdownTimeout: "20 seconds",
      limits: { greetingTimeout: "20 seconds" }
    })
    let stopped: Promise<void> | undefined
    const peers: Array<Peer> = []
    try {
      const port = bridge.tlsPort!
      peers.push(await peer(port))
      const partial = await peer(port)
      peers.push(partial)
      // A TLS record header (handshake, TLS 1.0, 512 bytes to follow), and nothing of the rest.
      partial.socket.write(Uint8Array.of(0x16, 0x03, 0x01, 0x02, 0x00))
      const socket = net.connect({ host: "127.0.0.1", port, localAddress: "127.0.0.2" })
      await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject))
      socket.on("error", () => {})
      const balancer: Peer = { socket, received: () => "", closed: new Promise<void>((resolve) => socket.once("close", () => resolve())) }
      peers.push(balancer)
      socket.write(v2Header(port))
      await until("every connection counted", async () => (await gauge()) === before + peers.length)
      await sleep(200)
      stopped = bridge.stop()
      await within(3_000, "stop()", stopped)
      await within(3_000, "every connection closed by the bridge", Promise.all(peers.map((p) => p.closed)))
      expect(await gauge()).toBe(before)
    } finally {
      for (const p of peers) p.socket.destroy()
      await (stopped ?? bridge.stop())
    }
  })

  it("with shutdownTimeout 0, 200 idle sessions woken by the drain are each told 421 4.3.2 or closed, none is left open, and the connections gauge is back where it was", async () => {
    // Each idle session waits without a fiber; the drain's wake-up forks a run for each, and a
    // timeout of 0 interrupts whatever has not ended. A run interrupted before it began would run
    // none of its finalizers and leave its socket open: Effect's scheduler starts every woken run
    // in one batch before any timer fires, so none is (tried with 200, 1,000 and 3,000 sessions).
    const before = await gauge()
    const bridge = await startBridge({ trust: ["127.0.0.0/8"], shutdownTimeout: 0 })
    let stopped: Promise<void> | undefined
    const peers: Array<Peer> = []
    try {
      for (let i = 0; i < 200; i++) {
        const p = await peer(bridge.port)
        p.socket.write("EHLO client.test\r\n")
        peers.push(p)
      }
      await until("every session answered EHLO", () => peers.every((p) => /\r\n250 [^\r]*\r\n$/.test(p.received())))
      expect(await gauge()).toBe(before + peers.length)
      stopped = bridge.stop()
      await within(3_000, "stop()", stopped)
      await within(3_000, "every idle session closed by the bridge", Promise.all(peers.map((p) => p.closed)))
      // What each heard after its EHLO reply: 421 4.3.2, or nothing when the cut came first.
      const endings = new Set(peers.map((p) => p.received().replace(/^[^]*\r\n250 [^\r]*\r\n/, "")))
      expect([...endings].filter((e) => e !== "" && e !== "421 4.3.2 Service shutting down, closing connection\r\n")).toEqual([])
      await until("the connections gauge back", async () => (await gauge()) === before)
    } finally {
      for (const p of peers) p.socket.destroy()
      await (stopped ?? bridge.stop())
    }
  })

  it("does not wait for a client that said STARTTLS and never began the handshake: stop() ends at once and closes it", async () => {
    const { cert, key } = testCertificate()
    const bridge = await startBridge({ tls: { cert, key }, trust: ["127.0.0.0/8"], shutdownTimeout: "20 seconds", limits: { greetingTimeout: "20 seconds" } })
    let stopped: Promise<void> | undefined
    const c = await peer(bridge.port)
    try {
      c.socket.write("EHLO client.test\r\nSTARTTLS\r\n")
      await until("the 220 to STARTTLS", () => /\r\n220 2\.0\.0 Ready to start TLS\r\n$/.test(c.received()))
      stopped = bridge.stop()
      await within(3_000, "stop()", stopped)
      await within(3_000, "the connection closed by the bridge", c.closed)
    } finally {
      c.socket.destroy()
      await (stopped ?? bridge.stop())
    }
  })
})
