// scripts/system-deps.mjs, the first step of `npm test`: every tool named in .ci/packages must be
// there; where it cannot install them (not root, not Debian, or --check-only) it names what is
// missing and the apt-get line in one line on stderr, and fails.
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { run } from "../../support/exec.ts"
import { bunBinary, projectRoot } from "../../support/runtimes.ts"

const script = path.join(projectRoot, "scripts", "system-deps.mjs")
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-system-deps-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

const check = async (options: { readonly packages?: string; readonly path?: string } = {}) => {
  const argv = [script, "--check-only"]
  if (options.packages !== undefined) {
    const file = path.join(dir, `packages-${Math.random().toString(36).slice(2)}`)
    fs.writeFileSync(file, options.packages)
    argv.push("--packages", file)
  }
  return run(await bunBinary(), argv, { env: options.path === undefined ? {} : { PATH: options.path }, timeoutMs: 60_000 })
}

/** Where `command` is on the current PATH. */
const which = (command: string): string | undefined =>
  (process.env.PATH ?? "").split(path.delimiter).map((d) => path.join(d, command)).find((f) => {
    try {
      fs.accessSync(f, fs.constants.X_OK)
      return true
    } catch {
      return false
    }
  })

describe("the system tools check before the tests", () => {
  it("lists every package once, each with what the tests run from it", () => {
    const lines = fs.readFileSync(path.join(projectRoot, ".ci", "packages"), "utf8").split("\n")
      .map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#") && !l.startsWith("debconf:"))
    const names = lines.map((l) => l.split(/\s+/)[0])
    expect(lines.every((l) => l.split(/\s+/).length === 2), lines.join("\n")).toBe(true)
    expect(new Set(names).size).toBe(names.length)
    expect(names).toEqual(expect.arrayContaining(["swaks", "postfix", "redis-server", "haproxy", "dnsmasq", "python3-dkim"]))
  })

  it("says nothing and passes when every tool is there", async () => {
    const result = await check({ packages: "coreutils  sh\nca-certificates  /bin/sh\n" })
    expect(result.stderr).toBe("")
    expect(result.code).toBe(0)
  })

  it("fails with one line naming swaks and the apt-get command when swaks is not on PATH", async () => {
    // A PATH with every command of the real list but swaks.
    const bin = path.join(dir, "bin")
    fs.mkdirSync(bin, { recursive: true })
    const list = fs.readFileSync(path.join(projectRoot, ".ci", "packages"), "utf8")
    const commands = [...list.matchAll(/^\S+\s+([a-z][\w.-]*)\s*$/gm)].map((m) => m[1]!).filter((c) => c !== "swaks")
    for (const command of [...commands, "perl"]) {
      const found = which(command)
      if (found !== undefined && !fs.existsSync(path.join(bin, command))) fs.symlinkSync(found, path.join(bin, command))
    }
    const result = await check({ packages: list, path: bin })
    expect(result.code).toBe(1)
    expect(result.stdout).toBe("")
    const lines = result.stderr.trimEnd().split("\n")
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/^smtp-bridge tests need system tools that are missing: .*swaks \(swaks\).*; on Debian or Ubuntu install them with: sudo apt-get install --no-install-recommends .*swaks/)
  })

  it("checks Python and Perl modules and absolute paths, naming each missing package", async () => {
    const result = await check({
      packages: "python3-nonesuch  python3:no_such_module_here\nlibnonesuch-perl  perl:No::Such::Module\nnonesuch-bin  /nonexistent/nonesuch\n"
    })
    expect(result.code).toBe(1)
    expect(result.stderr).toContain("python3:no_such_module_here (python3-nonesuch), perl:No::Such::Module (libnonesuch-perl), /nonexistent/nonesuch (nonesuch-bin)")
    expect(result.stderr.trimEnd()).toMatch(/install --no-install-recommends python3-nonesuch libnonesuch-perl nonesuch-bin$/)
  })

  it("refuses a malformed line of the list, naming it", async () => {
    const result = await check({ packages: "swaks\n" })
    expect(result.code).not.toBe(0)
    expect(result.stderr).toContain('expected "PACKAGE CHECK", got "swaks"')
  })
})
