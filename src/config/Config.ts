/**
 * The validated configuration: what `smtp-bridge.config.ts` (through `defineConfig`) and the CLI
 * flags produce together. Every field has a safe default.
 */
import type { Duration } from "effect"
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
  /** Unknown or invalid commands before 421 and close. */
  readonly maxInvalidCommands: number
  /** Failed AUTH attempts before 421 and close. */
  readonly maxAuthFailures: number
  readonly greetingTimeout: Duration.Duration
  /** Waiting for the next command (RFC 5321 says at least 5 minutes). */
  readonly idleTimeout: Duration.Duration
  /** Waiting for the next chunk of DATA or BDAT. */
  readonly dataTimeout: Duration.Duration
  /** Message bytes kept in memory before spilling to a temporary file. */
  readonly spillThreshold: number
}

export interface BridgeConfig {
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
  /** Per user, the MAIL FROM addresses (`a@b`) or domains (`@b`) allowed; `*` for any. Users absent may use their own name if it is an address. */
  readonly senders: Readonly<Record<string, ReadonlyArray<string>>>
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
}
