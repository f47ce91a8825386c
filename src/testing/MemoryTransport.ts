/**
 * A transport that keeps what it is given: the test kit and `replay` put one in place of each
 * configured transport, so routes work as configured and nothing leaves the process.
 */
import * as Effect from "effect/Effect"
import * as Message from "../pipeline/Message.ts"
import type { Mailbox, Recipient } from "../protocol/Envelope.ts"
import * as Reply from "../protocol/Reply.ts"
import { type OutgoingMessage, type Transport, TransportError } from "../transport/Transport.ts"

/** One message as a transport received it. */
export interface Delivered {
  readonly transport: string
  /** The transaction id (`queued as`). */
  readonly id: string
  readonly mailFrom: Mailbox | null
  /** The recipients routed to this transport. */
  readonly recipients: ReadonlyArray<string>
  /** The message as delivered: the header fields the `data` hooks added are in it. */
  readonly text: string
  readonly bytes: Uint8Array
  /** The first value of a header field of the delivered message, case-insensitively. */
  readonly header: (name: string) => string | undefined
}

/**
 * How a transport answers one recipient: a reply (`undefined` for 250), or a `TransportError` for
 * the whole message (an upstream down).
 */
export type Answer = (recipient: Recipient, transport: string) => Reply.Reply | TransportError | undefined

const headerOf = (text: string) => (name: string): string | undefined => {
  const end = text.indexOf("\r\n\r\n")
  const section = end < 0 ? text : text.slice(0, end + 2)
  const lower = name.toLowerCase()
  for (const field of section.replace(/\r\n[ \t]/g, " ").split("\r\n")) {
    const colon = field.indexOf(":")
    if (colon > 0 && field.slice(0, colon).trim().toLowerCase() === lower) return field.slice(colon + 1).trim()
  }
  return undefined
}

export const make = (name: string, into: Array<Delivered>, answer?: Answer): Transport => ({
  name,
  upstream: `memory:${name}`,
  deliver: (message: OutgoingMessage) =>
    Effect.gen(function*() {
      const replies = message.envelope.recipients.map((r) => ({ recipient: r, reply: answer?.(r, name) ?? Reply.make(250, "2.0.0", `Ok: queued as ${message.id}`) }))
      const failed = replies.find((r) => r.reply instanceof TransportError)
      if (failed !== undefined) return yield* Effect.fail(failed.reply as TransportError)
      const bytes = yield* Message.collect(message.content()).pipe(
        Effect.mapError((e) => new TransportError({ transport: name, reason: "Storage", message: e.message }))
      )
      const text = new TextDecoder().decode(bytes)
      into.push({
        transport: name,
        id: message.id,
        mailFrom: message.envelope.mailFrom,
        recipients: message.envelope.recipients.map((r) => r.mailbox.address),
        text,
        bytes,
        header: headerOf(text)
      })
      return { recipients: replies as ReadonlyArray<{ recipient: Recipient; reply: Reply.Reply }> }
    })
})
