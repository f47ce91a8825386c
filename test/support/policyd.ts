/**
 * Real Postfix policy services for tests, each with a private directory on a free loopback port,
 * stopped by PID: Debian's `postgrey` (greylisting, with a short delay), and `policyd-spf`
 * (postfix-policyd-spf-python), which Postfix runs on stdin/stdout through spawn(8): here a
 * small loopback listener starts one per connection, its DNS pointed at a test's dnsmasq.
 *
 * @example
 * const grey = await startPostgrey({ delay: 1 })
 * startBridge({ policy: `inet:127.0.0.1:${grey.port}`, trust: ["127.0.0.1"] })
 * await grey.stop()
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { spawnLogged, supervise, waitForPort } from "./process.ts"
import { freePort } from "./runtimes.ts"
import { installed } from "./tools.ts"

export const postgreyAvailable = (): boolean => installed("/usr/sbin/postgrey")
export const policydSpfAvailable = (): boolean => installed("/usr/bin/policyd-spf", "/usr/bin/python3")

export interface PolicyService {
  readonly port: number
  /** What the service logged so far. */
  readonly output: () => string
  readonly stop: () => Promise<void>
}

/** postgrey greylisting for `delay` seconds, with no whitelists (loopback would be one). */
export const startPostgrey = async (options: { readonly delay: number }): Promise<PolicyService> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-postgrey-"))
  let lastError: unknown
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort()
    const child = spawnLogged("/usr/sbin/postgrey", [
      `--inet=127.0.0.1:${port}`,
      `--dbdir=${dir}`,
      `--delay=${options.delay}`,
      // Root keeps the private db directory its own; postgrey's own user could not write it.
      "--user=root",
      "--group=root",
      "--whitelist-clients=/dev/null",
      "--whitelist-recipients=/dev/null",
      "--auto-whitelist-clients=0"
    ])
    try {
      await waitForPort(port, "postgrey", { exited: child.gone, log: child.output, attempts: 200 })
      return {
        port,
        output: child.output,
        stop: async () => {
          await child.stop()
          fs.rmSync(dir, { recursive: true, force: true })
        }
      }
    } catch (e) {
      lastError = e
      await child.stop()
    }
  }
  fs.rmSync(dir, { recursive: true, force: true })
  throw lastError
}

// policyd-spf resolves through dnspython's default resolver; the wrapper points it at the test's
// dnsmasq (a port resolv.conf cannot name), then runs policyd-spf's own main.
const wrapper = `
import sys, dns.resolver
r = dns.resolver.Resolver(configure=False)
r.nameservers = ["127.0.0.1"]
r.port = int(sys.argv[1])
dns.resolver.default_resolver = r
sys.argv = ["policyd-spf", sys.argv[2]]
from spf_engine.policyd_spf import main
sys.exit(main())
`

/** policyd-spf with its Debian defaults (reject on Fail), loopback not skipped, DNS at `dnsPort`. */
export const startPolicydSpf = async (options: { readonly dnsPort: number }): Promise<PolicyService> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-policyd-spf-"))
  const conf = path.join(dir, "policyd-spf.conf")
  fs.writeFileSync(conf, [
    "debugLevel = 1",
    "TestOnly = 1",
    "HELO_reject = Fail",
    "Mail_From_reject = Fail",
    "PermError_reject = False",
    "TempError_Defer = False",
    // Debian skips loopback clients; the tests' clients are on loopback.
    "skip_addresses = 192.0.2.255/32",
    ""
  ].join("\n"))
  const script = path.join(dir, "run.py")
  fs.writeFileSync(script, wrapper)
  let output = ""
  const children = new Set<ChildProcess>()
  const server = net.createServer((socket) => {
    const child = spawn("/usr/bin/python3", [script, String(options.dnsPort), conf], { stdio: ["pipe", "pipe", "pipe"] })
    children.add(child)
    child.stderr!.setEncoding("utf8").on("data", (t: string) => void (output += t))
    socket.pipe(child.stdin!)
    child.stdout!.pipe(socket)
    socket.on("error", () => child.kill("SIGTERM"))
    socket.on("close", () => child.stdin!.end())
    child.on("close", () => {
      children.delete(child)
      socket.destroy()
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => resolve())
  })
  const port = (server.address() as net.AddressInfo).port
  await waitForPort(port, "policyd-spf listener")
  return {
    port,
    output: () => output,
    stop: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await Promise.all([...children].map((c) => supervise(c).stop()))
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }
}
