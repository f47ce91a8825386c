/**
 * The raw SMTP client of the benchmarks: replies resolve as they arrive (no polling, so the round
 * trip is what is measured), multi-line replies are skipped to their last line, and `startTls`
 * upgrades the same socket after `STARTTLS` (the bridge's certificate is the test's self-signed one).
 */
import * as net from "node:net"
import * as tls from "node:tls"

export interface Session {
  readonly reply: (timeoutMs?: number) => Promise<string>
  readonly command: (line: string) => Promise<string>
  /** After a `220` to STARTTLS: the TLS handshake on the same connection. */
  readonly startTls: () => Promise<void>
  readonly close: () => void
}

export const session = async (port: number, localAddress = "127.0.0.1"): Promise<Session> => {
  let socket: net.Socket = net.connect({ host: "127.0.0.1", port, localAddress })
  socket.setNoDelay(true)
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve)
    socket.once("error", reject)
  })
  let pending = ""
  const replies: Array<string> = []
  const waiters: Array<(line: string) => void> = []
  const onData = (chunk: Buffer) => {
    pending += chunk.toString("latin1")
    for (let end = pending.indexOf("\r\n"); end !== -1; end = pending.indexOf("\r\n")) {
      const line = pending.slice(0, end)
      pending = pending.slice(end + 2)
      if (/^\d{3}-/.test(line)) continue
      const waiter = waiters.shift()
      if (waiter !== undefined) waiter(line)
      else replies.push(line)
    }
  }
  const listen = (s: net.Socket) => {
    s.on("error", () => {})
    s.on("data", onData)
  }
  listen(socket)
  const reply = (timeoutMs = 120_000) =>
    replies.length > 0 ? Promise.resolve(replies.shift()!) : new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply within ${timeoutMs} ms`)), timeoutMs)
      waiters.push((line) => {
        clearTimeout(timer)
        resolve(line)
      })
    })
  return {
    reply,
    command: (line) => {
      socket.write(`${line}\r\n`)
      return reply()
    },
    startTls: async () => {
      socket.removeListener("data", onData)
      const secure = tls.connect({ socket, rejectUnauthorized: false, servername: "localhost" })
      await new Promise<void>((resolve, reject) => {
        secure.once("secureConnect", resolve)
        secure.once("error", reject)
      })
      listen(secure)
      socket = secure
    },
    close: () => socket.destroy()
  }
}

/** The `p`th percentile of ascending samples (nearest rank). */
export const percentile = (sorted: ReadonlyArray<number>, p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
