// Run with `deno test -A test/kit/deno_test.ts`: the test kit under Deno's own runner.
import { cases } from "./shared.ts"

interface DenoTest {
  readonly test: (name: string, fn: () => Promise<void>) => void
}
const { Deno } = globalThis as unknown as { readonly Deno: DenoTest }

for (const [name, fn] of cases) Deno.test(name, fn)
