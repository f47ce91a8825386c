import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as StreamDecoder from "../../../src/protocol/StreamDecoder.ts"
import { bytes, split, text } from "./helpers.ts"

const make = () => StreamDecoder.make({ maxLineLength: 512, bareLineEndings: "normalize" })

type Shown = string | { content: string } | { end: boolean }

/** Drains every event, switching modes the way the session would on DATA and BDAT lines. */
const run = (chunks: ReadonlyArray<Uint8Array>): Array<Shown> => {
  const d = make()
  const out: Array<Shown> = []
  let content = ""
  const drain = () => {
    for (let e = d.next(); e !== undefined; e = d.next()) {
      if (e._tag === "Line") {
        out.push(e.line)
        const bdat = /^BDAT (\d+)( LAST)?$/.exec(e.line)
        if (e.line === "DATA") d.expectData()
        else if (bdat !== null) d.expectChunk(Number(bdat[1]), bdat[2] !== undefined, true)
      } else if (e._tag === "TooLong") out.push("(too long)")
      else if (e._tag === "Content") content += e.parts.map(text).join("")
      else {
        out.push({ content }, { end: e.bare })
        content = ""
      }
    }
  }
  for (const chunk of chunks) {
    d.push(chunk)
    drain()
  }
  return out
}

const session = "EHLO a\r\nMAIL FROM:<a@b>\r\nDATA\r\nHello\r\n..dot\r\n.\r\nBDAT 7\r\nab\ncd\r\nBDAT 0 LAST\r\nQUIT\r\n"
const expected: Array<Shown> = [
  "EHLO a",
  "MAIL FROM:<a@b>",
  "DATA",
  { content: "Hello\r\n.dot\r\n" },
  { end: false },
  "BDAT 7",
  { content: "ab\r\ncd\r\n" },
  { end: true },
  "BDAT 0 LAST",
  { content: "" },
  { end: true },
  "QUIT"
]

describe("StreamDecoder", () => {
  it("owns the byte stream across command lines, DATA content and BDAT chunks", () => {
    expect(run([bytes(session)])).toEqual(expected)
  })

  it("gives the same events however the bytes are cut", () => {
    fc.assert(fc.property(fc.array(fc.nat(session.length), { maxLength: 12 }), (cuts) => {
      expect(run(split(bytes(session), cuts))).toEqual(expected)
    }))
  })

  it("after DATA's final dot, reads what follows as commands (pipelined in the same packet)", () => {
    expect(run([bytes("DATA\r\nx\r\n.\r\nNOOP\r\nQUIT\r\n")])).toEqual(["DATA", { content: "x\r\n" }, { end: false }, "NOOP", "QUIT"])
  })

  it("consumes a chunk it is told not to keep, without handing its bytes to anyone", () => {
    const d = make()
    d.push(bytes("BDAT 5\r\nNOOP\r\nRSET\r\n"))
    expect(d.next()).toEqual({ _tag: "Line", line: "BDAT 5" })
    d.expectChunk(5, false, false)
    expect(d.next()).toEqual({ _tag: "ContentEnd", bare: false })
    // "NOOP\r" was the chunk: the next command is what follows it.
    expect(d.next()).toEqual({ _tag: "Line", line: "" })
    expect(d.next()).toEqual({ _tag: "Line", line: "RSET" })
  })

  it("drops everything buffered at STARTTLS: plaintext sent before the handshake is never a command", () => {
    const d = make()
    d.push(bytes("STARTTLS\r\nMAIL FROM:<evil@x>\r\nRCPT TO:<y@z>\r\n"))
    expect(d.next()).toEqual({ _tag: "Line", line: "STARTTLS" })
    d.discardBuffered()
    expect(d.next()).toBeUndefined()
    d.push(bytes("EHLO after\r\n"))
    expect(d.next()).toEqual({ _tag: "Line", line: "EHLO after" })
  })

  it("forgets a dropped BDAT message's line-ending state: a CR ending one chunk is not joined to the next message", () => {
    const d = make()
    d.expectChunk(2, false, true)
    d.push(bytes("a\r"))
    expect(d.next()).toEqual({ _tag: "Content", parts: [bytes("a\r")] })
    expect(d.next()).toEqual({ _tag: "ContentEnd", bare: false })
    d.dropMessage()
    d.expectChunk(2, true, true)
    d.push(bytes("\nb"))
    const content = d.next()
    expect(content?._tag === "Content" ? content.parts.map(text).join("") : content).toBe("\r\nb")
    expect(d.next()).toEqual({ _tag: "ContentEnd", bare: true })
  })

  it("ends the message at BDAT 0 LAST: a CR that ended the chunk before is bare and gets its LF", () => {
    expect(run([bytes("BDAT 3\r\nab\r"), bytes("BDAT 0 LAST\r\n")])).toEqual(["BDAT 3", { content: "ab\r" }, { end: false }, "BDAT 0 LAST", { content: "\n" }, { end: true }])
  })

  it("knows a line in progress only in command mode", () => {
    const d = make()
    d.push(bytes("EHL"))
    expect(d.next()).toBeUndefined()
    expect(d.midLine()).toBe(true)
    expect(d.mode()).toBe("command")
  })
})
