/**
 * The values of the session state machine (`Engine.ts`): its state, what it is fed, what it asks
 * for, and the small helpers every rule uses to answer. Nothing here does I/O: the server
 * (`server/Connection.ts`) reads bytes, runs hooks and writes replies, and feeds the results back.
 */
import type * as Metrics from "../observability/Metrics.ts"
import type {
  AuthAttemptContext, AuthContext, AuthResultContext, ConnectContext, HeloContext, MailFromContext, RcptToContext, SaslContext, SaslStep
} from "../pipeline/Plugin.ts"
import type { SessionInfo, TlsInfo, TransactionInfo } from "../pipeline/Session.ts"
import type { Verdict } from "../pipeline/Verdict.ts"
import type { Command } from "../protocol/Command.ts"
import * as Reply from "../protocol/Reply.ts"

/** What one session is configured with; fixed for its life. */
export interface Settings {
  /** The name in the greeting, the EHLO reply and QUIT's 221. */
  readonly hostname: string
  readonly maxInvalidCommands: number
  readonly maxAuthFailures: number
  readonly maxRecipients: number
  readonly maxMessageSize: number
  /** STARTTLS can be offered (a certificate is configured). */
  readonly tls: boolean
  /** Some plugin has an `auth` hook: the bridge's own PLAIN and LOGIN are offered. */
  readonly auth: boolean
  /**
   * The plugins' SASL mechanisms for a session (in capitals, without PLAIN and LOGIN), asked at
   * EHLO and AUTH: a query of the configured plugins, no I/O (a backend may learn its list at run time).
   */
  readonly saslMechanisms: (session: SessionInfo) => ReadonlyArray<string>
  /** AUTH may be offered before TLS. */
  readonly allowInsecureAuth: boolean
  /** MAIL asks for a storage check (`CheckStorage`) before it opens a transaction: the spool keeps a free-space floor. */
  readonly checkStorage: boolean
  /** Bare CR or LF in a message: refused (550 5.6.0) under `reject`. */
  readonly bareLineEndings: "normalize" | "reject"
  /** Transaction ids. */
  readonly newId: () => string
}

/** What the machine waits for. */
export type Phase =
  /** The `connect` hook's verdict (the first input is `Connected`). */
  | { readonly _tag: "Connect" }
  /** A command line. */
  | { readonly _tag: "Command" }
  /** A verdict of the hook that the command asked for. */
  | { readonly _tag: "Helo"; readonly verb: "EHLO" | "HELO"; readonly name: string }
  | { readonly _tag: "Mail"; readonly command: Extract<Command, { verb: "MAIL" }> }
  | { readonly _tag: "Storage"; readonly command: Extract<Command, { verb: "MAIL" }> }
  | { readonly _tag: "Rcpt"; readonly recipient: RcptToContext["recipient"] }
  /** A SASL response line; `username` once AUTH LOGIN has it. */
  | { readonly _tag: "Sasl"; readonly mechanism: "PLAIN" | "LOGIN"; readonly username: string | undefined }
  | { readonly _tag: "Auth"; readonly mechanism: Mechanism; readonly username: string }
  /** A plugin mechanism's exchange: the plugin's next step (`SaslStep`), then a response line of the client. */
  | { readonly _tag: "Exchange"; readonly mechanism: Mechanism }
  | { readonly _tag: "ExchangeLine"; readonly mechanism: Mechanism }
  /** The exchange decided (`decided`, no secret); the `authAttempt` hooks' verdict may override it. */
  | { readonly _tag: "Attempt"; readonly mechanism: Mechanism; readonly username: string; readonly decided: Verdict; readonly by: string | undefined }
  /** The TLS handshake after STARTTLS's 220. */
  | { readonly _tag: "Tls" }
  /** Message content until DATA's final dot: `ContentEnd`. */
  | { readonly _tag: "Data" }
  /** One BDAT chunk; `problem` when its bytes are read only to be thrown away. */
  | { readonly _tag: "Chunk"; readonly size: number; readonly last: boolean; readonly problem: Reply.Reply | undefined }
  /** The message stored for good (`Sealed`), then the `data` hooks' verdict, then the delivery's reply. */
  | { readonly _tag: "Sealing" }
  | { readonly _tag: "DataHook" }
  | { readonly _tag: "Delivering" }
  /** Nothing more: the connection closes after the pending replies. */
  | { readonly _tag: "Closed"; readonly outcome: Metrics.SessionOutcome }

