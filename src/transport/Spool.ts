/**
 * The spool: a durable on-disk queue in front of the named transports (DESIGN.md section 4,
 * "nothing lost"). `enqueue` returns only once the message and its envelope are fsynced, so the
 * client's 250 survives `kill -9` and power loss; a worker fiber then delivers each message with
 * exponential backoff, sends an RFC 3464 DSN to the sender on permanent failure or expiry, and
 * resumes whatever is in the directory after a restart.
 *
 * Delivery is at-least-once: see `spool/Attempt.ts` for the one window where a crash repeats a
 * delivery, and what bounds it. One spool directory belongs to one running bridge.
 *
 * @example
 * const spool = yield* Spool.make({ dir: "/var/spool/smtp-bridge", transports, hostname: "mx.example.net" })
 * yield* spool.enqueue({ id, mailFrom, mailParams, routes, size, content, session })
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FiberSet from "effect/FiberSet"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Path from "node:path"
import type { Mailbox } from "../protocol/Envelope.ts"
import type { Reply } from "../protocol/Reply.ts"
import * as Attempt from "./spool/Attempt.ts"
import * as Entry from "./spool/Entry.ts"
import type * as Record from "./spool/Record.ts"
import { SpoolError } from "./spool/SpoolError.ts"
import * as Store from "./spool/Store.ts"
import type { Transport } from "./Transport.ts"

export { SpoolError } from "./spool/SpoolError.ts"
export type { Entry, SessionSummary } from "./spool/Entry.ts"

export interface Options {
  /** The spool directory; created (mode 0700) when missing. */
  readonly dir: string
  /** The transports recipients are routed to, by name. */
  readonly transports: ReadonlyMap<string, Transport>
  /** Our host name, for DSNs (`Reporting-MTA`, `MAILER-DAEMON@`). */
  readonly hostname: string
  readonly retry?: {
    /** Delay before the first retry; doubled after each attempt. Default 5 minutes. */
    readonly initialDelay?: Duration.DurationInput
    /** Longest delay between two attempts. Default 1 hour. */
    readonly maxDelay?: Duration.DurationInput
    /** How long a message is retried before it bounces with 4.4.7. Default 5 days. */
    readonly maxAge?: Duration.DurationInput
  }
  /** Messages delivered at the same time. Default 4. */
  readonly concurrency?: number
  /** How often the worker re-reads the directory (to see `queue flush` and `queue remove`). Default 1 second. */
  readonly pollInterval?: Duration.DurationInput
  /** The transport DSNs to senders go through. Default `default`. */
  readonly bounceTransport?: string
}

export interface Spool {
  readonly dir: string
  /**
   * Writes the message, then its state file (the commit point), each fsynced and renamed into
   * place; succeeds only when the message is durable. Then wakes the worker.
   */
  readonly enqueue: (entry: Entry.Entry) => Effect.Effect<void, SpoolError>
}

/** One queued message as `queue list` shows it. */
export interface QueueEntry {
  readonly id: string
  readonly size: number
  /** `null` is the null sender `<>` (a DSN). */
  readonly sender: Mailbox | null
  readonly created: Date
  readonly nextAttempt: Date
  readonly attempts: number
  readonly recipients: ReadonlyArray<{
    readonly address: string
    readonly transport: string
    readonly state: Record.RecipientState
    readonly attempts: number
    readonly lastReply: Reply | undefined
  }>
}

const millis = (input: Duration.DurationInput | undefined, fallback: Duration.DurationInput): number =>
  Duration.toMillis(Duration.decode(input ?? fallback))

/** Writes an entry into `dir`: message bytes first, then the state file that commits it. */
const commit = (dir: string, entry: Entry.Entry): Effect.Effect<void, SpoolError> =>
  Effect.gen(function*() {
    yield* Store.checkId(entry.id)
    if (yield* Store.exists(Store.recordPath(dir, entry.id))) {
      return yield* new SpoolError({ reason: "Write", message: `Spool: a message with id ${entry.id} is already queued` })
    }
    const size = yield* Store.writeMessage(dir, entry.id, entry.content()).pipe(
      Effect.catchTag("MessageError", (error) =>
        new SpoolError({ reason: "Read", message: `Spool: could not read message ${entry.id}: ${error.message}` }))
    )
    const now = yield* Clock.currentTimeMillis
    yield* Store.writeRecord(dir, Entry.toRecord(entry, size, now)).pipe(
      Effect.onError(() => Effect.ignore(Store.removeMessage(dir, entry.id)))
    )
  }).pipe(Effect.withSpan("spool.enqueue", { attributes: { "message.id": entry.id } }))

