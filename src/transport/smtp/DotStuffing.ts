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
}

export const make = (): Stuffer => {
  let atLineStart = true
  let pendingCr = false

  const push = (chunk: Uint8Array): Uint8Array => {
    // Worst case every byte doubles (a bare LF, or a "." at the start of a line).
    const out = new Uint8Array(chunk.byteLength * 2 + 2)
    let n = 0
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
    return out.subarray(0, n)
  }

  const end = (): Uint8Array => {
    let tail = ""
    if (pendingCr) {
      pendingCr = false
      atLineStart = true
      tail += "\r\n"
    }
    if (!atLineStart) tail += "\r\n"
    atLineStart = true
    return new TextEncoder().encode(tail + ".\r\n")
  }

  return { push, end }
}
