/**
 * The spool directory on disk:
 *
 *   <dir>/<id>.eml      the message bytes (CRLF, not dot-stuffed)
 *   <dir>/<id>.json     its envelope and delivery state: the commit point
 *   <dir>/tmp/          files being written; anything left here after a crash is garbage
 *   <dir>/corrupt/      state files this version cannot read, kept for an operator
 *   <dir>/flush         present when `queue flush` asked for every message to be retried now
 *
 * Every file is written to tmp/, fsynced, renamed into place, and the directory fsynced, so that
 * a file is either absent or complete after a crash or power loss.
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { randomBytes } from "node:crypto"
import * as Fs from "node:fs/promises"
import * as Path from "node:path"
import { MessageError } from "../../pipeline/Message.ts"
import * as Record from "./Record.ts"
import { fromUnknown, SpoolError } from "./SpoolError.ts"
import * as Durable from "../../util/Durable.ts"

const messageExt = ".eml"
const recordExt = ".json"
export const flushMarker = "flush"

// Ids become file names: nothing that could climb out of the directory or hide as a dot file.
const validId = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/

export const checkId = (id: string): Effect.Effect<void, SpoolError> =>
  validId.test(id) && !id.includes("..")
    ? Effect.void
    : Effect.fail(new SpoolError({ reason: "Write", message: `Spool: message id ${JSON.stringify(id)} cannot be used as a file name` }))

export const messagePath = (dir: string, id: string): string => Path.join(dir, id + messageExt)
export const recordPath = (dir: string, id: string): string => Path.join(dir, id + recordExt)

const isNotFound = (error: unknown): boolean => (error as { code?: unknown } | null)?.code === "ENOENT"

/** Creates the spool directory and its sub-directories, owner-only. */
export const ensure = (dir: string): Effect.Effect<void, SpoolError> =>
  Effect.forEach(
    [dir, Path.join(dir, "tmp"), Path.join(dir, "corrupt")],
    (path) => Effect.tryPromise({ try: () => Fs.mkdir(path, { recursive: true, mode: 0o700 }), catch: fromUnknown("Write", path, "create") }),
    { discard: true }
  )

/** FileHandle.write may write less than asked; loop until every byte is on its way to disk. */
const writeAll = async (handle: Fs.FileHandle, bytes: Uint8Array): Promise<void> => {
  let offset = 0
  while (offset < bytes.byteLength) {
    const { bytesWritten } = await handle.write(bytes, offset, bytes.byteLength - offset)
    offset += bytesWritten
  }
}

export const syncDir = (dir: string): Effect.Effect<void, SpoolError> =>
  Effect.tryPromise({ try: () => Durable.syncDirectory(dir), catch: fromUnknown("Write", dir, "fsync") })

const removeQuietly = (path: string): Effect.Effect<void> =>
  Effect.promise(() => Fs.rm(path, { force: true }).catch(() => undefined))

/**
 * Writes `content` to `<dir>/<name>` atomically and durably; returns the bytes written. The
 * source stream's own errors fail the write with the stream's error.
 */
export const writeAtomic = <E>(
  dir: string,
  name: string,
  content: Stream.Stream<Uint8Array, E>
): Effect.Effect<number, SpoolError | E> => {
  const tmp = Path.join(dir, "tmp", `${name}.${randomBytes(6).toString("hex")}`)
  const target = Path.join(dir, name)
  const write = Effect.acquireUseRelease(
    Effect.tryPromise({ try: () => Fs.open(tmp, "wx", 0o600), catch: fromUnknown("Write", tmp, "create") }),
    (handle) =>
      Effect.gen(function*() {
        let size = 0
        yield* Stream.runForEach(content, (chunk) =>
          Effect.tryPromise({ try: () => writeAll(handle, chunk), catch: fromUnknown("Write", tmp, "write") }).pipe(
            Effect.tap(() => {
              size += chunk.byteLength
            })
          ))
        yield* Effect.tryPromise({ try: () => handle.sync(), catch: fromUnknown("Write", tmp, "fsync") })
        return size
      }),
    (handle) => Effect.promise(() => handle.close().catch(() => undefined))
  )
  return Effect.gen(function*() {
    const size = yield* write
    yield* Effect.tryPromise({ try: () => Fs.rename(tmp, target), catch: fromUnknown("Write", target, "rename into") })
    yield* syncDir(dir)
    return size
  }).pipe(Effect.onError(() => removeQuietly(tmp)))
}