/** Starts the spool on `dir`: clears crash leftovers, resumes every queued message, runs the worker in the scope. */
export const make = (options: Options): Effect.Effect<Spool, SpoolError, Scope.Scope> =>
  Effect.gen(function*() {
    const dir = Path.resolve(options.dir)
    yield* Store.ensure(dir)
    const cleaned = yield* Store.cleanup(dir)
    if (cleaned > 0) yield* Effect.logInfo(`spool: removed ${cleaned} unfinished file(s) left by a crash`)

    const wake = yield* Queue.sliding<void>(1)
    const enqueue = (entry: Entry.Entry) => Effect.zipRight(commit(dir, entry), Queue.offer(wake, undefined))
    const settings: Attempt.Settings = {
      dir,
      transports: options.transports,
      hostname: options.hostname,
      initialDelay: millis(options.retry?.initialDelay, "5 minutes"),
      maxDelay: millis(options.retry?.maxDelay, "1 hour"),
      maxAge: millis(options.retry?.maxAge, "5 days"),
      bounceTransport: options.bounceTransport ?? "default",
      enqueue
    }
    const concurrency = Math.max(1, options.concurrency ?? 4)
    const poll = Duration.decode(options.pollInterval ?? "1 second")

    const inFlight = new Set<string>()
    const flushed = new Set<string>()
    const held = new Map<string, number>()
    // nextAttempt per state-file fingerprint, so that a poll re-reads only files that changed.
    const known = new Map<string, { readonly stamp: string; readonly nextAttempt: number }>()
    const fibers = yield* FiberSet.make<void, never>()

    const dueTime = (id: string) =>
      Effect.gen(function*() {
        const stamp = yield* Store.stamp(dir, id)
        if (stamp === undefined) return undefined
        const cached = known.get(id)
        if (cached !== undefined && cached.stamp === stamp) return cached.nextAttempt
        const read = yield* Effect.either(Store.readRecord(dir, id))
        if (Either.isLeft(read)) {
          if (read.left.reason !== "Corrupt") return yield* read.left
          yield* Effect.logError(`${read.left.message}; moved to corrupt/`)
          yield* Store.quarantine(dir, id)
          return undefined
        }
        if (Option.isNone(read.right)) return undefined
        known.set(id, { stamp, nextAttempt: read.right.value.nextAttempt })
        return read.right.value.nextAttempt
      })

    const scan = Effect.gen(function*() {
      const ids = yield* Store.listIds(dir)
      const present = new Set(ids)
      for (const id of known.keys()) if (!present.has(id)) known.delete(id)
      for (const id of held.keys()) if (!present.has(id)) held.delete(id)
      for (const id of flushed) if (!present.has(id)) flushed.delete(id)
      // `queue flush` means now: it also lifts the hold taken after a state file could not be rewritten.
      if (yield* Store.takeFlushMarker(dir)) {
        for (const id of ids) {
          flushed.add(id)
          held.delete(id)
        }
      }
      const now = yield* Clock.currentTimeMillis
      const due: Array<readonly [string, number]> = []
      let soonest = Infinity
      for (const id of ids) {
        if (inFlight.has(id)) continue
        const stored = flushed.has(id) ? 0 : yield* dueTime(id).pipe(
          Effect.catchAll((error) => Effect.as(Effect.logError(`spool: skipping ${id}: ${error.message}`), undefined))
        )
        if (stored === undefined) continue
        const next = Math.max(stored, held.get(id) ?? 0)
        if (next <= now) due.push([id, next])
        else soonest = Math.min(soonest, next)
      }
      due.sort((a, b) => a[1] - b[1])
      for (const [id] of due) {
        if (inFlight.size >= concurrency) break
        inFlight.add(id)
        flushed.delete(id)
        held.delete(id)
        yield* FiberSet.run(
          fibers,
          Attempt.run(settings, id).pipe(
            Effect.catchAllCause((cause) =>
              Cause.isInterruptedOnly(cause) ? Effect.void : Effect.gen(function*() {
                // The state file could not be updated, so its nextAttempt is stale: hold the
                // message back in memory rather than retrying it in a tight loop.
                held.set(id, (yield* Clock.currentTimeMillis) + Math.min(settings.initialDelay, 60_000))
                yield* Effect.logError(`spool: attempt for ${id} failed; it stays queued`, cause)
              })
            ),
            Effect.ensuring(Effect.suspend(() => {
              inFlight.delete(id)
              return Queue.offer(wake, undefined)
            }))
          )
        )
      }
      // Due messages left over for want of a slot start when a running attempt ends (it wakes
      // the loop); otherwise sleep until the next retry when that comes before the next poll.
      return soonest - now
    })

    const loop = Effect.forever(
      scan.pipe(
        Effect.catchAll((error) => Effect.as(Effect.logError(`spool: cannot scan ${dir}: ${error.message}`), Infinity)),
        Effect.flatMap((untilDue) =>
          Effect.race(Queue.take(wake), Effect.sleep(Duration.min(poll, Duration.millis(Math.max(untilDue, 0)))))
        )
      )
    )
    const queued = (yield* Store.listIds(dir)).length
    if (queued > 0) yield* Effect.logInfo(`spool: resuming ${queued} queued message(s) in ${dir}`)
    yield* Effect.forkScoped(loop)
    return { dir, enqueue }
  })

