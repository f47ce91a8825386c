/**
 * JWT access tokens checked locally with `jose` against the issuer's JSON Web Key Set: the
 * signature (only the configured asymmetric algorithms: never `none`, never an HMAC whose
 * "secret" could be the public key), `iss`, `aud`, `exp` (required) and `nbf` with a small skew,
 * then the identity claim. The key set is fetched with redirects never followed and its size
 * capped, cached for `cacheMaxAge`, fetched again for an unknown `kid` at most once per
 * `refreshCooldown` (tokens with made-up `kid`s cannot make the bridge hammer the issuer).
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { createRemoteJWKSet, customFetch, jwtVerify } from "jose"
import { Bytes, Fetch, Redact } from "../../src/index.ts"
import type { Options } from "./options.ts"

export type Checked =
  | { readonly _tag: "Valid"; readonly identity: string }
  /** The token is not good (signature, claims, expiry, identity): RFC 7628's invalid_token. */
  | { readonly _tag: "Invalid"; readonly why: string }
  /** The key set could not be had (the issuer down, slow, redirecting, too large): 454 4.7.0. */
  | { readonly _tag: "Unavailable"; readonly why: string }

/** jose's error codes that say the token is bad, not that the keys could not be fetched. */
const tokenErrors = new Set([
  "ERR_JWT_EXPIRED", "ERR_JWT_CLAIM_VALIDATION_FAILED", "ERR_JWS_SIGNATURE_VERIFICATION_FAILED", "ERR_JWS_INVALID", "ERR_JWT_INVALID",
  "ERR_JOSE_ALG_NOT_ALLOWED", "ERR_JWKS_NO_MATCHING_KEY", "ERR_JWKS_MULTIPLE_MATCHING_KEYS", "ERR_JOSE_NOT_SUPPORTED"
])

class TooLarge extends Error {}

/** An identity is logged and written into Received: one printable token. */
const usable = (value: unknown): value is string => typeof value === "string" && /^[^\x00-\x20\x7f]{1,256}$/.test(value)

export interface Verifier {
  /** Checks `token`; `user`, when the client named one, must be the identity claim's value (case-insensitive). */
  readonly check: (token: string, user: string | undefined) => Effect.Effect<Checked>
}

export const make = (options: Options): Verifier => {
  const shown = Redact.url(options.jwksUrl)
  // fetch that never follows a redirect and stops reading past `maxJwksBytes`.
  const cappedFetch = async (url: string, init: RequestInit): Promise<Response> => {
    const response = await Fetch.boundedFetch(url, { ...init, redirect: "manual" })
    if (response.status !== 200) {
      await response.body?.cancel().catch(() => undefined)
      throw new Error(`HTTP ${response.status}${response.status >= 300 && response.status < 400 ? " redirect (never followed)" : ""}`)
    }
    const body = await Bytes.readCapped(response, options.maxJwksBytes)
    if (body === undefined) throw new TooLarge(`the key set is larger than ${options.maxJwksBytes} bytes (maxJwksBytes)`)
    return new Response(new Uint8Array(body), { status: 200, headers: { "content-type": "application/json" } })
  }
  const jwks = createRemoteJWKSet(new URL(options.jwksUrl), {
    timeoutDuration: Duration.toMillis(options.timeout),
    cooldownDuration: Duration.toMillis(options.refreshCooldown),
    cacheMaxAge: Duration.toMillis(options.cacheMaxAge),
    [customFetch]: cappedFetch
  })
  const verifyOptions = {
    issuer: options.issuer,
    audience: typeof options.audience === "string" ? options.audience : [...options.audience],
    algorithms: [...options.algorithms],
    clockTolerance: Math.floor(Duration.toSeconds(options.clockSkew)),
    requiredClaims: ["exp"]
  }

  const check = (token: string, user: string | undefined): Effect.Effect<Checked> =>
    Effect.promise(async (): Promise<Checked> => {
      if (token.length > options.maxTokenLength) return { _tag: "Invalid", why: `a token longer than ${options.maxTokenLength} characters` }
      try {
        const { payload } = await jwtVerify(token, jwks, verifyOptions)
        const identity = payload[options.identityClaim]
        if (!usable(identity)) return { _tag: "Invalid", why: `no usable ${options.identityClaim} claim` }
        // An address the issuer itself says is not verified names nobody.
        if (options.identityClaim === "email" && payload["email_verified"] === false) return { _tag: "Invalid", why: "email_verified is false" }
        if (user !== undefined && user.toLowerCase() !== identity.toLowerCase()) {
          return { _tag: "Invalid", why: `the token is for another user than the one named` }
        }
        return { _tag: "Valid", identity }
      } catch (error) {
        const code = (error as { code?: unknown } | null)?.code
        const message = error instanceof Error ? error.message : String(error)
        if (typeof code === "string" && tokenErrors.has(code)) return { _tag: "Invalid", why: message }
        return { _tag: "Unavailable", why: `key set ${shown}: ${message.split(options.jwksUrl).join(shown)}` }
      }
    })

  return { check }
}
