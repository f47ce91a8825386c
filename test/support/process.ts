/** Helpers for the real servers the tests start (smtp-sink, dovecot, HAProxy): stop by PID, wait for a port. */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
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

/**
 * The TCP port a process listens on, read back from Linux's /proc (its socket inodes matched
 * against the kernel's LISTEN table), for servers started on port 0 that do not print the port
 * they got (smtp-sink). Binding port 0 leaves no window in which another process can take a port
 * that was probed free; polls until the process listens (`attempts` × 50 ms at most).
 */
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

export const listeningPort = async (pid: number, what: string, attempts = 100): Promise<number> => {
  for (let attempt = 0; attempt < attempts; attempt++) {
    const inodes = new Set<string>()
    let fds: Array<string> = []
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`)
    } catch {
      // Unreadable for a moment while the process execs or drops privileges; gone for good only
      // when the PID no longer exists.
      if (!alive(pid)) throw new Error(`${what} (pid ${pid}) exited before listening`)
    }
    for (const fd of fds) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`, { encoding: "utf8" }))
        if (m !== null) inodes.add(m[1]!)
      } catch {
        // closed since it was listed
      }
    }
    for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
      const rows = fs.existsSync(table) ? fs.readFileSync(table, "utf8").split("\n").slice(1) : []
      for (const row of rows) {
        const f = row.trim().split(/\s+/)
        // f[1] local address HEX:PORT, f[3] state (0A is LISTEN), f[9] the socket's inode.
        if (f[3] === "0A" && f[9] !== undefined && inodes.has(f[9])) return Number.parseInt(f[1]!.split(":")[1]!, 16)
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`${what} (pid ${pid}) does not listen on any TCP port`)
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
