/**
 * Reading an upstream's replies: bytes in, complete (possibly multi-line) replies out, with the
 * RFC 3463 enhanced status code taken off each line. Pure and incremental, so that pipelined
 * replies that arrive in one packet, or one reply split over several, come out the same.
 *
 * @example
 * const reader = Replies.makeReader()
 * reader.feed(bytes("250-mx.example\r\n250 2.0.0 PIPELINING\r\n"))
 * // Either.right([{ code: 250, enhanced: "2.0.0", lines: ["mx.example", "PIPELINING"] }])
 */
import * as Either from "effect/Either"
import * as Reply from "../../protocol/Reply.ts"

export interface Limits {
  /** Longest reply line in bytes; RFC 5321 allows 512, real servers send more. */
  readonly maxLineLength: number
  /** Most lines in one reply (EHLO lists are the long ones). */
  readonly maxLines: number
}

export const defaultLimits: Limits = { maxLineLength: 8192, maxLines: 256 }

export interface Reader {
  /** Adds bytes; returns the replies they completed, or why the stream is not SMTP. */
  readonly feed: (chunk: Uint8Array) => Either.Either<ReadonlyArray<Reply.Reply>, string>
  /** True when part of a reply has been received but not its last line. */
  readonly partial: () => boolean
}

const decoder = new TextDecoder("utf-8", { fatal: false })
const LF = 0x0a

const enhancedPattern = /^([245])\.([0-9]{1,3})\.([0-9]{1,3})(?: +|$)/

/** The enhanced code at the start of `text`, when its class matches the reply code. */
export const splitEnhanced = (code: number, text: string): { readonly enhanced: string | undefined; readonly text: string } => {
  const match = enhancedPattern.exec(text)
  if (match === null || Number(match[1]) !== Math.floor(code / 100)) return { enhanced: undefined, text }
  return { enhanced: `${match[1]}.${match[2]}.${match[3]}`, text: text.slice(match[0].length) }
}

interface Line {
  readonly code: number
  readonly last: boolean
  readonly text: string
}

const parseLine = (line: string): Line | undefined => {
  const match = /^([2-5][0-9][0-9])(?:([ -])(.*))?$/.exec(line)
  if (match === null) return undefined
  return { code: Number(match[1]), last: match[2] !== "-", text: match[3] ?? "" }
}

export const makeReader = (limits: Limits = defaultLimits): Reader => {
  let pending: Array<Uint8Array> = []
  let pendingLength = 0
  let lines: Array<Line> = []

  const takeLine = (tail: Uint8Array): string => {
    let bytes: Uint8Array
    if (pending.length === 0) bytes = tail
    else {
      bytes = new Uint8Array(pendingLength + tail.byteLength)
      let offset = 0
      for (const p of pending) {
        bytes.set(p, offset)
        offset += p.byteLength
      }
      bytes.set(tail, offset)
    }
    pending = []
    pendingLength = 0
    // Lenient about a bare LF from the upstream: it cannot smuggle anything into a reply.
    const end = bytes.byteLength > 0 && bytes[bytes.byteLength - 1] === 0x0d ? bytes.byteLength - 1 : bytes.byteLength
    return decoder.decode(bytes.subarray(0, end))
  }

  const complete = (): Reply.Reply => {
    const code = lines[0]!.code
    let enhanced: string | undefined
    const texts = lines.map((l, i) => {
      const split = splitEnhanced(code, l.text)
      if (i === 0) enhanced = split.enhanced
      // Servers repeat the enhanced code on every line; it is kept once, for the reply.
      return split.enhanced !== undefined && split.enhanced === enhanced ? split.text : l.text
    })
    lines = []
    return Reply.make(code, enhanced, texts)
  }

  const feed = (chunk: Uint8Array): Either.Either<ReadonlyArray<Reply.Reply>, string> => {
    const out: Array<Reply.Reply> = []
    let start = 0
    while (start < chunk.byteLength) {
      const lf = chunk.indexOf(LF, start)
      if (lf === -1) {
        const rest = chunk.subarray(start)
        pending.push(rest)
        pendingLength += rest.byteLength
        if (pendingLength > limits.maxLineLength) return Either.left(`reply line longer than ${limits.maxLineLength} bytes`)
        break
      }
      const text = takeLine(chunk.subarray(start, lf))
      start = lf + 1
      if (text.length > limits.maxLineLength) return Either.left(`reply line longer than ${limits.maxLineLength} bytes`)
      const line = parseLine(text)
      if (line === undefined) return Either.left(`not an SMTP reply line: ${JSON.stringify(text.slice(0, 80))}`)
      if (lines.length > 0 && lines[0]!.code !== line.code) {
        return Either.left(`reply code changed from ${lines[0]!.code} to ${line.code} within one reply`)
      }
      lines.push(line)
      if (lines.length > limits.maxLines) return Either.left(`reply longer than ${limits.maxLines} lines`)
      if (line.last) out.push(complete())
    }
    return Either.right(out)
  }

  return { feed, partial: () => lines.length > 0 || pendingLength > 0 }
}

/** One line for logs and error messages: `550 5.1.1 No such user`. */
export const describe = (reply: Reply.Reply): string =>
  `${reply.code}${reply.enhanced !== undefined ? ` ${reply.enhanced}` : ""} ${reply.lines.join(" / ")}`.trimEnd()
