/**
 * The `auth` field: the authentication backends, in the order they run. Each entry is an object
 * `{ type, ...options }` whose options are the plugin's own schema (`plugins/auth-<type>/options.ts`),
 * or a backend URL as `--auth` takes it:
 *
 * - `dovecot:///run/dovecot/auth-client` (a unix socket) or `dovecot://127.0.0.1:12345` (TCP);
 * - `ldap://host[:port]/BASE?ATTR?SCOPE?FILTER` or `ldaps://...`, the RFC 4516 shape: the entry is
 *   searched below BASE with `(ATTR=<user>)` (and'ed with FILTER); the bind options and a filter of
 *   one's own go in the config file's `{ type: "ldap" }` entry, which the URL completes;
 * - `http://...` or `https://...` (the HTTP backend).
 *
 * The decoded entry keeps the options as written, checked: the plugin decodes them again when the
 * server starts (`definePlugin`), so a reload reads files and variables afresh.
 *
 * @example
 * Schema.decodeUnknownSync(Backend)("ldap://127.0.0.1/dc=example,dc=com?uid")
 * // { type: "ldap", options: { url: "ldap://127.0.0.1", base: "dc=example,dc=com", filter: "(uid=%s)" } }
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Dovecot from "../../plugins/auth-dovecot/options.ts"
import * as Http from "../../plugins/auth-http/options.ts"
import * as Ldap from "../../plugins/auth-ldap/options.ts"
import * as OAuth from "../../plugins/auth-oauth/options.ts"
import { expecting, FilePath, PositiveInt, ShutdownTimeout, Timeout, withDefault } from "./Fields.ts"

const Htpasswd = Schema.Struct({
  /** The htpasswd file (bcrypt), as `users` names it. */
  file: FilePath
})

export type Backend =
  | { readonly type: "htpasswd"; readonly options: typeof Htpasswd.Encoded }
  | { readonly type: "ldap"; readonly options: Ldap.OptionsInput }
  | { readonly type: "http"; readonly options: Http.OptionsInput }
  | { readonly type: "dovecot"; readonly options: Dovecot.OptionsInput }
  | { readonly type: "oauth"; readonly options: OAuth.OptionsInput }

export type BackendType = Backend["type"]

/**
 * What a config file writes for one backend: a URL, or the type and the plugin's options. Every
 * option is optional here because `--auth URL` may complete the entry (the LDAP URL gives `url`
 * and `base`); the schema checks the complete entry.
 */
export type BackendInput =
  | string
  | { readonly [T in BackendType]: { readonly type: T; readonly url?: string } & Partial<Extract<Backend, { type: T }>["options"]> }[BackendType]

/** Each type's options schema; the entry's other keys are checked with it. */
const schemas: { readonly [T in BackendType]: Schema.Schema<unknown, unknown, never> } = {
  htpasswd: Htpasswd as Schema.Schema<unknown, unknown, never>,
  ldap: Ldap.Options as Schema.Schema<unknown, unknown, never>,
  http: Http.Options as Schema.Schema<unknown, unknown, never>,
  dovecot: Dovecot.Options as Schema.Schema<unknown, unknown, never>,
  oauth: OAuth.Options as Schema.Schema<unknown, unknown, never>
}
export const types = Object.keys(schemas) as ReadonlyArray<BackendType>

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

const percentDecode = (text: string): string | undefined => {
  try {
    return decodeURIComponent(text)
  } catch {
    return undefined
  }
}

/** The backend type a URL's scheme chooses, if any. */
export const typeOfUrl = (text: string): BackendType | undefined => {
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(text)?.[1]?.toLowerCase()
  return scheme === "dovecot" ? "dovecot" : scheme === "ldap" || scheme === "ldaps" ? "ldap" : scheme === "http" || scheme === "https" ? "http" : undefined
}

