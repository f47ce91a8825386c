/**
 * The options of the auth-http plugin, as one `effect/Schema`: the factory decodes what the user
 * wrote with it, and a configuration loader can validate a plugin entry with it before the server
 * starts. Imports nothing but `effect`.
 */
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"

/** `"5 seconds"`, `"500 millis"` or a number of milliseconds. */
const DurationInput = Schema.Union(Schema.Number, Schema.String).pipe(
  Schema.filter((input) => Option.isSome(Duration.decodeUnknown(input)) || "a duration such as \"5 seconds\" or a number of milliseconds")
)

/** The plugin's hook timeout is a little longer, so that a slow service answers 454, not 451. */
const AtMostAMinute = DurationInput.pipe(
  Schema.filter((input) => Duration.lessThanOrEqualTo(Duration.decode(input as Duration.DurationInput), Duration.minutes(1)) || "a duration of at most 1 minute")
)

const isHttpUrl = (text: string): boolean => {
  try {
    const url = new URL(text)
    return (url.protocol === "http:" || url.protocol === "https:") && url.hostname !== ""
  } catch {
    return false
  }
}

export const Options = Schema.Struct({
  /** The endpoint that checks credentials; it gets a signed JSON POST (see the README). */
  url: Schema.String.pipe(Schema.filter((u) => isHttpUrl(u) || "an http:// or https:// URL")),
  /** HMAC-SHA256 key the request is signed with, as the webhook transport signs (`x-smtp-bridge-signature`). */
  secret: Schema.optional(Schema.String.pipe(Schema.minLength(16, { message: () => "at least 16 characters" }))),
  /** Environment variable holding that key instead (read when the server starts). */
  secretEnv: Schema.optional(Schema.String.pipe(Schema.minLength(1))),
  /** Longest wait for the whole answer, then 454 4.7.0; at most a minute. */
  timeout: Schema.optionalWith(AtMostAMinute, { default: () => "5 seconds" }),
  /** Largest answer read; a longer one is a temporary failure (454 4.7.0). */
  maxResponseBytes: Schema.optionalWith(Schema.Int.pipe(Schema.between(64, 1024 * 1024)), { default: () => 16 * 1024 })
}).pipe(
  Schema.filter((o) => o.secret === undefined || o.secretEnv === undefined || { path: ["secretEnv"], message: "give either secret or secretEnv, not both" })
)

export type Options = Schema.Schema.Type<typeof Options>
/** What a user writes (defaults optional). */
export type OptionsInput = Schema.Schema.Encoded<typeof Options>
