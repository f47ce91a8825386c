/**
 * The flags of `serve`, `check-config` and `plugins`: each declared once with its group, its
 * one-line description and its default, from which come the @effect/cli options (for parsing,
 * `FlagOptions.ts`) and the help text (`Help.ts`). The defaults shown are the config's own
 * (`Resolve.defaults`). This module does not import @effect/cli: `serve` written in the plain form
 * (`plain`) starts without it.
 *
 * @example
 * const o = ConfigFlags.plain(["--listen", "127.0.0.1:2525", "--verify"])   // ConfigOptions, or undefined
 */
import * as Option from "effect/Option"
import * as Resolve from "../config/Resolve.ts"

export const groups = ["Listeners and TLS", "Authentication", "Policy", "Delivery", "Limits", "Operations"] as const

export interface FlagDoc {
  readonly group: (typeof groups)[number]
  readonly name: string
  /** What the value looks like (`HOST:PORT`); none for a switch. */
  readonly pseudo?: string
  readonly description: string
  readonly default: string
  readonly repeatable?: true
}

const mib = (bytes: number) => `${bytes} (${bytes / 1024 / 1024}MB)`

export const docs = {
  listen: { group: "Listeners and TLS", name: "listen", pseudo: "HOST:PORT", repeatable: true, description: "Plain listener, with STARTTLS when TLS is set; replaces the file's list", default: Resolve.defaults.listen.join(", ") },
  listenTls: { group: "Listeners and TLS", name: "listen-tls", pseudo: "HOST:PORT", repeatable: true, description: "Implicit-TLS listener (RFC 8314, like port 465); needs --tls-cert and --tls-key", default: "none" },
  hostname: { group: "Listeners and TLS", name: "hostname", pseudo: "NAME", description: "Name in the greeting, the EHLO reply, Received headers and DSNs", default: "this machine's host name" },
  tlsCert: { group: "Listeners and TLS", name: "tls-cert", pseudo: "FILE", description: "PEM certificate chain for STARTTLS and implicit TLS", default: "none (no TLS)" },
  tlsKey: { group: "Listeners and TLS", name: "tls-key", pseudo: "FILE", description: "PEM private key of that certificate", default: "none" },
  proxyProtocol: { group: "Listeners and TLS", name: "proxy-protocol", pseudo: "CIDR", repeatable: true, description: "Load balancers whose connections start with a PROXY v1/v2 header", default: "none" },
  users: { group: "Authentication", name: "users", pseudo: "FILE", description: "htpasswd file (bcrypt, see hash-password) of the users allowed to AUTH", default: "none (no AUTH)" },
  auth: { group: "Authentication", name: "auth", pseudo: "URL", repeatable: true, description: "Authentication backend, in order after --users: dovecot:///SOCKET, dovecot://HOST:PORT, ldap[s]://HOST/BASE?ATTR, http[s]://URL (options in the file's auth)", default: "none" },
  oauthJwks: { group: "Authentication", name: "oauth-jwks", pseudo: "URL", description: "OAUTHBEARER and XOAUTH2: the issuer's JWKS URL that signs access tokens (with --oauth-issuer, --oauth-audience)", default: "off" },
  oauthIssuer: { group: "Authentication", name: "oauth-issuer", pseudo: "ISS", description: "OAuth: the iss every access token must carry", default: "none" },
  oauthAudience: { group: "Authentication", name: "oauth-audience", pseudo: "AUD", description: "OAuth: the aud an access token must include", default: "none" },
  allowInsecureAuth: { group: "Authentication", name: "allow-insecure-auth", description: "Offer AUTH without TLS (tests and private links only)", default: "off" },
  trust: { group: "Policy", name: "trust", pseudo: "CIDR", repeatable: true, description: "Network allowed to relay without AUTH", default: "none (every client must AUTH)" },
  verify: { group: "Policy", name: "verify", description: "Check SPF, DKIM, DMARC and ARC and add Authentication-Results (rejects nothing)", default: "off" },
  dkimSignKeys: { group: "Policy", name: "dkim-sign", pseudo: "DOMAIN:SELECTOR:KEYFILE", repeatable: true, description: "DKIM-sign mail from DOMAIN with this key (RSA and Ed25519 may both sign)", default: "off" },
  dkimTrustedFrom: { group: "Policy", name: "dkim-trusted-from", pseudo: "CIDR=SENDER", repeatable: true, description: "Sign mail from clients without AUTH in CIDR when its From is SENDER (a@b, @b or *)", default: "none (their mail is not signed)" },
  dns: { group: "Policy", name: "dns", pseudo: "HOST:PORT", repeatable: true, description: "DNS server for mail authentication", default: "the system's resolvers" },
  milter: { group: "Policy", name: "milter", pseudo: "inet:HOST:PORT|unix:PATH", repeatable: true, description: "A milter (OpenDKIM, rspamd, ClamAV...) every message passes through, in the order given; a failed one tempfails (451 4.7.1)", default: "none" },
  hook: { group: "Policy", name: "hook", pseudo: "STAGE=URL", repeatable: true, description: "POST a signed JSON description of STAGE (connect, helo, mailFrom, rcptTo or data) to URL; its answer decides (docs/hooks.md)", default: "none" },
  rateLimit: { group: "Policy", name: "rate-limit", pseudo: "SCOPE=COUNT/PERIOD", repeatable: true, description: "Limit on accepted mail: scope ip, user, sender-domain or recipients; period second to day", default: "off" },
  redis: { group: "Policy", name: "redis", pseudo: "URL", description: "Keep rate-limit counters in Redis (redis://[:password@]host:port[/db]) so instances share them", default: "in memory" },
  policy: { group: "Policy", name: "policy", pseudo: "inet:HOST:PORT|unix:PATH", description: "Ask this Postfix policy service (postgrey, policyd-spf) at each RCPT", default: "off" },
  rspamd: { group: "Policy", name: "rspamd", pseudo: "URL", description: "Scan each message with rspamd's HTTP API (http://127.0.0.1:11333): reject, greylist, add headers", default: "off" },
  maildir: { group: "Delivery", name: "maildir", pseudo: "DIR", description: "Maildir the default transport delivers into", default: Resolve.defaults.maildir },
  relay: { group: "Delivery", name: "relay", pseudo: "URL", description: "Relay all mail to smtp://[user:pass@]host:port[?tls=required|opportunistic|none][&verify=rcpt], smtps:// or lmtp:// (verify=rcpt: ask it about each RCPT)", default: "off (the Maildir)" },
  webhook: { group: "Delivery", name: "webhook", pseudo: "URL", description: "POST all mail to this HTTP endpoint", default: "off (the Maildir)" },
  webhookSecret: { group: "Delivery", name: "webhook-secret", pseudo: "SECRET", description: "HMAC-SHA256 key that signs webhook requests", default: "none (unsigned)" },
  spool: { group: "Delivery", name: "spool", pseudo: "DIR", description: "Durable queue: store each message before the 250, deliver with retries", default: "off (pass-through)" },
  spoolMinFree: { group: "Delivery", name: "spool-min-free", pseudo: "BYTES", description: "Free space the spool keeps: MAIL FROM gets 452 4.3.1 below it plus SIZE", default: "1MB" },
  maxSize: { group: "Limits", name: "max-size", pseudo: "BYTES", description: "Largest message (SIZE), in bytes or like 25MB; 552 5.3.4 past it", default: mib(Resolve.defaults.maxMessageSize) },
  maxRecipients: { group: "Limits", name: "max-recipients", pseudo: "N", description: "Recipients per message; 452 4.5.3 past it", default: String(Resolve.defaults.maxRecipients) },
  maxConnectionsPerNetwork: { group: "Limits", name: "max-connections-per-network", pseudo: "N", description: "Open connections from one network; 421 4.7.0 past it (trusted networks are exempt)", default: "100" },
  ipv4NetworkPrefix: { group: "Limits", name: "ipv4-network-prefix", pseudo: "BITS", description: "IPv4 prefix length of one network for --max-connections-per-network", default: "24" },
  ipv6NetworkPrefix: { group: "Limits", name: "ipv6-network-prefix", pseudo: "BITS", description: "IPv6 prefix length of one network for --max-connections-per-network", default: "64" },
  config: { group: "Operations", name: "config", pseudo: "FILE", description: "Config file (smtp-bridge.config.ts) exporting defineConfig({...}); flags override it", default: "none" },
  admin: { group: "Operations", name: "admin", pseudo: "HOST:PORT", description: "Admin HTTP listener: /metrics, /healthz, /readyz (keep it private)", default: "off" },
  adminTokenFile: { group: "Operations", name: "admin-token-file", pseudo: "FILE", description: "File holding the bearer token the admin listener requires (or set SMTP_BRIDGE_ADMIN_TOKEN)", default: "none" },
  logFormat: { group: "Operations", name: "log-format", pseudo: "json|pretty", description: "Log lines as JSON objects or readable text", default: "pretty on a terminal, json otherwise" },
  otlpEndpoint: { group: "Operations", name: "otlp-endpoint", pseudo: "URL", description: "Send OpenTelemetry traces over OTLP/HTTP to this collector (http://127.0.0.1:4318)", default: "off" },
  watchConfig: { group: "Operations", name: "watch-config", description: "Reload, as SIGHUP does, when the config, users or TLS files change", default: "off" },
  capture: { group: "Operations", name: "capture", pseudo: "DIR", description: "Record each session as a file in DIR for smtp-bridge replay (never passwords)", default: "off" },
  captureSample: { group: "Operations", name: "capture-sample", pseudo: "RATE", description: "Share of sessions --capture records, 0 to 1", default: "1" },
  captureMaxSize: { group: "Operations", name: "capture-max-size", pseudo: "BYTES", description: "Larger messages are captured as their headers only", default: "1MB" },
  captureHeadersOnly: { group: "Operations", name: "capture-headers-only", description: "Capture every message's headers only, never a body", default: "off" }
} as const satisfies Record<string, FlagDoc>

