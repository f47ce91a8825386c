/**
 * Every file the config names, loaded and checked before anything starts: the TLS certificate
 * and key (each parses, and the key is the certificate's), the users file, the DKIM and ARC keys,
 * relays' CA files.
 * `check-config` and `serve` (at start-up and on reload) run it, so that a missing or swapped
 * file is one line naming the field and the file (exit 2) instead of an OpenSSL error naming
 * neither when the first client arrives.
 *
 * @example
 * const { users } = yield* Files.check(config) // users: how many entries the users file has
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Crypto from "node:crypto"
import { readFile } from "node:fs/promises"
import { parseHtpasswd } from "../../plugins/auth-htpasswd/index.ts"
import type { BridgeConfig } from "../config/Config.ts"
import { ConfigError } from "../config/Resolve.ts"
import * as Keys from "../dkim/Keys.ts"
import * as Url from "../transport/smtp/Url.ts"

const reasonOf = (error: unknown): string =>
  (error instanceof Error ? error.message : String(error)).split("\n")[0]!.replace(/^error:[0-9A-Fa-f]+:/, "").trim()

const invalid = (field: string, file: string, expected: string, detail: string): ConfigError =>
  new ConfigError({ reason: "Invalid", field, expected, source: file, message: `Invalid config: ${field}: ${file}: ${detail}` })

const read = (field: string, file: string, expected: string): Effect.Effect<string, ConfigError> =>
  Effect.tryPromise({
    try: () => readFile(file, "utf8"),
    catch: (error) => invalid(field, file, expected, `cannot read it (${reasonOf(error)})`)
  })

/** Runs `parse`; a throw becomes a ConfigError naming the field and the file (never the content). */
const parsed = <A>(field: string, file: string, expected: string, parse: () => A): Effect.Effect<A, ConfigError> =>
  Effect.try({ try: parse, catch: (error) => invalid(field, file, expected, `${expected} expected (${reasonOf(error)})`) })

const tls = (cert: string, key: string) =>
  Effect.gen(function*() {
    const certificate = yield* read("tls.cert", cert, "a PEM certificate")
    const privateKey = yield* read("tls.key", key, "a PEM private key")
    const x509 = yield* parsed("tls.cert", cert, "a PEM certificate", () => new Crypto.X509Certificate(certificate))
    const keyObject = yield* parsed("tls.key", key, "a PEM private key", () => Crypto.createPrivateKey(privateKey))
    if (!x509.checkPrivateKey(keyObject)) {
      return yield* invalid("tls.key", key, "the private key of tls.cert", `is not the private key of the certificate in ${cert} (tls.cert)`)
    }
  })

const users = (file: string, field = "users") =>
  Effect.gen(function*() {
    const text = yield* read(field, file, "an htpasswd file of bcrypt entries")
    return yield* Either.match(parseHtpasswd(text, file), {
      // The parser's message already names the file and the line.
      onLeft: (error) => Effect.fail(new ConfigError({ reason: "Invalid", field, expected: "an htpasswd file of bcrypt entries", source: file, message: `Invalid config: ${field}: ${error.message}` })),
      onRight: (entries) => Effect.succeed(entries.size)
    })
  })

/** A DKIM or ARC key given as a file or inline; inline keys are named by field only. */
const signingKey = (field: string, options: { readonly keyFile?: string | undefined; readonly privateKey?: string | undefined }) =>
  Effect.gen(function*() {
    const expected = "a PEM RSA or Ed25519 private key"
    if (options.privateKey !== undefined) {
      return yield* parsed(`${field}.privateKey`, "(inline)", expected, () => Keys.privateKeyOf(options.privateKey!))
    }
    if (options.keyFile === undefined) return
    const pem = yield* read(`${field}.keyFile`, options.keyFile, expected)
    yield* parsed(`${field}.keyFile`, options.keyFile, expected, () => Keys.privateKeyOf(pem))
  })

/** A relay's CA file (the config's `ca`, else the URL's `ca=`) holds a certificate. */
const relayCa = (name: string, transport: BridgeConfig["transports"][string]) =>
  Effect.gen(function*() {
    if (transport.type !== "smtp" && transport.type !== "lmtp") return
    const fromUrl = Either.getOrUndefined(Url.parse(transport.url))?.caFile
    const file = transport.ca ?? fromUrl
    if (file === undefined) return
    const field = transport.ca !== undefined ? `transports.${name}.tls.ca` : `transports.${name}.url (ca=)`
    const pem = yield* read(field, file, "a PEM CA certificate")
    yield* parsed(field, file, "a PEM CA certificate", () => new Crypto.X509Certificate(pem))
  })

/** Loads and checks every file the config names; gives the users file's entry count. */
export const check = (config: BridgeConfig): Effect.Effect<{ readonly users: number | undefined }, ConfigError> =>
  Effect.gen(function*() {
    if (config.tls !== undefined) yield* tls(config.tls.cert, config.tls.key)
    let count = config.users === undefined ? undefined : yield* users(config.users)
    // The htpasswd backends of `auth` too: their users count with the file's.
    for (const [i, backend] of config.auth.entries()) {
      if (backend.type === "htpasswd") count = (count ?? 0) + (yield* users(backend.options.file, `auth[${i}].file`))
    }
    const dkim = config.dkimSign?.keys ?? []
    for (let i = 0; i < dkim.length; i++) yield* signingKey(`dkimSign.keys[${i}]`, dkim[i]!)
    if (config.arcSeal !== undefined) yield* signingKey("arcSeal", config.arcSeal)
    for (const [name, transport] of Object.entries(config.transports)) yield* relayCa(name, transport)
    return { users: count }
  })
