/**
 * One connection's interpreter: the I/O around the session machine (`session/Engine.ts`) during a
 * run of the session (`Lifecycle.ts` starts the runs, parks an idle session and ends it). It reads
 * bytes into the session's decoder, feeds the machine what they mean, writes its replies, and
 * carries out its actions: hooks, the storage check, the TLS handshake, the message buffer,
 * delivery. Every SMTP rule is the machine's; this module holds only timing and I/O state.
 * Replies to pipelined commands leave in one write, just before the next read.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Metrics from "../observability/Metrics.ts"
import type { SessionOutcome } from "../observability/Metrics.ts"
import type * as Pipeline from "../pipeline/Pipeline.ts"
import * as Reply from "../protocol/Reply.ts"
import type * as StreamDecoder from "../protocol/StreamDecoder.ts"
import * as Memory from "../runtime/Memory.ts"
import * as Socket from "../runtime/Socket.ts"
import * as Engine from "../session/Engine.ts"
import * as Spool from "../transport/Spool.ts"
import * as Capture from "./Capture.ts"
import * as Hooks from "./Hooks.ts"
import * as Incoming from "./Incoming.ts"
import type { ServerEnv } from "./Env.ts"
import * as SessionLog from "./SessionLog.ts"
import * as Spans from "./Spans.ts"

/** The I/O state of one connection; only this module and `Lifecycle.ts` read or change it. */
export interface Conn {
  readonly socket: Socket.SmtpSocket
  readonly env: ServerEnv
  readonly decoder: StreamDecoder.StreamDecoder
  state: Engine.State
  /** Replies waiting for the next flush: pipelined replies leave in one write. */
  readonly out: Array<string>
  /** Their length in characters, to bound the backlog. */
  outBytes: number
  /** When the command line being received must be complete (`Socket.now()` time); 0 while none is. */
  lineDeadline: number
  /** When the first command line must be complete (the greeting timeout). */
  greetingDeadline: number
  message: Incoming.Incoming | undefined
  /** `Socket.now()` time: when a refused BDAT chunk (no message to keep it) must be read; `transferTimeout` after its command. */
  skipDeadline: number
  trace: Spans.Trace | undefined
  refusals: number
  /** The last reply queued: the outcome of the command that gave it, for its span. */
  lastReply: Reply.Reply | undefined
  /** Set when this session is captured (`serve --capture`). */
  readonly capture: Capture.Recorder | undefined
  /** A plugin mechanism's exchange in progress (its plugin holds whatever it must remember). */
  exchange: Pipeline.Exchange | undefined
  /** What the wait the session parked on gave (`park`): its next run reads it first. */
  resumed: Socket.Next | undefined
  /** Hands the parked wait's result to a new run (made once: a park allocates nothing). */
  resume: (next: Socket.Next) => void
  /** Whether `finish` has run. */
  over: boolean
  /** Tells the server that the session is over (once). */
  readonly ended: (exit: Exit.Exit<SessionOutcome>) => Effect.Effect<void>
}

/**
 * How a run of the session on its fiber ended: with the session, or `parked`: the client is idle
 * and the session waits for it without a fiber (see `park`).
 */
export type Run = SessionOutcome | "parked"

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


export const queue = (c: Conn, r: Reply.Reply): void => {
  Metrics.replied(r)
  c.lastReply = r
  c.capture?.reply(r)
  const text = Reply.format(r)
  c.outBytes += text.length
  c.out.push(text)
}

export const flush = (c: Conn): Effect.Effect<void> => {
  if (c.out.length === 0) return Effect.void
  const data = c.out.length === 1 ? c.out[0]! : c.out.join("")
  c.out.length = 0
  c.outBytes = 0
  return c.socket.write(data)
}

const closed = (c: Conn): boolean => c.state.phase._tag === "Closed"

/**
 * When the next command-mode read gives up. Before a line starts: the idle timeout (the
 * greeting's deadline for the first). Once its first byte is in, the line has `commandTimeout`
 * to end, counted from that byte: a client dribbling one byte every few seconds no longer
 * restarts the clock.
 */
