/** Helpers for the real servers the tests start (smtp-sink, dovecot, HAProxy): stop by PID, wait for a port. */
import type { ChildProcess } from "node:child_process"
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

/** Resolves once something accepts TCP connections on 127.0.0.1:`port` (5 s at most). */
export const waitForPort = async (port: number, what = "nothing"): Promise<void> => {
  for (let attempt = 0; attempt < 100; attempt++) {
    const open = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: "127.0.0.1", port }, () => {
        s.destroy()
        resolve(true)
      })
      s.on("error", () => resolve(false))
    })
    if (open) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`${what} listens on 127.0.0.1:${port}`)
}
