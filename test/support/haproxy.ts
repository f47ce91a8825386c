/**
 * HAProxy (Debian package `haproxy`) in TCP mode on loopback in front of bridge instances,
 * sending PROXY protocol v2 (`send-proxy-v2`) or v1 (`send-proxy`), run in the foreground
 * (`-db`) from a config in a temporary directory and stopped by its PID. Also a raw SMTP client
 * that can bind to a chosen loopback address, so the client's address differs from the balancer's.
 *
 * @example
 * const lb = await startHaproxy({ backends: [portA, portB] })
 * try {
 *   const c = await dial(lb.port, "127.0.0.3")
 *   expect(await c.read()).toMatch(/^220 /)
 * } finally {
 *   await lb.stop()
 * }
 */
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import type * as tls from "node:tls"
import { freePort } from "./runtimes.ts"
import { spawnLogged, waitForPort } from "./process.ts"

export const haproxyBinary = "/usr/sbin/haproxy"

export const haproxyAvailable = (): boolean => fs.existsSync(haproxyBinary)

export interface HaproxyOptions {
  /** Bridge ports on 127.0.0.1, balanced round-robin. */
  readonly backends: ReadonlyArray<number>
  /** PROXY protocol version sent to the backends; 2 by default. */
  readonly proxyVersion?: 1 | 2
  /**
   * SMTP health checks (`option smtpchk`: 220, then 250 to EHLO) every `checkIntervalMs` (default
   * 300), carrying a PROXY header (`check-send-proxy`) as the bridge requires from the balancer.
   */
  readonly checkIntervalMs?: number
}

/** A server's state as HAProxy's runtime API reports it (`UP`, `DOWN`, `MAINT`, ...). */
export type ServerStates = Readonly<Record<string, string>>

export interface Haproxy {
  /** The frontend port on 127.0.0.1. */
  readonly port: number
  readonly pid: number
  /** The generated configuration, for failure messages. */
  readonly config: string
  /** HAProxy's output so far (warnings, server state changes). */
  readonly output: () => string
  /** The backend servers (`bridge0`, `bridge1`, ...) and their health-check state, from the runtime API. */
  readonly states: () => Promise<ServerStates>
  /** Resolves once `predicate(states)` holds; rejects after `timeoutMs` (default 10 s). */
  readonly waitForStates: (predicate: (states: ServerStates) => boolean, timeoutMs?: number) => Promise<ServerStates>
  /** SIGTERM, then SIGKILL after 3 s; resolves when the process is gone. Safe to call twice. */
  readonly stop: () => Promise<void>
}

/** The configuration text (docs/scale-out.md shows the same settings for production). */
export const haproxyConfig = (port: number, options: HaproxyOptions, adminSocket: string): string => {
  const send = (options.proxyVersion ?? 2) === 2 ? "send-proxy-v2" : "send-proxy"
  const inter = options.checkIntervalMs ?? 300
  return [
    "global",
    "  maxconn 200",
    `  stats socket ${adminSocket} mode 600 level admin`,
    "",
    "defaults",
    "  mode tcp",
    "  timeout connect 2s",
    "  timeout client 30s",
    "  timeout server 30s",
    "  timeout check 2s",
    // A refused connection (an instance that stopped listening) is retried on another server.
    "  retries 3",
    "  option redispatch 1",
    "",
    "frontend smtp",
    `  bind 127.0.0.1:${port}`,
    "  default_backend bridges",
    "",
    "backend bridges",
    "  balance roundrobin",
    "  option smtpchk EHLO haproxy.test",
    ...options.backends.map((p, i) =>
      `  server bridge${i} 127.0.0.1:${p} ${send} source 127.0.0.1 check check-send-proxy inter ${inter}ms fall 1 rise 1`
    ),
    ""
  ].join("\n")
}

/** One command on HAProxy's runtime API socket; its whole answer. */
const runtimeApi = (socket: string, command: string): Promise<string> =>
  new Promise((resolve, reject) => {
    const s = net.connect({ path: socket })
    let answer = ""
    const timer = setTimeout(() => {
      s.destroy()
      reject(new Error(`no answer to "${command}" from ${socket} within 2 s`))
    }, 2_000)
    s.setEncoding("utf8")
    s.on("data", (t: string) => void (answer += t))
    s.on("error", (error) => {
      clearTimeout(timer)
      reject(error)
    })
    s.on("close", () => {
      clearTimeout(timer)
      resolve(answer)
    })
    s.write(`${command}\n`)
  })

