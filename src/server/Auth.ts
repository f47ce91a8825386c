/** AUTH PLAIN and LOGIN (RFC 4954), with the credentials checked by `auth` plugin hooks. */
import { Effect } from "effect"
import * as Metrics from "../observability/Metrics.ts"
import * as Reply from "../protocol/Reply.ts"
import * as Sasl from "../protocol/Sasl.ts"
import { authOffered, refuse } from "./Commands.ts"
import type { LineRead } from "./Connection.ts"
import { type Conn, invalid, reply, replyAndClose } from "./State.ts"

type Mechanism = "PLAIN" | "LOGIN"

const cancelled = Reply.make(501, "5.0.0", "Authentication cancelled")
const badBase64 = Reply.make(501, "5.5.2", "Invalid base64 data")
// RFC 4954 4: a response longer than the server accepts is answered 500 5.5.6.
const tooLong = Reply.make(500, "5.5.6", "Authentication exchange line is too long")

type Credentials = { readonly username: string; readonly password: string; readonly authzid: string | undefined }

/** Why an exchange failed, for the log line and `smtp_bridge_auth_failures_total{reason}`. */
type FailureReason = Metrics.AuthFailureReason

/** The exchange ended without credentials to check: the reply for the client and what to count. */
interface Broken {
  readonly _tag: "Broken"
  readonly reply: Reply.Reply
  /** Counted as a failed AUTH when set (a cancel or a closed connection is not one). */
  readonly reason: FailureReason | undefined
  /** The user name, when the client got as far as sending one (AUTH LOGIN). */
  readonly username: string | undefined
}

const broken = (r: Reply.Reply, reason: FailureReason | undefined, username?: string): Broken => ({
  _tag: "Broken",
  reply: r,
  reason,
  username
})

/** The connection ended mid-exchange: nothing to answer. */
const gone: Broken = broken(Reply.make(421, "4.4.2", "Connection ended"), undefined)

/** Asks for one SASL response line; a `Broken` when the exchange ended there. */
const challenge = Effect.fnUntraced(function*(c: Conn, readLine: LineRead, prompt: string, username?: string) {
  reply(c, Reply.make(334, undefined, prompt))
  const event = yield* readLine(c)
  if (event._tag === "End") return gone
  // Left unanswered, the client would read the reply to its next command as the AUTH result.
  if (event._tag === "TooLong") return broken(tooLong, "too-long", username)
  if (Sasl.isCancel(event.line)) return broken(cancelled, undefined)
  return event.line
})

const plain = Effect.fnUntraced(function*(c: Conn, readLine: LineRead, initial: string | undefined) {
  const response = initial ?? (yield* challenge(c, readLine, ""))
  if (typeof response !== "string") return response
  const decoded = Sasl.decodePlain(response)
  if (decoded === undefined) return broken(badBase64, "malformed")
  return decoded satisfies Credentials
})

const login = Effect.fnUntraced(function*(c: Conn, readLine: LineRead, initial: string | undefined) {
  const first = initial ?? (yield* challenge(c, readLine, Sasl.loginUsernamePrompt))
  if (typeof first !== "string") return first
  const username = Sasl.decodeLoginField(first)
  if (username === undefined) return broken(badBase64, "malformed")
  const second = yield* challenge(c, readLine, Sasl.loginPasswordPrompt, username)
  if (typeof second !== "string") return second
  const password = Sasl.decodeLoginField(second)
  if (password === undefined) return broken(badBase64, "malformed", username)
  return { username, password, authzid: undefined } satisfies Credentials
})