/** PLAIN and LOGIN (the bridge's own), or a plugin's mechanism. */
export type Mechanism = string

export interface State {
  readonly settings: Settings
  readonly phase: Phase
  /** What plugins see of the session: replaced, never changed in place. */
  readonly session: SessionInfo
  /** The transaction MAIL opened, until the message's final reply, RSET, a new EHLO, STARTTLS or the end. */
  readonly tx: TransactionInfo | undefined
  /** A message buffer is open: for DATA content, or for a BDAT transfer (between its chunks too). */
  readonly message: "none" | "data" | "bdat"
  /** Invalid commands so far (syntax, sequence). */
  readonly invalid: number
  readonly authFailures: number
  /** Command lines received (SASL responses are not commands). */
  readonly commands: number
  /** The command being answered, or the last one; undefined before the first. */
  readonly command: Command | undefined
}

/** The facts about a message's content once its last byte arrived (from the server's buffer and the decoder). */
export interface ContentFacts {
  /** More than `maxMessageSize` bytes came (the excess was counted, not kept). */
  readonly tooBig: boolean
  /** A bare CR or LF was met (and written as CRLF). */
  readonly bare: boolean
  /** Writing to the buffer failed. */
  readonly storageFailed: boolean
}

export type Input =
  | { readonly _tag: "Connected" }
  | { readonly _tag: "Line"; readonly line: string }
  /** A line longer than the limit (skipped by the decoder). */
  | { readonly _tag: "TooLong" }
  /** The answer to `Run`: the first verdict other than Continue, and the plugin that gave it. */
  | { readonly _tag: "Verdict"; readonly verdict: Verdict; readonly plugin: string | undefined }
  /** The answer to `CheckStorage`. */
  | { readonly _tag: "Storage"; readonly ok: boolean }
  /** The answer to `SaslStart` and `SaslContinue`: the plugin's challenge or its decision. */
  | { readonly _tag: "SaslStep"; readonly step: SaslStep; readonly plugin: string | undefined }
  | { readonly _tag: "TlsUp"; readonly tls: TlsInfo }
  | { readonly _tag: "TlsFailed" }
  /** DATA's final dot, or the end of a BDAT chunk. */
  | ({ readonly _tag: "ContentEnd" } & ContentFacts)
  /** The answer to `Seal`: the message is stored for good, or could not be (451), or its header section is too large (552). */
  | { readonly _tag: "Sealed"; readonly result: "ok" | "failed" | "headerTooLarge" }
  /** The answer to `Deliver`: the message's final reply. */
  | { readonly _tag: "Delivered"; readonly reply: Reply.Reply }
  /** The connection ended: the client left, a timeout, the server drains, or overlong lines went on past any reason (`flood`). */
  | { readonly _tag: "End"; readonly why: "eof" | "timeout" | "drain" | "flood" }

/** A hook run the machine asks for; its answer is a `Verdict` input. */
export type Run =
  | { readonly _tag: "Run"; readonly hook: "connect"; readonly ctx: ConnectContext }
  | { readonly _tag: "Run"; readonly hook: "helo"; readonly ctx: HeloContext }
  | { readonly _tag: "Run"; readonly hook: "mailFrom"; readonly ctx: MailFromContext }
  | { readonly _tag: "Run"; readonly hook: "rcptTo"; readonly ctx: RcptToContext }
  | { readonly _tag: "Run"; readonly hook: "auth"; readonly ctx: AuthContext }
  | { readonly _tag: "Run"; readonly hook: "authAttempt"; readonly ctx: AuthAttemptContext }
  /** The `data` hooks: the server has the message (`Seal` made it) and collects their header edits. */
  | { readonly _tag: "Run"; readonly hook: "data"; readonly ctx: { readonly session: SessionInfo; readonly transaction: TransactionInfo } }

