/**
 * The options of the milter plugin, as one `effect/Schema`; the CLI's `--milter` and the config
 * file's `milters` give the same shape. Imports nothing but `effect`.
 */
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"

const DurationInput = Schema.Union(Schema.Number, Schema.String).pipe(
  Schema.filter((input) => Option.isSome(Duration.decodeUnknown(input)) || "a duration such as \"30 seconds\" or a number of milliseconds")
)

/** Where a milter listens: `inet:HOST:PORT` (`inet:[::1]:PORT` for IPv6) or `unix:/PATH`, as Postfix writes it. */
export const parseSocket = (text: string): { readonly host: string; readonly port: number } | { readonly path: string } | undefined => {
  const unix = /^(?:unix|local):(\/.+)$/.exec(text)
  if (unix !== null) return { path: unix[1]! }
  const inet = /^inet6?:(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(text)
  if (inet === null) return undefined
  const port = Number(inet[3])
  if (port < 1 || port > 65535) return undefined
  return { host: inet[1] ?? inet[2]!, port }
}

export const Socket = Schema.String.pipe(
  Schema.filter((s) => parseSocket(s) !== undefined || "inet:HOST:PORT or unix:/PATH")
)

/** What happens when a milter is down, times out or breaks the protocol (Postfix's milter_default_action). */
export const DefaultAction = Schema.Literal("tempfail", "accept")

export const Milter = Schema.Struct({
  socket: Socket,
  /** Overrides the plugin's `defaultAction` for this milter. */
  defaultAction: Schema.optional(DefaultAction),
  connectTimeout: Schema.optional(DurationInput),
  commandTimeout: Schema.optional(DurationInput),
  contentTimeout: Schema.optional(DurationInput)
})

export const Options = Schema.Struct({
  /** The milters, applied in this order: `"inet:127.0.0.1:8891"` or `{ socket, defaultAction, ...timeouts }`. */
  milters: Schema.Array(Schema.Union(Socket, Milter)).pipe(Schema.minItems(1, { message: () => "at least one milter" })),
  /** `tempfail` (451 4.7.1, the client retries) or `accept` (go on without that milter). */
  defaultAction: Schema.optionalWith(DefaultAction, { default: () => "tempfail" as const }),
  /** Connecting and negotiating options (Postfix's milter_connect_timeout). */
  connectTimeout: Schema.optionalWith(DurationInput, { default: () => "30 seconds" }),
  /** Each answer to a command other than body and end of message (milter_command_timeout). */
  commandTimeout: Schema.optionalWith(DurationInput, { default: () => "30 seconds" }),
  /** Each answer to a body chunk and to the end of the message (milter_content_timeout). */
  contentTimeout: Schema.optionalWith(DurationInput, { default: () => "300 seconds" }),
  /** The `{daemon_name}` macro. */
  daemonName: Schema.optionalWith(Schema.String, { default: () => "smtp-bridge" })
})

export type Options = Schema.Schema.Type<typeof Options>
export type OptionsInput = Schema.Schema.Encoded<typeof Options>
