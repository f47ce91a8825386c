// The relay when the upstream misbehaves: down, silent, dropping the line in mid-DATA, or too
// busy for the pool. In none of these may the transport report a delivery.
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Fiber } from "effect"
import * as net from "node:net"
import * as SmtpRelay from "../../../src/transport/smtp/SmtpRelay.ts"
import * as Url from "../../../src/transport/smtp/Url.ts"
import type { TransportError } from "../../../src/transport/Transport.ts"
import { outgoing, startSink } from "../../support/sink.ts"

const relay = (port: number, options: Omit<SmtpRelay.Options, "target"> = {}) =>
  SmtpRelay.make({ target: Either.getOrThrow(Url.parse(`smtp://127.0.0.1:${port}`)), name: "relay", helo: "bridge.test", ...options })

const failure = <A>(effect: Effect.Effect<A, TransportError>) =>
  Effect.flatMap(Effect.either(effect), (e) => (Either.isLeft(e) ? Effect.succeed(e.left) : Effect.die(`expected a failure, got ${JSON.stringify(e.right)}`)))

/** A loopback server that hands every connection to `onConnection`; closed with the scope. */
const tinyServer = (onConnection: (socket: net.Socket) => void) =>
  Effect.acquireRelease(
    Effect.async<{ server: net.Server; port: number }>((resume) => {
      const sockets = new Set<net.Socket>()
      const server = net.createServer((socket) => {
        sockets.add(socket)
        socket.on("close", () => sockets.delete(socket))
        socket.on("error", () => {})
        onConnection(socket)
      })
      server.on("close", () => {
        for (const s of sockets) s.destroy()
      })
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        resume(Effect.succeed({ server, port: typeof address === "object" && address !== null ? address.port : 0 }))
      })
    }),
    ({ server }) => Effect.async<void>((resume) => {
      server.close(() => resume(Effect.void))
      server.emit("close")
    })
  )

interface MiniOptions {
  /** EHLO keywords after the name. */
  readonly capabilities?: ReadonlyArray<string>
  /** Close the connection, without a reply, on RSET. */
  readonly closeOnRset?: boolean
  /** Close the connection once this many content bytes arrived after DATA. */
  readonly dropAfter?: number
  /** Answer EHLO with 502, as a pre-ESMTP server does. */
  readonly noEhlo?: boolean
}

/** A minimal ESMTP server for what smtp-sink cannot show; records each chunk per connection. */
const miniServer = (options: MiniOptions = {}) => {
  const connections: Array<Array<string>> = []
  return Effect.map(
    tinyServer((socket) => {
      const chunks: Array<string> = []
      connections.push(chunks)
      let data = false
      let received = 0
      let login = 0
      let buffer = ""
      socket.write("220 mini ESMTP\r\n")
      socket.on("data", (chunk: Buffer) => {
        chunks.push(chunk.toString("latin1"))
        buffer += chunk.toString("latin1")
        while (true) {
          if (data) {
            received += buffer.length
            if (options.dropAfter !== undefined && received >= options.dropAfter) return void socket.destroy()
            const end = buffer.indexOf("\r\n.\r\n")
            if (end === -1) {
              buffer = buffer.slice(-4)
              received -= 4
              return
            }
            buffer = buffer.slice(end + 5)
            data = false
            socket.write("250 2.0.0 Ok: queued\r\n")
            continue
          }
          const eol = buffer.indexOf("\r\n")
          if (eol === -1) return
          const line = buffer.slice(0, eol).toUpperCase()
          buffer = buffer.slice(eol + 2)
          if (line.startsWith("EHLO") && options.noEhlo === true) socket.write("502 5.5.2 What?\r\n")
          else if (line === "AUTH LOGIN" || login > 0) {
            // AUTH LOGIN: "Username:", then "Password:", then done (any credentials will do).
            login = (login + 1) % 3
            socket.write(login === 1 ? "334 VXNlcm5hbWU6\r\n" : login === 2 ? "334 UGFzc3dvcmQ6\r\n" : "235 2.7.0 Authenticated\r\n")
          } else if (line.startsWith("EHLO")) {
            const caps = options.capabilities ?? []
            socket.write(["mini", ...caps].map((c, i) => `250${i === caps.length ? " " : "-"}${c}\r\n`).join(""))
          } else if (line === "RSET" && options.closeOnRset === true) return void socket.destroy()
          else if (line === "DATA") {
            data = true
            socket.write("354 go ahead\r\n")
          } else if (line === "QUIT") {
            socket.end("221 2.0.0 Bye\r\n")
          } else socket.write("250 2.0.0 Ok\r\n")
        }
      })
    }),
    ({ port }) => ({ port, connections })
  )
}

