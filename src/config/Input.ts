/**
 * The configuration as a user writes it in `smtp-bridge.config.ts`: every field is optional and
 * sizes and durations may be written for humans ("25MB", "5 minutes"). `Resolve.resolve` turns
 * it into the validated `BridgeConfig`.
 *
 * @example
 * // smtp-bridge.config.ts
 * import { defineConfig } from "smtp-bridge"
 * export default defineConfig({
 *   hostname: "mx.example.com",
 *   listen: ["0.0.0.0:587"],
 *   tls: { cert: "/etc/ssl/mx.pem", key: "/etc/ssl/mx.key" },
 *   users: "./users.htpasswd",
 *   limits: { maxMessageSize: "25MB", idleTimeout: "5 minutes" }
 * })
 */
import type { Plugin } from "../pipeline/Plugin.ts"
import type * as ArcSeal from "../../plugins/arc-seal/options.ts"
import type * as DkimSign from "../../plugins/dkim-sign/options.ts"
import type * as MailauthVerify from "../../plugins/mailauth-verify/options.ts"
import type * as RateLimit from "../../plugins/rate-limit/options.ts"
import type { ResolverOptions } from "../dns/Resolver.ts"
import type { RouteRule } from "./Config.ts"

/** Bytes as a number, or a string such as `"512KB"`, `"25MB"`, `"1GB"` (K/M/G are powers of 1024). */
export type SizeInput = number | string

/** Milliseconds as a number, or an Effect duration string such as `"30 seconds"` or `"5 minutes"`. */
export type DurationInput = number | string

export interface TlsInput {
  /** PEM certificate chain file. */
  readonly cert: string
  /** PEM private key file. */
  readonly key: string
}

export interface LimitsInput {
  /** Largest message accepted (SIZE); default `"25MB"`. */
  readonly maxMessageSize?: SizeInput
  /** Recipients per transaction; default 100. */
  readonly maxRecipients?: number
  /** Longest command line in bytes, CRLF included; default 4096, at least 512 (RFC 5321). */
  readonly maxLineLength?: number
  /** Open connections in total; default 1000. */
  readonly maxConnections?: number
  /** Open connections from one client address; default 50. */
  readonly maxConnectionsPerIp?: number
  /** Open connections from one network (an IPv4 /24, an IPv6 /64 by default); default 100. Trusted networks are exempt. */
  readonly maxConnectionsPerNetwork?: number
  /** The width of a "network" for `maxConnectionsPerNetwork`: IPv4 prefix length, default 24. */
  readonly ipv4NetworkPrefix?: number
  /** IPv6 prefix length, default 64 (what one subscriber usually holds). */
  readonly ipv6NetworkPrefix?: number
  /** Unknown or invalid commands before the connection is closed; default 10. */
  readonly maxInvalidCommands?: number
  /** Failed AUTH attempts before the connection is closed; default 3. */
  readonly maxAuthFailures?: number
  /** From the greeting until the first command line is complete; default `"30 seconds"`. */
  readonly greetingTimeout?: DurationInput
  /** Waiting for the next command, and for a client to read a reply; default `"5 minutes"` (the RFC 5321 minimum). */
  readonly idleTimeout?: DurationInput
  /** One command line from its first byte to its end; default `"1 minute"`. */
  readonly commandTimeout?: DurationInput
  /** Waiting for the next DATA or BDAT chunk; default `"10 minutes"`. */
  readonly dataTimeout?: DurationInput
  /** A message's whole transfer (DATA's 354 to the final dot, first BDAT to BDAT LAST); default `"30 minutes"`. */
  readonly transferTimeout?: DurationInput
  /** Message bytes kept in memory before spilling to a temporary file; default `"256KB"`. */
  readonly spillThreshold?: SizeInput
}

