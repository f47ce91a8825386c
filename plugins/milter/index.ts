/**
 * Milter client: the bridge as the MTA side of the Sendmail milter protocol (version 6, as
 * Postfix implements it), so OpenDKIM, rspamd's milter proxy, ClamAV and any libmilter filter
 * work in front of the relay. Hand-written (see Protocol.ts): no kept JavaScript library speaks
 * the MTA side. Sockets come from the plugin API's `Connect`, so nothing here is runtime-specific.
 *
 * Each SMTP session gets its own connection to each milter. The stages map onto the plugin
 * hooks: connect → `connect`, HELO → `helo`, MAIL → `mailFrom`, RCPT → `rcptTo`, and DATA,
 * the header fields, end of headers, the body and end of message → `data`, where the milter's
 * modifications go through `DataContext.edit`. Milters run in order; the first that refuses
 * decides. A milter that is down, stalls or breaks the protocol gets the default action
 * (`tempfail`: 451 4.7.1; `accept`: the session goes on without it), as Postfix's
 * `milter_default_action`.
 *
 * @example
 * import { milter } from "./plugins/milter/index.ts"
 * export default defineConfig({ plugins: [milter({ milters: ["inet:127.0.0.1:8891"] })] })
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { definePlugin, Notes, Verdict } from "../../src/index.ts"
import type { DataContext, Made, SessionInfo, TransactionInfo } from "../../src/index.ts"
import * as Link from "./Link.ts"
import * as Macros from "./Macros.ts"
import * as Stage from "./Message.ts"
import { Options, parseSocket } from "./options.ts"
import * as Protocol from "./Protocol.ts"

export { Options } from "./options.ts"

const { Cmd, Step } = Protocol

interface Milter {
  readonly socket: string
  readonly endpoint: Link.Endpoint
  readonly defaultAction: "tempfail" | "accept"
  readonly connect: number
  readonly timeouts: Stage.Timeouts
}

/** One milter in one session. */
interface State {
  readonly milter: Milter
  link: Link.Link | undefined
  /** Failed (its default action applies from now on), or done with the session (it accepted it). */
  status: "open" | "failed" | "done"
  /** Accepted the current message: no more of it. */
  messageDone: boolean
  /** MAIL was sent and the message not ended: an ABORT is owed before the next MAIL or QUIT. */
  inTransaction: boolean
}

interface SessionState {
  readonly milters: ReadonlyArray<State>
  /** A milter said DISCARD before the end of the message: for the session, or for this transaction. */
  discardSession: boolean
  discardMessage: boolean
}

const tempfail = Verdict.defer("Service unavailable - try again later", { code: 451, enhanced: "4.7.1" })
const rejected = Verdict.reject("Command rejected", { code: 550, enhanced: "5.7.1" })

const ms = (d: string | number): number => Duration.toMillis(Duration.decode(d as Duration.DurationInput))

let instances = 0

/** A milter's answer as a verdict; `Accept` and `Discard` are bookkeeping, not refusals. */
const verdictOf = (r: Protocol.Response): Verdict.Verdict => {
  switch (r._tag) {
    case "Reject":
      return rejected
    case "Tempfail":
      return tempfail
    case "ReplyCode": {
      const enhanced = r.enhanced ?? `${String(r.code)[0]}.7.1`
      const text = r.lines.join("\n")
      if (r.code === 421) return Verdict.disconnect(text, { code: 421, enhanced })
      return r.code >= 500 ? Verdict.reject(text, { code: r.code, enhanced }) : Verdict.defer(text, { code: r.code, enhanced })
    }
    default:
      return Verdict.Continue
  }
}

