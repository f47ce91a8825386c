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

// A class rather than closures: every open session holds one, and the closures with their scope
// were ~0.6 KB of an idle session's heap; the methods are shared.
class Stream implements StreamDecoder {
  private readonly lines: LineDecoder.LineDecoder
  private readonly options: Options
  private current: "command" | "data" | "chunk" = "command"
  // Content-mode input not decoded yet.
  private pending: Uint8Array = EMPTY
  private data: DataDecoder.DataDecoder | undefined = undefined
  private dataBare = false
  // BDAT: bytes of the current chunk still to come, and the message's line-ending state.
  private remaining = 0
  private last = false
  private keep = false
  private normalizer: LineEndings.Normalizer | undefined = undefined
  private chunkBare = false
  // An event decided but not yet returned (ContentEnd after the last Content).
  private queued: Event | undefined = undefined

  constructor(options: Options) {
    this.options = options
    this.lines = LineDecoder.make(options.maxLineLength, options.onDiscard)
  }

  /** Back to commands: what is left over after the content is command input. */
  private toCommands(): void {
    this.current = "command"
    if (this.pending.byteLength > 0) this.lines.push(this.pending)
    this.pending = EMPTY
  }

  private nextData(): Event | undefined {
    if (this.pending.byteLength === 0) return undefined
    const input = this.pending
    this.pending = EMPTY
    const result = this.data!.decode(input)
    this.dataBare ||= result.bare
    if (result.done) {
      this.pending = result.rest
      this.data = undefined
      this.toCommands()
      this.queued = { _tag: "ContentEnd", bare: this.dataBare }
    }
    if (result.output.length > 0) return { _tag: "Content", parts: result.output }
    const end = this.queued
    this.queued = undefined
    return end
  }

  private endChunk(): Event {
    this.toCommands()
    const bare = this.chunkBare
    if (this.last) {
      this.normalizer = undefined
      this.chunkBare = false
    }
    return { _tag: "ContentEnd", bare }
  }

  private nextChunk(): Event | undefined {
    // A chunk of 0 bytes takes this path too: `BDAT 0 LAST` must still end the normalizer, whose
    // pending CR (the last chunk's final byte) is bare and gets its LF there.
    if (this.remaining > 0 && this.pending.byteLength === 0) return undefined
    const take = this.pending.byteLength > this.remaining ? this.pending.subarray(0, this.remaining) : this.pending
    this.pending = this.pending.subarray(take.byteLength)
    this.remaining -= take.byteLength
    const parts: Array<Uint8Array> = []
    if (this.keep) {
      const normalizer = this.normalizer ??= LineEndings.make(this.options.bareLineEndings)
      const out = normalizer.push(take)
      this.chunkBare ||= out.bare
      if (out.output.byteLength > 0) parts.push(out.output)
      if (this.remaining === 0 && this.last) {
        const end = normalizer.end()
        this.chunkBare ||= end.bare
        if (end.output.byteLength > 0) parts.push(end.output)
      }
    }
    if (this.remaining === 0) this.queued = this.endChunk()
    if (parts.length > 0) return { _tag: "Content", parts }
    const end = this.queued
    this.queued = undefined
    return end
  }

  next(): Event | undefined {
    if (this.queued !== undefined) {
      const event = this.queued
      this.queued = undefined
      return event
    }
    switch (this.current) {
      case "command":
        return this.lines.next()
      case "data":
        return this.nextData()
      case "chunk":
        return this.nextChunk()
    }
  }

  push(chunk: Uint8Array): void {
    if (chunk.byteLength === 0) return
    if (this.current === "command") this.lines.push(chunk)
    else this.pending = this.pending.byteLength === 0 ? chunk : LineEndings.concat([this.pending, chunk])
  }

  expectData(): void {
    this.current = "data"
    this.data = DataDecoder.make({ bareLineEndings: this.options.bareLineEndings })
    this.dataBare = false
    this.pending = this.lines.takeRemaining()
  }

  expectChunk(size: number, isLast: boolean, isKept: boolean): void {
    this.current = "chunk"
    this.remaining = size
    this.last = isLast
    this.keep = isKept
    this.pending = this.lines.takeRemaining()
  }

  dropMessage(): void {
    this.normalizer = undefined
    this.chunkBare = false
  }

  discardBuffered(): void {
    this.lines.takeRemaining()
    this.pending = EMPTY
    this.queued = undefined
  }

  midLine(): boolean {
    return this.current === "command" && this.lines.midLine()
  }

  discarded(): number {
    return this.lines.discarded()
  }

  mode(): "command" | "data" | "chunk" {
    return this.current
  }
}

export const make = (options: Options): StreamDecoder => new Stream(options)
