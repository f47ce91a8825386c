/**
 * Memory of the real CLI while a client pushes a 50 MB message and a 10 MB command line (answered
 * 500, then cut off with 421 once past 1 MiB): the figures that back DESIGN.md's "memory per
 * session stays bounded". Prints, never asserts.
 *
 *   bun bench/memory.ts            # the CLI under Bun
 *   bun bench/memory.ts deno       # or deno / node (Node >= 22.19, found or fetched as in test/compat)
 *   bun bench/memory.ts bun relay  # deliver to a Maildir (default), `relay` (smtp-sink on loopback),
 *                                  # `webhook` or `webhook-json` (a loopback HTTP server that discards the body)
 *
 * Linux only: RSS comes from /proc/<pid>/status (VmRSS now, VmHWM the peak since start).
 */
import * as fs from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { type Runtime, spawnCli } from "../test/support/runtimes.ts"
import { startSink } from "../test/support/sink.ts"

const MB = 1024 * 1024
const messageSize = 50 * MB
const lineSize = 10 * MB

const runtime = (process.argv[2] ?? "bun") as Runtime
if (!["bun", "deno", "node"].includes(runtime)) throw new Error(`unknown runtime ${runtime}: bun, deno or node`)
const target = process.argv[3] ?? "maildir"
if (!["maildir", "relay", "webhook", "webhook-json"].includes(target)) {
  throw new Error(`unknown target ${target}: maildir, relay, webhook or webhook-json`)
}

const status = (pid: number): { rss: number; hwm: number } => {
  const text = fs.readFileSync(`/proc/${pid}/status`, "utf8")
  const kb = (field: string) => Number(text.match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"))?.[1] ?? NaN)
  return { rss: kb("VmRSS") * 1024, hwm: kb("VmHWM") * 1024 }
}

/** Samples RSS every 20 ms while `work` runs; returns the largest sample and VmHWM afterwards. */
const during = async (pid: number, work: () => Promise<void>) => {
  let peak = status(pid).rss
  const timer = setInterval(() => {
    peak = Math.max(peak, status(pid).rss)
  }, 20)
  const started = performance.now()
  try {
    await work()
  } finally {
    clearInterval(timer)
  }
  const after = status(pid)
  return { peak: Math.max(peak, after.rss), after: after.rss, hwm: after.hwm, ms: performance.now() - started }
}

/** A raw client: writes wait for drain, every reply wait is bounded. */
const session = async (port: number) => {
  const socket = net.connect({ host: "127.0.0.1", port })
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve)
    socket.once("error", reject)
  })
  let pending = ""
  const replies: Array<string> = []
  socket.on("data", (chunk: Buffer) => {
    pending += chunk.toString("latin1")
    for (let end = pending.indexOf("\r\n"); end !== -1; end = pending.indexOf("\r\n")) {
      const line = pending.slice(0, end)
      pending = pending.slice(end + 2)
      if (!/^\d{3}-/.test(line)) replies.push(line)
    }
  })
  const reply = async (timeoutMs = 60_000) => {
    const deadline = Date.now() + timeoutMs
    while (replies.length === 0) {
      if (socket.destroyed || Date.now() > deadline) throw new Error(`no reply within ${timeoutMs} ms`)
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    return replies.shift()!
  }
  socket.on("error", () => {})
  // Resolves once the kernel took the bytes, or once the connection is gone (the server may close it).
  const write = (data: string | Uint8Array) =>
    new Promise<void>((resolve) => {
      if (socket.destroyed || socket.write(data)) return resolve()
      const done = () => {
        socket.off("drain", done)
        socket.off("close", done)
        resolve()
      }
      socket.once("drain", done)
      socket.once("close", done)
    })
  const expect = async (line: string, pattern: RegExp) => {
    await write(`${line}\r\n`)
    const r = await reply()
    if (!pattern.test(r)) throw new Error(`${line}: unexpected reply ${r}`)
  }
  return { reply, write, expect, close: () => socket.destroy() }
}

const maildir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-bench-"))
const stops: Array<() => Promise<void>> = [() => Promise.resolve(fs.rmSync(maildir, { recursive: true, force: true }))]

