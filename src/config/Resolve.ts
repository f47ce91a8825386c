/**
 * Validates a `ConfigInput` (from a config file, flags, or both merged) with the one config
 * schema (`Schema.ts`, which fills in the safe defaults), then checks across fields and the
 * options of plugins made by options factories, giving the `BridgeConfig` the server runs with.
 * The first problem found is reported as one line that names the field, what it expects and
 * what it got.
 *
 * @example
 * const config = yield* Resolve.resolve({ limits: { maxRecipients: 50 } }, "smtp-bridge.config.ts")
 * // Resolve.resolve({ limits: { maxRecipients: -1 } }, "flags") fails with
 * // "Invalid config: limits.maxRecipients: expected a positive integer, got -1 (flags)"
 */
import * as Effect from "effect/Effect"
import type * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { OptionsKey, type Plugin } from "../pipeline/Plugin.ts"
import type { BridgeConfig, ListenerConfig } from "./Config.ts"
import * as Issue from "../util/Issue.ts"
import * as Redact from "../util/Redact.ts"
import * as AdminConfig from "./Admin.ts"
import * as Delivery from "./Delivery.ts"
import * as ConfigSchema from "./Schema.ts"
import * as Syntax from "./Syntax.ts"
import { expectedOf } from "./Fields.ts"

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
// Checks across fields (the schema checked each field and filled in its default)

const listeners = (input: ConfigSchema.Decoded, source: SourceOf): Effect.Effect<ReadonlyArray<ListenerConfig>, ConfigError> => {
  // The default listener only applies when the user named none: someone who lists a TLS port
  // alone does not expect an extra plain one.
  const plain = input.listen ?? (input.listenTls === undefined ? ConfigSchema.defaults.listen : [])
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
const checkPluginOptions = (plugins: ReadonlyArray<Plugin<unknown>>, source: SourceOf): Effect.Effect<void, ConfigError> =>
  Effect.forEach(plugins, (plugin, i) => {
    const options = plugin[OptionsKey]
    return options === undefined
      ? Effect.void
      : Effect.mapError(options.decode(options.input), (issue) => fromIssue(issue, source, `plugins[${i}] (${label(plugin.name)})`))
  }, { discard: true })

// A name is the author's string: anything but printable ASCII is escaped, so the error stays one
// line that reads as it is (no line break, no control or bidi character), and it is cut at 64.
const label = (name: string): string =>
  [...name.slice(0, 64)].map((c) => (/^[\x20-\x7e]$/.test(c) ? c : `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)).join("")

const checkTls = (input: ConfigSchema.Decoded, source: SourceOf): Effect.Effect<void, ConfigError> => {
  if (input.tls !== undefined) return Effect.void
  if ((input.listenTls ?? []).length > 0) {
    return Effect.fail(invalid("tls", "{ cert, key } because listenTls is set", undefined, source))
  }
  // AUTH is only offered over TLS unless insecure AUTH is allowed: a users file would go unused.
  if ((input.users !== undefined || input.auth.length > 0) && input.allowInsecureAuth !== true) {
    return Effect.fail(
      invalid("tls", "{ cert, key } so that AUTH can be offered to users (or allowInsecureAuth: true)", undefined, (field) => source(input.users !== undefined ? field : "auth"))
    )
  }
  return Effect.void
}

/** The defaults, also shown by `--help` (declared with the schema). */
export const defaults = ConfigSchema.defaults

/** Validates `input` (a `ConfigInput` or anything a config file exported) and fills in defaults. */
export const resolve = (
  input: unknown,
  source: string | ((field: string) => string)
): Effect.Effect<BridgeConfig, ConfigError> =>
  Effect.gen(function*() {
    const sourceOf = typeof source === "string" ? () => source : source
    const decoded = yield* Schema.decodeUnknown(ConfigSchema.Config, { errors: "first", onExcessProperty: "error" })(input)
      .pipe(Effect.mapError((error) => fromIssue(error.issue, sourceOf)))
    yield* checkTls(decoded, sourceOf)
    yield* checkPluginOptions(decoded.plugins, sourceOf)
    const {
      listen: _listen, listenTls: _listenTls, relay: _relay, webhook: _webhook, webhookSecret: _webhookSecret, transports: _transports,
      defaultTransport: _defaultTransport, spool: _spool, adminToken: _adminToken, adminTokenFile: _adminTokenFile, admin: _admin,
      ...fields
    } = decoded
    return {
      ...fields,
      // Absent and undefined are one thing to the server: these keys are always present.
      tls: decoded.tls,
      users: decoded.users,
      authCache: decoded.authCache,
      tempDir: decoded.tempDir,
      verify: decoded.verify,
      dkimSign: decoded.dkimSign,
      arcSeal: decoded.arcSeal,
      rateLimit: decoded.rateLimit,
      policy: decoded.policy,
      rspamd: decoded.rspamd,
      milter: decoded.milter,
      httpHooks: decoded.httpHooks,
      logFormat: decoded.logFormat,
      capture: decoded.capture,
      telemetry: decoded.telemetry,
      listeners: yield* listeners(decoded, sourceOf),
      admin: yield* AdminConfig.resolve(decoded, (field, expected, got) => invalid(field, expected, got, sourceOf)),
      ...(yield* Delivery.resolve(decoded, decoded.maildir, (field, expected, got) => invalid(field, expected, got, sourceOf)))
    }
  })
