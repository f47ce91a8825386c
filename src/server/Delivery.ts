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
import * as AttemptLog from "../transport/AttemptLog.ts"
import * as Dsn from "../transport/Dsn.ts"
import type { TransportError } from "../transport/Transport.ts"
import { refuse } from "./Commands.ts"
import type { MessageBuffer } from "./MessageBuffer.ts"
import { type Conn, refused, reply, type Transaction } from "./State.ts"

const storageFailure = Reply.make(451, "4.3.0", "Temporary storage failure, please try again later")
const headerSectionTooLarge = Reply.make(552, "5.3.4", "Message header section exceeds 256 KiB")

/** How a transport failure looks to the client: the upstream's class, or a 4xx for our side. */
export const transportReply = (error: TransportError): Reply.Reply => {
  if (error.reply !== undefined && error.reply.code >= 400) {
    const transient = error.reply.code < 500
    return Reply.make(
      error.reply.code,
      error.reply.enhanced ?? (transient ? "4.0.0" : "5.0.0"),
      `${error.transport}: ${error.reply.lines.join(" ")}`
    )
  }
  switch (error.reason) {
    case "Unreachable":
      return Reply.make(451, "4.4.1", `${error.transport}: upstream unreachable, try again later`)
    case "Timeout":
      return Reply.make(451, "4.4.2", `${error.transport}: upstream timed out, try again later`)
    case "Storage":
      return Reply.make(451, "4.3.0", `${error.transport}: storage failure, try again later`)
    case "Protocol":
    case "Rejected":
      return Reply.make(451, "4.4.0", `${error.transport}: delivery failed, try again later`)
  }
}

const accepted = (id: string) => Reply.make(250, "2.0.0", `Ok: queued as ${id}`)

/** RFC 3461: no NOTIFY means FAILURE; NEVER, or a list without FAILURE, means no DSN. */
const wantsFailureDsn = (recipient: Recipient): boolean =>
  recipient.params.notify === undefined || recipient.params.notify.includes("FAILURE")

interface Prepared {
  readonly message: Message.Content
  readonly edits: Message.Edits
  readonly plan: ReadonlyArray<Route>
  readonly size: number
}

const deliverRoute = Effect.fnUntraced(function*(c: Conn, tx: Transaction, prepared: Prepared, route: Prepared["plan"][number]) {
  const transport = c.env.transports.get(route.transport)
  if (transport === undefined) {
    yield* Effect.logError(`route names unknown transport ${route.transport}`)
    return route.recipients.map((recipient) => ({ recipient, transport: route.transport, reply: Reply.pluginFailure }))
  }
  const outcome = yield* Effect.either(AttemptLog.deliver(transport, {
    id: tx.id,
    envelope: { mailFrom: tx.mailFrom, mailParams: tx.mailParams, recipients: route.recipients },
    session: c.session,
    size: prepared.size,
    content: () => Message.render(prepared.message, prepared.edits),
    inMemory: () => Message.renderInMemory(prepared.message, prepared.edits)
  }))
  if (Either.isLeft(outcome)) {
    const r = transportReply(outcome.left)
    return route.recipients.map((recipient) => ({ recipient, transport: route.transport, reply: r }))
  }
  return outcome.right.recipients.map(({ recipient, reply: r }) => ({ recipient, transport: route.transport, reply: r }))

})

const deliverAll = (c: Conn, tx: Transaction, prepared: Prepared) =>
  Effect.forEach(prepared.plan, (route) => deliverRoute(c, tx, prepared, route), { concurrency: "unbounded" }).pipe(
    Effect.map((groups) => groups.flat())
  )

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
  const notify = failures.filter((f) => wantsFailureDsn(f.recipient))
  if (tx.mailFrom === null || notify.length === 0) return undefined
  const headers = prepared.message.headers.map((h) => h.raw).join("")
  const dsn = Dsn.build({
    reportingMta: c.env.config.hostname,
    arrivalDate: new Date(),
    envelopeId: tx.mailParams.envid,
    originalSender: tx.mailFrom,
    recipients: notify.map((f) => ({ recipient: f.recipient, action: "failed" as const, reply: f.reply })),
    originalHeaders: headers
  })
  const bounce = c.env.transports.get(c.env.config.defaultTransport)
  const recipient: Recipient = { mailbox: tx.mailFrom, params: { raw: {} } }
  const sent = bounce === undefined ? Either.left(undefined) : yield* Effect.either(AttemptLog.deliver(bounce, {
    id: `${tx.id}.dsn`,
    envelope: { mailFrom: null, mailParams: { raw: {} }, recipients: [recipient] },
    session: c.session,
    size: dsn.byteLength,
    content: () => Message.bytesStream(dsn),
    inMemory: () => [dsn]
  }))
  if (Either.isLeft(sent)) {
    yield* Effect.logError(`message ${tx.id}: the DSN for ${notify.length} failed recipient(s) could not be delivered`)
    return undefined
  }
  return "are reported to the sender" as const
})

const combine = (id: string, results: ReadonlyArray<RecipientResult>): Reply.Reply | "partial" => {
  const failures = results.filter((r) => r.reply.code >= 400)
  if (failures.length === 0) return accepted(id)
  if (failures.length < results.length) return "partial"
  // A temporary failure anywhere asks the client to retry rather than bounce.
  return failures.find((f) => f.reply.code < 500)?.reply ?? failures[0]!.reply
}

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
  const results = yield* deliverAll(c, tx, prepared)
  const combined = combine(tx.id, results)
  let final: Reply.Reply
  if (combined === "partial") {
    const failures = results.filter((r) => r.reply.code >= 400)
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
  reply(c, accepted(tx.id))
  yield* Metrics.messageAccepted(prepared.size)
  const results = tx.recipients.map((recipient) => ({ recipient, transport: "spool", reply: accepted(tx.id) }))
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
