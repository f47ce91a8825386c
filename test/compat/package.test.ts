/**
 * smtp-bridge as a dependency of someone else's project: `npm pack` (its prepack emits dist/),
 * the tarball installed into a scratch project that has its own config file and its own plugin,
 * and that project's `smtp-bridge` binary started under Bun, Deno and Node >= 22.19, relaying a
 * message through the user's plugin into a Maildir.
 *
 *   $ npm pack                                   -> smtp-bridge-0.1.0.tgz (dist/*.js + *.d.ts, bin/)
 *   $ cd my-relay && <install the tarball>
 *   $ npx smtp-bridge serve --config smtp-bridge.config.ts
 *   C: RCPT TO:<nobody@relay.test>     S: 550 5.1.1 ... (the user's plugin)
 *   C: DATA ...                        the stored message carries the plugin's X-Stamped-By header
 *
 * No network: the pack runs on a copy of the project (so the repository's package.json, which
 * the prepack rewrites for the tarball, is never touched by a test), and the tarball is installed
 * as npm would lay it out (extracted into node_modules/smtp-bridge, its bin linked into
 * node_modules/.bin), its dependencies taken from the project's own node_modules.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import packageJson from "../../package.json" with { type: "json" }
import * as SmtpClient from "../support/SmtpClient.ts"
import { run } from "../support/exec.ts"
import { bunBinary, denoBinary, nodeBinary, projectRoot, type Runtime, spawnProgram } from "../support/runtimes.ts"

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "sb-package-"))
const copy = path.join(scratch, "smtp-bridge")
const app = path.join(scratch, "my-relay")
const installed = path.join(app, "node_modules", "smtp-bridge")
// src/testing.ts (smtp-bridge/testing) is written separately from this test; until it exists, the
// pack leaves its export out and the test of that import is skipped.
const hasTestingKit = fs.existsSync(path.join(projectRoot, "src", "testing.ts"))

let tarball = ""
let packedFiles: ReadonlyArray<string> = []

afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }))

beforeAll(async () => {
  // What the build reads; a file the build needs and this list lacks fails the pack below.
  for (const entry of ["package.json", "tsconfig.json", "tsconfig.build.json", "README.md", "bin", "scripts", "src", "plugins"]) {
    fs.cpSync(path.join(projectRoot, entry), path.join(copy, entry), { recursive: true })
  }
  fs.symlinkSync(path.join(projectRoot, "node_modules"), path.join(copy, "node_modules"))
  const pack = await run("npm", ["pack", "--json", "--pack-destination", scratch], { cwd: copy, timeoutMs: 240_000 })
  expect(pack.code, pack.stderr).toBe(0)
  const [report] = JSON.parse(pack.stdout) as ReadonlyArray<{ filename: string; files: ReadonlyArray<{ path: string }> }>
  tarball = path.join(scratch, report!.filename)
  packedFiles = report!.files.map((f) => f.path)

  fs.mkdirSync(installed, { recursive: true })
  const untar = await run("tar", ["xzf", tarball, "--strip-components=1", "-C", installed])
  expect(untar.code, untar.stderr).toBe(0)
  const manifest = JSON.parse(fs.readFileSync(path.join(installed, "package.json"), "utf8")) as { bin: Record<string, string> }
  // The packages smtp-bridge depends on, from the project's node_modules (resolved through the links).
  for (const name of fs.readdirSync(path.join(projectRoot, "node_modules"))) {
    if (name.startsWith(".") || name === "smtp-bridge") continue
    fs.symlinkSync(path.join(projectRoot, "node_modules", name), path.join(app, "node_modules", name))
  }
  fs.mkdirSync(path.join(app, "node_modules", ".bin"))
  for (const [name, target] of Object.entries(manifest.bin)) {
    fs.symlinkSync(path.join("..", "smtp-bridge", target), path.join(app, "node_modules", ".bin", name))
  }

  const write = (file: string, text: string) => {
    fs.mkdirSync(path.dirname(path.join(app, file)), { recursive: true })
    fs.writeFileSync(path.join(app, file), text)
  }
  write(
    "package.json",
    JSON.stringify({
      name: "my-relay",
      private: true,
      type: "module",
      dependencies: { "smtp-bridge": `file:../${report!.filename}`, effect: packageJson.dependencies.effect }
    }, null, 2)
  )
  write(
    "plugins/stamp.ts",
    `import { Effect } from "effect"
import { definePlugin, Verdict } from "smtp-bridge"
import type { Plugin } from "smtp-bridge"

export const stamp = (options: { readonly tag: string }): Plugin =>
  definePlugin({
    name: "stamp",
    rcptTo: ({ recipient }) =>
      Effect.succeed(
        recipient.mailbox.local === "nobody" ? Verdict.reject("No such user here", { code: 550, enhanced: "5.1.1" }) : Verdict.Continue
      ),
    data: ({ addHeader }) =>
      Effect.sync(() => {
        addHeader("X-Stamped-By", options.tag)
        return Verdict.Continue
      })
  })
`
  )
  write(
    "smtp-bridge.config.ts",
    `import { defineConfig } from "smtp-bridge"
import { stamp } from "./plugins/stamp.ts"

export default defineConfig({
  hostname: "relay.test",
  listen: ["127.0.0.1:0"],
  trust: ["127.0.0.1/32"],
  maildir: process.env.MAILDIR,
  plugins: [stamp({ tag: "my-relay" })]
})
`
  )
  write(
    "testing-kit.ts",
    `import * as Testing from "smtp-bridge/testing"
console.log(JSON.stringify(Object.keys(Testing).sort()))
`
  )
}, 300_000)

/** `smtp-bridge ARGS` as the scratch project's bin, under `runtime`. */
const binCommand = async (runtime: Runtime, script: string): Promise<[string, Array<string>]> => {
  switch (runtime) {
    case "bun":
      return [await bunBinary(), [script]]
    case "deno":
      return [await denoBinary(), ["run", "-A", script]]
    case "node":
      return [await nodeBinary(), [script]]
  }
}

