/**
 * What the `data` hooks of one message changed: header edits, the envelope, a replacement body,
 * a discard or a quarantine. The hooks call `MessageEdits` (pipeline/Plugin.ts); Delivery reads
 * the result. Every value that reaches the message is checked here, once, whoever asked for it
 * (a plugin, a milter, an HTTP hook): no CR or LF inside a header, parseable addresses, bounded
 * recipients and body.
 */
import * as Effect from "effect/Effect"
import * as Message from "../pipeline/Message.ts"
import type { BodyWriter, MessageEdits } from "../pipeline/Plugin.ts"
import type { TransactionInfo } from "../pipeline/Session.ts"
import * as Address from "../protocol/Address.ts"
import type { Mailbox, Recipient } from "../protocol/Envelope.ts"
import * as MessageBuffer from "./MessageBuffer.ts"

export interface Draft {
  readonly edits: MessageEdits
  /** `DataContext.addHeader`/`removeHeader`: on top of the original section, or of the edited one. */
  readonly addHeader: (name: string, value: string) => void
  readonly removeHeader: (name: string, predicate?: (value: string) => boolean) => void
  /** The header and body edits, for rendering. */
  readonly result: () => Message.Edits
  readonly mailFrom: () => Mailbox | null
  readonly recipients: () => ReadonlyArray<Recipient>
  readonly envelopeChanged: () => boolean
  readonly fate: () => { readonly _tag: "Deliver" } | { readonly _tag: "Discard" | "Quarantine"; readonly reason: string }
  /** Frees every body buffer opened (the replacement included): after delivery. */
  readonly dispose: Effect.Effect<void>
}

export interface Options {
  readonly maxRecipients: number
  readonly maxMessageSize: number
  readonly spillThreshold: number
  readonly tempDir: string | undefined
}

const fail = (reason: Message.EditError["reason"], message: string): never => {
  throw new Message.EditError({ reason, message })
}

// A header value may be folded by its author (CRLF then a blank), but never carry a line break
// of its own: that would end the field and start another (a forged Bcc, a second Subject).
const checkField = (name: string, value: string): void => {
  if (!Message.validName(name)) fail("HeaderName", `invalid header field name ${JSON.stringify(name.slice(0, 80))}`)
  if (/[\0\r\n]/.test(value.replace(/\r?\n(?=[ \t])/g, ""))) fail("HeaderValue", `header ${name}: CR, LF or NUL in the value`)
  // A continuation line of blanks only reads as the blank line that ends the header to a lenient parser.
  if (/\r?\n[ \t]*(?:\r?\n|$)/.test(value)) fail("HeaderValue", `header ${name}: a folded line with nothing on it`)
  if (value.length > 64 * 1024) fail("HeaderValue", `header ${name}: value longer than 64 KiB`)
}

const unfold = (value: string): string => value.replace(/\r?\n(?=[ \t])/g, "")

const encoder = new TextEncoder()

/**
 * A checked field as it will be sent. A value folded by its author keeps its folds (as CRLF):
 * a signature's header (DKIM-Signature from a milter) must reach the verifier as it was signed;
 * any other value is folded by the bridge.
 */
const field = (name: string, value: string): Message.Field =>
  /\r?\n[ \t]/.test(value)
    ? { name, value: unfold(value), bytes: encoder.encode(`${name}: ${value.replace(/\r?\n/g, "\r\n")}\r\n`) }
    : Message.newField(name, value)

const parse = (address: string, allowNull: boolean): Mailbox | null => {
  const text = address.trim()
  const path = text.startsWith("<") ? text : `<${text}>`
  const parsed = Address.parsePath(path, { smtputf8: true, allowNull })
  if (parsed._tag === "Error") return fail("Address", `not an address: ${JSON.stringify(text.slice(0, 300))} (${parsed.reason})`)
  return parsed.mailbox
}

const sameAddress = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase()

/** Rewrites bare CR and bare LF as CRLF, across chunk boundaries (the bridge never sends either). */
const lineEndings = () => {
  let pendingCr = false
  return (chunk: Uint8Array, final: boolean): Uint8Array => {
    if (!pendingCr && !final && chunk.indexOf(13) === -1 && chunk.indexOf(10) === -1) return chunk
    const out = new Uint8Array(chunk.length * 2 + 2)
    let n = 0
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!
      if (pendingCr) {
        pendingCr = false
        out[n++] = 13
        out[n++] = 10
        if (b === 10) continue
      }
      if (b === 13) pendingCr = true
      else if (b === 10) {
        out[n++] = 13
        out[n++] = 10
      } else out[n++] = b
    }
    if (final && pendingCr) {
      pendingCr = false
      out[n++] = 13
      out[n++] = 10
    }
    return out.subarray(0, n)
  }
}