const make = (options: Options): Made => {
  const milters: ReadonlyArray<Milter> = options.milters.map((m) => {
    const spec = typeof m === "string" ? { socket: m } : m
    return {
      socket: spec.socket,
      endpoint: parseSocket(spec.socket)!,
      defaultAction: spec.defaultAction ?? options.defaultAction,
      connect: ms(spec.connectTimeout ?? options.connectTimeout),
      timeouts: { command: ms(spec.commandTimeout ?? options.commandTimeout), content: ms(spec.contentTimeout ?? options.contentTimeout) }
    }
  })
  const key = Notes.key<SessionState>(`milter.${++instances}`)

  const macroFrame = (s: State, stage: Protocol.MacroStage, cmd: string, facts: Macros.Facts): Uint8Array | undefined => {
    const pairs = Macros.forStage(stage, facts, s.link!.negotiated.macros.get(stage))
    return pairs.length === 0 ? undefined : Protocol.macros(cmd, pairs)
  }

  /** The milter failed: log it, drop it, and give the default action. */
  const failed = (s: State, error: Link.MilterError) =>
    Effect.gen(function*() {
      yield* Effect.logWarning(`${error.message}; default action ${s.milter.defaultAction}`).pipe(Effect.annotateLogs({ milter: s.milter.socket, reason: error.reason }))
      s.status = "failed"
      const link = s.link
      s.link = undefined
      if (link !== undefined) yield* link.quit
      return s.milter.defaultAction === "tempfail" ? tempfail : Verdict.Continue
    })

  /**
   * Runs one stage on every milter still in the game, in order: `step` talks to one milter and
   * gives its final answer; the first refusal wins.
   */
  const each = (
    session: SessionInfo,
    perMessage: boolean,
    step: (s: State, state: SessionState) => Effect.Effect<Protocol.Response | undefined, Link.MilterError>
  ) =>
    Effect.gen(function*() {
      const state = session.notes.get(key)
      if (state === undefined) return Verdict.Continue
      for (const s of state.milters) {
        if (s.status === "failed") {
          if (s.milter.defaultAction === "tempfail") return tempfail
          continue
        }
        if (s.status === "done" || (perMessage && s.messageDone) || s.link === undefined) continue
        const answer = yield* Effect.either(step(s, state))
        if (answer._tag === "Left") {
          const v = yield* failed(s, answer.left)
          if (v._tag !== "Continue") return v
          continue
        }
        const r = answer.right
        if (r === undefined) continue
        if (r._tag === "Accept") {
          if (perMessage) s.messageDone = true
          else {
            s.status = "done"
            const link = s.link
            s.link = undefined
            yield* link.quit
          }
        }
        if (r._tag === "Discard") {
          if (perMessage) state.discardMessage = true
          else state.discardSession = true
        }
        const v = verdictOf(r)
        if (v._tag !== "Continue") return v
      }
      return Verdict.Continue
    })

  const abort = (s: State) =>
    Effect.gen(function*() {
      if (s.inTransaction && s.link !== undefined) {
        s.inTransaction = false
        yield* Effect.ignore(s.link.send(Protocol.frame(Cmd.Abort), s.milter.timeouts.command))
      }
      s.messageDone = false
    })

  const facts = (session: SessionInfo, transaction?: TransactionInfo, rcpt?: string): Macros.Facts => ({
    session,
    daemonName: options.daemonName,
    transaction,
    rcpt
  })

  const withMacros = (s: State, stage: Protocol.MacroStage, cmd: string, f: Macros.Facts, frame: Uint8Array): Uint8Array => {
    const m = macroFrame(s, stage, cmd, f)
    return m === undefined ? frame : join(m, frame)
  }

  return {
    connect: ({ session }) =>
      Effect.gen(function*() {
        const states: Array<State> = []
        for (const milter of milters) {
          const opened = yield* Effect.either(Link.open(milter.socket, milter.endpoint, milter.connect))
          const s: State = { milter, link: undefined, status: "open", messageDone: false, inTransaction: false }
          if (opened._tag === "Right") s.link = opened.right
          else {
            yield* Effect.logWarning(`${opened.left.message}; default action ${milter.defaultAction}`).pipe(Effect.annotateLogs({ milter: milter.socket }))
            s.status = "failed"
          }
          states.push(s)
        }
        session.notes.set(key, { milters: states, discardSession: false, discardMessage: false })
        return yield* each(session, false, (s) => {
          if ((s.link!.negotiated.steps & Step.NoConnect) !== 0) return Effect.succeed(undefined)
          const ip = session.remoteAddress.replace(/^::ffff:(?=\d+\.)/, "")
          const family = ip.includes(":") ? "6" : "4"
          const frame = Protocol.frame(Cmd.Connect, Protocol.cstring(`[${ip}]`), Uint8Array.of(family.charCodeAt(0)), Protocol.uint16(session.remotePort), Protocol.cstring(ip))
          return Stage.command(s.link!, withMacros(s, "connect", Cmd.Connect, facts(session), frame), Step.NrConnect, s.milter.timeouts.command)
        })
      }),
    helo: ({ session, name }) =>
      each(session, false, (s) =>
        (s.link!.negotiated.steps & Step.NoHelo) !== 0
          ? Effect.succeed(undefined)
          : Stage.command(s.link!, withMacros(s, "helo", Cmd.Helo, facts(session), Protocol.frame(Cmd.Helo, Protocol.cstring(name))), Step.NrHelo, s.milter.timeouts.command)),
    mailFrom: ({ session, from, params }) =>
      Effect.gen(function*() {
        const state = session.notes.get(key)
        if (state === undefined) return Verdict.Continue
        state.discardMessage = false
        for (const s of state.milters) yield* abort(s)
        // The transaction is not made yet at MAIL: `i` and `{mail_addr}` come from what the client sent.
        const tx = { id: "", mailFrom: from, mailParams: params, recipients: [], notes: Notes.make() } as TransactionInfo
        return yield* each(session, true, (s) => {
          if ((s.link!.negotiated.steps & Step.NoMail) !== 0) return Effect.succeed(undefined)
          s.inTransaction = true
          const args = Object.entries(params.raw).map(([k, v]) => Protocol.cstring(v === undefined ? k : `${k}=${v}`))
          const frame = Protocol.frame(Cmd.Mail, Protocol.cstring(from === null ? "<>" : `<${from.address}>`), ...args)
          return Stage.command(s.link!, withMacros(s, "mail", Cmd.Mail, facts(session, tx), frame), Step.NrMail, s.milter.timeouts.command).pipe(
            Effect.tap((r) => Effect.sync(() => { if (r !== undefined && r._tag !== "Continue" && r._tag !== "Accept") s.inTransaction = false }))
          )
        })
      }),
    rcptTo: ({ session, transaction, recipient }) =>
      each(session, true, (s) => {
        if ((s.link!.negotiated.steps & Step.NoRcpt) !== 0) return Effect.succeed(undefined)
        const args = Object.entries(recipient.params.raw).map(([k, v]) => Protocol.cstring(v === undefined ? k : `${k}=${v}`))
        const frame = Protocol.frame(Cmd.Rcpt, Protocol.cstring(`<${recipient.mailbox.address}>`), ...args)
        return Stage.command(s.link!, withMacros(s, "rcpt", Cmd.Rcpt, facts(session, transaction, recipient.mailbox.address), frame), Step.NrRcpt, s.milter.timeouts.command)
      }),
    data: (ctx: DataContext) =>
      Effect.gen(function*() {
        const state = ctx.session.notes.get(key)
        if (state === undefined) return Verdict.Continue
        const verdict = yield* each(ctx.session, true, (s) => {
          const f = facts(ctx.session, ctx.transaction)
          return Stage.run(s.link!, ctx, (stage) => macroFrame(s, stage, stage === "eom" ? Cmd.Eom : stage === "eoh" ? Cmd.Eoh : Cmd.Data, f), s.milter.timeouts).pipe(
            Effect.ensuring(Effect.sync(() => { s.inTransaction = false }))
          )
        })
        for (const s of state.milters) s.messageDone = false
        if (verdict._tag === "Continue" && (state.discardSession || state.discardMessage)) ctx.edit.discard("a milter said DISCARD")
        state.discardMessage = false
        return verdict
      }),
    disconnect: ({ session }) =>
      Effect.gen(function*() {
        const state = session.notes.get(key)
        if (state === undefined) return
        session.notes.delete(key as Notes.Key<unknown>)
        for (const s of state.milters) {
          yield* abort(s)
          if (s.link !== undefined) yield* s.link.quit
          s.link = undefined
        }
      })
  }
}

const join = (a: Uint8Array, b: Uint8Array): Uint8Array => {
  const out = new Uint8Array(a.byteLength + b.byteLength)
  out.set(a)
  out.set(b, a.byteLength)
  return out
}

/** The milter plugin; its stages are bounded by the per-milter timeouts, so the hook's own limit is generous. */
export const milter = definePlugin({
  name: "milter",
  options: Options,
  timeout: "30 minutes",
  // Each session holds its own connection to each milter, from connect to its end.
  files: (o) => ({ perSession: o.milters.length }),
  make
})
