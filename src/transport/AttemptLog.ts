/**
 * One log line per delivery attempt, for pass-through and the spool alike: the message id, the
 * transport and its upstream (never credentials), how many recipients, the result with the
 * upstream's reply, and how long it took. INFO when every recipient was taken, WARN otherwise,
 * with the cause: an operator reading one line knows what was tried, where, and what came back.
 *
 * @example
 * const report = yield* AttemptLog.deliver(transport, message)
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Reply from "../protocol/Reply.ts"
import type { DeliveryReport, OutgoingMessage, Transport, TransportError } from "./Transport.ts"

const text = (r: Reply.Reply): string => Reply.format(r).trim().replace(/\r\n/g, " ")

const fields = (transport: Transport, message: OutgoingMessage, millis: number) => ({
  id: message.id,
  transport: transport.name,
  ...(transport.upstream === undefined ? {} : { upstream: transport.upstream }),
  recipients: message.envelope.recipients.length,
  ...(message.session.user === undefined ? {} : { user: message.session.user }),
  durationMs: millis
})

const where = (transport: Transport): string =>
  transport.upstream === undefined ? transport.name : `${transport.name} (${transport.upstream})`

/** Logs the outcome of one `deliver`; the report or the error goes on unchanged. */
const logged = (
  transport: Transport,
  message: OutgoingMessage,
  outcome: Either.Either<DeliveryReport, TransportError>,
  millis: number
): Effect.Effect<void> => {
  const base = fields(transport, message, millis)
  if (Either.isLeft(outcome)) {
    const error = outcome.left
    const reply = error.reply === undefined ? {} : { reply: text(error.reply) }
    return Effect.logWarning(`delivery via ${where(transport)} failed: ${error.message}`).pipe(
      Effect.annotateLogs({ ...base, result: "failed", cause: error.message, reason: error.reason, ...reply })
    )
  }
  const replies = outcome.right.recipients.map((r) => r.reply)
  const failed = replies.filter((r) => !Reply.isPositive(r))
  if (failed.length === 0) {
    const reply = replies.length === 0 ? "" : text(replies[replies.length - 1]!)
    return Effect.logInfo(`delivered via ${where(transport)}: ${reply}`).pipe(
      Effect.annotateLogs({ ...base, result: "delivered", reply })
    )
  }
  const result = failed.length === replies.length ? "failed" : "partly delivered"
  const reply = text(failed[0]!)
  return Effect.logWarning(
    `delivery via ${where(transport)} ${result}: ${failed.length} of ${replies.length} recipient(s) refused: ${reply}`
  ).pipe(Effect.annotateLogs({ ...base, result, cause: reply, reply, refused: failed.length }))
}

/** `transport.deliver(message)`, timed and logged as one line. */
export const deliver = Effect.fnUntraced(function*(transport: Transport, message: OutgoingMessage) {
  const started = Date.now()
  const outcome = yield* Effect.either(transport.deliver(message))
  yield* logged(transport, message, outcome, Date.now() - started)
  return yield* outcome
})
