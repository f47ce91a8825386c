/**
 * What a process holds open, read from /proc (Linux), for the tests of the session cap, and the
 * one message each of their sessions sends.
 */
import * as fs from "node:fs"
import type { Client } from "./SmtpClient.ts"

/**
 * Descriptors of `pid` that are sockets listed in its /proc/PID/net `tables` (`tcp`, `tcp6`,
 * `udp`, `udp6`) whose row `keep` accepts (the row's fields: [2] is the remote address:port in hex).
 */
export const socketsOf = (pid: number, tables: ReadonlyArray<string>, keep: (fields: ReadonlyArray<string>) => boolean = () => true): number => {
  const inodes = new Set<string>()
  for (const table of tables) {
    const file = `/proc/${pid}/net/${table}`
    if (!fs.existsSync(file)) continue
    for (const line of fs.readFileSync(file, "utf8").split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/)
      const inode = fields[9]
      if (inode !== undefined && inode !== "0" && keep(fields)) inodes.add(inode)
    }
  }
  let n = 0
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`))
      if (m !== null && inodes.has(m[1]!)) n++
    } catch {
      // Closed meanwhile.
    }
  }
  return n
}

/** Descriptors of `pid` that are TCP connections to `port` on IPv4 loopback. */
export const connectionsTo = (pid: number, port: number): number =>
  socketsOf(pid, ["tcp"], (fields) => fields[2] !== undefined && Number.parseInt(fields[2].split(":")[1]!, 16) === port)

/**
 * One message from a greeted client: EHLO, MAIL (sender `a<i>@example.com`), RCPT, DATA, then
 * `content` (ending with its dot). The replies' first four characters, joined: a session that
 * delivered gives "250-250 250 354 250 ".
 */
export const sendOne = async (c: Client, i: number, content: string, timeoutMs = 30_000): Promise<string> => {
  const replies = [
    await c.command("EHLO client.test"),
    await c.command(`MAIL FROM:<a${i}@example.com>`),
    await c.command("RCPT TO:<b@example.com>"),
    await c.command("DATA"),
    await c.command(content, timeoutMs)
  ]
  return replies.map((r) => r.slice(0, 4)).join("")
}
