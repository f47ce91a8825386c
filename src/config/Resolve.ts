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
import { Duration, Effect, type ParseResult, Schema } from "effect"
import * as Os from "node:os"
import { hookNames, OptionsKey, type Plugin } from "../pipeline/Plugin.ts"
import type { BridgeConfig, ListenerConfig } from "./Config.ts"
import * as ArcSeal from "../../plugins/arc-seal/options.ts"
import * as DkimSign from "../../plugins/dkim-sign/options.ts"
import * as MailauthVerify from "../../plugins/mailauth-verify/options.ts"
import * as RateLimit from "../../plugins/rate-limit/options.ts"
import * as Udp from "../dns/Udp.ts"
import * as Issue from "../util/Issue.ts"
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
  // The built-in plugins' own option schemas (plugins/*/options.ts): one definition, checked here.
  verify: optional(Schema.Union(Bool, MailauthVerify.Options)),
  dkimSign: optional(DkimSign.Options),
  arcSeal: optional(ArcSeal.Options),
  rateLimit: optional(RateLimit.Options),
  ...AdminConfig.fields,
  logFormat: optional(Schema.Literal("json", "pretty").annotations(expecting("\"json\" or \"pretty\""))),
  watchConfig: optional(Bool),
  ...Delivery.fields,
  ...Telemetry.fields
}).annotations(expecting("an object (the config file's default export)"))

type Decoded = typeof InputSchema.Type

// ---------------------------------------------------------------------------------------------
// Errors

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
    message: `Invalid config: ${field}: expected ${expected}, got ${Issue.describe(got)}${source === "" ? "" : ` (${source})`}`
  })
}

/** The first parse issue as a ConfigError naming the field, in the config's own phrases. */
const fromIssue = (issue: ParseResult.ParseIssue, sourceOf: SourceOf, prefix = ""): ConfigError => {
  const problem = Issue.first(issue, expectedOf)
  const path = Issue.formatPath(problem.path)
  const field = prefix === "" ? (path === "" ? "config" : path) : path === "" ? prefix : `${prefix}${path.startsWith("[") ? "" : "."}${path}`
  if (problem.kind !== "Unknown") return invalid(field, Issue.expectation(problem), problem.actual, sourceOf)
  const source = sourceOf(field)
  return new ConfigError({
    reason: "Invalid",
    field,
    expected: Issue.expectation(problem),
    source,
    message: `Invalid config: ${Issue.line(problem, field)}${source === "" ? "" : ` (${source})`}`
  })
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

/**
 * A plugin made by an options factory (`definePlugin({ name, options, make })`) carries its options
 * as given: they are checked here with the plugin's own schema, so that a bad one is reported as
 * one line naming the plugin and the option, exactly as a built-in's option field is.
 */
const checkPluginOptions = (plugins: ReadonlyArray<Plugin>, source: SourceOf): Effect.Effect<void, ConfigError> =>
  Effect.forEach(plugins, (plugin, i) => {
    const options = plugin[OptionsKey]
    return options === undefined
      ? Effect.void
      : Effect.mapError(options.decode(options.input), (issue) => fromIssue(issue, source, `plugins[${i}] (${plugin.name})`))
  }, { discard: true })

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
    yield* checkPluginOptions(decoded.plugins ?? [], sourceOf)
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
      rateLimit: decoded.rateLimit,
      dns: decoded.dns ?? {},
      // `--verify` checks every message; a config object keeps its own skip settings.
      verify: decoded.verify === true
        ? { skipAuthenticated: false, skipTrusted: false }
        : decoded.verify === false || decoded.verify === undefined
        ? undefined
        : decoded.verify,
      dkimSign: decoded.dkimSign,
      arcSeal: decoded.arcSeal,
      admin: yield* AdminConfig.resolve(decoded, (field, expected, got) => invalid(field, expected, got, sourceOf)),
      telemetry: Telemetry.resolve(decoded.telemetry),
      logFormat: decoded.logFormat,
      watchConfig: decoded.watchConfig ?? false,
      ...delivery
    }
  })
