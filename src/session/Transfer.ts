/**
 * The message transfer as rules of the session machine: DATA (RFC 5321 4.1.1.4) and BDAT
 * (RFC 3030), then the end of the message: the content checks, the `data` hooks and the
 * delivery's final reply. The bytes themselves never pass through here: the decoder hands them
 * to the server's message buffer, and the machine learns the facts at the end (`ContentEnd`).
 */
import type { Verdict } from "../pipeline/Verdict.ts"
import * as Reply from "../protocol/Reply.ts"
import { type ContentFacts, endTransaction, invalid, type Phase, ready, refuse, refused, reply, set, type Turn } from "./Step.ts"

const noRecipients = Reply.make(554, "5.5.1", "No valid recipients")
export const storageFailure = Reply.make(451, "4.3.0", "Temporary storage failure, please try again later")
const headerSectionTooLarge = Reply.make(552, "5.3.4", "Message header section exceeds 256 KiB")

export const data = (t: Turn): void => {
  const { tx, message } = t.state
  if (tx === undefined) return invalid(t, Reply.badSequence("Need MAIL command"))
  if (message === "bdat") return invalid(t, Reply.badSequence("DATA not allowed after BDAT"))
  if (tx.recipients.length === 0) return invalid(t, noRecipients)
  reply(t, Reply.make(354, undefined, "End data with <CR><LF>.<CR><LF>"))
  set(t, { phase: { _tag: "Data" }, message: "data" })
  t.actions.push({ _tag: "OpenMessage" }, { _tag: "ReceiveData" })
}

/**
 * `BDAT size [LAST]`. The chunk's bytes are read whatever the state, or they would be taken for
 * commands; without a transaction or a recipient they are thrown away and the command refused.
 */
export const bdat = (t: Turn, size: number, last: boolean): void => {
  const { tx, message } = t.state
  const problem = tx === undefined
    ? Reply.badSequence("Need MAIL command")
    : tx.recipients.length === 0
    ? noRecipients
    : undefined
  if (problem === undefined && message === "none") {
    set(t, { message: "bdat" })
    t.actions.push({ _tag: "OpenMessage" })
  }
  set(t, { phase: { _tag: "Chunk", size, last, problem } })
  t.actions.push({ _tag: "ReceiveChunk", size, last, keep: problem === undefined })
}

/** The checks every message passes once its last byte is in, whichever way it came. */
const complete = (t: Turn, facts: ContentFacts): void => {
  if (facts.tooBig) return refusedMessage(t, Reply.tooBig)
  if (facts.bare && t.state.settings.bareLineEndings === "reject") {
    return refusedMessage(t, Reply.make(550, "5.6.0", "Message contains bare CR or LF line endings"))
  }
  if (facts.storageFailed) return answered(t, storageFailure)
  set(t, { phase: { _tag: "Sealing" } })
  t.actions.push({ _tag: "Seal" })
}

/** The message's final reply: the transaction is over (accepted below 400, rejected otherwise). */
const answered = (t: Turn, r: Reply.Reply): void => {
  reply(t, r)
  endTransaction(t, r.code < 400 ? "accepted" : "rejected", r.code)
  ready(t)
}

const refusedMessage = (t: Turn, r: Reply.Reply, by = "bridge"): void => {
  refused(t, r, by)
  endTransaction(t, "rejected", r.code)
}

export const contentEnd = (t: Turn, phase: Extract<Phase, { _tag: "Data" | "Chunk" }>, facts: ContentFacts): void => {
  if (phase._tag === "Data") return complete(t, facts)
  if (phase.problem !== undefined) return invalid(t, phase.problem)
  if (facts.tooBig || facts.storageFailed) {
    // The transaction is over: later BDATs get 503 until a new MAIL.
    reply(t, facts.storageFailed ? Reply.make(451, "4.3.0", "Temporary storage failure") : Reply.tooBig)
    endTransaction(t, "rejected", facts.storageFailed ? 451 : 552)
    return ready(t)
  }
  if (!phase.last) {
    reply(t, Reply.make(250, "2.0.0", `${phase.size} octets received`))
    return ready(t)
  }
  complete(t, facts)
}

export const sealed = (t: Turn, result: "ok" | "failed" | "headerTooLarge"): void => {
  if (result === "failed") return answered(t, storageFailure)
  if (result === "headerTooLarge") return answered(t, headerSectionTooLarge)
  set(t, { phase: { _tag: "DataHook" } })
  t.actions.push({ _tag: "Run", hook: "data", ctx: { session: t.state.session, transaction: t.state.tx! } })
}

export const dataVerdict = (t: Turn, v: Verdict, plugin: string | undefined): void => {
  if (refuse(t, v, plugin)) {
    const code = v._tag === "Continue" || v._tag === "Accept" ? undefined : v.code
    return endTransaction(t, "rejected", code)
  }
  set(t, { phase: { _tag: "Delivering" } })
  t.actions.push({ _tag: "Deliver", session: t.state.session, transaction: t.state.tx! })
}

export const delivered = (t: Turn, r: Reply.Reply): void => answered(t, r)
