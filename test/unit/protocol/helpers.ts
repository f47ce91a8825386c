/** Byte helpers shared by the protocol specifications. */
import * as fc from "fast-check"

const encoder = new TextEncoder()
const latin1 = new TextDecoder("latin1")

/** ASCII/Latin-1 text to bytes, one byte per character, so test inputs spell exact octets. */
export const bytes = (text: string): Uint8Array => Uint8Array.from(text, (c) => c.charCodeAt(0))
/** Bytes to a one-character-per-octet string, for readable comparisons (`\r`, `\n` visible). */
export const text = (b: Uint8Array): string => latin1.decode(b)
export const utf8 = (s: string): Uint8Array => encoder.encode(s)

export const concat = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

/** Splits `input` at the given cut points (taken modulo its length, sorted, deduplicated or not). */
export const split = (input: Uint8Array, cuts: ReadonlyArray<number>): Array<Uint8Array> => {
  const points = cuts.map((c) => (input.length === 0 ? 0 : c % (input.length + 1))).sort((a, b) => a - b)
  const chunks: Array<Uint8Array> = []
  let start = 0
  for (const p of points) {
    chunks.push(input.subarray(start, p))
    start = p
  }
  chunks.push(input.subarray(start))
  return chunks
}

/** True when every CR is followed by LF and every LF preceded by CR. */
export const hasOnlyCrlf = (b: Uint8Array): boolean => {
  for (let i = 0; i < b.length; i++) {
    if (b[i] === 0x0d && b[i + 1] !== 0x0a) return false
    if (b[i] === 0x0a && (i === 0 || b[i - 1] !== 0x0d)) return false
  }
  return true
}

/** Bytes biased towards the characters that matter to framing: CR, LF and ".". */
export const framingBytes = (maxLength = 200): fc.Arbitrary<Uint8Array> =>
  fc
    .array(fc.oneof(fc.constantFrom(0x0d, 0x0a, 0x2e, 0x0d, 0x0a, 0x2e), fc.integer({ min: 0, max: 255 })), { maxLength })
    .map((a) => Uint8Array.from(a))

/** Cut points for `split`. */
export const cuts = fc.array(fc.nat(), { maxLength: 12 })
