/**
 * Validates a `ConfigInput` (from a config file, flags, or both merged) and fills in the safe
 * defaults, giving the `BridgeConfig` the server runs with. The first problem found is reported as
 * one line that names the field, what it expects and what it got.
 *
 * @example
 * const config = yield* Resolve.resolve({ limits: { maxRecipients: 50 } }, "smtp-bridge.config.ts")
 * // Resolve.resolve({ limits: { maxRecipients: -1 } }, "flags") fails with
 * // "Invalid config: limits.maxRecipients: expected a positive integer, got -1 (flags)"
 */
import { type Array as Arr, Duration, Effect, type ParseResult, Schema, SchemaAST } from "effect"
import * as Os from "node:os"
import { hookNames, type Plugin } from "../pipeline/Plugin.ts"
import type { BridgeConfig, ListenerConfig } from "./Config.ts"
import { type RateLimitOptions, validate as validateRateLimit } from "../../plugins/rate-limit/index.ts"
import type { ArcSealOptions } from "../../plugins/arc-seal/index.ts"
import type { DkimSignOptions } from "../../plugins/dkim-sign/index.ts"
import type { MailauthVerifyOptions } from "../../plugins/mailauth-verify/index.ts"
import * as Udp from "../dns/Udp.ts"
import * as Redact from "../util/Redact.ts"
import * as AdminConfig from "./Admin.ts"
import * as Delivery from "./Delivery.ts"
import * as Telemetry from "./Telemetry.ts"
import * as Syntax from "./Syntax.ts"
import { Bool, Cidr, FilePath, Hostname, LineLength, ListenAddress, MessageSize, PositiveInt, PrefixLength, SenderPattern, ShutdownTimeout, SpillSize, Timeout, decodeDuration, expectedOf, expecting, list, optional } from "./Fields.ts"

export class ConfigError extends Schema.TaggedError<ConfigError>()("ConfigError", {
  /** `Invalid`: a value is wrong; `Unreadable`: the config file could not be imported. */
  reason: Schema.Literal("Invalid", "Unreadable"),
  /** Dotted path of the offending field (`limits.maxRecipients`, `trust[1]`), or `config`. */
  field: Schema.String,
  expected: Schema.String,
  /** Where the value came from: the config file's path, `flags`, or both. */
  source: Schema.String,
  /** One line, fit for stderr: `Invalid config: <field>: expected <what>, got <value> (<source>)`. */
  message: Schema.String
}) {}

// ---------------------------------------------------------------------------------------------
// Schema: each checked value carries the human phrase for what it expects, read back from the
// parse issue so that messages stay in the config's vocabulary, not the schema's.



const isPlugin = (u: unknown): u is Plugin => {
  if (typeof u !== "object" || u === null || Array.isArray(u)) return false
  const record = u as Record<string, unknown>
  return typeof record.name === "string" && record.name.length > 0 &&
    hookNames.every((hook) => record[hook] === undefined || typeof record[hook] === "function")
}
const PluginSchema = Schema.declare(isPlugin).annotations(
  expecting("a plugin: an object with a string name and function hooks, as definePlugin returns")
)

const LimitsSchema = Schema.Struct({
  maxMessageSize: optional(MessageSize),
  maxRecipients: optional(PositiveInt),
  maxLineLength: optional(LineLength),
  maxConnections: optional(PositiveInt),
  maxConnectionsPerIp: optional(PositiveInt),
  maxConnectionsPerNetwork: optional(PositiveInt),
  ipv4NetworkPrefix: optional(PrefixLength(32)),
  ipv6NetworkPrefix: optional(PrefixLength(128)),
  maxInvalidCommands: optional(PositiveInt),
  maxAuthFailures: optional(PositiveInt),
  greetingTimeout: optional(Timeout),
  idleTimeout: optional(Timeout),
  commandTimeout: optional(Timeout),
  dataTimeout: optional(Timeout),
  transferTimeout: optional(Timeout),
  spillThreshold: optional(SpillSize)
}).annotations(expecting("an object of limits"))

const TlsSchema = Schema.Struct({ cert: FilePath, key: FilePath }).annotations(
  expecting("{ cert, key } with the paths of PEM files")
)

