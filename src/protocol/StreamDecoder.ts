/**
 * The one owner of a session's incoming bytes, across its modes: command lines, DATA content
 * (until CRLF.CRLF, dot-unstuffed), BDAT chunks (counted, line endings normalized) and the
 * switch to TLS (whatever was received after STARTTLS is dropped, never read as a command).
 * Bytes never leave it to be handed back: what follows DATA's final dot or a BDAT chunk stays
 * here as the next command lines.
 *
 * @example
 * const d = StreamDecoder.make({ maxLineLength: 512, bareLineEndings: "normalize" })
 * d.push(bytes("DATA\r\nHi\r\n.\r\nQUIT\r\n"))
 * d.next() // { _tag: "Line", line: "DATA" }
 * d.expectData()
 * d.next() // { _tag: "Content", parts: ["Hi\r\n"] }
 * d.next() // { _tag: "ContentEnd", bare: false }
 * d.next() // { _tag: "Line", line: "QUIT" }
 */
import * as DataDecoder from "./DataDecoder.ts"
import * as LineDecoder from "./LineDecoder.ts"
import * as LineEndings from "./LineEndings.ts"

export type Event =
  | LineDecoder.LineEvent
  /** Message bytes, in order (views of the input where possible). */
  | { readonly _tag: "Content"; readonly parts: ReadonlyArray<Uint8Array> }
  /** The end of DATA content or of a BDAT chunk; `bare` (cumulative over the message) when a bare CR or LF was met. */
  | { readonly _tag: "ContentEnd"; readonly bare: boolean }

export interface StreamDecoder {
  readonly push: (chunk: Uint8Array) => void
  /** The next event, or undefined when more bytes are needed. */
  readonly next: () => Event | undefined
  /** What follows is DATA content, up to CRLF "." CRLF. */
  readonly expectData: () => void
  /**
   * The next `size` bytes are a BDAT chunk: given as `Content` when `keep`, otherwise only
   * consumed. After the `last` chunk, and whenever the message is dropped (`dropMessage`), the
   * line-ending state starts over.
   */
  readonly expectChunk: (size: number, last: boolean, keep: boolean) => void
  /** A BDAT message ended before its LAST chunk (RSET, a refused chunk): forget its line-ending state. */
  readonly dropMessage: () => void
  /** STARTTLS: every byte received so far was plaintext sent before the handshake; dropped. */
  readonly discardBuffered: () => void
  /** Command mode only: a line has begun and not ended. */
  readonly midLine: () => boolean
  /** Bytes of overlong command lines skipped so far. */
  readonly discarded: () => number
  readonly mode: () => "command" | "data" | "chunk"
}

export interface Options {
  /** The longest command line, CRLF included. */
  readonly maxLineLength: number
  readonly bareLineEndings: LineEndings.Policy
  /** Hears of the bytes of overlong lines as they are skipped. */
  readonly onDiscard?: (bytes: number) => void
}

const EMPTY = new Uint8Array(0)

export const make = (options: Options): StreamDecoder => {
  const lines = LineDecoder.make(options.maxLineLength, options.onDiscard)
  let mode: "command" | "data" | "chunk" = "command"
  // Content-mode input not decoded yet.
  let pending: Uint8Array = EMPTY
  let data: DataDecoder.DataDecoder | undefined
  let dataBare = false
  // BDAT: bytes of the current chunk still to come, and the message's line-ending state.
  let remaining = 0
  let last = false
  let keep = false
  let normalizer: LineEndings.Normalizer | undefined
  let chunkBare = false
  // An event decided but not yet returned (ContentEnd after the last Content).
  let queued: Event | undefined

  /** Back to commands: what is left over after the content is command input. */
  const toCommands = (): void => {
    mode = "command"
    if (pending.byteLength > 0) lines.push(pending)
    pending = EMPTY
  }

  const nextData = (): Event | undefined => {
    if (pending.byteLength === 0) return undefined
    const input = pending
    pending = EMPTY
    const result = data!.decode(input)
    dataBare ||= result.bare
    if (result.done) {
      pending = result.rest
      data = undefined
      toCommands()
      queued = { _tag: "ContentEnd", bare: dataBare }
    }
    if (result.output.length > 0) return { _tag: "Content", parts: result.output }
    const end = queued
    queued = undefined
    return end
  }

  const endChunk = (): Event => {
    toCommands()
    const bare = chunkBare
    if (last) {
      normalizer = undefined
      chunkBare = false
    }
    return { _tag: "ContentEnd", bare }
  }

  const nextChunk = (): Event | undefined => {
    // A chunk of 0 bytes takes this path too: `BDAT 0 LAST` must still end the normalizer, whose
    // pending CR (the last chunk's final byte) is bare and gets its LF there.
    if (remaining > 0 && pending.byteLength === 0) return undefined
    const take = pending.byteLength > remaining ? pending.subarray(0, remaining) : pending
    pending = pending.subarray(take.byteLength)
    remaining -= take.byteLength
    const parts: Array<Uint8Array> = []
    if (keep) {
      normalizer ??= LineEndings.make(options.bareLineEndings)
      const out = normalizer.push(take)
      chunkBare ||= out.bare
      if (out.output.byteLength > 0) parts.push(out.output)
      if (remaining === 0 && last) {
        const end = normalizer.end()
        chunkBare ||= end.bare
        if (end.output.byteLength > 0) parts.push(end.output)
      }
    }
    if (remaining === 0) queued = endChunk()
    if (parts.length > 0) return { _tag: "Content", parts }
    const end = queued
    queued = undefined
    return end
  }

  const next = (): Event | undefined => {
    if (queued !== undefined) {
      const event = queued
      queued = undefined
      return event
    }
    switch (mode) {
      case "command":
        return lines.next()
      case "data":
        return nextData()
      case "chunk":
        return nextChunk()
    }
  }

  return {
    push: (chunk) => {
      if (chunk.byteLength === 0) return
      if (mode === "command") lines.push(chunk)
      else pending = pending.byteLength === 0 ? chunk : LineEndings.concat([pending, chunk])
    },
    next,
    expectData: () => {
      mode = "data"
      data = DataDecoder.make({ bareLineEndings: options.bareLineEndings })
      dataBare = false
      pending = lines.takeRemaining()
    },
    expectChunk: (size, isLast, isKept) => {
      mode = "chunk"
      remaining = size
      last = isLast
      keep = isKept
      pending = lines.takeRemaining()
    },
    dropMessage: () => {
      normalizer = undefined
      chunkBare = false
    },
    discardBuffered: () => {
      lines.takeRemaining()
      pending = EMPTY
      queued = undefined
    },
    midLine: () => mode === "command" && lines.midLine(),
    discarded: lines.discarded,
    mode: () => mode
  }
}
