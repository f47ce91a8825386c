/**
 * The options of the auth-dovecot plugin, as one `effect/Schema`: `definePlugin` decodes what
 * the user wrote with it when the server starts, and `check-config` validates it before. Imports
 * only `effect` and the pure `Units` leaf.
 *
 * @example
 * Schema.decodeUnknownSync(Options)({ path: "/run/dovecot/auth-client" })
 * Schema.decodeUnknownSync(Options)({ host: "127.0.0.1", port: 12345, timeout: "5 seconds" })
 */
import * as Duration from "effect/Duration"
import * as Schema from "effect/Schema"
import * as Units from "../../src/util/Units.ts"

const optional = <S extends Schema.Schema.AnyNoContext>(schema: S) => Schema.optionalWith(schema, { exact: true })

/** RFC 4422 3.1: a SASL mechanism name is 1 to 20 characters of A-Z, 0-9, `-` and `_`. */
export const MechanismName = Schema.String.pipe(
  Schema.pattern(/^[A-Z0-9_-]{1,20}$/, { message: () => "a SASL mechanism name in capitals, e.g. SCRAM-SHA-256" })
)

/** A duration above zero and at most a minute, as `Units.Duration` reads it. */
const UpToAMinute = Schema.transform(
  Units.DurationInput.pipe(Schema.filter((input) => {
    const d = Units.parseDuration(input)
    return d !== undefined && Duration.greaterThan(d, Duration.zero) && Duration.lessThanOrEqualTo(d, Duration.minutes(1))
  })),
  Schema.DurationFromSelf,
  { strict: true, decode: (input) => Units.parseDuration(input) ?? Duration.zero, encode: (d) => Duration.toMillis(d) }
).annotations({ description: "a duration above zero and at most 60 seconds, like \"10 seconds\"" })

export const Options = Schema.Struct({
  /** The auth listener's unix socket (Dovecot's `auth-client` or a `unix_listener` of service auth). */
  path: optional(Schema.String.pipe(Schema.minLength(1))),
  /** Or its TCP `inet_listener`: host and port. */
  host: optional(Schema.String.pipe(Schema.minLength(1))),
  port: optional(Schema.Int.pipe(Schema.between(1, 65535))),
  /** The `service=` Dovecot sees (its `%s`, and `protocol` in passdb conditions). */
  service: Schema.optionalWith(Schema.String.pipe(Schema.pattern(/^[a-z0-9-]{1,32}$/)), { default: () => "smtp" }),
  /**
   * Mechanisms offered to clients, among those Dovecot announces; default all of Dovecot's except
   * the ones no submission server should offer (ANONYMOUS, EXTERNAL, private ones). PLAIN and
   * LOGIN are always the bridge's own (checked with Dovecot through the `auth` hook).
   */
  mechanisms: optional(Schema.Array(MechanismName)),
  /** Longest wait for one answer of Dovecot (an OK, FAIL or CONT), then 454 4.7.0; at most a minute. */
  timeout: Schema.optionalWith(UpToAMinute, { default: () => Units.parseDuration("10 seconds")! }),
  /** Longest wait for the connection and Dovecot's handshake. */
  connectTimeout: Schema.optionalWith(Units.Duration, { default: () => Units.parseDuration("5 seconds")! }),
  /** First wait before reconnecting after Dovecot went away; doubles up to `maxBackoff`. */
  backoff: Schema.optionalWith(Units.Duration, { default: () => Units.parseDuration("200 millis")! }),
  maxBackoff: Schema.optionalWith(Units.Duration, { default: () => Units.parseDuration("10 seconds")! }),
  /**
   * Whether Dovecot's own penalty (its anvil delays each AUTH from an address with recent
   * failures, up to 15 seconds) applies; off sends `no-penalty`, leaving brute force to the
   * bridge's AUTH throttle.
   */
  penalty: Schema.optionalWith(Schema.Boolean, { default: () => true }),
  /** Exchanges waiting for Dovecot at once, past which AUTH gets 454 4.7.0 (memory stays bounded). */
  maxPending: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 100_000)), { default: () => 1000 }),
  /** Longest line read from Dovecot (its protocol expects lines within 16 KB); a longer one drops the connection. */
  maxLineLength: Schema.optionalWith(Schema.Int.pipe(Schema.between(1024, 1024 * 1024)), { default: () => 64 * 1024 })
}).pipe(
  Schema.filter((o) => {
    if (o.path !== undefined && (o.host !== undefined || o.port !== undefined)) return { path: ["path"], message: "give either path or host and port, not both" }
    if (o.path === undefined && (o.host === undefined || o.port === undefined)) {
      return { path: [o.host === undefined ? "path" : "port"], message: "give the auth socket's path, or host and port" }
    }
    return true
  })
)

export type Options = Schema.Schema.Type<typeof Options>
/** What a user writes (defaults optional). */
export type OptionsInput = Schema.Schema.Encoded<typeof Options>
