/**
 * The one delivery path of pass-through (`server/Delivery.ts`) and of the spool
 * (`spool/Attempt.ts`): a plan of transport groups is fanned out concurrently, each group through
 * `AttemptLog` (one line per attempt), and every recipient comes back with one reply — the
 * transport's answer for it, or what its `TransportError` stands for. A failed transport never
 * fails the fan-out: the callers decide what a reply means (the client's reply, a retry, a DSN),
 * and the failure notice itself is built by `Dsn.failureNotice` for both.
 *
 * Both paths used to carry their own copy of the error table and of the DSN envelope, and the
 * copies drifted; keeping them here (and a test that no other module maps a `TransportError`)
 * makes that impossible.
 *
 * @example
 * const results = yield* Deliver.fanOut(transports, plan, { id, mailFrom, mailParams, session, size, content })
 * const final = Deliver.combine(id, results)
 */
import * as Effect from "effect/Effect"
import type { RecipientResult } from "../pipeline/Plugin.ts"
import type { MailParams, Mailbox, Recipient } from "../protocol/Envelope.ts"
import * as Reply from "../protocol/Reply.ts"
import * as AttemptLog from "./AttemptLog.ts"
import type { OutgoingMessage, Transport, TransportError } from "./Transport.ts"

/** One transport and the recipients routed to it. */
export interface Group {
  readonly transport: string
  readonly recipients: ReadonlyArray<Recipient>
}

/** The message as every transport of the plan gets it; the recipients come from each group. */
export interface Outgoing extends Omit<OutgoingMessage, "envelope"> {
  readonly mailFrom: Mailbox | null
  readonly mailParams: MailParams
}

/**
 * What a transport failure stands for, per recipient: the upstream's class (and its words) when
 * it answered 4xx/5xx, otherwise a 4xx, since no reply from upstream is never a reason to bounce.
 * The text carries the error's cause ("cannot connect to host:port"), as an MTA's queue listing
 * and bounces do: the operator reads it in `queue list`, the sender in a DSN, the client in the
 * reply. A `TransportError` message never holds a secret (URLs are masked where it is made).
 */
export const replyOf = (error: TransportError): Reply.Reply => {
  if (error.reply !== undefined && error.reply.code >= 400) {
    const transient = error.reply.code < 500
    return Reply.make(
      error.reply.code,
      error.reply.enhanced ?? (transient ? "4.0.0" : "5.0.0"),
      `${error.transport}: ${error.reply.lines.join(" ")}`
    )
  }
  const prefix = `${error.transport}: `
  const text = prefix + (error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message)
  switch (error.reason) {
    case "Unreachable":
      return Reply.make(451, "4.4.1", text)
    case "Timeout":
      return Reply.make(451, "4.4.2", text)
    case "Storage":
      return Reply.make(451, "4.3.0", text)
    case "Protocol":
    case "Rejected":
      return Reply.make(451, "4.4.0", text)
  }
}

/** A route to a transport that is not (or no longer) configured: kept, until fixed or expired. */
export const notConfigured = (name: string): Reply.Reply => Reply.make(451, "4.3.5", `${name}: transport is not configured`)

/** A transport's report that left a recipient out. */
const noAnswer = (name: string): Reply.Reply => Reply.make(451, "4.4.0", `${name}: no reply for this recipient`)

/**
 * Offers one group to its transport; never fails. The results are in the order of
 * `group.recipients` (answers are matched by address, so a transport may answer in any order).
 */
export const deliverGroup = Effect.fnUntraced(function*(
  transports: ReadonlyMap<string, Transport>,
  group: Group,
  message: Outgoing
) {
  const name = group.transport
  const each = (reply: Reply.Reply): Array<RecipientResult> =>
    group.recipients.map((recipient) => ({ recipient, transport: name, reply }))
  const transport = transports.get(name)
  if (transport === undefined) {
    yield* Effect.logError(`route names unknown transport ${name}`)
    return each(notConfigured(name))
  }
  const { mailFrom, mailParams, ...rest } = message
  const outcome = yield* Effect.either(AttemptLog.deliver(transport, {
    ...rest,
    envelope: { mailFrom, mailParams, recipients: group.recipients }
  }))
  // AttemptLog has logged a failure with its cause.
  if (outcome._tag === "Left") return each(replyOf(outcome.left))
  const answers = [...outcome.right.recipients]
  return group.recipients.map((recipient): RecipientResult => {
    const at = answers.findIndex((a) => a.recipient.mailbox.address === recipient.mailbox.address)
    const reply = at === -1 ? noAnswer(name) : answers.splice(at, 1)[0]!.reply
    return { recipient, transport: name, reply }
  })
})

/**
 * Every group at once; the results of all groups, group by group in plan order. `each` runs when
 * one group has answered, before the others may have, and cannot be interrupted (the spool
 * records successes there, so that a shutdown cannot lose a 2xx it has seen).
 */
export const fanOut = <E = never>(
  transports: ReadonlyMap<string, Transport>,
  plan: ReadonlyArray<Group>,
  message: Outgoing,
  each: (results: ReadonlyArray<RecipientResult>) => Effect.Effect<unknown, E> = () => Effect.void
): Effect.Effect<ReadonlyArray<RecipientResult>, E> =>
  Effect.forEach(plan, (group) =>
    Effect.uninterruptibleMask((restore) =>
      restore(deliverGroup(transports, group, message)).pipe(Effect.tap(each))
    ), { concurrency: "unbounded" }).pipe(Effect.map((groups) => groups.flat()))

/** The failed ones (no 2xx): what goes to the spool, a retry or a DSN. */
export const failures = (results: ReadonlyArray<RecipientResult>): ReadonlyArray<RecipientResult> =>
  results.filter((r) => !Reply.isPositive(r.reply))

export const accepted = (id: string): Reply.Reply => Reply.make(250, "2.0.0", `Ok: queued as ${id}`)

/**
 * The client's reply once every transport answered (DESIGN.md section 4): all delivered → 250;
 * none → the failure's class, 4xx when any failure was temporary (the client retries rather than
 * bounces); some → `"partial"`, for which the caller answers 250 saying how many and hands the
 * failed recipients on, since any 4xx/5xx would make the client resend to those who have it.
 */
export const combine = (id: string, results: ReadonlyArray<RecipientResult>): Reply.Reply | "partial" => {
  const failed = failures(results)
  if (failed.length === 0) return accepted(id)
  if (failed.length < results.length) return "partial"
  return failed.find((f) => !Reply.isPermanent(f.reply))?.reply ?? failed[0]!.reply
}
