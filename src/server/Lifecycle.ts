/**
 * A connection from accept to end: admission (PROXY header, per-address limit), an implicit-TLS
 * handshake, then the session in runs. A run is a fiber of the server's while there is work; while
 * the client is idle (after the greeting, between transactions) the session waits with no fiber at
 * all, only a socket callback (`park`), and what comes next starts a new run. The end (replies
 * out, socket closed, span, address count, the server told) runs once, on whichever run ends it.
 * The commands themselves are `Connection.ts`'s.
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"
import * as HashMap from "effect/HashMap"
import * as Observe from "../dns/Observe.ts"
import type { SessionOutcome } from "../observability/Metrics.ts"
import * as Notes from "../pipeline/Notes.ts"
import * as Reply from "../protocol/Reply.ts"
import * as StreamDecoder from "../protocol/StreamDecoder.ts"
import * as Memory from "../runtime/Memory.ts"
import type * as Socket from "../runtime/Socket.ts"
import * as Engine from "../session/Engine.ts"
import * as Capture from "./Capture.ts"
import * as Client from "./Client.ts"
import * as Connection from "./Connection.ts"
import type { ServerEnv } from "./Env.ts"
import * as Settings from "./Settings.ts"
import * as Spans from "./Spans.ts"

export interface Accepted {
  readonly socket: Socket.SmtpSocket
  /** Set for implicit-TLS listeners: the handshake runs before the greeting. */
  readonly implicitTls: boolean
}

/** What a session needs from its server. */
export interface Server {
  /** Starts `effect` on a new fiber of the server's (drained and interrupted with the others). */
  readonly fork: (effect: Effect.Effect<unknown>) => void
  /** Runs once, when the session is over, with how it ended. */
  readonly ended: (exit: Exit.Exit<SessionOutcome>) => Effect.Effect<void>
}

const isParked = (exit: Exit.Exit<Connection.Run>): boolean => Exit.isSuccess(exit) && exit.value === "parked"

const outcome = (exit: Exit.Exit<Connection.Run>): Exit.Exit<SessionOutcome> => Exit.map(exit, (run) => (run === "parked" ? "closed" : run))

/**
 * One connection. Its session runs on a fiber while there is work; while the client is idle
 * (after the greeting, between transactions) it waits with no fiber at all, only a socket
 * callback (`park`), and the next command starts a new run. A suspended fiber with its stack of
 * continuations was most of an idle session's memory (~17 KB of its ~24 KB of live heap on Bun).
 * `server.ended` runs once, on whichever fiber the session ends.
 */
export const handle = (env: ServerEnv, accepted: Accepted, server: Server): Effect.Effect<void> => {
  let over = false
  const ended = (exit: Exit.Exit<SessionOutcome>): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (over) return Effect.void
      over = true
      return server.ended(exit)
    })
  return Effect.onExit(start(env, accepted, { fork: server.fork, ended }), (exit) => (isParked(exit) ? Effect.void : ended(outcome(exit))))
}

const start = Effect.fnUntraced(function*(env: ServerEnv, accepted: Accepted, server: Server) {
  const { socket } = accepted
  // A forced shutdown may interrupt the wait for a PROXY header: the socket is closed all the same.
  const client = yield* Effect.onInterrupt(Client.of(env, socket), () => socket.close)
  if (client === undefined) return yield* Effect.as(socket.close, "refused" as const)
  const admission = env.admit(client.remoteAddress)
  if (admission !== "admitted") {
    const reply = Reply.format(Reply.make(421, "4.7.0", `Too many connections from your ${admission}, try again later`))
    return yield* Effect.as(refusal(socket, reply, accepted.implicitTls), "refused" as const)
  }
  return yield* session(env, accepted, client, server)
})

/**
 * Refuses a connection before its session: `reply`, then the socket closed at once. Not a
 * lingering close: that held each refused connection's descriptor up to 2 s, outside the session
 * cap, so a flood from one address past `maxConnectionsPerIp` (clients that never close) ran the
 * process out of them (600 of 600; Deno's listener then stopped for good). A client that follows
 * RFC 5321 has sent nothing before its greeting, so no reset eats the reply.
 *
 * On an implicit-TLS listener, no reply: there the handshake begins at once and SMTP is only ever
 * TLS application data (RFC 8314 section 3.3), so a plaintext 421 reached clients as "wrong version
 * number", a TLS misconfiguration by the look of it. A handshake to say 421 inside would cost the
 * CPU and time that a refusal under load must not.
 */
export const refusal = (socket: Socket.SmtpSocket, reply: string, implicitTls: boolean): Effect.Effect<void> =>
  implicitTls ? socket.closeNow : Effect.zipRight(socket.write(reply), socket.closeNow)

/**
 * The TLS handshake first on an implicit-TLS listener; undefined when it failed. A shutdown's drain
 * ends it (wakeable): a client that never sends its ClientHello, or stops halfway, held stop() for
 * the whole shutdownTimeout.
 */
const implicitHandshake = Effect.fnUntraced(function*(env: ServerEnv, socket: Socket.SmtpSocket) {
  const context = env.tls()
  const ok = context !== undefined && (yield* socket.upgradeTls(context, { keepBuffered: true, wakeable: true }).pipe(
    Effect.timeout(env.config.limits.greetingTimeout),
    Effect.as(true),
    Effect.catchAll(() => Effect.succeed(false))
  ))
  if (!ok) return undefined
  const state = socket.tls()
  return { protocol: state?.protocol ?? "TLS", cipher: state?.cipher ?? "unknown", mode: "implicit" as const }
})