export const make = (content: Message.Content, tx: TransactionInfo, options: Options): Draft => {
  const added: Array<{ name: string; value: string }> = []
  const removed: Array<(h: Message.Header) => boolean> = []
  let fields: Array<Message.Field> | undefined
  let body: Message.Body | undefined
  let mailFrom: Mailbox | null = tx.mailFrom
  let recipients: Array<Recipient> = [...tx.recipients]
  let envelopeChanged = false
  let fate: ReturnType<Draft["fate"]> = { _tag: "Deliver" }
  const buffers: Array<MessageBuffer.MessageBuffer> = []

  // The first positional edit folds the simple ones into a full list; later ones edit it.
  const materialized = (): Array<Message.Field> => {
    if (fields === undefined) {
      fields = [...Message.fieldsOf(content, { added, removed })]
      added.length = 0
      removed.length = 0
    }
    return fields
  }

  const edits: MessageEdits = {
    headers: () => Message.fieldsOf(content, { added, removed, fields }),
    body: () => body !== undefined ? body.stream() : Message.bodyOf(content),
    bodyInMemory: () => body !== undefined ? undefined : Message.bodyInMemory(content),
    rendered: () => {
      const snapshot: Message.Edits = { added: [...added], removed: [...removed], fields: fields === undefined ? undefined : [...fields], body }
      return { size: Message.renderedSize(content, snapshot), stream: () => Message.render(content, snapshot) }
    },
    changeHeader: (name, index, value) => {
      if (!Number.isInteger(index) || index < 1) fail("Index", `header ${name}: index ${index} (must be 1 or more)`)
      if (value !== undefined) checkField(name, value)
      else if (!Message.validName(name)) fail("HeaderName", `invalid header field name ${JSON.stringify(name.slice(0, 80))}`)
      const list = materialized()
      const lower = name.toLowerCase()
      let seen = 0
      const at = list.findIndex((f) => f.name.toLowerCase() === lower && ++seen === index)
      if (at === -1) {
        if (value !== undefined && value !== "") list.push(field(name, value))
      } else if (value === undefined || value === "") list.splice(at, 1)
      else list[at] = field(list[at]!.name, value)
    },
    insertHeader: (index, name, value) => {
      if (!Number.isInteger(index) || index < 0) fail("Index", `header ${name}: position ${index} (must be 0 or more)`)
      checkField(name, value)
      const list = materialized()
      list.splice(Math.min(index, list.length), 0, field(name, value))
    },
    envelope: () => ({ mailFrom, recipients }),
    setSender: (address) => {
      mailFrom = address === null || address.trim() === "" || address.trim() === "<>" ? null : parse(address, true)
      envelopeChanged = true
    },
    addRecipient: (address) => {
      const mailbox = parse(address, false)!
      if (recipients.some((r) => sameAddress(r.mailbox.address, mailbox.address))) return
      if (recipients.length >= options.maxRecipients) {
        fail("TooManyRecipients", `cannot add ${mailbox.address}: already ${recipients.length} recipients (limits.maxRecipients)`)
      }
      recipients = [...recipients, { mailbox, params: { raw: {} } }]
      envelopeChanged = true
    },
    removeRecipient: (address) => {
      const text = address.trim().replace(/^<(.*)>$/, "$1")
      const before = recipients.length
      recipients = recipients.filter((r) => !sameAddress(r.mailbox.address, text))
      if (recipients.length !== before) envelopeChanged = true
      return recipients.length !== before
    },
    replaceBody: (): BodyWriter => {
      const buffer = MessageBuffer.make({ threshold: options.spillThreshold, maxSize: options.maxMessageSize, tempDir: options.tempDir })
      buffers.push(buffer)
      const crlf = lineEndings()
      let ended = false
      const asEdit = (e: Message.MessageError) => new Message.EditError({ reason: "Body", message: `replacement body: ${e.message}` })
      return {
        write: (chunk) =>
          ended
            ? Effect.fail(new Message.EditError({ reason: "Body", message: "replacement body written after its end" }))
            : Effect.mapError(buffer.append(crlf(chunk, false)), asEdit),
        end: () =>
          Effect.gen(function*() {
            if (ended) return
            ended = true
            // A body that ends in a bare CR gets its line end.
            yield* Effect.mapError(buffer.append(crlf(new Uint8Array(0), true)), asEdit)
            if (buffer.tooBig()) {
              return yield* new Message.EditError({ reason: "TooBig", message: `replacement body over ${options.maxMessageSize} bytes` })
            }
            const replaced = yield* Effect.mapError(buffer.finish(), asEdit)
            body = { size: replaced.size, stream: () => replaced.stream() }
          })
      }
    },
    discard: (reason) => {
      fate = { _tag: "Discard", reason }
    },
    quarantine: (reason) => {
      if (fate._tag !== "Discard") fate = { _tag: "Quarantine", reason }
    }
  }

  return {
    edits,
    addHeader: (name, value) => {
      if (!Message.validName(name)) fail("HeaderName", `invalid header field name ${JSON.stringify(name.slice(0, 80))}`)
      if (fields === undefined) added.push({ name, value })
      else fields.unshift(Message.newField(name, value))
    },
    removeHeader: (name, predicate) => {
      const lower = name.toLowerCase()
      const selects = (h: { readonly name: string; readonly value: string }) => h.name.toLowerCase() === lower && (predicate === undefined || predicate(h.value))
      if (fields === undefined) removed.push(selects)
      // Only original fields, as before any positional edit: they are the ones that carry `raw`.
      else fields = fields.filter((f) => !("raw" in f && selects(f)))
    },
    result: () => ({ added, removed, fields, body }),
    mailFrom: () => mailFrom,
    recipients: () => recipients,
    envelopeChanged: () => envelopeChanged,
    fate: () => fate,
    dispose: Effect.forEach(buffers, (b) => b.dispose, { discard: true })
  }
}
