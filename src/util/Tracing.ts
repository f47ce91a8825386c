/**
 * Spans that cost nothing unless someone collects them. Effect's built-in tracer keeps spans
 * that nobody reads, yet each one still captures a stack, copies the context and adds an exit
 * hook: several times per message on the hot path. With another tracer installed (an
 * OpenTelemetry layer), `withSpan` here is exactly `Effect.withSpan`.
 *
 * @example
 * deliver(message).pipe(Tracing.withSpan("smtp-relay.deliver", { attributes: { "message.id": id } }))
 */
import * as Effect from "effect/Effect"
import type * as Tracer from "effect/Tracer"

/** The tracer every fiber has until a layer replaces it. */
const builtIn = Effect.runSync(Effect.tracer)

/** Whether spans reach a tracer other than the built-in one. */
export const collected = (tracer: Tracer.Tracer): boolean => tracer !== builtIn

/** `Effect.withSpan`, skipped while the built-in tracer is the only one. */
export const withSpan = (name: string, options?: Tracer.SpanOptions) => <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.tracerWith((tracer) => (tracer === builtIn ? self : Effect.withSpan(self, name, options)))

