/**
 * Log output for `serve`: one JSON object per line for log shippers (the default when stdout is
 * not a terminal), or one readable line per event in a terminal. Annotations become fields, so a
 * line logged inside a session carries `session`, and inside a transaction `transaction`: the id
 * that the Received header and `250 2.0.0 Ok: queued as <id>` also show.
 *
 * Nothing here decides what is logged; the protocol code never logs AUTH exchanges or message
 * content. As a second line of defence, annotations whose names look like secrets are masked.
 *
 * @example
 * yield* program.pipe(Log.withFormat(Log.formatFor(config.logFormat)))
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as HashMap from "effect/HashMap"
import * as HashSet from "effect/HashSet"
import * as List from "effect/List"
import * as Logger from "effect/Logger"
import type { LogFormat } from "../config/Config.ts"

export type { LogFormat }

/** The format asked for, or the one that suits where stdout goes. */
export const formatFor = (asked: LogFormat | undefined, isTty: boolean = process.stdout.isTTY === true): LogFormat =>
  asked ?? (isTty ? "pretty" : "json")

const secretLike = /pass(word)?|secret|token|credential|authorization/i

const text = (message: unknown): string => {
  const parts = Array.isArray(message) ? message : [message]
  return parts.map((p) => (typeof p === "string" ? p : p instanceof Error ? p.message : safeJson(p))).join(" ")
}

const safeJson = (value: unknown): string => {
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}

const fieldsOf = (annotations: HashMap.HashMap<string, unknown>): Array<[string, unknown]> =>
  [...HashMap.entries(annotations)].map(([k, v]) => [k, secretLike.test(k) ? "(hidden)" : v])

/** The record a line is made of; exported for tests. */
export const record = (options: Logger.Logger.Options<unknown>): Record<string, unknown> => {
  const out: Record<string, unknown> = {
    time: options.date.toISOString(),
    level: options.logLevel.label,
    message: text(options.message)
  }
  for (const [key, value] of fieldsOf(options.annotations)) {
    // The fixed fields win: an annotation named `message` must not hide the message.
    if (!(key in out)) out[key] = value
  }
  for (const span of List.toArray(options.spans)) out[`span.${span.label}`] = options.date.getTime() - span.startTime
  if (!Cause.isEmpty(options.cause)) out.cause = Cause.pretty(options.cause, { renderErrorCause: true })
  return out
}

export const json: Logger.Logger<unknown, string> = Logger.make((options) => JSON.stringify(record(options)))

export const pretty: Logger.Logger<unknown, string> = Logger.make((options) => {
  const r = record(options)
  const { time, level, message, cause, ...rest } = r
  const fields = Object.entries(rest).map(([k, v]) => `${k}=${typeof v === "string" && !/\s/.test(v) ? v : safeJson(v)}`)
  const head = `${String(time)} ${String(level).padEnd(5)} ${String(message)}${fields.length > 0 ? `  ${fields.join(" ")}` : ""}`
  return cause === undefined ? head : `${head}\n${String(cause).replace(/^/gm, "    ")}`
})

/** Writes each line to stdout in one call, so that lines from concurrent fibers never interleave. */
const toStdout = (logger: Logger.Logger<unknown, string>): Logger.Logger<unknown, void> =>
  Logger.map(logger, (line) => void process.stdout.write(`${line}\n`))

export const loggerFor = (format: LogFormat): Logger.Logger<unknown, void> => toStdout(format === "json" ? json : pretty)

/**
 * Runs `effect` with this format as the only logger, replacing whatever the platform's `runMain`
 * installed (its pretty logger spreads one event over several lines).
 */
export const withFormat = (format: LogFormat) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.locally(effect, FiberRef.currentLoggers, HashSet.make<[Logger.Logger<unknown, unknown>]>(loggerFor(format)))