const encoder = new TextEncoder()

export const writeMessage = <E>(dir: string, id: string, content: Stream.Stream<Uint8Array, E>) =>
  writeAtomic(dir, id + messageExt, content)

export const writeRecord = (dir: string, record: Record.Record): Effect.Effect<void, SpoolError> =>
  Effect.asVoid(writeAtomic(dir, record.id + recordExt, Stream.succeed(encoder.encode(Record.encode(record)))))

export const exists = (path: string): Effect.Effect<boolean> =>
  Effect.promise(() => Fs.access(path).then(() => true, () => false))

/** The state of message `id`; `None` when it is not (or no longer) queued. */
export const readRecord = (dir: string, id: string): Effect.Effect<Option.Option<Record.Record>, SpoolError> => {
  const path = recordPath(dir, id)
  return Effect.tryPromise({
    try: () => Fs.readFile(path, "utf8").catch((error: unknown) => (isNotFound(error) ? undefined : Promise.reject(error))),
    catch: fromUnknown("Read", path, "read")
  }).pipe(
    Effect.flatMap((text) => {
      if (text === undefined) return Effect.succeedNone
      const decoded = Record.decode(text)
      return Either.isRight(decoded)
        ? Effect.succeedSome(decoded.right)
        : Effect.fail(new SpoolError({ reason: "Corrupt", path, message: `Spool: ${path} is not a valid state file: ${decoded.left}` }))
    })
  )
}

/**
 * Creates and removes a file where messages are written (`tmp/`): readiness means the spool can
 * take mail, which listing the directory does not prove (a full or read-only disk lists fine).
 */
export const probeWritable = (dir: string): Effect.Effect<void, SpoolError> => {
  const path = Path.join(dir, "tmp", `.probe-${randomBytes(6).toString("hex")}`)
  return Effect.tryPromise({
    try: async () => {
      const handle = await Fs.open(path, "wx", 0o600)
      try {
        await writeAll(handle, encoder.encode("probe\n"))
      } finally {
        await handle.close()
        await Fs.rm(path, { force: true })
      }
    },
    catch: fromUnknown("Write", path, "write")
  })
}

/** Ids of the committed messages (those with a state file). */
export const listIds = (dir: string): Effect.Effect<ReadonlyArray<string>, SpoolError> =>
  Effect.tryPromise({ try: () => Fs.readdir(dir), catch: fromUnknown("Read", dir, "list") }).pipe(
    Effect.map((names) => names.filter((n) => n.endsWith(recordExt)).map((n) => n.slice(0, -recordExt.length)).sort())
  )

const unlinkRecord = (path: string) =>
  Effect.tryPromise({
    try: () => Fs.unlink(path).then(() => true, (error: unknown) => (isNotFound(error) ? false : Promise.reject(error))),
    catch: fromUnknown("Write", path, "remove")
  })

/**
 * Removes a message: the state file first, so that a crash in between leaves only garbage. A
 * delivery attempt in flight (possibly in another process: `queue remove`) may rename a new state
 * file into place meanwhile; the state file is unlinked again once the message file is gone, and
 * the attempt checks for the message file after its own rename (`Attempt.save`), so that in every
 * interleaving the removal wins and no state file outlives its message.
 */
export const removeMessage = (dir: string, id: string): Effect.Effect<boolean, SpoolError> =>
  Effect.gen(function*() {
    const path = recordPath(dir, id)
    const removed = yield* unlinkRecord(path)
    yield* removeQuietly(messagePath(dir, id))
    yield* unlinkRecord(path)
    yield* syncDir(dir)
    return removed
  })

/** Moves an unreadable state file (and its message) into corrupt/ for an operator to inspect. */
export const quarantine = (dir: string, id: string): Effect.Effect<void, SpoolError> =>
  Effect.gen(function*() {
    for (const path of [recordPath(dir, id), messagePath(dir, id)]) {
      const target = Path.join(dir, "corrupt", Path.basename(path))
      yield* Effect.tryPromise({
        try: () => Fs.rename(path, target).catch((error: unknown) => (isNotFound(error) ? undefined : Promise.reject(error))),
        catch: fromUnknown("Write", path, "move into corrupt/")
      })
    }
    yield* syncDir(dir)
  })

