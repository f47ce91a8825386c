/**
 * The OpenTelemetry half of `Telemetry.ts`, imported only when `telemetry` is configured: a
 * tracer provider whose batch processor POSTs spans to the collector as OTLP/HTTP JSON, and the
 * Effect tracer of `@effect/opentelemetry` that turns Effect spans into its spans.
 *
 * Export is best effort: a collector that is down costs the spans of that batch, never a
 * message. Failures are logged as a warning at most once a minute.
 *
 * @example
 * const tracer = yield* Otlp.make(config.telemetry)
 */
import * as OtelResource from "@effect/opentelemetry/Resource"
import * as OtelTracer from "@effect/opentelemetry/Tracer"
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http"
import { resourceFromAttributes } from "@opentelemetry/resources"
import { BasicTracerProvider, BatchSpanProcessor, type SpanExporter } from "@opentelemetry/sdk-trace-base"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import type * as Tracer from "effect/Tracer"
import packageJson from "../../package.json" with { type: "json" }
import type { TelemetryConfig } from "../config/Config.ts"
import { describe } from "../config/Telemetry.ts"

/** How long shutdown waits for the last spans to reach the collector. */
const flushTimeout = Duration.seconds(5)
const warnEveryMs = 60_000

/** The exporter, with its failures reported through `warn` (the OpenTelemetry SDK keeps them quiet). */
const reporting = (exporter: SpanExporter, where: string, warn: (message: string) => void): SpanExporter => {
  let lastWarned = -Infinity
  let dropped = 0
  return {
    export: (spans, done) =>
      exporter.export(spans, (result) => {
        // ExportResultCode.SUCCESS is 0.
        if (result.code !== 0) {
          dropped += spans.length
          const now = Date.now()
          if (now - lastWarned >= warnEveryMs) {
            lastWarned = now
            warn(`telemetry: cannot export spans to ${where} (${dropped} dropped so far): ${result.error?.message ?? "export failed"}`)
          }
        }
        done(result)
      }),
    shutdown: () => exporter.shutdown(),
    forceFlush: () => exporter.forceFlush?.() ?? Promise.resolve()
  }
}

/** The Effect tracer; its provider flushes and shuts down when the scope closes. */
export const make = (config: TelemetryConfig): Effect.Effect<Tracer.Tracer, never, Scope.Scope> =>
  Effect.gen(function*() {
    // Warnings are logged with the loggers of the caller (the serve command's format).
    const runtime = yield* Effect.runtime<never>()
    const where = describe(config)
    const exporter = reporting(
      new OTLPTraceExporter({ url: config.tracesUrl, headers: { ...config.headers } }),
      where,
      (message) => void Runtime.runFork(runtime)(Effect.logWarning(message))
    )
    const resource = resourceFromAttributes(
      OtelResource.configToAttributes({ serviceName: config.serviceName, serviceVersion: packageJson.version })
    )
    const provider = yield* Effect.acquireRelease(
      Effect.sync(() => new BasicTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(exporter)] })),
      (provider) =>
        Effect.tryPromise({
          try: () => provider.forceFlush().then(() => provider.shutdown()),
          catch: (error) => (error instanceof Error ? error.message : String(error))
        }).pipe(
          // Finalizers are uninterruptible: without this the timeout could not end the wait.
          Effect.interruptible,
          Effect.timeoutFail({ duration: flushTimeout, onTimeout: () => `timed out after ${Duration.format(flushTimeout)}` }),
          Effect.catchAll((error) => Effect.logWarning(`telemetry: the last spans may not have reached ${where}: ${error}`))
        )
    )
    return yield* Effect.provideService(OtelTracer.make, OtelTracer.OtelTracer, provider.getTracer("smtp-bridge", packageJson.version))
  })
