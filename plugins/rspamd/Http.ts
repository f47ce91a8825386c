/**
 * One HTTP/1.1 POST with a streamed body and a bounded answer, hand-written over the bridge's
 * client sockets: `fetch` cannot send a stream with a Content-Length on every runtime (Node
 * needs `duplex: "half"` and then sends it chunked), and reading the message whole into memory
 * to give `fetch` a buffer would break the promise that a spilled message is never held whole.
 * rspamd's worker reads one request with a Content-Length and answers with one.
 *
 * @example
 * const answer = yield* Http.post({ host, port, tls: false, path: "/checkv2" }, headers, size, body, { timeoutMs, maxAnswer })
 * answer.status // 200
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { Connect } from "../../src/index.ts"
import type { Message } from "../../src/index.ts"

export class RspamdError extends Schema.TaggedError<RspamdError>()("RspamdError", {
  reason: Schema.Literal("Unreachable", "Timeout", "Closed", "TooLong", "Protocol", "Read"),
  message: Schema.String
}) {}

export interface Target {
  readonly host: string
  readonly port: number
  readonly tls: boolean
  readonly path: string
}

export interface Answer {
  readonly status: number
  readonly body: Uint8Array
}

/** A header value as it may travel: a CR or LF would end it and start a header of the sender's choosing. */
export const headerValue = (text: string): string => text.replace(/[\x00-\x1f\x7f]/g, "?")

const concat = (parts: ReadonlyArray<Uint8Array>, total: number): Uint8Array => {
  const out = new Uint8Array(total)
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.byteLength
  }
  return out
}

const indexOfBlankLine = (bytes: Uint8Array): number => {
  for (let i = 0; i + 3 < bytes.length; i++) {
    if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) return i
  }
  return -1
}

export const post = (
  target: Target,
  headers: ReadonlyArray<readonly [string, string]>,
  size: number,
  body: Stream.Stream<Uint8Array, Message.MessageError>,
  options: { readonly timeoutMs: number; readonly maxAnswer: number }
): Effect.Effect<Answer, RspamdError> => {
  const where = `${target.tls ? "https" : "http"}://${target.host.includes(":") ? `[${target.host}]` : target.host}:${target.port}${target.path}`
  const fail = (reason: RspamdError["reason"], detail: string) => new RspamdError({ reason, message: `rspamd ${where}: ${detail}` })
  const exchange = Effect.gen(function*() {
    const socket = yield* Connect.connect(
      { host: target.host, port: target.port },
      { timeout: options.timeoutMs, ...(target.tls ? { tls: { rejectUnauthorized: true } } : {}) }
    ).pipe(Effect.mapError((e) => fail(e.reason === "Timeout" ? "Timeout" : "Unreachable", e.message)))
    const hostHeader = target.host.includes(":") ? `[${target.host}]` : target.host
    let head = `POST ${target.path} HTTP/1.1\r\nHost: ${hostHeader}:${target.port}\r\nContent-Length: ${size}\r\nConnection: close\r\n`
    for (const [name, value] of headers) head += `${name}: ${headerValue(value)}\r\n`
    const write = (data: string | Uint8Array) => Effect.mapError(socket.write(data), (e) => fail("Closed", e.message))
    yield* write(`${head}\r\n`)
    // Each chunk waits until the kernel took the previous one: a slow rspamd slows the read of
    // the spill file, never fills memory.
    let sent = 0
    yield* Stream.runForEach(body, (chunk) => {
      sent += chunk.byteLength
      return write(chunk)
    }).pipe(Effect.catchTag("MessageError", (e) => Effect.fail(fail("Read", e.message))))
    if (sent !== size) return yield* Effect.fail(fail("Read", `sent ${sent} bytes of ${size}`))

    const parts: Array<Uint8Array> = []
    let total = 0
    let headEnd = -1
    let length: number | undefined
    for (;;) {
      const chunk = yield* socket.read
      if (chunk === undefined) break
      parts.push(chunk)
      total += chunk.byteLength
      if (total > options.maxAnswer + 16 * 1024) return yield* Effect.fail(fail("TooLong", `answer longer than ${options.maxAnswer} bytes`))
      if (headEnd === -1) {
        headEnd = indexOfBlankLine(concat(parts, total))
        if (headEnd === -1 && total > 16 * 1024) return yield* Effect.fail(fail("Protocol", "an answer header longer than 16KB"))
        if (headEnd === -1) continue
        const text = new TextDecoder().decode(concat(parts, total).subarray(0, headEnd))
        const m = /content-length:\s*(\d+)/i.exec(text)
        if (/transfer-encoding:\s*chunked/i.test(text)) return yield* Effect.fail(fail("Protocol", "a chunked answer (rspamd answers with a Content-Length)"))
        length = m === null ? undefined : Number(m[1])
        if (length !== undefined && length > options.maxAnswer) return yield* Effect.fail(fail("TooLong", `answer of ${length} bytes, more than ${options.maxAnswer}`))
      }
      if (length !== undefined && total - (headEnd + 4) >= length) break
    }
    if (headEnd === -1) return yield* Effect.fail(fail("Closed", "closed the connection before answering"))
    const all = concat(parts, total)
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(new TextDecoder().decode(all.subarray(0, Math.min(headEnd, 64))))
    if (status === null) return yield* Effect.fail(fail("Protocol", "not an HTTP answer"))
    const bodyBytes = all.subarray(headEnd + 4, length === undefined ? undefined : headEnd + 4 + length)
    if (length !== undefined && bodyBytes.byteLength < length) return yield* Effect.fail(fail("Closed", "closed the connection in the middle of the answer"))
    return { status: Number(status[1]), body: bodyBytes }
  })
  return Effect.scoped(exchange).pipe(
    Effect.timeoutFail({ duration: options.timeoutMs, onTimeout: () => fail("Timeout", `no complete answer within ${options.timeoutMs} ms`) })
  )
}
