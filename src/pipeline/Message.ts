/**
 * A received message as plugins and transports see it: parsed header fields and a re-readable
 * body, whether it lives in memory or was spilled to a temporary file.
 */
import * as Chunk from "effect/Chunk"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
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

/** A header field of an edited header section: kept fields carry their bytes as received. */
export interface Field {
  readonly name: string
  readonly value: string
  readonly bytes: Uint8Array
}

/**
 * Edits made by `data` hooks. `added` go on top, in the order hooks add them, and `removed`
 * drop original fields. Once a hook edits by position (a milter's CHGHEADER or INSHEADER),
 * `fields` is the whole header section, every edit folded in, and `added`/`removed` are empty.
 * `body` replaces everything after the blank line.
 */
export interface Edits {
  readonly added: ReadonlyArray<{ readonly name: string; readonly value: string }>
  readonly removed: ReadonlyArray<(header: Header) => boolean>
  readonly fields?: ReadonlyArray<Field> | undefined
  readonly body?: Body | undefined
}

/** A replacement body: the bytes after the blank line, CRLF line endings, re-readable. */
export interface Body {
  readonly size: number
  readonly stream: () => Stream.Stream<Uint8Array, MessageError>
}

export const emptyEdits: Edits = { added: [], removed: [] }

/** Why a hook's edit was refused: a header that would break the message, an address that is not one. */
export class EditError extends Data.TaggedError("EditError")<{
  readonly reason: "HeaderName" | "HeaderValue" | "Address" | "TooManyRecipients" | "TooBig" | "Index" | "Body"
  readonly message: string
}> {}

/** Field names are printable ASCII without the colon (RFC 5322 2.2). */
export const validName = (name: string): boolean => /^[\x21-\x39\x3b-\x7e]{1,997}$/.test(name)

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

/** A field the bridge writes: folded, CR and LF never inside a line. */
export const newField = (name: string, value: string): Field => ({ name, value, bytes: encoder.encode(formatHeader(name, value)) })

const kept = (content: Pick<Content, "headers">, edits: Edits): ReadonlyArray<Header> =>
  edits.removed.length === 0 ? content.headers : content.headers.filter((h) => !edits.removed.some((remove) => remove(h)))

/** The header section as edits make it, in order. */
export const fieldsOf = (content: Pick<Content, "headers">, edits: Edits): ReadonlyArray<Field> => {
  if (edits.fields !== undefined) return edits.fields
  const out: Array<Field> = []
  for (let i = edits.added.length - 1; i >= 0; i--) out.push(newField(edits.added[i]!.name, edits.added[i]!.value))
  for (const h of kept(content, edits)) out.push(h)
  return out
}

// Added fields are ours and UTF-8; kept ones go out as the bytes that came in.
const renderHead = (content: Content, edits: Edits): Uint8Array => Bytes.concat(fieldsOf(content, edits).map((f) => f.bytes))

const unedited = (edits: Edits): boolean =>
  edits.added.length === 0 && edits.removed.length === 0 && edits.fields === undefined && edits.body === undefined

/** The message with edits applied: the header section, then the body (or its replacement). */
export const render = (content: Content, edits: Edits): Stream.Stream<Uint8Array, MessageError> => {
  if (unedited(edits)) return content.stream()
  const head = Stream.succeed(renderHead(content, edits))
  if (edits.body !== undefined) return Stream.concat(Stream.concat(head, Stream.succeed(CRLF)), edits.body.stream())
  return Stream.concat(head, content.stream(content.bodyOffset))
}

/** What `render` streams, as chunks, when the message is in memory; otherwise `undefined`. */
export const renderInMemory = (content: Content, edits: Edits): ReadonlyArray<Uint8Array> | undefined => {
  if (content.inMemory === undefined || edits.body !== undefined) return undefined
  if (unedited(edits)) return content.inMemory()
  const body = content.inMemory(content.bodyOffset)
  return body === undefined ? undefined : [renderHead(content, edits), ...body]
}

/** Size in bytes of the rendered message. */
export const renderedSize = (content: Content, edits: Edits): number => {
  if (unedited(edits)) return content.size
  let head = 0
  for (const f of fieldsOf(content, edits)) head += f.bytes.byteLength
  return head + (edits.body !== undefined ? 2 + edits.body.size : content.size - content.bodyOffset)
}

/**
 * Drops the blank separator line from the start of `stream(bodyOffset)`'s chunks, one chunk at a
 * time. Chunks may split its CRLF: "start", then "cr" after a lone CR, then "done".
 */
const separatorStripper = () => {
  let state: "start" | "cr" | "done" = "start"
  return (chunk: Uint8Array): Uint8Array | undefined => {
    let from = 0
    if (state === "start" && chunk.byteLength > 0) {
      if (chunk[0] === 13 && chunk.byteLength === 1) {
        state = "cr"
        return undefined
      }
      if (chunk[0] === 13 && chunk[1] === 10) from = 2
      state = "done"
    } else if (state === "cr" && chunk.byteLength > 0) {
      state = "done"
      if (chunk[0] === 10) from = 1
      else return Bytes.concat([Uint8Array.of(13), chunk])
    }
    const out = from === 0 ? chunk : chunk.subarray(from)
    return out.byteLength === 0 ? undefined : out
  }
}

/**
 * The body: the bytes after the blank line. `stream(bodyOffset)` starts with that blank line,
 * unless the header section ended at a line that is not a field (then that line is body).
 */
export const bodyOf = (content: Content): Stream.Stream<Uint8Array, MessageError> =>
  Stream.suspend(() => {
    const strip = separatorStripper()
    return Stream.filterMap(content.stream(content.bodyOffset), (chunk) => Option.fromNullable(strip(chunk)))
  })

/**
 * What `bodyOf` streams, as chunks, when the message is held in memory; `undefined` when it lives
 * in a file. Running a stream costs ~100 µs even for one chunk, which a small message's per-message
 * work (a DKIM body hash) should not pay.
 */
export const bodyInMemory = (content: Content): ReadonlyArray<Uint8Array> | undefined => {
  const chunks = content.inMemory?.(content.bodyOffset)
  if (chunks === undefined) return undefined
  const strip = separatorStripper()
  const out: Array<Uint8Array> = []
  for (const chunk of chunks) {
    const kept = strip(chunk)
    if (kept !== undefined) out.push(kept)
  }
  return out
}

/** Collects a stream into one buffer (for small messages and for verifiers that need it whole). */
export const collect = <E>(stream: Stream.Stream<Uint8Array, E>): Effect.Effect<Uint8Array, E> =>
  Effect.map(Stream.runCollect(stream), (chunks) => Bytes.concat(Chunk.toReadonlyArray(chunks)))

/** A whole message already in memory, as a content stream. */
export const bytesStream = (bytes: Uint8Array): Stream.Stream<Uint8Array, MessageError> => Stream.succeed(bytes)
