/**
 * The validated configuration: what `smtp-bridge.config.ts` (through `defineConfig`) and the CLI
 * flags produce together. Every field has a safe default.
 */
import type { AdminConfig } from "./Admin.ts"
import type { Duration } from "effect"
import type * as ArcSeal from "../../plugins/arc-seal/options.ts"
import type * as DkimSign from "../../plugins/dkim-sign/options.ts"
import type * as MailauthVerify from "../../plugins/mailauth-verify/options.ts"
import type * as RateLimit from "../../plugins/rate-limit/options.ts"
import type * as Routing from "../../plugins/routing/options.ts"
import type { ResolverOptions } from "../dns/Resolver.ts"
import type { Plugin } from "../pipeline/Plugin.ts"

export interface ListenerConfig {
  readonly host: string
  readonly port: number
  /** `plain` offers STARTTLS when TLS is configured; `implicit` is TLS from the first byte (RFC 8314). */
  readonly mode: "plain" | "implicit"
}

export interface TlsConfig {
  /** PEM file paths. */
  readonly cert: string
  readonly key: string
}

export interface Limits {
  /** Largest message in bytes (SIZE); 552 5.3.4 past it. */
  readonly maxMessageSize: number
  /** Recipients per transaction; 452 4.5.3 past it. */
  readonly maxRecipients: number
  /** Longest command line in bytes, CRLF included (RFC 5321 minimum 512; AUTH lines may need more). */
  readonly maxLineLength: number
  readonly maxConnections: number
  readonly maxConnectionsPerIp: number
  /** Open connections from one network (`ipv4NetworkPrefix` / `ipv6NetworkPrefix` wide); trusted networks are exempt. */
  readonly maxConnectionsPerNetwork: number
  readonly ipv4NetworkPrefix: number
  readonly ipv6NetworkPrefix: number
  /** Unknown or invalid commands before 421 and close. */
  readonly maxInvalidCommands: number
  /** Failed AUTH attempts before 421 and close. */
  readonly maxAuthFailures: number
  /** From the greeting until the first command line is complete. */
  readonly greetingTimeout: Duration.Duration
  /** Waiting for the next command to start (RFC 5321 says at least 5 minutes); also how long a write may wait for a client that does not read. */
  readonly idleTimeout: Duration.Duration
  /** One command line, from its first byte to its end, however the bytes trickle in. */
  readonly commandTimeout: Duration.Duration
  /** Waiting for the next chunk of DATA or BDAT. */
  readonly dataTimeout: Duration.Duration
  /** One message's whole transfer: from DATA's 354 to the final dot, from the first BDAT to BDAT LAST. */
  readonly transferTimeout: Duration.Duration
  /** Message bytes kept in memory before spilling to a temporary file. */
  readonly spillThreshold: number
}

/** How log lines are written: one JSON object per line, or one readable line for a terminal. */
export type LogFormat = "json" | "pretty"

/** OpenTelemetry tracing: spans go to an OTLP/HTTP (JSON) collector. */
export interface TelemetryConfig {
  /** The collector as configured (`http://collector:4318`), for messages. */
  readonly otlpEndpoint: string
  /** Where spans are POSTed: the endpoint's `/v1/traces`, unless it already names that path. */
  readonly tracesUrl: string
  /** The `service.name` resource attribute. */
  readonly serviceName: string
  /** Sent with every export (a collector's API key); never logged. */
  readonly headers: Readonly<Record<string, string>>
}

