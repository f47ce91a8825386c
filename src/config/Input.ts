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
import type { Config, Limits } from "./Schema.ts"

/** Everything a config file may say: the encoded side of the one config schema (`Schema.ts`), whose fields carry the docs. */
export type ConfigInput = typeof Config.Encoded

/** Bytes as a number, or a string such as `"512KB"`, `"25MB"`, `"1GB"` (K/M/G are powers of 1024). */
export type SizeInput = number | string

/** Milliseconds as a number, or an Effect duration string such as `"30 seconds"` or `"5 minutes"`. */
export type DurationInput = number | string

export type TlsInput = NonNullable<ConfigInput["tls"]>
export type LimitsInput = typeof Limits.Encoded
/** A named transport in `transports`. */
export type TransportInput = NonNullable<ConfigInput["transports"]>[string]
/** The durable queue (`--spool DIR`); retries like Postfix: backoff from 5 minutes up to 1 hour, for 5 days. */
export type SpoolInput = Exclude<NonNullable<ConfigInput["spool"]>, string>
/** OpenTelemetry tracing (`--otlp-endpoint URL`); off unless given. */
export type TelemetryInput = NonNullable<ConfigInput["telemetry"]>

/** Identity function that gives config files type checking and editor completion. */
export const defineConfig = (input: ConfigInput): ConfigInput => input