/** A loopback HTTP server that reads and drops every body, answering 200; counts what it got. */
const discardServer = async () => {
  let received = 0
  const server = http.createServer((req, res) => {
    req.on("data", (c: Buffer) => void (received += c.byteLength))
    req.on("end", () => res.writeHead(200).end("ok"))
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  stops.push(() => new Promise((resolve) => server.close(() => resolve())))
  return { url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/inbound`, received: () => received }
}

const delivery = async (): Promise<{ args: ReadonlyArray<string>; check: () => string }> => {
  if (target === "maildir") return { args: ["--maildir", maildir], check: () => "" }
  if (target === "relay") {
    const sink = await startSink()
    stops.push(sink.stop)
    return { args: ["--relay", `smtp://127.0.0.1:${sink.port}?tls=none`], check: () => "" }
  }
  const hook = await discardServer()
  const file = path.join(maildir, "webhook.config.ts")
  const format = target === "webhook-json" ? "json" : "raw"
  fs.writeFileSync(file, `export default { transports: { default: { type: "webhook", url: ${JSON.stringify(hook.url)}, secret: "bench", format: "${format}" } } }\n`)
  return { args: ["--config", file], check: () => `webhook received ${(hook.received() / MB).toFixed(1)} MB` }
}

const { args, check } = await delivery()
const cli = await spawnCli(runtime, [
  "serve", "--listen", "127.0.0.1:0", "--trust", "127.0.0.0/8", ...args, "--max-size", String(100 * MB)
])
try {
  const port = Number((await cli.waitForLog(/listening on 127\.0\.0\.1:(\d+)/, 30_000))[1])
  await new Promise((resolve) => setTimeout(resolve, 500))
  const idle = status(cli.pid)

  const line = `${"x".repeat(998)}\r\n`
  const chunk = line.repeat(1024)
  const data = await during(cli.pid, async () => {
    const s = await session(port)
    await s.reply()
    await s.expect("EHLO bench.test", /^250 /)
    await s.expect(`MAIL FROM:<bench@example.org> SIZE=${messageSize}`, /^250 /)
    await s.expect("RCPT TO:<sink@example.net>", /^250 /)
    await s.expect("DATA", /^354 /)
    await s.write("Subject: memory bench\r\n\r\n")
    for (let sent = 0; sent < messageSize; sent += chunk.length) await s.write(chunk)
    await s.write(".\r\n")
    const r = await s.reply()
    if (!r.startsWith("250 ")) throw new Error(`end of data: ${r}`)
    await s.expect("QUIT", /^221 /)
    s.close()
  })

  const longLine = await during(cli.pid, async () => {
    const s = await session(port)
    await s.reply()
    const block = Buffer.alloc(MB, 0x41)
    for (let sent = 0; sent < lineSize; sent += block.length) await s.write(block)
    await s.write("\r\n")
    const r = await s.reply()
    if (!r.startsWith("500 ")) throw new Error(`10 MB line: ${r}`)
    // Past 1 MiB of overlong lines the bridge stops reading and closes the connection.
    const closing = await s.reply()
    if (!closing.startsWith("421 ")) throw new Error(`10 MB line, after the 500: ${closing}`)
    s.close()
  })

  const mb = (n: number) => `${(n / MB).toFixed(1)} MB`
  console.log(`smtp-bridge memory, CLI under ${runtime}, delivering to ${target} (${os.platform()} ${os.arch()}, ${new Date().toISOString()})`)
  console.table({
    idle: { "RSS (sampled peak)": mb(idle.rss), "RSS after": mb(idle.rss), "VmHWM": mb(idle.hwm), "time": "" },
    [`DATA ${messageSize / MB} MB`]: {
      "RSS (sampled peak)": mb(data.peak), "RSS after": mb(data.after), "VmHWM": mb(data.hwm), "time": `${Math.round(data.ms)} ms`
    },
    [`command line ${lineSize / MB} MB`]: {
      "RSS (sampled peak)": mb(longLine.peak), "RSS after": mb(longLine.after), "VmHWM": mb(longLine.hwm),
      "time": `${Math.round(longLine.ms)} ms`
    }
  })
  console.log(`peak above idle: DATA ${mb(data.peak - idle.rss)}, long line ${mb(longLine.peak - idle.rss)}${check() === "" ? "" : `; ${check()}`}`)
} finally {
  await cli.kill()
  for (const stop of stops.reverse()) await stop()
}
