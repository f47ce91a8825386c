/**
 * One fiber per connection: greeting, then command lines until QUIT, a limit, a timeout or the
 * server's drain. Replies to pipelined commands leave in one write, just before the next read.
 */
import { Duration, Effect } from "effect"
import * as Notes from "../pipeline/Notes.ts"
import * as Command from "../protocol/Command.ts"
import * as LineDecoder from "../protocol/LineDecoder.ts"
import * as ProxyProtocol from "../protocol/ProxyProtocol.ts"
import * as Reply from "../protocol/Reply.ts"
import type { SessionOutcome } from "../observability/Metrics.ts"
import * as Memory from "../runtime/Memory.ts"
import * as Socket from "../runtime/Socket.ts"
import * as Cidr from "../util/Cidr.ts"
import { auth } from "./Auth.ts"
import * as Commands from "./Commands.ts"
import * as Spans from "./Spans.ts"
import { type Conn, flush, invalid, newId, refused, reply, replyAndClose, type ServerEnv } from "./State.ts"
import * as Transfer from "./Transfer.ts"

export type LineEvent = LineDecoder.LineEvent | { readonly _tag: "End"; readonly why: "eof" | "timeout" | "drain" | "closed" }
export type LineRead = (c: Conn) => Effect.Effect<LineEvent>
/** The next chunk of message content: within the DATA timeout, and not past `until` (the transfer's deadline). */
export type ChunkRead = (c: Conn, until: number) => Effect.Effect<Uint8Array | "eof" | "timeout">

const end = (why: "eof" | "timeout" | "drain" | "closed"): LineEvent => ({ _tag: "End", why })

/**
 * Bytes of overlong command lines a session may send in all: each is answered 500 5.5.2 and
 * skipped, but past this the connection is closed (421 4.7.0) instead of reading junk forever.
 */
const maxSkipped = 1024 * 1024

/**
 * Characters of pipelined replies queued before they are written, even with more commands
 * buffered: an EHLO line of 8 bytes gets about 250 back, so a 64 KB read of them made 2 MB of
 * replies, all held for a client that might never read them.
 */
const maxQueuedReplies = 64 * 1024

export const readChunk: ChunkRead = (c, until) =>
  Effect.flatMap(flush(c), () =>
    Effect.map(
      c.socket.next(Math.min(until, Socket.now() + Duration.toMillis(c.env.config.limits.dataTimeout)), false),
      (chunk) => (chunk === "woken" ? "timeout" : chunk)
    ))

/**
 * When the next read gives up. Before a line starts: the idle timeout (the greeting's deadline
 * for the first). Once its first byte is in, the line has `commandTimeout` to end, counted from
 * that byte: a client dribbling one byte every few seconds no longer restarts the clock.
 */
const readDeadline = (c: Conn): number => {
  const limits = c.env.config.limits
  if (c.lines.midLine()) {
    if (c.lineDeadline === 0) {
      const own = Socket.now() + Duration.toMillis(limits.commandTimeout)
      c.lineDeadline = c.commands === 0 ? Math.min(own, c.greetingDeadline) : own
    }
    return c.lineDeadline
  }
  return c.commands === 0 ? c.greetingDeadline : Socket.now() + Duration.toMillis(limits.idleTimeout)
}

/** The next command line. An idle session (no transaction open) also wakes up when draining starts. */
export const readLine: LineRead = Effect.fnUntraced(function*(c) {
  for (;;) {
    const event = c.lines.next()
    if (event !== undefined) {
      c.lineDeadline = 0
      if (c.outBytes > maxQueuedReplies) yield* flush(c)
      return event
    }
    const idle = c.tx === undefined && c.chunking === undefined
    if (idle && c.env.isDraining()) return end("drain")
    yield* flush(c)
    // An idle session is woken when draining starts (SmtpServer calls `wake` on every socket).
    const chunk = yield* c.socket.next(readDeadline(c), idle)
    if (chunk === "woken") return end("drain")
    if (typeof chunk === "string") return end(chunk)
    c.lines.push(chunk)
    // An overlong line is skipped as it arrives (LineDecoder reports it to Memory); one that
    // goes on and on is not a client worth waiting for.
    if (c.lines.discarded() > maxSkipped) {
      replyAndClose(c, Reply.make(421, "4.7.0", "Line too long, closing connection"))
      return end("closed")
    }
    if (Memory.due()) yield* Memory.settle
  }
})

