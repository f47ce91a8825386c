/**
 * One delivery attempt of one queued message: the pending recipients, grouped by transport, are
 * offered to their transports; the outcomes are written back to the state file; permanent
 * failures and expiries become a DSN to the sender; a message with nothing pending is removed.
 *
 * Duplicates (at-least-once): a transport's 2xx is only remembered once the state file has been
 * rewritten. A crash (or `kill -9`) after an upstream accepted the message and before that
 * rewrite makes the next attempt deliver the same recipients again, under the same message id
 * (the webhook transport derives its idempotency key from that id and the recipients, so a
 * receiver can drop the repeat). Only that message's still-pending recipients are retried:
 * recipients recorded as delivered or failed are never offered again. The window is kept small:
 * successes of one transport are recorded as soon as it answers when other transports of the same
 * message are still busy, and the recording itself cannot be interrupted by a shutdown.
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Stream from "effect/Stream"
import type { RecipientResult } from "../../pipeline/Plugin.ts"
import type { Mailbox } from "../../protocol/Envelope.ts"
import * as Reply from "../../protocol/Reply.ts"
import * as Deliver from "../Deliver.ts"
import * as Dsn from "../Dsn.ts"
import type { Transport } from "../Transport.ts"
import * as Entry from "./Entry.ts"
import type * as Record from "./Record.ts"
import type { SpoolError } from "./SpoolError.ts"
import * as Store from "./Store.ts"

export interface Settings {
  readonly dir: string
  readonly transports: ReadonlyMap<string, Transport>
  readonly hostname: string
  /** Milliseconds. */
  readonly initialDelay: number
  readonly maxDelay: number
  readonly maxAge: number
  readonly bounceTransport: string
  /** Queues a DSN; the spool's own `enqueue`. */
  readonly enqueue: (entry: Entry.Entry) => Effect.Effect<void, SpoolError>
}

/** Exponential backoff from `initialDelay`, doubled per attempt, at most `maxDelay`, with ±20% jitter. */
export const backoff = (settings: Pick<Settings, "initialDelay" | "maxDelay">, attempts: number) =>
  Effect.map(Random.nextRange(0.8, 1.2), (jitter) => {
    const base = settings.initialDelay * 2 ** Math.min(Math.max(attempts - 1, 0), 40)
    return Math.round(Math.min(settings.maxDelay, base) * jitter)
  })

const decoder = new TextDecoder()

/** Builds the DSN for this attempt's failures and queues it to the sender via the bounce transport. */
const notify = (settings: Settings, record: Record.Record, failures: ReadonlyArray<Dsn.Failure>) =>
  Effect.gen(function*() {
    // Deterministic, so that an attempt repeated after a crash does not queue a second DSN.
    const id = `${record.id}.dsn${record.attempts + 1}`
    if (yield* Store.exists(Store.recordPath(settings.dir, id))) return
    const notice = yield* Dsn.failureNotice(settings.hostname, {
      mailFrom: record.mailFrom,
      mailParams: record.mailParams,
      arrivalDate: new Date(record.created),
      size: record.size,
      headers: Effect.map(Store.readHeaders(settings.dir, record.id), (bytes) => decoder.decode(bytes)),
      content: () => Store.messageStream(settings.dir, record.id)
    }, failures)
    if (notice === undefined) return
    const { bytes, envelope } = notice
    yield* settings.enqueue({
      id,
      mailFrom: envelope.mailFrom,
      mailParams: envelope.mailParams,
      routes: [{ transport: settings.bounceTransport, recipients: envelope.recipients }],
      size: bytes.byteLength,
      content: () => Stream.succeed(bytes),
      session: { id: `spool-${record.id}`, remoteAddress: "127.0.0.1", hostname: settings.hostname }
    })
    const sender: Mailbox | undefined = envelope.recipients[0]?.mailbox
    yield* Effect.logInfo(`spool: DSN ${id} queued to <${sender?.address}> for ${notice.recipients.length} recipient(s) of ${record.id}`)
  })

type Outcome = { readonly index: number; readonly reply: Reply.Reply }

const withOutcomes = (
  record: Record.Record,
  outcomes: ReadonlyArray<Outcome>,
  state: (reply: Reply.Reply) => Record.RecipientState
): Record.Record => {
  const byIndex = new Map(outcomes.map((o) => [o.index, o.reply]))
  return {
    ...record,
    recipients: record.recipients.map((r, i) => {
      const reply = byIndex.get(i)
      return reply === undefined ? r : { ...r, state: state(reply), attempts: r.attempts + 1, lastReply: reply }
    })
  }
}

