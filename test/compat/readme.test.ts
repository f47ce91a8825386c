/**
 * Every command the README tells a reader to type, run as written from a directory that looks like
 * a fresh checkout after `npm install` (the project's files linked into a temporary directory, so
 * that `users.htpasswd` or `./mail` land there). The only changes: listeners on port 0 instead of
 * fixed ports (other tests run in parallel), and files under /etc moved into that directory.
 * A new command in the README fails the first test until it is run (or skipped with a reason) here.
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { testCertificate } from "../support/certs.ts"
import { run } from "../support/exec.ts"
import { shellCommands } from "../support/markdown.ts"
import { connect } from "../support/SmtpClient.ts"
import { nodeBinary, projectRoot } from "../support/runtimes.ts"

const readme = fs.readFileSync(path.join(projectRoot, "README.md"), "utf8")

const checkout = fs.mkdtempSync(path.join(os.tmpdir(), "sb-readme-"))
for (const entry of ["package.json", "package-lock.json", "deno.json", "tsconfig.json", "src", "plugins", "bin", "node_modules"]) {
  fs.symlinkSync(path.join(projectRoot, entry), path.join(checkout, entry))
}
afterAll(() => fs.rmSync(checkout, { recursive: true, force: true }))

const sh = (command: string, input?: string) =>
  run("sh", ["-c", command], { cwd: checkout, timeoutMs: 90_000, env: { NO_COLOR: "1" }, ...(input === undefined ? {} : { input }) })

interface Listener {
  readonly port: number
  readonly tls: boolean
}

/**
 * Starts a serving command in its own process group (npm and npx start children), waits for its
 * "listening on" line, runs `body` with the listeners, then stops the group it started.
 */
const serving = async (command: string, body: (listeners: ReadonlyArray<Listener>) => Promise<void>) => {
  const child = spawn("sh", ["-c", command], { cwd: checkout, detached: true, env: { ...process.env, NO_COLOR: "1" }, stdio: ["ignore", "pipe", "pipe"] })
  let output = ""
  child.stdout.setEncoding("utf8").on("data", (t: string) => (output += t))
  child.stderr.setEncoding("utf8").on("data", (t: string) => (output += t))
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()))
  const stop = (signal: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, signal)
    } catch {
      // The group is gone.
    }
  }
  try {
    const line = await new Promise<string>((resolve, reject) => {
      const timer = setInterval(() => {
        const match = /listening on ([^;]*);/.exec(output)
        if (match !== null) resolve(match[1]!)
        else if (child.exitCode !== null) reject(new Error(`${command} exited:\n${output}`))
      }, 50)
      setTimeout(() => reject(new Error(`${command} did not start:\n${output}`)), 60_000)
      void exited.finally(() => clearInterval(timer))
    }).finally(() => undefined)
    const listeners = [...line.matchAll(/127\.0\.0\.1:(\d+) \(([^)]*)\)/g)].map((m) => ({ port: Number(m[1]), tls: m[2] === "implicit TLS" }))
    await body(listeners)
  } finally {
    stop("SIGTERM")
    const killer = setTimeout(() => stop("SIGKILL"), 10_000)
    await exited
    clearTimeout(killer)
  }
}

const greets = async (listeners: ReadonlyArray<Listener>) => {
  expect(listeners.length).toBeGreaterThan(0)
  const c = await connect(listeners[0]!.port)
  expect(await c.read()).toMatch(/^220 /)
  expect(await c.command("QUIT")).toMatch(/^221 /)
}

const onPortZero = " --listen 127.0.0.1:0"
const password = "README walk-through 1"

