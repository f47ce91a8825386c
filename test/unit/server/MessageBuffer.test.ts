import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Message from "../../../src/pipeline/Message.ts"
import * as MessageBuffer from "../../../src/server/MessageBuffer.ts"

const root = fs.mkdtempSync(path.join(os.tmpdir(), "sb-buffer-"))
afterAll(() => fs.rmSync(root, { recursive: true, force: true }))

/** A fresh temporary directory per specification, to see exactly which files a buffer made. */
const freshDir = () => fs.mkdtempSync(path.join(root, "t-"))
const bytes = (s: string) => new TextEncoder().encode(s)
const text = (b: Uint8Array) => new TextDecoder().decode(b)

const appendAll = (buffer: MessageBuffer.MessageBuffer, parts: ReadonlyArray<string>) =>
  Effect.forEach(parts, (p) => buffer.append(bytes(p)), { discard: true })

const message = "Subject: hello\r\nX-Folded: one\r\n two\r\nFrom: <a@example.org>\r\n\r\nbody line 1\r\nbody line 2\r\n"

describe("MessageBuffer", () => {
  it.effect("keeps a message under the threshold in memory: no file is created", () =>
    Effect.gen(function*() {
      const dir = freshDir()
      const buffer = MessageBuffer.make({ threshold: 1024, maxSize: 10_000, tempDir: dir })
      yield* appendAll(buffer, [message.slice(0, 20), message.slice(20)])
      const content = yield* buffer.finish()
      expect(fs.readdirSync(dir)).toEqual([])
      expect(content.size).toBe(message.length)
      expect(text(yield* Message.collect(content.stream()))).toBe(message)
      yield* buffer.dispose
    }))

  it.effect("spills past the threshold to a private file in tempDir and reads back every byte", () =>
    Effect.gen(function*() {
      const dir = freshDir()
      const buffer = MessageBuffer.make({ threshold: 16, maxSize: 10_000, tempDir: dir })
      yield* buffer.append(bytes(message.slice(0, 10)))
      expect(fs.readdirSync(dir)).toEqual([])
      yield* buffer.append(bytes(message.slice(10, 40)))
      const files = fs.readdirSync(dir)
      expect(files).toHaveLength(1)
      expect(files[0]).toMatch(/^smtp-bridge-\d+-[0-9a-f]+\.eml$/)
      expect(fs.statSync(path.join(dir, files[0]!)).mode & 0o777).toBe(0o600)
      yield* buffer.append(bytes(message.slice(40)))
      const content = yield* buffer.finish()
      expect(content.size).toBe(message.length)
      expect(text(yield* Message.collect(content.stream()))).toBe(message)
      // Re-readable: a second pass gives the same bytes.
      expect(text(yield* Message.collect(content.stream()))).toBe(message)
      yield* buffer.dispose
    }))

  it.effect("hands a message kept in memory out as chunks from any offset, and none once it spilled", () =>
    Effect.gen(function*() {
      const joined = (parts: ReadonlyArray<Uint8Array> | undefined) => parts === undefined ? undefined : parts.map(text).join("")
      const small = MessageBuffer.make({ threshold: 1024, maxSize: 10_000, tempDir: freshDir() })
      yield* appendAll(small, ["0123", "4567", "89ab"])
      const inMemory = yield* small.finish()
      for (const start of [0, 1, 4, 5, 11, 12]) expect(joined(inMemory.inMemory?.(start))).toBe("0123456789ab".slice(start))
      yield* small.dispose
      const spilled = MessageBuffer.make({ threshold: 4, maxSize: 10_000, tempDir: freshDir() })
      yield* appendAll(spilled, ["0123", "4567", "89ab"])
      expect((yield* spilled.finish()).inMemory?.()).toBeUndefined()
      yield* spilled.dispose
    }))

  it.effect("does not keep a view of the caller's chunk, which the socket may reuse", () =>
    Effect.gen(function*() {
      const buffer = MessageBuffer.make({ threshold: 1024, maxSize: 10_000, tempDir: freshDir() })
      const chunk = bytes("Subject: a\r\n\r\nxyz\r\n")
      yield* buffer.append(chunk)
      chunk.fill(0x21)
      const content = yield* buffer.finish()
      expect(text(yield* Message.collect(content.stream()))).toBe("Subject: a\r\n\r\nxyz\r\n")
      yield* buffer.dispose
    }))

  for (const [where, threshold] of [["in memory", 1 << 20], ["after a spill", 8]] as const) {
    it.effect(`parses the header fields and finds bodyOffset at the blank line (${where})`, () =>
      Effect.gen(function*() {
        const buffer = MessageBuffer.make({ threshold, maxSize: 10_000, tempDir: freshDir() })
        yield* appendAll(buffer, Array.from(message, (ch) => ch))
        const content = yield* buffer.finish()
        expect(content.headers.map((h) => [h.name, h.value])).toEqual([
          ["Subject", "hello"],
          ["X-Folded", "one two"],
          ["From", "<a@example.org>"]
        ])
        expect(content.headers[1]!.raw).toBe("X-Folded: one\r\n two\r\n")
        expect(content.bodyOffset).toBe(message.indexOf("\r\n\r\n") + 2)
        expect(text(yield* Message.collect(content.stream(content.bodyOffset)))).toBe("\r\nbody line 1\r\nbody line 2\r\n")
        yield* buffer.dispose
      }))

    it.effect(`streams from any start offset, across chunk boundaries (${where})`, () =>
      Effect.gen(function*() {
        const buffer = MessageBuffer.make({ threshold, maxSize: 10_000, tempDir: freshDir() })
        yield* appendAll(buffer, ["0123", "4567", "89ab", "cdef"])
        const content = yield* buffer.finish()
        for (const start of [0, 1, 4, 5, 11, 15, 16]) {
          expect(text(yield* Message.collect(content.stream(start)))).toBe("0123456789abcdef".slice(start))
        }
        yield* buffer.dispose
      }))
  }

  it.effect("gives no headers and bodyOffset 0 to a message that starts with the blank line", () =>
    Effect.gen(function*() {
      const buffer = MessageBuffer.make({ threshold: 1024, maxSize: 10_000, tempDir: freshDir() })
      yield* buffer.append(bytes("\r\njust a body\r\n"))
      const content = yield* buffer.finish()
      expect(content.headers).toEqual([])
      expect(content.bodyOffset).toBe(0)
      yield* buffer.dispose
    }))

  it.effect("takes a message without a blank line as all header, bodyOffset at its end", () =>
    Effect.gen(function*() {
      const buffer = MessageBuffer.make({ threshold: 1024, maxSize: 10_000, tempDir: freshDir() })
      yield* buffer.append(bytes("Subject: only\r\n"))
      const content = yield* buffer.finish()
      expect(content.headers.map((h) => h.name)).toEqual(["Subject"])
      expect(content.bodyOffset).toBe(content.size)
      yield* buffer.dispose
    }))

  for (const [name, input, bodyOffset, names] of [
    ["text without any header field", "hello world\r\nsecond line\r\n", 0, []],
    ["a line without a colon after a field", "Subject: x\r\nnot a header line\r\n\r\nbody\r\n", 12, ["Subject"]],
    ["a first line that looks folded", " indented\r\nSubject: x\r\n\r\n", 0, []],
    ["a colon with no field name", ": odd\r\n\r\nbody\r\n", 0, []]
  ] as const) {
    it.effect(`ends the header section before the first line that is not a field: ${name}`, () =>
      Effect.gen(function*() {
        const buffer = MessageBuffer.make({ threshold: 1024, maxSize: 10_000, tempDir: freshDir() })
        yield* buffer.append(bytes(input))
        const content = yield* buffer.finish()
        expect(content.bodyOffset).toBe(bodyOffset)
        expect(content.headers.map((h) => h.name)).toEqual(names)
        // A header added by a data hook must not cost the message a single line.
        const rendered = Message.render(content, { added: [{ name: "X-Added", value: "1" }], removed: [] })
        expect(text(yield* Message.collect(rendered))).toBe(`X-Added: 1\r\n${input}`)
        yield* buffer.dispose
      }))
  }

  it.effect("counts bytes past maxSize without storing them, in memory or on disk", () =>
    Effect.gen(function*() {
      const dir = freshDir()
      const buffer = MessageBuffer.make({ threshold: 10, maxSize: 50, tempDir: dir })
      yield* buffer.append(new Uint8Array(40).fill(0x61))
      expect(buffer.tooBig()).toBe(false)
      const file = path.join(dir, fs.readdirSync(dir)[0]!)
      for (let i = 0; i < 100; i++) yield* buffer.append(new Uint8Array(1000).fill(0x62))
      expect(buffer.size()).toBe(40 + 100 * 1000)
      expect(buffer.tooBig()).toBe(true)
      expect(fs.statSync(file).size).toBe(40)
      const content = yield* buffer.finish()
      expect(content.size).toBe(40)
      yield* buffer.dispose
    }))

  it.effect("is not too big at exactly maxSize", () =>
    Effect.gen(function*() {
      const buffer = MessageBuffer.make({ threshold: 1024, maxSize: 50, tempDir: freshDir() })
      yield* buffer.append(new Uint8Array(50))
      expect(buffer.tooBig()).toBe(false)
      yield* buffer.append(new Uint8Array(1))
      expect(buffer.tooBig()).toBe(true)
      yield* buffer.dispose
    }))

  it.effect("deletes the spill file on dispose, before or after finish, and tolerates a second dispose", () =>
    Effect.gen(function*() {
      const dir = freshDir()
      const unfinished = MessageBuffer.make({ threshold: 4, maxSize: 10_000, tempDir: dir })
      yield* unfinished.append(bytes("more than four bytes"))
      expect(fs.readdirSync(dir)).toHaveLength(1)
      yield* unfinished.dispose
      expect(fs.readdirSync(dir)).toEqual([])

      const finished = MessageBuffer.make({ threshold: 4, maxSize: 10_000, tempDir: dir })
      yield* finished.append(bytes("more than four bytes"))
      yield* finished.finish()
      yield* finished.dispose
      yield* finished.dispose
      expect(fs.readdirSync(dir)).toEqual([])
    }))

  it.effect("fails with MessageError when the spill directory does not exist", () =>
    Effect.gen(function*() {
      const buffer = MessageBuffer.make({ threshold: 4, maxSize: 10_000, tempDir: path.join(root, "missing") })
      const error = yield* Effect.flip(buffer.append(bytes("more than four bytes")))
      expect(error).toBeInstanceOf(Message.MessageError)
      expect(error.reason).toBe("Write")
      yield* buffer.dispose
    }))
})
