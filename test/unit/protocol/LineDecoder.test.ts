import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as LineDecoder from "../../../src/protocol/LineDecoder.ts"
import { bytes, cuts, framingBytes, split, text, utf8 } from "./helpers.ts"

const drain = (decoder: LineDecoder.LineDecoder): Array<LineDecoder.LineEvent> => {
  const events: Array<LineDecoder.LineEvent> = []
  for (let e = decoder.next(); e !== undefined; e = decoder.next()) events.push(e)
  return events
}

const decodeChunks = (chunks: ReadonlyArray<Uint8Array>, max = 512) => {
  const decoder = LineDecoder.make(max)
  const events: Array<LineDecoder.LineEvent> = []
  for (const chunk of chunks) {
    decoder.push(chunk)
    events.push(...drain(decoder))
  }
  return { events, remaining: text(decoder.takeRemaining()) }
}

const line = (l: string): LineDecoder.LineEvent => ({ _tag: "Line", line: l })
const tooLong: LineDecoder.LineEvent = { _tag: "TooLong" }

describe("LineDecoder", () => {
  it("splits CRLF-terminated lines and strips the terminator", () => {
    expect(decodeChunks([bytes("EHLO a\r\nNOOP\r\n")]).events).toEqual([line("EHLO a"), line("NOOP")])
  })

  it("tolerates LF-only terminators in command mode", () => {
    expect(decodeChunks([bytes("EHLO a\nNOOP\n")]).events).toEqual([line("EHLO a"), line("NOOP")])
  })

  it("strips only one CR, leaving the rest for the command parser to refuse", () => {
    expect(decodeChunks([bytes("NOOP\r\r\n")]).events).toEqual([line("NOOP\r")])
  })

  it("keeps a bare CR inside a line", () => {
    expect(decodeChunks([bytes("NOOP\rQUIT\r\n")]).events).toEqual([line("NOOP\rQUIT")])
  })

  it("waits for the LF of an incomplete line", () => {
    const decoder = LineDecoder.make(512)
    decoder.push(bytes("EHL"))
    expect(decoder.next()).toBeUndefined()
    decoder.push(bytes("O a\r"))
    expect(decoder.next()).toBeUndefined()
    decoder.push(bytes("\n"))
    expect(decoder.next()).toEqual(line("EHLO a"))
    expect(decoder.buffered()).toBe(0)
  })

  it("says a line has begun from its first byte until it ends, and while an overlong one is skipped", () => {
    const decoder = LineDecoder.make(16)
    expect(decoder.midLine()).toBe(false)
    decoder.push(utf8("N"))
    expect(decoder.next()).toBeUndefined()
    expect(decoder.midLine()).toBe(true)
    decoder.push(utf8("OOP\r\n"))
    expect(drain(decoder)).toEqual([{ _tag: "Line", line: "NOOP" }])
    expect(decoder.midLine()).toBe(false)
    decoder.push(utf8("x".repeat(20)))
    expect(drain(decoder)).toEqual([{ _tag: "TooLong" }])
    expect(decoder.midLine()).toBe(true)
    decoder.push(utf8("xx\r\n"))
    expect(drain(decoder)).toEqual([])
    expect(decoder.midLine()).toBe(false)
  })

  it("decodes UTF-8, even when a character is split across chunks", () => {
    const bytesOf = utf8("RCPT TO:<jöhn@例え.jp>\r\n")
    expect(decodeChunks([bytesOf.subarray(0, 11), bytesOf.subarray(11)]).events).toEqual([line("RCPT TO:<jöhn@例え.jp>")])
  })

  it("decodes invalid UTF-8 as U+FFFD", () => {
    expect(decodeChunks([Uint8Array.of(0x41, 0xff, 0x0d, 0x0a)]).events).toEqual([line("A\ufffd")])
  })

  describe("line length", () => {
    it("accepts a line of exactly the limit, terminator included", () => {
      expect(decodeChunks([bytes("x".repeat(8) + "\r\n")], 10).events).toEqual([line("x".repeat(8))])
    })

    it("reports one TooLong for a line one byte over the limit and resumes at the next line", () => {
      expect(decodeChunks([bytes("x".repeat(9) + "\r\nNOOP\r\n")], 10).events).toEqual([tooLong, line("NOOP")])
    })

    it("reports one TooLong for a long line arriving in many chunks", () => {
      const chunks = [...Array.from({ length: 20 }, () => bytes("xxxxxxx")), bytes("\r\nQUIT\r\n")]
      expect(decodeChunks(chunks, 10).events).toEqual([tooLong, line("QUIT")])
    })

    it("holds at most the limit while a 10 MB line streams in", () => {
      const decoder = LineDecoder.make(512)
      const chunk = new Uint8Array(65536).fill(0x41)
      const events: Array<LineDecoder.LineEvent> = []
      for (let i = 0; i < 160; i++) {
        decoder.push(chunk)
        events.push(...drain(decoder))
        expect(decoder.buffered()).toBeLessThanOrEqual(512)
      }
      decoder.push(bytes("\r\nQUIT\r\n"))
      events.push(...drain(decoder))
      expect(events).toEqual([tooLong, line("QUIT")])
    })
  })

  describe("takeRemaining", () => {
    it("hands over the bytes pipelined after DATA and forgets them", () => {
      const decoder = LineDecoder.make(512)
      decoder.push(bytes("DATA\r\nSubject: x\r\n\r\nbody"))
      expect(decoder.next()).toEqual(line("DATA"))
      expect(text(decoder.takeRemaining())).toBe("Subject: x\r\n\r\nbody")
      expect(decoder.buffered()).toBe(0)
      expect(decoder.next()).toBeUndefined()
    })

    it("includes an incomplete line already scanned, and chunks not yet scanned", () => {
      const decoder = LineDecoder.make(512)
      decoder.push(bytes("STARTTLS\r\nMAIL FR"))
      expect(decoder.next()).toEqual(line("STARTTLS"))
      expect(decoder.next()).toBeUndefined()
      decoder.push(bytes("OM:<a@b>\r\n"))
      decoder.push(bytes("RCPT TO:<c@d>\r\n"))
      expect(decoder.buffered()).toBe(32)
      expect(text(decoder.takeRemaining())).toBe("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n")
      expect(decoder.buffered()).toBe(0)
    })

    it("never returns the rest of an overlong line being discarded", () => {
      const decoder = LineDecoder.make(10)
      decoder.push(bytes("x".repeat(20)))
      expect(decoder.next()).toEqual(tooLong)
      decoder.push(bytes("yyy\r\nNOOP\r\n"))
      expect(text(decoder.takeRemaining())).toBe("NOOP\r\n")
    })

    it("returns an empty array when nothing is buffered", () => {
      expect(LineDecoder.make(512).takeRemaining()).toHaveLength(0)
    })
  })

  it("gives the same events and remainder whatever the chunk boundaries", () => {
    fc.assert(
      fc.property(framingBytes(300), cuts, fc.integer({ min: 1, max: 40 }), (input, points, max) => {
        expect(decodeChunks(split(input, points), max)).toEqual(decodeChunks([input], max))
      }),
      { numRuns: 500 }
    )
  })

  it("never holds more than the limit after draining", () => {
    fc.assert(
      fc.property(framingBytes(300), cuts, fc.integer({ min: 1, max: 40 }), (input, points, max) => {
        const decoder = LineDecoder.make(max)
        for (const chunk of split(input, points)) {
          decoder.push(chunk)
          drain(decoder)
          expect(decoder.buffered()).toBeLessThan(max)
        }
      }),
      { numRuns: 300 }
    )
  })

  it("reports the bytes of an overlong line as it skips them, and nothing else", () => {
    const skipped: Array<number> = []
    const decoder = LineDecoder.make(16, (n) => skipped.push(n))
    decoder.push(bytes("EHLO a\r\n"))
    expect(drain(decoder)).toEqual([{ _tag: "Line", line: "EHLO a" }])
    decoder.push(bytes("x".repeat(40)))
    expect(drain(decoder)).toEqual([{ _tag: "TooLong" }])
    decoder.push(bytes("y".repeat(100)))
    decoder.push(bytes("zz\r\nNOOP\r\n"))
    expect(drain(decoder)).toEqual([{ _tag: "Line", line: "NOOP" }])
    // The 40 bytes that made it too long, the 100 after them, and "zz\r\n" up to its LF.
    expect(skipped.reduce((a, b) => a + b, 0)).toBe(40 + 100 + 4)
    expect(decoder.discarded()).toBe(40 + 100 + 4)
  })
})
