/**
 * The end of a message: `data` hooks, routing, then either the spool or the transports.
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
import { Duration, Effect, Either } from "effect"
import * as Metrics from "../observability/Metrics.ts"
import * as Message from "../pipeline/Message.ts"
import type { RecipientResult, Route } from "../pipeline/Plugin.ts"
import type { Recipient } from "../protocol/Envelope.ts"
import * as Reply from "../protocol/Reply.ts"
import * as Deliver from "../transport/Deliver.ts"
import * as Dsn from "../transport/Dsn.ts"
import { refuse } from "./Commands.ts"
import type { MessageBuffer } from "./MessageBuffer.ts"
import { type Conn, refused, reply, type Transaction } from "./State.ts"

const storageFailure = Reply.make(451, "4.3.0", "Temporary storage failure, please try again later")
const headerSectionTooLarge = Reply.make(552, "5.3.4", "Message header section exceeds 256 KiB")

interface Prepared {
  readonly message: Message.Content
  readonly edits: Message.Edits
  readonly plan: ReadonlyArray<Route>
  readonly size: number
}

/** The message as every transport of the plan gets it. */
const outgoing = (c: Conn, tx: Transaction, prepared: Prepared): Deliver.Outgoing => ({
  id: tx.id,
  mailFrom: tx.mailFrom,
  mailParams: tx.mailParams,
  session: c.session,
  size: prepared.size,
  content: () => Message.render(prepared.message, prepared.edits),
  inMemory: () => Message.renderInMemory(prepared.message, prepared.edits)
})

/** Some recipients delivered, some not: hand the failures on without touching the delivered ones. */
const handOff = Effect.fnUntraced(function*(c: Conn, tx: Transaction, prepared: Prepared, failures: ReadonlyArray<RecipientResult>) {
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
const messageFields = (c: Conn, tx: Transaction, prepared: Prepared, final: Reply.Reply | undefined) => ({
  session: c.session.id,
  transaction: tx.id,
  ...(c.session.user === undefined ? {} : { user: c.session.user }),
  size: prepared.size,
  recipients: tx.recipients.length,
  transports: prepared.plan.map((r) => r.transport).join(","),
  // A plain "250 Ok: queued as <id>" would only repeat the id; a partial 250 or a failure says more.
  ...(final === undefined || combinedOk(tx, final) ? {} : { reply: Reply.format(final).trim() })
})

const combinedOk = (tx: Transaction, final: Reply.Reply): boolean =>
  final.code === 250 && final.lines.length === 1 && final.lines[0] === `Ok: queued as ${tx.id}`

const passThrough = Effect.fnUntraced(function*(c: Conn, tx: Transaction, prepared: Prepared) {
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
  reply(c, final)
  if (final.code < 300) yield* Metrics.messageAccepted(prepared.size)
  yield* c.env.pipeline.notify("delivered", { session: c.session, transaction: tx, results })
})

const spooled = Effect.fnUntraced(function*(c: Conn, tx: Transaction, prepared: Prepared) {
  const spool = c.env.spool!
  // A route to a transport that does not exist would sit in the queue until it expires.
  const unknown = prepared.plan.find((route) => !c.env.transports.has(route.transport))
  if (unknown !== undefined) {
    yield* Effect.logError(`route names unknown transport ${unknown.transport}`)
    return reply(c, Reply.pluginFailure)
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
    return reply(c, storageFailure)
  }
  yield* Effect.logInfo("message spooled").pipe(Effect.annotateLogs(messageFields(c, tx, prepared, undefined)))
  reply(c, Deliver.accepted(tx.id))
  yield* Metrics.messageAccepted(prepared.size)
  const results = tx.recipients.map((recipient) => ({ recipient, transport: "spool", reply: Deliver.accepted(tx.id) }))
  yield* c.env.pipeline.notify("delivered", { session: c.session, transaction: tx, results })
})

const finishMessage = Effect.fnUntraced(function*(
  c: Conn,
  tx: Transaction,
  buffer: MessageBuffer,
  flags: { readonly bare: boolean; readonly storageFailed: boolean }
) {
  if (buffer.tooBig()) return yield* refused(c, Reply.tooBig, "bridge")
  if (flags.bare && c.env.config.bareLineEndings === "reject") {
    return yield* refused(c, Reply.make(550, "5.6.0", "Message contains bare CR or LF line endings"), "bridge")
  }
  if (flags.storageFailed) return reply(c, storageFailure)
  const content = yield* Effect.either(buffer.finish())
  if (Either.isLeft(content)) {
    yield* Effect.logError(`cannot store message: ${content.left.message}`)
    return reply(c, storageFailure)
  }
  if (buffer.headerSectionTooLarge()) return reply(c, headerSectionTooLarge)
  const message = content.right
  const added: Array<{ name: string; value: string }> = []
  const removed: Array<(h: Message.Header) => boolean> = []
  const { verdict, plugin } = yield* c.env.pipeline.run("data", {
    session: c.session,
    transaction: tx,
    message,
    addHeader: (name, value) => void added.push({ name, value }),
    removeHeader: (name, predicate) => {
      const lower = name.toLowerCase()
      removed.push((h) => h.name.toLowerCase() === lower && (predicate === undefined || predicate(h.value)))
    }
  })
  if (yield* refuse(c, verdict, plugin)) return
  const edits: Message.Edits = { added, removed }
  const transports = [...c.env.transports.keys()]
  const routes = yield* c.env.pipeline.route({ session: c.session, transaction: tx, message, transports })
  // A recipient no route names still gets delivered, by the default transport.
  const routed = new Set((routes ?? []).flatMap((r) => r.recipients.map((x) => x.mailbox.address)))
  const unrouted = tx.recipients.filter((r) => !routed.has(r.mailbox.address))
  const plan = [
    ...(routes ?? []),
    ...(unrouted.length > 0 ? [{ transport: c.env.config.defaultTransport, recipients: unrouted }] : [])
  ]
  const prepared = { message, edits, plan, size: Message.renderedSize(message, edits) }
  yield* c.env.spool !== undefined ? spooled(c, tx, prepared) : passThrough(c, tx, prepared)
})

export const finish = (
  c: Conn,
  tx: Transaction,
  buffer: MessageBuffer,
  flags: { readonly bare: boolean; readonly storageFailed: boolean }
) =>
  finishMessage(c, tx, buffer, flags).pipe(Effect.ensuring(Effect.suspend(() => {
    c.tx = undefined
    c.chunking = undefined
    return buffer.dispose
  })))
