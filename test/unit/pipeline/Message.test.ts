import { describe, expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import * as Message from "../../../src/pipeline/Message.ts"

const text = (b: Uint8Array) => new TextDecoder().decode(b)
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
})