export interface BridgeConfig extends DeliveryConfig {
  /** The name in the greeting, EHLO reply and Received header. */
  readonly hostname: string
  readonly listeners: ReadonlyArray<ListenerConfig>
  readonly tls: TlsConfig | undefined
  /** Offer AUTH without TLS (only for testing or trusted links). */
  readonly allowInsecureAuth: boolean
  /** htpasswd file (bcrypt) of users allowed to AUTH. */
  readonly users: string | undefined
  /** Networks (CIDR) that may relay without AUTH. */
  readonly trust: ReadonlyArray<string>
  /** Load balancers (CIDR) whose connections start with a PROXY v1/v2 header carrying the real client address. */
  readonly proxyProtocol: ReadonlyArray<string>
  /** Per user, the MAIL FROM addresses (`a@b`) or domains (`@b`) allowed; `*` for any. Users absent may use their own name if it is an address. */
  readonly senders: Readonly<Record<string, ReadonlyArray<string>>>
  /** A header From or Sender the authenticated user may not use: refused (550 5.7.1), or accepted and never signed. */
  readonly forgedFrom: "reject" | "unsigned"
  /** Maildir that receives mail by default. */
  readonly maildir: string
  /** Bare CR or LF inside DATA/BDAT: `normalize` turns each into CRLF, `reject` refuses the message (550 5.6.0). */
  readonly bareLineEndings: "normalize" | "reject"
  readonly limits: Limits
  /** How long graceful shutdown waits for transactions in flight. */
  readonly shutdownTimeout: Duration.Duration
  /** Directory for spilled messages; the OS temp dir by default. */
  readonly tempDir: string | undefined
  /** Plugins from the config file, run after the built-ins that the fields above enable. */
  readonly plugins: ReadonlyArray<Plugin>
  readonly dns: ResolverOptions
  readonly verify: MailauthVerify.Options | undefined
  readonly dkimSign: DkimSign.Options | undefined
  readonly arcSeal: ArcSeal.Options | undefined
  /** Rate limiting, validated; the plugin runs when set. */
  readonly rateLimit: RateLimit.Options | undefined
  /** The admin HTTP listener (`/metrics`, `/healthz`, `/readyz`); off when undefined. */
  readonly admin: AdminConfig | undefined
  /** OpenTelemetry tracing; off when undefined, and then no OpenTelemetry module is even loaded. */
  readonly telemetry: TelemetryConfig | undefined
  /** Log format; undefined picks `pretty` when stdout is a terminal and `json` otherwise. */
  readonly logFormat: LogFormat | undefined
  /** Reload, as on SIGHUP, when the config file, the users file or the TLS certificate or key changes. */
  readonly watchConfig: boolean
}

/** A relay to existing mail infrastructure (`smtp://`, `smtps://`, `lmtp://`). */
export interface RelayTransportConfig {
  readonly type: "smtp" | "lmtp"
  /** Carries host, port, credentials and TLS mode (`?tls=required|opportunistic|none`). */
  readonly url: string
  /** PEM file of the CA that signs the upstream's certificate (default: the system's). */
  readonly ca: string | undefined
  /** Name to verify the certificate against and send as SNI (default: the URL's host). */
  readonly servername: string | undefined
  /** Verify the upstream's certificate; on by default. */
  readonly rejectUnauthorized: boolean
  readonly poolSize: number
  readonly idleTimeout: Duration.Duration
  readonly connectTimeout: Duration.Duration
  readonly commandTimeout: Duration.Duration
  readonly dataTimeout: Duration.Duration
}

export interface WebhookTransportConfig {
  readonly type: "webhook"
  readonly url: string
  readonly secret: string | undefined
  readonly format: "raw" | "json"
  readonly timeout: Duration.Duration
  readonly headers: Readonly<Record<string, string>>
}

export interface MaildirTransportConfig {
  readonly type: "maildir"
  readonly dir: string
}

export type TransportConfig = RelayTransportConfig | WebhookTransportConfig | MaildirTransportConfig

/** One routing rule (see plugins/routing): every condition given must hold. */
export type RouteRule = Routing.Rule

export interface SpoolConfig {
  readonly dir: string
  readonly initialDelay: Duration.Duration
  readonly maxDelay: Duration.Duration
  readonly maxAge: Duration.Duration
  readonly concurrency: number
  /** Bytes kept free on the spool's file system; MAIL FROM is refused (452 4.3.1) below it plus SIZE. */
  readonly minFreeSpace: number
}

export interface DeliveryConfig {
  /** Every transport by name; `default` always exists (Maildir unless `relay` or `webhook` says otherwise). */
  readonly transports: Readonly<Record<string, TransportConfig>>
  /** Routing rules; when present the routing plugin runs. */
  readonly routes: ReadonlyArray<RouteRule> | undefined
  readonly defaultTransport: string
  /** When set, messages are written to disk before the 250 and delivered by a worker. */
  readonly spool: SpoolConfig | undefined
}
