/**
 * Holds one incoming message: in memory up to a threshold, then in a private temporary file, so
 * a session's memory stays bounded whatever the client sends. Bytes past the size limit are
 * counted, never stored.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { type Content, MessageError, parseHeaders } from "../pipeline/Message.ts"
import * as Memory from "../runtime/Memory.ts"

/** Header sections larger than this are refused: unparsed, their fields could not be checked or removed. */
const maxHeaderBytes = 256 * 1024
const readChunk = 64 * 1024

export interface MessageBuffer {
  readonly append: (chunk: Uint8Array) => Effect.Effect<void, MessageError>
  /** Bytes received, including any past the limit. */
  readonly size: () => number
  readonly tooBig: () => boolean
  /**
   * After `finish`: the header section ran past 256 KiB. Its fields were not parsed, so a forged
   * one (Authentication-Results, From) could not be removed or checked: refuse the message.
   */
  readonly headerSectionTooLarge: () => boolean
  /** The stored message; call once, after the last append. */
  readonly finish: () => Effect.Effect<Content, MessageError>
  /** Deletes the temporary file, if any. Safe to call more than once. */
  readonly dispose: Effect.Effect<void>
}

const ioError = (reason: "Read" | "Write", error: unknown) =>
  new MessageError({ reason, message: error instanceof Error ? error.message : String(error) })

/** Whether bytes [from, end) start with a field name (printable ASCII but ":") and a colon. */
const isFieldStart = (view: Uint8Array, from: number, end: number): boolean => {
  let i = from
  while (i < end && view[i]! > 32 && view[i]! < 127 && view[i] !== 58) i++
  if (i === from) return false
  while (i < end && (view[i] === 32 || view[i] === 9)) i++
  return i < end && view[i] === 58
}

