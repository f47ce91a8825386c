// Start-up loads only what a config uses (issue 16): importing the library and the CLI's modules
// pulls in neither mailauth (with joi, libmime and its ASN.1 schemas) nor ioredis nor
// node:worker_threads; making the mail-authentication plugin starts loading mailauth at once, so
// the first message does not pay for it. A plain `serve` loads neither @effect/cli nor Effect's
// root module nor a built-in plugin its config does not use. Checked in fresh Bun processes,
// whose module registry (`require.cache`) lists ES modules too.
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { bunBinary, freePort, projectRoot, spawnProgram } from "../support/runtimes.ts"

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

  describe("a running serve", () => {
    // Prints the loaded modules when asked, once the bridge is listening.
    const preload = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "sb-lazy-")), "modules.ts")
    fs.writeFileSync(preload, `process.on("SIGUSR2", () => process.stdout.write("MODULES " + JSON.stringify(Object.keys(require.cache)) + "\\n"))\n`)

    const modulesOf = async (flags: ReadonlyArray<string>): Promise<ReadonlyArray<string>> => {
      const maildir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-lazy-maildir-"))
      const args = ["--preload", preload, path.join(projectRoot, "src/cli.ts"), "serve", "--listen", `127.0.0.1:${await freePort()}`, "--maildir", maildir, ...flags]
      const bridge = await spawnProgram("bun", await bunBinary(), args)
      try {
        await bridge.waitForLog(/smtp-bridge listening on/, 30_000)
        bridge.signal("SIGUSR2")
        const [, list] = await bridge.waitForLog(/MODULES (\[.*\])\n/, 10_000)
        return (JSON.parse(list!) as Array<string>).map((m) => path.relative(projectRoot, m).replaceAll(path.sep, "/"))
      } finally {
        await bridge.kill()
      }
    }

    const builtIns = fs.readdirSync(path.join(projectRoot, "plugins"))
    // Every config runs these three; auth-htpasswd's parser also checks a users file before start.
    const always = ["auth-htpasswd", "received", "relay-policy", "sender-identity"]
    const pluginsLoaded = (modules: ReadonlyArray<string>) =>
      builtIns.filter((name) => modules.includes(`plugins/${name}/index.ts`))

    it("loads neither @effect/cli nor Effect's root module nor the plugins, transports and admin listener its config leaves out", async () => {
      const modules = await modulesOf([])
      expect(modules).toContain("src/Bridge.ts")
      expect(pluginsLoaded(modules).sort()).toEqual(always)
      expect(modules.filter((m) => m.includes("node_modules/@effect/cli/"))).toEqual([])
      expect(modules.filter((m) => /node_modules\/effect\/dist\/esm\/index\.js$/.test(m))).toEqual([])
      expect(modules.filter((m) => /node_modules\/(jose|ldapts|mailauth|ioredis|yaml|toml)\//.test(m))).toEqual([])
      expect(modules).not.toContain("src/admin/Admin.ts")
      // Nor @effect/platform's HTTP client and server, which only a webhook, the admin listener or an HTTP plugin use.
      expect(modules.filter((m) => /node_modules\/@effect\/platform\/dist\/esm\/(internal\/)?[Hh]ttp/.test(m))).toEqual([])
    }, 60_000)

    it("loads the plugins the config names: rate limits, an HTTP hook, an LDAP backend", async () => {
      const modules = await modulesOf([
        "--rate-limit", "ip=100/hour",
        "--hook", "rcptTo=http://127.0.0.1:9/hook",
        "--auth", "ldap://127.0.0.1:9/dc=example,dc=com?uid",
        "--allow-insecure-auth"
      ])
      expect(pluginsLoaded(modules).sort()).toEqual([...always, "auth-ldap", "http-hooks", "rate-limit"].sort())
    }, 60_000)
  })
})
