/**
 * The configuration, declared once as an `effect/Schema`: its encoded side is what a user writes
 * in `smtp-bridge.config.ts` or gives as flags (`ConfigInput`: every field optional, sizes and
 * durations for humans), its type side the checked value with every default filled in (from
 * which `BridgeConfig` derives), and decoding it is the validation. Each checked value carries
 * the phrase its error message uses (`Fields.expecting`); the built-in plugins' options are their
 * own schemas (`plugins/<name>/options.ts`).
 *
 * @example
 * Schema.decodeUnknownSync(Config)({ limits: { maxMessageSize: "10MB" } }).limits.maxMessageSize // 10485760
 */
import * as Duration from "effect/Duration"
import * as Schema from "effect/Schema"
import * as Os from "node:os"
import * as ArcSeal from "../../plugins/arc-seal/options.ts"
import * as DkimSign from "../../plugins/dkim-sign/options.ts"
import * as MailauthVerify from "../../plugins/mailauth-verify/options.ts"
import * as Policy from "../../plugins/policy/options.ts"
import * as RateLimit from "../../plugins/rate-limit/options.ts"
import * as Rspamd from "../../plugins/rspamd/options.ts"
import * as Milter from "../../plugins/milter/options.ts"
import * as HttpHooks from "../../plugins/http-hooks/options.ts"
import * as Udp from "../dns/Udp.ts"
import { hookNames, type Plugin } from "../pipeline/Plugin.ts"
import * as AdminConfig from "./Admin.ts"
import * as AuthConfig from "./Auth.ts"
import * as Delivery from "./Delivery.ts"
import {
  Bool, Cidr, expecting, FilePath, Hostname, LineLength, list, ListenAddress, MessageSize, optional, PositiveInt, PrefixLength,
  SenderPattern, ShutdownTimeout, SpillSize, Timeout, withDefault
} from "./Fields.ts"
import * as Telemetry from "./Telemetry.ts"

/** The defaults, also shown by `--help`. */
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

const time = (input: Duration.DurationInput) => () => Duration.decode(input)

const isPlugin = (u: unknown): u is Plugin<unknown> => {
  if (typeof u !== "object" || u === null || Array.isArray(u)) return false
  const record: Partial<Record<string, unknown>> = { ...u }
  return typeof record.name === "string" && record.name.length > 0 &&
    hookNames.every((hook) => record[hook] === undefined || typeof record[hook] === "function")
}
const PluginSchema = Schema.declare(isPlugin).annotations(
  expecting("a plugin: an object with a string name and function hooks, as definePlugin returns")
)

export const Limits = Schema.Struct({
  /** Largest message accepted (SIZE; 552 5.3.4 past it); default `"25MB"`. */
  maxMessageSize: withDefault(MessageSize, () => defaults.maxMessageSize),
  /** Recipients per transaction (452 4.5.3 past it); default 100. */
  maxRecipients: withDefault(PositiveInt, () => defaults.maxRecipients),
  /** Longest command line in bytes, CRLF included; default 4096, at least 512 (RFC 5321; AUTH lines may need more). */
  maxLineLength: withDefault(LineLength, () => defaults.maxLineLength),
  /** Open connections in total; default 1000. */
  maxConnections: withDefault(PositiveInt, () => defaults.maxConnections),
  /** Open connections from one client address; default 50. */
  maxConnectionsPerIp: withDefault(PositiveInt, () => defaults.maxConnectionsPerIp),
  /** Open connections from one network (an IPv4 /24, an IPv6 /64 by default); default 100. Trusted networks are exempt. */
  maxConnectionsPerNetwork: withDefault(PositiveInt, () => defaults.maxConnectionsPerNetwork),
  /** The width of a "network" for `maxConnectionsPerNetwork`: IPv4 prefix length, default 24. */
  ipv4NetworkPrefix: withDefault(PrefixLength(32), () => defaults.ipv4NetworkPrefix),
  /** IPv6 prefix length, default 64 (what one subscriber usually holds). */
  ipv6NetworkPrefix: withDefault(PrefixLength(128), () => defaults.ipv6NetworkPrefix),
  /** Unknown or invalid commands before 421 and close; default 10. */
  maxInvalidCommands: withDefault(PositiveInt, () => defaults.maxInvalidCommands),
  /** Failed AUTH attempts before 421 and close; default 3. */
  maxAuthFailures: withDefault(PositiveInt, () => defaults.maxAuthFailures),
  /** From the greeting until the first command line is complete; default `"30 seconds"`. */
  greetingTimeout: withDefault(Timeout, time(defaults.greetingTimeout)),
  /** Waiting for the next command, and for a client to read a reply; default `"5 minutes"` (the RFC 5321 minimum). */
  idleTimeout: withDefault(Timeout, time(defaults.idleTimeout)),
  /** One command line from its first byte to its end, however the bytes trickle in; default `"1 minute"`. */
  commandTimeout: withDefault(Timeout, time(defaults.commandTimeout)),
  /** Waiting for the next DATA or BDAT chunk; default `"10 minutes"`. */
  dataTimeout: withDefault(Timeout, time(defaults.dataTimeout)),
  /** A message's whole transfer (DATA's 354 to the final dot, first BDAT to BDAT LAST); default `"30 minutes"`. */
  transferTimeout: withDefault(Timeout, time(defaults.transferTimeout)),
  /** Message bytes kept in memory before spilling to a temporary file; default `"256KB"`. */
  spillThreshold: withDefault(SpillSize, () => defaults.spillThreshold)
}).annotations(expecting("an object of limits"))

