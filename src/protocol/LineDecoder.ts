/**
 * Command-mode framing: raw bytes in, command lines out, with memory bounded by the line limit
 * whatever the client sends.
 *
 * @example
 * const lines = LineDecoder.make(512)
 * lines.push(new TextEncoder().encode("EHLO a\r\nNOOP\r\n"))
 * lines.next() // { _tag: "Line", line: "EHLO a" }
 * lines.next() // { _tag: "Line", line: "NOOP" }
 * lines.next() // undefined: wait for more bytes
 */
import { concat } from "../util/Bytes.ts"

export type LineEvent = { readonly _tag: "Line"; readonly line: string } | { readonly _tag: "TooLong" }

export interface LineDecoder {
  /** Queues bytes; nothing is decoded until `next` is called. */
  readonly push: (chunk: Uint8Array) => void
  /** The next complete line, a `TooLong` for an overlong one, or `undefined` when more bytes are needed. */
  readonly next: () => LineEvent | undefined
  /**
   * Returns and forgets every byte not yet returned as a line: what follows DATA or BDAT belongs
   * to the data decoder, and what follows STARTTLS must be thrown away. Bytes of an overlong line
   * being discarded are never returned.
   */
  readonly takeRemaining: () => Uint8Array
  /** Bytes currently held. */
  readonly buffered: () => number
  /** Bytes of overlong lines skipped so far. */
  readonly discarded: () => number
  /** Whether a line has begun and not ended: some of it is held, or the rest of an overlong one is being skipped. */
  readonly midLine: () => boolean
}

const CR = 0x0d
const LF = 0x0a
const tooLong: LineEvent = { _tag: "TooLong" }
// Stateless without `stream`, so one serves every session.
const decoder = new TextDecoder("utf-8", { ignoreBOM: true })


// A class rather than closures: every open session holds one (as part of its StreamDecoder), and
// the closures with their scope were ~0.5 KB of an idle session's heap; the methods are shared.
class Lines implements LineDecoder {
  // Chunks pushed but not yet scanned; `head` is the offset into the first one.
  private readonly queue: Array<Uint8Array> = []
  private head = 0
  private queued = 0
  // The start of a line whose LF has not arrived yet; never more than maxLineLength - 1 bytes.
  // Allocated on first use: most sessions never see a line split across reads, and an idle
  // session should cost as little as possible.
  private partial: Uint8Array | undefined = undefined
  private partialLength = 0
  // True while skipping the rest of an overlong line up to its LF.
  private discarding = false
  private skipped = 0
  private readonly maxLineLength: number
  private readonly onDiscard: ((bytes: number) => void) | undefined

  constructor(maxLineLength: number, onDiscard: ((bytes: number) => void) | undefined) {
    this.maxLineLength = maxLineLength
    this.onDiscard = onDiscard
  }

  private dropHead(): void {
    const dropped = this.queue[0]!.length - this.head
    this.queued -= dropped
    if (this.discarding) {
      this.skipped += dropped
      this.onDiscard?.(dropped)
    }
    this.queue.shift()
    this.head = 0
  }

  private advance(to: number): void {
    this.queued -= to - this.head
    this.head = to
    if (this.head === this.queue[0]!.length) this.dropHead()
  }

  /** Skips to the end of the line being discarded; false when its LF has not arrived yet. */
  private skipDiscarded(): boolean {
    while (this.discarding && this.queue.length > 0) {
      const lf = this.queue[0]!.indexOf(LF, this.head)
      if (lf === -1) this.dropHead()
      else {
        this.skipped += lf + 1 - this.head
        this.onDiscard?.(lf + 1 - this.head)
        this.advance(lf + 1)
        this.discarding = false
      }
    }
    return !this.discarding
  }

  private decodeLine(tail: Uint8Array): string {
    const bytes = this.partialLength === 0 ? tail : concat([this.partial!.subarray(0, this.partialLength), tail])
    this.partialLength = 0
    const end = bytes.length > 0 && bytes[bytes.length - 1] === CR ? bytes.length - 1 : bytes.length
    return decoder.decode(bytes.subarray(0, end))
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return
    this.queue.push(chunk)
    this.queued += chunk.length
  }

  next(): LineEvent | undefined {
    const { queue, maxLineLength } = this
    while (queue.length > 0) {
      if (!this.skipDiscarded()) return undefined
      if (queue.length === 0) return undefined
      const chunk = queue[0]!
      const lf = chunk.indexOf(LF, this.head)
      if (lf === -1) {
        const rest = chunk.length - this.head
        // At least the LF is still to come, so the line is already too long.
        if (this.partialLength + rest + 1 > maxLineLength) {
          this.partialLength = 0
          this.discarding = true
          this.dropHead()
          return tooLong
        }
        this.partial ??= new Uint8Array(Math.max(0, maxLineLength))
        this.partial.set(chunk.subarray(this.head), this.partialLength)
        this.partialLength += rest
        this.dropHead()
        continue
      }
      const start = this.head
      this.advance(lf + 1)
      if (this.partialLength + (lf + 1 - start) > maxLineLength) {
        this.partialLength = 0
        return tooLong
      }
      return { _tag: "Line", line: this.decodeLine(chunk.subarray(start, lf)) }
    }
    return undefined
  }

  takeRemaining(): Uint8Array {
    this.skipDiscarded()
    const parts: Array<Uint8Array> = []
    if (this.partialLength > 0) parts.push(this.partial!.slice(0, this.partialLength))
    this.queue.forEach((chunk, i) => parts.push(i === 0 ? chunk.subarray(this.head) : chunk))
    this.queue.length = 0
    this.head = 0
    this.queued = 0
    this.partialLength = 0
    return concat(parts)
  }

  buffered(): number {
    return this.queued + this.partialLength
  }

  discarded(): number {
    return this.skipped
  }

  midLine(): boolean {
    return this.discarding || this.queued + this.partialLength > 0
  }
}

/**
 * `maxLineLength` counts the terminator, as RFC 5321 4.5.3.1.4 does (512 octets for commands).
 * LF alone ends a line too: command mode tolerates it, unlike DATA, where only CRLF counts.
 * `onDiscard` hears of the bytes of an overlong line as they are skipped.
 */
export const make = (maxLineLength: number, onDiscard?: (bytes: number) => void): LineDecoder => new Lines(maxLineLength, onDiscard)
