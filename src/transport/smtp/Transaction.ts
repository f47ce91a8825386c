/**
 * One mail transaction on an open upstream session: the envelope (with the extensions the
 * message needs, checked against what the upstream offers), the content, and the replies.
 *
 * - MAIL FROM carries SIZE, BODY, SMTPUTF8 and REQUIRETLS as the client declared them, and the
 *   DSN parameters (RET, ENVID; NOTIFY, ORCPT on RCPT) when the upstream offers DSN. Without DSN
 *   they are dropped: RFC 3461 section 4 lets a relay pass a message on to a non-DSN server.
 * - A message that needs an extension the upstream lacks fails before anything is sent:
 *   SMTPUTF8 gives 553 5.6.7 (non-ASCII address) or 554 5.6.9, BODY=8BITMIME to a 7-bit server
 *   554 5.6.3, REQUIRETLS without verified TLS or without the upstream's REQUIRETLS 550 5.7.30,
 *   and a message over the upstream's SIZE 552 5.3.4. Never a silently altered message.
 * - With PIPELINING, RSET (on a reused session), MAIL, every RCPT and DATA go out in one write.
 * - The result is per recipient: a refused RCPT keeps its own reply; accepted recipients get the
 *   reply to the final "." (SMTP), or each its own reply (LMTP). A failure at MAIL or DATA, or
 *   the reply to "." in SMTP, is a `TransportError` carrying the upstream's reply.
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as Address from "../../protocol/Address.ts"
import type { Recipient } from "../../protocol/Envelope.ts"
import * as Reply from "../../protocol/Reply.ts"
import * as Tracing from "../../util/Tracing.ts"
import { type DeliveryReport, type OutgoingMessage, TransportError } from "../Transport.ts"
import type { Session, Timeouts } from "./Client.ts"
import * as DotStuffing from "./DotStuffing.ts"
import * as Replies from "./Replies.ts"

/** Why a transaction failed, and whether a fresh connection may simply try again. */
export class TransactionFailure extends Data.TaggedError("TransactionFailure")<{
  readonly error: TransportError
  /** A reused session turned out dead before any of the message was sent. */
  readonly stale: boolean
}> {}

interface Context {
  readonly name: string
  readonly session: Session
  readonly message: OutgoingMessage
  readonly timeouts: Timeouts
}

const refuse = (c: Context, code: number, enhanced: string, text: string) =>
  new TransactionFailure({
    stale: false,
    error: new TransportError({
      transport: c.name,
      reason: "Rejected",
      message: `${c.name}: ${text} (message ${c.message.id})`,
      reply: Reply.make(code, enhanced, text)
    })
  })

const rejected = (c: Context, stage: string, reply: Reply.Reply) => {
  // 421: the upstream is closing the connection; the session must not be reused.
  if (reply.code === 421) c.session.wire.markBroken()
  return new TransactionFailure({
    stale: false,
    error: new TransportError({
      transport: c.name,
      reason: "Rejected",
      message: `${c.name}: upstream ${c.session.wire.socket.description} answered ${stage} with ${Replies.describe(reply)} (message ${c.message.id})`,
      reply
    })
  })
}

const nonAscii = /[^\x00-\x7f]/

/** The extensions this message needs that the upstream lacks, as the reply the client gets. */
const unmetNeeds = (c: Context): TransactionFailure | undefined => {
  const caps = c.session.capabilities
  const { envelope, size } = c.message
  const params = envelope.mailParams
  const addresses = [envelope.mailFrom?.address ?? "", ...envelope.recipients.map((r) => r.mailbox.address)]
  if ((params.smtputf8 === true || addresses.some((a) => nonAscii.test(a))) && !caps.has("SMTPUTF8")) {
    return addresses.some((a) => nonAscii.test(a))
      ? refuse(c, 553, "5.6.7", "upstream does not support SMTPUTF8, needed for a non-ASCII address")
      : refuse(c, 554, "5.6.9", "upstream does not support SMTPUTF8, needed for this UTF-8 message")
  }
  if (params.body === "8BITMIME" && !caps.has("8BITMIME")) {
    return refuse(c, 554, "5.6.3", "upstream does not accept 8-bit messages (no 8BITMIME) and conversion is not supported")
  }
  if (params.body === "BINARYMIME") return refuse(c, 554, "5.6.3", "BINARYMIME cannot be relayed")
  if (params.requireTls === true) {
    if (c.session.tls === undefined || !c.session.tls.authorized) {
      return refuse(c, 550, "5.7.30", "REQUIRETLS: the upstream connection is not TLS with a verified certificate")
    }
    if (!caps.has("REQUIRETLS")) return refuse(c, 550, "5.7.30", "REQUIRETLS support required but the upstream does not offer it")
  }
  const limit = Number(caps.get("SIZE") ?? "0")
  if (caps.has("SIZE") && limit > 0 && size > limit) {
    return refuse(c, 552, "5.3.4", `message of ${size} bytes exceeds the upstream's limit of ${limit}`)
  }
  return undefined
}