const Tls = Schema.Struct({
  /** PEM certificate chain file. */
  cert: FilePath,
  /** PEM private key file. */
  key: FilePath
}).annotations(expecting("{ cert, key } with the paths of PEM files"))

const Dns = Schema.Struct({
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
}).annotations(expecting("{ servers?, timeoutMs?, attempts?, cache? }"))

// `verify: true` (`--verify`) checks every message; a config object keeps its own skip settings.
const Verify = Schema.transform(
  Schema.Union(Bool, MailauthVerify.Options),
  Schema.UndefinedOr(Schema.typeSchema(MailauthVerify.Options)),
  {
    strict: true,
    decode: (input) => (input === true ? { skipAuthenticated: false, skipTrusted: false } : input === false ? undefined : input),
    encode: (options) => options ?? false
  }
)

const Capture = Schema.Struct({
  dir: FilePath.annotations(expecting("a directory path")),
  sample: withDefault(Schema.Number.pipe(Schema.filter((n) => n >= 0 && n <= 1)).annotations(expecting("a number from 0 to 1")), () => 1),
  maxMessageSize: withDefault(MessageSize, () => 1024 * 1024),
  headersOnly: withDefault(Bool, () => false)
}).annotations(expecting("{ dir, sample?, maxMessageSize?, headersOnly? }"))

// `--policy inet:HOST:PORT` gives the server alone; a config object carries the other options.
const PolicyField = Schema.Union(
  Schema.transform(Policy.Server, Schema.typeSchema(Policy.Options), {
    strict: true,
    decode: (server) => Schema.decodeSync(Policy.Options)({ server }),
    encode: (options) => options.server
  }),
  Policy.Options
).annotations(expecting("inet:HOST:PORT, unix:/path or { server, stage?, timeout?, defaultAction?, ... }"))

// `--rspamd URL` gives the URL alone.
const RspamdField = Schema.Union(
  Schema.transform(Rspamd.Url, Schema.typeSchema(Rspamd.Options), {
    strict: true,
    decode: (url) => Schema.decodeSync(Rspamd.Options)({ url }),
    encode: (options) => options.url
  }),
  Rspamd.Options
).annotations(expecting("an http:// URL of rspamd's worker or { url, timeout?, onError?, spamHeaders?, ... }"))

