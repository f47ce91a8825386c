/**
 * A raw SMTP client for transcript tests: it sends exactly the bytes a test gives it and hands back
 * the server's replies one at a time, so pipelining, smuggling and STARTTLS injection can be
 * written as C:/S: exchanges. Every wait times out (10 s by default) with the transcript so far.
 *
 * @example
 * const c = await connect(port)
 * expect(await c.read()).toMatch(/^220 /)
 * c.send("EHLO a\r\nMAIL FROM:<a@example.com>\r\n")
 * expect(await c.read()).toMatch(/^250-/)
 * expect(await c.read()).toBe("250 2.1.0 Ok")
 * c.close()
 */
import * as net from "node:net"
import * as tls from "node:tls"

export interface ConnectOptions {
  /** 127.0.0.1 by default. */
  readonly host?: string
  /** Implicit TLS from the first byte (certificates are not verified). */
  readonly tls?: boolean
  /** SNI name for TLS; `localhost` by default. */
  readonly servername?: string
  /** Default limit for every wait of this client, 10 s unless given. */
  readonly timeoutMs?: number
  /** Source address (any 127.x.y.z is loopback): a client from another network. */
  readonly localAddress?: string
}

export interface Client {
  /** The next complete reply (all lines of a multi-line reply), lines joined by `\n`, without the final CRLF. */
  read(timeoutMs?: number): Promise<string>
  /** Raw bytes, as they are: the caller writes the CRLFs. */
  send(data: string | Uint8Array): void
  /** Sends `line` + CRLF and reads one reply. */
  command(line: string, timeoutMs?: number): Promise<string>
  /** Upgrades the connection after the server's 220 to STARTTLS; fails if the server sent anything after it. */
  startTls(options?: { readonly servername?: string }): Promise<void>
  /** Resolves when the server has closed the connection. */
  closed(timeoutMs?: number): Promise<void>
  /** Closes the connection from our side. */
  close(): void
  /** Whether the connection is encrypted now. */
  readonly encrypted: boolean
  /** What was said so far, as `C: ...` and `S: ...` lines. */
  transcript(): string
}

interface Waiter {
  readonly resolve: (reply: string) => void
  readonly reject: (error: Error) => void
}

const isContinuation = (line: string): boolean => /^\d{3}-/.test(line)

