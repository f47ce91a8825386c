// Graceful shutdown (SIGTERM, or closing the bridge's scope): stop accepting, tell idle sessions
// 421 4.3.2 at once, let a transaction in flight finish until `shutdownTimeout`, then cut it off.
//
//   A: C: DATA / S: 354 / C: part of the message ...      B: (idle after EHLO)
//   (stop)
//                                                          B: S: 421 4.3.2 Service shutting down
//   A: C: ... the rest, CRLF.CRLF / S: 250 2.0.0 Ok
//   new connections: refused
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as net from "node:net"
import { definePlugin, Verdict } from "../../src/index.ts"
import { startBridge, stripTrace } from "../support/bridge.ts"
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
})