export type Action =
  | Run
  /** Start a plugin mechanism's exchange with the client's initial response, if any (a secret: actions are never kept); answered with `SaslStep`. */
  | { readonly _tag: "SaslStart"; readonly ctx: SaslContext; readonly initial: string | undefined }
  /** The client's next response to the exchange; answered with `SaslStep`. */
  | { readonly _tag: "SaslContinue"; readonly response: string }
  /** The exchange ends before its plugin decided (`*`, a bad line, the client left): the plugin is told. */
  | { readonly _tag: "SaslAbort" }
  /** Answered with `Storage`. */
  | { readonly _tag: "CheckStorage"; readonly size: number }
  /** Write the pending replies (STARTTLS's 220 last), drop every byte received after it, run the handshake; answered with `TlsUp` or `TlsFailed`. */
  | { readonly _tag: "StartTls" }
  /** Open a message buffer (DATA, or a transfer's first BDAT). */
  | { readonly _tag: "OpenMessage" }
  /** Switch the decoder to DATA content (until CRLF.CRLF); it ends with `ContentEnd`. */
  | { readonly _tag: "ReceiveData" }
  /** The next `size` bytes are a BDAT chunk: kept when `keep`, else only read; it ends with `ContentEnd`. */
  | { readonly _tag: "ReceiveChunk"; readonly size: number; readonly last: boolean; readonly keep: boolean }
  /** Finish writing the message; answered with `Sealed`. */
  | { readonly _tag: "Seal" }
  /** Route and deliver (or spool) the message; answered with `Delivered`. */
  | { readonly _tag: "Deliver"; readonly session: SessionInfo; readonly transaction: TransactionInfo }
  /** Throw the message buffer away (the transaction ended). */
  | { readonly _tag: "DropMessage" }
  /** A policy refusal (its reply is among the replies): logged, naming the plugin that decided or "bridge". */
  | { readonly _tag: "Refused"; readonly reply: Reply.Reply; readonly by: string }
  /** A failed AUTH exchange: logged and counted by reason. */
  | {
    readonly _tag: "AuthFailed"
    readonly mechanism: Mechanism
    readonly username: string | undefined
    readonly reason: Metrics.AuthFailureReason
    readonly reply: Reply.Reply
  }
  /** AUTH not checked: a hook deferred (backend down, throttle). */
  | { readonly _tag: "AuthDeferred"; readonly mechanism: Mechanism; readonly username: string; readonly reply: Reply.Reply; readonly by: string | undefined }
  /** Tell the `authResult` hooks. */
  | { readonly _tag: "AuthResult"; readonly ctx: AuthResultContext }

/** How a transaction ended, for its span. */
export type TransactionOutcome = "accepted" | "rejected" | "refused" | "reset" | "abandoned"

/** A transaction began or ended during a step. */
export type TransactionEvent =
  | { readonly _tag: "Opened"; readonly id: string }
  | { readonly _tag: "Ended"; readonly id: string; readonly outcome: TransactionOutcome; readonly code: number | undefined }

export interface Result {
  readonly state: State
  /** To be sent, in order, before any action that writes (`StartTls`). */
  readonly replies: ReadonlyArray<Reply.Reply>
  /** To be carried out in order; at most one is answered by an input (it is the last). */
  readonly actions: ReadonlyArray<Action>
  readonly transaction: ReadonlyArray<TransactionEvent>
}

/** What one step produces, collected as the rules run. */
export interface Turn {
  state: State
  readonly replies: Array<Reply.Reply>
  readonly actions: Array<Action>
  readonly transaction: Array<TransactionEvent>
}

export const turn = (state: State): Turn => ({ state, replies: [], actions: [], transaction: [] })

