// Idle sessions hold no fiber (issue 16: 10,000 idle sessions at <= 16 KiB each). A session that
// waits for its client's next command has only a callback on its socket; the command starts a
// new run. What must hold: parked sessions cost no run, they still answer pipelined and split
// commands, the idle timeout still ends them, and a shutdown still says 421 to each.
//
//   C: EHLO a            (then silent: the session parks, no fiber)
//   C: MAIL FROM:<...>   (a run starts, answers, parks again)
//   S: 250 2.1.0 Ok
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { startBridge } from "../support/bridge.ts"
import { until } from "../support/eventually.ts"
import type { Client } from "../support/SmtpClient.ts"
import { connect } from "../support/SmtpClient.ts"

describe("idle sessions", () => {
  it("hold no run while they wait, and each command starts one that answers it", async () => {
    const bridge = await startBridge({ trust: ["127.0.0.0/8"] })
    const clients: Array<Client> = []
    try {
      for (let i = 0; i < 30; i++) {
        const c = await connect(bridge.port)
        clients.push(c)
        expect(await c.read()).toMatch(/^220 /)
        expect(await c.command(`EHLO client${i}.test`)).toMatch(/^250[ -]/)
      }
      expect(bridge.running.connections()).toBe(30)
      // Every session is idle now: none has a fiber.
      await until("no session run in progress", async () => (await Effect.runPromise(bridge.running.runs)) === 0)

      // A parked session still serves a transaction, a pipelined group and a command split across writes.
      const c = clients[7]!
      expect(await c.command("MAIL FROM:<alice@example.org>")).toBe("250 2.1.0 Ok")
      c.send("RCPT TO:<bob@example.net>\r\nRSET\r\nNO")
      expect(await c.read()).toMatch(/^250 2\.1\.5 /)
      expect(await c.read()).toMatch(/^250 2\.0\.0 /)
      c.send("OP\r\n")
      expect(await c.read()).toBe("250 2.0.0 Ok")
      await until("no session run in progress", async () => (await Effect.runPromise(bridge.running.runs)) === 0)
      expect(bridge.running.connections()).toBe(30)

      // A client that hangs up while parked is gone from the count.
      clients[3]!.close()
      await until("29 connections", () => bridge.running.connections() === 29)
    } finally {
      for (const c of clients) c.close()
      await bridge.stop()
    }
  })

  it("ends a parked session at the idle timeout with 421 4.4.2", async () => {
    const bridge = await startBridge({ trust: ["127.0.0.0/8"], limits: { idleTimeout: "1 second" } })
    try {
      const c = await connect(bridge.port)
      expect(await c.read()).toMatch(/^220 /)
      expect(await c.command("EHLO client.test")).toMatch(/^250[ -]/)
      await until("no session run in progress", async () => (await Effect.runPromise(bridge.running.runs)) === 0)
      expect(await c.read(5_000)).toMatch(/^421 4\.4\.2 /)
      await until("no connection", () => bridge.running.connections() === 0)
      c.close()
    } finally {
      await bridge.stop()
    }
  })

  it("says 421 to every parked session when the server stops", async () => {
    const bridge = await startBridge({ trust: ["127.0.0.0/8"] })
    const clients: Array<Client> = []
    for (let i = 0; i < 5; i++) {
      const c = await connect(bridge.port)
      clients.push(c)
      expect(await c.read()).toMatch(/^220 /)
      expect(await c.command("EHLO client.test")).toMatch(/^250[ -]/)
    }
    await until("no session run in progress", async () => (await Effect.runPromise(bridge.running.runs)) === 0)
    const stopped = bridge.stop()
    for (const c of clients) expect(await c.read(10_000)).toMatch(/^421 4\.3\.2 /)
    await stopped
    for (const c of clients) c.close()
  })
})
