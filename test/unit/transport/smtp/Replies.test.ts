import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import * as Replies from "../../../../src/transport/smtp/Replies.ts"

const bytes = (s: string) => new TextEncoder().encode(s)
const feedAll = (reader: Replies.Reader, ...chunks: ReadonlyArray<string>) =>
  chunks.flatMap((c) => Either.getOrThrow(reader.feed(bytes(c))))

describe("upstream reply reader", () => {
  it("reads 250 2.1.0 Ok with its enhanced code", () => {
    expect(feedAll(Replies.makeReader(), "250 2.1.0 Ok\r\n")).toEqual([{ code: 250, enhanced: "2.1.0", lines: ["Ok"] }])
  })

  it("joins a multi-line EHLO reply into one reply", () => {
    const [ehlo] = feedAll(Replies.makeReader(), "250-mx.example\r\n250-PIPELINING\r\n250 SIZE 1000\r\n")
    expect(ehlo).toEqual({ code: 250, enhanced: undefined, lines: ["mx.example", "PIPELINING", "SIZE 1000"] })
  })

  it("finds replies split across chunks and several replies in one chunk (pipelining)", () => {
    const reader = Replies.makeReader()
    expect(feedAll(reader, "25", "0 2.1.0 Ok\r", "\n250 2.1.5 Ok\r\n354 End data\r\n")).toEqual([
      { code: 250, enhanced: "2.1.0", lines: ["Ok"] },
      { code: 250, enhanced: "2.1.5", lines: ["Ok"] },
      { code: 354, enhanced: undefined, lines: ["End data"] }
    ])
    expect(reader.partial()).toBe(false)
  })

  it("takes the enhanced code off every line of 550-5.1.1 multi-line replies", () => {
    expect(feedAll(Replies.makeReader(), "550-5.1.1 No such user\r\n550 5.1.1 here\r\n")).toEqual([
      { code: 550, enhanced: "5.1.1", lines: ["No such user", "here"] }
    ])
  })

  it("ignores an enhanced code whose class differs from the reply's", () => {
    expect(feedAll(Replies.makeReader(), "250 5.1.1 odd\r\n")).toEqual([{ code: 250, enhanced: undefined, lines: ["5.1.1 odd"] }])
  })

  it("accepts a bare code and a bare LF", () => {
    expect(feedAll(Replies.makeReader(), "250\n")).toEqual([{ code: 250, enhanced: undefined, lines: [""] }])
  })

  it("refuses a line that is not a reply, a code change mid-reply and an endless line", () => {
    expect(Either.isLeft(Replies.makeReader().feed(bytes("HTTP/1.1 400 Bad\r\n")))).toBe(true)
    expect(Either.isLeft(Replies.makeReader().feed(bytes("250-a\r\n550 b\r\n")))).toBe(true)
    const reader = Replies.makeReader({ maxLineLength: 16, maxLines: 4 })
    expect(Either.isLeft(reader.feed(bytes("250 " + "x".repeat(40))))).toBe(true)
  })
})
