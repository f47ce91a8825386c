/**
 * The admin listener's part of the config: where it listens and the bearer token it requires.
 * The token comes from a file (`adminTokenFile`, `--admin-token-file`), from the environment
 * (`SMTP_BRIDGE_ADMIN_TOKEN`, read by the CLI) or from the config file (`adminToken`, e.g.
 * `process.env.X`), never from a command-line flag, which every local user can read in the
 * process list.
 *
 * @example
 * // adminTokenFile: "/run/secrets/admin-token" -> { host, port, token: "<the file's first line>" }
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Fs from "node:fs"
import * as Syntax from "./Syntax.ts"
import { expecting, FilePath, ListenAddress, optional } from "./Fields.ts"

// RFC 6750 section 2.1 b64token, at least 16 characters: what `openssl rand -hex 32` gives.
const isToken = (s: string): boolean => /^[A-Za-z0-9\-._~+/]{16,}=*$/.test(s)
const tokenPhrase = "a token of at least 16 characters from A-Z a-z 0-9 - . _ ~ + / (RFC 6750)"
const Token = Schema.String.pipe(Schema.filter(isToken)).annotations(expecting(tokenPhrase))

/** The fields this module adds to the config file's schema. */
export const fields = {
  /** Admin HTTP listener `"HOST:PORT"` serving `/metrics`, `/healthz` and `/readyz`; off by default. Keep it on a private address. */
  admin: optional(ListenAddress),
  /**
   * Bearer token the admin listener requires (RFC 6750 syntax, at least 16 characters); e.g.
   * `process.env.ADMIN_TOKEN`. The CLI also reads `SMTP_BRIDGE_ADMIN_TOKEN`. Never shown.
   */
  adminToken: optional(Token),
  /** A file whose first line is that token (`--admin-token-file`); not with `adminToken`. */
  adminTokenFile: optional(FilePath.annotations(expecting("the path of a file holding the admin bearer token")))
}

type Decoded = Schema.Struct.Type<typeof fields>
type Invalid<E> = (field: string, expected: string, got: unknown) => E

export interface AdminConfig {
  readonly host: string
  readonly port: number
  /** When set, every request needs `Authorization: Bearer <token>`. */
  readonly token?: string
}

export const resolve = <E>(input: Decoded, invalid: Invalid<E>): Effect.Effect<AdminConfig | undefined, E> =>
  Effect.gen(function*() {
    if (input.adminToken !== undefined && input.adminTokenFile !== undefined) {
      return yield* Effect.fail(invalid("adminTokenFile", "either adminToken or adminTokenFile, not both", input.adminTokenFile))
    }
    let token = input.adminToken
    if (input.adminTokenFile !== undefined) {
      const file = input.adminTokenFile
      const text = yield* Effect.try({
        try: () => Fs.readFileSync(file, "utf8"),
        catch: () => invalid("adminTokenFile", "a readable file holding the admin bearer token", file)
      })
      // The file's content is never echoed: only whether it fits.
      token = text.replace(/\r?\n$/, "")
      if (!isToken(token)) return yield* Effect.fail(invalid("adminTokenFile", `a file holding ${tokenPhrase} on one line`, file))
    }
    if (input.admin === undefined) return undefined
    const { host, port } = Syntax.parseHostPort(input.admin)!
    return token === undefined ? { host, port } : { host, port, token }
  })
