/**
 * The limiter arithmetic: GCRA (the generic cell rate algorithm, a token bucket written as one
 * timestamp), pure and clock-free so that the memory store, the Redis script and the tests
 * agree on every number.
 *
 * A limit of `count` per `period` spaces events `interval = period / count` apart and lets a
 * whole `count` arrive at once. The state of a key is its TAT (theoretical arrival time): the
 * moment at which the key would be empty again. An event of cost `n` at `now` moves the TAT to
 * `max(tat, now) + n * interval` and fits when that is no more than `period` ahead of `now`.
 * The window is therefore rolling: capacity comes back continuously, one event per interval,
 * rather than all at once at the top of the hour.
 *
 * @example
 * import * as Limiter from "./Limiter.ts"
 * const limit = Limiter.parseLimit("user=100/hour") // { scope: "user", count: 100, periodMs: 3_600_000 }
 * Limiter.evaluate(limit, undefined, 1, Date.now()) // { allowed: true, remaining: 99, ... }
 */
import * as Either from "effect/Either"

/** What a limit counts. */
export type Scope = "ip" | "user" | "sender-domain" | "recipients"

export const scopes: ReadonlyArray<Scope> = ["ip", "user", "sender-domain", "recipients"]

export type Period = "second" | "minute" | "hour" | "day"

export const periods: Readonly<Record<Period, number>> = {
  second: 1000,
  minute: 60_000,
  hour: 3_600_000,
  day: 86_400_000
}

/** `count` events per `periodMs` milliseconds. */
export interface Rate {
  readonly count: number
  readonly periodMs: number
}

/** A rate bound to what it counts, as `--rate-limit user=100/hour` writes it. */
export interface Limit extends Rate {
  readonly scope: Scope
}

export interface Decision {
  /** Whether the cost fits now. */
  readonly allowed: boolean
  /** Events of cost 1 that would still fit after this one (0 when refused). */
  readonly remaining: number
  /** When refused, how long until the cost fits; 0 when allowed. */
  readonly retryAfterMs: number
  /** The TAT after the event, whether or not it was allowed (consume-anyway stores it). */
  readonly tat: number
}

const RATE = /^\s*(\d+)\s*(?:[a-z-]+\s*)?\/\s*(?:(\d+)\s*)?([a-z]+?)s?\s*$/i

/**
 * Parses `COUNT/PERIOD` (`100/hour`, `20/minute`, `1000 recipients/day`, `5/10 minutes`).
 * Periods: second, minute, hour, day, optionally with a multiplier and a plural `s`.
 *
 * @example
 * Limiter.parseRate("20/minute") // Either.right({ count: 20, periodMs: 60000 })
 * Limiter.parseRate("20 per minute") // Either.left('invalid rate "20 per minute"; ...')
 */
export const parseRate = (text: string): Either.Either<Rate, string> => {
  const match = RATE.exec(text)
  const unit = match?.[3]?.toLowerCase()
  const base = unit !== undefined && unit in periods ? periods[unit as Period] : undefined
  if (match === null || base === undefined) {
    return Either.left(
      `invalid rate ${JSON.stringify(text)}; expected COUNT/PERIOD with PERIOD one of second, minute, hour, day ` +
        `(e.g. "100/hour", "1000 recipients/day", "5/10 minutes")`
    )
  }
  const count = Number(match[1])
  const multiplier = match[2] === undefined ? 1 : Number(match[2])
  if (!Number.isSafeInteger(count) || count < 1) return Either.left(`invalid rate ${JSON.stringify(text)}: the count must be at least 1`)
  if (!Number.isSafeInteger(multiplier) || multiplier < 1) {
    return Either.left(`invalid rate ${JSON.stringify(text)}: the period multiplier must be at least 1`)
  }
  return Either.right({ count, periodMs: base * multiplier })
}

/**
 * Parses one `--rate-limit` value, `SCOPE=COUNT/PERIOD`, with scopes ip, user, sender-domain and
 * recipients. Returns the reason in words on the left, for the CLI and the config loader.
 *
 * @example
 * Limiter.parseLimit("recipients=1000/day") // Either.right({ scope: "recipients", count: 1000, periodMs: 86400000 })
 * Limiter.parseLimit("users=1/hour") // Either.left('unknown rate limit scope "users" in "users=1/hour"; ...')
 */
