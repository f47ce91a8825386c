/**
 * The end of a message once the `data` hooks let it through: routing, then either the spool or
 * the transports; gives the client's final reply (the session machine sends it).
 *
 * Pass-through (no spool): the client's final reply waits for every transport. All recipients
 * delivered → 250. None delivered → the failure's class (4xx when any failure was temporary,
 * so the client retries). Some delivered, some not → 250, because a 4xx or 5xx would make the
 * client send again to recipients that already have the message; the failed recipients are
 * handed to the spool when there is one (retried, or bounced), and otherwise reported to the
 * sender at once in an RFC 3464 DSN. Nothing is duplicated and nothing is dropped silently.
 *
 * Spool: the message is fsynced to disk before the 250 and a worker delivers it.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Metrics from "../observability/Metrics.ts"
import * as Message from "../pipeline/Message.ts"
import type { RecipientResult, Route } from "../pipeline/Plugin.ts"
import type { SessionInfo, TransactionInfo } from "../pipeline/Session.ts"
import type { Recipient } from "../protocol/Envelope.ts"
import * as Reply from "../protocol/Reply.ts"
import * as Deliver from "../transport/Deliver.ts"
import * as Dsn from "../transport/Dsn.ts"
import type * as Draft from "./Draft.ts"
import type { ServerEnv } from "./Env.ts"

const storageFailure = Reply.make(451, "4.3.0", "Temporary storage failure, please try again later")

/** The message the `data` hooks saw, and what they changed (none when no hook ran). */
export interface Sealed {
  readonly message: Message.Content
  readonly draft: Draft.Draft | undefined
}

interface Prepared {
  readonly message: Message.Content
  readonly edits: Message.Edits
  readonly plan: ReadonlyArray<Route>
  readonly size: number
}

interface Ctx {
  readonly env: ServerEnv
  readonly session: SessionInfo
}
/** The message as every transport of the plan gets it. */
const outgoing = (c: Ctx, tx: TransactionInfo, prepared: Prepared): Deliver.Outgoing => ({
  id: tx.id,
  mailFrom: tx.mailFrom,
  mailParams: tx.mailParams,
  session: c.session,
  size: prepared.size,
  content: () => Message.render(prepared.message, prepared.edits),
  inMemory: () => Message.renderInMemory(prepared.message, prepared.edits)
})

/** Some recipients delivered, some not: hand the failures on without touching the delivered ones. */
const handOff = Effect.fnUntraced(function*(c: Ctx, tx: TransactionInfo, prepared: Prepared, failures: ReadonlyArray<RecipientResult>) {
  const spool = c.env.spool
  if (spool !== undefined) {
    const byTransport = new Map<string, Array<Recipient>>()
    for (const f of failures) byTransport.set(f.transport, [...(byTransport.get(f.transport) ?? []), f.recipient])
    const queued = yield* Effect.either(spool.enqueue({
      id: `${tx.id}.R`,
      mailFrom: tx.mailFrom,
      mailParams: tx.mailParams,
      routes: [...byTransport].map(([transport, recipients]) => ({ transport, recipients })),
      size: prepared.size,
      content: () => Message.render(prepared.message, prepared.edits),
      session: c.session,
      // Permanent failures come back at once as a DSN from the spool; temporary ones wait.
      delay: failures.every((f) => f.reply.code >= 500) ? Duration.zero : c.env.config.spool?.initialDelay ?? Duration.minutes(5)
    }))
    if (Either.isRight(queued)) return "are queued for retry or a report to the sender" as const
    yield* Effect.logError(`message ${tx.id}: cannot spool the failed recipients: ${queued.left.message}`)
  }
  // No spool (or it failed): tell the sender now which recipients did not get the message.
  const notice = yield* Effect.either(Dsn.failureNotice(c.env.config.hostname, {
    mailFrom: tx.mailFrom,
    mailParams: tx.mailParams,
    arrivalDate: new Date(),
    size: prepared.size,
    headers: Effect.succeed(prepared.message.headers.map((h) => h.raw).join("")),
    content: () => Message.render(prepared.message, prepared.edits)
  }, failures))
  if (Either.isLeft(notice)) {
    yield* Effect.logError(`message ${tx.id}: cannot build the DSN for the failed recipients: ${notice.left.message}`)
    return undefined
  }
  if (notice.right === undefined) return undefined
  const { bytes, envelope, recipients } = notice.right
  const sent = yield* Deliver.deliverGroup(c.env.transports, { transport: c.env.config.defaultTransport, recipients: envelope.recipients }, {
    id: `${tx.id}.dsn`,
    mailFrom: envelope.mailFrom,
    mailParams: envelope.mailParams,
    session: c.session,
    size: bytes.byteLength,
    content: () => Message.bytesStream(bytes),
    inMemory: () => [bytes]
  })
  if (Deliver.failures(sent).length > 0) {
    yield* Effect.logError(`message ${tx.id}: the DSN for ${recipients.length} failed recipient(s) could not be delivered`)
    return undefined
  }
  return "are reported to the sender" as const
})

/** The fields of the line about a message's outcome; its id once, as `transaction`. */
const messageFields = (c: Ctx, tx: TransactionInfo, prepared: Prepared, final: Reply.Reply | undefined) => ({
  session: c.session.id,
  transaction: tx.id,
  ...(c.session.user === undefined ? {} : { user: c.session.user }),
  size: prepared.size,
  recipients: tx.recipients.length,
  transports: prepared.plan.map((r) => r.transport).join(","),
  // A plain "250 Ok: queued as <id>" would only repeat the id; a partial 250 or a failure says more.
  ...(final === undefined || combinedOk(tx, final) ? {} : { reply: Reply.format(final).trim() })
})