/**
 * Start-up clean-up: files in tmp/ and message files without a state file are what a crash in
 * the middle of a write leaves; nobody was told they were accepted, so they go.
 */
export const cleanup = (dir: string): Effect.Effect<number, SpoolError> =>
  Effect.gen(function*() {
    const tmp = Path.join(dir, "tmp")
    const leftovers = yield* Effect.tryPromise({ try: () => Fs.readdir(tmp), catch: fromUnknown("Read", tmp, "list") })
    for (const name of leftovers) yield* removeQuietly(Path.join(tmp, name))
    const names = yield* Effect.tryPromise({ try: () => Fs.readdir(dir), catch: fromUnknown("Read", dir, "list") })
    const committed = new Set(names.filter((n) => n.endsWith(recordExt)).map((n) => n.slice(0, -recordExt.length)))
    let removed = leftovers.length
    for (const name of names) {
      if (name.endsWith(messageExt) && !committed.has(name.slice(0, -messageExt.length))) {
        yield* removeQuietly(Path.join(dir, name))
        removed++
      }
    }
    if (removed > 0) yield* syncDir(dir)
    return removed
  })

const chunkSize = 64 * 1024

/** The message bytes, read in chunks each time the stream runs. */
export const messageStream = (dir: string, id: string): Stream.Stream<Uint8Array, MessageError> => {
  const path = messagePath(dir, id)
  const readError = (error: unknown) =>
    new MessageError({ reason: "Read", message: `Spool: could not read ${path}: ${error instanceof Error ? error.message : String(error)}` })
  return Stream.unwrapScoped(
    Effect.acquireRelease(
      Effect.tryPromise({ try: () => Fs.open(path, "r"), catch: readError }),
      (handle) => Effect.promise(() => handle.close().catch(() => undefined))
    ).pipe(Effect.map((handle) =>
      Stream.repeatEffectOption(
        Effect.tryPromise({
          try: () => handle.read(new Uint8Array(chunkSize), 0, chunkSize, null),
          catch: (error) => Option.some(readError(error))
        }).pipe(Effect.flatMap(({ buffer, bytesRead }) =>
          bytesRead === 0 ? Effect.fail(Option.none()) : Effect.succeed(buffer.subarray(0, bytesRead))
        ))
      )
    ))
  )
}

const maxHeaderBytes = 1024 * 1024

/** The message's header section (up to the blank line), for a DSN with RET=HDRS. */
export const readHeaders = (dir: string, id: string): Effect.Effect<Uint8Array, MessageError> =>
  Effect.gen(function*() {
    const parts: Array<Uint8Array> = []
    let total = 0
    yield* messageStream(dir, id).pipe(
      Stream.takeUntil((chunk) => {
        parts.push(chunk)
        total += chunk.byteLength
        return total >= maxHeaderBytes || Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).includes("\r\n\r\n") ||
          Buffer.concat(parts.slice(-2)).includes("\r\n\r\n")
      }),
      Stream.runDrain
    )
    const all = Buffer.concat(parts)
    if (all.subarray(0, 2).equals(Buffer.from("\r\n"))) return new Uint8Array(0)
    const end = all.indexOf("\r\n\r\n")
    return end === -1 ? all.subarray(0, Math.min(all.byteLength, maxHeaderBytes)) : all.subarray(0, end + 2)
  })

/**
 * A cheap fingerprint of a state file (inode, size, mtime): every rewrite is a rename of a new
 * file, so an unchanged fingerprint means an unchanged state. `undefined` when it is gone.
 */
export const stamp = (dir: string, id: string): Effect.Effect<string | undefined> =>
  Effect.promise(() =>
    Fs.stat(recordPath(dir, id)).then((s) => `${s.ino}:${s.size}:${s.mtimeMs}`, () => undefined)
  )

/**
 * Bytes free for unprivileged use on the file system that holds `dir`; `undefined` when the
 * platform cannot tell (then nothing is refused on its account).
 */
export const freeSpace = (dir: string): Effect.Effect<number | undefined> =>
  Effect.promise(() => Fs.statfs(dir).then((s) => Number(s.bavail) * Number(s.bsize), () => undefined))

/** Consumes a `queue flush` request: `true` when there was one. */
export const takeFlushMarker = (dir: string): Effect.Effect<boolean> =>
  Effect.promise(() => Fs.unlink(Path.join(dir, flushMarker)).then(() => true, () => false))