/** The values of --log-format. */
export const logFormats = ["json", "pretty"] as const

type Key = keyof typeof docs

/** What @effect/cli gives for each flag: a list for a repeatable one, maybe a value, or a switch. */
type Value<K extends Key> = K extends "logFormat" ? Option.Option<(typeof logFormats)[number]>
  : (typeof docs)[K] extends { readonly repeatable: true } ? ReadonlyArray<string>
  : (typeof docs)[K] extends { readonly pseudo: string } ? Option.Option<string>
  : boolean

export type ConfigOptions = { readonly [K in Key]: Value<K> }

const byFlag: ReadonlyMap<string, Key> = new Map(Object.entries(docs).map(([key, doc]) => [`--${doc.name}`, key as Key]))

/**
 * The options that `args` (what follows the command name) give, when every flag is written in the
 * plain form: `--name VALUE` (a value that is not empty, starts with no "-" and has no space at
 * either end), `--name` for a switch, and a flag without `...` in the help at most once. Every other
 * line gives undefined: `--name=VALUE`, another case, an unknown word, `--log-level`, `--help`,
 * `--version`. Then @effect/cli parses it, as it parses every line (cli.ts); on the lines this
 * accepts, both give the same options (test/unit/commands/config-flags.test.ts compares them).
 * So `serve` starts without importing @effect/cli, which with its yaml/toml parsers and its help
 * printer, and its parse of the whole command tree, cost some 100 ms under Bun (issue 16).
 */
