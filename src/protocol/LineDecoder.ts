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


/**
 * `maxLineLength` counts the terminator, as RFC 5321 4.5.3.1.4 does (512 octets for commands).
 * LF alone ends a line too: command mode tolerates it, unlike DATA, where only CRLF counts.
 * `onDiscard` hears of the bytes of an overlong line as they are skipped.
 */
export const make = (maxLineLength: number, onDiscard?: (bytes: number) => void): LineDecoder => {
  // Chunks pushed but not yet scanned; `head` is the offset into the first one.
  const queue: Array<Uint8Array> = []
  let head = 0
  let queued = 0
  // The start of a line whose LF has not arrived yet; never more than maxLineLength - 1 bytes.
  // Allocated on first use: most sessions never see a line split across reads, and an idle
  // session should cost as little as possible.
  let partial: Uint8Array | undefined
  let partialLength = 0
  // True while skipping the rest of an overlong line up to its LF.
  let discarding = false
  let skipped = 0

  const dropHead = (): void => {
    const dropped = queue[0]!.length - head
    queued -= dropped
    if (discarding) {
      skipped += dropped
      onDiscard?.(dropped)
    }
    queue.shift()
    head = 0
  }

  const advance = (to: number): void => {
    queued -= to - head
    head = to
    if (head === queue[0]!.length) dropHead()
  }

  /** Skips to the end of the line being discarded; false when its LF has not arrived yet. */
  const skipDiscarded = (): boolean => {
    while (discarding && queue.length > 0) {
      const lf = queue[0]!.indexOf(LF, head)
      if (lf === -1) dropHead()
      else {
        skipped += lf + 1 - head
        onDiscard?.(lf + 1 - head)
        advance(lf + 1)
        discarding = false
      }
    }
    return !discarding
  }

  const decodeLine = (tail: Uint8Array): string => {
    const bytes = partialLength === 0 ? tail : concat([partial!.subarray(0, partialLength), tail])
    partialLength = 0
    const end = bytes.length > 0 && bytes[bytes.length - 1] === CR ? bytes.length - 1 : bytes.length
    return decoder.decode(bytes.subarray(0, end))
  }

  const next = (): LineEvent | undefined => {
    while (queue.length > 0) {
      if (!skipDiscarded()) return undefined
      if (queue.length === 0) return undefined
      const chunk = queue[0]!
      const lf = chunk.indexOf(LF, head)
      if (lf === -1) {
        const rest = chunk.length - head
        // At least the LF is still to come, so the line is already too long.
        if (partialLength + rest + 1 > maxLineLength) {
          partialLength = 0
          discarding = true
          dropHead()
          return tooLong
        }
        partial ??= new Uint8Array(Math.max(0, maxLineLength))
        partial.set(chunk.subarray(head), partialLength)
        partialLength += rest
        dropHead()
        continue
      }
      const start = head
      advance(lf + 1)
      if (partialLength + (lf + 1 - start) > maxLineLength) {
        partialLength = 0
        return tooLong
      }
      return { _tag: "Line", line: decodeLine(chunk.subarray(start, lf)) }
    }
    return undefined
  }

  const takeRemaining = (): Uint8Array => {
    skipDiscarded()
    const parts: Array<Uint8Array> = []
    if (partialLength > 0) parts.push(partial!.slice(0, partialLength))
    queue.forEach((chunk, i) => parts.push(i === 0 ? chunk.subarray(head) : chunk))
    queue.length = 0
    head = 0
    queued = 0
    partialLength = 0
    return concat(parts)
  }

  return {
    push: (chunk) => {
      if (chunk.length === 0) return
      queue.push(chunk)
      queued += chunk.length
    },
    next,
    takeRemaining,
    buffered: () => queued + partialLength,
    discarded: () => skipped,
    midLine: () => discarding || queued + partialLength > 0
  }
}
