/** Helpers for the real servers the tests start (smtp-sink, dovecot, HAProxy): stop by PID, wait for a port. */
import { type ChildProcess, spawn } from "node:child_process"
import * as net from "node:net"

export interface Supervised {
  /** Resolves once the child has exited. */
  readonly exited: Promise<void>
  /** Sends a signal to the child (by its PID) unless it is gone. */
  readonly kill: (signal: NodeJS.Signals) => void
  /** Whether the child has exited. */
  readonly gone: () => boolean
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the child is gone. */
  readonly stop: (graceMs?: number) => Promise<void>
}

export const supervise = (child: ChildProcess): Supervised => {
  const pid = child.pid
  let gone = pid === undefined
  const exited = new Promise<void>((resolve) => {
    if (gone) return resolve()
    child.once("close", () => {
      gone = true
      resolve()
    })
  })
  const kill = (signal: NodeJS.Signals) => {
    if (gone || pid === undefined) return
    try {
      process.kill(pid, signal)
    } catch {
      // Already gone.
    }
  }
  const stop = async (graceMs = 3_000) => {
    kill("SIGTERM")
    const timer = setTimeout(() => kill("SIGKILL"), graceMs)
    await exited
    clearTimeout(timer)
  }
  return { exited, kill, gone: () => gone, stop }
}

/** Whether something accepts a TCP connection on 127.0.0.1:`port` right now. */
export const listening = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const s = net.connect({ host: "127.0.0.1", port }, () => {
      s.destroy()
      resolve(true)
    })
    s.on("error", () => resolve(false))
  })

/**
 * Resolves once something accepts TCP connections on 127.0.0.1:`port` (`attempts` × 50 ms at
 * most). With `exited`, gives up as soon as the server's process is gone; `log` is added to the
 * error.
 */
export const waitForPort = async (
  port: number,
  what = "nothing",
  options: { readonly exited?: () => boolean; readonly log?: () => string; readonly attempts?: number } = {}
): Promise<void> => {
  const log = () => (options.log === undefined ? "" : `:\n${options.log()}`)
  for (let attempt = 0; attempt < (options.attempts ?? 100); attempt++) {
    if (options.exited?.() === true) throw new Error(`${what} exited before listening on 127.0.0.1:${port}${log()}`)
    if (await listening(port)) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`${what} listens on 127.0.0.1:${port}${log()}`)
}

/** Starts `binary` with its output collected, supervised by PID. */
export const spawnLogged = (binary: string, args: ReadonlyArray<string>) => {
  const child = spawn(binary, [...args], { stdio: ["ignore", "pipe", "pipe"] })
  const pid = child.pid
  if (pid === undefined) throw new Error(`cannot start ${binary}`)
  let output = ""
  child.stdout!.setEncoding("utf8").on("data", (t: string) => void (output += t))
  child.stderr!.setEncoding("utf8").on("data", (t: string) => void (output += t))
  return { pid, output: () => output, ...supervise(child) }
}