export const make = (options: {
  readonly threshold: number
  readonly maxSize: number
  readonly tempDir: string | undefined
}): MessageBuffer => {
  const memory: Array<Uint8Array> = []
  let inMemory = 0
  let size = 0
  let stored = 0
  let file: fs.FileHandle | undefined
  let filePath: string | undefined
  let disposed = false
  let headerOverflow = false
  // The first bytes, kept for header parsing even after a spill (shared with `memory` until then).
  const headParts: Array<Uint8Array> = []
  let headLength = 0

  const spill = Effect.tryPromise({
    try: async () => {
      const dir = options.tempDir ?? os.tmpdir()
      filePath = path.join(dir, `smtp-bridge-${process.pid}-${randomBytes(8).toString("hex")}.eml`)
      file = await fs.open(filePath, "wx", 0o600)
      for (const part of memory) await file.write(part)
      memory.length = 0
      inMemory = 0
    },
    catch: (e) => ioError("Write", e)
  })

  const append = (chunk: Uint8Array): Effect.Effect<void, MessageError> => {
    if (chunk.byteLength === 0) return Effect.void
    size += chunk.byteLength
    if (size > options.maxSize) return Memory.release(chunk.byteLength)
    stored += chunk.byteLength
    // Input chunks may be views of a buffer the socket reuses: copy what we keep.
    const copy = file === undefined ? chunk.slice() : undefined
    if (headLength < maxHeaderBytes) {
      const n = Math.min(chunk.byteLength, maxHeaderBytes - headLength)
      headParts.push(copy !== undefined ? copy.subarray(0, n) : chunk.slice(0, n))
      headLength += n
    }
    if (copy === undefined) {
      const f = file!
      return Effect.zipRight(
        Effect.tryPromise({ try: () => f.write(chunk), catch: (e) => ioError("Write", e) }),
        Memory.release(chunk.byteLength)
      )
    }
    memory.push(copy)
    inMemory += copy.byteLength
    return inMemory > options.threshold ? spill : Effect.void
  }

  // The header section ends at the blank line, or before the first line that is not a header
  // field (RFC 5322 2.2): that line is body. Taking it for a header would let `render` drop it.
  const headerSection = (): { headers: Content["headers"]; bodyOffset: number } => {
    const view = headParts.length === 1 ? headParts[0]! : Buffer.concat(headParts)
    const upTo = (end: number) => ({ headers: end === 0 ? [] : parseHeaders(view.subarray(0, end)), bodyOffset: end })
    let i = 0
    while (i < headLength) {
      let cr = view.indexOf(13, i)
      while (cr !== -1 && cr + 1 < headLength && view[cr + 1] !== 10) cr = view.indexOf(13, cr + 1)
      const complete = cr !== -1 && cr + 1 < headLength
      const end = complete ? cr : headLength
      if (complete && end === i) return upTo(i)
      const folded = view[i] === 32 || view[i] === 9
      if (folded ? i === 0 : !isFieldStart(view, i, end)) return upTo(i)
      if (!complete) break
      i = end + 2
    }
    if (stored <= maxHeaderBytes) return upTo(stored)
    headerOverflow = true
    return { headers: [], bodyOffset: 0 }
  }

  const memoryParts = (parts: ReadonlyArray<Uint8Array>, start: number): ReadonlyArray<Uint8Array> => {
    if (start === 0) return parts
    const out: Array<Uint8Array> = []
    let offset = 0
    for (const part of parts) {
      const end = offset + part.byteLength
      if (end > start) out.push(start > offset ? part.subarray(start - offset) : part)
      offset = end
    }
    return out
  }

  const fileStream = (p: string, total: number, start: number): Stream.Stream<Uint8Array, MessageError> =>
    Stream.unwrapScoped(Effect.gen(function*() {
      const handle = yield* Effect.acquireRelease(
        Effect.tryPromise({ try: () => fs.open(p, "r"), catch: (e) => ioError("Read", e) }),
        (h) => Effect.promise(() => h.close())
      )
      let position = start
      return Stream.repeatEffectOption(Effect.gen(function*() {
        if (position >= total) return yield* Effect.fail(Option.none())
        const buffer = new Uint8Array(Math.min(readChunk, total - position))
        const { bytesRead } = yield* Effect.mapError(
          Effect.tryPromise({ try: () => handle.read(buffer, 0, buffer.byteLength, position), catch: (e) => ioError("Read", e) }),
          Option.some
        )
        if (bytesRead === 0) return yield* Effect.fail(Option.some(ioError("Read", new Error("temporary file truncated"))))
        // The chunk before this one has been written on by now: a large message streams to its
        // transport without piling up read buffers.
        if (position > start) yield* Memory.release(bytesRead)
        position += bytesRead
        return buffer.subarray(0, bytesRead)
      }))
    }))

  const finish = (): Effect.Effect<Content, MessageError> =>
    Effect.gen(function*() {
      if (file !== undefined) {
        const f = file
        yield* Effect.tryPromise({ try: () => f.close(), catch: (e) => ioError("Write", e) })
        file = undefined
      }
      const { headers, bodyOffset } = headerSection()
      const total = stored
      const parts = memory.slice()
      const p = filePath
      return {
        size: total,
        headers,
        bodyOffset,
        stream: (start = 0) => p === undefined ? Stream.fromIterable(memoryParts(parts, start)) : fileStream(p, total, start),
        inMemory: (start = 0) => p === undefined ? memoryParts(parts, start) : undefined
      }
    })

  // Every message ends here: one kept in memory has no file to close, so no promise to wait for.
  const inMemoryOnly = Effect.sync(() => {
    disposed = true
    memory.length = 0
  })
  const dispose = Effect.suspend(() => (disposed ? Effect.void : file === undefined && filePath === undefined ? inMemoryOnly : disposeFile))
  const disposeFile = Effect.promise(async () => {
    if (disposed) return
    disposed = true
    memory.length = 0
    const f = file
    file = undefined
    if (f !== undefined) await f.close().catch(() => undefined)
    if (filePath !== undefined) await fs.unlink(filePath).catch(() => undefined)
  })

  return { append, size: () => size, tooBig: () => size > options.maxSize, headerSectionTooLarge: () => headerOverflow, finish, dispose }
}
