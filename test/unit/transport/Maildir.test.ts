import { describe, expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { MessageError } from "../../../src/pipeline/Message.ts"
import * as Notes from "../../../src/pipeline/Notes.ts"
import type { Mailbox, Recipient } from "../../../src/protocol/Envelope.ts"
import type { OutgoingMessage } from "../../../src/transport/Transport.ts"
import * as Maildir from "../../../src/transport/Maildir.ts"

const encoder = new TextEncoder()

const mailbox = (address: string): Mailbox => {
  const at = address.lastIndexOf("@")
  return { local: address.slice(0, at), domain: address.slice(at + 1), address }
}
const recipient = (address: string): Recipient => ({ mailbox: mailbox(address), params: { raw: {} } })

const message = (
  chunks: ReadonlyArray<string>,
  options: { readonly from?: string | null; readonly fail?: boolean } = {}
): OutgoingMessage => {
  const bytes = chunks.map((c) => encoder.encode(c))
  const content = Stream.fromIterable(bytes)
  return {
    id: "T1",
    envelope: {
      mailFrom: options.from === null ? null : mailbox(options.from ?? "alice@example.com"),
      mailParams: { raw: {} },
      recipients: [recipient("bob@example.org"), recipient("carol@example.org")]
    },
    session: {
      id: "S1", remoteAddress: "127.0.0.1", remotePort: 40000, localAddress: "127.0.0.1", localPort: 2525,
      hostname: "mx.test", tls: undefined, helo: undefined, user: undefined, authMechanism: undefined,
      notes: Notes.make()
    },
    size: bytes.reduce((n, b) => n + b.byteLength, 0),
    content: () =>
      options.fail
        ? Stream.concat(content, Stream.fail(new MessageError({ reason: "Read", message: "spill file vanished" })))
        : content
  }
}

const tempDir = Effect.acquireRelease(
  Effect.promise(() => Fs.mkdtemp(Path.join(Os.tmpdir(), "maildir-test-"))),
  (dir) => Effect.promise(() => Fs.rm(dir, { recursive: true, force: true }))
)

const list = (dir: string, sub: string) => Effect.promise(() => Fs.readdir(Path.join(dir, sub)))

describe("Maildir", () => {
  it.scoped("creates tmp, new and cur with mode 0700", () =>
    Effect.gen(function*() {
      const root = Path.join(yield* tempDir, "box")
      const transport = yield* Maildir.make({ dir: root })
      expect(transport.name).toBe("maildir")
      for (const sub of ["tmp", "new", "cur"]) {
        const stat = yield* Effect.promise(() => Fs.stat(Path.join(root, sub)))
        expect(stat.isDirectory()).toBe(true)
        if (process.platform !== "win32") expect(stat.mode & 0o777).toBe(0o700)
      }
    }))

  it.scoped("writes one file into new/ with Return-Path, Delivered-To and the streamed message, and answers 250 2.0.0 per recipient", () =>
    Effect.gen(function*() {
      const root = yield* tempDir
      const transport = yield* Maildir.make({ dir: root })
      const report = yield* transport.deliver(message(["Subject: hi\r\n", "\r\n", "line one\r\n", "line two\r\n"]))

      expect(report.recipients.map((r) => [r.recipient.mailbox.address, r.reply])).toEqual([
        ["bob@example.org", { code: 250, enhanced: "2.0.0", lines: ["Ok"] }],
        ["carol@example.org", { code: 250, enhanced: "2.0.0", lines: ["Ok"] }]
      ])
      const files = yield* list(root, "new")
      expect(files).toHaveLength(1)
      expect(yield* list(root, "tmp")).toEqual([])

      const text = yield* Effect.promise(() => Fs.readFile(Path.join(root, "new", files[0]!), "utf8"))
      expect(text).toBe(
        "Return-Path: <alice@example.com>\r\n" +
          "Delivered-To: bob@example.org\r\n" +
          "Delivered-To: carol@example.org\r\n" +
          "Subject: hi\r\n\r\nline one\r\nline two\r\n"
      )
      expect(files[0]).toMatch(/^\d+\.M\d+P\d+Q\d+R[0-9a-f]{16}\.[^/:]+,S=\d+$/)
      expect(files[0]!.endsWith(`,S=${Buffer.byteLength(text)}`)).toBe(true)
    }))

  it.scoped("writes Return-Path: <> for the null reverse-path", () =>
    Effect.gen(function*() {
      const root = yield* tempDir
      const transport = yield* Maildir.make({ dir: root })
      yield* transport.deliver(message(["Subject: bounce\r\n\r\n"], { from: null }))
      const [file] = yield* list(root, "new")
      const text = yield* Effect.promise(() => Fs.readFile(Path.join(root, "new", file!), "utf8"))
      expect(text.startsWith("Return-Path: <>\r\n")).toBe(true)
    }))

  it.scoped("gives every message its own file name", () =>
    Effect.gen(function*() {
      const root = yield* tempDir
      const transport = yield* Maildir.make({ dir: root })
      yield* Effect.all(Array.from({ length: 20 }, () => transport.deliver(message(["x\r\n"]))), { concurrency: 20 })
      expect(yield* list(root, "new")).toHaveLength(20)
    }))

  it.scoped("fails with Storage and leaves nothing in new/ or tmp/ when the content stream fails", () =>
    Effect.gen(function*() {
      const root = yield* tempDir
      const transport = yield* Maildir.make({ dir: root })
      const error = yield* Effect.flip(transport.deliver(message(["Subject: hi\r\n", "\r\n"], { fail: true })))
      expect(error._tag).toBe("TransportError")
      expect(error.reason).toBe("Storage")
      expect(error.transport).toBe("maildir")
      expect(error.message).toContain("spill file vanished")
      expect(yield* list(root, "new")).toEqual([])
      expect(yield* list(root, "tmp")).toEqual([])
    }))

  it.scoped("fails with Storage when tmp/ is not writable", () =>
    Effect.gen(function*() {
      const root = yield* tempDir
      const transport = yield* Maildir.make({ dir: root })
      yield* Effect.promise(() => Fs.rm(Path.join(root, "tmp"), { recursive: true }))
      const error = yield* Effect.flip(transport.deliver(message(["x\r\n"])))
      expect(error.reason).toBe("Storage")
      expect(error.message).toMatch(/^Maildir .*: could not create a file in tmp: /)
      expect(yield* list(root, "new")).toEqual([])
    }))

  it.scoped("fails with Storage when the Maildir cannot be created", () =>
    Effect.gen(function*() {
      const root = yield* tempDir
      const file = Path.join(root, "plain-file")
      yield* Effect.promise(() => Fs.writeFile(file, "not a directory"))
      const error = yield* Effect.flip(Maildir.make({ dir: file }))
      expect(error.reason).toBe("Storage")
      expect(error.message).toContain("could not create tmp/")
    }))
})