export const readDeadline = (c: Conn): number => {
  const limits = c.env.config.limits
  const first = c.state.commands === 0
  if (c.decoder.midLine()) {
    if (c.lineDeadline === 0) {
      const own = Socket.now() + Duration.toMillis(limits.commandTimeout)
      c.lineDeadline = first ? Math.min(own, c.greetingDeadline) : own
    }
    return c.lineDeadline
  }
  return first ? c.greetingDeadline : Socket.now() + Duration.toMillis(limits.idleTimeout)
}

type Event = StreamDecoder.Event | Extract<Engine.Input, { _tag: "End" }>

const end = (why: "eof" | "timeout" | "drain" | "flood"): Event => ({ _tag: "End", why })

/**
 * The next event of the byte stream, reading the socket as needed; `parked` when the session is
 * idle and there is nothing to read yet. An idle session also wakes when draining starts.
 */
const nextEvent = Effect.fnUntraced(function*(c: Conn) {
  for (;;) {
    const event = c.decoder.next()
    if (event !== undefined) {
      if (event._tag === "Line" || event._tag === "TooLong") {
        c.lineDeadline = 0
        if (c.outBytes > maxQueuedReplies) yield* flush(c)
      }
      return event as Event
    }
    yield* flush(c)
    if (c.decoder.mode() !== "command") {
      // Content: within the DATA timeout, and not past the transfer's deadline.
      const until = Math.min(c.message?.deadline ?? c.skipDeadline, Socket.now() + Duration.toMillis(c.env.config.limits.dataTimeout))
      const chunk = yield* c.socket.next(until, false)
      if (typeof chunk === "string") return end(chunk === "eof" ? "eof" : "timeout")
      c.decoder.push(chunk)
      continue
    }
    let chunk: Socket.Next
    if (c.resumed !== undefined) {
      chunk = c.resumed
      c.resumed = undefined
    } else {
      const idle = Engine.idle(c.state)
      if (idle && c.env.isDraining()) return end("drain")
      // An idle client is waited for without a fiber (`park`); it is woken when draining starts.
      if (idle) return "parked" as const
      chunk = yield* c.socket.next(readDeadline(c), false)
    }
    if (chunk === "woken") return end("drain")
    if (typeof chunk === "string") return end(chunk)
    c.decoder.push(chunk)
    // An overlong line is skipped as it arrives (the decoder reports it to Memory); one that
    // goes on and on is not a client worth waiting for.
    if (c.decoder.discarded() > maxSkipped) return end("flood")
    if (Memory.due()) yield* Memory.settle
  }
})

export const dropMessage = (c: Conn): Effect.Effect<void> => {
  const m = c.message
  c.message = undefined
  c.decoder.dropMessage()
  return m === undefined ? Effect.void : m.dispose
}


const checkStorage = Effect.fnUntraced(function*(c: Conn, size: number) {
  const { spool } = c.env
  const floor = c.env.config.spool?.minFreeSpace
  if (spool === undefined || floor === undefined) return { _tag: "Storage", ok: true } as const
  const ok = yield* Spool.hasRoom(spool.dir, size, floor)
  if (!ok) yield* Effect.logWarning(`spool ${spool.dir}: less than ${size + floor} bytes free; MAIL refused with 452 4.3.1`)
  return { _tag: "Storage", ok } as const
})

