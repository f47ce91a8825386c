/**
 * AUTH (RFC 4954) as rules of the session machine: when AUTH may start, the SASL exchange (334
 * challenges, `*` to cancel, base64 responses), and what each verdict means. PLAIN and LOGIN are
 * the bridge's own: their credentials go to the `auth` hooks in a `Run` action. Any other
 * mechanism is a plugin's: its exchange runs through `SaslStart`/`SaslContinue` actions answered
 * with `SaslStep`, and the `authAttempt` hooks (the throttle) see its decision before the client.
 * No response, password or token is ever kept in the state.
 */
import * as Verdict from "../pipeline/Verdict.ts"
import * as Reply from "../protocol/Reply.ts"
import * as Sasl from "../protocol/Sasl.ts"
import type * as Metrics from "../observability/Metrics.ts"
import { authSecure, type Input, invalid, type Mechanism, type Phase, ready, refuse, reply, replyAndClose, set, type Turn } from "./Step.ts"

const cancelled = Reply.make(501, "5.0.0", "Authentication cancelled")
const badBase64 = Reply.make(501, "5.5.2", "Invalid base64 data")
// RFC 4954 4: a response longer than the server accepts is answered 500 5.5.6.
const tooLong = Reply.make(500, "5.5.6", "Authentication exchange line is too long")
const unrecognized = Reply.make(504, "5.5.4", "Unrecognized authentication type")
const tooManyFailures = Reply.make(421, "4.7.0", "Too many authentication failures, closing connection")

/**
 * One failed exchange: logged and counted (`AuthFailed`), then against `maxAuthFailures`, past
 * which the connection is closed with 421 4.7.0; malformed base64 is a syntax error instead and
 * counts as an invalid command.
 */
const failed = (t: Turn, mechanism: Mechanism, username: string | undefined, reason: Metrics.AuthFailureReason, r: Reply.Reply): void => {
  t.actions.push({ _tag: "AuthFailed", mechanism, username, reason, reply: r })
  if (reason === "malformed") return invalid(t, r)
  const failures = t.state.authFailures + 1
  set(t, { authFailures: failures })
  if (failures >= t.state.settings.maxAuthFailures) return replyAndClose(t, tooManyFailures)
  reply(t, r)
  ready(t)
}

/** Asks for the next response with a 334 challenge. */
const challenge = (t: Turn, mechanism: "PLAIN" | "LOGIN", username: string | undefined, prompt: string): void => {
  reply(t, Reply.make(334, undefined, prompt))
  set(t, { phase: { _tag: "Sasl", mechanism, username } })
}

/** The credentials are complete: the `auth` hooks decide. */
const check = (t: Turn, mechanism: "PLAIN" | "LOGIN", credentials: Sasl.PlainCredentials): void => {
  set(t, { phase: { _tag: "Auth", mechanism, username: credentials.username } })
  t.actions.push({ _tag: "Run", hook: "auth", ctx: { session: t.state.session, mechanism, ...credentials } })
}

/** A PLAIN response, or LOGIN's first (user name) or second (password). */
const respond = (t: Turn, mechanism: "PLAIN" | "LOGIN", username: string | undefined, response: string): void => {
  if (mechanism === "PLAIN") {
    const decoded = Sasl.decodePlain(response)
    if (decoded === undefined) return failed(t, mechanism, undefined, "malformed", badBase64)
    return check(t, mechanism, decoded)
  }
  const field = Sasl.decodeLoginField(response)
  if (field === undefined) return failed(t, mechanism, username, "malformed", badBase64)
  if (username === undefined) return challenge(t, mechanism, field, Sasl.loginPasswordPrompt)
  check(t, mechanism, { username, password: field, authzid: undefined })
}

/** `AUTH mechanism [initial-response]`. */
export const begin = (t: Turn, mechanism: string, initial: string | undefined): void => {
  const { session, tx, settings } = t.state
  if (session.helo?.verb !== "EHLO") return invalid(t, Reply.badSequence("Send EHLO first"))
  if (session.user !== undefined) return invalid(t, Reply.badSequence("Already authenticated"))
  if (tx !== undefined) return invalid(t, Reply.badSequence("AUTH not allowed during a mail transaction"))
  const plugins = settings.saslMechanisms(session)
  if (!settings.auth && plugins.length === 0) return invalid(t, Reply.make(502, "5.5.1", "AUTH not available"))
  // RFC 4954 4: 538 when the mechanism needs an encrypted session; not a syntax error.
  if (!authSecure(t.state)) return reply(t, Reply.encryptionRequired)
  if (mechanism !== "PLAIN" && mechanism !== "LOGIN") {
    return plugins.includes(mechanism) ? startExchange(t, mechanism, initial) : invalid(t, unrecognized)
  }
  if (!settings.auth) return invalid(t, unrecognized)
  if (initial !== undefined) return respond(t, mechanism, undefined, initial)
  challenge(t, mechanism, undefined, mechanism === "PLAIN" ? "" : Sasl.loginUsernamePrompt)
}

/** A line during the exchange: a response, `*`, or one too long. */
export const response = (t: Turn, phase: Extract<Phase, { _tag: "Sasl" }>, input: Extract<Input, { _tag: "Line" | "TooLong" }>): void => {
  // Left unanswered, the client would read the reply to its next command as the AUTH result.
  if (input._tag === "TooLong") return failed(t, phase.mechanism, phase.username, "too-long", tooLong)
  if (Sasl.isCancel(input.line)) {
    reply(t, cancelled)
    return ready(t)
  }
  respond(t, phase.mechanism, phase.username, input.line)
}

