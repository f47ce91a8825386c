/**
 * The options of the http-hooks plugin, as one `effect/Schema`; `--hook STAGE=URL` gives the
 * same shape. Imports nothing but `effect`.
 */
import { Duration, Option, Schema } from "effect"

const DurationInput = Schema.Union(Schema.Number, Schema.String).pipe(
  Schema.filter((input) => Option.isSome(Duration.decodeUnknown(input)) || "a duration such as \"5 seconds\" or a number of milliseconds")
)

const isHttpUrl = (text: string): boolean => {
  try {
    const url = new URL(text)
    return (url.protocol === "http:" || url.protocol === "https:") && url.hostname !== ""
  } catch {
    return false
  }
}

export const Hook = Schema.Struct({
  /** The plugin hook it runs at. */
  stage: Schema.Literal("connect", "helo", "mailFrom", "rcptTo", "data"),
  url: Schema.String.pipe(Schema.filter((u) => isHttpUrl(u) || "an http:// or https:// URL"))
})

export const Options = Schema.Struct({
  hooks: Schema.Array(Hook).pipe(Schema.minItems(1, { message: () => "at least one hook" })),
  /** HMAC-SHA256 key the requests are signed with, as the webhook transport signs (`x-smtp-bridge-signature`). */
  secret: Schema.optional(Schema.String.pipe(Schema.minLength(16, { message: () => "at least 16 characters" }))),
  /** Environment variable holding that key instead (read when the server starts). */
  secretEnv: Schema.optional(Schema.String.pipe(Schema.minLength(1))),
  /** Longest wait for a whole answer. */
  timeout: Schema.optionalWith(DurationInput, { default: () => "10 seconds" }),
  /** When a hook is down, slow, redirects or answers what is not the schema: `tempfail` (451 4.7.1) or `accept`. */
  defaultAction: Schema.optionalWith(Schema.Literal("tempfail", "accept"), { default: () => "tempfail" as const }),
  /** Largest answer read. */
  maxResponseBytes: Schema.optionalWith(Schema.Int.pipe(Schema.between(64, 1024 * 1024)), { default: () => 64 * 1024 }),
  /** At data, the message goes in the request (base64) when it is at most this big; larger ones get the headers only. */
  maxMessageBytes: Schema.optionalWith(Schema.Int.pipe(Schema.between(0, 64 * 1024 * 1024)), { default: () => 1024 * 1024 })
}).pipe(
  Schema.filter((o) => o.secret === undefined || o.secretEnv === undefined || { path: ["secretEnv"], message: "give either secret or secretEnv, not both" })
)

export type Options = Schema.Schema.Type<typeof Options>
export type OptionsInput = Schema.Schema.Encoded<typeof Options>
