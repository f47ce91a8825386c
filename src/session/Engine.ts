/**
 * The SMTP session as a state machine without sockets (the "sans-I/O" shape): `step(state,
 * input)` gives the next state, the replies to send and the actions to carry out (run a hook,
 * start TLS, receive content, deliver). It decides every rule of RFC 5321's command sequence, of
 * STARTTLS (RFC 3207) and of AUTH (RFC 4954); the server (`server/Connection.ts`) only does I/O
 * and feeds back what happened. So the rules are unit-tested without a socket, and how each
 * command ended is a value (`Result.transaction`, `Phase.Closed`) rather than a reply to re-read.
 *
 * @example
 * let r = Engine.step(Engine.start(settings, session), { _tag: "Connected" })
 * // r.actions: [{ _tag: "Run", hook: "connect", ... }]
 * r = Engine.step(r.state, { _tag: "Verdict", verdict: Verdict.Continue, plugin: undefined })
 * // r.replies: [220 mx.example.com ESMTP smtp-bridge]
 */
import * as Notes from "../pipeline/Notes.ts"
import * as Relay from "../pipeline/Relay.ts"
import type { SessionInfo } from "../pipeline/Session.ts"
import * as Command from "../protocol/Command.ts"
import * as Reply from "../protocol/Reply.ts"
import * as Auth from "./Auth.ts"
import {
  authMechanisms, close, endTransaction, finish, type Input, invalid, type Phase, ready, refusal, refuse, refused, reply, replyAndClose,
  type Result, type Run, set, type Settings, type State, type Turn, turn
} from "./Step.ts"
import * as Transfer from "./Transfer.ts"

export type { Action, Input, Phase, Result, Run, Settings, State, TransactionEvent, TransactionOutcome } from "./Step.ts"

/** A session that has not greeted yet; the first input is `Connected`. */
export const start = (settings: Settings, session: SessionInfo): State => ({
  settings,
  phase: { _tag: "Connect" },
  session,
  tx: undefined,
  message: "none",
  invalid: 0,
  authFailures: 0,
  commands: 0,
  command: undefined
})

/**
 * Whether no transaction is in progress (an AUTH exchange may be): a draining server closes such
 * a session at once, and lets one with a transaction finish its message.
 */
export const idle = (state: State): boolean => state.tx === undefined && state.message === "none"

const ehloLines = (state: State, name: string): Array<string> => {
  const { settings, session } = state
  const lines = [
    // The client's name as it sent it could be 4 KB of anything: repeat a printable, short form.
    `${settings.hostname} greets ${Reply.echo(name)}`,
    "PIPELINING",
    `SIZE ${settings.maxMessageSize}`,
    "8BITMIME",
    "SMTPUTF8",
    "ENHANCEDSTATUSCODES",
    "CHUNKING",
    "DSN"
  ]
  if (settings.tls && session.tls === undefined) lines.push("STARTTLS")
  // RFC 8689: offered only once the session itself is encrypted.
  if (session.tls !== undefined) lines.push("REQUIRETLS")
  if (session.user === undefined) {
    const mechanisms = authMechanisms(state)
    if (mechanisms.length > 0) lines.push(`AUTH ${mechanisms.join(" ")}`)
  }
  return lines
}

const ok = (text = "Ok", enhanced = "2.0.0") => Reply.make(250, enhanced, text)

const run = (t: Turn, phase: Phase, action: Run): void => {
  set(t, { phase })
  t.actions.push(action)
}

// --- commands ---------------------------------------------------------------------------------

const hello = (t: Turn, verb: "EHLO" | "HELO" | "LHLO", name: string): void => {
  if (verb === "LHLO") return invalid(t, Reply.make(500, "5.5.2", "LHLO is for LMTP; this is SMTP"))
  run(t, { _tag: "Helo", verb, name }, { _tag: "Run", hook: "helo", ctx: { session: t.state.session, verb, name } })
}

const mail = (t: Turn, cmd: Extract<Command.Command, { verb: "MAIL" }>): void => {
  const { session, tx, settings } = t.state
  if (session.helo === undefined) return invalid(t, Reply.badSequence("Send EHLO or HELO first"))
  if (tx !== undefined) return invalid(t, Reply.badSequence("Nested MAIL command"))
  if (cmd.params.requireTls === true && session.tls === undefined) {
    return refused(t, Reply.make(530, "5.7.10", "REQUIRETLS needs a TLS session"), "bridge")
  }
  if (cmd.params.size !== undefined && cmd.params.size > settings.maxMessageSize) return refused(t, Reply.tooBig, "bridge")
  run(t, { _tag: "Mail", command: cmd }, { _tag: "Run", hook: "mailFrom", ctx: { session, from: cmd.from, params: cmd.params } })
}

