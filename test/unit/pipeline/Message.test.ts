import { describe, expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import * as Message from "../../../src/pipeline/Message.ts"

const text = (b: Uint8Array) => new TextDecoder().decode(b)
const text2 = (b: Uint8Array) => Buffer.from(b).toString("latin1")
const raw = "Subject: hi\r\nX-Drop: yes\r\nFrom: <a@example.org>\r\n\r\nbody\r\n"

/** A message as the buffer gives it: in memory (chunks available) or not (stream only). */
const content = (inMemory: boolean): Message.Content => {
  const bytes = new TextEncoder().encode(raw)
  const bodyOffset = raw.indexOf("\r\n\r\n") + 2
  const parts = (start = 0) => [bytes.subarray(start, 20 > start ? 20 : start), bytes.subarray(20 > start ? 20 : start)]
  return {
    size: bytes.byteLength,
    headers: Message.parseHeaders(bytes.subarray(0, bodyOffset)),
    bodyOffset,
    stream: (start = 0) => Stream.fromIterable(parts(start)),
    ...(inMemory ? { inMemory: parts } : {})
  }
}

const edits: ReadonlyArray<[string, Message.Edits]> = [
  ["no edits", Message.emptyEdits],
  ["an added and a removed field", { added: [{ name: "Received", value: "from x by y" }], removed: [(h) => h.name === "X-Drop"] }]
]

describe("Message rendering", () => {
  for (const [name, e] of edits) {
    it.effect(`gives the same bytes in memory as streamed, with ${name}`, () =>
      Effect.gen(function*() {
        const streamed = text(yield* Message.collect(Message.render(content(true), e)))
        const chunks = Message.renderInMemory(content(true), e)
        expect(chunks?.map(text).join("")).toBe(streamed)
        expect(streamed.length).toBe(Message.renderedSize(content(true), e))
      }))
  }

  it("has no chunks for a message that is not in memory", () => {
    expect(Message.renderInMemory(content(false), Message.emptyEdits)).toBeUndefined()
  })

  it.effect("gives the body in memory as bodyOf streams it, however the chunks split the blank line", () =>
    Effect.gen(function*() {
      const cases = ["A: b\r\n\r\nbody\r\nmore\r\n", "A: b\r\n\r\n", "A: b\r\nnot a field\r\n\r\nx", "A: b\r\n\r\n\r\nx\r"]
      for (const text of cases) {
        const bytes = new TextEncoder().encode(text)
        const headEnd = text.indexOf("\r\n") + 2
        for (let cut = headEnd; cut <= bytes.byteLength; cut++) {
          const parts = (start = 0) => [bytes.subarray(start, Math.max(start, cut)), bytes.subarray(Math.max(start, cut))]
          const c: Message.Content = {
            size: bytes.byteLength,
            headers: Message.parseHeaders(bytes.subarray(0, headEnd)),
            bodyOffset: headEnd,
            stream: (start = 0) => Stream.fromIterable(parts(start)),
            inMemory: parts
          }
          const streamed = text2(yield* Message.collect(Message.bodyOf(c)))
          // Twice: the stream keeps no state between runs.
          expect(text2(yield* Message.collect(Message.bodyOf(c)))).toBe(streamed)
          expect(Message.bodyInMemory(c)?.map(text2).join("")).toBe(streamed)
          expect(streamed).toBe(text.slice(headEnd).replace(/^\r\n/, ""))
        }
      }
      expect(Message.bodyInMemory(content(false))).toBeUndefined()
    }))
})

describe("Message header bytes", () => {
  const octets = (b: Uint8Array) => Buffer.from(b).toString("latin1")
  // Latin-1 8-bit, an overlong "." (C0 AE), a lone continuation byte, a folded field, a field whose
  // last line has no CRLF of its own.
  const head = Buffer.concat([
    Buffer.from("Subject: caf\xe9\r\nX-Overlong: \xc0\xae\x80\r\nX-Folded: a\r\n\t\xff b\r\nX-Drop: \xfe\r\n", "latin1")
  ])

  it("keeps each field's exact bytes and decodes names and values for reading", () => {
    const headers = Message.parseHeaders(head)
    expect(headers.map((h) => octets(h.bytes))).toEqual([
      "Subject: caf\xe9\r\n",
      "X-Overlong: \xc0\xae\x80\r\n",
      "X-Folded: a\r\n\t\xff b\r\n",
      "X-Drop: \xfe\r\n"
    ])
    expect(headers.map((h) => h.name)).toEqual(["Subject", "X-Overlong", "X-Folded", "X-Drop"])
    expect(headers[0]!.value).toBe("caf\uFFFD")
    expect(headers[2]!.value).toBe("a\t\uFFFD b")
  })

  it("gives a last field without its CRLF one", () => {
    expect(Message.parseHeaders(Buffer.from("A: 1\r\nB: \xe9", "latin1")).map((h) => octets(h.bytes))).toEqual(["A: 1\r\n", "B: \xe9\r\n"])
  })

  it.effect("renders an added field on top and the kept fields byte for byte, with the size it announces", () =>
    Effect.gen(function*() {
      const body = Buffer.from("\r\nbody \x85\r\n", "latin1")
      const bytes = Buffer.concat([head, body])
      const message: Message.Content = {
        size: bytes.byteLength,
        headers: Message.parseHeaders(bytes.subarray(0, head.byteLength)),
        bodyOffset: head.byteLength,
        stream: (start = 0) => Stream.succeed(bytes.subarray(start))
      }
      const e: Message.Edits = { added: [{ name: "Received", value: "from x by y" }], removed: [(h) => h.name === "X-Drop"] }
      const rendered = yield* Message.collect(Message.render(message, e))
      expect(octets(rendered)).toBe(
        "Received: from x by y\r\nSubject: caf\xe9\r\nX-Overlong: \xc0\xae\x80\r\nX-Folded: a\r\n\t\xff b\r\n\r\nbody \x85\r\n"
      )
      expect(Message.renderedSize(message, e)).toBe(rendered.byteLength)
    }))
})
