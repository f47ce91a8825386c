/**
 * The options of the auth-oauth plugin (OAUTHBEARER, RFC 7628, and XOAUTH2), as one
 * `effect/Schema`. Imports only `effect` and the pure `Units` leaf.
 *
 * @example
 * Schema.decodeUnknownSync(Options)({
 *   jwksUrl: "https://login.example.com/.well-known/jwks.json",
 *   issuer: "https://login.example.com/",
 *   audience: "smtp.example.com"
 * })
 */
import * as Schema from "effect/Schema"
import * as Units from "../../src/util/Units.ts"

const loopback = (host: string): boolean =>
  host === "localhost" || host === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)

/** https, or http to a loopback address only (a key set fetched in clear text could be swapped). */
export const isJwksUrl = (text: string): boolean => {
  try {
    const url = new URL(text)
    if (url.username !== "" || url.password !== "") return false
    return url.protocol === "https:" || (url.protocol === "http:" && loopback(url.hostname))
  } catch {
    return false
  }
}

/** Signature algorithms a token may use; `none` and the HMAC ones (`HS*`) are never accepted. */
export const Algorithm = Schema.Literal("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")

export const Options = Schema.Struct({
  /** The issuer's JSON Web Key Set: https (http only to a loopback address, for tests). */
  jwksUrl: Schema.String.pipe(Schema.filter((u) => isJwksUrl(u) || "an https:// URL (http:// only to a loopback address), without user or password")),
  /** The `iss` every token must carry, exactly. */
  issuer: Schema.String.pipe(Schema.minLength(1)),
  /** The `aud` a token must include (one of these). */
  audience: Schema.Union(Schema.String.pipe(Schema.minLength(1)), Schema.NonEmptyArray(Schema.String.pipe(Schema.minLength(1)))),
  /** The claim naming the user, compared (case-insensitively) with the user the client names. */
  identityClaim: Schema.optionalWith(Schema.String.pipe(Schema.minLength(1)), { default: () => "email" }),
  /** Signature algorithms accepted. */
  algorithms: Schema.optionalWith(Schema.NonEmptyArray(Algorithm), { default: () => ["RS256", "PS256", "ES256", "EdDSA"] as const }),
  /** Mechanisms offered. */
  mechanisms: Schema.optionalWith(Schema.NonEmptyArray(Schema.Literal("OAUTHBEARER", "XOAUTH2")), {
    default: () => ["OAUTHBEARER", "XOAUTH2"] as const
  }),
  /** Tolerated clock difference for `exp` and `nbf`. */
  clockSkew: Schema.optionalWith(Units.durationWith(true), { default: () => Units.parseDuration("30 seconds")! }),
  /** How long a fetched key set is used before it is fetched again. */
  cacheMaxAge: Schema.optionalWith(Units.Duration, { default: () => Units.parseDuration("10 minutes")! }),
  /** Least time between two fetches (a token with an unknown `kid` asks for one): tokens cannot make the bridge hammer the issuer. */
  refreshCooldown: Schema.optionalWith(Units.Duration, { default: () => Units.parseDuration("30 seconds")! }),
  /** Longest wait for the key set, then 454 4.7.0. */
  timeout: Schema.optionalWith(Units.Duration, { default: () => Units.parseDuration("5 seconds")! }),
  /** Largest key set read; a larger answer is refused. */
  maxJwksBytes: Schema.optionalWith(Schema.Int.pipe(Schema.between(1024, 4 * 1024 * 1024)), { default: () => 256 * 1024 }),
  /** Longest access token accepted. */
  maxTokenLength: Schema.optionalWith(Schema.Int.pipe(Schema.between(256, 64 * 1024)), { default: () => 8 * 1024 })
})

export type Options = Schema.Schema.Type<typeof Options>
/** What a user writes (defaults optional). */
export type OptionsInput = Schema.Schema.Encoded<typeof Options>