const rcpt = (t: Turn, cmd: Extract<Command.Command, { verb: "RCPT" }>): void => {
  const { tx, message, settings, session } = t.state
  if (tx === undefined) return invalid(t, Reply.badSequence("Need MAIL before RCPT"))
  if (message === "bdat") return invalid(t, Reply.badSequence("RCPT not allowed during BDAT transfer"))
  if (tx.recipients.length >= settings.maxRecipients) return refused(t, Reply.tooManyRecipients, "bridge")
  const recipient = { mailbox: cmd.to, params: cmd.params }
  run(t, { _tag: "Rcpt", recipient }, { _tag: "Run", hook: "rcptTo", ctx: { session, transaction: tx, recipient } })
}

const startTls = (t: Turn): void => {
  const { settings, session, message } = t.state
  if (!settings.tls) return invalid(t, Reply.make(502, "5.5.1", "STARTTLS not available"))
  if (session.tls !== undefined) return invalid(t, Reply.badSequence("TLS already active"))
  if (message === "bdat") return invalid(t, Reply.badSequence("STARTTLS not allowed during BDAT transfer"))
  reply(t, Reply.make(220, "2.0.0", "Ready to start TLS"))
  set(t, { phase: { _tag: "Tls" } })
  t.actions.push({ _tag: "StartTls" })
}

