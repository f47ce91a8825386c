/**
 * Maildir delivery: one file per message, written to `tmp/`, fsynced, then renamed into `new/`
 * so that a reader never sees half a message and a crash never loses an acknowledged one.
 *
 * @example
 * const transport = yield* Maildir.make({ dir: "./mail" })
 * const report = yield* transport.deliver(message)
 */
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { randomBytes } from "node:crypto"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Reply from "../protocol/Reply.ts"
import { type DeliveryReport, type OutgoingMessage, type Transport, TransportError } from "./Transport.ts"
import * as Durable from "../util/Durable.ts"

export interface Options {
  /** The Maildir root; `tmp`, `new` and `cur` are created inside it when missing. */
  readonly dir: string
}

const encoder = new TextEncoder()
const ok = Reply.make(250, "2.0.0", "Ok")

const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error))

const storage = (dir: string, action: string) => (error: unknown) =>
  new TransportError({
    transport: "maildir",
    reason: "Storage",
    message: `Maildir ${dir}: could not ${action}: ${messageOf(error)}`
  })

const attempt = <A>(dir: string, action: string, f: () => Promise<A>): Effect.Effect<A, TransportError> =>
  Effect.tryPromise({ try: f, catch: storage(dir, action) })

// Maildir names must not contain "/" or ":" (the info separator); the spec escapes them in octal.
const safeHostname = (): string => Os.hostname().replace(/\//g, "\\057").replace(/:/g, "\\072")

let counter = 0

/** `<seconds>.M<micros>P<pid>Q<counter>R<random>.<host>`: unique across processes, hosts and restarts. */
const uniqueName = (): string => {
  // timeOrigin + now() is wall-clock time with sub-millisecond precision where the runtime has it.
  const now = performance.timeOrigin + performance.now()
  const seconds = Math.floor(now / 1000)
  const micros = String(Math.floor((now % 1000) * 1000)).padStart(6, "0")
  counter = (counter + 1) % Number.MAX_SAFE_INTEGER
  return `${seconds}.M${micros}P${process.pid}Q${counter}R${randomBytes(8).toString("hex")}.${safeHostname()}`
}

// Addresses come from the parsed envelope, but a stray CR or LF here would forge header fields.
const oneLine = (s: string): string => s.replace(/[\r\n]+/g, "")

/** The trace fields a local delivery agent prepends (RFC 5321 section 4.4, Delivered-To by convention). */
const traceHeader = (message: OutgoingMessage): Uint8Array => {
  let head = `Return-Path: <${oneLine(message.envelope.mailFrom?.address ?? "")}>\r\n`
  for (const r of message.envelope.recipients) head += `Delivered-To: ${oneLine(r.mailbox.address)}\r\n`
  return encoder.encode(head)
}

/** FileHandle.write may write less than asked; loop until every byte is on its way to disk. */
const writeAll = async (handle: Fs.FileHandle, bytes: Uint8Array): Promise<void> => {
  let offset = 0
  while (offset < bytes.byteLength) {
    const { bytesWritten } = await handle.write(bytes, offset, bytes.byteLength - offset)
    offset += bytesWritten
  }
}

/** Writes the message to `path`, chunk by chunk, and fsyncs it; returns the bytes written. */
const writeFile = (dir: string, path: string, message: OutgoingMessage): Effect.Effect<number, TransportError> =>
  Effect.acquireUseRelease(
    attempt(dir, "create a file in tmp", () => Fs.open(path, "wx", 0o600)),
    (handle) =>
      Effect.gen(function*() {
        const head = traceHeader(message)
        yield* attempt(dir, "write to tmp", () => writeAll(handle, head))
        let size = head.byteLength
        yield* message.content().pipe(
          Stream.mapError(storage(dir, "read the message")),
          Stream.runForEach((chunk) =>
            attempt(dir, "write to tmp", () => writeAll(handle, chunk)).pipe(
              Effect.tap(() => {
                size += chunk.byteLength
              })
            )
          )
        )
        yield* attempt(dir, "fsync the message", () => handle.sync())
        return size
      }),
    (handle) => Effect.promise(() => handle.close().catch(() => undefined))
  )

// Platforms without directory fsync (Windows, some network file systems) report these; the
// rename is then as durable as the platform allows, which is not a reason to refuse the mail.
/** fsync a directory so that the rename into it survives a crash. */
const syncDir = (dir: string, path: string): Effect.Effect<void, TransportError> =>
  attempt(dir, "fsync new/", () => Durable.syncDirectory(path))

const removeQuietly = (path: string): Effect.Effect<void> =>
  Effect.promise(() => Fs.rm(path, { force: true }).catch(() => undefined))

/** Creates `dir/{tmp,new,cur}` when missing and returns the `maildir` transport. */
export const make = (options: Options): Effect.Effect<Transport, TransportError> =>
  Effect.gen(function*() {
    const dir = Path.resolve(options.dir)
    for (const sub of ["tmp", "new", "cur"]) {
      yield* attempt(dir, `create ${sub}/`, () => Fs.mkdir(Path.join(dir, sub), { recursive: true, mode: 0o700 }))
    }

    const deliver = (message: OutgoingMessage): Effect.Effect<DeliveryReport, TransportError> =>
      Effect.gen(function*() {
        const name = uniqueName()
        const tmpPath = Path.join(dir, "tmp", name)
        const newDir = Path.join(dir, "new")
        const stored = Effect.gen(function*() {
          const size = yield* writeFile(dir, tmpPath, message)
          const newPath = Path.join(newDir, `${name},S=${size}`)
          yield* attempt(dir, "move the message into new/", () => Fs.rename(tmpPath, newPath))
          return newPath
        }).pipe(Effect.onError(() => removeQuietly(tmpPath)))
        const newPath = yield* stored
        // Without this fsync a crash could undo the rename after we acknowledged the message;
        // failing it removes the file again so that the client's retry does not duplicate it.
        yield* syncDir(dir, newDir).pipe(Effect.onError(() => removeQuietly(newPath)))
        return { recipients: message.envelope.recipients.map((recipient) => ({ recipient, reply: ok })) }
      }).pipe(Effect.withSpan("maildir.deliver", { attributes: { "message.id": message.id } }))

    return { name: "maildir", upstream: dir, deliver }
  })
