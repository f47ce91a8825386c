import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
describe("smoke", () => {
  it.effect("works", () => Effect.sync(() => expect(1 + 1).toBe(2)))
})