/** The `auth` hooks' verdict. */
export const verdict = (t: Turn, phase: Extract<Phase, { _tag: "Auth" }>, v: Verdict.Verdict, plugin: string | undefined): void => {
  const { mechanism, username } = phase
  // A deferral or a disconnect is not a failed guess (a backend or a throttle said "not now"):
  // it does not count against the client here, and a throttle gives back what it counted.
  const outcome = v._tag === "Accept" ? "success" : v._tag === "Defer" || v._tag === "Disconnect" ? "deferred" : "failure"
  t.actions.push({
    _tag: "AuthResult",
    ctx: { session: t.state.session, mechanism, username, success: outcome === "success", outcome }
  })
  if (v._tag === "Accept") {
    set(t, { session: { ...t.state.session, user: v.identity ?? username, authMechanism: mechanism } })
    reply(t, Reply.make(235, "2.7.0", "Authentication successful"))
    return ready(t)
  }
  if (v._tag === "Defer" || v._tag === "Disconnect") {
    t.actions.push({ _tag: "AuthDeferred", mechanism, username, reply: Reply.make(v.code, v.enhanced, v.text), by: plugin })
    refuse(t, v, plugin)
    return
  }
  failed(t, mechanism, username, "credentials", v._tag === "Reject" ? Reply.make(v.code, v.enhanced, v.text) : Reply.badCredentials)
}

// --- a plugin's mechanism -----------------------------------------------------------------------

/** Longest challenge a plugin may send (base64 characters): a broken backend cannot make a reply of any size. */
const maxChallenge = 64 * 1024

/** A plugin that broke the exchange (a challenge that is no base64): as a failed hook, 451 4.3.0. */
const broken = Verdict.Defer({ code: 451, enhanced: "4.3.0", text: "Temporary failure, please try again later" })

/** Empty (RFC 4954's `=`, or an empty line) or strict base64 (RFC 4648). */
const isBase64 = (text: string): boolean => text === "" || Sasl.decodeBase64(text) !== undefined

/** `AUTH <mechanism> [initial]` for a plugin's mechanism: the plugin starts the exchange. */
const startExchange = (t: Turn, mechanism: Mechanism, initial: string | undefined): void => {
  if (initial !== undefined && !isBase64(initial)) return failed(t, mechanism, undefined, "malformed", badBase64)
  set(t, { phase: { _tag: "Exchange", mechanism } })
  t.actions.push({ _tag: "SaslStart", ctx: { session: t.state.session, mechanism }, initial })
}

/** A response line of the client during a plugin's exchange: to the plugin, or the exchange ends. */
export const exchangeLine = (t: Turn, phase: Extract<Phase, { _tag: "ExchangeLine" }>, input: Extract<Input, { _tag: "Line" | "TooLong" }>): void => {
  const { mechanism } = phase
  if (input._tag === "TooLong") {
    t.actions.push({ _tag: "SaslAbort" })
    return failed(t, mechanism, undefined, "too-long", tooLong)
  }
  if (Sasl.isCancel(input.line)) {
    t.actions.push({ _tag: "SaslAbort" })
    reply(t, cancelled)
    return ready(t)
  }
  if (!isBase64(input.line)) {
    t.actions.push({ _tag: "SaslAbort" })
    return failed(t, mechanism, undefined, "malformed", badBase64)
  }
  set(t, { phase: { _tag: "Exchange", mechanism } })
  t.actions.push({ _tag: "SaslContinue", response: input.line })
}

/** The plugin's step: a challenge for the client (334), or its decision. */
export const exchangeStep = (t: Turn, phase: Extract<Phase, { _tag: "Exchange" }>, input: Extract<Input, { _tag: "SaslStep" }>): void => {
  const { step, plugin } = input
  if (step._tag === "Done") return decided(t, phase.mechanism, step.username ?? "", step.verdict, plugin)
  if (step.text.length > maxChallenge || !isBase64(step.text)) {
    t.actions.push({ _tag: "SaslAbort" })
    return decided(t, phase.mechanism, "", broken, plugin)
  }
  reply(t, Reply.make(334, undefined, step.text))
  set(t, { phase: { _tag: "ExchangeLine", mechanism: phase.mechanism } })
}

/**
 * The exchange decided. A deferral is answered at once (nothing was learnt about the
 * credentials); a success or a failure first goes to the `authAttempt` hooks, so that the
 * throttle counts it (and may withhold it) before the client learns anything.
 */
const decided = (t: Turn, mechanism: Mechanism, username: string, v: Verdict.Verdict, by: string | undefined): void => {
  if (v._tag === "Defer" || v._tag === "Disconnect") return verdict(t, { _tag: "Auth", mechanism, username }, v, by)
  set(t, { phase: { _tag: "Attempt", mechanism, username, decided: v, by } })
  t.actions.push({ _tag: "Run", hook: "authAttempt", ctx: { session: t.state.session, mechanism, username } })
}

/** The `authAttempt` hooks' verdict: a refusal replaces the exchange's decision; nothing else can make it a success. */
export const attempted = (t: Turn, phase: Extract<Phase, { _tag: "Attempt" }>, v: Verdict.Verdict, plugin: string | undefined): void => {
  const auth = { _tag: "Auth", mechanism: phase.mechanism, username: phase.username } as const
  if (v._tag === "Reject" || v._tag === "Defer" || v._tag === "Disconnect") return verdict(t, auth, v, plugin)
  verdict(t, auth, phase.decided, phase.by)
}