/** Plugin options are checked by the plugin itself when the bridge starts; here only their shape. */
const pluginOptions = (phrase: string) =>
  Schema.declare((u: unknown): u is Record<string, never> => typeof u === "object" && u !== null && !Array.isArray(u))
    .annotations(expecting(phrase))

const InputSchema = Schema.Struct({
  hostname: optional(Hostname),
  listen: optional(list(ListenAddress, "HOST:PORT strings")),
  listenTls: optional(list(ListenAddress, "HOST:PORT strings")),
  tls: optional(TlsSchema),
  allowInsecureAuth: optional(Bool),
  users: optional(FilePath),
  trust: optional(list(Cidr, "CIDR strings like 10.0.0.0/8")),
  proxyProtocol: optional(list(Cidr, "CIDR strings like 10.0.0.0/8")),
  senders: optional(
    Schema.Record({ key: Schema.String, value: list(SenderPattern, "addresses or @domains") }).annotations(
      expecting("an object mapping user names to arrays of addresses")
    )
  ),
  forgedFrom: optional(Schema.Literal("reject", "unsigned").annotations(expecting("\"reject\" or \"unsigned\""))),
  maildir: optional(FilePath.annotations(expecting("a directory path"))),
  bareLineEndings: optional(Schema.Literal("normalize", "reject").annotations(expecting("\"normalize\" or \"reject\""))),
  limits: optional(LimitsSchema),
  shutdownTimeout: optional(ShutdownTimeout),
  tempDir: optional(FilePath.annotations(expecting("a directory path"))),
  plugins: optional(list(PluginSchema, "plugins")),
  dns: optional(Schema.Struct({
    servers: optional(list(Schema.String.pipe(Schema.filter((s) => Udp.parseServer(s) !== undefined))
      .annotations(expecting("a DNS server as host, host:port or [v6]:port")), "DNS servers")),
    timeoutMs: optional(PositiveInt),
    attempts: optional(PositiveInt),
    cache: optional(Schema.Struct({
      maxEntries: optional(PositiveInt),
      minTtl: optional(Schema.Number),
      maxTtl: optional(Schema.Number),
      maxNegativeTtl: optional(Schema.Number)
    }))
  }).annotations(expecting("{ servers?, timeoutMs?, attempts?, cache? }"))),
  verify: optional(Schema.Union(Bool, pluginOptions("mailauth-verify options: { policy?, skipAuthenticated?, ... }"))),
  dkimSign: optional(pluginOptions("dkim-sign options: { keys: [{ domain, selector, keyFile }] }")),
  arcSeal: optional(pluginOptions("arc-seal options: { domain, selector, keyFile }")),
  rateLimit: optional(Schema.declare((u: unknown): u is RateLimitOptions => typeof u === "object" && u !== null && !Array.isArray(u))
    .annotations(expecting("rate-limit options: { perIp?, perUser?, limits?, redis?, ... }"))),
  ...AdminConfig.fields,
  logFormat: optional(Schema.Literal("json", "pretty").annotations(expecting("\"json\" or \"pretty\""))),
  watchConfig: optional(Bool),
  ...Delivery.fields,
  ...Telemetry.fields
}).annotations(expecting("an object (the config file's default export)"))

type Decoded = typeof InputSchema.Type

// ---------------------------------------------------------------------------------------------
// Errors

const describe = (value: unknown): string => {
  if (value === undefined) return "nothing"
  if (typeof value === "string") return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value)
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") return String(value)
  if (value === null) return "null"
  if (Array.isArray(value)) return value.length === 0 ? "an empty list" : "an array"
  if (typeof value === "function") return "a function"
  return "an object"
}