const toQueueEntry = (r: Record.Record): QueueEntry => ({
  id: r.id,
  size: r.size,
  sender: r.mailFrom,
  created: new Date(r.created),
  nextAttempt: new Date(r.nextAttempt),
  attempts: r.attempts,
  recipients: r.recipients.map((x) => ({
    address: x.recipient.mailbox.address,
    transport: x.transport,
    state: x.state,
    attempts: x.attempts,
    lastReply: x.lastReply
  }))
})

/** The queued messages in `dir`, oldest first; works without a running worker (`queue list`). */
/** Whether a message could be written now (a file created and removed in the spool's `tmp/`). */
export const probeWritable = (dir: string): Effect.Effect<void, SpoolError> => Store.probeWritable(Path.resolve(dir))

export const list = (dir: string): Effect.Effect<ReadonlyArray<QueueEntry>, SpoolError> =>
  Effect.gen(function*() {
    const root = Path.resolve(dir)
    const out: Array<QueueEntry> = []
    for (const id of yield* Store.listIds(root)) {
      const read = yield* Effect.either(Store.readRecord(root, id))
      if (Either.isLeft(read)) {
        if (read.left.reason !== "Corrupt") return yield* read.left
        yield* Effect.logWarning(read.left.message)
        continue
      }
      if (Option.isSome(read.right)) out.push(toQueueEntry(read.right.value))
    }
    return out.sort((a, b) => a.created.getTime() - b.created.getTime())
  })

/**
 * Asks for every queued message to be attempted now (`queue flush`); returns how many are
 * queued. It leaves a marker file rather than rewriting the state files, which the worker may be
 * rewriting at the same moment: the running worker sees the marker within its poll interval, and
 * a stopped one at its next start.
 */
export const flush = (dir: string): Effect.Effect<number, SpoolError> =>
  Effect.gen(function*() {
    const root = Path.resolve(dir)
    const ids = yield* Store.listIds(root)
    // Nothing queued (or a directory no bridge has spooled into yet, without tmp/): nothing to do.
    if (ids.length === 0) return 0
    yield* Store.writeAtomic(root, Store.flushMarker, Stream.succeed(new TextEncoder().encode(`${new Date().toISOString()}\n`)))
    return ids.length
  })

/**
 * Whether the spool's file system has `bytes` free beyond `floor` (checked at MAIL FROM, with
 * the declared SIZE, so that a full disk is refused before the data is read, as Postfix does).
 */
export const hasRoom = (dir: string, bytes: number, floor: number): Effect.Effect<boolean> =>
  Effect.map(Store.freeSpace(dir), (free) => free === undefined || free >= bytes + floor)

/** Removes message `id` from the queue (`queue remove`); `false` when it was not queued. */
export const remove = (dir: string, id: string): Effect.Effect<boolean, SpoolError> =>
  Effect.gen(function*() {
    yield* Store.checkId(id)
    return yield* Store.removeMessage(Path.resolve(dir), id)
  })
