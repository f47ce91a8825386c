/**
 * The log lines a session writes about its clients' commands: refusals and AUTH failures. Every
 * byte of client text is escaped, so that no command, name or address can forge a log line or a
 * field; passwords never reach this module.
 */
import * as Effect from "effect/Effect"
import * as Metrics from "../observability/Metrics.ts"
import type { SessionInfo } from "../pipeline/Session.ts"
import type { Command } from "../protocol/Command.ts"
import type * as Reply from "../protocol/Reply.ts"
import type { Mechanism } from "../session/Step.ts"

/** The command as a log shows it: verb and address or name, never an AUTH response. */
export const describeCommand = (command: Command | undefined): string =>
  // Client text: control characters escaped, so a line in a terminal cannot be forged.
  describeRaw(command).replace(/[\x00-\x1f\x7f]/g, (ch) => `\\x${ch.charCodeAt(0).toString(16).padStart(2, "0")}`)

const describeRaw = (command: Command | undefined): string => {
  if (command === undefined) return "connect"
  switch (command.verb) {
    case "MAIL":
      return `MAIL FROM:<${command.from?.address ?? ""}>`
    case "RCPT":
      return `RCPT TO:<${command.to.address}>`
    case "EHLO":
    case "HELO":
    case "LHLO":
      return `${command.verb} ${command.domain}`
    case "BDAT":
      return `BDAT ${command.size}${command.last ? " LAST" : ""}`
    case "AUTH":
      // The initial response is the credentials: never logged.
      return `AUTH ${command.mechanism}`
    default:
      return command.verb
  }
}

/** Refusals logged per session; see `refused`. */
export const maxLoggedRefusals = 100

const text = (r: Reply.Reply): string => `${r.code}${r.enhanced === undefined ? "" : ` ${r.enhanced}`} ${r.lines.join(" ")}`

/**
 * A policy refusal, logged at INFO (refusing is policy working, not the bridge failing), naming
 * `by`, the plugin that decided or "bridge". `count` is this session's refusals so far, this one
 * included: a client refused over and over (a dictionary of RCPTs) would otherwise write to the
 * log several times the bytes it sends, so past the cap one line says so and the rest are not logged.
 */
export const refused = (session: SessionInfo, command: Command | undefined, r: Reply.Reply, by: string, count: number): Effect.Effect<void> => {
  if (count > maxLoggedRefusals + 1) return Effect.void
  if (count === maxLoggedRefusals + 1) {
    return Effect.logInfo(`more than ${maxLoggedRefusals} refusals in this session: further ones are not logged`).pipe(
      Effect.annotateLogs({ session: session.id, client: session.remoteAddress })
    )
  }
  const described = describeCommand(command)
  const reply = text(r)
  return Effect.logInfo(`refused ${described}: ${reply}`).pipe(
    Effect.annotateLogs({
      session: session.id,
      client: session.remoteAddress,
      ...(session.user === undefined ? {} : { user: session.user }),
      command: described,
      reply,
      plugin: by
    })
  )
}

// JSON escapes C0 controls only; C1 controls (U+0085 is a line end to some viewers), the line and
// paragraph separators, bidi controls (U+202E reads the rest of the line backwards) and U+FEFF
// are written as \uXXXX too, so that no user name can disguise a log line.
const invisible = /[\u0080-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]/g
const escaped = (value: string): string => value.replace(invisible, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`)

/** The client's user name for a log field: cut at 256 characters (an AUTH line carries up to 4 KB), invisible characters escaped. */
const shown = (username: string): string => escaped(username.length > 256 ? `${username.slice(0, 256)}...` : username)

/** The same, quoted for a log message, so that no byte of it can forge a field. */
const quoted = (username: string): string => escaped(JSON.stringify(username.length > 256 ? `${username.slice(0, 256)}...` : username))

/** One failed AUTH exchange: logged at WARN and counted in `smtp_bridge_auth_failures_total{reason}`. */
export const authFailed = (
  session: SessionInfo,
  failure: { readonly mechanism: Mechanism; readonly username: string | undefined; readonly reason: Metrics.AuthFailureReason; readonly reply: Reply.Reply }
): Effect.Effect<void> => {
  const { mechanism, username, reason, reply } = failure
  return Effect.zipRight(
    Metrics.authFailure({ mechanism, reason }),
    Effect.logWarning(
      `AUTH ${mechanism} failed for user ${username === undefined ? "(none)" : quoted(username)} from ` +
        `${session.remoteAddress} (session ${session.id}): ${reason}, answered ${reply.code} ${reply.enhanced ?? ""}`.trimEnd()
    ).pipe(Effect.annotateLogs({ user: shown(username ?? ""), mechanism, reason }))
  )
}

/** AUTH not checked because a hook deferred (a backend down, a throttle): not a failed guess, but counted as `deferred`. */
export const authDeferred = (
  session: SessionInfo,
  deferral: { readonly mechanism: Mechanism; readonly username: string; readonly reply: Reply.Reply; readonly by: string | undefined }
): Effect.Effect<void> => {
  const { mechanism, username, reply, by } = deferral
  return Effect.zipRight(
    Metrics.authFailure({ mechanism, reason: "deferred" }),
    Effect.logWarning(
      `AUTH ${mechanism} for user ${quoted(username)} from ${session.remoteAddress} ` +
        `(session ${session.id}) not checked: ${reply.code} ${reply.enhanced} ${reply.lines.join(" ")}` +
        (by === undefined ? "" : ` (${by})`)
    ).pipe(Effect.annotateLogs({ user: shown(username), mechanism, reason: "deferred" }))
  )
}
