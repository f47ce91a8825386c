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
 *
 * A (network, user) pair that logged in successfully within the last 30 days is exempt from the
 * network-wide count (its own pair count still applies): a neighbour guessing other names from
 * the same /24 (an office, a carrier-grade NAT, a shared cloud range) must not lock out the users
 * who already log in from there. The mark is a key of the same store (one event per 30 days,
 * spent: a `peek` that is refused means "known"), so it is shared through Redis too.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { Cidr, Notes, RateLimit, Verdict } from "../../src/index.ts"
import type { AuthAttemptContext, AuthResultContext, DisconnectContext, SessionInfo } from "../../src/index.ts"
import * as Gate from "./Gate.ts"
import type { Plan } from "./Plan.ts"

interface Counted {
  readonly requests: ReadonlyArray<RateLimit.Request>
  /** Attempts the keys held before this one (the larger of the two): sets the failure's delay. */
  readonly before: number
  /** Lets the next attempt of the same keys waiting in this process go (see Gate.ts). */
  readonly leave: () => void
}

// The attempt this session counted at `auth`, for `authResult` to keep (failure) or give back.
// One key per plugin instance: notes are keyed by name, and with two instances in one pipeline
// (the built-in throttle and a configured one) a shared key let one clear the other's attempt,
// which was then never given back.
let instances = 0
const attemptKey = () => Notes.key<Counted | undefined>(`rate-limit.authAttempt#${++instances}`)

const unavailable = Verdict.defer("Temporary authentication failure", { code: 454, enhanced: "4.7.0" })

type AuthPlan = NonNullable<Plan["auth"]>

const knownForMs = 30 * 24 * 60 * 60 * 1000

