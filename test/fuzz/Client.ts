/**
 * The fuzzing client's view of one SMTP session: raw writes (split where the fuzzer says), and
 * replies read whole (multi-line ones joined) with a deadline, each checked as it arrives: a
 * three-digit code, the same code on every line, printable ASCII, at most 512 octets a line.
 */
import * as net from "node:net"

export interface Session {
  readonly write: (bytes: Uint8Array | string) => Promise<void>
  /** The next whole reply, `closed` when the server closed first; throws on a deadline or a malformed reply. */
  readonly reply: (timeoutMs: number) => Promise<string | "closed">
  readonly close: () => void
}

export class Violation extends Error {}

export const open = (port: number, localAddress: string): Promise<Session> =>
  new Promise((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port, localAddress })
    let buffer = ""
    let ended = false
    let wake: (() => void) | undefined
    socket.setEncoding("latin1")
    socket.on("data", (text: string) => {
      buffer += text
      wake?.()
    })
    const finish = () => {
      ended = true
      wake?.()
    }
    socket.on("end", finish)
    socket.on("close", finish)
    socket.on("error", () => finish())
    socket.once("connect", () => {
      socket.removeListener("error", reject)
      resolve({
        write: (bytes) =>
          new Promise<void>((done) => {
            if (ended || socket.destroyed) return done()
            socket.write(bytes, () => done())
          }),
        reply: async (timeoutMs) => {
          const deadline = Date.now() + timeoutMs
          const lines: Array<string> = []
          for (;;) {
            const eol = buffer.indexOf("\r\n")
            if (eol !== -1) {
              const line = buffer.slice(0, eol)
              buffer = buffer.slice(eol + 2)
              if (!/^[2-5]\d\d[ -]/.test(line)) throw new Violation(`malformed reply line ${JSON.stringify(line.slice(0, 200))}`)
              if (line.length > 512) throw new Violation(`reply line of ${line.length} octets: ${JSON.stringify(line.slice(0, 80))}...`)
              if (/[^\x20-\x7e]/.test(line)) throw new Violation(`reply with bytes outside printable ASCII: ${JSON.stringify(line.slice(0, 200))}`)
              if (lines.length > 0 && line.slice(0, 3) !== lines[0]!.slice(0, 3)) throw new Violation(`multi-line reply changes its code: ${JSON.stringify([...lines, line])}`)
              lines.push(line)
              if (line[3] === " ") return lines.join("\n")
              continue
            }
            if (buffer.length > 4096) throw new Violation(`a reply line without CRLF after 4096 octets`)
            if (ended) {
              if (buffer.length > 0 || lines.length > 0) throw new Violation(`connection closed inside a reply: ${JSON.stringify(buffer.slice(0, 200))}`)
              return "closed"
            }
            const left = deadline - Date.now()
            if (left <= 0) throw new Violation(`no reply within ${timeoutMs} ms`)
            await new Promise<void>((done) => {
              const timer = setTimeout(done, left)
              wake = () => {
                clearTimeout(timer)
                wake = undefined
                done()
              }
            })
          }
        },
        close: () => socket.destroy()
      })
    })
    socket.once("error", reject)
  })
