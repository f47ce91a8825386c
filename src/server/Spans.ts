/**
 * The spans of a connection, made only when a tracer collects them (see `util/Tracing.ts`): one
 * `smtp.session` per session and, under it, one `smtp.transaction` from MAIL to the end of the
 * message (or RSET, a new EHLO, STARTTLS, the end of the session). The spans of plugin hooks
 * (`plugin.<name>.<hook>`) and of deliveries nest under the one that was open when they ran.
 * How a transaction ended comes from the session machine as a value (`TransactionEvent`).
 *
 * Attributes say who and how, never what: ids, the client's address, TLS, the EHLO name, the
 * authenticated user and mechanism, outcomes and counts. No credentials, no envelope addresses,
 * no content.
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Tracer from "effect/Tracer"
import type { SessionOutcome } from "../observability/Metrics.ts"
import type { SessionInfo } from "../pipeline/Session.ts"
import type { Command } from "../protocol/Command.ts"
import type { TransactionEvent, TransactionOutcome } from "../session/Engine.ts"
import * as Tracing from "../util/Tracing.ts"

/** The open spans of a traced session. */
export interface Trace {
  readonly session: Tracer.Span
  /** The open transaction's span, and its id once MAIL opened it. */
  transaction: { readonly span: Tracer.Span; id: string | undefined; recipients: number } | undefined
  /** Transactions started (MAIL accepted). */
  transactions: number
}

/** What the session span reports at its end. */
export interface Summary {
  readonly session: SessionInfo
  readonly commands: number
}

const end = (span: Tracer.Span, attributes: Record<string, unknown>): Effect.Effect<void> =>
  Effect.map(Clock.currentTimeNanos, (now) => {
    for (const [key, value] of Object.entries(attributes)) if (value !== undefined) span.attribute(key, value)
    span.end(now, Exit.void)
  })

const closeTransaction = (trace: Trace, outcome: TransactionOutcome, code: number | undefined): Effect.Effect<void> => {
  const open = trace.transaction
  if (open === undefined) return Effect.void
  trace.transaction = undefined
  return end(open.span, { "smtp.transaction.outcome": outcome, "smtp.recipients": open.recipients, "smtp.reply.code": code })
}

/** A transaction opened or ended (`recipients`: how many it had accepted when it ended). */
export const transaction = (trace: Trace, event: TransactionEvent, recipients: number): Effect.Effect<void> => {
  const open = trace.transaction
  if (event._tag === "Opened") {
    if (open !== undefined && open.id === undefined) {
      open.id = event.id
      trace.transactions++
      open.span.attribute("smtp.transaction.id", event.id)
    }
    return Effect.void
  }
  if (open === undefined || open.id !== event.id) return Effect.void
  open.recipients = recipients
  return closeTransaction(trace, event.outcome, event.code)
}

/** Runs the end of a message (its hooks, its delivery) under the open transaction's span. */
export const within = <A>(trace: Trace, run: Effect.Effect<A>): Effect.Effect<A> =>
  trace.transaction === undefined ? run : Effect.withParentSpan(run, trace.transaction.span)

/**
 * Runs one command under the span it belongs to: the open transaction's, a new transaction's for
 * MAIL, otherwise the session's (already the parent). A MAIL that opened no transaction ends its
 * span as `refused` with the code of its reply (`code()` once the command is done).
 */
export const command = <A>(trace: Trace, verb: Command["verb"], run: Effect.Effect<A>, code: () => number | undefined): Effect.Effect<A> => {
  const open = trace.transaction
  if (open !== undefined) return Effect.withParentSpan(run, open.span)
  if (verb !== "MAIL") return run
  return Effect.flatMap(
    Effect.makeSpan("smtp.transaction", { parent: trace.session, captureStackTrace: false }),
    (span) => {
      trace.transaction = { span, id: undefined, recipients: 0 }
      return Effect.withParentSpan(run, span).pipe(Effect.ensuring(Effect.suspend(() => {
        const now = trace.transaction
        if (now === undefined || now.span !== span || now.id !== undefined) return Effect.void
        trace.transaction = undefined
        return end(span, { "smtp.transaction.outcome": "refused", "smtp.reply.code": code() })
      })))
    }
  )
}

const sessionEnd = (summary: Summary, trace: Trace, exit: Exit.Exit<SessionOutcome>): Record<string, unknown> => {
  const { session } = summary
  return {
    "smtp.outcome": Exit.isSuccess(exit) ? exit.value : Cause.isInterruptedOnly(exit.cause) ? "shutdown" : "error",
    "smtp.tls.mode": session.tls?.mode ?? "none",
    "smtp.tls.protocol": session.tls?.protocol,
    "smtp.tls.cipher": session.tls?.cipher,
    "smtp.helo": session.helo?.name,
    "smtp.auth.user": session.user,
    "smtp.auth.mechanism": session.user === undefined ? undefined : session.authMechanism,
    "smtp.commands": summary.commands,
    "smtp.transactions": trace.transactions
  }
}

/**
 * Opens the `smtp.session` span when a tracer collects spans; otherwise there is no trace. The
 * session runs on a fiber only while it has work (it waits for an idle client without one), so
 * each of those runs is put under the span (`within`), and `close` ends it once.
 */
export const open = (info: SessionInfo): Effect.Effect<Trace | undefined> =>
  Effect.tracerWith((tracer) =>
    !Tracing.collected(tracer) ? Effect.succeed(undefined) : Effect.map(
      Effect.makeSpan("smtp.session", {
        kind: "server",
        captureStackTrace: false,
        attributes: {
          "smtp.session.id": info.id,
          "client.address": info.remoteAddress,
          "client.port": info.remotePort,
          "network.local.address": info.localAddress,
          "network.local.port": info.localPort
        }
      }),
      (span): Trace => ({ session: span, transaction: undefined, transactions: 0 })
    )
  )

/** Runs part of the session under its span. */
export const session = <A>(trace: Trace, run: Effect.Effect<A>): Effect.Effect<A> => Effect.withParentSpan(run, trace.session)

/** Ends the session span with the attributes known only at the end (user, TLS, outcome): once. */
export const close = (trace: Trace, summary: Summary, exit: Exit.Exit<SessionOutcome>): Effect.Effect<void> =>
  Effect.zipRight(
    closeTransaction(trace, "abandoned", undefined),
    Effect.flatMap(Clock.currentTimeNanos, (now) =>
      Effect.sync(() => {
        const span = trace.session
        if (span.status._tag === "Ended") return
        for (const [key, value] of Object.entries(sessionEnd(summary, trace, exit))) if (value !== undefined) span.attribute(key, value)
        span.end(now, exit)
      }))
  )
