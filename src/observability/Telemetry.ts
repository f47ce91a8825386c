/**
 * Optional OpenTelemetry tracing. With `telemetry` configured, the bridge runs under a tracer that
 * sends its spans to an OTLP/HTTP collector (`Otlp.ts`). Without it nothing changes: the
 * OpenTelemetry modules are never imported (they load here, by a dynamic import, and only then),
 * and `Tracing.withSpan` and the plugin runner keep skipping spans on the hot path.
 *
 * @example
 * const running = yield* Telemetry.withTracing(config.telemetry)(serve(config))
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Tracer from "effect/Tracer"
import type { TelemetryConfig } from "../config/Config.ts"

export { describe } from "../config/Telemetry.ts"

export class TelemetryError extends Data.TaggedError("TelemetryError")<{ readonly message: string }> {}

const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error)).split("\n")[0]!

/**
 * The tracer for `config`, undefined when telemetry is off. Its spans are flushed and the exporter
 * shut down when the scope closes.
 */
export const tracer = (config: TelemetryConfig | undefined): Effect.Effect<Tracer.Tracer | undefined, TelemetryError, Scope.Scope> =>
  config === undefined ? Effect.succeed(undefined) : Effect.tryPromise({
    try: () => import("./Otlp.ts"),
    catch: (error) => new TelemetryError({ message: `telemetry: cannot load OpenTelemetry: ${messageOf(error)}` })
  }).pipe(Effect.flatMap((otlp) => otlp.make(config)))

/**
 * Runs `self`, and every fiber it forks (connections, the spool's worker), under the configured
 * tracer. The tracer is made in the caller's scope before `self` starts, so that on close it is
 * the last to go: spans of sessions that drain are still exported.
 */
export const withTracing = (config: TelemetryConfig | undefined) =>
<A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | TelemetryError, R | Scope.Scope> =>
  Effect.flatMap(tracer(config), (t) => (t === undefined ? self : Effect.withTracer(self, t)))
