/**
 * A received message as plugins and transports see it: parsed header fields and a re-readable
 * body, whether it lives in memory or was spilled to a temporary file.
 */
import { Chunk, Data, Effect, Stream } from "effect"
import * as Bytes from "../util/Bytes.ts"

export class MessageError extends Data.TaggedError("MessageError")<{
  readonly reason: "Read" | "Write" | "Closed"
  readonly message: string
}> {}

/**
 * One header field. `bytes` is the field exactly as received, folding and final CRLF included;
 * it is what a transport gets. `value` and `raw` are decoded as UTF-8 for plugins, with U+FFFD
 * for bytes that are not (8-bit text from old clients, overlongs such as `C0 AE`), so they are
 * for reading only: a relay passes every byte it does not mean to change.
 */
export interface Header {
  readonly name: string
  /** Unfolded value without the leading space. */
  readonly value: string
  /** `bytes` decoded, for reading. */
  readonly raw: string
  readonly bytes: Uint8Array
}

export interface Content {
  /** Bytes of the message as received (CRLF line endings, dot-unstuffed). */
  readonly size: number
  /** The header fields in order. */
  readonly headers: ReadonlyArray<Header>
  /**
   * Where the header fields end: the offset of the blank line that separates the body, of the first
   * line that is not a header field (it belongs to the body), or `size`.
   */
  readonly bodyOffset: number
  /** The message bytes from `start` (default 0) to the end, re-readable any number of times. */
  readonly stream: (start?: number) => Stream.Stream<Uint8Array, MessageError>
  /**
   * The same bytes as `stream(start)` when the whole message is held in memory, `undefined` when
   * it lives in a file: small messages then reach a transport without a stream.
   */
  readonly inMemory?: ((start?: number) => ReadonlyArray<Uint8Array> | undefined) | undefined
}

/** The first value of a header field, case-insensitively. */
export const header = (content: Pick<Content, "headers">, name: string): string | undefined => {
  const lower = name.toLowerCase()
  return content.headers.find((h) => h.name.toLowerCase() === lower)?.value
}

const encoder = new TextEncoder()
const decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true })
const CRLF = Uint8Array.of(13, 10)

// Only the name is read for every field; `value` and `raw` are decoded when a plugin asks.
const field = (bytes: Uint8Array): Header | undefined => {
  const colon = bytes.indexOf(58)
  if (colon <= 0) return undefined
  // Field names are printable ASCII (RFC 5322 2.2), so one byte is one character.
  const name = Buffer.from(bytes.buffer, bytes.byteOffset, colon).toString("latin1").trim()
  let value: string | undefined
  let raw: string | undefined
  return {
    name,
    bytes,
    get value() {
      return value ??= decoder.decode(bytes.subarray(colon + 1)).replace(/\r\n(?=[ \t])/g, "").trim()
    },
    get raw() {
      return raw ??= decoder.decode(bytes)
    }
  }
}

/**
 * Parses a header section (bytes up to, not including, the blank line) from its bytes: fields
 * end at a CRLF not followed by a blank. Each field keeps its exact bytes.
 */
export const parseHeaders = (block: Uint8Array): ReadonlyArray<Header> => {
  const out: Array<Header> = []
  let start = -1
  const flush = (end: number) => {
    if (start === -1) return
    // A last line without its CRLF (a BDAT message that ends there) gets one, as every field has.
    const bytes = block[end - 1] === 10 && block[end - 2] === 13 ? block.subarray(start, end) : Bytes.concat([block.subarray(start, end), CRLF])
    const h = field(bytes)
    if (h !== undefined) out.push(h)
    start = -1
  }
  let i = 0
  while (i < block.length) {
    let cr = block.indexOf(13, i)
    while (cr !== -1 && block[cr + 1] !== 10) cr = block.indexOf(13, cr + 1)
    const next = cr === -1 ? block.length : cr + 2
    const empty = cr === i
    const folded = (block[i] === 32 || block[i] === 9) && start !== -1
    if (!folded) {
      flush(i)
      if (!empty) start = i
    }
    i = next
  }
  flush(block.length)
  return out
}

/** Header edits made by `data` hooks: added fields go on top, in the order hooks add them. */
export interface Edits {
  readonly added: ReadonlyArray<{ readonly name: string; readonly value: string }>
  readonly removed: ReadonlyArray<(header: Header) => boolean>
}

export const emptyEdits: Edits = { added: [], removed: [] }

/** Folds a header value at spaces so that no line exceeds 78 characters where possible. */
export const formatHeader = (name: string, value: string): string => {
  const clean = value.replace(/[\r\n]+/g, " ")
  const words = clean.split(" ")
  const lines: Array<string> = []
  let line = `${name}:`
  for (const word of words) {
    if (line.length + 1 + word.length > 78 && line.trim().length > name.length + 1) {
      lines.push(line)
      line = `\t${word}`
    } else line += ` ${word}`
  }
  lines.push(line)
  return lines.join("\r\n") + "\r\n"
}

const kept = (content: Content, edits: Edits): ReadonlyArray<Header> =>
  edits.removed.length === 0 ? content.headers : content.headers.filter((h) => !edits.removed.some((remove) => remove(h)))

// Added fields are ours and UTF-8; kept ones go out as the bytes that came in.
const renderHead = (content: Content, edits: Edits): Uint8Array => {
  const parts: Array<Uint8Array> = []
  for (let i = edits.added.length - 1; i >= 0; i--) parts.push(encoder.encode(formatHeader(edits.added[i]!.name, edits.added[i]!.value)))
  for (const h of kept(content, edits)) parts.push(h.bytes)
  return Bytes.concat(parts)
}

const unedited = (edits: Edits): boolean => edits.added.length === 0 && edits.removed.length === 0

/** The message with edits applied: new headers, the kept original headers, then the body. */
export const render = (content: Content, edits: Edits): Stream.Stream<Uint8Array, MessageError> => {
  if (unedited(edits)) return content.stream()
  return Stream.concat(Stream.succeed(renderHead(content, edits)), content.stream(content.bodyOffset))
}

/** What `render` streams, as chunks, when the message is in memory; otherwise `undefined`. */
export const renderInMemory = (content: Content, edits: Edits): ReadonlyArray<Uint8Array> | undefined => {
  if (content.inMemory === undefined) return undefined
  if (unedited(edits)) return content.inMemory()
  const body = content.inMemory(content.bodyOffset)
  return body === undefined ? undefined : [renderHead(content, edits), ...body]
}

/** Size in bytes of the rendered message. */
export const renderedSize = (content: Content, edits: Edits): number => {
  if (edits.added.length === 0 && edits.removed.length === 0) return content.size
  let head = 0
  for (const a of edits.added) head += encoder.encode(formatHeader(a.name, a.value)).byteLength
  for (const h of kept(content, edits)) head += h.bytes.byteLength
  return head + content.size - content.bodyOffset
}

/** Collects a stream into one buffer (for small messages and for verifiers that need it whole). */
export const collect = <E>(stream: Stream.Stream<Uint8Array, E>): Effect.Effect<Uint8Array, E> =>
  Effect.map(Stream.runCollect(stream), (chunks) => Bytes.concat(Chunk.toReadonlyArray(chunks)))

/** A whole message already in memory, as a content stream. */
export const bytesStream = (bytes: Uint8Array): Stream.Stream<Uint8Array, MessageError> => Stream.succeed(bytes)
