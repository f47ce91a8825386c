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
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"

interface Waiter {
  /** Gives this waiter the slot an ending attempt freed, and lets it go. */
  readonly take: () => void
}

interface Entry {
  running: number
  /** In arrival order: a freed slot goes to the one waiting longest. */
  readonly waiting: Array<Waiter>
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
    if (entry.running === 0 && entry.waiting.length === 0 && entries.get(key) === entry) entries.delete(key)
  }

  const admit = (key: string, entry: Entry, held: Array<() => void>): void => {
    entry.running++
    let done = false
    held.push(() => {
      if (done) return
      done = true
      entry.running--
      // The freed slot goes to one waiter, admitted here in the same step (its end is in its own
      // `held`, which its caller ends if it is interrupted): waking them all to race for it cost
      // ~100 fiber wake-ups per login at 100 parallel sessions.
      entry.waiting.shift()?.take()
      dropIfUnused(key, entry)
    })
  }

  const wait = (key: string, entry: Entry, held: Array<() => void>): Effect.Effect<void> =>
    Effect.async<void>((resume) => {
      const waiter: Waiter = {
        take: () => {
          admit(key, entry, held)
          resume(Effect.void)
        }
      }
      entry.waiting.push(waiter)
      return Effect.sync(() => {
        const at = entry.waiting.indexOf(waiter)
        if (at >= 0) entry.waiting.splice(at, 1)
        dropIfUnused(key, entry)
      })
    })

  const enter = (key: string, limit: number, patience: Duration.DurationInput, held: Array<() => void>): Effect.Effect<void> =>
    Effect.suspend(() => {
      let entry = entries.get(key)
      if (entry === undefined) {
        entry = { running: 0, waiting: [] }
        entries.set(key, entry)
      }
      const e = entry
      if (e.running < limit) return Effect.sync(() => admit(key, e, held))
      // Past its patience it goes on without a slot (the store then decides).
      return Effect.timeoutTo(wait(key, e, held), {
        duration: patience,
        onSuccess: () => Effect.void,
        onTimeout: () => Effect.sync(() => admit(key, e, held))
      }).pipe(Effect.flatten)
    })

  return { enter, size: () => entries.size }
}
