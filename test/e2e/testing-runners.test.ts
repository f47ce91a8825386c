// smtp-bridge/testing promises plugin authors any test runner: test/kit/ runs its checks under
// `bun test` and `deno test`, each started here as a plugin author would start it.
import { describe, expect, it } from "vitest"
import { run } from "../support/exec.ts"
import { bunBinary, denoBinary, projectRoot } from "../support/runtimes.ts"

describe("smtp-bridge/testing under other test runners", () => {
  it("passes its three checks under bun test", async () => {
    const r = await run(await bunBinary(), ["test", "./test/kit/bun_test.ts"], { cwd: projectRoot, timeoutMs: 60_000 })
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(r.stdout + r.stderr).toMatch(/\b3 pass\b/)
    expect(r.stdout + r.stderr).toMatch(/\b0 fail\b/)
  }, 70_000)

  it("passes its three checks under deno test, type-checked", async () => {
    const r = await run(await denoBinary(), ["test", "-A", "test/kit/deno_test.ts"], { cwd: projectRoot, timeoutMs: 90_000 })
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(r.stdout.replace(/\x1b\[[0-9;]*m/g, "")).toMatch(/ok \| 3 passed \| 0 failed/)
  }, 100_000)
})