const mailLine = (c: Context): string => {
  const caps = c.session.capabilities
  const p = c.message.envelope.mailParams
  const params: Array<string> = []
  if (caps.has("SIZE")) params.push(`SIZE=${c.message.size}`)
  if (p.body !== undefined && caps.has("8BITMIME")) params.push(`BODY=${p.body}`)
  if (p.smtputf8 === true) params.push("SMTPUTF8")
  if (p.requireTls === true) params.push("REQUIRETLS")
  if (caps.has("DSN")) {
    if (p.ret !== undefined) params.push(`RET=${p.ret}`)
    if (p.envid !== undefined) params.push(`ENVID=${p.envid}`)
  }
  return [`MAIL FROM:${Address.formatPath(c.message.envelope.mailFrom)}`, ...params].join(" ")
}

const rcptLine = (c: Context, r: Recipient): string => {
  const params: Array<string> = []
  if (c.session.capabilities.has("DSN")) {
    if (r.params.notify !== undefined) params.push(`NOTIFY=${r.params.notify.join(",")}`)
    if (r.params.orcpt !== undefined) params.push(`ORCPT=${r.params.orcpt}`)
  }
  return [`RCPT TO:${Address.formatPath(r.mailbox)}`, ...params].join(" ")
}

/** Bytes are gathered up to this size before a write, so that a small message is one packet. */
const writeBatch = 64 * 1024

const sendFailure = (error: TransportError) => new TransactionFailure({ error, stale: false })

/** Streams the dot-stuffed content and the terminator; a read error aborts the connection. */
const sendContent = (c: Context): Effect.Effect<void, TransactionFailure> => {
  const { wire } = c.session
  // A message held in memory needs no stream: it goes out with its terminator in one write.
  const inMemory = c.message.inMemory?.()
  if (inMemory !== undefined) return Effect.mapError(wire.send(DotStuffing.encode(inMemory), c.timeouts.data, "DATA"), sendFailure)
  const stuffer = DotStuffing.make()
  let parts: Array<Uint8Array> = []
  let size = 0
  const flush = (extra?: Uint8Array) => {
    if (extra !== undefined) parts.push(extra)
    if (parts.length === 0) return Effect.void
    const total = parts.reduce((n, p) => n + p.byteLength, 0)
    const bytes = new Uint8Array(total)
    let offset = 0
    for (const p of parts) {
      bytes.set(p, offset)
      offset += p.byteLength
    }
    parts = []
    size = 0
    return wire.send(bytes, c.timeouts.data, "DATA")
  }
  return c.message.content().pipe(
    Stream.mapError((e) => {
      // Without the final "." the upstream discards what it got: closing is the only safe abort.
      wire.markBroken()
      return new TransportError({ transport: c.name, reason: "Storage", message: `${c.name}: cannot read message ${c.message.id}: ${e.message}` })
    }),
    Stream.runForEach((chunk) => {
      const encoded = stuffer.push(chunk)
      parts.push(encoded)
      size += encoded.byteLength
      return size >= writeBatch ? flush() : Effect.void
    }),
    Effect.zipRight(Effect.suspend(() => flush(stuffer.end()))),
    Effect.mapError(sendFailure)
  )
}

type Outcome = Effect.Effect<DeliveryReport, TransactionFailure>

