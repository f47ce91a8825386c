import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as LineEndings from "../../../src/protocol/LineEndings.ts"
import { bytes, concat, cuts, framingBytes, hasOnlyCrlf, split, text } from "./helpers.ts"

const run = (chunks: ReadonlyArray<Uint8Array>, policy: LineEndings.Policy = "normalize") => {
  const normalizer = LineEndings.make(policy)
  const output: Array<Uint8Array> = []
  let bare = false
  for (const chunk of [...chunks.map((c) => normalizer.push(c)), normalizer.end()]) {
    output.push(chunk.output)
    bare = bare || chunk.bare
  }
  return { output: text(concat(output)), bare }
}

const normalize = (input: string, policy: LineEndings.Policy = "normalize") => run([bytes(input)], policy)

describe("LineEndings", () => {
  it("passes CRLF through untouched", () => {
    expect(normalize("a\r\nb\r\n")).toEqual({ output: "a\r\nb\r\n", bare: false })
  })

  it("returns a clean chunk itself, without copying", () => {
    const chunk = bytes("a\r\nb")
    expect(LineEndings.make("reject").push(chunk).output).toBe(chunk)
  })

  it("writes a bare LF as CRLF and reports it", () => {
    expect(normalize("a\nb")).toEqual({ output: "a\r\nb", bare: true })
  })

  it("writes a bare CR as CRLF and reports it", () => {
    expect(normalize("a\rb")).toEqual({ output: "a\r\nb", bare: true })
  })

  it("treats LF CR as two bare endings", () => {
    expect(normalize("a\n\rb")).toEqual({ output: "a\r\n\r\nb", bare: true })
  })

  it("reports a CR at the very end as bare when the content ends", () => {
    expect(normalize("a\r")).toEqual({ output: "a\r\n", bare: true })
  })

  it("joins a CR ending one chunk with an LF starting the next into one CRLF", () => {
    expect(run([bytes("a\r"), bytes("\nb")])).toEqual({ output: "a\r\nb", bare: false })
  })

  it("supplies the LF of a bare CR ending a chunk when the next one does not start with LF", () => {
    const normalizer = LineEndings.make("reject")
    expect(text(normalizer.push(bytes("a\r")).output)).toBe("a\r")
    const next = normalizer.push(bytes("b"))
    expect({ output: text(next.output), bare: next.bare }).toEqual({ output: "\nb", bare: true })
  })

  it("produces the same normalized output under the reject policy", () => {
    expect(normalize("a\nb\rc", "reject")).toEqual({ output: "a\r\nb\r\nc", bare: true })
  })

  it("gives the same result whatever the chunk boundaries", () => {
    fc.assert(
      fc.property(framingBytes(), cuts, (input, points) => {
        expect(run(split(input, points))).toEqual(run([input]))
      }),
      { numRuns: 500 }
    )
  })

  it("never outputs a bare CR or bare LF, and reports bare exactly when the input had one", () => {
    fc.assert(
      fc.property(framingBytes(), cuts, (input, points) => {
        const result = run(split(input, points))
        expect(hasOnlyCrlf(bytes(result.output))).toBe(true)
        expect(result.bare).toBe(!hasOnlyCrlf(input))
      }),
      { numRuns: 500 }
    )
  })
})
