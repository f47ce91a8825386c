/**
 * DATA-mode decoding after the 354 reply: finds the end of data, removes dot-stuffing and
 * normalizes line endings, streaming: between chunks it keeps a state, never bytes.
 *
 * Only CRLF "." CRLF ends the data, and only CRLF separates lines for end-of-data and
 * dot-unstuffing. Every other spelling (`\n.\n`, `\n.\r\n`, `\r\n.\n`, `\r.\r\n`, ...) is content,
 * and its bare CR and LF are written as CRLF: the output never contains a bare CR or bare LF,
 * so nothing can be smuggled through the bridge into a lenient upstream.
 *
 * @example
 * const data = DataDecoder.make({ bareLineEndings: "reject" })
 * data.decode(new TextEncoder().encode("Hi\r\n..dot\r\n.\r\nQUIT\r\n"))
 * // output "Hi\r\n.dot\r\n", done: true, rest "QUIT\r\n", bare: false
 */
import { breakScanner, CR, LF, type Policy } from "./LineEndings.ts"

export interface DataResult {
  /** Message bytes, in order; segments may be views of the input chunk. */
  readonly output: ReadonlyArray<Uint8Array>
  /** True once the terminating CRLF "." CRLF has been seen. */
  readonly done: boolean
  /** Bytes after the terminator (pipelined commands); empty unless `done`. */
  readonly rest: Uint8Array
  /**
   * True when the message so far held a bare CR or bare LF: cumulative over the message, so the
   * result of the last call is enough to apply the "reject" policy.
   */
  readonly bare: boolean
}

export interface DataDecoder {
  /** Decodes the next chunk. Calling it again after `done` is a programming error and throws. */
  readonly decode: (chunk: Uint8Array) => DataResult
}

export interface DataDecoderOptions {
  /**
   * Both policies produce the same normalized output; the policy is the caller's to enforce
   * (with `bare`) once the data has been read to its end, so that the reply stays in sync.
   */
  readonly bareLineEndings: Policy
}

const DOT = 0x2e
const EMPTY = new Uint8Array(0)

// Where the previous chunk left off.
type State =
  | "LineStart" // after a CRLF or at the start of the data
  | "Dot" // a "." at a line start, dropped: unstuffed, or the start of the terminator
  | "DotCr" // "." CR at a line start, the CR held back: LF ends the data
  | "Cr" // a CR mid-line, already written: LF completes it, anything else makes it bare
  | "Mid" // inside a line

export const make = (_options: DataDecoderOptions): DataDecoder => {
  let state: State = "LineStart"
  let bare = false
  let done = false

  const decode = (chunk: Uint8Array): DataResult => {
    if (done) throw new Error("DataDecoder.decode called after the end of data")
    const output: Array<Uint8Array> = []
    const scan = breakScanner(chunk)
    const n = chunk.length
    // Bytes [runStart, i) are pending output, written in one view when something changes.
    let runStart = 0
    let i = 0
    const flush = (end: number): void => {
      if (end > runStart) output.push(chunk.subarray(runStart, end))
    }
    while (i < n) {
      switch (state) {
        case "LineStart":
          if (chunk[i] === DOT) {
            flush(i)
            runStart = ++i
            state = "Dot"
          } else state = "Mid"
          break
        case "Dot":
          if (chunk[i] === CR) {
            runStart = ++i
            state = "DotCr"
          } else state = "Mid"
          break
        case "DotCr":
          if (chunk[i] === LF) {
            done = true
            return { output, done, rest: i + 1 < n ? chunk.subarray(i + 1) : EMPTY, bare }
          }
          // "." CR followed by anything but LF: the dot was stuffing, the CR is bare.
          output.push(Uint8Array.of(CR, LF))
          bare = true
          state = "Mid"
          break
        case "Cr":
          if (chunk[i] === LF) {
            i++
            state = "LineStart"
          } else {
            flush(i)
            output.push(Uint8Array.of(LF))
            runStart = i
            bare = true
            state = "Mid"
          }
          break
        case "Mid": {
          const j = scan(i)
          if (j === -1) {
            i = n
          } else if (chunk[j] === LF) {
            // A bare LF is content, never a line break: the next byte is not at a line start.
            flush(j)
            output.push(Uint8Array.of(CR, LF))
            runStart = i = j + 1
            bare = true
          } else if (j + 1 === n) {
            i = n
            state = "Cr"
          } else if (chunk[j + 1] === LF) {
            i = j + 2
            state = "LineStart"
          } else {
            flush(j + 1)
            output.push(Uint8Array.of(LF))
            runStart = i = j + 1
            bare = true
          }
          break
        }
      }
    }
    flush(n)
    return { output, done, rest: EMPTY, bare }
  }

  return { decode }
}

/**
 * Dot-stuffs content and appends the terminator (adding a final CRLF when missing): the inverse
 * of `decode` for CRLF-only content. Byte by byte, for tests and small messages.
 */
export const encode = (content: Uint8Array): Uint8Array => {
  const out: Array<number> = []
  let lineStart = true
  for (let i = 0; i < content.length; i++) {
    const c = content[i]!
    if (lineStart && c === DOT) out.push(DOT)
    out.push(c)
    lineStart = c === LF && i > 0 && content[i - 1] === CR
  }
  if (content.length > 0 && !(content.length >= 2 && content[content.length - 2] === CR && content[content.length - 1] === LF)) {
    out.push(CR, LF)
  }
  out.push(DOT, CR, LF)
  return Uint8Array.from(out)
}
