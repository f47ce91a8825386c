import { describe, expect, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"

// npm and Bun read package.json, Deno reads deno.json: the public entry points must be the same in both.
const root = fileURLToPath(new URL("../../", import.meta.url))
const readJson = (file: string): Record<string, unknown> => JSON.parse(readFileSync(`${root}${file}`, "utf8"))
const packageJson = readJson("package.json")
const denoJson = readJson("deno.json")

const normalize = (path: unknown): string => String(path).replace(/^\.\//, "")
const exportsOf = (manifest: Record<string, unknown>): Record<string, string> => {
  const raw = manifest.exports
  if (typeof raw === "string") return { ".": normalize(raw) }
  return Object.fromEntries(Object.entries(raw as Record<string, unknown>).map(([k, v]) => [k, normalize(v)]))
}

describe("package manifests", () => {
  it("package.json and deno.json export the same subpaths to the same files", () => {
    expect(exportsOf(denoJson)).toEqual(exportsOf(packageJson))
  })

  // smtp-bridge/testing (src/testing.ts) is written separately; until it exists the pack leaves
  // its entry out (scripts/pack.mjs) and test/compat/package.test.ts skips its import.
  it("every exported file exists (src/testing.ts once it is written)", () => {
    for (const file of Object.values(exportsOf(packageJson))) {
      if (file !== "src/testing.ts") expect(existsSync(`${root}${file}`), file).toBe(true)
    }
  })

  it("deno.json has the JSR shape: a scoped name, package.json's version, the TypeScript sources as exports", () => {
    expect(denoJson.name).toMatch(/^@[a-z0-9-]+\/smtp-bridge$/)
    expect(denoJson.version).toBe(packageJson.version)
    expect(denoJson.license).toBe(packageJson.license)
    for (const file of Object.values(exportsOf(denoJson))) expect(file).toMatch(/^src\/.*\.ts$/)
  })

  it("the npm package ships bin/ and the emitted dist/ (built at prepack), not the sources", () => {
    expect(packageJson.files).toEqual(["bin/", "dist/", "README.md"])
    expect((packageJson.scripts as Record<string, string>).prepack).toBe("node scripts/pack.mjs prepack")
    expect((packageJson.scripts as Record<string, string>).postpack).toBe("node scripts/pack.mjs postpack")
  })

  it("deno.json maps the bare specifier smtp-bridge to the main export, as Node and Bun self-resolve it", () => {
    const imports = denoJson.imports as Record<string, string>
    expect(packageJson.name).toBe("smtp-bridge")
    expect(normalize(imports["smtp-bridge"])).toBe(exportsOf(packageJson)["."])
  })

  it("package.json bin smtp-bridge is the launcher that any Node can parse; it starts src/cli.ts, or dist/src/cli.js in the package", () => {
    expect(packageJson.bin).toEqual({ "smtp-bridge": "bin/smtp-bridge.js" })
    expect(readFileSync(`${root}bin/smtp-bridge.js`, "utf8")).toContain(`new URL("../src/cli.ts", import.meta.url)`)
    expect(readFileSync(`${root}bin/smtp-bridge.js`, "utf8")).toContain(`new URL("../dist/src/cli.js", import.meta.url)`)
  })

  // npm makes every bin target executable: committed otherwise, `git status` shows it modified after `npm install`.
  it("every bin target is committed executable (mode 100755), as npm leaves it", () => {
    const targets = Object.values(packageJson.bin as Record<string, string>)
    const staged = execFileSync("git", ["ls-files", "--stage", "--", ...targets], { cwd: root, encoding: "utf8" })
    for (const target of targets) expect(staged, target).toMatch(new RegExp(`^100755 \\w+ 0\\t${target.replaceAll(".", "\\.")}$`, "m"))
  })

  // `deno task` runs a command it finds in node_modules/.bin as a JavaScript file, and npm puts the
  // deno and bun executables there: a bare `deno run ...` task died with a SyntaxError at 1:1.
  it("deno.json tasks start deno and bun by their path, never by a bare name", () => {
    for (const [task, command] of Object.entries(denoJson.tasks as Record<string, string>)) {
      expect(command, task).not.toMatch(/(^|[;&|]\s*)(deno|bun)\s/)
    }
  })

  it("deno.json has a task for every package.json script", () => {
    const scripts = Object.keys(packageJson.scripts as Record<string, string>).sort()
    expect(Object.keys(denoJson.tasks as Record<string, string>).sort()).toEqual(scripts)
  })
})
