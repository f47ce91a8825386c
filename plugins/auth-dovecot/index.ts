/**
 * auth-dovecot: authenticates against Dovecot's auth service, as Postfix's
 * `smtpd_sasl_type = dovecot` does, over its unix socket or a TCP listener (one connection,
 * requests multiplexed by id, reconnected with backoff).
 *
 * - PLAIN and LOGIN stay the bridge's own: the `auth` hook checks the credentials with a PLAIN
 *   exchange with Dovecot, so the AUTH throttle and the chain of backends apply as for any other.
 * - Every other mechanism Dovecot announces (SCRAM-SHA-1/256, XOAUTH2, OAUTHBEARER, ...) is
 *   offered at EHLO and its exchange relayed step by step (`sasl`), except ANONYMOUS, EXTERNAL
 *   and private ones, and only those in `mechanisms` when given.
 * - Dovecot is told the client's and the bridge's address and port, the session id, and
 *   `secured` when the session is encrypted (its `disable_plaintext_auth` relies on it).
 * - `OK` → 235 as Dovecot's `user=`; `FAIL` → 535 5.7.8; `FAIL ... temp`, no connection, no
 *   answer within `timeout`, too many open requests → 454 4.7.0.
 *
 * @example
 * import { authDovecot } from "./plugins/auth-dovecot/index.ts"
 * defineConfig({ plugins: [authDovecot({ path: "/run/dovecot/auth-client" })] })
 */
import * as Effect from "effect/Effect"
import { definePlugin, Verdict } from "../../src/index.ts"
import type { AuthContext, Made, SaslContext, SaslExchange, SaslStep, SessionInfo } from "../../src/index.ts"
import * as Client from "./Client.ts"
import { type Options as OptionsType, Options } from "./options.ts"
import * as Protocol from "./Protocol.ts"

export { Options } from "./options.ts"
export type { OptionsInput } from "./options.ts"

const invalid = Verdict.reject("Authentication credentials invalid", { code: 535, enhanced: "5.7.8" })
const unavailable = Verdict.defer("Temporary authentication failure, try again later", { code: 454, enhanced: "4.7.0" })

/** Never offered to SMTP clients: no credentials (ANONYMOUS), a certificate the bridge does not pass (EXTERNAL), or Dovecot-internal. */
const refusedFlags = ["anonymous", "private"]

/** The identity becomes the session's user: logged and written into Received, so one visible token. */
const identityOf = (user: string | undefined): string | undefined =>
  user !== undefined && /^[^\x00-\x20\x7f]{1,256}$/.test(user) ? user : undefined

const clientOf = (session: SessionInfo, options: OptionsType): Protocol.Client => ({
  service: options.service,
  noPenalty: !options.penalty,
  session: session.id,
  localAddress: session.localAddress,
  localPort: session.localPort,
  remoteAddress: session.remoteAddress,
  remotePort: session.remotePort,
  secured: session.tls !== undefined
})

/** A finished request as a verdict (and the user Dovecot named); an unexpected `Cont` or a broken answer is a 454. */
const verdictOf = (outcome: Client.Outcome, warn: (why: string) => Effect.Effect<void>): Effect.Effect<{ verdict: Verdict.Verdict; user: string | undefined }> => {
  switch (outcome._tag) {
    case "Ok": {
      const identity = identityOf(outcome.user)
      if (identity === undefined) return Effect.as(warn("OK without a usable user= (not printable, or over 256 characters)"), { verdict: unavailable, user: undefined })
      return Effect.succeed({ verdict: Verdict.accept({ identity }), user: identity })
    }
    case "Fail":
      return Effect.succeed({ verdict: outcome.temporary ? unavailable : invalid, user: identityOf(outcome.user) })
    case "Unavailable":
      return Effect.as(warn(outcome.why), { verdict: unavailable, user: undefined })
    case "Cont":
      return Effect.as(warn("CONT where a PLAIN check expects OK or FAIL"), { verdict: unavailable, user: undefined })
  }
}

const make = (options: OptionsType): Made => ({
  setup: Effect.gen(function*() {
    const client = yield* Client.make(options)
    const warn = (why: string) => Effect.logWarning(`auth-dovecot: ${client.description}: ${why}`)
    const allowed = options.mechanisms === undefined ? undefined : new Set(options.mechanisms)

    const offered = (): ReadonlyArray<string> =>
      client.mechanisms()
        .filter((m) => /^[A-Z0-9_-]{1,20}$/.test(m.name) && m.name !== "EXTERNAL" && !refusedFlags.some((f) => m.flags.has(f)))
        .filter((m) => allowed === undefined || allowed.has(m.name))
        .map((m) => m.name)

    const auth = Effect.fnUntraced(function*({ session, username, password, authzid }: AuthContext) {
      // Dovecot down: nobody can say no, so not a failed guess either.
      if (client.mechanisms().length === 0) return yield* Effect.as(warn("not connected"), unavailable)
      if (!client.mechanisms().some((m) => m.name === "PLAIN")) return Verdict.Continue
      const response = Buffer.from(`${authzid ?? ""}\0${username}\0${password}`, "utf8").toString("base64")
      const { id, outcome } = yield* client.begin("PLAIN", clientOf(session, options), response)
      if (outcome._tag === "Cont") yield* client.cancel(id)
      return (yield* verdictOf(outcome, warn)).verdict
    })

    const sasl = ({ session, mechanism }: SaslContext): Effect.Effect<SaslExchange> =>
      Effect.sync(() => {
        let id: number | undefined
        let finished = false
        const step = Effect.fnUntraced(function*(response: string | undefined) {
          if (finished) return { _tag: "Done", verdict: unavailable, username: undefined } satisfies SaslStep
          let outcome: Client.Outcome
          if (id === undefined) {
            const begun = yield* client.begin(mechanism, clientOf(session, options), response)
            id = begun.id
            outcome = begun.outcome
          } else outcome = yield* client.next(id, response ?? "")
          if (outcome._tag === "Cont") {
            // Dovecot's challenge goes into a 334 line: only base64 of a sane length.
            if (Protocol.isBase64(outcome.data) && outcome.data.length <= options.maxLineLength) return { _tag: "Challenge", text: outcome.data } satisfies SaslStep
            yield* client.cancel(id)
            yield* warn("CONT with data that is no base64")
            finished = true
            return { _tag: "Done", verdict: unavailable, username: undefined } satisfies SaslStep
          }
          finished = true
          const { verdict, user } = yield* verdictOf(outcome, warn)
          return { _tag: "Done", verdict, username: user } satisfies SaslStep
        })
        return {
          step,
          abort: Effect.suspend(() => (id === undefined || finished ? Effect.void : client.cancel(id)))
        }
      })

    return { auth, saslMechanisms: (_: SessionInfo) => offered(), sasl }
  })
})

/** The plugin factory: `authDovecot({ path })` or `authDovecot({ host, port })`. */
export const authDovecot = definePlugin({
  name: "auth-dovecot",
  options: Options,
  // Longer than the request's own timeout (at most a minute), so that the request answers 454 first.
  timeout: "75 seconds",
  // One connection to the auth service, shared by every session.
  files: () => ({ held: 1 }),
  make
})

export default authDovecot
