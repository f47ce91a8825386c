/**
 * The `telemetry` part of the config (`--otlp-endpoint URL`): where spans go, checked with the
 * same one-line errors as the rest. Nothing here imports OpenTelemetry: checking a config, or
 * running without `telemetry`, loads none of it (see `observability/Telemetry.ts`).
 *
 * @example
 * Telemetry.tracesUrl("http://collector:4318") // "http://collector:4318/v1/traces"
 */
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { expecting, NonEmptyString, optional } from "./Fields.ts"



export const defaultServiceName = "smtp-bridge"

// Credentials go in `headers`, which are never shown; the URL is, in the start-up line and in warnings.
const isCollectorUrl = (s: string): boolean => {
  if (!/^https?:\/\//i.test(s)) return false
  try {
    const url = new URL(s)
    return url.hostname !== "" && url.username === "" && url.password === ""
  } catch {
    return false
  }
}

// RFC 9110 5.1 and 5.5: a token for the name; a value may not break the header line.
const HeaderName = Schema.String.annotations(expecting("an HTTP header name (letters, digits and !#$%&'*+-.^_`|~)"))
const isHeaderName = (s: string): boolean => /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(s)
const HeaderValue = Schema.String.pipe(Schema.filter((s) => !/[\r\n\0]/.test(s)))
  .annotations(expecting("a header value: a string on one line"))

// A bad name is reported at its own path, as a bad value is.
const Headers = Schema.Record({ key: Schema.String, value: HeaderValue }).pipe(Schema.filter((headers) => {
  const bad = Object.keys(headers).find((name) => !isHeaderName(name))
  return bad === undefined || new ParseResult.Pointer([bad], headers, new ParseResult.Type(HeaderName.ast, bad))
})).annotations(expecting("an object of header names to values"))

const TelemetryInput = Schema.Struct({
  /** The collector's OTLP/HTTP base URL (`http://host:4318`); spans go to its `/v1/traces`. A URL already ending in `/v1/traces` is used as it is. */
  otlpEndpoint: Schema.String.pipe(Schema.filter(isCollectorUrl))
    .annotations(expecting("an http:// or https:// URL of an OTLP/HTTP collector without credentials, like http://127.0.0.1:4318")),
  /** The `service.name` of every span; default `"smtp-bridge"`. */
  serviceName: optional(NonEmptyString),
  /** HTTP headers sent with every export, such as a collector's API key; never logged. */
  headers: optional(Headers)
}).annotations(expecting("{ otlpEndpoint, serviceName?, headers? }"))

/** OpenTelemetry tracing: spans go to an OTLP/HTTP (JSON) collector. */
const TelemetryConfig = Schema.Struct({
  /** The collector as configured (`http://collector:4318`), for messages. */
  otlpEndpoint: Schema.String,
  /** Where spans are POSTed: the endpoint's `/v1/traces`, unless it already names that path. */
  tracesUrl: Schema.String,
  /** The `service.name` resource attribute. */
  serviceName: Schema.String,
  /** Sent with every export (a collector's API key); never logged. */
  headers: Schema.Record({ key: Schema.String, value: Schema.String })
})
export type TelemetryConfig = typeof TelemetryConfig.Type

const TelemetrySchema = Schema.transform(TelemetryInput, TelemetryConfig, {
  strict: true,
  decode: (input) => ({
    otlpEndpoint: input.otlpEndpoint,
    tracesUrl: tracesUrl(input.otlpEndpoint),
    serviceName: input.serviceName ?? defaultServiceName,
    headers: input.headers ?? {}
  }),
  encode: ({ otlpEndpoint, serviceName, headers }) => ({ otlpEndpoint, serviceName, headers })
})

/** The fields this module adds to the config file's schema. */
export const fields = {
  /** OpenTelemetry tracing to an OTLP/HTTP collector (`--otlp-endpoint URL`); off by default. */
  telemetry: optional(TelemetrySchema)
}

/**
 * The URL spans are POSTed to. An endpoint is a collector's base URL, as
 * `OTEL_EXPORTER_OTLP_ENDPOINT` is: the signal's path `/v1/traces` goes after it, unless the URL
 * names that path already.
 */
export const tracesUrl = (endpoint: string): string => {
  const url = new URL(endpoint)
  if (!/\/v1\/traces\/?$/.test(url.pathname)) url.pathname = `${url.pathname.replace(/\/+$/, "")}/v1/traces`
  return url.href
}

/** `off`, or where spans go, for summaries and log lines: no credentials, no query string. */
export const describe = (telemetry: TelemetryConfig | undefined): string => {
  if (telemetry === undefined) return "off"
  const url = new URL(telemetry.tracesUrl)
  return `${url.protocol}//${url.host}${url.pathname}`
}
