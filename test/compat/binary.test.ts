/**
 * Single executables: `bun build --compile --bytecode` (the `build:bun` script, whose flags the
 * tests read so that they build what an operator builds) makes one file that serves and delivers
 * without the sources or node_modules beside it, loading its modules from bytecode compiled at
 * build time (start-up: bench/startup.py). `deno compile` (`build:deno`) is not
 * tested: it downloads Deno's `denort` base binary at build time, which a test may not do (see the
 * README's Development section).
 */
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { run } from "../support/exec.ts"
import { bunBinary, projectRoot } from "../support/runtimes.ts"
import { type Client, connect } from "../support/SmtpClient.ts"

/**
 * Starts the binary from `dir` (an empty directory by default, removed after), sends one message,
 * stops it with SIGTERM; gives the delivered file. `afterEhlo` runs on the session after EHLO,
 * `beforeData` after a first accepted RCPT.
 */
const deliverThrough = async (
  binary: string,
  options: {
    readonly dir?: string
    readonly args?: ReadonlyArray<string>
    /** False: no --trust, so MAIL needs the AUTH that `afterEhlo` does. */
    readonly trust?: boolean
    readonly afterEhlo?: (c: Client) => Promise<void>
    readonly beforeData?: (c: Client) => Promise<void>
    /** The message's header and body (a Subject and a body line by default). */
    readonly message?: string
    /** Directories the binary must not see: an empty file system is mounted over each (see `hiding`). */
    readonly hide?: ReadonlyArray<string>
  } = {}
) => {
  const dir = options.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), "sb-binary-run-"))
  const maildir = path.join(dir, "mail")
  const args = ["serve", "--listen", "127.0.0.1:0", "--hostname", "binary.test", "--maildir", maildir, ...(options.trust === false ? [] : ["--trust", "127.0.0.1/32"]), ...(options.args ?? [])]
  const hidden = options.hide ?? []
  const command = hidden.length === 0 ? [binary, ...args] : ["unshare", "-m", "sh", "-c", hiding(hidden.length), "sh", ...hidden, binary, ...args]
  const child = spawn(command[0]!, command.slice(1), {
    cwd: dir,
    env: { ...process.env, NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  child.stdout.setEncoding("utf8").on("data", (t: string) => (output += t))
  child.stderr.setEncoding("utf8").on("data", (t: string) => (output += t))
  const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)))
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setInterval(() => {
        const match = /listening on 127\.0\.0\.1:(\d+)/.exec(output)
        if (match !== null) {
          clearInterval(timer)
          resolve(Number(match[1]))
        }
      }, 50)
      setTimeout(() => {
        clearInterval(timer)
        reject(new Error(`the binary did not start:\n${output}`))
      }, 30_000)
    })
    const c = await connect(port)
    expect(await c.read()).toMatch(/^220 binary\.test /)
    await c.command("EHLO client.test")
    await options.afterEhlo?.(c)
    expect(await c.command("MAIL FROM:<alice@example.com>")).toBe("250 2.1.0 Ok")
    expect(await c.command("RCPT TO:<bob@example.net>")).toBe("250 2.1.5 Ok")
    await options.beforeData?.(c)
    expect(await c.command("DATA")).toMatch(/^354 /)
    expect(await c.command(`${options.message ?? "Subject: single binary\r\n\r\n"}Delivered by one file.\r\n.`)).toMatch(/^250 2\.0\.0 Ok: queued as \w+$/)
    await c.command("QUIT")
    const files = fs.readdirSync(path.join(maildir, "new"))
    expect(files).toHaveLength(1)
    const delivered = fs.readFileSync(path.join(maildir, "new", files[0]!), "utf8")
    expect(delivered).toContain("Delivered by one file.")
    child.kill("SIGTERM")
    expect(await exited).toBe(0)
    return delivered
  } finally {
    if (child.exitCode === null) child.kill("SIGKILL")
    await exited
    if (options.dir === undefined) fs.rmSync(dir, { recursive: true, force: true })
  }
}

/**
 * A shell script for `unshare -m sh -c SCRIPT sh DIR... COMMAND...`: a tmpfs over each of the first
 * `n` arguments, in a mount namespace of the binary's own (nothing changes outside it), then exec
 * (the binary keeps the PID, so a SIGTERM reaches it).
 */
const hiding = (n: number): string => `${Array.from({ length: n }, (_, i) => `mount -t tmpfs none "$${i + 1}" &&`).join(" ")} shift ${n} && exec "$@"`

/** Whether this machine lets a test hide directories from a process (root, and mount namespaces). */
const canHide = (): boolean => {
  const probe = spawnSync("unshare", ["-m", "sh", "-c", hiding(1), "sh", os.tmpdir(), "true"], { stdio: "ignore" })
  return probe.status === 0
}

/** The `build:bun` script's arguments after `bun`, writing the binary to `out`. */
const buildArgs = (out: string): Array<string> => {
  const manifest = JSON.parse(fs.readFileSync(path.join(projectRoot, "package.json"), "utf8")) as { scripts: Record<string, string> }
  const args = manifest.scripts["build:bun"]!.split(" ").slice(1)
  args[args.indexOf("--outfile") + 1] = out
  return args
}

