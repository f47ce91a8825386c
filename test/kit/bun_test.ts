// Run with `bun test test/kit/bun_test.ts`: the test kit under Bun's own runner.
import { cases } from "./shared.ts"

interface BunTest {
  readonly test: (name: string, fn: () => Promise<void>) => void
}
const { test } = (await import("bun:test" as string)) as BunTest

for (const [name, fn] of cases) test(name, fn)
