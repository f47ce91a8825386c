// Start-up loads only what a config uses (issue 16): importing the library and the CLI's modules
// pulls in neither mailauth (with joi, libmime and its ASN.1 schemas) nor ioredis nor
// node:worker_threads; making the mail-authentication plugin starts loading mailauth at once, so
// the first message does not pay for it. Checked in a fresh Bun process, whose module registry
// (`require.cache`) lists ES modules too.
import { spawnSync } from "node:child_process"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { bunBinary, projectRoot } from "../support/runtimes.ts"

const loaded = async (script: string): Promise<Record<string, boolean>> => {
  const run = spawnSync(await bunBinary(), ["-e", script], { cwd: projectRoot, encoding: "utf8", timeout: 60_000 })
  expect(run.status, run.stderr).toBe(0)
  return JSON.parse(run.stdout.trim().split("\n").at(-1)!) as Record<string, boolean>
}

const report = `
const keys = Object.keys(require.cache)
console.log(JSON.stringify({
  mailauth: keys.some((k) => k.includes("/node_modules/mailauth/")),
  ioredis: keys.some((k) => k.includes("/node_modules/ioredis/")),
  joi: keys.some((k) => k.includes("/node_modules/joi/"))
}))`

describe("lazy loading", () => {
  it("the library, the wiring and the command line load neither mailauth nor ioredis", async () => {
    const script = `await import(${JSON.stringify(path.join(projectRoot, "src/index.ts"))})
await import(${JSON.stringify(path.join(projectRoot, "src/Bridge.ts"))})
await import(${JSON.stringify(path.join(projectRoot, "src/commands/ConfigFlags.ts"))})
${report}`
    expect(await loaded(script)).toEqual({ mailauth: false, ioredis: false, joi: false })
  }, 60_000)

  it("making the mailauth-verify plugin starts loading mailauth", async () => {
    const script = `const { mailauthVerify } = await import(${JSON.stringify(path.join(projectRoot, "plugins/mailauth-verify/index.ts"))})
mailauthVerify()
await new Promise((r) => setTimeout(r, 2000))
${report}`
    expect(await loaded(script)).toMatchObject({ mailauth: true })
  }, 60_000)
})