describe("single executables", () => {
  // One build for the tests (a build takes some seconds and 120 MB); removed after them.
  let out = ""
  beforeAll(async () => {
    out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "sb-binary-")), "smtp-bridge")
    const build = await run(await bunBinary(), buildArgs(out), { cwd: projectRoot, timeoutMs: 120_000 })
    expect(build.code, build.stdout + build.stderr).toBe(0)
  }, 180_000)
  afterAll(() => {
    if (out !== "") fs.rmSync(path.dirname(out), { recursive: true, force: true })
  })

  it("bun build --compile makes a binary that delivers a message into the Maildir", async () => {
    await deliverThrough(out)
  }, 60_000)

  it("the Bun binary loads a config file that imports smtp-bridge and a custom plugin, which refuses RCPT with 550 5.1.2", async () => {
    // The example config and plugin (they import "smtp-bridge" and "effect"), in a directory with no node_modules.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-binary-config-"))
    for (const file of ["smtp-bridge.config.ts", "no-example-dot-com.ts"]) {
      fs.copyFileSync(path.join(projectRoot, "docs", "examples", file), path.join(dir, file))
    }
    try {
      await deliverThrough(out, {
        dir,
        args: ["--config", "smtp-bridge.config.ts"],
        beforeData: async (c) => {
          expect(await c.command("RCPT TO:<carol@example.com>")).toBe("550 5.1.2 Domain example.com does not accept mail")
        }
      })
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 60_000)

  // A bytecode build keeps the build machine's paths in import.meta.url (and a package's __dirname):
  // a file read through one of them works on the build machine and nowhere else. Here the sources
  // and node_modules are hidden from the binary, as they are on a server it was copied to.
  it.skipIf(!canHide())("with the sources and node_modules hidden, the binary loads a config file that imports smtp-bridge, signs with --dkim-sign, checks with --verify and AUTHs with --users", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-binary-hidden-"))
    const hide = [fs.realpathSync(path.join(projectRoot, "node_modules")), fs.realpathSync(projectRoot)]
    for (const file of ["smtp-bridge.config.ts", "no-example-dot-com.ts"]) {
      fs.copyFileSync(path.join(projectRoot, "docs", "examples", file), path.join(dir, file))
    }
    try {
      const keygen = await run(out, ["dkim", "keygen", "--domain", "example.com", "--selector", "s1", "--out", path.join(dir, "s1.pem")], { cwd: dir, timeoutMs: 30_000 })
      expect(keygen.code, keygen.stderr).toBe(0)
      const hashed = await run(out, ["hash-password", "--user", "alice@example.com"], { cwd: dir, input: "binary-secret\n", timeoutMs: 30_000 })
      expect(hashed.code, hashed.stderr).toBe(0)
      fs.writeFileSync(path.join(dir, "users.htpasswd"), hashed.stdout)
      const plain = Buffer.from("\0alice@example.com\0binary-secret").toString("base64")
      const delivered = await deliverThrough(out, {
        dir,
        hide,
        trust: false,
        // DNS on a loopback port where nothing answers: the checks run and say temperror.
        args: ["--config", "smtp-bridge.config.ts", "--users", "users.htpasswd", "--allow-insecure-auth", "--verify", "--dns", "127.0.0.1:1", "--dkim-sign", "example.com:s1:s1.pem"],
        afterEhlo: async (c) => {
          expect(await c.command(`AUTH PLAIN ${plain}`)).toMatch(/^235 2\.7\.0 /)
        },
        beforeData: async (c) => {
          expect(await c.command("RCPT TO:<carol@example.com>")).toBe("550 5.1.2 Domain example.com does not accept mail")
        },
        message: "From: alice@example.com\r\nTo: bob@example.net\r\nSubject: single binary\r\n\r\n"
      })
      expect(delivered).toMatch(/^DKIM-Signature: v=1; a=rsa-sha256; [^]*\bd=example\.com; s=s1;/m)
      expect(delivered).toMatch(/^Authentication-Results: binary\.test; /m)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 60_000)

  it("the binary's hash-password writes a users file, and its lazily loaded AUTH accepts that password (235) and refuses another (535)", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-binary-users-"))
    try {
      const hashed = await run(out, ["hash-password", "--user", "alice@example.com"], { cwd: dir, input: "binary-secret\n", timeoutMs: 30_000 })
      expect(hashed.code, hashed.stderr).toBe(0)
      expect(hashed.stdout).toMatch(/^alice@example\.com:\$2[aby]\$/)
      fs.writeFileSync(path.join(dir, "users.htpasswd"), hashed.stdout)
      const plain = (password: string) => Buffer.from(`\0alice@example.com\0${password}`).toString("base64")
      await deliverThrough(out, {
        dir,
        trust: false,
        args: ["--users", "users.htpasswd", "--allow-insecure-auth"],
        afterEhlo: async (c) => {
          expect(await c.command(`AUTH PLAIN ${plain("not-it")}`)).toMatch(/^535 5\.7\.8 /)
          expect(await c.command(`AUTH PLAIN ${plain("binary-secret")}`)).toMatch(/^235 2\.7\.0 /)
        }
      })
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 60_000)
})