/** Runs one command line; gives back its verb (undefined when it did not parse). */
const dispatch = (c: Conn, line: string): Effect.Effect<Command.Command["verb"] | undefined> => {
  const parsed = Command.parse(line, { smtputf8: c.tx?.mailParams.smtputf8 === true })
  if (parsed._tag === "Error") {
    invalid(c, parsed.reply)
    return Effect.succeed(undefined)
  }
  c.command = parsed.command
  const run = Effect.as(execute(c, parsed.command), parsed.command.verb)
  // Inside a transaction every log line carries its id, as the Received header and the 250 do.
  const logged = c.tx === undefined ? run : Effect.annotateLogs(run, "transaction", c.tx.id)
  return c.trace === undefined ? logged : Spans.command(c, c.trace, parsed.command.verb, logged)
}

const execute = Effect.fnUntraced(function*(c: Conn, command: Command.Command) {
  switch (command.verb) {
    case "EHLO":
    case "HELO":
    case "LHLO":
      return yield* Commands.hello(c, command.verb, command.domain)
    case "MAIL":
      return yield* Commands.mail(c, command)
    case "RCPT":
      return yield* Commands.rcpt(c, command)
    case "DATA":
      return yield* Transfer.data(c, readChunk)
    case "BDAT":
      return yield* Transfer.bdat(c, readChunk, command.size, command.last)
    case "RSET":
      return yield* Commands.rset(c)
    case "NOOP":
      return Commands.noop(c)
    case "QUIT":
      return Commands.quit(c)
    case "VRFY":
      return Commands.vrfy(c)
    case "EXPN":
      return Commands.expn(c)
    case "HELP":
      return Commands.help(c)
    case "STARTTLS":
      return yield* Commands.startTls(c)
    case "AUTH":
      return yield* auth(c, readLine, command.mechanism, command.initialResponse)
  }
})

/** Sends the greeting; false when a `connect` verdict refused the session. */
const greet = Effect.fnUntraced(function*(c: Conn) {
  const { verdict, plugin } = yield* c.env.pipeline.run("connect", { session: c.session })
  const refusal = Commands.refusal(verdict)
  if (refusal !== undefined) {
    // RFC 5321 3.1 allows the 554 greeting; we close rather than wait for QUIT.
    yield* refused(c, refusal, plugin ?? "bridge", { close: true })
    return false
  }
  reply(c, Reply.make(220, undefined, `${c.env.config.hostname} ESMTP smtp-bridge`))
  c.greetingDeadline = Socket.now() + Duration.toMillis(c.env.config.limits.greetingTimeout)
  return true
})

/** The write timeout cut off a client that did not read its replies: a timeout, logged as such. */
const stalled = (c: Conn) =>
  Effect.as(
    Effect.logInfo(
      `closed: the client did not read its replies for ${Duration.format(c.env.config.limits.idleTimeout)}`
    ),
    "timeout" as const
  )

const endedBy = { eof: "disconnected", timeout: "timeout", drain: "shutdown", closed: "closed" } as const

/** The session until it ends; says how it ended (for the sessions metric). */
const loop = Effect.fnUntraced(function*(c: Conn) {
  if (!(yield* greet(c))) return "refused" as const
  while (!c.closing) {
    const event = yield* readLine(c)
    if (event._tag === "End") {
      if (event.why === "timeout") replyAndClose(c, Reply.timeout)
      else if (event.why === "drain") replyAndClose(c, Reply.shuttingDown)
      else if (event.why === "eof" && c.socket.stalled()) return yield* stalled(c)
      return endedBy[event.why]
    }
    c.commands++
    if (event._tag === "TooLong") invalid(c, Reply.lineTooLong)
    else if ((yield* dispatch(c, event.line)) === "QUIT") return "quit" as const
  }
  return "closed" as const
})

export interface Accepted {
  readonly socket: Socket.SmtpSocket
  /** Set for implicit-TLS listeners: the handshake runs before the greeting. */
  readonly implicitTls: boolean
}

/** Reads a PROXY header from a trusted balancer; what follows it is given back to the socket. */
const readProxyHeader = Effect.fnUntraced(function*(socket: Socket.SmtpSocket, timeout: Duration.Duration) {
  let buffer: Uint8Array = new Uint8Array(0)
  // One deadline for the whole header: a balancer may not drip-feed it byte by byte.
  const deadline = Socket.now() + Duration.toMillis(timeout)
  for (;;) {
    const chunk = yield* socket.next(deadline, false)
    if (typeof chunk === "string") return undefined
    buffer = buffer.byteLength === 0 ? chunk : Buffer.concat([buffer, chunk])
    const parsed = ProxyProtocol.parse(buffer)
    if (parsed._tag === "Incomplete") continue
    if (parsed._tag === "Invalid") {
      yield* Effect.logWarning(`PROXY header refused from ${socket.remoteAddress}: ${parsed.reason}`)
      return undefined
    }
    socket.unread(buffer.subarray(parsed.consumed))
    return parsed
  }
})

