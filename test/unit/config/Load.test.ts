import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import * as Load from "../../../src/config/Load.ts"

const indexPath = fileURLToPath(new URL("../../../src/index.ts", import.meta.url))

const tempDir = Effect.acquireRelease(
  Effect.promise(() => Fs.mkdtemp(Path.join(Os.tmpdir(), "config-test-"))),
  (dir) => Effect.promise(() => Fs.rm(dir, { recursive: true, force: true }))
)

const writeConfig = (dir: string, name: string, text: string) =>
  Effect.promise(async () => {
    const file = Path.join(dir, name)
    await Fs.writeFile(file, text)
    return file
  })

const typedConfig = `import { defineConfig } from ${JSON.stringify(indexPath)}
import type { ConfigInput } from ${JSON.stringify(indexPath)}

const limits: ConfigInput["limits"] = { maxRecipients: 20, maxMessageSize: "1MB" }

export default defineConfig({
  hostname: "mx.example.com",
  listen: ["0.0.0.0:2587"],
  trust: ["10.0.0.0/8"],
  limits,
  plugins: [{ name: "from-file" }]
})
`

describe("Load", () => {
  it.effect("resolves flags alone when no file is given", () =>
    Effect.gen(function*() {
      const config = yield* Load.load({ flags: { listen: ["127.0.0.1:0"], limits: { maxRecipients: 7 } } })
      expect(config.listeners).toEqual([{ host: "127.0.0.1", port: 0, mode: "plain" }])
      expect(config.limits.maxRecipients).toBe(7)
    }))

  it.scoped("imports a TypeScript config file that uses defineConfig", () =>
    Effect.gen(function*() {
      const file = yield* writeConfig(yield* tempDir, "smtp-bridge.config.ts", typedConfig)
      const config = yield* Load.load({ file, flags: {} })
      expect(config.hostname).toBe("mx.example.com")
      expect(config.listeners).toEqual([{ host: "0.0.0.0", port: 2587, mode: "plain" }])
      expect(config.limits.maxRecipients).toBe(20)
      expect(config.limits.maxMessageSize).toBe(1024 * 1024)
      expect(config.plugins.map((p) => p.name)).toEqual(["from-file"])
    }))

  it.scoped("lets flags override the file: scalars win, nested limits merge, arrays are replaced", () =>
    Effect.gen(function*() {
      const file = yield* writeConfig(yield* tempDir, "smtp-bridge.config.ts", typedConfig)
      const config = yield* Load.load({
        file,
        flags: { hostname: "relay.example.org", listen: ["127.0.0.1:2525"], limits: { maxMessageSize: 2048 } }
      })
      expect(config.hostname).toBe("relay.example.org")
      expect(config.listeners).toEqual([{ host: "127.0.0.1", port: 2525, mode: "plain" }])
      expect(config.limits.maxMessageSize).toBe(2048)
      expect(config.limits.maxRecipients).toBe(20)
      expect(config.trust).toEqual(["10.0.0.0/8"])
    }))

  it.scoped("completes the file's tls with a single --tls-cert flag", () =>
    Effect.gen(function*() {
      const file = yield* writeConfig(
        yield* tempDir,
        "c.ts",
        `export default { tls: { cert: "old.pem", key: "key.pem" } }\n`
      )
      const config = yield* Load.load({ file, flags: { tls: { cert: "new.pem" } } })
      expect(config.tls).toEqual({ cert: "new.pem", key: "key.pem" })
    }))

  it.scoped("blames the flags for a bad flag value and the file for a bad file value", () =>
    Effect.gen(function*() {
      const file = yield* writeConfig(yield* tempDir, "c.ts", `export default { limits: { maxConnections: 0 } }\n`)
      const fromFlag = yield* Effect.flip(Load.load({ file, flags: { limits: { maxRecipients: -1, maxConnections: 5 } } }))
      expect(fromFlag.message).toBe("Invalid config: limits.maxRecipients: expected a positive integer, got -1 (flags)")
      const fromFile = yield* Effect.flip(Load.load({ file, flags: {} }))
      expect(fromFile.message).toBe(`Invalid config: limits.maxConnections: expected a positive integer, got 0 (${file})`)
    }))

  it.scoped("fails on field config when the file cannot be imported", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const missing = yield* Effect.flip(Load.load({ file: Path.join(dir, "absent.ts"), flags: {} }))
      expect(missing.field).toBe("config")
      expect(missing.reason).toBe("Unreadable")
      expect(missing.message).toMatch(/^Invalid config: config: cannot load .*absent\.ts: /)

      const broken = yield* writeConfig(dir, "broken.ts", `export default {\n`)
      const syntax = yield* Effect.flip(Load.load({ file: broken, flags: {} }))
      expect(syntax.field).toBe("config")
      expect(syntax.message).not.toContain("\n")
    }))

  it.scoped("fails on field config when the file has no default export", () =>
    Effect.gen(function*() {
      const file = yield* writeConfig(yield* tempDir, "named.ts", `export const config = {}\n`)
      const error = yield* Effect.flip(Load.load({ file, flags: {} }))
      expect(error.field).toBe("config")
      expect(error.message).toContain("no default export")
    }))
})

describe("Load.importProblem", () => {
  const file = "/etc/smtp-bridge/smtp-bridge.config.ts"

  it("reads Bun's build messages: line, column and the first message", () => {
    const error = Object.assign(new Error(`3 errors building "${file}"`), {
      errors: [{ message: "Expected \"}\" but found \"trust\"", position: { line: 4, column: 3, lineText: "  trust: [\"secret\"]" } }]
    })
    expect(Load.importProblem(error, file)).toBe("line 4, column 3: Expected \"}\" but found \"trust\"")
  })

  it("reads Deno's file:line:column from the message, without the line's text", () => {
    const error = new TypeError(`SyntaxError: Expected ',', got 'trust'\n  |\n4 |   trust: ["hunter2"]\n  |   ~~~~~\n    at file://${file}:4:3`)
    const problem = Load.importProblem(error, file)
    expect(problem).toBe("line 4, column 3: SyntaxError: Expected ',', got 'trust'")
    expect(problem).not.toContain("hunter2")
  })

  it("reads Node's file:line at the top of the stack", () => {
    const error = new SyntaxError("Expected ',', got 'ident'")
    error.stack = `file://${file}:4\n  trust: ["hunter2"]\n  ^^^^^\n\nSyntaxError: Expected ',', got 'ident'`
    expect(Load.importProblem(error, file)).toBe("line 4: Expected ',', got 'ident'")
  })

  it("gives the message alone when no position is known", () => {
    expect(Load.importProblem(new Error("Cannot find module 'x'"), file)).toBe("Cannot find module 'x'")
  })
})