/** After 354: the content, then the final reply (SMTP) or one reply per accepted recipient (LMTP). */
const transfer = Effect.fnUntraced(function*(c: Context, replies: ReadonlyArray<{ recipient: Recipient; reply: Reply.Reply }>) {
  const { wire } = c.session
  yield* sendContent(c)
  const final = (stage: string) =>
    Effect.mapError(wire.reply(c.timeouts.data, stage), (error) => new TransactionFailure({ error, stale: false }))
  if (c.session.protocol === "smtp") {
    const reply = yield* final("end of data")
    if (reply.code >= 300) return yield* Effect.fail(rejected(c, "end of data", reply))
    return { recipients: replies.map((r) => (r.reply.code >= 300 ? r : { recipient: r.recipient, reply })) }
  }
  const out: Array<{ recipient: Recipient; reply: Reply.Reply }> = []
  const unknown = Reply.make(451, "4.4.2", `${c.name}: the upstream did not answer for this recipient`)
  let lost = false
  for (const r of replies) {
    if (r.reply.code >= 300) {
      out.push(r)
      continue
    }
    // Recipients already answered keep their result; after a lost reply the rest are unknown.
    const reply = lost ? undefined : yield* Effect.either(final(`end of data for ${r.recipient.mailbox.address}`))
    if (reply === undefined || reply._tag === "Left") {
      if (reply !== undefined) yield* Effect.logWarning(reply.left.message)
      lost = true
      out.push({ recipient: r.recipient, reply: unknown })
    } else out.push({ recipient: r.recipient, reply: reply.right })
  }
  return { recipients: out }
})

const ioFailure = (stale: boolean) => (error: TransportError) =>
  new TransactionFailure({ error, stale: stale && error.reason === "Unreachable" })

/** The commands and replies of one transaction. */
const exchangeAll = Effect.fnUntraced(function*(name: string, session: Session, message: OutgoingMessage, timeouts: Timeouts) {
  const c: Context = { name, session, message, timeouts }
  const unmet = unmetNeeds(c)
  if (unmet !== undefined) return yield* Effect.fail(unmet)
  const { wire, capabilities } = session
  const reused = session.transactions > 0
  session.transactions++
  const mail = mailLine(c)
  const rcpts = message.envelope.recipients.map((r) => rcptLine(c, r))
  if ([mail, ...rcpts].some((l) => /[\r\n]/.test(l))) {
    return yield* Effect.fail(refuse(c, 501, "5.5.4", "envelope contains a line break"))
  }
  const command = timeouts.command
  const pipelined = capabilities.has("PIPELINING")
  const stale = ioFailure(reused)

  if (pipelined) {
    const batch = [...(reused ? ["RSET"] : []), mail, ...rcpts, "DATA"].map((l) => `${l}\r\n`).join("")
    yield* Effect.mapError(wire.send(batch, command, "MAIL"), stale)
  }
  const exchange = (line: string, stage: string) => pipelined ? wire.reply(command, stage) : wire.command(line, command, stage)

  if (reused) {
    const rset = yield* Effect.mapError(exchange("RSET", "RSET"), stale)
    if (rset.code !== 250) {
      wire.markBroken()
      return yield* Effect.fail(new TransactionFailure({ stale: true, error: rejected(c, "RSET", rset).error }))
    }
  }
  const mailReply = yield* Effect.mapError(exchange(mail, "MAIL"), stale)
  // Without pipelining nothing more was sent: stop here. With it, the rest must still be read.
  if (mailReply.code !== 250 && !pipelined) return yield* Effect.fail(rejected(c, "MAIL", mailReply))
  const replies: Array<{ recipient: Recipient; reply: Reply.Reply }> = []
  for (const [i, recipient] of message.envelope.recipients.entries()) {
    if (!pipelined && mailReply.code !== 250) break
    const reply = yield* Effect.mapError(exchange(rcpts[i]!, "RCPT"), ioFailure(false))
    replies.push({ recipient, reply })
  }
  const accepted = mailReply.code === 250 && replies.some((r) => r.reply.code < 300)
  if (!pipelined && !accepted) return { recipients: replies }
  const dataReply = yield* Effect.mapError(exchange("DATA", "DATA"), ioFailure(false))
  if (dataReply.code === 354 && !accepted) {
    // A server that says 354 with nothing to deliver to: we will not send content, so drop it.
    wire.markBroken()
  }
  if (mailReply.code !== 250) return yield* Effect.fail(rejected(c, "MAIL", mailReply))
  if (!accepted) return { recipients: replies }
  if (dataReply.code !== 354) return yield* Effect.fail(rejected(c, "DATA", dataReply))
  return yield* transfer(c, replies)
})

/** Runs one transaction; `reused` sessions get an RSET first. */
export const send = (name: string, session: Session, message: OutgoingMessage, timeouts: Timeouts): Outcome =>
  exchangeAll(name, session, message, timeouts).pipe(
    // Stopped halfway (shutdown, client gone): the conversation's state is unknown, never reuse it.
    Effect.onInterrupt(() => Effect.sync(() => session.wire.markBroken())),
    Tracing.withSpan("smtp-relay.transaction", { attributes: { "message.id": message.id, transport: name } })
  )
