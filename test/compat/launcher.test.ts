/**
 * The npm bin entry, bin/smtp-bridge.js: under a Node too old for the TypeScript sources (the
 * machine's Node 20 in CI) it prints one line naming the version needed and the Bun command to
 * use instead; under Bun, Deno and Node >= 22.19 it runs the CLI.
 */
import { execFileSync } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { describe, expect, it } from "vitest"
import packageJson from "../../package.json" with { type: "json" }
import { run } from "../support/exec.ts"
import { bunBinary, denoBinary, nodeBinary, projectRoot } from "../support/runtimes.ts"

const launcher = join(projectRoot, "bin", "smtp-bridge.js")

/** A Node older than 22.19: /usr/bin/node or `node` on PATH, when one of them is. */
const oldNode = ((): string | undefined => {
  for (const candidate of ["/usr/bin/node", "node"]) {
    try {
      const version = execFileSync(candidate, ["-p", "process.versions.bun ? '' : process.versions.node"], { encoding: "utf8" }).trim()
      const [major = 0, minor = 0] = version.split(".").map(Number)
      if (version !== "" && (major < 22 || (major === 22 && minor < 19))) return candidate
    } catch {
      // Not there.
    }
  }
  return undefined
})()

const oneLine = /^smtp-bridge needs Node >= 22\.19 \(this is Node \d+\.\d+\.\d+\); run it under Bun instead: npx bun src\/cli\.ts (.*)\n$/

describe.skipIf(oldNode === undefined)(`the bin entry under an old Node (${oldNode ?? "none found"})`, () => {
  it("prints one line with the version needed and the Bun command, and exits 1", async () => {
    const result = await run(oldNode!, [launcher, "serve", "--help"], { cwd: projectRoot })
    expect(result.code).toBe(1)
    expect(result.stdout).toBe("")
    expect(result.stderr).toMatch(oneLine)
    expect(result.stderr.match(oneLine)?.[1]).toBe("serve --help")
  })

  it("quotes arguments in the suggested command so that it can be pasted into a shell", async () => {
    const result = await run(oldNode!, [launcher, "hash-password", "--password", "it's a pass"], { cwd: projectRoot })
    expect(result.stderr.match(oneLine)?.[1]).toBe(`hash-password --password 'it'\\''s a pass'`)
    const suggested = await run("sh", ["-c", `printf '%s\\n' ${result.stderr.match(oneLine)?.[1]}`])
    expect(suggested.stdout).toBe("hash-password\n--password\nit's a pass\n")
  })

  it("the suggested Bun command runs the CLI", async () => {
    const result = await run(oldNode!, [launcher, "--version"], { cwd: projectRoot })
    const suggested = result.stderr.match(/instead: (.*)\n$/)?.[1]
    expect(suggested).toBe("npx bun src/cli.ts --version")
    const bun = await run("sh", ["-c", suggested!], { cwd: projectRoot, timeoutMs: 60_000 })
    expect(bun.stdout.trim(), bun.stderr).toBe(packageJson.version)
  })

  it("npx smtp-bridge (the package's own bin) prints the same line instead of a stack trace", async () => {
    // A fresh npm cache: npx links the project into it, and a link made from an older package.json
    // would keep pointing at the bin entry of that time.
    const cache = mkdtempSync(join(tmpdir(), "sb-npx-cache-"))
    const result = await run("npx", ["--no-install", "smtp-bridge", "--version"], {
      cwd: projectRoot,
      timeoutMs: 60_000,
      env: { PATH: `${dirname(oldNode!)}:${process.env.PATH ?? ""}`, npm_config_cache: cache, npm_config_offline: "true" }
    }).finally(() => rmSync(cache, { recursive: true, force: true }))
    expect(result.code).toBe(1)
    expect(result.stderr).not.toMatch(/ERR_UNKNOWN_FILE_EXTENSION|\n\s+at /)
    // npm itself may warn about the engines field first; ours is the last line.
    expect(result.stderr.split("\n").filter((l) => l.startsWith("smtp-bridge needs"))).toHaveLength(1)
    expect(result.stderr).toMatch(/smtp-bridge needs Node >= 22\.19 .*: npx bun src\/cli\.ts --version\n$/)
  })
})

describe("the bin entry under a supported runtime runs the CLI", () => {
  it.each([
    ["bun", async () => [await bunBinary(), [launcher, "--version"]] as const],
    ["deno", async () => [await denoBinary(), ["run", "-A", launcher, "--version"]] as const],
    ["node", async () => [await nodeBinary(), ["--disable-warning=ExperimentalWarning", launcher, "--version"]] as const]
  ])("under %s it prints the version", async (_runtime, command) => {
    const [program, args] = await command()
    const result = await run(program, args, { cwd: projectRoot, timeoutMs: 60_000, env: { NO_COLOR: "1" } })
    expect(result.code, result.stderr).toBe(0)
    expect(result.stdout.trim()).toBe(packageJson.version)
  })
})