const session = (env: ServerEnv, accepted: Accepted, client: Client.Client, server: Server): Effect.Effect<Connection.Run> =>
  Effect.suspend(() => {
    const { socket } = accepted
    const info = { id: Settings.newId(), ...client, hostname: env.config.hostname, tls: undefined, helo: undefined, user: undefined, authMechanism: undefined, notes: Notes.make() }
    const c: Connection.Conn = {
      socket,
      env,
      decoder: StreamDecoder.make({ maxLineLength: env.config.limits.maxLineLength, bareLineEndings: env.config.bareLineEndings, onDiscard: Memory.released }),
      state: Engine.start(Settings.of(env), info),
      out: [],
      outBytes: 0,
      lineDeadline: 0,
      greetingDeadline: 0,
      message: undefined,
      skipDeadline: 0,
      trace: undefined,
      refusals: 0,
      lastReply: undefined,
      capture: Capture.begin(env.config.capture, info),
      exchange: undefined,
      resumed: undefined,
      resume: ignoreNext,
      over: false,
      ended: server.ended
    }
    c.resume = resumer(c, server.fork)
    return Spans.open(info).pipe(
      Effect.flatMap((trace) => {
        c.trace = trace
        return opening(c, accepted.implicitTls)
      }),
      Effect.onExit((exit) => (isParked(exit) ? Effect.void : finish(c, outcome(exit))))
    )
  })

/** The TLS handshake first on an implicit-TLS listener, then the session's first run. */
const opening = Effect.fnUntraced(function*(c: Connection.Conn, implicitTls: boolean) {
  if (implicitTls) {
    const tls = yield* implicitHandshake(c.env, c.socket)
    if (tls === undefined) return yield* Effect.as(c.socket.close, "closed" as const)
    // The session starts encrypted: the machine begins with TLS known.
    c.state = Engine.start(c.state.settings, { ...c.state.session, tls })
    c.capture?.tls(tls)
  }
  return yield* run(c, Connection.greet(c))
})

const ignoreNext = (_: Socket.Next): void => {}

/** Made apart from the session's other closures, so that a parked session keeps only what it needs. */
const resumer = (c: Connection.Conn, fork: Server["fork"]) => (next: Socket.Next): void => {
  c.resumed = next
  fork(run(c, Connection.loop(c)))
}

/**
 * Waits for the idle client with no fiber: what comes (a chunk, the end, the deadline, a drain) starts
 * the next run. A drain that started after the run last looked (its fiber may yield to the server's
 * between that look and here) woke the socket already: the wake latches, so this wait ends at once.
 */
const park = (c: Connection.Conn): void => c.socket.await(Connection.readDeadline(c), true, c.resume)

/**
 * One run of the session, until it ends or parks. What the session's fiber carried from run to
 * run is set again on each run's fiber (a fiber of its own, so nothing needs restoring): its log
 * annotations, its span, a capture's DNS observer (the hooks' fibers inherit it). Kept to one
 * `catchAllDefect` and one `onExit`: a run starts for every command that follows a quiet moment.
 */
const run = (c: Connection.Conn, body: Effect.Effect<Connection.Run>): Effect.Effect<Connection.Run> => {
  const { session } = c.state
  const scoped = Effect.zipRight(
    FiberRef.update(FiberRef.currentLogAnnotations, (annotations) => HashMap.set(HashMap.set(annotations, "session", session.id), "client", session.remoteAddress)),
    // A defect (a bug of ours or of a plugin outside its hooks) ends the session, not the
    // process; the client hears 421 4.3.0 rather than a silent close, and nothing is delivered.
    Effect.catchAllDefect(body, (defect) => {
      c.out.length = 0
      c.outBytes = 0
      Connection.queue(c, Reply.make(421, "4.3.0", "Internal error, closing connection"))
      return Effect.as(Effect.logError("session failed", Cause.die(defect)), "error" as const)
    })
  )
  const observed = c.capture === undefined ? scoped : Effect.zipRight(FiberRef.set(Observe.current, c.capture.dns), scoped)
  const settled = Effect.onExit(observed, (exit) => {
    if (isParked(exit)) return Effect.sync(() => park(c))
    // Forced shutdown: say so if the connection is still there.
    const said = Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause) ? shuttingDown(c) : Effect.void
    return Effect.onExit(Effect.zipRight(said, closeSession(c)), (closing) => finish(c, Exit.zipRight(closing, outcome(exit))))
  })
  return c.trace === undefined ? settled : Spans.session(c.trace, settled)
}

const shuttingDown = (c: Connection.Conn): Effect.Effect<void> => {
  c.out.length = 0
  c.outBytes = 0
  Connection.queue(c, Reply.shuttingDown)
  return Connection.flush(c)
}

/** Whatever ended the session: pending replies out, the message dropped, the socket closed. */
const closeSession = Effect.fnUntraced(function*(c: Connection.Conn) {
  yield* Connection.flush(c)
  // An exchange cut short by a defect or a forced shutdown: its plugin still hears of it.
  yield* Connection.saslAbort(c)
  yield* Connection.dropMessage(c)
  yield* c.socket.close
  yield* c.env.pipeline.notify("disconnect", { session: c.state.session })
  if (c.capture !== undefined) yield* c.capture.finish(c.state.phase._tag === "Closed" ? c.state.phase.outcome : "closed")
})

/** The session is over: its span ends, its address is counted out, the server is told; once. */
const finish = (c: Connection.Conn, exit: Exit.Exit<SessionOutcome>): Effect.Effect<void> =>
  Effect.suspend(() => {
    if (c.over) return Effect.void
    c.over = true
    const spans = c.trace === undefined ? Effect.void : Spans.close(c.trace, { session: c.state.session, commands: c.state.commands }, exit)
    return spans.pipe(
      Effect.ensuring(Effect.sync(() => c.env.release(c.state.session.remoteAddress))),
      Effect.ensuring(c.ended(exit))
    )
  })