/** Writes the state unless the message was removed meanwhile (`queue remove`), which wins. */
const save = (dir: string, record: Record.Record) =>
  Effect.gen(function*() {
    if (!(yield* Store.exists(Store.recordPath(dir, record.id)))) return false
    if (record.recipients.every((r) => r.state !== "pending")) yield* Store.removeMessage(dir, record.id)
    else {
      yield* Store.writeRecord(dir, record)
      // A removal that ran between the check above and the rename: it wins (see Store.removeMessage).
      if (!(yield* Store.exists(Store.messagePath(dir, record.id)))) {
        yield* Store.removeMessage(dir, record.id)
        return false
      }
    }
    return true
  })

/** Runs one attempt of message `id`, if it is still queued. */
export const run = (settings: Settings, id: string): Effect.Effect<void, SpoolError> =>
  Effect.gen(function*() {
    const found = yield* Store.readRecord(settings.dir, id)
    if (Option.isNone(found)) return
    let record = found.value
    if (!(yield* Store.exists(Store.messagePath(settings.dir, id)))) {
      yield* Effect.logError(`spool: message file of ${id} is missing; its state file is moved to corrupt/`)
      return yield* Store.quarantine(settings.dir, id)
    }
    const groups = new Map<string, Array<number>>()
    record.recipients.forEach((r, i) => {
      if (r.state === "pending") groups.set(r.transport, [...(groups.get(r.transport) ?? []), i])
    })
    if (groups.size === 0) return void (yield* Store.removeMessage(settings.dir, id))

    // Each group's results come back in the order of its recipients: position k is indexes[k].
    const outcomesOf = (results: ReadonlyArray<RecipientResult>): Array<Outcome> => {
      const seen = new Map<string, number>()
      return results.map((r) => {
        const k = seen.get(r.transport) ?? 0
        seen.set(r.transport, k + 1)
        return { index: groups.get(r.transport)![k]!, reply: r.reply }
      })
    }
    const plan = [...groups].map(([transport, indexes]) => ({
      transport,
      recipients: indexes.map((i) => record.recipients[i]!.recipient)
    }))
    const lock = yield* Effect.makeSemaphore(1)
    let busy = groups.size
    const results = yield* Deliver.fanOut(settings.transports, plan, {
      id: record.id,
      mailFrom: record.mailFrom,
      mailParams: record.mailParams,
      session: Entry.sessionOf(record.session, settings.hostname),
      size: record.size,
      content: () => Store.messageStream(settings.dir, record.id)
    }, (group) =>
      lock.withPermits(1)(Effect.gen(function*() {
        busy--
        const delivered = outcomesOf(group).filter((o) => Reply.isPositive(o.reply))
        // Successes are recorded at once while other transports still work; failures wait
        // for the final write, which also queues their DSN, so that no DSN can be lost.
        if (busy > 0 && delivered.length > 0) {
          record = withOutcomes(record, delivered, () => "delivered")
          yield* save(settings.dir, record)
        }
      })))
    const outcomes = outcomesOf(results)
    yield* Effect.uninterruptible(finish(settings, record, outcomes.filter((o) => record.recipients[o.index]!.state === "pending")))
  }).pipe(Effect.withSpan("spool.attempt", { attributes: { "message.id": id } }))

const finish = (settings: Settings, start: Record.Record, outcomes: ReadonlyArray<Outcome>) =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const expired = now >= start.created + settings.maxAge
    const failures: Array<Dsn.Failure> = []
    for (const { index, reply } of outcomes) {
      if (Reply.isPositive(reply)) continue
      if (Reply.isPermanent(reply) || expired) {
        failures.push({ recipient: start.recipients[index]!.recipient, reply, expired: !Reply.isPermanent(reply) })
      }
    }
    let dsnFailed = false
    if (failures.length > 0) {
      const queued = yield* Effect.either(notify(settings, start, failures))
      if (queued._tag === "Left") {
        dsnFailed = true
        yield* Effect.logError(`spool: cannot queue the DSN for ${start.id}, will retry: ${queued.left.message}`)
      }
    }
    const record = withOutcomes(start, outcomes, (reply) => {
      if (Reply.isPositive(reply)) return "delivered"
      // Without its DSN a failure stays pending, so the next attempt produces the notice again.
      if (dsnFailed) return "pending"
      return Reply.isPermanent(reply) || expired ? "failed" : "pending"
    })
    const attempts = start.attempts + 1
    const delay = yield* backoff(settings, attempts)
    // The last retry happens at the deadline, where a transient failure turns into an expiry.
    const deadline = start.created + settings.maxAge
    const nextAttempt = now >= deadline ? now + delay : Math.min(now + delay, deadline)
    yield* save(settings.dir, { ...record, attempts, nextAttempt })
    for (const f of failures) {
      yield* Effect.logWarning(
        `spool: ${start.id} to <${f.recipient.mailbox.address}> ${f.expired ? "expired" : "failed"}: ${Reply.format(f.reply).trim()}`
      )
    }
  })