export const Config = Schema.Struct({
  /** The name in the greeting, EHLO reply and Received header; default the machine's host name. */
  hostname: withDefault(Hostname, () => Os.hostname()),
  /** Plain listeners (STARTTLS when `tls` is set) as `"host:port"`, IPv6 as `"[::1]:2525"`; default `["127.0.0.1:2525"]` when neither `listen` nor `listenTls` is given. */
  listen: optional(list(ListenAddress, "HOST:PORT strings")),
  /** Implicit-TLS listeners (RFC 8314, usually port 465); they need `tls`. */
  listenTls: optional(list(ListenAddress, "HOST:PORT strings")),
  tls: optional(Tls),
  /** Offer AUTH without TLS: only for tests or links that are already private. */
  allowInsecureAuth: withDefault(Bool, () => false),
  /** htpasswd file (bcrypt) of the users allowed to AUTH: short for a first `{ type: "htpasswd", file }` backend. */
  users: optional(FilePath),
  /** Authentication backends, run in order: the first that knows the user decides (`Auth.ts`, docs/authentication.md). */
  auth: withDefault(list(AuthConfig.Backend, "backends"), () => []),
  /** The result cache in front of the password backends; off unless given. */
  authCache: optional(AuthConfig.Cache),
  /** Networks in CIDR notation (`"10.0.0.0/8"`, `"::1/128"`) that may relay without AUTH. */
  trust: withDefault(list(Cidr, "CIDR strings like 10.0.0.0/8"), () => []),
  /** Load balancers (CIDR) that send a PROXY protocol v1/v2 header (HAProxy `send-proxy-v2`); their connections must start with one. */
  proxyProtocol: withDefault(list(Cidr, "CIDR strings like 10.0.0.0/8"), () => []),
  /** Per user, the MAIL FROM addresses (`"a@b"`) or domains (`"@b"`) allowed, or `"*"`. Users absent may use their own name if it is an address. */
  senders: withDefault(
    Schema.Record({ key: Schema.String, value: list(SenderPattern, "addresses or @domains") }).annotations(
      expecting("an object mapping user names to arrays of addresses")
    ),
    () => ({})
  ),
  /** An authenticated message whose header From or Sender is not the user's: `"reject"` (550 5.7.1, default) or accept it `"unsigned"` (never DKIM-signed). */
  forgedFrom: withDefault(Schema.Literal("reject", "unsigned").annotations(expecting("\"reject\" or \"unsigned\"")), () => "reject" as const),
  /** Maildir that receives mail by default; default `"./mail"`. */
  maildir: withDefault(FilePath.annotations(expecting("a directory path")), () => defaults.maildir),
  /** Bare CR or LF inside a message: `"normalize"` (default) rewrites them as CRLF, `"reject"` refuses the message (550 5.6.0). */
  bareLineEndings: withDefault(
    Schema.Literal("normalize", "reject").annotations(expecting("\"normalize\" or \"reject\"")),
    () => "normalize" as const
  ),
  limits: withDefault(Limits, () => Schema.decodeSync(Limits)({})),
  /** How long a graceful shutdown waits for transactions in flight; default `"30 seconds"`. */
  shutdownTimeout: withDefault(ShutdownTimeout, time(defaults.shutdownTimeout)),
  /** Directory for spilled messages; default the OS temporary directory. */
  tempDir: optional(FilePath.annotations(expecting("a directory path"))),
  /** Plugins, run in order after the built-ins that the fields above enable. */
  plugins: withDefault(list(PluginSchema, "plugins"), () => []),
  /** DNS for mail authentication and plugins: `servers` as `host[:port]`, per-attempt `timeoutMs`, `attempts`, TTL `cache` bounds; the system's resolvers by default. */
  dns: withDefault(Dns, () => ({})),
  // The built-in plugins' own option schemas (plugins/*/options.ts): one definition, checked here.
  /** SPF, DKIM, DMARC and ARC checks (plugins/mailauth-verify): `true` for the defaults (tag, reject nothing, check every message). */
  verify: optional(Verify),
  /** DKIM signing per From domain (plugins/dkim-sign). */
  dkimSign: optional(DkimSign.Options),
  /** ARC sealing (plugins/arc-seal). */
  arcSeal: optional(ArcSeal.Options),
  /** Rate limits and AUTH brute-force control (plugins/rate-limit); off unless given. */
  rateLimit: optional(RateLimit.Options),
  /** A Postfix policy delegation service asked at RCPT or at the end of the message (plugins/policy). */
  policy: optional(PolicyField),
  /** Scan each message with rspamd over HTTP (/checkv2) and act on its answer (plugins/rspamd). */
  rspamd: optional(RspamdField),
  /** Milters (plugins/milter): `{ milters: ["inet:127.0.0.1:8891"], defaultAction, ...timeouts }`; off unless given. */
  milter: optional(Milter.Options),
  /** HTTP hooks (plugins/http-hooks): `{ hooks: [{ stage: "data", url }], secret, defaultAction, ... }`; off unless given. */
  httpHooks: optional(HttpHooks.Options),
  ...AdminConfig.fields,
  /** `"json"` (one object per line) or `"pretty"`; default `"pretty"` on a terminal, `"json"` otherwise. */
  logFormat: optional(Schema.Literal("json", "pretty").annotations(expecting("\"json\" or \"pretty\""))),
  /** Reload (as SIGHUP does) when the config file, the users file or the TLS certificate or key changes; default `false`. */
  watchConfig: withDefault(Bool, () => false),
  /** Session capture for `smtp-bridge replay` (docs/capture-format.md): `dir`, `sample` (0 to 1, default 1), `maxMessageSize` (default 1MB; larger messages keep their headers only), `headersOnly`. */
  capture: optional(Capture),
  ...Delivery.fields,
  ...Telemetry.fields
}).annotations(expecting("an object (the config file's default export)"))

/** What a config file exports and flags give: the schema's encoded side. */
export type ConfigInput = typeof Config.Encoded

/** The checked config with its defaults, before the checks across fields (`Resolve.ts`). */
export type Decoded = typeof Config.Type
