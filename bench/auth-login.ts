/**
 * Logins per second and login latency per authentication backend: 20 parallel clients, each
 * doing connect, EHLO, STARTTLS, EHLO, AUTH PLAIN (right password), QUIT, again and again until
 * `logins` logins are done, against the real CLI (`serve --config` with that backend as `auth`,
 * the AUTH throttle off so that every login reaches the backend). Backends: `htpasswd` (bcrypt
 * cost 10), `ldap` (a slapd started here, test/support/slapd.ts: search as a service account, then
 * bind as the user), `ldap-cached` (the same behind `authCache`) and `dovecot` (a Dovecot auth
 * service started here, test/support/dovecotAuth.ts, passwords stored as SCRAM-SHA-256, over its
 * unix socket). Prints, never asserts.
 *
 *   bun bench/auth-login.ts                    # the CLI under Bun, every backend
 *   bun bench/auth-login.ts deno ldap          # under Deno, LDAP only
 */
import * as bcrypt from "bcryptjs"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { testCertificate } from "../test/support/certs.ts"
import { type Runtime, spawnCli } from "../test/support/runtimes.ts"
import { dovecotAuthAvailable, startDovecotAuth } from "../test/support/dovecotAuth.ts"
import { slapdAvailable, startSlapd } from "../test/support/slapd.ts"
import { percentile, session } from "./Client.ts"

const clients = 20
const logins = 400
const warmup = 40
const cost = 10
const users = Array.from({ length: clients }, (_, i) => ({ uid: `user${i + 1}`, password: `password of user ${i + 1}` }))

const backends = ["htpasswd", "ldap", "ldap-cached", "dovecot"] as const
type Backend = (typeof backends)[number]
const args = process.argv.slice(2)
const runtime = (["bun", "deno", "node"].includes(args[0] ?? "") ? args.shift() : "bun") as Runtime
const chosen = (args.length === 0 ? backends : args) as ReadonlyArray<Backend>
for (const b of chosen) if (!backends.includes(b)) throw new Error(`unknown backend ${b}: ${backends.join(", ")}`)

const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64")

/** One login from `from`: its whole time and the AUTH step's, in ms. */
const login = async (port: number, from: string, user: { readonly uid: string; readonly password: string }, name: (uid: string) => string) => {
  const started = performance.now()
  const s = await session(port, from)
  try {
    await s.reply()
    await s.command("EHLO bench.test")
    const tls = await s.command("STARTTLS")
    if (!tls.startsWith("220 ")) throw new Error(`STARTTLS: ${tls}`)
    await s.startTls()
    await s.command("EHLO bench.test")
    const authStarted = performance.now()
    const r = await s.command(`AUTH PLAIN ${b64(`\0${name(user.uid)}\0${user.password}`)}`)
    const authMs = performance.now() - authStarted
    if (!r.startsWith("235 ")) throw new Error(`AUTH as ${user.uid}: ${r}`)
    await s.command("QUIT")
    return { total: performance.now() - started, auth: authMs }
  } finally {
    s.close()
  }
}

const run = async (backend: Backend, dir: string, auth: ReadonlyArray<unknown>, extra: Record<string, unknown>, name: (uid: string) => string) => {
  const cert = testCertificate()
  const config = path.join(dir, `${backend}.config.ts`)
  fs.writeFileSync(config, `export default ${JSON.stringify({
    listen: ["127.0.0.1:0"],
    tls: { cert: cert.cert, key: cert.key },
    maildir: path.join(dir, "mail"),
    rateLimit: { authFailures: false },
    auth,
    ...extra
  })}\n`)
  const cli = await spawnCli(runtime, ["serve", "--config", config])
  try {
    const port = Number((await cli.waitForLog(/listening on 127\.0\.0\.1:(\d+)/, 30_000))[1])
    const measure = async (count: number) => {
      let next = 0
      const totals: Array<number> = []
      const auths: Array<number> = []
      const started = performance.now()
      await Promise.all(users.map(async (user, i) => {
        while (next < count) {
          next++
          const { total, auth } = await login(port, `127.0.${i + 1}.1`, user, name)
          totals.push(total)
          auths.push(auth)
        }
      }))
      return { seconds: (performance.now() - started) / 1000, totals: totals.sort((a, b) => a - b), auths: auths.sort((a, b) => a - b) }
    }
    await measure(warmup)
    const { seconds, totals, auths } = await measure(logins)
    const ms = (n: number) => `${n.toFixed(1)} ms`
    return {
      logins: totals.length,
      "logins/s": Math.round(totals.length / seconds),
      "login p50": ms(percentile(totals, 50)),
      "login p99": ms(percentile(totals, 99)),
      "AUTH p50": ms(percentile(auths, 50)),
      "AUTH p99": ms(percentile(auths, 99))
    }
  } finally {
    await cli.kill()
  }
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-bench-login-"))
const table: Record<string, unknown> = {}
const needsLdap = chosen.some((b) => b.startsWith("ldap"))
if (needsLdap && !slapdAvailable()) throw new Error("slapd is not installed (apt-get install slapd ldap-utils)")
const slapd = needsLdap ? await startSlapd(users.map((u) => ({ uid: u.uid, password: u.password, mail: [`${u.uid}@example.com`] }))) : undefined
const needsDovecot = chosen.includes("dovecot")
if (needsDovecot && !dovecotAuthAvailable()) throw new Error("Dovecot's auth service needs root and dovecot-core")
const dovecot = needsDovecot
  ? await startDovecotAuth({ users: users.map((u) => ({ name: `${u.uid}@example.test`, password: u.password, scheme: "SCRAM-SHA-256" as const })) })
  : undefined
try {
  for (const backend of chosen) {
    if (backend === "htpasswd") {
      const file = path.join(dir, "users.htpasswd")
      fs.writeFileSync(file, users.map((u) => `${u.uid}:${bcrypt.hashSync(u.password, cost).replace(/^\$2b\$/, "$2y$")}\n`).join(""))
      table[`htpasswd (bcrypt ${cost})`] = await run(backend, dir, [{ type: "htpasswd", file }], {}, (uid) => uid)
    } else if (backend === "dovecot") {
      const auth = [{ type: "dovecot", path: dovecot!.socket, penalty: false }]
      table["Dovecot (SCRAM-SHA-256 hashes, unix socket)"] = await run(backend, dir, auth, {}, (uid) => `${uid}@example.test`)
    } else {
      const passwordFile = path.join(dir, "ldap-pw")
      fs.writeFileSync(passwordFile, slapd!.servicePassword)
      const ldap = { type: "ldap", url: `ldap://127.0.0.1:${slapd!.port}/${slapd!.base}?uid`, bindDn: slapd!.serviceDn, bindPasswordFile: passwordFile, poolSize: 8 }
      const cache = backend === "ldap-cached" ? { authCache: { ttl: "5 minutes" } } : {}
      table[backend === "ldap" ? "LDAP (slapd, pool 8)" : "LDAP behind authCache"] = await run(backend, dir, [ldap], cache, (uid) => uid)
    }
  }
} finally {
  await slapd?.stop()
  await dovecot?.remove()
  fs.rmSync(dir, { recursive: true, force: true })
}
console.log(
  `smtp-bridge logins: ${clients} parallel clients, STARTTLS + AUTH PLAIN + QUIT, ${logins} logins after ${warmup} warm-up, CLI under ${runtime} ` +
    `(${os.platform()} ${os.arch()}, ${os.availableParallelism()} CPUs, ${new Date().toISOString()})`
)
console.table(table)
