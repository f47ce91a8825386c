/**
 * The validated configuration: what `smtp-bridge.config.ts` (through `defineConfig`) and the CLI
 * flags produce together. Every field has a safe default.
 */
import type { AdminConfig } from "./Admin.ts"
import type { DeliveryConfig } from "./Delivery.ts"
import type { TelemetryConfig } from "./Telemetry.ts"
import type { Decoded } from "./Schema.ts"

export interface ListenerConfig {
  readonly host: string
  readonly port: number
  /** `plain` offers STARTTLS when TLS is configured; `implicit` is TLS from the first byte (RFC 8314). */
  readonly mode: "plain" | "implicit"
}

/** PEM file paths. */
export type TlsConfig = NonNullable<Decoded["tls"]>

/** The limits, checked and with their defaults (declared in `Schema.ts`). */
export type Limits = Decoded["limits"]

/** How log lines are written: one JSON object per line, or one readable line for a terminal. */
export type LogFormat = NonNullable<Decoded["logFormat"]>

/**
 * The fields the server reads as the schema decodes them (`Schema.ts`): their types, defaults and
 * docs live there once. The rest are built from several fields (`listeners`, `transports`,
 * `admin`) or always present, `undefined` when off.
 */
type Plain = Pick<Decoded,
  | "hostname" | "allowInsecureAuth" | "trust" | "proxyProtocol" | "senders" | "forgedFrom" | "maildir" | "bareLineEndings"
  | "limits" | "shutdownTimeout" | "plugins" | "dns" | "watchConfig" | "auth"
>
type OrUndefined<K extends keyof Decoded> = { readonly [P in K]: Decoded[P] | undefined }

export interface BridgeConfig
  extends DeliveryConfig, Plain, OrUndefined<"tls" | "users" | "authCache" | "tempDir" | "verify" | "dkimSign" | "arcSeal" | "rateLimit" | "policy" | "rspamd" | "milter" | "httpHooks" | "logFormat" | "capture">
{
  readonly listeners: ReadonlyArray<ListenerConfig>
  /** The admin HTTP listener (`/metrics`, `/healthz`, `/readyz`); off when undefined. */
  readonly admin: AdminConfig | undefined
  /** OpenTelemetry tracing; off when undefined, and then no OpenTelemetry module is even loaded. */
  readonly telemetry: TelemetryConfig | undefined
}

export type {
  DeliveryConfig, MaildirTransportConfig, RelayTransportConfig, RouteRule, SpoolConfig, TransportConfig, WebhookTransportConfig
} from "./Delivery.ts"
export type { TelemetryConfig } from "./Telemetry.ts"
