/**
 * The body of one password worker thread (`Password.ts` starts them on Deno and Node): bcrypt in
 * plain JavaScript (bcryptjs) is ~65 ms of CPU per check at cost 10, which on the event loop
 * stalls every session; here it stalls only this thread. Sync calls: nothing else runs here.
 */
import * as bcrypt from "bcryptjs"
import { parentPort } from "node:worker_threads"

export type Request =
  | { readonly op: "hash"; readonly password: string; readonly cost: number }
  | { readonly op: "verify"; readonly password: string; readonly hash: string }

export type Job = Request & { readonly id: number }

export type Done =
  | { readonly id: number; readonly ok: true; readonly value: string | boolean }
  | { readonly id: number; readonly ok: false; readonly error: string }

const port = parentPort
if (port !== null) {
  port.on("message", (job: Job) => {
    let done: Done
    try {
      const value = job.op === "hash" ? bcrypt.hashSync(job.password, bcrypt.genSaltSync(job.cost)) : bcrypt.compareSync(job.password, job.hash)
      done = { id: job.id, ok: true, value }
    } catch (error) {
      done = { id: job.id, ok: false, error: error instanceof Error ? error.message : String(error) }
    }
    port.postMessage(done)
  })
}
