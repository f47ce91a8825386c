/**
 * auth-htpasswd: checks AUTH PLAIN / LOGIN credentials against an Apache-style htpasswd file of
 * bcrypt hashes (`htpasswd -nbB user password`, or `smtp-bridge hash-password`).
 *
 * @example
 * import { authHtpasswd } from "./plugins/auth-htpasswd/index.ts"
 * authHtpasswd({ file: "/etc/smtp-bridge/users.htpasswd" })
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import { readFile } from "node:fs/promises"
import { definePlugin, Password, Verdict } from "../../src/index.ts"
import type { Plugin } from "../../src/index.ts"

export interface AuthHtpasswdOptions {
  /** Path of the htpasswd file; read when the server starts and again on each reload (SIGHUP re-runs `setup`). */
  readonly file: string
}

/** The htpasswd file could not be read (`Read`) or holds a line that is not `user:bcrypt-hash` (`Format`). */
export class HtpasswdError extends Schema.TaggedError<HtpasswdError>()("HtpasswdError", {
  reason: Schema.Literal("Read", "Format"),
  file: Schema.String,
  line: Schema.optional(Schema.Number),
  message: Schema.String
}) {}

/** User name to bcrypt hash, as the file lists them. */
export type Users = ReadonlyMap<string, string>

// `$2y$` (Apache, PHP), `$2a$` and `$2b$` (OpenBSD, bcryptjs) are the same algorithm for every
// password shorter than 256 bytes; bcryptjs checks all three.
const BCRYPT = /^\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$/

const costOf = (hash: string): number => Number(hash.slice(4, 6))

/**
 * Parses htpasswd text: `user:hash` lines, blank lines and `#` comments ignored. Fails on the
 * first line that is not a bcrypt entry, naming the file and the line; the CLI's `check-config`
 * uses it to report a bad file before the server starts.
 *
 * @example
 * parseHtpasswd("alice:$2y$05$...\n", "users.htpasswd") // Either.right(Map { "alice" => "$2y$05$..." })
 */
export const parseHtpasswd = (text: string, file: string): Either.Either<Users, HtpasswdError> => {
  const users = new Map<string, string>()
  const lines = text.split("\n")
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, "").trim()
    if (line === "" || line.startsWith("#")) continue
    const fail = (why: string) =>
      Either.left(new HtpasswdError({ reason: "Format", file, line: i + 1, message: `${file}:${i + 1}: ${why}` }))
    const colon = line.indexOf(":")
    if (colon <= 0) return fail("expected user:hash")
    const user = line.slice(0, colon)
    const hash = line.slice(colon + 1)
    if (!BCRYPT.test(hash)) {
      return fail(
        `unsupported password hash for user ${JSON.stringify(user)}; only bcrypt ($2y$, $2a$, $2b$) is ` +
          `supported (create entries with \`htpasswd -nbB user password\` or \`smtp-bridge hash-password\`)`
      )
    }
    // Two entries for one user would make the effective password depend on file order.
    if (users.has(user)) return fail(`user ${JSON.stringify(user)} is listed twice`)
    users.set(user, hash)
  }
  return Either.right(users)
}

/**
 * Hashes a password for an htpasswd file, as a `$2y$` bcrypt hash (the prefix Apache's
 * `htpasswd -B` writes; bcrypt libraries produce `$2b$`, the same algorithm). `cost` is bcrypt's
 * log2 of rounds, 4 to 31, default 10. Rejects a password over 72 UTF-8 bytes: bcrypt would
 * ignore the rest, so `correct horse battery staple...X` and `...Y` would be one password.
 * The work runs off the event loop (`Password`).
 *
 * @example
 * const line = `alice:${await hashPassword("s3cret")}` // "alice:$2y$10$..."
 */