export const plain = (args: ReadonlyArray<string>): ConfigOptions | undefined => {
  const values = new Map<Key, Array<string>>()
  const switches = new Set<Key>()
  for (let i = 0; i < args.length; i++) {
    const key = byFlag.get(args[i]!)
    if (key === undefined) return undefined
    const doc: FlagDoc = docs[key]
    if (doc.pseudo === undefined) {
      if (switches.has(key)) return undefined
      switches.add(key)
      continue
    }
    const value = args[++i]
    if (value === undefined || value === "" || value.startsWith("-") || value.trim() !== value) return undefined
    const seen = values.get(key) ?? []
    if (seen.length > 0 && doc.repeatable !== true) return undefined
    if (key === "logFormat" && !(logFormats as ReadonlyArray<string>).includes(value)) return undefined
    values.set(key, [...seen, value])
  }
  const options: Record<string, unknown> = {}
  for (const [key, doc] of Object.entries(docs) as Array<[Key, FlagDoc]>) {
    options[key] = doc.repeatable === true
      ? values.get(key) ?? []
      : doc.pseudo === undefined
      ? switches.has(key)
      : Option.fromNullable(values.get(key)?.[0])
  }
  // Each key was given the shape its doc declares, which is how ConfigOptions is derived from docs.
  return options as ConfigOptions
}