export const connect = (port: number, options: ConnectOptions = {}): Promise<Client> => {
  const host = options.host ?? "127.0.0.1"
  const defaultTimeout = options.timeoutMs ?? 10_000
  const local = options.localAddress === undefined ? {} : { localAddress: options.localAddress }
  const log: Array<string> = []
  const replies: Array<string> = []
  const waiters: Array<Waiter> = []
  const closeWaiters: Array<() => void> = []
  let pending = Buffer.alloc(0)
  let lines: Array<string> = []
  let socket: net.Socket
  let encrypted = options.tls === true
  let isClosed = false
  let failure: Error | undefined

  const transcript = () => log.join("\n")
  const fail = (message: string) => new Error(`${message}\n--- transcript ---\n${transcript()}`)

  const flush = () => {
    while (waiters.length > 0 && replies.length > 0) waiters.shift()!.resolve(replies.shift()!)
    if (isClosed || failure !== undefined) {
      for (const waiter of waiters.splice(0)) {
        waiter.reject(fail(failure !== undefined ? `connection failed: ${failure.message}` : "connection closed by the server"))
      }
    }
  }

  const onData = (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk])
    let lf = pending.indexOf(0x0a)
    while (lf !== -1) {
      const line = pending.subarray(0, lf).toString("utf8").replace(/\r$/, "")
      pending = pending.subarray(lf + 1)
      log.push(`S: ${line}`)
      lines.push(line)
      if (!isContinuation(line)) {
        replies.push(lines.join("\n"))
        lines = []
      }
      lf = pending.indexOf(0x0a)
    }
    flush()
  }
  const onError = (error: Error) => {
    failure ??= error
    flush()
  }
  const onClose = () => {
    isClosed = true
    if (pending.length > 0) log.push(`S: ${pending.toString("utf8")} (no CRLF before close)`)
    flush()
    for (const resolve of closeWaiters.splice(0)) resolve()
  }
  const attach = (s: net.Socket) => {
    socket = s
    s.on("data", onData)
    s.on("error", onError)
    s.on("close", onClose)
  }

  const withTimeout = <A>(
    what: string,
    timeoutMs: number,
    start: (resolve: (a: A) => void, reject: (e: Error) => void) => void,
    onTimeout: () => void = () => {}
  ) =>
    new Promise<A>((resolve, reject) => {
      const timer = setTimeout(() => {
        onTimeout()
        reject(fail(`timed out after ${timeoutMs} ms waiting for ${what}`))
      }, timeoutMs)
      start(
        (a) => {
          clearTimeout(timer)
          resolve(a)
        },
        (e) => {
          clearTimeout(timer)
          reject(e)
        }
      )
    })

  const read = (timeoutMs = defaultTimeout) => {
    let waiter: Waiter | undefined
    // A read that timed out must not swallow the reply that comes later: the next read gets it.
    const forget = () => {
      const i = waiter === undefined ? -1 : waiters.indexOf(waiter)
      if (i !== -1) waiters.splice(i, 1)
    }
    return withTimeout<string>("a reply", timeoutMs, (resolve, reject) => {
      waiter = { resolve, reject }
      waiters.push(waiter)
      flush()
    }, forget)
  }

  const send = (data: string | Uint8Array) => {
    const text = typeof data === "string" ? data : Buffer.from(data).toString("utf8")
    for (const line of text.split("\r\n").slice(0, text.endsWith("\r\n") ? -1 : undefined)) log.push(`C: ${line}`)
    socket.write(data)
  }

  const client: Client = {
    read,
    send,
    command: (line, timeoutMs) => {
      send(`${line}\r\n`)
      return read(timeoutMs)
    },
    startTls: (startOptions = {}) => {
      if (replies.length > 0 || lines.length > 0 || pending.length > 0) {
        return Promise.reject(fail("the server sent data after its STARTTLS reply"))
      }
      const plain = socket
      plain.off("data", onData)
      plain.off("error", onError)
      plain.off("close", onClose)
      return withTimeout<void>("the TLS handshake", defaultTimeout, (resolve, reject) => {
        const secure = tls.connect({
          socket: plain,
          rejectUnauthorized: false,
          servername: startOptions.servername ?? options.servername ?? "localhost"
        })
        const onHandshakeError = (error: Error) => reject(fail(`TLS handshake failed: ${error.message}`))
        secure.once("error", onHandshakeError)
        secure.once("secureConnect", () => {
          secure.off("error", onHandshakeError)
          encrypted = true
          log.push("-- TLS established --")
          resolve()
        })
        attach(secure)
      })
    },
    closed: (timeoutMs = defaultTimeout) =>
      withTimeout<void>("the server to close the connection", timeoutMs, (resolve) => {
        if (isClosed) resolve()
        else closeWaiters.push(resolve)
      }),
    close: () => {
      socket.destroy()
    },
    get encrypted() {
      return encrypted
    },
    transcript
  }

  return withTimeout<Client>(`a connection to ${host}:${port}`, defaultTimeout, (resolve, reject) => {
    const onConnectError = (error: Error) => reject(fail(`cannot connect to ${host}:${port}: ${error.message}`))
    const s = options.tls === true
      ? tls.connect({ host, port, rejectUnauthorized: false, servername: options.servername ?? "localhost", ...local })
      : net.connect({ host, port, ...local })
    s.once("error", onConnectError)
    s.once(options.tls === true ? "secureConnect" : "connect", () => {
      s.off("error", onConnectError)
      resolve(client)
    })
    attach(s)
  })
}
