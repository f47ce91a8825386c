/**
 * The port every rate-limit store implements: the memory store (one process) and the Redis store
 * (several bridge instances sharing one count). One call decides for several keys at once, so a
 * check of "this user, this IP and this sender domain" is one round trip and one atomic step.
 *
 * @example
 * const store = yield* RateLimitStore
 * const [user] = yield* store.update("peek", [{ key: "user:alice", rate: { count: 100, periodMs: 3_600_000 }, cost: 1 }])
 * if (!user.allowed) return Verdict.defer(`try again in ${Limiter.formatRetry(user.retryAfterMs)}`)
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as Limiter from "./Limiter.ts"

/** One key to decide for. */
export interface Request {
  /** Opaque; stores prefix it with their namespace. */
  readonly key: string
  readonly rate: Limiter.Rate
  /** Events this request stands for; negative with `consume` gives back what an earlier one counted. */
  readonly cost: number
}

/** The outcome for one key. */
export interface Result {
  readonly allowed: boolean
  readonly remaining: number
  readonly retryAfterMs: number
  /** Events of cost 1 that the key currently holds (before this request). */
  readonly used: number
}

/**
 * - `peek`: decide, change nothing (checks at MAIL and RCPT).
 * - `consume`: add the cost to every key, even past the limit: what was accepted has happened, and
 *   a debt makes the next request wait longer (counting delivered messages and AUTH failures).
 * - `acquire`: add the cost to every key only when all of them allow it, atomically.
 * - `reset`: forget the keys.
 */
export type Mode = "peek" | "consume" | "acquire" | "reset"

/** The store could not be reached or answered nonsense; the plugin's `onStoreError` decides. */
export class RateLimitStoreError extends Schema.TaggedError<RateLimitStoreError>()("RateLimitStoreError", {
  reason: Schema.Literal("Unavailable", "Timeout", "Protocol"),
  message: Schema.String
}) {}

export interface Store {
  /** Results in the order of `requests`. */
  readonly update: (mode: Mode, requests: ReadonlyArray<Request>) => Effect.Effect<ReadonlyArray<Result>, RateLimitStoreError>
  /** For logs: `memory` or `redis://host:port`. */
  readonly description: string
}

export class RateLimitStore extends Context.Tag("smtp-bridge/RateLimitStore")<RateLimitStore, Store>() {}
