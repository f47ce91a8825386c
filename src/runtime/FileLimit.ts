/**
 * How many files this process may open (RLIMIT_NOFILE's soft limit), read from Linux's
 * `/proc/self/limits`. Hand-written because neither Node, Deno nor Bun offers getrlimit to
 * JavaScript (each raises the soft limit to the hard one at start, so what is read here is what
 * the process has). Elsewhere, or when unlimited or unreadable, the answer is `undefined`.
 *
 * Why the server asks: past the limit `accept` fails, and the runtimes then differ: Bun retries at
 * once and spins a core while connections wait unaccepted, Deno's `node:net` server stops
 * accepting for good, Node closes the surplus connections. The server keeps its sessions under
 * what the limit allows instead (see `sessionsAllowed`).
 */
import { readFileSync } from "node:fs"

/** The soft "Max open files" of a `/proc/<pid>/limits` text; `undefined` when unlimited or absent. */
export const parse = (limits: string): number | undefined => {
  const line = /^Max open files\s+(\S+)\s+(\S+)/m.exec(limits)
  if (line === null) return undefined
  const soft = line[1]!
  return /^\d+$/.test(soft) ? Number(soft) : undefined
}

let known: number | undefined | null = null

/** This process's limit on open files (read once), or `undefined` when there is none to know. */
export const openFiles = (): number | undefined => {
  if (known !== null) return known
  try {
    known = process.platform === "linux" ? parse(readFileSync("/proc/self/limits", "utf8")) : undefined
  } catch {
    known = undefined
  }
  return known
}

const isDeno = (globalThis as { readonly Deno?: unknown }).Deno !== undefined

/**
 * Descriptors a session may hold at once. Delivering a message spilled to disk, it holds its socket,
 * the spilled file (read) and the Maildir's or the spool's file in `tmp/` (written), or a
 * webhook's connection: three. Counted as two, the sessions the cap let in ran the process out of
 * descriptors while they delivered together (303 of 468 answered 451 4.3.0 under Bun at 1,000
 * files). Deno runs each read and fsync of a file off its main thread on a duplicate of its
 * descriptor (strace: `fcntl(F_DUPFD_CLOEXEC)` before each `pread`), so there a file being read
 * holds two: four.
 */
export const perSession = isDeno ? 4 : 3

/**
 * Descriptors a listener may hold at once for connections accepted and not yet closed, beyond the
 * sessions: those refused at the cap. Bun closes each before it accepts many more (one or two in
 * flight in a burst of 1,000). Deno's `node:net` accepts in batches and closes a batch's sockets
 * only later: a burst of 2,000 held 128 at once, and while sessions delivered, connections every
 * 3 ms held 110. Deno's listener never recovers from a failed accept (no "error" event; it stops
 * for good, a plain `node:net` server too), so that many are set aside for it.
 */
export const perListener = isDeno ? 128 : 0

/**
 * How many sessions fit under `limit` once `reserved` descriptors (listeners, upstream sessions,
 * DNS, logs) are set aside, each session holding `each` (`perSession` and what plugins open for
 * it); at least 1.
 */
export const sessionsAllowed = (limit: number, reserved: number, each: number = perSession): number =>
  Math.max(1, Math.floor((limit - reserved) / each))
