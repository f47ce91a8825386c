import { describe, expect, it } from "@effect/vitest"
import * as DotStuffing from "../../../../src/transport/smtp/DotStuffing.ts"

const encode = (...chunks: ReadonlyArray<string>): string => {
  const s = DotStuffing.make()
  const decoder = new TextDecoder()
  let out = ""
  for (const c of chunks) out += decoder.decode(s.push(new TextEncoder().encode(c)))
  return out + decoder.decode(s.end())
}

describe("DATA encoding", () => {
  it("doubles a leading dot on every line and ends with .CRLF", () => {
    expect(encode(".first\r\nmid.dle\r\n.\r\n..two\r\n")).toBe("..first\r\nmid.dle\r\n..\r\n...two\r\n.\r\n")
  })

  it("finds line starts across chunk boundaries, including a CRLF split between chunks", () => {
    expect(encode("a\r\n", ".b\r", "\n.c\r\n")).toBe("a\r\n..b\r\n..c\r\n.\r\n")
    expect(encode("a\r", "\n", ".", "\r\n")).toBe("a\r\n..\r\n.\r\n")
  })

  it("adds the missing CRLF before the terminator", () => {
    expect(encode("no newline at end")).toBe("no newline at end\r\n.\r\n")
  })

  it("sends an empty message as just the terminator", () => {
    expect(encode()).toBe(".\r\n")
  })

  it("never lets a bare CR or LF through: each becomes CRLF, so CR LF . CR LF cannot be smuggled", () => {
    expect(encode("a\n.\nb\rc")).toBe("a\r\n..\r\nb\r\nc\r\n.\r\n")
    expect(encode("x\r")).toBe("x\r\n.\r\n")
  })

  it("encodes a message held in memory in one buffer exactly as chunk by chunk", () => {
    const cases: ReadonlyArray<ReadonlyArray<string>> = [
      [".first\r\nmid.dle\r\n.\r\n..two\r\n"],
      ["a\r\n", ".b\r", "\n.c\r\n"],
      ["a\r", "\n", ".", "\r\n"],
      ["no newline at end"],
      [],
      ["a\n.\nb\rc"],
      ["x\r"]
    ]
    for (const chunks of cases) {
      const whole = DotStuffing.encode(chunks.map((c) => new TextEncoder().encode(c)))
      expect(new TextDecoder().decode(whole)).toBe(encode(...chunks))
    }
  })
})
