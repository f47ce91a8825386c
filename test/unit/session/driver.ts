/**
 * Drives the session machine without a socket: lines in, replies out, every action answered as
 * the server would (hooks continue unless told otherwise, TLS comes up, storage has room, the
 * message is sealed and delivered with 250).
 */
import * as Notes from "../../../src/pipeline/Notes.ts"
import type { SaslStep } from "../../../src/pipeline/Plugin.ts"
import * as Relay from "../../../src/pipeline/Relay.ts"
import type { SessionInfo } from "../../../src/pipeline/Session.ts"
import * as Verdict from "../../../src/pipeline/Verdict.ts"
import * as Reply from "../../../src/protocol/Reply.ts"
import * as Engine from "../../../src/session/Engine.ts"

export type HookName = Engine.Run["hook"]

export interface Options {
  readonly settings?: Partial<Engine.Settings>
  /** Verdicts by hook; each call may look at the hook's context. Continue when absent. */
  readonly hooks?: { readonly [H in HookName]?: (ctx: Extract<Engine.Run, { hook: H }>["ctx"]) => Verdict.Verdict }
  readonly tls?: "up" | "fails"
  readonly storage?: boolean
  readonly sealed?: "ok" | "failed" | "headerTooLarge"
  readonly delivered?: Reply.Reply
  readonly session?: Partial<SessionInfo>
  /** The client's network may relay (the Relay.Trusted note); default true, so that RCPT needs no AUTH. */
  readonly trusted?: boolean
  /** A plugin's SASL mechanisms, and its exchange: each response (undefined: no initial response) gives the next step. */
  readonly sasl?: {
    readonly mechanisms: ReadonlyArray<string>
    readonly step: (response: string | undefined) => SaslStep
  }
}

export const settings = (over: Partial<Engine.Settings> = {}): Engine.Settings => {
  let n = 0
  return {
    hostname: "mx.test",
    maxInvalidCommands: 10,
    maxAuthFailures: 3,
    maxRecipients: 100,
    maxMessageSize: 10_000,
    tls: true,
    auth: true,
    saslMechanisms: () => [],
    allowInsecureAuth: false,
    checkStorage: false,
    bareLineEndings: "normalize",
    newId: () => `TX${++n}`,
    ...over
  }
}

/** A reply as a test names it: code, enhanced code and the first line (`250 2.1.0 Ok`). */
export const show = (r: Reply.Reply): string => Reply.format(r).split("\r\n")[0]!.replace(/^(\d{3})-/, "$1 ")

export interface Driver {
  state: Engine.State
  /** Every action carried out so far, in order. */
  readonly actions: Array<Engine.Action>
  readonly events: Array<Engine.TransactionEvent>
  /** Whole replies of the last input (multi-line ones too). */
  last: ReadonlyArray<Reply.Reply>
  /** Feeds an input; gives the replies (first lines) it produced, answering every action on the way. */
  readonly feed: (input: Engine.Input) => Array<string>
  /** A command line. */
  readonly send: (line: string) => Array<string>
  /** Sends each line; gives the replies of the last one. */
  readonly script: (...lines: ReadonlyArray<string>) => Array<string>
  /** The content of the message in progress is complete. */
  readonly endContent: (facts?: Partial<{ tooBig: boolean; bare: boolean; storageFailed: boolean }>) => Array<string>
  readonly closed: () => boolean
  readonly outcome: () => string | undefined
  readonly has: (tag: Engine.Action["_tag"]) => boolean
}

export const start = (options: Options = {}): Driver => {
  const session: SessionInfo = {
    id: "S1",
    remoteAddress: "192.0.2.1",
    remotePort: 40000,
    localAddress: "127.0.0.1",
    localPort: 587,
    hostname: "mx.test",
    tls: undefined,
    helo: undefined,
    user: undefined,
    authMechanism: undefined,
    notes: Notes.make(),
    ...options.session
  }
  if (options.trusted !== false) session.notes.set(Relay.Trusted, true)
  const sasl = options.sasl
  const d: Driver = {
    state: Engine.start(settings({ ...(sasl === undefined ? {} : { saslMechanisms: () => sasl.mechanisms }), ...options.settings }), session),
    actions: [],
    events: [],
    last: [],
    feed: (input) => {
      const replies: Array<Reply.Reply> = []
      let next: Engine.Input | undefined = input
      while (next !== undefined) {
        const result = Engine.step(d.state, next)
        d.state = result.state
        replies.push(...result.replies)
        d.events.push(...result.transaction)
        next = undefined
        for (const action of result.actions) {
          d.actions.push(action)
          const answer = answerOf(action, options)
          if (answer !== undefined) next = answer
        }
      }
      d.last = replies
      return replies.map(show)
    },
    send: (line) => d.feed({ _tag: "Line", line }),
    script: (...lines) => {
      let out: Array<string> = []
      for (const line of lines) out = d.send(line)
      return out
    },
    endContent: (facts = {}) => d.feed({ _tag: "ContentEnd", tooBig: false, bare: false, storageFailed: false, ...facts }),
    closed: () => d.state.phase._tag === "Closed",
    outcome: () => (d.state.phase._tag === "Closed" ? d.state.phase.outcome : undefined),
    has: (tag) => d.actions.some((a) => a._tag === tag)
  }
  return d
}

const answerOf = (action: Engine.Action, options: Options): Engine.Input | undefined => {
  switch (action._tag) {
    case "Run": {
      const decide = options.hooks?.[action.hook] as ((ctx: Engine.Run["ctx"]) => Verdict.Verdict) | undefined
      return { _tag: "Verdict", verdict: decide === undefined ? Verdict.Continue : decide(action.ctx), plugin: decide === undefined ? undefined : "test-plugin" }
    }
    case "SaslStart":
    case "SaslContinue": {
      const response = action._tag === "SaslStart" ? action.initial : action.response
      const step = options.sasl?.step(response) ?? { _tag: "Done", verdict: Verdict.Continue, username: undefined }
      return { _tag: "SaslStep", step, plugin: "sasl-plugin" }
    }
    case "CheckStorage":
      return { _tag: "Storage", ok: options.storage ?? true }
    case "StartTls":
      return options.tls === "fails"
        ? { _tag: "TlsFailed" }
        : { _tag: "TlsUp", tls: { protocol: "TLSv1.3", cipher: "TLS_AES_128_GCM_SHA256", mode: "starttls" } }
    case "Seal":
      return { _tag: "Sealed", result: options.sealed ?? "ok" }
    case "Deliver":
      return { _tag: "Delivered", reply: options.delivered ?? Reply.make(250, "2.0.0", `Ok: queued as ${action.transaction.id}`) }
    default:
      return undefined
  }
}

/** A session past the greeting. */
export const greeted = (options: Options = {}): Driver => {
  const d = start(options)
  d.feed({ _tag: "Connected" })
  return d
}

/** A session past EHLO, with TLS up (so AUTH is offered) unless `plain`. */
export const ready = (options: Options & { readonly plain?: boolean } = {}): Driver => {
  const d = greeted(options)
  if (options.plain !== true) d.script("EHLO client.test", "STARTTLS")
  d.send("EHLO client.test")
  return d
}

export const plain = (username: string, password: string): string =>
  Buffer.from(`\0${username}\0${password}`).toString("base64")
