import { describe, expect, it } from "@effect/vitest"
import * as Verdict from "../../../src/pipeline/Verdict.ts"

describe("Verdict.problem: what the bridge refuses to act on", () => {
  it("accepts every verdict the constructors make", () => {
    for (const v of [Verdict.Continue, Verdict.accept(), Verdict.reject("no"), Verdict.defer("later"), Verdict.disconnect("bye"), Verdict.disconnect("bye", { code: 554, enhanced: "5.7.1" })]) {
      expect(Verdict.problem(v)).toBeUndefined()
    }
  })

  it("names a missing verdict, a code outside its class and an enhanced code of another class", () => {
    expect(Verdict.problem(undefined)).toBe("not a verdict: undefined")
    expect(Verdict.problem({ _tag: "Maybe" })).toBe("unknown verdict Maybe")
    expect(Verdict.problem(Verdict.reject("x", { code: 250, enhanced: "2.0.0" }))).toBe("Reject with code 250 (must be 500-599)")
    expect(Verdict.problem(Verdict.defer("x", { code: 550 }))).toBe("Defer with code 550 (must be 400-499)")
    expect(Verdict.problem(Verdict.defer("x", { code: 450, enhanced: "5.7.1" }))).toBe("Defer 450 with enhanced code 5.7.1")
    expect(Verdict.problem(Verdict.reject("x", { enhanced: "5.7" }))).toBe("Reject 550 with enhanced code 5.7")
    expect(Verdict.problem({ _tag: "Reject", code: 550, enhanced: "5.7.1" })).toBe("Reject without a text")
  })
})