/** `show stat` CSV: `# pxname,svname,...,status,...`; the rows of backend `bridges`' servers. */
const parseStates = (csv: string): ServerStates => {
  const [head = "", ...rows] = csv.trim().split("\n")
  const columns = head.replace(/^# /, "").split(",")
  const status = columns.indexOf("status")
  const out: Record<string, string> = {}
  for (const row of rows) {
    const cells = row.split(",")
    if (cells[0] === "bridges" && cells[1] !== "BACKEND") out[cells[1]!] = cells[status] ?? ""
  }
  return out
}

export const startHaproxy = async (options: HaproxyOptions): Promise<Haproxy> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-haproxy-"))
  const port = await freePort()
  const adminSocket = path.join(dir, "admin.sock")
  const config = haproxyConfig(port, options, adminSocket)
  const file = path.join(dir, "haproxy.cfg")
  fs.writeFileSync(file, config)
  const child = spawnLogged(haproxyBinary, ["-f", file, "-db"])
  const { pid, gone, output } = child
  const stop = async () => {
    await child.stop()
    fs.rmSync(dir, { recursive: true, force: true })
  }
  const states = async () => parseStates(await runtimeApi(adminSocket, "show stat"))
  const waitForStates = async (predicate: (s: ServerStates) => boolean, timeoutMs = 10_000): Promise<ServerStates> => {
    const deadline = Date.now() + timeoutMs
    let last: ServerStates = {}
    for (;;) {
      last = await states().catch(() => last)
      if (predicate(last)) return last
      if (Date.now() > deadline || gone()) {
        throw new Error(`haproxy's servers stayed ${JSON.stringify(last)}:\n${output()}\n--- config ---\n${config}`)
      }
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  try {
    await waitForPort(port, "haproxy", { exited: gone, log: () => `${output()}\n--- config ---\n${config}` })
    // Every backend passed its SMTP health check (through the PROXY header) before traffic flows.
    await waitForStates((s) => Object.keys(s).length === options.backends.length && Object.values(s).every((x) => x === "UP"))
  } catch (error) {
    await stop()
    throw error
  }
  return { port, pid, config, output, states, waitForStates, stop }
}

/**
 * A minimal SMTP conversation over a socket (plain, or TLS on top of one): replies one at a time,
 * every wait bounded, the transcript in every error.
 */
export interface Wire {
  /** Raw bytes or text; the caller writes the CRLFs. */
  readonly send: (data: string | Uint8Array) => void
  /** The next complete reply, lines joined by `\n`. */
  readonly read: (timeoutMs?: number) => Promise<string>
  /** Sends `line` + CRLF and reads one reply. */
  readonly command: (line: string, timeoutMs?: number) => Promise<string>
  /** Resolves once the server closed the connection. */
  readonly closed: (timeoutMs?: number) => Promise<void>
  /** `C: ...` and `S: ...` lines so far. */
  readonly transcript: () => string
  readonly destroy: () => void
}

export const wire = (socket: net.Socket | tls.TLSSocket): Wire => {
  const log: Array<string> = []
  const replies: Array<string> = []
  let lines: Array<string> = []
  let pending = ""
  let ended = false
  const wake = new Set<() => void>()
  socket.on("data", (chunk: Buffer) => {
    pending += chunk.toString("latin1")
    for (let lf = pending.indexOf("\n"); lf !== -1; lf = pending.indexOf("\n")) {
      const line = pending.slice(0, lf).replace(/\r$/, "")
      pending = pending.slice(lf + 1)
      log.push(`S: ${line}`)
      lines.push(line)
      if (!/^\d{3}-/.test(line)) {
        replies.push(lines.join("\n"))
        lines = []
      }
    }
    for (const w of [...wake]) w()
  })
  const onEnd = () => {
    ended = true
    for (const w of [...wake]) w()
  }
  socket.on("close", onEnd)
  socket.on("error", onEnd)
  const transcript = () => log.join("\n")
  const wait = <A>(what: string, timeoutMs: number, ready: () => A | undefined): Promise<A> =>
    new Promise((resolve, reject) => {
      const check = () => {
        const value = ready()
        if (value !== undefined) {
          done()
          resolve(value)
        } else if (ended) {
          done()
          reject(new Error(`connection closed while waiting for ${what}\n--- transcript ---\n${transcript()}`))
        }
      }
      const timer = setTimeout(() => {
        done()
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n--- transcript ---\n${transcript()}`))
      }, timeoutMs)
      const done = () => {
        clearTimeout(timer)
        wake.delete(check)
      }
      wake.add(check)
      check()
    })
  const send = (data: string | Uint8Array) => {
    const shown = typeof data === "string" ? data : Buffer.from(data).toString("latin1")
    for (const line of shown.split("\r\n").filter((l) => l !== "")) log.push(`C: ${JSON.stringify(line).slice(1, -1)}`)
    socket.write(data)
  }
  const read = (timeoutMs = 5_000) => wait("a reply", timeoutMs, () => replies.shift())
  return {
    send,
    read,
    command: (line, timeoutMs) => {
      send(`${line}\r\n`)
      return read(timeoutMs)
    },
    closed: (timeoutMs = 5_000) => wait("the server to close", timeoutMs, () => (ended ? true : undefined)).then(() => undefined),
    transcript,
    destroy: () => socket.destroy()
  }
}

/** A plain TCP connection to 127.0.0.1:`port` from `localAddress` (any 127.x.y.z is loopback). */
export const dial = (port: number, localAddress = "127.0.0.1", timeoutMs = 5_000): Promise<Wire> =>
  new Promise((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port, localAddress })
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`cannot connect to 127.0.0.1:${port} from ${localAddress} within ${timeoutMs} ms`))
    }, timeoutMs)
    socket.once("error", (error) => {
      clearTimeout(timer)
      reject(error)
    })
    socket.once("connect", () => {
      clearTimeout(timer)
      resolve(wire(socket))
    })
  })