/** A named transport in `transports`. */
export interface TransportInput {
  readonly type: "smtp" | "lmtp" | "webhook" | "maildir"
  /** `smtp://[user:pass@]host:port[?tls=required|opportunistic|none]`, `smtps://...`, `lmtp://host:port`, `lmtp:///path/to/socket`, or the webhook's `https://...`. */
  readonly url?: string
  /** Maildir directory (`type: "maildir"`). */
  readonly dir?: string
  /** Relays: TLS verification of the upstream. */
  readonly tls?: { readonly ca?: string; readonly servername?: string; readonly rejectUnauthorized?: boolean }
  /** Relays: upstream connections kept for reuse (default 16) and how long an idle one lives (default 30 seconds). */
  readonly pool?: { readonly size?: number; readonly idleTimeout?: DurationInput }
  /** Relays: defaults 30 seconds, 5 minutes, 10 minutes. */
  readonly timeouts?: { readonly connect?: DurationInput; readonly command?: DurationInput; readonly data?: DurationInput }
  /** Webhook: HMAC-SHA256 key for the signature header. */
  readonly secret?: string
  /** Webhook: `raw` (message/rfc822, envelope in headers; default) or `json`. */
  readonly format?: "raw" | "json"
  /** Webhook: default 30 seconds. */
  readonly timeout?: DurationInput
  readonly headers?: Readonly<Record<string, string>>
}

/** The durable queue (`--spool DIR`); retries like Postfix: backoff from 5 minutes up to 1 hour, for 5 days. */
export interface SpoolInput {
  readonly dir: string
  readonly initialDelay?: DurationInput
  readonly maxDelay?: DurationInput
  readonly maxAge?: DurationInput
  readonly concurrency?: number
  /**
   * Free space the spool's file system keeps (`--spool-min-free`): MAIL FROM gets 452 4.3.1 when
   * less than this plus the message's declared SIZE is free, rather than 451 after all the data
   * was read. Default 1MB.
   */
  readonly minFreeSpace?: SizeInput
}

/**
 * OpenTelemetry tracing (`--otlp-endpoint URL`): one span per SMTP session, per transaction and
 * per plugin hook, exported over OTLP/HTTP with JSON bodies. Off unless given.
 *
 * @example
 * telemetry: { otlpEndpoint: "http://otel-collector:4318", headers: { "x-api-key": process.env.OTLP_KEY ?? "" } }
 */
export interface TelemetryInput {
  /** The collector's OTLP/HTTP base URL (`http://host:4318`); spans go to its `/v1/traces`. A URL already ending in `/v1/traces` is used as it is. */
  readonly otlpEndpoint: string
  /** The `service.name` of every span; default `"smtp-bridge"`. */
  readonly serviceName?: string
  /** HTTP headers sent with every export, such as a collector's API key; never logged. */
  readonly headers?: Readonly<Record<string, string>>
}