/** Each README command, as written, with what running it must show; or why it is not run here. */
const documented: Record<string, (() => Promise<void>) | { readonly skip: string }> = {
  "npm install": { skip: "it is how this checkout was made; .ci/run runs it before the tests" },
  "npm test": { skip: "it runs this test (and .ci/run runs it)" },
  "npm install smtp-bridge": { skip: "test/compat/package.test.ts installs the packed tarball into a scratch project as npm would (no network in tests)" },
  "npx smtp-bridge serve --config smtp-bridge.config.ts": { skip: "test/compat/package.test.ts runs the installed bin with its config and plugin under Node" },
  "npx bun node_modules/.bin/smtp-bridge serve --config smtp-bridge.config.ts": { skip: "test/compat/package.test.ts runs the installed bin under Bun" },
  "npx deno run -A node_modules/.bin/smtp-bridge serve --config smtp-bridge.config.ts": { skip: "test/compat/package.test.ts runs the installed bin under Deno" },
  "npm run check": { skip: "npm test runs it" },
  "npm run lint": { skip: "npm test runs it" },
  "npm run test:bun": { skip: "npm test runs it" },
  "npm run test:compat": { skip: "npm test runs it (this file is part of it)" },
  "npm run build:bun": { skip: "test/compat/binary.test.ts runs the same build (the script's own flags) and delivers through the binary" },
  "npm run build:deno": { skip: "deno compile downloads its denort base binary at build time, which a loopback-only test cannot do" },
  "npm run fuzz -- --seconds N": { skip: "a fuzzing run is long by design (docs/fuzzing.md): ten minutes per runtime before a release" },
  "npm run test:mutants": { skip: "minutes: it runs the suite's relevant files once per planted bug" },
  "bun build --compile --bytecode": { skip: "names what npm run build:bun runs, not a command to type" },
  "deno compile": { skip: "names what npm run build:deno runs, not a command to type" },
  "deno lint": { skip: "names what npm run lint runs, not a command to type" },
  "npx bun bench/memory.ts [bun|deno|node]": { skip: "a benchmark: minutes of CPU for each runtime" },
  "npm start": () => serving(`npm start --${onPortZero}`, greets),
  "npx bun run start": () => serving(`npx bun run start${onPortZero}`, greets),
  "npx bun src/cli.ts serve": () => serving(`npx bun src/cli.ts serve${onPortZero}`, greets),
  "npx deno task start": () => serving(`npx deno task start${onPortZero}`, greets),
  "npx deno run -A src/cli.ts serve": () => serving(`npx deno run -A src/cli.ts serve${onPortZero}`, greets),
  // Node >= 22.19 is not on PATH in CI (the machine's Node is 20): the one found for the compat tests runs it.
  "node src/cli.ts serve": async () => serving(`'${await nodeBinary()}' src/cli.ts serve${onPortZero}`, greets),
  "npm start -- --trust 127.0.0.1/32": () =>
    serving(`npm start -- --trust 127.0.0.1/32${onPortZero}`, async ([listener]) => {
      const swaks = await sh(documentedCommand("swaks --server").replace("127.0.0.1:2525", `127.0.0.1:${listener!.port}`))
      expect(swaks.code, swaks.stdout).toBe(0)
      const ls = await sh(documentedCommand("ls mail/new/"))
      expect(ls.stdout.trim().split("\n")).toHaveLength(1)
    }),
  "swaks --server 127.0.0.1:2525 --from alice@example.com --to bob@example.com": { skip: "run against npm start -- --trust 127.0.0.1/32" },
  "ls mail/new/": { skip: "run after the swaks command above" },
  "npx bun src/cli.ts hash-password --user alice@example.com > users.htpasswd": async () => {
    const hashed = await sh(documentedCommand("hash-password"), `${password}\n`)
    expect(hashed.code, hashed.stderr).toBe(0)
    expect(fs.readFileSync(path.join(checkout, "users.htpasswd"), "utf8")).toMatch(/^alice@example\.com:\$2y\$\d\d\$.{53}\n$/)
    // The next README command serves these users over TLS: a real client authenticates as alice.
    const cert = testCertificate()
    const command = documentedCommand("--listen-tls")
      .replace("0.0.0.0:587", "127.0.0.1:0").replace("0.0.0.0:465", "127.0.0.1:0")
      .replace("/etc/ssl/mx.pem", cert.cert).replace("/etc/ssl/mx.key", cert.key)
    await serving(command, async (listeners) => {
      const implicit = listeners.find((l) => l.tls)!
      const swaks = await run("swaks", [
        "--server", `127.0.0.1:${implicit.port}`, "--tls-on-connect", "--auth", "PLAIN", "--auth-user", "alice@example.com",
        "--auth-password", password, "--from", "alice@example.com", "--to", "bob@example.net"
      ])
      expect(swaks.stdout).toMatch(/<~ {2}235 /)
      expect(swaks.stdout).toMatch(/<~ {2}250 2\.0\.0 Ok: queued as/)
    })
  },
  "npm start -- --listen 0.0.0.0:587 --listen-tls 0.0.0.0:465 --tls-cert /etc/ssl/mx.pem --tls-key /etc/ssl/mx.key --users users.htpasswd --hostname mx.example.com": {
    skip: "run with the users that the hash-password command above wrote"
  },
  "npx bun src/cli.ts dkim keygen --domain example.com --selector s2026 --algorithm ed25519 --out /etc/smtp-bridge/example.com.key": async () => {
    const keygen = await sh(documentedCommand("dkim keygen").replace("/etc/smtp-bridge/", `${checkout}/`))
    expect(keygen.code, keygen.stderr).toBe(0)
    expect(keygen.stdout).toContain("v=DKIM1; k=ed25519; p=")
    const serve = documentedCommand("--dkim-sign").replace("/etc/smtp-bridge/", `${checkout}/`)
    await serving(`${serve}${onPortZero}`, greets)
  },
  "npm start -- --dkim-sign example.com:s2026:/etc/smtp-bridge/example.com.key --verify --dns 127.0.0.1:53": {
    skip: "run with the key that the dkim keygen command above wrote"
  },
  "npx bun src/cli.ts check-config": async () => {
    const result = await sh(documentedCommand("check-config"))
    expect(result.code, result.stderr).toBe(0)
    expect(result.stdout).toMatch(/^config ok: hostname /)
  },
  "npx bun src/cli.ts plugins": async () => {
    const result = await sh(documentedCommand("src/cli.ts plugins"))
    expect(result.code, result.stderr).toBe(0)
    expect(result.stdout).toMatch(/^Plugins in run order/)
  },
  "npx bun src/cli.ts queue list|flush|remove ID --spool DIR": async () => {
    const synopsis = documentedCommand("queue list")
    fs.mkdirSync(path.join(checkout, "spool"), { recursive: true })
    const list = await sh(synopsis.replace("list|flush|remove ID", "list").replace("DIR", "spool"))
    expect(list.code, list.stderr).toBe(0)
    const flush = await sh(synopsis.replace("list|flush|remove ID", "flush").replace("DIR", "spool"))
    expect(flush.code, flush.stderr).toBe(0)
    const remove = await sh(synopsis.replace("list|flush|remove ID", "remove nosuchid").replace("DIR", "spool"))
    expect(remove.stderr).toMatch(/nosuchid/)
  }
}

/** The one README command containing `fragment`, as written. */
const documentedCommand = (fragment: string): string => {
  const found = shellCommands(readme).filter((c) => c.includes(fragment))
  if (found.length !== 1) throw new Error(`expected one README command with ${fragment}, found ${JSON.stringify(found)}`)
  return found[0]!
}

describe("the README's commands", () => {
  it("are each run below or skipped with a reason, and none starts with bun, deno or smtp-bridge (not on PATH)", () => {
    const commands = shellCommands(readme)
    expect(commands.filter((c) => !(c in documented))).toEqual([])
    expect(Object.keys(documented).filter((c) => !commands.includes(c))).toEqual([])
    const bare = commands.filter((c) => /^(bun|deno|smtp-bridge) /.test(c) && !(typeof documented[c] === "object"))
    expect(bare).toEqual([])
  })

  for (const [command, check] of Object.entries(documented)) {
    if (typeof check === "function") it(command, check, 180_000)
    else it.skip(`${command} (not run: ${check.skip})`)
  }
})
