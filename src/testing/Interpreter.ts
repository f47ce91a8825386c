/**
 * The in-memory interpreter of the session machine: what `server/Connection.ts` does over a
 * socket, done over bytes a test hands in. The bytes go through the real `StreamDecoder`, the
 * machine's actions are carried out with the real pipeline, message buffer and delivery path,
 * and each reply is kept with the input that produced it. There are no timers: a test decides
 * when the client stops (`end`).
 */
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import type * as LogLevel from "effect/LogLevel"
import type * as Pipeline from "../pipeline/Pipeline.ts"
import type { SessionInfo } from "../pipeline/Session.ts"
import * as Reply from "../protocol/Reply.ts"
import * as StreamDecoder from "../protocol/StreamDecoder.ts"
import * as Hooks from "../server/Hooks.ts"
import type { ServerEnv } from "../server/Env.ts"
import * as Incoming from "../server/Incoming.ts"
import * as Engine from "../session/Engine.ts"

/** One input of the client and what the bridge answered to it. */
export interface Exchange {
  /**
   * A command line as sent (an AUTH initial response and every SASL response written `*`), or
   * `(connect)` for the greeting, `(message)` for the end of a message's content, `(end)` when
   * the client left.
   */
  readonly input: string
  readonly replies: ReadonlyArray<Reply.Reply>
  /** Who refused, when a reply was a policy refusal: the plugin's name, or `bridge` for the bridge's own rules. */
  readonly refusedBy: string | undefined
}

export interface Session {
  readonly info: () => SessionInfo
  readonly state: () => Engine.State
  readonly exchanges: ReadonlyArray<Exchange>
  /** Bytes from the client (one line or many, pipelined or not); gives the replies they produced. */
  readonly write: (bytes: string | Uint8Array) => Effect.Effect<ReadonlyArray<Reply.Reply>>
  /** One command line (CRLF added); gives the first line of each reply, e.g. `250 2.1.5 Ok`. */
  readonly send: (line: string) => Effect.Effect<string>
  /** A message's content after DATA's 354: dot-stuffed, CRLF line endings, then the final dot; gives the final reply. */
  readonly message: (text: string) => Effect.Effect<string>
  /** The client leaves (EOF): a message in transfer is dropped, the `disconnect` hooks run. */
  readonly end: Effect.Effect<void>
  readonly closed: () => boolean
}

interface Open {
  readonly env: ServerEnv
  readonly decoder: StreamDecoder.StreamDecoder
  state: Engine.State
  readonly exchanges: Array<{ input: string; replies: Array<Reply.Reply>; refusedBy: string | undefined }>
  /** The message in progress: the same as the server's. */
  message: Incoming.Incoming | undefined
  /** A plugin mechanism's exchange in progress. */
  exchange: Pipeline.Exchange | undefined
  ended: boolean
}

/** A reply as a test names it: code, enhanced code and its first line (`250 2.1.0 Ok`). */
export const show = (r: Reply.Reply): string => Reply.format(r).split("\r\n")[0]!.replace(/^(\d{3})-/, "$1 ")

const current = (c: Open) => c.exchanges[c.exchanges.length - 1]!


const runHook = (c: Open, action: Engine.Run): Effect.Effect<Engine.Input> => Hooks.run(c.env.pipeline, action, (ctx) => c.message!.runData(ctx))

const dropMessage = (c: Open): Effect.Effect<void> => {
  const m = c.message
  c.message = undefined
  c.decoder.dropMessage()
  return m === undefined ? Effect.void : m.dispose
}

/** A plugin mechanism's step, as the machine's input; the exchange is forgotten once it is done. */
const stepOf = (c: Open, exchange: Pipeline.Exchange, response: string | undefined): Effect.Effect<Engine.Input> =>
  Effect.map(exchange.step(response), (step): Engine.Input => {
    if (step._tag === "Done") c.exchange = undefined
    return { _tag: "SaslStep", step, plugin: exchange.plugin }
  })

const perform = (c: Open, action: Engine.Action): Effect.Effect<Engine.Input | undefined> => {
  switch (action._tag) {
    case "Run":
      return runHook(c, action)
    case "SaslStart":
      return Effect.flatMap(c.env.pipeline.sasl(action.ctx), (exchange) => {
        c.exchange = exchange
        return stepOf(c, exchange, action.initial)
      })
    case "SaslContinue":
      return stepOf(c, c.exchange!, action.response)
    case "SaslAbort": {
      const exchange = c.exchange
      c.exchange = undefined
      return exchange === undefined ? Effect.succeed(undefined) : Effect.as(exchange.abort, undefined)
    }
    case "CheckStorage":
      return Effect.succeed({ _tag: "Storage", ok: true })
    case "StartTls":
      // Whatever the client sent after STARTTLS was plaintext before the handshake: dropped.
      c.decoder.discardBuffered()
      return Effect.succeed({ _tag: "TlsUp", tls: { protocol: "TLSv1.3", cipher: "TLS_AES_256_GCM_SHA384", mode: "starttls" } })
    case "OpenMessage":
      // No clock here: the in-memory session has no transfer deadline to keep.
      c.message = Incoming.open(c.env, 0)
      return Effect.succeed(undefined)
    case "ReceiveData":
      c.decoder.expectData()
      return Effect.succeed(undefined)
    case "ReceiveChunk":
      c.decoder.expectChunk(action.size, action.last, action.keep)
      return Effect.succeed(undefined)
    case "Seal":
      return c.message!.seal
    case "Deliver":
      return c.message!.deliver(action.session, action.transaction)
    case "DropMessage":
      return Effect.as(dropMessage(c), undefined)
    case "Refused":
      current(c).refusedBy = action.by
      return Effect.succeed(undefined)
    case "AuthFailed":
    case "AuthDeferred":
      if (action._tag === "AuthDeferred") current(c).refusedBy = action.by ?? "bridge"
      return Effect.succeed(undefined)
    case "AuthResult":
      return Effect.as(c.env.pipeline.notify("authResult", action.ctx), undefined)
  }
}

