/**
 * Line-ending hygiene for BDAT content: CRLF passes through, every bare CR and bare LF is
 * reported and written as CRLF, so the bridge never forwards one (DESIGN.md section 3).
 *
 * @example
 * const n = LineEndings.make("reject")
 * n.push(new TextEncoder().encode("a\nb\r")) // output "a\r\nb\r", bare: true
 * n.end()                                    // output "\n", bare: true (the CR was bare)
 */

export type Policy = "normalize" | "reject"

export interface Normalized {
  readonly output: Uint8Array
  /** True when this call met a bare CR or bare LF; under "reject" the caller refuses the message. */
  readonly bare: boolean
}

export interface Normalizer {
  readonly push: (chunk: Uint8Array) => Normalized
  /** Flushes the state at the end of the content: a final CR was bare. Resets the normalizer. */
  readonly end: () => Normalized
}

export const CR = 0x0d
export const LF = 0x0a
const EMPTY = new Uint8Array(0)

/**
 * Finds the next CR or LF at or after `from` with two cached `indexOf` scans, so a chunk with
 * many lines is still scanned in linear time and at native speed.
 */
export const breakScanner = (chunk: Uint8Array): ((from: number) => number) => {
  let nextCr = -2
  let nextLf = -2
  return (from) => {
    if (nextCr !== -1 && nextCr < from) nextCr = chunk.indexOf(CR, from)
    if (nextLf !== -1 && nextLf < from) nextLf = chunk.indexOf(LF, from)
    if (nextCr === -1) return nextLf
    if (nextLf === -1) return nextCr
    return Math.min(nextCr, nextLf)
  }
}

import { concat } from "../util/Bytes.ts"

export { concat }

/**
 * Both policies normalize the same way: under "reject" the output is only ever used if the
 * caller chooses to, and producing it keeps one code path.
 */
export const make = (_policy: Policy): Normalizer => {
  // The previous chunk ended with a CR, already written; an LF must follow or be supplied.
  let pendingCr = false

  const push = (chunk: Uint8Array): Normalized => {
    const parts: Array<Uint8Array> = []
    let bare = false
    let i = 0
    let runStart = 0
    if (pendingCr && chunk.length > 0) {
      pendingCr = false
      if (chunk[0] === LF) i = 1
      else {
        parts.push(Uint8Array.of(LF))
        bare = true
      }
    }
    const scan = breakScanner(chunk)
    while (i < chunk.length) {
      const j = scan(i)
      if (j === -1) break
      if (chunk[j] === LF) {
        parts.push(chunk.subarray(runStart, j), Uint8Array.of(CR, LF))
        bare = true
        i = runStart = j + 1
      } else if (j + 1 === chunk.length) {
        pendingCr = true
        i = j + 1
      } else if (chunk[j + 1] === LF) {
        i = j + 2
      } else {
        parts.push(chunk.subarray(runStart, j + 1), Uint8Array.of(LF))
        bare = true
        i = runStart = j + 1
      }
    }
    if (runStart < chunk.length) parts.push(runStart === 0 ? chunk : chunk.subarray(runStart))
    return { output: concat(parts), bare }
  }

  const end = (): Normalized => {
    const bare = pendingCr
    pendingCr = false
    return { output: bare ? Uint8Array.of(LF) : EMPTY, bare }
  }

  return { push, end }
}
