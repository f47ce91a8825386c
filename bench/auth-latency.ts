/**
 * NOOP latency on one session while 50 AUTH attempts (bcrypt cost 10, wrong passwords) run in
 * parallel on others: the figure behind "password hashing never runs on the event loop". The
 * AUTH throttle is off (`rateLimit: { authFailures: false }` in a config file) so that every
 * attempt reaches the password check and no failure delay dilutes the figures. Prints, never
 * asserts.
 *
 *   bun bench/auth-latency.ts            # the CLI under Bun (the default)
 *   bun bench/auth-latency.ts deno       # or deno / node (Node >= 22.19, as in test/compat)
 */
import * as bcrypt from "bcryptjs"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { type Runtime, spawnCli } from "../test/support/runtimes.ts"
import { percentile, session, type Session } from "./Client.ts"

const attempts = 50
const rounds = 3
const cost = 10

const runtime = (process.argv[2] ?? "bun") as Runtime
if (!["bun", "deno", "node"].includes(runtime)) throw new Error(`unknown runtime ${runtime}: bun, deno or node`)

const summary = (samples: ReadonlyArray<number>) => {
  const sorted = [...samples].sort((a, b) => a - b)
  const ms = (n: number) => `${n.toFixed(2)} ms`
  return { NOOPs: sorted.length, p50: ms(percentile(sorted, 50)), p99: ms(percentile(sorted, 99)), max: ms(sorted[sorted.length - 1]!) }
}

/** A NOOP every 10 ms on `probe` (as a client would, not a busy loop) until `done` settles; the round-trip times in ms. */
const probeUntil = async (probe: Session, done: Promise<unknown>) => {
  let finished = false
  void done.finally(() => {
    finished = true
  })
  const rtts: Array<number> = []
  while (!finished) {
    const started = performance.now()
    const r = await probe.command("NOOP")
    rtts.push(performance.now() - started)
    if (!r.startsWith("250 ")) throw new Error(`NOOP: ${r}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  return rtts
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-bench-auth-"))
fs.writeFileSync(path.join(dir, "users.htpasswd"), `carol:${bcrypt.hashSync("carol's password", cost).replace(/^\$2b\$/, "$2y$")}\n`)
fs.writeFileSync(path.join(dir, "bench.config.ts"), `export default ${JSON.stringify({
  listen: ["127.0.0.1:0"],
  users: path.join(dir, "users.htpasswd"),
  allowInsecureAuth: true,
  maildir: path.join(dir, "mail"),
  rateLimit: { authFailures: false }
})}\n`)
const cli = await spawnCli(runtime, ["serve", "--config", path.join(dir, "bench.config.ts")])
try {
  const port = Number((await cli.waitForLog(/listening on 127\.0\.0\.1:(\d+)/, 30_000))[1])
  const probe = await session(port, "127.0.0.1")
  await probe.reply()
  await probe.command("EHLO probe.test")
  const idle = await probeUntil(probe, new Promise((resolve) => setTimeout(resolve, 2_000)))

  const loaded: Array<number> = []
  const authWall: Array<number> = []
  let refused = 0
  for (let round = 0; round < rounds; round++) {
    const sessions = await Promise.all(Array.from({ length: attempts }, async (_, i) => {
      const s = await session(port, `127.0.${round * attempts + i + 1}.1`)
      await s.reply()
      await s.command("EHLO attacker.test")
      return s
    }))
    const started = performance.now()
    const token = Buffer.from(`\0carol\0guess ${round}`).toString("base64")
    const auths = Promise.all(sessions.map(async (s) => {
      const r = await s.command(`AUTH PLAIN ${token}`)
      if (r.startsWith("535 ")) refused++
      return performance.now() - started
    }))
    loaded.push(...(await probeUntil(probe, auths)))
    authWall.push(Math.max(...(await auths)))
    for (const s of sessions) s.close()
  }
  probe.close()

  console.log(`smtp-bridge NOOP latency during parallel AUTH, CLI under ${runtime} (${os.platform()} ${os.arch()}, ${os.availableParallelism()} CPUs, ${new Date().toISOString()})`)
  console.log(`${rounds} rounds of ${attempts} parallel AUTH PLAIN (bcrypt cost ${cost}), ${refused} answered 535; slowest round ${Math.round(Math.max(...authWall))} ms`)
  console.table({ "idle (2 s)": summary(idle), [`during ${attempts} AUTH x ${rounds}`]: summary(loaded) })
} finally {
  await cli.kill()
}