const combinedOk = (tx: TransactionInfo, final: Reply.Reply): boolean =>
  final.code === 250 && final.lines.length === 1 && final.lines[0] === `Ok: queued as ${tx.id}`

const passThrough = Effect.fnUntraced(function*(c: Ctx, tx: TransactionInfo, prepared: Prepared) {
  const results = yield* Deliver.fanOut(c.env.transports, prepared.plan, outgoing(c, tx, prepared))
  const combined = Deliver.combine(tx.id, results)
  let final: Reply.Reply
  if (combined === "partial") {
    const failures = Deliver.failures(results)
    const handed = yield* handOff(c, tx, prepared, failures)
    final = Reply.make(250, "2.0.0", `Ok: queued as ${tx.id} (${results.length - failures.length} of ${results.length} recipients delivered${handed === undefined ? "" : `; the others ${handed}`})`)
  } else final = combined
  // The attempts logged their own lines; this one says what the client was told.
  yield* Effect.logInfo(final.code < 300 ? "message accepted" : "message not accepted").pipe(
    Effect.annotateLogs(messageFields(c, tx, prepared, final))
  )
  if (final.code < 300) yield* Metrics.messageAccepted(prepared.size)
  yield* c.env.pipeline.notify("delivered", { session: c.session, transaction: tx, results })
  return final
})

const spooled = Effect.fnUntraced(function*(c: Ctx, tx: TransactionInfo, prepared: Prepared) {
  const spool = c.env.spool!
  // A route to a transport that does not exist would sit in the queue until it expires.
  const unknown = prepared.plan.find((route) => !c.env.transports.has(route.transport))
  if (unknown !== undefined) {
    yield* Effect.logError(`route names unknown transport ${unknown.transport}`)
    return Reply.pluginFailure
  }
  const queued = yield* Effect.either(spool.enqueue({
    id: tx.id,
    mailFrom: tx.mailFrom,
    mailParams: tx.mailParams,
    routes: prepared.plan,
    size: prepared.size,
    content: () => Message.render(prepared.message, prepared.edits),
    session: c.session
  }))
  if (Either.isLeft(queued)) {
    yield* Effect.logError(`message ${tx.id}: cannot spool: ${queued.left.message}`)
    return storageFailure
  }
  yield* Effect.logInfo("message spooled").pipe(Effect.annotateLogs(messageFields(c, tx, prepared, undefined)))
  yield* Metrics.messageAccepted(prepared.size)
  const results = tx.recipients.map((recipient) => ({ recipient, transport: "spool", reply: Deliver.accepted(tx.id) }))
  yield* c.env.pipeline.notify("delivered", { session: c.session, transaction: tx, results })
  return Deliver.accepted(tx.id)
})

/**
 * Routes the message (a recipient no route names goes to the default transport) and delivers or
 * spools it; gives the final reply.
 */
export const deliver = Effect.fnUntraced(function*(env: ServerEnv, session: SessionInfo, received: TransactionInfo, sealed: Sealed) {
  const c: Ctx = { env, session }
  const { message, draft } = sealed
  // The envelope the hooks left is the one delivered, spooled and reported.
  const tx: TransactionInfo = draft === undefined || !draft.envelopeChanged()
    ? received
    : { ...received, mailFrom: draft.mailFrom(), recipients: draft.recipients() }
  const edits = draft === undefined ? Message.emptyEdits : draft.result()
  const fate = draft === undefined ? { _tag: "Deliver" as const } : draft.fate()
  if (fate._tag === "Discard" || tx.recipients.length === 0) {
    const reason = fate._tag === "Discard" ? fate.reason : "every recipient was removed"
    yield* Effect.logInfo(`message discarded: ${reason}`).pipe(Effect.annotateLogs({ session: session.id, transaction: tx.id }))
    yield* env.pipeline.notify("delivered", { session, transaction: tx, results: [] })
    return Deliver.accepted(tx.id)
  }
  const transports = [...env.transports.keys()]
  let plan: ReadonlyArray<Route>
  if (fate._tag === "Quarantine") {
    if (!env.transports.has("quarantine")) {
      yield* Effect.logWarning(`message ${tx.id} held (${fate.reason}) but no transport is named quarantine: refused 451 4.7.1`)
      return Reply.make(451, "4.7.1", "Message held for review, please try again later")
    }
    yield* Effect.logInfo(`message quarantined: ${fate.reason}`).pipe(Effect.annotateLogs({ session: session.id, transaction: tx.id }))
    plan = [{ transport: "quarantine", recipients: tx.recipients }]
  } else {
    const routes = yield* env.pipeline.route({ session, transaction: tx, message, transports })
    const routed = new Set((routes ?? []).flatMap((r) => r.recipients.map((x) => x.mailbox.address)))
    const unrouted = tx.recipients.filter((r) => !routed.has(r.mailbox.address))
    plan = [
      ...(routes ?? []),
      ...(unrouted.length > 0 ? [{ transport: env.config.defaultTransport, recipients: unrouted }] : [])
    ]
  }
  const prepared = { message, edits, plan, size: Message.renderedSize(message, edits) }
  return yield* env.spool !== undefined ? spooled(c, tx, prepared) : passThrough(c, tx, prepared)
})