/** STARTTLS (RFC 3207): input pipelined after it is dropped, the 220 written, then the handshake. */
const startTls = Effect.fnUntraced(function*(c: Conn) {
  const context = c.env.tls()
  if (context === undefined) return { _tag: "TlsFailed" } as const
  // Input queued until the 220 leaves was sent before it: plaintext, never to be read as a command.
  c.decoder.discardBuffered()
  const out = c.out.join("")
  c.out.length = 0
  c.outBytes = 0
  // What comes after the 220 is the ClientHello, kept for the handshake: the fiber may not get to
  // the upgrade before it arrives (a scheduler turn, a write that waits for the kernel). A drain
  // ends the handshake (wakeable): the session is between transactions, as an idle one is.
  yield* Effect.suspend(() => {
    c.socket.discardInput()
    return c.socket.write(out)
  })
  const ok = yield* c.socket.upgradeTls(context, { keepBuffered: true, wakeable: true }).pipe(
    Effect.timeout(c.env.config.limits.greetingTimeout),
    Effect.as(true),
    Effect.catchAll((error) => Effect.logInfo(`STARTTLS failed: ${error.message}`).pipe(Effect.as(false)))
  )
  if (!ok) return { _tag: "TlsFailed" } as const
  const state = c.socket.tls()
  const tls = { protocol: state?.protocol ?? "TLS", cipher: state?.cipher ?? "unknown", mode: "starttls" } as const
  c.capture?.tls(tls)
  return { _tag: "TlsUp", tls } as const
})

const stepOf = (c: Conn, exchange: Pipeline.Exchange, response: string | undefined): Effect.Effect<Engine.Input> =>
  Effect.map(exchange.step(response), (step): Engine.Input => {
    if (step._tag === "Done") c.exchange = undefined
    return { _tag: "SaslStep", step, plugin: exchange.plugin }
  })

/** Starts a plugin's exchange and gives its first step. */
const saslStart = Effect.fnUntraced(function*(c: Conn, action: Extract<Engine.Action, { _tag: "SaslStart" }>) {
  const exchange = yield* c.env.pipeline.sasl(action.ctx)
  c.exchange = exchange
  return yield* stepOf(c, exchange, action.initial)
})

/** Tells the plugin its exchange is over (the client cancelled or left); never fails. */
export const saslAbort = (c: Conn): Effect.Effect<void> => {
  const exchange = c.exchange
  c.exchange = undefined
  return exchange === undefined ? Effect.void : exchange.abort
}

const runHook = (c: Conn, action: Engine.Run): Effect.Effect<Engine.Input> => Hooks.run(c.env.pipeline, action, (ctx) => c.message!.runData(ctx))

/** Carries out one action; gives back the input that answers it, if it is answered. */
const perform = (c: Conn, action: Engine.Action): Effect.Effect<Engine.Input | undefined> => {
  switch (action._tag) {
    case "Run":
      return runHook(c, action)
    case "SaslStart":
      return saslStart(c, action)
    case "SaslContinue":
      // The machine asks only while an exchange is open; none would be a bug of ours (a defect, 421).
      return stepOf(c, c.exchange!, action.response)
    case "SaslAbort":
      return Effect.as(saslAbort(c), undefined)
    case "CheckStorage":
      return checkStorage(c, action.size)
    case "StartTls":
      return startTls(c)
    case "OpenMessage":
      c.message = Incoming.open(c.env, Socket.now())
      return Effect.succeed(undefined)
    case "ReceiveData":
      c.decoder.expectData()
      return Effect.succeed(undefined)
    case "ReceiveChunk":
      // Checked here too: many small chunks, each arriving with its command, never wait for bytes.
      if (c.message !== undefined && Socket.now() >= c.message.deadline) return Effect.succeed(end("timeout") as Engine.Input)
      // A refused chunk is read only to be thrown away, but no more slowly than a kept one.
      if (c.message === undefined) c.skipDeadline = Socket.now() + Duration.toMillis(c.env.config.limits.transferTimeout)
      c.decoder.expectChunk(action.size, action.last, action.keep)
      return Effect.succeed(undefined)
    case "Seal":
      return c.message!.seal
    case "Deliver": {
      const m = c.message!
      const captured = c.capture === undefined ? Effect.void : c.capture.message(m.content()!, action.transaction.id)
      return Effect.zipRight(captured, m.deliver(action.session, action.transaction))
    }
    case "DropMessage":
      return Effect.as(dropMessage(c), undefined)
    case "Refused":
      c.capture?.refused(action.by)
      return Effect.as(SessionLog.refused(c.state.session, c.state.command, action.reply, action.by, ++c.refusals), undefined)
    case "AuthFailed":
      return Effect.as(SessionLog.authFailed(c.state.session, action), undefined)
    case "AuthDeferred":
      return Effect.as(SessionLog.authDeferred(c.state.session, action), undefined)
    case "AuthResult":
      c.capture?.auth(action.ctx)
      return Effect.as(c.env.pipeline.notify("authResult", action.ctx), undefined)
  }
}

