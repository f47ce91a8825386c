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
import { Clock, Duration, Effect, ExecutionStrategy, Exit, Scope } from "effect"

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

export const make = <A, E>(options: Options<A, E>): Effect.Effect<Pool<A, E>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const poolScope = yield* Effect.scope
    const slots = yield* Effect.makeSemaphore(Math.max(1, options.max))
    const idleMillis = Duration.toMillis(Duration.decode(options.idleTimeout))
    const idle: Array<Entry<A>> = []
    let open = 0

    // Closing may say QUIT and wait for it; nobody should wait on that, so it runs on its own.
    const discard = (entry: Entry<A>) =>
      Effect.suspend(() => {
        open--
        return Effect.forkIn(Scope.close(entry.scope, Exit.void), poolScope)
      }).pipe(Effect.asVoid)

    const expired = (entry: Entry<A>, now: number) => now - entry.lastUsed >= idleMillis

    const evictExpired = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      for (let i = idle.length - 1; i >= 0; i--) {
        const entry = idle[i]!
        if (expired(entry, now) || !options.reusable(entry.item)) {
          idle.splice(i, 1)
          yield* discard(entry)
        }
      }
    })

    const sweepEvery = Duration.millis(Math.min(Math.max(idleMillis / 2, 50), 30_000))
    yield* evictExpired.pipe(Effect.delay(sweepEvery), Effect.forever, Effect.forkScoped)
    yield* Effect.addFinalizer(() =>
      Effect.forEach(idle.splice(0), (entry) => Scope.close(entry.scope, Exit.void), { discard: true })
    )

    const take = (fresh: boolean): Effect.Effect<{ entry: Entry<A>; reused: boolean }, E> =>
      Effect.gen(function*() {
        yield* evictExpired
        const recent = fresh ? undefined : idle.pop()
        if (recent !== undefined) return { entry: recent, reused: true }
        const scope = yield* Scope.fork(poolScope, ExecutionStrategy.sequential)
        open++
        const item = yield* Effect.onError(
          Scope.extend(options.acquire, scope),
          (cause) => Effect.suspend(() => {
            open--
            return Scope.close(scope, Exit.failCause(cause))
          })
        )
        const now = yield* Clock.currentTimeMillis
        return { entry: { item, scope, lastUsed: now }, reused: false }
      })

    // A rejected message leaves a sound session; an interrupted one leaves it mid-conversation.
    const giveBack = (entry: Entry<A>, exit: Exit.Exit<unknown, unknown>) =>
      Effect.gen(function*() {
        if (!Exit.isInterrupted(exit) && options.reusable(entry.item)) {
          entry.lastUsed = yield* Clock.currentTimeMillis
          idle.push(entry)
        } else {
          yield* discard(entry)
        }
      })

    const slot = slots.take(1).pipe(
      Effect.timeoutFail({ duration: options.acquireTimeout, onTimeout: options.onExhausted })
    )

    // Connecting and using stay interruptible; the bookkeeping does not. The caller holds a slot.
    const withItem = <B, E2>(f: (item: A, reused: boolean) => Effect.Effect<B, E2>, useOptions?: UseOptions): Effect.Effect<B, E | E2> =>
      Effect.uninterruptibleMask((restore) =>
        Effect.gen(function*() {
          const taken = yield* restore(take(useOptions?.fresh === true))
          const exit = yield* Effect.exit(restore(f(taken.entry.item, taken.reused)))
          yield* giveBack(taken.entry, exit)
          return yield* exit
        })
      )

    // A free slot is taken at once; only when all are busy is there a wait with a deadline
    // (`timeoutFail` forks a timer fiber, which the common case does without).
    const use = <B, E2>(f: (item: A, reused: boolean) => Effect.Effect<B, E2>, useOptions?: UseOptions): Effect.Effect<B, E | E2> => {
      const body = withItem(f, useOptions)
      return Effect.flatMap(slots.withPermitsIfAvailable(1)(body), (done) =>
        done._tag === "Some"
          ? Effect.succeed(done.value)
          : Effect.uninterruptibleMask((restore) => Effect.zipRight(restore(slot), Effect.ensuring(restore(body), slots.release(1)))))
    }

    return { use, size: () => open, idle: () => idle.length }
  })
