/** Receiving message content: DATA (dot-stuffed, CRLF.CRLF) and BDAT chunks (RFC 3030). */
import { Duration, Effect } from "effect"
import * as DataDecoder from "../protocol/DataDecoder.ts"
import * as LineEndings from "../protocol/LineEndings.ts"
import * as Reply from "../protocol/Reply.ts"
import * as Socket from "../runtime/Socket.ts"
import type { ChunkRead } from "./Connection.ts"
import * as Delivery from "./Delivery.ts"
import * as MessageBuffer from "./MessageBuffer.ts"
import { type Conn, flush, invalid, reply, replyAndClose } from "./State.ts"

const newBuffer = (c: Conn) =>
  MessageBuffer.make({
    threshold: c.env.config.limits.spillThreshold,
    maxSize: c.env.config.limits.maxMessageSize,
    tempDir: c.env.config.tempDir
  })

/** Feeds bytes into the buffer; a storage error is remembered and the rest only counted. */
const store = (buffer: MessageBuffer.MessageBuffer, state: { storageFailed: boolean }, chunk: Uint8Array) =>
  state.storageFailed
    ? Effect.void
    : Effect.catchAll(buffer.append(chunk), (error) =>
      Effect.logError(`cannot store message: ${error.message}`).pipe(Effect.tap(() => {
        state.storageFailed = true
      })))

/** When a transfer starting now must be over, however steadily its bytes trickle in. */
const transferDeadline = (c: Conn): number => Socket.now() + Duration.toMillis(c.env.config.limits.transferTimeout)

/** The connection ends in mid-transfer: nothing is delivered. */
const lost = Effect.fnUntraced(function*(c: Conn, buffer: MessageBuffer.MessageBuffer, why: "eof" | "timeout") {
  yield* buffer.dispose
  c.tx = undefined
  c.chunking = undefined
  if (why === "timeout") replyAndClose(c, Reply.timeout)
  else c.closing = true
})

export const data = Effect.fnUntraced(function*(c: Conn, readChunk: ChunkRead) {
  const tx = c.tx
  if (tx === undefined) return invalid(c, Reply.badSequence("Need MAIL command"))
  if (c.chunking !== undefined) return invalid(c, Reply.badSequence("DATA not allowed after BDAT"))
  if (tx.recipients.length === 0) return invalid(c, Reply.make(554, "5.5.1", "No valid recipients"))
  reply(c, Reply.make(354, undefined, "End data with <CR><LF>.<CR><LF>"))
  yield* flush(c)
  const decoder = DataDecoder.make({ bareLineEndings: c.env.config.bareLineEndings })
  const buffer = newBuffer(c)
  const state = { storageFailed: false, bare: false }
  const deadline = transferDeadline(c)
  let pending = c.lines.takeRemaining()
  for (;;) {
    if (pending.byteLength > 0) {
      const result = decoder.decode(pending)
      for (const part of result.output) yield* store(buffer, state, part)
      state.bare ||= result.bare
      if (result.done) {
        c.lines.push(result.rest)
        break
      }
    }
    const chunk = yield* readChunk(c, deadline)
    if (typeof chunk === "string") return yield* lost(c, buffer, chunk)
    pending = chunk
  }
  yield* Delivery.finish(c, tx, buffer, state)
})

export const bdat = Effect.fnUntraced(function*(c: Conn, readChunk: ChunkRead, size: number, last: boolean) {
  const tx = c.tx
  // The chunk is read whatever the state, or its bytes would be taken for commands.
  const problem = tx === undefined
    ? Reply.badSequence("Need MAIL command")
    : tx.recipients.length === 0
    ? Reply.make(554, "5.5.1", "No valid recipients")
    : undefined
  if (problem === undefined && c.chunking === undefined) {
    c.chunking = {
      buffer: newBuffer(c),
      deadline: transferDeadline(c),
      normalizer: LineEndings.make(c.env.config.bareLineEndings),
      bare: false
    }
  }
  const chunking = problem === undefined ? c.chunking : undefined
  // Checked here too: many small chunks, each arriving with its command, never wait for bytes.
  if (chunking !== undefined && Socket.now() >= chunking.deadline) return yield* lost(c, chunking.buffer, "timeout")
  const deadline = chunking?.deadline ?? transferDeadline(c)
  const state = { storageFailed: false }
  let remaining = size
  let pending = c.lines.takeRemaining()
  while (remaining > 0) {
    if (pending.byteLength === 0) {
      const chunk = yield* readChunk(c, deadline)
      if (typeof chunk === "string") {
        if (chunking !== undefined) return yield* lost(c, chunking.buffer, chunk)
        c.closing = true
        return
      }
      pending = chunk
    }
    const take = pending.byteLength > remaining ? pending.subarray(0, remaining) : pending
    pending = pending.subarray(take.byteLength)
    remaining -= take.byteLength
    if (chunking !== undefined) {
      const out = chunking.normalizer.push(take)
      chunking.bare ||= out.bare
      yield* store(chunking.buffer, state, out.output)
    }
  }
  c.lines.push(pending)
  if (problem !== undefined || chunking === undefined || tx === undefined) return invalid(c, problem ?? Reply.badSequence())
  if (chunking.buffer.tooBig() || state.storageFailed) {
    // The transaction is over: later BDATs get 503 until a new MAIL.
    reply(c, state.storageFailed ? Reply.make(451, "4.3.0", "Temporary storage failure") : Reply.tooBig)
    yield* chunking.buffer.dispose
    c.chunking = undefined
    c.tx = undefined
    return
  }
  if (!last) return reply(c, Reply.make(250, "2.0.0", `${size} octets received`))
  const end = chunking.normalizer.end()
  chunking.bare ||= end.bare
  yield* store(chunking.buffer, state, end.output)
  yield* Delivery.finish(c, tx, chunking.buffer, { bare: chunking.bare, storageFailed: state.storageFailed })
})
