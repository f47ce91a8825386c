/**
 * The options of the auth-ldap plugin, as one `effect/Schema`: the factory decodes what the user
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

const NonEmpty = Schema.String.pipe(Schema.minLength(1))

export const Options = Schema.Struct({
  /** `ldap://host[:port]` or `ldaps://host[:port]` (scheme, host and port only). */
  url: Schema.String.pipe(
    Schema.pattern(/^ldaps?:\/\/(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?\/?$/, {
      message: () => "an ldap:// or ldaps:// URL with a host and an optional port, without user, path or query"
    })
  ).annotations({ description: "an ldap:// or ldaps:// URL with a host and an optional port, without user, path or query" }),
  /** The search base, e.g. `ou=people,dc=example,dc=com`. */
  base: NonEmpty,
  /**
   * The search filter; every `%s` becomes the user name given to AUTH, escaped as RFC 4515 §3
   * requires (`*`, `(`, `)`, `\` and NUL), so a user name can never add a filter term.
   */
  filter: Schema.optionalWith(
    Schema.String.pipe(
      Schema.filter((f) => (f.startsWith("(") && f.endsWith(")") && f.includes("%s")) || "a filter in parentheses containing %s, e.g. (mail=%s)")
    ),
    { default: () => "(mail=%s)" }
  ),
  /** `sub` (the base and everything below, default) or `one` (its direct children). */
  scope: Schema.optionalWith(Schema.Literal("sub", "one"), { default: () => "sub" as const }),
  /** The service account that searches; without it the search is anonymous. */
  bindDn: Schema.optional(NonEmpty),
  /** File holding the service account's password (trailing newline ignored); read at start and on reload. */
  bindPasswordFile: Schema.optional(NonEmpty),
  /** Environment variable holding the service account's password. */
  bindPasswordEnv: Schema.optional(NonEmpty),
  /** Upgrade an `ldap://` connection with STARTTLS (RFC 4513 §3) before anything is sent. */
  startTls: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  /** PEM file of the CA(s) that sign the server's certificate (default: the system's). */
  caFile: Schema.optional(NonEmpty),
  /** Attributes of the user's entry that list the addresses they may send as (`@domain` and `*` entries count too). */
  senderAttributes: Schema.optionalWith(Schema.Array(NonEmpty), { default: () => ["mail"] }),
  /** Connections kept open to the server, each serving one AUTH at a time. */
  poolSize: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 64)), { default: () => 4 }),
  /** Longest wait for a TCP (and TLS) connection. */
  connectTimeout: Schema.optionalWith(DurationInput, { default: () => "5 seconds" }),
  /** Longest wait for one check (a free connection, the search and both binds), then 454 4.7.0; at most a minute. */
  timeout: Schema.optionalWith(
    DurationInput.pipe(
      Schema.filter((input) => Duration.lessThanOrEqualTo(Duration.decode(input as Duration.DurationInput), Duration.minutes(1)) || "a duration of at most 1 minute")
    ),
    { default: () => "10 seconds" }
  )
}).pipe(
  Schema.filter((o) => {
    const sources = [o.bindPasswordFile, o.bindPasswordEnv].filter((s) => s !== undefined).length
    if (o.bindDn === undefined && sources > 0) return { path: ["bindDn"], message: "is required when a bind password is given" }
    if (o.bindDn !== undefined && sources !== 1) {
      return { path: ["bindPasswordFile"], message: "exactly one of bindPasswordFile and bindPasswordEnv is required with bindDn" }
    }
    if (o.startTls && o.url.toLowerCase().startsWith("ldaps:")) return { path: ["startTls"], message: "is for ldap:// URLs; ldaps:// is TLS already" }
    return true
  })
)

export type Options = Schema.Schema.Type<typeof Options>
/** What a user writes (defaults optional). */
export type OptionsInput = Schema.Schema.Encoded<typeof Options>
