/**
 * auth-ldap: checks AUTH PLAIN / LOGIN credentials against an LDAP directory (OpenLDAP, 389 DS,
 * Active Directory): finds the user's entry with a search filter, then binds as that entry with
 * the given password. The entry's `mail`-like attributes become the addresses the user may send
 * as (sender-identity's MAIL FROM and header From rules).
 *
 * Verdicts: right password → Accept; wrong or empty password, or a filter matching several
 * entries → Reject 535 5.7.8; no entry → Continue (a later backend may know the user); server
 * down, slow or answering an error → Defer 454 4.7.0.
 *
 * @example
 * import { authLdap } from "./plugins/auth-ldap/index.ts"
 * authLdap({ url: "ldaps://ldap.example.com", base: "ou=people,dc=example,dc=com", filter: "(uid=%s)",
 *   bindDn: "cn=smtp,dc=example,dc=com", bindPasswordFile: "/run/secrets/ldap", senderAttributes: ["mail", "mailAlternateAddress"] })
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import { readFile } from "node:fs/promises"
import { definePlugin, Senders, Verdict } from "../../src/index.ts"
import type { AuthContext } from "../../src/index.ts"
import * as Directory from "./Directory.ts"
import { Options } from "./options.ts"

export { LdapError } from "./Directory.ts"
export { Options } from "./options.ts"
export type { OptionsInput } from "./options.ts"

/** The service account's password or the CA file could not be read. */
export class LdapSetupError extends Schema.TaggedError<LdapSetupError>()("LdapSetupError", {
  reason: Schema.Literal("PasswordFile", "PasswordEnv", "CaFile"),
  message: Schema.String
}) {}

const invalid = Verdict.Reject({ code: 535, enhanced: "5.7.8", text: "Authentication credentials invalid" })
const unavailable = Verdict.Defer({ code: 454, enhanced: "4.7.0", text: "Temporary authentication failure, try again later" })

const readText = (path: string, reason: "PasswordFile" | "CaFile") =>
  Effect.tryPromise({
    try: () => readFile(path, "utf8"),
    catch: (cause) =>
      new LdapSetupError({ reason, message: `auth-ldap: cannot read ${path}: ${cause instanceof Error ? cause.message : String(cause)}` })
  })

const servicePassword = (options: Options) =>
  Effect.gen(function*() {
    if (options.bindPasswordFile !== undefined) return (yield* readText(options.bindPasswordFile, "PasswordFile")).replace(/\r?\n$/, "")
    const name = options.bindPasswordEnv!
    const value = globalThis.process?.env[name]
    if (value === undefined || value === "") {
      return yield* new LdapSetupError({ reason: "PasswordEnv", message: `auth-ldap: the environment variable ${name} (bindPasswordEnv) is not set` })
    }
    return value
  })

const ms = (input: number | string): number => Duration.toMillis(Duration.decode(input as Duration.DurationInput))

/** The hooks, made from the decoded options (see `authLdap`). */
const make = (options: Options) => {
  const timeout = ms(options.timeout)

  const auth = (ldap: Directory.Directory) => Effect.fnUntraced(function*({ session, username, password, authzid }: AuthContext) {
    // A simple bind with a DN and an empty password is an "unauthenticated bind" (RFC 4513
    // §5.1.2) that some servers answer with success: never let one reach the directory.
    if (password === "") return invalid
    // SASL PLAIN's authzid: acting for another identity is nothing a bind can grant.
    if (authzid !== undefined && authzid !== "" && authzid !== username) return invalid
    const outcome = yield* ldap.check(username, password).pipe(
      Effect.timeoutFail({ duration: timeout, onTimeout: () => new Directory.LdapError({ reason: "Timeout", message: `no answer within ${Duration.format(timeout)}` }) }),
      Effect.either
    )
    if (Either.isLeft(outcome)) {
      yield* Effect.logWarning(`auth-ldap: directory unavailable (${outcome.left.reason}): ${outcome.left.message}`).pipe(
        Effect.annotateLogs({ plugin: "auth-ldap", reason: outcome.left.reason })
      )
      return unavailable
    }
    const result = outcome.right
    switch (result._tag) {
      case "Unknown":
        return Verdict.Continue
      case "Ambiguous":
        yield* Effect.logWarning(`auth-ldap: the filter matches ${result.count} or more entries for user ${Senders.printable(username)}; refused`)
        return invalid
      case "Invalid":
        return invalid
      case "Valid": {
        const bad = Senders.grant(session.notes, username, result.senders)
        if (bad.length > 0) yield* Effect.logWarning(`auth-ldap: ${result.dn}: ignored sender values that are no address: ${bad.map(Senders.printable).join(", ")}`)
        return Verdict.accept({ identity: username })
      }
    }
  })

  return {
    setup: Effect.gen(function*() {
      const service = options.bindDn === undefined ? undefined : { dn: options.bindDn, password: yield* servicePassword(options) }
      const ca = options.caFile === undefined ? undefined : yield* readText(options.caFile, "CaFile")
      const made = yield* Directory.make({
        url: options.url.replace(/\/$/, ""),
        base: options.base,
        filter: options.filter,
        scope: options.scope,
        service,
        startTls: options.startTls,
        ca,
        senderAttributes: options.senderAttributes,
        poolSize: options.poolSize,
        connectTimeoutMs: ms(options.connectTimeout),
        timeoutMs: timeout
      })
      return { auth: auth(made) }
    })
  }
}

/**
 * Creates the plugin. A bad option is reported by `check-config` (and fails start-up) as one
 * line naming it. Its `setup` reads the password and CA files (again on each reload) and opens
 * connections lazily, so a directory that is down at start-up gives 454 to AUTH rather than a
 * failed start.
 *
 * @example
 * defineConfig({ plugins: [authLdap({ url: "ldap://127.0.0.1", base: "dc=example,dc=com", startTls: true })] })
 */
export const authLdap = definePlugin({
  name: "auth-ldap",
  options: Options,
  // Longer than the longest check timeout the options allow (1 minute), so that the check
  // answers 454 first.
  timeout: "65 seconds",
  // The pool of directory connections.
  files: (o) => ({ held: o.poolSize }),
  make
})

export default authLdap