/** Feeds the machine `input`, and every answer of the actions it asks for, until it waits for the client. */
const feed = Effect.fnUntraced(function*(c: Open, input: Engine.Input) {
  let next: Engine.Input | undefined = input
  while (next !== undefined) {
    const result = Engine.step(c.state, next)
    c.state = result.state
    current(c).replies.push(...result.replies)
    next = undefined
    for (const action of result.actions) {
      const answer = yield* perform(c, action)
      if (answer !== undefined) next = answer
    }
  }
})

/** What the exchange is called: never a credential. */
const label = (c: Open, line: string): string => {
  if (c.state.phase._tag === "Sasl") return "*"
  const auth = /^(AUTH\s+\S+)\s+\S/i.exec(line)
  return auth === null ? line : `${auth[1]} *`
}

const begin = (c: Open, input: string) => void c.exchanges.push({ input, replies: [], refusedBy: undefined })

const closed = (c: Open): boolean => c.state.phase._tag === "Closed"

/** Every event the decoder has, until it needs more bytes or the session closed. */
const pump = Effect.fnUntraced(function*(c: Open) {
  while (!closed(c)) {
    const event = c.decoder.next()
    if (event === undefined) return
    switch (event._tag) {
      case "Line":
        begin(c, label(c, event.line))
        yield* feed(c, event)
        break
      case "TooLong":
        begin(c, "(line too long)")
        yield* feed(c, event)
        break
      case "Content":
        if (c.message !== undefined) yield* c.message.store(event.parts)
        break
      case "ContentEnd":
        begin(c, "(message)")
        yield* feed(c, { _tag: "ContentEnd", ...(c.message?.facts() ?? { tooBig: false, storageFailed: false }), bare: event.bare })
        break
    }
  }
})

const encoder = new TextEncoder()

/** Dot-stuffed content with CRLF line endings and the final dot (RFC 5321 4.5.2). */
export const dataOf = (text: string): string => {
  const crlf = text.replace(/\r?\n/g, "\r\n")
  const body = crlf.endsWith("\r\n") || crlf.length === 0 ? crlf : `${crlf}\r\n`
  return `${body.replace(/^\./gm, "..")}.\r\n`
}

/** A new session: the `connect` hooks run and the greeting (or refusal) is its first exchange. */
export const open = (env: ServerEnv, settings: Engine.Settings, info: SessionInfo, logLevel: LogLevel.LogLevel): Effect.Effect<Session> =>
  Effect.gen(function*() {
    const quiet = Logger.withMinimumLogLevel(logLevel)
    const c: Open = {
      env,
      decoder: StreamDecoder.make({ maxLineLength: env.config.limits.maxLineLength, bareLineEndings: env.config.bareLineEndings }),
      state: Engine.start(settings, info),
      exchanges: [],
      message: undefined,
      exchange: undefined,
      ended: false
    }
    begin(c, "(connect)")
    yield* quiet(feed(c, { _tag: "Connected" }))
    const write = (bytes: string | Uint8Array) =>
      quiet(Effect.gen(function*() {
        const from = c.exchanges.length
        if (closed(c)) return []
        c.decoder.push(typeof bytes === "string" ? encoder.encode(bytes) : bytes)
        yield* pump(c)
        if (closed(c)) yield* finish
        return c.exchanges.slice(from).flatMap((e) => e.replies)
      }))
    const finish = Effect.suspend(() => {
      if (c.ended) return Effect.void
      c.ended = true
      return Effect.zipRight(dropMessage(c), env.pipeline.notify("disconnect", { session: c.state.session }))
    })
    const end = quiet(Effect.gen(function*() {
      if (!closed(c)) {
        begin(c, "(end)")
        yield* feed(c, { _tag: "End", why: "eof" })
      }
      yield* finish
    }))
    const firstLines = (replies: ReadonlyArray<Reply.Reply>) => replies.map(show).join("\n")
    return {
      info: () => c.state.session,
      state: () => c.state,
      exchanges: c.exchanges,
      write,
      send: (line) => Effect.map(write(`${line}\r\n`), firstLines),
      message: (text) => Effect.map(write(dataOf(text)), firstLines),
      end,
      closed: () => closed(c)
    }
  })
