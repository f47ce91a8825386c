/**
 * A real DNS server on loopback for tests: Debian's dnsmasq in the foreground on a free port,
 * serving only the records a test gives it, authoritative (NXDOMAIN) for the zones it lists and
 * REFUSED for everything else. Stopped by its PID.
 *
 * @example
 * const dns = await startDnsmasq({ zones: ["example.test"], lines: [txt("example.test", "v=spf1 -all")] })
 * Resolver.layer({ servers: [dns.server] })          // or the bridge's own wiring:
 * startBridge({ dns: { servers: [dns.server] }, ... }) // (`--dns 127.0.0.1:PORT` for the CLI)
 * await dns.stop()
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as Dgram from "node:dgram"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

export interface Dnsmasq {
  readonly port: number
  /** `127.0.0.1:port`, for `Resolver.layer({ servers: [...] })` or `--dns`. */
  readonly server: string
  /** The names asked so far, as `TYPE name` (`TXT s1._domainkey.example.test`); only with `logQueries`. */
  readonly queries: () => ReadonlyArray<string>
  readonly stop: () => Promise<void>
}

export interface DnsmasqOptions {
  /** dnsmasq.conf lines: `txt-record=`, `mx-host=`, `host-record=`, `address=`, `ptr-record=`. */
  readonly lines: ReadonlyArray<string>
  /** Domains dnsmasq answers for alone: a name in them without a record is NXDOMAIN. */
  readonly zones?: ReadonlyArray<string>
  /** TTL of every answer (dnsmasq's default, 0, would defeat caching). */
  readonly ttl?: number
  /** Log every query, for `queries()`. */
  readonly logQueries?: boolean
  /** Listen on this port (another zone on the port a stopped server had); a free one by default. */
  readonly port?: number
}

/** A `txt-record=` line; long values are split into the 255-octet strings DNS allows. */
export const txt = (name: string, value: string): string => {
  const parts: Array<string> = []
  for (let i = 0; i < value.length; i += 255) parts.push(`"${value.slice(i, i + 255).replace(/["\\]/g, "\\$&")}"`)
  return `txt-record=${name},${parts.join(",")}`
}

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const socket = Dgram.createSocket("udp4")
    socket.once("error", reject)
    socket.bind(0, "127.0.0.1", () => {
      const { port } = socket.address()
      socket.close(() => resolve(port))
    })
  })

const waitForStart = (child: ChildProcess, timeoutMs: number): Promise<void> =>
  new Promise((resolve, reject) => {
    let log = ""
    const timer = setTimeout(() => reject(new Error(`dnsmasq did not start in ${timeoutMs} ms: ${log}`)), timeoutMs)
    child.stderr?.on("data", (chunk: Buffer) => {
      log += chunk.toString("utf8")
      if (log.includes("started, version")) {
        clearTimeout(timer)
        resolve()
      }
    })
    child.once("exit", (code) => {
      clearTimeout(timer)
      reject(new Error(`dnsmasq exited with ${code}: ${log}`))
    })
  })

const stopChild = (child: ChildProcess): Promise<void> =>
  new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return resolve()
    const timer = setTimeout(() => {
      try {
        process.kill(child.pid!, "SIGKILL")
      } catch {
        // Already gone.
      }
    }, 2000)
    child.once("exit", () => {
      clearTimeout(timer)
      resolve()
    })
    try {
      process.kill(child.pid, "SIGTERM")
    } catch {
      clearTimeout(timer)
      resolve()
    }
  })

export const startDnsmasq = async (options: DnsmasqOptions): Promise<Dnsmasq> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-dnsmasq-"))
  const conf = path.join(dir, "dnsmasq.conf")
  const zones = (options.zones ?? []).map((z) => `local=/${z}/`)
  fs.writeFileSync(conf, [...zones, `local-ttl=${options.ttl ?? 60}`, ...options.lines, ""].join("\n"))
  let lastError: unknown
  // Another test may take the port between the probe and dnsmasq's bind: try a few.
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = options.port ?? await freePort()
    const child = spawn("dnsmasq", [
      "--keep-in-foreground",
      `--port=${port}`,
      "--listen-address=127.0.0.1",
      "--bind-interfaces",
      "--no-resolv",
      "--no-hosts",
      "--log-facility=-",
      `--conf-file=${conf}`,
      `--pid-file=${path.join(dir, "pid")}`,
      ...(options.logQueries === true ? ["--log-queries"] : [])
    ], { stdio: ["ignore", "ignore", "pipe"] })
    const asked: Array<string> = []
    let partial = ""
    child.stderr?.on("data", (chunk: Buffer) => {
      const lines = (partial + chunk.toString("utf8")).split("\n")
      partial = lines.pop() ?? ""
      for (const line of lines) {
        const m = /query\[(\w+)\] (\S+) from /.exec(line)
        if (m !== null) asked.push(`${m[1]} ${m[2]}`)
      }
    })
    try {
      await waitForStart(child, 5000)
      return {
        port,
        server: `127.0.0.1:${port}`,
        queries: () => [...asked],
        stop: async () => {
          await stopChild(child)
          fs.rmSync(dir, { recursive: true, force: true })
        }
      }
    } catch (e) {
      lastError = e
      await stopChild(child)
    }
  }
  fs.rmSync(dir, { recursive: true, force: true })
  throw lastError
}
