/**
 * The mailauth-verify plugin's options as one `effect/Schema` (imports only `effect`, so that the
 * config schema uses it without an import circle).
 *
 * @example
 * Schema.decodeUnknownSync(Options)({ policy: { dmarcReject: "reject" }, skipAuthenticated: true })
 */
import * as Schema from "effect/Schema"

// Absent, never `undefined` (exactOptionalPropertyTypes).
const optional = <S extends Schema.Schema.AnyNoContext>(schema: S) => Schema.optionalWith(schema, { exact: true })

/**
 * What to do when a check ends a given way. `accept`: nothing more than Authentication-Results;
 * `tag`: also add `X-Mailauth-Warning` naming the check, for filters downstream; `reject`: 550
 * 5.7.x; `defer`: 451 4.7.x, so the sender retries.
 */
export const Action = Schema.Literal("accept", "tag", "reject", "defer").annotations({
  description: "\"accept\", \"tag\", \"reject\" or \"defer\""
})

export const Policy = Schema.Struct({
  /** SPF `fail` (default `tag`). */
  spfFail: optional(Action),
  /** SPF `softfail` (default `accept`). */
  spfSoftfail: optional(Action),
  /** DMARC `fail` for a domain publishing `p=reject` (default `tag`). */
  dmarcReject: optional(Action),
  /** DMARC `fail` for a domain publishing `p=quarantine` (default `tag`). */
  dmarcQuarantine: optional(Action),
  /** No DKIM signature passed (default `accept`: most mail has one, but not all). */
  noValidDkim: optional(Action),
  /** A check could not finish for DNS trouble (default `accept`; `defer` makes the sender retry). */
  temperror: optional(Action)
})

export const Options = Schema.Struct({
  /** The authserv-id of Authentication-Results (default: the session's hostname). */
  authservId: optional(Schema.String),
  /** Skip the checks for authenticated sessions: their mail is this bridge's own (default true). */
  skipAuthenticated: optional(Schema.Boolean),
  /** Skip the checks for trusted networks (`Relay.Trusted`, default true). */
  skipTrusted: optional(Schema.Boolean),
  /** Check SPF at MAIL FROM too, to reject or defer there when `policy` says so (default false). */
  spfAtMailFrom: optional(Schema.Boolean),
  policy: optional(Policy),
  /** Look up BIMI records and report them in Authentication-Results (default false). */
  bimi: optional(Schema.Boolean),
  /** Shortest RSA key accepted for DKIM and ARC (default 1024). */
  minBitLength: optional(Schema.Number.pipe(Schema.int(), Schema.positive()).annotations({ description: "a positive integer" }))
}).annotations({ description: "mailauth-verify options: { policy?, skipAuthenticated?, ... }" })

export type Options = typeof Options.Type
export type OptionsInput = typeof Options.Encoded
export type Action = typeof Action.Type
export type Policy = typeof Policy.Type