const formatPath = (path: ReadonlyArray<PropertyKey>): string => {
  let out = ""
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`
    else if (typeof key === "string" && /^[A-Za-z_$][\w$]*$/.test(key)) out += out === "" ? key : `.${key}`
    else out += `[${JSON.stringify(String(key))}]`
  }
  return out === "" ? "config" : out
}

/** Where the value of a field came from (a file path or `flags`), for the message. */
type SourceOf = (field: string) => string

/** A ConfigError for one field, with the message every caller prints. */
const invalid = (field: string, expected: string, value: unknown, sourceOf: SourceOf): ConfigError => {
  const source = sourceOf(field)
  // Error lines end up in logs: never print a secret or a URL's credentials, path or query.
  const got = Redact.value(field, value)
  return new ConfigError({
    reason: "Invalid",
    field,
    expected,
    source,
    message: `Invalid config: ${field}: expected ${expected}, got ${describe(got)}${source === "" ? "" : ` (${source})`}`
  })
}

const isNonEmptyArray = <A>(u: A | Arr.NonEmptyReadonlyArray<A>): u is Arr.NonEmptyReadonlyArray<A> => Array.isArray(u)

/** Follows the first parse issue down to its leaf, collecting the path and the innermost field's phrase. */
const fromIssue = (issue: ParseResult.ParseIssue, sourceOf: SourceOf): ConfigError => {
  const path: Array<PropertyKey> = []
  let expected: string | undefined
  let known: ReadonlyArray<string> = []
  let current: ParseResult.ParseIssue = issue
  for (;;) {
    if ("ast" in current) {
      expected ??= expectedOf(current.ast)
      const ast: SchemaAST.Annotated = current.ast
      if (ast instanceof SchemaAST.TypeLiteral) known = ast.propertySignatures.map((p) => String(p.name))
    }
    switch (current._tag) {
      case "Pointer": {
        const keys: ReadonlyArray<PropertyKey> = typeof current.path === "object" ? current.path : [current.path]
        path.push(...keys)
        expected = undefined
        current = current.issue
        break
      }
      case "Composite":
        current = isNonEmptyArray(current.issues) ? current.issues[0] : current.issues
        break
      case "Refinement":
      case "Transformation":
        current = current.issue
        break
      case "Unexpected": {
        const field = formatPath(path)
        const source = sourceOf(field)
        const options = `one of ${known.join(", ")}`
        return new ConfigError({
          reason: "Invalid",
          field,
          expected: options,
          source,
          message: `Invalid config: ${field}: unknown option, expected ${options}${source === "" ? "" : ` (${source})`}`
        })
      }
      case "Missing":
        // Its ast is the property signature; the phrase sits on the property's type.
        return invalid(formatPath(path), expected ?? expectedOf(current.ast.type) ?? "a value", undefined, sourceOf)
      default: {
        // A filter that says what is wrong (a relay URL's parameter) adds it to the phrase.
        const detail = current._tag === "Type" && typeof current.message === "string" ? current.message : undefined
        const phrase = expected ?? "a valid value"
        return invalid(formatPath(path), detail === undefined ? phrase : `${phrase} (${detail})`, current.actual, sourceOf)
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Checks across fields, then defaults

const listeners = (input: Decoded, source: SourceOf): Effect.Effect<ReadonlyArray<ListenerConfig>, ConfigError> => {
  // The default listener only applies when the user named none: someone who lists a TLS port
  // alone does not expect an extra plain one.
  const plain = input.listen ?? (input.listenTls === undefined ? ["127.0.0.1:2525"] : [])
  const implicit = input.listenTls ?? []
  const out: Array<ListenerConfig> = []
  const seen = new Set<string>()
  const entries = [
    ...plain.map((address, i) => ({ address, field: `listen[${i}]`, mode: "plain" as const })),
    ...implicit.map((address, i) => ({ address, field: `listenTls[${i}]`, mode: "implicit" as const }))
  ]
  for (const { address, field, mode } of entries) {
    const { host, port } = Syntax.parseHostPort(address)!
    const key = `${host.toLowerCase()}:${port}`
    if (port !== 0 && seen.has(key)) {
      return Effect.fail(invalid(field, "an address no other listener uses", address, source))
    }
    seen.add(key)
    out.push({ host, port, mode })
  }
  if (out.length === 0) return Effect.fail(invalid("listen", "at least one HOST:PORT", [], source))
  return Effect.succeed(out)
}

const checkTls = (input: Decoded, source: SourceOf): Effect.Effect<void, ConfigError> => {
  if (input.tls !== undefined) return Effect.void
  if ((input.listenTls ?? []).length > 0) {
    return Effect.fail(invalid("tls", "{ cert, key } because listenTls is set", undefined, source))
  }
  // AUTH is only offered over TLS unless insecure AUTH is allowed: a users file would go unused.
  if (input.users !== undefined && input.allowInsecureAuth !== true) {
    return Effect.fail(
      invalid("tls", "{ cert, key } so that AUTH can be offered to users (or allowInsecureAuth: true)", undefined, source)
    )
  }
  return Effect.void
}

const dkimSignOf = (options: DkimSignOptions | undefined, source: SourceOf): Effect.Effect<DkimSignOptions | undefined, ConfigError> => {
  if (options === undefined) return Effect.succeed(undefined)
  if (!Array.isArray(options.keys) || options.keys.length === 0) {
    return Effect.fail(invalid("dkimSign.keys", "at least one { domain, selector, keyFile }", options.keys, source))
  }
  for (const [i, key] of options.keys.entries()) {
    const ok = typeof key === "object" && key !== null && Syntax.isHostname(key.domain) && typeof key.selector === "string" &&
      /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(key.selector) && (Boolean(key.keyFile) || Boolean(key.privateKey))
    if (!ok) {
      return Effect.fail(invalid(`dkimSign.keys[${i}]`, "{ domain, selector, keyFile or privateKey } (flag: DOMAIN:SELECTOR:KEYFILE)", key, source))
    }
  }
  const trusted: unknown = options.trustedFrom
  if (trusted !== undefined) {
    if (typeof trusted !== "object" || trusted === null || Array.isArray(trusted)) {
      return Effect.fail(invalid("dkimSign.trustedFrom", "an object mapping CIDRs to arrays of senders", trusted, source))
    }
    for (const [network, senders] of Object.entries(trusted)) {
      const field = `dkimSign.trustedFrom[${JSON.stringify(network)}]`
      if (!Syntax.isCidr(network)) return Effect.fail(invalid(field, "a CIDR like 10.0.0.0/8 as the key (flag: CIDR=SENDER)", network, source))
      const ok = Array.isArray(senders) && senders.every((s) => typeof s === "string" && Syntax.isSenderPattern(s))
      if (!ok) return Effect.fail(invalid(field, "an array of addresses (a@example.com), domains (@example.com) or *", senders, source))
    }
  }
  return Effect.succeed(options)
}

const rateLimitOf = (options: RateLimitOptions | undefined, source: SourceOf): Effect.Effect<RateLimitOptions | undefined, ConfigError> => {
  if (options === undefined) return Effect.succeed(undefined)
  const problem = validateRateLimit(options)
  if (problem === undefined) return Effect.succeed(options)
  const from = source("rateLimit")
  return Effect.fail(new ConfigError({
    reason: "Invalid",
    field: "rateLimit",
    expected: "valid rate-limit options",
    source: from,
    message: `Invalid config: rateLimit: ${problem.replace(/^rate-limit: /, "")}${from === "" ? "" : ` (${from})`}`
  }))
}

const bytes = (input: string | number | undefined, fallback: number): number =>
  input === undefined ? fallback : Syntax.parseSize(input) ?? fallback

const time = (input: string | number | undefined, fallback: Duration.DurationInput): Duration.Duration =>
  (input === undefined ? undefined : decodeDuration(input)) ?? Duration.decode(fallback)

export const defaults = {
  listen: ["127.0.0.1:2525"],
  maildir: "./mail",
  maxMessageSize: 25 * 1024 * 1024,
  maxRecipients: 100,
  // RFC 5321 allows 512, but an AUTH PLAIN line with a long password or a SASL initial response
  // (RFC 4954 section 4) easily exceeds it; 4096 stays cheap per session.
  maxLineLength: 4096,
  maxConnections: 1000,
  maxConnectionsPerIp: 50,
  // A tenth of the slots: one /24 (or /64) of slow clients cannot hold them all.
  maxConnectionsPerNetwork: 100,
  ipv4NetworkPrefix: 24,
  ipv6NetworkPrefix: 64,
  maxInvalidCommands: 10,
  maxAuthFailures: 3,
  greetingTimeout: "30 seconds",
  idleTimeout: "5 minutes",
  // A line arrives in one packet from any real client; a minute leaves room for a person typing.
  commandTimeout: "1 minute",
  dataTimeout: "10 minutes",
  // The default 25 MB limit at about 110 kbit/s; raise it with maxMessageSize on slow links.
  transferTimeout: "30 minutes",
  spillThreshold: 256 * 1024,
  shutdownTimeout: "30 seconds"
} as const

/** Validates `input` (a `ConfigInput` or anything a config file exported) and fills in defaults. */
export const resolve = (
  input: unknown,
  source: string | ((field: string) => string)
): Effect.Effect<BridgeConfig, ConfigError> =>
  Effect.gen(function*() {
    const sourceOf = typeof source === "string" ? () => source : source
    const decoded = yield* Schema.decodeUnknown(InputSchema, { errors: "first", onExcessProperty: "error" })(input)
      .pipe(Effect.mapError((error) => fromIssue(error.issue, sourceOf)))
    yield* checkTls(decoded, sourceOf)
    const limits = decoded.limits ?? {}
    const maildir = decoded.maildir ?? defaults.maildir
    const delivery = yield* Delivery.resolve(decoded, maildir, (field, expected, got) => invalid(field, expected, got, sourceOf))
    return {
      hostname: decoded.hostname ?? Os.hostname(),
      listeners: yield* listeners(decoded, sourceOf),
      tls: decoded.tls === undefined ? undefined : { cert: decoded.tls.cert, key: decoded.tls.key },
      allowInsecureAuth: decoded.allowInsecureAuth ?? false,
      users: decoded.users,
      trust: decoded.trust ?? [],
      proxyProtocol: decoded.proxyProtocol ?? [],
      senders: decoded.senders ?? {},
      forgedFrom: decoded.forgedFrom ?? "reject",
      maildir,
      bareLineEndings: decoded.bareLineEndings ?? "normalize",
      limits: {
        maxMessageSize: bytes(limits.maxMessageSize, defaults.maxMessageSize),
        maxRecipients: limits.maxRecipients ?? defaults.maxRecipients,
        maxLineLength: limits.maxLineLength ?? defaults.maxLineLength,
        maxConnections: limits.maxConnections ?? defaults.maxConnections,
        maxConnectionsPerIp: limits.maxConnectionsPerIp ?? defaults.maxConnectionsPerIp,
        maxConnectionsPerNetwork: limits.maxConnectionsPerNetwork ?? defaults.maxConnectionsPerNetwork,
        ipv4NetworkPrefix: limits.ipv4NetworkPrefix ?? defaults.ipv4NetworkPrefix,
        ipv6NetworkPrefix: limits.ipv6NetworkPrefix ?? defaults.ipv6NetworkPrefix,
        maxInvalidCommands: limits.maxInvalidCommands ?? defaults.maxInvalidCommands,
        maxAuthFailures: limits.maxAuthFailures ?? defaults.maxAuthFailures,
        greetingTimeout: time(limits.greetingTimeout, defaults.greetingTimeout),
        idleTimeout: time(limits.idleTimeout, defaults.idleTimeout),
        commandTimeout: time(limits.commandTimeout, defaults.commandTimeout),
        dataTimeout: time(limits.dataTimeout, defaults.dataTimeout),
        transferTimeout: time(limits.transferTimeout, defaults.transferTimeout),
        spillThreshold: bytes(limits.spillThreshold, defaults.spillThreshold)
      },
      shutdownTimeout: time(decoded.shutdownTimeout, defaults.shutdownTimeout),
      tempDir: decoded.tempDir,
      plugins: decoded.plugins ?? [],
      rateLimit: yield* rateLimitOf(decoded.rateLimit, sourceOf),
      dns: decoded.dns ?? {},
      // `--verify` checks every message; a config object keeps its own skip settings.
      verify: decoded.verify === true
        ? { skipAuthenticated: false, skipTrusted: false }
        : decoded.verify === false || decoded.verify === undefined
        ? undefined
        : decoded.verify as MailauthVerifyOptions,
      dkimSign: yield* dkimSignOf(decoded.dkimSign as DkimSignOptions | undefined, sourceOf),
      arcSeal: decoded.arcSeal as ArcSealOptions | undefined,
      admin: yield* AdminConfig.resolve(decoded, (field, expected, got) => invalid(field, expected, got, sourceOf)),
      telemetry: Telemetry.resolve(decoded.telemetry),
      logFormat: decoded.logFormat,
      watchConfig: decoded.watchConfig ?? false,
      ...delivery
    }
  })
