/**
 * auth-oauth: the OAUTHBEARER (RFC 7628) and XOAUTH2 SASL mechanisms, for applications that hold
 * an OAuth 2.0 access token instead of a password. The token must be a JWT, checked locally
 * against the issuer's JSON Web Key Set (`Token.ts`): signature, `iss`, `aud`, `exp`/`nbf`, and
 * the identity claim (`email` by default), which must name the user the client names. The
 * session's user is the claim's value.
 *
 * A bad token gets RFC 7628's error challenge (`334` + base64 of `{"status":"invalid_token",...}`;
 * XOAUTH2: `{"status":"401",...}`), the client's dummy response, then 535 5.7.8. A key set that
 * cannot be had (issuer down, slow, redirecting) gives 454 4.7.0 at once.
 *
 * @example
 * import { authOauth } from "./plugins/auth-oauth/index.ts"
 * defineConfig({
 *   plugins: [authOauth({ jwksUrl: "https://login.example.com/jwks", issuer: "https://login.example.com/", audience: "smtp" })]
 * })
 */
import * as Effect from "effect/Effect"
import { definePlugin, Verdict } from "../../src/index.ts"
import type { Made, SaslContext, SaslExchange, SaslStep } from "../../src/index.ts"
import * as Messages from "./Messages.ts"
import { type Options as OptionsType, Options } from "./options.ts"
import * as Token from "./Token.ts"

export { Options } from "./options.ts"
export type { OptionsInput } from "./options.ts"

const invalid = Verdict.reject("Authentication credentials invalid", { code: 535, enhanced: "5.7.8" })
const unavailable = Verdict.defer("Temporary authentication failure, try again later", { code: 454, enhanced: "4.7.0" })

const done = (verdict: Verdict.Verdict, username: string | undefined): SaslStep => ({ _tag: "Done", verdict, username })

const make = (options: OptionsType): Made => {
  const verifier = Token.make(options)
  const mechanisms: ReadonlyArray<string> = options.mechanisms

  const sasl = ({ mechanism }: SaslContext): Effect.Effect<SaslExchange> =>
    Effect.sync(() => {
      const mech = mechanism === "XOAUTH2" ? "XOAUTH2" : "OAUTHBEARER"
      let asked = false
      // Once the error challenge went out, the next response only ends the exchange (RFC 7628 3.2.3).
      let failed: { readonly user: string | undefined } | undefined
      const step = Effect.fnUntraced(function*(response: string | undefined) {
        if (failed !== undefined) return done(invalid, failed.user)
        // No initial response: ask for it with an empty challenge (RFC 4954 4).
        if (response === undefined && !asked) {
          asked = true
          return { _tag: "Challenge", text: "" } satisfies SaslStep
        }
        const parsed = Messages.parse(mech, response ?? "")
        if (parsed._tag === "Malformed") {
          yield* Effect.logInfo(`auth-oauth: ${mech}: ${parsed.why}`)
          failed = { user: undefined }
          return { _tag: "Challenge", text: Messages.errorChallenge(mech) } satisfies SaslStep
        }
        const checked = yield* verifier.check(parsed.token, parsed.user)
        if (checked._tag === "Valid") return done(Verdict.accept({ identity: checked.identity }), checked.identity)
        if (checked._tag === "Unavailable") {
          yield* Effect.logWarning(`auth-oauth: ${checked.why}`)
          return done(unavailable, parsed.user)
        }
        yield* Effect.logInfo(`auth-oauth: ${mech}: token refused: ${checked.why}`)
        failed = { user: parsed.user }
        return { _tag: "Challenge", text: Messages.errorChallenge(mech) } satisfies SaslStep
      })
      return { step }
    })

  return { saslMechanisms: () => mechanisms, sasl }
}

/** The plugin factory: `authOauth({ jwksUrl, issuer, audience })`. */
export const authOauth = definePlugin({
  name: "auth-oauth",
  options: Options,
  // The key set's fetch, now and then.
  files: () => ({ held: 1 }),
  make
})

export default authOauth
