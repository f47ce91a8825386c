/**
 * auth-oauth: the OAUTHBEARER (RFC 7628) and XOAUTH2 SASL mechanisms, with JWT access tokens
 * validated locally against the issuer's JSON Web Key Set.
 *
 * @example
 * import { authOauth } from "./plugins/auth-oauth/index.ts"
 * defineConfig({ plugins: [authOauth({ jwksUrl: "https://login.example.com/jwks", issuer: "https://login.example.com/", audience: "smtp" })] })
 */
import { Effect } from "effect"
import { definePlugin } from "../../src/index.ts"
import { Options } from "./options.ts"

export { Options } from "./options.ts"
export type { OptionsInput } from "./options.ts"

/** The plugin factory: `authOauth({ jwksUrl, issuer, audience })`. */
export const authOauth = definePlugin({
  name: "auth-oauth",
  options: Options,
  make: (_options) => ({ setup: Effect.fail(new Error("auth-oauth is being built on this branch")) })
})

export default authOauth