/** The `auth` and `authResult` hooks (doing nothing when `authFailures` is off); `exempt` and `onStoreError` as for the other limits. */
export const authHooks = (
  auth: AuthPlan | undefined,
  store: RateLimit.Store,
  options: { readonly exempt: (session: SessionInfo) => boolean; readonly onStoreError: "allow" | "deny" }
) => {
  if (auth === undefined) {
    return {
      authAttempt: (_: AuthAttemptContext) => Effect.succeed(Verdict.Continue),
      authResult: (_: AuthResultContext) => Effect.void,
      disconnect: (_: DisconnectContext) => Effect.void
    }
  }
  const Attempt = attemptKey()
  const gate = Gate.make()
  const network = (session: SessionInfo) => Cidr.aggregate(session.remoteAddress, auth.ipv4Prefix, auth.ipv6Prefix)

  // User names compare case-insensitively: a backend that ignores case must not give an attacker
  // one fresh counter per spelling. The network is part of the key: see the module comment. Names
  // are cut at 256 characters: an AUTH line carries up to 4 KB, and the store keeps up to
  // `maxKeys` keys (two names sharing 256 characters share a counter, which only slows them).
  const name = (username: string) => username.trim().toLowerCase().slice(0, 256)
  const keysFor = (session: SessionInfo, username: string, known: boolean) => {
    const net = network(session)
    const pair = { request: { key: `auth-user:${net}:${name(username)}`, rate: auth.perUser, cost: 1 }, what: `for this user from ${net}` }
    return known ? [pair] : [{ request: { key: `auth-net:${net}`, rate: auth.perIp, cost: 1 }, what: `from ${net}` }, pair]
  }
  const knownKey = (session: SessionInfo, username: string): RateLimit.Request => ({
    key: `auth-known:${network(session)}:${name(username)}`,
    rate: { count: 1, periodMs: knownForMs },
    cost: 1
  })
  /** Whether this pair logged in within `knownForMs`; a store error counts as not known. */
  const isKnown = (session: SessionInfo, username: string) =>
    store.update("peek", [knownKey(session, username)]).pipe(
      Effect.map((results) => results[0]?.allowed === false),
      Effect.orElseSucceed(() => false)
    )

  /** `delay * 2^n`, at most `maxDelay`. */
  const delayAfter = (before: number): Duration.Duration =>
    Duration.millis(Math.min(Duration.toMillis(auth.maxDelay), Duration.toMillis(auth.delay) * 2 ** Math.min(before, 30)))

  const storeFailed = (error: RateLimit.RateLimitStoreError) =>
    Effect.as(
      Effect.logWarning(`rate-limit: store ${store.description} failed (${error.reason}): ${error.message}`),
      options.onStoreError === "allow" ? Verdict.Continue : unavailable
    )

  /** Counts one attempt, or refuses it (454 4.7.0, after `maxDelay`) once a key is used up. */
  const attempt = Effect.fnUntraced(function*({ session, username }: { readonly session: SessionInfo; readonly username: string }) {
    session.notes.get(Attempt)?.leave()
    session.notes.set(Attempt, undefined)
    if (options.exempt(session)) return Verdict.Continue
    const keys = keysFor(session, username, yield* isKnown(session, username))
    // Attempts in progress count as failures until they end: beyond a key's size, wait for one to
    // end rather than be refused for it (Gate.ts). Always in the same order (the pair's key, then
    // the network's), so two waits never hold each other up.
    const leaves: Array<() => void> = []
    const leave = () => leaves.forEach((l) => l())
    yield* Effect.onInterrupt(
      Effect.forEach([...keys].reverse(), (k) => gate.enter(k.request.key, k.request.rate.count, auth.maxDelay, leaves), { discard: true }),
      () => Effect.sync(leave)
    )
    const results = yield* Effect.either(store.update("acquire", keys.map((k) => k.request)))
    if (results._tag === "Left") {
      leave()
      return yield* storeFailed(results.left)
    }
    const before = Math.max(...results.right.map((r) => r.used))
    let worst: { readonly what: string; readonly retryAfterMs: number } | undefined
    results.right.forEach((r, i) => {
      if (!r.allowed && (worst === undefined || r.retryAfterMs > worst.retryAfterMs)) worst = { what: keys[i]!.what, retryAfterMs: r.retryAfterMs }
    })
    if (worst !== undefined) {
      leave()
      // Not checked and not counted; answered slowly so that asking again costs the client time.
      yield* Effect.sleep(auth.maxDelay)
      return Verdict.defer(`Too many authentication failures ${worst.what}, try again in ${RateLimit.formatRetry(worst.retryAfterMs)}`, {
        code: 454,
        enhanced: "4.7.0"
      })
    }
    session.notes.set(Attempt, { requests: keys.map((k) => k.request), before, leave })
    return Verdict.Continue
  })

  return {
    // The bridge asks `authAttempt` before any backend checks PLAIN or LOGIN credentials, and,
    // for a plugin's mechanism (SCRAM, OAUTHBEARER, Dovecot's), whose user is known only once the
    // exchange decided, before the client hears the result: past the limit the result is
    // withheld (454), so parallel guesses learn nothing. Not an `auth` hook: it checks no
    // credentials, so it does not make the bridge offer PLAIN and LOGIN.
    authAttempt: (ctx: AuthAttemptContext) => attempt(ctx),

    authResult: Effect.fnUntraced(function*({ outcome, session, username }: AuthResultContext) {
      const counted = session.notes.get(Attempt)
      session.notes.set(Attempt, undefined)
      if (counted === undefined) return
      if (outcome === "failure") {
        // The count is kept: the next attempt waiting for this one may go (and is counted after it).
        counted.leave()
        return yield* Effect.sleep(delayAfter(counted.before))
      }
      yield* Effect.ensuring(
        Effect.gen(function*() {
          if (outcome === "success") {
            // Marked (again) for 30 days from now: exempt from the network-wide count.
            const mark = knownKey(session, username)
            yield* Effect.catchAll(
              Effect.zipRight(store.update("reset", [mark]), store.update("consume", [mark])),
              (error) => Effect.logDebug(`rate-limit: could not mark a login as known: ${error.message}`)
            )
          }
          // Success (or a backend that could not decide): the attempt was no failed guess. Only this
          // attempt is given back; earlier failures stay, so a valid account clears nothing.
          yield* Effect.catchAll(
            store.update("consume", counted.requests.map((r) => ({ ...r, cost: -r.cost }))),
            (error) => Effect.logDebug(`rate-limit: could not give back an AUTH attempt: ${error.message}`)
          )
        }),
        // After the count is given back, so that the attempt waiting for this one finds it free.
        Effect.sync(counted.leave)
      )
    }),

    // A session that ends between the attempt and its result (the client left, the check hung)
    // keeps its count (a guess must not be free) but no longer holds up the attempts waiting.
    disconnect: ({ session }: DisconnectContext) =>
      Effect.sync(() => {
        session.notes.get(Attempt)?.leave()
        session.notes.set(Attempt, undefined)
      })
  }
}
