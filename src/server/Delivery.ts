/**
 * The end of a message: `data` hooks, routing, then the transports. The client's final reply is
 * sent only after every transport answered (pass-through), so a 250 always means delivered.
 */
import { Effect, Either } from "effect"
import * as Message from "../pipeline/Message.ts"
import type { RecipientResult, Route } from "../pipeline/Plugin.ts"
import type { Recipient } from "../protocol/Envelope.ts"
import * as Reply from "../protocol/Reply.ts"
import type { TransportError } from "../transport/Transport.ts"
import { refuse } from "./Commands.ts"
import type { MessageBuffer } from "./MessageBuffer.ts"
import { type Conn, reply, type Transaction } from "./State.ts"

const storageFailure = Reply.make(451, "4.3.0", "Temporary storage failure, please try again later")

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

/** One reply for the whole message: 250 only when every recipient was delivered. */
const combine = (id: string, results: ReadonlyArray<RecipientResult>): Reply.Reply => {
  const failures = results.filter((r) => r.reply.code >= 400)
  if (failures.length === 0) return Reply.make(250, "2.0.0", `Ok: queued as ${id}`)
  // A transient failure anywhere asks the client to retry rather than bounce.
  return failures.find((f) => f.reply.code < 500)?.reply ?? failures[0]!.reply
}


export const finish = (
  c: Conn,
  tx: Transaction,
  buffer: MessageBuffer,
  flags: { readonly bare: boolean; readonly storageFailed: boolean }
) =>
  Effect.gen(function*() {
    if (buffer.tooBig()) return reply(c, Reply.tooBig)
    if (flags.bare && c.env.config.bareLineEndings === "reject") {
      return reply(c, Reply.make(550, "5.6.0", "Message contains bare CR or LF line endings"))
    }
    if (flags.storageFailed) return reply(c, storageFailure)
    const content = yield* Effect.either(buffer.finish())
    if (Either.isLeft(content)) {
      yield* Effect.logError(`cannot store message: ${content.left.message}`)
      return reply(c, storageFailure)
    }
    const message = content.right
    const added: Array<{ name: string; value: string }> = []
    const removed: Array<(h: Message.Header) => boolean> = []
    const { verdict } = yield* c.env.pipeline.run("data", {
      session: c.session,
      transaction: tx,
      message,
      addHeader: (name, value) => void added.push({ name, value }),
      removeHeader: (name, predicate) => {
        const lower = name.toLowerCase()
        removed.push((h) => h.name.toLowerCase() === lower && (predicate === undefined || predicate(h.value)))
      }
    })
    if (refuse(c, verdict)) return
    const edits: Message.Edits = { added, removed }
    const transports = [...c.env.transports.keys()]
    const defaultRoute = (recipients: ReadonlyArray<Recipient>): ReadonlyArray<Route> =>
      [{ transport: c.env.config.defaultTransport, recipients }]
    const routes = (yield* c.env.pipeline.route({ session: c.session, transaction: tx, message, transports })) ??
      defaultRoute(tx.recipients)
    // A recipient no route names still gets delivered, by the default transport.
    const routed = new Set(routes.flatMap((r) => r.recipients.map((x) => x.mailbox.address)))
    const unrouted = tx.recipients.filter((r) => !routed.has(r.mailbox.address))
    const plan = unrouted.length > 0 ? [...routes, ...defaultRoute(unrouted)] : routes
    const size = Message.renderedSize(message, edits)
    const results = yield* Effect.forEach(plan, (route) =>
      Effect.gen(function*() {
        const transport = c.env.transports.get(route.transport)
        if (transport === undefined) {
          yield* Effect.logError(`route names unknown transport ${route.transport}`)
          return route.recipients.map((recipient) => ({ recipient, transport: route.transport, reply: Reply.pluginFailure }))
        }
        const outcome = yield* Effect.either(transport.deliver({
          id: tx.id,
          envelope: { mailFrom: tx.mailFrom, mailParams: tx.mailParams, recipients: route.recipients },
          session: c.session,
          size,
          content: () => Message.render(message, edits)
        }))
        if (Either.isLeft(outcome)) {
          yield* Effect.logWarning(`delivery via ${route.transport} failed: ${outcome.left.message}`)
          const r = transportReply(outcome.left)
          return route.recipients.map((recipient) => ({ recipient, transport: route.transport, reply: r }))
        }
        return outcome.right.recipients.map(({ recipient, reply: r }) => ({ recipient, transport: route.transport, reply: r }))
      }), { concurrency: "unbounded" })
    const flat = results.flat()
    const final = combine(tx.id, flat)
    yield* Effect.logInfo(`message ${tx.id}: ${final.code} ${final.lines.join(" ")}`).pipe(
      Effect.annotateLogs({ session: c.session.id, transaction: tx.id, size, recipients: tx.recipients.length })
    )
    reply(c, final)
    yield* c.env.pipeline.notify("delivered", { session: c.session, transaction: tx, results: flat })
  }).pipe(Effect.ensuring(Effect.suspend(() => {
    c.tx = undefined
    c.chunking = undefined
    return buffer.dispose
  })))