// JSON escapes C0 controls only; C1 controls (U+0085 is a line end to some viewers), the line and
// paragraph separators, bidi controls (U+202E reads the rest of the line backwards) and U+FEFF
// are written as \uXXXX too, so that no user name can disguise a log line.
const invisible = /[\u0080-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]/g
const escaped = (text: string): string => text.replace(invisible, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`)

/** The client's user name for a log field: cut at 256 characters (an AUTH line carries up to 4 KB), invisible characters escaped. */
const shown = (username: string): string => escaped(username.length > 256 ? `${username.slice(0, 256)}...` : username)

/** The same, quoted for a log message, so that no byte of it can forge a field. */
const quoted = (username: string): string => escaped(JSON.stringify(username.length > 256 ? `${username.slice(0, 256)}...` : username))

/**
 * One failed AUTH exchange: logged at WARN (the password never reaches this function) and counted
 * in the metric; then against the connection's `maxAuthFailures` (past which it is closed with
 * 421 4.7.0), except malformed base64, a syntax error that counts as an invalid command.
 */
const failed = Effect.fnUntraced(function*(
  c: Conn,
  mechanism: Mechanism,
  username: string | undefined,
  reason: FailureReason,
  r: Reply.Reply
) {
  yield* Metrics.authFailure({ mechanism, reason })
  // The user name is the client's text: quoted, so that no byte of it can forge a log field.
  yield* Effect.logWarning(
    `AUTH ${mechanism} failed for user ${username === undefined ? "(none)" : quoted(username)} from ` +
      `${c.session.remoteAddress} (session ${c.session.id}): ${reason}, answered ${r.code} ${r.enhanced ?? ""}`.trimEnd()
  ).pipe(Effect.annotateLogs({ user: shown(username ?? ""), mechanism, reason }))
  if (reason === "malformed") return invalid(c, r)
  c.authFailures++
  if (c.authFailures >= c.env.config.limits.maxAuthFailures) {
    return replyAndClose(c, Reply.make(421, "4.7.0", "Too many authentication failures, closing connection"))
  }
  reply(c, r)
})

export const auth = Effect.fnUntraced(function*(c: Conn, readLine: LineRead, mechanism: string, initial: string | undefined) {
  if (c.session.helo?.verb !== "EHLO") return invalid(c, Reply.badSequence("Send EHLO first"))
  if (c.session.user !== undefined) return invalid(c, Reply.badSequence("Already authenticated"))
  if (c.tx !== undefined) return invalid(c, Reply.badSequence("AUTH not allowed during a mail transaction"))
  if (!c.env.pipeline.has("auth")) return invalid(c, Reply.make(502, "5.5.1", "AUTH not available"))
  if (!authOffered(c)) return reply(c, Reply.encryptionRequired)
  if (mechanism !== "PLAIN" && mechanism !== "LOGIN") {
    return invalid(c, Reply.make(504, "5.5.4", "Unrecognized authentication type"))
  }
  const credentials = mechanism === "PLAIN" ? yield* plain(c, readLine, initial) : yield* login(c, readLine, initial)
  if ("_tag" in credentials) {
    if (credentials === gone) return
    if (credentials.reason === undefined) return reply(c, credentials.reply)
    return yield* failed(c, mechanism, credentials.username, credentials.reason, credentials.reply)
  }
  const { plugin, verdict } = yield* c.env.pipeline.run("auth", { session: c.session, mechanism, ...credentials })
  // A deferral or a disconnect is not a failed guess (a backend or a throttle said "not now"):
  // it does not count against the client here, and a throttle gives back what it counted.
  const outcome = verdict._tag === "Accept" ? "success" : verdict._tag === "Defer" || verdict._tag === "Disconnect" ? "deferred" : "failure"
  yield* c.env.pipeline.notify("authResult", {
    session: c.session,
    mechanism,
    username: credentials.username,
    success: outcome === "success",
    outcome
  })
  if (verdict._tag === "Accept") {
    c.session.user = verdict.identity ?? credentials.username
    c.session.authMechanism = mechanism
    return reply(c, Reply.make(235, "2.7.0", "Authentication successful"))
  }
  if (verdict._tag === "Defer" || verdict._tag === "Disconnect") {
    yield* Metrics.authFailure({ mechanism, reason: "deferred" })
    yield* Effect.logWarning(
      `AUTH ${mechanism} for user ${quoted(credentials.username)} from ${c.session.remoteAddress} ` +
        `(session ${c.session.id}) not checked: ${verdict.code} ${verdict.enhanced} ${verdict.text}` +
        (plugin === undefined ? "" : ` (${plugin})`)
    ).pipe(Effect.annotateLogs({ user: shown(credentials.username), mechanism, reason: "deferred" }))
    return void (yield* refuse(c, verdict, plugin))
  }
  const r = verdict._tag === "Reject" ? Reply.make(verdict.code, verdict.enhanced, verdict.text) : Reply.badCredentials
  yield* failed(c, mechanism, credentials.username, "credentials", r)
})
