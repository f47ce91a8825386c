/**
 * AUTH brute-force control of the rate-limit plugin: failed exchanges are counted per client
 * network (IPv4 /24, IPv6 /64) and per (network, user name), never per user name alone, so an
 * attacker can slow down and stop guessing from their own networks but cannot lock a real user
 * out: the owner logging in from another network is not affected.
 *
 * Each attempt is counted *before* the credentials are checked, with one atomic `acquire` on
 * both keys (50 parallel guesses cannot all pass a check made before any of them was counted),
 * and given back when the exchange succeeds or was not decided (a backend deferral). A failure
 * is answered after `delay * 2^n` (n: the attempts already counted in the window, at most
 * `maxDelay`); once a key is used up the exchange is not checked and gets
 * `454 4.7.0 ... try again in <short retry>` after `maxDelay`, the session stays open.
 */
import { Duration, Effect } from "effect"
import { Cidr, Notes, RateLimit, Verdict } from "../../src/index.ts"
import type { AuthContext, AuthResultContext, SessionInfo } from "../../src/index.ts"
import type { Plan } from "./Options.ts"

interface Counted {
  readonly requests: ReadonlyArray<RateLimit.Request>
  /** Attempts the keys held before this one (the larger of the two): sets the failure's delay. */
  readonly before: number
}

// The attempt this session counted at `auth`, for `authResult` to keep (failure) or give back.
const Attempt = Notes.key<Counted | undefined>("rate-limit.authAttempt")

const unavailable = Verdict.defer("Temporary authentication failure", { code: 454, enhanced: "4.7.0" })

type AuthPlan = NonNullable<Plan["auth"]>

/** The `auth` and `authResult` hooks (doing nothing when `authFailures` is off); `exempt` and `onStoreError` as for the other limits. */
export const authHooks = (
  auth: AuthPlan | undefined,
  store: RateLimit.Store,
  options: { readonly exempt: (session: SessionInfo) => boolean; readonly onStoreError: "allow" | "deny" }
) => {
  if (auth === undefined) return { auth: (_: AuthContext) => Effect.succeed(Verdict.Continue), authResult: (_: AuthResultContext) => Effect.void }
  const network = (session: SessionInfo) => Cidr.aggregate(session.remoteAddress, auth.ipv4Prefix, auth.ipv6Prefix)

  // User names compare case-insensitively: a backend that ignores case must not give an attacker
  // one fresh counter per spelling. The network is part of the key: see the module comment. Names
  // are cut at 256 characters: an AUTH line carries up to 4 KB, and the store keeps up to
  // `maxKeys` keys (two names sharing 256 characters share a counter, which only slows them).
  const keysFor = (session: SessionInfo, username: string) => {
    const net = network(session)
    return [
      { request: { key: `auth-net:${net}`, rate: auth.perIp, cost: 1 }, what: `from ${net}` },
      { request: { key: `auth-user:${net}:${username.trim().toLowerCase().slice(0, 256)}`, rate: auth.perUser, cost: 1 }, what: `for this user from ${net}` }
    ]
  }

  /** `delay * 2^n`, at most `maxDelay`. */
  const delayAfter = (before: number): Duration.Duration =>
    Duration.millis(Math.min(Duration.toMillis(auth.maxDelay), Duration.toMillis(auth.delay) * 2 ** Math.min(before, 30)))

  const storeFailed = (error: RateLimit.RateLimitStoreError) =>
    Effect.as(
      Effect.logWarning(`rate-limit: store ${store.description} failed (${error.reason}): ${error.message}`),
      options.onStoreError === "allow" ? Verdict.Continue : unavailable
    )

  return {
    auth: Effect.fn("rate-limit.auth")(function*({ session, username }: AuthContext) {
      session.notes.set(Attempt, undefined)
      if (options.exempt(session)) return Verdict.Continue
      const keys = keysFor(session, username)
      const results = yield* Effect.either(store.update("acquire", keys.map((k) => k.request)))
      if (results._tag === "Left") return yield* storeFailed(results.left)
      const before = Math.max(...results.right.map((r) => r.used))
      let worst: { readonly what: string; readonly retryAfterMs: number } | undefined
      results.right.forEach((r, i) => {
        if (!r.allowed && (worst === undefined || r.retryAfterMs > worst.retryAfterMs)) worst = { what: keys[i]!.what, retryAfterMs: r.retryAfterMs }
      })
      if (worst !== undefined) {
        // Not checked and not counted; answered slowly so that asking again costs the client time.
        yield* Effect.sleep(auth.maxDelay)
        return Verdict.defer(`Too many authentication failures ${worst.what}, try again in ${RateLimit.formatRetry(worst.retryAfterMs)}`, {
          code: 454,
          enhanced: "4.7.0"
        })
      }
      session.notes.set(Attempt, { requests: keys.map((k) => k.request), before })
      return Verdict.Continue
    }),

    authResult: Effect.fn("rate-limit.authResult")(function*({ outcome, session }: AuthResultContext) {
      const counted = session.notes.get(Attempt)
      session.notes.set(Attempt, undefined)
      if (counted === undefined) return
      if (outcome === "failure") return yield* Effect.sleep(delayAfter(counted.before))
      // Success (or a backend that could not decide): the attempt was no failed guess. Only this
      // attempt is given back; earlier failures stay, so a valid account clears nothing.
      yield* Effect.catchAll(
        store.update("consume", counted.requests.map((r) => ({ ...r, cost: -r.cost }))),
        (error) => Effect.logDebug(`rate-limit: could not give back an AUTH attempt: ${error.message}`)
      )
    })
  }
}
