/**
 * A bounded pool of upstream sessions: at most `max` open at once, idle ones reused (most
 * recently used first, so that the others expire) and closed after `idleTimeout`. A session
 * that failed in any way, or whose use was interrupted, is closed instead of returned: the
 * next message never inherits a conversation in an unknown state.
 *
 * @example
 * const pool = yield* Pool.make({ acquire: Client.open(options), max: 4, idleTimeout: "30 seconds",
 *   acquireTimeout: "1 minute", reusable: (s) => !s.wire.broken(), onExhausted: () => error })
 * yield* pool.use((session, reused) => Transaction.send(...))
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as Slots from "../../util/Slots.ts"

export interface Options<A, E> {
  /** Opens one item in the scope it is given; closing that scope closes the item. */
  readonly acquire: Effect.Effect<A, E, Scope.Scope>
  readonly max: number
  /** An unused item is closed after this long. */
  readonly idleTimeout: Duration.DurationInput
  /** How long `use` waits for a free slot when all `max` are busy. */
  readonly acquireTimeout: Duration.DurationInput
  /** Checked when an item is returned and again before it is handed out. */
  readonly reusable: (item: A) => boolean
  /** The error when no slot came free in time. */
  readonly onExhausted: () => E
}

export interface UseOptions {
  /** Open a new item even if idle ones exist (after a reused one turned out stale). */
  readonly fresh?: boolean
}

export interface Pool<A, E> {
  /** Runs `f` with an item; `reused` tells whether the item served before. */
  readonly use: <B, E2>(f: (item: A, reused: boolean) => Effect.Effect<B, E2>, options?: UseOptions) => Effect.Effect<B, E | E2>
  /** Items open now, busy or idle. */
  readonly size: () => number
  readonly idle: () => number
}

interface Entry<A> {
  readonly item: A
  readonly scope: Scope.CloseableScope
  lastUsed: number
}

interface Taken<A> {
  readonly entry: Entry<A>
  readonly reused: boolean
}

export const make = <A, E>(options: Options<A, E>): Effect.Effect<Pool<A, E>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const poolScope = yield* Effect.scope
    // FIFO hand-off (util/Slots): Effect's Semaphore wakes every waiter on each release.
    const slots = Slots.make(Math.max(1, options.max))
    const idleMillis = Duration.toMillis(Duration.decode(options.idleTimeout))
    const idle: Array<Entry<A>> = []
    let open = 0

    // Closing may say QUIT and wait for it; nobody should wait on that, so it runs on its own.
    const discard = (entry: Entry<A>) =>
      Effect.suspend(() => {
        open--
        return Effect.forkIn(Scope.close(entry.scope, Exit.void), poolScope)
      }).pipe(Effect.asVoid)

    // Read without an effect: the pool's bookkeeping runs twice per message.
    const clock = yield* Effect.clock
    const expired = (entry: Entry<A>, now: number) => now - entry.lastUsed >= idleMillis

    const evictExpired = Effect.suspend(() => {
      const now = clock.unsafeCurrentTimeMillis()
      const gone: Array<Entry<A>> = []
      for (let i = idle.length - 1; i >= 0; i--) {
        const entry = idle[i]!
        if (expired(entry, now) || !options.reusable(entry.item)) gone.push(...idle.splice(i, 1))
      }
      return Effect.forEach(gone, discard, { discard: true })
    })

    const sweepEvery = Duration.millis(Math.min(Math.max(idleMillis / 2, 50), 30_000))
    yield* evictExpired.pipe(Effect.delay(sweepEvery), Effect.forever, Effect.forkScoped)
    yield* Effect.addFinalizer(() =>
      Effect.forEach(idle.splice(0), (entry) => Scope.close(entry.scope, Exit.void), { discard: true })
    )

    const acquireNew: Effect.Effect<Taken<A>, E> = Effect.gen(function*() {
      const scope = yield* Scope.fork(poolScope, ExecutionStrategy.sequential)
      open++
      const item = yield* Effect.onError(
        Scope.extend(options.acquire, scope),
        (cause) => Effect.suspend(() => {
          open--
          return Scope.close(scope, Exit.failCause(cause))
        })
      )
      return { entry: { item, scope, lastUsed: clock.unsafeCurrentTimeMillis() }, reused: false }
    })

    // The most recent idle session that is still fresh and sound; older ones are the sweeper's.
    const take = (fresh: boolean): Effect.Effect<Taken<A>, E> =>
      Effect.suspend(() => {
        const gone: Array<Entry<A>> = []
        let recent: Entry<A> | undefined
        if (!fresh) {
          const now = clock.unsafeCurrentTimeMillis()
          while ((recent = idle.pop()) !== undefined && (expired(recent, now) || !options.reusable(recent.item))) gone.push(recent)
        }
        const taken = recent !== undefined ? Effect.succeed({ entry: recent, reused: true }) : acquireNew
        return gone.length === 0 ? taken : Effect.zipRight(Effect.forEach(gone, discard, { discard: true }), taken)
      })

    // A rejected message leaves a sound session; an interrupted one leaves it mid-conversation.
    const giveBack = (entry: Entry<A>, exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> => {
      if (Exit.isInterrupted(exit) || !options.reusable(entry.item)) return discard(entry)
      entry.lastUsed = clock.unsafeCurrentTimeMillis()
      idle.push(entry)
      return Effect.void
    }

    const slot = slots.take.pipe(
      Effect.timeoutFail({ duration: options.acquireTimeout, onTimeout: options.onExhausted })
    )

    // Connecting and using stay interruptible; the bookkeeping does not. The caller holds a slot.
    const withItem = <B, E2>(f: (item: A, reused: boolean) => Effect.Effect<B, E2>, useOptions?: UseOptions): Effect.Effect<B, E | E2> =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(restore(take(useOptions?.fresh === true)), (taken) =>
          Effect.flatMap(Effect.exit(restore(f(taken.entry.item, taken.reused))), (exit) =>
            Effect.zipRight(giveBack(taken.entry, exit), exit)))
      )

    // A free slot is taken at once; only when all are busy is there a wait with a deadline
    // (`timeoutFail` forks a timer fiber, which the common case does without).
    const use = <B, E2>(f: (item: A, reused: boolean) => Effect.Effect<B, E2>, useOptions?: UseOptions): Effect.Effect<B, E | E2> => {
      const body = withItem(f, useOptions)
      return Effect.flatMap(slots.withSlotIfFree(body), (done) =>
        done._tag === "Some"
          ? Effect.succeed(done.value)
          : Effect.uninterruptibleMask((restore) => Effect.zipRight(restore(slot), Effect.ensuring(restore(body), Effect.sync(slots.release)))))
    }

    return { use, size: () => open, idle: () => idle.length }
  })
