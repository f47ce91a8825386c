/**
 * A throwaway redis-server on a free loopback port, without persistence, for the Redis store
 * tests. `stop` ends it by its PID (never by name); `start` brings it back on the same port, so
 * an outage and the recovery can be tested.
 *
 * @example
 * const redis = await startRedis()
 * // ... rateLimit({ redis: redis.url }) ...
 * await redis.stop()
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as net from "node:net"
import { freePort } from "./runtimes.ts"

export interface TestRedis {
  readonly port: number
  readonly url: string
  /** Starts the server again on the same port (after `stop`). */
  readonly start: () => Promise<void>
  /** Stops the server (SIGTERM, then SIGKILL after 3 s) and waits for its exit. */
  readonly stop: () => Promise<void>
  /** Kills the server at once (SIGKILL, by its PID), as a crash would, and waits for its exit. */
  readonly kill: () => Promise<void>
  /** Sends one inline command and returns the raw reply text (e.g. `"+PONG\r\n"`). */
  readonly command: (line: string) => Promise<string>
}

const inline = (port: number, line: string, timeoutMs = 1000): Promise<string> =>
  new Promise((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port })
    let data = ""
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`redis on ${port} did not answer ${line}`))
    }, timeoutMs)
    socket.on("error", (error) => {
      clearTimeout(timer)
      reject(error)
    })
    socket.on("data", (chunk) => {
      data += chunk.toString("utf8")
      if (data.endsWith("\r\n")) {
        clearTimeout(timer)
        socket.destroy()
        resolve(data)
      }
    })
    socket.write(`${line}\r\n`)
  })

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

export interface RedisOptions {
  /** Extra redis-server arguments, e.g. `["--requirepass", "pw"]`. */
  readonly args?: ReadonlyArray<string>
}

export const startRedis = async (options: RedisOptions = {}): Promise<TestRedis> => {
  const port = await freePort()
  const extra = options.args ?? []
  let child: ChildProcess | undefined
  let output = ""

  const start = async () => {
    output = ""
    const proc = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", ...extra], {
      stdio: ["ignore", "pipe", "pipe"]
    })
    child = proc
    // A test process that dies without afterAll must not leave the server behind.
    const orphan = () => void proc.kill("SIGKILL")
    process.once("exit", orphan)
    proc.once("exit", () => void process.off("exit", orphan))
    proc.stdout?.on("data", (chunk: Buffer) => void (output += chunk.toString("utf8")))
    proc.stderr?.on("data", (chunk: Buffer) => void (output += chunk.toString("utf8")))
    const deadline = Date.now() + 10_000
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new Error(`redis-server exited (${proc.exitCode}):\n${output}`)
      const reply = await inline(port, "PING", 500).catch(() => "")
      // With requirepass, PING answers NOAUTH: the server is up all the same.
      if (reply.startsWith("+PONG") || reply.startsWith("-NOAUTH")) return
      await sleep(50)
    }
    throw new Error(`redis-server on ${port} not ready within 10 s:\n${output}`)
  }

  const stop = async (signal: "SIGTERM" | "SIGKILL" = "SIGTERM") => {
    const proc = child
    child = undefined
    if (proc === undefined || proc.exitCode !== null || proc.pid === undefined) return
    const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()))
    proc.kill(signal)
    const timer = setTimeout(() => proc.kill("SIGKILL"), 3000)
    await exited
    clearTimeout(timer)
  }

  await start()
  return { port, url: `redis://127.0.0.1:${port}`, start, stop: () => stop(), kill: () => stop("SIGKILL"), command: (line) => inline(port, line) }
}
