/**
 * The DATA encoding of a message (RFC 5321 section 4.5.2): every line that starts with "." gets
 * one more, and the message ends with CRLF "." CRLF. Lines are found across chunk boundaries.
 * The content should already be CRLF-only; a bare CR or LF is still written as CRLF here so
 * that no upstream, however lenient, ever sees one from us (the smuggling guard of DESIGN.md §3).
 *
 * @example
 * const stuffer = DotStuffing.make()
 * stuffer.push(bytes("a\r\n.b\r")) // "a\r\n..b"
 * stuffer.push(bytes("\n"))        // "\r\n"
 * stuffer.end()                    // ".\r\n"
 */

const CR = 0x0d
const LF = 0x0a
const DOT = 0x2e

export interface Stuffer {
  /** The encoded bytes for `chunk`; a trailing CR is held back until the next byte is known. */
  readonly push: (chunk: Uint8Array) => Uint8Array
  /** What ends the DATA: a CRLF when the content did not end with one, then ".\r\n". */
  readonly end: () => Uint8Array
  /** `push` into a caller's buffer at `offset`, which has room for twice the chunk plus 2; returns the new end. */
  readonly pushInto: (chunk: Uint8Array, out: Uint8Array, offset: number) => number
  /** `end` into a caller's buffer at `offset`, with room for 5 bytes; returns the new end. */
  readonly endInto: (out: Uint8Array, offset: number) => number
}

export const make = (): Stuffer => {
  let atLineStart = true
  let pendingCr = false

  /** Encodes `chunk` into `out` from `n`; returns the new end. `out` has room for twice the chunk plus 2. */
  const pushInto = (chunk: Uint8Array, out: Uint8Array, n: number): number => {
    for (let i = 0; i < chunk.byteLength; i++) {
      const b = chunk[i]!
      if (pendingCr) {
        pendingCr = false
        out[n++] = CR
        out[n++] = LF
        atLineStart = true
        if (b === LF) continue
      }
      if (b === CR) {
        pendingCr = true
      } else if (b === LF) {
        out[n++] = CR
        out[n++] = LF
        atLineStart = true
      } else {
        if (atLineStart && b === DOT) out[n++] = DOT
        out[n++] = b
        atLineStart = false
      }
    }
    return n
  }

  /** Writes the terminator (at most 5 bytes) into `out` from `n`; returns the new end. */
  const endInto = (out: Uint8Array, n: number): number => {
    if (pendingCr || !atLineStart) {
      out[n++] = CR
      out[n++] = LF
    }
    pendingCr = false
    atLineStart = true
    out[n++] = DOT
    out[n++] = CR
    out[n++] = LF
    return n
  }

  // Worst case every byte doubles (a bare LF, or a "." at the start of a line).
  const push = (chunk: Uint8Array): Uint8Array => {
    const out = new Uint8Array(chunk.byteLength * 2 + 2)
    return out.subarray(0, pushInto(chunk, out, 0))
  }

  const end = (): Uint8Array => {
    const out = new Uint8Array(5)
    return out.subarray(0, endInto(out, 0))
  }

  return { push, end, pushInto, endInto }
}

/** The whole DATA encoding, terminator included, of a message held in memory: one buffer, one write. */
export const encode = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  let total = 0
  for (const part of parts) total += part.byteLength
  const out = new Uint8Array(total * 2 + 5)
  const stuffer = make()
  let n = 0
  for (const part of parts) n = stuffer.pushInto(part, out, n)
  return out.subarray(0, stuffer.endInto(out, n))
}
