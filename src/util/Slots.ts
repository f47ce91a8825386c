/**
 * A counting semaphore that hands a freed slot to the fiber waiting longest, in the same step.
 *
 * Hand-written because Effect 3's `Semaphore` wakes every waiter on each release while slots
 * are free: the woken fibers only take their permit when they next run, so until then every
 * waiter still sees the freed slot, is resumed, loses the race and waits again. Here a release
 * admits one waiter, FIFO, so a wait costs one wake-up and nobody starves.
 *
 * @example
 * const slots = Slots.make(16)
 * yield* slots.withSlot(deliver)                     // waits (interruptibly) for a slot
 * const done = yield* slots.withSlotIfFree(deliver)  // Option.none() when none is free now
 */
import * as Effect from "effect/Effect"
import type * as Option from "effect/Option"

interface Waiter {
  /** Set when a release handed this waiter its slot. */
  granted: boolean
  readonly wake: () => void
}

export interface Slots {
  /** Slots not taken. */
  readonly free: () => number
  /** Fibers waiting for a slot. */
  readonly waiting: () => number
  /** Waits for a slot and takes it (interruptible: an interrupted wait leaves no slot taken). */
  readonly take: Effect.Effect<void>
  /** Takes a slot if one is free now. */
  readonly tryTake: () => boolean
  /** Gives a slot back: to the longest waiter if there is one. */
  readonly release: () => void
  /** Runs `self` holding a slot, waiting for one if none is free; the slot is given back however it ends. */
  readonly withSlot: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** Runs `self` holding a slot when one is free now; `Option.none()` without running it otherwise. */
  readonly withSlotIfFree: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<Option.Option<A>, E, R>
}

export const make = (size: number): Slots => {
  let free = Math.max(0, Math.floor(size))
  const queue: Array<Waiter> = []

  const release = (): void => {
    const next = queue.shift()
    if (next === undefined) {
      free++
      return
    }
    next.granted = true
    next.wake()
  }

  const tryTake = (): boolean => {
    if (free === 0) return false
    free--
    return true
  }

  const take: Effect.Effect<void> = Effect.async<void>((resume) => {
    if (tryTake()) return resume(Effect.void)
    const waiter: Waiter = { granted: false, wake: () => resume(Effect.void) }
    queue.push(waiter)
    // Interrupted while waiting: leave the queue; if a release handed this waiter the slot in the
    // meantime (its resume came after the interruption and did not count), pass the slot on.
    return Effect.sync(() => {
      if (waiter.granted) release()
      else {
        const at = queue.indexOf(waiter)
        if (at !== -1) queue.splice(at, 1)
      }
    })
  })

  const withSlot = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.zipRight(restore(take), Effect.ensuring(restore(self), Effect.sync(release)))
    )

  const withSlotIfFree = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<Option.Option<A>, E, R> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.suspend(() => tryTake() ? Effect.ensuring(Effect.asSome(restore(self)), Effect.sync(release)) : Effect.succeedNone)
    )

  return { free: () => free, waiting: () => queue.length, take, tryTake, release, withSlot, withSlotIfFree }
}