const dovecotUrl = (text: string): Either.Either<Record<string, unknown>, string> => {
  // `dovecot:///path`: an empty authority and the socket's absolute path.
  if (text.startsWith("dovecot:///") || text.startsWith("DOVECOT:///")) {
    const path = percentDecode(text.slice("dovecot://".length).replace(/[?#][\s\S]*$/, ""))
    if (/[?#]/.test(text)) return Either.left("dovecot:///PATH takes no query or fragment")
    return path === undefined || path === "/" ? Either.left("dovecot:///PATH needs the socket's path") : Either.right({ path })
  }
  const m = /^dovecot:\/\/(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})\/?$/i.exec(text)
  if (m === null) return Either.left("dovecot:///PATH (a unix socket) or dovecot://HOST:PORT, without user, password or query")
  return Either.right({ host: m[1]!.replace(/^\[|\]$/g, ""), port: Number(m[2]) })
}

/**
 * `ldap[s]://host[:port]/dn?attributes?scope?filter` (RFC 4516 §2): the host part becomes `url`,
 * the dn `base`, the first attribute the user's (`(ATTR=%s)`), the scope `scope`, the filter an
 * extra condition. The URL has no place for a bind password, so user info is refused.
 */
export const ldapUrl = (text: string): Either.Either<Record<string, unknown>, string> => {
  const m = /^(ldaps?):\/\/([^/?#]*)(?:\/([^?#]*)(?:\?([^?#]*)(?:\?([^?#]*)(?:\?([^?#]*)(?:\?([^#]*))?)?)?)?)?$/i.exec(text)
  if (m === null) return Either.left("ldap://HOST[:PORT]/BASE?ATTR (RFC 4516)")
  const [, scheme, host = "", dn, attributes, scope, filter, extensions] = m
  if (host.includes("@")) return Either.left("an LDAP URL without user or password (the bind options go in the config file)")
  if (host === "") return Either.left("an LDAP URL with a host")
  if (extensions !== undefined && extensions !== "") return Either.left("an LDAP URL without extensions")
  const out: Record<string, unknown> = { url: `${scheme!.toLowerCase()}://${host}` }
  const base = dn === undefined || dn === "" ? undefined : percentDecode(dn)
  if (dn !== undefined && dn !== "" && base === undefined) return Either.left("an LDAP URL whose base DN is percent-encoded correctly")
  if (base !== undefined) out.base = base
  const attribute = (attributes ?? "").split(",")[0] ?? ""
  if (attribute !== "" && !/^[A-Za-z][A-Za-z0-9-]*$/.test(attribute)) return Either.left("an LDAP URL whose attribute is a name like uid or mail")
  const extra = filter === undefined || filter === "" ? undefined : percentDecode(filter)
  if (extra !== undefined && !(extra.startsWith("(") && extra.endsWith(")"))) return Either.left("an LDAP URL whose filter is in parentheses")
  if (attribute !== "") out.filter = extra === undefined ? `(${attribute}=%s)` : `(&${extra}(${attribute}=%s))`
  if (scope !== undefined && scope !== "") {
    if (scope !== "sub" && scope !== "one") return Either.left("an LDAP URL whose scope is sub or one")
    out.scope = scope
  }
  return Either.right(out)
}

/** A backend URL as an entry object (`{ type, ...options }`), or why it is none. */
export const fromUrl = (text: string): Either.Either<Record<string, unknown>, string> => {
  const type = typeOfUrl(text)
  if (type === "dovecot") return Either.map(dovecotUrl(text), (o) => ({ type, ...o }))
  if (type === "ldap") return Either.map(ldapUrl(text), (o) => ({ type, ...o }))
  if (type === "http") return Either.right({ type, url: text })
  return Either.left("a backend URL: dovecot:///PATH, dovecot://HOST:PORT, ldap[s]://HOST/BASE?ATTR or http[s]://...")
}

/**
 * An object entry with a URL its type reads differently: a dovecot `url` becomes `path` or
 * `host`/`port`, an LDAP `url` with a path gives `base`, `filter` and `scope` (the entry's own
 * `filter` and `scope` win: "filter options in the config file").
 */
const expand = (entry: Record<string, unknown>): Either.Either<Record<string, unknown>, string> => {
  const { url } = entry
  if (typeof url !== "string") return Either.right(entry)
  if (entry.type === "dovecot") {
    const { url: _url, path: _path, host: _host, port: _port, ...rest } = entry
    return Either.map(dovecotUrl(url), (o) => ({ ...rest, ...o }))
  }
  if (entry.type === "ldap" && /^ldaps?:\/\/[^/?#]*[/?]./i.test(url)) {
    return Either.map(ldapUrl(url), (o) => ({ ...o, ...entry, url: o.url }))
  }
  return Either.right(entry)
}

const Decoded = Schema.declare((u: unknown): u is Backend => isRecord(u) && typeof u.type === "string" && (types as ReadonlyArray<string>).includes(u.type))

const phrase = "an auth backend"

/** One entry of `auth`: a URL or `{ type, ...options }`, checked with the type's options schema. */
export const Backend = Schema.transformOrFail(Schema.Unknown as Schema.Schema<BackendInput>, Decoded, {
  strict: true,
  decode: (input, _, ast) =>
    Effect.gen(function*() {
      const fail = (message: string) => ParseResult.fail(new ParseResult.Type(ast, input, message))
      const object = typeof input === "string" ? fromUrl(input) : isRecord(input) ? Either.right(input) : Either.left("")
      if (Either.isLeft(object)) return yield* fail(object.left === "" ? "{ type, ...options } or a backend URL" : object.left)
      const { type } = object.right
      if (typeof type !== "string" || !(types as ReadonlyArray<string>).includes(type)) {
        return yield* ParseResult.fail(
          new ParseResult.Pointer("type", input, new ParseResult.Type(Schema.Literal(...types).ast, type, `one of ${types.join(", ")}`))
        )
      }
      const expanded = expand(object.right)
      if (Either.isLeft(expanded)) {
        return yield* ParseResult.fail(new ParseResult.Pointer("url", input, new ParseResult.Type(ast, object.right.url, expanded.left)))
      }
      const { type: _type, ...options } = expanded.right
      yield* ParseResult.decodeUnknown(schemas[type as BackendType])(options, { onExcessProperty: "error" })
      return { type, options } as Backend
    }),
  encode: (backend) => ParseResult.succeed({ type: backend.type, ...backend.options } as BackendInput)
}).annotations(expecting(phrase))

/** How a backend is named in the start-up line, `check-config` and metrics: never a secret. */
export const describe = (backend: Backend, redactUrl: (url: string) => string): string => {
  switch (backend.type) {
    case "htpasswd":
      return `htpasswd ${backend.options.file}`
    case "ldap":
      return `ldap ${backend.options.url} base ${backend.options.base}`
    case "http":
      return `http ${redactUrl(backend.options.url)}`
    case "dovecot":
      return backend.options.path !== undefined ? `dovecot unix:${backend.options.path}` : `dovecot ${backend.options.host}:${backend.options.port}`
    case "oauth":
      return `oauth ${redactUrl(backend.options.jwksUrl)} issuer ${backend.options.issuer}`
  }
}

/**
 * The result cache in front of the password backends (as Dovecot's auth cache): off unless given.
 * Entries are keyed by a keyed hash of the user and the password, so another password never
 * answers from the cache; `ttl` bounds how long an old password keeps working after a change.
 */
export const Cache = Schema.Struct({
  /** How long an accepted user and password are accepted without asking the backend; default `"1 minute"`. */
  ttl: withDefault(Timeout, () => Duration.minutes(1)),
  /** How long a refused (or unknown) user and password are refused without asking; default `"10 seconds"`, `0` for never. */
  negativeTtl: withDefault(ShutdownTimeout, () => Duration.seconds(10)),
  /** Entries kept per backend and kind (accepted, refused); the oldest go first; default 10000. */
  maxEntries: withDefault(PositiveInt, () => 10_000)
}).annotations(expecting("{ ttl?, negativeTtl?, maxEntries? }"))

/**
 * The `auth` of the flags over the config file's: the flags name the backends and their order
 * (the file's list is replaced, as `--listen` replaces `listen`), but each flag's backend keeps
 * the options of the file's first entry of its type — the LDAP bind and filter, the HTTP secret,
 * the OAuth identity claim — with what the flag says on top (a URL's base DN replaces the file's).
 */
export const mergeFlags = (file: unknown, flags: ReadonlyArray<unknown>): ReadonlyArray<unknown> => {
  const entries = Array.isArray(file) ? file.filter(isRecord) : []
  const used = new Set<Record<string, unknown>>()
  return flags.map((flag) => {
    const type = typeof flag === "string" ? typeOfUrl(flag) : isRecord(flag) ? flag.type : undefined
    const base = entries.find((e) => e.type === type && !used.has(e))
    if (base === undefined) return flag
    used.add(base)
    if (isRecord(flag)) return { ...base, ...flag }
    if (typeof flag !== "string") return flag
    const { base: fileBase, ...rest } = base
    const replacesBase = type === "ldap" && /^ldaps?:\/\/[^/?#]*\/[^?#]/i.test(flag)
    return { ...rest, ...(replacesBase || fileBase === undefined ? {} : { base: fileBase }), url: flag }
  })
}
