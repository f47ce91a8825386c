/**
 * How many AUTH attempts of one key (a client network, or a network and user name) this process
 * checks at once. The throttle counts an attempt before its credentials are checked (so parallel
 * guesses cannot all pass one check), which means attempts *in progress* fill a key as failures
 * do: 20 legitimate parallel logins of one account (an application's connection pool, a fleet
 * of devices behind one NAT) would get 454 from the 6th on, with nothing wrong. With a gate of
 * the key's own size, the attempts beyond it wait their turn instead (at most `patience`), and
 * are counted once an earlier attempt has given its count back (a success) or kept it (a
 * failure): legitimate logins all pass, and guesses still get no more checks than the limit
 * allows. Per process: several instances sharing a Redis store each gate their own sessions.
 */
import { Clock, Duration, Effect } from "effect"

interface Entry {
  running: number
  readonly waiting: Set<() => void>
}

export interface Gate {
  /**
   * Waits until fewer than `limit` attempts of `key` run here (or `patience` passed: then it goes
   * on, and the store decides), and adds the function that ends this attempt (idempotent) to
   * `held` in the same step as it is admitted, so that an interrupted caller can always end it.
   */
  readonly enter: (key: string, limit: number, patience: Duration.DurationInput, held: Array<() => void>) => Effect.Effect<void>
  /** Keys with attempts running or waiting (for tests: entries are removed when unused). */
  readonly size: () => number
}

export const make = (): Gate => {
  const entries = new Map<string, Entry>()

  const dropIfUnused = (key: string, entry: Entry) => {
    if (entry.running === 0 && entry.waiting.size === 0 && entries.get(key) === entry) entries.delete(key)
  }

  const admit = (key: string, entry: Entry, held: Array<() => void>): void => {
    entry.running++
    let done = false
    held.push(() => {
      if (done) return
      done = true
      entry.running--
      // Every waiter checks again: one handed a slot it can no longer take (its session was
      // interrupted meanwhile) would otherwise leave the others waiting for nothing.
      for (const wake of [...entry.waiting]) wake()
      dropIfUnused(key, entry)
    })
  }

  const wait = (key: string, entry: Entry): Effect.Effect<void> =>
    Effect.async<void>((resume) => {
      const wake = () => {
        entry.waiting.delete(wake)
        resume(Effect.void)
      }
      entry.waiting.add(wake)
      return Effect.sync(() => {
        entry.waiting.delete(wake)
        dropIfUnused(key, entry)
      })
    })

  const enter = (key: string, limit: number, patience: Duration.DurationInput, held: Array<() => void>): Effect.Effect<void> =>
    Effect.flatMap(Clock.currentTimeMillis, (start) => {
      const deadline = start + Duration.toMillis(patience)
      const attempt = (): Effect.Effect<void> =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => {
          let entry = entries.get(key)
          if (entry === undefined) {
            entry = { running: 0, waiting: new Set() }
            entries.set(key, entry)
          }
          const left = deadline - now
          if (entry.running < limit || left <= 0) return Effect.sync(() => admit(key, entry, held))
          const e = entry
          return Effect.flatMap(
            Effect.timeoutTo(wait(key, e), { duration: Duration.millis(left), onSuccess: () => true, onTimeout: () => false }),
            () => {
              dropIfUnused(key, e)
              return attempt()
            }
          )
        })
      return attempt()
    })

  return { enter, size: () => entries.size }
}