/** The client's real address: the socket's, or the PROXY header's when a trusted balancer sent one. */
const clientOf = Effect.fnUntraced(function*(env: ServerEnv, socket: Socket.SmtpSocket) {
  const direct = { remoteAddress: socket.remoteAddress, remotePort: socket.remotePort, localAddress: socket.localAddress, localPort: socket.localPort }
  if (!Cidr.matchAny(env.proxies, socket.remoteAddress)) return direct
  const header = yield* readProxyHeader(socket, env.config.limits.greetingTimeout)
  if (header === undefined) return undefined
  if (header.source === undefined) return direct
  return {
    remoteAddress: header.source.address,
    remotePort: header.source.port,
    localAddress: header.destination?.address ?? socket.localAddress,
    localPort: header.destination?.port ?? socket.localPort
  }
})

export const handle: (env: ServerEnv, accepted: Accepted) => Effect.Effect<SessionOutcome> = Effect.fnUntraced(function*(
  env: ServerEnv,
  accepted: Accepted
) {
  const { socket } = accepted
  const client = yield* clientOf(env, socket)
  if (client === undefined) return yield* Effect.as(socket.close, "refused" as const)
  const admission = env.admit(client.remoteAddress)
  if (admission !== "admitted") {
    yield* socket.write(Reply.format(Reply.make(421, "4.7.0", `Too many connections from your ${admission}, try again later`)))
    return yield* Effect.as(socket.close, "refused" as const)
  }
  return yield* session(env, accepted, client).pipe(Effect.ensuring(Effect.sync(() => env.release(client.remoteAddress))))
})

const session = Effect.fnUntraced(function*(
  env: ServerEnv,
  accepted: Accepted,
  client: { remoteAddress: string; remotePort: number; localAddress: string; localPort: number }
) {
  const { socket } = accepted
  const c: Conn = {
    socket,
    env,
    lines: LineDecoder.make(env.config.limits.maxLineLength, Memory.released),
    session: {
      id: newId(),
      ...client,
      hostname: env.config.hostname,
      tls: undefined,
      helo: undefined,
      user: undefined,
      authMechanism: undefined,
      notes: Notes.make()
    },
    out: [],
    outBytes: 0,
    lineDeadline: 0,
    greetingDeadline: 0,
    tx: undefined,
    chunking: undefined,
    invalid: 0,
    authFailures: 0,
    closing: false,
    commands: 0
  }
  return yield* Spans.session(c, serve(c, accepted.implicitTls))
})

/** Whatever ended the session: pending replies out, the transaction dropped, the socket closed. */
const closeSession = Effect.fnUntraced(function*(c: Conn) {
  yield* flush(c)
  yield* Commands.resetTransaction(c)
  yield* c.socket.close
  yield* c.env.pipeline.notify("disconnect", { session: c.session })
})

/** The TLS handshake first on an implicit-TLS listener, then the session until it ends. */
const serve = Effect.fnUntraced(function*(c: Conn, implicitTls: boolean) {
  const { socket, env } = c
  if (implicitTls) {
    const context = env.tls()
    const ok = context !== undefined && (yield* socket.upgradeTls(context, { keepBuffered: true }).pipe(
      Effect.timeout(env.config.limits.greetingTimeout),
      Effect.as(true),
      Effect.catchAll(() => Effect.succeed(false))
    ))
    if (!ok) return yield* Effect.as(socket.close, "closed" as const)
    const state = socket.tls()
    c.session.tls = { protocol: state?.protocol ?? "TLS", cipher: state?.cipher ?? "unknown", mode: "implicit" }
  }
  return yield* loop(c).pipe(
    Effect.onInterrupt(() => {
      // Forced shutdown: say so if the connection is still there.
      c.out.length = 0
      c.outBytes = 0
      reply(c, Reply.shuttingDown)
      return flush(c)
    }),
    Effect.ensuring(closeSession(c)),
    Effect.annotateLogs({ session: c.session.id, client: c.session.remoteAddress })
  )
})