const execute = (t: Turn, cmd: Command.Command): void => {
  switch (cmd.verb) {
    case "EHLO":
    case "HELO":
    case "LHLO":
      return hello(t, cmd.verb, cmd.domain)
    case "MAIL":
      return mail(t, cmd)
    case "RCPT":
      return rcpt(t, cmd)
    case "DATA":
      return Transfer.data(t)
    case "BDAT":
      return Transfer.bdat(t, cmd.size, cmd.last)
    case "RSET":
      endTransaction(t, "reset")
      return reply(t, ok())
    case "NOOP":
      return reply(t, ok())
    case "QUIT":
      return replyAndClose(t, Reply.make(221, "2.0.0", `${t.state.settings.hostname} closing connection`), "quit")
    case "VRFY":
      return reply(t, Reply.make(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery"))
    case "EXPN":
      return reply(t, Reply.make(502, "5.5.1", "EXPN not available"))
    case "HELP":
      return reply(t, Reply.make(214, "2.0.0", ["smtp-bridge: see RFC 5321 for the commands", "End of HELP"]))
    case "STARTTLS":
      return startTls(t)
    case "AUTH":
      return Auth.begin(t, cmd.mechanism, cmd.initialResponse)
  }
}

const line = (t: Turn, input: Extract<Input, { _tag: "Line" | "TooLong" }>): void => {
  set(t, { commands: t.state.commands + 1 })
  if (input._tag === "TooLong") return invalid(t, Reply.lineTooLong)
  const parsed = Command.parse(input.line, { smtputf8: t.state.tx?.mailParams.smtputf8 === true })
  if (parsed._tag === "Error") return invalid(t, parsed.reply)
  // AUTH's initial response is the credentials: never kept in the state, like every later SASL response.
  const { command } = parsed
  set(t, { command: command.verb === "AUTH" ? { ...command, initialResponse: undefined } : command })
  execute(t, command)
}

// --- hook verdicts ----------------------------------------------------------------------------

const verdict = (t: Turn, phase: Phase, input: Extract<Input, { _tag: "Verdict" }>): void => {
  const { verdict: v, plugin } = input
  const { state } = t
  switch (phase._tag) {
    case "Connect": {
      const refusing = refusal(v)
      if (refusing !== undefined) {
        // A server that will not serve greets with 554 (RFC 5321 3.1, 4.3.2) or, for a
        // temporary reason, 421, the code that closes (3.8): a 450 or 451 greeting (a failed
        // hook, a milter's tempfail) is neither. The hook's enhanced code and text stay. We close
        // rather than wait for QUIT.
        const code = refusing.code >= 500 ? 554 : 421
        refused(t, { ...refusing, code }, plugin ?? "bridge", true)
        return close(t, "refused")
      }
      reply(t, Reply.make(220, undefined, `${state.settings.hostname} ESMTP smtp-bridge`))
      return ready(t)
    }
    case "Helo": {
      if (refuse(t, v, plugin)) return
      endTransaction(t, "reset")
      set(t, { session: { ...t.state.session, helo: { verb: phase.verb, name: phase.name } } })
      reply(t, Reply.make(250, undefined, phase.verb === "HELO" ? state.settings.hostname : ehloLines(t.state, phase.name)))
      return ready(t)
    }
    case "Mail": {
      // 530 (authenticate first) is what a stranger probing for an open relay gets, MAIL after
      // MAIL: it counts toward the invalid-command limit like any other command that could not succeed.
      if (v._tag === "Reject" && v.code === 530) {
        set(t, { invalid: state.invalid + 1 })
        if (t.state.invalid > state.settings.maxInvalidCommands) return replyAndClose(t, Reply.make(421, "4.7.0", "Too many errors, closing connection"))
      }
      if (refuse(t, v, plugin)) return
      if (state.settings.checkStorage) {
        set(t, { phase: { _tag: "Storage", command: phase.command } })
        t.actions.push({ _tag: "CheckStorage", size: phase.command.params.size ?? 0 })
        return
      }
      return openTransaction(t, phase.command)
    }
    case "Rcpt": {
      if (refuse(t, v, plugin)) return
      // When every plugin continued, the bridge's own policy: no relaying for strangers.
      if (v._tag === "Continue" && state.session.user === undefined && state.session.notes.get(Relay.Trusted) !== true) {
        return refused(t, Reply.relayDenied, "bridge")
      }
      const tx = state.tx!
      set(t, { tx: { ...tx, recipients: [...tx.recipients, phase.recipient] } })
      reply(t, ok("Ok", "2.1.5"))
      return ready(t)
    }
    case "Auth":
      return Auth.verdict(t, phase, v, plugin)
    case "Attempt":
      return Auth.attempted(t, phase, v, plugin)
    case "DataHook":
      return Transfer.dataVerdict(t, v, plugin)
    default:
      throw new Error(`a verdict came while waiting for ${phase._tag}`)
  }
}

const openTransaction = (t: Turn, cmd: Extract<Command.Command, { verb: "MAIL" }>): void => {
  const id = t.state.settings.newId()
  set(t, { tx: { id, mailFrom: cmd.from, mailParams: cmd.params, recipients: [], notes: Notes.make() } })
  t.transaction.push({ _tag: "Opened", id })
  reply(t, ok("Ok", "2.1.0"))
  ready(t)
}

const tlsUp = (t: Turn, input: Extract<Input, { _tag: "TlsUp" }>): void => {
  // RFC 3207 4.2: the session starts over; nothing learnt before the handshake is kept.
  endTransaction(t, "reset")
  set(t, { session: { ...t.state.session, tls: input.tls, helo: undefined, user: undefined, authMechanism: undefined } })
  ready(t)
}

/**
 * The connection ended: a timeout or a drain is answered with 421, and so is a client that sends
 * an endless line; a message in transfer is dropped.
 */
const ended = (t: Turn, why: Extract<Input, { _tag: "End" }>["why"]): void => {
  // The plugin running an exchange hears that it is over.
  if (t.state.phase._tag === "ExchangeLine" || t.state.phase._tag === "Exchange") t.actions.push({ _tag: "SaslAbort" })
  endTransaction(t, "abandoned")
  if (why === "timeout") replyAndClose(t, Reply.timeout, "timeout")
  else if (why === "drain") replyAndClose(t, Reply.shuttingDown, "shutdown")
  else if (why === "flood") replyAndClose(t, Reply.make(421, "4.7.0", "Line too long, closing connection"))
  else close(t, "disconnected")
}

const unexpected = (phase: Phase, input: Input): never => {
  throw new Error(`${input._tag} is not an input while waiting for ${phase._tag}`)
}

/** The next state, the replies to send and the actions to carry out. */
export const step = (state: State, input: Input): Result => {
  const t = turn(state)
  const { phase } = state
  if (phase._tag === "Closed") return finish(t)
  if (input._tag === "End") {
    ended(t, input.why)
    return finish(t)
  }
  switch (phase._tag) {
    case "Connect":
      if (input._tag === "Connected") {
        t.actions.push({ _tag: "Run", hook: "connect", ctx: { session: state.session } })
      } else if (input._tag === "Verdict") verdict(t, phase, input)
      else unexpected(phase, input)
      break
    case "Command":
      if (input._tag === "Line" || input._tag === "TooLong") line(t, input)
      else unexpected(phase, input)
      break
    case "Sasl":
      if (input._tag === "Line" || input._tag === "TooLong") Auth.response(t, phase, input)
      else unexpected(phase, input)
      break
    case "ExchangeLine":
      if (input._tag === "Line" || input._tag === "TooLong") Auth.exchangeLine(t, phase, input)
      else unexpected(phase, input)
      break
    case "Exchange":
      if (input._tag === "SaslStep") Auth.exchangeStep(t, phase, input)
      else unexpected(phase, input)
      break
    case "Storage":
      if (input._tag !== "Storage") return unexpected(phase, input)
      if (input.ok) openTransaction(t, phase.command)
      else refused(t, Reply.make(452, "4.3.1", "Insufficient system storage"), "bridge")
      break
    case "Tls":
      if (input._tag === "TlsUp") tlsUp(t, input)
      else if (input._tag === "TlsFailed") {
        endTransaction(t, "abandoned")
        close(t, "closed")
      } else unexpected(phase, input)
      break
    case "Data":
    case "Chunk":
      if (input._tag !== "ContentEnd") return unexpected(phase, input)
      Transfer.contentEnd(t, phase, input)
      break
    case "Sealing":
      if (input._tag !== "Sealed") return unexpected(phase, input)
      Transfer.sealed(t, input.result)
      break
    case "Delivering":
      if (input._tag !== "Delivered") return unexpected(phase, input)
      Transfer.delivered(t, input.reply)
      break
    default:
      if (input._tag === "Verdict") verdict(t, phase, input)
      else unexpected(phase, input)
  }
  return finish(t)
}