export interface ConfigInput {
  /** The name in the greeting, EHLO reply and Received header; default the machine's host name. */
  readonly hostname?: string
  /** Plain listeners (STARTTLS when `tls` is set) as `"host:port"`, IPv6 as `"[::1]:2525"`; default `["127.0.0.1:2525"]` when neither `listen` nor `listenTls` is given. */
  readonly listen?: ReadonlyArray<string>
  /** Implicit-TLS listeners (RFC 8314, usually port 465); they need `tls`. */
  readonly listenTls?: ReadonlyArray<string>
  readonly tls?: TlsInput
  /** Offer AUTH without TLS: only for tests or links that are already private. */
  readonly allowInsecureAuth?: boolean
  /** htpasswd file (bcrypt) of the users allowed to AUTH. */
  readonly users?: string
  /** Networks in CIDR notation (`"10.0.0.0/8"`, `"::1/128"`) that may relay without AUTH. */
  readonly trust?: ReadonlyArray<string>
  /** Load balancers (CIDR) that send a PROXY protocol v1/v2 header (HAProxy `send-proxy-v2`); their connections must start with one. */
  readonly proxyProtocol?: ReadonlyArray<string>
  /** Per user, the MAIL FROM addresses (`"a@b"`) or domains (`"@b"`) allowed, or `"*"`. */
  readonly senders?: Readonly<Record<string, ReadonlyArray<string>>>
  /** An authenticated message whose header From or Sender is not the user's: `"reject"` (550 5.7.1, default) or accept it `"unsigned"` (never DKIM-signed). */
  readonly forgedFrom?: "reject" | "unsigned"
  /** Maildir that receives mail by default; default `"./mail"`. */
  readonly maildir?: string
  /** Bare CR or LF inside a message: `"normalize"` (default) rewrites them as CRLF, `"reject"` refuses the message. */
  readonly bareLineEndings?: "normalize" | "reject"
  readonly limits?: LimitsInput
  /** How long a graceful shutdown waits for transactions in flight; default `"30 seconds"`. */
  readonly shutdownTimeout?: DurationInput
  /** Directory for spilled messages; default the OS temporary directory. */
  readonly tempDir?: string
  /** Relay everything (the `default` transport) to this upstream: `smtp://`, `smtps://` or `lmtp://`. */
  readonly relay?: string
  /** Deliver everything (the `default` transport) to this HTTP endpoint. */
  readonly webhook?: string
  /** HMAC key for `webhook`. */
  readonly webhookSecret?: string
  /** Named transports that `routes` can pick; one named `default` replaces the Maildir default. */
  readonly transports?: Readonly<Record<string, TransportInput>>
  /** Routing rules, first match wins (see plugins/routing/README.md). */
  readonly routes?: ReadonlyArray<RouteRule>
  /** The transport for recipients no route claims; default `"default"`. */
  readonly defaultTransport?: string
  /** Write each message to disk before answering 250 and deliver it with retries. */
  readonly spool?: string | SpoolInput
  /** DNS for mail authentication and plugins: `servers` as `host[:port]`, per-attempt `timeoutMs`, `attempts`, TTL `cache` bounds; the system's resolvers by default. */
  readonly dns?: ResolverOptions
  /** SPF, DKIM, DMARC and ARC checks (plugins/mailauth-verify): `true` for the defaults (tag, reject nothing, check every message). */
  readonly verify?: boolean | MailauthVerify.OptionsInput
  /** DKIM signing per From domain (plugins/dkim-sign). */
  readonly dkimSign?: DkimSign.OptionsInput
  /** ARC sealing (plugins/arc-seal). */
  readonly arcSeal?: ArcSeal.OptionsInput
  /** Rate limits and AUTH brute-force control (plugins/rate-limit); off unless given. */
  readonly rateLimit?: RateLimit.OptionsInput
  /** Plugins, run in order after the built-ins that the fields above enable. */
  readonly plugins?: ReadonlyArray<Plugin>
  /** Admin HTTP listener `"HOST:PORT"` serving `/metrics`, `/healthz` and `/readyz`; off by default. Keep it on a private address. */
  readonly admin?: string
  /**
   * Bearer token the admin listener requires (RFC 6750 syntax, at least 16 characters); e.g.
   * `process.env.ADMIN_TOKEN`. The CLI also reads `SMTP_BRIDGE_ADMIN_TOKEN`. Never shown.
   */
  readonly adminToken?: string
  /** A file whose first line is that token (`--admin-token-file`); not with `adminToken`. */
  readonly adminTokenFile?: string
  /** OpenTelemetry tracing to an OTLP/HTTP collector; off by default. */
  readonly telemetry?: TelemetryInput
  /** `"json"` (one object per line) or `"pretty"`; default `"pretty"` on a terminal, `"json"` otherwise. */
  readonly logFormat?: "json" | "pretty"
  /** Reload (as SIGHUP does) when the config file, the users file or the TLS certificate or key changes; default `false`. */
  readonly watchConfig?: boolean
}

/** Identity function that gives config files type checking and editor completion. */
export const defineConfig = (input: ConfigInput): ConfigInput => input