describe("the npm package", () => {
  it("carries emitted JavaScript and declarations, the bin entry, and no TypeScript sources", () => {
    expect(packedFiles).toEqual(expect.arrayContaining([
      "bin/smtp-bridge.js", "dist/src/index.js", "dist/src/index.d.ts", "dist/src/cli.js", "dist/plugins/rate-limit/index.js", "package.json"
    ]))
    expect(packedFiles.filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts"))).toEqual([])
    expect(packedFiles.filter((f) => f.startsWith("test/") || f.startsWith("src/"))).toEqual([])
  })

  it("exports its entry points as JavaScript with their types, while the repository's manifest keeps the sources", () => {
    const manifest = JSON.parse(fs.readFileSync(path.join(installed, "package.json"), "utf8")) as { exports: Record<string, unknown> }
    expect(manifest.exports["."]).toEqual({ types: "./dist/src/index.d.ts", default: "./dist/src/index.js" })
    if (hasTestingKit) expect(manifest.exports["./testing"]).toEqual({ types: "./dist/src/testing.d.ts", default: "./dist/src/testing.js" })
    expect(packageJson.exports["."]).toBe("./src/index.ts")
    // The copy that was packed got its package.json back (postpack).
    expect(fs.readFileSync(path.join(copy, "package.json"), "utf8")).toBe(fs.readFileSync(path.join(projectRoot, "package.json"), "utf8"))
  })

  it("type-checks the user's config and plugin against the packed declarations", async () => {
    fs.writeFileSync(
      path.join(app, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ES2023", module: "NodeNext", moduleResolution: "NodeNext", strict: true, noEmit: true,
          allowImportingTsExtensions: true, types: ["node"], typeRoots: [path.join(projectRoot, "node_modules", "@types")], skipLibCheck: true
        },
        include: ["smtp-bridge.config.ts", "plugins"]
      })
    )
    const tsc = await run(path.join(projectRoot, "node_modules", ".bin", "tsc"), ["-p", app], { cwd: app, timeoutMs: 120_000 })
    expect(tsc.stdout + tsc.stderr).toBe("")
    expect(tsc.code).toBe(0)
  }, 150_000)

  describe.each(["bun", "deno", "node"] as const)("installed in a project, under %s", (runtime) => {
    it("relays a message through the user's plugin (550 5.1.1 from it at RCPT, its header on the stored message)", async () => {
      const maildir = path.join(app, `mail-${runtime}`)
      const [program, args] = await binCommand(runtime, path.join(app, "node_modules", ".bin", "smtp-bridge"))
      const bridge = await spawnProgram(runtime, program, [...args, "serve", "--config", "smtp-bridge.config.ts"], {
        cwd: app,
        env: { MAILDIR: maildir }
      })
      try {
        const [, port] = await bridge.waitForLog(/listening on 127\.0\.0\.1:(\d+)/, 60_000)
        const client = await SmtpClient.connect(Number(port))
        try {
          expect(await client.read()).toMatch(/^220 relay\.test /)
          expect(await client.command("EHLO client.test")).toMatch(/^250-relay\.test/)
          expect(await client.command("MAIL FROM:<alice@client.test>")).toMatch(/^250 /)
          expect(await client.command("RCPT TO:<nobody@relay.test>")).toBe("550 5.1.1 No such user here")
          expect(await client.command("RCPT TO:<bob@relay.test>")).toMatch(/^250 /)
          expect(await client.command("DATA")).toMatch(/^354 /)
          expect(await client.command("Subject: packaged\r\n\r\nHello from a dependency.\r\n.")).toMatch(/^250 /)
          expect(await client.command("QUIT")).toMatch(/^221 /)
        } finally {
          client.close()
        }
        const stored = fs.readdirSync(path.join(maildir, "new"))
        expect(stored).toHaveLength(1)
        const message = fs.readFileSync(path.join(maildir, "new", stored[0]!), "utf8")
        expect(message).toMatch(/^X-Stamped-By: my-relay\r$/m)
        expect(message).toContain("Hello from a dependency.")
      } finally {
        await bridge.kill()
      }
    }, 120_000)

    it("hashes a password on its worker thread, started from the emitted JavaScript (hash-password)", async () => {
      const [program, args] = await binCommand(runtime, path.join(app, "node_modules", ".bin", "smtp-bridge"))
      const result = await run(program, [...args, "hash-password", "--password", "from a dependency"], { cwd: app, timeoutMs: 60_000 })
      expect(result.code, result.stderr).toBe(0)
      expect(result.stdout.trim()).toMatch(/^\$2[aby]\$\d\d\$.{53}$/)
    }, 90_000)

    it.skipIf(!hasTestingKit)("imports smtp-bridge/testing (skipped while src/testing.ts does not exist)", async () => {
      const [program, args] = await binCommand(runtime, path.join(app, "testing-kit.ts"))
      const result = await run(program, args, { cwd: app, timeoutMs: 60_000 })
      expect(result.code, result.stderr).toBe(0)
      expect(JSON.parse(result.stdout)).not.toHaveLength(0)
    }, 90_000)
  })
})