export const set = (t: Turn, changes: Partial<State>): void => {
  t.state = { ...t.state, ...changes }
}

export const reply = (t: Turn, r: Reply.Reply): void => {
  t.replies.push(r)
}

export const close = (t: Turn, outcome: Metrics.SessionOutcome): void => set(t, { phase: { _tag: "Closed", outcome } })

export const replyAndClose = (t: Turn, r: Reply.Reply, outcome: Metrics.SessionOutcome = "closed"): void => {
  reply(t, r)
  close(t, outcome)
}

export const command: Phase = { _tag: "Command" }

/** Whether AUTH may be offered in this session: TLS is up unless insecure AUTH is allowed. */
export const authSecure = (state: State): boolean => state.session.tls !== undefined || state.settings.allowInsecureAuth

/** The mechanisms AUTH offers now (the bridge's PLAIN and LOGIN first, then the plugins'); empty when AUTH is not offered. */
export const authMechanisms = (state: State): ReadonlyArray<Mechanism> => {
  if (!authSecure(state)) return []
  const own = state.settings.auth ? ["PLAIN", "LOGIN"] : []
  const plugins = state.settings.saslMechanisms(state.session).filter((m) => m !== "PLAIN" && m !== "LOGIN")
  return plugins.length === 0 ? own : [...new Set([...own, ...plugins])]
}

/** Whether AUTH is offered now: some mechanism is, and TLS is up unless insecure AUTH is allowed. */
export const authOffered = (state: State): boolean =>
  authSecure(state) && (state.settings.auth || state.settings.saslMechanisms(state.session).length > 0)

/** Back to waiting for a command. */
export const ready = (t: Turn): void => set(t, { phase: command })

export const tooManyErrors = Reply.make(421, "4.7.0", "Too many errors, closing connection")

/** A syntax or sequence error: counted; past `maxInvalidCommands` the connection is closed with 421 4.7.0. */
export const invalid = (t: Turn, r: Reply.Reply): void => {
  const count = t.state.invalid + 1
  set(t, { invalid: count })
  if (count > t.state.settings.maxInvalidCommands) replyAndClose(t, tooManyErrors)
  else {
    reply(t, r)
    ready(t)
  }
}

/** A policy refusal: answered and logged (`Refused`). */
export const refused = (t: Turn, r: Reply.Reply, by: string, closing = false): void => {
  reply(t, r)
  t.actions.push({ _tag: "Refused", reply: r, by })
  if (closing) close(t, "closed")
  else ready(t)
}

/** The reply for a verdict that refused; undefined when it let the command through. */
export const refusal = (verdict: Verdict): Reply.Reply | undefined => {
  switch (verdict._tag) {
    case "Continue":
    case "Accept":
      return undefined
    case "Reject":
    case "Defer":
    case "Disconnect":
      // A line feed in the text starts another line of the reply (a milter's multi-line answer).
      return Reply.make(verdict.code, verdict.enhanced, verdict.text.split("\n"))
  }
}

/** Applies a refusing verdict (closing on Disconnect); true when the command was refused. */
export const refuse = (t: Turn, verdict: Verdict, plugin: string | undefined): boolean => {
  const r = refusal(verdict)
  if (r === undefined) return false
  refused(t, r, plugin ?? "bridge", verdict._tag === "Disconnect")
  return true
}

/**
 * Ends the transaction, if one is open, with `outcome` for its span; the message buffer, if
 * one is open, is dropped.
 */
export const endTransaction = (t: Turn, outcome: TransactionOutcome, code?: number): void => {
  const { tx, message } = t.state
  if (message !== "none") t.actions.push({ _tag: "DropMessage" })
  if (tx !== undefined) t.transaction.push({ _tag: "Ended", id: tx.id, outcome, code })
  set(t, { tx: undefined, message: "none" })
}

export const finish = (t: Turn): Result => ({
  state: t.state,
  replies: t.replies,
  actions: t.actions,
  transaction: t.transaction
})
