/**
 * The webhook's request body, built from the re-readable message content so a message that
 * spilled to disk is never held whole in memory: the transport runs `stream` twice, once to
 * compute the HMAC and once as the request body, and both runs yield the same bytes.
 *
 * `raw` is the message itself. `json` is the document `JSON.stringify` gives for
 * `{ id, envelope, session, size, message: <base64> }`, byte for byte: everything but the base64
 * is small and serialised at once; the base64 is produced chunk by chunk (each chunk's bytes up to
 * a multiple of 3, the rest carried to the next), and base64 never needs JSON escaping.
 *
 * @example
 * const hmac = yield* Stream.runFold(WebhookBody.stream(message, "json"), createHmac("sha256", key), (h, c) => h.update(c))
 */
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { MessageError } from "../pipeline/Message.ts"
import * as Memory from "../runtime/Memory.ts"
import type { OutgoingMessage } from "./Transport.ts"

export type Format = "raw" | "json"

const encoder = new TextEncoder()

/** Everything before and after the base64 of the message, as `JSON.stringify` writes the whole. */
export const jsonFrame = (message: OutgoingMessage): { readonly head: Uint8Array; readonly tail: Uint8Array } => {
  const whole = JSON.stringify({
    id: message.id,
    envelope: {
      mailFrom: message.envelope.mailFrom?.address ?? "",
      recipients: message.envelope.recipients.map((r) => ({
        address: r.mailbox.address,
        ...(r.params.notify !== undefined ? { notify: r.params.notify } : {}),
        ...(r.params.orcpt !== undefined ? { orcpt: r.params.orcpt } : {})
      })),
      params: message.envelope.mailParams.raw
    },
    session: {
      id: message.session.id,
      remoteAddress: message.session.remoteAddress,
      helo: message.session.helo?.name ?? null,
      user: message.session.user ?? null,
      tls: message.session.tls?.protocol ?? null
    },
    size: message.size,
    message: ""
  })
  // The document ends with `"message":""}`: split between the two quotes.
  return { head: encoder.encode(whole.slice(0, -2)), tail: encoder.encode(whole.slice(-2)) }
}

const base64 = (bytes: Uint8Array): Uint8Array =>
  Buffer.from(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64"), "latin1")

/**
 * Base64 of a byte stream, chunk by chunk: the same text as the base64 of the whole. A chunk's
 * first bytes complete the 1 or 2 carried from the one before, so no chunk is copied whole.
 * The encoded bytes are garbage once written, so they count towards `Memory.release` as the
 * spilled input does (bench/memory.ts, a 50 MB message in JSON on Bun: +64 MB without it,
 * +30 to +33 MB with it, as much as the raw format and the SMTP relay).
 */
export const base64Chunks = <E>(input: Stream.Stream<Uint8Array, E>): Stream.Stream<Uint8Array, E> =>
  Stream.suspend(() => {
    let carry = new Uint8Array(0)
    const encode = (chunk: Uint8Array): ReadonlyArray<Uint8Array> => {
      const out: Array<Uint8Array> = []
      let at = 0
      if (carry.byteLength > 0) {
        const need = 3 - carry.byteLength
        if (chunk.byteLength < need) {
          carry = Buffer.concat([carry, chunk])
          return out
        }
        out.push(base64(Buffer.concat([carry, chunk.subarray(0, need)])))
        at = need
      }
      const whole = chunk.byteLength - ((chunk.byteLength - at) % 3)
      if (whole > at) out.push(base64(chunk.subarray(at, whole)))
      // A copy: the carried bytes must not be a view of a buffer the reader may reuse.
      carry = chunk.slice(whole)
      return out
    }
    return Stream.concat(Stream.mapConcat(input, encode), Stream.suspend(() => Stream.succeed(base64(carry))))
  }).pipe(
    Stream.filter((chunk) => chunk.byteLength > 0),
    // Twice the bytes: the base64 text was a string of the same length before it became bytes.
    Stream.tap((chunk) => Memory.release(2 * chunk.byteLength))
  )

/**
 * The message content, failing if it does not hold `message.size` bytes: the JSON document
 * announces the size before the message, and a short or long read must not be signed and sent.
 */
const checkedContent = (message: OutgoingMessage): Stream.Stream<Uint8Array, MessageError> =>
  Stream.suspend(() => {
    let seen = 0
    const counted = Stream.tap(message.content(), (chunk) => Effect.sync(() => void (seen += chunk.byteLength)))
    return Stream.concat(
      counted,
      Stream.fromEffect(Effect.suspend(() =>
        seen === message.size
          ? Effect.succeed(new Uint8Array(0))
          : Effect.fail(new MessageError({ reason: "Read", message: `message content has ${seen} bytes, ${message.size} expected` }))
      ))
    ).pipe(Stream.filter((chunk) => chunk.byteLength > 0))
  })

/** The request body as a stream; run it as often as needed, it reads the content afresh each time. */
export const stream = (message: OutgoingMessage, format: Format): Stream.Stream<Uint8Array, MessageError> => {
  if (format === "raw") return checkedContent(message)
  return Stream.suspend(() => {
    const { head, tail } = jsonFrame(message)
    return Stream.succeed(head).pipe(Stream.concat(base64Chunks(checkedContent(message))), Stream.concat(Stream.succeed(tail)))
  })
}

/**
 * Up to this size a message read from a file (the spool's) is sent in one piece too: it costs no
 * more memory than the spill threshold allows a session, and the receiver gets a Content-Length.
 */
export const wholeUpTo = 256 * 1024

const whole = (message: OutgoingMessage, format: Format, parts: ReadonlyArray<Uint8Array>): Uint8Array | undefined => {
  const raw = parts.length === 1 ? parts[0]! : Buffer.concat(parts)
  // A size that disagrees is left to `stream`, which refuses it.
  if (raw.byteLength !== message.size) return undefined
  if (format === "raw") return raw
  const { head, tail } = jsonFrame(message)
  return Buffer.concat([head, base64(raw), tail])
}

/**
 * The whole request body at once, for a message held in memory or one of at most `wholeUpTo`
 * bytes (read here); `undefined` for a larger one, which is streamed.
 */
export const small = (message: OutgoingMessage, format: Format): Effect.Effect<Uint8Array | undefined, MessageError> => {
  const parts = message.inMemory?.()
  if (parts !== undefined) return Effect.succeed(whole(message, format, parts))
  if (message.size > wholeUpTo) return Effect.succeed(undefined)
  return Effect.map(Stream.runCollect(checkedContent(message)), (chunks) => whole(message, format, Chunk.toReadonlyArray(chunks)))
}