export const parseLimit = (text: string): Either.Either<Limit, string> => {
  const eq = text.indexOf("=")
  if (eq < 0) {
    return Either.left(`invalid rate limit ${JSON.stringify(text)}; expected SCOPE=COUNT/PERIOD such as "user=100/hour"`)
  }
  const scope = text.slice(0, eq).trim().toLowerCase()
  if (!(scopes as ReadonlyArray<string>).includes(scope)) {
    return Either.left(
      `unknown rate limit scope ${JSON.stringify(text.slice(0, eq).trim())} in ${JSON.stringify(text)}; ` +
        `expected one of ${scopes.join(", ")}`
    )
  }
  return Either.map(
    Either.mapLeft(parseRate(text.slice(eq + 1)), (why) => `${why} (in --rate-limit ${JSON.stringify(text)})`),
    (rate) => ({ scope: scope as Scope, ...rate })
  )
}

/** Milliseconds between two events at the steady rate. */
export const intervalOf = (rate: Rate): number => rate.periodMs / rate.count

/**
 * The rounding tolerance of a rate, in milliseconds. TATs are epoch times (1.7e12 ms), where one
 * double step is 2.4e-4 ms, and every event adds one rounded interval: a burst of COUNT piles up
 * to COUNT half-steps of error. A fixed 1e-6 ms refused the last event of a full burst for 109
 * of 300 rates tried (e.g. 49/second); COUNT quarter-steps absorb it, capped at half an interval
 * so that it never lets a whole extra event through. Exact for intervals of 1 ms and more (up to
 * 1000 events a second), which covers every limit an SMTP bridge sets.
 */
export const toleranceOf = (rate: Rate): number => Math.min(intervalOf(rate) / 2, Math.max(1e-3, rate.count * 2.5e-4))

/**
 * Applies an event of `cost` at `now` to a key whose TAT is `tat` (`undefined`: never seen or
 * expired). Pure: the caller decides whether to store `decision.tat`.
 *
 * @example
 * Limiter.evaluate({ count: 2, periodMs: 1000 }, undefined, 3, 0) // { allowed: false, retryAfterMs: 500, ... }
 */
export const evaluate = (rate: Rate, tat: number | undefined, cost: number, now: number): Decision => {
  const interval = intervalOf(rate)
  const tolerance = toleranceOf(rate)
  const start = tat === undefined || tat < now ? now : tat
  const next = start + cost * interval
  const excess = next - now - rate.periodMs
  // The tolerance absorbs the rounding of periods that do not divide evenly (1000 ms / 3).
  const allowed = excess <= tolerance
  return {
    allowed,
    remaining: allowed ? Math.max(0, Math.floor((rate.periodMs - (next - now) + tolerance) / interval)) : 0,
    retryAfterMs: allowed ? 0 : Math.ceil(excess),
    tat: next
  }
}

/**
 * How many events of cost 1 the key holds at `now`: failures counted so far, rounded up.
 *
 * @example
 * Limiter.used({ count: 10, periodMs: 60_000 }, 12_000, 0) // 2
 */
export const used = (rate: Rate, tat: number | undefined, now: number): number =>
  tat === undefined || tat <= now ? 0 : Math.max(0, Math.ceil((tat - now - toleranceOf(rate)) / intervalOf(rate)))

/**
 * A retry hint for reply text, in whole seconds (rounded up) or larger units.
 *
 * @example
 * Limiter.formatRetry(36_200) // "37 seconds"
 * Limiter.formatRetry(5_400_000) // "90 minutes"
 */
export const formatRetry = (ms: number): string => {
  const seconds = Math.max(1, Math.ceil(ms / 1000))
  if (seconds < 120) return `${seconds} second${seconds === 1 ? "" : "s"}`
  const minutes = Math.ceil(seconds / 60)
  if (minutes < 180) return `${minutes} minutes`
  return `${Math.ceil(minutes / 60)} hours`
}

/** The limit as the CLI writes it, for logs: `user=100/hour`. */
export const format = (limit: Limit): string => {
  const unit = (Object.keys(periods) as Array<Period>).find((p) => periods[p] === limit.periodMs)
  if (unit !== undefined) return `${limit.scope}=${limit.count}/${unit}`
  return `${limit.scope}=${limit.count}/${limit.periodMs / 1000} seconds`
}