describe("relay failures", () => {
  it.scopedLive("reports Unreachable when nothing listens on the upstream port", () =>
    Effect.gen(function*() {
      // Port 1: tests only bind port 0, so no other test's server can take it meanwhile.
      const port = 1
      const transport = yield* relay(port)
      const error = yield* failure(transport.deliver(outgoing(["Subject: x\r\n\r\nx\r\n"])))
      expect(error).toMatchObject({ _tag: "TransportError", reason: "Unreachable", transport: "relay" })
      expect(error.message).toContain(`127.0.0.1:${port}`)
    }))

  it.scopedLive("reports Timeout when the upstream accepts the connection but never greets", () =>
    Effect.gen(function*() {
      const { port } = yield* tinyServer(() => {})
      const transport = yield* relay(port, { timeouts: { command: "300 millis" } })
      const error = yield* failure(transport.deliver(outgoing(["Subject: x\r\n\r\nx\r\n"])))
      expect(error.reason).toBe("Timeout")
      expect(error.message).toContain("the greeting")
    }))

  it.scopedLive("fails, never succeeds, when the upstream drops the connection in mid-DATA", () =>
    Effect.gen(function*() {
      const { port } = yield* miniServer({ dropAfter: 1000 })
      const transport = yield* relay(port, { timeouts: { data: "5 seconds" } })
      const big = "Subject: big\r\n\r\n" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n".repeat(4000)
      const chunks = big.match(/[\s\S]{1,16384}/g) ?? []
      const error = yield* failure(transport.deliver(outgoing(chunks)))
      expect(error.reason).toBe("Unreachable")
    }))

  it.scopedLive("fails with Timeout when every pooled connection stays busy past the wait bound", () =>
    Effect.gen(function*() {
      const s = yield* Effect.acquireRelease(Effect.promise(() => startSink({ dataDelay: 2 })), (s) => Effect.promise(() => s.stop()))
      const transport = yield* relay(s.port, { pool: { max: 1, acquireTimeout: "200 millis" } })
      const first = yield* Effect.fork(transport.deliver(outgoing(["Subject: a\r\n\r\na\r\n"], { id: "A" })))
      yield* Effect.sleep("100 millis")
      const error = yield* failure(transport.deliver(outgoing(["Subject: b\r\n\r\nb\r\n"], { id: "B" })))
      expect(error.reason).toBe("Timeout")
      expect(error.message).toContain("busy")
      const report = yield* Fiber.join(first)
      expect(report.recipients[0]!.reply.code).toBe(250)
    }))

  it.scopedLive("retries once on a new connection when a pooled one turns out closed at RSET, and delivers", () =>
    Effect.gen(function*() {
      const mini = yield* miniServer({ closeOnRset: true })
      const transport = yield* relay(mini.port, { pool: { max: 1 } })
      for (const id of ["A", "B"]) {
        const report = yield* transport.deliver(outgoing(["Subject: x\r\n\r\nx\r\n"], { id }))
        expect(report.recipients[0]!.reply.code).toBe(250)
      }
      expect(mini.connections).toHaveLength(2)
    }))
})

describe("pipelining to the upstream", () => {
  it.scopedLive("sends MAIL, every RCPT and DATA in one write, and RSET with them on a reused session", () =>
    Effect.gen(function*() {
      const mini = yield* miniServer({ capabilities: ["PIPELINING", "8BITMIME"] })
      const transport = yield* relay(mini.port, { pool: { max: 1 } })
      const message = (id: string) => outgoing(["Subject: x\r\n\r\nx\r\n"], { id, to: ["bob@example.net", "carol@example.net"] })
      yield* transport.deliver(message("A"))
      yield* transport.deliver(message("B"))
      const envelope = "MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.net>\r\nRCPT TO:<carol@example.net>\r\nDATA\r\n"
      expect(mini.connections).toHaveLength(1)
      expect(mini.connections[0]).toContain(envelope)
      expect(mini.connections[0]).toContain(`RSET\r\n${envelope}`)
      expect(mini.connections[0]).toContain("Subject: x\r\n\r\nx\r\n.\r\n")
    }))

  it.scopedLive("falls back to HELO when the upstream answers EHLO with 502", () =>
    Effect.gen(function*() {
      const mini = yield* miniServer({ noEhlo: true })
      const transport = yield* relay(mini.port)
      const report = yield* transport.deliver(outgoing(["Subject: x\r\n\r\nx\r\n"]))
      expect(report.recipients[0]!.reply.code).toBe(250)
      expect(mini.connections[0]).toContain("HELO bridge.test\r\n")
    }))

  it.scopedLive("authenticates with AUTH LOGIN when the upstream offers only LOGIN", () =>
    Effect.gen(function*() {
      const mini = yield* miniServer({ capabilities: ["AUTH LOGIN"] })
      const transport = yield* SmtpRelay.make({
        target: Either.getOrThrow(Url.parse(`smtp://relay%40example.org:pa%3Ass@127.0.0.1:${mini.port}?tls=none`)),
        helo: "bridge.test",
        allowInsecureAuth: true
      })
      const report = yield* transport.deliver(outgoing(["Subject: x\r\n\r\nx\r\n"]))
      expect(report.recipients[0]!.reply.code).toBe(250)
      const sent = mini.connections[0]!
      expect(sent).toContain(`${Buffer.from("relay@example.org").toString("base64")}\r\n`)
      expect(sent).toContain(`${Buffer.from("pa:ss").toString("base64")}\r\n`)
    }))

  it.scopedLive("refuses a message over the upstream's SIZE with 552 5.3.4 before sending it", () =>
    Effect.gen(function*() {
      const mini = yield* miniServer({ capabilities: ["SIZE 10"] })
      const transport = yield* relay(mini.port)
      const error = yield* failure(transport.deliver(outgoing(["Subject: too big\r\n\r\nx\r\n"])))
      expect(error.reply).toMatchObject({ code: 552, enhanced: "5.3.4" })
      expect(mini.connections[0]!.join("")).not.toContain("MAIL FROM")
    }))
})
