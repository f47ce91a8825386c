// A parked session (an idle one, waiting with no fiber: Lifecycle.park), or a balancer's connection
// waiting for its PROXY header, and a drain that starts between the last look at `isDraining` and the wait. The drain's wake-up then finds no wait
// to end; the session must still see the drain, say 421 4.3.2 and end, not wait for its client
// (or its idle timeout) with no fiber for the drain to wait for.
//
//   S: 220 ...   C: EHLO a   S: 250 ...   (drain starts, then the session parks)
//   S: 421 4.3.2 Service shutting down, closing connection
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber } from "effect"
import { EventEmitter } from "node:events"
import type * as net from "node:net"
import * as Resolve from "../../../src/config/Resolve.ts"
import * as StaticDns from "../../../src/dns/Static.ts"
import type { SessionOutcome } from "../../../src/observability/Metrics.ts"
import * as Pipeline from "../../../src/pipeline/Pipeline.ts"
import * as Inbox from "../../../src/runtime/Inbox.ts"
import type * as Socket from "../../../src/runtime/Socket.ts"
import * as Lifecycle from "../../../src/server/Lifecycle.ts"
import type { ServerEnv } from "../../../src/server/Env.ts"
import * as Cidr from "../../../src/util/Cidr.ts"

/** A connection whose reads go through a real Inbox and whose writes are kept as text. */
const fakeConnection = (remoteAddress = "192.0.2.10") => {
  const raw = Object.assign(new EventEmitter(), { pause: () => {}, resume: () => {}, isPaused: () => false }) as unknown as net.Socket
  const inbox = Inbox.make(() => raw, 1 << 20)
  inbox.attach(raw)
  const written: Array<string> = []
  const socket: Socket.SmtpSocket = {
    next: (until, wakeable) => inbox.next(until, wakeable),
    await: (until, wakeable, done) => inbox.await(until, wakeable, done),
    wake: () => inbox.wake(),
    write: (data) => Effect.sync(() => void written.push(typeof data === "string" ? data : Buffer.from(data).toString("latin1"))),
    stalled: () => false,
    discardInput: () => void inbox.drain(),
    unread: (bytes) => inbox.unread(bytes),
    upgradeTls: () => Effect.die("no TLS here"),
    tls: () => undefined,
    close: Effect.sync(() => inbox.end()),
    closeNow: Effect.sync(() => inbox.end()),
    remoteAddress,
    remotePort: 50000,
    localAddress: "192.0.2.1",
    localPort: 25
  }
  return { raw, socket, written }
}

/** A server's environment with no transports, no TLS, every client admitted: `drain` says when it drains. */
const envOf = (
  config: ServerEnv["config"],
  pipeline: ServerEnv["pipeline"],
  drain: Pick<ServerEnv, "isDraining" | "proxies">
): ServerEnv => ({
  config,
  pipeline,
  transports: new Map(),
  spool: undefined,
  tls: () => undefined,
  ...drain,
  admit: () => "admitted",
  release: () => {}
})

describe("Connection: a parked session and a drain", () => {
  it.scopedLive("says 421 4.3.2 and ends when the drain starts just before it parks (its wake-up found no wait)", () =>
    Effect.gen(function*() {
      const config = yield* Resolve.resolve({ hostname: "bridge.test" }, "test")
      const pipeline = yield* Pipeline.make([]).pipe(Effect.provide(StaticDns.layer({})))
      const { raw, socket, written } = fakeConnection()
      let draining = false
      const env = envOf(config, pipeline, {
        // The run that answered EHLO looks, sees no drain, and is about to park: the drain starts
        // right then (SmtpServer sets the flag, then wakes every socket: this one has no wait yet).
        isDraining: () => {
          const seen = draining
          if (!draining && written.some((w) => w.startsWith("250"))) {
            draining = true
            socket.wake()
          }
          return seen
        },
        proxies: []
      })
      const ended: Array<Exit.Exit<SessionOutcome>> = []
      const runs: Array<Fiber.RuntimeFiber<unknown>> = []
      const fork = (effect: Effect.Effect<unknown>) => void runs.push(Effect.runFork(effect))
      yield* Lifecycle.handle(env, { socket, implicitTls: false }, { fork, ended: (exit) => Effect.sync(() => void ended.push(exit)) })
      raw.emit("data", Buffer.from("EHLO client.test\r\n"))
      for (let i = 0; i < 50 && ended.length === 0; i++) {
        yield* Effect.forEach(runs.splice(0), Fiber.join, { discard: true })
        yield* Effect.sleep("2 millis")
      }
      expect(written.join("")).toMatch(/^220 [^\n]*\r\n250-bridge\.test[^]*\r\n421 4\.3\.2 Service shutting down, closing connection\r\n$/)
      expect(ended).toEqual([Exit.succeed("shutdown")])
    }))

  it.scopedLive("closes a balancer's connection without a word when the drain woke its socket before its header wait began (the wake-up found no wait yet)", () =>
    Effect.gen(function*() {
      // The header's own deadline is far away: only the drain can end the wait in time.
      const config = yield* Resolve.resolve({ hostname: "bridge.test", proxyProtocol: ["192.0.2.20/32"], limits: { greetingTimeout: "20 seconds" } }, "test")
      const pipeline = yield* Pipeline.make([]).pipe(Effect.provide(StaticDns.layer({})))
      const { socket, written } = fakeConnection("192.0.2.20")
      // The drain wakes every socket it knows once; this one had no wait in progress yet. The wake
      // latches: the header wait that begins after it must end at once (the session never asks
      // whether a drain began).
      socket.wake()
      const env = envOf(config, pipeline, { isDraining: () => true, proxies: [Cidr.parse("192.0.2.20/32")!] })
      const ended: Array<Exit.Exit<SessionOutcome>> = []
      const handled = yield* Effect.fork(Lifecycle.handle(env, { socket, implicitTls: false }, { fork: () => {}, ended: (exit) => Effect.sync(() => void ended.push(exit)) }))
      for (let i = 0; i < 100 && ended.length === 0; i++) yield* Effect.sleep("5 millis")
      expect(ended).toEqual([Exit.succeed("refused")])
      expect(written).toEqual([])
      yield* Fiber.interrupt(handled)
    }))
})