export const hashPassword = async (password: string, cost = 10): Promise<string> => {
  if (!Number.isInteger(cost) || cost < 4 || cost > 31) {
    throw new RangeError(`bcrypt cost must be an integer from 4 to 31, got ${cost}`)
  }
  const bytes = Password.byteLength(password)
  if (bytes > Password.maxBytes) {
    throw new RangeError(
      `the password is ${bytes} bytes long, but bcrypt uses only the first ${Password.maxBytes} and would silently ignore the rest; ` +
        `choose a password of at most ${Password.maxBytes} bytes (UTF-8)`
    )
  }
  const hash = await Password.hash(password, cost)
  return `$2y$${hash.slice(4)}`
}

interface State {
  readonly users: Users
  /** Compared against when the user is unknown, so that both failures take the same time. */
  readonly dummy: string
}

// The most common cost in the file: an unknown user then costs what most real users cost.
const usualCost = (users: Users): number => {
  const counts = new Map<number, number>()
  for (const hash of users.values()) counts.set(costOf(hash), (counts.get(costOf(hash)) ?? 0) + 1)
  let best = 10
  let bestCount = 0
  for (const [cost, count] of counts) {
    if (count > bestCount || (count === bestCount && cost > best)) {
      best = cost
      bestCount = count
    }
  }
  return best
}

const load = (file: string): Effect.Effect<State, HtpasswdError> =>
  Effect.gen(function*() {
    const text = yield* Effect.tryPromise({
      try: () => readFile(file, "utf8"),
      catch: (cause) =>
        new HtpasswdError({
          reason: "Read",
          file,
          message: `cannot read htpasswd file ${file}: ${cause instanceof Error ? cause.message : String(cause)}`
        })
    })
    const users = yield* parseHtpasswd(text, file)
    const dummy = yield* Effect.promise(() => hashPassword("smtp-bridge: no such user", usualCost(users)))
    return { users, dummy }
  })

// A rejection here is a bug or a corrupt hash, not a wrong password: it fails the hook (451 4.3.0).
// The signal aborts when the hook is interrupted (its timeout): a check still queued then never runs.
const compare = (password: string, hash: string) =>
  Effect.tryPromise({
    try: (signal) => Password.verify(password, hash, signal),
    catch: (cause) => new Error(`bcrypt compare failed: ${cause instanceof Error ? cause.message : String(cause)}`)
  })

const invalid = Verdict.Reject({ code: 535, enhanced: "5.7.8", text: "Authentication credentials invalid" })

/**
 * Creates the plugin. Its `setup` reads the file when the server starts and fails, naming the
 * file and line, when an entry is not bcrypt. User names are case-sensitive, as in Apache.
 *
 * @example
 * defineConfig({ plugins: [authHtpasswd({ file: "./users.htpasswd" })] })
 */
export const authHtpasswd = (options: AuthHtpasswdOptions): Plugin =>
  definePlugin({
    name: "auth-htpasswd",
    setup: Effect.gen(function*() {
      // One place holds the user map, so that a later reload only has to set this Ref.
      const state = yield* Ref.make(yield* load(options.file))
      return {
        auth: Effect.fnUntraced(function*({ username, password, authzid }) {
          // Over 72 bytes bcrypt would check a prefix only (and Bun pre-hashes instead): such a
          // password never authenticates, as `hashPassword` never makes a hash for one.
          if (Password.byteLength(password) > Password.maxBytes) return invalid
          const { users, dummy } = yield* Ref.get(state)
          const hash = users.get(username)
          const ok = yield* compare(password, hash ?? dummy)
          // Acting for another identity (SASL PLAIN authzid) is not something this file can grant.
          const actsForOther = authzid !== undefined && authzid !== "" && authzid !== username
          // A user not in the file is another backend's to decide (auth-ldap, auth-http listed
          // after this one); when none knows them the bridge answers 535 5.7.8 itself.
          if (hash === undefined) return Verdict.Continue
          return ok && !actsForOther ? Verdict.accept({ identity: username }) : invalid
        })
      }
    })
  })

export default authHtpasswd
