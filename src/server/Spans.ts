/**
 * The spans of a connection, made only when a tracer collects them (see `util/Tracing.ts`): one
 * `smtp.session` per session and, under it, one `smtp.transaction` from MAIL to the end of the
 * message (or RSET, a new EHLO, STARTTLS, the end of the session). The spans of plugin hooks
 * (`plugin.<name>.<hook>`) and of deliveries nest under the one that was open when they ran.
 *
 * Attributes say who and how, never what: ids, the client's address, TLS, the EHLO name, the
 * authenticated user and mechanism, outcomes and counts. No credentials, no envelope addresses,
 * no content.
 */
import { Cause, Clock, Effect, Exit, type Tracer } from "effect"
import type { SessionOutcome } from "../observability/Metrics.ts"
import type { Command } from "../protocol/Command.ts"
import * as Tracing from "../util/Tracing.ts"
import type { Conn, Transaction } from "./State.ts"

/** The open spans of a traced session, kept on its `Conn`. */
export interface Trace {
  readonly session: Tracer.Span
  transaction: { readonly span: Tracer.Span; readonly tx: Transaction } | undefined
  /** Transactions started (MAIL accepted). */
  transactions: number
}

/** How a transaction ended, as the `smtp.transaction.outcome` attribute. */
export type TransactionOutcome = "accepted" | "rejected" | "refused" | "reset" | "abandoned"

/** The code of the reply a command left last, if it is still waiting to be sent. */
const lastCode = (c: Conn): number | undefined => {
  const last = c.out[c.out.length - 1]
  const code = last === undefined ? NaN : Number(last.slice(0, 3))
  return Number.isInteger(code) ? code : undefined
}

const end = (span: Tracer.Span, attributes: Record<string, unknown>): Effect.Effect<void> =>
  Effect.map(Clock.currentTimeNanos, (now) => {
    for (const [key, value] of Object.entries(attributes)) if (value !== undefined) span.attribute(key, value)
    span.end(now, Exit.void)
  })

const closeTransaction = (c: Conn, trace: Trace, outcome: TransactionOutcome): Effect.Effect<void> => {
  const open = trace.transaction
  if (open === undefined) return Effect.void
  trace.transaction = undefined
  return end(open.span, {
    "smtp.transaction.outcome": outcome,
    "smtp.recipients": open.tx.recipients.length,
    "smtp.reply.code": outcome === "abandoned" ? undefined : lastCode(c)
  })
}

/** What ended a transaction during `verb`, judged by the reply it left. */
const outcomeOf = (c: Conn, verb: Command["verb"]): TransactionOutcome => {
  if (verb !== "DATA" && verb !== "BDAT") return "reset"
  const code = lastCode(c)
  if (code === undefined || (c.closing && code === 421)) return "abandoned"
  return code < 400 ? "accepted" : "rejected"
}

/** After MAIL: its span stays open for the transaction MAIL started, or ends if MAIL was refused. */
const afterMail = (c: Conn, trace: Trace, span: Tracer.Span): Effect.Effect<void> => {
  const tx = c.tx
  if (tx === undefined) return end(span, { "smtp.transaction.outcome": "refused", "smtp.reply.code": lastCode(c) })
  trace.transaction = { span, tx }
  trace.transactions++
  span.attribute("smtp.transaction.id", tx.id)
  return Effect.void
}

/**
 * Runs one command under the span it belongs to: the open transaction's, a new transaction's for
 * MAIL, otherwise the session's (already the parent). Ends the transaction span when the
 * command ended the transaction.
 */
export const command = <A>(c: Conn, trace: Trace, verb: Command["verb"], run: Effect.Effect<A>): Effect.Effect<A> => {
  const open = trace.transaction
  if (open !== undefined) {
    return Effect.withParentSpan(run, open.span).pipe(
      Effect.ensuring(Effect.suspend(() => (c.tx === open.tx ? Effect.void : closeTransaction(c, trace, outcomeOf(c, verb)))))
    )
  }
  if (verb !== "MAIL") return run
  return Effect.flatMap(
    Effect.makeSpan("smtp.transaction", { parent: trace.session, captureStackTrace: false }),
    (span) => Effect.withParentSpan(run, span).pipe(Effect.ensuring(Effect.suspend(() => afterMail(c, trace, span))))
  )
}

const sessionEnd = (c: Conn, trace: Trace, exit: Exit.Exit<SessionOutcome>): Record<string, unknown> => {
  const { session } = c
  return {
    "smtp.outcome": Exit.isSuccess(exit) ? exit.value : Cause.isInterruptedOnly(exit.cause) ? "shutdown" : "error",
    "smtp.tls.mode": session.tls?.mode ?? "none",
    "smtp.tls.protocol": session.tls?.protocol,
    "smtp.tls.cipher": session.tls?.cipher,
    "smtp.helo": session.helo?.name,
    "smtp.auth.user": session.user,
    "smtp.auth.mechanism": session.user === undefined ? undefined : session.authMechanism,
    "smtp.commands": c.commands,
    "smtp.transactions": trace.transactions
  }
}

/**
 * Runs the session in an `smtp.session` span when a tracer collects spans; otherwise runs it as
 * it is. Attributes known only at the end (user, TLS, outcome) are added then.
 */
export const session = (c: Conn, self: Effect.Effect<SessionOutcome>): Effect.Effect<SessionOutcome> =>
  Effect.tracerWith((tracer) =>
    !Tracing.collected(tracer) ? self : Effect.useSpan("smtp.session", {
      kind: "server",
      captureStackTrace: false,
      attributes: {
        "smtp.session.id": c.session.id,
        "client.address": c.session.remoteAddress,
        "client.port": c.session.remotePort,
        "network.local.address": c.session.localAddress,
        "network.local.port": c.session.localPort
      }
    }, (span) => {
      const trace: Trace = { session: span, transaction: undefined, transactions: 0 }
      c.trace = trace
      return Effect.withParentSpan(self, span).pipe(
        Effect.onExit((exit) =>
          Effect.zipRight(
            closeTransaction(c, trace, "abandoned"),
            Effect.sync(() => {
              for (const [key, value] of Object.entries(sessionEnd(c, trace, exit))) if (value !== undefined) span.attribute(key, value)
            })
          )
        )
      )
    })
  )
