import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as Xtext from "../../../src/protocol/Xtext.ts"

describe("Xtext", () => {
  it("accepts printable ASCII and +XX escapes", () => {
    expect(Xtext.isXtext("a+2Bb+3D.example")).toBe(true)
    expect(Xtext.isXtext("")).toBe(true)
  })

  it.each(["a=b", "a b", "a+", "a+2", "a+zz", "ö", "a\tb"])("refuses %j", (s) => {
    expect(Xtext.isXtext(s)).toBe(false)
  })

  it("decodes escapes", () => {
    expect(Xtext.decode("a+40b.example")).toBe("a@b.example")
    expect(Xtext.decode("a+zz")).toBeUndefined()
  })

  it("encodes + = and non-printables", () => {
    expect(Xtext.encode("a+b=c d")).toBe("a+2Bb+3Dc+20d")
  })

  it("round-trips any text", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme" }), (s) => {
        const encoded = Xtext.encode(s)
        expect(Xtext.isXtext(encoded)).toBe(true)
        expect(Xtext.decode(encoded)).toBe(s)
      })
    )
  })
})
