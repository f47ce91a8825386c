/**
 * bcrypt hashing and verification, never on the event loop: one check at cost 10 is ~65 ms of
 * CPU, and on the main thread 15 guesses a second took 94 % of a core and made a real login wait
 * 1-1.6 s (bench/auth-latency.ts measures NOOP latency on another session meanwhile).
 *
 * - Bun: `Bun.password`, whose async calls run on Bun's own thread pool (native bcrypt).
 * - Deno and Node: a small pool of `node:worker_threads` workers running bcryptjs
 *   (`PasswordWorker.ts`), started on first use and holding the process open only while busy.
 *
 * bcrypt reads only the first 72 bytes of a password, and Bun pre-hashes longer ones with SHA-512
 * where bcryptjs truncates them: the two would disagree. So a password over 72 bytes is refused
 * for hashing and never verifies, on every runtime.
 *
 * @example
 * const hash = await Password.hash("correct horse", 10) // "$2b$10$..."
 * await Password.verify("correct horse", hash) // true
 */
import { availableParallelism } from "node:os"
import type { Worker } from "node:worker_threads"
import type { Done, Job, Request } from "./PasswordWorker.ts"

/** The longest password bcrypt uses whole, in UTF-8 bytes. */
export const maxBytes = 72

/** UTF-8 length, which is what bcrypt counts. */
export const byteLength = (password: string): number => new TextEncoder().encode(password).byteLength

interface BunPassword {
  readonly hash: (password: string, options: { readonly algorithm: "bcrypt"; readonly cost: number }) => Promise<string>
  readonly verify: (password: string, hash: string) => Promise<boolean>
}

const bun = (globalThis as { readonly Bun?: { readonly password: BunPassword } }).Bun?.password

interface Pooled {
  readonly worker: Worker
  readonly jobs: Map<number, { readonly resolve: (value: string | boolean) => void; readonly reject: (error: Error) => void }>
}

// Checks at once, on either path: one core fewer than the machine has (at most 4), so that a
// flood of AUTH never takes the core the event loop needs. With every core busy hashing (Bun's
// pool uses them all), NOOP p99 was 29-31 ms on 2 cores; bench/RESULTS.md has the figures.
const poolSize = Math.max(1, Math.min(4, availableParallelism() - 1))
let running = 0
const waiting: Array<() => void> = []

const abandoned = (signal: AbortSignal): Error =>
  signal.reason instanceof Error ? signal.reason : new Error("password check abandoned by its caller")

/**
 * Runs `task` when fewer than `poolSize` checks are running; the rest wait in order. A check
 * whose caller gave up while it waited (`signal` aborted: its AUTH hook timed out, its session was
 * interrupted) leaves the queue and is never run: the caller's throttle gave its attempt back, so
 * running it anyway would be work no limit counts, queued ahead of the next real login.
 */
const limited = async <A>(task: () => Promise<A>, signal?: AbortSignal): Promise<A> => {
  if (signal?.aborted === true) throw abandoned(signal)
  if (running >= poolSize) {
    await new Promise<void>((resolve, reject) => {
      const start = () => {
        signal?.removeEventListener("abort", leave)
        resolve()
      }
      const leave = () => {
        const index = waiting.indexOf(start)
        if (index >= 0) waiting.splice(index, 1)
        reject(abandoned(signal!))
      }
      waiting.push(start)
      signal?.addEventListener("abort", leave, { once: true })
    })
  }
  running++
  try {
    return await task()
  } finally {
    running--
    waiting.shift()?.()
  }
}
const pool: Array<Pooled> = []
let nextId = 1

// The npm package runs the emitted JavaScript (dist/), the repository the sources: the worker is
// the sibling file with this module's own extension (a URL is not rewritten by the compiler).
const workerFile = import.meta.url.endsWith(".js") ? "./PasswordWorker.js" : "./PasswordWorker.ts"

// node:worker_threads is loaded with the first worker, not at start-up (Bun never needs it).
let threads: Promise<typeof import("node:worker_threads")> | undefined

const start = async (): Promise<Pooled> => {
  const { Worker } = await (threads ??= import("node:worker_threads"))
  const worker = new Worker(new URL(workerFile, import.meta.url))
  const pooled: Pooled = { worker, jobs: new Map() }
  const fail = (error: Error) => {
    const index = pool.indexOf(pooled)
    if (index >= 0) pool.splice(index, 1)
    for (const job of pooled.jobs.values()) job.reject(error)
    pooled.jobs.clear()
  }
  worker.on("message", (done: Done) => {
    const job = pooled.jobs.get(done.id)
    if (job === undefined) return
    pooled.jobs.delete(done.id)
    if (pooled.jobs.size === 0) worker.unref()
    if (done.ok) job.resolve(done.value)
    else job.reject(new Error(done.error))
  })
  worker.on("error", fail)
  worker.on("exit", (code) => fail(new Error(`password worker exited with code ${code}`)))
  // Held only while it has work (a CLI waiting for a hash must not exit); after the listeners,
  // because on Node adding a "message" listener refs the worker again.
  worker.unref()
  pool.push(pooled)
  return pooled
}

/** The least busy worker, starting one while the pool is not full. */
const pick = (): Pooled | Promise<Pooled> => {
  let best: Pooled | undefined
  for (const p of pool) if (best === undefined || p.jobs.size < best.jobs.size) best = p
  return best === undefined || (best.jobs.size > 0 && pool.length < poolSize) ? start() : best
}

const run = async (job: Request): Promise<string | boolean> => {
  const pooled = await pick()
  return new Promise((resolve, reject) => {
    const id = nextId++
    if (pooled.jobs.size === 0) pooled.worker.ref()
    pooled.jobs.set(id, { resolve, reject })
    pooled.worker.postMessage({ ...job, id } satisfies Job)
  })
}

/** A `$2b$` bcrypt hash of `password` at `cost` (4-31); rejects a password over 72 bytes. */
export const hash = async (password: string, cost: number): Promise<string> => {
  if (byteLength(password) > maxBytes) {
    throw new RangeError(`the password is ${byteLength(password)} bytes long; bcrypt uses only the first ${maxBytes}, so the rest would be ignored`)
  }
  if (bun !== undefined) return limited(() => bun.hash(password, { algorithm: "bcrypt", cost }))
  return (await limited(() => run({ op: "hash", password, cost }))) as string
}

/**
 * Whether `password` matches the bcrypt `hash`; always false for a password over 72 bytes.
 * Rejects, without checking, when `signal` aborts before the check started.
 */
export const verify = async (password: string, hash: string, signal?: AbortSignal): Promise<boolean> => {
  if (byteLength(password) > maxBytes) return false
  if (bun !== undefined) return limited(() => bun.verify(password, hash), signal)
  return (await limited(() => run({ op: "verify", password, hash }), signal)) === true
}
