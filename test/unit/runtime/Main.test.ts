import * as HelpDoc from "@effect/cli/HelpDoc"
import * as ValidationError from "@effect/cli/ValidationError"
import { describe, expect, it } from "@effect/vitest"
import { Exit } from "effect"
import * as Main from "../../../src/runtime/Main.ts"

const exitCode = (exit: Exit.Exit<unknown, unknown>): number => {
  let code = -1
  Main.teardown(exit, (c) => void (code = c))
  return code
}

describe("Main.teardown", () => {
  // Main knows @effect/cli's errors by their type id's key, without importing @effect/cli (start-up time).
  it("exits 2 on @effect/cli's own ValidationError, which @effect/cli has already printed", () => {
    expect(exitCode(Exit.fail(ValidationError.invalidValue(HelpDoc.p("bad flag"))))).toBe(2)
    expect(exitCode(Exit.fail(ValidationError.missingSubcommand(HelpDoc.empty)))).toBe(2)
  })

  it("exits 0 on success and 1 on an untagged failure", () => {
    expect(exitCode(Exit.void)).toBe(0)
    expect(exitCode(Exit.fail({ reason: "other" }))).toBe(1)
  })
})
