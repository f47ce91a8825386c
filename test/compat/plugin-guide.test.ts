/**
 * docs/plugins.md's examples (no-example-dot-com, and greylist with an options schema), verbatim: its files (each code block that starts with a `// path`
 * comment) written into a scratch project laid out as the guide says, with smtp-bridge installed
 * as a dependency would be; then type-checked with the project's tsconfig and tested with the
 * project's vitest config under Bun and Deno, as the guide tells its reader to.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { run } from "../support/exec.ts"
import { bunBinary, denoBinary, projectRoot } from "../support/runtimes.ts"

const guide = fs.readFileSync(path.join(projectRoot, "docs", "plugins.md"), "utf8")

/** The guide's code blocks that name their file in a first-line comment, by that path. */
const files = new Map(
  [...guide.matchAll(/^```ts\n\/\/ ([\w./-]+\.ts)\n([\s\S]*?)^```/gm)].map((m) => [m[1]!, `// ${m[1]}\n${m[2]}`])
)

const scratchParent = path.join(projectRoot, ".tmp")
fs.mkdirSync(scratchParent, { recursive: true })
const scratch = fs.mkdtempSync(path.join(scratchParent, "plugin-guide-"))
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }))

for (const [file, text] of files) {
  fs.mkdirSync(path.dirname(path.join(scratch, file)), { recursive: true })
  fs.writeFileSync(path.join(scratch, file), text)
}
// As `npm install smtp-bridge` would leave it; the other packages come from the project's node_modules above.
fs.mkdirSync(path.join(scratch, "node_modules"))
fs.symlinkSync(projectRoot, path.join(scratch, "node_modules", "smtp-bridge"))
fs.writeFileSync(
  path.join(scratch, "tsconfig.json"),
  JSON.stringify({ extends: path.join(projectRoot, "tsconfig.json"), include: ["test", "my-plugins"] })
)

const vitest = path.join(projectRoot, "node_modules", "vitest", "vitest.mjs")
const config = path.join(projectRoot, "vitest.config.ts")

describe("the plugin guide's example (docs/plugins.md)", () => {
  it("has a plugin file and a test file under test/", () => {
    expect([...files.keys()]).toEqual(expect.arrayContaining([
      "my-plugins/no-example-dot-com.ts", "test/no-example-dot-com.test.ts", "my-plugins/greylist.ts", "test/greylist.test.ts"
    ]))
  })

  it("type-checks with the project's tsconfig", async () => {
    const tsc = await run(path.join(projectRoot, "node_modules", ".bin", "tsc"), ["-p", scratch], { timeoutMs: 120_000 })
    expect(tsc.stdout + tsc.stderr).toBe("")
    expect(tsc.code).toBe(0)
  }, 150_000)

  it.each([
    ["bun", async () => [await bunBinary(), ["--bun", vitest]] as const],
    ["deno", async () => [await denoBinary(), ["run", "-A", vitest]] as const]
  ])("passes its four tests (no-example-dot-com, and greylist's options schema) under %s with the project's vitest config", async (_runtime, command) => {
    const [program, args] = await command()
    const result = await run(program, [...args, "run", "--root", scratch, "--config", config, "test/no-example-dot-com.test.ts", "test/greylist.test.ts"], {
      cwd: scratch,
      timeoutMs: 120_000,
      env: { NO_COLOR: "1" }
    })
    expect(result.code, result.stdout + result.stderr).toBe(0)
    expect(result.stdout).toMatch(/Tests\s+4 passed \(4\)/)
  }, 150_000)
})
