/**
 * Runs a command-line client (swaks, `python3 -c` smtplib scripts, `openssl s_client`) to completion
 * with a hard timeout, so a client stuck on a server bug fails its test instead of hanging it.
 *
 * @example
 * const r = await run("swaks", ["--server", `127.0.0.1:${port}`, "--to", "bob@example.com"])
 * expect(r.code).toBe(0)
 */
import { spawn } from "node:child_process"

export interface RunOptions {
  /** Written to stdin, which is then closed. Without it stdin is closed at once. */
  readonly input?: string | Uint8Array
  /** Hard limit; the child is killed (SIGKILL, by its PID) past it. 20 s by default. */
  readonly timeoutMs?: number
  /** Added to (and overriding) the current environment. */
  readonly env?: Record<string, string>
  readonly cwd?: string
}

export interface RunResult {
  /** The exit code; `null` when the child was killed by a signal (e.g. on timeout). */
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
  readonly timedOut: boolean
}

export const run = (cmd: string, args: ReadonlyArray<string>, options: RunOptions = {}): Promise<RunResult> =>
  new Promise((resolve, reject) => {
    const child = spawn(cmd, [...args], {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: ["pipe", "pipe", "pipe"]
    })
    const stdout: Array<Buffer> = []
    const stderr: Array<Buffer> = []
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      if (child.pid !== undefined) {
        try {
          process.kill(child.pid, "SIGKILL")
        } catch {
          // Already gone.
        }
      }
    }, options.timeoutMs ?? 20_000)
    child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk))
    child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk))
    // A child that exits without reading all of stdin makes the write fail with EPIPE; the exit code tells the story.
    child.stdin.on("error", () => {})
    child.on("error", (error) => {
      clearTimeout(timer)
      reject(new Error(`cannot run ${cmd}: ${error.message}`))
    })
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      resolve({
        code,
        signal,
        stdout: Buffer.concat(stdout).toString("utf8"),
        stderr: Buffer.concat(stderr).toString("utf8"),
        timedOut
      })
    })
    child.stdin.end(options.input ?? "")
  })
