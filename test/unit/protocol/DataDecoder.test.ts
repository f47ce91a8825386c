import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as DataDecoder from "../../../src/protocol/DataDecoder.ts"
import { reference } from "../../support/dataReference.ts"
import { bytes, concat, cuts, framingBytes, hasOnlyCrlf, split, text } from "./helpers.ts"

interface Decoded {
  readonly output: string
  readonly done: boolean
  readonly rest: string
  readonly bare: boolean
}

/** Feeds chunks until done; `rest` is the remainder of the final chunk plus the chunks never fed. */
const decodeChunks = (chunks: ReadonlyArray<Uint8Array>, policy: "normalize" | "reject" = "normalize"): Decoded => {
  const decoder = DataDecoder.make({ bareLineEndings: policy })
  const output: Array<Uint8Array> = []
  let bare = false
  for (let i = 0; i < chunks.length; i++) {
    const result = decoder.decode(chunks[i]!)
    output.push(...result.output)
    bare = bare || result.bare
    if (result.done) {
      return { output: text(concat(output)), done: true, rest: text(concat([result.rest, ...chunks.slice(i + 1)])), bare }
    }
  }
  return { output: text(concat(output)), done: false, rest: "", bare }
}

const decode = (input: string): Decoded => decodeChunks([bytes(input)])
const byteByByte = (input: string): Decoded => decodeChunks(Array.from(bytes(input), (b) => Uint8Array.of(b)))

