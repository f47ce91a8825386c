/**
 * auth-dovecot: authenticates against Dovecot's auth service, as Postfix's
 * `smtpd_sasl_type = dovecot` does. PLAIN and LOGIN stay the bridge's own and are checked with a
 * PLAIN exchange with Dovecot (the `auth` hook, so the throttle and the chain apply); every other
 * mechanism Dovecot announces (SCRAM-SHA-1/256, XOAUTH2, OAUTHBEARER, ...) is offered and its
 * exchange proxied.
 *
 * @example
 * import { authDovecot } from "./plugins/auth-dovecot/index.ts"
 * defineConfig({ plugins: [authDovecot({ path: "/run/dovecot/auth-client" })] })
 */
import { Effect } from "effect"
import { definePlugin } from "../../src/index.ts"
import { Options } from "./options.ts"

export { Options } from "./options.ts"
export type { OptionsInput } from "./options.ts"

/** The plugin factory: `authDovecot({ path })` or `authDovecot({ host, port })`. */
export const authDovecot = definePlugin({
  name: "auth-dovecot",
  options: Options,
  make: (_options) => ({ setup: Effect.fail(new Error("auth-dovecot is being built on this branch")) })
})

export default authDovecot