/** Applies one step's result: its replies queued, its transaction events to the spans, its actions carried out. */
const apply = Effect.fnUntraced(function*(c: Conn, result: Engine.Result) {
  const recipients = c.state.tx?.recipients.length ?? 0
  c.state = result.state
  for (const r of result.replies) queue(c, r)
  if (c.trace !== undefined) for (const event of result.transaction) yield* Spans.transaction(c.trace, event, recipients)
  let answer: Engine.Input | undefined
  for (const action of result.actions) {
    const fed = yield* perform(c, action)
    if (fed !== undefined) answer = fed
  }
  return answer
})

/** Feeds the machine `input`, and every answer of the actions it asks for, until it waits for the client. */
const feed = Effect.fnUntraced(function*(c: Conn, input: Engine.Input) {
  let next: Engine.Input | undefined = input
  while (next !== undefined) next = yield* apply(c, Engine.step(c.state, next))
})

/** A command line (or a SASL response): under its span, with the transaction's id on every log line. */
const line = (c: Conn, input: Extract<Engine.Input, { _tag: "Line" | "TooLong" }>): Effect.Effect<void> => {
  c.capture?.input(input._tag === "TooLong" ? "(line too long)" : Capture.label(c.state.phase._tag === "Sasl", input.line))
  const tx = c.state.tx
  const command = c.state.phase._tag === "Command"
  const first = Engine.step(c.state, input)
  const run = Effect.flatMap(apply(c, first), (answer) => (answer === undefined ? Effect.void : feed(c, answer)))
  // Inside a transaction every log line carries its id, as the Received header and the 250 do.
  const logged = tx === undefined ? run : Effect.annotateLogs(run, "transaction", tx.id)
  // A line that did not parse, or a SASL response, is no command of its own.
  const parsed = first.state.command
  if (c.trace === undefined || !command || parsed === undefined || parsed === c.state.command) return logged
  return Spans.command(c.trace, parsed.verb, logged, () => c.lastReply?.code)
}

/** The write timeout cut off a client that did not read its replies: a timeout, logged as such. */
const stalled = (c: Conn) =>
  Effect.as(
    Effect.logInfo(`closed: the client did not read its replies for ${Duration.format(c.env.config.limits.idleTimeout)}`),
    "timeout" as const
  )

/** The session until it ends (says how, for the sessions metric) or parks. */
export const loop = Effect.fnUntraced(function*(c: Conn) {
  while (!closed(c)) {
    const event = yield* nextEvent(c)
    if (event === "parked") return event
    switch (event._tag) {
      case "Line":
      case "TooLong":
        yield* line(c, event)
        break
      case "Content":
        if (c.message !== undefined) yield* c.message.store(event.parts)
        break
      case "ContentEnd": {
        c.capture?.input("(message)")
        const facts = c.message?.facts() ?? { tooBig: false, storageFailed: false }
        const run = feed(c, { _tag: "ContentEnd", ...facts, bare: event.bare })
        const tx = c.state.tx
        const logged = tx === undefined ? run : Effect.annotateLogs(run, "transaction", tx.id)
        yield* c.trace === undefined ? logged : Spans.within(c.trace, logged)
        break
      }
      case "End":
        c.capture?.input("(end)")
        yield* feed(c, event)
        if (event.why === "eof" && c.socket.stalled()) return yield* stalled(c)
    }
  }
  const phase = c.state.phase
  return phase._tag === "Closed" ? phase.outcome : "closed"
})

/** The greeting, then the session. */
export const greet = Effect.fnUntraced(function*(c: Conn) {
  c.capture?.input("(connect)")
  yield* feed(c, { _tag: "Connected" })
  c.greetingDeadline = Socket.now() + Duration.toMillis(c.env.config.limits.greetingTimeout)
  return yield* loop(c)
})