describe("DataDecoder", () => {
  describe("end of data", () => {
    it("ends at CRLF.CRLF and keeps the CRLF before the dot in the message", () => {
      expect(decode("Hello\r\n.\r\n")).toEqual({ output: "Hello\r\n", done: true, rest: "", bare: false })
    })

    it("treats .CRLF as the very first line as an empty message", () => {
      expect(decode(".\r\n")).toEqual({ output: "", done: true, rest: "", bare: false })
    })

    it("returns the bytes pipelined after the terminator as rest", () => {
      expect(decode("Hi\r\n.\r\nQUIT\r\n")).toEqual({ output: "Hi\r\n", done: true, rest: "QUIT\r\n", bare: false })
    })

    it("is not done before the terminator arrives", () => {
      expect(decode("Hi\r\n.\r")).toEqual({ output: "Hi\r\n", done: false, rest: "", bare: false })
    })

    it("finds the terminator split one byte per chunk", () => {
      expect(byteByByte("a\r\nb\r\n.\r\nNOOP\r\n")).toEqual({ output: "a\r\nb\r\n", done: true, rest: "NOOP\r\n", bare: false })
    })

    it("throws when decode is called after the end of data", () => {
      const decoder = DataDecoder.make({ bareLineEndings: "reject" })
      decoder.decode(bytes(".\r\n"))
      expect(() => decoder.decode(bytes("x"))).toThrow(new Error("DataDecoder.decode called after the end of data"))
    })
  })

  describe("dot-unstuffing", () => {
    it("removes one leading dot from a line", () => {
      expect(decode("..\r\n...x\r\n.y\r\n.\r\n").output).toBe(".\r\n..x\r\ny\r\n")
    })

    it("removes a leading dot on the first line of the data", () => {
      expect(decode("..hidden\r\n.\r\n").output).toBe(".hidden\r\n")
    })

    it("leaves dots in the middle of a line alone", () => {
      expect(decode("a.b\r\n a.\r\n.\r\n").output).toBe("a.b\r\n a.\r\n")
    })
  })

  describe("smuggling vectors are content, never a terminator, and leave no bare CR or LF", () => {
    const vectors: ReadonlyArray<readonly [string, string]> = [
      ["LF . LF", "\n.\n"],
      ["LF . CRLF", "\n.\r\n"],
      ["CRLF . LF", "\r\n.\n"],
      ["CR . CRLF", "\r.\r\n"],
      ["CRLF . CR", "\r\n.\r"],
      ["CR . CR", "\r.\r"],
      ["LF . CR", "\n.\r"],
      ["CRLF CR . LF", "\r\n\r.\n"],
      ["CRLF . NUL CRLF", "\r\n.\x00\r\n"],
      ["CRLF SP . CRLF", "\r\n .\r\n"],
      ["CRLF . CR CR LF", "\r\n.\r\r\n"]
    ]
    const smuggled = "MAIL FROM:<attacker@evil.example>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\nForged\r\n"

    for (const [name, vector] of vectors) {
      it(`does not end the data at ${name}`, () => {
        for (const prefix of ["Subject: hi\r\n\r\nbody", ""]) {
          const input = prefix + vector + smuggled + ".\r\n"
          for (const result of [decode(input), byteByByte(input)]) {
            expect(result.done).toBe(true)
            expect(result.rest).toBe("")
            // Exactly what the independent reference makes of it: no byte dropped, added or moved.
            expect(result.output).toBe(reference(input))
            expect(result.output).toContain("MAIL FROM:<attacker@evil.example>\r\n")
            expect(hasOnlyCrlf(bytes(result.output))).toBe(true)
            expect(result.bare).toBe(vector !== "\r\n.\x00\r\n" && vector !== "\r\n .\r\n")
          }
        }
      })
    }

    it("writes LF.LF as a CRLF-delimited \".\" line of content, for the relay to dot-stuff", () => {
      expect(decode("a\n.\nb\r\n.\r\n")).toEqual({ output: "a\r\n.\r\nb\r\n", done: true, rest: "", bare: true })
    })

    it("writes a bare CR as CRLF without treating what follows as a line start", () => {
      expect(decode("a\r.b\r\n.\r\n").output).toBe("a\r\n.b\r\n")
    })

    it("unstuffs the dot of a CRLF-started line even when a bare LF follows it", () => {
      expect(decode("a\r\n.\nb\r\n.\r\n")).toEqual({ output: "a\r\n\r\nb\r\n", done: true, rest: "", bare: true })
    })

    it("normalizes the same way under the reject policy and reports bare", () => {
      expect(decodeChunks([bytes("a\nb\r\n.\r\n")], "reject")).toEqual({ output: "a\r\nb\r\n", done: true, rest: "", bare: true })
    })

    it("reports bare cumulatively for the message", () => {
      const decoder = DataDecoder.make({ bareLineEndings: "reject" })
      expect(decoder.decode(bytes("a\nb")).bare).toBe(true)
      expect(decoder.decode(bytes("\r\n.\r\n")).bare).toBe(true)
    })
  })

  describe("streaming", () => {
    it("returns views of the input chunk for clean content instead of copying", () => {
      const chunk = bytes("line one\r\nline two\r\n")
      const result = DataDecoder.make({ bareLineEndings: "reject" }).decode(chunk)
      expect(result.output).toHaveLength(1)
      expect(result.output[0]!.buffer).toBe(chunk.buffer)
    })

    it("streams a 10 MB line in 64 KiB chunks without holding it", () => {
      const decoder = DataDecoder.make({ bareLineEndings: "reject" })
      const chunk = new Uint8Array(65536).fill(0x61)
      let total = 0
      for (let i = 0; i < 160; i++) {
        const result = decoder.decode(chunk)
        // Each call hands back exactly what it was given: nothing is buffered across calls.
        const size = result.output.reduce((n, o) => n + o.length, 0)
        expect(size).toBe(chunk.length)
        total += size
      }
      const end = decoder.decode(bytes("\r\n.\r\n"))
      expect(end.done).toBe(true)
      expect(total).toBe(160 * 65536)
    })

    it("decodes a 32 MB message of short lines in one pass", () => {
      const line = bytes("The quick brown fox jumps over the lazy dog.\r\n")
      const chunk = new Uint8Array(line.length * 20000)
      for (let i = 0; i < 20000; i++) chunk.set(line, i * line.length)
      const decoder = DataDecoder.make({ bareLineEndings: "reject" })
      let total = 0
      for (let i = 0; i < 35; i++) total += decoder.decode(chunk).output.reduce((n, o) => n + o.length, 0)
      expect(decoder.decode(bytes(".\r\n")).done).toBe(true)
      expect(total).toBe(35 * chunk.length)
    })
  })

  describe("properties", () => {
    it("gives the same result whatever the chunk boundaries", () => {
      fc.assert(
        fc.property(framingBytes(), cuts, (input, points) => {
          expect(decodeChunks(split(input, points))).toEqual(decodeChunks([input]))
        }),
        { numRuns: 500 }
      )
    })

    it("outputs exactly what the independent reference normalizer makes of any input", () => {
      fc.assert(
        fc.property(framingBytes(), cuts, (input, points) => {
          const whole = concat([input, bytes("\r\n.\r\n")])
          const result = decodeChunks(split(whole, points))
          const expected = reference(text(whole))
          expect(result.output).toBe(expected)
        }),
        { numRuns: 1000 }
      )
    })

    it("never outputs a bare CR or bare LF", () => {
      fc.assert(
        fc.property(framingBytes(), cuts, (input, points) => {
          const result = decodeChunks(split(concat([input, bytes("\r\n.\r\n")]), points))
          expect(result.done).toBe(true)
          expect(hasOnlyCrlf(bytes(result.output))).toBe(true)
        }),
        { numRuns: 500 }
      )
    })

    it("round-trips dot-stuffed CRLF-only content", () => {
      const line = fc.array(fc.oneof(fc.constant(0x2e), fc.integer({ min: 0, max: 255 })), { maxLength: 20 })
        .filter((l) => !l.includes(0x0d) && !l.includes(0x0a))
      fc.assert(
        fc.property(fc.array(line, { maxLength: 12 }), cuts, (lines, points) => {
          const content = concat(lines.map((l) => concat([Uint8Array.from(l), bytes("\r\n")])))
          const result = decodeChunks(split(DataDecoder.encode(content), points))
          expect(result).toEqual({ output: text(content), done: true, rest: "", bare: false })
        }),
        { numRuns: 500 }
      )
    })
  })
})
